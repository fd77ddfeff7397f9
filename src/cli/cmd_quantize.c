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
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "cli/progress.h"
#include "data/dataset.h"
#include "onnx/onnx_io.h"
#include "ptq/recipe.h"
#include "quant/qdq_export.h"
#include "train/trainer.h"

#define DATA_FMNIST "fashion-mnist"
#define MAX_OVERRIDES 256

typedef struct quantize_opts {
    const char *model, *output, *data, *encodings, *recipe, *wrange, *arange, *bias_correct;
    const char *input_range, *float_layers, *layer_bits, *eval_data, *eval_labels, *cle_relu6;
    int64_t wbits, abits, calib_size, first_last_bits, adaround_iters, threads, eval_limit;
    double percentile_d;
    const char *percentile;
    bool per_tensor, per_channel, cle, bias_absorb, adaround, eval, json, quiet;
    bool asymmetric_weights, symmetric_acts;
} quantize_opts;

void cmd_quantize_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq quantize MODEL.onnx -o OUT.onnx [--wbits 8] [--abits 8]\n"
            "                    [--per-channel | --per-tensor] [--wrange minmax|mse]\n"
            "                    [--arange minmax|mse|ce|bn|percentile] [--cle] [--bias-absorb]\n"
            "                    [--cle-relu6 cap|relu|skip]\n"
            "                    [--bias-correct empirical|analytical] [--adaround]\n"
            "                    [--adaround-iters N] [--recipe standard|data-free|none]\n"
            "                    [--calib-size 1024] [--data fashion-mnist | --data X.npy]\n"
            "                    [--first-last-bits B] [--encodings OUT.json] [--eval] [--json]\n"
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
            "  --wbits B, --abits B   weight / activation bit-width, 2..16 (default 8; QDQ\n"
            "                         export stores at most 8, use --encodings above that)\n"
            "  --per-channel          one weight scale per output channel (default)\n"
            "  --per-tensor           one weight scale per tensor\n"
            "  --asymmetric-weights   weights with a zero point (default symmetric)\n"
            "  --symmetric-acts       activations without a zero point (default asymmetric)\n"
            "  --wrange M             weight ranges: minmax or mse (default mse)\n"
            "  --arange M             activation ranges: minmax, mse, ce (mse, with\n"
            "                         cross-entropy on the logits; the default), bn (from\n"
            "                         BatchNorm statistics, no data) or percentile\n"
            "  --percentile P         tail mass cut on each side for percentile (default 0.01)\n"
            "  --cle                  cross-layer equalization\n"
            "  --cle-relu6 M          ReLU6 between equalized layers: cap (default: Relu +\n"
            "                         a per-channel cap that scales with CLE, exact), relu\n"
            "                         (replaced by Relu, as in the DFQ paper), skip\n"
            "  --bias-absorb          high-bias absorption (needs BatchNorm statistics)\n"
            "  --bias-correct K       empirical (calibration data) or analytical (BN stats)\n"
            "  --adaround             learn weight rounding layer by layer (AdaRound)\n"
            "  --adaround-iters N     iterations per layer (default 10000)\n"
            "  --calib-size N         calibration images (default 1024)\n"
            "  --data D               '%s' (default: the first images of its training\n"
            "                         split) or a float32 .npy of NCHW images\n"
            "  --input-range LO,HI    graph input range for --arange bn (default: that of\n"
            "                         nnq's Fashion-MNIST preprocessing)\n"
            "  --first-last-bits B    first and last layer (weights, inputs, logits) at B bits\n"
            "  --float-layers A,B     leave these layers (node names) in float\n"
            "  --layer-bits N=W[:A],… per-layer weight (and output) bit-widths\n"
            "  --encodings PATH       also write the quantizer parameters as AIMET-style JSON\n"
            "  --eval                 report float and quantized top-1 on the test split\n"
            "  --eval-data X.npy, --eval-labels Y.npy   evaluate on these instead\n"
            "  --eval-limit N         evaluate on the first N test images (0: all)\n"
            "  --threads T            threads (default 0: all cores)\n"
            "  --json                 one JSON object on stdout (options, steps with seconds,\n"
            "                         counts, float_top1 and quant_top1 with --eval)\n"
            "  --quiet                nothing on stderr but errors\n"
            "  -h, --help             show this help\n",
            DATA_FMNIST);
}

