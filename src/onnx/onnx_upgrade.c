/* Legacy models (default-domain opsets 1..10) rewritten into opset-11 form
 * right after import, so ops, passes and export see one modern form.
 *
 * Each legacy rule is one function, listed once in `rules` with the op it
 * applies to and the first opset where the legacy form is gone. A rule
 * turns the old attributes into what opset 11 says (new initializers,
 * inserted Unsqueeze nodes, dropped attributes) or fails with
 * NNQ_ERR_UNSUPPORTED naming op, node and attribute when the old meaning
 * has no opset-11 spelling. Ops without a rule mean the same at opset 11
 * (Conv, pools, activations, Flatten, Transpose, Squeeze, ...); Softmax
 * keeps its pre-13 coerced-to-2D meaning because the result is opset 11,
 * not 13. Ops nnq does not run are left alone: prepare names them.
 *
 * Old broadcasting (Add.. with axis, PRelu's per-channel slope) needs the
 * rank of a value, so a small rank and dtype propagation over the nodes
 * runs first (ONNX stores nodes in topological order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "onnx/onnx_internal.h"
#include "onnx/onnx_io.h"

typedef struct upgrader {
    nnq_graph *g;
    int64_t opset;      /* the model's own default-domain opset */
    int n_known;        /* values that existed before the upgrade */
    int n_old_nodes;    /* nodes that existed before the upgrade */
    int *rank;          /* [n_known] rank per value, -1 unknown */
    nnq_dtype *dtype;   /* [n_known] dtype per value, UNDEFINED unknown */
    int *anchor;        /* [inserted] original node each inserted node precedes */
    int cap_anchor;
} upgrader;

/* ---- small graph edits ---- */

static const char *label(const upgrader *u, int k, char *buf, size_t cap) {
    return nnq_node_label(u->g, k, buf, cap);
}

/* Base for the names of values a rule adds: the node's name, else the
 * name of its first output (ONNX exporters often leave nodes unnamed). */
static const char *node_base(const upgrader *u, int k) {
    const nnq_node *n = &u->g->nodes[k];
    if (n->name[0]) return n->name;
    if (n->n_outputs > 0 && n->outputs[0] >= 0) return u->g->values[n->outputs[0]].name;
    return n->op_type;
}

static void drop_attr(nnq_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) != 0) continue;
        nnq_attr_release(&n->attrs[i]);
        memmove(&n->attrs[i], &n->attrs[i + 1], sizeof *n->attrs * (size_t)(n->n_attrs - i - 1));
        n->n_attrs--;
        return;
    }
}

/* Is value v read by a node other than `except`, or a graph output? */
static bool read_elsewhere(const nnq_graph *g, int v, int except) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    for (int k = 0; k < g->n_nodes; k++) {
        if (k == except) continue;
        for (int i = 0; i < g->nodes[k].n_inputs; i++)
            if (g->nodes[k].inputs[i] == v) return true;
    }
    return false;
}

/* Add a value named "<base>_<suffix>", with a counter appended until the
 * name is free. */
static nnq_status fresh_value(upgrader *u, const char *base, const char *suffix, int *out) {
    char name[NNQ_MAX_NAME + 1];
    snprintf(name, sizeof name, "%.3000s_%s", base, suffix);
    size_t len = strlen(name);
    for (int i = 1; nnq_graph_find_value(u->g, name) >= 0; i++)
        snprintf(name + len, sizeof name - len, "_%d", i);
    return nnq_graph_add_value(u->g, name, out);
}

/* Add an initializer (taking t's data) under a fresh name. */
static nnq_status fresh_initializer(upgrader *u, const char *base, const char *suffix,
                                    nnq_tensor *t, int *out) {
    int v;
    nnq_status s = fresh_value(u, base, suffix, &v);
    if (s != NNQ_OK) {
        nnq_tensor_release(t);
        return s;
    }
    nnq_value *val = &u->g->values[v];
    val->t = *t;
    val->t.owns = true;
    val->is_initializer = true;
    t->data = NULL;
    t->owns = false;
    *out = v;
    return NNQ_OK;
}

