/* AVX-512 VNNI direct convolution: groups == 1, kh * kw > 1, strides 1 and
 * 2, any padding and dilation, 2..8-bit weights (docs/engine.md). No im2col
 * panel: the micro-kernel loads its pixels straight from one copy of the
 * input.
 *
 * Work item: (image, block of output rows, chunk of channel blocks). Its
 * input rows are copied once, zero-point padded, into a channel-quad
 * interleaved buffer split into stride phases by row and by column:
 *
 *   channel ci, padded (r, c) -> quad ci / 4, plane (r % sh, c % sw),
 *       phase row r / sh - oy0, column c / sw, byte ci % 4 of the 4-byte group
 *
 * (channels padded to a multiple of 4: x_zp bytes under zero weights). Under
 * tap (ky, kx) the 4 channels of output pixel (oy, ox) are then the 4-byte
 * group at toff[tap] + 4 * ((oy - oy0) * pw + ox) of the quad's region, and
 * 16 consecutive output pixels of a row are one zmm load, for any stride and
 * dilation. vpdpbusd with the 4 weights of (output channel, tap, quad)
 * broadcast adds their 4 products to the pixel's int32 lane, exactly (u8 x
 * s8, no saturation; create proves every partial sum of bias' + sum x * w
 * fits int32, in any order: nnq_qweights_prepare).
 *
 * Tiles of 16 output pixels: R output rows of 16 / R pixels, R = 1 for
 * rows wider than 8 (one load), 2 for rows of 5-8 (8x8 maps: two 256-bit
 * loads), 4 for rows of at most 4 (4x4 maps: four 128-bit loads), so
 * small maps waste no lanes; or, where that wastes more lanes (odd widths
 * just above a multiple of 16 / R), on the "virtual" grid
 * v = (oy - oy0) * pw + ox across rows, the pad columns between rows
 * computed and dropped (the results go through a small staging buffer).
 * The micro-kernel holds 8 output channels x 32 pixels (two tiles) in 16
 * zmm accumulators: per (quad, tap) 2 tile loads and 8 weight broadcasts
 * (folded into vpdpbusd's {1to16} operand) feed 16 vpdpbusd. Weights are
 * packed at create as [block of 8 channels][quad][tap][8] x 4 int8
 * (nibbles unpacked, zeros for padding channels). The epilogue is
 * vnni-gemm's (nnq_vnni_requant, nnq_vnni_pack4).
 *
 * Threads: the items go over the threads (omp for, static), a multiple of
 * the thread count of them where the batch alone is not (batch 1 on two
 * threads): the rows are split first, so each thread copies only its own
 * rows and their halo, then (small maps) the channels; a thread reuses its
 * copy across consecutive channel chunks. */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_vnni.h"

#define MRV 8                  /* output channels per block */
#define TP 16                  /* pixels per tile (one zmm of 4-byte groups) */
#define BUF_BUDGET (128 * 1024) /* interleaved input of a work item: stays in L2 */
#define GAP 64 /* bytes after each phase plane: the copy's stores may run past a row */

