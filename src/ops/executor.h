/* The float executor: runs a prepared graph on concrete inputs.
 *
 * Lifecycle: nnq_graph_prepare (once per graph) → nnq_exec_create →
 * nnq_exec_run (any number of times; re-plans itself when the input shapes
 * change, e.g. a new batch size, and on every run when a graph input is an
 * integer tensor, which may carry a shape, axes or pads) → nnq_exec_output → nnq_exec_free.
 * Intermediate buffers come from one arena planned from value lifetimes;
 * with keep_all every value stays readable after a run (for calibration). */
#ifndef NNQ_OPS_EXECUTOR_H
#define NNQ_OPS_EXECUTOR_H

#include <stdbool.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

/* Topologically sort, verify structure, check every op is supported with a
 * valid arity (naming op and node otherwise), fold constant subgraphs
 * (Constant nodes and ops whose inputs are all constant: their outputs get
 * t.data), and check that shapes infer with symbolic dims set to 1.
 * Declared shapes of the graph's values are left as they are. */
nnq_status nnq_graph_prepare(nnq_graph *g);

/* Shape inference for concrete input shapes: input_shapes[i] gives the
 * dtype/rank/dims of g->inputs[i] (NULL: declared shapes, symbolic dims
 * taken as 1). Fills shapes[v] (n = g->n_values) with every value's dtype
 * and dims; shapes[v].data points at constant data where there is some
 * (not owned). */
nnq_status nnq_graph_infer_shapes(const nnq_graph *g, const nnq_tensor *input_shapes,
                                  nnq_tensor *shapes);

/* Images per run of a keep_all executor on g (one image [1, c, h, w] in)
 * so that the intermediates it keeps stay within `budget` bytes: at least
 * 1, at most max_images. */
nnq_status nnq_exec_images_per_run(const nnq_graph *g, int64_t c, int64_t h, int64_t w,
                                   size_t budget, int max_images, int *out);

typedef struct nnq_exec_options {
    int threads;   /* 0: all available cores */
    bool keep_all; /* keep every intermediate value after run (no reuse) */
} nnq_exec_options;

typedef struct nnq_exec nnq_exec;

/* The executor keeps a pointer to g: g must outlive it and not change. */
nnq_status nnq_exec_create(const nnq_graph *g, const nnq_exec_options *opt, nnq_exec **out);
void nnq_exec_free(nnq_exec *e);

/* inputs[i] feeds g->inputs[i] (dtype and rank must match; symbolic dims
 * take the given size, fixed dims must equal). */
nnq_status nnq_exec_run(nnq_exec *e, const nnq_tensor *inputs);

/* Run only as far as needed to compute `value`: the nodes up to its
 * producer, in sorted order (none for a graph input or a constant). Right
 * after, that value is readable with nnq_exec_value even without keep_all
 * (nothing that could reuse its space has run yet); graph outputs and other
 * intermediates are not. For caching one layer's inputs or outputs. */
nnq_status nnq_exec_run_until(nnq_exec *e, const nnq_tensor *inputs, int value);

/* Graph output i after a run; data valid until the next run. */
const nnq_tensor *nnq_exec_output(const nnq_exec *e, int i);
/* Any value by index after a run. Graph inputs, constants and outputs are
 * always valid; intermediates only with keep_all (otherwise their arena
 * space has been reused by later values). */
const nnq_tensor *nnq_exec_value(const nnq_exec *e, int value);

#endif
