/* ONNX ModelProto -> nnq_graph.
 *
 * Values are created in a fixed order (initializers, graph inputs, node
 * inputs/outputs in node order, graph outputs), so exporting a graph and
 * importing it again gives the same value indices. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/limits.h"
#include "onnx/onnx_internal.h"
#include "onnx/onnx_io.h"

/* ---- name -> value index, open addressing ----
 * nnq_graph_find_value is linear; a large model has tens of thousands of
 * value references, so the importer keeps its own hash table. */

typedef struct name_map {
    int *slots; /* value index + 1; 0 = empty */
    size_t cap; /* power of two */
    size_t used;
} name_map;

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_find(const name_map *m, const nnq_graph *g, const char *name) {
    if (!m->cap) return -1;
    for (size_t i = hash_name(name) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int v = m->slots[i] - 1;
        if (v < 0) return -1;
        if (strcmp(g->values[v].name, name) == 0) return v;
    }
}

static void map_put(name_map *m, const nnq_graph *g, int value) {
    size_t i = hash_name(g->values[value].name) & (m->cap - 1);
    while (m->slots[i]) i = (i + 1) & (m->cap - 1);
    m->slots[i] = value + 1;
    m->used++;
}

static nnq_status map_insert(name_map *m, const nnq_graph *g, int value) {
    if ((m->used + 1) * 2 > m->cap) { /* keep the load factor under 1/2 */
        name_map bigger = {0};
        bigger.cap = m->cap ? m->cap * 2 : 64;
        bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
        if (!bigger.slots) return nnq_fail(NNQ_ERR_NOMEM, "out of memory indexing value names");
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i]) map_put(&bigger, g, m->slots[i] - 1);
        free(m->slots);
        *m = bigger;
    }
    map_put(m, g, value);
    return NNQ_OK;
}

/* ---- importer state ---- */

typedef struct importer {
    nnq_graph *g;
    name_map names;
} importer;

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static nnq_status check_name_len(const char *s, const char *kind) {
    if (s && strlen(s) > NNQ_MAX_NAME)
        return nnq_fail(NNQ_ERR_LIMIT, "a %s name is longer than %d bytes", kind, NNQ_MAX_NAME);
    return NNQ_OK;
}

/* Find or create the value called `name`; "" (an omitted optional) is -1. */
static nnq_status value_ref(importer *im, const char *name, int *out) {
    if (!name || !name[0]) {
        *out = -1;
        return NNQ_OK;
    }
    int v = map_find(&im->names, im->g, name);
    if (v < 0) {
        NNQ_TRY(nnq_graph_add_value(im->g, name, &v));
        NNQ_TRY(map_insert(&im->names, im->g, v));
    }
    *out = v;
    return NNQ_OK;
}

static void free_params(char **params) {
    if (!params) return;
    for (int i = 0; i < NNQ_MAX_RANK; i++) free(params[i]);
    free(params);
}

/* dtype and shape from a ValueInfoProto. strict (graph inputs/outputs):
 * types nnq cannot represent are errors; otherwise (value_info hints) they
 * are ignored. A missing shape leaves the rank unknown (-1). */
