/* Integer kernel micro-benchmark: the engine's convolutions on the
 * largest layers of the built-in models at 32x32 input, reference vs AVX2 vs
 * AVX-512 VNNI (NNQ_KERNELS for each), 8-bit and 4-bit weights, one thread.
 *
 *   qkernel_bench [--batch N] [--seconds S] [--layer SUBSTRING] [--only ref|avx2|vnni]
 *                 [--bits B]
 *
 * Prints, per layer and kernel, the best time of one run (timed with the
 * TSC, calibrated against CLOCK_MONOTONIC) and the achieved multiply-
 * accumulates per cycle: per core cycle, with the core's clock measured by
 * a chain of dependent adds (boost included; a VM shows no "cpu MHz" and no
 * cycle counters), and per TSC cycle (the nominal frequency). For reference,
 * the AVX2 peak is 32 MACs/cycle with vpmaddwd (2 per cycle x 16) and 64
 * with vpmaddubsw (2 per cycle x 32), before the adds that widen and
 * accumulate; VNNI's vpdpbusd also peaks at 64 on Zen 4 (one zmm or two ymm
 * per cycle, 4 MACs per int32 lane) with the accumulation included. */
#define _POSIX_C_SOURCE 200809L

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "core/requant.h"
#include "engine/cpu.h"
#include "engine/qkernels.h"

typedef struct layer {
    const char *name;
    int64_t in_ch, out_ch, groups, k, stride, hw;
} layer;

/* From src/models/mobilenetv2.c and resnet.c at 1x32x32 input: the largest
 * 1x1 convs by MACs, ResNet-20's 3x3 convs (all 2.36M MACs), and depthwise
 * convs of each plane size (32x32, stride 2, 8x8, 4x4). */
