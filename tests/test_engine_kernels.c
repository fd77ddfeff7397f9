/* The engine's integer kernels (src/engine/, issue 6):
 *  - the requantization rule (core/requant.h) against exact rational
 *    arithmetic: round half up of acc * mult * 2^-shift, error bounds for
 *    scales mult cannot represent, the shift clamp at tiny scales;
 *  - the reference kernels against a textbook loop written here
 *    (bias + sum (x - x_zp) w with padding skipped, floor division in
 *    __int128): non-zero zero points with padding, ties at exact .5 points,
 *    saturation, per-channel upper clamps, groups, dilation, low bit-widths;
 *  - every AVX2 and AVX-512 VNNI kernel against the reference, bit for
 *    bit, over a sweep of shapes and edge values (each ISA skipped with a
 *    note on CPUs without it), including the VNNI depthwise kernel's two
 *    paths (small planes in registers; runs of images on a virtual grid);
 *  - vnni-depthwise-direct (VBMI) on its own sweep of every path it splits
 *    into: widths 1..40, every pad combination 0..2, strides 1 and 2;
 *  - descriptor checks and kernel selection (NNQ_KERNELS). */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/requant.h"
#include "engine/cpu.h"
#include "engine/qkernels.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int64_t rnd_range(int64_t lo, int64_t hi) { /* inclusive */
    return lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1));
}
static double rnd_unit(void) { return (double)(rnd64() >> 11) * 0x1.0p-53; }

/* floor((acc * mult + 2^(shift-1)) / 2^shift) by division, not by >>. */
static int64_t textbook_requant(int64_t acc, int32_t mult, int32_t shift) {
    const __int128 num = (__int128)acc * mult + ((__int128)1 << (shift - 1));
    const __int128 d = (__int128)1 << shift;
    __int128 q = num / d;
    if (num % d != 0 && num < 0) q -= 1;
    return (int64_t)q;
}

static int ties_pos, ties_neg; /* exact .5 points seen by the textbook loops */

