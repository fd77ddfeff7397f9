/* NumPy .npy files (format versions 1.0-3.0, little-endian, C order). */
#ifndef NNQ_DATA_NPY_H
#define NNQ_DATA_NPY_H

#include "core/status.h"
#include "core/tensor.h"

/* Supported dtypes: <f4 <f8 (converted to float32 only if convert_f64),
 * <i8 <i4 |u1 |i1 |b1. The tensor owns its data. */
nnq_status nnq_npy_read(const char *path, nnq_tensor *out);
nnq_status nnq_npy_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out);
/* Atomic write. */
nnq_status nnq_npy_write(const char *path, const nnq_tensor *t);

#endif
