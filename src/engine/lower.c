/* Lowering a quantized graph to an integer program: the driver (one pass
 * over the sorted nodes, a handler per op type), value states, shapes,
 * the activation chain folded into output clamps, the float fallback and
 * the graph's inputs and outputs. Patterns: lower_linear.c, lower_ops.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qmath.h"
#include "core/requant.h"
#include "engine/lower_impl.h"
#include "ops/executor.h"
#include "ops/node_call.h"

/* ---- small helpers ---- */

lw_result lw_float(lower_ctx *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->why, sizeof L->why, fmt, ap);
    va_end(ap);
    return LW_FLOAT;
}

lw_result lw_err(lower_ctx *L, nnq_status s) {
    L->err = s;
    return s == NNQ_OK ? LW_DONE : LW_ERROR;
}

const nnq_tensor *lw_const(const lower_ctx *L, int v) {
    if (v < 0 || v >= L->g->n_values) return NULL;
    const nnq_tensor *t = &L->g->values[v].t;
    return t->data ? t : NULL;
}

bool lw_const_scalar(const lower_ctx *L, int v, double *out) {
    const nnq_tensor *t = lw_const(L, v);
    if (!t || nnq_tensor_numel(t) != 1) return false;
    if (t->dtype == NNQ_DT_FLOAT || t->dtype == NNQ_DT_DOUBLE || t->dtype == NNQ_DT_FLOAT16)
        *out = nnq_tensor_get_float(t, 0);
    else if (nnq_dtype_is_integer(t->dtype))
        *out = (double)nnq_tensor_get_int(t, 0);
    else
        return false;
    return true;
}

int lw_readers(const lower_ctx *L, int v) { return L->nread[v]; }

int lw_only_reader(const lower_ctx *L, int v) {
    if (L->nread[v] != 1) return -1;
    return L->reader[v]; /* -1 when the one "reader" is the graph output */
}

bool lw_const_dq(const lower_ctx *L, int v, lw_cdq *out) {
    const nnq_graph *g = L->g;
    if (v < 0) return false;
    const int n = g->values[v].producer;
    if (n < 0) return false;
    const nnq_node *nd = &g->nodes[n];
    if (strcmp(nd->op_type, "DequantizeLinear") != 0 || nd->n_inputs < 2) return false;
    const nnq_tensor *q = lw_const(L, nd->inputs[0]), *s = lw_const(L, nd->inputs[1]);
    const nnq_tensor *z = nd->n_inputs > 2 && nd->inputs[2] >= 0 ? lw_const(L, nd->inputs[2]) : NULL;
    if (!q || !s || s->dtype != NNQ_DT_FLOAT) return false;
    if (nd->n_inputs > 2 && nd->inputs[2] >= 0 && !z) return false;
    if (q->dtype != NNQ_DT_INT8 && q->dtype != NNQ_DT_UINT8 && q->dtype != NNQ_DT_INT32) return false;
    if (z && (z->dtype != q->dtype || nnq_tensor_numel(z) != nnq_tensor_numel(s))) return false;
    out->q = q;
    out->scale = s;
    out->zp = z;
    out->n = nnq_tensor_numel(s);
    out->axis = -1;
    if (s->rank == 1 && (out->n > 1 || nnq_node_attr(nd, "axis"))) {
        int64_t axis = nnq_node_attr_int(nd, "axis", 1);
        if (axis < 0) axis += q->rank;
        if (axis < 0 || axis >= q->rank || q->dims[axis] != out->n) return false;
        out->axis = (int)axis;
        if (out->n == 1) out->axis = -1; /* one channel: per tensor */
    } else if (out->n != 1) {
        return false;
    }
    return true;
}

int32_t lw_quantize(const lw_grid *g, double x) {
    const int32_t z = g->zp - g->shift;
    const int32_t qmin = g->dtype == NNQ_DT_INT8 ? -128 : 0, qmax = qmin + 255;
    return nnq_quantize_i((float)x, g->scale, z, qmin, qmax) + g->shift;
}

bool lw_grid_of(lower_ctx *L, int scale_v, int zp_v, lw_grid *out) {
    const nnq_tensor *s = lw_const(L, scale_v);
    if (!s || s->dtype != NNQ_DT_FLOAT || nnq_tensor_numel(s) != 1) {
        lw_float(L, "its scale is not one constant float");
        return false;
    }
    const float scale = nnq_f32(s)[0];
    if (!(scale > 0) || !isfinite(scale)) {
        lw_float(L, "scale %g is not positive and finite", (double)scale);
        return false;
    }
    out->scale = scale;
    out->dtype = NNQ_DT_UINT8;
    out->shift = 0;
    out->zp = 0;
    if (zp_v >= 0) {
        const nnq_tensor *z = lw_const(L, zp_v);
        if (!z || nnq_tensor_numel(z) != 1 ||
            (z->dtype != NNQ_DT_UINT8 && z->dtype != NNQ_DT_INT8)) {
            lw_float(L, "its zero point is not one constant uint8 or int8");
            return false;
        }
        out->dtype = z->dtype;
        out->shift = z->dtype == NNQ_DT_INT8 ? 128 : 0;
        out->zp = (int32_t)nnq_tensor_get_int(z, 0) + out->shift;
    }
    return true;
}

