/* The report renderer (src/report/): a sample report with every element
 * (hostile layer names, NaN values, empty series and charts, a one-channel
 * and a 1000-channel range chart) is written as HTML and JSON, then:
 *   - the page has every title, caption and table, no "http" anywhere, no
 *     script, and is valid UTF-8 (an invalid byte in a name is replaced);
 *   - every <svg> block is well-formed XML with a viewBox, and its
 *     coordinates are plain numbers (NaN never reaches the drawing);
 *   - the JSON parses (strict RFC 8259 parser in report_check.h), and each
 *     number shown in a table or the summary is the same text in the page
 *     and in the JSON; chart data in the JSON equals the input;
 *   - charts draw what they were given: ranking order of bars, gaps in
 *     lines, one bar per finite channel, merged histogram bins, marker lines;
 *   - bad arguments fail with a status, writing is atomic and deterministic.
 * Usage: test_report [DIR] — with DIR the sample report stays there as
 * sample.html / sample.json (tests/test_report_render.sh screenshots it). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "report/report.h"
#include "report_check.h"

#define HOSTILE "conv<&\"'>x"
#define HOSTILE_HTML "conv&lt;&amp;&quot;&#39;&gt;x"
#define BAD_UTF8 "bad\xff\xfe name"
#define TITLE "nnq report <mobilenet & co>"
#define N_WIDE 1000
#define N_HIST 2048

static double wide_lo[2 * N_WIDE], wide_hi[2 * N_WIDE];
static double hist_edges[N_HIST + 1], hist_counts[N_HIST];

/* ---- the sample report ---- */

static nnq_status add_sensitivity(nnq_report *r) {
    nnq_report_section *s;
    NNQ_TRY(nnq_report_add_section(r, "Per-layer sensitivity",
                                   "Each layer quantized alone; the drop in top-1 "
                                   "against the float model.\nNames come from the ONNX "
                                   "file: " HOSTILE,
                                   &s));
    const char *hdr[] = {"Layer", "Weights drop", "Activations drop", "Scale"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(s, "Top-1 drop per layer " HOSTILE, 4, hdr, &t));
    NNQ_TRY(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_TEXT("head.fc"),
                                         NNQ_CELL_NUM(4.25, 2), NNQ_CELL_NUM(0.125, 3),
                                         NNQ_CELL_NUM(1.5e-5, NNQ_FMT_SIG(3))},
                                     true));
    NNQ_TRY(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_TEXT(HOSTILE),
                                         NNQ_CELL_NUM(NAN, 2), NNQ_CELL_NUM(-0.001, 2),
                                         NNQ_CELL_NUM(INFINITY, NNQ_FMT_SIG(3))},
                                     false));
    NNQ_TRY(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_TEXT(BAD_UTF8),
                                         NNQ_CELL_NUM(-1.25, 2), NNQ_CELL_NUM(1234567.0, 0),
                                         NNQ_CELL_NUM(0.000123456, NNQ_FMT_SIG(4))},
                                     false));

    const char *labels[] = {"stem.conv", "blocks.1.dw", "blocks.2.pw", "head.fc",
                            "features.3.conv", HOSTILE,
                            "a_really_long_layer_name/with/many/parts/that/goes/on/and/on"};
    const double drop[] = {1.5, -0.75, NAN, 4.25, 0.5, 2.0, 3.0};
    NNQ_TRY(nnq_report_add_bar_chart(
        s, &(nnq_report_bar_chart){.title = "Top-1 drop per layer (ranked)",
                                   .caption = "Weights quantized to 4 bits one layer at a time; "
                                              "negative = the quantized layer did better.",
                                   .value_label = "top-1 drop (points)", .n_bars = 7,
                                   .labels = labels, .n_series = 1, .values = drop, .fmt = 2,
                                   .sort_desc = true}));
    const char *series[] = {"weights", "activations", "integer engine"};
    const double sqnr[] = {32.1, 28.4, 27.9, 18.2, 21.0, NAN, 40.5, 35.2, 35.0, 12.0, 9.5, 9.4};
    NNQ_TRY(nnq_report_add_bar_chart(
        s, &(nnq_report_bar_chart){.title = "SQNR per layer",
                                   .caption = "Signal-to-quantization-noise ratio in dB.",
                                   .value_label = "SQNR (dB)", .n_bars = 4, .labels = labels,
                                   .n_series = 3, .series_names = series, .values = sqnr,
                                   .fmt = 1}));
    return nnq_report_add_bar_chart(
        s, &(nnq_report_bar_chart){.title = "Empty bar chart", .n_bars = 0, .n_series = 1});
}

