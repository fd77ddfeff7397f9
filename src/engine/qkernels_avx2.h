/* AVX2 building blocks shared by the qkernels_avx2_*.c files (compiled
 * with -mavx2 -mfma; include from those files only). */
#ifndef NNQ_ENGINE_QKERNELS_AVX2_H
#define NNQ_ENGINE_QKERNELS_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "engine/qkernel_impl.h"

/* One channel's output constants as vectors, made once per channel so the
 * requantization of every tile is plain register work. */
typedef struct nnq_avx2_rq {
    __m256i acc_lo, acc_hi, mult, rnd, zc;
    __m128i shift, lo, hi;
} nnq_avx2_rq;

static inline nnq_avx2_rq nnq_avx2_rq_make(const nnq_qout *q) {
    nnq_avx2_rq r;
    r.acc_lo = _mm256_set1_epi32(q->acc_lo);
    r.acc_hi = _mm256_set1_epi32(q->acc_hi);
    r.mult = _mm256_set1_epi32(q->mult);
    r.rnd = _mm256_set1_epi64x(q->rnd);
    r.zc = _mm256_set1_epi32(q->zc);
    r.shift = _mm_cvtsi32_si128(q->shift);
    r.lo = _mm_set1_epi8((char)q->lo);
    r.hi = _mm_set1_epi8((char)q->hi);
    return r;
}

/* nnq_requant_apply on 8 accumulators of one channel, plus y_zp, exactly:
 *   acc clamped to [acc_lo, acc_hi] (same y; the result then fits int32),
 *   v = acc * mult + 2^62 + 2^(shift-1), never negative as a uint64
 *       (|acc * mult| < 2^62), so a logical shift (AVX2 has no 64-bit
 *       arithmetic one) gives floor(v / 2^shift) = requant + 2^(62-shift),
 *   low 32 bits + (y_zp - 2^(62-shift)) mod 2^32 = y_zp + requant.
 * Even lanes and odd lanes go through vpmuldq separately. */
static inline __m256i nnq_avx2_requant(__m256i acc, const nnq_avx2_rq *r) {
    acc = _mm256_min_epi32(_mm256_max_epi32(acc, r->acc_lo), r->acc_hi);
    __m256i ev = _mm256_add_epi64(_mm256_mul_epi32(acc, r->mult), r->rnd);
    __m256i od = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc, 32), r->mult), r->rnd);
    ev = _mm256_srl_epi64(ev, r->shift);
    od = _mm256_slli_epi64(_mm256_srl_epi64(od, r->shift), 32);
    return _mm256_add_epi32(_mm256_blend_epi32(ev, od, 0xAA), r->zc);
}

/* 16 int32 (y_zp + requant) -> uint8 clamped to [lo, hi]: the saturating
 * packs clamp to [0, 255] first, which keeps the order. */
static inline __m128i nnq_avx2_pack16(__m256i a, __m256i b, const nnq_avx2_rq *r) {
    const __m128i s0 = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i s1 = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    return _mm_min_epu8(_mm_max_epu8(_mm_packus_epi16(s0, s1), r->lo), r->hi);
}

static inline int32_t nnq_avx2_ld32(const void *p) { /* unaligned, no aliasing issue */
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Store the first n (1..16) bytes of v. */
static inline void nnq_avx2_store_n(uint8_t *dst, __m128i v, int64_t n) {
    if (n >= 16) {
        _mm_storeu_si128((__m128i *)dst, v);
        return;
    }
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)dst, v);
        dst += 8;
        n -= 8;
        v = _mm_srli_si128(v, 8);
    }
    uint64_t rest = (uint64_t)_mm_cvtsi128_si64(v);
    for (int64_t i = 0; i < n; i++, rest >>= 8) dst[i] = (uint8_t)rest;
}

/* 16 bytes of nibbles (low first) -> 32 int8 in [-8, 7]. */
static inline __m256i nnq_avx2_unpack_nibbles(__m128i v) {
    const __m128i m = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
    const __m256i u = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(lo, hi)),
                                              _mm_unpackhi_epi8(lo, hi), 1);
    const __m256i eight = _mm256_set1_epi8(8);
    return _mm256_sub_epi8(_mm256_xor_si256(u, eight), eight);
}

/* n bytes of nibbles -> 2n int8. */
static inline void nnq_avx2_unpack_nibble_stream(int8_t *dst, const uint8_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + 2 * i),
                            nnq_avx2_unpack_nibbles(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) {
        dst[2 * i] = (int8_t)nnq_nibble_get(src + i, 0);
        dst[2 * i + 1] = (int8_t)nnq_nibble_get(src + i, 1);
    }
}

/* The zero-point padded input of a conv, split into stride_w column phases:
 * padded column c of padded row r goes to phase c % sw, row r, column c / sw
 * (pw columns per phase row, `phase` bytes per phase plane). Then the inputs
 * of consecutive output pixels under one tap are consecutive bytes, for any
 * stride. Writes the data region of one input plane; the caller fills the
 * borders with x_zp once. */
void nnq_avx2_fill_phases(const nnq_qconv *c, int64_t pw, size_t phase, const uint8_t *src,
                          uint8_t *buf);

/* Sum of the 8 int32 lanes. */
static inline int32_t nnq_avx2_hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Quads of K per int16 partial sum before widening in the vpmaddubsw
 * kernels: one vpmaddubsw pair is at most 2 * 255 * 2^(b-1) in magnitude,
 * so 2^(7-b) of them stay within int16 (b = 7: 1, b = 4: 8, b = 2: 32). */
static inline int nnq_avx2_maddubs_group(int bits) { return bits >= 7 ? 1 : 1 << (7 - bits); }

#endif
