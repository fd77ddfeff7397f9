/* Quantization ops: ONNX QuantizeLinear and DequantizeLinear, and nnq's
 * FakeQuant (domain NNQ_DOMAIN: quantize then dequantize in float, with its
 * straight-through / LSQ backward beside its forward). All three use the
 * arithmetic of core/qmath.h, so they round exactly as the quantization
 * passes and the integer engine do:
 *     q = clamp(round_half_even(x / s) + z, qmin, qmax),   x_hat = s (q - z),
 * x / s a float division; NaN quantizes to z, +-Inf saturates.
 *
 * Granularity, shared by the three: a scale of one element applies to the
 * whole tensor; a 1-D scale of C elements applies along `axis` (default 1,
 * negative counts from the end), C = X.dims[axis]. A zero point, when
 * given, has as many elements as the scale. X is walked as [outer, C, inner].
 *
 * Work split: each channel's outer * inner elements are cut into a few
 * blocks (a number fixed by the shape, never by the thread count), and the
 * (channel, block) units are spread over threads. Gradient sums are kept
 * per unit and added in unit order, so FakeQuant's scale and zero-point
 * gradients are the same bit for bit with any number of threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/qmath.h"
#include "ops/broadcast.h"
#include "ops/op.h"

/* ---- shared: channel layout and work units ---- */

typedef struct q_layout {
    int64_t outer, channels, inner; /* X viewed as [outer, channels, inner] */
    int64_t blocks;                 /* work units per channel */
    int64_t units;                  /* channels * blocks */
} q_layout;

#define Q_MIN_BLOCK 4096 /* elements below which a channel is not split */
#define Q_MIN_UNITS 64   /* units wanted in all, when the data allows */

/* X described as [outer, channels, inner]; per tensor when channels is 1. */
static void q_layout_set(q_layout *l, int64_t outer, int64_t channels, int64_t inner) {
    l->outer = outer;
    l->channels = channels;
    l->inner = inner;
    int64_t per = outer * inner;
    int64_t want = (Q_MIN_UNITS + channels - 1) / channels;
    int64_t most = (per + Q_MIN_BLOCK - 1) / Q_MIN_BLOCK;
    l->blocks = per == 0 ? 0 : (want < most ? want : most);
    if (per > 0 && l->blocks < 1) l->blocks = 1;
    l->units = channels * l->blocks;
}

/* Unit k: channel *c, channel-local elements [*j0, *j1) (element j of a
 * channel is X[j / inner, c, j % inner]). */
static inline void q_unit(const q_layout *l, int64_t k, int64_t *c, int64_t *j0, int64_t *j1) {
    int64_t b = k % l->blocks, per = l->outer * l->inner;
    *c = k / l->blocks;
    *j0 = per * b / l->blocks;
    *j1 = per * (b + 1) / l->blocks;
}

/* The contiguous run of channel c starting at channel-local j and ending
 * at the row's end or j1: its offset in X, its length in *len. */
static inline int64_t q_run(const q_layout *l, int64_t c, int64_t j, int64_t j1, int64_t *len) {
    int64_t o = j / l->inner, i = j % l->inner, n = l->inner - i;
    *len = n < j1 - j ? n : j1 - j;
    return (o * l->channels + c) * l->inner + i;
}

static int q_threads(const nnq_op_args *a, int64_t n) {
    return a->threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
}

/* Input names per op, for messages. */
static const char *const q_names[] = {"x", "y_scale", "y_zero_point"};
static const char *const dq_names[] = {"x", "x_scale", "x_zero_point"};
static const char *const fq_names[] = {"X", "scale", "zero_point"};

/* Check the scale (input 1) and the optional zero point (input 2) against
 * X (input 0), named nm[0..2] in messages, and give the layout. per_axis:
 * the op version has `axis` (a 1-D scale of C elements); else both must be
 * one element. */
