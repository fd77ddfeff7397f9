/* Pass 1: BatchNorm folding (../shared/QUANTIZATION.md §3).
 *
 * For a BatchNormalization whose input comes from a Conv or Gemm that
 * nothing else reads, per output channel k with a_k = gamma_k / sqrt(var_k + eps):
 *   W~[k] = a_k W[k],  b~_k = beta_k + (b_k - mu_k) a_k   (in double).
 * The layer then writes the BN's output value, so every name downstream
 * stays; (gamma, beta) are kept under that name for the data-free passes. */
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
    double eps = nnq_node_attr_float(bn, "epsilon", 1e-5f);
    const float *var = nnq_f32(&g->values[bn->inputs[BN_VAR]].t);
    for (int64_t k = 0; k < l->out_ch; k++)
        if (!(var[k] + eps > 0)) return "a running variance plus epsilon is not positive";
    return NULL;
}

/* Fold BN node n into layer l and make l write the BN's output. */
static nnq_status fold_one(nnq_graph *g, int n, nnq_flayer *l, nnq_bn_stats *st) {
    float *b;
    NNQ_TRY(nnq_flayer_make_private(g, l, false));
    NNQ_TRY(nnq_flayer_bias(g, l, &b));
    nnq_node *bn = &g->nodes[n];
    const float *gamma = nnq_f32(&g->values[bn->inputs[BN_SCALE]].t);
    const float *beta = nnq_f32(&g->values[bn->inputs[BN_B]].t);
    const float *mean = nnq_f32(&g->values[bn->inputs[BN_MEAN]].t);
    const float *var = nnq_f32(&g->values[bn->inputs[BN_VAR]].t);
    double eps = nnq_node_attr_float(bn, "epsilon", 1e-5f);
    for (int64_t k = 0; k < l->out_ch; k++) {
        double a = (double)gamma[k] / sqrt((double)var[k] + eps);
        nnq_flayer_scale_out(g, l, k, a);
        b[k] = (float)((double)beta[k] + ((double)b[k] - (double)mean[k]) * a);
    }
    int y = bn->outputs[0];
    if (st) NNQ_TRY(nnq_bn_stats_add(st, g->values[y].name, (int)l->out_ch, gamma, beta));
    g->nodes[l->node].outputs[0] = y;
    g->values[y].producer = l->node;
    bn->outputs[0] = -1; /* detached: removing the BN must not clear y's producer */
    return NNQ_OK;
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
        s = fold_one(g, n, &l, st);
        if (s != NNQ_OK) goto fail;
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
