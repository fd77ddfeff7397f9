/* Elementwise activations. Each is a row kernel plus an optional reader
 * of its attributes; one shared map runs the kernel over the tensor (split
 * across threads when large). PRelu broadcasts its slope through the
 * shared broadcast loop.
 *
 * Backward (float32) follows each forward: a row kernel dx += dy * f'(.)
 * reading x or y (the trainer keeps both), run by a second shared map.
 * At the kinks we take PyTorch's choices: Relu and LeakyRelu use the
 * x > 0 branch only for x > 0 (so Relu'(0) = 0, LeakyRelu'(0) = alpha);
 * PRelu likewise (dslope = 0 at x = 0); HardSigmoid passes gradient
 * strictly inside (0 < alpha*x + beta < 1); HardSwish as
 * torch.nn.Hardswish: 0 for x < -3, x/3 + 1/2 for -3 <= x <= 3, 1 above
 * (so -1/2 at x = -3 and 3/2 at x = 3); Clip see below. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/broadcast.h"
#include "ops/op.h"

/* Per-call constants of an activation, read from attributes or inputs. */
typedef union act_bound {
    float f32;
    double f64;
    int8_t i8;
    uint8_t u8;
    int16_t i16;
    uint16_t u16;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
} act_bound;

typedef struct act_params {
    float alpha, beta;
    act_bound lo, hi; /* Clip, in the tensor's dtype */
} act_params;

/* y[i] = f(x[i]) for i < n, x and y of the op's element type. */
typedef void (*act_kernel)(const void *x, void *y, int64_t n, const act_params *p);

static nnq_status check_float(const nnq_op_args *a, const nnq_tensor *t) {
    if (t->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported (float only)",
                           nnq_dtype_name(t->dtype));
    return NNQ_OK;
}

/* Same shape and dtype out as in (float activations). */
static nnq_status unary_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    NNQ_TRY(check_float(a, x));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, x->dims);
}

/* Run k over all of in[0] into out[0], in contiguous chunks per thread. */
static nnq_status unary_map(const nnq_op_args *a, act_kernel k, const act_params *p) {
    const nnq_tensor *x = a->in[0];
    nnq_tensor *y = a->out[0];
    int64_t n = nnq_tensor_numel(x);
    size_t es = nnq_dtype_size(x->dtype);
    if (n <= 0) return NNQ_OK;
    const unsigned char *src = x->data;
    unsigned char *dst = y->data;
    int nt = a->threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, t, nt, {
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        k(src + (size_t)lo * es, dst + (size_t)lo * es, hi - lo, p);
    });
    return NNQ_OK;
}

/* dx[i] += dy[i] * f'(x[i]) for i < n, from x (input) and y (output). */
typedef void (*act_grad_kernel)(const float *x, const float *y, const float *dy, float *dx,
                                int64_t n, const act_params *p);

/* Run k over the whole tensor: in_grad[0] += out_grad[0] * f'. */
static nnq_status unary_grad_map(const nnq_op_args *a, act_grad_kernel k, const act_params *p) {
    const nnq_tensor *xt = a->in[0], *dyt = a->out_grad[0];
    nnq_tensor *dxt = a->in_grad[0];
    if (!dyt || !dxt) return NNQ_OK;
    NNQ_TRY(check_float(a, xt));
    const float *x = nnq_f32(xt), *y = nnq_f32(a->out[0]), *dy = nnq_f32(dyt);
    float *dx = nnq_f32(dxt);
    int64_t n = nnq_tensor_numel(xt);
    if (n <= 0) return NNQ_OK;
    int nt = a->threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, t, nt, {
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        k(x + lo, y + lo, dy + lo, dx + lo, hi - lo, p);
    });
    return NNQ_OK;
}

/* ---- Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh ---- */

static void relu_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void leaky_relu_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    const float alpha = p->alpha;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        /* max(x,0) + alpha*min(x,0): exact, and branch-free (a multiply
         * under a condition keeps GCC from vectorising) */
        float v = x[i], pos = v > 0.0f ? v : 0.0f, neg = v < 0.0f ? v : 0.0f;
        y[i] = pos + alpha * neg;
    }
}

/* exp of -|x| only, so nothing overflows for large |x|:
 * sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|). */
static void sigmoid_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(-fabsf(x[i]));
        float s = 1.0f / (1.0f + e);
        y[i] = x[i] >= 0.0f ? s : e * s;
    }
}

static void hard_sigmoid_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    const float alpha = p->alpha, beta = p->beta;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float v = alpha * x[i] + beta;
        v = v > 0.0f ? v : 0.0f;
        y[i] = v < 1.0f ? v : 1.0f;
    }
}

