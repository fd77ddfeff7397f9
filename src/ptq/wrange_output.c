/* Output-aware MSE weight ranges (wrange_output.h). */
#include "ptq/wrange_output.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/executor.h"
#include "ops/gemm.h"
#include "quant/range.h"

/* Bytes of intermediates kept per batch (keep_all) when choosing the
 * number of images per run, as bias_correct.c does. */
#define WR_KEEP_BUDGET ((size_t)64 << 20)
#define WR_MAX_BATCH 32

void nnq_chan_moments_free(nnq_chan_moments *m) {
    if (!m) return;
    free(m->mean);
    free(m->cov);
    memset(m, 0, sizeof *m);
}

/* Images per run so that the intermediates kept (keep_all) fit the budget. */
static nnq_status batch_size(const nnq_graph *g, const nnq_dataset *d, int *out) {
    return nnq_exec_images_per_run(g, d->c, d->h, d->w, WR_KEEP_BUDGET, WR_MAX_BATCH, out);
}

/* Running sums of one value besides m->mean (sum of x) and m->cov (sum of
 * x x^T, when kept): x^2 per channel, over `count` positions. */
typedef struct msum {
    double *sum2;  /* [channels] */
    double count;
    float *tile;   /* [channels^2] one sgemm's x x^T */
    float *pack;   /* a batch's values with channels outermost (grown on demand) */
    size_t pack_cap;
} msum;

/* Add t's per-channel sums (channels on axis 1, or on the last axis). The
 * first call fixes the channel count. */
static nnq_status accumulate(const nnq_graph *g, int v, bool last_axis, const nnq_tensor *t,
                             nnq_chan_moments *m, msum *ms, int threads) {
    const char *name = g->values[v].name ? g->values[v].name : "?";
    if (!t || !t->data || t->dtype != NNQ_DT_FLOAT || t->rank < 2)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "weight ranges: input '%s' is not a float tensor "
                        "of rank >= 2", name);
    const int axis = last_axis ? t->rank - 1 : 1;
    const int64_t ch = t->dims[axis];
    if (m->channels != ch)
        return nnq_fail(NNQ_ERR_SHAPE, "weight ranges: input '%s' has %lld channels, then %lld",
                        name, (long long)m->channels, (long long)ch);
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++) outer *= t->dims[k];
    for (int k = axis + 1; k < t->rank; k++) inner *= t->dims[k];
    if (outer > INT32_MAX || inner > INT32_MAX)
        return nnq_fail(NNQ_ERR_LIMIT, "weight ranges: input '%s' is too large", name);
    const float *x = nnq_f32(t);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++) {
            const float *p = x + (o * ch + c) * inner;
            double s1 = 0, s2 = 0;
            for (int64_t i = 0; i < inner; i++) {
                s1 += p[i];
                s2 += (double)p[i] * p[i];
            }
            m->mean[c] += s1;
            ms->sum2[c] += s2;
        }
    ms->count += (double)(outer * inner);
    if (!m->cov) return NNQ_OK;
    /* x x^T summed over positions in one sgemm: a Conv batch's [N, C, HW]
     * is packed as [C, N * HW] first. Float sums of one batch, added
     * into double. */
    const int c32 = (int)ch;
    const int64_t pos = outer * inner;
    if (pos > INT32_MAX) return nnq_fail(NNQ_ERR_LIMIT, "weight ranges: input '%s' is too large", name);
    if (inner > 1) {
        if (ms->pack_cap < (size_t)(pos * ch)) {
            free(ms->pack);
            ms->pack_cap = 0;
            if (!(ms->pack = malloc(sizeof *ms->pack * (size_t)(pos * ch))))
                return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the moments of '%s'", name);
            ms->pack_cap = (size_t)(pos * ch);
        }
        float *pk = ms->pack;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t c = 0; c < ch; c++)
                memcpy(pk + c * pos + o * inner, x + (o * ch + c) * inner, sizeof *pk * (size_t)inner);
        nnq_sgemm(false, true, c32, c32, (int)pos, 1.0f, pk, (int)pos, pk, (int)pos, 0.0f,
                  ms->tile, c32, threads);
    } else {
        nnq_sgemm(true, false, c32, c32, (int)outer, 1.0f, x, c32, x, c32, 0.0f, ms->tile, c32,
                  threads);
    }
    for (int64_t k = 0; k < ch * ch; k++) m->cov[k] += ms->tile[k];
    return NNQ_OK;
}