/* ---- tensors ---- */

nnq_status lw_new_tensor(lower_ctx *L, int v, nnq_dtype dtype, int *out) {
    const nnq_tensor *a = &L->s1[v], *b = &L->s2[v];
    const char *name = L->g->values[v].name;
    if (a->rank < 0 || b->rank != a->rank)
        return nnq_fail(NNQ_ERR_SHAPE, "value '%s' has no inferred shape", name);
    bool same = true, batch = a->rank > 0 && a->dims[0] == 1 && b->dims[0] == 2;
    for (int k = 0; k < a->rank; k++) {
        same = same && a->dims[k] == b->dims[k];
        if (k > 0) batch = batch && a->dims[k] == b->dims[k];
    }
    if (!same && !batch)
        return nnq_fail(NNQ_ERR_UNSUPPORTED,
                        "value '%s': its shape depends on the batch size other than through its "
                        "first dim; the integer engine needs the batch first",
                        name);
    int t;
    NNQ_TRY(ip_add_tensor(L->p, name, dtype, &t));
    ip_tensor *pt = &L->p->t[t];
    pt->rank = a->rank;
    memcpy(pt->dims, a->dims, sizeof(int64_t) * (size_t)a->rank);
    pt->batched = !same;
    *out = t;
    return NNQ_OK;
}

nnq_status lw_new_u8(lower_ctx *L, int v, const lw_grid *g, int *out) {
    NNQ_TRY(lw_new_tensor(L, v, NNQ_DT_UINT8, out));
    ip_tensor *t = &L->p->t[*out];
    t->onnx_dtype = g->dtype;
    t->scale = g->scale;
    t->zp = g->zp;
    return NNQ_OK;
}

static nnq_status new_qparams(int64_t n, ip_qparams **out) {
    ip_qparams *q = calloc(1, sizeof *q);
    if (q) {
        q->n = n;
        q->scale = malloc(sizeof(float) * (size_t)n);
        q->zp = malloc(sizeof(int32_t) * (size_t)n);
    }
    if (!q || !q->scale || !q->zp) {
        ip_par_free(IP_QUANTIZE, q);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
    }
    q->axis = -1;
    q->qmin = 0;
    q->qmax = 255;
    *out = q;
    return NNQ_OK;
}

nnq_status lw_float_of(lower_ctx *L, int v, int *out) {
    lv *s = &L->v[v];
    const char *name = L->g->values[v].name;
    if (s->kind == LV_FLOAT) {
        *out = s->t;
        return NNQ_OK;
    }
    if (s->kind != LV_DEQ)
        return nnq_fail(NNQ_ERR_UNSUPPORTED,
                        "value '%s' is %s; a float op of the integer program cannot read it",
                        name, s->kind == LV_INT32 ? "an int32 accumulator" : "a raw integer tensor");
    if (s->fl >= 0) {
        *out = s->fl;
        return NNQ_OK;
    }
    const ip_tensor *q = &L->p->t[s->t];
    ip_qparams *qp;
    NNQ_TRY(new_qparams(1, &qp));
    qp->scale[0] = q->scale;
    qp->zp[0] = q->zp;
    int t;
    nnq_status st = lw_new_tensor(L, v, NNQ_DT_FLOAT, &t);
    if (st != NNQ_OK) {
        ip_par_free(IP_DEQUANTIZE, qp);
        return st;
    }
    const int in = s->t;
    NNQ_TRY(ip_add_op(L->p, IP_DEQUANTIZE, name, 1, &in, 1, &t, qp, NULL));
    s->fl = t;
    *out = t;
    return NNQ_OK;
}

/* ---- the activation chain ---- */

/* Bounds [a, b] a chain node clamps to; per-channel b in *bch (NULL: b). */
static bool chain_bounds(lower_ctx *L, int node, int in_v, double *a, double *b,
                         const nnq_tensor **bch) {
    const nnq_node *nd = &L->g->nodes[node];
    *a = -INFINITY;
    *b = INFINITY;
    *bch = NULL;
    const char *op = nd->op_type;
    if (strcmp(op, "Relu") == 0) {
        *a = 0;
        return nd->n_inputs == 1;
    }
    if (strcmp(op, "Clip") == 0) {
        if (nd->inputs[0] != in_v) return false;
        for (int k = 1; k < nd->n_inputs && k < 3; k++) {
            if (nd->inputs[k] < 0) continue;
            if (!lw_const_scalar(L, nd->inputs[k], k == 1 ? a : b)) return false;
        }
        if (nnq_node_attr(nd, "min")) *a = nnq_node_attr_float(nd, "min", -INFINITY);
        if (nnq_node_attr(nd, "max")) *b = nnq_node_attr_float(nd, "max", INFINITY);
        return nd->n_inputs <= 3;
    }
    const bool is_min = strcmp(op, "Min") == 0, is_max = strcmp(op, "Max") == 0;
    if ((!is_min && !is_max) || nd->n_inputs != 2) return false;
    const int other = nd->inputs[0] == in_v ? nd->inputs[1] : nd->inputs[0];
    if (other == in_v) return false;
    const nnq_tensor *c = lw_const(L, other);
    if (!c || c->dtype != NNQ_DT_FLOAT) return false;
    if (nnq_tensor_numel(c) == 1) {
        *(is_min ? b : a) = nnq_f32(c)[0];
        return true;
    }
    if (!is_min) return false; /* a per-channel lower bound: not one clamp */
    *bch = c;
    return true;
}

