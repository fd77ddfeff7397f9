/* Per-layer measurements: what each layer is, the SQNR of its quantized
 * weights and output (float graph vs simulation), and its sensitivity
 * (top-1 lost, or logits SQNR, with only that layer quantized). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "diag/diag_impl.h"

static void layer_kind(const nnq_graph *g, const nnq_qsim_layer *L, nnq_diag_layer *dl) {
    const nnq_node *nd = &g->nodes[L->node];
    const nnq_tensor *w = &g->values[L->weight].t;
    const char *kind = "matmul";
    if (strcmp(nd->op_type, "Gemm") == 0) kind = "gemm";
    if (strcmp(nd->op_type, "Conv") == 0) {
        const int64_t groups = nnq_node_attr_int(nd, "group", 1);
        kind = groups == 1 ? "conv" : (w->rank > 1 && w->dims[1] == 1 ? "depthwise" : "grouped conv");
    }
    snprintf(dl->kind, sizeof dl->kind, "%s", kind);
    dl->out_ch = w->rank > L->w_axis ? w->dims[L->w_axis] : 1;
    dl->params = nnq_tensor_numel(w);
}

static int bits_of(const nnq_qsim *s, int q) {
    return q >= 0 && s->quant[q].enabled ? s->quant[q].q.cfg.bits : 0;
}

/* Weight SQNR: the float graph's weight vs the simulation's quantized one
 * (the constant FakeQuant output, which AdaRound's rounding is part of). */
static double weight_sqnr(const nnq_qsim *s, const nnq_qsim_layer *L, const nnq_graph *fg,
                          const int *fmap) {
    if (L->weight_q < 0 || !s->quant[L->weight_q].enabled || fmap[L->weight] < 0) return NAN;
    const nnq_tensor *w = &fg->values[fmap[L->weight]].t;
    const nnq_tensor *q = &s->g->values[s->quant[L->weight_q].output].t;
    if (!w->data || !q->data || nnq_tensor_numel(w) != nnq_tensor_numel(q)) return NAN;
    double sig = 0, noise = 0;
    for (int64_t i = 0; i < nnq_tensor_numel(w); i++) {
        const double a = nnq_f32(w)[i], b = nnq_f32(q)[i];
        sig += a * a;
        noise += (a - b) * (a - b);
    }
    return nnq_diag_sqnr_db(sig, noise);
}

nnq_status nnq_diag_layers(nnq_diag *d, const nnq_qsim *s, const nnq_graph *fg, const int *fmap,
                           const nnq_dataset *images, int64_t n, bool engine, int threads) {
    d->layers = calloc((size_t)(s->n_layers ? s->n_layers : 1), sizeof *d->layers);
    if (!d->layers) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the layer table");
    d->n_layers = s->n_layers;
    double *sig = calloc((size_t)(s->n_layers ? s->n_layers : 1) * 2, sizeof *sig), *noise = sig + s->n_layers;
    if (!sig) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the layer table");
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        nnq_diag_layer *dl = &d->layers[i];
        dl->name = nnq_strdup(L->name);
        if (!dl->name) {
            free(sig);
            return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the layer table");
        }
        layer_kind(s->g, L, dl);
        dl->wbits = bits_of(s, L->weight_q);
        dl->abits = bits_of(s, L->output_q);
        dl->w_sqnr_db = weight_sqnr(s, L, fg, fmap);
        dl->a_sqnr_db = dl->a_sqnr_int_db = dl->drop_w = dl->drop_a = NAN;
        dl->int_sim_max = dl->int_qsim_steps = dl->int_qsim_differ = NAN;
    }
    /* Activations: both graphs (and the engine) on the same images, every value kept. */
    if (n <= 0 || n > images->n) n = images->n;
    nnq_exec *ef = NULL, *es = NULL;
    nnq_diag_engine *en = NULL;
    const nnq_exec_options eo = {.threads = threads, .keep_all = true};
    nnq_status st = nnq_exec_create(fg, &eo, &ef);
    if (st == NNQ_OK) st = nnq_exec_create(s->g, &eo, &es);
    if (st == NNQ_OK && engine) st = nnq_diag_engine_open(d, s, threads, &en);
    for (int64_t start = 0; st == NNQ_OK && start < n; start += 32) {
        const int64_t count = n - start < 32 ? n - start : 32;
        nnq_tensor x;
        nnq_dataset_batch(images, start, count, &x);
        if ((st = nnq_exec_run(ef, &x)) != NNQ_OK || (st = nnq_exec_run(es, &x)) != NNQ_OK) break;
        for (int i = 0; i < s->n_layers; i++) {
            const nnq_qsim_layer *L = &s->layers[i];
            const int qv = L->output_q >= 0 ? s->quant[L->output_q].output : L->output;
            const nnq_tensor *a = fmap[L->output] >= 0 ? nnq_exec_value(ef, fmap[L->output]) : NULL;
            const nnq_tensor *b = nnq_exec_value(es, qv);
            if (!a || !b || !a->data || !b->data || nnq_tensor_numel(a) != nnq_tensor_numel(b)) continue;
            for (int64_t k = 0; k < nnq_tensor_numel(a); k++) {
                const double u = nnq_f32(a)[k], v = nnq_f32(b)[k];
                sig[i] += u * u;
                noise[i] += (u - v) * (u - v);
            }
        }
        if (en) st = nnq_diag_engine_batch(en, &x, ef, fmap, es);
    }
    nnq_exec_free(ef);
    nnq_exec_free(es);
    for (int i = 0; st == NNQ_OK && i < s->n_layers; i++)
        d->layers[i].a_sqnr_db = nnq_diag_sqnr_db(sig[i], noise[i]);
    if (st == NNQ_OK && en) nnq_diag_engine_finish(en, d);
    nnq_diag_engine_free(en);
    free(sig);
    return st;
}

