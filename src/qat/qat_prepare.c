/* Building QAT's graphs (qat.h): the teacher, the simulation on the
 * BN-folded model, and the trainable simulation g with its FakeQuant nodes
 * configured for the method and, with per-channel weights, BN put back. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "ptq/ptq.h"
#include "qat/qat.h"

static const char *const method_names[] = {"ste", "lsq", "lsq+"};
static const char *const init_names[] = {"mse", "minmax", "lsq"};

const char *nnq_qat_method_name(nnq_qat_method m) {
    return (unsigned)m < 3 ? method_names[m] : "?";
}

bool nnq_qat_method_parse(const char *s, nnq_qat_method *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, method_names[i]) == 0) return *out = (nnq_qat_method)i, true;
    return false;
}

const char *nnq_qat_init_name(nnq_qat_init i) { return (unsigned)i < 3 ? init_names[i] : "?"; }

bool nnq_qat_init_parse(const char *s, nnq_qat_init *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, init_names[i]) == 0) return *out = (nnq_qat_init)i, true;
    return false;
}

void nnq_qat_options_default(nnq_qat_options *o) {
    memset(o, 0, sizeof *o);
    o->method = NNQ_QAT_LSQ;
    o->init = NNQ_QAT_INIT_MSE;
    nnq_qsim_options_default(&o->qsim);
    o->qsim.weights.bits = 4;
    o->qsim.acts.bits = 4;
    o->qsim.first_last_bits = 8;
    o->calib_n = 1024;
    o->calib_batch = 64;
    o->keep_bn = true;
    o->qlr_mult = 0.1f;
    o->distill_alpha = 1.0f;
    o->lsqp_steps = 300;
}

void nnq_qat_free(nnq_qat *q) {
    if (!q) return;
    nnq_exec_free(q->teacher_exec);
    nnq_graph_free(q->teacher);
    nnq_qsim_free(q->sim);
    nnq_graph_free(q->g);
    free(q->q);
    free(q->bn);
    free(q);
}

/* ---- BN put back (per-channel weights) ---- */

/* The teacher's BatchNormalization writing the value named `name` after a
 * Conv or Gemm with a constant weight: its node and the layer's, or false. */
static bool find_bn(const nnq_graph *f, const char *name, int *bn, int *layer) {
    for (int n = 0; n < f->n_nodes; n++) {
        const nnq_node *nd = &f->nodes[n];
        if (strcmp(nd->op_type, "BatchNormalization") != 0 || nd->n_inputs != 5 ||
            nd->n_outputs < 1 || nd->outputs[0] < 0 ||
            strcmp(f->values[nd->outputs[0]].name, name) != 0)
            continue;
        const int p = f->values[nd->inputs[0]].producer;
        if (p < 0) return false;
        const nnq_node *ln = &f->nodes[p];
        if ((strcmp(ln->op_type, "Conv") != 0 && strcmp(ln->op_type, "Gemm") != 0) ||
            ln->n_inputs < 2 || !f->values[ln->inputs[1]].t.data)
            return false;
        for (int k = 1; k < 5; k++)
            if (!f->values[nd->inputs[k]].t.data ||
                f->values[nd->inputs[k]].t.dtype != NNQ_DT_FLOAT)
                return false;
        *bn = n;
        *layer = p;
        return true;
    }
    return false;
}

/* A copy of the teacher's initializer v added to g under a free name. */
static nnq_status copy_init(nnq_graph *g, const nnq_graph *f, int v, int *out) {
    char name[NNQ_MAX_NAME + 16];
    nnq_tensor t = {0};
    NNQ_TRY(nnq_graph_unique_name(g, f->values[v].name, name, sizeof name));
    NNQ_TRY(nnq_tensor_clone(&t, &f->values[v].t));
    nnq_status s = nnq_graph_add_initializer(g, name, &t, out);
    if (s != NNQ_OK) nnq_tensor_release(&t);
    return s;
}

/* Put the teacher's BN of sim layer li back into g, and the layer's
 * unfolded weights and bias; no-op when the layer had none. */