static nnq_status q_layout_of(const nnq_op_args *a, const char *const *nm, bool per_axis,
                              q_layout *l) {
    const nnq_tensor *x = a->in[0], *s = a->in[1], *z = a->n_in > 2 ? a->in[2] : NULL;
    char xs[128], ss[128];
    if (s->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "%s is %s; nnq takes float32 scales", nm[1],
                           nnq_dtype_name(s->dtype));
    int64_t ns = nnq_tensor_numel(s);
    if (s->rank > 1 || ns == 0)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "%s has shape [%s]; it must be a scalar or 1-D",
                           nm[1], nnq_shape_str(s, ss, sizeof ss));
    if (z && (z->rank > 1 || nnq_tensor_numel(z) != ns))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "%s has shape [%s] but %s has [%s]", nm[2],
                           nnq_shape_str(z, xs, sizeof xs), nm[1],
                           nnq_shape_str(s, ss, sizeof ss));
    int64_t n = nnq_tensor_numel(x);
    if (ns == 1) {
        q_layout_set(l, 1, 1, n > 0 ? n : 0);
        return NNQ_OK;
    }
    if (!per_axis)
        return nnq_op_fail(a, NNQ_ERR_SHAPE,
                           "%s has %lld elements; before opset 13 it must be a scalar", nm[1],
                           (long long)ns);
    int64_t axis = nnq_node_attr_int(a->node, "axis", 1);
    if (axis < -x->rank || axis >= x->rank)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for %s of rank %d",
                           (long long)axis, nm[0], x->rank);
    if (axis < 0) axis += x->rank;
    if (x->dims[axis] >= 0 && x->dims[axis] != ns)
        return nnq_op_fail(a, NNQ_ERR_SHAPE,
                           "%s has %lld elements but %s [%s] has %lld along axis %lld", nm[1],
                           (long long)ns, nm[0], nnq_shape_str(x, xs, sizeof xs),
                           (long long)x->dims[axis], (long long)axis);
    int64_t outer = nnq_shape_numel((int)axis, x->dims);
    int64_t inner = nnq_shape_numel(x->rank - (int)axis - 1, x->dims + axis + 1);
    q_layout_set(l, outer > 0 ? outer : 0, ns, inner > 0 ? inner : 0);
    return NNQ_OK;
}

/* ---- QuantizeLinear: float32 x -> uint8 / int8 (opsets 10 and 13) ---- */

static nnq_status quantize_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *z = a->n_in > 2 ? a->in[2] : NULL;
    q_layout l;
    if (x->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "x is %s; nnq quantizes float32 only",
                           nnq_dtype_name(x->dtype));
    if (z && z->dtype != NNQ_DT_UINT8 && z->dtype != NNQ_DT_INT8)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                           "y_zero_point is %s; nnq quantizes to uint8 or int8",
                           nnq_dtype_name(z->dtype));
    NNQ_TRY(q_layout_of(a, q_names, a->opset >= 13, &l));
    /* No zero point: uint8 with zero point 0. */
    return nnq_tensor_set_shape(a->out[0], z ? z->dtype : NNQ_DT_UINT8, x->rank, x->dims);
}

static void quantize_run_u8(const float *x, uint8_t *y, int64_t n, float s, float z) {
    for (int64_t i = 0; i < n; i++) y[i] = (uint8_t)nnq_quantize_f(x[i], s, z, 0.0f, 255.0f);
}

static void quantize_run_i8(const float *x, int8_t *y, int64_t n, float s, float z) {
    for (int64_t i = 0; i < n; i++) y[i] = (int8_t)nnq_quantize_f(x[i], s, z, -128.0f, 127.0f);
}

static nnq_status quantize_forward(const nnq_op_args *a) {
    const nnq_tensor *z = a->n_in > 2 ? a->in[2] : NULL;
    q_layout l;
    NNQ_TRY(q_layout_of(a, q_names, a->opset >= 13, &l));
    const float *x = nnq_f32(a->in[0]), *scale = nnq_f32(a->in[1]);
    void *y = a->out[0]->data;
    const bool is_signed = a->out[0]->dtype == NNQ_DT_INT8;
    int nt = q_threads(a, nnq_tensor_numel(a->in[0]));
    NNQ_PARALLEL_FOR(nt, k, l.units, {
        int64_t c, j0, j1, len;
        q_unit(&l, k, &c, &j0, &j1);
        const float s = scale[c];
        const float zc = !z ? 0.0f
                         : is_signed ? (float)((const int8_t *)z->data)[c]
                                     : (float)((const uint8_t *)z->data)[c];
        for (int64_t j = j0; j < j1; j += len) {
            int64_t off = q_run(&l, c, j, j1, &len);
            if (is_signed) quantize_run_i8(x + off, (int8_t *)y + off, len, s, zc);
            else quantize_run_u8(x + off, (uint8_t *)y + off, len, s, zc);
        }
    });
    return NNQ_OK;
}

