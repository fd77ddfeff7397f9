/* Data-free activation statistics (src/ptq/act_stats.c).
 *
 * - Moments of f(X), X ~ N(mu, sigma^2): the closed forms (Relu, Clip) and
 *   the quadrature (HardSwish, Sigmoid, ...) against Monte-Carlo sampling
 *   (10^6 samples: within 1% of sigma for the mean and 1% for the standard
 *   deviation), and closed forms against the quadrature (1e-6).
 * - Propagation on small graphs fed with i.i.d. uniform noise (so the
 *   independence the rules assume holds): Conv and Gemm moments against
 *   the moments measured on the executor's outputs, Flatten mixtures,
 *   Add of independent inputs, BatchNormalization nodes as sources.
 * - A folded model (nnq_ptq_fold_bn with its statistics) gives the same
 *   statistics as the unfolded one (BN nodes read directly). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "models/builder.h"
#include "models/models.h"
#include "ops/executor.h"
#include "ptq/act_stats.h"
#include "ptq/ptq.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform01(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}
static double normal01(void) {
    return sqrt(-2 * log(uniform01())) * cos(6.283185307179586 * uniform01());
}

/* ---- moments against Monte-Carlo ---- */

typedef double (*fn)(double x, const void *ctx);
static double f_relu(double x, const void *c) { return x > 0 ? x : 0; }
static double f_clip06(double x, const void *c) { return x < 0 ? 0 : (x > 6 ? 6 : x); }
static double f_clip_m1_2(double x, const void *c) { return x < -1 ? -1 : (x > 2 ? 2 : x); }
static double f_hswish(double x, const void *c) {
    double t = x / 6 + 0.5;
    return x * (t < 0 ? 0 : (t > 1 ? 1 : t));
}
static double f_sigmoid(double x, const void *c) { return 1 / (1 + exp(-x)); }

static void mc_moments(fn f, double mu, double sigma, long n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (long i = 0; i < n; i++) {
        double y = f(mu + sigma * normal01(), NULL);
        s += y;
        s2 += y * y;
    }
    *mean = s / n;
    *sd = sqrt(fmax(s2 / n - *mean * *mean, 0));
}

enum { K_RELU, K_CLIP06, K_CLIPM12, K_HSWISH, K_SIGMOID };

static void model_moments(int kind, double mu, double sigma, double *m, double *v) {
    switch (kind) {
    case K_RELU: nnq_normal_relu_moments(mu, sigma, m, v); break;
    case K_CLIP06: nnq_normal_clip_moments(mu, sigma, 0, 6, m, v); break;
    case K_CLIPM12: nnq_normal_clip_moments(mu, sigma, -1, 2, m, v); break;
    case K_HSWISH: nnq_normal_fn_moments(f_hswish, NULL, mu, sigma, m, v); break;
    default: nnq_normal_fn_moments(f_sigmoid, NULL, mu, sigma, m, v); break;
    }
}

static void test_moments_mc(void) {
    static const fn fns[] = {f_relu, f_clip06, f_clip_m1_2, f_hswish, f_sigmoid};
    static const double cases[][2] = {{0, 1}, {1.5, 0.7}, {-2, 1.3}, {4, 3}, {-0.3, 0.2}, {2.5, 5}};
    const long n = 1000000;
    double worst_m = 0, worst_s = 0;
    for (int k = 0; k < 5; k++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const double mu = cases[c][0], sigma = cases[c][1];
            double m, v, mm, msd;
            model_moments(k, mu, sigma, &m, &v);
            mc_moments(fns[k], mu, sigma, n, &mm, &msd);
            /* Mean within 1% of sigma; sd within 1% (plus a floor for
             * outputs that are nearly constant, e.g. Relu far below 0). */
            const double em = fabs(m - mm) / sigma, es = fabs(sqrt(v) - msd) / fmax(msd, 0.05 * sigma);
            worst_m = fmax(worst_m, em);
            worst_s = fmax(worst_s, es);
            if (em > 0.01 || es > 0.01)
                fprintf(stderr, "f%d mu %g sigma %g: model %g/%g, MC %g/%g\n", k, mu, sigma, m,
                        sqrt(v), mm, msd);
            CHECK(em <= 0.01);
            CHECK(es <= 0.01);
        }
    fprintf(stderr, "moments vs Monte-Carlo: worst mean error %.2e sigma, worst sd error %.2e\n",
            worst_m, worst_s);
}

