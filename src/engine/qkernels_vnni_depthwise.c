/* AVX-512 VNNI depthwise convolution (groups == in_ch == out_ch), direct,
 * any stride, padding, dilation and weight width. Two paths: small planes
 * in registers (below), else a padded copy computed on a "virtual" grid.
 *
 * Virtual grid. A work item is one channel of a run of images (same
 * weights, same output constants). Their zero-point padded input planes are
 * split into stride phases, by row and by column, image after image:
 *
 *   padded (r, c) of image i -> plane (r % sh, c % sw), byte i * PS + (r / sh) * pw + c / sw
 *
 * with PS = ceil(padded rows / sh) * pw bytes per image in a plane (planes
 * PH bytes apart). Under tap (ky, kx) the input of output pixel (i, oy, ox)
 * is then buf[off[t] + v], v = i * PS + oy * pw + ox, for any stride and
 * dilation: the item is computed 64 consecutive v at a time, across output
 * rows and images (the few junk columns between rows and the rows between
 * images are computed and not copied out), so strided and small planes
 * waste little, and the per-channel setup is paid once per run of images.
 *
 * The taps go in quads: the 4 inputs of a pixel under taps 4j..4j+3 are
 * interleaved into one int32 lane (4 loads, 4 + 4 byte/word unpacks per 64
 * pixels), and vpdpbusd with the quad's 4 weights broadcast adds their 4
 * products exactly (u8 x s8, no saturation; the accumulator range is
 * checked at create). Taps past the last are zero vectors with weight 0.
 * The unpacks work within 128-bit lanes, so accumulator r holds pixels
 * 16l + 4r .. 16l + 4r + 3 in lane l; the signed and unsigned word packs
 * after the requantization (also within lanes) restore pixel order. 3x3 (3
 * quads, the last with one tap) is specialised. Weights are packed at
 * create as quads of taps, [channel][quad] int32. */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_vnni.h"

#define MAX_TAPS 256
#define VEC 64                 /* output pixels per step */
#define SLACK 128              /* bytes read past the padded planes (discarded lanes) */
/* Padded input of a work item: with its outputs it stays in L1 (24 KiB
 * was 1.6x slower at batch 64). */
#define BUF_BUDGET (8 * 1024)

typedef struct vdw_geom {
    int64_t pw;     /* columns per phase row */
    int64_t ps;     /* bytes per image in a phase plane: rows per phase * pw */
    int64_t imgs;   /* images per work item */
    int64_t ph;     /* bytes per phase plane: imgs * ps + 64 (room for a row store) */
    int64_t nv;     /* virtual pixels of a full item */
    size_t buf_bytes;
} vdw_geom;

