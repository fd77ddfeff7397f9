/* Top-1 over a labelled image set, batch by batch, with a progress bar on
 * stderr (cli/progress.h: a bar with ETA on a terminal, a line every 10%
 * in a log): the loop of `nnq eval`, shared with `nnq quantize --eval`.
 * The class of an image is the argmax of its output row (ties go to the
 * lowest index). */
#ifndef NNQ_CLI_EVAL_TOP1_H
#define NNQ_CLI_EVAL_TOP1_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "ir/graph.h"

/* Run the model on batch x; *y: its first output, valid until the next call. */
typedef nnq_status (*cli_eval_run_fn)(void *ctx, const nnq_tensor *x, const nnq_tensor **y);

typedef struct cli_eval_result {
    int64_t n, correct;
    double seconds;
} cli_eval_result;

/* Batches of `batch` images; fixed_batch: the model's batch dim is fixed,
 * so the last, partial batch is zero-padded (only real rows are scored).
 * classes: values per output row (0: taken from the first batch). The bar
 * is labelled `label` and shown when `progress`. */
nnq_status cli_eval_top1(const nnq_dataset *d, int64_t batch, bool fixed_batch, int64_t classes,
                         cli_eval_run_fn run, void *ctx, const char *label, bool progress,
                         cli_eval_result *r);

/* The same for graph g on the float executor; *top1 in [0, 1]. */
nnq_status cli_eval_graph(const nnq_graph *g, const nnq_dataset *d, int64_t batch, int threads,
                          const char *label, bool progress, double *top1);

#endif
