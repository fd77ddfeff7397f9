/* AVX-512 VNNI + VBMI depthwise convolution (groups == in_ch == out_ch),
 * kernels up to 4 columns wide, any stride, padding, dilation and weight
 * width, read straight from the NCHW input: no padded copy, no stride-phase
 * copy, no copy-out.
 *
 * Kernel rows. Under kernel row ky the inputs of an output pixel at taps
 * (ky, 0..3) are 4 bytes of one input row (one dword at stride 1): once
 * they sit in the pixel's int32 lane, one vpdpbusd with the row's 4
 * weights broadcast (zero past kw) adds their products (exact: u8 x s8
 * quads, as in qkernels_vnni_depthwise.c). A 3x3 kernel is 3 vpdpbusd per
 * 16 pixels. Padding is x_zp: brought in by load masks (rows and columns
 * outside the plane) or by the permute's second source (columns).
 *
 * Paths, by shape (dd_run):
 *  - flat (stride 1, output = input size, rows dividing 64: 16x16, 32x32,
 *    8x8): no permute at all. 64 pixels of the plane per step, 4 loads per
 *    kernel row at byte offsets 0..3 (lane k of load rr holds pixel 4k +
 *    rr's dword), x_zp merged in by the load's mask; one in-lane shuffle
 *    restores the pixel order after the packs; one 64-byte store.
 *  - units (the rest): 16 output pixels of one plane, R whole output rows
 *    of up to 16 pixels (8x8, 4x4 outputs: R = 2, 4) or 16 columns of one
 *    row. Under one kernel row the unit's inputs lie in one window of at
 *    most 64 bytes: one load, one vpermt2b (VBMI) gathers each pixel's 4
 *    bytes into its lane, x_zp (second source) for the columns outside the
 *    plane. The indices depend only on the column chunk (one table each,
 *    built per run). Rows outside the plane are outside its bytes [0, H W):
 *    masked loads, with masks precomputed per unit and kernel row, near the
 *    top and bottom. The last row block and column chunk are moved back to
 *    end at the plane's edge (they store some bytes twice, the same), so
 *    every unit has R * cw valid lanes, stored contiguously. 4 units per
 *    group (across images), requantized together; when a plane is a
 *    multiple of 4 whole-row units (stride 2: 32x32 -> 16x16, 16x16 -> 8x8)
 *    a leaner loop without per-unit bookkeeping (dd_whole_item). With fewer
 *    than 4 units per channel (batch 1, 4x4 outputs) the group takes 4
 *    channels, each accumulator with its own constants; 4x4 and 4x8 planes
 *    at stride 1 there go to vnni-depthwise's register path instead.
 *
 * The requantization is nnq_vnni_requant's, with a shorter form for the
 * usual shift >= 32 (dd_requant). */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_vnni.h"

#define MAX_KW 4
#define MAX_TAPS 256
#define WIN 64 /* bytes of one load: a unit's window under one kernel row */
#define FLAT_MASKED 64 /* dd_flat: masks precomputed for planes of up to 64 steps */

static bool dd_fits(const nnq_qconv *c) {
    return c->groups == c->in_ch && c->groups == c->out_ch && c->kw <= MAX_KW &&
           c->kh * c->kw <= MAX_TAPS && (c->kw - 1) * c->dw < WIN &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2");
}

/* Everything below may use VBMI: fits() above has checked the CPU. */
#pragma GCC push_options
#pragma GCC target("avx512vbmi,bmi2")

typedef struct dd_geom {
    int64_t cw;    /* output columns per unit */
    int64_t rows;  /* output rows per unit (> 1 only when cw is the whole row) */
    int64_t lanes; /* rows * cw, <= 16 */
    int64_t nrb, nch; /* row blocks and column chunks per plane */
    int64_t imgs, runs; /* work item: one channel of a run of imgs images */
} dd_geom;

/* One unit of a plane: its window under kernel row 0 (bytes from the
 * plane's start, may be < 0), its first output pixel, its permute table,
 * and whether every kernel row's load lies inside the plane (plain loads). */
typedef struct dd_unit {
    int64_t off, out; /* a plane may exceed 2 GiB */
    int32_t tab, inside;
} dd_unit;

static bool dd_flat(const nnq_qconv *c);

