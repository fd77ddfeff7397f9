/* The report as JSON, for scripts: the same document as the page. Table
 * cells and summary numbers are printed exactly as the page shows them
 * (nnq_report_fmt_number); chart data with 10 significant digits. Missing
 * numbers are null. One member per line, number arrays on one line. */
#include "core/fileio.h"
#include "report/report_impl.h"

#define NNQ_REPORT_JSON_VERSION 1

/* Separator and indentation before a member or element. */
static void sep(FILE *fp, bool *first, int indent) {
    fputs(*first ? "\n" : ",\n", fp);
    *first = false;
    for (int i = 0; i < indent; i++) fputs("  ", fp);
}

static void key(FILE *fp, bool *first, int indent, const char *k) {
    sep(fp, first, indent);
    rep_put_json(fp, k);
    fputs(": ", fp);
}

/* A displayed number: same text as the page, null when missing. */
static void shown_num(FILE *fp, double v, int fmt) {
    char buf[64];
    fputs(rep_missing(v) ? "null" : nnq_report_fmt_number(v, fmt, buf, sizeof buf), fp);
}

static void data_num(FILE *fp, double v) {
    if (rep_missing(v)) fputs("null", fp);
    else fprintf(fp, "%.10g", v);
}

static void num_array(FILE *fp, const double *v, size_t n) {
    fputc('[', fp);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        data_num(fp, v[i]);
    }
    fputc(']', fp);
}

static void str_array(FILE *fp, const char *const *v, int n) {
    fputc('[', fp);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        rep_put_json(fp, v[i]);
    }
    fputc(']', fp);
}

/* The closing bracket of a block, on its own line when it has members. */
static void close_block(FILE *fp, bool first, int indent, char c) {
    if (!first) {
        fputc('\n', fp);
        for (int i = 0; i < indent; i++) fputs("  ", fp);
    }
    fputc(c, fp);
}

static void str_member(FILE *fp, bool *first, int indent, const char *k, const char *v) {
    key(fp, first, indent, k);
    rep_put_json(fp, v);
}

static void stats(FILE *fp, const rep_stat *st, const char *label_key, const char *note_key,
                  int indent) {
    bool first = true;
    fputc('[', fp);
    for (; st; st = st->next) {
        sep(fp, &first, indent + 1);
        fputs("{", fp);
        rep_put_json(fp, label_key);
        fputs(": ", fp);
        rep_put_json(fp, st->label);
        fputs(", \"value\": ", fp);
        shown_num(fp, st->value, st->fmt);
        fputs(", \"unit\": ", fp);
        rep_put_json(fp, st->unit);
        fprintf(fp, ", \"%s\": ", note_key);
        rep_put_json(fp, st->note);
        fputc('}', fp);
    }
    close_block(fp, first, indent, ']');
}

static void table(FILE *fp, const nnq_report_table *t, bool *first, int ind) {
    str_member(fp, first, ind, "caption", t->caption);
    key(fp, first, ind, "columns");
    str_array(fp, t->headers, t->n_cols);
    key(fp, first, ind, "rows");
    fputc('[', fp);
    bool rfirst = true;
    for (const rep_row *row = t->rows; row; row = row->next) {
        sep(fp, &rfirst, ind + 1);
        fprintf(fp, "{\"highlight\": %s, \"cells\": [", row->highlight ? "true" : "false");
        for (int i = 0; i < t->n_cols; i++) {
            const nnq_report_cell *c = &row->cells[i];
            if (i) fputs(", ", fp);
            if (c->kind == NNQ_CELL_KIND_NUM) shown_num(fp, c->num, c->fmt);
            else rep_put_json(fp, c->text);
        }
        fputs("]}", fp);
    }
    fputc(']', fp);
}

/* series: [{"name": ..., <k1>: [...], <k2>: [...]}, ...]: series s reads
 * a1[s * stride + i * step], a2[s * stride + i] (k2 NULL: no second array). */
static void series(FILE *fp, bool *first, int ind, int ns, const char *const *names, size_t n,
                   const char *k1, const double *a1, const char *k2, const double *a2,
                   size_t stride, size_t step) {
    key(fp, first, ind, "series");
    fputc('[', fp);
    bool sfirst = true;
    for (int s = 0; s < ns; s++) {
        sep(fp, &sfirst, ind + 1);
        fputs("{\"name\": ", fp);
        rep_put_json(fp, names ? names[s] : "");
        fprintf(fp, ", \"%s\": [", k1);
        for (size_t i = 0; i < n; i++) {
            if (i) fputs(", ", fp);
            data_num(fp, a1[s * stride + i * step]);
        }
        fputc(']', fp);
        if (k2) {
            fprintf(fp, ", \"%s\": ", k2);
            num_array(fp, n ? a2 + s * stride : NULL, n);
        }
        fputc('}', fp);
    }
    fputc(']', fp);
}