static nnq_status read_value_type(const Onnx__ValueInfoProto *vi, nnq_value *v, bool strict,
                                  const char *kind) {
    const char *name = str_or_empty(vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return NNQ_OK;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        if (!strict) return NNQ_OK;
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%.200s' is not a tensor (sequence, map, optional "
                        "and sparse types are not supported)", kind, name);
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int32_t code = tt->has_elem_type ? tt->elem_type : 0;
    if (code != 0 && (code < 0 || nnq_dtype_size((nnq_dtype)code) == 0)) {
        if (!strict) return NNQ_OK;
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%.200s' has element type %d, which nnq does not "
                        "support", kind, name, (int)code);
    }
    if (!strict && code == 0) return NNQ_OK; /* a hint without a type tells us nothing we keep */

    int rank = -1;
    int64_t dims[NNQ_MAX_RANK];
    char **params = NULL;
    const Onnx__TensorShapeProto *sh = tt->shape;
    if (sh) {
        if (sh->n_dim > NNQ_MAX_RANK)
            return nnq_fail(NNQ_ERR_LIMIT, "%s '%.200s' has rank %zu, more than nnq's maximum %d",
                            kind, name, sh->n_dim, NNQ_MAX_RANK);
        rank = (int)sh->n_dim;
        for (int i = 0; i < rank; i++) {
            const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
            dims[i] = -1;
            if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
                if (d->dim_value < 0) {
                    free_params(params);
                    return nnq_fail(NNQ_ERR_PARSE, "%s '%.200s' has a negative dimension (%lld)", kind,
                                    name, (long long)d->dim_value);
                }
                dims[i] = d->dim_value;
            } else if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                       d->dim_param && d->dim_param[0]) {
                if (!params && !(params = calloc(NNQ_MAX_RANK, sizeof *params)))
                    return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
                if (!(params[i] = nnq_onnx_strdup(d->dim_param))) {
                    free_params(params);
                    return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
                }
            }
        }
    }
    v->t.dtype = (nnq_dtype)code;
    v->t.rank = rank;
    for (int i = 0; i < NNQ_MAX_RANK; i++) v->t.dims[i] = i < rank ? dims[i] : 0;
    v->dim_params = params;
    return NNQ_OK;
}

static bool has_type_info(const nnq_value *v) {
    return v->t.dtype != NNQ_DT_UNDEFINED || v->t.rank >= 0;
}

/* ---- attributes ---- */

static const char *attr_type_name(int type) {
    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "GRAPH";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "GRAPHS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "SPARSE_TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "SPARSE_TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: return "TYPE_PROTO";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "TYPE_PROTOS";
    default: return NULL;
    }
}

/* Old writers (IR < 2) left `type` unset; infer it from the field present. */
static int attr_type_of(const Onnx__AttributeProto *a) {
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return a->type;
    if (a->has_f) return NNQ_ATTR_FLOAT;
    if (a->has_i) return NNQ_ATTR_INT;
    if (a->has_s) return NNQ_ATTR_STRING;
    if (a->t) return NNQ_ATTR_TENSOR;
    if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (a->sparse_tensor) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR;
    if (a->n_floats) return NNQ_ATTR_FLOATS;
    if (a->n_ints) return NNQ_ATTR_INTS;
    if (a->n_strings) return NNQ_ATTR_STRINGS;
    if (a->n_tensors) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS;
    if (a->n_graphs) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS;
    return NNQ_ATTR_UNDEFINED;
}

