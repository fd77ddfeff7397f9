/* Gradients of QAT's three quantizer methods (qat/qat.h), as FakeQuant
 * (ops/quantize.c) runs them with the attributes each method sets:
 *   ste   no parameter gradients; dX = dY inside the grid, 0 outside;
 *   lsq   + d scale, LSQ's estimate, times grad_scale = 1/sqrt(N Qp);
 *   lsq+  + a learned real offset (round_zero_point = 1), d zero_point
 *         straight through the rounding.
 *
 * Checked:
 *  - the learned-offset mode equals the plain op at z' = round(clamp(z)),
 *    bit for bit, forward and backward;
 *  - finite differences away from rounding points: every method's
 *    gradients are the exact derivatives of the "STE surrogate" (round's
 *    residual frozen at the point) w.r.t. x, s and z; d zero_point is the
 *    exact derivative of Y at integer z'; d scale equals the exact
 *    derivative minus the STE term sum dY x/s;
 *  - closed forms at and around ties and both clamps, with fractional
 *    offsets that round up, down, and past the grid's ends;
 *  - the gradient scale acts in backward only (Y and dX unchanged);
 *  - golden forward + backward against PyTorch 1.13's
 *    _LearnableFakeQuantize (tests/fixtures/lsq_golden, made by
 *    tests/fixtures/make_lsq_golden.py): per tensor and per channel, LSQ
 *    weights and LSQ+ activations;
 *  - the init formulas (LSQ, LSQ+ weights) and the LSQ+ activation fit
 *    (never worse than min-max, within 2% of a brute-force optimum). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "ir/graph.h"
#include "onnx/onnx_io.h"
#include "op_fixture.h"
#include "ops/op.h"
#include "qat/qat.h"

/* ---- a FakeQuant node as a method configures it ---- */

typedef struct fq_node {
    nnq_attr at[6];
    nnq_node nd;
} fq_node;

static void fq_init(fq_node *f, int64_t qmin, int64_t qmax, int64_t axis, float grad_scale,
                    int round_zp) {
    f->at[0] = a_int("qmin", qmin);
    f->at[1] = a_int("qmax", qmax);
    f->at[2] = a_int("axis", axis);
    f->at[3] = a_int("enabled", 1);
    f->at[4] = a_float("grad_scale", grad_scale);
    f->at[5] = a_int("round_zero_point", round_zp);
    f->nd = mk_node("FakeQuant", f->at, 6);
    f->nd.domain = (char *)NNQ_DOMAIN;
}

/* Forward into y (allocated here if empty), then backward of dy into the
 * non-NULL gradient buffers (accumulating). */
static nnq_status fwd_bwd(const nnq_node *nd, const nnq_tensor *x, const nnq_tensor *s,
                          const nnq_tensor *z, nnq_tensor *y, const nnq_tensor *dy, nnq_tensor *gx,
                          nnq_tensor *gs, nnq_tensor *gz) {
    const nnq_tensor *in[3] = {x, s, z};
    nnq_tensor *outp[1] = {y};
    const nnq_tensor *dyp[1] = {dy};
    nnq_tensor *g[3] = {gx, gs, gz};
    nnq_op_args a = {.node = nd, .opset = 17, .n_in = 3, .in = in, .n_out = 1, .out = outp,
                     .threads = 1, .training = true};
    NNQ_TRY(nnq_op_FakeQuant.infer(&a));
    if (!y->data) NNQ_TRY(nnq_tensor_alloc(y, y->dtype, y->rank, y->dims));
    NNQ_TRY(nnq_op_FakeQuant.forward(&a));
    if (!dy) return NNQ_OK;
    a.out_grad = dyp;
    a.in_grad = g;
    return nnq_op_FakeQuant.backward(&a);
}

static nnq_tensor vec_f(int n, const float *v) { return mk(NNQ_DT_FLOAT, 1, DIMS(n), v); }
static nnq_tensor scalar_f(float v) { return mk(NNQ_DT_FLOAT, 0, NULL, &v); }

static void release_all(nnq_tensor **t, int n) {
    for (int i = 0; i < n; i++) nnq_tensor_release(t[i]);
}