static uint8_t textbook_out(int64_t acc, int32_t mult, int32_t shift, int32_t y_zp, int lo,
                            int hi) {
    const __int128 prod = (__int128)acc * mult, d = (__int128)1 << shift;
    __int128 rem = prod % d;
    if (rem < 0) rem += d;
    if (mult && rem == d / 2) {
        if (acc > 0) ties_pos++;
        else ties_neg++;
    }
    const int64_t v = y_zp + textbook_requant(acc, mult, shift);
    return (uint8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* ---- requantization rule ---- */

static void test_requant_exact(void) {
    /* Dyadic scales m * 2^-s are represented exactly; the result must be the
     * round-half-up of the exact product: 2r - 1 <= 2 acc m / 2^s < 2r + 1. */
    const int32_t accs[] = {0, 1, -1, 2, -2, 3, -3, 12345, -12345, INT32_MAX, INT32_MIN,
                            INT32_MIN + 1, 1 << 30, -(1 << 30)};
    int bad = 0, inexact = 0;
    for (int t = 0; t < 20000; t++) {
        const int32_t m = (int32_t)rnd_range((int64_t)1 << 30, ((int64_t)1 << 31) - 1);
        const int32_t s = (int32_t)rnd_range(1, 62);
        const double real = ldexp((double)m, -s);
        int32_t mm, ss;
        if (real >= 0x1p30 || nnq_requant_make(real, &mm, &ss) != NNQ_OK) continue;
        if (mm != m || ss != s) inexact++;
        for (int i = 0; i < 16; i++) {
            const int32_t acc = i < 14 ? accs[i] : (int32_t)rnd64();
            const int64_t r = nnq_requant_apply(acc, m, s);
            const __int128 two = 2 * (__int128)acc * m, d = (__int128)1 << s;
            if (!(((__int128)2 * r - 1) * d <= two && two < ((__int128)2 * r + 1) * d)) bad++;
        }
    }
    CHECK(inexact == 0);
    CHECK(bad == 0);
    /* Ties go up (towards +inf): scale 1/2, odd accumulators. */
    int32_t m, s;
    CHECK_OK(nnq_requant_make(0.5, &m, &s));
    CHECK(m == (1 << 30) && s == 31);
    CHECK(nnq_requant_apply(1, m, s) == 1);
    CHECK(nnq_requant_apply(-1, m, s) == 0);
    CHECK(nnq_requant_apply(3, m, s) == 2);
    CHECK(nnq_requant_apply(-3, m, s) == -1);
    CHECK(nnq_requant_apply(-5, m, s) == -2);
    /* Scale 3/4 at acc = 2 (1.5 -> 2) and -2 (-1.5 -> -1). */
    CHECK_OK(nnq_requant_make(0.75, &m, &s));
    CHECK(nnq_requant_apply(2, m, s) == 2 && nnq_requant_apply(-2, m, s) == -1);
    /* Scales above 1 need int64 results. */
    CHECK_OK(nnq_requant_make(1024.0, &m, &s));
    CHECK(nnq_requant_apply(INT32_MAX, m, s) == (int64_t)INT32_MAX * 1024);
    CHECK(nnq_requant_apply(INT32_MIN, m, s) == (int64_t)INT32_MIN * 1024);
}

static void test_requant_bounds(void) {
    /* Arbitrary scales: mult normalised (or the shift at its clamp), the
     * represented scale within 2^-31 relative (2^-63 absolute when clamped),
     * and the result within 1/2 + |acc| * representation error. */
    int bad_norm = 0, bad_rel = 0, bad_err = 0;
    for (int t = 0; t < 20000; t++) {
        const double real = exp2(-70.0 + 99.0 * rnd_unit()); /* 2^-70 .. 2^29 */
        int32_t m, s;
        if (nnq_requant_make(real, &m, &s) != NNQ_OK) {
            bad_norm++;
            continue;
        }
        if (s < 1 || s > 62 || m < 0) bad_norm++;
        if (s < 62 && (m < (1 << 30))) bad_norm++;
        const long double rep = ldexpl((long double)m, -s);
        const long double err = fabsl(rep - (long double)real);
        if (s < 62 ? err > ldexpl(real, -31) : err > 0x1p-63L) bad_rel++;
        for (int i = 0; i < 8; i++) {
            const int32_t acc = (int32_t)rnd64();
            const long double exact = (long double)acc * (long double)real;
            const long double r = (long double)nnq_requant_apply(acc, m, s);
            /* long double keeps 64 bits: slack of 2^-60 relative for the product */
            if (fabsl(r - exact) > 0.5L + fabsl((long double)acc) * err + fabsl(exact) * 0x1p-60L)
                bad_err++;
        }
    }
    CHECK(bad_norm == 0);
    CHECK(bad_rel == 0);
    CHECK(bad_err == 0);
    /* The shift clamp at tiny scales. */
    int32_t m, s;
    CHECK_OK(nnq_requant_make(1e-15, &m, &s));
    CHECK(s == 62 && m == (int32_t)llround(ldexp(1e-15, 62)) && m > 0 && m < (1 << 30));
    CHECK_OK(nnq_requant_make(0x1p-70, &m, &s));
    CHECK(s == 62 && m == 0);
    CHECK_OK(nnq_requant_make(0.0, &m, &s));
    CHECK(m == 0 && s == 62 && nnq_requant_apply(INT32_MIN, m, s) == 0);
    /* Just below 2^30: the normalised mult would round to 2^31. */
    CHECK_OK(nnq_requant_make(0x1p30 * (1.0 - 0x1p-40), &m, &s));
    CHECK(s == 1 && m == INT32_MAX);
    CHECK_STATUS(nnq_requant_make(0x1p30, &m, &s), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_requant_make(-1.0, &m, &s), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_requant_make(NAN, &m, &s), NNQ_ERR_INVALID);
}

/* ---- convolution cases ---- */

typedef struct conv_case {
    int64_t n, h, w, in_ch, out_ch, groups, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    int32_t x_zp, y_zp;
    int bits;
    int extreme; /* 0 random; 1 x = 255, w = min; 2 x = 255, w = max; 3 x = 0, w = min */
    int hi_ch;   /* per-channel upper clamp */
    int ties;    /* mult/shift = 1/2 everywhere */
} conv_case;

typedef struct conv_data {
    conv_case cc;
    nnq_qconv_desc d;
    int8_t *w;
    int32_t *bias, *mult, *shift;
    uint8_t *hi;
    uint8_t *x;
    int64_t oh, ow;
} conv_data;

/* Per channel: mostly scales that spread outputs over the grid, plus ones
 * that saturate, scales above 1 (small shifts), arbitrary pairs, and 0. */
static void pick_requant(int64_t k, int bits, int32_t *mult, int32_t *shift) {
    const double wstd = bits == 8 ? 60.0 : ldexp(1.0, bits - 1) / 1.7;
    const double base = 40.0 / (sqrt((double)k) * 74.0 * wstd);
    const int kind = (int)rnd_range(0, 19);
    double real = base * (0.5 + rnd_unit());
    if (kind == 0) real *= 60.0;
    else if (kind == 1) real = 1.0 + 5000.0 * rnd_unit();
    if (kind == 2) {
        *mult = (int32_t)rnd_range(0, INT32_MAX);
        *shift = (int32_t)rnd_range(1, 62);
        return;
    }
    if (kind == 3) real = 0.0;
    if (nnq_requant_make(real, mult, shift) != NNQ_OK) *mult = 0, *shift = 62;
}

static void conv_data_make(conv_data *cd, const conv_case *cc) {
    memset(cd, 0, sizeof *cd);
    cd->cc = *cc;
    const int64_t cg = cc->in_ch / cc->groups, k = cg * cc->kh * cc->kw;
    const int64_t nw = cc->out_ch * k, nx = cc->n * cc->in_ch * cc->h * cc->w;
    const int32_t wmin = -(1 << (cc->bits - 1)), wmax = (1 << (cc->bits - 1)) - 1;
    cd->w = malloc((size_t)nw);
    cd->bias = malloc(sizeof(int32_t) * (size_t)cc->out_ch);
    cd->mult = malloc(sizeof(int32_t) * (size_t)cc->out_ch);
    cd->shift = malloc(sizeof(int32_t) * (size_t)cc->out_ch);
    cd->hi = malloc((size_t)cc->out_ch);
    cd->x = malloc((size_t)nx);
    for (int64_t i = 0; i < nw; i++)
        cd->w[i] = (int8_t)(cc->extreme == 1 || cc->extreme == 3 ? wmin
                            : cc->extreme == 2                  ? wmax
                                                                : rnd_range(wmin, wmax));
    for (int64_t i = 0; i < nx; i++)
        cd->x[i] = (uint8_t)(cc->extreme == 3 ? 0 : cc->extreme ? 255 : rnd_range(0, 255));
    for (int64_t o = 0; o < cc->out_ch; o++) {
        cd->bias[o] = (int32_t)rnd_range(-3000, 3000) * (cc->bits == 8 ? 10 : 1);
        if (cc->ties) cd->mult[o] = 1 << 30, cd->shift[o] = 31;
        else pick_requant(k, cc->bits, &cd->mult[o], &cd->shift[o]);
        cd->hi[o] = (uint8_t)rnd_range(cc->hi_ch ? 20 : 0, 255);
    }
    nnq_qconv_desc *d = &cd->d;
    *d = (nnq_qconv_desc){.name = "test_conv", .in_ch = cc->in_ch, .out_ch = cc->out_ch,
                          .groups = cc->groups, .kh = cc->kh, .kw = cc->kw,
                          .stride_h = cc->sh, .stride_w = cc->sw, .dil_h = cc->dh,
                          .dil_w = cc->dw, .pad_t = cc->pt, .pad_l = cc->pl, .pad_b = cc->pb,
                          .pad_r = cc->pr, .x_zp = cc->x_zp, .y_zp = cc->y_zp,
                          .w_bits = cc->bits, .weight = cd->w, .bias = cd->bias,
                          .mult = cd->mult, .shift = cd->shift, .lo = cc->hi_ch ? 3 : 0,
                          .hi = cc->hi_ch ? 250 : 255, .hi_ch = cc->hi_ch ? cd->hi : NULL};
    cd->oh = (cc->h + cc->pt + cc->pb - (cc->dh * (cc->kh - 1) + 1)) / cc->sh + 1;
    cd->ow = (cc->w + cc->pl + cc->pr - (cc->dw * (cc->kw - 1) + 1)) / cc->sw + 1;
}

static void conv_data_free(conv_data *cd) {
    free(cd->w);
    free(cd->bias);
    free(cd->mult);
    free(cd->shift);
    free(cd->hi);
    free(cd->x);
}

static size_t conv_out_size(const conv_data *cd) {
    return (size_t)(cd->cc.n * cd->cc.out_ch * cd->oh * cd->ow);
}

/* The definition, written independently of src/engine/. */
static void textbook_conv(const conv_data *cd, uint8_t *y) {
    const conv_case *c = &cd->cc;
    const int64_t cg = c->in_ch / c->groups, og = c->out_ch / c->groups;
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t o = 0; o < c->out_ch; o++) {
            const int64_t g = o / og;
            const int hi = cd->d.hi_ch && cd->hi[o] < cd->d.hi ? cd->hi[o] : cd->d.hi;
            for (int64_t oy = 0; oy < cd->oh; oy++)
                for (int64_t ox = 0; ox < cd->ow; ox++) {
                    int64_t acc = cd->bias[o];
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t ky = 0; ky < c->kh; ky++)
                            for (int64_t kx = 0; kx < c->kw; kx++) {
                                const int64_t iy = oy * c->sh - c->pt + ky * c->dh;
                                const int64_t ix = ox * c->sw - c->pl + kx * c->dw;
                                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                                const int64_t xv =
                                    cd->x[((n * c->in_ch + g * cg + ci) * c->h + iy) * c->w + ix];
                                acc += (xv - c->x_zp) *
                                       cd->w[((o * cg + ci) * c->kh + ky) * c->kw + kx];
                            }
                    y[((n * c->out_ch + o) * cd->oh + oy) * cd->ow + ox] =
                        textbook_out(acc, cd->mult[o], cd->shift[o], c->y_zp, cd->d.lo, hi);
                }
        }
}