static size_t align_up(size_t n) { return (n + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN; }

static vdw_geom geometry(const nnq_qconv *c) {
    vdw_geom g;
    g.pw = (c->wd + c->pl + c->pr + c->sw - 1) / c->sw;
    g.ps = (c->h + c->pt + c->pb + c->sh - 1) / c->sh * g.pw;
    g.imgs = BUF_BUDGET / (g.ps * c->sh * c->sw);
    if (g.imgs < 1) g.imgs = 1;
    if (g.imgs > c->n) g.imgs = c->n;
    g.ph = g.imgs * g.ps + 64;
    g.nv = (g.imgs - 1) * g.ps + (c->oh - 1) * g.pw + c->ow;
    g.buf_bytes = align_up((size_t)(g.ph * c->sh * c->sw) + SLACK);
    return g;
}

static bool vdw_fits(const nnq_qconv *c) {
    return c->groups == c->in_ch && c->groups == c->out_ch && c->kh * c->kw <= MAX_TAPS;
}

static bool reg_fits(const nnq_qconv *c);

/* Scratch of one thread: the padded phase planes | the item's outputs on
 * the virtual grid, whole vectors. */
static void vdw_plan(nnq_qconv *c) {
    if (reg_fits(c)) return; /* no scratch */
    const vdw_geom g = geometry(c);
    c->thread_bytes = g.buf_bytes + align_up((size_t)((g.nv + VEC - 1) / VEC * VEC));
}

/* One input row of n bytes into its padded phase row(s) (dst: column
 * phase 0 of the row, column pl already added for stride 1). Per 64 input
 * bytes, a masked load with x_zp in the lanes past the row, then full
 * stores (Zen 4's masked stores are slow): what a store writes past the row
 * lands on padding, which holds x_zp anyway, or on a later row of the same
 * plane, written after (rows and images are filled in increasing order, and
 * each plane has 64 bytes of room after its last row).
 *  - stride 1: one 64-byte store;
 *  - stride 2: even and odd bytes split (an in-lane shuffle and a qword
 *    permute) into 32-byte stores to the two column phases;
 *  - larger strides: byte by byte. */
static inline __attribute__((always_inline)) void fill_row(const nnq_qconv *c,
                                                           const vdw_geom *g, uint8_t *dst,
                                                           const uint8_t *src, __m512i zp) {
    const int64_t n = c->wd;
    if (c->sw == 1) {
        for (int64_t i = 0; i < n; i += 64) {
            const int64_t left = n - i;
            const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (__mmask64)(~0ULL >> (64 - left));
            _mm512_storeu_si512((void *)(dst + i), _mm512_mask_loadu_epi8(zp, m, src + i));
        }
    } else if (c->sw == 2) {
        const __m512i split = _mm512_broadcast_i32x4(
            _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
        const __m512i gather = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
        /* input column ix is padded column ix + pl: even ix to phase pl % 2 */
        uint8_t *ev = dst + (c->pl & 1) * g->ph + (c->pl >> 1);
        uint8_t *od = dst + ((c->pl + 1) & 1) * g->ph + ((c->pl + 1) >> 1);
        for (int64_t i = 0; i < n; i += 64) {
            const int64_t left = n - i;
            const __mmask64 m = left >= 64 ? ~(__mmask64)0 : (__mmask64)(~0ULL >> (64 - left));
            const __m512i v = _mm512_permutexvar_epi64(
                gather, _mm512_shuffle_epi8(_mm512_mask_loadu_epi8(zp, m, src + i), split));
            _mm256_storeu_si256((__m256i *)(ev + i / 2), _mm512_castsi512_si256(v));
            _mm256_storeu_si256((__m256i *)(od + i / 2), _mm512_extracti64x4_epi64(v, 1));
        }
    } else {
        int64_t ph = c->pl % c->sw, q = c->pl / c->sw;
        for (int64_t ix = 0; ix < n; ix++) {
            dst[ph * g->ph + q] = src[ix];
            if (++ph == c->sw) ph = 0, q++;
        }
    }
}

/* n bytes, exactly: two overlapping stores of the largest width that fits. */
static inline void copy_exact(uint8_t *dst, const uint8_t *src, int64_t n) {
    for (; n > 64; n -= 64, dst += 64, src += 64)
        _mm512_storeu_si512((void *)dst, _mm512_loadu_si512((const void *)src));
    if (n >= 32) {
        _mm256_storeu_si256((__m256i *)dst, _mm256_loadu_si256((const __m256i *)src));
        _mm256_storeu_si256((__m256i *)(dst + n - 32),
                            _mm256_loadu_si256((const __m256i *)(src + n - 32)));
    } else if (n >= 16) {
        _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)src));
        _mm_storeu_si128((__m128i *)(dst + n - 16),
                         _mm_loadu_si128((const __m128i *)(src + n - 16)));
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i];
    }
}

#define TAP(t) ((t) < taps ? _mm512_loadu_si512((const void *)(p_ + off[t])) : zero)
#define QUAD(j)                                                                               \
    do {                                                                                      \
        const uint8_t *p_ = buf + v;                                                          \
        const __m512i l0 = TAP(4 * (j)), l1 = TAP(4 * (j) + 1);                               \
        const __m512i l2 = TAP(4 * (j) + 2), l3 = TAP(4 * (j) + 3);                           \
        const __m512i ab0 = _mm512_unpacklo_epi8(l0, l1), ab1 = _mm512_unpackhi_epi8(l0, l1); \
        const __m512i cd0 = _mm512_unpacklo_epi8(l2, l3), cd1 = _mm512_unpackhi_epi8(l2, l3); \
        const __m512i w_ = _mm512_set1_epi32(wq[j]);                                          \
        a0 = _mm512_dpbusd_epi32(a0, _mm512_unpacklo_epi16(ab0, cd0), w_);                    \
        a1 = _mm512_dpbusd_epi32(a1, _mm512_unpackhi_epi16(ab0, cd0), w_);                    \
        a2 = _mm512_dpbusd_epi32(a2, _mm512_unpacklo_epi16(ab1, cd1), w_);                    \
        a3 = _mm512_dpbusd_epi32(a3, _mm512_unpackhi_epi16(ab1, cd1), w_);                    \
    } while (0)

