/* Op counts, parameters and MACs of a graph. */
#include "cli/model_stats.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"

/* Each rule gets the node, its first two inputs' shapes and its first
 * output's shape; all have rank >= 0. */
typedef int64_t (*mac_rule_fn)(const nnq_node *nd, const nnq_tensor *a, const nnq_tensor *b,
                               const nnq_tensor *y);

static int64_t times_outputs(int64_t per_out, const nnq_tensor *y) {
    int64_t outs = nnq_tensor_numel(y);
    return per_out > 0 && outs > 0 ? per_out * outs : 0;
}

static int64_t conv_macs(const nnq_node *nd, const nnq_tensor *x, const nnq_tensor *w,
                         const nnq_tensor *y) {
    /* W: [C_out, C_in/group, k...]; each output element reads C_in/group * k... inputs. */
    if (w->rank < 3) return 0;
    return times_outputs(nnq_shape_numel(w->rank - 1, w->dims + 1), y);
}

static int64_t gemm_macs(const nnq_node *nd, const nnq_tensor *a, const nnq_tensor *b,
                         const nnq_tensor *y) {
    if (a->rank != 2) return 0;
    return times_outputs(nnq_node_attr_int(nd, "transA", 0) ? a->dims[0] : a->dims[1], y);
}

static int64_t matmul_macs(const nnq_node *nd, const nnq_tensor *a, const nnq_tensor *b,
                           const nnq_tensor *y) {
    if (a->rank < 1) return 0;
    return times_outputs(a->dims[a->rank - 1], y); /* A is [K] or [..., M, K] */
}

static const struct {
    const char *op_type;
    mac_rule_fn macs;
} mac_rules[] = {
    {"Conv", conv_macs},
    {"Gemm", gemm_macs},
    {"MatMul", matmul_macs},
};

int64_t nnq_node_macs(const nnq_graph *g, int n, const nnq_tensor *shapes) {
    const nnq_node *nd = &g->nodes[n];
    if (nd->n_inputs < 2 || nd->n_outputs < 1 || nd->inputs[0] < 0 || nd->inputs[1] < 0 ||
        nd->outputs[0] < 0)
        return 0;
    if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0) return 0;
    const nnq_tensor *a = &shapes[nd->inputs[0]];
    const nnq_tensor *b = &shapes[nd->inputs[1]];
    const nnq_tensor *y = &shapes[nd->outputs[0]];
    if (a->rank < 0 || b->rank < 0 || y->rank < 0) return 0;
    for (size_t i = 0; i < sizeof mac_rules / sizeof mac_rules[0]; i++)
        if (strcmp(nd->op_type, mac_rules[i].op_type) == 0) return mac_rules[i].macs(nd, a, b, y);
    return 0;
}

nnq_status nnq_graph_macs(const nnq_graph *g, int64_t *out) {
    nnq_status s = NNQ_OK;
    *out = 0;
    nnq_tensor *in = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *in);
    nnq_tensor *shapes = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *shapes);
    if (!in || !shapes) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory counting MACs");
        goto fail;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        in[i] = g->values[g->inputs[i]].t;
        in[i].data = NULL;
        in[i].owns = false;
        if (in[i].rank >= 1) in[i].dims[0] = 1; /* one image */
    }
    if ((s = nnq_graph_infer_shapes(g, in, shapes)) != NNQ_OK) goto fail;
    int64_t total = 0;
    for (int n = 0; n < g->n_nodes; n++)
        if (!nnq_node_outputs_constant(g, n)) total += nnq_node_macs(g, n, shapes);
    *out = total;
fail:
    free(shapes);
    free(in);
    return s;
}

static int cmp_count(const void *pa, const void *pb) {
    const nnq_op_count *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(a->op_type, b->op_type);
}

nnq_status nnq_model_stats_compute(const nnq_graph *g, nnq_model_stats *out) {
    memset(out, 0, sizeof *out);
    out->n_nodes = g->n_nodes;
    out->params = nnq_graph_param_count(g);
    out->ops = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *out->ops);
    if (!out->ops) return nnq_fail(NNQ_ERR_NOMEM, "out of memory counting ops");
    for (int n = 0; n < g->n_nodes; n++) {
        const char *op = g->nodes[n].op_type;
        int k = 0;
        while (k < out->n_op_types && strcmp(out->ops[k].op_type, op) != 0) k++;
        if (k == out->n_op_types) out->ops[out->n_op_types++].op_type = op;
        out->ops[k].count++;
    }
    qsort(out->ops, (size_t)out->n_op_types, sizeof *out->ops, cmp_count);
    nnq_status s = nnq_graph_macs(g, &out->macs);
    if (s != NNQ_OK) nnq_model_stats_free(out);
    return s;
}

void nnq_model_stats_free(nnq_model_stats *s) {
    free(s->ops);
    memset(s, 0, sizeof *s);
}
