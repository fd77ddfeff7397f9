/* Activation arenas of the two executors (ops/executor.c, the float
 * graph; engine/iprog_run.c, the integer program): first-fit placement of
 * buffers by lifetime, and aligned buffers that only grow. */
#ifndef NNQ_CORE_ARENA_H
#define NNQ_CORE_ARENA_H

#include <stddef.h>

#include "core/status.h"

#define NNQ_ARENA_ALIGN 64

typedef struct nnq_arena_block {
    size_t off, size;
    int last; /* the last step that reads it */
} nnq_arena_block;

/* Places buffers one by one in order of definition: a buffer defined at
 * step `from` and read until step `last` goes in the lowest gap among the
 * blocks still live at `from`. A block read at `from` is still live, so an
 * operator's output never shares bytes with one of its inputs. */
typedef struct nnq_arena_planner {
    nnq_arena_block *blocks, *live;
    int n, cap;
    size_t total; /* the arena's size so far */
} nnq_arena_planner;

/* Room for up to cap buffers. */
nnq_status nnq_arena_planner_init(nnq_arena_planner *p, int cap);
/* The offset of a new buffer of `bytes` (rounded up to NNQ_ARENA_ALIGN,
 * at least that) live over steps [from, last]; fails past cap. */
nnq_status nnq_arena_place(nnq_arena_planner *p, size_t bytes, int from, int last, size_t *off);
void nnq_arena_planner_free(nnq_arena_planner *p);

/* *buf (NNQ_ARENA_ALIGN-aligned, *cap bytes) grown to at least `need`
 * bytes, rounded up to the alignment; the old contents are not kept.
 * `what` names the buffer in the error. */
nnq_status nnq_arena_reserve(void **buf, size_t *cap, size_t need, const char *what);

#endif
