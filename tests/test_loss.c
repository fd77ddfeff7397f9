/* Losses (src/train/loss.h): softmax cross-entropy with label smoothing,
 * knowledge distillation, their combination. Values are checked against
 * hand values, a direct long-double reference written here (softmax by
 * its definition, no max subtraction: long double's range covers the
 * logits used), and PyTorch 1.13 values for a fixed case; gradients
 * against central finite differences of the loss itself. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "train/loss.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static uint32_t rng_state = 77u;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

static nnq_tensor mk(int64_t n, int64_t c, const float *vals) {
    nnq_tensor t = {0};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 2, DIMS(n, c)));
    if (vals) memcpy(t.data, vals, (size_t)(n * c) * sizeof(float));
    return t;
}

static nnq_tensor mk_rand(int64_t n, int64_t c, float scale) {
    nnq_tensor t = mk(n, c, NULL);
    for (int64_t i = 0; i < n * c; i++) nnq_f32(&t)[i] = scale * frand();
    return t;
}

/* softmax(z / temp) of one row by definition, in long double. */
static void ref_softmax(const float *z, int64_t c, long double temp, long double *p) {
    long double s = 0;
    for (int64_t k = 0; k < c; k++) s += p[k] = expl((long double)z[k] / temp);
    for (int64_t k = 0; k < c; k++) p[k] /= s;
}

/* mean_i -sum_c q_ic log p_ic, q the smoothed one-hot. */
static double ref_ce(const nnq_tensor *z, const int32_t *y, double eps) {
    int64_t n = z->dims[0], c = z->dims[1];
    long double p[64], total = 0;
    for (int64_t i = 0; i < n; i++) {
        ref_softmax(nnq_f32(z) + i * c, c, 1.0L, p);
        for (int64_t k = 0; k < c; k++) {
            long double q = (long double)eps / c + (k == y[i] ? 1.0L - eps : 0.0L);
            total -= q * logl(p[k]);
        }
    }
    return (double)(total / n);
}

/* T^2 mean_i KL(softmax(t_i / T) || softmax(s_i / T)). */
static double ref_kd(const nnq_tensor *s, const nnq_tensor *t, double temp) {
    int64_t n = s->dims[0], c = s->dims[1];
    long double p[64], q[64], total = 0;
    for (int64_t i = 0; i < n; i++) {
        ref_softmax(nnq_f32(t) + i * c, c, temp, p);
        ref_softmax(nnq_f32(s) + i * c, c, temp, q);
        for (int64_t k = 0; k < c; k++) total += p[k] * logl(p[k] / q[k]);
    }
    return (double)(total * temp * temp / n);
}

/* The loss as a function of the logits, for finite differences. */
typedef struct loss_fn {
    int kind; /* 0 CE, 1 KD, 2 KD+CE */
    const nnq_tensor *teacher;
    const int32_t *labels;
    float smoothing, temp, alpha;
} loss_fn;

static double eval(const loss_fn *f, const nnq_tensor *z, nnq_tensor *grad) {
    double l = NAN;
    if (f->kind == 0) CHECK_OK(nnq_loss_softmax_ce(z, f->labels, f->smoothing, &l, grad, NULL));
    if (f->kind == 1) CHECK_OK(nnq_loss_kd(z, f->teacher, f->temp, &l, grad));
    if (f->kind == 2)
        CHECK_OK(nnq_loss_kd_ce(z, f->teacher, f->labels, f->temp, f->alpha, f->smoothing, &l,
                                grad, NULL));
    return l;
}

/* Analytic gradient against central differences at every logit. The loss
 * is computed in double, so the quotient is accurate to O(h^2). */
static void check_grad_fd(const char *what, const loss_fn *f, nnq_tensor *z) {
    int64_t n = nnq_tensor_numel(z), c = z->dims[1];
    nnq_tensor g = mk(z->dims[0], c, NULL), num = mk(z->dims[0], c, NULL);
    for (int64_t i = 0; i < n; i++) nnq_f32(&g)[i] = 12345.0f; /* must be overwritten */
    eval(f, z, &g);
    float *x = nnq_f32(z);
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i], xp = keep + 1e-2f, xm = keep - 1e-2f;
        x[i] = xp;
        double lp = eval(f, z, NULL);
        x[i] = xm;
        double lm = eval(f, z, NULL);
        x[i] = keep;
        nnq_f32(&num)[i] = (float)((lp - lm) / ((double)xp - (double)xm));
    }
    double e = check_nmse(nnq_f32(&g), nnq_f32(&num), (long)n);
    fprintf(stderr, "  %-40s grad nmse vs finite differences %.1e\n", what, e);
    CHECK(e < 1e-8);
    /* softmax gradients: every row sums to zero (targets sum to one) */
    for (int64_t r = 0; r < z->dims[0]; r++) {
        double s = 0;
        for (int64_t k = 0; k < c; k++) s += nnq_f32(&g)[r * c + k];
        CHECK_NEAR(s, 0.0, 1e-6);
    }
    nnq_tensor_release(&g);
    nnq_tensor_release(&num);
}