static const layer layers[] = {
    {"mbv2 features.18 1x1 160->1280 @4x4", 160, 1280, 1, 1, 1, 4},
    {"mbv2 block3 expand 1x1 16->96 @32x32", 16, 96, 1, 1, 1, 32},
    {"mbv2 block3 project 1x1 96->16 @32x32", 96, 16, 1, 1, 1, 32},
    {"resnet20 layer1 3x3 16->16 @32x32", 16, 16, 1, 3, 1, 32},
    {"resnet20 layer2 3x3 32->32 @16x16", 32, 32, 1, 3, 1, 16},
    {"resnet20 layer3 3x3 64->64 @8x8", 64, 64, 1, 3, 1, 8},
    {"mbv2 block3 depthwise 3x3 96 @32x32", 96, 96, 96, 3, 1, 32},
    {"mbv2 depthwise 3x3 s2 144 @16x16", 144, 144, 144, 3, 2, 16},
    {"mbv2 depthwise 3x3 192 @8x8", 192, 192, 192, 3, 1, 8},
    {"mbv2 depthwise 3x3 480 @4x4", 480, 480, 480, 3, 1, 4},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double tsc_hz(void) {
    const double t0 = now_s();
    const uint64_t c0 = __rdtsc();
    while (now_s() - t0 < 0.2) {
    }
    const uint64_t c1 = __rdtsc();
    return (double)(c1 - c0) / (now_s() - t0);
}

/* The core's actual clock: a chain of dependent adds retires one per
 * cycle; best of several short runs (the machine may be shared). */
static double core_hz(void) {
    double best = 0;
    for (int rep = 0; rep < 20; rep++) {
        uint64_t v = 0;
        const double t0 = now_s();
        for (int i = 0; i < 1000000; i++)
            __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                             "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                             : "+r"(v));
        const double hz = 8e6 / (now_s() - t0);
        if (hz > best) best = hz;
    }
    return best;
}

static uint32_t rng = 12345;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Best cycles of one run over `seconds`; 0 on failure. */
static double bench_one(const layer *l, int bits, const char *isa, int64_t batch, double seconds,
                        const char **kernel) {
    const int64_t cg = l->in_ch / l->groups, K = cg * l->k * l->k;
    const int32_t wmax = (1 << (bits - 1)) - 1;
    int8_t *w = malloc((size_t)(l->out_ch * K));
    int32_t *bias = malloc(sizeof(int32_t) * (size_t)l->out_ch);
    int32_t *mult = malloc(sizeof(int32_t) * (size_t)l->out_ch);
    int32_t *shift = malloc(sizeof(int32_t) * (size_t)l->out_ch);
    for (int64_t i = 0; i < l->out_ch * K; i++)
        w[i] = (int8_t)((int32_t)(next() % (uint32_t)(2 * wmax + 1)) - wmax);
    for (int64_t o = 0; o < l->out_ch; o++) {
        bias[o] = (int32_t)(next() % 2001) - 1000;
        nnq_requant_make(0.002 / (double)wmax, &mult[o], &shift[o]);
    }
    const nnq_qconv_desc d = {.name = l->name, .in_ch = l->in_ch, .out_ch = l->out_ch,
                              .groups = l->groups, .kh = l->k, .kw = l->k,
                              .stride_h = l->stride, .stride_w = l->stride, .dil_h = 1,
                              .dil_w = 1, .pad_t = l->k / 2, .pad_l = l->k / 2,
                              .pad_b = l->k / 2, .pad_r = l->k / 2, .x_zp = 17, .y_zp = 128,
                              .w_bits = bits, .weight = w, .bias = bias, .mult = mult,
                              .shift = shift, .lo = 0, .hi = 255};
    setenv("NNQ_KERNELS", isa, 1);
    nnq_qconv *op = NULL;
    double best = 0;
    uint8_t *x = NULL, *y = NULL;
    void *scratch = NULL;
    if (nnq_qconv_create(&d, &op) != NNQ_OK) {
        fprintf(stderr, "qkernel_bench: %s\n", nnq_last_error());
        goto done;
    }
    *kernel = nnq_qconv_kernel_name(op);
    int64_t oh, ow;
    size_t sb;
    if (nnq_qconv_reshape(op, batch, l->hw, l->hw, &oh, &ow, &sb) != NNQ_OK) {
        fprintf(stderr, "qkernel_bench: %s\n", nnq_last_error());
        goto done;
    }
    const size_t nx = (size_t)(batch * l->in_ch * l->hw * l->hw);
    x = malloc(nx);
    y = malloc((size_t)(batch * l->out_ch * oh * ow));
    scratch = sb ? malloc(sb) : NULL;
    for (size_t i = 0; i < nx; i++) x[i] = (uint8_t)next();
    nnq_qconv_run(op, x, y, scratch); /* warm up */
    const double t0 = now_s();
    while (now_s() - t0 < seconds) {
        const uint64_t c0 = __rdtsc();
        nnq_qconv_run(op, x, y, scratch);
        const double c = (double)(__rdtsc() - c0);
        if (best == 0 || c < best) best = c;
    }
done:
    nnq_qconv_destroy(op);
    free(x);
    free(y);
    free(scratch);
    free(w);
    free(bias);
    free(mult);
    free(shift);
    return best;
}

int main(int argc, char **argv) {
    int64_t batch = 1;
    double seconds = 0.5;
    const char *only_layer = NULL, *only_isa = NULL;
    int only_bits = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--layer") == 0 && i + 1 < argc) only_layer = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only_isa = argv[++i];
        else if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc) only_bits = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: qkernel_bench [--batch N] [--seconds S] [--layer SUBSTRING] "
                            "[--only ref|avx2|vnni] [--bits 8|4]\n");
            return 2;
        }
    }
    if (batch < 1) batch = 1;
    omp_set_num_threads(1);
    const double hz = tsc_hz(), core = core_hz();
    printf("TSC %.3f GHz, core clock %.3f GHz (dependent adds), 1 thread, batch %lld, "
           "best of %.1f s per row\n",
           hz * 1e-9, core * 1e-9, (long long)batch, seconds);
    printf("%-40s %-5s %-18s %8s %9s %8s %8s\n", "layer", "wbits", "kernel", "MMACs", "us",
           "MAC/cyc", "MAC/tsc");
    const char *isas[3] = {"ref", "avx2", "vnni"};
    const int n_isa = nnq_cpu_has_vnni() ? 3 : nnq_cpu_has_avx2() ? 2 : 1;
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const layer *l = &layers[li];
        if (only_layer && !strstr(l->name, only_layer)) continue;
        const double macs = (double)batch * (double)l->out_ch * (double)(l->hw * l->hw) *
                            (double)(l->in_ch / l->groups * l->k * l->k) /
                            (double)(l->stride * l->stride);
        for (int bits = 8; bits >= 4; bits -= 4)
            for (int a = 0; a < n_isa; a++) {
                if ((only_isa && strcmp(only_isa, isas[a]) != 0) || (only_bits && only_bits != bits))
                    continue;
                const char *kernel = "?";
                const double cyc = bench_one(l, bits, isas[a], batch, seconds, &kernel);
                if (cyc <= 0) return 1;
                const double sec = cyc / hz;
                printf("%-40s %-5d %-18s %8.2f %9.1f %8.2f %8.2f\n", l->name, bits, kernel,
                       macs * 1e-6, sec * 1e6, macs / (sec * core), macs / cyc);
            }
    }
    return 0;
}
