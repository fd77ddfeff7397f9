/* Sliding-window arithmetic shared by Conv and the pools: reading
 * kernel_shape / strides / pads / dilations / auto_pad / ceil_mode from a
 * node, the output size of each spatial dim, and the ranges of kernel taps
 * and output positions that fall inside the input (so kernels never test
 * bounds, nor divide, per element). */
#ifndef NNQ_OPS_WINDOW_H
#define NNQ_OPS_WINDOW_H

#include <stdint.h>

#include "core/status.h"
#include "ops/op.h"

#define NNQ_WINDOW_MAX_DIMS 3

typedef struct nnq_window {
    int rank;                             /* spatial dims, 1..3 */
    int64_t in[NNQ_WINDOW_MAX_DIMS];      /* input sizes; -1 unknown */
    int64_t kernel[NNQ_WINDOW_MAX_DIMS];
    int64_t stride[NNQ_WINDOW_MAX_DIMS];
    int64_t dilation[NNQ_WINDOW_MAX_DIMS];
    int64_t pad_begin[NNQ_WINDOW_MAX_DIMS];
    int64_t pad_end[NNQ_WINDOW_MAX_DIMS]; /* SAME_*: resolved from `in` */
    int64_t out[NNQ_WINDOW_MAX_DIMS];     /* output sizes; -1 unknown */
} nnq_window;

/* Window of the node in `a` over input x (N, C, D1..Dk), k = 1..3.
 * kernel: Conv passes W's spatial dims (a kernel_shape attribute must then
 * agree); pools pass NULL and kernel_shape is required. ceil_mode is read
 * from the node (absent on Conv, so 0). */
nnq_status nnq_window_init(const nnq_op_args *a, const nnq_tensor *x, const int64_t *kernel,
                           nnq_window *w);

/* The same window with leading unit dims added up to rank 3, so a kernel
 * needs one loop nest for 1-, 2- and 3-D. */
void nnq_window_to_3d(const nnq_window *w, nnq_window *w3);

/* ceil(a / b) for b > 0 and any sign of a. */
static inline int64_t nnq_ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/* Kernel taps [*lo, *hi) of output position o along dim d that read inside
 * the input (tap t reads o*stride - pad_begin + t*dilation). */
static inline void nnq_window_taps(const nnq_window *w, int d, int64_t o, int64_t *lo,
                                   int64_t *hi) {
    int64_t start = o * w->stride[d] - w->pad_begin[d];
    int64_t dil = w->dilation[d];
    int64_t l, h;
    if (dil == 1) { /* the common case, without divisions */
        l = start < 0 ? -start : 0;
        h = w->in[d] - start;
    } else {
        l = start < 0 ? nnq_ceil_div(-start, dil) : 0;
        h = nnq_ceil_div(w->in[d] - start, dil);
    }
    if (h > w->kernel[d]) h = w->kernel[d];
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Output positions [*lo, *hi) along dim d for which tap t reads inside the
 * input. */
static inline void nnq_window_out_range(const nnq_window *w, int d, int64_t t, int64_t *lo,
                                        int64_t *hi) {
    int64_t off = t * w->dilation[d] - w->pad_begin[d];
    int64_t s = w->stride[d];
    int64_t l = off < 0 ? nnq_ceil_div(-off, s) : 0;
    int64_t h = nnq_ceil_div(w->in[d] - off, s);
    if (h > w->out[d]) h = w->out[d];
    if (l > w->out[d]) l = w->out[d];
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

#endif
