/* AVX2 depthwise convolution (groups == in_ch == out_ch), direct, any
 * stride, padding and dilation.
 *
 * Per (image, channel) plane, the input is copied once into a padded
 * buffer (borders hold x_zp) split into stride_w column phases: padded
 * column c goes to phase c % sw at column c / sw. Then for every tap the 16
 * inputs of 16 consecutive output pixels are contiguous bytes of one phase
 * row, whatever the stride (dw_rows). Exact: |x * w| <= 255 * 128 and the
 * accumulator range is checked at create. Weights are in row storage
 * (nibbles for <= 4 bits). */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_avx2.h"

#define MAX_TAPS 256
#define SLACK 32 /* bytes read past the last phase row (discarded lanes): < 16 */

typedef struct dw_geom {
    int64_t hp, pw;  /* padded rows, columns per phase row */
    size_t phase;    /* bytes per phase plane */
} dw_geom;

static dw_geom geometry(const nnq_qconv *c) {
    dw_geom g;
    g.hp = c->h + c->pt + c->pb;
    g.pw = (c->wd + c->pl + c->pr + c->sw - 1) / c->sw;
    g.phase = (size_t)(g.hp * g.pw);
    return g;
}

static bool dw_fits(const nnq_qconv *c) {
    return c->groups == c->in_ch && c->groups == c->out_ch && c->kh * c->kw <= MAX_TAPS;
}

static size_t align_up(size_t n) { return (n + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN; }

/* Scratch of one thread: the padded phase planes | the outputs of a plane
 * on the virtual grid (dw_virtual), at most phase + 32 bytes. */
static void dw_plan(nnq_qconv *c) {
    const dw_geom g = geometry(c);
    c->thread_bytes = align_up(g.phase * (size_t)c->sw + SLACK) + align_up(g.phase + 32);
}

/* n bytes, inline: 8-byte moves, the last one overlapping (no call to
 * memcpy for the short rows of small planes). */
static inline void copy_row(uint8_t *dst, const uint8_t *src, int64_t n) {
    if (n < 8) {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i];
        return;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) memcpy(dst + i, src + i, 8);
    if (i < n) memcpy(dst + n - 8, src + n - 8, 8);
}

void nnq_avx2_fill_phases(const nnq_qconv *c, int64_t pw, size_t phase, const uint8_t *src,
                          uint8_t *buf) {
    for (int64_t iy = 0; iy < c->h; iy++) {
        const uint8_t *s = src + iy * c->wd;
        const int64_t r = iy + c->pt;
        if (c->sw == 1) {
            copy_row(buf + r * pw + c->pl, s, c->wd);
            continue;
        }
        int64_t ix = 0;
        if (c->sw == 2) { /* even inputs to one phase, odd ones to the other */
            const __m128i split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
            uint8_t *ev = buf + (size_t)(c->pl & 1) * phase + r * pw + (c->pl >> 1);
            uint8_t *od = buf + (size_t)((c->pl + 1) & 1) * phase + r * pw + ((c->pl + 1) >> 1);
            for (; ix + 16 <= c->wd; ix += 16) {
                const __m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(s + ix)), split);
                _mm_storel_epi64((__m128i *)(ev + ix / 2), v);
                _mm_storel_epi64((__m128i *)(od + ix / 2), _mm_unpackhi_epi64(v, v));
            }
            if (ix + 8 <= c->wd) { /* 8x8 and 16x16 planes: rows of 8 */
                const __m128i split8 = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 9, 10, 11, 12,
                                                     13, 14, 15);
                const __m128i v = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(s + ix)),
                                                   split8);
                const int32_t e = _mm_cvtsi128_si32(v), o = _mm_extract_epi32(v, 1);
                memcpy(ev + ix / 2, &e, 4);
                memcpy(od + ix / 2, &o, 4);
                ix += 8;
            }
        }
        /* The rest, phase by phase: no division per byte. */
        int64_t ph = (ix + c->pl) % c->sw, q = (ix + c->pl) / c->sw;
        for (; ix < c->wd; ix++) {
            buf[(size_t)ph * phase + r * pw + q] = s[ix];
            if (++ph == c->sw) ph = 0, q++;
        }
    }
}

