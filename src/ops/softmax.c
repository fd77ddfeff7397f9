/* Softmax, float. Opset < 13 coerces the input to 2-D at `axis` (default
 * 1) and normalises each row of prod(dims[axis:]); opset >= 13 normalises
 * along the single dim `axis` (default -1). Both are (outer, len, inner)
 * views: opset < 13 is inner = 1.
 *
 * Stable: exp(x - max) so nothing overflows. With inner > 1 the axis is
 * strided; columns are processed TILE at a time with their running max
 * and sum on the stack, so every inner loop is contiguous. The backward
 * walks the same (outer, len, inner) views with the same tiling. */
#include <math.h>

#include "core/parallel.h"
#include "ops/broadcast.h"
#include "ops/op.h"

#define TILE 64

static nnq_status softmax_view(const nnq_op_args *a, const nnq_tensor *x, int64_t *outer,
                               int64_t *len, int64_t *inner) {
    int r = x->rank;
    bool legacy = a->opset > 0 && a->opset < 13;
    int64_t axis = nnq_node_attr_int(a->node, "axis", legacy ? 1 : -1);
    if (axis < -r || axis >= r)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for rank %d",
                           (long long)axis, r);
    if (axis < 0) axis += r;
    *outer = nnq_shape_numel((int)axis, x->dims);
    if (legacy) {
        *len = nnq_shape_numel(r - (int)axis, x->dims + axis);
        *inner = 1;
    } else {
        *len = x->dims[axis];
        *inner = nnq_shape_numel(r - (int)axis - 1, x->dims + axis + 1);
    }
    return NNQ_OK;
}

static nnq_status softmax_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int64_t outer, len, inner;
    if (x->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported (float only)",
                           nnq_dtype_name(x->dtype));
    NNQ_TRY(softmax_view(a, x, &outer, &len, &inner));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, x->dims);
}

/* One contiguous row of n. */
static void softmax_row(const float *x, float *y, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - mx);
        sum += y[i];
    }
    float inv = 1.0f / sum;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

/* Columns [0, nc) (nc <= TILE) of a (len, inner) block, stride `inner`. */
static void softmax_cols(const float *x, float *y, int64_t len, int64_t inner, int64_t nc) {
    float mx[TILE], sum[TILE];
    for (int64_t c = 0; c < nc; c++) {
        mx[c] = x[c];
        sum[c] = 0.0f;
    }
    for (int64_t j = 1; j < len; j++)
        NNQ_SIMD for (int64_t c = 0; c < nc; c++) {
            float v = x[j * inner + c];
            mx[c] = v > mx[c] ? v : mx[c];
        }
    for (int64_t j = 0; j < len; j++)
        for (int64_t c = 0; c < nc; c++) {
            float e = expf(x[j * inner + c] - mx[c]);
            y[j * inner + c] = e;
            sum[c] += e;
        }
    for (int64_t c = 0; c < nc; c++) sum[c] = 1.0f / sum[c];
    for (int64_t j = 0; j < len; j++)
        NNQ_SIMD for (int64_t c = 0; c < nc; c++) y[j * inner + c] *= sum[c];
}

static nnq_status softmax_forward(const nnq_op_args *a) {
    const nnq_tensor *xt = a->in[0];
    const float *x = nnq_f32(xt); /* (outer, len, inner) */
    float *y = nnq_f32(a->out[0]); /* same */
    int64_t outer, len, inner;
    NNQ_TRY(softmax_view(a, xt, &outer, &len, &inner));
    if (outer <= 0 || len <= 0 || inner <= 0) return NNQ_OK;
    int64_t tiles = (inner + TILE - 1) / TILE, units = outer * tiles;
    int nt = a->threads > 1 && outer * len * inner >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, u, units, {
        int64_t o = u / tiles, c0 = (u % tiles) * TILE;
        const float *xb = x + o * len * inner + c0;
        float *yb = y + o * len * inner + c0;
        if (inner == 1) softmax_row(xb, yb, len);
        else softmax_cols(xb, yb, len, inner, inner - c0 < TILE ? inner - c0 : TILE);
    });
    return NNQ_OK;
}

/* ---- Backward: dx = y * (dy - sum_axis(dy * y)), from the output ---- */

static void softmax_grad_row(const float *y, const float *dy, float *dx, int64_t n) {
    float s = 0.0f;
    NNQ_SIMD_SUM for (int64_t i = 0; i < n; i++) s += dy[i] * y[i];
    NNQ_SIMD for (int64_t i = 0; i < n; i++) dx[i] += y[i] * (dy[i] - s);
}

/* Columns [0, nc) (nc <= TILE) of a (len, inner) block, stride `inner`. */
static void softmax_grad_cols(const float *y, const float *dy, float *dx, int64_t len,
                              int64_t inner, int64_t nc) {
    float dot[TILE] = {0};
    for (int64_t j = 0; j < len; j++)
        NNQ_SIMD for (int64_t c = 0; c < nc; c++) dot[c] += dy[j * inner + c] * y[j * inner + c];
    for (int64_t j = 0; j < len; j++)
        NNQ_SIMD for (int64_t c = 0; c < nc; c++) {
            int64_t k = j * inner + c;
            dx[k] += y[k] * (dy[k] - dot[c]);
        }
}

static nnq_status softmax_backward(const nnq_op_args *a) {
    const nnq_tensor *dyt = a->out_grad[0];
    nnq_tensor *dxt = a->in_grad[0];
    int64_t outer, len, inner;
    if (!dyt || !dxt) return NNQ_OK;
    NNQ_TRY(softmax_view(a, a->in[0], &outer, &len, &inner));
    if (outer <= 0 || len <= 0 || inner <= 0) return NNQ_OK;
    const float *y = nnq_f32(a->out[0]), *dy = nnq_f32(dyt); /* (outer, len, inner) */
    float *dx = nnq_f32(dxt);                                /* same */
    int64_t tiles = (inner + TILE - 1) / TILE, units = outer * tiles;
    int nt = a->threads > 1 && outer * len * inner >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, u, units, {
        int64_t o = u / tiles, c0 = (u % tiles) * TILE, off = o * len * inner + c0;
        if (inner == 1) softmax_grad_row(y + off, dy + off, dx + off, len);
        else softmax_grad_cols(y + off, dy + off, dx + off, len, inner,
                               inner - c0 < TILE ? inner - c0 : TILE);
    });
    return NNQ_OK;
}

const nnq_op_def nnq_op_Softmax = {
    .op_type = "Softmax",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = softmax_infer,
    .forward = softmax_forward,
    .backward = softmax_backward,
};