nnq_status nnq_chan_moments_collect(const nnq_graph *g, const nnq_dataset *d, int64_t n,
                                    int threads, const int *vals, const bool *last_axis,
                                    const bool *want_cov, int n_vals, nnq_chan_moments *out) {
    memset(out, 0, sizeof *out * (size_t)n_vals);
    if (g->n_inputs != 1)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "weight ranges: the model has %d inputs, need 1",
                        g->n_inputs);
    n = n > 0 && n < d->n ? n : d->n;
    if (n <= 0) return nnq_fail(NNQ_ERR_INVALID, "weight ranges: no calibration images");
    nnq_status st = NNQ_OK;
    nnq_exec *ex = NULL;
    msum *ms = calloc((size_t)(n_vals ? n_vals : 1), sizeof *ms);
    int batch = 1;
    const nnq_exec_options eo = {.threads = threads, .keep_all = true};
    if (!ms) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for input moments");
    if ((st = batch_size(g, d, &batch)) != NNQ_OK || (st = nnq_exec_create(g, &eo, &ex)) != NNQ_OK)
        goto fail;
    for (int64_t start = 0; start < n; start += batch) {
        nnq_tensor x;
        nnq_dataset_batch(d, start, start + batch <= n ? batch : n - start, &x);
        if ((st = nnq_exec_run(ex, &x)) != NNQ_OK) goto fail;
        for (int k = 0; k < n_vals; k++) {
            const nnq_tensor *t = nnq_exec_value(ex, vals[k]);
            if (!out[k].mean) { /* channels from the first batch */
                const int64_t ch = t && t->rank >= 2 ? t->dims[last_axis[k] ? t->rank - 1 : 1] : 0;
                const size_t c1 = (size_t)(ch > 0 ? ch : 1);
                out[k].channels = ch;
                out[k].mean = calloc(c1 * 3, sizeof(double)); /* mean, var, sum2 */
                bool ok = out[k].mean != NULL;
                if (ok && want_cov[k] && ch <= NNQ_WOUT_MAX_COV) {
                    out[k].cov = calloc(c1 * c1, sizeof(double));
                    ms[k].tile = malloc(c1 * c1 * sizeof(float));
                    ok = out[k].cov && ms[k].tile;
                }
                if (!ok) {
                    st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for input moments");
                    goto fail;
                }
                out[k].var = out[k].mean + ch;
                ms[k].sum2 = out[k].mean + 2 * ch;
            }
            st = accumulate(g, vals[k], last_axis[k], t, &out[k], &ms[k], threads);
            if (st != NNQ_OK) goto fail;
        }
    }
    for (int k = 0; k < n_vals; k++) {
        const int64_t ch = out[k].channels;
        const double cnt = ms[k].count;
        for (int64_t c = 0; c < ch; c++) {
            const double mu = out[k].mean[c] / cnt;
            const double v = ms[k].sum2[c] / cnt - mu * mu;
            out[k].mean[c] = mu;
            out[k].var[c] = v > 0 ? v : 0; /* rounding can leave a tiny negative */
        }
        for (int64_t a = 0; out[k].cov && a < ch; a++)
            for (int64_t b = 0; b < ch; b++) {
                double *p = &out[k].cov[a * ch + b];
                *p = a == b ? out[k].var[a] : *p / cnt - out[k].mean[a] * out[k].mean[b];
            }
    }
