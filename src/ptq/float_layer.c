/* Conv / Gemm layers per channel, private parameters and layer pairs for
 * the float-graph passes (float_layer.h). */
#include "ptq/float_layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_op(const nnq_node *n, const char *op) {
    return (!n->domain[0] || strcmp(n->domain, "ai.onnx") == 0) && strcmp(n->op_type, op) == 0;
}

static bool float_data(const nnq_graph *g, int v) {
    return v >= 0 && g->values[v].t.data && g->values[v].t.dtype == NNQ_DT_FLOAT;
}

static bool get_conv(const nnq_graph *g, const nnq_node *nd, nnq_flayer *l) {
    if (nd->n_inputs < 2 || !float_data(g, nd->inputs[1])) return false;
    const nnq_tensor *w = &g->values[nd->inputs[1]].t;
    int64_t groups = nnq_node_attr_int(nd, "group", 1);
    if (w->rank < 3 || groups < 1 || w->dims[0] <= 0 || w->dims[1] <= 0 || w->dims[0] % groups)
        return false;
    l->out_ch = w->dims[0];
    l->in_ch = w->dims[1] * groups;
    l->groups = groups;
    l->taps = nnq_tensor_numel(w) / (w->dims[0] * w->dims[1]);
    if (nd->n_inputs > 2 && nd->inputs[2] >= 0) {
        if (!float_data(g, nd->inputs[2]) || nnq_tensor_numel(&g->values[nd->inputs[2]].t) != l->out_ch)
            return false;
        l->b = nd->inputs[2];
    }
    return true;
}

static bool get_gemm(const nnq_graph *g, const nnq_node *nd, nnq_flayer *l) {
    if (nd->n_inputs < 2 || !float_data(g, nd->inputs[1])) return false;
    const nnq_tensor *w = &g->values[nd->inputs[1]].t;
    if (w->rank != 2) return false;
    l->gemm = true;
    l->trans_a = nnq_node_attr_int(nd, "transA", 0) != 0;
    l->trans_b = nnq_node_attr_int(nd, "transB", 0) != 0;
    l->out_ch = l->trans_b ? w->dims[0] : w->dims[1];
    l->in_ch = l->trans_b ? w->dims[1] : w->dims[0];
    l->groups = 1;
    l->taps = 1;
    if (nd->n_inputs > 2 && nd->inputs[2] >= 0) {
        if (!float_data(g, nd->inputs[2])) return false;
        const nnq_tensor *c = &g->values[nd->inputs[2]].t;
        int64_t n = nnq_tensor_numel(c);
        bool per_channel = n == l->out_ch && (c->rank == 1 || (c->rank == 2 && c->dims[0] == 1));
        if (!per_channel && n != 1) return false; /* e.g. a C that varies over the batch */
        l->b = nd->inputs[2];
    }
    return true;
}

bool nnq_flayer_get(const nnq_graph *g, int node, nnq_flayer *l) {
    const nnq_node *nd = &g->nodes[node];
    memset(l, 0, sizeof *l);
    l->node = node;
    l->b = -1;
    bool ok = false;
    if (is_op(nd, "Conv"))
        ok = get_conv(g, nd, l);
    else if (is_op(nd, "Gemm"))
        ok = get_gemm(g, nd, l);
    if (!ok || nd->n_outputs < 1 || nd->outputs[0] < 0) return false;
    l->w = nd->inputs[1];
    return true;
}

int64_t nnq_flayer_at(const nnq_flayer *l, int64_t o, int64_t i, int64_t t) {
    if (l->gemm) return l->trans_b ? o * l->in_ch + i : i * l->out_ch + o;
    int64_t cg = l->in_ch / l->groups;
    return (o * cg + i % cg) * l->taps + t;
}

void nnq_flayer_in_outputs(const nnq_flayer *l, int64_t i, int64_t *o0, int64_t *o1) {
    int64_t mg = l->out_ch / l->groups, cg = l->in_ch / l->groups;
    *o0 = i / cg * mg;
    *o1 = *o0 + mg;
}

