/* Range setting (see range.h): min-max, percentile, and searches over
 * clipped ranges scored by squared error (MSE), by the expected squared
 * error of a layer's output (output-aware weight MSE) or by the
 * cross-entropy of the logits' softmax (CE).
 *
 * Every search scores candidates AFTER nudging: each candidate [lo, hi]
 * goes through nnq_quantizer_set_range (or nnq_qerror_mse, which does the
 * same), so the score is that of the quantizer the caller will build.
 * Candidates shrink the unclipped range [lo0, hi0] = [min(min, 0),
 * max(max, 0)] by ratios in (0, 1], always including ratio 1 (min-max), so
 * a search never scores worse than min-max on its own objective:
 *
 *   symmetric (one ratio r for both ends, i.e. a scaled max|x|), and
 *   asymmetric with one end at 0:
 *       100 ratios i/100, then L levels of 20 candidates each at a tenth
 *       of the previous step around the best (±1 old step);
 *   asymmetric, both ends non-zero (lo0 * a, hi0 * b):
 *       an 8 x 8 grid of ratios i/8, j/8, then 3 + L levels of a 5 x 5 grid
 *       at half the previous step around the best (±1 old step), down to
 *       steps of 1/128 (L = 1) or 1/512 (L = 3): 160 or 208 candidates,
 *       where AIMET scores 17 scales x 21 offsets.
 *
 * Refinement levels L: raw data 1 (each candidate costs a pass over the
 * values), histograms and logits 3 (candidates are cheap).
 *
 * A full-range symmetric quantizer (quantizer.h) clips its positive end at
 * ratio 1 (qmax s = a - s/2), so its ratios run up to the one that holds
 * [lo0, hi0] whole (up to (2^b - 1)/(2^b - 2), 15/14 at 4 bits) and ratio 1
 * is tried besides: the search covers both the finer and the unclipped
 * scale. Restricted and tight quantizers clip nothing at ratio 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "core/tensor.h"
#include "quant/range.h"

static const char *const method_names[] = {
    [NNQ_RANGE_MINMAX] = "minmax", [NNQ_RANGE_MSE] = "mse",
    [NNQ_RANGE_CE] = "ce",         [NNQ_RANGE_BN] = "bn",
    [NNQ_RANGE_PERCENTILE] = "percentile",
};
#define N_METHODS ((int)(sizeof method_names / sizeof method_names[0]))

const char *nnq_range_method_name(nnq_range_method m) {
    return (int)m >= 0 && (int)m < N_METHODS ? method_names[m] : "unknown";
}

bool nnq_range_method_parse(const char *s, nnq_range_method *out) {
    for (int i = 0; s && i < N_METHODS; i++) {
        if (strcmp(s, method_names[i]) == 0) {
            *out = (nnq_range_method)i;
            return true;
        }
    }
    return false;
}

/* ---- the search over clipping ratios ----------------------------------- */

/* A candidate's score: err first, tie breaks (near-)equal errs. */
typedef struct range_score {
    double err, tie;
} range_score;

typedef range_score (*range_eval_fn)(void *ctx, float lo, float hi);

typedef struct range_search {
    range_eval_fn eval;
    void *ctx;
    double lo0, hi0;   /* unclipped range, contains 0 */
    bool joint;        /* symmetric: one ratio shrinks both ends */
    double r_max;      /* largest ratio (>= 1; 1 unless full-range symmetric) */
    int refine_levels;
    bool seed;         /* score (seed_a, seed_b) first: another search's choice */
    double seed_a, seed_b;
    bool have;         /* best_* valid */
    double best_a, best_b;
    float best_lo, best_hi;
    range_score best;
} range_search;

static bool score_better(range_score x, range_score y) {
    double tol = isfinite(y.err) ? 1e-12 * fabs(y.err) : 0.0;
    if (x.err < y.err - tol) return true;
    return x.err <= y.err + tol && x.tie < y.tie;
}

