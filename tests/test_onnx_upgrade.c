/* Legacy-opset upgrade (src/onnx/onnx_upgrade.c): each rule on small
 * hand-built graphs (attributes, shapes, inserted nodes, numbers computed
 * by the executor against the old semantics), failures that must name op,
 * node and attribute, the import hook, and every legacy model of the
 * conformance table: upgraded, exported, re-imported and re-run against
 * its reference output; when python3-onnx is installed, onnx.checker
 * (full_check) on every exported upgraded model. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "python_onnx.h"
#include "onnx/onnx_internal.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

#define TESTDATA "/usr/share/libonnx-testdata/data/"

/* ---- building graphs ---- */

static nnq_graph *new_graph(const char *domain, int64_t opset) {
    nnq_graph *g = nnq_graph_create("legacy");
    if (!g) abort(); /* test harness: nothing sensible to do */
    CHECK_OK(nnq_graph_set_opset(g, domain, opset));
    return g;
}

static int add_value(nnq_graph *g, const char *name) {
    int v = -1;
    CHECK_OK(nnq_graph_add_value(g, name, &v));
    if (v < 0) abort();
    return v;
}

/* A typed value; rank -1 leaves the shape unknown. */
static int add_typed(nnq_graph *g, const char *name, nnq_dtype dt, int rank, const int64_t *dims) {
    int v = add_value(g, name);
    g->values[v].t.dtype = dt;
    g->values[v].t.rank = rank;
    for (int i = 0; i < rank; i++) g->values[v].t.dims[i] = dims[i];
    return v;
}

static int add_input(nnq_graph *g, const char *name, int rank, const int64_t *dims) {
    int v = add_typed(g, name, NNQ_DT_FLOAT, rank, dims);
    CHECK_OK(nnq_graph_add_input(g, v));
    return v;
}

static int add_output(nnq_graph *g, const char *name, int rank, const int64_t *dims) {
    int v = add_typed(g, name, NNQ_DT_FLOAT, rank, dims);
    CHECK_OK(nnq_graph_add_output(g, v));
    return v;
}

static int add_init(nnq_graph *g, const char *name, int rank, const int64_t *dims, const float *data) {
    nnq_tensor t = {0};
    int v = -1;
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, rank, dims));
    memcpy(t.data, data, sizeof(float) * (size_t)nnq_tensor_numel(&t));
    CHECK_OK(nnq_graph_add_initializer(g, name, &t, &v));
    if (v < 0) abort();
    return v;
}

static int add_node(nnq_graph *g, const char *name, const char *op, int n_in, const int *in,
                    int n_out, const int *out) {
    int k = -1;
    CHECK_OK(nnq_graph_add_node(g, name, op, "", n_in, in, n_out, out, &k));
    if (k < 0) abort();
    return k;
}

static int find_op(const nnq_graph *g, const char *op) {
    for (int k = 0; k < g->n_nodes; k++)
        if (strcmp(g->nodes[k].op_type, op) == 0) return k;
    return -1;
}

static bool dims_are(const nnq_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i]) return false;
    return true;
}

static void fill(float *p, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 16384.0f - 2.0f;
    }
}

/* ---- exported models kept for onnx.checker ---- */

static char out_dir[512];
static char *checker_files[128];
static int n_checker_files;

static void keep_for_checker(const nnq_graph *g, const char *tag) {
    char path[1024];
    if (!out_dir[0] || n_checker_files == (int)(sizeof checker_files / sizeof *checker_files)) return;
    snprintf(path, sizeof path, "%s/%s.onnx", out_dir, tag);
    for (char *p = path + strlen(out_dir) + 1; *p; p++)
        if (*p == '/') *p = '_';
    CHECK_OK(nnq_onnx_save(g, path));
    checker_files[n_checker_files++] = strdup(path);
}

/* ---- running a graph ---- */

/* Prepare g, feed inputs (one per graph input) and copy output 0 into
 * *out (owned); false if any step failed. */
static bool run_graph(nnq_graph *g, const nnq_tensor *inputs, nnq_tensor *out) {
    nnq_exec *e = NULL;
    bool ok = false;
    nnq_status s = nnq_graph_prepare(g);
    if (s == NNQ_OK) s = nnq_exec_create(g, NULL, &e);
    if (s == NNQ_OK) s = nnq_exec_run(e, inputs);
    if (s == NNQ_OK) s = nnq_tensor_clone(out, nnq_exec_output(e, 0));
    if (s != NNQ_OK)
        fprintf(stderr, "run_graph: %s: %s\n", nnq_status_name(s), nnq_last_error());
    ok = s == NNQ_OK;
    CHECK(ok);
    nnq_exec_free(e);
    return ok;
}

static nnq_tensor float_tensor(int rank, const int64_t *dims, float *data) {
    nnq_tensor t = {0};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_FLOAT, rank, dims));
    t.data = data;
    return t;
}

/* ---- the rules ---- */