/* Closed forms against the quadrature (its error is O(h^2) at a kink
 * between nodes: ~1e-5 sigma); point masses; far tails. */
static void test_moments_consistency(void) {
    static const double cases[][2] = {{0, 1}, {3, 0.5}, {-3, 0.5}, {100, 1}, {-100, 2}, {0.5, 10}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const double mu = cases[c][0], sigma = cases[c][1];
        double m1, v1, m2, v2;
        nnq_normal_relu_moments(mu, sigma, &m1, &v1);
        nnq_normal_fn_moments(f_relu, NULL, mu, sigma, &m2, &v2);
        CHECK_NEAR(m1, m2, 2e-5 * sigma);
        CHECK_NEAR(v1, v2, 2e-5 * sigma * sigma);
        nnq_normal_clip_moments(mu, sigma, -1, 2, &m1, &v1);
        nnq_normal_fn_moments(f_clip_m1_2, NULL, mu, sigma, &m2, &v2);
        CHECK_NEAR(m1, m2, 2e-5 * sigma);
        CHECK_NEAR(v1, v2, 2e-5 * sigma * sigma);
    }
    double m, v;
    nnq_normal_relu_moments(100, 1, &m, &v); /* no cancellation far from the kink */
    CHECK_NEAR(m, 100, 1e-9);
    CHECK_NEAR(v, 1, 1e-9);
    nnq_normal_relu_moments(-2, 0, &m, &v);
    CHECK(m == 0 && v == 0);
    nnq_normal_clip_moments(7, 0, 0, 6, &m, &v);
    CHECK(m == 6 && v == 0);
    nnq_normal_clip_moments(1, 1, -INFINITY, INFINITY, &m, &v); /* identity */
    CHECK_NEAR(m, 1, 1e-12);
    CHECK_NEAR(v, 1, 1e-12);
    /* The DFQ formula: E[relu] = g phi(-b/g) + b (1 - Phi(-b/g)). */
    const double b = 0.4, g = 1.7;
    nnq_normal_relu_moments(b, g, &m, &v);
    const double z = -b / g;
    CHECK_NEAR(m, g * exp(-z * z / 2) / sqrt(2 * 3.141592653589793) + b * (1 - 0.5 * erfc(-z / sqrt(2))), 1e-12);
}

/* ---- propagation on graphs fed with i.i.d. noise ---- */

#define NOISE_LO -1.0f
#define NOISE_HI 2.0f

/* Run g (one input [n, c, h, w]) on i.i.d. uniform noise with keep_all. */
static nnq_exec *run_noise(nnq_graph *g, int64_t n, int64_t c, int64_t h, int64_t w, float **buf) {
    nnq_exec *e = NULL;
    const int64_t dims[4] = {n, c, h, w};
    nnq_tensor x = {0};
    CHECK_OK(nnq_tensor_alloc(&x, NNQ_DT_FLOAT, 4, dims));
    for (int64_t i = 0; i < nnq_tensor_numel(&x); i++)
        nnq_f32(&x)[i] = (float)(NOISE_LO + (NOISE_HI - NOISE_LO) * uniform01());
    nnq_exec_options opt = {.threads = 2, .keep_all = true};
    CHECK_OK(nnq_exec_create(g, &opt, &e));
    if (e) CHECK_OK(nnq_exec_run(e, &x));
    *buf = x.data; /* keep alive while e is read */
    return e;
}

