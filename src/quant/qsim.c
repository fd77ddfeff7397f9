/* Building the quantization simulation: where quantizers go (rules in
 * qsim.h), FakeQuant insertion, and keeping the graph in step with the
 * quantizer parameters (sync). Calibration is in calibrate.c. */
#include "quant/qsim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "core/str.h"
#include "ops/executor.h"

/* Ops whose output stays on their input's grid. */
static bool is_passthrough(const char *op) {
    static const char *const ops[] = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze",
                                      "Unsqueeze", "Identity", "Dropout", "Pad"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0) return true;
    return false;
}

/* Ops whose output is re-quantized to their input's grid. */
static bool is_averaging(const char *op) {
    return strcmp(op, "AveragePool") == 0 || strcmp(op, "GlobalAveragePool") == 0 ||
           strcmp(op, "ReduceMean") == 0;
}

static bool is_fusable_act(const char *op) {
    return strcmp(op, "Relu") == 0 || strcmp(op, "Clip") == 0;
}

static bool is_layer_op(const char *op) {
    return strcmp(op, "Conv") == 0 || strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0;
}

static bool value_is_const(const nnq_graph *g, int v) { return v >= 0 && g->values[v].t.data; }

void nnq_qsim_options_default(nnq_qsim_options *o) {
    memset(o, 0, sizeof *o);
    /* Restricted symmetric scales (a / qmax, TFLite's and AIMET's): every
     * runtime takes them. `tight` is better with min-max weights at 4 bits
     * and equal with MSE ones (docs/ptq.md has the measurements). */
    o->weights = (nnq_qconfig){.bits = 8, .symmetric = true, .is_signed = true,
                               .narrow = false, .per_channel = true,
                               .sym_range = NNQ_SYM_RESTRICTED};
    o->acts = (nnq_qconfig){.bits = 8, .symmetric = false, .is_signed = false,
                            .narrow = false, .per_channel = false,
                            .sym_range = NNQ_SYM_RESTRICTED};
}

void nnq_calib_options_default(nnq_calib_options *o) {
    memset(o, 0, sizeof *o);
    o->method = NNQ_RANGE_MSE;
    o->logits_method = NNQ_RANGE_CE;
    o->percentile = 0.01;
    o->batch = 64;
}

/* ---- construction state ---- */

typedef struct build {
    nnq_qsim *s;
    nnq_graph *g;
    int n_values0;  /* values before any insertion */
    int *grid;      /* [n_values0]: quantizer whose grid value v is on, -1 */
    nnq_tensor *shapes; /* [n_values0]: inferred dtype and shape of each value */
} build;

static bool is_float_value(const build *b, int v) {
    return v >= 0 && v < b->n_values0 && b->shapes[v].dtype == NNQ_DT_FLOAT;
}

static nnq_status grow_quant(nnq_qsim *s, int *out) {
    nnq_qsim_quant *q = realloc(s->quant, sizeof *q * (size_t)(s->n_quant + 1));
    if (!q) return nnq_fail(NNQ_ERR_NOMEM, "out of memory adding a quantizer");
    s->quant = q;
    memset(&q[s->n_quant], 0, sizeof q[0]);
    q[s->n_quant].node = q[s->n_quant].scale_value = q[s->n_quant].zero_point_value = -1;
    q[s->n_quant].layer = q[s->n_quant].tied = q[s->n_quant].output = -1;
    q[s->n_quant].enabled = true;
    *out = s->n_quant++;
    return NNQ_OK;
}

/* A quantizer record for value v (nodes are inserted later). */
static nnq_status plan_quant(build *b, nnq_qrole role, int v, int layer, int *out) {
    NNQ_TRY(grow_quant(b->s, out));
    nnq_qsim_quant *q = &b->s->quant[*out];
    q->role = role;
    q->input = v;
    q->layer = layer;
    if (role == NNQ_QROLE_ACT) b->s->value_quant[v] = *out;
    return NNQ_OK;
}

static const char *value_name(const nnq_graph *g, int v) { return g->values[v].name; }

/* Find the layer for node n, or -1. */
static int layer_of_node(const nnq_qsim *s, int node) {
    for (int i = 0; i < s->n_layers; i++)
        if (s->layers[i].node == node) return i;
    return -1;
}

/* Weight input slot and per-channel axis of a layer node; false if the
 * node has no constant float weight. */