/* Set input slot i of node k, growing the input list with omitted (-1)
 * slots as needed. */
static nnq_status set_input(nnq_graph *g, int k, int i, int v) {
    nnq_node *n = &g->nodes[k];
    if (i >= n->n_inputs) {
        int *p = realloc(n->inputs, sizeof *p * (size_t)(i + 1));
        if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        for (int j = n->n_inputs; j <= i; j++) p[j] = -1;
        n->inputs = p;
        n->n_inputs = i + 1;
    }
    n->inputs[i] = v;
    return NNQ_OK;
}

/* Append a node that must run just before original node `before`; the
 * order is fixed by place_inserted() at the end. */
static nnq_status insert_node(upgrader *u, int before, const char *name, const char *op_type,
                              int in, int out, int *out_node) {
    int extra = u->g->n_nodes - u->n_old_nodes;
    if (extra == u->cap_anchor) {
        int cap = u->cap_anchor ? u->cap_anchor * 2 : 8;
        int *p = realloc(u->anchor, sizeof *p * (size_t)cap);
        if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        u->anchor = p;
        u->cap_anchor = cap;
    }
    NNQ_TRY(nnq_graph_add_node(u->g, name, op_type, "", 1, &in, 1, &out, out_node));
    u->anchor[extra] = before;
    return NNQ_OK;
}

/* Stable reorder: each inserted node goes right before its anchor, so the
 * node list stays topologically sorted for export. Producers follow. */
static nnq_status place_inserted(upgrader *u) {
    nnq_graph *g = u->g;
    int n = g->n_nodes, n0 = u->n_old_nodes;
    if (n == n0) return NNQ_OK;
    int *pos = malloc(sizeof *pos * (size_t)n);
    nnq_node *sorted = malloc(sizeof *sorted * (size_t)n);
    if (!pos || !sorted) {
        free(pos);
        free(sorted);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    }
    int w = 0;
    for (int k = 0; k < n0; k++) {
        for (int j = n0; j < n; j++)
            if (u->anchor[j - n0] == k) pos[j] = w++;
        pos[k] = w++;
    }
    for (int k = 0; k < n; k++) sorted[pos[k]] = g->nodes[k];
    memcpy(g->nodes, sorted, sizeof *sorted * (size_t)n);
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].producer >= 0) g->values[v].producer = pos[g->values[v].producer];
    free(pos);
    free(sorted);
    return NNQ_OK;
}

/* ---- rank and dtype of legacy values ---- */

static int rank_of(const upgrader *u, int v) {
    if (v < 0) return -1;
    return v < u->n_known ? u->rank[v] : u->g->values[v].t.rank;
}

static nnq_dtype dtype_of(const upgrader *u, int v) {
    if (v < 0) return NNQ_DT_UNDEFINED;
    return v < u->n_known ? u->dtype[v] : u->g->values[v].t.dtype;
}

typedef enum rank_rule {
    RANK_SAME,      /* rank of input 0 */
    RANK_BROADCAST, /* the larger of inputs 0 and 1 */
    RANK_MATRIX,    /* 2 */
    RANK_MATMUL,
    RANK_RESHAPE,   /* length of the shape attribute (< 5) or constant input */
    RANK_SQUEEZE,
    RANK_UNSQUEEZE,
    RANK_REDUCE,
    RANK_CONSTANT
} rank_rule;

