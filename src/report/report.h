/* Reports: a small document built in memory, then written as one
 * self-contained HTML page (inline CSS and SVG charts, no scripts, no
 * external references) and as JSON with the same data for scripts.
 *
 * The report takes plain data (names, numbers, arrays); the analysis
 * passes that compute it live elsewhere. Every string and array passed in
 * is copied, so callers may free theirs right after a call. Strings are
 * treated as outside data (ONNX layer names): both writers escape them and
 * replace invalid UTF-8 and control characters.
 *
 * Layout of the page (docs/report.md): title, subtitle and metadata; the
 * summary (headline numbers as cards, the most sensitive layers with what
 * to try for each); a table of contents; then the sections in order, each
 * a list of items: paragraphs, tables and charts.
 *
 * Numbers: NaN and ±Inf are "missing": "–" in the page, null in JSON, a
 * gap or nothing in charts. Table cells and summary numbers are written to
 * JSON exactly as the page shows them (same format, so a script or a test
 * can compare the two); chart data is written at full precision. */
#ifndef NNQ_REPORT_REPORT_H
#define NNQ_REPORT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

/* ---- Number formats ----
 * An int: >= 0 is a fixed number of decimals (0..9, printf "%.*f");
 * NNQ_FMT_SIG(n) is n significant digits (1..17), trailing zeros dropped:
 * plain notation from 1e-4 to 1e15 with the whole integer part ("0.0123",
 * "123" for 123.4 at 2 digits), exponent notation outside ("1.5e-05"). */
#define NNQ_FMT_FIXED(d) (d)
#define NNQ_FMT_SIG(n) (-(n))

/* v formatted by fmt into buf (a JSON number, or "–" when v is not
 * finite; "-0.00" prints as "0.00"). Returns buf. cap >= 32 suffices. */
const char *nnq_report_fmt_number(double v, int fmt, char *buf, size_t cap);

typedef struct nnq_report nnq_report;                 /* the document */
typedef struct nnq_report_section nnq_report_section; /* owned by the report */
typedef struct nnq_report_table nnq_report_table;     /* owned by its section */

nnq_status nnq_report_create(const char *title, nnq_report **out);
void nnq_report_free(nnq_report *r);

/* One line under the title, e.g. "W8A8 per-tensor, recipe: cle+bc". */
nnq_status nnq_report_set_subtitle(nnq_report *r, const char *text);
/* Metadata shown under the title ("model", "date", "bits", "recipe"), in
 * the order added; adding an existing key replaces its value. */
nnq_status nnq_report_add_meta(nnq_report *r, const char *key, const char *value);

/* ---- Summary ----
 * A headline number as a card: label, value with its format and unit
 * ("%", "MB"), optional note (NULL), e.g. "−1.4 points vs float". */
nnq_status nnq_report_add_headline(nnq_report *r, const char *label, double value, int fmt,
                                   const char *unit, const char *note);
/* One of the most sensitive layers, in the order added (most sensitive
 * first): its name, the metric (e.g. top-1 drop 3.2 "points") and what to
 * try ("per-channel weights", "8-bit", "AdaRound", "keep in float"). */
nnq_status nnq_report_add_sensitive(nnq_report *r, const char *layer, double value, int fmt,
                                    const char *unit, const char *advice);

/* ---- Sections and paragraphs ----
 * A section with a title and an optional first paragraph (NULL: none).
 * *out stays valid until nnq_report_free. */
nnq_status nnq_report_add_section(nnq_report *r, const char *title, const char *text,
                                  nnq_report_section **out);
nnq_status nnq_report_add_text(nnq_report_section *s, const char *text);

/* ---- Tables ----
 * Column headers, then rows of exactly n_cols cells. Number cells are
 * right-aligned; a highlighted row is tinted (e.g. the layers the summary
 * names). caption may be NULL. */
typedef enum nnq_report_cell_kind { NNQ_CELL_KIND_TEXT, NNQ_CELL_KIND_NUM } nnq_report_cell_kind;

typedef struct nnq_report_cell {
    nnq_report_cell_kind kind;
    const char *text; /* TEXT (NULL → empty) */
    double num;       /* NUM */
    int fmt;          /* NUM: NNQ_FMT_FIXED / NNQ_FMT_SIG */
} nnq_report_cell;

#define NNQ_CELL_TEXT(s) ((nnq_report_cell){.kind = NNQ_CELL_KIND_TEXT, .text = (s)})
#define NNQ_CELL_NUM(v, f) ((nnq_report_cell){.kind = NNQ_CELL_KIND_NUM, .num = (v), .fmt = (f)})

nnq_status nnq_report_add_table(nnq_report_section *s, const char *caption, int n_cols,
                                const char *const *headers, nnq_report_table **out);