static bool layer_weight(const nnq_graph *g, const nnq_node *nd, int *w, int *axis, int *bias) {
    *bias = -1;
    if (nd->n_inputs < 2 || !value_is_const(g, nd->inputs[1]) || value_is_const(g, nd->inputs[0]))
        return false;
    if (g->values[nd->inputs[1]].t.dtype != NNQ_DT_FLOAT) return false;
    *w = nd->inputs[1];
    const int rank = g->values[*w].t.rank;
    if (strcmp(nd->op_type, "Conv") == 0) {
        *axis = 0;
        if (nd->n_inputs > 2 && value_is_const(g, nd->inputs[2])) *bias = nd->inputs[2];
    } else if (strcmp(nd->op_type, "Gemm") == 0) {
        if (rank != 2 || nnq_node_attr_int(nd, "transA", 0) != 0) return false;
        *axis = nnq_node_attr_int(nd, "transB", 0) ? 0 : 1;
        /* Only a per-output-channel C can become an int32 bias. */
        if (nd->n_inputs > 2 && value_is_const(g, nd->inputs[2])) {
            const nnq_tensor *c = &g->values[nd->inputs[2]].t;
            if (c->rank == 1 && nnq_tensor_numel(c) == g->values[*w].t.dims[*axis] &&
                nnq_node_attr_float(nd, "beta", 1.0f) == 1.0f)
                *bias = nd->inputs[2];
        }
        if (nnq_node_attr_float(nd, "alpha", 1.0f) != 1.0f) return false;
    } else { /* MatMul: [K, N] weight */
        if (rank != 2) return false;
        *axis = 1;
    }
    return true;
}

static nnq_status find_layers(build *b) {
    nnq_graph *g = b->g;
    nnq_qsim *s = b->s;
    s->layers = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *s->layers);
    if (!s->layers) return nnq_fail(NNQ_ERR_NOMEM, "out of memory listing layers");
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        int w, axis, bias;
        if ((nd->domain && nd->domain[0]) || !is_layer_op(nd->op_type) ||
            nnq_node_outputs_constant(g, n) || !layer_weight(g, nd, &w, &axis, &bias))
            continue;
        nnq_qsim_layer *L = &s->layers[s->n_layers++];
        char label[256];
        L->name = nnq_strdup(nnq_node_label(g, n, label, sizeof label));
        if (!L->name) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        L->node = n;
        L->weight = w;
        L->bias = bias;
        L->w_axis = axis;
        L->input = nd->inputs[0];
        L->pre_act = nd->outputs[0];
        L->act_node = L->cap_node = -1;
        L->output = L->pre_act;
        L->weight_q = L->bias_q = L->input_q = L->output_q = -1;
    }
    return NNQ_OK;
}

/* The one reader of v when it is a fusable activation, else -1. */
static int fused_act_reader(const build *b, int v) {
    const nnq_graph *g = b->g;
    int n;
    if (v < 0 || v >= b->n_values0 || nnq_graph_is_output(g, v) ||
        nnq_graph_value_readers(g, v, &n, 1) != 1)
        return -1;
    const nnq_node *nd = &g->nodes[n];
    return nd->inputs[0] == v && is_fusable_act(nd->op_type) && (!nd->domain || !nd->domain[0])
               ? n
               : -1;
}

/* The one reader of a fused Relu's output v when it is Min(v, constant):
 * a per-channel cap that belongs to the same layer, else -1. */
static int cap_reader(const build *b, int v) {
    const nnq_graph *g = b->g;
    int n;
    if (v < 0 || v >= b->n_values0 || nnq_graph_is_output(g, v) ||
        nnq_graph_value_readers(g, v, &n, 1) != 1)
        return -1;
    const nnq_node *nd = &g->nodes[n];
    return strcmp(nd->op_type, "Min") == 0 && (!nd->domain || !nd->domain[0]) &&
                   nd->n_inputs == 2 && nd->inputs[0] == v && value_is_const(g, nd->inputs[1])
               ? n
               : -1;
}

