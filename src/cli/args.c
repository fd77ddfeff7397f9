/* Table-driven option parsing for the CLI commands. */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_opt *find_opt(const cli_opt *opts, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

static bool set_value(const char *cmd, const cli_opt *o, const char *val) {
    if (o->kind == CLI_OPT_STRING) {
        if (!val[0]) {
            cli_usage_error(cmd, "option --%s needs a non-empty value", o->name);
            return false;
        }
        *(const char **)o->dest = val;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end) {
        cli_usage_error(cmd, "option --%s needs an integer, got '%s'", o->name, val);
        return false;
    }
    if (v < o->min || v > o->max) {
        cli_usage_error(cmd, "option --%s must be in [%lld, %lld], got %lld", o->name,
                        (long long)o->min, (long long)o->max, v);
        return false;
    }
    *(int64_t *)o->dest = v;
    return true;
}

cli_parse_result cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts,
                                int n_opts, const char **pos, int max_pos, int *n_pos) {
    bool only_pos = false;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) return CLI_PARSE_HELP;
        if (only_pos || a[0] != '-' || a[1] == '\0') { /* "-" alone is a positional */
            if (*n_pos >= max_pos) {
                cli_usage_error(cmd, "unexpected argument '%s'", a);
                return CLI_PARSE_ERROR;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        /* The one short option: "-o PATH" is "--output PATH". */
        if (strcmp(a, "-o") == 0) a = "--output";
        if (a[1] != '-') {
            cli_usage_error(cmd, "unknown option '%s'", a);
            return CLI_PARSE_ERROR;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = find_opt(opts, n_opts, name, len);
        if (!o) {
            cli_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
            return CLI_PARSE_ERROR;
        }
        if (o->kind == CLI_OPT_FLAG) {
            if (eq) {
                cli_usage_error(cmd, "option --%s takes no value", o->name);
                return CLI_PARSE_ERROR;
            }
            *(bool *)o->dest = true;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                cli_usage_error(cmd, "option --%s needs a value", o->name);
                return CLI_PARSE_ERROR;
            }
            val = argv[++i];
        }
        if (!set_value(cmd, o, val)) return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

bool cli_parse_float(const char *cmd, const char *name, const char *s, double lo, double hi,
                     float *out) {
    if (!s) return true;
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_usage_error(cmd, "option --%s needs a number, got '%s'", name, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(cmd, "option --%s must be in [%g, %g], got %g", name, lo, hi, v);
        return false;
    }
    *out = (float)v;
    return true;
}
