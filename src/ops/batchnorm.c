/* BatchNormalization over X (N, C, D...), per channel c:
 *   y = (x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c].
 *
 * Inference (running statistics in[3], in[4]) folds to y = x * a[c] + b[c].
 * Batch statistics (mean and biased variance over N and D...) are used when
 * a->training is set (nnq's trainer) or the node has training_mode=1
 * (ONNX opset 14+). Then:
 *   - a->saved holds mean[C] and inv_std[C] for backward;
 *   - with a->training, the running statistics in[3], in[4] (the trainer's
 *     own parameter buffers) are updated IN PLACE:
 *       running = momentum * running + (1 - momentum) * batch,
 *     using the UNBIASED batch variance (x N*D/(N*D - 1)) for the running
 *     variance, as PyTorch does, so nnq's training matches PyTorch's;
 *   - outputs 1 and 2 (running_mean, running_var), if present, get the
 *     ONNX definition's values: the same update with the BIASED variance,
 *     without touching the inputs (what the ONNX reference computes).
 * Backward: with batch statistics the full gradient through mean and
 * variance; otherwise BN is a per-channel affine map. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/op.h"

#define PARALLEL_MIN_WORK 65536

static const char *const bn_inputs[5] = {"X", "scale", "B", "input_mean", "input_var"};

static bool bn_batch_stats(const nnq_op_args *a) {
    return a->training || nnq_node_attr_int(a->node, "training_mode", 0) != 0;
}

static nnq_status bn_check(const nnq_op_args *a) {
    char s[64];
    if (nnq_node_attr_int(a->node, "spatial", 1) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "spatial=0 (per-element statistics) is not supported");
    for (int i = 1; i < a->n_out; i++) {
        if (!a->out[i]) continue;
        if (i > 2)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "output %d (saved statistics of opset < 14) is not supported", i);
        if (!bn_batch_stats(a))
            return nnq_op_fail(a, NNQ_ERR_INVALID,
                               "output %d (running statistics) needs training_mode=1", i);
    }
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
    for (int i = 1; i < a->n_out && i <= 2; i++)
        if (a->out[i]) NNQ_TRY(nnq_tensor_set_shape(a->out[i], NNQ_DT_FLOAT, 1, a->in[0]->dims + 1));
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, a->in[0]->rank, a->in[0]->dims);
}

/* Saved from a batch-statistics forward: mean[C], then inv_std[C]. */
static size_t bn_saved_size(const nnq_op_args *a) {
    if (!bn_batch_stats(a) || a->in[0]->rank < 2 || a->in[0]->dims[1] < 0) return 0;
    return 2 * sizeof(float) * (size_t)a->in[0]->dims[1];
}

typedef struct bn_shape {
    int64_t n, c, size; /* size: elements per (image, channel) plane */
    int threads;
} bn_shape;

static void bn_shape_of(const nnq_op_args *a, bn_shape *s) {
    const nnq_tensor *x = a->in[0];
    s->n = x->dims[0];
    s->c = x->dims[1];
    s->size = nnq_shape_numel(x->rank - 2, x->dims + 2);
    s->threads = a->threads > 1 && s->n * s->c * s->size >= PARALLEL_MIN_WORK ? a->threads : 1;
}

/* y = x * mul[c] + add[c], planes split over threads. */
static void bn_affine(const bn_shape *s, const float *x, const float *mul, const float *add,
                      float *y) {
    const int64_t planes = s->n * s->c, size = s->size;
    NNQ_PARALLEL_FOR(s->threads, p, planes, {
        int64_t ch = p % s->c;
        float m = mul[ch], b = add[ch];
        const float *xp = x + p * size;
        float *yp = y + p * size;
        _Pragma("omp simd")
        for (int64_t i = 0; i < size; i++) yp[i] = xp[i] * m + b;
    });
}

/* Batch mean and biased variance of channel ch, two passes (a plane at a
 * time in float, planes summed in double) for accuracy when |mean| is
 * large against the spread. */
static void bn_channel_stats(const bn_shape *s, const float *x, int64_t ch, double *mean,
                             double *var) {
    const int64_t size = s->size;
    const double count = (double)(s->n * size);
    double acc = 0;
    for (int64_t n = 0; n < s->n; n++) {
        const float *xp = x + (n * s->c + ch) * size;
        float t = 0;
        #pragma omp simd reduction(+ : t)
        for (int64_t i = 0; i < size; i++) t += xp[i];
        acc += t;
    }
    double mu = count > 0 ? acc / count : 0;
    float muf = (float)mu;
    acc = 0;
    for (int64_t n = 0; n < s->n; n++) {
        const float *xp = x + (n * s->c + ch) * size;
        float t = 0;
        #pragma omp simd reduction(+ : t)
        for (int64_t i = 0; i < size; i++) t += (xp[i] - muf) * (xp[i] - muf);
        acc += t;
    }
    *mean = mu;
    *var = count > 0 ? acc / count : 0;
}

