/* Line charts over a shared numeric or categorical x (e.g. accuracy against
 * bit-width for several recipes). Missing points break a line; a point
 * with no neighbour gets a marker so it never disappears. */
#include <math.h>
#include <stdlib.h>

#include "report/report_svg.h"

#define LEFT 72.0
#define RIGHT 24.0
#define PLOT_H 300.0
#define MAX_CAT_LABELS 24

static double x_pos(const nnq_report_line_chart *c, const svg_scale *x, int i) {
    if (c->x) return svg_map(x, c->x[i]);
    return x->r0 + (i + 0.5) * (x->r1 - x->r0) / c->n_x;
}

static bool point_ok(const nnq_report_line_chart *c, int s, int i) {
    return i >= 0 && i < c->n_x && !rep_missing(c->y[(size_t)s * c->n_x + i]);
}

static void x_text(const nnq_report_line_chart *c, int i, char *buf, size_t cap) {
    if (c->x) nnq_report_fmt_number(c->x[i], NNQ_FMT_SIG(6), buf, cap);
    else snprintf(buf, cap, "%s", c->x_labels[i]);
}

static void marker(FILE *fp, const nnq_report_line_chart *c, int s, int i, double px, double py) {
    char num[40], xs[64];
    nnq_report_fmt_number(c->y[(size_t)s * c->n_x + i], c->fmt, num, sizeof num);
    fprintf(fp, "<circle fill=\"%s\" stroke=\"#fff\" stroke-width=\"1.5\" r=\"4\" cx=\"",
            REP_COLOR(s));
    svg_num(fp, px);
    fputs("\" cy=\"", fp);
    svg_num(fp, py);
    fputs("\"><title>", fp);
    rep_put_html(fp, c->series_names[s]);
    fputs(" \xe2\x80\x94 ", fp);
    if (c->x) {
        x_text(c, i, xs, sizeof xs);
        rep_put_html(fp, xs);
    } else {
        rep_put_html(fp, c->x_labels[i]);
    }
    fprintf(fp, ": %s</title></circle>\n", num);
}

static void categorical_axis(FILE *fp, const nnq_report_line_chart *c, const svg_scale *x,
                             double y_top, double y0) {
    int every = (c->n_x + MAX_CAT_LABELS - 1) / MAX_CAT_LABELS;
    for (int i = 0; i < c->n_x; i += every) {
        double px = x_pos(c, x, i);
        fputs("<line class=\"g\" x1=\"", fp);
        svg_num(fp, px);
        fputs("\" x2=\"", fp);
        svg_num(fp, px);
        fputs("\" y1=\"", fp);
        svg_num(fp, y_top);
        fputs("\" y2=\"", fp);
        svg_num(fp, y0);
        fputs("\"/>\n<text class=\"tk\" text-anchor=\"middle\" x=\"", fp);
        svg_num(fp, px);
        fputs("\" y=\"", fp);
        svg_num(fp, y0 + 16);
        fputs("\">", fp);
        rep_put_html_trunc(fp, c->x_labels[i], 16);
        fputs("</text>\n", fp);
    }
    if (c->x_label && *c->x_label) {
        fputs("<text class=\"ax\" text-anchor=\"middle\" x=\"", fp);
        svg_num(fp, (x->r0 + x->r1) / 2);
        fputs("\" y=\"", fp);
        svg_num(fp, y0 + 36);
        fputs("\">", fp);
        rep_put_html(fp, c->x_label);
        fputs("</text>\n", fp);
    }
}

void rep_svg_lines(FILE *fp, const nnq_report_line_chart *c) {
    const int ns = c->n_series, n = c->n_x;
    const char *notes[NNQ_REPORT_MAX_SERIES] = {0};
    double ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < ns; s++) {
        notes[s] = "(no data)";
        for (int i = 0; i < n; i++)
            if (point_ok(c, s, i)) {
                double v = c->y[(size_t)s * n + i];
                ylo = fmin(ylo, v);
                yhi = fmax(yhi, v);
                notes[s] = NULL;
            }
    }
    if (!(ylo <= yhi)) { /* no point at all (also n_x == 0) */
        svg_empty(fp, c->title);
        return;
    }
    const double legend_h = svg_legend_height(LEFT, ns, c->series_names, notes);
    const double top = 10 + legend_h + 8, y0 = top + PLOT_H;
    const double h = y0 + 52;

    svg_ticks ty, tx;
    svg_nice_ticks(&ylo, &yhi, 6, true, &ty);
    svg_scale y = {ylo, yhi, y0, top, false};
    svg_scale x = {0, 1, LEFT + 14, SVG_W - RIGHT - 14, false};
    if (c->x && n > 0) {
        double xlo = c->x[0], xhi = c->x[0];
        for (int i = 1; i < n; i++) xlo = fmin(xlo, c->x[i]), xhi = fmax(xhi, c->x[i]);
        svg_nice_ticks(&xlo, &xhi, 8, false, &tx);
        x.d0 = xlo;
        x.d1 = xhi;
    }
    if (!c->x) x.r0 = LEFT, x.r1 = SVG_W - RIGHT;

    svg_begin(fp, h, c->title);
    svg_legend(fp, LEFT, 8, ns, c->series_names, notes, 'l', 0);
    svg_axis_y(fp, &y, &ty, LEFT, SVG_W - RIGHT, c->y_label);
    if (c->x && n > 0) svg_axis_x(fp, &x, &tx, top, y0, c->x_label);
    else if (!c->x) categorical_axis(fp, c, &x, top, y0);

    for (int s = 0; s < ns; s++) {
        /* One path per series, a new subpath after each gap. */
        bool open = false, started = false;
        for (int i = 0; i < n; i++) {
            if (!point_ok(c, s, i)) {
                open = false;
                continue;
            }
            if (!started) {
                fprintf(fp, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" "
                            "stroke-linejoin=\"round\" d=\"", REP_COLOR(s));
                started = true;
            }
            fputs(open ? " L" : " M", fp);
            svg_num(fp, x_pos(c, &x, i));
            fputc(' ', fp);
            svg_num(fp, svg_map(&y, c->y[(size_t)s * n + i]));
            open = true;
        }
        if (started) {
            fputs("\"><title>", fp);
            rep_put_html(fp, c->series_names[s]);
            fputs("</title></path>\n", fp);
        }
        for (int i = 0; i < n; i++) {
            if (!point_ok(c, s, i)) continue;
            bool alone = !point_ok(c, s, i - 1) && !point_ok(c, s, i + 1);
            if (c->markers || alone)
                marker(fp, c, s, i, x_pos(c, &x, i), svg_map(&y, c->y[(size_t)s * n + i]));
        }
    }
    svg_end(fp);
}
