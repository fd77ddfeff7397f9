/* Activation range setting from calibration data, streamed: one pass over
 * the images with activation quantizers off, a histogram per activation
 * quantizer (bounded memory, whatever the number of images), plus the
 * rows of the logits when their range is set by cross-entropy (n x classes
 * floats: small). */
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "quant/qsim.h"

typedef struct calib_state {
    nnq_histogram *hist; /* [n_quant]; used for untied activation quantizers */
    float **rows;        /* [n_quant]: logits rows for ce, else NULL */
    int64_t *n_rows;
    int *row_len;
} calib_state;

static bool wants_rows(const nnq_qsim_quant *q, const nnq_calib_options *o) {
    return q->is_logits && o->logits_method == NNQ_RANGE_CE;
}

static bool calibrated(const nnq_qsim_quant *q) {
    return q->role == NNQ_QROLE_ACT && q->tied < 0;
}

static nnq_status collect(nnq_qsim *s, const nnq_tensor *t, int qi, calib_state *cs,
                          const nnq_calib_options *o, int64_t batch_n, int64_t cap_rows) {
    const int64_t numel = nnq_tensor_numel(t);
    NNQ_TRY(nnq_histogram_add(&cs->hist[qi], nnq_f32(t), numel));
    if (!wants_rows(&s->quant[qi], o)) return NNQ_OK;
    const int64_t k = batch_n > 0 ? numel / batch_n : 0;
    if (k <= 0 || k > (1 << 20))
        return nnq_fail(NNQ_ERR_SHAPE, "logits '%s' have no per-image rows",
                        s->g->values[s->quant[qi].input].name);
    if (!cs->rows[qi]) {
        cs->rows[qi] = malloc(sizeof(float) * (size_t)(cap_rows * k));
        if (!cs->rows[qi]) return nnq_fail(NNQ_ERR_NOMEM, "out of memory storing logits");
        cs->row_len[qi] = (int)k;
    }
    if (cs->row_len[qi] != k) return nnq_fail(NNQ_ERR_SHAPE, "logits changed width");
    memcpy(cs->rows[qi] + cs->n_rows[qi] * k, nnq_f32(t), sizeof(float) * (size_t)numel);
    cs->n_rows[qi] += batch_n;
    return NNQ_OK;
}

static nnq_status set_range(nnq_qsim_quant *q, const calib_state *cs, int qi,
                            const nnq_calib_options *o) {
    float lo, hi;
    if (q->is_logits && o->logits_method == NNQ_RANGE_CE && cs->rows[qi]) {
        NNQ_TRY(nnq_range_ce_logits(cs->rows[qi], cs->n_rows[qi], cs->row_len[qi], &q->q.cfg,
                                    &lo, &hi));
    } else {
        nnq_range_method m = q->is_logits ? o->logits_method : o->method;
        if (m == NNQ_RANGE_CE) m = NNQ_RANGE_MSE; /* ce without rows */
        NNQ_TRY(nnq_range_from_histogram(&cs->hist[qi], &q->q.cfg, m, o->percentile, &lo, &hi));
    }
    nnq_quantizer_set_range(&q->q, 0, lo, hi);
    return NNQ_OK;
}

nnq_status nnq_qsim_calibrate(nnq_qsim *s, const nnq_dataset *d, const nnq_calib_options *o) {
    if (o->method == NNQ_RANGE_CE || o->method == NNQ_RANGE_BN)
        return nnq_fail(NNQ_ERR_INVALID,
                        "activation range method '%s' is not a calibration method here "
                        "(ce applies to the logits; bn is data-free)",
                        nnq_range_method_name(o->method));
    if (s->g->n_inputs != 1)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "calibration needs a model with one input (it has %d)",
                        s->g->n_inputs);
    const int64_t n = o->n > 0 && o->n < d->n ? o->n : d->n;
    const int64_t batch = o->batch > 0 ? o->batch : 64;
    if (n <= 0) return nnq_fail(NNQ_ERR_INVALID, "no calibration images");
    calib_state cs = {0};
    nnq_exec *ex = NULL;
    nnq_status st = NNQ_OK;
    const int nq = s->n_quant;
    cs.hist = calloc((size_t)nq, sizeof *cs.hist);
    cs.rows = calloc((size_t)nq, sizeof *cs.rows);
    cs.n_rows = calloc((size_t)nq, sizeof *cs.n_rows);
    cs.row_len = calloc((size_t)nq, sizeof *cs.row_len);
    if (!cs.hist || !cs.rows || !cs.n_rows || !cs.row_len) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for calibration");
        goto done;
    }
    for (int i = 0; i < nq; i++)
        if (calibrated(&s->quant[i]) && (st = nnq_histogram_init(&cs.hist[i], NNQ_HIST_BINS)) != NNQ_OK)
            goto done;
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    if ((st = nnq_qsim_sync(s)) != NNQ_OK) goto done;
    const nnq_exec_options eo = {.threads = o->threads, .keep_all = true};
    if ((st = nnq_exec_create(s->g, &eo, &ex)) != NNQ_OK) goto done;
    for (int64_t start = 0; start < n; start += batch) {
        nnq_tensor x;
        nnq_dataset_batch(d, start, start + batch <= n ? batch : n - start, &x);
        if ((st = nnq_exec_run(ex, &x)) != NNQ_OK) goto done;
        for (int i = 0; i < nq; i++) {
            if (!calibrated(&s->quant[i])) continue;
            const nnq_tensor *t = nnq_exec_value(ex, s->quant[i].input);
            if (!t || !t->data) {
                st = nnq_fail(NNQ_ERR_INVALID, "internal: value '%s' not kept",
                              s->g->values[s->quant[i].input].name);
                goto done;
            }
            if ((st = collect(s, t, i, &cs, o, x.dims[0], n)) != NNQ_OK) goto done;
        }
        nnq_progress_report(&o->progress, "calibration", "images", start + x.dims[0], n);
    }
    for (int i = 0; i < nq && st == NNQ_OK; i++)
        if (calibrated(&s->quant[i])) st = set_range(&s->quant[i], &cs, i, o);
    if (st != NNQ_OK) goto done;
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, true);
    st = nnq_qsim_sync(s);
done:
    nnq_exec_free(ex);
    for (int i = 0; cs.hist && i < nq; i++) nnq_histogram_free(&cs.hist[i]);
    for (int i = 0; cs.rows && i < nq; i++) free(cs.rows[i]);
    free(cs.hist);
    free(cs.rows);
    free(cs.n_rows);
    free(cs.row_len);
    return st;
}
