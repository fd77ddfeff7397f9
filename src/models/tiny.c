/* `tiny`: a small conv net that trains in seconds, for tests.
 *   conv1 1->8 3x3 pad 1 -> bn1 -> Relu -> MaxPool 2
 *   conv2 8->16 3x3 pad 1 -> bn2 -> Relu -> MaxPool 2
 *   GlobalAveragePool -> Flatten -> fc 16->10 */
#include "models/builder.h"
#include "models/models.h"

nnq_status nnq_model_tiny(uint64_t seed, nnq_graph **out) {
    nnq_builder b;
    NNQ_TRY(nnq_builder_init(&b, "tiny", 13, seed));
    int x = nnq_build_input(&b, "input", NNQ_MODEL_IN_CHANNELS, NNQ_MODEL_IN_SIZE,
                            NNQ_MODEL_IN_SIZE);
    x = nnq_build_conv_bn_act(&b, x, "conv1", "bn1", NNQ_MODEL_IN_CHANNELS, 8, 3, 1, 1,
                              NNQ_ACT_RELU);
    x = nnq_build_maxpool(&b, x, 2, 2);
    x = nnq_build_conv_bn_act(&b, x, "conv2", "bn2", 8, 16, 3, 1, 1, NNQ_ACT_RELU);
    x = nnq_build_maxpool(&b, x, 2, 2);
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    x = nnq_build_gemm(&b, x, "fc", 16, NNQ_MODEL_CLASSES);
    return nnq_builder_finish(&b, x, "logits", out);
}
