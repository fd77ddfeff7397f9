/* The integer engine's operators other than the convolution / fc kernels
 * (those are in qconv.c, qfc.c; iops_linear.c wraps them): quantize the
 * float input, dequantize the logits, quantized add, concat / requantize,
 * max and average pools, table lookup. One table entry per kind
 * (ip_int_impls), integer arithmetic only between quantize and dequantize.
 *
 * Threads: each operator parallelises itself at one level (over elements
 * or over (image, channel) planes, with OpenMP, when the work is large);
 * the executor never runs operators inside a parallel region, so there is
 * no nesting. */
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "core/qmath.h"
#include "core/requant.h"
#include "engine/cpu.h"
#include "engine/iprog_impl.h"

/* Elementwise operators: the ISA chosen at create (as the kernels do:
 * NNQ_KERNELS=ref keeps the scalar code), and for requantize / concat one
 * 256-entry table per input (requant(x - z_in) clamped: a table lookup
 * per element instead of a 64-bit multiply). */
typedef struct elt_state {
    bool avx2;
    uint8_t *tables; /* [n_in][256] (requantize, concat) */
    uint8_t *xtabs;  /* [n_in][256] the same for ip_lut_avx2 */
} elt_state;

static void elt_destroy(void *state) {
    elt_state *s = state;
    if (!s) return;
    free(s->tables);
    free(s->xtabs);
    free(s);
}

/* Row h of xtab = T_h ^ T_(h-1) (rows of 16 table entries), except rows 0
 * and 8, which are T_0 and T_8: XOR-ing rows 0..h (or 8..h) gives T_h,
 * the rows ip_lut_avx2 reads for a code of high nibble h. */
void ip_lut_xor_rows(const uint8_t *table, uint8_t *xtab) {
    for (int h = 0; h < 16; h++)
        for (int j = 0; j < 16; j++)
            xtab[16 * h + j] = (uint8_t)(table[16 * h + j] ^ (h % 8 ? table[16 * (h - 1) + j] : 0));
}

static nnq_status elt_create(const nnq_iprog *p, const ip_op *op, void **state) {
    (void)p;
    nnq_isa isa;
    NNQ_TRY(nnq_cpu_kernel_isa(&isa));
    elt_state *s = calloc(1, sizeof *s);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating '%s'", op->name);
    s->avx2 = isa >= NNQ_ISA_AVX2;
    const int n = op->kind == IP_REQUANT || op->kind == IP_CONCAT ? ((const ip_requant *)op->par)->n
                  : op->kind == IP_LUT                         ? 1
                                                               : 0;
    if (n > 0) {
        s->tables = malloc((size_t)n * 256);
        s->xtabs = malloc((size_t)n * 256);
        if (!s->tables || !s->xtabs) {
            elt_destroy(s);
            return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating '%s'", op->name);
        }
    }
    if (op->kind == IP_LUT) memcpy(s->tables, ((const ip_lut *)op->par)->table, 256);
    if (op->kind == IP_REQUANT || op->kind == IP_CONCAT) {
        const ip_requant *q = op->par;
        for (int k = 0; k < q->n; k++)
            for (int i = 0; i < 256; i++)
                s->tables[k * 256 + i] = ip_clamp_u8(
                    q->zy + nnq_requant_apply(i - q->r[k].z_in, q->r[k].mult, q->r[k].shift), q->lo,
                    q->hi);
    }
    for (int k = 0; k < n; k++) ip_lut_xor_rows(s->tables + 256 * k, s->xtabs + 256 * k);
    *state = s;
    return NNQ_OK;
}

