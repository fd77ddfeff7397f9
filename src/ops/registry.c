#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

static const nnq_op_def *const op_table[] = {
#define NNQ_OP(name) &nnq_op_##name,
#include "ops/op_list.inc"
#undef NNQ_OP
};

int nnq_op_count(void) { return (int)(sizeof op_table / sizeof op_table[0]); }

const nnq_op_def *nnq_op_at(int i) {
    return (i >= 0 && i < nnq_op_count()) ? op_table[i] : NULL;
}

static bool is_default_domain(const char *domain) {
    return !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0;
}

const nnq_op_def *nnq_op_find_in(const char *domain, const char *op_type) {
    bool dflt = is_default_domain(domain);
    for (int i = 0; i < nnq_op_count(); i++) {
        const nnq_op_def *d = op_table[i];
        bool same_domain = dflt ? is_default_domain(d->domain)
                                : d->domain && strcmp(d->domain, domain) == 0;
        if (same_domain && strcmp(d->op_type, op_type) == 0) return d;
    }
    return NULL;
}

const nnq_op_def *nnq_op_find(const char *op_type) { return nnq_op_find_in(NULL, op_type); }

nnq_status nnq_op_fail(const nnq_op_args *a, nnq_status s, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *op = a->node ? a->node->op_type : "?";
    char label[256] = "(unnamed)";
    if (a->node && a->node->name && a->node->name[0])
        snprintf(label, sizeof label, "%s", a->node->name);
    else if (a->node && a->graph && a->node >= a->graph->nodes &&
             a->node < a->graph->nodes + a->graph->n_nodes)
        nnq_node_label(a->graph, (int)(a->node - a->graph->nodes), label, sizeof label);
    return nnq_fail(s, "%s node '%s': %s", op, label, msg);
}

nnq_status nnq_op_in_grad(const nnq_op_args *a, int i, float **out) {
    *out = NULL;
    if (!a->in_grad || i >= a->n_in || !a->in[i] || !a->in_grad[i]) return NNQ_OK;
    if (nnq_tensor_numel(a->in_grad[i]) != nnq_tensor_numel(a->in[i]) ||
        a->in_grad[i]->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "gradient of input %d does not match the input", i);
    *out = nnq_f32(a->in_grad[i]);
    return NNQ_OK;
}

nnq_status nnq_op_out_grad(const nnq_op_args *a, const float **out) {
    const nnq_tensor *g = a->out_grad ? a->out_grad[0] : NULL;
    *out = NULL;
    if (!g) return NNQ_OK;
    if (nnq_tensor_numel(g) != nnq_tensor_numel(a->out[0]) || g->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "gradient of output 0 does not match the output");
    *out = nnq_f32(g);
    return NNQ_OK;
}
