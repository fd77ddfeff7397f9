/* Transpose: any rank up to NNQ_MAX_RANK, any fixed-size dtype.
 *
 * Size-1 dims are dropped and input dims that stay adjacent under the
 * permutation are merged, so e.g. NCHW -> NHWC becomes a 2-D transpose of
 * (C, H*W) per image, and channel shuffles become row copies. What
 * remains is walked in tiles of the output dim that reads the input
 * contiguously against the output's innermost dim, so neither side
 * strides through memory one element per cache line. The backward is the
 * same walk with the inverse permutation, adding instead of copying. */
#include <string.h>

#include "core/parallel.h"
#include "ops/broadcast.h"
#include "ops/op.h"

#define TILE 32

static nnq_status read_perm(const nnq_op_args *a, int r, int *perm) {
    const int64_t *p;
    int n = nnq_node_attr_ints(a->node, "perm", &p);
    bool seen[NNQ_MAX_RANK] = {false};
    if (n == 0) { /* default: reverse the dims */
        for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
        return NNQ_OK;
    }
    if (n != r)
        return nnq_op_fail(a, NNQ_ERR_INVALID, "perm has %d entries for a rank-%d input", n, r);
    for (int i = 0; i < r; i++) {
        if (p[i] < 0 || p[i] >= r || seen[p[i]])
            return nnq_op_fail(a, NNQ_ERR_INVALID, "perm is not a permutation of 0..%d", r - 1);
        seen[p[i]] = true;
        perm[i] = (int)p[i];
    }
    return NNQ_OK;
}

static nnq_status transpose_infer(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int perm[NNQ_MAX_RANK];
    int64_t dims[NNQ_MAX_RANK];
    if (nnq_dtype_size(x->dtype) == 0)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    NNQ_TRY(read_perm(a, x->rank, perm));
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    return nnq_tensor_set_shape(a->out[0], x->dtype, x->rank, dims);
}

/* The transpose after dropping size-1 dims and merging: output dim k has
 * size od[k] and reads the input with element stride is[k]. */
typedef struct tr_plan {
    int m;
    int64_t od[NNQ_MAX_RANK];
    int64_t is[NNQ_MAX_RANK];
} tr_plan;

static void plan_transpose(int r, const int64_t *dims, const int *perm, tr_plan *p) {
    int keep[NNQ_MAX_RANK], kr = 0;
    int64_t stride[NNQ_MAX_RANK], s = 1;
    for (int i = r - 1; i >= 0; i--) {
        stride[i] = s;
        s *= dims[i];
    }
    for (int k = 0; k < r; k++)
        if (dims[perm[k]] != 1) keep[kr++] = perm[k];
    p->m = 0;
    for (int k = 0; k < kr; k++) {
        int i = keep[k];
        int m = p->m;
        /* Input dim i follows the previous output dim's input dim
         * contiguously: one merged dim. */
        if (m > 0 && p->is[m - 1] == stride[i] * dims[i]) {
            p->od[m - 1] *= dims[i];
            p->is[m - 1] = stride[i];
            continue;
        }
        p->od[m] = dims[i];
        p->is[m] = stride[i];
        p->m++;
    }
}

/* One (rows x cols) tile: dst[i * dst_row + j] = src[i + j * src_col]. */
#define TILE_COPY(name, T)                                                                 \
    static void name(const void *ps, void *pd, int64_t rows, int64_t cols, int64_t src_col, \
                     int64_t dst_row) {                                                    \
        const T *src = ps;                                                                 \
        T *dst = pd;                                                                       \
        for (int64_t i = 0; i < rows; i++)                                                 \
            for (int64_t j = 0; j < cols; j++) dst[i * dst_row + j] = src[i + j * src_col]; \
    }

TILE_COPY(tile_1, uint8_t)
TILE_COPY(tile_2, uint16_t)
TILE_COPY(tile_4, uint32_t)
TILE_COPY(tile_8, uint64_t)

/* The backward's tile: dst[i * dst_row + j] += src[i + j * src_col], float. */
static void tile_add_f32(const void *ps, void *pd, int64_t rows, int64_t cols, int64_t src_col,
                         int64_t dst_row) {
    const float *src = ps;
    float *dst = pd;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) dst[i * dst_row + j] += src[i + j * src_col];
}

