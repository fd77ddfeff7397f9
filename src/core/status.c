#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NNQ_MSG_CAP 1024

static _Thread_local char last_msg[NNQ_MSG_CAP];

/* Messages quote names and paths from files, which may hold any byte: a
 * control character (newline, escape) becomes '?', so a message is always
 * one line and safe to print on a terminal. */
static void make_printable(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

nnq_status nnq_fail(nnq_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    make_printable(last_msg);
    return s;
}

nnq_status nnq_fail_context(nnq_status s, const char *fmt, ...) {
    char prefix[NNQ_MSG_CAP];
    char old[NNQ_MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_msg, sizeof old);
    /* Truncation is acceptable: the message stays a valid C string. */
    size_t np = strnlen(prefix, sizeof last_msg - 1);
    memcpy(last_msg, prefix, np);
    size_t room = sizeof last_msg - 1 - np;
    size_t no = strnlen(old, room);
    memcpy(last_msg + np, old, no);
    last_msg[np + no] = '\0';
    make_printable(last_msg);
    return s;
}

const char *nnq_last_error(void) { return last_msg[0] ? last_msg : "no error"; }

void nnq_clear_error(void) { last_msg[0] = '\0'; }

const char *nnq_status_name(nnq_status s) {
    switch (s) {
    case NNQ_OK: return "ok";
    case NNQ_ERR_IO: return "i/o error";
    case NNQ_ERR_PARSE: return "parse error";
    case NNQ_ERR_UNSUPPORTED: return "unsupported";
    case NNQ_ERR_SHAPE: return "shape error";
    case NNQ_ERR_INVALID: return "invalid";
    case NNQ_ERR_NOMEM: return "out of memory";
    case NNQ_ERR_LIMIT: return "limit exceeded";
    }
    return "unknown status";
}
