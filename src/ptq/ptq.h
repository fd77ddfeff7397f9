/* Post-training quantization passes (../shared/QUANTIZATION.md §3-§8).
 * One file per pass; each is usable alone.
 *
 * Float-graph passes (before the simulation is built) rewrite the float
 * graph in place and keep its function: bn_fold.c, cle.c, bias_absorb.c.
 * They may remove nodes and drop values nothing uses any more, so node
 * and value indices change; names stay.
 * They share nnq_bn_stats: the BatchNorm statistics of each folded layer's
 * output, which the data-free passes read after the BN nodes are gone.
 * Simulation passes (bias_correct.c, adaround.c) work on an nnq_qsim and
 * the float graph it was built from. */
#ifndef NNQ_PTQ_PTQ_H
#define NNQ_PTQ_PTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/progress.h"
#include "core/status.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "quant/qsim.h"

/* ---- BatchNorm statistics kept across folding ----
 * For the output value of a layer whose BN was folded (named `value`, the
 * BN's former output: the folded layer's pre-activation output), the BN's
 * per-channel shift beta and scale gamma: that output is modelled as
 * N(beta_c, gamma_c^2) per channel. CLE and bias absorption update them. */
typedef struct nnq_bn_entry {
    char *value;  /* value name in the graph */
    int channels;
    float *gamma; /* [channels] */
    float *beta;  /* [channels] */
} nnq_bn_entry;

typedef struct nnq_bn_stats {
    int n, cap;
    nnq_bn_entry *e;
} nnq_bn_stats;

void nnq_bn_stats_free(nnq_bn_stats *st);
/* Entry for value name, or NULL. */
nnq_bn_entry *nnq_bn_stats_find(const nnq_bn_stats *st, const char *value);
nnq_status nnq_bn_stats_add(nnq_bn_stats *st, const char *value, int channels,
                            const float *gamma, const float *beta);

/* A pass's account of what it did, for the user (one line each). Numerical
 * trouble a pass handled with a defined result (e.g. a degenerate BN
 * variance) is a warning: one line "<pass>: warning: ...". */
/* A layer's weight layout (Conv, Gemm with transA = 0, MatMul): output o,
 * input channel i of o's group (cin per group) and tap t sit at
 * W[o * o_stride + i * i_stride + t]; its input has groups * cin channels,
 * on axis 1 (Conv) or the last axis (last_axis). out_axis: the weight's
 * output-channel axis. False for any other layout. */
typedef struct nnq_weight_geom {
    int64_t out_ch, cin, groups, taps, o_stride, i_stride;
    int out_axis;
    bool last_axis;
} nnq_weight_geom;
bool nnq_ptq_weight_geom(const nnq_graph *g, const nnq_qsim_layer *L, nnq_weight_geom *k);

typedef struct nnq_ptq_log {
    FILE *fp; /* NULL: silent */
    nnq_progress progress; /* long steps report here (calibration, AdaRound layers) */
} nnq_ptq_log;