static char *dup_bytes(const uint8_t *data, size_t len) {
    char *s = malloc(len + 1);
    if (!s) return NULL;
    if (len) memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

/* Fill *d (zeroed by the caller) from a; on failure d may hold partial
 * allocations that nnq_attr_release frees. */
static nnq_status read_attr(const Onnx__AttributeProto *a, nnq_attr *d, const char *node) {
    const char *an = a->name;
    if (a->ref_attr_name && a->ref_attr_name[0])
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "node '%s': attribute '%.200s' refers to function "
                        "attribute '%.200s', which nnq does not support", node, an, a->ref_attr_name);
    int type = attr_type_of(a);
    const char *unsupported = attr_type_name(type);
    if (unsupported)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "node '%s': attribute '%.200s' has type %s, which nnq "
                        "does not support", node, an, unsupported);
    if (!(d->name = nnq_onnx_strdup(an))) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    d->type = (nnq_attr_type)type;
    size_t count = 0;
    switch (type) {
    case NNQ_ATTR_FLOAT: d->f = a->f; return NNQ_OK;
    case NNQ_ATTR_INT: d->i = a->i; return NNQ_OK;
    case NNQ_ATTR_STRING:
        if (!(d->s = dup_bytes(a->s.data, a->s.len))) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        d->s_len = a->s.len;
        return NNQ_OK;
    case NNQ_ATTR_TENSOR: {
        char what[512];
        if (!a->t)
            return nnq_fail(NNQ_ERR_PARSE, "node '%s': tensor attribute '%.200s' holds no tensor", node, an);
        if (!(d->t = calloc(1, sizeof *d->t))) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        snprintf(what, sizeof what, "node '%s' attribute '%.200s'", node, an);
        return nnq_onnx_tensor_from_proto(a->t, d->t, what);
    }
    case NNQ_ATTR_FLOATS: count = a->n_floats; break;
    case NNQ_ATTR_INTS: count = a->n_ints; break;
    case NNQ_ATTR_STRINGS: count = a->n_strings; break;
    default:
        return nnq_fail(NNQ_ERR_PARSE, "node '%s': attribute '%.200s' has unknown type %d", node, an, type);
    }
    if (count > INT_MAX)
        return nnq_fail(NNQ_ERR_LIMIT, "node '%s': attribute '%.200s' has too many elements", node, an);
    d->n = (int)count;
    if (type == NNQ_ATTR_FLOATS) {
        if (!(d->floats = malloc(count ? count * sizeof(float) : 1))) goto nomem;
        if (count) memcpy(d->floats, a->floats, count * sizeof(float));
    } else if (type == NNQ_ATTR_INTS) {
        if (!(d->ints = malloc(count ? count * sizeof(int64_t) : 1))) goto nomem;
        if (count) memcpy(d->ints, a->ints, count * sizeof(int64_t));
    } else {
        if (!(d->strings = calloc(count ? count : 1, sizeof(char *)))) goto nomem;
        for (size_t i = 0; i < count; i++)
            if (!(d->strings[i] = dup_bytes(a->strings[i].data, a->strings[i].len))) goto nomem;
    }
    return NNQ_OK;
nomem:
    return nnq_fail(NNQ_ERR_NOMEM, "node '%s': out of memory reading attribute '%.200s'", node, an);
}

static nnq_status read_attrs(const Onnx__NodeProto *np, nnq_node *n, const char *label) {
    if (np->n_attribute == 0) return NNQ_OK;
    if (np->n_attribute > (size_t)INT_MAX)
        return nnq_fail(NNQ_ERR_LIMIT, "node '%s' has too many attributes", label);
    n->attrs = calloc(np->n_attribute, sizeof *n->attrs);
    if (!n->attrs) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        if (!a->name || !a->name[0])
            return nnq_fail(NNQ_ERR_PARSE, "node '%s': attribute #%zu has no name", label, i);
        NNQ_TRY(check_name_len(a->name, "attribute"));
        for (size_t j = 0; j < i; j++)
            if (strcmp(np->attribute[j]->name, a->name) == 0)
                return nnq_fail(NNQ_ERR_PARSE, "node '%s': attribute '%.200s' appears twice", label,
                                a->name);
        /* Count the slot first so the graph frees partial allocations. */
        n->n_attrs = (int)i + 1;
        NNQ_TRY(read_attr(a, &n->attrs[i], label));
    }
    return NNQ_OK;
}

/* ---- graph ---- */

static nnq_status read_opsets(const Onnx__ModelProto *m, nnq_graph *g) {
    bool have_default = false;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *dom = str_or_empty(o->domain);
        int64_t ver = o->has_version ? o->version : 0;
        NNQ_TRY(check_name_len(dom, "domain"));
        if (!dom[0] || strcmp(dom, "ai.onnx") == 0) {
            if (ver < NNQ_ONNX_MIN_OPSET || ver > NNQ_ONNX_MAX_OPSET)
                return nnq_fail(NNQ_ERR_UNSUPPORTED, "the model uses ONNX opset %lld; nnq supports "
                                "opsets %d to %d", (long long)ver, NNQ_ONNX_MIN_OPSET,
                                NNQ_ONNX_MAX_OPSET);
            have_default = true;
        }
        NNQ_TRY(nnq_graph_set_opset(g, dom, ver));
    }
    if (!have_default)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "the model imports no default-domain (ai.onnx) opset");
    return NNQ_OK;
}

static nnq_status replace_str(char **dst, const char *src) {
    char *s = nnq_onnx_strdup(src);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return NNQ_OK;
}

