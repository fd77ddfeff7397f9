/* IDX files (MNIST format), optionally gzip-compressed, read with zlib. */
#ifndef NNQ_DATA_IDX_H
#define NNQ_DATA_IDX_H

#include "core/status.h"
#include "core/tensor.h"

/* Reads ubyte IDX (type 0x08) of rank 1..4 into a UINT8 tensor it owns.
 * Truncated data, bad magic or a size above the limits fail clearly. */
nnq_status nnq_idx_read(const char *path, nnq_tensor *out);
nnq_status nnq_idx_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out);

#endif
