/* AdaRound's per-layer optimiser (adaround_layer.h): soft rounding,
 * reconstruction loss through the layer's op, regulariser, Adam. */
#include "ptq/adaround_layer.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "ops/op.h"
#include "train/rng.h"

/* Below this many elements an elementwise loop stays on one thread. */
#define PAR_MIN 32768
/* Adam's defaults (PyTorch; train/optim.h). */
#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f
/* h(V) this close to 0 or 1 counts as decided (nnq_ada_result.n_soft). */
#define SOFT_MARGIN 0.01f
#define PI 3.14159265358979323846

float nnq_ada_h(float v) {
    float h = (NNQ_ADA_ZETA - NNQ_ADA_GAMMA) / (1.0f + expf(-v)) + NNQ_ADA_GAMMA;
    return h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h);
}

float nnq_ada_v_init(float frac) {
    /* sigmoid(V) = (frac - gamma) / (zeta - gamma), inside (0, 1) for frac in [0, 1] */
    return -logf((NNQ_ADA_ZETA - NNQ_ADA_GAMMA) / (frac - NNQ_ADA_GAMMA) - 1.0f);
}

/* First regularised iteration: the warm start rounded to whole iterations
 * (so 0.2 * 10000 is 2000, not 2000.00003 in float). */
static double warm_end(const nnq_adaround_options *o) {
    return floor((double)o->warm_start * o->iters + 0.5);
}

bool nnq_ada_beta(const nnq_adaround_options *o, int it, float *beta) {
    const double warm = warm_end(o);
    if ((double)it < warm || o->iters <= 0) return false;
    double span = (double)o->iters - warm, rel = span > 0 ? ((double)it - warm) / span : 1.0;
    *beta = (float)(o->beta_end + 0.5 * (o->beta_start - o->beta_end) * (1.0 + cos(PI * rel)));
    return true;
}

void nnq_ada_result_free(nnq_ada_result *r) {
    free(r->w);
    free(r->v);
    r->w = r->v = NULL;
}

/* Everything one layer's optimisation holds. Buffers: [nw] per weight
 * element, [cap * xs] / [cap * ys] per batch. */
typedef struct ada_ctx {
    const nnq_ada_layer *L;
    const nnq_op_def *def;
    int threads;
    int64_t nw, n, xs, ys; /* weight floats, samples, floats per input / target sample */
    int64_t cap;           /* samples per batch */
    int64_t positions;     /* output floats per sample / output channels */
    float *base, *s, *lo, *hi; /* [nw] floor(W/s), scale, grid ends less z */
    float *sig, *wsoft, *dwbuf, *xbuf, *ybuf, *dybuf;
    float *hi_el;          /* [ys] upper clamp of each output element of a sample */
    nnq_tensor xb, wt, y, dy, dw;
    void *scratch;
    size_t scratch_bytes;
    const nnq_tensor *in[3];
    nnq_tensor *out[1];
    const nnq_tensor *out_grad[1];
    nnq_tensor *in_grad[3];
    nnq_op_args a;
} ada_ctx;

static void ctx_free(ada_ctx *c) {
    free(c->base);
    free(c->s);
    free(c->lo);
    free(c->hi);
    free(c->sig);
    free(c->wsoft);
    free(c->dwbuf);
    free(c->xbuf);
    free(c->ybuf);
    free(c->dybuf);
    free(c->hi_el);
    free(c->scratch);
}