static const struct {
    const char *op_type;
    rank_rule rule;
} rank_rules[] = {
    {"Conv", RANK_SAME},           {"BatchNormalization", RANK_SAME},
    {"Relu", RANK_SAME},           {"LeakyRelu", RANK_SAME},
    {"PRelu", RANK_SAME},          {"Clip", RANK_SAME},
    {"Sigmoid", RANK_SAME},        {"HardSigmoid", RANK_SAME},
    {"Tanh", RANK_SAME},           {"MaxPool", RANK_SAME},
    {"AveragePool", RANK_SAME},    {"GlobalAveragePool", RANK_SAME},
    {"Concat", RANK_SAME},         {"Pad", RANK_SAME},
    {"Transpose", RANK_SAME},      {"Identity", RANK_SAME},
    {"Dropout", RANK_SAME},        {"Softmax", RANK_SAME},
    {"Add", RANK_BROADCAST},       {"Sub", RANK_BROADCAST},
    {"Mul", RANK_BROADCAST},       {"Div", RANK_BROADCAST},
    {"Gemm", RANK_MATRIX},         {"Flatten", RANK_MATRIX},
    {"MatMul", RANK_MATMUL},       {"Reshape", RANK_RESHAPE},
    {"Squeeze", RANK_SQUEEZE},     {"Unsqueeze", RANK_UNSQUEEZE},
    {"ReduceMean", RANK_REDUCE},   {"Constant", RANK_CONSTANT},
};

/* Rank of output 0 of node n, or -1 if it cannot be told. */
static int node_rank(const upgrader *u, const nnq_node *n, rank_rule rule) {
    const int64_t *ints;
    int r0 = n->n_inputs > 0 ? rank_of(u, n->inputs[0]) : -1;
    int r1 = n->n_inputs > 1 ? rank_of(u, n->inputs[1]) : -1;
    switch (rule) {
    case RANK_SAME: return r0;
    case RANK_BROADCAST: return (r0 < 0 || r1 < 0) ? -1 : (r0 > r1 ? r0 : r1);
    case RANK_MATRIX: return 2;
    case RANK_MATMUL:
        if (r0 < 1 || r1 < 1) return -1;
        if (r0 == 1 || r1 == 1) return r0 + r1 - 2;
        return r0 > r1 ? r0 : r1;
    case RANK_RESHAPE:
        if (nnq_node_attr(n, "shape")) return nnq_node_attr_ints(n, "shape", &ints);
        if (n->n_inputs > 1 && n->inputs[1] >= 0) {
            const nnq_tensor *s = &u->g->values[n->inputs[1]].t;
            if (s->rank == 1 && s->dims[0] >= 0) return (int)s->dims[0];
        }
        return -1;
    case RANK_SQUEEZE: {
        int k = nnq_node_attr_ints(n, "axes", &ints);
        return (r0 < 0 || k == 0) ? -1 : r0 - k;
    }
    case RANK_UNSQUEEZE: {
        int k = nnq_node_attr_ints(n, "axes", &ints);
        return (r0 < 0 || k == 0) ? -1 : r0 + k;
    }
    case RANK_REDUCE:
        if (r0 < 0) return -1;
        if (nnq_node_attr_int(n, "keepdims", 1)) return r0;
        return nnq_node_attr(n, "axes") ? r0 - nnq_node_attr_ints(n, "axes", &ints) : 0;
    case RANK_CONSTANT: {
        const nnq_attr *a = nnq_node_attr(n, "value");
        return (a && a->type == NNQ_ATTR_TENSOR) ? a->t->rank : -1;
    }
    }
    return -1;
}

/* Declared ranks and dtypes, then one pass in node order for the rest. */
static nnq_status propagate_ranks(upgrader *u) {
    nnq_graph *g = u->g;
    u->rank = malloc(sizeof *u->rank * (size_t)(g->n_values ? g->n_values : 1));
    u->dtype = malloc(sizeof *u->dtype * (size_t)(g->n_values ? g->n_values : 1));
    if (!u->rank || !u->dtype) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++) {
        u->rank[v] = g->values[v].t.rank;
        u->dtype[v] = g->values[v].t.dtype;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const nnq_node *n = &g->nodes[k];
        int y = n->n_outputs > 0 ? n->outputs[0] : -1;
        if (y < 0 || (n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)) continue;
        for (size_t i = 0; i < sizeof rank_rules / sizeof rank_rules[0]; i++) {
            if (strcmp(rank_rules[i].op_type, n->op_type) != 0) continue;
            if (u->rank[y] < 0) u->rank[y] = node_rank(u, n, rank_rules[i].rule);
            if (u->dtype[y] == NNQ_DT_UNDEFINED) {
                const nnq_attr *a = nnq_node_attr(n, "value");
                if (rank_rules[i].rule == RANK_CONSTANT)
                    u->dtype[y] = (a && a->type == NNQ_ATTR_TENSOR) ? a->t->dtype : NNQ_DT_UNDEFINED;
                else
                    u->dtype[y] = n->n_inputs > 0 ? dtype_of(u, n->inputs[0]) : NNQ_DT_UNDEFINED;
            }
            break;
        }
    }
    return NNQ_OK;
}

