/* Warning lines of the PTQ passes (ptq.h). */
#include <stdarg.h>
#include <stdio.h>

#include "ptq/ptq.h"

void nnq_ptq_warn(const nnq_ptq_log *log, const char *pass, const char *fmt, ...) {
    if (!log || !log->fp) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(log->fp, "%s: warning: ", pass);
    vfprintf(log->fp, fmt, ap);
    fputc('\n', log->fp);
    va_end(ap);
}