static int parse(int argc, char **argv, quantize_opts *o) {
    o->data = DATA_FMNIST;
    o->wbits = o->abits = 8;
    o->calib_size = 1024;
    o->adaround_iters = -1;
    o->recipe = "none";
    const cli_opt opts[] = {
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"wbits", CLI_OPT_INT, &o->wbits, 2, 16},
        {"abits", CLI_OPT_INT, &o->abits, 2, 16},
        {"per-tensor", CLI_OPT_FLAG, &o->per_tensor, 0, 0},
        {"per-channel", CLI_OPT_FLAG, &o->per_channel, 0, 0},
        {"asymmetric-weights", CLI_OPT_FLAG, &o->asymmetric_weights, 0, 0},
        {"symmetric-acts", CLI_OPT_FLAG, &o->symmetric_acts, 0, 0},
        {"wrange", CLI_OPT_STRING, &o->wrange, 0, 0},
        {"arange", CLI_OPT_STRING, &o->arange, 0, 0},
        {"percentile", CLI_OPT_STRING, &o->percentile, 0, 0},
        {"cle", CLI_OPT_FLAG, &o->cle, 0, 0},
        {"cle-relu6", CLI_OPT_STRING, &o->cle_relu6, 0, 0},
        {"bias-absorb", CLI_OPT_FLAG, &o->bias_absorb, 0, 0},
        {"bias-correct", CLI_OPT_STRING, &o->bias_correct, 0, 0},
        {"adaround", CLI_OPT_FLAG, &o->adaround, 0, 0},
        {"adaround-iters", CLI_OPT_INT, &o->adaround_iters, 1, 10000000},
        {"recipe", CLI_OPT_STRING, &o->recipe, 0, 0},
        {"calib-size", CLI_OPT_INT, &o->calib_size, 1, 1 << 24},
        {"data", CLI_OPT_STRING, &o->data, 0, 0},
        {"input-range", CLI_OPT_STRING, &o->input_range, 0, 0},
        {"first-last-bits", CLI_OPT_INT, &o->first_last_bits, 2, 16},
        {"float-layers", CLI_OPT_STRING, &o->float_layers, 0, 0},
        {"layer-bits", CLI_OPT_STRING, &o->layer_bits, 0, 0},
        {"encodings", CLI_OPT_STRING, &o->encodings, 0, 0},
        {"eval", CLI_OPT_FLAG, &o->eval, 0, 0},
        {"eval-data", CLI_OPT_STRING, &o->eval_data, 0, 0},
        {"eval-labels", CLI_OPT_STRING, &o->eval_labels, 0, 0},
        {"eval-limit", CLI_OPT_INT, &o->eval_limit, 0, INT64_MAX},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("quantize", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos,
                           1, &n_pos)) {
    case CLI_PARSE_HELP: cmd_quantize_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("quantize", "expected one MODEL.onnx argument");
    o->model = pos[0];
    if (!o->output) return cli_usage_error("quantize", "-o OUT.onnx is required");
    if (o->per_tensor && o->per_channel)
        return cli_usage_error("quantize", "--per-tensor and --per-channel exclude each other");
    if ((o->eval_data != NULL) != (o->eval_labels != NULL))
        return cli_usage_error("quantize", "--eval-data and --eval-labels go together");
    o->percentile_d = 0.01;
    if (o->percentile) {
        char *end;
        o->percentile_d = strtod(o->percentile, &end);
        if (*end || !(o->percentile_d > 0 && o->percentile_d < 50))
            return cli_usage_error("quantize", "--percentile wants a number in (0, 50), got '%s'",
                                   o->percentile);
    }
    return CLI_EXIT_OK;
}

/* Turn the parsed options into pipeline options; usage errors return
 * CLI_EXIT_USAGE after printing. */
