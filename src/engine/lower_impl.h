/* Internal: the lowering's state, shared by lower*.c.
 *
 * The lowering walks the sorted graph once. Every graph value gets a state
 * (what the program holds for it); each node is handled by the entry of
 * its op type in a table (lower.c). A handler either emits integer
 * operators, or answers LW_FLOAT with a reason, and the node then runs in
 * float (dequantize -> float op -> quantize), named in a note. */
#ifndef NNQ_ENGINE_LOWER_IMPL_H
#define NNQ_ENGINE_LOWER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/iprog_impl.h"
#include "ir/graph.h"

typedef enum lv_kind {
    LV_NONE = 0, /* not computed by the program (an intermediate inside a pattern) */
    LV_CONST,    /* a constant of the graph (initializer or folded) */
    LV_FLOAT,    /* a float tensor t */
    LV_QINT,     /* the integers of a QuantizeLinear (or an integer input): uint8 tensor t */
    LV_DEQ,      /* a DequantizeLinear's value s (q - z): uint8 tensor t with its grid */
    LV_INT32     /* int32 tensor t (ConvInteger / MatMulInteger) */
} lv_kind;

typedef struct lv {
    lv_kind kind;
    int t;
    int fl; /* LV_DEQ: the dequantized float tensor once a float op needed it, else -1 */
} lv;

typedef struct lower_ctx {
    const nnq_graph *g;
    nnq_iprog *p;
    lv *v;          /* [n_values] */
    nnq_tensor *s1; /* [n_values] shapes at batch 1 */
    nnq_tensor *s2; /* [n_values] shapes at batch 2 (== s1 for fixed-size inputs) */
    bool *done;     /* [n_nodes] consumed by a pattern of an earlier node */
    int *nread;     /* [n_values] readers (node input slots; a graph output counts one) */
    int *reader;    /* [n_values] one reading node, -1 if none */
    char why[512];  /* LW_FLOAT: the reason */
    nnq_status err; /* LW_ERROR: the status */
} lower_ctx;

typedef enum lw_result {
    LW_DONE = 0, /* integer operators emitted */
    LW_FLOAT,    /* run this node in float; L->why says why */
    LW_ERROR     /* failed (nnq_fail set) */
} lw_result;

typedef lw_result (*lw_handler)(lower_ctx *L, int node);

/* Set L->why and return LW_FLOAT. */
lw_result lw_float(lower_ctx *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record status s (message already set) and return LW_ERROR; LW_DONE for
 * NNQ_OK. */
lw_result lw_err(lower_ctx *L, nnq_status s);

/* Propagate a failing status out of a handler. */
#define LW_TRY(L, expr)                                                        \
    do {                                                                       \
        nnq_status lw_s_ = (expr);                                             \
        if (lw_s_ != NNQ_OK) return lw_err((L), lw_s_);                        \
    } while (0)

/* Constant data of value v (initializer or folded), else NULL. */
const nnq_tensor *lw_const(const lower_ctx *L, int v);
/* A float scalar constant (numel 1) into *out. */
bool lw_const_scalar(const lower_ctx *L, int v, double *out);
/* Readers of v, counting a graph output as one more. */
int lw_readers(const lower_ctx *L, int v);
/* The one node reading v (v no graph output), else -1. */
int lw_only_reader(const lower_ctx *L, int v);

/* Constant DequantizeLinear producing v: its integers, scales, zero
 * points (NULL: 0) and axis (normalised; -1 per tensor). */
typedef struct lw_cdq {
    const nnq_tensor *q, *scale, *zp;
    int axis;
    int64_t n; /* scale elements */
} lw_cdq;
bool lw_const_dq(const lower_ctx *L, int v, lw_cdq *out);

/* A per-tensor grid given by constant scale / zero point values (zp may be
 * -1): scale, storage zero point (+128 for int8), ONNX dtype. */
typedef struct lw_grid {
    float scale;
    int32_t zp;      /* storage */
    int32_t shift;   /* 128 for int8, else 0 */
    nnq_dtype dtype; /* NNQ_DT_UINT8 or NNQ_DT_INT8 */
} lw_grid;
/* False (with L->why) if not a constant per-tensor grid. */
bool lw_grid_of(lower_ctx *L, int scale_v, int zp_v, lw_grid *out);
/* Quantize x on grid g (nnq's rule), in storage. */
int32_t lw_quantize(const lw_grid *g, double x);

/* The activation chain after a layer: Relu / Clip / Min / Max with
 * constant bounds, each value read only by the next node, ending at a
 * per-tensor QuantizeLinear. Folded into an output clamp exactly, because
 * quantization is monotone: Q(clamp(x, a, b)) = clamp(Q(x), Q(a), Q(b)). */
#define LW_CHAIN_MAX 8
typedef struct lw_chain {
    int n;                     /* chain nodes (without the Q) */
    int nodes[LW_CHAIN_MAX];
    int q;                     /* the QuantizeLinear node */
    lw_grid grid;              /* its grid */
    uint8_t lo, hi;            /* the clamp in storage */
    uint8_t *hi_ch;            /* [channels] per-channel upper clamp, or NULL (owned) */
} lw_chain;
/* Follow the chain from value v; channels: the output channel count for a
 * per-channel Min (0: only scalar bounds), ch_axis: the channel's dim in
 * v (1 for NCHW, rank-1 for a matrix product). False (L->why set) when
 * there is no such chain; true and the chain otherwise (free hi_ch). */
bool lw_chain_find(lower_ctx *L, int v, int64_t channels, int ch_axis, lw_chain *c);
/* The same with clamp node `node` (reading v) as the chain's first
 * element, scalar bounds only. */
bool lw_chain_from(lower_ctx *L, int node, int v, lw_chain *c);
/* Mark the chain and its Q consumed. */
void lw_chain_consume(lower_ctx *L, const lw_chain *c);

/* Program tensors for graph values (shape from the inference). */
nnq_status lw_new_tensor(lower_ctx *L, int v, nnq_dtype dtype, int *t);
/* A uint8 tensor for value v holding grid g. */
nnq_status lw_new_u8(lower_ctx *L, int v, const lw_grid *g, int *t);
/* The float tensor for value v (dequantizing a LV_DEQ value once). */
nnq_status lw_float_of(lower_ctx *L, int v, int *t);

/* Handlers (lower_linear.c, lower_ops.c). */
lw_result lw_linear(lower_ctx *L, int node);     /* Conv, Gemm, MatMul on DQ inputs */
lw_result lw_qoperator(lower_ctx *L, int node);  /* QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger */
lw_result lw_add(lower_ctx *L, int node);
lw_result lw_concat(lower_ctx *L, int node);
lw_result lw_maxpool(lower_ctx *L, int node);
lw_result lw_avgpool(lower_ctx *L, int node);    /* AveragePool, GlobalAveragePool */
lw_result lw_view(lower_ctx *L, int node);       /* Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout */
lw_result lw_lut(lower_ctx *L, int node);        /* elementwise ops on one quantized input */
lw_result lw_quantize_node(lower_ctx *L, int node);
/* A float value clamped (Relu / Clip / Min / Max) and then quantized: one
 * quantize operator with the clamp as its grid's ends (lower.c). */
lw_result lw_clamp_quantize(lower_ctx *L, int node, int x);
lw_result lw_dequantize_node(lower_ctx *L, int node);

/* Shapes of the QOperator ops, which nnq's float ops do not know. */
nnq_status lw_qoperator_infer(const nnq_graph *g, int node, nnq_tensor *shapes);
bool lw_is_qoperator(const char *op_type);

#endif