static size_t align_up(size_t n) { return (n + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN; }

/* One tile of a work item: its first pixel's 4-byte group in the buffer;
 * for R-row tiles also its first output pixel in the plane, its width and
 * its rows. */
typedef struct dtile {
    int64_t in, out;
    int32_t npx, nrows;
} dtile;

typedef struct dgeom {
    int64_t nq;     /* channel quads */
    int64_t taps;   /* kh * kw */
    int64_t ob;     /* channel blocks */
    int64_t pw;     /* columns per phase row */
    int64_t rp;     /* phase rows per plane for a full block of rows */
    int64_t plane;  /* bytes per phase plane: rp * pw * 4 */
    int64_t qs;     /* bytes per quad: sh * sw planes */
    size_t buf;     /* interleaved buffer, slack included */
    size_t block_bytes; /* packed weights of one channel block */
} dgeom;

static int64_t extra_rows(const nnq_qconv *c) { return (c->kh - 1) * c->dh / c->sh; }

static dgeom geometry(const nnq_qconv *c, int64_t rb) {
    dgeom g;
    g.nq = (c->cg + 3) / 4;
    g.taps = c->kh * c->kw;
    g.ob = (c->out_ch + MRV - 1) / MRV;
    g.pw = (c->wd + c->pl + c->pr + c->sw - 1) / c->sw;
    g.rp = rb + extra_rows(c);
    g.plane = g.rp * g.pw * 4 + GAP;
    g.qs = g.plane * c->sh * c->sw;
    /* A tile reads up to 31 groups past its row's last pixel, 3 rows below
     * its block's last (4-row tiles), at a tap offset of up to a row: slack
     * past the last plane, never stored. */
    g.buf = (size_t)(g.nq * g.qs + (4 * g.pw + 2 * TP + 16) * 4);
    g.block_bytes = (size_t)(g.nq * g.taps * MRV * 4);
    return g;
}

/* ---- create: pack weights ---- */

static nnq_status direct_pack(nnq_qconv *c, const int8_t *w) {
    const dgeom g = geometry(c, 1);
    c->w_bytes = g.block_bytes * (size_t)g.ob;
    c->w = nnq_qalloc(c->w_bytes); /* zeroed: padding channels and output channels */
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    for (int64_t o = 0; o < c->out_ch; o++) {
        int8_t *blk = (int8_t *)c->w + (size_t)(o / MRV) * g.block_bytes;
        for (int64_t ci = 0; ci < c->cg; ci++)
            for (int64_t t = 0; t < g.taps; t++) {
                const int64_t s = ci / 4 * g.taps + t; /* step: (quad, tap) */
                blk[(s * MRV + o % MRV) * 4 + ci % 4] = w[(o * c->cg + ci) * g.taps + t];
            }
    }
    return NNQ_OK;
}

/* ---- reshape: blocking ---- */

/* Tiles of a block of `rows` output rows: R rows of up to TP / R pixels
 * (R = 1 for rows wider than 8), or on the virtual grid. */
static int64_t tile_rows(const nnq_qconv *c) { return c->ow <= 4 ? 4 : c->ow <= 8 ? 2 : 1; }
static int64_t row_tiles(const nnq_qconv *c, int64_t rows, int64_t R) {
    const int64_t cw = TP / R;
    return (rows + R - 1) / R * ((c->ow + cw - 1) / cw);
}
static int64_t virtual_tiles(const nnq_qconv *c, const dgeom *g, int64_t rows) {
    return ((rows - 1) * g->pw + c->ow + TP - 1) / TP;
}

/* Scratch of one thread: interleaved buffer | tap offsets | staging |
 * a row of x_zp (the padding channels' input) | the tiles of an item. */
static void slice_sizes(const nnq_qconv *c, const dgeom *g, int64_t rb, bool virt, size_t sz[5]) {
    const int64_t ntiles = virt ? virtual_tiles(c, g, rb) : row_tiles(c, rb, tile_rows(c));
    sz[0] = align_up(g->buf);
    sz[1] = align_up(sizeof(int64_t) * (size_t)g->taps);
    sz[2] = virt ? align_up((size_t)(MRV * (ntiles + 1) * TP)) : 0;
    sz[3] = align_up((size_t)c->wd);
    sz[4] = align_up(sizeof(dtile) * (size_t)ntiles);
}

static int64_t gcd(int64_t a, int64_t b) {
    while (b) {
        const int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static void direct_plan(nnq_qconv *c) {
    const int64_t T = c->threads, e = extra_rows(c);
    const dgeom g1 = geometry(c, 1);
    /* Rows per item: the buffer within budget. */
    int64_t rb = (int64_t)(BUF_BUDGET / (size_t)(g1.nq * c->sh * c->sw * g1.pw * 4)) - e;
    if (rb < 1) rb = 1;
    if (rb > c->oh) rb = c->oh;
    int64_t rblocks = (c->oh + rb - 1) / rb, chunks = 1;
    const int64_t R = tile_rows(c);
    if (T > 1 && (c->n * rblocks) % T) {
        /* Items of equal cost, a multiple of T of them: split the rows
         * first (each thread copies only its rows and their halo), down to
         * 64 output pixels an item, then the channels. */
        const int64_t min_rows = (64 + c->ow - 1) / c->ow, most = (c->oh + min_rows - 1) / min_rows;
        const int64_t want = rblocks * (T / gcd(c->n * rblocks, T));
        if (want <= most) rblocks = want;
        if ((c->n * rblocks) % T) {
            chunks = T / gcd(c->n * rblocks, T);
            if (chunks > g1.ob) chunks = g1.ob;
        }
    }
    rb = (c->oh + rblocks - 1) / rblocks;
    if (R > 1) rb = (rb + R - 1) / R * R; /* whole R-row tiles */
    if (rb > c->oh) rb = c->oh;
    rblocks = (c->oh + rb - 1) / rb;
    const dgeom g = geometry(c, rb);
    const bool virt = virtual_tiles(c, &g, rb) < row_tiles(c, rb, R);
    size_t sz[5];
    slice_sizes(c, &g, rb, virt, sz);
    c->thread_bytes = sz[0] + sz[1] + sz[2] + sz[3] + sz[4];
    c->plan[0] = rb;
    c->plan[1] = rblocks;
    c->plan[2] = chunks;
    c->plan[3] = virt ? 0 : R;
}

/* ---- run: the interleaved copy ---- */

/* 32 bytes of 4 channel rows (masked loads: the first n) -> 32 pixel
 * groups of 4 bytes, pixel order: pixels 0-15 in *lo, 16-31 in *hi. The
 * unpacks work within 128-bit lanes; two 128-bit lane shuffles restore the
 * order. */
static inline void interleave32(const uint8_t *s0, const uint8_t *s1, const uint8_t *s2,
                                const uint8_t *s3, int64_t n, __m512i *lo, __m512i *hi) {
    const __mmask32 m = n >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << n) - 1);
    const __m256i v0 = _mm256_maskz_loadu_epi8(m, s0), v1 = _mm256_maskz_loadu_epi8(m, s1);
    const __m256i v2 = _mm256_maskz_loadu_epi8(m, s2), v3 = _mm256_maskz_loadu_epi8(m, s3);
    const __m256i ab0 = _mm256_unpacklo_epi8(v0, v1), ab1 = _mm256_unpackhi_epi8(v0, v1);
    const __m256i ef0 = _mm256_unpacklo_epi8(v2, v3), ef1 = _mm256_unpackhi_epi8(v2, v3);
    /* 128-bit lanes: q0 = pixels 0-3 | 16-19, q1 = 4-7 | 20-23, q2 = 8-11 | 24-27, ... */
    const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(ab0, ef0)),
                                         _mm256_unpackhi_epi16(ab0, ef0), 1);
    const __m512i b = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(ab1, ef1)),
                                         _mm256_unpackhi_epi16(ab1, ef1), 1);
    *lo = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    *hi = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}

