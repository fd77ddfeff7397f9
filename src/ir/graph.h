/* The graph IR: values, nodes, attributes, initializers.
 *
 * Values and nodes live in arrays owned by the graph and are referred to by
 * index (int), so passes can append without invalidating references.
 * A value's `t` holds its dtype and shape (dims -1 where unknown); for an
 * initializer or folded constant, t.data holds the data as well. */
#ifndef NNQ_IR_GRAPH_H
#define NNQ_IR_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef enum nnq_attr_type {
    NNQ_ATTR_UNDEFINED = 0,
    NNQ_ATTR_FLOAT = 1, /* values equal ONNX AttributeProto.AttributeType */
    NNQ_ATTR_INT = 2,
    NNQ_ATTR_STRING = 3,
    NNQ_ATTR_TENSOR = 4,
    NNQ_ATTR_FLOATS = 6,
    NNQ_ATTR_INTS = 7,
    NNQ_ATTR_STRINGS = 8
} nnq_attr_type;

typedef struct nnq_attr {
    char *name;
    nnq_attr_type type;
    float f;
    int64_t i;
    char *s;         /* STRING (NUL-terminated; s_len bytes exclude the NUL) */
    size_t s_len;
    int n;           /* element count of floats / ints / strings */
    float *floats;
    int64_t *ints;
    char **strings;
    nnq_tensor *t;   /* TENSOR: owned */
} nnq_attr;

typedef struct nnq_node {
    char *name;
    char *op_type;
    char *domain;     /* "" for the default ONNX domain */
    int n_inputs;
    int *inputs;      /* value indices; -1 for an omitted optional input */
    int n_outputs;
    int *outputs;     /* value indices; -1 for an omitted optional output */
    int n_attrs;
    nnq_attr *attrs;
} nnq_node;

typedef struct nnq_value {
    char *name;
    nnq_tensor t;       /* dtype + shape (rank -1 while unknown); data for constants */
    char **dim_params;  /* per dim, symbolic name or NULL; NULL array if none */
    bool is_initializer;
    int producer;       /* node index, -1 for graph inputs and initializers */
} nnq_value;

typedef struct nnq_opset_import {
    char *domain;
    int64_t version;
} nnq_opset_import;

typedef struct nnq_graph {
    char *name;
    int n_values, cap_values;
    nnq_value *values;
    int n_nodes, cap_nodes;
    nnq_node *nodes;
    int n_inputs;       /* graph inputs that are not initializers */
    int *inputs;
    int n_outputs;
    int *outputs;
    /* Model-level metadata kept for a faithful round trip. */
    int64_t ir_version;
    int n_opsets;
    nnq_opset_import *opsets;
    char *producer_name;
    char *producer_version;
    char *doc_string;
    /* ModelProto.metadata_props (key, value) pairs, e.g. the bit-width of
     * each quantized tensor narrower than its storage type. */
    int n_meta;
    char **meta_keys;
    char **meta_values;
    /* Name -> value index (ir/name_index.c); maintained by the ir layer. */
    struct nnq_name_index *name_index;
} nnq_graph;

nnq_graph *nnq_graph_create(const char *name);
void nnq_graph_free(nnq_graph *g);

/* Opset version of the default ("" / "ai.onnx") domain; 0 if absent. */
int64_t nnq_graph_opset(const nnq_graph *g);
nnq_status nnq_graph_set_opset(nnq_graph *g, const char *domain, int64_t version);

/* Metadata: set (replacing an existing key) and get (NULL if absent). */
nnq_status nnq_graph_set_meta(nnq_graph *g, const char *key, const char *value);
const char *nnq_graph_get_meta(const nnq_graph *g, const char *key);

/* Value lookup by name; -1 if absent. Linear; callers cache if hot. */
int nnq_graph_find_value(const nnq_graph *g, const char *name);
/* Add a value (name copied). Fails if the name already exists. */
nnq_status nnq_graph_add_value(nnq_graph *g, const char *name, int *out_index);
/* Renames value v; fails if another value already has the name. */
nnq_status nnq_graph_rename_value(nnq_graph *g, int v, const char *name);
/* Find or add. */
nnq_status nnq_graph_value(nnq_graph *g, const char *name, int *out_index);
/* Add an initializer: the graph takes ownership of t->data (t->owns set). */
nnq_status nnq_graph_add_initializer(nnq_graph *g, const char *name, nnq_tensor *t, int *out_index);
/* Append a node; inputs/outputs are value indices (copied). Sets producers. */
nnq_status nnq_graph_add_node(nnq_graph *g, const char *name, const char *op_type,
                              const char *domain, int n_in, const int *in, int n_out,
                              const int *out, int *out_index);