static float *alloc_floats(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

/* Shapes, per-element quantizer parameters, buffers, the op call. */
static nnq_status ctx_init(ada_ctx *c, const nnq_ada_layer *L, const nnq_adaround_options *o) {
    const char *name = L->node->name ? L->node->name : L->node->op_type;
    const nnq_quantizer *q = L->q;
    memset(c, 0, sizeof *c);
    c->L = L;
    c->threads = o->threads > 0 ? o->threads : 1;
    c->def = nnq_op_find(L->node->op_type);
    if (!c->def || !c->def->backward)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "AdaRound: layer '%s' is a %s, not a Conv, Gemm or MatMul",
                        name, L->node->op_type);
    if (L->x_slot < 0 || L->x_slot > 1 || L->w_slot < 0 || L->w_slot > 1 || L->x_slot == L->w_slot)
        return nnq_fail(NNQ_ERR_INVALID, "AdaRound: layer '%s': bad input slots", name);
    const nnq_tensor *w = L->w, *x = L->x, *t = L->target;
    if (w->dtype != NNQ_DT_FLOAT || !w->data || x->dtype != NNQ_DT_FLOAT || !x->data ||
        t->dtype != NNQ_DT_FLOAT || !t->data || x->rank < 1 || t->rank < 1)
        return nnq_fail(NNQ_ERR_INVALID, "AdaRound: layer '%s': weight, inputs and targets must be float data",
                        name);
    c->nw = nnq_tensor_numel(w);
    c->n = x->dims[0];
    if (c->n < 1 || t->dims[0] != c->n)
        return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s': %lld cached inputs but %lld targets", name,
                        (long long)x->dims[0], (long long)t->dims[0]);
    c->xs = nnq_tensor_numel(x) / c->n;
    c->ys = nnq_tensor_numel(t) / c->n;
    if (L->w_axis < 0 || L->w_axis >= w->rank || w->dims[L->w_axis] < 1 || c->ys % w->dims[L->w_axis])
        return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s': output channel axis %d does not fit", name,
                        L->w_axis);
    c->positions = c->ys / w->dims[L->w_axis];
    /* The activation's upper clamp per output element (a conv's channel
     * is the outer index of a sample, a Gemm's / MatMul's the inner). */
    const int64_t channels = w->dims[L->w_axis];
    const bool conv = strcmp(L->node->op_type, "Conv") == 0;
    const float hi_all = L->act == NNQ_ADA_ACT_CLIP ? L->act_hi : INFINITY;
    c->hi_el = alloc_floats(c->ys);
    if (!c->hi_el) return nnq_fail(NNQ_ERR_NOMEM, "AdaRound: out of memory for layer '%s'", name);
    for (int64_t i = 0; i < c->ys; i++) {
        const float cap = L->act_hi_ch ? L->act_hi_ch[conv ? i / c->positions : i % channels] : INFINITY;
        c->hi_el[i] = cap < hi_all ? cap : hi_all;
    }

    /* Per weight element: scale and grid of its channel. */
    int64_t inner = 1, nch = q->n;
    if (nch > 1) {
        if (q->axis < 0 || q->axis >= w->rank || w->dims[q->axis] != nch)
            return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s': %lld quantizer channels on axis %d of the weight",
                            name, (long long)nch, q->axis);
        for (int d = q->axis + 1; d < w->rank; d++) inner *= w->dims[d];
    }
    c->cap = o->batch > 0 && o->batch < c->n ? o->batch : c->n;
    c->base = alloc_floats(c->nw);
    c->s = alloc_floats(c->nw);
    c->lo = alloc_floats(c->nw);
    c->hi = alloc_floats(c->nw);
    c->sig = alloc_floats(c->nw);
    c->wsoft = alloc_floats(c->nw);
    c->dwbuf = alloc_floats(c->nw);
    c->xbuf = alloc_floats(c->cap * c->xs);
    c->ybuf = alloc_floats(c->cap * c->ys);
    c->dybuf = alloc_floats(c->cap * c->ys);
    if (!c->base || !c->s || !c->lo || !c->hi || !c->sig || !c->wsoft || !c->dwbuf || !c->xbuf ||
        !c->ybuf || !c->dybuf)
        return nnq_fail(NNQ_ERR_NOMEM, "AdaRound: out of memory for layer '%s'", name);
    const float *wv = nnq_f32(w);
    for (int64_t i = 0; i < c->nw; i++) {
        int64_t ch = nch > 1 ? (i / inner) % nch : 0;
        float s = q->scale[ch], z = (float)q->zero_point[ch];
        float v = wv[i] / s; /* a division, as the quantizer rounds x / s */
        c->s[i] = s;
        c->base[i] = isfinite(v) ? floorf(v) : 0.0f;
        c->lo[i] = (float)q->qmin - z;
        c->hi[i] = (float)q->qmax - z;
    }

    /* The op call: x and weight tensors point at batch buffers per call. */
    c->xb = *x;
    c->wt = *w;
    c->wt.data = c->wsoft;
    c->wt.owns = false;
    c->xb.owns = false;
    c->y.data = c->ybuf;
    c->dy.data = c->dybuf;
    c->dw = *w;
    c->dw.data = c->dwbuf;
    c->dw.owns = false;
    c->in[L->x_slot] = &c->xb;
    c->in[L->w_slot] = &c->wt;
    c->in[2] = L->bias;
    c->out[0] = &c->y;
    c->out_grad[0] = &c->dy;
    c->in_grad[L->w_slot] = &c->dw;
    c->a.node = L->node;
    c->a.opset = L->opset;
    c->a.n_in = L->bias ? 3 : 2;
    c->a.in = c->in;
    c->a.n_out = 1;
    c->a.out = c->out;
    c->a.threads = c->threads;
    c->a.training = true; /* scratch sized for backward too */
    return NNQ_OK;
}

