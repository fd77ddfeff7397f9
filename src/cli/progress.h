/* Progress reporting on stderr for long loops. On a terminal: one bar
 * redrawn in place with rate and ETA; otherwise (logs, CI, pipes) a plain
 * line at every ~10% so the log stays short and readable. */
#ifndef NNQ_CLI_PROGRESS_H
#define NNQ_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

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

#endif
