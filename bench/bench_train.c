/* Training-throughput benchmark, nnq side (bench/run_train.sh runs it
 * beside bench/train_bench.py, which times PyTorch the same way).
 *
 *   bench_train --arch A --batch B --threads T [--steps S] [--warmup W]
 *               [--lr LR] [--seed N]
 *   bench_train --arch A --check PREFIX
 *
 * Timing: trains architecture A with nnq's training loop (nnq_train: shuffled
 * batches, training forward, softmax cross-entropy, backward, SGD with
 * Nesterov momentum 0.9 and the architecture's default weight decay) on the
 * first (W + S) * B Fashion-MNIST training images, one epoch of W + S steps,
 * and times steps W+1 .. W+S from the progress callback. Prints one JSON
 * line: images/s, ms per step, peak RSS (getrusage ru_maxrss) and the RSS
 * at start-up, parameter count, mean loss.
 *
 * --check: writes the freshly built model to PREFIX.onnx (its initializers
 * are the weights, by PyTorch state-dict name) and the logits of a
 * training-mode forward (BN with batch statistics) on the first 16 training
 * images to PREFIX.logits.npy, so train_bench.py can load the same weights
 * into its PyTorch model and prove the two architectures compute the same
 * function before their speeds are compared. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/npy.h"
#include "models/models.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "train/autograd.h"
#include "train/params.h"
#include "train/trainer.h"

#define CHECK_IMAGES 16

typedef struct bench_opts {
    const char *arch, *check;
    int64_t batch, steps, warmup;
    int threads;
    float lr;
    uint64_t seed;
} bench_opts;

typedef struct timing {
    int64_t warmup, last;
    double t_start, t_end; /* after step `warmup`, after step `last` */
    double loss;           /* running mean over the epoch at the last step */
} timing;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* Current resident set, from /proc (0 if unavailable). */
static double rss_now_mb(void) {
    long pages_total = 0, pages_res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    int got = fscanf(f, "%ld %ld", &pages_total, &pages_res);
    fclose(f);
    return got == 2 ? (double)pages_res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0) : 0;
}

static void on_progress(const nnq_train_progress *p, void *user) {
    timing *t = user;
    if (p->epoch_done) return;
    if (p->step == t->warmup) t->t_start = now_s();
    if (p->step == t->last) {
        t->t_end = now_s();
        t->loss = p->loss;
    }
}

static int fail(const char *what, nnq_status s) {
    fprintf(stderr, "bench_train: %s: %s: %s\n", what, nnq_status_name(s), nnq_last_error());
    return 1;
}

static int run_timing(const bench_opts *o) {
    double rss0 = rss_now_mb();
    nnq_dataset train = {0};
    nnq_graph *g = NULL;
    nnq_status s;
    int rc = 1;
    const nnq_arch *arch = nnq_arch_find(o->arch);
    int64_t n = (o->warmup + o->steps) * o->batch;
    if ((s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, n, &train)) != NNQ_OK) {
        rc = fail("loading Fashion-MNIST", s);
        goto done;
    }
    if (train.n != n) {
        fprintf(stderr, "bench_train: need %lld training images, have %lld\n", (long long)n,
                (long long)train.n);
        goto done;
    }
    if ((s = nnq_model_build(o->arch, o->seed, &g)) != NNQ_OK) {
        rc = fail(o->arch, s);
        goto done;
    }
    timing t = {.warmup = o->warmup, .last = o->warmup + o->steps};
    nnq_train_config c = nnq_train_defaults();
    c.epochs = 1;
    c.batch = o->batch;
    c.lr = o->lr;
    c.optim.weight_decay = arch->default_weight_decay;
    c.schedule = NNQ_SCHED_CONSTANT;
    c.seed = o->seed;
    c.threads = o->threads;
    c.progress = on_progress;
    c.user = &t;
    nnq_train_result r;
    if ((s = nnq_train(g, &train, NULL, &c, &r)) != NNQ_OK) {
        rc = fail("training", s);
        goto done;
    }
    double secs = t.t_end - t.t_start;
    if (!(secs > 0) || !isfinite(t.loss)) {
        fprintf(stderr, "bench_train: no timed steps (or a non-finite loss)\n");
        goto done;
    }
    printf("{\"engine\":\"nnq\",\"arch\":\"%s\",\"batch\":%lld,\"threads\":%d,\"steps\":%lld,"
           "\"warmup\":%lld,\"seconds\":%.3f,\"images_per_s\":%.2f,\"ms_per_step\":%.2f,"
           "\"peak_rss_mb\":%.1f,\"start_rss_mb\":%.1f,\"buffer_mb\":%.1f,\"params\":%lld,"
           "\"loss\":%.4f}\n",
           o->arch, (long long)o->batch, o->threads, (long long)o->steps, (long long)o->warmup,
           secs, (double)(o->steps * o->batch) / secs, 1e3 * secs / (double)o->steps,
           peak_rss_mb(), rss0, (double)r.buffer_bytes / (1024.0 * 1024.0),
           (long long)r.params, t.loss);
    rc = 0;
