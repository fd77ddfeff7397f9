/* Dense float ops (Conv, Gemm, MatMul, BatchNormalization, MaxPool,
 * AveragePool, GlobalAveragePool, Pad) against plain-loop references
 * written here, over sweeps of shapes and attributes, each with 1 and 2
 * threads (which take different parallel paths). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_fixture.h"
#include "ir/graph.h"
#include "ops/op.h"

#define NMSE_TOL 1e-10

/* ---- harness ---- */


/* Infer, allocate the outputs, size scratch, run. Outputs must start empty. */
static nnq_status run_op(const char *op, const nnq_node *node, int n_in, const nnq_tensor **in,
                         int n_out, nnq_tensor **out, int threads) {
    const nnq_op_def *def = nnq_op_find(op);
    nnq_op_args a;
    nnq_status s;
    if (!def) return nnq_fail(NNQ_ERR_UNSUPPORTED, "op %s not registered", op);
    memset(&a, 0, sizeof a);
    a.node = node;
    a.opset = 18;
    a.n_in = n_in;
    a.in = in;
    a.n_out = n_out;
    a.out = out;
    a.threads = threads;
    NNQ_TRY(def->infer(&a));
    for (int i = 0; i < n_out; i++)
        if (out[i]) NNQ_TRY(nnq_tensor_alloc(out[i], out[i]->dtype, out[i]->rank, out[i]->dims));
    size_t bytes = def->scratch_size ? def->scratch_size(&a) : 0;
    if (bytes) {
        a.scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!a.scratch) return nnq_fail(NNQ_ERR_NOMEM, "scratch");
        a.scratch_bytes = bytes;
    }
    s = def->forward(&a);
    free(a.scratch);
    return s;
}

static bool same_dims(const nnq_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return false;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i]) return false;
    return true;
}

/* Compare a result with the reference; prints the case on failure. */
static void expect_close(const char *what, const nnq_tensor *got, const float *want, int rank,
                         const int64_t *dims) {
    char s[64];
    if (!same_dims(got, rank, dims)) {
        nnq_tensor w;
        memset(&w, 0, sizeof w);
        nnq_tensor_set_shape(&w, NNQ_DT_FLOAT, rank, dims);
        fprintf(stderr, "%s: shape %s", what, nnq_shape_str(got, s, sizeof s));
        fprintf(stderr, ", expected %s\n", nnq_shape_str(&w, s, sizeof s));
        check_failures_++;
        return;
    }
    double e = check_nmse(nnq_f32(got), want, (long)nnq_shape_numel(rank, dims));
    if (!(e <= NMSE_TOL)) {
        fprintf(stderr, "%s: nmse %g\n", what, e);
        check_failures_++;
    }
}

/* ---- Conv ---- */

typedef struct conv_case {
    int k;                 /* spatial dims */
    int64_t n, c, m, group;
    int64_t in[3], kernel[3], stride[3], dil[3], pads[6];
    const char *auto_pad;  /* NULL: explicit pads */
    bool bias, kernel_attr;
} conv_case;

/* Reference pads for auto_pad, from the ONNX definition. */
static void ref_auto_pads(int k, const int64_t *in, const int64_t *kernel, const int64_t *stride,
                          const int64_t *dil, const char *mode, int64_t *pads) {
    for (int d = 0; d < k; d++) {
        int64_t out = (in[d] + stride[d] - 1) / stride[d];
        int64_t total = (out - 1) * stride[d] + (kernel[d] - 1) * dil[d] + 1 - in[d];
        if (total < 0) total = 0;
        if (strcmp(mode, "SAME_UPPER") == 0) {
            pads[d] = total / 2;
            pads[k + d] = total - total / 2;
        } else if (strcmp(mode, "SAME_LOWER") == 0) {
            pads[k + d] = total / 2;
            pads[d] = total - total / 2;
        } else {
            pads[d] = pads[k + d] = 0;
        }
    }
}

/* Plain 3-D convolution (1-D/2-D callers pass unit leading dims). */
static void conv_ref(const float *x, const float *w, const float *b, int64_t n, int64_t c,
                     int64_t m, int64_t group, const int64_t *in, const int64_t *kernel,
                     const int64_t *stride, const int64_t *dil, const int64_t *pb,
                     const int64_t *out, float *y) {
    int64_t cg = c / group, mg = m / group;
    for (int64_t in_ = 0; in_ < n; in_++)
        for (int64_t oc = 0; oc < m; oc++) {
            int64_t g = oc / mg;
            for (int64_t od = 0; od < out[0]; od++)
                for (int64_t oh = 0; oh < out[1]; oh++)
                    for (int64_t ow = 0; ow < out[2]; ow++) {
                        double acc = b ? b[oc] : 0;
                        for (int64_t ic = 0; ic < cg; ic++)
                            for (int64_t kd = 0; kd < kernel[0]; kd++)
                                for (int64_t kh = 0; kh < kernel[1]; kh++)
                                    for (int64_t kw = 0; kw < kernel[2]; kw++) {
                                        int64_t id = od * stride[0] - pb[0] + kd * dil[0];
                                        int64_t ih = oh * stride[1] - pb[1] + kh * dil[1];
                                        int64_t iw = ow * stride[2] - pb[2] + kw * dil[2];
                                        if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1] ||
                                            iw < 0 || iw >= in[2])
                                            continue;
                                        int64_t xc = g * cg + ic;
                                        double xv = x[(((in_ * c + xc) * in[0] + id) * in[1] + ih) * in[2] + iw];
                                        double wv = w[(((oc * cg + ic) * kernel[0] + kd) * kernel[1] + kh) * kernel[2] + kw];
                                        acc += xv * wv;
                                    }
                        y[(((in_ * m + oc) * out[0] + od) * out[1] + oh) * out[2] + ow] = (float)acc;
                    }
        }
}

/* Lift k-dim window parameters to 3-D with leading unit dims. */
static void lift3(int k, const int64_t *v, int64_t fill, int64_t *v3) {
    for (int d = 0; d < 3; d++) v3[d] = d < 3 - k ? fill : v[d - (3 - k)];
}