/* Decide every activation quantizer, in topological order. */
static nnq_status plan_activations(build *b) {
    nnq_graph *g = b->g;
    nnq_qsim *s = b->s;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i], q;
        if (!is_float_value(b, v)) continue;
        NNQ_TRY(plan_quant(b, NNQ_QROLE_ACT, v, -1, &q));
        b->grid[v] = q;
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (nnq_node_outputs_constant(g, n)) continue;
        const int L = layer_of_node(s, n);
        const bool joins = is_layer_op(nd->op_type) || strcmp(nd->op_type, "Add") == 0;
        for (int k = 0; k < nd->n_outputs; k++) {
            const int v = nd->outputs[k];
            if (!is_float_value(b, v)) continue;
            int act = joins && k == 0 ? fused_act_reader(b, v) : -1;
            if (act >= 0) {
                if (L >= 0) {
                    s->layers[L].act_node = act;
                    s->layers[L].output = g->nodes[act].outputs[0];
                }
                continue; /* quantized after the activation */
            }
            const int in = nd->n_inputs > 0 ? nd->inputs[0] : -1;
            const int in_grid = in >= 0 && in < b->n_values0 ? b->grid[in] : -1;
            if (is_passthrough(nd->op_type)) {
                b->grid[v] = in_grid;
                continue;
            }
            /* The activation of a fused pair belongs to the producer's
             * layer, and so does a cap after it (quantized after the cap). */
            int owner = L;
            if (is_fusable_act(nd->op_type) && in >= 0 && g->values[in].producer >= 0)
                owner = layer_of_node(s, g->values[in].producer);
            const int cap = owner >= 0 && k == 0 && strcmp(nd->op_type, "Relu") == 0 &&
                                    s->layers[owner].act_node == n
                                ? cap_reader(b, v)
                                : -1;
            if (cap >= 0) {
                s->layers[owner].cap_node = cap;
                s->layers[owner].output = g->nodes[cap].outputs[0];
                continue;
            }
            for (int i = 0; i < s->n_layers && owner < 0; i++)
                if (s->layers[i].cap_node == n) owner = i;
            int q;
            NNQ_TRY(plan_quant(b, NNQ_QROLE_ACT, v, owner, &q));
            if (is_averaging(nd->op_type) && in_grid >= 0) s->quant[q].tied = in_grid;
            b->grid[v] = q;
        }
    }
    /* Layer inputs/outputs and logits. */
    for (int i = 0; i < s->n_layers; i++) {
        nnq_qsim_layer *L = &s->layers[i];
        L->input_q = b->grid[L->input];
        L->output_q = b->grid[L->output];
        L->is_first = L->input_q >= 0 && s->quant[L->input_q].layer < 0 &&
                      g->values[s->quant[L->input_q].input].producer < 0;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const int v = g->outputs[i];
        if (v < b->n_values0 && b->grid[v] >= 0) {
            s->quant[b->grid[v]].is_logits = true;
            const int L = s->quant[b->grid[v]].layer;
            if (L >= 0 && s->layers[L].output_q == b->grid[v]) s->layers[L].is_last = true;
        }
    }
    return NNQ_OK;
}

static nnq_status apply_overrides(nnq_qsim *s) {
    for (int i = 0; i < s->opt.n_overrides; i++) {
        const nnq_layer_override *o = &s->opt.overrides[i];
        if (nnq_qsim_find_layer(s, o->name) < 0)
            return nnq_fail(NNQ_ERR_INVALID,
                            "no layer named '%s' (a Conv, Gemm or MatMul node with a constant weight)",
                            o->name);
    }
    return NNQ_OK;
}

/* The configuration each quantizer gets, after first/last and overrides. */
static void quant_configs(nnq_qsim *s, nnq_qconfig *cfg) {
    for (int i = 0; i < s->n_quant; i++)
        cfg[i] = s->quant[i].role == NNQ_QROLE_WEIGHT ? s->opt.weights : s->opt.acts;
    const int fl = s->opt.first_last_bits;
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        if (fl > 0 && (L->is_first || L->is_last)) {
            if (L->weight_q >= 0) cfg[L->weight_q].bits = fl;
            /* Through a tie (pooling) to the quantizer that sets the grid. */
            int in = L->input_q;
            while (in >= 0 && s->quant[in].tied >= 0) in = s->quant[in].tied;
            if (in >= 0) cfg[in].bits = fl;
            if (L->is_last && L->output_q >= 0) cfg[L->output_q].bits = fl;
        }
        for (int k = 0; k < s->opt.n_overrides; k++) {
            const nnq_layer_override *o = &s->opt.overrides[k];
            if (strcmp(o->name, L->name) != 0) continue;
            if (o->wbits > 0 && L->weight_q >= 0) cfg[L->weight_q].bits = o->wbits;
            if (o->abits > 0 && L->output_q >= 0) cfg[L->output_q].bits = o->abits;
        }
    }
    /* A tied quantizer shares its source's grid. */
    for (int i = 0; i < s->n_quant; i++)
        if (s->quant[i].tied >= 0) cfg[i] = cfg[s->quant[i].tied];
}

