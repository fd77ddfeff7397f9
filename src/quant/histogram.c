/* Streaming histogram of a tensor's values (see range.h).
 *
 * The range only ever grows, one doubling at a time: each doubling merges
 * bins pairwise (bin j of the new range is two adjacent old bins), shifted
 * by a whole number of old bins so the new range can extend downwards,
 * upwards or both. Old bin edges stay bin edges, so the counts are exactly
 * those a single pass over all the data with the final range would give;
 * no value is ever re-read. 0 is inside the range (or on its edge) from
 * the first add on, and stays there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/range.h"

/* Headroom added to each non-zero side of the first batch's range, so the
 * slightly larger extremes of later batches rarely force a doubling (which
 * halves the resolution). */
#define HIST_HEADROOM 0.125

static bool has_range(const nnq_histogram *h) { return h->hi > h->lo; }

/* Bin index of x, which lies in [lo, hi] (hi itself goes to the last bin). */
static int bin_of(const nnq_histogram *h, double x, double inv_w) {
    double t = (x - h->lo) * inv_w;
    if (!(t > 0)) return 0;
    if (t >= h->n_bins) return h->n_bins - 1;
    return (int)t;
}

nnq_status nnq_histogram_init(nnq_histogram *h, int n_bins) {
    memset(h, 0, sizeof *h);
    if (n_bins < 2 || n_bins % 2 != 0 || n_bins > (1 << 24))
        return nnq_fail(NNQ_ERR_INVALID,
                        "histogram: bin count must be even and in [2, 2^24], got %d", n_bins);
    h->count = calloc((size_t)n_bins, sizeof *h->count);
    if (!h->count) return nnq_fail(NNQ_ERR_NOMEM, "histogram: out of memory (%d bins)", n_bins);
    h->n_bins = n_bins;
    return NNQ_OK;
}

void nnq_histogram_free(nnq_histogram *h) {
    if (!h) return;
    free(h->count);
    memset(h, 0, sizeof *h);
}

/* First range, from the extremes of the first data: [min(mn, 0), max(mx, 0)]
 * plus headroom. All zeros: a tiny range above 0, grown when needed. */
static void set_first_range(nnq_histogram *h, double mn, double mx) {
    double lo = fmin(mn, 0.0), hi = fmax(mx, 0.0);
    h->lo = lo * (1.0 + HIST_HEADROOM);
    h->hi = hi * (1.0 + HIST_HEADROOM);
    if (!has_range(h)) {
        h->lo = 0.0;
        h->hi = 1e-30;
    }
}

/* Double the range until it covers [xmin, xmax]. Each doubling prepends
 * `off` old bins (0: grow upwards only, n: downwards only), chosen so one
 * doubling suffices when it can, else in proportion to the two deficits. */
static nnq_status grow_to_cover(nnq_histogram *h, double xmin, double xmax) {
    if (xmin >= h->lo && xmax <= h->hi) return NNQ_OK;
    const int n = h->n_bins;
    double *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return nnq_fail(NNQ_ERR_NOMEM, "histogram: out of memory growing the range");
    while (xmin < h->lo || xmax > h->hi) {
        double width = h->hi - h->lo, w = width / n;
        double d_lo = fmax(h->lo - xmin, 0.0), d_hi = fmax(xmax - h->hi, 0.0);
        /* Shifts that cover everything in this doubling: [need, allow]. */
        double need = d_lo > 0 ? ceil(d_lo / w) : 0.0;
        double allow = d_hi > 0 ? floor((width - d_hi) / w) : (double)n;
        double off = round(n * d_lo / (d_lo + d_hi));
        if (need <= allow) off = fmin(fmax(off, need), allow);
        off = fmin(fmax(off, 0.0), (double)n);
        int o = (int)off;
        /* New bin j holds old bins 2j - o and 2j + 1 - o. */
        memset(tmp, 0, (size_t)n * sizeof *tmp);
        for (int i = 0; i < n; i++) tmp[(i + o) / 2] += h->count[i];
        memcpy(h->count, tmp, (size_t)n * sizeof *tmp);
        /* Computed from the side that stays put, so a one-sided doubling
         * leaves that edge (e.g. 0) exactly where it was. */
        double new_lo = h->lo - o * w, new_hi = h->hi + (n - o) * w;
        h->lo = new_lo;
        h->hi = new_hi;
    }
    free(tmp);
    return NNQ_OK;
}

/* Finite extremes of x and the number of non-finite values. The fast
 * loop lets comparisons skip NaN (they are false) and only rescans when an
 * infinity made it into the extremes. */
