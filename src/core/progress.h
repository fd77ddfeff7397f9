/* Progress of long library steps (calibration, AdaRound, sensitivity,
 * QAT epochs), reported to whoever shows it: the library never prints a
 * bar itself, the CLI turns these calls into a bar on a terminal or plain
 * periodic lines in a log (cli/progress.h). */
#ifndef NNQ_CORE_PROGRESS_H
#define NNQ_CORE_PROGRESS_H

#include <stdint.h>

/* `done` of `total` units of step `step` (a short label such as
 * "calibration"); done == total ends the step. */
typedef void (*nnq_progress_fn)(void *user, const char *step, const char *unit, int64_t done,
                                int64_t total);

typedef struct nnq_progress {
    nnq_progress_fn fn; /* NULL: nobody listens */
    void *user;
} nnq_progress;

static inline void nnq_progress_report(const nnq_progress *p, const char *step, const char *unit,
                                       int64_t done, int64_t total) {
    if (p && p->fn) p->fn(p->user, step, unit, done, total);
}

#endif