/* Score the range [lo0 * a, hi0 * b] (ratios outside (0, r_max] are skipped). */
static void search_try(range_search *s, double a, double b) {
    const double top = s->r_max * (1 + 1e-9);
    if (!(a > 1e-9 && b > 1e-9) || a > top || b > top) return;
    a = fmin(a, s->r_max);
    b = fmin(b, s->r_max);
    float lo = (float)(s->lo0 * a), hi = (float)(s->hi0 * b);
    range_score r = s->eval(s->ctx, lo, hi);
    if (isnan(r.err)) r.err = INFINITY;
    if (isnan(r.tie)) r.tie = INFINITY;
    if (s->have && !score_better(r, s->best)) return;
    s->have = true;
    s->best = r;
    s->best_a = a;
    s->best_b = b;
    s->best_lo = lo;
    s->best_hi = hi;
}

/* One ratio: r, or only a (hi0 = 0), or only b (lo0 = 0). */
static void search_try_1d(range_search *s, double r) {
    bool only_a = !s->joint && s->hi0 == 0, only_b = !s->joint && s->lo0 == 0;
    search_try(s, only_b ? 1.0 : r, only_a ? 1.0 : r);
}

static void search_run(range_search *s) {
    bool two_d = !s->joint && s->lo0 != 0 && s->hi0 != 0;
    if (s->seed) search_try(s, s->seed_a, s->seed_b);
    if (!two_d) {
        enum { N = 100 };
        if (s->r_max > 1) search_try_1d(s, 1.0); /* min-max itself */
        for (int i = N; i >= 1; i--) search_try_1d(s, s->r_max * i / N);
        double step = s->r_max / N;
        for (int level = 0; level < s->refine_levels; level++) {
            double c = s->hi0 == 0 && !s->joint ? s->best_a : s->best_b;
            step /= 10;
            for (int k = 10; k >= -10; k--)
                if (k != 0) search_try_1d(s, c + k * step);
        }
        return;
    }
    enum { G = 8 };
    for (int i = G; i >= 1; i--)
        for (int j = G; j >= 1; j--) search_try(s, (double)i / G, (double)j / G);
    double step = 1.0 / G;
    for (int level = 0; level < s->refine_levels + 3; level++) {
        double ca = s->best_a, cb = s->best_b;
        step /= 2;
        for (int di = 2; di >= -2; di--)
            for (int dj = 2; dj >= -2; dj--)
                if (di || dj) search_try(s, ca + di * step, cb + dj * step);
    }
}

/* Run the search; [0, 0] when the range is empty (all zeros). */
static void search_range(range_search *s, double mn, double mx, const nnq_qconfig *c,
                         float *lo, float *hi) {
    s->lo0 = fmin(mn, 0.0);
    s->hi0 = fmax(mx, 0.0);
    s->joint = c->symmetric;
    if (s->lo0 == 0 && s->hi0 == 0) {
        *lo = *hi = 0.0f;
        return;
    }
    s->r_max = 1.0;
    int32_t qmin, qmax;
    nnq_qgrid(c->bits, c->is_signed, c->narrow, &qmin, &qmax);
    if (c->symmetric && c->sym_range == NNQ_SYM_FULL && qmin < 0) {
        /* ratio r gives s = r a / d; the unclipped scale holds both ends */
        const double a = fmax(-s->lo0, s->hi0), d = 0.5 * ((double)qmax - (double)qmin);
        const double s_whole = fmax(-s->lo0 / -(double)qmin, s->hi0 / (double)qmax);
        s->r_max = fmax(1.0, s_whole * d / a);
    }
    search_run(s);
    *lo = s->best_lo;
    *hi = s->best_hi;
}

/* One per-tensor quantizer with c's grid, for scoring candidates. */
static nnq_status scratch_quantizer(nnq_quantizer *q, const nnq_qconfig *c) {
    nnq_qconfig one = *c;
    one.per_channel = false;
    return nnq_quantizer_init(q, &one, -1, 1);
}

/* ---- histograms ---------------------------------------------------------- */

/* Bin i's interval clipped to the exact extremes [min, max], where its
 * mass must lie. */
static void bin_interval(const nnq_histogram *h, int i, double *u, double *v) {
    double w = (h->hi - h->lo) / h->n_bins;
    double a = fmax(h->lo + i * w, h->min), b = fmin(h->lo + (i + 1) * w, h->max);
    if (b < a) a = b = fmin(fmax(a, h->min), h->max);
    *u = a;
    *v = b;
}