/* x * HardSigmoid(x) with alpha = 1/6, beta = 1/2 (the spec's definition).
 * Two passes per block through a stack buffer: fused, GCC turns the
 * clamp-then-multiply into a conditional multiply and stops vectorising. */
static void hard_swish_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    const float alpha = 1.0f / 6.0f;
    float hs[256]; /* HardSigmoid of the block */
    for (int64_t b = 0; b < n; b += 256) {
        int64_t len = n - b < 256 ? n - b : 256;
        NNQ_SIMD for (int64_t i = 0; i < len; i++) {
            float v = alpha * x[b + i] + 0.5f;
            v = v > 0.0f ? v : 0.0f;
            hs[i] = v < 1.0f ? v : 1.0f;
        }
        NNQ_SIMD for (int64_t i = 0; i < len; i++) y[b + i] = x[b + i] * hs[i];
    }
}

static void tanh_kernel(const void *px, void *py, int64_t n, const act_params *p) {
    const float *x = px;
    float *y = py;
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void relu_grad(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                      const act_params *p) {
    /* Load dy before the select: a load inside ?: keeps GCC from vectorising. */
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : 0.0f;
    }
}

static void leaky_relu_grad(const float *x, const float *y, const float *dy, float *dx,
                            int64_t n, const act_params *p) {
    const float alpha = p->alpha;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : g * alpha;
    }
}

/* sigmoid' = y (1 - y), from the output. */
static void sigmoid_grad(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                         const act_params *p) {
    NNQ_SIMD for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

static void hard_sigmoid_grad(const float *x, const float *y, const float *dy, float *dx,
                              int64_t n, const act_params *p) {
    const float alpha = p->alpha, beta = p->beta;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float v = alpha * x[i] + beta, g = alpha * dy[i];
        dx[i] += (v > 0.0f) & (v < 1.0f) ? g : 0.0f;
    }
}

static void hard_swish_grad(const float *x, const float *y, const float *dy, float *dx,
                            int64_t n, const act_params *p) {
    const float third = 1.0f / 3.0f;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float v = x[i], g = dy[i];
        float d = v * third + 0.5f;
        d = v < -3.0f ? 0.0f : d;
        d = v > 3.0f ? 1.0f : d;
        dx[i] += g * d;
    }
}

