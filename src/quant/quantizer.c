#include "quant/quantizer.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"

nnq_status nnq_qconfig_check(const nnq_qconfig *c) {
    if (c->bits < NNQ_QBITS_MIN || c->bits > NNQ_QBITS_MAX)
        return nnq_fail(NNQ_ERR_INVALID, "bit-width %d is outside %d..%d", c->bits, NNQ_QBITS_MIN,
                        NNQ_QBITS_MAX);
    if (c->narrow && !c->is_signed)
        return nnq_fail(NNQ_ERR_INVALID, "a narrow-range quantizer must be signed");
    if (c->sym_range != NNQ_SYM_RESTRICTED && c->sym_range != NNQ_SYM_FULL &&
        c->sym_range != NNQ_SYM_TIGHT)
        return nnq_fail(NNQ_ERR_INVALID, "unknown symmetric range convention %d",
                        (int)c->sym_range);
    return NNQ_OK;
}

static const char *const sym_range_names[] = {
    [NNQ_SYM_RESTRICTED] = "restricted", [NNQ_SYM_FULL] = "full", [NNQ_SYM_TIGHT] = "tight"};
#define N_SYM_RANGES ((int)(sizeof sym_range_names / sizeof sym_range_names[0]))

const char *nnq_sym_range_name(nnq_sym_range r) {
    return (int)r >= 0 && (int)r < N_SYM_RANGES ? sym_range_names[r] : "unknown";
}

bool nnq_sym_range_parse(const char *s, nnq_sym_range *out) {
    for (int i = 0; s && i < N_SYM_RANGES; i++) {
        if (strcmp(s, sym_range_names[i]) == 0) {
            *out = (nnq_sym_range)i;
            return true;
        }
    }
    return false;
}

nnq_status nnq_quantizer_init(nnq_quantizer *q, const nnq_qconfig *c, int axis, int n) {
    memset(q, 0, sizeof *q);
    NNQ_TRY(nnq_qconfig_check(c));
    if (n < 1 || (!c->per_channel && n != 1))
        return nnq_fail(NNQ_ERR_INVALID, "quantizer with %d channels (per-tensor needs 1)", n);
    q->cfg = *c;
    q->axis = c->per_channel ? axis : -1;
    q->n = n;
    nnq_qgrid(c->bits, c->is_signed, c->narrow, &q->qmin, &q->qmax);
    q->scale = malloc((size_t)n * sizeof *q->scale);
    q->zero_point = malloc((size_t)n * sizeof *q->zero_point);
    if (!q->scale || !q->zero_point) {
        nnq_quantizer_free(q);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory for a quantizer of %d channels", n);
    }
    for (int i = 0; i < n; i++) {
        q->scale[i] = 1.0f;
        q->zero_point[i] = 0;
    }
    return NNQ_OK;
}

void nnq_quantizer_free(nnq_quantizer *q) {
    free(q->scale);
    free(q->zero_point);
    q->scale = NULL;
    q->zero_point = NULL;
    q->n = 0;
}

nnq_status nnq_quantizer_copy(nnq_quantizer *dst, const nnq_quantizer *src) {
    NNQ_TRY(nnq_quantizer_init(dst, &src->cfg, src->axis, src->n));
    memcpy(dst->scale, src->scale, (size_t)src->n * sizeof *src->scale);
    memcpy(dst->zero_point, src->zero_point, (size_t)src->n * sizeof *src->zero_point);
    return NNQ_OK;
}

