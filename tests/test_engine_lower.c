/* The integer engine's lowering and its two executors (engine/iprog.h).
 *
 *  1. Patterns: a float graph with conv + Relu, conv + Relu + per-channel
 *     Min cap (CLE's ReLU6), depthwise conv + Clip(0, 6), grouped conv,
 *     Add + Relu, Concat, MaxPool, AveragePool (pads, both count modes),
 *     GlobalAveragePool, Flatten, Gemm, quantized by nnq's simulation and
 *     exported as QDQ at W8A8, W4A8 (packed nibbles), W8A4 (Clip before
 *     each Q) and W8A8 with signed int8 activations. Each lowers with no
 *     float node; INT and SIM outputs are identical bytes; INT with the
 *     reference kernels (NNQ_KERNELS=ref) equals INT with AVX2; INT is
 *     close to the float execution of the QDQ graph (nmse, top-1).
 *  2. Fallback: a Softmax between DQ and Q cannot be lowered: the note
 *     names it, the program still runs it (in float) and matches.
 *  3. Other tools' QDQ: uint8 weights with zero points, per-tensor weight
 *     scales, int8 activations, Gemm without transB and MatMul (ONNX
 *     Runtime's quantize_static layout): the reference path, INT == SIM.
 *  4. .nnqi files: load(save(p)) gives identical outputs; truncated,
 *     bit-flipped and lying (huge count, valid CRC) files are refused.
 *  5. The PyTorch fixture models quantized W8A8 (min-max, 128 calibration
 *     images): INT == SIM on 256 test images, top-1 agreement with the
 *     float QDQ execution >= 99% (under sanitizers: 32 and 48 images).
 *  6. The AVX2 elementwise loops (table lookup, add) equal the scalar rule
 *     on random tables, parameters at their limits and every length. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "core/fileio.h"
#include "core/qmath.h"
#include "data/dataset.h"
#include "engine/cpu.h"
#include "engine/iprog.h"
#include "engine/iprog_impl.h"
#include "models/builder.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "quant/qdq_export.h"
#include "quant/qsim.h"

/* ---- helpers ---- */

static uint64_t rng = 0x243f6a8885a308d3ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

static nnq_dataset random_data(int64_t n, int c, int h, int w) {
    nnq_dataset d = {0};
    d.n = n, d.c = c, d.h = h, d.w = w;
    d.images = malloc(sizeof(float) * (size_t)(n * c * h * w));
    for (int64_t i = 0; i < n * c * h * w; i++) d.images[i] = (float)(urand() * 4.0 - 1.5);
    return d;
}

/* A node appended by hand to the builder's graph; its output gets the
 * shape given (the builder checks channels of the next conv). */
static int add_node(nnq_builder *b, const char *op, int n_in, const int *in, int rank,
                    const int64_t *dims, int *node) {
    static int k = 0;
    char name[64];
    snprintf(name, sizeof name, "%s_t%d", op, k++);
    int y = -1;
    if (nnq_graph_add_value(b->g, name, &y) != NNQ_OK) return -1;
    if (nnq_graph_add_node(b->g, name, op, "", n_in, in, 1, &y, node) != NNQ_OK) return -1;
    nnq_tensor_set_shape(&b->g->values[y].t, NNQ_DT_FLOAT, rank, dims);
    return y;
}

static int add_const(nnq_builder *b, const char *name, int rank, const int64_t *dims,
                     const float *v) {
    nnq_tensor t = {0};
    nnq_tensor_alloc(&t, NNQ_DT_FLOAT, rank, dims);
    memcpy(t.data, v, sizeof(float) * (size_t)nnq_tensor_numel(&t));
    int out = -1;
    nnq_graph_add_initializer(b->g, name, &t, &out);
    return out;
}

static void randomize_biases(nnq_graph *g) {
    for (int v = 0; v < g->n_values; v++) {
        nnq_value *val = &g->values[v];
        if (!val->is_initializer || !strstr(val->name, ".bias")) continue;
        for (int64_t i = 0; i < nnq_tensor_numel(&val->t); i++)
            nnq_f32(&val->t)[i] = (float)(urand() - 0.5);
    }
}

