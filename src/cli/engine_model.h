/* A model opened for one of nnq's engines (eval, run, bench):
 *   float  the graph on the float executor, exactly as ONNX defines it
 *          (QuantizeLinear/DequantizeLinear in float for a QDQ model);
 *   int    the graph lowered to an integer program, on the kernels;
 *   sim    the same program with nnq's float ops (bit-identical to int).
 * MODEL is an ONNX file or a lowered program (.nnqi, told by its magic
 * bytes; int and sim only). Lowering notes (nodes left in float) go to
 * stderr unless quiet. */
#ifndef NNQ_CLI_ENGINE_MODEL_H
#define NNQ_CLI_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/iprog.h"
#include "ir/graph.h"
#include "ops/executor.h"

typedef enum cli_engine { CLI_ENGINE_FLOAT, CLI_ENGINE_INT, CLI_ENGINE_SIM } cli_engine;

/* "float" | "int" | "sim"; false for anything else. */
bool cli_engine_parse(const char *s, cli_engine *out);
const char *cli_engine_name(cli_engine e);

typedef struct cli_model {
    const char *path;
    cli_engine engine;
    bool is_nnqi;
    nnq_graph *g;   /* the ONNX graph (NULL for a .nnqi) */
    nnq_iprog *p;   /* int / sim */
    nnq_exec *fx;
    nnq_iexec *ix;
    int n_inputs, n_outputs;
    nnq_value in;   /* input 0: name, dtype, shape (-1 or a dim_param on the batch) */
    const char *out_name;
    size_t file_bytes;
} cli_model;

/* Load, prepare, lower if needed, create the executor (threads: 0 = all). */
nnq_status cli_model_open(const char *path, cli_engine engine, int threads, bool quiet,
                          cli_model *m);
void cli_model_close(cli_model *m);
/* Output 0's dtype and shape for input 0 of shape x (batch in x.dims[0]). */
nnq_status cli_model_output_shape(const cli_model *m, const nnq_tensor *x, nnq_tensor *y);
/* Run input 0 = x; *y: output 0, valid until the next run. */
nnq_status cli_model_run(cli_model *m, const nnq_tensor *x, const nnq_tensor **y);

#endif
