#include "core/dtype.h"

size_t nnq_dtype_size(nnq_dtype t) {
    switch (t) {
    case NNQ_DT_UINT8: case NNQ_DT_INT8: case NNQ_DT_BOOL: return 1;
    case NNQ_DT_UINT16: case NNQ_DT_INT16: case NNQ_DT_FLOAT16: return 2;
    case NNQ_DT_FLOAT: case NNQ_DT_INT32: case NNQ_DT_UINT32: return 4;
    case NNQ_DT_INT64: case NNQ_DT_DOUBLE: case NNQ_DT_UINT64: return 8;
    default: return 0;
    }
}

const char *nnq_dtype_name(nnq_dtype t) {
    switch (t) {
    case NNQ_DT_FLOAT: return "float32";
    case NNQ_DT_UINT8: return "uint8";
    case NNQ_DT_INT8: return "int8";
    case NNQ_DT_UINT16: return "uint16";
    case NNQ_DT_INT16: return "int16";
    case NNQ_DT_INT32: return "int32";
    case NNQ_DT_INT64: return "int64";
    case NNQ_DT_STRING: return "string";
    case NNQ_DT_BOOL: return "bool";
    case NNQ_DT_FLOAT16: return "float16";
    case NNQ_DT_DOUBLE: return "float64";
    case NNQ_DT_UINT32: return "uint32";
    case NNQ_DT_UINT64: return "uint64";
    default: return "undefined";
    }
}

int nnq_dtype_is_integer(nnq_dtype t) {
    switch (t) {
    case NNQ_DT_UINT8: case NNQ_DT_INT8: case NNQ_DT_UINT16: case NNQ_DT_INT16:
    case NNQ_DT_INT32: case NNQ_DT_INT64: case NNQ_DT_UINT32: case NNQ_DT_UINT64: return 1;
    default: return 0;
    }
}
