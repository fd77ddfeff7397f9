/* The executor of an integer program (INT: the kernels; SIM: the float
 * emulation, iprog_sim.c). Lifecycle: create (every operator's create:
 * pack weights, precompute) -> run: when the batch size changes, plan
 * (shapes at this batch, one arena for all tensors from their lifetimes,
 * each operator's reshape, one scratch buffer for the largest need), then
 * the operators in order.
 *
 * Threads: `threads` (0: omp_get_max_threads()) is set as the OpenMP
 * thread count while planning and running, so the kernels (which split
 * their work over (image, group, pixel block, channel chunk) items) and
 * the other operators (over elements or planes) use both cores, each at
 * one level, never nested.
 *
 * Batches (INT mode, a program whose every operator keeps images apart):
 * the batch is cut into sub-batches of at most SPLIT_CHUNK images, and
 * each thread runs its share of them through the whole program on a
 * one-thread sub-executor of its own (own operators, arena and scratch).
 * One image's activations then stay in the core's cache from layer to
 * layer, and there is one fork and join per run instead of one per
 * operator (docs/engine.md). Each image's result is the same as in a whole-batch
 * run: nothing in an integer program mixes images. */
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/parallel.h"
#include "engine/iprog_impl.h"

/* Images per sub-batch of a split run: a few images' activations fit in
 * a core's L2 (resnet20 and mobilenetv2 run fastest per image at 4-16). */
#define SPLIT_CHUNK 8

struct nnq_iexec {
    const nnq_iprog *p;
    nnq_engine_mode mode;
    int threads;
    const ip_impl **impl;  /* [n_ops] */
    void **state;          /* [n_ops] */
    nnq_tensor ***in, ***out; /* [n_ops] arrays of pointers into vals */
    nnq_tensor *vals;      /* [n_tensors] shapes and data at the planned batch */
    nnq_tensor *outs;      /* [n_outputs] outputs in their ONNX types */
    int64_t batch;         /* planned batch, -1 before the first plan */
    size_t *offset;        /* [n_tensors] arena offset, SIZE_MAX: not in the arena */
    unsigned char *arena;
    size_t arena_bytes;
    void *scratch;
    size_t scratch_bytes;
    bool planned;
    int8_t splittable;     /* -1: not yet known */
    int n_sub;             /* sub-executors of split runs, created on first need */
    int last_split;        /* workers of the last run, 0: not split */
    nnq_iexec **sub;
};

int nnq_iexec_double_layers(const nnq_iexec *e) {
    return e->mode == NNQ_ENGINE_SIM ? ip_sim_double_layers(e->state, e->p) : 0;
}

void nnq_iexec_free(nnq_iexec *e) {
    if (!e) return;
    for (int i = 0; e->state && i < e->p->n_ops; i++)
        if (e->state[i] && e->impl[i]->destroy) e->impl[i]->destroy(e->state[i]);
    for (int i = 0; e->in && i < e->p->n_ops; i++) free(e->in[i]);
    for (int i = 0; e->out && i < e->p->n_ops; i++) free(e->out[i]);
    for (int i = 0; e->outs && i < e->p->n_outputs; i++) nnq_tensor_release(&e->outs[i]);
    free(e->impl);
    free(e->state);
    free(e->in);
    free(e->out);
    free(e->vals);
    free(e->outs);
    free(e->offset);
    free(e->arena);
    free(e->scratch);
    for (int w = 0; w < e->n_sub; w++) nnq_iexec_free(e->sub[w]);
    free(e->sub);
    free(e);
}

/* Run f with the executor's thread count as OpenMP's default. */
typedef struct omp_scope {
    int saved;
} omp_scope;
static omp_scope omp_enter(const nnq_iexec *e) {
    omp_scope s = {omp_get_max_threads()};
    omp_set_num_threads(e->threads);
    return s;
}
static void omp_leave(omp_scope s) { omp_set_num_threads(s.saved); }