/* Forward on `count` samples at x with weights w: y (shape by infer). */
static nnq_status ctx_forward(ada_ctx *c, const float *x, int64_t count, const float *w) {
    c->xb.dims[0] = count;
    c->xb.data = (void *)x;
    c->wt.data = (void *)w;
    c->a.out_grad = NULL;
    c->a.in_grad = NULL;
    NNQ_TRY(c->def->infer(&c->a));
    if (c->y.dtype != NNQ_DT_FLOAT || nnq_tensor_numel(&c->y) != count * c->ys)
        return nnq_fail(NNQ_ERR_SHAPE, "AdaRound: layer '%s' gives %lld outputs per sample, its targets %lld",
                        c->L->node->name ? c->L->node->name : "?",
                        (long long)(nnq_tensor_numel(&c->y) / (count > 0 ? count : 1)), (long long)c->ys);
    size_t need = c->def->scratch_size ? c->def->scratch_size(&c->a) : 0;
    if (need > c->scratch_bytes) {
        free(c->scratch);
        c->scratch = aligned_alloc(64, (need + 63) / 64 * 64);
        c->scratch_bytes = c->scratch ? need : 0;
        if (!c->scratch) return nnq_fail(NNQ_ERR_NOMEM, "AdaRound: out of memory for scratch");
    }
    c->a.scratch = c->scratch;
    c->a.scratch_bytes = c->scratch_bytes;
    c->y.data = c->ybuf;
    return c->def->forward(&c->a);
}

/* Every supported activation is a clamp to [lo, hi_el[i]] (Relu: [0, inf),
 * none: (-inf, inf), a per-channel cap lowers hi), which passes gradient
 * inside: one branch-free loop each. */
static float act_lo(const nnq_ada_layer *L) {
    return L->act == NNQ_ADA_ACT_NONE ? -INFINITY : (L->act == NNQ_ADA_ACT_RELU ? 0.0f : L->act_lo);
}

/* Mean squared error over all cached samples with weights w. */
static nnq_status ctx_mse(ada_ctx *c, const float *w, double *mse) {
    double acc = 0;
    for (int64_t start = 0; start < c->n; start += c->cap) {
        int64_t count = c->n - start < c->cap ? c->n - start : c->cap;
        NNQ_TRY(ctx_forward(c, nnq_f32(c->L->x) + start * c->xs, count, w));
        const float *y = c->ybuf, *t = nnq_f32(c->L->target) + start * c->ys;
        const int64_t ys = c->ys;
        const float *hi = c->hi_el, lo = act_lo(c->L);
        double sum = 0;
        #pragma omp parallel for num_threads(c->threads) schedule(static) reduction(+ : sum) if (count * ys >= PAR_MIN)
        for (int64_t j = 0; j < count; j++)
            for (int64_t i = 0; i < ys; i++) {
                const float v = y[j * ys + i];
                const float a = v < lo ? lo : (v > hi[i] ? hi[i] : v);
                const double d = (double)a - t[j * ys + i];
                sum += d * d;
            }
        acc += sum;
    }
    *mse = acc / ((double)c->n * (double)c->ys);
    return NNQ_OK;
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* W~ of element i, with sig = sigmoid(V[i]) (kept in c->sig: one expf per
 * element and step). */
static inline float soft_weight(const ada_ctx *c, int64_t i, float sig) {
    float h = sig * (NNQ_ADA_ZETA - NNQ_ADA_GAMMA) + NNQ_ADA_GAMMA;
    float r = c->base[i] + (h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h));
    r = r < c->lo[i] ? c->lo[i] : (r > c->hi[i] ? c->hi[i] : r);
    return c->s[i] * r;
}