/* The non-empty bins as (interval, mass) for the MSE search. */
typedef struct hist_mass {
    int n;
    double *u, *v, *m;
    double total;
    nnq_quantizer q;
} hist_mass;

/* ∫_0^f dist(t, nearest integer)^2 dt over one period, f in [0, 1]. */
static double period_integral(double f) {
    return f <= 0.5 ? f * f * f / 3.0 : 1.0 / 12.0 - (1 - f) * (1 - f) * (1 - f) / 3.0;
}

/* Mean of (x - c)^2 for x uniform between two points at distances p and q
 * from c on the same side: (p^2 + pq + q^2) / 3, free of cancellation. */
static double clip_mean(double p, double q) { return (p * p + p * q + q * q) / 3.0; }

/* Expected squared error of a value uniform on [u, v] (a point if u = v)
 * quantized to the grid a, a + s, ..., b: clipping error outside [a, b],
 * distance to the nearest grid point inside. */
static double uniform_sq_err(double u, double v, double s, double a, double b) {
    double len = v - u;
    if (!(len > 1e-9 * s)) {
        double x = 0.5 * (u + v);
        double xc = fmin(fmax(x, a), b);
        double d = x - (a + s * nearbyint((xc - a) / s));
        return d * d;
    }
    double total = 0;
    if (u < a) {
        double e = fmin(v, a);
        total += (e - u) * clip_mean(a - u, a - e);
    }
    if (v > b) {
        double e = fmax(u, b);
        total += (v - e) * clip_mean(v - b, e - b);
    }
    double ui = fmax(u, a), vi = fmin(v, b);
    if (vi > ui) {
        double tu = (ui - a) / s, tv = (vi - a) / s;
        double fu = floor(tu), fv = floor(tv);
        total += s * s * s *
                 ((fv - fu) / 12.0 + period_integral(tv - fv) - period_integral(tu - fu));
    }
    return total / len;
}

static range_score hist_eval(void *ctx, float lo, float hi) {
    hist_mass *hm = ctx;
    nnq_quantizer_set_range(&hm->q, 0, lo, hi);
    double s = hm->q.scale[0], z = hm->q.zero_point[0];
    double a = s * (hm->q.qmin - z), b = s * (hm->q.qmax - z);
    double err = 0;
    for (int i = 0; i < hm->n; i++) err += hm->m[i] * uniform_sq_err(hm->u[i], hm->v[i], s, a, b);
    return (range_score){err / hm->total, 0.0};
}

static nnq_status hist_mse(const nnq_histogram *h, const nnq_qconfig *c, float *lo,
                           float *hi) {
    nnq_status st = NNQ_OK;
    hist_mass hm = {0};
    size_t nb = (size_t)h->n_bins;
    hm.u = malloc(nb * sizeof *hm.u);
    hm.v = malloc(nb * sizeof *hm.v);
    hm.m = malloc(nb * sizeof *hm.m);
    if (!hm.u || !hm.v || !hm.m) {
        st = nnq_fail(NNQ_ERR_NOMEM, "mse range: out of memory");
        goto fail;
    }
    if ((st = scratch_quantizer(&hm.q, c)) != NNQ_OK) goto fail;
    for (int i = 0; i < h->n_bins; i++) {
        if (!(h->count[i] > 0)) continue;
        bin_interval(h, i, &hm.u[hm.n], &hm.v[hm.n]);
        hm.m[hm.n++] = h->count[i];
        hm.total += h->count[i];
    }
    range_search s = {.eval = hist_eval, .ctx = &hm, .refine_levels = 3};
    search_range(&s, h->min, h->max, c, lo, hi);
fail:
    nnq_quantizer_free(&hm.q);
    free(hm.u);
    free(hm.v);
    free(hm.m);
    return st;
}

/* Value below which `frac` of the mass lies (from_top: above which),
 * interpolated linearly inside a bin. */
