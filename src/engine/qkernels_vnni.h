/* AVX-512 VNNI building blocks shared by the qkernels_vnni_*.c files
 * (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni; include from
 * those files only). */
#ifndef NNQ_ENGINE_QKERNELS_VNNI_H
#define NNQ_ENGINE_QKERNELS_VNNI_H

#include "engine/qkernels_avx2.h"

/* The requantization on 16 lanes of one channel, the steps of
 * nnq_avx2_requant (clamp acc, the 2^62 offset, a logical shift;
 * docs/engine.md). The constants are read straight from the nnq_qout: the
 * compiler folds them into {1to16} broadcast operands, so a channel needs no
 * setup (small planes and 4x4 maps change channel often). */
static inline __m512i nnq_vnni_requant_clamped(__m512i acc, const nnq_qout *q) {
    const __m512i mult = _mm512_set1_epi32(q->mult), rnd = _mm512_set1_epi64(q->rnd);
    const __m128i shift = _mm_cvtsi32_si128(q->shift);
    acc = _mm512_min_epi32(_mm512_max_epi32(acc, _mm512_set1_epi32(q->acc_lo)),
                           _mm512_set1_epi32(q->acc_hi));
    __m512i ev = _mm512_add_epi64(_mm512_mul_epi32(acc, mult), rnd);
    __m512i od = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), mult), rnd);
    ev = _mm512_srl_epi64(ev, shift);
    od = _mm512_srl_epi64(od, shift);
    /* odd dword lanes <- the low dword of od's qwords (one op: no shift back) */
    return _mm512_add_epi32(_mm512_mask_shuffle_epi32(ev, 0xAAAA, od, (_MM_PERM_ENUM)0xA0),
                            _mm512_set1_epi32(q->zc));
}

/* The same for a channel with shift >= 32 (the usual case), in 8 vector
 * operations instead of 11: no clamp of acc is needed, since |acc mult| <
 * 2^62 keeps the offset sum acc mult + rnd in [0, 2^64) as an unsigned
 * qword, its shift by >= 32 below 2^32 and |requant(acc)| <= 2^30, so the
 * int32 lanes hold y_zp + requant(acc) exactly for any int32 acc (the
 * saturating packs and the lo/hi clamp then give y); and the result is the
 * high dword of the sum shifted by shift - 32: one dword shuffle brings
 * both halves' high dwords together, one 32-bit shift follows. */
static inline __m512i nnq_vnni_requant_hi32(__m512i acc, const nnq_qout *q) {
    const __m512i mult = _mm512_set1_epi32(q->mult), rnd = _mm512_set1_epi64(q->rnd);
    const __m512i ev = _mm512_add_epi64(_mm512_mul_epi32(acc, mult), rnd);
    const __m512i od = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), mult), rnd);
    const __m512i h = _mm512_mask_shuffle_epi32(od, 0x5555, ev, (_MM_PERM_ENUM)0xB1);
    return _mm512_add_epi32(_mm512_srl_epi32(h, _mm_cvtsi32_si128(q->shift - 32)),
                            _mm512_set1_epi32(q->zc));
}

static inline __m512i nnq_vnni_requant(__m512i acc, const nnq_qout *q) {
    return q->shift >= 32 ? nnq_vnni_requant_hi32(acc, q) : nnq_vnni_requant_clamped(acc, q);
}

/* 4 channels x 16 lanes of y_zp + requant -> 4 rows of 16 bytes: the
 * saturating packs (within 128-bit lanes) leave channel k's pixels 4l..4l+3
 * in dword k of lane l; one dword permute puts each channel in a lane of
 * its own, in pixel order; then the clamp, [lo, hi] per channel. */
static inline __m512i nnq_vnni_pack4(__m512i r0, __m512i r1, __m512i r2, __m512i r3, __m512i lo,
                                     __m512i hi) {
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i u = _mm512_packus_epi16(_mm512_packs_epi32(r0, r1), _mm512_packs_epi32(r2, r3));
    return _mm512_min_epu8(_mm512_max_epu8(_mm512_permutexvar_epi32(idx, u), lo), hi);
}

/* 4 x 16 bytes: lane k (128 bits) holds v[k]. */
static inline __m512i nnq_vnni_bytes4(uint8_t v0, uint8_t v1, uint8_t v2, uint8_t v3) {
    const __m512i k = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i b = _mm512_castsi128_si512(_mm_setr_epi32(v0 * 0x01010101u, v1 * 0x01010101u,
                                                            v2 * 0x01010101u, v3 * 0x01010101u));
    return _mm512_permutexvar_epi32(k, b);
}

/* The output constants of a block of 8 channels [o0, o0 + valid) of a GEMM
 * or direct convolution (vnni-gemm, vnni-direct): channels past `valid`
 * reuse channel o0's constants and a zero bias (computed, never stored). */
typedef struct nnq_vnni_block8 {
    const nnq_qout *q[8];
    int32_t bias[8];
    __m512i lo0, lo1, hi0, hi1; /* clamps of channels 0-3 and 4-7, a lane each */
} nnq_vnni_block8;

