/* Range setting: streaming histograms (exact counts across range growth,
 * merging, non-finite values), min-max, percentile, MSE searches on raw
 * values and on histograms, and the cross-entropy search for logits. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/qmath.h"
#include "quant/quantizer.h"
#include "quant/range.h"

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void) { /* [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double nrand(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static nnq_qconfig cfg(int bits, bool symmetric, bool is_signed) {
    nnq_qconfig c = {.bits = bits, .symmetric = symmetric, .is_signed = is_signed};
    return c;
}

/* Symmetric signed, full-range scale (a / (2^(b-1) - 1/2)). */
static nnq_qconfig cfg_full(int bits) {
    nnq_qconfig c = cfg(bits, true, true);
    c.sym_range = NNQ_SYM_FULL;
    return c;
}

static double mse_of(const nnq_qconfig *c, const float *x, int64_t n, float lo, float hi) {
    return nnq_qerror_mse(c, x, n, 1, lo, hi);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Direct binning of all values with h's final range (the add's formula). */
static int recount_mismatches(const nnq_histogram *h, const float *x, int64_t n) {
    double *cnt = calloc((size_t)h->n_bins, sizeof *cnt);
    double inv_w = h->n_bins / (h->hi - h->lo);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        double t = ((double)x[i] - h->lo) * inv_w;
        int b = !(t > 0) ? 0 : (t >= h->n_bins ? h->n_bins - 1 : (int)t);
        cnt[b] += 1;
    }
    int bad = 0;
    for (int i = 0; i < h->n_bins; i++) bad += cnt[i] != h->count[i];
    free(cnt);
    return bad;
}

static double count_sum(const nnq_histogram *h) {
    double s = 0;
    for (int i = 0; i < h->n_bins; i++) s += h->count[i];
    return s;
}

/* ---- names --------------------------------------------------------------- */

static void test_method_names(void) {
    const nnq_range_method all[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE, NNQ_RANGE_CE, NNQ_RANGE_BN,
                                    NNQ_RANGE_PERCENTILE};
    for (int i = 0; i < 5; i++) {
        nnq_range_method m = NNQ_RANGE_MINMAX;
        CHECK(nnq_range_method_parse(nnq_range_method_name(all[i]), &m));
        CHECK(m == all[i]);
    }
    nnq_range_method m;
    CHECK(!nnq_range_method_parse("max", &m));
    CHECK(!nnq_range_method_parse("", &m));
    CHECK(strcmp(nnq_range_method_name(NNQ_RANGE_PERCENTILE), "percentile") == 0);
}

/* ---- histograms ---------------------------------------------------------- */

/* Batches whose magnitude grows by 4x per batch, both signs, with NaN and
 * infinities mixed in: the range grows over ~20 doublings, and the counts
 * still equal a direct binning of everything with the final range. */
static void test_hist_growth_exact(void) {
    enum { BATCHES = 12, PER = 5000 };
    static float all[BATCHES * PER];
    nnq_histogram h;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    int64_t n_bad = 0;
    double first_width = 0, mn = INFINITY, mx = -INFINITY;
    for (int b = 0; b < BATCHES; b++) {
        float *x = all + b * PER;
        double mag = pow(4.0, b);
        for (int i = 0; i < PER; i++) {
            /* mostly positive; negatives grow more slowly */
            double v = urand() < 0.8 ? urand() * mag : -urand() * sqrt(mag);
            x[i] = (float)v;
            if (i % 997 == 3) x[i] = NAN;
            if (i % 1499 == 7) x[i] = (i & 1) ? INFINITY : -INFINITY;
            if (isfinite(x[i])) {
                mn = fmin(mn, x[i]);
                mx = fmax(mx, x[i]);
            } else {
                n_bad++;
            }
        }
        CHECK_OK(nnq_histogram_add(&h, x, PER));
        if (b == 0) {
            first_width = h.hi - h.lo;
            CHECK(h.lo <= 0 && h.hi > 0);
        }
    }
    CHECK(h.nan_count == n_bad);
    CHECK(h.total == (double)(BATCHES * PER - n_bad));
    CHECK(count_sum(&h) == h.total);
    CHECK(h.min == mn);
    CHECK(h.max == mx);
    CHECK(h.lo <= h.min && h.hi >= h.max && h.lo <= 0 && h.hi >= 0);
    double doublings = log2((h.hi - h.lo) / first_width);
    CHECK(doublings > 18);                              /* many happened */
    CHECK(fabs(doublings - round(doublings)) < 1e-9); /* and nothing else */
    CHECK((h.hi - h.lo) < 4 * (mx - mn));         /* but not too many */
    CHECK(recount_mismatches(&h, all, BATCHES * PER) == 0);
    nnq_histogram_free(&h);
}