/* Parameter initializer of `n` floats named "<base><suffix>". */
static nnq_status add_param(nnq_graph *g, const char *base, const char *suffix, int n, bool scalar,
                            float fill, int *out) {
    char want[NNQ_MAX_NAME + 64], name[NNQ_MAX_NAME + 64];
    snprintf(want, sizeof want, "%s%s", base, suffix);
    NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
    nnq_tensor t = {0};
    const int64_t dims[1] = {n};
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, scalar ? 0 : 1, dims));
    for (int i = 0; i < n; i++) nnq_f32(&t)[i] = fill;
    nnq_status st = nnq_graph_add_initializer(g, name, &t, out);
    if (st != NNQ_OK) nnq_tensor_release(&t);
    return st;
}

/* Insert the FakeQuant node of quantizer qi and rewire readers: `only_node`
 * >= 0 rewires just that node (weights, biases); otherwise every reader of
 * the value, and a graph output moves to the quantized value (which takes
 * the output's name, so the model's interface is unchanged). */
static nnq_status insert_fake_quant(nnq_qsim *s, int qi, int only_node) {
    nnq_graph *g = s->g;
    nnq_qsim_quant *q = &s->quant[qi];
    const int v = q->input;
    char base[NNQ_MAX_NAME + 8];
    snprintf(base, sizeof base, "%s", value_name(g, v));
    const bool scalar = !q->q.cfg.per_channel;
    NNQ_TRY(add_param(g, base, "_fq_scale", q->q.n, scalar, 1.0f, &q->scale_value));
    NNQ_TRY(add_param(g, base, "_fq_zero_point", q->q.n, scalar, 0.0f, &q->zero_point_value));
    char name[NNQ_MAX_NAME + 32];
    int out;
    const bool graph_out = only_node < 0 && nnq_graph_is_output(g, v);
    if (graph_out) {
        /* The float value gets a new name; the quantized one the old. */
        char want[NNQ_MAX_NAME + 16];
        snprintf(want, sizeof want, "%s_float", base);
        NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
        NNQ_TRY(nnq_graph_rename_value(g, v, name));
        NNQ_TRY(nnq_graph_add_value(g, base, &out));
        g->values[out].t = g->values[v].t;
        g->values[out].t.data = NULL;
        g->values[out].t.owns = false;
        for (int i = 0; i < g->n_outputs; i++)
            if (g->outputs[i] == v) g->outputs[i] = out;
    } else {
        char want[NNQ_MAX_NAME + 16];
        snprintf(want, sizeof want, "%s_q", base);
        NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
        NNQ_TRY(nnq_graph_add_value(g, name, &out));
    }
    /* Rewire readers before adding the FakeQuant (which reads v). */
    for (int n = 0; n < g->n_nodes; n++) {
        if (only_node >= 0 && n != only_node) continue;
        nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] == v) nd->inputs[k] = out;
    }
    snprintf(name, sizeof name, "%s_fq", base);
    const int in[3] = {v, q->scale_value, q->zero_point_value};
    int node;
    NNQ_TRY(nnq_graph_add_node(g, name, "FakeQuant", NNQ_DOMAIN, 3, in, 1, &out, &node));
    nnq_node *nd = &g->nodes[node];
    NNQ_TRY(nnq_node_set_int(nd, "qmin", q->q.qmin));
    NNQ_TRY(nnq_node_set_int(nd, "qmax", q->q.qmax));
    NNQ_TRY(nnq_node_set_int(nd, "axis", q->q.axis >= 0 ? q->q.axis : 0));
    NNQ_TRY(nnq_node_set_int(nd, "enabled", 1));
    q->output = out;
    return NNQ_OK;
}