static void test_consumed_inputs(void) {
    int64_t d[2] = {2, 3};
    int64_t consumed[1] = {0};
    nnq_graph *g = new_graph("", 5);
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, d);
    int k = add_node(g, "relu", "Relu", 1, &x, 1, &y);
    CHECK_OK(nnq_node_set_ints(&g->nodes[k], "consumed_inputs", 1, consumed));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "keep_me", 7)); /* only the legacy one goes */
    int z = add_value(g, "z");
    int c = -1;
    CHECK_OK(nnq_graph_add_node(g, "custom", "Relu", "com.other", 1, &x, 1, &z, &c));
    CHECK_OK(nnq_node_set_ints(&g->nodes[c], "consumed_inputs", 1, consumed));
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(nnq_graph_opset(g) == NNQ_ONNX_UPGRADE_OPSET && g->n_opsets == 1);
    CHECK(!nnq_node_attr(&g->nodes[k], "consumed_inputs"));
    CHECK(nnq_node_attr_int(&g->nodes[k], "keep_me", 0) == 7);
    /* Other domains have their own versioning: untouched. */
    CHECK(nnq_node_attr(&g->nodes[c], "consumed_inputs") != NULL);
    nnq_graph_free(g);

    /* "ai.onnx" spelled out: that entry is raised, none is added. */
    g = new_graph("ai.onnx", 1);
    x = add_input(g, "x", 2, d);
    y = add_output(g, "y", 2, d);
    add_node(g, "relu", "Relu", 1, &x, 1, &y);
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(g->n_opsets == 1 && g->opsets[0].version == 11 && strcmp(g->opsets[0].domain, "ai.onnx") == 0);
    nnq_graph_free(g);
}

/* Opset 11 and later: nothing changes, even attributes that look old. */
static void test_modern_untouched(void) {
    int64_t d[2] = {2, 3};
    nnq_graph *g = new_graph("", 13);
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, d);
    int k = add_node(g, "add", "Add", 2, (int[]){x, x}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", 0));
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(nnq_graph_opset(g) == 13 && g->nodes[k].n_attrs == 2 && g->n_values == 2);
    nnq_graph_free(g);
}

/* Add with broadcast=1, axis=1: A (2,3,4,5) + B (3) means B[c] added at
 * channel c. A constant B is reshaped to (3,1,1); a B that other nodes
 * also read is copied first. */
