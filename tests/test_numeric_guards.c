/* Numerical guards: every degenerate input gets a defined, finite result
 * (and a warning where a pass changes the model), never a NaN or infinite
 * scale, a zero point off the grid, or a division by zero:
 *   - quantizer parameters from zero-width, tiny, huge and non-finite
 *     ranges, per tensor and per channel (an all-zero channel gets s = 1,
 *     z = 0 and stays exactly 0); nnq_qerror_mse ignores non-finite values;
 *   - range setting from raw values and from histograms with NaN / Inf
 *     mixed in (skipped and counted: the result equals that of the finite
 *     values alone), with nothing finite, all zero, all equal, denormal;
 *     the cross-entropy search leaves out non-finite logit rows;
 *   - per-channel weight ranges of a simulation whose weight has an
 *     all-zero channel and a NaN; calibration on images holding NaN / Inf;
 *   - BatchNorm folding with variance 0 (epsilon 0 and > 0), negative, NaN
 *     and infinite variances, non-finite gamma / beta / mean, an overflowing
 *     scale: finite weights, biases and statistics, one warning line per BN
 *     node, and the untouched channels fold exactly as before;
 *   - BN-based ranges with gamma = 0 channels (finite, zero-width parts),
 *     all channels gamma = beta = 0 (s = 1), and non-finite statistics
 *     (quantizer left as it was, a warning). */
#define _POSIX_C_SOURCE 200809L /* tmpfile */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "models/builder.h"
#include "ops/executor.h"
#include "ptq/ptq.h"
#include "quant/qsim.h"
#include "quant/quantizer.h"
#include "quant/range.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static double uniform(double lo, double hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Pair c of q is a usable quantizer: finite s >= FLT_MIN, z on the grid,
 * 0.0 exact. */
static bool valid_pair(const nnq_quantizer *q, int c) {
    const float s = q->scale[c];
    const int32_t z = q->zero_point[c];
    return isfinite(s) && s >= FLT_MIN && z >= q->qmin && z <= q->qmax &&
           nnq_fake_quant_f(0.0f, s, (float)z, (float)q->qmin, (float)q->qmax) == 0.0f;
}

static const nnq_qconfig CONFIGS[] = {
    {.bits = 8, .symmetric = true, .is_signed = true},
    {.bits = 8, .symmetric = true, .is_signed = true, .narrow = true},
    {.bits = 8, .symmetric = false, .is_signed = false},
    {.bits = 4, .symmetric = false, .is_signed = true},
    {.bits = 8, .symmetric = true, .is_signed = false},
    {.bits = 16, .symmetric = false, .is_signed = false},
};
#define N_CONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

/* ---- quantizer parameters ---- */

static void test_degenerate_ranges(void) {
    const float r[][2] = {
        {0, 0},         {3, 3},           {-2, -2},         {1e-30f, 1e-30f},
        {0, 1e-42f},    {-1e-44f, 1e-44f}, {NAN, NAN},       {-INFINITY, INFINITY},
        {NAN, 5},       {INFINITY, -INFINITY}, {-FLT_MAX, FLT_MAX}, {0, FLT_MAX},
        {-FLT_MAX, -FLT_MAX},
    };
    for (int k = 0; k < N_CONFIGS; k++) {
        nnq_quantizer q;
        CHECK_OK(nnq_quantizer_init(&q, &CONFIGS[k], -1, 1));
        for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
            nnq_quantizer_set_range(&q, 0, r[i][0], r[i][1]);
            if (!valid_pair(&q, 0))
                fprintf(stderr, "config %d range [%g, %g]: s %g z %d\n", k, r[i][0], r[i][1],
                        q.scale[0], q.zero_point[0]);
            CHECK(valid_pair(&q, 0));
            float lo, hi;
            nnq_quantizer_get_range(&q, 0, &lo, &hi);
            CHECK(!isnan(lo) && !isnan(hi) && lo <= 0 && hi >= 0);
        }
        /* Zero width: s = 1 and every value maps to z, i.e. 0.0. */
        nnq_quantizer_set_range(&q, 0, 0, 0);
        CHECK(q.scale[0] == 1.0f);
        /* An all-equal non-zero tensor is represented (the range nudged to
         * include 0): v comes back within half a step. */
        if (!CONFIGS[k].symmetric || CONFIGS[k].is_signed) {
            nnq_quantizer_set_range(&q, 0, 3.0f, 3.0f);
            float v = nnq_fake_quant_f(3.0f, q.scale[0], (float)q.zero_point[0], (float)q.qmin,
                                       (float)q.qmax);
            CHECK(fabsf(v - 3.0f) <= 0.5f * q.scale[0] + 1e-6f);
        }
        /* An infinite end counts as 0, like NaN: [-inf, 2] is [0, 2]. */
        nnq_quantizer_set_range(&q, 0, -INFINITY, 2.0f);
        float s_inf = q.scale[0];
        int32_t z_inf = q.zero_point[0];
        nnq_quantizer_set_range(&q, 0, 0.0f, 2.0f);
        CHECK(s_inf == q.scale[0] && z_inf == q.zero_point[0]);
        nnq_quantizer_free(&q);
    }
}