/* tanh' = 1 - y^2, from the output. */
static void tanh_grad(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                      const act_params *p) {
    NNQ_SIMD for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

static nnq_status relu_forward(const nnq_op_args *a) { return unary_map(a, relu_kernel, NULL); }

static nnq_status leaky_relu_forward(const nnq_op_args *a) {
    act_params p = {.alpha = nnq_node_attr_float(a->node, "alpha", 0.01f)};
    return unary_map(a, leaky_relu_kernel, &p);
}

static nnq_status sigmoid_forward(const nnq_op_args *a) {
    return unary_map(a, sigmoid_kernel, NULL);
}

static nnq_status hard_sigmoid_forward(const nnq_op_args *a) {
    act_params p = {.alpha = nnq_node_attr_float(a->node, "alpha", 0.2f),
                    .beta = nnq_node_attr_float(a->node, "beta", 0.5f)};
    return unary_map(a, hard_sigmoid_kernel, &p);
}

static nnq_status hard_swish_forward(const nnq_op_args *a) {
    return unary_map(a, hard_swish_kernel, NULL);
}

static nnq_status tanh_forward(const nnq_op_args *a) { return unary_map(a, tanh_kernel, NULL); }

static nnq_status relu_backward(const nnq_op_args *a) {
    return unary_grad_map(a, relu_grad, NULL);
}

static nnq_status leaky_relu_backward(const nnq_op_args *a) {
    act_params p = {.alpha = nnq_node_attr_float(a->node, "alpha", 0.01f)};
    return unary_grad_map(a, leaky_relu_grad, &p);
}

static nnq_status sigmoid_backward(const nnq_op_args *a) {
    return unary_grad_map(a, sigmoid_grad, NULL);
}

static nnq_status hard_sigmoid_backward(const nnq_op_args *a) {
    act_params p = {.alpha = nnq_node_attr_float(a->node, "alpha", 0.2f),
                    .beta = nnq_node_attr_float(a->node, "beta", 0.5f)};
    return unary_grad_map(a, hard_sigmoid_grad, &p);
}

static nnq_status hard_swish_backward(const nnq_op_args *a) {
    return unary_grad_map(a, hard_swish_grad, NULL);
}

static nnq_status tanh_backward(const nnq_op_args *a) {
    return unary_grad_map(a, tanh_grad, NULL);
}

const nnq_op_def nnq_op_Relu = {
    .op_type = "Relu",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = relu_forward,
    .backward = relu_backward,
};
const nnq_op_def nnq_op_LeakyRelu = {
    .op_type = "LeakyRelu",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = leaky_relu_forward,
    .backward = leaky_relu_backward,
};
const nnq_op_def nnq_op_Sigmoid = {
    .op_type = "Sigmoid",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
};
const nnq_op_def nnq_op_HardSigmoid = {
    .op_type = "HardSigmoid",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = hard_sigmoid_forward,
    .backward = hard_sigmoid_backward,
};
const nnq_op_def nnq_op_HardSwish = {
    .op_type = "HardSwish",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = hard_swish_forward,
    .backward = hard_swish_backward,
};
const nnq_op_def nnq_op_Tanh = {
    .op_type = "Tanh",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unary_infer,
    .forward = tanh_forward,
    .backward = tanh_backward,
};

/* ---- Clip: any numeric dtype; bounds from inputs (opset >= 11) or
 * attributes (older), defaulting to the type's range ---- */

/* min(max(x, lo), hi): gives hi everywhere when lo > hi, as the spec says;
 * NaN passes through. */
#define CLIP_KERNEL(name, T, field)                                             \
    static void name(const void *px, void *py, int64_t n, const act_params *p) { \
        const T *x = px;                                                        \
        T *y = py;                                                              \
        const T lo = p->lo.field, hi = p->hi.field;                             \
        NNQ_SIMD for (int64_t i = 0; i < n; i++) {                              \
            T v = x[i] < lo ? lo : x[i];                                        \
            y[i] = v > hi ? hi : v;                                             \
        }                                                                       \
    }

CLIP_KERNEL(clip_f32, float, f32)
CLIP_KERNEL(clip_f64, double, f64)
CLIP_KERNEL(clip_i8, int8_t, i8)
CLIP_KERNEL(clip_u8, uint8_t, u8)
CLIP_KERNEL(clip_i16, int16_t, i16)
CLIP_KERNEL(clip_u16, uint16_t, u16)
CLIP_KERNEL(clip_i32, int32_t, i32)
CLIP_KERNEL(clip_u32, uint32_t, u32)
CLIP_KERNEL(clip_i64, int64_t, i64)
CLIP_KERNEL(clip_u64, uint64_t, u64)

typedef struct clip_type {
    nnq_dtype dtype;
    act_kernel kernel;
    act_bound lowest, highest; /* defaults for omitted bounds */
} clip_type;

static const clip_type clip_types[] = {
    {NNQ_DT_FLOAT, clip_f32, {.f32 = -FLT_MAX}, {.f32 = FLT_MAX}},
    {NNQ_DT_DOUBLE, clip_f64, {.f64 = -DBL_MAX}, {.f64 = DBL_MAX}},
    {NNQ_DT_INT8, clip_i8, {.i8 = INT8_MIN}, {.i8 = INT8_MAX}},
    {NNQ_DT_UINT8, clip_u8, {.u8 = 0}, {.u8 = UINT8_MAX}},
    {NNQ_DT_INT16, clip_i16, {.i16 = INT16_MIN}, {.i16 = INT16_MAX}},
    {NNQ_DT_UINT16, clip_u16, {.u16 = 0}, {.u16 = UINT16_MAX}},
    {NNQ_DT_INT32, clip_i32, {.i32 = INT32_MIN}, {.i32 = INT32_MAX}},
    {NNQ_DT_UINT32, clip_u32, {.u32 = 0}, {.u32 = UINT32_MAX}},
    {NNQ_DT_INT64, clip_i64, {.i64 = INT64_MIN}, {.i64 = INT64_MAX}},
    {NNQ_DT_UINT64, clip_u64, {.u64 = 0}, {.u64 = UINT64_MAX}},
};

static const clip_type *clip_find(nnq_dtype dt) {
    for (size_t i = 0; i < sizeof clip_types / sizeof clip_types[0]; i++)
        if (clip_types[i].dtype == dt) return &clip_types[i];
    return NULL;
}

static nnq_status clip_check_bound(const nnq_op_args *a, int i) {
    const nnq_tensor *b = i < a->n_in ? a->in[i] : NULL;
    if (!b) return NNQ_OK;
    if (b->dtype != a->in[0]->dtype)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "%s bound is %s but the input is %s",
                           i == 1 ? "min" : "max", nnq_dtype_name(b->dtype),
                           nnq_dtype_name(a->in[0]->dtype));
    if (nnq_tensor_numel(b) != 1)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "%s bound must be a scalar",
                           i == 1 ? "min" : "max");
    return NNQ_OK;
}

