/* Optimizers with PyTorch 1.13 semantics, float32 state and arithmetic,
 * and gradient clipping by global norm.
 *
 * Per parameter p with gradient g, learning rate lr (the schedule's value
 * times the group's lr_mult) and weight decay wd (0 in groups without
 * weight decay):
 *   SGD    g += wd p;  b = momentum b + g (b starts at 0, so the first
 *          step gives b = g as PyTorch's does; no dampening);
 *          nesterov: p -= lr (g + momentum b), else p -= lr b;
 *          momentum 0: p -= lr g.
 *   Adam   g += wd p (L2, as torch.optim.Adam); t = steps taken + 1;
 *          m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 *   AdamW  p *= 1 - lr wd (decoupled), then Adam without the L2 term. */
#ifndef NNQ_TRAIN_OPTIM_H
#define NNQ_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "train/params.h"

typedef enum nnq_optim_kind {
    NNQ_OPTIM_SGD,
    NNQ_OPTIM_ADAM,
    NNQ_OPTIM_ADAMW
} nnq_optim_kind;

typedef struct nnq_optim_config {
    nnq_optim_kind kind;
    float weight_decay;
    float momentum;        /* SGD */
    bool nesterov;         /* SGD; needs momentum > 0 */
    float beta1, beta2;    /* Adam(W) */
    float eps;             /* Adam(W) */
} nnq_optim_config;

typedef struct nnq_optim {
    nnq_optim_config cfg;
    int64_t steps;   /* updates taken (Adam's bias correction) */
    size_t total;    /* floats in each state array (= params' total) */
    int n_state;     /* state arrays used: SGD with momentum 1, Adam 2 */
    float *state[2]; /* SGD: momentum buffer; Adam: m, v; laid out like grads */
} nnq_optim;

/* Defaults for a kind: SGD momentum 0.9 nesterov; Adam betas 0.9/0.999,
 * eps 1e-8; weight decay 0. */
nnq_optim_config nnq_optim_defaults(nnq_optim_kind kind);
const char *nnq_optim_name(nnq_optim_kind kind);

/* Zeroed state for the parameters in ps (call again if ps changes). */
nnq_status nnq_optim_init(nnq_optim *o, const nnq_optim_config *cfg, const nnq_params *ps);
void nnq_optim_free(nnq_optim *o);

/* One update of every parameter; lr before the groups' multipliers. */
void nnq_optim_step(nnq_optim *o, nnq_params *ps, float lr);

/* sqrt(sum of every gradient element squared), accumulated in double. */
double nnq_grad_norm(const nnq_params *ps);
/* PyTorch's clip_grad_norm_: if the norm exceeds max_norm, scale every
 * gradient by max_norm / (norm + 1e-6). Returns the norm before clipping. */
double nnq_clip_grad_norm(nnq_params *ps, double max_norm);

#endif
