/* nnq analyze: which layer loses accuracy, and what to try (issue 7).
 * Quantizes the model with the given options (as `nnq quantize` would),
 * measures per-layer sensitivity, SQNR, channel ranges before and after
 * CLE, activation histograms and accuracy against bit-width, and writes
 * one self-contained HTML page (diag/diag.h, report/report.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/model_load.h"
#include "cli/progress.h"
#include "cli/ptq_cli.h"

void cmd_analyze_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq analyze MODEL.onnx -o REPORT.html [--wbits 8] [--abits 8]\n"
            "                   [--per-channel | --per-tensor] [--recipe R] [--data D]\n"
            "                   [--eval-limit 1000] [--no-sensitivity] [--no-bit-sweep] [--json]\n"
            "\n"
            "Quantize MODEL as `nnq quantize` would with the same options, then analyse the\n"
            "result: per-layer sensitivity (each layer's weights, then its output, quantized\n"
            "alone: the top-1 lost, or the logits SQNR without labels), per-layer SQNR (in the\n"
            "simulation and in the integer engine running the exported model), the\n"
            "per-channel weight ranges before and after cross-layer equalization, activation\n"
            "histograms with each range method's choice, accuracy at 8/6/4/3/2 bits, and the\n"
            "time and memory of each step. One self-contained HTML page (inline SVG, no\n"
            "scripts), with a summary: float vs quantized accuracy, model bytes, the three\n"
            "most sensitive layers and what to try for each.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the HTML report to write (atomically)\n"
            "  --json                 also print the report's data as JSON on stdout\n"
            "  --no-sensitivity       skip per-layer sensitivity (2 evaluations per layer)\n"
            "  --no-bit-sweep         skip the bit-width sweep (10 quantizations)\n"
            "  (evaluation uses the first 1000 test images unless --eval-limit says otherwise)\n");
    ptq_cli_help_options(fp);
}

int cmd_analyze_run(int argc, char **argv) {
    ptq_cli_opts o = {0};
    o.eval_limit = 1000;
    const cli_opt extra[] = {{"no-sensitivity", CLI_OPT_FLAG, &o.no_sensitivity, 0, 0},
                             {"no-bit-sweep", CLI_OPT_FLAG, &o.no_bit_sweep, 0, 0}};
    int rc = ptq_cli_parse("analyze", argc, argv, &o, extra, 2, cmd_analyze_help);
    if (rc < 0) return CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK) return rc;
    nnq_ptq_options p;
    if ((rc = ptq_cli_build("analyze", &o, &p)) != CLI_EXIT_OK) return rc;
    nnq_diag_options dopt;
    ptq_cli_diag_options(&o, &p, &dopt);
    dopt.sensitivity = !o.no_sensitivity;
    dopt.bit_sweep = !o.no_bit_sweep;

    nnq_graph *model = NULL;
    nnq_dataset calib = {0}, eval = {0};
    bool have_calib = false;
    nnq_diag d = {0};
    cli_sink sink;
    cli_sink_open(&sink, !o.quiet);
    const nnq_ptq_log log = {.fp = sink.log, .progress = {cli_sink_progress, &sink}};
    const double t0 = cli_now();
    nnq_status s = cli_load_model(o.model, &model);
    if (s == NNQ_OK) s = ptq_cli_load_calibration(&o, &p, &calib, &have_calib);
    if (s == NNQ_OK) s = ptq_cli_load_eval(&o, &eval);
    if (s == NNQ_OK) s = nnq_diag_run(model, have_calib ? &calib : NULL, &eval, &dopt, &log, &d);
    if (s == NNQ_OK) s = ptq_cli_write_report(&d, &dopt, o.output, NULL, o.json);
    if (s != NNQ_OK) {
        rc = cli_fail(s);
    } else {
        if (!o.quiet) {
            fprintf(stderr, "analyze %s: %d layers, ", o.model, d.n_layers);
            if (d.labelled)
                fprintf(stderr, "top-1 float %.2f%%, quantized %.2f%%", d.float_top1, d.quant_top1);
            else
                fprintf(stderr, "logits SQNR %.1f dB", d.logits_sqnr_db);
            fprintf(stderr, " → %s in %.1f s\n", o.output, cli_now() - t0);
        }
        rc = CLI_EXIT_OK;
    }
    nnq_diag_free(&d);
    nnq_dataset_free(&calib);
    nnq_dataset_free(&eval);
    nnq_graph_free(model);
    cli_sink_close(&sink);
    return rc;
}
