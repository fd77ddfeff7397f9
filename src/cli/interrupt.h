/* SIGINT / SIGTERM for long-running commands (train, later qat): the first
 * signal only records itself, so the command can finish the step in
 * progress, save a checkpoint and exit cleanly; the handler is reset by
 * that first signal, so a second one terminates at once (the default
 * action; atomic writes mean no output file is ever left half written).
 * Library code never sees signals: it polls a stop callback, which
 * cli_interrupt_poll provides. */
#ifndef NNQ_CLI_INTERRUPT_H
#define NNQ_CLI_INTERRUPT_H

#include <stdbool.h>

/* Install the handlers for SIGINT and SIGTERM (and clear any earlier
 * request). false if the system refused. */
bool cli_interrupt_install(void);
/* The signal received since install (SIGINT, SIGTERM), or 0. */
int cli_interrupt_signal(void);
/* Adapter for library stop callbacks: true once a signal arrived. */
bool cli_interrupt_poll(void *unused);
/* Exit status for the received signal: 128 + its number (130 for SIGINT,
 * 143 for SIGTERM), as a shell reports a process killed by it. */
int cli_interrupt_exit_code(void);
/* "SIGINT", "SIGTERM" or "signal" for messages. */
const char *cli_interrupt_name(void);

#endif