/* The fixed case also computed with PyTorch 1.13 (float64):
 * F.cross_entropy(s, y[, label_smoothing=0.1]) and
 * F.kl_div(F.log_softmax(s/T, 1), F.softmax(t/T, 1), reduction="batchmean") * T*T. */
static const float fixed_s[] = {1.5f,  -0.25f, 0.75f, 2.0f, -1.0f, 0.1f, 0.2f,  0.3f, 0.4f, 0.5f,
                                -3.0f, 4.0f,   0.0f,  1.0f, 2.5f,  2.0f, 2.0f,  -2.0f, 0.5f, 1.25f};
static const float fixed_t[] = {0.5f,  0.25f, -0.75f, 1.0f, 0.0f, 1.0f, -1.0f, 0.5f, 2.0f, 0.25f,
                                -1.0f, 3.0f,  1.5f,   0.0f, 0.5f, 0.0f, 1.0f,  -1.0f, 2.0f, 0.75f};
static const int32_t fixed_y[] = {3, 4, 1, 0};

static void test_ce_values(void) {
    nnq_tensor s = mk(4, 5, fixed_s);
    double l;
    int64_t correct = -1;
    CHECK_OK(nnq_loss_softmax_ce(&s, fixed_y, 0.0f, &l, NULL, &correct));
    CHECK_NEAR(l, 0.847761540327, 1e-6); /* torch */
    CHECK_NEAR(l, ref_ce(&s, fixed_y, 0.0), 1e-6);
    /* argmax rows: 3 (label 3), 4 (4), 1 (1), 0 and 1 tie -> first, 0 (0) */
    CHECK(correct == 4);
    CHECK_OK(nnq_loss_softmax_ce(&s, fixed_y, 0.1f, &l, NULL, NULL));
    CHECK_NEAR(l, 0.996511540327, 1e-6); /* torch, label_smoothing=0.1 */
    CHECK_NEAR(l, ref_ce(&s, fixed_y, 0.1), 1e-6);
    nnq_tensor_release(&s);

    /* Equal logits: log C whatever the label or smoothing. */
    nnq_tensor eq = mk(2, 7, NULL);
    CHECK_OK(nnq_loss_softmax_ce(&eq, (const int32_t[]){0, 6}, 0.0f, &l, NULL, NULL));
    CHECK_NEAR(l, log(7.0), 1e-12);
    CHECK_OK(nnq_loss_softmax_ce(&eq, (const int32_t[]){0, 6}, 0.3f, &l, NULL, NULL));
    CHECK_NEAR(l, log(7.0), 1e-12);
    nnq_tensor_release(&eq);

    /* Two classes, p(label) = 3/4: loss -log(3/4), dlogits = (p - onehot) / N. */
    nnq_tensor two = mk(1, 2, (const float[]){0.0f, (float)log(3.0)});
    nnq_tensor g = mk(1, 2, NULL);
    CHECK_OK(nnq_loss_softmax_ce(&two, (const int32_t[]){1}, 0.0f, &l, &g, &correct));
    CHECK_NEAR(l, -log(0.75), 1e-7);
    CHECK_NEAR(nnq_f32(&g)[0], 0.25, 1e-7);
    CHECK_NEAR(nnq_f32(&g)[1], -0.25, 1e-7);
    CHECK(correct == 1);
    CHECK_OK(nnq_loss_softmax_ce(&two, (const int32_t[]){0}, 0.0f, &l, NULL, &correct));
    CHECK(correct == 0);
    nnq_tensor_release(&two);
    nnq_tensor_release(&g);

    /* Random batches against the reference, with and without smoothing. */
    for (int trial = 0; trial < 4; trial++) {
        int64_t n = 3 + trial * 5, c = 10 + trial * 7;
        nnq_tensor z = mk_rand(n, c, 4.0f);
        int32_t y[32];
        for (int64_t i = 0; i < n; i++) y[i] = (int32_t)((i * 7 + trial) % c);
        float eps = trial * 0.05f;
        CHECK_OK(nnq_loss_softmax_ce(&z, y, eps, &l, NULL, NULL));
        double r = ref_ce(&z, y, eps);
        CHECK(fabs(l - r) <= 1e-9 * fabs(r) + 1e-12);
        nnq_tensor_release(&z);
    }
}

