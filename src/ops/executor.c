/* The float executor: plans one arena for all intermediate values from
 * their lifetimes, then runs the nodes in topological order. */
#include "ops/executor.h"

#include <float.h>
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "ops/node_call.h"


struct nnq_exec {
    const nnq_graph *g;
    int threads;
    bool keep_all;
    bool planned;
    nnq_tensor *vals;      /* [n_values] run-time shapes and data pointers */
    nnq_tensor *in_shapes; /* [n_inputs] shapes the current plan was made for */
    size_t *offset;        /* [n_values] arena offset, SIZE_MAX if not in the arena */
    unsigned char *arena;
    size_t arena_bytes;
    void *scratch;
    size_t scratch_bytes;
    /* Activation fusion (inference only, not with keep_all): act[n] is the
     * Relu/Clip node fused into Conv node n, else -1; that node is skipped
     * and the Conv writes its output, clamped, straight into the
     * activation's output value. */
    int *act;        /* [n_nodes] */
    bool *fused;     /* [n_nodes] activation nodes run inside their Conv */
    float *act_lo, *act_hi; /* [n_nodes] Clip bounds of act[n] */
};

/* Whether the one reader of Conv node n's output is a Relu, or a Clip with
 * constant bounds (lo, hi), and that output is no graph output: then the
 * activation can run in the Conv's epilogue. Returns the reader or -1. */
static int fusable_act(const nnq_graph *g, int n, float *lo, float *hi) {
    const nnq_node *nd = &g->nodes[n];
    if (strcmp(nd->op_type, "Conv") != 0 || nd->n_outputs != 1 || nd->outputs[0] < 0) return -1;
    if (nnq_node_outputs_constant(g, n)) return -1;
    const int v = nd->outputs[0];
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return -1;
    int reader = -1, reads = 0;
    for (int r = 0; r < g->n_nodes; r++)
        for (int k = 0; k < g->nodes[r].n_inputs; k++)
            if (g->nodes[r].inputs[k] == v) {
                reader = r;
                reads++;
            }
    if (reads != 1 || reader <= n) return -1;
    const nnq_node *an = &g->nodes[reader];
    if (an->n_outputs < 1 || an->outputs[0] < 0 || an->inputs[0] != v) return -1;
    *lo = -FLT_MAX;
    *hi = FLT_MAX;
    if (strcmp(an->op_type, "Relu") == 0) return an->n_inputs == 1 ? reader : -1;
    if (strcmp(an->op_type, "Clip") != 0) return -1;
    for (int k = 1; k < an->n_inputs && k < 3; k++) {
        int b = an->inputs[k];
        if (b < 0) continue;
        const nnq_tensor *t = &g->values[b].t;
        if (!t->data || t->dtype != NNQ_DT_FLOAT || nnq_tensor_numel(t) != 1) return -1;
        *(k == 1 ? lo : hi) = nnq_f32(t)[0];
    }
    if (an->n_inputs > 3) return -1;
    /* Before opset 11 the bounds were attributes. */
    if (nnq_node_attr(an, "min")) *lo = nnq_node_attr_float(an, "min", -FLT_MAX);
    if (nnq_node_attr(an, "max")) *hi = nnq_node_attr_float(an, "max", FLT_MAX);
    return reader;
}

static void plan_fusion(nnq_exec *e) {
    const nnq_graph *g = e->g;
    for (int n = 0; n < g->n_nodes; n++) {
        e->act[n] = -1;
        e->fused[n] = false;
    }
    if (e->keep_all) return; /* calibration reads every intermediate */
    for (int n = 0; n < g->n_nodes; n++) {
        int r = fusable_act(g, n, &e->act_lo[n], &e->act_hi[n]);
        if (r < 0 || e->fused[r]) continue;
        e->act[n] = r;
        e->fused[r] = true;
    }
}

static bool value_in_arena(const nnq_exec *e, int v) {
    const nnq_value *val = &e->g->values[v];
    return val->producer >= 0 && !val->t.data;
}

/* First-fit placement of each node output among the blocks still live
 * when it is defined. A value is live from its producer to its last
 * reader inclusive, so an op's output never aliases one of its inputs. */