/* Does constant c vary only along dim ch_axis of a rank-`rank` value, with
 * `channels` elements? (right-aligned broadcasting) */
static bool per_channel_const(const nnq_tensor *c, int rank, int ch_axis, int64_t channels) {
    if (channels <= 0 || nnq_tensor_numel(c) != channels || c->rank > rank) return false;
    for (int k = 0; k < c->rank; k++) {
        const int d = rank - c->rank + k;
        if (c->dims[k] != (d == ch_axis ? channels : 1)) return false;
    }
    return true;
}

static uint8_t clamp8(int32_t v, int32_t lo, int32_t hi) {
    return (uint8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* The chain from value v; first >= 0: node `first` (reading v) is its
 * first element. */
static bool chain_find(lower_ctx *L, int v, int first, int64_t channels, int ch_axis,
                       lw_chain *c) {
    const nnq_graph *g = L->g;
    memset(c, 0, sizeof *c);
    c->q = -1;
    int cur = v;
    if (first >= 0) {
        double a, b;
        const nnq_tensor *bch;
        if (!chain_bounds(L, first, v, &a, &b, &bch) || g->nodes[first].n_outputs != 1) {
            lw_float(L, "it is not a clamp with constant bounds");
            return false;
        }
        if (bch && !per_channel_const(bch, L->s1[v].rank, ch_axis, channels)) {
            lw_float(L, "its bound is neither a scalar nor per output channel");
            return false;
        }
        c->nodes[c->n++] = first;
        cur = g->nodes[first].outputs[0];
    }
    for (;;) {
        const int r = lw_only_reader(L, cur);
        if (r < 0) {
            lw_float(L, "its output '%s' %s, so no QuantizeLinear takes it straight to a grid",
                     g->values[cur].name,
                     L->nread[cur] == 0 ? "is never read"
                     : nnq_graph_is_output(g, cur) ? "is a graph output"
                                                   : "has several readers");
            return false;
        }
        const nnq_node *nd = &g->nodes[r];
        if (L->done[r]) {
            lw_float(L, "its output is read by a node another pattern took");
            return false;
        }
        if (strcmp(nd->op_type, "QuantizeLinear") == 0 && nd->inputs[0] == cur) {
            c->q = r;
            break;
        }
        double a, b;
        const nnq_tensor *bch;
        if (c->n == LW_CHAIN_MAX || !chain_bounds(L, r, cur, &a, &b, &bch) || nd->n_outputs != 1) {
            lw_float(L, "its output goes to a %s node '%s', not to a QuantizeLinear (through "
                     "Relu, Clip or Min/Max with constant bounds)",
                     nd->op_type, nd->name ? nd->name : "");
            return false;
        }
        if (bch && !per_channel_const(bch, L->s1[cur].rank, ch_axis, channels)) {
            lw_float(L, "the bound of %s node '%s' is neither a scalar nor per output channel",
                     nd->op_type, nd->name ? nd->name : "");
            return false;
        }
        c->nodes[c->n++] = r;
        cur = nd->outputs[0];
    }
    const nnq_node *q = &g->nodes[c->q];
    if (q->n_inputs < 2 || !lw_grid_of(L, q->inputs[1], q->n_inputs > 2 ? q->inputs[2] : -1, &c->grid))
        return false;
    /* Compose the clamps in storage: after clamp(lo1, hi1), clamp(a, b)
     * gives clamp(clamp(lo1, a, b), clamp(hi1, a, b)). */
    int32_t lo = 0, hi = 255;
    int32_t *hch = NULL;
    cur = v;
    for (int i = 0; i < c->n; i++) {
        double a, b;
        const nnq_tensor *bch;
        chain_bounds(L, c->nodes[i], cur, &a, &b, &bch);
        const int32_t qa = lw_quantize(&c->grid, a);
        if (!bch) {
            const int32_t qb = lw_quantize(&c->grid, b);
            lo = clamp8(lo, qa, qb);
            hi = clamp8(hi, qa, qb);
            for (int64_t k = 0; hch && k < channels; k++) hch[k] = clamp8(hch[k], qa, qb);
        } else {
            if (!hch) {
                if (!(hch = malloc(sizeof(int32_t) * (size_t)channels))) {
                    lw_float(L, "out of memory");
                    return false;
                }
                for (int64_t k = 0; k < channels; k++) hch[k] = hi;
            }
            for (int64_t k = 0; k < channels; k++) {
                const int32_t qb = lw_quantize(&c->grid, nnq_f32(bch)[k]);
                if (qb < lo) { /* the cap is below the lower clamp: a per-channel lo */
                    free(hch);
                    lw_float(L, "channel %lld of %s node '%s' caps below the lower clamp",
                             (long long)k, g->nodes[c->nodes[i]].op_type,
                             g->nodes[c->nodes[i]].name);
                    return false;
                }
                hch[k] = clamp8(hch[k], qa, qb);
            }
        }
        cur = g->nodes[c->nodes[i]].outputs[0];
    }
    c->lo = (uint8_t)lo;
    c->hi = (uint8_t)hi;
    if (hch) {
        c->hi_ch = malloc((size_t)channels);
        if (!c->hi_ch) {
            free(hch);
            lw_float(L, "out of memory");
            return false;
        }
        for (int64_t k = 0; k < channels; k++) c->hi_ch[k] = (uint8_t)(hch[k] < hi ? hch[k] : hi);
        free(hch);
    }
    return true;
}

bool lw_chain_find(lower_ctx *L, int v, int64_t channels, int ch_axis, lw_chain *c) {
    return chain_find(L, v, -1, channels, ch_axis, c);
}

bool lw_chain_from(lower_ctx *L, int node, int v, lw_chain *c) {
    return chain_find(L, v, node, 0, 0, c);
}

void lw_chain_consume(lower_ctx *L, const lw_chain *c) {
    for (int i = 0; i < c->n; i++) L->done[c->nodes[i]] = true;
    L->done[c->q] = true;
}

/* ---- Q and DQ nodes that no pattern consumed ---- */

lw_result lw_quantize_node(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int x = nd->inputs[0], y = nd->outputs[0];
    const lv *s = &L->v[x];
    const nnq_tensor *sc = lw_const(L, nd->inputs[1]);
    const int zv = nd->n_inputs > 2 ? nd->inputs[2] : -1;
    const nnq_tensor *zt = zv >= 0 ? lw_const(L, zv) : NULL;
    if (!sc || sc->dtype != NNQ_DT_FLOAT || (zv >= 0 && !zt))
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                  "QuantizeLinear '%s': scale and zero point must be constants for "
                                  "the integer engine", nd->name));
    const int64_t nch = nnq_tensor_numel(sc);
    if (s->kind == LV_FLOAT) {
        const nnq_dtype dt = zt ? zt->dtype : NNQ_DT_UINT8;
        if ((dt != NNQ_DT_UINT8 && dt != NNQ_DT_INT8) || (zt && nnq_tensor_numel(zt) != nch))
            return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                      "QuantizeLinear '%s': zero point must be uint8 or int8 like "
                                      "its scale", nd->name));
        const int32_t shift = dt == NNQ_DT_INT8 ? 128 : 0;
        ip_qparams *qp;
        LW_TRY(L, new_qparams(nch, &qp));
        if (nch > 1 || (sc->rank == 1 && nnq_node_attr(nd, "axis"))) {
            int64_t axis = nnq_node_attr_int(nd, "axis", 1);
            if (axis < 0) axis += L->s1[x].rank;
            if (axis < 0 || axis >= L->s1[x].rank || L->s1[x].dims[axis] != nch) {
                ip_par_free(IP_QUANTIZE, qp);
                return lw_err(L, nnq_fail(NNQ_ERR_SHAPE, "QuantizeLinear '%s': %lld scales do not "
                                          "fit axis %lld", nd->name, (long long)nch, (long long)axis));
            }
            qp->axis = nch > 1 ? (int)axis : -1;
        }
        for (int64_t c = 0; c < nch; c++) {
            qp->scale[c] = nnq_f32(sc)[c];
            qp->zp[c] = (zt ? (int32_t)nnq_tensor_get_int(zt, c) : 0) + shift;
            if (!(qp->scale[c] > 0) || !isfinite(qp->scale[c])) {
                const double bad = qp->scale[c]; /* read before the free */
                ip_par_free(IP_QUANTIZE, qp);
                return lw_err(L, nnq_fail(NNQ_ERR_INVALID, "QuantizeLinear '%s': scale %g",
                                          nd->name, bad));
            }
        }
        int t;
        nnq_status st = lw_new_tensor(L, y, NNQ_DT_UINT8, &t);
        if (st != NNQ_OK) {
            ip_par_free(IP_QUANTIZE, qp);
            return lw_err(L, st);
        }
        ip_tensor *pt = &L->p->t[t];
        pt->onnx_dtype = dt;
        pt->scale = nch == 1 ? qp->scale[0] : 0; /* per axis: no one grid */
        pt->zp = nch == 1 ? qp->zp[0] : shift;
        LW_TRY(L, ip_add_op(L->p, IP_QUANTIZE, nd->name, 1, &s->t, 1, &t, qp, NULL));
        L->v[y] = (lv){LV_QINT, t, -1};
        return LW_DONE;
    }
    if (s->kind != LV_DEQ)
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                  "QuantizeLinear '%s' reads '%s', which is not a float tensor",
                                  nd->name, L->g->values[x].name));
    /* DQ -> Q: the same integers, or a requantization to the new grid. */
    lw_grid gr;
    if (!lw_grid_of(L, nd->inputs[1], zv, &gr)) return LW_FLOAT;
    const ip_tensor *in = &L->p->t[s->t];
    if (in->scale == gr.scale && in->zp == gr.zp) { /* the same bytes */
        int t = s->t;
        if (in->onnx_dtype != gr.dtype) { /* e.g. uint8 z 128 read as int8 z 0 */
            const int base = ip_base(L->p, s->t);
            LW_TRY(L, lw_new_u8(L, y, &gr, &t));
            L->p->t[t].alias = base;
        }
        L->v[y] = (lv){LV_QINT, t, -1};
        return LW_DONE;
    }
    ip_requant *r = calloc(1, sizeof *r);
    if (r) r->r = calloc(1, sizeof *r->r);
    if (!r || !r->r) {
        ip_par_free(IP_REQUANT, r);
        return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    }
    r->n = 1;
    r->axis = 0;
    r->zy = gr.zp;
    r->lo = 0;
    r->hi = 255;
    r->r[0].z_in = in->zp;
    if (nnq_requant_make((double)in->scale / gr.scale, &r->r[0].mult, &r->r[0].shift) != NNQ_OK) {
        ip_par_free(IP_REQUANT, r);
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED, "QuantizeLinear '%s': rescale %g -> %g",
                                  nd->name, (double)in->scale, (double)gr.scale));
    }
    int t;
    nnq_status st = lw_new_u8(L, y, &gr, &t);
    if (st != NNQ_OK) {
        ip_par_free(IP_REQUANT, r);
        return lw_err(L, st);
    }
    LW_TRY(L, ip_add_op(L->p, IP_REQUANT, nd->name, 1, &s->t, 1, &t, r, NULL));
    L->v[y] = (lv){LV_QINT, t, -1};
    return LW_DONE;
}

