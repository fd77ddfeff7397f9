/* Built-in architectures: graph builders producing ordinary nnq graphs
 * (default-domain opset 13, 14 where HardSwish is used) with
 * deterministically initialised weights, for Fashion-MNIST-sized inputs.
 *
 * Every architecture takes input 'input' [N, 1, 32, 32] and gives output
 * 'logits' [N, 10]; initializers carry PyTorch state-dict names
 * ("layer1.0.conv1.weight", "bn1.running_var"), so PyTorch peers and
 * golden files map onto them by name. Convs followed by BN have no bias. */
#ifndef NNQ_MODELS_MODELS_H
#define NNQ_MODELS_MODELS_H

#include <stdint.h>

#include "core/status.h"
#include "ir/graph.h"

#define NNQ_MODEL_IN_CHANNELS 1
#define NNQ_MODEL_IN_SIZE 32
#define NNQ_MODEL_CLASSES 10

typedef nnq_status (*nnq_arch_build_fn)(uint64_t seed, nnq_graph **out);

typedef struct nnq_arch {
    const char *name;
    const char *summary;
    nnq_arch_build_fn build;
    float default_weight_decay; /* what training uses unless told otherwise */
} nnq_arch;

/* Lookup by name; NULL if unknown. */
const nnq_arch *nnq_arch_find(const char *name);
int nnq_arch_count(void);
const nnq_arch *nnq_arch_at(int i);

/* Build architecture `name` with weights drawn from `seed`. */
nnq_status nnq_model_build(const char *name, uint64_t seed, nnq_graph **out);

/* The builders (one file each). */
nnq_status nnq_model_tiny(uint64_t seed, nnq_graph **out);
nnq_status nnq_model_resnet20(uint64_t seed, nnq_graph **out);
nnq_status nnq_model_mobilenetv2(uint64_t seed, nnq_graph **out);
nnq_status nnq_model_mobilenetv2_hswish(uint64_t seed, nnq_graph **out);

#endif
