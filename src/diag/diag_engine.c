/* The integer engine in the per-layer table: the simulation exported as
 * the QDQ model `nnq quantize` writes, serialized and loaded back (so the
 * engine sees the file's graph, not an in-memory shortcut), lowered, and
 * run on its two executors beside the float graph and the simulation:
 *   - SQNR of each layer's output in the engine (INT) against float;
 *   - max |INT - SIM| (SIM: the same program on nnq's float ops; 0 is the
 *     engine's promise: what you simulate is what you run);
 *   - INT against the quantization simulation the PTQ passes tuned: the
 *     share of output elements that differ and by how many steps (the
 *     engine requantizes an exact int32 accumulator with one fixed-point
 *     multiplier; the simulation rounds a float convolution, so they may
 *     differ by a step near ties, and the difference travels downstream).
 * A layer's output is the tensor of its QuantizeLinear's output (the
 * DequantizeLinear after it reads the same bytes), or of its own float
 * output when the layer is left in float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "diag/diag_impl.h"
#include "engine/iprog.h"
#include "onnx/onnx_io.h"
#include "quant/qdq_export.h"

typedef struct tap {
    int layer;
    char *name;    /* program tensor */
    int qv;        /* the simulation's value of the layer output (sim graph) */
    int fv;        /* the float graph's (through fmap: resolved per batch) */
    double step;   /* output grid step (0: float output) */
    double sig, noise, int_sim, steps;
    int64_t differ, total;
} tap;

struct nnq_diag_engine {
    nnq_iprog *p;
    nnq_iexec *x_int, *x_sim;
    const nnq_qsim *s;
    int n_taps;
    tap *taps;
    const char **names;      /* [n_taps] */
    nnq_tensor *o_int, *o_sim; /* [n_taps] */
};

void nnq_diag_engine_free(nnq_diag_engine *en) {
    if (!en) return;
    for (int k = 0; k < en->n_taps; k++) {
        free(en->taps[k].name);
        if (en->o_int) nnq_tensor_release(&en->o_int[k]);
        if (en->o_sim) nnq_tensor_release(&en->o_sim[k]);
    }
    free(en->taps);
    free(en->names);
    free(en->o_int);
    free(en->o_sim);
    nnq_iexec_free(en->x_int);
    nnq_iexec_free(en->x_sim);
    nnq_iprog_free(en->p);
    free(en);
}

/* The program tensor that holds layer L's output, read from the QDQ graph
 * q: the input of the DequantizeLinear that replaced its output FakeQuant;
 * its float output's own name for a layer left in float. NULL: none. */
static const char *output_tensor(const nnq_graph *q, const nnq_qsim *s, const nnq_qsim_layer *L) {
    if (L->output_q < 0 || !s->quant[L->output_q].enabled) return s->g->values[L->output].name;
    const int v = nnq_graph_find_value(q, s->g->values[s->quant[L->output_q].output].name);
    const int n = v >= 0 ? q->values[v].producer : -1;
    if (n < 0 || strcmp(q->nodes[n].op_type, "DequantizeLinear") != 0 || q->nodes[n].n_inputs < 1 ||
        q->nodes[n].inputs[0] < 0)
        return NULL;
    return q->values[q->nodes[n].inputs[0]].name;
}

/* Export, serialize, load back, lower. A failure other than memory is the
 * engine's answer about this model: kept in `why`, not raised. */
static nnq_status lower(const nnq_qsim *s, nnq_graph **q, nnq_iprog **p, char *why, size_t cap) {
    unsigned char *buf;
    size_t len;
    nnq_status st = nnq_diag_export_qdq(s, &buf, &len);
    if (st == NNQ_OK) st = nnq_onnx_load_bytes(buf, len, "the exported QDQ model", q);
    free(buf);
    if (st == NNQ_OK) st = nnq_iprog_prepare_graph(*q);
    if (st == NNQ_OK) st = nnq_iprog_lower(*q, p);
    if (st != NNQ_OK) snprintf(why, cap, "%s", nnq_last_error());
    return st == NNQ_ERR_NOMEM ? st : NNQ_OK;
}

