/* Signal flag for long-running commands (interrupt.h). */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include "cli/interrupt.h"

#include <signal.h>
#include <string.h>

/* The handler only stores the signal number: nothing else is
 * async-signal-safe enough to do there. */
static volatile sig_atomic_t received;

static void on_signal(int sig) { received = sig; }

bool cli_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* SA_RESETHAND: the second signal gets the default action (terminate).
     * SA_RESTART: reads and writes in progress are not cut short by EINTR. */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    received = 0;
    return sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0;
}

int cli_interrupt_signal(void) { return (int)received; }

bool cli_interrupt_poll(void *unused) {
    (void)unused;
    return received != 0;
}

int cli_interrupt_exit_code(void) { return received ? 128 + (int)received : 1; }

const char *cli_interrupt_name(void) {
    switch ((int)received) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
    }
}