static nnq_status read_initializers(importer *im, const Onnx__GraphProto *gp) {
    char what[256];
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !tp->name[0])
            return nnq_fail(NNQ_ERR_PARSE, "initializer #%zu has no name", i);
        NNQ_TRY(check_name_len(tp->name, "value"));
        snprintf(what, sizeof what, "initializer '%.200s'", tp->name);
        nnq_tensor t;
        NNQ_TRY(nnq_onnx_tensor_from_proto(tp, &t, what));
        int v;
        nnq_status s = nnq_graph_add_initializer(im->g, tp->name, &t, &v);
        if (s != NNQ_OK) {
            nnq_tensor_release(&t);
            return s;
        }
        NNQ_TRY(map_insert(&im->names, im->g, v));
    }
    return NNQ_OK;
}

static nnq_status read_inputs(importer *im, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !vi->name[0]) return nnq_fail(NNQ_ERR_PARSE, "graph input #%zu has no name", i);
        int v = map_find(&im->names, im->g, vi->name);
        /* Initializers listed as inputs (IR < 4 style) are initializers only. */
        if (v >= 0 && im->g->values[v].is_initializer) continue;
        if (v >= 0) return nnq_fail(NNQ_ERR_PARSE, "graph input '%.200s' is listed twice", vi->name);
        NNQ_TRY(value_ref(im, vi->name, &v));
        NNQ_TRY(read_value_type(vi, &im->g->values[v], true, "graph input"));
        NNQ_TRY(nnq_graph_add_input(im->g, v));
    }
    return NNQ_OK;
}

static nnq_status read_node(importer *im, const Onnx__NodeProto *np, size_t index, int *io) {
    char label[256];
    const char *name = str_or_empty(np->name);
    if (!np->op_type || !np->op_type[0])
        return nnq_fail(NNQ_ERR_PARSE, "node #%zu ('%.200s') has no op_type", index, name);
    NNQ_TRY(check_name_len(name, "node"));
    NNQ_TRY(check_name_len(np->op_type, "op_type"));
    NNQ_TRY(check_name_len(np->domain, "domain"));
    if (name[0])
        snprintf(label, sizeof label, "%.200s", name);
    else
        snprintf(label, sizeof label, "%.200s#%zu", np->op_type, index);
    int n_in = (int)np->n_input, n_out = (int)np->n_output;
    for (int i = 0; i < n_in; i++) NNQ_TRY(value_ref(im, np->input[i], &io[i]));
    for (int i = 0; i < n_out; i++) NNQ_TRY(value_ref(im, np->output[i], &io[n_in + i]));
    int ni;
    NNQ_TRY(nnq_graph_add_node(im->g, name, np->op_type, str_or_empty(np->domain), n_in, io, n_out,
                               io + n_in, &ni));
    return read_attrs(np, &im->g->nodes[ni], label);
}

static nnq_status read_nodes(importer *im, const Onnx__GraphProto *gp) {
    size_t most = 0;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->n_input > INT_MAX / 2 || np->n_output > INT_MAX / 2)
            return nnq_fail(NNQ_ERR_LIMIT, "node #%zu has too many inputs or outputs", i);
        if (np->n_input + np->n_output > most) most = np->n_input + np->n_output;
    }
    int *io = malloc((most ? most : 1) * sizeof *io);
    if (!io) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    nnq_status s = NNQ_OK;
    for (size_t i = 0; i < gp->n_node && s == NNQ_OK; i++) s = read_node(im, gp->node[i], i, io);
    free(io);
    return s;
}

static nnq_status read_outputs(importer *im, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        int v;
        if (!vi->name || !vi->name[0]) return nnq_fail(NNQ_ERR_PARSE, "graph output #%zu has no name", i);
        NNQ_TRY(value_ref(im, vi->name, &v));
        /* An output that is also an input or initializer keeps that type. */
        if (!has_type_info(&im->g->values[v]))
            NNQ_TRY(read_value_type(vi, &im->g->values[v], true, "graph output"));
        NNQ_TRY(nnq_graph_add_output(im->g, v));
    }
    return NNQ_OK;
}