/* Groups [at, at + n) of v -> dst. */
static inline void store_groups(uint8_t *dst, __m512i v, int64_t at, int64_t n) {
    uint8_t tmp[64];
    _mm512_storeu_si512((void *)tmp, v);
    memcpy(dst, tmp + 4 * at, (size_t)(4 * n));
}

/* Input rows of output rows [oy0, oy0 + rows) of image x -> buf (layout
 * above). zrow: at least wd bytes of x_zp, the rows of the padding
 * channels. Plain stores (Zen 4's masked stores are slow): a store may run
 * up to 60 bytes past a row's data, into its pad columns (written after),
 * a later row of the same plane (written later) or the plane's GAP. Rows
 * of W < 32 pixels, W dividing 32, stride 1, go 32 / W rows at once (they
 * are consecutive bytes of the input plane). */
static void fill(const nnq_qconv *c, const dgeom *g, const uint8_t *x, int64_t oy0, int64_t rows,
                 const uint8_t *zrow, uint8_t *buf) {
    const int64_t rp = rows + extra_rows(c), H = c->h, W = c->wd, pl = c->pl;
    const int64_t ps = c->sw - 1; /* column phase = col & ps, column in phase = col >> ps */
    const int64_t pwt = g->pw << ps;
    const uint32_t zq = (uint32_t)c->x_zp * 0x01010101u;
    const __m512i zq16 = _mm512_set1_epi32((int32_t)zq);
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t q = 0; q < g->nq; q++) {
        const uint8_t *src[4]; /* channel planes; padding channels read zrow */
        for (int k = 0; k < 4; k++) src[k] = 4 * q + k < c->cg ? x + (4 * q + k) * H * W : NULL;
        for (int64_t pr = 0; pr < c->sh; pr++)
            for (int64_t i = 0; i < rp; i++) {
                const int64_t iy = (oy0 + i) * c->sh + pr - c->pt;
                uint8_t *d0 = buf + q * g->qs + pr * c->sw * g->plane + i * g->pw * 4;
                uint8_t *d1 = d0 + g->plane; /* the odd column phase (stride 2) */
                if (iy < 0 || iy >= H) { /* a padding row: every phase */
                    for (int64_t pc = 0; pc <= ps; pc++)
                        for (int64_t j = 0; j < g->pw; j += 16)
                            _mm512_storeu_si512((void *)((pc ? d1 : d0) + 4 * j), zq16);
                    continue;
                }
                const uint8_t *s0 = src[0] ? src[0] + iy * W : zrow;
                const uint8_t *s1 = src[1] ? src[1] + iy * W : zrow;
                const uint8_t *s2 = src[2] ? src[2] + iy * W : zrow;
                const uint8_t *s3 = src[3] ? src[3] + iy * W : zrow;
                if (!ps && c->sh == 1 && W < 32 && 32 % W == 0 && iy + 32 / W <= H &&
                    i + 32 / W <= rp) { /* 32 / W whole rows, consecutive in the input */
                    __m512i lo, hi;
                    interleave32(s0, s1, s2, s3, 32, &lo, &hi);
                    const int64_t G = 32 / W, rb4 = g->pw * 4;
                    for (int64_t r = 0; r < G; r++) {
                        uint8_t *d = d0 + r * rb4;
                        const __m512i v = r * W < 16 ? lo : hi;
                        const int64_t at = r * W % 16; /* first group of row r in v */
                        if (W == 16) _mm512_storeu_si512((void *)(d + 4 * pl), v);
                        else if (W == 8)
                            _mm256_storeu_si256((__m256i *)(d + 4 * pl),
                                                at ? _mm512_extracti64x4_epi64(v, 1)
                                                   : _mm512_castsi512_si256(v));
                        else store_groups(d + 4 * pl, v, at, W);
                        for (int64_t cc = 0; cc < pl; cc++) memcpy(d + 4 * cc, &zq, 4);
                        for (int64_t cc = pl + W; cc < pwt; cc++) memcpy(d + 4 * cc, &zq, 4);
                    }
                    i += G - 1;
                    continue;
                }
                for (int64_t ix = 0; ix < W; ix += 32) {
                    const int64_t n = W - ix < 32 ? W - ix : 32, col = ix + pl;
                    __m512i lo, hi;
                    interleave32(s0 + ix, s1 + ix, s2 + ix, s3 + ix, n, &lo, &hi);
                    if (!ps) {
                        _mm512_storeu_si512((void *)(d0 + 4 * col), lo);
                        if (n > 16) _mm512_storeu_si512((void *)(d0 + 4 * (col + 16)), hi);
                    } else { /* even pixels to one column phase, odd to the other */
                        uint8_t *de = (col & 1) ? d1 : d0, *dodd = (col & 1) ? d0 : d1;
                        _mm512_storeu_si512((void *)(de + 4 * (col >> 1)),
                                            _mm512_permutex2var_epi32(lo, even, hi));
                        _mm512_storeu_si512((void *)(dodd + 4 * ((col + 1) >> 1)),
                                            _mm512_permutex2var_epi32(lo, odd, hi));
                    }
                }
                for (int64_t cc = 0; cc < pl; cc++) /* pad columns */
                    memcpy(((cc & ps) ? d1 : d0) + 4 * (cc >> ps), &zq, 4);
                for (int64_t cc = pl + W; cc < pwt; cc++)
                    memcpy(((cc & ps) ? d1 : d0) + 4 * (cc >> ps), &zq, 4);
            }
    }
}

