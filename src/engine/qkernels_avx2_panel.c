/* Input panels of the AVX2 GEMM convolution (qkernels_avx2_gemm.c): the
 * im2col rows of a block of output pixels, re-laid so the micro-kernel
 * reads one vector per step of K. Rows are read in place, never written as
 * an im2col matrix: from the input planes (1x1, stride 1, unpadded), else
 * from the zero-point padded phase copy, where under one tap the inputs of
 * an output row are contiguous bytes. */
#include <string.h>

#include "engine/qkernels_avx2_gemm.h"

/* One row of the im2col matrix: pixel (oy, ox) is at base + oy * rs + ox,
 * for ox < ow; base NULL for the zero rows that pad K. */
typedef struct src_row {
    const uint8_t *base;
    int64_t rs, ow;
    bool exact; /* a run may not be over-read (the caller's input) */
} src_row;

/* The NR pixels of a tile from origin (oy, ox), npx of them valid (the
 * rest: zeros or bytes of the input, results discarded). */
static inline __m128i gather(const src_row *r, int64_t oy, int64_t ox, int64_t npx) {
    if (!r->base) return _mm_setzero_si128();
    if (npx > NR) npx = NR;
    const uint8_t *p = r->base + oy * r->rs + ox;
    if (ox + NR <= r->ow && npx == NR) return _mm_loadu_si128((const __m128i *)p);
    if (npx == NR && ox == 0) { /* whole rows of 8 or 4 pixels */
        if (r->ow == 8)
            return _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)p),
                                      _mm_loadl_epi64((const __m128i *)(p + r->rs)));
        if (r->ow == 4)
            return _mm_setr_epi32(nnq_avx2_ld32(p), nnq_avx2_ld32(p + r->rs), nnq_avx2_ld32(p + 2 * r->rs),
                                  nnq_avx2_ld32(p + 3 * r->rs));
    }
    uint8_t tmp[32] = {0}; /* runs of consecutive output rows */
    for (int64_t off = 0; off < npx; oy++, ox = 0) {
        const int64_t len = r->ow - ox < npx - off ? r->ow - ox : npx - off;
        p = r->base + oy * r->rs + ox;
        if (r->exact) memcpy(tmp + off, p, (size_t)len);
        else _mm_storeu_si128((__m128i *)(tmp + off), _mm_loadu_si128((const __m128i *)p));
        off += len;
    }
    return _mm_loadu_si128((const __m128i *)tmp);
}

/* Tiles [0, n) read with one load per row: no tile straddles output rows. */
static int64_t plain_tiles(const src_row *r, int nrows, int64_t ntiles, int64_t cnt) {
    for (int i = 0; i < nrows; i++)
        if (!r[i].base || (r[i].rs && r[i].ow % NR)) return 0;
    return cnt / NR < ntiles ? cnt / NR : ntiles;
}

static inline const uint8_t *tile_ptr(const src_row *r, const int64_t *org, int64_t t) {
    return r->base + org[2 * t] * r->rs + org[2 * t + 1];
}

/* madd16 panel, K pair j: for each tile, two vectors of (x[2j, p],
 * x[2j+1, p]) int16 pairs. */
static void pack_pair(int16_t *panel, int64_t npairs, int64_t j, const src_row *r,
                      const int64_t *org, int64_t ntiles, int64_t cnt) {
    int64_t t = 0;
    for (const int64_t plain = plain_tiles(r, 2, ntiles, cnt); t < plain; t++) {
        const __m128i a = _mm_loadu_si128((const __m128i *)tile_ptr(&r[0], org, t));
        const __m128i b = _mm_loadu_si128((const __m128i *)tile_ptr(&r[1], org, t));
        int16_t *dst = panel + (t * npairs + j) * 32;
        _mm256_storeu_si256((__m256i *)dst, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        _mm256_storeu_si256((__m256i *)(dst + 16), _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)));
    }
    for (; t < ntiles; t++) {
        const int64_t npx = cnt - NR * t;
        const __m128i a = gather(&r[0], org[2 * t], org[2 * t + 1], npx);
        const __m128i b = gather(&r[1], org[2 * t], org[2 * t + 1], npx);
        int16_t *dst = panel + (t * npairs + j) * 32;
        _mm256_storeu_si256((__m256i *)dst, _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        _mm256_storeu_si256((__m256i *)(dst + 16), _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)));
    }
}

