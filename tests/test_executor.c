/* The float executor: arena planning must never let a value be overwritten
 * while it is still needed, re-planning on a new batch size must give the
 * same numbers, constants fold, and bad inputs fail with a clear status. */
#include <string.h>

#include "check.h"
#include "ir/graph.h"
#include "ops/executor.h"

/* y = Reshape((relu(x) + x) * (relu(x) + x) + relu(x), Constant([-1, 48]))
 * Several values stay live across nodes, so a wrong lifetime in the
 * planner corrupts the result. */
static nnq_graph *make_graph(void) {
    nnq_graph *g = nnq_graph_create("exec");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    int x, a, b, c, d, shape, y;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    int64_t dims[4] = {-1, 3, 4, 4};
    CHECK_OK(nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 4, dims));
    CHECK_OK(nnq_graph_add_value(g, "a", &a));
    CHECK_OK(nnq_graph_add_value(g, "b", &b));
    CHECK_OK(nnq_graph_add_value(g, "c", &c));
    CHECK_OK(nnq_graph_add_value(g, "d", &d));
    CHECK_OK(nnq_graph_add_value(g, "shape", &shape));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    int ab[2] = {a, x}, bb[2] = {b, b}, ca[2] = {c, a}, ds[2] = {d, shape};
    int node;
    CHECK_OK(nnq_graph_add_node(g, "shape_const", "Constant", "", 0, NULL, 1, &shape, &node));
    nnq_tensor *st = calloc(1, sizeof *st);
    int64_t sd[1] = {2};
    CHECK_OK(nnq_tensor_alloc(st, NNQ_DT_INT64, 1, sd));
    nnq_i64(st)[0] = -1;
    nnq_i64(st)[1] = 48;
    CHECK_OK(nnq_node_set_tensor(&g->nodes[node], "value", st));
    CHECK_OK(nnq_graph_add_node(g, "relu", "Relu", "", 1, &x, 1, &a, NULL));
    CHECK_OK(nnq_graph_add_node(g, "add1", "Add", "", 2, ab, 1, &b, NULL));
    CHECK_OK(nnq_graph_add_node(g, "square", "Mul", "", 2, bb, 1, &c, NULL));
    CHECK_OK(nnq_graph_add_node(g, "add2", "Add", "", 2, ca, 1, &d, NULL));
    CHECK_OK(nnq_graph_add_node(g, "flat", "Reshape", "", 2, ds, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

static float expected(float x) {
    float r = x > 0 ? x : 0;
    return (r + x) * (r + x) + r;
}

static void fill(float *p, int n, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static void run_batch(nnq_exec *e, int batch, bool keep_all, const nnq_graph *g) {
    float *in = malloc(sizeof(float) * (size_t)batch * 48);
    fill(in, batch * 48, (unsigned)batch);
    nnq_tensor t = {0};
    int64_t dims[4] = {batch, 3, 4, 4};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_FLOAT, 4, dims));
    t.data = in;
    CHECK_OK(nnq_exec_run(e, &t));
    const nnq_tensor *y = nnq_exec_output(e, 0);
    CHECK(y->rank == 2 && y->dims[0] == batch && y->dims[1] == 48);
    int bad = 0;
    for (int i = 0; i < batch * 48; i++)
        if (nnq_f32(y)[i] != expected(in[i])) bad++;
    CHECK(bad == 0);
    if (keep_all) { /* every intermediate is still intact after the run */
        const nnq_tensor *a = nnq_exec_value(e, nnq_graph_find_value(g, "a"));
        const nnq_tensor *b = nnq_exec_value(e, nnq_graph_find_value(g, "b"));
        int bad_ab = 0;
        for (int i = 0; i < batch * 48; i++) {
            float r = in[i] > 0 ? in[i] : 0;
            if (nnq_f32(a)[i] != r || nnq_f32(b)[i] != r + in[i]) bad_ab++;
        }
        CHECK(bad_ab == 0);
    }
    free(in);
}

static void test_runs(bool keep_all) {
    nnq_graph *g = make_graph();
    CHECK_OK(nnq_graph_prepare(g));
    /* The Constant was folded into data. */
    CHECK(g->values[nnq_graph_find_value(g, "shape")].t.data != NULL);
    nnq_exec *e = NULL;
    nnq_exec_options opt = {.threads = 2, .keep_all = keep_all};
    CHECK_OK(nnq_exec_create(g, &opt, &e));
    run_batch(e, 2, keep_all, g);
    run_batch(e, 7, keep_all, g); /* re-plan: bigger arena */
    run_batch(e, 1, keep_all, g); /* re-plan: smaller */
    run_batch(e, 1, keep_all, g); /* same plan reused */
    nnq_exec_free(e);
    nnq_graph_free(g);
}

static void test_bad_inputs(void) {
    nnq_graph *g = make_graph();
    CHECK_OK(nnq_graph_prepare(g));
    nnq_exec *e = NULL;
    CHECK_OK(nnq_exec_create(g, NULL, &e));
    float buf[3 * 5 * 4] = {0};
    nnq_tensor t = {0};
    int64_t wrong[4] = {1, 3, 5, 4};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_FLOAT, 4, wrong));
    t.data = buf;
    CHECK_STATUS(nnq_exec_run(e, &t), NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "'x'") != NULL && strstr(nnq_last_error(), "1x3x5x4") != NULL);
    int64_t rank3[3] = {3, 4, 4};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_FLOAT, 3, rank3));
    CHECK_STATUS(nnq_exec_run(e, &t), NNQ_ERR_SHAPE);
    int64_t ok[4] = {1, 3, 4, 4};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_INT32, 4, ok));
    CHECK_STATUS(nnq_exec_run(e, &t), NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "float32") != NULL);
    nnq_exec_free(e);
    nnq_graph_free(g);
}

