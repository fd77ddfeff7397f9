/* Element types. Values equal ONNX TensorProto.DataType so import and
 * export are a plain cast. */
#ifndef NNQ_CORE_DTYPE_H
#define NNQ_CORE_DTYPE_H

#include <stddef.h>

typedef enum nnq_dtype {
    NNQ_DT_UNDEFINED = 0,
    NNQ_DT_FLOAT = 1,
    NNQ_DT_UINT8 = 2,
    NNQ_DT_INT8 = 3,
    NNQ_DT_UINT16 = 4,
    NNQ_DT_INT16 = 5,
    NNQ_DT_INT32 = 6,
    NNQ_DT_INT64 = 7,
    NNQ_DT_STRING = 8,
    NNQ_DT_BOOL = 9,
    NNQ_DT_FLOAT16 = 10,
    NNQ_DT_DOUBLE = 11,
    NNQ_DT_UINT32 = 12,
    NNQ_DT_UINT64 = 13
} nnq_dtype;

/* Bytes per element; 0 for types nnq cannot hold (string, undefined). */
size_t nnq_dtype_size(nnq_dtype t);
const char *nnq_dtype_name(nnq_dtype t);
/* int8..int64, uint8..uint64 (not bool). */
int nnq_dtype_is_integer(nnq_dtype t);

#endif