/* ---- DequantizeLinear: uint8 / int8 / int32 x -> float32 ----
 * y = s * (float)(x - z), the difference taken in integers (int32 for 8-bit
 * x, where it is exact; int64 for int32 x, where an int32 difference could
 * overflow, equal to it wherever it does not), then one conversion to float
 * and one multiply: the order ONNX Runtime uses, so results match it bit
 * for bit, and FakeQuant's s * (q - z) (q - z exact in float) too. */

static nnq_status dequantize_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *z = a->n_in > 2 ? a->in[2] : NULL;
    q_layout l;
    if (x->dtype != NNQ_DT_UINT8 && x->dtype != NNQ_DT_INT8 && x->dtype != NNQ_DT_INT32)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                           "x is %s; nnq dequantizes uint8, int8 or int32",
                           nnq_dtype_name(x->dtype));
    if (z && z->dtype != x->dtype)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "x_zero_point is %s but x is %s",
                           nnq_dtype_name(z->dtype), nnq_dtype_name(x->dtype));
    NNQ_TRY(q_layout_of(a, dq_names, a->opset >= 13, &l));
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, x->rank, x->dims);
}

static void dequantize_run_u8(const uint8_t *x, float *y, int64_t n, float s, int32_t z) {
    NNQ_SIMD for (int64_t i = 0; i < n; i++) y[i] = s * (float)((int32_t)x[i] - z);
}

static void dequantize_run_i8(const int8_t *x, float *y, int64_t n, float s, int32_t z) {
    NNQ_SIMD for (int64_t i = 0; i < n; i++) y[i] = s * (float)((int32_t)x[i] - z);
}

static void dequantize_run_i32(const int32_t *x, float *y, int64_t n, float s, int64_t z) {
    for (int64_t i = 0; i < n; i++) y[i] = s * (float)((int64_t)x[i] - z);
}

static nnq_status dequantize_forward(const nnq_op_args *a) {
    const nnq_tensor *xt = a->in[0], *z = a->n_in > 2 ? a->in[2] : NULL;
    q_layout l;
    NNQ_TRY(q_layout_of(a, dq_names, a->opset >= 13, &l));
    const float *scale = nnq_f32(a->in[1]);
    float *y = nnq_f32(a->out[0]);
    const nnq_dtype dt = xt->dtype;
    int nt = q_threads(a, nnq_tensor_numel(xt));
    NNQ_PARALLEL_FOR(nt, k, l.units, {
        int64_t c, j0, j1, len;
        q_unit(&l, k, &c, &j0, &j1);
        const float s = scale[c];
        const int64_t zc = z ? nnq_tensor_get_int(z, c) : 0;
        for (int64_t j = j0; j < j1; j += len) {
            int64_t off = q_run(&l, c, j, j1, &len);
            if (dt == NNQ_DT_UINT8)
                dequantize_run_u8((const uint8_t *)xt->data + off, y + off, len, s, (int32_t)zc);
            else if (dt == NNQ_DT_INT8)
                dequantize_run_i8((const int8_t *)xt->data + off, y + off, len, s, (int32_t)zc);
            else dequantize_run_i32((const int32_t *)xt->data + off, y + off, len, s, zc);
        }
    });
    return NNQ_OK;
}

