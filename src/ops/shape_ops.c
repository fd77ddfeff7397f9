/* Ops that change only the shape, or nothing: Flatten, Reshape, Squeeze,
 * Unsqueeze, Identity, Dropout (inference: a copy), and Constant.
 *
 * Every output has its own buffer (the executor never aliases), so the
 * forward passes are a memcpy of the whole input, for any fixed-size
 * dtype. Shape inputs (Reshape's shape, axes from opset 13) must have
 * data when infer runs: a constant, or the real input at run time.
 * Backward (float32) is dx += dy for all of them (Dropout as the
 * inference-mode identity it runs as; its mask gets no gradient). */
#include <string.h>

#include "ops/broadcast.h"
#include "ops/op.h"

static nnq_status check_sized(const nnq_op_args *a, const nnq_tensor *t) {
    if (nnq_dtype_size(t->dtype) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(t->dtype));
    return NNQ_OK;
}

static nnq_status copy_forward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    nnq_tensor *y = a->out[0];
    size_t nbytes;
    NNQ_TRY(nnq_tensor_nbytes(x, &nbytes));
    if (nbytes && y->data != x->data) memcpy(y->data, x->data, nbytes);
    return NNQ_OK;
}

/* Backward of every op here (float32): the same elements in the same
 * order, so dx += dy. Shape inputs (Reshape's shape, axes) get none. */
static nnq_status copy_backward(const nnq_op_args *a) {
    const nnq_tensor *dy = a->out_grad[0];
    nnq_tensor *dx = a->in_grad[0];
    if (!dy || !dx) return NNQ_OK;
    if (dy->dtype != NNQ_DT_FLOAT || dx->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward needs float, got %s",
                           nnq_dtype_name(dy->dtype));
    int64_t n = nnq_tensor_numel(dy);
    if (n != nnq_tensor_numel(dx))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "gradient has %lld elements, the input %lld",
                           (long long)n, (long long)nnq_tensor_numel(dx));
    nnq_grad_accumulate(nnq_f32(dx), nnq_f32(dy), n, a->threads);
    return NNQ_OK;
}

static nnq_status same_shape_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    NNQ_TRY(check_sized(a, x));
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, x->dims);
}

/* An integer list given as input `i` (when present) or attribute `name`.
 * *count = -1 if neither is given. */
static nnq_status int_list(const nnq_op_args *a, int i, const char *name, int64_t *vals,
                           int cap, int *count) {
    const nnq_tensor *t = i < a->n_in ? a->in[i] : NULL;
    *count = -1;
    if (t) {
        if (!t->data)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "input %d (%s) must be a constant or known at run time", i, name);
        if (t->dtype == NNQ_DT_FLOAT || t->dtype == NNQ_DT_DOUBLE || t->dtype == NNQ_DT_FLOAT16 ||
            nnq_dtype_size(t->dtype) == 0)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d (%s) must be an integer tensor, got %s",
                               i, name, nnq_dtype_name(t->dtype));
        int64_t n = nnq_tensor_numel(t);
        if (t->rank > 1 || n > cap)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d (%s) must be a list of at most %d",
                               i, name, cap);
        for (int64_t k = 0; k < n; k++) vals[k] = nnq_tensor_get_int(t, k);
        *count = (int)n;
        return NNQ_OK;
    }
    const nnq_attr *at = nnq_node_attr(a->node, name);
    if (!at) return NNQ_OK;
    if (at->type != NNQ_ATTR_INTS && at->type != NNQ_ATTR_INT)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute %s must be a list of ints", name);
    int n = at->type == NNQ_ATTR_INT ? 1 : at->n;
    if (n > cap)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "attribute %s has %d values, at most %d", name,
                           n, cap);
    for (int k = 0; k < n; k++) vals[k] = at->type == NNQ_ATTR_INT ? at->i : at->ints[k];
    *count = n;
    return NNQ_OK;
}

/* Normalise axes against rank r (negative counts from the end) into a
 * mask; fails on out-of-range or repeated axes. */
static nnq_status axes_mask(const nnq_op_args *a, const int64_t *axes, int n, int r, bool *mask) {
    for (int i = 0; i < r; i++) mask[i] = false;
    for (int k = 0; k < n; k++) {
        int64_t ax = axes[k];
        if (ax < -r || ax >= r)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for rank %d",
                               (long long)ax, r);
        if (ax < 0) ax += r;
        if (mask[ax]) return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is repeated", (long long)axes[k]);
        mask[ax] = true;
    }
    return NNQ_OK;
}

/* ---- Flatten: (d0..d[axis-1], d[axis]..) -> 2-D ---- */

static nnq_status flatten_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int r = x->rank;
    int64_t axis = nnq_node_attr_int(a->node, "axis", 1);
    NNQ_TRY(check_sized(a, x));
    if (axis < -r || axis > r)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for rank %d",
                           (long long)axis, r);
    if (axis < 0) axis += r;
    int64_t dims[2] = {nnq_shape_numel((int)axis, x->dims),
                       nnq_shape_numel(r - (int)axis, x->dims + axis)};
    return nnq_tensor_set_shape(a->out[0], x->dtype, 2, dims);
}

