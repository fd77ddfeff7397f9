/* The op interface. Every op is one nnq_op_def in one table (op_list.inc):
 * shape inference, optional scratch size, forward. Later issues add the
 * backward pass and the integer lowering to the same struct.
 *
 * The same nnq_op_args is used for inference and execution:
 *   infer:   in[i] carry dtype+shape (data only if the input is constant);
 *            infer fills out[i] dtype+shape.
 *   forward: in[i] and out[i] have data, out[i] already shaped by infer. */
#ifndef NNQ_OPS_OP_H
#define NNQ_OPS_OP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

typedef struct nnq_op_args {
    const nnq_graph *graph;
    const nnq_node *node;
    int opset;                   /* default-domain opset of the model */
    int n_in;
    const nnq_tensor *const *in; /* in[i] NULL for an omitted optional input */
    int n_out;
    nnq_tensor *const *out;      /* out[i] NULL for an omitted optional output */
    int threads;                 /* threads this op may use (OpenMP) */
    void *scratch;               /* scratch_size() bytes, 64-byte aligned */
    size_t scratch_bytes;
    /* Training (issue 3). In a training forward, ops with batch statistics
     * (BatchNormalization) use them and update their running statistics in
     * place (in[3], in[4] point at the trainer's mutable parameters). */
    bool training;
    void *saved;                 /* saved_size() bytes kept from forward to backward */
    size_t saved_bytes;
    /* Backward: out_grad[i] = dL/d out[i] (NULL if out[i] does not reach the
     * loss); in_grad[i] = dL/d in[i] buffer to ACCUMULATE into (+=), NULL
     * when that gradient is not needed (e.g. constant inputs). */
    const nnq_tensor *const *out_grad;
    nnq_tensor *const *in_grad;
    /* Inference only (Conv): an activation the executor fused into this op,
     * applied to each output as it is written so the separate pass over Y
     * disappears. clamp: Clip's min(max(y, clamp_lo), clamp_hi), NaN kept;
     * clamp_relu: Relu's y > 0 ? y : 0 instead. Each form matches its
     * unfused op bit for bit. */
    bool clamp, clamp_relu;
    float clamp_lo, clamp_hi;
} nnq_op_args;

typedef nnq_status (*nnq_op_infer_fn)(const nnq_op_args *a);
typedef size_t (*nnq_op_scratch_fn)(const nnq_op_args *a);
typedef nnq_status (*nnq_op_forward_fn)(const nnq_op_args *a);
typedef size_t (*nnq_op_saved_fn)(const nnq_op_args *a);
typedef nnq_status (*nnq_op_backward_fn)(const nnq_op_args *a);

/* nnq's own ops (FakeQuant) live in this domain, so a model using them
 * says so and other runtimes reject it by name instead of misreading it. */
#define NNQ_DOMAIN "com.nnq"

typedef struct nnq_op_def {
    const char *op_type;
    const char *domain; /* NULL: the default ONNX domain; else e.g. NNQ_DOMAIN */
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    nnq_op_infer_fn infer;
    nnq_op_scratch_fn scratch_size; /* NULL: no scratch */
    nnq_op_forward_fn forward;
    /* Training: bytes a training forward keeps for backward (NULL: none),
     * and the backward pass (NULL: op not differentiable in nnq). */
    nnq_op_saved_fn saved_size;
    nnq_op_backward_fn backward;
} nnq_op_def;

/* Lookup by op type in the default domain; NULL if unsupported. */
const nnq_op_def *nnq_op_find(const char *op_type);
/* Lookup by domain and op type; NULL, "" and "ai.onnx" all name the
 * default domain. NULL if unsupported. */
const nnq_op_def *nnq_op_find_in(const char *domain, const char *op_type);
/* All registered ops, for listings and tests. */
int nnq_op_count(void);
const nnq_op_def *nnq_op_at(int i);

/* Failure helper: message prefixed with "<OpType> node '<name>': ". */
nnq_status nnq_op_fail(const nnq_op_args *a, nnq_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Backward helpers: the float buffer of in_grad[i] (NULL when absent or
 * not wanted) and of out_grad[0] (NULL when the output does not reach the
 * loss), each checked against its tensor's element count and dtype. */
nnq_status nnq_op_in_grad(const nnq_op_args *a, int i, float **out);
nnq_status nnq_op_out_grad(const nnq_op_args *a, const float **out);

/* Declarations of every op's def, generated from the list. */
#define NNQ_OP(name) extern const nnq_op_def nnq_op_##name;
#include "ops/op_list.inc"
#undef NNQ_OP

#endif
