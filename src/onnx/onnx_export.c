/* nnq_graph -> ONNX ModelProto.
 *
 * The protobuf-c messages point straight into the graph (names, dims,
 * tensor data), so no tensor is copied before packing; the message structs
 * themselves come from a small arena freed in one call. Output is
 * deterministic: the same graph always packs to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/limits.h"
#include "onnx/onnx_internal.h"
#include "onnx/onnx_io.h"

/* ---- arena: every allocation of one export, freed together ---- */

typedef struct arena {
    void **ptrs;
    size_t n, cap;
} arena;

static void *arena_calloc(arena *a, size_t count, size_t size) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        void **p = realloc(a->ptrs, cap * sizeof *p);
        if (!p) return NULL;
        a->ptrs = p;
        a->cap = cap;
    }
    void *m = calloc(count ? count : 1, size);
    if (m) a->ptrs[a->n++] = m;
    return m;
}

static void arena_free(arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->ptrs[i]);
    free(a->ptrs);
}

#define NEW(a, T, init) new_msg_((a), sizeof(T), &(const T)init)
static void *new_msg_(arena *a, size_t size, const void *init) {
    void *m = arena_calloc(a, 1, size);
    if (m) memcpy(m, init, size);
    return m;
}

static char *opt_str(const char *s) { return (s && s[0]) ? (char *)s : NULL; }

/* IR version that goes with an opset (ONNX docs/Versioning.md). */
static int64_t ir_for_opset(int64_t opset) {
    if (opset <= 8) return 3;
    if (opset == 9) return 4;
    if (opset == 10) return 5;
    if (opset == 11) return 6;
    if (opset <= 14) return 7;
    if (opset <= 18) return 8;
    return 9;
}

/* ---- pieces ---- */

