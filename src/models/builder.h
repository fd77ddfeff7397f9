/* A small API for writing network graphs in C: each call appends one layer
 * (its node, its output value and its initializers) and returns the output
 * value's index.
 *
 * Errors are sticky: the first failure is recorded in the builder, later
 * calls do nothing and return -1, and nnq_builder_finish reports it. So an
 * architecture reads as a plain list of layers, without a check per line.
 *
 * Names: a layer with parameters takes a module name ("layer1.0.conv1");
 * its initializers are "<module>.weight", "<module>.bias", and for BN also
 * "<module>.running_mean" / "<module>.running_var", as in a PyTorch
 * state dict. Its node and output value are named after the module too.
 * Layers without parameters get automatic names "<OpType>_<k>".
 *
 * Initialisation is deterministic from the seed (same seed, same weights
 * on every machine: integer RNG, Box-Muller in double):
 *   conv weight  Kaiming normal, fan_out mode, gain sqrt(2) (torchvision):
 *                std = sqrt(2 / (out_channels * kh * kw));
 *   conv bias    zero;
 *   BN           gamma 1, beta 0, running mean 0, running var 1,
 *                momentum attribute 0.9 (PyTorch's 0.1), epsilon 1e-5;
 *   Gemm (fc)    PyTorch's nn.Linear default: weight and bias uniform in
 *                [-1/sqrt(in), 1/sqrt(in)].
 */
#ifndef NNQ_MODELS_BUILDER_H
#define NNQ_MODELS_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "ir/graph.h"

#define NNQ_BN_MOMENTUM 0.9f
#define NNQ_BN_EPSILON 1e-5f

typedef struct nnq_builder {
    nnq_graph *g;
    uint64_t rng;      /* splitmix64 state for initialisation */
    int counter;       /* automatic-name counter */
    int clip_min, clip_max; /* shared ReLU6 bounds, -1 until first used */
    nnq_status status; /* first failure; NNQ_OK while building */
} nnq_builder;

typedef enum nnq_act {
    NNQ_ACT_NONE,
    NNQ_ACT_RELU,
    NNQ_ACT_RELU6,     /* Clip(x, 0, 6) */
    NNQ_ACT_HARDSWISH  /* needs opset >= 14 */
} nnq_act;

/* Start a graph named `name` for the default-domain opset `opset`. */
nnq_status nnq_builder_init(nnq_builder *b, const char *name, int64_t opset, uint64_t seed);
/* Hand over the graph (NULL on failure) and report the first error. On
 * failure the graph is freed. */
nnq_status nnq_builder_finish(nnq_builder *b, int output, const char *output_name,
                              nnq_graph **out);

/* Graph input [N, c, h, w] with symbolic batch "N". */
int nnq_build_input(nnq_builder *b, const char *name, int64_t c, int64_t h, int64_t w);

/* Conv 2-D, square kernel k, same stride and padding on both axes. */
int nnq_build_conv(nnq_builder *b, int x, const char *module, int64_t cin, int64_t cout, int k,
                   int stride, int pad, int groups, bool bias);
int nnq_build_bn(nnq_builder *b, int x, const char *module, int64_t channels);
int nnq_build_act(nnq_builder *b, int x, nnq_act act);
int nnq_build_add(nnq_builder *b, int x, int y);
int nnq_build_maxpool(nnq_builder *b, int x, int k, int stride);
int nnq_build_gap(nnq_builder *b, int x);
int nnq_build_flatten(nnq_builder *b, int x);
/* Fully connected: Gemm(x, W^T) + bias, W [out, in] (PyTorch layout). */
int nnq_build_gemm(nnq_builder *b, int x, const char *module, int64_t in, int64_t out);

/* Conv (no bias) -> BN -> activation: the common block. `module` names
 * the conv, `bn_module` the BN. */
int nnq_build_conv_bn_act(nnq_builder *b, int x, const char *module, const char *bn_module,
                          int64_t cin, int64_t cout, int k, int stride, int groups, nnq_act act);

#endif