static void chart(FILE *fp, const rep_item *it, bool *f, int ind) {
    switch (it->kind) {
    case REP_BARS: {
        const nnq_report_bar_chart *c = &it->u.bars;
        str_member(fp, f, ind, "title", c->title);
        str_member(fp, f, ind, "caption", c->caption);
        str_member(fp, f, ind, "value_label", c->value_label);
        key(fp, f, ind, "sorted");
        fputs(c->sort_desc ? "true" : "false", fp);
        key(fp, f, ind, "labels");
        str_array(fp, c->labels, c->n_bars);
        /* values are [bar][series]: series s is a strided column */
        series(fp, f, ind, c->n_series, c->series_names, (size_t)c->n_bars, "values", c->values,
               NULL, NULL, 1, (size_t)c->n_series);
        break;
    }
    case REP_LINES: {
        const nnq_report_line_chart *c = &it->u.lines;
        str_member(fp, f, ind, "title", c->title);
        str_member(fp, f, ind, "caption", c->caption);
        str_member(fp, f, ind, "x_label", c->x_label);
        str_member(fp, f, ind, "y_label", c->y_label);
        if (c->x) {
            key(fp, f, ind, "x");
            num_array(fp, c->x, (size_t)c->n_x);
        } else {
            key(fp, f, ind, "x_labels");
            str_array(fp, c->x_labels, c->n_x);
        }
        series(fp, f, ind, c->n_series, c->series_names, (size_t)c->n_x, "y", c->y, NULL, NULL,
               (size_t)c->n_x, 1);
        break;
    }
    case REP_RANGES: {
        const nnq_report_range_chart *c = &it->u.ranges;
        str_member(fp, f, ind, "title", c->title);
        str_member(fp, f, ind, "caption", c->caption);
        str_member(fp, f, ind, "y_label", c->y_label);
        key(fp, f, ind, "channels");
        fprintf(fp, "%d", c->n_channels);
        series(fp, f, ind, c->n_series, c->series_names, (size_t)c->n_channels, "lo", c->lo, "hi",
               c->hi, (size_t)c->n_channels, 1);
        break;
    }
    case REP_HIST: {
        const nnq_report_histogram *c = &it->u.hist;
        str_member(fp, f, ind, "title", c->title);
        str_member(fp, f, ind, "caption", c->caption);
        str_member(fp, f, ind, "x_label", c->x_label);
        key(fp, f, ind, "log_y");
        fputs(c->log_y ? "true" : "false", fp);
        key(fp, f, ind, "edges");
        num_array(fp, c->edges, c->n_bins ? (size_t)c->n_bins + 1 : 0);
        key(fp, f, ind, "counts");
        num_array(fp, c->counts, (size_t)c->n_bins);
        key(fp, f, ind, "markers");
        fputc('[', fp);
        for (int m = 0; m < c->n_markers; m++) {
            fputs(m ? ", {\"label\": " : "{\"label\": ", fp);
            rep_put_json(fp, c->markers[m].label);
            fputs(", \"lo\": ", fp);
            data_num(fp, c->markers[m].lo);
            fputs(", \"hi\": ", fp);
            data_num(fp, c->markers[m].hi);
            fputc('}', fp);
        }
        fputc(']', fp);
        break;
    }
    default: break;
    }
}

static const char *const TYPE[] = {
    [REP_TEXT] = "text",         [REP_TABLE] = "table",        [REP_BARS] = "bar_chart",
    [REP_LINES] = "line_chart", [REP_RANGES] = "range_chart", [REP_HIST] = "histogram",
};

static void sections(FILE *fp, const nnq_report *r) {
    bool sfirst = true;
    fputc('[', fp);
    for (const nnq_report_section *s = r->sections; s; s = s->next) {
        sep(fp, &sfirst, 2);
        fputc('{', fp);
        bool f = true;
        str_member(fp, &f, 3, "title", s->title);
        key(fp, &f, 3, "items");
        fputc('[', fp);
        bool ifirst = true;
        for (const rep_item *it = s->items; it; it = it->next) {
            sep(fp, &ifirst, 4);
            fputc('{', fp);
            bool g = true;
            str_member(fp, &g, 5, "type", TYPE[it->kind]);
            if (it->kind == REP_TEXT) str_member(fp, &g, 5, "text", it->u.text);
            else if (it->kind == REP_TABLE) table(fp, &it->u.table, &g, 5);
            else chart(fp, it, &g, 5);
            close_block(fp, g, 4, '}');
        }
        close_block(fp, ifirst, 3, ']');
        close_block(fp, f, 2, '}');
    }
    close_block(fp, sfirst, 1, ']');
}

static void write_doc(const nnq_report *r, FILE *fp) {
    bool f = true;
    fputc('{', fp);
    str_member(fp, &f, 1, "format", "nnq-report");
    key(fp, &f, 1, "version");
    fprintf(fp, "%d", NNQ_REPORT_JSON_VERSION);
    str_member(fp, &f, 1, "title", r->title);
    str_member(fp, &f, 1, "subtitle", r->subtitle);
    key(fp, &f, 1, "meta");
    fputc('{', fp);
    bool mf = true;
    for (const rep_pair *p = r->meta; p; p = p->next) str_member(fp, &mf, 2, p->key, p->value);
    close_block(fp, mf, 1, '}');
    key(fp, &f, 1, "summary");
    fputc('{', fp);
    bool sf = true;
    key(fp, &sf, 2, "headlines");
    stats(fp, r->headlines, "label", "note", 2);
    key(fp, &sf, 2, "sensitive");
    stats(fp, r->sensitive, "layer", "advice", 2);
    close_block(fp, sf, 1, '}');
    key(fp, &f, 1, "sections");
    sections(fp, r);
    fputs("\n}\n", fp);
}

nnq_status nnq_report_write_json(const nnq_report *r, const char *path) {
    nnq_atomic_file w;
    NNQ_TRY(nnq_atomic_open(&w, path));
    write_doc(r, w.fp);
    return nnq_atomic_commit(&w);
}

nnq_status nnq_report_write_json_stream(const nnq_report *r, FILE *fp) {
    write_doc(r, fp);
    if (fflush(fp) != 0 || ferror(fp)) return nnq_fail(NNQ_ERR_IO, "writing the report JSON failed");
    return NNQ_OK;
}
