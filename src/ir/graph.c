/* Graph construction, attribute access and teardown. */
#include "ir/graph.h"
#include "ir/name_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Grow an array of `elem` bytes so that it can hold `need` elements. */
static nnq_status grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap) return NNQ_OK;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory growing the graph");
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return NNQ_OK;
}

nnq_graph *nnq_graph_create(const char *name) {
    nnq_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = dup_str(name);
    g->producer_name = dup_str("nnq");
    g->producer_version = dup_str("");
    g->doc_string = dup_str("");
    if (!g->name || !g->producer_name || !g->producer_version || !g->doc_string) {
        nnq_graph_free(g);
        return NULL;
    }
    return g;
}

void nnq_attr_release(nnq_attr *a) {
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (int i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    if (a->t) {
        nnq_tensor_release(a->t);
        free(a->t);
    }
    memset(a, 0, sizeof *a);
}

void nnq_node_release(nnq_node *n) {
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->inputs);
    free(n->outputs);
    for (int i = 0; i < n->n_attrs; i++) nnq_attr_release(&n->attrs[i]);
    free(n->attrs);
    memset(n, 0, sizeof *n);
}

void nnq_value_release(nnq_value *v) {
    if (v->dim_params)
        for (int i = 0; i < NNQ_MAX_RANK; i++) free(v->dim_params[i]);
    free(v->dim_params);
    free(v->name);
    nnq_tensor_release(&v->t);
    memset(v, 0, sizeof *v);
}

void nnq_graph_free(nnq_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) nnq_value_release(&g->values[i]);
    for (int i = 0; i < g->n_nodes; i++) nnq_node_release(&g->nodes[i]);
    for (int i = 0; i < g->n_opsets; i++) free(g->opsets[i].domain);
    free(g->values);
    nnq_name_index_free(g);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->opsets);
    free(g->name);
    free(g->producer_name);
    free(g->producer_version);
    free(g->doc_string);
    for (int i = 0; i < g->n_meta; i++) {
        free(g->meta_keys[i]);
        free(g->meta_values[i]);
    }
    free(g->meta_keys);
    free(g->meta_values);
    free(g);
}

nnq_status nnq_graph_set_meta(nnq_graph *g, const char *key, const char *value) {
    char *v = dup_str(value);
    if (!v) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_meta; i++)
        if (strcmp(g->meta_keys[i], key) == 0) {
            free(g->meta_values[i]);
            g->meta_values[i] = v;
            return NNQ_OK;
        }
    char *k = dup_str(key);
    char **ks = realloc(g->meta_keys, sizeof *ks * (size_t)(g->n_meta + 1));
    if (ks) g->meta_keys = ks;
    char **vs = ks ? realloc(g->meta_values, sizeof *vs * (size_t)(g->n_meta + 1)) : NULL;
    if (vs) g->meta_values = vs;
    if (!k || !ks || !vs) {
        free(k);
        free(v);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    }
    g->meta_keys[g->n_meta] = k;
    g->meta_values[g->n_meta++] = v;
    return NNQ_OK;
}

const char *nnq_graph_get_meta(const nnq_graph *g, const char *key) {
    for (int i = 0; i < g->n_meta; i++)
        if (strcmp(g->meta_keys[i], key) == 0) return g->meta_values[i];
    return NULL;
}

int64_t nnq_graph_opset(const nnq_graph *g) {
    for (int i = 0; i < g->n_opsets; i++) {
        const char *d = g->opsets[i].domain;
        if (!d || !d[0] || strcmp(d, "ai.onnx") == 0) return g->opsets[i].version;
    }
    return 0;
}

nnq_status nnq_graph_set_opset(nnq_graph *g, const char *domain, int64_t version) {
    if (!domain) domain = "";
    for (int i = 0; i < g->n_opsets; i++) {
        if (strcmp(g->opsets[i].domain, domain) == 0) {
            g->opsets[i].version = version;
            return NNQ_OK;
        }
    }
    nnq_opset_import *p = realloc(g->opsets, (size_t)(g->n_opsets + 1) * sizeof *p);
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    g->opsets = p;
    p[g->n_opsets].domain = dup_str(domain);
    p[g->n_opsets].version = version;
    if (!p[g->n_opsets].domain) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    g->n_opsets++;
    return NNQ_OK;
}

int nnq_graph_find_value(const nnq_graph *g, const char *name) {
    return nnq_name_index_find(g, name);
}

nnq_status nnq_graph_add_value(nnq_graph *g, const char *name, int *out_index) {
    if (strlen(name) > NNQ_MAX_NAME)
        return nnq_fail(NNQ_ERR_LIMIT, "value name longer than %d bytes", NNQ_MAX_NAME);
    if (nnq_graph_find_value(g, name) >= 0)
        return nnq_fail(NNQ_ERR_INVALID, "value '%s' is defined twice", name);
    if (g->n_values >= NNQ_MAX_VALUES)
        return nnq_fail(NNQ_ERR_LIMIT, "more than %d values", NNQ_MAX_VALUES);
    NNQ_TRY(grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values));
    nnq_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = dup_str(name);
    if (!v->name) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    v->producer = -1;
    v->t.dtype = NNQ_DT_UNDEFINED;
    v->t.rank = -1; /* rank unknown until set or inferred */
    nnq_status s = nnq_name_index_insert(g, g->n_values);
    if (s != NNQ_OK) {
        nnq_value_release(v);
        return s;
    }
    if (out_index) *out_index = g->n_values;
    g->n_values++;
    return NNQ_OK;
}

