/* The PTQ pipeline in the white paper's order (recipe.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "ptq/recipe.h"

#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ops/executor.h"
#include "ptq/wrange_output.h"

void nnq_ptq_options_default(nnq_ptq_options *o) {
    memset(o, 0, sizeof *o);
    nnq_qsim_options_default(&o->qsim);
    nnq_calib_options_default(&o->calib);
    o->calib.n = 1024;
    o->wrange = NNQ_RANGE_MINMAX;
    o->calib.method = NNQ_RANGE_MINMAX;
    o->calib.logits_method = NNQ_RANGE_MINMAX;
    nnq_cle_options_default(&o->cle_opt);
    nnq_adaround_options_default(&o->ada);
    o->in_lo = -1.0f;
    o->in_hi = 1.0f;
}

void nnq_ptq_apply_recipe(nnq_ptq_options *o, nnq_recipe r) {
    if (r == NNQ_RECIPE_NONE) return;
    o->cle = true;
    o->bias_absorb = true;
    o->wrange = NNQ_RANGE_MSE;
    if (r == NNQ_RECIPE_STANDARD) {
        o->adaround = true;
        o->calib.method = NNQ_RANGE_MSE;
        o->calib.logits_method = NNQ_RANGE_CE;
    } else {
        o->bias_correct = NNQ_BC_ANALYTICAL;
        o->arange_bn = true;
    }
}

const char *nnq_wmse_mode_name(nnq_wmse_mode m) {
    return m == NNQ_WMSE_PLAIN ? "plain" : "output";
}

bool nnq_wmse_mode_parse(const char *s, nnq_wmse_mode *out) {
    if (s && strcmp(s, "output") == 0) *out = NNQ_WMSE_OUTPUT;
    else if (s && strcmp(s, "plain") == 0) *out = NNQ_WMSE_PLAIN;
    else return false;
    return true;
}

static const char *const recipe_names[] = {"none", "standard", "data-free"};

const char *nnq_recipe_name(nnq_recipe r) { return recipe_names[r]; }

bool nnq_recipe_parse(const char *s, nnq_recipe *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, recipe_names[i]) == 0) {
            *out = (nnq_recipe)i;
            return true;
        }
    return false;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void step_done(nnq_ptq_report *r, const char *name, double t0) {
    if (r->n_steps < NNQ_PTQ_MAX_STEPS) {
        r->steps[r->n_steps].name = name;
        struct rusage ru;
        r->steps[r->n_steps].peak_rss_mb =
            getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
        r->steps[r->n_steps++].seconds = now() - t0;
    }
}

static void say(const nnq_ptq_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const nnq_ptq_log *log, const char *fmt, ...) {
    if (!log || !log->fp) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log->fp, fmt, ap);
    va_end(ap);
    fputc('\n', log->fp);
}

static nnq_status need_data(const nnq_dataset *d, const char *what) {
    if (d) return NNQ_OK;
    return nnq_fail(NNQ_ERR_INVALID, "%s needs calibration data (--data)", what);
}

static nnq_status run(const nnq_dataset *calib, const nnq_ptq_options *o, const nnq_ptq_log *log,
                      nnq_graph *g, nnq_bn_stats *st, nnq_qsim **sim, nnq_ptq_report *r) {
    double t = now();
    NNQ_TRY(nnq_graph_prepare(g));
    NNQ_TRY(nnq_ptq_fold_bn(g, st, &r->bn_folded, &r->bn_unfolded, log));
    NNQ_TRY(nnq_graph_prepare(g));
    step_done(r, "bn-fold", t);
    r->has_bn_stats = st->n > 0;
    const bool wants_stats = o->bias_absorb || o->bias_correct == NNQ_BC_ANALYTICAL || o->arange_bn;
    if (wants_stats && !r->has_bn_stats) {
        if (o->arange_bn)
            return nnq_fail(NNQ_ERR_INVALID,
                            "the model has no BatchNorm statistics (BN folded at export), which "
                            "data-free range setting needs; calibrate with data (--data) instead");
        say(log, "no BatchNorm statistics in the model (BN folded at export): bias absorption "
                 "and analytical bias correction are skipped");
    }
    if (o->cle) {
        t = now();
        NNQ_TRY(nnq_ptq_cle(g, st, &o->cle_opt, &r->cle_pairs, &r->relu6_converted, log));
        NNQ_TRY(nnq_graph_prepare(g));
        step_done(r, "cle", t);
    }
    if (o->bias_absorb && r->has_bn_stats) {
        t = now();
        NNQ_TRY(nnq_ptq_absorb_bias(g, st, &r->bias_absorbed, log));
        step_done(r, "bias-absorb", t);
    }
    t = now();
    NNQ_TRY(nnq_qsim_create(g, &o->qsim, sim));
    r->wmse_used = o->wrange == NNQ_RANGE_MSE;
    /* Output-aware MSE needs the input moments; without data: plain. */
    r->wmse = o->wmse == NNQ_WMSE_OUTPUT && calib ? NNQ_WMSE_OUTPUT : NNQ_WMSE_PLAIN;
    if (r->wmse_used && r->wmse == NNQ_WMSE_OUTPUT)
        NNQ_TRY(nnq_ptq_weight_ranges_output(*sim, g, calib, o->calib.n, o->threads,
                                             &r->wmse_output_layers, &r->wmse_plain_layers, log));
    else
        NNQ_TRY(nnq_qsim_set_weight_ranges(*sim, o->wrange));
    step_done(r, "weight-ranges", t);
    say(log, "quantizers: %d layers, %d quantizers; weight ranges by %s%s", (*sim)->n_layers,
        (*sim)->n_quant, nnq_range_method_name(o->wrange),
        !r->wmse_used ? "" : r->wmse == NNQ_WMSE_OUTPUT ? " (output-aware)" : " (plain weight error)");
    if (o->adaround) {
        NNQ_TRY(need_data(calib, "AdaRound"));
        t = now();
        nnq_adaround_options ada = o->ada;
        ada.threads = o->threads;
        NNQ_TRY(nnq_ptq_adaround(*sim, g, calib, &ada, log));
        step_done(r, "adaround", t);
    }
    if (o->bias_correct == NNQ_BC_EMPIRICAL) {
        NNQ_TRY(need_data(calib, "empirical bias correction"));
        t = now();
        NNQ_TRY(nnq_ptq_bias_correct_empirical(*sim, g, calib, o->calib.n, o->threads,
                                               &r->bias_corrected, log));
        step_done(r, "bias-correct", t);
    } else if (o->bias_correct == NNQ_BC_ANALYTICAL && r->has_bn_stats) {
        t = now();
        NNQ_TRY(nnq_ptq_bias_correct_analytical(*sim, st, &r->bias_corrected, &r->bias_skipped,
                                                log));
        step_done(r, "bias-correct", t);
    }
    t = now();
    if (o->arange_bn) {
        int n_set = 0, n_missing = 0;
        NNQ_TRY(nnq_ptq_bn_ranges(*sim, st, o->in_lo, o->in_hi, &n_set, &n_missing, log));
    } else {
        NNQ_TRY(need_data(calib, "activation range setting"));
        nnq_calib_options c = o->calib;
        c.threads = o->threads;
        if (log) c.progress = log->progress;
        NNQ_TRY(nnq_qsim_calibrate(*sim, calib, &c));
        say(log, "activation ranges by %s (logits: %s) from %lld calibration images",
            nnq_range_method_name(c.method), nnq_range_method_name(c.logits_method),
            (long long)(c.n > 0 && c.n < calib->n ? c.n : calib->n));
    }
    step_done(r, "activation-ranges", t);
    return nnq_qsim_sync(*sim);
}

nnq_status nnq_ptq_run(const nnq_graph *model, const nnq_dataset *calib,
                       const nnq_ptq_options *o, const nnq_ptq_log *log, nnq_graph **float_out,
                       nnq_qsim **sim_out, nnq_ptq_report *report) {
    *float_out = NULL;
    *sim_out = NULL;
    memset(report, 0, sizeof *report);
    nnq_graph *g = NULL;
    nnq_qsim *sim = NULL;
    nnq_bn_stats st = {0};
    nnq_status s = nnq_graph_clone(model, &g);
    if (s == NNQ_OK) s = run(calib, o, log, g, &st, &sim, report);
    nnq_bn_stats_free(&st);
    if (s != NNQ_OK) {
        nnq_qsim_free(sim);
        nnq_graph_free(g);
        return s;
    }
    *float_out = g;
    *sim_out = sim;
    return NNQ_OK;
}
