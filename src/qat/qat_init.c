/* Range and step-size initialisation before QAT (rules in qat.h): PTQ range
 * setting (mse, minmax), or the formulas of the LSQ and LSQ+ papers. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "qat/qat.h"

#define SAMPLE_CAP (1 << 15) /* activation values kept per quantizer for the LSQ+ fit */
#define PI 3.14159265358979323846

float nnq_qat_grad_scale(int64_t n, int32_t qp) {
    double d = (double)(n > 0 ? n : 1) * (double)(qp > 0 ? qp : 1);
    return (float)(1.0 / sqrt(d));
}

float nnq_qat_lsq_scale(const float *v, int64_t n, int64_t stride, int32_t qp) {
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(v[i * stride]);
        if (isfinite(a)) sum += a, cnt++;
    }
    return cnt ? (float)(2.0 * sum / (double)cnt / sqrt((double)(qp > 0 ? qp : 1))) : 0.0f;
}

float nnq_qat_lsqp_weight_scale(const float *v, int64_t n, int64_t stride, int bits) {
    double sum = 0, sq = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = v[i * stride];
        if (isfinite(a)) sum += a, sq += a * a, cnt++;
    }
    if (!cnt) return 0.0f;
    double mu = sum / (double)cnt, var = sq / (double)cnt - mu * mu;
    double sd = sqrt(var > 0 ? var : 0);
    return (float)(fmax(fabs(mu - 3 * sd), fabs(mu + 3 * sd)) / ldexp(1.0, bits - 1));
}

static float round_zp(float z, int32_t qmin, int32_t qmax) {
    z = z < (float)qmin ? (float)qmin : (z > (float)qmax ? (float)qmax : z);
    return nearbyintf(z);
}

double nnq_qat_qerror(const float *x, int64_t n, float s, float z, int32_t qmin, int32_t qmax) {
    const float zr = round_zp(z, qmin, qmax);
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)nnq_fake_quant_f(x[i], s, zr, (float)qmin, (float)qmax) - x[i];
        e += d * d;
    }
    return n ? e / (double)n : 0;
}

/* One pass: the error and its LSQ/LSQ+ gradients w.r.t. s and z. */
static double fit_grads(const float *x, int64_t n, float s, float z, int32_t qmin, int32_t qmax,
                        double *ds, double *dz) {
    const float zr = round_zp(z, qmin, qmax);
    double e = 0, gs = 0, gz = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / s, r = nnq_round_half_even(v);
        float q = r + zr;
        double xh, dxs, dxz = 0;
        if (q < (float)qmin) {
            xh = (double)s * (qmin - zr), dxs = qmin - zr, dxz = -s;
        } else if (q > (float)qmax) {
            xh = (double)s * (qmax - zr), dxs = qmax - zr, dxz = -s;
        } else {
            xh = (double)s * r, dxs = (double)r - v;
        }
        double d = xh - x[i];
        e += d * d;
        gs += 2 * d * dxs;
        gz += 2 * d * dxz;
    }
    *ds = gs / (double)n;
    *dz = gz / (double)n;
    return e / (double)n;
}

void nnq_qat_lsqp_fit(const float *x, int64_t n, int32_t qmin, int32_t qmax, int steps,
                      float *s_out, float *z_out) {
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    /* Min-max start, nudged so 0 is on the grid (quantizer.h's rule). */
    float s = (hi - lo) / (float)(qmax - qmin);
    if (!(s >= FLT_MIN) || !isfinite(s)) {
        *s_out = 1.0f;
        *z_out = (float)qmin;
        return;
    }
    float z = round_zp((float)qmin - lo / s, qmin, qmax);
    float best_s = s, best_z = z;
    double best = n ? nnq_qat_qerror(x, n, s, z, qmin, qmax) : 0;
    /* Adam on (log s, z): scale-free in s; z moves in grid steps. */
    const double lr_t = 0.02, lr_z = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-12;
    double t = log(s), m[2] = {0, 0}, v[2] = {0, 0};
    for (int k = 0; k < steps && n > 0; k++) {
        double ds, dz, e = fit_grads(x, n, s, z, qmin, qmax, &ds, &dz);
        if (e < best) best = e, best_s = s, best_z = z;
        double g[2] = {ds * s, dz}, lr = 0.5 * (1 + cos(PI * k / steps));
        for (int j = 0; j < 2; j++) {
            m[j] = b1 * m[j] + (1 - b1) * g[j];
            v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
        }
        double c1 = 1 - pow(b1, k + 1), c2 = 1 - pow(b2, k + 1);
        t -= lr * lr_t * (m[0] / c1) / (sqrt(v[0] / c2) + eps);
        z -= (float)(lr * lr_z * (m[1] / c1) / (sqrt(v[1] / c2) + eps));
        z = z < (float)qmin ? (float)qmin : (z > (float)qmax ? (float)qmax : z);
        s = (float)exp(t);
        if (!(s >= FLT_MIN) || !isfinite(s)) break;
    }
    if (n > 0 && isfinite(s) && s >= FLT_MIN) {
        double e = nnq_qat_qerror(x, n, s, z, qmin, qmax);
        if (e < best) best_s = s, best_z = z;
    }
    *s_out = best_s;
    *z_out = best_z;
}

