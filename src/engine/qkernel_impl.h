/* Internals shared by the engine's kernels (not a public header): the
 * per-channel output constants, weight storage, the operator structs and
 * their kernel tables. */
#ifndef NNQ_ENGINE_QKERNEL_IMPL_H
#define NNQ_ENGINE_QKERNEL_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

#include "core/requant.h"
#include "engine/cpu.h"
#include "engine/qkernels.h"

/* Alignment of packed weights and of each thread's scratch slice. */
#define NNQ_QALIGN 64
/* Below this many multiply-adds a parallel region costs more than it saves
 * (the default; nnq_qkernels_set_parallel_min changes it): 64 Ki MACs is
 * ~1 us at the VNNI GEMM kernels' 40-50 MACs/cycle, about what a fork and
 * join of spinning OpenMP threads costs. Threading small layers pays since
 * each thread takes its own pixels (rows) and so packs or copies only its
 * part of the input: at batch 1 on two threads, `nnq bench --batch 1
 * --threads 2` on W8A8 resnet20 / mobilenetv2 ran 3500 / 2300 images/s
 * with the old 8 M threshold (one thread for most layers), 4950-5500 /
 * 2460-2690 with 0-512 Ki (docs/engine.md). */
#define NNQ_QPARALLEL_MIN_MACS ((int64_t)1 << 16)

/* One output channel: y = clamp(y_zp + requant(acc), lo, hi). */
typedef struct nnq_qout {
    int32_t mult, shift, y_zp;
    /* SIMD form. acc clamped to [acc_lo, acc_hi] gives the same y and keeps
     * requant(acc) within int32, so its low 32 bits are the value. */
    int32_t acc_lo, acc_hi;
    int32_t zc;  /* y_zp - 2^(62 - shift), modulo 2^32 */
    int64_t rnd; /* 2^62 + 2^(shift - 1): keeps the shifted sum non-negative */
    uint8_t lo, hi;
} nnq_qout;

/* The reference output rule. */
static inline uint8_t nnq_qout_apply(const nnq_qout *q, int32_t acc) {
    const int64_t v = q->y_zp + nnq_requant_apply(acc, q->mult, q->shift);
    return (uint8_t)(v < q->lo ? q->lo : (v > q->hi ? q->hi : v));
}

/* Validate mult/shift/clamps of m channels and fill out[m]. hi_ch may be NULL. */
nnq_status nnq_qout_prepare(const char *who, int64_t m, const int32_t *mult,
                            const int32_t *shift, int32_t y_zp, uint8_t lo, uint8_t hi,
                            const uint8_t *hi_ch, nnq_qout *out);

/* Check w [m, k] against the bits grid, fill bias_out[m] = bias - x_zp * sum w
 * (bias may be NULL) and check that every accumulator bias' + sum x * w,
 * x in [0, 255], and every partial sum of it, fits int32. */
nnq_status nnq_qweights_prepare(const char *who, const int8_t *w, int64_t m, int64_t k,
                                int bits, const int32_t *bias, int32_t x_zp,
                                int32_t *bias_out);

/* Two weights per byte, low nibble first (weights in [-8, 7]). */
static inline uint8_t nnq_nibble_pair(int lo, int hi) {
    return (uint8_t)((unsigned)(lo & 15) | ((unsigned)(hi & 15) << 4));
}
static inline int32_t nnq_nibble_get(const uint8_t *p, int64_t i) {
    const unsigned b = p[i >> 1];
    const unsigned v = (i & 1) ? b >> 4 : b & 15u;
    return (int32_t)(v ^ 8u) - 8;
}

/* Row storage (reference kernels, depthwise): m rows of k weights, int8, or
 * nibbles for bits <= 4 with each row starting on a byte. */
size_t nnq_qrows_stride(int64_t k, int bits);
void nnq_qrows_pack(uint8_t *dst, const int8_t *w, int64_t m, int64_t k, int bits);
static inline int32_t nnq_qrows_get(const uint8_t *row, int64_t i, int bits) {
    return bits <= 4 ? nnq_nibble_get(row, i) : ((const int8_t *)row)[i];
}