static nnq_status add_ranges(nnq_report *r) {
    nnq_report_section *s;
    NNQ_TRY(nnq_report_add_section(r, "Cross-layer equalization", NULL, &s));
    for (int i = 0; i < N_WIDE; i++) {
        double w = 0.05 + 3.0 * fabs(sin(i * 0.37)) * (i % 7 == 0 ? 4 : 1);
        wide_lo[i] = -w * 0.8, wide_hi[i] = w;
        wide_lo[N_WIDE + i] = -0.9 - 0.1 * sin(i * 0.11), wide_hi[N_WIDE + i] = 1.0;
    }
    wide_lo[17] = NAN; /* one channel not measured: left out of the first panel */
    const char *names[] = {"before CLE", "after CLE"};
    NNQ_TRY(nnq_report_add_range_chart(
        s, &(nnq_report_range_chart){.title = "features.1.conv: per-channel weight ranges",
                                     .caption = "Min and max of each output channel's weights.",
                                     .y_label = "weight", .n_channels = N_WIDE, .n_series = 2,
                                     .series_names = names, .lo = wide_lo, .hi = wide_hi,
                                     .fmt = NNQ_FMT_SIG(3)}));
    const double lo1[] = {-0.5, -0.25}, hi1[] = {0.5, 0.25};
    NNQ_TRY(nnq_report_add_range_chart(
        s, &(nnq_report_range_chart){.title = "One channel", .n_channels = 1, .n_series = 2,
                                     .series_names = names, .lo = lo1, .hi = hi1, .fmt = 2}));
    double lo32[64], hi32[64];
    for (int i = 0; i < 64; i++) lo32[i] = -0.1 * (i % 32 + 1), hi32[i] = 0.1 * (i % 5 + 1);
    const char *hostile_names[] = {HOSTILE};
    NNQ_TRY(nnq_report_add_range_chart(
        s, &(nnq_report_range_chart){.title = "32 channels " HOSTILE, .n_channels = 32,
                                     .n_series = 1, .series_names = hostile_names, .lo = lo32,
                                     .hi = hi32, .fmt = 2}));
    return nnq_report_add_range_chart(
        s, &(nnq_report_range_chart){.title = "No channels", .n_channels = 0, .n_series = 1,
                                     .series_names = names});
}

static nnq_status add_histograms(nnq_report *r) {
    nnq_report_section *s;
    NNQ_TRY(nnq_report_add_section(r, "Activation ranges", "Histograms of one activation.", &s));
    for (int i = 0; i <= N_HIST; i++) hist_edges[i] = -4.0 + 10.0 * i / N_HIST;
    for (int i = 0; i < N_HIST; i++) {
        double x = (hist_edges[i] + hist_edges[i + 1]) / 2;
        hist_counts[i] = floor(1e5 * exp(-x * x / 2) + (x > 4 ? 3 : 0));
    }
    hist_counts[100] = NAN;
    const nnq_report_marker mk[] = {
        {"minmax", -4.0, 6.0}, {"mse", -2.5, 2.75}, {"ce", 3.1, NAN}, {"percentile", -3.0, 3.2}};
    NNQ_TRY(nnq_report_add_histogram(
        s, &(nnq_report_histogram){.title = "blocks.3.relu output",
                                   .caption = "Calibration histogram with the clipping range "
                                              "each method chose.",
                                   .x_label = "activation", .n_bins = N_HIST,
                                   .edges = hist_edges, .counts = hist_counts, .log_y = true,
                                   .n_markers = 4, .markers = mk, .fmt = 3}));
    const double e[] = {0, 1, 2, 3}, c[] = {5, 0, 2};
    NNQ_TRY(nnq_report_add_histogram(
        s, &(nnq_report_histogram){.title = "Small histogram", .x_label = "x", .n_bins = 3,
                                   .edges = e, .counts = c, .fmt = 2}));
    return nnq_report_add_histogram(s, &(nnq_report_histogram){.title = "Empty histogram"});
}

