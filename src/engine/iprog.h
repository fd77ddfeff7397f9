/* The integer program: a quantized ONNX graph lowered to the engine's
 * integer operators, and its two executors. Design: docs/engine.md.
 *
 *   nnq_iprog_lower   QDQ graph (nnq's export, ONNX Runtime's QDQ format) or
 *                     QOperator graph (QLinearConv, ConvInteger, ...) ->
 *                     program: uint8 tensors with a scale and zero point,
 *                     int8 / packed int4 weights, int32 biases, per-channel
 *                     fixed-point multipliers, clamps. Float appears only
 *                     where the input is quantized, where the logits are
 *                     dequantized, and around nodes that cannot be lowered
 *                     (each named in a note and run by nnq's float op).
 *   nnq_iexec (INT)   runs the program on the integer kernels (AVX2 when
 *                     the CPU has it; NNQ_KERNELS=ref forces the reference).
 *   nnq_iexec (SIM)   runs the SAME program, but every convolution and
 *                     matrix product with nnq's float ops on integer-valued
 *                     floats (exact: checked bound, else double). The two
 *                     give bit-identical outputs: what you simulate is what
 *                     you run.
 *
 * A program is self-contained (it keeps no pointer to the graph) and can be
 * saved to a compact binary file (.nnqi: packed nibbles for <= 4-bit
 * weights, CRC-32) and loaded back. */
#ifndef NNQ_ENGINE_IPROG_H
#define NNQ_ENGINE_IPROG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "ir/graph.h"

typedef struct nnq_iprog nnq_iprog;

typedef enum nnq_engine_mode {
    NNQ_ENGINE_INT = 0, /* the integer kernels */
    NNQ_ENGINE_SIM = 1  /* the float emulation of the same program */
} nnq_engine_mode;

/* Make a loaded graph ready for lowering: nnq_graph_prepare (sort, verify,
 * fold constants, check shapes) when every op is one of nnq's float ops;
 * a graph with QOperator ops (QLinearConv, QLinearMatMul, ConvInteger,
 * MatMulInteger), which the float executor does not run, is only sorted
 * and verified. */
nnq_status nnq_iprog_prepare_graph(nnq_graph *g);

/* Lower g (prepared by the function above). Every QDQ pattern the engine
 * knows becomes integer operators; any other node runs in float, named in
 * a note. Fails only when the graph cannot run at all (e.g. a weight that
 * is not constant for a QOperator node). */
nnq_status nnq_iprog_lower(const nnq_graph *g, nnq_iprog **out);
void nnq_iprog_free(nnq_iprog *p);

/* Notes of the lowering, one line each: "node 'X' (HardSwish) runs in
 * float: <why>". */
int nnq_iprog_note_count(const nnq_iprog *p);
const char *nnq_iprog_note(const nnq_iprog *p, int i);
/* Nodes run by a float op (0 for a fully integer program). */
int nnq_iprog_float_nodes(const nnq_iprog *p);

/* Graph inputs and outputs: name, ONNX dtype and shape, dims[0] = -1 when
 * it is the batch (any size at run time). */
int nnq_iprog_input_count(const nnq_iprog *p);
int nnq_iprog_output_count(const nnq_iprog *p);
const char *nnq_iprog_input_name(const nnq_iprog *p, int i);
const char *nnq_iprog_output_name(const nnq_iprog *p, int i);
void nnq_iprog_input_shape(const nnq_iprog *p, int i, nnq_tensor *shape);
void nnq_iprog_output_shape(const nnq_iprog *p, int i, nnq_tensor *shape);

/* Counts for reports. */
typedef struct nnq_iprog_stats {
    int ops;             /* operators */
    int linear;          /* convolutions and matrix products */
    int linear_packed;   /* ... of them with <= 4-bit weights (nibbles) */
    int linear_ref;      /* ... on the generic reference path (weight zero points, uint8 weights) */
    int float_nodes;     /* float fallbacks */
    size_t weight_bytes; /* weights as stored in a .nnqi (nibbles for <= 4 bits) */
    int64_t macs;        /* multiply-accumulates per image of the linear operators */
} nnq_iprog_stats;
void nnq_iprog_get_stats(const nnq_iprog *p, nnq_iprog_stats *s);