/* maddubs panel, K quad q: for each tile, two vectors of (x[4q, p], ..,
 * x[4q+3, p]) uint8 quads. */
static void pack_quad(uint8_t *panel, int64_t nquads, int64_t q, const src_row *r,
                      const int64_t *org, int64_t ntiles, int64_t cnt) {
    const int64_t plain = plain_tiles(r, 4, ntiles, cnt);
    for (int64_t t = 0; t < ntiles; t++) {
        const int64_t npx = cnt - NR * t, oy = org[2 * t], ox = org[2 * t + 1];
        __m128i a, b, e, f;
        if (t < plain) {
            a = _mm_loadu_si128((const __m128i *)tile_ptr(&r[0], org, t));
            b = _mm_loadu_si128((const __m128i *)tile_ptr(&r[1], org, t));
            e = _mm_loadu_si128((const __m128i *)tile_ptr(&r[2], org, t));
            f = _mm_loadu_si128((const __m128i *)tile_ptr(&r[3], org, t));
        } else {
            a = gather(&r[0], oy, ox, npx);
            b = gather(&r[1], oy, ox, npx);
            e = gather(&r[2], oy, ox, npx);
            f = gather(&r[3], oy, ox, npx);
        }
        const __m128i ab0 = _mm_unpacklo_epi8(a, b), ef0 = _mm_unpacklo_epi8(e, f);
        const __m128i ab1 = _mm_unpackhi_epi8(a, b), ef1 = _mm_unpackhi_epi8(e, f);
        uint8_t *dst = panel + (t * nquads + q) * 64;
        _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(ab0, ef0));
        _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpackhi_epi16(ab0, ef0));
        _mm_storeu_si128((__m128i *)(dst + 32), _mm_unpacklo_epi16(ab1, ef1));
        _mm_storeu_si128((__m128i *)(dst + 48), _mm_unpackhi_epi16(ab1, ef1));
    }
}

void nnq_avx2_gemm_panel(const gemm_item *t, int64_t n, int64_t gr, int64_t p0, int64_t cnt) {
    const nnq_qconv *c = t->c;
    const int64_t P = c->oh * c->ow, taps = c->kh * c->kw, nsteps = t->g.kp / t->g.step;
    const int64_t ntiles = (cnt + NR - 1) / NR;
    const uint8_t *img = t->x + (n * c->in_ch + gr * c->cg) * c->h * c->wd;
    const bool direct = gemm_direct_input(c);
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t p = p0 + i * NR;
        t->org[2 * i] = direct ? 0 : p / c->ow;
        t->org[2 * i + 1] = direct ? p : p % c->ow;
    }
    if (!direct)
        for (int64_t ci = 0; ci < c->cg; ci++)
            nnq_avx2_fill_phases(c, t->pg.pw, t->pg.phase, img + ci * c->h * c->wd,
                                 t->pad + (size_t)ci * t->pg.chan);
    for (int64_t s = 0; s < nsteps; s++) {
        src_row r[4];
        for (int64_t i = 0; i < t->g.step; i++) {
            const int64_t k = s * t->g.step + i;
            r[i].exact = direct;
            if (k >= c->K) {
                r[i].base = NULL;
            } else if (direct) {
                r[i].base = img + k * P;
                r[i].rs = 0;
                r[i].ow = P;
            } else {
                const int64_t ci = k / taps, ky = k % taps / c->kw, kx = k % taps % c->kw;
                const int64_t cx = kx * c->dw;
                r[i].base = t->pad + (size_t)ci * t->pg.chan + (size_t)(cx % c->sw) * t->pg.phase +
                            ky * c->dh * t->pg.pw + cx / c->sw;
                r[i].rs = c->sh * t->pg.pw;
                r[i].ow = c->ow;
            }
        }
        if (direct && s + 1 < nsteps) /* the next step's rows: too many streams for the */
            for (int64_t i = 0; i < t->g.step; i++) { /* hardware prefetcher at large batches */
                const int64_t k = (s + 1) * t->g.step + i;
                if (k >= c->K) break;
                const char *row = (const char *)(img + k * P + p0);
                for (int64_t b = 0; b < cnt; b += 64) _mm_prefetch(row + b, _MM_HINT_T0);
            }
        if (t->g.wide) pack_pair((int16_t *)t->panel, nsteps, s, r, t->org, ntiles, cnt);
        else pack_quad(t->panel, nsteps, s, r, t->org, ntiles, cnt);
    }
}

