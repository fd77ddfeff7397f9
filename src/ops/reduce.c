/* ReduceMean over a set of axes (attribute before opset 18, input from
 * opset 18), float only.
 *
 * Adjacent dims reduced (or kept) together are merged first, so the
 * common cases are one contiguous loop: reduce-all, and mean over trailing
 * axes (e.g. H,W of NCHW) as independent rows that threads split. The
 * backward spreads dy / count back over the same merged dims. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/broadcast.h"
#include "ops/op.h"

/* Which axes of in[0] are reduced; *noop when axes are empty and
 * noop_with_empty_axes is set (the output is then the input). */
static nnq_status reduce_axes(const nnq_op_args *a, bool *reduced, bool *noop) {
    const nnq_tensor *x = a->in[0];
    const nnq_tensor *axes_in = a->n_in > 1 ? a->in[1] : NULL;
    const int64_t *attr = NULL;
    int64_t count;
    int r = x->rank;
    if (axes_in) {
        if (!axes_in->data)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "the axes input must be a constant (or known at run time)");
        count = nnq_tensor_numel(axes_in);
    } else {
        count = nnq_node_attr_ints(a->node, "axes", &attr);
    }
    *noop = false;
    for (int i = 0; i < r; i++) reduced[i] = count == 0;
    if (count == 0 && nnq_node_attr_int(a->node, "noop_with_empty_axes", 0)) {
        for (int i = 0; i < r; i++) reduced[i] = false;
        *noop = true;
    }
    for (int64_t k = 0; k < count; k++) {
        int64_t ax = axes_in ? nnq_tensor_get_int(axes_in, k) : attr[k];
        if (ax < -r || ax >= r)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for rank %d",
                               (long long)ax, r);
        if (ax < 0) ax += r;
        if (reduced[ax])
            return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is repeated", (long long)ax);
        reduced[ax] = true;
    }
    return NNQ_OK;
}

static nnq_status reduce_mean_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    bool reduced[NNQ_MAX_RANK];
    bool noop;
    int64_t dims[NNQ_MAX_RANK];
    int r = 0;
    if (x->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported (float only)",
                           nnq_dtype_name(x->dtype));
    NNQ_TRY(reduce_axes(a, reduced, &noop));
    bool keep = nnq_node_attr_int(a->node, "keepdims", 1) != 0;
    for (int i = 0; i < x->rank; i++) {
        if (!reduced[i]) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    return nnq_tensor_set_shape(a->out[0], x->dtype, r, dims);
}

