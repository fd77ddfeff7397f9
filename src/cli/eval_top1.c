/* The evaluation loop (eval_top1.h). */
#include "cli/eval_top1.h"

#include <stdlib.h>
#include <string.h>

#include "cli/progress.h"
#include "ops/executor.h"

static int64_t argmax(const float *row, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (row[i] > row[best]) best = i; /* strict: ties keep the lowest index */
    return best;
}

nnq_status cli_eval_top1(const nnq_dataset *d, int64_t batch, bool fixed_batch, int64_t classes,
                         cli_eval_run_fn run, void *ctx, const char *label, bool progress,
                         cli_eval_result *r) {
    nnq_status s = NNQ_OK;
    float *pad = NULL;
    cli_progress prog = {0}; /* disabled until started */
    cli_progress_start(&prog, label, "images", d->n, progress);
    const double t0 = cli_now();
    const size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    r->n = d->n;
    r->correct = 0;
    r->seconds = 0;
    for (int64_t start = 0; start < d->n; start += batch) {
        const int64_t count = d->n - start < batch ? d->n - start : batch;
        nnq_tensor x;
        nnq_dataset_batch(d, start, count, &x);
        if (fixed_batch && count < batch) {
            if (!pad && !(pad = calloc((size_t)batch * per, sizeof *pad))) {
                s = nnq_fail(NNQ_ERR_NOMEM, "out of memory padding the last batch");
                goto done;
            }
            memcpy(pad, x.data, (size_t)count * per * sizeof *pad);
            x.data = pad;
            x.dims[0] = batch;
        }
        const nnq_tensor *y;
        if ((s = run(ctx, &x, &y)) != NNQ_OK) goto done;
        if (classes <= 0 && y->dtype == NNQ_DT_FLOAT && x.dims[0] > 0)
            classes = nnq_tensor_numel(y) / x.dims[0];
        if (y->dtype != NNQ_DT_FLOAT || classes < 1 || nnq_tensor_numel(y) != x.dims[0] * classes) {
            s = nnq_fail(NNQ_ERR_SHAPE, "output has %lld values for %lld images of %lld classes",
                         (long long)nnq_tensor_numel(y), (long long)x.dims[0], (long long)classes);
            goto done;
        }
        const float *logits = nnq_f32(y);
        for (int64_t i = 0; i < count; i++)
            if (argmax(logits + i * classes, classes) == d->labels[start + i]) r->correct++;
        cli_progress_update(&prog, start + count);
    }
    r->seconds = cli_now() - t0;
done:
    cli_progress_finish(&prog);
    free(pad);
    return s;
}

static nnq_status run_exec(void *ctx, const nnq_tensor *x, const nnq_tensor **y) {
    NNQ_TRY(nnq_exec_run(ctx, x));
    *y = nnq_exec_output(ctx, 0);
    return NNQ_OK;
}

nnq_status cli_eval_graph(const nnq_graph *g, const nnq_dataset *d, int64_t batch, int threads,
                          const char *label, bool progress, double *top1) {
    *top1 = 0;
    if (d->n < 1 || !d->labels) return nnq_fail(NNQ_ERR_INVALID, "no labelled images to evaluate");
    nnq_exec *e = NULL;
    const nnq_exec_options eo = {.threads = threads};
    NNQ_TRY(nnq_exec_create(g, &eo, &e));
    cli_eval_result r;
    const nnq_status s = cli_eval_top1(d, batch, false, 0, run_exec, e, label, progress, &r);
    nnq_exec_free(e);
    if (s == NNQ_OK) *top1 = (double)r.correct / (double)r.n;
    return s;
}
