/* From the trainable simulation back to the plain simulation that QDQ export
 * and encodings read: weights, biases and quantizer parameters copied, and
 * each BN kept in training folded into its layer.
 *
 * Folding into the per-channel scale: with a = gamma / sqrt(var + eps), BN
 * (in inference) after a layer whose weights are quantized to q s gives
 * a q s = sign(a) q (s |a|): the same integers (sign flipped where gamma is
 * negative) on the grid of s' = s |a|. Writing W' = sign(a) q s' makes
 * FakeQuant(W'; s') give sign(a) q exactly ((q s') / s' is within two ulps
 * of the small integer q). Folding the float weights instead (W a on the
 * scale s |a|) would round W a / (s |a|), not W / s, and could move values
 * near a rounding tie. b' = beta + (b - mu) a. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "qat/qat.h"

static void layout(const nnq_tensor *w, int axis, int64_t *outer, int64_t *ch, int64_t *inner) {
    *outer = 1, *inner = 1;
    for (int k = 0; k < axis; k++) *outer *= w->dims[k];
    for (int k = axis + 1; k < w->rank; k++) *inner *= w->dims[k];
    *ch = w->dims[axis];
}

/* Fold BN b of layer L: g's weights, bias, scales and BN → sim's. */
static void fold_layer(nnq_qat *qa, const nnq_qat_bn *b) {
    const nnq_graph *g = qa->g;
    nnq_qsim *sim = qa->sim;
    const nnq_qsim_layer *L = &sim->layers[b->layer];
    nnq_qsim_quant *wq = &sim->quant[L->weight_q];
    const nnq_tensor *wt = &g->values[L->weight].t;
    float *ws = nnq_f32(&sim->g->values[L->weight].t);
    const float *w = nnq_f32(wt);
    const float *sc = nnq_f32(&g->values[wq->scale_value].t);
    const float *gamma = nnq_f32(&g->values[b->scale].t), *beta = nnq_f32(&g->values[b->bias].t);
    const float *mean = nnq_f32(&g->values[b->mean].t), *var = nnq_f32(&g->values[b->var].t);
    const float *bias = L->bias >= 0 ? nnq_f32(&g->values[L->bias].t) : NULL;
    float *bs = L->bias >= 0 ? nnq_f32(&sim->g->values[L->bias].t) : NULL;
    const float qmin = (float)wq->q.qmin, qmax = (float)wq->q.qmax;
    int64_t outer, ch, inner;
    layout(wt, L->w_axis, &outer, &ch, &inner);
    for (int64_t c = 0; c < ch; c++) {
        const double v = var[c] > 0 ? var[c] : 0.0, d = v + b->eps;
        const double a = d > 0 ? gamma[c] / sqrt(d) : 0.0;
        const float s = sc[wq->q.n > 1 ? c : 0];
        const float s2 = (float)(s * fabs(a));
        const bool ok = isfinite(a) && a != 0 && s2 >= FLT_MIN && isfinite(s2);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                const int64_t i = (o * ch + c) * inner + k;
                float q = nnq_quantize_f(w[i], s, 0.0f, qmin, qmax);
                if (a < 0) q = -q;
                if (q > qmax || q < qmin) {
                    q = q > qmax ? qmax : qmin;
                    qa->export_clamped++;
                }
                ws[i] = ok ? q * s2 : 0.0f;
            }
        /* A degenerate channel is the constant a BN gives at its mean: beta. */
        const double nb = ok ? beta[c] + ((bias ? bias[c] : 0.0) - mean[c]) * a : beta[c];
        if (bs) bs[c] = isfinite(nb) ? (float)nb : 0.0f;
        if (wq->q.n > 1) wq->q.scale[c] = ok ? s2 : s;
    }
}

nnq_status nnq_qat_export(nnq_qat *qa) {
    nnq_qsim *sim = qa->sim;
    const nnq_graph *g = qa->g;
    qa->export_clamped = 0;
    for (int i = 0; i < sim->n_quant; i++) {
        nnq_qsim_quant *q = &sim->quant[i];
        if (q->role == NNQ_QROLE_BIAS || q->tied >= 0) continue;
        const float *sc = nnq_f32(&g->values[q->scale_value].t);
        const float *zp = nnq_f32(&g->values[q->zero_point_value].t);
        for (int c = 0; c < q->q.n; c++) {
            float z = zp[c] < (float)q->q.qmin ? (float)q->q.qmin
                                                : (zp[c] > (float)q->q.qmax ? (float)q->q.qmax : zp[c]);
            q->q.scale[c] = sc[c];
            q->q.zero_point[c] = (int32_t)nearbyintf(z);
        }
    }
    for (int i = 0; i < sim->n_layers; i++) {
        const nnq_qsim_layer *L = &sim->layers[i];
        const nnq_qat_bn *b = NULL;
        for (int k = 0; k < qa->n_bn; k++)
            if (qa->bn[k].layer == i) b = &qa->bn[k];
        if (b && L->weight_q >= 0) {
            fold_layer(qa, b);
            continue;
        }
        const nnq_tensor *w = &g->values[L->weight].t;
        memcpy(sim->g->values[L->weight].t.data, w->data, sizeof(float) * (size_t)nnq_tensor_numel(w));
        if (L->bias >= 0)
            memcpy(sim->g->values[L->bias].t.data, g->values[L->bias].t.data,
                   sizeof(float) * (size_t)nnq_tensor_numel(&g->values[L->bias].t));
    }
    return nnq_qsim_sync(sim);
}
