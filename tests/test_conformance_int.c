/* ONNX conformance of the integer engine: the QuantizeLinear,
 * DequantizeLinear (with _axis), QLinearConv, QLinearMatMul, ConvInteger
 * and MatMulInteger cases of Debian's libonnx-testdata, lowered to an
 * integer program and run on the engine (INT, with the kernels chosen at
 * run time) and on its float emulation (SIM). Integer outputs must equal
 * the reference exactly; float outputs (DequantizeLinear) too, since
 * s * (q - z) is one float multiply of exact operands.
 *
 * The engine needs constant weights, scales and zero points; the node
 * tests feed everything as graph inputs, so every input but the first is
 * bound as a constant from the data set before lowering (the first, the
 * activation, stays an input). NNQ_ONNX_TESTDATA overrides the data root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/tensor.h"
#include "engine/iprog.h"
#include "onnx/onnx_io.h"

#define DEFAULT_ROOT "/usr/share/libonnx-testdata/data"
#define MAX_FILES 16

static const char *const cases[] = {
    "node/test_quantizelinear",          "node/test_quantizelinear_axis",
    "node/test_dequantizelinear",        "node/test_dequantizelinear_axis",
    "node/test_qlinearconv",             "node/test_qlinearmatmul_2D",
    "node/test_qlinearmatmul_3D",        "node/test_convinteger_with_padding",
    "node/test_convinteger_without_padding", "node/test_basic_convinteger",
    "node/test_matmulinteger",
};

/* Load <dir>/<prefix>_<i>.pb for i = 0.. until one is missing. */
static int load_set(const char *dir, const char *prefix, nnq_tensor *t, char **names) {
    int n = 0;
    for (; n < MAX_FILES; n++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        FILE *fp = fopen(path, "rb");
        if (!fp) break;
        fclose(fp);
        names[n] = NULL;
        if (nnq_onnx_load_tensor(path, &t[n], &names[n]) != NNQ_OK) {
            fprintf(stderr, "%s: %s\n", path, nnq_last_error());
            break;
        }
    }
    return n;
}

/* Graph inputs 1.. become initializers holding the data set's tensors. */
static nnq_status bind_constants(nnq_graph *g, nnq_tensor *in, int n_in) {
    if (n_in != g->n_inputs)
        return nnq_fail(NNQ_ERR_INVALID, "%d input files for %d graph inputs", n_in, g->n_inputs);
    for (int i = 1; i < g->n_inputs; i++) {
        nnq_value *v = &g->values[g->inputs[i]];
        nnq_tensor_release(&v->t);
        NNQ_TRY(nnq_tensor_clone(&v->t, &in[i]));
        v->is_initializer = true;
    }
    g->n_inputs = g->n_inputs > 0 ? 1 : 0;
    return NNQ_OK;
}

static bool same_tensor(const nnq_tensor *a, const nnq_tensor *b, char *why, size_t cap) {
    if (a->dtype != b->dtype || !nnq_shape_equal(a, b)) {
        char sa[64], sb[64];
        snprintf(why, cap, "got %s [%s], want %s [%s]", nnq_dtype_name(a->dtype),
                 nnq_shape_str(a, sa, sizeof sa), nnq_dtype_name(b->dtype),
                 nnq_shape_str(b, sb, sizeof sb));
        return false;
    }
    const int64_t n = nnq_tensor_numel(b);
    for (int64_t i = 0; i < n; i++) {
        const bool fl = b->dtype == NNQ_DT_FLOAT;
        const double x = fl ? nnq_tensor_get_float(a, i) : (double)nnq_tensor_get_int(a, i);
        const double y = fl ? nnq_tensor_get_float(b, i) : (double)nnq_tensor_get_int(b, i);
        if (x != y) {
            snprintf(why, cap, "element %lld: got %g, want %g", (long long)i, x, y);
            return false;
        }
    }
    return true;
}

static void run_case(const char *root, const char *name) {
    char dir[1024], set[1100];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(set, sizeof set, "%s/test_data_set_0", dir);
    char model[1100];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    nnq_graph *g = NULL;
    nnq_iprog *p = NULL;
    nnq_tensor in[MAX_FILES] = {{0}}, out[MAX_FILES] = {{0}};
    char *in_names[MAX_FILES] = {0}, *out_names[MAX_FILES] = {0};
    const int n_in = load_set(set, "input", in, in_names);
    const int n_out = load_set(set, "output", out, out_names);
    CHECK(n_in >= 1 && n_out == 1);
    nnq_status s = nnq_onnx_load(model, &g);
    if (s == NNQ_OK) s = bind_constants(g, in, n_in);
    if (s == NNQ_OK) s = nnq_iprog_prepare_graph(g);
    if (s == NNQ_OK) s = nnq_iprog_lower(g, &p);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: lowering: %s\n", name, nnq_last_error());
        CHECK(!"lowered");
        goto done;
    }
    CHECK(nnq_iprog_float_nodes(p) == 0); /* all integer */
    for (int mode = 0; mode < 2; mode++) {
        nnq_iexec *e = NULL;
        CHECK_OK(nnq_iexec_create(p, mode ? NNQ_ENGINE_SIM : NNQ_ENGINE_INT, 1, &e));
        if (!e) continue;
        s = nnq_iexec_run(e, &in[0]);
        if (s != NNQ_OK) {
            fprintf(stderr, "%s (%s): run: %s\n", name, mode ? "sim" : "int", nnq_last_error());
            CHECK(!"ran");
        } else {
            char why[256];
            const bool ok = same_tensor(nnq_iexec_output(e, 0), &out[0], why, sizeof why);
            if (!ok) fprintf(stderr, "%s (%s): %s\n", name, mode ? "sim" : "int", why);
            CHECK(ok);
        }
        nnq_iexec_free(e);
    }
    fprintf(stderr, "%s: int and sim pass\n", name);
done:
    for (int i = 0; i < MAX_FILES; i++) {
        nnq_tensor_release(&in[i]);
        nnq_tensor_release(&out[i]);
        free(in_names[i]);
        free(out_names[i]);
    }
    nnq_iprog_free(p);
    nnq_graph_free(g);
}

int main(void) {
    const char *root = getenv("NNQ_ONNX_TESTDATA");
    if (!root || !root[0]) root = DEFAULT_ROOT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(root, cases[i]);
    return check_finish("test_conformance_int");
}