static nnq_status put_back_bn(nnq_qat *qa, int li) {
    nnq_graph *g = qa->g;
    const nnq_graph *f = qa->teacher;
    const nnq_qsim_layer *L = &qa->sim->layers[li];
    const int P = L->pre_act;
    int bn_node, layer_node;
    if (!find_bn(f, g->values[P].name, &bn_node, &layer_node)) return NNQ_OK;
    const nnq_node *bn = &f->nodes[bn_node], *ln = &f->nodes[layer_node];
    const nnq_tensor *wf = &f->values[ln->inputs[1]].t;
    nnq_tensor *wg = &g->values[L->weight].t;
    if (!nnq_shape_equal(wf, wg) || wf->dtype != NNQ_DT_FLOAT) return NNQ_OK;
    const int64_t ch = wg->dims[L->w_axis];
    for (int k = 1; k < 5; k++)
        if (nnq_tensor_numel(&f->values[bn->inputs[k]].t) != ch) return NNQ_OK;
    /* The layer's own weights and bias (a folded layer always has a bias),
     * and weight scales s / |a| (a = gamma / sqrt(var + eps)): the unfolded
     * weights then round to the integers the folded ones had. */
    memcpy(wg->data, wf->data, sizeof(float) * (size_t)nnq_tensor_numel(wg));
    const nnq_qsim_quant *wq = &qa->sim->quant[L->weight_q];
    float *ws = nnq_f32(&g->values[wq->scale_value].t);
    const float *gamma = nnq_f32(&f->values[bn->inputs[1]].t);
    const float *var = nnq_f32(&f->values[bn->inputs[4]].t);
    const double eps = nnq_node_attr_float(bn, "epsilon", 1e-5f);
    for (int64_t c = 0; c < ch && wq->q.n == ch; c++) {
        const double d = (var[c] > 0 ? var[c] : 0.0) + eps;
        const double a = d > 0 ? fabs(gamma[c]) / sqrt(d) : 0.0;
        const float s = (float)(ws[c] / a);
        if (a > 0 && s >= FLT_MIN && isfinite(s)) ws[c] = s;
    }
    if (L->bias >= 0) {
        float *b = nnq_f32(&g->values[L->bias].t);
        const int bv = ln->n_inputs > 2 ? ln->inputs[2] : -1;
        const bool has = bv >= 0 && f->values[bv].t.data &&
                         nnq_tensor_numel(&f->values[bv].t) == ch;
        for (int64_t c = 0; c < ch; c++) b[c] = has ? nnq_f32(&f->values[bv].t)[c] : 0.0f;
    }
    nnq_qat_bn e = {.layer = li, .eps = nnq_node_attr_float(bn, "epsilon", 1e-5f)};
    NNQ_TRY(copy_init(g, f, bn->inputs[1], &e.scale));
    NNQ_TRY(copy_init(g, f, bn->inputs[2], &e.bias));
    NNQ_TRY(copy_init(g, f, bn->inputs[3], &e.mean));
    NNQ_TRY(copy_init(g, f, bn->inputs[4], &e.var));
    NNQ_TRY(copy_init(g, f, bn->inputs[2], &e.shifted_bias)); /* nnq_qat_bn_shift */
    char want[NNQ_MAX_NAME + 16], name[NNQ_MAX_NAME + 32];
    snprintf(want, sizeof want, "%s_prebn", g->values[P].name);
    NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
    NNQ_TRY(nnq_graph_add_value(g, name, &e.conv_out));
    /* The layer now writes conv_out; BN writes P, which its readers keep. */
    int layer = -1;
    for (int n = 0; n < g->n_nodes && layer < 0; n++)
        if (g->nodes[n].n_outputs > 0 && g->nodes[n].outputs[0] == P) layer = n;
    if (layer < 0) return nnq_fail(NNQ_ERR_INVALID, "internal: no node writes '%s'",
                                   g->values[P].name);
    g->nodes[layer].outputs[0] = e.conv_out;
    g->values[e.conv_out].producer = layer;
    snprintf(want, sizeof want, "%s_bn", g->values[P].name);
    const int in[5] = {e.conv_out, e.scale, e.bias, e.mean, e.var};
    int node;
    NNQ_TRY(nnq_graph_add_node(g, want, "BatchNormalization", "", 5, in, 1, &P, &node));
    NNQ_TRY(nnq_node_set_float(&g->nodes[node], "epsilon", e.eps));
    NNQ_TRY(nnq_node_set_float(&g->nodes[node], "momentum",
                               nnq_node_attr_float(bn, "momentum", 0.9f)));
    nnq_qat_bn *nb = realloc(qa->bn, sizeof *nb * (size_t)(qa->n_bn + 1));
    if (!nb) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    qa->bn = nb;
    qa->bn[qa->n_bn++] = e;
    return NNQ_OK;
}

/* ---- FakeQuant nodes of g ---- */

static int fq_node(const nnq_graph *g, int out) {
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].n_outputs > 0 && g->nodes[n].outputs[0] == out &&
            strcmp(g->nodes[n].op_type, "FakeQuant") == 0)
            return n;
    return -1;
}

