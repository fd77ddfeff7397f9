#define _POSIX_C_SOURCE 200809L /* mkdtemp */
/* Limits on what a file can make nnq do (issue 8): sizes that come from a
 * file are checked before anything is allocated, a clear error names what
 * was wrong, and a message is always one printable line. The malformed
 * files themselves are replayed by test_corpus_replay. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "core/limits.h"
#include "core/tensor.h"
#include "data/idx.h"
#include "ir/graph.h"
#include "ops/executor.h"

static bool printable_line(const char *m) {
    for (; *m; m++)
        if ((unsigned char)*m < 0x20 || *m == 0x7f) return false;
    return true;
}

/* Names from files go into messages; their control bytes must not. */
static void test_messages_are_one_printable_line(void) {
    nnq_fail(NNQ_ERR_INVALID, "node '%s' is bad", "evil\nname\x1b[2J");
    CHECK(printable_line(nnq_last_error()));
    CHECK(strstr(nnq_last_error(), "evil?name?[2J") != NULL);
    nnq_fail_context(NNQ_ERR_INVALID, "loading %s: ", "a\rb.onnx");
    CHECK(printable_line(nnq_last_error()));
    CHECK(strncmp(nnq_last_error(), "loading a?b.onnx: node 'evil", 28) == 0);
}

static int add_value(nnq_graph *g, const char *name, nnq_dtype dt, int rank, const int64_t *dims) {
    int v = -1;
    CHECK_OK(nnq_graph_add_value(g, name, &v));
    CHECK_OK(nnq_tensor_set_shape(&g->values[v].t, dt, rank, dims));
    return v;
}

static int add_const(nnq_graph *g, const char *name, nnq_dtype dt, int rank, const int64_t *dims,
                     const void *data) {
    nnq_tensor t = {0};
    size_t nb = 0;
    int v = -1;
    CHECK_OK(nnq_tensor_alloc(&t, dt, rank, dims));
    CHECK_OK(nnq_tensor_nbytes(&t, &nb));
    if (data) memcpy(t.data, data, nb);
    CHECK_OK(nnq_graph_add_initializer(g, name, &t, &v));
    return v;
}

/* x[1,1,4,4] -> Conv(pads p) -> y. */
static nnq_graph *conv_graph(int64_t pad) {
    nnq_graph *g = nnq_graph_create("conv");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    int64_t xd[4] = {1, 1, 4, 4}, wd[4] = {1, 1, 3, 3};
    int x = add_value(g, "x", NNQ_DT_FLOAT, 4, xd);
    int w = add_const(g, "w", NNQ_DT_FLOAT, 4, wd, NULL);
    int y, node, in[2] = {x, w};
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    CHECK_OK(nnq_graph_add_node(g, "wide_conv", "Conv", "", 2, in, 1, &y, &node));
    int64_t pads[4] = {pad, pad, pad, pad}, ks[2] = {3, 3};
    CHECK_OK(nnq_node_set_ints(&g->nodes[node], "pads", 4, pads));
    CHECK_OK(nnq_node_set_ints(&g->nodes[node], "kernel_shape", 2, ks));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

/* Attributes from a file must not describe a tensor past the size limit:
 * shape inference says so, naming the node, before anything allocates. */
static void test_inferred_shape_over_tensor_limit(void) {
    nnq_graph *g = conv_graph(1);
    CHECK_OK(nnq_graph_prepare(g));
    nnq_graph_free(g);
    g = conv_graph((int64_t)1 << 20); /* 2^21 x 2^21 floats: 16 TiB */
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_LIMIT);
    CHECK(strstr(nnq_last_error(), "wide_conv") != NULL);
    CHECK(strstr(nnq_last_error(), "limit") != NULL);
    nnq_graph_free(g);
}