static size_t align_up(size_t n) { return (n + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN; }

static dd_geom geometry(const nnq_qconv *c) {
    dd_geom g;
    const int64_t span = (c->kw - 1) * c->dw; /* < WIN: fits() */
    const int64_t maxc = (WIN - 1 - span) / c->sw + 1;
    g.cw = c->ow < 16 ? c->ow : 16;
    if (g.cw > maxc) g.cw = maxc;
    g.rows = 1;
    if (g.cw == c->ow) {
        g.rows = 16 / c->ow < c->oh ? 16 / c->ow : c->oh;
        while (g.rows > 1 && (g.rows - 1) * c->sh * c->wd + (c->ow - 1) * c->sw + span >= WIN)
            g.rows--;
    }
    g.lanes = g.rows * g.cw;
    g.nrb = (c->oh + g.rows - 1) / g.rows;
    g.nch = (c->ow + g.cw - 1) / g.cw;
    /* Enough items for the threads; else one per channel. */
    int64_t runs = 1, want = 4 * (int64_t)c->threads;
    if (c->out_ch < want) runs = (want + c->out_ch - 1) / c->out_ch;
    if (runs > c->n) runs = c->n;
    g.imgs = (c->n + runs - 1) / runs;
    g.runs = (c->n + g.imgs - 1) / g.imgs;
    return g;
}

/* Scratch (slice 0 only, shared read-only by the threads): the permute
 * tables, 64 bytes per column chunk, the units of a plane, and the load
 * masks of each unit's kernel rows (dd_range; used where not inside). Or,
 * for dd_flat planes of at most FLAT_MASKED steps, the masks of their
 * loads (column and plane range). */
static void dd_plan(nnq_qconv *c) {
    const dd_geom g = geometry(c);
    const size_t nu = (size_t)(g.nrb * g.nch);
    c->thread_bytes = align_up((size_t)g.nch * WIN) + align_up(sizeof(dd_unit) * nu) +
                      align_up(sizeof(uint64_t) * nu * (size_t)c->kh);
    const int64_t nvec = c->h * c->wd / 64;
    if (dd_flat(c) && nvec <= FLAT_MASKED) {
        const size_t fm = align_up(sizeof(uint64_t) * (size_t)(nvec * c->kh * 4));
        if (fm > c->thread_bytes) c->thread_bytes = fm;
    }
}

/* ox0: the chunk's first output column (the window starts at its input
 * column ox0 * sw - pl, on the unit's first row). Lane k, byte j: output
 * row k / cw, column ox0 + k % cw, tap column j; index 64 (x_zp) where
 * that input column is outside the plane, past kw, or past the lanes. */
static void dd_table(const nnq_qconv *c, const dd_geom *g, int64_t ox0, uint8_t *tab) {
    for (int64_t k = 0; k < 16; k++)
        for (int64_t j = 0; j < 4; j++) {
            uint8_t v = 64;
            if (k < g->lanes && j < c->kw) {
                const int64_t r = k / g->cw, cx = k % g->cw;
                const int64_t col = (ox0 + cx) * c->sw + j * c->dw - c->pl;
                if (col >= 0 && col < c->wd)
                    v = (uint8_t)(r * c->sh * c->wd + cx * c->sw + j * c->dw);
            }
            tab[4 * k + j] = v;
        }
}

/* The bytes [off, off + 64) of a plane of hw bytes that lie inside it, as
 * a load mask: bits [max(0, -off), min(64, hw - off)), branch-free (bzhi
 * leaves all 64 bits for an index >= 64). */
static inline __mmask64 dd_range(int64_t off, int64_t hw) {
    const int64_t lo = off < 0 ? -off : 0, hi = hw - off;
    const uint64_t below = _bzhi_u64(~0ULL, (unsigned)(lo < WIN ? lo : WIN));
    return _bzhi_u64(~0ULL, (unsigned)(hi < 0 ? 0 : hi < WIN ? hi : WIN)) & ~below;
}

/* nnq_vnni_requant on 16 lanes of channel q, with the choice made once
 * per channel (dd_fast) and passed down as a constant: hi32 (shift >= 32,
 * qkernels_vnni.h) needs no clamp of acc. */
static inline __attribute__((always_inline)) __m512i dd_requant(__m512i acc, const nnq_qout *q,
                                                                bool hi32) {
    return hi32 ? nnq_vnni_requant_hi32(acc, q) : nnq_vnni_requant_clamped(acc, q);
}

/* The packed weights (dd_pack): the tap quads of the register path, then
 * the kernel-row quads, then the per-channel flags. */
static inline size_t dd_rows_at(const nnq_qconv *c) {
    return (size_t)(c->out_ch * ((c->kh * c->kw + 3) / 4)) * 4;
}
static inline const int32_t *dd_rows(const nnq_qconv *c) {
    return (const int32_t *)(c->w + dd_rows_at(c));
}

/* Channel ch's shift is >= 32: the fast requantization (no clamp of acc, hi32). */
static inline bool dd_fast(const nnq_qconv *c, int64_t ch) {
    return c->w[dd_rows_at(c) + (size_t)(c->out_ch * c->kh) * 4 + (size_t)ch] != 0;
}

/* n (1..4) units starting at unit uu of image img into out[]: the kernel
 * rows, the requantization, the stores. n and kh are constants where
 * inlined. */
static inline __attribute__((always_inline)) void dd_group(
    const nnq_qconv *c, const dd_unit *units, int64_t nu, const uint8_t *tabs,
    const uint64_t *masks, const uint8_t *x, uint8_t *y, int64_t ch, int64_t img, int64_t uu,
    int n, int64_t kh, const __m512i *wv, const nnq_qout *r, __m512i bias, bool full16,
    __mmask16 keep, bool hi32) {
    const int64_t hw = c->h * c->wd, P = c->oh * c->ow, row = c->dh * c->wd;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp);
    const dd_unit *un[4];
    const uint8_t *in[4];
    uint8_t *out[4];
    __m512i a[4], idx[4];
    bool inside = true;
    #pragma GCC unroll 4
    for (int t = 0; t < n; t++) {
        un[t] = &units[uu];
        in[t] = x + (img * c->in_ch + ch) * hw;
        out[t] = y + (img * c->out_ch + ch) * P + un[t]->out;
        idx[t] = _mm512_loadu_si512((const void *)(tabs + un[t]->tab));
        inside &= un[t]->inside != 0;
        a[t] = bias;
        if (++uu == nu) uu = 0, img++;
    }
    #pragma GCC unroll 8
    for (int64_t ky = 0; ky < kh; ky++) {
        #pragma GCC unroll 4
        for (int t = 0; t < n; t++) {
            const int64_t o = un[t]->off + ky * row;
            const __m512i v =
                inside ? _mm512_loadu_si512((const void *)(in[t] + o))
                       : _mm512_mask_loadu_epi8(zp, masks[(un[t] - units) * kh + ky],
                                                (const void *)((uintptr_t)in[t] + (uintptr_t)o));
            a[t] = _mm512_dpbusd_epi32(a[t], _mm512_permutex2var_epi8(v, idx[t], zp), wv[ky]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < 4; t++) a[t] = t < n ? dd_requant(a[t], r, hi32) : a[0];
    const __m512i t4 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i w01 = _mm512_packs_epi32(a[0], a[1]), w23 = _mm512_packs_epi32(a[2], a[3]);
    __m512i b = _mm512_permutexvar_epi32(t4, _mm512_packus_epi16(w01, w23));
    b = _mm512_min_epu8(_mm512_max_epu8(b, _mm512_set1_epi8((char)r->lo)),
                        _mm512_set1_epi8((char)r->hi));
    if (n == 4 && full16 && out[1] == out[0] + 16 && out[2] == out[0] + 32 &&
        out[3] == out[0] + 48) { /* 64 consecutive outputs (rows of 16, 8, 4) */
        _mm512_storeu_si512((void *)out[0], b);
        return;
    }
    const __m128i s[4] = {_mm512_castsi512_si128(b), _mm512_extracti32x4_epi32(b, 1),
                          _mm512_extracti32x4_epi32(b, 2), _mm512_extracti32x4_epi32(b, 3)};
    #pragma GCC unroll 4
    for (int t = 0; t < n; t++) {
        if (full16) _mm_storeu_si128((__m128i *)out[t], s[t]);
        else _mm_mask_storeu_epi8(out[t], keep, s[t]);
    }
}

/* Channel ch of images [i0, i0 + ni): the units of its planes (units[0,
 * nu) each) in groups of 4, across images. kh and hi32 are
 * constants where inlined. */
static inline __attribute__((always_inline)) void dd_item(
    const nnq_qconv *c, const dd_geom *g, const dd_unit *units, int64_t nu, const uint8_t *tabs,
    const uint64_t *masks, const uint8_t *x, uint8_t *y, int64_t ch, int64_t i0, int64_t ni,
    int64_t kh, const nnq_qout *r, bool hi32) {
    const int32_t *wr = dd_rows(c) + ch * c->kh;
    const __m512i bias = _mm512_set1_epi32(c->bias[ch]);
    __m512i wv[MAX_TAPS];
    for (int64_t ky = 0; ky < kh; ky++) wv[ky] = _mm512_set1_epi32(wr[ky]);
    const bool full16 = g->lanes == 16;
    const __mmask16 keep = (__mmask16)((1u << g->lanes) - 1);
    const int64_t total = ni * nu;
    int64_t img = i0, uu = 0, qi = 0; /* the next unit */
#define DD_GROUP(n)                                                                           \
    dd_group(c, units, nu, tabs, masks, x, y, ch, img, uu, n, kh, wv, r, bias, full16, keep,    \
             hi32)
    for (; qi + 4 <= total; qi += 4) {
        DD_GROUP(4);
        uu += 4;
        while (uu >= nu) uu -= nu, img++;
    }
    const int left = (int)(total - qi);
    if (left == 3) DD_GROUP(3);
    else if (left == 2) DD_GROUP(2);
    else if (left == 1) DD_GROUP(1);
#undef DD_GROUP
}

/* ---- stride 1, "same" size, rows dividing 64 (16x16, 32x32, 64x64):
 * no permute. The output plane is the input plane's grid, 64 pixels per
 * step. Under kernel row ky the dword at input byte v + (ky dh - pt) W - pl
 * holds the inputs of pixel v at taps (ky, 0..3); a load at v0 + rr + that
 * offset gives pixels v0 + rr + 4k in lane k, so 4 loads (rr = 0..3) cover
 * the 64 pixels, with x_zp merged in by the load's mask where the column
 * (the same for every step: W divides 64) or the row is outside the plane.
 * Accumulator rr holds pixels 4k + rr; after the packs, one in-lane byte
 * shuffle restores their order, and one store writes them. ---- */

static bool dd_flat(const nnq_qconv *c) {
    const int64_t hw = c->h * c->wd;
    return c->sh == 1 && c->sw == 1 && c->dw == 1 && c->oh == c->h && c->ow == c->wd &&
           64 % c->wd == 0 && hw % 64 == 0;
}

/* Byte 4k + j of the load for accumulator rr: tap column j of pixel column
 * (rr + 4k) mod W inside the row (and j < kw). */
static __mmask64 dd_colmask(const nnq_qconv *c, int64_t rr) {
    __mmask64 m = 0;
    for (int64_t k = 0; k < 16; k++)
        for (int64_t j = 0; j < c->kw; j++) {
            const int64_t col = (rr + 4 * k) % c->wd + j - c->pl;
            if (col >= 0 && col < c->wd) m |= 1ULL << (4 * k + j);
        }
    return m;
}

static inline __attribute__((always_inline)) void dd_flat_item(
    const nnq_qconv *c, const __mmask64 *cm, const uint8_t *x, uint8_t *y, int64_t ch,
    int64_t i0, int64_t ni, int64_t kh, const nnq_qout *r, bool hi32, bool mid,
    const uint64_t *fm) {
    const int64_t hw = c->h * c->wd;
    const int32_t *wr = dd_rows(c) + ch * c->kh;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp), bias = _mm512_set1_epi32(c->bias[ch]);
    __m512i wv[MAX_TAPS];
    int64_t offs[MAX_TAPS];
    for (int64_t ky = 0; ky < kh; ky++) {
        wv[ky] = _mm512_set1_epi32(wr[ky]);
        offs[ky] = (ky * c->dh - c->pt) * c->wd - c->pl;
    }
    const __m512i order = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    for (int64_t i = i0; i < i0 + ni; i++) {
        const uint8_t *in = x + (i * c->in_ch + ch) * hw;
        uint8_t *out = y + (i * c->out_ch + ch) * hw;
        for (int64_t v0 = 0; v0 < hw; v0 += 64) {
            __m512i a[4] = {bias, bias, bias, bias};
            /* every load inside the plane: the column masks alone */
            if (v0 + offs[0] >= 0 && v0 + offs[kh - 1] + 3 <= hw - WIN) {
                #pragma GCC unroll 8
                for (int64_t ky = 0; ky < kh; ky++) {
                    const uint8_t *p = in + v0 + offs[ky];
                    #pragma GCC unroll 4
                    for (int t = 0; t < 4; t++) {
                        const __m512i v = mid && (t == 1 || t == 2)
                                              ? _mm512_loadu_si512((const void *)(p + t))
                                              : _mm512_mask_loadu_epi8(zp, cm[t], p + t);
                        a[t] = _mm512_dpbusd_epi32(a[t], v, wv[ky]);
                    }
                }
            } else {
                #pragma GCC unroll 8
                for (int64_t ky = 0; ky < kh; ky++) {
                    #pragma GCC unroll 4
                    for (int t = 0; t < 4; t++) {
                        const int64_t o = v0 + t + offs[ky];
                        const __mmask64 m =
                            fm ? fm[((v0 >> 6) * kh + ky) * 4 + t] : cm[t] & dd_range(o, hw);
                        const __m512i v = _mm512_mask_loadu_epi8(
                            zp, m, (const void *)((uintptr_t)in + (uintptr_t)o));
                        a[t] = _mm512_dpbusd_epi32(a[t], v, wv[ky]);
                    }
                }
            }
            const __m512i w01 = _mm512_packs_epi32(dd_requant(a[0], r, hi32),
                                                   dd_requant(a[1], r, hi32));
            const __m512i w23 = _mm512_packs_epi32(dd_requant(a[2], r, hi32),
                                                   dd_requant(a[3], r, hi32));
            __m512i b = _mm512_shuffle_epi8(_mm512_packus_epi16(w01, w23), order);
            b = _mm512_min_epu8(_mm512_max_epu8(b, _mm512_set1_epi8((char)r->lo)),
                                _mm512_set1_epi8((char)r->hi));
            _mm512_storeu_si512((void *)(out + v0), b);
        }
    }
}

/* ---- whole rows, 4 units (64 outputs) per step: units of 16 lanes,
 * one column chunk, no moved-back row block and a multiple of 4 units per
 * plane (32x32 -> 16x16 and 16x16 -> 8x8 at stride 2). Unit u's window
 * starts u * rows * sh * W bytes after unit 0's, its 16 outputs at 16 u,
 * and every unit uses the one permute table: no per-unit bookkeeping. ---- */

static bool dd_whole(const nnq_qconv *c, const dd_geom *g) {
    return g->lanes == 16 && g->nch == 1 && c->oh % g->rows == 0 && g->nrb % 4 == 0;
}

static inline __attribute__((always_inline)) void dd_whole_item(
    const nnq_qconv *c, const dd_geom *g, const uint8_t *tab, const uint64_t *masks,
    const uint8_t *x, uint8_t *y, int64_t ch, int64_t i0, int64_t ni, int64_t kh,
    const nnq_qout *r, bool hi32) {
    const int64_t hw = c->h * c->wd, P = c->oh * c->ow, row = c->dh * c->wd;
    const int64_t step = g->rows * c->sh * c->wd, first = -c->pt * c->wd - c->pl;
    const int64_t span = 3 * step + (kh - 1) * row; /* last window of a group, from its first */
    const int32_t *wr = dd_rows(c) + ch * c->kh;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp), bias = _mm512_set1_epi32(c->bias[ch]);
    const __m512i idx = _mm512_loadu_si512((const void *)tab);
    const __m512i t4 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i wv[MAX_TAPS];
    for (int64_t ky = 0; ky < kh; ky++) wv[ky] = _mm512_set1_epi32(wr[ky]);
    for (int64_t i = i0; i < i0 + ni; i++) {
        const uint8_t *in = x + (i * c->in_ch + ch) * hw;
        uint8_t *out = y + (i * c->out_ch + ch) * P;
        for (int64_t u = 0; u < g->nrb; u += 4) {
            const int64_t off = first + u * step;
            __m512i a[4] = {bias, bias, bias, bias};
            if (off >= 0 && off + span <= hw - WIN) {
                #pragma GCC unroll 8
                for (int64_t ky = 0; ky < kh; ky++) {
                    #pragma GCC unroll 4
                    for (int t = 0; t < 4; t++) {
                        const __m512i v =
                            _mm512_loadu_si512((const void *)(in + off + t * step + ky * row));
                        a[t] = _mm512_dpbusd_epi32(a[t], _mm512_permutex2var_epi8(v, idx, zp),
                                                   wv[ky]);
                    }
                }
            } else {
                #pragma GCC unroll 8
                for (int64_t ky = 0; ky < kh; ky++) {
                    #pragma GCC unroll 4
                    for (int t = 0; t < 4; t++) {
                        const __m512i v = _mm512_mask_loadu_epi8(
                            zp, masks[(u + t) * kh + ky],
                            (const void *)((uintptr_t)in + (uintptr_t)(off + t * step + ky * row)));
                        a[t] = _mm512_dpbusd_epi32(a[t], _mm512_permutex2var_epi8(v, idx, zp),
                                                   wv[ky]);
                    }
                }
            }
            const __m512i w01 = _mm512_packs_epi32(dd_requant(a[0], r, hi32),
                                                   dd_requant(a[1], r, hi32));
            const __m512i w23 = _mm512_packs_epi32(dd_requant(a[2], r, hi32),
                                                   dd_requant(a[3], r, hi32));
            __m512i b = _mm512_permutexvar_epi32(t4, _mm512_packus_epi16(w01, w23));
            b = _mm512_min_epu8(_mm512_max_epu8(b, _mm512_set1_epi8((char)r->lo)),
                                _mm512_set1_epi8((char)r->hi));
            _mm512_storeu_si512((void *)(out + 16 * u), b);
        }
    }
}

