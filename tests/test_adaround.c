/* AdaRound (ptq/adaround_layer.c, ptq/adaround.c).
 *
 * The per-layer optimiser on synthetic layers (random weights and inputs,
 * targets from the float layer, inputs perturbed as a quantized earlier
 * layer would): V's initialisation, the beta schedule, that the learned
 * rounding reconstructs better than nearest, that every weight ends as
 * floor or ceil of W/s on the quantizer's grid (zero points too), and that
 * the regulariser decides every h. Conv (plain, depthwise, grouped,
 * strided), Gemm (both weight layouts) and MatMul; per-tensor and
 * per-channel; symmetric and asymmetric; 2, 3, 4 and 8 bits; Relu, Clip
 * and no activation.
 * End to end: the fixture MobileNetV2 at W4 per-channel, top-1 on test
 * images with nearest rounding and after the pass (activations float and
 * 8-bit), every weight on its grid, activation quantizers restored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "data/dataset.h"
#include "onnx/onnx_io.h"
#include "op_fixture.h"
#include "ops/executor.h"
#include "ptq/adaround_layer.h"
#include "ptq/ptq.h"
#include "quant/qsim.h"
#include "quant/range.h"

/* ---- one synthetic layer ---- */

typedef struct layer_case {
    const char *what;
    const char *op;   /* Conv, Gemm or MatMul */
    int64_t n, c, m;  /* samples, input and output channels (features) */
    int64_t group, k, stride, hw; /* Conv */
    bool trans_b;     /* Gemm: weight [m, c] (else [c, m]) */
    int bits;
    bool per_channel, symmetric;
    nnq_range_method range;
    nnq_ada_act act;
    bool cap;         /* a per-channel cap after the activation (CLE's ReLU6) */
} layer_case;

typedef struct layer_fix {
    nnq_node node;
    nnq_tensor x, xhat, w, b, t;
    nnq_quantizer q;
    nnq_ada_layer L;
    float cap[64];    /* per output channel, when the case has a cap */
    int64_t positions; /* output elements per sample and channel */
} layer_fix;

/* Roughly normal, unit variance (sum of three uniforms). */
static float nrand(void) { return (xs_frand() + xs_frand() + xs_frand()); }

/* Inputs correlated as image features are (with i.i.d. inputs the
 * reconstruction error's Hessian is diagonal and nearest rounding is
 * already optimal): each channel a random mix of a few latent planes,
 * each plane smoothed over space, then a leaky ReLU. x is [n, c, ...]. */
static void fill_inputs(nnq_tensor *x) {
    const int64_t n = x->dims[0], c = x->dims[1], p = nnq_tensor_numel(x) / (n * c);
    const int64_t r = c / 4 > 2 ? c / 4 : 2, side = x->rank == 4 ? x->dims[3] : 1;
    float *z = malloc(sizeof(float) * (size_t)(r * p)), *mix = malloc(sizeof(float) * (size_t)(c * r));
    for (int64_t i = 0; i < c * r; i++) mix[i] = nrand() / sqrtf((float)r);
    for (int64_t s = 0; s < n; s++) {
        for (int64_t i = 0; i < r * p; i++) z[i] = nrand();
        for (int pass = 0; pass < 2 && side > 1; pass++) /* smooth along rows and columns */
            for (int64_t j = 0; j < r; j++)
                for (int64_t i = p - 1; i >= 1; i--) {
                    float *zz = z + j * p;
                    zz[i] = 0.5f * (zz[i] + zz[i - 1]);
                    if (i >= side) zz[i] = 0.5f * (zz[i] + zz[i - side]);
                }
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < p; i++) {
                float v = 0.3f;
                for (int64_t j = 0; j < r; j++) v += mix[ch * r + j] * z[j * p + i];
                nnq_f32(x)[(s * c + ch) * p + i] = v > 0 ? v : 0.1f * v;
            }
    }
    free(z);
    free(mix);
}

