/* Shared helpers for tests that call ops directly: attributes and nodes
 * built on the stack, tensors from literals or a fixed-seed generator. */
#ifndef NNQ_TESTS_OP_FIXTURE_H
#define NNQ_TESTS_OP_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/op.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static inline nnq_attr a_int(const char *name, int64_t v) {
    nnq_attr a = {.name = (char *)name, .type = NNQ_ATTR_INT, .i = v};
    return a;
}
static inline nnq_attr a_float(const char *name, float v) {
    nnq_attr a = {.name = (char *)name, .type = NNQ_ATTR_FLOAT, .f = v};
    return a;
}
static inline nnq_attr a_ints(const char *name, int n, const int64_t *v) {
    nnq_attr a = {.name = (char *)name, .type = NNQ_ATTR_INTS, .n = n, .ints = (int64_t *)v};
    return a;
}
static inline nnq_attr a_floats(const char *name, int n, const float *v) {
    nnq_attr a = {.name = (char *)name, .type = NNQ_ATTR_FLOATS, .n = n, .floats = (float *)v};
    return a;
}
static inline nnq_attr a_tensor(const char *name, nnq_tensor *t) {
    nnq_attr a = {.name = (char *)name, .type = NNQ_ATTR_TENSOR, .t = t};
    return a;
}

/* A node named "n0" of type `op` with the given attributes (not copied). */
static inline nnq_node mk_node(const char *op, nnq_attr *attrs, int n_attrs) {
    nnq_node nd = {.name = (char *)"n0", .op_type = (char *)op, .domain = (char *)"",
                   .n_attrs = n_attrs, .attrs = attrs};
    return nd;
}

/* Fixed-seed uniform values in [-1, 1); a test may reseed rng_state. */
static uint32_t rng_state = 12345u;
static inline float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

/* Allocated tensor of dtype dt; vals copied if given, else zeros. */
static inline nnq_tensor mk(nnq_dtype dt, int rank, const int64_t *dims, const void *vals) {
    nnq_tensor t = {0};
    CHECK_OK(nnq_tensor_alloc(&t, dt, rank, dims));
    size_t nb = 0;
    CHECK_OK(nnq_tensor_nbytes(&t, &nb));
    if (vals && nb) memcpy(t.data, vals, nb);
    return t;
}

/* Float tensor filled with uniform values in [-scale, scale). */
static inline nnq_tensor mk_rand(int rank, const int64_t *dims, float scale) {
    nnq_tensor t = mk(NNQ_DT_FLOAT, rank, dims, NULL);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++) nnq_f32(&t)[i] = scale * frand();
    return t;
}

/* ---- helpers of the dense-op tests (xorshift stream, nodes that own
 * their attributes) ---- */

static uint32_t xs_state = 12345u;
static inline float xs_frand(void) { /* uniform in [-1, 1) */
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 17;
    xs_state ^= xs_state << 5;
    return (float)(xs_state >> 8) / (float)(1u << 23) - 1.0f;
}

static inline nnq_tensor tensor_new(nnq_dtype dt, int rank, const int64_t *dims) {
    nnq_tensor t;
    memset(&t, 0, sizeof t);
    if (nnq_tensor_alloc(&t, dt, rank, dims) != NNQ_OK) {
        fprintf(stderr, "allocation failed\n");
        exit(1);
    }
    return t;
}

static inline nnq_tensor tensor_rand(int rank, const int64_t *dims) {
    nnq_tensor t = tensor_new(NNQ_DT_FLOAT, rank, dims);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++) nnq_f32(&t)[i] = xs_frand();
    return t;
}

static inline nnq_tensor tensor_i64(int n, const int64_t *v) {
    int64_t dims[1] = {n};
    nnq_tensor t = tensor_new(NNQ_DT_INT64, 1, dims);
    memcpy(t.data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

/* A node whose attributes are added with nnq_node_set_*; node_free
 * releases them. */
static inline nnq_node node_new(const char *op) {
    nnq_node n;
    memset(&n, 0, sizeof n);
    n.name = "test";
    n.op_type = (char *)op;
    n.domain = "";
    return n;
}

static inline void node_free(nnq_node *n) {
    for (int i = 0; i < n->n_attrs; i++) nnq_attr_release(&n->attrs[i]);
    free(n->attrs);
    n->attrs = NULL;
    n->n_attrs = 0;
}

#endif
