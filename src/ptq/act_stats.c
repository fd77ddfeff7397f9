/* Per-channel Gaussian statistics propagated through a float graph from
 * BatchNorm statistics (rules in act_stats.h). */
#include "ptq/act_stats.h"
#include "ptq/float_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ops/op.h"

/* ---- moments of functions of a normal variable ---- */

static double std_pdf(double z) { return 0.3989422804014327 * exp(-0.5 * z * z); }
static double std_cdf(double z) { return 0.5 * erfc(-z / 1.4142135623730951); }

/* E[Y], E[Y^2] for Y = clip(Z, a, b), Z ~ N(0, 1), a < b (either infinite).
 * Inside: int z phi = phi(a) - phi(b), int z^2 phi = [Phi - z phi]_a^b. */
static void std_clip_moments(double a, double b, double *m1, double *m2) {
    const double Pa = isinf(a) ? (a < 0 ? 0.0 : 1.0) : std_cdf(a);
    const double Pb = isinf(b) ? (b < 0 ? 0.0 : 1.0) : std_cdf(b);
    const double pa = isinf(a) ? 0.0 : std_pdf(a), pb = isinf(b) ? 0.0 : std_pdf(b);
    const double apa = isinf(a) ? 0.0 : a * pa, bpb = isinf(b) ? 0.0 : b * pb;
    double e1 = pa - pb, e2 = (Pb - Pa) + apa - bpb;
    if (!isinf(a)) {
        e1 += a * Pa;
        e2 += a * a * Pa;
    }
    if (!isinf(b)) {
        e1 += b * (1.0 - Pb);
        e2 += b * b * (1.0 - Pb);
    }
    *m1 = e1;
    *m2 = e2;
}

void nnq_normal_clip_moments(double mu, double sigma, double lo, double hi, double *mean,
                             double *var) {
    if (!(sigma > 0)) { /* a point mass */
        const double y = mu < lo ? lo : (mu > hi ? hi : mu);
        *mean = y;
        *var = 0;
        return;
    }
    /* Centred on mu, in units of sigma: no cancellation when |mu| >> sigma. */
    double m1, m2;
    std_clip_moments((lo - mu) / sigma, (hi - mu) / sigma, &m1, &m2);
    const double v = m2 - m1 * m1;
    *mean = mu + sigma * m1;
    *var = v > 0 ? sigma * sigma * v : 0;
}

void nnq_normal_relu_moments(double mu, double sigma, double *mean, double *var) {
    nnq_normal_clip_moments(mu, sigma, 0.0, INFINITY, mean, var);
}

#define QUAD_HALF_WIDTH 8.0
#define QUAD_PANELS 1600 /* even */

void nnq_normal_fn_moments(nnq_scalar_fn f, const void *ctx, double mu, double sigma,
                           double *mean, double *var) {
    if (!(sigma > 0)) {
        *mean = f(mu, ctx);
        *var = 0;
        return;
    }
    /* Simpson in z = (x - mu) / sigma; phi(z) by a multiplicative
     * recurrence: phi(z+h)/phi(z) = exp(-z h - h^2/2), whose own ratio is
     * exp(-h^2). First pass: the mean; second: the centred variance. */
    const double h = 2 * QUAD_HALF_WIDTH / QUAD_PANELS, z0 = -QUAD_HALF_WIDTH;
    const double rr = exp(-h * h);
    double s1 = 0;
    for (int pass = 0; pass < 2; pass++) {
        double e = std_pdf(z0), r = exp(-z0 * h - 0.5 * h * h), acc = 0;
        for (int k = 0; k <= QUAD_PANELS; k++) {
            const double w = (k == 0 || k == QUAD_PANELS) ? 1.0 : (k % 2 ? 4.0 : 2.0);
            const double y = f(mu + sigma * (z0 + k * h), ctx);
            const double t = pass == 0 ? y : (y - s1) * (y - s1);
            acc += w * e * t;
            e *= r;
            r *= rr;
        }
        acc *= h / 3;
        if (pass == 0) s1 = acc;
        else *var = acc > 0 ? acc : 0;
    }
    *mean = s1;
}