/* Virtual pixels [0, nv) into vbuf. `taps` is a constant where this is
 * inlined for 3x3: the quad loop unrolls and the missing taps fold away. */
static inline __attribute__((always_inline)) void vdw_virtual(int64_t nv, const int64_t *off,
                                                              const uint8_t *buf,
                                                              const int32_t *wq, int64_t taps,
                                                              const nnq_qout *q, int32_t b,
                                                              uint8_t *vbuf) {
    const int64_t nq = (taps + 3) / 4;
    const __m512i zero = _mm512_setzero_si512(), bias = _mm512_set1_epi32(b);
    const __m512i lo = _mm512_set1_epi8((char)q->lo), hi = _mm512_set1_epi8((char)q->hi);
    for (int64_t v = 0; v < nv; v += VEC) {
        __m512i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
        #pragma GCC unroll 4
        for (int64_t j = 0; j < nq; j++) QUAD(j);
        const __m512i w01 = _mm512_packs_epi32(nnq_vnni_requant(a0, q), nnq_vnni_requant(a1, q));
        const __m512i w23 = _mm512_packs_epi32(nnq_vnni_requant(a2, q), nnq_vnni_requant(a3, q));
        const __m512i u = _mm512_packus_epi16(w01, w23);
        _mm512_storeu_si512((void *)(vbuf + v), _mm512_min_epu8(_mm512_max_epu8(u, lo), hi));
    }
}

/* Channel ch of images [i0, i0 + ni). */
static void vdw_item(const nnq_qconv *c, const vdw_geom *g, const int64_t *off,
                     const uint8_t *x, int64_t ch, int64_t i0, int64_t ni, uint8_t *buf,
                     uint8_t *vbuf, uint8_t *y) {
    const int64_t HW = c->h * c->wd, P = c->oh * c->ow, taps = c->kh * c->kw;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp);
    const int64_t col0 = c->sw == 1 ? c->pl : 0; /* stride 1: no column phases */
    const int64_t plane_rows = c->sw * g->ph; /* bytes from one row phase to the next */
    for (int64_t i = 0; i < ni; i++) {
        const uint8_t *src = x + ((i0 + i) * c->in_ch + ch) * HW;
        int64_t rp = c->pt % c->sh, rr = c->pt / c->sh; /* phase and row of padded row pt */
        for (int64_t iy = 0; iy < c->h; iy++, src += c->wd) {
            fill_row(c, g, buf + rp * plane_rows + i * g->ps + rr * g->pw + col0, src, zp);
            if (++rp == c->sh) rp = 0, rr++;
        }
    }
    const int32_t *wq = (const int32_t *)c->w + ch * ((taps + 3) / 4);
    const int64_t nv = (ni - 1) * g->ps + (c->oh - 1) * g->pw + c->ow;
    if (taps == 9) vdw_virtual(nv, off, buf, wq, 9, &c->out[ch], c->bias[ch], vbuf);
    else vdw_virtual(nv, off, buf, wq, taps, &c->out[ch], c->bias[ch], vbuf);
    for (int64_t i = 0; i < ni; i++)
        for (int64_t oy = 0; oy < c->oh; oy++)
            copy_exact(y + ((i0 + i) * c->out_ch + ch) * P + oy * c->ow,
                       vbuf + i * g->ps + oy * g->pw, c->ow);
}

/* ---- small planes in registers ----
 *
 * A stride-1 "same" conv (output size = input size) on planes of 16, 32 or
 * 64 bytes (4x4, 8x8, ...): 64 / plane bytes planes are one zmm, flattened;
 * no padded copy, no copy-out. They are images of one channel when the
 * batch fills the vector (weights and constants broadcast), else
 * consecutive planes of the NCHW tensor, loaded and stored whole, with the
 * weights and output constants of each 128-bit lane's channel. The
 * input of every pixel under tap t is the vector shifted by s_t = dy * w +
 * dx bytes (two dword permutes and two shifts: any byte shift, its count
 * known at run time), with x_zp at the positions whose input lies outside
 * the plane (a mask per tap; a byte shifted in from a neighbouring row or
 * plane always lands on such a position). Then the quads, vpdpbusd and the
 * packs as above. */