static void test_unknown_op_named(void) {
    nnq_graph *g = nnq_graph_create("unknown");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    int x, y;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    int64_t d[1] = {4};
    CHECK_OK(nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 1, d));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    CHECK_OK(nnq_graph_add_node(g, "my_node", "FancyOp", "", 1, &x, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "FancyOp") && strstr(nnq_last_error(), "my_node"));
    nnq_graph_free(g);

    /* Wrong arity names the node too. */
    g = nnq_graph_create("arity");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 1, d));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    CHECK_OK(nnq_graph_add_node(g, "lonely_add", "Add", "", 1, &x, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "lonely_add") != NULL);
    nnq_graph_free(g);
}

/* A constant float value of the given shape, filled from seed times scale. */
static int add_const(nnq_graph *g, const char *name, int rank, const int64_t *dims,
                     unsigned seed, float scale) {
    int v;
    CHECK_OK(nnq_graph_add_value(g, name, &v));
    g->values[v].is_initializer = true;
    nnq_tensor *t = &g->values[v].t;
    CHECK_OK(nnq_tensor_alloc(t, NNQ_DT_FLOAT, rank, dims));
    int n = (int)nnq_tensor_numel(t);
    fill(nnq_f32(t), n, seed);
    for (int i = 0; i < n; i++) nnq_f32(t)[i] *= scale;
    return v;
}

/* x -> Conv -> c1 -> Clip(0, 6) -> a1 -> Conv (stride 2) -> c2 -> Relu -> y:
 * both activations can run in their Conv's epilogue. */
