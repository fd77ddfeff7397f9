/* nnq bench: latency and throughput of a model on one engine, with peak
 * memory and the bytes of the model file the engine loads. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/engine_model.h"
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "cli/progress.h"

typedef struct bench_opts {
    const char *model, *engine_name;
    cli_engine engine;
    int64_t batch, threads, iters, warmup;
    bool json, quiet;
} bench_opts;

void cmd_bench_help(FILE *fp) {
    fputs("usage: nnq bench MODEL [--engine int|float|sim] [--batch B] [--threads T]\n"
          "                 [--iters N] [--warmup W] [--json] [--quiet]\n"
          "\n"
          "Time a model on one engine with a random input of its input shape (batch B on\n"
          "a batch dim; fixed seed): W warm-up runs, then N timed runs. Reports the\n"
          "latency per run (p50, p90, p99: the nearest-rank percentiles), the\n"
          "throughput, the peak resident memory of the process and the size of the model\n"
          "file (an ONNX model, or a lowered .nnqi program for int and sim).\n"
          "\n"
          "options:\n"
          "  --engine E    int (default): nnq's integer engine; float: the float executor;\n"
          "                sim: the integer program's float emulation\n"
          "  --batch B     images per run (default 1)\n"
          "  --threads T   threads (default 0: all cores)\n"
          "  --iters N     timed runs (default: 200 at batch 1, else 20)\n"
          "  --warmup W    untimed runs first (default: 10 at batch 1, else 3)\n"
          "  --json        one JSON object on stdout: model, engine, batch, threads, iters,\n"
          "                images_per_s, latency_ms_p50, latency_ms_p90, latency_ms_p99,\n"
          "                latency_ms_mean, peak_rss_mb, model_bytes\n"
          "  --quiet       nothing on stderr but errors\n"
          "  -h, --help    show this help\n",
          fp);
}

static int parse(int argc, char **argv, bench_opts *o) {
    o->batch = 1;
    o->engine = CLI_ENGINE_INT;
    o->iters = -1;
    o->warmup = -1;
    const cli_opt opts[] = {
        {"engine", CLI_OPT_STRING, &o->engine_name, 0, 0},
        {"batch", CLI_OPT_INT, &o->batch, 1, 1 << 16},
        {"threads", CLI_OPT_INT, &o->threads, 0, 4096},
        {"iters", CLI_OPT_INT, &o->iters, 1, 1 << 24},
        {"warmup", CLI_OPT_INT, &o->warmup, 0, 1 << 24},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("bench", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 1,
                           &n_pos)) {
    case CLI_PARSE_HELP: cmd_bench_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("bench", "expected one MODEL argument");
    o->model = pos[0];
    if (o->engine_name && !cli_engine_parse(o->engine_name, &o->engine))
        return cli_usage_error("bench", "--engine must be int, float or sim, not '%s'",
                               o->engine_name);
    if (o->iters < 0) o->iters = o->batch == 1 ? 200 : 20;
    if (o->warmup < 0) o->warmup = o->batch == 1 ? 10 : 3;
    return CLI_EXIT_OK;
}

/* A random input of the model's input shape: the batch dim (symbolic)
 * takes B, other symbolic dims 1; float values uniform in [-2, 2),
 * integers uniform over their type. xorshift64, fixed seed. */
static nnq_status make_input(const cli_model *m, int64_t batch, nnq_tensor *x) {
    if (m->n_inputs != 1)
        return nnq_fail(NNQ_ERR_SHAPE, "%s has %d inputs; bench feeds models with one input",
                        m->path, m->n_inputs);
    const nnq_tensor *t = &m->in.t;
    const nnq_dtype dt = t->dtype;
    if (dt != NNQ_DT_FLOAT && dt != NNQ_DT_UINT8 && dt != NNQ_DT_INT8)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: input '%s' is %s; bench feeds float32, uint8 "
                        "or int8", m->path, m->in.name, nnq_dtype_name(dt));
    int64_t dims[NNQ_MAX_RANK];
    for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k] >= 0 ? t->dims[k] : (k == 0 ? batch : 1);
    NNQ_TRY(nnq_tensor_alloc(x, dt, t->rank, dims));
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0, n = nnq_tensor_numel(x); i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        if (dt == NNQ_DT_FLOAT) nnq_f32(x)[i] = (float)((double)(s >> 11) * 0x1p-53 * 4.0 - 2.0);
        else ((uint8_t *)x->data)[i] = (uint8_t)(s >> 56);
    }
    return NNQ_OK;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* nearest-rank percentile of sorted v[0..n) */