/* ---- elementwise activations ---- */

typedef struct act_fn {
    double alpha, beta; /* LeakyRelu / PRelu slope, HardSigmoid */
    double lo, hi;      /* Clip */
    int kind;
    int per_channel;    /* what the per-channel array sets: PC_SLOPE, PC_HI, PC_LO */
} act_fn;

enum { PC_SLOPE, PC_HI, PC_LO };

enum { ACT_RELU, ACT_CLIP, ACT_LEAKY, ACT_HSWISH, ACT_HSIGMOID, ACT_SIGMOID, ACT_TANH };

static double act_eval(double x, const void *ctx) {
    const act_fn *a = ctx;
    switch (a->kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_CLIP: return x < a->lo ? a->lo : (x > a->hi ? a->hi : x);
    case ACT_LEAKY: return x > 0 ? x : a->alpha * x;
    case ACT_HSWISH: {
        double t = x / 6 + 0.5;
        return x * (t < 0 ? 0 : (t > 1 ? 1 : t));
    }
    case ACT_HSIGMOID: {
        double t = a->alpha * x + a->beta;
        return t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    case ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: return tanh(x);
    }
}

static void act_moments(const act_fn *a, double mu, double sigma, double *mean, double *var) {
    if (a->kind == ACT_RELU) nnq_normal_relu_moments(mu, sigma, mean, var);
    else if (a->kind == ACT_CLIP) nnq_normal_clip_moments(mu, sigma, a->lo, a->hi, mean, var);
    else nnq_normal_fn_moments(act_eval, a, mu, sigma, mean, var);
}

/* Image of [lo, hi] under the activation: every f here is monotone on
 * each side of 0 and of -1.5 (HardSwish's minimum), so the extremes are
 * among the ends and those points. */
static void act_image(const act_fn *a, double lo, double hi, double *out_lo, double *out_hi) {
    const double pts[4] = {lo, hi, 0.0, -1.5};
    double mn = INFINITY, mx = -INFINITY;
    for (int k = 0; k < 4; k++) {
        if (pts[k] < lo || pts[k] > hi) continue;
        const double y = act_eval(pts[k], a);
        mn = y < mn ? y : mn;
        mx = y > mx ? y : mx;
    }
    *out_lo = mn;
    *out_hi = mx;
}

/* ---- graph propagation ---- */

typedef struct prop {
    const nnq_graph *g;
    const nnq_bn_stats *st;
    nnq_tensor *shapes; /* [n_values] inferred */
    nnq_vstat *v;
} prop;

static nnq_status vstat_alloc(nnq_vstat *s, int channels) {
    s->mean = calloc((size_t)channels * 4, sizeof(double));
    if (!s->mean) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for activation statistics");
    s->channels = channels;
    s->var = s->mean + channels;
    s->lo = s->var + channels;
    s->hi = s->lo + channels;
    return NNQ_OK;
}

static void vstat_release(nnq_vstat *s) {
    free(s->mean);
    memset(s, 0, sizeof *s);
}

static const nnq_vstat *known(const prop *p, int v) {
    return v >= 0 && v < p->g->n_values && p->v[v].channels > 0 ? &p->v[v] : NULL;
}

/* Channels of value v (axis 1), or 0 if its shape does not say. */
static int value_channels(const prop *p, int v) {
    const nnq_tensor *t = &p->shapes[v];
    return t->rank >= 2 && t->dims[1] > 0 && t->dims[1] <= INT32_MAX / 8 ? (int)t->dims[1] : 0;
}

/* Elements per channel per sample (dims after axis 1). */
static int64_t value_inner(const prop *p, int v) {
    const nnq_tensor *t = &p->shapes[v];
    int64_t n = 1;
    for (int k = 2; k < t->rank; k++) n *= t->dims[k];
    return n;
}

static const float *const_data(const nnq_graph *g, int v, int64_t *n) {
    if (v < 0 || !g->values[v].t.data || g->values[v].t.dtype != NNQ_DT_FLOAT) return NULL;
    *n = nnq_tensor_numel(&g->values[v].t);
    return nnq_f32(&g->values[v].t);
}

static bool const_scalar(const nnq_graph *g, int v, double *out) {
    int64_t n;
    const float *d = const_data(g, v, &n);
    if (!d || n != 1) return false;
    *out = d[0];
    return true;
}

/* A FakeQuant's float input (weights are read at their float value). */
static int through_fake_quant(const nnq_graph *g, int v) {
    if (v < 0 || g->values[v].producer < 0) return v;
    const nnq_node *nd = &g->nodes[g->values[v].producer];
    if (nd->domain && strcmp(nd->domain, NNQ_DOMAIN) == 0 && strcmp(nd->op_type, "FakeQuant") == 0)
        return nd->inputs[0];
    return v;
}

static nnq_status set_gaussian(nnq_vstat *o, int c, double mean, double var) {
    const double sd = sqrt(var > 0 ? var : 0);
    o->mean[c] = mean;
    o->var[c] = var > 0 ? var : 0;
    o->lo[c] = mean - NNQ_BN_RANGE_ALPHA * sd;
    o->hi[c] = mean + NNQ_BN_RANGE_ALPHA * sd;
    return NNQ_OK;
}

static nnq_status from_bn(nnq_vstat *o, int channels, const float *gamma, const float *beta) {
    NNQ_TRY(vstat_alloc(o, channels));
    for (int c = 0; c < channels; c++)
        set_gaussian(o, c, beta[c], (double)gamma[c] * gamma[c]);
    return NNQ_OK;
}

static nnq_status copy_stat(nnq_vstat *o, const nnq_vstat *in) {
    NNQ_TRY(vstat_alloc(o, in->channels));
    memcpy(o->mean, in->mean, sizeof(double) * 4 * (size_t)in->channels);
    return NNQ_OK;
}

static nnq_status do_activation(nnq_vstat *o, const nnq_vstat *in, const act_fn *a,
                                const float *slope, int64_t n_slope) {
    NNQ_TRY(vstat_alloc(o, in->channels));
    for (int c = 0; c < in->channels; c++) {
        act_fn ac = *a;
        const double v = slope ? slope[n_slope == 1 ? 0 : c] : 0;
        if (slope && a->per_channel == PC_SLOPE) ac.alpha = v;
        if (slope && a->per_channel == PC_HI) ac.hi = v;
        if (slope && a->per_channel == PC_LO) ac.lo = v;
        act_moments(&ac, in->mean[c], sqrt(in->var[c]), &o->mean[c], &o->var[c]);
        act_image(&ac, in->lo[c], in->hi[c], &o->lo[c], &o->hi[c]);
    }
    return NNQ_OK;
}

/* The activation a node computes; false if it is none nnq models. */
static bool node_activation(const prop *p, const nnq_node *nd, act_fn *a, const float **slope,
                            int64_t *n_slope) {
    const char *op = nd->op_type;
    memset(a, 0, sizeof *a);
    *slope = NULL;
    if (strcmp(op, "Relu") == 0) {
        a->kind = ACT_RELU;
    } else if (strcmp(op, "Clip") == 0) {
        a->kind = ACT_CLIP;
        a->lo = -INFINITY;
        a->hi = INFINITY;
        double b;
        if (nd->n_inputs > 1 && nd->inputs[1] >= 0) {
            if (!const_scalar(p->g, nd->inputs[1], &b)) return false;
            a->lo = b;
        }
        if (nd->n_inputs > 2 && nd->inputs[2] >= 0) {
            if (!const_scalar(p->g, nd->inputs[2], &b)) return false;
            a->hi = b;
        }
        /* Before opset 11 the bounds were attributes. */
        if (nnq_node_attr(nd, "min")) a->lo = nnq_node_attr_float(nd, "min", 0);
        if (nnq_node_attr(nd, "max")) a->hi = nnq_node_attr_float(nd, "max", 0);
        if (!(a->lo <= a->hi)) return false;
    } else if ((strcmp(op, "Min") == 0 || strcmp(op, "Max") == 0) && nd->n_inputs == 2) {
        /* Min / Max with a constant bound (per channel or scalar), e.g. the
         * per-channel cap CLE puts after a Relu that was a ReLU6. */
        a->kind = ACT_CLIP;
        a->lo = -INFINITY;
        a->hi = INFINITY;
        a->per_channel = op[1] == 'i' ? PC_HI : PC_LO;
        const int bound = nd->inputs[1];
        const int channels = value_channels(p, nd->outputs[0]);
        if (channels <= 0) return false;
        *slope = const_data(p->g, bound, n_slope);
        if (!*slope || (*n_slope != 1 &&
                        !nnq_flayer_is_channel_cap(p->g, bound, channels, p->shapes[nd->outputs[0]].rank)))
            return false;
    } else if (strcmp(op, "LeakyRelu") == 0) {
        a->kind = ACT_LEAKY;
        a->alpha = nnq_node_attr_float(nd, "alpha", 0.01f);
    } else if (strcmp(op, "PRelu") == 0) {
        a->kind = ACT_LEAKY;
        *slope = nd->n_inputs > 1 ? const_data(p->g, nd->inputs[1], n_slope) : NULL;
        if (!*slope) return false;
    } else if (strcmp(op, "HardSwish") == 0) {
        a->kind = ACT_HSWISH;
    } else if (strcmp(op, "HardSigmoid") == 0) {
        a->kind = ACT_HSIGMOID;
        a->alpha = nnq_node_attr_float(nd, "alpha", 0.2f);
        a->beta = nnq_node_attr_float(nd, "beta", 0.5f);
    } else if (strcmp(op, "Sigmoid") == 0) {
        a->kind = ACT_SIGMOID;
    } else if (strcmp(op, "Tanh") == 0) {
        a->kind = ACT_TANH;
    } else {
        return false;
    }
    return true;
}

/* Conv / Gemm / MatMul from its input's statistics. */
static nnq_status do_linear(const prop *p, const nnq_node *nd, nnq_vstat *o) {
    const nnq_graph *g = p->g;
    const nnq_vstat *in = known(p, nd->inputs[0]);
    const int wv = through_fake_quant(g, nd->inputs[1]);
    const int bv = nd->n_inputs > 2 ? through_fake_quant(g, nd->inputs[2]) : -1;
    int64_t nw, nb = 0;
    const float *w = const_data(g, wv, &nw);
    const float *b = bv >= 0 ? const_data(g, bv, &nb) : NULL;
    if (!in || !w || (bv >= 0 && !b)) return NNQ_OK;
    const nnq_tensor *wt = &g->values[wv].t;
    const int out_ch = value_channels(p, nd->outputs[0]);
    if (out_ch <= 0) return NNQ_OK;
    int64_t cin, taps = 1, groups = 1, o_stride, i_stride;
    double alpha = 1, beta = 1;
    if (strcmp(nd->op_type, "Conv") == 0) {
        groups = nnq_node_attr_int(nd, "group", 1);
        if (wt->rank < 3 || wt->dims[0] != out_ch || groups <= 0 || out_ch % groups) return NNQ_OK;
        cin = wt->dims[1];
        for (int k = 2; k < wt->rank; k++) taps *= wt->dims[k];
        if (cin * groups != in->channels) return NNQ_OK;
        o_stride = cin * taps;
        i_stride = taps;
    } else {
        /* y = alpha x W + beta C with x [N, K]: W [K, M], or [M, K] with transB. */
        const bool gemm = strcmp(nd->op_type, "Gemm") == 0;
        if (p->shapes[nd->inputs[0]].rank != 2 || wt->rank != 2) return NNQ_OK;
        if (gemm && nnq_node_attr_int(nd, "transA", 0)) return NNQ_OK;
        const bool tb = gemm && nnq_node_attr_int(nd, "transB", 0);
        if (gemm) {
            alpha = nnq_node_attr_float(nd, "alpha", 1.0f);
            beta = nnq_node_attr_float(nd, "beta", 1.0f);
        }
        cin = tb ? wt->dims[1] : wt->dims[0];
        if ((tb ? wt->dims[0] : wt->dims[1]) != out_ch || cin != in->channels) return NNQ_OK;
        o_stride = tb ? cin : 1;
        i_stride = tb ? 1 : out_ch;
    }
    if (b && nb != 1 && nb != out_ch) return NNQ_OK;
    NNQ_TRY(vstat_alloc(o, out_ch));
    const int64_t per_group = out_ch / groups;
    for (int64_t oc = 0; oc < out_ch; oc++) {
        const int64_t c0 = oc / per_group * cin;
        double m = 0, v = 0;
        for (int64_t i = 0; i < cin; i++) {
            const float *wi = w + oc * o_stride + i * i_stride;
            double s1 = 0, s2 = 0;
            for (int64_t t = 0; t < taps; t++) {
                s1 += wi[t];
                s2 += (double)wi[t] * wi[t];
            }
            m += s1 * in->mean[c0 + i];
            v += s2 * in->var[c0 + i];
        }
        m = alpha * m + (b ? beta * b[nb == 1 ? 0 : oc] : 0);
        set_gaussian(o, (int)oc, m, alpha * alpha * v);
    }
    return NNQ_OK;
}

/* Add / Sub / Mul / Div: two varying inputs (Add only), or one with a
 * constant scalar. */
static nnq_status do_binary(const prop *p, const nnq_node *nd, nnq_vstat *o) {
    const char *op = nd->op_type;
    const nnq_vstat *a = known(p, nd->inputs[0]), *b = known(p, nd->inputs[1]);
    double k;
    if (a && b) {
        if (strcmp(op, "Add") != 0 || a->channels != b->channels) return NNQ_OK;
        NNQ_TRY(vstat_alloc(o, a->channels));
        for (int c = 0; c < a->channels; c++) {
            set_gaussian(o, c, a->mean[c] + b->mean[c], a->var[c] + b->var[c]);
            const double lo = a->lo[c] + b->lo[c], hi = a->hi[c] + b->hi[c];
            if (o->lo[c] < lo) o->lo[c] = lo;
            if (o->hi[c] > hi) o->hi[c] = hi;
        }
        return NNQ_OK;
    }
    const bool left = a != NULL; /* the varying input is the first */
    const nnq_vstat *x = left ? a : b;
    if (!x || !const_scalar(p->g, nd->inputs[left ? 1 : 0], &k)) return NNQ_OK;
    double scale = 1, shift = 0;
    if (strcmp(op, "Add") == 0) shift = k;
    else if (strcmp(op, "Sub") == 0) {
        shift = left ? -k : k;
        scale = left ? 1 : -1;
    } else if (strcmp(op, "Mul") == 0) scale = k;
    else if (strcmp(op, "Div") == 0 && left && k != 0) scale = 1 / k;
    else return NNQ_OK;
    NNQ_TRY(vstat_alloc(o, x->channels));
    for (int c = 0; c < x->channels; c++) {
        o->mean[c] = scale * x->mean[c] + shift;
        o->var[c] = scale * scale * x->var[c];
        const double l = scale * x->lo[c] + shift, h = scale * x->hi[c] + shift;
        o->lo[c] = l < h ? l : h;
        o->hi[c] = l < h ? h : l;
    }
    return NNQ_OK;
}

/* Reshape-like: per-sample layout unchanged, channels regrouped; each
 * output channel is the mixture of the input channels under it. */
static nnq_status do_regroup(const prop *p, int in_v, int out_v, nnq_vstat *o) {
    const nnq_vstat *in = known(p, in_v);
    const nnq_tensor *ti = &p->shapes[in_v], *to = &p->shapes[out_v];
    const int oc = value_channels(p, out_v);
    if (!in || oc <= 0 || ti->dims[0] != to->dims[0]) return NNQ_OK;
    const int64_t ii = value_inner(p, in_v), io = value_inner(p, out_v);
    if (ii <= 0 || io <= 0 || (int64_t)in->channels * ii != (int64_t)oc * io) return NNQ_OK;
    NNQ_TRY(vstat_alloc(o, oc));
    for (int64_t k = 0; k < oc; k++) {
        const int64_t s0 = k * io, s1 = s0 + io;
        double m = 0, m2 = 0, lo = INFINITY, hi = -INFINITY;
        for (int64_t c = s0 / ii; c * ii < s1; c++) {
            const int64_t a = c * ii > s0 ? c * ii : s0, b = (c + 1) * ii < s1 ? (c + 1) * ii : s1;
            const double w = (double)(b - a) / (double)io;
            m += w * in->mean[c];
            m2 += w * (in->var[c] + in->mean[c] * in->mean[c]);
            lo = in->lo[c] < lo ? in->lo[c] : lo;
            hi = in->hi[c] > hi ? in->hi[c] : hi;
        }
        o->mean[k] = m;
        o->var[k] = m2 - m * m > 0 ? m2 - m * m : 0;
        o->lo[k] = lo;
        o->hi[k] = hi;
    }
    return NNQ_OK;
}

static nnq_status do_concat(const prop *p, const nnq_node *nd, nnq_vstat *o) {
    const int rank = p->shapes[nd->outputs[0]].rank;
    int64_t axis = nnq_node_attr_int(nd, "axis", 1);
    if (axis < 0) axis += rank;
    if (axis != 1) return NNQ_OK;
    int total = 0;
    for (int i = 0; i < nd->n_inputs; i++) {
        const nnq_vstat *x = known(p, nd->inputs[i]);
        if (!x) return NNQ_OK;
        total += x->channels;
    }
    if (total != value_channels(p, nd->outputs[0])) return NNQ_OK;
    NNQ_TRY(vstat_alloc(o, total));
    for (int i = 0, c = 0; i < nd->n_inputs; i++) {
        const nnq_vstat *x = known(p, nd->inputs[i]);
        for (int k = 0; k < x->channels; k++, c++) {
            o->mean[c] = x->mean[k];
            o->var[c] = x->var[k];
            o->lo[c] = x->lo[k];
            o->hi[c] = x->hi[k];
        }
    }
    return NNQ_OK;
}

static bool is_op(const char *op, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(op, list[i]) == 0) return true;
    return false;
}