static void test_broadcast_constant(void) {
    int64_t da[4] = {2, 3, 4, 5}, db[1] = {3}, d2[2] = {2, 3};
    float bv[3] = {10, 20, 30};
    nnq_graph *g = new_graph("", 6);
    int a = add_input(g, "A", 4, da), a2 = add_input(g, "A2", 2, d2);
    int b = add_init(g, "B", 1, db, bv);
    int y = add_output(g, "Y", 4, da), y2 = add_output(g, "Y2", 2, d2);
    int k = add_node(g, "add_c", "Add", 2, (int[]){a, b}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", 1));
    /* B again, suffix-aligned with a rank-2 A: stays (3). */
    int k2 = add_node(g, "add_suffix", "Add", 2, (int[]){a2, b}, 1, &y2);
    CHECK_OK(nnq_node_set_int(&g->nodes[k2], "broadcast", 1));
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(g->nodes[k].n_attrs == 0 && g->nodes[k2].n_attrs == 0);
    int nb = g->nodes[k].inputs[1];
    CHECK(nb != b && g->values[nb].is_initializer);
    CHECK(dims_are(&g->values[nb].t, 3, (int64_t[]){3, 1, 1}));
    CHECK(nnq_f32(&g->values[nb].t)[2] == 30);
    CHECK(g->nodes[k2].inputs[1] == b && dims_are(&g->values[b].t, 1, db));
    CHECK(g->n_nodes == 2);
    keep_for_checker(g, "broadcast_constant");

    float av[120], a2v[6] = {1, 2, 3, 4, 5, 6};
    fill(av, 120, 1);
    nnq_tensor in[2] = {float_tensor(4, da, av), float_tensor(2, d2, a2v)}, out = {0};
    if (run_graph(g, in, &out)) {
        int bad = 0;
        for (int i = 0; i < 120; i++)
            if (nnq_f32(&out)[i] != av[i] + bv[(i / 20) % 3]) bad++;
        CHECK(dims_are(&out, 4, da) && bad == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);
}

/* The same alignment for a B computed at run time: an Unsqueeze (axes as
 * an attribute) is inserted right before the Add. A's rank comes through
 * a Conv (rank propagation), B's from its declaration. */
static void test_broadcast_unsqueeze(void) {
    int64_t dx[4] = {1, 2, 3, 3}, dw[4] = {2, 2, 1, 1}, db[1] = {2};
    float wv[4] = {1, 0, 0, 1}; /* identity 1x1 convolution */
    nnq_graph *g = new_graph("", 6);
    int x = add_input(g, "x", 4, dx), bias = add_input(g, "bias", 1, db);
    int w = add_init(g, "w", 4, dw, wv);
    int c = add_value(g, "conv_out");
    int y = add_output(g, "y", 4, dx);
    add_node(g, "conv", "Conv", 2, (int[]){x, w}, 1, &c);
    int k = add_node(g, "bias_add", "Add", 2, (int[]){c, bias}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", -3)); /* negative: counts from A's end */
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(g->n_nodes == 3);
    int un = find_op(g, "Unsqueeze"), add = find_op(g, "Add");
    CHECK(un == 1 && add == 2); /* between Conv and Add */
    if (un == 1 && add == 2) {
        const nnq_node *u = &g->nodes[un];
        const int64_t *axes;
        CHECK(u->n_inputs == 1 && u->inputs[0] == bias && u->n_outputs == 1);
        CHECK(nnq_node_attr_ints(u, "axes", &axes) == 2 && axes[0] == 1 && axes[1] == 2);
        CHECK(g->nodes[add].inputs[1] == u->outputs[0] && g->values[u->outputs[0]].producer == un);
        CHECK(g->values[c].producer == 0 && g->values[y].producer == 2);
        CHECK(g->nodes[add].n_attrs == 0);
    }
    CHECK_OK(nnq_graph_verify(g));
    keep_for_checker(g, "broadcast_unsqueeze");

    float xv[18], bv[2] = {-1.5f, 4.0f};
    fill(xv, 18, 2);
    nnq_tensor in[2] = {float_tensor(4, dx, xv), float_tensor(1, db, bv)}, out = {0};
    if (run_graph(g, in, &out)) {
        int bad = 0;
        for (int i = 0; i < 18; i++)
            if (nnq_f32(&out)[i] != xv[i] + bv[i / 9]) bad++;
        CHECK(bad == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);
}

static void test_broadcast_plain_and_errors(void) {
    int64_t da[3] = {2, 3, 4}, db[2] = {3, 4}, d1[1] = {1};
    float one = 1, bv[12] = {0};
    /* No axis: suffix alignment is numpy's; B (3,4) stays. Mul and Sub too. */
    static const char *const ops[3] = {"Mul", "Sub", "Div"};
    for (int i = 0; i < 3; i++) {
        nnq_graph *g = new_graph("", 1);
        int a = add_input(g, "A", 3, da), b = add_init(g, "B", 2, db, bv);
        int y = add_output(g, "Y", 3, da);
        int k = add_node(g, "op", ops[i], 2, (int[]){a, b}, 1, &y);
        CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
        CHECK_OK(nnq_onnx_upgrade(g));
        CHECK(g->nodes[k].n_attrs == 0 && dims_are(&g->values[b].t, 2, db));
        nnq_graph_free(g);
    }
    /* axis that already makes B a suffix; a one-element B with an axis. */
    nnq_graph *g = new_graph("", 6);
    int a = add_input(g, "A", 3, da), b = add_init(g, "B", 2, db, bv);
    int s = add_init(g, "S", 1, d1, &one);
    int y = add_output(g, "Y", 3, da), y2 = add_output(g, "Y2", 3, da);
    int k = add_node(g, "suffix", "Add", 2, (int[]){a, b}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", 1));
    int k2 = add_node(g, "scalar", "Add", 2, (int[]){a, s}, 1, &y2);
    CHECK_OK(nnq_node_set_int(&g->nodes[k2], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k2], "axis", 0));
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(g->n_nodes == 2 && dims_are(&g->values[b].t, 2, db) && dims_are(&g->values[s].t, 1, d1));
    CHECK(g->nodes[k].n_attrs == 0 && g->nodes[k2].n_attrs == 0);
    nnq_graph_free(g);

    /* A's rank unknown: the alignment cannot be computed. */
    g = new_graph("", 6);
    a = add_typed(g, "A", NNQ_DT_FLOAT, -1, NULL);
    CHECK_OK(nnq_graph_add_input(g, a));
    b = add_init(g, "B", 2, db, bv);
    y = add_output(g, "Y", 3, da);
    k = add_node(g, "add_unknown", "Add", 2, (int[]){a, b}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", 0));
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "Add node 'add_unknown'") && strstr(nnq_last_error(), "axis"));
    nnq_graph_free(g);

    /* An axis that puts B past A's end is a broken model. */
    g = new_graph("", 6);
    a = add_input(g, "A", 3, da);
    b = add_init(g, "B", 2, db, bv);
    y = add_output(g, "Y", 3, da);
    k = add_node(g, "add_far", "Add", 2, (int[]){a, b}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "axis", 2));
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "add_far") && strstr(nnq_last_error(), "axis 2"));
    nnq_graph_free(g);
}

static void test_gemm(void) {
    int64_t da[2] = {2, 3}, dbm[2] = {3, 4}, dc[1] = {4}, dy[2] = {2, 4};
    float bm[12], cv[4] = {1, 2, 3, 4};
    fill(bm, 12, 3);
    nnq_graph *g = new_graph("", 6);
    int a = add_input(g, "A", 2, da), b = add_init(g, "B", 2, dbm, bm), c = add_init(g, "C", 1, dc, cv);
    int y = add_output(g, "Y", 2, dy);
    int k = add_node(g, "gemm", "Gemm", 3, (int[]){a, b, c}, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "broadcast", 1));
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "beta", 2.0f));
    CHECK_OK(nnq_onnx_upgrade(g));
    CHECK(!nnq_node_attr(&g->nodes[k], "broadcast") && nnq_node_attr_float(&g->nodes[k], "beta", 0) == 2.0f);
    CHECK(dims_are(&g->values[c].t, 1, dc));
    keep_for_checker(g, "gemm");
    nnq_graph_free(g);
}

