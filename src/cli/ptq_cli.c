/* Options shared by `nnq quantize` and `nnq analyze` (ptq_cli.h). */
#include "cli/ptq_cli.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "report/report.h"
#include <sys/stat.h>

#define MAX_OVERRIDES 256

void ptq_cli_help_options(FILE *fp) {
    fprintf(fp,
                        "  --wbits B, --abits B   weight / activation bit-width, 2..16 (default 8; QDQ\n"
            "                         export stores at most 8, use --encodings above that)\n"
            "  --per-channel          one weight scale per output channel (default)\n"
            "  --per-tensor           one weight scale per tensor\n"
            "  --asymmetric-weights   weights with a zero point (default symmetric)\n"
            "  --symmetric-acts       activations without a zero point (default asymmetric)\n"
            "  --sym-range R          scale of a symmetric signed quantizer (weights) from its\n"
            "                         range [lo, hi], a = max(-lo, hi), grid -2^(b-1)..2^(b-1)-1:\n"
            "                         restricted (default): a / (2^(b-1) - 1), AIMET's and\n"
            "                         TFLite's, -2^(b-1) never used; tight: the smallest\n"
            "                         scale holding [lo, hi], max(-lo / 2^(b-1), hi /\n"
            "                         (2^(b-1) - 1)): never clips, uses -2^(b-1) (up to +5\n"
            "                         points at W4 with --wrange minmax); full: a / (2^(b-1)\n"
            "                         - 1/2), PyTorch's (finer, but clips a positive maximum\n"
            "                         by half a step). Measurements: docs/ptq.md\n"
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
            PTQ_CLI_FMNIST);
}

int ptq_cli_parse(const char *cmd, int argc, char **argv, ptq_cli_opts *o, const cli_opt *extra,
                  int n_extra, void (*help)(FILE *)) {
    if (!o->data) o->data = PTQ_CLI_FMNIST;
    if (!o->wbits) o->wbits = 8;
    if (!o->abits) o->abits = 8;
    if (!o->calib_size) o->calib_size = 1024;
    if (!o->adaround_iters) o->adaround_iters = -1;
    if (!o->recipe) o->recipe = "none";
    const cli_opt shared[] = {
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"wbits", CLI_OPT_INT, &o->wbits, 2, 16},
        {"abits", CLI_OPT_INT, &o->abits, 2, 16},
        {"per-tensor", CLI_OPT_FLAG, &o->per_tensor, 0, 0},
        {"per-channel", CLI_OPT_FLAG, &o->per_channel, 0, 0},
        {"asymmetric-weights", CLI_OPT_FLAG, &o->asymmetric_weights, 0, 0},
        {"symmetric-acts", CLI_OPT_FLAG, &o->symmetric_acts, 0, 0},
        {"sym-range", CLI_OPT_STRING, &o->sym_range, 0, 0},
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
    const int n_shared = (int)(sizeof shared / sizeof shared[0]);
    cli_opt opts[sizeof shared / sizeof shared[0] + 16];
    if (n_extra > 16) n_extra = 16;
    memcpy(opts, shared, sizeof shared);
    if (extra) memcpy(opts + n_shared, extra, sizeof *extra * (size_t)n_extra);
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args(cmd, argc, argv, opts, n_shared + n_extra, pos, 1, &n_pos)) {
    case CLI_PARSE_HELP: help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error(cmd, "expected one MODEL.onnx argument");
    o->model = pos[0];
    if (!o->output)
        return cli_usage_error(cmd, "-o %s is required",
                               strcmp(cmd, "analyze") == 0 ? "REPORT.html" : "OUT.onnx");
    if (o->per_tensor && o->per_channel)
        return cli_usage_error(cmd, "--per-tensor and --per-channel exclude each other");
    if ((o->eval_data != NULL) != (o->eval_labels != NULL))
        return cli_usage_error(cmd, "--eval-data and --eval-labels go together");
    o->percentile_d = 0.01;
    if (o->percentile) {
        char *end;
        o->percentile_d = strtod(o->percentile, &end);
        if (*end || !(o->percentile_d > 0 && o->percentile_d < 50))
            return cli_usage_error(cmd, "--percentile wants a number in (0, 50), got '%s'",
                                   o->percentile);
    }
    return CLI_EXIT_OK;
}

