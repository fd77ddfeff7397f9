/* Pass 1: BatchNorm folding (../shared/QUANTIZATION.md §3).
 *
 * For a BatchNormalization whose input comes from a Conv or Gemm that
 * nothing else reads, per output channel k with a_k = gamma_k / sqrt(var_k + eps):
 *   W~[k] = a_k W[k],  b~_k = beta_k + (b_k - mu_k) a_k   (in double).
 * The layer then writes the BN's output value, so every name downstream
 * stays; (gamma, beta) are kept under that name for the data-free passes.
 * Degenerate statistics fold to a finite, defined layer (rules in ptq.h)
 * rather than to inf/NaN weights that would poison every scale after. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ptq/float_layer.h"
#include "ptq/ptq.h"

enum { BN_X, BN_SCALE, BN_B, BN_MEAN, BN_VAR, BN_INPUTS };

/* Why BN node n cannot fold into the layer producing its input (NULL if it
 * can); fills *l with that layer. */
static const char *why_not(const nnq_graph *g, int n, nnq_flayer *l) {
    const nnq_node *bn = &g->nodes[n];
    if (bn->n_inputs != BN_INPUTS) return "it does not have 5 inputs";
    if (nnq_node_attr_int(bn, "training_mode", 0) != 0) return "it uses batch statistics (training_mode=1)";
    for (int k = 1; k < bn->n_outputs; k++)
        if (bn->outputs[k] >= 0) return "it has running-statistics outputs";
    if (bn->n_outputs < 1 || bn->outputs[0] < 0) return "it has no output";
    int x = bn->inputs[BN_X];
    int p = x >= 0 ? g->values[x].producer : -1;
    if (p < 0 || !nnq_flayer_get(g, p, l) || g->nodes[p].outputs[0] != x)
        return "its input is not the output of a Conv or Gemm with constant weights";
    if (nnq_graph_is_output(g, x) || nnq_graph_value_readers(g, x, NULL, 0) != 1)
        return "the layer's output is also read elsewhere";
    for (int i = BN_SCALE; i < BN_INPUTS; i++) {
        int v = bn->inputs[i];
        if (v < 0 || !g->values[v].t.data || g->values[v].t.dtype != NNQ_DT_FLOAT)
            return "its parameters are not constant float32";
        if (nnq_tensor_numel(&g->values[v].t) != l->out_ch)
            return "its parameters do not match the layer's output channels";
    }
    return NULL;
}

/* Channels folded to constants, and negative variances taken as 0. */
typedef struct fold_issues {
    int64_t constant, negative_var;
    bool bad_eps;
} fold_issues;

/* Multiplier a and new bias of channel k: W~ = a W, b~ = nb. false: the
 * channel is degenerate and becomes the constant nb (a = 0). */
static bool fold_channel(double gamma, double beta, double mean, double var, double eps,
                         double bias, double w_range, double *a_out, double *nb_out,
                         fold_issues *is) {
    *a_out = 0;
    *nb_out = isfinite(beta) ? beta : 0;
    if (var < 0) {
        is->negative_var++;
        var = 0; /* rounding noise around 0, not information */
    }
    double d = var + eps;
    if (!isfinite(gamma) || !isfinite(beta) || !isfinite(mean) || !(d > 0) || !isfinite(d))
        return false;
    double a = gamma / sqrt(d), nb = beta + (bias - mean) * a;
    if (!isfinite(a) || !(fabs(a) * w_range <= FLT_MAX) || !(fabs(nb) <= FLT_MAX)) return false;
    *a_out = a;
    *nb_out = nb;
    return true;
}

