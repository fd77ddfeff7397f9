/* MaxPool, AveragePool and GlobalAveragePool over X (N, C, D1..Dk).
 * Windows come from window.h; each (image, channel) plane is pooled in the
 * 3-D form (leading unit dims), visiting only taps inside the input, so
 * padding never needs a bounds test per element. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/op.h"
#include "ops/window.h"

#define PARALLEL_MIN_WORK 65536

static int pool_threads(const nnq_op_args *a, int64_t work) {
    return a->threads > 1 && work >= PARALLEL_MIN_WORK ? a->threads : 1;
}

static nnq_status pool_check_dtype(const nnq_op_args *a, bool allow_int8) {
    nnq_dtype t = a->in[0]->dtype;
    if (t == NNQ_DT_FLOAT || (allow_int8 && (t == NNQ_DT_UINT8 || t == NNQ_DT_INT8)))
        return NNQ_OK;
    return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "input X has dtype %s; only %s supported",
                       nnq_dtype_name(t), allow_int8 ? "float32, int8 and uint8 are" : "float32 is");
}

/* Output shape (N, C, out...) of a windowed pool. */
static nnq_status pool_infer_window(const nnq_op_args *a, nnq_window *w) {
    const nnq_tensor *x = a->in[0];
    int64_t dims[NNQ_MAX_RANK];
    NNQ_TRY(nnq_window_init(a, x, NULL, w));
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int d = 0; d < w->rank; d++) dims[2 + d] = w->out[d];
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, dims);
}

/* ---- MaxPool ---- */

static nnq_status maxpool_infer(const nnq_op_args *a) {
    nnq_window w;
    NNQ_TRY(pool_check_dtype(a, true));
    NNQ_TRY(pool_infer_window(a, &w));
    if (a->n_out > 1 && a->out[1]) {
        const nnq_tensor *y = a->out[0];
        NNQ_TRY(nnq_tensor_set_shape(a->out[1], NNQ_DT_INT64, y->rank, y->dims));
    }
    return NNQ_OK;
}

/* One plane; idx (optional) receives the flat index of each maximum within
 * the plane (row-major, or column-major over the spatial dims), ties going
 * to the first tap in row-major order. */
