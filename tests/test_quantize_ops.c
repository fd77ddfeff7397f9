/* The quantization ops (src/ops/quantize.c): QuantizeLinear,
 * DequantizeLinear and nnq's FakeQuant (domain com.nnq).
 *
 * Forward: rounding ties go half to even, clamping at both grid ends, NaN
 * quantizes to the zero point, per-channel scales along axis 0 / 1 / -1 of
 * a [2,3,2,2] tensor, against an oracle written with libm's nearbyint;
 * FakeQuant == DequantizeLinear(QuantizeLinear(x)) bit for bit on 8-bit
 * grids; enabled = 0 passes X through; the 32-bit grid runs in double.
 * Domains: FakeQuant resolves only in com.nnq, and runs in a prepared graph.
 * Backward: dX against the straight-through definition; d scale and
 * d zero_point against an independent closed form, against finite
 * differences away from rounding transitions, and by hand at transitions
 * and both clamps; grad_scale scales those two only; gradients accumulate
 * and do not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "ir/graph.h"
#include "op_fixture.h"
#include "ops/executor.h"
#include "ops/node_call.h"
#include "ops/op.h"

/* ---- helpers ---- */

/* infer + allocate + forward of def on in[0..n_in) into out. */
static nnq_status run(const nnq_op_def *def, const nnq_node *nd, int opset, int n_in,
                      const nnq_tensor *const *in, nnq_tensor *out, int threads) {
    nnq_tensor *outp[1] = {out};
    nnq_op_args a = {.node = nd, .opset = opset, .n_in = n_in, .in = in, .n_out = 1,
                     .out = outp, .threads = threads};
    NNQ_TRY(def->infer(&a));
    if (!out->data) NNQ_TRY(nnq_tensor_alloc(out, out->dtype, out->rank, out->dims));
    return def->forward(&a);
}

/* A FakeQuant node with its attributes (the node points into at[]: use
 * in place). */
typedef struct fq_node {
    nnq_attr at[5];
    nnq_node nd;
} fq_node;

static void fq_node_init(fq_node *f, int64_t qmin, int64_t qmax, int64_t axis, int enabled,
                         float grad_scale) {
    f->at[0] = a_int("qmin", qmin);
    f->at[1] = a_int("qmax", qmax);
    f->at[2] = a_int("axis", axis);
    f->at[3] = a_int("enabled", enabled);
    f->at[4] = a_float("grad_scale", grad_scale);
    f->nd = mk_node("FakeQuant", f->at, 5);
    f->nd.domain = (char *)NNQ_DOMAIN;
}

static nnq_status fq_run(const nnq_node *nd, const nnq_tensor *x, const nnq_tensor *s,
                         const nnq_tensor *z, nnq_tensor *y, int threads) {
    const nnq_tensor *in[3] = {x, s, z};
    return run(&nnq_op_FakeQuant, nd, 17, 3, in, y, threads);
}

/* FakeQuant forward, then backward of upstream dy into gx, gs, gz (each
 * NULL when not wanted; accumulated into as they are). */
static nnq_status fq_fwd_bwd(const nnq_node *nd, const nnq_tensor *x, const nnq_tensor *s,
                             const nnq_tensor *z, nnq_tensor *y, const nnq_tensor *dy,
                             nnq_tensor *gx, nnq_tensor *gs, nnq_tensor *gz, int threads) {
    const nnq_tensor *in[3] = {x, s, z};
    nnq_tensor *outp[1] = {y};
    const nnq_tensor *dyp[1] = {dy};
    nnq_tensor *g[3] = {gx, gs, gz};
    nnq_op_args a = {.node = nd, .opset = 17, .n_in = 3, .in = in, .n_out = 1, .out = outp,
                     .threads = threads, .training = true};
    NNQ_TRY(nnq_op_FakeQuant.infer(&a));
    if (!y->data) NNQ_TRY(nnq_tensor_alloc(y, y->dtype, y->rank, y->dims));
    NNQ_TRY(nnq_op_FakeQuant.forward(&a));
    a.out_grad = dyp;
    a.in_grad = g;
    return nnq_op_FakeQuant.backward(&a);
}

static nnq_tensor scalar_f(float v) { return mk(NNQ_DT_FLOAT, 0, NULL, &v); }

static nnq_tensor vec_f(int n, const float *v) { return mk(NNQ_DT_FLOAT, 1, DIMS(n), v); }

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* The oracle: quantization with libm's nearbyint (half to even in the
 * default rounding mode), independent of qmath.h's magic-number rounding. */
static double ref_q_unclamped(float x, float s, float z) {
    float v = x / s;
    return nearbyint((double)v) + z;
}

static double ref_q(float x, float s, float z, double qmin, double qmax) {
    if (isnan(x / s)) return z;
    double q = ref_q_unclamped(x, s, z);
    return q < qmin ? qmin : (q > qmax ? qmax : q);
}

/* Channel of flat element i when dims are split at `axis` into
 * [outer, c, inner]. */
static int64_t channel_of(int64_t i, int rank, const int64_t *dims, int axis, int64_t c) {
    if (c == 1) return 0;
    if (axis < 0) axis += rank;
    int64_t inner = 1;
    for (int k = axis + 1; k < rank; k++) inner *= dims[k];
    return (i / inner) % c;
}

/* ---- domains ---- */

static void test_domains(void) {
    CHECK(nnq_op_find_in(NNQ_DOMAIN, "FakeQuant") == &nnq_op_FakeQuant);
    CHECK(nnq_op_find("FakeQuant") == NULL);
    CHECK(nnq_op_find_in("", "FakeQuant") == NULL);
    CHECK(nnq_op_find_in("ai.onnx", "FakeQuant") == NULL);
    CHECK(nnq_op_find_in("com.other", "FakeQuant") == NULL);
    CHECK(nnq_op_find_in(NNQ_DOMAIN, "Relu") == NULL);
    CHECK(nnq_op_find_in(NULL, "QuantizeLinear") == &nnq_op_QuantizeLinear);
    CHECK(nnq_op_find_in("", "DequantizeLinear") == &nnq_op_DequantizeLinear);
    CHECK(nnq_op_find_in("ai.onnx", "Relu") == nnq_op_find("Relu"));
    CHECK(nnq_op_FakeQuant.domain && strcmp(nnq_op_FakeQuant.domain, "com.nnq") == 0);
    CHECK(nnq_op_QuantizeLinear.domain == NULL && nnq_op_Relu.domain == NULL);
    /* The table holds each (domain, op) once. */
    int seen_fq = 0;
    for (int i = 0; i < nnq_op_count(); i++) seen_fq += strcmp(nnq_op_at(i)->op_type, "FakeQuant") == 0;
    CHECK(seen_fq == 1);
}

/* ---- forward ---- */

