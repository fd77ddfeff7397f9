/* Concat along one axis, any rank, any fixed-size dtype.
 *
 * Viewed as (outer, axis * inner): for each outer index, every input
 * contributes one contiguous block of dims[axis] * inner elements, so the
 * copy is a sequence of memcpys; backward walks the same blocks. */
#include <limits.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/broadcast.h"
#include "ops/op.h"

static nnq_status concat_axis(const nnq_op_args *a, int r, int *axis) {
    const nnq_attr *at = nnq_node_attr(a->node, "axis");
    /* axis became required in opset 4; before, it defaulted to 1 */
    if (!at && a->opset >= 4) return nnq_op_fail(a, NNQ_ERR_INVALID, "the axis attribute is missing");
    int64_t ax = nnq_node_attr_int(a->node, "axis", 1);
    if (ax < -r || ax >= r)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "axis %lld is out of range for rank %d",
                           (long long)ax, r);
    *axis = (int)(ax < 0 ? ax + r : ax);
    return NNQ_OK;
}

static nnq_status concat_infer(const nnq_op_args *a) {
    const nnq_tensor *x0 = a->in[0];
    int64_t dims[NNQ_MAX_RANK];
    int axis;
    char s0[128], si[128];
    for (int i = 0; i < a->n_in; i++)
        if (!a->in[i]) return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d is missing", i);
    if (nnq_dtype_size(x0->dtype) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x0->dtype));
    if (x0->rank == 0) return nnq_op_fail(a, NNQ_ERR_SHAPE, "cannot concatenate scalars");
    NNQ_TRY(concat_axis(a, x0->rank, &axis));
    for (int k = 0; k < x0->rank; k++) dims[k] = x0->dims[k];
    for (int i = 1; i < a->n_in; i++) {
        const nnq_tensor *x = a->in[i];
        if (x->dtype != x0->dtype)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "input %d is %s but input 0 is %s", i,
                               nnq_dtype_name(x->dtype), nnq_dtype_name(x0->dtype));
        if (x->rank != x0->rank)
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "input %d has rank %d but input 0 has rank %d",
                               i, x->rank, x0->rank);
        for (int k = 0; k < x0->rank; k++) {
            if (k == axis) {
                dims[k] = dims[k] < 0 || x->dims[k] < 0 ? -1 : dims[k] + x->dims[k];
            } else if (dims[k] < 0) {
                dims[k] = x->dims[k];
            } else if (x->dims[k] >= 0 && x->dims[k] != dims[k]) {
                return nnq_op_fail(a, NNQ_ERR_SHAPE,
                                   "input %d has shape %s, input 0 has %s: only axis %d may differ",
                                   i, nnq_shape_str(x, si, sizeof si),
                                   nnq_shape_str(x0, s0, sizeof s0), axis);
            }
        }
    }
    return nnq_tensor_set_shape(a->out[0], x0->dtype, x0->rank, dims);
}

static nnq_status concat_forward(const nnq_op_args *a) {
    nnq_tensor *y = a->out[0];
    int axis;
    NNQ_TRY(concat_axis(a, y->rank, &axis));
    size_t es = nnq_dtype_size(y->dtype);
    int64_t outer = nnq_shape_numel(axis, y->dims);
    int64_t inner = nnq_shape_numel(y->rank - axis - 1, y->dims + axis + 1);
    size_t row = (size_t)(y->dims[axis] * inner) * es; /* bytes of y per outer index */
    int64_t total = nnq_tensor_numel(y);
    int nt = a->threads > 1 && total >= NNQ_PARALLEL_MIN_ELEMS && outer > 1 ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, o, outer, {
        unsigned char *dst = (unsigned char *)y->data + (size_t)o * row;
        for (int i = 0; i < a->n_in; i++) {
            const nnq_tensor *x = a->in[i];
            size_t block = (size_t)(x->dims[axis] * inner) * es;
            if (block) memcpy(dst, (const unsigned char *)x->data + (size_t)o * block, block);
            dst += block;
        }
    });
    return NNQ_OK;
}

/* Backward (float32): each input's gradient is its block of dy,
 * accumulated; the same (outer, axis * inner) walk as forward. */
static nnq_status concat_backward(const nnq_op_args *a) {
    const nnq_tensor *dy = a->out_grad[0];
    int axis;
    if (!dy) return NNQ_OK;
    if (dy->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward needs float, got %s",
                           nnq_dtype_name(dy->dtype));
    NNQ_TRY(concat_axis(a, dy->rank, &axis));
    int64_t outer = nnq_shape_numel(axis, dy->dims);
    int64_t inner = nnq_shape_numel(dy->rank - axis - 1, dy->dims + axis + 1);
    int64_t row = dy->dims[axis] * inner; /* elements of dy per outer index */
    int64_t total = nnq_tensor_numel(dy);
    int nt = a->threads > 1 && total >= NNQ_PARALLEL_MIN_ELEMS && outer > 1 ? a->threads : 1;
    NNQ_PARALLEL_FOR(nt, o, outer, {
        const float *src = nnq_f32(dy) + o * row;
        for (int i = 0; i < a->n_in; i++) {
            int64_t block = a->in[i]->dims[axis] * inner;
            nnq_tensor *g = a->in_grad[i];
            if (g) {
                float *dst = nnq_f32(g) + o * block;
                NNQ_SIMD for (int64_t k = 0; k < block; k++) dst[k] += src[k];
            }
            src += block;
        }
    });
    return NNQ_OK;
}

const nnq_op_def nnq_op_Concat = {
    .op_type = "Concat",
    .min_inputs = 1, .max_inputs = INT_MAX,
    .min_outputs = 1, .max_outputs = 1,
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};
