/* The first-fit activation arena (core/arena.h):
 *   - random lifetimes: no two buffers live at the same step share a byte,
 *     offsets are aligned, the arena is no larger than the sum of sizes and
 *     at least the largest live set;
 *   - a chain (each buffer read only by the next step) reuses the bytes of
 *     buffers that died: two slots suffice;
 *   - an operator's output never shares bytes with an input it reads at
 *     that step; more buffers than the room asked for fail cleanly;
 *   - reserve grows and keeps the alignment. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/arena.h"

enum { N = 200 };

static void test_random_lifetimes(void) {
    nnq_arena_planner ap;
    CHECK_OK(nnq_arena_planner_init(&ap, N));
    size_t off[N], size[N];
    int from[N], last[N];
    uint32_t seed = 7;
    size_t sum = 0;
    for (int i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        from[i] = i / 2; /* two buffers defined per step */
        last[i] = from[i] + (int)(seed >> 28);
        size[i] = 1 + (seed >> 8) % 5000;
        CHECK_OK(nnq_arena_place(&ap, size[i], from[i], last[i], &off[i]));
        CHECK(off[i] % NNQ_ARENA_ALIGN == 0);
        sum += (size[i] + NNQ_ARENA_ALIGN - 1) / NNQ_ARENA_ALIGN * NNQ_ARENA_ALIGN;
    }
    size_t peak_live = 0;
    for (int step = 0; step < N; step++) {
        size_t live = 0;
        for (int i = 0; i < N; i++)
            if (from[i] <= step && step <= last[i]) live += size[i];
        if (live > peak_live) peak_live = live;
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            const int lo = from[i] > from[j] ? from[i] : from[j];
            const int hi = last[i] < last[j] ? last[i] : last[j];
            if (lo > hi) continue; /* never live together */
            CHECK(off[i] + size[i] <= off[j] || off[j] + size[j] <= off[i]);
        }
    CHECK(ap.total <= sum && ap.total >= peak_live);
    CHECK(ap.total < sum); /* something was reused */
    nnq_arena_planner_free(&ap);
}

static void test_chain_and_limits(void) {
    nnq_arena_planner ap;
    CHECK_OK(nnq_arena_planner_init(&ap, 10));
    size_t off[10];
    for (int i = 0; i < 10; i++) /* buffer i: written at step i, read at step i + 1 */
        CHECK_OK(nnq_arena_place(&ap, 1000, i, i + 1, &off[i]));
    CHECK(ap.total == 2 * 1024);
    for (int i = 1; i < 10; i++) CHECK(off[i] != off[i - 1]); /* output apart from its input */
    size_t extra;
    CHECK_STATUS(nnq_arena_place(&ap, 1, 11, 11, &extra), NNQ_ERR_INVALID);
    nnq_arena_planner_free(&ap);
    CHECK(ap.blocks == NULL && ap.live == NULL);

    void *buf = NULL;
    size_t cap = 0;
    CHECK_OK(nnq_arena_reserve(&buf, &cap, 100, "test buffer"));
    CHECK(buf && cap == 128 && (uintptr_t)buf % NNQ_ARENA_ALIGN == 0);
    void *same = buf;
    CHECK_OK(nnq_arena_reserve(&buf, &cap, 64, "test buffer"));
    CHECK(buf == same && cap == 128); /* never shrinks */
    CHECK_OK(nnq_arena_reserve(&buf, &cap, 5000, "test buffer"));
    CHECK(cap >= 5000 && (uintptr_t)buf % NNQ_ARENA_ALIGN == 0);
    memset(buf, 1, cap);
    free(buf);
}

int main(void) {
    test_random_lifetimes();
    test_chain_and_limits();
    return check_finish("test_core_arena");
}
