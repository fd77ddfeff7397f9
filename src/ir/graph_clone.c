/* Deep copy of a graph (passes that must not touch the caller's graph). */
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static nnq_status clone_attr(nnq_node *dst, const nnq_attr *a) {
    switch (a->type) {
    case NNQ_ATTR_FLOAT: return nnq_node_set_float(dst, a->name, a->f);
    case NNQ_ATTR_INT: return nnq_node_set_int(dst, a->name, a->i);
    case NNQ_ATTR_STRING: return nnq_node_set_string(dst, a->name, a->s ? a->s : "");
    case NNQ_ATTR_FLOATS: return nnq_node_set_floats(dst, a->name, a->n, a->floats);
    case NNQ_ATTR_INTS: return nnq_node_set_ints(dst, a->name, a->n, a->ints);
    case NNQ_ATTR_TENSOR: {
        nnq_tensor *t = calloc(1, sizeof *t);
        if (!t) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        nnq_status s = nnq_tensor_clone(t, a->t);
        if (s != NNQ_OK) {
            free(t);
            return s;
        }
        return nnq_node_set_tensor(dst, a->name, t);
    }
    case NNQ_ATTR_STRINGS: {
        /* Create the slot through set_ints, then swap in the strings. */
        NNQ_TRY(nnq_node_set_ints(dst, a->name, 0, NULL));
        nnq_attr *d = &dst->attrs[dst->n_attrs - 1];
        free(d->ints);
        d->ints = NULL;
        d->type = NNQ_ATTR_STRINGS;
        d->strings = calloc((size_t)(a->n ? a->n : 1), sizeof(char *));
        if (!d->strings) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        d->n = a->n;
        for (int i = 0; i < a->n; i++) {
            d->strings[i] = dup_or_null(a->strings[i] ? a->strings[i] : "");
            if (!d->strings[i]) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        }
        return NNQ_OK;
    }
    default: return nnq_fail(NNQ_ERR_UNSUPPORTED, "attribute '%s' has an unknown type", a->name);
    }
}

nnq_status nnq_graph_clone(const nnq_graph *g, nnq_graph **out) {
    nnq_status s = NNQ_OK;
    nnq_graph *c = nnq_graph_create(g->name);
    *out = NULL;
    if (!c) return nnq_fail(NNQ_ERR_NOMEM, "out of memory cloning the graph");
    c->ir_version = g->ir_version;
    free(c->producer_name);
    free(c->producer_version);
    free(c->doc_string);
    c->producer_name = dup_or_null(g->producer_name ? g->producer_name : "");
    c->producer_version = dup_or_null(g->producer_version ? g->producer_version : "");
    c->doc_string = dup_or_null(g->doc_string ? g->doc_string : "");
    if (!c->producer_name || !c->producer_version || !c->doc_string) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < g->n_opsets; i++)
        if ((s = nnq_graph_set_opset(c, g->opsets[i].domain, g->opsets[i].version)) != NNQ_OK) goto fail;
    for (int i = 0; i < g->n_meta; i++)
        if ((s = nnq_graph_set_meta(c, g->meta_keys[i], g->meta_values[i])) != NNQ_OK) goto fail;
    for (int i = 0; i < g->n_values; i++) {
        const nnq_value *v = &g->values[i];
        int idx;
        if ((s = nnq_graph_add_value(c, v->name, &idx)) != NNQ_OK) goto fail;
        nnq_value *d = &c->values[idx];
        if ((s = nnq_tensor_clone(&d->t, &v->t)) != NNQ_OK) goto fail;
        d->is_initializer = v->is_initializer;
        d->producer = v->producer;
        if (v->dim_params) {
            d->dim_params = calloc(NNQ_MAX_RANK, sizeof(char *));
            if (!d->dim_params) {
                s = nnq_fail(NNQ_ERR_NOMEM, "out of memory");
                goto fail;
            }
            for (int k = 0; k < NNQ_MAX_RANK; k++) {
                if (!v->dim_params[k]) continue;
                d->dim_params[k] = dup_or_null(v->dim_params[k]);
                if (!d->dim_params[k]) {
                    s = nnq_fail(NNQ_ERR_NOMEM, "out of memory");
                    goto fail;
                }
            }
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const nnq_node *n = &g->nodes[i];
        int idx;
        if ((s = nnq_graph_add_node(c, n->name, n->op_type, n->domain, n->n_inputs, n->inputs,
                                    n->n_outputs, n->outputs, &idx)) != NNQ_OK)
            goto fail;
        for (int k = 0; k < n->n_attrs; k++)
            if ((s = clone_attr(&c->nodes[idx], &n->attrs[k])) != NNQ_OK) goto fail;
    }
    for (int i = 0; i < g->n_inputs; i++)
        if ((s = nnq_graph_add_input(c, g->inputs[i])) != NNQ_OK) goto fail;
    for (int i = 0; i < g->n_outputs; i++)
        if ((s = nnq_graph_add_output(c, g->outputs[i])) != NNQ_OK) goto fail;
    *out = c;
    return NNQ_OK;
fail:
    nnq_graph_free(c);
    return s;
}
