/* Backward passes of the elementwise and data-movement ops: activations,
 * broadcasting arithmetic, Concat, the shape ops, Transpose, ReduceMean,
 * Softmax. Every backward is checked against central finite differences
 * (tests/gradcheck.h: in_grad pre-filled, so accumulation is checked too),
 * plus hand-computed gradients at the kinks (the conventions documented in
 * activation.c), explicit accumulate checks, and bit-identical results
 * with 1 and 2 threads. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "op_fixture.h"
#include "gradcheck.h"
#include "ops/op.h"

#define TOL 2e-3 /* FD with float forwards: observed errors are ~1e-5..1e-4 */

/* ---- helpers ---- */

/* Uniform in [-scale, scale), redrawn while within `gap` of a kink, so
 * the finite-difference step (about 1% of the RMS) never crosses one. */
static nnq_tensor mk_rand_away(int rank, const int64_t *dims, float scale, int n_kinks,
                               const float *kinks, float gap) {
    nnq_tensor t = mk(NNQ_DT_FLOAT, rank, dims, NULL);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++) {
        float v;
        bool near;
        do {
            v = scale * frand();
            near = false;
            for (int k = 0; k < n_kinks; k++) near |= fabsf(v - kinks[k]) < gap;
        } while (near);
        nnq_f32(&t)[i] = v;
    }
    return t;
}

/* Values in [lo, hi) with a random sign: divisors kept away from 0. */
static nnq_tensor mk_divisor(int rank, const int64_t *dims) {
    nnq_tensor t = mk(NNQ_DT_FLOAT, rank, dims, NULL);
    for (int64_t i = 0; i < nnq_tensor_numel(&t); i++) {
        float m = 0.5f + 0.5f * (frand() + 1.0f);
        nnq_f32(&t)[i] = frand() < 0 ? -m : m;
    }
    return t;
}

static void release_all(nnq_tensor *t, int n) {
    for (int i = 0; i < n; i++) nnq_tensor_release(&t[i]);
}

/* One finite-difference check of op over inputs in[0..n_in). */
static void fd(const char *what, const char *op, const nnq_node *nd, int n_in, nnq_tensor *in,
               int opset, int threads, const bool *wrt) {
    const nnq_tensor *inp[GRADCHECK_MAX_IO];
    for (int i = 0; i < n_in; i++) inp[i] = &in[i];
    gradcheck_spec s = gradcheck_defaults(op, nd, n_in, inp);
    if (opset) s.opset = opset;
    s.threads = threads;
    s.wrt = wrt;
    /* The threaded cases are just above the parallel threshold (32768
     * elements) and mainly exercise the split; fewer samples keep the
     * test quick on a loaded machine (thread-count independence is
     * checked exactly in test_thread_determinism). */
    if (threads > 1) s.samples = 40;
    gradcheck_expect(what, &s, TOL);
}

/* Forward + backward by hand (for hand-computed and determinism checks):
 * out is allocated; dy given; grads[i] (NULL: not wanted) are accumulated
 * into as they are. */
static nnq_status fwd_bwd(const char *op, const nnq_node *nd, int opset, int n_in,
                          const nnq_tensor *const *in, nnq_tensor *out, const nnq_tensor *dy,
                          nnq_tensor *const *grads, int threads) {
    const nnq_op_def *def = nnq_op_find(op);
    nnq_tensor *outp[1] = {out};
    const nnq_tensor *dyp[1] = {dy};
    nnq_op_args a = {.node = nd, .opset = opset, .n_in = n_in, .in = in, .n_out = 1,
                     .out = outp, .threads = threads, .training = true};
    NNQ_TRY(def->infer(&a));
    if (!out->data) NNQ_TRY(nnq_tensor_alloc(out, out->dtype, out->rank, out->dims));
    NNQ_TRY(def->forward(&a));
    a.out_grad = dyp;
    a.in_grad = grads;
    return def->backward(&a);
}

/* ---- activations ---- */

