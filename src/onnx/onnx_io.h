/* ONNX model I/O through protobuf-c (C code generated at build time from
 * Debian's /usr/include/onnx/onnx.proto).
 *
 * Import accepts default-domain opsets 11..17; initializers stored as
 * raw_data or typed fields; external data is rejected with a clear error.
 * Export writes atomically (temp file + rename). import → export → import
 * preserves nodes, attributes, inputs/outputs and every tensor bit-exactly. */
#ifndef NNQ_ONNX_ONNX_IO_H
#define NNQ_ONNX_ONNX_IO_H

#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

#define NNQ_ONNX_MIN_OPSET 11
#define NNQ_ONNX_MAX_OPSET 17

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
