/* Output-aware MSE weight ranges (src/quant/range.c nnq_range_output_mse,
 * src/ptq/wrange_output.c):
 *   - the criterion is the expected squared output error: a Monte Carlo
 *     estimate of E[((w - w_hat) . x)^2] over independent inputs with the
 *     given means and variances agrees with nnq_qerror_output;
 *   - on a synthetic 4-bit per-channel layer (heavy-tailed weights, inputs
 *     with positive means, as after a ReLU) the chosen clip never raises
 *     the criterion against plain MSE's clip on any channel and lowers it
 *     clearly in total; per tensor (one range, many outputs) likewise;
 *     inputs that are always 0 give plain MSE's range (the tie-break);
 *   - with correlated inputs (a covariance per input position) the
 *     criterion still matches Monte Carlo, where the diagonal one does not;
 *   - the streamed per-channel moments of layer inputs (batches of at most
 *     32 images: means, variances, covariances) equal a direct computation
 *     over all images;
 *   - nnq_ptq_run: with calibration data --wrange mse is output-aware on
 *     every layer; without data (the data-free recipe) it falls back to
 *     plain MSE, giving exactly nnq_qsim_set_weight_ranges' scales. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/dataset.h"
#include "models/models.h"
#include "ops/executor.h"
#include "ptq/recipe.h"
#include "ptq/wrange_output.h"
#include "quant/qsim.h"
#include "quant/range.h"

static uint64_t rng_state = 4242;
static double uniform(double lo, double hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}
static double normal(void) {
    double u = uniform(1e-12, 1), v = uniform(0, 1);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}
/* Laplace: a heavy tail, so plain MSE clips the largest weights. */
static double laplace(double b) {
    double u = uniform(-0.5, 0.5);
    return -b * (u < 0 ? -1 : 1) * log(1 - 2 * fabs(u));
}

static nnq_qconfig w4(void) {
    return (nnq_qconfig){.bits = 4, .symmetric = true, .is_signed = true};
}

static void test_criterion_monte_carlo(void) {
    enum { N = 48, SAMPLES = 200000 };
    float w[N];
    double mean[N], var[N];
    for (int i = 0; i < N; i++) {
        w[i] = (float)laplace(0.1);
        mean[i] = uniform(0.2, 1.5);
        var[i] = uniform(0.1, 1.0);
    }
    const nnq_qconfig c = w4();
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    float lo = -0.15f, hi = 0.15f; /* clips some weights: a mean shift */
    nnq_quantizer_set_range(&q, 0, lo, hi);
    float wh[N];
    nnq_quantizer_apply(&q, w, wh, 1, N);
    double mc = 0;
    for (int s = 0; s < SAMPLES; s++) {
        double e = 0;
        for (int i = 0; i < N; i++) e += ((double)w[i] - wh[i]) * (mean[i] + sqrt(var[i]) * normal());
        mc += e * e;
    }
    mc /= SAMPLES;
    const nnq_wout_stats st = {.mean = mean, .var = var, .n_out = 1};
    const double formula = nnq_qerror_output(&c, w, N, &st, lo, hi);
    CHECK(formula > 0);
    CHECK_NEAR(mc / formula, 1.0, 0.03);

    /* Correlated inputs: two positions (slots) of CIN channels each, each
     * position's channels mixed by one matrix A (x = mu + A z), the
     * positions independent. The diagonal criterion misses the
     * correlation; the one with the covariance A A^T matches. */
    enum { CIN = N / 2 };
    double A[CIN][CIN], cov[CIN * CIN];
    int32_t in[N];
    int64_t slot[3] = {0, CIN, N};
    for (int a = 0; a < CIN; a++)
        for (int b = 0; b < CIN; b++) A[a][b] = (a == b ? 0.5 : 0.0) + uniform(0.0, 0.3);
    for (int a = 0; a < CIN; a++)
        for (int b = 0; b < CIN; b++) {
            double v = 0;
            for (int k = 0; k < CIN; k++) v += A[a][k] * A[b][k];
            cov[a * CIN + b] = v;
        }
    for (int i = 0; i < N; i++) {
        in[i] = i % CIN;
        mean[i] = mean[i % CIN];
        var[i] = cov[(i % CIN) * (CIN + 1)];
    }
    mc = 0;
    for (int s = 0; s < SAMPLES / 4; s++) {
        double e = 0, z[CIN];
        for (int p = 0; p < 2; p++) {
            for (int k = 0; k < CIN; k++) z[k] = normal();
            for (int a = 0; a < CIN; a++) {
                double x = mean[a];
                for (int k = 0; k < CIN; k++) x += A[a][k] * z[k];
                e += ((double)w[p * CIN + a] - wh[p * CIN + a]) * x;
            }
        }
        mc += e * e;
    }
    mc /= SAMPLES / 4;
    const nnq_wout_stats stc = {.mean = mean, .cov = cov, .n_in = CIN, .in = in, .slot = slot,
                                .n_slot = 2, .n_out = 1};
    const nnq_wout_stats std = {.mean = mean, .var = var, .n_out = 1};
    const double with_cov = nnq_qerror_output(&c, w, N, &stc, lo, hi);
    CHECK_NEAR(mc / with_cov, 1.0, 0.04);
    CHECK(fabs(mc / nnq_qerror_output(&c, w, N, &std, lo, hi) - 1.0) > 0.1);
    /* Slots must cover the weights. */
    int64_t bad_slot[3] = {0, CIN, N - 1};
    const nnq_wout_stats stbad = {.mean = mean, .cov = cov, .n_in = CIN, .in = in,
                                  .slot = bad_slot, .n_slot = 2, .n_out = 1};
    float l2, h2;
    CHECK_STATUS(nnq_range_output_mse(w, N, &stbad, &c, &l2, &h2), NNQ_ERR_INVALID);
    nnq_quantizer_free(&q);
}

