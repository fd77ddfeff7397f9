/* Finite-difference gradient checks for one op (header-only, for tests).
 *
 * For an op, a node (its attributes) and input tensors, gradcheck_run:
 *   1. clones the inputs (ops such as BatchNormalization in training mode
 *      update in[3]/in[4] in place; the caller's tensors stay untouched),
 *   2. runs forward (a->training as asked, scratch and saved buffers sized
 *      by the op), draws a random upstream gradient R_j per float output
 *      and defines L = sum_j sum(out_j * R_j), accumulated in double,
 *   3. runs backward into in_grad buffers PRE-FILLED with a known pattern
 *      and subtracts it afterwards, so an op that overwrites instead of
 *      accumulating (+=) fails the check; inputs not checked get NULL,
 *   4. for each checked input, compares the analytic dL/dx_i with the
 *      central difference (L(x_i + h) - L(x_i - h)) / 2h at up to
 *      `samples` elements (all if fewer; the first and last always),
 *      h = eps * RMS(input), so the step scales with the data.
 *
 * Error per element: |analytic - numeric| / max(|analytic|, |numeric|,
 * floor), floor = 0.1 * RMS of the analytic gradient of that input: a
 * relative error where the gradient is large, and an error relative to
 * the gradient's typical size where it is near zero (where float rounding
 * in the forward dominates the difference quotient).
 *
 * Usage:
 *   gradcheck_spec s = gradcheck_defaults("Conv", &node, 3, in);
 *   s.threads = 2;
 *   gradcheck_expect("conv strided", &s, 1e-3);   // CHECKs and prints
 */
#ifndef NNQ_TESTS_GRADCHECK_H
#define NNQ_TESTS_GRADCHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/tensor.h"
#include "ir/graph.h"
#include "ops/op.h"

#define GRADCHECK_MAX_IO 8

typedef struct gradcheck_spec {
    const char *op;                  /* op type, looked up with nnq_op_find */
    const nnq_node *node;            /* attributes; op_type need not be set */
    int n_in;
    const nnq_tensor *const *in;     /* in[i] NULL: omitted optional input */
    int n_out;                       /* outputs to allocate (default 1) */
    const bool *wrt;                 /* per input: check its gradient; NULL:
                                        every float input (non-float never) */
    bool training;                   /* a->training for forward and backward */
    int threads;                     /* default 1 */
    int opset;                       /* default 18 */
    double eps;                      /* step relative to the input's RMS; default 1e-2 */
    int samples;                     /* elements checked per input; default 200 */
    uint32_t seed;                   /* R and the sampled elements */
} gradcheck_spec;

typedef struct gradcheck_report {
    double max_rel[GRADCHECK_MAX_IO];  /* per input; -1 if not checked */
    double worst;                      /* max over inputs */
    int worst_input;
    int64_t worst_index;
    double worst_analytic, worst_numeric;
    int64_t checked;                   /* elements compared in all */
} gradcheck_report;

static inline gradcheck_spec gradcheck_defaults(const char *op, const nnq_node *node, int n_in,
                                                const nnq_tensor *const *in) {
    gradcheck_spec s;
    memset(&s, 0, sizeof s);
    s.op = op;
    s.node = node;
    s.n_in = n_in;
    s.in = in;
    s.n_out = 1;
    s.threads = 1;
    s.opset = 18;
    s.eps = 1e-2;
    s.samples = 200;
    s.seed = 1u;
    return s;
}

static inline uint32_t gradcheck_next_(uint32_t *st) {
    uint32_t x = *st ? *st : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *st = x;
    return x;
}

/* Uniform in [-1, 1). */
static inline float gradcheck_uniform_(uint32_t *st) {
    return (float)(gradcheck_next_(st) >> 8) / (float)(1u << 23) - 1.0f;
}

