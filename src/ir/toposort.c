/* Topological ordering and structural verification of a graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph.h"

/* A binary min-heap of node indices. */
typedef struct node_heap {
    int *a;
    int n;
} node_heap;

static void heap_push(node_heap *h, int x) {
    int i = h->n++;
    for (; i > 0 && h->a[(i - 1) / 2] > x; i = (i - 1) / 2) h->a[i] = h->a[(i - 1) / 2];
    h->a[i] = x;
}

static int heap_pop(node_heap *h) {
    int top = h->a[0], x = h->a[--h->n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c]) c++;
        if (h->a[c] >= x) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = x;
    return top;
}

/* Kahn's algorithm in sweeps: each sweep takes, in index order, every node
 * whose inputs are ready when the sweep reaches it, so an already sorted
 * graph keeps its order. Rather than rescanning all nodes per sweep (which
 * is quadratic, and a file may hold NNQ_MAX_NODES nodes), two heaps hold
 * the ready nodes: `now` those after the sweep's position, `next` those it
 * has passed, which wait for the next sweep. */
nnq_status nnq_graph_toposort(nnq_graph *g) {
    nnq_status s = NNQ_OK;
    int n = g->n_nodes > 0 ? g->n_nodes : 0;
    size_t nv = (size_t)(g->n_values > 0 ? g->n_values : 0), n_reads = 0;
    int *pending = calloc((size_t)(n ? n : 1), sizeof(int)); /* unmet inputs per node */
    int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
    char *ready_value = calloc(nv ? nv : 1, 1);
    /* Readers of value v, one entry per read: reader[first[v] .. first[v+1]). */
    size_t *first = calloc(nv + 1, sizeof(size_t)), *fill = calloc(nv + 1, sizeof(size_t));
    int *reader = NULL;
    node_heap now = {malloc(sizeof(int) * (size_t)(n ? n : 1)), 0};
    node_heap next = {malloc(sizeof(int) * (size_t)(n ? n : 1)), 0};
    nnq_node *sorted = NULL;
    if (!pending || !order || !ready_value || !first || !fill || !now.a || !next.a) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory sorting the graph");
        goto fail;
    }
    for (size_t v = 0; v < nv; v++)
        if (g->values[v].producer < 0) ready_value[v] = 1;
    /* Each read of a value not ready yet is one unmet input of its node. */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && !ready_value[v]) {
                pending[i]++;
                first[v + 1]++;
                n_reads++;
            }
        }
    for (size_t v = 0; v < nv; v++) {
        first[v + 1] += first[v];
        fill[v] = first[v];
    }
    if (!(reader = malloc(sizeof(int) * (n_reads ? n_reads : 1)))) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory sorting the graph");
        goto fail;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && !ready_value[v]) reader[fill[v]++] = i;
        }
    for (int i = 0; i < n; i++)
        if (!pending[i]) heap_push(&now, i);
    int n_done = 0;
    for (int pos = -1; n_done < n;) {
        if (!now.n) { /* this sweep is over: the next takes what it passed */
            if (!next.n) break;
            node_heap t = now;
            now = next;
            next = t;
            pos = -1;
        }
        int i = heap_pop(&now);
        const nnq_node *nd = &g->nodes[i];
        order[n_done++] = pos = i;
        for (int k = 0; k < nd->n_outputs; k++) {
            int v = nd->outputs[k];
            if (v < 0 || ready_value[v]) continue;
            ready_value[v] = 1;
            for (size_t r = first[v]; r < first[v + 1]; r++)
                if (--pending[reader[r]] == 0) heap_push(reader[r] > pos ? &now : &next, reader[r]);
        }
    }
    if (n_done < n) {
        char label[256];
        for (int i = 0; i < n; i++) {
            if (!pending[i]) continue; /* every node left waits for an input */
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
    if (n) memcpy(g->nodes, sorted, sizeof(nnq_node) * (size_t)n); /* no node array when empty */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (g->nodes[i].outputs[k] >= 0) g->values[g->nodes[i].outputs[k]].producer = i;
fail:
    free(sorted);
    free(pending);
    free(order);
    free(ready_value);
    free(first);
    free(fill);
    free(reader);
    free(now.a);
    free(next.a);
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
        /* Names change only through nnq_graph_rename_value, which keeps
         * the name index right; catch any code that writes .name itself. */
        if (nnq_graph_find_value(g, g->values[v].name) != v) {
            s = nnq_fail(NNQ_ERR_INVALID, "value #%d '%s' is not found under its own name (defined twice, or renamed without nnq_graph_rename_value)", v, g->values[v].name);
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