nnq_status nnq_iexec_create(const nnq_iprog *p, nnq_engine_mode mode, int threads,
                            nnq_iexec **out) {
    *out = NULL;
    if (mode != NNQ_ENGINE_INT && mode != NNQ_ENGINE_SIM)
        return nnq_fail(NNQ_ERR_INVALID, "unknown engine mode %d", (int)mode);
    nnq_iexec *e = calloc(1, sizeof *e);
    if (!e) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the integer executor");
    e->p = p;
    e->mode = mode;
    e->threads = threads > 0 ? threads : omp_get_max_threads();
    e->batch = -1;
    e->splittable = -1;
    const size_t no = (size_t)(p->n_ops ? p->n_ops : 1), nt = (size_t)(p->n_tensors ? p->n_tensors : 1);
    e->impl = calloc(no, sizeof *e->impl);
    e->state = calloc(no, sizeof *e->state);
    e->in = calloc(no, sizeof *e->in);
    e->out = calloc(no, sizeof *e->out);
    e->vals = calloc(nt, sizeof *e->vals);
    e->offset = calloc(nt, sizeof *e->offset);
    e->outs = calloc((size_t)(p->n_outputs ? p->n_outputs : 1), sizeof *e->outs);
    nnq_status s = NNQ_OK;
    if (!e->impl || !e->state || !e->in || !e->out || !e->vals || !e->offset || !e->outs) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the integer executor");
        goto fail;
    }
    omp_scope sc = omp_enter(e);
    for (int i = 0; i < p->n_ops && s == NNQ_OK; i++) {
        const ip_op *op = &p->ops[i];
        e->impl[i] = mode == NNQ_ENGINE_INT ? ip_int_impls[op->kind] : ip_sim_impls[op->kind];
        e->in[i] = calloc((size_t)(op->n_in ? op->n_in : 1), sizeof(nnq_tensor *));
        e->out[i] = calloc((size_t)(op->n_out ? op->n_out : 1), sizeof(nnq_tensor *));
        if (!e->in[i] || !e->out[i]) {
            s = nnq_fail(NNQ_ERR_NOMEM, "out of memory creating the integer executor");
            break;
        }
        for (int k = 0; k < op->n_in; k++) e->in[i][k] = op->in[k] >= 0 ? &e->vals[op->in[k]] : NULL;
        for (int k = 0; k < op->n_out; k++) e->out[i][k] = op->out[k] >= 0 ? &e->vals[op->out[k]] : NULL;
        if (e->impl[i]->create) s = e->impl[i]->create(p, op, &e->state[i]);
    }
    omp_leave(sc);
    if (s != NNQ_OK) goto fail;
    *out = e;
    return NNQ_OK;
fail:
    nnq_iexec_free(e);
    return s;
}

/* ---- planning ---- */

/* Whether tensor t (a base) needs arena space: everything an operator
 * writes, and inputs stored shifted (int8 -> uint8). */
static bool in_arena(const nnq_iprog *p, int t, const bool *is_input) {
    if (!is_input[t]) return true;
    return p->t[t].onnx_dtype != p->t[t].dtype;
}

static nnq_status plan_arena(nnq_iexec *e) {
    const nnq_iprog *p = e->p;
    const int nt = p->n_tensors;
    nnq_arena_planner ap = {0};
    int *last = malloc(sizeof(int) * (size_t)(nt ? nt : 1));
    bool *is_input = calloc((size_t)(nt ? nt : 1), 1);
    nnq_status s = last && is_input
                       ? nnq_arena_planner_init(&ap, nt)
                       : nnq_fail(NNQ_ERR_NOMEM, "out of memory planning the integer executor");
    if (s != NNQ_OK) goto done;
    for (int t = 0; t < nt; t++) {
        last[t] = -1;
        e->offset[t] = SIZE_MAX;
    }
    for (int i = 0; i < p->n_inputs; i++) is_input[p->inputs[i]] = true;
    for (int i = 0; i < p->n_ops; i++) {
        const ip_op *op = &p->ops[i];
        for (int k = 0; k < op->n_in; k++) {
            const int b = op->in[k] >= 0 ? ip_base(p, op->in[k]) : -1;
            if (b >= 0 && last[b] < i) last[b] = i;
        }
    }
    for (int i = 0; i < p->n_outputs; i++) last[ip_base(p, p->outputs[i])] = INT_MAX;
    /* place tensors in order of definition: inputs, then operator outputs */
    for (int step = -1; step < p->n_ops; step++) {
        const int n_def = step < 0 ? p->n_inputs : p->ops[step].n_out;
        for (int k = 0; k < n_def; k++) {
            const int t = step < 0 ? p->inputs[k] : p->ops[step].out[k];
            if (t < 0 || !in_arena(p, t, is_input)) continue;
            size_t bytes;
            if ((s = nnq_tensor_nbytes(&e->vals[t], &bytes)) != NNQ_OK) goto done;
            if ((s = nnq_arena_place(&ap, bytes, step, last[t], &e->offset[t])) != NNQ_OK) goto done;
        }
    }
    void *arena = e->arena;
    s = nnq_arena_reserve(&arena, &e->arena_bytes, ap.total, "activation arena");
    e->arena = arena;
    if (s != NNQ_OK) goto done;
    for (int t = 0; t < nt; t++)
        if (e->offset[t] != SIZE_MAX) e->vals[t].data = e->arena + e->offset[t];
done:
    free(last);
    free(is_input);
    nnq_arena_planner_free(&ap);
    return s;
}