lw_result lw_clamp_quantize(lower_ctx *L, int n, int x) {
    const nnq_node *nd = &L->g->nodes[n];
    lw_chain ch;
    if (!lw_chain_from(L, n, x, &ch)) return LW_FLOAT;
    ip_qparams *qp;
    LW_TRY(L, new_qparams(1, &qp));
    qp->scale[0] = ch.grid.scale;
    qp->zp[0] = ch.grid.zp;
    qp->qmin = ch.lo;
    qp->qmax = ch.hi;
    const int y = L->g->nodes[ch.q].outputs[0];
    int t;
    nnq_status st = lw_new_u8(L, y, &ch.grid, &t);
    if (st != NNQ_OK) {
        ip_par_free(IP_QUANTIZE, qp);
        return lw_err(L, st);
    }
    LW_TRY(L, ip_add_op(L->p, IP_QUANTIZE, nd->name, 1, &L->v[x].t, 1, &t, qp, NULL));
    lw_chain_consume(L, &ch);
    L->v[y] = (lv){LV_QINT, t, -1};
    return LW_DONE;
}

lw_result lw_dequantize_node(lower_ctx *L, int n) {
    const nnq_node *nd = &L->g->nodes[n];
    const int x = nd->inputs[0], y = nd->outputs[0];
    const lv *s = &L->v[x];
    if (s->kind != LV_QINT)
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                  "DequantizeLinear '%s' reads '%s', which is not a quantized tensor",
                                  nd->name, L->g->values[x].name));
    const nnq_tensor *sc = lw_const(L, nd->inputs[1]);
    const int zv = nd->n_inputs > 2 ? nd->inputs[2] : -1;
    const nnq_tensor *zt = zv >= 0 ? lw_const(L, zv) : NULL;
    if (!sc || sc->dtype != NNQ_DT_FLOAT || (zv >= 0 && !zt))
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                  "DequantizeLinear '%s': scale and zero point must be constants "
                                  "for the integer engine", nd->name));
    const ip_tensor *in = &L->p->t[s->t];
    const int32_t shift = in->onnx_dtype == NNQ_DT_INT8 ? 128 : 0;
    if (zt && zt->dtype != in->onnx_dtype)
        return lw_err(L, nnq_fail(NNQ_ERR_INVALID, "DequantizeLinear '%s': zero point is %s, "
                                  "its input %s", nd->name, nnq_dtype_name(zt->dtype),
                                  nnq_dtype_name(in->onnx_dtype)));
    const int64_t nch = nnq_tensor_numel(sc);
    if (nch == 1) {
        const float scale = nnq_f32(sc)[0];
        const int32_t zp = (zt ? (int32_t)nnq_tensor_get_int(zt, 0) : 0) + shift;
        if (!(scale > 0) || !isfinite(scale))
            return lw_err(L, nnq_fail(NNQ_ERR_INVALID, "DequantizeLinear '%s': scale %g", nd->name,
                                      (double)scale));
        int t = s->t;
        if (in->scale != scale || in->zp != zp) { /* the same bytes read on another grid */
            LW_TRY(L, lw_new_tensor(L, y, NNQ_DT_UINT8, &t));
            ip_tensor *pt = &L->p->t[t];
            pt->onnx_dtype = L->p->t[s->t].onnx_dtype;
            pt->scale = scale;
            pt->zp = zp;
            pt->alias = ip_base(L->p, s->t);
        }
        L->v[y] = (lv){LV_DEQ, t, -1};
        return LW_DONE;
    }
    /* per axis: dequantized to float here */
    int64_t axis = nnq_node_attr_int(nd, "axis", 1);
    if (axis < 0) axis += L->s1[x].rank;
    if (axis < 0 || axis >= L->s1[x].rank || L->s1[x].dims[axis] != nch || (zt && nnq_tensor_numel(zt) != nch))
        return lw_err(L, nnq_fail(NNQ_ERR_SHAPE, "DequantizeLinear '%s': %lld scales do not fit "
                                  "axis %lld", nd->name, (long long)nch, (long long)axis));
    ip_qparams *qp;
    LW_TRY(L, new_qparams(nch, &qp));
    qp->axis = (int)axis;
    for (int64_t c = 0; c < nch; c++) {
        qp->scale[c] = nnq_f32(sc)[c];
        qp->zp[c] = (zt ? (int32_t)nnq_tensor_get_int(zt, c) : 0) + shift;
    }
    int t;
    nnq_status st = lw_new_tensor(L, y, NNQ_DT_FLOAT, &t);
    if (st != NNQ_OK) {
        ip_par_free(IP_DEQUANTIZE, qp);
        return lw_err(L, st);
    }
    LW_TRY(L, ip_add_op(L->p, IP_DEQUANTIZE, nd->name, 1, &s->t, 1, &t, qp, NULL));
    L->v[y] = (lv){LV_FLOAT, t, -1};
    return LW_DONE;
}