static double hist_quantile(const nnq_histogram *h, double frac, bool from_top) {
    double target = frac * h->total, cum = 0;
    for (int k = 0; k < h->n_bins; k++) {
        int i = from_top ? h->n_bins - 1 - k : k;
        double m = h->count[i];
        if (!(m > 0)) continue;
        if (cum + m >= target) {
            double u, v, t = (target - cum) / m;
            bin_interval(h, i, &u, &v);
            return from_top ? v - t * (v - u) : u + t * (v - u);
        }
        cum += m;
    }
    return from_top ? h->min : h->max;
}

nnq_status nnq_range_from_histogram(const nnq_histogram *h, const nnq_qconfig *c,
                                    nnq_range_method m, double percentile, float *lo,
                                    float *hi) {
    if (!h || !h->count || !c || !lo || !hi)
        return nnq_fail(NNQ_ERR_INVALID, "histogram range: missing argument");
    NNQ_TRY(nnq_qconfig_check(c));
    if (m != NNQ_RANGE_MINMAX && m != NNQ_RANGE_MSE && m != NNQ_RANGE_PERCENTILE)
        return nnq_fail(NNQ_ERR_INVALID, "histogram range: method '%s' needs other data",
                        nnq_range_method_name(m));
    if (m == NNQ_RANGE_PERCENTILE && !(percentile >= 0 && percentile < 50))
        return nnq_fail(NNQ_ERR_INVALID,
                        "histogram range: percentile must be in [0, 50), got %g", percentile);
    *lo = *hi = 0.0f;
    if (h->total == 0) return NNQ_OK;
    if (m == NNQ_RANGE_MSE) return hist_mse(h, c, lo, hi);
    if (m == NNQ_RANGE_PERCENTILE && percentile > 0) {
        double a = hist_quantile(h, percentile / 100, false);
        double b = hist_quantile(h, percentile / 100, true);
        a = fmin(fmax(a, h->min), h->max);
        b = fmin(fmax(b, a), h->max);
        *lo = (float)a;
        *hi = (float)b;
        return NNQ_OK;
    }
    /* min-max (also a percentile that cuts nothing) */
    *lo = (float)h->min;
    *hi = (float)h->max;
    return NNQ_OK;
}

/* ---- raw values (weights) ------------------------------------------------ */

typedef struct data_ctx {
    const float *x;
    int64_t n, stride;
    nnq_qconfig cfg;
} data_ctx;

static range_score data_eval(void *ctx, float lo, float hi) {
    data_ctx *d = ctx;
    return (range_score){nnq_qerror_mse(&d->cfg, d->x, d->n, d->stride, lo, hi), 0.0};
}

nnq_status nnq_range_from_data(const float *x, int64_t n, int64_t stride,
                               const nnq_qconfig *c, nnq_range_method m, float *lo,
                               float *hi) {
    if (!c || !lo || !hi || n < 0 || stride < 1 || (n > 0 && !x))
        return nnq_fail(NNQ_ERR_INVALID, "data range: bad arguments (n %lld, stride %lld)",
                        (long long)n, (long long)stride);
    NNQ_TRY(nnq_qconfig_check(c));
    if (m != NNQ_RANGE_MINMAX && m != NNQ_RANGE_MSE)
        return nnq_fail(NNQ_ERR_INVALID, "data range: method '%s' is not for raw values",
                        nnq_range_method_name(m));
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i * stride];
        if (!isfinite(v)) continue; /* as the histograms do */
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    *lo = *hi = 0.0f;
    if (mn > mx) return NNQ_OK; /* no finite value */
    if (m == NNQ_RANGE_MINMAX) {
        *lo = mn;
        *hi = mx;
        return NNQ_OK;
    }
    data_ctx d = {x, n, stride, *c};
    d.cfg.per_channel = false;
    range_search s = {.eval = data_eval, .ctx = &d, .refine_levels = 1};
    search_range(&s, mn, mx, c, lo, hi);
    return NNQ_OK;
}

/* ---- output-aware weight MSE ------------------------------------------- */

/* d^T C d over the weights [a0, a1) of one slot, C the covariance of their
 * inputs (symmetric: the diagonal plus twice the upper triangle). The
 * common layout, a slot reading consecutive input channels, takes rows of
 * cov directly, with four partial sums for speed (this is the inner loop
 * of the search on wide 1x1 convs and Gemms). */