static nnq_status plan_arena(nnq_exec *e) {
    const nnq_graph *g = e->g;
    nnq_arena_planner ap = {0};
    int *last_use = malloc(sizeof(int) * (size_t)g->n_values);
    nnq_status s = last_use ? nnq_arena_planner_init(&ap, g->n_values)
                            : nnq_fail(NNQ_ERR_NOMEM, "out of memory planning the executor");
    if (s != NNQ_OK) goto done;
    for (int v = 0; v < g->n_values; v++) {
        last_use[v] = e->keep_all ? INT_MAX : g->values[v].producer;
        e->offset[v] = SIZE_MAX;
    }
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n].n_inputs; k++)
            if (g->nodes[n].inputs[k] >= 0 && last_use[g->nodes[n].inputs[k]] < n)
                last_use[g->nodes[n].inputs[k]] = n;
    for (int i = 0; i < g->n_outputs; i++) last_use[g->outputs[i]] = INT_MAX;

    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (e->fused[n]) continue; /* its output was placed with its Conv */
        for (int k = 0; k < nd->n_outputs; k++) {
            int v = nd->outputs[k];
            /* a fused Conv writes the activation's output, live from here */
            if (e->act[n] >= 0) v = g->nodes[e->act[n]].outputs[0];
            if (v < 0 || !value_in_arena(e, v)) continue;
            size_t bytes;
            if ((s = nnq_tensor_nbytes(&e->vals[v], &bytes)) != NNQ_OK) goto done;
            if ((s = nnq_arena_place(&ap, bytes, n, last_use[v], &e->offset[v])) != NNQ_OK) goto done;
        }
    }
    void *arena = e->arena;
    s = nnq_arena_reserve(&arena, &e->arena_bytes, ap.total, "activation arena");
    e->arena = arena;
    if (s != NNQ_OK) goto done;
    for (int v = 0; v < g->n_values; v++)
        if (e->offset[v] != SIZE_MAX) e->vals[v].data = e->arena + e->offset[v];
done:
    free(last_use);
    nnq_arena_planner_free(&ap);
    return s;
}

static nnq_status plan_scratch(nnq_exec *e) {
    const nnq_graph *g = e->g;
    size_t need = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, e->vals, e->threads));
        if (c.def->scratch_size) {
            size_t b = c.def->scratch_size(&c.args);
            if (b > need) need = b;
        }
    }
    return nnq_arena_reserve(&e->scratch, &e->scratch_bytes, need, "scratch");
}

static nnq_status plan(nnq_exec *e, const nnq_tensor *inputs) {
    const nnq_graph *g = e->g;
    e->planned = false;
    NNQ_TRY(nnq_graph_infer_shapes(g, inputs, e->vals));
    NNQ_TRY(plan_arena(e));
    NNQ_TRY(plan_scratch(e));
    for (int i = 0; i < g->n_inputs; i++) {
        e->in_shapes[i] = inputs[i];
        e->in_shapes[i].data = NULL;
        e->in_shapes[i].owns = false;
    }
    e->planned = true;
    return NNQ_OK;
}

nnq_status nnq_exec_create(const nnq_graph *g, const nnq_exec_options *opt, nnq_exec **out) {
    *out = NULL;
    nnq_exec *e = calloc(1, sizeof *e);
    if (!e) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the executor");
    e->g = g;
    e->threads = opt && opt->threads > 0 ? opt->threads : omp_get_max_threads();
    e->keep_all = opt && opt->keep_all;
    size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    e->vals = calloc(nv, sizeof *e->vals);
    e->offset = calloc(nv, sizeof *e->offset);
    e->in_shapes = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *e->in_shapes);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    e->act = calloc(nn, sizeof *e->act);
    e->fused = calloc(nn, sizeof *e->fused);
    e->act_lo = calloc(nn, sizeof *e->act_lo);
    e->act_hi = calloc(nn, sizeof *e->act_hi);
    if (!e->vals || !e->offset || !e->in_shapes || !e->act || !e->fused || !e->act_lo ||
        !e->act_hi) {
        nnq_exec_free(e);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the executor");
    }
    plan_fusion(e);
    *out = e;
    return NNQ_OK;
}

void nnq_exec_free(nnq_exec *e) {
    if (!e) return;
    free(e->vals);
    free(e->offset);
    free(e->in_shapes);
    free(e->act);
    free(e->fused);
    free(e->act_lo);
    free(e->act_hi);
    free(e->arena);
    free(e->scratch);
    free(e);
}