/* Print one warning line of pass `pass` (log or log->fp NULL: nothing). */
void nnq_ptq_warn(const nnq_ptq_log *log, const char *pass, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1. BatchNorm folding: every BatchNormalization whose input is produced by
 * a Conv or Gemm read by nothing else folds into that layer's weight and
 * bias (a bias is created if absent); the BN node disappears and the
 * layer writes the BN's output value. Statistics go to `st` (may be NULL).
 * BN nodes that cannot fold stay (counted in *n_unfolded).
 * Degenerate channels fold to a defined, finite result with a warning (one
 * per BN node): a negative running variance counts as 0; a channel whose
 * variance + epsilon is not positive (e.g. variance 0 with epsilon 0) or
 * not finite, whose gamma, beta or mean is not finite, or whose scaled
 * weights would overflow float, becomes constant: weights 0, bias beta (0
 * if beta is not finite), the output a BN gives an input at its mean; its
 * statistics are kept as gamma 0 and that bias. */
nnq_status nnq_ptq_fold_bn(nnq_graph *g, nnq_bn_stats *st, int *n_folded, int *n_unfolded,
                           const nnq_ptq_log *log);

/* 3. Cross-layer equalization over chains conv→conv, conv→depthwise→conv
 * (and gemm) joined by a positively homogeneous activation (Relu, PRelu,
 * LeakyRelu, a capped Relu, or none), never across a value with several
 * readers (residual adds, concats). Pairs are scaled with
 * s_i = sqrt(r1_i / r2_i), sweeping all pairs until no scale moves more
 * than tol (relative) or max_iters sweeps. BN stats are rescaled.
 * ReLU6 (Clip(0, 6)) is not homogeneous; what happens to it is a choice:
 *   NNQ_RELU6_CAP   (default) it becomes Relu followed by Min with a
 *                   per-channel constant u = 6, which equalization scales
 *                   with the channel (u_i = 6 / s_i): exact, and an integer
 *                   runtime applies it as its per-channel output clamp;
 *   NNQ_RELU6_RELU  replaced by Relu, as in the DFQ paper (changes the
 *                   float function where activations exceeded 6);
 *   NNQ_RELU6_SKIP  pairs joined by ReLU6 are left unequalized.
 * Each conversion is reported. */
typedef enum nnq_relu6_mode { NNQ_RELU6_CAP, NNQ_RELU6_RELU, NNQ_RELU6_SKIP } nnq_relu6_mode;
typedef struct nnq_cle_options {
    int max_iters;  /* default 100 */
    double tol;     /* default 1e-4 */
    nnq_relu6_mode relu6; /* default NNQ_RELU6_CAP */
} nnq_cle_options;
void nnq_cle_options_default(nnq_cle_options *o);
/* Parse "cap" / "relu" / "skip"; false for anything else. */
bool nnq_relu6_mode_parse(const char *s, nnq_relu6_mode *out);
/* *n_relu6 counts the ReLU6 nodes converted (capped or replaced). */
nnq_status nnq_ptq_cle(nnq_graph *g, nnq_bn_stats *st, const nnq_cle_options *o, int *n_pairs,
                       int *n_relu6, const nnq_ptq_log *log);

/* 4. High-bias absorption (needs BN stats): for layer 1 → Relu (or capped
 * Relu, whose cap drops by c) → layer 2, c = max(0, beta - 3|gamma|) moves
 * from layer 1's bias into layer 2's (b2 += W2 c, summed over W2's taps). Exact wherever the layer-1
 * output exceeds c and layer 2 reads no zero padding. */
nnq_status nnq_ptq_absorb_bias(nnq_graph *g, nnq_bn_stats *st, int *n_absorbed,
                               const nnq_ptq_log *log);

/* 5. Bias correction: b <- b - E[W_hat x - W x] per output channel.
 * Empirical: layer by layer in graph order, E over calibration images of
 * the layer's pre-activation output, simulation (weights quantized, layers
 * before it already corrected, activation quantizers off) vs float.
 * Analytical: E[x] per input channel from BN statistics propagated through
 * the activation (normal ReLU / clipped-normal ReLU6 means), then
 * b <- b - (W_hat - W) E[x]. Layers whose input statistics are unknown are
 * skipped and counted. Syncs the simulation. */
nnq_status nnq_ptq_bias_correct_empirical(nnq_qsim *s, const nnq_graph *float_graph,
                                          const nnq_dataset *d, int64_t n, int threads,
                                          int *n_corrected, const nnq_ptq_log *log);
nnq_status nnq_ptq_bias_correct_analytical(nnq_qsim *s, const nnq_bn_stats *st,
                                           int *n_corrected, int *n_skipped,
                                           const nnq_ptq_log *log);

/* 6. AdaRound, layer by layer in graph order, on cached inputs from the
 * simulation with all earlier layers already rounded (activation
 * quantizers off). Writes the rounded weights (on the grid) into the sim's
 * float weights, then syncs. */
typedef struct nnq_adaround_options {
    int iters;        /* default 10000 */
    int batch;        /* images per step, default 32 */
    float lambda;     /* default 0.01 */
    float beta_start, beta_end; /* 20 → 2 */
    float warm_start; /* fraction without regulariser, default 0.2 */
    float lr;         /* Adam, default 1e-3 */
    int64_t n;        /* calibration images cached (default 1024) */
    uint64_t seed;
    int threads;
} nnq_adaround_options;
void nnq_adaround_options_default(nnq_adaround_options *o);
nnq_status nnq_ptq_adaround(nnq_qsim *s, const nnq_graph *float_graph, const nnq_dataset *d,
                            const nnq_adaround_options *o, const nnq_ptq_log *log);

/* Data-free activation ranges (range method "bn"): each activation
 * quantizer's range from BN statistics propagated through the graph
 * (beta ± 6|gamma| after BN, intersected with the activation's range; adds
 * sum means and variances; pools keep them). Graph inputs use
 * [in_lo, in_hi]. Quantizers without statistics keep their range and are
 * counted. */
nnq_status nnq_ptq_bn_ranges(nnq_qsim *s, const nnq_bn_stats *st, float in_lo, float in_hi,
                             int *n_set, int *n_missing, const nnq_ptq_log *log);

#endif