static double slot_quad(const nnq_wout_stats *st, int64_t a0, int64_t a1, const double *d) {
    const int64_t len = a1 - a0, base = len > 0 ? st->in[a0] : 0;
    bool contiguous = true;
    for (int64_t a = a0; a < a1 && contiguous; a++) contiguous = st->in[a] == base + (a - a0);
    double diag = 0, off = 0;
    if (contiguous) {
        const double *dd = d + a0;
        for (int64_t a = 0; a < len; a++) {
            const double *row = st->cov + (base + a) * st->n_in + base;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            int64_t b = a + 1;
            for (; b + 4 <= len; b += 4) {
                s0 += row[b] * dd[b];
                s1 += row[b + 1] * dd[b + 1];
                s2 += row[b + 2] * dd[b + 2];
                s3 += row[b + 3] * dd[b + 3];
            }
            for (; b < len; b++) s0 += row[b] * dd[b];
            diag += dd[a] * dd[a] * row[a];
            off += dd[a] * ((s0 + s1) + (s2 + s3));
        }
    } else {
        for (int64_t a = a0; a < a1; a++) {
            const double *row = st->cov + (int64_t)st->in[a] * st->n_in;
            double dot = 0;
            for (int64_t b = a + 1; b < a1; b++) dot += row[st->in[b]] * d[b];
            diag += d[a] * d[a] * row[st->in[a]];
            off += d[a] * dot;
        }
    }
    return diag + 2 * off;
}

/* The criterion of range.h for the quantizer (s, z) on grid [qmin, qmax];
 * d[n] and acc[n_out] are scratch (errors, per-output mean shifts). */
static double output_err(const float *w, int64_t n, const nnq_wout_stats *st, float s, float z,
                         float qmin, float qmax, double *d, double *acc) {
    double fluct = 0, shift = 0;
    const int32_t n_out = st->out ? st->n_out : 1;
    memset(acc, 0, sizeof *acc * (size_t)n_out);
    for (int64_t i = 0; i < n; i++) {
        d[i] = isfinite(w[i]) ? (double)w[i] - (double)nnq_fake_quant_f(w[i], s, z, qmin, qmax)
                              : 0.0;
        acc[st->out ? st->out[i] : 0] += d[i] * st->mean[i];
    }
    if (st->cov) {
        for (int64_t k = 0; k < st->n_slot; k++) fluct += slot_quad(st, st->slot[k], st->slot[k + 1], d);
    } else {
        for (int64_t i = 0; i < n; i++) fluct += d[i] * d[i] * st->var[i];
    }
    for (int32_t o = 0; o < n_out; o++) shift += acc[o] * acc[o];
    return (fmax(fluct, 0.0) + shift) / (double)st->n_out;
}

typedef struct out_ctx {
    const float *w;
    int64_t n;
    const nnq_wout_stats *st;
    nnq_qconfig cfg;
    nnq_quantizer q;
    double *d, *acc;
} out_ctx;

static range_score out_eval(void *ctx, float lo, float hi) {
    out_ctx *o = ctx;
    nnq_quantizer_set_range(&o->q, 0, lo, hi);
    const double err = output_err(o->w, o->n, o->st, o->q.scale[0], (float)o->q.zero_point[0],
                                  (float)o->q.qmin, (float)o->q.qmax, o->d, o->acc);
    return (range_score){err, nnq_qerror_mse(&o->cfg, o->w, o->n, 1, lo, hi)};
}