/* x / s = 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5 round to 0, 2, 2, 4, 0, -2, -2. */
static void test_rounding_ties(void) {
    const float s = 0.25f;
    const float v[7] = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f};
    const int want[7] = {0, 2, 2, 4, 0, -2, -2};
    float xs[7];
    for (int i = 0; i < 7; i++) xs[i] = v[i] * s; /* exact: s is a power of two */
    nnq_tensor x = vec_f(7, xs), st = scalar_f(s), y = {0};
    nnq_node q = mk_node("QuantizeLinear", NULL, 0);

    int8_t z8 = 0;
    nnq_tensor zi8 = mk(NNQ_DT_INT8, 0, NULL, &z8);
    const nnq_tensor *in_i8[3] = {&x, &st, &zi8};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, in_i8, &y, 1));
    CHECK(y.dtype == NNQ_DT_INT8);
    for (int i = 0; i < 7; i++) CHECK(((int8_t *)y.data)[i] == want[i]);
    nnq_tensor_release(&y);

    uint8_t z128 = 128;
    nnq_tensor zu8 = mk(NNQ_DT_UINT8, 0, NULL, &z128);
    const nnq_tensor *in_u8[3] = {&x, &st, &zu8};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, in_u8, &y, 1));
    CHECK(y.dtype == NNQ_DT_UINT8);
    for (int i = 0; i < 7; i++) CHECK(((uint8_t *)y.data)[i] == 128 + want[i]);
    nnq_tensor_release(&y);

    fq_node f;
    fq_node_init(&f, -128, 127, 1, 1, 1.0f);
    nnq_tensor zf = scalar_f(0.0f);
    CHECK_OK(fq_run(&f.nd, &x, &st, &zf, &y, 1));
    for (int i = 0; i < 7; i++) CHECK(nnq_f32(&y)[i] == s * (float)want[i]);
    nnq_tensor_release(&y);

    /* Ties of a non-power-of-two scale: x = (k + 1/2) s rounded to float,
     * through the op against the oracle. */
    const float s3 = 0.1f;
    float xt[41];
    for (int k = -20; k <= 20; k++) xt[k + 20] = ((float)k + 0.5f) * s3;
    nnq_tensor x3 = vec_f(41, xt), st3 = scalar_f(s3);
    const nnq_tensor *in3[3] = {&x3, &st3, &zi8};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, in3, &y, 1));
    int bad = 0;
    for (int i = 0; i < 41 && y.data; i++)
        bad += ((int8_t *)y.data)[i] != (int8_t)ref_q(xt[i], s3, 0.0f, -128, 127);
    CHECK(bad == 0);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x3);
    nnq_tensor_release(&st3);
    nnq_tensor_release(&x);
    nnq_tensor_release(&st);
    nnq_tensor_release(&zi8);
    nnq_tensor_release(&zu8);
    nnq_tensor_release(&zf);
}

/* Both grid ends, +-Inf, and NaN (to the zero point). */
static void test_clamp_and_nan(void) {
    const float xs[8] = {126.6f, 127.5f, 200.0f, -128.5f, -1000.0f, INFINITY, -INFINITY, NAN};
    const int want_i8[8] = {127, 127, 127, -128, -128, 127, -128, 0};
    nnq_tensor x = vec_f(8, xs), one = scalar_f(1.0f), y = {0};
    nnq_node q = mk_node("QuantizeLinear", NULL, 0);
    int8_t z0 = 0;
    nnq_tensor zi8 = mk(NNQ_DT_INT8, 0, NULL, &z0);
    const nnq_tensor *in_i8[3] = {&x, &one, &zi8};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, in_i8, &y, 1));
    for (int i = 0; i < 8; i++) CHECK(((int8_t *)y.data)[i] == want_i8[i]);
    nnq_tensor_release(&y);

    /* uint8, zero point 10 (x = -20 -> 0, 300 -> 255, NaN -> 10). */
    const float xu[4] = {-20.0f, 300.0f, NAN, 3.0f};
    const int want_u8[4] = {0, 255, 10, 13};
    nnq_tensor x2 = vec_f(4, xu);
    uint8_t z10 = 10;
    nnq_tensor zu8 = mk(NNQ_DT_UINT8, 0, NULL, &z10);
    const nnq_tensor *in_u8[3] = {&x2, &one, &zu8};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, in_u8, &y, 1));
    for (int i = 0; i < 4; i++) CHECK(((uint8_t *)y.data)[i] == want_u8[i]);
    nnq_tensor_release(&y);

    /* No zero point: uint8, zero point 0. */
    const nnq_tensor *in_2[2] = {&x2, &one};
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 2, in_2, &y, 1));
    CHECK(y.dtype == NNQ_DT_UINT8);
    const int want_nz[4] = {0, 255, 0, 3};
    for (int i = 0; i < 4; i++) CHECK(((uint8_t *)y.data)[i] == want_nz[i]);
    nnq_tensor_release(&y);

    /* FakeQuant: clamped values land on the grid ends, NaN on 0.0. */
    fq_node f;
    fq_node_init(&f, 0, 255, 1, 1, 1.0f);
    nnq_tensor zf = scalar_f(10.0f);
    CHECK_OK(fq_run(&f.nd, &x2, &one, &zf, &y, 1));
    const float want_f[4] = {-10.0f, 245.0f, 0.0f, 3.0f};
    for (int i = 0; i < 4; i++) CHECK(nnq_f32(&y)[i] == want_f[i]);
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    nnq_tensor_release(&x2);
    nnq_tensor_release(&one);
    nnq_tensor_release(&zi8);
    nnq_tensor_release(&zu8);
    nnq_tensor_release(&zf);
}

/* Per-channel scales and zero points along axis 0, 1, -1 (and 2) of a
 * [2,3,2,2] tensor: Q, DQ and FakeQuant against the oracle. Scales differ
 * per channel, so a wrong axis gives wrong values. */