static int build_options(const quantize_opts *o, nnq_ptq_options *p, nnq_layer_override *ov,
                         char *names, size_t names_cap) {
    nnq_recipe r;
    if (!nnq_recipe_parse(o->recipe, &r))
        return cli_usage_error("quantize", "unknown recipe '%s' (standard, data-free, none)",
                               o->recipe);
    nnq_ptq_options_default(p);
    p->wrange = NNQ_RANGE_MSE;
    p->calib.method = NNQ_RANGE_MSE;
    p->calib.logits_method = NNQ_RANGE_CE;
    nnq_ptq_apply_recipe(p, r);
    p->qsim.weights.bits = (int)o->wbits;
    p->qsim.acts.bits = (int)o->abits;
    p->qsim.weights.per_channel = !o->per_tensor;
    p->qsim.weights.symmetric = !o->asymmetric_weights;
    p->qsim.acts.symmetric = o->symmetric_acts;
    if (o->symmetric_acts) p->qsim.acts.is_signed = true;
    p->qsim.first_last_bits = (int)o->first_last_bits;
    p->calib.n = o->calib_size;
    p->calib.percentile = o->percentile_d;
    p->ada.n = o->calib_size;
    if (o->adaround_iters > 0) p->ada.iters = (int)o->adaround_iters;
    p->threads = (int)o->threads;
    p->in_lo = (0.0f - NNQ_FMNIST_MEAN) / NNQ_FMNIST_STD;
    p->in_hi = (1.0f - NNQ_FMNIST_MEAN) / NNQ_FMNIST_STD;
    if (o->wrange) {
        if (!nnq_range_method_parse(o->wrange, &p->wrange) ||
            (p->wrange != NNQ_RANGE_MINMAX && p->wrange != NNQ_RANGE_MSE))
            return cli_usage_error("quantize", "--wrange wants minmax or mse, got '%s'", o->wrange);
    }
    if (o->arange) {
        nnq_range_method m;
        if (!nnq_range_method_parse(o->arange, &m))
            return cli_usage_error("quantize",
                                   "--arange wants minmax, mse, ce, bn or percentile, got '%s'",
                                   o->arange);
        p->arange_bn = m == NNQ_RANGE_BN;
        p->calib.method = m == NNQ_RANGE_CE || m == NNQ_RANGE_BN ? NNQ_RANGE_MSE : m;
        p->calib.logits_method = m == NNQ_RANGE_BN ? NNQ_RANGE_MSE : m;
    }
    if (o->cle) p->cle = true;
    if (o->cle_relu6 && !nnq_relu6_mode_parse(o->cle_relu6, &p->cle_opt.relu6))
        return cli_usage_error("quantize", "--cle-relu6 wants cap, relu or skip, got '%s'",
                               o->cle_relu6);
    if (o->bias_absorb) p->bias_absorb = true;
    if (o->adaround) p->adaround = true;
    if (o->bias_correct) {
        if (strcmp(o->bias_correct, "empirical") == 0) p->bias_correct = NNQ_BC_EMPIRICAL;
        else if (strcmp(o->bias_correct, "analytical") == 0) p->bias_correct = NNQ_BC_ANALYTICAL;
        else
            return cli_usage_error("quantize", "--bias-correct wants empirical or analytical, got '%s'",
                                   o->bias_correct);
        if (o->adaround)
            return cli_usage_error("quantize", "--adaround and --bias-correct exclude each other");
        p->adaround = false; /* the standard recipe's AdaRound gives way */
    }
    if (o->input_range) {
        char *end;
        p->in_lo = strtof(o->input_range, &end);
        if (*end != ',' || (p->in_hi = strtof(end + 1, &end), *end) || !(p->in_lo < p->in_hi))
            return cli_usage_error("quantize", "--input-range wants LO,HI with LO < HI, got '%s'",
                                   o->input_range);
    }
    /* Per-layer settings: names are copied into `names` (NUL-separated). */
    int n = 0;
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *list = pass == 0 ? o->float_layers : o->layer_bits;
        if (!list) continue;
        const char *p0 = list;
        while (*p0) {
            const char *comma = strchr(p0, ',');
            size_t len = comma ? (size_t)(comma - p0) : strlen(p0);
            if (n >= MAX_OVERRIDES || used + len + 1 > names_cap)
                return cli_usage_error("quantize", "too many per-layer settings");
            char *item = names + used;
            memcpy(item, p0, len);
            item[len] = 0;
            used += len + 1;
            nnq_layer_override *x = &ov[n++];
            memset(x, 0, sizeof *x);
            x->name = item;
            if (pass == 0) {
                x->keep_float = true;
            } else {
                char *eq = strrchr(item, '=');
                char *end;
                if (!eq) return cli_usage_error("quantize", "--layer-bits item '%s' wants NAME=W[:A]", item);
                *eq = 0;
                x->wbits = (int)strtol(eq + 1, &end, 10);
                if (*end == ':') x->abits = (int)strtol(end + 1, &end, 10);
                if (*end || x->wbits < 2 || x->wbits > 16 || (x->abits && (x->abits < 2 || x->abits > 16)))
                    return cli_usage_error("quantize", "--layer-bits item '%s': bit-widths are 2..16",
                                           item);
            }
            p0 += len + (comma ? 1 : 0);
        }
    }
    p->qsim.overrides = ov;
    p->qsim.n_overrides = n;
    return CLI_EXIT_OK;
}