typedef struct reg_tap {
    __m512i ia, ib;   /* dword permutes: lanes i + k and i + k + 1 */
    __mmask16 ma, mb; /* the lanes of those in range */
    __m128i cr, cl;   /* bit shifts 8r and 32 - 8r, s = 4k + r */
    __mmask64 valid;  /* positions whose input is inside the plane */
} reg_tap;

static bool reg_fits(const nnq_qconv *c) {
    const int64_t pb = c->h * c->wd;
    return c->sh == 1 && c->sw == 1 && c->oh == c->h && c->ow == c->wd &&
           (pb == 16 || pb == 32 || pb == 64);
}

/* Positions p of the vector (period pb) whose row + dy, resp. column + dx,
 * is inside the plane. */
static __mmask64 rows_inside(const nnq_qconv *c, int64_t dy) {
    const int64_t pb = c->h * c->wd;
    __mmask64 m = 0;
    for (int64_t y = 0; y < c->h; y++)
        if (y + dy >= 0 && y + dy < c->h) m |= (~0ULL >> (64 - c->wd)) << (y * c->wd);
    for (int64_t p = pb; p < 64; p *= 2) m |= m << p;
    return m;
}

static __mmask64 cols_inside(const nnq_qconv *c, int64_t dx) {
    __mmask64 m = 0;
    for (int64_t x = 0; x < c->wd; x++)
        if (x + dx >= 0 && x + dx < c->wd) m |= 1ULL << x;
    for (int64_t p = c->wd; p < 64; p *= 2) m |= m << p;
    return m;
}

static void reg_taps(const nnq_qconv *c, reg_tap *rt) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i fifteen = _mm512_set1_epi32(15);
    for (int64_t ky = 0; ky < c->kh; ky++) {
        const int64_t dy = ky * c->dh - c->pt;
        const __mmask64 rows = rows_inside(c, dy);
        for (int64_t kx = 0; kx < c->kw; kx++) {
            reg_tap *r = &rt[ky * c->kw + kx];
            const int64_t dx = kx * c->dw - c->pl;
            r->valid = rows & cols_inside(c, dx);
            if (!r->valid) continue; /* |s| may exceed 64: never used */
            const int64_t sft = dy * c->wd + dx;
            const int64_t k = sft >= 0 ? sft / 4 : -((-sft + 3) / 4), rb = sft - 4 * k;
            const __m512i a = _mm512_add_epi32(iota, _mm512_set1_epi32((int32_t)k));
            const __m512i b = _mm512_add_epi32(a, _mm512_set1_epi32(1));
            r->ia = _mm512_and_si512(a, fifteen);
            r->ib = _mm512_and_si512(b, fifteen);
            r->ma = _mm512_cmpeq_epi32_mask(a, r->ia); /* in [0, 16) */
            r->mb = _mm512_cmpeq_epi32_mask(b, r->ib);
            r->cr = _mm_cvtsi32_si128((int)(8 * rb));
            r->cl = _mm_cvtsi32_si128((int)(32 - 8 * rb));
        }
    }
}

/* x shifted by the tap (byte p <- byte p + s), x_zp where invalid. */
static inline __m512i reg_shift(__m512i x, const reg_tap *r, __m512i zp) {
    const __m512i a = _mm512_maskz_permutexvar_epi32(r->ma, r->ia, x);
    const __m512i b = _mm512_maskz_permutexvar_epi32(r->mb, r->ib, x);
    const __m512i v = _mm512_or_si512(_mm512_srl_epi32(a, r->cr), _mm512_sll_epi32(b, r->cl));
    return _mm512_mask_mov_epi8(zp, r->valid, v);
}

/* The output constants with each 128-bit lane's channel (nnq_vnni_requant's
 * steps, per lane; the shift per 64-bit lane with vpsrlvq). */
typedef struct reg_rq {
    __m512i acc_lo, acc_hi, mult, rnd, shift, zc, lo, hi;
} reg_rq;

static inline __m512i lanes4(int32_t a, int32_t b, int32_t c, int32_t d) {
    const __m512i k = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_epi32(k, _mm512_castsi128_si512(_mm_setr_epi32(a, b, c, d)));
}