static void run_conv_case(const conv_case *cc, int threads) {
    int k = cc->k, rank = k + 2;
    int64_t xd[5] = {cc->n, cc->c}, wd[5] = {cc->m, cc->c / cc->group}, bd[1] = {cc->m};
    for (int d = 0; d < k; d++) {
        xd[2 + d] = cc->in[d];
        wd[2 + d] = cc->kernel[d];
    }
    nnq_tensor x = tensor_rand(rank, xd), w = tensor_rand(rank, wd), b = tensor_rand(1, bd);
    nnq_tensor y;
    memset(&y, 0, sizeof y);
    nnq_node node = node_new("Conv");
    CHECK_OK(nnq_node_set_int(&node, "group", cc->group));
    CHECK_OK(nnq_node_set_ints(&node, "strides", k, cc->stride));
    CHECK_OK(nnq_node_set_ints(&node, "dilations", k, cc->dil));
    if (cc->kernel_attr) CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", k, cc->kernel));
    int64_t pads[6];
    if (cc->auto_pad) {
        CHECK_OK(nnq_node_set_string(&node, "auto_pad", cc->auto_pad));
        ref_auto_pads(k, cc->in, cc->kernel, cc->stride, cc->dil, cc->auto_pad, pads);
    } else {
        CHECK_OK(nnq_node_set_ints(&node, "pads", 2 * k, cc->pads));
        memcpy(pads, cc->pads, sizeof pads);
    }

    int64_t in3[3], k3[3], s3[3], d3[3], pb3[3], out3[3], yd[5] = {cc->n, cc->m};
    lift3(k, cc->in, 1, in3);
    lift3(k, cc->kernel, 1, k3);
    lift3(k, cc->stride, 1, s3);
    lift3(k, cc->dil, 1, d3);
    lift3(k, pads, 0, pb3);
    for (int d = 0; d < 3; d++) {
        int64_t pe = d < 3 - k ? 0 : pads[k + d - (3 - k)];
        out3[d] = (in3[d] + pb3[d] + pe - (k3[d] - 1) * d3[d] - 1) / s3[d] + 1;
    }
    for (int d = 0; d < k; d++) yd[2 + d] = out3[3 - k + d];
    int64_t ny = nnq_shape_numel(rank, yd);
    float *ref = malloc(sizeof(float) * (size_t)ny);
    conv_ref(nnq_f32(&x), nnq_f32(&w), cc->bias ? nnq_f32(&b) : NULL, cc->n, cc->c, cc->m,
             cc->group, in3, k3, s3, d3, pb3, out3, ref);

    const nnq_tensor *in[3] = {&x, &w, &b};
    nnq_tensor *out[1] = {&y};
    char what[160];
    snprintf(what, sizeof what, "Conv %dD n%lld c%lld m%lld g%lld k%lld s%lld d%lld %s%s t%d", k,
             (long long)cc->n, (long long)cc->c, (long long)cc->m, (long long)cc->group,
             (long long)cc->kernel[k - 1], (long long)cc->stride[k - 1],
             (long long)cc->dil[k - 1], cc->auto_pad ? cc->auto_pad : "pads",
             cc->bias ? " bias" : "", threads);
    nnq_status s = run_op("Conv", &node, cc->bias ? 3 : 2, in, 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else {
        expect_close(what, &y, ref, rank, yd);
    }
    free(ref);
    node_free(&node);
    nnq_tensor_release(&x);
    nnq_tensor_release(&w);
    nnq_tensor_release(&b);
    nnq_tensor_release(&y);
}

static void test_conv(void) {
    static const conv_case cases[] = {
        /* k, n, c, m, group, in, kernel, stride, dil, pads, auto_pad, bias, kernel_attr */
        {2, 1, 3, 8, 1, {8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 3, 3, 5, 1, {9, 7}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 0, 1}, NULL, true, false},
        {2, 2, 4, 6, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 2, 4, 6, 2, {7, 5}, {2, 3}, {2, 1}, {1, 2}, {0, 2, 1, 1}, NULL, false, true},
        /* depthwise, multiplier 1 and 2, strides, dilation, asymmetric pads */
        {2, 3, 8, 8, 8, {10, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 1, 4, 8, 4, {9, 11}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 2, 4, 8, 4, {12, 9}, {3, 5}, {1, 3}, {2, 1}, {2, 0, 1, 2}, NULL, false, true},
        {2, 1, 6, 6, 6, {8, 8}, {5, 5}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", true, true},
        /* wide rows: stride-2 register blocks up to the last input column */
        {2, 2, 3, 3, 3, {5, 40}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 1, 2, 2, 2, {4, 41}, {3, 3}, {1, 2}, {1, 1}, {0}, NULL, false, true},
        {2, 1, 6, 6, 6, {7, 8}, {4, 4}, {1, 1}, {1, 1}, {0}, "SAME_LOWER", true, true},
        /* depthwise on small planes (phase-plane kernel): 4x4, 8x8, 16x16,
         * stride 2, pads, multiplier 2, outputs narrower than a vector */
        {2, 2, 5, 5, 5, {4, 4}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 1, 4, 8, 4, {4, 4}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 3, 6, 12, 6, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 2, 3, 3, 3, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {0, 1, 1, 0}, NULL, false, true},
        {2, 2, 7, 14, 7, {16, 16}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 1, 4, 4, 4, {16, 16}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 1, 4, 8, 4, {16, 16}, {5, 5}, {2, 2}, {2, 1}, {2, 2, 2, 2}, NULL, true, true},
        {2, 2, 3, 3, 3, {8, 7}, {3, 3}, {3, 2}, {1, 1}, {1, 2, 0, 1}, NULL, true, true},
        /* strided dense convs (tap GEMMs over phase planes), output
         * channels split over threads, groups, dilation */
        {2, 1, 16, 32, 1, {16, 16}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        /* ... and large enough for inference to run them on several threads */
        {2, 1, 32, 64, 1, {32, 32}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 4, 64, 64, 64, {32, 32}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 4, 64, 128, 64, {32, 32}, {3, 3}, {2, 2}, {1, 1}, {0, 1, 1, 0}, NULL, true, true},
        {2, 2, 8, 24, 2, {9, 10}, {3, 3}, {2, 2}, {2, 1}, {2, 1, 1, 2}, NULL, true, true},
        {2, 1, 5, 20, 1, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, false, true},
        /* dilation 2, auto_pad */
        {2, 2, 3, 4, 1, {11, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 2, 2, 2}, NULL, true, true},
        {2, 1, 3, 4, 1, {7, 7}, {4, 4}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", true, true},
        {2, 1, 3, 4, 1, {7, 6}, {3, 4}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", true, true},
        {2, 1, 3, 4, 1, {7, 6}, {2, 2}, {1, 1}, {2, 1}, {0}, "SAME_LOWER", false, true},
        {2, 2, 3, 4, 1, {7, 6}, {3, 3}, {2, 1}, {1, 1}, {0}, "VALID", true, true},
        /* 1x1: direct (no im2col) and strided */
        {2, 3, 16, 8, 1, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, true, true},
        {2, 3, 16, 8, 2, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, true, true},
        {2, 2, 8, 4, 1, {7, 6}, {1, 1}, {2, 2}, {1, 1}, {0}, NULL, true, true},
        /* large enough to take the parallel paths */
        {2, 1, 16, 16, 1, {32, 32}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 4, 8, 16, 1, {16, 16}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        {2, 2, 32, 32, 32, {20, 20}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        /* 1-D */
        {1, 2, 3, 5, 1, {20}, {5}, {2}, {1}, {2, 1}, NULL, true, true},
        {1, 1, 3, 6, 3, {17}, {3}, {1}, {2}, {2, 2}, NULL, true, true},
        {1, 3, 4, 4, 2, {9}, {3}, {1}, {1}, {0}, "SAME_UPPER", false, false},
        /* 3-D, grouped and depthwise (generic path) */
        {3, 2, 2, 3, 1, {6, 5, 4}, {3, 2, 3}, {1, 2, 1}, {1, 1, 1}, {1, 0, 1, 1, 1, 0}, NULL, true, true},
        {3, 1, 4, 4, 4, {5, 6, 7}, {3, 3, 3}, {2, 1, 2}, {1, 2, 1}, {1, 2, 1, 1, 2, 1}, NULL, true, true},
        {3, 2, 4, 6, 2, {4, 5, 6}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0}, "SAME_UPPER", true, true},
        {3, 1, 4, 8, 1, {7, 10, 9}, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, NULL, true, true},
    };
    /* 3 threads: output lines split unevenly across threads */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 3; t++) run_conv_case(&cases[i], t);
}

static void test_conv_errors(void) {
    int64_t xd[4] = {1, 4, 5, 5}, wd[4] = {6, 3, 3, 3}, wd2[4] = {6, 2, 3, 3};
    nnq_tensor x = tensor_rand(4, xd), w = tensor_rand(4, wd), w2 = tensor_rand(4, wd2);
    nnq_tensor y;
    memset(&y, 0, sizeof y);
    const nnq_tensor *in[2] = {&x, &w};
    nnq_tensor *out[1] = {&y};
    nnq_node node = node_new("Conv");
    /* 4 input channels vs W expecting 3 */
    CHECK_STATUS(run_op("Conv", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "test") != NULL); /* names the node */
    /* 6 output channels do not split into 4 groups */
    in[1] = &w2;
    CHECK_OK(nnq_node_set_int(&node, "group", 4));
    CHECK_STATUS(run_op("Conv", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE);
    /* kernel_shape disagreeing with W */
    CHECK_OK(nnq_node_set_int(&node, "group", 2));
    int64_t ks[2] = {3, 2};
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", 2, ks));
    CHECK_STATUS(run_op("Conv", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE);
    node_free(&node);
    /* non-float input */
    nnq_tensor xi = tensor_new(NNQ_DT_INT8, 4, xd);
    in[0] = &xi;
    in[1] = &w;
    node = node_new("Conv");
    CHECK_STATUS(run_op("Conv", &node, 2, in, 1, out, 1), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "int8") != NULL);
    node_free(&node);
    nnq_tensor_release(&xi);
    nnq_tensor_release(&x);
    nnq_tensor_release(&w);
    nnq_tensor_release(&w2);
    nnq_tensor_release(&y);
}

/* ---- Gemm ---- */

static void run_gemm_case(int64_t m, int64_t n, int64_t k, int ta, int tb, float alpha,
                          float beta, int c_rank, const int64_t *c_dims, int threads) {
    int64_t ad[2] = {ta ? k : m, ta ? m : k}, bd[2] = {tb ? n : k, tb ? k : n};
    nnq_tensor A = tensor_rand(2, ad), B = tensor_rand(2, bd), C, y;
    bool has_c = c_rank >= 0;
    memset(&C, 0, sizeof C);
    memset(&y, 0, sizeof y);
    if (has_c) C = tensor_rand(c_rank, c_dims);
    nnq_node node = node_new("Gemm");
    CHECK_OK(nnq_node_set_int(&node, "transA", ta));
    CHECK_OK(nnq_node_set_int(&node, "transB", tb));
    CHECK_OK(nnq_node_set_float(&node, "alpha", alpha));
    CHECK_OK(nnq_node_set_float(&node, "beta", beta));
    float *ref = malloc(sizeof(float) * (size_t)(m * n));
    const float *a = nnq_f32(&A), *b = nnq_f32(&B);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                       (double)(tb ? b[j * k + p] : b[p * n + j]);
            acc *= alpha;
            if (has_c) {
                /* broadcast by reading index 0 of every size-1 dim */
                int64_t ci = 0;
                if (c_rank == 1) ci = c_dims[0] == 1 ? 0 : j;
                if (c_rank == 2) ci = (c_dims[0] == 1 ? 0 : i) * c_dims[1] + (c_dims[1] == 1 ? 0 : j);
                acc += beta * (double)nnq_f32(&C)[ci];
            }
            ref[i * n + j] = (float)acc;
        }
    const nnq_tensor *in[3] = {&A, &B, has_c ? &C : NULL};
    nnq_tensor *out[1] = {&y};
    int64_t yd[2] = {m, n};
    char what[128];
    snprintf(what, sizeof what, "Gemm %lldx%lldx%lld tA%d tB%d C rank %d t%d", (long long)m,
             (long long)n, (long long)k, ta, tb, c_rank, threads);
    nnq_status s = run_op("Gemm", &node, has_c ? 3 : 2, in, 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else {
        expect_close(what, &y, ref, 2, yd);
    }
    free(ref);
    node_free(&node);
    nnq_tensor_release(&A);
    nnq_tensor_release(&B);
    nnq_tensor_release(&C);
    nnq_tensor_release(&y);
}

static void test_gemm(void) {
    const int64_t m = 7, n = 5;
    const int64_t c_none[1] = {0}, c_n[1] = {5}, c_1[1] = {1}, c_1n[2] = {1, 5}, c_m1[2] = {7, 1},
                  c_mn[2] = {7, 5}, c_11[2] = {1, 1};
    for (int t = 1; t <= 2; t++)
        for (int ta = 0; ta <= 1; ta++)
            for (int tb = 0; tb <= 1; tb++) {
                run_gemm_case(m, n, 9, ta, tb, 1.0f, 1.0f, -1, c_none, t);
                run_gemm_case(m, n, 9, ta, tb, 0.25f, 0.35f, 2, c_mn, t);
            }
    for (int t = 1; t <= 2; t++) {
        run_gemm_case(m, n, 4, 0, 0, 1.0f, 1.0f, 0, c_none, t);
        run_gemm_case(m, n, 4, 0, 1, 1.0f, 2.0f, 1, c_n, t);
        run_gemm_case(m, n, 4, 1, 0, 0.5f, 1.0f, 1, c_1, t);
        run_gemm_case(m, n, 4, 0, 0, 1.0f, -1.0f, 2, c_1n, t);
        run_gemm_case(m, n, 4, 0, 0, 1.0f, 0.5f, 2, c_m1, t);
        run_gemm_case(m, n, 4, 1, 1, 2.0f, 0.5f, 2, c_11, t);
        run_gemm_case(m, n, 4, 0, 0, 1.0f, 0.0f, 2, c_mn, t);
        run_gemm_case(64, 96, 80, 0, 1, 1.0f, 1.0f, 1, (const int64_t[]){96}, t);
    }
    /* C that does not broadcast to (M, N) */
    int64_t ad[2] = {3, 4}, bd[2] = {4, 5}, cd[1] = {3};
    nnq_tensor A = tensor_rand(2, ad), B = tensor_rand(2, bd), C = tensor_rand(1, cd), y;
    memset(&y, 0, sizeof y);
    const nnq_tensor *in[3] = {&A, &B, &C};
    nnq_tensor *out[1] = {&y};
    nnq_node node = node_new("Gemm");
    CHECK_STATUS(run_op("Gemm", &node, 3, in, 1, out, 1), NNQ_ERR_SHAPE);
    in[1] = &A; /* inner dims 4 vs 3 */
    CHECK_STATUS(run_op("Gemm", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE);
    nnq_tensor_release(&A);
    nnq_tensor_release(&B);
    nnq_tensor_release(&C);
}

/* ---- MatMul ---- */

static void run_matmul_case(int ra, const int64_t *da, int rb, const int64_t *db, int ry,
                            const int64_t *dy, int threads) {
    nnq_tensor A = tensor_rand(ra, da), B = tensor_rand(rb, db), y;
    memset(&y, 0, sizeof y);
    /* Reference: promote 1-D operands, pad batch dims to a common rank. */
    int64_t m = ra >= 2 ? da[ra - 2] : 1, k = da[ra - 1], n = rb >= 2 ? db[rb - 1] : 1;
    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0, br = ba > bb ? ba : bb;
    int64_t bda[8], bdb[8], bo[8], nb = 1;
    for (int i = 0; i < br; i++) {
        bda[i] = i < br - ba ? 1 : da[i - (br - ba)];
        bdb[i] = i < br - bb ? 1 : db[i - (br - bb)];
        bo[i] = bda[i] > bdb[i] ? bda[i] : bdb[i];
        nb *= bo[i];
    }
    float *ref = malloc(sizeof(float) * (size_t)(nb * m * n));
    for (int64_t bi = 0; bi < nb; bi++) {
        int64_t rem = bi, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int i = br - 1; i >= 0; i--) {
            int64_t idx = rem % bo[i];
            rem /= bo[i];
            ia += (bda[i] == 1 ? 0 : idx) * sa;
            ib += (bdb[i] == 1 ? 0 : idx) * sb;
            sa *= bda[i];
            sb *= bdb[i];
        }
        const float *a = nnq_f32(&A) + ia * m * k, *b = nnq_f32(&B) + ib * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++) acc += (double)a[i * k + p] * b[p * n + j];
                ref[(bi * m + i) * n + j] = (float)acc;
            }
    }
    const nnq_tensor *in[2] = {&A, &B};
    nnq_tensor *out[1] = {&y};
    nnq_node node = node_new("MatMul");
    char what[96];
    snprintf(what, sizeof what, "MatMul rank %d x rank %d -> rank %d t%d", ra, rb, ry, threads);
    nnq_status s = run_op("MatMul", &node, 2, in, 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else {
        expect_close(what, &y, ref, ry, dy);
    }
    free(ref);
    nnq_tensor_release(&A);
    nnq_tensor_release(&B);
    nnq_tensor_release(&y);
}

static void test_matmul(void) {
    for (int t = 1; t <= 2; t++) {
        run_matmul_case(2, (int64_t[]){3, 4}, 2, (int64_t[]){4, 5}, 2, (int64_t[]){3, 5}, t);
        run_matmul_case(1, (int64_t[]){4}, 2, (int64_t[]){4, 5}, 1, (int64_t[]){5}, t);
        run_matmul_case(2, (int64_t[]){3, 4}, 1, (int64_t[]){4}, 1, (int64_t[]){3}, t);
        run_matmul_case(1, (int64_t[]){6}, 1, (int64_t[]){6}, 0, (int64_t[]){0}, t);
        run_matmul_case(3, (int64_t[]){2, 3, 4}, 3, (int64_t[]){2, 4, 5}, 3,
                        (int64_t[]){2, 3, 5}, t);
        run_matmul_case(3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){4, 5}, 3, (int64_t[]){2, 3, 5},
                        t);
        run_matmul_case(2, (int64_t[]){3, 4}, 3, (int64_t[]){2, 4, 5}, 3, (int64_t[]){2, 3, 5},
                        t);
        run_matmul_case(4, (int64_t[]){2, 1, 3, 4}, 3, (int64_t[]){3, 4, 5}, 4,
                        (int64_t[]){2, 3, 3, 5}, t);
        run_matmul_case(3, (int64_t[]){1, 3, 4}, 4, (int64_t[]){2, 2, 4, 5}, 4,
                        (int64_t[]){2, 2, 3, 5}, t);
        run_matmul_case(1, (int64_t[]){4}, 3, (int64_t[]){2, 4, 5}, 2, (int64_t[]){2, 5}, t);
        run_matmul_case(4, (int64_t[]){2, 3, 3, 4}, 1, (int64_t[]){4}, 3, (int64_t[]){2, 3, 3},
                        t);
        run_matmul_case(4, (int64_t[]){1, 1, 5, 4}, 2, (int64_t[]){4, 5}, 4,
                        (int64_t[]){1, 1, 5, 5}, t);
        run_matmul_case(3, (int64_t[]){8, 40, 48}, 3, (int64_t[]){8, 48, 24}, 3,
                        (int64_t[]){8, 40, 24}, t);
    }
    int64_t da[3] = {2, 3, 4}, db[3] = {3, 4, 5};
    nnq_tensor A = tensor_rand(3, da), B = tensor_rand(3, db), y;
    memset(&y, 0, sizeof y);
    const nnq_tensor *in[2] = {&A, &B};
    nnq_tensor *out[1] = {&y};
    nnq_node node = node_new("MatMul");
    CHECK_STATUS(run_op("MatMul", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE); /* batch 2 vs 3 */
    in[1] = &A;
    CHECK_STATUS(run_op("MatMul", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE); /* inner 4 vs 3 */
    nnq_tensor_release(&A);
    nnq_tensor_release(&B);
}

/* ---- BatchNormalization ---- */

static void run_bn_case(int rank, const int64_t *dims, float eps, int threads) {
    int64_t c = dims[1], cd[1] = {c};
    nnq_tensor x = tensor_rand(rank, dims), scale = tensor_rand(1, cd), bias = tensor_rand(1, cd);
    nnq_tensor mean = tensor_rand(1, cd), var = tensor_rand(1, cd), y;
    memset(&y, 0, sizeof y);
    for (int64_t i = 0; i < c; i++) nnq_f32(&var)[i] = fabsf(nnq_f32(&var)[i]) + 0.1f;
    int64_t nx = nnq_tensor_numel(&x), inner = nx / (dims[0] * c);
    float *ref = malloc(sizeof(float) * (size_t)nx);
    for (int64_t i = 0; i < nx; i++) {
        int64_t ch = i / inner % c;
        ref[i] = (float)(((double)nnq_f32(&x)[i] - nnq_f32(&mean)[ch]) /
                             sqrt((double)nnq_f32(&var)[ch] + eps) * nnq_f32(&scale)[ch] +
                         nnq_f32(&bias)[ch]);
    }
    nnq_node node = node_new("BatchNormalization");
    CHECK_OK(nnq_node_set_float(&node, "epsilon", eps));
    const nnq_tensor *in[5] = {&x, &scale, &bias, &mean, &var};
    nnq_tensor *out[1] = {&y};
    char what[64];
    snprintf(what, sizeof what, "BatchNormalization rank %d t%d", rank, threads);
    nnq_status s = run_op("BatchNormalization", &node, 5, in, 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else {
        expect_close(what, &y, ref, rank, dims);
    }
    /* training_mode=1 (batch statistics) is covered by test_grad_dense. */
    free(ref);
    node_free(&node);
    nnq_tensor *all[6] = {&x, &scale, &bias, &mean, &var, &y};
    for (int i = 0; i < 6; i++) nnq_tensor_release(all[i]);
}

static void test_batchnorm(void) {
    for (int t = 1; t <= 2; t++) {
        run_bn_case(2, (int64_t[]){4, 6}, 1e-5f, t);
        run_bn_case(4, (int64_t[]){2, 3, 4, 5}, 1e-2f, t);
        run_bn_case(5, (int64_t[]){2, 3, 2, 3, 4}, 1e-5f, t);
        run_bn_case(4, (int64_t[]){4, 16, 32, 32}, 1e-3f, t);
    }
}

/* ---- MaxPool / AveragePool ---- */

typedef struct pool_case {
    int k;
    int64_t n, c, in[3], kernel[3], stride[3], dil[3], pads[6];
    const char *auto_pad;
    int ceil_mode, include_pad;
} pool_case;

/* Output size with explicit pads, including the rule that drops a
 * ceil_mode window starting in the end padding. */
static int64_t ref_pool_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                            int ceil_mode) {
    int64_t span = in + pb + pe - (k - 1) * d - 1;
    int64_t out = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    if (ceil_mode && (out - 1) * s >= in + pb) out--;
    return out;
}

/* kind 0: max (with flat indices, row-major), 1: average. */
static void pool_ref(int kind, const pool_case *pc, const int64_t *pads, const float *x,
                     float *y, int64_t *idx, const int64_t *out3) {
    int64_t in3[3], k3[3], s3[3], d3[3], pb[3], pe[3];
    int k = pc->k;
    lift3(k, pc->in, 1, in3);
    lift3(k, pc->kernel, 1, k3);
    lift3(k, pc->stride, 1, s3);
    lift3(k, pc->dil, 1, d3);
    lift3(k, pads, 0, pb);
    lift3(k, pads + k, 0, pe);
    int64_t plane = in3[0] * in3[1] * in3[2], o = 0;
    for (int64_t p = 0; p < pc->n * pc->c; p++)
        for (int64_t od = 0; od < out3[0]; od++)
            for (int64_t oh = 0; oh < out3[1]; oh++)
                for (int64_t ow = 0; ow < out3[2]; ow++, o++) {
                    double sum = 0, best = -INFINITY;
                    int64_t count = 0, padded = 0, at = -1;
                    for (int64_t kd = 0; kd < k3[0]; kd++)
                        for (int64_t kh = 0; kh < k3[1]; kh++)
                            for (int64_t kw = 0; kw < k3[2]; kw++) {
                                int64_t id = od * s3[0] - pb[0] + kd * d3[0];
                                int64_t ih = oh * s3[1] - pb[1] + kh * d3[1];
                                int64_t iw = ow * s3[2] - pb[2] + kw * d3[2];
                                if (id >= -pb[0] && id < in3[0] + pe[0] && ih >= -pb[1] &&
                                    ih < in3[1] + pe[1] && iw >= -pb[2] && iw < in3[2] + pe[2])
                                    padded++;
                                if (id < 0 || id >= in3[0] || ih < 0 || ih >= in3[1] || iw < 0 ||
                                    iw >= in3[2])
                                    continue;
                                int64_t flat = (id * in3[1] + ih) * in3[2] + iw;
                                double v = x[p * plane + flat];
                                sum += v;
                                count++;
                                if (v > best) {
                                    best = v;
                                    at = p * plane + flat;
                                }
                            }
                    if (kind == 0) {
                        y[o] = (float)best;
                        if (idx) idx[o] = at;
                    } else {
                        y[o] = (float)(sum / (double)(pc->include_pad ? padded : count));
                    }
                }
}

static void run_pool_case(int kind, const pool_case *pc, int threads, bool with_indices) {
    const char *op = kind == 0 ? "MaxPool" : "AveragePool";
    int k = pc->k, rank = k + 2;
    int64_t xd[5] = {pc->n, pc->c}, yd[5] = {pc->n, pc->c}, pads[6], out3[3] = {1, 1, 1};
    for (int d = 0; d < k; d++) xd[2 + d] = pc->in[d];
    nnq_tensor x = tensor_rand(rank, xd), y, ind;
    memset(&y, 0, sizeof y);
    memset(&ind, 0, sizeof ind);
    nnq_node node = node_new(op);
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", k, pc->kernel));
    CHECK_OK(nnq_node_set_ints(&node, "strides", k, pc->stride));
    if (kind == 0) CHECK_OK(nnq_node_set_ints(&node, "dilations", k, pc->dil));
    CHECK_OK(nnq_node_set_int(&node, "ceil_mode", pc->ceil_mode));
    if (kind == 1) CHECK_OK(nnq_node_set_int(&node, "count_include_pad", pc->include_pad));
    if (pc->auto_pad) {
        CHECK_OK(nnq_node_set_string(&node, "auto_pad", pc->auto_pad));
        ref_auto_pads(k, pc->in, pc->kernel, pc->stride, pc->dil, pc->auto_pad, pads);
    } else {
        CHECK_OK(nnq_node_set_ints(&node, "pads", 2 * k, pc->pads));
        memcpy(pads, pc->pads, sizeof pads);
    }
    for (int d = 0; d < k; d++) {
        bool same = pc->auto_pad && strncmp(pc->auto_pad, "SAME", 4) == 0;
        yd[2 + d] = same ? (pc->in[d] + pc->stride[d] - 1) / pc->stride[d]
                         : ref_pool_out(pc->in[d], pc->kernel[d], pc->stride[d], pc->dil[d],
                                        pads[d], pads[k + d], pc->ceil_mode);
        out3[3 - k + d] = yd[2 + d];
    }
    int64_t ny = nnq_shape_numel(rank, yd);
    float *ref = malloc(sizeof(float) * (size_t)ny);
    int64_t *ref_idx = malloc(sizeof(int64_t) * (size_t)ny);
    pool_ref(kind, pc, pads, nnq_f32(&x), ref, ref_idx, out3);

    const nnq_tensor *in[1] = {&x};
    nnq_tensor *out[2] = {&y, with_indices ? &ind : NULL};
    char what[128];
    snprintf(what, sizeof what, "%s %dD k%lld s%lld d%lld %s ceil%d incl%d t%d", op, k,
             (long long)pc->kernel[k - 1], (long long)pc->stride[k - 1],
             (long long)pc->dil[k - 1], pc->auto_pad ? pc->auto_pad : "pads", pc->ceil_mode,
             pc->include_pad, threads);
    nnq_status s = run_op(op, &node, 1, in, with_indices ? 2 : 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else {
        expect_close(what, &y, ref, rank, yd);
        if (with_indices && same_dims(&ind, rank, yd)) {
            int64_t bad = 0;
            for (int64_t i = 0; i < ny; i++) bad += nnq_i64(&ind)[i] != ref_idx[i];
            if (bad) {
                fprintf(stderr, "%s: %lld wrong indices\n", what, (long long)bad);
                check_failures_++;
            }
        }
    }
    free(ref);
    free(ref_idx);
    node_free(&node);
    nnq_tensor_release(&x);
    nnq_tensor_release(&y);
    nnq_tensor_release(&ind);
}

static void test_pools(void) {
    static const pool_case cases[] = {
        /* k, n, c, in, kernel, stride, dil, pads, auto_pad, ceil_mode, include_pad */
        {2, 1, 3, {8, 8}, {2, 2}, {2, 2}, {1, 1}, {0}, NULL, 0, 0},
        {2, 2, 3, {9, 7}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 0},
        {2, 2, 3, {9, 7}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 1},
        {2, 1, 2, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {0}, NULL, 1, 0},
        {2, 1, 2, {5, 6}, {2, 2}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 1, 0}, /* drops a window */
        {2, 1, 2, {7, 6}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 1, 1}, NULL, 1, 1},
        {2, 1, 2, {4, 4}, {2, 2}, {1, 1}, {2, 2}, {0}, NULL, 0, 0},
        {2, 2, 2, {9, 8}, {3, 2}, {2, 1}, {2, 3}, {2, 1, 1, 2}, NULL, 1, 0},
        {2, 1, 3, {7, 8}, {3, 2}, {2, 1}, {1, 1}, {0}, "SAME_UPPER", 0, 0},
        {2, 1, 3, {7, 8}, {2, 3}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", 0, 0},
        {2, 1, 3, {7, 8}, {2, 3}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", 0, 1},
        {2, 1, 1, {5, 5}, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, NULL, 0, 1},
        {2, 4, 16, {32, 32}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, 0, 0},
        {1, 2, 3, {17}, {3}, {2}, {1}, {1, 1}, NULL, 0, 0},
        {1, 2, 3, {16}, {4}, {3}, {2}, {2, 0}, NULL, 1, 1},
        {3, 1, 2, {6, 5, 7}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0}, NULL, 0, 0},
        {3, 2, 2, {6, 5, 7}, {3, 2, 3}, {2, 1, 2}, {1, 1, 1}, {1, 0, 1, 1, 1, 0}, NULL, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 2; t++) {
            run_pool_case(0, &cases[i], t, i % 2 == 0);
            bool dilated = cases[i].dil[0] > 1 || cases[i].dil[cases[i].k - 1] > 1;
            if (!dilated) run_pool_case(1, &cases[i], t, false);
        }
}

/* Column-major indices (storage_order=1) and a uint8 MaxPool. */
static void test_maxpool_extras(void) {
    enum { N = 2, H = 3, W = 4, OH = 2, OW = 3 };
    int64_t xd[4] = {N, 1, H, W};
    nnq_tensor x = tensor_new(NNQ_DT_FLOAT, 4, xd), y, ind;
    memset(&y, 0, sizeof y);
    memset(&ind, 0, sizeof ind);
    for (int i = 0; i < N * H * W; i++) nnq_f32(&x)[i] = (float)((i * 7) % 24); /* distinct per plane */
    nnq_node node = node_new("MaxPool");
    int64_t ks[2] = {2, 2};
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", 2, ks));
    CHECK_OK(nnq_node_set_int(&node, "storage_order", 1));
    const nnq_tensor *in[1] = {&x};
    nnq_tensor *out[2] = {&y, &ind};
    CHECK_OK(run_op("MaxPool", &node, 1, in, 2, out, 1));
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const float *xp = nnq_f32(&x) + n * H * W;
                int bh = oh, bw = ow;
                for (int kh = 0; kh < 2; kh++)
                    for (int kw = 0; kw < 2; kw++)
                        if (xp[(oh + kh) * W + ow + kw] > xp[bh * W + bw]) {
                            bh = oh + kh;
                            bw = ow + kw;
                        }
                int o = (n * OH + oh) * OW + ow;
                bad += nnq_f32(&y)[o] != xp[bh * W + bw];
                bad += nnq_i64(&ind)[o] != n * H * W + bh + H * bw; /* column-major */
            }
    CHECK(bad == 0);
    node_free(&node);
    nnq_tensor_release(&x);
    nnq_tensor_release(&y);
    nnq_tensor_release(&ind);

    int64_t ud[4] = {1, 1, 3, 3};
    nnq_tensor u = tensor_new(NNQ_DT_UINT8, 4, ud), uy;
    memset(&uy, 0, sizeof uy);
    const uint8_t vals[9] = {3, 200, 7, 0, 255, 1, 9, 9, 8};
    memcpy(u.data, vals, 9);
    node = node_new("MaxPool");
    int64_t k2[2] = {2, 2};
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", 2, k2));
    in[0] = &u;
    out[0] = &uy;
    CHECK_OK(run_op("MaxPool", &node, 1, in, 1, out, 1));
    const uint8_t want[4] = {255, 255, 255, 255};
    CHECK(uy.dtype == NNQ_DT_UINT8 && memcmp(uy.data, want, 4) == 0);
    node_free(&node);
    nnq_tensor_release(&u);
    nnq_tensor_release(&uy);
}

static void test_global_avgpool(void) {
    static const int64_t shapes[3][5] = {{2, 3, 7}, {2, 5, 4, 6}, {1, 2, 3, 4, 5}};
    for (int si = 0; si < 3; si++)
        for (int t = 1; t <= 2; t++) {
            int rank = si + 3;
            nnq_tensor x = tensor_rand(rank, shapes[si]), y;
            memset(&y, 0, sizeof y);
            int64_t planes = shapes[si][0] * shapes[si][1];
            int64_t size = nnq_tensor_numel(&x) / planes, yd[5] = {shapes[si][0], shapes[si][1], 1, 1, 1};
            float *ref = malloc(sizeof(float) * (size_t)planes);
            for (int64_t p = 0; p < planes; p++) {
                double s = 0;
                for (int64_t i = 0; i < size; i++) s += nnq_f32(&x)[p * size + i];
                ref[p] = (float)(s / (double)size);
            }
            nnq_node node = node_new("GlobalAveragePool");
            const nnq_tensor *in[1] = {&x};
            nnq_tensor *out[1] = {&y};
            CHECK_OK(run_op("GlobalAveragePool", &node, 1, in, 1, out, t));
            expect_close("GlobalAveragePool", &y, ref, rank, yd);
            free(ref);
            nnq_tensor_release(&x);
            nnq_tensor_release(&y);
        }
}

/* ---- Pad ---- */

/* Reference source index: reflect by folding back and forth until inside. */
static int64_t ref_pad_index(int64_t i, int64_t n, const char *mode) {
    if (i >= 0 && i < n) return i;
    if (strcmp(mode, "constant") == 0) return -1;
    if (strcmp(mode, "edge") == 0) return i < 0 ? 0 : n - 1;
    if (strcmp(mode, "wrap") == 0) {
        while (i < 0) i += n;
        while (i >= n) i -= n;
        return i;
    }
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

static void run_pad_case(int rank, const int64_t *dims, const int64_t *pads, const char *mode,
                         int n_axes, const int64_t *axes, bool legacy, int threads) {
    nnq_tensor x = tensor_rand(rank, dims), y, cv, pt, at;
    memset(&y, 0, sizeof y);
    memset(&at, 0, sizeof at);
    int64_t full[16] = {0}, yd[8];
    int na = n_axes ? n_axes : rank;
    for (int i = 0; i < na; i++) {
        int ax = n_axes ? (int)(axes[i] < 0 ? axes[i] + rank : axes[i]) : i;
        full[ax] = pads[i];
        full[rank + ax] = pads[na + i];
    }
    for (int i = 0; i < rank; i++) yd[i] = dims[i] + full[i] + full[rank + i];
    int64_t ny = nnq_shape_numel(rank, yd);
    const float value = 2.5f;
    cv = tensor_new(NNQ_DT_FLOAT, 0, NULL);
    nnq_f32(&cv)[0] = value;
    pt = tensor_i64(2 * na, pads);
    if (n_axes) at = tensor_i64(n_axes, axes);
    float *ref = malloc(sizeof(float) * (size_t)(ny > 0 ? ny : 1));
    for (int64_t o = 0; o < ny; o++) {
        int64_t rem = o, src = 0, stride = 1;
        bool constant = false;
        for (int i = rank - 1; i >= 0; i--) {
            int64_t oi = rem % yd[i];
            rem /= yd[i];
            int64_t s = ref_pad_index(oi - full[i], dims[i], mode);
            if (s < 0) constant = true;
            src += s * stride;
            stride *= dims[i];
        }
        ref[o] = constant ? value : nnq_f32(&x)[src];
    }
    nnq_node node = node_new("Pad");
    CHECK_OK(nnq_node_set_string(&node, "mode", mode));
    const nnq_tensor *in[4] = {&x, &pt, &cv, n_axes ? &at : NULL};
    int n_in = n_axes ? 4 : 3;
    if (legacy) { /* opset < 11: pads and value as attributes */
        CHECK_OK(nnq_node_set_ints(&node, "pads", 2 * rank, full));
        CHECK_OK(nnq_node_set_float(&node, "value", value));
        n_in = 1;
    }
    nnq_tensor *out[1] = {&y};
    char what[96];
    snprintf(what, sizeof what, "Pad rank %d %s axes %d%s t%d", rank, mode, n_axes,
             legacy ? " legacy" : "", threads);
    nnq_status s = run_op("Pad", &node, n_in, in, 1, out, threads);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", what, nnq_last_error());
        check_failures_++;
    } else if (!same_dims(&y, rank, yd)) {
        fprintf(stderr, "%s: wrong shape\n", what);
        check_failures_++;
    } else if (ny > 0 && memcmp(y.data, ref, sizeof(float) * (size_t)ny) != 0) {
        fprintf(stderr, "%s: values differ\n", what); /* pure data movement: exact */
        check_failures_++;
    }
    free(ref);
    node_free(&node);
    nnq_tensor *all[5] = {&x, &y, &cv, &pt, &at};
    for (int i = 0; i < 5; i++) nnq_tensor_release(all[i]);
}

static void test_pad(void) {
    static const char *const modes[4] = {"constant", "reflect", "edge", "wrap"};
    for (int t = 1; t <= 2; t++)
        for (int mi = 0; mi < 4; mi++) {
            const char *m = modes[mi];
            run_pad_case(4, (int64_t[]){1, 3, 4, 5}, (int64_t[]){0, 0, 1, 2, 0, 0, 3, 1}, m, 0,
                         NULL, false, t);
            run_pad_case(2, (int64_t[]){3, 4}, (int64_t[]){1, 0, 2, 3}, m, 0, NULL, false, t);
            run_pad_case(1, (int64_t[]){6}, (int64_t[]){4, 2}, m, 0, NULL, false, t);
            /* negative pads crop */
            run_pad_case(3, (int64_t[]){2, 5, 6}, (int64_t[]){1, -1, 2, 0, -2, -1}, m, 0, NULL,
                         false, t);
            /* axes input (opset 18), negative axis */
            run_pad_case(3, (int64_t[]){2, 5, 6}, (int64_t[]){1, 2, 3, 0}, m, 2,
                         (int64_t[]){-1, 0}, false, t);
            /* legacy attribute form */
            run_pad_case(3, (int64_t[]){2, 3, 4}, (int64_t[]){0, 1, 2, 1, 1, 0}, m, 0, NULL,
                         true, t);
            run_pad_case(4, (int64_t[]){2, 16, 64, 64}, (int64_t[]){0, 0, 2, 3, 0, 1, 3, 2}, m, 0,
                         NULL, false, t);
        }
    /* reflect wider than the axis folds repeatedly (numpy semantics) */
    run_pad_case(1, (int64_t[]){3}, (int64_t[]){5, 6}, "reflect", 0, NULL, false, 1);

    /* int32 data with edge mode, as in the ONNX test_edge_pad case */
    int64_t d[2] = {2, 3}, p[4] = {1, 0, 0, 2};
    nnq_tensor x = tensor_new(NNQ_DT_INT32, 2, d), pt = tensor_i64(4, p), y;
    memset(&y, 0, sizeof y);
    for (int i = 0; i < 6; i++) ((int32_t *)x.data)[i] = i + 1;
    nnq_node node = node_new("Pad");
    CHECK_OK(nnq_node_set_string(&node, "mode", "edge"));
    const nnq_tensor *in[2] = {&x, &pt};
    nnq_tensor *out[1] = {&y};
    CHECK_OK(run_op("Pad", &node, 2, in, 1, out, 1));
    const int32_t want[15] = {1, 2, 3, 3, 3, 1, 2, 3, 3, 3, 4, 5, 6, 6, 6};
    CHECK(y.dtype == NNQ_DT_INT32 && y.dims[0] == 3 && y.dims[1] == 5 &&
          memcmp(y.data, want, sizeof want) == 0);
    /* pads not constant at infer time: unknown dims, rank kept */
    nnq_tensor pshape = pt;
    pshape.data = NULL;
    in[1] = &pshape;
    nnq_tensor y2;
    memset(&y2, 0, sizeof y2);
    nnq_op_args a;
    memset(&a, 0, sizeof a);
    nnq_tensor *out2[1] = {&y2};
    a.node = &node;
    a.n_in = 2;
    a.in = in;
    a.n_out = 1;
    a.out = out2;
    a.threads = 1;
    CHECK_OK(nnq_op_find("Pad")->infer(&a));
    CHECK(y2.rank == 2 && y2.dims[0] == -1 && y2.dims[1] == -1);
    /* cropping more than the axis holds */
    int64_t bad[4] = {0, -2, 0, -2};
    nnq_tensor pb = tensor_i64(4, bad);
    in[1] = &pb;
    nnq_tensor y3;
    memset(&y3, 0, sizeof y3);
    out[0] = &y3;
    CHECK_STATUS(run_op("Pad", &node, 2, in, 1, out, 1), NNQ_ERR_SHAPE);
    node_free(&node);
    nnq_tensor_release(&x);
    nnq_tensor_release(&pt);
    nnq_tensor_release(&pb);
    nnq_tensor_release(&y);
}

int main(void) {
    xs_state = 12345u;
    test_conv();
    test_conv_errors();
    test_gemm();
    test_matmul();
    test_batchnorm();
    test_pools();
    test_maxpool_extras();
    test_global_avgpool();
    test_pad();
    return check_finish("test_ops_dense");
}