int ptq_cli_build(const char *cmd, const ptq_cli_opts *o, nnq_ptq_options *p) {
    static nnq_layer_override ov[MAX_OVERRIDES];
    static char names[1 << 16];
    const size_t names_cap = sizeof names;
    nnq_recipe r;
    if (!nnq_recipe_parse(o->recipe, &r))
        return cli_usage_error(cmd, "unknown recipe '%s' (standard, data-free, none)",
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
    if (o->sym_range) {
        nnq_sym_range r;
        if (!nnq_sym_range_parse(o->sym_range, &r))
            return cli_usage_error(cmd, "--sym-range wants tight, full or restricted, got '%s'",
                                   o->sym_range);
        p->qsim.weights.sym_range = p->qsim.acts.sym_range = r;
    }
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
            return cli_usage_error(cmd, "--wrange wants minmax or mse, got '%s'", o->wrange);
    }
    if (o->arange) {
        nnq_range_method m;
        if (!nnq_range_method_parse(o->arange, &m))
            return cli_usage_error(cmd,
                                   "--arange wants minmax, mse, ce, bn or percentile, got '%s'",
                                   o->arange);
        p->arange_bn = m == NNQ_RANGE_BN;
        p->calib.method = m == NNQ_RANGE_CE || m == NNQ_RANGE_BN ? NNQ_RANGE_MSE : m;
        p->calib.logits_method = m == NNQ_RANGE_BN ? NNQ_RANGE_MSE : m;
    }
    if (o->cle) p->cle = true;
    if (o->cle_relu6 && !nnq_relu6_mode_parse(o->cle_relu6, &p->cle_opt.relu6))
        return cli_usage_error(cmd, "--cle-relu6 wants cap, relu or skip, got '%s'",
                               o->cle_relu6);
    if (o->bias_absorb) p->bias_absorb = true;
    if (o->adaround) p->adaround = true;
    if (o->bias_correct) {
        if (strcmp(o->bias_correct, "empirical") == 0) p->bias_correct = NNQ_BC_EMPIRICAL;
        else if (strcmp(o->bias_correct, "analytical") == 0) p->bias_correct = NNQ_BC_ANALYTICAL;
        else
            return cli_usage_error(cmd, "--bias-correct wants empirical or analytical, got '%s'",
                                   o->bias_correct);
        if (o->adaround)
            return cli_usage_error(cmd, "--adaround and --bias-correct exclude each other");
        p->adaround = false; /* the standard recipe's AdaRound gives way */
    }
    if (o->input_range) {
        char *end;
        p->in_lo = strtof(o->input_range, &end);
        if (*end != ',' || (p->in_hi = strtof(end + 1, &end), *end) || !(p->in_lo < p->in_hi))
            return cli_usage_error(cmd, "--input-range wants LO,HI with LO < HI, got '%s'",
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
                return cli_usage_error(cmd, "too many per-layer settings");
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
                if (!eq) return cli_usage_error(cmd, "--layer-bits item '%s' wants NAME=W[:A]", item);
                *eq = 0;
                x->wbits = (int)strtol(eq + 1, &end, 10);
                if (*end == ':') x->abits = (int)strtol(end + 1, &end, 10);
                if (*end || x->wbits < 2 || x->wbits > 16 || (x->abits && (x->abits < 2 || x->abits > 16)))
                    return cli_usage_error(cmd, "--layer-bits item '%s': bit-widths are 2..16",
                                           item);
            }
            p0 += len + (comma ? 1 : 0);
        }
    }
    p->qsim.overrides = ov;
    p->qsim.n_overrides = n;
    return CLI_EXIT_OK;
}

nnq_status ptq_cli_load_calibration(const ptq_cli_opts *o, const nnq_ptq_options *p,
                                    nnq_dataset *d, bool *have) {
    *have = false;
    const bool needs = !p->arange_bn || p->adaround || p->bias_correct == NNQ_BC_EMPIRICAL;
    if (!needs) return NNQ_OK;
    nnq_status s = strcmp(o->data, PTQ_CLI_FMNIST) == 0
                       ? nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, o->calib_size, d)
                       : nnq_dataset_npy(o->data, NULL, o->calib_size, d);
    if (s == NNQ_OK && d->n < 1) s = nnq_fail(NNQ_ERR_INVALID, "%s: no calibration images", o->data);
    *have = s == NNQ_OK;
    return s;
}

nnq_status ptq_cli_load_eval(const ptq_cli_opts *o, nnq_dataset *d) {
    nnq_status s = o->eval_data ? nnq_dataset_npy(o->eval_data, o->eval_labels, o->eval_limit, d)
                                : nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, o->eval_limit, d);
    if (s == NNQ_OK && d->n < 1) s = nnq_fail(NNQ_ERR_INVALID, "no images to evaluate on");
    return s;
}

void ptq_cli_diag_options(const ptq_cli_opts *o, const nnq_ptq_options *p, nnq_diag_options *d) {
    nnq_diag_options_default(d);
    d->ptq = *p;
    d->recipe_name = o->recipe;
    const char *slash = strrchr(o->model, '/');
    d->model_name = slash ? slash + 1 : o->model;
    struct stat st;
    d->model_bytes = stat(o->model, &st) == 0 ? (int64_t)st.st_size : 0;
    d->threads = (int)o->threads;
}

nnq_status ptq_cli_write_report(const nnq_diag *d, const nnq_diag_options *o, const char *html_path,
                                const char *json_path, bool json_stdout) {
    nnq_report *r = NULL;
    NNQ_TRY(nnq_diag_report(d, o, &r));
    nnq_status s = nnq_report_write_html(r, html_path);
    if (s == NNQ_OK && json_path) s = nnq_report_write_json(r, json_path);
    if (s == NNQ_OK && json_stdout) s = nnq_report_write_json_stream(r, stdout);
    nnq_report_free(r);
    return s;
}