/* Per channel: a normal, an all-zero, a denormal-width and a NaN channel. */
static void test_per_channel(void) {
    nnq_qconfig c = {.bits = 8, .symmetric = true, .is_signed = true, .per_channel = true};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, 0, 4));
    nnq_quantizer_set_range(&q, 0, -1.0f, 1.0f);
    nnq_quantizer_set_range(&q, 1, 0.0f, 0.0f);
    nnq_quantizer_set_range(&q, 2, -1e-41f, 1e-41f);
    nnq_quantizer_set_range(&q, 3, NAN, NAN);
    for (int k = 0; k < 4; k++) CHECK(valid_pair(&q, k));
    CHECK_NEAR(q.scale[0], 1.0 / 127, 1e-9);
    CHECK(q.scale[1] == 1.0f && q.zero_point[1] == 0);
    CHECK(q.scale[3] == 1.0f && q.zero_point[3] == 0);
    /* Channel 1 (all zero) stays exactly zero; channel 0 is quantized. */
    float x[4 * 3], y[4 * 3];
    for (int i = 0; i < 12; i++) x[i] = i / 3 == 1 ? 0.0f : (float)uniform(-1, 1);
    x[9] = NAN; /* NaN -> z -> 0.0 */
    nnq_quantizer_apply(&q, x, y, 1, 3);
    for (int i = 0; i < 12; i++) CHECK(isfinite(y[i]));
    for (int i = 3; i < 6; i++) CHECK(y[i] == 0.0f);
    CHECK(y[9] == 0.0f);
    for (int i = 0; i < 3; i++) CHECK(fabsf(y[i] - x[i]) <= 0.5f / 127 + 1e-7f);
    nnq_quantizer_free(&q);
}

/* nnq_qerror_mse leaves non-finite values out: the same number as on the
 * finite values alone (it used to be NaN, making every search candidate tie). */
static void test_qerror_nonfinite(void) {
    enum { N = 500 };
    float x[N], clean[N];
    int nc = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)uniform(-2, 3);
        if (i % 50 == 7) x[i] = NAN;
        if (i % 77 == 5) x[i] = i % 2 ? INFINITY : -INFINITY;
        if (isfinite(x[i])) clean[nc++] = x[i];
    }
    for (int k = 0; k < N_CONFIGS; k++) {
        double e = nnq_qerror_mse(&CONFIGS[k], x, N, 1, -1.5f, 2.5f);
        CHECK(isfinite(e) && e >= 0);
        CHECK(e == nnq_qerror_mse(&CONFIGS[k], clean, nc, 1, -1.5f, 2.5f));
    }
    float all_bad[3] = {NAN, INFINITY, -INFINITY};
    CHECK(nnq_qerror_mse(&CONFIGS[0], all_bad, 3, 1, -1, 1) == 0.0);
}

/* ---- range setting from raw values ---- */

