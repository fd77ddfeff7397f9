#define _POSIX_C_SOURCE 200809L /* mkdtemp */
/* Graph IR: construction, topological order, verification, cloning, and
 * the core helpers underneath (tensors, half floats, atomic writes). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/tensor.h"
#include "ir/graph.h"

/* x -> Relu(a) -> Add(b, x) -> y, with nodes appended in reverse order. */
static nnq_graph *make_reversed_chain(void) {
    nnq_graph *g = nnq_graph_create("chain");
    int x, a, y, w;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_graph_add_value(g, "a", &a));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    nnq_tensor t = {0};
    int64_t d[1] = {4};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 1, d));
    CHECK_OK(nnq_graph_add_initializer(g, "w", &t, &w));
    CHECK(t.data == NULL); /* ownership moved */
    int add_in[2] = {a, w}, relu_in[1] = {x};
    CHECK_OK(nnq_graph_add_node(g, "add", "Add", "", 2, add_in, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_node(g, "relu", "Relu", "", 1, relu_in, 1, &a, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

static void test_toposort_and_verify(void) {
    nnq_graph *g = make_reversed_chain();
    /* Unsorted: the verifier must see the read-before-write. */
    CHECK_STATUS(nnq_graph_verify(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "add") != NULL);
    CHECK_OK(nnq_graph_toposort(g));
    CHECK(strcmp(g->nodes[0].op_type, "Relu") == 0);
    CHECK(strcmp(g->nodes[1].op_type, "Add") == 0);
    CHECK(g->values[nnq_graph_find_value(g, "y")].producer == 1);
    CHECK_OK(nnq_graph_verify(g));
    CHECK(nnq_graph_param_count(g) == 4);
    nnq_graph_free(g);
}

static void test_cycle_is_named(void) {
    nnq_graph *g = nnq_graph_create("cycle");
    int x, a, b;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_graph_add_value(g, "a", &a));
    CHECK_OK(nnq_graph_add_value(g, "b", &b));
    int in1[2] = {x, b}, in2[1] = {a};
    CHECK_OK(nnq_graph_add_node(g, "first", "Add", "", 2, in1, 1, &a, NULL));
    CHECK_OK(nnq_graph_add_node(g, "second", "Relu", "", 1, in2, 1, &b, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, b));
    CHECK_STATUS(nnq_graph_toposort(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "first") != NULL);
    CHECK(strstr(nnq_last_error(), "cycle") != NULL);
    nnq_graph_free(g);
}

static void test_verify_rejects(void) {
    /* A value produced twice. */
    nnq_graph *g = nnq_graph_create("dup");
    int x, y;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    CHECK_OK(nnq_graph_add_node(g, "r1", "Relu", "", 1, &x, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_node(g, "r2", "Relu", "", 1, &x, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    CHECK_STATUS(nnq_graph_verify(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "r2") != NULL);
    nnq_graph_free(g);

    /* A read of a value nobody defines. */
    g = nnq_graph_create("undef");
    int ghost;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_graph_add_value(g, "ghost", &ghost));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    int in[2] = {x, ghost};
    CHECK_OK(nnq_graph_add_node(g, "adder", "Add", "", 2, in, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    CHECK_STATUS(nnq_graph_verify(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "ghost") != NULL);
    CHECK(strstr(nnq_last_error(), "adder") != NULL);
    nnq_graph_free(g);

    /* Duplicate value names are refused at construction. */
    g = nnq_graph_create("names");
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_STATUS(nnq_graph_add_value(g, "x", &y), NNQ_ERR_INVALID);
    nnq_graph_free(g);
}

static void test_attributes_and_clone(void) {
    nnq_graph *g = make_reversed_chain();
    CHECK_OK(nnq_graph_toposort(g));
    nnq_node *n = &g->nodes[0];
    int64_t pads[4] = {1, 2, 3, 4};
    float fl[2] = {0.5f, -1.25f};
    CHECK_OK(nnq_node_set_int(n, "axis", -1));
    CHECK_OK(nnq_node_set_float(n, "alpha", 0.1f));
    CHECK_OK(nnq_node_set_string(n, "auto_pad", "SAME_UPPER"));
    CHECK_OK(nnq_node_set_ints(n, "pads", 4, pads));
    CHECK_OK(nnq_node_set_floats(n, "scales", 2, fl));
    CHECK_OK(nnq_node_set_int(n, "axis", 2)); /* replaces, not appends */
    CHECK(n->n_attrs == 5);
    CHECK(nnq_node_attr_int(n, "axis", 0) == 2);
    CHECK(nnq_node_attr_int(n, "missing", 7) == 7);
    CHECK(nnq_node_attr_float(n, "alpha", 0) == 0.1f);
    CHECK(strcmp(nnq_node_attr_string(n, "auto_pad", "NOTSET"), "SAME_UPPER") == 0);
    const int64_t *p;
    CHECK(nnq_node_attr_ints(n, "pads", &p) == 4 && p[3] == 4);
    CHECK(nnq_node_attr_ints(n, "alpha", &p) == 0 && p == NULL); /* wrong type */

    nnq_graph *c = NULL;
    CHECK_OK(nnq_graph_clone(g, &c));
    CHECK(c && c->n_nodes == g->n_nodes && c->n_values == g->n_values);
    CHECK(c->nodes[0].n_attrs == 5);
    CHECK(nnq_node_attr_ints(&c->nodes[0], "pads", &p) == 4 && p[2] == 3);
    int w = nnq_graph_find_value(c, "w");
    CHECK(w >= 0 && c->values[w].is_initializer && c->values[w].t.data != NULL);
    CHECK(c->values[w].t.data != g->values[w].t.data); /* deep */
    CHECK_OK(nnq_graph_verify(c));
    nnq_graph_free(c);
    nnq_graph_free(g);
}

static void test_tensor_helpers(void) {
    int64_t d[3] = {2, 3, 4};
    nnq_tensor t = {0};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_INT32, 3, d));
    CHECK(nnq_tensor_numel(&t) == 24);
    char buf[64];
    CHECK(strcmp(nnq_shape_str(&t, buf, sizeof buf), "2x3x4") == 0);
    nnq_tensor_release(&t);
    int64_t huge[3] = {INT64_MAX / 2, 4, 1};
    CHECK(nnq_shape_numel(3, huge) == -1); /* overflow detected */
    nnq_tensor big = {0};
    int64_t bd[2] = {1 << 20, 1 << 20};
    CHECK_STATUS(nnq_tensor_alloc(&big, NNQ_DT_FLOAT, 2, bd), NNQ_ERR_LIMIT);
    int64_t dd[9] = {0};
    CHECK_STATUS(nnq_tensor_set_shape(&big, NNQ_DT_FLOAT, 9, dd), NNQ_ERR_LIMIT);
    /* Half floats: exact values round trip; rounding is to nearest even. */
    float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        CHECK(nnq_half_to_float(nnq_float_to_half(vals[i])) == vals[i]);
    CHECK(nnq_float_to_half(1.0f + 1.0f / 2048) == 0x3c00); /* tie → even */
    CHECK(nnq_float_to_half(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(nnq_float_to_half(1e6f) == 0x7c00);                /* overflow → inf */
}

static void test_atomic_write(void) {
    char dir[] = "/tmp/nnq_test_ir_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    CHECK_OK(nnq_write_file_atomic(path, "hello", 5));
    unsigned char *buf;
    size_t len;
    CHECK_OK(nnq_read_file(path, 100, &buf, &len));
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    free(buf);
    CHECK_STATUS(nnq_read_file(path, 4, &buf, &len), NNQ_ERR_LIMIT);
    /* An aborted write leaves the old file intact and no temp file behind. */
    nnq_atomic_file w;
    CHECK_OK(nnq_atomic_open(&w, path));
    fputs("partial", w.fp);
    nnq_atomic_abort(&w);
    CHECK_OK(nnq_read_file(path, 100, &buf, &len));
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    free(buf);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", dir);
    CHECK(system(cmd) == 0);
    CHECK_STATUS(nnq_read_file("/nonexistent/nnq", 10, &buf, &len), NNQ_ERR_IO);
    CHECK(strstr(nnq_last_error(), "/nonexistent/nnq") != NULL);
    /* Writing into a missing directory fails cleanly. */
    CHECK_STATUS(nnq_write_file_atomic("/nonexistent/dir/x", "a", 1), NNQ_ERR_IO);
    unlink(path);
    rmdir(dir);
}

/* The name index stays right through growth, renames and pruning: every
 * value is found under its current name and nowhere else. */
static void test_name_index(void) {
    nnq_graph *g = nnq_graph_create("names");
    enum { N = 5000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        int v;
        snprintf(name, sizeof name, "v%d", i);
        CHECK_OK(nnq_graph_add_value(g, name, &v));
        CHECK(v == i);
    }
    CHECK_STATUS(nnq_graph_add_value(g, "v17", NULL), NNQ_ERR_INVALID);
    int hits = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "v%d", i);
        hits += nnq_graph_find_value(g, name) == i;
    }
    CHECK(hits == N);
    CHECK(nnq_graph_find_value(g, "v5000") < 0);
    CHECK(nnq_graph_find_value(g, "") < 0);

    CHECK_OK(nnq_graph_rename_value(g, 3, "three"));
    CHECK(nnq_graph_find_value(g, "three") == 3);
    CHECK(nnq_graph_find_value(g, "v3") < 0);
    CHECK_STATUS(nnq_graph_rename_value(g, 4, "three"), NNQ_ERR_INVALID);
    CHECK_OK(nnq_graph_add_value(g, "v3", NULL)); /* the old name is free again */

    /* Keep only the values a node or the graph uses: v10 -> Relu -> three. */
    int in = nnq_graph_find_value(g, "v10"), out = 3;
    CHECK_OK(nnq_graph_add_node(g, "r", "Relu", "", 1, &in, 1, &out, NULL));
    CHECK_OK(nnq_graph_add_input(g, in));
    CHECK_OK(nnq_graph_add_output(g, out));
    int removed = 0;
    CHECK_OK(nnq_graph_prune_values(g, &removed));
    CHECK(removed == N - 1);
    CHECK(g->n_values == 2);
    CHECK(nnq_graph_find_value(g, "v10") == g->inputs[0]);
    CHECK(nnq_graph_find_value(g, "three") == g->outputs[0]);
    CHECK(nnq_graph_find_value(g, "v11") < 0);
    CHECK_OK(nnq_graph_add_value(g, "v11", NULL));
    CHECK(nnq_graph_find_value(g, "v11") == 2);
    nnq_graph_free(g);
}

int main(void) {
    test_name_index();
    test_toposort_and_verify();
    test_cycle_is_named();
    test_verify_rejects();
    test_attributes_and_clone();
    test_tensor_helpers();
    test_atomic_write();
    return check_finish("test_ir");
}