/* An initializer of n floats named "<base><suffix>". */
static nnq_status add_floats(nnq_graph *g, const char *base, const char *suffix, int n,
                             const float *v, int *out) {
    char want[NNQ_MAX_NAME + 32], name[NNQ_MAX_NAME + 48];
    snprintf(want, sizeof want, "%s%s", base, suffix);
    NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
    nnq_tensor t = {0};
    const int64_t dims[1] = {n};
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 1, dims));
    memcpy(t.data, v, sizeof(float) * (size_t)n);
    nnq_status s = nnq_graph_add_initializer(g, name, &t, out);
    if (s != NNQ_OK) nnq_tensor_release(&t);
    return s;
}

/* Running-range state of an STE quantizer, from its current range. */
static nnq_status add_ema_state(nnq_qat *qa, int i) {
    const nnq_qsim_quant *q = &qa->sim->quant[i];
    float *lo = malloc(sizeof(float) * (size_t)q->q.n), *hi = malloc(sizeof(float) * (size_t)q->q.n);
    nnq_status s = NNQ_OK;
    if (!lo || !hi) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* From g's parameters: a kept BN's layer has unfolded weight scales. */
    const float *sc = nnq_f32(&qa->g->values[q->scale_value].t);
    const float *zp = nnq_f32(&qa->g->values[q->zero_point_value].t);
    for (int c = 0; c < q->q.n; c++) {
        lo[c] = sc[c] * ((float)q->q.qmin - zp[c]);
        hi[c] = sc[c] * ((float)q->q.qmax - zp[c]);
    }
    const char *base = qa->g->values[q->input].name;
    if ((s = add_floats(qa->g, base, "_fq_ema_min", q->q.n, lo, &qa->q[i].ema_lo)) == NNQ_OK)
        s = add_floats(qa->g, base, "_fq_ema_max", q->q.n, hi, &qa->q[i].ema_hi);
done:
    free(lo);
    free(hi);
    return s;
}

/* Configure quantizer i's FakeQuant in g for the method. `shapes`: value
 * shapes of g (per image: batch 1). */
static nnq_status configure_quant(nnq_qat *qa, int i, const nnq_tensor *shapes) {
    const nnq_qsim *sim = qa->sim;
    const nnq_qsim_quant *q = &sim->quant[i];
    nnq_qat_quant *t = &qa->q[i];
    nnq_graph *g = qa->g;
    const int n = fq_node(g, q->output);
    t->grad_scale = 1.0f;
    t->ema_lo = t->ema_hi = -1;
    if (n < 0) return nnq_fail(NNQ_ERR_INVALID, "internal: FakeQuant of '%s' not found",
                               g->values[q->input].name);
    nnq_node *nd = &g->nodes[n];
    if (!q->enabled || q->role == NNQ_QROLE_BIAS) return NNQ_OK; /* bias: nnq_qat_sync_bias */
    if (q->tied >= 0) {
        int root = q->tied;
        while (sim->quant[root].tied >= 0) root = sim->quant[root].tied;
        nd->inputs[1] = sim->quant[root].scale_value;
        nd->inputs[2] = sim->quant[root].zero_point_value;
        return NNQ_OK;
    }
    if (qa->opt.method == NNQ_QAT_STE) return qa->opt.ema > 0 ? add_ema_state(qa, i) : NNQ_OK;
    /* N: elements per channel of a weight, features per image of an activation. */
    int64_t numel = q->role == NNQ_QROLE_WEIGHT ? nnq_tensor_numel(&g->values[q->input].t) / q->q.n
                                                : nnq_tensor_numel(&shapes[q->input]);
    /* Qp: grid steps above zero (qmax for z = 0; LSQ's signed grid has z mid-range). */
    const int32_t qp = q->q.qmax - q->q.zero_point[0];
    t->learn_scale = true;
    t->grad_scale = nnq_qat_grad_scale(numel, qp > 0 ? qp : q->q.qmax - q->q.qmin);
    NNQ_TRY(nnq_node_set_float(nd, "grad_scale", t->grad_scale));
    if (qa->opt.method == NNQ_QAT_LSQ_PLUS && q->role == NNQ_QROLE_ACT && !q->q.cfg.symmetric) {
        t->learn_zp = true;
        nnq_f32(&g->values[q->zero_point_value].t)[0] = t->zp_real;
        NNQ_TRY(nnq_node_set_int(nd, "round_zero_point", 1));
    }
    return NNQ_OK;
}