static nnq_status bn_forward(const nnq_op_args *a) {
    NNQ_TRY(bn_check(a));
    bn_shape s;
    bn_shape_of(a, &s);
    const float *x = nnq_f32(a->in[0]), *scale = nnq_f32(a->in[1]), *shift = nnq_f32(a->in[2]);
    float *y = nnq_f32(a->out[0]);
    float eps = nnq_node_attr_float(a->node, "epsilon", 1e-5f);
    size_t need = 2 * sizeof(float) * (size_t)s.c;
    float *mul = malloc(need + sizeof(float)); /* mul[C], then add[C] */
    if (!mul) return nnq_op_fail(a, NNQ_ERR_NOMEM, "out of memory");
    float *add = mul + s.c;

    if (!bn_batch_stats(a)) {
        const float *mean = nnq_f32(a->in[3]), *var = nnq_f32(a->in[4]);
        for (int64_t c = 0; c < s.c; c++) {
            mul[c] = scale[c] / sqrtf(var[c] + eps);
            add[c] = shift[c] - mean[c] * mul[c];
        }
        bn_affine(&s, x, mul, add, y);
        free(mul);
        return NNQ_OK;
    }

    /* The trainer must keep the statistics for backward; a plain run of an
     * ONNX training_mode=1 node has nowhere to keep them and needs not. */
    bool keep = a->saved && a->saved_bytes >= need;
    if (a->training && !keep) {
        free(mul);
        return nnq_op_fail(a, NNQ_ERR_INVALID, "batch statistics need %zu saved bytes, got %zu",
                           need, a->saved_bytes);
    }
    float *saved_mean = keep ? a->saved : NULL, *saved_inv = keep ? saved_mean + s.c : NULL;
    float momentum = nnq_node_attr_float(a->node, "momentum", 0.9f);
    /* The trainer's running statistics, updated in place (see op.h). */
    float *run_mean = a->training ? (float *)nnq_f32(a->in[3]) : NULL;
    float *run_var = a->training ? (float *)nnq_f32(a->in[4]) : NULL;
    float *out_mean = a->n_out > 1 && a->out[1] ? nnq_f32(a->out[1]) : NULL;
    float *out_var = a->n_out > 2 && a->out[2] ? nnq_f32(a->out[2]) : NULL;
    const float *in_mean = nnq_f32(a->in[3]), *in_var = nnq_f32(a->in[4]);
    const double count = (double)(s.n * s.size);

    NNQ_PARALLEL_FOR(s.threads, c, s.c, {
        double mu, var;
        bn_channel_stats(&s, x, c, &mu, &var);
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        if (saved_mean) {
            saved_mean[c] = (float)mu;
            saved_inv[c] = inv;
        }
        mul[c] = scale[c] * inv;
        add[c] = shift[c] - (float)mu * mul[c];
        /* ONNX outputs first: in place, run_* may alias in_*. */
        if (out_mean) out_mean[c] = (float)(momentum * (double)in_mean[c] + (1 - momentum) * mu);
        if (out_var) out_var[c] = (float)(momentum * (double)in_var[c] + (1 - momentum) * var);
        if (run_mean) {
            double unbiased = count > 1 ? var * count / (count - 1) : var;
            run_mean[c] = (float)(momentum * (double)run_mean[c] + (1 - momentum) * mu);
            run_var[c] = (float)(momentum * (double)run_var[c] + (1 - momentum) * unbiased);
        }
    });
    bn_affine(&s, x, mul, add, y);
    free(mul);
    return NNQ_OK;
}

/* Sums over channel ch of dY and of dY * (x - mu): planes in float,
 * planes summed in double. */
static void bn_channel_grad_sums(const bn_shape *s, const float *x, const float *dy, int64_t ch,
                                 float mu, double *sum_dy, double *sum_dy_xc) {
    const int64_t size = s->size;
    double a1 = 0, a2 = 0;
    for (int64_t n = 0; n < s->n; n++) {
        const float *xp = x + (n * s->c + ch) * size, *gp = dy + (n * s->c + ch) * size;
        float t1 = 0, t2 = 0;
        #pragma omp simd reduction(+ : t1, t2)
        for (int64_t i = 0; i < size; i++) {
            t1 += gp[i];
            t2 += gp[i] * (xp[i] - mu);
        }
        a1 += t1;
        a2 += t2;
    }
    *sum_dy = a1;
    *sum_dy_xc = a2;
}