nnq_status nnq_graph_rename_value(nnq_graph *g, int v, const char *name) {
    if (strlen(name) > NNQ_MAX_NAME)
        return nnq_fail(NNQ_ERR_LIMIT, "value name longer than %d bytes", NNQ_MAX_NAME);
    int other = nnq_graph_find_value(g, name);
    if (other == v) return NNQ_OK;
    if (other >= 0) return nnq_fail(NNQ_ERR_INVALID, "value '%s' is defined twice", name);
    char *nn = dup_str(name);
    if (!nn) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    free(g->values[v].name);
    g->values[v].name = nn;
    return nnq_name_index_rebuild(g);
}

nnq_status nnq_graph_value(nnq_graph *g, const char *name, int *out_index) {
    int i = nnq_graph_find_value(g, name);
    if (i >= 0) {
        *out_index = i;
        return NNQ_OK;
    }
    return nnq_graph_add_value(g, name, out_index);
}

nnq_status nnq_graph_add_initializer(nnq_graph *g, const char *name, nnq_tensor *t, int *out_index) {
    int idx;
    NNQ_TRY(nnq_graph_add_value(g, name, &idx));
    nnq_value *v = &g->values[idx];
    v->t = *t;
    v->t.owns = true;
    v->is_initializer = true;
    t->data = NULL; /* ownership moved */
    t->owns = false;
    if (out_index) *out_index = idx;
    return NNQ_OK;
}

nnq_status nnq_graph_add_node(nnq_graph *g, const char *name, const char *op_type,
                              const char *domain, int n_in, const int *in, int n_out,
                              const int *out, int *out_index) {
    if (g->n_nodes >= NNQ_MAX_NODES)
        return nnq_fail(NNQ_ERR_LIMIT, "more than %d nodes", NNQ_MAX_NODES);
    for (int i = 0; i < n_in; i++)
        if (in[i] < -1 || in[i] >= g->n_values)
            return nnq_fail(NNQ_ERR_INVALID, "node '%s': input %d is not a value", name, i);
    for (int i = 0; i < n_out; i++)
        if (out[i] < -1 || out[i] >= g->n_values)
            return nnq_fail(NNQ_ERR_INVALID, "node '%s': output %d is not a value", name, i);
    NNQ_TRY(grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes));
    nnq_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->name = dup_str(name);
    n->op_type = dup_str(op_type);
    n->domain = dup_str(domain);
    n->inputs = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1));
    n->outputs = malloc(sizeof(int) * (size_t)(n_out ? n_out : 1));
    if (!n->name || !n->op_type || !n->domain || !n->inputs || !n->outputs) {
        nnq_node_release(n);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory adding node '%s'", name);
    }
    if (n_in) memcpy(n->inputs, in, sizeof(int) * (size_t)n_in);
    if (n_out) memcpy(n->outputs, out, sizeof(int) * (size_t)n_out);
    n->n_inputs = n_in;
    n->n_outputs = n_out;
    for (int i = 0; i < n_out; i++)
        if (out[i] >= 0) g->values[out[i]].producer = g->n_nodes;
    if (out_index) *out_index = g->n_nodes;
    g->n_nodes++;
    return NNQ_OK;
}

static nnq_status append_index(int **arr, int *n, int v) {
    int *p = realloc(*arr, sizeof(int) * (size_t)(*n + 1));
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    p[*n] = v;
    *arr = p;
    (*n)++;
    return NNQ_OK;
}

nnq_status nnq_graph_add_input(nnq_graph *g, int value) {
    if (value < 0 || value >= g->n_values) return nnq_fail(NNQ_ERR_INVALID, "input is not a value");
    return append_index(&g->inputs, &g->n_inputs, value);
}

nnq_status nnq_graph_add_output(nnq_graph *g, int value) {
    if (value < 0 || value >= g->n_values) return nnq_fail(NNQ_ERR_INVALID, "output is not a value");
    return append_index(&g->outputs, &g->n_outputs, value);
}

/* ---- attributes ---- */