/* ---- float fallback ---- */

static nnq_status emit_float(lower_ctx *L, int n) {
    const nnq_graph *g = L->g;
    const nnq_node *nd = &g->nodes[n];
    char label[256];
    nnq_node_label(g, n, label, sizeof label);
    const nnq_op_def *def;
    nnq_status s = nnq_node_resolve(g, n, &def);
    if (s != NNQ_OK)
        return nnq_fail(s, "%s node '%s' can be neither lowered (%s) nor run in float: %s",
                        nd->op_type, label, L->why, nnq_last_error());
    NNQ_TRY(ip_note(L->p, "node '%s' (%s) runs in float: %s", label, nd->op_type, L->why));
    if (!L->p->g) NNQ_TRY(nnq_graph_clone(g, &L->p->g));
    int in[NNQ_MAX_NODE_IO], out[NNQ_MAX_NODE_IO];
    for (int k = 0; k < nd->n_inputs; k++) {
        const int v = nd->inputs[k];
        in[k] = -1;
        if (v < 0 || lw_const(L, v)) continue;
        NNQ_TRY(lw_float_of(L, v, &in[k]));
    }
    for (int k = 0; k < nd->n_outputs; k++) {
        const int v = nd->outputs[k];
        out[k] = -1;
        if (v < 0) continue;
        if (L->s1[v].dtype != NNQ_DT_FLOAT)
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "%s node '%s' runs in float (%s) but its output '%s' is %s; the "
                            "integer program carries float tensors only between quantized ones",
                            nd->op_type, label, L->why, g->values[v].name,
                            nnq_dtype_name(L->s1[v].dtype));
        NNQ_TRY(lw_new_tensor(L, v, NNQ_DT_FLOAT, &out[k]));
        L->v[v] = (lv){LV_FLOAT, out[k], -1};
    }
    ip_float *f = malloc(sizeof *f);
    if (!f) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
    f->node = n;
    return ip_add_op(L->p, IP_FLOAT, label, nd->n_inputs, in, nd->n_outputs, out, f, NULL);
}