nnq_status nnq_diag_engine_open(nnq_diag *d, const nnq_qsim *s, int threads, nnq_diag_engine **out) {
    *out = NULL;
    d->engine_note[0] = 0;
    nnq_graph *q = NULL;
    nnq_diag_engine *en = calloc(1, sizeof *en);
    if (!en) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the engine comparison");
    en->s = s;
    char why[sizeof d->engine_note] = "";
    nnq_status st = lower(s, &q, &en->p, why, sizeof why);
    if (st == NNQ_OK && !en->p) {
        snprintf(d->engine_note, sizeof d->engine_note, "not measured: %.480s", why);
        nnq_graph_free(q);
        nnq_diag_engine_free(en);
        return NNQ_OK;
    }
    const size_t nl = (size_t)(s->n_layers ? s->n_layers : 1);
    en->taps = calloc(nl, sizeof *en->taps);
    en->names = calloc(nl, sizeof *en->names);
    en->o_int = calloc(nl, sizeof *en->o_int);
    en->o_sim = calloc(nl, sizeof *en->o_sim);
    if (st == NNQ_OK && (!en->taps || !en->names || !en->o_int || !en->o_sim))
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for the engine comparison");
    for (int i = 0; st == NNQ_OK && i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        const char *name = output_tensor(q, s, L);
        if (!name || nnq_iprog_find_tensor(en->p, name) < 0) continue; /* not measured */
        tap *t = &en->taps[en->n_taps];
        t->layer = i;
        t->qv = L->output_q >= 0 ? s->quant[L->output_q].output : L->output;
        t->fv = L->output;
        if (L->output_q >= 0 && s->quant[L->output_q].enabled) t->step = s->quant[L->output_q].q.scale[0];
        if (!(t->name = nnq_strdup(name)))
            st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for the engine comparison");
        en->names[en->n_taps++] = t->name;
    }
    if (st == NNQ_OK) st = nnq_iexec_create(en->p, NNQ_ENGINE_INT, threads, &en->x_int);
    if (st == NNQ_OK) st = nnq_iexec_create(en->p, NNQ_ENGINE_SIM, threads, &en->x_sim);
    if (st == NNQ_OK) {
        d->engine_float_nodes = nnq_iprog_float_nodes(en->p);
        for (int k = 0; k < en->n_taps; k++) {
            const int i = en->taps[k].layer;
            snprintf(d->layers[i].engine, sizeof d->layers[i].engine, "%s",
                     nnq_iprog_node_in_float(en->p, s->layers[i].name) ? "float" : "int");
        }
        if (nnq_iprog_note_count(en->p) > 0) /* the first note; the CLI's `nnq lower` lists all */
            snprintf(d->engine_note, sizeof d->engine_note, "%d node(s) run in float, e.g. %s",
                     d->engine_float_nodes, nnq_iprog_note(en->p, 0));
    }
    nnq_graph_free(q);
    if (st != NNQ_OK) {
        nnq_diag_engine_free(en);
        return st;
    }
    *out = en;
    return NNQ_OK;
}

nnq_status nnq_diag_engine_batch(nnq_diag_engine *en, const nnq_tensor *x, const nnq_exec *ef,
                                 const int *fmap, const nnq_exec *es) {
    for (int k = 0; k < en->n_taps; k++) {
        nnq_tensor_release(&en->o_int[k]);
        nnq_tensor_release(&en->o_sim[k]);
    }
    NNQ_TRY(nnq_iexec_run_collect(en->x_int, x, en->n_taps, en->names, en->o_int));
    NNQ_TRY(nnq_iexec_run_collect(en->x_sim, x, en->n_taps, en->names, en->o_sim));
    for (int k = 0; k < en->n_taps; k++) {
        tap *t = &en->taps[k];
        const nnq_tensor *a = fmap[t->fv] >= 0 ? nnq_exec_value(ef, fmap[t->fv]) : NULL;
        const nnq_tensor *b = nnq_exec_value(es, t->qv);
        const nnq_tensor *ci = &en->o_int[k], *cs = &en->o_sim[k];
        const int64_t n = nnq_tensor_numel(ci);
        if (!a || !b || !a->data || !b->data || nnq_tensor_numel(a) != n || nnq_tensor_numel(b) != n ||
            nnq_tensor_numel(cs) != n)
            return nnq_fail(NNQ_ERR_SHAPE, "layer '%s': the engine's tensor '%s' does not match the "
                            "simulation's output", en->s->layers[t->layer].name, t->name);
        const float *fa = nnq_f32(a), *fb = nnq_f32(b), *fi = nnq_f32(ci), *fs = nnq_f32(cs);
        for (int64_t i = 0; i < n; i++) {
            const double u = fa[i], v = fi[i];
            t->sig += u * u;
            t->noise += (u - v) * (u - v);
            t->int_sim = fmax(t->int_sim, fabs(v - fs[i]));
            if (fi[i] != fb[i]) {
                t->differ++;
                if (t->step > 0) t->steps = fmax(t->steps, nearbyint(fabs(v - fb[i]) / t->step));
            }
        }
        t->total += n;
    }
    return NNQ_OK;
}

void nnq_diag_engine_finish(const nnq_diag_engine *en, nnq_diag *d) {
    d->has_engine = en->n_taps > 0;
    for (int k = 0; k < en->n_taps; k++) {
        const tap *t = &en->taps[k];
        nnq_diag_layer *l = &d->layers[t->layer];
        l->a_sqnr_int_db = nnq_diag_sqnr_db(t->sig, t->noise);
        l->int_sim_max = t->int_sim;
        l->int_qsim_steps = t->step > 0 ? t->steps : NAN;
        l->int_qsim_differ = t->total > 0 ? 100.0 * (double)t->differ / (double)t->total : NAN;
    }
}
