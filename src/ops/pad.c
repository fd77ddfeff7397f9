/* Pad: modes constant, reflect, edge and wrap, any fixed-size dtype (it
 * only moves elements). Pads come from the `pads` input (opset 11+, with
 * optional constant_value and, from opset 18, axes) or from the attributes
 * of older opsets. Negative pads crop. Backward (float): the gradient
 * flows back to the element each output copied. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/op.h"

#define PARALLEL_MIN_BYTES (1 << 20)

typedef enum pad_mode { MODE_CONSTANT, MODE_REFLECT, MODE_EDGE, MODE_WRAP } pad_mode;

typedef struct pad_spec {
    pad_mode mode;
    bool known;                   /* false: pads not constant at infer time */
    int64_t begin[NNQ_MAX_RANK];  /* elements added before / after, per axis */
    int64_t end[NNQ_MAX_RANK];
} pad_spec;

static nnq_status read_mode(const nnq_op_args *a, pad_mode *mode) {
    const char *s = nnq_node_attr_string(a->node, "mode", "constant");
    if (strcmp(s, "constant") == 0) *mode = MODE_CONSTANT;
    else if (strcmp(s, "reflect") == 0) *mode = MODE_REFLECT;
    else if (strcmp(s, "edge") == 0) *mode = MODE_EDGE;
    else if (strcmp(s, "wrap") == 0) *mode = MODE_WRAP;
    else return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "unknown mode '%s'", s);
    return NNQ_OK;
}

/* The axes input (opset 18): which axes the pads apply to, in order. */
static nnq_status read_axes(const nnq_op_args *a, int rank, int *n_axes, int *axes) {
    const nnq_tensor *t = a->n_in > 3 ? a->in[3] : NULL;
    if (!t) {
        *n_axes = rank;
        for (int i = 0; i < rank; i++) axes[i] = i;
        return NNQ_OK;
    }
    int64_t n = nnq_tensor_numel(t);
    if (t->rank != 1 || n < 0 || n > rank)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "axes must be a vector of at most %d axes", rank);
    bool seen[NNQ_MAX_RANK] = {false};
    for (int64_t i = 0; i < n; i++) {
        int64_t ax = nnq_tensor_get_int(t, i);
        if (ax < -rank || ax >= rank)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld out of range for rank %d",
                               (long long)ax, rank);
        if (ax < 0) ax += rank;
        if (seen[ax]) return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld repeated", (long long)ax);
        seen[ax] = true;
        axes[i] = (int)ax;
    }
    *n_axes = (int)n;
    return NNQ_OK;
}

static nnq_status pad_read(const nnq_op_args *a, pad_spec *ps) {
    const nnq_tensor *x = a->in[0];
    const nnq_tensor *pads = a->n_in > 1 ? a->in[1] : NULL;
    int rank = x->rank, n_axes = 0, axes[NNQ_MAX_RANK];
    memset(ps, 0, sizeof *ps);
    NNQ_TRY(read_mode(a, &ps->mode));
    ps->known = true;

    if (!pads) { /* opset < 11: attributes */
        const int64_t *v;
        int n = nnq_node_attr_ints(a->node, "pads", &v);
        if (n != 2 * rank)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute pads has %d values, expected %d", n,
                               2 * rank);
        for (int i = 0; i < rank; i++) {
            ps->begin[i] = v[i];
            ps->end[i] = v[rank + i];
        }
        return NNQ_OK;
    }
    if (pads->dtype != NNQ_DT_INT64)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "pads has dtype %s, expected int64",
                           nnq_dtype_name(pads->dtype));
    if (!pads->data || (a->n_in > 3 && a->in[3] && !a->in[3]->data)) {
        ps->known = false; /* re-inferred with the run-time values */
        return NNQ_OK;
    }
    NNQ_TRY(read_axes(a, rank, &n_axes, axes));
    if (pads->rank != 1 || nnq_tensor_numel(pads) != 2 * n_axes)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "pads must hold %d values (2 per padded axis)",
                           2 * n_axes);
    for (int i = 0; i < n_axes; i++) {
        ps->begin[axes[i]] = nnq_tensor_get_int(pads, i);
        ps->end[axes[i]] = nnq_tensor_get_int(pads, n_axes + i);
    }
    return NNQ_OK;
}

