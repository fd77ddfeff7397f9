/* A dense row-major tensor. The same struct describes a shape only
 * (data == NULL) during shape inference, and a buffer at run time.
 * `owns` says whether nnq_tensor_release frees `data`. */
#ifndef NNQ_CORE_TENSOR_H
#define NNQ_CORE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "core/dtype.h"
#include "core/limits.h"
#include "core/status.h"

typedef struct nnq_tensor {
    nnq_dtype dtype;
    int rank;
    int64_t dims[NNQ_MAX_RANK]; /* -1: unknown (symbolic) dimension */
    void *data;
    bool owns;
} nnq_tensor;

/* Element count; -1 if a dim is unknown or the product overflows int64. */
int64_t nnq_shape_numel(int rank, const int64_t *dims);
int64_t nnq_tensor_numel(const nnq_tensor *t);
/* Bytes of data; 0 if unknown. Fails with NNQ_ERR_LIMIT on overflow. */
nnq_status nnq_tensor_nbytes(const nnq_tensor *t, size_t *out);

/* Set dtype and shape (data untouched). */
nnq_status nnq_tensor_set_shape(nnq_tensor *t, nnq_dtype dtype, int rank,
                                const int64_t *dims);
/* Set shape and allocate zeroed owned data. */
nnq_status nnq_tensor_alloc(nnq_tensor *t, nnq_dtype dtype, int rank,
                            const int64_t *dims);
/* Deep copy (data copied if present). */
nnq_status nnq_tensor_clone(nnq_tensor *dst, const nnq_tensor *src);
void nnq_tensor_release(nnq_tensor *t);

bool nnq_shape_equal(const nnq_tensor *a, const nnq_tensor *b);
/* "1x3x32x32" into buf; returns buf. */
const char *nnq_shape_str(const nnq_tensor *t, char *buf, size_t cap);

/* Checked size arithmetic: false on overflow. */
bool nnq_mul_size(size_t a, size_t b, size_t *out);

/* Typed accessors for the common case. */
static inline float *nnq_f32(const nnq_tensor *t) { return (float *)t->data; }
static inline int64_t *nnq_i64(const nnq_tensor *t) { return (int64_t *)t->data; }

/* Read element i of an integer tensor (int8..int64, uint8..uint64, bool)
 * as int64; used for shape-like inputs (Reshape shape, Pad pads, axes). */
int64_t nnq_tensor_get_int(const nnq_tensor *t, int64_t i);
/* Read element i of a float/double/float16 tensor as double. */
double nnq_tensor_get_float(const nnq_tensor *t, int64_t i);

/* IEEE half <-> float conversions (round to nearest even). */
float nnq_half_to_float(uint16_t h);
uint16_t nnq_float_to_half(float f);

#endif
