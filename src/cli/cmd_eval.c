/* nnq eval: top-1 accuracy of a model on a labelled image set, with the
 * float executor, the integer engine or its float emulation (--engine). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/engine_model.h"
#include "cli/eval_top1.h"
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "data/dataset.h"

#define DEFAULT_BATCH 64
#define DATA_FMNIST "fashion-mnist"

typedef struct eval_opts {
    const char *model, *data, *labels, *engine_name;
    cli_engine engine;
    int64_t limit, batch, threads;
    bool json, quiet;
} eval_opts;

void cmd_eval_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq eval MODEL [--data fashion-mnist | --data X.npy --labels Y.npy]\n"
            "                [--engine float|int|sim] [--limit N] [--batch B] [--threads T]\n"
            "                [--json] [--quiet]\n"
            "\n"
            "Top-1 accuracy of a model: the class is the argmax of the first output per\n"
            "image (ties go to the lowest index). The model input must be [N, C, H, W]\n"
            "matching the images; the output [N, classes] (trailing dims are flattened).\n"
            "MODEL is an ONNX file, or for int and sim a lowered program (.nnqi).\n"
            "\n"
            "options:\n"
            "  --engine E    float (default): the float executor, QuantizeLinear and\n"
            "                DequantizeLinear in float as ONNX defines them; int: the\n"
            "                model lowered to nnq's integer engine; sim: the same integer\n"
            "                program with float ops (bit-identical logits to int)\n"
            "  --data D      '%s' (default: its 10000-image test split, normalised\n"
            "                and padded to 1x32x32) or a float32 .npy of NCHW/NHW images\n"
            "  --labels L    int64/int32 .npy of labels, one per image (with --data X.npy)\n"
            "  --limit N     evaluate only the first N images (0: all)\n"
            "  --batch B     images per run (default %d; a model with a fixed batch\n"
            "                dimension uses that instead)\n"
            "  --threads T   threads per op (default 0: all cores)\n"
            "  --json        print one JSON object on stdout: model, engine, n, top1,\n"
            "                correct, seconds, images_per_s\n"
            "  --quiet       no progress or summary on stderr\n"
            "  -h, --help    show this help\n",
            DATA_FMNIST, DEFAULT_BATCH);
}

static int parse(int argc, char **argv, eval_opts *o) {
    o->data = DATA_FMNIST;
    o->batch = DEFAULT_BATCH;
    const cli_opt opts[] = {
        {"data", CLI_OPT_STRING, &o->data, 0, 0},
        {"labels", CLI_OPT_STRING, &o->labels, 0, 0},
        {"limit", CLI_OPT_INT, &o->limit, 0, INT64_MAX},
        {"batch", CLI_OPT_INT, &o->batch, 1, 1 << 20},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"engine", CLI_OPT_STRING, &o->engine_name, 0, 0},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("eval", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 1,
                           &n_pos)) {
    case CLI_PARSE_HELP: cmd_eval_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("eval", "expected one MODEL argument");
    o->model = pos[0];
    if (o->engine_name && !cli_engine_parse(o->engine_name, &o->engine))
        return cli_usage_error("eval", "--engine must be float, int or sim, not '%s'",
                               o->engine_name);
    bool fmnist = strcmp(o->data, DATA_FMNIST) == 0;
    if (fmnist && o->labels)
        return cli_usage_error("eval", "--labels goes with --data X.npy, not %s", DATA_FMNIST);
    if (!fmnist && !o->labels)
        return cli_usage_error("eval", "--data %s needs --labels Y.npy", o->data);
    return CLI_EXIT_OK;
}

/* The model must take one float image batch [N, C, H, W] that fits the data. */
static nnq_status check_input(const cli_model *m, const eval_opts *o, const nnq_dataset *d) {
    if (m->n_inputs != 1)
        return nnq_fail(NNQ_ERR_SHAPE, "%s has %d inputs; eval needs a model with one image input",
                        o->model, m->n_inputs);
    if (m->n_outputs < 1) return nnq_fail(NNQ_ERR_SHAPE, "%s has no outputs", o->model);
    const nnq_value *in = &m->in;
    char want[256];
    cli_value_shape_str(in, want, sizeof want);
    if (in->t.dtype != NNQ_DT_FLOAT)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: input '%s' is %s; eval feeds float32 images",
                        o->model, in->name, nnq_dtype_name(in->t.dtype));
    if (in->t.rank != 4)
        return nnq_fail(NNQ_ERR_SHAPE,
                        "%s: input '%s' has shape %s; eval needs rank 4 [N, C, H, W]", o->model,
                        in->name, want);
    const int64_t chw[3] = {d->c, d->h, d->w};
    for (int k = 0; k < 3; k++)
        if (in->t.dims[k + 1] >= 0 && in->t.dims[k + 1] != chw[k])
            return nnq_fail(NNQ_ERR_SHAPE,
                            "%s: input '%s' has shape %s but the images of %s have shape "
                            "[%lld, %d, %d, %d]",
                            o->model, in->name, want, o->data, (long long)d->n, d->c, d->h, d->w);
    return NNQ_OK;
}