/* ---- a case: x [2, C, 4, 5] per channel along axis 1 ---- */

#define NC 3
#define NX (2 * NC * 4 * 5)
static const float k_s[NC] = {0.07f, 0.2f, 0.45f};

typedef struct gcase {
    nnq_tensor x, s, z, dy;
    int64_t qmin, qmax;
} gcase;

static int chan(int64_t i) { return (int)((i / 20) % NC); }

/* Offsets z (real) and x chosen so that x/s + z' stays >= margin from every
 * half-integer, and (when strict) q never lands exactly on qmin or qmax. */
static gcase make_case(const float *z, int64_t qmin, int64_t qmax, float margin, bool strict) {
    gcase c = {.qmin = qmin, .qmax = qmax};
    c.x = mk(NNQ_DT_FLOAT, 4, DIMS(2, NC, 4, 5), NULL);
    c.s = vec_f(NC, k_s);
    c.z = vec_f(NC, z);
    c.dy = mk_rand(4, DIMS(2, NC, 4, 5), 1.0f);
    for (int64_t i = 0; i < NX; i++) {
        const int ch = chan(i);
        const float s = k_s[ch];
        float zr = nearbyintf(fminf(fmaxf(z[ch], (float)qmin), (float)qmax));
        for (;;) {
            const float span = (float)(qmax - qmin) + 8.0f;
            float v = ((float)qmin - 4.0f - zr) + span * 0.5f * (frand() + 1.0f);
            float xv = v * s, u = xv / s, fr = u - floorf(u);
            float q = nearbyintf(u) + zr;
            bool ok = fabsf(fr - 0.5f) > margin;
            if (strict) ok = ok && q != (float)qmin && q != (float)qmax;
            if (ok) {
                nnq_f32(&c.x)[i] = xv;
                break;
            }
        }
    }
    return c;
}

static void free_case(gcase *c) {
    nnq_tensor *t[] = {&c->x, &c->s, &c->z, &c->dy};
    release_all(t, 4);
}

/* ---- 1. learned offset == plain op at round(clamp(z)) ---- */

static void test_round_mode_is_plain_at_rounded_z(void) {
    const float zs[][NC] = {{2.3f, 5.7f, 0.49f}, {-3.2f, 17.9f, 7.5f}, {8.5f, 9.5f, 10.5f}};
    for (size_t k = 0; k < sizeof zs / sizeof zs[0]; k++) {
        gcase c = make_case(zs[k], 0, 15, 0.0f, false);
        float zr[NC];
        for (int j = 0; j < NC; j++) zr[j] = nearbyintf(fminf(fmaxf(zs[k][j], 0.0f), 15.0f));
        nnq_tensor zt = vec_f(NC, zr);
        fq_node fr, fp;
        fq_init(&fr, 0, 15, 1, 0.125f, 1);
        fq_init(&fp, 0, 15, 1, 0.125f, 0);
        nnq_tensor y[2] = {{0}}, gx[2], gs[2], gz[2];
        for (int m = 0; m < 2; m++) {
            gx[m] = mk(NNQ_DT_FLOAT, 4, DIMS(2, NC, 4, 5), NULL);
            gs[m] = vec_f(NC, (float[]){0, 0, 0});
            gz[m] = vec_f(NC, (float[]){0, 0, 0});
        }
        CHECK_OK(fwd_bwd(&fr.nd, &c.x, &c.s, &c.z, &y[0], &c.dy, &gx[0], &gs[0], &gz[0]));
        CHECK_OK(fwd_bwd(&fp.nd, &c.x, &c.s, &zt, &y[1], &c.dy, &gx[1], &gs[1], &gz[1]));
        CHECK(y[0].data && y[1].data && memcmp(y[0].data, y[1].data, NX * sizeof(float)) == 0);
        CHECK(memcmp(gx[0].data, gx[1].data, NX * sizeof(float)) == 0);
        CHECK(memcmp(gs[0].data, gs[1].data, NC * sizeof(float)) == 0);
        CHECK(memcmp(gz[0].data, gz[1].data, NC * sizeof(float)) == 0);
        /* Ties of z round half to even: 8.5 -> 8, 9.5 -> 10, 10.5 -> 10. */
        if (k == 2) CHECK(zr[0] == 8.0f && zr[1] == 10.0f && zr[2] == 10.0f);
        nnq_tensor *t[] = {&zt, &y[0], &y[1], &gx[0], &gx[1], &gs[0], &gs[1], &gz[0], &gz[1]};
        release_all(t, 9);
        free_case(&c);
    }
    /* Without the mode, an offset outside the grid is refused; with it, any finite one runs. */
    fq_node fp, fr;
    fq_init(&fp, 0, 15, 1, 1.0f, 0);
    fq_init(&fr, 0, 15, 1, 1.0f, 1);
    nnq_tensor x = mk_rand(1, DIMS(8), 1.0f), s = scalar_f(0.1f), z = scalar_f(-2.5f), y = {0};
    CHECK_STATUS(fwd_bwd(&fp.nd, &x, &s, &z, &y, NULL, NULL, NULL, NULL), NNQ_ERR_INVALID);
    CHECK_OK(fwd_bwd(&fr.nd, &x, &s, &z, &y, NULL, NULL, NULL, NULL));
    nnq_f32(&z)[0] = NAN;
    CHECK_STATUS(fwd_bwd(&fr.nd, &x, &s, &z, &y, NULL, NULL, NULL, NULL), NNQ_ERR_INVALID);
    nnq_tensor *t[] = {&x, &s, &z, &y};
    release_all(t, 4);
}

