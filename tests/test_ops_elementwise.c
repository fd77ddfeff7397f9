/* Elementwise, shape and data-movement ops, called through their defs:
 * activations, broadcasting arithmetic, ReduceMean, Flatten/Reshape/
 * Squeeze/Unsqueeze/Identity/Dropout/Constant, Concat, Transpose, Softmax.
 * Each op is checked against hand-computed values and against naive
 * loops written here, plus the error statuses of malformed cases. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "op_fixture.h"
#include "ops/op.h"

#define MAX_IO 8

/* ---- helpers: nodes, tensors, running an op ---- */

/* A shape only, no data (as at graph preparation). */
static nnq_tensor shape_only(nnq_dtype dt, int rank, const int64_t *dims) {
    nnq_tensor t = {0};
    CHECK_OK(nnq_tensor_set_shape(&t, dt, rank, dims));
    return t;
}

/* infer, allocate the outputs, forward (as the executor does). */
static nnq_status run_op(const nnq_op_def *def, const nnq_node *nd, int opset, int n_in,
                         const nnq_tensor *const *in, int n_out, nnq_tensor *out, int threads) {
    nnq_tensor *outp[MAX_IO];
    for (int i = 0; i < n_out; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].rank = -1;
        outp[i] = &out[i];
    }
    nnq_op_args a = {.node = nd, .opset = opset, .n_in = n_in, .in = in, .n_out = n_out,
                     .out = outp, .threads = threads};
    NNQ_TRY(def->infer(&a));
    for (int i = 0; i < n_out; i++)
        NNQ_TRY(nnq_tensor_alloc(&out[i], out[i].dtype, out[i].rank, out[i].dims));
    return def->forward(&a);
}

/* infer only. */
static nnq_status infer_op(const nnq_op_def *def, const nnq_node *nd, int opset, int n_in,
                           const nnq_tensor *const *in, nnq_tensor *out) {
    nnq_tensor *outp[1] = {out};
    memset(out, 0, sizeof *out);
    out->rank = -1;
    nnq_op_args a = {.node = nd, .opset = opset, .n_in = n_in, .in = in, .n_out = 1,
                     .out = outp, .threads = 1};
    return def->infer(&a);
}

static int shape_is(const nnq_tensor *t, int rank, const int64_t *dims) {
    if (t->rank != rank) return 0;
    for (int i = 0; i < rank; i++)
        if (t->dims[i] != dims[i]) return 0;
    return 1;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as NaN */
    }
    return m;
}

/* Index into an operand of shape (rx, dx) broadcast against output
 * (ry, dy) at output flat index `flat` (numpy rules, right-aligned). */
static int64_t bcast_index(int64_t flat, int ry, const int64_t *dy, int rx, const int64_t *dx) {
    int64_t idx = 0, stride = 1;
    for (int i = ry - 1; i >= 0; i--) {
        int64_t c = flat % dy[i];
        flat /= dy[i];
        int k = i - (ry - rx);
        if (k < 0) continue;
        if (dx[k] != 1) idx += c * stride;
        stride *= dx[k];
    }
    return idx;
}

/* ---- Add / Sub / Mul / Div ---- */

static const nnq_op_def *const binary_defs[4] = {&nnq_op_Add, &nnq_op_Sub, &nnq_op_Mul,
                                                 &nnq_op_Div};

static float ref_binary(int op, float x, float z) {
    switch (op) {
    case 0: return x + z;
    case 1: return x - z;
    case 2: return x * z;
    default: return x / z;
    }
}

static void test_binary_hand(void) {
    /* (2,3) + (3) and (2,1) * (1,3): values worked out by hand */
    nnq_tensor x = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nnq_tensor b = mk(NNQ_DT_FLOAT, 1, DIMS(3), (float[]){10, 20, 30});
    nnq_tensor c = mk(NNQ_DT_FLOAT, 2, DIMS(2, 1), (float[]){2, -1});
    nnq_tensor r = mk(NNQ_DT_FLOAT, 2, DIMS(1, 3), (float[]){1, 2, 4});
    nnq_tensor y;
    nnq_node nd = mk_node("Add", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&x, &b}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(2, 3)));
    const float add_want[] = {11, 22, 33, 14, 25, 36};
    CHECK(max_abs_diff(nnq_f32(&y), add_want, 6) == 0);
    nnq_tensor_release(&y);
    nd = mk_node("Mul", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Mul, &nd, 14, 2, (const nnq_tensor *[]){&c, &r}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(2, 3)));
    const float mul_want[] = {2, 4, 8, -1, -2, -4};
    CHECK(max_abs_diff(nnq_f32(&y), mul_want, 6) == 0);
    nnq_tensor_release(&y);
    nd = mk_node("Div", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Div, &nd, 14, 2, (const nnq_tensor *[]){&b, &c}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(2, 3)));
    const float div_want[] = {5, 10, 15, -10, -20, -30};
    CHECK(max_abs_diff(nnq_f32(&y), div_want, 6) == 0);
    nnq_tensor_release(&y);
    nd = mk_node("Sub", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Sub, &nd, 14, 2, (const nnq_tensor *[]){&b, &x}, 1, &y, 1));
    const float sub_want[] = {9, 18, 27, 6, 15, 24};
    CHECK(max_abs_diff(nnq_f32(&y), sub_want, 6) == 0);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    nnq_tensor_release(&b);
    nnq_tensor_release(&c);
    nnq_tensor_release(&r);
}

typedef struct bcase {
    int ra;
    int64_t da[6];
    int rb;
    int64_t db[6];
    int ry;
    int64_t dy[6];
    int threads;
} bcase;

static void test_binary_random(void) {
    static const bcase cases[] = {
        {4, {2, 3, 4, 5}, 4, {2, 3, 4, 5}, 4, {2, 3, 4, 5}, 1},  /* same shape */
        {4, {2, 3, 4, 5}, 0, {0}, 4, {2, 3, 4, 5}, 1},           /* scalar right */
        {0, {0}, 3, {3, 4, 5}, 3, {3, 4, 5}, 1},                 /* scalar left */
        {4, {2, 3, 4, 5}, 3, {3, 1, 1}, 4, {2, 3, 4, 5}, 1},     /* per-channel */
        {3, {3, 1, 1}, 4, {2, 3, 4, 5}, 4, {2, 3, 4, 5}, 1},     /* per-channel, left */
        {3, {3, 4, 5}, 1, {5}, 3, {3, 4, 5}, 1},                 /* last dim */
        {3, {3, 1, 5}, 3, {1, 4, 1}, 3, {3, 4, 5}, 1},           /* size-1 both sides */
        {2, {4, 1}, 1, {3}, 2, {4, 3}, 1},                       /* rank mismatch + 1s */
        {5, {2, 1, 3, 1, 4}, 4, {5, 1, 1, 4}, 5, {2, 5, 3, 1, 4}, 1}, /* mixed */
        {1, {1}, 2, {2, 3}, 2, {2, 3}, 1},                       /* [1] acts as scalar */
        {2, {0, 3}, 1, {3}, 2, {0, 3}, 1},                       /* empty */
        {4, {4, 64, 32, 32}, 3, {64, 1, 1}, 4, {4, 64, 32, 32}, 2}, /* threaded per-channel */
        {2, {300, 257}, 2, {300, 1}, 2, {300, 257}, 2},          /* threaded column bcast */
        {3, {5, 70, 100}, 3, {5, 70, 100}, 3, {5, 70, 100}, 2},  /* threaded same shape */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bcase *bc = &cases[c];
        nnq_tensor x = mk_rand(bc->ra, bc->da, 2.0f);
        nnq_tensor z = mk_rand(bc->rb, bc->db, 2.0f);
        for (int64_t i = 0; i < nnq_tensor_numel(&z); i++) /* keep divisors away from 0 */
            if (fabsf(nnq_f32(&z)[i]) < 0.1f) nnq_f32(&z)[i] = 0.5f;
        for (int op = 0; op < 4; op++) {
            nnq_node nd = mk_node(binary_defs[op]->op_type, NULL, 0);
            nnq_tensor y;
            CHECK_OK(run_op(binary_defs[op], &nd, 14, 2, (const nnq_tensor *[]){&x, &z}, 1, &y,
                            bc->threads));
            CHECK(shape_is(&y, bc->ry, bc->dy));
            int64_t n = nnq_tensor_numel(&y);
            int bad = 0;
            for (int64_t i = 0; i < n; i++) {
                float xv = nnq_f32(&x)[bcast_index(i, y.rank, y.dims, x.rank, x.dims)];
                float zv = nnq_f32(&z)[bcast_index(i, y.rank, y.dims, z.rank, z.dims)];
                if (nnq_f32(&y)[i] != ref_binary(op, xv, zv)) bad++;
            }
            if (bad) fprintf(stderr, "binary case %zu op %d: %d mismatches\n", c, op, bad);
            CHECK(bad == 0);
            nnq_tensor_release(&y);
        }
        nnq_tensor_release(&x);
        nnq_tensor_release(&z);
    }
}

