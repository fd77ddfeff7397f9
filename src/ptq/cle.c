/* Pass 3: cross-layer equalization (../shared/QUANTIZATION.md §4, [DFQ]).
 *
 * For layer 1 → (positively homogeneous activation) → layer 2, channel i
 * of layer 1's output is scaled by 1/s_i and layer 2's input channel i by
 * s_i, s_i = sqrt(r1_i / r2_i), which leaves both with range
 * sqrt(r1_i r2_i). A depthwise layer is layer 2 of one pair and layer 1 of
 * the next on the same channels, so sweeping all pairs until the scales
 * settle equalizes conv → depthwise → conv triplets. A capped Relu's
 * per-channel cap u_i scales with its channel (u_i / s_i). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptq/float_layer.h"
#include "ptq/ptq.h"

void nnq_cle_options_default(nnq_cle_options *o) {
    o->max_iters = 100;
    o->tol = 1e-4;
    o->relu6 = NNQ_RELU6_CAP;
}

bool nnq_relu6_mode_parse(const char *s, nnq_relu6_mode *out) {
    static const char *const names[] = {"cap", "relu", "skip"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (nnq_relu6_mode)i;
            return true;
        }
    return false;
}

/* Clip(0, 6) → Relu: drop the bounds (inputs or attributes). Their
 * values go to bounds[0..1] (or -1) so dead Constant nodes can go. */
static nnq_status clip_to_relu(nnq_node *nd, int bounds[2]) {
    char *op = malloc(sizeof "Relu");
    if (!op) return nnq_fail(NNQ_ERR_NOMEM, "out of memory replacing ReLU6");
    memcpy(op, "Relu", sizeof "Relu");
    free(nd->op_type);
    nd->op_type = op;
    bounds[0] = nd->n_inputs > 1 ? nd->inputs[1] : -1;
    bounds[1] = nd->n_inputs > 2 ? nd->inputs[2] : -1;
    nd->n_inputs = 1;
    for (int i = 0; i < nd->n_attrs; i++) nnq_attr_release(&nd->attrs[i]);
    nd->n_attrs = 0;
    return NNQ_OK;
}

/* After clip_to_relu on pair p's activation: Min(relu, u) with u = 6 per
 * channel (a new initializer shaped to broadcast over layer 1's output),
 * read by layer 2 in place of the Relu's output. The pair becomes a capped
 * Relu pair. The Min node is appended; the caller re-sorts the graph. */
static nnq_status insert_cap(nnq_graph *g, nnq_fpair *p, double bound) {
    const int relu_out = g->nodes[p->act].outputs[0];
    const int out_rank = p->l1.gemm ? 2 : g->values[p->l1.w].t.rank;
    char want[NNQ_MAX_NAME + 16], name[NNQ_MAX_NAME + 16];
    int64_t dims[NNQ_MAX_RANK];
    dims[0] = p->l1.out_ch;
    for (int k = 1; k < out_rank - 1; k++) dims[k] = 1;
    nnq_tensor t = {0};
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, out_rank - 1, dims));
    for (int64_t i = 0; i < p->l1.out_ch; i++) nnq_f32(&t)[i] = (float)bound;
    snprintf(want, sizeof want, "%s_cap", g->values[relu_out].name);
    nnq_status s = nnq_graph_unique_name(g, want, name, sizeof name);
    int cap_v = -1, min_out, node;
    if (s == NNQ_OK) s = nnq_graph_add_initializer(g, name, &t, &cap_v);
    if (s != NNQ_OK) {
        nnq_tensor_release(&t);
        return s;
    }
    snprintf(want, sizeof want, "%s_capped", g->values[relu_out].name);
    NNQ_TRY(nnq_graph_unique_name(g, want, name, sizeof name));
    NNQ_TRY(nnq_graph_add_value(g, name, &min_out));
    nnq_node *l2 = &g->nodes[p->l2.node];
    for (int k = 0; k < l2->n_inputs; k++)
        if (l2->inputs[k] == relu_out) l2->inputs[k] = min_out;
    const int in[2] = {relu_out, cap_v};
    NNQ_TRY(nnq_graph_add_node(g, name, "Min", "", 2, in, 1, &min_out, &node));
    p->kind = NNQ_FACT_RELU_CAP;
    p->cap = node;
    p->cap_value = cap_v;
    return NNQ_OK;
}

/* Constant nodes whose outputs nothing reads any more (the replaced
 * bounds) go, then every value nothing uses. */
static nnq_status remove_dead(nnq_graph *g, const int *bounds, int n_bounds) {
    bool *remove = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *remove);
    if (!remove) return nnq_fail(NNQ_ERR_NOMEM, "out of memory cleaning up after CLE");
    for (int k = 0; k < n_bounds; k++) {
        int v = bounds[k];
        int p = v >= 0 ? g->values[v].producer : -1;
        if (p < 0 || strcmp(g->nodes[p].op_type, "Constant") != 0 || g->nodes[p].n_outputs != 1)
            continue;
        if (!nnq_graph_is_output(g, v) && nnq_graph_value_readers(g, v, NULL, 0) == 0)
            remove[p] = true;
    }
    nnq_status s = nnq_graph_remove_nodes(g, remove);
    free(remove);
    NNQ_TRY(s);
    return nnq_graph_prune_values(g, NULL);
}