/* ---- 2. finite differences ---- */

/* L = sum dY * Y of the surrogate in double: round's residual r0 - u0 frozen
 * at (x0, s0), so the surrogate is smooth in x, s and z away from the clamp
 * boundaries; z enters unrounded. */
static double surrogate_loss(const gcase *c, const float *x0, const float *s0, const float *z0,
                             const float *x, const float *s, const float *z) {
    double l = 0;
    for (int64_t i = 0; i < NX; i++) {
        const int ch = chan(i);
        double zr = nearbyint(fmin(fmax(z0[ch], (double)c->qmin), (double)c->qmax));
        double u0 = (double)(x0[i] / s0[ch]), res = nearbyint(u0) - u0;
        /* the point's region decides the branch (it does not change under
         * a small step, the points being away from the boundaries) */
        double q0 = nearbyint(u0) + zr;
        double zz = zr + ((double)z[ch] - z0[ch]);
        double u = (double)x[i] / s[ch];
        double y;
        if (q0 < (double)c->qmin) y = s[ch] * ((double)c->qmin - zz);
        else if (q0 > (double)c->qmax) y = s[ch] * ((double)c->qmax - zz);
        else y = s[ch] * (u + res); /* = s round(u0) at the point */
        l += y * nnq_f32(&c->dy)[i];
    }
    return l;
}

