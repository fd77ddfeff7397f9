/* Lowering the other quantized patterns:
 *   DQ(a) + DQ(b) -> Add -> [Relu | Clip] -> Q          IP_ADD
 *   DQ(x_i) ... -> Concat -> Q                          IP_CONCAT
 *   DQ(x) -> MaxPool                                    IP_MAXPOOL (same grid)
 *   DQ(x) -> AveragePool / GlobalAveragePool -> Q       IP_AVGPOOL
 *   DQ(x) -> f -> [clamps] -> Q, f elementwise          IP_LUT (256 entries)
 *   Flatten / Reshape / Squeeze / Unsqueeze / Identity / Dropout: views
 * The chain of clamps after each (lower.c) becomes the operator's clamp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "core/requant.h"
#include "engine/lower_impl.h"
#include "ops/node_call.h"
#include "ops/window.h"

/* A quantized (LV_DEQ) input with one grid, else NULL with L->why set. */
static const ip_tensor *deq_input(lower_ctx *L, int v) {
    if (L->v[v].kind != LV_DEQ) {
        lw_float(L, "its input '%s' is not dequantized from a quantized tensor",
                 L->g->values[v].name);
        return NULL;
    }
    const ip_tensor *t = &L->p->t[L->v[v].t];
    if (!(t->scale > 0)) {
        lw_float(L, "its input '%s' has no single grid", L->g->values[v].name);
        return NULL;
    }
    return t;
}

static bool same_dims(const nnq_tensor *a, const nnq_tensor *b) {
    if (a->rank != b->rank) return false;
    for (int k = 0; k < a->rank; k++)
        if (a->dims[k] != b->dims[k]) return false;
    return true;
}

/* The program tensor for the chain's Q output, and mark the chain done. */
static nnq_status chain_output(lower_ctx *L, const lw_chain *c, int *t) {
    const int v = L->g->nodes[c->q].outputs[0];
    NNQ_TRY(lw_new_u8(L, v, &c->grid, t));
    lw_chain_consume(L, c);
    L->v[v] = (lv){LV_QINT, *t, -1};
    return NNQ_OK;
}

/* ---- Add ---- */

lw_result lw_add(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int av = nd->inputs[0], bv = nd->inputs[1], yv = nd->outputs[0];
    if (lw_const(L, av) || lw_const(L, bv)) return lw_lut(L, n);
    const ip_tensor *a = deq_input(L, av);
    if (!a) return LW_FLOAT;
    const ip_tensor *b = deq_input(L, bv);
    if (!b) return LW_FLOAT;
    if (!same_dims(&L->s1[av], &L->s1[bv]) || !same_dims(&L->s2[av], &L->s2[bv]) ||
        !same_dims(&L->s1[av], &L->s1[yv]))
        return lw_float(L, "its inputs differ in shape (broadcasting)");
    lw_chain ch;
    if (!lw_chain_find(L, yv, 0, 0, &ch)) return LW_FLOAT;
    /* One shift S for both: the larger ratio gets a 21-bit multiplier (so
     * the int32 sum cannot overflow: iprog_impl.h). */
    const double ra = (double)a->scale / ch.grid.scale, rb = (double)b->scale / ch.grid.scale;
    const double r = ra > rb ? ra : rb;
    int e;
    frexp(r, &e);
    int S = 21 - e;
    if (S > IP_ADD_SHIFT_MAX) S = IP_ADD_SHIFT_MAX;
    int64_t ma, mb;
    for (;; S--) {
        if (S < 1) return lw_float(L, "its input scales are 2^20 times its output's");
        ma = llround(ldexp(ra, S));
        mb = llround(ldexp(rb, S));
        if (ma <= IP_ADD_MULT_MAX && mb <= IP_ADD_MULT_MAX) break;
    }
    ip_add *p = malloc(sizeof *p);
    if (!p) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    *p = (ip_add){.za = a->zp, .zb = b->zp, .zy = ch.grid.zp, .ma = ma, .mb = mb, .shift = S,
                  .lo = ch.lo, .hi = ch.hi};
    const int in[2] = {L->v[av].t, L->v[bv].t};
    int t;
    nnq_status s = chain_output(L, &ch, &t);
    if (s != NNQ_OK) {
        free(p);
        return lw_err(L, s);
    }
    return lw_err(L, ip_add_op(L->p, IP_ADD, nd->name, 2, in, 1, &t, p, NULL));
}