/* Statistics of node nd's first output from its inputs (left unknown when
 * no rule applies). */
static nnq_status propagate_node(const prop *p, const nnq_node *nd) {
    static const char *const keep[] = {"MaxPool", "AveragePool", "GlobalAveragePool",
                                       "ReduceMean", "Pad", "Identity", "Dropout"};
    static const char *const regroup[] = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"};
    const nnq_graph *g = p->g;
    const char *op = nd->op_type;
    const int out = nd->outputs[0];
    nnq_vstat *o = &p->v[out];
    const bool nnq_dom = nd->domain && strcmp(nd->domain, NNQ_DOMAIN) == 0;
    if (nnq_dom && strcmp(op, "FakeQuant") != 0) return NNQ_OK;
    if (!nnq_dom && nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0)
        return NNQ_OK;
    if (strcmp(op, "BatchNormalization") == 0 && nd->n_inputs >= 3) {
        int64_t ng = 0, nb = 0;
        const float *gamma = const_data(g, nd->inputs[1], &ng);
        const float *beta = const_data(g, nd->inputs[2], &nb);
        const int ch = value_channels(p, out);
        if (gamma && beta && ch > 0 && ng == ch && nb == ch) NNQ_TRY(from_bn(o, ch, gamma, beta));
        return NNQ_OK;
    }
    if (nnq_dom || is_op(op, keep, sizeof keep / sizeof keep[0])) {
        const nnq_vstat *in = known(p, nd->inputs[0]);
        if (in && value_channels(p, out) == in->channels) NNQ_TRY(copy_stat(o, in));
        return NNQ_OK;
    }
    if (is_op(op, regroup, sizeof regroup / sizeof regroup[0]))
        return do_regroup(p, nd->inputs[0], out, o);
    if (strcmp(op, "Concat") == 0) return do_concat(p, nd, o);
    if (strcmp(op, "Conv") == 0 || strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0)
        return nd->n_inputs >= 2 ? do_linear(p, nd, o) : NNQ_OK;
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
        strcmp(op, "Div") == 0)
        return nd->n_inputs == 2 ? do_binary(p, nd, o) : NNQ_OK;
    act_fn a;
    const float *slope;
    int64_t n_slope = 0;
    const nnq_vstat *in = known(p, nd->inputs[0]);
    if (in && node_activation(p, nd, &a, &slope, &n_slope)) {
        if (slope && n_slope != 1 && n_slope != in->channels) return NNQ_OK;
        return do_activation(o, in, &a, slope, n_slope);
    }
    return NNQ_OK;
}