static inline void nnq_vnni_block8_init(nnq_vnni_block8 *k, const nnq_qout *out,
                                        const int32_t *bias, int64_t o0, int64_t valid) {
    for (int64_t m = 0; m < 8; m++) {
        k->q[m] = &out[o0 + (m < valid ? m : 0)];
        k->bias[m] = m < valid ? bias[o0 + m] : 0;
    }
    k->lo0 = nnq_vnni_bytes4(k->q[0]->lo, k->q[1]->lo, k->q[2]->lo, k->q[3]->lo);
    k->lo1 = nnq_vnni_bytes4(k->q[4]->lo, k->q[5]->lo, k->q[6]->lo, k->q[7]->lo);
    k->hi0 = nnq_vnni_bytes4(k->q[0]->hi, k->q[1]->hi, k->q[2]->hi, k->q[3]->hi);
    k->hi1 = nnq_vnni_bytes4(k->q[4]->hi, k->q[5]->hi, k->q[6]->hi, k->q[7]->hi);
}

/* The block's 8 channels x 16 pixels of accumulators acc[m][h] as bytes:
 * lane k of *u0 holds channel k's 16 outputs, lane k of *u1 channel 4 + k's. */
static inline void nnq_vnni_block8_out(const nnq_vnni_block8 *k, __m512i acc[8][2], int64_t h,
                                       __m512i *u0, __m512i *u1) {
    *u0 = nnq_vnni_pack4(nnq_vnni_requant(acc[0][h], k->q[0]), nnq_vnni_requant(acc[1][h], k->q[1]),
                         nnq_vnni_requant(acc[2][h], k->q[2]), nnq_vnni_requant(acc[3][h], k->q[3]),
                         k->lo0, k->hi0);
    *u1 = nnq_vnni_pack4(nnq_vnni_requant(acc[4][h], k->q[4]), nnq_vnni_requant(acc[5][h], k->q[5]),
                         nnq_vnni_requant(acc[6][h], k->q[6]), nnq_vnni_requant(acc[7][h], k->q[7]),
                         k->lo1, k->hi1);
}

/* The 8 channels' 16 bytes (nnq_vnni_block8_out) as rows: o[m] = channel m. */
static inline void nnq_vnni_rows8(__m512i u0, __m512i u1, __m128i o[8]) {
    o[0] = _mm512_castsi512_si128(u0);
    o[1] = _mm512_extracti32x4_epi32(u0, 1);
    o[2] = _mm512_extracti32x4_epi32(u0, 2);
    o[3] = _mm512_extracti32x4_epi32(u0, 3);
    o[4] = _mm512_castsi512_si128(u1);
    o[5] = _mm512_extracti32x4_epi32(u1, 1);
    o[6] = _mm512_extracti32x4_epi32(u1, 2);
    o[7] = _mm512_extracti32x4_epi32(u1, 3);
}

/* Channel m's 16 bytes to d + m * P, for all 8 channels. */
static inline void nnq_vnni_store8(uint8_t *d, int64_t P, __m512i u0, __m512i u1) {
    _mm_storeu_si128((__m128i *)d, _mm512_castsi512_si128(u0));
    _mm_storeu_si128((__m128i *)(d + P), _mm512_extracti32x4_epi32(u0, 1));
    _mm_storeu_si128((__m128i *)(d + 2 * P), _mm512_extracti32x4_epi32(u0, 2));
    _mm_storeu_si128((__m128i *)(d + 3 * P), _mm512_extracti32x4_epi32(u0, 3));
    _mm_storeu_si128((__m128i *)(d + 4 * P), _mm512_castsi512_si128(u1));
    _mm_storeu_si128((__m128i *)(d + 5 * P), _mm512_extracti32x4_epi32(u1, 1));
    _mm_storeu_si128((__m128i *)(d + 6 * P), _mm512_extracti32x4_epi32(u1, 2));
    _mm_storeu_si128((__m128i *)(d + 7 * P), _mm512_extracti32x4_epi32(u1, 3));
}

/* The first n (0..64) bytes of p, zeros after: a masked load, which never
 * touches the bytes it leaves out. */
static inline __m512i nnq_vnni_load_n(const uint8_t *p, int64_t n) {
    if (n >= 64) return _mm512_loadu_si512((const void *)p);
    return _mm512_maskz_loadu_epi8(n <= 0 ? 0 : (__mmask64)(~0ULL >> (64 - n)), p);
}

/* vnni-depthwise's small planes in registers (qkernels_vnni_depthwise.c),
 * also used by vnni-depthwise-direct: fit (stride 1, same size, planes of
 * 16, 32 or 64 bytes) and run, with c->w starting with the weights as
 * quads of taps, [channel][(kh kw + 3) / 4] int32, zeros past the last tap. */
bool nnq_vnni_dw_regs_fit(const nnq_qconv *c);
void nnq_vnni_dw_regs_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y);

#endif