/* ---- shared rewrites ---- */

/* Give input i of node k `ones` trailing dimensions of size 1, so that an
 * old-style aligned operand broadcasts the numpy way: a constant is
 * reshaped (copied first if something else reads it), anything else goes
 * through a new Unsqueeze (axes as an attribute, as opset 11 has it). */
static nnq_status append_unit_dims(upgrader *u, int k, int i, int ones) {
    nnq_graph *g = u->g;
    int v = g->nodes[k].inputs[i];
    int r = rank_of(u, v);
    char buf[256];
    if (r + ones > NNQ_MAX_RANK)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s node '%s': aligning input '%s' needs rank %d, "
                        "more than nnq's maximum %d", g->nodes[k].op_type, label(u, k, buf, sizeof buf),
                        g->values[v].name, r + ones, NNQ_MAX_RANK);
    if (g->values[v].is_initializer && g->values[v].t.rank == r) {
        nnq_tensor t = g->values[v].t;
        if (read_elsewhere(g, v, k)) {
            NNQ_TRY(nnq_tensor_clone(&t, &g->values[v].t));
            NNQ_TRY(fresh_initializer(u, g->values[v].name, "aligned", &t, &v));
            NNQ_TRY(set_input(g, k, i, v));
        }
        nnq_tensor *p = &g->values[v].t;
        for (int d = 0; d < ones; d++) p->dims[p->rank + d] = 1;
        p->rank += ones;
        return NNQ_OK;
    }
    int64_t axes[NNQ_MAX_RANK];
    for (int d = 0; d < ones; d++) axes[d] = r + d;
    int y, node;
    char name[300];
    NNQ_TRY(fresh_value(u, g->values[v].name, "aligned", &y));
    g->values[y].t.dtype = dtype_of(u, v);
    snprintf(name, sizeof name, "%.200s_align_%d", node_base(u, k), i);
    NNQ_TRY(insert_node(u, k, name, "Unsqueeze", v, y, &node));
    NNQ_TRY(nnq_node_set_ints(&g->nodes[node], "axes", ones, axes));
    return set_input(g, k, i, y);
}

/* A scalar initializer of dtype dt (float, double or half) holding x. */
static nnq_status scalar_initializer(upgrader *u, int k, const char *what, nnq_dtype dt,
                                     float x, int *out) {
    nnq_tensor t = {0};
    if (dt != NNQ_DT_DOUBLE && dt != NNQ_DT_FLOAT16) dt = NNQ_DT_FLOAT;
    NNQ_TRY(nnq_tensor_alloc(&t, dt, 0, NULL));
    if (dt == NNQ_DT_DOUBLE) *(double *)t.data = x;
    else if (dt == NNQ_DT_FLOAT16) *(uint16_t *)t.data = nnq_float_to_half(x);
    else *(float *)t.data = x;
    return fresh_initializer(u, node_base(u, k), what, &t, out);
}

/* Drop optional outputs from index `from` on, when nothing reads them;
 * fails naming `why` when something does. */
