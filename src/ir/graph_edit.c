/* Graph editing for passes that rewrite a graph in place: who reads a
 * value, removing nodes, dropping values nothing uses, fresh names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"
#include "ir/name_index.h"

int nnq_graph_value_readers(const nnq_graph *g, int v, int *readers, int cap) {
    int count = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++) {
            if (nd->inputs[k] != v) continue;
            if (readers && count < cap) readers[count] = n;
            count++;
        }
    }
    return count;
}

bool nnq_graph_is_output(const nnq_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

nnq_status nnq_graph_remove_nodes(nnq_graph *g, const bool *remove) {
    /* Clear the producers of removed outputs first, so a value a kept node
     * now writes (a rewired output) keeps its producer. */
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (!remove[n]) continue;
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0 && g->values[nd->outputs[k]].producer == n)
                g->values[nd->outputs[k]].producer = -1;
    }
    int kept = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        if (remove[n]) {
            nnq_node_release(&g->nodes[n]);
            continue;
        }
        if (kept != n) g->nodes[kept] = g->nodes[n];
        const nnq_node *nd = &g->nodes[kept];
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0) g->values[nd->outputs[k]].producer = kept;
        kept++;
    }
    if (kept < g->n_nodes) memset(&g->nodes[kept], 0, sizeof *g->nodes * (size_t)(g->n_nodes - kept));
    g->n_nodes = kept;
    return NNQ_OK;
}

nnq_status nnq_graph_prune_values(nnq_graph *g, int *n_removed) {
    if (n_removed) *n_removed = 0;
    int nv = g->n_values;
    int *map = calloc((size_t)(nv ? nv : 1), sizeof *map); /* first: use count, then new index */
    if (!map) return nnq_fail(NNQ_ERR_NOMEM, "out of memory pruning the graph");
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0) map[nd->inputs[k]] = 1;
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0) map[nd->outputs[k]] = 1;
    }
    for (int i = 0; i < g->n_inputs; i++) map[g->inputs[i]] = 1;
    for (int i = 0; i < g->n_outputs; i++) map[g->outputs[i]] = 1;
    int kept = 0;
    for (int v = 0; v < nv; v++) {
        if (!map[v]) {
            nnq_value_release(&g->values[v]);
            map[v] = -1;
            continue;
        }
        if (kept != v) g->values[kept] = g->values[v];
        map[v] = kept++;
    }
    if (kept < nv) memset(&g->values[kept], 0, sizeof *g->values * (size_t)(nv - kept));
    g->n_values = kept;
    nnq_status s = nnq_name_index_rebuild(g); /* in place: cannot fail here */
    for (int n = 0; n < g->n_nodes; n++) {
        nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0) nd->inputs[k] = map[nd->inputs[k]];
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0) nd->outputs[k] = map[nd->outputs[k]];
    }
    for (int i = 0; i < g->n_inputs; i++) g->inputs[i] = map[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++) g->outputs[i] = map[g->outputs[i]];
    if (n_removed) *n_removed = nv - kept;
    free(map);
    return s;
}

nnq_status nnq_graph_unique_name(const nnq_graph *g, const char *base, char *buf, size_t cap) {
    int len = snprintf(buf, cap, "%s", base);
    if (len < 0 || (size_t)len >= cap)
        return nnq_fail(NNQ_ERR_LIMIT, "name '%.64s...' is too long to derive a new one", base);
    for (long k = 1; nnq_graph_find_value(g, buf) >= 0; k++) {
        len = snprintf(buf, cap, "%s_%ld", base, k);
        if (len < 0 || (size_t)len >= cap)
            return nnq_fail(NNQ_ERR_LIMIT, "name '%.64s...' is too long to derive a new one", base);
    }
    return NNQ_OK;
}
