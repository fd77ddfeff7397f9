/* Where a command's --report goes: the HTML page at PATH and its JSON twin
 * beside it (PATH without ".html", plus ".json"), written from a
 * diagnostics result (`nnq quantize --report`, `nnq qat --report`). */
#ifndef NNQ_CLI_REPORT_OUT_H
#define NNQ_CLI_REPORT_OUT_H

#include <stddef.h>

#include "core/status.h"
#include "diag/diag.h"

/* The JSON path for html_path into buf ("r.html" -> "r.json", "r" -> "r.json"). */
void cli_report_json_path(const char *html_path, char *buf, size_t cap);

/* Render d: HTML to html_path, JSON beside it. */
nnq_status cli_report_write(const nnq_diag *d, const nnq_diag_options *o, const char *html_path);

#endif