/* ---- FakeQuant (domain com.nnq) ----
 * Inputs X (float32), scale and zero_point (float32, one element or [C]
 * along `axis`); attributes qmin, qmax (required), axis (default 1),
 * enabled (default 1; 0: Y = X), grad_scale (default 1, backward only),
 * round_zero_point (default 0; 1: a learned offset, below).
 *
 *   Y = s * (clamp(round_half_even(X / s) + z, qmin, qmax) - z)
 *
 * Scales must be positive and finite, zero points finite and inside
 * [qmin, qmax] (checked at run time, when enabled). The zero point is
 * integer-valued in every graph nnq builds (or, with round_zero_point, a
 * real number the op rounds); a fractional one without it is not refused:
 * Y stays defined and the zero-point gradient below is then its exact
 * derivative.
 *
 * Precision: grids narrower than 2^22 whose ends lie within +-2^22 (every
 * 2..16-bit grid) run in float, exactly as nnq_fake_quant_f. Wider grids
 * (the 32-bit bias grid, qmin = -2^31, qmax = 2^31 - 1) cannot be held by a
 * float: they run in double, X / s a double division, rounded by rint
 * (half to even under the default rounding mode), same semantics.
 *
 * Backward, with q = round(X / s) + z before clamping (NaN X: no gradient;
 * Y is 0 whatever the parameters):
 *   dX = dY where qmin <= q <= qmax, else 0  (straight-through estimator);
 *   d scale = sum over the channel of dY * (q - z - X/s) inside,
 *             dY * (qmin - z) below, dY * (qmax - z) above  (LSQ);
 *   d zero_point = sum over the channel of dY * (-s) where clamped, 0 inside;
 * the last two times grad_scale (LSQ's gradient scale g = 1/sqrt(N Qp) is
 * the caller's to choose). Outside the grid these are Y's exact partial
 * derivatives; inside, d scale is LSQ's estimate (round's derivative taken
 * as 1), which differs from Y's exact derivative round(X/s) by -X/s.
 *
 * Learned offset (attribute round_zero_point = 1, for LSQ+ and PyTorch's
 * _LearnableFakeQuantize): the zero point input is a real number that an
 * optimizer moves in small steps; forward and backward both use
 * z' = round_half_even(clamp(z, qmin, qmax)) in place of z, so Y is always
 * on an integer grid (exportable as QDQ), and d zero_point, computed at z',
 * passes straight through the rounding to z. With beta = -s z' this is
 * LSQ+'s x_hat = s clamp(round((x - beta) / s), qmin, qmax) + beta: LSQ+'s
 * d x_hat / d beta (0 inside, 1 outside) times d beta / d z' = -s. Any
 * finite z is accepted in this mode. (PyTorch rounds z half to even in its
 * forward but as floor(z + 0.5) in its backward; here both use z'.) */

typedef struct fq_params {
    int64_t qmin, qmax;
    bool enabled;
    bool wide; /* the double path */
    bool round_zp; /* learned offset: use round(clamp(z)) */
    float grad_scale;
} fq_params;

#define FQ_FLOAT_GRID ((int64_t)1 << 22) /* float path: width and ends within this */

static nnq_status fq_attrs(const nnq_op_args *a, fq_params *p) {
    const nnq_attr *lo = nnq_node_attr(a->node, "qmin"), *hi = nnq_node_attr(a->node, "qmax");
    if (!lo || lo->type != NNQ_ATTR_INT || !hi || hi->type != NNQ_ATTR_INT)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "integer attributes qmin and qmax are required");
    p->qmin = lo->i;
    p->qmax = hi->i;
    if (p->qmin >= p->qmax || p->qmin < INT32_MIN || p->qmax > INT32_MAX)
        return nnq_op_fail(a, NNQ_ERR_INVALID,
                           "grid [%lld, %lld] must have qmin < qmax, both within int32",
                           (long long)p->qmin, (long long)p->qmax);
    p->enabled = nnq_node_attr_int(a->node, "enabled", 1) != 0;
    p->grad_scale = nnq_node_attr_float(a->node, "grad_scale", 1.0f);
    p->round_zp = nnq_node_attr_int(a->node, "round_zero_point", 0) != 0;
    p->wide = !(p->qmax - p->qmin < FQ_FLOAT_GRID && p->qmin >= -FQ_FLOAT_GRID &&
                p->qmax <= FQ_FLOAT_GRID);
    return NNQ_OK;
}