static nnq_status drop_unread_outputs(upgrader *u, int k, int from, const char *why) {
    nnq_graph *g = u->g;
    nnq_node *n = &g->nodes[k];
    char buf[256];
    for (int i = from; i < n->n_outputs; i++) {
        int v = n->outputs[i];
        if (v >= 0 && read_elsewhere(g, v, -1))
            return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s node '%s': output %d ('%s') is used, but %s",
                            n->op_type, label(u, k, buf, sizeof buf), i, g->values[v].name, why);
    }
    for (int i = from; i < n->n_outputs; i++)
        if (n->outputs[i] >= 0) g->values[n->outputs[i]].producer = -1;
    if (n->n_outputs > from) n->n_outputs = from;
    return NNQ_OK;
}

static nnq_status unsupported_attr(const upgrader *u, int k, const char *attr, const char *why) {
    char buf[256];
    const nnq_node *n = &u->g->nodes[k];
    return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s node '%s' (opset %lld): attribute %s: %s", n->op_type,
                    label(u, k, buf, sizeof buf), (long long)u->opset, attr, why);
}

/* ---- the legacy rules ---- */

/* Opset < 6: `consumed_inputs` was an in-place hint with no meaning. */
static nnq_status rule_consumed_inputs(upgrader *u, int k) {
    drop_attr(&u->g->nodes[k], "consumed_inputs");
    return NNQ_OK;
}

/* Add/Sub/Mul/Div before 7: with broadcast=1, B lines up with A starting
 * at `axis` (suffix alignment without it). Numpy aligns suffixes, so B
 * gets rank(A) - axis - rank(B) trailing unit dims. */
static nnq_status rule_legacy_broadcast(upgrader *u, int k) {
    nnq_node *n = &u->g->nodes[k];
    bool bcast = nnq_node_attr_int(n, "broadcast", 0) != 0;
    const nnq_attr *ax = nnq_node_attr(n, "axis");
    bool has_axis = ax && ax->type == NNQ_ATTR_INT;
    const int64_t given = has_axis ? ax->i : 0; /* ax dies with drop_attr */
    int64_t axis = given;
    drop_attr(n, "broadcast");
    drop_attr(n, "axis");
    if (!bcast || !has_axis || n->n_inputs != 2 || n->inputs[1] < 0) return NNQ_OK;
    int ra = rank_of(u, n->inputs[0]), rb = rank_of(u, n->inputs[1]);
    const nnq_tensor *b = &u->g->values[n->inputs[1]].t;
    if (rb == 0 || (b->rank == rb && nnq_shape_numel(b->rank, b->dims) == 1))
        return NNQ_OK; /* one element broadcasts anywhere */
    if (ra < 0 || rb < 0)
        return unsupported_attr(u, k, "axis", "the ranks of A and B are needed to align B, and "
                                "they are unknown");
    if (axis < 0) axis += ra;
    if (axis < 0 || axis + rb > ra) {
        char buf[256];
        return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': broadcast axis %lld does not fit B of "
                        "rank %d into A of rank %d", n->op_type, label(u, k, buf, sizeof buf),
                        (long long)given, rb, ra);
    }
    int ones = ra - (int)axis - rb;
    return ones ? append_unit_dims(u, k, 1, ones) : NNQ_OK;
}

/* Gemm before 7: `broadcast` let C broadcast; numpy rules now always do. */
static nnq_status rule_gemm_broadcast(upgrader *u, int k) {
    drop_attr(&u->g->nodes[k], "broadcast");
    return NNQ_OK;
}

/* PRelu before 7: a 1-D slope of C values is per channel of X (N, C, ...);
 * numpy needs it as (C, 1, ..., 1). */
static nnq_status rule_prelu_slope(upgrader *u, int k) {
    const nnq_node *n = &u->g->nodes[k];
    if (n->n_inputs != 2 || n->inputs[1] < 0) return NNQ_OK;
    int rx = rank_of(u, n->inputs[0]), rs = rank_of(u, n->inputs[1]);
    const nnq_tensor *s = &u->g->values[n->inputs[1]].t;
    if (rs != 1 || (s->rank == 1 && s->dims[0] == 1)) return NNQ_OK;
    if (rx < 0) {
        char buf[256];
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "PRelu node '%s' (opset %lld): the per-channel slope "
                        "needs the rank of X, which is unknown", label(u, k, buf, sizeof buf),
                        (long long)u->opset);
    }
    return rx > 2 ? append_unit_dims(u, k, 1, rx - 2) : NNQ_OK;
}

