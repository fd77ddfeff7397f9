/* Static statistics of a model: node counts per op type, parameter count
 * and multiply-accumulates per image. Shared by `nnq info` and the reports
 * of later stages (PTQ, QAT, engine) so every tool counts the same way. */
#ifndef NNQ_CLI_MODEL_STATS_H
#define NNQ_CLI_MODEL_STATS_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

typedef struct nnq_op_count {
    const char *op_type; /* points into the graph: valid while it lives */
    int count;
} nnq_op_count;

typedef struct nnq_model_stats {
    int n_nodes;
    int n_op_types;
    nnq_op_count *ops; /* most frequent first, ties by name */
    int64_t params;    /* nnq_graph_param_count */
    int64_t macs;      /* per image, shapes inferred at batch 1 */
} nnq_model_stats;

/* MACs of node n given every value's shape (nnq_graph_infer_shapes):
 *   Conv:         out elements * (C_in / group) * kernel area
 *   Gemm, MatMul: out elements * K   (M*N*K)
 *   others:       0 */
int64_t nnq_node_macs(const nnq_graph *g, int n, const nnq_tensor *shapes);

/* Total MACs of one image: the first dim of every graph input is set to 1,
 * other symbolic dims taken as 1. Nodes folded into constants by
 * nnq_graph_prepare are not counted (they never run). g must be prepared. */
nnq_status nnq_graph_macs(const nnq_graph *g, int64_t *out);

/* Everything above for a prepared graph; free with nnq_model_stats_free. */
nnq_status nnq_model_stats_compute(const nnq_graph *g, nnq_model_stats *out);
void nnq_model_stats_free(nnq_model_stats *s);

#endif
