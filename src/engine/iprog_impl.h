/* Internal: the integer program's data (shared by the lowering, the two
 * executors and the file format). Public API: engine/iprog.h.
 *
 * A program is a list of tensors and a list of operators in execution
 * order. Quantized tensors are stored as uint8 with a scale and a zero
 * point; an int8 grid is stored shifted by +128 (value and zero point),
 * which is exact, and converted back only at the graph's inputs/outputs. */
#ifndef NNQ_ENGINE_IPROG_IMPL_H
#define NNQ_ENGINE_IPROG_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/status.h"
#include "core/tensor.h"
#include "engine/iprog.h"
#include "ir/graph.h"

typedef struct ip_tensor {
    char *name;
    nnq_dtype dtype;      /* storage: NNQ_DT_UINT8, NNQ_DT_INT32 or NNQ_DT_FLOAT */
    nnq_dtype onnx_dtype; /* the graph's type (NNQ_DT_INT8 for a shifted int8 grid) */
    int rank;
    int64_t dims[NNQ_MAX_RANK]; /* at batch 1 (dims[0] == 1 when batched) */
    bool batched;               /* dims[0] is the batch */
    float scale;                /* uint8: the grid (0: a raw integer input, no grid) */
    int32_t zp;                 /* uint8: zero point in storage (+128 for int8 grids) */
    int alias;                  /* -1, or an earlier tensor whose bytes this one views */
} ip_tensor;

/* Operator kinds. Each file keeps its part of an operator in a table
 * indexed by kind: iops*.c (integer run), iprog_sim.c (float emulation),
 * iprog_io.c (file format). */
typedef enum ip_kind {
    IP_QUANTIZE = 0, /* float -> uint8 (graph input, or a float fallback's output) */
    IP_DEQUANTIZE,   /* uint8 -> float (logits, or a float fallback's input) */
    IP_LINEAR,       /* convolution / fully connected / matrix product */
    IP_ADD,          /* quantized add of two tensors */
    IP_CONCAT,       /* inputs requantized to the output grid */
    IP_REQUANT,      /* uint8 -> uint8 on another grid */
    IP_MAXPOOL,
    IP_AVGPOOL,      /* also GlobalAveragePool (window = the whole plane) */
    IP_LUT,          /* elementwise op as a 256-entry table (HardSwish, Sigmoid, ...) */
    IP_FLOAT,        /* a graph node run by its float op (not saved in .nnqi) */
    IP_N_KINDS
} ip_kind;

/* Quantize / dequantize: per tensor (n == 1) or along `axis` (n channels).
 * zp in storage (+128 for int8); qmin/qmax: the storage clamp. */
typedef struct ip_qparams {
    int axis;
    int64_t n;
    float *scale;   /* [n] */
    int32_t *zp;    /* [n] */
    int32_t qmin, qmax;
} ip_qparams;

typedef enum ip_out_mode {
    IP_OUT_U8 = 0,        /* requantized uint8 */
    IP_OUT_ACC_FLOAT = 1, /* float acc * deq[o] (logits dequantized directly) */
    IP_OUT_ACC_INT32 = 2  /* the int32 accumulator (ConvInteger, MatMulInteger) */
} ip_out_mode;

/* Convolution (x [N, C, H, W]) or fully connected (x [..., K] as rows). */
typedef struct ip_linear {
    bool conv;
    int64_t in_ch, out_ch, groups; /* fc: in_ch = K, out_ch = M, groups 1 */
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr; /* fc: 1 and 0 */
    int64_t nb;          /* weight sets: > 1 for a matrix product with a 3-D B (one per batch) */
    int w_bits;          /* 2..8: int8 weights on the kernels; 16: int16, reference path */
    int8_t *w8;          /* [nb][out_ch][K], w_bits <= 8 */
    int16_t *w16;        /* [nb][out_ch][K] = w - w_zp, w_bits == 16 */
    int32_t *bias;       /* [out_ch] or NULL; scale s_x s_w, x_zp NOT folded */
    int32_t x_zp;        /* storage */
    ip_out_mode out_mode;
    int32_t *mult, *shift; /* [out_ch] (IP_OUT_U8) */
    int32_t y_zp;
    uint8_t lo, hi;
    uint8_t *hi_ch;      /* [out_ch] or NULL */
    float *deq;          /* [out_ch] (IP_OUT_ACC_FLOAT) */
} ip_linear;

/* y = clamp(zy + ((a - za) ma + (b - zb) mb + 2^(shift-1)) >> shift, lo, hi):
 * one rounding, half up. ma, mb <= 2^21 and shift <= 30 keep every term
 * within int32 (|a - za| <= 255), so it vectorises. */
#define IP_ADD_MULT_MAX (1 << 21)
#define IP_ADD_SHIFT_MAX 30
typedef struct ip_add {
    int32_t za, zb, zy;
    int64_t ma, mb;
    int32_t shift;
    uint8_t lo, hi;
} ip_add;

/* One input's rescale: requant(x - z_in, mult, shift) (core/requant.h). */
typedef struct ip_rescale {
    int32_t z_in, mult, shift;
} ip_rescale;

/* Concat (n inputs along axis) and requantize (n == 1):
 * y = clamp(zy + requant(x - z_in), lo, hi). */
typedef struct ip_requant {
    int axis;
    int n;
    ip_rescale *r; /* [n] */
    int32_t zy;
    uint8_t lo, hi;
} ip_requant;