static void test_activations(void) {
    const int64_t *d = DIMS(2, 3, 4, 5);
    const float zero[] = {0.0f};
    nnq_tensor x[3] = {0};

    nnq_node relu = mk_node("Relu", NULL, 0);
    x[0] = mk_rand_away(4, d, 1.0f, 1, zero, 0.05f);
    fd("Relu", "Relu", &relu, 1, x, 0, 1, NULL);
    release_all(x, 1);

    nnq_attr la[] = {a_float("alpha", 0.1f)};
    nnq_node leaky = mk_node("LeakyRelu", la, 1);
    x[0] = mk_rand_away(4, d, 1.0f, 1, zero, 0.05f);
    fd("LeakyRelu alpha=0.1", "LeakyRelu", &leaky, 1, x, 0, 1, NULL);
    release_all(x, 1);

    nnq_node sig = mk_node("Sigmoid", NULL, 0);
    x[0] = mk_rand(4, d, 4.0f);
    fd("Sigmoid", "Sigmoid", &sig, 1, x, 0, 1, NULL);
    release_all(x, 1);

    nnq_node tanh_n = mk_node("Tanh", NULL, 0);
    x[0] = mk_rand(4, d, 2.0f);
    fd("Tanh", "Tanh", &tanh_n, 1, x, 0, 1, NULL);
    release_all(x, 1);

    /* alpha 0.3, beta 0.4: kinks where 0.3x + 0.4 is 0 or 1 */
    nnq_attr ha[] = {a_float("alpha", 0.3f), a_float("beta", 0.4f)};
    nnq_node hsig = mk_node("HardSigmoid", ha, 2);
    const float hs_kinks[] = {-4.0f / 3.0f, 2.0f};
    x[0] = mk_rand_away(4, d, 3.0f, 2, hs_kinks, 0.1f);
    fd("HardSigmoid alpha=0.3 beta=0.4", "HardSigmoid", &hsig, 1, x, 0, 1, NULL);
    release_all(x, 1);
    nnq_node hsig_d = mk_node("HardSigmoid", NULL, 0); /* defaults 0.2, 0.5 */
    const float hsd_kinks[] = {-2.5f, 2.5f};
    x[0] = mk_rand_away(4, d, 4.0f, 2, hsd_kinks, 0.1f);
    fd("HardSigmoid defaults", "HardSigmoid", &hsig_d, 1, x, 0, 1, NULL);
    release_all(x, 1);

    nnq_node hsw = mk_node("HardSwish", NULL, 0);
    const float hw_kinks[] = {-3.0f, 3.0f};
    x[0] = mk_rand_away(4, d, 5.0f, 2, hw_kinks, 0.15f);
    fd("HardSwish", "HardSwish", &hsw, 1, x, 0, 1, NULL);
    release_all(x, 1);

    /* Large enough for the threaded map. */
    x[0] = mk_rand_away(4, DIMS(2, 16, 32, 32), 5.0f, 2, hw_kinks, 0.15f);
    fd("HardSwish 32768 elems, 2 threads", "HardSwish", &hsw, 1, x, 0, 2, NULL);
    release_all(x, 1);
}