/* Everything one forward/backward evaluation needs. */
typedef struct gradcheck_ctx_ {
    const nnq_op_def *def;
    nnq_op_args a;
    nnq_tensor in[GRADCHECK_MAX_IO];   /* clones of the inputs */
    const nnq_tensor *inp[GRADCHECK_MAX_IO];
    nnq_tensor out[GRADCHECK_MAX_IO];
    nnq_tensor *outp[GRADCHECK_MAX_IO];
    nnq_tensor r[GRADCHECK_MAX_IO];    /* upstream gradients */
    const nnq_tensor *rp[GRADCHECK_MAX_IO];
    nnq_tensor g[GRADCHECK_MAX_IO];    /* input gradients */
    nnq_tensor *gp[GRADCHECK_MAX_IO];
    void *scratch, *saved;
} gradcheck_ctx_;

static inline void gradcheck_ctx_free_(gradcheck_ctx_ *c) {
    for (int i = 0; i < GRADCHECK_MAX_IO; i++) {
        nnq_tensor_release(&c->in[i]);
        nnq_tensor_release(&c->out[i]);
        nnq_tensor_release(&c->r[i]);
        nnq_tensor_release(&c->g[i]);
    }
    free(c->scratch);
    free(c->saved);
    c->scratch = c->saved = NULL;
}

/* Infer + (re)size scratch and saved + forward. */
static inline nnq_status gradcheck_forward_(gradcheck_ctx_ *c) {
    NNQ_TRY(c->def->infer(&c->a));
    for (int i = 0; i < c->a.n_out; i++) {
        nnq_tensor *o = &c->out[i];
        if (!o->data) NNQ_TRY(nnq_tensor_alloc(o, o->dtype, o->rank, o->dims));
    }
    size_t sb = c->def->scratch_size ? c->def->scratch_size(&c->a) : 0;
    size_t vb = c->def->saved_size ? c->def->saved_size(&c->a) : 0;
    if (sb > c->a.scratch_bytes) {
        free(c->scratch);
        c->scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
        if (!c->scratch) return nnq_fail(NNQ_ERR_NOMEM, "gradcheck: scratch");
        c->a.scratch = c->scratch;
        c->a.scratch_bytes = sb;
    }
    if (vb > c->a.saved_bytes) {
        free(c->saved);
        c->saved = aligned_alloc(64, (vb + 63) / 64 * 64);
        if (!c->saved) return nnq_fail(NNQ_ERR_NOMEM, "gradcheck: saved");
        c->a.saved = c->saved;
        c->a.saved_bytes = vb;
    }
    return c->def->forward(&c->a);
}

/* L = sum_j sum(out_j * R_j) in double. */
static inline double gradcheck_loss_(const gradcheck_ctx_ *c) {
    double l = 0;
    for (int j = 0; j < c->a.n_out; j++) {
        if (c->out[j].dtype != NNQ_DT_FLOAT) continue;
        const float *y = nnq_f32(&c->out[j]), *r = nnq_f32(&c->r[j]);
        for (int64_t k = 0; k < nnq_tensor_numel(&c->out[j]); k++) l += (double)y[k] * r[k];
    }
    return l;
}

static inline double gradcheck_rms_(const float *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return n > 0 ? sqrt(s / (double)n) : 0;
}

/* Fill pattern for the pre-filled in_grad buffers. */
static inline float gradcheck_prefill_(int64_t k) { return 0.25f * (float)((k % 7) - 3); }

/* Steps 1-3 of the check: clone the inputs, forward, draw R, backward
 * into pre-filled buffers, leaving the analytic gradients in c->g[i] for
 * the inputs with want[i]. */