nnq_status nnq_graph_add_input(nnq_graph *g, int value);
nnq_status nnq_graph_add_output(nnq_graph *g, int value);

/* Attributes of a node: lookup and typed getters with defaults. */
const nnq_attr *nnq_node_attr(const nnq_node *n, const char *name);
int64_t nnq_node_attr_int(const nnq_node *n, const char *name, int64_t dflt);
float nnq_node_attr_float(const nnq_node *n, const char *name, float dflt);
const char *nnq_node_attr_string(const nnq_node *n, const char *name, const char *dflt);
/* INTS attribute: returns count (0 if absent) and points *out at the data. */
int nnq_node_attr_ints(const nnq_node *n, const char *name, const int64_t **out);
int nnq_node_attr_floats(const nnq_node *n, const char *name, const float **out);

/* Adders (name copied, arrays copied). */
nnq_status nnq_node_set_int(nnq_node *n, const char *name, int64_t v);
nnq_status nnq_node_set_float(nnq_node *n, const char *name, float v);
nnq_status nnq_node_set_string(nnq_node *n, const char *name, const char *v);
nnq_status nnq_node_set_ints(nnq_node *n, const char *name, int count, const int64_t *v);
nnq_status nnq_node_set_floats(nnq_node *n, const char *name, int count, const float *v);
/* Takes ownership of t (a heap-allocated nnq_tensor). */
nnq_status nnq_node_set_tensor(nnq_node *n, const char *name, nnq_tensor *t);
void nnq_attr_release(nnq_attr *a);
/* Remove attribute `name` from a node (no-op if absent). */
void nnq_node_remove_attr(nnq_node *n, const char *name);
/* Free what a node / value owns and zero it (for passes removing them). */
void nnq_node_release(nnq_node *n);
void nnq_value_release(nnq_value *v);

/* True when every output of node n already holds data (a folded
 * constant), so executors skip the node. */
bool nnq_node_outputs_constant(const nnq_graph *g, int n);

/* A printable name for a node in messages: its name, else "<op_type>#<index>". */
const char *nnq_node_label(const nnq_graph *g, int node, char *buf, size_t cap);

/* Reorder g->nodes topologically (stable where possible). Fails naming a
 * node on a cycle, or a node reading a value that nothing produces. */
nnq_status nnq_graph_toposort(nnq_graph *g);

/* Structural checks: value names unique, every node input defined, one
 * producer per value, graph outputs produced, acyclic. Op-specific checks
 * (known op, arity, shapes) live with the ops: nnq_graph_prepare(). */
nnq_status nnq_graph_verify(const nnq_graph *g);

/* Deep copy. */
nnq_status nnq_graph_clone(const nnq_graph *g, nnq_graph **out);

/* Counts of trainable parameters (float initializers) */
int64_t nnq_graph_param_count(const nnq_graph *g);

/* ---- Graph editing (graph_edit.c), for passes that rewrite a graph ---- */

/* Input slots of all nodes that read value v (a node reading it twice
 * counts twice); the first `cap` readers' node indices go to `readers`
 * (may be NULL with cap 0). */
int nnq_graph_value_readers(const nnq_graph *g, int v, int *readers, int cap);
/* True if v is one of the graph's outputs. */
bool nnq_graph_is_output(const nnq_graph *g, int v);
/* Remove the nodes n with remove[n] set, keeping the others in order;
 * producers are renumbered, and values a removed node wrote lose their
 * producer (-1). Node indices held by the caller are invalidated. */
nnq_status nnq_graph_remove_nodes(nnq_graph *g, const bool *remove);
/* Remove values that no node reads or writes and that are neither graph
 * inputs nor outputs (e.g. the parameters of a folded BatchNormalization),
 * renumbering every reference. Value indices held by the caller are
 * invalidated. *n_removed (may be NULL) gets the count. */
nnq_status nnq_graph_prune_values(nnq_graph *g, int *n_removed);
/* A value name not used in g: `base` itself if free, else base_1, base_2... */
nnq_status nnq_graph_unique_name(const nnq_graph *g, const char *base, char *buf, size_t cap);

#endif
