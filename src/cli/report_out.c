/* --report outputs (report_out.h). */
#include "cli/report_out.h"

#include <stdio.h>
#include <string.h>

#include "cli/ptq_cli.h"

void cli_report_json_path(const char *html_path, char *buf, size_t cap) {
    const size_t len = strlen(html_path);
    const size_t stem = len > 5 && strcmp(html_path + len - 5, ".html") == 0 ? len - 5 : len;
    snprintf(buf, cap, "%.*s.json", (int)stem, html_path);
}

nnq_status cli_report_write(const nnq_diag *d, const nnq_diag_options *o, const char *html_path) {
    char json[4096];
    cli_report_json_path(html_path, json, sizeof json);
    return ptq_cli_write_report(d, o, html_path, json, false);
}
