/* Backward passes of the dense ops (Conv, Gemm, MatMul, BatchNormalization,
 * MaxPool, AveragePool, GlobalAveragePool, Pad) against central finite
 * differences (gradcheck.h), for inputs and parameters; BN's training-mode
 * running-statistics update against a hand computation; and bit-identical
 * results from two backward runs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_fixture.h"
#include "gradcheck.h"
#include "ir/graph.h"
#include "ops/gemm.h"
#include "ops/op.h"

/* Error bound for ops that are linear in each input: the central
 * difference is exact up to float rounding in the forward. */
#define TOL_LINEAR 2e-3
/* BN with batch statistics: the step moves the mean and variance of its
 * channel too, whose float rounding shows up in the quotient. */
#define TOL_NONLINEAR 5e-3

/* ---- harness ---- */


/* ---- Conv ---- */

typedef struct conv_case {
    const char *what;
    int k;                 /* spatial dims */
    int64_t n, c, m, group;
    int64_t in[3], kernel[3], stride[3], dil[3], pads[6];
    const char *auto_pad;  /* NULL: explicit pads */
    bool bias;
    bool skip_dx;          /* a first layer: dX not requested (in_grad[0] NULL) */
} conv_case;

static void run_conv_case(const conv_case *cc, int threads) {
    int k = cc->k, rank = k + 2;
    int64_t xd[5] = {cc->n, cc->c}, wd[5] = {cc->m, cc->c / cc->group}, bd[1] = {cc->m};
    for (int d = 0; d < k; d++) {
        xd[2 + d] = cc->in[d];
        wd[2 + d] = cc->kernel[d];
    }
    nnq_tensor x = tensor_rand(rank, xd), w = tensor_rand(rank, wd), b = tensor_rand(1, bd);
    nnq_node node = node_new("Conv");
    CHECK_OK(nnq_node_set_int(&node, "group", cc->group));
    CHECK_OK(nnq_node_set_ints(&node, "strides", k, cc->stride));
    CHECK_OK(nnq_node_set_ints(&node, "dilations", k, cc->dil));
    if (cc->auto_pad) CHECK_OK(nnq_node_set_string(&node, "auto_pad", cc->auto_pad));
    else CHECK_OK(nnq_node_set_ints(&node, "pads", 2 * k, cc->pads));
    const nnq_tensor *in[3] = {&x, &w, &b};
    bool wrt[3] = {!cc->skip_dx, true, true};
    gradcheck_spec s = gradcheck_defaults("Conv", &node, cc->bias ? 3 : 2, in);
    s.threads = threads;
    s.wrt = wrt;
    s.samples = nnq_tensor_numel(&x) > 4000 ? 40 : 200; /* big ones: forwards are slower */
    char what[128];
    snprintf(what, sizeof what, "Conv %s t%d", cc->what, threads);
    gradcheck_expect(what, &s, TOL_LINEAR);
    node_free(&node);
    nnq_tensor_release(&x);
    nnq_tensor_release(&w);
    nnq_tensor_release(&b);
}