fail:
    nnq_exec_free(ex);
    for (int k = 0; k < n_vals; k++) {
        free(ms[k].tile);
        free(ms[k].pack);
    }
    free(ms);
    if (st != NNQ_OK)
        for (int k = 0; k < n_vals; k++) nnq_chan_moments_free(&out[k]);
    return st;
}

/* ---- per layer ---- */

/* The weights of outputs [o0, o1) laid out by slot (output, tap), each
 * slot holding the output's input channels, with their moments. */
typedef struct wset {
    float *w;
    double *mean, *var;
    int32_t *in, *out;
    int64_t *slot;
    int64_t n, n_slot;
} wset;

static void gather(const nnq_weight_geom *k, const float *w, const nnq_chan_moments *m, int64_t o0,
                   int64_t o1, wset *ws) {
    const int64_t per_group = k->out_ch / k->groups;
    ws->n = ws->n_slot = 0;
    ws->slot[0] = 0;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < k->taps; t++) {
            const int64_t c0 = o / per_group * k->cin;
            for (int64_t i = 0; i < k->cin; i++) {
                const int64_t j = ws->n++;
                ws->w[j] = w[o * k->o_stride + i * k->i_stride + t];
                ws->in[j] = (int32_t)(c0 + i);
                ws->out[j] = (int32_t)(o - o0);
                ws->mean[j] = m->mean[c0 + i];
                ws->var[j] = m->var[c0 + i];
            }
            ws->slot[++ws->n_slot] = ws->n;
        }
}

/* Output-aware ranges of layer L's weight quantizer q from its input
 * moments; *done false when the quantizer's channels are not the layer's
 * outputs (q left as plain MSE set it). Per-channel searches are
 * independent: they run in parallel, each thread with its own buffers. */
static nnq_status layer_ranges(const nnq_graph *g, const nnq_qsim_layer *L, nnq_quantizer *q,
                               const nnq_chan_moments *mom, int threads, bool *done) {
    *done = false;
    const nnq_tensor *wt = &g->values[L->weight].t;
    const int64_t numel = nnq_tensor_numel(wt);
    nnq_weight_geom k;
    if (!nnq_ptq_weight_geom(g, L, &k) || k.cin * k.groups != mom->channels || numel < 1 ||
        k.out_ch * k.cin * k.taps != numel || k.out_ch > INT32_MAX)
        return NNQ_OK;
    if (q->n > 1 && (q->n != k.out_ch || q->axis != k.out_axis)) return NNQ_OK;
    const int64_t n_sets = q->n > 1 ? k.out_ch : 1, per_set = q->n > 1 ? 1 : k.out_ch;
    const size_t elems = (size_t)(per_set * k.cin * k.taps), slots = (size_t)(per_set * k.taps);
    int nt = threads > 0 ? threads : omp_get_max_threads();
    if (nt > n_sets) nt = (int)n_sets;
    if (nt < 1) nt = 1;
    const size_t ntz = (size_t)nt;
    float *wbuf = malloc(ntz * elems * sizeof *wbuf);
    double *dbuf = malloc(ntz * elems * 2 * sizeof *dbuf);
    int32_t *ibuf = malloc(ntz * elems * 2 * sizeof *ibuf);
    int64_t *sbuf = malloc(ntz * (slots + 1) * sizeof *sbuf);
    nnq_status st = NNQ_OK;
    if (!wbuf || !dbuf || !ibuf || !sbuf) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory setting the weight ranges of '%s'", L->name);
        goto fail;
    }
    int failed = 0;
    #pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        const size_t t = (size_t)omp_get_thread_num();
        wset ws = {.w = wbuf + t * elems, .mean = dbuf + t * elems * 2, .in = ibuf + t * elems * 2,
                   .slot = sbuf + t * (slots + 1)};
        ws.var = ws.mean + elems;
        ws.out = ws.in + elems;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t c = 0; c < n_sets; c++) {
            if (failed) continue;
            gather(&k, nnq_f32(wt), mom, c * per_set, (c + 1) * per_set, &ws);
            const nnq_wout_stats so = {
                .mean = ws.mean, .var = ws.var, .cov = mom->cov, .n_in = (int32_t)mom->channels,
                .in = ws.in, .slot = ws.slot, .n_slot = ws.n_slot,
                .out = per_set > 1 ? ws.out : NULL, .n_out = (int32_t)per_set};
            float lo, hi;
            if (nnq_range_output_mse(ws.w, ws.n, &so, &q->cfg, &lo, &hi) == NNQ_OK)
                nnq_quantizer_set_range(q, (int)c, lo, hi);
            else
                failed = 1;
        }
    }
    /* The only failure is memory (the arguments are built valid above). */
    if (failed)
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory setting the weight ranges of '%s'", L->name);
    *done = st == NNQ_OK;
