/* A small streaming JSON writer for machine-readable command output:
 * one compact object per line, commas and escaping handled here so the
 * commands only say what to write. */
#ifndef NNQ_CLI_JSON_OUT_H
#define NNQ_CLI_JSON_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_JSON_MAX_DEPTH 16

typedef struct cli_json {
    FILE *fp;
    int depth;
    bool has_items[CLI_JSON_MAX_DEPTH]; /* a comma is due before the next item */
} cli_json;

void cli_json_init(cli_json *j, FILE *fp);
/* `key` names the member inside an object; NULL inside arrays and at the top. */
void cli_json_object_begin(cli_json *j, const char *key);
void cli_json_object_end(cli_json *j);
void cli_json_array_begin(cli_json *j, const char *key);
void cli_json_array_end(cli_json *j);
void cli_json_string(cli_json *j, const char *key, const char *v); /* NULL → null */
void cli_json_int(cli_json *j, const char *key, int64_t v);
void cli_json_double(cli_json *j, const char *key, double v);    /* non-finite → null */
void cli_json_bool(cli_json *j, const char *key, bool v);
/* End the top-level value with a newline and flush. */
void cli_json_finish(cli_json *j);

#endif