/* Large logits: stable (no inf or NaN) and shift invariant. */
static void test_ce_stability(void) {
    nnq_tensor z = mk_rand(6, 10, 3.0f), big = mk(6, 10, NULL), gz = mk(6, 10, NULL),
               gb = mk(6, 10, NULL);
    const int32_t y[] = {0, 1, 2, 3, 4, 9};
    double l0, l1, l2;
    for (int shift = 0; shift < 2; shift++) {
        float off = shift ? -1000.0f : 1000.0f;
        for (int i = 0; i < 60; i++) nnq_f32(&big)[i] = nnq_f32(&z)[i] + off;
        CHECK_OK(nnq_loss_softmax_ce(&z, y, 0.1f, &l0, &gz, NULL));
        CHECK_OK(nnq_loss_softmax_ce(&big, y, 0.1f, shift ? &l2 : &l1, &gb, NULL));
        double lb = shift ? l2 : l1;
        CHECK(isfinite(lb));
        /* z + 1000 in float rounds each logit to 2^-14 */
        CHECK_NEAR(lb, l0, 1e-3);
        CHECK(check_nmse(nnq_f32(&gb), nnq_f32(&gz), 60) < 1e-6);
        CHECK_NEAR(lb, ref_ce(&big, y, 0.1), 1e-6 * fabs(lb) + 1e-9);
    }
    /* A hopeless prediction: loss about the logit gap, not inf. */
    nnq_tensor far = mk(1, 3, (const float[]){0.0f, 500.0f, -500.0f});
    CHECK_OK(nnq_loss_softmax_ce(&far, (const int32_t[]){2}, 0.0f, &l0, NULL, NULL));
    CHECK_NEAR(l0, 1000.0, 1e-9);
    nnq_tensor_release(&far);
    nnq_tensor_release(&z);
    nnq_tensor_release(&big);
    nnq_tensor_release(&gz);
    nnq_tensor_release(&gb);
}

static void test_ce_grad(void) {
    int32_t y[8] = {0, 3, 7, 2, 9, 9, 1, 5};
    nnq_tensor z = mk_rand(8, 10, 2.0f);
    loss_fn f = {.kind = 0, .labels = y};
    check_grad_fd("CE", &f, &z);
    f.smoothing = 0.1f;
    check_grad_fd("CE smoothing 0.1", &f, &z);
    nnq_tensor_release(&z);
}

static void test_kd(void) {
    nnq_tensor s = mk(4, 5, fixed_s), t = mk(4, 5, fixed_t), g = mk(4, 5, NULL);
    double l;
    const double torch_kd[] = {0.439734961611, 0.584537700721, 0.670120671754}; /* T 1, 2, 4 */
    const float temps[] = {1.0f, 2.0f, 4.0f};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(nnq_loss_kd(&s, &t, temps[i], &l, NULL));
        CHECK_NEAR(l, torch_kd[i], 1e-6);
        CHECK_NEAR(l, ref_kd(&s, &t, temps[i]), 1e-6);
    }
    /* Teacher == student: zero loss and zero gradient, exactly. */
    for (int i = 0; i < 20; i++) nnq_f32(&g)[i] = 7.0f;
    CHECK_OK(nnq_loss_kd(&s, &s, 3.0f, &l, &g));
    CHECK(l == 0.0);
    for (int i = 0; i < 20; i++) CHECK(nnq_f32(&g)[i] == 0.0f);
    /* KL >= 0 and grows as the student moves away */
    double l_near, l_far;
    nnq_tensor s2 = mk(4, 5, fixed_t);
    nnq_f32(&s2)[0] += 0.5f;
    CHECK_OK(nnq_loss_kd(&s2, &t, 2.0f, &l_near, NULL));
    nnq_f32(&s2)[0] += 2.0f;
    CHECK_OK(nnq_loss_kd(&s2, &t, 2.0f, &l_far, NULL));
    CHECK(l_near > 0 && l_far > l_near);
    nnq_tensor_release(&s2);

    /* Gradients by finite differences, several temperatures. */
    nnq_tensor zs = mk_rand(6, 10, 3.0f), zt = mk_rand(6, 10, 3.0f);
    loss_fn f = {.kind = 1, .teacher = &zt, .temp = 1.0f};
    check_grad_fd("KD T=1", &f, &zs);
    f.temp = 4.0f;
    check_grad_fd("KD T=4", &f, &zs);
    f.temp = 0.5f;
    check_grad_fd("KD T=0.5", &f, &zs);
    nnq_tensor_release(&zs);
    nnq_tensor_release(&zt);
    nnq_tensor_release(&s);
    nnq_tensor_release(&t);
    nnq_tensor_release(&g);
}

