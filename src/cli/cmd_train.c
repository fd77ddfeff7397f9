/* nnq train: train a built-in architecture on Fashion-MNIST and export it
 * as ONNX (BatchNormalization nodes kept, not folded). */
#define _POSIX_C_SOURCE 200809L /* fileno, strdup */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/interrupt.h"
#include "cli/json_out.h"
#include "data/dataset.h"
#include "models/models.h"
#include "onnx/onnx_io.h"
#include "train/trainer.h"

#define DATA_FMNIST "fashion-mnist"
#define DEFAULT_EPOCHS 6
#define DEFAULT_BATCH 128

typedef struct train_opts {
    const char *arch, *output, *data, *optimizer, *schedule, *checkpoint, *resume;
    const char *lr_s, *wd_s, *momentum_s, *warmup_s, *step_s, *gamma_s, *clip_s;
    int64_t epochs, batch, seed, limit, test_limit, threads, stop_after, checkpoint_every;
    bool nesterov, no_nesterov, augment, no_eval, json, quiet;
} train_opts;

void cmd_train_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq train --arch NAME -o MODEL.onnx [--epochs N] [--batch B] [--lr LR]\n"
            "                 [--wd WD] [--optimizer sgd|adam|adamw] [--momentum M]\n"
            "                 [--nesterov | --no-nesterov] [--schedule cosine|step|constant]\n"
            "                 [--warmup-epochs E] [--step-epochs E] [--gamma G] [--clip NORM]\n"
            "                 [--augment] [--seed S] [--data fashion-mnist] [--limit N]\n"
            "                 [--test-limit N] [--no-eval] [--threads T] [--checkpoint PATH]\n"
            "                 [--checkpoint-every N] [--stop-after N]\n"
            "                 [--resume PATH] [--json] [--quiet]\n"
            "\n"
            "Train a built-in architecture from scratch on Fashion-MNIST (1x32x32 images)\n"
            "and write it as ONNX with its BatchNormalization nodes (not folded).\n"
            "Same seed, data, options and thread count on the same machine: same model.\n"
            "\n"
            "architectures:\n");
    for (int i = 0; i < nnq_arch_count(); i++)
        fprintf(fp, "  %-19s %s\n", nnq_arch_at(i)->name, nnq_arch_at(i)->summary);
    fprintf(fp,
            "\n"
            "options:\n"
            "  --arch NAME         architecture (required)\n"
            "  -o, --output PATH   where to write the trained model (required)\n"
            "  --epochs N          epochs (default %d)\n"
            "  --batch B           images per step (default %d; a last, smaller batch is kept)\n"
            "  --optimizer O       sgd (default), adam or adamw (PyTorch semantics)\n"
            "  --lr LR             base learning rate (default 0.1 for sgd, 0.001 for adam(w))\n"
            "  --wd WD             weight decay on conv/linear weights, not on biases or BN\n"
            "                      (default 5e-4; 4e-5 for the mobilenets)\n"
            "  --momentum M        SGD momentum (default 0.9)\n"
            "  --nesterov          Nesterov momentum (the default); --no-nesterov: plain\n"
            "  --schedule S        cosine (default), step or constant, applied per step\n"
            "  --warmup-epochs E   linear warm-up before the schedule (default 0)\n"
            "  --step-epochs E     step schedule: epochs between decays (default epochs/3)\n"
            "  --gamma G           step schedule: decay factor (default 0.1)\n"
            "  --clip NORM         clip gradients to this global norm (default: off)\n"
            "  --augment           random crop 32 with 2 px padding + horizontal flip\n"
            "  --seed S            weight initialisation, shuffling, augmentation (default 1)\n"
            "  --data D            '%s' (the only dataset for now)\n"
            "  --limit N           train on the first N training images (0: all 60000)\n"
            "  --test-limit N      evaluate on the first N test images (0: all 10000)\n"
            "  --no-eval           no evaluation after each epoch\n"
            "  --threads T         threads (default 0: all cores)\n"
            "  --checkpoint PATH   write a checkpoint after every epoch (atomically)\n"
            "  --checkpoint-every N  also every N steps inside an epoch (needs\n"
            "                      --checkpoint), so a killed run loses at most N steps\n"
            "  --resume PATH       continue from a checkpoint (an epoch's end or the middle\n"
            "                      of one); give the same options as the interrupted run\n"
            "                      to get the same model\n"
            "  --stop-after N      stop (with a checkpoint) once N epochs are done; the\n"
            "                      schedule still spans --epochs (for --resume later)\n"
            "  --json              print one JSON object on stdout: arch, output, epochs,\n"
            "                      steps, params, train_loss, train_top1, test_loss,\n"
            "                      test_top1, train_seconds, images_per_s, buffer_bytes\n"
            "  --quiet             no progress or summary on stderr\n"
            "  -h, --help          show this help\n"
            "\n"
            "Progress goes to stderr: an updating line on a terminal, otherwise a line\n"
            "every ~10%% of an epoch, and one summary line per epoch.\n"
            "\n"
            "SIGINT (Ctrl-C) or SIGTERM: the step in progress finishes, a checkpoint of\n"
            "that exact position is written (to --checkpoint, else to MODEL.onnx.ckpt),\n"
            "one line says where, and nnq exits with status 130 (SIGINT) or 143\n"
            "(SIGTERM). --resume from it reaches the same model as an uninterrupted run.\n"
            "A second signal terminates at once.\n",
            DEFAULT_EPOCHS, DEFAULT_BATCH, DATA_FMNIST);
}