/* ---- run: micro-kernels ---- */

/* The 16 pixels of a tile: one zmm load, or R rows of 16 / R pixels, rs
 * bytes apart (inserted 256- or 128-bit loads). */
static inline __attribute__((always_inline)) __m512i load_tile(const uint8_t *p, int64_t rs,
                                                               int R) {
    if (R == 1) return _mm512_loadu_si512((const void *)p);
    if (R == 2)
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                  _mm256_loadu_si256((const __m256i *)(p + rs)), 1);
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + rs)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * rs)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * rs)), 3);
}

#define ACC2(m) __m512i a##m##0 = _mm512_set1_epi32(bias[m]), a##m##1 = a##m##0
#define DP2(m)                                                                                \
    do {                                                                                      \
        const __m512i w = _mm512_set1_epi32(wp[m]);                                           \
        a##m##0 = _mm512_dpbusd_epi32(a##m##0, x0, w);                                        \
        a##m##1 = _mm512_dpbusd_epi32(a##m##1, x1, w);                                        \
    } while (0)
#define OUT2(m) (acc[m][0] = a##m##0, acc[m][1] = a##m##1)

/* MRV channels x two tiles at p0 and p1 (R rows each); acc[m][h]: tile h. */
#define UKERNEL_2(R)                                                                          \
    static __attribute__((noinline)) void ukernel_2_r##R(                                    \
        int64_t nq, int64_t taps, int64_t qs, const int64_t *toff, const uint8_t *p0,        \
        const uint8_t *p1, int64_t rs, const int32_t *wp, const int32_t *bias,               \
        __m512i acc[MRV][2]) {                                                                \
        ACC2(0); ACC2(1); ACC2(2); ACC2(3); ACC2(4); ACC2(5); ACC2(6); ACC2(7);              \
        for (int64_t q = 0; q < nq; q++, p0 += qs, p1 += qs)                                  \
            for (int64_t t = 0; t < taps; t++, wp += MRV) {                                   \
                const __m512i x0 = load_tile(p0 + toff[t], rs, R);                            \
                const __m512i x1 = load_tile(p1 + toff[t], rs, R);                            \
                DP2(0); DP2(1); DP2(2); DP2(3); DP2(4); DP2(5); DP2(6); DP2(7);              \
            }                                                                                 \
        OUT2(0); OUT2(1); OUT2(2); OUT2(3); OUT2(4); OUT2(5); OUT2(6); OUT2(7);              \
    }

