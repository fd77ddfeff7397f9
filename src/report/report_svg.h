/* Drawing helpers shared by the chart files (report_svg_*.c): scales, nice
 * ticks, axes, legends, the palette. Coordinates are in the viewBox's user
 * units (SVG_W wide); the page scales the SVG to its column width. */
#ifndef NNQ_REPORT_SVG_H
#define NNQ_REPORT_SVG_H

#include <stdio.h>

#include "report/report_impl.h"

#define SVG_W 1000.0
#define SVG_CHAR_W 6.8 /* average width of a 12px character, for layout */
#define SVG_MAX_TICKS 24

extern const char *const rep_palette[NNQ_REPORT_MAX_SERIES];
#define REP_COLOR(i) rep_palette[(i) % NNQ_REPORT_MAX_SERIES]

/* Linear or log10 map from data [d0, d1] to pixels [r0, r1]. */
typedef struct svg_scale {
    double d0, d1, r0, r1;
    bool log;
} svg_scale;

double svg_map(const svg_scale *s, double v);

typedef struct svg_ticks {
    int n;
    double v[SVG_MAX_TICKS];
    double step;
    bool log;
} svg_ticks;

/* Nice ticks (1, 2, 5 × 10^k) for about `target` intervals over [*lo, *hi];
 * extend widens lo and hi to the outer ticks (axes that start at a tick),
 * otherwise only ticks inside are kept. A degenerate or empty range is
 * widened first. */
void svg_nice_ticks(double *lo, double *hi, int target, bool extend, svg_ticks *t);
/* Powers of ten covering [*lo, *hi] (both > 0), widened to them. */
void svg_log_ticks(double *lo, double *hi, svg_ticks *t);
/* Label of tick v: decimals from the step, k/M/G for large values. */
const char *svg_tick_label(const svg_ticks *t, double v, char *buf, size_t cap);

/* <svg viewBox="0 0 SVG_W h"> with an accessible name; the caller closes
 * it with svg_end. */
void svg_begin(FILE *fp, double h, const char *title);
void svg_end(FILE *fp);

/* A number as a coordinate (one decimal is plenty at this size). */
void svg_num(FILE *fp, double v);

/* Horizontal grid lines and tick labels left of x0 for a y axis spanning
 * the plot [x0, x1]; label (rotated) at the far left, may be NULL. */
void svg_axis_y(FILE *fp, const svg_scale *y, const svg_ticks *t, double x0, double x1,
                const char *label);
/* Vertical grid lines over [y_top, y0] and tick labels below y0; label
 * centred under the plot [x0, x1], may be NULL. */
void svg_axis_x(FILE *fp, const svg_scale *x, const svg_ticks *t, double y_top, double y0,
                const char *label);

/* Legend entries laid out in rows from (x, y), wrapping at SVG_W, entry i
 * in colour first_color + i; notes (may be NULL) follow names in grey;
 * swatch: 's' square, 'l' line, 'd' dashed line. Returns the height used. */
double svg_legend(FILE *fp, double x, double y, int n, const char *const *names,
                  const char *const *notes, char swatch, int first_color);
/* The height svg_legend will use, for layout before drawing. */
double svg_legend_height(double x, int n, const char *const *names, const char *const *notes);

/* Centred grey "no data" text. */
void svg_no_data(FILE *fp, double cx, double cy);
/* A whole chart with nothing to draw: a short SVG saying "no data". */
void svg_empty(FILE *fp, const char *title);

/* Charts, one file each. */
void rep_svg_bars(FILE *fp, const nnq_report_bar_chart *c);
void rep_svg_lines(FILE *fp, const nnq_report_line_chart *c);
void rep_svg_ranges(FILE *fp, const nnq_report_range_chart *c);
void rep_svg_hist(FILE *fp, const nnq_report_histogram *c);

#endif
