/* Add, Sub, Mul, Div, and the variadic Min and Max, with multidirectional
 * broadcasting, for float,
 * double and every fixed-width integer type (exported graphs do shape
 * arithmetic in int64; the ONNX tests use uint8).
 *
 * Integer arithmetic wraps (computed in unsigned, as numpy does); integer
 * division truncates toward zero, and x / 0 gives 0 instead of trapping. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "ops/broadcast.h"
#include "ops/op.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MIN, OP_MAX, OP_COUNT };

/* One kernel per (op, type). The four stride patterns get separate loops
 * so each is a plain vectorisable loop over contiguous memory. HINT is
 * NNQ_SIMD, or nothing for integer division (no vector form; clang warns
 * when a simd loop cannot vectorise). */
#define BINARY_KERNEL(name, T, EXPR, HINT)                                                   \
    static void name(int64_t n, const void *pa, int sa, const void *pb, int sb, void *py,    \
                     const void *ctx) {                                                      \
        const T *a = pa, *b = pb;                                                            \
        T *y = py;                                                                           \
        (void)ctx;                                                                           \
        if (sa && sb) {                                                                      \
            HINT for (int64_t i = 0; i < n; i++) {                                           \
                T x = a[i], z = b[i];                                                        \
                y[i] = (EXPR);                                                               \
            }                                                                                \
        } else if (sa) {                                                                     \
            const T z = b[0];                                                                \
            HINT for (int64_t i = 0; i < n; i++) {                                           \
                T x = a[i];                                                                  \
                y[i] = (EXPR);                                                               \
            }                                                                                \
        } else if (sb) {                                                                     \
            const T x = a[0];                                                                \
            HINT for (int64_t i = 0; i < n; i++) {                                           \
                T z = b[i];                                                                  \
                y[i] = (EXPR);                                                               \
            }                                                                                \
        } else {                                                                             \
            const T x = a[0], z = b[0];                                                      \
            const T v = (EXPR);                                                              \
            HINT for (int64_t i = 0; i < n; i++) y[i] = v;                                   \
        }                                                                                    \
    }

