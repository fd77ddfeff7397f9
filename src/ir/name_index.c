/* Open-addressing hash table of value indices keyed by name (FNV-1a).
 * Import used to check name uniqueness by a linear scan, which made
 * loading a graph quadratic in its value count (32 s for 100k nodes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/name_index.h"

struct nnq_name_index {
    uint32_t mask;  /* capacity - 1, capacity a power of two */
    int used;
    int *slots;     /* value index + 1; 0 = empty */
};

static uint32_t hash_name(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int nnq_name_index_find(const nnq_graph *g, const char *name) {
    const struct nnq_name_index *ix = g->name_index;
    if (!ix) return -1;
    for (uint32_t i = hash_name(name) & ix->mask;; i = (i + 1) & ix->mask) {
        int s = ix->slots[i];
        if (s == 0) return -1;
        if (strcmp(g->values[s - 1].name, name) == 0) return s - 1;
    }
}

static void place(struct nnq_name_index *ix, const char *name, int idx) {
    uint32_t i = hash_name(name) & ix->mask;
    while (ix->slots[i]) i = (i + 1) & ix->mask;
    ix->slots[i] = idx + 1;
    ix->used++;
}

/* A table of at least 2 * n slots, filled with values [0, n). */
static nnq_status build(nnq_graph *g, int n) {
    uint32_t cap = 64;
    while (cap < 2u * (uint32_t)n) cap *= 2;
    struct nnq_name_index *ix = malloc(sizeof *ix);
    int *slots = calloc(cap, sizeof *slots);
    if (!ix || !slots) {
        free(ix);
        free(slots);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory indexing value names");
    }
    ix->mask = cap - 1;
    ix->used = 0;
    ix->slots = slots;
    for (int v = 0; v < n; v++) place(ix, g->values[v].name, v);
    nnq_name_index_free(g);
    g->name_index = ix;
    return NNQ_OK;
}

nnq_status nnq_name_index_insert(nnq_graph *g, int idx) {
    struct nnq_name_index *ix = g->name_index;
    /* Grow at half load so probe sequences stay short. */
    if (!ix || 2u * (uint32_t)(ix->used + 1) > ix->mask + 1) return build(g, idx + 1);
    place(ix, g->values[idx].name, idx);
    return NNQ_OK;
}

nnq_status nnq_name_index_rebuild(nnq_graph *g) {
    struct nnq_name_index *ix = g->name_index;
    /* Renames and compaction never add values: refill the table in place,
     * so they cannot fail half way for lack of memory. */
    if (!ix || 2u * (uint32_t)g->n_values > ix->mask + 1) return build(g, g->n_values);
    memset(ix->slots, 0, sizeof *ix->slots * ((size_t)ix->mask + 1));
    ix->used = 0;
    for (int v = 0; v < g->n_values; v++) place(ix, g->values[v].name, v);
    return NNQ_OK;
}

void nnq_name_index_free(nnq_graph *g) {
    if (!g->name_index) return;
    free(g->name_index->slots);
    free(g->name_index);
    g->name_index = NULL;
}