/* ---- few units per channel (4x4 maps at batch 1): a group's 4 units
 * come from different channels, each accumulator with its own channel's
 * weights, bias and output constants (the clamp to lo/hi on int32, before
 * the packs). ---- */

typedef struct dd_ref {
    int64_t ch, img, u;
} dd_ref;

static inline __attribute__((always_inline)) void dd_mgroup(const nnq_qconv *c,
                                                            const dd_geom *g,
                                                            const dd_unit *units,
                                                            const uint8_t *tabs,
                                                            const uint64_t *masks,
                                                            const uint8_t *x, uint8_t *y,
                                                            const dd_ref *ref, int64_t kh,
                                                            bool fast) {
    const int64_t hw = c->h * c->wd, P = c->oh * c->ow, row = c->dh * c->wd;
    const __m512i zp = _mm512_set1_epi8((char)c->x_zp);
    const dd_unit *un[4];
    const uint8_t *in[4];
    const int32_t *wr[4];
    const nnq_qout *q[4];
    uint8_t *out[4];
    __m512i a[4], idx[4];
    bool inside = true;
    #pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        const int64_t ch = ref[t].ch;
        un[t] = &units[ref[t].u];
        in[t] = x + (ref[t].img * c->in_ch + ch) * hw;
        out[t] = y + (ref[t].img * c->out_ch + ch) * P + un[t]->out;
        idx[t] = _mm512_loadu_si512((const void *)(tabs + un[t]->tab));
        inside &= un[t]->inside != 0;
        wr[t] = dd_rows(c) + ch * c->kh;
        q[t] = &c->out[ch];
        a[t] = _mm512_set1_epi32(c->bias[ch]);
    }
    #pragma GCC unroll 8
    for (int64_t ky = 0; ky < kh; ky++) {
        #pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const int64_t o = un[t]->off + ky * row;
            const __m512i v =
                inside ? _mm512_loadu_si512((const void *)(in[t] + o))
                       : _mm512_mask_loadu_epi8(zp, masks[ref[t].u * kh + ky],
                                                (const void *)((uintptr_t)in[t] + (uintptr_t)o));
            a[t] = _mm512_dpbusd_epi32(a[t], _mm512_permutex2var_epi8(v, idx[t], zp),
                                       _mm512_set1_epi32(wr[t][ky]));
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        a[t] = dd_requant(a[t], q[t], fast);
        a[t] = _mm512_min_epi32(_mm512_max_epi32(a[t], _mm512_set1_epi32(q[t]->lo)),
                                _mm512_set1_epi32(q[t]->hi));
    }
    const __m512i t4 = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i w01 = _mm512_packs_epi32(a[0], a[1]), w23 = _mm512_packs_epi32(a[2], a[3]);
    const __m512i b = _mm512_permutexvar_epi32(t4, _mm512_packus_epi16(w01, w23));
    const __m128i s[4] = {_mm512_castsi512_si128(b), _mm512_extracti32x4_epi32(b, 1),
                          _mm512_extracti32x4_epi32(b, 2), _mm512_extracti32x4_epi32(b, 3)};
    #pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        if (g->lanes == 16) _mm_storeu_si128((__m128i *)out[t], s[t]);
        else _mm_mask_storeu_epi8(out[t], (__mmask16)((1u << g->lanes) - 1), s[t]);
    }
}

