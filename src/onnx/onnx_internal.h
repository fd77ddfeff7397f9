/* Helpers shared by the ONNX importer, exporter and tensor-file code.
 * Not part of the public API. */
#ifndef NNQ_ONNX_INTERNAL_H
#define NNQ_ONNX_INTERNAL_H

#include <stddef.h>

#include "onnx.pb-c.h"

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

/* raw_data is little-endian on the wire; nnq copies it straight into
 * memory, so a big-endian host would need byte swapping we do not have. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nnq's ONNX I/O assumes a little-endian host"
#endif

/* malloc'd copy of s (NULL read as ""); NULL only when out of memory. */
char *nnq_onnx_strdup(const char *s);

/* Convert a TensorProto into an owned nnq tensor. Every size is checked
 * against the data actually present before anything is allocated.
 * `what` names the tensor in messages ("initializer 'W'"). */
nnq_status nnq_onnx_tensor_from_proto(const Onnx__TensorProto *p, nnq_tensor *out,
                                      const char *what);

/* Fill *p (initialised here) so that it describes t with raw_data. The
 * proto points into t (dims and data); nothing is allocated, so *p must
 * not outlive t and must not be freed with protobuf-c. */
nnq_status nnq_onnx_tensor_to_proto(const nnq_tensor *t, const char *name,
                                    Onnx__TensorProto *p, const char *what);

/* Rewrite a graph whose default-domain opset is below
 * NNQ_ONNX_UPGRADE_OPSET into opset-11 form and set that opset (a no-op
 * from opset 11 on). Legacy attributes that opset 11 cannot express fail
 * with NNQ_ERR_UNSUPPORTED naming op, node and attribute; after a failure
 * the graph is half rewritten and only fit to be freed. (onnx_upgrade.c) */
nnq_status nnq_onnx_upgrade(nnq_graph *g);

#endif