const nnq_op_def nnq_op_Flatten = {
    .op_type = "Flatten",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = flatten_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};

/* ---- Reshape: 0 copies the input dim (unless allowzero), -1 is inferred ---- */

static nnq_status reshape_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int64_t shape[NNQ_MAX_RANK], dims[NNQ_MAX_RANK];
    int n;
    char sx[128];
    NNQ_TRY(check_sized(a, x));
    NNQ_TRY(int_list(a, 1, "shape", shape, NNQ_MAX_RANK, &n));
    if (n < 0) return nnq_op_fail(a, NNQ_ERR_INVALID, "the shape input is missing");
    bool allowzero = a->opset >= 14 && nnq_node_attr_int(a->node, "allowzero", 0) != 0;
    int infer_at = -1;
    bool known = true;
    int64_t prod = 1;
    for (int i = 0; i < n; i++) {
        int64_t s = shape[i];
        if (s == 0 && !allowzero) {
            if (i >= x->rank)
                return nnq_op_fail(a, NNQ_ERR_SHAPE, "shape[%d] = 0 copies a dim the rank-%d input lacks",
                                   i, x->rank);
            s = x->dims[i];
        } else if (s == -1) {
            if (infer_at >= 0)
                return nnq_op_fail(a, NNQ_ERR_INVALID, "shape has more than one -1");
            infer_at = i;
            continue;
        } else if (s < -1) {
            return nnq_op_fail(a, NNQ_ERR_INVALID, "shape[%d] = %lld is invalid", i, (long long)s);
        }
        dims[i] = s;
        if (s < 0) known = false;
        else prod *= s;
    }
    int64_t numel = nnq_tensor_numel(x);
    if (infer_at >= 0) {
        if (!known || numel < 0) {
            dims[infer_at] = -1;
        } else if (prod == 0 || numel % prod != 0) {
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "cannot reshape %s (%lld elements) with a -1 dim",
                               nnq_shape_str(x, sx, sizeof sx), (long long)numel);
        } else {
            dims[infer_at] = numel / prod;
        }
    } else if (known && numel >= 0 && prod != numel) {
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "cannot reshape %s (%lld elements) to %lld elements",
                           nnq_shape_str(x, sx, sizeof sx), (long long)numel, (long long)prod);
    }
    return nnq_tensor_set_shape(a->out[0], x->dtype, n, dims);
}

const nnq_op_def nnq_op_Reshape = {
    .op_type = "Reshape",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = reshape_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};

/* ---- Squeeze / Unsqueeze: axes attribute (opset < 13) or input ---- */

static nnq_status squeeze_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int64_t axes[NNQ_MAX_RANK], dims[NNQ_MAX_RANK];
    bool drop[NNQ_MAX_RANK];
    int n, r = 0;
    NNQ_TRY(check_sized(a, x));
    NNQ_TRY(int_list(a, 1, "axes", axes, NNQ_MAX_RANK, &n));
    if (n <= 0) { /* no axes: every size-1 dim goes */
        for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
    } else {
        NNQ_TRY(axes_mask(a, axes, n, x->rank, drop));
        for (int i = 0; i < x->rank; i++)
            if (drop[i] && x->dims[i] != 1 && x->dims[i] >= 0)
                return nnq_op_fail(a, NNQ_ERR_SHAPE, "cannot squeeze axis %d of size %lld", i,
                                   (long long)x->dims[i]);
    }
    for (int i = 0; i < x->rank; i++)
        if (!drop[i]) dims[r++] = x->dims[i];
    return nnq_tensor_set_shape(a->out[0], x->dtype, r, dims);
}

static nnq_status unsqueeze_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int64_t axes[NNQ_MAX_RANK], dims[NNQ_MAX_RANK];
    bool ins[NNQ_MAX_RANK];
    int n;
    NNQ_TRY(check_sized(a, x));
    NNQ_TRY(int_list(a, 1, "axes", axes, NNQ_MAX_RANK, &n));
    if (n <= 0) return nnq_op_fail(a, NNQ_ERR_INVALID, "axes are missing");
    int r = x->rank + n;
    if (r > NNQ_MAX_RANK)
        return nnq_op_fail(a, NNQ_ERR_LIMIT, "output rank %d exceeds the maximum %d", r,
                           NNQ_MAX_RANK);
    NNQ_TRY(axes_mask(a, axes, n, r, ins));
    for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
    return nnq_tensor_set_shape(a->out[0], x->dtype, r, dims);
}

const nnq_op_def nnq_op_Squeeze = {
    .op_type = "Squeeze",
    .min_inputs = 1, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = squeeze_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};
const nnq_op_def nnq_op_Unsqueeze = {
    .op_type = "Unsqueeze",
    .min_inputs = 1, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = unsqueeze_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};

/* ---- Identity, Dropout ---- */

const nnq_op_def nnq_op_Identity = {
    .op_type = "Identity",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = same_shape_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};

