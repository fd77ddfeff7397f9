#include "ops/broadcast.h"

#include "core/parallel.h"

bool nnq_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db, int *ry,
                         int64_t *dy) {
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        /* right-aligned: missing leading dims act as 1 */
        int64_t x = i - (r - ra) >= 0 ? da[i - (r - ra)] : 1;
        int64_t z = i - (r - rb) >= 0 ? db[i - (r - rb)] : 1;
        if (x == z) dy[i] = x;
        else if (x == 1) dy[i] = z;
        else if (z == 1) dy[i] = x;
        else if (x < 0) dy[i] = z; /* unknown meets n > 1: must be n (or 1) */
        else if (z < 0) dy[i] = x;
        else return false;
    }
    *ry = r;
    return true;
}

bool nnq_broadcast_to(int rb, const int64_t *db, int ra, const int64_t *da) {
    if (rb > ra) return false;
    for (int i = 0; i < rb; i++) {
        int64_t x = da[ra - rb + i], z = db[i];
        if (z != 1 && z != x && z >= 0 && x >= 0) return false;
    }
    return true;
}

/* Element strides of operand t laid against y's rank-r shape: 0 where t
 * has a size-1 (or missing) dim. */
static void operand_strides(const nnq_tensor *t, int r, int64_t *s) {
    int64_t stride = 1;
    for (int i = r - 1; i >= 0; i--) {
        int k = i - (r - t->rank);
        int64_t d = k >= 0 ? t->dims[k] : 1;
        s[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
}

void nnq_bcast_loop_init(nnq_bcast_loop *l, const nnq_tensor *y, const nnq_tensor *a,
                         const nnq_tensor *b) {
    int64_t sa[NNQ_MAX_RANK], sb[NNQ_MAX_RANK];
    int r = y->rank;
    operand_strides(a, r, sa);
    operand_strides(b, r, sb);
    l->numel = nnq_shape_numel(r, y->dims);
    l->rank = 0;
    if (l->numel == 0) {
        l->rank = 1;
        l->dims[0] = 0;
        l->sa[0] = l->sb[0] = 0;
        return;
    }
    for (int i = 0; i < r; i++) {
        if (y->dims[i] == 1) continue; /* contributes nothing to the walk */
        int m = l->rank;
        /* Merge into the previous dim when both operands continue
         * contiguously (or both keep skipping) across the boundary. */
        if (m > 0 && l->sa[m - 1] == sa[i] * y->dims[i] && l->sb[m - 1] == sb[i] * y->dims[i]) {
            l->dims[m - 1] *= y->dims[i];
            l->sa[m - 1] = sa[i];
            l->sb[m - 1] = sb[i];
            continue;
        }
        l->dims[m] = y->dims[i];
        l->sa[m] = sa[i];
        l->sb[m] = sb[i];
        l->rank++;
    }
    if (l->rank == 0) { /* every dim is 1: one element */
        l->rank = 1;
        l->dims[0] = 1;
        l->sa[0] = l->sb[0] = 0;
    }
}

/* Elements [lo, hi) of y, in rows of the innermost merged dim. */
static void run_range(const nnq_bcast_loop *l, nnq_bcast_kernel k, const void *ctx,
                      const unsigned char *a, size_t ea, const unsigned char *b, size_t eb,
                      unsigned char *y, size_t ey, int64_t lo, int64_t hi) {
    int r = l->rank;
    int64_t inner = l->dims[r - 1];
    int a_step = l->sa[r - 1] != 0, b_step = l->sb[r - 1] != 0;
    int64_t idx[NNQ_MAX_RANK];
    int64_t row = lo / inner, col = lo % inner, oa = 0, ob = 0;
    for (int d = r - 2; d >= 0; d--) {
        idx[d] = row % l->dims[d];
        row /= l->dims[d];
        oa += idx[d] * l->sa[d];
        ob += idx[d] * l->sb[d];
    }
    for (int64_t pos = lo; pos < hi;) {
        int64_t n = inner - col < hi - pos ? inner - col : hi - pos;
        k(n, a + (size_t)(oa + col * a_step) * ea, a_step, b + (size_t)(ob + col * b_step) * eb,
          b_step, y + (size_t)pos * ey, ctx);
        pos += n;
        col = 0;
        for (int d = r - 2; d >= 0; d--) { /* odometer over the outer dims */
            oa += l->sa[d];
            ob += l->sb[d];
            if (++idx[d] < l->dims[d]) break;
            oa -= l->sa[d] * l->dims[d];
            ob -= l->sb[d] * l->dims[d];
            idx[d] = 0;
        }
    }
}

void nnq_bcast_run(const nnq_bcast_loop *l, nnq_bcast_kernel k, const void *ctx, const void *a,
                   size_t a_esize, const void *b, size_t b_esize, void *y, size_t y_esize,
                   int threads) {
    int64_t n = l->numel;
    if (n <= 0) return;
    int nt = threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? threads : 1;
    if (nt == 1) {
        run_range(l, k, ctx, a, a_esize, b, b_esize, y, y_esize, 0, n);
        return;
    }
    NNQ_PARALLEL_FOR(nt, t, nt,
                     run_range(l, k, ctx, a, a_esize, b, b_esize, y, y_esize, n * t / nt,
                               n * (t + 1) / nt););
}

/* ---- Gradients ---- */

/* Columns per unit below which an unbroadcast row is not split further. */
#define GRAD_MIN_COLS 4096

void nnq_bcast_grad_run(const nnq_bcast_loop *l, int wrt, nnq_bcast_grad_kernel k,
                        const void *ctx, const float *dy, const float *a, const float *b,
                        float *g, int threads) {
    int r = l->rank;
    const int64_t *sg = wrt ? l->sb : l->sa;
    int64_t sy[NNQ_MAX_RANK], s = 1;
    if (l->numel <= 0) return;
    for (int d = r - 1; d >= 0; d--) { /* dy is dense over the merged dims */
        sy[d] = s;
        s *= l->dims[d];
    }
    /* Outer dims split into kept (g walks them: units of work, one per
     * index) and reduced (g stays put: summed inside a unit, in order). */
    int keep[NNQ_MAX_RANK], red[NNQ_MAX_RANK], nk = 0, nr = 0;
    int64_t kept = 1;
    for (int d = 0; d < r - 1; d++) {
        if (sg[d] != 0) {
            keep[nk++] = d;
            kept *= l->dims[d];
        } else {
            red[nr++] = d;
        }
    }
    int64_t inner = l->dims[r - 1];
    int a_step = l->sa[r - 1] != 0, b_step = l->sb[r - 1] != 0, g_step = sg[r - 1] != 0;
    int nt = threads > 1 && l->numel >= NNQ_PARALLEL_MIN_ELEMS ? threads : 1;
    /* Few kept units but long unbroadcast rows (e.g. same-shape operands):
     * split the rows into column chunks, which own disjoint g too. */
    int64_t chunks = 1;
    if (nt > 1 && g_step && kept < 4 * nt) {
        chunks = 4 * nt;
        if (chunks > inner / GRAD_MIN_COLS) chunks = inner / GRAD_MIN_COLS;
        if (chunks < 1) chunks = 1;
    }
    int64_t units = kept * chunks;
    NNQ_PARALLEL_FOR(nt, u, units, {
        int64_t rest = u / chunks, ch = u % chunks;
        int64_t c0 = inner * ch / chunks, c1 = inner * (ch + 1) / chunks;
        int64_t oy = c0, oa = c0 * a_step, ob = c0 * b_step, og = c0 * g_step;
        for (int j = nk - 1; j >= 0; j--) {
            int d = keep[j];
            int64_t i = rest % l->dims[d];
            rest /= l->dims[d];
            oy += i * sy[d];
            oa += i * l->sa[d];
            ob += i * l->sb[d];
            og += i * sg[d];
        }
        int64_t idx[NNQ_MAX_RANK] = {0};
        for (;;) {
            k(c1 - c0, dy + oy, a + oa, a_step, b + ob, b_step, g + og, g_step, ctx);
            int j = nr - 1;
            for (; j >= 0; j--) { /* odometer over the reduced dims */
                int d = red[j];
                oy += sy[d];
                oa += l->sa[d];
                ob += l->sb[d];
                if (++idx[j] < l->dims[d]) break;
                oy -= sy[d] * l->dims[d];
                oa -= l->sa[d] * l->dims[d];
                ob -= l->sb[d] * l->dims[d];
                idx[j] = 0;
            }
            if (j < 0) break;
        }
    });
}

void nnq_grad_accumulate(float *g, const float *dy, int64_t n, int threads) {
    if (n <= 0) return;
    int nt = threads > 1 && n >= NNQ_PARALLEL_MIN_ELEMS ? threads : 1;
    NNQ_PARALLEL_FOR(nt, t, nt, {
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        float *gt = g + lo;
        const float *dt = dy + lo;
        NNQ_SIMD for (int64_t i = 0; i < hi - lo; i++) gt[i] += dt[i];
    });
}
