/* IDX files (MNIST format), optionally gzip-compressed, read with zlib. */
#ifndef NNQ_DATA_IDX_H
#define NNQ_DATA_IDX_H

#include "core/status.h"
#include "core/tensor.h"

/* Reads ubyte IDX (type 0x08) of rank 1..4 into a UINT8 tensor it owns.
 * Truncated data, trailing bytes, bad magic, other type codes, a size above
 * NNQ_MAX_TENSOR_BYTES or a corrupt gzip stream fail with a message.
 * nnq_idx_read takes a gzip or plain file; nnq_idx_read_bytes takes
 * uncompressed IDX bytes, `what` naming them in messages. */
nnq_status nnq_idx_read(const char *path, nnq_tensor *out);
nnq_status nnq_idx_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out);

#endif