/* data[4] (a constant) -> Pad(0, after) -> y: folded at prepare. */
static nnq_graph *pad_graph(int64_t after) {
    nnq_graph *g = nnq_graph_create("pad");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    const float d[4] = {1, 2, 3, 4};
    const int64_t pads[2] = {0, after}, dd[1] = {4}, pd[1] = {2};
    int data = add_const(g, "data", NNQ_DT_FLOAT, 1, dd, d);
    int p = add_const(g, "pads", NNQ_DT_INT64, 1, pd, pads);
    int y, in[2] = {data, p};
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    CHECK_OK(nnq_graph_add_node(g, "unfold_pad", "Pad", "", 2, in, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

/* Constant folding makes data the file did not hold: a few bytes of Pad
 * may not unfold past NNQ_FOLD_FREE_BYTES + NNQ_FOLD_GROWTH x the
 * constants, even below the per-tensor limit. */
static void test_constant_folding_limit(void) {
    /* Within the budget: folded, the output holds data. */
    nnq_graph *g = pad_graph(1000);
    CHECK_OK(nnq_graph_prepare(g));
    int y = nnq_graph_find_value(g, "y");
    CHECK(g->values[y].t.data != NULL && nnq_tensor_numel(&g->values[y].t) == 1004);
    CHECK(nnq_f32(&g->values[y].t)[3] == 4.0f && nnq_f32(&g->values[y].t)[1003] == 0.0f);
    nnq_graph_free(g);
    /* 32 MiB from 48 bytes of constants: refused, naming the node. */
    int64_t after = (int64_t)(NNQ_FOLD_FREE_BYTES * 2 / sizeof(float));
    g = pad_graph(after);
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_LIMIT);
    CHECK(strstr(nnq_last_error(), "unfold_pad") != NULL);
    CHECK(strstr(nnq_last_error(), "folding") != NULL);
    nnq_graph_free(g);
}

/* An empty name omits an optional output; a required one (Relu's Y) must
 * be named, or ops would write through a missing tensor. */
static void test_required_output_must_be_named(void) {
    nnq_graph *g = nnq_graph_create("unnamed");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    int64_t xd[1] = {4};
    int x = add_value(g, "x", NNQ_DT_FLOAT, 1, xd), none = -1;
    CHECK_OK(nnq_graph_add_node(g, "relu_nowhere", "Relu", "", 1, &x, 1, &none, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "relu_nowhere") != NULL);
    CHECK(strstr(nnq_last_error(), "required output") != NULL);
    nnq_graph_free(g);
}

/* The topological sort keeps its sweep order (each sweep takes ready
 * nodes in index order) without rescanning every node per sweep, so a
 * file's node count does not make it quadratic. */
static void test_toposort_order_and_scale(void) {
    /* n0 reads what n1 makes; n1 and n2 are ready: a sweep takes n1, n2,
     * and n0 only in the next sweep. */
    nnq_graph *g = nnq_graph_create("sweeps");
    int x, a, b, c;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_graph_add_value(g, "a", &a));
    CHECK_OK(nnq_graph_add_value(g, "b", &b));
    CHECK_OK(nnq_graph_add_value(g, "c", &c));
    CHECK_OK(nnq_graph_add_node(g, "n0", "Relu", "", 1, &a, 1, &b, NULL));
    CHECK_OK(nnq_graph_add_node(g, "n1", "Relu", "", 1, &x, 1, &a, NULL));
    CHECK_OK(nnq_graph_add_node(g, "n2", "Relu", "", 1, &x, 1, &c, NULL));
    CHECK_OK(nnq_graph_toposort(g));
    CHECK(strcmp(g->nodes[0].name, "n1") == 0);
    CHECK(strcmp(g->nodes[1].name, "n2") == 0);
    CHECK(strcmp(g->nodes[2].name, "n0") == 0);
    CHECK(g->values[b].producer == 2);
    nnq_graph_free(g);

    /* A long chain stored backwards: one node per sweep. */
    enum { N = 5000 };
    char name[32];
    g = nnq_graph_create("backwards");
    int *v = malloc(sizeof(int) * (N + 1));
    for (int i = 0; i <= N; i++) {
        snprintf(name, sizeof name, "v%d", i);
        CHECK_OK(nnq_graph_add_value(g, name, &v[i]));
    }
    for (int i = N - 1; i >= 0; i--)
        CHECK_OK(nnq_graph_add_node(g, "", "Relu", "", 1, &v[i], 1, &v[i + 1], NULL));
    CHECK_OK(nnq_graph_add_input(g, v[0]));
    CHECK_OK(nnq_graph_add_output(g, v[N]));
    CHECK_OK(nnq_graph_toposort(g));
    bool chain = true;
    for (int i = 0; i < N; i++) chain = chain && g->nodes[i].inputs[0] == v[i];
    CHECK(chain);
    CHECK_OK(nnq_graph_verify(g));
    free(v);
    nnq_graph_free(g);
}

/* A gzip IDX file of a few dozen bytes that claims 3.75 GiB (under the
 * tensor limit, so the size check passes) is refused as truncated, with no
 * tensor: the reader grows its buffer with the data that really arrives
 * (from 1 MiB) instead of trusting the header. */
static void test_idx_gzip_claim(void) {
    char dir[] = "/tmp/nnq_limits_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/claim.idx.gz", dir);
    const unsigned char hdr[8] = {0, 0, 0x08, 0x01, 0xF0, 0, 0, 0};
    gzFile f = gzopen(path, "wb");
    CHECK(f != NULL);
    CHECK(gzwrite(f, hdr, sizeof hdr) == (int)sizeof hdr);
    CHECK(gzwrite(f, "0123456789", 10) == 10);
    gzclose(f);
    nnq_tensor t;
    CHECK_STATUS(nnq_idx_read(path, &t), NNQ_ERR_PARSE);
    CHECK(strstr(nnq_last_error(), "truncated") != NULL);
    CHECK(t.data == NULL);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_messages_are_one_printable_line();
    test_inferred_shape_over_tensor_limit();
    test_constant_folding_limit();
    test_required_output_must_be_named();
    test_toposort_order_and_scale();
    test_idx_gzip_claim();
    return check_finish("test_limits");
}
