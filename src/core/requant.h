/* The requantization rule of nnq's integer engine: how an int32
 * accumulator becomes an output on the next layer's grid. Shared by the
 * engine's kernels (scalar and SIMD) and by the quantization simulation,
 * so the two compute the same integers.
 *
 * A real scale r = s_x * s_w / s_y (per output channel) is represented as
 *     r ~= mult * 2^-shift,  mult in [2^30, 2^31) (Q31, normalised), shift in [1, 62];
 * scales so small that shift would exceed 62 keep shift = 62 and a smaller
 * mult (0 for r = 0 or r < 2^-63). The relative error is at most 2^-31
 * while mult is normalised.
 *
 * THE RULE:  requant(acc) = (acc * mult + 2^(shift-1)) >> shift
 * computed in int64 with an arithmetic shift (a floor): acc * r rounded
 * to nearest, ties towards +inf ("round half up"). Then the kernels add
 * the output zero point and clamp:  y = clamp(y_zp + requant(acc), lo, hi).
 *
 * Why this form:
 *  - ONE rounding. acc * mult is exact (|acc| < 2^31, mult < 2^31, so
 *    |product| < 2^62, and adding 2^61 cannot overflow int64); the only
 *    rounding is the final shift. (gemmlowp rounds twice: a rounding
 *    doubling high multiply, then a rounding shift.)
 *  - Exact in int64 and a definition that fits in one line, so the
 *    simulation in float can reproduce it (it models acc * mult exactly
 *    and floors once), and every kernel gets identical integers.
 *  - SIMD-friendly: two 32x32->64 multiplies per 8 lanes (vpmuldq), a
 *    64-bit add and a 64-bit shift; the arithmetic shift that AVX2 lacks
 *    becomes a logical one on acc * mult + 2^62 + 2^(shift-1), which is
 *    never negative, minus 2^(62-shift) (engine/qkernels_avx2.h).
 *  - Round half up rather than half to even (nnq's rule for x / s in
 *    qmath.h): ties of acc * r are rare (r is a 31-bit dyadic), and
 *    half-to-even would need a second comparison per lane.
 * GCC defines >> on negative integers as an arithmetic shift, which the
 * rule relies on. */
#ifndef NNQ_CORE_REQUANT_H
#define NNQ_CORE_REQUANT_H

#include <math.h>
#include <stdint.h>

#include "core/status.h"

#define NNQ_REQUANT_SHIFT_MIN 1
#define NNQ_REQUANT_SHIFT_MAX 62

/* real_scale in [0, 2^30) -> (mult, shift). r = 0 gives mult 0 (the output
 * is then y_zp); NaN, negative or too large scales are NNQ_ERR_INVALID (and
 * give mult 0, shift 62). */
static inline nnq_status nnq_requant_make(double real_scale, int32_t *mult, int32_t *shift) {
    *mult = 0; /* defined outputs on failure too */
    *shift = NNQ_REQUANT_SHIFT_MAX;
    if (!(real_scale >= 0.0 && real_scale < 1073741824.0)) /* also rejects NaN */
        return nnq_fail(NNQ_ERR_INVALID, "requantization scale %g outside [0, 2^30)",
                        real_scale);
    if (real_scale == 0.0) return NNQ_OK;
    int e;
    const double f = frexp(real_scale, &e); /* real_scale = f * 2^e, f in [0.5, 1) */
    int64_t m = llround(ldexp(f, 31));      /* in [2^30, 2^31] */
    int s = 31 - e;
    if (m == ((int64_t)1 << 31)) { /* f rounded up to 1.0 */
        m >>= 1;
        s--;
    }
    if (s > NNQ_REQUANT_SHIFT_MAX) { /* r < 2^-32: denormalised mult, < 2^30 */
        m = llround(ldexp(real_scale, NNQ_REQUANT_SHIFT_MAX));
        s = NNQ_REQUANT_SHIFT_MAX;
    } else if (s < NNQ_REQUANT_SHIFT_MIN) { /* r just below 2^30 rounded to 2^30 */
        m = INT32_MAX;
        s = NNQ_REQUANT_SHIFT_MIN;
    }
    *mult = (int32_t)m;
    *shift = s;
    return NNQ_OK;
}

/* The rule: (acc * mult + 2^(shift-1)) >> shift, for mult in [0, 2^31),
 * shift in [1, 62]. The result needs int64 when mult * 2^-shift > 1. */
static inline int64_t nnq_requant_apply(int32_t acc, int32_t mult, int32_t shift) {
    return ((int64_t)acc * mult + ((int64_t)1 << (shift - 1))) >> shift;
}

#endif