static void test_data_ranges(void) {
    enum { N = 2000 };
    float *x = malloc(sizeof(float) * N), *clean = malloc(sizeof(float) * N);
    int nc = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)(uniform(-1, 1) * uniform(0, 1) * 3);
        if (i % 97 == 11) x[i] = NAN;
        if (i % 131 == 3) x[i] = i % 2 ? INFINITY : -INFINITY;
        if (isfinite(x[i])) clean[nc++] = x[i];
        else bad++;
    }
    CHECK(nnq_count_nonfinite(x, N, 1) == bad && bad > 0);
    CHECK(nnq_count_nonfinite(x, N / 2, 2) == nnq_count_nonfinite(x, N, 1) -
                                                  nnq_count_nonfinite(x + 1, N / 2, 2));
    const nnq_range_method methods[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE};
    for (int k = 0; k < N_CONFIGS; k++)
        for (int m = 0; m < 2; m++) {
            float lo, hi, clo, chi;
            CHECK_OK(nnq_range_from_data(x, N, 1, &CONFIGS[k], methods[m], &lo, &hi));
            CHECK_OK(nnq_range_from_data(clean, nc, 1, &CONFIGS[k], methods[m], &clo, &chi));
            CHECK(lo == clo && hi == chi); /* the non-finite values change nothing */
            CHECK(isfinite(lo) && isfinite(hi) && lo <= hi);
        }
    /* Nothing finite, all zero, all equal, denormal: defined ranges. */
    float special[4][8];
    for (int i = 0; i < 8; i++) {
        special[0][i] = i % 2 ? NAN : INFINITY;
        special[1][i] = 0.0f;
        special[2][i] = -2.5f;
        special[3][i] = (i - 4) * 1e-44f;
    }
    for (int k = 0; k < N_CONFIGS; k++)
        for (int m = 0; m < 2; m++)
            for (int t = 0; t < 4; t++) {
                float lo = NAN, hi = NAN;
                CHECK_OK(nnq_range_from_data(special[t], 8, 1, &CONFIGS[k], methods[m], &lo, &hi));
                CHECK(isfinite(lo) && isfinite(hi) && lo <= hi);
                if (t < 2) CHECK(lo == 0 && hi == 0);
                nnq_quantizer q;
                CHECK_OK(nnq_quantizer_init(&q, &CONFIGS[k], -1, 1));
                nnq_quantizer_set_range(&q, 0, lo, hi);
                CHECK(valid_pair(&q, 0));
                if (t < 2) CHECK(q.scale[0] == 1.0f);
                nnq_quantizer_free(&q);
            }
    free(x);
    free(clean);
}

/* ---- histograms ---- */

static void check_hist_ranges(const nnq_histogram *h, bool want_zero) {
    const nnq_range_method methods[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE, NNQ_RANGE_PERCENTILE};
    for (int k = 0; k < N_CONFIGS; k++)
        for (int m = 0; m < 3; m++) {
            float lo = NAN, hi = NAN;
            CHECK_OK(nnq_range_from_histogram(h, &CONFIGS[k], methods[m], 0.01, &lo, &hi));
            CHECK(isfinite(lo) && isfinite(hi) && lo <= hi);
            if (want_zero) CHECK(lo == 0 && hi == 0);
            nnq_quantizer q;
            CHECK_OK(nnq_quantizer_init(&q, &CONFIGS[k], -1, 1));
            nnq_quantizer_set_range(&q, 0, lo, hi);
            CHECK(valid_pair(&q, 0));
            if (want_zero) CHECK(q.scale[0] == 1.0f);
            nnq_quantizer_free(&q);
        }
}

