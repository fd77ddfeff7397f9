/* The (s, z, b) quantizer: grids, range → parameters (nudging, symmetric,
 * degenerate ranges), rounding rule, per-channel application. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "quant/quantizer.h"

static void test_grids(void) {
    int32_t lo, hi;
    for (int b = 2; b <= 16; b++) {
        nnq_qgrid(b, true, false, &lo, &hi);
        CHECK(lo == -(1 << (b - 1)) && hi == (1 << (b - 1)) - 1);
        nnq_qgrid(b, true, true, &lo, &hi);
        CHECK(lo == -hi);
        nnq_qgrid(b, false, false, &lo, &hi);
        CHECK(lo == 0 && hi == (1 << b) - 1);
    }
    nnq_qconfig c = {.bits = 1};
    CHECK_STATUS(nnq_qconfig_check(&c), NNQ_ERR_INVALID);
    c.bits = 17;
    CHECK_STATUS(nnq_qconfig_check(&c), NNQ_ERR_INVALID);
    c = (nnq_qconfig){.bits = 8, .narrow = true, .is_signed = false};
    CHECK_STATUS(nnq_qconfig_check(&c), NNQ_ERR_INVALID);
}

/* Ties go to even, from x / s; NaN → z; saturation at both ends. */
static void test_rounding(void) {
    const float s = 0.5f;
    CHECK(nnq_quantize_i(0.25f, s, 0, -128, 127) == 0);  /* 0.5 → 0 */
    CHECK(nnq_quantize_i(0.75f, s, 0, -128, 127) == 2);  /* 1.5 → 2 */
    CHECK(nnq_quantize_i(1.25f, s, 0, -128, 127) == 2);  /* 2.5 → 2 */
    CHECK(nnq_quantize_i(-1.25f, s, 0, -128, 127) == -2);
    CHECK(nnq_quantize_i(-0.75f, s, 0, -128, 127) == -2);
    CHECK(nnq_quantize_i(1.26f, s, 0, -128, 127) == 3);
    CHECK(nnq_quantize_i(1e30f, s, 3, 0, 255) == 255);
    CHECK(nnq_quantize_i(-1e30f, s, 3, 0, 255) == 0);
    CHECK(nnq_quantize_i(INFINITY, s, 3, 0, 15) == 15);
    CHECK(nnq_quantize_i(NAN, s, 7, 0, 15) == 7);
    /* The magic-number rounding equals rint (half to even) on a sweep. */
    int bad = 0;
    for (int i = -40000; i <= 40000; i++) {
        const float v = (float)i * 0.25f + 0.001f * (float)(i % 3);
        if (nnq_round_half_even(v) != rintf(v)) bad++;
    }
    CHECK(bad == 0);
}

static void test_asymmetric_nudging(void) {
    nnq_qconfig c = {.bits = 8, .symmetric = false, .is_signed = false};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    const float ranges[][2] = {{-1.3f, 2.7f}, {0.2f, 5.0f}, {-3.0f, -0.5f}, {-0.001f, 100.0f},
                               {-7.77f, 0.01f}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        nnq_quantizer_set_range(&q, 0, ranges[i][0], ranges[i][1]);
        const float s = q.scale[0];
        const int32_t z = q.zero_point[0];
        CHECK(z >= 0 && z <= 255);
        /* 0.0 is exact (zero padding, ReLU zeros). */
        CHECK(nnq_quantize_i(0.0f, s, z, 0, 255) == z);
        CHECK(nnq_fake_quant_f(0.0f, s, (float)z, 0, 255) == 0.0f);
        /* The represented range covers [min(lo,0), max(hi,0)] up to half a step. */
        float lo, hi;
        nnq_quantizer_get_range(&q, 0, &lo, &hi);
        CHECK(lo <= fminf(ranges[i][0], 0.0f) + 0.5f * s);
        CHECK(hi >= fmaxf(ranges[i][1], 0.0f) - 0.5f * s);
        CHECK_NEAR(s, (fmaxf(ranges[i][1], 0) - fminf(ranges[i][0], 0)) / 255.0, 1e-6 * s + 1e-12);
    }
    /* Degenerate: an all-zero tensor. */
    nnq_quantizer_set_range(&q, 0, 0.0f, 0.0f);
    CHECK(q.scale[0] == 1.0f && q.zero_point[0] == 0);
    CHECK(nnq_fake_quant_f(0.0f, q.scale[0], 0, 0, 255) == 0.0f);
    /* NaN ends count as zero: still a valid quantizer. */
    nnq_quantizer_set_range(&q, 0, NAN, 1.0f);
    CHECK(q.scale[0] > 0 && isfinite(q.scale[0]));
    nnq_quantizer_free(&q);
}

