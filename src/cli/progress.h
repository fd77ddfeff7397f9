/* Progress reporting on stderr for long loops. On a terminal: one bar
 * redrawn in place with rate and ETA; otherwise (logs, CI, pipes) a plain
 * line at every ~10% so the log stays short and readable. */
#ifndef NNQ_CLI_PROGRESS_H
#define NNQ_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress {
    const char *label;
    const char *unit;  /* "images" */
    int64_t total;
    bool enabled, tty;
    bool drawn;        /* a bar is on screen and must be cleared */
    double t0, last_draw;
    int next_tenth;    /* plain mode: next 10% step to print */
} cli_progress;

/* Monotonic seconds. */
double cli_now(void);

void cli_progress_start(cli_progress *p, const char *label, const char *unit, int64_t total,
                        bool enabled);
void cli_progress_update(cli_progress *p, int64_t done);
/* Remove the bar (terminal) so the next line starts clean. */
void cli_progress_finish(cli_progress *p);

/* A listener for the library's progress reports (core/progress.h) that
 * also carries its log lines (`log`, for nnq_ptq_log.fp): on a terminal a
 * line clears the bar, is printed, and the bar is drawn again below it, so
 * the two never garble each other; in a log the bar is plain lines. */
typedef struct cli_sink {
    cli_progress bar;
    char step[48];
    bool enabled, active;
    int64_t done;
    FILE *log; /* NULL when not enabled */
} cli_sink;

void cli_sink_open(cli_sink *s, bool enabled);
void cli_sink_close(cli_sink *s);
/* nnq_progress_fn; user is the cli_sink. */
void cli_sink_progress(void *user, const char *step, const char *unit, int64_t done, int64_t total);

#endif
