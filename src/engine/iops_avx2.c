/* AVX2 versions of the integer program's elementwise operators (iops.c
 * has the scalar ones and chooses at create, like the kernels). Both give
 * the same bytes: the arithmetic is exact int32.
 *   ip_lut_avx2: y[i] = table[x[i]] with 16 vpshufb of 16-byte rows: for a
 *                code below 128, row k (0..7) is read, by its low nibble,
 *                when x - 16k has bit 7 clear, i.e. for the rows 0..h of
 *                its high nibble h (else vpshufb gives 0); the rows are
 *                stored as differences of the table's rows
 *                (ip_lut_xor_rows), so their XOR is the entry. Codes from
 *                128 do the same with rows 8..15 on x ^ 0x80, and
 *                vpblendvb on bit 7 picks the half;
 *   ip_add_avx2: y = clamp(zy + ((a - za) ma + (b - zb) mb + 2^(S-1)) >> S,
 *                lo, hi) in 32-bit lanes (ma, mb <= 2^21, S <= 30: no
 *                overflow, iprog.c checks);
 *   ip_quantize_avx2: nnq_quantize_i (core/qmath.h) on 8 floats: the same
 *                IEEE single division by s, clamps and magic-number
 *                rounding, NaN to z; the grid and z inside 0..255. */
#include <immintrin.h>

#include "core/qmath.h"
#include "engine/iprog_impl.h"

void ip_lut_avx2(const uint8_t *xtab, const uint8_t *table, const uint8_t *x, uint8_t *y,
                 int64_t n) {
    __m256i rows[16];
    for (int k = 0; k < 16; k++)
        rows[k] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xtab + 16 * k)));
    const __m256i sixteen = _mm256_set1_epi8(16), top = _mm256_set1_epi8((char)0x80);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        /* codes 0..127: rows 0..7 on v; 128..255: rows 8..15 on v ^ 0x80 */
        __m256i a = v, b = _mm256_xor_si256(v, top);
        __m256i ra = _mm256_shuffle_epi8(rows[0], a), rb = _mm256_shuffle_epi8(rows[8], b);
        for (int k = 1; k < 8; k++) {
            a = _mm256_sub_epi8(a, sixteen);
            b = _mm256_sub_epi8(b, sixteen);
            ra = _mm256_xor_si256(ra, _mm256_shuffle_epi8(rows[k], a));
            rb = _mm256_xor_si256(rb, _mm256_shuffle_epi8(rows[8 + k], b));
        }
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_blendv_epi8(ra, rb, v));
    }
    for (; i < n; i++) y[i] = table[x[i]];
}

/* 8 results of the add rule as int32 lanes. */
static inline __m256i add8(const ip_add *a, const uint8_t *x1, const uint8_t *x2) {
    const __m256i va = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)x1));
    const __m256i vb = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)x2));
    const __m256i ta = _mm256_mullo_epi32(_mm256_sub_epi32(va, _mm256_set1_epi32(a->za)),
                                          _mm256_set1_epi32((int32_t)a->ma));
    const __m256i tb = _mm256_mullo_epi32(_mm256_sub_epi32(vb, _mm256_set1_epi32(a->zb)),
                                          _mm256_set1_epi32((int32_t)a->mb));
    const __m256i t = _mm256_add_epi32(_mm256_add_epi32(ta, tb),
                                       _mm256_set1_epi32((int32_t)1 << (a->shift - 1)));
    return _mm256_add_epi32(_mm256_srai_epi32(t, a->shift), _mm256_set1_epi32(a->zy));
}

void ip_add_avx2(const ip_add *a, const uint8_t *x1, const uint8_t *x2, uint8_t *y, int64_t n) {
    const __m128i lo = _mm_set1_epi8((char)a->lo), hi = _mm_set1_epi8((char)a->hi);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i v0 = add8(a, x1 + i, x2 + i), v1 = add8(a, x1 + i + 8, x2 + i + 8);
        /* int32 -> int16 (saturating; lane order 0-3, 8-11, 4-7, 12-15) -> uint8 */
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xd8);
        __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        b = _mm_min_epu8(_mm_max_epu8(b, lo), hi);
        _mm_storeu_si128((__m128i *)(y + i), b);
    }
    for (; i < n; i++) {
        const int32_t t = ((int32_t)x1[i] - a->za) * (int32_t)a->ma +
                          ((int32_t)x2[i] - a->zb) * (int32_t)a->mb + ((int32_t)1 << (a->shift - 1));
        y[i] = ip_clamp_u8(a->zy + (t >> a->shift), a->lo, a->hi);
    }
}

void ip_quantize_avx2(const float *x, uint8_t *y, int64_t n, float s, int32_t z, int32_t qmin,
                      int32_t qmax) {
    const float zf = (float)z;
    const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps((float)qmin - zf - 1.0f),
                 hi = _mm256_set1_ps((float)qmax - zf + 1.0f), magic = _mm256_set1_ps(12582912.0f),
                 vz = _mm256_set1_ps(zf), qlo = _mm256_set1_ps((float)qmin),
                 qhi = _mm256_set1_ps((float)qmax);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
        const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi); /* not NaN: v < lo ? lo : v > hi ? hi : v */
        v = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(v, magic), magic), vz);
        v = _mm256_blendv_ps(_mm256_min_ps(_mm256_max_ps(v, qlo), qhi), vz, nan);
        const __m256i q = _mm256_cvttps_epi32(v);
        const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(w, w));
    }
    for (; i < n; i++) y[i] = (uint8_t)nnq_quantize_i(x[i], s, z, qmin, qmax);
}
