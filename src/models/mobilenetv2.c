/* `mobilenetv2` and `mobilenetv2-hswish`: MobileNetV2 (Sandler et al.
 * 2018) as torchvision builds it, width multiplier 0.5, for 1x32x32 inputs.
 *
 * Choices (the issue leaves them open):
 *  - torchvision's block table (expansion t, channels c, repeats n,
 *    stride s) with c scaled by 0.5 and rounded to a multiple of 8 the
 *    torchvision way (never below 90% of the scaled value):
 *      t  c->c'    n  s (torchvision)  s (here)
 *      1  16->8    1  1                1
 *      6  24->16   2  2                1   keep 32x32 in the first two stages
 *      6  32->16   3  2                2   32 -> 16
 *      6  64->32   4  2                2   16 -> 8
 *      6  96->48   3  1                1
 *      6  160->80  3  2                2   8 -> 4
 *      6  320->160 1  1                1
 *  - stem: conv 3x3 1->16 stride 1 (torchvision: 3->32*0.5 stride 2);
 *  - last conv 1x1 160->1280: torchvision never scales the last layer
 *    below 1280 (it uses max(1, width) there), and we follow it;
 *  - classifier: global average pool, Linear 1280->10; torchvision's
 *    Dropout(0.2) before it is left out (nnq has no training-mode dropout);
 *  - activation ReLU6 = Clip(0, 6) after every conv except the projection
 *    (linear bottleneck), or HardSwish in the -hswish variant;
 *  - residual Add where stride is 1 and input/output channels are equal.
 * Names follow torchvision's state dict: features.0.0 (stem conv),
 * features.0.1 (its BN), features.k.conv.* for block k, features.18.*
 * (last conv), classifier.1 (the linear layer). */
#include <stdio.h>

#include "models/builder.h"
#include "models/models.h"

#define WIDTH_NUM 1 /* width multiplier 0.5 = 1/2 */
#define WIDTH_DEN 2
#define STEM_CHANNELS 32
#define LAST_CHANNELS 1280

typedef struct block_cfg {
    int t, c, n, s;
} block_cfg;

static const block_cfg blocks[] = {
    {1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2}, {6, 64, 4, 2},
    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
};
#define N_STAGES ((int)(sizeof blocks / sizeof blocks[0]))

/* torchvision's _make_divisible(v, 8) for v = c * WIDTH. */
static int64_t scaled_channels(int c) {
    double v = (double)c * WIDTH_NUM / WIDTH_DEN;
    int64_t r = (int64_t)(v + 4) / 8 * 8;
    if (r < 8) r = 8;
    if ((double)r < 0.9 * v) r += 8;
    return r;
}

static int inverted_residual(nnq_builder *b, int x, int index, int64_t inp, int64_t oup,
                             int stride, int t, nnq_act act) {
    char m[64], bn[64];
    int64_t hidden = inp * t;
    int layer = 0, y = x;
    if (t != 1) {
        snprintf(m, sizeof m, "features.%d.conv.%d.0", index, layer);
        snprintf(bn, sizeof bn, "features.%d.conv.%d.1", index, layer);
        y = nnq_build_conv_bn_act(b, y, m, bn, inp, hidden, 1, 1, 1, act);
        layer++;
    }
    snprintf(m, sizeof m, "features.%d.conv.%d.0", index, layer);
    snprintf(bn, sizeof bn, "features.%d.conv.%d.1", index, layer);
    y = nnq_build_conv_bn_act(b, y, m, bn, hidden, hidden, 3, stride, (int)hidden, act);
    layer++;
    snprintf(m, sizeof m, "features.%d.conv.%d", index, layer);
    snprintf(bn, sizeof bn, "features.%d.conv.%d", index, layer + 1);
    y = nnq_build_conv_bn_act(b, y, m, bn, hidden, oup, 1, 1, 1, NNQ_ACT_NONE);
    if (stride == 1 && inp == oup) y = nnq_build_add(b, y, x);
    return y;
}

static nnq_status build(const char *name, int64_t opset, nnq_act act, uint64_t seed,
                        nnq_graph **out) {
    nnq_builder b;
    NNQ_TRY(nnq_builder_init(&b, name, opset, seed));
    int x = nnq_build_input(&b, "input", NNQ_MODEL_IN_CHANNELS, NNQ_MODEL_IN_SIZE,
                            NNQ_MODEL_IN_SIZE);
    int64_t cin = scaled_channels(STEM_CHANNELS);
    x = nnq_build_conv_bn_act(&b, x, "features.0.0", "features.0.1", NNQ_MODEL_IN_CHANNELS, cin,
                              3, 1, 1, act);
    int index = 1;
    for (int s = 0; s < N_STAGES; s++) {
        int64_t cout = scaled_channels(blocks[s].c);
        for (int k = 0; k < blocks[s].n; k++, index++) {
            x = inverted_residual(&b, x, index, cin, cout, k == 0 ? blocks[s].s : 1, blocks[s].t,
                                  act);
            cin = cout;
        }
    }
    char m[32], bn[32];
    snprintf(m, sizeof m, "features.%d.0", index);
    snprintf(bn, sizeof bn, "features.%d.1", index);
    x = nnq_build_conv_bn_act(&b, x, m, bn, cin, LAST_CHANNELS, 1, 1, 1, act);
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    x = nnq_build_gemm(&b, x, "classifier.1", LAST_CHANNELS, NNQ_MODEL_CLASSES);
    return nnq_builder_finish(&b, x, "logits", out);
}

nnq_status nnq_model_mobilenetv2(uint64_t seed, nnq_graph **out) {
    return build("mobilenetv2", 13, NNQ_ACT_RELU6, seed, out);
}

nnq_status nnq_model_mobilenetv2_hswish(uint64_t seed, nnq_graph **out) {
    return build("mobilenetv2-hswish", 14, NNQ_ACT_HARDSWISH, seed, out);
}
