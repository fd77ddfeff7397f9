/* Multidirectional (numpy-style) broadcasting: the output shape of two
 * operands, and a loop that runs an elementwise kernel over them.
 *
 * The loop merges adjacent dims that both operands walk contiguously (or
 * both skip), so (N,C,H,W) op (C,1,1) becomes N*C rows of H*W elements
 * against one scalar each, and same-shape operands become a single row.
 * Kernels see only the innermost row, with each operand's step 0 or 1. */
#ifndef NNQ_OPS_BROADCAST_H
#define NNQ_OPS_BROADCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/tensor.h"

/* Broadcast shapes a and b (right-aligned) into (*ry, dy). A dim of -1
 * (unknown) stays -1 unless the other side fixes it (a known dim > 1).
 * Returns false if two known dims differ and neither is 1. */
bool nnq_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db, int *ry,
                         int64_t *dy);

/* True if b broadcasts to a's shape without changing it (unidirectional
 * broadcasting, as PRelu's slope or Gemm's C). */
bool nnq_broadcast_to(int rb, const int64_t *db, int ra, const int64_t *da);

/* y[i] = f(a[i * a_step], b[i * b_step]) for i < n; steps are 0 or 1. */
typedef void (*nnq_bcast_kernel)(int64_t n, const void *a, int a_step, const void *b,
                                 int b_step, void *y, const void *ctx);

typedef struct nnq_bcast_loop {
    int rank;                /* merged dims, >= 1 */
    int64_t dims[NNQ_MAX_RANK];
    int64_t sa[NNQ_MAX_RANK]; /* element strides of a per merged dim; 0 = broadcast */
    int64_t sb[NNQ_MAX_RANK];
    int64_t numel;           /* elements of y */
} nnq_bcast_loop;

/* Plan the loop for y = f(a, b); a and b must broadcast to y's shape and
 * every dim must be known. */
void nnq_bcast_loop_init(nnq_bcast_loop *l, const nnq_tensor *y, const nnq_tensor *a,
                         const nnq_tensor *b);

/* Run kernel k over the whole of y; element sizes in bytes let a, b and y
 * have different dtypes. Splits y across `threads` OpenMP threads when it
 * is large enough to pay for them. */
void nnq_bcast_run(const nnq_bcast_loop *l, nnq_bcast_kernel k, const void *ctx, const void *a,
                   size_t a_esize, const void *b, size_t b_esize, void *y, size_t y_esize,
                   int threads);

/* ---- Gradients (training) ---- */

/* Contribution of one operand of y = f(a, b) to its gradient g:
 * c_i = h(dy[i], a[i * a_step], b[i * b_step]) for i < n, then
 * g_step 1: g[i] += c_i (operand not broadcast along this row);
 * g_step 0: g[0] += sum_i c_i (broadcast along it: reduce). */
typedef void (*nnq_bcast_grad_kernel)(int64_t n, const float *dy, const float *a, int a_step,
                                      const float *b, int b_step, float *g, int g_step,
                                      const void *ctx);

/* Accumulate the gradient of operand `wrt` (0: a, 1: b) of y = f(a, b)
 * into g (that operand's shape), summing over the dims it was broadcast
 * along. l is the loop planned for (y, a, b) by nnq_bcast_loop_init; dy
 * has y's shape; a and b are the forward operands (kernels read what they
 * need, so both must be valid). Threads own disjoint elements of g and
 * every element sums its terms in the same order whatever the thread
 * count, so results are deterministic. */
void nnq_bcast_grad_run(const nnq_bcast_loop *l, int wrt, nnq_bcast_grad_kernel k,
                        const void *ctx, const float *dy, const float *a, const float *b,
                        float *g, int threads);

/* g[i] += dy[i] for i < n (the backward of every op that only moves or
 * reshapes data), split across threads when large. */
void nnq_grad_accumulate(float *g, const float *dy, int64_t n, int threads);

/* Marks an elementwise loop as free of loop-carried dependences. GCC's
 * -O2 cost model only vectorises loops with a known trip count; this
 * lets runtime-length kernels vectorise too (nnq builds with OpenMP). */
#define NNQ_SIMD _Pragma("omp simd")
/* The same for a loop that sums into the float `s`. */
#define NNQ_SIMD_SUM _Pragma("omp simd reduction(+ : s)")

/* Elements below which elementwise ops stay on one thread. */
#define NNQ_PARALLEL_MIN_ELEMS ((int64_t)1 << 15)

#endif