static nnq_status init_bias_quantizer(nnq_quantizer *q, int n) {
    /* 32-bit signed grid; beyond nnq_qconfig's 2..16, so set up by hand. */
    const nnq_qconfig c = {.bits = 8, .symmetric = true, .is_signed = true, .per_channel = true};
    NNQ_TRY(nnq_quantizer_init(q, &c, 0, n));
    q->cfg.bits = 32;
    q->qmin = INT32_MIN;
    q->qmax = INT32_MAX;
    return NNQ_OK;
}

static nnq_status build_sim(build *b) {
    nnq_qsim *s = b->s;
    nnq_graph *g = b->g;
    NNQ_TRY(find_layers(b));
    NNQ_TRY(apply_overrides(s));
    NNQ_TRY(plan_activations(b));
    /* Weights and biases. */
    for (int i = 0; i < s->n_layers; i++) {
        nnq_qsim_layer *L = &s->layers[i];
        for (int k = 0; k < s->opt.n_overrides; k++)
            if (strcmp(s->opt.overrides[k].name, L->name) == 0 && s->opt.overrides[k].keep_float)
                L->keep_float = true;
        NNQ_TRY(plan_quant(b, NNQ_QROLE_WEIGHT, L->weight, i, &L->weight_q));
        if (L->bias >= 0 && L->input_q >= 0)
            NNQ_TRY(plan_quant(b, NNQ_QROLE_BIAS, L->bias, i, &L->bias_q));
    }
    nnq_qconfig *cfg = malloc(sizeof *cfg * (size_t)(s->n_quant ? s->n_quant : 1));
    if (!cfg) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    quant_configs(s, cfg);
    nnq_status st = NNQ_OK;
    for (int i = 0; i < s->n_quant && st == NNQ_OK; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role == NNQ_QROLE_BIAS) {
            st = init_bias_quantizer(&q->q, (int)nnq_tensor_numel(&g->values[q->input].t));
        } else if (q->role == NNQ_QROLE_WEIGHT) {
            const nnq_qsim_layer *L = &s->layers[q->layer];
            const nnq_tensor *w = &g->values[L->weight].t;
            const int n = cfg[i].per_channel ? (int)w->dims[L->w_axis] : 1;
            st = nnq_quantizer_init(&q->q, &cfg[i], L->w_axis, n);
        } else {
            nnq_qconfig c = cfg[i];
            c.per_channel = false; /* activations: per tensor */
            st = nnq_quantizer_init(&q->q, &c, -1, 1);
        }
    }
    free(cfg);
    NNQ_TRY(st);
    for (int i = 0; i < s->n_layers; i++)
        if (s->layers[i].keep_float) {
            nnq_qsim_layer *L = &s->layers[i];
            s->quant[L->weight_q].enabled = false;
            if (L->bias_q >= 0) s->quant[L->bias_q].enabled = false;
            if (L->output_q >= 0 && s->quant[L->output_q].layer == i)
                s->quant[L->output_q].enabled = false;
        }
    /* Insert nodes; weights and biases only for their layer's slot. */
    const int n_nodes0 = g->n_nodes;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        const int only = q->role == NNQ_QROLE_ACT ? -1 : s->layers[q->layer].node;
        if (only >= n_nodes0) return nnq_fail(NNQ_ERR_INVALID, "internal: layer node moved");
        NNQ_TRY(insert_fake_quant(s, i, only));
    }
    return NNQ_OK;
}

