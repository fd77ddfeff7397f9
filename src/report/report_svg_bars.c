/* Horizontal bar charts: one row per label, one bar per series in a row
 * (grouped when there are several), ranked on request. Rows are striped so
 * a label can be followed to its bars across a wide chart. */
#include <math.h>
#include <stdlib.h>

#include "report/report_svg.h"

#define LABEL_MAX_CHARS 36
#define VALUE_PAD 58.0 /* room for a value label beyond the longest bar */

typedef struct rank_key {
    double v;
    int i;
} rank_key;

/* Largest first, missing last, ties by original order (qsort is unstable). */
static int cmp_desc(const void *pa, const void *pb) {
    const rank_key *a = pa, *b = pb;
    bool ma = rep_missing(a->v), mb = rep_missing(b->v);
    if (ma != mb) return ma ? 1 : -1;
    if (!ma && a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static void bar(FILE *fp, const nnq_report_bar_chart *c, const svg_scale *x, int row, int s,
                double y, double h) {
    double v = c->values[(size_t)row * c->n_series + s];
    char num[40];
    nnq_report_fmt_number(v, c->fmt, num, sizeof num);
    double x0 = svg_map(x, 0);
    if (rep_missing(v)) { /* a dash at zero says "not measured", not "zero" */
        fputs("<text class=\"mu\" x=\"", fp);
        svg_num(fp, x0 + 4);
        fputs("\" y=\"", fp);
        svg_num(fp, y + h / 2 + 4);
        fprintf(fp, "\">%s</text>\n", num);
        return;
    }
    double x1 = svg_map(x, v);
    double left = fmin(x0, x1), w = fabs(x1 - x0);
    fprintf(fp, "<rect fill=\"%s\" x=\"", REP_COLOR(s));
    svg_num(fp, left);
    fputs("\" y=\"", fp);
    svg_num(fp, y);
    fputs("\" width=\"", fp);
    svg_num(fp, w < 0.5 ? 0.5 : w);
    fputs("\" height=\"", fp);
    svg_num(fp, h);
    fputs("\"><title>", fp);
    rep_put_html(fp, c->labels[row]);
    if (c->n_series > 1 && c->series_names[s][0]) {
        fputs(" \xe2\x80\x94 ", fp);
        rep_put_html(fp, c->series_names[s]);
    }
    fprintf(fp, ": %s</title></rect>\n", num);
    if (h >= 9) {
        bool neg = v < 0;
        fprintf(fp, "<text class=\"vl\" text-anchor=\"%s\" x=\"", neg ? "end" : "start");
        svg_num(fp, neg ? x1 - 4 : x1 + 4);
        fputs("\" y=\"", fp);
        svg_num(fp, y + h / 2 + 3.5);
        fprintf(fp, "\">%s</text>\n", num);
    }
}

void rep_svg_bars(FILE *fp, const nnq_report_bar_chart *c) {
    const int n = c->n_bars, ns = c->n_series;
    if (n == 0) {
        svg_empty(fp, c->title);
        return;
    }
    rank_key *order = malloc((size_t)n * sizeof *order);
    if (!order) return; /* the page shows the caption without a chart */
    for (int i = 0; i < n; i++) order[i] = (rank_key){c->values[(size_t)i * ns], i};
    if (c->sort_desc) qsort(order, (size_t)n, sizeof *order, cmp_desc);

    /* Layout: legend, rows, value axis. */
    size_t chars = 4;
    for (int i = 0; i < n; i++) {
        size_t l = rep_utf8_len(c->labels[i]);
        if (l > chars) chars = l;
    }
    if (chars > LABEL_MAX_CHARS) chars = LABEL_MAX_CHARS;
    const double left = 16 + (double)chars * SVG_CHAR_W;
    const double bar_h = ns == 1 ? 14 : ns <= 3 ? 10 : 7;
    const double row_h = ns * bar_h + (ns == 1 ? 6 : 8);
    const double legend_h = ns > 1 ? svg_legend_height(left, ns, c->series_names, NULL) + 6 : 0;
    const double top = 8 + legend_h;
    const double plot_h = n * row_h;
    const double h = top + plot_h + 52;

    double lo = 0, hi = 0;
    bool any = false;
    for (size_t k = 0; k < (size_t)n * ns; k++)
        if (!rep_missing(c->values[k])) {
            lo = fmin(lo, c->values[k]);
            hi = fmax(hi, c->values[k]);
            any = true;
        }
    if (!any) hi = 1;
    svg_ticks t;
    svg_nice_ticks(&lo, &hi, 6, true, &t);
    svg_scale x = {lo, hi, left + (lo < 0 ? VALUE_PAD : 0), SVG_W - VALUE_PAD, false};

    svg_begin(fp, h, c->title);
    if (ns > 1) svg_legend(fp, left, 6, ns, c->series_names, NULL, 's', 0);
    for (int r = 0; r < n; r += 2) { /* stripes */
        fputs("<rect class=\"st\" x=\"0\" y=\"", fp);
        svg_num(fp, top + r * row_h);
        fputs("\" width=\"", fp);
        svg_num(fp, SVG_W);
        fputs("\" height=\"", fp);
        svg_num(fp, row_h);
        fputs("\"/>\n", fp);
    }
    svg_axis_x(fp, &x, &t, top, top + plot_h, c->value_label);
    for (int r = 0; r < n; r++) {
        const int i = order[r].i;
        const double y = top + r * row_h;
        fputs("<text class=\"rl\" text-anchor=\"end\" x=\"", fp);
        svg_num(fp, left - 8);
        fputs("\" y=\"", fp);
        svg_num(fp, y + row_h / 2 + 4);
        fputs("\">", fp);
        if (rep_utf8_len(c->labels[i]) > LABEL_MAX_CHARS) { /* cut: full name on hover */
            fputs("<title>", fp);
            rep_put_html(fp, c->labels[i]);
            fputs("</title>", fp);
        }
        rep_put_html_trunc(fp, c->labels[i], LABEL_MAX_CHARS);
        fputs("</text>\n", fp);
        for (int s = 0; s < ns; s++)
            bar(fp, c, &x, i, s, y + (ns == 1 ? 3 : 4) + s * bar_h, bar_h - (ns == 1 ? 0 : 1));
    }
    svg_end(fp);
    free(order);
}