/* Measured per-channel (axis 1) mean and variance of t. */
static void measure(const nnq_tensor *t, int64_t c, double *mean, double *var) {
    int64_t inner = 1;
    for (int d = 2; d < t->rank; d++) inner *= t->dims[d];
    for (int64_t k = 0; k < c; k++) {
        double s = 0, s2 = 0;
        for (int64_t b = 0; b < t->dims[0]; b++)
            for (int64_t i = 0; i < inner; i++) {
                double v = nnq_f32(t)[(b * c + k) * inner + i];
                s += v;
                s2 += v * v;
            }
        double cnt = (double)(t->dims[0] * inner);
        mean[k] = s / cnt;
        var[k] = s2 / cnt - mean[k] * mean[k];
    }
}

static void randomize_params(nnq_graph *g) {
    for (int v = 0; v < g->n_values; v++) {
        nnq_value *val = &g->values[v];
        if (!val->is_initializer || val->t.dtype != NNQ_DT_FLOAT) continue;
        if (strstr(val->name, "bias"))
            for (int64_t i = 0; i < nnq_tensor_numel(&val->t); i++)
                nnq_f32(&val->t)[i] = (float)(0.5 * normal01());
    }
}

/* input [N,3,8,8] → Conv 3→4 k3 (no padding, bias) → Relu → Flatten →
 * Gemm 144→5; a second branch: GlobalAveragePool(conv) → Flatten. */
static void test_linear_propagation(void) {
    nnq_builder b;
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_init(&b, "lin", 13, 3));
    int x = nnq_build_input(&b, "input", 3, 8, 8);
    int y = nnq_build_conv(&b, x, "conv", 3, 4, 3, 1, 0, 1, true);
    int r = nnq_build_act(&b, y, NNQ_ACT_RELU);
    int f = nnq_build_flatten(&b, r);
    int o = nnq_build_gemm(&b, f, "fc", 144, 5);
    CHECK_OK(nnq_builder_finish(&b, o, "logits", &g));
    if (!g) return;
    randomize_params(g);
    CHECK_OK(nnq_graph_prepare(g));
    const float range[2] = {NOISE_LO, NOISE_HI};
    nnq_act_stats as;
    CHECK_OK(nnq_act_stats_compute(g, NULL, range, &as));
    float *buf = NULL;
    nnq_exec *e = run_noise(g, 4000, 3, 8, 8, &buf);
    if (!e) return;
    /* Input: uniform. */
    const nnq_vstat *si = nnq_act_stats_get(&as, x);
    CHECK(si && si->channels == 3);
    if (si) {
        CHECK_NEAR(si->mean[0], 0.5, 1e-12);
        CHECK_NEAR(si->var[2], 9.0 / 12, 1e-12);
        CHECK(si->lo[1] == NOISE_LO && si->hi[1] == NOISE_HI);
    }
    /* Conv: exact mean and variance (inputs i.i.d.). */
    const nnq_vstat *sc = nnq_act_stats_get(&as, y);
    double m[8], v[8];
    measure(nnq_exec_value(e, y), 4, m, v);
    CHECK(sc && sc->channels == 4);
    for (int k = 0; sc && k < 4; k++) {
        const double sd = sqrt(sc->var[k]);
        CHECK_NEAR(sc->mean[k], m[k], 0.01 * sd);
        CHECK_NEAR(sqrt(v[k]) / sd, 1.0, 0.01);
        CHECK_NEAR(sc->lo[k], sc->mean[k] - 6 * sd, 1e-9 * sd);
    }
    /* Relu: the conv output is a sum of 27 uniforms, close to normal. */
    const nnq_vstat *sr = nnq_act_stats_get(&as, r);
    measure(nnq_exec_value(e, r), 4, m, v);
    CHECK(sr && sr->channels == 4);
    for (int k = 0; sr && k < 4; k++) {
        const double sd = sqrt(sc->var[k]);
        CHECK_NEAR(sr->mean[k], m[k], 0.02 * sd);
        CHECK_NEAR(sqrt(sr->var[k]), sqrt(v[k]), 0.03 * sd);
        CHECK(sr->lo[k] >= 0 && sr->hi[k] == fmax(sc->hi[k], 0));
    }
    /* Flatten: feature j is channel j / 36. */
    const nnq_vstat *sf = nnq_act_stats_get(&as, f);
    CHECK(sf && sf->channels == 144);
    for (int j = 0; sf && sr && j < 144; j++) {
        CHECK(sf->mean[j] == sr->mean[j / 36]);
        CHECK(sf->var[j] == sr->var[j / 36]);
    }
    /* Gemm: the mean is exact given the Relu means (linearity); the
     * variance assumes independent features, which neighbouring conv
     * outputs are not: only its order of magnitude is checked. */
    const nnq_vstat *so = nnq_act_stats_get(&as, o);
    const nnq_tensor *to = nnq_exec_value(e, o);
    measure(to, 5, m, v);
    CHECK(so && so->channels == 5);
    for (int k = 0; so && k < 5; k++) {
        CHECK_NEAR(so->mean[k], m[k], 0.05 * sqrt(v[k]));
        CHECK(so->var[k] > 0.2 * v[k] && so->var[k] < 5 * v[k]);
    }
    nnq_exec_free(e);
    free(buf);
    nnq_act_stats_free(&as);
    /* Without an input range nothing downstream of the input is known. */
    CHECK_OK(nnq_act_stats_compute(g, NULL, NULL, &as));
    CHECK(!nnq_act_stats_get(&as, x) && !nnq_act_stats_get(&as, o));
    nnq_act_stats_free(&as);
    nnq_graph_free(g);
}