/* ---- Concat ---- */

lw_result lw_concat(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int yv = nd->outputs[0];
    const int rank = L->s1[yv].rank;
    int64_t axis = nnq_node_attr_int(nd, "axis", 0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return lw_float(L, "axis out of range");
    if (axis == 0 && L->s1[yv].dims[0] != L->s2[yv].dims[0])
        return lw_float(L, "it concatenates along the batch");
    for (int k = 0; k < nd->n_inputs; k++) {
        if (nd->inputs[k] < 0) return lw_float(L, "an input is omitted");
        if (!deq_input(L, nd->inputs[k])) return LW_FLOAT;
    }
    lw_chain ch;
    if (!lw_chain_find(L, yv, 0, 0, &ch)) return LW_FLOAT;
    ip_requant *r = calloc(1, sizeof *r);
    int *in = malloc(sizeof(int) * (size_t)nd->n_inputs);
    if (r) r->r = calloc((size_t)nd->n_inputs, sizeof *r->r);
    if (!r || !r->r || !in) {
        ip_par_free(IP_CONCAT, r);
        free(in);
        return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    }
    r->axis = (int)axis;
    r->n = nd->n_inputs;
    r->zy = ch.grid.zp;
    r->lo = ch.lo;
    r->hi = ch.hi;
    nnq_status s = NNQ_OK;
    for (int k = 0; k < nd->n_inputs && s == NNQ_OK; k++) {
        const ip_tensor *x = &L->p->t[L->v[nd->inputs[k]].t];
        in[k] = L->v[nd->inputs[k]].t;
        r->r[k].z_in = x->zp;
        s = nnq_requant_make((double)x->scale / ch.grid.scale, &r->r[k].mult, &r->r[k].shift);
    }
    int t;
    if (s == NNQ_OK) s = chain_output(L, &ch, &t);
    if (s != NNQ_OK) {
        ip_par_free(IP_CONCAT, r);
        free(in);
        return lw_err(L, s);
    }
    s = ip_add_op(L->p, IP_CONCAT, nd->name, nd->n_inputs, in, 1, &t, r, NULL);
    free(in);
    return lw_err(L, s);
}

/* ---- pools ---- */

/* A 2-D window of pool node n over x [N, C, H, W] into q. */
static bool pool_window(lower_ctx *L, int n, const nnq_tensor *x, bool global, ip_pool *q) {
    const nnq_node *nd = &L->g->nodes[n];
    if (x->rank != 4) {
        lw_float(L, "only 2-D pools (rank-4 input) are lowered");
        return false;
    }
    if (global) {
        q->global = true;
        q->kh = x->dims[2];
        q->kw = x->dims[3];
        q->sh = q->sw = q->dh = q->dw = 1;
    } else {
        nnq_op_args a = {0};
        a.graph = L->g;
        a.node = nd;
        a.opset = (int)nnq_graph_opset(L->g);
        nnq_window w;
        if (nnq_window_init(&a, x, NULL, &w) != NNQ_OK) {
            lw_float(L, "%s", nnq_last_error());
            return false;
        }
        q->kh = w.kernel[0];
        q->kw = w.kernel[1];
        q->sh = w.stride[0];
        q->sw = w.stride[1];
        q->dh = w.dilation[0];
        q->dw = w.dilation[1];
        q->pt = w.pad_begin[0];
        q->pl = w.pad_begin[1];
        q->pb = w.pad_end[0];
        q->pr = w.pad_end[1];
        q->include_pad = nnq_node_attr_int(nd, "count_include_pad", 0) != 0;
    }
    q->taps = q->kh * q->kw;
    q->lo = 0;
    q->hi = 255;
    return true;
}

lw_result lw_maxpool(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int xv = nd->inputs[0], yv = nd->outputs[0];
    if (nd->n_outputs > 1 && nd->outputs[1] >= 0) return lw_float(L, "it also outputs indices");
    const ip_tensor *x = deq_input(L, xv);
    if (!x) return LW_FLOAT;
    ip_pool *q = calloc(1, sizeof *q);
    if (!q) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    if (!pool_window(L, n, &L->s1[xv], false, q)) {
        free(q);
        return LW_FLOAT;
    }
    /* max commutes with the (monotone) dequantization: same grid out */
    q->zx = q->zy = x->zp;
    q->same_grid = true;
    const lw_grid gr = {x->scale, x->zp, x->onnx_dtype == NNQ_DT_INT8 ? 128 : 0, x->onnx_dtype};
    const int in = L->v[xv].t;
    int t;
    nnq_status s = lw_new_u8(L, yv, &gr, &t);
    if (s != NNQ_OK) {
        ip_par_free(IP_MAXPOOL, q);
        return lw_err(L, s);
    }
    L->v[yv] = (lv){LV_DEQ, t, -1};
    return lw_err(L, ip_add_op(L->p, IP_MAXPOOL, nd->name, 1, &in, 1, &t, q, NULL));
}

lw_result lw_avgpool(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int xv = nd->inputs[0], yv = nd->outputs[0];
    const bool global = strcmp(nd->op_type, "GlobalAveragePool") == 0;
    const ip_tensor *x = deq_input(L, xv);
    if (!x) return LW_FLOAT;
    lw_chain ch;
    if (!lw_chain_find(L, yv, 0, 0, &ch)) return LW_FLOAT;
    ip_pool *q = calloc(1, sizeof *q);
    if (!q) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    if (!pool_window(L, n, &L->s1[xv], global, q)) {
        free(q);
        return LW_FLOAT;
    }
    q->zx = x->zp;
    q->zy = ch.grid.zp;
    q->lo = ch.lo;
    q->hi = ch.hi;
    q->same_grid = x->scale == ch.grid.scale && x->zp == ch.grid.zp;
    nnq_status s = NNQ_OK;
    if (!q->same_grid) {
        q->mult = malloc(sizeof(int32_t) * (size_t)(q->taps + 1));
        q->shift = malloc(sizeof(int32_t) * (size_t)(q->taps + 1));
        if (!q->mult || !q->shift) s = nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
        for (int64_t k = 0; k <= q->taps && s == NNQ_OK; k++)
            s = nnq_requant_make(k ? (double)x->scale / ((double)k * ch.grid.scale) : 0.0,
                                 &q->mult[k], &q->shift[k]);
    }
    const int in = L->v[xv].t;
    int t;
    if (s == NNQ_OK) s = chain_output(L, &ch, &t);
    if (s != NNQ_OK) {
        ip_par_free(IP_AVGPOOL, q);
        return lw_err(L, s);
    }
    return lw_err(L, ip_add_op(L->p, IP_AVGPOOL, nd->name, 1, &in, 1, &t, q, NULL));
}

/* ---- views ---- */

lw_result lw_view(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int xv = nd->inputs[0], yv = nd->outputs[0];
    for (int k = 1; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0 && lw_readers(L, nd->outputs[k]) > 0)
            return lw_float(L, "its second output is used");
    const lv s = L->v[xv];
    if (s.kind != LV_DEQ && s.kind != LV_QINT && s.kind != LV_INT32)
        return lw_float(L, "its input is a float tensor");
    const ip_tensor *x = &L->p->t[s.t];
    int t;
    nnq_status st = lw_new_tensor(L, yv, x->dtype, &t);
    if (st != NNQ_OK) return lw_err(L, st);
    ip_tensor *y = &L->p->t[t];
    x = &L->p->t[s.t]; /* the array may have moved */
    y->onnx_dtype = x->onnx_dtype;
    y->scale = x->scale;
    y->zp = x->zp;
    y->alias = ip_base(L->p, s.t);
    L->v[yv] = (lv){s.kind, t, -1};
    return LW_DONE;
}

/* ---- elementwise ops as tables ---- */

static bool unary_op(const char *op) {
    static const char *const ops[] = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid",
                                      "HardSwish", "Tanh"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0) return true;
    return false;
}

