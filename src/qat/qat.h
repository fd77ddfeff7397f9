/* Quantization-aware training (../shared/QUANTIZATION.md §8-10, docs/qat.md).
 *
 * Three graphs take part:
 *   teacher  the float model as given (BatchNorm kept, inference mode): the
 *            distillation teacher and the source of the BN parameters;
 *   sim      the quantization simulation of quant/qsim.h built on the model
 *            with BN folded: what is exported (QDQ ONNX, encodings), exactly
 *            as `nnq quantize` exports;
 *   g        the trainable simulation: a copy of sim->g (so every value index
 *            of sim->g means the same value in g) with
 *              - FakeQuant on weights and biases left unfolded during
 *                training, so they run each step and pass gradients to the
 *                float weights (folded again afterwards, so g then runs the
 *                exported model's kernels);
 *              - bias quantizers on their 32-bit grid of scale s_x s_w,
 *                recomputed after every step from the current scales: with
 *                BN folded, g computes bit for bit what the export does;
 *              - tied quantizers (pooling) reading their source's parameter
 *                initializers, so one learned (s, z) serves both;
 *              - with per-channel weights and keep_bn: each folded BN put
 *                back between its layer and the layer's activation (batch
 *                statistics in training), its layer holding the unfolded
 *                weights with scales s / |gamma / sqrt(var + eps)| (the
 *                same integers as the sim's); export folds it into the
 *                per-channel scale. The folded bias lands on its int32
 *                grid of step s_x s_w; in inference each kept BN's bias
 *                input is beta plus that rounding (nnq_qat_bn_shift: from
 *                the running statistics, before each evaluation and after
 *                training and BN re-estimation; training steps use beta), so
 *                g then computes what the export does.
 *
 * Methods (the FakeQuant op of ops/quantize.c carries forward and backward):
 *   ste   scale and zero point fixed at their initial values, or (ema > 0)
 *         following running min-max ranges of the tensor: per step
 *         lo <- (1 - ema) lo + ema min(batch), hi likewise, then (s, z) from
 *         [lo, hi] by the quantizer's rules. Gradient 1 inside the range, 0
 *         outside (straight-through estimator).
 *   lsq   the step size s of every weight and activation quantizer learned
 *         (per channel with per-channel weights), LSQ's gradient, scaled by
 *         g = 1/sqrt(N Qp) in the backward only (N: elements per channel of
 *         a weight, features per image of an activation; Qp = qmax); zero
 *         points stay at their initial values.
 *   lsq+  lsq plus a learned offset for every asymmetric activation: its
 *         zero point is a real number the op rounds (FakeQuant attribute
 *         round_zero_point), gradient 0 inside the grid and -s outside (LSQ+'s
 *         d/d beta = 1 outside, with beta = -s z).
 * Learned parameters get groups of their own, without weight decay:
 * "quantizer_scales" at qlr_mult times the scheduled lr, and
 * "quantizer_offsets" at that over the mean initial step size of their
 * quantizers (z = -beta / s: LSQ+'s beta learned at the scales' rate, in
 * grid units). After every step scales are kept >= FLT_EPSILON (as
 * PyTorch's _LearnableFakeQuantize does), learned zero points inside
 * [qmin, qmax], and bias scales set to s_x s_w.
 *
 * Initialisation (before training, from calibration images):
 *   mse     PTQ range setting: MSE weight ranges, MSE activation ranges with
 *           cross-entropy on the logits (the white paper's QAT pipeline);
 *   minmax  min-max ranges;
 *   lsq     the method's paper: ste and lsq s = 2 mean|v| / sqrt(Qp), with
 *           z = 0 (unsigned grid) for tensors >= 0 and z mid-range (the
 *           signed grid LSQ would use) for tensors that go negative;
 *           lsq+ weights s = max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(b-1),
 *           activations (s, z) minimising ||x - x_hat||^2 on a sample of the
 *           calibration activations by gradient steps from min-max.
 *           Applies to the quantizers at the target widths; the first/last
 *           layer's wider quantizers keep their MSE ranges. */
#ifndef NNQ_QAT_QAT_H
#define NNQ_QAT_QAT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "ops/executor.h"
#include "quant/qsim.h"
#include "train/trainer.h"

typedef enum nnq_qat_method { NNQ_QAT_STE, NNQ_QAT_LSQ, NNQ_QAT_LSQ_PLUS } nnq_qat_method;
typedef enum nnq_qat_init { NNQ_QAT_INIT_MSE, NNQ_QAT_INIT_MINMAX, NNQ_QAT_INIT_LSQ } nnq_qat_init;

const char *nnq_qat_method_name(nnq_qat_method m);
/* "ste", "lsq", "lsq+"; false for anything else. */
bool nnq_qat_method_parse(const char *s, nnq_qat_method *out);
const char *nnq_qat_init_name(nnq_qat_init i);
/* "mse", "minmax", "lsq"; false for anything else. */
bool nnq_qat_init_parse(const char *s, nnq_qat_init *out);

typedef struct nnq_qat_options {
    nnq_qat_method method;   /* default lsq */
    nnq_qat_init init;       /* default mse */
    nnq_qsim_options qsim;   /* default W4A4, per-channel weights, first/last at 8 */
    int64_t calib_n;         /* calibration images for initialisation (default 1024) */
    int calib_batch;         /* default 64 */
    float ema;               /* ste: running-range averaging constant (0: fixed ranges) */
    bool keep_bn;            /* per-channel weights: BN kept in training (default true) */
    float qlr_mult;          /* quantizer scales' lr = this x the scheduled lr (default 0.1) */
    float distill_t;         /* > 0: distillation from the teacher at this temperature */
    float distill_alpha;     /* weight of the distillation term vs cross-entropy
                                (default 1: distillation only) */
    int lsqp_steps;          /* lsq+ activation init: gradient steps (default 300) */
    int threads;             /* 0: all cores */
} nnq_qat_options;