static void test_binary_int(void) {
    nnq_tensor y;
    nnq_node nd;
    /* uint8 wraps modulo 256 (as numpy does); x / 0 gives 0 */
    nnq_tensor a = mk(NNQ_DT_UINT8, 1, DIMS(4), (uint8_t[]){200, 3, 16, 7});
    nnq_tensor b = mk(NNQ_DT_UINT8, 1, DIMS(4), (uint8_t[]){100, 5, 17, 0});
    const uint8_t want[4][4] = {{44, 8, 33, 7}, {100, 254, 255, 7}, {32, 15, 16, 0},
                                {2, 0, 0, 0}};
    for (int op = 0; op < 4; op++) {
        nd = mk_node(binary_defs[op]->op_type, NULL, 0);
        CHECK_OK(run_op(binary_defs[op], &nd, 14, 2, (const nnq_tensor *[]){&a, &b}, 1, &y, 1));
        CHECK(y.dtype == NNQ_DT_UINT8);
        CHECK(memcmp(y.data, want[op], 4) == 0);
        nnq_tensor_release(&y);
    }
    /* int64 shape arithmetic: truncating division, MIN / -1 wraps */
    nnq_tensor s = mk(NNQ_DT_INT64, 1, DIMS(4), (int64_t[]){-7, 7, INT64_MIN, 12});
    nnq_tensor t = mk(NNQ_DT_INT64, 1, DIMS(4), (int64_t[]){2, -2, -1, 4});
    nd = mk_node("Div", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Div, &nd, 14, 2, (const nnq_tensor *[]){&s, &t}, 1, &y, 1));
    const int64_t div_want[] = {-3, -3, INT64_MIN, 3};
    CHECK(memcmp(y.data, div_want, sizeof div_want) == 0);
    nnq_tensor_release(&y);
    /* int32 broadcast: (2,3) * (3) */
    nnq_tensor u = mk(NNQ_DT_INT32, 2, DIMS(2, 3), (int32_t[]){1, 2, 3, -4, 5, -6});
    nnq_tensor v = mk(NNQ_DT_INT32, 1, DIMS(3), (int32_t[]){3, -1, 2});
    nd = mk_node("Mul", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Mul, &nd, 14, 2, (const nnq_tensor *[]){&u, &v}, 1, &y, 1));
    const int32_t mul_want[] = {3, -2, 6, -12, -5, -12};
    CHECK(y.dtype == NNQ_DT_INT32 && memcmp(y.data, mul_want, sizeof mul_want) == 0);
    nnq_tensor_release(&y);
    /* int8 and double */
    nnq_tensor i8a = mk(NNQ_DT_INT8, 1, DIMS(3), (int8_t[]){127, -128, -5});
    nnq_tensor i8b = mk(NNQ_DT_INT8, 0, NULL, (int8_t[]){1});
    nd = mk_node("Add", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&i8a, &i8b}, 1, &y, 1));
    const int8_t add8_want[] = {-128, -127, -4};
    CHECK(memcmp(y.data, add8_want, 3) == 0);
    nnq_tensor_release(&y);
    nnq_tensor da = mk(NNQ_DT_DOUBLE, 1, DIMS(2), (double[]){1.0, 1e300});
    nnq_tensor db = mk(NNQ_DT_DOUBLE, 1, DIMS(2), (double[]){3.0, 1e-300});
    nd = mk_node("Div", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Div, &nd, 14, 2, (const nnq_tensor *[]){&da, &db}, 1, &y, 1));
    CHECK(((double *)y.data)[0] == 1.0 / 3.0 && isinf(((double *)y.data)[1]));
    nnq_tensor_release(&y);
    nnq_tensor *all[] = {&a, &b, &s, &t, &u, &v, &i8a, &i8b, &da, &db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nnq_tensor_release(all[i]);
}

static void test_binary_errors(void) {
    nnq_node nd = mk_node("Add", NULL, 0);
    nnq_tensor y;
    nnq_tensor a = shape_only(NNQ_DT_FLOAT, 2, DIMS(2, 3));
    nnq_tensor b = shape_only(NNQ_DT_FLOAT, 1, DIMS(4));
    nnq_tensor c = shape_only(NNQ_DT_INT64, 1, DIMS(3));
    nnq_tensor d = shape_only(NNQ_DT_BOOL, 1, DIMS(3));
    nnq_tensor e = shape_only(NNQ_DT_FLOAT, 3, DIMS(2, 1, 3));
    nnq_tensor f = shape_only(NNQ_DT_FLOAT, 3, DIMS(4, 2, 2));
    CHECK_STATUS(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&a, &b}, &y),
                 NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "n0") != NULL); /* the message names the node */
    CHECK_STATUS(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&e, &f}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&a, &c}, &y),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&d, &d}, &y),
                 NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "bool") != NULL || strstr(nnq_last_error(), "BOOL") != NULL);
    /* unknown dims (-1) stay unknown unless the other side fixes them */
    nnq_tensor u = shape_only(NNQ_DT_FLOAT, 2, DIMS(-1, 3));
    nnq_tensor v = shape_only(NNQ_DT_FLOAT, 2, DIMS(1, 3));
    nnq_tensor w = shape_only(NNQ_DT_FLOAT, 2, DIMS(5, 1));
    CHECK_OK(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&u, &v}, &y));
    CHECK(shape_is(&y, 2, DIMS(-1, 3)));
    CHECK_OK(infer_op(&nnq_op_Add, &nd, 14, 2, (const nnq_tensor *[]){&u, &w}, &y));
    CHECK(shape_is(&y, 2, DIMS(5, 3)));
}

