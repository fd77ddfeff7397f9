/* Minimal assertion helpers for nnq's CTest executables. A failed check
 * prints file:line and the expression, and the test exits non-zero at the
 * end (so one run reports every failure). */
#ifndef NNQ_TESTS_CHECK_H
#define NNQ_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/status.h"

static int check_failures_ = 0;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            check_failures_++;                                                 \
        }                                                                      \
    } while (0)

/* Expect NNQ_OK; print the library's message otherwise. */
#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        nnq_status check_s_ = (expr);                                          \
        if (check_s_ != NNQ_OK) {                                              \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, \
                    #expr, nnq_status_name(check_s_), nnq_last_error());       \
            check_failures_++;                                                 \
        }                                                                      \
    } while (0)

/* Expect a specific failing status. */
#define CHECK_STATUS(expr, want)                                               \
    do {                                                                       \
        nnq_status check_s_ = (expr);                                          \
        if (check_s_ != (want)) {                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n",       \
                    __FILE__, __LINE__, #expr, nnq_status_name(check_s_),      \
                    nnq_status_name(want), nnq_last_error());                  \
            check_failures_++;                                                 \
        }                                                                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                       \
        double check_a_ = (a), check_b_ = (b);                                 \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                           \
            fprintf(stderr, "%s:%d: %s = %g, %s = %g, |diff| > %g\n",          \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_,            \
                    (double)(tol));                                            \
            check_failures_++;                                                 \
        }                                                                      \
    } while (0)

/* Normalised error (ggml style): mse(a, b) / mse(b, 0); 0 when b is all zero
 * and a equals it. Scale-aware, so one tolerance fits every magnitude. */
static inline double check_nmse(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

static inline int check_finish(const char *name) {
    if (check_failures_) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures_);
        return 1;
    }
    fprintf(stderr, "%s: all checks passed\n", name);
    return 0;
}

#endif