/* The pattern graph of part 1 (with_softmax: part 2's fallback). */
static nnq_graph *pattern_graph(bool with_softmax) {
    nnq_builder b;
    nnq_builder_init(&b, "patterns", 13, 7);
    int x = nnq_build_input(&b, "input", 3, 12, 12);
    int c1 = nnq_build_conv(&b, x, "c1", 3, 8, 3, 1, 1, 1, true);
    c1 = nnq_build_act(&b, c1, NNQ_ACT_RELU);
    float cap[8];
    for (int i = 0; i < 8; i++) cap[i] = 0.5f + 0.4f * (float)i;
    const int64_t cdims[3] = {8, 1, 1}, d12[4] = {-1, 8, 12, 12};
    int node;
    int min_in[2] = {c1, add_const(&b, "c1.cap", 3, cdims, cap)};
    c1 = add_node(&b, "Min", 2, min_in, 4, d12, &node);
    int c2 = nnq_build_conv(&b, c1, "c2", 8, 8, 3, 2, 1, 8, true); /* depthwise, stride 2 */
    c2 = nnq_build_act(&b, c2, NNQ_ACT_RELU6);
    int c3 = nnq_build_conv(&b, c2, "c3", 8, 12, 1, 1, 0, 2, true); /* grouped */
    int c4 = nnq_build_conv(&b, c2, "c4", 8, 12, 3, 1, 1, 1, true);
    c4 = nnq_build_act(&b, c4, NNQ_ACT_RELU);
    int a = nnq_build_add(&b, c3, c4);
    a = nnq_build_act(&b, a, NNQ_ACT_RELU);
    const int64_t d24[4] = {-1, 24, 6, 6}, d24s[4] = {-1, 24, 3, 3};
    int cat_in[2] = {a, c4};
    int cat = add_node(&b, "Concat", 2, cat_in, 4, d24, &node);
    nnq_node_set_int(&b.g->nodes[node], "axis", 1);
    int mp = nnq_build_maxpool(&b, cat, 2, 1); /* 6x6 -> 5x5 */
    int ap = add_node(&b, "AveragePool", 1, &mp, 4, d24s, &node);
    const int64_t k3[2] = {3, 3}, s2[2] = {2, 2}, p1[4] = {1, 1, 1, 1};
    nnq_node_set_ints(&b.g->nodes[node], "kernel_shape", 2, k3);
    nnq_node_set_ints(&b.g->nodes[node], "strides", 2, s2);
    nnq_node_set_ints(&b.g->nodes[node], "pads", 4, p1);
    int ap2 = add_node(&b, "AveragePool", 1, &mp, 4, d24s, &node);
    nnq_node_set_ints(&b.g->nodes[node], "kernel_shape", 2, k3);
    nnq_node_set_ints(&b.g->nodes[node], "strides", 2, s2);
    nnq_node_set_ints(&b.g->nodes[node], "pads", 4, p1);
    nnq_node_set_int(&b.g->nodes[node], "count_include_pad", 1);
    int add2 = nnq_build_add(&b, ap, ap2);
    int c5 = nnq_build_conv(&b, add2, "c5", 24, 16, 1, 1, 0, 1, true);
    c5 = nnq_build_act(&b, c5, NNQ_ACT_RELU);
    if (with_softmax) {
        const int64_t d16[4] = {-1, 16, 3, 3};
        c5 = add_node(&b, "Softmax", 1, &c5, 4, d16, &node);
        nnq_node_set_int(&b.g->nodes[node], "axis", 1);
    }
    int gp = nnq_build_gap(&b, c5);
    int f = nnq_build_flatten(&b, gp);
    int y = nnq_build_gemm(&b, f, "fc", 16, 10);
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_finish(&b, y, "logits", &g));
    if (!g) return NULL;
    randomize_biases(g);
    CHECK_OK(nnq_graph_prepare(g));
    return g;
}

/* QDQ graph of fg: min-max ranges on `calib`. */
static nnq_graph *quantize(const nnq_graph *fg, int wbits, int abits, bool signed_acts,
                           const nnq_dataset *calib) {
    nnq_qsim_options o;
    nnq_qsim_options_default(&o);
    o.weights.bits = wbits;
    o.acts.bits = abits;
    if (signed_acts) o.acts.is_signed = true;
    nnq_qsim *s = NULL;
    nnq_graph *q = NULL;
    CHECK_OK(nnq_qsim_create(fg, &o, &s));
    if (!s) return NULL;
    CHECK_OK(nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MINMAX));
    nnq_calib_options co;
    nnq_calib_options_default(&co);
    co.method = NNQ_RANGE_MINMAX;
    co.logits_method = NNQ_RANGE_MINMAX;
    co.threads = 2;
    CHECK_OK(nnq_qsim_calibrate(s, calib, &co));
    CHECK_OK(nnq_qsim_to_qdq(s, &q));
    nnq_qsim_free(s);
    if (q) CHECK_OK(nnq_graph_prepare(q));
    return q;
}