/* Output dims for known pads (-1 where an input dim is unknown). */
static nnq_status pad_out_dims(const nnq_op_args *a, const pad_spec *ps, int64_t *dims) {
    const nnq_tensor *x = a->in[0];
    for (int i = 0; i < x->rank; i++) {
        int64_t in = x->dims[i];
        if (!ps->known || in < 0) {
            dims[i] = -1;
            continue;
        }
        dims[i] = in + ps->begin[i] + ps->end[i];
        if (dims[i] < 0)
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "axis %d: pads %lld/%lld crop more than %lld",
                               i, (long long)ps->begin[i], (long long)ps->end[i], (long long)in);
        if (ps->mode != MODE_CONSTANT && in == 0 && dims[i] > 0)
            return nnq_op_fail(a, NNQ_ERR_SHAPE,
                               "axis %d is empty: nothing to reflect, repeat or wrap", i);
    }
    return NNQ_OK;
}

static nnq_status pad_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    pad_spec ps;
    int64_t dims[NNQ_MAX_RANK];
    if (nnq_dtype_size(x->dtype) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "input data has dtype %s",
                           nnq_dtype_name(x->dtype));
    NNQ_TRY(pad_read(a, &ps));
    const nnq_tensor *cv = a->n_in > 2 ? a->in[2] : NULL;
    if (cv && cv->dtype != x->dtype)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "constant_value has dtype %s, data has %s",
                           nnq_dtype_name(cv->dtype), nnq_dtype_name(x->dtype));
    NNQ_TRY(pad_out_dims(a, &ps, dims));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, dims);
}

/* Source index along an axis of size n for padded position i (i = output
 * index - begin); -1 means "the constant". */
static int64_t map_index(int64_t i, int64_t n, pad_mode mode) {
    if (i >= 0 && i < n) return i;
    switch (mode) {
    case MODE_EDGE: return i < 0 ? 0 : n - 1;
    case MODE_WRAP: {
        int64_t r = i % n;
        return r < 0 ? r + n : r;
    }
    case MODE_REFLECT: {
        if (n == 1) return 0;
        int64_t period = 2 * (n - 1);
        int64_t r = i % period;
        if (r < 0) r += period;
        return r < n ? r : period - r;
    }
    default: return -1;
    }
}

static inline void copy_elem(char *dst, const char *src, size_t es) {
    switch (es) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    default: memcpy(dst, src, 8); break;
    }
}

/* The constant as raw bytes of the data's dtype. */
static void constant_bytes(const nnq_op_args *a, size_t es, char *out) {
    const nnq_tensor *cv = a->n_in > 2 ? a->in[2] : NULL;
    memset(out, 0, 8);
    if (cv && cv->data && nnq_tensor_numel(cv) > 0) {
        memcpy(out, cv->data, es);
        return;
    }
    if (a->n_in > 1 && a->in[1]) return; /* opset 11+ default: 0 */
    double v = nnq_node_attr_float(a->node, "value", 0.0f);
    switch (a->in[0]->dtype) {
    case NNQ_DT_FLOAT: { float f = (float)v; memcpy(out, &f, 4); break; }
    case NNQ_DT_DOUBLE: memcpy(out, &v, 8); break;
    case NNQ_DT_FLOAT16: { uint16_t h = nnq_float_to_half((float)v); memcpy(out, &h, 2); break; }
    case NNQ_DT_INT8: { int8_t q = (int8_t)v; memcpy(out, &q, 1); break; }
    case NNQ_DT_UINT8: { uint8_t q = (uint8_t)v; memcpy(out, &q, 1); break; }
    case NNQ_DT_INT16: { int16_t q = (int16_t)v; memcpy(out, &q, 2); break; }
    case NNQ_DT_UINT16: { uint16_t q = (uint16_t)v; memcpy(out, &q, 2); break; }
    case NNQ_DT_INT32: { int32_t q = (int32_t)v; memcpy(out, &q, 4); break; }
    case NNQ_DT_UINT32: { uint32_t q = (uint32_t)v; memcpy(out, &q, 4); break; }
    case NNQ_DT_INT64: { int64_t q = (int64_t)v; memcpy(out, &q, 8); break; }
    case NNQ_DT_UINT64: { uint64_t q = (uint64_t)v; memcpy(out, &q, 8); break; }
    case NNQ_DT_BOOL: out[0] = v != 0; break;
    default: break;
    }
}

/* What every row of the output needs; a row is one line along the last axis. */
typedef struct pad_rows_ctx {
    const pad_spec *ps;
    const nnq_tensor *x, *y;
    size_t es;
    const char *cval;
    int64_t in_stride[NNQ_MAX_RANK]; /* elements per step along each input axis */
    int64_t jlo, jhi;                /* output columns copied straight from the input */
} pad_rows_ctx;

