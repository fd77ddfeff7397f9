/* The (s, z, b) quantizer: grids, range → parameters (nudging, symmetric,
 * degenerate ranges), rounding rule, per-channel application. */
#include <float.h>
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

/* Full-range symmetric scale (PyTorch's): s = a / ((qmax - qmin) / 2), so
 * -a lands on qmin (a tie, to even), +a clamps to qmax, 0 stays exact and
 * no value of [-a, a] is off by more than s/2; restricted: s = a / qmax. */
static void test_symmetric_full_range(void) {
    nnq_sym_range r;
    CHECK(nnq_sym_range_parse("full", &r) && r == NNQ_SYM_FULL);
    CHECK(nnq_sym_range_parse("restricted", &r) && r == NNQ_SYM_RESTRICTED);
    CHECK(!nnq_sym_range_parse("Full", &r) && !nnq_sym_range_parse(NULL, &r));
    CHECK(strcmp(nnq_sym_range_name(NNQ_SYM_FULL), "full") == 0);
    CHECK(strcmp(nnq_sym_range_name((nnq_sym_range)9), "unknown") == 0);
    nnq_qconfig bad = {.bits = 8, .symmetric = true, .is_signed = true,
                       .sym_range = (nnq_sym_range)9};
    CHECK_STATUS(nnq_qconfig_check(&bad), NNQ_ERR_INVALID);

    const int bits[] = {4, 8};
    const float a_exact[] = {3.75f, 127.5f}; /* a / (2^(b-1) - 1/2) = 0.5, 1: exact */
    for (int k = 0; k < 2; k++) {
        const int b = bits[k];
        nnq_qconfig c = {.bits = b, .symmetric = true, .is_signed = true,
                         .sym_range = NNQ_SYM_FULL};
        nnq_quantizer q, qr;
        CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
        nnq_qconfig cr = c;
        cr.sym_range = NNQ_SYM_RESTRICTED;
        CHECK_OK(nnq_quantizer_init(&qr, &cr, -1, 1));
        const float a = a_exact[k];
        nnq_quantizer_set_range(&q, 0, -a, 0.25f * a);
        const float s = q.scale[0];
        CHECK(s == (b == 4 ? 0.5f : 1.0f) && q.zero_point[0] == 0);
        CHECK(nnq_quantize_i(-a, s, 0, q.qmin, q.qmax) == q.qmin);
        CHECK(nnq_quantize_i(a, s, 0, q.qmin, q.qmax) == q.qmax);
        CHECK(nnq_quantize_i(0.0f, s, 0, q.qmin, q.qmax) == 0);
        float lo, hi;
        nnq_quantizer_get_range(&q, 0, &lo, &hi);
        CHECK(lo == -a - 0.5f * s && hi == a - 0.5f * s);
        /* Any a: the step is (2^b - 1) / (2^b - 2) times finer than the
         * restricted one, and every value of [-a, a] is within s/2. */
        for (int t = 0; t < 50; t++) {
            const float am = 0.013f + 0.37f * (float)t, sign = t % 2 ? -1.0f : 1.0f;
            nnq_quantizer_set_range(&q, 0, sign * am, -0.5f * sign * am);
            nnq_quantizer_set_range(&qr, 0, sign * am, -0.5f * sign * am);
            const double want = am / (double)((1 << (b - 1)) - 0.5);
            CHECK(fabs(q.scale[0] - want) <= 1e-6 * want);
            CHECK(fabs(qr.scale[0] / q.scale[0] - ((1 << b) - 1.0) / ((1 << b) - 2.0)) < 1e-6);
            double worst = 0;
            for (int i = -1000; i <= 1000; i++) {
                const float x = am * (float)i / 1000.0f;
                const float y = nnq_fake_quant_f(x, q.scale[0], 0.0f, (float)q.qmin, (float)q.qmax);
                worst = fmax(worst, fabs((double)y - x));
            }
            /* (plus float rounding of values of size a) */
            CHECK(worst <= 0.5 * q.scale[0] + FLT_EPSILON * am);
        }
        nnq_quantizer_free(&q);
        nnq_quantizer_free(&qr);
    }
    /* Grids without a spare level: narrow signed and unsigned keep s = a / qmax. */
    const nnq_qconfig same[] = {
        {.bits = 8, .symmetric = true, .is_signed = true, .narrow = true, .sym_range = NNQ_SYM_FULL},
        {.bits = 8, .symmetric = true, .is_signed = false, .sym_range = NNQ_SYM_FULL}};
    for (int k = 0; k < 2; k++) {
        nnq_quantizer q;
        CHECK_OK(nnq_quantizer_init(&q, &same[k], -1, 1));
        nnq_quantizer_set_range(&q, 0, 0.0f, 6.0f);
        CHECK_NEAR(q.scale[0], 6.0 / q.qmax, 1e-8);
        nnq_quantizer_free(&q);
    }
    /* Asymmetric quantizers ignore the convention. */
    nnq_qconfig ca = {.bits = 8, .is_signed = false, .sym_range = NNQ_SYM_FULL};
    nnq_quantizer qa;
    CHECK_OK(nnq_quantizer_init(&qa, &ca, -1, 1));
    nnq_quantizer_set_range(&qa, 0, -1.3f, 2.7f);
    CHECK_NEAR(qa.scale[0], 4.0 / 255, 1e-8);
    nnq_quantizer_free(&qa);
    /* Per channel: each channel's own a, and nnq_qerror_mse scores the same
     * quantizer (what the range searches rely on). */
    nnq_qconfig cp = {.bits = 4, .symmetric = true, .is_signed = true, .per_channel = true,
                      .sym_range = NNQ_SYM_FULL};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &cp, 0, 3));
    float x[3 * 8], y[3 * 8];
    for (int i = 0; i < 24; i++) x[i] = (float)(i / 8 + 1) * sinf(0.9f * (float)i);
    for (int ch = 0; ch < 3; ch++) {
        float mx = 0;
        for (int i = 0; i < 8; i++) mx = fmaxf(mx, fabsf(x[ch * 8 + i]));
        nnq_quantizer_set_range(&q, ch, -mx, mx);
        CHECK_NEAR(q.scale[ch], mx / 7.5, 1e-6 * mx);
        double e = 0;
        for (int i = 0; i < 8; i++) {
            const float v = x[ch * 8 + i];
            const double d = v - nnq_fake_quant_f(v, q.scale[ch], 0.0f, -8.0f, 7.0f);
            e += d * d;
        }
        CHECK_NEAR(nnq_qerror_mse(&cp, x + ch * 8, 8, 1, -mx, mx), e / 8, 1e-12);
    }
    nnq_quantizer_apply(&q, x, y, 1, 8);
    int32_t qi[24];
    nnq_quantizer_quantize(&q, x, qi, 1, 8);
    for (int i = 0; i < 24; i++) {
        CHECK(qi[i] >= -8 && qi[i] <= 7);
        CHECK(y[i] == q.scale[i / 8] * (float)qi[i]);
        CHECK(fabsf(y[i] - x[i]) <= 0.5f * q.scale[i / 8] * (1 + 1e-5f));
    }
    nnq_quantizer_free(&q);
}