static inline __m512i lanes4_64(int64_t a, int64_t b, int64_t c, int64_t d) {
    const __m512i k = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
    return _mm512_permutexvar_epi64(k, _mm512_castsi256_si512(_mm256_setr_epi64x(a, b, c, d)));
}

static inline __m512i reg_requant(__m512i acc, const reg_rq *r) {
    acc = _mm512_min_epi32(_mm512_max_epi32(acc, r->acc_lo), r->acc_hi);
    __m512i ev = _mm512_add_epi64(_mm512_mul_epi32(acc, r->mult), r->rnd);
    __m512i od = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), r->mult), r->rnd);
    ev = _mm512_srlv_epi64(ev, r->shift);
    od = _mm512_srlv_epi64(od, r->shift);
    return _mm512_add_epi32(_mm512_mask_shuffle_epi32(ev, 0xAAAA, od, (_MM_PERM_ENUM)0xA0), r->zc);
}

#define RTAP(t) ((t) < taps && rt[t].valid ? reg_shift(x, &rt[t], zp) : zp)
#define RQUAD(j)                                                                              \
    do {                                                                                      \
        const __m512i l0 = RTAP(4 * (j)), l1 = RTAP(4 * (j) + 1);                             \
        const __m512i l2 = RTAP(4 * (j) + 2), l3 = RTAP(4 * (j) + 3);                         \
        const __m512i ab0 = _mm512_unpacklo_epi8(l0, l1), ab1 = _mm512_unpackhi_epi8(l0, l1); \
        const __m512i cd0 = _mm512_unpacklo_epi8(l2, l3), cd1 = _mm512_unpackhi_epi8(l2, l3); \
        const __m512i w_ = lanes4(wq[0][j], wq[1][j], wq[2][j], wq[3][j]);                    \
        a0 = _mm512_dpbusd_epi32(a0, _mm512_unpacklo_epi16(ab0, cd0), w_);                    \
        a1 = _mm512_dpbusd_epi32(a1, _mm512_unpackhi_epi16(ab0, cd0), w_);                    \
        a2 = _mm512_dpbusd_epi32(a2, _mm512_unpacklo_epi16(ab1, cd1), w_);                    \
        a3 = _mm512_dpbusd_epi32(a3, _mm512_unpackhi_epi16(ab1, cd1), w_);                    \
    } while (0)

#define UQUAD(j)                                                                              \
    do {                                                                                      \
        const __m512i l0 = RTAP(4 * (j)), l1 = RTAP(4 * (j) + 1);                             \
        const __m512i l2 = RTAP(4 * (j) + 2), l3 = RTAP(4 * (j) + 3);                         \
        const __m512i ab0 = _mm512_unpacklo_epi8(l0, l1), ab1 = _mm512_unpackhi_epi8(l0, l1); \
        const __m512i cd0 = _mm512_unpacklo_epi8(l2, l3), cd1 = _mm512_unpackhi_epi8(l2, l3); \
        const __m512i w_ = _mm512_set1_epi32(wq[0][j]);                                       \
        a0 = _mm512_dpbusd_epi32(a0, _mm512_unpacklo_epi16(ab0, cd0), w_);                    \
        a1 = _mm512_dpbusd_epi32(a1, _mm512_unpackhi_epi16(ab0, cd0), w_);                    \
        a2 = _mm512_dpbusd_epi32(a2, _mm512_unpacklo_epi16(ab1, cd1), w_);                    \
        a3 = _mm512_dpbusd_epi32(a3, _mm512_unpackhi_epi16(ab1, cd1), w_);                    \
    } while (0)

/* One vector of up to 64 / plane bytes planes: with `uniform`, images
 * [i0, i0 + np) of channel ch (broadcast weights and constants); else the
 * consecutive planes [p0, p0 + np) of the tensor (channel per lane; p0 =
 * i0 * out_ch + ch). Lanes past np compute x_zp, not stored. Taps past the
 * last have weight 0. `taps` and `uniform` are constants where this is
 * inlined. */