/* Scales positive and finite, zero points finite and on the grid. */
static nnq_status fq_check_params(const nnq_op_args *a, const fq_params *p) {
    const nnq_tensor *s = a->in[1], *z = a->in[2];
    int64_t n = nnq_tensor_numel(s);
    for (int64_t c = 0; c < n; c++) {
        float sc = nnq_f32(s)[c], zc = nnq_f32(z)[c];
        if (!(sc > 0.0f) || !isfinite(sc))
            return nnq_op_fail(a, NNQ_ERR_INVALID, "scale[%lld] is %g; it must be positive",
                               (long long)c, (double)sc);
        if (p->round_zp ? !isfinite(zc)
                        : !((double)zc >= (double)p->qmin && (double)zc <= (double)p->qmax))
            return nnq_op_fail(a, NNQ_ERR_INVALID,
                               "zero_point[%lld] is %g, outside the grid [%lld, %lld]",
                               (long long)c, (double)zc, (long long)p->qmin,
                               (long long)p->qmax);
    }
    return NNQ_OK;
}

/* The zero point channel c runs with: z, or in the learned-offset mode z
 * clamped to the grid and rounded half to even. */
static double fq_zero_point(const fq_params *p, const float *zp, int64_t c) {
    double z = zp[c];
    if (!p->round_zp) return z;
    z = z < (double)p->qmin ? (double)p->qmin : (z > (double)p->qmax ? (double)p->qmax : z);
    return nearbyint(z);
}

static nnq_status fq_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    fq_params p;
    q_layout l;
    NNQ_TRY(fq_attrs(a, &p));
    if (x->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "X is %s; FakeQuant takes float32",
                           nnq_dtype_name(x->dtype));
    if (a->in[2]->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "zero_point is %s; FakeQuant takes float32",
                           nnq_dtype_name(a->in[2]->dtype));
    NNQ_TRY(q_layout_of(a, fq_names, true, &l));
    /* Constant parameters are checked now, at preparation. */
    if (p.enabled && a->in[1]->data && a->in[2]->data) NNQ_TRY(fq_check_params(a, &p));
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, x->rank, x->dims);
}

/* Y for one run of X sharing (s, z): float grid, nnq_fake_quant_f's
 * arithmetic written without branches so the loop vectorises (bit for bit
 * the same: a NaN passes both clamps and is then replaced by z). */
static void fq_run_f(const float *x, float *y, int64_t n, float s, float z, float qmin,
                     float qmax) {
    const float lo = qmin - z - 1.0f, hi = qmax - z + 1.0f;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) {
        const float v = x[i] / s;
        const float c = v < lo ? lo : (v > hi ? hi : v);
        float q = nnq_round_half_even(c) + z;
        q = q < qmin ? qmin : (q > qmax ? qmax : q);
        q = v != v ? z : q;
        y[i] = nnq_dequantize_f(q, s, z);
    }
}

/* The same on a wide grid, in double. */
static void fq_run_d(const float *x, float *y, int64_t n, double s, double z, double qmin,
                     double qmax) {
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i] / s, q = z; /* NaN: z */
        if (v == v) {
            q = rint(v) + z;
            q = q < qmin ? qmin : (q > qmax ? qmax : q);
        }
        y[i] = (float)(s * (q - z));
    }
}

/* Backward sums of one unit: sum of dY * (q - z - X/s) inside the grid,
 * and of dY below and above it. */
typedef struct fq_sums {
    double in, below, above;
} fq_sums;

/* dX += dY inside the grid (dx may be NULL), and the unit's sums; float
 * grid, classifying exactly as nnq_quantize_f rounds and clamps. Written
 * to vectorise: per chunk of FQ_CHUNK elements, one branch-free pass puts
 * each element's terms in small arrays (an element outside the grid gets
 * 0 for dX, a NaN X, whose q compares false both ways, 0 everywhere), then
 * each array is summed in float (within FQ_CHUNK ulps of the chunk's
 * magnitude) and the chunks in double. */
#define FQ_CHUNK 256