/* Tight symmetric scale (nnq's default): the smallest s whose grid
 * [qmin s, qmax s] holds [lo, hi]: max(-lo / 8, hi / 7) at 4 bits; both
 * ends representable (no clipping), qmin used when lo dominates. */
static void test_symmetric_tight(void) {
    nnq_sym_range r;
    CHECK(nnq_sym_range_parse("tight", &r) && r == NNQ_SYM_TIGHT);
    nnq_qconfig c = {.bits = 4, .symmetric = true, .is_signed = true, .sym_range = NNQ_SYM_TIGHT};
    nnq_quantizer q;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    nnq_quantizer_set_range(&q, 0, -4.0f, 2.5f); /* negative end dominates: s = 4/8 */
    CHECK(q.scale[0] == 0.5f && q.zero_point[0] == 0);
    CHECK(nnq_quantize_i(-4.0f, 0.5f, 0, q.qmin, q.qmax) == -8);
    nnq_quantizer_set_range(&q, 0, -3.0f, 3.5f); /* positive end: s = 3.5/7, as restricted */
    CHECK(q.scale[0] == 0.5f);
    nnq_quantizer_set_range(&q, 0, -3.75f, 3.5f); /* both fit exactly at s = 0.5 */
    CHECK(q.scale[0] == 0.5f);
    float lo, hi;
    for (int t = 0; t < 40; t++) { /* never clips: [lo, hi] inside the grid's range */
        const float a = 0.05f + 0.29f * (float)t, b = 0.07f + 0.13f * (float)((t * 7) % 40);
        nnq_quantizer_set_range(&q, 0, -a, b);
        nnq_quantizer_get_range(&q, 0, &lo, &hi);
        CHECK(lo <= -a * (1 - 1e-6f) && hi >= b * (1 - 1e-6f));
        CHECK(q.scale[0] <= fmaxf(a, b) / 7.0f * (1 + 1e-6f)); /* never coarser than restricted */
        CHECK(fabsf(q.scale[0] - fmaxf(a / 8, b / 7)) <= 1e-6f * q.scale[0]);
    }
    nnq_quantizer_free(&q);
    /* narrow grid: nothing to gain, s = a / qmax */
    c.narrow = true;
    c.bits = 8;
    CHECK_OK(nnq_quantizer_init(&q, &c, -1, 1));
    nnq_quantizer_set_range(&q, 0, -2.54f, 1.0f);
    CHECK_NEAR(q.scale[0], 2.54 / 127, 1e-8);
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
    test_symmetric_full_range();
    test_symmetric_tight();
    test_per_channel();
    test_qerror();
    return check_finish("test_quantizer");
}