/* The weight of quantizer q as [outer, n, inner] around its axis. */
static void weight_layout(const nnq_tensor *w, const nnq_quantizer *q, int64_t *outer,
                          int64_t *inner) {
    *outer = 1, *inner = 1;
    if (q->n > 1) {
        for (int k = 0; k < q->axis; k++) *outer *= w->dims[k];
        for (int k = q->axis + 1; k < w->rank; k++) *inner *= w->dims[k];
    } else {
        *inner = nnq_tensor_numel(w);
    }
}

static bool is_target(const nnq_qat *qa, const nnq_qsim_quant *q) {
    if (!q->enabled || q->tied >= 0) return false;
    if (q->role == NNQ_QROLE_WEIGHT) return q->q.cfg.bits == qa->opt.qsim.weights.bits;
    return q->role == NNQ_QROLE_ACT && q->q.cfg.bits == qa->opt.qsim.acts.bits;
}

static nnq_status init_weights_lsq(nnq_qat *qa) {
    nnq_qsim *s = qa->sim;
    float *buf = NULL;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role != NNQ_QROLE_WEIGHT || !is_target(qa, q)) continue;
        const nnq_tensor *w = &s->g->values[q->input].t;
        int64_t outer, inner;
        weight_layout(w, &q->q, &outer, &inner);
        const int64_t per = outer * inner;
        float *nb = realloc(buf, sizeof *buf * (size_t)(per ? per : 1));
        if (!nb) {
            free(buf);
            return nnq_fail(NNQ_ERR_NOMEM, "out of memory initialising weight scales");
        }
        buf = nb;
        for (int c = 0; c < q->q.n; c++) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(buf + o * inner, nnq_f32(w) + (o * q->q.n + c) * inner,
                       sizeof *buf * (size_t)inner);
            float sc = qa->opt.method == NNQ_QAT_LSQ_PLUS
                           ? nnq_qat_lsqp_weight_scale(buf, per, 1, q->q.cfg.bits)
                           : nnq_qat_lsq_scale(buf, per, 1, q->q.qmax);
            /* An all-zero channel keeps its MSE scale. */
            if (sc >= FLT_MIN && isfinite(sc)) q->q.scale[c] = sc;
        }
    }
    free(buf);
    return nnq_qsim_sync(s);
}

/* Statistics of the target activation quantizers on calibration data: mean
 * |x| and a strided sample. */
typedef struct act_stats {
    double abs_sum;
    int64_t count;
    bool negative; /* some value < 0 */
    float *sample;
    int64_t n_sample;
} act_stats;

static nnq_status collect_act_stats(nnq_qat *qa, const nnq_dataset *d, act_stats *st) {
    nnq_qsim *s = qa->sim;
    const int64_t n = qa->opt.calib_n > 0 && qa->opt.calib_n < d->n ? qa->opt.calib_n : d->n;
    const int64_t batch = qa->opt.calib_batch > 0 ? qa->opt.calib_batch : 64;
    const int64_t n_batches = (n + batch - 1) / batch;
    const int64_t want = SAMPLE_CAP / (n_batches ? n_batches : 1) + 1;
    nnq_exec *ex = NULL;
    nnq_status rc = NNQ_OK;
    bool *saved = malloc(sizeof *saved * (size_t)(s->n_quant ? s->n_quant : 1));
    if (!saved) return nnq_fail(NNQ_ERR_NOMEM, "out of memory collecting activations");
    for (int i = 0; i < s->n_quant; i++) saved[i] = s->quant[i].enabled;
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    const nnq_exec_options eo = {.threads = qa->opt.threads, .keep_all = true};
    if ((rc = nnq_qsim_sync(s)) != NNQ_OK || (rc = nnq_exec_create(s->g, &eo, &ex)) != NNQ_OK)
        goto done;
    for (int64_t start = 0; start < n; start += batch) {
        nnq_tensor x;
        nnq_dataset_batch(d, start, start + batch <= n ? batch : n - start, &x);
        if ((rc = nnq_exec_run(ex, &x)) != NNQ_OK) goto done;
        for (int i = 0; i < s->n_quant; i++) {
            if (!st[i].sample) continue;
            const nnq_tensor *t = nnq_exec_value(ex, s->quant[i].input);
            const int64_t numel = nnq_tensor_numel(t);
            const float *v = nnq_f32(t);
            for (int64_t k = 0; k < numel; k++)
                if (isfinite(v[k])) {
                    st[i].abs_sum += fabsf(v[k]), st[i].count++;
                    st[i].negative |= v[k] < 0;
                }
            const int64_t stride = numel / want > 1 ? numel / want : 1;
            for (int64_t k = 0; k < numel && st[i].n_sample < SAMPLE_CAP; k += stride)
                if (isfinite(v[k])) st[i].sample[st[i].n_sample++] = v[k];
        }
    }
done:
    nnq_exec_free(ex);
    for (int i = 0; i < s->n_quant; i++) s->quant[i].enabled = saved[i];
    free(saved);
    if (rc == NNQ_OK) rc = nnq_qsim_sync(s);
    return rc;
}