static void test_histograms(void) {
    enum { N = 5000 };
    float *x = malloc(sizeof(float) * N), *clean = malloc(sizeof(float) * N);
    int nc = 0;
    for (int i = 0; i < N; i++) {
        x[i] = (float)(uniform(-1, 4) * uniform(0, 1));
        if (i % 101 == 9) x[i] = NAN;
        if (i % 143 == 1) x[i] = i % 2 ? INFINITY : -INFINITY;
        if (isfinite(x[i])) clean[nc++] = x[i];
    }
    /* With the non-finite values: the same counts, ranges and a nan_count. */
    nnq_histogram h, hc;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_init(&hc, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, x, N));
    CHECK_OK(nnq_histogram_add(&hc, clean, nc));
    CHECK(h.nan_count == N - nc && h.total == nc);
    CHECK(isfinite(h.min) && isfinite(h.max) && h.min == hc.min && h.max == hc.max);
    CHECK(memcmp(h.count, hc.count, sizeof(double) * NNQ_HIST_BINS) == 0);
    check_hist_ranges(&h, false);
    for (int k = 0; k < N_CONFIGS; k++) {
        float lo, hi, clo, chi;
        CHECK_OK(nnq_range_from_histogram(&h, &CONFIGS[k], NNQ_RANGE_MSE, 0, &lo, &hi));
        CHECK_OK(nnq_range_from_histogram(&hc, &CONFIGS[k], NNQ_RANGE_MSE, 0, &clo, &chi));
        CHECK(lo == clo && hi == chi);
    }
    /* An all-NaN histogram merged in: only its count moves. */
    nnq_histogram bad;
    CHECK_OK(nnq_histogram_init(&bad, NNQ_HIST_BINS));
    float nans[5] = {NAN, NAN, INFINITY, -INFINITY, NAN};
    CHECK_OK(nnq_histogram_add(&bad, nans, 5));
    CHECK(bad.total == 0 && bad.nan_count == 5);
    check_hist_ranges(&bad, true); /* nothing finite: [0, 0], s = 1 */
    CHECK_OK(nnq_histogram_merge(&h, &bad));
    CHECK(h.nan_count == N - nc + 5 && h.total == nc);
    nnq_histogram_free(&h);
    nnq_histogram_free(&hc);
    nnq_histogram_free(&bad);

    /* All zero; all equal (negative); denormals then a huge value. */
    float zeros[64] = {0}, equal[64], tiny[64];
    for (int i = 0; i < 64; i++) {
        equal[i] = -4.0f;
        tiny[i] = (float)(i - 32) * 1e-45f;
    }
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, zeros, 64));
    check_hist_ranges(&h, true);
    nnq_histogram_free(&h);
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, equal, 64));
    CHECK(h.min == -4.0 && h.max == -4.0);
    check_hist_ranges(&h, false);
    nnq_histogram_free(&h);
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, tiny, 64));
    check_hist_ranges(&h, false);
    float big = 3e38f;
    CHECK_OK(nnq_histogram_add(&h, &big, 1));
    CHECK(h.max == (double)big && isfinite(h.hi));
    check_hist_ranges(&h, false);
    nnq_histogram_free(&h);
    free(x);
    free(clean);
}

/* The cross-entropy search leaves out rows holding a non-finite logit. */
static void test_ce_nonfinite(void) {
    enum { N = 64, K = 10 };
    static float rows[N * K];
    for (int i = 0; i < N * K; i++) rows[i] = (float)uniform(-4, 6);
    nnq_qconfig c = {.bits = 8, .symmetric = false, .is_signed = false};
    float lo, hi, wlo, whi;
    CHECK_OK(nnq_range_ce_logits(rows + 2 * K, N - 2, K, &c, &wlo, &whi));
    rows[3] = NAN;
    rows[K + 7] = -INFINITY;
    CHECK_OK(nnq_range_ce_logits(rows, N, K, &c, &lo, &hi));
    CHECK(lo == wlo && hi == whi && isfinite(lo) && isfinite(hi));
    for (int i = 0; i < K; i++) rows[i] = rows[K + i] = NAN;
    CHECK_OK(nnq_range_ce_logits(rows, 2, K, &c, &lo, &hi)); /* no finite row */
    CHECK(lo == 0 && hi == 0);
}

/* ---- simulation: per-channel weights, calibration ---- */

static int find_node(const nnq_graph *g, const char *name) {
    for (int n = 0; n < g->n_nodes; n++)
        if (strcmp(g->nodes[n].name, name) == 0) return n;
    return -1;
}

/* input [1, 8, 8] → conv1 (4) → Relu → conv2 (3) → GAP → flatten → fc (5). */
static nnq_graph *small_net(void) {
    nnq_builder b;
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_init(&b, "guards", 13, 17));
    int x = nnq_build_input(&b, "input", 1, 8, 8);
    x = nnq_build_conv(&b, x, "conv1", 1, 4, 3, 1, 1, 1, true);
    x = nnq_build_act(&b, x, NNQ_ACT_RELU);
    x = nnq_build_conv(&b, x, "conv2", 4, 3, 3, 1, 1, 1, true);
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    x = nnq_build_gemm(&b, x, "fc", 3, 5);
    CHECK_OK(nnq_builder_finish(&b, x, "logits", &g));
    if (g) CHECK_OK(nnq_graph_prepare(g));
    return g;
}