/* value_info: shape hints for intermediate values; entries naming values
 * that nothing uses are dropped. */
static nnq_status read_value_info(importer *im, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_value_info; i++) {
        const Onnx__ValueInfoProto *vi = gp->value_info[i];
        if (!vi->name || !vi->name[0]) continue;
        int v = map_find(&im->names, im->g, vi->name);
        if (v < 0 || im->g->values[v].is_initializer || has_type_info(&im->g->values[v])) continue;
        NNQ_TRY(read_value_type(vi, &im->g->values[v], false, "value"));
    }
    return NNQ_OK;
}

static nnq_status read_model(const Onnx__ModelProto *m, importer *im) {
    const Onnx__GraphProto *gp = m->graph;
    nnq_graph *g;
    if (!gp) return nnq_fail(NNQ_ERR_PARSE, "the model has no graph");
    if (gp->n_node > NNQ_MAX_NODES)
        return nnq_fail(NNQ_ERR_LIMIT, "the graph has %zu nodes, more than nnq's limit %d", gp->n_node,
                        NNQ_MAX_NODES);
    if (gp->n_initializer + gp->n_input + gp->n_output > NNQ_MAX_VALUES)
        return nnq_fail(NNQ_ERR_LIMIT, "the graph has more than %d values", NNQ_MAX_VALUES);
    if (gp->n_sparse_initializer > 0)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "the graph has sparse initializers, which nnq does not support");
    NNQ_TRY(check_name_len(gp->name, "graph"));
    if (!(g = im->g = nnq_graph_create(str_or_empty(gp->name))))
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    NNQ_TRY(read_opsets(m, g));
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    NNQ_TRY(replace_str(&g->producer_name, m->producer_name));
    NNQ_TRY(replace_str(&g->producer_version, m->producer_version));
    NNQ_TRY(replace_str(&g->doc_string, m->doc_string));
    if (m->n_metadata_props > (size_t)NNQ_MAX_NODES)
        return nnq_fail(NNQ_ERR_LIMIT, "the model has %zu metadata entries", m->n_metadata_props);
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = m->metadata_props[i];
        NNQ_TRY(check_name_len(e->key, "metadata key"));
        NNQ_TRY(nnq_graph_set_meta(g, str_or_empty(e->key), str_or_empty(e->value)));
    }
    NNQ_TRY(read_initializers(im, gp));
    NNQ_TRY(read_inputs(im, gp));
    NNQ_TRY(read_nodes(im, gp));
    NNQ_TRY(read_outputs(im, gp));
    NNQ_TRY(read_value_info(im, gp));
    /* After value_info: the upgrade reads declared ranks. */
    return nnq_onnx_upgrade(g);
}

nnq_status nnq_onnx_load_bytes(const unsigned char *buf, size_t len, const char *what,
                               nnq_graph **out) {
    importer im = {0};
    *out = NULL;
    if (!what) what = "model";
    if (len > NNQ_MAX_MODEL_BYTES)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: %zu bytes exceed the %zu-byte model limit", what, len,
                        (size_t)NNQ_MAX_MODEL_BYTES);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m) return nnq_fail(NNQ_ERR_PARSE, "%s is not a valid ONNX protobuf", what);
    nnq_status s = read_model(m, &im);
    onnx__model_proto__free_unpacked(m, NULL);
    free(im.names.slots);
    if (s != NNQ_OK) {
        nnq_graph_free(im.g);
        return nnq_fail_context(s, "%s: ", what);
    }
    *out = im.g;
    return NNQ_OK;
}

nnq_status nnq_onnx_load(const char *path, nnq_graph **out) {
    unsigned char *buf;
    size_t len;
    *out = NULL;
    NNQ_TRY(nnq_read_file(path, NNQ_MAX_MODEL_BYTES, &buf, &len));
    nnq_status s = nnq_onnx_load_bytes(buf, len, path, out);
    free(buf);
    return s;
}