/* PRelu before 7: slope (C) per channel of X (N, C, ...). */
static void test_prelu(void) {
    int64_t dx4[4] = {1, 3, 2, 2}, dx2[2] = {4, 3}, ds[1] = {3}, dx3[3] = {2, 3, 4};
    float sv[3] = {0.1f, 0.2f, 0.3f};
    nnq_graph *g = new_graph("", 6);
    int x4 = add_input(g, "x4", 4, dx4), x2 = add_input(g, "x2", 2, dx2);
    int s = add_init(g, "slope", 1, ds, sv);
    int y4 = add_output(g, "y4", 4, dx4), y2 = add_output(g, "y2", 2, dx2);
    int k4 = add_node(g, "prelu4", "PRelu", 2, (int[]){x4, s}, 1, &y4);
    int k2 = add_node(g, "prelu2", "PRelu", 2, (int[]){x2, s}, 1, &y2);
    CHECK_OK(nnq_onnx_upgrade(g));
    int s4 = g->nodes[k4].inputs[1];
    CHECK(dims_are(&g->values[s4].t, 3, (int64_t[]){3, 1, 1}));
    CHECK(g->nodes[k2].inputs[1] == s && dims_are(&g->values[s].t, 1, ds)); /* (N, C): already numpy */
    keep_for_checker(g, "prelu_constant");
    nnq_graph_free(g);

    /* A slope fed at run time gets an Unsqueeze; numbers as the old op. */
    g = new_graph("", 6);
    int x = add_input(g, "x", 3, dx3), sl = add_input(g, "slope", 1, ds);
    int y = add_output(g, "y", 3, dx3);
    add_node(g, "prelu", "PRelu", 2, (int[]){x, sl}, 1, &y);
    CHECK_OK(nnq_onnx_upgrade(g));
    int un = find_op(g, "Unsqueeze");
    const int64_t *axes;
    CHECK(un == 0 && g->n_nodes == 2);
    CHECK(un == 0 && nnq_node_attr_ints(&g->nodes[0], "axes", &axes) == 1 && axes[0] == 1);
    keep_for_checker(g, "prelu_unsqueeze");
    float xv[24];
    fill(xv, 24, 4);
    nnq_tensor in[2] = {float_tensor(3, dx3, xv), float_tensor(1, ds, sv)}, out = {0};
    if (run_graph(g, in, &out)) {
        int bad = 0;
        for (int i = 0; i < 24; i++) {
            float want = xv[i] < 0 ? sv[(i / 4) % 3] * xv[i] : xv[i];
            if (nnq_f32(&out)[i] != want) bad++;
        }
        CHECK(bad == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);
}

static int add_bn(nnq_graph *g, int x, int n_out, const int *outs) {
    int64_t dc[1] = {2};
    float one[2] = {1, 1}, zero[2] = {0, 0};
    int p[4];
    static const char *const names[4] = {"scale", "bias", "mean", "var"};
    for (int i = 0; i < 4; i++) p[i] = add_init(g, names[i], 1, dc, (i == 0 || i == 3) ? one : zero);
    return add_node(g, "bn", "BatchNormalization", 5, (int[]){x, p[0], p[1], p[2], p[3]}, n_out, outs);
}

static void test_batchnorm(void) {
    int64_t dx[4] = {1, 2, 2, 2}, dc[1] = {2};
    int64_t consumed[2] = {0, 0};
    /* Opset 5: consumed_inputs, is_test, spatial=1 all go; momentum and
     * epsilon stay; unread statistics outputs are dropped. */
    nnq_graph *g = new_graph("", 5);
    int x = add_input(g, "x", 4, dx), y = add_output(g, "y", 4, dx);
    int m = add_value(g, "mean_out"), v = add_value(g, "var_out");
    int k = add_bn(g, x, 3, (int[]){y, m, v});
    nnq_node *n = &g->nodes[k];
    CHECK_OK(nnq_node_set_ints(n, "consumed_inputs", 2, consumed));
    CHECK_OK(nnq_node_set_int(n, "is_test", 1));
    CHECK_OK(nnq_node_set_int(n, "spatial", 1));
    CHECK_OK(nnq_node_set_float(n, "momentum", 0.8f));
    CHECK_OK(nnq_node_set_float(n, "epsilon", 1e-3f));
    CHECK_OK(nnq_onnx_upgrade(g));
    n = &g->nodes[k];
    CHECK(n->n_attrs == 2 && nnq_node_attr_float(n, "momentum", 0) == 0.8f &&
          nnq_node_attr_float(n, "epsilon", 0) == 1e-3f);
    CHECK(n->n_outputs == 1 && g->values[m].producer == -1 && g->values[v].producer == -1);
    CHECK_OK(nnq_graph_verify(g));
    keep_for_checker(g, "batchnorm");
    nnq_graph_free(g);

    /* spatial=0 (opset 7 still has it) cannot be expressed. */
    g = new_graph("", 7);
    x = add_input(g, "x", 4, dx);
    y = add_output(g, "y", 4, dx);
    k = add_bn(g, x, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "spatial", 0));
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "BatchNormalization node 'bn'") && strstr(nnq_last_error(), "spatial=0"));
    nnq_graph_free(g);

    /* Test mode whose statistics output is read: no opset-11 meaning. */
    g = new_graph("", 6);
    x = add_input(g, "x", 4, dx);
    y = add_output(g, "y", 4, dx);
    m = add_output(g, "mean_out", 1, dc);
    k = add_bn(g, x, 2, (int[]){y, m});
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "is_test", 1));
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "'bn'") && strstr(nnq_last_error(), "mean_out"));
    nnq_graph_free(g);
}