/* Output rows [r0, r1), walking the outer index like an odometer. */
static void pad_rows(const pad_rows_ctx *c, int64_t r0, int64_t r1) {
    const int r = c->x->rank;
    const int64_t ol = c->y->dims[r - 1], il = c->x->dims[r - 1], b = c->ps->begin[r - 1];
    const size_t es = c->es;
    int64_t idx[NNQ_MAX_RANK];
    int64_t q = r0;
    for (int i = r - 2; i >= 0; i--) {
        idx[i] = q % c->y->dims[i];
        q /= c->y->dims[i];
    }
    for (int64_t row = r0; row < r1; row++) {
        char *dst = (char *)c->y->data + (size_t)(row * ol) * es;
        int64_t src_off = 0;
        bool constant_row = false;
        for (int i = 0; i < r - 1; i++) {
            int64_t s = map_index(idx[i] - c->ps->begin[i], c->x->dims[i], c->ps->mode);
            if (s < 0) constant_row = true;
            src_off += s * c->in_stride[i];
        }
        for (int i = r - 2; i >= 0 && ++idx[i] == c->y->dims[i]; i--) idx[i] = 0;
        if (constant_row) {
            for (int64_t j = 0; j < ol; j++) copy_elem(dst + (size_t)j * es, c->cval, es);
            continue;
        }
        const char *src = (const char *)c->x->data + (size_t)src_off * es;
        for (int64_t j = 0; j < c->jlo; j++) {
            int64_t s = map_index(j - b, il, c->ps->mode);
            copy_elem(dst + (size_t)j * es, s < 0 ? c->cval : src + (size_t)s * es, es);
        }
        if (c->jhi > c->jlo)
            memcpy(dst + (size_t)c->jlo * es, src + (size_t)(c->jlo - b) * es,
                   (size_t)(c->jhi - c->jlo) * es);
        for (int64_t j = c->jhi; j < ol; j++) {
            int64_t s = map_index(j - b, il, c->ps->mode);
            copy_elem(dst + (size_t)j * es, s < 0 ? c->cval : src + (size_t)s * es, es);
        }
    }
}

static nnq_status pad_forward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    const nnq_tensor *y = a->out[0];
    pad_spec ps;
    char cval[8];
    NNQ_TRY(pad_read(a, &ps));
    if (!ps.known) return nnq_op_fail(a, NNQ_ERR_INVALID, "pads not available at run time");
    const int r = x->rank;
    const size_t es = nnq_dtype_size(x->dtype);
    constant_bytes(a, es, cval);
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return NNQ_OK;
    }
    int64_t dims[NNQ_MAX_RANK];
    NNQ_TRY(pad_out_dims(a, &ps, dims));
    for (int i = 0; i < r; i++)
        if (y->dims[i] != dims[i])
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "output not shaped for these pads");
    int64_t out_numel = nnq_tensor_numel(y);
    const int64_t ol = y->dims[r - 1], il = x->dims[r - 1], b = ps.begin[r - 1];
    if (out_numel <= 0 || ol == 0) return NNQ_OK;

    pad_rows_ctx c = {.ps = &ps, .x = x, .y = y, .es = es, .cval = cval};
    c.in_stride[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--) c.in_stride[i] = c.in_stride[i + 1] * x->dims[i + 1];
    c.jlo = b > 0 ? (b < ol ? b : ol) : 0;
    c.jhi = b + il < ol ? b + il : ol;
    if (c.jhi < c.jlo) c.jhi = c.jlo;
    const int64_t rows = out_numel / ol;
    int threads = a->threads > 1 && (size_t)out_numel * es >= PARALLEL_MIN_BYTES ? a->threads : 1;

    NNQ_PARALLEL(threads, t, nt, pad_rows(&c, rows * t / nt, rows * (t + 1) / nt););
    return NNQ_OK;
}

/* ---- Backward (float data) ----
 * Each output element is a copy of one input element or of the constant:
 * dX[src] += dY[out], and d constant_value += dY over the constant's
 * positions. In constant mode (and for crops) no two output elements
 * read the same input element, so rows split over threads; reflect, edge
 * and wrap read some elements several times and run in one thread, in
 * output order. */

/* Output rows [r0, r1) scattered into dx; the sum of dY at constant
 * positions is added to *cgrad (NULL: not wanted). */