static nnq_status check_input(const nnq_exec *e, int i, const nnq_tensor *t) {
    const nnq_value *v = &e->g->values[e->g->inputs[i]];
    char got[128], want[128];
    if (!t->data) return nnq_fail(NNQ_ERR_INVALID, "input '%s' has no data", v->name);
    if (t->dtype != v->t.dtype)
        return nnq_fail(NNQ_ERR_SHAPE, "input '%s' must be %s, got %s", v->name,
                        nnq_dtype_name(v->t.dtype), nnq_dtype_name(t->dtype));
    bool ok = v->t.rank < 0 || t->rank == v->t.rank;
    for (int k = 0; ok && v->t.rank >= 0 && k < t->rank; k++)
        if (v->t.dims[k] >= 0 && v->t.dims[k] != t->dims[k]) ok = false;
    if (!ok)
        return nnq_fail(NNQ_ERR_SHAPE, "input '%s' must have shape %s, got %s", v->name,
                        nnq_shape_str(&v->t, want, sizeof want), nnq_shape_str(t, got, sizeof got));
    return NNQ_OK;
}

/* Run nodes 0..last (in sorted order) on inputs. */
static nnq_status run_nodes(nnq_exec *e, const nnq_tensor *inputs, int last) {
    const nnq_graph *g = e->g;
    bool same = e->planned;
    for (int i = 0; i < g->n_inputs; i++) {
        NNQ_TRY(check_input(e, i, &inputs[i]));
        if (same && !nnq_shape_equal(&e->in_shapes[i], &inputs[i])) same = false;
        if (nnq_dtype_is_integer(inputs[i].dtype)) same = false; /* data-dependent shapes */
    }
    if (!same) NNQ_TRY(plan(e, inputs));
    for (int i = 0; i < g->n_inputs; i++) e->vals[g->inputs[i]].data = inputs[i].data;
    for (int n = 0; n <= last && n < g->n_nodes; n++) {
        if (nnq_node_outputs_constant(g, n) || e->fused[n]) continue;
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, e->vals, e->threads));
        if (e->act[n] >= 0) {
            const nnq_node *an = &g->nodes[e->act[n]];
            c.out[0] = &e->vals[an->outputs[0]];
            c.args.clamp_relu = strcmp(an->op_type, "Relu") == 0;
            c.args.clamp = !c.args.clamp_relu;
            c.args.clamp_lo = e->act_lo[n];
            c.args.clamp_hi = e->act_hi[n];
        }
        c.args.scratch = e->scratch;
        c.args.scratch_bytes = e->scratch_bytes;
        NNQ_TRY(c.def->forward(&c.args));
    }
    return NNQ_OK;
}

nnq_status nnq_exec_run(nnq_exec *e, const nnq_tensor *inputs) {
    return run_nodes(e, inputs, e->g->n_nodes - 1);
}

nnq_status nnq_exec_run_until(nnq_exec *e, const nnq_tensor *inputs, int value) {
    if (value < 0 || value >= e->g->n_values)
        return nnq_fail(NNQ_ERR_INVALID, "run until value %d: no such value", value);
    return run_nodes(e, inputs, e->g->values[value].producer);
}

const nnq_tensor *nnq_exec_output(const nnq_exec *e, int i) {
    if (i < 0 || i >= e->g->n_outputs) return NULL;
    return &e->vals[e->g->outputs[i]];
}

const nnq_tensor *nnq_exec_value(const nnq_exec *e, int v) {
    if (v < 0 || v >= e->g->n_values) return NULL;
    return &e->vals[v];
}

nnq_status nnq_exec_images_per_run(const nnq_graph *g, int64_t c, int64_t h, int64_t w,
                                   size_t budget, int max_images, int *out) {
    nnq_tensor *shapes = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *shapes);
    if (!shapes) return nnq_fail(NNQ_ERR_NOMEM, "out of memory sizing the executor's batches");
    nnq_tensor in = {0};
    const int64_t dims[4] = {1, c, h, w};
    nnq_status st = nnq_tensor_set_shape(&in, NNQ_DT_FLOAT, 4, dims);
    if (st == NNQ_OK) st = nnq_graph_infer_shapes(g, &in, shapes);
    size_t per_image = 1;
    for (int v = 0; st == NNQ_OK && v < g->n_values; v++) {
        size_t bytes = 0;
        if (g->values[v].t.data || shapes[v].rank < 0) continue;
        if (nnq_tensor_nbytes(&shapes[v], &bytes) == NNQ_OK) per_image += bytes;
    }
    free(shapes);
    NNQ_TRY(st);
    const size_t b = budget / per_image;
    *out = b < 1 ? 1 : (b > (size_t)max_images ? max_images : (int)b);
    return NNQ_OK;
}