static void test_dropout(void) {
    int64_t d[2] = {2, 3};
    nnq_graph *g = new_graph("", 6);
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, d), mask = add_value(g, "mask");
    int k = add_node(g, "drop", "Dropout", 1, &x, 2, (int[]){y, mask});
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "is_test", 1));
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "ratio", 0.25f));
    CHECK_OK(nnq_onnx_upgrade(g));
    const nnq_node *n = &g->nodes[k];
    CHECK(!nnq_node_attr(n, "is_test") && nnq_node_attr_float(n, "ratio", 0) == 0.25f);
    CHECK(n->n_outputs == 1 && g->values[mask].producer == -1);
    keep_for_checker(g, "dropout");
    nnq_graph_free(g);

    /* A mask somebody reads changes type (T -> bool at opset 10). */
    g = new_graph("", 9);
    x = add_input(g, "x", 2, d);
    y = add_output(g, "y", 2, d);
    mask = add_output(g, "mask", 2, d);
    add_node(g, "drop", "Dropout", 1, &x, 2, (int[]){y, mask});
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "Dropout node 'drop'") && strstr(nnq_last_error(), "bool"));
    nnq_graph_free(g);
}

static void test_clip(void) {
    int64_t d[2] = {2, 3};
    nnq_graph *g = new_graph("", 6);
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, d);
    int k = add_node(g, "", "Clip", 1, &x, 1, &y);
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "min", -0.5f));
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "max", 0.75f));
    add_value(g, "y_min"); /* the name the rule would pick: it must pick another */
    CHECK_OK(nnq_onnx_upgrade(g));
    const nnq_node *n = &g->nodes[k];
    CHECK(n->n_attrs == 0 && n->n_inputs == 3);
    if (n->n_inputs == 3) {
        const nnq_value *lo = &g->values[n->inputs[1]], *hi = &g->values[n->inputs[2]];
        CHECK(lo->is_initializer && lo->t.rank == 0 && lo->t.dtype == NNQ_DT_FLOAT && nnq_f32(&lo->t)[0] == -0.5f);
        CHECK(hi->is_initializer && hi->t.rank == 0 && nnq_f32(&hi->t)[0] == 0.75f);
        CHECK(strcmp(lo->name, "y_min_1") == 0 && strcmp(hi->name, "y_max") == 0);
    }
    keep_for_checker(g, "clip");
    float xv[6] = {-2, -0.5f, 0.1f, 0.75f, 0.8f, 3}, want[6] = {-0.5f, -0.5f, 0.1f, 0.75f, 0.75f, 0.75f};
    nnq_tensor in = float_tensor(2, d, xv), out = {0};
    if (run_graph(g, &in, &out)) {
        CHECK(memcmp(out.data, want, sizeof want) == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);

    /* Only max, on a double input: (x, "", max) with a double bound. */
    g = new_graph("", 1);
    x = add_typed(g, "x", NNQ_DT_DOUBLE, 2, d);
    CHECK_OK(nnq_graph_add_input(g, x));
    int r = add_value(g, "r");
    y = add_typed(g, "y", NNQ_DT_DOUBLE, 2, d);
    CHECK_OK(nnq_graph_add_output(g, y));
    add_node(g, "relu", "Relu", 1, &x, 1, &r); /* dtype propagates through it */
    k = add_node(g, "clip", "Clip", 1, &r, 1, &y);
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "max", 6.0f));
    CHECK_OK(nnq_onnx_upgrade(g));
    n = &g->nodes[k];
    CHECK(n->n_inputs == 3 && n->inputs[1] == -1);
    if (n->n_inputs == 3) {
        const nnq_tensor *hi = &g->values[n->inputs[2]].t;
        CHECK(hi->dtype == NNQ_DT_DOUBLE && *(const double *)hi->data == 6.0);
    }
    keep_for_checker(g, "clip_double");
    nnq_graph_free(g);
}