static nnq_status plan(nnq_iexec *e, int64_t batch) {
    const nnq_iprog *p = e->p;
    e->planned = false;
    for (int t = 0; t < p->n_tensors; t++) {
        const ip_tensor *pt = &p->t[t];
        nnq_tensor *v = &e->vals[t];
        memset(v, 0, sizeof *v);
        v->dtype = pt->dtype;
        v->rank = pt->rank;
        memcpy(v->dims, pt->dims, sizeof(int64_t) * (size_t)pt->rank);
        if (pt->batched) v->dims[0] = batch;
        size_t bytes;
        NNQ_TRY(nnq_tensor_nbytes(v, &bytes));
    }
    NNQ_TRY(plan_arena(e));
    for (int t = 0; t < p->n_tensors; t++)
        if (p->t[t].alias >= 0) e->vals[t].data = NULL; /* set per run from the base */
    size_t need = 0;
    for (int i = 0; i < p->n_ops; i++) {
        ip_call c = {.p = p, .op = &p->ops[i], .index = i, .in = e->in[i], .out = e->out[i],
                     .state = e->state[i], .threads = e->threads};
        size_t b = 0;
        NNQ_TRY(e->impl[i]->reshape(&c, &b));
        if (b > need) need = b;
    }
    NNQ_TRY(nnq_arena_reserve(&e->scratch, &e->scratch_bytes, need, "scratch"));
    /* outputs in their ONNX types: int8 ones get a buffer of their own */
    for (int i = 0; i < p->n_outputs; i++) {
        const ip_tensor *pt = &p->t[p->outputs[i]];
        nnq_tensor_release(&e->outs[i]);
        if (pt->onnx_dtype != pt->dtype)
            NNQ_TRY(nnq_tensor_alloc(&e->outs[i], pt->onnx_dtype, e->vals[p->outputs[i]].rank,
                                     e->vals[p->outputs[i]].dims));
    }
    e->batch = batch;
    e->planned = true;
    return NNQ_OK;
}

/* ---- running ---- */

static nnq_status check_input(const nnq_iexec *e, int i, const nnq_tensor *x, int64_t *batch) {
    const ip_tensor *pt = &e->p->t[e->p->inputs[i]];
    char got[128];
    bool ok = x->dtype == pt->onnx_dtype && x->rank == pt->rank && x->data;
    for (int k = 0; ok && k < x->rank; k++)
        if (x->dims[k] != pt->dims[k] && !(k == 0 && pt->batched && x->dims[0] >= 1)) ok = false;
    if (!ok) {
        nnq_tensor want;
        nnq_iprog_input_shape(e->p, i, &want);
        char ws[128];
        return nnq_fail(NNQ_ERR_SHAPE, "input '%s' must be %s [%s] (-1: any batch), got %s [%s]",
                        pt->name, nnq_dtype_name(pt->onnx_dtype), nnq_shape_str(&want, ws, sizeof ws),
                        nnq_dtype_name(x->dtype), nnq_shape_str(x, got, sizeof got));
    }
    const int64_t b = pt->batched ? x->dims[0] : -1;
    if (b >= 0 && *batch >= 0 && b != *batch)
        return nnq_fail(NNQ_ERR_SHAPE, "inputs disagree on the batch size (%lld vs %lld)",
                        (long long)b, (long long)*batch);
    if (b >= 0) *batch = b;
    return NNQ_OK;
}

/* Tensors copied out during a run (nnq_iexec_run_collect): tensor[k]
 * after operator after[k] (-1: once the inputs are in place). */
typedef struct taps {
    int n;
    const int *tensor, *after;
    nnq_tensor *outs;
} taps;