/* Two independent inputs added; a BN node as a source; GAP keeps. */
static void test_add_bn_pool(void) {
    nnq_builder b;
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_init(&b, "add", 14, 5));
    int x1 = nnq_build_input(&b, "a", 2, 4, 4);
    int x2 = nnq_build_input(&b, "b", 2, 4, 4);
    int s = nnq_build_add(&b, x1, x2);
    int bn = nnq_build_bn(&b, s, "bn", 2);
    int h = nnq_build_act(&b, bn, NNQ_ACT_HARDSWISH);
    int p = nnq_build_gap(&b, h);
    CHECK_OK(nnq_builder_finish(&b, p, "out", &g));
    if (!g) return;
    /* gamma (one negative), beta */
    for (int v = 0; v < g->n_values; v++) {
        float *d = nnq_f32(&g->values[v].t);
        if (strcmp(g->values[v].name, "bn.weight") == 0) d[0] = 2.0f, d[1] = -0.5f;
        if (strcmp(g->values[v].name, "bn.bias") == 0) d[0] = 1.0f, d[1] = -3.0f;
    }
    CHECK_OK(nnq_graph_prepare(g));
    const float range[2] = {0.0f, 1.0f};
    nnq_act_stats as;
    CHECK_OK(nnq_act_stats_compute(g, NULL, range, &as));
    const nnq_vstat *ss = nnq_act_stats_get(&as, s);
    CHECK(ss && ss->channels == 2);
    if (ss) {
        CHECK_NEAR(ss->mean[0], 1.0, 1e-12);
        CHECK_NEAR(ss->var[1], 2.0 / 12, 1e-12);
        CHECK(ss->lo[0] == 0.0 && ss->hi[0] == 2.0); /* within the sum of the ranges */
    }
    const nnq_vstat *sb = nnq_act_stats_get(&as, bn);
    CHECK(sb && sb->channels == 2);
    if (sb) {
        CHECK(sb->mean[0] == 1.0 && sb->var[0] == 4.0 && sb->mean[1] == -3.0 && sb->var[1] == 0.25);
        CHECK_NEAR(sb->lo[0], 1.0 - 12, 1e-6);
        CHECK_NEAR(sb->hi[1], -3.0 + 3, 1e-6);
    }
    const nnq_vstat *sh = nnq_act_stats_get(&as, h), *sp = nnq_act_stats_get(&as, p);
    CHECK(sh && sp);
    if (sh && sp) {
        double m, v;
        nnq_normal_fn_moments(f_hswish, NULL, 1.0, 2.0, &m, &v);
        CHECK_NEAR(sh->mean[0], m, 1e-12);
        CHECK_NEAR(sh->lo[0], -0.375, 1e-12); /* HardSwish's minimum lies in [-11, 13] */
        CHECK_NEAR(sh->hi[0], 13.0, 1e-6);
        CHECK_NEAR(sh->lo[1], -0.375, 1e-6); /* [-6, 0] */
        CHECK_NEAR(sh->hi[1], 0.0, 1e-6);
        CHECK(sp->mean[1] == sh->mean[1] && sp->var[0] == sh->var[0]);
    }
    nnq_act_stats_free(&as);
    nnq_graph_free(g);
}

