/* ONNX model I/O through protobuf-c (C code generated at build time from
 * Debian's /usr/include/onnx/onnx.proto).
 *
 * Import accepts default-domain opsets 1..17 (other domains are recorded
 * and their nodes kept; prepare rejects ops it does not know). A model
 * below opset 11 is upgraded right after import to opset-11 form
 * (onnx_upgrade.c: old attributes become inputs or initializers, old
 * broadcasting becomes numpy's) and its default opset set to 11, so ops
 * and export only ever see opset 11 and later; initializers
 * stored as raw_data or typed fields; external data, string tensors and
 * GRAPH / SPARSE / TENSORS attributes are rejected with a clear error.
 * Every size read from the file is checked against core/limits.h and the
 * bytes actually present before anything is allocated.
 *
 * Mapping to the IR:
 *  - values are created in a fixed order (initializers, graph inputs, node
 *    inputs/outputs in node order, graph outputs), so import -> export ->
 *    import gives the same value indices;
 *  - a graph input that is also an initializer becomes an initializer only
 *    (not in g->inputs) and is exported as an initializer only (IR >= 4);
 *  - a dim_param gives dims[i] = -1 and dim_params[i] = name; an unknown,
 *    unnamed dim is -1; a missing shape gives rank -1; value_info entries
 *    become dtype/shape hints on intermediate values (entries naming
 *    nothing the graph uses are dropped);
 *  - an empty input/output name (omitted optional) is index -1;
 *  - model ir_version, opset imports, producer name/version and the model
 *    doc_string are kept in nnq_graph.
 *
 * Export writes atomically (temp file + rename) and deterministically:
 * initializers as little-endian raw_data in value order; graph inputs and
 * outputs with type and shape (rank -1: no shape); value_info for every
 * other value used by a node whose dtype is known; nodes and attributes
 * as stored. ir_version is the graph's, raised if needed to the one the
 * default opset requires (opset 11 -> 6, 12..14 -> 7, 15..18 -> 8); a
 * graph without a default-domain opset is an export error (INVALID).
 * import -> export -> import preserves nodes, attributes, inputs/outputs
 * and every tensor bit-exactly (names of tensors inside attributes are
 * not kept). */
#ifndef NNQ_ONNX_ONNX_IO_H
#define NNQ_ONNX_ONNX_IO_H

#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

#define NNQ_ONNX_MIN_OPSET 1
#define NNQ_ONNX_MAX_OPSET 17
/* Models below this opset are rewritten into its form on import. */
#define NNQ_ONNX_UPGRADE_OPSET 11

nnq_status nnq_onnx_load(const char *path, nnq_graph **out);
/* `what` names the source in error messages (e.g. the file name). */
nnq_status nnq_onnx_load_bytes(const unsigned char *buf, size_t len, const char *what,
                               nnq_graph **out);

nnq_status nnq_onnx_save(const nnq_graph *g, const char *path);
/* Serialise to a malloc'd buffer. */
nnq_status nnq_onnx_save_bytes(const nnq_graph *g, unsigned char **buf, size_t *len);

/* A serialized TensorProto file (the ONNX test layout's input_0.pb,
 * output_0.pb). *name gets a malloc'd copy of the tensor's name (may be ""),
 * pass NULL to ignore it. */
nnq_status nnq_onnx_load_tensor(const char *path, nnq_tensor *out, char **name);
nnq_status nnq_onnx_save_tensor(const nnq_tensor *t, const char *name, const char *path);

#endif
