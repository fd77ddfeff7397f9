/* Training forward and backward over a graph, with planned buffers. */
#include "train/autograd.h"

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ops/node_call.h"

#define ARENA_ALIGN 64

struct nnq_autograd {
    nnq_graph *g;
    nnq_params *ps;
    int threads;
    /* Static analysis (create). */
    bool *requires;   /* [values] depends on a parameter */
    bool *need_grad;  /* [values] requires and reaches a graph output */
    bool *folded;     /* [nodes] outputs are constants: never run */
    bool *run_bwd;    /* [nodes] some output needs a gradient */
    int *grad_start;  /* [values] node whose backward first writes the
                         gradient (graph outputs: n_nodes); -1: none */
    /* Plan (per input shape). */
    bool planned;
    nnq_tensor *in_shapes; /* [inputs] */
    nnq_tensor *vals;      /* [values] forward values */
    nnq_tensor *grads;     /* [values] gradients (data NULL: none) */
    size_t *saved_off;     /* [nodes] offset into the saved arena */
    size_t *saved_len;
    unsigned char *fwd, *saved, *grad;
    size_t fwd_bytes, saved_bytes, grad_bytes;
    void *scratch;
    size_t scratch_bytes;
};

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* Grow a buffer to at least `need` bytes (contents not kept). */
static nnq_status reserve(unsigned char **buf, size_t *have, size_t need, const char *what) {
    if (need <= *have && *buf) return NNQ_OK;
    free(*buf);
    *buf = aligned_alloc(ARENA_ALIGN, need ? need : ARENA_ALIGN);
    *have = *buf ? need : 0;
    if (!*buf) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate a %zu-byte %s", need, what);
    return NNQ_OK;
}

/* ---- static analysis ---- */

static nnq_status analyse(nnq_autograd *ag) {
    const nnq_graph *g = ag->g;
    char label[256];
    for (int i = 0; i < ag->ps->n; i++) ag->requires[ag->ps->p[i].value] = true;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        ag->folded[n] = nnq_node_outputs_constant(g, n);
        bool req = false;
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0 && ag->requires[nd->inputs[k]]) req = true;
        if (req && ag->folded[n])
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "%s node '%s' was folded into a constant but reads a parameter; "
                            "it cannot be trained",
                            nd->op_type, nnq_node_label(g, n, label, sizeof label));
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0 && req) ag->requires[nd->outputs[k]] = true;
    }
    /* Reach: from the graph outputs back to the parameters. */
    bool *reach = calloc((size_t)g->n_values, sizeof *reach);
    if (!reach) return nnq_fail(NNQ_ERR_NOMEM, "out of memory analysing the graph");
    for (int i = 0; i < g->n_outputs; i++) reach[g->outputs[i]] = true;
    for (int v = 0; v < g->n_values; v++) ag->grad_start[v] = -1;
    for (int i = 0; i < g->n_outputs; i++) ag->grad_start[g->outputs[i]] = g->n_nodes;
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        const nnq_node *nd = &g->nodes[n];
        bool out_need = false;
        for (int k = 0; k < nd->n_outputs; k++) {
            int v = nd->outputs[k];
            if (v >= 0 && reach[v] && ag->requires[v]) out_need = true;
        }
        if (!out_need) continue;
        ag->run_bwd[n] = true;
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            if (v < 0) continue;
            reach[v] = true;
            if (ag->requires[v] && ag->grad_start[v] < 0) ag->grad_start[v] = n;
        }
    }
    for (int v = 0; v < g->n_values; v++) ag->need_grad[v] = reach[v] && ag->requires[v];
    free(reach);
    for (int n = 0; n < g->n_nodes; n++) {
        if (!ag->run_bwd[n]) continue;
        const nnq_op_def *def;
        NNQ_TRY(nnq_node_resolve(g, n, &def));
        if (!def->backward)
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "op '%s' at node '%s' has no backward pass; training needs one on "
                            "every path from a parameter to the output",
                            g->nodes[n].op_type, nnq_node_label(g, n, label, sizeof label));
    }
    return NNQ_OK;
}

