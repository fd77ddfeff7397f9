/* Integer kernels of nnq's inference engine: convolution (GEMM-style and
 * depthwise) and fully connected, uint8 activations x int8 weights ->
 * int32 accumulators -> uint8 outputs. Design: docs/engine.md.
 *
 * Semantics (the reference kernels, qkernels_ref.c, define them; every
 * SIMD kernel equals them bit for bit):
 *   acc[o] = bias[o] + sum (x - x_zp) * w           exact int32
 *   y[o]   = clamp(y_zp + nnq_requant_apply(acc[o], mult[o], shift[o]), lo, hi[o])
 * with x uint8 (zero point x_zp), w int8 symmetric (zero point 0) within
 * the w_bits grid [-2^(b-1), 2^(b-1) - 1], and padded positions of a
 * convolution equal to x_zp (they contribute 0). The rule of
 * nnq_requant_apply is in core/requant.h.
 *
 * Lifecycle (XNNPACK's): create (validate, pack the weights, precompute
 * bias - x_zp * sum w and the requantization constants) -> reshape (input
 * size -> output size and scratch bytes) -> run (any number of times). The
 * kernel is chosen at create: the best the CPU runs, or NNQ_KERNELS
 * (engine/cpu.h), or an explicit name (nnq_qconv_create_kernel). */
#ifndef NNQ_ENGINE_QKERNELS_H
#define NNQ_ENGINE_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct nnq_qconv_desc {
    const char *name;                   /* for error messages (the node); may be NULL */
    int64_t in_ch, out_ch, groups;      /* groups == in_ch == out_ch: depthwise */
    int64_t kh, kw, stride_h, stride_w, dil_h, dil_w, pad_t, pad_l, pad_b, pad_r;
    int32_t x_zp, y_zp;                 /* in [0, 255] */
    int w_bits;                         /* 2..8; <= 4: stored as packed nibbles */
    const int8_t *weight;               /* [out_ch, in_ch/groups, kh, kw]; copied/packed */
    const int32_t *bias;                /* [out_ch] or NULL; copied */
    const int32_t *mult, *shift;        /* [out_ch]: mult in [0, 2^31), shift in [1, 62] */
    uint8_t lo, hi;                     /* output clamp (ReLU/ReLU6 folded) */
    const uint8_t *hi_ch;               /* [out_ch] or NULL: a per-channel upper clamp,
                                           applied with hi (the smaller wins) */
} nnq_qconv_desc;

typedef struct nnq_qconv nnq_qconv;

nnq_status nnq_qconv_create(const nnq_qconv_desc *d, nnq_qconv **out);
/* The same with a named kernel ("avx2-gemm-madd16", "ref-conv", ...; NULL:
 * automatic), for tests and benchmarks. Fails if the kernel does not fit the
 * descriptor or the CPU. */
nnq_status nnq_qconv_create_kernel(const nnq_qconv_desc *d, const char *kernel,
                                   nnq_qconv **out);
/* Output size and the scratch bytes run() needs for this input size (im2col
 * panels, padded planes, one slice per thread). Also fixes the number of
 * threads run() uses: omp_get_max_threads() now, or 1 for small work. */
nnq_status nnq_qconv_reshape(nnq_qconv *c, int64_t n, int64_t h, int64_t w, int64_t *oh,
                             int64_t *ow, size_t *scratch_bytes);
/* x [n, in_ch, h, w] -> y [n, out_ch, oh, ow] for the last reshape; scratch:
 * scratch_bytes writable bytes (any alignment; NULL if 0). Safe to call from
 * several threads at once with distinct scratch buffers. */
void nnq_qconv_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, void *scratch);
void nnq_qconv_destroy(nnq_qconv *c);
/* "vnni-gemm", "vnni-depthwise", "avx2-gemm-madd16", "avx2-gemm-maddubs",
 * "avx2-depthwise", "ref-conv", "ref-depthwise". */
const char *nnq_qconv_kernel_name(const nnq_qconv *c);
/* Bytes of the packed weights (nibbles for w_bits <= 4). */
size_t nnq_qconv_weight_bytes(const nnq_qconv *c);

/* Fully connected (Gemm with transB): x [n, k] uint8 -> y [n, m] uint8,
 * W [m, k], with the conv's accumulation and requantization. */
typedef struct nnq_qfc_desc {
    const char *name; /* for error messages; may be NULL */
    int64_t k, m;
    int32_t x_zp, y_zp;
    int w_bits;
    const int8_t *weight;        /* [m, k] */
    const int32_t *bias;         /* [m] or NULL */
    const int32_t *mult, *shift; /* [m]; may be NULL when only run_acc is used */
    uint8_t lo, hi;
} nnq_qfc_desc;

typedef struct nnq_qfc nnq_qfc;

nnq_status nnq_qfc_create(const nnq_qfc_desc *d, nnq_qfc **out);
/* kernel: "vnni-fc", "avx2-fc", "ref-fc" or NULL (automatic). */
nnq_status nnq_qfc_create_kernel(const nnq_qfc_desc *d, const char *kernel, nnq_qfc **out);
/* Needs mult and shift at create. No scratch; OpenMP over rows for large n. */
void nnq_qfc_run(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y);
/* The int32 accumulators (bias - x_zp * sum w included), no requantization:
 * for logits that are dequantized directly (acc * s_x * s_w). */
void nnq_qfc_run_acc(const nnq_qfc *f, int64_t n, const uint8_t *x, int32_t *acc);
void nnq_qfc_destroy(nnq_qfc *f);
const char *nnq_qfc_kernel_name(const nnq_qfc *f);

/* Layers with fewer multiply-adds than this run on one thread (reshape
 * decides; default 64 Ki, NNQ_QPARALLEL_MIN_MACS). Process-wide, for tests and tuning: set it before
 * creating or reshaping operators, not while they run. */
void nnq_qkernels_set_parallel_min(int64_t macs);
int64_t nnq_qkernels_parallel_min(void);

#endif