static double percentile(const double *v, int64_t n, double p) {
    int64_t k = (int64_t)ceil(p / 100.0 * (double)n);
    if (k < 1) k = 1;
    return v[k - 1];
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

int cmd_bench_run(int argc, char **argv) {
    bench_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;
    cli_model m;
    nnq_tensor x = {0};
    double *lat = NULL;
    nnq_status s = cli_model_open(o.model, o.engine, (int)o.threads, o.quiet, &m);
    if (s != NNQ_OK) return cli_fail(s);
    if ((s = make_input(&m, o.batch, &x)) != NNQ_OK) goto fail;
    const int64_t batch = x.rank > 0 ? x.dims[0] : 1;
    if (!(lat = malloc(sizeof(double) * (size_t)o.iters))) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const nnq_tensor *y;
    for (int64_t i = 0; i < o.warmup; i++)
        if ((s = cli_model_run(&m, &x, &y)) != NNQ_OK) goto fail;
    const double t0 = cli_now();
    for (int64_t i = 0; i < o.iters; i++) {
        const double a = cli_now();
        if ((s = cli_model_run(&m, &x, &y)) != NNQ_OK) goto fail;
        lat[i] = (cli_now() - a) * 1e3;
    }
    const double total = cli_now() - t0;
    double mean = 0;
    for (int64_t i = 0; i < o.iters; i++) mean += lat[i];
    mean /= (double)o.iters;
    qsort(lat, (size_t)o.iters, sizeof *lat, cmp_double);
    const double p50 = percentile(lat, o.iters, 50), p90 = percentile(lat, o.iters, 90),
                 p99 = percentile(lat, o.iters, 99);
    const double ips = total > 0 ? (double)(batch * o.iters) / total : 0;
    const double rss = peak_rss_mb();
    const int threads = o.threads > 0 ? (int)o.threads : 0;
    if (!o.quiet)
        fprintf(stderr,
                "bench %s (%s, batch %lld, threads %s): latency p50 %.3f ms, p90 %.3f ms, "
                "p99 %.3f ms; %.1f images/s; peak RSS %.1f MB; model %zu bytes\n",
                o.model, cli_engine_name(o.engine), (long long)batch,
                threads ? "given" : "all", p50, p90, p99, ips, rss, m.file_bytes);
    if (o.json) {
        cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j, NULL);
        cli_json_string(&j, "model", o.model);
        cli_json_string(&j, "engine", cli_engine_name(o.engine));
        cli_json_int(&j, "batch", batch);
        cli_json_int(&j, "threads", o.threads);
        cli_json_int(&j, "iters", o.iters);
        cli_json_double(&j, "images_per_s", ips);
        cli_json_double(&j, "latency_ms_p50", p50);
        cli_json_double(&j, "latency_ms_p90", p90);
        cli_json_double(&j, "latency_ms_p99", p99);
        cli_json_double(&j, "latency_ms_mean", mean);
        cli_json_double(&j, "peak_rss_mb", rss);
        cli_json_int(&j, "model_bytes", (int64_t)m.file_bytes);
        /* threads that each ran a share of the batch (0: one whole-batch run) */
        cli_json_int(&j, "split_threads", m.ix ? nnq_iexec_last_split(m.ix) : 0);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    }
    free(lat);
    nnq_tensor_release(&x);
    cli_model_close(&m);
    return CLI_EXIT_OK;
fail:
    rc = cli_fail(s);
    free(lat);
    nnq_tensor_release(&x);
    cli_model_close(&m);
    return rc;
}