/* ---- activations ---- */

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_activations(void) {
    const float xs[] = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f, 7.0f};
    nnq_tensor x = mk(NNQ_DT_FLOAT, 1, DIMS(6), xs);
    nnq_tensor y;
    nnq_attr at[2];
    nnq_node nd;

    nd = mk_node("Relu", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Relu, &nd, 14, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){0, 0, 0, 0.25f, 2, 7}, 6) == 0);
    nnq_tensor_release(&y);

    at[0] = a_float("alpha", 0.1f);
    nd = mk_node("LeakyRelu", at, 1);
    CHECK_OK(run_op(&nnq_op_LeakyRelu, &nd, 16, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-0.3f, -0.05f, 0, 0.25f, 2, 7}, 6) < 1e-7);
    nnq_tensor_release(&y);
    nd = mk_node("LeakyRelu", NULL, 0); /* default alpha 0.01 */
    CHECK_OK(run_op(&nnq_op_LeakyRelu, &nd, 16, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-0.03f, -0.005f, 0, 0.25f, 2, 7}, 6) < 1e-7);
    nnq_tensor_release(&y);

    at[0] = a_float("alpha", 0.5f);
    at[1] = a_float("beta", 0.6f);
    nd = mk_node("HardSigmoid", at, 2);
    CHECK_OK(run_op(&nnq_op_HardSigmoid, &nd, 6, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){0, 0.35f, 0.6f, 0.725f, 1, 1}, 6) < 1e-6);
    nnq_tensor_release(&y);
    nd = mk_node("HardSigmoid", NULL, 0); /* 0.2 x + 0.5 */
    CHECK_OK(run_op(&nnq_op_HardSigmoid, &nd, 6, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){0, 0.4f, 0.5f, 0.55f, 0.9f, 1}, 6) < 1e-6);
    nnq_tensor_release(&y);

    nd = mk_node("HardSwish", NULL, 0); /* x * clamp(x/6 + 1/2, 0, 1) */
    CHECK_OK(run_op(&nnq_op_HardSwish, &nd, 14, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    const float hs_want[] = {0, -0.5f * (0.5f - 0.5f / 6), 0, 0.25f * (0.5f + 0.25f / 6),
                             2 * (0.5f + 2.0f / 6), 7};
    CHECK(max_abs_diff(nnq_f32(&y), hs_want, 6) < 1e-6);
    nnq_tensor_release(&y);

    /* Sigmoid and Tanh on random values against libm in double, and
     * sigmoid at extreme inputs: finite, in [0, 1], no overflow. */
    nnq_tensor r = mk_rand(2, DIMS(50, 40), 8.0f);
    float ext[] = {-1000.0f, -100.0f, -88.0f, 88.0f, 100.0f, 1000.0f, -INFINITY, INFINITY};
    memcpy(nnq_f32(&r), ext, sizeof ext);
    float ref[2000];
    nd = mk_node("Sigmoid", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Sigmoid, &nd, 13, 1, (const nnq_tensor *[]){&r}, 1, &y, 2));
    for (int i = 0; i < 2000; i++) ref[i] = (float)sigmoid_ref(nnq_f32(&r)[i]);
    CHECK(max_abs_diff(nnq_f32(&y), ref, 2000) < 1e-6);
    CHECK(check_nmse(nnq_f32(&y), ref, 2000) < 1e-12);
    for (int i = 0; i < 8; i++) CHECK(nnq_f32(&y)[i] >= 0.0f && nnq_f32(&y)[i] <= 1.0f);
    CHECK(nnq_f32(&y)[0] == 0.0f && nnq_f32(&y)[5] == 1.0f && nnq_f32(&y)[1] < 1e-40f);
    nnq_tensor_release(&y);
    nd = mk_node("Tanh", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Tanh, &nd, 13, 1, (const nnq_tensor *[]){&r}, 1, &y, 1));
    for (int i = 0; i < 2000; i++) ref[i] = (float)tanh((double)nnq_f32(&r)[i]);
    CHECK(max_abs_diff(nnq_f32(&y), ref, 2000) < 1e-6);
    nnq_tensor_release(&y);

    /* threaded relu over a large tensor against a naive loop */
    nnq_tensor big = mk_rand(1, DIMS(100003), 1.0f);
    nd = mk_node("Relu", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Relu, &nd, 14, 1, (const nnq_tensor *[]){&big}, 1, &y, 2));
    int bad = 0;
    for (int i = 0; i < 100003; i++) {
        float v = nnq_f32(&big)[i];
        if (nnq_f32(&y)[i] != (v > 0 ? v : 0)) bad++;
    }
    CHECK(bad == 0);
    nnq_tensor_release(&y);

    /* float only */
    nnq_tensor xi = shape_only(NNQ_DT_INT32, 1, DIMS(3));
    CHECK_STATUS(infer_op(&nnq_op_Sigmoid, &nd, 13, 1, (const nnq_tensor *[]){&xi}, &y),
                 NNQ_ERR_UNSUPPORTED);
    nnq_tensor_release(&x);
    nnq_tensor_release(&r);
    nnq_tensor_release(&big);
}

static void test_clip(void) {
    nnq_tensor x = mk(NNQ_DT_FLOAT, 1, DIMS(5), (float[]){-3, -1, 0, 1, 3});
    nnq_tensor lo = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){-1.5f});
    nnq_tensor hi = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){0.5f});
    nnq_tensor y;
    nnq_node nd = mk_node("Clip", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 3, (const nnq_tensor *[]){&x, &lo, &hi}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-1.5f, -1, 0, 0.5f, 0.5f}, 5) == 0);
    nnq_tensor_release(&y);
    /* min omitted (NULL), max given */
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 3, (const nnq_tensor *[]){&x, NULL, &hi}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-3, -1, 0, 0.5f, 0.5f}, 5) == 0);
    nnq_tensor_release(&y);
    /* only min */
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 2, (const nnq_tensor *[]){&x, &lo}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-1.5f, -1, 0, 1, 3}, 5) == 0);
    nnq_tensor_release(&y);
    /* min > max: everything becomes max */
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 3, (const nnq_tensor *[]){&x, &hi, &lo}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-1.5f, -1.5f, -1.5f, -1.5f, -1.5f}, 5) == 0);
    nnq_tensor_release(&y);
    /* opset 6: bounds as attributes */
    nnq_attr at[2] = {a_float("min", -0.5f), a_float("max", 2.0f)};
    nnq_node old = mk_node("Clip", at, 2);
    CHECK_OK(run_op(&nnq_op_Clip, &old, 6, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-0.5f, -0.5f, 0, 1, 2}, 5) == 0);
    nnq_tensor_release(&y);
    /* int8: omitted bounds default to the type's range */
    nnq_tensor xi = mk(NNQ_DT_INT8, 1, DIMS(4), (int8_t[]){-128, -5, 7, 127});
    nnq_tensor mi = mk(NNQ_DT_INT8, 0, NULL, (int8_t[]){-6});
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 1, (const nnq_tensor *[]){&xi}, 1, &y, 1));
    CHECK(y.dtype == NNQ_DT_INT8 && memcmp(y.data, xi.data, 4) == 0);
    nnq_tensor_release(&y);
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 2, (const nnq_tensor *[]){&xi, &mi}, 1, &y, 1));
    CHECK(memcmp(y.data, (int8_t[]){-6, -5, 7, 127}, 4) == 0);
    nnq_tensor_release(&y);
    CHECK_OK(run_op(&nnq_op_Clip, &nd, 13, 3, (const nnq_tensor *[]){&xi, NULL, &mi}, 1, &y, 1));
    CHECK(memcmp(y.data, (int8_t[]){-128, -6, -6, -6}, 4) == 0);
    nnq_tensor_release(&y);
    /* bound dtype must match, bounds must be scalars */
    CHECK_STATUS(infer_op(&nnq_op_Clip, &nd, 13, 2, (const nnq_tensor *[]){&x, &mi}, &y),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(infer_op(&nnq_op_Clip, &nd, 13, 2, (const nnq_tensor *[]){&x, &x}, &y),
                 NNQ_ERR_SHAPE);
    nnq_tensor_release(&x);
    nnq_tensor_release(&lo);
    nnq_tensor_release(&hi);
    nnq_tensor_release(&xi);
    nnq_tensor_release(&mi);
}

