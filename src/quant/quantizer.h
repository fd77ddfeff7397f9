/* The (s, z, b) quantizer: configuration, parameters per tensor or per
 * channel, and how parameters follow from a real range [lo, hi].
 * Element arithmetic (rounding rule: half to even) is in core/qmath.h.
 *
 * Range → parameters:
 *   symmetric:  z = 0, s = max(|lo|, |hi|) / qmax   (signed: qmax = 2^(b-1)-1,
 *               unsigned: qmax = 2^b - 1, for tensors known to be >= 0);
 *   asymmetric: nudged so that 0.0 is exact: lo' = min(lo, 0), hi' = max(hi, 0),
 *               s = (hi' - lo') / (qmax - qmin), z = clamp(round(qmin - lo'/s), qmin, qmax).
 * A zero-width range (all-zero tensor or channel) gets s = 1, z as above:
 * every value quantizes to z, i.e. exactly 0.0. So does a range too narrow
 * for a normal float scale (s < FLT_MIN). NaN and infinite ends count as
 * 0: every (s, z) is finite, s > 0, and z lies on the grid. */
#ifndef NNQ_QUANT_QUANTIZER_H
#define NNQ_QUANT_QUANTIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

typedef struct nnq_qconfig {
    int bits;         /* 2..16 */
    bool symmetric;   /* z = 0 */
    bool is_signed;   /* signed grid [-2^(b-1), 2^(b-1)-1], else [0, 2^b-1] */
    bool narrow;      /* signed only: drop -2^(b-1) (e.g. [-127, 127]) */
    bool per_channel; /* one (s, z) per slice along `axis` */
} nnq_qconfig;

typedef struct nnq_quantizer {
    nnq_qconfig cfg;
    int axis;          /* channel axis when per_channel, else -1 */
    int n;             /* number of (s, z) pairs: channels, or 1 */
    int32_t qmin, qmax;
    float *scale;      /* [n] */
    int32_t *zero_point; /* [n] */
} nnq_quantizer;

/* Check a configuration (bits in range, narrow only when signed). */
nnq_status nnq_qconfig_check(const nnq_qconfig *c);

/* Allocate n pairs (s = 1, z = 0 until a range is set). axis is ignored
 * (-1) unless c->per_channel. */
nnq_status nnq_quantizer_init(nnq_quantizer *q, const nnq_qconfig *c, int axis, int n);
void nnq_quantizer_free(nnq_quantizer *q);
nnq_status nnq_quantizer_copy(nnq_quantizer *dst, const nnq_quantizer *src);

/* Parameters of pair c from the real range [lo, hi] (rules above). */
void nnq_quantizer_set_range(nnq_quantizer *q, int c, float lo, float hi);
/* The real range pair c represents: [s (qmin - z), s (qmax - z)]. */
void nnq_quantizer_get_range(const nnq_quantizer *q, int c, float *lo, float *hi);

/* Fake-quantize x, laid out [outer, n, inner] with pair c applying to the
 * middle index (per-tensor: n = 1), into y (may equal x). */
void nnq_quantizer_apply(const nnq_quantizer *q, const float *x, float *y, int64_t outer,
                         int64_t inner);
/* Integers instead: q_out[i] = clamp(round(x/s) + z, qmin, qmax). */
void nnq_quantizer_quantize(const nnq_quantizer *q, const float *x, int32_t *q_out,
                            int64_t outer, int64_t inner);

/* Mean squared error of fake-quantizing n values with range [lo, hi]
 * under configuration c (one pair); for range searches. Non-finite values
 * are left out (none finite: 0). */
double nnq_qerror_mse(const nnq_qconfig *c, const float *x, int64_t n, int64_t stride,
                      float lo, float hi);

#endif