static void test_symmetric(void) {
    nnq_qconfig c = {.bits = 4, .symmetric = true, .is_signed = true};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    nnq_quantizer_set_range(&q, 0, -0.3f, 0.7f);
    CHECK(q.zero_point[0] == 0);
    CHECK_NEAR(q.scale[0], 0.7 / 7.0, 1e-7);
    CHECK(nnq_quantize_i(0.7f, q.scale[0], 0, q.qmin, q.qmax) == 7);
    CHECK(nnq_quantize_i(-0.9f, q.scale[0], 0, q.qmin, q.qmax) == -8);
    nnq_quantizer_free(&q);
    /* Unsigned symmetric (non-negative tensors): s = max / (2^b - 1). */
    c = (nnq_qconfig){.bits = 8, .symmetric = true, .is_signed = false};
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    nnq_quantizer_set_range(&q, 0, 0.0f, 6.0f);
    CHECK_NEAR(q.scale[0], 6.0 / 255.0, 1e-8);
    nnq_quantizer_free(&q);
}

/* Per-channel along the middle axis of [outer, n, inner]. */
static void test_per_channel(void) {
    nnq_qconfig c = {.bits = 3, .symmetric = true, .is_signed = true, .per_channel = true};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, 1, 3));
    CHECK(q.axis == 1 && q.n == 3);
    for (int ch = 0; ch < 3; ch++) nnq_quantizer_set_range(&q, ch, -1.0f, (float)(ch + 1));
    float x[2 * 3 * 4], y[2 * 3 * 4];
    for (int i = 0; i < 24; i++) x[i] = 0.37f * (float)(i - 11);
    nnq_quantizer_apply(&q, x, y, 2, 4);
    int32_t qi[24];
    nnq_quantizer_quantize(&q, x, qi, 2, 4);
    for (int o = 0; o < 2; o++)
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 4; i++) {
                const int k = (o * 3 + ch) * 4 + i;
                const float s = q.scale[ch];
                CHECK(y[k] == nnq_fake_quant_f(x[k], s, 0, -4, 3));
                CHECK(qi[k] >= -4 && qi[k] <= 3);
                CHECK(y[k] == s * (float)qi[k]);
            }
    /* Per-tensor needs exactly one pair. */
    nnq_quantizer_free(&q);
    c.per_channel = false;
    CHECK_STATUS(nnq_quantizer_init(&q, &c, 0, 3), NNQ_ERR_INVALID);
}

static void test_qerror(void) {
    nnq_qconfig c = {.bits = 4, .symmetric = false, .is_signed = false};
    float x[100];
    for (int i = 0; i < 100; i++) x[i] = sinf((float)i) * 3.0f;
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    nnq_quantizer_set_range(&q, 0, -2.0f, 2.0f);
    double want = 0;
    for (int i = 0; i < 100; i++) {
        const double d = x[i] - nnq_fake_quant_f(x[i], q.scale[0], (float)q.zero_point[0], 0, 15);
        want += d * d;
    }
    CHECK_NEAR(nnq_qerror_mse(&c, x, 100, 1, -2.0f, 2.0f), want / 100, 1e-12);
    /* Strided: every other value. */
    double want2 = 0;
    for (int i = 0; i < 100; i += 2) {
        const double d = x[i] - nnq_fake_quant_f(x[i], q.scale[0], (float)q.zero_point[0], 0, 15);
        want2 += d * d;
    }
    CHECK_NEAR(nnq_qerror_mse(&c, x, 50, 2, -2.0f, 2.0f), want2 / 50, 1e-12);
    nnq_quantizer_free(&q);
}

int main(void) {
    test_grids();
    test_rounding();
    test_asymmetric_nudging();
    test_symmetric();
    test_per_channel();
    test_qerror();
    return check_finish("test_quantizer");
}