/* BatchNormalization before 9: `spatial` (0 = per-element statistics) and,
 * before 7, `is_test`. Test mode with unread statistics outputs becomes
 * the one-output inference form. */
static nnq_status rule_batchnorm(upgrader *u, int k) {
    nnq_node *n = &u->g->nodes[k];
    if (nnq_node_attr_int(n, "spatial", 1) == 0)
        return unsupported_attr(u, k, "spatial=0", "per-element statistics have no opset-11 form "
                                "and nnq does not support them");
    drop_attr(n, "spatial");
    if (u->opset >= 7) return NNQ_OK;
    bool test = nnq_node_attr_int(n, "is_test", 0) != 0;
    drop_attr(n, "is_test");
    return test ? drop_unread_outputs(u, k, 1, "is_test=1 does not compute it") : NNQ_OK;
}

/* Dropout before 10: `is_test` (before 7) goes; the mask output had X's
 * type, bool from opset 10, so it may only stay if nothing reads it.
 * `ratio` is still an opset-11 attribute. */
static nnq_status rule_dropout(upgrader *u, int k) {
    drop_attr(&u->g->nodes[k], "is_test");
    return drop_unread_outputs(u, k, 1, "its type (X's before opset 10, bool after) changes");
}

/* Clip before 11: `min`/`max` attributes become scalar inputs of X's type. */
static nnq_status rule_clip_bounds(upgrader *u, int k) {
    static const char *const bounds[2] = {"min", "max"};
    nnq_node *n = &u->g->nodes[k];
    nnq_dtype dt = dtype_of(u, n->n_inputs > 0 ? n->inputs[0] : -1);
    float x[2];
    bool has[2];
    for (int i = 0; i < 2; i++) {
        has[i] = nnq_node_attr(n, bounds[i]) != NULL;
        x[i] = nnq_node_attr_float(n, bounds[i], 0);
        drop_attr(n, bounds[i]);
    }
    for (int i = 0; i < 2; i++) {
        int v;
        if (!has[i]) continue;
        NNQ_TRY(scalar_initializer(u, k, bounds[i], dt, x[i], &v));
        NNQ_TRY(set_input(u->g, k, 1 + i, v));
    }
    return NNQ_OK;
}

/* Pad before 11: `pads` (`paddings` in Pad-1) and `value` attributes
 * become the pads and constant_value inputs; `mode` stays. */
static nnq_status rule_pad_inputs(upgrader *u, int k) {
    nnq_node *n = &u->g->nodes[k];
    const char *key = nnq_node_attr(n, "pads") ? "pads" : "paddings";
    const int64_t *pads;
    int np = nnq_node_attr_ints(n, key, &pads);
    if (!nnq_node_attr(n, key)) return unsupported_attr(u, k, "pads", "it is missing");
    nnq_tensor t = {0};
    int64_t dim = np;
    int v;
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_INT64, 1, &dim));
    if (np) memcpy(t.data, pads, sizeof *pads * (size_t)np);
    NNQ_TRY(fresh_initializer(u, node_base(u, k), "pads", &t, &v));
    n = &u->g->nodes[k];
    drop_attr(n, key);
    NNQ_TRY(set_input(u->g, k, 1, v));
    const char *mode = nnq_node_attr_string(n, "mode", "constant");
    bool has_value = nnq_node_attr(n, "value") != NULL;
    float value = nnq_node_attr_float(n, "value", 0);
    drop_attr(n, "value");
    if (!has_value || strcmp(mode, "constant") != 0) return NNQ_OK;
    int cv;
    nnq_dtype dt = dtype_of(u, n->inputs[0]); /* set_input gave it >= 2 inputs */
    NNQ_TRY(scalar_initializer(u, k, "constant_value", dt, value, &cv));
    return set_input(u->g, k, 2, cv);
}

