/* Per-channel weight ranges after BatchNorm folding, before and after
 * cross-layer equalization: the picture of why one scale per tensor fails
 * on depthwise-separable networks and what CLE changes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "diag/diag_impl.h"
#include "ptq/float_layer.h"

/* Per output channel min and max of layer l's weight. */
static nnq_status channel_ranges(const nnq_graph *g, const nnq_flayer *l, float **lo, float **hi) {
    *lo = malloc(sizeof(float) * (size_t)l->out_ch);
    *hi = malloc(sizeof(float) * (size_t)l->out_ch);
    if (!*lo || !*hi) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for channel ranges");
    const float *w = nnq_f32(&g->values[l->w].t);
    const int64_t cg = l->in_ch / l->groups;
    for (int64_t o = 0; o < l->out_ch; o++) {
        float mn = INFINITY, mx = -INFINITY;
        const int64_t i0 = l->gemm ? 0 : o / (l->out_ch / l->groups) * cg;
        for (int64_t i = i0; i < i0 + cg; i++)
            for (int64_t t = 0; t < l->taps; t++) {
                const float v = w[nnq_flayer_at(l, o, i, t)];
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
        (*lo)[o] = mn;
        (*hi)[o] = mx;
    }
    return NNQ_OK;
}

/* Widest over narrowest channel range (max |w|), zero channels left out. */
static double spread(const float *lo, const float *hi, int n) {
    double mn = INFINITY, mx = 0;
    for (int i = 0; i < n; i++) {
        const double r = fmax(fabs(lo[i]), fabs(hi[i]));
        if (!(r > 0) || !isfinite(r)) continue;
        mn = fmin(mn, r);
        mx = fmax(mx, r);
    }
    return mx > 0 ? mx / mn : NAN;
}

nnq_status nnq_diag_cle_ranges(nnq_diag *d, const nnq_graph *model, const nnq_cle_options *cle) {
    nnq_graph *g = NULL;
    nnq_status st = nnq_graph_clone(model, &g);
    if (st == NNQ_OK) st = nnq_graph_prepare(g);
    if (st == NNQ_OK) st = nnq_ptq_fold_bn(g, NULL, NULL, NULL, NULL);
    if (st == NNQ_OK) st = nnq_graph_prepare(g);
    if (st == NNQ_OK && !(d->ranges = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *d->ranges)))
        st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for channel ranges");
    for (int n = 0; st == NNQ_OK && n < g->n_nodes; n++) {
        nnq_flayer l;
        if (!nnq_flayer_get(g, n, &l) || l.out_ch > (1 << 20)) continue;
        nnq_diag_ranges *r = &d->ranges[d->n_ranges++];
        char label[256];
        r->name = nnq_strdup(nnq_node_label(g, n, label, sizeof label));
        r->channels = (int)l.out_ch;
        if (!r->name) st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for channel ranges");
        if (st == NNQ_OK) st = channel_ranges(g, &l, &r->lo_before, &r->hi_before);
    }
    if (st == NNQ_OK) st = nnq_ptq_cle(g, NULL, cle, &d->cle_pairs, NULL, NULL);
    if (st == NNQ_OK) st = nnq_graph_prepare(g);
    for (int n = 0; st == NNQ_OK && n < g->n_nodes; n++) {
        nnq_flayer l;
        char label[256];
        if (!nnq_flayer_get(g, n, &l)) continue;
        nnq_node_label(g, n, label, sizeof label);
        for (int k = 0; k < d->n_ranges; k++) {
            nnq_diag_ranges *r = &d->ranges[k];
            if (strcmp(r->name, label) != 0 || r->channels != l.out_ch || r->lo_after) continue;
            st = channel_ranges(g, &l, &r->lo_after, &r->hi_after);
            break;
        }
    }
    for (int k = 0; st == NNQ_OK && k < d->n_ranges; k++) {
        nnq_diag_ranges *r = &d->ranges[k];
        r->spread_before = spread(r->lo_before, r->hi_before, r->channels);
        r->spread_after = r->lo_after ? spread(r->lo_after, r->hi_after, r->channels) : NAN;
    }
    nnq_graph_free(g);
    return st;
}
