/* The (s, z, b) quantizer: configuration, parameters per tensor or per
 * channel, and how parameters follow from a real range [lo, hi].
 * Element arithmetic (rounding rule: half to even) is in core/qmath.h.
 *
 * Range → parameters, with a = max(|lo|, |hi|):
 *   symmetric:  z = 0, s = a / d, where d depends on the convention
 *               (nnq_qconfig.sym_range) for a signed grid that is not narrow:
 *                 restricted  d = qmax = 2^(b-1) - 1: [-a, a] maps into
 *                             [-qmax, qmax] and qmin is never reached (AIMET,
 *                             TensorFlow Lite);
 *                 full        d = (qmax - qmin) / 2 = 2^(b-1) - 1/2: the whole
 *                             grid spans [-a - s/2, a - s/2], so both ends
 *                             round to within s/2 (-a to qmin, +a clamps to
 *                             qmax): a (2^b - 1)/(2^b - 2) times finer step
 *                             (7.5 vs 7 at 4 bits) (PyTorch's symmetric
 *                             observers), but a positive maximum is clipped
 *                             by s/2;
 *                 tight       the smallest s whose grid [qmin s, qmax s]
 *                             holds [lo, hi]: s = max(-lo / -qmin, hi / qmax)
 *                             (lo <= 0 <= hi): as restricted when the
 *                             largest magnitude is positive, a / 2^(b-1)
 *                             (8 at 4 bits, qmin reached exactly) when it
 *                             is negative; never clips;
 *               a narrow signed grid has d = qmax under all three, and so
 *               has an unsigned one (d = 2^b - 1, for tensors known to be
 *               >= 0);
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

/* How a symmetric signed quantizer divides a = max|v| (rules above). */
typedef enum nnq_sym_range {
    NNQ_SYM_RESTRICTED, /* s = a / qmax */
    NNQ_SYM_FULL,       /* s = a / ((qmax - qmin) / 2) */
    NNQ_SYM_TIGHT       /* s = max(-lo / -qmin, hi / qmax) */
} nnq_sym_range;

typedef struct nnq_qconfig {
    int bits;         /* 2..16 */
    bool symmetric;   /* z = 0 */
    bool is_signed;   /* signed grid [-2^(b-1), 2^(b-1)-1], else [0, 2^b-1] */
    bool narrow;      /* signed only: drop -2^(b-1) (e.g. [-127, 127]) */
    bool per_channel; /* one (s, z) per slice along `axis` */
    nnq_sym_range sym_range; /* symmetric only; zero-initialised: restricted */
} nnq_qconfig;

/* "restricted", "full", "tight" ↔ enum; parse returns false on an unknown name. */
const char *nnq_sym_range_name(nnq_sym_range r);
bool nnq_sym_range_parse(const char *s, nnq_sym_range *out);

typedef struct nnq_quantizer {
    nnq_qconfig cfg;
    int axis;          /* channel axis when per_channel, else -1 */
    int n;             /* number of (s, z) pairs: channels, or 1 */
    int32_t qmin, qmax;
    float *scale;      /* [n] */
    int32_t *zero_point; /* [n] */
} nnq_quantizer;

/* Check a configuration (bits in range, narrow only when signed, a known
 * sym_range). */
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
