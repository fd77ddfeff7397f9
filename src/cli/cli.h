/* Shared declarations of the nnq command-line tool: exit codes, the
 * command table entry, one-line error reporting. Only the CLI prints and
 * exits; it turns library statuses into "nnq: error: <reason>". */
#ifndef NNQ_CLI_CLI_H
#define NNQ_CLI_CLI_H

#include <stdio.h>

#include "core/status.h"

#ifndef NNQ_VERSION
#define NNQ_VERSION "0.1.0"
#endif

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,  /* the library reported an error */
    CLI_EXIT_USAGE = 2  /* unknown command or option, bad argument */
};

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*help)(FILE *fp);
} cli_command;

/* Print exactly one line "nnq: error: <message>" on stderr (newlines in
 * the message are folded into spaces). Return CLI_EXIT_FAIL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same for a usage mistake, with a hint where to look; CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report the library's last error for status s; CLI_EXIT_FAIL. */
int cli_fail(nnq_status s);

/* Commands (cmd_<name>.c). */
int cmd_info_run(int argc, char **argv);
void cmd_info_help(FILE *fp);
int cmd_eval_run(int argc, char **argv);
void cmd_eval_help(FILE *fp);
int cmd_train_run(int argc, char **argv);
void cmd_train_help(FILE *fp);
int cmd_run_run(int argc, char **argv);
void cmd_run_help(FILE *fp);
int cmd_convert_run(int argc, char **argv);
void cmd_convert_help(FILE *fp);
int cmd_quantize_run(int argc, char **argv);
void cmd_quantize_help(FILE *fp);
int cmd_lower_run(int argc, char **argv);
void cmd_lower_help(FILE *fp);
int cmd_bench_run(int argc, char **argv);
void cmd_bench_help(FILE *fp);
int cmd_qat_run(int argc, char **argv);
void cmd_qat_help(FILE *fp);
int cmd_analyze_run(int argc, char **argv);
void cmd_analyze_help(FILE *fp);

#endif
