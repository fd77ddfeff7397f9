/* Inside the report: the stored document (report.c builds it, the writers
 * report_html.c, report_svg*.c and report_json.c read it). Everything lives
 * in one arena owned by the report, freed at once; lists are singly linked
 * in the order added. Stored chart structs are the public ones, with their
 * pointers aimed at the arena's copies. */
#ifndef NNQ_REPORT_IMPL_H
#define NNQ_REPORT_IMPL_H

#include <stdio.h>

#include "report/report.h"

typedef struct rep_chunk rep_chunk;

typedef struct rep_pair { /* metadata */
    struct rep_pair *next;
    const char *key, *value;
} rep_pair;

typedef struct rep_stat { /* headline card or sensitive layer */
    struct rep_stat *next;
    const char *label, *unit, *note; /* note: headline note / sensitive advice */
    double value;
    int fmt;
} rep_stat;

typedef struct rep_row {
    struct rep_row *next;
    bool highlight;
    nnq_report_cell *cells; /* [n_cols], texts in the arena */
} rep_row;

struct nnq_report_table {
    nnq_report *owner;
    const char *caption;
    int n_cols;
    const char *const *headers;
    rep_row *rows, *last;
};

typedef enum rep_kind { REP_TEXT, REP_TABLE, REP_BARS, REP_LINES, REP_RANGES, REP_HIST } rep_kind;

typedef struct rep_item {
    struct rep_item *next;
    rep_kind kind;
    union {
        const char *text;
        nnq_report_table table;
        nnq_report_bar_chart bars;
        nnq_report_line_chart lines;
        nnq_report_range_chart ranges;
        nnq_report_histogram hist;
    } u;
} rep_item;

struct nnq_report_section {
    nnq_report *owner;
    struct nnq_report_section *next;
    const char *title;
    rep_item *items, *last;
};

struct nnq_report {
    rep_chunk *chunks;
    const char *title, *subtitle;
    rep_pair *meta, *meta_last;
    rep_stat *headlines, *headlines_last;
    rep_stat *sensitive, *sensitive_last;
    nnq_report_section *sections, *sections_last;
};

/* ---- report_text.c: text that is safe to write ----
 * Copy of s with invalid UTF-8, control characters (except \n and \t) and
 * XML-forbidden code points replaced by U+FFFD (malloc'd; NULL on failure). */
char *rep_sanitize(const char *s);
/* s escaped for HTML/XML text and attribute values (& < > " '). */
void rep_put_html(FILE *fp, const char *s);
/* s as a JSON string literal, quotes included; NULL → null. */
void rep_put_json(FILE *fp, const char *s);
/* Number of code points in s (UTF-8). */
size_t rep_utf8_len(const char *s);
/* At most max code points of s escaped for HTML, "…" appended if cut;
 * returns true when cut. */
bool rep_put_html_trunc(FILE *fp, const char *s, size_t max);

/* ---- report_svg*.c: the charts, as inline <svg> elements ---- */
void rep_svg_write(FILE *fp, const rep_item *it);

/* Missing values: NaN or ±Inf. */
static inline bool rep_missing(double v) { return !(v - v == 0); }

#endif
