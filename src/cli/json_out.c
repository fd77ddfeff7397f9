/* Streaming JSON writer (RFC 8259 strings, shortest round-trip-safe numbers). */
#include "cli/json_out.h"

#include <math.h>

void cli_json_init(cli_json *j, FILE *fp) {
    j->fp = fp;
    j->depth = 0;
    j->has_items[0] = false;
}

static void put_string(FILE *fp, const char *s) {
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
            else fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

/* Comma and key before a new item at the current level. */
static void item(cli_json *j, const char *key) {
    if (j->has_items[j->depth]) fputc(',', j->fp);
    j->has_items[j->depth] = true;
    if (key) {
        put_string(j->fp, key);
        fputc(':', j->fp);
    }
}

static void open_level(cli_json *j, const char *key, char c) {
    item(j, key);
    fputc(c, j->fp);
    if (j->depth + 1 < CLI_JSON_MAX_DEPTH) j->depth++;
    j->has_items[j->depth] = false;
}

static void close_level(cli_json *j, char c) {
    fputc(c, j->fp);
    if (j->depth > 0) j->depth--;
}

void cli_json_object_begin(cli_json *j, const char *key) { open_level(j, key, '{'); }
void cli_json_object_end(cli_json *j) { close_level(j, '}'); }
void cli_json_array_begin(cli_json *j, const char *key) { open_level(j, key, '['); }
void cli_json_array_end(cli_json *j) { close_level(j, ']'); }

void cli_json_string(cli_json *j, const char *key, const char *v) {
    item(j, key);
    if (v) put_string(j->fp, v);
    else fputs("null", j->fp);
}

void cli_json_int(cli_json *j, const char *key, int64_t v) {
    item(j, key);
    fprintf(j->fp, "%lld", (long long)v);
}

void cli_json_double(cli_json *j, const char *key, double v) {
    item(j, key);
    if (isfinite(v)) fprintf(j->fp, "%.10g", v);
    else fputs("null", j->fp);
}

void cli_json_bool(cli_json *j, const char *key, bool v) {
    item(j, key);
    fputs(v ? "true" : "false", j->fp);
}

void cli_json_finish(cli_json *j) {
    fputc('\n', j->fp);
    fflush(j->fp);
}
