/* nnq qat: quantization-aware training of a float ONNX model on
 * Fashion-MNIST (src/qat/), exported as the same QDQ ONNX model and
 * encodings as `nnq quantize`. */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/interrupt.h"
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "cli/progress.h"
#include "cli/report_out.h"
#include "data/dataset.h"
#include "diag/diag.h"
#include "onnx/onnx_io.h"
#include "qat/qat.h"
#include "quant/qdq_export.h"
#include "train/trainer.h"

#define DATA_FMNIST "fashion-mnist"

typedef struct qat_opts {
    const char *model, *output, *data, *method, *init, *optimizer, *encodings, *checkpoint;
    const char *resume, *lr_s, *qlr_s, *wd_s, *distill_s, *alpha_s, *ema_s;
    int64_t wbits, abits, first_last_bits, epochs, batch, train_limit, test_limit, calib_size;
    int64_t bn_reestimate, seed, threads, checkpoint_every, stop_after;
    bool per_channel, per_tensor, fold_bn, augment, eval, json, quiet;
    const char *report; /* --report PATH */
    const char *sym_range; /* --sym-range, as for nnq quantize */
} qat_opts;

void cmd_qat_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq qat MODEL.onnx -o OUT.onnx [--wbits 4] [--abits 4]\n"
            "               [--method ste|lsq|lsq+] [--per-channel | --per-tensor]\n"
            "               [--epochs N] [--batch B] [--lr LR] [--qlr LR] [--wd WD]\n"
            "               [--optimizer adam|sgd] [--init mse|minmax|lsq] [--ema M]\n"
            "               [--distill T] [--distill-alpha A] [--first-last-bits 8]\n"
            "               [--fold-bn] [--bn-reestimate N] [--augment]\n"
            "               [--data fashion-mnist] [--train-limit N] [--test-limit N]\n"
            "               [--calib-size N] [--eval] [--json] [--encodings OUT.json]\n"
            "               [--report R.html]\n"
            "               [--checkpoint PATH] [--checkpoint-every N] [--resume PATH]\n"
            "               [--seed S] [--threads T] [--quiet]\n"
            "\n"
            "Quantization-aware training: quantizers are initialised from calibration\n"
            "images (as `nnq quantize` sets ranges), then the network is fine-tuned with\n"
            "them in the loop on the labelled training split, and written as the same\n"
            "QDQ ONNX model (int8 weights on their b-bit grid, int32 biases) and\n"
            "encodings that `nnq quantize` writes.\n"
            "\n"
            "methods:\n"
            "  ste    ranges fixed at their initial values (or running min-max with --ema),\n"
            "         straight-through gradient\n"
            "  lsq    learned step sizes (LSQ, gradient scale 1/sqrt(N Qp)) (default)\n"
            "  lsq+   learned step sizes and activation offsets (LSQ+)\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the QDQ model to write (atomically)\n"
            "  --wbits B, --abits B   weight / activation bit-width, 2..8 (default 4)\n"
            "  --per-channel          one weight scale per output channel (default); BN\n"
            "                         stays in training and folds into the scales at export\n"
            "  --per-tensor           one weight scale per tensor; BN folded before training\n"
            "  --fold-bn              fold BN before training with per-channel weights too\n"
            "  --sym-range R          symmetric weight scale rule for the initial ranges:\n"
            "                         restricted (default), tight or full (nnq quantize --help)\n"
            "  --first-last-bits B    first and last layer at B bits (default 8; 0: as the rest)\n"
            "  --init I               mse (PTQ MSE ranges, cross-entropy on the logits; the\n"
            "                         default), minmax, or lsq (the method's paper init)\n"
            "  --ema M                ste: ranges follow running min-max with this constant\n"
            "                         (e.g. 0.01; default 0: fixed)\n"
            "  --epochs N             epochs (default 3)\n"
            "  --batch B              images per step (default 128)\n"
            "  --optimizer O          adam (default) or sgd (momentum 0.9, Nesterov)\n"
            "  --lr LR                learning rate, cosine schedule (default 3e-4 adam,\n"
            "                         1e-2 sgd)\n"
            "  --qlr LR               learning rate of quantizer scales (default lr / 10);\n"
            "                         lsq+ offsets learn at qlr / (mean step size), in grid units\n"
            "  --wd WD                weight decay on weights (default 0; lower it at low bits)\n"
            "  --distill T            distillation from the float model at temperature T\n"
            "  --distill-alpha A      weight of distillation vs cross-entropy (default 1)\n"
            "  --bn-reestimate N      after training, BN statistics from N images (per-channel)\n"
            "  --augment              random crop (2 px padding) and horizontal flip\n"
            "  --data D               '%s' (training split; labels needed)\n"
            "  --train-limit N        train on the first N training images (0: all 60000)\n"
            "  --test-limit N         evaluate on the first N test images (0: all 10000)\n"
            "  --calib-size N         images for range initialisation (default 1024)\n"
            "  --eval                 top-1 on the test split of the float model, the PTQ\n"
            "                         simulation training starts from (BN folded), the\n"
            "                         training graph before training and after each epoch,\n"
            "                         and the export\n"
            "  --encodings PATH       also write AIMET-style encodings JSON\n"
            "  --report PATH          also write an HTML report of the exported model against\n"
            "                         the float one (top-1, per-layer SQNR in the simulation\n"
            "                         and the integer engine, sensitivity, histograms; JSON\n"
            "                         beside it), on the --test-limit test images (default\n"
            "                         the first 1000); see `nnq analyze`\n"
            "  --checkpoint PATH      write a checkpoint after every epoch (atomically)\n"
            "  --checkpoint-every N   also every N steps (needs --checkpoint)\n"
            "  --resume PATH          continue from a checkpoint with the same options\n"
            "  --stop-after N         stop (with a checkpoint) once N epochs are done\n"
            "  --seed S               shuffling and augmentation (default 1)\n"
            "  --threads T            threads (default 0: all cores)\n"
            "  --json                 one JSON object on stdout (options, top-1s, timings)\n"
            "  --quiet                nothing on stderr but errors\n"
            "  -h, --help             show this help\n"
            "\n"
            "SIGINT or SIGTERM: the step in progress finishes, a checkpoint of that\n"
            "position is written (to --checkpoint, else OUT.onnx.ckpt), and nnq exits\n"
            "with 130 / 143; --resume from it continues the same run.\n",
            DATA_FMNIST);
}