double nnq_flayer_out_range(const nnq_graph *g, const nnq_flayer *l, int64_t o) {
    const float *w = nnq_f32(&g->values[l->w].t);
    int64_t cg = l->in_ch / l->groups, i0 = l->gemm ? 0 : o / (l->out_ch / l->groups) * cg;
    double r = 0;
    for (int64_t i = i0; i < i0 + cg; i++)
        for (int64_t t = 0; t < l->taps; t++) r = fmax(r, fabs(w[nnq_flayer_at(l, o, i, t)]));
    return r;
}

double nnq_flayer_in_range(const nnq_graph *g, const nnq_flayer *l, int64_t i) {
    const float *w = nnq_f32(&g->values[l->w].t);
    int64_t o0, o1;
    nnq_flayer_in_outputs(l, i, &o0, &o1);
    double r = 0;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < l->taps; t++) r = fmax(r, fabs(w[nnq_flayer_at(l, o, i, t)]));
    return r;
}

void nnq_flayer_scale_out(nnq_graph *g, const nnq_flayer *l, int64_t o, double f) {
    float *w = nnq_f32(&g->values[l->w].t);
    int64_t cg = l->in_ch / l->groups, i0 = l->gemm ? 0 : o / (l->out_ch / l->groups) * cg;
    for (int64_t i = i0; i < i0 + cg; i++)
        for (int64_t t = 0; t < l->taps; t++) {
            float *p = &w[nnq_flayer_at(l, o, i, t)];
            *p = (float)(*p * f);
        }
}

void nnq_flayer_scale_in(nnq_graph *g, const nnq_flayer *l, int64_t i, double f) {
    float *w = nnq_f32(&g->values[l->w].t);
    int64_t o0, o1;
    nnq_flayer_in_outputs(l, i, &o0, &o1);
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < l->taps; t++) {
            float *p = &w[nnq_flayer_at(l, o, i, t)];
            *p = (float)(*p * f);
        }
}

/* Point input `slot` of `node` at a new initializer copied from value v
 * (or from `src` when given), named after v; *out gets its index. */
static nnq_status clone_input(nnq_graph *g, int node, int slot, int v, const nnq_tensor *src,
                              int *out) {
    char name[NNQ_MAX_NAME + 1];
    nnq_tensor t = {0};
    NNQ_TRY(nnq_graph_unique_name(g, g->values[v].name, name, sizeof name));
    NNQ_TRY(nnq_tensor_clone(&t, src ? src : &g->values[v].t));
    nnq_status s = nnq_graph_add_initializer(g, name, &t, out);
    if (s != NNQ_OK) {
        nnq_tensor_release(&t);
        return s;
    }
    g->nodes[node].inputs[slot] = *out;
    return NNQ_OK;
}

static nnq_status make_private(nnq_graph *g, int node, int slot, int *v) {
    if (g->values[*v].is_initializer && nnq_graph_value_readers(g, *v, NULL, 0) == 1 &&
        !nnq_graph_is_output(g, *v))
        return NNQ_OK;
    return clone_input(g, node, slot, *v, NULL, v);
}

nnq_status nnq_flayer_make_private(nnq_graph *g, nnq_flayer *l, bool with_bias) {
    NNQ_TRY(make_private(g, l->node, 1, &l->w));
    if (with_bias && l->b >= 0) NNQ_TRY(make_private(g, l->node, 2, &l->b));
    return NNQ_OK;
}

/* "conv1.weight" → "conv1.bias"; otherwise "<weight name>.bias". */
static void bias_name(const nnq_graph *g, const nnq_flayer *l, char *buf, size_t cap) {
    const char *w = g->values[l->w].name;
    size_t n = strlen(w);
    if (n >= 6 && strcmp(w + n - 6, "weight") == 0)
        snprintf(buf, cap, "%.*sbias", (int)(n - 6), w);
    else
        snprintf(buf, cap, "%s.bias", w);
}