/* Reshape before 5: the `shape` attribute becomes an int64 input. */
static nnq_status rule_reshape_shape(upgrader *u, int k) {
    nnq_node *n = &u->g->nodes[k];
    if (n->n_inputs >= 2) return NNQ_OK;
    const int64_t *shape;
    int ns = nnq_node_attr_ints(n, "shape", &shape);
    if (!nnq_node_attr(n, "shape")) return unsupported_attr(u, k, "shape", "it is missing");
    nnq_tensor t = {0};
    int64_t dim = ns;
    int v;
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_INT64, 1, &dim));
    if (ns) memcpy(t.data, shape, sizeof *shape * (size_t)ns);
    NNQ_TRY(fresh_initializer(u, node_base(u, k), "shape", &t, &v));
    drop_attr(&u->g->nodes[k], "shape");
    return set_input(u->g, k, 1, v);
}

/* Concat before 4: `axis` was optional with default 1; now required. */
static nnq_status rule_concat_axis(upgrader *u, int k) {
    nnq_node *n = &u->g->nodes[k];
    return nnq_node_attr(n, "axis") ? NNQ_OK : nnq_node_set_int(n, "axis", 1);
}

typedef nnq_status (*upgrade_fn)(upgrader *u, int node);

typedef struct upgrade_rule {
    const char *op_type; /* NULL: every default-domain op */
    int64_t gone_in;     /* the rule applies to models with opset < gone_in */
    upgrade_fn fn;
} upgrade_rule;

static const upgrade_rule rules[] = {
    {NULL, 6, rule_consumed_inputs},
    {"Add", 7, rule_legacy_broadcast},
    {"Sub", 7, rule_legacy_broadcast},
    {"Mul", 7, rule_legacy_broadcast},
    {"Div", 7, rule_legacy_broadcast},
    {"Gemm", 7, rule_gemm_broadcast},
    {"PRelu", 7, rule_prelu_slope},
    {"BatchNormalization", 9, rule_batchnorm},
    {"Dropout", 10, rule_dropout},
    {"Clip", 11, rule_clip_bounds},
    {"Pad", 11, rule_pad_inputs},
    {"Reshape", 5, rule_reshape_shape},
    {"Concat", 4, rule_concat_axis},
};

static nnq_status upgrade_nodes(upgrader *u) {
    for (int k = 0; k < u->n_old_nodes; k++) {
        const char *domain = u->g->nodes[k].domain;
        if (domain[0] && strcmp(domain, "ai.onnx") != 0) continue;
        for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
            const upgrade_rule *rule = &rules[r];
            if (u->opset >= rule->gone_in) continue;
            /* Index, not pointer: a rule may have grown g->nodes. */
            if (rule->op_type && strcmp(rule->op_type, u->g->nodes[k].op_type) != 0) continue;
            NNQ_TRY(rule->fn(u, k));
        }
    }
    return NNQ_OK;
}

nnq_status nnq_onnx_upgrade(nnq_graph *g) {
    upgrader u = {.g = g, .opset = nnq_graph_opset(g), .n_known = g->n_values,
                  .n_old_nodes = g->n_nodes};
    if (u.opset <= 0 || u.opset >= NNQ_ONNX_UPGRADE_OPSET) return NNQ_OK;
    nnq_status s = propagate_ranks(&u);
    if (s == NNQ_OK) s = upgrade_nodes(&u);
    if (s == NNQ_OK) s = place_inserted(&u);
    if (s == NNQ_OK)
        for (int i = 0; i < g->n_opsets; i++)
            if (!g->opsets[i].domain[0] || strcmp(g->opsets[i].domain, "ai.onnx") == 0)
                g->opsets[i].version = NNQ_ONNX_UPGRADE_OPSET;
    free(u.rank);
    free(u.dtype);
    free(u.anchor);
    return s;
}
