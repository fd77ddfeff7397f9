#include "ops/node_call.h"

#include <string.h>

nnq_status nnq_node_resolve(const nnq_graph *g, int n, const nnq_op_def **def) {
    const nnq_node *nd = &g->nodes[n];
    char label[256];
    nnq_node_label(g, n, label, sizeof label);
    *def = NULL;
    const nnq_op_def *d = nnq_op_find_in(nd->domain, nd->op_type);
    if (!d && nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "unsupported op '%s' in domain '%s' at node '%s'",
                        nd->op_type, nd->domain, label);
    if (!d)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "unsupported op '%s' at node '%s'", nd->op_type,
                        label);
    /* Trailing omitted optionals do not count towards the arity. */
    int n_in = nd->n_inputs, n_out = nd->n_outputs;
    while (n_in > 0 && nd->inputs[n_in - 1] < 0) n_in--;
    if (n_in < d->min_inputs || nd->n_inputs > d->max_inputs || nd->n_inputs > NNQ_MAX_NODE_IO)
        return nnq_fail(NNQ_ERR_INVALID, "%s node '%s' has %d inputs; %s takes %d to %d",
                        nd->op_type, label, nd->n_inputs, nd->op_type, d->min_inputs,
                        d->max_inputs);
    for (int i = 0; i < d->min_inputs; i++)
        if (nd->inputs[i] < 0)
            return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': required input %d is missing",
                            nd->op_type, label, i);
    if (n_out < d->min_outputs || n_out > d->max_outputs || n_out > NNQ_MAX_NODE_IO)
        return nnq_fail(NNQ_ERR_INVALID, "%s node '%s' has %d outputs; %s gives %d to %d",
                        nd->op_type, label, n_out, nd->op_type, d->min_outputs, d->max_outputs);
    /* An empty name omits an optional output; a required one must be named. */
    for (int i = 0; i < d->min_outputs; i++)
        if (nd->outputs[i] < 0)
            return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': required output %d has no name",
                            nd->op_type, label, i);
    *def = d;
    return NNQ_OK;
}

nnq_status nnq_node_call_init(nnq_node_call *call, const nnq_graph *g, int n, nnq_tensor *vals,
                              int threads) {
    const nnq_node *nd = &g->nodes[n];
    memset(call, 0, sizeof *call);
    NNQ_TRY(nnq_node_resolve(g, n, &call->def));
    int n_out = nd->n_outputs;
    while (n_out > 0 && nd->outputs[n_out - 1] < 0) n_out--;
    for (int i = 0; i < nd->n_inputs; i++)
        call->in[i] = nd->inputs[i] >= 0 ? &vals[nd->inputs[i]] : NULL;
    for (int i = 0; i < n_out; i++)
        call->out[i] = nd->outputs[i] >= 0 ? &vals[nd->outputs[i]] : NULL;
    call->args.graph = g;
    call->args.node = nd;
    call->args.opset = (int)nnq_graph_opset(g);
    call->args.n_in = nd->n_inputs;
    call->args.in = call->in;
    call->args.n_out = n_out;
    call->args.out = call->out;
    call->args.threads = threads > 0 ? threads : 1;
    return NNQ_OK;
}
