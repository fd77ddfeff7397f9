/* Option parsing shared by every command: a table of options, each
 * writing into a caller's variable, plus positional arguments.
 * Accepts "--name value", "--name=value", "--" to end options,
 * "-h"/"--help" everywhere, and "-o" for "--output". */
#ifndef NNQ_CLI_ARGS_H
#define NNQ_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum cli_opt_kind {
    CLI_OPT_FLAG,   /* bool *: set to true */
    CLI_OPT_INT,    /* int64_t *: decimal, within [min, max] */
    CLI_OPT_STRING  /* const char **: points into argv */
} cli_opt_kind;

typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    cli_opt_kind kind;
    void *dest;
    int64_t min, max; /* CLI_OPT_INT only */
} cli_opt;

typedef enum cli_parse_result {
    CLI_PARSE_OK,
    CLI_PARSE_HELP,  /* --help seen: print the command's help, exit 0 */
    CLI_PARSE_ERROR  /* a usage error was already printed */
} cli_parse_result;

/* Parse argv[1..argc) of command `cmd`. Positionals go to pos[0..max_pos)
 * (more is a usage error); the command checks it got enough. */
/* A float option given as a string (NULL: not given, *out unchanged): a
 * finite number within [lo, hi], else a usage error printed for command
 * `cmd`; false then. */
bool cli_parse_float(const char *cmd, const char *name, const char *s, double lo, double hi,
                     float *out);

cli_parse_result cli_parse_args(const char *cmd, int argc, char **argv, const cli_opt *opts,
                                int n_opts, const char **pos, int max_pos, int *n_pos);

#endif