static void test_prelu(void) {
    nnq_node nd = mk_node("PRelu", NULL, 0);
    nnq_tensor y;
    /* hand case: per-channel slope (2,1) on (2,2) */
    nnq_tensor x = mk(NNQ_DT_FLOAT, 2, DIMS(2, 2), (float[]){-1, 2, -4, 8});
    nnq_tensor s = mk(NNQ_DT_FLOAT, 2, DIMS(2, 1), (float[]){0.5f, 0.25f});
    CHECK_OK(run_op(&nnq_op_PRelu, &nd, 16, 2, (const nnq_tensor *[]){&x, &s}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){-0.5f, 2, -1, 8}, 4) == 0);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    nnq_tensor_release(&s);
    /* random: slope (C,1,1), (W), same shape, scalar on (N,C,H,W) */
    const struct {
        int rs;
        int64_t ds[4];
        int threads;
    } cases[] = {{3, {6, 1, 1}, 1}, {1, {9}, 1}, {4, {2, 6, 7, 9}, 1}, {0, {0}, 1}, {1, {1}, 2}};
    nnq_tensor xr = mk_rand(4, DIMS(2, 6, 7, 9), 3.0f);
    nnq_tensor big = mk_rand(4, DIMS(2, 64, 32, 32), 3.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_tensor *xx = cases[c].threads > 1 ? &big : &xr;
        nnq_tensor sr = mk_rand(cases[c].rs, cases[c].ds, 1.0f);
        CHECK_OK(run_op(&nnq_op_PRelu, &nd, 16, 2, (const nnq_tensor *[]){xx, &sr}, 1, &y,
                        cases[c].threads));
        CHECK(nnq_shape_equal(&y, xx));
        int bad = 0;
        for (int64_t i = 0; i < nnq_tensor_numel(xx); i++) {
            float v = nnq_f32(xx)[i];
            float sv = nnq_f32(&sr)[bcast_index(i, xx->rank, xx->dims, sr.rank, sr.dims)];
            if (nnq_f32(&y)[i] != (v < 0 ? sv * v : v)) bad++;
        }
        CHECK(bad == 0);
        nnq_tensor_release(&y);
        nnq_tensor_release(&sr);
    }
    /* slope must broadcast to x without growing it */
    nnq_tensor xs = shape_only(NNQ_DT_FLOAT, 4, DIMS(2, 3, 4, 5));
    nnq_tensor s4 = shape_only(NNQ_DT_FLOAT, 1, DIMS(4));
    nnq_tensor x3 = shape_only(NNQ_DT_FLOAT, 1, DIMS(3));
    nnq_tensor s23 = shape_only(NNQ_DT_FLOAT, 2, DIMS(2, 3));
    CHECK_STATUS(infer_op(&nnq_op_PRelu, &nd, 16, 2, (const nnq_tensor *[]){&xs, &s4}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_PRelu, &nd, 16, 2, (const nnq_tensor *[]){&x3, &s23}, &y),
                 NNQ_ERR_SHAPE);
    nnq_tensor_release(&xr);
    nnq_tensor_release(&big);
}

/* ---- ReduceMean ---- */

/* Naive mean over the axes in `mask`, accumulated in double. */
static void reduce_mean_ref(const nnq_tensor *x, const int *mask, float *out, int64_t n_out) {
    double acc[4096] = {0};
    int64_t cnt = 1;
    for (int d = 0; d < x->rank; d++)
        if (mask[d]) cnt *= x->dims[d];
    for (int64_t i = 0; i < nnq_tensor_numel(x); i++) {
        int64_t rem = i, o = 0, stride = 1;
        for (int d = x->rank - 1; d >= 0; d--) {
            int64_t c = rem % x->dims[d];
            rem /= x->dims[d];
            if (!mask[d]) {
                o += c * stride;
                stride *= x->dims[d];
            }
        }
        acc[o] += nnq_f32(x)[i];
    }
    for (int64_t o = 0; o < n_out; o++) out[o] = (float)(acc[o] / (double)cnt);
}

static void test_reduce_mean(void) {
    nnq_tensor y;
    /* hand case: (3,2,2) over axis 1 */
    nnq_tensor x = mk(NNQ_DT_FLOAT, 3, DIMS(3, 2, 2),
                      (float[]){5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2});
    nnq_attr at[3] = {a_ints("axes", 1, DIMS(1)), a_int("keepdims", 1)};
    nnq_node nd = mk_node("ReduceMean", at, 2);
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(shape_is(&y, 3, DIMS(3, 1, 2)));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f}, 6) == 0);
    nnq_tensor_release(&y);
    at[1] = a_int("keepdims", 0);
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(3, 2)));
    nnq_tensor_release(&y);
    at[0] = a_ints("axes", 1, DIMS(-2)); /* negative axis, same result */
    at[1] = a_int("keepdims", 1);
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(shape_is(&y, 3, DIMS(3, 1, 2)) && nnq_f32(&y)[2] == 35.0f);
    nnq_tensor_release(&y);
    nd = mk_node("ReduceMean", NULL, 0); /* no axes: everything, keepdims default 1 */
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&x}, 1, &y, 1));
    CHECK(shape_is(&y, 3, DIMS(1, 1, 1)));
    CHECK_NEAR(nnq_f32(&y)[0], 219.0 / 12.0, 1e-5);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);

    /* random cases against the naive reference: trailing axes (row path),
     * leading axes, interleaved axes, size-1 axes, threaded */
    const struct {
        int rank;
        int64_t dims[4];
        int n_axes;
        int64_t axes[4];
        int threads;
    } cases[] = {
        {4, {2, 3, 4, 5}, 2, {2, 3}, 1},  {4, {2, 3, 4, 5}, 1, {0}, 1},
        {4, {2, 3, 4, 5}, 2, {0, 2}, 1},  {4, {2, 3, 4, 5}, 2, {1, 3}, 1},
        {4, {2, 1, 4, 5}, 2, {1, 3}, 1},  {4, {2, 3, 4, 5}, 3, {-1, 0, 1}, 1},
        {3, {7, 1, 33}, 1, {1}, 1},       {4, {8, 64, 16, 16}, 2, {2, 3}, 2},
        {3, {64, 40, 30}, 2, {0, 1}, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_tensor xr = mk_rand(cases[c].rank, cases[c].dims, 4.0f);
        int mask[4] = {0};
        for (int k = 0; k < cases[c].n_axes; k++) {
            int64_t ax = cases[c].axes[k];
            mask[ax < 0 ? ax + cases[c].rank : ax] = 1;
        }
        nnq_attr ra[1] = {a_ints("axes", cases[c].n_axes, cases[c].axes)};
        nnq_node rn = mk_node("ReduceMean", ra, 1);
        CHECK_OK(run_op(&nnq_op_ReduceMean, &rn, 13, 1, (const nnq_tensor *[]){&xr}, 1, &y,
                        cases[c].threads));
        for (int d = 0; d < cases[c].rank; d++)
            CHECK(y.dims[d] == (mask[d] ? 1 : cases[c].dims[d]));
        int64_t n = nnq_tensor_numel(&y);
        float ref[4096];
        CHECK(n <= 4096);
        if (n <= 4096) {
            reduce_mean_ref(&xr, mask, ref, n);
            double e = check_nmse(nnq_f32(&y), ref, n);
            if (!(e < 1e-10)) fprintf(stderr, "reduce case %zu: nmse %g\n", c, e);
            CHECK(e < 1e-10);
        }
        nnq_tensor_release(&y);
        nnq_tensor_release(&xr);
    }

    /* opset 18: axes as an input; noop_with_empty_axes */
    nnq_tensor x18 = mk_rand(2, DIMS(3, 4), 1.0f);
    nnq_tensor ax = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){0});
    nnq_tensor none = mk(NNQ_DT_INT64, 1, DIMS(0), NULL);
    nd = mk_node("ReduceMean", NULL, 0);
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nd, 18, 2, (const nnq_tensor *[]){&x18, &ax}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(1, 4)));
    CHECK_NEAR(nnq_f32(&y)[1],
               (nnq_f32(&x18)[1] + nnq_f32(&x18)[5] + nnq_f32(&x18)[9]) / 3.0, 1e-6);
    nnq_tensor_release(&y);
    nnq_attr noop[1] = {a_int("noop_with_empty_axes", 1)};
    nnq_node nn = mk_node("ReduceMean", noop, 1);
    CHECK_OK(run_op(&nnq_op_ReduceMean, &nn, 18, 2, (const nnq_tensor *[]){&x18, &none}, 1, &y,
                    1));
    CHECK(nnq_shape_equal(&y, &x18) && memcmp(y.data, x18.data, 12 * sizeof(float)) == 0);
    nnq_tensor_release(&y);

    /* errors */
    nnq_tensor xs = shape_only(NNQ_DT_FLOAT, 2, DIMS(3, 4));
    nnq_attr bad[1] = {a_ints("axes", 1, DIMS(2))};
    nd = mk_node("ReduceMean", bad, 1);
    CHECK_STATUS(infer_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&xs}, &y),
                 NNQ_ERR_INVALID);
    bad[0] = a_ints("axes", 2, DIMS(1, -1));
    CHECK_STATUS(infer_op(&nnq_op_ReduceMean, &nd, 13, 1, (const nnq_tensor *[]){&xs}, &y),
                 NNQ_ERR_INVALID);
    nnq_tensor_release(&x18);
    nnq_tensor_release(&ax);
    nnq_tensor_release(&none);
}