done:
    nnq_graph_free(g);
    nnq_dataset_free(&train);
    return rc;
}

static int run_check(const bench_opts *o) {
    nnq_dataset d = {0};
    nnq_graph *g = NULL;
    nnq_params ps = {0};
    nnq_autograd *ag = NULL;
    nnq_status s;
    int rc = 1;
    char path[4096];
    if ((s = nnq_model_build(o->arch, o->seed, &g)) != NNQ_OK) {
        rc = fail(o->arch, s);
        goto done;
    }
    /* Saved before the forward, which moves the BN running statistics. */
    snprintf(path, sizeof path, "%s.onnx", o->check);
    if ((s = nnq_onnx_save(g, path)) != NNQ_OK) {
        rc = fail(path, s);
        goto done;
    }
    if ((s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, CHECK_IMAGES, &d)) != NNQ_OK) {
        rc = fail("loading Fashion-MNIST", s);
        goto done;
    }
    nnq_tensor x;
    nnq_dataset_batch(&d, 0, CHECK_IMAGES, &x);
    if ((s = nnq_graph_prepare(g)) != NNQ_OK || (s = nnq_params_init(&ps, g)) != NNQ_OK ||
        (s = nnq_autograd_create(g, &ps, o->threads, &ag)) != NNQ_OK ||
        (s = nnq_autograd_forward(ag, &x)) != NNQ_OK) {
        rc = fail("training forward", s);
        goto done;
    }
    snprintf(path, sizeof path, "%s.logits.npy", o->check);
    if ((s = nnq_npy_write(path, nnq_autograd_output(ag, 0))) != NNQ_OK) {
        rc = fail(path, s);
        goto done;
    }
    printf("{\"engine\":\"nnq\",\"arch\":\"%s\",\"params\":%lld,\"state\":%d}\n", o->arch,
           (long long)nnq_params_count(&ps), ps.n_state);
    rc = 0;
done:
    nnq_autograd_free(ag);
    nnq_params_free(&ps);
    nnq_graph_free(g);
    nnq_dataset_free(&d);
    return rc;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.batch = 128, .steps = 30, .warmup = 5, .threads = 1, .lr = 0.05f,
                      .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (strcmp(a, "--arch") == 0) o->arch = v;
        else if (strcmp(a, "--check") == 0) o->check = v;
        else if (strcmp(a, "--batch") == 0) o->batch = atoll(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "--steps") == 0) o->steps = atoll(v);
        else if (strcmp(a, "--warmup") == 0) o->warmup = atoll(v);
        else if (strcmp(a, "--lr") == 0) o->lr = (float)atof(v);
        else if (strcmp(a, "--seed") == 0) o->seed = strtoull(v, NULL, 10);
        else goto usage;
        i++;
    }
    if (!o->arch || o->batch < 1 || o->threads < 1 || o->steps < 1 || o->warmup < 1 ||
        !(o->lr > 0))
        goto usage;
    if (!nnq_arch_find(o->arch)) {
        fprintf(stderr, "bench_train: unknown architecture '%s'\n", o->arch);
        return -1;
    }
    return 0;
usage:
    fprintf(stderr, "usage: bench_train --arch A --batch B --threads T [--steps S] [--warmup W]"
                    " [--lr LR] [--seed N]\n"
                    "       bench_train --arch A --check PREFIX\n");
    return -1;
}

int main(int argc, char **argv) {
    bench_opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;
    return o.check ? run_check(&o) : run_timing(&o);
}