static inline __attribute__((always_inline)) void reg_item(const nnq_qconv *c,
                                                           const reg_tap *rt, int64_t taps,
                                                           bool uniform, const uint8_t *src,
                                                           int64_t i0, int64_t ch, int64_t np,
                                                           uint8_t *y) {
    const int64_t pb = c->h * c->wd, nq = (taps + 3) / 4, per = 64 / pb;
    const int64_t p0 = i0 * c->out_ch + ch, gap = uniform ? c->out_ch * pb : pb;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp);
    __m512i x = zp;
    if (np == per && (per == 1 || !uniform)) {
        x = _mm512_loadu_si512((const void *)(src + p0 * pb));
    } else { /* plane l to bytes [l pb, (l + 1) pb): masked loads */
        for (int64_t l = 0; l < np; l++)
            x = _mm512_mask_loadu_epi8(x, (~0ULL >> (64 - pb)) << (l * pb),
                                       src + p0 * pb + l * gap - l * pb);
    }
    const int32_t *wq[4];
    const nnq_qout *q[4];
    __m512i a0;
    if (uniform) {
        wq[0] = (const int32_t *)c->w + ch * nq;
        q[0] = &c->out[ch];
        a0 = _mm512_set1_epi32(c->bias[ch]);
    } else {
        int32_t bias[4];
        for (int l = 0; l < 4; l++) { /* the channel of each 128-bit lane */
            const int64_t pl = p0 + (l * 16 / pb < np ? l * 16 / pb : 0), o = pl % c->out_ch;
            wq[l] = (const int32_t *)c->w + o * nq;
            q[l] = &c->out[o];
            bias[l] = c->bias[o];
        }
        a0 = lanes4(bias[0], bias[1], bias[2], bias[3]);
    }
    __m512i a1 = a0, a2 = a0, a3 = a0, u;
    if (uniform) {
        #pragma GCC unroll 4
        for (int64_t j = 0; j < nq; j++) UQUAD(j);
        const __m512i w01 =
            _mm512_packs_epi32(nnq_vnni_requant(a0, q[0]), nnq_vnni_requant(a1, q[0]));
        const __m512i w23 =
            _mm512_packs_epi32(nnq_vnni_requant(a2, q[0]), nnq_vnni_requant(a3, q[0]));
        u = _mm512_min_epu8(_mm512_max_epu8(_mm512_packus_epi16(w01, w23),
                                            _mm512_set1_epi8((char)q[0]->lo)),
                            _mm512_set1_epi8((char)q[0]->hi));
    } else {
        #pragma GCC unroll 4
        for (int64_t j = 0; j < nq; j++) RQUAD(j);
        reg_rq r;
        r.acc_lo = lanes4(q[0]->acc_lo, q[1]->acc_lo, q[2]->acc_lo, q[3]->acc_lo);
        r.acc_hi = lanes4(q[0]->acc_hi, q[1]->acc_hi, q[2]->acc_hi, q[3]->acc_hi);
        r.mult = lanes4(q[0]->mult, q[1]->mult, q[2]->mult, q[3]->mult);
        r.zc = lanes4(q[0]->zc, q[1]->zc, q[2]->zc, q[3]->zc);
        r.rnd = lanes4_64(q[0]->rnd, q[1]->rnd, q[2]->rnd, q[3]->rnd);
        r.shift = lanes4_64(q[0]->shift, q[1]->shift, q[2]->shift, q[3]->shift);
        r.lo = nnq_vnni_bytes4(q[0]->lo, q[1]->lo, q[2]->lo, q[3]->lo);
        r.hi = nnq_vnni_bytes4(q[0]->hi, q[1]->hi, q[2]->hi, q[3]->hi);
        const __m512i w01 = _mm512_packs_epi32(reg_requant(a0, &r), reg_requant(a1, &r));
        const __m512i w23 = _mm512_packs_epi32(reg_requant(a2, &r), reg_requant(a3, &r));
        u = _mm512_min_epu8(_mm512_max_epu8(_mm512_packus_epi16(w01, w23), r.lo), r.hi);
    }
    uint8_t *dst = y + p0 * pb;
    if (np == per && (per == 1 || !uniform)) {
        _mm512_storeu_si512((void *)dst, u);
    } else if (!uniform) { /* the tensor's last planes */
        _mm512_mask_storeu_epi8(dst, ~0ULL >> (64 - np * pb), u);
    } else { /* one store per plane: pb = 16 or 32 */
        for (int64_t l = 0; l < np; l++) {
            if (pb == 16)
                _mm_storeu_si128((__m128i *)(dst + l * gap), _mm512_castsi512_si128(u));
            else _mm256_storeu_si256((__m256i *)(dst + l * gap), _mm512_castsi512_si256(u));
            u = pb == 16 ? _mm512_alignr_epi32(u, u, 4) : _mm512_alignr_epi32(u, u, 8);
        }
    }
}

