/* The parameter store: every trainable tensor of a graph, with its
 * gradient, in parameter groups that each carry a learning-rate multiplier
 * and a weight-decay flag. Optimizers (optim.h) keep their state in arrays
 * laid out like the flat gradient block.
 *
 * Parameters are float initializers read by a trainable input slot: Conv W
 * and B, Gemm A/B/C, MatMul inputs, BatchNormalization scale and B, PRelu
 * slope. Their data stays in the graph (the optimizer updates it in place,
 * so exporting the graph exports the trained model). Training state that
 * is not a parameter -- BN running mean and variance, which a training
 * forward updates in place -- is listed separately, for checkpoints. Other
 * float initializers (Clip bounds, constants) stay constant.
 *
 * Default groups: NNQ_GROUP_WEIGHTS (rank >= 2: conv and linear weights,
 * with weight decay) and NNQ_GROUP_NO_DECAY (rank <= 1: biases and BN
 * scale/shift, without). Later passes add groups of their own (quantizer
 * scales and offsets with their own learning rate) with
 * nnq_params_add_group + nnq_params_add, then call nnq_params_alloc again. */
#ifndef NNQ_TRAIN_PARAMS_H
#define NNQ_TRAIN_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "ir/graph.h"

#define NNQ_MAX_PARAM_GROUPS 8
#define NNQ_GROUP_WEIGHTS 0
#define NNQ_GROUP_NO_DECAY 1

typedef struct nnq_param_group {
    char name[32];
    float lr_mult;     /* multiplies the scheduled learning rate */
    bool weight_decay; /* whether the optimizer's weight decay applies */
} nnq_param_group;

typedef struct nnq_param {
    int value;      /* graph value (a float initializer) */
    int group;
    int64_t numel;
    size_t offset;  /* into the flat gradient and optimizer-state arrays */
    float *data;    /* the initializer's data, updated in place */
    float *grad;    /* grads + offset, after nnq_params_alloc */
} nnq_param;

typedef struct nnq_params {
    nnq_graph *g;
    int n_groups;
    nnq_param_group groups[NNQ_MAX_PARAM_GROUPS];
    int n, cap;
    nnq_param *p;
    int n_state;
    int *state;        /* values that are training state (BN running stats) */
    size_t total;      /* floats over all parameters */
    float *grads;      /* [total], one block, 64-byte aligned */
} nnq_params;

/* Collect the parameters and state of a prepared graph; allocates the
 * gradient block. Fails if an initializer is both a parameter and state,
 * or a parameter is not float32. */
nnq_status nnq_params_init(nnq_params *ps, nnq_graph *g);
void nnq_params_free(nnq_params *ps);

nnq_status nnq_params_add_group(nnq_params *ps, const char *name, float lr_mult,
                                bool weight_decay, int *out_group);
/* Register float initializer `value` as a parameter of `group` (no-op if
 * it is one already). Call nnq_params_alloc before the next backward. */
nnq_status nnq_params_add(nnq_params *ps, int value, int group);
/* List float initializer `value` as training state (saved in checkpoints,
 * not trained; no-op if listed already). Fails if it is a parameter. */
nnq_status nnq_params_add_state(nnq_params *ps, int value);
/* (Re)allocate the gradient block after parameters were added. */
nnq_status nnq_params_alloc(nnq_params *ps);

void nnq_params_zero_grad(nnq_params *ps);
/* Index of the parameter holding `value`, or -1. */
int nnq_params_find(const nnq_params *ps, int value);
/* Trainable element count. */
int64_t nnq_params_count(const nnq_params *ps);
const char *nnq_params_name(const nnq_params *ps, int i);

#endif
