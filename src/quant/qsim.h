/* Quantization simulation (QuantSim): a float graph with FakeQuant nodes
 * placed where an integer runtime quantizes (../shared/QUANTIZATION.md §1):
 *
 *   - every weight of a Conv / Gemm / MatMul layer (per-channel along the
 *     output-channel axis, or per-tensor);
 *   - every float graph input;
 *   - each layer's output AFTER its fused activation: Conv/Gemm/MatMul/Add
 *     followed (as its only reader) by Relu or Clip is one layer, quantized
 *     once, after the activation;
 *   - Add and Concat outputs, and the output of any other computing op;
 *   - MaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Identity,
 *     Dropout and Pad keep their input's grid: no quantizer;
 *   - AveragePool, GlobalAveragePool and ReduceMean re-quantize to their
 *     input's grid (a quantizer TIED to the input's: same s and z);
 *   - biases: 32-bit, scale s_x * s_w (per output channel), zero point 0,
 *     as an integer runtime adds them to its int32 accumulator. Only when
 *     the layer's input and weights are at most 8 bits: wider grids need a
 *     64-bit accumulator, and their bias is left in float.
 *
 * The simulation graph is a clone of the float graph: every value of the
 * float graph keeps its index in sim->g (FakeQuant nodes and their
 * parameters are appended), so passes can read the same value in both.
 * Node indices differ (the sim graph is re-sorted). FakeQuant nodes are
 * op "FakeQuant" in domain "com.nnq": inputs (X, scale, zero_point), attrs
 * qmin, qmax, axis, enabled (ops/quantize.c); the quantizer parameters here
 * are the source of truth and nnq_qsim_sync() writes them into the graph. */
#ifndef NNQ_QUANT_QSIM_H
#define NNQ_QUANT_QSIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/progress.h"
#include "core/status.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "ops/op.h" /* NNQ_DOMAIN */
#include "quant/quantizer.h"
#include "quant/range.h"

typedef enum nnq_qrole {
    NNQ_QROLE_WEIGHT,
    NNQ_QROLE_ACT,
    NNQ_QROLE_BIAS
} nnq_qrole;

typedef struct nnq_qsim_quant {
    nnq_qrole role;
    int node;     /* FakeQuant node in sim->g */
    int input;    /* value it quantizes: weight/bias initializer or activation */
    int output;   /* the FakeQuant's output value */
    int scale_value, zero_point_value; /* its parameter initializers */
    int layer;    /* index into sim->layers of the layer owning the weight or
                     bias, or producing the activation (-1: graph input or a
                     non-layer op such as Add) */
    int tied;     /* -1, or the quantizer whose (s, z) this one reuses */
    bool enabled; /* false: FakeQuant passes its input through */
    bool is_logits; /* activation that is a graph output (ce range applies) */
    nnq_quantizer q;
} nnq_qsim_quant;

/* A Conv / Gemm / MatMul with a constant weight (plus its fused activation). */
typedef struct nnq_qsim_layer {
    char *name;       /* node name (or label) */
    int node;         /* in sim->g */
    int weight, bias; /* float initializer values (bias -1 if none) */
    int w_axis;       /* output-channel axis of the weight */
    int input;        /* the layer's input value in the FLOAT graph */
    int pre_act;      /* the layer node's own output value */
    int act_node;     /* fused Relu/Clip node in sim->g, or -1 */
    int cap_node;     /* Min(act, per-channel constant) after a fused Relu
                         (CLE's exact ReLU6), or -1 */
    int output;       /* value after the fused activation (pre-FakeQuant) */
    int weight_q, bias_q, input_q, output_q; /* quantizer indices or -1 */
    bool is_first, is_last, keep_float;
} nnq_qsim_layer;

typedef struct nnq_layer_override {
    const char *name; /* layer (node) name */
    int wbits, abits; /* 0: unchanged */
    bool keep_float;  /* leave the layer's weights and output in float */
} nnq_layer_override;

typedef struct nnq_qsim_options {
    nnq_qconfig weights;  /* default 8-bit symmetric signed per-channel */
    nnq_qconfig acts;     /* default 8-bit asymmetric unsigned per-tensor */
    int first_last_bits;  /* > 0: first and last layer's weights, their input
                             quantizers and the logits at this width */
    int n_overrides;
    const nnq_layer_override *overrides;
} nnq_qsim_options;

typedef struct nnq_qsim {
    nnq_graph *g; /* owned, prepared */
    int n_quant;
    nnq_qsim_quant *quant;
    int n_layers;
    nnq_qsim_layer *layers;
    nnq_qsim_options opt;
    int *value_quant; /* [g->n_values at creation]: quantizer applied to
                         value v (its FakeQuant input), or -1 */
} nnq_qsim;

void nnq_qsim_options_default(nnq_qsim_options *o);

/* Build the simulation from a float graph (not modified; must prepare).
 * Unknown layer names in overrides fail naming the layer. */
nnq_status nnq_qsim_create(const nnq_graph *float_graph, const nnq_qsim_options *o,
                           nnq_qsim **out);
void nnq_qsim_free(nnq_qsim *s);

/* Write every quantizer's (s, z) and enabled flag into the graph and
 * recompute the constant FakeQuant outputs of weights and biases (bias
 * scales follow s_x * s_w). Call after changing ranges, weights, biases or
 * enabled flags, before running. Buffers are updated in place, so an
 * executor created on sim->g stays valid. */
nnq_status nnq_qsim_sync(nnq_qsim *s);

/* Enable or disable all quantizers of one role (then sync). */
void nnq_qsim_enable_role(nnq_qsim *s, nnq_qrole role, bool on);

/* Weight ranges from the current float weights: minmax or mse, per
 * channel or per tensor as configured. */
nnq_status nnq_qsim_set_weight_ranges(nnq_qsim *s, nnq_range_method m);

typedef struct nnq_calib_options {
    nnq_range_method method;        /* activations: minmax, mse or percentile */
    nnq_range_method logits_method; /* graph-output activations: also ce */
    double percentile;              /* tail mass cut, percent (default 0.01) */
    int64_t n;                      /* images (0: all of d) */
    int batch;                      /* images per run (default 64) */
    int threads;
    nnq_progress progress;          /* "calibration", per batch */
} nnq_calib_options;

void nnq_calib_options_default(nnq_calib_options *o);

/* Activation ranges from calibration data: one streaming pass with weight
 * quantizers as they are and activation quantizers disabled, a histogram
 * per activation quantizer (logits rows kept for ce), then ranges set,
 * activation quantizers enabled, synced. Labels are never read. */
nnq_status nnq_qsim_calibrate(nnq_qsim *s, const nnq_dataset *d, const nnq_calib_options *o);

/* Index of the layer whose node is named `name`, or -1. */
int nnq_qsim_find_layer(const nnq_qsim *s, const char *name);

#endif