/* Scale and zero point for [lo, hi] under grid [qmin, qmax] (header rules). */
static void params_from_range(const nnq_qconfig *c, int32_t qmin, int32_t qmax, float lo,
                              float hi, float *s_out, int32_t *z_out) {
    if (!isfinite(lo)) lo = 0.0f; /* NaN and infinite ends count as 0 */
    if (!isfinite(hi)) hi = 0.0f;
    if (lo > hi) {
        float t = lo;
        lo = hi;
        hi = t;
    }
    double s;
    int32_t z = 0;
    if (c->symmetric) {
        double absmax = fmax(fabs((double)lo), fabs((double)hi));
        /* Full range: -qmin = qmax + 1 gives d = qmax + 1/2; a narrow or
         * unsigned grid already uses its whole width with d = qmax. */
        double d = c->sym_range == NNQ_SYM_FULL && qmin < 0 ? 0.5 * ((double)qmax - (double)qmin)
                                                             : (double)qmax;
        s = absmax / d;
        if (c->sym_range == NNQ_SYM_TIGHT && qmin < 0)
            s = fmax(-fmin((double)lo, 0.0) / -(double)qmin, fmax((double)hi, 0.0) / (double)qmax);
    } else {
        double l = fmin((double)lo, 0.0), h = fmax((double)hi, 0.0);
        s = (h - l) / (double)(qmax - qmin);
        if (s > 0 && isfinite(s)) {
            double zf = nearbyint((double)qmin - l / s);
            z = (int32_t)(zf < qmin ? qmin : (zf > qmax ? qmax : zf));
        }
    }
    /* Zero-width (or non-finite) ranges: any scale represents 0.0 exactly. */
    if (!(s > FLT_MIN) || !isfinite(s) || s > FLT_MAX) {
        s = 1.0;
        z = c->symmetric ? 0 : (qmin > 0 ? qmin : (qmax < 0 ? qmax : 0));
    }
    *s_out = (float)s;
    *z_out = z;
}

void nnq_quantizer_set_range(nnq_quantizer *q, int c, float lo, float hi) {
    params_from_range(&q->cfg, q->qmin, q->qmax, lo, hi, &q->scale[c], &q->zero_point[c]);
}

void nnq_quantizer_get_range(const nnq_quantizer *q, int c, float *lo, float *hi) {
    *lo = q->scale[c] * (float)(q->qmin - q->zero_point[c]);
    *hi = q->scale[c] * (float)(q->qmax - q->zero_point[c]);
}

void nnq_quantizer_apply(const nnq_quantizer *q, const float *x, float *y, int64_t outer,
                         int64_t inner) {
    const float qmin = (float)q->qmin, qmax = (float)q->qmax;
    for (int64_t o = 0; o < outer; o++)
        for (int c = 0; c < q->n; c++) {
            const float s = q->scale[c], z = (float)q->zero_point[c];
            const int64_t base = (o * q->n + c) * inner;
            for (int64_t i = 0; i < inner; i++)
                y[base + i] = nnq_fake_quant_f(x[base + i], s, z, qmin, qmax);
        }
}

void nnq_quantizer_quantize(const nnq_quantizer *q, const float *x, int32_t *q_out,
                            int64_t outer, int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int c = 0; c < q->n; c++) {
            const float s = q->scale[c];
            const int32_t z = q->zero_point[c];
            const int64_t base = (o * q->n + c) * inner;
            for (int64_t i = 0; i < inner; i++)
                q_out[base + i] = nnq_quantize_i(x[base + i], s, z, q->qmin, q->qmax);
        }
}

double nnq_qerror_mse(const nnq_qconfig *c, const float *x, int64_t n, int64_t stride,
                      float lo, float hi) {
    if (n <= 0) return 0.0;
    int32_t qmin, qmax;
    nnq_qgrid(c->bits, c->is_signed, c->narrow, &qmin, &qmax);
    float s;
    int32_t z;
    params_from_range(c, qmin, qmax, lo, hi, &s, &z);
    const float fz = (float)z, fmin = (float)qmin, fmax = (float)qmax;
    double acc = 0.0;
    int64_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i * stride];
        if (!isfinite(v)) continue; /* one NaN would make every candidate NaN */
        const double d = (double)v - (double)nnq_fake_quant_f(v, s, fz, fmin, fmax);
        acc += d * d;
        used++;
    }
    return used ? acc / (double)used : 0.0;
}