/* One method's gradients against the surrogate's central differences. */
static void check_surrogate(const char *name, int round_zp, bool want_s, bool want_z,
                            float grad_scale) {
    /* Real offsets for the learned mode; integer ones (as ste and lsq keep them) else. */
    const float zreal[NC] = {2.3f, 6.6f, 11.2f}, zint[NC] = {2.0f, 7.0f, 11.0f};
    const float *z0 = round_zp ? zreal : zint;
    gcase c = make_case(z0, 0, 15, 0.15f, true);
    fq_node f;
    fq_init(&f, 0, 15, 1, grad_scale, round_zp);
    nnq_tensor y = {0}, gx = mk(NNQ_DT_FLOAT, 4, DIMS(2, NC, 4, 5), NULL);
    nnq_tensor gs = vec_f(NC, (float[]){0, 0, 0}), gz = vec_f(NC, (float[]){0, 0, 0});
    CHECK_OK(fwd_bwd(&f.nd, &c.x, &c.s, &c.z, &y, &c.dy, &gx, want_s ? &gs : NULL,
                     want_z ? &gz : NULL));
    float x[NX], s[NC], z[NC];
    memcpy(x, c.x.data, sizeof x);
    memcpy(s, k_s, sizeof s);
    memcpy(z, z0, sizeof z);
    int bad = 0, n_in = 0, n_out = 0;
    for (int64_t i = 0; i < NX; i++) {
        const float h = 1e-3f * k_s[chan(i)];
        x[i] = nnq_f32(&c.x)[i] + h;
        double lp = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z);
        x[i] = nnq_f32(&c.x)[i] - h;
        double lm = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z);
        x[i] = nnq_f32(&c.x)[i];
        double fd = (lp - lm) / (2.0 * h), an = nnq_f32(&gx)[i];
        if (fabs(an) > 0) n_in++;
        else n_out++;
        if (fabs(fd - an) > 1e-3 * (1 + fabs(an))) bad++;
    }
    CHECK(bad == 0 && n_in > 20 && n_out > 10);
    for (int ch = 0; ch < NC; ch++) {
        if (want_s) {
            const double h = 1e-3 * k_s[ch];
            s[ch] = (float)(k_s[ch] + h);
            double lp = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z), hp = s[ch] - (double)k_s[ch];
            s[ch] = (float)(k_s[ch] - h);
            double lm = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z), hm = k_s[ch] - (double)s[ch];
            s[ch] = k_s[ch];
            double fd = grad_scale * (lp - lm) / (hp + hm), an = nnq_f32(&gs)[ch];
            if (!(fabs(fd - an) <= 1e-3 * fmax(fabs(an), grad_scale))) {
                fprintf(stderr, "%s: d scale[%d] %.8g, surrogate FD %.8g\n", name, ch, an, fd);
                check_failures_++;
            }
        }
        if (want_z) {
            const float h = 1e-2f;
            z[ch] = z0[ch] + h;
            double lp = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z);
            z[ch] = z0[ch] - h;
            double lm = surrogate_loss(&c, nnq_f32(&c.x), k_s, z0, x, s, z);
            z[ch] = z0[ch];
            double fd = grad_scale * (lp - lm) / (2.0 * h), an = nnq_f32(&gz)[ch];
            if (!(fabs(fd - an) <= 1e-3 * fmax(fabs(an), grad_scale * k_s[ch]))) {
                fprintf(stderr, "%s: d zero_point[%d] %.8g, surrogate FD %.8g\n", name, ch, an, fd);
                check_failures_++;
            }
            CHECK(an != 0); /* clamped elements exist in every channel */
        }
    }
    nnq_tensor *t[] = {&y, &gx, &gs, &gz};
    release_all(t, 4);
    free_case(&c);
}

static void test_finite_differences_surrogate(void) {
    check_surrogate("ste", 0, false, false, 1.0f);
    check_surrogate("lsq", 0, true, false, 1.0f);
    check_surrogate("lsq g", 0, true, false, nnq_qat_grad_scale(40, 15));
    check_surrogate("lsq+", 1, true, true, 1.0f);
    check_surrogate("lsq+ g", 1, true, true, nnq_qat_grad_scale(40, 15));
}

/* FD of the real Y (not the surrogate): at integer z', d zero_point is
 * exact; d scale equals FD minus the STE term; LSQ+ (fractional z) equals
 * the plain op's FD at z'. */