static int parse(int argc, char **argv, qat_opts *o) {
    o->data = DATA_FMNIST;
    o->method = "lsq";
    o->init = "mse";
    o->optimizer = "adam";
    o->wbits = o->abits = 4;
    o->first_last_bits = 8;
    o->epochs = 3;
    o->batch = 128;
    o->calib_size = 1024;
    o->seed = 1;
    const cli_opt opts[] = {
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"wbits", CLI_OPT_INT, &o->wbits, 2, 8},
        {"abits", CLI_OPT_INT, &o->abits, 2, 8},
        {"method", CLI_OPT_STRING, &o->method, 0, 0},
        {"per-channel", CLI_OPT_FLAG, &o->per_channel, 0, 0},
        {"per-tensor", CLI_OPT_FLAG, &o->per_tensor, 0, 0},
        {"fold-bn", CLI_OPT_FLAG, &o->fold_bn, 0, 0},
        {"sym-range", CLI_OPT_STRING, &o->sym_range, 0, 0},
        {"first-last-bits", CLI_OPT_INT, &o->first_last_bits, 0, 8},
        {"init", CLI_OPT_STRING, &o->init, 0, 0},
        {"ema", CLI_OPT_STRING, &o->ema_s, 0, 0},
        {"epochs", CLI_OPT_INT, &o->epochs, 1, 100000},
        {"batch", CLI_OPT_INT, &o->batch, 1, 1 << 16},
        {"optimizer", CLI_OPT_STRING, &o->optimizer, 0, 0},
        {"lr", CLI_OPT_STRING, &o->lr_s, 0, 0},
        {"qlr", CLI_OPT_STRING, &o->qlr_s, 0, 0},
        {"wd", CLI_OPT_STRING, &o->wd_s, 0, 0},
        {"distill", CLI_OPT_STRING, &o->distill_s, 0, 0},
        {"distill-alpha", CLI_OPT_STRING, &o->alpha_s, 0, 0},
        {"bn-reestimate", CLI_OPT_INT, &o->bn_reestimate, 0, INT64_MAX},
        {"augment", CLI_OPT_FLAG, &o->augment, 0, 0},
        {"data", CLI_OPT_STRING, &o->data, 0, 0},
        {"train-limit", CLI_OPT_INT, &o->train_limit, 0, INT64_MAX},
        {"test-limit", CLI_OPT_INT, &o->test_limit, 0, INT64_MAX},
        {"calib-size", CLI_OPT_INT, &o->calib_size, 1, 1 << 24},
        {"eval", CLI_OPT_FLAG, &o->eval, 0, 0},
        {"encodings", CLI_OPT_STRING, &o->encodings, 0, 0},
        {"report", CLI_OPT_STRING, &o->report, 0, 0},
        {"checkpoint", CLI_OPT_STRING, &o->checkpoint, 0, 0},
        {"checkpoint-every", CLI_OPT_INT, &o->checkpoint_every, 0, INT64_MAX},
        {"resume", CLI_OPT_STRING, &o->resume, 0, 0},
        {"stop-after", CLI_OPT_INT, &o->stop_after, 0, INT32_MAX},
        {"seed", CLI_OPT_INT, &o->seed, 0, INT64_MAX},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("qat", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 1,
                           &n_pos)) {
    case CLI_PARSE_HELP: cmd_qat_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("qat", "expected one MODEL.onnx argument");
    o->model = pos[0];
    if (!o->output) return cli_usage_error("qat", "-o OUT.onnx is required");
    if (o->per_tensor && o->per_channel)
        return cli_usage_error("qat", "--per-tensor and --per-channel exclude each other");
    if (strcmp(o->data, DATA_FMNIST) != 0)
        return cli_usage_error("qat", "--data must be '%s' (training needs labels), got '%s'",
                               DATA_FMNIST, o->data);
    if (o->first_last_bits == 1) return cli_usage_error("qat", "--first-last-bits is 0 or 2..8");
    if (o->checkpoint_every > 0 && !o->checkpoint)
        return cli_usage_error("qat", "--checkpoint-every needs --checkpoint PATH");
    return CLI_EXIT_OK;
}