static nnq_graph *make_fusion_graph(void) {
    nnq_graph *g = nnq_graph_create("fuse");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    int x, c1, a1, c2, y;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    int64_t xd[4] = {-1, 3, 8, 8}, w1d[4] = {4, 3, 3, 3}, w2d[4] = {5, 4, 3, 3};
    int64_t b1d[1] = {4}, b2d[1] = {5}, sd[1] = {1};
    CHECK_OK(nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 4, xd));
    /* scaled so that Clip cuts at both ends */
    int w1 = add_const(g, "w1", 4, w1d, 11, 3.0f), b1 = add_const(g, "b1", 1, b1d, 12, 1.0f);
    int w2 = add_const(g, "w2", 4, w2d, 13, 1.0f), b2 = add_const(g, "b2", 1, b2d, 14, 1.0f);
    int lo = add_const(g, "lo", 1, sd, 15, 0.0f), hi = add_const(g, "hi", 1, sd, 16, 0.0f);
    nnq_f32(&g->values[hi].t)[0] = 6.0f;
    CHECK_OK(nnq_tensor_set_shape(&g->values[lo].t, NNQ_DT_FLOAT, 0, sd));
    CHECK_OK(nnq_tensor_set_shape(&g->values[hi].t, NNQ_DT_FLOAT, 0, sd));
    CHECK_OK(nnq_graph_add_value(g, "c1", &c1));
    CHECK_OK(nnq_graph_add_value(g, "a1", &a1));
    CHECK_OK(nnq_graph_add_value(g, "c2", &c2));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    int in1[3] = {x, w1, b1}, clip_in[3] = {c1, lo, hi}, in2[3] = {a1, w2, b2};
    int n1, n2;
    int64_t pads[4] = {1, 1, 1, 1}, strides[2] = {2, 2};
    CHECK_OK(nnq_graph_add_node(g, "conv1", "Conv", "", 3, in1, 1, &c1, &n1));
    CHECK_OK(nnq_node_set_ints(&g->nodes[n1], "pads", 4, pads));
    CHECK_OK(nnq_graph_add_node(g, "clip", "Clip", "", 3, clip_in, 1, &a1, NULL));
    CHECK_OK(nnq_graph_add_node(g, "conv2", "Conv", "", 3, in2, 1, &c2, &n2));
    CHECK_OK(nnq_node_set_ints(&g->nodes[n2], "pads", 4, pads));
    CHECK_OK(nnq_node_set_ints(&g->nodes[n2], "strides", 2, strides));
    CHECK_OK(nnq_graph_add_node(g, "relu", "Relu", "", 1, &c2, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

/* Fused inference gives the same bits as the unfused keep_all run, and
 * the Conv outputs an activation consumed get no arena space. */
static void test_fusion(void) {
    nnq_graph *g = make_fusion_graph();
    CHECK_OK(nnq_graph_prepare(g));
    const int batch = 3, n_in = batch * 3 * 64;
    float *in = malloc(sizeof(float) * (size_t)n_in);
    fill(in, n_in, 7);
    nnq_tensor t = {0};
    int64_t dims[4] = {batch, 3, 8, 8};
    CHECK_OK(nnq_tensor_set_shape(&t, NNQ_DT_FLOAT, 4, dims));
    t.data = in;
    nnq_exec *ef = NULL, *ek = NULL;
    nnq_exec_options of = {.threads = 2, .keep_all = false}, ok = {.threads = 2, .keep_all = true};
    CHECK_OK(nnq_exec_create(g, &of, &ef));
    CHECK_OK(nnq_exec_create(g, &ok, &ek));
    CHECK_OK(nnq_exec_run(ef, &t));
    CHECK_OK(nnq_exec_run(ek, &t));
    const nnq_tensor *yf = nnq_exec_output(ef, 0), *yk = nnq_exec_output(ek, 0);
    CHECK(nnq_tensor_numel(yf) == batch * 5 * 16 && nnq_tensor_numel(yk) == batch * 5 * 16);
    CHECK(memcmp(yf->data, yk->data, sizeof(float) * (size_t)nnq_tensor_numel(yf)) == 0);
    /* The activations did cut (else the test would not tell). */
    const nnq_tensor *a1 = nnq_exec_value(ek, nnq_graph_find_value(g, "a1"));
    int at_lo = 0, at_hi = 0, zeros = 0;
    for (int64_t i = 0; i < nnq_tensor_numel(a1); i++) {
        at_lo += nnq_f32(a1)[i] == 0.0f;
        at_hi += nnq_f32(a1)[i] == 6.0f;
    }
    for (int64_t i = 0; i < nnq_tensor_numel(yk); i++) zeros += nnq_f32(yk)[i] == 0.0f;
    CHECK(at_lo > 0 && at_hi > 0 && zeros > 0);
    /* Fused: c1 and c2 never got a buffer; keep_all: every value has one. */
    int c1 = nnq_graph_find_value(g, "c1"), c2 = nnq_graph_find_value(g, "c2");
    CHECK(nnq_exec_value(ef, c1)->data == NULL && nnq_exec_value(ef, c2)->data == NULL);
    CHECK(nnq_exec_value(ek, c1)->data != NULL && nnq_exec_value(ek, c2)->data != NULL);
    /* The fused run repeated on the same plan gives the same bits. */
    CHECK_OK(nnq_exec_run(ef, &t));
    CHECK(memcmp(nnq_exec_output(ef, 0)->data, yk->data,
                 sizeof(float) * (size_t)nnq_tensor_numel(yk)) == 0);
    nnq_exec_free(ef);
    nnq_exec_free(ek);
    nnq_graph_free(g);
    free(in);
}

int main(void) {
    test_runs(false);
    test_runs(true);
    test_bad_inputs();
    test_unknown_op_named();
    test_fusion();
    return check_finish("test_executor");
}