/* Gradients exactly at the kinks, and that backward adds to what is there. */
static void test_activation_kinks(void) {
    struct {
        const char *op;
        float alpha; /* LeakyRelu / HardSigmoid alpha, 0: no attribute */
        float x[5];
        float want[5]; /* d out / d x, with dy = 1 */
    } cases[] = {
        {"Relu", 0, {-1.0f, 0.0f, 1.0f, -0.0f, 2.0f}, {0, 0, 1, 0, 1}},
        {"LeakyRelu", 0.1f, {-1.0f, 0.0f, 1.0f, -0.0f, 2.0f}, {0.1f, 0.1f, 1, 0.1f, 1}},
        /* torch.nn.Hardswish: -1/2 at -3, 3/2 at 3 */
        {"HardSwish", 0, {-3.0f, 3.0f, -4.0f, 4.0f, 0.0f}, {-0.5f, 1.5f, 0, 1, 0.5f}},
        /* strictly inside only (alpha 1/4, beta 1/2: kinks at exactly +-2) */
        {"HardSigmoid", 0.25f, {-2.0f, 2.0f, 0.0f, -3.0f, 3.0f}, {0, 0, 0.25f, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_attr at[] = {a_float("alpha", cases[c].alpha), a_float("beta", 0.5f)};
        nnq_node nd = mk_node(cases[c].op, at, cases[c].alpha != 0 ? 2 : 0);
        nnq_tensor x = mk(NNQ_DT_FLOAT, 1, DIMS(5), cases[c].x), y = {0};
        nnq_tensor dy = mk(NNQ_DT_FLOAT, 1, DIMS(5), (float[]){1, 1, 1, 1, 1});
        nnq_tensor g = mk(NNQ_DT_FLOAT, 1, DIMS(5), (float[]){10, 10, 10, 10, 10});
        const nnq_tensor *in[] = {&x};
        nnq_tensor *gp[] = {&g};
        CHECK_OK(fwd_bwd(cases[c].op, &nd, 17, 1, in, &y, &dy, gp, 1));
        for (int i = 0; i < 5; i++) {
            if (fabsf(nnq_f32(&g)[i] - (10.0f + cases[c].want[i])) > 1e-6f) {
                fprintf(stderr, "%s x=%g: grad %g, want 10 + %g\n", cases[c].op,
                        cases[c].x[i], nnq_f32(&g)[i] - 10.0f, cases[c].want[i]);
                check_failures_++;
            }
        }
        nnq_tensor_release(&x);
        nnq_tensor_release(&y);
        nnq_tensor_release(&dy);
        nnq_tensor_release(&g);
    }
}

static void test_prelu(void) {
    const int64_t *d = DIMS(2, 3, 4, 5);
    const float zero[] = {0.0f};
    nnq_node nd = mk_node("PRelu", NULL, 0);
    struct {
        const char *what;
        int rank;
        const int64_t *dims;
    } slopes[] = {
        {"PRelu slope [3,1,1] (per channel)", 3, DIMS(3, 1, 1)},
        {"PRelu slope [5] (last dim)", 1, DIMS(5)},
        {"PRelu slope [1] (shared)", 1, DIMS(1)},
        {"PRelu slope [2,1,4,1]", 4, DIMS(2, 1, 4, 1)},
        {"PRelu slope same shape", 4, DIMS(2, 3, 4, 5)},
    };
    for (size_t c = 0; c < sizeof slopes / sizeof slopes[0]; c++) {
        nnq_tensor in[2];
        in[0] = mk_rand_away(4, d, 1.0f, 1, zero, 0.05f);
        in[1] = mk_rand(slopes[c].rank, slopes[c].dims, 0.5f);
        fd(slopes[c].what, "PRelu", &nd, 2, in, 0, 1, NULL);
        release_all(in, 2);
    }
    /* Threaded: reduction of the slope over N, H, W in parallel units. */
    nnq_tensor in[2];
    in[0] = mk_rand_away(4, DIMS(2, 16, 32, 32), 1.0f, 1, zero, 0.05f);
    in[1] = mk_rand(3, DIMS(16, 1, 1), 0.5f);
    fd("PRelu [2,16,32,32] slope [16,1,1], 2 threads", "PRelu", &nd, 2, in, 0, 2, NULL);
    release_all(in, 2);

    /* At x = 0: dx = slope * dy (torch), dslope = 0. */
    nnq_tensor x = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){0.0f, -2.0f, 3.0f}), y = {0};
    nnq_tensor s = mk(NNQ_DT_FLOAT, 1, DIMS(1), (float[]){0.25f});
    nnq_tensor dy = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){1.0f, 2.0f, 4.0f});
    nnq_tensor gx = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){1.0f, 1.0f, 1.0f});
    nnq_tensor gs = mk(NNQ_DT_FLOAT, 1, DIMS(1), (float[]){0.5f});
    const nnq_tensor *inp[] = {&x, &s};
    nnq_tensor *gp[] = {&gx, &gs};
    CHECK_OK(fwd_bwd("PRelu", &nd, 17, 2, inp, &y, &dy, gp, 1));
    CHECK(nnq_f32(&gx)[0] == 1.0f + 0.25f);
    CHECK(nnq_f32(&gx)[1] == 1.0f + 0.5f);
    CHECK(nnq_f32(&gx)[2] == 1.0f + 4.0f);
    CHECK(nnq_f32(&gs)[0] == 0.5f + 2.0f * -2.0f); /* only x = -2 contributes */
    nnq_tensor *xs[] = {&x, &y, &s, &dy, &gx, &gs};
    for (int i = 0; i < 6; i++) nnq_tensor_release(xs[i]);
}

/* Clip with bounds as inputs (gradients to x, min and max) and as
 * attributes; the boundary rule (clamp's: lo <= x <= hi passes). */