/* Output 0 of program p on x (copied; NULL on failure). */
static float *run_prog(const nnq_iprog *p, nnq_engine_mode mode, const nnq_tensor *x, int64_t *n) {
    nnq_iexec *e = NULL;
    float *out = NULL;
    CHECK_OK(nnq_iexec_create(p, mode, 2, &e));
    if (!e) return NULL;
    nnq_status s = nnq_iexec_run(e, x);
    CHECK_OK(s);
    if (s == NNQ_OK) {
        const nnq_tensor *y = nnq_iexec_output(e, 0);
        *n = nnq_tensor_numel(y);
        out = malloc(sizeof(float) * (size_t)*n);
        memcpy(out, y->data, sizeof(float) * (size_t)*n);
    }
    nnq_iexec_free(e);
    return out;
}

static float *run_float(const nnq_graph *g, const nnq_tensor *x, int64_t *n) {
    nnq_exec *e = NULL;
    float *out = NULL;
    CHECK_OK(nnq_exec_create(g, NULL, &e));
    if (!e) return NULL;
    if (nnq_exec_run(e, x) == NNQ_OK) {
        const nnq_tensor *y = nnq_exec_output(e, 0);
        *n = nnq_tensor_numel(y);
        out = malloc(sizeof(float) * (size_t)*n);
        memcpy(out, y->data, sizeof(float) * (size_t)*n);
    } else {
        CHECK(!"float run");
    }
    nnq_exec_free(e);
    return out;
}

static int argmax(const float *r, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (r[i] > r[b]) b = i;
    return b;
}

typedef struct prog_report {
    double nmse, agree; /* INT vs float QDQ */
    bool same_sim, same_ref, same_file;
} prog_report;

/* INT vs SIM vs reference kernels (on the first ref_n images: they are
 * slow) vs the float QDQ executor vs a .nnqi round trip, on the images of d. */
static prog_report check_program(const nnq_graph *qg, const nnq_iprog *p, const nnq_dataset *d,
                                 int classes, int64_t ref_n) {
    prog_report r = {0, 0, true, true, true};
    nnq_tensor x, xr;
    nnq_dataset_batch(d, 0, d->n, &x);
    nnq_dataset_batch(d, 0, ref_n, &xr);
    int64_t ni = 0, ns = 0, nr = 0, nf = 0, nl = 0;
    float *yi = run_prog(p, NNQ_ENGINE_INT, &x, &ni);
    float *ys = run_prog(p, NNQ_ENGINE_SIM, &x, &ns);
    setenv("NNQ_KERNELS", "ref", 1);
    float *yr = run_prog(p, NNQ_ENGINE_INT, &xr, &nr);
    unsetenv("NNQ_KERNELS");
    float *yf = run_float(qg, &x, &nf);
    /* .nnqi round trip */
    char path[] = "/tmp/nnq_test_lower_XXXXXX";
    int fd = mkstemp(path);
    float *yl = NULL;
    if (fd >= 0) close(fd);
    if (nnq_iprog_float_nodes(p) == 0) {
        nnq_iprog *q = NULL;
        CHECK_OK(nnq_iprog_save(p, path));
        CHECK_OK(nnq_iprog_load(path, &q));
        if (q) yl = run_prog(q, NNQ_ENGINE_INT, &x, &nl);
        nnq_iprog_free(q);
    }
    unlink(path);
    CHECK(yi && ys && yr && yf && ni == ns && nr == xr.dims[0] * classes && ni == nf &&
          ni == d->n * classes);
    if (yi && ys && yr && yf && ni == ns && nr <= ni && ni == nf) {
        r.same_sim = memcmp(yi, ys, sizeof(float) * (size_t)ni) == 0;
        r.same_ref = memcmp(yi, yr, sizeof(float) * (size_t)nr) == 0;
        r.same_file = !yl || (nl == ni && memcmp(yi, yl, sizeof(float) * (size_t)ni) == 0);
        r.nmse = check_nmse(yi, yf, (long)ni);
        int64_t agree = 0;
        for (int64_t i = 0; i < d->n; i++)
            agree += argmax(yi + i * classes, classes) == argmax(yf + i * classes, classes);
        r.agree = (double)agree / (double)d->n;
    }
    free(yi), free(ys), free(yr), free(yf), free(yl);
    return r;
}