#define ACC1(m) __m512i a##m = _mm512_set1_epi32(bias[m])
#define DP1(m) a##m = _mm512_dpbusd_epi32(a##m, x0, _mm512_set1_epi32(wp[m]))
#define OUT1(m) (acc[m][0] = a##m)

/* MRV channels x one tile: the last of an odd count. */
#define UKERNEL_1(R)                                                                          \
    static __attribute__((noinline)) void ukernel_1_r##R(                                    \
        int64_t nq, int64_t taps, int64_t qs, const int64_t *toff, const uint8_t *p0,        \
        int64_t rs, const int32_t *wp, const int32_t *bias, __m512i acc[MRV][2]) {           \
        ACC1(0); ACC1(1); ACC1(2); ACC1(3); ACC1(4); ACC1(5); ACC1(6); ACC1(7);              \
        for (int64_t q = 0; q < nq; q++, p0 += qs)                                            \
            for (int64_t t = 0; t < taps; t++, wp += MRV) {                                   \
                const __m512i x0 = load_tile(p0 + toff[t], rs, R);                            \
                DP1(0); DP1(1); DP1(2); DP1(3); DP1(4); DP1(5); DP1(6); DP1(7);              \
            }                                                                                 \
        OUT1(0); OUT1(1); OUT1(2); OUT1(3); OUT1(4); OUT1(5); OUT1(6); OUT1(7);              \
    }

UKERNEL_2(1)
UKERNEL_2(2)
UKERNEL_2(4)
UKERNEL_1(1)
UKERNEL_1(2)
UKERNEL_1(4)

typedef void (*ukernel2_fn)(int64_t, int64_t, int64_t, const int64_t *, const uint8_t *,
                            const uint8_t *, int64_t, const int32_t *, const int32_t *,
                            __m512i[MRV][2]);
typedef void (*ukernel1_fn)(int64_t, int64_t, int64_t, const int64_t *, const uint8_t *, int64_t,
                            const int32_t *, const int32_t *, __m512i[MRV][2]);

/* ---- run: work items ---- */

typedef struct ditem {
    const nnq_qconv *c;
    dgeom g;
    int64_t R; /* rows per tile; 0: the virtual grid */
    uint8_t *y;
    uint8_t *buf, *stage;
    const int64_t *toff;
    dtile *tl; /* the tiles of the current item */
} ditem;