/* out = op(x, w, b) with a freshly allocated output. */
static void op_run(const nnq_node *node, int x_slot, const nnq_tensor *x, const nnq_tensor *w,
                   const nnq_tensor *b, nnq_tensor *out) {
    const nnq_op_def *def = nnq_op_find(node->op_type);
    const nnq_tensor *in[3] = {NULL, NULL, b};
    in[x_slot] = x;
    in[1 - x_slot] = w;
    nnq_tensor *outs[1] = {out};
    nnq_op_args a = {.node = node, .opset = 13, .n_in = b ? 3 : 2, .in = in, .n_out = 1,
                     .out = outs, .threads = 1};
    memset(out, 0, sizeof *out);
    CHECK_OK(def->infer(&a));
    CHECK_OK(nnq_tensor_alloc(out, out->dtype, out->rank, out->dims));
    size_t sb = def->scratch_size ? def->scratch_size(&a) : 0;
    void *scratch = sb ? aligned_alloc(64, (sb + 63) / 64 * 64) : NULL;
    a.scratch = scratch;
    a.scratch_bytes = sb;
    CHECK_OK(def->forward(&a));
    free(scratch);
}

static float act_f(const nnq_ada_layer *L, float y) {
    if (L->act == NNQ_ADA_ACT_RELU) return y > 0 ? y : 0;
    if (L->act == NNQ_ADA_ACT_CLIP) return y < L->act_lo ? L->act_lo : (y > L->act_hi ? L->act_hi : y);
    return y;
}

/* The layer's activation on every element of a [n, m, ...] output, then
 * its per-channel cap if any. */
static void act_all(const layer_fix *f, int64_t m, nnq_tensor *y) {
    for (int64_t i = 0; i < nnq_tensor_numel(y); i++) {
        float v = act_f(&f->L, nnq_f32(y)[i]);
        if (f->L.act_hi_ch) v = fminf(v, f->L.act_hi_ch[i / f->positions % m]);
        nnq_f32(y)[i] = v;
    }
}