/* Infer the first output's shape at this batch size: [batch, classes...]. */
static nnq_status check_output(const cli_model *m, const eval_opts *o, const nnq_dataset *d,
                               int64_t batch, int64_t *classes) {
    nnq_tensor in = {0}, y = {0};
    const int64_t dims[4] = {batch, d->c, d->h, d->w};
    nnq_tensor_set_shape(&in, NNQ_DT_FLOAT, 4, dims);
    nnq_status s = cli_model_output_shape(m, &in, &y);
    if (s != NNQ_OK) return nnq_fail_context(s, "%s: ", o->model);
    char buf[128];
    if (y.dtype != NNQ_DT_FLOAT || y.rank < 2 || y.dims[0] != batch)
        return nnq_fail(NNQ_ERR_SHAPE,
                        "%s: output '%s' is %s %s for %lld images; eval needs float32 "
                        "[N, classes]",
                        o->model, m->out_name, nnq_dtype_name(y.dtype),
                        nnq_shape_str(&y, buf, sizeof buf), (long long)batch);
    *classes = nnq_shape_numel(y.rank - 1, y.dims + 1);
    if (*classes < d->n_classes)
        return nnq_fail(NNQ_ERR_SHAPE, "%s: output '%s' has %lld classes but the labels go up to %d",
                        o->model, m->out_name, (long long)*classes, d->n_classes - 1);
    return NNQ_OK;
}

static nnq_status run_model(void *ctx, const nnq_tensor *x, const nnq_tensor **y) {
    return cli_model_run(ctx, x, y);
}

static void report(const eval_opts *o, const cli_eval_result *r) {
    double top1 = 100.0 * (double)r->correct / (double)r->n;
    double rate = r->seconds > 0 ? (double)r->n / r->seconds : 0;
    if (!o->quiet)
        fprintf(stderr, "eval %s (%s): top-1 %.2f%% (%lld/%lld) in %.2f s, %.0f images/s\n",
                o->model, cli_engine_name(o->engine), top1, (long long)r->correct, (long long)r->n, r->seconds, rate);
    if (!o->json) return;
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "model", o->model);
    cli_json_string(&j, "engine", cli_engine_name(o->engine));
    cli_json_int(&j, "n", r->n);
    cli_json_double(&j, "top1", top1);
    cli_json_int(&j, "correct", r->correct);
    cli_json_double(&j, "seconds", r->seconds);
    cli_json_double(&j, "images_per_s", rate);
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

int cmd_eval_run(int argc, char **argv) {
    eval_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;

    cli_model m;
    nnq_dataset d = {0};
    cli_eval_result r = {0};
    int64_t classes = 0;
    nnq_status s = cli_model_open(o.model, o.engine, (int)o.threads, o.quiet, &m);
    if (s != NNQ_OK) return cli_fail(s);
    if (strcmp(o.data, DATA_FMNIST) == 0)
        s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, o.limit, &d);
    else
        s = nnq_dataset_npy(o.data, o.labels, o.limit, &d);
    if (s != NNQ_OK) goto fail;
    if (d.n < 1 || !d.labels) {
        s = nnq_fail(NNQ_ERR_INVALID, "%s: no labelled images to evaluate", o.data);
        goto fail;
    }
    if ((s = check_input(&m, &o, &d)) != NNQ_OK) goto fail;
    int64_t fixed = m.in.t.dims[0];
    int64_t batch = fixed > 0 ? fixed : o.batch;
    if ((s = check_output(&m, &o, &d, batch, &classes)) != NNQ_OK) goto fail;
    if ((s = cli_eval_top1(&d, batch, fixed > 0, classes, run_model, &m, "eval", !o.quiet, &r)) !=
        NNQ_OK)
        goto fail;
    report(&o, &r);
    nnq_dataset_free(&d);
    cli_model_close(&m);
    return CLI_EXIT_OK;
fail:
    rc = cli_fail(s);
    nnq_dataset_free(&d);
    cli_model_close(&m);
    return rc;
}