static void test_finite_differences_exact(void) {
    const float z0[NC] = {3.4f, 7.0f, 12.6f};
    gcase c = make_case(z0, 0, 15, 0.2f, true);
    float zr[NC];
    for (int j = 0; j < NC; j++) zr[j] = nearbyintf(z0[j]);
    nnq_tensor zt = vec_f(NC, zr);
    fq_node f, fp;
    fq_init(&f, 0, 15, 1, 1.0f, 1);
    fq_init(&fp, 0, 15, 1, 1.0f, 0);
    nnq_tensor y = {0}, gs = vec_f(NC, (float[]){0, 0, 0}), gz = vec_f(NC, (float[]){0, 0, 0});
    CHECK_OK(fwd_bwd(&f.nd, &c.x, &c.s, &c.z, &y, &c.dy, NULL, &gs, &gz));
    for (int ch = 0; ch < NC; ch++) {
        /* L(s) and L(z') through the plain op (z' real only there). */
        double l[4];
        const float hs = 2e-3f * k_s[ch], hz = 1e-2f;
        const float sv[4] = {k_s[ch] + hs, k_s[ch] - hs, k_s[ch], k_s[ch]};
        const float zv[4] = {zr[ch], zr[ch], zr[ch] + hz, zr[ch] - hz};
        for (int k = 0; k < 4; k++) {
            nnq_f32(&c.s)[ch] = sv[k];
            nnq_f32(&zt)[ch] = zv[k];
            nnq_tensor yk = {0};
            CHECK_OK(fwd_bwd(&fp.nd, &c.x, &c.s, &zt, &yk, NULL, NULL, NULL, NULL));
            l[k] = 0;
            for (int64_t i = 0; i < NX; i++) l[k] += (double)nnq_f32(&yk)[i] * nnq_f32(&c.dy)[i];
            nnq_tensor_release(&yk);
        }
        nnq_f32(&c.s)[ch] = k_s[ch];
        nnq_f32(&zt)[ch] = zr[ch];
        double fd_s = (l[0] - l[1]) / ((double)sv[0] - sv[1]);
        double fd_z = (l[2] - l[3]) / ((double)zv[2] - zv[3]);
        double ste = 0, mag = 0;
        for (int64_t i = 0; i < NX; i++) {
            if (chan(i) != ch) continue;
            float xv = nnq_f32(&c.x)[i];
            double q = nearbyint((double)(xv / k_s[ch])) + zr[ch], g = nnq_f32(&c.dy)[i];
            if (q >= 0 && q <= 15) ste += g * (double)(xv / k_s[ch]);
            mag += fabs(g) * 20;
        }
        CHECK_NEAR(nnq_f32(&gs)[ch], fd_s - ste, 1e-3 * mag);
        CHECK_NEAR(nnq_f32(&gz)[ch], fd_z, 1e-3 * mag * k_s[ch]);
    }
    nnq_tensor *t[] = {&zt, &y, &gs, &gz};
    release_all(t, 4);
    free_case(&c);
}

/* ---- 3. closed forms at and around ties and clamps (learned offset) ---- */