static nnq_status init_acts_lsq(nnq_qat *qa, const nnq_dataset *d) {
    nnq_qsim *s = qa->sim;
    act_stats *st = calloc((size_t)(s->n_quant ? s->n_quant : 1), sizeof *st);
    if (!st) return nnq_fail(NNQ_ERR_NOMEM, "out of memory initialising activation scales");
    nnq_status rc = NNQ_OK;
    for (int i = 0; i < s->n_quant; i++) {
        if (s->quant[i].role != NNQ_QROLE_ACT || !is_target(qa, &s->quant[i])) continue;
        if (!(st[i].sample = malloc(sizeof(float) * SAMPLE_CAP))) {
            rc = nnq_fail(NNQ_ERR_NOMEM, "out of memory sampling activations");
            goto done;
        }
    }
    if ((rc = collect_act_stats(qa, d, st)) != NNQ_OK) goto done;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (!st[i].sample || st[i].count == 0) continue;
        if (qa->opt.method == NNQ_QAT_LSQ_PLUS && !q->q.cfg.symmetric) {
            float sc, z;
            nnq_qat_lsqp_fit(st[i].sample, st[i].n_sample, q->q.qmin, q->q.qmax,
                             qa->opt.lsqp_steps, &sc, &z);
            q->q.scale[0] = sc;
            q->q.zero_point[0] = (int32_t)round_zp(z, q->q.qmin, q->q.qmax);
            qa->q[i].zp_real = z;
        } else {
            /* LSQ's grids: unsigned (z at the low end) for tensors >= 0; a
             * tensor that goes negative gets the signed grid, z mid-range
             * (LSQ has no offset: that is LSQ+'s point). */
            const int32_t z = q->q.cfg.symmetric || q->q.qmin < 0 ? 0
                              : st[i].negative ? q->q.qmin + (q->q.qmax - q->q.qmin + 1) / 2
                                               : q->q.qmin;
            const float m = (float)(st[i].abs_sum / (double)st[i].count);
            const int32_t qp = q->q.qmax - z > 0 ? q->q.qmax - z : 1;
            const float sc = (float)(2.0 * m / sqrt((double)qp));
            if (!(sc >= FLT_MIN) || !isfinite(sc)) continue;
            q->q.scale[0] = sc;
            q->q.zero_point[0] = z;
            qa->q[i].zp_real = (float)z;
        }
    }
    rc = nnq_qsim_sync(s);
done:
    for (int i = 0; i < s->n_quant; i++) free(st[i].sample);
    free(st);
    return rc;
}

nnq_status nnq_qat_init_ranges(nnq_qat *qa, const nnq_dataset *calib) {
    nnq_qsim *s = qa->sim;
    const bool minmax = qa->opt.init == NNQ_QAT_INIT_MINMAX;
    NNQ_TRY(nnq_qsim_set_weight_ranges(s, minmax ? NNQ_RANGE_MINMAX : NNQ_RANGE_MSE));
    if (qa->opt.init == NNQ_QAT_INIT_LSQ) NNQ_TRY(init_weights_lsq(qa));
    nnq_calib_options co;
    nnq_calib_options_default(&co);
    co.method = minmax ? NNQ_RANGE_MINMAX : NNQ_RANGE_MSE;
    co.logits_method = minmax ? NNQ_RANGE_MINMAX : NNQ_RANGE_CE;
    co.n = qa->opt.calib_n;
    co.batch = qa->opt.calib_batch;
    co.threads = qa->opt.threads;
    NNQ_TRY(nnq_qsim_calibrate(s, calib, &co));
    for (int i = 0; i < s->n_quant; i++) qa->q[i].zp_real = (float)s->quant[i].q.zero_point[0];
    if (qa->opt.init == NNQ_QAT_INIT_LSQ) NNQ_TRY(init_acts_lsq(qa, calib));
    return NNQ_OK;
}
