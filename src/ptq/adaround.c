/* 6. AdaRound over a quantization simulation (ptq.h; ../shared/
 * QUANTIZATION.md §7). Layer by layer in graph order: cache the layer's
 * input from the simulation (earlier layers already rounded, activation
 * quantizers off) and its float target from the float graph, for the first
 * o->n calibration images; optimise the rounding (adaround_layer.c); write
 * the rounded weights s (q - z) into the simulation's float weight, so the
 * weight FakeQuant reproduces them exactly; sync; next layer.
 *
 * Memory: only the current layer's two caches (inputs and targets, n
 * images each) are held, plus the executors' arenas for batches of
 * RUN_BATCH images. Each layer re-runs both graphs over the cached images,
 * each only as far as the value it needs (nnq_exec_run_until). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ptq/adaround_layer.h"
#include "ptq/ptq.h"

/* Images per executor run while caching (bounds the executors' arenas). */
#define RUN_BATCH 128

void nnq_adaround_options_default(nnq_adaround_options *o) {
    memset(o, 0, sizeof *o);
    o->iters = 10000;
    o->batch = 32;
    o->lambda = 0.01f;
    o->beta_start = 20.0f;
    o->beta_end = 2.0f;
    o->warm_start = 0.2f;
    o->lr = 1e-3f;
    o->n = 1024;
    o->seed = 0;
    o->threads = 0;
}

static nnq_status check_options(const nnq_adaround_options *o) {
    if (o->iters < 0 || o->batch < 1 || o->n < 0 || !(o->lr > 0) || !(o->lambda >= 0) ||
        !(o->warm_start >= 0 && o->warm_start <= 1) || !(o->beta_start >= o->beta_end) ||
        !(o->beta_end >= 1))
        return nnq_fail(NNQ_ERR_INVALID,
                        "AdaRound options: iters %d, batch %d, n %lld, lr %g, lambda %g, warm start "
                        "%g, beta %g -> %g (need iters >= 0, batch >= 1, n >= 0, lr > 0, lambda "
                        ">= 0, warm start in [0, 1], beta_start >= beta_end >= 1)",
                        o->iters, o->batch, (long long)o->n, (double)o->lr, (double)o->lambda,
                        (double)o->warm_start, (double)o->beta_start, (double)o->beta_end);
    return NNQ_OK;
}

/* A scalar float constant (Clip bound), or false. */
static bool scalar_const(const nnq_graph *g, int v, float *out) {
    if (v < 0) return false;
    const nnq_tensor *t = &g->values[v].t;
    if (!t->data || t->dtype != NNQ_DT_FLOAT || nnq_tensor_numel(t) != 1) return false;
    *out = nnq_f32(t)[0];
    return true;
}

/* The layer's fused activation: Relu, Clip with constant bounds, or none. */
static nnq_status layer_act(const nnq_graph *g, const nnq_qsim_layer *l, nnq_ada_layer *L) {
    L->act = NNQ_ADA_ACT_NONE;
    L->act_lo = -INFINITY;
    L->act_hi = INFINITY;
    L->act_hi_ch = NULL;
    if (l->cap_node >= 0) { /* Min(Relu, per-channel cap): CLE's exact ReLU6 */
        const nnq_node *cn = &g->nodes[l->cap_node];
        const nnq_tensor *cap = &g->values[cn->inputs[1]].t;
        const nnq_tensor *w = &g->values[l->weight].t;
        if (cap->dtype != NNQ_DT_FLOAT || !cap->data || nnq_tensor_numel(cap) != w->dims[l->w_axis])
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "AdaRound: layer '%s': the Min after its activation is not a per-channel cap",
                            l->name);
        L->act_hi_ch = nnq_f32(cap);
    }
    if (l->act_node < 0) return NNQ_OK;
    const nnq_node *an = &g->nodes[l->act_node];
    if (strcmp(an->op_type, "Relu") == 0) {
        L->act = NNQ_ADA_ACT_RELU;
        return NNQ_OK;
    }
    if (strcmp(an->op_type, "Clip") == 0) {
        L->act = NNQ_ADA_ACT_CLIP;
        for (int k = 1; k < an->n_inputs && k < 3; k++) {
            if (an->inputs[k] < 0) continue;
            if (!scalar_const(g, an->inputs[k], k == 1 ? &L->act_lo : &L->act_hi))
                return nnq_fail(NNQ_ERR_UNSUPPORTED,
                                "AdaRound: layer '%s': Clip bound %d is not a constant scalar",
                                l->name, k);
        }
        /* before opset 11 the bounds were attributes */
        if (nnq_node_attr(an, "min")) L->act_lo = nnq_node_attr_float(an, "min", -INFINITY);
        if (nnq_node_attr(an, "max")) L->act_hi = nnq_node_attr_float(an, "max", INFINITY);
        return NNQ_OK;
    }
    return nnq_fail(NNQ_ERR_UNSUPPORTED, "AdaRound: layer '%s': fused activation %s is not Relu or Clip",
                    l->name, an->op_type);
}