static int parse_options(int argc, char **argv, train_opts *o) {
    o->data = DATA_FMNIST;
    o->optimizer = "sgd";
    o->schedule = "cosine";
    o->epochs = DEFAULT_EPOCHS;
    o->batch = DEFAULT_BATCH;
    o->seed = 1;
    const cli_opt opts[] = {
        {"arch", CLI_OPT_STRING, &o->arch, 0, 0},
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"epochs", CLI_OPT_INT, &o->epochs, 1, 100000},
        {"batch", CLI_OPT_INT, &o->batch, 1, 1 << 16},
        {"lr", CLI_OPT_STRING, &o->lr_s, 0, 0},
        {"wd", CLI_OPT_STRING, &o->wd_s, 0, 0},
        {"optimizer", CLI_OPT_STRING, &o->optimizer, 0, 0},
        {"momentum", CLI_OPT_STRING, &o->momentum_s, 0, 0},
        {"nesterov", CLI_OPT_FLAG, &o->nesterov, 0, 0},
        {"no-nesterov", CLI_OPT_FLAG, &o->no_nesterov, 0, 0},
        {"schedule", CLI_OPT_STRING, &o->schedule, 0, 0},
        {"warmup-epochs", CLI_OPT_STRING, &o->warmup_s, 0, 0},
        {"step-epochs", CLI_OPT_STRING, &o->step_s, 0, 0},
        {"gamma", CLI_OPT_STRING, &o->gamma_s, 0, 0},
        {"clip", CLI_OPT_STRING, &o->clip_s, 0, 0},
        {"augment", CLI_OPT_FLAG, &o->augment, 0, 0},
        {"seed", CLI_OPT_INT, &o->seed, 0, INT64_MAX},
        {"data", CLI_OPT_STRING, &o->data, 0, 0},
        {"limit", CLI_OPT_INT, &o->limit, 0, INT64_MAX},
        {"test-limit", CLI_OPT_INT, &o->test_limit, 0, INT64_MAX},
        {"no-eval", CLI_OPT_FLAG, &o->no_eval, 0, 0},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"checkpoint", CLI_OPT_STRING, &o->checkpoint, 0, 0},
        {"checkpoint-every", CLI_OPT_INT, &o->checkpoint_every, 0, INT64_MAX},
        {"stop-after", CLI_OPT_INT, &o->stop_after, 0, INT32_MAX},
        {"resume", CLI_OPT_STRING, &o->resume, 0, 0},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    cli_parse_result r = cli_parse_args("train", argc, argv, opts,
                                        (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos);
    switch (r) {
    case CLI_PARSE_HELP: cmd_train_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (!o->arch) return cli_usage_error("train", "--arch NAME is required");
    if (!nnq_arch_find(o->arch)) {
        char known[256] = "";
        for (int i = 0; i < nnq_arch_count(); i++) {
            if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
            strncat(known, nnq_arch_at(i)->name, sizeof known - strlen(known) - 1);
        }
        return cli_usage_error("train", "unknown architecture '%s' (known: %s)", o->arch, known);
    }
    if (!o->output) return cli_usage_error("train", "-o MODEL.onnx is required");
    if (strcmp(o->data, DATA_FMNIST) != 0)
        return cli_usage_error("train", "--data must be '%s', got '%s'", DATA_FMNIST, o->data);
    if (o->nesterov && o->no_nesterov)
        return cli_usage_error("train", "--nesterov and --no-nesterov contradict each other");
    if (o->checkpoint_every > 0 && !o->checkpoint)
        return cli_usage_error("train", "--checkpoint-every needs --checkpoint PATH");
    return CLI_EXIT_OK;
}

/* Options -> trainer config; usage errors are reported here. */
static int make_config(const train_opts *o, nnq_train_config *c) {
    *c = nnq_train_defaults();
    nnq_optim_kind kind;
    if (strcmp(o->optimizer, "sgd") == 0) kind = NNQ_OPTIM_SGD;
    else if (strcmp(o->optimizer, "adam") == 0) kind = NNQ_OPTIM_ADAM;
    else if (strcmp(o->optimizer, "adamw") == 0) kind = NNQ_OPTIM_ADAMW;
    else return cli_usage_error("train", "--optimizer must be sgd, adam or adamw, got '%s'",
                                o->optimizer);
    if (strcmp(o->schedule, "cosine") == 0) c->schedule = NNQ_SCHED_COSINE;
    else if (strcmp(o->schedule, "step") == 0) c->schedule = NNQ_SCHED_STEP;
    else if (strcmp(o->schedule, "constant") == 0) c->schedule = NNQ_SCHED_CONSTANT;
    else return cli_usage_error("train", "--schedule must be cosine, step or constant, got '%s'",
                                o->schedule);
    c->optim = nnq_optim_defaults(kind);
    c->optim.weight_decay = nnq_arch_find(o->arch)->default_weight_decay;
    c->lr = kind == NNQ_OPTIM_SGD ? 0.1f : 1e-3f;
    c->step_epochs = o->epochs >= 3 ? (float)o->epochs / 3.0f : 1.0f;
    if (!cli_parse_float("train", "lr", o->lr_s, 0, 100, &c->lr) ||
        !cli_parse_float("train", "wd", o->wd_s, 0, 1, &c->optim.weight_decay) ||
        !cli_parse_float("train", "momentum", o->momentum_s, 0, 0.9999, &c->optim.momentum) ||
        !cli_parse_float("train", "warmup-epochs", o->warmup_s, 0, (double)o->epochs, &c->warmup_epochs) ||
        !cli_parse_float("train", "step-epochs", o->step_s, 1e-6, 1e6, &c->step_epochs) ||
        !cli_parse_float("train", "gamma", o->gamma_s, 0, 1, &c->gamma) ||
        !cli_parse_float("train", "clip", o->clip_s, 0, 1e9, &c->clip_norm))
        return CLI_EXIT_USAGE;
    if (kind == NNQ_OPTIM_SGD) {
        c->optim.nesterov = !o->no_nesterov && c->optim.momentum > 0;
        if (o->nesterov && !(c->optim.momentum > 0))
            return cli_usage_error("train", "--nesterov needs --momentum > 0");
    }
    c->epochs = (int)o->epochs;
    c->batch = o->batch;
    c->seed = (uint64_t)o->seed;
    c->threads = (int)o->threads;
    c->checkpoint = o->checkpoint;
    c->checkpoint_every = o->checkpoint_every;
    c->stop_after = (int)o->stop_after;
    c->resume = o->resume;
    if (o->augment) c->augment = (nnq_augment){.crop_pad = NNQ_FMNIST_PAD, .hflip = true};
    return CLI_EXIT_OK;
}

/* ---- progress on stderr ---- */

typedef struct progress_view {
    bool enabled, tty, drawn;
    int next_tenth; /* plain mode: next 10% of the epoch to print */
} progress_view;

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

static void on_progress(const nnq_train_progress *p, void *user) {
    progress_view *v = user;
    if (!v->enabled) return;
    char eta[32];
    if (p->epoch_done) {
        if (v->drawn) fputs("\r\033[K", stderr);
        v->drawn = false;
        v->next_tenth = 1;
        fprintf(stderr, "epoch %d/%d: train loss %.4f top-1 %.2f%%", p->epoch, p->epochs, p->loss,
                100 * p->accuracy);
        if (p->has_test)
            fprintf(stderr, ", test loss %.4f top-1 %.2f%%", p->test_loss, 100 * p->test_accuracy);
        fprintf(stderr, ", %.1f s, %.0f images/s\n", p->epoch_seconds,
                p->epoch_seconds > 0 ? p->images_per_s : 0);
        fflush(stderr);
        return;
    }
    fmt_duration(p->eta_s, eta, sizeof eta);
    if (!v->tty) {
        int tenth = (int)(10 * p->step / p->steps);
        if (tenth < v->next_tenth || p->step == p->steps) return;
        v->next_tenth = tenth + 1;
    }
    fprintf(stderr, "%sepoch %d/%d step %lld/%lld loss %.4f top-1 %.2f%% lr %.4g %.0f images/s "
            "ETA %s%s",
            v->tty ? "\r" : "", p->epoch, p->epochs, (long long)p->step, (long long)p->steps,
            p->loss, 100 * p->accuracy, p->lr, p->images_per_s, eta, v->tty ? "\033[K" : "\n");
    fflush(stderr);
    v->drawn = v->tty;
}

/* ---- the command ---- */

static char *join_args(int argc, char **argv) {
    size_t len = strlen("nnq") + 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    strcpy(s, "nnq");
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static void report(const train_opts *o, const nnq_train_result *r) {
    if (!o->quiet) {
        fprintf(stderr, "trained %s: %d epochs, %lld steps, %lld parameters, %.1f s, "
                "%.0f images/s", o->arch, r->epochs_done, (long long)r->steps,
                (long long)r->params, r->train_seconds, r->images_per_s);
        if (r->has_test) fprintf(stderr, ", test top-1 %.2f%%", 100 * r->test_accuracy);
        fprintf(stderr, "; wrote %s\n", o->output);
    }
    if (!o->json) return;
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "arch", o->arch);
    cli_json_string(&j, "output", o->output);
    cli_json_int(&j, "epochs", r->epochs_done);
    cli_json_int(&j, "steps", r->steps);
    cli_json_int(&j, "params", r->params);
    cli_json_double(&j, "train_loss", r->train_loss);
    cli_json_double(&j, "train_top1", 100 * r->train_accuracy);
    if (r->has_test) {
        cli_json_double(&j, "test_loss", r->test_loss);
        cli_json_double(&j, "test_top1", 100 * r->test_accuracy);
    }
    cli_json_double(&j, "train_seconds", r->train_seconds);
    cli_json_double(&j, "images_per_s", r->images_per_s);
    cli_json_int(&j, "buffer_bytes", (int64_t)r->buffer_bytes);
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

/* The one line an interrupted run prints (even with --quiet). */
static void report_stop(const nnq_train_config *c, const nnq_train_result *r) {
    int epoch = r->epochs_done + (r->epoch_step > 0 ? 1 : 0);
    fprintf(stderr, "nnq: interrupted by %s ", cli_interrupt_name());
    if (r->epoch_step > 0)
        fprintf(stderr, "in epoch %d/%d after step %lld", epoch, c->epochs,
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

int cmd_train_run(int argc, char **argv) {
    train_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse_options(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;
    nnq_train_config cfg;
    if ((rc = make_config(&o, &cfg)) != CLI_EXIT_OK) return rc;

    nnq_graph *g = NULL;
    nnq_dataset train = {0}, test = {0};
    nnq_train_result result;
    progress_view view = {.enabled = !o.quiet, .tty = isatty(fileno(stderr)) == 1,
                          .next_tenth = 1};
    char *stop_path = NULL;
    cfg.progress = on_progress;
    cfg.user = &view;
    /* Interrupted: save where --checkpoint says, else beside the model. */
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
    nnq_status s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, o.limit, &train);
    if (s == NNQ_OK && !o.no_eval)
        s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, o.test_limit, &test);
    if (s == NNQ_OK) s = nnq_model_build(o.arch, (uint64_t)o.seed, &g);
    if (s == NNQ_OK && cli_interrupt_signal()) {
        fprintf(stderr, "nnq: interrupted by %s before training started; nothing saved\n",
                cli_interrupt_name());
        rc = cli_interrupt_exit_code();
        goto done;
    }
    if (s == NNQ_OK) {
        /* Provenance: the command that made the model, in its doc string. */
        char *cmd = join_args(argc, argv);
        if (cmd) {
            free(g->doc_string);
            g->doc_string = cmd;
        }
        s = nnq_train(g, &train, o.no_eval ? NULL : &test, &cfg, &result);
    }
    if (view.drawn) fputs("\r\033[K", stderr);
    view.drawn = false;
    if (s == NNQ_OK && result.stopped) {
        report_stop(&cfg, &result);
        rc = cli_interrupt_exit_code();
        goto done;
    }
    if (s == NNQ_OK) s = nnq_onnx_save(g, o.output);
    if (s == NNQ_OK) report(&o, &result);
    rc = s == NNQ_OK ? CLI_EXIT_OK : cli_fail(s);
done:
    free(stop_path);
    nnq_dataset_free(&train);
    nnq_dataset_free(&test);
    nnq_graph_free(g);
    return rc;
}