static void test_per_axis(void) {
    const int64_t *d = DIMS(2, 3, 2, 2);
    const struct {
        int axis;
        int64_t c;
    } cases[] = {{0, 2}, {1, 3}, {-1, 2}, {2, 2}, {-3, 3}};
    const float scales[3] = {0.05f, 0.2f, 0.7f};
    const uint8_t zps[3] = {3, 128, 250};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int axis = cases[k].axis;
        int64_t c = cases[k].c;
        nnq_attr at[1] = {a_int("axis", axis)};
        nnq_node q = mk_node("QuantizeLinear", at, 1), dq = mk_node("DequantizeLinear", at, 1);
        nnq_tensor x = mk_rand(4, d, 40.0f), s = vec_f((int)c, scales);
        nnq_tensor z = mk(NNQ_DT_UINT8, 1, DIMS(c), zps), yq = {0}, ydq = {0}, yf = {0};
        float zf_v[3] = {zps[0], zps[1], zps[2]};
        nnq_tensor zf = vec_f((int)c, zf_v);
        const nnq_tensor *qin[3] = {&x, &s, &z};
        CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, qin, &yq, 1));
        const nnq_tensor *dqin[3] = {&yq, &s, &z};
        CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, dqin, &ydq, 1));
        fq_node f;
        fq_node_init(&f, 0, 255, axis, 1, 1.0f);
        CHECK_OK(fq_run(&f.nd, &x, &s, &zf, &yf, 1));
        int bad = 0;
        for (int64_t i = 0; i < 24 && yq.data && ydq.data && yf.data; i++) {
            int64_t ch = channel_of(i, 4, d, axis, c);
            float xv = nnq_f32(&x)[i];
            double wq = ref_q(xv, scales[ch], zps[ch], 0, 255);
            float wy = scales[ch] * (float)(wq - zps[ch]);
            if (((uint8_t *)yq.data)[i] != (uint8_t)wq || nnq_f32(&ydq)[i] != wy ||
                nnq_f32(&yf)[i] != wy)
                bad++;
        }
        if (bad) fprintf(stderr, "per-axis axis=%d: %d wrong elements\n", axis, bad);
        CHECK(bad == 0);
        nnq_tensor *rel[] = {&x, &s, &z, &zf, &yq, &ydq, &yf};
        for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
    }

    /* Mismatches are shape errors naming the inputs. */
    nnq_tensor x = mk_rand(4, d, 1.0f), s4 = vec_f(4, (float[]){1, 1, 1, 1}), y = {0};
    nnq_node q1 = mk_node("QuantizeLinear", NULL, 0); /* axis 1: dim 3 */
    const nnq_tensor *bad_in[2] = {&x, &s4};
    CHECK_STATUS(run(&nnq_op_QuantizeLinear, &q1, 13, 2, bad_in, &y, 1), NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "y_scale") != NULL);
    nnq_attr at5[1] = {a_int("axis", 4)};
    nnq_node q5 = mk_node("QuantizeLinear", at5, 1);
    nnq_tensor s3 = vec_f(3, scales);
    const nnq_tensor *in3[2] = {&x, &s3};
    CHECK_STATUS(run(&nnq_op_QuantizeLinear, &q5, 13, 2, in3, &y, 1), NNQ_ERR_INVALID);
    /* QuantizeLinear-10 (opsets 10..12) has no axis: a 1-D scale is refused. */
    CHECK_STATUS(run(&nnq_op_QuantizeLinear, &q1, 11, 2, in3, &y, 1), NNQ_ERR_SHAPE);
    CHECK_OK(run(&nnq_op_QuantizeLinear, &q1, 13, 2, in3, &y, 1));
    nnq_tensor_release(&y);
    /* Zero point of another shape than the scale. */
    uint8_t z2[2] = {0, 0};
    nnq_tensor zbad = mk(NNQ_DT_UINT8, 1, DIMS(2), z2);
    const nnq_tensor *in_zb[3] = {&x, &s3, &zbad};
    CHECK_STATUS(run(&nnq_op_QuantizeLinear, &q1, 13, 3, in_zb, &y, 1), NNQ_ERR_SHAPE);
    /* Float input only; uint8/int8 zero points only. */
    int32_t zi = 0;
    nnq_tensor z32 = mk(NNQ_DT_INT32, 0, NULL, &zi), one = scalar_f(1.0f);
    const nnq_tensor *in_z32[3] = {&x, &one, &z32};
    CHECK_STATUS(run(&nnq_op_QuantizeLinear, &q1, 13, 3, in_z32, &y, 1), NNQ_ERR_UNSUPPORTED);
    nnq_tensor *rel[] = {&x, &s4, &s3, &zbad, &z32, &one, &y};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* DequantizeLinear of uint8, int8 and int32: y = s * (float)(x - z). */
static void test_dequantize_types(void) {
    nnq_node dq = mk_node("DequantizeLinear", NULL, 0);
    nnq_tensor s = scalar_f(0.37f), y = {0};

    const uint8_t xu[4] = {0, 3, 128, 255};
    uint8_t zu = 128;
    nnq_tensor x = mk(NNQ_DT_UINT8, 1, DIMS(4), xu), z = mk(NNQ_DT_UINT8, 0, NULL, &zu);
    const nnq_tensor *in[3] = {&x, &s, &z};
    CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, in, &y, 1));
    CHECK(y.dtype == NNQ_DT_FLOAT);
    for (int i = 0; i < 4; i++) CHECK(same_bits(nnq_f32(&y)[i], 0.37f * (float)(xu[i] - 128)));
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    nnq_tensor_release(&z);

    const int8_t xi[4] = {-128, -1, 0, 127};
    int8_t zi = -7;
    x = mk(NNQ_DT_INT8, 1, DIMS(4), xi);
    z = mk(NNQ_DT_INT8, 0, NULL, &zi);
    CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, in, &y, 1));
    for (int i = 0; i < 4; i++) CHECK(same_bits(nnq_f32(&y)[i], 0.37f * (float)(xi[i] + 7)));
    nnq_tensor_release(&y);
    nnq_tensor_release(&x);
    nnq_tensor_release(&z);

    /* int32 at its ends: the difference (2^31, -2^31 - 5) does not fit
     * int32 and is taken in int64. */
    const int32_t x32[3] = {INT32_MAX, INT32_MIN, 12345};
    int32_t z32 = -1;
    x = mk(NNQ_DT_INT32, 1, DIMS(3), x32);
    z = mk(NNQ_DT_INT32, 0, NULL, &z32);
    nnq_tensor one = scalar_f(1.0f);
    const nnq_tensor *in32[3] = {&x, &one, &z};
    CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, in32, &y, 1));
    CHECK(nnq_f32(&y)[0] == 2147483648.0f);
    CHECK(nnq_f32(&y)[1] == (float)(-2147483647.0));
    CHECK(nnq_f32(&y)[2] == 12346.0f);
    nnq_tensor_release(&y);
    /* No zero point: 0. */
    const nnq_tensor *in32n[2] = {&x, &s};
    CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 2, in32n, &y, 1));
    CHECK(same_bits(nnq_f32(&y)[2], 0.37f * 12345.0f));
    nnq_tensor_release(&y);
    /* Zero point of another dtype than x. */
    uint8_t zbad = 0;
    nnq_tensor zb = mk(NNQ_DT_UINT8, 0, NULL, &zbad);
    const nnq_tensor *inb[3] = {&x, &s, &zb};
    CHECK_STATUS(run(&nnq_op_DequantizeLinear, &dq, 13, 3, inb, &y, 1), NNQ_ERR_INVALID);
    nnq_tensor *rel[] = {&x, &z, &one, &zb, &s, &y};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* FakeQuant == DequantizeLinear(QuantizeLinear(x)) bit for bit, 8-bit
 * grids unsigned and signed, per tensor and per channel, over random
 * values, exact ties, values beyond the grid, +-Inf, NaN and -0. */
