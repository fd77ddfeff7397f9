/* MaxPool, AveragePool and GlobalAveragePool over X (N, C, D1..Dk),
 * forward and backward (float; backward recomputes MaxPool's argmax
 * from X, which the trainer keeps).
 * Windows come from window.h; each (image, channel) plane is pooled in the
 * 3-D form (leading unit dims), visiting only taps inside the input, so
 * padding never needs a bounds test per element. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/parallel.h"
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

/* One plane, as NAME (values only, branch-free max) and NAME##_idx (also
 * the flat index of each maximum within the plane, row-major or, with
 * col_major, column-major over the spatial dims; ties go to the first tap
 * in row-major order). */
#define DEFINE_MAXPOOL_PLANE(NAME, T, LOWEST)                                                  \
    static void NAME(const nnq_window *w, const T *x, T *y) {                                  \
        const int64_t H = w->in[1], W = w->in[2], dw = w->dilation[2];                         \
        int64_t o = 0;                                                                         \
        for (int64_t od = 0; od < w->out[0]; od++) {                                           \
            int64_t dlo, dhi, d0 = od * w->stride[0] - w->pad_begin[0];                        \
            nnq_window_taps(w, 0, od, &dlo, &dhi);                                             \
            for (int64_t oh = 0; oh < w->out[1]; oh++) {                                       \
                int64_t hlo, hhi, h0 = oh * w->stride[1] - w->pad_begin[1];                    \
                nnq_window_taps(w, 1, oh, &hlo, &hhi);                                         \
                for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {                              \
                    int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];                \
                    nnq_window_taps(w, 2, ow, &wlo, &whi);                                     \
                    T best = LOWEST;                                                           \
                    for (int64_t kd = dlo; kd < dhi; kd++) {                                   \
                        int64_t id = d0 + kd * w->dilation[0];                                 \
                        for (int64_t kh = hlo; kh < hhi; kh++) {                               \
                            const T *row = x + (id * H + h0 + kh * w->dilation[1]) * W;        \
                            for (int64_t kw = wlo; kw < whi; kw++) {                           \
                                T v = row[w0 + kw * dw];                                       \
                                best = v > best ? v : best;                                    \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    y[o] = best;                                                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_idx(const nnq_window *w, const T *x, T *y, int64_t *idx,               \
                           bool col_major) {                                                   \
        const int64_t D = w->in[0], H = w->in[1], W = w->in[2];                                \
        int64_t o = 0;                                                                         \
        for (int64_t od = 0; od < w->out[0]; od++) {                                           \
            int64_t dlo, dhi, d0 = od * w->stride[0] - w->pad_begin[0];                        \
            nnq_window_taps(w, 0, od, &dlo, &dhi);                                             \
            for (int64_t oh = 0; oh < w->out[1]; oh++) {                                       \
                int64_t hlo, hhi, h0 = oh * w->stride[1] - w->pad_begin[1];                    \
                nnq_window_taps(w, 1, oh, &hlo, &hhi);                                         \
                for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {                              \
                    int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];                \
                    nnq_window_taps(w, 2, ow, &wlo, &whi);                                     \
                    T best = LOWEST;                                                           \
                    int64_t bd = -1, bh = 0, bw = 0;                                           \
                    for (int64_t kd = dlo; kd < dhi; kd++) {                                   \
                        int64_t id = d0 + kd * w->dilation[0];                                 \
                        for (int64_t kh = hlo; kh < hhi; kh++) {                               \
                            int64_t ih = h0 + kh * w->dilation[1];                             \
                            const T *row = x + (id * H + ih) * W;                              \
                            for (int64_t kw = wlo; kw < whi; kw++) {                           \
                                int64_t iw = w0 + kw * w->dilation[2];                         \
                                if (row[iw] > best || bd < 0) {                                \
                                    best = row[iw];                                            \
                                    bd = id;                                                   \
                                    bh = ih;                                                   \
                                    bw = iw;                                                   \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    y[o] = best;                                                               \
                    if (bd < 0) idx[o] = -1;                                                   \
                    else if (col_major) idx[o] = bd + D * (bh + H * bw);                       \
                    else idx[o] = (bd * H + bh) * W + bw;                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_MAXPOOL_PLANE(maxpool_plane_f32, float, -INFINITY)
DEFINE_MAXPOOL_PLANE(maxpool_plane_u8, uint8_t, 0)
DEFINE_MAXPOOL_PLANE(maxpool_plane_i8, int8_t, INT8_MIN)

/* Taps of the window at `o` along dim d that land in the padded input
 * [-pad_begin, in + pad_end): the divisor with count_include_pad. */
static int64_t padded_taps(const nnq_window *w, int d, int64_t o) {
    int64_t start = o * w->stride[d];  /* relative to -pad_begin */
    int64_t limit = w->in[d] + w->pad_begin[d] + w->pad_end[d];
    int64_t n = nnq_ceil_div(limit - start, w->dilation[d]);
    return n < 0 ? 0 : n < w->kernel[d] ? n : w->kernel[d];
}

/* Fast float path for 2-D and 1-D windows (unit depth in the 3-D form):
 * each output row accumulates tap by tap across its interior columns
 * (those whose whole window lies inside the input), in vectorised passes;
 * the few columns whose window crosses the side padding go one by one. */
static void interior_columns(const nnq_window *w, int64_t *ilo, int64_t *ihi) {
    int64_t unused;
    nnq_window_out_range(w, 2, 0, ilo, &unused);                 /* leftmost tap */
    nnq_window_out_range(w, 2, w->kernel[2] - 1, &unused, ihi);  /* rightmost tap */
    if (*ihi < *ilo) *ihi = *ilo;
}

/* acc[o] = max(acc[o], row[o * sw + off]) for o in [lo, hi). */
static inline void max_pass(float *acc, const float *row, int64_t off, int64_t lo, int64_t hi,
                            int64_t sw) {
    if (sw == 1) {
        #pragma omp simd
        for (int64_t o = lo; o < hi; o++) acc[o] = row[o + off] > acc[o] ? row[o + off] : acc[o];
    } else if (sw == 2) {
        #pragma omp simd
        for (int64_t o = lo; o < hi; o++)
            acc[o] = row[2 * o + off] > acc[o] ? row[2 * o + off] : acc[o];
    } else {
        for (int64_t o = lo; o < hi; o++)
            acc[o] = row[o * sw + off] > acc[o] ? row[o * sw + off] : acc[o];
    }
}

/* acc[o] += row[o * sw + off] for o in [lo, hi). */
static inline void sum_pass(float *acc, const float *row, int64_t off, int64_t lo, int64_t hi,
                            int64_t sw) {
    if (sw == 1) {
        #pragma omp simd
        for (int64_t o = lo; o < hi; o++) acc[o] += row[o + off];
    } else if (sw == 2) {
        #pragma omp simd
        for (int64_t o = lo; o < hi; o++) acc[o] += row[2 * o + off];
    } else {
        for (int64_t o = lo; o < hi; o++) acc[o] += row[o * sw + off];
    }
}

/* Max or sum over the in-input taps of one output column; *count gets
 * how many taps that was. */
static float column_taps(const nnq_window *w, const float *x, int64_t oh, int64_t hlo,
                         int64_t hhi, int64_t ow, bool max, int64_t *count) {
    int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];
    nnq_window_taps(w, 2, ow, &wlo, &whi);
    float acc = max ? -INFINITY : 0.0f;
    for (int64_t kh = hlo; kh < hhi; kh++) {
        const float *row = x + (oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1]) * w->in[2];
        for (int64_t kw = wlo; kw < whi; kw++) {
            float v = row[w0 + kw * w->dilation[2]];
            acc = max ? (v > acc ? v : acc) : acc + v;
        }
    }
    *count = (hhi - hlo) * (whi - wlo);
    return acc;
}

static void maxpool_plane_2d(const nnq_window *w, const float *x, float *y) {
    const int64_t OW = w->out[2], W = w->in[2];
    int64_t ilo, ihi, count;
    interior_columns(w, &ilo, &ihi);
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        float *yr = y + oh * OW;
        int64_t hlo, hhi;
        nnq_window_taps(w, 1, oh, &hlo, &hhi);
        for (int64_t o = 0; o < ilo; o++) yr[o] = column_taps(w, x, oh, hlo, hhi, o, true, &count);
        for (int64_t o = ihi; o < OW; o++) yr[o] = column_taps(w, x, oh, hlo, hhi, o, true, &count);
        for (int64_t o = ilo; o < ihi; o++) yr[o] = -INFINITY;
        for (int64_t kh = hlo; kh < hhi; kh++) {
            const float *row = x + (oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1]) * W;
            for (int64_t kw = 0; kw < w->kernel[2]; kw++)
                max_pass(yr, row, kw * w->dilation[2] - w->pad_begin[2], ilo, ihi, w->stride[2]);
        }
    }
}

/* Average of one edge column; hn: the row count of its divisor. */
static float avg_column(const nnq_window *w, const float *x, int64_t oh, int64_t hlo,
                        int64_t hhi, int64_t hn, int64_t ow, bool include_pad) {
    int64_t count;
    float sum = column_taps(w, x, oh, hlo, hhi, ow, false, &count);
    if (include_pad) count = hn * padded_taps(w, 2, ow);
    return count > 0 ? sum / (float)count : 0.0f;
}

static void avgpool_plane_2d(const nnq_window *w, const float *x, float *y, bool include_pad) {
    const int64_t OW = w->out[2], W = w->in[2];
    int64_t ilo, ihi;
    interior_columns(w, &ilo, &ihi);
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        float *yr = y + oh * OW;
        int64_t hlo, hhi;
        nnq_window_taps(w, 1, oh, &hlo, &hhi);
        int64_t hn = include_pad ? padded_taps(w, 1, oh) : hhi - hlo;
        for (int64_t o = 0; o < ilo; o++) yr[o] = avg_column(w, x, oh, hlo, hhi, hn, o, include_pad);
        for (int64_t o = ihi; o < OW; o++) yr[o] = avg_column(w, x, oh, hlo, hhi, hn, o, include_pad);
        for (int64_t o = ilo; o < ihi; o++) yr[o] = 0.0f;
        for (int64_t kh = hlo; kh < hhi; kh++) {
            const float *row = x + (oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1]) * W;
            for (int64_t kw = 0; kw < w->kernel[2]; kw++)
                sum_pass(yr, row, kw * w->dilation[2] - w->pad_begin[2], ilo, ihi, w->stride[2]);
        }
        /* interior windows hold all kernel columns, in the input and the padding alike */
        float n = (float)(hn * w->kernel[2]);
        for (int64_t o = ilo; o < ihi; o++) yr[o] = n > 0 ? yr[o] / n : 0.0f;
    }
}

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

    NNQ_PARALLEL_FOR(threads, p, planes, {
        const void *xp = xs + (size_t)(p * in_size) * es;
        void *yp = ys + (size_t)(p * out_size) * es;
        int64_t *ip = idx ? idx + p * out_size : NULL;
        if (!ip) {
            switch (x->dtype) {
            case NNQ_DT_UINT8: maxpool_plane_u8(&w, xp, yp); break;
            case NNQ_DT_INT8: maxpool_plane_i8(&w, xp, yp); break;
            default:
                if (win.rank <= 2) maxpool_plane_2d(&w, xp, yp);
                else maxpool_plane_f32(&w, xp, yp);
                break;
            }
            continue;
        }
        switch (x->dtype) {
        case NNQ_DT_UINT8: maxpool_plane_u8_idx(&w, xp, yp, ip, col_major); break;
        case NNQ_DT_INT8: maxpool_plane_i8_idx(&w, xp, yp, ip, col_major); break;
        default: maxpool_plane_f32_idx(&w, xp, yp, ip, col_major); break;
        }
        /* indices are flat over the whole tensor (N, C, spatial) */
        for (int64_t o = 0; o < out_size; o++)
            if (ip[o] >= 0) ip[o] += p * in_size;
    });
    return NNQ_OK;
}

/* One plane of MaxPool backward: each output's gradient goes to the
 * element forward picked, found again the same way (the first maximum in
 * row-major tap order, as maxpool_plane_f32_idx; a NaN input is never
 * picked unless the window is all NaN, matching the value forward). */
static void maxpool_bwd_plane(const nnq_window *w, const float *x, const float *dy, float *dx) {
    const int64_t H = w->in[1], W = w->in[2];
    int64_t o = 0;
    for (int64_t od = 0; od < w->out[0]; od++) {
        int64_t dlo, dhi, d0 = od * w->stride[0] - w->pad_begin[0];
        nnq_window_taps(w, 0, od, &dlo, &dhi);
        for (int64_t oh = 0; oh < w->out[1]; oh++) {
            int64_t hlo, hhi, h0 = oh * w->stride[1] - w->pad_begin[1];
            nnq_window_taps(w, 1, oh, &hlo, &hhi);
            for (int64_t ow = 0; ow < w->out[2]; ow++, o++) {
                int64_t wlo, whi, w0 = ow * w->stride[2] - w->pad_begin[2];
                nnq_window_taps(w, 2, ow, &wlo, &whi);
                float best = -INFINITY;
                int64_t at = -1;
                for (int64_t kd = dlo; kd < dhi; kd++) {
                    int64_t id = d0 + kd * w->dilation[0];
                    for (int64_t kh = hlo; kh < hhi; kh++) {
                        int64_t row = (id * H + h0 + kh * w->dilation[1]) * W;
                        for (int64_t kw = wlo; kw < whi; kw++) {
                            int64_t i = row + w0 + kw * w->dilation[2];
                            if (x[i] > best || at < 0) {
                                best = x[i];
                                at = i;
                            }
                        }
                    }
                }
                if (at >= 0) dx[at] += dy[o];
            }
        }
    }
}

/* dX (N, C, D...) += dY routed to each window's maximum; planes are
 * independent, so they split over threads. */
static nnq_status maxpool_backward(const nnq_op_args *a) {
    nnq_window win, w;
    const float *dy;
    float *dx;
    NNQ_TRY(nnq_op_out_grad(a, &dy));
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    if (!dy || !dx) return NNQ_OK;
    NNQ_TRY(pool_check_dtype(a, false));
    NNQ_TRY(nnq_window_init(a, a->in[0], NULL, &win));
    nnq_window_to_3d(&win, &w);
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_size = w.in[0] * w.in[1] * w.in[2], out_size = w.out[0] * w.out[1] * w.out[2];
    int threads = pool_threads(a, planes * out_size * w.kernel[0] * w.kernel[1] * w.kernel[2]);
    const float *xs = nnq_f32(x);

    NNQ_PARALLEL_FOR(threads, p, planes,
                     maxpool_bwd_plane(&w, xs + p * in_size, dy + p * out_size, dx + p * in_size););
    return NNQ_OK;
}

const nnq_op_def nnq_op_MaxPool = {
    .op_type = "MaxPool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 2,
    .infer = maxpool_infer,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};

/* ---- AveragePool ---- */

static nnq_status avgpool_infer(const nnq_op_args *a) {
    nnq_window w;
    NNQ_TRY(pool_check_dtype(a, false));
    return pool_infer_window(a, &w);
}

/* One plane of the general (3-D, dilated) AveragePool, both directions:
 * forward, y[o] = the mean of o's window of x; backward (`grad`), every
 * in-input tap of o gets dy[o] / divisor, added to dx. The divisor counts
 * the taps in the input, or with count_include_pad in the padded input. */
static void avgpool_plane(const nnq_window *w, const float *x, float *y, bool include_pad,
                          bool grad, const float *dy, float *dx) {
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
                const int64_t count = dn * hn * wn;
                const float g = grad && count > 0 ? dy[o] / (float)count : 0.0f;
                float sum = 0;
                for (int64_t kd = dlo; kd < dhi && count > 0; kd++) {
                    int64_t id = d0 + kd * w->dilation[0];
                    for (int64_t kh = hlo; kh < hhi; kh++) {
                        const int64_t row = (id * H + h0 + kh * w->dilation[1]) * W + w0;
                        for (int64_t kw = wlo; kw < whi; kw++) {
                            if (grad) dx[row + kw * w->dilation[2]] += g;
                            else sum += x[row + kw * w->dilation[2]];
                        }
                    }
                }
                if (!grad) y[o] = count > 0 ? sum / (float)count : 0.0f;
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
    bool two_d = win.rank <= 2; /* unit depth: the fast path */
    int threads = pool_threads(a, planes * out_size * w.kernel[0] * w.kernel[1] * w.kernel[2]);
    const float *xs = nnq_f32(x);
    float *ys = nnq_f32(a->out[0]);

    NNQ_PARALLEL_FOR(threads, p, planes, {
        if (two_d) avgpool_plane_2d(&w, xs + p * in_size, ys + p * out_size, include_pad);
        else avgpool_plane(&w, xs + p * in_size, ys + p * out_size, include_pad, false, NULL, NULL);
    });
    return NNQ_OK;
}

static nnq_status avgpool_backward(const nnq_op_args *a) {
    nnq_window win, w;
    const float *dy;
    float *dx;
    NNQ_TRY(nnq_op_out_grad(a, &dy));
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    if (!dy || !dx) return NNQ_OK;
    NNQ_TRY(pool_check_dtype(a, false));
    NNQ_TRY(nnq_window_init(a, a->in[0], NULL, &win));
    nnq_window_to_3d(&win, &w);
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_size = w.in[0] * w.in[1] * w.in[2], out_size = w.out[0] * w.out[1] * w.out[2];
    bool include_pad = nnq_node_attr_int(a->node, "count_include_pad", 0) != 0;
    int threads = pool_threads(a, planes * out_size * w.kernel[0] * w.kernel[1] * w.kernel[2]);

    NNQ_PARALLEL_FOR(threads, p, planes,
                     avgpool_plane(&w, NULL, NULL, include_pad, true, dy + p * out_size,
                                   dx + p * in_size););
    return NNQ_OK;
}

const nnq_op_def nnq_op_AveragePool = {
    .op_type = "AveragePool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = avgpool_infer,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
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

    NNQ_PARALLEL_FOR(threads, p, planes, {
        const float *xp = xs + p * size;
        float sum = 0;
        _Pragma("omp simd reduction(+ : sum)")
        for (int64_t i = 0; i < size; i++) sum += xp[i];
        y[p] = size > 0 ? sum / (float)size : 0.0f;
    });
    return NNQ_OK;
}

/* dX[p, i] += dY[p] / size for every element i of plane p. */
static nnq_status gap_backward(const nnq_op_args *a) {
    const float *dy;
    float *dx;
    NNQ_TRY(gap_check(a));
    NNQ_TRY(nnq_op_out_grad(a, &dy));
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    if (!dy || !dx) return NNQ_OK;
    const nnq_tensor *x = a->in[0];
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t size = nnq_shape_numel(x->rank - 2, x->dims + 2);
    int threads = pool_threads(a, planes * size);
    if (size <= 0) return NNQ_OK;

    NNQ_PARALLEL_FOR(threads, p, planes, {
        float g = dy[p] / (float)size, *dp = dx + p * size;
        _Pragma("omp simd")
        for (int64_t i = 0; i < size; i++) dp[i] += g;
    });
    return NNQ_OK;
}

const nnq_op_def nnq_op_GlobalAveragePool = {
    .op_type = "GlobalAveragePool",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = gap_infer,
    .forward = gap_forward,
    .backward = gap_backward,
};