static void test_clip(void) {
    const int64_t *d = DIMS(3, 4, 5);
    const float kinks[] = {-0.5f, 0.6f};
    nnq_node nd = mk_node("Clip", NULL, 0);
    nnq_tensor in[3];
    in[0] = mk_rand_away(3, d, 1.0f, 2, kinks, 0.05f);
    in[1] = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){-0.5f});
    in[2] = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){0.6f});
    fd("Clip [-0.5, 0.6] wrt x, min, max", "Clip", &nd, 3, in, 13, 1, NULL);
    /* only x wanted (the bounds are constants, the common case) */
    fd("Clip wrt x only", "Clip", &nd, 3, in, 13, 1, (const bool[]){true, false, false});
    /* lo > hi: the output is hi everywhere, all gradient goes to max */
    nnq_f32(&in[1])[0] = 0.8f;
    nnq_f32(&in[2])[0] = 0.3f;
    fd("Clip lo > hi", "Clip", &nd, 3, in, 13, 1, NULL);
    nnq_tensor_release(&in[2]);
    /* min only (max omitted) */
    nnq_f32(&in[1])[0] = -0.5f;
    fd("Clip min only", "Clip", &nd, 2, in, 13, 1, NULL);
    release_all(in, 2);

    /* opset 6 attributes, ReLU6-like */
    nnq_attr at[] = {a_float("min", 0.0f), a_float("max", 6.0f)};
    nnq_node nd6 = mk_node("Clip", at, 2);
    const float k6[] = {0.0f, 6.0f};
    in[0] = mk_rand_away(3, d, 8.0f, 2, k6, 0.2f);
    fd("Clip attrs [0, 6]", "Clip", &nd6, 1, in, 6, 1, NULL);
    release_all(in, 1);

    /* Boundaries: x == lo and x == hi pass the gradient (torch.clamp). */
    nnq_tensor x = mk(NNQ_DT_FLOAT, 1, DIMS(4), (float[]){0.0f, 6.0f, -1.0f, 7.0f}), y = {0};
    nnq_tensor dy = mk(NNQ_DT_FLOAT, 1, DIMS(4), (float[]){1.0f, 2.0f, 4.0f, 8.0f});
    nnq_tensor lo = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){0.0f});
    nnq_tensor hi = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){6.0f});
    nnq_tensor gx = mk(NNQ_DT_FLOAT, 1, DIMS(4), NULL);
    nnq_tensor glo = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){100.0f});
    nnq_tensor ghi = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){200.0f});
    const nnq_tensor *inp[] = {&x, &lo, &hi};
    nnq_tensor *gp[] = {&gx, &glo, &ghi};
    CHECK_OK(fwd_bwd("Clip", &nd, 13, 3, inp, &y, &dy, gp, 1));
    CHECK(nnq_f32(&gx)[0] == 1.0f && nnq_f32(&gx)[1] == 2.0f);
    CHECK(nnq_f32(&gx)[2] == 0.0f && nnq_f32(&gx)[3] == 0.0f);
    CHECK(nnq_f32(&glo)[0] == 104.0f); /* x = -1 < lo */
    CHECK(nnq_f32(&ghi)[0] == 208.0f); /* x = 7 > hi */
    nnq_tensor *all[] = {&x, &y, &dy, &lo, &hi, &gx, &glo, &ghi};
    for (int i = 0; i < 8; i++) nnq_tensor_release(all[i]);
}

/* ---- broadcasting arithmetic ---- */