static int make_options(const qat_opts *o, nnq_qat_options *q, nnq_train_config *c) {
    nnq_qat_options_default(q);
    if (!nnq_qat_method_parse(o->method, &q->method))
        return cli_usage_error("qat", "--method must be ste, lsq or lsq+, got '%s'", o->method);
    if (!nnq_qat_init_parse(o->init, &q->init))
        return cli_usage_error("qat", "--init must be mse, minmax or lsq, got '%s'", o->init);
    q->qsim.weights.bits = (int)o->wbits;
    q->qsim.acts.bits = (int)o->abits;
    q->qsim.weights.per_channel = !o->per_tensor;
    if (o->sym_range && !nnq_sym_range_parse(o->sym_range, &q->qsim.weights.sym_range))
        return cli_usage_error("qat", "--sym-range must be tight, full or restricted, got '%s'",
                               o->sym_range);
    q->qsim.first_last_bits = (int)o->first_last_bits;
    q->keep_bn = !o->fold_bn;
    q->calib_n = o->calib_size;
    q->threads = (int)o->threads;
    *c = nnq_train_defaults();
    nnq_optim_kind kind;
    if (strcmp(o->optimizer, "adam") == 0) kind = NNQ_OPTIM_ADAM;
    else if (strcmp(o->optimizer, "sgd") == 0) kind = NNQ_OPTIM_SGD;
    else return cli_usage_error("qat", "--optimizer must be adam or sgd, got '%s'", o->optimizer);
    c->optim = nnq_optim_defaults(kind);
    c->optim.weight_decay = 0;
    c->lr = kind == NNQ_OPTIM_ADAM ? 3e-4f : 1e-2f;
    float qlr = -1;
    if (!cli_parse_float("qat", "lr", o->lr_s, 0, 100, &c->lr) || !cli_parse_float("qat", "qlr", o->qlr_s, 0, 100, &qlr) ||
        !cli_parse_float("qat", "wd", o->wd_s, 0, 1, &c->optim.weight_decay) ||
        !cli_parse_float("qat", "ema", o->ema_s, 0, 1, &q->ema) ||
        !cli_parse_float("qat", "distill", o->distill_s, 1e-3, 1e3, &q->distill_t) ||
        !cli_parse_float("qat", "distill-alpha", o->alpha_s, 0, 1, &q->distill_alpha))
        return CLI_EXIT_USAGE;
    if (o->ema_s && q->method != NNQ_QAT_STE)
        return cli_usage_error("qat", "--ema applies to --method ste only");
    if (qlr >= 0) q->qlr_mult = c->lr > 0 ? qlr / c->lr : 0.0f; /* else the default lr / 10 */
    if (qlr > 0 && !(c->lr > 0)) return cli_usage_error("qat", "--qlr > 0 needs --lr > 0");
    c->epochs = (int)o->epochs;
    c->batch = o->batch;
    c->seed = (uint64_t)o->seed;
    c->threads = (int)o->threads;
    c->checkpoint = o->checkpoint;
    c->checkpoint_every = o->checkpoint_every;
    c->resume = o->resume;
    c->stop_after = (int)o->stop_after;
    if (o->augment) c->augment = (nnq_augment){.crop_pad = NNQ_FMNIST_PAD, .hflip = true};
    return CLI_EXIT_OK;
}