/* The mask is bool from opset 10, the input's type before. */
static nnq_dtype dropout_mask_dtype(const nnq_op_args *a) {
    return a->opset >= 10 ? NNQ_DT_BOOL : a->in[0]->dtype;
}

static nnq_status dropout_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    NNQ_TRY(same_shape_infer(a));
    if (a->n_out > 1 && a->out[1]) {
        nnq_dtype mt = dropout_mask_dtype(a);
        if (mt != NNQ_DT_BOOL && mt != NNQ_DT_FLOAT)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "a %s mask is not supported",
                               nnq_dtype_name(mt));
        NNQ_TRY(nnq_tensor_set_shape(a->out[1], mt, x->rank, x->dims));
    }
    return NNQ_OK;
}

/* Inference: y = x and the mask keeps everything. Training mode (opset
 * 12+, training_mode input true) with a ratio above 0 would draw a random
 * mask: refused rather than silently run as inference. */
static nnq_status dropout_forward(const nnq_op_args *a) {
    const nnq_tensor *ratio = a->n_in > 1 ? a->in[1] : NULL;
    const nnq_tensor *train = a->n_in > 2 ? a->in[2] : NULL;
    if (train && train->data && nnq_tensor_numel(train) == 1 && nnq_tensor_get_int(train, 0)) {
        double r = ratio && ratio->data && nnq_tensor_numel(ratio) == 1
                       ? nnq_tensor_get_float(ratio, 0)
                       : 0.5;
        if (r > 0)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "training mode with ratio %g is not supported (inference only)", r);
    }
    NNQ_TRY(copy_forward(a));
    nnq_tensor *mask = a->n_out > 1 ? a->out[1] : NULL;
    if (!mask) return NNQ_OK;
    int64_t n = nnq_tensor_numel(mask);
    if (mask->dtype == NNQ_DT_BOOL) {
        memset(mask->data, 1, (size_t)n);
    } else {
        float *m = nnq_f32(mask);
        for (int64_t i = 0; i < n; i++) m[i] = 1.0f;
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_Dropout = {
    .op_type = "Dropout",
    .min_inputs = 1, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 2,
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = copy_backward,
};

/* ---- Constant: value (tensor), value_float(s), value_int(s) ---- */

/* The constant's dtype, shape and bytes, from whichever attribute is set. */
static nnq_status constant_source(const nnq_op_args *a, nnq_tensor *shape, const void **src) {
    const nnq_node *nd = a->node;
    const nnq_attr *at;
    memset(shape, 0, sizeof *shape);
    if ((at = nnq_node_attr(nd, "value")) && at->type == NNQ_ATTR_TENSOR && at->t) {
        const nnq_tensor *t = at->t;
        if (nnq_dtype_size(t->dtype) == 0)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "a %s constant is not supported",
                               nnq_dtype_name(t->dtype));
        if (!t->data && nnq_tensor_numel(t) != 0)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "the value tensor has no data");
        *src = t->data;
        return nnq_tensor_set_shape(shape, t->dtype, t->rank, t->dims);
    }
    if ((at = nnq_node_attr(nd, "value_float")) && at->type == NNQ_ATTR_FLOAT) {
        *src = &at->f;
        return nnq_tensor_set_shape(shape, NNQ_DT_FLOAT, 0, NULL);
    }
    if ((at = nnq_node_attr(nd, "value_int")) && at->type == NNQ_ATTR_INT) {
        *src = &at->i;
        return nnq_tensor_set_shape(shape, NNQ_DT_INT64, 0, NULL);
    }
    if ((at = nnq_node_attr(nd, "value_floats")) && at->type == NNQ_ATTR_FLOATS) {
        int64_t n = at->n;
        *src = at->floats;
        return nnq_tensor_set_shape(shape, NNQ_DT_FLOAT, 1, &n);
    }
    if ((at = nnq_node_attr(nd, "value_ints")) && at->type == NNQ_ATTR_INTS) {
        int64_t n = at->n;
        *src = at->ints;
        return nnq_tensor_set_shape(shape, NNQ_DT_INT64, 1, &n);
    }
    return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                       "needs a value, value_float(s) or value_int(s) attribute "
                       "(sparse and string constants are not supported)");
}

static nnq_status constant_infer(const nnq_op_args *a) {
    nnq_tensor shape;
    const void *src;
    NNQ_TRY(constant_source(a, &shape, &src));
    return nnq_tensor_set_shape(a->out[0], shape.dtype, shape.rank, shape.dims);
}

static nnq_status constant_forward(const nnq_op_args *a) {
    nnq_tensor shape;
    const void *src;
    size_t nbytes;
    NNQ_TRY(constant_source(a, &shape, &src));
    NNQ_TRY(nnq_tensor_nbytes(&shape, &nbytes));
    if (nbytes) memcpy(a->out[0]->data, src, nbytes);
    return NNQ_OK;
}

const nnq_op_def nnq_op_Constant = {
    .op_type = "Constant",
    .min_inputs = 0, .max_inputs = 0,
    .min_outputs = 1, .max_outputs = 1,
    .infer = constant_infer,
    .forward = constant_forward,
};