static float fq_sum(const float *t, int64_t n) {
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < n; k++) acc += t[k];
    return acc;
}

/* x where mask is all ones, +0.0f where it is 0 (a select the compiler
 * vectorises; float selects on computed values it will not, as long as it
 * must preserve floating-point exception flags). */
static inline float fq_keep(float x, uint32_t mask) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    b &= mask;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* Chunk terms: tg = dY inside the grid (else 0), tin = dY (round(v) - v)
 * inside, tb = dY below, ta = dY above; branch-free, so it vectorises. A
 * NaN v compares false both ways: 0 in all four. */
static void fq_grad_terms(const float *xc, const float *dc, int64_t m, float s, float z,
                          float lo, float hi, float qmin, float qmax, float *tg, float *tin,
                          float *tb, float *ta) {
    NNQ_SIMD for (int64_t k = 0; k < m; k++) {
        const float v = xc[k] / s;
        const float r = nnq_round_half_even(v < lo ? lo : (v > hi ? hi : v)), q = r + z;
        const float g = dc[k];
        const uint32_t below = -(uint32_t)(q < qmin), above = -(uint32_t)(q > qmax);
        const uint32_t inside = -(uint32_t)((q >= qmin) & (q <= qmax));
        tg[k] = fq_keep(g, inside);
        tin[k] = fq_keep(g * fq_keep(r - v, inside), inside); /* r - v is exact in float */
        tb[k] = fq_keep(g, below);
        ta[k] = fq_keep(g, above);
    }
}

static void fq_grad_f(const float *x, const float *dy, float *dx, int64_t n, float s, float z,
                      float qmin, float qmax, fq_sums *t) {
    const float lo = qmin - z - 1.0f, hi = qmax - z + 1.0f;
    float tg[FQ_CHUNK], tin[FQ_CHUNK], tb[FQ_CHUNK], ta[FQ_CHUNK];
    double in = 0, below = 0, above = 0;
    for (int64_t i0 = 0; i0 < n; i0 += FQ_CHUNK) {
        const int64_t m = n - i0 < FQ_CHUNK ? n - i0 : FQ_CHUNK;
        fq_grad_terms(x + i0, dy + i0, m, s, z, lo, hi, qmin, qmax, tg, tin, tb, ta);
        if (dx) {
            float *dxc = dx + i0;
            NNQ_SIMD for (int64_t k = 0; k < m; k++) dxc[k] += tg[k];
        }
        in += fq_sum(tin, m);
        below += fq_sum(tb, m);
        above += fq_sum(ta, m);
    }
    t->in += in;
    t->below += below;
    t->above += above;
}

static void fq_grad_d(const float *x, const float *dy, float *dx, int64_t n, double s, double z,
                      double qmin, double qmax, fq_sums *t) {
    double in = 0, below = 0, above = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i] / s;
        if (v != v) continue;
        double r = rint(v), q = r + z, g = dy[i];
        if (q < qmin) {
            below += g;
        } else if (q > qmax) {
            above += g;
        } else {
            if (dx) dx[i] += dy[i];
            in += g * (r - v);
        }
    }
    t->in += in;
    t->below += below;
    t->above += above;
}

static nnq_status fq_forward(const nnq_op_args *a) {
    fq_params p;
    q_layout l;
    NNQ_TRY(fq_attrs(a, &p));
    NNQ_TRY(q_layout_of(a, fq_names, true, &l));
    const float *x = nnq_f32(a->in[0]);
    float *y = nnq_f32(a->out[0]);
    int64_t n = nnq_tensor_numel(a->in[0]);
    if (!p.enabled) {
        if (n > 0 && y != x) memcpy(y, x, (size_t)n * sizeof *y);
        return NNQ_OK;
    }
    NNQ_TRY(fq_check_params(a, &p));
    const float *scale = nnq_f32(a->in[1]), *zp = nnq_f32(a->in[2]);
    int nt = q_threads(a, n);
    NNQ_PARALLEL_FOR(nt, k, l.units, {
        int64_t c, j0, j1, len;
        q_unit(&l, k, &c, &j0, &j1);
        for (int64_t j = j0; j < j1; j += len) {
            int64_t off = q_run(&l, c, j, j1, &len);
            const double z = fq_zero_point(&p, zp, c);
            if (p.wide)
                fq_run_d(x + off, y + off, len, scale[c], z, (double)p.qmin, (double)p.qmax);
            else
                fq_run_f(x + off, y + off, len, scale[c], (float)z, (float)p.qmin,
                         (float)p.qmax);
        }
    });
    return NNQ_OK;
}