static nnq_status add_bits(nnq_report *r) {
    nnq_report_section *s;
    NNQ_TRY(nnq_report_add_section(r, "Accuracy against bit-width", NULL, &s));
    const char *bits[] = {"8", "6", "4", "3", "2"};
    const char *names[] = {"per-tensor", "per-channel", ("AdaRound " HOSTILE)};
    const double y[] = {91.2, 90.8, NAN, 85.0, 60.1, 91.3, 91.1, 89.9, 80.2, 40.0,
                        NAN,  NAN,  NAN, NAN,  NAN};
    NNQ_TRY(nnq_report_add_line_chart(
        s, &(nnq_report_line_chart){.title = "Top-1 against weight bits",
                                    .caption = "Fashion-MNIST test set, 10000 images.",
                                    .x_label = "weight bits", .y_label = "top-1 (%)", .n_x = 5,
                                    .x_labels = bits, .n_series = 3, .series_names = names,
                                    .y = y, .markers = true, .fmt = 2}));
    const double x[] = {2, 3, 4, 6, 8};
    const double y2[] = {10.0, 55.5, 80.25, 88.0, 90.0};
    NNQ_TRY(nnq_report_add_line_chart(
        s, &(nnq_report_line_chart){.title = "Numeric x", .x_label = "bits", .y_label = "top-1",
                                    .n_x = 5, .x = x, .n_series = 1, .series_names = names,
                                    .y = y2, .fmt = 1}));
    NNQ_TRY(nnq_report_add_line_chart(
        s, &(nnq_report_line_chart){.title = "Empty line chart", .n_x = 0, .n_series = 1,
                                    .series_names = names}));
    nnq_report_table *t;
    const char *hdr[] = {"Pass", "Seconds", "Peak MB"};
    NNQ_TRY(nnq_report_add_table(s, "Time per pass", 3, hdr, &t));
    NNQ_TRY(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_TEXT("cle"),
                                         NNQ_CELL_NUM(0.0123, NNQ_FMT_SIG(2)),
                                         NNQ_CELL_NUM(12.5, 1)},
                                     false));
    NNQ_TRY(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_TEXT("adaround"),
                                         NNQ_CELL_NUM(123.456, NNQ_FMT_SIG(2)),
                                         NNQ_CELL_NUM(NAN, 1)},
                                     true));
    return NNQ_OK;
}

static nnq_status build_sample(nnq_report **out) {
    nnq_report *r = NULL;
    nnq_status s = nnq_report_create(TITLE, &r);
    if (s != NNQ_OK) return s;
    if ((s = nnq_report_set_subtitle(r, "W8A8 per-tensor \xe2\x80\x94 recipe cle+bc")) ||
        (s = nnq_report_add_meta(r, "model", "mobilenetv2.onnx")) ||
        (s = nnq_report_add_meta(r, "date", "2024-01-01")) ||
        (s = nnq_report_add_meta(r, "bits", "W4A4")) ||
        (s = nnq_report_add_meta(r, "bits", "W8A8")) || /* replaces */
        (s = nnq_report_add_meta(r, "recipe", HOSTILE)) ||
        (s = nnq_report_add_headline(r, "Float top-1", 91.2345, 2, "%", NULL)) ||
        (s = nnq_report_add_headline(r, "Quantized top-1", NAN, 2, "%", "not evaluated")) ||
        (s = nnq_report_add_headline(r, "Model bytes (float)", 14000000, 0, "bytes", NULL)) ||
        (s = nnq_report_add_headline(r, "Model bytes (int8)", 3512345.6, 0, "bytes",
                                     "3.99\xc3\x97 smaller")) ||
        (s = nnq_report_add_sensitive(r, HOSTILE, 4.25, 2, "points",
                                      "per-channel weights; then AdaRound")) ||
        (s = nnq_report_add_sensitive(r, "head.fc", 3.0, 2, "points", "8-bit weights")) ||
        (s = nnq_report_add_sensitive(r, BAD_UTF8, NAN, 2, "points", "keep in float")) ||
        (s = add_sensitivity(r)) || (s = add_ranges(r)) || (s = add_histograms(r)) ||
        (s = add_bits(r))) {
        nnq_report_free(r);
        return s;
    }
    *out = r;
    return NNQ_OK;
}

/* ---- helpers over the written files ---- */

static char *read_text(const char *path, size_t *len) {
    unsigned char *buf = NULL;
    size_t n = 0;
    if (nnq_read_file(path, 64 << 20, &buf, &n) != NNQ_OK) return NULL;
    char *s = realloc(buf, n + 1);
    if (!s) {
        free(buf);
        return NULL;
    }
    s[n] = '\0';
    if (len) *len = n;
    return s;
}

/* HTML text → plain: tags removed, the five entities decoded. */
static void html_plain(const char *s, const char *end, char *out, size_t cap) {
    static const struct { const char *ent, *ch; } ents[] = {
        {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}};
    size_t o = 0;
    while (s < end && o + 1 < cap) {
        if (*s == '<') {
            const char *q = memchr(s, '>', (size_t)(end - s));
            s = q ? q + 1 : end;
            continue;
        }
        bool done = false;
        for (int i = 0; i < 5 && !done; i++) {
            size_t n = strlen(ents[i].ent);
            if ((size_t)(end - s) >= n && memcmp(s, ents[i].ent, n) == 0) {
                out[o++] = ents[i].ch[0];
                s += n;
                done = true;
            }
        }
        if (!done) out[o++] = *s++;
    }
    out[o] = '\0';
}

/* The text a JSON cell or summary value shows in the page. */
static const char *shown(const jval *v) {
    if (!v) return "(absent)";
    if (v->k == J_NULL) return "\xe2\x80\x93";
    return v->s ? v->s : "(not a string or number)";
}