/* table[i] = clamp(Q_y(f(s_x (i - z_x))), lo, hi) for the 256 codes i,
 * computed by the node's own float op, exactly as the float executor
 * computes DQ -> f -> Q for that code. */
static nnq_status build_table(lower_ctx *L, int n, int xv, const ip_tensor *x, const lw_chain *c,
                              ip_lut *lut) {
    const nnq_graph *g = L->g;
    const nnq_node *nd = &g->nodes[n];
    nnq_status s = NNQ_OK;
    nnq_tensor *vals = calloc((size_t)g->n_values, sizeof *vals);
    nnq_tensor xin = {0};
    if (!vals) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
    const int64_t dims[1] = {256};
    if ((s = nnq_tensor_alloc(&xin, NNQ_DT_FLOAT, 1, dims)) != NNQ_OK) goto done;
    for (int i = 0; i < 256; i++) nnq_f32(&xin)[i] = nnq_dequantize_f((float)i, x->scale, (float)x->zp);
    for (int k = 0; k < nd->n_inputs; k++) {
        const int v = nd->inputs[k];
        if (v < 0) continue;
        vals[v] = v == xv ? xin : g->values[v].t;
        vals[v].owns = false;
    }
    for (int k = 0; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0) vals[nd->outputs[k]].rank = -1;
    nnq_node_call call;
    if ((s = nnq_node_call_init(&call, g, n, vals, 1)) != NNQ_OK) goto done;
    if ((s = call.def->infer(&call.args)) != NNQ_OK) goto done;
    nnq_tensor *y = call.out[0];
    if (y->dtype != NNQ_DT_FLOAT || nnq_tensor_numel(y) != 256) {
        s = nnq_fail(NNQ_ERR_SHAPE, "%s '%s': table of %lld values", nd->op_type, nd->name,
                     (long long)nnq_tensor_numel(y));
        goto done;
    }
    if ((s = nnq_tensor_alloc(y, y->dtype, y->rank, y->dims)) != NNQ_OK) goto done;
    if (call.def->scratch_size && call.def->scratch_size(&call.args) > 0) {
        s = nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%s': needs scratch", nd->op_type, nd->name);
        goto done;
    }
    if ((s = call.def->forward(&call.args)) != NNQ_OK) goto done;
    for (int i = 0; i < 256; i++) {
        const int32_t q = lw_quantize(&c->grid, nnq_f32(y)[i]);
        lut->table[i] = (uint8_t)(q < c->lo ? c->lo : (q > c->hi ? c->hi : q));
    }
done:
    for (int k = 0; k < nd->n_outputs; k++)
        if (nd->outputs[k] >= 0) nnq_tensor_release(&vals[nd->outputs[k]]);
    nnq_tensor_release(&xin);
    free(vals);
    return s;
}