/* outs = tensor t of the run as float32 (see nnq_iexec_run_collect). */
static nnq_status tap_copy(const nnq_iexec *e, int t, nnq_tensor *out) {
    const ip_tensor *pt = &e->p->t[t];
    const nnq_tensor *v = &e->vals[t];
    if (!v->data) return nnq_fail(NNQ_ERR_INVALID, "tensor '%s' is not computed by the program", pt->name);
    NNQ_TRY(nnq_tensor_alloc(out, NNQ_DT_FLOAT, v->rank, v->dims));
    float *y = nnq_f32(out);
    const int64_t n = nnq_tensor_numel(v);
    if (v->dtype == NNQ_DT_UINT8) {
        const uint8_t *q = v->data;
        /* scale 0: a raw integer input (int8 stored shifted by 128) */
        const int32_t z = pt->scale > 0 ? pt->zp : (pt->onnx_dtype == NNQ_DT_INT8 ? 128 : 0);
        const float s = pt->scale > 0 ? pt->scale : 1.0f;
        for (int64_t i = 0; i < n; i++) y[i] = (float)((int32_t)q[i] - z) * s;
    } else if (v->dtype == NNQ_DT_INT32) {
        const int32_t *a = v->data;
        for (int64_t i = 0; i < n; i++) y[i] = (float)a[i];
    } else {
        memcpy(y, v->data, sizeof(float) * (size_t)n);
    }
    return NNQ_OK;
}

static nnq_status taps_at(const nnq_iexec *e, const taps *tp, int op) {
    for (int k = 0; tp && k < tp->n; k++)
        if (tp->after[k] == op) NNQ_TRY(tap_copy(e, tp->tensor[k], &tp->outs[k]));
    return NNQ_OK;
}

static nnq_status run(nnq_iexec *e, const nnq_tensor *inputs, const taps *tp) {
    const nnq_iprog *p = e->p;
    int64_t batch = -1;
    for (int i = 0; i < p->n_inputs; i++) NNQ_TRY(check_input(e, i, &inputs[i], &batch));
    if (batch < 0) batch = 1;
    nnq_status s = NNQ_OK;
    omp_scope sc = omp_enter(e);
    if (!e->planned || batch != e->batch) s = plan(e, batch);
    for (int i = 0; i < p->n_inputs && s == NNQ_OK; i++) {
        nnq_tensor *v = &e->vals[p->inputs[i]];
        const ip_tensor *pt = &p->t[p->inputs[i]];
        if (pt->onnx_dtype == pt->dtype) {
            v->data = inputs[i].data;
            continue;
        }
        const int8_t *src = inputs[i].data; /* int8 stored as uint8 + 128 */
        uint8_t *dst = v->data;
        for (int64_t k = 0; k < nnq_tensor_numel(v); k++) dst[k] = (uint8_t)(src[k] + 128);
    }
    for (int t = 0; t < p->n_tensors && s == NNQ_OK; t++)
        if (p->t[t].alias >= 0) e->vals[t].data = e->vals[ip_base(p, t)].data;
    if (s == NNQ_OK) s = taps_at(e, tp, -1);
    for (int i = 0; i < p->n_ops && s == NNQ_OK; i++) {
        ip_call c = {.p = p, .op = &p->ops[i], .index = i, .in = e->in[i], .out = e->out[i],
                     .state = e->state[i], .scratch = e->scratch, .scratch_bytes = e->scratch_bytes,
                     .threads = e->threads};
        s = e->impl[i]->run(&c);
        if (s != NNQ_OK) nnq_fail_context(s, "%s operator '%s': ", ip_kind_name(p->ops[i].kind),
                                          p->ops[i].name);
        else s = taps_at(e, tp, i);
    }
    omp_leave(sc);
    if (s != NNQ_OK) return s;
    for (int i = 0; i < p->n_outputs; i++) {
        const nnq_tensor *v = &e->vals[p->outputs[i]];
        nnq_tensor *o = &e->outs[i];
        if (p->t[p->outputs[i]].onnx_dtype == v->dtype) {
            *o = *v;
            o->owns = false;
            continue;
        }
        const uint8_t *src = v->data;
        int8_t *dst = o->data;
        for (int64_t k = 0; k < nnq_tensor_numel(v); k++) dst[k] = (int8_t)(src[k] - 128);
    }
    return NNQ_OK;
}


/* ---- split runs (see the top of the file) ---- */

