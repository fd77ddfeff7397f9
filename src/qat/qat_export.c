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
 * near a rounding tie. b' = beta + (b - mu) a.
 *
 * The export rounds b' to its int32 grid of step s_x s'; g's BN shifts by
 * (Q(b) - mu) a + beta, which that rounding never touched. The difference,
 * e = Q(b') - ((Q(b) - mu) a + beta) per channel from the running
 * statistics, goes into BN's bias in inference (nnq_qat_bn_shift: beta + e):
 * g then computes the exported function, up to float rounding. At 3 bits
 * the grid step reaches a good fraction of an activation step, and the two
 * differed by up to 14 points of top-1. Training steps use beta alone
 * (qat_train.c says why). */
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

/* Channel c of kept BN b, folded: a = gamma / sqrt(var + eps), the layer's
 * weight scale s and s' = s |a| (ok: s' usable; otherwise the channel is
 * the constant beta), and the folded bias b' = beta + (b - mu) a as the
 * float the export stores. */
typedef struct folded_channel {
    double a;
    float s, s2;
    bool ok;
    float bias;
} folded_channel;

static folded_channel fold_channel(const nnq_qat *qa, const nnq_qat_bn *b, int64_t c) {
    const nnq_graph *g = qa->g;
    const nnq_qsim_layer *L = &qa->sim->layers[b->layer];
    const nnq_qsim_quant *wq = &qa->sim->quant[L->weight_q];
    const float var = nnq_f32(&g->values[b->var].t)[c], beta = nnq_f32(&g->values[b->bias].t)[c];
    const double d = (var > 0 ? var : 0.0) + b->eps;
    folded_channel f = {.a = d > 0 ? nnq_f32(&g->values[b->scale].t)[c] / sqrt(d) : 0.0};
    f.s = nnq_f32(&g->values[wq->scale_value].t)[wq->q.n > 1 ? c : 0];
    f.s2 = (float)(f.s * fabs(f.a));
    f.ok = isfinite(f.a) && f.a != 0 && f.s2 >= FLT_MIN && isfinite(f.s2);
    const double bias = L->bias >= 0 ? nnq_f32(&g->values[L->bias].t)[c] : 0.0;
    const double nb = f.ok ? beta + (bias - nnq_f32(&g->values[b->mean].t)[c]) * f.a : beta;
    f.bias = isfinite(nb) ? (float)nb : 0.0f;
    return f;
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
    float *bs = L->bias >= 0 ? nnq_f32(&sim->g->values[L->bias].t) : NULL;
    const float qmin = (float)wq->q.qmin, qmax = (float)wq->q.qmax;
    int64_t outer, ch, inner;
    layout(wt, L->w_axis, &outer, &ch, &inner);
    for (int64_t c = 0; c < ch; c++) {
        const folded_channel f = fold_channel(qa, b, c);
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < inner; k++) {
                const int64_t i = (o * ch + c) * inner + k;
                float q = nnq_quantize_f(w[i], f.s, 0.0f, qmin, qmax);
                if (f.a < 0) q = -q;
                if (q > qmax || q < qmin) {
                    q = q > qmax ? qmax : qmin;
                    qa->export_clamped++;
                }
                ws[i] = f.ok ? q * f.s2 : 0.0f;
            }
        if (bs) bs[c] = f.bias;
        if (wq->q.n > 1) wq->q.scale[c] = f.ok ? f.s2 : f.s;
    }
}

/* g's value v through the bias quantizer bq (its current scales in g):
 * the int32 grid when the simulation quantizes that bias. */
static double on_bias_grid(const nnq_qat *qa, int bq, float v, float step) {
    return bq >= 0 && qa->sim->quant[bq].enabled ? (float)(nnq_quantize_bias(v, step) * step) : v;
}

int nnq_qat_bn_node(const nnq_graph *g, const nnq_qat_bn *b) {
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].n_inputs > 0 && g->nodes[n].inputs[0] == b->conv_out &&
            strcmp(g->nodes[n].op_type, "BatchNormalization") == 0)
            return n;
    return -1;
}

/* beta + e of kept BN b into its shifted_bias initializer. */
static void sync_shifted_bias(nnq_qat *qa, const nnq_qat_bn *b) {
    const nnq_qsim *sim = qa->sim;
    nnq_graph *g = qa->g;
    const nnq_qsim_layer *L = &sim->layers[b->layer];
    int x = L->input_q;
    while (sim->quant[x].tied >= 0) x = sim->quant[x].tied;
    const float xs = nnq_f32(&g->values[sim->quant[x].scale_value].t)[0];
    const int bq = L->bias >= 0 ? L->bias_q : -1;
    const float *gbs = bq >= 0 ? nnq_f32(&g->values[sim->quant[bq].scale_value].t) : NULL;
    const float *beta = nnq_f32(&g->values[b->bias].t), *mean = nnq_f32(&g->values[b->mean].t);
    float *out = nnq_f32(&g->values[b->shifted_bias].t);
    const int64_t ch = nnq_tensor_numel(&g->values[b->bias].t);
    for (int64_t c = 0; c < ch; c++) {
        const folded_channel f = fold_channel(qa, b, c);
        /* The export's bias (nnq_qsim_sync: step s_x s' in float) ... */
        const double deployed = on_bias_grid(qa, bq, f.bias, xs * (f.ok ? f.s2 : f.s));
        /* ... against what g's BN makes of its layer's quantized bias. */
        const double lb = bq >= 0 ? on_bias_grid(qa, bq, nnq_f32(&g->values[L->bias].t)[c],
                                                 gbs[sim->quant[bq].q.n > 1 ? c : 0])
                                  : 0.0;
        const double trained = isfinite(f.a) ? beta[c] + (lb - mean[c]) * f.a : beta[c];
        const double e = deployed - trained;
        out[c] = isfinite(e) ? (float)(beta[c] + e) : beta[c];
    }
}

nnq_status nnq_qat_bn_shift(nnq_qat *qa, bool on) {
    for (int k = 0; k < qa->n_bn; k++) {
        const nnq_qat_bn *b = &qa->bn[k];
        const int n = nnq_qat_bn_node(qa->g, b);
        if (n < 0) return nnq_fail(NNQ_ERR_INVALID, "internal: a kept BatchNorm is missing");
        if (on) sync_shifted_bias(qa, b);
        qa->g->nodes[n].inputs[2] = on ? b->shifted_bias : b->bias;
    }
    return NNQ_OK;
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