static void test_hist_one_sided(void) {
    nnq_histogram h;
    float x[1000];
    /* positive only: 0 stays the lower edge through growth */
    CHECK_OK(nnq_histogram_init(&h, 256));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 1000; i++) x[i] = (float)(1.0 + urand() * pow(10.0, round));
        CHECK_OK(nnq_histogram_add(&h, x, 1000));
        CHECK(h.lo == 0.0);
    }
    CHECK(h.min >= 1.0 && h.max > 500 && h.total == 4000 && count_sum(&h) == 4000);
    nnq_histogram_free(&h);
    /* negative only: 0 stays the upper edge */
    CHECK_OK(nnq_histogram_init(&h, 256));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 1000; i++) x[i] = (float)(-0.5 - urand() * pow(7.0, round));
        CHECK_OK(nnq_histogram_add(&h, x, 1000));
        CHECK(h.hi == 0.0);
    }
    CHECK(h.max <= -0.5 && h.min < -100 && h.total == 4000 && count_sum(&h) == 4000);
    nnq_histogram_free(&h);
    /* all zeros, then real data */
    CHECK_OK(nnq_histogram_init(&h, 64));
    for (int i = 0; i < 100; i++) x[i] = 0.0f;
    CHECK_OK(nnq_histogram_add(&h, x, 100));
    CHECK(h.min == 0 && h.max == 0 && h.total == 100 && h.hi > h.lo);
    for (int i = 0; i < 100; i++) x[i] = (float)(urand() * 3 - 1);
    CHECK_OK(nnq_histogram_add(&h, x, 100));
    CHECK(h.total == 200 && count_sum(&h) == 200 && h.lo <= h.min && h.hi >= h.max);
    nnq_histogram_free(&h);
    /* only NaN: nothing counted, no range yet; then a value */
    CHECK_OK(nnq_histogram_init(&h, 64));
    x[0] = NAN;
    x[1] = -INFINITY;
    CHECK_OK(nnq_histogram_add(&h, x, 2));
    CHECK(h.total == 0 && h.nan_count == 2);
    nnq_qconfig c8 = cfg(8, false, false);
    float lo = 1, hi = 1;
    CHECK_OK(nnq_range_from_histogram(&h, &c8, NNQ_RANGE_MSE, 0, &lo, &hi));
    CHECK(lo == 0 && hi == 0); /* empty → [0, 0] */
    x[0] = -2.5f;
    CHECK_OK(nnq_histogram_add(&h, x, 1));
    CHECK(h.total == 1 && h.min == -2.5 && h.max == -2.5 && count_sum(&h) == 1);
    nnq_histogram_free(&h);
    CHECK_STATUS(nnq_histogram_init(&h, 7), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_histogram_init(&h, 0), NNQ_ERR_INVALID);
}

