/* Pass 4: high-bias absorption (../shared/QUANTIZATION.md §5, [DFQ]).
 *
 * Layer 1's pre-activation output x_i is modelled as N(beta_i, gamma_i^2)
 * from its folded BN. Where x_i >= c_i = max(0, beta_i - 3|gamma_i|),
 * relu(x_i) = relu(x_i - c_i) + c_i, so c moves out of layer 1's bias and
 * into layer 2's: b1 -= c, b2 += W2 c (a conv sums W2 over its taps). Exact
 * wherever x_i >= c_i and layer 2 reads no zero padding (a padded tap saw
 * 0 before and still does, but b2 now assumes it saw c). Behind a capped
 * Relu min(relu(x), u) the cap drops to u - c (c limited to u), since
 * min(relu(x), u) = min(relu(x - c), u - c) + c wherever x >= c. */
#include <math.h>
#include <stdlib.h>

#include "ptq/float_layer.h"
#include "ptq/ptq.h"

/* Move c (out_ch of layer 1) across pair p; false if c is all zero. */
static nnq_status absorb(nnq_graph *g, const nnq_fpair *p, nnq_bn_entry *e, bool *moved) {
    nnq_flayer l1, l2;
    nnq_flayer_get(g, p->l1.node, &l1);
    nnq_flayer_get(g, p->l2.node, &l2);
    int64_t ch = l1.out_ch;
    double *c = malloc(sizeof *c * (size_t)ch);
    if (!c) return nnq_fail(NNQ_ERR_NOMEM, "out of memory in bias absorption");
    *moved = false;
    float *cap = p->cap_value >= 0 ? nnq_f32(&g->values[p->cap_value].t) : NULL;
    for (int64_t i = 0; i < ch; i++) {
        c[i] = fmax(0.0, (double)e->beta[i] - 3.0 * fabs((double)e->gamma[i]));
        if (cap) c[i] = fmin(c[i], fmax(0.0, (double)cap[i]));
        if (c[i] > 0) *moved = true;
    }
    nnq_status s = NNQ_OK;
    float *b1, *b2;
    if (!*moved) goto done;
    if ((s = nnq_flayer_make_private(g, &l1, true)) != NNQ_OK) goto done;
    if ((s = nnq_flayer_bias(g, &l1, &b1)) != NNQ_OK) goto done;
    if ((s = nnq_flayer_bias(g, &l2, &b2)) != NNQ_OK) goto done;
    const float *w2 = nnq_f32(&g->values[l2.w].t);
    double alpha = l2.gemm ? nnq_node_attr_float(&g->nodes[l2.node], "alpha", 1.0f) : 1.0;
    for (int64_t i = 0; i < ch; i++) {
        if (c[i] == 0) continue;
        b1[i] = (float)((double)b1[i] - c[i]);
        if (cap) cap[i] = (float)((double)cap[i] - c[i]);
        e->beta[i] = (float)((double)e->beta[i] - c[i]);
    }
    for (int64_t o = 0; o < l2.out_ch; o++) {
        int64_t cg = l2.in_ch / l2.groups, i0 = l2.gemm ? 0 : o / (l2.out_ch / l2.groups) * cg;
        double acc = 0;
        for (int64_t i = i0; i < i0 + cg; i++) {
            if (c[i] == 0) continue;
            double wsum = 0;
            for (int64_t t = 0; t < l2.taps; t++) wsum += w2[nnq_flayer_at(&l2, o, i, t)];
            acc += wsum * c[i];
        }
        b2[o] = (float)((double)b2[o] + alpha * acc);
    }
done:
    free(c);
    return s;
}

nnq_status nnq_ptq_absorb_bias(nnq_graph *g, nnq_bn_stats *st, int *n_absorbed,
                               const nnq_ptq_log *log) {
    FILE *fp = log ? log->fp : NULL;
    char label[256];
    nnq_fpair *pairs = NULL;
    int n = 0, relu_pairs = 0, absorbed = 0, no_stats = 0;
    nnq_status s = nnq_flayer_pairs(g, &pairs, &n);
    if (s != NNQ_OK) goto fail;
    for (int k = 0; k < n; k++) {
        if (pairs[k].kind != NNQ_FACT_RELU && pairs[k].kind != NNQ_FACT_RELU_CAP) continue;
        relu_pairs++;
        nnq_bn_entry *e = nnq_bn_stats_find(st, g->values[pairs[k].mid].name);
        if (!e || e->channels != pairs[k].l1.out_ch) {
            no_stats++;
            if (fp)
                fprintf(fp, "bias-absorb: skipped '%s': no BN statistics for its output '%s'\n",
                        nnq_node_label(g, pairs[k].l1.node, label, sizeof label),
                        g->values[pairs[k].mid].name);
            continue;
        }
        bool moved;
        if ((s = absorb(g, &pairs[k], e, &moved)) != NNQ_OK) goto fail;
        absorbed += moved;
    }
    if (absorbed && (s = nnq_graph_prune_values(g, NULL)) != NNQ_OK) goto fail;
    if (fp)
        fprintf(fp,
                "bias-absorb: moved bias across %d of %d (capped) Relu-joined layer pair(s), %d skipped "
                "without BN statistics\n",
                absorbed, relu_pairs, no_stats);
fail:
    free(pairs);
    if (n_absorbed) *n_absorbed = absorbed;
    return s;
}