/* Copy value v (batch first, `count` images) of a run into cache rows
 * [start, start + count) of *c, allocating *c ([n, ...]) on the first batch. */
static nnq_status cache_rows(const nnq_exec *e, int v, const char *what, const char *layer,
                             int64_t n, int64_t start, int64_t count, nnq_tensor *c) {
    const nnq_tensor *t = nnq_exec_value(e, v);
    if (!t || !t->data || t->dtype != NNQ_DT_FLOAT || t->rank < 1 || t->dims[0] != count)
        return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s': its %s is not a float tensor with the batch first",
                        layer, what);
    if (!c->data) {
        int64_t dims[NNQ_MAX_RANK];
        memcpy(dims, t->dims, sizeof dims);
        dims[0] = n;
        NNQ_TRY(nnq_tensor_alloc(c, NNQ_DT_FLOAT, t->rank, dims));
    }
    const int64_t per = nnq_tensor_numel(t) / count;
    if (per * n != nnq_tensor_numel(c))
        return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s': its %s changes shape between batches", layer,
                        what);
    memcpy(nnq_f32(c) + start * per, t->data, (size_t)(per * count) * sizeof(float));
    return NNQ_OK;
}

/* Inputs x_hat (sim value xv) and targets (float value tv) of n images. */
static nnq_status cache_layer(nnq_exec *es, nnq_exec *ef, const nnq_dataset *d, int64_t n, int xv,
                              int tv, const char *layer, nnq_tensor *x, nnq_tensor *t) {
    for (int64_t start = 0; start < n; start += RUN_BATCH) {
        int64_t count = n - start < RUN_BATCH ? n - start : RUN_BATCH;
        nnq_tensor in;
        nnq_dataset_batch(d, start, count, &in);
        /* Each run stops at the value it is for: a layer deep in the
         * network costs a full pass, an early one a short one. */
        NNQ_TRY(nnq_exec_run_until(es, &in, xv));
        NNQ_TRY(cache_rows(es, xv, "input", layer, n, start, count, x));
        NNQ_TRY(nnq_exec_run_until(ef, &in, tv));
        NNQ_TRY(cache_rows(ef, tv, "float output", layer, n, start, count, t));
    }
    return NNQ_OK;
}

/* Layer li: cache, optimise, write the rounded weights back, sync; one
 * log line. *peak tracks the largest cache. */
static nnq_status round_layer(nnq_qsim *s, int li, const nnq_graph *float_graph, nnq_exec *es,
                              nnq_exec *ef, const nnq_dataset *d, int64_t n, const nnq_adaround_options *o, const nnq_ptq_log *log,
                              size_t *peak) {
    const nnq_qsim_layer *l = &s->layers[li];
    nnq_graph *g = s->g;
    const nnq_node *node = &g->nodes[l->node];
    const nnq_qsim_quant *wq = &s->quant[l->weight_q];
    nnq_tensor x = {0}, t = {0};
    nnq_ada_result r = {0};
    nnq_status st;
    nnq_ada_layer L;
    memset(&L, 0, sizeof L);
    L.node = node;
    L.opset = (int)nnq_graph_opset(g);
    L.w_slot = -1;
    for (int k = 0; k < 2 && k < node->n_inputs; k++)
        if (node->inputs[k] == wq->output || node->inputs[k] == l->weight) L.w_slot = k;
    if (L.w_slot < 0 || node->n_inputs < 2)
        return nnq_fail(NNQ_ERR_INVALID, "AdaRound: layer '%s' does not read its weight quantizer", l->name);
    L.x_slot = 1 - L.w_slot;
    L.w = &g->values[l->weight].t;
    L.w_axis = l->w_axis;
    L.q = &wq->q;
    if (node->n_inputs > 2 && node->inputs[2] >= 0) {
        /* the bias the simulation adds (its 32-bit FakeQuant output), else the float one */
        const nnq_tensor *b = &g->values[node->inputs[2]].t;
        L.bias = b->data ? b : (l->bias >= 0 ? &g->values[l->bias].t : NULL);
        if (!L.bias || !L.bias->data)
            return nnq_fail(NNQ_ERR_INVALID, "AdaRound: layer '%s': its bias is not constant", l->name);
    }
    NNQ_TRY(layer_act(g, l, &L));
    if (l->output < 0 || l->output >= float_graph->n_values)
        return nnq_fail(NNQ_ERR_INVALID, "AdaRound: layer '%s': its output is not a value of the float graph",
                        l->name);

    double t0 = omp_get_wtime();
    if ((st = cache_layer(es, ef, d, n, node->inputs[L.x_slot], l->output, l->name, &x, &t)) != NNQ_OK)
        goto fail;
    size_t bytes = (size_t)(nnq_tensor_numel(&x) + nnq_tensor_numel(&t)) * sizeof(float);
    if (bytes > *peak) *peak = bytes;
    L.x = &x;
    L.target = &t;
    if ((st = nnq_ada_optimize(&L, o, &r)) != NNQ_OK) goto fail;
    /* Keep nearest rounding in the rare case it reconstructs the cached
     * outputs better (e.g. very few iterations). */
    const bool use_ada = r.mse_ada <= r.mse_nearest;
    float *w = nnq_f32(L.w);
    const int64_t nw = nnq_tensor_numel(L.w);
    if (use_ada) {
        memcpy(w, r.w, (size_t)nw * sizeof(float));
    } else { /* nearest, on the grid: [outer, channels, inner] around the quantizer's axis */
        int64_t outer = 1;
        for (int k = 0; L.q->n > 1 && k < L.q->axis; k++) outer *= L.w->dims[k];
        nnq_quantizer_apply(L.q, w, w, outer, nw / (outer * L.q->n));
    }
    if ((st = nnq_qsim_sync(s)) != NNQ_OK) goto fail;
    if (log && log->fp)
        fprintf(log->fp,
                "adaround: %-32s mse %.4g -> %.4g%s, %lld of %lld weights flipped, %.1f s (%.0f it/s)\n",
                l->name, r.mse_nearest, use_ada ? r.mse_ada : r.mse_nearest,
                use_ada ? "" : " (nearest kept)", (long long)(use_ada ? r.n_changed : 0), (long long)nw, omp_get_wtime() - t0,
                r.seconds > 0 ? o->iters / r.seconds : 0.0);
    nnq_ada_result_free(&r);
    nnq_tensor_release(&x);
    nnq_tensor_release(&t);
    return NNQ_OK;
fail:
    nnq_ada_result_free(&r);
    nnq_tensor_release(&x);
    nnq_tensor_release(&t);
    return st;
}