static void test_sim_weights_and_calibration(void) {
    nnq_graph *g = small_net();
    if (!g) return;
    /* conv1's weight [4, 1, 3, 3]: channel 2 all zero, one NaN in channel 0. */
    const int n1 = find_node(g, "conv1");
    float *w = nnq_f32(&g->values[g->nodes[n1].inputs[1]].t);
    for (int i = 0; i < 9; i++) w[2 * 9 + i] = 0.0f;
    w[4] = NAN;
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (!s) {
        nnq_graph_free(g);
        return;
    }
    const nnq_range_method methods[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE};
    for (int m = 0; m < 2; m++) {
        CHECK_OK(nnq_qsim_set_weight_ranges(s, methods[m]));
        for (int i = 0; i < s->n_quant; i++) {
            const nnq_qsim_quant *q = &s->quant[i];
            if (q->role != NNQ_QROLE_WEIGHT) continue;
            for (int c = 0; c < q->q.n; c++) CHECK(valid_pair(&q->q, c));
            /* The quantized weights are finite (NaN quantizes to 0). */
            const nnq_tensor *out = &s->g->values[q->output].t;
            for (int64_t k = 0; out->data && k < nnq_tensor_numel(out); k++)
                CHECK(isfinite(nnq_f32(out)[k]));
            if (q->input != g->nodes[n1].inputs[1]) continue;
            CHECK(q->q.n == 4 && q->q.scale[2] == 1.0f && q->q.zero_point[2] == 0);
            /* Channel 0: the scale of its finite weights alone. */
            float clean[8], lo, hi;
            for (int k = 0, j = 0; k < 9; k++)
                if (k != 4) clean[j++] = w[k];
            CHECK_OK(nnq_range_from_data(clean, 8, 1, &q->q.cfg, methods[m], &lo, &hi));
            nnq_quantizer one;
            nnq_qconfig pc = q->q.cfg;
            pc.per_channel = false;
            CHECK_OK(nnq_quantizer_init(&one, &pc, -1, 1));
            nnq_quantizer_set_range(&one, 0, lo, hi);
            CHECK(one.scale[0] == q->q.scale[0]);
            nnq_quantizer_free(&one);
        }
    }

    /* Calibration on images holding NaN and Inf pixels: every activation
     * range finite (the NaN reaches whole feature maps through the convs). */
    w[4] = 0.3f; /* only the data is bad now */
    nnq_qsim_free(s);
    s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    enum { NI = 12 };
    nnq_dataset d = {.n = NI, .c = 1, .h = 8, .w = 8};
    d.images = malloc(sizeof(float) * NI * 64);
    for (int i = 0; i < NI * 64; i++) d.images[i] = (float)uniform(-1, 2);
    d.images[5] = NAN;
    d.images[64 * 3 + 17] = INFINITY;
    d.images[64 * 7 + 40] = -INFINITY;
    for (int i = 64 * 9; i < 64 * 10; i++) d.images[i] = NAN; /* a whole NaN image */
    const nnq_range_method act_methods[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE, NNQ_RANGE_PERCENTILE};
    for (int m = 0; s && m < 3; m++) {
        nnq_calib_options co;
        nnq_calib_options_default(&co);
        co.method = act_methods[m];
        co.logits_method = m == 1 ? NNQ_RANGE_CE : act_methods[m];
        co.batch = 4;
        CHECK_OK(nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MINMAX));
        CHECK_OK(nnq_qsim_calibrate(s, &d, &co));
        for (int i = 0; i < s->n_quant; i++)
            for (int c = 0; c < s->quant[i].q.n; c++) CHECK(valid_pair(&s->quant[i].q, c));
    }
    free(d.images);
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

/* ---- BatchNorm folding ---- */

enum { BN_SCALE = 1, BN_B, BN_MEAN, BN_VAR };

static float *bn_param(nnq_graph *g, int n, int slot) {
    return nnq_f32(&g->values[g->nodes[n].inputs[slot]].t);
}