static void test_hist_merge(void) {
    enum { N = 20000 };
    static float xa[N], xb[N], both[2 * N];
    for (int i = 0; i < N; i++) {
        xa[i] = (float)nrand();
        xb[i] = (float)(5 + 10 * nrand());
        both[i] = xa[i];
        both[N + i] = xb[i];
    }
    xb[17] = NAN;
    both[N + 17] = NAN;
    nnq_histogram a, b, direct, empty;
    CHECK_OK(nnq_histogram_init(&a, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_init(&b, 512)); /* different bin count, too */
    CHECK_OK(nnq_histogram_init(&direct, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_init(&empty, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&a, xa, N));
    CHECK_OK(nnq_histogram_add(&b, xb, N));
    CHECK_OK(nnq_histogram_add(&direct, both, 2 * N));
    CHECK_OK(nnq_histogram_merge(&a, &b));
    CHECK(a.total == 2 * N - 1 && a.nan_count == 1);
    CHECK_NEAR(count_sum(&a), a.total, 1e-9 * a.total);
    CHECK(a.min == direct.min && a.max == direct.max);
    CHECK(a.lo <= a.min && a.hi >= a.max);
    /* the merged distribution matches the direct one: quantiles within a
     * couple of (merged) bins */
    nnq_qconfig c8 = cfg(8, false, false);
    double w = (a.hi - a.lo) / a.n_bins;
    float lo_m, hi_m, lo_d, hi_d;
    CHECK_OK(nnq_range_from_histogram(&a, &c8, NNQ_RANGE_PERCENTILE, 1.0, &lo_m, &hi_m));
    CHECK_OK(nnq_range_from_histogram(&direct, &c8, NNQ_RANGE_PERCENTILE, 1.0, &lo_d, &hi_d));
    CHECK_NEAR(lo_m, lo_d, 2 * w);
    CHECK_NEAR(hi_m, hi_d, 2 * w);
    /* merging into an empty histogram copies exactly */
    CHECK_OK(nnq_histogram_merge(&empty, &direct));
    CHECK(empty.total == direct.total && empty.lo == direct.lo && empty.hi == direct.hi);
    CHECK(memcmp(empty.count, direct.count, sizeof(double) * NNQ_HIST_BINS) == 0);
    /* same range: bins add exactly (a copy merged with itself doubles) */
    CHECK_OK(nnq_histogram_merge(&empty, &direct));
    int bad = 0;
    for (int i = 0; i < NNQ_HIST_BINS; i++) bad += empty.count[i] != 2 * direct.count[i];
    CHECK(bad == 0 && empty.total == 2 * direct.total);
    nnq_histogram_free(&a);
    nnq_histogram_free(&b);
    nnq_histogram_free(&direct);
    nnq_histogram_free(&empty);

    /* Coarse bins merged into fine ones are spread over the bins they
     * overlap: U(0, 10) in 64 bins gives ~flat fine bins, no spikes. */
    enum { NU = 64000 };
    static float xu[NU];
    for (int i = 0; i < NU; i++) xu[i] = (float)(urand() * 10);
    float neg[2] = {-1.0f, -0.5f};
    CHECK_OK(nnq_histogram_init(&a, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_init(&b, 64));
    CHECK_OK(nnq_histogram_add(&a, neg, 2));
    CHECK_OK(nnq_histogram_add(&b, xu, NU));
    CHECK_OK(nnq_histogram_merge(&a, &b));
    CHECK(a.total == NU + 2 && a.min == -1.0 && a.max == b.max);
    CHECK_NEAR(count_sum(&a), a.total, 1e-9 * a.total);
    double wa = (a.hi - a.lo) / a.n_bins, expect = NU * wa / 10;
    int spikes = 0, inside = 0;
    for (int i = 0; i < a.n_bins; i++) {
        double e0 = a.lo + i * wa, e1 = e0 + wa;
        if (e0 < 0.5 || e1 > 9.5) continue;
        inside++;
        spikes += fabs(a.count[i] - expect) > 0.15 * expect;
    }
    CHECK(inside > 100 && spikes == 0);
    nnq_histogram_free(&a);
    nnq_histogram_free(&b);
}

/* ---- min-max and percentile ---------------------------------------------- */

static void test_minmax(void) {
    enum { N = 3000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(nrand() * 2 + 0.3);
    x[1234] = 19.75f;
    x[5] = -17.125f;
    nnq_qconfig c = cfg(8, true, true);
    float lo, hi;
    CHECK_OK(nnq_range_from_data(x, N, 1, &c, NNQ_RANGE_MINMAX, &lo, &hi));
    CHECK(lo == -17.125f && hi == 19.75f);
    /* stride 3 from offset 1: sees x[1234] (1234 = 1 + 3*411) but not x[5] */
    float mn = INFINITY;
    for (int i = 1; i < N; i += 3) mn = fminf(mn, x[i]);
    CHECK_OK(nnq_range_from_data(x + 1, N / 3, 3, &c, NNQ_RANGE_MINMAX, &lo, &hi));
    CHECK(lo == mn && hi == 19.75f);
    nnq_histogram h;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, x, N / 2));
    CHECK_OK(nnq_histogram_add(&h, x + N / 2, N - N / 2));
    CHECK_OK(nnq_range_from_histogram(&h, &c, NNQ_RANGE_MINMAX, 0, &lo, &hi));
    CHECK(lo == -17.125f && hi == 19.75f);
    /* percentile 0 cuts nothing */
    CHECK_OK(nnq_range_from_histogram(&h, &c, NNQ_RANGE_PERCENTILE, 0, &lo, &hi));
    CHECK(lo == -17.125f && hi == 19.75f);
    CHECK_STATUS(nnq_range_from_histogram(&h, &c, NNQ_RANGE_PERCENTILE, 50, &lo, &hi),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_range_from_histogram(&h, &c, NNQ_RANGE_PERCENTILE, -1, &lo, &hi),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_range_from_histogram(&h, &c, NNQ_RANGE_CE, 0, &lo, &hi), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_range_from_histogram(&h, &c, NNQ_RANGE_BN, 0, &lo, &hi), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_range_from_data(x, N, 1, &c, NNQ_RANGE_PERCENTILE, &lo, &hi),
                 NNQ_ERR_INVALID);
    nnq_qconfig bad = cfg(1, true, true);
    CHECK_STATUS(nnq_range_from_data(x, N, 1, &bad, NNQ_RANGE_MSE, &lo, &hi), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_range_from_histogram(&h, &bad, NNQ_RANGE_MSE, 0, &lo, &hi),
                 NNQ_ERR_INVALID);
    nnq_histogram_free(&h);
    /* all-zero data → [0, 0] for every method */
    float zeros[16] = {0};
    CHECK_OK(nnq_range_from_data(zeros, 16, 1, &c, NNQ_RANGE_MSE, &lo, &hi));
    CHECK(lo == 0 && hi == 0);
}

static void test_percentile(void) {
    enum { N = 200000 };
    static float x[N], sorted[N];
    for (int i = 0; i < N; i++) x[i] = (float)(urand() * 4 - 1); /* U(-1, 3) */
    for (int i = 0; i < N; i += 1000) x[i] = (float)(40 + urand() * 10); /* far tail */
    memcpy(sorted, x, sizeof x);
    qsort(sorted, N, sizeof *sorted, cmp_float);
    nnq_histogram h;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    for (int b = 0; b < 10; b++) CHECK_OK(nnq_histogram_add(&h, x + b * (N / 10), N / 10));
    double w = (h.hi - h.lo) / h.n_bins;
    const double ps[] = {0.01, 1.0, 5.0};
    nnq_qconfig c = cfg(8, false, false);
    for (int i = 0; i < 3; i++) {
        float lo, hi;
        CHECK_OK(nnq_range_from_histogram(&h, &c, NNQ_RANGE_PERCENTILE, ps[i], &lo, &hi));
        /* the exact quantile lies between the order statistics around
         * k (they can be far apart in the sparse tail) */
        int k = (int)(ps[i] / 100 * N);
        CHECK(lo >= sorted[k - 1] - w && lo <= sorted[k + 1] + w);
        CHECK(hi >= sorted[N - 2 - k] - w && hi <= sorted[N - k] + w);
        if (ps[i] >= 1) { /* dense: the interpolation is much better than a bin */
            CHECK_NEAR(lo, sorted[k], 0.25 * w);
            CHECK_NEAR(hi, sorted[N - 1 - k], 0.25 * w);
        }
    }
    nnq_histogram_free(&h);
}

/* ---- MSE ----------------------------------------------------------------- */

/* Best measured MSE over a fine sweep of clipping ratios (the oracle). */
static double brute_mse(const nnq_qconfig *c, const float *x, int64_t n, float mn, float mx) {
    double lo0 = fmin(mn, 0), hi0 = fmax(mx, 0), best = INFINITY;
    if (c->symmetric) {
        for (int i = 1; i <= 10000; i++) {
            double r = i / 10000.0;
            best = fmin(best, mse_of(c, x, n, (float)(lo0 * r), (float)(hi0 * r)));
        }
    } else {
        for (int i = 1; i <= 160; i++)
            for (int j = 1; j <= 160; j++)
                best = fmin(best, mse_of(c, x, n, (float)(lo0 * i / 160), (float)(hi0 * j / 160)));
    }
    return best;
}

static void test_mse_data(void) {
    enum { N = 4096 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)nrand();
    x[100] = 12.0f; /* one outlier */
    const nnq_qconfig cs[] = {cfg(4, true, true), cfg(4, false, false), cfg(4, false, true),
                              cfg(3, true, true), cfg_full(4), cfg_full(3)};
    for (int k = 0; k < (int)(sizeof cs / sizeof cs[0]); k++) {
        const nnq_qconfig *c = &cs[k];
        float lo, hi, mlo, mhi;
        CHECK_OK(nnq_range_from_data(x, N, 1, c, NNQ_RANGE_MINMAX, &mlo, &mhi));
        CHECK_OK(nnq_range_from_data(x, N, 1, c, NNQ_RANGE_MSE, &lo, &hi));
        double e = mse_of(c, x, N, lo, hi), e_mm = mse_of(c, x, N, mlo, mhi);
        double e_best = brute_mse(c, x, N, mlo, mhi);
        fprintf(stderr, "  mse data  %d-bit sym %d signed %d %s: minmax %.5f  mse %.5f  brute %.5f  [%g, %g]\n",
                c->bits, c->symmetric, c->is_signed, nnq_sym_range_name(c->sym_range), e_mm, e,
                e_best, lo, hi);
        CHECK(e < 0.5 * e_mm);
        CHECK(e <= 1.03 * e_best);
        CHECK(lo >= mlo && hi <= mhi && hi < 6); /* clipped: within [min, max] */
    }
}

/* Full-range MSE search per channel (channels strided, as a weight whose
 * channel axis is not outermost): each channel's search runs over full-range
 * quantizers, up to the scale that holds [min, max] unclipped
 * (max(-min / 8, max / 7) at 4 bits, which min-max's a / 7.5 does not when
 * the maximum is positive), finds a range better than min-max, and is at
 * least as good as the restricted and tight searches on the same channel.
 * A channel too small for clipping to pay (a 3x3 depthwise kernel with a
 * positive outlier) must come out unclipped. */
static void test_mse_full_range_per_channel(void) {
    enum { CH = 6, PER = 2000 };
    static float w[CH * PER];
    for (int i = 0; i < CH * PER; i++) w[i] = (float)(nrand() * (0.02 + 0.01 * (i % CH)));
    w[3 * CH + 2] = 0.4f; /* outliers in two channels, one negative */
    w[7 * CH + 4] = -0.5f;
    const nnq_qconfig full = cfg_full(4), restr = cfg(4, true, true);
    nnq_qconfig tight = restr;
    tight.sym_range = NNQ_SYM_TIGHT;
    nnq_qconfig pc = full;
    pc.per_channel = true;
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &pc, 0, CH));
    for (int ch = 0; ch < CH; ch++) {
        const float *x = w + ch;
        float mlo, mhi, lo, hi, rlo, rhi, tlo, thi;
        CHECK_OK(nnq_range_from_data(x, PER, CH, &full, NNQ_RANGE_MINMAX, &mlo, &mhi));
        CHECK_OK(nnq_range_from_data(x, PER, CH, &full, NNQ_RANGE_MSE, &lo, &hi));
        CHECK_OK(nnq_range_from_data(x, PER, CH, &restr, NNQ_RANGE_MSE, &rlo, &rhi));
        CHECK_OK(nnq_range_from_data(x, PER, CH, &tight, NNQ_RANGE_MSE, &tlo, &thi));
        nnq_quantizer_set_range(&q, ch, lo, hi);
        CHECK(q.scale[ch] <= fmax(-mlo / 8.0, mhi / 7.0) * (1 + 1e-6));
        CHECK(q.zero_point[ch] == 0);
        const double e = nnq_qerror_mse(&full, x, PER, CH, lo, hi);
        const double e_mm = nnq_qerror_mse(&full, x, PER, CH, mlo, mhi);
        const double e_r = nnq_qerror_mse(&restr, x, PER, CH, rlo, rhi);
        const double e_t = nnq_qerror_mse(&tight, x, PER, CH, tlo, thi);
        fprintf(stderr,
                "  mse full per-channel %d: minmax %.3g  full %.3g  restricted %.3g  tight %.3g\n",
                ch, e_mm, e, e_r, e_t);
        CHECK(e < e_mm);
        CHECK(e <= 1.01 * e_r && e <= 1.01 * e_t);
        /* the quantizer built from the range scores what the search scored */
        double acc = 0;
        for (int i = 0; i < PER; i++) {
            const float v = x[(int64_t)i * CH];
            const double d = (double)v - (double)nnq_fake_quant_f(v, q.scale[ch], 0.0f,
                                                                  (float)q.qmin, (float)q.qmax);
            acc += d * d;
        }
        CHECK_NEAR(acc / PER, e, 1e-12 + 1e-9 * e);
    }
    nnq_quantizer_free(&q);
    /* 3x3 kernel, largest magnitude positive: full min-max clips it by s/2,
     * the search finds the unclipped s = max / 7 (error: rounding only). */
    const float k9[9] = {0.7f, -0.31f, 0.22f, 0.05f, -0.44f, 0.13f, 0.36f, -0.08f, 0.27f};
    float lo, hi, mlo, mhi;
    CHECK_OK(nnq_range_from_data(k9, 9, 1, &full, NNQ_RANGE_MINMAX, &mlo, &mhi));
    CHECK_OK(nnq_range_from_data(k9, 9, 1, &full, NNQ_RANGE_MSE, &lo, &hi));
    const double e9 = nnq_qerror_mse(&full, k9, 9, 1, lo, hi);
    const double e9_mm = nnq_qerror_mse(&full, k9, 9, 1, mlo, mhi);
    double e9_whole = 0;
    for (int i = 0; i < 9; i++) {
        const double d = (double)k9[i] - nnq_fake_quant_f(k9[i], 0.1f, 0.0f, -8.0f, 7.0f);
        e9_whole += d * d / 9;
    }
    fprintf(stderr, "  full 3x3: minmax [%g, %g] %.3g  mse [%g, %g] %.3g  s = max/7: %.3g\n", mlo,
            mhi, e9_mm, lo, hi, e9, e9_whole);
    CHECK(e9 <= e9_whole * (1 + 1e-6) && e9 < e9_mm);
}