nnq_status nnq_ptq_adaround(nnq_qsim *s, const nnq_graph *float_graph, const nnq_dataset *d,
                            const nnq_adaround_options *o, const nnq_ptq_log *log) {
    nnq_status st;
    nnq_exec *es = NULL, *ef = NULL;
    bool *act_on = NULL;
    int *order = NULL, n_done = 0;
    size_t peak = 0;
    NNQ_TRY(check_options(o));
    const int64_t n = o->n > 0 && o->n < d->n ? o->n : d->n;
    if (n < 1) return nnq_fail(NNQ_ERR_INVALID, "AdaRound needs calibration images; the dataset has none");
    nnq_adaround_options opt = *o;
    if (opt.threads <= 0) opt.threads = omp_get_max_threads();
    act_on = malloc((size_t)(s->n_quant > 0 ? s->n_quant : 1) * sizeof *act_on);
    order = malloc((size_t)(s->n_layers > 0 ? s->n_layers : 1) * sizeof *order);
    if (!act_on || !order) {
        st = nnq_fail(NNQ_ERR_NOMEM, "AdaRound: out of memory");
        goto fail;
    }
    /* Activation quantizers off while rounding is learned; restored at the end. */
    for (int i = 0; i < s->n_quant; i++) act_on[i] = s->quant[i].enabled;
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    if ((st = nnq_qsim_sync(s)) != NNQ_OK) goto fail;
    nnq_exec_options eo = {.threads = opt.threads};
    if ((st = nnq_exec_create(s->g, &eo, &es)) != NNQ_OK) goto fail;
    if ((st = nnq_exec_create(float_graph, &eo, &ef)) != NNQ_OK) goto fail;

    /* Graph order: the simulation's nodes are sorted, so by layer node. */
    for (int i = 0; i < s->n_layers; i++) {
        int j = i;
        while (j > 0 && s->layers[order[j - 1]].node > s->layers[i].node) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int k = 0; k < s->n_layers; k++) {
        const nnq_qsim_layer *l = &s->layers[order[k]];
        if (l->keep_float || l->weight_q < 0 || !s->quant[l->weight_q].enabled) continue;
        if ((st = round_layer(s, order[k], float_graph, es, ef, d, n, &opt, log, &peak)) != NNQ_OK) goto fail;
        n_done++;
        if (log) nnq_progress_report(&log->progress, "adaround", "layers", k + 1, s->n_layers);
    }
    if (log && log->fp)
        fprintf(log->fp, "adaround: %d layers, %d iterations each on %lld images, cache peak %.1f MB\n",
                n_done, opt.iters, (long long)n, (double)peak / 1e6);
    st = NNQ_OK;
fail:
    if (act_on) {
        for (int i = 0; i < s->n_quant; i++)
            if (s->quant[i].role == NNQ_QROLE_ACT) s->quant[i].enabled = act_on[i];
        nnq_status st2 = nnq_qsim_sync(s);
        if (st == NNQ_OK) st = st2;
    }
    nnq_exec_free(es);
    nnq_exec_free(ef);
    free(act_on);
    free(order);
    return st;
}