/* A new bias initializer [out_ch] filled with `fill`, as input 2. */
static nnq_status add_bias(nnq_graph *g, nnq_flayer *l, float fill) {
    char base[NNQ_MAX_NAME + 1], name[NNQ_MAX_NAME + 8];
    nnq_tensor t = {0};
    nnq_node *nd = &g->nodes[l->node];
    if (nd->n_inputs < 3) {
        int *p = realloc(nd->inputs, sizeof(int) * 3);
        if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory adding a bias");
        for (int k = nd->n_inputs; k < 3; k++) p[k] = -1;
        nd->inputs = p;
        nd->n_inputs = 3;
    }
    bias_name(g, l, base, sizeof base);
    NNQ_TRY(nnq_graph_unique_name(g, base, name, sizeof name));
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 1, &l->out_ch));
    for (int64_t o = 0; o < l->out_ch; o++) nnq_f32(&t)[o] = fill;
    nnq_status s = nnq_graph_add_initializer(g, name, &t, &l->b);
    if (s != NNQ_OK) {
        nnq_tensor_release(&t);
        return s;
    }
    g->nodes[l->node].inputs[2] = l->b;
    return NNQ_OK;
}

nnq_status nnq_flayer_bias(nnq_graph *g, nnq_flayer *l, float **out) {
    nnq_node *nd = &g->nodes[l->node];
    double beta = l->gemm ? nnq_node_attr_float(nd, "beta", 1.0f) : 1.0;
    if (l->b < 0) {
        NNQ_TRY(add_bias(g, l, 0.0f));
    } else if (nnq_tensor_numel(&g->values[l->b].t) == 1 && l->out_ch != 1) {
        NNQ_TRY(add_bias(g, l, (float)(beta * nnq_f32(&g->values[l->b].t)[0])));
    } else if (nnq_tensor_numel(&g->values[l->b].t) == l->out_ch) {
        NNQ_TRY(make_private(g, l->node, 2, &l->b));
        float *b = nnq_f32(&g->values[l->b].t);
        if (beta != 1.0)
            for (int64_t o = 0; o < l->out_ch; o++) b[o] = (float)(beta * b[o]);
    } else {
        char label[256];
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s node '%s': bias '%s' is not per output channel",
                        nd->op_type, nnq_node_label(g, l->node, label, sizeof label),
                        g->values[l->b].name);
    }
    nd = &g->nodes[l->node];
    if (l->gemm && nnq_node_attr(nd, "beta")) NNQ_TRY(nnq_node_set_float(nd, "beta", 1.0f));
    *out = nnq_f32(&g->values[l->b].t);
    return NNQ_OK;
}

bool nnq_flayer_const_scalar(const nnq_graph *g, int v, double *out) {
    if (v < 0) return false;
    const nnq_tensor *t = &g->values[v].t;
    if (!t->data && g->values[v].producer >= 0) {
        const nnq_node *p = &g->nodes[g->values[v].producer];
        const nnq_attr *a = is_op(p, "Constant") ? nnq_node_attr(p, "value") : NULL;
        t = a && a->type == NNQ_ATTR_TENSOR ? a->t : NULL;
    }
    if (!t || !t->data || nnq_tensor_numel(t) != 1 || nnq_dtype_is_integer(t->dtype)) return false;
    *out = nnq_tensor_get_float(t, 0);
    return true;
}

/* Clip(0, +inf) acts as Relu, Clip(0, 6) is ReLU6; other bounds: false. */
static bool clip_kind(const nnq_graph *g, const nnq_node *nd, nnq_fact *kind) {
    double lo = -INFINITY, hi = INFINITY;
    if (nd->n_inputs == 1) { /* opset < 11: bounds as attributes */
        lo = nnq_node_attr_float(nd, "min", -INFINITY);
        hi = nnq_node_attr_float(nd, "max", INFINITY);
    }
    if (nd->n_inputs > 1 && nd->inputs[1] >= 0 && !nnq_flayer_const_scalar(g, nd->inputs[1], &lo))
        return false;
    if (nd->n_inputs > 2 && nd->inputs[2] >= 0 && !nnq_flayer_const_scalar(g, nd->inputs[2], &hi))
        return false;
    if (lo != 0) return false;
    if (isinf(hi) && hi > 0)
        *kind = NNQ_FACT_RELU;
    else if (hi == 6)
        *kind = NNQ_FACT_RELU6;
    else
        return false;
    return true;
}

static bool act_kind(const nnq_graph *g, const nnq_node *nd, nnq_fact *kind) {
    if (is_op(nd, "Relu")) *kind = NNQ_FACT_RELU;
    else if (is_op(nd, "LeakyRelu")) *kind = NNQ_FACT_LEAKY;
    else if (is_op(nd, "PRelu")) *kind = NNQ_FACT_PRELU;
    else if (is_op(nd, "Clip")) return clip_kind(g, nd, kind);
    else return false;
    return true;
}

