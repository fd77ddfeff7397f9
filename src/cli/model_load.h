/* Loading a model for a command: import, then prepare (topological order,
 * op support, constant folding, shape checks), with every error message
 * naming the model file. */
#ifndef NNQ_CLI_MODEL_LOAD_H
#define NNQ_CLI_MODEL_LOAD_H

#include <stddef.h>

#include "core/status.h"
#include "ir/graph.h"

nnq_status cli_load_model(const char *path, nnq_graph **out);

/* "[N, 1, 32, 32]": symbolic dims by name, unknown ones as "?". */
const char *cli_value_shape_str(const nnq_value *v, char *buf, size_t cap);

#endif