nnq_status nnq_qsim_create(const nnq_graph *float_graph, const nnq_qsim_options *o,
                           nnq_qsim **out) {
    *out = NULL;
    nnq_qsim *s = calloc(1, sizeof *s);
    build b = {0};
    nnq_status st = NNQ_OK;
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the simulation");
    if ((st = nnq_graph_clone(float_graph, &s->g)) != NNQ_OK) goto fail;
    if ((st = nnq_graph_prepare(s->g)) != NNQ_OK) goto fail;
    if (o) s->opt = *o;
    else nnq_qsim_options_default(&s->opt);
    if ((st = nnq_qconfig_check(&s->opt.weights)) != NNQ_OK ||
        (st = nnq_qconfig_check(&s->opt.acts)) != NNQ_OK)
        goto fail;
    b.s = s;
    b.g = s->g;
    b.n_values0 = s->g->n_values;
    b.grid = malloc(sizeof *b.grid * ((size_t)b.n_values0 + 1));
    s->value_quant = malloc(sizeof *s->value_quant * ((size_t)b.n_values0 + 1));
    if (!b.grid || !s->value_quant) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the simulation");
        goto fail;
    }
    for (int v = 0; v < b.n_values0; v++) b.grid[v] = s->value_quant[v] = -1;
    b.shapes = calloc((size_t)b.n_values0 + 1, sizeof *b.shapes);
    if (!b.shapes) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the simulation");
        goto fail;
    }
    if ((st = nnq_graph_infer_shapes(s->g, NULL, b.shapes)) != NNQ_OK) goto fail;
    if ((st = build_sim(&b)) != NNQ_OK) goto fail;
    if ((st = nnq_graph_prepare(s->g)) != NNQ_OK) goto fail;
    /* Preparing re-sorted the nodes: find FakeQuant and layer nodes again. */
    for (int n = 0; n < s->g->n_nodes; n++) {
        const nnq_node *nd = &s->g->nodes[n];
        for (int i = 0; i < s->n_quant; i++)
            if (nd->n_outputs > 0 && nd->outputs[0] == s->quant[i].output) s->quant[i].node = n;
        for (int i = 0; i < s->n_layers; i++) {
            nnq_qsim_layer *L = &s->layers[i];
            if (nd->n_outputs > 0 && nd->outputs[0] == L->pre_act) L->node = n;
            if (L->act_node >= 0 && nd->n_inputs > 0 && nd->inputs[0] == L->pre_act &&
                is_fusable_act(nd->op_type))
                L->act_node = n;
            if (L->cap_node >= 0 && nd->n_outputs > 0 && nd->outputs[0] == L->output &&
                strcmp(nd->op_type, "Min") == 0)
                L->cap_node = n;
        }
    }
    free(b.grid);
    free(b.shapes);
    if ((st = nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MINMAX)) != NNQ_OK) {
        nnq_qsim_free(s);
        return st;
    }
    *out = s;
    return NNQ_OK;
fail:
    free(b.grid);
    free(b.shapes);
    nnq_qsim_free(s);
    return st;
}

void nnq_qsim_free(nnq_qsim *s) {
    if (!s) return;
    for (int i = 0; i < s->n_quant; i++) nnq_quantizer_free(&s->quant[i].q);
    for (int i = 0; i < s->n_layers; i++) free(s->layers[i].name);
    free(s->quant);
    free(s->layers);
    free(s->value_quant);
    nnq_graph_free(s->g);
    free(s);
}

int nnq_qsim_find_layer(const nnq_qsim *s, const char *name) {
    for (int i = 0; i < s->n_layers; i++)
        if (strcmp(s->layers[i].name, name) == 0) return i;
    return -1;
}

void nnq_qsim_enable_role(nnq_qsim *s, nnq_qrole role, bool on) {
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role != role) continue;
        /* Layers kept in float stay in float. */
        if (on && q->layer >= 0 && s->layers[q->layer].keep_float && q->role != NNQ_QROLE_ACT)
            continue;
        if (on && q->role == NNQ_QROLE_ACT && q->layer >= 0 && s->layers[q->layer].keep_float &&
            s->layers[q->layer].output_q == i)
            continue;
        q->enabled = on;
    }
}

/* ---- sync ---- */

/* Bias scale = input scale * weight scale per channel. A bias is only
 * quantized when both its layer's input and weights are. */
static void bias_params(nnq_qsim *s, nnq_qsim_quant *q) {
    const nnq_qsim_layer *L = &s->layers[q->layer];
    const nnq_qsim_quant *x = &s->quant[L->input_q], *w = &s->quant[L->weight_q];
    const nnq_qsim_quant *xs = x->tied >= 0 ? &s->quant[x->tied] : x;
    /* Derived each sync: an int32 bias exists only beside int8 inputs and weights. */
    q->enabled = !L->keep_float && xs->enabled && x->enabled && w->enabled &&
                 xs->q.cfg.bits <= 8 && w->q.cfg.bits <= 8;
    for (int c = 0; c < q->q.n; c++) {
        q->q.scale[c] = xs->q.scale[0] * w->q.scale[w->q.n > 1 ? c : 0];
        q->q.zero_point[c] = 0;
    }
}