/* ---- .nnqi files (iprog_io.c) ---- */

/* True when the first bytes are a .nnqi file's magic (8 bytes suffice). */
bool nnq_iprog_sniff(const void *head, size_t n);
/* Written atomically. Fails (NNQ_ERR_UNSUPPORTED) for a program with float
 * fallback nodes: a .nnqi holds integer operators only. */
nnq_status nnq_iprog_save(const nnq_iprog *p, const char *path);
/* Every count and size is checked against the bytes present and nnq's
 * limits before anything is allocated; a truncated or corrupted file
 * (CRC-32) is refused with a message naming the file. */
nnq_status nnq_iprog_load(const char *path, nnq_iprog **out);
nnq_status nnq_iprog_from_bytes(const unsigned char *data, size_t len, const char *what,
                                nnq_iprog **out);

/* ---- Execution (iprog_run.c) ---- */

typedef struct nnq_iexec nnq_iexec;

/* Creates every operator (INT: packs weights; SIM: float weights and op
 * calls). threads: 0 for omp_get_max_threads(). p must outlive e. */
nnq_status nnq_iexec_create(const nnq_iprog *p, nnq_engine_mode mode, int threads,
                            nnq_iexec **out);
void nnq_iexec_free(nnq_iexec *e);
/* inputs[i] feeds input i: its ONNX dtype, its shape (any size on the
 * batch dim). Re-plans buffers when the batch changes. A batch of INT
 * mode may be split into sub-batches run by one thread each (see
 * iprog_run.c); the outputs are the same as one whole-batch run's. */
nnq_status nnq_iexec_run(nnq_iexec *e, const nnq_tensor *inputs);
/* Threads that ran sub-batches in the last run (0: not split). */
int nnq_iexec_last_split(const nnq_iexec *e);
/* Output i of the last run (ONNX dtype); valid until the next run. */
const nnq_tensor *nnq_iexec_output(const nnq_iexec *e, int i);
/* Layers the simulation computes in double because float32 could not hold
 * their accumulators exactly (0 in INT mode). */
int nnq_iexec_double_layers(const nnq_iexec *e);

/* ---- Intermediate tensors (iprog_run.c): what each layer computed ----
 *
 * Program tensors keep the name of the graph value they hold. A layer
 * lowered with its QuantizeLinear holds that Q's output (e.g. "conv1_out_
 * quantized" in nnq's QDQ export; the DequantizeLinear after it reads the
 * same bytes and has no tensor of its own); a node run in float, its own
 * output; a view, the view's output. */

/* Index of the program tensor named `name`, or -1. */
int nnq_iprog_find_tensor(const nnq_iprog *p, const char *name);
/* True when the graph node named `node` runs by its float op (a fallback
 * named in the notes), false when it was lowered or is unknown. */
bool nnq_iprog_node_in_float(const nnq_iprog *p, const char *node);

/* Run as nnq_iexec_run and also copy out the n tensors named in names[]
 * (any tensor, though the arena reuses its bytes later: each is copied
 * right after the operator that writes it) into outs[k] as float32 at this
 * batch, allocated here (release with nnq_tensor_release): a quantized
 * tensor dequantized with its scale and zero point, s (q - z) in float as
 * DequantizeLinear does; an int32 accumulator or a raw integer input
 * converted; a float tensor copied. A name the program has no tensor for
 * fails before anything runs, naming it. Same on both executors. */
nnq_status nnq_iexec_run_collect(nnq_iexec *e, const nnq_tensor *inputs, int n,
                                 const char *const *names, nnq_tensor *outs);

#endif