/* The tiles of a block of `rows` rows -> t->tl; returns their count. */
static int64_t list_tiles(const ditem *t, int64_t oy0, int64_t rows) {
    const nnq_qconv *c = t->c;
    int64_t k = 0;
    if (!t->R) {
        const int64_t n = virtual_tiles(c, &t->g, rows);
        for (; k < n; k++) t->tl[k] = (dtile){.in = k * TP, .npx = TP, .nrows = 1};
        return n;
    }
    const int64_t cw = TP / t->R;
    for (int64_t oy = 0; oy < rows; oy += t->R)
        for (int64_t ox = 0; ox < c->ow; ox += cw, k++)
            t->tl[k] = (dtile){.in = oy * t->g.pw + ox,
                               .out = (oy0 + oy) * c->ow + ox,
                               .npx = (int32_t)(c->ow - ox < cw ? c->ow - ox : cw),
                               .nrows = (int32_t)(rows - oy < t->R ? rows - oy : t->R)};
    return k;
}

/* Row r of an R-row tile's 16 results: TP / R bytes from byte r * TP / R. */
static inline void store_tile(const ditem *t, uint8_t *dst, __m128i v, int64_t npx,
                              int64_t nrows) {
    const int64_t R = t->R, cw = TP / R, ow = t->c->ow;
    if (R == 1) {
        nnq_avx2_store_n(dst, v, npx);
    } else if (cw == ow) { /* whole rows: contiguous in y */
        nnq_avx2_store_n(dst, v, nrows * cw);
    } else {
        uint8_t tmp[2 * TP];
        _mm_storeu_si128((__m128i *)tmp, v);
        for (int64_t r = 0; r < nrows; r++)
            nnq_avx2_store_n(dst + r * ow, _mm_loadu_si128((const __m128i *)(tmp + r * cw)), npx);
    }
}

/* Output rows [oy0, oy0 + rows) of image n, channel blocks [b0, b1). */
static void tiles(const ditem *t, int64_t n, int64_t oy0, int64_t rows, int64_t b0, int64_t b1) {
    const nnq_qconv *c = t->c;
    const dgeom *g = &t->g;
    const int64_t P = c->oh * c->ow;
    const int64_t ntiles = list_tiles(t, oy0, rows);
    const dtile *tl = t->tl;
    const int64_t rs = g->pw * 4;
    const ukernel2_fn uk2 = t->R == 4 ? ukernel_2_r4 : t->R == 2 ? ukernel_2_r2 : ukernel_2_r1;
    const ukernel1_fn uk1 = t->R == 4 ? ukernel_1_r4 : t->R == 2 ? ukernel_1_r2 : ukernel_1_r1;
    const int64_t spitch = (ntiles + 1) * TP; /* staging bytes per channel */
    for (int64_t b = b0; b < b1; b++) {
        const int32_t *wb = (const int32_t *)(c->w + (size_t)b * g->block_bytes);
        const int64_t o0 = b * MRV, valid = c->out_ch - o0 < MRV ? c->out_ch - o0 : MRV;
        nnq_vnni_block8 blk;
        nnq_vnni_block8_init(&blk, c->out, c->bias, o0, valid);
        uint8_t *yb = t->y + (n * c->out_ch + o0) * P;
        for (int64_t k = 0; k < ntiles; k += 2) {
            const int64_t halves = k + 1 < ntiles ? 2 : 1;
            __m512i acc[MRV][2];
            if (halves == 2)
                uk2(g->nq, g->taps, g->qs, t->toff, t->buf + 4 * tl[k].in,
                    t->buf + 4 * tl[k + 1].in, rs, wb, blk.bias, acc);
            else uk1(g->nq, g->taps, g->qs, t->toff, t->buf + 4 * tl[k].in, rs, wb, blk.bias, acc);
            for (int64_t h = 0; h < halves; h++) {
                __m512i u0, u1;
                nnq_vnni_block8_out(&blk, acc, h, &u0, &u1);
                const dtile *tt = &tl[k + h];
                uint8_t *d = yb + tt->out;
                if (t->R && valid == MRV && tt->npx * tt->nrows == TP &&
                    (t->R == 1 || TP / t->R == c->ow)) { /* 16 contiguous bytes per channel */
                    nnq_vnni_store8(d, P, u0, u1);
                    continue;
                }
                __m128i o[MRV];
                nnq_vnni_rows8(u0, u1, o);
                if (!t->R)
                    for (int64_t m = 0; m < valid; m++)
                        _mm_storeu_si128((__m128i *)(t->stage + m * spitch + (k + h) * TP), o[m]);
                else
                    for (int64_t m = 0; m < valid; m++)
                        store_tile(t, d + m * P, o[m], tt->npx, tt->nrows);
            }
        }
        if (!t->R) /* the valid columns of the virtual grid */
            for (int64_t m = 0; m < valid; m++)
                for (int64_t r = 0; r < rows; r++) {
                    const uint8_t *s = t->stage + m * spitch + r * g->pw;
                    uint8_t *d = yb + m * P + (oy0 + r) * c->ow;
                    for (int64_t j = 0; j < c->ow; j += 16)
                        nnq_avx2_store_n(d + j, _mm_loadu_si128((const __m128i *)(s + j)),
                                         c->ow - j);
                }
    }
}

