/* The arithmetic of one quantizer (s, z, b), shared by the QuantizeLinear /
 * DequantizeLinear / FakeQuant ops, the quantization passes and (later) the
 * integer engine, so every stage rounds the same way.
 *
 * nnq's rounding rule, everywhere: ROUND HALF TO EVEN, applied to x / s
 * (a division, not a multiplication by 1/s), exactly as ONNX QuantizeLinear
 * and ONNX Runtime do:
 *     q     = clamp(round_half_even(x / s) + z, qmin, qmax)
 *     x_hat = s * (q - z)
 * NaN inputs quantize to z (they represent 0.0): a defined result instead
 * of an undefined float→int conversion. ±Inf saturate to qmin / qmax. */
#ifndef NNQ_CORE_QMATH_H
#define NNQ_CORE_QMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#define NNQ_QBITS_MIN 2
#define NNQ_QBITS_MAX 16

/* Integer grid of a b-bit quantizer: signed [-2^(b-1), 2^(b-1)-1],
 * unsigned [0, 2^b-1]. narrow drops the most negative signed value
 * (symmetric [-127, 127] for 8 bits). */
static inline void nnq_qgrid(int bits, bool is_signed, bool narrow, int32_t *qmin,
                             int32_t *qmax) {
    if (is_signed) {
        *qmin = -(int32_t)(1u << (bits - 1)) + (narrow ? 1 : 0);
        *qmax = (int32_t)(1u << (bits - 1)) - 1;
    } else {
        *qmin = 0;
        *qmax = (int32_t)((1u << bits) - 1);
    }
}

/* Round half to even for |v| < 2^22, without depending on the FPU's
 * rounding mode or on libm being inlined: adding 1.5 * 2^23 pushes the
 * fraction out of the mantissa, and IEEE addition rounds half to even.
 * Callers clamp v to the (small) quantization grid first. */
static inline float nnq_round_half_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    /* Never build nnq with -ffast-math: it would fold this to v. */
    float t = v + magic;
    return t - magic;
}

/* A bias on its 32-bit grid of step s (s_x s_w): round(x / s) in double,
 * half to even, saturated to int32; NaN gives 0. Returned as a double
 * holding the integer. */
static inline double nnq_quantize_bias(double x, double s) {
    double v = nearbyint(x / s);
    if (v != v) return 0.0;
    return v < (double)INT32_MIN ? (double)INT32_MIN : (v > (double)INT32_MAX ? (double)INT32_MAX : v);
}

/* x / s rounded and offset by z, clamped to [qmin, qmax], as a float
 * holding an integer (exact for any 2..16-bit grid). */
static inline float nnq_quantize_f(float x, float s, float z, float qmin, float qmax) {
    float v = x / s;
    if (v != v) return z; /* NaN */
    /* Clamp before rounding so the magic-number rounding stays in range;
     * one step beyond the grid still saturates to the same end. */
    const float lo = qmin - z - 1.0f, hi = qmax - z + 1.0f;
    v = v < lo ? lo : (v > hi ? hi : v);
    float q = nnq_round_half_even(v) + z;
    return q < qmin ? qmin : (q > qmax ? qmax : q);
}

static inline int32_t nnq_quantize_i(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    return (int32_t)nnq_quantize_f(x, s, (float)z, (float)qmin, (float)qmax);
}

static inline float nnq_dequantize_f(float q, float s, float z) { return s * (q - z); }

/* Quantize-dequantize (fake quantization) of one value. */
static inline float nnq_fake_quant_f(float x, float s, float z, float qmin, float qmax) {
    return nnq_dequantize_f(nnq_quantize_f(x, s, z, qmin, qmax), s, z);
}

#endif
