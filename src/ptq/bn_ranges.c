/* Data-free activation ranges (range method "bn"): each activation
 * quantizer's range from the BN statistics propagated through the graph
 * (act_stats.h): per channel beta ± 6|gamma| after a folded BN, carried
 * through the activation that follows (Relu → [0, ...], Clip → within its
 * bounds, HardSwish → ≥ -0.375), and united over channels. A channel with
 * gamma 0 is the point beta (a valid, zero-width part of the union).
 * NaN statistics get a warning: NaN channels are left out of the union,
 * and a value with no finite range keeps its quantizer as it was. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ptq/act_stats.h"
#include "ptq/ptq.h"

/* Channels of st with a non-finite gamma or beta; *first: the first such
 * entry's value name. */
static int64_t bad_stat_channels(const nnq_bn_stats *st, const char **first) {
    int64_t k = 0;
    for (int e = 0; st && e < st->n; e++)
        for (int c = 0; c < st->e[e].channels; c++)
            if (!isfinite(st->e[e].gamma[c]) || !isfinite(st->e[e].beta[c])) {
                if (!*first) *first = st->e[e].value;
                k++;
            }
    return k;
}

/* Channels of vs whose range is NaN (never meaningful, unlike +-inf). */
static int nan_channels(const nnq_vstat *vs) {
    int k = 0;
    for (int c = 0; c < vs->channels; c++) k += isnan(vs->lo[c]) || isnan(vs->hi[c]);
    return k;
}

static bool is_graph_input(const nnq_graph *g, int v) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    return false;
}

/* Whether quantizer i stays disabled when activations are on (the output
 * of a layer kept in float), as nnq_qsim_enable_role decides. */
static bool kept_float(const nnq_qsim *s, int i) {
    const nnq_qsim_quant *q = &s->quant[i];
    return q->layer >= 0 && s->layers[q->layer].keep_float && s->layers[q->layer].output_q == i;
}

nnq_status nnq_ptq_bn_ranges(nnq_qsim *s, const nnq_bn_stats *st, float in_lo, float in_hi,
                             int *n_set, int *n_missing, const nnq_ptq_log *log) {
    const float in_range[2] = {in_lo, in_hi};
    nnq_act_stats as;
    int set = 0, missing = 0, bad = 0;
    *n_set = *n_missing = 0;
    if (!(in_lo <= in_hi) || !isfinite(in_lo) || !isfinite(in_hi))
        return nnq_fail(NNQ_ERR_INVALID, "bn ranges: input range [%g, %g] is not a finite range",
                        in_lo, in_hi);
    NNQ_TRY(nnq_act_stats_compute(s->g, st, in_range, &as));
    bool *ok = calloc((size_t)(s->n_quant ? s->n_quant : 1), sizeof *ok);
    if (!ok) {
        nnq_act_stats_free(&as);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory setting bn ranges");
    }
    const char *first_missing = NULL, *first_bad = NULL;
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role != NNQ_QROLE_ACT || q->tied >= 0) continue;
        double lo, hi;
        const nnq_vstat *vs = nnq_act_stats_get(&as, q->input);
        if (is_graph_input(s->g, q->input)) {
            lo = in_lo;
            hi = in_hi;
        } else if (vs) {
            nnq_vstat_range(vs, &lo, &hi);
            if (nan_channels(vs) > 0) {
                if (!first_bad) first_bad = s->g->values[q->input].name;
                bad++;
            }
        } else {
            lo = hi = NAN;
        }
        if (!isfinite(lo) || !isfinite(hi) || fabs(lo) > 1e30 || fabs(hi) > 1e30) {
            if (!first_missing) first_missing = s->g->values[q->input].name;
            missing++;
            continue;
        }
        nnq_quantizer_set_range(&q->q, 0, (float)lo, (float)hi);
        ok[i] = true;
        set++;
    }
    /* Quantizers with a range (and those tied to one) take part, as after
     * calibration; the others keep their state. */
    for (int i = 0; i < s->n_quant; i++) {
        nnq_qsim_quant *q = &s->quant[i];
        if (q->role != NNQ_QROLE_ACT || kept_float(s, i)) continue;
        if (ok[q->tied >= 0 ? q->tied : i]) q->enabled = true;
    }
    free(ok);
    nnq_act_stats_free(&as);
    NNQ_TRY(nnq_qsim_sync(s));
    *n_set = set;
    *n_missing = missing;
    if (log && log->fp) {
        fprintf(log->fp, "bn ranges: %d activation range(s) from BN statistics, %d without", set,
                missing);
        if (first_missing)
            fprintf(log->fp, " (kept as they were; first: '%s')", first_missing);
        fputc('\n', log->fp);
    }
    const char *first_stat = NULL;
    const int64_t bad_stats = bad_stat_channels(st, &first_stat);
    if (bad_stats)
        nnq_ptq_warn(log, "bn ranges",
                     "%lld BN statistics channel(s) hold a non-finite gamma or beta (first: "
                     "'%s'); a NaN gamma counts as 0, a NaN beta leaves its channel out",
                     (long long)bad_stats, first_stat);
    if (bad)
        nnq_ptq_warn(log, "bn ranges",
                     "%d activation(s) have channels with NaN statistics (first: '%s'): "
                     "those channels are left out of the range (none left: the range is "
                     "kept as it was)", bad, first_bad);
    return NNQ_OK;
}