static void test_conv(void) {
    static const conv_case cases[] = {
        /* what, k, n, c, m, group, in, kernel, stride, dil, pads, auto_pad, bias, skip_dx */
        {"3x3 pad1", 2, 2, 3, 4, 1, {6, 5}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"3x2 stride2 asym pads", 2, 2, 3, 5, 1, {9, 7}, {3, 2}, {2, 2}, {1, 1}, {1, 0, 0, 2}, NULL, true, false},
        {"grouped g2", 2, 2, 4, 6, 2, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"grouped dilated strided", 2, 2, 4, 6, 2, {7, 8}, {2, 3}, {2, 1}, {1, 2}, {0, 2, 1, 1}, NULL, false, false},
        {"dilation2", 2, 1, 3, 4, 1, {9, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 1, 2, 1}, NULL, true, false},
        {"SAME_UPPER stride2", 2, 1, 3, 4, 1, {7, 7}, {4, 4}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", true, false},
        {"SAME_LOWER", 2, 1, 3, 4, 1, {7, 6}, {3, 4}, {2, 2}, {1, 1}, {0}, "SAME_LOWER", true, false},
        {"1x1 direct", 2, 3, 8, 6, 1, {5, 6}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, true, false},
        {"1x1 grouped direct", 2, 2, 8, 4, 2, {4, 5}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, true, false},
        {"1x1 stride2", 2, 2, 8, 4, 1, {7, 6}, {1, 1}, {2, 2}, {1, 1}, {0}, NULL, true, false},
        {"1x1 padded", 2, 1, 3, 4, 1, {4, 4}, {1, 1}, {1, 1}, {1, 1}, {1, 0, 0, 1}, NULL, true, false},
        {"first layer (no dX)", 2, 2, 1, 4, 1, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, true},
        /* depthwise: multiplier 1 and 2, strides, dilation, asymmetric pads */
        {"depthwise", 2, 2, 4, 4, 4, {8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"depthwise stride2", 2, 2, 4, 4, 4, {9, 10}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"depthwise x2 dil asym", 2, 2, 3, 6, 3, {10, 9}, {3, 5}, {1, 3}, {2, 1}, {2, 0, 1, 2}, NULL, true, false},
        {"depthwise 5x5 SAME", 2, 1, 4, 4, 4, {8, 8}, {5, 5}, {2, 2}, {1, 1}, {0}, "SAME_UPPER", false, false},
        {"depthwise 1-D", 1, 2, 3, 3, 3, {17}, {3}, {2}, {1}, {1, 2}, NULL, true, false},
        /* 1-D and 3-D */
        {"1-D", 1, 2, 3, 5, 1, {20}, {5}, {2}, {1}, {2, 1}, NULL, true, false},
        {"1-D grouped dilated", 1, 1, 3, 6, 3, {17}, {3}, {1}, {2}, {2, 2}, NULL, true, false},
        {"3-D", 3, 2, 2, 3, 1, {5, 4, 4}, {3, 2, 3}, {1, 2, 1}, {1, 1, 1}, {1, 0, 1, 1, 1, 0}, NULL, true, false},
        {"3-D depthwise", 3, 1, 3, 3, 3, {5, 5, 6}, {3, 3, 3}, {2, 1, 2}, {1, 2, 1}, {1, 2, 1, 1, 2, 1}, NULL, true, false},
        /* large enough for the parallel paths (per-thread dW partials) */
        {"parallel 3x3", 2, 5, 8, 8, 1, {16, 16}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"parallel 1x1", 2, 4, 32, 16, 1, {16, 16}, {1, 1}, {1, 1}, {1, 1}, {0}, NULL, true, false},
        {"parallel depthwise", 2, 3, 16, 16, 16, {20, 20}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        /* one image: items fewer than threads, SGEMM threads instead */
        {"single image", 2, 1, 16, 16, 1, {24, 24}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        /* im2col: column matrix over the chunk cap, lines in several chunks */
        {"chunked lines", 2, 1, 16, 2, 1, {200, 200}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        /* stride 1 with pads beyond the kernel extent: im2col, not taps */
        {"3x3 pad3 (im2col)", 2, 2, 3, 4, 1, {5, 6}, {3, 3}, {1, 1}, {1, 1}, {3, 1, 2, 3}, NULL, true, false},
        /* tap path edges: pads 0 and the full extent, unpadded, 1x1 grouped taps */
        {"tap 5x3 pads 0/ext", 2, 2, 3, 5, 1, {9, 7}, {5, 3}, {1, 1}, {1, 1}, {0, 2, 4, 0}, NULL, true, false},
        {"tap valid 2x2 grouped", 2, 2, 6, 9, 3, {6, 7}, {2, 2}, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, true, false},
        {"tap wide rows", 2, 3, 5, 7, 1, {3, 40}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 2; t++) run_conv_case(&cases[i], t);
}

/* ---- Tap GEMM kernels (conv's stride-1 path) against plain loops, per ISA ---- */

static const char *const tap_isas[3] = {"generic", "avx2", "avx512"};

/* Back to the widest ISA the CPU has. */
static void tap_isa_restore(void) {
    for (int i = 2; i >= 0; i--)
        if (nnq_tap_limit_isa(tap_isas[i])) return;
}

/* Sizes around every tile edge: rows 1..13 (tiles of 4, 6 and 8), columns
 * not multiples of 8, 16 or 32, several channels and taps. */
static void test_tap_kernels(void) {
    static const int ms[4] = {1, 5, 8, 13}, ns[4] = {1, 7, 45, 100};
    const int64_t off[4] = {0, 1, 6, 13};
    const int taps = 4, chans = 3;
    for (int isa = 0; isa < 3; isa++) {
        if (!nnq_tap_limit_isa(tap_isas[isa])) continue;
        double worst = 0;
        for (int mi = 0; mi < 4; mi++)
            for (int ni = 0; ni < 4; ni++) {
                int m = ms[mi], n = ns[ni];
                int64_t plane = n + 13 + NNQ_TAP_OVERRUN, ld = (n + 15) / 16 * 16;
                int kk = chans * taps;
                float *x = malloc(sizeof(float) * (size_t)(chans * plane));
                float *a = malloc(sizeof(float) * (size_t)(m * kk));
                float *y = malloc(sizeof(float) * (size_t)(m * n));
                float *dy = calloc((size_t)(m * ld), sizeof(float));
                float *dw = malloc(sizeof(float) * (size_t)(m * kk));
                for (int64_t i = 0; i < chans * plane; i++) x[i] = xs_frand();
                for (int i = 0; i < m * kk; i++) a[i] = xs_frand();
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) dy[i * ld + j] = xs_frand();
                for (int acc = 0; acc <= 1; acc++) {
                    for (int i = 0; i < m * n; i++) y[i] = 0.5f;
                    nnq_tap_gemm(m, n, chans, taps, a, kk, x, plane, off, y, n, acc);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double want = acc ? 0.5 : 0, mag = 1;
                            for (int c = 0; c < chans; c++)
                                for (int t = 0; t < taps; t++) {
                                    double v = (double)a[i * kk + c * taps + t] * x[c * plane + off[t] + j];
                                    want += v;
                                    mag += fabs(v);
                                }
                            double e = fabs(y[i * n + j] - want) / mag;
                            worst = e > worst ? e : worst;
                        }
                }
                for (int i = 0; i < m * kk; i++) dw[i] = 0.25f;
                nnq_tap_gemm_grad(m, n, chans, taps, dy, ld, x, plane, off, dw, kk);
                for (int i = 0; i < m; i++)
                    for (int k = 0; k < kk; k++) {
                        double want = 0.25, mag = 1;
                        for (int j = 0; j < n; j++) {
                            double v = (double)dy[i * ld + j] * x[(k / taps) * plane + off[k % taps] + j];
                            want += v;
                            mag += fabs(v);
                        }
                        double e = fabs(dw[i * kk + k] - want) / mag;
                        worst = e > worst ? e : worst;
                    }
                free(x);
                free(a);
                free(y);
                free(dy);
                free(dw);
            }
        fprintf(stderr, "  tap kernels (%s): max error %.1e of the terms' magnitude\n",
                tap_isas[isa], worst);
        CHECK(worst < 1e-6);
    }
    /* conv through each ISA's kernels, end to end */
    static const conv_case cases[] = {
        {"taps 3x3", 2, 3, 5, 7, 1, {6, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true, false},
        {"taps 2x3 dil grouped", 2, 2, 4, 6, 2, {7, 7}, {2, 3}, {1, 1}, {2, 1}, {1, 0, 2, 2}, NULL, true, false},
    };
    for (int isa = 0; isa < 3; isa++) {
        if (!nnq_tap_limit_isa(tap_isas[isa])) continue;
        for (int i = 0; i < 2; i++) {
            conv_case cc = cases[i];
            char what[64];
            snprintf(what, sizeof what, "%s %s", cases[i].what, tap_isas[isa]);
            cc.what = what;
            run_conv_case(&cc, 1 + i);
        }
    }
    tap_isa_restore();
}

/* ---- Gemm and MatMul ---- */

static void test_gemm(void) {
    /* C shapes: none, scalar, (N), (1, N), (M, 1), (M, N) */
    static const int c_rank[6] = {-1, 0, 1, 2, 2, 2};
    const int64_t M = 5, K = 7, N = 4;
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int ci = 0; ci < 6; ci++) {
                int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
                int64_t cd[2];
                switch (ci) {
                case 2: cd[0] = N; break;
                case 3: cd[0] = 1; cd[1] = N; break;
                case 4: cd[0] = M; cd[1] = 1; break;
                case 5: cd[0] = M; cd[1] = N; break;
                default: break;
                }
                nnq_tensor A = tensor_rand(2, ad), B = tensor_rand(2, bd);
                nnq_tensor C = tensor_rand(c_rank[ci] < 0 ? 0 : c_rank[ci], cd);
                nnq_node node = node_new("Gemm");
                CHECK_OK(nnq_node_set_int(&node, "transA", ta));
                CHECK_OK(nnq_node_set_int(&node, "transB", tb));
                CHECK_OK(nnq_node_set_float(&node, "alpha", 0.75f));
                CHECK_OK(nnq_node_set_float(&node, "beta", ci % 2 ? 1.5f : 1.0f));
                const nnq_tensor *in[3] = {&A, &B, &C};
                gradcheck_spec s = gradcheck_defaults("Gemm", &node, c_rank[ci] < 0 ? 2 : 3, in);
                s.threads = 1 + (ci % 2);
                char what[96];
                snprintf(what, sizeof what, "Gemm transA=%d transB=%d C%s", ta, tb,
                         (const char *[]){"-", " scalar", " (N)", " (1,N)", " (M,1)", " (M,N)"}[ci]);
                gradcheck_expect(what, &s, TOL_LINEAR);
                node_free(&node);
                nnq_tensor_release(&A);
                nnq_tensor_release(&B);
                nnq_tensor_release(&C);
            }
    /* beta = 0: C is ignored and gets no gradient */
    int64_t ad[2] = {3, 4}, bd[2] = {4, 2}, cd[1] = {2};
    nnq_tensor A = tensor_rand(2, ad), B = tensor_rand(2, bd), C = tensor_rand(1, cd);
    nnq_node node = node_new("Gemm");
    CHECK_OK(nnq_node_set_float(&node, "beta", 0.0f));
    const nnq_tensor *in[3] = {&A, &B, &C};
    gradcheck_spec s = gradcheck_defaults("Gemm", &node, 3, in);
    nnq_tensor g[3];
    memset(g, 0, sizeof g);
    CHECK_OK(gradcheck_grads(&s, g));
    for (int i = 0; i < 2; i++) CHECK(nnq_f32(&g[2])[i] == 0.0f);
    gradcheck_expect("Gemm beta=0", &s, TOL_LINEAR);
    for (int i = 0; i < 3; i++) nnq_tensor_release(&g[i]);
    node_free(&node);
    nnq_tensor_release(&A);
    nnq_tensor_release(&B);
    nnq_tensor_release(&C);
}

typedef struct matmul_case {
    const char *what;
    int ra, rb;
    int64_t a[4], b[4];
} matmul_case;

static void test_matmul(void) {
    static const matmul_case cases[] = {
        {"2-D", 2, 2, {5, 6}, {6, 3}},
        {"3-D x 2-D (shared B)", 3, 2, {2, 4, 5}, {5, 3}},
        {"batched 3-D", 3, 3, {3, 4, 5}, {3, 5, 2}},
        {"A broadcast over batch", 3, 3, {1, 4, 5}, {3, 5, 2}},
        {"4-D x 3-D broadcast", 4, 3, {2, 1, 3, 4}, {3, 4, 2}},
        {"1-D x 2-D", 1, 2, {5}, {5, 3}},
        {"2-D x 1-D", 2, 1, {4, 5}, {5}},
        {"1-D x 3-D", 1, 3, {4}, {2, 4, 3}},
        {"3-D x 1-D", 3, 1, {2, 3, 4}, {4}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const matmul_case *mc = &cases[i];
        nnq_tensor A = tensor_rand(mc->ra, mc->a), B = tensor_rand(mc->rb, mc->b);
        nnq_node node = node_new("MatMul");
        const nnq_tensor *in[2] = {&A, &B};
        gradcheck_spec s = gradcheck_defaults("MatMul", &node, 2, in);
        s.threads = 1 + (int)(i % 2);
        char what[96];
        snprintf(what, sizeof what, "MatMul %s", mc->what);
        gradcheck_expect(what, &s, TOL_LINEAR);
        nnq_tensor_release(&A);
        nnq_tensor_release(&B);
    }
}

/* ---- BatchNormalization ---- */

/* Forward of one op with a->training as given; out[0..n_out) allocated
 * here (start empty); saved and scratch sized by the op. */
static nnq_status run_forward(const char *op, const nnq_node *node, int n_in,
                              const nnq_tensor **in, int n_out, nnq_tensor **out, bool training,
                              int threads) {
    const nnq_op_def *def = nnq_op_find(op);
    nnq_op_args a;
    nnq_status s;
    if (!def) return nnq_fail(NNQ_ERR_UNSUPPORTED, "op %s not registered", op);
    memset(&a, 0, sizeof a);
    a.node = node;
    a.opset = 15;
    a.n_in = n_in;
    a.in = in;
    a.n_out = n_out;
    a.out = out;
    a.threads = threads;
    a.training = training;
    NNQ_TRY(def->infer(&a));
    for (int i = 0; i < n_out; i++)
        if (out[i]) NNQ_TRY(nnq_tensor_alloc(out[i], out[i]->dtype, out[i]->rank, out[i]->dims));
    size_t sb = def->scratch_size ? def->scratch_size(&a) : 0;
    size_t vb = def->saved_size ? def->saved_size(&a) : 0;
    a.scratch = sb ? malloc(sb) : NULL;
    a.scratch_bytes = sb;
    a.saved = vb ? malloc(vb) : NULL;
    a.saved_bytes = vb;
    s = def->forward(&a);
    free(a.scratch);
    free(a.saved);
    return s;
}

typedef struct bn_case {
    const char *what;
    int rank;
    int64_t dims[5];
    bool training;
} bn_case;

static void bn_params(int64_t c, nnq_tensor *p) {
    int64_t cd[1] = {c};
    for (int i = 0; i < 4; i++) p[i] = tensor_rand(1, cd);
    for (int64_t j = 0; j < c; j++) {
        nnq_f32(&p[0])[j] = 1.0f + 0.5f * nnq_f32(&p[0])[j]; /* scale around 1 */
        nnq_f32(&p[3])[j] = 0.5f + 0.4f * nnq_f32(&p[3])[j]; /* positive variance */
    }
}

static void test_bn_grad(void) {
    static const bn_case cases[] = {
        {"training 4-D", 4, {4, 3, 3, 3}, true},
        {"training 2-D (after Gemm)", 2, {6, 5}, true},
        {"training 3-D", 3, {3, 4, 5}, true},
        {"training 5-D", 5, {2, 2, 2, 3, 2}, true},
        {"training parallel", 4, {8, 16, 24, 24}, true},
        {"eval 4-D", 4, {2, 3, 4, 4}, false},
        {"eval 2-D", 2, {4, 6}, false},
        {"eval parallel", 4, {8, 16, 24, 24}, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bn_case *bc = &cases[i];
        nnq_tensor x = tensor_rand(bc->rank, bc->dims), p[4];
        /* an offset and spread per channel, as real activations have */
        int64_t c = bc->dims[1], size = nnq_tensor_numel(&x) / bc->dims[0] / c;
        for (int64_t j = 0; j < nnq_tensor_numel(&x); j++)
            nnq_f32(&x)[j] = nnq_f32(&x)[j] * (1.0f + (float)((j / size) % c)) + 0.3f * (float)((j / size) % c);
        bn_params(c, p);
        nnq_node node = node_new("BatchNormalization");
        CHECK_OK(nnq_node_set_float(&node, "epsilon", 1e-3f));
        const nnq_tensor *in[5] = {&x, &p[0], &p[1], &p[2], &p[3]};
        /* running statistics are parameters the trainer updates, not
         * differentiated; in eval mode Y does depend on them, so check those too */
        bool wrt[5] = {true, true, true, !bc->training, !bc->training};
        gradcheck_spec s = gradcheck_defaults("BatchNormalization", &node, 5, in);
        s.training = bc->training;
        s.wrt = wrt;
        /* Batch statistics curve the loss by O(1/count) per element: a step
         * of 3e-3 * RMS keeps the O(h^2) term small for small batches; big
         * ones take 1e-2, where a smaller step would bring out the float
         * rounding of the channel's mean instead. */
        s.eps = bc->training && nnq_tensor_numel(&x) / c < 100 ? 3e-3 : 1e-2;
        s.samples = nnq_tensor_numel(&x) > 4000 ? 40 : 120;
        for (int t = 1; t <= 2; t++) {
            char what[96];
            snprintf(what, sizeof what, "BN %s t%d", bc->what, t);
            s.threads = t;
            /* eval: the running variance enters through 1/sqrt, curved too */
            gradcheck_expect(what, &s, TOL_NONLINEAR);
        }
        node_free(&node);
        nnq_tensor_release(&x);
        for (int j = 0; j < 4; j++) nnq_tensor_release(&p[j]);
    }
}

/* Training forward: Y from batch statistics, running stats updated in
 * place with momentum and the unbiased variance; the ONNX training_mode
 * outputs with the biased variance, leaving the inputs alone. */
static void test_bn_running_stats(void) {
    int64_t xd[4] = {3, 2, 2, 3}; /* 12 elements per channel */
    const int64_t n = 3, c = 2, size = 6, count = 18;
    nnq_tensor x = tensor_rand(4, xd), p[4], y, om, ov;
    memset(&y, 0, sizeof y);
    memset(&om, 0, sizeof om);
    memset(&ov, 0, sizeof ov);
    for (int64_t j = 0; j < nnq_tensor_numel(&x); j++) nnq_f32(&x)[j] = 2.0f * nnq_f32(&x)[j] + 1.0f;
    bn_params(c, p);
    float run_mean0[2], run_var0[2];
    memcpy(run_mean0, p[2].data, sizeof run_mean0);
    memcpy(run_var0, p[3].data, sizeof run_var0);
    double mean[2], var[2];
    for (int64_t ch = 0; ch < c; ch++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < size; k++) s += nnq_f32(&x)[(i * c + ch) * size + k];
        mean[ch] = s / count;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < size; k++) {
                double d = nnq_f32(&x)[(i * c + ch) * size + k] - mean[ch];
                q += d * d;
            }
        var[ch] = q / count; /* biased */
    }
    const float momentum = 0.9f, eps = 1e-5f;
    nnq_node node = node_new("BatchNormalization");
    CHECK_OK(nnq_node_set_float(&node, "momentum", momentum));
    const nnq_tensor *in[5] = {&x, &p[0], &p[1], &p[2], &p[3]};
    nnq_tensor *out[1] = {&y};
    CHECK_OK(run_forward("BatchNormalization", &node, 5, in, 1, out, true, 1));
    for (int64_t ch = 0; ch < c; ch++) {
        double want_mean = 0.9 * run_mean0[ch] + 0.1 * mean[ch];
        double want_var = 0.9 * run_var0[ch] + 0.1 * var[ch] * count / (count - 1);
        CHECK_NEAR(nnq_f32(&p[2])[ch], want_mean, 1e-6 * (1 + fabs(want_mean)));
        CHECK_NEAR(nnq_f32(&p[3])[ch], want_var, 1e-6 * (1 + fabs(want_var)));
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < size; k++) {
                int64_t at = (i * c + ch) * size + k;
                double want = (nnq_f32(&x)[at] - mean[ch]) / sqrt(var[ch] + eps) *
                                  nnq_f32(&p[0])[ch] + nnq_f32(&p[1])[ch];
                CHECK_NEAR(nnq_f32(&y)[at], want, 1e-5 * (1 + fabs(want)));
            }
    }
    nnq_tensor_release(&y);

    /* ONNX training_mode=1 outside the trainer: outputs, inputs untouched */
    float run_mean1[2], run_var1[2];
    memcpy(run_mean1, p[2].data, sizeof run_mean1);
    memcpy(run_var1, p[3].data, sizeof run_var1);
    CHECK_OK(nnq_node_set_int(&node, "training_mode", 1));
    nnq_tensor *out3[3] = {&y, &om, &ov};
    CHECK_OK(run_forward("BatchNormalization", &node, 5, in, 3, out3, false, 2));
    for (int64_t ch = 0; ch < c; ch++) {
        CHECK(nnq_f32(&p[2])[ch] == run_mean1[ch]);
        CHECK(nnq_f32(&p[3])[ch] == run_var1[ch]);
        double want_mean = 0.9 * run_mean1[ch] + 0.1 * mean[ch];
        double want_var = 0.9 * run_var1[ch] + 0.1 * var[ch];
        CHECK_NEAR(nnq_f32(&om)[ch], want_mean, 1e-6 * (1 + fabs(want_mean)));
        CHECK_NEAR(nnq_f32(&ov)[ch], want_var, 1e-6 * (1 + fabs(want_var)));
    }
    /* running-statistics outputs without training_mode are an error */
    node_free(&node);
    node = node_new("BatchNormalization");
    nnq_tensor_release(&y);
    nnq_tensor_release(&om);
    nnq_tensor_release(&ov);
    CHECK_STATUS(run_forward("BatchNormalization", &node, 5, in, 3, out3, false, 1), NNQ_ERR_INVALID);
    node_free(&node);
    nnq_tensor_release(&y);
    nnq_tensor_release(&om);
    nnq_tensor_release(&ov);
    nnq_tensor_release(&x);
    for (int j = 0; j < 4; j++) nnq_tensor_release(&p[j]);
}

/* ---- Pools ---- */

/* Values in [-1, 1) on a grid of 2/1009, element i at ((37 i) mod 1009):
 * elements closer than 1009 apart in a plane (every window here) differ
 * by at least 0.002, so no window has a tie and a step of 1e-3 * RMS
 * (about 6e-4) never changes which element is a window's maximum. */
static nnq_tensor tensor_distinct(int rank, const int64_t *dims) {
    nnq_tensor t = tensor_new(NNQ_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++)
        nnq_f32(&t)[i] = (float)((37 * i) % 1009 - 504) * (2.0f / 1009.0f);
    return t;
}

typedef struct pool_case {
    const char *what;
    int k;
    int64_t n, c, in[3], kernel[3], stride[3], dil[3], pads[6];
    int ceil_mode, include_pad;
    const char *auto_pad;
} pool_case;

static void run_pool_case(const char *op, const pool_case *pc) {
    int64_t xd[5] = {pc->n, pc->c};
    for (int d = 0; d < pc->k; d++) xd[2 + d] = pc->in[d];
    nnq_tensor x = tensor_distinct(pc->k + 2, xd);
    nnq_node node = node_new(op);
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", pc->k, pc->kernel));
    CHECK_OK(nnq_node_set_ints(&node, "strides", pc->k, pc->stride));
    if (pc->dil[0]) CHECK_OK(nnq_node_set_ints(&node, "dilations", pc->k, pc->dil));
    if (pc->auto_pad) CHECK_OK(nnq_node_set_string(&node, "auto_pad", pc->auto_pad));
    else CHECK_OK(nnq_node_set_ints(&node, "pads", 2 * pc->k, pc->pads));
    CHECK_OK(nnq_node_set_int(&node, "ceil_mode", pc->ceil_mode));
    if (strcmp(op, "AveragePool") == 0)
        CHECK_OK(nnq_node_set_int(&node, "count_include_pad", pc->include_pad));
    const nnq_tensor *in[1] = {&x};
    gradcheck_spec s = gradcheck_defaults(op, &node, 1, in);
    /* MaxPool: steps below the 0.002 spacing keep the argmax */
    s.eps = strcmp(op, "MaxPool") == 0 ? 1e-3 : 1e-2;
    for (int t = 1; t <= 2; t++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s t%d", op, pc->what, t);
        s.threads = t;
        gradcheck_expect(what, &s, TOL_LINEAR);
    }
    node_free(&node);
    nnq_tensor_release(&x);
}

static void test_pools(void) {
    static const pool_case cases[] = {
        /* what, k, n, c, in, kernel, stride, dil, pads, ceil_mode, include_pad, auto_pad */
        {"3x3 s2 overlap pad1", 2, 2, 3, {7, 8}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 0, 0, NULL},
        {"3x3 s2 pad1 count_include_pad", 2, 2, 3, {7, 8}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 0, 1, NULL},
        {"3x3 s2 ceil_mode", 2, 1, 2, {8, 7}, {3, 3}, {2, 2}, {0}, {0, 0, 0, 0}, 1, 0, NULL},
        {"3x3 s2 ceil_mode pads incl", 2, 1, 2, {8, 7}, {3, 3}, {2, 2}, {0}, {1, 0, 0, 1}, 1, 1, NULL},
        {"2x2 s2", 2, 2, 2, {6, 6}, {2, 2}, {2, 2}, {0}, {0}, 0, 0, NULL},
        {"3x2 s1 asym pads", 2, 1, 2, {5, 6}, {3, 2}, {1, 1}, {0}, {2, 0, 0, 1}, 0, 0, NULL},
        {"dilated 2x2 d2", 2, 1, 2, {7, 7}, {2, 2}, {1, 2}, {2, 2}, {1, 1, 0, 1}, 0, 0, NULL},
        {"SAME_UPPER", 2, 1, 2, {7, 6}, {3, 3}, {2, 2}, {0}, {0}, 0, 1, "SAME_UPPER"},
        {"1-D", 1, 2, 3, {11}, {3}, {2}, {0}, {1, 1}, 1, 0, NULL},
        {"3-D", 3, 1, 2, {5, 4, 6}, {2, 3, 2}, {2, 1, 2}, {0}, {1, 1, 0, 0, 1, 1}, 0, 1, NULL},
        {"wide rows (fast path)", 2, 2, 8, {12, 40}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_pool_case("MaxPool", &cases[i]);
        run_pool_case("AveragePool", &cases[i]);
    }
    /* MaxPool tie: the first maximum in window order gets the gradient */
    int64_t xd[4] = {1, 1, 2, 2};
    nnq_tensor x = tensor_new(NNQ_DT_FLOAT, 4, xd);
    for (int i = 0; i < 4; i++) nnq_f32(&x)[i] = i == 0 ? 0.0f : 1.0f;
    nnq_node node = node_new("MaxPool");
    int64_t ks[2] = {2, 2};
    CHECK_OK(nnq_node_set_ints(&node, "kernel_shape", 2, ks));
    const nnq_tensor *in[1] = {&x};
    gradcheck_spec s = gradcheck_defaults("MaxPool", &node, 1, in);
    nnq_tensor g[1];
    memset(g, 0, sizeof g);
    CHECK_OK(gradcheck_grads(&s, g));
    if (g[0].data) {
        CHECK(nnq_f32(&g[0])[1] != 0.0f);
        CHECK(nnq_f32(&g[0])[0] == 0.0f && nnq_f32(&g[0])[2] == 0.0f && nnq_f32(&g[0])[3] == 0.0f);
    }
    nnq_tensor_release(&g[0]);
    node_free(&node);
    nnq_tensor_release(&x);

    /* GlobalAveragePool */
    static const int64_t gdims[3][5] = {{2, 3, 4, 5}, {3, 2, 7}, {2, 16, 32, 32}};
    static const int granks[3] = {4, 3, 4};
    for (int i = 0; i < 3; i++) {
        nnq_tensor gx = tensor_rand(granks[i], gdims[i]);
        nnq_node gn = node_new("GlobalAveragePool");
        const nnq_tensor *gin[1] = {&gx};
        gradcheck_spec gs = gradcheck_defaults("GlobalAveragePool", &gn, 1, gin);
        gs.threads = 1 + i % 2;
        gs.samples = 100;
        char what[64];
        snprintf(what, sizeof what, "GlobalAveragePool rank %d", granks[i]);
        gradcheck_expect(what, &gs, TOL_LINEAR);
        nnq_tensor_release(&gx);
    }
}

/* ---- Pad ---- */

typedef struct pad_case {
    const char *what;
    const char *mode;
    int rank;
    int64_t dims[4];
    int64_t pads[8];
} pad_case;

static void test_pad(void) {
    static const pad_case cases[] = {
        {"constant", "constant", 4, {2, 2, 3, 4}, {0, 0, 1, 2, 0, 1, 2, 1}},
        {"constant crop", "constant", 3, {2, 5, 6}, {0, -1, 2, 1, -2, -1}},
        {"reflect", "reflect", 4, {1, 2, 4, 5}, {0, 0, 2, 3, 0, 0, 3, 2}},
        {"reflect outer axes", "reflect", 3, {3, 4, 3}, {1, 2, 1, 2, 1, 2}},
        {"edge", "edge", 4, {2, 1, 3, 3}, {0, 1, 2, 2, 0, 0, 3, 1}},
        {"wrap", "wrap", 3, {2, 3, 4}, {0, 2, 3, 1, 1, 2}},
        {"constant large (parallel)", "constant", 4, {4, 8, 96, 96}, {0, 0, 1, 1, 0, 0, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pad_case *pc = &cases[i];
        nnq_tensor x = tensor_rand(pc->rank, pc->dims);
        nnq_tensor pads = tensor_i64(2 * pc->rank, pc->pads);
        int64_t one[1] = {1};
        nnq_tensor cv = tensor_rand(0, one);
        nnq_node node = node_new("Pad");
        CHECK_OK(nnq_node_set_string(&node, "mode", pc->mode));
        const nnq_tensor *in[3] = {&x, &pads, &cv};
        gradcheck_spec s = gradcheck_defaults("Pad", &node, 3, in);
        s.samples = nnq_tensor_numel(&x) > 4000 ? 30 : 100;
        for (int t = 1; t <= 2; t++) {
            char what[96];
            snprintf(what, sizeof what, "Pad %s t%d", pc->what, t);
            s.threads = t;
            gradcheck_expect(what, &s, TOL_LINEAR);
        }
        node_free(&node);
        nnq_tensor_release(&x);
        nnq_tensor_release(&pads);
        nnq_tensor_release(&cv);
    }
}

/* ---- Determinism: two backward runs, identical bits ---- */

static bool same_grads(const nnq_tensor *a, const nnq_tensor *b, int n) {
    for (int i = 0; i < n; i++) {
        if (!a[i].data != !b[i].data) return false;
        if (!a[i].data) continue;
        size_t bytes = 0;
        if (nnq_tensor_nbytes(&a[i], &bytes) != NNQ_OK || memcmp(a[i].data, b[i].data, bytes) != 0)
            return false;
    }
    return true;
}

static void expect_deterministic(const char *what, const gradcheck_spec *s) {
    nnq_tensor g1[GRADCHECK_MAX_IO], g2[GRADCHECK_MAX_IO];
    memset(g1, 0, sizeof g1);
    memset(g2, 0, sizeof g2);
    CHECK_OK(gradcheck_grads(s, g1));
    CHECK_OK(gradcheck_grads(s, g2));
    bool same = same_grads(g1, g2, s->n_in);
    bool any = false;
    for (int i = 0; i < s->n_in; i++) any = any || g1[i].data;
    fprintf(stderr, "%s deterministic: %s\n", what, same && any ? "identical bits" : "DIFFERENT");
    CHECK(same && any);
    for (int i = 0; i < s->n_in; i++) {
        nnq_tensor_release(&g1[i]);
        nnq_tensor_release(&g2[i]);
    }
}

static void test_deterministic(void) {
    /* ResNet-like 3x3 conv and a 1x1 one, batch split over 2 threads */
    int64_t xd[4] = {16, 16, 16, 16}, wd[4] = {16, 16, 3, 3}, w1d[4] = {32, 16, 1, 1};
    int64_t bd[1] = {32};
    int64_t pads[4] = {1, 1, 1, 1};
    nnq_tensor x = tensor_rand(4, xd), w = tensor_rand(4, wd), w1 = tensor_rand(4, w1d);
    nnq_tensor b = tensor_rand(1, bd);
    nnq_node node = node_new("Conv");
    CHECK_OK(nnq_node_set_ints(&node, "pads", 4, pads));
    const nnq_tensor *in[3] = {&x, &w, &b};
    b.dims[0] = 16;
    gradcheck_spec s = gradcheck_defaults("Conv", &node, 3, in);
    s.threads = 2;
    expect_deterministic("Conv 3x3 t2", &s);
    node_free(&node);
    node = node_new("Conv");
    in[1] = &w1;
    b.dims[0] = 32;
    expect_deterministic("Conv 1x1 t2", &s);
    /* depthwise */
    int64_t dwd[4] = {16, 1, 3, 3};
    nnq_tensor wdw = tensor_rand(4, dwd);
    CHECK_OK(nnq_node_set_int(&node, "group", 16));
    CHECK_OK(nnq_node_set_ints(&node, "pads", 4, pads));
    in[1] = &wdw;
    b.dims[0] = 16;
    expect_deterministic("Conv depthwise t2", &s);
    node_free(&node);
    b.dims[0] = 32;
    /* BN training */
    nnq_tensor p[4];
    bn_params(16, p);
    nnq_node bn = node_new("BatchNormalization");
    const nnq_tensor *bin[5] = {&x, &p[0], &p[1], &p[2], &p[3]};
    bool wrt[5] = {true, true, true, false, false};
    gradcheck_spec bs = gradcheck_defaults("BatchNormalization", &bn, 5, bin);
    bs.threads = 2;
    bs.training = true;
    bs.wrt = wrt;
    expect_deterministic("BN training t2", &bs);
    for (int j = 0; j < 4; j++) nnq_tensor_release(&p[j]);
    nnq_tensor_release(&x);
    nnq_tensor_release(&w);
    nnq_tensor_release(&w1);
    nnq_tensor_release(&wdw);
    nnq_tensor_release(&b);
}

int main(void) {
    xs_state = 2024u;
    test_conv();
    test_tap_kernels();
    test_gemm();
    test_matmul();
    test_bn_grad();
    test_bn_running_stats();
    test_pools();
    test_pad();
    test_deterministic();
    return check_finish("test_grad_dense");
}
