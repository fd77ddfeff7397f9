/* Internal to the float-graph passes (bn_fold.c, cle.c, bias_absorb.c):
 * Conv / Gemm layers with constant weights seen per channel, making their
 * parameters private before a pass rewrites them, and the layer pairs
 * joined by at most one activation that CLE and bias absorption act on. */
#ifndef NNQ_PTQ_FLOAT_LAYER_H
#define NNQ_PTQ_FLOAT_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "ir/graph.h"

/* A Conv (W [M, C/groups, k...]) or Gemm (W [in, out], or [out, in] with
 * transB) whose weight and bias hold float data. Input channel i of a conv
 * sits at W[o, i % (C/groups)] for the M/groups outputs o of its group. */
typedef struct nnq_flayer {
    int node;
    bool gemm;
    bool trans_a, trans_b; /* Gemm only */
    int w, b;              /* weight and bias values; b -1 if absent */
    int64_t out_ch, in_ch; /* M and C */
    int64_t groups;        /* 1 for Gemm */
    int64_t taps;          /* kernel elements per (o, i); 1 for Gemm */
} nnq_flayer;

/* Describe node `node` as a layer; false (no error) if it is not a Conv or
 * Gemm with a constant float weight and bias of the expected shapes. */
bool nnq_flayer_get(const nnq_graph *g, int node, nnq_flayer *l);

/* Element offset of W[o, i, t] for output o, global input channel i (of
 * o's group) and kernel tap t. */
int64_t nnq_flayer_at(const nnq_flayer *l, int64_t o, int64_t i, int64_t t);
/* The first and one-past-last output channel reading input channel i. */
void nnq_flayer_in_outputs(const nnq_flayer *l, int64_t i, int64_t *o0, int64_t *o1);

/* max |W| over output channel o, and over input channel i. */
double nnq_flayer_out_range(const nnq_graph *g, const nnq_flayer *l, int64_t o);
double nnq_flayer_in_range(const nnq_graph *g, const nnq_flayer *l, int64_t i);
/* W[o, ...] *= f, and W[:, i, ...] *= f (rounded to float once). */
void nnq_flayer_scale_out(nnq_graph *g, const nnq_flayer *l, int64_t o, double f);
void nnq_flayer_scale_in(nnq_graph *g, const nnq_flayer *l, int64_t i, double f);

/* Give the layer's weight (and its bias if present and with_bias) values of
 * its own: an initializer read by another node or slot, a graph output or
 * a folded constant is cloned into a new initializer first, so a rewrite
 * cannot change anything else. Updates l->w / l->b. */
nnq_status nnq_flayer_make_private(nnq_graph *g, nnq_flayer *l, bool with_bias);

/* The layer's own bias as out_ch floats: created (zero) if absent, a
 * broadcast Gemm C widened, Gemm's beta multiplied in (and set to 1).
 * NNQ_ERR_UNSUPPORTED for a Gemm C that is not per output channel. */
nnq_status nnq_flayer_bias(nnq_graph *g, nnq_flayer *l, float **out);

/* The scalar float value of v if it is constant (initializer, folded
 * constant, or a Constant node's output); false otherwise. */
bool nnq_flayer_const_scalar(const nnq_graph *g, int v, double *out);

/* The activation between two layers of a pair. */
typedef enum nnq_fact {
    NNQ_FACT_NONE,  /* layer 2 reads layer 1's output directly */
    NNQ_FACT_RELU,  /* Relu, or Clip(0, +inf) */
    NNQ_FACT_LEAKY, /* LeakyRelu */
    NNQ_FACT_PRELU, /* PRelu */
    NNQ_FACT_RELU6, /* Clip(0, 6): CLE turns it into a capped Relu */
    NNQ_FACT_RELU_CAP /* Relu then Min with a per-channel constant u: min(relu(x), u).
                         Scaling channel i by 1/s scales u_i by 1/s: exact. */
} nnq_fact;

/* Layer 1 → (activation) → layer 2, where layer 1's output (`mid`) and the
 * activation's output are each read by exactly one node and are not graph
 * outputs, and layer 2 takes it as its data input with matching channels. */
typedef struct nnq_fpair {
    nnq_flayer l1, l2;
    int act;      /* activation node, -1 for none */
    nnq_fact kind;
    int cap;      /* NNQ_FACT_RELU_CAP: the Min node, else -1 */
    int cap_value; /* ... and its per-channel constant (an initializer), else -1 */
    int mid;      /* layer 1's output value (pre-activation) */
} nnq_fpair;

/* True if constant value v can cap channels of a layer's output: float,
 * one element per channel (`channels`), every other dimension 1, laid out
 * to broadcast against an output of rank out_rank with channels on axis 1. */
bool nnq_flayer_is_channel_cap(const nnq_graph *g, int v, int64_t channels, int out_rank);

/* Every such pair in g, in node order (*out malloc'd, caller frees). */
nnq_status nnq_flayer_pairs(const nnq_graph *g, nnq_fpair **out, int *n);

#endif