static void test_transitions_learned_offset(void) {
    /* s = 0.5, grid [0, 7]; z' = round(clamp(z)). x = v s. */
    const struct {
        float v, z;
        float dx, ds, dz;
    } cases[] = {
        {0.5f, 2.4f, 1, -0.5f, 0},   /* z' 2, tie to 0: q = 2, inside */
        {0.5f, 1.6f, 1, -0.5f, 0},   /* z' 2 from above */
        {1.5f, 2.5f, 1, 0.5f, 0},    /* z' 2 (tie to even), tie to 2, q = 4 */
        {4.4f, 3.49f, 1, -0.4f, 0},  /* z' 3, q = 7 = qmax */
        {4.5f, 3.6f, 0, 3, -0.5f},   /* z' 4, tie to 4, q = 8: above, qmax - z' = 3 */
        {4.6f, 2.6f, 0, 4, -0.5f},   /* z' 3, q = 8: above */
        {-2.5f, 2.2f, 1, 0.5f, 0},   /* tie to -2, q = 0 = qmin */
        {-2.6f, 2.2f, 0, -2, -0.5f}, /* q = -1: below, qmin - z' = -2 */
        {-0.6f, -3.7f, 0, 0, -0.5f}, /* z below the grid: z' 0, q = -1, below, qmin - 0 */
        {0.4f, -3.7f, 1, -0.4f, 0},  /* z' 0, q = 0: inside */
        {0.4f, 9.3f, 1, -0.4f, 0},   /* z above the grid: z' 7, q = 7: inside */
        {0.6f, 9.3f, 0, 0, -0.5f},   /* q = 8: above, qmax - z' = 0 */
    };
    const float s = 0.5f;
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fq_node f;
        fq_init(&f, 0, 7, 1, 1.0f, 1);
        float xv = cases[k].v * s;
        nnq_tensor x = vec_f(1, &xv), st = scalar_f(s), z = scalar_f(cases[k].z), y = {0};
        nnq_tensor dy = vec_f(1, (float[]){1}), gx = vec_f(1, (float[]){0});
        nnq_tensor gs = scalar_f(0), gz = scalar_f(0);
        CHECK_OK(fwd_bwd(&f.nd, &x, &st, &z, &y, &dy, &gx, &gs, &gz));
        float zr = nearbyintf(fminf(fmaxf(cases[k].z, 0), 7));
        float q = fminf(fmaxf(nearbyintf(cases[k].v) + zr, 0), 7);
        const float want_dx = cases[k].dx, want_ds = cases[k].ds, want_dz = cases[k].dz;
        bool ok = nnq_f32(&gx)[0] == want_dx && fabsf(nnq_f32(&gs)[0] - want_ds) < 1e-6f &&
                  nnq_f32(&gz)[0] == want_dz && nnq_f32(&y)[0] == s * (q - zr);
        if (!ok) {
            fprintf(stderr, "x/s %g z %g: y %g dx %g ds %g dz %g; want y %g dx %g ds %g dz %g\n",
                    cases[k].v, cases[k].z, nnq_f32(&y)[0], nnq_f32(&gx)[0], nnq_f32(&gs)[0],
                    nnq_f32(&gz)[0], s * (q - zr), want_dx, want_ds, want_dz);
            bad++;
        }
        nnq_tensor *t[] = {&x, &st, &z, &y, &dy, &gx, &gs, &gz};
        release_all(t, 8);
    }
    CHECK(bad == 0);
    /* LSQ's d scale jumps by 1 across a rounding transition (-0.5 to +0.5
     * just below / above a tie), the property that makes it learn. */
    fq_node f;
    fq_init(&f, -8, 7, 1, 1.0f, 0);
    float ds[2];
    for (int k = 0; k < 2; k++) {
        float xv = (k == 0 ? 2.4999f : 2.5001f) * 0.5f;
        nnq_tensor x = vec_f(1, &xv), st = scalar_f(0.5f), z = scalar_f(0), y = {0};
        nnq_tensor dy = vec_f(1, (float[]){1}), gs = scalar_f(0);
        CHECK_OK(fwd_bwd(&f.nd, &x, &st, &z, &y, &dy, NULL, &gs, NULL));
        ds[k] = nnq_f32(&gs)[0];
        nnq_tensor *t[] = {&x, &st, &z, &y, &dy, &gs};
        release_all(t, 6);
    }
    CHECK_NEAR(ds[0], -0.4999, 1e-4);
    CHECK_NEAR(ds[1], 0.4999, 1e-4);
}

/* ---- 4. gradient scale: backward only ---- */

static void test_grad_scale_backward_only(void) {
    const float z0[NC] = {2.3f, 6.6f, 11.2f};
    gcase c = make_case(z0, 0, 15, 0.0f, false);
    const float gsc[3] = {1.0f, 0.25f, nnq_qat_grad_scale(NX / NC, 15)};
    nnq_tensor y[3] = {{0}}, gx[3], gs[3], gz[3];
    for (int k = 0; k < 3; k++) {
        fq_node f;
        fq_init(&f, 0, 15, 1, gsc[k], 1);
        gx[k] = mk(NNQ_DT_FLOAT, 4, DIMS(2, NC, 4, 5), NULL);
        gs[k] = vec_f(NC, (float[]){0, 0, 0});
        gz[k] = vec_f(NC, (float[]){0, 0, 0});
        CHECK_OK(fwd_bwd(&f.nd, &c.x, &c.s, &c.z, &y[k], &c.dy, &gx[k], &gs[k], &gz[k]));
    }
    for (int k = 1; k < 3; k++) {
        CHECK(y[k].data && memcmp(y[0].data, y[k].data, NX * sizeof(float)) == 0);
        CHECK(memcmp(gx[0].data, gx[k].data, NX * sizeof(float)) == 0);
    }
    for (int ch = 0; ch < NC; ch++) {
        CHECK(nnq_f32(&gs[0])[ch] != 0 && nnq_f32(&gz[0])[ch] != 0);
        CHECK(nnq_f32(&gs[1])[ch] == 0.25f * nnq_f32(&gs[0])[ch]);
        CHECK(nnq_f32(&gz[1])[ch] == 0.25f * nnq_f32(&gz[0])[ch]);
        CHECK_NEAR(nnq_f32(&gs[2])[ch], gsc[2] * nnq_f32(&gs[0])[ch], 1e-6 * fabsf(nnq_f32(&gs[0])[ch]));
        CHECK_NEAR(nnq_f32(&gz[2])[ch], gsc[2] * nnq_f32(&gz[0])[ch], 1e-6 * fabsf(nnq_f32(&gz[0])[ch]));
    }
    for (int k = 0; k < 3; k++) {
        nnq_tensor *t[] = {&y[k], &gx[k], &gs[k], &gz[k]};
        release_all(t, 4);
    }
    free_case(&c);
    /* g = 1 / sqrt(N Qp) */
    CHECK_NEAR(nnq_qat_grad_scale(1000, 7), 1.0 / sqrt(7000.0), 1e-9);
    CHECK_NEAR(nnq_qat_grad_scale(576, 15), 1.0 / sqrt(576.0 * 15), 1e-9);
    CHECK(nnq_qat_grad_scale(0, 0) == 1.0f);
}