static void fix_make(const layer_case *lc, layer_fix *f) {
    memset(f, 0, sizeof *f);
    xs_state = 777u;
    f->node = node_new(lc->op);
    int64_t xd[4], wd[4], bd[1] = {lc->m};
    int xr, wr, w_axis, x_slot = 0;
    if (strcmp(lc->op, "Conv") == 0) {
        xr = wr = 4;
        int64_t x4[4] = {lc->n, lc->c, lc->hw, lc->hw}, w4[4] = {lc->m, lc->c / lc->group, lc->k, lc->k};
        memcpy(xd, x4, sizeof xd);
        memcpy(wd, w4, sizeof wd);
        int64_t p = lc->k / 2, pads[4] = {p, p, p, p}, st[2] = {lc->stride, lc->stride};
        CHECK_OK(nnq_node_set_int(&f->node, "group", lc->group));
        CHECK_OK(nnq_node_set_ints(&f->node, "pads", 4, pads));
        CHECK_OK(nnq_node_set_ints(&f->node, "strides", 2, st));
        w_axis = 0;
    } else {
        xr = wr = 2;
        xd[0] = lc->n;
        xd[1] = lc->c;
        bool tb = strcmp(lc->op, "Gemm") == 0 && lc->trans_b;
        wd[0] = tb ? lc->m : lc->c;
        wd[1] = tb ? lc->c : lc->m;
        w_axis = tb ? 0 : 1;
        if (strcmp(lc->op, "Gemm") == 0) CHECK_OK(nnq_node_set_int(&f->node, "transB", tb));
    }
    f->x = tensor_new(NNQ_DT_FLOAT, xr, xd);
    f->xhat = tensor_new(NNQ_DT_FLOAT, xr, xd);
    f->w = tensor_new(NNQ_DT_FLOAT, wr, wd);
    f->b = tensor_new(NNQ_DT_FLOAT, 1, bd);
    int64_t fan_in = nnq_tensor_numel(&f->w) / lc->m;
    for (int64_t i = 0; i < nnq_tensor_numel(&f->w); i++)
        nnq_f32(&f->w)[i] = nrand() / sqrtf((float)fan_in);
    for (int64_t i = 0; i < lc->m; i++) nnq_f32(&f->b)[i] = 0.2f * xs_frand();
    fill_inputs(&f->x);
    for (int64_t i = 0; i < nnq_tensor_numel(&f->x); i++)
        nnq_f32(&f->xhat)[i] = nnq_f32(&f->x)[i] + 0.02f * xs_frand();
    bool is_matmul = strcmp(lc->op, "MatMul") == 0;
    nnq_tensor pre;
    op_run(&f->node, x_slot, &f->x, &f->w, is_matmul ? NULL : &f->b, &pre);
    f->L.act = lc->act;
    f->L.act_lo = lc->act == NNQ_ADA_ACT_CLIP ? 0.0f : -INFINITY;
    f->L.act_hi = lc->act == NNQ_ADA_ACT_CLIP ? 1.0f : INFINITY;
    f->positions = nnq_tensor_numel(&pre) / (pre.dims[0] * lc->m);
    if (lc->cap) { /* caps cutting into each channel's range, unevenly */
        CHECK(lc->m <= 64);
        for (int64_t o = 0; o < lc->m && o < 64; o++) f->cap[o] = 0.1f + 0.1f * (float)(o % 5);
        f->L.act_hi_ch = f->cap;
    }
    act_all(f, lc->m, &pre);
    f->t = pre;

    /* the weight quantizer, ranges per channel or per tensor */
    nnq_qconfig cfg = {.bits = lc->bits, .symmetric = lc->symmetric, .is_signed = lc->symmetric,
                       .per_channel = lc->per_channel};
    int64_t nch = lc->per_channel ? wd[w_axis] : 1;
    CHECK_OK(nnq_quantizer_init(&f->q, &cfg, w_axis, (int)nch));
    const float *w = nnq_f32(&f->w);
    int64_t numel = nnq_tensor_numel(&f->w);
    for (int64_t c = 0; c < nch; c++) {
        float lo, hi;
        if (!lc->per_channel) CHECK_OK(nnq_range_from_data(w, numel, 1, &cfg, lc->range, &lo, &hi));
        else if (w_axis == 0) CHECK_OK(nnq_range_from_data(w + c * (numel / nch), numel / nch, 1, &cfg, lc->range, &lo, &hi));
        else CHECK_OK(nnq_range_from_data(w + c, numel / nch, nch, &cfg, lc->range, &lo, &hi));
        nnq_quantizer_set_range(&f->q, (int)c, lo, hi);
    }

    f->L.node = &f->node;
    f->L.opset = 13;
    f->L.x_slot = x_slot;
    f->L.w_slot = 1 - x_slot;
    f->L.w = &f->w;
    f->L.w_axis = w_axis;
    f->L.bias = is_matmul ? NULL : &f->b;
    f->L.q = &f->q;
    f->L.x = &f->xhat;
    f->L.target = &f->t;
}

static void fix_free(layer_fix *f) {
    node_free(&f->node);
    nnq_tensor_release(&f->x);
    nnq_tensor_release(&f->xhat);
    nnq_tensor_release(&f->w);
    nnq_tensor_release(&f->b);
    nnq_tensor_release(&f->t);
    nnq_quantizer_free(&f->q);
}

/* Scale and zero point of weight element i. */
static void elem_sz(const layer_fix *f, int64_t i, float *s, float *z) {
    int64_t c = 0;
    if (f->q.n > 1) {
        int64_t inner = 1;
        for (int d = f->q.axis + 1; d < f->w.rank; d++) inner *= f->w.dims[d];
        c = (i / inner) % f->q.n;
    }
    *s = f->q.scale[c];
    *z = (float)f->q.zero_point[c];
}

static nnq_adaround_options test_options(int iters) {
    nnq_adaround_options o;
    nnq_adaround_options_default(&o);
    o.iters = iters;
    o.batch = 16;
    o.lr = 1e-2f; /* ten times the default: a few hundred iterations decide */
    o.seed = 5;
    o.threads = 2;
    return o;
}

