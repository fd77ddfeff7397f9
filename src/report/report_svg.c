/* SVG building blocks: scales, nice ticks, axes and legends, and the chart
 * dispatch. Styling (fonts, grid colours) comes from the page's CSS
 * classes (report_html.c): g = grid line, z = zero line, tk = tick label,
 * ax = axis title, lg = legend text, mu = muted text, nd = "no data". */
#include <math.h>
#include <string.h>

#include "report/report_svg.h"

/* Tableau-10 without its yellow and grey (too pale on white): blue,
 * orange, green, red, purple, teal, brown, pink. */
const char *const rep_palette[NNQ_REPORT_MAX_SERIES] = {
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#9c755f", "#ff9da7",
};

double svg_map(const svg_scale *s, double v) {
    double a = s->d0, b = s->d1;
    if (s->log) {
        v = v > 0 ? log10(v) : log10(a);
        a = log10(a);
        b = log10(b);
    }
    if (!(b != a)) return (s->r0 + s->r1) / 2;
    return s->r0 + (v - a) / (b - a) * (s->r1 - s->r0);
}

void svg_nice_ticks(double *lo, double *hi, int target, bool extend, svg_ticks *t) {
    double a = *lo, b = *hi;
    if (rep_missing(a) || rep_missing(b)) a = 0, b = 1;
    if (a > b) {
        double tmp = a;
        a = b;
        b = tmp;
    }
    if (b - a <= 1e-12 * fmax(fabs(a), fabs(b))) { /* one value: centre it */
        double pad = a != 0 ? fabs(a) * 0.1 : 1;
        a -= pad;
        b += pad;
    }
    double raw = (b - a) / (target > 0 ? target : 5);
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    if (extend) {
        a = floor(a / step + 1e-9) * step;
        b = ceil(b / step - 1e-9) * step;
    }
    t->n = 0;
    t->step = step;
    t->log = false;
    double first = ceil(a / step - 1e-9);
    for (int i = 0; i < SVG_MAX_TICKS; i++) {
        double v = (first + i) * step;
        if (v > b + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0;
        t->v[t->n++] = v;
    }
    *lo = a;
    *hi = b;
}

void svg_log_ticks(double *lo, double *hi, svg_ticks *t) {
    int e0 = (int)floor(log10(*lo) + 1e-9), e1 = (int)ceil(log10(*hi) - 1e-9);
    if (e1 <= e0) e1 = e0 + 1;
    int every = (e1 - e0 + SVG_MAX_TICKS - 2) / (SVG_MAX_TICKS - 1); /* thin out huge spans */
    t->n = 0;
    t->step = 10;
    t->log = true;
    for (int e = e0; e <= e1 && t->n < SVG_MAX_TICKS; e += every) t->v[t->n++] = pow(10, e);
    *lo = pow(10, e0);
    *hi = pow(10, e1);
}

const char *svg_tick_label(const svg_ticks *t, double v, char *buf, size_t cap) {
    static const struct { double div; const char *suffix; } si[] = {
        {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
    double maxabs = 0; /* one suffix for a linear axis; each power of ten its own on a log axis */
    for (int i = 0; i < t->n; i++) maxabs = fmax(maxabs, fabs(t->log ? v : t->v[i]));
    double div = 1, step = t->step;
    const char *suffix = "";
    if (maxabs >= 1e4)
        for (int i = 0; i < 3; i++)
            if (maxabs >= si[i].div) {
                div = si[i].div;
                suffix = si[i].suffix;
                break;
            }
    if (t->log) {
        snprintf(buf, cap, "%g%s", v / div, suffix);
        return buf;
    }
    step /= div;
    int d = step >= 1 ? 0 : (int)-floor(log10(step) + 1e-9);
    if (d > 9) d = 9;
    snprintf(buf, cap, "%.*f%s", d, v / div, suffix); /* ticks hit 0 exactly: no "-0" */
    return buf;
}

void svg_num(FILE *fp, double v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f", v);
    if (strcmp(buf, "-0.0") == 0) strcpy(buf, "0.0");
    size_t n = strlen(buf); /* 12.0 → 12 */
    if (n > 2 && buf[n - 1] == '0' && buf[n - 2] == '.') buf[n - 2] = '\0';
    fputs(buf, fp);
}

void svg_begin(FILE *fp, double h, const char *title) {
    /* No xmlns: the HTML parser puts inline <svg> in the SVG namespace, and
     * the page must not contain a single external-looking reference. */
    fputs("<svg viewBox=\"0 0 ", fp);
    svg_num(fp, SVG_W);
    fputc(' ', fp);
    svg_num(fp, h);
    fputs("\" width=\"", fp);
    svg_num(fp, SVG_W);
    fputs("\" height=\"", fp);
    svg_num(fp, h);
    fputs("\" role=\"img\" aria-label=\"", fp);
    rep_put_html(fp, title && *title ? title : "chart");
    fputs("\">\n<title>", fp);
    rep_put_html(fp, title && *title ? title : "chart");
    fputs("</title>\n", fp);
}

void svg_end(FILE *fp) { fputs("</svg>\n", fp); }

static void line(FILE *fp, const char *cls, double x1, double y1, double x2, double y2) {
    fprintf(fp, "<line class=\"%s\" x1=\"", cls);
    svg_num(fp, x1);
    fputs("\" y1=\"", fp);
    svg_num(fp, y1);
    fputs("\" x2=\"", fp);
    svg_num(fp, x2);
    fputs("\" y2=\"", fp);
    svg_num(fp, y2);
    fputs("\"/>\n", fp);
}

static void text_at(FILE *fp, const char *cls, const char *anchor, double x, double y,
                    const char *s) {
    fprintf(fp, "<text class=\"%s\" text-anchor=\"%s\" x=\"", cls, anchor);
    svg_num(fp, x);
    fputs("\" y=\"", fp);
    svg_num(fp, y);
    fputs("\">", fp);
    rep_put_html(fp, s);
    fputs("</text>\n", fp);
}

void svg_axis_y(FILE *fp, const svg_scale *y, const svg_ticks *t, double x0, double x1,
                const char *label) {
    char buf[48];
    for (int i = 0; i < t->n; i++) {
        double py = svg_map(y, t->v[i]);
        line(fp, t->v[i] == 0 && !t->log ? "z" : "g", x0, py, x1, py);
        text_at(fp, "tk", "end", x0 - 6, py + 4, svg_tick_label(t, t->v[i], buf, sizeof buf));
    }
    if (label && *label) {
        double cy = (y->r0 + y->r1) / 2;
        fputs("<text class=\"ax\" text-anchor=\"middle\" transform=\"translate(14 ", fp);
        svg_num(fp, cy);
        fputs(") rotate(-90)\">", fp);
        rep_put_html(fp, label);
        fputs("</text>\n", fp);
    }
}

void svg_axis_x(FILE *fp, const svg_scale *x, const svg_ticks *t, double y_top, double y0,
                const char *label) {
    char buf[48];
    for (int i = 0; i < t->n; i++) {
        double px = svg_map(x, t->v[i]);
        line(fp, t->v[i] == 0 && !t->log ? "z" : "g", px, y_top, px, y0);
        text_at(fp, "tk", "middle", px, y0 + 16, svg_tick_label(t, t->v[i], buf, sizeof buf));
    }
    if (label && *label) text_at(fp, "ax", "middle", (x->r0 + x->r1) / 2, y0 + 36, label);
}

#define LEGEND_ROW 20.0
#define LEGEND_MAX_CHARS 48

static double entry_width(const char *name, const char *note) {
    size_t n = rep_utf8_len(name);
    if (n > LEGEND_MAX_CHARS) n = LEGEND_MAX_CHARS;
    if (note && *note) n += 1 + rep_utf8_len(note);
    return 22 + (double)n * SVG_CHAR_W + 22;
}

double svg_legend_height(double x, int n, const char *const *names, const char *const *notes) {
    if (n <= 0) return 0;
    double cx = x, rows = 1;
    for (int i = 0; i < n; i++) {
        double w = entry_width(names[i], notes ? notes[i] : NULL);
        if (cx > x && cx + w > SVG_W) cx = x, rows++;
        cx += w;
    }
    return rows * LEGEND_ROW;
}

double svg_legend(FILE *fp, double x, double y, int n, const char *const *names,
                  const char *const *notes, char swatch, int first_color) {
    if (n <= 0) return 0;
    double cx = x, cy = y, used = LEGEND_ROW;
    for (int i = 0; i < n; i++) {
        const char *note = notes ? notes[i] : NULL;
        double w = entry_width(names[i], note);
        if (cx > x && cx + w > SVG_W) cx = x, cy += LEGEND_ROW, used += LEGEND_ROW;
        fputs("<g>", fp);
        if (swatch == 's') {
            fprintf(fp, "<rect fill=\"%s\" width=\"12\" height=\"12\" rx=\"2\" x=\"", REP_COLOR(first_color + i));
            svg_num(fp, cx);
            fputs("\" y=\"", fp);
            svg_num(fp, cy + 3);
            fputs("\"/>", fp);
        } else {
            fprintf(fp, "<line stroke=\"%s\" stroke-width=\"%s\"%s x1=\"", REP_COLOR(first_color + i),
                    swatch == 'd' ? "2" : "2.5", swatch == 'd' ? " stroke-dasharray=\"5 3\"" : "");
            svg_num(fp, cx - 2);
            fputs("\" x2=\"", fp);
            svg_num(fp, cx + 16);
            fputs("\" y1=\"", fp);
            svg_num(fp, cy + 9);
            fputs("\" y2=\"", fp);
            svg_num(fp, cy + 9);
            fputs("\"/>", fp);
        }
        fputs("<text class=\"lg\" x=\"", fp);
        svg_num(fp, cx + 20);
        fputs("\" y=\"", fp);
        svg_num(fp, cy + 14);
        fputs("\">", fp);
        rep_put_html_trunc(fp, names[i], LEGEND_MAX_CHARS);
        if (note && *note) {
            fputs(" <tspan class=\"mu\">", fp);
            rep_put_html(fp, note);
            fputs("</tspan>", fp);
        }
        fputs("</text></g>\n", fp);
        cx += w;
    }
    return used;
}

void svg_no_data(FILE *fp, double cx, double cy) { text_at(fp, "nd", "middle", cx, cy, "no data"); }

void svg_empty(FILE *fp, const char *title) {
    svg_begin(fp, 48, title);
    fputs("<rect class=\"st\" x=\"0\" y=\"0\" width=\"1000\" height=\"48\" rx=\"6\"/>\n", fp);
    svg_no_data(fp, SVG_W / 2, 29);
    svg_end(fp);
}

void rep_svg_write(FILE *fp, const rep_item *it) {
    switch (it->kind) {
    case REP_BARS: rep_svg_bars(fp, &it->u.bars); break;
    case REP_LINES: rep_svg_lines(fp, &it->u.lines); break;
    case REP_RANGES: rep_svg_ranges(fp, &it->u.ranges); break;
    case REP_HIST: rep_svg_hist(fp, &it->u.hist); break;
    default: break;
    }
}