/* Equalize one pair once; returns max |log s_i|. */
static double equalize(nnq_graph *g, const nnq_fpair *p, nnq_bn_entry *e) {
    float *b1 = p->l1.b >= 0 ? nnq_f32(&g->values[p->l1.b].t) : NULL;
    float *cap = p->cap_value >= 0 ? nnq_f32(&g->values[p->cap_value].t) : NULL;
    double worst = 0;
    for (int64_t i = 0; i < p->l1.out_ch; i++) {
        double r1 = nnq_flayer_out_range(g, &p->l1, i), r2 = nnq_flayer_in_range(g, &p->l2, i);
        if (!(r1 > 0) || !(r2 > 0) || !isfinite(r1) || !isfinite(r2)) continue; /* s = 1 */
        double s = sqrt(r1 / r2);
        nnq_flayer_scale_out(g, &p->l1, i, 1.0 / s);
        nnq_flayer_scale_in(g, &p->l2, i, s);
        if (b1) b1[i] = (float)(b1[i] / s);
        if (cap) cap[i] = (float)(cap[i] / s);
        if (e) {
            e->gamma[i] = (float)(e->gamma[i] / s);
            e->beta[i] = (float)(e->beta[i] / s);
        }
        worst = fmax(worst, fabs(log(s)));
    }
    return worst;
}

nnq_status nnq_ptq_cle(nnq_graph *g, nnq_bn_stats *st, const nnq_cle_options *o, int *n_pairs,
                       int *n_relu6, const nnq_ptq_log *log) {
    nnq_cle_options opt;
    if (o)
        opt = *o;
    else
        nnq_cle_options_default(&opt);
    FILE *fp = log ? log->fp : NULL;
    char l1[256], l2[256], la[256];
    nnq_fpair *pairs = NULL;
    nnq_bn_entry **entries = NULL;
    int *bounds = NULL;
    int n = 0, kept = 0, replaced = 0, sweeps = 0;
    double worst = 0;
    nnq_status s = nnq_flayer_pairs(g, &pairs, &n);
    if (s != NNQ_OK) goto fail;
    entries = calloc((size_t)(n ? n : 1), sizeof *entries);
    bounds = malloc(sizeof *bounds * 2 * (size_t)(n ? n : 1));
    if (!entries || !bounds) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory in CLE");
        goto fail;
    }
    /* Keep the pairs CLE may scale; their parameters become their own. */
    for (int k = 0; k < n; k++) {
        if (pairs[k].kind == NNQ_FACT_RELU6 && opt.relu6 == NNQ_RELU6_SKIP) continue;
        nnq_flayer a, b; /* re-read: an earlier pair may have cloned a weight */
        nnq_flayer_get(g, pairs[k].l1.node, &a);
        nnq_flayer_get(g, pairs[k].l2.node, &b);
        if ((s = nnq_flayer_make_private(g, &a, true)) != NNQ_OK) goto fail;
        if ((s = nnq_flayer_make_private(g, &b, true)) != NNQ_OK) goto fail;
        pairs[kept++] = pairs[k];
    }
    /* Cloning renamed inputs of layers that sit in two pairs: re-read them. */
    for (int k = 0; k < kept; k++) {
        nnq_flayer_get(g, pairs[k].l1.node, &pairs[k].l1);
        nnq_flayer_get(g, pairs[k].l2.node, &pairs[k].l2);
        nnq_bn_entry *e = nnq_bn_stats_find(st, g->values[pairs[k].mid].name);
        entries[k] = e && e->channels == pairs[k].l1.out_ch ? e : NULL;
        if (pairs[k].kind != NNQ_FACT_RELU6) continue;
        nnq_node_label(g, pairs[k].l1.node, l1, sizeof l1);
        nnq_node_label(g, pairs[k].l2.node, l2, sizeof l2);
        nnq_node_label(g, pairs[k].act, la, sizeof la);
        if ((s = clip_to_relu(&g->nodes[pairs[k].act], &bounds[2 * replaced])) != NNQ_OK) goto fail;
        replaced++;
        if (opt.relu6 == NNQ_RELU6_CAP) {
            if ((s = insert_cap(g, &pairs[k], 6.0)) != NNQ_OK) goto fail;
            if (fp)
                fprintf(fp, "cle: ReLU6 '%s' (between '%s' and '%s') is now Relu + a per-channel cap\n",
                        la, l1, l2);
        } else if (fp) {
            fprintf(fp, "cle: replaced ReLU6 '%s' (between '%s' and '%s') by Relu\n", la, l1, l2);
        }
    }
    for (sweeps = 0; sweeps < opt.max_iters && kept > 0;) {
        worst = 0;
        for (int k = 0; k < kept; k++) worst = fmax(worst, equalize(g, &pairs[k], entries[k]));
        sweeps++;
        if (worst < opt.tol) break;
    }
    if (kept > 0 && (s = remove_dead(g, bounds, 2 * replaced)) != NNQ_OK) goto fail;
    if (fp)
        fprintf(fp, "cle: equalized %d layer pair(s) in %d sweep(s) (last max |log s| %.3g)%s\n",
                kept, sweeps, worst,
                !replaced ? ""
                : opt.relu6 == NNQ_RELU6_CAP
                    ? "; ReLU6 kept exactly as Relu + per-channel cap (an exact rewrite)"
                    : "; ReLU6 replaced by Relu: the float function changes where activations exceeded 6");
fail:
    free(pairs);
    free(entries);
    free(bounds);
    if (n_pairs) *n_pairs = kept;
    if (n_relu6) *n_relu6 = replaced;
    return s;
}
