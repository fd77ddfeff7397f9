/* Bias correction [DFQ §4.2, WP §3.2]: quantizing a layer's weights
 * shifts the expected value of its output by E[(W_hat - W) x]; subtract
 * that shift from the bias, per output channel.
 *
 * Empirical: the shift measured on calibration images, layer by layer.
 * The float model runs once (every layer's per-channel output mean in one
 * pass); the simulation (weights quantized, activation quantizers off)
 * then runs once per DEPTH: a layer's depth is one more than the deepest
 * corrected layer upstream of it, so layers of one depth (e.g. a residual
 * block's first conv and its projection shortcut) cannot see each other's
 * correction and are measured in the same pass. The result is exactly that
 * of one pass per layer.
 *
 * Analytical: E[x] per input channel from the BN statistics propagated to
 * the layer's input (act_stats.h: the rectified / clipped normal mean
 * behind a Relu / ReLU6), then b -= (W_hat - W) E[x], summed over a conv's
 * kernel taps and over the input channels of its group. Zero padding is
 * ignored (border outputs see fewer non-zero inputs, so there the shift is
 * over-corrected slightly). Layers whose input statistics are unknown, such
 * as the first layer (the model input's mean is not known without data),
 * are skipped and counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ptq/act_stats.h"
#include "ptq/ptq.h"

/* Bytes of intermediate values kept per batch (keep_all) when choosing
 * the number of images per run. */
#define BC_KEEP_BUDGET ((size_t)64 << 20)
#define BC_MAX_BATCH 32

/* Why layer i's bias cannot be corrected, or NULL if it can. */
static const char *not_correctable(const nnq_qsim *s, int i) {
    const nnq_qsim_layer *L = &s->layers[i];
    if (L->keep_float) return "kept in float";
    if (L->weight_q < 0 || !s->quant[L->weight_q].enabled) return "weights not quantized";
    if (L->bias < 0) return "no bias";
    return NULL;
}

/* The layer's weight layout (nnq_ptq_weight_geom), with a bias to correct. */
static bool layer_geom(const nnq_graph *g, const nnq_qsim_layer *L, nnq_weight_geom *k) {
    return nnq_ptq_weight_geom(g, L, k) && nnq_tensor_numel(&g->values[L->bias].t) == k->out_ch;
}

/* ---- analytical ---- */

/* w_hat = the weight quantizer applied to w (the layout refresh uses). */
static void quantize_weight(const nnq_quantizer *q, const nnq_tensor *w, float *w_hat) {
    int64_t outer = 1, inner = 1;
    if (q->n > 1) {
        for (int d = 0; d < q->axis; d++) outer *= w->dims[d];
        for (int d = q->axis + 1; d < w->rank; d++) inner *= w->dims[d];
    } else {
        inner = nnq_tensor_numel(w);
    }
    nnq_quantizer_apply(q, nnq_f32(w), w_hat, outer, inner);
}

static nnq_status correct_analytical(nnq_qsim *s, int li, const nnq_weight_geom *k, const nnq_vstat *x) {
    const nnq_qsim_layer *L = &s->layers[li];
    const nnq_tensor *wt = &s->g->values[L->weight].t;
    const int64_t numel = nnq_tensor_numel(wt);
    float *w_hat = malloc(sizeof(float) * (size_t)(numel > 0 ? numel : 1));
    if (!w_hat) return nnq_fail(NNQ_ERR_NOMEM, "out of memory correcting the bias of '%s'", L->name);
    quantize_weight(&s->quant[L->weight_q].q, wt, w_hat);
    const float *w = nnq_f32(wt);
    float *b = nnq_f32(&s->g->values[L->bias].t);
    const int64_t per_group = k->out_ch / k->groups;
    for (int64_t o = 0; o < k->out_ch; o++) {
        const int64_t c0 = o / per_group * k->cin;
        double shift = 0;
        for (int64_t i = 0; i < k->cin; i++) {
            const int64_t at = o * k->o_stride + i * k->i_stride;
            double dw = 0;
            for (int64_t t = 0; t < k->taps; t++) dw += (double)w_hat[at + t] - w[at + t];
            shift += dw * x->mean[c0 + i];
        }
        b[o] -= (float)shift;
    }
    free(w_hat);
    return NNQ_OK;
}

