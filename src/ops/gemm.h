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

/* True if every value fits BLAS's 32-bit int arguments. */
bool nnq_blas_dims_fit(int count, const int64_t *dims);

#endif