static void test_fake_quant_equals_qdq(void) {
    const int64_t *d = DIMS(4, 3, 5, 7); /* 420 elements */
    const float scales[3] = {0.013f, 0.1f, 0.37f};
    for (int is_signed = 0; is_signed <= 1; is_signed++) {
        for (int per_channel = 0; per_channel <= 1; per_channel++) {
            int c = per_channel ? 3 : 1;
            const int zp_int[3] = {is_signed ? -5 : 37, is_signed ? 0 : 128, is_signed ? 17 : 0};
            nnq_tensor x = mk_rand(4, d, 30.0f);
            float *xv = nnq_f32(&x);
            /* exact ties and the specials, on channel-0 elements and others */
            for (int i = 0; i < 40; i++)
                xv[i * 10] = ((float)(i - 20) + 0.5f) * scales[per_channel ? (i * 10 / 35) % 3 : 0];
            xv[1] = NAN;
            xv[2] = INFINITY;
            xv[3] = -INFINITY;
            xv[4] = -0.0f;
            xv[5] = -1e-9f;
            nnq_tensor s = vec_f(c, scales);
            float zf_v[3] = {(float)zp_int[0], (float)zp_int[1], (float)zp_int[2]};
            nnq_tensor zf = vec_f(c, zf_v), z;
            if (is_signed) {
                int8_t zz[3] = {(int8_t)zp_int[0], (int8_t)zp_int[1], (int8_t)zp_int[2]};
                z = mk(NNQ_DT_INT8, 1, DIMS(c), zz);
            } else {
                uint8_t zz[3] = {(uint8_t)zp_int[0], (uint8_t)zp_int[1], (uint8_t)zp_int[2]};
                z = mk(NNQ_DT_UINT8, 1, DIMS(c), zz);
            }
            nnq_node q = mk_node("QuantizeLinear", NULL, 0);
            nnq_node dq = mk_node("DequantizeLinear", NULL, 0);
            nnq_tensor yq = {0}, ydq = {0}, yf = {0};
            const nnq_tensor *qin[3] = {&x, &s, &z};
            CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, qin, &yq, 1));
            const nnq_tensor *dqin[3] = {&yq, &s, &z};
            CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, dqin, &ydq, 1));
            fq_node f;
            fq_node_init(&f, is_signed ? -128 : 0, is_signed ? 127 : 255, 1, 1, 1.0f);
            CHECK_OK(fq_run(&f.nd, &x, &s, &zf, &yf, 1));
            int64_t n = nnq_tensor_numel(&x), bad = 0;
            for (int64_t i = 0; i < n && ydq.data && yf.data; i++)
                bad += !same_bits(nnq_f32(&ydq)[i], nnq_f32(&yf)[i]);
            if (bad)
                fprintf(stderr, "FakeQuant vs QDQ (%s, %s): %lld elements differ\n",
                        is_signed ? "int8" : "uint8", per_channel ? "per channel" : "per tensor",
                        (long long)bad);
            CHECK(bad == 0);
            nnq_tensor *rel[] = {&x, &s, &zf, &z, &yq, &ydq, &yf};
            for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
        }
    }
}

/* enabled = 0: Y is X bit for bit (NaN included, and parameters that
 * would be refused when enabled are not read); backward passes dY to X
 * and leaves the parameter gradients alone. */
static void test_disabled(void) {
    fq_node f;
    fq_node_init(&f, 0, 3, 1, 0, 1.0f);
    const float xs[5] = {0.3f, -7.0f, 1e6f, NAN, -0.0f};
    nnq_tensor x = vec_f(5, xs), s = scalar_f(-1.0f), z = scalar_f(99.0f), y = {0};
    nnq_tensor dy = vec_f(5, (float[]){1, 2, 3, 4, 5});
    nnq_tensor gx = vec_f(5, (float[]){10, 10, 10, 10, 10}), gs = scalar_f(7.0f),
               gz = scalar_f(8.0f);
    CHECK_OK(fq_fwd_bwd(&f.nd, &x, &s, &z, &y, &dy, &gx, &gs, &gz, 1));
    for (int i = 0; i < 5 && y.data; i++) CHECK(same_bits(nnq_f32(&y)[i], xs[i]));
    for (int i = 0; i < 5; i++) CHECK(nnq_f32(&gx)[i] == 10.0f + (float)(i + 1));
    CHECK(nnq_f32(&gs)[0] == 7.0f && nnq_f32(&gz)[0] == 8.0f);
    /* The same parameters, enabled: refused with a message. */
    fq_node on;
    fq_node_init(&on, 0, 3, 1, 1, 1.0f);
    nnq_tensor y2 = {0};
    CHECK_STATUS(fq_run(&on.nd, &x, &s, &z, &y2, 1), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "scale") != NULL);
    nnq_tensor *rel[] = {&x, &s, &z, &y, &dy, &gx, &gs, &gz, &y2};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* The 32-bit bias grid (qmin = -2^31, qmax = 2^31 - 1) runs in double:
 * x / s = 2^22 + 1 must come back exactly, which float's magic-number
 * rounding cannot do (it rounds 2^22 + 1 + 1.5 * 2^23 to an even number). */
static void test_wide_grid(void) {
    const float s = 1.0f / 1024.0f;
    const float x_odd = 4096.0f + s; /* x / s = 2^22 + 1 */
    CHECK(nnq_fake_quant_f(x_odd, s, 0.0f, -2147483648.0f, 2147483647.0f) != x_odd);

    const float bs = 3.0e-7f; /* a typical s_x * s_w */
    const float xs[9] = {x_odd, -x_odd, 0.123456f, -0.987654f, 1e4f, -1e4f, NAN, 5.0f, 7e-8f};
    fq_node f;
    fq_node_init(&f, INT32_MIN, INT32_MAX, 1, 1, 1.0f);
    nnq_tensor x = vec_f(9, xs), st = scalar_f(s), sb = scalar_f(bs), z = scalar_f(0.0f);
    nnq_tensor y = {0};
    CHECK_OK(fq_run(&f.nd, &x, &st, &z, &y, 1));
    CHECK(y.data && nnq_f32(&y)[0] == x_odd && nnq_f32(&y)[1] == -x_odd);
    nnq_tensor_release(&y);
    CHECK_OK(fq_run(&f.nd, &x, &sb, &z, &y, 1));
    for (int i = 0; i < 9 && y.data; i++) {
        double v = (double)xs[i] / (double)bs, q = 0;
        if (!isnan(v)) {
            q = rint(v);
            q = q < -2147483648.0 ? -2147483648.0 : (q > 2147483647.0 ? 2147483647.0 : q);
        }
        float want = (float)((double)bs * q);
        if (!same_bits(nnq_f32(&y)[i], want)) {
            fprintf(stderr, "wide grid x=%g: got %.9g want %.9g\n", xs[i], nnq_f32(&y)[i], want);
            check_failures_++;
        }
    }
    /* 1e4 / 3e-7 is beyond 2^31: clamped to the grid's ends. */
    CHECK(y.data && nnq_f32(&y)[4] == (float)((double)bs * 2147483647.0));
    CHECK(y.data && nnq_f32(&y)[5] == (float)((double)bs * -2147483648.0));
    CHECK(y.data && nnq_f32(&y)[6] == 0.0f);
    /* Inside the grid, within half a step of x. */
    CHECK(y.data && fabs((double)nnq_f32(&y)[2] - (double)xs[2]) <= 0.5 * bs + 1e-8);
    nnq_tensor_release(&y);

    /* A 24-bit grid is wider than float's exact range too. */
    fq_node f24;
    fq_node_init(&f24, -(1 << 23), (1 << 23) - 1, 1, 1, 1.0f);
    CHECK_OK(fq_run(&f24.nd, &x, &st, &z, &y, 1));
    CHECK(y.data && nnq_f32(&y)[0] == x_odd);
    nnq_tensor_release(&y);
    /* The wide grid's backward: the STE and LSQ sums in double. */
    nnq_tensor x1 = vec_f(3, (float[]){1000.0f + 0.25f * s, 3e6f, NAN});
    nnq_tensor dy = vec_f(3, (float[]){1, 1, 1}), gx = vec_f(3, (float[]){0, 0, 0});
    nnq_tensor gs = scalar_f(0.0f), gz = scalar_f(0.0f);
    CHECK_OK(fq_fwd_bwd(&f.nd, &x1, &st, &z, &y, &dy, &gx, &gs, &gz, 1));
    CHECK(nnq_f32(&gx)[0] == 1.0f && nnq_f32(&gx)[1] == 0.0f && nnq_f32(&gx)[2] == 0.0f);
    /* inside: round(v) - v = -0.25; above (3e6 * 2^10 > 2^31 - 1): qmax - z */
    CHECK(nnq_f32(&gs)[0] == (float)(-0.25 + 2147483647.0));
    CHECK(nnq_f32(&gz)[0] == -s);
    nnq_tensor *rel[] = {&x, &st, &sb, &z, &y, &x1, &dy, &gx, &gs, &gz};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* ---- a FakeQuant node in a graph ---- */

/* x [N,3,4,4] -> FakeQuant(com.nnq, per channel) -> Relu -> y, with the
 * given node domain. */
static nnq_graph *fq_graph(const char *domain, const float *scales, const float *zps) {
    nnq_graph *g = nnq_graph_create("fq");
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    CHECK_OK(nnq_graph_set_opset(g, NNQ_DOMAIN, 1));
    int x, s, z, q, y, node;
    CHECK_OK(nnq_graph_add_value(g, "x", &x));
    CHECK_OK(nnq_tensor_set_shape(&g->values[x].t, NNQ_DT_FLOAT, 4, DIMS(-1, 3, 4, 4)));
    nnq_tensor st = vec_f(3, scales), zt = vec_f(3, zps);
    CHECK_OK(nnq_graph_add_initializer(g, "x_scale", &st, &s));
    CHECK_OK(nnq_graph_add_initializer(g, "x_zero_point", &zt, &z));
    CHECK_OK(nnq_graph_add_value(g, "q", &q));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    int in[3] = {x, s, z};
    CHECK_OK(nnq_graph_add_node(g, "fq", "FakeQuant", domain, 3, in, 1, &q, &node));
    CHECK_OK(nnq_node_set_int(&g->nodes[node], "qmin", -128));
    CHECK_OK(nnq_node_set_int(&g->nodes[node], "qmax", 127));
    CHECK_OK(nnq_node_set_int(&g->nodes[node], "axis", 1));
    CHECK_OK(nnq_graph_add_node(g, "relu", "Relu", "", 1, &q, 1, &y, NULL));
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_output(g, y));
    return g;
}