static void test_pad(void) {
    int64_t d[2] = {2, 3}, dy[2] = {3, 6};
    int64_t pads[4] = {1, 2, 0, 1};
    /* Pad-2 in constant mode: pads and value become inputs. */
    nnq_graph *g = new_graph("", 2);
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, dy);
    int k = add_node(g, "pad", "Pad", 1, &x, 1, &y);
    CHECK_OK(nnq_node_set_ints(&g->nodes[k], "pads", 4, pads));
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "value", 1.5f));
    CHECK_OK(nnq_onnx_upgrade(g));
    const nnq_node *n = &g->nodes[k];
    CHECK(n->n_attrs == 0 && n->n_inputs == 3);
    if (n->n_inputs == 3) {
        const nnq_tensor *p = &g->values[n->inputs[1]].t, *cv = &g->values[n->inputs[2]].t;
        CHECK(p->dtype == NNQ_DT_INT64 && dims_are(p, 1, (int64_t[]){4}) && memcmp(p->data, pads, sizeof pads) == 0);
        CHECK(cv->dtype == NNQ_DT_FLOAT && cv->rank == 0 && nnq_f32(cv)[0] == 1.5f);
    }
    keep_for_checker(g, "pad_constant");
    float xv[6] = {1, 2, 3, 4, 5, 6};
    nnq_tensor in = float_tensor(2, d, xv), out = {0};
    if (run_graph(g, &in, &out)) {
        /* row 0 padded; columns: 2 before, 1 after */
        static const float want[18] = {1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1, 2, 3, 1.5f,
                                       1.5f, 1.5f, 4, 5, 6, 1.5f};
        CHECK(dims_are(&out, 2, dy) && memcmp(out.data, want, sizeof want) == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);

    /* Pad-1 names it `paddings`; reflect mode keeps mode, no constant_value. */
    g = new_graph("", 1);
    x = add_input(g, "x", 2, d);
    y = add_output(g, "y", 2, dy);
    k = add_node(g, "pad", "Pad", 1, &x, 1, &y);
    CHECK_OK(nnq_node_set_ints(&g->nodes[k], "paddings", 4, pads));
    CHECK_OK(nnq_node_set_string(&g->nodes[k], "mode", "reflect"));
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "value", 0.0f));
    CHECK_OK(nnq_onnx_upgrade(g));
    n = &g->nodes[k];
    CHECK(n->n_inputs == 2 && n->n_attrs == 1 && strcmp(nnq_node_attr_string(n, "mode", ""), "reflect") == 0);
    keep_for_checker(g, "pad_reflect");
    nnq_graph_free(g);

    /* No pads at all: a broken legacy node, named. */
    g = new_graph("", 2);
    x = add_input(g, "x", 2, d);
    y = add_output(g, "y", 2, dy);
    add_node(g, "pad_none", "Pad", 1, &x, 1, &y);
    CHECK_STATUS(nnq_onnx_upgrade(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "Pad node 'pad_none'") && strstr(nnq_last_error(), "pads"));
    nnq_graph_free(g);
}

/* Reshape-1 (shape attribute) feeding an old-style axis Add: the rank of
 * the reshaped value comes from the attribute. Concat-1 without axis. */
static void test_reshape_concat(void) {
    int64_t dx[2] = {2, 6}, shape[3] = {2, 3, 2}, db[1] = {3}, dc[3] = {2, 6, 2};
    float bv[3] = {1, 2, 3};
    nnq_graph *g = new_graph("", 3);
    int x = add_input(g, "x", 2, dx), b = add_init(g, "b", 1, db, bv);
    int r = add_value(g, "r"), s = add_value(g, "s");
    int y = add_output(g, "y", 3, dc);
    int kr = add_node(g, "reshape", "Reshape", 1, &x, 1, &r);
    CHECK_OK(nnq_node_set_ints(&g->nodes[kr], "shape", 3, shape));
    int ka = add_node(g, "add", "Add", 2, (int[]){r, b}, 1, &s);
    CHECK_OK(nnq_node_set_int(&g->nodes[ka], "broadcast", 1));
    CHECK_OK(nnq_node_set_int(&g->nodes[ka], "axis", 1));
    int kc = add_node(g, "concat", "Concat", 2, (int[]){s, s}, 1, &y);
    CHECK_OK(nnq_onnx_upgrade(g));
    const nnq_node *n = &g->nodes[kr];
    CHECK(n->n_attrs == 0 && n->n_inputs == 2);
    if (n->n_inputs == 2) {
        const nnq_tensor *st = &g->values[n->inputs[1]].t;
        CHECK(st->dtype == NNQ_DT_INT64 && dims_are(st, 1, (int64_t[]){3}) && memcmp(st->data, shape, sizeof shape) == 0);
    }
    CHECK(dims_are(&g->values[b].t, 2, (int64_t[]){3, 1}));
    CHECK(nnq_node_attr_int(&g->nodes[kc], "axis", -1) == 1);
    keep_for_checker(g, "reshape_concat");
    float xv[12];
    fill(xv, 12, 5);
    nnq_tensor in = float_tensor(2, dx, xv), out = {0};
    if (run_graph(g, &in, &out)) {
        int bad = 0;
        CHECK(dims_are(&out, 3, dc));
        /* out[i][j][c] = r[i][j % 3][c] + b[j % 3]: two copies along dim 1 */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 6; j++)
                for (int c = 0; c < 2; c++) {
                    float want = xv[i * 6 + (j % 3) * 2 + c] + bv[j % 3];
                    if (nnq_f32(&out)[(i * 6 + j) * 2 + c] != want) bad++;
                }
        CHECK(bad == 0);
        nnq_tensor_release(&out);
    }
    nnq_graph_free(g);
}