/* Channels [ch0, ch0 + nc) of every image, their units in groups of 4; a
 * short last group repeats its last unit (the same bytes stored again). */
static void dd_mixed_item(const nnq_qconv *c, const dd_geom *g, const dd_unit *units,
                          int64_t nu, const uint8_t *tabs, const uint64_t *masks,
                          const uint8_t *x, uint8_t *y, int64_t ch0, int64_t nc) {
    dd_ref ref[4];
    int n = 0;
    bool fast = true;
    for (int64_t ch = ch0; ch < ch0 + nc; ch++)
        for (int64_t i = 0; i < c->n; i++)
            for (int64_t u = 0; u < nu; u++) {
                ref[n++] = (dd_ref){ch, i, u};
                fast &= dd_fast(c, ch);
                const bool last = ch == ch0 + nc - 1 && i == c->n - 1 && u == nu - 1;
                if (n < 4 && !last) continue;
                for (; n < 4; n++) ref[n] = ref[n - 1];
                if (c->kh == 3 && fast) dd_mgroup(c, g, units, tabs, masks, x, y, ref, 3, true);
                else if (c->kh == 3) dd_mgroup(c, g, units, tabs, masks, x, y, ref, 3, false);
                else dd_mgroup(c, g, units, tabs, masks, x, y, ref, c->kh, false);
                n = 0;
                fast = true;
            }
}