static void test_graph(void) {
    const float scales[3] = {0.02f, 0.05f, 0.11f}, zps[3] = {0.0f, -20.0f, 7.0f};
    nnq_graph *g = fq_graph(NNQ_DOMAIN, scales, zps);
    nnq_exec *e = NULL;
    CHECK_OK(nnq_graph_prepare(g));
    CHECK_OK(nnq_exec_create(g, NULL, &e));
    nnq_tensor x = mk_rand(4, DIMS(2, 3, 4, 4), 8.0f);
    if (e) {
        CHECK_OK(nnq_exec_run(e, &x));
        const nnq_tensor *y = nnq_exec_output(e, 0);
        int bad = 0;
        for (int64_t i = 0; i < 96 && y && y->data; i++) {
            int64_t ch = (i / 16) % 3;
            float xv = nnq_f32(&x)[i];
            double q = ref_q(xv, scales[ch], zps[ch], -128, 127);
            float want = scales[ch] * (float)(q - zps[ch]);
            want = want > 0.0f ? want : 0.0f;
            bad += nnq_f32(y)[i] != want;
        }
        CHECK(y && y->rank == 4 && y->dims[0] == 2 && bad == 0);
    }
    nnq_exec_free(e);
    nnq_graph_free(g);

    /* The same op in the default domain, or another, is not nnq's. */
    g = fq_graph("", scales, zps);
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "unsupported op 'FakeQuant' at node 'fq'") != NULL);
    nnq_graph_free(g);
    g = fq_graph("com.other", scales, zps);
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "in domain 'com.other'") != NULL);
    nnq_graph_free(g);

    /* Constant parameters are checked at preparation: a zero point off the grid. */
    const float bad_z[3] = {0.0f, 200.0f, 0.0f};
    g = fq_graph(NNQ_DOMAIN, scales, bad_z);
    CHECK_STATUS(nnq_graph_prepare(g), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "zero_point[1]") != NULL);
    nnq_graph_free(g);
    nnq_tensor_release(&x);
}

/* ---- backward ---- */

/* Inputs for backward checks: x [4,3,5,6] with values across and beyond
 * a signed 4-bit grid, per-channel parameters along axis 1, dy random.
 * With away_from_kinks, x / s stays >= margin from every rounding
 * transition and round(x/s) + z never lands on qmin or qmax (where the
 * zero point's effect switches), so finite differences see a smooth L. */
typedef struct bw_case {
    nnq_tensor x, s, z, dy;
    int64_t qmin, qmax;
} bw_case;

#define BW_C 3
static const float bw_scales[BW_C] = {0.05f, 0.13f, 0.4f};
static const float bw_zps[BW_C] = {0.0f, -3.0f, 2.0f};

static bw_case bw_make(bool away_from_kinks, float margin) {
    bw_case b;
    const int64_t *d = DIMS(4, 3, 5, 6);
    b.qmin = -8;
    b.qmax = 7;
    b.x = mk(NNQ_DT_FLOAT, 4, d, NULL);
    b.s = vec_f(BW_C, bw_scales);
    b.z = vec_f(BW_C, bw_zps);
    b.dy = mk_rand(4, d, 1.0f);
    for (int64_t i = 0; i < 360; i++) {
        int64_t ch = (i / 30) % 3;
        float s = bw_scales[ch], z = bw_zps[ch], xv;
        for (;;) {
            float v = 13.0f * frand(); /* x / s in [-13, 13): beyond both ends */
            xv = v * s;
            float vv = xv / s, frac = vv - floorf(vv);
            double q = nearbyint((double)vv) + z;
            if (!away_from_kinks) break;
            if (fabsf(frac - 0.5f) > margin && q != (double)b.qmin && q != (double)b.qmax) break;
        }
        nnq_f32(&b.x)[i] = xv;
    }
    return b;
}

static void bw_free(bw_case *b) {
    nnq_tensor_release(&b->x);
    nnq_tensor_release(&b->s);
    nnq_tensor_release(&b->z);
    nnq_tensor_release(&b->dy);
}

/* L = sum(FakeQuant(x; s, z) * dy), in double. */
static double bw_loss(const fq_node *f, const bw_case *b) {
    nnq_tensor y = {0};
    CHECK_OK(fq_run(&f->nd, &b->x, &b->s, &b->z, &y, 1));
    double l = 0;
    for (int64_t i = 0; i < 360 && y.data; i++) l += (double)nnq_f32(&y)[i] * nnq_f32(&b->dy)[i];
    nnq_tensor_release(&y);
    return l;
}

/* dX against the STE definition, d scale and d zero_point against the
 * closed form summed independently in double; buffers pre-filled, so
 * overwriting instead of accumulating fails. */