/* Whether every operator keeps images apart, so sub-batches may run
 * separately: INT mode, no float fallback (its op could mix images), and
 * every input, output and computed tensor batched. */
static bool splittable(const nnq_iexec *e) {
    const nnq_iprog *p = e->p;
    if (e->mode != NNQ_ENGINE_INT) return false;
    for (int i = 0; i < p->n_inputs; i++)
        if (!p->t[p->inputs[i]].batched) return false;
    for (int i = 0; i < p->n_outputs; i++)
        if (!p->t[p->outputs[i]].batched) return false;
    for (int i = 0; i < p->n_ops; i++) {
        if (p->ops[i].kind == IP_FLOAT) return false;
        for (int k = 0; k < p->ops[i].n_out; k++)
            if (p->ops[i].out[k] >= 0 && !p->t[p->ops[i].out[k]].batched) return false;
    }
    return true;
}

static bool use_split(nnq_iexec *e, int64_t batch) {
    if (batch < 2 || (e->threads < 2 && batch <= SPLIT_CHUNK)) return false;
    if (e->splittable < 0) e->splittable = splittable(e);
    return e->splittable;
}

/* Images [b0, b0 + n) of the batched tensor x, as a view. */
static nnq_tensor batch_view(const nnq_tensor *x, int64_t b0, int64_t n) {
    nnq_tensor v = *x;
    const int64_t per = nnq_tensor_numel(x) / x->dims[0];
    v.dims[0] = n;
    v.data = (char *)x->data + (size_t)(b0 * per) * nnq_dtype_size(x->dtype);
    v.owns = false;
    return v;
}

/* Copy images [0, n) of src into images [b0, b0 + n) of dst. */
static void batch_store(nnq_tensor *dst, const nnq_tensor *src, int64_t b0, int64_t n) {
    const size_t bytes = (size_t)(nnq_tensor_numel(src) / src->dims[0] * n) * nnq_dtype_size(src->dtype);
    memcpy((char *)dst->data + (size_t)b0 * (bytes / (size_t)n), src->data, bytes);
}

static nnq_status split_prepare(nnq_iexec *e, int nw, int64_t batch) {
    const nnq_iprog *p = e->p;
    if (e->n_sub < nw) {
        nnq_iexec **sub = realloc(e->sub, sizeof *sub * (size_t)nw);
        if (!sub) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating sub-executors");
        e->sub = sub;
        omp_scope sc = omp_enter(e);
        nnq_status s = NNQ_OK;
        for (; e->n_sub < nw && s == NNQ_OK; e->n_sub++)
            if ((s = nnq_iexec_create(p, e->mode, 1, &e->sub[e->n_sub])) != NNQ_OK) break;
        omp_leave(sc);
        NNQ_TRY(s);
    }
    /* the outputs at the whole batch, owned: sub-batches are copied in */
    e->planned = false; /* the executor's own buffers are not in use */
    for (int i = 0; i < p->n_outputs; i++) {
        const ip_tensor *pt = &p->t[p->outputs[i]];
        nnq_tensor *o = &e->outs[i];
        if (o->owns && o->dims[0] == batch && o->dtype == pt->onnx_dtype) continue;
        nnq_tensor_release(o);
        int64_t dims[NNQ_MAX_RANK];
        memcpy(dims, pt->dims, sizeof(int64_t) * (size_t)pt->rank);
        dims[0] = batch;
        NNQ_TRY(nnq_tensor_alloc(o, pt->onnx_dtype, pt->rank, dims));
    }
    return NNQ_OK;
}

/* Sub-executor w runs its share of the batch, SPLIT_CHUNK images at a
 * time; its error message (per thread) goes to msg. */
static nnq_status split_worker(nnq_iexec *e, int w, int nw, int64_t batch,
                               const nnq_tensor *inputs, char *msg, size_t msg_size) {
    const nnq_iprog *p = e->p;
    nnq_iexec *sub = e->sub[w];
    nnq_tensor views[8], *v = p->n_inputs <= 8 ? views : malloc(sizeof *v * (size_t)p->n_inputs);
    nnq_status s = v ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory splitting the batch");
    const int64_t lo = batch * w / nw, hi = batch * (w + 1) / nw;
    for (int64_t b0 = lo; b0 < hi && s == NNQ_OK; b0 += SPLIT_CHUNK) {
        const int64_t n = hi - b0 < SPLIT_CHUNK ? hi - b0 : SPLIT_CHUNK;
        for (int i = 0; i < p->n_inputs; i++) v[i] = batch_view(&inputs[i], b0, n);
        if ((s = run(sub, v, NULL)) != NNQ_OK) break;
        for (int i = 0; i < p->n_outputs; i++) batch_store(&e->outs[i], &sub->outs[i], b0, n);
    }
    if (v != views) free(v);
    if (s != NNQ_OK) snprintf(msg, msg_size, "%s", nnq_last_error());
    return s;
}

