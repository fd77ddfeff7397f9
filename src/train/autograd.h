/* Reverse-mode differentiation over a graph, for training.
 *
 * A training forward runs every node with a->training set (BN uses batch
 * statistics and updates its running statistics in place), keeps every
 * value alive and gives each node the saved buffer it asked for. The
 * backward then runs the nodes in reverse topological order, feeding each
 * op dL/d(outputs) and buffers to ACCUMULATE dL/d(inputs) into.
 *
 * Memory, planned once per input shape and reused by every step:
 *  - forward arena: every intermediate value, no reuse (backward reads them);
 *  - saved arena:   each node's saved_size() bytes;
 *  - gradient arena: the gradient of every value on a path from a parameter
 *    to a graph output, first-fit placed by lifetime (from the backward of
 *    its last reader to the backward of its producer), zeroed when its
 *    lifetime starts;
 *  - parameter gradients live in the nnq_params block (zeroed by the caller,
 *    nnq_params_zero_grad, so several backwards can accumulate);
 *  - one scratch buffer, the largest any op asks for in training.
 * A new input shape (e.g. a last, smaller batch) re-plans; buffers only
 * grow.
 *
 * Every node between a parameter and a graph output needs a backward;
 * create fails naming the op and node otherwise. */
#ifndef NNQ_TRAIN_AUTOGRAD_H
#define NNQ_TRAIN_AUTOGRAD_H

#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"
#include "train/params.h"

typedef struct nnq_autograd nnq_autograd;

/* g must be prepared (nnq_graph_prepare) and outlive the autograd; ps
 * lists its parameters. threads 0: all cores. */
nnq_status nnq_autograd_create(nnq_graph *g, nnq_params *ps, int threads, nnq_autograd **out);
void nnq_autograd_free(nnq_autograd *ag);

/* Training forward; inputs[i] feeds g->inputs[i]. Zeroes the output
 * gradient buffers. */
nnq_status nnq_autograd_forward(nnq_autograd *ag, const nnq_tensor *inputs);
/* Graph output i after a forward. */
const nnq_tensor *nnq_autograd_output(const nnq_autograd *ag, int i);
/* Where the caller writes dL/d(output i) before backward (zero if unused). */
nnq_tensor *nnq_autograd_output_grad(nnq_autograd *ag, int i);
/* Accumulate dL/d(parameter) into the parameters' gradients. Once per
 * forward: gradient buffers are reused as the backward goes. */
nnq_status nnq_autograd_backward(nnq_autograd *ag);

/* Any value after a forward (all are kept). */
const nnq_tensor *nnq_autograd_value(const nnq_autograd *ag, int value);
/* Bytes of the planned buffers (forward, saved, gradient, scratch). */
size_t nnq_autograd_bytes(const nnq_autograd *ag);

#endif