/* The import hook: a legacy graph written by nnq's exporter as opset 6
 * comes back upgraded. */
static void test_import_hook(void) {
    int64_t d[2] = {2, 3};
    nnq_graph *g = new_graph("", 6), *g2 = NULL;
    int x = add_input(g, "x", 2, d), y = add_output(g, "y", 2, d);
    int k = add_node(g, "clip", "Clip", 1, &x, 1, &y);
    CHECK_OK(nnq_node_set_float(&g->nodes[k], "min", 0.0f));
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "legacy clip", &g2));
    if (g2) {
        CHECK(nnq_graph_opset(g2) == 11 && g2->nodes[0].n_inputs == 2 && g2->nodes[0].n_attrs == 0);
        nnq_graph_free(g2);
    }
    free(buf);
    nnq_graph_free(g);

    /* A failing rule fails the load, with the file's name in front. */
    g = new_graph("", 7);
    x = add_input(g, "x", 4, (int64_t[]){1, 2, 2, 2});
    y = add_output(g, "y", 4, (int64_t[]){1, 2, 2, 2});
    k = add_bn(g, x, 1, &y);
    CHECK_OK(nnq_node_set_int(&g->nodes[k], "spatial", 0));
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_STATUS(nnq_onnx_load_bytes(buf, len, "legacy.onnx", &g2), NNQ_ERR_UNSUPPORTED);
    CHECK(g2 == NULL && strncmp(nnq_last_error(), "legacy.onnx: ", 13) == 0);
    free(buf);
    nnq_graph_free(g);
}

/* ---- the legacy models of the conformance table ---- */

typedef struct legacy_case {
    const char *dir;
    int opset;
} legacy_case;

static const legacy_case conf_cases[] = {
#define NNQ_CONF_CASE(dir, op, opset, ops) {dir, opset},
#include "conformance_cases.inc"
#undef NNQ_CONF_CASE
};

/* Attributes no opset-11 node of these ops has. */
static bool has_legacy_attr(const nnq_node *n) {
    static const char *const always[] = {"consumed_inputs", "is_test", "spatial", "paddings"};
    for (size_t i = 0; i < sizeof always / sizeof *always; i++)
        if (nnq_node_attr(n, always[i])) return true;
    if (nnq_node_attr(n, "broadcast")) return true; /* Add..Div, Gemm */
    if (strcmp(n->op_type, "Clip") == 0 && (nnq_node_attr(n, "min") || nnq_node_attr(n, "max"))) return true;
    if (strcmp(n->op_type, "Pad") == 0 && (nnq_node_attr(n, "pads") || nnq_node_attr(n, "value"))) return true;
    if (strcmp(n->op_type, "Reshape") == 0 && nnq_node_attr(n, "shape")) return true;
    return false;
}

/* Upgraded on import, exported, imported again (no second upgrade) and run
 * on test_data_set_0: the exported opset-11 model computes the reference. */
static void check_legacy_model(const char *dir) {
    char path[1024], tag[256];
    nnq_graph *g = NULL, *g2 = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, TESTDATA "%s/model.onnx", dir);
    CHECK_OK(nnq_onnx_load(path, &g));
    if (!g) return;
    CHECK(nnq_graph_opset(g) == 11);
    int legacy = 0;
    for (int k = 0; k < g->n_nodes; k++) legacy += has_legacy_attr(&g->nodes[k]);
    CHECK(legacy == 0);
    snprintf(tag, sizeof tag, "%s", dir);
    keep_for_checker(g, tag);
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_OK(nnq_onnx_load_bytes(buf, len, dir, &g2));
    free(buf);
    if (!g2) goto done;
    CHECK(g2->n_nodes == g->n_nodes && nnq_graph_opset(g2) == 11);

    nnq_tensor in[8], want = {0}, got = {0};
    int n_in = 0;
    bool ok = g2->n_inputs <= 8;
    for (int i = 0; ok && i < g2->n_inputs; i++) {
        snprintf(path, sizeof path, TESTDATA "%s/test_data_set_0/input_%d.pb", dir, i);
        ok = nnq_onnx_load_tensor(path, &in[i], NULL) == NNQ_OK;
        if (ok) n_in++;
    }
    snprintf(path, sizeof path, TESTDATA "%s/test_data_set_0/output_0.pb", dir);
    ok = ok && nnq_onnx_load_tensor(path, &want, NULL) == NNQ_OK;
    CHECK(ok);
    if (ok && run_graph(g2, in, &got)) {
        /* float or double (the pytorch-operator cases) */
        bool same = got.dtype == want.dtype && nnq_shape_equal(&got, &want);
        double num = 0, den = 0;
        for (int64_t i = 0, n = nnq_tensor_numel(&want); same && i < n; i++) {
            double a = nnq_tensor_get_float(&got, i), b = nnq_tensor_get_float(&want, i);
            num += (a - b) * (a - b);
            den += b * b;
        }
        bool close = same && num <= 1e-6 * den;
        if (!close) fprintf(stderr, "%s: re-exported model: nmse %g (same dtype/shape %d)\n", dir, num / den, same);
        CHECK(close);
    }
    for (int i = 0; i < n_in; i++) nnq_tensor_release(&in[i]);
    nnq_tensor_release(&want);
    nnq_tensor_release(&got);