nnq_status nnq_ptq_bias_correct_analytical(nnq_qsim *s, const nnq_bn_stats *st,
                                           int *n_corrected, int *n_skipped,
                                           const nnq_ptq_log *log) {
    *n_corrected = *n_skipped = 0;
    nnq_act_stats as;
    NNQ_TRY(nnq_act_stats_compute(s->g, st, NULL, &as));
    nnq_status status = NNQ_OK;
    int corrected = 0, skipped = 0;
    const char *first = NULL, *first_why = NULL;
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        const char *why = not_correctable(s, i);
        const nnq_vstat *x = why ? NULL : nnq_act_stats_get(&as, L->input);
        nnq_weight_geom k;
        if (!why && !x) why = "input statistics unknown";
        if (!why && (!layer_geom(s->g, L, &k) || x->channels != k.cin * k.groups))
            why = "input statistics do not match the weight";
        if (why) {
            if (!first) {
                first = L->name;
                first_why = why;
            }
            skipped++;
            continue;
        }
        if ((status = correct_analytical(s, i, &k, x)) != NNQ_OK) goto done;
        corrected++;
    }
    if ((status = nnq_qsim_sync(s)) != NNQ_OK) goto done;
    *n_corrected = corrected;
    *n_skipped = skipped;
    if (log && log->fp) {
        if (!st || st->n == 0)
            fprintf(log->fp, "bias correction (analytical): the model has no BN statistics "
                             "(BN folded at export?): ");
        else
            fprintf(log->fp, "bias correction (analytical): ");
        fprintf(log->fp, "%d layer(s) corrected, %d skipped", corrected, skipped);
        if (first) fprintf(log->fp, " (first: '%s', %s)", first, first_why);
        fputc('\n', log->fp);
    }
done:
    nnq_act_stats_free(&as);
    return status;
}

/* ---- empirical ---- */

typedef struct bc_layer {
    int layer;
    int depth;     /* pass that corrects it, from 1 */
    int64_t ch;    /* output channels (= bias length) */
    double *mean_f; /* [ch] float model's mean of the pre-activation output */
    double *acc;    /* [ch] per-channel sum in the current run */
    double count;   /* elements per channel summed into acc */
} bc_layer;

/* Add the per-channel sums of t (channels on axis 1 for Conv outputs,
 * on the last axis for Gemm / MatMul) into l->acc. */
static nnq_status accumulate(const nnq_qsim *s, bc_layer *l, const nnq_tensor *t) {
    const nnq_qsim_layer *L = &s->layers[l->layer];
    const bool conv = strcmp(s->g->nodes[L->node].op_type, "Conv") == 0;
    const int axis = !t ? 0 : (conv ? 1 : t->rank - 1);
    if (!t || !t->data || t->rank < 2 || axis < 1 || t->dims[axis] != l->ch)
        return nnq_fail(NNQ_ERR_SHAPE, "bias correction: output of layer '%s' does not have %lld "
                        "channels on axis %d", L->name, (long long)l->ch, axis);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++) inner *= t->dims[d];
    const float *x = nnq_f32(t);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < l->ch; c++) {
            const float *p = x + (o * l->ch + c) * inner;
            double sum = 0;
            for (int64_t i = 0; i < inner; i++) sum += p[i];
            l->acc[c] += sum;
        }
    l->count += (double)(outer * inner);
    return NNQ_OK;
}

/* Images per run so that the intermediates kept (keep_all) fit the budget. */
static nnq_status batch_size(const nnq_graph *g, const nnq_dataset *d, int *out) {
    return nnq_exec_images_per_run(g, d->c, d->h, d->w, BC_KEEP_BUDGET, BC_MAX_BATCH, out);
}

/* Run ex (on graph g) over images [0, n) of d, `batch` at a time, and sum
 * the pre-activation outputs of the layers of depth `depth` (0: all) into
 * their acc. */
static nnq_status run_sums(const nnq_qsim *s, nnq_exec *ex, const nnq_dataset *d, int64_t n,
                           int batch, bc_layer *ls, int nl, int depth) {
    for (int j = 0; j < nl; j++) {
        if (depth && ls[j].depth != depth) continue;
        memset(ls[j].acc, 0, sizeof(double) * (size_t)ls[j].ch);
        ls[j].count = 0;
    }
    for (int64_t start = 0; start < n; start += batch) {
        nnq_tensor x;
        nnq_dataset_batch(d, start, start + batch <= n ? batch : n - start, &x);
        NNQ_TRY(nnq_exec_run(ex, &x));
        for (int j = 0; j < nl; j++)
            if (!depth || ls[j].depth == depth)
                NNQ_TRY(accumulate(s, &ls[j], nnq_exec_value(ex, s->layers[ls[j].layer].pre_act)));
    }
    return NNQ_OK;
}

/* Depth of each corrected layer, from the simulation graph's topological
 * node order; returns the largest. */
static nnq_status layer_depths(const nnq_qsim *s, bc_layer *ls, int nl, int *max_depth) {
    const nnq_graph *g = s->g;
    int *vd = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *vd);
    if (!vd) return nnq_fail(NNQ_ERR_NOMEM, "out of memory planning bias correction");
    *max_depth = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        int d = 0;
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0 && vd[nd->inputs[k]] > d) d = vd[nd->inputs[k]];
        for (int j = 0; j < nl; j++)
            if (s->layers[ls[j].layer].node == n) {
                ls[j].depth = ++d;
                if (d > *max_depth) *max_depth = d;
                break;
            }
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0) vd[nd->outputs[k]] = d;
    }
    free(vd);
    return NNQ_OK;
}

