/* The weight layout of a quantized layer (ptq.h), shared by the passes
 * that walk weights per output and input channel. */
#include <stdint.h>
#include <string.h>

#include "ptq/ptq.h"

bool nnq_ptq_weight_geom(const nnq_graph *g, const nnq_qsim_layer *L, nnq_weight_geom *k) {
    const nnq_node *nd = &g->nodes[L->node];
    const nnq_tensor *w = &g->values[L->weight].t;
    memset(k, 0, sizeof *k);
    k->groups = 1;
    k->taps = 1;
    if (strcmp(nd->op_type, "Conv") == 0) {
        k->groups = nnq_node_attr_int(nd, "group", 1);
        if (w->rank < 3 || k->groups < 1 || w->dims[0] % k->groups) return false;
        k->out_ch = w->dims[0];
        k->cin = w->dims[1];
        for (int d = 2; d < w->rank; d++) k->taps *= w->dims[d];
        k->o_stride = k->cin * k->taps;
        k->i_stride = k->taps;
        return k->out_ch > 0 && k->cin * k->groups <= INT32_MAX;
    }
    const bool gemm = strcmp(nd->op_type, "Gemm") == 0;
    if ((!gemm && strcmp(nd->op_type, "MatMul") != 0) || w->rank != 2) return false;
    if (gemm && nnq_node_attr_int(nd, "transA", 0)) return false;
    const bool tb = gemm && nnq_node_attr_int(nd, "transB", 0);
    k->out_ch = tb ? w->dims[0] : w->dims[1];
    k->cin = tb ? w->dims[1] : w->dims[0];
    k->o_stride = tb ? k->cin : 1;
    k->i_stride = tb ? 1 : k->out_ch;
    k->out_axis = tb ? 0 : 1;
    k->last_axis = true;
    return k->out_ch > 0 && k->cin <= INT32_MAX;
}