/* Sum of x[0..n), eight partial sums so the loop vectorises. */
static float row_sum(const float *x, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += x[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* General case over merged dims md (flag mr: reduced): accumulate into y
 * (zeroed), walking the input in order. */
static void reduce_general(const float *x, float *y, int m, const int64_t *md, const bool *mr) {
    int64_t sx[NNQ_MAX_RANK], sy[NNQ_MAX_RANK], idx[NNQ_MAX_RANK];
    int64_t stride_x = 1, stride_y = 1, ox = 0, oy = 0, outer = 1;
    for (int d = m - 1; d >= 0; d--) {
        sx[d] = stride_x;
        stride_x *= md[d];
        sy[d] = mr[d] ? 0 : stride_y;
        if (!mr[d]) stride_y *= md[d];
        idx[d] = 0;
    }
    for (int d = 0; d < m - 1; d++) outer *= md[d];
    int64_t inner = md[m - 1];
    for (int64_t row = 0; row < outer; row++) {
        if (mr[m - 1]) {
            y[oy] += row_sum(x + ox, inner);
        } else {
            NNQ_SIMD for (int64_t k = 0; k < inner; k++) y[oy + k] += x[ox + k];
        }
        for (int d = m - 2; d >= 0; d--) {
            ox += sx[d];
            oy += sy[d];
            if (++idx[d] < md[d]) break;
            ox -= sx[d] * md[d];
            oy -= sy[d] * md[d];
            idx[d] = 0;
        }
    }
}

/* Merge x's dims into runs reduced (mr) or kept together (md, *m of
 * them; size-1 dims dropped); *count = elements averaged per output. */
static nnq_status reduce_plan(const nnq_op_args *a, int64_t *md, bool *mr, int *m,
                              int64_t *count) {
    const nnq_tensor *xt = a->in[0];
    bool reduced[NNQ_MAX_RANK], noop;
    NNQ_TRY(reduce_axes(a, reduced, &noop));
    *m = 0;
    *count = 1;
    for (int i = 0; i < xt->rank; i++) {
        if (reduced[i]) *count *= xt->dims[i];
        if (xt->dims[i] == 1) continue;
        if (*m > 0 && mr[*m - 1] == reduced[i]) {
            md[*m - 1] *= xt->dims[i];
        } else {
            md[*m] = xt->dims[i];
            mr[(*m)++] = reduced[i];
        }
    }
    return NNQ_OK;
}

static nnq_status reduce_mean_forward(const nnq_op_args *a) {
    const nnq_tensor *xt = a->in[0];
    nnq_tensor *yt = a->out[0];
    const float *x = nnq_f32(xt); /* input, any shape */
    float *y = nnq_f32(yt);       /* reduced dims removed or 1 */
    bool mr[NNQ_MAX_RANK];
    int64_t md[NNQ_MAX_RANK], count;
    int m;
    NNQ_TRY(reduce_plan(a, md, mr, &m, &count));
    int64_t n_out = nnq_tensor_numel(yt), n_in = nnq_tensor_numel(xt);
    if (n_out <= 0) return NNQ_OK;
    if (count == 0) { /* mean of nothing */
        for (int64_t i = 0; i < n_out; i++) y[i] = NAN;
        return NNQ_OK;
    }
    if (count == 1) { /* only size-1 dims reduced: same elements, same order */
        memcpy(y, x, (size_t)n_in * sizeof(float));
        return NNQ_OK;
    }
    if (mr[m - 1] && (m == 1 || (m == 2 && !mr[0]))) {
        /* (K, R): K independent row means */
        int64_t rows = m == 2 ? md[0] : 1, len = md[m - 1];
        int nt = a->threads > 1 && n_in >= NNQ_PARALLEL_MIN_ELEMS ? a->threads : 1;
        NNQ_PARALLEL_FOR(nt, k, rows, y[k] = row_sum(x + k * len, len) / (float)count;);
        return NNQ_OK;
    }
    memset(y, 0, (size_t)n_out * sizeof(float));
    reduce_general(x, y, m, md, mr);
    const float fcount = (float)count;
    NNQ_SIMD for (int64_t i = 0; i < n_out; i++) y[i] /= fcount;
    return NNQ_OK;
}

/* Backward: every x element gets dy of its output / count, accumulated.
 * Rows of the innermost merged dim are independent (each writes its own
 * slice of dx), so threads split the rows. */
static nnq_status reduce_mean_backward(const nnq_op_args *a) {
    const nnq_tensor *xt = a->in[0], *dyt = a->out_grad[0];
    nnq_tensor *dxt = a->in_grad[0];
    bool mr[NNQ_MAX_RANK];
    int64_t md[NNQ_MAX_RANK], count;
    int m;
    if (!dyt || !dxt) return NNQ_OK;
    NNQ_TRY(reduce_plan(a, md, mr, &m, &count));
    const float *dy = nnq_f32(dyt); /* output's shape */
    float *dx = nnq_f32(dxt);       /* input's shape */
    int64_t n_in = nnq_tensor_numel(xt);
    if (n_in <= 0) return NNQ_OK;
    if (count == 1) { /* nothing (or only size-1 dims) reduced: same order */
        nnq_grad_accumulate(dx, dy, n_in, a->threads);
        return NNQ_OK;
    }
    const float scale = 1.0f / (float)count;
    int64_t sx[NNQ_MAX_RANK], sy[NNQ_MAX_RANK], stride_x = 1, stride_y = 1;
    for (int d = m - 1; d >= 0; d--) {
        sx[d] = stride_x;
        stride_x *= md[d];
        sy[d] = mr[d] ? 0 : stride_y;
        if (!mr[d]) stride_y *= md[d];
    }
    int64_t inner = md[m - 1], rows = n_in / inner;
    const bool inner_reduced = mr[m - 1];
    int nt = a->threads > 1 && n_in >= NNQ_PARALLEL_MIN_ELEMS && rows > 1 ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, t, nt, {
        int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
        int64_t idx[NNQ_MAX_RANK], ox = 0, oy = 0, rest = r0;
        for (int d = m - 2; d >= 0; d--) {
            idx[d] = rest % md[d];
            rest /= md[d];
            ox += idx[d] * sx[d];
            oy += idx[d] * sy[d];
        }
        for (int64_t row = r0; row < r1; row++) {
            float *g = dx + ox;
            if (inner_reduced) {
                const float v = dy[oy] * scale;
                NNQ_SIMD for (int64_t k = 0; k < inner; k++) g[k] += v;
            } else {
                const float *src = dy + oy;
                NNQ_SIMD for (int64_t k = 0; k < inner; k++) g[k] += src[k] * scale;
            }
            for (int d = m - 2; d >= 0; d--) {
                ox += sx[d];
                oy += sy[d];
                if (++idx[d] < md[d]) break;
                ox -= sx[d] * md[d];
                oy -= sy[d] * md[d];
                idx[d] = 0;
            }
        }
    });
    return NNQ_OK;
}

const nnq_op_def nnq_op_ReduceMean = {
    .op_type = "ReduceMean",
    .min_inputs = 1, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = reduce_mean_infer,
    .forward = reduce_mean_forward,
    .backward = reduce_mean_backward,
};