/* ---- 5. golden against PyTorch's _LearnableFakeQuantize ---- */

static void test_golden_pytorch(void) {
    static const char *const cases[] = {"lsq_per_tensor_w4", "lsq_per_channel_w3",
                                        "lsqplus_per_tensor_a4", "lsqplus_per_channel_a4"};
    static const char *const names[] = {"input_0", "input_1", "input_2", "output_0",
                                        "grad_output_0", "grad_input_0", "grad_input_1",
                                        "grad_input_2"};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[512];
        nnq_graph *g = NULL;
        snprintf(path, sizeof path, "tests/fixtures/lsq_golden/%s/model.onnx", cases[k]);
        CHECK_OK(nnq_onnx_load(path, &g));
        if (!g) continue;
        nnq_tensor t[8] = {{0}};
        bool ok = true;
        for (int i = 0; i < 8; i++) {
            snprintf(path, sizeof path, "tests/fixtures/lsq_golden/%s/test_data_set_0/%s.pb",
                     cases[k], names[i]);
            nnq_status st = nnq_onnx_load_tensor(path, &t[i], NULL);
            CHECK_OK(st);
            ok = ok && st == NNQ_OK;
        }
        const nnq_node *nd = &g->nodes[0];
        CHECK(ok && g->n_nodes == 1 && strcmp(nd->op_type, "FakeQuant") == 0);
        if (ok) {
            const int64_t n = nnq_tensor_numel(&t[0]), c = nnq_tensor_numel(&t[1]);
            nnq_tensor y = {0}, gx = mk(NNQ_DT_FLOAT, t[0].rank, t[0].dims, NULL);
            nnq_tensor gs = mk(NNQ_DT_FLOAT, t[1].rank, t[1].dims, NULL);
            nnq_tensor gz = mk(NNQ_DT_FLOAT, t[2].rank, t[2].dims, NULL);
            CHECK_OK(fwd_bwd(nd, &t[0], &t[1], &t[2], &y, &t[4], &gx, &gs, &gz));
            int bad_y = 0, bad_x = 0;
            for (int64_t i = 0; y.data && i < n; i++) {
                bad_y += nnq_f32(&y)[i] != nnq_f32(&t[3])[i];
                bad_x += nnq_f32(&gx)[i] != nnq_f32(&t[5])[i];
            }
            if (bad_y || bad_x) fprintf(stderr, "%s: %d Y, %d dX differ\n", cases[k], bad_y, bad_x);
            CHECK(bad_y == 0 && bad_x == 0);
            /* Parameter gradients: sums in another order; tolerance from
             * their magnitude, sum over the channel of |dY| (q range + 1). */
            const float g_sc = nnq_node_attr_float(nd, "grad_scale", 1.0f);
            const int64_t range = nnq_node_attr_int(nd, "qmax", 0) - nnq_node_attr_int(nd, "qmin", 0);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) mag += fabsf(nnq_f32(&t[4])[i]);
            mag *= g_sc * (double)(range + 1) / (double)c;
            for (int64_t ch = 0; ch < c; ch++) {
                CHECK_NEAR(nnq_f32(&gs)[ch], nnq_f32(&t[6])[ch], 1e-5 * mag);
                CHECK_NEAR(nnq_f32(&gz)[ch], nnq_f32(&t[7])[ch], 1e-5 * mag);
            }
            /* Not trivially zero. */
            CHECK(fabsf(nnq_f32(&t[6])[0]) > 1e-3f);
            nnq_tensor *r[] = {&y, &gx, &gs, &gz};
            release_all(r, 4);
        }
        for (int i = 0; i < 8; i++) nnq_tensor_release(&t[i]);
        nnq_graph_free(g);
    }
}

