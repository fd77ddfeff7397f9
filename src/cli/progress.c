/* Progress bar / plain progress lines on stderr. */
#define _GNU_SOURCE /* fopencookie; also clock_gettime, fileno */
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define REDRAW_SECONDS 0.1

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, const char *unit, int64_t total,
                        bool enabled) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->enabled = enabled && total > 0;
    p->tty = isatty(fileno(stderr)) == 1;
    p->drawn = false;
    p->t0 = cli_now();
    p->last_draw = -1;
    p->next_tenth = 1;
}

static void draw_bar(cli_progress *p, int64_t done, double elapsed) {
    double frac = (double)done / (double)p->total;
    int fill = (int)(frac * BAR_WIDTH + 0.5);
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    /* \r returns to column 0; \033[K erases what a longer line left behind. */
    /* Rate and ETA only once they mean something (a second of data). */
    char speed[64] = "";
    if (elapsed >= 1.0 && rate > 0)
        snprintf(speed, sizeof speed, "  %.*f/s  ETA %.0fs", rate < 10 ? 1 : 0, rate, eta);
    fprintf(stderr, "\r%s [%s] %3.0f%% %lld/%lld %s%s\033[K", p->label, bar, 100.0 * frac,
            (long long)done, (long long)p->total, p->unit, speed);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_update(cli_progress *p, int64_t done) {
    if (!p->enabled) return;
    double now = cli_now();
    if (p->tty) {
        if (done < p->total && p->last_draw >= 0 && now - p->last_draw < REDRAW_SECONDS) return;
        p->last_draw = now;
        draw_bar(p, done, now - p->t0);
        return;
    }
    int tenth = (int)(10 * done / p->total);
    if (tenth < p->next_tenth) return;
    p->next_tenth = tenth + 1;
    fprintf(stderr, "%s: %lld/%lld %s (%d%%)\n", p->label, (long long)done,
            (long long)p->total, p->unit, (int)(100 * done / p->total));
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p) {
    if (p->enabled && p->tty && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = false;
}

/* ---- library progress and log lines on one stderr ---- */

static ssize_t sink_write(void *cookie, const char *buf, size_t n) {
    cli_sink *s = cookie;
    const bool bar = s->active && s->bar.tty && s->bar.drawn;
    if (bar) cli_progress_finish(&s->bar);
    fwrite(buf, 1, n, stderr);
    fflush(stderr);
    if (bar && n > 0 && buf[n - 1] == '\n') {
        s->bar.last_draw = -1; /* redraw now, below the line */
        cli_progress_update(&s->bar, s->done);
    }
    return (ssize_t)n;
}

void cli_sink_open(cli_sink *s, bool enabled) {
    memset(s, 0, sizeof *s);
    s->enabled = enabled;
    if (!enabled) return;
    const cookie_io_functions_t io = {.write = sink_write};
    s->log = fopencookie(s, "w", io);
    if (s->log) setvbuf(s->log, NULL, _IOLBF, 0);
    else s->log = stderr;
}

void cli_sink_close(cli_sink *s) {
    if (s->active) cli_progress_finish(&s->bar);
    s->active = false;
    if (s->log && s->log != stderr) fclose(s->log);
    s->log = NULL;
}

void cli_sink_progress(void *user, const char *step, const char *unit, int64_t done, int64_t total) {
    cli_sink *s = user;
    if (!s->enabled) return;
    if (s->log && s->log != stderr) fflush(s->log);
    if (!s->active || strcmp(s->step, step) != 0) {
        if (s->active) cli_progress_finish(&s->bar);
        snprintf(s->step, sizeof s->step, "%s", step);
        cli_progress_start(&s->bar, s->step, unit, total, true);
        s->active = true;
    }
    s->done = done;
    cli_progress_update(&s->bar, done);
    if (done >= total) {
        cli_progress_finish(&s->bar);
        s->active = false;
    }
}