static nnq_status make_value_info(arena *a, const nnq_value *v, Onnx__ValueInfoProto **out) {
    Onnx__ValueInfoProto *vi = NEW(a, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
    if (!vi) goto nomem;
    vi->name = v->name;
    if (v->t.dtype != NNQ_DT_UNDEFINED || v->t.rank >= 0) {
        Onnx__TypeProto *tp = NEW(a, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
        Onnx__TypeProto__Tensor *tt = NEW(a, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
        if (!tp || !tt) goto nomem;
        tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        tp->tensor_type = tt;
        tt->has_elem_type = v->t.dtype != NNQ_DT_UNDEFINED;
        tt->elem_type = (int32_t)v->t.dtype;
        vi->type = tp;
        if (v->t.rank >= 0) { /* rank -1: unknown, so no shape at all */
            int rank = v->t.rank > NNQ_MAX_RANK ? NNQ_MAX_RANK : v->t.rank;
            Onnx__TensorShapeProto *sh = NEW(a, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
            if (!sh || !(sh->dim = arena_calloc(a, (size_t)rank, sizeof *sh->dim))) goto nomem;
            sh->n_dim = (size_t)rank;
            for (int i = 0; i < rank; i++) {
                Onnx__TensorShapeProto__Dimension *d =
                    NEW(a, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
                if (!d) goto nomem;
                const char *param = v->dim_params ? v->dim_params[i] : NULL;
                if (v->t.dims[i] >= 0) {
                    d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                    d->dim_value = v->t.dims[i];
                } else if (param && param[0]) {
                    d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                    d->dim_param = (char *)param;
                }
                sh->dim[i] = d;
            }
            tt->shape = sh;
        }
    }
    *out = vi;
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting value '%.200s'", v->name);
}

static nnq_status make_attr(arena *a, const nnq_attr *at, const char *node,
                            Onnx__AttributeProto **out) {
    Onnx__AttributeProto *p = NEW(a, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
    if (!p) goto nomem;
    p->name = at->name;
    p->has_type = 1;
    p->type = (Onnx__AttributeProto__AttributeType)at->type;
    switch (at->type) {
    case NNQ_ATTR_FLOAT: p->has_f = 1; p->f = at->f; break;
    case NNQ_ATTR_INT: p->has_i = 1; p->i = at->i; break;
    case NNQ_ATTR_STRING:
        p->has_s = 1;
        p->s.data = (uint8_t *)at->s;
        p->s.len = at->s ? at->s_len : 0;
        break;
    case NNQ_ATTR_TENSOR: {
        char what[512];
        if (!at->t)
            return nnq_fail(NNQ_ERR_INVALID, "node '%s': tensor attribute '%.200s' holds no tensor",
                            node, at->name);
        if (!(p->t = arena_calloc(a, 1, sizeof *p->t))) goto nomem;
        snprintf(what, sizeof what, "node '%s' attribute '%.200s'", node, at->name);
        NNQ_TRY(nnq_onnx_tensor_to_proto(at->t, NULL, p->t, what));
        break;
    }
    case NNQ_ATTR_FLOATS:
        p->n_floats = at->n > 0 ? (size_t)at->n : 0;
        p->floats = at->floats;
        break;
    case NNQ_ATTR_INTS:
        p->n_ints = at->n > 0 ? (size_t)at->n : 0;
        p->ints = at->ints;
        break;
    case NNQ_ATTR_STRINGS:
        p->n_strings = at->n > 0 ? (size_t)at->n : 0;
        if (!(p->strings = arena_calloc(a, p->n_strings, sizeof *p->strings))) goto nomem;
        for (size_t i = 0; i < p->n_strings; i++) {
            const char *s = at->strings[i] ? at->strings[i] : "";
            p->strings[i].data = (uint8_t *)s;
            p->strings[i].len = strlen(s);
        }
        break;
    default:
        return nnq_fail(NNQ_ERR_INVALID, "node '%s': attribute '%.200s' has unknown type %d", node,
                        at->name, (int)at->type);
    }
    *out = p;
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting node '%s'", node);
}

static nnq_status value_name(const nnq_graph *g, int v, const char *node, char **out) {
    if (v == -1) {
        *out = (char *)""; /* omitted optional input/output */
        return NNQ_OK;
    }
    if (v < -1 || v >= g->n_values)
        return nnq_fail(NNQ_ERR_INVALID, "node '%s' refers to value %d, which does not exist", node, v);
    *out = g->values[v].name;
    return NNQ_OK;
}

static nnq_status make_node(arena *a, const nnq_graph *g, int index, Onnx__NodeProto **out) {
    const nnq_node *n = &g->nodes[index];
    char label[256];
    nnq_node_label(g, index, label, sizeof label);
    Onnx__NodeProto *p = NEW(a, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
    if (!p) goto nomem;
    p->name = opt_str(n->name);
    p->op_type = n->op_type;
    p->domain = opt_str(n->domain);
    p->n_input = (size_t)n->n_inputs;
    p->n_output = (size_t)n->n_outputs;
    p->n_attribute = (size_t)n->n_attrs;
    if (!(p->input = arena_calloc(a, p->n_input, sizeof(char *))) ||
        !(p->output = arena_calloc(a, p->n_output, sizeof(char *))) ||
        !(p->attribute = arena_calloc(a, p->n_attribute, sizeof *p->attribute)))
        goto nomem;
    for (int i = 0; i < n->n_inputs; i++) NNQ_TRY(value_name(g, n->inputs[i], label, &p->input[i]));
    for (int i = 0; i < n->n_outputs; i++) NNQ_TRY(value_name(g, n->outputs[i], label, &p->output[i]));
    for (int i = 0; i < n->n_attrs; i++) NNQ_TRY(make_attr(a, &n->attrs[i], label, &p->attribute[i]));
    *out = p;
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting node '%s'", label);
}

/* Value flags: 1 graph input, 2 graph output, 4 used by a node. */
enum { F_INPUT = 1, F_OUTPUT = 2, F_USED = 4 };

static nnq_status mark_values(const nnq_graph *g, unsigned char *flags) {
    for (int i = 0; i < g->n_inputs; i++) {
        if (g->inputs[i] < 0 || g->inputs[i] >= g->n_values)
            return nnq_fail(NNQ_ERR_INVALID, "graph input #%d is not a value", i);
        flags[g->inputs[i]] |= F_INPUT;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        if (g->outputs[i] < 0 || g->outputs[i] >= g->n_values)
            return nnq_fail(NNQ_ERR_INVALID, "graph output #%d is not a value", i);
        flags[g->outputs[i]] |= F_OUTPUT;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const nnq_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0 && n->inputs[i] < g->n_values) flags[n->inputs[i]] |= F_USED;
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0 && n->outputs[i] < g->n_values) flags[n->outputs[i]] |= F_USED;
    }
    return NNQ_OK;
}

static nnq_status make_graph(arena *a, const nnq_graph *g, const unsigned char *flags,
                             Onnx__GraphProto **out) {
    Onnx__GraphProto *gp = NEW(a, Onnx__GraphProto, ONNX__GRAPH_PROTO__INIT);
    if (!gp) goto nomem;
    /* The ONNX checker requires a non-empty graph name. */
    gp->name = (g->name && g->name[0]) ? g->name : (char *)"nnq";

    size_t n_init = 0, n_info = 0;
    for (int i = 0; i < g->n_values; i++) {
        const nnq_value *v = &g->values[i];
        if (v->is_initializer)
            n_init++;
        else if (!(flags[i] & (F_INPUT | F_OUTPUT)) && (flags[i] & F_USED) && v->t.dtype != NNQ_DT_UNDEFINED)
            n_info++;
    }
    gp->n_initializer = n_init;
    gp->n_value_info = n_info;
    gp->n_input = (size_t)g->n_inputs;
    gp->n_output = (size_t)g->n_outputs;
    gp->n_node = (size_t)g->n_nodes;
    if (!(gp->initializer = arena_calloc(a, n_init, sizeof *gp->initializer)) ||
        !(gp->value_info = arena_calloc(a, n_info, sizeof *gp->value_info)) ||
        !(gp->input = arena_calloc(a, gp->n_input, sizeof *gp->input)) ||
        !(gp->output = arena_calloc(a, gp->n_output, sizeof *gp->output)) ||
        !(gp->node = arena_calloc(a, gp->n_node, sizeof *gp->node)))
        goto nomem;

    size_t ki = 0, kv = 0;
    for (int i = 0; i < g->n_values; i++) {
        const nnq_value *v = &g->values[i];
        if (v->is_initializer) {
            char what[256];
            Onnx__TensorProto *tp = arena_calloc(a, 1, sizeof *tp);
            if (!tp) goto nomem;
            snprintf(what, sizeof what, "initializer '%.200s'", v->name);
            NNQ_TRY(nnq_onnx_tensor_to_proto(&v->t, v->name, tp, what));
            gp->initializer[ki++] = tp;
        } else if (!(flags[i] & (F_INPUT | F_OUTPUT)) && (flags[i] & F_USED) &&
                   v->t.dtype != NNQ_DT_UNDEFINED) {
            NNQ_TRY(make_value_info(a, v, &gp->value_info[kv++]));
        }
    }
    for (int i = 0; i < g->n_inputs; i++)
        NNQ_TRY(make_value_info(a, &g->values[g->inputs[i]], &gp->input[i]));
    for (int i = 0; i < g->n_outputs; i++)
        NNQ_TRY(make_value_info(a, &g->values[g->outputs[i]], &gp->output[i]));
    for (int i = 0; i < g->n_nodes; i++) NNQ_TRY(make_node(a, g, i, &gp->node[i]));
    *out = gp;
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting the graph");
}

static nnq_status make_model(arena *a, const nnq_graph *g, Onnx__ModelProto **out) {
    int64_t opset = nnq_graph_opset(g);
    if (opset <= 0)
        return nnq_fail(NNQ_ERR_INVALID, "the graph has no default-domain (ai.onnx) opset to export");
    Onnx__ModelProto *m = NEW(a, Onnx__ModelProto, ONNX__MODEL_PROTO__INIT);
    if (!m) goto nomem;
    /* Keep the imported IR version unless a pass raised the opset past it. */
    m->has_ir_version = 1;
    m->ir_version = g->ir_version > ir_for_opset(opset) ? g->ir_version : ir_for_opset(opset);
    m->producer_name = opt_str(g->producer_name);
    m->producer_version = opt_str(g->producer_version);
    m->doc_string = opt_str(g->doc_string);
    m->n_metadata_props = (size_t)g->n_meta;
    if (g->n_meta &&
        !(m->metadata_props = arena_calloc(a, (size_t)g->n_meta, sizeof *m->metadata_props)))
        goto nomem;
    for (int i = 0; i < g->n_meta; i++) {
        Onnx__StringStringEntryProto *e =
            NEW(a, Onnx__StringStringEntryProto, ONNX__STRING_STRING_ENTRY_PROTO__INIT);
        if (!e) goto nomem;
        e->key = g->meta_keys[i];
        e->value = g->meta_values[i];
        m->metadata_props[i] = e;
    }
    m->n_opset_import = (size_t)g->n_opsets;
    if (!(m->opset_import = arena_calloc(a, m->n_opset_import, sizeof *m->opset_import))) goto nomem;
    for (int i = 0; i < g->n_opsets; i++) {
        Onnx__OperatorSetIdProto *o = NEW(a, Onnx__OperatorSetIdProto, ONNX__OPERATOR_SET_ID_PROTO__INIT);
        if (!o) goto nomem;
        o->domain = g->opsets[i].domain ? g->opsets[i].domain : (char *)"";
        o->has_version = 1;
        o->version = g->opsets[i].version;
        m->opset_import[i] = o;
    }
    unsigned char *flags = arena_calloc(a, (size_t)g->n_values, 1);
    if (!flags) goto nomem;
    NNQ_TRY(mark_values(g, flags));
    NNQ_TRY(make_graph(a, g, flags, &m->graph));
    *out = m;
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting the model");
}

nnq_status nnq_onnx_save_bytes(const nnq_graph *g, unsigned char **buf, size_t *len) {
    arena a = {0};
    Onnx__ModelProto *m = NULL;
    unsigned char *out = NULL;
    size_t n = 0;
    *buf = NULL;
    *len = 0;
    nnq_status s = make_model(&a, g, &m);
    if (s != NNQ_OK) goto done;
    n = onnx__model_proto__get_packed_size(m);
    if (n > NNQ_MAX_MODEL_BYTES) {
        s = nnq_fail(NNQ_ERR_LIMIT, "the model packs to %zu bytes, over protobuf's 2 GiB limit", n);
        goto done;
    }
    if (!(out = malloc(n ? n : 1))) {
        s = nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for the model", n);
        goto done;
    }
    onnx__model_proto__pack(m, out);
    *buf = out;
    *len = n;
done:
    arena_free(&a);
    return s;
}

nnq_status nnq_onnx_save(const nnq_graph *g, const char *path) {
    unsigned char *buf;
    size_t len;
    nnq_status s = nnq_onnx_save_bytes(g, &buf, &len);
    if (s != NNQ_OK) return nnq_fail_context(s, "saving %s: ", path);
    s = nnq_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}
