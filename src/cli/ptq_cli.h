/* The options `nnq quantize` and `nnq analyze` share: the PTQ
 * configuration (bits, granularity, ranges, passes, recipe, per-layer
 * settings), calibration and evaluation data. One table, one parser, one
 * translation into nnq_ptq_options. */
#ifndef NNQ_CLI_PTQ_CLI_H
#define NNQ_CLI_PTQ_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/args.h"
#include "data/dataset.h"
#include "diag/diag.h"
#include "ptq/recipe.h"

#define PTQ_CLI_FMNIST "fashion-mnist"

typedef struct ptq_cli_opts {
    const char *model, *output, *data, *encodings, *recipe, *wrange, *arange, *bias_correct;
    const char *input_range, *float_layers, *layer_bits, *eval_data, *eval_labels, *cle_relu6;
    const char *sym_range;
    int64_t wbits, abits, calib_size, first_last_bits, adaround_iters, threads, eval_limit;
    double percentile_d;
    const char *percentile;
    bool per_tensor, per_channel, cle, bias_absorb, adaround, eval, json, quiet;
    bool asymmetric_weights, symmetric_acts;
    /* reports (issue 7) */
    const char *report;                /* quantize: --report PATH */
    bool no_sensitivity, no_bit_sweep; /* analyze */
} ptq_cli_opts;

/* The shared options' help lines. */
void ptq_cli_help_options(FILE *fp);

/* Parse argv of command `cmd` with the shared options plus `extra` (may be
 * NULL). The one positional argument is the model. Returns -1 after
 * --help (help(stdout) printed), CLI_EXIT_OK, or CLI_EXIT_USAGE. */
int ptq_cli_parse(const char *cmd, int argc, char **argv, ptq_cli_opts *o, const cli_opt *extra,
                  int n_extra, void (*help)(FILE *));

/* The pipeline options the parsed ones ask for (per-layer settings point
 * into static storage: one call per process). Usage errors print and
 * return CLI_EXIT_USAGE. */
int ptq_cli_build(const char *cmd, const ptq_cli_opts *o, nnq_ptq_options *p);

/* Calibration images, when the configuration needs data (*have false
 * otherwise). */
nnq_status ptq_cli_load_calibration(const ptq_cli_opts *o, const nnq_ptq_options *p,
                                    nnq_dataset *d, bool *have);
/* The evaluation images: --eval-data/--eval-labels, or the test split,
 * limited by --eval-limit. */
nnq_status ptq_cli_load_eval(const ptq_cli_opts *o, nnq_dataset *d);

/* Diagnostics options for a run with these options: the model's name and
 * bytes, the recipe's name, threads. */
void ptq_cli_diag_options(const ptq_cli_opts *o, const nnq_ptq_options *p, nnq_diag_options *d);

/* Render a diagnostics result: HTML to html_path, the same data as JSON to
 * json_path (NULL: none) and/or on stdout. */
nnq_status ptq_cli_write_report(const nnq_diag *d, const nnq_diag_options *o, const char *html_path,
                                const char *json_path, bool json_stdout);

#endif