static void pad_bwd_rows(const pad_rows_ctx *c, const float *dy, float *dx, int64_t r0,
                         int64_t r1, double *cgrad) {
    const int r = c->x->rank;
    const int64_t ol = c->y->dims[r - 1], il = c->x->dims[r - 1], b = c->ps->begin[r - 1];
    int64_t idx[NNQ_MAX_RANK];
    int64_t q = r0;
    double csum = 0;
    for (int i = r - 2; i >= 0; i--) {
        idx[i] = q % c->y->dims[i];
        q /= c->y->dims[i];
    }
    for (int64_t row = r0; row < r1; row++) {
        const float *g = dy + row * ol;
        int64_t src_off = 0;
        bool constant_row = false;
        for (int i = 0; i < r - 1; i++) {
            int64_t s = map_index(idx[i] - c->ps->begin[i], c->x->dims[i], c->ps->mode);
            if (s < 0) constant_row = true;
            src_off += s * c->in_stride[i];
        }
        for (int i = r - 2; i >= 0 && ++idx[i] == c->y->dims[i]; i--) idx[i] = 0;
        if (constant_row) {
            if (cgrad)
                for (int64_t j = 0; j < ol; j++) csum += g[j];
            continue;
        }
        float *d = dx ? dx + src_off : NULL;
        for (int64_t j = 0; j < ol; j++) {
            if (j == c->jlo && c->jhi > c->jlo) { /* the straight copy */
                if (d) {
                    #pragma omp simd
                    for (int64_t k = c->jlo; k < c->jhi; k++) d[k - b] += g[k];
                }
                j = c->jhi - 1;
                continue;
            }
            int64_t s = map_index(j - b, il, c->ps->mode);
            if (s < 0) csum += g[j];
            else if (d) d[s] += g[j];
        }
    }
    if (cgrad) *cgrad += csum;
}

static nnq_status pad_backward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *y = a->out[0];
    const nnq_tensor *dyt = a->out_grad ? a->out_grad[0] : NULL;
    pad_spec ps;
    if (!dyt) return NNQ_OK;
    float *dx = NULL, *dcv = NULL;
    if (a->in_grad && a->in_grad[0]) dx = nnq_f32(a->in_grad[0]);
    if (a->in_grad && a->n_in > 2 && a->in[2] && a->in_grad[2]) dcv = nnq_f32(a->in_grad[2]);
    if (!dx && !dcv) return NNQ_OK;
    if (x->dtype != NNQ_DT_FLOAT || dyt->dtype != NNQ_DT_FLOAT ||
        nnq_tensor_numel(dyt) != nnq_tensor_numel(y) ||
        (dx && nnq_tensor_numel(a->in_grad[0]) != nnq_tensor_numel(x)))
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward needs float data and matching gradients");
    NNQ_TRY(pad_read(a, &ps));
    if (!ps.known) return nnq_op_fail(a, NNQ_ERR_INVALID, "pads not available at run time");
    const int r = x->rank;
    if (r == 0) {
        if (dx) dx[0] += nnq_f32(dyt)[0];
        return NNQ_OK;
    }
    int64_t out_numel = nnq_tensor_numel(y);
    const int64_t ol = y->dims[r - 1], il = x->dims[r - 1], b = ps.begin[r - 1];
    if (out_numel <= 0 || ol == 0) return NNQ_OK;

    pad_rows_ctx c = {.ps = &ps, .x = x, .y = y, .es = sizeof(float)};
    c.in_stride[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--) c.in_stride[i] = c.in_stride[i + 1] * x->dims[i + 1];
    c.jlo = b > 0 ? (b < ol ? b : ol) : 0;
    c.jhi = b + il < ol ? b + il : ol;
    if (c.jhi < c.jlo) c.jhi = c.jlo;
    const int64_t rows = out_numel / ol;
    const float *dy = nnq_f32(dyt);
    double csum = 0;
    if (ps.mode == MODE_CONSTANT) {
        if (dx) {
            int threads = a->threads > 1 && (size_t)out_numel * 4 >= PARALLEL_MIN_BYTES ? a->threads : 1;
            NNQ_PARALLEL(threads, t, nt,
                         pad_bwd_rows(&c, dy, dx, rows * t / nt, rows * (t + 1) / nt, NULL););
        }
        if (dcv) pad_bwd_rows(&c, dy, NULL, 0, rows, &csum);
    } else {
        pad_bwd_rows(&c, dy, dx, 0, rows, NULL); /* no constant outside constant mode */
    }
    if (dcv) dcv[0] += (float)csum;
    return NNQ_OK;
}

const nnq_op_def nnq_op_Pad = {
    .op_type = "Pad",
    .min_inputs = 1, .max_inputs = 4,
    .min_outputs = 1, .max_outputs = 1,
    .infer = pad_infer,
    .forward = pad_forward,
    .backward = pad_backward,
};