/* A contiguous run of n elements: copy, or add (float) for the backward. */
static void run_copy(const void *src, void *dst, int64_t n, size_t es, bool add) {
    if (!add) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    const float *s = src;
    float *d = dst;
    NNQ_SIMD for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

typedef void (*tile_fn)(const void *, void *, int64_t, int64_t, int64_t, int64_t);

/* dst = src permuted (dst dim k is src dim perm[k]); with add, dst +=
 * instead (float only). Shared by forward and backward. */
static void transpose_run(const void *src_data, int r, const int64_t *dims, const int *perm,
                          void *dst_data, size_t es, bool add, int threads) {
    tr_plan p;
    int64_t total = nnq_shape_numel(r, dims);
    if (total <= 0) return;
    plan_transpose(r, dims, perm, &p);
    if (p.m <= 1) { /* the permutation does not reorder memory */
        run_copy(src_data, dst_data, total, es, add);
        return;
    }
    tile_fn tile = add       ? tile_add_f32
                   : es == 1 ? tile_1
                   : es == 2 ? tile_2
                   : es == 4 ? tile_4
                             : tile_8;
    int m = p.m, q = 0;
    int64_t os[NNQ_MAX_RANK], s = 1;
    for (int k = m - 1; k >= 0; k--) {
        os[k] = s;
        s *= p.od[k];
        if (p.is[k] == 1) q = k; /* the output dim that reads the input contiguously */
    }
    /* Work units: every index of the other dims, times the tiles along q
     * (times the rows of the inner dim when q is innermost: plain copies). */
    int other[NNQ_MAX_RANK], no = 0;
    for (int k = 0; k < m - 1; k++)
        if (k != q) other[no++] = k;
    int64_t rows = q == m - 1 ? 1 : p.od[q];
    int64_t row_tiles = (rows + TILE - 1) / TILE;
    int64_t outer = 1;
    for (int k = 0; k < no; k++) outer *= p.od[other[k]];
    int64_t units = outer * row_tiles;
    int nt = threads > 1 && total >= NNQ_PARALLEL_MIN_ELEMS ? threads : 1;
    const unsigned char *src = src_data;
    unsigned char *dst = dst_data;
    NNQ_PARALLEL_FOR(nt, u, units, {
        int64_t rest = u / row_tiles, r0 = (u % row_tiles) * TILE;
        int64_t oi = 0, oo = 0;
        for (int k = no - 1; k >= 0; k--) {
            int d = other[k];
            int64_t idx = rest % p.od[d];
            rest /= p.od[d];
            oi += idx * p.is[d];
            oo += idx * os[d];
        }
        int64_t cols = p.od[m - 1];
        if (q == m - 1) {
            run_copy(src + (size_t)oi * es, dst + (size_t)oo * es, cols, es, add);
            continue;
        }
        int64_t nr = rows - r0 < TILE ? rows - r0 : TILE;
        for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
            int64_t nc = cols - c0 < TILE ? cols - c0 : TILE;
            tile(src + (size_t)(oi + r0 + c0 * p.is[m - 1]) * es,
                 dst + (size_t)(oo + r0 * os[q] + c0) * es, nr, nc, p.is[m - 1], os[q]);
        }
    });
}

static nnq_status transpose_forward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0];
    int perm[NNQ_MAX_RANK];
    size_t es = nnq_dtype_size(x->dtype);
    NNQ_TRY(read_perm(a, x->rank, perm));
    if (es != 1 && es != 2 && es != 4 && es != 8)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "dtype %s is not supported",
                           nnq_dtype_name(x->dtype));
    transpose_run(x->data, x->rank, x->dims, perm, a->out[0]->data, es, false, a->threads);
    return NNQ_OK;
}

/* Backward (float32): dx += dy transposed by the inverse permutation. */
static nnq_status transpose_backward(const nnq_op_args *a) {
    const nnq_tensor *x = a->in[0], *dy = a->out_grad[0];
    nnq_tensor *dx = a->in_grad[0];
    int perm[NNQ_MAX_RANK], inv[NNQ_MAX_RANK];
    if (!dy || !dx) return NNQ_OK;
    if (dy->dtype != NNQ_DT_FLOAT || dx->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "backward needs float, got %s",
                           nnq_dtype_name(dy->dtype));
    NNQ_TRY(read_perm(a, x->rank, perm));
    for (int k = 0; k < x->rank; k++) inv[perm[k]] = k;
    transpose_run(dy->data, dy->rank, dy->dims, inv, dx->data, sizeof(float), true, a->threads);
    return NNQ_OK;
}

const nnq_op_def nnq_op_Transpose = {
    .op_type = "Transpose",
    .min_inputs = 1, .max_inputs = 1,
    .min_outputs = 1, .max_outputs = 1,
    .infer = transpose_infer,
    .forward = transpose_forward,
    .backward = transpose_backward,
};
