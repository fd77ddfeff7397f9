/* The float fallback of the integer program: a node the lowering could not
 * turn into integer operators runs by its own float op (src/ops), on its
 * dequantized inputs, exactly as the float executor would run it. Both
 * executors (INT and SIM) share it. */
#include <stdlib.h>
#include <string.h>

#include "engine/iprog_impl.h"
#include "ops/node_call.h"

typedef struct float_state {
    const nnq_graph *g;
    int node;
    const nnq_op_def *def;
} float_state;

static nnq_status float_create(const nnq_iprog *p, const ip_op *op, void **state) {
    const ip_float *f = op->par;
    float_state *s = calloc(1, sizeof *s);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating '%s'", op->name);
    s->g = p->g;
    s->node = f->node;
    nnq_status st = nnq_node_resolve(p->g, f->node, &s->def);
    if (st == NNQ_OK && (p->g->nodes[f->node].n_inputs != op->n_in ||
                         p->g->nodes[f->node].n_outputs != op->n_out))
        st = nnq_fail(NNQ_ERR_INVALID, "float node '%s': inputs and outputs do not match", op->name);
    if (st != NNQ_OK) {
        free(s);
        return st;
    }
    *state = s;
    return NNQ_OK;
}

/* The op's arguments: program tensors, or the graph's constants. */
static void float_args(const ip_call *c, const float_state *s, const nnq_tensor **in,
                       nnq_tensor **out, nnq_op_args *a) {
    const nnq_node *nd = &s->g->nodes[s->node];
    for (int k = 0; k < nd->n_inputs; k++) {
        const int v = nd->inputs[k];
        in[k] = c->op->in[k] >= 0 ? c->in[k] : (v >= 0 ? &s->g->values[v].t : NULL);
    }
    int n_out = nd->n_outputs;
    while (n_out > 0 && nd->outputs[n_out - 1] < 0) n_out--;
    for (int k = 0; k < n_out; k++) out[k] = c->op->out[k] >= 0 ? c->out[k] : NULL;
    memset(a, 0, sizeof *a);
    a->graph = s->g;
    a->node = nd;
    a->opset = (int)nnq_graph_opset(s->g);
    a->n_in = nd->n_inputs;
    a->in = in;
    a->n_out = n_out;
    a->out = out;
    a->threads = c->threads > 0 ? c->threads : 1;
}

static nnq_status float_reshape(ip_call *c, size_t *scratch) {
    const float_state *s = c->state;
    const nnq_tensor *in[NNQ_MAX_NODE_IO];
    nnq_tensor *out[NNQ_MAX_NODE_IO], shaped[NNQ_MAX_NODE_IO];
    nnq_op_args a;
    float_args(c, s, in, out, &a);
    for (int k = 0; k < a.n_out; k++) {
        if (!out[k]) continue;
        shaped[k] = *out[k];
        shaped[k].data = NULL;
        shaped[k].owns = false;
        out[k] = &shaped[k];
    }
    NNQ_TRY(s->def->infer(&a));
    for (int k = 0; k < a.n_out; k++)
        if (out[k] && (!nnq_shape_equal(out[k], c->out[k]) || out[k]->dtype != c->out[k]->dtype))
            return nnq_fail(NNQ_ERR_SHAPE, "float node '%s': output %d has another shape than "
                            "the program planned", c->op->name, k);
    *scratch = s->def->scratch_size ? s->def->scratch_size(&a) : 0;
    return NNQ_OK;
}

static nnq_status float_run(ip_call *c) {
    const float_state *s = c->state;
    const nnq_tensor *in[NNQ_MAX_NODE_IO];
    nnq_tensor *out[NNQ_MAX_NODE_IO];
    nnq_op_args a;
    float_args(c, s, in, out, &a);
    a.scratch = c->scratch;
    a.scratch_bytes = c->scratch_bytes;
    return s->def->forward(&a);
}

const ip_impl ip_float_impl = {float_create, float_reshape, float_run, free};