nnq_status nnq_autograd_create(nnq_graph *g, nnq_params *ps, int threads, nnq_autograd **out) {
    *out = NULL;
    nnq_autograd *ag = calloc(1, sizeof *ag);
    if (!ag) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the autograd");
    ag->g = g;
    ag->ps = ps;
    ag->threads = threads > 0 ? threads : omp_get_max_threads();
    size_t nv = (size_t)(g->n_values ? g->n_values : 1), nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    ag->requires = calloc(nv, sizeof *ag->requires);
    ag->need_grad = calloc(nv, sizeof *ag->need_grad);
    ag->grad_start = calloc(nv, sizeof *ag->grad_start);
    ag->vals = calloc(nv, sizeof *ag->vals);
    ag->grads = calloc(nv, sizeof *ag->grads);
    ag->folded = calloc(nn, sizeof *ag->folded);
    ag->run_bwd = calloc(nn, sizeof *ag->run_bwd);
    ag->saved_off = calloc(nn, sizeof *ag->saved_off);
    ag->saved_len = calloc(nn, sizeof *ag->saved_len);
    ag->in_shapes = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *ag->in_shapes);
    nnq_status s;
    if (!ag->requires || !ag->need_grad || !ag->grad_start || !ag->vals || !ag->grads ||
        !ag->folded || !ag->run_bwd || !ag->saved_off || !ag->saved_len || !ag->in_shapes) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the autograd");
        goto fail;
    }
    if ((s = analyse(ag)) != NNQ_OK) goto fail;
    *out = ag;
    return NNQ_OK;
fail:
    nnq_autograd_free(ag);
    return s;
}

void nnq_autograd_free(nnq_autograd *ag) {
    if (!ag) return;
    free(ag->requires);
    free(ag->need_grad);
    free(ag->grad_start);
    free(ag->vals);
    free(ag->grads);
    free(ag->folded);
    free(ag->run_bwd);
    free(ag->saved_off);
    free(ag->saved_len);
    free(ag->in_shapes);
    free(ag->fwd);
    free(ag->saved);
    free(ag->grad);
    free(ag->scratch);
    free(ag);
}

/* ---- planning ---- */

static nnq_status plan_forward(nnq_autograd *ag) {
    const nnq_graph *g = ag->g;
    size_t total = 0;
    size_t *off = malloc(sizeof *off * (size_t)(g->n_values ? g->n_values : 1));
    if (!off) return nnq_fail(NNQ_ERR_NOMEM, "out of memory planning the training forward");
    for (int n = 0; n < g->n_nodes; n++) {
        if (ag->folded[n]) continue;
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_outputs; k++) {
            int v = nd->outputs[k];
            if (v < 0) continue;
            size_t bytes;
            nnq_status s = nnq_tensor_nbytes(&ag->vals[v], &bytes);
            if (s != NNQ_OK) {
                free(off);
                return s;
            }
            off[v] = total;
            total += align_up(bytes ? bytes : 1);
        }
    }
    nnq_status s = reserve(&ag->fwd, &ag->fwd_bytes, total, "training activation arena");
    if (s == NNQ_OK)
        for (int n = 0; n < g->n_nodes; n++) {
            if (ag->folded[n]) continue;
            const nnq_node *nd = &g->nodes[n];
            for (int k = 0; k < nd->n_outputs; k++)
                if (nd->outputs[k] >= 0) ag->vals[nd->outputs[k]].data = ag->fwd + off[nd->outputs[k]];
        }
    free(off);
    return s;
}

/* Saved buffers per node and the largest scratch any op needs in training. */
static nnq_status plan_saved_scratch(nnq_autograd *ag) {
    const nnq_graph *g = ag->g;
    size_t total = 0, scratch = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        ag->saved_off[n] = ag->saved_len[n] = 0;
        if (ag->folded[n]) continue;
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, ag->vals, ag->threads));
        c.args.training = true;
        if (c.def->saved_size) {
            size_t b = c.def->saved_size(&c.args);
            ag->saved_off[n] = total;
            ag->saved_len[n] = b;
            total += align_up(b);
        }
        if (c.def->scratch_size) {
            size_t b = c.def->scratch_size(&c.args);
            if (b > scratch) scratch = b;
        }
    }
    NNQ_TRY(reserve(&ag->saved, &ag->saved_bytes, total, "saved-state arena"));
    return reserve((unsigned char **)&ag->scratch, &ag->scratch_bytes, align_up(scratch),
                   "scratch buffer");
}

typedef struct grad_block {
    size_t off, size;
    int lo; /* producer node: the block is free once the backward passes it */
} grad_block;