/* Evaluate with only the quantizers flagged in `on` enabled; the drop in
 * top-1 points from float, or (unlabelled) the logits SQNR in dB. */
static nnq_status eval_with(nnq_qsim *s, const bool *on, const nnq_dataset *eval, int64_t n,
                            const float *float_logits, double float_top1, int threads, double *out) {
    for (int i = 0; i < s->n_quant; i++) s->quant[i].enabled = on[i];
    NNQ_TRY(nnq_qsim_sync(s));
    double top1, sqnr;
    NNQ_TRY(nnq_diag_eval(s->g, eval, n, threads, eval->labels ? NULL : float_logits, &top1, &sqnr, NULL));
    *out = eval->labels ? float_top1 - top1 : sqnr;
    return NNQ_OK;
}

nnq_status nnq_diag_sensitivity(nnq_diag *d, nnq_qsim *s, const nnq_dataset *eval, int64_t n,
                                const float *float_logits, int threads, const nnq_ptq_log *log) {
    bool *saved = malloc(sizeof(bool) * (size_t)(s->n_quant ? s->n_quant : 1));
    bool *on = calloc((size_t)(s->n_quant ? s->n_quant : 1), sizeof(bool));
    nnq_status st = saved && on ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory in sensitivity");
    for (int i = 0; st == NNQ_OK && i < s->n_quant; i++) saved[i] = s->quant[i].enabled;
    const double t0 = nnq_diag_now();
    for (int i = 0; st == NNQ_OK && i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        nnq_diag_layer *dl = &d->layers[i];
        if (L->weight_q >= 0 && saved[L->weight_q]) {
            on[L->weight_q] = true;
            st = eval_with(s, on, eval, n, float_logits, d->float_top1, threads, &dl->drop_w);
            on[L->weight_q] = false;
        }
        if (st == NNQ_OK && L->output_q >= 0 && saved[L->output_q]) {
            on[L->output_q] = true;
            st = eval_with(s, on, eval, n, float_logits, d->float_top1, threads, &dl->drop_a);
            on[L->output_q] = false;
        }
        if (log && st == NNQ_OK) nnq_progress_report(&log->progress, "sensitivity", "layers", i + 1, s->n_layers);
        if (log && log->fp && st == NNQ_OK)
            fprintf(log->fp, "sensitivity: layer %d/%d %-32s weights %.2f, output %.2f%s (%.0f s)\n",
                    i + 1, s->n_layers, L->name, dl->drop_w, dl->drop_a,
                    eval->labels ? " points" : " dB", nnq_diag_now() - t0);
    }
    if (saved) {
        for (int i = 0; i < s->n_quant; i++) s->quant[i].enabled = saved[i];
        nnq_status s2 = nnq_qsim_sync(s);
        if (st == NNQ_OK) st = s2;
    }
    free(saved);
    free(on);
    return st;
}