static nnq_status clip_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    if (!clip_find(x->dtype))
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    NNQ_TRY(clip_check_bound(a, 1));
    NNQ_TRY(clip_check_bound(a, 2));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, x->dims);
}

/* The bounds in p->lo, p->hi: inputs 1 and 2, attributes before opset
 * 11, the type's range where omitted. */
static nnq_status clip_bounds(const nnq_op_args *a, const clip_type **out, act_params *p) {
    const clip_type *ct = clip_find(a->in[0]->dtype);
    if (!ct)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(a->in[0]->dtype));
    size_t es = nnq_dtype_size(ct->dtype);
    p->lo = ct->lowest;
    p->hi = ct->highest;
    const nnq_tensor *lo = a->n_in > 1 ? a->in[1] : NULL;
    const nnq_tensor *hi = a->n_in > 2 ? a->in[2] : NULL;
    if (lo) memcpy(&p->lo, lo->data, es);
    if (hi) memcpy(&p->hi, hi->data, es);
    /* Before opset 11 the bounds were float attributes. */
    if (ct->dtype == NNQ_DT_FLOAT && nnq_node_attr(a->node, "min"))
        p->lo.f32 = nnq_node_attr_float(a->node, "min", -FLT_MAX);
    if (ct->dtype == NNQ_DT_FLOAT && nnq_node_attr(a->node, "max"))
        p->hi.f32 = nnq_node_attr_float(a->node, "max", FLT_MAX);
    *out = ct;
    return NNQ_OK;
}

static nnq_status clip_forward(const nnq_op_args *a) {
    const clip_type *ct;
    act_params p;
    NNQ_TRY(clip_bounds(a, &ct, &p));
    return unary_map(a, ct->kernel, &p);
}

/* Backward, float32, with PyTorch clamp's rule at the boundaries: x gets
 * the gradient where lo <= x <= hi (inclusive; ReLU6 exported as Clip
 * thus passes gradient at exactly 0 and 6, where torch's hardtanh-based
 * ReLU6 would not). When x < lo the output is lo and the gradient goes to
 * the min input (if it is trainable); when x > hi, or everywhere when
 * lo > hi (the output is then hi), it goes to the max input. */
static void clip_grad(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                      const act_params *p) {
    const float lo = p->lo.f32, hi = p->hi.f32;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        float g = dy[i], v = x[i];
        dx[i] += (v >= lo) & (v <= hi) ? g : 0.0f;
    }
}

/* Sums of dy where the output is the min bound and where it is the max. */
static void clip_bound_grads(const nnq_op_args *a, const act_params *p, double *dlo,
                             double *dhi) {
    const float *x = nnq_f32(a->in[0]), *dy = nnq_f32(a->out_grad[0]);
    const float lo = p->lo.f32, hi = p->hi.f32;
    const bool ordered = lo <= hi;
    int64_t n = nnq_tensor_numel(a->in[0]);
    double slo = 0, shi = 0;
    int nt = a->threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : slo, shi) if (nt > 1)
    for (int64_t i = 0; i < n; i++) {
        if (ordered && x[i] < lo) slo += dy[i];
        else if (!ordered || x[i] > hi) shi += dy[i];
    }
    *dlo = slo;
    *dhi = shi;
}

static nnq_status clip_backward(const nnq_op_args *a) {
    const clip_type *ct;
    act_params p;
    if (!a->out_grad[0]) return NNQ_OK;
    NNQ_TRY(clip_bounds(a, &ct, &p));
    NNQ_TRY(check_float(a, a->in[0]));
    NNQ_TRY(unary_grad_map(a, clip_grad, &p));
    nnq_tensor *glo = a->n_in > 1 && a->in[1] ? a->in_grad[1] : NULL;
    nnq_tensor *ghi = a->n_in > 2 && a->in[2] ? a->in_grad[2] : NULL;
    if (glo || ghi) {
        double dlo, dhi;
        clip_bound_grads(a, &p, &dlo, &dhi);
        if (glo) nnq_f32(glo)[0] += (float)dlo;
        if (ghi) nnq_f32(ghi)[0] += (float)dhi;
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_Clip = {
    .op_type = "Clip",
    .min_inputs = 1, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = clip_infer,
    .forward = clip_forward,
    .backward = clip_backward,
};

/* ---- PRelu: y = x < 0 ? slope * x : x, slope broadcast to x ---- */

static void prelu_kernel(int64_t n, const void *pa, int sa, const void *pb, int sb, void *py,
                         const void *ctx) {
    const float *x = pa, *s = pb;
    float *y = py;
    (void)ctx;
    if (sa && sb) {
        NNQ_SIMD for (int64_t i = 0; i < n; i++) {
            float v = x[i], pos = v > 0.0f ? v : 0.0f, neg = v < 0.0f ? v : 0.0f;
            y[i] = pos + s[i] * neg;
        }
    } else if (sa) {
        const float s0 = s[0];
        NNQ_SIMD for (int64_t i = 0; i < n; i++) {
            float v = x[i], pos = v > 0.0f ? v : 0.0f, neg = v < 0.0f ? v : 0.0f;
            y[i] = pos + s0 * neg;
        }
    } else { /* x is one element repeated (slope cannot be larger than x) */
        for (int64_t i = 0; i < n; i++) y[i] = x[0] < 0.0f ? s[sb ? i : 0] * x[0] : x[0];
    }
}

static nnq_status prelu_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *s = a->in[1];
    char sx[128], ss[128];
    NNQ_TRY(check_float(a, x));
    NNQ_TRY(check_float(a, s));
    if (!nnq_broadcast_to(s->rank, s->dims, x->rank, x->dims))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "slope shape %s does not broadcast to input %s",
                           nnq_shape_str(s, ss, sizeof ss), nnq_shape_str(x, sx, sizeof sx));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, x->dims);
}