/* ---- shapes ---- */

bool lw_is_qoperator(const char *op) {
    return strcmp(op, "QLinearConv") == 0 || strcmp(op, "QLinearMatMul") == 0 ||
           strcmp(op, "ConvInteger") == 0 || strcmp(op, "MatMulInteger") == 0;
}

/* Every value's dtype and shape with the batch dim (a symbolic first dim
 * of an input) set to `batch`; other symbolic dims 1. */
static nnq_status infer_shapes(const nnq_graph *g, int64_t batch, nnq_tensor *shapes) {
    for (int v = 0; v < g->n_values; v++) {
        shapes[v] = g->values[v].t;
        shapes[v].owns = false;
        if (!g->values[v].t.data) {
            shapes[v].dtype = NNQ_DT_UNDEFINED;
            shapes[v].rank = -1;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const nnq_value *v = &g->values[g->inputs[i]];
        nnq_tensor *t = &shapes[g->inputs[i]];
        if (v->t.rank < 0 || v->t.dtype == NNQ_DT_UNDEFINED)
            return nnq_fail(NNQ_ERR_SHAPE, "graph input '%s' has no declared type and shape",
                            v->name);
        NNQ_TRY(nnq_tensor_set_shape(t, v->t.dtype, v->t.rank, v->t.dims));
        t->data = NULL;
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] < 0) t->dims[k] = k == 0 ? batch : 1;
    }
    for (int n = 0; n < g->n_nodes; n++) {
        if (nnq_node_outputs_constant(g, n)) continue;
        const nnq_node *nd = &g->nodes[n];
        if (lw_is_qoperator(nd->op_type)) {
            NNQ_TRY(lw_qoperator_infer(g, n, shapes));
            continue;
        }
        nnq_node_call c;
        NNQ_TRY(nnq_node_call_init(&c, g, n, shapes, 1));
        for (int i = 0; i < c.args.n_in; i++)
            if (c.in[i] && c.in[i]->rank < 0) {
                char label[256];
                return nnq_fail(NNQ_ERR_INVALID, "%s node '%s': input '%s' has no shape",
                                nd->op_type, nnq_node_label(g, n, label, sizeof label),
                                g->values[nd->inputs[i]].name);
            }
        NNQ_TRY(c.def->infer(&c.args));
    }
    return NNQ_OK;
}

