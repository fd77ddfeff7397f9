/* The page: one self-contained HTML5 file. Inline CSS and inline SVG only:
 * no scripts, fonts, images or links outside the file, so it opens offline
 * and can be mailed or committed as is. Every piece of text goes through
 * rep_put_html; numbers through nnq_report_fmt_number (as in the JSON). */
#include <string.h>

#include "core/fileio.h"
#include "report/report_impl.h"

/* System font stack; max-width for a laptop screen; the chart classes are
 * documented in report_svg.c. */
static const char CSS[] =
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:#eef0f3;color:#1f2937;font:15px/1.55 system-ui,-apple-system,"
    "\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,\"Noto Sans\",\"Liberation Sans\",sans-serif}\n"
    "main{max-width:1100px;margin:0 auto;padding:28px 36px 36px;background:#fff;"
    "min-height:100vh}\n"
    "h1{font-size:27px;line-height:1.25;margin:0 0 4px}\n"
    "h2{font-size:20px;margin:38px 0 10px;padding-bottom:6px;border-bottom:2px solid #e5e7eb}\n"
    "h3{font-size:15px;margin:0 0 4px}\n"
    "p{margin:8px 0;white-space:pre-line;max-width:85ch}\n"
    ".sub{color:#4b5563;margin:0 0 8px;font-size:16px}\n"
    ".meta{display:flex;flex-wrap:wrap;gap:6px 8px;margin:10px 0 0}\n"
    ".meta div{background:#f3f4f6;border-radius:999px;padding:2px 12px;font-size:13px}\n"
    ".meta dt{display:inline;color:#6b7280}.meta dt::after{content:\": \"}\n"
    ".meta dd{display:inline;margin:0;font-weight:600}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;"
    "margin:14px 0 22px}\n"
    ".card{border:1px solid #e5e7eb;border-left:4px solid #4e79a7;border-radius:8px;"
    "padding:10px 14px;background:#fbfcfd}\n"
    ".card .lbl{font-size:13px;color:#6b7280}\n"
    ".card .val{font-size:27px;font-weight:650;line-height:1.3;font-variant-numeric:tabular-nums}"
    "\n.card .unit{font-size:15px;color:#6b7280;margin-left:3px;font-weight:500}\n"
    ".card .note{font-size:12.5px;color:#4b5563}\n"
    ".scroll{overflow-x:auto}\n"
    "table{border-collapse:collapse;width:100%;font-size:13.5px}\n"
    "th{text-align:left;font-weight:600;color:#374151;background:#f6f7f9;"
    "border-bottom:2px solid #e5e7eb;padding:6px 10px}\n"
    "td{padding:5px 10px;border-bottom:1px solid #eef0f2;vertical-align:top;"
    "overflow-wrap:anywhere}\n"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.m{color:#9ca3af}\n"
    "tr.hl td{background:#fff4e5}\n"
    "tr.hl td:first-child{box-shadow:inset 3px 0 #f28e2b}\n"
    "figure{margin:18px 0 30px}figure h3{margin-bottom:6px}\n"
    "figcaption{font-size:13px;color:#4b5563;margin:4px 0 8px}\n"
    ".chart figcaption{margin-top:2px}\n"
    ".chart svg{display:block;width:100%;height:auto;font-size:12px;fill:#374151}\n"
    "svg .g{stroke:#e8eaee}svg .z{stroke:#6b7280}\n"
    "svg .tk{fill:#6b7280;font-size:11px}svg .ax{font-weight:600}\n"
    "svg .mu{fill:#6b7280;font-weight:400}svg .nd{fill:#9ca3af;font-size:15px;font-style:italic}\n"
    "svg .st{fill:#f6f7f9}svg .rl{font-size:11.5px}svg .vl{fill:#4b5563;font-size:10.5px}\n"
    "svg .hit{fill:transparent}svg .hit:hover{fill:rgba(0,0,0,.07)}\n"
    "svg .ph{font-weight:600;font-size:13px}\n"
    "svg .ml{font-size:11px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:3px}\n"
    ".sens td.layer,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"
    "\"Liberation Mono\",monospace;font-size:13px}\n"
    ".toc ol{columns:2;margin:6px 0;padding-left:24px}.toc a{color:#2f5d8a}\n"
    "footer{margin-top:44px;color:#9ca3af;font-size:12px;border-top:1px solid #e5e7eb;"
    "padding-top:8px}\n"
    "@media print{body{background:#fff}main{padding:0}}\n";

static void put(FILE *fp, const char *s) { fputs(s, fp); }

/* A number cell or span: formatted text, "–" (class m) when missing. */
static void put_num(FILE *fp, double v, int fmt) {
    char buf[64];
    put(fp, nnq_report_fmt_number(v, fmt, buf, sizeof buf));
}

static void write_header(FILE *fp, const nnq_report *r) {
    put(fp, "<header>\n<h1>");
    rep_put_html(fp, r->title);
    put(fp, "</h1>\n");
    if (r->subtitle) {
        put(fp, "<p class=\"sub\">");
        rep_put_html(fp, r->subtitle);
        put(fp, "</p>\n");
    }
    if (r->meta) {
        put(fp, "<dl class=\"meta\">");
        for (const rep_pair *p = r->meta; p; p = p->next) {
            put(fp, "<div><dt>");
            rep_put_html(fp, p->key);
            put(fp, "</dt><dd>");
            rep_put_html(fp, p->value);
            put(fp, "</dd></div>");
        }
        put(fp, "</dl>\n");
    }
    put(fp, "</header>\n");
}

static void write_summary(FILE *fp, const nnq_report *r) {
    if (!r->headlines && !r->sensitive) return;
    put(fp, "<section class=\"summary\" id=\"summary\">\n<h2>Summary</h2>\n");
    if (r->headlines) {
        put(fp, "<div class=\"cards\">\n");
        for (const rep_stat *h = r->headlines; h; h = h->next) {
            put(fp, "<div class=\"card\"><div class=\"lbl\">");
            rep_put_html(fp, h->label);
            put(fp, "</div><div class=\"val\"><span class=\"num\">");
            put_num(fp, h->value, h->fmt);
            put(fp, "</span>");
            if (h->unit && *h->unit && !rep_missing(h->value)) { /* "–", not "–%" */
                put(fp, "<span class=\"unit\">");
                rep_put_html(fp, h->unit);
                put(fp, "</span>");
            }
            put(fp, "</div>");
            if (h->note && *h->note) {
                put(fp, "<div class=\"note\">");
                rep_put_html(fp, h->note);
                put(fp, "</div>");
            }
            put(fp, "</div>\n");
        }
        put(fp, "</div>\n");
    }
    if (r->sensitive) {
        put(fp, "<h3>Most sensitive layers</h3>\n<div class=\"scroll\"><table class=\"sens\">"
                "<thead><tr><th class=\"n\">#</th><th>Layer</th><th class=\"n\">Impact</th>"
                "<th>What to try</th></tr>"
                "</thead>\n<tbody>\n");
        int rank = 1;
        for (const rep_stat *s = r->sensitive; s; s = s->next, rank++) {
            fprintf(fp, "<tr><td class=\"n\">%d</td><td class=\"layer\">", rank);
            rep_put_html(fp, s->label);
            put(fp, "</td><td class=\"n\"><span class=\"num\">");
            put_num(fp, s->value, s->fmt);
            put(fp, "</span>");
            if (s->unit && *s->unit && !rep_missing(s->value)) {
                put(fp, " ");
                rep_put_html(fp, s->unit);
            }
            put(fp, "</td><td>");
            rep_put_html(fp, s->note ? s->note : "");
            put(fp, "</td></tr>\n");
        }
        put(fp, "</tbody></table></div>\n");
    }
    put(fp, "</section>\n");
}

static void write_toc(FILE *fp, const nnq_report *r) {
    int n = 0;
    for (const nnq_report_section *s = r->sections; s; s = s->next) n++;
    if (n < 2) return;
    put(fp, "<nav class=\"toc\"><h2>Contents</h2><ol>\n");
    n = 0;
    for (const nnq_report_section *s = r->sections; s; s = s->next) {
        fprintf(fp, "<li><a href=\"#s%d\">", ++n);
        rep_put_html(fp, s->title);
        put(fp, "</a></li>\n");
    }
    put(fp, "</ol></nav>\n");
}

/* A column of numbers only: its header aligns right, over the numbers. */
static bool numeric_column(const nnq_report_table *t, int col) {
    if (!t->rows) return false;
    for (const rep_row *row = t->rows; row; row = row->next)
        if (row->cells[col].kind != NNQ_CELL_KIND_NUM) return false;
    return true;
}

static void write_table(FILE *fp, const nnq_report_table *t) {
    put(fp, "<figure class=\"tbl\">");
    if (t->caption && *t->caption) {
        put(fp, "<h3>");
        rep_put_html(fp, t->caption);
        put(fp, "</h3>");
    }
    put(fp, "<div class=\"scroll\"><table>\n<thead><tr>");
    for (int i = 0; i < t->n_cols; i++) {
        put(fp, numeric_column(t, i) ? "<th class=\"n\">" : "<th>");
        rep_put_html(fp, t->headers[i]);
        put(fp, "</th>");
    }
    put(fp, "</tr></thead>\n<tbody>\n");
    for (const rep_row *row = t->rows; row; row = row->next) {
        put(fp, row->highlight ? "<tr class=\"hl\">" : "<tr>");
        for (int i = 0; i < t->n_cols; i++) {
            const nnq_report_cell *c = &row->cells[i];
            if (c->kind == NNQ_CELL_KIND_NUM) {
                put(fp, rep_missing(c->num) ? "<td class=\"n m\">" : "<td class=\"n\">");
                put_num(fp, c->num, c->fmt);
            } else {
                put(fp, "<td>");
                rep_put_html(fp, c->text);
            }
            put(fp, "</td>");
        }
        put(fp, "</tr>\n");
    }
    put(fp, "</tbody></table></div></figure>\n");
}

static const char *chart_text(const rep_item *it, bool caption) {
    switch (it->kind) {
    case REP_BARS: return caption ? it->u.bars.caption : it->u.bars.title;
    case REP_LINES: return caption ? it->u.lines.caption : it->u.lines.title;
    case REP_RANGES: return caption ? it->u.ranges.caption : it->u.ranges.title;
    case REP_HIST: return caption ? it->u.hist.caption : it->u.hist.title;
    default: return NULL;
    }
}

static void write_chart(FILE *fp, const rep_item *it) {
    const char *title = chart_text(it, false), *caption = chart_text(it, true);
    put(fp, "<figure class=\"chart\">\n");
    if (title && *title) {
        put(fp, "<h3>");
        rep_put_html(fp, title);
        put(fp, "</h3>\n");
    }
    if (caption && *caption) {
        put(fp, "<figcaption>");
        rep_put_html(fp, caption);
        put(fp, "</figcaption>\n");
    }
    rep_svg_write(fp, it);
    put(fp, "</figure>\n");
}

static void write_sections(FILE *fp, const nnq_report *r) {
    int n = 0;
    for (const nnq_report_section *s = r->sections; s; s = s->next) {
        fprintf(fp, "<section id=\"s%d\">\n<h2>", ++n);
        rep_put_html(fp, s->title);
        put(fp, "</h2>\n");
        for (const rep_item *it = s->items; it; it = it->next) {
            if (it->kind == REP_TEXT) {
                put(fp, "<p>");
                rep_put_html(fp, it->u.text);
                put(fp, "</p>\n");
            } else if (it->kind == REP_TABLE) {
                write_table(fp, &it->u.table);
            } else {
                write_chart(fp, it);
            }
        }
        put(fp, "</section>\n");
    }
}

nnq_status nnq_report_write_html(const nnq_report *r, const char *path) {
    nnq_atomic_file w;
    NNQ_TRY(nnq_atomic_open(&w, path));
    FILE *fp = w.fp;
    put(fp, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"generator\" content=\"nnq\">\n<title>");
    rep_put_html(fp, r->title);
    put(fp, "</title>\n<style>\n");
    put(fp, CSS);
    put(fp, "</style>\n</head>\n<body>\n<main>\n");
    write_header(fp, r);
    write_summary(fp, r);
    write_toc(fp, r);
    write_sections(fp, r);
    put(fp, "<footer>Generated by nnq.</footer>\n</main>\n</body>\n</html>\n");
    return nnq_atomic_commit(&w); /* write errors surface here (ferror) */
}
