/* Activation histograms with the range each method would choose, for the
 * logits and the outputs of the most sensitive layers: shows whether a
 * long tail or a few outliers decide a range. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "diag/diag_impl.h"
#include "quant/range.h"

#define HIST_BINS 1024
#define HIST_IMAGES 512

/* How bad layer i's output quantization is: larger is worse. */
static double badness(const nnq_diag_layer *l) {
    if (!isnan(l->drop_a)) return l->drop_a;
    return isnan(l->a_sqnr_db) ? -INFINITY : -l->a_sqnr_db;
}

/* The activation quantizers shown: the logits first, then the outputs of
 * the worst layers, at most n in all. */
static int pick(const nnq_diag *d, const nnq_qsim *s, int n, int *out) {
    int k = 0;
    for (int q = 0; q < s->n_quant && k < n; q++)
        if (s->quant[q].is_logits && s->quant[q].tied < 0) out[k++] = q;
    bool *used = calloc((size_t)(s->n_layers ? s->n_layers : 1), sizeof *used);
    while (used && k < n) {
        int best = -1;
        for (int i = 0; i < s->n_layers && i < d->n_layers; i++) {
            const int q = s->layers[i].output_q;
            if (used[i] || q < 0 || s->quant[q].tied >= 0 || !s->quant[q].enabled) continue;
            bool dup = false;
            for (int j = 0; j < k; j++) dup |= out[j] == q;
            if (dup) continue;
            if (best < 0 || badness(&d->layers[i]) > badness(&d->layers[best])) best = i;
        }
        if (best < 0) break;
        used[best] = true;
        out[k++] = s->layers[best].output_q;
    }
    free(used);
    return k;
}

static nnq_status finish(nnq_diag_hist *h, const nnq_histogram *hg, const nnq_qsim_quant *q,
                         const float *rows, int64_t n_rows, int row_len) {
    h->n_bins = hg->n_bins;
    h->edges = malloc(sizeof(double) * (size_t)(hg->n_bins + 1));
    h->counts = malloc(sizeof(double) * (size_t)hg->n_bins);
    if (!h->edges || !h->counts) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for histograms");
    const double w = (hg->hi - hg->lo) / hg->n_bins;
    for (int i = 0; i <= hg->n_bins; i++) h->edges[i] = hg->lo + w * i;
    memcpy(h->counts, hg->count, sizeof(double) * (size_t)hg->n_bins);
    static const nnq_range_method methods[] = {NNQ_RANGE_MINMAX, NNQ_RANGE_MSE, NNQ_RANGE_PERCENTILE};
    for (int m = 0; m < 3; m++) {
        float lo, hi;
        NNQ_TRY(nnq_range_from_histogram(hg, &q->q.cfg, methods[m], 0.01, &lo, &hi));
        h->method[h->n_methods] = nnq_range_method_name(methods[m]);
        h->lo[h->n_methods] = lo;
        h->hi[h->n_methods++] = hi;
    }
    if (rows && n_rows > 0) {
        float lo, hi;
        NNQ_TRY(nnq_range_ce_logits(rows, n_rows, row_len, &q->q.cfg, &lo, &hi));
        h->method[h->n_methods] = "ce";
        h->lo[h->n_methods] = lo;
        h->hi[h->n_methods++] = hi;
    }
    h->chosen_lo = q->q.scale[0] * (double)(q->q.qmin - q->q.zero_point[0]);
    h->chosen_hi = q->q.scale[0] * (double)(q->q.qmax - q->q.zero_point[0]);
    return NNQ_OK;
}

nnq_status nnq_diag_histograms(nnq_diag *d, const nnq_qsim *s, const nnq_graph *fg, const int *fmap,
                               const nnq_dataset *images, int64_t n, int n_hist, int threads) {
    if (n_hist <= 0) return NNQ_OK;
    if (n <= 0 || n > images->n) n = images->n;
    if (n > HIST_IMAGES) n = HIST_IMAGES;
    int *qs = malloc(sizeof(int) * (size_t)n_hist);
    nnq_histogram *hg = calloc((size_t)n_hist, sizeof *hg);
    d->hist = calloc((size_t)n_hist, sizeof *d->hist);
    float *rows = NULL;
    int64_t n_rows = 0;
    int row_len = 0;
    nnq_exec *e = NULL;
    nnq_status st = qs && hg && d->hist ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory for histograms");
    const int k = st == NNQ_OK ? pick(d, s, n_hist, qs) : 0;
    for (int i = 0; st == NNQ_OK && i < k; i++) st = nnq_histogram_init(&hg[i], HIST_BINS);
    const nnq_exec_options eo = {.threads = threads, .keep_all = true};
    if (st == NNQ_OK) st = nnq_exec_create(fg, &eo, &e);
    for (int64_t start = 0; st == NNQ_OK && start < n; start += 64) {
        const int64_t count = n - start < 64 ? n - start : 64;
        nnq_tensor x;
        nnq_dataset_batch(images, start, count, &x);
        if ((st = nnq_exec_run(e, &x)) != NNQ_OK) break;
        for (int i = 0; st == NNQ_OK && i < k; i++) {
            const int fv = fmap[s->quant[qs[i]].input];
            const nnq_tensor *t = fv >= 0 ? nnq_exec_value(e, fv) : NULL;
            if (!t || !t->data || t->dtype != NNQ_DT_FLOAT) continue;
            st = nnq_histogram_add(&hg[i], nnq_f32(t), nnq_tensor_numel(t));
            if (st != NNQ_OK || !s->quant[qs[i]].is_logits) continue;
            row_len = (int)(nnq_tensor_numel(t) / count);
            if (!rows && !(rows = malloc(sizeof(float) * (size_t)(n * row_len)))) {
                st = nnq_fail(NNQ_ERR_NOMEM, "out of memory keeping logits");
                break;
            }
            memcpy(rows + n_rows * row_len, nnq_f32(t), sizeof(float) * (size_t)(count * row_len));
            n_rows += count;
        }
    }
    nnq_exec_free(e);
    for (int i = 0; st == NNQ_OK && i < k; i++) {
        nnq_diag_hist *h = &d->hist[d->n_hist++];
        const nnq_qsim_quant *q = &s->quant[qs[i]];
        h->tensor = nnq_strdup(s->g->values[q->input].name);
        h->layer = nnq_strdup(q->layer >= 0 ? s->layers[q->layer].name : "");
        if (!h->tensor || !h->layer) st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for histograms");
        if (st == NNQ_OK)
            st = finish(h, &hg[i], q, q->is_logits ? rows : NULL, n_rows, row_len);
    }
    for (int i = 0; hg && i < n_hist; i++) nnq_histogram_free(&hg[i]);
    free(hg);
    free(qs);
    free(rows);
    return st;
}