static nnq_status fq_backward(const nnq_op_args *a) {
    const float *dy;
    float *dx, *ds, *dz;
    fq_params p;
    q_layout l;
    fq_sums *sums = NULL;
    NNQ_TRY(nnq_op_out_grad(a, &dy));
    if (!dy) return NNQ_OK;
    NNQ_TRY(fq_attrs(a, &p));
    NNQ_TRY(q_layout_of(a, fq_names, true, &l));
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    NNQ_TRY(nnq_op_in_grad(a, 1, &ds));
    NNQ_TRY(nnq_op_in_grad(a, 2, &dz));
    int64_t n = nnq_tensor_numel(a->in[0]);
    if (!p.enabled) { /* Y = X: the parameters get nothing */
        if (dx) nnq_grad_accumulate(dx, dy, n, a->threads);
        return NNQ_OK;
    }
    NNQ_TRY(fq_check_params(a, &p));
    if (!dx && !ds && !dz) return NNQ_OK;
    if ((ds || dz) && l.units > 0) {
        sums = calloc((size_t)l.units, sizeof *sums);
        if (!sums) return nnq_op_fail(a, NNQ_ERR_NOMEM, "out of memory for gradient sums");
    }
    const float *x = nnq_f32(a->in[0]), *scale = nnq_f32(a->in[1]), *zp = nnq_f32(a->in[2]);
    int nt = q_threads(a, n);
    NNQ_PARALLEL_FOR(nt, k, l.units, {
        int64_t c, j0, j1, len;
        fq_sums t = {0, 0, 0};
        q_unit(&l, k, &c, &j0, &j1);
        for (int64_t j = j0; j < j1; j += len) {
            int64_t off = q_run(&l, c, j, j1, &len);
            float *dxo = dx ? dx + off : NULL;
            const double z = fq_zero_point(&p, zp, c);
            if (p.wide)
                fq_grad_d(x + off, dy + off, dxo, len, scale[c], z, (double)p.qmin,
                          (double)p.qmax, &t);
            else
                fq_grad_f(x + off, dy + off, dxo, len, scale[c], (float)z, (float)p.qmin,
                          (float)p.qmax, &t);
        }
        if (sums) sums[k] = t;
    });
    /* Per channel, its units' sums in order: the same for any thread count. */
    for (int64_t c = 0; sums && c < l.channels; c++) {
        fq_sums t = {0, 0, 0};
        for (int64_t b = 0; b < l.blocks; b++) {
            t.in += sums[c * l.blocks + b].in;
            t.below += sums[c * l.blocks + b].below;
            t.above += sums[c * l.blocks + b].above;
        }
        double z = fq_zero_point(&p, zp, c), g = p.grad_scale;
        if (ds)
            ds[c] += (float)(g * (t.in + t.below * ((double)p.qmin - z) +
                                  t.above * ((double)p.qmax - z)));
        if (dz) dz[c] += (float)(g * -(double)scale[c] * (t.below + t.above));
    }
    free(sums);
    return NNQ_OK;
}

const nnq_op_def nnq_op_QuantizeLinear = {
    .op_type = "QuantizeLinear",
    .min_inputs = 2, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = quantize_infer,
    .forward = quantize_forward,
};
const nnq_op_def nnq_op_DequantizeLinear = {
    .op_type = "DequantizeLinear",
    .min_inputs = 2, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = dequantize_infer,
    .forward = dequantize_forward,
};
const nnq_op_def nnq_op_FakeQuant = {
    .op_type = "FakeQuant",
    .domain = NNQ_DOMAIN,
    .min_inputs = 3, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = fq_infer,
    .forward = fq_forward,
    .backward = fq_backward,
};
