/* nnq_diag_run: one PTQ run of the configuration analysed, then each
 * measurement asked for, timed; and the bit-width sweep. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag_impl.h"
#include "onnx/onnx_io.h"
#include "ptq/ptq.h"
#include "quant/qdq_export.h"

void nnq_diag_options_default(nnq_diag_options *o) {
    memset(o, 0, sizeof *o);
    nnq_ptq_options_default(&o->ptq);
    o->recipe_name = "none";
    o->model_name = "model";
    o->sensitivity = o->bit_sweep = o->histograms = o->cle_ranges = o->sqnr = true;
    o->n_histograms = 4;
    o->n_range_charts = 4;
    o->sqnr_images = 256;
    o->engine = true;
    o->source = "ptq";
}

void nnq_diag_free(nnq_diag *d) {
    if (!d) return;
    for (int i = 0; i < d->n_layers; i++) free(d->layers[i].name);
    free(d->layers);
    for (int i = 0; i < d->n_ranges; i++) {
        nnq_diag_ranges *r = &d->ranges[i];
        free(r->name);
        free(r->lo_before);
        free(r->hi_before);
        free(r->lo_after);
        free(r->hi_after);
    }
    free(d->ranges);
    for (int i = 0; i < d->n_hist; i++) {
        free(d->hist[i].tensor);
        free(d->hist[i].layer);
        free(d->hist[i].edges);
        free(d->hist[i].counts);
    }
    free(d->hist);
    memset(d, 0, sizeof *d);
}

nnq_status nnq_diag_export_qdq(const nnq_qsim *s, unsigned char **buf, size_t *len) {
    nnq_graph *q = NULL;
    *buf = NULL;
    *len = 0;
    nnq_status st = nnq_qsim_to_qdq(s, &q);
    if (st == NNQ_OK) st = nnq_onnx_save_bytes(q, buf, len);
    nnq_graph_free(q);
    return st;
}

/* Bytes of the QDQ model the simulation exports. */
static nnq_status qdq_bytes(const nnq_qsim *s, int64_t *out) {
    unsigned char *buf;
    size_t len;
    nnq_status st = nnq_diag_export_qdq(s, &buf, &len);
    *out = st == NNQ_OK ? (int64_t)len : 0;
    free(buf);
    return st;
}

/* Top-1 (or logits SQNR) of one PTQ run with weight / activation bits. */
static nnq_status sweep_point(const nnq_graph *model, const nnq_dataset *calib,
                              const nnq_dataset *eval, int64_t n, const float *float_logits,
                              const nnq_diag_options *o, int wbits, int abits, double *out) {
    nnq_ptq_options p = o->ptq;
    p.qsim.weights.bits = wbits;
    if (abits > 0) p.qsim.acts.bits = abits;
    nnq_graph *fg = NULL;
    nnq_qsim *s = NULL;
    nnq_ptq_report r;
    double top1 = NAN, sqnr = NAN;
    nnq_status st = nnq_ptq_run(model, calib, &p, NULL, &fg, &s, &r);
    if (st == NNQ_OK)
        st = nnq_diag_eval(s->g, eval, n, o->threads, eval->labels ? NULL : float_logits, &top1,
                           &sqnr, NULL);
    *out = eval->labels ? top1 : sqnr;
    nnq_qsim_free(s);
    nnq_graph_free(fg);
    return st;
}

static nnq_status bit_sweep(nnq_diag *d, const nnq_graph *model, const nnq_dataset *calib,
                            const nnq_dataset *eval, int64_t n, const float *float_logits,
                            const nnq_diag_options *o, const nnq_ptq_log *log) {
    static const int bits[NNQ_DIAG_BITS] = {8, 6, 4, 3, 2};
    for (int i = 0; i < NNQ_DIAG_BITS; i++) {
        d->bits[i] = bits[i];
        NNQ_TRY(sweep_point(model, calib, eval, n, float_logits, o, bits[i], 0, &d->top1_wbits[i]));
        NNQ_TRY(sweep_point(model, calib, eval, n, float_logits, o, bits[i], bits[i],
                            &d->top1_wabits[i]));
        if (log) nnq_progress_report(&log->progress, "bit sweep", "widths", i + 1, NNQ_DIAG_BITS);
        if (log && log->fp)
            fprintf(log->fp, "bit sweep: W%d: %.2f, W%dA%d: %.2f%s\n", bits[i], d->top1_wbits[i],
                    bits[i], bits[i], d->top1_wabits[i], eval->labels ? " % top-1" : " dB");
    }
    d->has_bits = true;
    return NNQ_OK;
}

