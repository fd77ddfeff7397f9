/* Layer-by-layer graph construction with deterministic initialisation. */
#include "models/builder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_CAP 256
#define TWO_PI 6.283185307179586476925

/* ---- deterministic initialisation ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): 53 random bits, never 0 (Box-Muller takes a log). */
static double uniform01(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void fill_normal(uint64_t *s, float *p, int64_t n, double std) {
    for (int64_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform01(s))), th = TWO_PI * uniform01(s);
        p[i] = (float)(std * r * cos(th));
        if (i + 1 < n) p[i + 1] = (float)(std * r * sin(th));
    }
}

static void fill_uniform(uint64_t *s, float *p, int64_t n, double bound) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)(bound * (2.0 * uniform01(s) - 1.0));
}

static void fill_const(float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

/* ---- sticky-error plumbing ---- */

static bool ok(nnq_builder *b, nnq_status s) {
    if (s != NNQ_OK && b->status == NNQ_OK) b->status = s;
    return b->status == NNQ_OK;
}

static bool valid_value(nnq_builder *b, int x) {
    if (b->status != NNQ_OK) return false;
    if (x < 0 || x >= b->g->n_values)
        return ok(b, nnq_fail(NNQ_ERR_INVALID, "builder: value %d does not exist", x));
    return true;
}

/* A float initializer `<module>.<field>` of the given shape; data zeroed. */
static int add_param(nnq_builder *b, const char *module, const char *field, int rank,
                     const int64_t *dims, float **data) {
    char name[NAME_CAP];
    nnq_tensor t = {0};
    int v = -1;
    *data = NULL;
    snprintf(name, sizeof name, "%s.%s", module, field);
    if (!ok(b, nnq_tensor_alloc(&t, NNQ_DT_FLOAT, rank, dims))) return -1;
    float *p = nnq_f32(&t);
    if (!ok(b, nnq_graph_add_initializer(b->g, name, &t, &v))) {
        nnq_tensor_release(&t);
        return -1;
    }
    *data = p;
    return v;
}

/* Append a node with one output value named `name` (auto if NULL). */
static int add_node(nnq_builder *b, const char *name, const char *op, int n_in, const int *in,
                    int *node_index) {
    char auto_name[NAME_CAP];
    if (!name) {
        snprintf(auto_name, sizeof auto_name, "%s_%d", op, b->counter++);
        name = auto_name;
    }
    int out = -1, node = -1;
    if (!ok(b, nnq_graph_add_value(b->g, name, &out))) return -1;
    if (!ok(b, nnq_graph_add_node(b->g, name, op, "", n_in, in, 1, &out, &node))) return -1;
    if (node_index) *node_index = node;
    return out;
}

static nnq_node *node_at(nnq_builder *b, int node) { return &b->g->nodes[node]; }

/* ---- lifecycle ---- */

nnq_status nnq_builder_init(nnq_builder *b, const char *name, int64_t opset, uint64_t seed) {
    memset(b, 0, sizeof *b);
    b->rng = seed;
    b->clip_min = b->clip_max = -1;
    b->g = nnq_graph_create(name);
    if (!b->g) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating graph '%s'", name);
    nnq_status s = nnq_graph_set_opset(b->g, "", opset);
    if (s != NNQ_OK) {
        nnq_graph_free(b->g);
        b->g = NULL;
    }
    return s;
}

/* Give dim 0 of value v the symbolic name "N" (the batch). */
static nnq_status set_batch_param(nnq_value *val) {
    char **dp = calloc(NNQ_MAX_RANK, sizeof *dp);
    char *batch = malloc(2);
    if (!dp || !batch) {
        free(dp);
        free(batch);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    }
    strcpy(batch, "N");
    dp[0] = batch;
    if (val->dim_params)
        for (int i = 0; i < NNQ_MAX_RANK; i++) free(val->dim_params[i]);
    free(val->dim_params);
    val->dim_params = dp;
    return NNQ_OK;
}

nnq_status nnq_builder_finish(nnq_builder *b, int output, const char *output_name,
                              nnq_graph **out) {
    *out = NULL;
    if (valid_value(b, output)) {
        int other = nnq_graph_find_value(b->g, output_name);
        if (other >= 0 && other != output)
            ok(b, nnq_fail(NNQ_ERR_INVALID, "builder: output name '%s' is taken", output_name));
        else if (ok(b, nnq_graph_rename_value(b->g, output, output_name)) &&
                 ok(b, set_batch_param(&b->g->values[output])))
            ok(b, nnq_graph_add_output(b->g, output));
    }
    if (b->status != NNQ_OK) {
        nnq_graph_free(b->g);
        b->g = NULL;
        return b->status;
    }
    *out = b->g;
    b->g = NULL;
    return NNQ_OK;
}

/* ---- shapes: every value gets dtype and dims (batch -1) as it is built ---- */

static void set_shape(nnq_builder *b, int v, int rank, const int64_t *dims) {
    if (v < 0) return;
    ok(b, nnq_tensor_set_shape(&b->g->values[v].t, NNQ_DT_FLOAT, rank, dims));
}

static const nnq_tensor *shape_of(nnq_builder *b, int x) { return &b->g->values[x].t; }

static bool expect_nchw(nnq_builder *b, int x, int64_t c, const char *what) {
    const nnq_tensor *t = shape_of(b, x);
    if (t->rank != 4 || (c >= 0 && t->dims[1] != c))
        return ok(b, nnq_fail(NNQ_ERR_SHAPE,
                              "builder: %s expects [N, %lld, H, W], value '%s' has rank %d "
                              "and %lld channels",
                              what, (long long)c, b->g->values[x].name, t->rank,
                              (long long)(t->rank > 1 ? t->dims[1] : -1)));
    return true;
}

/* ---- layers ---- */

int nnq_build_input(nnq_builder *b, const char *name, int64_t c, int64_t h, int64_t w) {
    if (b->status != NNQ_OK) return -1;
    int v = -1;
    if (!ok(b, nnq_graph_add_value(b->g, name, &v))) return -1;
    const int64_t dims[4] = {-1, c, h, w};
    set_shape(b, v, 4, dims);
    if (!ok(b, set_batch_param(&b->g->values[v]))) return -1;
    if (!ok(b, nnq_graph_add_input(b->g, v))) return -1;
    return v;
}

static int64_t conv_out(int64_t in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

int nnq_build_conv(nnq_builder *b, int x, const char *module, int64_t cin, int64_t cout, int k,
                   int stride, int pad, int groups, bool bias) {
    if (!valid_value(b, x) || !expect_nchw(b, x, cin, module)) return -1;
    if (groups < 1 || cin % groups || cout % groups) {
        ok(b, nnq_fail(NNQ_ERR_INVALID, "builder: %s: %lld -> %lld channels in %d groups",
                       module, (long long)cin, (long long)cout, groups));
        return -1;
    }
    const int64_t wdims[4] = {cout, cin / groups, k, k};
    float *wp, *bp;
    int in[3];
    in[0] = x;
    in[1] = add_param(b, module, "weight", 4, wdims, &wp);
    if (in[1] < 0) return -1;
    fill_normal(&b->rng, wp, nnq_shape_numel(4, wdims), sqrt(2.0 / (double)(cout * k * k)));
    if (bias) {
        in[2] = add_param(b, module, "bias", 1, &cout, &bp);
        if (in[2] < 0) return -1; /* zero-initialised */
    }
    int node, y = add_node(b, module, "Conv", bias ? 3 : 2, in, &node);
    if (y < 0) return -1;
    const int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    nnq_node *n = node_at(b, node);
    ok(b, nnq_node_set_ints(n, "kernel_shape", 2, ks));
    ok(b, nnq_node_set_ints(n, "strides", 2, st));
    ok(b, nnq_node_set_ints(n, "pads", 4, pads));
    ok(b, nnq_node_set_int(n, "group", groups));
    const nnq_tensor *xs = shape_of(b, x);
    const int64_t dims[4] = {-1, cout, conv_out(xs->dims[2], k, stride, pad),
                             conv_out(xs->dims[3], k, stride, pad)};
    set_shape(b, y, 4, dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_bn(nnq_builder *b, int x, const char *module, int64_t channels) {
    if (!valid_value(b, x) || !expect_nchw(b, x, channels, module)) return -1;
    static const char *const fields[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float init[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    int in[5];
    in[0] = x;
    for (int i = 0; i < 4; i++) {
        float *p;
        in[i + 1] = add_param(b, module, fields[i], 1, &channels, &p);
        if (in[i + 1] < 0) return -1;
        fill_const(p, channels, init[i]);
    }
    int node, y = add_node(b, module, "BatchNormalization", 5, in, &node);
    if (y < 0) return -1;
    ok(b, nnq_node_set_float(node_at(b, node), "epsilon", NNQ_BN_EPSILON));
    ok(b, nnq_node_set_float(node_at(b, node), "momentum", NNQ_BN_MOMENTUM));
    const nnq_tensor *xs = shape_of(b, x);
    set_shape(b, y, xs->rank, xs->dims);
    return b->status == NNQ_OK ? y : -1;
}

/* A scalar float initializer shared by every ReLU6. */
static int clip_bound(nnq_builder *b, int *slot, const char *name, float v) {
    if (*slot >= 0) return *slot;
    nnq_tensor t = {0};
    if (!ok(b, nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 0, NULL))) return -1;
    nnq_f32(&t)[0] = v;
    if (!ok(b, nnq_graph_add_initializer(b->g, name, &t, slot))) {
        nnq_tensor_release(&t);
        return -1;
    }
    return *slot;
}

int nnq_build_act(nnq_builder *b, int x, nnq_act act) {
    if (!valid_value(b, x)) return -1;
    int y = -1;
    switch (act) {
    case NNQ_ACT_NONE: return x;
    case NNQ_ACT_RELU: y = add_node(b, NULL, "Relu", 1, &x, NULL); break;
    case NNQ_ACT_HARDSWISH:
        if (nnq_graph_opset(b->g) < 14) {
            ok(b, nnq_fail(NNQ_ERR_INVALID, "builder: HardSwish needs opset 14, graph has %lld",
                           (long long)nnq_graph_opset(b->g)));
            return -1;
        }
        y = add_node(b, NULL, "HardSwish", 1, &x, NULL);
        break;
    case NNQ_ACT_RELU6: {
        int in[3] = {x, clip_bound(b, &b->clip_min, "relu6.min", 0.0f),
                     clip_bound(b, &b->clip_max, "relu6.max", 6.0f)};
        if (in[1] < 0 || in[2] < 0) return -1;
        y = add_node(b, NULL, "Clip", 3, in, NULL);
        break;
    }
    }
    if (y < 0) return -1;
    const nnq_tensor *xs = shape_of(b, x);
    set_shape(b, y, xs->rank, xs->dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_add(nnq_builder *b, int x, int y) {
    if (!valid_value(b, x) || !valid_value(b, y)) return -1;
    const nnq_tensor *xs = shape_of(b, x), *ys = shape_of(b, y);
    bool same = xs->rank == ys->rank;
    for (int i = 1; same && i < xs->rank; i++) same = xs->dims[i] == ys->dims[i];
    if (!same) {
        ok(b, nnq_fail(NNQ_ERR_SHAPE, "builder: Add of '%s' and '%s' with different shapes",
                       b->g->values[x].name, b->g->values[y].name));
        return -1;
    }
    const int in[2] = {x, y};
    int z = add_node(b, NULL, "Add", 2, in, NULL);
    if (z < 0) return -1;
    xs = shape_of(b, x); /* the value array may have moved */
    set_shape(b, z, xs->rank, xs->dims);
    return b->status == NNQ_OK ? z : -1;
}

int nnq_build_maxpool(nnq_builder *b, int x, int k, int stride) {
    if (!valid_value(b, x) || !expect_nchw(b, x, -1, "MaxPool")) return -1;
    int node, y = add_node(b, NULL, "MaxPool", 1, &x, &node);
    if (y < 0) return -1;
    const int64_t ks[2] = {k, k}, st[2] = {stride, stride};
    ok(b, nnq_node_set_ints(node_at(b, node), "kernel_shape", 2, ks));
    ok(b, nnq_node_set_ints(node_at(b, node), "strides", 2, st));
    const nnq_tensor *xs = shape_of(b, x);
    const int64_t dims[4] = {-1, xs->dims[1], conv_out(xs->dims[2], k, stride, 0),
                             conv_out(xs->dims[3], k, stride, 0)};
    set_shape(b, y, 4, dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_gap(nnq_builder *b, int x) {
    if (!valid_value(b, x) || !expect_nchw(b, x, -1, "GlobalAveragePool")) return -1;
    int y = add_node(b, NULL, "GlobalAveragePool", 1, &x, NULL);
    if (y < 0) return -1;
    const int64_t dims[4] = {-1, shape_of(b, x)->dims[1], 1, 1};
    set_shape(b, y, 4, dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_flatten(nnq_builder *b, int x) {
    if (!valid_value(b, x)) return -1;
    int node, y = add_node(b, NULL, "Flatten", 1, &x, &node);
    if (y < 0) return -1;
    ok(b, nnq_node_set_int(node_at(b, node), "axis", 1));
    const nnq_tensor *xs = shape_of(b, x);
    const int64_t dims[2] = {-1, nnq_shape_numel(xs->rank - 1, xs->dims + 1)};
    set_shape(b, y, 2, dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_gemm(nnq_builder *b, int x, const char *module, int64_t in_features,
                   int64_t out_features) {
    if (!valid_value(b, x)) return -1;
    const nnq_tensor *xs = shape_of(b, x);
    if (xs->rank != 2 || xs->dims[1] != in_features) {
        ok(b, nnq_fail(NNQ_ERR_SHAPE, "builder: %s expects [N, %lld] input", module,
                       (long long)in_features));
        return -1;
    }
    const int64_t wdims[2] = {out_features, in_features};
    double bound = 1.0 / sqrt((double)in_features);
    float *wp, *bp;
    int in[3] = {x, -1, -1};
    in[1] = add_param(b, module, "weight", 2, wdims, &wp);
    if (in[1] < 0) return -1;
    fill_uniform(&b->rng, wp, out_features * in_features, bound);
    in[2] = add_param(b, module, "bias", 1, &out_features, &bp);
    if (in[2] < 0) return -1;
    fill_uniform(&b->rng, bp, out_features, bound);
    int node, y = add_node(b, module, "Gemm", 3, in, &node);
    if (y < 0) return -1;
    ok(b, nnq_node_set_int(node_at(b, node), "transB", 1));
    const int64_t dims[2] = {-1, out_features};
    set_shape(b, y, 2, dims);
    return b->status == NNQ_OK ? y : -1;
}

int nnq_build_conv_bn_act(nnq_builder *b, int x, const char *module, const char *bn_module,
                          int64_t cin, int64_t cout, int k, int stride, int groups, nnq_act act) {
    int y = nnq_build_conv(b, x, module, cin, cout, k, stride, k / 2, groups, false);
    y = nnq_build_bn(b, y, bn_module, cout);
    return nnq_build_act(b, y, act);
}