/* ---- Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout, Constant ---- */

/* Run a copy-like op; check the output shape and that the data is the
 * input's, byte for byte. */
static void check_copy_op(const nnq_op_def *def, const nnq_node *nd, int opset, int n_in,
                          const nnq_tensor *const *in, int rank, const int64_t *dims) {
    nnq_tensor y;
    CHECK_OK(run_op(def, nd, opset, n_in, in, 1, &y, 1));
    CHECK(shape_is(&y, rank, dims));
    if (!shape_is(&y, rank, dims)) {
        char buf[128];
        fprintf(stderr, "  %s gave %s\n", def->op_type, nnq_shape_str(&y, buf, sizeof buf));
    }
    size_t nb = 0;
    if (y.rank >= 0) nnq_tensor_nbytes(in[0], &nb);
    CHECK(y.dtype == in[0]->dtype && nnq_tensor_numel(&y) == nnq_tensor_numel(in[0]));
    if (nb && nnq_tensor_numel(&y) == nnq_tensor_numel(in[0]))
        CHECK(memcmp(y.data, in[0]->data, nb) == 0);
    nnq_tensor_release(&y);
}

static void test_flatten(void) {
    nnq_tensor x = mk_rand(4, DIMS(2, 3, 4, 5), 1.0f);
    const int64_t want[][2] = {{1, 120}, {2, 60}, {6, 20}, {24, 5}, {120, 1}};
    for (int axis = -4; axis <= 4; axis++) {
        nnq_attr at[1] = {a_int("axis", axis)};
        nnq_node nd = mk_node("Flatten", at, 1);
        int k = axis < 0 ? axis + 4 : axis;
        check_copy_op(&nnq_op_Flatten, &nd, 13, 1, (const nnq_tensor *[]){&x}, 2, want[k]);
    }
    nnq_node dn = mk_node("Flatten", NULL, 0); /* default axis 1 */
    check_copy_op(&nnq_op_Flatten, &dn, 13, 1, (const nnq_tensor *[]){&x}, 2, want[1]);
    nnq_attr at[1] = {a_int("axis", 5)};
    nnq_node nd = mk_node("Flatten", at, 1);
    nnq_tensor y;
    CHECK_STATUS(infer_op(&nnq_op_Flatten, &nd, 13, 1, (const nnq_tensor *[]){&x}, &y),
                 NNQ_ERR_INVALID);
    at[0] = a_int("axis", -5);
    CHECK_STATUS(infer_op(&nnq_op_Flatten, &nd, 13, 1, (const nnq_tensor *[]){&x}, &y),
                 NNQ_ERR_INVALID);
    nnq_tensor_release(&x);
}

static void test_reshape(void) {
    nnq_tensor x = mk_rand(3, DIMS(2, 3, 4), 1.0f);
    nnq_node nd = mk_node("Reshape", NULL, 0);
    const struct {
        int n;
        int64_t shape[4];
        int rank;
        int64_t want[4];
    } cases[] = {
        {3, {4, 2, 3}, 3, {4, 2, 3}},     {2, {2, 12}, 2, {2, 12}},
        {4, {2, 3, 2, 2}, 4, {2, 3, 2, 2}}, {1, {24}, 1, {24}},
        {3, {2, -1, 2}, 3, {2, 6, 2}},   {4, {-1, 2, 3, 4}, 4, {1, 2, 3, 4}},
        {4, {2, 0, 4, 1}, 4, {2, 3, 4, 1}}, {4, {2, 0, 1, -1}, 4, {2, 3, 1, 4}},
        {1, {-1}, 1, {24}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_tensor s = mk(NNQ_DT_INT64, 1, DIMS(cases[c].n), cases[c].shape);
        check_copy_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&x, &s},
                      cases[c].rank, cases[c].want);
        nnq_tensor_release(&s);
    }
    /* allowzero (opset 14): 0 is a real zero-size dim */
    nnq_tensor e = mk(NNQ_DT_FLOAT, 3, DIMS(0, 3, 4), NULL);
    nnq_tensor s340 = mk(NNQ_DT_INT64, 1, DIMS(3), (int64_t[]){3, 4, 0});
    nnq_attr az[1] = {a_int("allowzero", 1)};
    nnq_node azn = mk_node("Reshape", az, 1);
    check_copy_op(&nnq_op_Reshape, &azn, 14, 2, (const nnq_tensor *[]){&e, &s340}, 3,
                  DIMS(3, 4, 0));
    nnq_tensor y;
    /* without allowzero the 0 copies dim 2 (4): 48 elements != 0 */
    CHECK_STATUS(infer_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&e, &s340}, &y),
                 NNQ_ERR_SHAPE);
    /* errors: size mismatch, two -1, -1 with an indivisible size, no data */
    nnq_tensor s5 = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){5, 5});
    nnq_tensor smm = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){-1, -1});
    nnq_tensor s7 = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){7, -1});
    nnq_tensor sx = shape_only(NNQ_DT_INT64, 1, DIMS(2));
    CHECK_STATUS(infer_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&x, &s5}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&x, &smm}, &y),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(infer_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&x, &s7}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Reshape, &nd, 14, 2, (const nnq_tensor *[]){&x, &sx}, &y),
                 NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "shape") != NULL);
    nnq_tensor_release(&x);
    nnq_tensor_release(&e);
    nnq_tensor_release(&s340);
    nnq_tensor_release(&s5);
    nnq_tensor_release(&smm);
    nnq_tensor_release(&s7);
}