/* The units of a plane, in output order, with their permute tables. */
static void dd_units(const nnq_qconv *c, const dd_geom *g, dd_unit *units, uint8_t *tabs,
                     uint64_t *masks) {
    const int64_t hw = c->h * c->wd, last = (c->kh - 1) * c->dh * c->wd;
    for (int64_t cc = 0; cc < g->nch; cc++) {
        const int64_t ox0 = cc * g->cw < c->ow - g->cw ? cc * g->cw : c->ow - g->cw;
        dd_table(c, g, ox0, tabs + cc * WIN);
    }
    int64_t k = 0;
    for (int64_t rb = 0; rb < g->nrb; rb++) {
        const int64_t oy0 = rb * g->rows < c->oh - g->rows ? rb * g->rows : c->oh - g->rows;
        for (int64_t cc = 0; cc < g->nch; cc++, k++) {
            const int64_t ox0 = cc * g->cw < c->ow - g->cw ? cc * g->cw : c->ow - g->cw;
            const int64_t off = (oy0 * c->sh - c->pt) * c->wd + ox0 * c->sw - c->pl;
            units[k].off = off;
            units[k].out = oy0 * c->ow + ox0;
            units[k].tab = (int32_t)(cc * WIN);
            units[k].inside = off >= 0 && off + last + WIN <= hw;
            for (int64_t ky = 0; ky < c->kh; ky++)
                masks[k * c->kh + ky] = dd_range(off + ky * c->dh * c->wd, hw);
        }
    }
}