/* Create with `kernel`, run, return the output (NULL on failure). The
 * scratch is deliberately misaligned by one byte. */
static uint8_t *run_conv(const conv_data *cd, const char *kernel) {
    nnq_qconv *op = NULL;
    nnq_status s = nnq_qconv_create_kernel(&cd->d, kernel, &op);
    if (s != NNQ_OK) {
        fprintf(stderr, "create %s: %s\n", kernel ? kernel : "auto", nnq_last_error());
        return NULL;
    }
    int64_t oh = 0, ow = 0;
    size_t scratch = 0;
    uint8_t *y = NULL, *buf = NULL;
    if (nnq_qconv_reshape(op, cd->cc.n, cd->cc.h, cd->cc.w, &oh, &ow, &scratch) != NNQ_OK ||
        oh != cd->oh || ow != cd->ow) {
        fprintf(stderr, "reshape %s: %s\n", kernel ? kernel : "auto", nnq_last_error());
        goto done;
    }
    y = malloc(conv_out_size(cd));
    buf = malloc(scratch + 1);
    memset(y, 0xA5, conv_out_size(cd));
    nnq_qconv_run(op, cd->x, y, scratch ? buf + 1 : NULL);
done:
    free(buf);
    nnq_qconv_destroy(op);
    return y;
}

static const char *ref_kernel(const conv_case *c) {
    return c->groups == c->in_ch && c->groups == c->out_ch ? "ref-depthwise" : "ref-conv";
}

static void test_reference_conv(void) {
    const conv_case cases[] = {
        /* 3x3 pad 1 with non-zero zero points, per-channel hi */
        {2, 7, 9, 3, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 37, 100, 8, 0, 1, 0},
        /* stride 2, asymmetric pads, 4-bit */
        {1, 10, 11, 4, 6, 1, 3, 3, 2, 2, 1, 1, 2, 0, 1, 2, 200, 3, 4, 0, 0, 0},
        /* groups, dilation, 2-bit */
        {1, 9, 8, 6, 4, 2, 3, 2, 1, 2, 2, 1, 1, 3, 0, 1, 128, 128, 2, 0, 0, 0},
        /* depthwise 5x5 stride 2 */
        {2, 12, 13, 5, 5, 5, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 11, 77, 8, 0, 1, 0},
        /* 1x1 with ties everywhere (scale 1/2) */
        {1, 6, 6, 3, 4, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 90, 128, 8, 0, 0, 1},
        /* saturation: x = 255 against w = -128 and 127 */
        {1, 5, 5, 8, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 128, 8, 1, 0, 0},
        {1, 5, 5, 8, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 255, 128, 8, 2, 0, 0},
    };
    ties_pos = ties_neg = 0;
    int64_t at_lo = 0, at_hi = 0; /* outputs saturated at either end */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conv_data cd;
        conv_data_make(&cd, &cases[i]);
        uint8_t *want = malloc(conv_out_size(&cd));
        textbook_conv(&cd, want);
        uint8_t *got = run_conv(&cd, ref_kernel(&cases[i]));
        CHECK(got != NULL);
        if (got) {
            const int same = memcmp(got, want, conv_out_size(&cd)) == 0;
            if (!same) fprintf(stderr, "reference conv case %zu differs from the textbook\n", i);
            CHECK(same);
        }
        for (size_t j = 0; j < conv_out_size(&cd); j++) {
            at_lo += want[j] == cd.d.lo;
            at_hi += want[j] == cd.d.hi;
        }
        free(got);
        free(want);
        conv_data_free(&cd);
    }
    CHECK(ties_pos > 0 && ties_neg > 0);
    CHECK(at_lo > 0 && at_hi > 0);
}

/* The SIMD convolution kernels, what they fit, and the ISA they need. */
typedef struct simd_kernel {
    const char *name;
    int min_bits, max_bits;
    bool depthwise_only, vnni, direct_only;
} simd_kernel;

static const simd_kernel simd[] = {
    {"avx2-gemm-madd16", 8, 8, false, false, false},
    {"avx2-gemm-maddubs", 2, 7, false, false, false},
    {"avx2-depthwise", 2, 8, true, false, false},
    {"vnni-direct", 2, 8, false, true, true},
    {"vnni-gemm", 2, 8, false, true, false},
    {"vnni-depthwise", 2, 8, true, true, false},
    {"vnni-depthwise-direct", 2, 8, true, true, false},
};

/* vnni-depthwise-direct also needs AVX-512 VBMI, kernels at most 4 wide
 * and (kw - 1) * dil_w < 64. */