static nnq_status run_split(nnq_iexec *e, const nnq_tensor *inputs, int64_t batch) {
    enum { MAX_WORKERS = 64 };
    int nw = (int)(batch < e->threads ? batch : e->threads);
    if (nw > MAX_WORKERS) nw = MAX_WORKERS;
    NNQ_TRY(split_prepare(e, nw, batch));
    nnq_status st[MAX_WORKERS];
    char msg[MAX_WORKERS][256];
    NNQ_PARALLEL_FOR(nw, w, nw,
                     st[w] = split_worker(e, (int)w, nw, batch, inputs, msg[w], sizeof msg[w]););
    for (int w = 0; w < nw; w++)
        if (st[w] != NNQ_OK) return nnq_fail(st[w], "%s", msg[w]);
    e->last_split = nw;
    return NNQ_OK;
}

nnq_status nnq_iexec_run(nnq_iexec *e, const nnq_tensor *inputs) {
    int64_t batch = -1;
    for (int i = 0; i < e->p->n_inputs; i++) NNQ_TRY(check_input(e, i, &inputs[i], &batch));
    e->last_split = 0;
    if (use_split(e, batch)) return run_split(e, inputs, batch);
    return run(e, inputs, NULL);
}

int nnq_iexec_last_split(const nnq_iexec *e) { return e->last_split; }

/* ---- intermediate tensors ---- */

int nnq_iprog_find_tensor(const nnq_iprog *p, const char *name) {
    for (int t = 0; name && t < p->n_tensors; t++)
        if (p->t[t].name && strcmp(p->t[t].name, name) == 0) return t;
    return -1;
}

bool nnq_iprog_node_in_float(const nnq_iprog *p, const char *node) {
    for (int i = 0; node && i < p->n_ops; i++)
        if (p->ops[i].kind == IP_FLOAT && p->ops[i].name && strcmp(p->ops[i].name, node) == 0)
            return true;
    return false;
}

/* The operator after which tensor t holds its value: the writer of its
 * base, -1 for a graph input (or a view of one). */
static int writer_of(const nnq_iprog *p, int t) {
    const int b = ip_base(p, t);
    for (int i = 0; i < p->n_ops; i++)
        for (int k = 0; k < p->ops[i].n_out; k++)
            if (p->ops[i].out[k] == b) return i;
    return -1;
}

nnq_status nnq_iexec_run_collect(nnq_iexec *e, const nnq_tensor *inputs, int n,
                                 const char *const *names, nnq_tensor *outs) {
    if (n < 0) return nnq_fail(NNQ_ERR_INVALID, "negative tensor count %d", n);
    for (int k = 0; k < n; k++) memset(&outs[k], 0, sizeof outs[k]);
    int *idx = malloc(sizeof(int) * 2 * (size_t)(n ? n : 1));
    if (!idx) return nnq_fail(NNQ_ERR_NOMEM, "out of memory collecting %d tensors", n);
    nnq_status s = NNQ_OK;
    for (int k = 0; k < n && s == NNQ_OK; k++) {
        idx[k] = nnq_iprog_find_tensor(e->p, names[k]);
        if (idx[k] < 0)
            s = nnq_fail(NNQ_ERR_INVALID, "the integer program has no tensor '%s'",
                         names[k] ? names[k] : "(null)");
        else
            idx[n + k] = writer_of(e->p, idx[k]);
    }
    const taps tp = {n, idx, idx + n, outs};
    e->last_split = 0;
    if (s == NNQ_OK) s = run(e, inputs, &tp);
    free(idx);
    if (s != NNQ_OK)
        for (int k = 0; k < n; k++) nnq_tensor_release(&outs[k]);
    return s;
}

const nnq_tensor *nnq_iexec_output(const nnq_iexec *e, int i) {
    if (i < 0 || i >= e->p->n_outputs) return NULL;
    return &e->outs[i];
}
