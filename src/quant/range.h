/* Range setting: choosing [lo, hi] for a quantizer.
 *
 * Activations are summarised while calibration batches stream through the
 * model, in bounded memory: an nnq_histogram per quantized tensor (a fixed
 * number of bins over a range that grows by whole doublings as new data
 * arrives; bins are merged pairwise on growth, so no earlier data is lost
 * or re-read). Weights are searched directly on their values.
 *
 * Methods (../shared/QUANTIZATION.md §2):
 *   minmax      [min, max] seen;
 *   mse         argmin over clipped ranges of the expected squared
 *               quantization error (rounding inside, clipping outside);
 *   percentile  [p-th, (100-p)-th] percentiles (p = 0.01 by default → 99.99 %);
 *   ce          logits only: argmin of the mean cross-entropy between
 *               softmax(v) and softmax(v_hat) over stored logit rows
 *               (nnq_range_ce_logits);
 *   bn          data-free, from BatchNorm statistics (computed by the PTQ
 *               layer, not here).
 * Every result is nudged into a valid quantizer by nnq_quantizer_set_range.
 *
 * Non-finite values (NaN, +-Inf) never set a range: histograms skip and
 * count them (nan_count), raw-value searches skip them (the caller counts
 * with nnq_count_nonfinite), the cross-entropy search skips logit rows
 * holding one (the logits' histogram counts them). Nothing finite → [0, 0],
 * which nnq_quantizer_set_range turns into s = 1. */
#ifndef NNQ_QUANT_RANGE_H
#define NNQ_QUANT_RANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "quant/quantizer.h"

typedef enum nnq_range_method {
    NNQ_RANGE_MINMAX,
    NNQ_RANGE_MSE,
    NNQ_RANGE_CE,
    NNQ_RANGE_BN,
    NNQ_RANGE_PERCENTILE
} nnq_range_method;

/* "minmax", "mse", "ce", "bn", "percentile" ↔ enum; parse returns false on
 * an unknown name. */
const char *nnq_range_method_name(nnq_range_method m);
bool nnq_range_method_parse(const char *s, nnq_range_method *out);

#define NNQ_HIST_BINS 2048

typedef struct nnq_histogram {
    int n_bins;         /* even, 2..2^24 (pairs merge on growth) */
    double lo, hi;      /* bin i covers [lo + i*w, lo + (i+1)*w), w = (hi-lo)/n_bins */
    double *count;      /* [n_bins] */
    double total;       /* values added (NaN skipped) */
    double min, max;    /* exact extremes seen (valid when total > 0) */
    int64_t nan_count;  /* NaN/Inf values skipped */
} nnq_histogram;

nnq_status nnq_histogram_init(nnq_histogram *h, int n_bins);
void nnq_histogram_free(nnq_histogram *h);
/* Add n values (stride 1). Non-finite values are counted in nan_count and
 * skipped. The first call fixes an initial range from its data; later
 * values outside it grow the range (by doublings, merging bins). */
nnq_status nnq_histogram_add(nnq_histogram *h, const float *x, int64_t n);
/* Merge b into a (e.g. per-thread histograms): a grows to cover b's
 * values; b's bins are spread over a's by overlap (same range and bin
 * count: added exactly). */
nnq_status nnq_histogram_merge(nnq_histogram *a, const nnq_histogram *b);

/* Range for quantizer configuration c (one pair: per-tensor) from a
 * histogram, by method m (minmax, mse or percentile; others fail with
 * NNQ_ERR_INVALID). percentile is the tail mass cut on each side, in
 * percent (e.g. 0.01). Empty histogram → [0, 0]. */
nnq_status nnq_range_from_histogram(const nnq_histogram *h, const nnq_qconfig *c,
                                    nnq_range_method m, double percentile, float *lo,
                                    float *hi);