/* ---- 6. initialisation formulas and the LSQ+ fit ---- */

static void test_init_formulas(void) {
    const float v[6] = {-0.3f, 0.1f, 0.2f, -0.4f, 0.6f, 0.0f};
    /* LSQ: 2 mean|v| / sqrt(Qp) = 2 * (1.6 / 6) / sqrt(7) */
    CHECK_NEAR(nnq_qat_lsq_scale(v, 6, 1, 7), 2.0 * (1.6 / 6) / sqrt(7.0), 1e-6);
    /* strided: elements 0, 2, 4 */
    CHECK_NEAR(nnq_qat_lsq_scale(v, 3, 2, 15), 2.0 * (1.1 / 3) / sqrt(15.0), 1e-6);
    /* LSQ+ weights: max(|mu - 3 sd|, |mu + 3 sd|) / 2^(b-1) */
    double mu = 0.2 / 6, sq = 0;
    for (int i = 0; i < 6; i++) sq += (double)v[i] * v[i];
    double sd = sqrt(sq / 6 - mu * mu);
    CHECK_NEAR(nnq_qat_lsqp_weight_scale(v, 6, 1, 4), fmax(fabs(mu - 3 * sd), fabs(mu + 3 * sd)) / 8, 1e-6);
    CHECK(nnq_qat_lsq_scale(v, 0, 1, 7) == 0.0f);

    /* LSQ+ activation fit on hard-swish-like data (negative tail to
     * -0.375, long positive tail): better than min-max, near the best
     * (s, z) of a brute-force search, and the offset keeps negatives. */
    enum { N = 4000 };
    static float x[N];
    rng_state = 777u;
    for (int i = 0; i < N; i++) {
        float a = 0, b;
        for (int k = 0; k < 4; k++) a += frand(); /* ~ N(0, 1.33) */
        b = a * fminf(fmaxf(a + 3, 0), 6) / 6;
        x[i] = b;
    }
    float s, z, lo = 0, hi = 0;
    for (int i = 0; i < N; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    nnq_qat_lsqp_fit(x, N, 0, 15, 300, &s, &z);
    const float s_mm = (hi - lo) / 15, z_mm = nearbyintf(-lo / s_mm);
    const double e_fit = nnq_qat_qerror(x, N, s, z, 0, 15);
    const double e_mm = nnq_qat_qerror(x, N, s_mm, z_mm, 0, 15);
    double e_best = INFINITY;
    for (int zi = 0; zi <= 15; zi++)
        for (int k = 1; k <= 400; k++) {
            double e = nnq_qat_qerror(x, N, s_mm * (float)k / 400.0f, (float)zi, 0, 15);
            e_best = e < e_best ? e : e_best;
        }
    fprintf(stderr, "lsq+ fit: s %.5f z %.3f mse %.3g (min-max %.3g, grid best %.3g)\n", s, z,
            e_fit, e_mm, e_best);
    CHECK(e_fit < 0.9 * e_mm);
    CHECK(e_fit <= 1.02 * e_best);
    CHECK(nearbyintf(z) >= 1); /* negative values representable */
    /* Degenerate data: all zero gives a valid quantizer. */
    static float zeros[16];
    nnq_qat_lsqp_fit(zeros, 16, 0, 15, 10, &s, &z);
    CHECK(s > 0 && isfinite(s) && z >= 0 && z <= 15);
}

int main(void) {
    test_round_mode_is_plain_at_rounded_z();
    test_finite_differences_surrogate();
    test_finite_differences_exact();
    test_transitions_learned_offset();
    test_grad_scale_backward_only();
    test_golden_pytorch();
    test_init_formulas();
    return check_finish("test_qat_grad");
}