static void test_squeeze_unsqueeze(void) {
    nnq_tensor x = mk_rand(4, DIMS(1, 3, 1, 5), 1.0f);
    nnq_tensor y;
    /* opset 11: axes attribute */
    nnq_attr at[1] = {a_ints("axes", 1, DIMS(0))};
    nnq_node nd = mk_node("Squeeze", at, 1);
    check_copy_op(&nnq_op_Squeeze, &nd, 11, 1, (const nnq_tensor *[]){&x}, 3, DIMS(3, 1, 5));
    /* opset 13: axes input, negative */
    nnq_tensor ax = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){-2});
    nnq_node n13 = mk_node("Squeeze", NULL, 0);
    check_copy_op(&nnq_op_Squeeze, &n13, 13, 2, (const nnq_tensor *[]){&x, &ax}, 3,
                  DIMS(1, 3, 5));
    /* no axes: all size-1 dims */
    check_copy_op(&nnq_op_Squeeze, &n13, 13, 1, (const nnq_tensor *[]){&x}, 2, DIMS(3, 5));
    /* squeezing a dim that is not 1; axis out of range */
    nnq_tensor a1 = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){1});
    nnq_tensor a9 = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){4});
    CHECK_STATUS(infer_op(&nnq_op_Squeeze, &n13, 13, 2, (const nnq_tensor *[]){&x, &a1}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Squeeze, &n13, 13, 2, (const nnq_tensor *[]){&x, &a9}, &y),
                 NNQ_ERR_INVALID);

    nnq_tensor u = mk_rand(3, DIMS(3, 4, 5), 1.0f);
    nnq_attr ua[1] = {a_ints("axes", 1, DIMS(3))};
    nnq_node un = mk_node("Unsqueeze", ua, 1);
    check_copy_op(&nnq_op_Unsqueeze, &un, 11, 1, (const nnq_tensor *[]){&u}, 4,
                  DIMS(3, 4, 5, 1));
    nnq_node u13 = mk_node("Unsqueeze", NULL, 0);
    const struct {
        int n;
        int64_t axes[3];
        int rank;
        int64_t want[6];
    } cases[] = {
        {1, {0}, 4, {1, 3, 4, 5}},          {1, {2}, 4, {3, 4, 1, 5}},
        {2, {1, 4}, 5, {3, 1, 4, 5, 1}},    {3, {2, 4, 5}, 6, {3, 4, 1, 5, 1, 1}},
        {3, {5, 4, 2}, 6, {3, 4, 1, 5, 1, 1}}, {1, {-1}, 4, {3, 4, 5, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_tensor axt = mk(NNQ_DT_INT64, 1, DIMS(cases[c].n), cases[c].axes);
        check_copy_op(&nnq_op_Unsqueeze, &u13, 13, 2, (const nnq_tensor *[]){&u, &axt},
                      cases[c].rank, cases[c].want);
        nnq_tensor_release(&axt);
    }
    nnq_tensor neg = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){-2});
    check_copy_op(&nnq_op_Unsqueeze, &u13, 13, 2, (const nnq_tensor *[]){&x, &neg}, 5,
                  DIMS(1, 3, 1, 1, 5));
    /* repeated axis; rank above NNQ_MAX_RANK; axes not known */
    nnq_tensor dup = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){1, 1});
    nnq_tensor many = mk(NNQ_DT_INT64, 1, DIMS(6), (int64_t[]){0, 1, 2, 3, 4, 5});
    nnq_tensor unknown = shape_only(NNQ_DT_INT64, 1, DIMS(1));
    CHECK_STATUS(infer_op(&nnq_op_Unsqueeze, &u13, 13, 2, (const nnq_tensor *[]){&u, &dup}, &y),
                 NNQ_ERR_INVALID);
    CHECK_STATUS(infer_op(&nnq_op_Unsqueeze, &u13, 13, 2, (const nnq_tensor *[]){&u, &many}, &y),
                 NNQ_ERR_LIMIT);
    CHECK_STATUS(
        infer_op(&nnq_op_Unsqueeze, &u13, 13, 2, (const nnq_tensor *[]){&u, &unknown}, &y),
        NNQ_ERR_UNSUPPORTED);
    nnq_tensor *all[] = {&x, &ax, &a1, &a9, &u, &neg, &dup, &many};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nnq_tensor_release(all[i]);
}

static void test_identity_dropout_constant(void) {
    nnq_tensor xi = mk(NNQ_DT_INT64, 2, DIMS(2, 2), (int64_t[]){1, -2, 3, INT64_MAX});
    nnq_node nd = mk_node("Identity", NULL, 0);
    check_copy_op(&nnq_op_Identity, &nd, 16, 1, (const nnq_tensor *[]){&xi}, 2, DIMS(2, 2));

    /* Dropout at inference: y = x, mask all true (bool from opset 10) */
    nnq_tensor x = mk_rand(3, DIMS(3, 4, 5), 1.0f);
    nnq_tensor ratio = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){0.1f});
    nnq_tensor out[2];
    nnq_node dn = mk_node("Dropout", NULL, 0);
    check_copy_op(&nnq_op_Dropout, &dn, 13, 2, (const nnq_tensor *[]){&x, &ratio}, 3,
                  DIMS(3, 4, 5));
    CHECK_OK(run_op(&nnq_op_Dropout, &dn, 13, 2, (const nnq_tensor *[]){&x, &ratio}, 2, out, 1));
    CHECK(memcmp(out[0].data, x.data, 60 * sizeof(float)) == 0);
    CHECK(out[1].dtype == NNQ_DT_BOOL && nnq_shape_equal(&out[1], &x));
    int all_true = 1;
    for (int i = 0; i < 60; i++) all_true &= ((uint8_t *)out[1].data)[i] == 1;
    CHECK(all_true);
    nnq_tensor_release(&out[0]);
    nnq_tensor_release(&out[1]);
    CHECK_OK(run_op(&nnq_op_Dropout, &dn, 7, 1, (const nnq_tensor *[]){&x}, 2, out, 1));
    CHECK(out[1].dtype == NNQ_DT_FLOAT && nnq_f32(&out[1])[59] == 1.0f);
    nnq_tensor_release(&out[0]);
    nnq_tensor_release(&out[1]);
    /* training mode: fine with ratio 0 (a copy), refused with ratio > 0 */
    nnq_tensor train = mk(NNQ_DT_BOOL, 0, NULL, (uint8_t[]){1});
    nnq_tensor zero = mk(NNQ_DT_FLOAT, 0, NULL, (float[]){0.0f});
    check_copy_op(&nnq_op_Dropout, &dn, 13, 3, (const nnq_tensor *[]){&x, &zero, &train}, 3,
                  DIMS(3, 4, 5));
    CHECK_STATUS(run_op(&nnq_op_Dropout, &dn, 13, 3, (const nnq_tensor *[]){&x, &ratio, &train},
                        1, out, 1),
                 NNQ_ERR_UNSUPPORTED);
    nnq_tensor_release(&out[0]);
    nnq_tensor_release(&train);
    nnq_tensor_release(&zero);

    /* Constant from each attribute kind */
    nnq_tensor val = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nnq_attr at[1] = {a_tensor("value", &val)};
    nnq_node cn = mk_node("Constant", at, 1);
    nnq_tensor y;
    CHECK_OK(run_op(&nnq_op_Constant, &cn, 13, 0, NULL, 1, &y, 1));
    CHECK(nnq_shape_equal(&y, &val) && y.dtype == NNQ_DT_FLOAT);
    CHECK(memcmp(y.data, val.data, 6 * sizeof(float)) == 0);
    nnq_tensor_release(&y);
    at[0] = a_float("value_float", 2.5f);
    CHECK_OK(run_op(&nnq_op_Constant, &cn, 13, 0, NULL, 1, &y, 1));
    CHECK(y.rank == 0 && y.dtype == NNQ_DT_FLOAT && nnq_f32(&y)[0] == 2.5f);
    nnq_tensor_release(&y);
    at[0] = a_ints("value_ints", 3, DIMS(7, -8, 9));
    CHECK_OK(run_op(&nnq_op_Constant, &cn, 13, 0, NULL, 1, &y, 1));
    CHECK(shape_is(&y, 1, DIMS(3)) && y.dtype == NNQ_DT_INT64 && nnq_i64(&y)[1] == -8);
    nnq_tensor_release(&y);
    at[0] = a_int("value_int", 42);
    CHECK_OK(run_op(&nnq_op_Constant, &cn, 13, 0, NULL, 1, &y, 1));
    CHECK(y.rank == 0 && y.dtype == NNQ_DT_INT64 && nnq_i64(&y)[0] == 42);
    nnq_tensor_release(&y);
    at[0] = a_floats("value_floats", 2, (float[]){0.5f, -1.5f});
    CHECK_OK(run_op(&nnq_op_Constant, &cn, 13, 0, NULL, 1, &y, 1));
    CHECK(shape_is(&y, 1, DIMS(2)) && nnq_f32(&y)[1] == -1.5f);
    nnq_tensor_release(&y);
    nnq_node empty = mk_node("Constant", NULL, 0);
    CHECK_STATUS(infer_op(&nnq_op_Constant, &empty, 13, 0, NULL, &y), NNQ_ERR_UNSUPPORTED);
    nnq_tensor_release(&val);
    nnq_tensor_release(&xi);
    nnq_tensor_release(&x);
    nnq_tensor_release(&ratio);
}

/* ---- Concat ---- */