fail:
    free(wbuf);
    free(dbuf);
    free(ibuf);
    free(sbuf);
    return st;
}

nnq_status nnq_ptq_weight_ranges_output(nnq_qsim *s, const nnq_graph *float_graph,
                                        const nnq_dataset *d, int64_t n, int threads,
                                        int *n_output, int *n_plain, const nnq_ptq_log *log) {
    *n_output = *n_plain = 0;
    /* Plain MSE everywhere first: what any layer not handled below keeps. */
    NNQ_TRY(nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MSE));
    nnq_status st = NNQ_OK;
    int *layer_val = malloc(sizeof(int) * (size_t)(s->n_layers ? s->n_layers : 1));
    int *vals = malloc(sizeof(int) * (size_t)(s->n_layers ? s->n_layers : 1));
    bool *last = malloc(sizeof(bool) * (size_t)(s->n_layers ? s->n_layers : 1));
    bool *want_cov = calloc((size_t)(s->n_layers ? s->n_layers : 1), sizeof(bool));
    nnq_chan_moments *mom = NULL;
    int nv = 0, plain = 0;
    if (!layer_val || !vals || !last || !want_cov) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory setting weight ranges");
        goto done;
    }
    /* The input values to measure, each once (layers may share an input). */
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        nnq_weight_geom geo;
        layer_val[i] = -1;
        if (L->weight_q < 0 || L->input < 0 || L->input >= float_graph->n_values ||
            !nnq_ptq_weight_geom(s->g, L, &geo))
            continue;
        const bool la = geo.last_axis;
        int k = 0;
        while (k < nv && vals[k] != L->input) k++;
        if (k == nv) {
            vals[nv] = L->input;
            last[nv++] = la;
        } else if (last[k] != la) {
            continue; /* read on two different axes: leave this one plain */
        }
        layer_val[i] = k;
        want_cov[k] = want_cov[k] || geo.cin > 1; /* depthwise layers use only variances */
    }
    mom = calloc((size_t)(nv ? nv : 1), sizeof *mom);
    if (!mom) {
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory setting weight ranges");
        goto done;
    }
    if (nv > 0 && (st = nnq_chan_moments_collect(float_graph, d, n, threads, vals, last,
                                                 want_cov, nv, mom)) != NNQ_OK)
        goto done;
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        if (L->weight_q < 0) continue;
        bool set = false;
        if (layer_val[i] >= 0 &&
            (st = layer_ranges(s->g, L, &s->quant[L->weight_q].q, &mom[layer_val[i]], threads,
                               &set)) != NNQ_OK)
            goto done;
        if (set) (*n_output)++;
        else plain++;
    }
    *n_plain = plain;
    if ((st = nnq_qsim_sync(s)) != NNQ_OK) goto done;
    if (log && log->fp)
        fprintf(log->fp, "weight ranges (output-aware MSE): %d layer(s) from input moments over "
                "%lld calibration image(s), %d by plain weight MSE\n", *n_output,
                (long long)(n > 0 && n < d->n ? n : d->n), plain);
done:
    for (int k = 0; mom && k < nv; k++) nnq_chan_moments_free(&mom[k]);
    free(mom);
    free(layer_val);
    free(vals);
    free(last);
    free(want_cov);
    return st;
}
