/* nnq quantize: post-training quantization of a float ONNX model to an
 * ONNX QDQ model (the ptq/recipe.h pipeline behind command-line options). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/eval_top1.h"
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "cli/progress.h"
#include "cli/ptq_cli.h"
#include "cli/report_out.h"
#include "diag/diag.h"
#include "report/report.h"
#include "data/dataset.h"
#include "onnx/onnx_io.h"
#include "ptq/recipe.h"
#include "quant/qdq_export.h"


void cmd_quantize_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq quantize MODEL.onnx -o OUT.onnx [--wbits 8] [--abits 8]\n"
            "                    [--per-channel | --per-tensor] [--wrange minmax|mse]\n"
            "                    [--arange minmax|mse|ce|bn|percentile] [--cle] [--bias-absorb]\n"
            "                    [--cle-relu6 cap|relu|skip]\n"
            "                    [--bias-correct empirical|analytical] [--adaround]\n"
            "                    [--adaround-iters N] [--recipe standard|data-free|none]\n"
            "                    [--calib-size 1024] [--data fashion-mnist | --data X.npy]\n"
            "                    [--wmse output|plain] [--first-last-bits B]\n"
            "                    [--encodings OUT.json] [--eval] [--json]\n"
            "\n"
            "Post-training quantization: BatchNorm folding, then the passes asked for, then a\n"
            "QDQ ONNX model (opset 13: QuantizeLinear/DequantizeLinear, int8 weights, int32\n"
            "biases) that ONNX Runtime and `nnq eval` run. Calibration reads images only,\n"
            "never labels.\n"
            "\n"
            "recipes (explicit options below override or add to them):\n"
            "  none        (default) only what the options ask for\n"
            "  standard    CLE + bias absorption, MSE weight ranges, AdaRound, MSE activation\n"
            "              ranges with cross-entropy on the logits\n"
            "  data-free   CLE + bias absorption, MSE weight ranges, analytical bias\n"
            "              correction, activation ranges from BatchNorm statistics; no data\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the QDQ model to write (atomically)\n"
            "  --report PATH          also write an HTML report (per-layer SQNR in the\n"
            "                         simulation and the integer engine, sensitivity, channel\n"
            "                         ranges, histograms; JSON beside it as PATH.json); see\n"
            "                         `nnq analyze`\n"
            "  --wmse C               what --wrange mse minimises per weight channel:\n"
            "                         output (default): the expected squared error of the\n"
            "                         layer's output, from the mean and channel covariance\n"
            "                         of its input on the calibration data (so the shift of\n"
            "                         the output mean that clipping causes counts); plain:\n"
            "                         the weights' own squared error. Without data\n"
            "                         (--recipe data-free) it is plain. --json says which\n"
            "                         (docs/ptq.md)\n");
    ptq_cli_help_options(fp);
}

static nnq_status evaluate(const ptq_cli_opts *o, const nnq_graph *model, const nnq_qsim *sim,
                           double *float_top1, double *quant_top1) {
    nnq_dataset d = {0};
    nnq_status s = ptq_cli_load_eval(o, &d);
    if (s == NNQ_OK && !d.labels) s = nnq_fail(NNQ_ERR_INVALID, "no labelled images to evaluate on");
    if (s == NNQ_OK)
        s = cli_eval_graph(model, &d, 64, (int)o->threads, "eval float", !o->quiet, float_top1);
    if (s == NNQ_OK)
        s = cli_eval_graph(sim->g, &d, 64, (int)o->threads, "eval quantized", !o->quiet, quant_top1);
    nnq_dataset_free(&d);
    return s;
}

static void report_json(const ptq_cli_opts *o, const nnq_ptq_options *p, const nnq_qsim *sim,
                        const nnq_ptq_report *r, double seconds, double ftop1, double qtop1) {
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "model", o->model);
    cli_json_string(&j, "output", o->output);
    cli_json_int(&j, "wbits", p->qsim.weights.bits);
    cli_json_int(&j, "abits", p->qsim.acts.bits);
    cli_json_bool(&j, "per_channel", p->qsim.weights.per_channel);
    cli_json_string(&j, "sym_range", nnq_sym_range_name(p->qsim.weights.sym_range));
    cli_json_string(&j, "recipe", o->recipe);
    cli_json_string(&j, "wrange", nnq_range_method_name(p->wrange));
    if (r->wmse_used) { /* the criterion actually used, and its layer counts */
        cli_json_string(&j, "wmse", nnq_wmse_mode_name(r->wmse));
        cli_json_int(&j, "wmse_output_layers", r->wmse_output_layers);
        cli_json_int(&j, "wmse_plain_layers", r->wmse_plain_layers);
    } else {
        cli_json_string(&j, "wmse", NULL);
    }
    cli_json_string(&j, "arange", p->arange_bn ? "bn" : nnq_range_method_name(p->calib.method));
    cli_json_string(&j, "logits_range", p->arange_bn ? "bn" : nnq_range_method_name(p->calib.logits_method));
    cli_json_bool(&j, "cle", p->cle);
    cli_json_bool(&j, "bias_absorb", p->bias_absorb);
    cli_json_bool(&j, "adaround", p->adaround);
    cli_json_string(&j, "bias_correct", p->bias_correct == NNQ_BC_EMPIRICAL    ? "empirical"
                                        : p->bias_correct == NNQ_BC_ANALYTICAL ? "analytical"
                                                                               : "none");
    cli_json_int(&j, "layers", sim->n_layers);
    cli_json_int(&j, "quantizers", sim->n_quant);
    cli_json_int(&j, "bn_folded", r->bn_folded);
    cli_json_bool(&j, "bn_stats", r->has_bn_stats);
    cli_json_int(&j, "cle_pairs", r->cle_pairs);
    cli_json_int(&j, "relu6_converted", r->relu6_converted);
    cli_json_string(&j, "cle_relu6", p->cle_opt.relu6 == NNQ_RELU6_CAP    ? "cap"
                                     : p->cle_opt.relu6 == NNQ_RELU6_RELU ? "relu"
                                                                          : "skip");
    cli_json_int(&j, "bias_absorbed", r->bias_absorbed);
    cli_json_int(&j, "bias_corrected", r->bias_corrected);
    cli_json_array_begin(&j, "steps");
    for (int i = 0; i < r->n_steps; i++) {
        cli_json_object_begin(&j, NULL);
        cli_json_string(&j, "name", r->steps[i].name);
        cli_json_double(&j, "seconds", r->steps[i].seconds);
        cli_json_object_end(&j);
    }
    cli_json_array_end(&j);
    cli_json_double(&j, "seconds", seconds);
    if (o->eval) {
        cli_json_double(&j, "float_top1", 100.0 * ftop1);
        cli_json_double(&j, "quant_top1", 100.0 * qtop1);
    }
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