nnq_status nnq_ptq_bias_correct_empirical(nnq_qsim *s, const nnq_graph *float_graph,
                                          const nnq_dataset *d, int64_t n, int threads,
                                          int *n_corrected, const nnq_ptq_log *log) {
    *n_corrected = 0;
    if (float_graph->n_inputs != 1 || s->g->n_inputs != 1)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "bias correction needs a model with one input (it has %d)",
                        float_graph->n_inputs);
    n = n > 0 && n < d->n ? n : d->n;
    if (n <= 0) return nnq_fail(NNQ_ERR_INVALID, "bias correction: no calibration images");
    nnq_status st = NNQ_OK;
    bc_layer *ls = calloc((size_t)(s->n_layers ? s->n_layers : 1), sizeof *ls);
    bool *was_on = calloc((size_t)(s->n_quant ? s->n_quant : 1), sizeof *was_on);
    int nl = 0, max_depth = 0, skipped = 0, batch = 1;
    bool toggled = false;
    nnq_exec *ex = NULL;
    const nnq_exec_options eo = {.threads = threads, .keep_all = true};
    if (!ls || !was_on) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for bias correction");
        goto done;
    }
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        nnq_weight_geom k;
        if (not_correctable(s, i) || !layer_geom(s->g, L, &k)) {
            skipped++;
            continue;
        }
        if (L->pre_act >= float_graph->n_values) {
            st = nnq_fail(NNQ_ERR_INVALID, "bias correction: layer '%s' is not in the float graph "
                          "(the simulation was built from another graph)", L->name);
            goto done;
        }
        bc_layer *l = &ls[nl++];
        l->layer = i;
        l->ch = k.out_ch;
        l->mean_f = calloc((size_t)l->ch * 2, sizeof(double));
        if (!l->mean_f) {
            st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for bias correction");
            goto done;
        }
        l->acc = l->mean_f + l->ch;
    }
    if ((st = layer_depths(s, ls, nl, &max_depth)) != NNQ_OK) goto done;
    /* The float model: every layer's mean in one pass. */
    if ((st = batch_size(float_graph, d, &batch)) != NNQ_OK ||
        (st = nnq_exec_create(float_graph, &eo, &ex)) != NNQ_OK ||
        (st = run_sums(s, ex, d, n, batch, ls, nl, 0)) != NNQ_OK)
        goto done;
    nnq_exec_free(ex);
    ex = NULL;
    for (int j = 0; j < nl; j++)
        for (int64_t c = 0; c < ls[j].ch; c++) ls[j].mean_f[c] = ls[j].acc[c] / ls[j].count;
    if (log && log->fp)
        fprintf(log->fp, "bias correction (empirical): float pass over %lld image(s), %d layer(s) "
                "to correct in %d pass(es), %d skipped\n", (long long)n, nl, max_depth, skipped);
    /* The simulation: weights as they are, activations in float. */
    for (int i = 0; i < s->n_quant; i++) was_on[i] = s->quant[i].enabled;
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    toggled = true;
    /* One executor for every pass: sync rewrites parameters in place. */
    if ((st = nnq_qsim_sync(s)) != NNQ_OK || (st = batch_size(s->g, d, &batch)) != NNQ_OK ||
        (st = nnq_exec_create(s->g, &eo, &ex)) != NNQ_OK)
        goto done;
    for (int depth = 1; depth <= max_depth; depth++) {
        if ((st = run_sums(s, ex, d, n, batch, ls, nl, depth)) != NNQ_OK) goto done;
        double sum_abs = 0, max_abs = 0, cnt = 0;
        const char *name = NULL;
        int in_pass = 0;
        for (int j = 0; j < nl; j++) {
            if (ls[j].depth != depth) continue;
            float *b = nnq_f32(&s->g->values[s->layers[ls[j].layer].bias].t);
            for (int64_t c = 0; c < ls[j].ch; c++) {
                const double diff = ls[j].acc[c] / ls[j].count - ls[j].mean_f[c];
                b[c] -= (float)diff;
                sum_abs += fabs(diff);
                max_abs = fabs(diff) > max_abs ? fabs(diff) : max_abs;
                cnt++;
            }
            if (!name) name = s->layers[ls[j].layer].name;
            in_pass++;
        }
        if ((st = nnq_qsim_sync(s)) != NNQ_OK) goto done;
        if (log && log->fp && in_pass)
            fprintf(log->fp, "bias correction (empirical): pass %d/%d: '%s' (+%d more), mean "
                    "|bias shift| %.3g, max %.3g\n", depth, max_depth, name, in_pass - 1,
                    cnt ? sum_abs / cnt : 0.0, max_abs);
    }
    *n_corrected = nl;
done:
    nnq_exec_free(ex);
    if (toggled) {
        for (int i = 0; i < s->n_quant; i++)
            if (s->quant[i].role == NNQ_QROLE_ACT) s->quant[i].enabled = was_on[i];
        nnq_status st2 = nnq_qsim_sync(s);
        if (st == NNQ_OK) st = st2;
    }
    for (int j = 0; j < nl; j++) free(ls[j].mean_f);
    free(ls);
    free(was_on);
    return st;
}