static void test_per_channel_layer(void) {
    enum { CH = 32, CIN = 16, TAPS = 9, PER = CIN * TAPS };
    const nnq_qconfig c = w4();
    static float w[CH * PER];
    double mean_in[CIN], var_in[CIN], mean[PER], var[PER];
    for (int i = 0; i < CIN; i++) {
        mean_in[i] = uniform(0.3, 1.5);
        var_in[i] = uniform(0.1, 0.8);
    }
    for (int e = 0; e < PER; e++) {
        mean[e] = mean_in[e / TAPS];
        var[e] = var_in[e / TAPS];
    }
    const nnq_wout_stats st = {.mean = mean, .var = var, .n_out = 1};
    double sum_out = 0, sum_plain = 0;
    int lower = 0;
    for (int o = 0; o < CH; o++) {
        float *wo = w + o * PER;
        for (int e = 0; e < PER; e++) wo[e] = (float)laplace(0.05 * (1 + o % 4));
        float plo, phi, olo, ohi;
        CHECK_OK(nnq_range_from_data(wo, PER, 1, &c, NNQ_RANGE_MSE, &plo, &phi));
        CHECK_OK(nnq_range_output_mse(wo, PER, &st, &c, &olo, &ohi));
        const double ep = nnq_qerror_output(&c, wo, PER, &st, plo, phi);
        const double eo = nnq_qerror_output(&c, wo, PER, &st, olo, ohi);
        CHECK(eo <= ep * (1 + 1e-12)); /* never raises it */
        lower += eo < ep * 0.999;
        sum_out += eo;
        sum_plain += ep;
    }
    fprintf(stderr, "per-channel: output-aware %.4g vs plain MSE %.4g (%d of %d channels lower)\n",
            sum_out, sum_plain, lower, CH);
    CHECK(sum_out < 0.8 * sum_plain);
    CHECK(lower >= CH / 2);

    /* With a (random, positive definite) input covariance, slots = taps:
     * still never above plain MSE's clip. */
    static double cv[CIN * CIN], B[CIN][CIN];
    int32_t inc[PER];
    int64_t slot[TAPS + 1];
    for (int a = 0; a < CIN; a++)
        for (int b = 0; b < CIN; b++) B[a][b] = (a == b ? 0.6 : 0.0) + uniform(-0.2, 0.3);
    for (int a = 0; a < CIN; a++)
        for (int b = 0; b < CIN; b++) {
            double v = 0;
            for (int k = 0; k < CIN; k++) v += B[a][k] * B[b][k];
            cv[a * CIN + b] = v;
        }
    for (int e = 0; e < PER; e++) {
        inc[e] = e % CIN; /* slot-major: tap e / CIN, channel e % CIN */
        mean[e] = mean_in[e % CIN];
    }
    for (int t = 0; t <= TAPS; t++) slot[t] = (int64_t)t * CIN;
    const nnq_wout_stats stc = {.mean = mean, .cov = cv, .n_in = CIN, .in = inc, .slot = slot,
                                .n_slot = TAPS, .n_out = 1};
    double sc_out = 0, sc_plain = 0;
    for (int o = 0; o < CH; o++) {
        const float *wo = w + o * PER;
        float plo, phi, olo, ohi;
        CHECK_OK(nnq_range_from_data(wo, PER, 1, &c, NNQ_RANGE_MSE, &plo, &phi));
        CHECK_OK(nnq_range_output_mse(wo, PER, &stc, &c, &olo, &ohi));
        const double ep = nnq_qerror_output(&c, wo, PER, &stc, plo, phi);
        const double eo = nnq_qerror_output(&c, wo, PER, &stc, olo, ohi);
        CHECK(eo <= ep * (1 + 1e-12));
        sc_out += eo;
        sc_plain += ep;
    }
    CHECK(sc_out < 0.9 * sc_plain);

    /* Per tensor: one range over all channels, each output's mean shift. */
    static int32_t out[CH * PER];
    static double mt[CH * PER], vt[CH * PER];
    for (int e = 0; e < CH * PER; e++) {
        out[e] = e / PER;
        mt[e] = mean[e % PER];
        vt[e] = var[e % PER];
    }
    const nnq_wout_stats stt = {.mean = mt, .var = vt, .out = out, .n_out = CH};
    float plo, phi, olo, ohi;
    CHECK_OK(nnq_range_from_data(w, CH * PER, 1, &c, NNQ_RANGE_MSE, &plo, &phi));
    CHECK_OK(nnq_range_output_mse(w, CH * PER, &stt, &c, &olo, &ohi));
    CHECK(nnq_qerror_output(&c, w, CH * PER, &stt, olo, ohi) <=
          nnq_qerror_output(&c, w, CH * PER, &stt, plo, phi) * (1 + 1e-12));

    /* An input that is always 0: every clip scores 0, plain MSE's wins. */
    static double zero[PER];
    const nnq_wout_stats st0 = {.mean = zero, .var = zero, .n_out = 1};
    CHECK_OK(nnq_range_from_data(w, PER, 1, &c, NNQ_RANGE_MSE, &plo, &phi));
    CHECK_OK(nnq_range_output_mse(w, PER, &st0, &c, &olo, &ohi));
    CHECK(olo == plo && ohi == phi);

    /* Bad output index. */
    int32_t bad[2] = {0, 3};
    const nnq_wout_stats stb = {.mean = mean, .var = var, .out = bad, .n_out = 2};
    CHECK_STATUS(nnq_range_output_mse(w, 2, &stb, &c, &olo, &ohi), NNQ_ERR_INVALID);
}