/* ---- progress on stderr ---- */

typedef struct view {
    bool enabled;
    cli_progress bar;
    int epoch;
} view;

static void on_progress(const nnq_train_progress *p, void *user) {
    view *v = user;
    if (!v->enabled) return;
    if (p->epoch_done) {
        cli_progress_finish(&v->bar);
        fprintf(stderr, "epoch %d/%d: train loss %.4f top-1 %.2f%%", p->epoch, p->epochs, p->loss,
                100 * p->accuracy);
        if (p->has_test) fprintf(stderr, ", quantized test top-1 %.2f%%", 100 * p->test_accuracy);
        fprintf(stderr, ", %.1f s, %.0f images/s\n", p->epoch_seconds, p->images_per_s);
        fflush(stderr);
        v->epoch = 0;
        return;
    }
    if (v->epoch != p->epoch) {
        static char label[32];
        snprintf(label, sizeof label, "qat epoch %d/%d", p->epoch, p->epochs);
        cli_progress_start(&v->bar, label, "steps", p->steps, true);
        v->epoch = p->epoch;
    }
    cli_progress_update(&v->bar, p->step);
}

/* ---- the command ---- */

typedef struct qat_result {
    double float_top1, ptq_top1, start_top1, qat_top1, export_top1;
    double init_seconds, seconds;
    nnq_train_result tr;
} qat_result;

static nnq_status top1(const nnq_graph *g, const nnq_dataset *d, int threads, double *out) {
    double loss;
    return nnq_evaluate(g, d, 128, threads, &loss, out);
}

static void report_json(const qat_opts *o, const nnq_qat *qa, const nnq_train_config *c,
                        const qat_result *r) {
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "model", o->model);
    cli_json_string(&j, "output", o->output);
    cli_json_string(&j, "method", nnq_qat_method_name(qa->opt.method));
    cli_json_string(&j, "init", nnq_qat_init_name(qa->opt.init));
    cli_json_int(&j, "wbits", qa->opt.qsim.weights.bits);
    cli_json_int(&j, "abits", qa->opt.qsim.acts.bits);
    cli_json_int(&j, "first_last_bits", qa->opt.qsim.first_last_bits);
    cli_json_bool(&j, "per_channel", qa->opt.qsim.weights.per_channel);
    cli_json_int(&j, "bn_folded", qa->n_folded_bn);
    cli_json_int(&j, "bn_kept", qa->n_bn);
    cli_json_int(&j, "export_clamped", qa->export_clamped);
    cli_json_string(&j, "optimizer", nnq_optim_name(c->optim.kind));
    cli_json_double(&j, "lr", c->lr);
    cli_json_double(&j, "qlr", c->lr * qa->opt.qlr_mult);
    cli_json_double(&j, "weight_decay", c->optim.weight_decay);
    cli_json_double(&j, "distill", qa->opt.distill_t);
    cli_json_int(&j, "epochs", r->tr.epochs_done);
    cli_json_int(&j, "steps", r->tr.steps);
    cli_json_int(&j, "batch", c->batch);
    cli_json_int(&j, "params", r->tr.params);
    cli_json_double(&j, "train_loss", r->tr.train_loss);
    cli_json_double(&j, "train_top1", 100 * r->tr.train_accuracy);
    cli_json_double(&j, "init_seconds", r->init_seconds);
    cli_json_double(&j, "train_seconds", r->tr.train_seconds);
    cli_json_double(&j, "images_per_s", r->tr.images_per_s);
    cli_json_int(&j, "buffer_bytes", (int64_t)r->tr.buffer_bytes);
    cli_json_double(&j, "seconds", r->seconds);
    if (o->eval) {
        cli_json_double(&j, "float_top1", 100 * r->float_top1);
        cli_json_double(&j, "ptq_top1", 100 * r->ptq_top1);
        cli_json_double(&j, "start_top1", 100 * r->start_top1);
        cli_json_double(&j, "qat_top1", 100 * r->qat_top1);
        cli_json_double(&j, "export_top1", 100 * r->export_top1);
    }
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