static void test_concat(void) {
    /* hand case */
    nnq_tensor a = mk(NNQ_DT_FLOAT, 2, DIMS(2, 2), (float[]){1, 2, 3, 4});
    nnq_tensor b = mk(NNQ_DT_FLOAT, 2, DIMS(2, 1), (float[]){5, 6});
    nnq_tensor y;
    nnq_attr at[1] = {a_int("axis", -1)};
    nnq_node nd = mk_node("Concat", at, 1);
    CHECK_OK(run_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&a, &b}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(2, 3)));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){1, 2, 5, 3, 4, 6}, 6) == 0);
    nnq_tensor_release(&y);

    /* random 3-D along each axis with unequal sizes, and an empty input */
    for (int axis = 0; axis < 3; axis++) {
        int64_t d0[3] = {2, 3, 4}, d1[3] = {2, 3, 4}, d2[3] = {2, 3, 4};
        d0[axis] = 1;
        d1[axis] = 3;
        d2[axis] = 0;
        nnq_tensor t0 = mk_rand(3, d0, 1.0f), t1 = mk_rand(3, d1, 1.0f);
        nnq_tensor t2 = mk(NNQ_DT_FLOAT, 3, d2, NULL);
        at[0] = a_int("axis", axis);
        CHECK_OK(run_op(&nnq_op_Concat, &nd, 13, 3, (const nnq_tensor *[]){&t0, &t2, &t1}, 1,
                        &y, 1));
        CHECK(y.dims[axis] == 4);
        int bad = 0;
        for (int i = 0; i < y.dims[0]; i++)
            for (int j = 0; j < y.dims[1]; j++)
                for (int k = 0; k < y.dims[2]; k++) {
                    int64_t c[3] = {i, j, k};
                    const nnq_tensor *src = c[axis] < 1 ? &t0 : &t1;
                    if (c[axis] >= 1) c[axis] -= 1;
                    float want = nnq_f32(src)[(c[0] * src->dims[1] + c[1]) * src->dims[2] + c[2]];
                    if (nnq_f32(&y)[(i * y.dims[1] + j) * y.dims[2] + k] != want) bad++;
                }
        CHECK(bad == 0);
        nnq_tensor_release(&y);
        nnq_tensor_release(&t0);
        nnq_tensor_release(&t1);
        nnq_tensor_release(&t2);
    }
    /* int64 along axis 0, threaded large along axis 1 */
    nnq_tensor i0 = mk(NNQ_DT_INT64, 1, DIMS(2), (int64_t[]){1, 2});
    nnq_tensor i1 = mk(NNQ_DT_INT64, 1, DIMS(1), (int64_t[]){-3});
    at[0] = a_int("axis", 0);
    CHECK_OK(run_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&i0, &i1}, 1, &y, 1));
    CHECK(y.dtype == NNQ_DT_INT64 && memcmp(y.data, (int64_t[]){1, 2, -3}, 24) == 0);
    nnq_tensor_release(&y);
    nnq_tensor big0 = mk_rand(3, DIMS(16, 32, 100), 1.0f), big1 = mk_rand(3, DIMS(16, 8, 100), 1.0f);
    at[0] = a_int("axis", 1);
    CHECK_OK(run_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&big0, &big1}, 1, &y, 2));
    int bad = 0;
    for (int n = 0; n < 16; n++) {
        bad += memcmp(nnq_f32(&y) + n * 4000, nnq_f32(&big0) + n * 3200, 3200 * 4) != 0;
        bad += memcmp(nnq_f32(&y) + n * 4000 + 3200, nnq_f32(&big1) + n * 800, 800 * 4) != 0;
    }
    CHECK(bad == 0);
    nnq_tensor_release(&y);

    /* errors: other dims differ, rank differs, dtype differs, bad axis */
    nnq_tensor s23 = shape_only(NNQ_DT_FLOAT, 2, DIMS(2, 3));
    nnq_tensor s33 = shape_only(NNQ_DT_FLOAT, 2, DIMS(3, 3));
    nnq_tensor s3 = shape_only(NNQ_DT_FLOAT, 1, DIMS(3));
    nnq_tensor i23 = shape_only(NNQ_DT_INT64, 2, DIMS(2, 3));
    at[0] = a_int("axis", 1);
    CHECK_STATUS(infer_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&s23, &s33}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&s23, &s3}, &y),
                 NNQ_ERR_SHAPE);
    CHECK_STATUS(infer_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&s23, &i23}, &y),
                 NNQ_ERR_INVALID);
    at[0] = a_int("axis", 2);
    CHECK_STATUS(infer_op(&nnq_op_Concat, &nd, 13, 2, (const nnq_tensor *[]){&s23, &s23}, &y),
                 NNQ_ERR_INVALID);
    nnq_node noaxis = mk_node("Concat", NULL, 0);
    CHECK_STATUS(
        infer_op(&nnq_op_Concat, &noaxis, 13, 2, (const nnq_tensor *[]){&s23, &s23}, &y),
        NNQ_ERR_INVALID);
    nnq_tensor *all[] = {&a, &b, &i0, &i1, &big0, &big1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nnq_tensor_release(all[i]);
}

/* ---- Transpose ---- */

/* Naive transpose of any dtype: y[j] = x[src(j)] walking output indices. */
static void transpose_ref(const nnq_tensor *x, const int *perm, unsigned char *y) {
    size_t es = nnq_dtype_size(x->dtype);
    int r = x->rank;
    int64_t xs[NNQ_MAX_RANK], yd[NNQ_MAX_RANK], s = 1;
    for (int i = r - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    for (int i = 0; i < r; i++) yd[i] = x->dims[perm[i]];
    for (int64_t j = 0; j < nnq_tensor_numel(x); j++) {
        int64_t rem = j, src = 0;
        for (int i = r - 1; i >= 0; i--) {
            src += (rem % yd[i]) * xs[perm[i]];
            rem /= yd[i];
        }
        memcpy(y + j * es, (const unsigned char *)x->data + src * es, es);
    }
}

static void check_transpose(const nnq_tensor *x, const int *perm, int with_attr, int threads) {
    int64_t p64[NNQ_MAX_RANK];
    for (int i = 0; i < x->rank; i++) p64[i] = perm[i];
    nnq_attr at[1] = {a_ints("perm", x->rank, p64)};
    nnq_node nd = mk_node("Transpose", at, with_attr);
    nnq_tensor y;
    CHECK_OK(run_op(&nnq_op_Transpose, &nd, 13, 1, (const nnq_tensor *[]){x}, 1, &y, threads));
    for (int i = 0; i < x->rank; i++) CHECK(y.dims[i] == x->dims[perm[i]]);
    size_t nb = 0;
    CHECK_OK(nnq_tensor_nbytes(x, &nb));
    unsigned char *ref = malloc(nb ? nb : 1);
    CHECK(ref != NULL);
    if (ref) {
        transpose_ref(x, perm, ref);
        int ok = memcmp(y.data, ref, nb) == 0;
        if (!ok) {
            fprintf(stderr, "transpose mismatch, rank %d perm", x->rank);
            for (int i = 0; i < x->rank; i++) fprintf(stderr, " %d", perm[i]);
            fprintf(stderr, "\n");
        }
        CHECK(ok);
    }
    free(ref);
    nnq_tensor_release(&y);
}

static void test_transpose(void) {
    /* hand case: 2x3 -> 3x2 */
    nnq_tensor m = mk(NNQ_DT_FLOAT, 2, DIMS(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nnq_tensor y;
    nnq_node dn = mk_node("Transpose", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Transpose, &dn, 13, 1, (const nnq_tensor *[]){&m}, 1, &y, 1));
    CHECK(shape_is(&y, 2, DIMS(3, 2)));
    CHECK(max_abs_diff(nnq_f32(&y), (float[]){1, 4, 2, 5, 3, 6}, 6) == 0);
    nnq_tensor_release(&y);

    /* every permutation of rank 3, default perm */
    nnq_tensor x = mk_rand(3, DIMS(2, 3, 4), 1.0f);
    const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int p = 0; p < 6; p++) check_transpose(&x, perms[p], 1, 1);
    check_transpose(&x, perms[5], 0, 1);
    /* NCHW -> NHWC and back, sizes not multiples of the tile, threaded */
    nnq_tensor img = mk_rand(4, DIMS(2, 37, 19, 23), 1.0f);
    check_transpose(&img, (int[]){0, 2, 3, 1}, 1, 2);
    check_transpose(&img, (int[]){0, 3, 1, 2}, 1, 1);
    check_transpose(&img, (int[]){3, 2, 1, 0}, 1, 2);
    /* size-1 dims in between; rank 6; channel shuffle (merges to row copies) */
    nnq_tensor ones = mk_rand(5, DIMS(3, 1, 4, 1, 5), 1.0f);
    check_transpose(&ones, (int[]){4, 3, 0, 1, 2}, 1, 1);
    check_transpose(&ones, (int[]){1, 0, 2, 3, 4}, 1, 1);
    nnq_tensor r6 = mk_rand(6, DIMS(2, 3, 2, 4, 3, 2), 1.0f);
    check_transpose(&r6, (int[]){5, 2, 0, 4, 1, 3}, 1, 1);
    check_transpose(&r6, (int[]){0, 1, 3, 2, 4, 5}, 1, 1);
    nnq_tensor sh = mk_rand(5, DIMS(1, 4, 6, 7, 7), 1.0f);
    check_transpose(&sh, (int[]){0, 2, 1, 3, 4}, 1, 1);
    /* other element sizes: 1, 2 and 8 bytes */
    int64_t d3[3] = {5, 40, 33};
    nnq_tensor u8 = mk(NNQ_DT_UINT8, 3, d3, NULL), i16 = mk(NNQ_DT_INT16, 3, d3, NULL),
               i64 = mk(NNQ_DT_INT64, 3, d3, NULL);
    for (int i = 0; i < 5 * 40 * 33; i++) {
        ((uint8_t *)u8.data)[i] = (uint8_t)(i * 7);
        ((int16_t *)i16.data)[i] = (int16_t)(i * 13 - 5000);
        ((int64_t *)i64.data)[i] = (int64_t)i * 1000003;
    }
    check_transpose(&u8, (int[]){2, 0, 1}, 1, 1);
    check_transpose(&i16, (int[]){1, 2, 0}, 1, 1);
    check_transpose(&i64, (int[]){2, 1, 0}, 1, 1);
    /* bad perms */
    nnq_attr bad[1] = {a_ints("perm", 3, DIMS(0, 0, 1))};
    nnq_node bn = mk_node("Transpose", bad, 1);
    CHECK_STATUS(infer_op(&nnq_op_Transpose, &bn, 13, 1, (const nnq_tensor *[]){&x}, &y),
                 NNQ_ERR_INVALID);
    bad[0] = a_ints("perm", 2, DIMS(1, 0));
    CHECK_STATUS(infer_op(&nnq_op_Transpose, &bn, 13, 1, (const nnq_tensor *[]){&x}, &y),
                 NNQ_ERR_INVALID);
    nnq_tensor *all[] = {&m, &x, &img, &ones, &r6, &sh, &u8, &i16, &i64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nnq_tensor_release(all[i]);
}

/* ---- Softmax ---- */

/* Naive softmax over (outer, len, inner), in double. */
static void softmax_ref(const float *x, float *y, int64_t outer, int64_t len, int64_t inner) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < inner; c++) {
            const float *xb = x + o * len * inner + c;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < len; j++) mx = fmax(mx, xb[j * inner]);
            for (int64_t j = 0; j < len; j++) sum += exp(xb[j * inner] - mx);
            for (int64_t j = 0; j < len; j++)
                y[o * len * inner + c + j * inner] = (float)(exp(xb[j * inner] - mx) / sum);
        }
}