/* ---- 1. patterns ---- */

static void test_patterns(void) {
    nnq_graph *fg = pattern_graph(false);
    nnq_dataset calib = random_data(64, 3, 12, 12), test = random_data(37, 3, 12, 12);
    const struct {
        int wbits, abits;
        bool signed_acts;
        double nmse;
    } cfgs[] = {{8, 8, false, 1e-3}, {4, 8, false, 1e-3}, {8, 4, false, 2e-2}, {8, 8, true, 1e-3}};
    for (size_t c = 0; fg && c < sizeof cfgs / sizeof cfgs[0]; c++) {
        nnq_graph *qg = quantize(fg, cfgs[c].wbits, cfgs[c].abits, cfgs[c].signed_acts, &calib);
        nnq_iprog *p = NULL;
        if (qg) CHECK_OK(nnq_iprog_lower(qg, &p));
        if (!p) {
            nnq_graph_free(qg);
            continue;
        }
        for (int i = 0; i < nnq_iprog_note_count(p); i++)
            fprintf(stderr, "  note: %s\n", nnq_iprog_note(p, i));
        CHECK(nnq_iprog_float_nodes(p) == 0);
        nnq_iprog_stats st;
        nnq_iprog_get_stats(p, &st);
        CHECK(st.linear == 6 && st.linear_ref == 0);
        CHECK(st.linear_packed == (cfgs[c].wbits <= 4 ? 6 : 0));
        const prog_report r = check_program(qg, p, &test, 10, test.n);
        fprintf(stderr, "patterns W%dA%d%s: %d ops, int==sim %d, ref==avx2 %d, file %d, "
                "nmse vs float QDQ %.2e, top-1 agreement %.3f\n", cfgs[c].wbits, cfgs[c].abits,
                cfgs[c].signed_acts ? " (int8 acts)" : "", st.ops, r.same_sim, r.same_ref,
                r.same_file, r.nmse, r.agree);
        CHECK(r.same_sim);
        CHECK(r.same_ref);
        CHECK(r.same_file);
        CHECK(r.nmse < cfgs[c].nmse);
        CHECK(r.agree >= 0.9);
        nnq_iprog_free(p);
        nnq_graph_free(qg);
    }
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
    nnq_graph_free(fg);
}

/* ---- 2. fallback ---- */

static void test_fallback(void) {
    nnq_graph *fg = pattern_graph(true);
    nnq_dataset calib = random_data(64, 3, 12, 12), test = random_data(16, 3, 12, 12);
    nnq_graph *qg = fg ? quantize(fg, 8, 8, false, &calib) : NULL;
    nnq_iprog *p = NULL;
    if (qg) CHECK_OK(nnq_iprog_lower(qg, &p));
    if (p) {
        CHECK(nnq_iprog_float_nodes(p) == 1);
        bool named = false;
        for (int i = 0; i < nnq_iprog_note_count(p); i++) {
            fprintf(stderr, "  note: %s\n", nnq_iprog_note(p, i));
            named = named || (strstr(nnq_iprog_note(p, i), "Softmax") &&
                              strstr(nnq_iprog_note(p, i), "runs in float"));
        }
        CHECK(named);
        const prog_report r = check_program(qg, p, &test, 10, test.n);
        CHECK(r.same_sim && r.same_ref);
        CHECK(r.nmse < 1e-3);
        /* a .nnqi holds integer operators only */
        CHECK_STATUS(nnq_iprog_save(p, "/tmp/nnq_test_lower_never.nnqi"), NNQ_ERR_UNSUPPORTED);
        CHECK(access("/tmp/nnq_test_lower_never.nnqi", F_OK) != 0);
    }
    nnq_iprog_free(p);
    nnq_graph_free(qg);
    nnq_graph_free(fg);
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
}

/* ---- 3. other tools' QDQ ---- */