static void report_stop(const nnq_train_config *c, const nnq_train_result *r) {
    fprintf(stderr, "nnq: interrupted by %s ", cli_interrupt_name());
    if (r->epoch_step > 0)
        fprintf(stderr, "in epoch %d/%d after step %lld", r->epochs_done + 1, c->epochs,
                (long long)r->epoch_step);
    else
        fprintf(stderr, "after epoch %d/%d", r->epochs_done, c->epochs);
    if (r->saved)
        fprintf(stderr, "; checkpoint saved to %s (continue with --resume %s and the same "
                "options)\n", r->saved, r->saved);
    else
        fputs("; nothing saved\n", stderr);
    fflush(stderr);
}

/* --report: the exported simulation against the float model (BN folded,
 * as the simulation's were; values matched by name), as `nnq quantize
 * --report` shows a PTQ result; no CLE picture and no bit-width sweep
 * (they describe PTQ), HTML + JSON beside it. */
static nnq_status write_report(const qat_opts *o, nnq_qat *qa, const nnq_graph *model,
                               const nnq_dataset *calib, const nnq_dataset *test,
                               const qat_result *r) {
    nnq_diag_options dopt;
    nnq_diag_options_default(&dopt);
    dopt.ptq.qsim = qa->opt.qsim;
    dopt.ptq.calib.n = qa->opt.calib_n;
    dopt.source = "qat";
    dopt.bit_sweep = dopt.cle_ranges = false;
    dopt.threads = (int)o->threads;
    char recipe[96];
    snprintf(recipe, sizeof recipe, "QAT %s, %d epoch%s", nnq_qat_method_name(qa->opt.method),
             r->tr.epochs_done, r->tr.epochs_done == 1 ? "" : "s");
    dopt.recipe_name = recipe;
    const char *slash = strrchr(o->model, '/');
    dopt.model_name = slash ? slash + 1 : o->model;
    struct stat st;
    dopt.model_bytes = stat(o->model, &st) == 0 ? (int64_t)st.st_size : 0;
    nnq_ptq_report steps = {.n_steps = 2}; /* memory: not measured per step ("–") */
    steps.steps[0].name = "initialisation";
    steps.steps[0].seconds = r->init_seconds;
    steps.steps[0].peak_rss_mb = NAN;
    steps.steps[1].name = "training";
    steps.steps[1].seconds = r->tr.train_seconds;
    steps.steps[1].peak_rss_mb = NAN;
    nnq_dataset eval = *test; /* a view: the first images only */
    if (o->test_limit == 0 && eval.n > 1000) eval.n = 1000;
    cli_sink sink;
    cli_sink_open(&sink, !o->quiet);
    const nnq_ptq_log log = {.fp = sink.log, .progress = {cli_sink_progress, &sink}};
    nnq_graph *fg = NULL;
    nnq_diag d = {0};
    nnq_status s = nnq_diag_float_reference(model, &fg);
    if (s == NNQ_OK) s = nnq_diag_collect(model, fg, qa->sim, &steps, calib, &eval, &dopt, &log, &d);
    if (s == NNQ_OK) s = cli_report_write(&d, &dopt, o->report);
    if (s == NNQ_OK && log.fp) {
        char json[4096];
        cli_report_json_path(o->report, json, sizeof json);
        fprintf(log.fp, "report: %s (data: %s)\n", o->report, json);
    }
    nnq_diag_free(&d);
    nnq_graph_free(fg);
    cli_sink_close(&sink);
    return s;
}