static void direct_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const int64_t rb = c->plan[0], rblocks = c->plan[1], chunks = c->plan[2];
    const int64_t items = c->n * rblocks * chunks, img = c->in_ch * c->h * c->wd;
    const dgeom g = geometry(c, rb);
    size_t sz[5];
    slice_sizes(c, &g, rb, c->plan[3] == 0, sz);
    NNQ_PARALLEL(c->threads, tid, nt, {
        uint8_t *ts = scratch + (size_t)tid * c->thread_bytes;
        int64_t *toff = (int64_t *)(ts + sz[0]);
        ditem t = {.c = c, .g = g, .R = c->plan[3], .y = y, .buf = ts,
                   .stage = ts + sz[0] + sz[1], .toff = toff};
        for (int64_t ky = 0; ky < c->kh; ky++) /* tap -> its plane, row and column */
            for (int64_t kx = 0; kx < c->kw; kx++) {
                const int64_t dy = ky * c->dh, dx = kx * c->dw;
                toff[ky * c->kw + kx] = ((dy % c->sh) * c->sw + dx % c->sw) * g.plane +
                                        (dy / c->sh * g.pw + dx / c->sw) * 4;
            }
        uint8_t *zrow = ts + sz[0] + sz[1] + sz[2];
        t.tl = (dtile *)(zrow + sz[3]);
        memset(ts, c->x_zp, sz[0]); /* the slack: read into discarded lanes */
        memset(zrow, c->x_zp, sz[3]);
        int64_t filled = -1;        /* (image, row block) in the buffer */
        int64_t it_lo, it_hi;
        nnq_static_share(items, tid, nt, &it_lo, &it_hi);
        for (int64_t it = it_lo; it < it_hi; it++) {
            const int64_t ch = it % chunks, blk = it / chunks, rbk = blk % rblocks,
                          n = blk / rblocks;
            const int64_t oy0 = rbk * rb, rows = c->oh - oy0 < rb ? c->oh - oy0 : rb;
            if (blk != filled) fill(c, &g, x + n * img, oy0, rows, zrow, ts);
            filled = blk;
            tiles(&t, n, oy0, rows, ch * g.ob / chunks, (ch + 1) * g.ob / chunks);
        }
    });
}

/* Groups of 1 with a spatial kernel: where the GEMM's panel costs most.
 * Declined where padding the channels to quads would more than double the
 * multiply-adds of the GEMM's K quads (1 input channel). */
static bool direct_fits(const nnq_qconv *c) {
    const int64_t taps = c->kh * c->kw;
    return c->w_bits >= 2 && c->w_bits <= 8 && c->groups == 1 && taps > 1 &&
           (c->sh == 1 || c->sh == 2) && (c->sw == 1 || c->sw == 2) &&
           (c->cg + 3) / 4 * taps <= 2 * ((c->K + 3) / 4);
}

const nnq_qconv_kernel nnq_qconv_vnni_direct = {
    .name = "vnni-direct",
    .isa = NNQ_ISA_VNNI,
    .fits = direct_fits,
    .pack = direct_pack,
    .plan = direct_plan,
    .run = direct_run,
};