/* Random batch of cap distinct samples, perm[0..cap) (partial Fisher-Yates);
 * their inputs are copied to xbuf, targets are read in place. */
static void gather_batch(ada_ctx *c, nnq_rng *rng, int64_t *perm) {
    for (int64_t j = 0; j < c->cap; j++) {
        int64_t k = j + (int64_t)nnq_rng_below(rng, (uint64_t)(c->n - j));
        int64_t tmp = perm[j];
        perm[j] = perm[k];
        perm[k] = tmp;
        memcpy(c->xbuf + j * c->xs, nnq_f32(c->L->x) + perm[j] * c->xs, (size_t)c->xs * sizeof(float));
    }
}

/* One iteration: loss gradient through the op into dW, then V's gradient
 * (reconstruction + regulariser) and its Adam update. */
static nnq_status train_step(ada_ctx *c, const nnq_adaround_options *o, int it, float *v, float *m1,
                             float *m2, nnq_rng *rng, int64_t *perm) {
    gather_batch(c, rng, perm); /* c->wsoft holds W~(V) */
    NNQ_TRY(ctx_forward(c, c->xbuf, c->cap, c->wsoft));
    const float gscale = 2.0f / (float)((double)c->cap * (double)c->positions);
    const int64_t ys = c->ys;
    const float *restrict hi = c->hi_el, lo = act_lo(c->L);
    #pragma omp parallel for num_threads(c->threads) schedule(static) if (c->cap * ys >= PAR_MIN)
    for (int64_t j = 0; j < c->cap; j++) {
        const float *restrict y = c->ybuf + j * ys, *restrict t = nnq_f32(c->L->target) + perm[j] * ys;
        float *restrict dy = c->dybuf + j * ys;
        #pragma omp simd
        for (int64_t i = 0; i < ys; i++) /* branch-free: Relu's mask is a coin flip */
            dy[i] = (float)((y[i] >= lo) & (y[i] <= hi[i])) * gscale * (y[i] - t[i]);
    }
    c->dy = c->y;
    c->dy.data = c->dybuf;
    memset(c->dwbuf, 0, (size_t)c->nw * sizeof(float));
    c->a.out_grad = c->out_grad;
    c->a.in_grad = c->in_grad;
    NNQ_TRY(c->def->backward(&c->a));

    float beta = 0.0f;
    const bool reg = nnq_ada_beta(o, it, &beta);
    const float lambda = o->lambda, lr = o->lr, span = NNQ_ADA_ZETA - NNQ_ADA_GAMMA;
    const int t = it + 1;
    const float bc1 = 1.0f - powf(ADAM_BETA1, (float)t);
    const float bc2 = sqrtf(1.0f - powf(ADAM_BETA2, (float)t));
    #pragma omp parallel for num_threads(c->threads) schedule(static) if (c->nw >= PAR_MIN)
    for (int64_t i = 0; i < c->nw; i++) {
        const float sig = c->sig[i];
        float hr = sig * span + NNQ_ADA_GAMMA, g = 0.0f;
        if (hr > 0.0f && hr < 1.0f) { /* else h is clipped and does not move with V */
            float r = c->base[i] + hr;
            float gh = r >= c->lo[i] && r <= c->hi[i] ? c->dwbuf[i] * c->s[i] : 0.0f;
            if (reg) {
                float u = 2.0f * hr - 1.0f;
                gh -= lambda * beta * powf(fabsf(u), beta - 1.0f) * (u > 0 ? 2.0f : -2.0f);
            }
            g = gh * span * sig * (1.0f - sig);
        }
        m1[i] = ADAM_BETA1 * m1[i] + (1.0f - ADAM_BETA1) * g;
        m2[i] = ADAM_BETA2 * m2[i] + (1.0f - ADAM_BETA2) * g * g;
        v[i] -= lr / bc1 * m1[i] / (sqrtf(m2[i]) / bc2 + ADAM_EPS);
        c->sig[i] = sigmoidf(v[i]); /* for the next step */
        c->wsoft[i] = soft_weight(c, i, c->sig[i]);
    }
    return NNQ_OK;
}