void nnq_qat_options_default(nnq_qat_options *o);

/* Training-side state of sim quantizer i (index as in sim->quant). */
typedef struct nnq_qat_quant {
    bool learn_scale, learn_zp;
    float grad_scale; /* LSQ's g on the FakeQuant node (1: none) */
    float zp_real;    /* lsq+ activations: the real-valued initial offset */
    int ema_lo, ema_hi; /* ste with ema: running range initializers in g (-1: none) */
} nnq_qat_quant;

/* A BatchNormalization put back into g after layer `layer` of sim. */
typedef struct nnq_qat_bn {
    int layer;
    int conv_out;               /* value in g: the layer's own output, BN's input */
    int scale, bias, mean, var; /* BN initializers in g */
    int shifted_bias;           /* initializer in g: beta plus the folded bias's
                                   int32 rounding, BN's bias in inference
                                   (nnq_qat_bn_shift) */
    float eps;
} nnq_qat_bn;

typedef struct nnq_qat {
    nnq_qat_options opt;
    nnq_graph *teacher; /* owned, prepared */
    nnq_qsim *sim;      /* owned */
    nnq_graph *g;       /* owned: the trainable simulation */
    nnq_qat_quant *q;   /* [sim->n_quant] */
    int n_bn;
    nnq_qat_bn *bn;
    int n_folded_bn;    /* BN nodes folded into the sim */
    nnq_exec *teacher_exec;  /* during training with distillation */
    int64_t export_clamped;  /* after export: folded weight integers that left the grid */
} nnq_qat;

/* Build the three graphs and initialise every quantizer from `calib`
 * (images only; labels are not read). model is not modified. */
nnq_status nnq_qat_create(const nnq_graph *model, const nnq_dataset *calib,
                          const nnq_qat_options *o, nnq_qat **out);
void nnq_qat_free(nnq_qat *q);

/* Train q->g with nnq_train (cfg as for it: epochs, batch, optimizer, lr,
 * schedule, weight decay, checkpoint/resume, stop, progress; its hooks
 * are replaced). Evaluation after each epoch runs the trainable
 * simulation (activation quantizers on, BN in inference mode). */
nnq_status nnq_qat_train(nnq_qat *q, const nnq_dataset *train, const nnq_dataset *test,
                         const nnq_train_config *cfg, nnq_train_result *out);

/* Re-estimate the running statistics of the BN nodes kept in g from n
 * images of d (cumulative averages of batch statistics, as PyTorch's
 * update_bn), quantizers on and BN on its own beta, as in training; then
 * the bias rounding follows the new statistics. No-op without kept BN. */
nnq_status nnq_qat_bn_reestimate(nnq_qat *q, const nnq_dataset *d, int64_t n, int64_t batch);

/* Write the trained parameters into q->sim (BN folded into weights, biases
 * and per-channel scales where kept) and sync it; then nnq_qsim_to_qdq and
 * nnq_qsim_write_encodings export it. Weight integers are those of the
 * training graph: a kept BN's layer gets weights q * s' on the grid of
 * s' = s |gamma| / sqrt(var + eps), sign(gamma) q (a negative gamma at
 * qmin of a signed grid leaves it and is clamped: counted in
 * q->export_clamped). */
nnq_status nnq_qat_export(nnq_qat *q);

/* ---- building blocks (exported for tests) ---- */

/* LSQ's gradient scale 1 / sqrt(n * qp) (qp < 1 taken as 1). */
float nnq_qat_grad_scale(int64_t n, int32_t qp);
/* LSQ init: 2 mean|v| / sqrt(qp) over n values `stride` apart. */
float nnq_qat_lsq_scale(const float *v, int64_t n, int64_t stride, int32_t qp);
/* LSQ+ weight init: max(|mu - 3 sigma|, |mu + 3 sigma|) / 2^(bits-1). */
float nnq_qat_lsqp_weight_scale(const float *v, int64_t n, int64_t stride, int bits);
/* Mean of (x - x_hat)^2 over n values, x_hat with scale s and offset
 * round(clamp(z)) on [qmin, qmax] (FakeQuant with round_zero_point). */
double nnq_qat_qerror(const float *x, int64_t n, float s, float z, int32_t qmin, int32_t qmax);
/* LSQ+ activation init: (s, z) minimising nnq_qat_qerror on x by `steps`
 * Adam steps (log s and z, LSQ/LSQ+ gradients) from the min-max range;
 * returns the best pair seen (never worse than min-max). */
void nnq_qat_lsqp_fit(const float *x, int64_t n, int32_t qmin, int32_t qmax, int steps,
                      float *s, float *z);

/* Internal steps of nnq_qat_create, one file each. */
nnq_status nnq_qat_init_ranges(nnq_qat *q, const nnq_dataset *calib);   /* qat_init.c */
nnq_status nnq_qat_build_graph(nnq_qat *q);                            /* qat_prepare.c */
/* Bias scales in g from g's current input and weight scales (s_x s_w). */
void nnq_qat_sync_bias(nnq_qat *q);                                    /* qat_prepare.c */
/* on: each kept BN in g reads as its bias beta plus the int32 rounding of
 * its folded bias (from g's current parameters, scales and running
 * statistics), so g in inference is the export; off: beta, for training.
 * Between the two only BN's bias input moves: no node, no work in a step. */
nnq_status nnq_qat_bn_shift(nnq_qat *q, bool on);                      /* qat_export.c */
/* The BatchNormalization node of kept BN b in g, or -1. */
int nnq_qat_bn_node(const nnq_graph *g, const nnq_qat_bn *b);          /* qat_export.c */

#endif
