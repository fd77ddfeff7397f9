/* Histograms (e.g. of one activation) with the clipping ranges that each
 * range-setting method chose drawn over them as labelled vertical lines.
 * Thousands of calibration bins are merged into at most MAX_DRAWN for the
 * picture; the x axis covers the data and every marker. */
#include <math.h>
#include <stdlib.h>

#include "report/report_svg.h"

#define LEFT 72.0
#define RIGHT 24.0
#define PLOT_H 240.0
#define MAX_DRAWN 200
#define LABEL_ROWS 3

static double count_at(const nnq_report_histogram *c, int i) {
    double v = c->counts[i];
    return rep_missing(v) || v < 0 ? 0 : v;
}

/* A dashed line from y_top (under the marker's label) down to the axis. */
static void marker_line(FILE *fp, const svg_scale *x, double v, int m, const char *label,
                        double y_top, double y0) {
    if (rep_missing(v)) return;
    double px = svg_map(x, v);
    fprintf(fp, "<line stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"5 3\" x1=\"",
            REP_COLOR(m + 1));
    svg_num(fp, px);
    fputs("\" x2=\"", fp);
    svg_num(fp, px);
    fputs("\" y1=\"", fp);
    svg_num(fp, y_top);
    fputs("\" y2=\"", fp);
    svg_num(fp, y0);
    fputs("\"><title>", fp);
    rep_put_html(fp, label);
    fputs("</title></line>\n", fp);
}

void rep_svg_hist(FILE *fp, const nnq_report_histogram *c) {
    const int n = c->n_bins, nm = c->n_markers;
    if (n == 0 && nm == 0) {
        svg_empty(fp, c->title);
        return;
    }
    const char *names[NNQ_REPORT_MAX_SERIES] = {0}, *notes[NNQ_REPORT_MAX_SERIES] = {0};
    char note_buf[NNQ_REPORT_MAX_SERIES][96];
    for (int m = 0; m < nm; m++) {
        char a[40], b[40];
        names[m] = c->markers[m].label;
        nnq_report_fmt_number(c->markers[m].lo, c->fmt, a, sizeof a);
        if (rep_missing(c->markers[m].hi)) snprintf(note_buf[m], sizeof note_buf[m], "%s", a);
        else
            snprintf(note_buf[m], sizeof note_buf[m], "[%s, %s]", a,
                     nnq_report_fmt_number(c->markers[m].hi, c->fmt, b, sizeof b));
        notes[m] = note_buf[m];
    }
    /* Colours: the bars take the palette's first colour, markers the next. */
    const double legend_h = nm > 0 ? svg_legend_height(LEFT, nm, names, notes) : 0;
    const double labels_h = nm > 0 ? LABEL_ROWS * 14 : 0;
    const double top = 10 + legend_h + labels_h + 6, y0 = top + PLOT_H, h = y0 + 52;

    /* x domain: the bins and the markers. */
    double xlo = INFINITY, xhi = -INFINITY;
    if (n > 0) xlo = c->edges[0], xhi = c->edges[n];
    for (int m = 0; m < nm; m++)
        for (int k = 0; k < 2; k++) {
            double v = k ? c->markers[m].hi : c->markers[m].lo;
            if (!rep_missing(v)) xlo = fmin(xlo, v), xhi = fmax(xhi, v);
        }
    if (!(xlo <= xhi)) xlo = 0, xhi = 1;
    if (xlo == xhi) xlo -= 1, xhi += 1;
    svg_ticks tx, ty;
    double dlo = xlo, dhi = xhi;
    svg_nice_ticks(&dlo, &dhi, 8, false, &tx);
    const svg_scale x = {dlo, dhi, LEFT, SVG_W - RIGHT, false};

    /* Merge bins into groups of `per` for drawing. */
    const int per = n > MAX_DRAWN ? (n + MAX_DRAWN - 1) / MAX_DRAWN : 1;
    double cmax = 0, cminpos = INFINITY;
    for (int i = 0; i < n; i += per) {
        double sum = 0;
        for (int j = i; j < i + per && j < n; j++) sum += count_at(c, j);
        cmax = fmax(cmax, sum);
        if (sum > 0) cminpos = fmin(cminpos, sum);
    }
    svg_scale y = {0, 1, y0, top, false};
    if (c->log_y && cmax > 0) {
        double lo = cminpos, hi = cmax;
        svg_log_ticks(&lo, &hi, &ty);
        y.d0 = lo, y.d1 = hi, y.log = true;
    } else {
        double lo = 0, hi = cmax > 0 ? cmax : 1;
        svg_nice_ticks(&lo, &hi, 5, true, &ty);
        y.d0 = lo, y.d1 = hi;
    }

    svg_begin(fp, h, c->title);
    if (nm > 0) svg_legend(fp, LEFT, 8, nm, names, notes, 'd', 1);
    svg_axis_y(fp, &y, &ty, LEFT, SVG_W - RIGHT, c->log_y ? "count (log)" : "count");
    svg_axis_x(fp, &x, &tx, top, y0, c->x_label);
    if (n == 0 || cmax == 0) svg_no_data(fp, (LEFT + SVG_W - RIGHT) / 2, top + PLOT_H / 2);
    if (n > 0 && cmax > 0) {
        /* Few wide bins: a white edge keeps neighbours apart. */
        fprintf(fp, "<path fill=\"%s\" fill-opacity=\"0.8\"%s d=\"", REP_COLOR(0),
                (n + per - 1) / per <= 60 ? " stroke=\"#fff\" stroke-width=\"1\"" : "");
        for (int i = 0; i < n; i += per) {
            const int end = i + per < n ? i + per : n;
            double sum = 0;
            for (int j = i; j < end; j++) sum += count_at(c, j);
            if (sum <= 0) continue;
            double xa = svg_map(&x, c->edges[i]), xb = svg_map(&x, c->edges[end]);
            if (xb - xa < 0.6) xb = xa + 0.6;
            fputc('M', fp);
            svg_num(fp, xa);
            fputc(' ', fp);
            svg_num(fp, y0);
            fputc('V', fp);
            svg_num(fp, svg_map(&y, sum));
            fputc('H', fp);
            svg_num(fp, xb);
            fputc('V', fp);
            svg_num(fp, y0);
            fputc('Z', fp);
        }
        fputs("\"/>\n", fp);
    }
    /* Marker lines, with their label at the top, staggered in rows. */
    for (int m = 0; m < nm; m++) {
        const nnq_report_marker *mk = &c->markers[m];
        double ytext = top - labels_h + (m % LABEL_ROWS) * 14 + 8;
        marker_line(fp, &x, mk->lo, m, mk->label, ytext + 6, y0);
        marker_line(fp, &x, mk->hi, m, mk->label, ytext + 6, y0);
        double v = rep_missing(mk->lo) ? mk->hi : mk->lo;
        if (rep_missing(v)) continue;
        double px = svg_map(&x, v);
        bool right_side = px > SVG_W - RIGHT - 120; /* keep the label inside the chart */
        fprintf(fp, "<text class=\"ml\" fill=\"%s\" text-anchor=\"%s\" x=\"", REP_COLOR(m + 1),
                right_side ? "end" : "start");
        svg_num(fp, right_side ? px - 4 : px + 4);
        fputs("\" y=\"", fp);
        svg_num(fp, ytext + 2);
        fputs("\">", fp);
        rep_put_html_trunc(fp, mk->label, 24);
        fputs("</text>\n", fp);
    }
    svg_end(fp);
}
