/* Graph preparation: ordering, verification, op resolution, constant
 * folding and shape inference. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ops/node_call.h"

/* Every output got a dtype and shape, and (when all its dims are known)
 * fits nnq's tensor limit: attributes from a file (pads, strides) must not
 * describe a tensor nnq would later try to allocate. */
static nnq_status check_outputs_inferred(const nnq_graph *g, int n, const nnq_node_call *c) {
    char label[256], shape[128];
    for (int i = 0; i < c->args.n_out; i++) {
        const nnq_tensor *t = c->out[i];
        if (!t) continue;
        if (t->dtype == NNQ_DT_UNDEFINED || t->rank < 0)
            return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': output %d has no inferred shape",
                            g->nodes[n].op_type, nnq_node_label(g, n, label, sizeof label), i);
        bool known = true;
        for (int k = 0; k < t->rank; k++) known = known && t->dims[k] >= 0;
        size_t bytes;
        if (known && nnq_tensor_nbytes(t, &bytes) != NNQ_OK)
            return nnq_fail(NNQ_ERR_LIMIT, "%s node '%s': output %d of shape %s (%s) exceeds "
                            "nnq's %zu-byte tensor limit", g->nodes[n].op_type,
                            nnq_node_label(g, n, label, sizeof label), i,
                            nnq_shape_str(t, shape, sizeof shape), nnq_dtype_name(t->dtype),
                            (size_t)NNQ_MAX_TENSOR_BYTES);
    }
    return NNQ_OK;
}

nnq_status nnq_graph_infer_shapes(const nnq_graph *g, const nnq_tensor *input_shapes,
                                  nnq_tensor *shapes) {
    for (int v = 0; v < g->n_values; v++) {
        shapes[v] = g->values[v].t;
        shapes[v].owns = false;
        if (!g->values[v].t.data) {
            shapes[v].dtype = NNQ_DT_UNDEFINED;
            shapes[v].rank = -1;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const nnq_value *v = &g->values[g->inputs[i]];
        nnq_tensor *t = &shapes[g->inputs[i]];
        const nnq_tensor *src = input_shapes ? &input_shapes[i] : &v->t;
        if (src->rank < 0 || src->dtype == NNQ_DT_UNDEFINED)
            return nnq_fail(NNQ_ERR_SHAPE, "graph input '%s' has no declared type and shape",
                            v->name);
        NNQ_TRY(nnq_tensor_set_shape(t, src->dtype, src->rank, src->dims));
        /* Integer inputs may carry shapes, axes or pads: let shape inference
         * see their data when the caller has it. */
        t->data = input_shapes && nnq_dtype_is_integer(src->dtype) ? src->data : NULL;
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] < 0) t->dims[k] = 1; /* symbolic: assume 1 */
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (nnq_node_outputs_constant(g, n)) continue;
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, shapes, 1));
        for (int i = 0; i < c.args.n_in; i++) {
            if (c.in[i] && c.in[i]->rank < 0) {
                char label[256];
                return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': input '%s' has no shape",
                                nd->op_type, nnq_node_label(g, n, label, sizeof label),
                                g->values[nd->inputs[i]].name);
            }
        }
        NNQ_TRY(c.def->infer(&c.args));
        NNQ_TRY(check_outputs_inferred(g, n, &c));
    }
    return NNQ_OK;
}

/* Bytes constant folding may still create in g (core/limits.h). */
static size_t fold_budget(const nnq_graph *g) {
    size_t own = 0, b;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].t.data && nnq_tensor_nbytes(&g->values[v].t, &b) == NNQ_OK) own += b;
    if (own > (SIZE_MAX - NNQ_FOLD_FREE_BYTES) / NNQ_FOLD_GROWTH) return SIZE_MAX;
    return NNQ_FOLD_FREE_BYTES + NNQ_FOLD_GROWTH * own;
}

/* Evaluate node n now and store its outputs as constants in the graph,
 * taking their bytes from *budget. vals: n_values zeroed tensors, which
 * are zeroed again on return (one array serves every fold). */