static void test_backward_closed_form(void) {
    fq_node f;
    fq_node_init(&f, -8, 7, 1, 1, 1.0f);
    bw_case b = bw_make(false, 0);
    nnq_tensor y = {0}, gx = mk(NNQ_DT_FLOAT, 4, DIMS(4, 3, 5, 6), NULL);
    nnq_tensor gs = vec_f(BW_C, (float[]){1, 2, 3}), gz = vec_f(BW_C, (float[]){-1, -2, -3});
    for (int64_t i = 0; i < 360; i++) nnq_f32(&gx)[i] = 0.5f;
    CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y, &b.dy, &gx, &gs, &gz, 1));
    double ws[BW_C] = {0}, wz[BW_C] = {0}, mag_s[BW_C] = {0}, mag_z[BW_C] = {0};
    int bad_x = 0, n_in = 0, n_lo = 0, n_hi = 0;
    for (int64_t i = 0; i < 360; i++) {
        int64_t ch = (i / 30) % 3;
        float xv = nnq_f32(&b.x)[i], s = bw_scales[ch], z = bw_zps[ch];
        double g = nnq_f32(&b.dy)[i], q = ref_q_unclamped(xv, s, z), ts, tz = 0;
        bool inside = q >= -8 && q <= 7;
        if (inside) {
            ts = g * (q - z - (double)(xv / s));
            n_in++;
        } else {
            ts = g * ((q < -8 ? -8.0 : 7.0) - z);
            tz = -g * s;
            if (q < -8) n_lo++;
            else n_hi++;
        }
        ws[ch] += ts;
        wz[ch] += tz;
        mag_s[ch] += fabs(ts);
        mag_z[ch] += fabs(tz);
        bad_x += nnq_f32(&gx)[i] != 0.5f + (inside ? (float)g : 0.0f);
    }
    CHECK(n_in > 50 && n_lo > 20 && n_hi > 20); /* all three regions covered */
    CHECK(bad_x == 0);
    for (int c = 0; c < BW_C; c++) {
        CHECK_NEAR(nnq_f32(&gs)[c] - (float)(c + 1), ws[c], 1e-5 * mag_s[c] + 1e-6);
        CHECK_NEAR(nnq_f32(&gz)[c] + (float)(c + 1), wz[c], 1e-5 * mag_z[c] + 1e-6);
    }
    /* Only dX wanted; only d scale wanted. */
    nnq_tensor gx2 = mk(NNQ_DT_FLOAT, 4, DIMS(4, 3, 5, 6), NULL), gs2 = vec_f(BW_C, (float[]){0, 0, 0});
    CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y, &b.dy, &gx2, NULL, NULL, 1));
    int bad2 = 0;
    for (int64_t i = 0; i < 360; i++) bad2 += nnq_f32(&gx2)[i] != nnq_f32(&gx)[i] - 0.5f;
    CHECK(bad2 == 0);
    CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y, &b.dy, NULL, &gs2, NULL, 1));
    for (int c = 0; c < BW_C; c++) CHECK(nnq_f32(&gs2)[c] + (float)(c + 1) == nnq_f32(&gs)[c]);
    nnq_tensor *rel[] = {&y, &gx, &gs, &gz, &gx2, &gs2};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
    bw_free(&b);
}

/* Finite differences of L = sum(Y * dY), away from rounding transitions.
 * d zero_point is Y's exact derivative: FD must match it. d scale is LSQ's
 * estimate, which takes round's derivative as 1: it equals the exact
 * derivative minus sum over in-grid elements of dY * X / s, so FD minus
 * that term must match it (and FD alone, when every element is clamped).
 * Tolerance relative to the gradient's scale: max(|analytic|, |FD|,
 * 1e-2 * sum of |terms|). */
static void test_backward_finite_differences(void) {
    fq_node f;
    fq_node_init(&f, -8, 7, 1, 1, 1.0f);
    bw_case b = bw_make(true, 0.2f);
    nnq_tensor y = {0}, gs = vec_f(BW_C, (float[]){0, 0, 0}), gz = vec_f(BW_C, (float[]){0, 0, 0});
    CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y, &b.dy, NULL, &gs, &gz, 1));
    for (int c = 0; c < BW_C; c++) {
        float *sp = &nnq_f32(&b.s)[c], *zp = &nnq_f32(&b.z)[c];
        const float s0 = *sp, z0 = *zp;
        /* |x/s| < 13.1: a relative step of 2e-3 moves x/s by < 0.03, well
         * inside the 0.2 margin from any transition. */
        double h = 2e-3 * s0;
        *sp = (float)(s0 + h);
        double lp = bw_loss(&f, &b);
        double hp = (double)*sp - s0;
        *sp = (float)(s0 - h);
        double lm = bw_loss(&f, &b);
        double hm = s0 - (double)*sp;
        *sp = s0;
        double fd_s = (lp - lm) / (hp + hm);
        double ste = 0, mag = 0;
        for (int64_t i = 0; i < 360; i++) {
            if ((i / 30) % 3 != c) continue;
            float xv = nnq_f32(&b.x)[i];
            double q = ref_q_unclamped(xv, s0, z0), g = nnq_f32(&b.dy)[i];
            if (q >= -8 && q <= 7) ste += g * (double)(xv / s0);
            mag += fabs(g) * (fabs(q) + 8);
        }
        double ana = nnq_f32(&gs)[c], num = fd_s - ste;
        double den = fmax(fmax(fabs(ana), fabs(num)), 1e-2 * mag);
        if (!(fabs(ana - num) / den < 1e-3)) {
            fprintf(stderr, "d scale[%d]: analytic %.8g, FD - STE term %.8g (FD %.8g)\n", c, ana,
                    num, fd_s);
            check_failures_++;
        }

        double hz = 1e-2;
        *zp = (float)(z0 + hz);
        double lzp = bw_loss(&f, &b);
        *zp = (float)(z0 - hz);
        double lzm = bw_loss(&f, &b);
        *zp = z0;
        double fd_z = (lzp - lzm) / (2 * hz), anz = nnq_f32(&gz)[c];
        double denz = fmax(fmax(fabs(anz), fabs(fd_z)), 1e-2 * mag * s0);
        if (!(fabs(anz - fd_z) / denz < 1e-3)) {
            fprintf(stderr, "d zero_point[%d]: analytic %.8g, FD %.8g\n", c, anz, fd_z);
            check_failures_++;
        }
    }
    nnq_tensor_release(&gs);
    nnq_tensor_release(&gz);
    nnq_tensor_release(&y);

    /* Every element clamped: LSQ's d scale is the exact derivative. */
    for (int64_t i = 0; i < 360; i++) {
        int64_t ch = (i / 30) % 3;
        /* |x/s| in [11, 15]: r + z < -8 or > 7 for every channel's z */
        float v = 11.0f + 4.0f * fabsf(frand());
        nnq_f32(&b.x)[i] = (frand() < 0 ? -v : v) * bw_scales[ch];
    }
    gs = vec_f(BW_C, (float[]){0, 0, 0});
    CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y, &b.dy, NULL, &gs, NULL, 1));
    for (int c = 0; c < BW_C; c++) {
        float *sp = &nnq_f32(&b.s)[c];
        const float s0 = *sp;
        double h = 1e-2 * s0;
        *sp = (float)(s0 + h);
        double lp = bw_loss(&f, &b), hp = (double)*sp - s0;
        *sp = (float)(s0 - h);
        double lm = bw_loss(&f, &b), hm = s0 - (double)*sp;
        *sp = s0;
        double fd_s = (lp - lm) / (hp + hm), ana = nnq_f32(&gs)[c];
        CHECK(fabs(ana - fd_s) <= 1e-3 * fmax(fabs(ana), 1.0));
    }
    nnq_tensor_release(&gs);
    nnq_tensor_release(&y);
    bw_free(&b);
}