/* Streamed moments of every Conv / Gemm input of tiny vs one direct pass. */
static void test_streamed_moments(const nnq_dataset *d) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_tiny(5, &g));
    if (!g) return;
    CHECK_OK(nnq_graph_prepare(g));
    int vals[16];
    bool last[16], want_cov[16];
    int nv = 0;
    for (int n = 0; n < g->n_nodes && nv < 16; n++) {
        const char *op = g->nodes[n].op_type;
        const bool conv = strcmp(op, "Conv") == 0, fc = strcmp(op, "Gemm") == 0;
        if (!conv && !fc) continue;
        vals[nv] = g->nodes[n].inputs[0];
        want_cov[nv] = nv % 2 == 0;
        last[nv++] = fc;
    }
    CHECK(nv >= 2);
    nnq_chan_moments mom[16];
    CHECK_OK(nnq_chan_moments_collect(g, d, d->n, 2, vals, last, want_cov, nv, mom));
    nnq_exec *ex = NULL;
    const nnq_exec_options eo = {.threads = 2, .keep_all = true};
    CHECK_OK(nnq_exec_create(g, &eo, &ex));
    nnq_tensor x;
    nnq_dataset_batch(d, 0, d->n, &x);
    CHECK_OK(nnq_exec_run(ex, &x));
    for (int k = 0; ex && k < nv; k++) {
        const nnq_tensor *t = nnq_exec_value(ex, vals[k]);
        const int axis = last[k] ? t->rank - 1 : 1;
        const int64_t ch = t->dims[axis];
        int64_t outer = 1, inner = 1;
        for (int a = 0; a < axis; a++) outer *= t->dims[a];
        for (int a = axis + 1; a < t->rank; a++) inner *= t->dims[a];
        CHECK(mom[k].channels == ch);
        for (int64_t c = 0; c < ch && mom[k].channels == ch; c++) {
            double s = 0, v = 0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) s += nnq_f32(t)[(o * ch + c) * inner + i];
            const double mu = s / (double)(outer * inner);
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    const double dd = nnq_f32(t)[(o * ch + c) * inner + i] - mu;
                    v += dd * dd;
                }
            v /= (double)(outer * inner);
            CHECK_NEAR(mom[k].mean[c], mu, 1e-9 * (1 + fabs(mu)));
            CHECK_NEAR(mom[k].var[c], v, 1e-8 * (1 + v));
        }
        /* Covariance with channel 0 (sums of x x^T in float per batch),
         * only where asked for */
        CHECK((mom[k].cov != NULL) == want_cov[k]);
        for (int64_t c = 1; c < ch && mom[k].cov && mom[k].channels == ch; c++) {
            double s0 = 0, s1 = 0, s01 = 0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    const double a = nnq_f32(t)[(o * ch) * inner + i];
                    const double b = nnq_f32(t)[(o * ch + c) * inner + i];
                    s0 += a;
                    s1 += b;
                    s01 += a * b;
                }
            const double cnt = (double)(outer * inner);
            const double cv = s01 / cnt - (s0 / cnt) * (s1 / cnt);
            CHECK_NEAR(mom[k].cov[c], cv, 1e-5 * (sqrt(mom[k].var[0] * mom[k].var[c]) + 1e-12));
            CHECK_NEAR(mom[k].cov[c * ch], mom[k].cov[c], 1e-12 * (1 + fabs(cv)));
        }
        nnq_chan_moments_free(&mom[k]);
    }
    nnq_exec_free(ex);
    nnq_graph_free(g);
}