/* The one node reading v at its input 0, or -1 (several readers, a graph
 * output, or read as something other than the data input). */
static int sole_reader(const nnq_graph *g, int v) {
    int r;
    if (nnq_graph_is_output(g, v) || nnq_graph_value_readers(g, v, &r, 1) != 1) return -1;
    const nnq_node *nd = &g->nodes[r];
    return nd->n_inputs > 0 && nd->inputs[0] == v ? r : -1;
}

bool nnq_flayer_is_channel_cap(const nnq_graph *g, int v, int64_t channels, int out_rank) {
    if (v < 0 || g->values[v].producer >= 0) return false; /* an initializer only */
    const nnq_tensor *t = &g->values[v].t;
    if (!t->data || t->dtype != NNQ_DT_FLOAT || nnq_tensor_numel(t) != channels) return false;
    const int ch_axis = t->rank - out_rank + 1; /* the axis aligned with output axis 1 */
    if (t->rank > out_rank || ch_axis < 0) return false;
    for (int k = 0; k < t->rank; k++)
        if (t->dims[k] != (k == ch_axis ? channels : 1)) return false;
    return true;
}

/* Relu output a_out read only by Min(a_out, u) with u a channel cap of p's
 * layer 1: the pair's activation is a capped Relu. */
static bool find_cap(const nnq_graph *g, int a_out, nnq_fpair *p) {
    const int m = sole_reader(g, a_out);
    if (m < 0 || !is_op(&g->nodes[m], "Min") || g->nodes[m].n_inputs != 2 ||
        g->nodes[m].n_outputs != 1)
        return false;
    const int out_rank = p->l1.gemm ? 2 : g->values[p->l1.w].t.rank;
    if (!nnq_flayer_is_channel_cap(g, g->nodes[m].inputs[1], p->l1.out_ch, out_rank)) return false;
    if (nnq_graph_value_readers(g, g->nodes[m].inputs[1], NULL, 0) != 1) return false; /* private */
    p->kind = NNQ_FACT_RELU_CAP;
    p->cap = m;
    p->cap_value = g->nodes[m].inputs[1];
    return true;
}

static bool find_pair(const nnq_graph *g, int node, nnq_fpair *p) {
    memset(p, 0, sizeof *p);
    if (!nnq_flayer_get(g, node, &p->l1)) return false;
    const nnq_node *n1 = &g->nodes[node];
    for (int k = 1; k < n1->n_outputs; k++)
        if (n1->outputs[k] >= 0) return false;
    p->mid = n1->outputs[0];
    p->act = p->cap = p->cap_value = -1;
    p->kind = NNQ_FACT_NONE;
    int r = sole_reader(g, p->mid);
    if (r < 0) return false;
    if (!is_op(&g->nodes[r], "Conv") && !is_op(&g->nodes[r], "Gemm")) {
        const nnq_node *a = &g->nodes[r];
        if (!act_kind(g, a, &p->kind) || a->n_outputs < 1 || a->outputs[0] < 0) return false;
        p->act = r;
        int out = a->outputs[0];
        if (p->kind == NNQ_FACT_RELU && find_cap(g, out, p)) out = g->nodes[p->cap].outputs[0];
        r = sole_reader(g, out);
        if (r < 0) return false;
    }
    if (!nnq_flayer_get(g, r, &p->l2) || p->l2.in_ch != p->l1.out_ch) return false;
    if (p->l2.gemm != p->l1.gemm || (p->l2.gemm && p->l2.trans_a)) return false;
    return true;
}

nnq_status nnq_flayer_pairs(const nnq_graph *g, nnq_fpair **out, int *n) {
    *out = NULL;
    *n = 0;
    nnq_fpair *pairs = malloc(sizeof *pairs * (size_t)(g->n_nodes ? g->n_nodes : 1));
    if (!pairs) return nnq_fail(NNQ_ERR_NOMEM, "out of memory listing layer pairs");
    int count = 0;
    for (int node = 0; node < g->n_nodes; node++)
        if (find_pair(g, node, &pairs[count])) count++;
    *out = pairs;
    *n = count;
    return NNQ_OK;
}