/* The histogram's MSE range, measured on the raw values, is as good as the
 * search on the raw values themselves. */
static void test_mse_hist(void) {
    enum { N = 100000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(nrand() + 0.5);
    for (int i = 0; i < N; i += 20000) x[i] = (float)(15 + i / 10000); /* outliers */
    nnq_histogram h;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    for (int b = 0; b < 10; b++) CHECK_OK(nnq_histogram_add(&h, x + b * (N / 10), N / 10));
    const nnq_qconfig cs[] = {cfg(4, true, true), cfg(4, false, false), cfg(8, false, false),
                              cfg(6, true, true), cfg_full(4), cfg_full(8)};
    for (int k = 0; k < (int)(sizeof cs / sizeof cs[0]); k++) {
        const nnq_qconfig *c = &cs[k];
        float hlo, hhi, dlo, dhi, mlo, mhi;
        CHECK_OK(nnq_range_from_histogram(&h, c, NNQ_RANGE_MSE, 0, &hlo, &hhi));
        CHECK_OK(nnq_range_from_data(x, N, 1, c, NNQ_RANGE_MSE, &dlo, &dhi));
        CHECK_OK(nnq_range_from_histogram(&h, c, NNQ_RANGE_MINMAX, 0, &mlo, &mhi));
        double eh = mse_of(c, x, N, hlo, hhi), ed = mse_of(c, x, N, dlo, dhi);
        double em = mse_of(c, x, N, mlo, mhi);
        fprintf(stderr,
                "  mse hist  %d-bit sym %d %s: minmax %.3g  hist [%g, %g] %.4g  data [%g, %g] %.4g\n",
                c->bits, c->symmetric, nnq_sym_range_name(c->sym_range), em, hlo, hhi, eh, dlo,
                dhi, ed);
        CHECK(eh < em);
        if (c->bits < 8) CHECK(eh < 0.7 * em);
        CHECK(eh <= 1.03 * ed);
        CHECK(fabsf(hhi - dhi) <= 0.05f * dhi);
        CHECK(fabsf(hlo - dlo) <= 0.05f * fabsf(dlo) + 0.05f * dhi);
    }
    nnq_histogram_free(&h);
}

/* ---- cross-entropy on logits --------------------------------------------- */

/* Mean H(softmax(v), softmax(v_hat)) of range [lo, hi], and the number of
 * rows whose argmax survives quantization. */
static double ce_objective(const nnq_qconfig *c, const float *rows, int n, int k, float lo,
                           float hi, int *agree) {
    nnq_quantizer q;
    nnq_qconfig one = *c;
    CHECK_OK(nnq_quantizer_init(&q, &one, -1, 1));
    nnq_quantizer_set_range(&q, 0, lo, hi);
    float *vh = malloc((size_t)n * k * sizeof *vh);
    nnq_quantizer_apply(&q, rows, vh, n * k, 1);
    double ce = 0;
    *agree = 0;
    for (int r = 0; r < n; r++) {
        const float *v = rows + r * k, *w = vh + r * k;
        double mv = v[0], mw = w[0], sv = 0, sw = 0;
        int av = 0, aw = 0;
        for (int j = 1; j < k; j++) {
            if (v[j] > v[av]) av = j;
            if (w[j] > w[aw]) aw = j;
            mv = fmax(mv, v[j]);
            mw = fmax(mw, w[j]);
        }
        for (int j = 0; j < k; j++) {
            sv += exp(v[j] - mv);
            sw += exp(w[j] - mw);
        }
        for (int j = 0; j < k; j++)
            ce -= exp(v[j] - mv - log(sv)) * (w[j] - mw - log(sw));
        *agree += av == aw;
    }
    free(vh);
    nnq_quantizer_free(&q);
    return ce / n;
}

static void test_ce_logits(void) {
    enum { N = 600, K = 10 };
    static float rows[N * K];
    for (int r = 0; r < N; r++) {
        int dom = (int)(urand() * K);
        for (int j = 0; j < K; j++) rows[r * K + j] = (float)(1.5 * nrand());
        rows[r * K + dom] += (float)(4 + 2 * urand()); /* one class dominates */
    }
    rows[7 * K + 2] = 45.0f; /* rare extreme logits stretch min-max */
    rows[9 * K + 5] = -30.0f;
    const nnq_qconfig cs[] = {cfg(4, false, true), cfg(4, true, true), cfg(3, false, false),
                              cfg(8, false, true)};
    for (int i = 0; i < 4; i++) {
        const nnq_qconfig *c = &cs[i];
        float lo, hi, mlo, mhi;
        CHECK_OK(nnq_range_ce_logits(rows, N, K, c, &lo, &hi));
        CHECK_OK(nnq_range_from_data(rows, N * K, 1, c, NNQ_RANGE_MINMAX, &mlo, &mhi));
        int agree, agree_mm;
        double ce = ce_objective(c, rows, N, K, lo, hi, &agree);
        double ce_mm = ce_objective(c, rows, N, K, mlo, mhi, &agree_mm);
        fprintf(stderr, "  ce  %d-bit sym %d: minmax %.4f (%d/%d)  ce [%g, %g] %.4f (%d/%d)\n",
                c->bits, c->symmetric, ce_mm, agree_mm, N, lo, hi, ce, agree, N);
        CHECK(ce <= ce_mm + 1e-9);
        CHECK(agree >= agree_mm);
        CHECK(lo >= mlo && hi <= mhi && lo <= hi);
        if (c->bits <= 4) CHECK(ce < ce_mm); /* clipping really helps here */
    }
    /* One class: softmax is 1 whatever the quantization, every candidate
     * ties on CE and the smaller squared error must decide. */
    float lo, hi, dlo, dhi;
    nnq_qconfig c4 = cfg(4, false, true);
    CHECK_OK(nnq_range_ce_logits(rows, N * K, 1, &c4, &lo, &hi));
    CHECK_OK(nnq_range_from_data(rows, N * K, 1, &c4, NNQ_RANGE_MSE, &dlo, &dhi));
    CHECK(mse_of(&c4, rows, N * K, lo, hi) <= 1.01 * mse_of(&c4, rows, N * K, dlo, dhi));
    nnq_qconfig c = cfg(8, false, true);
    CHECK_STATUS(nnq_range_ce_logits(rows, 0, K, &c, &lo, &hi), NNQ_ERR_INVALID);
    /* A row holding a non-finite logit is left out (tests/test_numeric_guards.c
     * covers the other non-finite cases). */
    float wlo, whi;
    CHECK_OK(nnq_range_ce_logits(rows + K, N - 1, K, &c, &wlo, &whi));
    rows[3] = NAN;
    CHECK_OK(nnq_range_ce_logits(rows, N, K, &c, &lo, &hi));
    CHECK(lo == wlo && hi == whi);
}

/* ---- extreme bit-widths -------------------------------------------------- */

static void test_extreme_bits(void) {
    enum { N = 4096, K = 8 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(nrand() * 0.7 + 0.2);
    x[9] = 6.0f;
    nnq_histogram h;
    CHECK_OK(nnq_histogram_init(&h, NNQ_HIST_BINS));
    CHECK_OK(nnq_histogram_add(&h, x, N));
    const int bits[] = {2, 16};
    for (int b = 0; b < 2; b++) {
        for (int sym = 0; sym < 2; sym++) {
            nnq_qconfig c = cfg(bits[b], sym, sym);
            c.narrow = sym && bits[b] == 2; /* [-1, 1]: the tightest grid */
            float mlo, mhi, lo, hi;
            CHECK_OK(nnq_range_from_data(x, N, 1, &c, NNQ_RANGE_MINMAX, &mlo, &mhi));
            double e_mm = mse_of(&c, x, N, mlo, mhi);
            CHECK_OK(nnq_range_from_data(x, N, 1, &c, NNQ_RANGE_MSE, &lo, &hi));
            double e = mse_of(&c, x, N, lo, hi);
            CHECK(isfinite(lo) && isfinite(hi) && lo <= hi && e <= e_mm);
            CHECK_OK(nnq_range_from_histogram(&h, &c, NNQ_RANGE_MSE, 0, &lo, &hi));
            double eh = mse_of(&c, x, N, lo, hi);
            CHECK(isfinite(lo) && isfinite(hi) && lo <= hi && lo >= mlo && hi <= mhi);
            CHECK(eh <= 1.05 * e_mm);
            CHECK_OK(nnq_range_from_histogram(&h, &c, NNQ_RANGE_PERCENTILE, 0.01, &lo, &hi));
            CHECK(lo >= mlo && hi <= mhi && lo < hi);
            CHECK_OK(nnq_range_ce_logits(x, N / K, K, &c, &lo, &hi));
            CHECK(isfinite(lo) && isfinite(hi) && lo <= hi && lo >= fminf(mlo, 0) && hi <= mhi);
            if (bits[b] == 16) {
                /* nothing to gain from clipping at 16 bits beyond a sliver */
                CHECK(e > 0 && e < 1e-8 && eh < 1e-8);
            } else {
                CHECK(e < 0.8 * e_mm);
            }
        }
    }
    nnq_histogram_free(&h);
}

/* ---- speed (printed, not asserted) --------------------------------------- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void time_per_channel(void) {
    enum { CH = 256, PER = 1176 }; /* 301 056 weights, e.g. a 256x128x3x3 conv + change */
    float *w = malloc(sizeof(float) * CH * PER);
    for (int i = 0; i < CH * PER; i++) w[i] = (float)(nrand() * 0.05);
    const nnq_qconfig cs[] = {cfg(8, true, true), cfg(4, true, true), cfg(4, false, true)};
    for (int k = 0; k < 3; k++) {
        double t0 = now();
        float lo, hi;
        for (int ch = 0; ch < CH; ch++)
            CHECK_OK(nnq_range_from_data(w + ch * PER, PER, 1, &cs[k], NNQ_RANGE_MSE, &lo, &hi));
        double t1 = now();
        /* the same, channels strided (channel axis not outermost) */
        for (int ch = 0; ch < CH; ch++)
            CHECK_OK(nnq_range_from_data(w + ch, PER, CH, &cs[k], NNQ_RANGE_MSE, &lo, &hi));
        double t2 = now();
        fprintf(stderr, "  per-channel mse, %d weights, %d-bit %s: %.3f s (contiguous), %.3f s (strided)\n",
                CH * PER, cs[k].bits, cs[k].symmetric ? "symmetric" : "asymmetric", t1 - t0,
                t2 - t1);
    }
    free(w);
}

int main(void) {
    test_method_names();
    test_hist_growth_exact();
    test_hist_one_sided();
    test_hist_merge();
    test_minmax();
    test_percentile();
    test_mse_data();
    test_mse_hist();
    test_mse_full_range_per_channel();
    test_ce_logits();
    test_extreme_bits();
    time_per_channel();
    return check_finish("test_range");
}