/* Range of n values x[i*stride] (weights: one channel, or a whole tensor)
 * by minmax or mse (grid search over clipping of [min, max]: symmetric
 * candidates scale max|x|, asymmetric ones shrink lo and hi independently;
 * each candidate scored by nnq_qerror_mse). Non-finite values are skipped
 * for min and max; no finite value → [0, 0]. Every search honours c's
 * sym_range; under NNQ_SYM_FULL a symmetric result may be wider than
 * [min, max] (by up to (2^b - 1)/(2^b - 2)): the range whose full-range
 * scale holds a positive maximum unclipped (range.c). */
nnq_status nnq_range_from_data(const float *x, int64_t n, int64_t stride,
                               const nnq_qconfig *c, nnq_range_method m, float *lo,
                               float *hi);

/* Output-aware weight range ("--wmse output"): w[i] multiplies an input
 * element with mean mean[i] (E over calibration data of the layer's input)
 * and feeds output out[i] (0 .. n_out - 1; out NULL: every weight feeds
 * output 0, e.g. one output channel). With d_i = w_i - w_hat_i the
 * expected squared output error is
 *     E[(sum_i d_i x_i)^2] = d^T Cov(x) d + (sum_i d_i E[x_i])^2,
 * summed over outputs:
 *     err = sum_s sum_{a, b in s} d_a d_b cov[in_a, in_b]
 *           + sum_o (sum_{i -> o} d_i mean[i])^2.
 * Slot s (weights slot[s] .. slot[s+1] - 1, contiguous) holds the weights
 * that read one input position, e.g. one output channel's weights of one
 * kernel tap across input channels; weights of different slots are taken
 * as uncorrelated (different positions). Without cov the covariance is
 * diagonal: the first term is sum_i d_i^2 var[i]. The second term is the
 * shift of the output's mean that clipping (and biased rounding) causes,
 * which plain weight MSE does not see. */
typedef struct nnq_wout_stats {
    const double *mean; /* [n] */
    const double *var;  /* [n], >= 0; read when cov is NULL */
    const double *cov;  /* [n_in * n_in] input covariance, or NULL */
    int32_t n_in;       /* with cov: input channels */
    const int32_t *in;  /* with cov: [n] input channel of each weight */
    const int64_t *slot; /* with cov: [n_slot + 1], slot[0] = 0, slot[n_slot] = n */
    int64_t n_slot;
    const int32_t *out; /* [n] or NULL */
    int32_t n_out;      /* >= 1 */
} nnq_wout_stats;

/* err above, divided by n_out, for the quantizer range [lo, hi] (nudged as
 * the range searches do). Non-finite weights count as error 0. */
double nnq_qerror_output(const nnq_qconfig *c, const float *w, int64_t n,
                         const nnq_wout_stats *st, float lo, float hi);

/* Range minimising nnq_qerror_output over the candidates of the mse search
 * (range.c), with the range plain mse chooses among them, so the result is
 * never worse than plain mse on this criterion; ties (e.g. an input that is
 * always 0) go to the smaller weight MSE. No finite weight → [0, 0]. */
nnq_status nnq_range_output_mse(const float *w, int64_t n, const nnq_wout_stats *st,
                                const nnq_qconfig *c, float *lo, float *hi);

/* Number of NaN / infinite values among x[i*stride], i < n (for warnings:
 * nnq_range_from_data skips them silently). */
int64_t nnq_count_nonfinite(const float *x, int64_t n, int64_t stride);

/* Cross-entropy range for logits: rows [n_rows, k] (k classes) stored
 * from calibration. Searches clipping ranges around [min, max] for the one
 * minimising mean H(softmax(v), softmax(v_hat)), ties broken towards the
 * smaller squared error. Rows holding a non-finite value are left out
 * (none left: [0, 0]). */
nnq_status nnq_range_ce_logits(const float *rows, int64_t n_rows, int k,
                               const nnq_qconfig *c, float *lo, float *hi);

#endif