static void test_binary(void) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div"};
    struct {
        const char *what;
        int ra;
        const int64_t *da;
        int rb;
        const int64_t *db;
        int threads;
    } shapes[] = {
        {"same shape", 3, DIMS(2, 3, 4), 3, DIMS(2, 3, 4), 1},
        {"[2,3,4,5] op [3,1,1]", 4, DIMS(2, 3, 4, 5), 3, DIMS(3, 1, 1), 1},
        {"[3,1,1] op [2,3,4,5]", 3, DIMS(3, 1, 1), 4, DIMS(2, 3, 4, 5), 1},
        {"[2,1,4] op [3,1] (1s both sides)", 3, DIMS(2, 1, 4), 2, DIMS(3, 1), 1},
        {"[4,1,5,1] op [1,3,1,2]", 4, DIMS(4, 1, 5, 1), 4, DIMS(1, 3, 1, 2), 1},
        {"scalar op [2,3]", 0, NULL, 2, DIMS(2, 3), 1},
        {"[2,3] op [1]", 2, DIMS(2, 3), 1, DIMS(1), 1},
        {"[2,16,32,32] op [16,1,1], 2 thr", 4, DIMS(2, 16, 32, 32), 3, DIMS(16, 1, 1), 2},
        {"[4,8,32,32] op [1,8,32,32], 2 thr", 4, DIMS(4, 8, 32, 32), 4, DIMS(1, 8, 32, 32), 2},
        {"same shape 32768, 2 thr", 2, DIMS(128, 256), 2, DIMS(128, 256), 2},
    };
    for (int o = 0; o < 4; o++) {
        nnq_node nd = mk_node(ops[o], NULL, 0);
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            char what[128];
            nnq_tensor in[2];
            in[0] = mk_rand(shapes[c].ra, shapes[c].da, 1.0f);
            in[1] = o == 3 ? mk_divisor(shapes[c].rb, shapes[c].db)
                           : mk_rand(shapes[c].rb, shapes[c].db, 1.0f);
            snprintf(what, sizeof what, "%s %s", ops[o], shapes[c].what);
            fd(what, ops[o], &nd, 2, in, 0, shapes[c].threads, NULL);
            release_all(in, 2);
        }
    }
    /* One operand constant: its gradient is not asked for. */
    nnq_node mul = mk_node("Mul", NULL, 0);
    nnq_tensor in[2] = {mk_rand(2, DIMS(3, 4), 1.0f), mk_rand(1, DIMS(4), 1.0f)};
    fd("Mul wrt a only", "Mul", &mul, 2, in, 0, 1, (const bool[]){true, false});
    fd("Mul wrt b only", "Mul", &mul, 2, in, 0, 1, (const bool[]){false, true});
    release_all(in, 2);
}

/* Hand-computed broadcast reduction with pre-filled gradients:
 * y = a [2,3] + b [3]; da = dy, db = column sums of dy. */
static void test_binary_accumulate(void) {
    nnq_node nd = mk_node("Sub", NULL, 0);
    nnq_tensor a = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6}), y = {0};
    nnq_tensor b = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){1, 1, 1});
    nnq_tensor dy = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){1, 2, 3, 10, 20, 30});
    nnq_tensor ga = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){5, 5, 5, 5, 5, 5});
    nnq_tensor gb = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){100, 200, 300});
    const nnq_tensor *in[] = {&a, &b};
    nnq_tensor *gp[] = {&ga, &gb};
    CHECK_OK(fwd_bwd("Sub", &nd, 17, 2, in, &y, &dy, gp, 1));
    const float want_a[] = {6, 7, 8, 15, 25, 35}, want_b[] = {100 - 11, 200 - 22, 300 - 33};
    for (int i = 0; i < 6; i++) CHECK(nnq_f32(&ga)[i] == want_a[i]);
    for (int i = 0; i < 3; i++) CHECK(nnq_f32(&gb)[i] == want_b[i]);
    nnq_tensor *all[] = {&a, &b, &y, &dy, &ga, &gb};
    for (int i = 0; i < 6; i++) nnq_tensor_release(all[i]);
}

/* Threads own disjoint gradient elements and sum in a fixed order: the
 * result must not depend on the thread count, bit for bit. */
