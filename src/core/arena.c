#include "core/arena.h"

#include <stdlib.h>

static size_t round_up(size_t n) {
    n = (n + NNQ_ARENA_ALIGN - 1) / NNQ_ARENA_ALIGN * NNQ_ARENA_ALIGN;
    return n ? n : NNQ_ARENA_ALIGN;
}

nnq_status nnq_arena_planner_init(nnq_arena_planner *p, int cap) {
    p->n = 0;
    p->cap = cap > 0 ? cap : 1;
    p->total = 0;
    p->blocks = malloc(sizeof *p->blocks * (size_t)p->cap);
    p->live = malloc(sizeof *p->live * (size_t)p->cap);
    if (p->blocks && p->live) return NNQ_OK;
    nnq_arena_planner_free(p);
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory planning an activation arena");
}

void nnq_arena_planner_free(nnq_arena_planner *p) {
    free(p->blocks);
    free(p->live);
    p->blocks = p->live = NULL;
    p->n = p->cap = 0;
}

static int cmp_off(const void *a, const void *b) {
    const nnq_arena_block *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

nnq_status nnq_arena_place(nnq_arena_planner *p, size_t bytes, int from, int last, size_t *off) {
    if (p->n >= p->cap)
        return nnq_fail(NNQ_ERR_INVALID, "activation arena: more than %d buffers", p->cap);
    bytes = round_up(bytes);
    int n_live = 0;
    for (int b = 0; b < p->n; b++)
        if (p->blocks[b].last >= from) p->live[n_live++] = p->blocks[b];
    qsort(p->live, (size_t)n_live, sizeof *p->live, cmp_off);
    size_t at = 0;
    for (int b = 0; b < n_live; b++) {
        if (p->live[b].off >= at + bytes) break; /* fits in the gap before b */
        if (p->live[b].off + p->live[b].size > at) at = p->live[b].off + p->live[b].size;
    }
    p->blocks[p->n++] = (nnq_arena_block){at, bytes, last < from ? from : last};
    if (at + bytes > p->total) p->total = at + bytes;
    *off = at;
    return NNQ_OK;
}

nnq_status nnq_arena_reserve(void **buf, size_t *cap, size_t need, const char *what) {
    need = round_up(need);
    if (need <= *cap && *buf) return NNQ_OK;
    free(*buf);
    *buf = aligned_alloc(NNQ_ARENA_ALIGN, need);
    *cap = *buf ? need : 0;
    if (!*buf) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes of %s", need, what);
    return NNQ_OK;
}