nnq_status nnq_iprog_prepare_graph(nnq_graph *g) {
    for (int n = 0; n < g->n_nodes; n++)
        if (lw_is_qoperator(g->nodes[n].op_type)) {
            NNQ_TRY(nnq_graph_toposort(g));
            return nnq_graph_verify(g);
        }
    return nnq_graph_prepare(g);
}

/* ---- the driver ---- */

typedef struct lw_entry {
    const char *op;
    lw_handler h;
} lw_entry;

static const lw_entry handlers[] = {
    {"QuantizeLinear", lw_quantize_node},
    {"DequantizeLinear", lw_dequantize_node},
    {"Conv", lw_linear},
    {"Gemm", lw_linear},
    {"MatMul", lw_linear},
    {"QLinearConv", lw_qoperator},
    {"QLinearMatMul", lw_qoperator},
    {"ConvInteger", lw_qoperator},
    {"MatMulInteger", lw_qoperator},
    {"Add", lw_add},
    {"Concat", lw_concat},
    {"MaxPool", lw_maxpool},
    {"AveragePool", lw_avgpool},
    {"GlobalAveragePool", lw_avgpool},
    {"Flatten", lw_view},
    {"Reshape", lw_view},
    {"Squeeze", lw_view},
    {"Unsqueeze", lw_view},
    {"Identity", lw_view},
    {"Dropout", lw_view},
    {"Relu", lw_lut},
    {"Clip", lw_lut},
    {"LeakyRelu", lw_lut},
    {"Sigmoid", lw_lut},
    {"HardSigmoid", lw_lut},
    {"HardSwish", lw_lut},
    {"Tanh", lw_lut},
    {"Sub", lw_lut},
    {"Mul", lw_lut},
    {"Div", lw_lut},
    {"Min", lw_lut},
    {"Max", lw_lut},
};

static lw_handler find_handler(const nnq_node *nd) {
    if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0) return NULL;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i].op, nd->op_type) == 0) return handlers[i].h;
    return NULL;
}

static nnq_status lower_inputs(lower_ctx *L) {
    const nnq_graph *g = L->g;
    nnq_iprog *p = L->p;
    p->inputs = malloc(sizeof(int) * (size_t)(g->n_inputs ? g->n_inputs : 1));
    if (!p->inputs) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
    for (int i = 0; i < g->n_inputs; i++) {
        const int v = g->inputs[i];
        const nnq_dtype dt = g->values[v].t.dtype;
        int t;
        if (dt == NNQ_DT_FLOAT) {
            NNQ_TRY(lw_new_tensor(L, v, NNQ_DT_FLOAT, &t));
            L->v[v] = (lv){LV_FLOAT, t, -1};
        } else if (dt == NNQ_DT_UINT8 || dt == NNQ_DT_INT8) {
            NNQ_TRY(lw_new_tensor(L, v, NNQ_DT_UINT8, &t));
            p->t[t].onnx_dtype = dt;
            p->t[t].zp = dt == NNQ_DT_INT8 ? 128 : 0;
            L->v[v] = (lv){LV_QINT, t, -1};
        } else {
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "graph input '%s' is %s; the integer engine takes float32, uint8 or "
                            "int8 inputs", g->values[v].name, nnq_dtype_name(dt));
        }
        p->inputs[p->n_inputs++] = t;
    }
    return NNQ_OK;
}