static void dd_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const dd_geom g = geometry(c);
    if (dd_flat(c)) {
        __mmask64 cm[4];
        for (int64_t rr = 0; rr < 4; rr++) cm[rr] = dd_colmask(c, rr);
        /* Loads 1 and 2 need no mask when no tap column (< kw) of theirs
         * is outside the rows (3x3, pad 1, rows a multiple of 4): plain
         * loads there (the masked ones cost ~15 % of a 32x32 layer). */
        __mmask64 taps = 0;
        for (int64_t k = 0; k < 16; k++) taps |= ((1ULL << c->kw) - 1) << (4 * k);
        const bool mid = (cm[1] & taps) == taps && (cm[2] & taps) == taps;
        const int64_t hw = c->h * c->wd, nvec = hw / 64;
        uint64_t *fm = NULL;
        if (nvec <= FLAT_MASKED) { /* small planes: most steps touch a border */
            fm = (uint64_t *)scratch;
            for (int64_t v = 0; v < nvec; v++)
                for (int64_t ky = 0; ky < c->kh; ky++)
                    for (int64_t t = 0; t < 4; t++)
                        fm[(v * c->kh + ky) * 4 + t] =
                            cm[t] &
                            dd_range(64 * v + t + (ky * c->dh - c->pt) * c->wd - c->pl, hw);
        }
        const int64_t items = c->out_ch * g.runs;
        NNQ_PARALLEL_FOR(c->threads, it, items, {
            const int64_t ch = it / g.runs, i0 = it % g.runs * g.imgs;
            const int64_t ni = c->n - i0 < g.imgs ? c->n - i0 : g.imgs;
            const nnq_qout *q = &c->out[ch];
            if (c->kh == 3 && dd_fast(c, ch) && mid)
                dd_flat_item(c, cm, x, y, ch, i0, ni, 3, q, true, true, fm);
            else if (c->kh == 3 && dd_fast(c, ch))
                dd_flat_item(c, cm, x, y, ch, i0, ni, 3, q, true, false, fm);
            else if (c->kh == 3)
                dd_flat_item(c, cm, x, y, ch, i0, ni, 3, q, false, false, fm);
            else dd_flat_item(c, cm, x, y, ch, i0, ni, c->kh, q, false, false, fm);
        });
        return;
    }
    const int64_t nu = g.nrb * g.nch;
    uint8_t *tabs = scratch;
    dd_unit *units = (dd_unit *)(scratch + align_up((size_t)g.nch * WIN));
    uint64_t *masks = (uint64_t *)((uint8_t *)units + align_up(sizeof(dd_unit) * (size_t)nu));
    dd_units(c, &g, units, tabs, masks);
    if (c->n * nu < 4 && c->h * c->wd < 64 && nnq_vnni_dw_regs_fit(c)) {
        /* 4x4, 4x8 at batch 1: the register path packs 4 channels per
         * vector with one load and store (faster than 4 units here) */
        nnq_vnni_dw_regs_run(c, x, y);
        return;
    }
    if (c->n * nu < 4) { /* blocks of 4 channels */
        const int64_t blocks = (c->out_ch + 3) / 4;
        NNQ_PARALLEL_FOR(c->threads, b, blocks,
                         dd_mixed_item(c, &g, units, nu, tabs, masks, x, y, 4 * b,
                                       c->out_ch - 4 * b < 4 ? c->out_ch - 4 * b : 4););
        return;
    }
    const int64_t items = c->out_ch * g.runs;
    if (dd_whole(c, &g)) {
        NNQ_PARALLEL_FOR(c->threads, it, items, {
            const int64_t ch = it / g.runs, i0 = it % g.runs * g.imgs;
            const int64_t ni = c->n - i0 < g.imgs ? c->n - i0 : g.imgs;
            const nnq_qout *q = &c->out[ch];
            if (c->kh == 3 && dd_fast(c, ch))
                dd_whole_item(c, &g, tabs, masks, x, y, ch, i0, ni, 3, q, true);
            else if (c->kh == 3)
                dd_whole_item(c, &g, tabs, masks, x, y, ch, i0, ni, 3, q, false);
            else dd_whole_item(c, &g, tabs, masks, x, y, ch, i0, ni, c->kh, q, false);
        });
        return;
    }
    NNQ_PARALLEL_FOR(c->threads, it, items, {
        const int64_t ch = it / g.runs, i0 = it % g.runs * g.imgs;
        const int64_t ni = c->n - i0 < g.imgs ? c->n - i0 : g.imgs;
        const nnq_qout *q = &c->out[ch];
        if (c->kh == 3 && dd_fast(c, ch))
            dd_item(c, &g, units, nu, tabs, masks, x, y, ch, i0, ni, 3, q, true);
        else if (c->kh == 3)
            dd_item(c, &g, units, nu, tabs, masks, x, y, ch, i0, ni, 3, q, false);
        else dd_item(c, &g, units, nu, tabs, masks, x, y, ch, i0, ni, c->kh, q, false);
    });
}