/* Folding keeps the statistics: the folded graph's values (same names)
 * have the statistics the unfolded graph's BN nodes give. */
static void test_folded_matches_unfolded(const char *arch) {
    nnq_graph *g = NULL, *f = NULL;
    CHECK_OK(nnq_model_build(arch, 11, &g));
    if (!g) return;
    for (int v = 0; v < g->n_values; v++) {
        nnq_value *val = &g->values[v];
        const char *dot = strrchr(val->name, '.');
        if (!val->is_initializer || !dot) continue;
        bool bnw = strcmp(dot, ".weight") == 0 && val->t.rank == 1;
        bool bnb = strcmp(dot, ".bias") == 0;
        for (int64_t i = 0; (bnw || bnb) && i < nnq_tensor_numel(&val->t); i++)
            nnq_f32(&val->t)[i] = (float)(bnw ? 0.3 + uniform01() : normal01());
    }
    CHECK_OK(nnq_graph_prepare(g));
    CHECK_OK(nnq_graph_clone(g, &f));
    nnq_bn_stats st = {0};
    int folded = 0, unfolded = 0;
    CHECK_OK(nnq_ptq_fold_bn(f, &st, &folded, &unfolded, NULL));
    CHECK(folded > 0 && unfolded == 0);
    CHECK_OK(nnq_graph_prepare(f));
    nnq_act_stats a, b;
    CHECK_OK(nnq_act_stats_compute(g, NULL, NULL, &a));
    CHECK_OK(nnq_act_stats_compute(f, &st, NULL, &b));
    int compared = 0, known_f = 0;
    for (int v = 0; v < f->n_values; v++) {
        const nnq_vstat *sb = nnq_act_stats_get(&b, v);
        if (!sb) continue;
        known_f++;
        int u = nnq_graph_find_value(g, f->values[v].name);
        const nnq_vstat *sa = u >= 0 ? nnq_act_stats_get(&a, u) : NULL;
        CHECK(sa && sa->channels == sb->channels);
        if (!sa || sa->channels != sb->channels) continue;
        double err = 0;
        for (int c = 0; c < sa->channels; c++)
            err = fmax(err, fabs(sa->mean[c] - sb->mean[c]) /
                                (sqrt(sa->var[c]) + fabs(sa->mean[c]) + 1e-12));
        CHECK(err < 1e-5);
        compared++;
    }
    /* Every computed value of the folded model is known: each conv's
     * output has BN statistics, the rest follows from them. */
    int computed = 0;
    for (int n = 0; n < f->n_nodes; n++) computed += !nnq_node_outputs_constant(f, n);
    fprintf(stderr, "%s: %d of %d computed values with statistics after folding (%d BN folded)\n",
            arch, compared, computed, folded);
    CHECK(compared == known_f && known_f == computed);
    /* The logits are reached (GAP → Flatten → Gemm propagate). */
    CHECK(nnq_act_stats_get(&b, f->outputs[0]) != NULL);
    nnq_act_stats_free(&a);
    nnq_act_stats_free(&b);
    nnq_bn_stats_free(&st);
    nnq_graph_free(g);
    nnq_graph_free(f);
}

int main(void) {
    test_moments_mc();
    test_moments_consistency();
    test_linear_propagation();
    test_add_bn_pool();
    test_folded_matches_unfolded("resnet20");
    test_folded_matches_unfolded("mobilenetv2-hswish");
    return check_finish("test_ptq_act_stats");
}