/* 16 int32 requantized, even pixels in re and odd ones in ro (lanes
 * 0 2 4 6 | 8 10 12 14 and 1 3 5 7 | 9 .. 15) -> 16 bytes in order. */
static inline __m128i interleave_pack(__m256i re, __m256i ro, const nnq_avx2_rq *rq) {
    const __m256i lo = _mm256_unpacklo_epi32(re, ro); /* 0 1 2 3 | 8 9 10 11 */
    const __m256i hi = _mm256_unpackhi_epi32(re, ro); /* 4 5 6 7 | 12 .. 15 */
    const __m256i w16 = _mm256_packs_epi32(lo, hi);   /* 0 .. 7 | 8 .. 15 */
    const __m128i u = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    return _mm_min_epu8(_mm_max_epu8(u, rq->lo), rq->hi);
}

#define DW_TAP(t, e, o, at)                                                                   \
    do {                                                                                      \
        const __m256i x_ = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(at)));      \
        e = _mm256_add_epi32(e, _mm256_madd_epi16(x_, we[t]));                                 \
        o = _mm256_add_epi32(o, _mm256_madd_epi16(x_, wo[t]));                                 \
    } while (0)

/* Output rows of one plane, 32 (then 16) pixels at a time: each tap widens
 * 16 inputs to int16 once, and two vpmaddwd with weights (w, 0) and (0, w)
 * multiply the even and the odd pixels into int32 (exact: |x w| <= 255 *
 * 128), half the shuffles of widening to int32 twice; the lanes are
 * interleaved back after requantization. Two independent 16-pixel chains
 * per step keep the core busy through the long requantization latency.
 * `taps` is a constant where this is inlined for 3x3: the tap loop unrolls. */
static inline __attribute__((always_inline)) void dw_rows(const nnq_qconv *c, const dw_geom *g,
                                                          const int64_t *off, const uint8_t *buf,
                                                          const __m256i *we, const __m256i *wo,
                                                          int64_t taps, const nnq_avx2_rq *rq,
                                                          __m256i bias, uint8_t *dst) {
    const int64_t ow = c->ow, oh = c->oh, rs = c->sh * g->pw;
    for (int64_t oy = 0; oy < oh; oy++) {
        const uint8_t *base = buf + oy * rs;
        uint8_t *out = dst + oy * ow;
        int64_t ox = 0;
        for (; ox + 16 < ow; ox += 32) {
            __m256i e0 = bias, o0 = bias, e1 = bias, o1 = bias;
            #pragma GCC unroll 9
            for (int64_t t = 0; t < taps; t++) {
                DW_TAP(t, e0, o0, base + off[t] + ox);
                DW_TAP(t, e1, o1, base + off[t] + ox + 16);
            }
            const __m128i u0 = interleave_pack(nnq_avx2_requant(e0, rq), nnq_avx2_requant(o0, rq), rq);
            const __m128i u1 = interleave_pack(nnq_avx2_requant(e1, rq), nnq_avx2_requant(o1, rq), rq);
            _mm_storeu_si128((__m128i *)(out + ox), u0);
            nnq_avx2_store_n(out + ox + 16, u1, ow - ox - 16);
        }
        if (ox < ow) { /* at most 16 left */
            __m256i e0 = bias, o0 = bias;
            #pragma GCC unroll 9
            for (int64_t t = 0; t < taps; t++) DW_TAP(t, e0, o0, base + off[t] + ox);
            nnq_avx2_store_n(out + ox,
                             interleave_pack(nnq_avx2_requant(e0, rq), nnq_avx2_requant(o0, rq), rq),
                             ow - ox);
        }
    }
}

/* Small planes: output pixel (oy, ox) at virtual index oy * rs + ox, rs the
 * padded row stride of the input; under every tap the inputs of consecutive
 * virtual pixels are consecutive bytes, across output rows too. So the whole
 * plane is ceil(((oh-1) rs + ow) / 16) vector steps instead of oh row
 * passes (a 4x4 output: 2 steps instead of 4); the columns ow..rs-1 of each
 * virtual row are junk, computed into vbuf and not copied out. */