/* Final weights: floor or ceil of W/s, clamped to the grid, exactly s (q - z). */
static void check_on_grid(const char *what, const layer_fix *f, const nnq_ada_result *r) {
    int bad = 0;
    const float *w = nnq_f32(&f->w);
    for (int64_t i = 0; i < nnq_tensor_numel(&f->w); i++) {
        float s, z;
        elem_sz(f, i, &s, &z);
        float lo = (float)f->q.qmin - z, hi = (float)f->q.qmax - z;
        float fl = floorf(w[i] / s), down = fminf(fmaxf(fl, lo), hi), up = fminf(fmaxf(fl + 1, lo), hi);
        float k = r->w[i] / s;
        bool ok = (r->w[i] == s * down || r->w[i] == s * up) && nnq_round_half_even(k) + z >= f->q.qmin &&
                  nnq_round_half_even(k) + z <= f->q.qmax &&
                  nnq_fake_quant_f(r->w[i], s, z, (float)f->q.qmin, (float)f->q.qmax) == r->w[i];
        bad += !ok;
    }
    if (bad) fprintf(stderr, "%s: %d weights off the floor/ceil grid\n", what, bad);
    CHECK(bad == 0);
}

static void run_layer_case(const layer_case *lc, int iters) {
    layer_fix f;
    fix_make(lc, &f);
    nnq_adaround_options o = test_options(iters);
    nnq_ada_result r;
    CHECK_OK(nnq_ada_optimize(&f.L, &o, &r));
    if (!r.w) {
        fix_free(&f);
        return;
    }
    int64_t nw = nnq_tensor_numel(&f.w);
    fprintf(stderr, "%-34s mse nearest %.3g -> adaround %.3g, %lld/%lld changed, %lld soft, %.0f it/s\n",
            lc->what, r.mse_nearest, r.mse_ada, (long long)r.n_changed, (long long)nw,
            (long long)r.n_soft, iters / (r.seconds > 0 ? r.seconds : 1e-9));
    /* at 8 bits the input noise, not rounding, dominates the error */
    CHECK(r.mse_ada < (lc->bits <= 4 ? 0.9 : 1.0) * r.mse_nearest);
    CHECK(r.n_changed > 0);
    check_on_grid(lc->what, &f, &r);
    if (lc->cap) {
        /* mse_nearest is the error of the capped output: recompute it. */
        nnq_tensor wn = {0}, y = {0};
        CHECK_OK(nnq_tensor_alloc(&wn, NNQ_DT_FLOAT, f.w.rank, f.w.dims));
        for (int64_t i = 0; i < nw; i++) {
            float sc, z;
            elem_sz(&f, i, &sc, &z);
            nnq_f32(&wn)[i] = nnq_fake_quant_f(nnq_f32(&f.w)[i], sc, z, (float)f.q.qmin, (float)f.q.qmax);
        }
        op_run(&f.node, f.L.x_slot, &f.xhat, &wn, &f.b, &y);
        act_all(&f, lc->m, &y);
        double e = 0;
        for (int64_t i = 0; i < nnq_tensor_numel(&y); i++) {
            double d = (double)nnq_f32(&y)[i] - nnq_f32(&f.t)[i];
            e += d * d;
        }
        e /= (double)nnq_tensor_numel(&y);
        fprintf(stderr, "%-34s mse nearest recomputed with the caps %.4g\n", lc->what, e);
        CHECK(fabs(e - r.mse_nearest) <= 1e-4 * e);
        nnq_tensor_release(&wn);
        nnq_tensor_release(&y);
    }
    nnq_ada_result_free(&r);
    fix_free(&f);
}

/* ---- tests ---- */

