/* Output-aware MSE weight ranges (the default of --wrange mse when there is
 * calibration data; --wmse plain keeps the weight-only search).
 *
 * Plain MSE picks each channel's clipping to minimise the weights' own
 * squared error. Clipping the few largest weights of a channel lowers that
 * error but moves every clipped weight the same way, so the layer's mean
 * output shifts; at 4 bits this lost 2 points on the resnets fixture
 * (docs/ptq.md). Here each clip minimises the expected error of the
 * layer's OUTPUT instead (nnq_range_output_mse, range.h): squared weight
 * errors weighted by the input's variance, plus the squared mean shift
 * sum_i d_i E[x_i] per output channel.
 *
 * The input moments come from the float graph on calibration images, one
 * streamed pass: per input channel (Conv: axis 1, over batch and space;
 * Gemm / MatMul: the last axis) the mean, and the covariance between
 * channels at one position (sums of x and of x x^T in double, so memory
 * is C + C^2 per input whatever the number of images; above
 * NNQ_WOUT_MAX_COV channels only the variances). A conv's kernel taps read
 * different positions: their errors are taken as uncorrelated (zero
 * padding is ignored, as analytical bias correction does); within one tap
 * the input channels' covariance is used whole, which is exact for 1x1
 * convs and Gemm. */
#ifndef NNQ_PTQ_WRANGE_OUTPUT_H
#define NNQ_PTQ_WRANGE_OUTPUT_H

#include <stdint.h>

#include "data/dataset.h"
#include "ir/graph.h"
#include "ptq/ptq.h"
#include "quant/qsim.h"

#define NNQ_WOUT_MAX_COV 2048

/* Per-channel moments of one value over calibration data. */
typedef struct nnq_chan_moments {
    int64_t channels;
    double *mean, *var; /* [channels] each (one block) */
    double *cov;        /* [channels^2] covariance, NULL above NNQ_WOUT_MAX_COV */
} nnq_chan_moments;

/* Moments of the values vals[0..n_vals) (channels on axis 1, or on the last
 * axis where last_axis[k]) of `g` over images [0, n) of d (n <= 0: all),
 * streamed in batches; the covariance only where want_cov[k] (a depthwise
 * conv's input needs none). out[k] is allocated; free with
 * nnq_chan_moments_free. Values that are not float tensors of rank >= 2
 * fail naming the value. */
nnq_status nnq_chan_moments_collect(const nnq_graph *g, const nnq_dataset *d, int64_t n,
                                    int threads, const int *vals, const bool *last_axis,
                                    const bool *want_cov, int n_vals, nnq_chan_moments *out);
void nnq_chan_moments_free(nnq_chan_moments *m);

/* Set every weight quantizer's range by MSE: output-aware for the weights of
 * Conv / Gemm / MatMul layers whose input moments could be measured, plain
 * weight MSE for the others (counted in *n_plain), then sync. float_graph
 * is the graph the simulation was built from. *n_output counts the layers
 * set by the output criterion. */
nnq_status nnq_ptq_weight_ranges_output(nnq_qsim *s, const nnq_graph *float_graph,
                                        const nnq_dataset *d, int64_t n, int threads,
                                        int *n_output, int *n_plain, const nnq_ptq_log *log);

#endif