/* Coordinates in the SVG are plain numbers: nothing like "nan" or "inf". */
static bool numeric_attr(const char *elem, const char *name, const char *v, size_t n) {
    static const char *const coords[] = {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r",
                                         "width", "height", "viewBox", "d", "stroke-width"};
    bool coord = false;
    for (size_t i = 0; i < sizeof coords / sizeof *coords; i++)
        coord |= strcmp(name, coords[i]) == 0;
    if (!coord) return true;
    bool digit = false;
    for (size_t i = 0; i < n; i++) {
        if (!strchr("0123456789.- MLHVZ", v[i])) return false;
        digit |= v[i] >= '0' && v[i] <= '9';
    }
    return digit;
}

/* The <svg> block whose aria-label is `label` (HTML-escaped). */
static bool find_svg(const char *html, const char *label, const char **b, const char **e) {
    char key[256];
    snprintf(key, sizeof key, "aria-label=\"%s\"", label);
    const char *k = strstr(html, key);
    if (!k) return false;
    while (k > html && strncmp(k, "<svg", 4) != 0) k--;
    const char *end = strstr(k, "</svg>");
    if (!end) return false;
    *b = k;
    *e = end + 6;
    return true;
}

static int count_in(const char *b, const char *e, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = b; p + len <= e; p++)
        if (memcmp(p, needle, len) == 0) n++;
    return n;
}

/* Subpaths ("M") in the n-th path's d attribute inside [b, e). */
static int path_moves(const char *b, const char *e, int nth) {
    const char *p = b;
    for (int i = 0; i <= nth; i++) {
        p = strstr(p, "<path");
        if (!p || p >= e) return -1;
        p += 5;
    }
    const char *d = strstr(p, " d=\"");
    if (!d || d >= e) return -1;
    d += 4;
    const char *q = strchr(d, '"');
    return q ? count_in(d, q, "M") : -1;
}

static bool contains_nocase(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == needle[i]) i++;
        if (i == n) return true;
    }
    return false;
}

/* ---- the checks ---- */

