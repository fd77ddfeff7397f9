/* AVX2 fully connected: dot products along K, 4 weight rows per pass
 * sharing each load of x, reduced across lanes at the end; the
 * requantization is the scalar rule (one per output, negligible next to K
 * multiply-adds). Weight rows, padded with zeros to whole vectors and to a
 * multiple of 4 rows:
 *  - 8-bit weights: int16, x widened to int16, vpmaddwd;
 *  - at most 7 bits: int8 (nibbles for <= 4 bits, unpacked in registers),
 *    x uint8, vpmaddubsw (exact, see qkernels_avx2_gemm.c) grouped in int16. */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_avx2.h"

#define ROWS 4

typedef struct fc_geom {
    bool wide, nibbles;
    int64_t chunk;     /* K per vector: 16 (wide) or 32 */
    int64_t kp;        /* K rounded up to chunk */
    int64_t mp;        /* rows rounded up to ROWS */
    size_t row_bytes;
} fc_geom;

static fc_geom geometry(const nnq_qfc *f) {
    fc_geom g;
    g.wide = f->w_bits == 8;
    g.nibbles = f->w_bits <= 4;
    g.chunk = g.wide ? 16 : 32;
    g.kp = (f->k + g.chunk - 1) / g.chunk * g.chunk;
    g.mp = (f->m + ROWS - 1) / ROWS * ROWS;
    g.row_bytes = (size_t)g.kp * (g.wide ? 2 : 1) / (g.nibbles ? 2 : 1);
    return g;
}

static nnq_status fc_pack(nnq_qfc *f, const int8_t *w) {
    const fc_geom g = geometry(f);
    f->w_bytes = g.row_bytes * (size_t)g.mp;
    f->w = nnq_qalloc(f->w_bytes);
    if (!f->w) return nnq_fail(NNQ_ERR_NOMEM, "qfc: packed weights (%zu bytes)", f->w_bytes);
    for (int64_t o = 0; o < f->m; o++) {
        const int8_t *src = w + o * f->k;
        uint8_t *row = f->w + (size_t)o * g.row_bytes;
        if (g.wide) {
            for (int64_t i = 0; i < f->k; i++) {
                const int16_t v = src[i];
                memcpy(row + 2 * i, &v, 2);
            }
        } else if (g.nibbles) {
            for (int64_t i = 0; i < f->k; i += 2)
                row[i / 2] = nnq_nibble_pair(src[i], i + 1 < f->k ? src[i + 1] : 0);
        } else {
            memcpy(row, src, (size_t)f->k);
        }
    }
    return NNQ_OK;
}

/* x[kk, kk + n) as a vector of `width` bytes, zeros past K. */
static inline __m256i load_x(const uint8_t *x, int64_t kk, int64_t k, int width) {
    if (kk + width <= k)
        return width == 32 ? _mm256_loadu_si256((const __m256i *)(x + kk))
                           : _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(x + kk)));
    uint8_t tmp[32] = {0};
    memcpy(tmp, x + kk, (size_t)(k - kk));
    return _mm256_loadu_si256((const __m256i *)tmp);
}

/* Rows [o0, o0 + ROWS) against one x row: raw dot products (no bias). */
static void dots_wide(const fc_geom *g, const uint8_t *w, int64_t k, const uint8_t *x,
                      int32_t out[ROWS]) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const int16_t *w0 = (const int16_t *)w, *w1 = w0 + g->kp, *w2 = w1 + g->kp, *w3 = w2 + g->kp;
    for (int64_t kk = 0; kk < g->kp; kk += 16) {
        const __m256i xv = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(load_x(x, kk, k, 16)));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(w0 + kk))));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(w1 + kk))));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(w2 + kk))));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(w3 + kk))));
    }
    out[0] = nnq_avx2_hsum(a0), out[1] = nnq_avx2_hsum(a1);
    out[2] = nnq_avx2_hsum(a2), out[3] = nnq_avx2_hsum(a3);
}

static inline __m256i load_w8(const fc_geom *g, const uint8_t *row, int64_t kk) {
    if (g->nibbles) return nnq_avx2_unpack_nibbles(_mm_loadu_si128((const __m128i *)(row + kk / 2)));
    return _mm256_loadu_si256((const __m256i *)(row + kk));
}

static void dots_maddubs(const fc_geom *g, int group, const uint8_t *w, int64_t k,
                         const uint8_t *x, int32_t out[ROWS]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    const uint8_t *w0 = w, *w1 = w0 + g->row_bytes, *w2 = w1 + g->row_bytes, *w3 = w2 + g->row_bytes;
    for (int64_t k0 = 0; k0 < g->kp; k0 += 32 * (int64_t)group) {
        const int64_t k1 = k0 + 32 * (int64_t)group < g->kp ? k0 + 32 * (int64_t)group : g->kp;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t kk = k0; kk < k1; kk += 32) {
            const __m256i xv = load_x(x, kk, k, 32);
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(xv, load_w8(g, w0, kk)));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(xv, load_w8(g, w1, kk)));
            s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(xv, load_w8(g, w2, kk)));
            s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(xv, load_w8(g, w3, kk)));
        }
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(s0, ones));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(s1, ones));
        a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(s2, ones));
        a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(s3, ones));
    }
    out[0] = nnq_avx2_hsum(a0), out[1] = nnq_avx2_hsum(a1);
    out[2] = nnq_avx2_hsum(a2), out[3] = nnq_avx2_hsum(a3);
}

static void fc_run(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y, int32_t *acc) {
    const fc_geom g = geometry(f);
    const int group = nnq_avx2_maddubs_group(f->w_bits);
    const int64_t blocks = g.mp / ROWS, items = n * blocks;
    const int nt = nnq_qfc_threads(f, n);
    NNQ_PARALLEL_FOR(nt, it, items, {
        const int64_t i = it / blocks, o0 = it % blocks * ROWS;
        const uint8_t *xi = x + i * f->k, *w = f->w + (size_t)o0 * g.row_bytes;
        int32_t d[ROWS];
        if (g.wide) dots_wide(&g, w, f->k, xi, d);
        else dots_maddubs(&g, group, w, f->k, xi, d);
        nnq_qfc_store(f, i, o0, ROWS, d, y, acc);
    });
}

const nnq_qfc_kernel nnq_qfc_avx2 = {
    .name = "avx2-fc",
    .isa = NNQ_ISA_AVX2,
    .pack = fc_pack,
    .run = fc_run,
};