/* input → conv1 (6) → bn1 → Relu → conv2 (6) → bn2 → GAP → flatten. */
static nnq_graph *bn_net(void) {
    rng_state = 0x13198a2e03707344ull; /* every call: the same model */
    nnq_builder b;
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_init(&b, "bnguards", 13, 23));
    int x = nnq_build_input(&b, "input", 1, 8, 8);
    x = nnq_build_conv(&b, x, "conv1", 1, 6, 3, 1, 1, 1, true);
    x = nnq_build_bn(&b, x, "bn1", 6);
    x = nnq_build_act(&b, x, NNQ_ACT_RELU);
    x = nnq_build_conv(&b, x, "conv2", 6, 6, 3, 1, 1, 1, true);
    x = nnq_build_bn(&b, x, "bn2", 6);
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    CHECK_OK(nnq_builder_finish(&b, x, "out", &g));
    if (!g) return NULL;
    for (int n = 0; n < g->n_nodes; n++) {
        if (strcmp(g->nodes[n].op_type, "BatchNormalization") != 0) continue;
        for (int k = 0; k < 6; k++) {
            bn_param(g, n, BN_SCALE)[k] = (float)uniform(0.5, 1.5);
            bn_param(g, n, BN_B)[k] = (float)uniform(-0.5, 0.5);
            bn_param(g, n, BN_MEAN)[k] = (float)uniform(-0.2, 0.2);
            bn_param(g, n, BN_VAR)[k] = (float)uniform(0.3, 2);
        }
    }
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].op_type[0] == 'C') /* conv biases non-zero */
            for (int k = 0; k < 6; k++) nnq_f32(&g->values[g->nodes[n].inputs[2]].t)[k] = (float)uniform(-0.3, 0.3);
    CHECK_OK(nnq_graph_prepare(g));
    return g;
}

static int count_lines(FILE *fp, const char *needle) {
    long n = ftell(fp);
    char *s = calloc((size_t)n + 1, 1);
    rewind(fp);
    if (s && fread(s, 1, (size_t)n, fp) != (size_t)n) s[0] = 0;
    int k = 0;
    for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n"))
        k += strstr(line, needle) != NULL;
    free(s);
    fseek(fp, 0, SEEK_END);
    return k;
}

typedef struct layer_copy {
    float w[6 * 6 * 9], b[6];
} layer_copy;

static void copy_layer(const nnq_graph *g, const char *name, int64_t wn, layer_copy *c) {
    int n = find_node(g, name);
    if (n < 0) return;
    memcpy(c->w, nnq_f32(&g->values[g->nodes[n].inputs[1]].t), sizeof(float) * (size_t)wn);
    memcpy(c->b, nnq_f32(&g->values[g->nodes[n].inputs[2]].t), sizeof c->b);
}