static void check_svgs(const char *html, int expect_charts) {
    int n = 0;
    const xml_attr_hook hook = {numeric_attr};
    for (const char *p = strstr(html, "<svg"); p; p = strstr(p + 1, "<svg")) {
        const char *end = strstr(p, "</svg>");
        CHECK(end != NULL);
        if (!end) break;
        end += 6;
        char err[256] = "";
        bool ok = xml_check(p, end, &hook, err, sizeof err);
        if (!ok) fprintf(stderr, "svg #%d not well formed: %s\n", n, err);
        CHECK(ok);
        const char *tag_end = strchr(p, '>');
        const char *vb = strstr(p, " viewBox=\"0 0 ");
        CHECK(vb && vb < tag_end);
        n++;
    }
    CHECK(n == expect_charts);
    /* The checker itself rejects what it should. */
    char err[128];
    const char *bad[] = {"<svg><g></svg></g>", "<svg x=1></svg>", "<svg><text>a<b</text></svg>",
                         "<svg><text>a & b</text></svg>", "<svg x=\"1\" x=\"2\"/>",
                         "<svg><rect x=\"nan\"/></svg>", "<svg>", "<svg/><svg/>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!xml_check(bad[i], bad[i] + strlen(bad[i]), &hook, err, sizeof err));
    const char *good = "<svg viewBox=\"0 0 1 1\"><title>a &amp; &#39;b&#x27;</title><g/></svg>";
    CHECK(xml_check(good, good + strlen(good), &hook, err, sizeof err));
}

/* Each table of the sections, in order, against the JSON's tables. */
static void check_tables(const char *html, const jval *doc) {
    const char *p = html;
    const jval *sections = jget(doc, "sections");
    int n_tables = 0, n_cells = 0;
    for (int si = 0; jat(sections, si); si++) {
        const jval *items = jget(jat(sections, si), "items");
        for (int ii = 0; jat(items, ii); ii++) {
            const jval *it = jat(items, ii);
            if (strcmp(jstr(jget(it, "type")), "table") != 0) continue;
            do p = strstr(p + 1, "<table"); /* the summary's own table is not a section's */
            while (p && strncmp(p, "<table class=\"sens\"", 19) == 0);
            CHECK(p != NULL);
            if (!p) return;
            const char *tend = strstr(p, "</table>");
            const char *row = strstr(p, "<tbody>");
            const jval *rows = jget(it, "rows");
            for (int ri = 0; jat(rows, ri); ri++) {
                const jval *jr = jat(rows, ri);
                row = strstr(row + 1, "<tr");
                CHECK(row && row < tend);
                if (!row || row >= tend) return;
                bool hl = strncmp(row, "<tr class=\"hl\"", 14) == 0;
                CHECK(hl == jget(jr, "highlight")->b);
                const char *cell = row;
                const jval *cells = jget(jr, "cells");
                for (int ci = 0; jat(cells, ci); ci++) {
                    cell = strstr(cell + 1, "<td");
                    const char *c0 = strchr(cell, '>') + 1, *c1 = strstr(c0, "</td>");
                    char text[512];
                    html_plain(c0, c1, text, sizeof text);
                    const char *want = shown(jat(cells, ci));
                    if (strcmp(text, want) != 0)
                        fprintf(stderr, "table %d row %d cell %d: page '%s', JSON '%s'\n",
                                n_tables, ri, ci, text, want);
                    CHECK(strcmp(text, want) == 0);
                    n_cells++;
                }
            }
            n_tables++;
        }
    }
    CHECK(n_tables == 2);
    CHECK(n_cells == 3 * 4 + 2 * 3);
    CHECK(strstr(p + 1, "<table") == NULL); /* no table the JSON lacks */
}

/* Headline and sensitive-layer numbers: page spans vs JSON values. */
static void check_summary(const char *html, const jval *doc) {
    const jval *sum = jget(doc, "summary");
    const char *p = html;
    const char *lists[] = {"headlines", "sensitive"};
    int n = 0;
    for (int l = 0; l < 2; l++) {
        const jval *a = jget(sum, lists[l]);
        for (int i = 0; jat(a, i); i++, n++) {
            p = strstr(p, "<span class=\"num\">");
            CHECK(p != NULL);
            if (!p) return;
            p += 18;
            const char *q = strstr(p, "</span>");
            char text[64];
            html_plain(p, q, text, sizeof text);
            CHECK(strcmp(text, shown(jget(jat(a, i), "value"))) == 0);
        }
    }
    CHECK(n == 7);
    CHECK(strstr(p, "<span class=\"num\">") == NULL);
    /* exact values and strings survive the round trip */
    const jval *h = jget(sum, "headlines"), *s = jget(sum, "sensitive");
    CHECK(strcmp(shown(jget(jat(h, 0), "value")), "91.23") == 0);
    CHECK(jget(jat(h, 1), "value")->k == J_NULL);
    CHECK(strcmp(shown(jget(jat(h, 3), "value")), "3512346") == 0);
    CHECK(strcmp(jstr(jget(jat(s, 0), "layer")), HOSTILE) == 0);
    CHECK(strcmp(jstr(jget(jat(s, 2), "layer")), "bad\xef\xbf\xbd\xef\xbf\xbd name") == 0);
    const jval *meta = jget(doc, "meta");
    CHECK(meta && meta->n == 4);
    CHECK(strcmp(jstr(jget(meta, "bits")), "W8A8") == 0);
    CHECK(strcmp(jstr(jget(meta, "recipe")), HOSTILE) == 0);
}

static double num_at(const jval *a, int i) {
    const jval *v = jat(a, i);
    return v && v->k == J_NUM ? strtod(v->s, NULL) : NAN;
}

/* Chart data in the JSON is the input, in order. */
static void check_chart_json(const jval *doc) {
    const jval *sec = jget(doc, "sections");
    const jval *bars = jat(jget(jat(sec, 0), "items"), 2);
    CHECK(strcmp(jstr(jget(bars, "type")), "bar_chart") == 0);
    const jval *vals = jget(jat(jget(bars, "series"), 0), "values");
    CHECK(vals && vals->n == 7 && jat(vals, 2)->k == J_NULL && num_at(vals, 3) == 4.25);
    const jval *grouped = jat(jget(jat(sec, 0), "items"), 3);
    const jval *acts = jat(jget(grouped, "series"), 1); /* column 1 of [bar][series] */
    CHECK(strcmp(jstr(jget(acts, "name")), "activations") == 0);
    CHECK(num_at(jget(acts, "values"), 0) == 28.4 && num_at(jget(acts, "values"), 3) == 9.5);

    const jval *wide = jat(jget(jat(sec, 1), "items"), 0);
    CHECK(jget(wide, "channels")->k == J_NUM && strcmp(jget(wide, "channels")->s, "1000") == 0);
    const jval *lo0 = jget(jat(jget(wide, "series"), 0), "lo");
    const jval *hi1 = jget(jat(jget(wide, "series"), 1), "hi");
    CHECK(lo0 && lo0->n == N_WIDE && jat(lo0, 17)->k == J_NULL);
    double maxrel = 0;
    for (int i = 0; i < N_WIDE; i++)
        if (i != 17) maxrel = fmax(maxrel, fabs(num_at(lo0, i) - wide_lo[i]) / fabs(wide_lo[i]));
    CHECK(maxrel < 1e-9);
    CHECK(hi1 && hi1->n == N_WIDE && num_at(hi1, 999) == 1.0);

    const jval *none = jat(jget(jat(jget(jat(sec, 1), "items"), 3), "series"), 0);
    CHECK(jget(none, "lo") && jget(none, "lo")->n == 0 && jget(none, "hi") &&
          jget(none, "hi")->k == J_ARR && jget(none, "hi")->n == 0);

    const jval *hist = jat(jget(jat(sec, 2), "items"), 1);
    CHECK(strcmp(jstr(jget(hist, "type")), "histogram") == 0);
    CHECK(jget(hist, "edges")->n == N_HIST + 1 && jget(hist, "counts")->n == N_HIST);
    CHECK(jat(jget(hist, "counts"), 100)->k == J_NULL);
    const jval *ce = jat(jget(hist, "markers"), 2);
    CHECK(strcmp(jstr(jget(ce, "label")), "ce") == 0 && jget(ce, "hi")->k == J_NULL);

    const jval *lines = jat(jget(jat(sec, 3), "items"), 0);
    CHECK(jget(lines, "x") == NULL && jget(lines, "x_labels")->n == 5);
    const jval *ada = jat(jget(lines, "series"), 2);
    CHECK(strcmp(jstr(jget(ada, "name")), "AdaRound " HOSTILE) == 0);
    CHECK(jget(ada, "y")->n == 5 && jat(jget(ada, "y"), 4)->k == J_NULL);
}

/* Each chart drew what it was given. */
static void check_drawings(const char *html) {
    const char *b, *e;
    /* ranked bars: largest first, the missing value last and not drawn */
    CHECK(find_svg(html, "Top-1 drop per layer (ranked)", &b, &e));
    const char *order[] = {"head.fc", "a_really", HOSTILE_HTML, "stem.conv", "features.3",
                           "blocks.1.dw", "blocks.2.pw"};
    const char *p = b;
    for (int i = 0; i < 7; i++) {
        p = strstr(p, "<text class=\"rl\"");
        CHECK(p && p < e);
        if (!p || p >= e) break;
        p = strchr(p, '>') + 1;
        if (strncmp(p, "<title>", 7) == 0) p = strstr(p, "</title>") + 8; /* cut label */
        CHECK(strncmp(p, order[i], strlen(order[i])) == 0);
    }
    CHECK(count_in(b, e, "<rect fill=") == 6);
    CHECK(count_in(b, e, ">4.25</text>") == 1 && count_in(b, e, ">-0.75</text>") == 1);
    CHECK(count_in(b, e, "a_really_long_layer_name/with/many/parts/that/goes/on/and/on</title>"));
    /* grouped bars: 12 values, one missing, legend of 3 */
    CHECK(find_svg(html, "SQNR per layer", &b, &e));
    CHECK(count_in(b, e, "<rect fill=") == 11 + 3);
    CHECK(find_svg(html, "Empty bar chart", &b, &e) && count_in(b, e, ">no data<") == 1);

    /* ranges: one bar per finite channel, in one path per panel */
    CHECK(find_svg(html, "features.1.conv: per-channel weight ranges", &b, &e));
    CHECK(path_moves(b, e, 0) == N_WIDE - 1 && path_moves(b, e, 1) == N_WIDE);
    CHECK(count_in(b, e, "class=\"hit\"") == 0); /* no per-channel tooltips at this size */
    CHECK(find_svg(html, "One channel", &b, &e));
    CHECK(path_moves(b, e, 0) == 1 && path_moves(b, e, 1) == 1);
    CHECK(find_svg(html, "32 channels " HOSTILE_HTML, &b, &e));
    CHECK(path_moves(b, e, 0) == 32 && count_in(b, e, "class=\"hit\"") == 32);
    CHECK(find_svg(html, "No channels", &b, &e) && count_in(b, e, ">no data<") == 1);

    /* histogram: 2048 bins merged to at most 200 drawn; 4 markers = 7 lines */
    CHECK(find_svg(html, "blocks.3.relu output", &b, &e));
    int drawn = path_moves(b, e, 0);
    CHECK(drawn > 150 && drawn <= 200);
    CHECK(count_in(b, e, "stroke-dasharray") == 4 + 7); /* legend swatches + lines */
    CHECK(count_in(b, e, ">percentile</text>") == 1 && count_in(b, e, "[-2.500, 2.750]") == 1);
    CHECK(find_svg(html, "Small histogram", &b, &e) && path_moves(b, e, 0) == 2);
    CHECK(find_svg(html, "Empty histogram", &b, &e) && count_in(b, e, ">no data<") == 1);

    /* lines: a gap splits the path; the empty series is only in the legend */
    CHECK(find_svg(html, "Top-1 against weight bits", &b, &e));
    CHECK(path_moves(b, e, 0) == 2 && path_moves(b, e, 1) == 1 && path_moves(b, e, 2) == -1);
    CHECK(count_in(b, e, "(no data)") == 1);
    CHECK(count_in(b, e, "<circle") == 4 + 5);
    CHECK(find_svg(html, "Numeric x", &b, &e) && path_moves(b, e, 0) == 1);
    CHECK(count_in(b, e, "<circle") == 0);
    CHECK(find_svg(html, "Empty line chart", &b, &e) && count_in(b, e, ">no data<") == 1);
}

static void check_page(const char *html, size_t len) {
    CHECK(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    CHECK(utf8_valid((const unsigned char *)html, len));
    CHECK(strstr(html, "<title>nnq report &lt;mobilenet &amp; co&gt;</title>") != NULL);
    CHECK(strstr(html, "<h1>nnq report &lt;mobilenet &amp; co&gt;</h1>") != NULL);
    const char *titles[] = {"Per-layer sensitivity", "Cross-layer equalization",
                            "Activation ranges", "Accuracy against bit-width", "Summary",
                            "Most sensitive layers", ("Top-1 drop per layer " HOSTILE_HTML),
                            "Time per pass", "Top-1 against weight bits",
                            "Calibration histogram with the clipping range each method chose."};
    for (size_t i = 0; i < sizeof titles / sizeof *titles; i++) {
        if (!strstr(html, titles[i])) fprintf(stderr, "missing in the page: %s\n", titles[i]);
        CHECK(strstr(html, titles[i]) != NULL);
    }
    CHECK(!contains_nocase(html, "http"));
    CHECK(strstr(html, "<script") == NULL && strstr(html, "src=") == NULL);
    CHECK(strstr(html, "url(") == NULL && strstr(html, "@import") == NULL);
    CHECK(strstr(html, "conv<&") == NULL); /* hostile name never raw */
    CHECK(strstr(html, "bad\xef\xbf\xbd\xef\xbf\xbd name") != NULL);
    CHECK(strstr(html, "<td class=\"n m\">\xe2\x80\x93</td>") != NULL); /* NaN cell */
    CHECK(len < (1u << 20)); /* a 1000-channel chart stays small */
}

static void check_errors(const char *dir) {
    nnq_report *r = NULL;
    nnq_report_section *s = NULL;
    nnq_report_table *t = NULL;
    CHECK_OK(nnq_report_create(NULL, &r));
    if (!r) return;
    CHECK_OK(nnq_report_add_section(r, "s", NULL, &s));
    CHECK_STATUS(nnq_report_add_table(s, NULL, 0, NULL, &t), NNQ_ERR_INVALID);
    CHECK_OK(nnq_report_add_table(s, NULL, 2, NULL, &t)); /* headers optional */
    CHECK_STATUS(nnq_report_table_add_row(t, (nnq_report_cell[]){NNQ_CELL_NUM(1, 12),
                                              NNQ_CELL_TEXT("x")}, false),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_report_add_headline(r, "x", 1, NNQ_FMT_SIG(18), NULL, NULL), NNQ_ERR_INVALID);
    const double e[] = {0, 2, 1}, c[] = {1, 1};
    CHECK_STATUS(nnq_report_add_histogram(s, &(nnq_report_histogram){.n_bins = 2, .edges = e,
                                                                     .counts = c}),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_report_add_bar_chart(s, &(nnq_report_bar_chart){.n_bars = 1, .n_series = 9}),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_report_add_bar_chart(s, &(nnq_report_bar_chart){
                                                 .n_bars = NNQ_REPORT_MAX_POINTS + 1,
                                                 .n_series = 1}),
                 NNQ_ERR_LIMIT);
    CHECK_STATUS(nnq_report_add_bar_chart(s, &(nnq_report_bar_chart){.n_bars = 2, .n_series = 1}),
                 NNQ_ERR_INVALID); /* labels and values missing */
    const double x[] = {1, NAN};
    const char *names[] = {"a"};
    CHECK_STATUS(nnq_report_add_line_chart(s, &(nnq_report_line_chart){.n_x = 2, .x = x,
                                                                       .n_series = 1,
                                                                       .series_names = names,
                                                                       .y = x}),
                 NNQ_ERR_INVALID);
    /* A failed add leaves nothing behind: one (empty) table in the section. */
    char path[512];
    snprintf(path, sizeof path, "%s/err.json", dir);
    CHECK_OK(nnq_report_write_json(r, path));
    size_t len;
    char *js = read_text(path, &len);
    jval doc;
    const char *err = NULL;
    CHECK(js && json_parse(js, len, &doc, &err));
    if (js && !err) {
        const jval *items = jget(jat(jget(&doc, "sections"), 0), "items");
        CHECK(items && items->n == 1);
        CHECK(strcmp(jstr(jget(&doc, "title")), "nnq report") == 0);
        jfree(&doc);
    }
    free(js);
    unlink(path);
    snprintf(path, sizeof path, "%s/no/such/dir/r.html", dir);
    CHECK_STATUS(nnq_report_write_html(r, path), NNQ_ERR_IO);
    nnq_report_free(r);

    char buf[64];
    CHECK(strcmp(nnq_report_fmt_number(-0.001, 2, buf, sizeof buf), "0.00") == 0);
    CHECK(strcmp(nnq_report_fmt_number(-0.0, NNQ_FMT_SIG(3), buf, sizeof buf), "0") == 0);
    CHECK(strcmp(nnq_report_fmt_number(1.5e-5, NNQ_FMT_SIG(3), buf, sizeof buf), "1.5e-05") == 0);
    CHECK(strcmp(nnq_report_fmt_number(NAN, 2, buf, sizeof buf), "\xe2\x80\x93") == 0);
    CHECK(strcmp(nnq_report_fmt_number(-INFINITY, 2, buf, sizeof buf), "\xe2\x80\x93") == 0);
    CHECK(strcmp(nnq_report_fmt_number(1e300, 2, buf, sizeof buf), "1e+300") == 0);
    CHECK(strcmp(nnq_report_fmt_number(-2.5, 1, buf, sizeof buf), "-2.5") == 0);
    CHECK(strcmp(nnq_report_fmt_number(123.456, NNQ_FMT_SIG(2), buf, sizeof buf), "123") == 0);
    CHECK(strcmp(nnq_report_fmt_number(0.0123, NNQ_FMT_SIG(2), buf, sizeof buf), "0.012") == 0);
    CHECK(strcmp(nnq_report_fmt_number(9.996, NNQ_FMT_SIG(3), buf, sizeof buf), "10") == 0);
    CHECK(strcmp(nnq_report_fmt_number(-0.5, NNQ_FMT_SIG(3), buf, sizeof buf), "-0.5") == 0);
    CHECK(strcmp(nnq_report_fmt_number(2e15, NNQ_FMT_SIG(3), buf, sizeof buf), "2e+15") == 0);
}

int main(int argc, char **argv) {
    char tmpl[] = "/tmp/nnq_report_XXXXXX";
    const bool keep = argc > 1;
    const char *dir = keep ? argv[1] : mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir) return check_finish("test_report");

    nnq_report *r = NULL;
    CHECK_OK(build_sample(&r));
    if (!r) return check_finish("test_report");
    char html_path[512], json_path[512], again_path[512];
    snprintf(html_path, sizeof html_path, "%s/sample.html", dir);
    snprintf(json_path, sizeof json_path, "%s/sample.json", dir);
    snprintf(again_path, sizeof again_path, "%s/again.html", dir);
    CHECK_OK(nnq_report_write_html(r, html_path));
    CHECK_OK(nnq_report_write_json(r, json_path));
    CHECK_OK(nnq_report_write_html(r, again_path));
    nnq_report_free(r);

    size_t hlen = 0, jlen = 0, alen = 0;
    char *html = read_text(html_path, &hlen), *json = read_text(json_path, &jlen);
    char *again = read_text(again_path, &alen);
    CHECK(html && json && again);
    if (html && json && again) {
        CHECK(hlen == alen && memcmp(html, again, hlen) == 0); /* deterministic */
        check_page(html, hlen);
        check_svgs(html, 13);
        check_drawings(html);
        CHECK(utf8_valid((const unsigned char *)json, jlen));
        CHECK(!contains_nocase(json, "http"));
        jval doc;
        const char *err = NULL;
        bool ok = json_parse(json, jlen, &doc, &err);
        if (!ok) fprintf(stderr, "JSON does not parse: %s\n", err);
        CHECK(ok);
        if (ok) {
            CHECK(strcmp(jstr(jget(&doc, "format")), "nnq-report") == 0);
            CHECK(strcmp(jstr(jget(&doc, "title")), TITLE) == 0);
            check_tables(html, &doc);
            check_summary(html, &doc);
            check_chart_json(&doc);
            jfree(&doc);
        }
    }
    free(html);
    free(json);
    free(again);
    unlink(again_path);
    check_errors(dir);

    /* Atomic writes leave no temporary files behind. */
    DIR *d = opendir(dir);
    int temps = 0, outputs = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        temps += strstr(de->d_name, ".tmp.") != NULL;
        outputs += !strcmp(de->d_name, "sample.html") || !strcmp(de->d_name, "sample.json");
    }
    if (d) closedir(d);
    CHECK(temps == 0 && outputs == 2);
    if (!keep) {
        unlink(html_path);
        unlink(json_path);
        rmdir(dir);
    }
    return check_finish("test_report");
}
