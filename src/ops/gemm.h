/* The one place nnq calls BLAS: a row-major SGEMM shared by Gemm, MatMul
 * and Conv, which keeps OpenBLAS's thread count in step with the op's. */
#ifndef NNQ_OPS_GEMM_H
#define NNQ_OPS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* c[m,n] = alpha * op(a)[m,k] * op(b)[k,n] + beta * c  (row-major; lda,
 * ldb, ldc are row strides of a, b, c as stored). Inside an OpenMP
 * parallel region it runs on the calling thread only; outside it uses
 * `threads` threads. k == 0 just scales c by beta. */
void nnq_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc, int threads);

/* "Tap GEMMs": products whose rows of B are shifted views of image planes,
 * the implicit-GEMM form of a stride-1 convolution over a zero-padded
 * input with its rows laid end to end (no im2col matrix, no packing).
 * Row k = c * taps + t of B is x + c * plane + off[t], read over columns
 * [0, n). Own kernels, not BLAS: register tiles written with GCC vector
 * extensions, for AVX-512, AVX2+FMA or the baseline ISA, picked at run time.
 *
 * Reads run up to NNQ_TAP_OVERRUN floats past column n - 1 of every row
 * of B: x must be readable (any finite values) that far past its last
 * row. Results for columns >= n are not written. */
#define NNQ_TAP_OVERRUN 64

/* Forward form: y[i, j] (+)= sum_{c, t} a[i, c * taps + t] * x[c * plane + off[t] + j]
 * for i < m, j < n (y row stride ldy, a row stride lda; accumulate adds to y). */
void nnq_tap_gemm(int m, int64_t n, int chans, int taps, const float *a, int64_t lda,
                  const float *x, int64_t plane, const int64_t *off, float *y, int64_t ldy,
                  bool accumulate);

/* Weight-gradient form: dw[i, c * taps + t] += sum_{j < n} dy[i, j] * x[c * plane + off[t] + j].
 * Each dy row (stride lddy) must hold zeros from n up to n rounded up to
 * a multiple of NNQ_TAP_GRAD_ALIGN. */
#define NNQ_TAP_GRAD_ALIGN 16
void nnq_tap_gemm_grad(int m, int64_t n, int chans, int taps, const float *dy, int64_t lddy,
                       const float *x, int64_t plane, const int64_t *off, float *dw,
                       int64_t lddw);

/* For tests: use the tap kernels for at most this ISA ("avx512", "avx2"
 * or "generic") from now on; false (and no change) if the CPU lacks it. */
bool nnq_tap_limit_isa(const char *isa);

/* True if every value fits BLAS's 32-bit int arguments. */
bool nnq_blas_dims_fit(int count, const int64_t *dims);

#endif