done:
    nnq_graph_free(g);
    nnq_graph_free(g2);
}

static void test_legacy_models(void) {
    int n = 0;
    for (size_t i = 0; i < sizeof conf_cases / sizeof *conf_cases; i++) {
        if (conf_cases[i].opset >= NNQ_ONNX_UPGRADE_OPSET) continue;
        check_legacy_model(conf_cases[i].dir);
        n++;
    }
    CHECK(n >= 89); /* every legacy case of the table */
    fprintf(stderr, "upgraded, re-exported and re-ran %d legacy models\n", n);

    /* Facts about particular models. */
    nnq_graph *g = NULL;
    CHECK_OK(nnq_onnx_load(TESTDATA "pytorch-converted/test_PReLU_2d_multiparam/model.onnx", &g));
    if (g) {
        int s = g->nodes[0].inputs[1];
        CHECK(g->values[s].is_initializer && dims_are(&g->values[s].t, 3, (int64_t[]){3, 1, 1}));
        nnq_graph_free(g);
    }
    CHECK_OK(nnq_onnx_load(TESTDATA "pytorch-converted/test_ConstantPad2d/model.onnx", &g));
    if (g) {
        const nnq_node *p = &g->nodes[0];
        CHECK(p->n_inputs == 3 && nnq_i64(&g->values[p->inputs[1]].t)[2] == 3 &&
              nnq_f32(&g->values[p->inputs[2]].t)[0] == 2.0f);
        nnq_graph_free(g);
    }
    CHECK_OK(nnq_onnx_load(TESTDATA "node/test_globalaveragepool/model.onnx", &g));
    CHECK(g && nnq_graph_opset(g) == 11 && g->ir_version == 3);
    nnq_graph_free(g);
}

/* ---- onnx.checker on the exported upgraded models ---- */

static void test_onnx_checker(void) {
    const char *py = python_with_onnx();
    if (!py) {
        fprintf(stderr, "onnx.checker: skipped: python3-onnx not installed\n");
        return;
    }
    CHECK(n_checker_files >= 90);
    size_t cap = 1024;
    for (int i = 0; i < n_checker_files; i++) cap += strlen(checker_files[i]) + 3;
    char *cmd = malloc(cap);
    if (!cmd) return;
    /* Opset 11 and the IR version that goes with it, and valid. */
    int used = snprintf(cmd, cap, "%s -c 'import onnx, sys\n"
                                  "for p in sys.argv[1:]:\n"
                                  "    m = onnx.load(p)\n"
                                  "    v = [o.version for o in m.opset_import if o.domain in (\"\", \"ai.onnx\")]\n"
                                  "    assert v == [11] and m.ir_version >= 6, (p, v, m.ir_version)\n"
                                  "    onnx.checker.check_model(m, full_check=True)\n'",
                        py);
    for (int i = 0; i < n_checker_files; i++)
        used += snprintf(cmd + used, cap - (size_t)used, " '%s'", checker_files[i]);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "onnx.checker rejected an upgraded model (see above)\n");
    else
        fprintf(stderr, "onnx.checker (full_check) accepted %d upgraded models\n", n_checker_files);
    CHECK(rc == 0);
    free(cmd);
}

int main(void) {
    const char *base = getenv("NNQ_TEST_OUT_DIR");
    snprintf(out_dir, sizeof out_dir, "%s/nnq_onnx_upgrade_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(out_dir)) {
        fprintf(stderr, "cannot create a temporary directory; not running onnx.checker\n");
        out_dir[0] = '\0';
    }
    test_consumed_inputs();
    test_modern_untouched();
    test_broadcast_constant();
    test_broadcast_unsqueeze();
    test_broadcast_plain_and_errors();
    test_gemm();
    test_prelu();
    test_batchnorm();
    test_dropout();
    test_clip();
    test_pad();
    test_reshape_concat();
    test_import_hook();
    test_legacy_models();
    if (out_dir[0]) test_onnx_checker();
    for (int i = 0; i < n_checker_files; i++) {
        if (!check_failures_) unlink(checker_files[i]);
        free(checker_files[i]);
    }
    if (out_dir[0] && !check_failures_) rmdir(out_dir);
    return check_finish("test_onnx_upgrade");
}