static int init_tensor(nnq_graph *g, const char *name, nnq_dtype dt, int rank, const int64_t *dims,
                       const double *v) {
    nnq_tensor t = {0};
    nnq_tensor_alloc(&t, dt, rank, dims);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++) {
        if (dt == NNQ_DT_FLOAT) nnq_f32(&t)[i] = (float)v[i];
        else if (dt == NNQ_DT_UINT8) ((uint8_t *)t.data)[i] = (uint8_t)v[i];
        else if (dt == NNQ_DT_INT8) ((int8_t *)t.data)[i] = (int8_t)v[i];
        else ((int32_t *)t.data)[i] = (int32_t)v[i];
    }
    int out = -1;
    CHECK_OK(nnq_graph_add_initializer(g, name, &t, &out));
    return out;
}

static int node3(nnq_graph *g, const char *op, int a, int b, int c, const char *out_name) {
    int y, n;
    const int in[3] = {a, b, c};
    nnq_graph_add_value(g, out_name, &y);
    nnq_graph_add_node(g, out_name, op, "", c >= 0 ? 3 : 2, in, 1, &y, &n);
    return y;
}

/* Q(x) with scale s, zero point z of dtype dt, then DQ. */
static int qdq(nnq_graph *g, int x, const char *name, double s, double z, nnq_dtype dt) {
    char n1[64], n2[64], n3[64];
    snprintf(n1, sizeof n1, "%s_s", name);
    snprintf(n2, sizeof n2, "%s_z", name);
    const int sv = init_tensor(g, n1, NNQ_DT_FLOAT, 0, NULL, &s);
    const int zv = init_tensor(g, n2, dt, 0, NULL, &z);
    snprintf(n3, sizeof n3, "%s_q", name);
    const int q = node3(g, "QuantizeLinear", x, sv, zv, n3);
    snprintf(n3, sizeof n3, "%s_dq", name);
    return node3(g, "DequantizeLinear", q, sv, zv, n3);
}

/* A constant DQ: integers q (dtype dt), per-tensor scale and zero point. */
static int const_dq(nnq_graph *g, const char *name, nnq_dtype dt, int rank, const int64_t *dims,
                    const double *q, double s, double z) {
    char n1[64], n2[64], n3[64], n4[64];
    snprintf(n1, sizeof n1, "%s_int", name);
    snprintf(n2, sizeof n2, "%s_scale", name);
    snprintf(n3, sizeof n3, "%s_zp", name);
    snprintf(n4, sizeof n4, "%s_dq", name);
    const int qv = init_tensor(g, n1, dt, rank, dims, q);
    const int sv = init_tensor(g, n2, NNQ_DT_FLOAT, 0, NULL, &s);
    const int zv = init_tensor(g, n3, dt == NNQ_DT_INT32 ? NNQ_DT_INT32 : dt, 0, NULL, &z);
    return node3(g, "DequantizeLinear", qv, sv, zv, n4);
}

