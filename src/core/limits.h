/* Limits on sizes read from files: checked before any allocation, so a
 * small malformed file can never make nnq allocate gigabytes. */
#ifndef NNQ_CORE_LIMITS_H
#define NNQ_CORE_LIMITS_H

#define NNQ_MAX_RANK 8
#define NNQ_MAX_NAME 4096                      /* bytes in a value/node name */
#define NNQ_MAX_NODES (1 << 20)
#define NNQ_MAX_VALUES (1 << 21)
#define NNQ_MAX_TENSOR_BYTES ((size_t)4 << 30) /* one tensor: 4 GiB */
#define NNQ_MAX_MODEL_BYTES ((size_t)2 << 30)  /* protobuf's own 2 GiB cap */

/* Constant folding (nnq_graph_prepare) makes tensors the file did not
 * hold: all folded outputs of a graph together may take at most
 * NNQ_FOLD_FREE_BYTES + NNQ_FOLD_GROWTH x the bytes of the graph's own
 * constants. Real models fold shapes and dequantized weights (4x their
 * int8 bytes); a 100-byte file of Pads must not unfold into gigabytes. */
#define NNQ_FOLD_FREE_BYTES ((size_t)16 << 20)
#define NNQ_FOLD_GROWTH 8

#endif
