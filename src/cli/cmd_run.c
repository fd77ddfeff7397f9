/* nnq run: one model on one .npy batch, first output to a .npy, with the
 * float executor, the integer engine or its float emulation (--engine). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/engine_model.h"
#include "cli/model_load.h"
#include "cli/progress.h"
#include "data/npy.h"

typedef struct run_opts {
    const char *model, *input, *output, *engine_name;
    cli_engine engine;
    int64_t threads;
    bool quiet;
} run_opts;

void cmd_run_help(FILE *fp) {
    fputs("usage: nnq run MODEL --input X.npy -o Y.npy [--engine float|int|sim]\n"
          "               [--threads T] [--quiet]\n"
          "\n"
          "Run a model once: X.npy (float32, C order; or uint8/int8 for a model whose\n"
          "input is quantized) feeds the model's single input, and its first output is\n"
          "written to Y.npy (atomically). X's shape must fit the input's declared shape: same rank,\n"
          "the same size on every fixed dimension, any size on a symbolic one. A\n"
          "model with a fixed batch dimension B also takes any number of rows: it\n"
          "runs B rows at a time (the last run zero-padded, its padding dropped),\n"
          "which assumes rows are independent, as in any inference model.\n"
          "\n"
          "options:\n"
          "  --input X       float32 .npy fed to the model's input (required)\n"
          "  -o, --output Y  where to write the first output as .npy (required)\n"
          "  --engine E      float (default): the float executor; int: the model lowered\n"
          "                  to nnq's integer engine (MODEL may be a .nnqi program); sim:\n"
          "                  the same integer program with float ops, bit-identical to int\n"
          "  --threads T     threads per op (default 0: all cores)\n"
          "  --quiet         no summary line on stderr\n"
          "  -h, --help      show this help\n",
          fp);
}

static int parse(int argc, char **argv, run_opts *o) {
    const cli_opt opts[] = {
        {"input", CLI_OPT_STRING, &o->input, 0, 0},
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"engine", CLI_OPT_STRING, &o->engine_name, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    cli_parse_result r = cli_parse_args("run", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]),
                                        pos, 1, &n_pos);
    switch (r) {
    case CLI_PARSE_HELP: cmd_run_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("run", "expected one MODEL argument");
    o->model = pos[0];
    if (o->engine_name && !cli_engine_parse(o->engine_name, &o->engine))
        return cli_usage_error("run", "--engine must be float, int or sim, not '%s'",
                               o->engine_name);
    if (!o->input) return cli_usage_error("run", "--input X.npy is required");
    if (!o->output) return cli_usage_error("run", "-o Y.npy is required");
    return CLI_EXIT_OK;
}

/* "[16, 1, 32, 32]", the notation of the model's shapes in messages. */
static const char *tensor_shape_str(const nnq_tensor *t, char *buf, size_t cap) {
    nnq_value v = {.t = *t};
    return cli_value_shape_str(&v, buf, cap);
}

/* Check that x fits the model's one input (float32, or uint8/int8 for a
 * quantized input). *rows_per_run: rows of x per executor run (all of
 * them unless the input has a fixed batch B that differs from x's row
 * count; then B). */
static nnq_status check_input(const cli_model *m, const run_opts *o, const nnq_tensor *x,
                              int64_t *rows_per_run) {
    if (m->n_inputs != 1)
        return nnq_fail(NNQ_ERR_SHAPE,
                        "%s has %d inputs; run feeds one .npy to a model with one input",
                        o->model, m->n_inputs);
    if (m->n_outputs < 1) return nnq_fail(NNQ_ERR_SHAPE, "%s has no outputs", o->model);
    const nnq_value *in = &m->in;
    const nnq_dtype dt = in->t.dtype;
    if (dt != NNQ_DT_FLOAT && dt != NNQ_DT_UINT8 && dt != NNQ_DT_INT8)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: input '%s' is %s; run feeds float32, uint8 "
                        "or int8", o->model, in->name, nnq_dtype_name(dt));
    if (x->dtype != dt)
        return nnq_fail(NNQ_ERR_UNSUPPORTED,
                        "%s holds %s; run needs %s for input '%s' of %s (numpy: .astype('%s'))",
                        o->input, nnq_dtype_name(x->dtype), nnq_dtype_name(dt), in->name,
                        o->model, nnq_dtype_name(dt));
    char want[256], got[256];
    cli_value_shape_str(in, want, sizeof want);
    tensor_shape_str(x, got, sizeof got);
    bool fits = in->t.rank == x->rank;
    for (int k = 1; fits && k < x->rank; k++)
        if (in->t.dims[k] >= 0 && in->t.dims[k] != x->dims[k]) fits = false;
    if (!fits)
        return nnq_fail(NNQ_ERR_SHAPE, "%s has shape %s but input '%s' of %s has shape %s",
                        o->input, got, in->name, o->model, want);
    *rows_per_run = x->rank > 0 ? x->dims[0] : 1;
    if (x->rank > 0 && in->t.dims[0] >= 0) *rows_per_run = in->t.dims[0];
    if (x->rank > 0 && x->dims[0] < 1)
        return nnq_fail(NNQ_ERR_SHAPE, "%s has shape %s: no rows to run", o->input, got);
    return NNQ_OK;
}