int cmd_qat_run(int argc, char **argv) {
    qat_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK) return rc;
    nnq_qat_options qo;
    nnq_train_config cfg;
    if ((rc = make_options(&o, &qo, &cfg)) != CLI_EXIT_OK) return rc;

    nnq_graph *model = NULL, *qdq = NULL;
    nnq_qat *qa = NULL;
    nnq_dataset train = {0}, test = {0}, calib = {0};
    qat_result r;
    memset(&r, 0, sizeof r);
    view v = {.enabled = !o.quiet};
    char *stop_path = NULL;
    const int th = (int)o.threads;
    cfg.progress = on_progress;
    cfg.user = &v;
    if (!o.checkpoint) {
        stop_path = malloc(strlen(o.output) + sizeof ".ckpt");
        if (!stop_path) return cli_error("out of memory");
        sprintf(stop_path, "%s.ckpt", o.output);
    }
    cfg.stop = cli_interrupt_poll;
    cfg.stop_checkpoint = o.checkpoint ? o.checkpoint : stop_path;
    if (!cli_interrupt_install()) {
        free(stop_path);
        return cli_error("cannot install the SIGINT/SIGTERM handlers");
    }
    const double t0 = cli_now();
    nnq_status s = cli_load_model(o.model, &model);
    if (s == NNQ_OK) s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, o.train_limit, &train);
    if (s == NNQ_OK) s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, o.calib_size, &calib);
    if (s == NNQ_OK && (o.eval || o.report))
        s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, o.test_limit, &test);
    if (s == NNQ_OK) s = nnq_qat_create(model, &calib, &qo, &qa);
    r.init_seconds = cli_now() - t0;
    if (s == NNQ_OK && o.eval) s = top1(qa->teacher, &test, th, &r.float_top1);
    if (s == NNQ_OK && o.eval) s = top1(qa->sim->g, &test, th, &r.ptq_top1);
    if (s == NNQ_OK && o.eval) s = top1(qa->g, &test, th, &r.start_top1);
    if (s == NNQ_OK && !o.quiet) {
        fprintf(stderr, "qat %s: W%dA%d %s %s, init %s, %d layers, %d BN kept, %.1f s to set up\n",
                o.model, qo.qsim.weights.bits, qo.qsim.acts.bits,
                qo.qsim.weights.per_channel ? "per-channel" : "per-tensor",
                nnq_qat_method_name(qo.method), nnq_qat_init_name(qo.init), qa->sim->n_layers,
                qa->n_bn, r.init_seconds);
        if (o.eval)
            fprintf(stderr, "top-1: float %.2f%%, PTQ %.2f%%, training start %.2f%%\n",
                    100 * r.float_top1, 100 * r.ptq_top1, 100 * r.start_top1);
    }
    if (s == NNQ_OK && cli_interrupt_signal()) {
        fprintf(stderr, "nnq: interrupted by %s before training started; nothing saved\n",
                cli_interrupt_name());
        rc = cli_interrupt_exit_code();
        goto done;
    }
    if (s == NNQ_OK) s = nnq_qat_train(qa, &train, o.eval ? &test : NULL, &cfg, &r.tr);
    cli_progress_finish(&v.bar);
    if (s == NNQ_OK && r.tr.stopped) {
        report_stop(&cfg, &r.tr);
        rc = cli_interrupt_exit_code();
        goto done;
    }
    if (s == NNQ_OK && o.bn_reestimate > 0)
        s = nnq_qat_bn_reestimate(qa, &train, o.bn_reestimate, cfg.batch);
    if (s == NNQ_OK && o.eval) s = top1(qa->g, &test, th, &r.qat_top1);
    if (s == NNQ_OK) s = nnq_qat_export(qa);
    if (s == NNQ_OK) s = nnq_qsim_to_qdq(qa->sim, &qdq);
    if (s == NNQ_OK) s = nnq_onnx_save(qdq, o.output);
    if (s == NNQ_OK && o.encodings) s = nnq_qsim_write_encodings(qa->sim, o.encodings);
    if (s == NNQ_OK && o.eval) s = top1(qa->sim->g, &test, th, &r.export_top1);
    r.seconds = cli_now() - t0;
    if (s == NNQ_OK && o.report) s = write_report(&o, qa, model, &calib, &test, &r);
    if (s != NNQ_OK) {
        rc = cli_fail(s);
        goto done;
    }
    if (!o.quiet) {
        fprintf(stderr, "qat: %d epochs, %lld steps, %.1f s training, %.0f images/s → %s\n",
                r.tr.epochs_done, (long long)r.tr.steps, r.tr.train_seconds, r.tr.images_per_s,
                o.output);
        if (o.eval)
            fprintf(stderr, "top-1: float %.2f%%, start %.2f%%, trained %.2f%%, exported %.2f%%\n",
                    100 * r.float_top1, 100 * r.start_top1, 100 * r.qat_top1, 100 * r.export_top1);
        if (qa->export_clamped)
            fprintf(stderr, "qat: %lld folded weight(s) clamped to the grid (negative BN gamma "
                    "at the grid's low end)\n", (long long)qa->export_clamped);
    }
    if (o.json) report_json(&o, qa, &cfg, &r);
    rc = CLI_EXIT_OK;
done:
    free(stop_path);
    nnq_graph_free(qdq);
    nnq_qat_free(qa);
    nnq_dataset_free(&train);
    nnq_dataset_free(&test);
    nnq_dataset_free(&calib);
    nnq_graph_free(model);
    return rc;
}