static nnq_status check_wout(const float *w, int64_t n, const nnq_wout_stats *st) {
    if (n < 0 || (n > 0 && !w) || !st || st->n_out < 1 || (n > 0 && !st->mean) ||
        (n > 0 && !st->cov && !st->var) ||
        (st->cov && (st->n_in < 1 || !st->in || !st->slot || st->n_slot < 0)))
        return nnq_fail(NNQ_ERR_INVALID, "output-aware range: bad arguments (n %lld)",
                        (long long)n);
    for (int64_t i = 0; st->out && i < n; i++)
        if (st->out[i] < 0 || st->out[i] >= st->n_out)
            return nnq_fail(NNQ_ERR_INVALID, "output-aware range: weight %lld feeds output %d "
                            "of %d", (long long)i, st->out[i], st->n_out);
    if (!st->cov) return NNQ_OK;
    if (st->slot[0] != 0 || st->slot[st->n_slot] != n)
        return nnq_fail(NNQ_ERR_INVALID, "output-aware range: slots must cover the %lld weights",
                        (long long)n);
    for (int64_t k = 0; k < st->n_slot; k++)
        if (st->slot[k + 1] < st->slot[k])
            return nnq_fail(NNQ_ERR_INVALID, "output-aware range: slot %lld ends before it "
                            "starts", (long long)k);
    for (int64_t i = 0; i < n; i++)
        if (st->in[i] < 0 || st->in[i] >= st->n_in)
            return nnq_fail(NNQ_ERR_INVALID, "output-aware range: weight %lld reads input %d of "
                            "%d", (long long)i, st->in[i], st->n_in);
    return NNQ_OK;
}

double nnq_qerror_output(const nnq_qconfig *c, const float *w, int64_t n,
                         const nnq_wout_stats *st, float lo, float hi) {
    if (n <= 0 || check_wout(w, n, st) != NNQ_OK) return 0.0;
    nnq_quantizer q;
    double *acc = malloc(sizeof *acc * ((size_t)st->n_out + (size_t)n));
    if (!acc || scratch_quantizer(&q, c) != NNQ_OK) {
        free(acc);
        return INFINITY;
    }
    nnq_quantizer_set_range(&q, 0, lo, hi);
    const double err = output_err(w, n, st, q.scale[0], (float)q.zero_point[0], (float)q.qmin,
                                  (float)q.qmax, acc + st->n_out, acc);
    nnq_quantizer_free(&q);
    free(acc);
    return err;
}

nnq_status nnq_range_output_mse(const float *w, int64_t n, const nnq_wout_stats *st,
                                const nnq_qconfig *c, float *lo, float *hi) {
    if (!c || !lo || !hi) return nnq_fail(NNQ_ERR_INVALID, "output-aware range: missing argument");
    NNQ_TRY(check_wout(w, n, st));
    NNQ_TRY(nnq_qconfig_check(c));
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) continue;
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    *lo = *hi = 0.0f;
    if (mn > mx) return NNQ_OK;
    /* Plain MSE first: its choice is a candidate of the output search. */
    data_ctx d = {w, n, 1, *c};
    d.cfg.per_channel = false;
    range_search plain = {.eval = data_eval, .ctx = &d, .refine_levels = 1};
    float plo, phi;
    search_range(&plain, mn, mx, c, &plo, &phi);
    if (plo == 0.0f && phi == 0.0f) return NNQ_OK;
    out_ctx o = {.w = w, .n = n, .st = st, .cfg = d.cfg};
    o.acc = malloc(sizeof *o.acc * ((size_t)st->n_out + (size_t)n));
    if (!o.acc) return nnq_fail(NNQ_ERR_NOMEM, "output-aware range: out of memory");
    o.d = o.acc + st->n_out;
    nnq_status status = scratch_quantizer(&o.q, c);
    if (status == NNQ_OK) {
        range_search s = {.eval = out_eval, .ctx = &o, .refine_levels = 1};
        s.seed = true;
        s.seed_a = plain.best_a;
        s.seed_b = plain.best_b;
        search_range(&s, mn, mx, c, lo, hi);
    }
    nnq_quantizer_free(&o.q);
    free(o.acc);
    return status;
}

int64_t nnq_count_nonfinite(const float *x, int64_t n, int64_t stride) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i * stride]);
    return bad;
}

/* ---- logits: cross-entropy ---------------------------------------------- */

typedef struct ce_ctx {
    const float *rows;
    const int64_t *use; /* [n] indices of the rows scored (all values finite) */
    int64_t n;
    int k;
    const double *p;  /* [n, k] softmax of those rows' float logits */
    double *vh;       /* [k] one quantized row */
    nnq_quantizer q;
} ce_ctx;