static nnq_status load_calibration(const quantize_opts *o, const nnq_ptq_options *p,
                                   nnq_dataset *d, bool *have) {
    *have = false;
    const bool needs = !p->arange_bn || p->adaround || p->bias_correct == NNQ_BC_EMPIRICAL;
    if (!needs) return NNQ_OK;
    nnq_status s = strcmp(o->data, DATA_FMNIST) == 0
                       ? nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, o->calib_size, d)
                       : nnq_dataset_npy(o->data, NULL, o->calib_size, d);
    if (s == NNQ_OK && d->n < 1) s = nnq_fail(NNQ_ERR_INVALID, "%s: no calibration images", o->data);
    *have = s == NNQ_OK;
    return s;
}

static nnq_status evaluate(const quantize_opts *o, const nnq_graph *model, const nnq_qsim *sim,
                           double *float_top1, double *quant_top1) {
    nnq_dataset d = {0};
    nnq_status s = o->eval_data ? nnq_dataset_npy(o->eval_data, o->eval_labels, o->eval_limit, &d)
                                : nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, o->eval_limit, &d);
    double loss;
    if (s == NNQ_OK && (d.n < 1 || !d.labels))
        s = nnq_fail(NNQ_ERR_INVALID, "no labelled images to evaluate on");
    if (s == NNQ_OK) s = nnq_evaluate(model, &d, 64, (int)o->threads, &loss, float_top1);
    if (s == NNQ_OK) s = nnq_evaluate(sim->g, &d, 64, (int)o->threads, &loss, quant_top1);
    nnq_dataset_free(&d);
    return s;
}

static void report_json(const quantize_opts *o, const nnq_ptq_options *p, const nnq_qsim *sim,
                        const nnq_ptq_report *r, double seconds, double ftop1, double qtop1) {
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "model", o->model);
    cli_json_string(&j, "output", o->output);
    cli_json_int(&j, "wbits", p->qsim.weights.bits);
    cli_json_int(&j, "abits", p->qsim.acts.bits);
    cli_json_bool(&j, "per_channel", p->qsim.weights.per_channel);
    cli_json_string(&j, "recipe", o->recipe);
    cli_json_string(&j, "wrange", nnq_range_method_name(p->wrange));
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

int cmd_quantize_run(int argc, char **argv) {
    quantize_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK) return rc;
    static nnq_layer_override ov[MAX_OVERRIDES];
    static char names[1 << 16];
    nnq_ptq_options p;
    if ((rc = build_options(&o, &p, ov, names, sizeof names)) != CLI_EXIT_OK) return rc;

    nnq_graph *model = NULL, *fg = NULL, *qdq = NULL;
    nnq_qsim *sim = NULL;
    nnq_dataset calib = {0};
    bool have_calib = false;
    nnq_ptq_report r;
    double ftop1 = 0, qtop1 = 0;
    const nnq_ptq_log log = {.fp = o.quiet ? NULL : stderr};
    const double t0 = cli_now();
    nnq_status s = cli_load_model(o.model, &model);
    if (s == NNQ_OK) s = load_calibration(&o, &p, &calib, &have_calib);
    if (s == NNQ_OK)
        s = nnq_ptq_run(model, have_calib ? &calib : NULL, &p, &log, &fg, &sim, &r);
    if (s == NNQ_OK) s = nnq_qsim_to_qdq(sim, &qdq);
    if (s == NNQ_OK) s = nnq_onnx_save(qdq, o.output);
    if (s == NNQ_OK && o.encodings) s = nnq_qsim_write_encodings(sim, o.encodings);
    const double seconds = cli_now() - t0;
    if (s == NNQ_OK && o.eval) s = evaluate(&o, model, sim, &ftop1, &qtop1);
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
    return rc;
}
