/* BatchNormalization, inference form: per channel c of X (N, C, D...),
 * y = (x - mean[c]) * scale[c] / sqrt(var[c] + epsilon) + B[c],
 * folded to y = x * a[c] + b[c]. Training mode (batch statistics, running
 * mean/var outputs) is not implemented. */
#include <math.h>

#include "ops/op.h"

#define PARALLEL_MIN_WORK 65536

static const char *const bn_inputs[5] = {"X", "scale", "B", "input_mean", "input_var"};

static nnq_status bn_check(const nnq_op_args *a) {
    char s[64];
    if (nnq_node_attr_int(a->node, "training_mode", 0) != 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                           "training_mode=1 (batch statistics) is not supported; "
                           "export the model in inference mode");
    if (nnq_node_attr_int(a->node, "spatial", 1) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "spatial=0 (per-element statistics) is not supported");
    for (int i = 1; i < a->n_out; i++)
        if (a->out[i])
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "output %d (training statistics) is not supported", i);
    for (int i = 0; i < 5; i++) {
        if (!a->in[i])
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input %s is missing", bn_inputs[i]);
        if (a->in[i]->dtype != NNQ_DT_FLOAT)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "input %s has dtype %s; only float32 is supported", bn_inputs[i],
                               nnq_dtype_name(a->in[i]->dtype));
    }
    const nnq_tensor *x = a->in[0];
    if (x->rank < 2)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "X is %s, expected rank >= 2 (N, C, ...)",
                           nnq_shape_str(x, s, sizeof s));
    int64_t c = x->dims[1];
    for (int i = 1; i < 5; i++) {
        const nnq_tensor *t = a->in[i];
        if (t->rank != 1 || (c >= 0 && t->dims[0] >= 0 && t->dims[0] != c))
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "%s is %s, expected a vector of %lld channels",
                               bn_inputs[i], nnq_shape_str(t, s, sizeof s), (long long)c);
    }
    return NNQ_OK;
}

static nnq_status bn_infer(const nnq_op_args *a) {
    NNQ_TRY(bn_check(a));
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, a->in[0]->rank, a->in[0]->dims);
}

static nnq_status bn_forward(const nnq_op_args *a) {
    NNQ_TRY(bn_check(a));
    const nnq_tensor *x = a->in[0];
    const float *xs = nnq_f32(x), *scale = nnq_f32(a->in[1]), *shift = nnq_f32(a->in[2]);
    const float *mean = nnq_f32(a->in[3]), *var = nnq_f32(a->in[4]);
    float *y = nnq_f32(a->out[0]);
    float eps = nnq_node_attr_float(a->node, "epsilon", 1e-5f);
    int64_t n = x->dims[0], c = x->dims[1];
    int64_t size = nnq_shape_numel(x->rank - 2, x->dims + 2); /* elements per channel */
    int64_t planes = n * c;
    int threads = a->threads > 1 && planes * size >= PARALLEL_MIN_WORK ? a->threads : 1;

    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        int64_t ch = p % c;
        float mul = scale[ch] / sqrtf(var[ch] + eps);
        float add = shift[ch] - mean[ch] * mul;
        const float *xp = xs + p * size;
        float *yp = y + p * size;
        #pragma omp simd
        for (int64_t i = 0; i < size; i++) yp[i] = xp[i] * mul + add;
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_BatchNormalization = {
    .op_type = "BatchNormalization",
    .min_inputs = 5, .max_inputs = 5,
    .min_outputs = 1, .max_outputs = 5,
    .infer = bn_infer,
    .forward = bn_forward,
};