static void test_softmax(void) {
    nnq_tensor y;
    /* hand case: [1,2,3] -> e^k / sum */
    nnq_tensor h = mk(NNQ_DT_FLOAT, 2, DIMS(1, 3), (float[]){1, 2, 3});
    nnq_node dn = mk_node("Softmax", NULL, 0);
    CHECK_OK(run_op(&nnq_op_Softmax, &dn, 13, 1, (const nnq_tensor *[]){&h}, 1, &y, 1));
    double s = exp(1) + exp(2) + exp(3);
    const float hw[] = {(float)(exp(1) / s), (float)(exp(2) / s), (float)(exp(3) / s)};
    CHECK(max_abs_diff(nnq_f32(&y), hw, 3) < 1e-7);
    nnq_tensor_release(&y);
    /* large inputs stay finite */
    nnq_tensor big = mk(NNQ_DT_FLOAT, 2, DIMS(2, 4),
                        (float[]){0, 1, 2, 3, 10000, 10001, 10002, 10003});
    CHECK_OK(run_op(&nnq_op_Softmax, &dn, 13, 1, (const nnq_tensor *[]){&big}, 1, &y, 1));
    CHECK(max_abs_diff(nnq_f32(&y), nnq_f32(&y) + 4, 4) < 1e-7);
    CHECK(isfinite(nnq_f32(&y)[7]) && nnq_f32(&y)[7] > 0.6f);
    nnq_tensor_release(&y);

    /* opset 13 (single axis) vs opset 11 (coerced 2-D) on (3,4,5) */
    nnq_tensor x = mk_rand(3, DIMS(3, 4, 5), 3.0f);
    float ref[60];
    const struct {
        int opset, has_axis, axis;
        int64_t outer, len, inner;
    } cases[] = {
        {13, 1, 0, 1, 3, 20},  {13, 1, 1, 3, 4, 5},  {13, 1, 2, 12, 5, 1}, {13, 1, -1, 12, 5, 1},
        {13, 0, 0, 12, 5, 1},  {11, 0, 0, 3, 20, 1}, {11, 1, 0, 1, 60, 1}, {11, 1, 2, 12, 5, 1},
        {11, 1, -2, 3, 20, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nnq_attr at[1] = {a_int("axis", cases[c].axis)};
        nnq_node nd = mk_node("Softmax", at, cases[c].has_axis);
        CHECK_OK(run_op(&nnq_op_Softmax, &nd, cases[c].opset, 1, (const nnq_tensor *[]){&x}, 1,
                        &y, 1));
        CHECK(nnq_shape_equal(&y, &x));
        softmax_ref(nnq_f32(&x), ref, cases[c].outer, cases[c].len, cases[c].inner);
        double e = check_nmse(nnq_f32(&y), ref, 60);
        if (!(e < 1e-12)) fprintf(stderr, "softmax case %zu: nmse %g\n", c, e);
        CHECK(e < 1e-12);
        nnq_tensor_release(&y);
    }
    /* strided axis with more columns than one tile, threaded */
    nnq_tensor w = mk_rand(3, DIMS(6, 50, 130), 5.0f);
    float *wref = malloc(6 * 50 * 130 * sizeof(float));
    CHECK(wref != NULL);
    nnq_attr a1[1] = {a_int("axis", 1)};
    nnq_node n1 = mk_node("Softmax", a1, 1);
    CHECK_OK(run_op(&nnq_op_Softmax, &n1, 13, 1, (const nnq_tensor *[]){&w}, 1, &y, 2));
    if (wref) {
        softmax_ref(nnq_f32(&w), wref, 6, 50, 130);
        CHECK(check_nmse(nnq_f32(&y), wref, 6 * 50 * 130) < 1e-12);
    }
    free(wref);
    nnq_tensor_release(&y);
    /* bad axis */
    nnq_attr a3[1] = {a_int("axis", 3)};
    nnq_node n3 = mk_node("Softmax", a3, 1);
    CHECK_STATUS(infer_op(&nnq_op_Softmax, &n3, 13, 1, (const nnq_tensor *[]){&x}, &y),
                 NNQ_ERR_INVALID);
    nnq_tensor_release(&h);
    nnq_tensor_release(&big);
    nnq_tensor_release(&x);
    nnq_tensor_release(&w);
}

int main(void) {
    test_binary_hand();
    test_binary_random();
    test_binary_int();
    test_binary_errors();
    test_activations();
    test_clip();
    test_prelu();
    test_reduce_mean();
    test_flatten();
    test_reshape();
    test_squeeze_unsqueeze();
    test_identity_dropout_constant();
    test_concat();
    test_transpose();
    test_softmax();
    return check_finish("test_ops_elementwise");
}