/* Several images per vector when the batch fills it (same weights and
 * constants in every lane), else consecutive planes (batch 1). */
static void reg_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y) {
    reg_tap rt[MAX_TAPS];
    reg_taps(c, rt);
    const int64_t taps = c->kh * c->kw, per = 64 / (c->h * c->wd);
    const bool uniform = per == 1 || c->n >= per;
    const int64_t runs = (c->n + per - 1) / per, planes = c->n * c->out_ch;
    const int64_t items = uniform ? c->out_ch * runs : (planes + per - 1) / per;
    NNQ_PARALLEL_FOR(c->threads, it, items, {
        if (uniform) {
            const int64_t ch = it / runs, i0 = it % runs * per;
            const int64_t np = c->n - i0 < per ? c->n - i0 : per;
            if (taps == 9) reg_item(c, rt, 9, true, x, i0, ch, np, y);
            else reg_item(c, rt, taps, true, x, i0, ch, np, y);
        } else {
            const int64_t p0 = it * per, np = planes - p0 < per ? planes - p0 : per;
            if (taps == 9) reg_item(c, rt, 9, false, x, p0 / c->out_ch, p0 % c->out_ch, np, y);
            else reg_item(c, rt, taps, false, x, p0 / c->out_ch, p0 % c->out_ch, np, y);
        }
    });
}

/* The register path for vnni-depthwise-direct (qkernels_vnni.h), which
 * keeps these weights as its own first part. */
bool nnq_vnni_dw_regs_fit(const nnq_qconv *c) { return reg_fits(c); }

void nnq_vnni_dw_regs_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y) { reg_run(c, x, y); }

/* ---- create: weights as quads of taps, [channel][quad] int32 (4 int8),
 * zeros past the last tap ---- */

static nnq_status vdw_pack(nnq_qconv *c, const int8_t *w) {
    const int64_t taps = c->kh * c->kw, nq = (taps + 3) / 4;
    c->w_bytes = (size_t)(c->out_ch * nq) * 4;
    c->w = nnq_qalloc(c->w_bytes);
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    for (int64_t o = 0; o < c->out_ch; o++)
        memcpy(c->w + (size_t)(o * nq) * 4, w + o * taps, (size_t)taps);
    return NNQ_OK;
}

static void vdw_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    if (reg_fits(c)) {
        reg_run(c, x, y);
        return;
    }
    const vdw_geom g = geometry(c);
    int64_t off[MAX_TAPS];
    for (int64_t ky = 0; ky < c->kh; ky++)
        for (int64_t kx = 0; kx < c->kw; kx++) {
            const int64_t cy = ky * c->dh, cx = kx * c->dw;
            off[ky * c->kw + kx] =
                (cy % c->sh * c->sw + cx % c->sw) * g.ph + cy / c->sh * g.pw + cx / c->sw;
        }
    const int64_t runs = (c->n + g.imgs - 1) / g.imgs, items = c->out_ch * runs;
    NNQ_PARALLEL(c->threads, tid, nt, {
        uint8_t *buf = scratch + (size_t)tid * c->thread_bytes;
        memset(buf, c->x_zp, g.buf_bytes); /* borders; data rewritten per item */
        int64_t it_lo, it_hi;
        nnq_static_share(items, tid, nt, &it_lo, &it_hi);
        for (int64_t it = it_lo; it < it_hi; it++) {
            const int64_t ch = it / runs, i0 = it % runs * g.imgs;
            const int64_t ni = c->n - i0 < g.imgs ? c->n - i0 : g.imgs;
            vdw_item(c, &g, off, x, ch, i0, ni, buf, buf + g.buf_bytes, y);
        }
    });
}

const nnq_qconv_kernel nnq_qconv_vnni_depthwise = {
    .name = "vnni-depthwise",
    .isa = NNQ_ISA_VNNI,
    .fits = vdw_fits,
    .pack = vdw_pack,
    .plan = vdw_plan,
    .run = vdw_run,
};