static void test_thread_determinism(void) {
    struct {
        const char *op;
        int rb;
        const int64_t *db;
    } cases[] = {
        {"Mul", 3, DIMS(16, 1, 1)},
        {"Add", 4, DIMS(1, 16, 32, 32)},
        {"Div", 0, NULL},
        {"PRelu", 3, DIMS(16, 1, 1)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_node nd = mk_node(cases[c].op, NULL, 0);
        nnq_tensor a = mk_rand(4, DIMS(8, 16, 32, 32), 1.0f);
        nnq_tensor b = mk_divisor(cases[c].rb, cases[c].db);
        nnq_tensor dy = mk_rand(4, DIMS(8, 16, 32, 32), 1.0f);
        nnq_tensor y1 = {0}, y2 = {0}, ga1, gb1, ga2, gb2;
        ga1 = mk(NNQ_DT_FLOAT, 4, DIMS(8, 16, 32, 32), NULL);
        ga2 = mk(NNQ_DT_FLOAT, 4, DIMS(8, 16, 32, 32), NULL);
        gb1 = mk(NNQ_DT_FLOAT, b.rank, b.dims, NULL);
        gb2 = mk(NNQ_DT_FLOAT, b.rank, b.dims, NULL);
        const nnq_tensor *in[] = {&a, &b};
        nnq_tensor *g1[] = {&ga1, &gb1}, *g2[] = {&ga2, &gb2};
        CHECK_OK(fwd_bwd(cases[c].op, &nd, 17, 2, in, &y1, &dy, g1, 1));
        CHECK_OK(fwd_bwd(cases[c].op, &nd, 17, 2, in, &y2, &dy, g2, 2));
        bool same = memcmp(ga1.data, ga2.data, (size_t)nnq_tensor_numel(&ga1) * 4) == 0 &&
                    memcmp(gb1.data, gb2.data, (size_t)nnq_tensor_numel(&gb1) * 4) == 0;
        if (!same) fprintf(stderr, "%s: gradients differ between 1 and 2 threads\n", cases[c].op);
        CHECK(same);
        nnq_tensor *all[] = {&a, &b, &dy, &y1, &y2, &ga1, &gb1, &ga2, &gb2};
        for (int i = 0; i < 9; i++) nnq_tensor_release(all[i]);
    }
}

/* ---- data movement ---- */

static void test_concat(void) {
    nnq_attr at1[] = {a_int("axis", 1)};
    nnq_node nd = mk_node("Concat", at1, 1);
    nnq_tensor in[3] = {mk_rand(3, DIMS(2, 3, 4), 1.0f), mk_rand(3, DIMS(2, 1, 4), 1.0f),
                        mk_rand(3, DIMS(2, 5, 4), 1.0f)};
    fd("Concat axis 1 of three", "Concat", &nd, 3, in, 0, 1, NULL);
    fd("Concat, input 1 not wanted", "Concat", &nd, 3, in, 0, 1,
       (const bool[]){true, false, true});
    release_all(in, 3);
    nnq_attr atm[] = {a_int("axis", -1)};
    nnq_node ndm = mk_node("Concat", atm, 1);
    in[0] = mk_rand(2, DIMS(3, 2), 1.0f);
    in[1] = mk_rand(2, DIMS(3, 7), 1.0f);
    fd("Concat axis -1", "Concat", &ndm, 2, in, 0, 1, NULL);
    release_all(in, 2);
    nnq_attr at0[] = {a_int("axis", 0)};
    nnq_node nd0 = mk_node("Concat", at0, 1);
    in[0] = mk_rand(4, DIMS(40, 8, 8, 8), 1.0f);
    in[1] = mk_rand(4, DIMS(24, 8, 8, 8), 1.0f);
    fd("Concat axis 0, 2 threads", "Concat", &nd0, 2, in, 0, 2, NULL);
    release_all(in, 2);
}

static void test_shape_ops(void) {
    nnq_tensor in[2];
    nnq_attr fa[] = {a_int("axis", 2)};
    nnq_node flat = mk_node("Flatten", fa, 1);
    in[0] = mk_rand(4, DIMS(2, 3, 4, 5), 1.0f);
    fd("Flatten axis 2", "Flatten", &flat, 1, in, 0, 1, NULL);
    release_all(in, 1);

    nnq_node resh = mk_node("Reshape", NULL, 0);
    in[0] = mk_rand(3, DIMS(2, 3, 4), 1.0f);
    in[1] = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){4, -1});
    fd("Reshape to [4,-1]", "Reshape", &resh, 2, in, 0, 1, NULL);
    release_all(in, 2);

    nnq_node sq = mk_node("Squeeze", NULL, 0);
    in[0] = mk_rand(4, DIMS(2, 1, 3, 1), 1.0f);
    in[1] = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){1});
    fd("Squeeze axes [1]", "Squeeze", &sq, 2, in, 13, 1, NULL);
    release_all(in, 2);

    nnq_attr ua[] = {a_ints("axes", 2, DIMS(0, 3))};
    nnq_node unsq = mk_node("Unsqueeze", ua, 1);
    in[0] = mk_rand(2, DIMS(3, 4), 1.0f);
    fd("Unsqueeze axes attr [0,3]", "Unsqueeze", &unsq, 1, in, 11, 1, NULL);
    release_all(in, 1);

    nnq_node id = mk_node("Identity", NULL, 0);
    in[0] = mk_rand(2, DIMS(5, 7), 1.0f);
    fd("Identity", "Identity", &id, 1, in, 0, 1, NULL);
    release_all(in, 1);

    /* Dropout with its mask output (no gradient through the mask). */
    nnq_node drop = mk_node("Dropout", NULL, 0);
    in[0] = mk_rand(3, DIMS(4, 5, 6), 1.0f);
    const nnq_tensor *inp[] = {&in[0]};
    gradcheck_spec s = gradcheck_defaults("Dropout", &drop, 1, inp);
    s.n_out = 2;
    gradcheck_expect("Dropout (inference identity) with mask", &s, TOL);
    release_all(in, 1);

    /* Large: the threaded accumulate. */
    in[0] = mk_rand(2, DIMS(128, 256), 1.0f);
    fd("Identity 32768, 2 threads", "Identity", &id, 1, in, 0, 2, NULL);
    release_all(in, 1);
}

