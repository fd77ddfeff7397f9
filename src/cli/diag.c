/* One-line error reporting for the CLI. Scripts and tests rely on a failed
 * command printing exactly one line, so library messages are flattened. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_line(const char *msg) {
    fputs("nnq: error: ", stderr);
    for (const char *p = msg; *p; p++) fputc(*p == '\n' || *p == '\r' ? ' ' : *p, stderr);
    fputc('\n', stderr);
    fflush(stderr);
}

int cli_error(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print_line(buf);
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    char buf[1536], line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (cmd)
        snprintf(line, sizeof line, "%s: %s (see 'nnq %s --help')", cmd, buf, cmd);
    else
        snprintf(line, sizeof line, "%s (see 'nnq --help')", buf);
    print_line(line);
    return CLI_EXIT_USAGE;
}

int cli_fail(nnq_status s) {
    const char *msg = nnq_last_error();
    /* A status without a recorded message still says what kind it was. */
    if (!msg || !msg[0] || strcmp(msg, "no error") == 0) msg = nnq_status_name(s);
    print_line(msg);
    return CLI_EXIT_FAIL;
}