/* One element at a time, dY = 1, by hand: at ties, just off them, on the
 * grid ends and beyond. s = 0.5 (x exact), grid [-4, 3]; z = 0 and z = 2
 * (grid [0, 7]). */
static void test_backward_transitions(void) {
    const struct {
        float v;  /* x / s */
        float z;
        int64_t qmin, qmax;
        float dx, ds, dz;
    } cases[] = {
        {0.5f, 0, -4, 3, 1, -0.5f, 0},    /* tie to 0 */
        {1.5f, 0, -4, 3, 1, 0.5f, 0},     /* tie to 2 */
        {2.5f, 0, -4, 3, 1, -0.5f, 0},    /* tie to 2 */
        {2.4f, 0, -4, 3, 1, -0.4f, 0},
        {2.6f, 0, -4, 3, 1, 0.4f, 0},
        {3.0f, 0, -4, 3, 1, 0, 0},        /* on qmax */
        {3.4f, 0, -4, 3, 1, -0.4f, 0},    /* rounds onto qmax */
        {3.5f, 0, -4, 3, 0, 3, -0.5f},    /* tie to 4: above, qmax - z */
        {3.6f, 0, -4, 3, 0, 3, -0.5f},
        {50.0f, 0, -4, 3, 0, 3, -0.5f},
        {-4.0f, 0, -4, 3, 1, 0, 0},       /* on qmin */
        {-4.5f, 0, -4, 3, 1, 0.5f, 0},    /* tie to -4: still inside */
        {-4.6f, 0, -4, 3, 0, -4, -0.5f},  /* below: qmin - z */
        {-1e3f, 0, -4, 3, 0, -4, -0.5f},
        {-2.5f, 2, 0, 7, 1, 0.5f, 0},     /* q = -2 + 2 = 0 = qmin */
        {-2.6f, 2, 0, 7, 0, -2, -0.5f},   /* q = -1: below, qmin - z */
        {5.5f, 2, 0, 7, 0, 5, -0.5f},     /* tie to 6, q = 8: above, qmax - z */
        {5.4f, 2, 0, 7, 1, -0.4f, 0},     /* q = 7 = qmax */
    };
    const float s = 0.5f;
    int bad = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fq_node f;
        fq_node_init(&f, cases[k].qmin, cases[k].qmax, 1, 1, 1.0f);
        float xv = cases[k].v * s;
        nnq_tensor x = vec_f(1, &xv), st = scalar_f(s), z = scalar_f(cases[k].z), y = {0};
        nnq_tensor dy = vec_f(1, (float[]){1}), gx = vec_f(1, (float[]){0});
        nnq_tensor gs = scalar_f(0), gz = scalar_f(0);
        CHECK_OK(fq_fwd_bwd(&f.nd, &x, &st, &z, &y, &dy, &gx, &gs, &gz, 1));
        /* ds: round(v) - v is computed from the float x / s */
        double want_ds = cases[k].dx != 0 ? nearbyint((double)(xv / s)) - (double)(xv / s)
                                          : (double)cases[k].ds;
        if (nnq_f32(&gx)[0] != cases[k].dx || fabs(nnq_f32(&gs)[0] - want_ds) > 1e-6 ||
            fabs(want_ds - cases[k].ds) > 1e-6 || nnq_f32(&gz)[0] != cases[k].dz) {
            fprintf(stderr, "x/s = %g, z = %g: dx %g ds %g dz %g, want %g %g %g\n", cases[k].v,
                    cases[k].z, nnq_f32(&gx)[0], nnq_f32(&gs)[0], nnq_f32(&gz)[0], cases[k].dx,
                    cases[k].ds, cases[k].dz);
            bad++;
        }
        nnq_tensor *rel[] = {&x, &st, &z, &y, &dy, &gx, &gs, &gz};
        for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
    }
    CHECK(bad == 0);

    /* NaN X: Y = 0 whatever s and z, so no gradient anywhere. */
    fq_node f;
    fq_node_init(&f, -4, 3, 1, 1, 1.0f);
    nnq_tensor x = vec_f(1, (float[]){NAN}), st = scalar_f(s), z = scalar_f(1), y = {0};
    nnq_tensor dy = vec_f(1, (float[]){1}), gx = vec_f(1, (float[]){0});
    nnq_tensor gs = scalar_f(0), gz = scalar_f(0);
    CHECK_OK(fq_fwd_bwd(&f.nd, &x, &st, &z, &y, &dy, &gx, &gs, &gz, 1));
    CHECK(nnq_f32(&y)[0] == 0.0f && nnq_f32(&gx)[0] == 0.0f && nnq_f32(&gs)[0] == 0.0f &&
          nnq_f32(&gz)[0] == 0.0f);
    nnq_tensor *rel[] = {&x, &st, &z, &y, &dy, &gx, &gs, &gz};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* grad_scale multiplies the parameter gradients only: Y and dX unchanged. */
static void test_grad_scale(void) {
    bw_case b = bw_make(false, 0);
    nnq_tensor y[2] = {{0}}, gx[2], gs[2], gz[2];
    for (int k = 0; k < 2; k++) {
        fq_node f;
        fq_node_init(&f, -8, 7, 1, 1, k == 0 ? 1.0f : 0.25f);
        gx[k] = mk(NNQ_DT_FLOAT, 4, DIMS(4, 3, 5, 6), NULL);
        gs[k] = vec_f(BW_C, (float[]){0, 0, 0});
        gz[k] = vec_f(BW_C, (float[]){0, 0, 0});
        CHECK_OK(fq_fwd_bwd(&f.nd, &b.x, &b.s, &b.z, &y[k], &b.dy, &gx[k], &gs[k], &gz[k], 1));
    }
    CHECK(y[1].data && memcmp(y[0].data, y[1].data, 360 * sizeof(float)) == 0);
    CHECK(memcmp(gx[0].data, gx[1].data, 360 * sizeof(float)) == 0);
    for (int c = 0; c < BW_C; c++) {
        CHECK(nnq_f32(&gs[0])[c] != 0.0f && nnq_f32(&gz[0])[c] != 0.0f);
        CHECK(nnq_f32(&gs[1])[c] == 0.25f * nnq_f32(&gs[0])[c]); /* a power of two: exact */
        CHECK(nnq_f32(&gz[1])[c] == 0.25f * nnq_f32(&gz[0])[c]);
    }
    for (int k = 0; k < 2; k++) {
        nnq_tensor_release(&y[k]);
        nnq_tensor_release(&gx[k]);
        nnq_tensor_release(&gs[k]);
        nnq_tensor_release(&gz[k]);
    }
    bw_free(&b);
}

/* Forward and backward bit-identical with 1 and 2 threads, per tensor and
 * per channel, on tensors above the parallel threshold. */