static bool cpu_has_vbmi(void) {
    return nnq_cpu_has_vnni() && __builtin_cpu_supports("avx512vbmi");
}
static bool dw_direct_fits(const simd_kernel *k, const conv_case *cc) {
    return strcmp(k->name, "vnni-depthwise-direct") != 0 ||
           (cpu_has_vbmi() && cc->kw <= 4 && (cc->kw - 1) * cc->dw < 64);
}

/* What vnni-direct accepts: groups of 1, a spatial kernel, strides 1 or 2,
 * and channel quads that do not more than double the GEMM's K quads. */
static bool direct_fits(const conv_case *cc) {
    const int64_t taps = cc->kh * cc->kw;
    return cc->groups == 1 && taps > 1 && (cc->sh == 1 || cc->sh == 2) &&
           (cc->sw == 1 || cc->sw == 2) &&
           (cc->in_ch + 3) / 4 * taps <= 2 * ((cc->in_ch * taps + 3) / 4);
}
#define N_SIMD (sizeof simd / sizeof simd[0])
static int simd_runs[N_SIMD]; /* per kernel, over the whole sweep */

/* Every kernel that fits (and that the CPU runs) equals the reference.
 * Returns how many ran. */
static int compare_kernels(const conv_case *cc, int *mismatches) {
    conv_data cd;
    conv_data_make(&cd, cc);
    uint8_t *ref = run_conv(&cd, ref_kernel(cc));
    int ran = 0;
    CHECK(ref != NULL);
    const bool vnni = nnq_cpu_has_vnni();
    for (size_t i = 0; ref && i < N_SIMD; i++) {
        const bool dw = cc->groups == cc->in_ch && cc->groups == cc->out_ch;
        if (cc->bits < simd[i].min_bits || cc->bits > simd[i].max_bits ||
            (simd[i].depthwise_only && !dw) || (simd[i].vnni && !vnni) ||
            (simd[i].direct_only && !direct_fits(cc)) || !dw_direct_fits(&simd[i], cc))
            continue;
        uint8_t *got = run_conv(&cd, simd[i].name);
        CHECK(got != NULL);
        if (got && memcmp(got, ref, conv_out_size(&cd)) != 0) {
            (*mismatches)++;
            fprintf(stderr,
                    "%s != ref: n%lld %lldx%lld %lld->%lld g%lld k%lldx%lld s%lldx%lld "
                    "d%lldx%lld p%lld,%lld,%lld,%lld zp %d/%d w%d extreme %d\n",
                    simd[i].name, (long long)cc->n, (long long)cc->h, (long long)cc->w,
                    (long long)cc->in_ch, (long long)cc->out_ch, (long long)cc->groups,
                    (long long)cc->kh, (long long)cc->kw, (long long)cc->sh, (long long)cc->sw,
                    (long long)cc->dh, (long long)cc->dw, (long long)cc->pt, (long long)cc->pl,
                    (long long)cc->pb, (long long)cc->pr, cc->x_zp, cc->y_zp, cc->bits,
                    cc->extreme);
        }
        ran += got != NULL;
        simd_runs[i] += got != NULL;
        free(got);
    }
    free(ref);
    conv_data_free(&cd);
    return ran;
}

