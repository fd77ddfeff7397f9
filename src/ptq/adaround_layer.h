/* Internal: AdaRound's optimiser for ONE layer (../shared/QUANTIZATION.md
 * §7), independent of the simulation, so it can be tested on its own.
 *
 * For a Conv (any group, depthwise too), Gemm or MatMul node with float
 * weight W and its quantizer (scale s and zero point z per channel along
 * q->axis, or one pair; grid [qmin, qmax]), each weight element learns
 * whether to round down or up:
 *
 *   W~ = s * clamp(floor(W/s) + h(V), qmin - z, qmax - z)
 *   h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1), zeta 1.1, gamma -0.1
 *
 * (the integer is q = floor(W/s) + h + z on the quantizer's grid, and
 * W~ = s (q - z): the same grid the weight FakeQuant uses). V starts where
 * h(V) = frac(W/s) and is trained with Adam on random batches of cached
 * samples to minimise
 *
 *   L = sum_c (f_a(W~ x_hat + b) - f_a(W x))^2 / positions
 *       + lambda * sum(1 - |2 h(V) - 1|^beta)
 *
 * where the reconstruction error is summed over output channels and
 * averaged over the other positions (batch, space), the normalisation of
 * the paper's code and of AIMET, which the published lambda = 0.01 is
 * tuned for. The regulariser is off for the first warm_start * iters
 * iterations; then beta falls from beta_start to beta_end by a cosine.
 * Final rounding: h = [V >= 0]. f_a is the layer's fused activation
 * (Relu, Clip or none), differentiated as a mask. Gradients of the layer
 * come from the op's own backward (ops/op.h), W's gradient only. */
#ifndef NNQ_PTQ_ADAROUND_LAYER_H
#define NNQ_PTQ_ADAROUND_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"
#include "ptq/ptq.h"
#include "quant/quantizer.h"

#define NNQ_ADA_ZETA 1.1f
#define NNQ_ADA_GAMMA (-0.1f)

typedef enum nnq_ada_act {
    NNQ_ADA_ACT_NONE,
    NNQ_ADA_ACT_RELU,
    NNQ_ADA_ACT_CLIP /* min(max(y, act_lo), act_hi) */
} nnq_ada_act;

typedef struct nnq_ada_layer {
    const nnq_node *node;     /* Conv, Gemm or MatMul: op type and attributes */
    int opset;                /* default-domain opset of its model */
    int x_slot, w_slot;       /* node inputs taking the data and the weight */
    const nnq_tensor *w;      /* float weight */
    int w_axis;               /* W's output-channel axis */
    const nnq_tensor *bias;   /* node input 2 (Conv B, Gemm C), or NULL */
    const nnq_quantizer *q;   /* W's quantizer: per-tensor, or per channel along q->axis */
    nnq_ada_act act;
    float act_lo, act_hi;
    const float *act_hi_ch;   /* NULL, or [output channels]: a per-channel cap
                                 min(act(y), cap_c) after the activation */
    const nnq_tensor *x;      /* cached layer inputs x_hat [n, ...] (batch first) */
    const nnq_tensor *target; /* float targets f_a(W x) [n, ...] */
} nnq_ada_layer;

typedef struct nnq_ada_result {
    float *w;            /* [numel W] rounded weights s (q - z), on the grid; owned */
    float *v;            /* [numel W] V after the last iteration; owned */
    double mse_nearest;  /* reconstruction MSE (mean over elements, all cached
                            samples) with round-to-nearest weights */
    double mse_ada;      /* ... with AdaRound's hard rounding */
    int64_t n_changed;   /* weights rounded differently from nearest */
    int64_t n_soft;      /* h(V) of the final V strictly inside (0.01, 0.99) */
    double seconds;      /* the optimisation loop alone */
} nnq_ada_result;

/* h(V), and the V with h(V) = frac for frac in [0, 1). */
float nnq_ada_h(float v);
float nnq_ada_v_init(float frac);

/* Regulariser exponent at iteration it (0-based) of o->iters: false (no
 * regulariser) during the warm start, else true with *beta on the cosine
 * from beta_start (at the end of the warm start) to beta_end (at iters). */
bool nnq_ada_beta(const nnq_adaround_options *o, int it, float *beta);

/* Optimise one layer with o->iters iterations (0: just initialise V) on
 * batches of o->batch samples (all if fewer) drawn with o->seed, on
 * o->threads threads. Fills r (free with nnq_ada_result_free). */
nnq_status nnq_ada_optimize(const nnq_ada_layer *L, const nnq_adaround_options *o,
                            nnq_ada_result *r);
void nnq_ada_result_free(nnq_ada_result *r);

#endif