static inline nnq_status gradcheck_analytic_(const gradcheck_spec *s, gradcheck_ctx_ *c,
                                             bool *want, uint32_t *rng) {
    nnq_status st;
    memset(c, 0, sizeof *c);
    c->def = nnq_op_find(s->op);
    if (!c->def) return nnq_fail(NNQ_ERR_UNSUPPORTED, "gradcheck: op %s not registered", s->op);
    if (!c->def->backward)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "gradcheck: op %s has no backward", s->op);
    if (s->n_in > GRADCHECK_MAX_IO || s->n_out > GRADCHECK_MAX_IO)
        return nnq_fail(NNQ_ERR_INVALID, "gradcheck: too many inputs or outputs");
    for (int i = 0; i < s->n_in; i++) {
        if (!s->in[i]) continue;
        NNQ_TRY(nnq_tensor_clone(&c->in[i], s->in[i]));
        c->inp[i] = &c->in[i];
    }
    int n_out = s->n_out > 0 ? s->n_out : 1;
    for (int j = 0; j < n_out; j++) c->outp[j] = &c->out[j];
    c->a.node = s->node;
    c->a.opset = s->opset > 0 ? s->opset : 18;
    c->a.n_in = s->n_in;
    c->a.in = c->inp;
    c->a.n_out = n_out;
    c->a.out = c->outp;
    c->a.threads = s->threads > 0 ? s->threads : 1;
    c->a.training = s->training;
    NNQ_TRY(gradcheck_forward_(c));

    /* Upstream gradients R for float outputs. */
    for (int j = 0; j < n_out; j++) {
        if (c->out[j].dtype != NNQ_DT_FLOAT) continue;
        NNQ_TRY(nnq_tensor_alloc(&c->r[j], NNQ_DT_FLOAT, c->out[j].rank, c->out[j].dims));
        for (int64_t k = 0; k < nnq_tensor_numel(&c->r[j]); k++)
            nnq_f32(&c->r[j])[k] = gradcheck_uniform_(rng);
        c->rp[j] = &c->r[j];
    }
    for (int i = 0; i < s->n_in; i++) {
        want[i] = c->inp[i] && c->in[i].dtype == NNQ_DT_FLOAT && (!s->wrt || s->wrt[i]);
        if (!want[i]) continue;
        NNQ_TRY(nnq_tensor_alloc(&c->g[i], NNQ_DT_FLOAT, c->in[i].rank, c->in[i].dims));
        for (int64_t k = 0; k < nnq_tensor_numel(&c->g[i]); k++)
            nnq_f32(&c->g[i])[k] = gradcheck_prefill_(k);
        c->gp[i] = &c->g[i];
    }
    c->a.out_grad = c->rp;
    c->a.in_grad = c->gp;
    st = c->def->backward(&c->a);
    c->a.out_grad = NULL;
    c->a.in_grad = NULL;
    if (st != NNQ_OK) return st;
    for (int i = 0; i < s->n_in; i++)
        if (want[i])
            for (int64_t k = 0; k < nnq_tensor_numel(&c->g[i]); k++)
                nnq_f32(&c->g[i])[k] -= gradcheck_prefill_(k);
    return NNQ_OK;
}

/* Only the analytic gradients: one forward and backward (R drawn from
 * s->seed as in gradcheck_run). grads[i] (s->n_in entries, zeroed by the
 * caller) receives dL/d in[i] for each checked input and stays empty for
 * the others; the caller releases them. For determinism tests. */
static inline nnq_status gradcheck_grads(const gradcheck_spec *s, nnq_tensor *grads) {
    gradcheck_ctx_ c;
    bool want[GRADCHECK_MAX_IO] = {false};
    uint32_t rng = s->seed * 2654435761u + 17u;
    nnq_status st = gradcheck_analytic_(s, &c, want, &rng);
    for (int i = 0; st == NNQ_OK && i < s->n_in; i++)
        if (want[i]) st = nnq_tensor_clone(&grads[i], &c.g[i]);
    gradcheck_ctx_free_(&c);
    return st;
}