static void test_kd_ce(void) {
    nnq_tensor s = mk_rand(5, 8, 2.0f), t = mk_rand(5, 8, 2.0f);
    nnq_tensor g = mk(5, 8, NULL), gk = mk(5, 8, NULL), gc = mk(5, 8, NULL);
    const int32_t y[] = {1, 0, 7, 3, 3};
    double l, lk, lc;
    int64_t corr, corr_ce;
    CHECK_OK(nnq_loss_kd(&s, &t, 3.0f, &lk, &gk));
    CHECK_OK(nnq_loss_softmax_ce(&s, y, 0.1f, &lc, &gc, &corr_ce));
    CHECK_OK(nnq_loss_kd_ce(&s, &t, y, 3.0f, 0.3f, 0.1f, &l, &g, &corr));
    const double alpha = 0.3f; /* the float the API received */
    CHECK_NEAR(l, alpha * lk + (1 - alpha) * lc, 1e-12);
    CHECK(corr == corr_ce);
    for (int i = 0; i < 40; i++)
        CHECK_NEAR(nnq_f32(&g)[i], alpha * nnq_f32(&gk)[i] + (1 - alpha) * nnq_f32(&gc)[i], 1e-7);
    CHECK_OK(nnq_loss_kd_ce(&s, &t, y, 3.0f, 0.0f, 0.1f, &l, NULL, NULL));
    CHECK(l == lc);
    CHECK_OK(nnq_loss_kd_ce(&s, &t, y, 3.0f, 1.0f, 0.1f, &l, NULL, NULL));
    CHECK(l == lk);
    loss_fn f = {.kind = 2, .teacher = &t, .labels = y, .temp = 2.0f, .alpha = 0.6f,
                 .smoothing = 0.05f};
    check_grad_fd("0.6 KD + 0.4 CE", &f, &s);
    nnq_tensor *all[] = {&s, &t, &g, &gk, &gc};
    for (int i = 0; i < 5; i++) nnq_tensor_release(all[i]);
}

static void test_errors(void) {
    nnq_tensor z = mk_rand(3, 4, 1.0f), t = mk_rand(3, 4, 1.0f), bad = mk(4, 3, NULL);
    nnq_tensor flat = {0};
    CHECK_OK(nnq_tensor_alloc(&flat, NNQ_DT_FLOAT, 1, DIMS(12)));
    double l;
    const int32_t y[] = {0, 1, 2}, y_bad[] = {0, 4, 1}, y_neg[] = {-1, 0, 0};
    CHECK_STATUS(nnq_loss_softmax_ce(&z, y_bad, 0.0f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "row 1") != NULL);
    CHECK_STATUS(nnq_loss_softmax_ce(&z, y_neg, 0.0f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_softmax_ce(&z, NULL, 0.0f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_softmax_ce(&flat, y, 0.0f, &l, NULL, NULL), NNQ_ERR_SHAPE);
    CHECK_STATUS(nnq_loss_softmax_ce(&z, y, 0.0f, &l, &bad, NULL), NNQ_ERR_SHAPE);
    CHECK_STATUS(nnq_loss_softmax_ce(&z, y, 1.5f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_softmax_ce(&z, y, -0.1f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_kd(&z, &bad, 2.0f, &l, NULL), NNQ_ERR_SHAPE);
    CHECK_STATUS(nnq_loss_kd(&z, &t, 0.0f, &l, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_kd(&z, &t, NAN, &l, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_kd(&z, NULL, 2.0f, &l, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_kd_ce(&z, &t, y, 2.0f, 1.5f, 0.0f, &l, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_loss_kd_ce(&z, &t, y_bad, 2.0f, 0.5f, 0.0f, &l, NULL, NULL),
                 NNQ_ERR_INVALID);
    nnq_tensor_release(&z);
    nnq_tensor_release(&t);
    nnq_tensor_release(&bad);
    nnq_tensor_release(&flat);
}

int main(void) {
    test_ce_values();
    test_ce_stability();
    test_ce_grad();
    test_kd();
    test_kd_ce();
    test_errors();
    return check_finish("test_loss");
}