/* Run x through the model rows_per_run rows at a time; *y gets the first
 * output of all rows (owned). */
static nnq_status run_rows(cli_model *m, const run_opts *o, const nnq_tensor *x,
                           int64_t rows_per_run, nnq_tensor *y) {
    nnq_status s = NNQ_OK;
    unsigned char *pad = NULL;
    const size_t esize = nnq_dtype_size(x->dtype);
    int64_t rows = x->rank > 0 ? x->dims[0] : 1;
    size_t per_row = x->rank > 0 ? (size_t)nnq_shape_numel(x->rank - 1, x->dims + 1) : 1;
    for (int64_t start = 0; start < rows; start += rows_per_run) {
        int64_t count = rows - start < rows_per_run ? rows - start : rows_per_run;
        nnq_tensor chunk = *x;
        chunk.owns = false;
        if (x->rank > 0) {
            chunk.dims[0] = count;
            chunk.data = (unsigned char *)x->data + (size_t)start * per_row * esize;
        }
        if (count < rows_per_run) {
            if (!pad && !(pad = calloc((size_t)rows_per_run * per_row, esize))) {
                s = nnq_fail(NNQ_ERR_NOMEM, "out of memory padding the last rows");
                goto done;
            }
            memcpy(pad, chunk.data, (size_t)count * per_row * esize);
            chunk.data = pad;
            chunk.dims[0] = rows_per_run;
        }
        const nnq_tensor *out;
        if ((s = cli_model_run(m, &chunk, &out)) != NNQ_OK) goto done;
        if (rows_per_run == rows) { /* one run: the output as it is */
            s = nnq_tensor_clone(y, out);
            goto done;
        }
        char shape[256];
        if (out->rank < 1 || out->dims[0] != rows_per_run) {
            s = nnq_fail(NNQ_ERR_SHAPE,
                         "%s has a fixed batch of %lld but its output '%s' has shape %s, so %s "
                         "cannot be run %lld rows at a time",
                         o->model, (long long)rows_per_run, m->out_name,
                         tensor_shape_str(out, shape, sizeof shape), o->input,
                         (long long)rows_per_run);
            goto done;
        }
        size_t out_bytes;
        if ((s = nnq_tensor_nbytes(out, &out_bytes)) != NNQ_OK) goto done;
        size_t row_bytes = out_bytes / (size_t)rows_per_run;
        if (!y->data) {
            int64_t dims[NNQ_MAX_RANK];
            memcpy(dims, out->dims, sizeof dims);
            dims[0] = rows;
            if ((s = nnq_tensor_alloc(y, out->dtype, out->rank, dims)) != NNQ_OK) goto done;
        }
        memcpy((char *)y->data + (size_t)start * row_bytes, out->data, (size_t)count * row_bytes);
    }
done:
    free(pad);
    return s;
}

int cmd_run_run(int argc, char **argv) {
    run_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;

    cli_model m;
    nnq_tensor x = {0}, y = {0};
    int64_t rows_per_run = 0;
    nnq_status s = cli_model_open(o.model, o.engine, (int)o.threads, o.quiet, &m);
    if (s != NNQ_OK) return cli_fail(s);
    if ((s = nnq_npy_read(o.input, &x)) != NNQ_OK) goto fail;
    if ((s = check_input(&m, &o, &x, &rows_per_run)) != NNQ_OK) goto fail;
    double t0 = cli_now();
    if ((s = run_rows(&m, &o, &x, rows_per_run, &y)) != NNQ_OK) goto fail;
    double seconds = cli_now() - t0;
    if ((s = nnq_npy_write(o.output, &y)) != NNQ_OK) goto fail;
    if (!o.quiet) {
        char xs[256], ys[256];
        fprintf(stderr, "run %s: %s %s -> %s %s in %.3f s\n", o.model, o.input,
                tensor_shape_str(&x, xs, sizeof xs), o.output, tensor_shape_str(&y, ys, sizeof ys),
                seconds);
    }
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    cli_model_close(&m);
    return CLI_EXIT_OK;
fail:
    rc = cli_fail(s);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    cli_model_close(&m);
    return rc;
}