nnq_status nnq_qat_build_graph(nnq_qat *qa) {
    const nnq_qsim *sim = qa->sim;
    nnq_tensor *shapes = NULL;
    NNQ_TRY(nnq_graph_clone(sim->g, &qa->g));
    if (qa->opt.keep_bn && sim->opt.weights.per_channel)
        for (int i = 0; i < sim->n_layers; i++) NNQ_TRY(put_back_bn(qa, i));
    /* Weights and biases (and their scales) may have changed: drop the
     * constants the clone copied, so preparing folds them afresh. */
    for (int i = 0; i < sim->n_quant; i++)
        if (sim->quant[i].role != NNQ_QROLE_ACT)
            nnq_tensor_release(&qa->g->values[sim->quant[i].output].t);
    NNQ_TRY(nnq_graph_prepare(qa->g));
    shapes = calloc((size_t)qa->g->n_values, sizeof *shapes);
    if (!shapes) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    nnq_status s = nnq_graph_infer_shapes(qa->g, NULL, shapes);
    for (int i = 0; i < sim->n_quant && s == NNQ_OK; i++) s = configure_quant(qa, i, shapes);
    free(shapes);
    if (s == NNQ_OK) nnq_qat_sync_bias(qa);
    if (s == NNQ_OK) s = nnq_qat_bn_shift(qa, true);
    return s;
}

void nnq_qat_sync_bias(nnq_qat *qa) {
    const nnq_qsim *sim = qa->sim;
    nnq_graph *g = qa->g;
    for (int i = 0; i < sim->n_quant; i++) {
        const nnq_qsim_quant *q = &sim->quant[i];
        if (q->role != NNQ_QROLE_BIAS) continue;
        const nnq_qsim_layer *L = &sim->layers[q->layer];
        int x = L->input_q;
        while (sim->quant[x].tied >= 0) x = sim->quant[x].tied;
        const nnq_qsim_quant *w = &sim->quant[L->weight_q];
        const float *xs = nnq_f32(&g->values[sim->quant[x].scale_value].t);
        const float *ws = nnq_f32(&g->values[w->scale_value].t);
        float *bs = nnq_f32(&g->values[q->scale_value].t);
        /* as nnq_qsim_sync's bias scales, in float */
        for (int c = 0; c < q->q.n; c++) bs[c] = xs[0] * ws[w->q.n > 1 ? c : 0];
    }
}

nnq_status nnq_qat_create(const nnq_graph *model, const nnq_dataset *calib,
                          const nnq_qat_options *o, nnq_qat **out) {
    *out = NULL;
    nnq_graph *folded = NULL;
    nnq_qat *qa = calloc(1, sizeof *qa);
    nnq_status s = NNQ_OK;
    if (!qa) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating QAT");
    if (o) qa->opt = *o;
    else nnq_qat_options_default(&qa->opt);
    if (!calib || calib->n < 1) {
        s = nnq_fail(NNQ_ERR_INVALID, "QAT needs calibration images to initialise its ranges");
        goto fail;
    }
    if ((unsigned)qa->opt.method > NNQ_QAT_LSQ_PLUS || (unsigned)qa->opt.init > NNQ_QAT_INIT_LSQ ||
        !(qa->opt.ema >= 0 && qa->opt.ema <= 1) || !(qa->opt.qlr_mult >= 0) ||
        !(qa->opt.distill_t >= 0) || !(qa->opt.distill_alpha >= 0 && qa->opt.distill_alpha <= 1)) {
        s = nnq_fail(NNQ_ERR_INVALID, "QAT options out of range (method, init, ema in [0, 1], "
                     "qlr >= 0, distillation temperature >= 0, alpha in [0, 1])");
        goto fail;
    }
    if ((s = nnq_graph_clone(model, &qa->teacher)) != NNQ_OK ||
        (s = nnq_graph_prepare(qa->teacher)) != NNQ_OK ||
        (s = nnq_graph_clone(qa->teacher, &folded)) != NNQ_OK ||
        (s = nnq_ptq_fold_bn(folded, NULL, &qa->n_folded_bn, NULL, NULL)) != NNQ_OK ||
        (s = nnq_qsim_create(folded, &qa->opt.qsim, &qa->sim)) != NNQ_OK)
        goto fail;
    qa->q = calloc((size_t)(qa->sim->n_quant ? qa->sim->n_quant : 1), sizeof *qa->q);
    if (!qa->q) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating QAT");
        goto fail;
    }
    if ((s = nnq_qat_init_ranges(qa, calib)) != NNQ_OK || (s = nnq_qat_build_graph(qa)) != NNQ_OK)
        goto fail;
    nnq_graph_free(folded);
    *out = qa;
    return NNQ_OK;
fail:
    nnq_graph_free(folded);
    nnq_qat_free(qa);
    return s;
}