static void test_other_tools(void) {
    nnq_graph *g = nnq_graph_create("ort-style");
    nnq_graph_set_opset(g, "", 13);
    int x;
    nnq_graph_add_value(g, "input", &x);
    const int64_t xd[4] = {-1, 4, 6, 6};
    nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 4, xd);
    nnq_graph_add_input(g, x);
    /* input: int8 activations with a zero point */
    int h = qdq(g, x, "in", 0.02, 3, NNQ_DT_INT8);
    /* conv with uint8 weights, zero point 131 (per tensor), int32 bias */
    double w[6 * 4 * 9], b[6];
    for (int i = 0; i < 6 * 4 * 9; i++) w[i] = floor(urand() * 256);
    for (int i = 0; i < 6; i++) b[i] = floor(urand() * 2000 - 1000);
    const int64_t wd[4] = {6, 4, 3, 3}, bd[1] = {6};
    const int wv = const_dq(g, "conv.w", NNQ_DT_UINT8, 4, wd, w, 0.004, 131);
    const int bv = const_dq(g, "conv.b", NNQ_DT_INT32, 1, bd, b, 0.02 * 0.004, 0);
    int c = node3(g, "Conv", h, wv, bv, "conv");
    const int64_t pads[4] = {1, 1, 1, 1};
    nnq_node_set_ints(&g->nodes[g->values[c].producer], "pads", 4, pads);
    int r;
    {
        int n;
        nnq_graph_add_value(g, "relu", &r);
        nnq_graph_add_node(g, "relu", "Relu", "", 1, &c, 1, &r, &n);
    }
    h = qdq(g, r, "relu", 0.05, 0, NNQ_DT_UINT8);
    /* flatten -> Gemm (transB = 0: W [K, M]) with uint8 weights -> Q */
    int f;
    {
        int n;
        nnq_graph_add_value(g, "flat", &f);
        nnq_graph_add_node(g, "flat", "Flatten", "", 1, &h, 1, &f, &n);
    }
    double w2[216 * 10];
    for (int i = 0; i < 216 * 10; i++) w2[i] = floor(urand() * 256);
    const int64_t w2d[2] = {216, 10};
    const int w2v = const_dq(g, "fc.w", NNQ_DT_UINT8, 2, w2d, w2, 0.002, 120);
    int y = node3(g, "Gemm", f, w2v, -1, "fc");
    y = qdq(g, y, "fc", 0.1, 128, NNQ_DT_UINT8);
    /* MatMul with int8 weights (zero point 0): the logits as float */
    double w3[10 * 10];
    for (int i = 0; i < 100; i++) w3[i] = floor(urand() * 255 - 127);
    const int64_t w3d[2] = {10, 10};
    const int w3v = const_dq(g, "mm.w", NNQ_DT_INT8, 2, w3d, w3, 0.01, 0);
    y = node3(g, "MatMul", y, w3v, -1, "logits");
    nnq_graph_add_output(g, y);
    CHECK_OK(nnq_graph_prepare(g));
    nnq_iprog *p = NULL;
    CHECK_OK(nnq_iprog_lower(g, &p));
    if (p) {
        for (int i = 0; i < nnq_iprog_note_count(p); i++)
            fprintf(stderr, "  note: %s\n", nnq_iprog_note(p, i));
        nnq_iprog_stats st;
        nnq_iprog_get_stats(p, &st);
        CHECK(nnq_iprog_float_nodes(p) == 0);
        CHECK(st.linear == 3 && st.linear_ref == 2); /* uint8 weights: the reference path */
        nnq_dataset test = random_data(9, 4, 6, 6);
        const prog_report rep = check_program(g, p, &test, 10, test.n);
        fprintf(stderr, "other tools' QDQ: int==sim %d, ref==avx2 %d, file %d, nmse %.2e, "
                "agreement %.3f\n", rep.same_sim, rep.same_ref, rep.same_file, rep.nmse, rep.agree);
        CHECK(rep.same_sim && rep.same_ref && rep.same_file);
        CHECK(rep.nmse < 1e-3);
        nnq_dataset_free(&test);
    }
    nnq_iprog_free(p);
    nnq_graph_free(g);
}

/* ---- 4. damaged .nnqi files ---- */

