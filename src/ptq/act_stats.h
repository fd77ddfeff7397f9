/* Internal to the data-free passes (bn_ranges.c, bias_correct.c):
 * per-channel Gaussian statistics of a float graph's values, propagated
 * from the BatchNorm statistics (nnq_bn_stats) without any data.
 *
 * Each value v gets, per channel c (axis 1), a mean, a variance and a
 * range [lo_c, hi_c] where almost all of its mass lies. Sources:
 *   - a value with a BN entry (a folded layer's pre-activation output) or
 *     a BatchNormalization node's output: N(beta_c, gamma_c^2), range
 *     beta_c ± 6|gamma_c| (the white paper's BN-based range, alpha = 6);
 *   - a graph input, only when its range [in_lo, in_hi] is given: uniform
 *     on it (mean (lo+hi)/2, variance (hi-lo)^2/12), range [lo, hi].
 * Propagation, node by node in topological order (the value's channels
 * need not be Gaussian; only its mean and variance are carried, and each
 * activation treats its input as normal with those moments):
 *   - Relu, Clip: closed forms of the rectified / clipped normal;
 *     HardSwish, HardSigmoid, Sigmoid, Tanh, LeakyRelu, PRelu: numerical
 *     quadrature of f(x) under N(mu, sigma^2). Range: the image of the
 *     input's range under f;
 *   - Add of two varying values: means and variances add (independence
 *     assumed), range mean ± 6 sigma within the sum of the input ranges;
 *     Add/Sub/Mul/Div with a constant scalar: the affine map;
 *   - Conv / Gemm / MatMul without BN statistics on their output:
 *     mean_o = sum_i,t W[o,i,t] mean_i + b_o, var_o = sum_i,t W^2 var_i
 *     (inputs independent across channels and taps; zero padding
 *     ignored), range mean ± 6 sigma;
 *   - MaxPool, AveragePool, GlobalAveragePool, ReduceMean over space, Pad,
 *     Identity, Dropout and FakeQuant keep the per-channel statistics.
 *     An approximation: a max-pool's output mean is higher than its
 *     input's, an average's variance lower, zero padding pulls the border
 *     toward 0; the ranges stay conservative;
 *   - Flatten, Reshape, Squeeze, Unsqueeze (batch axis unchanged): each
 *     output channel is the mixture of the input channels its elements
 *     come from; Concat on axis 1 concatenates.
 * Anything else (Transpose, Softmax, an op with an unknown input) leaves
 * its outputs unknown. Weights read through a FakeQuant are taken at
 * their float value, so the statistics are those of the float model. */
#ifndef NNQ_PTQ_ACT_STATS_H
#define NNQ_PTQ_ACT_STATS_H

#include <stdbool.h>

#include "core/status.h"
#include "ir/graph.h"
#include "ptq/ptq.h"

/* Width of the BN-based range in standard deviations [WP]. */
#define NNQ_BN_RANGE_ALPHA 6.0

typedef struct nnq_vstat {
    int channels;   /* 0: unknown */
    double *mean;   /* [channels]; var, lo, hi point into the same block */
    double *var;
    double *lo, *hi;
} nnq_vstat;

typedef struct nnq_act_stats {
    int n_values;
    nnq_vstat *v; /* [n_values], by value index */
} nnq_act_stats;

/* Statistics of every value of the prepared graph g (a float graph or a
 * simulation graph). in_range: [lo, hi] of every float graph input, or
 * NULL when the inputs are unknown. */
nnq_status nnq_act_stats_compute(const nnq_graph *g, const nnq_bn_stats *st,
                                 const float *in_range, nnq_act_stats *out);
void nnq_act_stats_free(nnq_act_stats *a);

/* Statistics of value v, or NULL if unknown. */
const nnq_vstat *nnq_act_stats_get(const nnq_act_stats *a, int v);

/* Union of the per-channel ranges of s. */
void nnq_vstat_range(const nnq_vstat *s, double *lo, double *hi);

/* Moments of f(X) for X ~ N(mu, sigma^2). */
void nnq_normal_relu_moments(double mu, double sigma, double *mean, double *var);
/* Clip to [lo, hi]; lo may be -INFINITY, hi +INFINITY. */
void nnq_normal_clip_moments(double mu, double sigma, double lo, double hi, double *mean,
                             double *var);
typedef double (*nnq_scalar_fn)(double x, const void *ctx);
/* Numerically (composite Simpson over mu ± 8 sigma, 1600 panels), for a
 * piecewise smooth f of at most linear growth. */
void nnq_normal_fn_moments(nnq_scalar_fn f, const void *ctx, double mu, double sigma,
                           double *mean, double *var);

#endif