static int cmp_block_off(const void *a, const void *b) {
    const grad_block *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

typedef struct grad_start_key {
    int start, value;
} grad_start_key;

/* Backward order: later start first; value index breaks ties. */
static int cmp_start(const void *a, const void *b) {
    const grad_start_key *x = a, *y = b;
    if (x->start != y->start) return (x->start < y->start) - (x->start > y->start);
    return (x->value > y->value) - (x->value < y->value);
}

static bool grad_in_arena(const nnq_autograd *ag, int v) {
    return ag->need_grad[v] && ag->g->values[v].producer >= 0 && !ag->g->values[v].is_initializer;
}

/* First-fit placement in backward order: the gradient of v lives from
 * node grad_start[v] down to its producer, both inclusive, so an op's
 * input and output gradients never share memory. */
static nnq_status plan_grads(nnq_autograd *ag) {
    const nnq_graph *g = ag->g;
    nnq_status s = NNQ_OK;
    size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    grad_block *blocks = malloc(sizeof *blocks * nv), *live = malloc(sizeof *live * nv);
    size_t *off = malloc(sizeof *off * nv);
    grad_start_key *order = malloc(sizeof *order * nv);
    int n_blocks = 0, n_order = 0;
    size_t total = 0;
    if (!blocks || !live || !off || !order) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory planning gradients");
        goto done;
    }
    /* Values in the order their gradients start: outputs, then by node. */
    for (int v = 0; v < g->n_values; v++)
        if (grad_in_arena(ag, v)) order[n_order++] = (grad_start_key){ag->grad_start[v], v};
    qsort(order, (size_t)n_order, sizeof *order, cmp_start);
    for (int i = 0; i < n_order; i++) {
        int v = order[i].value, t = order[i].start;
        size_t bytes;
        if ((s = nnq_tensor_nbytes(&ag->vals[v], &bytes)) != NNQ_OK) goto done;
        bytes = align_up(bytes ? bytes : 1);
        int n_live = 0;
        for (int b = 0; b < n_blocks; b++)
            if (blocks[b].lo <= t) live[n_live++] = blocks[b];
        qsort(live, (size_t)n_live, sizeof *live, cmp_block_off);
        size_t o = 0;
        for (int b = 0; b < n_live; b++) {
            if (live[b].off >= o + bytes) break;
            if (live[b].off + live[b].size > o) o = live[b].off + live[b].size;
        }
        off[v] = o;
        blocks[n_blocks++] = (grad_block){o, bytes, g->values[v].producer};
        if (o + bytes > total) total = o + bytes;
    }
    if ((s = reserve(&ag->grad, &ag->grad_bytes, total, "gradient arena")) != NNQ_OK) goto done;
    for (int v = 0; v < g->n_values; v++) {
        ag->grads[v] = ag->vals[v];
        ag->grads[v].owns = false;
        ag->grads[v].data = NULL;
        if (grad_in_arena(ag, v)) ag->grads[v].data = ag->grad + off[v];
    }
done:
    free(blocks);
    free(live);
    free(off);
    free(order);
    return s;
}

static nnq_status plan(nnq_autograd *ag, const nnq_tensor *inputs) {
    ag->planned = false;
    NNQ_TRY(nnq_graph_infer_shapes(ag->g, inputs, ag->vals));
    NNQ_TRY(plan_forward(ag));
    NNQ_TRY(plan_saved_scratch(ag));
    NNQ_TRY(plan_grads(ag));
    for (int i = 0; i < ag->g->n_inputs; i++) {
        ag->in_shapes[i] = inputs[i];
        ag->in_shapes[i].data = NULL;
        ag->in_shapes[i].owns = false;
    }
    ag->planned = true;
    return NNQ_OK;
}

/* ---- running ---- */

static nnq_status check_input(const nnq_graph *g, int i, const nnq_tensor *t) {
    const nnq_value *v = &g->values[g->inputs[i]];
    if (!t->data) return nnq_fail(NNQ_ERR_INVALID, "input '%s' has no data", v->name);
    bool ok = t->dtype == v->t.dtype && (v->t.rank < 0 || t->rank == v->t.rank);
    for (int k = 0; ok && v->t.rank >= 0 && k < t->rank; k++)
        if (v->t.dims[k] >= 0 && v->t.dims[k] != t->dims[k]) ok = false;
    if (!ok) {
        char got[128], want[128];
        return nnq_fail(NNQ_ERR_SHAPE, "input '%s' must be %s %s, got %s %s", v->name,
                        nnq_dtype_name(v->t.dtype), nnq_shape_str(&v->t, want, sizeof want),
                        nnq_dtype_name(t->dtype), nnq_shape_str(t, got, sizeof got));
    }
    return NNQ_OK;
}

static void zero_grad(nnq_tensor *t) {
    size_t bytes;
    if (t->data && nnq_tensor_nbytes(t, &bytes) == NNQ_OK) memset(t->data, 0, bytes);
}