static void test_bn_fold_degenerate(void) {
    nnq_graph *g = bn_net(), *ref = bn_net(); /* ref: same model, healthy statistics */
    if (!g || !ref) return;
    const int b1 = find_node(g, "bn1"), b2 = find_node(g, "bn2");
    /* bn1, epsilon 0: ch0 healthy; ch1 var 0; ch2 var < 0; ch3 var NaN;
     * ch4 gamma NaN; ch5 a scale that overflows float (tiny var, huge gamma). */
    CHECK_OK(nnq_node_set_float(&g->nodes[b1], "epsilon", 0.0f));
    float *var1 = bn_param(g, b1, BN_VAR), *gamma1 = bn_param(g, b1, BN_SCALE);
    var1[1] = 0.0f;
    var1[2] = -0.1f;
    var1[3] = NAN;
    gamma1[4] = NAN;
    var1[5] = 1e-45f;
    gamma1[5] = 3e38f;
    /* bn2, epsilon 1e-5: ch0 var slightly negative (folds with var 0);
     * ch1 var 0 (folds normally); ch2 var inf; ch3 mean inf; ch4 beta NaN. */
    CHECK_OK(nnq_node_set_float(&g->nodes[b2], "epsilon", 1e-5f));
    CHECK_OK(nnq_node_set_float(&ref->nodes[find_node(ref, "bn2")], "epsilon", 1e-5f));
    float *var2 = bn_param(g, b2, BN_VAR);
    var2[0] = -1e-7f;
    var2[1] = 0.0f;
    var2[2] = INFINITY;
    bn_param(g, b2, BN_MEAN)[3] = INFINITY;
    bn_param(g, b2, BN_B)[4] = NAN;
    float beta1_copy[6], beta2_copy[6], gamma2_copy[6];
    memcpy(beta1_copy, bn_param(g, b1, BN_B), sizeof beta1_copy);
    memcpy(beta2_copy, bn_param(g, b2, BN_B), sizeof beta2_copy);
    memcpy(gamma2_copy, bn_param(g, b2, BN_SCALE), sizeof gamma2_copy);

    /* The reference model: bn2's channel 0 and 1 with var exactly 0. */
    memcpy(bn_param(ref, find_node(ref, "bn2"), BN_VAR), var2, sizeof(float) * 6);
    bn_param(ref, find_node(ref, "bn2"), BN_VAR)[0] = 0.0f;

    FILE *fp = tmpfile();
    nnq_ptq_log log = {.fp = fp};
    nnq_bn_stats st = {0}, st_ref = {0};
    int folded = 0, unfolded = 0;
    CHECK_OK(nnq_ptq_fold_bn(g, &st, &folded, &unfolded, &log));
    CHECK(folded == 2 && unfolded == 0);
    CHECK(count_lines(fp, "bn-fold: warning:") == 2);
    CHECK(count_lines(fp, "'bn1': 5 channel(s) folded to a constant") == 1);
    CHECK(count_lines(fp, "'bn2': 3 channel(s) folded to a constant") == 1);
    CHECK(count_lines(fp, "1 negative variance(s) taken as 0") == 2);
    fclose(fp);
    CHECK_OK(nnq_ptq_fold_bn(ref, &st_ref, &folded, &unfolded, NULL));

    /* Every folded weight and bias, and every kept statistic, is finite. */
    layer_copy c1, c2, r2;
    copy_layer(g, "conv1", 6 * 9, &c1);
    copy_layer(g, "conv2", 6 * 6 * 9, &c2);
    copy_layer(ref, "conv2", 6 * 6 * 9, &r2);
    for (int i = 0; i < 6 * 9; i++) CHECK(isfinite(c1.w[i]));
    for (int i = 0; i < 6 * 6 * 9; i++) CHECK(isfinite(c2.w[i]));
    for (int k = 0; k < 6; k++) CHECK(isfinite(c1.b[k]) && isfinite(c2.b[k]));
    for (int e = 0; e < st.n; e++)
        for (int k = 0; k < st.e[e].channels; k++)
            CHECK(isfinite(st.e[e].gamma[k]) && isfinite(st.e[e].beta[k]));
    /* Constant channels: weights 0, bias beta (0 for a NaN beta), gamma 0. */
    for (int k = 1; k < 6; k++) {
        for (int i = 0; i < 9; i++) CHECK(c1.w[k * 9 + i] == 0.0f);
        CHECK(c1.b[k] == beta1_copy[k]);
    }
    CHECK(c1.w[0] != 0.0f);
    for (int k = 2; k < 5; k++) {
        for (int i = 0; i < 6 * 9; i++) CHECK(c2.w[k * 54 + i] == 0.0f);
        CHECK(c2.b[k] == (k == 4 ? 0.0f : beta2_copy[k]));
    }
    const nnq_bn_entry *e1 = nnq_bn_stats_find(&st, "bn1"), *e2 = nnq_bn_stats_find(&st, "bn2");
    CHECK(e1 && e2);
    if (e1 && e2) {
        for (int k = 1; k < 6; k++) CHECK(e1->gamma[k] == 0.0f && e1->beta[k] == c1.b[k]);
        CHECK(e2->gamma[4] == 0.0f && e2->beta[4] == 0.0f);
        CHECK(e2->gamma[0] == gamma2_copy[0] && e2->gamma[5] == gamma2_copy[5]);
    }
    /* Healthy and var-0 / negative-var channels of bn2 fold exactly as a
     * model whose variance is exactly 0 there. */
    for (int k = 0; k < 6; k++) {
        if (k >= 2 && k <= 4) continue;
        CHECK(memcmp(&c2.w[k * 54], &r2.w[k * 54], sizeof(float) * 54) == 0);
        CHECK(c2.b[k] == r2.b[k]);
    }

    /* The folded model runs to finite outputs. */
    nnq_exec *ex = NULL;
    nnq_exec_options eo = {.threads = 1};
    CHECK_OK(nnq_graph_prepare(g));
    CHECK_OK(nnq_exec_create(g, &eo, &ex));
    if (ex) {
        float img[2 * 64];
        for (int i = 0; i < 128; i++) img[i] = (float)uniform(-2, 2);
        nnq_tensor x = {0};
        const int64_t dims[4] = {2, 1, 8, 8};
        CHECK_OK(nnq_tensor_set_shape(&x, NNQ_DT_FLOAT, 4, dims));
        x.data = img;
        CHECK_OK(nnq_exec_run(ex, &x));
        const nnq_tensor *y = nnq_exec_output(ex, 0);
        for (int64_t i = 0; i < nnq_tensor_numel(y); i++) CHECK(isfinite(nnq_f32(y)[i]));
        nnq_exec_free(ex);
    }
    /* A healthy model gets no warning. */
    nnq_graph *h = bn_net();
    fp = tmpfile();
    log.fp = fp;
    CHECK_OK(nnq_ptq_fold_bn(h, NULL, &folded, &unfolded, &log));
    CHECK(folded == 2 && count_lines(fp, "warning") == 0);
    fclose(fp);
    nnq_graph_free(h);
    nnq_bn_stats_free(&st);
    nnq_bn_stats_free(&st_ref);
    nnq_graph_free(g);
    nnq_graph_free(ref);
}