static nnq_status prelu_forward(const nnq_op_args *a) {
    nnq_bcast_loop l;
    nnq_bcast_loop_init(&l, a->out[0], a->in[0], a->in[1]);
    nnq_bcast_run(&l, prelu_kernel, NULL, a->in[0]->data, sizeof(float), a->in[1]->data,
                  sizeof(float), a->out[0]->data, sizeof(float), a->threads);
    return NNQ_OK;
}

/* Backward: dx = dy * (x > 0 ? 1 : slope); dslope = dy * min(x, 0), summed
 * over the dims the slope is broadcast along (channels' H, W and batch). */

/* g is x's gradient and x is never broadcast (the output has its shape),
 * so x's step is 0 only on a row of one element: the scalar fallback. */
static void prelu_grad_x(int64_t n, const float *dy, const float *x, int sx, const float *sl,
                         int ss, float *g, int sg, const void *ctx) {
    (void)ctx;
    if (sx && ss) {
        NNQ_SIMD for (int64_t i = 0; i < n; i++) g[i] += dy[i] * (x[i] > 0.0f ? 1.0f : sl[i]);
    } else if (sx) {
        const float w = sl[0];
        NNQ_SIMD for (int64_t i = 0; i < n; i++) g[i] += dy[i] * (x[i] > 0.0f ? 1.0f : w);
    } else {
        for (int64_t i = 0; i < n; i++)
            g[sg ? i : 0] += dy[i] * (x[0] > 0.0f ? 1.0f : sl[ss ? i : 0]);
    }
}

/* g is the slope's gradient (step ss): summed where the slope is shared. */
static void prelu_grad_slope(int64_t n, const float *dy, const float *x, int sx, const float *sl,
                             int ss, float *g, int sg, const void *ctx) {
    (void)ctx;
    (void)sl;
    if (sx && sg) {
        NNQ_SIMD for (int64_t i = 0; i < n; i++) g[i] += dy[i] * (x[i] < 0.0f ? x[i] : 0.0f);
    } else if (sx) {
        float s = 0.0f;
        NNQ_SIMD_SUM for (int64_t i = 0; i < n; i++) s += dy[i] * (x[i] < 0.0f ? x[i] : 0.0f);
        g[0] += s;
    } else {
        for (int64_t i = 0; i < n; i++) g[sg ? i : 0] += dy[i] * (x[0] < 0.0f ? x[0] : 0.0f);
    }
}

static nnq_status prelu_backward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *s = a->in[1], *dy = a->out_grad[0];
    if (!dy) return NNQ_OK;
    nnq_bcast_loop l;
    nnq_bcast_loop_init(&l, dy, x, s);
    if (a->in_grad[0])
        nnq_bcast_grad_run(&l, 0, prelu_grad_x, NULL, nnq_f32(dy), nnq_f32(x), nnq_f32(s),
                           nnq_f32(a->in_grad[0]), a->threads);
    if (a->in_grad[1])
        nnq_bcast_grad_run(&l, 1, prelu_grad_slope, NULL, nnq_f32(dy), nnq_f32(x), nnq_f32(s),
                           nnq_f32(a->in_grad[1]), a->threads);
    return NNQ_OK;
}

const nnq_op_def nnq_op_PRelu = {
    .op_type = "PRelu",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = prelu_infer,
    .forward = prelu_forward,
    .backward = prelu_backward,
};