/* Mean over rows of H(p, softmax(v_hat)) = -sum p log q (log-softmax around
 * the row's maximum); tie: mean squared error of the logits. */
static range_score ce_eval(void *ctx, float lo, float hi) {
    ce_ctx *cc = ctx;
    nnq_quantizer_set_range(&cc->q, 0, lo, hi);
    float s = cc->q.scale[0], z = (float)cc->q.zero_point[0];
    float qmin = (float)cc->q.qmin, qmax = (float)cc->q.qmax;
    double ce = 0, se = 0;
    for (int64_t r = 0; r < cc->n; r++) {
        const float *v = cc->rows + cc->use[r] * cc->k;
        const double *p = cc->p + r * cc->k;
        double mx = -INFINITY, sum = 0, row = 0;
        for (int j = 0; j < cc->k; j++) {
            cc->vh[j] = nnq_fake_quant_f(v[j], s, z, qmin, qmax);
            double d = cc->vh[j] - v[j];
            se += d * d;
            mx = fmax(mx, cc->vh[j]);
        }
        for (int j = 0; j < cc->k; j++) sum += exp(cc->vh[j] - mx);
        double lse = mx + log(sum);
        for (int j = 0; j < cc->k; j++)
            if (p[j] > 0) row -= p[j] * (cc->vh[j] - lse);
        ce += row;
    }
    return (range_score){ce / (double)cc->n, se / ((double)cc->n * cc->k)};
}

nnq_status nnq_range_ce_logits(const float *rows, int64_t n_rows, int k,
                               const nnq_qconfig *c, float *lo, float *hi) {
    if (!rows || !c || !lo || !hi || n_rows < 1 || k < 1)
        return nnq_fail(NNQ_ERR_INVALID, "ce range: need logit rows [n >= 1, k >= 1], got [%lld, %d]",
                        (long long)n_rows, k);
    NNQ_TRY(nnq_qconfig_check(c));
    nnq_status st = NNQ_OK;
    ce_ctx cc = {.rows = rows, .k = k};
    double *p = NULL;
    int64_t *use = NULL;
    size_t count, bytes;
    if (!nnq_mul_size((size_t)n_rows, (size_t)k, &count) ||
        !nnq_mul_size(count, sizeof(double), &bytes))
        return nnq_fail(NNQ_ERR_LIMIT, "ce range: %lld x %d logits are too many",
                        (long long)n_rows, k);
    p = malloc(bytes);
    use = malloc((size_t)n_rows * sizeof *use);
    cc.vh = malloc((size_t)k * sizeof *cc.vh);
    if (!p || !use || !cc.vh) {
        st = nnq_fail(NNQ_ERR_NOMEM, "ce range: out of memory for %lld x %d logits",
                      (long long)n_rows, k);
        goto fail;
    }
    double mn = INFINITY, mx = -INFINITY;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *v = rows + r * k;
        double rmax = -INFINITY, sum = 0;
        bool finite = true;
        for (int j = 0; j < k; j++) {
            finite = finite && isfinite(v[j]);
            rmax = fmax(rmax, v[j]);
        }
        if (!finite) continue; /* softmax needs the whole row */
        double *pr = p + cc.n * k;
        for (int j = 0; j < k; j++) sum += exp(v[j] - rmax);
        double lse = rmax + log(sum);
        for (int j = 0; j < k; j++) pr[j] = exp(v[j] - lse);
        for (int j = 0; j < k; j++) {
            mn = fmin(mn, v[j]);
            mx = fmax(mx, v[j]);
        }
        use[cc.n++] = r;
    }
    *lo = *hi = 0.0f;
    if (cc.n == 0) goto fail; /* no finite row: [0, 0], a valid quantizer */
    cc.p = p;
    cc.use = use;
    if ((st = scratch_quantizer(&cc.q, c)) != NNQ_OK) goto fail;
    range_search s = {.eval = ce_eval, .ctx = &cc, .refine_levels = 3};
    search_range(&s, mn, mx, c, lo, hi);
fail:
    nnq_quantizer_free(&cc.q);
    free(cc.vh);
    free(use);
    free(p);
    return st;
}