nnq_status nnq_ada_optimize(const nnq_ada_layer *L, const nnq_adaround_options *o,
                            nnq_ada_result *r) {
    nnq_status st;
    ada_ctx c;
    float *m1 = NULL, *m2 = NULL, *wnear = NULL;
    int64_t *perm = NULL;
    memset(r, 0, sizeof *r);
    if ((st = ctx_init(&c, L, o)) != NNQ_OK) goto fail;
    r->w = alloc_floats(c.nw);
    r->v = alloc_floats(c.nw);
    m1 = calloc((size_t)c.nw, sizeof *m1);
    m2 = calloc((size_t)c.nw, sizeof *m2);
    wnear = alloc_floats(c.nw);
    perm = malloc((size_t)c.n * sizeof *perm);
    if (!r->w || !r->v || !m1 || !m2 || !wnear || !perm) {
        st = nnq_fail(NNQ_ERR_NOMEM, "AdaRound: out of memory for layer '%s'", L->node->name);
        goto fail;
    }
    for (int64_t i = 0; i < c.n; i++) perm[i] = i;

    /* V so that h(V) = frac(W/s); nearest rounding as the weight FakeQuant does it. */
    const float *w = nnq_f32(L->w);
    const nnq_quantizer *q = L->q;
    for (int64_t i = 0; i < c.nw; i++) {
        float v = w[i] / c.s[i], frac = isfinite(v) ? v - c.base[i] : 0.0f;
        r->v[i] = nnq_ada_v_init(frac < 0.0f ? 0.0f : (frac >= 1.0f ? 0.0f : frac));
        float z = (float)q->qmin - c.lo[i];
        wnear[i] = nnq_fake_quant_f(w[i], c.s[i], z, (float)q->qmin, (float)q->qmax);
    }

    for (int64_t i = 0; i < c.nw; i++) {
        c.sig[i] = sigmoidf(r->v[i]);
        c.wsoft[i] = soft_weight(&c, i, c.sig[i]);
    }
    nnq_rng rng;
    nnq_rng_seed(&rng, o->seed);
    double t0 = omp_get_wtime();
    for (int it = 0; it < o->iters; it++)
        if ((st = train_step(&c, o, it, r->v, m1, m2, &rng, perm)) != NNQ_OK) goto fail;
    r->seconds = omp_get_wtime() - t0;

    for (int64_t i = 0; i < c.nw; i++) {
        float x = c.base[i] + (r->v[i] >= 0.0f ? 1.0f : 0.0f);
        x = x < c.lo[i] ? c.lo[i] : (x > c.hi[i] ? c.hi[i] : x);
        r->w[i] = c.s[i] * x;
        r->n_changed += r->w[i] != wnear[i];
        float h = nnq_ada_h(r->v[i]);
        r->n_soft += h > SOFT_MARGIN && h < 1.0f - SOFT_MARGIN;
    }
    if ((st = ctx_mse(&c, wnear, &r->mse_nearest)) != NNQ_OK) goto fail;
    if ((st = ctx_mse(&c, r->w, &r->mse_ada)) != NNQ_OK) goto fail;
    free(m1);
    free(m2);
    free(wnear);
    free(perm);
    ctx_free(&c);
    return NNQ_OK;
fail:
    free(m1);
    free(m2);
    free(wnear);
    free(perm);
    ctx_free(&c);
    nnq_ada_result_free(r);
    return st;
}