/* Max / average pool over a 2-D window (x [N, C, H, W]). Average: the sum
 * of (x - zx) over the window's n counted taps; same grid in and out:
 * zy + floor((2 sum + n) / (2 n)) (exact, half up); else
 * zy + requant(sum, mult[n], shift[n]) with mult/shift for s_x / (n s_y). */
typedef struct ip_pool {
    bool global;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    bool include_pad;
    int32_t zx, zy;
    bool same_grid;
    int64_t taps;          /* kh * kw: mult/shift have taps + 1 entries */
    int32_t *mult, *shift; /* average, !same_grid */
    uint8_t lo, hi;
} ip_pool;

typedef struct ip_lut {
    uint8_t table[256];
} ip_lut;

/* A node of the program's copy of the graph, run by its float op; each
 * node input maps to a tensor, or -1 for a constant or omitted input. */
typedef struct ip_float {
    int node;
} ip_float;

typedef struct ip_op {
    ip_kind kind;
    char *name;  /* the graph node it comes from */
    int n_in;
    int *in;     /* tensor indices; -1: none (IP_FLOAT: constant) */
    int n_out;
    int *out;
    void *par;   /* ip_linear, ip_add, ip_requant, ip_pool, ip_lut, ip_qparams, ip_float */
} ip_op;

struct nnq_iprog {
    int n_tensors, cap_tensors;
    ip_tensor *t;
    int n_ops, cap_ops;
    ip_op *ops;
    int n_inputs, n_outputs;
    int *inputs, *outputs; /* tensor indices */
    nnq_graph *g;          /* copy of the source graph for IP_FLOAT nodes; NULL if none */
    int n_notes;
    char **notes;
};

/* ---- building (iprog.c) ---- */
nnq_status ip_add_tensor(nnq_iprog *p, const char *name, nnq_dtype dtype, int *out);
nnq_status ip_add_op(nnq_iprog *p, ip_kind kind, const char *name, int n_in, const int *in,
                     int n_out, const int *out, void *par, int *index);
nnq_status ip_note(nnq_iprog *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ip_par_free(ip_kind kind, void *par);
/* K of a linear operator (in_ch / groups * kh * kw). */
int64_t ip_linear_k(const ip_linear *l);
/* The base tensor whose bytes t uses (t itself unless an alias). */
int ip_base(const nnq_iprog *p, int t);
const char *ip_kind_name(ip_kind k);
/* Structural checks shared by the lowering and the file reader: indices,
 * order, shapes, parameter ranges. */
nnq_status ip_validate(const nnq_iprog *p);

/* ---- integer arithmetic shared by the two executors ---- */

/* The requantization rule for a 64-bit accumulator (the reference path). */
static inline int64_t ip_requant64(int64_t acc, int32_t mult, int32_t shift) {
    return (int64_t)(((__int128)acc * mult + ((__int128)1 << (shift - 1))) >> shift);
}

static inline uint8_t ip_clamp_u8(int64_t v, uint8_t lo, uint8_t hi) {
    return (uint8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* ---- per-kind run tables (iops*.c, iprog_sim.c) ---- */

/* Run-time view of one operator. */
typedef struct ip_call {
    const nnq_iprog *p;
    const ip_op *op;
    int index;                 /* op index */
    nnq_tensor *const *in;     /* [op->n_in], NULL where op->in[i] < 0 */
    nnq_tensor *const *out;    /* [op->n_out] */
    void *state;               /* the kind's per-executor state */
    void *scratch;
    size_t scratch_bytes;
    int threads;
} ip_call;

typedef struct ip_impl {
    /* create the executor's state for op (may be NULL: none). */
    nnq_status (*create)(const nnq_iprog *p, const ip_op *op, void **state);
    /* scratch bytes for the current shapes (c->in / c->out shaped). */
    nnq_status (*reshape)(ip_call *c, size_t *scratch);
    nnq_status (*run)(ip_call *c);
    void (*destroy)(void *state);
} ip_impl;

extern const ip_impl *const ip_int_impls[IP_N_KINDS];  /* iops.c */
extern const ip_impl *const ip_sim_impls[IP_N_KINDS];  /* iprog_sim.c */

/* The linear operator on the kernels (iops_linear.c) and the float
 * fallback (iops_float.c, shared by both executors). */
extern const ip_impl ip_int_linear_impl;
extern const ip_impl ip_float_impl;

/* Linear operators the simulation computes in double (iprog_sim.c). */
int ip_sim_double_layers(void *const *state, const nnq_iprog *p);

/* AVX2 elementwise loops (iops_avx2.c), equal to the scalar ones. */
/* xtab: 256 bytes from ip_lut_xor_rows(table) (iops.c). */
void ip_lut_xor_rows(const uint8_t *table, uint8_t *xtab);
void ip_lut_avx2(const uint8_t *xtab, const uint8_t *table, const uint8_t *x, uint8_t *y,
                 int64_t n);
void ip_add_avx2(const ip_add *a, const uint8_t *x1, const uint8_t *x2, uint8_t *y, int64_t n);
/* y = nnq_quantize_i(x, s, z, qmin, qmax) for 0 <= qmin <= z <= qmax <= 255. */
void ip_quantize_avx2(const float *x, uint8_t *y, int64_t n, float s, int32_t z, int32_t qmin,
                      int32_t qmax);

/* Elements for which an elementwise loop goes parallel. */
#define IP_PARALLEL_MIN 65536

#endif
