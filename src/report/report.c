/* Building the report document: copies of everything the caller passes,
 * checked once here so the writers can trust what they read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_impl.h"

#define CHUNK_BYTES (64 * 1024)
#define MAX_TEXT_BYTES (1 << 20) /* one string: a paragraph at most */

struct rep_chunk {
    rep_chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

/* Zeroed memory from the report's arena; big requests get a chunk of their own. */
static void *arena_alloc(nnq_report *r, size_t n) {
    const size_t align = _Alignof(max_align_t);
    n = (n + align - 1) / align * align;
    rep_chunk *c = r->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = calloc(1, sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        if (n > CHUNK_BYTES && r->chunks) { /* keep filling the current small chunk */
            c->next = r->chunks->next;
            r->chunks->next = c;
            c->used = n;
            return c->data;
        }
        c->next = r->chunks;
        r->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

/* Sanitized copy of s into the arena; NULL s stays NULL. */
static nnq_status copy_str(nnq_report *r, const char *s, const char **out) {
    *out = NULL;
    if (!s) return NNQ_OK;
    if (strlen(s) > MAX_TEXT_BYTES)
        return nnq_fail(NNQ_ERR_LIMIT, "report: a text of %zu bytes (limit %d)", strlen(s),
                        MAX_TEXT_BYTES);
    char *t = rep_sanitize(s);
    char *d = t ? arena_alloc(r, strlen(t) + 1) : NULL;
    if (d) memcpy(d, t, strlen(t) + 1);
    free(t);
    if (!d) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory copying a text");
    *out = d;
    return NNQ_OK;
}

/* Copy of n doubles (n may be 0). */
static nnq_status copy_doubles(nnq_report *r, const double *src, size_t n, const char *what,
                               const double **out) {
    *out = NULL;
    if (n == 0) return NNQ_OK;
    if (!src) return nnq_fail(NNQ_ERR_INVALID, "report: %s is NULL", what);
    double *d = arena_alloc(r, n * sizeof *d);
    if (!d) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory copying %s", what);
    memcpy(d, src, n * sizeof *d);
    *out = d;
    return NNQ_OK;
}

/* Copy of n strings; a NULL array or NULL entries become "" when names
 * are optional (names_opt), else fail. */
static nnq_status copy_strs(nnq_report *r, const char *const *src, int n, bool names_opt,
                            const char *what, const char *const **out) {
    *out = NULL;
    if (n == 0) return NNQ_OK;
    if (!src && !names_opt) return nnq_fail(NNQ_ERR_INVALID, "report: %s is NULL", what);
    const char **d = arena_alloc(r, (size_t)n * sizeof *d);
    if (!d) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory copying %s", what);
    for (int i = 0; i < n; i++) {
        NNQ_TRY(copy_str(r, src && src[i] ? src[i] : "", &d[i]));
    }
    *out = d;
    return NNQ_OK;
}

static nnq_status check_count(int n, int lo, int hi, const char *what) {
    if (n < lo || n > hi)
        return nnq_fail(n > hi && hi == NNQ_REPORT_MAX_POINTS ? NNQ_ERR_LIMIT : NNQ_ERR_INVALID,
                        "report: %s is %d, expected %d..%d", what, n, lo, hi);
    return NNQ_OK;
}

static nnq_status check_fmt(int fmt) {
    if (fmt > 9 || fmt < -17)
        return nnq_fail(NNQ_ERR_INVALID, "report: number format %d (0..9 decimals or "
                                         "NNQ_FMT_SIG(1..17))", fmt);
    return NNQ_OK;
}

nnq_status nnq_report_create(const char *title, nnq_report **out) {
    *out = NULL;
    nnq_report *r = calloc(1, sizeof *r);
    if (!r) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    nnq_status s = copy_str(r, title ? title : "nnq report", &r->title);
    if (s != NNQ_OK) goto fail;
    *out = r;
    return NNQ_OK;
fail:
    nnq_report_free(r);
    return s;
}

void nnq_report_free(nnq_report *r) {
    if (!r) return;
    for (rep_chunk *c = r->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(r);
}

nnq_status nnq_report_set_subtitle(nnq_report *r, const char *text) {
    return copy_str(r, text, &r->subtitle);
}

#define APPEND(head, last, node)                                                               \
    do {                                                                                       \
        if (last) (last)->next = (node);                                                      \
        else (head) = (node);                                                                  \
        (last) = (node);                                                                       \
    } while (0)

nnq_status nnq_report_add_meta(nnq_report *r, const char *key, const char *value) {
    const char *k, *v;
    NNQ_TRY(copy_str(r, key ? key : "", &k));
    NNQ_TRY(copy_str(r, value ? value : "", &v));
    for (rep_pair *p = r->meta; p; p = p->next)
        if (strcmp(p->key, k) == 0) {
            p->value = v;
            return NNQ_OK;
        }
    rep_pair *p = arena_alloc(r, sizeof *p);
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    p->key = k;
    p->value = v;
    APPEND(r->meta, r->meta_last, p);
    return NNQ_OK;
}

static nnq_status new_stat(nnq_report *r, const char *label, double value, int fmt,
                           const char *unit, const char *note, rep_stat **out) {
    NNQ_TRY(check_fmt(fmt));
    rep_stat *st = arena_alloc(r, sizeof *st);
    if (!st) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    NNQ_TRY(copy_str(r, label ? label : "", &st->label));
    NNQ_TRY(copy_str(r, unit, &st->unit));
    NNQ_TRY(copy_str(r, note, &st->note));
    st->value = value;
    st->fmt = fmt;
    *out = st;
    return NNQ_OK;
}

nnq_status nnq_report_add_headline(nnq_report *r, const char *label, double value, int fmt,
                                   const char *unit, const char *note) {
    rep_stat *st;
    NNQ_TRY(new_stat(r, label, value, fmt, unit, note, &st));
    APPEND(r->headlines, r->headlines_last, st);
    return NNQ_OK;
}

nnq_status nnq_report_add_sensitive(nnq_report *r, const char *layer, double value, int fmt,
                                    const char *unit, const char *advice) {
    rep_stat *st;
    NNQ_TRY(new_stat(r, layer, value, fmt, unit, advice, &st));
    APPEND(r->sensitive, r->sensitive_last, st);
    return NNQ_OK;
}

nnq_status nnq_report_add_section(nnq_report *r, const char *title, const char *text,
                                  nnq_report_section **out) {
    *out = NULL;
    nnq_report_section *s = arena_alloc(r, sizeof *s);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    s->owner = r;
    NNQ_TRY(copy_str(r, title ? title : "", &s->title));
    if (text) NNQ_TRY(nnq_report_add_text(s, text));
    APPEND(r->sections, r->sections_last, s); /* only once complete */
    *out = s;
    return NNQ_OK;
}

static nnq_status new_item(nnq_report_section *s, rep_kind kind, rep_item **out) {
    rep_item *it = arena_alloc(s->owner, sizeof *it);
    if (!it) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    it->kind = kind;
    *out = it;
    return NNQ_OK;
}

/* Items join their section only once fully copied, so a failed add leaves
 * the document as it was (the arena keeps the partial copy until free). */
static void push_item(nnq_report_section *s, rep_item *it) { APPEND(s->items, s->last, it); }

nnq_status nnq_report_add_text(nnq_report_section *s, const char *text) {
    rep_item *it = NULL;
    NNQ_TRY(new_item(s, REP_TEXT, &it));
    NNQ_TRY(copy_str(s->owner, text ? text : "", &it->u.text));
    push_item(s, it);
    return NNQ_OK;
}

nnq_status nnq_report_add_table(nnq_report_section *s, const char *caption, int n_cols,
                                const char *const *headers, nnq_report_table **out) {
    *out = NULL;
    rep_item *it = NULL;
    NNQ_TRY(check_count(n_cols, 1, 64, "table columns"));
    NNQ_TRY(new_item(s, REP_TABLE, &it));
    nnq_report_table *t = &it->u.table;
    t->owner = s->owner;
    t->n_cols = n_cols;
    NNQ_TRY(copy_str(s->owner, caption, &t->caption));
    NNQ_TRY(copy_strs(s->owner, headers, n_cols, true, "table headers", &t->headers));
    push_item(s, it);
    *out = t;
    return NNQ_OK;
}

nnq_status nnq_report_table_add_row(nnq_report_table *t, const nnq_report_cell *cells,
                                    bool highlight) {
    if (!cells) return nnq_fail(NNQ_ERR_INVALID, "report: table row without cells");
    rep_row *row = arena_alloc(t->owner, sizeof *row);
    nnq_report_cell *c = arena_alloc(t->owner, (size_t)t->n_cols * sizeof *c);
    if (!row || !c) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
    for (int i = 0; i < t->n_cols; i++) {
        c[i] = cells[i];
        if (c[i].kind == NNQ_CELL_KIND_NUM) {
            NNQ_TRY(check_fmt(c[i].fmt));
            c[i].text = NULL;
        } else if (c[i].kind == NNQ_CELL_KIND_TEXT) {
            const char *txt;
            NNQ_TRY(copy_str(t->owner, c[i].text ? c[i].text : "", &txt));
            c[i].text = txt;
        } else {
            return nnq_fail(NNQ_ERR_INVALID, "report: table cell %d has kind %d", i,
                            (int)c[i].kind);
        }
    }
    row->cells = c;
    row->highlight = highlight;
    APPEND(t->rows, t->last, row);
    return NNQ_OK;
}

/* ---- charts ---- */

static size_t mul(int a, int b) { return (size_t)a * (size_t)b; }

nnq_status nnq_report_add_bar_chart(nnq_report_section *s, const nnq_report_bar_chart *c) {
    nnq_report *r = s->owner;
    rep_item *it = NULL;
    NNQ_TRY(check_count(c->n_bars, 0, NNQ_REPORT_MAX_POINTS, "bar chart: bars"));
    NNQ_TRY(check_count(c->n_series, 1, NNQ_REPORT_MAX_SERIES, "bar chart: series"));
    NNQ_TRY(check_fmt(c->fmt));
    NNQ_TRY(new_item(s, REP_BARS, &it));
    nnq_report_bar_chart *d = &it->u.bars;
    *d = *c;
    NNQ_TRY(copy_str(r, c->title, &d->title));
    NNQ_TRY(copy_str(r, c->caption, &d->caption));
    NNQ_TRY(copy_str(r, c->value_label, &d->value_label));
    NNQ_TRY(copy_strs(r, c->labels, c->n_bars, false, "bar chart: labels", &d->labels));
    NNQ_TRY(copy_strs(r, c->series_names, c->n_series, c->n_series == 1,
                      "bar chart: series names", &d->series_names));
    NNQ_TRY(copy_doubles(r, c->values, mul(c->n_bars, c->n_series), "bar chart: values",
                         &d->values));
    push_item(s, it);
    return NNQ_OK;
}

nnq_status nnq_report_add_line_chart(nnq_report_section *s, const nnq_report_line_chart *c) {
    nnq_report *r = s->owner;
    rep_item *it = NULL;
    NNQ_TRY(check_count(c->n_x, 0, NNQ_REPORT_MAX_POINTS, "line chart: x positions"));
    NNQ_TRY(check_count(c->n_series, 1, NNQ_REPORT_MAX_SERIES, "line chart: series"));
    NNQ_TRY(check_fmt(c->fmt));
    if (c->x)
        for (int i = 0; i < c->n_x; i++)
            if (rep_missing(c->x[i]))
                return nnq_fail(NNQ_ERR_INVALID, "line chart '%s': x[%d] is not finite",
                                c->title ? c->title : "", i);
    NNQ_TRY(new_item(s, REP_LINES, &it));
    nnq_report_line_chart *d = &it->u.lines;
    *d = *c;
    NNQ_TRY(copy_str(r, c->title, &d->title));
    NNQ_TRY(copy_str(r, c->caption, &d->caption));
    NNQ_TRY(copy_str(r, c->x_label, &d->x_label));
    NNQ_TRY(copy_str(r, c->y_label, &d->y_label));
    NNQ_TRY(copy_doubles(r, c->x, c->x ? (size_t)c->n_x : 0, "line chart: x", &d->x));
    d->x_labels = NULL;
    if (!c->x)
        NNQ_TRY(copy_strs(r, c->x_labels, c->n_x, false, "line chart: x_labels", &d->x_labels));
    NNQ_TRY(copy_strs(r, c->series_names, c->n_series, false, "line chart: series names",
                      &d->series_names));
    NNQ_TRY(copy_doubles(r, c->y, mul(c->n_series, c->n_x), "line chart: y", &d->y));
    push_item(s, it);
    return NNQ_OK;
}

nnq_status nnq_report_add_range_chart(nnq_report_section *s, const nnq_report_range_chart *c) {
    nnq_report *r = s->owner;
    rep_item *it = NULL;
    NNQ_TRY(check_count(c->n_channels, 0, NNQ_REPORT_MAX_POINTS, "range chart: channels"));
    NNQ_TRY(check_count(c->n_series, 1, 4, "range chart: series"));
    NNQ_TRY(check_fmt(c->fmt));
    NNQ_TRY(new_item(s, REP_RANGES, &it));
    nnq_report_range_chart *d = &it->u.ranges;
    *d = *c;
    NNQ_TRY(copy_str(r, c->title, &d->title));
    NNQ_TRY(copy_str(r, c->caption, &d->caption));
    NNQ_TRY(copy_str(r, c->y_label, &d->y_label));
    NNQ_TRY(copy_strs(r, c->series_names, c->n_series, false, "range chart: series names",
                      &d->series_names));
    const size_t n = mul(c->n_series, c->n_channels);
    NNQ_TRY(copy_doubles(r, c->lo, n, "range chart: lo", &d->lo));
    NNQ_TRY(copy_doubles(r, c->hi, n, "range chart: hi", &d->hi));
    push_item(s, it);
    return NNQ_OK;
}

nnq_status nnq_report_add_histogram(nnq_report_section *s, const nnq_report_histogram *c) {
    nnq_report *r = s->owner;
    rep_item *it = NULL;
    NNQ_TRY(check_count(c->n_bins, 0, NNQ_REPORT_MAX_POINTS, "histogram: bins"));
    NNQ_TRY(check_count(c->n_markers, 0, NNQ_REPORT_MAX_SERIES, "histogram: markers"));
    NNQ_TRY(check_fmt(c->fmt));
    if (c->n_bins > 0 && (!c->edges || !c->counts))
        return nnq_fail(NNQ_ERR_INVALID, "histogram '%s': edges or counts is NULL",
                        c->title ? c->title : "");
    for (int i = 0; i < c->n_bins; i++)
        if (rep_missing(c->edges[i]) || rep_missing(c->edges[i + 1]) ||
            !(c->edges[i] < c->edges[i + 1]))
            return nnq_fail(NNQ_ERR_INVALID,
                            "histogram '%s': bin edges must be finite and ascending (bin %d)",
                            c->title ? c->title : "", i);
    if (c->n_markers > 0 && !c->markers)
        return nnq_fail(NNQ_ERR_INVALID, "histogram: markers is NULL");
    NNQ_TRY(new_item(s, REP_HIST, &it));
    nnq_report_histogram *d = &it->u.hist;
    *d = *c;
    NNQ_TRY(copy_str(r, c->title, &d->title));
    NNQ_TRY(copy_str(r, c->caption, &d->caption));
    NNQ_TRY(copy_str(r, c->x_label, &d->x_label));
    NNQ_TRY(copy_doubles(r, c->edges, c->n_bins ? (size_t)c->n_bins + 1 : 0, "histogram: edges",
                         &d->edges));
    NNQ_TRY(copy_doubles(r, c->counts, (size_t)c->n_bins, "histogram: counts", &d->counts));
    nnq_report_marker *m = NULL;
    if (c->n_markers > 0) {
        m = arena_alloc(r, (size_t)c->n_markers * sizeof *m);
        if (!m) return nnq_fail(NNQ_ERR_NOMEM, "report: out of memory");
        for (int i = 0; i < c->n_markers; i++) {
            m[i] = c->markers[i];
            NNQ_TRY(copy_str(r, c->markers[i].label ? c->markers[i].label : "",
                             &m[i].label));
        }
    }
    d->markers = m;
    push_item(s, it);
    return NNQ_OK;
}