static void test_transpose(void) {
    nnq_tensor in[1];
    nnq_attr pa[] = {a_ints("perm", 4, DIMS(0, 2, 3, 1))};
    nnq_node nd = mk_node("Transpose", pa, 1);
    in[0] = mk_rand(4, DIMS(2, 3, 4, 5), 1.0f);
    fd("Transpose NCHW->NHWC", "Transpose", &nd, 1, in, 0, 1, NULL);
    release_all(in, 1);

    nnq_node rev = mk_node("Transpose", NULL, 0); /* default: reverse */
    in[0] = mk_rand(3, DIMS(3, 4, 5), 1.0f);
    fd("Transpose default perm", "Transpose", &rev, 1, in, 0, 1, NULL);
    release_all(in, 1);

    nnq_attr pb[] = {a_ints("perm", 3, DIMS(1, 0, 2))};
    nnq_node nd_b = mk_node("Transpose", pb, 1);
    in[0] = mk_rand(3, DIMS(1, 6, 5), 1.0f); /* moves only a size-1 dim: plain copy */
    fd("Transpose not reordering memory", "Transpose", &nd_b, 1, in, 0, 1, NULL);
    release_all(in, 1);
    in[0] = mk_rand(3, DIMS(6, 5, 7), 1.0f); /* rows copied whole */
    fd("Transpose [1,0,2]", "Transpose", &nd_b, 1, in, 0, 1, NULL);
    release_all(in, 1);

    nnq_attr pc[] = {a_ints("perm", 2, DIMS(1, 0))};
    nnq_node nd_c = mk_node("Transpose", pc, 1);
    in[0] = mk_rand(2, DIMS(300, 130), 1.0f); /* partial tiles, threads */
    fd("Transpose [300,130] 2 threads", "Transpose", &nd_c, 1, in, 0, 2, NULL);
    release_all(in, 1);
}

static void test_reduce_mean(void) {
    nnq_tensor in[2];
    nnq_attr a1[] = {a_ints("axes", 2, DIMS(2, 3))};
    nnq_node gap = mk_node("ReduceMean", a1, 1);
    in[0] = mk_rand(4, DIMS(2, 3, 4, 5), 1.0f);
    fd("ReduceMean axes [2,3] keepdims", "ReduceMean", &gap, 1, in, 13, 1, NULL);
    release_all(in, 1);

    nnq_attr a2[] = {a_ints("axes", 1, DIMS(1)), a_int("keepdims", 0)};
    nnq_node mid = mk_node("ReduceMean", a2, 2);
    in[0] = mk_rand(3, DIMS(3, 4, 5), 1.0f);
    fd("ReduceMean axis 1 no keepdims", "ReduceMean", &mid, 1, in, 13, 1, NULL);
    release_all(in, 1);

    nnq_node all = mk_node("ReduceMean", NULL, 0);
    in[0] = mk_rand(3, DIMS(3, 4, 5), 1.0f);
    fd("ReduceMean all", "ReduceMean", &all, 1, in, 13, 1, NULL);
    release_all(in, 1);

    nnq_attr a3[] = {a_ints("axes", 2, DIMS(0, 2))};
    nnq_node gen = mk_node("ReduceMean", a3, 1);
    in[0] = mk_rand(4, DIMS(3, 4, 5, 2), 1.0f);
    fd("ReduceMean axes [0,2]", "ReduceMean", &gen, 1, in, 13, 1, NULL);
    release_all(in, 1);

    /* opset 18: axes as an input; only a size-1 dim reduced */
    nnq_node in18 = mk_node("ReduceMean", NULL, 0);
    in[0] = mk_rand(3, DIMS(3, 1, 5), 1.0f);
    in[1] = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){1});
    fd("ReduceMean size-1 axis (input)", "ReduceMean", &in18, 2, in, 18, 1, NULL);
    release_all(in, 2);

    nnq_attr a4[] = {a_int("noop_with_empty_axes", 1)};
    nnq_node noop = mk_node("ReduceMean", a4, 1);
    in[0] = mk_rand(2, DIMS(3, 4), 1.0f);
    fd("ReduceMean noop_with_empty_axes", "ReduceMean", &noop, 1, in, 18, 1, NULL);
    release_all(in, 1);

    nnq_attr a5[] = {a_ints("axes", 2, DIMS(-2, -1))};
    nnq_node big = mk_node("ReduceMean", a5, 1);
    in[0] = mk_rand(4, DIMS(4, 32, 16, 16), 1.0f);
    fd("ReduceMean [4,32,16,16] HW, 2 threads", "ReduceMean", &big, 1, in, 13, 2, NULL);
    release_all(in, 1);
    nnq_attr a6[] = {a_ints("axes", 1, DIMS(0))};
    nnq_node big0 = mk_node("ReduceMean", a6, 1);
    in[0] = mk_rand(3, DIMS(8, 64, 64), 1.0f);
    fd("ReduceMean [8,64,64] axis 0, 2 threads", "ReduceMean", &big0, 1, in, 13, 2, NULL);
    release_all(in, 1);
}