static void test_bad_files(void) {
    nnq_graph *fg = pattern_graph(false);
    nnq_dataset calib = random_data(32, 3, 12, 12);
    nnq_graph *qg = fg ? quantize(fg, 4, 8, false, &calib) : NULL;
    nnq_iprog *p = NULL, *q = NULL;
    if (qg) CHECK_OK(nnq_iprog_lower(qg, &p));
    const char *path = "/tmp/nnq_test_lower_bad.nnqi";
    unsigned char *data = NULL;
    size_t len = 0;
    if (p && nnq_iprog_save(p, path) == NNQ_OK &&
        nnq_read_file(path, (size_t)1 << 30, &data, &len) == NNQ_OK) {
        CHECK(len > 64);
        /* truncated anywhere */
        for (size_t cut = 0; cut < len; cut += len / 37 + 1) {
            CHECK(nnq_iprog_from_bytes(data, cut, "cut.nnqi", &q) != NNQ_OK);
            CHECK(!q && strstr(nnq_last_error(), "cut.nnqi"));
        }
        /* one flipped bit in the payload: the CRC */
        for (size_t pos = 40; pos < len; pos += len / 23 + 1) {
            data[pos] ^= 0x10;
            CHECK_STATUS(nnq_iprog_from_bytes(data, len, "flip.nnqi", &q), NNQ_ERR_PARSE);
            CHECK(!q && strstr(nnq_last_error(), "CRC"));
            data[pos] ^= 0x10;
        }
        /* the size in the header */
        data[17] ^= 0x01;
        CHECK_STATUS(nnq_iprog_from_bytes(data, len, "size.nnqi", &q), NNQ_ERR_PARSE);
        data[17] ^= 0x01;
        /* the payload stored without deflate (flags 0) loads too; with a
         * lying count and a valid CRC it is refused before allocating */
        uint64_t raw = 0;
        memcpy(&raw, data + 24, 8);
        unsigned char *plain = malloc(40 + (size_t)raw);
        uLongf got = (uLongf)raw;
        CHECK(plain && uncompress(plain + 40, &got, data + 40, (uLong)(len - 40)) == Z_OK &&
              got == raw);
        if (plain && got == raw) {
            const uint32_t flags = 0;
            memcpy(plain, data, 40);
            memcpy(plain + 12, &flags, 4);
            memcpy(plain + 16, &raw, 8);
            uint32_t crc = (uint32_t)crc32(0L, plain + 40, (uInt)raw);
            memcpy(plain + 32, &crc, 4);
            CHECK_OK(nnq_iprog_from_bytes(plain, 40 + (size_t)raw, "plain.nnqi", &q));
            nnq_iprog_free(q);
            q = NULL;
            const uint32_t huge = 0x7fffffff;
            memcpy(plain + 40, &huge, 4); /* n_tensors */
            crc = (uint32_t)crc32(0L, plain + 40, (uInt)raw);
            memcpy(plain + 32, &crc, 4);
            CHECK_STATUS(nnq_iprog_from_bytes(plain, 40 + (size_t)raw, "huge.nnqi", &q), NNQ_ERR_LIMIT);
            CHECK(!q);
            /* a deflated payload claiming to inflate to 2^40 bytes */
            uint64_t big = (uint64_t)1 << 40;
            memcpy(data + 24, &big, 8);
            CHECK_STATUS(nnq_iprog_from_bytes(data, len, "bomb.nnqi", &q), NNQ_ERR_LIMIT);
            memcpy(data + 24, &raw, 8);
        }
        free(plain);
        /* the intact file loads */
        CHECK_OK(nnq_iprog_load(path, &q));
        nnq_iprog_free(q);
        q = NULL;
        /* not a .nnqi at all */
        CHECK_STATUS(nnq_iprog_from_bytes((const unsigned char *)"hello, world, not a program....."
                                          "................", 48, "text.nnqi", &q),
                     NNQ_ERR_PARSE);
    } else {
        CHECK(!"saved a program");
    }
    unlink(path);
    free(data);
    nnq_iprog_free(p);
    nnq_graph_free(qg);
    nnq_graph_free(fg);
    nnq_dataset_free(&calib);
}

/* ---- 5. fixture models ---- */

static void test_fixture(const char *path) {
    nnq_graph *fg = NULL;
    nnq_dataset all = {0};
    CHECK_OK(nnq_onnx_load(path, &fg));
    if (fg) CHECK_OK(nnq_graph_prepare(fg));
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 384, &all));
    if (!fg || !all.images) {
        nnq_graph_free(fg);
        nnq_dataset_free(&all);
        return;
    }
    /* under sanitizers (NNQ_SANITIZED, an -O0 build) fewer images */
    const int64_t n_calib = getenv("NNQ_SANITIZED") ? 32 : 128;
    nnq_dataset calib = all, test = all;
    calib.n = n_calib;
    test.images = all.images + n_calib * 32 * 32;
    test.n = getenv("NNQ_SANITIZED") ? 48 : 256;
    nnq_graph *qg = quantize(fg, 8, 8, false, &calib);
    nnq_iprog *p = NULL;
    if (qg) CHECK_OK(nnq_iprog_lower(qg, &p));
    if (p) {
        CHECK(nnq_iprog_float_nodes(p) == 0);
        const prog_report r = check_program(qg, p, &test, 10, getenv("NNQ_SANITIZED") ? 2 : 8);
        fprintf(stderr, "%s W8A8: int==sim %d, ref==avx2 %d, file %d, nmse vs float QDQ %.2e, "
                "top-1 agreement %.4f\n", path, r.same_sim, r.same_ref, r.same_file, r.nmse,
                r.agree);
        CHECK(r.same_sim && r.same_ref && r.same_file);
        CHECK(r.agree >= (test.n >= 256 ? 0.99 : 0.95));
        CHECK(r.nmse < 1e-2);
    }
    nnq_iprog_free(p);
    nnq_graph_free(qg);
    nnq_graph_free(fg);
    nnq_dataset_free(&all);
}