nnq_status nnq_report_table_add_row(nnq_report_table *t, const nnq_report_cell *cells,
                                    bool highlight);

/* ---- Charts ----
 * Every chart has a title (a heading above it) and a caption saying what it
 * shows (below it); both may be NULL. Series colours come from one palette
 * in the order given, so "weights" or "before CLE" keep their colour across
 * charts when callers keep their order. At most NNQ_REPORT_MAX_SERIES
 * series per chart. */
#define NNQ_REPORT_MAX_SERIES 8
#define NNQ_REPORT_MAX_POINTS (1 << 20) /* bars, x positions, channels, bins */

/* Horizontal bars, one row per label (e.g. a layer), with n_series bars per
 * row: 1 is a plain ranked bar chart (e.g. top-1 drop per layer), more is
 * grouped bars (e.g. SQNR of weights and activations per layer). Negative
 * values grow left of a zero line. sort_desc ranks rows by the first
 * series, largest first (missing values last). */
typedef struct nnq_report_bar_chart {
    const char *title, *caption;
    const char *value_label;         /* the value axis, e.g. "top-1 drop (points)" */
    int n_bars;
    const char *const *labels;       /* [n_bars] */
    int n_series;                    /* 1..NNQ_REPORT_MAX_SERIES */
    const char *const *series_names; /* [n_series]; may be NULL when n_series == 1 */
    const double *values;            /* [n_bars][n_series] */
    int fmt;                         /* value labels and tooltips */
    bool sort_desc;
} nnq_report_bar_chart;

/* Lines over a shared x: numeric (x != NULL, e.g. bits 2..8) or categorical
 * (x_labels, evenly spaced in the order given, e.g. "8", "6", "4", "3",
 * "2"). A missing y is a gap; a series with no finite y is listed in the
 * legend as "(no data)". */
typedef struct nnq_report_line_chart {
    const char *title, *caption;
    const char *x_label, *y_label;
    int n_x;
    const double *x;                 /* [n_x], or NULL: categorical */
    const char *const *x_labels;     /* [n_x] when x == NULL */
    int n_series;                    /* 1..NNQ_REPORT_MAX_SERIES */
    const char *const *series_names; /* [n_series] */
    const double *y;                 /* [n_series][n_x] */
    bool markers;                    /* a dot at each point */
    int fmt;                         /* y in tooltips */
} nnq_report_line_chart;

/* Per-channel ranges of one tensor: a vertical bar from min to max for
 * each output channel, one panel per series ("before CLE", "after CLE")
 * stacked with the same y axis, so equalization shows as bars of similar
 * height. A channel with a missing bound is left out. */
typedef struct nnq_report_range_chart {
    const char *title, *caption;
    const char *y_label;             /* e.g. "weight value" */
    int n_channels;
    int n_series;                    /* 1..4 panels */
    const char *const *series_names; /* [n_series] */
    const double *lo, *hi;           /* [n_series][n_channels] */
    int fmt;                         /* tooltips */
} nnq_report_range_chart;

/* A range drawn on a histogram as two vertical lines in one colour, with
 * its label (e.g. the clipping range chosen by "mse"); hi = NaN: one line. */
typedef struct nnq_report_marker {
    const char *label;
    double lo, hi;
} nnq_report_marker;

/* Histogram from bin edges (ascending, finite) and counts (>= 0; missing
 * counts draw as empty); log_y for heavy tails. Many bins are merged for
 * drawing (the JSON keeps them all). */
typedef struct nnq_report_histogram {
    const char *title, *caption;
    const char *x_label;
    int n_bins;
    const double *edges;             /* [n_bins + 1] */
    const double *counts;            /* [n_bins] */
    bool log_y;
    int n_markers;                   /* 0..NNQ_REPORT_MAX_SERIES */
    const nnq_report_marker *markers;
    int fmt;                         /* marker values in the legend */
} nnq_report_histogram;

nnq_status nnq_report_add_bar_chart(nnq_report_section *s, const nnq_report_bar_chart *c);
nnq_status nnq_report_add_line_chart(nnq_report_section *s, const nnq_report_line_chart *c);
nnq_status nnq_report_add_range_chart(nnq_report_section *s, const nnq_report_range_chart *c);
nnq_status nnq_report_add_histogram(nnq_report_section *s, const nnq_report_histogram *c);

/* ---- Output (both atomic) ---- */
nnq_status nnq_report_write_html(const nnq_report *r, const char *path);
nnq_status nnq_report_write_json(const nnq_report *r, const char *path);
/* The same JSON on an open stream (e.g. stdout for `--json`). */
nnq_status nnq_report_write_json_stream(const nnq_report *r, FILE *fp);

#endif