const nnq_attr *nnq_node_attr(const nnq_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t nnq_node_attr_int(const nnq_node *n, const char *name, int64_t dflt) {
    const nnq_attr *a = nnq_node_attr(n, name);
    return (a && a->type == NNQ_ATTR_INT) ? a->i : dflt;
}

float nnq_node_attr_float(const nnq_node *n, const char *name, float dflt) {
    const nnq_attr *a = nnq_node_attr(n, name);
    if (a && a->type == NNQ_ATTR_FLOAT) return a->f;
    if (a && a->type == NNQ_ATTR_INT) return (float)a->i;
    return dflt;
}

const char *nnq_node_attr_string(const nnq_node *n, const char *name, const char *dflt) {
    const nnq_attr *a = nnq_node_attr(n, name);
    return (a && a->type == NNQ_ATTR_STRING) ? a->s : dflt;
}

int nnq_node_attr_ints(const nnq_node *n, const char *name, const int64_t **out) {
    const nnq_attr *a = nnq_node_attr(n, name);
    if (!a || a->type != NNQ_ATTR_INTS) {
        *out = NULL;
        return 0;
    }
    *out = a->ints;
    return a->n;
}

int nnq_node_attr_floats(const nnq_node *n, const char *name, const float **out) {
    const nnq_attr *a = nnq_node_attr(n, name);
    if (!a || a->type != NNQ_ATTR_FLOATS) {
        *out = NULL;
        return 0;
    }
    *out = a->floats;
    return a->n;
}

/* Return a fresh (or replaced) attribute slot with its name set. */
static nnq_status attr_slot(nnq_node *n, const char *name, nnq_attr **out) {
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            nnq_attr_release(&n->attrs[i]);
            n->attrs[i].name = dup_str(name);
            if (!n->attrs[i].name) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
            *out = &n->attrs[i];
            return NNQ_OK;
        }
    }
    nnq_attr *p = realloc(n->attrs, sizeof *p * (size_t)(n->n_attrs + 1));
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    n->attrs = p;
    memset(&p[n->n_attrs], 0, sizeof *p);
    p[n->n_attrs].name = dup_str(name);
    if (!p[n->n_attrs].name) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    *out = &p[n->n_attrs++];
    return NNQ_OK;
}

void nnq_node_remove_attr(nnq_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) != 0) continue;
        nnq_attr_release(&n->attrs[i]);
        n->attrs[i] = n->attrs[--n->n_attrs];
        return;
    }
}

nnq_status nnq_node_set_int(nnq_node *n, const char *name, int64_t v) {
    nnq_attr *a;
    NNQ_TRY(attr_slot(n, name, &a));
    a->type = NNQ_ATTR_INT;
    a->i = v;
    return NNQ_OK;
}

nnq_status nnq_node_set_float(nnq_node *n, const char *name, float v) {
    nnq_attr *a;
    NNQ_TRY(attr_slot(n, name, &a));
    a->type = NNQ_ATTR_FLOAT;
    a->f = v;
    return NNQ_OK;
}

nnq_status nnq_node_set_string(nnq_node *n, const char *name, const char *v) {
    nnq_attr *a;
    NNQ_TRY(attr_slot(n, name, &a));
    a->type = NNQ_ATTR_STRING;
    a->s = dup_str(v);
    if (!a->s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    a->s_len = strlen(v);
    return NNQ_OK;
}

nnq_status nnq_node_set_ints(nnq_node *n, const char *name, int count, const int64_t *v) {
    nnq_attr *a;
    NNQ_TRY(attr_slot(n, name, &a));
    a->type = NNQ_ATTR_INTS;
    a->ints = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    if (!a->ints) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    if (count) memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    a->n = count;
    return NNQ_OK;
}

nnq_status nnq_node_set_floats(nnq_node *n, const char *name, int count, const float *v) {
    nnq_attr *a;
    NNQ_TRY(attr_slot(n, name, &a));
    a->type = NNQ_ATTR_FLOATS;
    a->floats = malloc(sizeof(float) * (size_t)(count ? count : 1));
    if (!a->floats) return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    if (count) memcpy(a->floats, v, sizeof(float) * (size_t)count);
    a->n = count;
    return NNQ_OK;
}

nnq_status nnq_node_set_tensor(nnq_node *n, const char *name, nnq_tensor *t) {
    nnq_attr *a;
    nnq_status s = attr_slot(n, name, &a);
    if (s != NNQ_OK) {
        nnq_tensor_release(t);
        free(t);
        return s;
    }
    a->type = NNQ_ATTR_TENSOR;
    a->t = t;
    return NNQ_OK;
}

bool nnq_node_outputs_constant(const nnq_graph *g, int n) {
    const nnq_node *nd = &g->nodes[n];
    bool any = false;
    for (int k = 0; k < nd->n_outputs; k++) {
        if (nd->outputs[k] < 0) continue;
        if (!g->values[nd->outputs[k]].t.data) return false;
        any = true;
    }
    return any;
}

const char *nnq_node_label(const nnq_graph *g, int node, char *buf, size_t cap) {
    const nnq_node *n = &g->nodes[node];
    if (n->name && n->name[0])
        snprintf(buf, cap, "%s", n->name);
    else
        snprintf(buf, cap, "%s#%d", n->op_type, node);
    return buf;
}

int64_t nnq_graph_param_count(const nnq_graph *g) {
    int64_t total = 0;
    for (int i = 0; i < g->n_values; i++) {
        const nnq_value *v = &g->values[i];
        if (v->is_initializer && v->t.dtype == NNQ_DT_FLOAT) {
            int64_t n = nnq_tensor_numel(&v->t);
            if (n > 0) total += n;
        }
    }
    return total;
}
