/* Topological ordering and structural verification of a graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"

/* Kahn's algorithm, taking ready nodes in their original order so an
 * already-sorted graph keeps its order. */
nnq_status nnq_graph_toposort(nnq_graph *g) {
    nnq_status s = NNQ_OK;
    int n = g->n_nodes > 0 ? g->n_nodes : 0;
    int *pending = calloc((size_t)(n ? n : 1), sizeof(int));   /* unmet inputs per node */
    int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
    char *ready_value = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    char *done = calloc((size_t)(n ? n : 1), 1);
    nnq_node *sorted = NULL;
    if (!pending || !order || !ready_value || !done) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory sorting the graph");
        goto fail;
    }
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].producer < 0) ready_value[v] = 1;
    int n_done = 0;
    /* Repeated sweeps: O(n^2) worst case but n is small (hundreds). */
    for (int progress = 1; progress && n_done < n;) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            const nnq_node *nd = &g->nodes[i];
            int ok = 1;
            for (int k = 0; k < nd->n_inputs && ok; k++)
                if (nd->inputs[k] >= 0 && !ready_value[nd->inputs[k]]) ok = 0;
            if (!ok) continue;
            done[i] = 1;
            order[n_done++] = i;
            for (int k = 0; k < nd->n_outputs; k++)
                if (nd->outputs[k] >= 0) ready_value[nd->outputs[k]] = 1;
            progress = 1;
        }
    }
    if (n_done < n) {
        char label[256];
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            nnq_node_label(g, i, label, sizeof label);
            s = nnq_fail(NNQ_ERR_INVALID,
                         "node '%s' (%s) can never run: the graph has a cycle through it, or it "
                         "reads a value no node produces",
                         label, g->nodes[i].op_type);
            goto fail;
        }
    }
    sorted = malloc(sizeof(nnq_node) * (size_t)(n > 0 ? n : 1));
    if (!sorted) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory sorting the graph");
        goto fail;
    }
    for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, sizeof(nnq_node) * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (g->nodes[i].outputs[k] >= 0) g->values[g->nodes[i].outputs[k]].producer = i;
fail:
    free(sorted);
    free(pending);
    free(order);
    free(ready_value);
    free(done);
    return s;
}

nnq_status nnq_graph_verify(const nnq_graph *g) {
    char label[256];
    int *producers = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof(int));
    if (!producers) return nnq_fail(NNQ_ERR_NOMEM, "out of memory verifying the graph");
    nnq_status s = NNQ_OK;
    for (int v = 0; v < g->n_values; v++) {
        if (!g->values[v].name || !g->values[v].name[0]) {
            s = nnq_fail(NNQ_ERR_INVALID, "value #%d has an empty name", v);
            goto done;
        }
        if (g->values[v].is_initializer) producers[v] = 1;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (v < 0 || v >= g->n_values) {
            s = nnq_fail(NNQ_ERR_INVALID, "graph input #%d is not a value", i);
            goto done;
        }
        if (g->values[v].is_initializer) {
            s = nnq_fail(NNQ_ERR_INVALID, "graph input '%s' is also an initializer", g->values[v].name);
            goto done;
        }
        producers[v]++;
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        nnq_node_label(g, n, label, sizeof label);
        for (int k = 0; k < nd->n_outputs; k++) {
            int v = nd->outputs[k];
            if (v < 0) continue;
            if (++producers[v] > 1) {
                s = nnq_fail(NNQ_ERR_INVALID,
                             "node '%s' (%s) writes '%s', which is already an input, "
                             "initializer or another node's output",
                             label, nd->op_type, g->values[v].name);
                goto done;
            }
        }
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            if (v >= 0 && !producers[v]) {
                nnq_node_label(g, n, label, sizeof label);
                s = nnq_fail(NNQ_ERR_INVALID,
                             "node '%s' (%s) reads '%s', which no node, input or initializer defines",
                             label, nd->op_type, g->values[v].name);
                goto done;
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (v < 0 || v >= g->n_values || !producers[v]) {
            s = nnq_fail(NNQ_ERR_INVALID, "graph output '%s' is never produced",
                         (v >= 0 && v < g->n_values) ? g->values[v].name : "?");
            goto done;
        }
    }
    /* Acyclic and in order: every input defined before its reader. */
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            if (v >= 0 && g->values[v].producer >= n) {
                nnq_node_label(g, n, label, sizeof label);
                s = nnq_fail(NNQ_ERR_INVALID,
                             "node '%s' (%s) reads '%s' before it is produced (cycle or "
                             "unsorted graph)",
                             label, nd->op_type, g->values[v].name);
                goto done;
            }
        }
    }
done:
    free(producers);
    return s;
}