/* ---- BN-based ranges ---- */

static void bn_ranges_case(int variant) {
    nnq_graph *g = bn_net();
    if (!g) return;
    const int b1 = find_node(g, "bn1"), b2 = find_node(g, "bn2");
    float *gamma1 = bn_param(g, b1, BN_SCALE), *beta1 = bn_param(g, b1, BN_B);
    float *gamma2 = bn_param(g, b2, BN_SCALE), *beta2 = bn_param(g, b2, BN_B);
    if (variant == 0) { /* some gamma = 0 channels */
        gamma1[1] = gamma1[4] = 0.0f;
        gamma2[0] = 0.0f;
    } else { /* every channel gamma = beta = 0: zero-width ranges */
        for (int k = 0; k < 6; k++) gamma1[k] = beta1[k] = gamma2[k] = beta2[k] = 0.0f;
    }
    nnq_bn_stats st = {0};
    int folded = 0, unfolded = 0;
    CHECK_OK(nnq_ptq_fold_bn(g, &st, &folded, &unfolded, NULL));
    CHECK_OK(nnq_graph_prepare(g));
    if (variant == 2) { /* statistics gone bad after folding */
        nnq_bn_entry *e = nnq_bn_stats_find(&st, "bn2");
        if (e) e->gamma[3] = NAN;
        if (e) e->beta[4] = NAN;
    }
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (!s) {
        nnq_bn_stats_free(&st);
        nnq_graph_free(g);
        return;
    }
    FILE *fp = tmpfile();
    nnq_ptq_log log = {.fp = fp};
    int set = 0, missing = 0;
    CHECK_OK(nnq_ptq_bn_ranges(s, &st, -1.0f, 2.0f, &set, &missing, &log));
    CHECK(set > 0);
    CHECK(missing == 0); /* a NaN channel is left out of the union */
    CHECK(count_lines(fp, "bn ranges: warning:") == (variant == 2 ? 2 : 0));
    if (variant == 2) CHECK(count_lines(fp, "2 BN statistics channel(s) hold a non-finite") == 1);
    fclose(fp);
    int zero_width = 0;
    for (int i = 0; i < s->n_quant; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        for (int c = 0; c < q->q.n; c++) CHECK(valid_pair(&q->q, c));
        if (q->role == NNQ_QROLE_ACT && q->tied < 0 && q->q.scale[0] == 1.0f) zero_width++;
    }
    if (variant == 1) CHECK(zero_width >= 2); /* after bn1+relu and after bn2 */
    nnq_qsim_free(s);
    nnq_bn_stats_free(&st);
    nnq_graph_free(g);
}

static void test_bn_ranges(void) {
    bn_ranges_case(0);
    bn_ranges_case(1);
    bn_ranges_case(2);
}

int main(void) {
    test_degenerate_ranges();
    test_per_channel();
    test_qerror_nonfinite();
    test_data_ranges();
    test_histograms();
    test_ce_nonfinite();
    test_sim_weights_and_calibration();
    test_bn_fold_degenerate();
    test_bn_ranges();
    return check_finish("test_numeric_guards");
}