static int64_t finite_extremes(const float *x, int64_t n, float *mn_out, float *mx_out) {
    float mn = INFINITY, mx = -INFINITY;
    int64_t nan = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        nan += v != v;
    }
    if (isinf(mn) || isinf(mx)) {
        mn = INFINITY;
        mx = -INFINITY;
        nan = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (!isfinite(v)) {
                nan++;
                continue;
            }
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    }
    *mn_out = mn;
    *mx_out = mx;
    return nan;
}

nnq_status nnq_histogram_add(nnq_histogram *h, const float *x, int64_t n) {
    if (!h || !h->count) return nnq_fail(NNQ_ERR_INVALID, "histogram: not initialised");
    if (n < 0 || (n > 0 && !x))
        return nnq_fail(NNQ_ERR_INVALID, "histogram: bad input (%lld values)", (long long)n);
    float mn, mx;
    int64_t bad = finite_extremes(x, n, &mn, &mx);
    h->nan_count += bad;
    if (bad == n) return NNQ_OK;
    if (!has_range(h)) set_first_range(h, mn, mx);
    NNQ_TRY(grow_to_cover(h, mn, mx));
    if (h->total == 0) {
        h->min = mn;
        h->max = mx;
    } else {
        h->min = fmin(h->min, mn);
        h->max = fmax(h->max, mx);
    }
    /* Every finite value now lies in [lo, hi]; t outside [0, n_bins) is
     * hi itself, a rounding step past an edge, or non-finite. */
    const double lo = h->lo, inv_w = h->n_bins / (h->hi - h->lo), nb = h->n_bins;
    double *count = h->count;
    for (int64_t i = 0; i < n; i++) {
        double t = ((double)x[i] - lo) * inv_w;
        if (t >= 0 && t < nb)
            count[(int)t] += 1.0;
        else if (isfinite(x[i]))
            count[t < 0 ? 0 : h->n_bins - 1] += 1.0;
    }
    h->total += (double)(n - bad);
    return NNQ_OK;
}

/* Spread mass m, uniform over [u, v], onto h's bins by overlap; the last
 * bin gets the remainder so the mass is conserved. */
static void spread(nnq_histogram *h, double u, double v, double m) {
    double w = (h->hi - h->lo) / h->n_bins, inv_w = 1.0 / w;
    int j0 = bin_of(h, u, inv_w), j1 = bin_of(h, v, inv_w);
    if (j0 == j1 || !(v > u)) {
        h->count[j0] += m;
        return;
    }
    double given = 0;
    for (int j = j0; j < j1; j++) {
        double edge_hi = h->lo + (j + 1) * w;
        double part = m * (fmin(v, edge_hi) - fmax(u, h->lo + j * w)) / (v - u);
        if (part > 0) {
            h->count[j] += part;
            given += part;
        }
    }
    h->count[j1] += fmax(m - given, 0.0);
}

nnq_status nnq_histogram_merge(nnq_histogram *a, const nnq_histogram *b) {
    if (!a || !a->count || !b || !b->count)
        return nnq_fail(NNQ_ERR_INVALID, "histogram merge: histogram not initialised");
    a->nan_count += b->nan_count;
    if (b->total == 0) return NNQ_OK;
    bool same = a->n_bins == b->n_bins && a->lo == b->lo && a->hi == b->hi;
    if (!has_range(a)) {
        if (a->n_bins == b->n_bins) {
            a->lo = b->lo;
            a->hi = b->hi;
            same = true;
        } else {
            set_first_range(a, b->min, b->max);
        }
    }
    NNQ_TRY(grow_to_cover(a, b->min, b->max));
    if (same) {
        for (int i = 0; i < a->n_bins; i++) a->count[i] += b->count[i];
    } else {
        /* b's mass lies in [b->min, b->max]: clip its bins to that first. */
        double wb = (b->hi - b->lo) / b->n_bins;
        for (int i = 0; i < b->n_bins; i++) {
            if (b->count[i] == 0) continue;
            double u = fmax(b->lo + i * wb, b->min), v = fmin(b->lo + (i + 1) * wb, b->max);
            if (v < u) u = v = fmin(fmax(u, b->min), b->max);
            spread(a, u, v, b->count[i]);
        }
    }
    if (a->total == 0) {
        a->min = b->min;
        a->max = b->max;
    } else {
        a->min = fmin(a->min, b->min);
        a->max = fmax(a->max, b->max);
    }
    a->total += b->total;
    return NNQ_OK;
}