static void test_threads(void) {
    const int64_t *d = DIMS(4, 16, 32, 32); /* 65536 elements */
    float sc[16], zc[16];
    for (int c = 0; c < 16; c++) {
        sc[c] = 0.01f + 0.003f * (float)c;
        zc[c] = (float)(c * 15);
    }
    for (int per_channel = 0; per_channel <= 1; per_channel++) {
        int c = per_channel ? 16 : 1;
        fq_node f;
        fq_node_init(&f, 0, 255, 1, 1, 1.0f);
        nnq_tensor x = mk_rand(4, d, 2.0f), dy = mk_rand(4, d, 1.0f);
        nnq_tensor s = vec_f(c, sc), z = vec_f(c, zc);
        nnq_tensor y[2] = {{0}}, gx[2], gs[2], gz[2];
        for (int k = 0; k < 2; k++) {
            gx[k] = mk(NNQ_DT_FLOAT, 4, d, NULL);
            gs[k] = mk(NNQ_DT_FLOAT, 1, DIMS(c), NULL);
            gz[k] = mk(NNQ_DT_FLOAT, 1, DIMS(c), NULL);
            CHECK_OK(fq_fwd_bwd(&f.nd, &x, &s, &z, &y[k], &dy, &gx[k], &gs[k], &gz[k], k + 1));
        }
        CHECK(y[1].data && memcmp(y[0].data, y[1].data, 65536 * sizeof(float)) == 0);
        CHECK(memcmp(gx[0].data, gx[1].data, 65536 * sizeof(float)) == 0);
        CHECK(memcmp(gs[0].data, gs[1].data, (size_t)c * sizeof(float)) == 0);
        CHECK(memcmp(gz[0].data, gz[1].data, (size_t)c * sizeof(float)) == 0);
        /* and right: the per-tensor sums against a serial double sum */
        if (!per_channel) {
            double ws = 0, mag = 0;
            for (int64_t i = 0; i < 65536; i++) {
                float xv = nnq_f32(&x)[i];
                double q = ref_q_unclamped(xv, sc[0], zc[0]), g = nnq_f32(&dy)[i], t;
                t = q < 0 ? g * (0 - zc[0]) : q > 255 ? g * (255 - zc[0]) : g * (q - zc[0] - (double)(xv / sc[0]));
                ws += t;
                mag += fabs(t);
            }
            CHECK_NEAR(nnq_f32(&gs[0])[0], ws, 1e-6 * mag);
        }
        /* The same per-tensor quantizer on Q/DQ, threaded. */
        for (int k = 0; k < 2; k++) {
            nnq_tensor_release(&y[k]);
            nnq_tensor_release(&gx[k]);
            nnq_tensor_release(&gs[k]);
            nnq_tensor_release(&gz[k]);
        }
        nnq_tensor *rel[] = {&x, &dy, &s, &z};
        for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
    }
    /* QuantizeLinear / DequantizeLinear threaded equal serial. */
    nnq_tensor x = mk_rand(4, d, 2.0f), s = vec_f(16, sc), yq[2] = {{0}}, ydq[2] = {{0}};
    uint8_t zu[16];
    for (int c = 0; c < 16; c++) zu[c] = (uint8_t)(c * 15);
    nnq_tensor z = mk(NNQ_DT_UINT8, 1, DIMS(16), zu);
    nnq_node q = mk_node("QuantizeLinear", NULL, 0), dq = mk_node("DequantizeLinear", NULL, 0);
    for (int k = 0; k < 2; k++) {
        const nnq_tensor *qin[3] = {&x, &s, &z};
        CHECK_OK(run(&nnq_op_QuantizeLinear, &q, 13, 3, qin, &yq[k], k + 1));
        const nnq_tensor *dqin[3] = {&yq[k], &s, &z};
        CHECK_OK(run(&nnq_op_DequantizeLinear, &dq, 13, 3, dqin, &ydq[k], k + 1));
    }
    CHECK(yq[1].data && ydq[1].data && memcmp(yq[0].data, yq[1].data, 65536) == 0 &&
          memcmp(ydq[0].data, ydq[1].data, 65536 * sizeof(float)) == 0);
    nnq_tensor *rel[] = {&x, &s, &z, &yq[0], &yq[1], &ydq[0], &ydq[1]};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

/* Bad attributes and parameters fail with a status and a message. */
static void test_errors(void) {
    nnq_tensor x = mk_rand(4, DIMS(2, 3, 2, 2), 1.0f), s = scalar_f(0.1f), z = scalar_f(0.0f);
    nnq_tensor y = {0};
    nnq_node none = mk_node("FakeQuant", NULL, 0);
    CHECK_STATUS(fq_run(&none, &x, &s, &z, &y, 1), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "qmin") != NULL);
    fq_node f;
    fq_node_init(&f, 5, 5, 1, 1, 1.0f);
    CHECK_STATUS(fq_run(&f.nd, &x, &s, &z, &y, 1), NNQ_ERR_INVALID);
    fq_node_init(&f, 0, (int64_t)1 << 32, 1, 1, 1.0f);
    CHECK_STATUS(fq_run(&f.nd, &x, &s, &z, &y, 1), NNQ_ERR_INVALID);
    /* scale count against X's axis dim (3); zero point count against scale */
    fq_node_init(&f, -128, 127, 1, 1, 1.0f);
    nnq_tensor s2 = vec_f(2, (float[]){1, 1}), s3 = vec_f(3, (float[]){1, 1, 1});
    CHECK_STATUS(fq_run(&f.nd, &x, &s2, &z, &y, 1), NNQ_ERR_SHAPE);
    CHECK_STATUS(fq_run(&f.nd, &x, &s3, &z, &y, 1), NNQ_ERR_SHAPE);
    CHECK(strstr(nnq_last_error(), "zero_point") != NULL);
    fq_node_init(&f, -128, 127, -1, 1, 1.0f); /* axis -1: dim 2 */
    nnq_tensor z2 = vec_f(2, (float[]){0, 0});
    CHECK_OK(fq_run(&f.nd, &x, &s2, &z2, &y, 1));
    nnq_tensor_release(&y);
    /* non-positive scale, zero point off the grid: at run time */
    fq_node_init(&f, -128, 127, 1, 1, 1.0f);
    nnq_tensor s0 = scalar_f(0.0f), zoff = scalar_f(128.0f), znan = scalar_f(NAN);
    CHECK_STATUS(fq_run(&f.nd, &x, &s0, &z, &y, 1), NNQ_ERR_INVALID);
    CHECK_STATUS(fq_run(&f.nd, &x, &s, &zoff, &y, 1), NNQ_ERR_INVALID);
    CHECK_STATUS(fq_run(&f.nd, &x, &s, &znan, &y, 1), NNQ_ERR_INVALID);
    /* float only */
    int8_t xi[24] = {0};
    nnq_tensor x8 = mk(NNQ_DT_INT8, 4, DIMS(2, 3, 2, 2), xi);
    CHECK_STATUS(fq_run(&f.nd, &x8, &s, &z, &y, 1), NNQ_ERR_UNSUPPORTED);
    nnq_tensor *rel[] = {&x, &s, &z, &y, &s2, &s3, &z2, &s0, &zoff, &znan, &x8};
    for (size_t r = 0; r < sizeof rel / sizeof rel[0]; r++) nnq_tensor_release(rel[r]);
}

int main(void) {
    test_domains();
    test_rounding_ties();
    test_clamp_and_nan();
    test_per_axis();
    test_dequantize_types();
    test_fake_quant_equals_qdq();
    test_disabled();
    test_wide_grid();
    test_graph();
    test_backward_closed_form();
    test_backward_finite_differences();
    test_backward_transitions();
    test_grad_scale();
    test_threads();
    test_errors();
    return check_finish("test_quantize_ops");
}