void *nnq_qalloc(size_t bytes); /* NNQ_QALIGN-aligned, zeroed; NULL on failure */

/* ---- convolution ---- */

typedef struct nnq_qconv_kernel nnq_qconv_kernel;

struct nnq_qconv {
    int64_t in_ch, out_ch, groups, cg, og; /* cg, og: channels per group */
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int64_t K; /* cg * kh * kw: the GEMM depth */
    int32_t x_zp;
    int w_bits;
    int32_t *bias; /* [out_ch]: bias - x_zp * sum w */
    nnq_qout *out; /* [out_ch] */
    uint8_t *w;    /* packed weights, in the kernel's layout */
    size_t w_bytes;
    const nnq_qconv_kernel *kern;
    /* Set by reshape. */
    int64_t n, h, wd, oh, ow;
    int threads;
    size_t thread_bytes; /* scratch per thread, a multiple of NNQ_QALIGN */
    int64_t plan[4];     /* kernel-specific blocking */
};

struct nnq_qconv_kernel {
    const char *name;
    nnq_isa isa;
    bool (*fits)(const nnq_qconv *c);
    /* w [out_ch, K] -> c->w, c->w_bytes */
    nnq_status (*pack)(nnq_qconv *c, const int8_t *w);
    /* For the shape and threads set by reshape: c->thread_bytes, c->plan. */
    void (*plan)(nnq_qconv *c);
    /* scratch: c->threads slices of c->thread_bytes, aligned. */
    void (*run)(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch);
};

/* Row storage of the conv weights, for kernels that use it. */
nnq_status nnq_qconv_pack_rows(nnq_qconv *c, const int8_t *w);

#define NNQ_QCONV_KERNEL(sym) extern const nnq_qconv_kernel sym;
#include "engine/qconv_kernels.inc"
#undef NNQ_QCONV_KERNEL

/* ---- fully connected ---- */

typedef struct nnq_qfc_kernel nnq_qfc_kernel;

struct nnq_qfc {
    int64_t k, m;
    int32_t x_zp;
    int w_bits;
    int32_t *bias; /* [m]: bias - x_zp * sum w */
    nnq_qout *out; /* [m], or NULL without mult/shift */
    uint8_t *w;
    size_t w_bytes;
    const nnq_qfc_kernel *kern;
};

struct nnq_qfc_kernel {
    const char *name;
    nnq_isa isa;
    nnq_status (*pack)(nnq_qfc *f, const int8_t *w);
    /* rows [0, n) of x; exactly one of y (requantized) and acc is non-NULL. */
    void (*run)(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y, int32_t *acc);
};

/* Threads for n rows: one below nnq_qkernels_parallel_min(), where forking costs
 * more than it saves. */
static inline int nnq_qfc_threads(const nnq_qfc *f, int64_t n) {
    return (double)n * (double)f->m * (double)f->k < (double)nnq_qkernels_parallel_min()
               ? 1
               : omp_get_max_threads();
}

/* Stores outputs [o0, o0 + rows) of row i from the dot products d: the bias
 * added, then requantized into y or kept in acc. The add wraps: the sum
 * fits int32 (checked at create), the partial dot product alone might not. */
static inline void nnq_qfc_store(const nnq_qfc *f, int64_t i, int64_t o0, int rows,
                                 const int32_t *d, uint8_t *y, int32_t *acc) {
    for (int64_t r = 0; r < rows && o0 + r < f->m; r++) {
        const int32_t a = (int32_t)((uint32_t)d[r] + (uint32_t)f->bias[o0 + r]);
        if (y) y[i * f->m + o0 + r] = nnq_qout_apply(&f->out[o0 + r], a);
        else acc[i * f->m + o0 + r] = a;
    }
}

extern const nnq_qfc_kernel nnq_qfc_ref;
extern const nnq_qfc_kernel nnq_qfc_avx2;
extern const nnq_qfc_kernel nnq_qfc_vnni;

#endif
