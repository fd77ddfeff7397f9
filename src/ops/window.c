#include "ops/window.h"

#include <string.h>

typedef enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID } auto_pad;

static nnq_status read_auto_pad(const nnq_op_args *a, auto_pad *out) {
    const char *s = nnq_node_attr_string(a->node, "auto_pad", "NOTSET");
    if (strcmp(s, "NOTSET") == 0 || s[0] == '\0') *out = PAD_NOTSET;
    else if (strcmp(s, "SAME_UPPER") == 0) *out = PAD_SAME_UPPER;
    else if (strcmp(s, "SAME_LOWER") == 0) *out = PAD_SAME_LOWER;
    else if (strcmp(s, "VALID") == 0) *out = PAD_VALID;
    else return nnq_op_fail(a, NNQ_ERR_INVALID, "unknown auto_pad '%s'", s);
    return NNQ_OK;
}

/* Optional INTS attribute of `want` positive (or, for pads, non-negative)
 * entries; absent means every entry is `dflt`. */
static nnq_status read_ints(const nnq_op_args *a, const char *name, int want, int64_t min,
                            int64_t dflt, int64_t *out) {
    const int64_t *v;
    int n = nnq_node_attr_ints(a->node, name, &v);
    if (n == 0) {
        for (int i = 0; i < want; i++) out[i] = dflt;
        return NNQ_OK;
    }
    if (n != want)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute %s has %d values, expected %d", name,
                           n, want);
    for (int i = 0; i < want; i++) {
        if (v[i] < min)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute %s[%d] = %lld, must be >= %lld",
                               name, i, (long long)v[i], (long long)min);
        out[i] = v[i];
    }
    return NNQ_OK;
}

nnq_status nnq_window_init(const nnq_op_args *a, const nnq_tensor *x, const int64_t *kernel,
                           nnq_window *w) {
    int k = x->rank - 2;
    int64_t attr_kernel[NNQ_WINDOW_MAX_DIMS], pads[2 * NNQ_WINDOW_MAX_DIMS];
    const int64_t *ks;
    auto_pad mode = PAD_NOTSET;

    memset(w, 0, sizeof *w);
    if (k < 1 || k > NNQ_WINDOW_MAX_DIMS)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                           "input of rank %d: only 1 to 3 spatial dims are supported", x->rank);
    w->rank = k;
    int nks = nnq_node_attr_ints(a->node, "kernel_shape", &ks);
    if (nks == 0 && !kernel)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute kernel_shape is required");
    if (nks) NNQ_TRY(read_ints(a, "kernel_shape", k, 1, 1, attr_kernel));
    for (int d = 0; d < k; d++) {
        if (kernel && nks && kernel[d] != attr_kernel[d])
            return nnq_op_fail(a, NNQ_ERR_SHAPE,
                               "kernel_shape[%d] = %lld but the weight's spatial dim is %lld", d,
                               (long long)attr_kernel[d], (long long)kernel[d]);
        w->kernel[d] = kernel ? kernel[d] : attr_kernel[d];
        if (w->kernel[d] < 1)
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "kernel size %lld along spatial dim %d",
                               (long long)w->kernel[d], d);
    }
    NNQ_TRY(read_ints(a, "strides", k, 1, 1, w->stride));
    NNQ_TRY(read_ints(a, "dilations", k, 1, 1, w->dilation));
    NNQ_TRY(read_ints(a, "pads", 2 * k, 0, 0, pads));
    NNQ_TRY(read_auto_pad(a, &mode));
    int ceil_mode = nnq_node_attr_int(a->node, "ceil_mode", 0) != 0;

    for (int d = 0; d < k; d++) {
        int64_t in = x->dims[2 + d];
        int64_t s = w->stride[d];
        int64_t ext = (w->kernel[d] - 1) * w->dilation[d] + 1; /* dilated kernel extent */
        w->in[d] = in;
        if (mode == PAD_NOTSET) {
            w->pad_begin[d] = pads[d];
            w->pad_end[d] = pads[k + d];
        }
        if (in < 0) {
            w->out[d] = -1;
            continue;
        }
        if (mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
            int64_t out = nnq_ceil_div(in, s);
            int64_t total = (out - 1) * s + ext - in;
            if (total < 0) total = 0;
            /* SAME_UPPER puts the odd pad at the end, SAME_LOWER at the start. */
            w->pad_begin[d] = mode == PAD_SAME_UPPER ? total / 2 : total - total / 2;
            w->pad_end[d] = total - w->pad_begin[d];
            w->out[d] = out;
            continue;
        }
        int64_t span = in + w->pad_begin[d] + w->pad_end[d] - ext;
        if (span < 0)
            return nnq_op_fail(a, NNQ_ERR_SHAPE,
                               "spatial dim %d: window extent %lld exceeds the padded input %lld",
                               d, (long long)ext,
                               (long long)(in + w->pad_begin[d] + w->pad_end[d]));
        int64_t out = (ceil_mode ? nnq_ceil_div(span, s) : span / s) + 1;
        /* ceil_mode: a window that would start inside the end padding is dropped. */
        if (ceil_mode && (out - 1) * s >= in + w->pad_begin[d]) out--;
        w->out[d] = out;
    }
    return NNQ_OK;
}

void nnq_window_to_3d(const nnq_window *w, nnq_window *w3) {
    int shift = NNQ_WINDOW_MAX_DIMS - w->rank;
    w3->rank = NNQ_WINDOW_MAX_DIMS;
    for (int d = 0; d < NNQ_WINDOW_MAX_DIMS; d++) {
        int s = d - shift;
        bool real = s >= 0;
        w3->in[d] = real ? w->in[s] : 1;
        w3->kernel[d] = real ? w->kernel[s] : 1;
        w3->stride[d] = real ? w->stride[s] : 1;
        w3->dilation[d] = real ? w->dilation[s] : 1;
        w3->pad_begin[d] = real ? w->pad_begin[s] : 0;
        w3->pad_end[d] = real ? w->pad_end[s] : 0;
        w3->out[d] = real ? w->out[s] : 1;
    }
}