/* Fold BN node n into layer l and make l write the BN's output. */
static nnq_status fold_one(nnq_graph *g, int n, nnq_flayer *l, nnq_bn_stats *st,
                           fold_issues *is) {
    float *b, *st_gamma = NULL, *st_beta = NULL;
    nnq_status s = NNQ_OK;
    NNQ_TRY(nnq_flayer_make_private(g, l, false));
    NNQ_TRY(nnq_flayer_bias(g, l, &b));
    nnq_node *bn = &g->nodes[n];
    const float *gamma = nnq_f32(&g->values[bn->inputs[BN_SCALE]].t);
    const float *beta = nnq_f32(&g->values[bn->inputs[BN_B]].t);
    const float *mean = nnq_f32(&g->values[bn->inputs[BN_MEAN]].t);
    const float *var = nnq_f32(&g->values[bn->inputs[BN_VAR]].t);
    double eps = nnq_node_attr_float(bn, "epsilon", 1e-5f);
    if (!(eps >= 0) || !isfinite(eps)) {
        is->bad_eps = true;
        eps = 0;
    }
    st_gamma = malloc(sizeof(float) * (size_t)l->out_ch);
    st_beta = malloc(sizeof(float) * (size_t)l->out_ch);
    if (!st_gamma || !st_beta) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory folding BatchNorm");
        goto fail;
    }
    for (int64_t k = 0; k < l->out_ch; k++) {
        double a, nb;
        bool ok = fold_channel(gamma[k], beta[k], mean[k], var[k], eps, b[k],
                               nnq_flayer_out_range(g, l, k), &a, &nb, is);
        nnq_flayer_scale_out(g, l, k, a);
        b[k] = (float)nb;
        /* A constant channel is N(b~, 0) for the data-free passes. */
        st_gamma[k] = ok ? gamma[k] : 0.0f;
        st_beta[k] = ok ? beta[k] : b[k];
        if (!ok) is->constant++;
    }
    int y = bn->outputs[0];
    if (st && (s = nnq_bn_stats_add(st, g->values[y].name, (int)l->out_ch, st_gamma,
                                    st_beta)) != NNQ_OK)
        goto fail;
    g->nodes[l->node].outputs[0] = y;
    g->values[y].producer = l->node;
    bn->outputs[0] = -1; /* detached: removing the BN must not clear y's producer */
fail:
    free(st_gamma);
    free(st_beta);
    return s;
}

nnq_status nnq_ptq_fold_bn(nnq_graph *g, nnq_bn_stats *st, int *n_folded, int *n_unfolded,
                           const nnq_ptq_log *log) {
    int folded = 0, unfolded = 0;
    FILE *fp = log ? log->fp : NULL;
    char label[256];
    nnq_status s = NNQ_OK;
    bool *remove = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *remove);
    if (!remove) return nnq_fail(NNQ_ERR_NOMEM, "out of memory folding BatchNorm");
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (strcmp(nd->op_type, "BatchNormalization") != 0 || (nd->domain[0] && strcmp(nd->domain, "ai.onnx")))
            continue;
        nnq_flayer l;
        const char *why = why_not(g, n, &l);
        if (why) {
            unfolded++;
            if (fp) fprintf(fp, "bn-fold: kept BatchNormalization '%s': %s\n",
                            nnq_node_label(g, n, label, sizeof label), why);
            continue;
        }
        fold_issues is = {0};
        s = fold_one(g, n, &l, st, &is);
        if (s != NNQ_OK) goto fail;
        if (is.constant || is.negative_var || is.bad_eps)
            nnq_ptq_warn(log, "bn-fold",
                         "BatchNormalization '%s': %lld channel(s) folded to a constant "
                         "(variance + epsilon not positive or not finite, non-finite "
                         "parameters, or weights overflowing float), %lld negative "
                         "variance(s) taken as 0%s",
                         nnq_node_label(g, n, label, sizeof label), (long long)is.constant,
                         (long long)is.negative_var,
                         is.bad_eps ? ", a negative or non-finite epsilon taken as 0" : "");
        remove[n] = true;
        folded++;
    }
    if (folded) {
        s = nnq_graph_remove_nodes(g, remove);
        if (s == NNQ_OK) s = nnq_graph_prune_values(g, NULL);
        if (s != NNQ_OK) goto fail;
    }
    if (fp) fprintf(fp, "bn-fold: folded %d BatchNormalization node(s) into Conv/Gemm, %d kept\n",
                    folded, unfolded);
fail:
    free(remove);
    if (n_folded) *n_folded = folded;
    if (n_unfolded) *n_unfolded = unfolded;
    return s;
}