static void test_h_and_init(void) {
    for (int i = 0; i < 100; i++) {
        float frac = (float)i / 100.0f;
        CHECK_NEAR(nnq_ada_h(nnq_ada_v_init(frac)), frac, 1e-5);
    }
    CHECK(nnq_ada_h(100.0f) == 1.0f && nnq_ada_h(-100.0f) == 0.0f);
    CHECK(nnq_ada_h(0.0f) == 0.5f);

    /* No iterations: h(V) = frac(W/s) per element, hard rounding = nearest. */
    layer_case lc = {"init", "Conv", 8, 6, 8, 1, 3, 1, 6, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_NONE, false};
    layer_fix f;
    fix_make(&lc, &f);
    nnq_adaround_options o = test_options(0);
    nnq_ada_result r;
    CHECK_OK(nnq_ada_optimize(&f.L, &o, &r));
    if (r.v) {
        double worst = 0;
        for (int64_t i = 0; i < nnq_tensor_numel(&f.w); i++) {
            float s, z;
            elem_sz(&f, i, &s, &z);
            float v = nnq_f32(&f.w)[i] / s;
            worst = fmax(worst, fabs(nnq_ada_h(r.v[i]) - (v - floorf(v))));
        }
        CHECK(worst < 1e-5);
        CHECK(r.n_changed == 0);
        CHECK(r.mse_ada == r.mse_nearest);
        CHECK(r.mse_nearest > 0);
    }
    nnq_ada_result_free(&r);
    fix_free(&f);
}

static void test_beta_schedule(void) {
    nnq_adaround_options o;
    nnq_adaround_options_default(&o);
    CHECK(o.iters == 10000 && o.batch == 32 && o.n == 1024);
    CHECK(o.lambda == 0.01f && o.beta_start == 20.0f && o.beta_end == 2.0f);
    CHECK(o.warm_start == 0.2f && o.lr == 1e-3f);
    float beta = -1;
    CHECK(!nnq_ada_beta(&o, 0, &beta));
    CHECK(!nnq_ada_beta(&o, 1999, &beta));
    CHECK(nnq_ada_beta(&o, 2000, &beta));
    CHECK_NEAR(beta, 20.0, 1e-5);
    CHECK(nnq_ada_beta(&o, 6000, &beta)); /* halfway through the decay: cos = 0 */
    CHECK_NEAR(beta, 11.0, 1e-4);
    CHECK(nnq_ada_beta(&o, 4000, &beta)); /* a quarter: 2 + 9 (1 + cos(pi/4)) */
    CHECK_NEAR(beta, 2.0 + 9.0 * (1.0 + sqrt(0.5)), 1e-4);
    CHECK(nnq_ada_beta(&o, 9999, &beta));
    CHECK(beta > 2.0f && beta < 2.001f);
    CHECK(nnq_ada_beta(&o, 10000, &beta));
    CHECK_NEAR(beta, 2.0, 1e-5);
    o.warm_start = 0;
    CHECK(nnq_ada_beta(&o, 0, &beta));
    CHECK_NEAR(beta, 20.0, 1e-5);
}