static void test_softmax(void) {
    nnq_tensor in[1];
    nnq_node last = mk_node("Softmax", NULL, 0);
    in[0] = mk_rand(2, DIMS(4, 10), 3.0f);
    fd("Softmax opset 13 axis -1", "Softmax", &last, 1, in, 13, 1, NULL);
    release_all(in, 1);

    nnq_attr a1[] = {a_int("axis", 1)};
    nnq_node ax1 = mk_node("Softmax", a1, 1);
    in[0] = mk_rand(4, DIMS(2, 5, 3, 4), 3.0f);
    fd("Softmax opset 13 axis 1 (strided)", "Softmax", &ax1, 1, in, 13, 1, NULL);
    release_all(in, 1);
    in[0] = mk_rand(3, DIMS(2, 3, 70), 3.0f); /* inner 70 > one tile of columns */
    fd("Softmax opset 13 axis 1, inner 70", "Softmax", &ax1, 1, in, 13, 1, NULL);
    release_all(in, 1);
    /* opset 11: coerced to 2-D at axis 1, rows of 3*4 */
    in[0] = mk_rand(3, DIMS(2, 3, 4), 3.0f);
    fd("Softmax opset 11 axis 1 (2-D rows)", "Softmax", &ax1, 1, in, 11, 1, NULL);
    release_all(in, 1);
    nnq_node dflt = mk_node("Softmax", NULL, 0); /* opset 11 default axis 1 */
    in[0] = mk_rand(3, DIMS(3, 2, 5), 3.0f);
    fd("Softmax opset 11 default axis", "Softmax", &dflt, 1, in, 11, 1, NULL);
    release_all(in, 1);
    in[0] = mk_rand(2, DIMS(330, 100), 3.0f);
    fd("Softmax [330,100], 2 threads", "Softmax", &last, 1, in, 13, 2, NULL);
    release_all(in, 1);
}

/* Every op this file covers has a backward registered. */
static void test_registered(void) {
    const char *ops[] = {"Relu",   "Clip",    "LeakyRelu", "PRelu",     "Sigmoid",  "HardSigmoid",
                         "HardSwish", "Tanh", "Add",       "Sub",       "Mul",      "Div",
                         "Concat", "Flatten", "Reshape",   "Squeeze",   "Unsqueeze", "Identity",
                         "Dropout", "Transpose", "ReduceMean", "Softmax"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const nnq_op_def *d = nnq_op_find(ops[i]);
        CHECK(d && d->backward);
        if (!d || !d->backward) fprintf(stderr, "no backward for %s\n", ops[i]);
    }
}

int main(void) {
    rng_state = 2024u;
    test_registered();
    test_activations();
    test_activation_kinks();
    test_prelu();
    test_clip();
    test_binary();
    test_binary_accumulate();
    test_thread_determinism();
    test_concat();
    test_shape_ops();
    test_transpose();
    test_reduce_mean();
    test_softmax();
    return check_finish("test_grad_elementwise");
}
