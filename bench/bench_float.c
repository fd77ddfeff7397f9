/* Float-inference benchmark, nnq side (bench/run.sh runs it beside
 * bench/ort_bench.js, which times ONNX Runtime the same way).
 *
 *   bench_float --model M.onnx --batch B --threads T [--seconds S]
 *               [--warmup S] [--seed N] [--dump PREFIX]
 *
 * Loads and prepares the model, creates an executor with T threads, runs
 * it until `--warmup` seconds have passed, then times repeated runs of one
 * batch of B fixed-seed random images for `--seconds` seconds. Prints one
 * JSON line: images/s over the whole timed span and the p50/p99 latency of
 * a single run. With --dump, the input batch and the logits of its first
 * run are written as raw little-endian float32 to PREFIX.input.f32 and
 * PREFIX.logits.f32, so ort_bench.js can check that both engines agree on
 * the same bytes. The input generator (xorshift32) is mirrored in
 * ort_bench.js so both engines also time the same data. */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/tensor.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

typedef struct bench_opts {
    const char *model;
    const char *dump;
    int batch, threads;
    double seconds, warmup;
    uint32_t seed;
} bench_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Uniform in [-1, 2): roughly the range of normalised Fashion-MNIST pixels.
 * Must stay identical to fill_input() in ort_bench.js. */
static void fill_input(float *x, int64_t n, uint32_t seed) {
    uint32_t s = seed ? seed : 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        x[i] = (float)(s >> 8) * (3.0f / 16777216.0f) - 1.0f;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, size_t n, double p) {
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

static int write_f32(const char *prefix, const char *suffix, const nnq_tensor *t) {
    char path[4096];
    snprintf(path, sizeof path, "%s.%s.f32", prefix, suffix);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "bench_float: cannot write %s\n", path);
        return -1;
    }
    size_t n = (size_t)nnq_tensor_numel(t);
    size_t wrote = fwrite(t->data, sizeof(float), n, f);
    if (fclose(f) != 0 || wrote != n) {
        fprintf(stderr, "bench_float: short write to %s\n", path);
        return -1;
    }
    return 0;
}

static const char *model_name(const char *path, char *buf, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, cap, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && strcmp(dot, ".onnx") == 0) *dot = '\0';
    return buf;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.batch = 1, .threads = 1, .seconds = 2.5, .warmup = 0.5, .seed = 1234};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--dump") == 0) o->dump = v;
        else if (strcmp(a, "--batch") == 0) o->batch = atoi(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--seconds") == 0) o->seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0) o->warmup = atof(v);
        else if (strcmp(a, "--seed") == 0) o->seed = (uint32_t)strtoul(v, NULL, 10);
        else goto usage;
        i++;
    }
    if (!o->model || o->batch < 1 || o->threads < 1 || o->seconds < 0 || o->warmup < 0)
        goto usage;
    return 0;
usage:
    fprintf(stderr, "usage: bench_float --model M.onnx --batch B --threads T [--seconds S]"
                    " [--warmup S] [--seed N] [--dump PREFIX]\n");
    return -1;
}

int main(int argc, char **argv) {
    bench_opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;

    int rc = 1;
    nnq_graph *g = NULL;
    nnq_exec *e = NULL;
    nnq_tensor x = {0};
    double *lat = NULL;
    size_t n_lat = 0, cap_lat = 0;
    nnq_status s;
    char name[256];

    if ((s = nnq_onnx_load(o.model, &g)) != NNQ_OK) goto nnq_error;
    if ((s = nnq_graph_prepare(g)) != NNQ_OK) goto nnq_error;
    if (g->n_inputs != 1 || g->n_outputs < 1) {
        fprintf(stderr, "bench_float: %s: expected one input, got %d\n", o.model, g->n_inputs);
        goto done;
    }
    /* The declared input shape with its symbolic (batch) dims set to B. */
    const nnq_tensor *decl = &g->values[g->inputs[0]].t;
    int64_t dims[NNQ_MAX_RANK];
    for (int k = 0; k < decl->rank; k++) dims[k] = decl->dims[k] < 0 ? o.batch : decl->dims[k];
    if (decl->rank >= 1) dims[0] = o.batch;
    if ((s = nnq_tensor_alloc(&x, NNQ_DT_FLOAT, decl->rank, dims)) != NNQ_OK) goto nnq_error;
    fill_input(nnq_f32(&x), nnq_tensor_numel(&x), o.seed);

    nnq_exec_options eo = {.threads = o.threads, .keep_all = false};
    if ((s = nnq_exec_create(g, &eo, &e)) != NNQ_OK) goto nnq_error;

    /* First run plans the arena; its logits are the ones checked. */
    if ((s = nnq_exec_run(e, &x)) != NNQ_OK) goto nnq_error;
    if (o.dump && (write_f32(o.dump, "input", &x) || write_f32(o.dump, "logits", nnq_exec_output(e, 0))))
        goto done;

    double t0 = now_s();
    while (now_s() - t0 < o.warmup)
        if ((s = nnq_exec_run(e, &x)) != NNQ_OK) goto nnq_error;

    /* At least 10 timed runs, however slow, so p50 means something. */
    double start = now_s(), end = start;
    while (n_lat < 10 || end - start < o.seconds) {
        if (n_lat == cap_lat) {
            cap_lat = cap_lat ? 2 * cap_lat : 1024;
            double *grown = realloc(lat, cap_lat * sizeof *lat);
            if (!grown) {
                fprintf(stderr, "bench_float: out of memory\n");
                goto done;
            }
            lat = grown;
        }
        double t = now_s();
        if ((s = nnq_exec_run(e, &x)) != NNQ_OK) goto nnq_error;
        end = now_s();
        lat[n_lat++] = end - t;
    }
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    double total = end - start;
    printf("{\"engine\":\"nnq\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,\"runs\":%zu,"
           "\"seconds\":%.3f,\"images_per_s\":%.2f,\"p50_ms\":%.4f,\"p99_ms\":%.4f}\n",
           model_name(o.model, name, sizeof name), o.batch, o.threads, n_lat, total,
           (double)n_lat * o.batch / total, 1e3 * percentile(lat, n_lat, 50),
           1e3 * percentile(lat, n_lat, 99));
    rc = 0;
    goto done;

nnq_error:
    fprintf(stderr, "bench_float: %s: %s: %s\n", o.model, nnq_status_name(s), nnq_last_error());
done:
    free(lat);
    nnq_tensor_release(&x);
    nnq_exec_free(e);
    nnq_graph_free(g);
    return rc;
}