static void test_layers(void) {
    static const layer_case cases[] = {
        /* what, op, n, c, m, group, k, stride, hw, trans_b, bits, per_channel, symmetric, range, act */
        {"conv 3x3 W4 per-channel relu", "Conv", 64, 8, 8, 1, 3, 1, 8, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, false},
        {"conv 3x3 W3 per-tensor mse", "Conv", 64, 8, 8, 1, 3, 1, 8, false, 3, false, true, NNQ_RANGE_MSE, NNQ_ADA_ACT_NONE, false},
        {"conv 1x1 W4 asym (z != 0) clip", "Conv", 64, 16, 12, 1, 1, 1, 6, false, 4, true, false, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_CLIP, false},
        {"depthwise 3x3 W4 per-channel", "Conv", 64, 12, 12, 12, 3, 1, 8, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_CLIP, false},
        {"depthwise 3x3 s2 W3 per-tensor", "Conv", 64, 12, 12, 12, 3, 2, 9, false, 3, false, true, NNQ_RANGE_MSE, NNQ_ADA_ACT_RELU, false},
        {"grouped g2 3x3 W4 per-channel", "Conv", 64, 8, 12, 2, 3, 1, 7, false, 4, true, true, NNQ_RANGE_MSE, NNQ_ADA_ACT_NONE, false},
        {"grouped g4 3x3 s2 W4 per-tensor", "Conv", 64, 8, 8, 4, 3, 2, 8, false, 4, false, false, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, false},
        {"gemm transB W4 per-channel", "Gemm", 256, 32, 10, 1, 1, 1, 1, true, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_NONE, false},
        {"gemm [K,N] W3 per-channel relu", "Gemm", 256, 32, 16, 1, 1, 1, 1, false, 3, true, true, NNQ_RANGE_MSE, NNQ_ADA_ACT_RELU, false},
        {"gemm [K,N] W4 per-tensor asym", "Gemm", 256, 32, 16, 1, 1, 1, 1, false, 4, false, false, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_NONE, false},
        {"matmul W4 per-channel", "MatMul", 256, 24, 16, 1, 1, 1, 1, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_NONE, false},
        {"conv W2 per-channel", "Conv", 64, 8, 8, 1, 3, 1, 6, false, 2, true, true, NNQ_RANGE_MSE, NNQ_ADA_ACT_NONE, false},
        {"conv W8 per-channel", "Conv", 64, 8, 8, 1, 3, 1, 6, false, 8, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, false},
        {"conv 3x3 W4 relu + channel caps", "Conv", 64, 8, 8, 1, 3, 1, 8, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, true},
        {"depthwise W4 relu + channel caps", "Conv", 64, 12, 12, 12, 3, 1, 8, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, true},
        {"gemm transB W4 relu + channel caps", "Gemm", 256, 32, 10, 1, 1, 1, 1, true, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_RELU, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_layer_case(&cases[i], 400);
}

/* The regulariser decides h: with lambda, nearly every h(V) ends in {0, 1};
 * without it, reconstruction alone leaves many in between. */
static void test_regulariser(void) {
    layer_case lc = {"reg", "Conv", 64, 8, 8, 1, 3, 1, 8, false, 4, true, true, NNQ_RANGE_MINMAX, NNQ_ADA_ACT_NONE, false};
    layer_fix f;
    fix_make(&lc, &f);
    int64_t nw = nnq_tensor_numel(&f.w);
    nnq_adaround_options o = test_options(1000);
    nnq_ada_result with, without;
    CHECK_OK(nnq_ada_optimize(&f.L, &o, &with));
    o.lambda = 0;
    CHECK_OK(nnq_ada_optimize(&f.L, &o, &without));
    if (with.v && without.v) {
        fprintf(stderr, "regulariser: undecided h %lld/%lld with lambda 0.01, %lld without\n",
                (long long)with.n_soft, (long long)nw, (long long)without.n_soft);
        CHECK(with.n_soft * 50 < nw);
        CHECK(without.n_soft > 5 * with.n_soft + nw / 20);
        CHECK(with.mse_ada < with.mse_nearest);
    }
    nnq_ada_result_free(&with);
    nnq_ada_result_free(&without);
    fix_free(&f);
}

/* ---- end to end ---- */

static double top1(const nnq_graph *g, const nnq_dataset *d) {
    nnq_exec *e = NULL;
    nnq_exec_options eo = {.threads = 2};
    int64_t correct = 0;
    CHECK_OK(nnq_exec_create(g, &eo, &e));
    if (!e) return 0;
    for (int64_t s = 0; s < d->n; s += 100) {
        nnq_tensor in;
        nnq_dataset_batch(d, s, 100, &in);
        CHECK_OK(nnq_exec_run(e, &in));
        const nnq_tensor *y = nnq_exec_output(e, 0);
        for (int64_t i = 0; i < in.dims[0]; i++) {
            const float *row = nnq_f32(y) + i * y->dims[1];
            int best = 0;
            for (int k = 1; k < y->dims[1]; k++)
                if (row[k] > row[best]) best = k;
            correct += best == d->labels[s + i];
        }
    }
    nnq_exec_free(e);
    return 100.0 * (double)correct / (double)d->n;
}

/* Every enabled weight quantizer's float weight lies on its grid. */
static int64_t off_grid_weights(const nnq_qsim *s) {
    int64_t bad = 0;
    for (int i = 0; i < s->n_quant; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        if (q->role != NNQ_QROLE_WEIGHT || !q->enabled) continue;
        const nnq_tensor *w = &s->g->values[q->input].t, *fq = &s->g->values[q->output].t;
        for (int64_t k = 0; k < nnq_tensor_numel(w); k++) bad += nnq_f32(w)[k] != nnq_f32(fq)[k];
    }
    return bad;
}

/* mnv2s (BN folded at export) at W4 per-channel, MSE weight ranges:
 * nearest vs AdaRound with activations float (A32) and 8-bit (A8,
 * calibrated after rounding, as the recipe does). Under the sanitizers
 * (NNQ_SANITIZED, a Debug build) the same path runs on a few images and
 * iterations, and only the accuracy checks are left out. */
static void test_end_to_end(void) {
    const bool small = getenv("NNQ_SANITIZED") != NULL;
    nnq_graph *g = NULL;
    nnq_qsim *s = NULL;
    nnq_dataset calib = {0}, test = {0};
    CHECK_OK(nnq_onnx_load("tests/fixtures/models/mnv2s.onnx", &g));
    if (!g) return;
    CHECK_OK(nnq_graph_prepare(g));
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, small ? 32 : 128, &calib));
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, small ? 100 : 1000, &test));
    nnq_qsim_options so;
    nnq_qsim_options_default(&so);
    so.weights.bits = 4;
    CHECK_OK(nnq_qsim_create(g, &so, &s));
    if (!s || !calib.images || !test.images) goto done;
    nnq_calib_options co;
    nnq_calib_options_default(&co);
    co.threads = 2;
    CHECK_OK(nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MSE));
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    CHECK_OK(nnq_qsim_sync(s));
    const double acc_f = top1(g, &test), acc_n = top1(s->g, &test);
    CHECK_OK(nnq_qsim_calibrate(s, &calib, &co));
    const double acc_n8 = top1(s->g, &test);

    nnq_adaround_options o;
    nnq_adaround_options_default(&o);
    nnq_ptq_log log = {.fp = stderr};
    o.warm_start = 1.5f;
    CHECK_STATUS(nnq_ptq_adaround(s, g, &calib, &o, &log), NNQ_ERR_INVALID);
    o.warm_start = 0.2f;
    o.iters = small ? 10 : 200; /* default lr 1e-3: only weights near a tie move, enough here */
    o.n = calib.n;
    o.seed = 1;
    o.threads = 2;
    CHECK_OK(nnq_ptq_adaround(s, g, &calib, &o, &log));
    CHECK(off_grid_weights(s) == 0);
    for (int i = 0; i < s->n_quant; i++) /* the calibrated activation quantizers are back on */
        if (s->quant[i].role == NNQ_QROLE_ACT && s->quant[i].layer >= 0) CHECK(s->quant[i].enabled);
    CHECK_OK(nnq_qsim_calibrate(s, &calib, &co));
    const double acc_a8 = top1(s->g, &test);
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    CHECK_OK(nnq_qsim_sync(s));
    const double acc_a = top1(s->g, &test);
    fprintf(stderr,
            "mnv2s W4 per-channel, %lld test images: float %.1f %%; A32 nearest %.1f %% -> AdaRound %.1f %%; "
            "A8 nearest %.1f %% -> AdaRound %.1f %% (%d iterations, %lld images)\n",
            (long long)test.n, acc_f, acc_n, acc_a, acc_n8, acc_a8, o.iters, (long long)o.n);
    if (!small) {
        CHECK(acc_a > acc_n + 1.0);
        CHECK(acc_a8 > acc_n8 + 1.0);
        CHECK(acc_a > acc_f - 1.0);
    }
done:
    nnq_qsim_free(s);
    nnq_graph_free(g);
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
}

int main(void) {
    test_h_and_init();
    test_beta_schedule();
    test_layers();
    test_regulariser();
    test_end_to_end();
    return check_finish("test_adaround");
}
