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

#endif