/* ---- 6. AVX2 elementwise loops ---- */

static void test_elementwise_avx2(void) {
    if (!nnq_cpu_has_avx2()) {
        fprintf(stderr, "no AVX2: elementwise AVX2 checks skipped\n");
        return;
    }
    enum { N = 1000 };
    uint8_t x[N], x2[N], y[N], table[256], xtab[256];
    for (int t = 0; t < 20; t++) {
        for (int i = 0; i < 256; i++) table[i] = (uint8_t)(urand() * 256);
        for (int i = 0; i < N; i++) x[i] = (uint8_t)(urand() * 256), x2[i] = (uint8_t)(urand() * 256);
        if (t == 0)
            for (int i = 0; i < 256; i++) x[i] = (uint8_t)i; /* every code */
        ip_lut_xor_rows(table, xtab);
        for (int n = 0; n <= N; n += n < 70 ? 1 : 310) {
            ip_lut_avx2(xtab, table, x, y, n);
            bool ok = true;
            for (int i = 0; i < n; i++) ok = ok && y[i] == table[x[i]];
            CHECK(ok);
        }
        ip_add a = {.za = (int32_t)(urand() * 256), .zb = (int32_t)(urand() * 256),
                    .zy = (int32_t)(urand() * 256), .ma = (int64_t)(urand() * IP_ADD_MULT_MAX),
                    .mb = (int64_t)(urand() * IP_ADD_MULT_MAX), .shift = 1 + (int32_t)(urand() * 30),
                    .lo = (uint8_t)(urand() * 40), .hi = (uint8_t)(215 + urand() * 40)};
        if (t == 1) a.ma = a.mb = IP_ADD_MULT_MAX, a.shift = IP_ADD_SHIFT_MAX, a.za = a.zb = 255;
        for (int n = 0; n <= N; n += n < 40 ? 1 : 480) {
            ip_add_avx2(&a, x, x2, y, n);
            bool ok = true;
            for (int i = 0; i < n; i++) {
                const int64_t t64 = ((int64_t)x[i] - a.za) * a.ma + ((int64_t)x2[i] - a.zb) * a.mb +
                                    ((int64_t)1 << (a.shift - 1));
                int64_t v = a.zy + (t64 >> a.shift);
                v = v < a.lo ? a.lo : (v > a.hi ? a.hi : v);
                ok = ok && y[i] == (uint8_t)v;
            }
            CHECK(ok);
        }
    }
    /* Input quantization: ties (k + 1/2) s, signed zeros, NaN, infinities,
     * values far outside the grid, subnormals; 8- and 4-bit grids. */
    float xf[N];
    for (int t = 0; t < 40; t++) {
        const float s = t % 5 == 0 ? 1e-30f : (float)(0.001 + urand() * 0.2);
        const int32_t qmax = t % 2 ? 255 : 15, z = (int32_t)(urand() * (qmax + 1));
        for (int i = 0; i < N; i++) {
            const int kind = (int)(urand() * 8);
            const float k = (float)(int)(urand() * 600) - 300.0f;
            xf[i] = kind == 0   ? (k + 0.5f) * s
                    : kind == 1 ? (i % 2 ? -0.0f : 0.0f)
                    : kind == 2 ? (i % 3 ? NAN : (i % 2 ? INFINITY : -INFINITY))
                    : kind == 3 ? (float)(urand() - 0.5) * 1e30f
                    : kind == 4 ? 1e-40f * (float)(urand() - 0.5)
                                : (float)(urand() - 0.5) * 300.0f * s;
        }
        const int n = t % 4 == 3 ? N - t : N;
        ip_quantize_avx2(xf, y, n, s, z, 0, qmax);
        bool ok = true;
        for (int i = 0; i < n; i++) ok = ok && y[i] == (uint8_t)nnq_quantize_i(xf[i], s, z, 0, qmax);
        CHECK(ok);
    }
}

int main(void) {
    test_elementwise_avx2();
    test_patterns();
    test_fallback();
    test_other_tools();
    test_bad_files();
    test_fixture("tests/fixtures/models/resnets.onnx");
    test_fixture("tests/fixtures/models/mnv2s.onnx");
    return check_finish("test_engine_lower");
}