/* Each graph output gets a tensor of its own name and ONNX type. */
static nnq_status lower_outputs(lower_ctx *L) {
    const nnq_graph *g = L->g;
    nnq_iprog *p = L->p;
    p->outputs = malloc(sizeof(int) * (size_t)(g->n_outputs ? g->n_outputs : 1));
    if (!p->outputs) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
    for (int i = 0; i < g->n_outputs; i++) {
        const int v = g->outputs[i];
        const lv *s = &L->v[v];
        const char *name = g->values[v].name;
        int t;
        switch (s->kind) {
        case LV_DEQ: {
            ip_qparams *qp;
            NNQ_TRY(new_qparams(1, &qp));
            qp->scale[0] = p->t[s->t].scale;
            qp->zp[0] = p->t[s->t].zp;
            nnq_status st = lw_new_tensor(L, v, NNQ_DT_FLOAT, &t);
            if (st != NNQ_OK) {
                ip_par_free(IP_DEQUANTIZE, qp);
                return st;
            }
            NNQ_TRY(ip_add_op(p, IP_DEQUANTIZE, name, 1, &s->t, 1, &t, qp, NULL));
            break;
        }
        case LV_FLOAT:
        case LV_QINT:
        case LV_INT32: {
            NNQ_TRY(lw_new_tensor(L, v, p->t[s->t].dtype, &t));
            ip_tensor *pt = &p->t[t];
            const ip_tensor *src = &p->t[s->t]; /* after the call: p->t may have moved */
            pt->onnx_dtype = src->onnx_dtype;
            pt->scale = src->scale;
            pt->zp = src->zp;
            pt->alias = ip_base(p, s->t);
            break;
        }
        default:
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "graph output '%s' is %s; the integer program computes it nowhere",
                            name, s->kind == LV_CONST ? "a constant" : "not computed");
        }
        p->outputs[p->n_outputs++] = t;
    }
    return NNQ_OK;
}

static nnq_status lower_nodes(lower_ctx *L) {
    const nnq_graph *g = L->g;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        if (L->done[n]) continue;
        if (nnq_node_outputs_constant(g, n)) {
            for (int k = 0; k < nd->n_outputs; k++)
                if (nd->outputs[k] >= 0) L->v[nd->outputs[k]].kind = LV_CONST;
            continue;
        }
        const lw_handler h = find_handler(nd);
        L->why[0] = '\0';
        lw_result r = h ? h(L, n) : lw_float(L, "the engine has no integer %s", nd->op_type);
        if (r == LW_ERROR) return L->err != NNQ_OK ? L->err : NNQ_ERR_INVALID;
        if (r == LW_FLOAT) NNQ_TRY(emit_float(L, n));
        L->done[n] = true;
    }
    return NNQ_OK;
}

static void ctx_free(lower_ctx *L) {
    free(L->v);
    free(L->s1);
    if (L->s2 != L->s1) free(L->s2);
    free(L->done);
    free(L->nread);
    free(L->reader);
}

nnq_status nnq_iprog_lower(const nnq_graph *g, nnq_iprog **out) {
    *out = NULL;
    nnq_status s = NNQ_OK;
    lower_ctx L = {0};
    L.g = g;
    const size_t nv = (size_t)(g->n_values ? g->n_values : 1), nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    L.p = calloc(1, sizeof *L.p);
    L.v = calloc(nv, sizeof *L.v);
    L.s1 = calloc(nv, sizeof *L.s1);
    L.done = calloc(nn, sizeof *L.done);
    L.nread = calloc(nv, sizeof *L.nread);
    L.reader = malloc(nv * sizeof *L.reader);
    bool batched = false;
    for (int i = 0; i < g->n_inputs; i++)
        batched = batched || (g->values[g->inputs[i]].t.rank > 0 && g->values[g->inputs[i]].t.dims[0] < 0);
    L.s2 = batched ? calloc(nv, sizeof *L.s2) : L.s1;
    if (!L.p || !L.v || !L.s1 || !L.s2 || !L.done || !L.nread || !L.reader) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
        goto fail;
    }
    for (int v = 0; v < g->n_values; v++) {
        L.v[v] = (lv){LV_NONE, -1, -1};
        L.reader[v] = -1;
    }
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n].n_inputs; k++) {
            const int v = g->nodes[n].inputs[k];
            if (v < 0) continue;
            L.nread[v]++;
            L.reader[v] = n;
        }
    for (int i = 0; i < g->n_outputs; i++) L.nread[g->outputs[i]]++;
    if ((s = infer_shapes(g, 1, L.s1)) != NNQ_OK) goto fail;
    if (batched && (s = infer_shapes(g, 2, L.s2)) != NNQ_OK) goto fail;
    if ((s = lower_inputs(&L)) != NNQ_OK) goto fail;
    if ((s = lower_nodes(&L)) != NNQ_OK) goto fail;
    if ((s = lower_outputs(&L)) != NNQ_OK) goto fail;
    if ((s = ip_validate(L.p)) != NNQ_OK) goto fail;
    *out = L.p;
    L.p = NULL;
fail:
    nnq_iprog_free(L.p);
    ctx_free(&L);
    return s;
}