static nnq_status fold_node(nnq_graph *g, int n, nnq_tensor *vals, size_t *budget) {
    nnq_status s = NNQ_OK;
    void *scratch = NULL;
    char label[256];
    const nnq_node *nd = &g->nodes[n];
    for (int k = 0; k < nd->n_inputs; k++) {
        if (nd->inputs[k] < 0) continue;
        vals[nd->inputs[k]] = g->values[nd->inputs[k]].t;
        vals[nd->inputs[k]].owns = false;
    }
    for (int k = 0; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0) vals[nd->outputs[k]].rank = -1;
    nnq_node_call c;
    if ((s = nnq_node_call_init(&c, g, n, vals, 1)) != NNQ_OK) goto fail;
    if ((s = c.def->infer(&c.args)) != NNQ_OK) goto fail;
    if ((s = check_outputs_inferred(g, n, &c)) != NNQ_OK) goto fail;
    size_t bytes = 0, b;
    for (int k = 0; k < c.args.n_out; k++) {
        if (!c.out[k]) continue;
        if ((s = nnq_tensor_nbytes(c.out[k], &b)) != NNQ_OK) goto fail;
        bytes = bytes + b < bytes ? SIZE_MAX : bytes + b;
    }
    if (bytes > *budget) {
        s = nnq_fail(NNQ_ERR_LIMIT, "%s node '%s': folding its constant output (%zu bytes) "
                     "goes past nnq's folding limit (%zu MiB + %dx the model's constants; "
                     "%zu bytes left)", nd->op_type, nnq_node_label(g, n, label, sizeof label),
                     bytes, NNQ_FOLD_FREE_BYTES >> 20, NNQ_FOLD_GROWTH, *budget);
        goto fail;
    }
    *budget -= bytes;
    for (int k = 0; k < c.args.n_out; k++) {
        if (!c.out[k]) continue;
        nnq_tensor *t = c.out[k];
        if ((s = nnq_tensor_alloc(t, t->dtype, t->rank, t->dims)) != NNQ_OK) goto fail;
    }
    if (c.def->scratch_size) {
        c.args.scratch_bytes = c.def->scratch_size(&c.args);
        if (c.args.scratch_bytes) {
            scratch = aligned_alloc(64, (c.args.scratch_bytes + 63) / 64 * 64);
            if (!scratch) {
                s = nnq_fail(NNQ_ERR_NOMEM, "out of memory folding constants");
                goto fail;
            }
            c.args.scratch = scratch;
        }
    }
    if ((s = c.def->forward(&c.args)) != NNQ_OK) goto fail;
    for (int k = 0; k < c.args.n_out; k++) {
        if (!c.out[k]) continue;
        nnq_value *v = &g->values[nd->outputs[k]];
        nnq_tensor_release(&v->t);
        v->t = *c.out[k]; /* ownership moves to the graph */
        c.out[k]->owns = false;
    }
fail:
    for (int k = 0; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0) nnq_tensor_release(&vals[nd->outputs[k]]);
    for (int k = 0; k < nd->n_inputs; k++)
        if (nd->inputs[k] >= 0) memset(&vals[nd->inputs[k]], 0, sizeof *vals);
    for (int k = 0; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0) memset(&vals[nd->outputs[k]], 0, sizeof *vals);
    free(scratch);
    return s;
}

static bool node_inputs_constant(const nnq_graph *g, const nnq_node *nd) {
    for (int k = 0; k < nd->n_inputs; k++)
        if (nd->inputs[k] >= 0 && !g->values[nd->inputs[k]].t.data) return false;
    return true;
}

nnq_status nnq_graph_prepare(nnq_graph *g) {
    NNQ_TRY(nnq_graph_toposort(g));
    NNQ_TRY(nnq_graph_verify(g));
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_op_def *def;
        NNQ_TRY(nnq_node_resolve(g, n, &def));
    }
    size_t budget = fold_budget(g);
    nnq_tensor *vals = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *vals);
    if (!vals) return nnq_fail(NNQ_ERR_NOMEM, "out of memory folding constants");
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (nnq_node_outputs_constant(g, n) || !node_inputs_constant(g, nd)) continue;
        /* Only fold what a graph input cannot influence; keep outputs
         * that are graph outputs as nodes too (they still get data). */
        nnq_status fs = fold_node(g, n, vals, &budget);
        if (fs != NNQ_OK) {
            free(vals);
            return fs;
        }
    }
    free(vals);
    /* With an integer graph input, shapes may depend on its data: they are
     * inferred when the executor sees that data, not here. */
    for (int i = 0; i < g->n_inputs; i++)
        if (nnq_dtype_is_integer(g->values[g->inputs[i]].t.dtype)) return NNQ_OK;
    /* Symbolic dims are tried as 1. That is right for a batch dim; for a
     * symbolic spatial dim a kernel may not fit in 1, so a failure there
     * is left to run time, when the real sizes are known. */
    bool symbolic_inner = false;
    for (int i = 0; i < g->n_inputs; i++) {
        const nnq_tensor *t = &g->values[g->inputs[i]].t;
        for (int k = 1; k < t->rank; k++)
            if (t->dims[k] < 0) symbolic_inner = true;
    }
    nnq_tensor *shapes = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *shapes);
    if (!shapes) return nnq_fail(NNQ_ERR_NOMEM, "out of memory inferring shapes");
    nnq_status s = nnq_graph_infer_shapes(g, NULL, shapes);
    free(shapes);
    if (s != NNQ_OK && symbolic_inner) {
        nnq_clear_error();
        return NNQ_OK;
    }
    return s;
}
