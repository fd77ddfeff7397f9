#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool nnq_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

int64_t nnq_shape_numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    if (rank < 0) return -1; /* rank unknown */
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

int64_t nnq_tensor_numel(const nnq_tensor *t) { return nnq_shape_numel(t->rank, t->dims); }

nnq_status nnq_tensor_nbytes(const nnq_tensor *t, size_t *out) {
    int64_t n = nnq_tensor_numel(t);
    size_t es = nnq_dtype_size(t->dtype);
    *out = 0;
    if (n < 0) return nnq_fail(NNQ_ERR_LIMIT, "tensor size unknown or overflows");
    if (es == 0) return nnq_fail(NNQ_ERR_UNSUPPORTED, "dtype %s has no fixed size", nnq_dtype_name(t->dtype));
    if (!nnq_mul_size((size_t)n, es, out) || *out > NNQ_MAX_TENSOR_BYTES)
        return nnq_fail(NNQ_ERR_LIMIT, "tensor of %lld elements exceeds the %zu-byte limit",
                        (long long)n, (size_t)NNQ_MAX_TENSOR_BYTES);
    return NNQ_OK;
}

nnq_status nnq_tensor_set_shape(nnq_tensor *t, nnq_dtype dtype, int rank, const int64_t *dims) {
    if (rank < 0 || rank > NNQ_MAX_RANK)
        return nnq_fail(NNQ_ERR_LIMIT, "rank %d exceeds the maximum %d", rank, NNQ_MAX_RANK);
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    for (int i = rank; i < NNQ_MAX_RANK; i++) t->dims[i] = 0;
    return NNQ_OK;
}

nnq_status nnq_tensor_alloc(nnq_tensor *t, nnq_dtype dtype, int rank, const int64_t *dims) {
    size_t nbytes;
    NNQ_TRY(nnq_tensor_set_shape(t, dtype, rank, dims));
    NNQ_TRY(nnq_tensor_nbytes(t, &nbytes));
    t->data = calloc(nbytes ? nbytes : 1, 1);
    if (!t->data) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes", nbytes);
    t->owns = true;
    return NNQ_OK;
}

nnq_status nnq_tensor_clone(nnq_tensor *dst, const nnq_tensor *src) {
    size_t nbytes;
    *dst = *src;
    dst->data = NULL;
    dst->owns = false;
    if (!src->data) return NNQ_OK;
    NNQ_TRY(nnq_tensor_nbytes(src, &nbytes));
    dst->data = malloc(nbytes ? nbytes : 1);
    if (!dst->data) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes", nbytes);
    memcpy(dst->data, src->data, nbytes);
    dst->owns = true;
    return NNQ_OK;
}

void nnq_tensor_release(nnq_tensor *t) {
    if (t->owns) free(t->data);
    t->data = NULL;
    t->owns = false;
}

bool nnq_shape_equal(const nnq_tensor *a, const nnq_tensor *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

const char *nnq_shape_str(const nnq_tensor *t, char *buf, size_t cap) {
    size_t used = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    if (t->rank == 0) {
        snprintf(buf, cap, "scalar");
        return buf;
    }
    for (int i = 0; i < t->rank && used < cap; i++) {
        int w = t->dims[i] < 0 ? snprintf(buf + used, cap - used, "%s?", i ? "x" : "")
                               : snprintf(buf + used, cap - used, "%s%lld", i ? "x" : "",
                                          (long long)t->dims[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

int64_t nnq_tensor_get_int(const nnq_tensor *t, int64_t i) {
    switch (t->dtype) {
    case NNQ_DT_INT64: return ((const int64_t *)t->data)[i];
    case NNQ_DT_INT32: return ((const int32_t *)t->data)[i];
    case NNQ_DT_INT16: return ((const int16_t *)t->data)[i];
    case NNQ_DT_INT8: return ((const int8_t *)t->data)[i];
    case NNQ_DT_UINT8: case NNQ_DT_BOOL: return ((const uint8_t *)t->data)[i];
    case NNQ_DT_UINT16: return ((const uint16_t *)t->data)[i];
    case NNQ_DT_UINT32: return ((const uint32_t *)t->data)[i];
    case NNQ_DT_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case NNQ_DT_FLOAT: return (int64_t)((const float *)t->data)[i];
    case NNQ_DT_DOUBLE: return (int64_t)((const double *)t->data)[i];
    default: return 0;
    }
}

double nnq_tensor_get_float(const nnq_tensor *t, int64_t i) {
    switch (t->dtype) {
    case NNQ_DT_FLOAT: return ((const float *)t->data)[i];
    case NNQ_DT_DOUBLE: return ((const double *)t->data)[i];
    case NNQ_DT_FLOAT16: return nnq_half_to_float(((const uint16_t *)t->data)[i]);
    default: return (double)nnq_tensor_get_int(t, i);
    }
}

float nnq_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t nnq_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}