lw_result lw_lut(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int yv = nd->outputs[0];
    int xv = -1;
    if (unary_op(nd->op_type)) {
        xv = nd->inputs[0];
        for (int k = 1; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0 && !lw_const(L, nd->inputs[k]))
                return lw_float(L, "its bounds are not constant");
    } else { /* a binary op with one constant scalar */
        if (nd->n_inputs != 2) return lw_float(L, "not a binary op");
        const int a = nd->inputs[0], b = nd->inputs[1];
        const int cv = lw_const(L, a) ? a : b;
        xv = cv == a ? b : a;
        if (lw_const(L, xv) || !lw_const(L, cv) || nnq_tensor_numel(lw_const(L, cv)) != 1)
            return lw_float(L, "it combines two tensors that are not both quantized, and no "
                               "input is a constant scalar");
    }
    if (L->v[xv].kind == LV_FLOAT && (strcmp(nd->op_type, "Relu") == 0 ||
                                      strcmp(nd->op_type, "Clip") == 0 ||
                                      strcmp(nd->op_type, "Min") == 0 ||
                                      strcmp(nd->op_type, "Max") == 0))
        return lw_clamp_quantize(L, n, xv); /* e.g. the input's Clip before a 4-bit Q */
    const ip_tensor *x = deq_input(L, xv);
    if (!x) return LW_FLOAT;
    if (L->s1[yv].rank != L->s1[xv].rank || nnq_tensor_numel(&L->s1[yv]) != nnq_tensor_numel(&L->s1[xv]))
        return lw_float(L, "its output has another shape than its input");
    lw_chain ch;
    if (!lw_chain_find(L, yv, 0, 0, &ch)) return LW_FLOAT;
    ip_lut *lut = malloc(sizeof *lut);
    if (!lut) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    nnq_status s = build_table(L, n, xv, x, &ch, lut);
    const int in = L->v[xv].t;
    int t;
    if (s == NNQ_OK) s = chain_output(L, &ch, &t);
    if (s != NNQ_OK) {
        free(lut);
        return lw_err(L, s);
    }
    return lw_err(L, ip_add_op(L->p, IP_LUT, nd->name, 1, &in, 1, &t, lut, NULL));
}