nnq_status nnq_autograd_forward(nnq_autograd *ag, const nnq_tensor *inputs) {
    nnq_graph *g = ag->g;
    bool same = ag->planned;
    for (int i = 0; i < g->n_inputs; i++) {
        NNQ_TRY(check_input(g, i, &inputs[i]));
        if (same && !nnq_shape_equal(&ag->in_shapes[i], &inputs[i])) same = false;
    }
    if (!same) NNQ_TRY(plan(ag, inputs));
    for (int i = 0; i < g->n_inputs; i++) ag->vals[g->inputs[i]].data = inputs[i].data;
    for (int n = 0; n < g->n_nodes; n++) {
        if (ag->folded[n]) continue;
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, ag->vals, ag->threads));
        c.args.training = true;
        c.args.saved = ag->saved + ag->saved_off[n];
        c.args.saved_bytes = ag->saved_len[n];
        c.args.scratch = ag->scratch;
        c.args.scratch_bytes = ag->scratch_bytes;
        NNQ_TRY(c.def->forward(&c.args));
    }
    for (int i = 0; i < g->n_outputs; i++) zero_grad(&ag->grads[g->outputs[i]]);
    return NNQ_OK;
}

nnq_status nnq_autograd_backward(nnq_autograd *ag) {
    nnq_graph *g = ag->g;
    if (!ag->planned)
        return nnq_fail(NNQ_ERR_INVALID, "autograd: backward called before a forward");
    if (!ag->ps->grads)
        return nnq_fail(NNQ_ERR_INVALID, "autograd: parameter gradients are not allocated");
    /* Parameter gradients live in the store (re-read: it may have re-allocated). */
    for (int i = 0; i < ag->ps->n; i++) {
        nnq_tensor *t = &ag->grads[ag->ps->p[i].value];
        *t = ag->vals[ag->ps->p[i].value];
        t->owns = false;
        t->data = ag->ps->p[i].grad;
    }
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        if (!ag->run_bwd[n]) continue;
        const nnq_node *nd = &g->nodes[n];
        nnq_node_call c;
        const nnq_tensor *out_grad[NNQ_MAX_NODE_IO];
        nnq_tensor *in_grad[NNQ_MAX_NODE_IO];
        NNQ_TRY(nnq_node_call_init(&c, g, n, ag->vals, ag->threads));
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            in_grad[k] = v >= 0 && ag->need_grad[v] ? &ag->grads[v] : NULL;
            /* First writer of an arena gradient: start from zero. */
            if (v >= 0 && ag->grad_start[v] == n && grad_in_arena(ag, v)) {
                bool seen = false; /* an input listed twice is zeroed once */
                for (int j = 0; j < k; j++) seen = seen || nd->inputs[j] == v;
                if (!seen) zero_grad(&ag->grads[v]);
            }
        }
        for (int k = 0; k < c.args.n_out; k++) {
            int v = nd->outputs[k];
            out_grad[k] = v >= 0 && ag->need_grad[v] ? &ag->grads[v] : NULL;
        }
        c.args.training = true;
        c.args.saved = ag->saved + ag->saved_off[n];
        c.args.saved_bytes = ag->saved_len[n];
        c.args.scratch = ag->scratch;
        c.args.scratch_bytes = ag->scratch_bytes;
        c.args.out_grad = out_grad;
        c.args.in_grad = in_grad;
        NNQ_TRY(c.def->backward(&c.args));
    }
    return NNQ_OK;
}

const nnq_tensor *nnq_autograd_output(const nnq_autograd *ag, int i) {
    if (i < 0 || i >= ag->g->n_outputs || !ag->planned) return NULL;
    return &ag->vals[ag->g->outputs[i]];
}

nnq_tensor *nnq_autograd_output_grad(nnq_autograd *ag, int i) {
    if (i < 0 || i >= ag->g->n_outputs || !ag->planned) return NULL;
    nnq_tensor *t = &ag->grads[ag->g->outputs[i]];
    return t->data && grad_in_arena(ag, ag->g->outputs[i]) ? t : NULL;
}

const nnq_tensor *nnq_autograd_value(const nnq_autograd *ag, int v) {
    if (v < 0 || v >= ag->g->n_values || !ag->planned) return NULL;
    return &ag->vals[v];
}

size_t nnq_autograd_bytes(const nnq_autograd *ag) {
    return ag->fwd_bytes + ag->saved_bytes + ag->grad_bytes + ag->scratch_bytes;
}