static inline __attribute__((always_inline)) void dw_virtual(const nnq_qconv *c, const dw_geom *g,
                                                             const int64_t *off, const uint8_t *buf,
                                                             const __m256i *we, const __m256i *wo,
                                                             int64_t taps, const nnq_avx2_rq *rq,
                                                             __m256i bias, uint8_t *vbuf,
                                                             uint8_t *dst) {
    const int64_t rs = c->sh * g->pw, nv = (c->oh - 1) * rs + c->ow;
    for (int64_t v = 0; v < nv; v += 16) {
        __m256i e0 = bias, o0 = bias;
        #pragma GCC unroll 9
        for (int64_t t = 0; t < taps; t++) DW_TAP(t, e0, o0, buf + off[t] + v);
        _mm_storeu_si128((__m128i *)(vbuf + v),
                         interleave_pack(nnq_avx2_requant(e0, rq), nnq_avx2_requant(o0, rq), rq));
    }
    for (int64_t oy = 0; oy < c->oh; oy++) copy_row(dst + oy * c->ow, vbuf + oy * rs, c->ow);
}

static void dw_plane(const nnq_qconv *c, const dw_geom *g, const int64_t *off, const uint8_t *buf,
                     int64_t ch, uint8_t *vbuf, uint8_t *dst) {
    const int64_t taps = c->kh * c->kw;
    const uint8_t *row = c->w + (size_t)ch * nnq_qrows_stride(taps, c->w_bits);
    __m256i we[MAX_TAPS], wo[MAX_TAPS];
    for (int64_t t = 0; t < taps; t++) {
        const uint32_t w = (uint16_t)(int16_t)nnq_qrows_get(row, t, c->w_bits);
        we[t] = _mm256_set1_epi32((int32_t)w);
        wo[t] = _mm256_set1_epi32((int32_t)(w << 16));
    }
    const nnq_avx2_rq rq = nnq_avx2_rq_make(&c->out[ch]);
    const __m256i bias = _mm256_set1_epi32(c->bias[ch]);
    const int64_t rs = c->sh * g->pw;
    const int64_t row_steps = c->oh * ((c->ow + 15) / 16);
    const int64_t virt_steps = ((c->oh - 1) * rs + c->ow + 15) / 16;
    if (virt_steps < row_steps) {
        if (taps == 9) dw_virtual(c, g, off, buf, we, wo, 9, &rq, bias, vbuf, dst);
        else dw_virtual(c, g, off, buf, we, wo, taps, &rq, bias, vbuf, dst);
    } else {
        if (taps == 9) dw_rows(c, g, off, buf, we, wo, 9, &rq, bias, dst);
        else dw_rows(c, g, off, buf, we, wo, taps, &rq, bias, dst);
    }
}

static void dw_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const dw_geom g = geometry(c);
    int64_t off[MAX_TAPS];
    for (int64_t ky = 0; ky < c->kh; ky++)
        for (int64_t kx = 0; kx < c->kw; kx++) {
            const int64_t cx = kx * c->dw;
            off[ky * c->kw + kx] =
                (int64_t)((size_t)(cx % c->sw) * g.phase) + ky * c->dh * g.pw + cx / c->sw;
        }
    const int64_t planes = c->n * c->out_ch, P = c->oh * c->ow, HW = c->h * c->wd;
    NNQ_PARALLEL(c->threads, tid, nt, {
        uint8_t *buf = scratch + (size_t)tid * c->thread_bytes;
        uint8_t *vbuf = buf + align_up(g.phase * (size_t)c->sw + SLACK);
        memset(buf, c->x_zp, c->thread_bytes);
        int64_t pl_lo, pl_hi;
        nnq_static_share(planes, tid, nt, &pl_lo, &pl_hi);
        for (int64_t pl = pl_lo; pl < pl_hi; pl++) {
            nnq_avx2_fill_phases(c, g.pw, g.phase, x + pl * HW, buf);
            dw_plane(c, &g, off, buf, pl % c->out_ch, vbuf, y + pl * P);
        }
    });
}

const nnq_qconv_kernel nnq_qconv_avx2_depthwise = {
    .name = "avx2-depthwise",
    .isa = NNQ_ISA_AVX2,
    .fits = dw_fits,
    .pack = nnq_qconv_pack_rows,
    .plan = dw_plan,
    .run = dw_run,
};