static inline nnq_status gradcheck_run(const gradcheck_spec *s, gradcheck_report *rep) {
    gradcheck_ctx_ c;
    nnq_status st = NNQ_OK;
    uint32_t rng = s->seed * 2654435761u + 17u;
    bool want[GRADCHECK_MAX_IO] = {false};
    memset(rep, 0, sizeof *rep);
    for (int i = 0; i < GRADCHECK_MAX_IO; i++) rep->max_rel[i] = -1;
    rep->worst_input = -1;
    if ((st = gradcheck_analytic_(s, &c, want, &rng)) != NNQ_OK) goto fail;

    /* Central differences. */
    int samples = s->samples > 0 ? s->samples : 200;
    double eps = s->eps > 0 ? s->eps : 1e-2;
    for (int i = 0; i < s->n_in; i++) {
        if (!want[i]) continue;
        float *x = nnq_f32(&c.in[i]);
        const float *g = nnq_f32(&c.g[i]);
        int64_t n = nnq_tensor_numel(&c.in[i]);
        double xs = gradcheck_rms_(x, n), gs = gradcheck_rms_(g, n);
        double h = eps * (xs > 1e-3 ? xs : 1e-3);
        double floor = 0.1 * gs > 1e-12 ? 0.1 * gs : 1e-12;
        int64_t count = n <= samples ? n : samples;
        rep->max_rel[i] = 0;
        for (int64_t t = 0; t < count; t++) {
            int64_t k = n <= samples ? t
                        : t == 0   ? 0
                        : t == 1   ? n - 1
                                   : (int64_t)(gradcheck_next_(&rng) % (uint32_t)n);
            float keep = x[k];
            float xp = (float)(keep + h), xm = (float)(keep - h);
            x[k] = xp;
            if ((st = gradcheck_forward_(&c)) != NNQ_OK) goto fail;
            double lp = gradcheck_loss_(&c);
            x[k] = xm;
            if ((st = gradcheck_forward_(&c)) != NNQ_OK) goto fail;
            double lm = gradcheck_loss_(&c);
            x[k] = keep;
            double num = (lp - lm) / ((double)xp - (double)xm); /* the step actually taken */
            double ana = g[k];
            double den = fabs(ana) > fabs(num) ? fabs(ana) : fabs(num);
            if (den < floor) den = floor;
            double rel = fabs(ana - num) / den;
            rep->checked++;
            if (rel > rep->max_rel[i]) rep->max_rel[i] = rel;
            if (rel > rep->worst || rep->worst_input < 0) {
                rep->worst = rel;
                rep->worst_input = i;
                rep->worst_index = k;
                rep->worst_analytic = ana;
                rep->worst_numeric = num;
            }
        }
    }
fail:
    gradcheck_ctx_free_(&c);
    return st;
}

/* Run a check, print "what: max rel err per input", and count a failure
 * (check.h) if any error exceeds tol or the op fails. Returns rep.worst
 * (INFINITY on failure to run). */
static inline double gradcheck_expect(const char *what, const gradcheck_spec *s, double tol) {
    gradcheck_report rep;
    nnq_status st = gradcheck_run(s, &rep);
    if (st != NNQ_OK) {
        fprintf(stderr, "%s: gradcheck failed to run: %s\n", what, nnq_last_error());
        check_failures_++;
        return INFINITY;
    }
    bool ok = rep.worst <= tol && rep.checked > 0;
    fprintf(stderr, "%s %-44s max rel err", ok ? "  ok  " : "FAILED", what);
    for (int i = 0; i < s->n_in; i++)
        if (rep.max_rel[i] >= 0) fprintf(stderr, "  in%d %.1e", i, rep.max_rel[i]);
    fprintf(stderr, "\n");
    if (!ok) {
        fprintf(stderr, "        worst: input %d element %lld analytic %.8g numeric %.8g (tol %g)\n",
                rep.worst_input, (long long)rep.worst_index, rep.worst_analytic,
                rep.worst_numeric, tol);
        check_failures_++;
    }
    return rep.worst;
}

#endif