/* With xhat = (x - mu) * inv over the batch (count = N * D elements per
 * channel), dB = sum dy, dscale = sum dy * xhat and
 *   dx = scale * inv / count * (count * dy - dB - xhat * dscale);
 * the running statistics do not reach Y, so they get no gradient.
 * With running statistics (eval): dx = dy * scale * inv, dscale as above
 * with the running mean and inv, and the gradients of mean and var. */
static nnq_status bn_backward(const nnq_op_args *a) {
    float *dx, *dscale, *dshift, *dmean, *dvar;
    NNQ_TRY(bn_check(a));
    const nnq_tensor *dyt = a->out_grad ? a->out_grad[0] : NULL;
    if (!dyt) return NNQ_OK; /* the running-statistics outputs are not differentiable */
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    NNQ_TRY(nnq_op_in_grad(a, 1, &dscale));
    NNQ_TRY(nnq_op_in_grad(a, 2, &dshift));
    NNQ_TRY(nnq_op_in_grad(a, 3, &dmean));
    NNQ_TRY(nnq_op_in_grad(a, 4, &dvar));
    bn_shape s;
    bn_shape_of(a, &s);
    const float *x = nnq_f32(a->in[0]), *scale = nnq_f32(a->in[1]), *dy = nnq_f32(dyt);
    const bool batch = bn_batch_stats(a);
    float eps = nnq_node_attr_float(a->node, "epsilon", 1e-5f);
    const float *mean, *inv;
    size_t need = 2 * sizeof(float) * (size_t)s.c;
    if (batch && (!a->saved || a->saved_bytes < need))
        return nnq_op_fail(a, NNQ_ERR_INVALID, "backward needs the %zu bytes saved by forward",
                           need);
    /* Per channel: dx = dy * k1 + x * k2 + k3 (k2 = k3 = 0 in eval), and
     * in eval the inverse std from the running variance. */
    float *k1 = malloc(4 * sizeof(float) * (size_t)s.c + sizeof(float));
    if (!k1) return nnq_op_fail(a, NNQ_ERR_NOMEM, "out of memory");
    float *k2 = k1 + s.c, *k3 = k2 + s.c, *inv_run = k3 + s.c;
    if (batch) {
        mean = a->saved;
        inv = mean + s.c;
    } else {
        const float *var = nnq_f32(a->in[4]);
        for (int64_t c = 0; c < s.c; c++) inv_run[c] = 1.0f / sqrtf(var[c] + eps);
        mean = nnq_f32(a->in[3]);
        inv = inv_run;
    }
    const double count = (double)(s.n * s.size);

    NNQ_PARALLEL_FOR(s.threads, c, s.c, {
        double sum_dy, sum_dy_xc;
        bn_channel_grad_sums(&s, x, dy, c, mean[c], &sum_dy, &sum_dy_xc);
        double iv = inv[c], sc = scale[c];
        double sum_dy_xhat = sum_dy_xc * iv;
        if (dshift) dshift[c] += (float)sum_dy;
        if (dscale) dscale[c] += (float)sum_dy_xhat;
        if (batch) {
            /* dx = sc*iv*dy - sc*iv/count * (sum_dy + xhat * sum_dy_xhat),
             * xhat = (x - mean) * iv */
            double g = sc * iv / (count > 0 ? count : 1);
            double slope = g * sum_dy_xhat * iv;
            k1[c] = (float)(sc * iv);
            k2[c] = (float)-slope;
            k3[c] = (float)(slope * mean[c] - g * sum_dy);
        } else {
            k1[c] = (float)(sc * iv);
            k2[c] = k3[c] = 0;
            /* y depends on mean and var only in eval mode */
            if (dmean) dmean[c] += (float)(-sc * iv * sum_dy);
            if (dvar) dvar[c] += (float)(-0.5 * sc * iv * iv * iv * sum_dy_xc);
        }
    });
    if (dx) {
        const int64_t planes = s.n * s.c, size = s.size;
        NNQ_PARALLEL_FOR(s.threads, p, planes, {
            int64_t ch = p % s.c;
            float a1 = k1[ch], a2 = k2[ch], a3 = k3[ch];
            const float *xp = x + p * size, *gp = dy + p * size;
            float *dp = dx + p * size;
            _Pragma("omp simd")
            for (int64_t i = 0; i < size; i++) dp[i] += gp[i] * a1 + xp[i] * a2 + a3;
        });
    }
    free(k1);
    return NNQ_OK;
}

const nnq_op_def nnq_op_BatchNormalization = {
    .op_type = "BatchNormalization",
    .min_inputs = 5, .max_inputs = 5,
    .min_outputs = 1, .max_outputs = 5,
    .infer = bn_infer,
    .forward = bn_forward,
    .saved_size = bn_saved_size,
    .backward = bn_backward,
};
