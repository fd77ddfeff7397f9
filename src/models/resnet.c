/* `resnet20`: the CIFAR ResNet of He et al. 2016 (section 4.2), depth
 * 6n+2 with n = 3, on 1-channel 32x32 images:
 *   conv1 3x3 1->16, bn1, relu
 *   layer1..3: 3 basic blocks each, 16/32/64 channels, the first block of
 *     layers 2 and 3 with stride 2; a block is conv3x3-bn-relu-conv3x3-bn,
 *     plus the identity, or where the shape changes a projection shortcut
 *     (1x1 conv stride 2 + BN, torchvision's "downsample"), then relu
 *   global average pool, fc 64->10.
 * Names follow torchvision's ResNet: layer2.0.conv1.weight,
 * layer2.0.downsample.0.weight (conv), layer2.0.downsample.1.* (BN), fc.*. */
#include <stdio.h>

#include "models/builder.h"
#include "models/models.h"

#define BLOCKS_PER_STAGE 3

static int basic_block(nnq_builder *b, int x, const char *prefix, int64_t cin, int64_t cout,
                       int stride) {
    char m1[64], m2[64], m3[64], m4[64];
    snprintf(m1, sizeof m1, "%s.conv1", prefix);
    snprintf(m2, sizeof m2, "%s.bn1", prefix);
    snprintf(m3, sizeof m3, "%s.conv2", prefix);
    snprintf(m4, sizeof m4, "%s.bn2", prefix);
    int y = nnq_build_conv_bn_act(b, x, m1, m2, cin, cout, 3, stride, 1, NNQ_ACT_RELU);
    y = nnq_build_conv_bn_act(b, y, m3, m4, cout, cout, 3, 1, 1, NNQ_ACT_NONE);
    int shortcut = x;
    if (stride != 1 || cin != cout) {
        snprintf(m1, sizeof m1, "%s.downsample.0", prefix);
        snprintf(m2, sizeof m2, "%s.downsample.1", prefix);
        shortcut = nnq_build_conv(b, x, m1, cin, cout, 1, stride, 0, 1, false);
        shortcut = nnq_build_bn(b, shortcut, m2, cout);
    }
    return nnq_build_act(b, nnq_build_add(b, y, shortcut), NNQ_ACT_RELU);
}

nnq_status nnq_model_resnet20(uint64_t seed, nnq_graph **out) {
    static const int64_t widths[3] = {16, 32, 64};
    nnq_builder b;
    NNQ_TRY(nnq_builder_init(&b, "resnet20", 13, seed));
    int x = nnq_build_input(&b, "input", NNQ_MODEL_IN_CHANNELS, NNQ_MODEL_IN_SIZE,
                            NNQ_MODEL_IN_SIZE);
    x = nnq_build_conv_bn_act(&b, x, "conv1", "bn1", NNQ_MODEL_IN_CHANNELS, widths[0], 3, 1, 1,
                              NNQ_ACT_RELU);
    int64_t cin = widths[0];
    for (int s = 0; s < 3; s++) {
        for (int k = 0; k < BLOCKS_PER_STAGE; k++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, k);
            int stride = (s > 0 && k == 0) ? 2 : 1;
            x = basic_block(&b, x, prefix, cin, widths[s], stride);
            cin = widths[s];
        }
    }
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    x = nnq_build_gemm(&b, x, "fc", cin, NNQ_MODEL_CLASSES);
    return nnq_builder_finish(&b, x, "logits", out);
}