/* The weights three ways: [channel][tap quad] int32 (4 int8, zeros past
 * the last tap), for the register path of qkernels_vnni_depthwise.c;
 * [channel][kernel row] int32 (the row's kw weights, zeros after); and a
 * byte per channel, 1 where shift >= 32. Such a channel's requantization
 * needs no clamp of acc (dd_requant): |acc mult| < 2^62, so the offset sum
 * acc mult + rnd lies in [0, 2^63) and its shift by >= 32 in [0, 2^31), and
 * |requant(acc)| <= 2^30: the int32 lanes hold y_zp + requant(acc) exactly,
 * whatever acc, and the saturating packs and the lo/hi clamp give y. */
static nnq_status dd_pack(nnq_qconv *c, const int8_t *w) {
    const int64_t taps = c->kh * c->kw, nq = (taps + 3) / 4;
    const size_t rows = dd_rows_at(c), flags = rows + (size_t)(c->out_ch * c->kh) * 4;
    c->w_bytes = flags + (size_t)c->out_ch;
    c->w = nnq_qalloc(c->w_bytes);
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    for (int64_t o = 0; o < c->out_ch; o++) {
        memcpy(c->w + (size_t)(o * nq) * 4, w + o * taps, (size_t)taps);
        for (int64_t ky = 0; ky < c->kh; ky++)
            memcpy(c->w + rows + (size_t)(o * c->kh + ky) * 4, w + o * taps + ky * c->kw,
                   (size_t)c->kw);
        c->w[flags + (size_t)o] = c->out[o].shift >= 32;
    }
    return NNQ_OK;
}

#pragma GCC pop_options

const nnq_qconv_kernel nnq_qconv_vnni_depthwise_direct = {
    .name = "vnni-depthwise-direct",
    .isa = NNQ_ISA_VNNI,
    .fits = dd_fits,
    .pack = dd_pack,
    .plan = dd_plan,
    .run = dd_run,
};