static void test_simd_conv_sweep(void) {
    if (!nnq_cpu_has_avx2()) {
        fprintf(stderr, "note: CPU without AVX2/FMA: AVX2 and VNNI kernel checks skipped\n");
        return;
    }
    static const int64_t chans[] = {1, 3, 5, 17, 33};
    static const int bitss[] = {8, 4, 2, 7, 5};
    int runs = 0, mismatches = 0;
    /* Channel counts x kernel sizes x strides, zero points non-zero. */
    for (int ci = 0; ci < 5; ci++)
        for (int co = 0; co < 5; co++)
            for (int k = 1; k <= 5; k += 2) {
                const int64_t s = 1 + (ci + co + k) % 2, p = k / 2 + (co % 2);
                const int bits = bitss[(ci * 5 + co + k) % 5];
                conv_case cc = {1 + (co % 2), 6 + ci + k, 7 + co, chans[ci], chans[co], 1, k, k,
                                s, s, 1, 1, p, p, p / 2, p, (int32_t)rnd_range(1, 254),
                                (int32_t)rnd_range(0, 255), bits, 0, (ci + co) % 3 == 0, 0};
                runs += compare_kernels(&cc, &mismatches);
            }
    /* Groups, depthwise (also through the gemm kernels), dilation, odd pads. */
    const conv_case special[] = {
        {2, 9, 10, 6, 9, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 20, 30, 8, 0, 0, 0},
        {1, 9, 10, 6, 9, 3, 3, 3, 2, 1, 1, 2, 0, 2, 1, 0, 20, 30, 4, 0, 1, 0},
        {1, 8, 8, 4, 8, 4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 5, 250, 8, 0, 0, 0},
        {2, 17, 19, 17, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 128, 128, 8, 0, 0, 0},
        {2, 17, 19, 33, 33, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 9, 8, 0, 1, 0},
        {1, 16, 16, 5, 5, 5, 5, 5, 1, 1, 2, 2, 4, 4, 4, 4, 60, 0, 4, 0, 0, 0},
        {1, 15, 21, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 2, 0, 1, 200, 128, 2, 0, 0, 0},
        {1, 4, 4, 96, 96, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 128, 128, 8, 0, 0, 0},
        {1, 40, 37, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 77, 33, 8, 0, 0, 0},
        /* extreme values: would saturate a 16-bit vpmaddubsw path */
        {1, 6, 6, 33, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 8, 1, 0, 0},
        {1, 6, 6, 33, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 255, 255, 8, 2, 0, 0},
        {1, 6, 6, 33, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 128, 7, 1, 0, 0},
        {1, 6, 6, 33, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 250, 128, 4, 2, 0, 0},
        {1, 6, 6, 33, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 250, 128, 2, 1, 0, 0},
        {1, 6, 6, 17, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 128, 8, 1, 0, 0},
        {1, 6, 6, 17, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 128, 8, 3, 0, 0},
        /* ties everywhere */
        {1, 7, 9, 5, 7, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 90, 128, 8, 0, 0, 1},
        {1, 7, 9, 5, 7, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 90, 128, 4, 0, 0, 1},
        /* large enough for both threads, pixel blocks and channel chunks */
        {2, 16, 16, 64, 160, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 7, 120, 8, 0, 0, 0},
        {1, 4, 4, 160, 1280, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 7, 120, 4, 0, 1, 0},
        {1, 32, 32, 32, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 140, 60, 8, 0, 0, 0},
        {1, 16, 16, 64, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 140, 60, 4, 0, 0, 0},
        {2, 32, 32, 96, 96, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 100, 0, 8, 0, 1, 0},
        {2, 32, 32, 48, 48, 48, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 100, 0, 4, 0, 0, 0},
        /* vnni-direct: rows of 32 and 16 (one-row tiles), 8 and 4 (tiles of
         * 2 and 4 rows), odd widths (also the virtual grid, in the sweep
         * above); stride 2 with odd pads, 1x3 / 3x1, dilation, 2..4 input
         * channels (padded quads); batch 1 on two threads splits rows
         * (32x32, 16x16), or channels (8x8, 4x4) */
        {2, 32, 32, 16, 32, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 17, 128, 8, 0, 0, 0},
        {1, 8, 8, 64, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 140, 60, 8, 0, 1, 0},
        {3, 4, 4, 64, 40, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 40, 90, 5, 0, 0, 0},
        {1, 33, 35, 6, 11, 1, 3, 3, 2, 2, 1, 1, 0, 1, 2, 0, 200, 7, 8, 0, 0, 0},
        {2, 13, 29, 7, 9, 1, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 60, 128, 4, 0, 0, 0},
        {2, 29, 13, 7, 9, 1, 3, 1, 2, 1, 1, 1, 1, 0, 1, 0, 60, 128, 3, 0, 0, 0},
        {1, 20, 19, 5, 12, 1, 3, 3, 1, 2, 2, 3, 2, 3, 2, 3, 99, 20, 8, 0, 0, 0},
        {1, 21, 18, 9, 8, 1, 5, 5, 2, 1, 2, 1, 4, 2, 3, 2, 250, 250, 6, 0, 0, 0},
        {2, 12, 12, 2, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 128, 8, 0, 0, 0},
        {2, 12, 12, 4, 17, 1, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1, 254, 128, 8, 0, 0, 0},
        {1, 12, 12, 4, 17, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 255, 128, 8, 2, 0, 0},
        /* ... tall and narrow: the copy takes 32 / W input rows at once */
        {2, 12, 4, 8, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 31, 128, 8, 0, 0, 0},
        {1, 40, 2, 5, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 222, 128, 4, 0, 0, 0},
        {1, 37, 1, 6, 8, 1, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0, 9, 128, 8, 0, 0, 0},
        /* vnni-depthwise, small planes in registers (stride 1, same size,
         * 16/32/64-byte planes, several images per vector, a partial last
         * vector), including taps that are never inside the plane */
        {5, 4, 4, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 45, 200, 8, 0, 1, 0},
        {3, 8, 8, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 250, 3, 4, 0, 0, 0},
        {3, 4, 8, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 128, 7, 0, 0, 0},
        {2, 8, 4, 3, 3, 3, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 128, 90, 2, 0, 0, 0},
        {6, 4, 4, 3, 3, 3, 9, 9, 1, 1, 1, 1, 4, 4, 4, 4, 77, 77, 5, 0, 0, 0},
        {2, 4, 4, 5, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 30, 128, 8, 0, 0, 0},
        {4, 8, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0, 60, 10, 8, 0, 0, 0},
        {5, 4, 4, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 128, 8, 1, 0, 0},
        {5, 4, 4, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 255, 128, 8, 2, 0, 0},
        {3, 8, 8, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 90, 128, 4, 0, 0, 1},
        /* ... batch below the planes per vector: consecutive planes, one
         * channel per 128-bit lane, across images, a partial last vector */
        {3, 4, 4, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 12, 140, 8, 0, 1, 0},
        {1, 4, 8, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 200, 20, 4, 0, 0, 0},
        {1, 4, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 128, 8, 0, 0, 1},
        /* ... with enough work for both threads, both ways */
        {32, 8, 8, 96, 96, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 70, 120, 8, 0, 0, 0},
        {1, 4, 4, 8200, 8200, 8200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 130, 7, 4, 0, 0, 0},
        /* vnni-depthwise, several images per work item and several items
         * per channel (the last one partial), stride 1 and 2 */
        {7, 64, 64, 2, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 33, 66, 8, 0, 0, 0},
        {3, 100, 90, 2, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 200, 5, 4, 0, 1, 0},
        {9, 6, 6, 3, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 40, 50, 8, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        runs += compare_kernels(&special[i], &mismatches);
    fprintf(stderr, "simd conv sweep: %d kernel runs compared\n", runs);
    CHECK(runs > 100);
    CHECK(mismatches == 0);
    /* Every kernel the CPU runs took part, on a good share of the cases. */
    for (size_t i = 0; i < N_SIMD; i++) {
        fprintf(stderr, "  %-18s %d runs\n", simd[i].name, simd_runs[i]);
        if ((simd[i].vnni && !nnq_cpu_has_vnni()) ||
            (strcmp(simd[i].name, "vnni-depthwise-direct") == 0 && !cpu_has_vbmi()))
            CHECK(simd_runs[i] == 0);
        else CHECK(simd_runs[i] >= 20);
    }
    if (!nnq_cpu_has_vnni())
        fprintf(stderr, "note: CPU without AVX-512 VNNI: vnni kernel checks skipped\n");
}

/* vnni-depthwise-direct against the reference over the shapes its paths
 * split on: widths 1..40 (rows of whole units, R = 16 / ow; column chunks,
 * the last one moved back; fewer than 16 lanes, masked stores), strides 1
 * and 2, every pad combination 0..2, kernels 1..4 wide (and 5 rows),
 * dilation, 2..8-bit weights, batches whose units end in short groups, the
 * permute-free path (stride 1, same size, rows dividing 64: 16x16, 32x32,
 * 64x64, 8x8), and layers big enough for both threads, split by channel or
 * by runs of images. */
static void test_depthwise_direct(void) {
    if (!cpu_has_vbmi()) {
        fprintf(stderr, "note: CPU without AVX-512 VNNI + VBMI: vnni-depthwise-direct skipped\n");
        return;
    }
    static const int64_t kernels[][4] = {/* kh, kw, dh, dw */
                                         {3, 3, 1, 1}, {1, 1, 1, 1}, {2, 2, 1, 1}, {3, 1, 1, 1},
                                         {1, 3, 1, 1}, {4, 4, 1, 1}, {3, 3, 2, 2}, {5, 3, 1, 1},
                                         {3, 2, 1, 3}, {3, 3, 1, 1}};
    static const int64_t chans[] = {1, 3, 5, 7, 17};
    int runs = 0, mismatches = 0;
    conv_case cases[600];
    int nc = 0;
    for (int64_t w = 1; w <= 40; w++)
        for (int rep = 0; rep < 3; rep++) {
            const int64_t *k = kernels[rnd_range(0, 9)];
            const int64_t s = rnd_range(1, 2), ch = chans[rnd_range(0, 4)];
            const int64_t pt = rnd_range(0, 2), pl = rnd_range(0, 2), pb = rnd_range(0, 2),
                          pr = rnd_range(0, 2);
            const int64_t eh = k[2] * (k[0] - 1) + 1, ew = k[3] * (k[1] - 1) + 1;
            if (w + pl + pr < ew) continue;
            int64_t h = rnd_range(1, 40);
            if (h + pt + pb < eh) h = eh;
            cases[nc++] = (conv_case){rnd_range(1, 3), h, w, ch, ch, ch, k[0], k[1], s, s, k[2],
                                      k[3], pt, pl, pb, pr, (int32_t)rnd_range(1, 254),
                                      (int32_t)rnd_range(0, 255), (int)rnd_range(2, 8), 0,
                                      (int)rnd_range(0, 1), 0};
        }
    /* every pad combination, stride 1 and 2, on 32x32 (same size: the
     * permute-free path) and 13x9 */
    for (int p = 0; p < 81; p++)
        for (int64_t s = 1; s <= 2; s++)
            for (int64_t big = 0; big <= 1; big++)
                cases[nc++] = (conv_case){1 + p % 3, big ? 32 : 13, big ? 32 : 9, 3, 3, 3, 3, 3,
                                          s, s, 1, 1, p % 3, p / 3 % 3, p / 9 % 3, p / 27 % 3,
                                          (int32_t)rnd_range(1, 254), 128, 2 + p % 7, 0, 0, 0};
    const conv_case special[] = {
        /* permute-free path: 16x16, 64x64, 8x8, 4-wide and 1-wide kernels */
        {2, 16, 16, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 33, 66, 8, 0, 1, 0},
        {1, 64, 64, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 200, 5, 4, 0, 0, 0},
        {3, 8, 8, 7, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 128, 8, 0, 0, 0},
        {1, 16, 32, 5, 5, 5, 4, 4, 1, 1, 1, 1, 2, 1, 1, 2, 77, 33, 5, 0, 0, 0},
        {1, 32, 16, 5, 5, 5, 5, 1, 1, 1, 2, 1, 4, 0, 4, 0, 77, 33, 3, 0, 0, 0},
        /* ... planes of more than 64 steps (masks computed per load) */
        {1, 160, 32, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 19, 200, 8, 0, 0, 0},
        {2, 72, 64, 2, 2, 2, 3, 3, 1, 1, 1, 1, 2, 0, 0, 2, 240, 10, 6, 0, 1, 0},
        /* extremes and ties */
        {2, 16, 16, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 128, 8, 1, 0, 0},
        {2, 16, 16, 5, 5, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 255, 128, 8, 2, 0, 0},
        {2, 7, 9, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 128, 8, 3, 0, 0},
        {1, 32, 32, 5, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 90, 128, 8, 0, 0, 1},
        /* both threads: by channel; by runs of images (3 channels) */
        {2, 32, 32, 96, 96, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 100, 0, 8, 0, 1, 0},
        {4, 32, 32, 48, 48, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 100, 0, 4, 0, 0, 0},
        {64, 32, 32, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 7, 120, 8, 0, 0, 0},
        {96, 16, 16, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 7, 120, 6, 0, 0, 0},
        {64, 8, 8, 33, 33, 33, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 70, 120, 8, 0, 0, 0},
        {1, 4, 4, 8200, 8200, 8200, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 130, 7, 4, 0, 0, 0},
        /* ... stride 2: by channel, by runs of images, and units of 4
         * channels (a 4x4 output at batch 1) */
        {8, 32, 32, 96, 96, 96, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 100, 0, 8, 0, 1, 0},
        {96, 44, 44, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 7, 120, 5, 0, 0, 0},
        {1, 8, 8, 8200, 8200, 8200, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 130, 7, 8, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) cases[nc++] = special[i];
    for (int i = 0; i < nc; i++) {
        conv_data cd;
        conv_data_make(&cd, &cases[i]);
        uint8_t *ref = run_conv(&cd, "ref-depthwise");
        uint8_t *got = run_conv(&cd, "vnni-depthwise-direct");
        CHECK(ref != NULL && got != NULL);
        if (ref && got) {
            runs++;
            if (memcmp(ref, got, conv_out_size(&cd)) != 0) {
                const conv_case *cc = &cases[i];
                mismatches++;
                fprintf(stderr,
                        "vnni-depthwise-direct != ref: n%lld %lldx%lld c%lld k%lldx%lld s%lld "
                        "d%lldx%lld p%lld,%lld,%lld,%lld w%d\n",
                        (long long)cc->n, (long long)cc->h, (long long)cc->w,
                        (long long)cc->in_ch, (long long)cc->kh, (long long)cc->kw,
                        (long long)cc->sh, (long long)cc->dh, (long long)cc->dw,
                        (long long)cc->pt, (long long)cc->pl, (long long)cc->pb,
                        (long long)cc->pr, cc->bits);
            }
        }
        free(ref);
        free(got);
        conv_data_free(&cd);
    }
    fprintf(stderr, "vnni-depthwise-direct: %d cases compared\n", runs);
    CHECK(runs > 400);
    CHECK(mismatches == 0);
}

/* ---- fully connected ---- */

static void test_fc(void) {
    static const int64_t edges[] = {1, 7, 15, 16, 17, 31, 33, 64, 100};
    static const int bitss[] = {8, 4, 2, 7};
    const bool avx2 = nnq_cpu_has_avx2(), vnni = nnq_cpu_has_vnni();
    int runs = 0, bad_ref = 0, bad_acc = 0, bad_avx2 = 0, bad_vnni = 0, vnni_runs = 0;
    for (int ik = 0; ik < 9; ik++)
        for (int im = 0; im < 9; im++)
            for (int in = 0; in < 9; in += 2) {
                const int64_t k = edges[ik], m = edges[im], n = edges[in];
                const int bits = bitss[(ik + im + in) % 4];
                const int extreme = (ik * 9 + im + in) % 7 == 0 ? 1 + (ik + im) % 2 : 0;
                const int32_t wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
                int8_t *w = malloc((size_t)(m * k));
                uint8_t *x = malloc((size_t)(n * k));
                int32_t *bias = malloc(sizeof(int32_t) * (size_t)m);
                int32_t *mult = malloc(sizeof(int32_t) * (size_t)m);
                int32_t *shift = malloc(sizeof(int32_t) * (size_t)m);
                for (int64_t i = 0; i < m * k; i++)
                    w[i] = (int8_t)(extreme == 1 ? wmin : extreme == 2 ? wmax : rnd_range(wmin, wmax));
                for (int64_t i = 0; i < n * k; i++) x[i] = (uint8_t)(extreme ? 255 : rnd_range(0, 255));
                for (int64_t o = 0; o < m; o++) {
                    bias[o] = (int32_t)rnd_range(-20000, 20000);
                    pick_requant(k, bits, &mult[o], &shift[o]);
                }
                const nnq_qfc_desc d = {.name = "test_fc", .k = k, .m = m,
                                        .x_zp = (int32_t)rnd_range(0, 255),
                                        .y_zp = (int32_t)rnd_range(0, 255), .w_bits = bits,
                                        .weight = w, .bias = bias, .mult = mult, .shift = shift,
                                        .lo = 2, .hi = 253};
                /* textbook */
                uint8_t *want = malloc((size_t)(n * m));
                int32_t *want_acc = malloc(sizeof(int32_t) * (size_t)(n * m));
                for (int64_t i = 0; i < n; i++)
                    for (int64_t o = 0; o < m; o++) {
                        int64_t a = bias[o];
                        for (int64_t j = 0; j < k; j++)
                            a += ((int64_t)x[i * k + j] - d.x_zp) * w[o * k + j];
                        want_acc[i * m + o] = (int32_t)a;
                        want[i * m + o] = textbook_out(a, mult[o], shift[o], d.y_zp, d.lo, d.hi);
                    }
                const char *names[3] = {"ref-fc", "avx2-fc", "vnni-fc"};
                for (int kk = 0; kk < 3; kk++) {
                    if ((kk == 1 && !avx2) || (kk == 2 && !vnni)) continue;
                    nnq_qfc *f = NULL;
                    CHECK_OK(nnq_qfc_create_kernel(&d, names[kk], &f));
                    if (!f) continue;
                    uint8_t *y = malloc((size_t)(n * m));
                    int32_t *acc = malloc(sizeof(int32_t) * (size_t)(n * m));
                    nnq_qfc_run(f, n, x, y);
                    nnq_qfc_run_acc(f, n, x, acc);
                    const bool ok = memcmp(y, want, (size_t)(n * m)) == 0;
                    if (kk == 0) bad_ref += !ok;
                    else if (kk == 1) bad_avx2 += !ok;
                    else bad_vnni += !ok, vnni_runs++;
                    if (!ok)
                        fprintf(stderr, "%s differs: k %lld m %lld n %lld w%d\n", names[kk],
                                (long long)k, (long long)m, (long long)n, bits);
                    bad_acc += memcmp(acc, want_acc, sizeof(int32_t) * (size_t)(n * m)) != 0;
                    runs++;
                    free(y);
                    free(acc);
                    nnq_qfc_destroy(f);
                }
                free(want);
                free(want_acc);
                free(w);
                free(x);
                free(bias);
                free(mult);
                free(shift);
            }
    if (!avx2) fprintf(stderr, "note: CPU without AVX2/FMA: avx2-fc checks skipped\n");
    if (!vnni) fprintf(stderr, "note: CPU without AVX-512 VNNI: vnni-fc checks skipped\n");
    CHECK(runs >= 405);
    CHECK(vnni_runs == (vnni ? 405 : 0));
    CHECK(bad_ref == 0);
    CHECK(bad_avx2 == 0);
    CHECK(bad_vnni == 0);
    CHECK(bad_acc == 0);
}

/* ---- checks, selection, storage ---- */

static void test_descriptor_checks(void) {
    conv_case cc = {1, 6, 6, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 10, 10, 4, 0, 0, 0};
    conv_data cd;
    conv_data_make(&cd, &cc);
    nnq_qconv *op = NULL;
    nnq_qconv_desc d = cd.d;
    cd.w[5] = 8; /* outside the 4-bit grid */
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "test_conv") != NULL);
    cd.w[5] = 7;
    d.x_zp = 256;
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_INVALID);
    d = cd.d;
    d.groups = 3;
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_INVALID);
    d = cd.d;
    d.w_bits = 9;
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_UNSUPPORTED);
    d = cd.d;
    cd.shift[2] = 0;
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_INVALID);
    cd.shift[2] = 20;
    d.lo = 100;
    d.hi = 99;
    CHECK_STATUS(nnq_qconv_create(&d, &op), NNQ_ERR_INVALID);
    d = cd.d;
    CHECK_STATUS(nnq_qconv_create_kernel(&d, "no-such-kernel", &op), NNQ_ERR_INVALID);
    CHECK_STATUS(nnq_qconv_create_kernel(&d, "ref-depthwise", &op), NNQ_ERR_UNSUPPORTED);
    CHECK(op == NULL);
    /* reshape: an input smaller than the dilated kernel */
    d.pad_t = d.pad_b = d.pad_l = d.pad_r = 0;
    CHECK_OK(nnq_qconv_create(&d, &op));
    int64_t oh, ow;
    size_t sb;
    CHECK_STATUS(nnq_qconv_reshape(op, 1, 2, 9, &oh, &ow, &sb), NNQ_ERR_SHAPE);
    CHECK_OK(nnq_qconv_reshape(op, 1, 3, 9, &oh, &ow, &sb));
    CHECK(oh == 1 && ow == 7);
    nnq_qconv_destroy(op);
    conv_data_free(&cd);
    /* An accumulator that could leave int32: 66000 taps of -128 * 255. */
    const int64_t k = 66000;
    int8_t *w = malloc((size_t)k);
    memset(w, 0x80, (size_t)k);
    int32_t mult = 1 << 30, shift = 40;
    nnq_qconv_desc big = {.in_ch = k, .out_ch = 1, .groups = 1, .kh = 1, .kw = 1,
                          .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1, .w_bits = 8,
                          .weight = w, .mult = &mult, .shift = &shift, .hi = 255};
    CHECK_STATUS(nnq_qconv_create(&big, &op), NNQ_ERR_LIMIT);
    free(w);
}

