/* SGD, Adam, AdamW; one pass over each parameter per step. */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_ALIGN 64
/* Below this many elements a parallel loop costs more than it saves. */
#define PARALLEL_MIN 32768

nnq_optim_config nnq_optim_defaults(nnq_optim_kind kind) {
    nnq_optim_config c = {.kind = kind, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind == NNQ_OPTIM_SGD) {
        c.momentum = 0.9f;
        c.nesterov = true;
    }
    return c;
}

const char *nnq_optim_name(nnq_optim_kind kind) {
    switch (kind) {
    case NNQ_OPTIM_SGD: return "sgd";
    case NNQ_OPTIM_ADAM: return "adam";
    case NNQ_OPTIM_ADAMW: return "adamw";
    }
    return "?";
}

nnq_status nnq_optim_init(nnq_optim *o, const nnq_optim_config *cfg, const nnq_params *ps) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    if (cfg->kind == NNQ_OPTIM_SGD && cfg->nesterov && cfg->momentum <= 0)
        return nnq_fail(NNQ_ERR_INVALID, "Nesterov momentum needs momentum > 0");
    if (cfg->momentum < 0 || cfg->weight_decay < 0 || cfg->beta1 < 0 || cfg->beta1 >= 1 ||
        cfg->beta2 < 0 || cfg->beta2 >= 1 || cfg->eps < 0)
        return nnq_fail(NNQ_ERR_INVALID,
                        "optimizer settings out of range (momentum %g, weight decay %g, "
                        "betas %g/%g, eps %g)",
                        cfg->momentum, cfg->weight_decay, cfg->beta1, cfg->beta2, cfg->eps);
    o->n_state = cfg->kind == NNQ_OPTIM_SGD ? (cfg->momentum > 0 ? 1 : 0) : 2;
    o->total = ps->total;
    for (int i = 0; i < o->n_state; i++) {
        size_t bytes = (o->total ? o->total : 16) * sizeof(float);
        o->state[i] = aligned_alloc(STATE_ALIGN, bytes);
        if (!o->state[i]) {
            nnq_optim_free(o);
            return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate optimizer state for %zu values",
                            o->total);
        }
        memset(o->state[i], 0, bytes);
    }
    return NNQ_OK;
}

void nnq_optim_free(nnq_optim *o) {
    for (int i = 0; i < 2; i++) free(o->state[i]);
    memset(o, 0, sizeof *o);
}

static void sgd_update(const nnq_optim_config *c, float *p, const float *g, float *buf,
                       int64_t n, float lr, float wd) {
    const float mom = c->momentum;
    if (!buf) {
        #pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
    if (c->nesterov) {
        #pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float b = mom * buf[i] + d;
            buf[i] = b;
            p[i] -= lr * (d + mom * b);
        }
    } else {
        #pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            float b = mom * buf[i] + (g[i] + wd * p[i]);
            buf[i] = b;
            p[i] -= lr * b;
        }
    }
}

/* step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t). */
static void adam_update(const nnq_optim_config *c, float *p, const float *g, float *m, float *v,
                        int64_t n, float step_size, float bc2_sqrt, float l2, float decay) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    #pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float d = g[i] + l2 * pi;
        float mi = b1 * m[i] + (1 - b1) * d;
        float vi = b2 * v[i] + (1 - b2) * d * d;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

void nnq_optim_step(nnq_optim *o, nnq_params *ps, float lr) {
    const nnq_optim_config *c = &o->cfg;
    o->steps++;
    double bc1 = 1.0 - pow((double)c->beta1, (double)o->steps);
    double bc2 = 1.0 - pow((double)c->beta2, (double)o->steps);
    for (int i = 0; i < ps->n; i++) {
        nnq_param *p = &ps->p[i];
        const nnq_param_group *gr = &ps->groups[p->group];
        float plr = lr * gr->lr_mult, wd = gr->weight_decay ? c->weight_decay : 0.0f;
        switch (c->kind) {
        case NNQ_OPTIM_SGD:
            sgd_update(c, p->data, p->grad, o->n_state ? o->state[0] + p->offset : NULL,
                       p->numel, plr, wd);
            break;
        case NNQ_OPTIM_ADAM:
        case NNQ_OPTIM_ADAMW: {
            bool decoupled = c->kind == NNQ_OPTIM_ADAMW;
            adam_update(c, p->data, p->grad, o->state[0] + p->offset, o->state[1] + p->offset,
                        p->numel, (float)(plr / bc1), (float)sqrt(bc2),
                        decoupled ? 0.0f : wd, decoupled ? 1.0f - plr * wd : 1.0f);
            break;
        }
        }
    }
}

double nnq_grad_norm(const nnq_params *ps) {
    double sq = 0;
    for (int i = 0; i < ps->n; i++) {
        const float *g = ps->p[i].grad;
        for (int64_t k = 0; k < ps->p[i].numel; k++) sq += (double)g[k] * g[k];
    }
    return sqrt(sq);
}

double nnq_clip_grad_norm(nnq_params *ps, double max_norm) {
    double norm = nnq_grad_norm(ps);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float f = (float)coef;
        for (int i = 0; i < ps->n; i++) {
            float *g = ps->p[i].grad;
            for (int64_t k = 0; k < ps->p[i].numel; k++) g[k] *= f;
        }
    }
    return norm;
}
