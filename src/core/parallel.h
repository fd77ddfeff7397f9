/* OpenMP loops and regions that cost nothing when one thread runs them.
 *
 * libgomp makes a futex system call at the end of every parallel region,
 * even a region of one thread or one whose if() clause is false (strace: one
 * call per region, ~1 us). The integer engine runs ~50 regions per image: on
 * one thread, and in every one-thread sub-executor of a split batch, that
 * was ~10 % of a small model's time. These macros open a region only for
 * two or more threads and otherwise run the same statements as plain code.
 *
 * Inside the body use the macro's thread index and count, never
 * omp_get_thread_num(): in a split batch's sub-executor the plain code runs
 * inside the executor's outer region, where omp_get_thread_num() is the
 * outer thread's index. For the same reason the body holds no OpenMP
 * work-sharing construct (it would bind to that outer region). */
#ifndef NNQ_CORE_PARALLEL_H
#define NNQ_CORE_PARALLEL_H

#include <omp.h>
#include <stdint.h>

/* for (int64_t i = 0; i < n; i++) { body }, iterations split in contiguous
 * static chunks over `nthreads` threads (one: a plain loop). */
#define NNQ_PARALLEL_FOR(nthreads, i, n, ...)                                   \
    do {                                                                        \
        const int nnq_nt_ = (nthreads);                                         \
        const int64_t nnq_n_ = (n);                                             \
        if (nnq_nt_ > 1 && nnq_n_ > 1) {                                        \
            _Pragma("omp parallel for num_threads(nnq_nt_) schedule(static)")   \
            for (int64_t i = 0; i < nnq_n_; i++) { __VA_ARGS__ }                \
        } else {                                                                \
            for (int64_t i = 0; i < nnq_n_; i++) { __VA_ARGS__ }                \
        }                                                                       \
    } while (0)

/* { body } once per thread, with `tid` (0..nt-1) and `nt` declared
 * (one thread: once, with tid 0 and nt 1). */
#define NNQ_PARALLEL(nthreads, tid, nt, ...)                                    \
    do {                                                                        \
        const int nnq_nt_ = (nthreads);                                         \
        if (nnq_nt_ > 1) {                                                      \
            _Pragma("omp parallel num_threads(nnq_nt_)")                        \
            {                                                                   \
                const int tid = omp_get_thread_num(), nt = omp_get_num_threads(); \
                (void)tid, (void)nt;                                            \
                __VA_ARGS__                                                     \
            }                                                                   \
        } else {                                                                \
            const int tid = 0, nt = 1;                                          \
            (void)tid, (void)nt;                                                \
            __VA_ARGS__                                                         \
        }                                                                       \
    } while (0)

/* Thread tid's contiguous share [*lo, *hi) of n items over nt threads (the
 * first n % nt threads take one more), as schedule(static) splits them. */
static inline void nnq_static_share(int64_t n, int tid, int nt, int64_t *lo, int64_t *hi) {
    const int64_t q = n / nt, r = n % nt;
    *lo = tid * q + (tid < r ? tid : r);
    *hi = *lo + q + (tid < r ? 1 : 0);
}

#endif