nnq_status nnq_diag_collect(const nnq_graph *model, const nnq_graph *fg, nnq_qsim *s,
                            const nnq_ptq_report *r, const nnq_dataset *calib,
                            const nnq_dataset *eval, const nnq_diag_options *o,
                            const nnq_ptq_log *log, nnq_diag *d) {
    memset(d, 0, sizeof *d);
    d->float_top1 = d->quant_top1 = d->logits_sqnr_db = NAN;
    d->float_bytes = o->model_bytes;
    d->labelled = eval->labels != NULL;
    const int64_t n = o->ptq.calib.n;
    d->n_eval = eval->n;
    d->n_calib = calib ? (n > 0 && n < calib->n ? n : calib->n) : 0;
    const nnq_dataset *images = calib ? calib : eval;
    float *float_logits = NULL;
    double unused;
    int *fmap = nnq_diag_value_map(s, fg);
    if (!fmap) return nnq_fail(NNQ_ERR_NOMEM, "out of memory matching the float graph's values");
    for (int i = 0; r && i < r->n_steps && d->n_steps < NNQ_DIAG_MAX_STEPS; i++) {
        nnq_diag_step *ds = &d->steps[d->n_steps++];
        snprintf(ds->name, sizeof ds->name, "%s: %s", o->source ? o->source : "ptq", r->steps[i].name);
        ds->seconds = r->steps[i].seconds;
        ds->peak_rss_mb = r->steps[i].peak_rss_mb;
    }
    double t = nnq_diag_now();
    nnq_status st = nnq_diag_eval(fg, eval, 0, o->threads, NULL, &d->float_top1, &unused, &float_logits);
    if (st == NNQ_OK)
        st = nnq_diag_eval(s->g, eval, 0, o->threads, float_logits, &d->quant_top1,
                           &d->logits_sqnr_db, NULL);
    if (st == NNQ_OK) nnq_diag_step_done(d, "evaluation", t);
    if (st == NNQ_OK) st = qdq_bytes(s, &d->qdq_bytes);
    if (st == NNQ_OK) {
        t = nnq_diag_now();
        st = nnq_diag_layers(d, s, fg, fmap, images, o->sqnr ? o->sqnr_images : 1, o->engine,
                             o->threads);
        nnq_diag_step_done(d, "per-layer SQNR", t);
    }
    if (st == NNQ_OK && o->sensitivity) {
        t = nnq_diag_now();
        st = nnq_diag_sensitivity(d, s, eval, 0, float_logits, o->threads, log);
        nnq_diag_step_done(d, "sensitivity", t);
    }
    if (st == NNQ_OK && o->cle_ranges) {
        t = nnq_diag_now();
        st = nnq_diag_cle_ranges(d, model, &o->ptq.cle_opt);
        nnq_diag_step_done(d, "channel ranges / CLE", t);
    }
    if (st == NNQ_OK && o->histograms) {
        t = nnq_diag_now();
        st = nnq_diag_histograms(d, s, fg, fmap, images, 0, o->n_histograms, o->threads);
        nnq_diag_step_done(d, "histograms", t);
    }
    if (st == NNQ_OK && o->bit_sweep) {
        t = nnq_diag_now();
        st = bit_sweep(d, model, calib, eval, 0, float_logits, o, log);
        nnq_diag_step_done(d, "bit-width sweep", t);
    }
    free(float_logits);
    free(fmap);
    if (st != NNQ_OK) nnq_diag_free(d);
    return st;
}

nnq_status nnq_diag_float_reference(const nnq_graph *model, nnq_graph **out) {
    nnq_graph *g = NULL;
    nnq_status st = nnq_graph_clone(model, &g);
    if (st == NNQ_OK) st = nnq_graph_prepare(g);
    if (st == NNQ_OK) st = nnq_ptq_fold_bn(g, NULL, NULL, NULL, NULL);
    if (st == NNQ_OK) st = nnq_graph_prepare(g);
    if (st != NNQ_OK) {
        nnq_graph_free(g);
        g = NULL;
    }
    *out = g;
    return st;
}

nnq_status nnq_diag_run(const nnq_graph *model, const nnq_dataset *calib, const nnq_dataset *eval,
                        const nnq_diag_options *o, const nnq_ptq_log *log, nnq_diag *d) {
    memset(d, 0, sizeof *d);
    nnq_graph *fg = NULL;
    nnq_qsim *s = NULL;
    nnq_ptq_report r;
    nnq_status st = nnq_ptq_run(model, calib, &o->ptq, log, &fg, &s, &r);
    if (st == NNQ_OK) st = nnq_diag_collect(model, fg, s, &r, calib, eval, o, log, d);
    nnq_qsim_free(s);
    nnq_graph_free(fg);
    return st;
}