/* --report: the diagnostics of this run (no bit-width sweep: that would
 * quantize ten more times; `nnq analyze` has it), HTML + JSON beside it. */
static nnq_status write_report(const ptq_cli_opts *o, const nnq_ptq_options *p, const nnq_graph *model,
                               const nnq_graph *fg, nnq_qsim *sim, const nnq_ptq_report *r,
                               const nnq_dataset *calib, const nnq_ptq_log *log) {
    ptq_cli_opts eo = *o;
    if (eo.eval_limit == 0 && !eo.eval_data) eo.eval_limit = 1000;
    nnq_diag_options dopt;
    ptq_cli_diag_options(o, p, &dopt);
    dopt.bit_sweep = false;
    nnq_dataset eval = {0};
    nnq_diag d = {0};
    char json[4096];
    cli_report_json_path(o->report, json, sizeof json);
    nnq_status s = ptq_cli_load_eval(&eo, &eval);
    if (s == NNQ_OK) s = nnq_diag_collect(model, fg, sim, r, calib, &eval, &dopt, log, &d);
    if (s == NNQ_OK) s = cli_report_write(&d, &dopt, o->report);
    if (s == NNQ_OK && log->fp) fprintf(log->fp, "report: %s (data: %s)\n", o->report, json);
    nnq_diag_free(&d);
    nnq_dataset_free(&eval);
    return s;
}

int cmd_quantize_run(int argc, char **argv) {
    ptq_cli_opts o = {0};
    const char *wmse = NULL;
    const cli_opt extra[] = {{"report", CLI_OPT_STRING, &o.report, 0, 0},
                             {"wmse", CLI_OPT_STRING, &wmse, 0, 0}};
    int rc = ptq_cli_parse("quantize", argc, argv, &o, extra, 2, cmd_quantize_help);
    if (rc < 0) return CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK) return rc;
    nnq_ptq_options p;
    if ((rc = ptq_cli_build("quantize", &o, &p)) != CLI_EXIT_OK) return rc;
    if (wmse && !nnq_wmse_mode_parse(wmse, &p.wmse))
        return cli_usage_error("quantize", "--wmse wants output or plain, got '%s'", wmse);

    nnq_graph *model = NULL, *fg = NULL, *qdq = NULL;
    nnq_qsim *sim = NULL;
    nnq_dataset calib = {0};
    bool have_calib = false;
    nnq_ptq_report r;
    double ftop1 = 0, qtop1 = 0;
    cli_sink sink;
    cli_sink_open(&sink, !o.quiet);
    const nnq_ptq_log log = {.fp = sink.log, .progress = {cli_sink_progress, &sink}};
    const double t0 = cli_now();
    nnq_status s = cli_load_model(o.model, &model);
    if (s == NNQ_OK) s = ptq_cli_load_calibration(&o, &p, &calib, &have_calib);
    if (s == NNQ_OK)
        s = nnq_ptq_run(model, have_calib ? &calib : NULL, &p, &log, &fg, &sim, &r);
    if (s == NNQ_OK) s = nnq_qsim_to_qdq(sim, &qdq);
    if (s == NNQ_OK) s = nnq_onnx_save(qdq, o.output);
    if (s == NNQ_OK && o.encodings) s = nnq_qsim_write_encodings(sim, o.encodings);
    const double seconds = cli_now() - t0;
    if (s == NNQ_OK && o.eval) s = evaluate(&o, model, sim, &ftop1, &qtop1);
    if (s == NNQ_OK && o.report) s = write_report(&o, &p, model, fg, sim, &r, have_calib ? &calib : NULL, &log);
    if (s != NNQ_OK) {
        rc = cli_fail(s);
        goto done;
    }
    if (!o.quiet) {
        fprintf(stderr, "quantize %s: W%dA%d %s, %d layers → %s in %.1f s\n", o.model,
                p.qsim.weights.bits, p.qsim.acts.bits,
                p.qsim.weights.per_channel ? "per-channel" : "per-tensor", sim->n_layers, o.output,
                seconds);
        if (o.eval)
            fprintf(stderr, "top-1: float %.2f%%, quantized %.2f%% (%+.2f points)\n", 100 * ftop1,
                    100 * qtop1, 100 * (qtop1 - ftop1));
    }
    if (o.json) report_json(&o, &p, sim, &r, seconds, ftop1, qtop1);
    rc = CLI_EXIT_OK;
done:
    nnq_dataset_free(&calib);
    nnq_graph_free(qdq);
    nnq_qsim_free(sim);
    nnq_graph_free(fg);
    nnq_graph_free(model);
    cli_sink_close(&sink);
    return rc;
}