static nnq_status input_stats(const prop *p, const float *in_range) {
    const nnq_graph *g = p->g;
    if (!in_range) return NNQ_OK;
    const double lo = in_range[0], hi = in_range[1];
    for (int i = 0; i < g->n_inputs; i++) {
        const int v = g->inputs[i];
        const int ch = value_channels(p, v);
        if (g->values[v].t.dtype != NNQ_DT_FLOAT || ch <= 0) continue;
        NNQ_TRY(vstat_alloc(&p->v[v], ch));
        for (int c = 0; c < ch; c++) {
            p->v[v].mean[c] = 0.5 * (lo + hi);
            p->v[v].var[c] = (hi - lo) * (hi - lo) / 12;
            p->v[v].lo[c] = lo;
            p->v[v].hi[c] = hi;
        }
    }
    return NNQ_OK;
}

nnq_status nnq_act_stats_compute(const nnq_graph *g, const nnq_bn_stats *st,
                                 const float *in_range, nnq_act_stats *out) {
    memset(out, 0, sizeof *out);
    if (in_range && !(in_range[0] <= in_range[1]))
        return nnq_fail(NNQ_ERR_INVALID, "input range [%g, %g] is empty", in_range[0],
                        in_range[1]);
    prop p = {.g = g, .st = st};
    nnq_status s = NNQ_OK;
    const size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    p.shapes = calloc(nv, sizeof *p.shapes);
    p.v = calloc(nv, sizeof *p.v);
    out->v = p.v;
    out->n_values = p.v ? g->n_values : 0;
    if (!p.shapes || !p.v) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory for activation statistics");
        goto fail;
    }
    if ((s = nnq_graph_infer_shapes(g, NULL, p.shapes)) != NNQ_OK) goto fail;
    if ((s = input_stats(&p, in_range)) != NNQ_OK) goto fail;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (nd->n_outputs < 1 || nd->outputs[0] < 0 || nnq_node_outputs_constant(g, n) ||
            nd->n_inputs < 1 || nd->inputs[0] < 0)
            continue;
        const int v = nd->outputs[0];
        /* A folded BN's statistics describe the value itself. */
        const nnq_bn_entry *e = nnq_bn_stats_find(st, g->values[v].name);
        if (e && e->channels == value_channels(&p, v))
            s = from_bn(&p.v[v], e->channels, e->gamma, e->beta);
        else
            s = propagate_node(&p, nd);
        if (s != NNQ_OK) goto fail;
    }
    free(p.shapes);
    return NNQ_OK;
fail:
    free(p.shapes);
    nnq_act_stats_free(out);
    return s;
}

void nnq_act_stats_free(nnq_act_stats *a) {
    if (!a) return;
    for (int v = 0; v < a->n_values; v++) vstat_release(&a->v[v]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

const nnq_vstat *nnq_act_stats_get(const nnq_act_stats *a, int v) {
    return v >= 0 && v < a->n_values && a->v[v].channels > 0 ? &a->v[v] : NULL;
}

void nnq_vstat_range(const nnq_vstat *s, double *lo, double *hi) {
    double mn = INFINITY, mx = -INFINITY;
    for (int c = 0; c < s->channels; c++) {
        mn = s->lo[c] < mn ? s->lo[c] : mn;
        mx = s->hi[c] > mx ? s->hi[c] : mx;
    }
    *lo = mn;
    *hi = mx;
}