/* Recompute a constant FakeQuant output (weights, biases) in place. */
static void refresh_constant(nnq_qsim *s, const nnq_qsim_quant *q) {
    nnq_graph *g = s->g;
    nnq_tensor *out = &g->values[q->output].t;
    const nnq_tensor *in = &g->values[q->input].t;
    if (!out->data || !in->data) return;
    const int64_t numel = nnq_tensor_numel(in);
    if (!q->enabled) {
        memcpy(out->data, in->data, (size_t)numel * sizeof(float));
        return;
    }
    int64_t outer = 1, inner = 1;
    if (q->q.n > 1) {
        for (int k = 0; k < q->q.axis; k++) outer *= in->dims[k];
        for (int k = q->q.axis + 1; k < in->rank; k++) inner *= in->dims[k];
    } else {
        inner = numel;
    }
    if (q->role == NNQ_QROLE_BIAS) {
        /* 32-bit grid: round in double (half to even), as FakeQuant does. */
        const float *x = nnq_f32(in);
        float *y = nnq_f32(out);
        for (int64_t i = 0; i < numel; i++) {
            const double sc = q->q.scale[q->q.n > 1 ? i : 0];
            y[i] = (float)(nnq_quantize_bias(x[i], sc) * sc);
        }
        return;
    }
    nnq_quantizer_apply(&q->q, nnq_f32(in), nnq_f32(out), outer, inner);
}

nnq_status nnq_qsim_sync(nnq_qsim *s) {
    nnq_graph *g = s->g;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->tied >= 0) {
            const nnq_qsim_quant *src = &s->quant[q->tied];
            q->q.scale[0] = src->q.scale[0];
            q->q.zero_point[0] = src->q.zero_point[0];
        }
        if (q->role == NNQ_QROLE_BIAS) bias_params(s, q);
        float *sc = nnq_f32(&g->values[q->scale_value].t);
        float *zp = nnq_f32(&g->values[q->zero_point_value].t);
        for (int c = 0; c < q->q.n; c++) {
            sc[c] = q->q.scale[c];
            zp[c] = (float)q->q.zero_point[c];
        }
        nnq_node *nd = &g->nodes[q->node];
        NNQ_TRY(nnq_node_set_int(nd, "enabled", q->enabled ? 1 : 0));
        NNQ_TRY(nnq_node_set_int(nd, "qmin", q->q.qmin));
        NNQ_TRY(nnq_node_set_int(nd, "qmax", q->q.qmax));
    }
    /* Biases after weights and inputs are final. */
    for (int i = 0; i < s->n_quant; i++)
        if (s->quant[i].role == NNQ_QROLE_WEIGHT) refresh_constant(s, &s->quant[i]);
    for (int i = 0; i < s->n_quant; i++)
        if (s->quant[i].role == NNQ_QROLE_BIAS) refresh_constant(s, &s->quant[i]);
    return NNQ_OK;
}

/* ---- weight ranges ---- */

nnq_status nnq_qsim_set_weight_ranges(nnq_qsim *s, nnq_range_method m) {
    nnq_graph *g = s->g;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role != NNQ_QROLE_WEIGHT) continue;
        const nnq_tensor *w = &g->values[q->input].t;
        const float *x = nnq_f32(w);
        const int64_t numel = nnq_tensor_numel(w);
        if (q->q.n == 1) {
            float lo, hi;
            NNQ_TRY(nnq_range_from_data(x, numel, 1, &q->q.cfg, m, &lo, &hi));
            nnq_quantizer_set_range(&q->q, 0, lo, hi);
            continue;
        }
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < q->q.axis; k++) outer *= w->dims[k];
        for (int k = q->q.axis + 1; k < w->rank; k++) inner *= w->dims[k];
        const int64_t per = outer * inner;
        float *buf = malloc(sizeof *buf * (size_t)(per ? per : 1));
        if (!buf) return nnq_fail(NNQ_ERR_NOMEM, "out of memory setting weight ranges");
        nnq_status st = NNQ_OK;
        for (int c = 0; c < q->q.n && st == NNQ_OK; c++) {
            for (int64_t o = 0; o < outer; o++)
                memcpy(buf + o * inner, x + (o * q->q.n + c) * inner, sizeof *buf * (size_t)inner);
            float lo, hi;
            st = nnq_range_from_data(buf, per, 1, &q->q.cfg, m, &lo, &hi);
            if (st == NNQ_OK) nnq_quantizer_set_range(&q->q, c, lo, hi);
        }
        free(buf);
        NNQ_TRY(st);
    }
    return nnq_qsim_sync(s);
}
