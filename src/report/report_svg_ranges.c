/* Per-channel range charts: for each output channel of one tensor a
 * vertical bar from its min to its max, one stacked panel per series on the
 * same y axis, so "before CLE" / "after CLE" compare at a glance. Drawn as
 * one path per panel (a thousand channels stay a few kilobytes). */
#include <math.h>

#include "report/report_svg.h"

#define LEFT 72.0
#define RIGHT 24.0
#define PANEL_H 150.0
#define HEAD_H 24.0
#define AXIS_H 26.0
#define MAX_TOOLTIPS 256 /* per-channel hover boxes only for small layers */

static void bounds(const nnq_report_range_chart *c, int s, int i, double *lo, double *hi) {
    const size_t k = (size_t)s * c->n_channels + i;
    *lo = fmin(c->lo[k], c->hi[k]);
    *hi = fmax(c->lo[k], c->hi[k]);
}

static bool channel_ok(const nnq_report_range_chart *c, int s, int i) {
    const size_t k = (size_t)s * c->n_channels + i;
    return !rep_missing(c->lo[k]) && !rep_missing(c->hi[k]);
}

/* "channel widths span 53×": the spread that per-tensor quantization
 * suffers from and equalization reduces. */
static void spread_note(FILE *fp, const nnq_report_range_chart *c, int s) {
    double wmin = INFINITY, wmax = 0;
    for (int i = 0; i < c->n_channels; i++) {
        if (!channel_ok(c, s, i)) continue;
        double lo, hi;
        bounds(c, s, i, &lo, &hi);
        if (hi - lo > 0) wmin = fmin(wmin, hi - lo), wmax = fmax(wmax, hi - lo);
    }
    if (wmax > 0 && c->n_channels > 1)
        fprintf(fp, " <tspan class=\"mu\">\xc2\xb7 %d channels, widest / narrowest range %.3g\xc3\x97</tspan>",
                c->n_channels, wmax / wmin);
}

static void panel(FILE *fp, const nnq_report_range_chart *c, int s, double top,
                  const svg_scale *y0s, const svg_ticks *ty) {
    const int n = c->n_channels;
    const double px0 = LEFT, pw = SVG_W - RIGHT - LEFT;
    const double ptop = top + HEAD_H, pbot = ptop + PANEL_H;
    svg_scale y = *y0s;
    y.r0 = pbot;
    y.r1 = ptop;

    fputs("<text class=\"ph\" x=\"", fp);
    svg_num(fp, LEFT);
    fputs("\" y=\"", fp);
    svg_num(fp, top + 16);
    fprintf(fp, "\"><tspan fill=\"%s\">\xe2\x96\xa0</tspan> ", REP_COLOR(s));
    rep_put_html_trunc(fp, c->series_names[s], 60);
    spread_note(fp, c, s);
    fputs("</text>\n", fp);
    svg_axis_y(fp, &y, ty, px0, px0 + pw, s == 0 ? c->y_label : NULL);

    /* Channel axis: integer ticks only. */
    double clo = 0, chi = n > 0 ? n - 1 : 0;
    svg_ticks tc;
    svg_nice_ticks(&clo, &chi, 10, false, &tc);
    for (int k = 0; k < tc.n; k++) {
        double v = tc.v[k];
        if (v < 0 || v > n - 1 || v != floor(v)) continue;
        fputs("<text class=\"tk\" text-anchor=\"middle\" x=\"", fp);
        svg_num(fp, px0 + (v + 0.5) * pw / n);
        fputs("\" y=\"", fp);
        svg_num(fp, pbot + 16);
        fprintf(fp, "\">%d</text>\n", (int)v);
    }

    int drawn = 0;
    for (int i = 0; i < n; i++) drawn += channel_ok(c, s, i);
    if (drawn == 0) {
        svg_no_data(fp, px0 + pw / 2, (ptop + pbot) / 2);
        return;
    }
    const double slot = pw / n;
    /* Dense layers: bars overlap a little, so anti-aliasing leaves no stripes. */
    double bw = n > 200 ? slot + 0.6 : fmin(slot * 0.7, 28);
    fprintf(fp, "<path stroke=\"%s\" stroke-width=\"", REP_COLOR(s));
    svg_num(fp, bw);
    fputs("\" d=\"", fp);
    for (int i = 0; i < n; i++) {
        if (!channel_ok(c, s, i)) continue;
        double lo, hi;
        bounds(c, s, i, &lo, &hi);
        double yh = svg_map(&y, hi), yl = svg_map(&y, lo);
        if (yl - yh < 1) { /* a constant channel still shows as a tick */
            double m = (yl + yh) / 2;
            yh = m - 0.5;
            yl = m + 0.5;
        }
        fputc('M', fp);
        svg_num(fp, px0 + (i + 0.5) * slot);
        fputc(' ', fp);
        svg_num(fp, yh);
        fputc('V', fp);
        svg_num(fp, yl);
    }
    fputs("\"/>\n", fp);
    if (n > MAX_TOOLTIPS) return;
    for (int i = 0; i < n; i++) {
        if (!channel_ok(c, s, i)) continue;
        double lo, hi;
        char a[40], b[40];
        bounds(c, s, i, &lo, &hi);
        fputs("<rect class=\"hit\" x=\"", fp);
        svg_num(fp, px0 + i * slot);
        fputs("\" y=\"", fp);
        svg_num(fp, ptop);
        fputs("\" width=\"", fp);
        svg_num(fp, slot);
        fputs("\" height=\"", fp);
        svg_num(fp, PANEL_H);
        fputs("\"><title>", fp);
        rep_put_html(fp, c->series_names[s]);
        fprintf(fp, ", channel %d: [%s, %s]</title></rect>\n", i,
                nnq_report_fmt_number(lo, c->fmt, a, sizeof a),
                nnq_report_fmt_number(hi, c->fmt, b, sizeof b));
    }
}

void rep_svg_ranges(FILE *fp, const nnq_report_range_chart *c) {
    double lo = 0, hi = 0;
    bool any = false;
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->n_channels; i++) {
            if (!channel_ok(c, s, i)) continue;
            double a, b;
            bounds(c, s, i, &a, &b);
            lo = fmin(lo, a);
            hi = fmax(hi, b);
            any = true;
        }
    if (!any) {
        svg_empty(fp, c->title);
        return;
    }
    svg_ticks ty;
    svg_nice_ticks(&lo, &hi, 4, true, &ty);
    const svg_scale y = {lo, hi, 0, 0, false};
    const double panel_h = HEAD_H + PANEL_H + AXIS_H;
    const double h = 8 + c->n_series * panel_h + 22;

    svg_begin(fp, h, c->title);
    for (int s = 0; s < c->n_series; s++) panel(fp, c, s, 8 + s * panel_h, &y, &ty);
    fputs("<text class=\"ax\" text-anchor=\"middle\" x=\"", fp);
    svg_num(fp, (LEFT + SVG_W - RIGHT) / 2);
    fputs("\" y=\"", fp);
    svg_num(fp, h - 8);
    fputs("\">output channel</text>\n", fp);
    svg_end(fp);
}
