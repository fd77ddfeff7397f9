/* Leaving the simulation: an ONNX QDQ model, and AIMET-style encodings.
 *
 * QDQ form (opset 13 or the model's own if higher), one rewrite per
 * FakeQuant:
 *   weight   → int8 initializer (the integers q) → DequantizeLinear(scale,
 *              zero point, axis for per-channel) → the layer;
 *   bias     → int32 initializer → DequantizeLinear(s_x * s_w, 0, axis 0);
 *   activation, b = 8 → QuantizeLinear → DequantizeLinear (uint8 storage for
 *              an unsigned grid, int8 for a signed one);
 *   activation, b < 8 → Clip(x, s (qmin - z), s (qmax - z)) → QuantizeLinear
 *              → DequantizeLinear: the Clip keeps the integers on the b-bit
 *              grid inside the 8-bit storage type, exactly as the simulation
 *              clamps (the clamped value quantizes to qmin / qmax);
 *   disabled → nothing (the tensor stays float).
 * Weights below 8 bits are stored in int8 with values on their b-bit grid.
 * Every quantized tensor's bit-width is recorded in the model's metadata as
 * "nnq.bits:<tensor>" = "<b>". Bit-widths above 8 cannot be stored in
 * opset-13 QDQ: export fails naming the tensor (the simulation and the
 * encodings support them). */
#ifndef NNQ_QUANT_QDQ_EXPORT_H
#define NNQ_QUANT_QDQ_EXPORT_H

#include "core/status.h"
#include "ir/graph.h"
#include "quant/qsim.h"

/* A new graph (caller frees) in QDQ form, ready for nnq_onnx_save. */
nnq_status nnq_qsim_to_qdq(const nnq_qsim *s, nnq_graph **out);

/* The quantizer parameters as JSON in the AIMET encodings layout:
 * {"version", "activation_encodings": {tensor: [enc]}, "param_encodings":
 * {weight: [enc per channel]}} with enc = {bitwidth, dtype "int",
 * is_symmetric "True"/"False", min, max, scale, offset}; offset = qmin - z
 * (so min = scale * offset), the convention of that format. Biases (32-bit,
 * derived) are not listed. Written atomically. */
nnq_status nnq_qsim_write_encodings(const nnq_qsim *s, const char *path);

/* The name a quantized tensor has in the float model (and in the QDQ
 * export): the weight's, or the activation's. */
const char *nnq_qsim_tensor_name(const nnq_qsim *s, int quant);

#endif
