/* The architecture table: name -> builder. */
#include "models/models.h"

#include <string.h>

static const nnq_arch archs[] = {
    {"tiny", "two conv-BN-ReLU-max-pool layers and a linear layer; trains in seconds",
     nnq_model_tiny, 5e-4f},
    {"resnet20", "CIFAR ResNet-20 (16/32/64 channels, 3 blocks per stage, ~0.27M parameters)",
     nnq_model_resnet20, 5e-4f},
    {"mobilenetv2", "MobileNetV2, width 0.5, ReLU6, strides for 32x32 inputs",
     nnq_model_mobilenetv2, 4e-5f},
    {"mobilenetv2-hswish", "MobileNetV2 as above with HardSwish activations (opset 14)",
     nnq_model_mobilenetv2_hswish, 4e-5f},
};
#define N_ARCHS ((int)(sizeof archs / sizeof archs[0]))

const nnq_arch *nnq_arch_find(const char *name) {
    for (int i = 0; i < N_ARCHS; i++)
        if (strcmp(archs[i].name, name) == 0) return &archs[i];
    return NULL;
}

int nnq_arch_count(void) { return N_ARCHS; }

const nnq_arch *nnq_arch_at(int i) { return i >= 0 && i < N_ARCHS ? &archs[i] : NULL; }

nnq_status nnq_model_build(const char *name, uint64_t seed, nnq_graph **out) {
    *out = NULL;
    const nnq_arch *a = nnq_arch_find(name);
    if (!a) {
        char known[256] = "";
        for (int i = 0; i < N_ARCHS; i++) {
            if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
            strncat(known, archs[i].name, sizeof known - strlen(known) - 1);
        }
        return nnq_fail(NNQ_ERR_INVALID, "unknown architecture '%s' (known: %s)", name, known);
    }
    return a->build(seed, out);
}