/* y = table k of s applied to x */
static void lut_apply(const elt_state *s, int k, const uint8_t *x, uint8_t *y, int64_t n) {
    const uint8_t *table = s->tables + 256 * k;
    if (s->avx2) {
        ip_lut_avx2(s->xtabs + 256 * k, table, x, y, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = table[x[i]];
}

/* Elementwise work is cut into blocks of this many elements for threads. */
#define ELT_BLOCK 16384

static int threads_for(const ip_call *c, int64_t work) {
    return c->threads > 1 && work >= IP_PARALLEL_MIN ? c->threads : 1;
}

static nnq_status no_scratch(ip_call *c, size_t *scratch) {
    (void)c;
    *scratch = 0;
    return NNQ_OK;
}

/* X viewed as [outer, channels, inner] for per-axis parameters. */
static void axis_layout(const nnq_tensor *x, int axis, int64_t n, int64_t *inner) {
    *inner = 1;
    if (n <= 1) return;
    for (int k = axis + 1; k < x->rank; k++) *inner *= x->dims[k];
}

/* ---- quantize / dequantize ---- */

static nnq_status quantize_run(ip_call *c) {
    const ip_qparams *q = c->op->par;
    const nnq_tensor *x = c->in[0];
    const int64_t n = nnq_tensor_numel(x);
    int64_t inner;
    axis_layout(x, q->axis, q->n, &inner);
    const float *xs = nnq_f32(x);
    uint8_t *y = c->out[0]->data;
    const elt_state *st = c->state;
    if (st->avx2 && q->n == 1 && 0 <= q->qmin && q->qmin <= q->zp[0] && q->zp[0] <= q->qmax &&
        q->qmax <= 255) {
        const int64_t blocks = (n + ELT_BLOCK - 1) / ELT_BLOCK;
        NNQ_PARALLEL_FOR(threads_for(c, n), b, blocks, {
            const int64_t i0 = b * ELT_BLOCK, i1 = i0 + ELT_BLOCK < n ? i0 + ELT_BLOCK : n;
            ip_quantize_avx2(xs + i0, y + i0, i1 - i0, q->scale[0], q->zp[0], q->qmin, q->qmax);
        });
        return NNQ_OK;
    }
    NNQ_PARALLEL_FOR(threads_for(c, n), i, n, {
        const int64_t ch = q->n > 1 ? (i / inner) % q->n : 0;
        y[i] = (uint8_t)nnq_quantize_i(xs[i], q->scale[ch], q->zp[ch], q->qmin, q->qmax);
    });
    return NNQ_OK;
}

static nnq_status dequantize_run(ip_call *c) {
    const ip_qparams *q = c->op->par;
    const nnq_tensor *x = c->in[0];
    const int64_t n = nnq_tensor_numel(x);
    int64_t inner;
    axis_layout(x, q->axis, q->n, &inner);
    const uint8_t *xs = x->data;
    float *y = nnq_f32(c->out[0]);
    NNQ_PARALLEL_FOR(threads_for(c, n), i, n, {
        const int64_t ch = q->n > 1 ? (i / inner) % q->n : 0;
        y[i] = nnq_dequantize_f((float)xs[i], q->scale[ch], (float)q->zp[ch]);
    });
    return NNQ_OK;
}

/* ---- add ---- */

static nnq_status add_run(ip_call *c) {
    const elt_state *st = c->state;
    const ip_add *a = c->op->par;
    const int64_t n = nnq_tensor_numel(c->out[0]), blocks = (n + ELT_BLOCK - 1) / ELT_BLOCK;
    const uint8_t *x = c->in[0]->data, *z = c->in[1]->data;
    uint8_t *y = c->out[0]->data;
    const int32_t round = (int32_t)1 << (a->shift - 1), ma = (int32_t)a->ma, mb = (int32_t)a->mb;
    NNQ_PARALLEL_FOR(threads_for(c, n), b, blocks, {
        const int64_t i0 = b * ELT_BLOCK, i1 = i0 + ELT_BLOCK < n ? i0 + ELT_BLOCK : n;
        if (st->avx2) {
            ip_add_avx2(a, x + i0, z + i0, y + i0, i1 - i0);
            continue;
        }
        for (int64_t i = i0; i < i1; i++) { /* int32: |t| < 2^31 (iprog.c checks) */
            const int32_t t = ((int32_t)x[i] - a->za) * ma + ((int32_t)z[i] - a->zb) * mb + round;
            y[i] = ip_clamp_u8(a->zy + (t >> a->shift), a->lo, a->hi);
        }
    });
    return NNQ_OK;
}

/* ---- concat and requantize ---- */

static bool identity_rescale(const ip_rescale *r, const ip_requant *q) {
    return r->mult == (1 << 30) && r->shift == 30 && r->z_in == q->zy && q->lo == 0 && q->hi == 255;
}

static nnq_status requant_run(ip_call *c) {
    const elt_state *st = c->state;
    const ip_requant *q = c->op->par;
    const nnq_tensor *y = c->out[0];
    int64_t outer = 1, ytail = 1;
    for (int k = 0; k < q->axis; k++) outer *= y->dims[k];
    for (int k = q->axis; k < y->rank; k++) ytail *= y->dims[k];
    uint8_t *yd = y->data;
    int64_t off = 0; /* offset of input k's block inside one outer row of y */
    for (int k = 0; k < q->n; k++) {
        const nnq_tensor *x = c->in[k];
        const int64_t tail = x->dims[q->axis] * (ytail / y->dims[q->axis]);
        const uint8_t *xd = x->data;
        const bool copy = identity_rescale(&q->r[k], q);
        NNQ_PARALLEL_FOR(threads_for(c, outer * tail), o, outer, {
            if (copy) memcpy(yd + o * ytail + off, xd + o * tail, (size_t)tail);
            else lut_apply(st, k, xd + o * tail, yd + o * ytail + off, tail);
        });
        off += tail;
    }
    return NNQ_OK;
}

/* ---- pools ---- */

/* Taps [lo, hi) of output position o along one dim that read inside an
 * input of size `in` (start o * s - pad, step d). */
static inline void taps_in(int64_t o, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t in,
                           int64_t *lo, int64_t *hi) {
    const int64_t start = o * s - pad;
    int64_t l = 0, h = k;
    while (l < k && start + l * d < 0) l++;
    while (h > l && start + (h - 1) * d >= in) h--;
    *lo = l;
    *hi = h;
}

/* Taps of the window at o that land in the padded input [-pad_b, in + pad_e). */
static inline int64_t taps_padded(int64_t o, int64_t s, int64_t pad_b, int64_t pad_e, int64_t d,
                                  int64_t k, int64_t in) {
    const int64_t start = o * s, limit = in + pad_b + pad_e;
    int64_t n = 0;
    while (n < k && start + n * d < limit) n++;
    return n;
}

/* The average of cnt taps whose values minus zx sum to acc, on y's grid. */
static uint8_t pool_average(const ip_pool *q, int32_t acc, int64_t cnt) {
    int64_t v = 0;
    if (cnt > 0 && q->same_grid) { /* round half up: floor((2 acc + n) / (2 n)) */
        const int64_t num = 2 * (int64_t)acc + cnt, den = 2 * cnt;
        v = num >= 0 ? num / den : -((-num + den - 1) / den);
    } else if (cnt > 0) {
        v = nnq_requant_apply(acc, q->mult[cnt], q->shift[cnt]);
    }
    return ip_clamp_u8(q->zy + v, q->lo, q->hi);
}

static void pool_plane(const ip_pool *q, bool avg, const uint8_t *x, int64_t H, int64_t W,
                       uint8_t *y, int64_t OH, int64_t OW) {
    if (avg && q->global && OH == 1 && OW == 1 && !(q->pt | q->pl | q->pb | q->pr)) {
        /* one window, the whole plane: a plain (vectorised) sum */
        uint32_t sum = 0;
        for (int64_t i = 0; i < H * W; i++) sum += x[i];
        y[0] = pool_average(q, (int32_t)(sum - (uint32_t)(H * W * q->zx)), H * W);
        return;
    }
    for (int64_t oy = 0; oy < OH; oy++) {
        int64_t ylo, yhi;
        taps_in(oy, q->sh, q->pt, q->dh, q->kh, H, &ylo, &yhi);
        const int64_t hn = q->include_pad ? taps_padded(oy, q->sh, q->pt, q->pb, q->dh, q->kh, H)
                                          : yhi - ylo;
        for (int64_t ox = 0; ox < OW; ox++) {
            int64_t xlo, xhi;
            taps_in(ox, q->sw, q->pl, q->dw, q->kw, W, &xlo, &xhi);
            int32_t acc = avg ? 0 : -1;
            for (int64_t ky = ylo; ky < yhi; ky++) {
                const uint8_t *row = x + (oy * q->sh - q->pt + ky * q->dh) * W;
                for (int64_t kx = xlo; kx < xhi; kx++) {
                    const int32_t v = row[ox * q->sw - q->pl + kx * q->dw];
                    if (avg) acc += v - q->zx;
                    else if (v > acc) acc = v;
                }
            }
            if (!avg) {
                y[oy * OW + ox] = (uint8_t)(acc < 0 ? q->zx : acc); /* no tap: the grid's 0 */
                continue;
            }
            const int64_t cnt = q->include_pad
                                    ? hn * taps_padded(ox, q->sw, q->pl, q->pr, q->dw, q->kw, W)
                                    : (yhi - ylo) * (xhi - xlo);
            y[oy * OW + ox] = pool_average(q, acc, cnt);
        }
    }
}

static nnq_status pool_run(ip_call *c) {
    const ip_pool *q = c->op->par;
    const nnq_tensor *x = c->in[0], *y = c->out[0];
    const int64_t planes = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3];
    const bool avg = c->op->kind == IP_AVGPOOL;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    NNQ_PARALLEL_FOR(threads_for(c, planes * H * W), p, planes,
                     pool_plane(q, avg, xd + p * H * W, H, W, yd + p * OH * OW, OH, OW););
    return NNQ_OK;
}

/* ---- table lookup ---- */

static nnq_status lut_run(ip_call *c) {
    const elt_state *st = c->state;
    const int64_t n = nnq_tensor_numel(c->in[0]), blocks = (n + ELT_BLOCK - 1) / ELT_BLOCK;
    const uint8_t *x = c->in[0]->data;
    uint8_t *y = c->out[0]->data;
    NNQ_PARALLEL_FOR(threads_for(c, n), b, blocks, {
        const int64_t i0 = b * ELT_BLOCK, i1 = i0 + ELT_BLOCK < n ? i0 + ELT_BLOCK : n;
        lut_apply(st, 0, x + i0, y + i0, i1 - i0);
    });
    return NNQ_OK;
}

static const ip_impl quantize_impl = {elt_create, no_scratch, quantize_run, elt_destroy};
static const ip_impl dequantize_impl = {NULL, no_scratch, dequantize_run, NULL};
static const ip_impl add_impl = {elt_create, no_scratch, add_run, elt_destroy};
static const ip_impl requant_impl = {elt_create, no_scratch, requant_run, elt_destroy};
static const ip_impl pool_impl = {NULL, no_scratch, pool_run, NULL};
static const ip_impl lut_impl = {elt_create, no_scratch, lut_run, elt_destroy};

const ip_impl *const ip_int_impls[IP_N_KINDS] = {
    [IP_QUANTIZE] = &quantize_impl, [IP_DEQUANTIZE] = &dequantize_impl,
    [IP_LINEAR] = &ip_int_linear_impl, [IP_ADD] = &add_impl,
    [IP_CONCAT] = &requant_impl,    [IP_REQUANT] = &requant_impl,
    [IP_MAXPOOL] = &pool_impl,      [IP_AVGPOOL] = &pool_impl,
    [IP_LUT] = &lut_impl,           [IP_FLOAT] = &ip_float_impl,
};