/* nnq_ptq_run: output-aware with data, plain without (data-free). */
static void test_recipe_modes(const nnq_dataset *d) {
    nnq_graph *model = NULL;
    CHECK_OK(nnq_model_tiny(9, &model));
    if (!model) return;
    CHECK_OK(nnq_graph_prepare(model));
    nnq_ptq_options o;
    nnq_ptq_options_default(&o);
    o.qsim.weights.bits = 4;
    o.wrange = NNQ_RANGE_MSE;
    o.calib.n = d->n;
    nnq_graph *fg = NULL;
    nnq_qsim *sim = NULL;
    nnq_ptq_report r;
    CHECK(o.wmse == NNQ_WMSE_OUTPUT); /* the default */
    CHECK_OK(nnq_ptq_run(model, d, &o, NULL, &fg, &sim, &r));
    CHECK(r.wmse_used && r.wmse == NNQ_WMSE_OUTPUT);
    if (sim) CHECK(r.wmse_output_layers == sim->n_layers && r.wmse_plain_layers == 0);
    /* Differs from plain MSE somewhere (the moments are used). */
    nnq_qsim *plain = NULL;
    int differ = 0;
    if (sim && fg) {
        CHECK_OK(nnq_qsim_create(fg, &o.qsim, &plain));
        CHECK_OK(nnq_qsim_set_weight_ranges(plain, NNQ_RANGE_MSE));
        for (int i = 0; plain && i < sim->n_quant; i++)
            if (sim->quant[i].role == NNQ_QROLE_WEIGHT)
                for (int c = 0; c < sim->quant[i].q.n; c++)
                    differ += sim->quant[i].q.scale[c] != plain->quant[i].q.scale[c];
    }
    CHECK(differ > 0);
    nnq_qsim_free(sim);
    nnq_graph_free(fg);
    sim = NULL;
    fg = NULL;

    /* No data: data-free recipe (BN ranges, analytical bias correction off
     * so the weights stay as range setting left them). */
    nnq_ptq_apply_recipe(&o, NNQ_RECIPE_DATA_FREE);
    o.bias_correct = NNQ_BC_NONE;
    CHECK_OK(nnq_ptq_run(model, NULL, &o, NULL, &fg, &sim, &r));
    CHECK(r.wmse_used && r.wmse == NNQ_WMSE_PLAIN && r.wmse_output_layers == 0);
    nnq_qsim *ref = NULL;
    int same = 0, total = 0;
    if (sim && fg) {
        CHECK_OK(nnq_qsim_create(fg, &o.qsim, &ref));
        CHECK_OK(nnq_qsim_set_weight_ranges(ref, NNQ_RANGE_MSE));
        for (int i = 0; ref && i < sim->n_quant; i++)
            if (sim->quant[i].role == NNQ_QROLE_WEIGHT)
                for (int c = 0; c < sim->quant[i].q.n; c++) {
                    total++;
                    same += sim->quant[i].q.scale[c] == ref->quant[i].q.scale[c];
                }
    }
    CHECK(total > 0 && same == total);
    nnq_qsim_free(ref);
    nnq_qsim_free(plain);
    nnq_qsim_free(sim);
    nnq_graph_free(fg);
    nnq_graph_free(model);
}

int main(void) {
    test_criterion_monte_carlo();
    test_per_channel_layer();
    nnq_dataset d = {0};
    nnq_status s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 72, &d);
    CHECK_OK(s);
    if (s == NNQ_OK) {
        test_streamed_moments(&d); /* 72 images: batches of <= 32, a partial last one */
        test_recipe_modes(&d);
    }
    nnq_dataset_free(&d);
    return check_finish("test_ptq_wrange_output");
}