static void test_selection_and_storage(void) {
    conv_case dwc = {1, 8, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 10, 10, 8, 0, 0, 0};
    conv_case g4 = {1, 8, 8, 8, 7, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 10, 10, 4, 0, 0, 0};
    conv_case g8 = g4;
    g8.bits = 8;
    conv_data a, b, e;
    conv_data_make(&a, &dwc);
    conv_data_make(&b, &g4);
    conv_data_make(&e, &g8);
    nnq_qconv *op = NULL;
    const char *old = getenv("NNQ_KERNELS");
    setenv("NNQ_KERNELS", "ref", 1);
    CHECK_OK(nnq_qconv_create(&a.d, &op));
    if (op) CHECK(strcmp(nnq_qconv_kernel_name(op), "ref-depthwise") == 0);
    nnq_qconv_destroy(op);
    /* Row storage: int8, or nibbles (half, rows rounded to bytes). */
    CHECK_OK(nnq_qconv_create(&b.d, &op));
    if (op) {
        CHECK(strcmp(nnq_qconv_kernel_name(op), "ref-conv") == 0);
        CHECK(nnq_qconv_weight_bytes(op) == 7 * ((72 + 1) / 2));
    }
    nnq_qconv_destroy(op);
    CHECK_OK(nnq_qconv_create(&e.d, &op));
    if (op) CHECK(nnq_qconv_weight_bytes(op) == 7 * 72);
    nnq_qconv_destroy(op);
    setenv("NNQ_KERNELS", "bogus", 1);
    CHECK_STATUS(nnq_qconv_create(&a.d, &op), NNQ_ERR_INVALID);
    if (nnq_cpu_has_avx2()) {
        setenv("NNQ_KERNELS", "avx2", 1);
        CHECK_OK(nnq_qconv_create(&a.d, &op));
        if (op) CHECK(strcmp(nnq_qconv_kernel_name(op), "avx2-depthwise") == 0);
        nnq_qconv_destroy(op);
        CHECK_OK(nnq_qconv_create(&b.d, &op));
        if (op) {
            CHECK(strcmp(nnq_qconv_kernel_name(op), "avx2-gemm-maddubs") == 0);
            /* 7 channels x 72 taps as nibbles, padded to whole channel blocks */
            CHECK(nnq_qconv_weight_bytes(op) >= 7 * 72 / 2);
            CHECK(nnq_qconv_weight_bytes(op) <= 12 * 72 / 2);
        }
        nnq_qconv_destroy(op);
        CHECK_OK(nnq_qconv_create(&e.d, &op));
        if (op) CHECK(strcmp(nnq_qconv_kernel_name(op), "avx2-gemm-madd16") == 0);
        nnq_qconv_destroy(op);
    } else {
        fprintf(stderr, "note: CPU without AVX2/FMA: AVX2 selection checks skipped\n");
    }
    /* vnni: the VNNI kernels, AVX2 where VNNI has none; the default on a
     * VNNI CPU; an error elsewhere. */
    setenv("NNQ_KERNELS", "vnni", 1);
    if (nnq_cpu_has_vnni()) {
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) unsetenv("NNQ_KERNELS");
            CHECK_OK(nnq_qconv_create(&a.d, &op));
            if (op) /* VBMI: the direct depthwise kernel; a 5x5 one is too wide for it */
                CHECK(strcmp(nnq_qconv_kernel_name(op),
                             cpu_has_vbmi() ? "vnni-depthwise-direct" : "vnni-depthwise") == 0);
            nnq_qconv_destroy(op);
            conv_case dw5c = dwc;
            dw5c.kh = dw5c.kw = 5;
            conv_data dw5;
            conv_data_make(&dw5, &dw5c);
            CHECK_OK(nnq_qconv_create(&dw5.d, &op));
            if (op) CHECK(strcmp(nnq_qconv_kernel_name(op), "vnni-depthwise") == 0);
            nnq_qconv_destroy(op);
            conv_data_free(&dw5);
            CHECK_OK(nnq_qconv_create(&b.d, &op));
            if (op) {
                CHECK(strcmp(nnq_qconv_kernel_name(op), "vnni-direct") == 0);
                /* nibbles unpacked to int8 quads: 8-channel blocks x 72 taps */
                CHECK(nnq_qconv_weight_bytes(op) == 8 * 72);
            }
            nnq_qconv_destroy(op);
            CHECK_OK(nnq_qconv_create(&e.d, &op));
            if (op) CHECK(strcmp(nnq_qconv_kernel_name(op), "vnni-direct") == 0);
            nnq_qconv_destroy(op);
        }
    } else {
        CHECK_STATUS(nnq_qconv_create(&a.d, &op), NNQ_ERR_UNSUPPORTED);
        CHECK_STATUS(nnq_qconv_create_kernel(&a.d, "vnni-depthwise", &op), NNQ_ERR_UNSUPPORTED);
        fprintf(stderr, "note: CPU without AVX-512 VNNI: VNNI selection checks skipped\n");
    }
    if (old) setenv("NNQ_KERNELS", old, 1);
    else unsetenv("NNQ_KERNELS");
    conv_data_free(&a);
    conv_data_free(&b);
    conv_data_free(&e);
}

int main(void) {
    /* Thread every layer, however small, so the "both threads" cases below
     * split their work. */
    nnq_qkernels_set_parallel_min(0);
    test_requant_exact();
    test_requant_bounds();
    test_reference_conv();
    test_simd_conv_sweep();
    test_depthwise_direct();
    test_fc();
    test_descriptor_checks();
    test_selection_and_storage();
    return check_finish("test_engine_kernels");
}
