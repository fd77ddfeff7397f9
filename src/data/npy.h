/* NumPy .npy files (format versions 1.0-3.0, little-endian, C order). */
#ifndef NNQ_DATA_NPY_H
#define NNQ_DATA_NPY_H

#include "core/status.h"
#include "core/tensor.h"

/* Supported dtypes, read as the matching nnq dtype (no conversion; <f8 is
 * NNQ_DT_DOUBLE): <f4 <f8 <f2 <i8 <i4 <i2 |i1 <u8 <u4 <u2 |u1 |b1.
 * Big-endian data, Fortran order and structured dtypes fail with
 * NNQ_ERR_UNSUPPORTED; a data section shorter or longer than the shape
 * says fails with NNQ_ERR_PARSE. The tensor owns its data. `what` names
 * the buffer in messages. */
nnq_status nnq_npy_read(const char *path, nnq_tensor *out);
nnq_status nnq_npy_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out);
/* Atomic write, format version 1.0, header padded so the data starts at a
 * multiple of 64 bytes. Any dtype listed above. */
nnq_status nnq_npy_write(const char *path, const nnq_tensor *t);

#endif
