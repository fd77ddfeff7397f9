/* The parallel loop and region macros (core/parallel.h):
 *   - nnq_static_share: the shares of n items over nt threads are
 *     contiguous, disjoint, cover [0, n) and differ in size by at most one;
 *   - NNQ_PARALLEL_FOR visits every index exactly once for 1, 2 and 3
 *     threads, also when it runs inside another parallel region (a split
 *     batch's sub-executor: one thread, plain code);
 *   - NNQ_PARALLEL gives tid 0..nt-1, each once; one thread: tid 0, nt 1
 *     even inside an outer region (where omp_get_thread_num() is not 0). */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "core/parallel.h"

static void test_static_share(void) {
    for (int64_t n = 0; n <= 40; n++)
        for (int nt = 1; nt <= 7; nt++) {
            int64_t next = 0, smin = n + 1, smax = -1;
            for (int t = 0; t < nt; t++) {
                int64_t lo, hi;
                nnq_static_share(n, t, nt, &lo, &hi);
                CHECK(lo == next && hi >= lo);
                next = hi;
                if (hi - lo < smin) smin = hi - lo;
                if (hi - lo > smax) smax = hi - lo;
            }
            CHECK(next == n && smax - smin <= 1);
        }
}

enum { N = 1000 };

static void test_for_visits_once(void) {
    for (int nt = 1; nt <= 3; nt++) {
        int hits[N];
        memset(hits, 0, sizeof hits);
        NNQ_PARALLEL_FOR(nt, i, N, {
            _Pragma("omp atomic") hits[i]++;
        });
        int bad = 0;
        for (int i = 0; i < N; i++) bad += hits[i] != 1;
        CHECK(bad == 0);
    }
}

static void test_inside_outer_region(void) {
    int hits[2][N];
    memset(hits, 0, sizeof hits);
    int tids[2] = {-1, -1}, nts[2] = {-1, -1}, outer_ids[2] = {-1, -1};
    #pragma omp parallel num_threads(2)
    {
        const int w = omp_get_thread_num();
        if (w < 2) {
            outer_ids[w] = w;
            /* one thread inside: plain code, the whole range on this thread */
            NNQ_PARALLEL_FOR(1, i, N, hits[w][i]++;);
            NNQ_PARALLEL(1, tid, nt, {
                tids[w] = tid;
                nts[w] = nt;
            });
        }
    }
    int bad = 0;
    for (int w = 0; w < 2; w++) {
        if (outer_ids[w] < 0) continue; /* the runtime gave one thread */
        for (int i = 0; i < N; i++) bad += hits[w][i] != 1;
        CHECK(tids[w] == 0 && nts[w] == 1);
    }
    CHECK(bad == 0);
}

static void test_region_ids(void) {
    int seen[4] = {0, 0, 0, 0}, count = 0;
    NNQ_PARALLEL(4, tid, nt, {
        _Pragma("omp critical") {
            if (tid >= 0 && tid < 4 && nt >= 1 && nt <= 4) seen[tid]++;
            count = nt;
        }
    });
    CHECK(count >= 1 && count <= 4);
    for (int t = 0; t < 4; t++) CHECK(seen[t] == (t < count ? 1 : 0));
}

int main(void) {
    test_static_share();
    test_for_visits_once();
    test_inside_outer_region();
    test_region_ids();
    return check_finish("test_core_parallel");
}