#define DEFINE_MAXPOOL_PLANE(NAME, T, LOWEST)                                               \
    static void NAME(const nnq_window *w, const T *x, T *y, int64_t *idx, bool col_major) { \
        const int64_t D = w->in[0], H = w->in[1], W = w->in[2];                             \
        int64_t o = 0;                                                                      \
        for (int64_t od = 0; od < w->out[0]; od++) {                                        \
            int64_t dlo, dhi, d0 = od * w->stride[0] - w->pad_begin[0];                     \
            nnq_window_taps(w, 0, od, &dlo, &dhi);                                          \
            for (int64_t oh = 0; oh < w->out[1]; oh++) {                                    \
                int64_t hlo, hhi, h0 = oh * w->stride[1] - w->pad_begin[1];                 \
                nnq_window_taps(w, 1, oh, &hlo, &hhi);                                      \
                for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {                           \
                    int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];             \
                    nnq_window_taps(w, 2, ow, &wlo, &whi);                                  \
                    T best = LOWEST;                                                        \
                    int64_t at = -1;                                                        \
                    for (int64_t kd = dlo; kd < dhi; kd++) {                                \
                        int64_t id = d0 + kd * w->dilation[0];                              \
                        for (int64_t kh = hlo; kh < hhi; kh++) {                            \
                            int64_t ih = h0 + kh * w->dilation[1];                          \
                            const T *row = x + (id * H + ih) * W + w0;                      \
                            for (int64_t kw = wlo; kw < whi; kw++) {                        \
                                T v = row[kw * w->dilation[2]];                             \
                                if (v > best || at < 0) {                                   \
                                    best = v;                                               \
                                    at = (id * H + ih) * W + w0 + kw * w->dilation[2];      \
                                }                                                           \
                            }                                                               \
                        }                                                                   \
                    }                                                                       \
                    y[o] = best;                                                            \
                    if (idx) {                                                              \
                        if (col_major && at >= 0) {                                         \
                            int64_t iw = at % W, ih = at / W % H, id = at / (W * H);        \
                            at = id + D * (ih + H * iw);                                    \
                        }                                                                   \
                        idx[o] = at;                                                        \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

DEFINE_MAXPOOL_PLANE(maxpool_plane_f32, float, -INFINITY)
DEFINE_MAXPOOL_PLANE(maxpool_plane_u8, uint8_t, 0)
DEFINE_MAXPOOL_PLANE(maxpool_plane_i8, int8_t, INT8_MIN)

static nnq_status maxpool_forward(const nnq_op_args *a) {
    nnq_window win, w;
    NNQ_TRY(pool_check_dtype(a, true));
    NNQ_TRY(nnq_window_init(a, a->in[0], NULL, &win));
    nnq_window_to_3d(&win, &w);
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_size = w.in[0] * w.in[1] * w.in[2], out_size = w.out[0] * w.out[1] * w.out[2];
    int64_t *idx = a->n_out > 1 && a->out[1] ? nnq_i64(a->out[1]) : NULL;
    bool col_major = nnq_node_attr_int(a->node, "storage_order", 0) != 0;
    int threads = pool_threads(a, planes * out_size * w.kernel[0] * w.kernel[1] * w.kernel[2]);
    size_t es = nnq_dtype_size(x->dtype);
    const char *xs = x->data;
    char *ys = a->out[0]->data;

    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const void *xp = xs + (size_t)(p * in_size) * es;
        void *yp = ys + (size_t)(p * out_size) * es;
        int64_t *ip = idx ? idx + p * out_size : NULL;
        switch (x->dtype) {
        case NNQ_DT_UINT8: maxpool_plane_u8(&w, xp, yp, ip, col_major); break;
        case NNQ_DT_INT8: maxpool_plane_i8(&w, xp, yp, ip, col_major); break;
        default: maxpool_plane_f32(&w, xp, yp, ip, col_major); break;
        }
        if (ip) /* indices are flat over the whole tensor (N, C, spatial) */
            for (int64_t o = 0; o < out_size; o++)
                if (ip[o] >= 0) ip[o] += p * in_size;
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_MaxPool = {
    .op_type = "MaxPool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 2,
    .infer = maxpool_infer,
    .forward = maxpool_forward,
};

/* ---- AveragePool ---- */

static nnq_status avgpool_infer(const nnq_op_args *a) {
    nnq_window w;
    NNQ_TRY(pool_check_dtype(a, false));
    return pool_infer_window(a, &w);
}

/* Taps of the window at `o` along dim d that land in the padded input
 * [-pad_begin, in + pad_end): the divisor with count_include_pad. */
static int64_t padded_taps(const nnq_window *w, int d, int64_t o) {
    int64_t start = o * w->stride[d];  /* relative to -pad_begin */
    int64_t limit = w->in[d] + w->pad_begin[d] + w->pad_end[d];
    int64_t n = nnq_ceil_div(limit - start, w->dilation[d]);
    return n < 0 ? 0 : n < w->kernel[d] ? n : w->kernel[d];
}

static void avgpool_plane(const nnq_window *w, const float *x, float *y, bool include_pad) {
    const int64_t H = w->in[1], W = w->in[2];
    int64_t o = 0;
    for (int64_t od = 0; od < w->out[0]; od++) {
        int64_t dlo, dhi, d0 = od * w->stride[0] - w->pad_begin[0];
        nnq_window_taps(w, 0, od, &dlo, &dhi);
        int64_t dn = include_pad ? padded_taps(w, 0, od) : dhi - dlo;
        for (int64_t oh = 0; oh < w->out[1]; oh++) {
            int64_t hlo, hhi, h0 = oh * w->stride[1] - w->pad_begin[1];
            nnq_window_taps(w, 1, oh, &hlo, &hhi);
            int64_t hn = include_pad ? padded_taps(w, 1, oh) : hhi - hlo;
            for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {
                int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];
                nnq_window_taps(w, 2, ow, &wlo, &whi);
                int64_t wn = include_pad ? padded_taps(w, 2, ow) : whi - wlo;
                float sum = 0;
                for (int64_t kd = dlo; kd < dhi; kd++) {
                    int64_t id = d0 + kd * w->dilation[0];
                    for (int64_t kh = hlo; kh < hhi; kh++) {
                        const float *row = x + (id * H + h0 + kh * w->dilation[1]) * W + w0;
                        for (int64_t kw = wlo; kw < whi; kw++) sum += row[kw * w->dilation[2]];
                    }
                }
                int64_t count = dn * hn * wn;
                y[o] = count > 0 ? sum / (float)count : 0.0f;
            }
        }
    }
}

static nnq_status avgpool_forward(const nnq_op_args *a) {
    nnq_window win, w;
    NNQ_TRY(pool_check_dtype(a, false));
    NNQ_TRY(nnq_window_init(a, a->in[0], NULL, &win));
    nnq_window_to_3d(&win, &w);
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_size = w.in[0] * w.in[1] * w.in[2], out_size = w.out[0] * w.out[1] * w.out[2];
    bool include_pad = nnq_node_attr_int(a->node, "count_include_pad", 0) != 0;
    int threads = pool_threads(a, planes * out_size * w.kernel[0] * w.kernel[1] * w.kernel[2]);
    const float *xs = nnq_f32(x);
    float *ys = nnq_f32(a->out[0]);

    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        avgpool_plane(&w, xs + p * in_size, ys + p * out_size, include_pad);
    return NNQ_OK;
}

const nnq_op_def nnq_op_AveragePool = {
    .op_type = "AveragePool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = avgpool_infer,
    .forward = avgpool_forward,
};

/* ---- GlobalAveragePool: mean over all spatial dims, kept as size 1 ---- */

static nnq_status gap_check(const nnq_op_args *a) {
    char s[64];
    NNQ_TRY(pool_check_dtype(a, false));
    if (a->in[0]->rank < 2)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "X is %s, expected rank >= 2 (N, C, ...)",
                           nnq_shape_str(a->in[0], s, sizeof s));
    return NNQ_OK;
}

static nnq_status gap_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    NNQ_TRY(gap_check(a));
    int64_t dims[NNQ_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int d = 2; d < x->rank; d++) dims[d] = 1;
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, x->rank, dims);
}

static nnq_status gap_forward(const nnq_op_args *a) {
    NNQ_TRY(gap_check(a));
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t size = nnq_shape_numel(x->rank - 2, x->dims + 2);
    const float *xs = nnq_f32(x);
    float *y = nnq_f32(a->out[0]);
    int threads = pool_threads(a, planes * size);

    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = xs + p * size;
        float sum = 0;
        for (int64_t i = 0; i < size; i++) sum += xp[i];
        y[p] = size > 0 ? sum / (float)size : 0.0f;
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_GlobalAveragePool = {
    .op_type = "GlobalAveragePool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = gap_infer,
    .forward = gap_forward,
};