/* Min/Max propagate NaN (as numpy's minimum/maximum and ONNX Runtime do). */
#define MINMAX_KERNELS(tag, T)                                                  \
    BINARY_KERNEL(min_##tag, T, (x != x || x < z) ? x : z, NNQ_SIMD)           \
    BINARY_KERNEL(max_##tag, T, (x != x || x > z) ? x : z, NNQ_SIMD)

#define FLOAT_KERNELS(tag, T)                        \
    BINARY_KERNEL(add_##tag, T, x + z, NNQ_SIMD)     \
    BINARY_KERNEL(sub_##tag, T, x - z, NNQ_SIMD)     \
    BINARY_KERNEL(mul_##tag, T, x * z, NNQ_SIMD)     \
    BINARY_KERNEL(div_##tag, T, x / z, NNQ_SIMD)     \
    MINMAX_KERNELS(tag, T)

/* U: an unsigned type at least as wide as int, so nothing promotes to a
 * signed int that could overflow. */
#define INT_KERNELS(tag, T, U, DIV_EXPR)                         \
    BINARY_KERNEL(add_##tag, T, (T)((U)x + (U)z), NNQ_SIMD)     \
    BINARY_KERNEL(sub_##tag, T, (T)((U)x - (U)z), NNQ_SIMD)     \
    BINARY_KERNEL(mul_##tag, T, (T)((U)x * (U)z), NNQ_SIMD)     \
    BINARY_KERNEL(div_##tag, T, DIV_EXPR, )                     \
    MINMAX_KERNELS(tag, T)

/* Signed: -1 is special-cased because MIN / -1 overflows. */
#define SDIV(T, U) (z == 0 ? (T)0 : z == -1 ? (T)(0u - (U)x) : (T)(x / z))
#define UDIV(T) (z == 0 ? (T)0 : (T)(x / z))

FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)
INT_KERNELS(i8, int8_t, uint32_t, SDIV(int8_t, uint32_t))
INT_KERNELS(u8, uint8_t, uint32_t, UDIV(uint8_t))
INT_KERNELS(i16, int16_t, uint32_t, SDIV(int16_t, uint32_t))
INT_KERNELS(u16, uint16_t, uint32_t, UDIV(uint16_t))
INT_KERNELS(i32, int32_t, uint32_t, SDIV(int32_t, uint32_t))
INT_KERNELS(u32, uint32_t, uint32_t, UDIV(uint32_t))
INT_KERNELS(i64, int64_t, uint64_t, SDIV(int64_t, uint64_t))
INT_KERNELS(u64, uint64_t, uint64_t, UDIV(uint64_t))

typedef struct binary_type {
    nnq_dtype dtype;
    nnq_bcast_kernel k[OP_COUNT]; /* indexed by OP_* */
} binary_type;

#define TYPE_ROW(dt, tag) {dt, {add_##tag, sub_##tag, mul_##tag, div_##tag, min_##tag, max_##tag}}

static const binary_type binary_types[] = {
    TYPE_ROW(NNQ_DT_FLOAT, f32),  TYPE_ROW(NNQ_DT_DOUBLE, f64), TYPE_ROW(NNQ_DT_INT8, i8),
    TYPE_ROW(NNQ_DT_UINT8, u8),   TYPE_ROW(NNQ_DT_INT16, i16),  TYPE_ROW(NNQ_DT_UINT16, u16),
    TYPE_ROW(NNQ_DT_INT32, i32),  TYPE_ROW(NNQ_DT_UINT32, u32), TYPE_ROW(NNQ_DT_INT64, i64),
    TYPE_ROW(NNQ_DT_UINT64, u64),
};

static const binary_type *find_type(nnq_dtype dt) {
    for (size_t i = 0; i < sizeof binary_types / sizeof binary_types[0]; i++)
        if (binary_types[i].dtype == dt) return &binary_types[i];
    return NULL;
}

static nnq_status binary_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *z = a->in[1];
    char sx[128], sz[128];
    if (!x || !z) return nnq_op_fail(a, NNQ_ERR_INVALID, "needs two inputs");
    if (x->dtype != z->dtype)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "input dtypes differ (%s and %s)",
                           nnq_dtype_name(x->dtype), nnq_dtype_name(z->dtype));
    if (!find_type(x->dtype))
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    int r;
    int64_t d[NNQ_MAX_RANK];
    if (!nnq_broadcast_shape(x->rank, x->dims, z->rank, z->dims, &r, d))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "shapes %s and %s do not broadcast",
                           nnq_shape_str(x, sx, sizeof sx), nnq_shape_str(z, sz, sizeof sz));
    return nnq_tensor_set_shape(a->out[0], x->dtype, r, d);
}

static nnq_status binary_forward(const nnq_op_args *a, int op) {
    const nnq_tensor *x = a->in[0], *z = a->in[1];
    nnq_tensor *y = a->out[0];
    const binary_type *bt = find_type(x->dtype);
    if (!bt || x->dtype != z->dtype || y->dtype != x->dtype)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    size_t es = nnq_dtype_size(x->dtype);
    nnq_bcast_loop l;
    nnq_bcast_loop_init(&l, y, x, z);
    nnq_bcast_run(&l, bt->k[op], NULL, x->data, es, z->data, es, y->data, es, a->threads);
    return NNQ_OK;
}

/* Min / Max: one to any number of inputs, folded left to right into y
 * (in place: each step reads y[i] and writes y[i]). */
static nnq_status variadic_infer(const nnq_op_args *a) {
    char sx[128], sz[128];
    const nnq_tensor *x = a->in[0];
    if (!x) return nnq_op_fail(a, NNQ_ERR_INVALID, "needs at least one input");
    if (!find_type(x->dtype))
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    int r = x->rank;
    int64_t d[NNQ_MAX_RANK];
    for (int k = 0; k < r; k++) d[k] = x->dims[k];
    for (int i = 1; i < a->n_in; i++) {
        const nnq_tensor *z = a->in[i];
        if (!z) return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d is missing", i);
        if (z->dtype != x->dtype)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input dtypes differ (%s and %s)",
                               nnq_dtype_name(x->dtype), nnq_dtype_name(z->dtype));
        nnq_tensor acc = {.dtype = x->dtype, .rank = r};
        for (int k = 0; k < r; k++) acc.dims[k] = d[k];
        if (!nnq_broadcast_shape(acc.rank, acc.dims, z->rank, z->dims, &r, d))
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "shapes %s and %s do not broadcast",
                               nnq_shape_str(&acc, sx, sizeof sx), nnq_shape_str(z, sz, sizeof sz));
    }
    return nnq_tensor_set_shape(a->out[0], x->dtype, r, d);
}

static nnq_status variadic_forward(const nnq_op_args *a, int op) {
    nnq_tensor *y = a->out[0];
    const binary_type *bt = find_type(y->dtype);
    if (!bt) return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                                nnq_dtype_name(y->dtype));
    for (int i = 0; i < a->n_in; i++)
        if (!a->in[i] || a->in[i]->dtype != y->dtype)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d is missing or of another dtype", i);
    const size_t es = nnq_dtype_size(y->dtype);
    const nnq_tensor *x = a->in[0];
    if (a->n_in == 1) {
        memcpy(y->data, x->data, (size_t)nnq_tensor_numel(y) * es);
        return NNQ_OK;
    }
    for (int i = 1; i < a->n_in; i++) {
        const nnq_tensor *left = i == 1 ? x : y, *z = a->in[i];
        nnq_bcast_loop l;
        nnq_bcast_loop_init(&l, y, left, z);
        nnq_bcast_run(&l, bt->k[op], NULL, left->data, es, z->data, es, y->data, es, a->threads);
    }
    return NNQ_OK;
}

static nnq_status min_forward(const nnq_op_args *a) { return variadic_forward(a, OP_MIN); }
static nnq_status max_forward(const nnq_op_args *a) { return variadic_forward(a, OP_MAX); }

static nnq_status add_forward(const nnq_op_args *a) { return binary_forward(a, OP_ADD); }
static nnq_status sub_forward(const nnq_op_args *a) { return binary_forward(a, OP_SUB); }
static nnq_status mul_forward(const nnq_op_args *a) { return binary_forward(a, OP_MUL); }
static nnq_status div_forward(const nnq_op_args *a) { return binary_forward(a, OP_DIV); }

/* ---- Backward (float32) ----
 * y = a op b; each input's gradient is the elementwise term below, summed
 * over the dims that input was broadcast along (nnq_bcast_grad_run):
 *   Add: da = dy, db = dy          Sub: da = dy, db = -dy
 *   Mul: da = dy*b, db = dy*a      Div: da = dy/b, db = -dy*a/b^2
 * In the expressions d is dy[i], x is a's element and z is b's. */

#define GRAD_LOOP(HINT, GET_X, GET_Z, BODY)        \
    {                                              \
        HINT for (int64_t i = 0; i < n; i++) {     \
            float d = dy[i], x = GET_X, z = GET_Z; \
            (void)x;                               \
            (void)z;                               \
            BODY;                                  \
        }                                          \
    }

/* One loop per stride pattern of (a, b), accumulating into g[i] or
 * summing into g[0]: every loop is plain and vectorisable. */
#define GRAD_KERNEL(name, EXPR)                                                                \
    static void name(int64_t n, const float *dy, const float *a, int sa, const float *b,       \
                     int sb, float *g, int sg, const void *ctx) {                              \
        (void)ctx;                                                                             \
        if (sg) {                                                                              \
            if (sa && sb) GRAD_LOOP(NNQ_SIMD, a[i], b[i], g[i] += (EXPR))                      \
            else if (sa) GRAD_LOOP(NNQ_SIMD, a[i], b[0], g[i] += (EXPR))                       \
            else if (sb) GRAD_LOOP(NNQ_SIMD, a[0], b[i], g[i] += (EXPR))                       \
            else GRAD_LOOP(NNQ_SIMD, a[0], b[0], g[i] += (EXPR))                               \
            return;                                                                            \
        }                                                                                      \
        float s = 0.0f;                                                                        \
        if (sa && sb) GRAD_LOOP(NNQ_SIMD_SUM, a[i], b[i], s += (EXPR))                         \
        else if (sa) GRAD_LOOP(NNQ_SIMD_SUM, a[i], b[0], s += (EXPR))                          \
        else if (sb) GRAD_LOOP(NNQ_SIMD_SUM, a[0], b[i], s += (EXPR))                          \
        else GRAD_LOOP(NNQ_SIMD_SUM, a[0], b[0], s += (EXPR))                                  \
        g[0] += s;                                                                             \
    }

GRAD_KERNEL(grad_pass, d)
GRAD_KERNEL(grad_neg, -d)
GRAD_KERNEL(grad_mul_a, d * z)
GRAD_KERNEL(grad_mul_b, d * x)
GRAD_KERNEL(grad_div_a, d / z)
GRAD_KERNEL(grad_div_b, -d * x / (z * z))
/* Min / Max of two: the gradient goes to the input selected (the first on
 * a tie). */
GRAD_KERNEL(grad_min_a, (x <= z) ? d : 0.0f)
GRAD_KERNEL(grad_min_b, (x <= z) ? 0.0f : d)
GRAD_KERNEL(grad_max_a, (x >= z) ? d : 0.0f)
GRAD_KERNEL(grad_max_b, (x >= z) ? 0.0f : d)

/* Kernels for (da, db), indexed by OP_*. */
static const nnq_bcast_grad_kernel grad_kernels[OP_COUNT][2] = {
    [OP_ADD] = {grad_pass, grad_pass},
    [OP_SUB] = {grad_pass, grad_neg},
    [OP_MUL] = {grad_mul_a, grad_mul_b},
    [OP_DIV] = {grad_div_a, grad_div_b},
    [OP_MIN] = {grad_min_a, grad_min_b},
    [OP_MAX] = {grad_max_a, grad_max_b},
};

static nnq_status binary_backward(const nnq_op_args *a, int op) {
    const nnq_tensor *x = a->in[0], *z = a->in[1], *dy = a->out_grad[0];
    if (!dy) return NNQ_OK;
    if (x->dtype != NNQ_DT_FLOAT || z->dtype != NNQ_DT_FLOAT || dy->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward needs float inputs, got %s",
                           nnq_dtype_name(x->dtype));
    nnq_bcast_loop l;
    nnq_bcast_loop_init(&l, dy, x, z);
    for (int i = 0; i < 2; i++) {
        nnq_tensor *g = a->in_grad[i];
        if (!g) continue;
        nnq_bcast_grad_run(&l, i, grad_kernels[op][i], NULL, nnq_f32(dy), nnq_f32(x),
                           nnq_f32(z), nnq_f32(g), a->threads);
    }
    return NNQ_OK;
}

static nnq_status add_backward(const nnq_op_args *a) { return binary_backward(a, OP_ADD); }
static nnq_status sub_backward(const nnq_op_args *a) { return binary_backward(a, OP_SUB); }
static nnq_status mul_backward(const nnq_op_args *a) { return binary_backward(a, OP_MUL); }
static nnq_status div_backward(const nnq_op_args *a) { return binary_backward(a, OP_DIV); }
static nnq_status minmax_backward(const nnq_op_args *a, int op) {
    if (a->n_in != 2)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward of %d inputs (only 2 are supported)",
                           a->n_in);
    return binary_backward(a, op);
}
static nnq_status min_backward(const nnq_op_args *a) { return minmax_backward(a, OP_MIN); }
static nnq_status max_backward(const nnq_op_args *a) { return minmax_backward(a, OP_MAX); }

const nnq_op_def nnq_op_Add = {
    .op_type = "Add",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = binary_infer,
    .forward = add_forward,
    .backward = add_backward,
};
const nnq_op_def nnq_op_Sub = {
    .op_type = "Sub",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = binary_infer,
    .forward = sub_forward,
    .backward = sub_backward,
};
const nnq_op_def nnq_op_Mul = {
    .op_type = "Mul",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = binary_infer,
    .forward = mul_forward,
    .backward = mul_backward,
};
const nnq_op_def nnq_op_Div = {
    .op_type = "Div",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = binary_infer,
    .forward = div_forward,
    .backward = div_backward,
};
const nnq_op_def nnq_op_Min = {
    .op_type = "Min",
    .min_inputs = 1, .max_inputs = INT_MAX,
    .min_outputs = 1, .max_outputs = 1,
    .infer = variadic_infer,
    .forward = min_forward,
    .backward = min_backward,
};
const nnq_op_def nnq_op_Max = {
    .op_type = "Max",
    .min_inputs = 1, .max_inputs = INT_MAX,
    .min_outputs = 1, .max_outputs = 1,
    .infer = variadic_infer,
    .forward = max_forward,
    .backward = max_backward,
};
