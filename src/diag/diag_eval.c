/* Shared measurement helpers of the diagnostics: evaluation with top-1
 * and logits SQNR, SQNR in dB, step timing and memory. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "diag/diag_impl.h"

double nnq_diag_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nnq_diag_step_done(nnq_diag *d, const char *name, double t0) {
    if (d->n_steps >= NNQ_DIAG_MAX_STEPS) return;
    nnq_diag_step *st = &d->steps[d->n_steps++];
    snprintf(st->name, sizeof st->name, "%s", name);
    st->seconds = nnq_diag_now() - t0;
    struct rusage ru;
    st->peak_rss_mb = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

double nnq_diag_sqnr_db(double signal, double noise) {
    if (!(signal > 0)) return NAN;
    if (!(noise > 0)) return INFINITY;
    return 10.0 * log10(signal / noise);
}

nnq_status nnq_diag_eval(const nnq_graph *g, const nnq_dataset *d, int64_t n, int threads,
                         const float *ref, double *top1, double *sqnr_db, float **logits_out) {
    *top1 = NAN;
    *sqnr_db = NAN;
    if (logits_out) *logits_out = NULL;
    if (n <= 0 || n > d->n) n = d->n;
    if (n < 1) return nnq_fail(NNQ_ERR_INVALID, "no images to evaluate");
    nnq_exec *e = NULL;
    const nnq_exec_options eo = {.threads = threads};
    NNQ_TRY(nnq_exec_create(g, &eo, &e));
    nnq_status s = NNQ_OK;
    int64_t correct = 0, classes = 0;
    double signal = 0, noise = 0;
    float *keep = NULL;
    for (int64_t start = 0; start < n; start += 64) {
        const int64_t count = n - start < 64 ? n - start : 64;
        nnq_tensor x;
        nnq_dataset_batch(d, start, count, &x);
        if ((s = nnq_exec_run(e, &x)) != NNQ_OK) break;
        const nnq_tensor *y = nnq_exec_output(e, 0);
        if (y->dtype != NNQ_DT_FLOAT || y->rank < 1 || y->dims[0] != count) {
            s = nnq_fail(NNQ_ERR_SHAPE, "the model's output is not float logits with the batch first");
            break;
        }
        const int64_t k = nnq_tensor_numel(y) / count;
        if (classes == 0) classes = k;
        if (k != classes || k < 1) {
            s = nnq_fail(NNQ_ERR_SHAPE, "the model's output changes width between batches");
            break;
        }
        const float *v = nnq_f32(y);
        if (logits_out && !keep && !(keep = malloc(sizeof(float) * (size_t)(n * k)))) {
            s = nnq_fail(NNQ_ERR_NOMEM, "out of memory keeping logits");
            break;
        }
        if (keep) memcpy(keep + start * k, v, sizeof(float) * (size_t)(count * k));
        for (int64_t i = 0; i < count; i++) {
            const float *row = v + i * k;
            int64_t best = 0;
            for (int64_t c = 1; c < k; c++)
                if (row[c] > row[best]) best = c;
            if (d->labels && best == d->labels[start + i]) correct++;
            if (ref)
                for (int64_t c = 0; c < k; c++) {
                    const double r = ref[(start + i) * k + c], q = row[c];
                    signal += r * r;
                    noise += (q - r) * (q - r);
                }
        }
    }
    nnq_exec_free(e);
    if (s != NNQ_OK) {
        free(keep);
        return s;
    }
    if (d->labels) *top1 = 100.0 * (double)correct / (double)n;
    if (ref) *sqnr_db = nnq_diag_sqnr_db(signal, noise);
    if (logits_out) *logits_out = keep;
    return NNQ_OK;
}

int *nnq_diag_value_map(const nnq_qsim *s, const nnq_graph *fg) {
    const nnq_graph *g = s->g;
    int *map = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
    if (!map) return NULL;
    for (int v = 0; v < g->n_values; v++) {
        const char *name = g->values[v].name;
        /* a simulation of fg itself keeps every index (the common case) */
        if (v < fg->n_values && name && fg->values[v].name && strcmp(name, fg->values[v].name) == 0)
            map[v] = v;
        else
            map[v] = name && *name ? nnq_graph_find_value(fg, name) : -1;
    }
    /* A quantized graph output took the float value's name (which became
     * "<name>_float"): the float value is the one named like the output. */
    for (int i = 0; i < s->n_quant; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        if (!nnq_graph_is_output(g, q->output)) continue;
        map[q->input] = nnq_graph_find_value(fg, g->values[q->output].name);
        map[q->output] = -1;
    }
    return map;
}
