/* Internal: calling one node's op (shared by shape inference, constant
 * folding and the executor). */
#ifndef NNQ_OPS_NODE_CALL_H
#define NNQ_OPS_NODE_CALL_H

#include "ops/op.h"

#define NNQ_MAX_NODE_IO 64 /* inputs or outputs per node nnq accepts */

typedef struct nnq_node_call {
    const nnq_op_def *def;
    nnq_op_args args;
    const nnq_tensor *in[NNQ_MAX_NODE_IO];
    nnq_tensor *out[NNQ_MAX_NODE_IO];
} nnq_node_call;

/* Look up node n's op and check its arity; errors name the op and node. */
nnq_status nnq_node_resolve(const nnq_graph *g, int n, const nnq_op_def **def);

/* Fill call->args for node n from per-value tensors (vals[v]); omitted
 * optional inputs/outputs become NULL. */
nnq_status nnq_node_call_init(nnq_node_call *call, const nnq_graph *g, int n, nnq_tensor *vals,
                              int threads);

#endif
