/* Lowering convolutions and matrix products: the QDQ pattern
 *   DQ(x) + DQ(w) [+ DQ(b)] -> Conv / Gemm / MatMul -> [Relu | Clip | Min] -> Q
 * and the QOperator ops QLinearConv, QLinearMatMul, ConvInteger and
 * MatMulInteger. Both become one IP_LINEAR operator:
 *   acc[o] = bias[o] + sum (x - x_zp) (w - w_zp)        exact
 *   y[o]   = clamp(y_zp + requant(acc[o], mult[o], shift[o]), lo, hi[o])
 * with mult/shift from s_x s_w[o] / s_y (core/requant.h). Symmetric int8
 * weights within the kernels' int32 range run on the kernels (int8, or
 * nibbles for <= 4 bits); weights with zero points (other tools' uint8
 * weights) keep w - w_zp in int16 and run on the reference path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/requant.h"
#include "engine/lower_impl.h"
#include "ops/node_call.h"
#include "ops/window.h"

/* The weights as integers w - w_zp, [nb][M][K] (out-channel major), and
 * their scales per output channel. */
typedef struct lw_w {
    int64_t nb, M, K;
    int32_t *w;
    float *s;       /* [M] */
    bool int8;      /* int8 storage with zero point 0 */
} lw_w;

static void lw_w_free(lw_w *w) {
    free(w->w);
    free(w->s);
    w->w = NULL;
    w->s = NULL;
}

static int32_t raw_int(const nnq_tensor *t, int64_t i) { return (int32_t)nnq_tensor_get_int(t, i); }

/* Gather weights q [.., rows, cols] into [nb][M][K]: for a conv q is
 * [M, C/g, kh, kw] (M rows of K); for a matrix product B [.., K, M] is
 * transposed (trans: already [M, K], Gemm transB). zp: scalar or per
 * output channel. */
static nnq_status gather_w(const nnq_tensor *q, const nnq_tensor *zp, int64_t nb, int64_t M,
                           int64_t K, bool out_major, lw_w *w) {
    const size_t n = (size_t)(nb * M * K);
    w->nb = nb;
    w->M = M;
    w->K = K;
    w->w = malloc(sizeof(int32_t) * (n ? n : 1));
    w->s = malloc(sizeof(float) * (size_t)M);
    if (!w->w || !w->s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering weights");
    const int64_t nz = zp ? nnq_tensor_numel(zp) : 0;
    bool zero_zp = true;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t m = 0; m < M; m++) {
            const int32_t z = nz == 0 ? 0 : raw_int(zp, nz == 1 ? 0 : m);
            zero_zp = zero_zp && z == 0;
            for (int64_t k = 0; k < K; k++) {
                const int64_t src = out_major ? (b * M + m) * K + k : (b * K + k) * M + m;
                w->w[(b * M + m) * K + k] = raw_int(q, src) - z;
            }
        }
    w->int8 = q->dtype == NNQ_DT_INT8 && zero_zp;
    return NNQ_OK;
}

/* Per-output-channel scales: one scale, or M along the output axis. */
static bool channel_scales(const nnq_tensor *s, int64_t M, float *out) {
    const int64_t n = nnq_tensor_numel(s);
    if (n != 1 && n != M) return false;
    for (int64_t m = 0; m < M; m++) {
        out[m] = nnq_f32(s)[n == 1 ? 0 : m];
        if (!(out[m] > 0) || !isfinite(out[m])) return false;
    }
    return true;
}

/* Smallest weight grid b in 2..8 holding every int8 weight. */
static int weight_bits(const int32_t *w, size_t n) {
    int32_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] < lo) lo = w[i];
        if (w[i] > hi) hi = w[i];
    }
    for (int b = 2; b < 8; b++)
        if (lo >= -(1 << (b - 1)) && hi <= (1 << (b - 1)) - 1) return b;
    return 8;
}

/* Conv geometry of node n on input shape x with weight shape w. */
static nnq_status conv_geometry(const lower_ctx *L, int n, const nnq_tensor *x,
                                const nnq_tensor *w, ip_linear *l, char *why, size_t cap) {
    const nnq_node *nd = &L->g->nodes[n];
    why[0] = '\0';
    if (x->rank != 4 || w->rank != 4) {
        snprintf(why, cap, "only 2-D convolutions (rank-4 input) are lowered");
        return NNQ_OK;
    }
    nnq_op_args a = {0};
    a.graph = L->g;
    a.node = nd;
    a.opset = (int)nnq_graph_opset(L->g);
    const int64_t kernel[2] = {w->dims[2], w->dims[3]};
    nnq_window win;
    NNQ_TRY(nnq_window_init(&a, x, kernel, &win));
    const int64_t group = nnq_node_attr_int(nd, "group", 1);
    if (group < 1 || x->dims[1] % group || w->dims[0] % group || w->dims[1] * group != x->dims[1])
        return nnq_fail(NNQ_ERR_SHAPE, "%s '%s': %lld input channels, weight %lldx%lld, group %lld",
                        nd->op_type, nd->name, (long long)x->dims[1], (long long)w->dims[0],
                        (long long)w->dims[1], (long long)group);
    l->conv = true;
    l->in_ch = x->dims[1];
    l->out_ch = w->dims[0];
    l->groups = group;
    l->kh = win.kernel[0];
    l->kw = win.kernel[1];
    l->sh = win.stride[0];
    l->sw = win.stride[1];
    l->dh = win.dilation[0];
    l->dw = win.dilation[1];
    l->pt = win.pad_begin[0];
    l->pl = win.pad_begin[1];
    l->pb = win.pad_end[0];
    l->pr = win.pad_end[1];
    l->nb = 1;
    return NNQ_OK;
}

/* Fill the weights of l from w (w_bits and storage). The kernels need
 * int8 weights with zero point 0 and |bias'| + 255 sum |w| within int32
 * (bias' = bias - x_zp sum w); otherwise int16 on the reference path. */
static nnq_status set_weights(ip_linear *l, const lw_w *w, bool kernels_ok) {
    const size_t n = (size_t)(w->nb * w->M * w->K);
    bool fits = w->int8 && kernels_ok;
    for (int64_t m = 0; fits && m < w->M * w->nb; m++) {
        int64_t sum = 0, sabs = 0;
        for (int64_t k = 0; k < w->K; k++) {
            const int32_t v = w->w[m * w->K + k];
            sum += v;
            sabs += v < 0 ? -v : v;
        }
        int64_t b = l->bias ? l->bias[m % w->M] : 0;
        b -= (int64_t)l->x_zp * sum;
        if ((b < 0 ? -b : b) + 255 * sabs >= INT32_MAX) fits = false;
    }
    if (fits) {
        l->w_bits = weight_bits(w->w, n);
        l->w8 = malloc(n ? n : 1);
        if (!l->w8) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering weights");
        for (size_t i = 0; i < n; i++) l->w8[i] = (int8_t)w->w[i];
        return NNQ_OK;
    }
    l->w_bits = 16;
    l->w16 = malloc(sizeof(int16_t) * (n ? n : 1));
    if (!l->w16) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering weights");
    for (size_t i = 0; i < n; i++) l->w16[i] = (int16_t)w->w[i];
    return NNQ_OK;
}

/* int32 bias on the s_x s_w grid from a constant: a DequantizeLinear of
 * int32 (rescaled if its scale is not s_x s_w) or float (quantized here).
 * why set (returns OK) if it is neither. */
static nnq_status set_bias(const lower_ctx *L, int bv, float s_x, const float *s_w, int64_t M,
                           ip_linear *l, char *why, size_t cap) {
    why[0] = '\0';
    if (bv < 0) return NNQ_OK;
    lw_cdq b;
    const nnq_tensor *bf = NULL;
    bool dq = lw_const_dq(L, bv, &b) && b.q->dtype == NNQ_DT_INT32;
    if (!dq) bf = lw_const(L, bv);
    const nnq_tensor *src = dq ? b.q : bf;
    if (!src || (!dq && src->dtype != NNQ_DT_FLOAT) || nnq_tensor_numel(src) != M ||
        (dq && b.n != 1 && b.n != M)) {
        snprintf(why, cap, "its bias is neither a constant int32 DequantizeLinear nor a float "
                           "constant of %lld values", (long long)M);
        return NNQ_OK;
    }
    l->bias = malloc(sizeof(int32_t) * (size_t)M);
    if (!l->bias) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering a bias");
    for (int64_t m = 0; m < M; m++) {
        const double grid = (double)s_x * (double)s_w[m];
        double v;
        if (dq) {
            const double sb = nnq_f32(b.scale)[b.n == 1 ? 0 : m];
            const int32_t z = b.zp ? raw_int(b.zp, b.n == 1 ? 0 : m) : 0;
            const double q = (double)raw_int(src, m) - z;
            /* nnq's export uses exactly s_x * s_w (in float) */
            v = fabs(sb - (double)(float)(s_x * s_w[m])) <= 1e-6 * sb ? q : nearbyint(q * sb / grid);
        } else {
            v = nearbyint((double)nnq_f32(src)[m] / grid);
        }
        if (!(v == v)) v = 0;
        l->bias[m] = v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : (int32_t)v);
    }
    return NNQ_OK;
}

/* Output side: requantization to the chain's grid. */
static nnq_status set_requant(ip_linear *l, float s_x, const float *s_w, const lw_chain *c,
                              const char *name) {
    const int64_t M = l->out_ch;
    l->out_mode = IP_OUT_U8;
    l->mult = malloc(sizeof(int32_t) * (size_t)M);
    l->shift = malloc(sizeof(int32_t) * (size_t)M);
    if (!l->mult || !l->shift) return nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering '%s'", name);
    for (int64_t m = 0; m < M; m++) {
        const double r = (double)s_x * (double)s_w[m] / (double)c->grid.scale;
        if (nnq_requant_make(r, &l->mult[m], &l->shift[m]) != NNQ_OK)
            return nnq_fail(NNQ_ERR_UNSUPPORTED, "'%s': channel %lld: requantization scale %g "
                            "outside the engine's range", name, (long long)m, r);
    }
    l->y_zp = c->grid.zp;
    l->lo = c->lo;
    l->hi = c->hi;
    return NNQ_OK;
}

static ip_linear *new_linear(void) {
    ip_linear *l = calloc(1, sizeof *l);
    if (l) {
        l->nb = 1;
        l->groups = 1;
        l->kh = l->kw = l->sh = l->sw = l->dh = l->dw = 1;
    }
    return l;
}

/* ---- QDQ: Conv / Gemm / MatMul ---- */

lw_result lw_linear(lower_ctx *L, int n) {
    const nnq_graph *g = L->g;
    const nnq_node *nd = &g->nodes[n];
    const bool conv = strcmp(nd->op_type, "Conv") == 0, gemm = strcmp(nd->op_type, "Gemm") == 0;
    const int xv = nd->inputs[0], wv = nd->inputs[1], yv = nd->outputs[0];
    const int bv = nd->n_inputs > 2 ? nd->inputs[2] : -1;
    if (L->v[xv].kind != LV_DEQ)
        return lw_float(L, "its input '%s' is not dequantized from a quantized tensor",
                        g->values[xv].name);
    const ip_tensor *xt = &L->p->t[L->v[xv].t];
    if (!(xt->scale > 0)) return lw_float(L, "its input has no single grid");
    lw_cdq wq;
    if (!lw_const_dq(L, wv, &wq) || wq.q->dtype == NNQ_DT_INT32)
        return lw_float(L, "its weights '%s' are not a constant int8/uint8 DequantizeLinear",
                        g->values[wv].name);
    const nnq_tensor *x = &L->s1[xv], *w = wq.q;
    ip_linear *l = new_linear();
    lw_w W = {0};
    lw_chain ch = {0};
    lw_result res = LW_DONE;
    char why[256];
    if (!l) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    int64_t M, K, w_axis;
    bool out_major;
    if (conv) {
        nnq_status s = conv_geometry(L, n, x, w, l, why, sizeof why);
        if (s != NNQ_OK) {
            res = lw_err(L, s);
            goto done;
        }
        if (why[0]) {
            res = lw_float(L, "%s", why);
            goto done;
        }
        M = l->out_ch;
        K = ip_linear_k(l);
        w_axis = 0;
        out_major = true;
    } else {
        const bool transB = gemm && nnq_node_attr_int(nd, "transB", 0) != 0;
        if (gemm && (nnq_node_attr_int(nd, "transA", 0) != 0 ||
                     nnq_node_attr_float(nd, "alpha", 1.0f) != 1.0f ||
                     (bv >= 0 && nnq_node_attr_float(nd, "beta", 1.0f) != 1.0f))) {
            res = lw_float(L, "Gemm with transA, alpha or beta other than the defaults");
            goto done;
        }
        if (w->rank != 2 || x->rank < (gemm ? 2 : 1) || (gemm && x->rank != 2)) {
            res = lw_float(L, "only a matrix product with a 2-D constant weight is lowered");
            goto done;
        }
        K = transB ? w->dims[1] : w->dims[0];
        M = transB ? w->dims[0] : w->dims[1];
        if (x->dims[x->rank - 1] != K) {
            res = lw_err(L, nnq_fail(NNQ_ERR_SHAPE, "%s '%s': input has %lld features, weight %lld",
                                     nd->op_type, nd->name, (long long)x->dims[x->rank - 1],
                                     (long long)K));
            goto done;
        }
        l->conv = false;
        l->in_ch = K;
        l->out_ch = M;
        w_axis = transB ? 0 : 1;
        out_major = transB;
    }
    if (wq.axis >= 0 && wq.axis != w_axis) {
        res = lw_float(L, "its weight scales run along axis %d, not the output channels", wq.axis);
        goto done;
    }
    nnq_status s = gather_w(w, wq.zp, 1, M, K, out_major, &W);
    if (s != NNQ_OK) {
        res = lw_err(L, s);
        goto done;
    }
    if (!channel_scales(wq.scale, M, W.s)) {
        res = lw_float(L, "its weight scales are not positive per tensor or per output channel");
        goto done;
    }
    l->x_zp = xt->zp;
    if ((s = set_bias(L, bv, xt->scale, W.s, M, l, why, sizeof why)) != NNQ_OK) {
        res = lw_err(L, s);
        goto done;
    }
    if (why[0]) {
        res = lw_float(L, "%s", why);
        goto done;
    }
    const int ch_axis = conv ? 1 : L->s1[yv].rank - 1;
    int outv;
    if (lw_chain_find(L, yv, M, ch_axis, &ch)) {
        if ((s = set_requant(l, xt->scale, W.s, &ch, nd->name)) != NNQ_OK) {
            res = lw_err(L, s);
            goto done;
        }
        l->hi_ch = ch.hi_ch;
        ch.hi_ch = NULL;
        outv = g->nodes[ch.q].outputs[0];
    } else if (!conv) { /* logits: the accumulator dequantized directly */
        l->out_mode = IP_OUT_ACC_FLOAT;
        l->deq = malloc(sizeof(float) * (size_t)M);
        if (!l->deq) {
            res = lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
            goto done;
        }
        for (int64_t m = 0; m < M; m++) l->deq[m] = xt->scale * W.s[m];
        outv = yv;
    } else {
        res = LW_FLOAT; /* why from lw_chain_find */
        goto done;
    }
    if ((s = set_weights(l, &W, true)) != NNQ_OK) {
        res = lw_err(L, s);
        goto done;
    }
    int t;
    if (l->out_mode == IP_OUT_U8) s = lw_new_u8(L, outv, &ch.grid, &t);
    else s = lw_new_tensor(L, outv, NNQ_DT_FLOAT, &t);
    if (s != NNQ_OK) {
        res = lw_err(L, s);
        goto done;
    }
    const int in = L->v[xv].t;
    s = ip_add_op(L->p, IP_LINEAR, nd->name, 1, &in, 1, &t, l, NULL);
    l = NULL; /* owned by the program (or freed on failure) */
    if (s != NNQ_OK) {
        res = lw_err(L, s);
        goto done;
    }
    if (outv == yv) {
        L->v[yv] = (lv){LV_FLOAT, t, -1};
    } else {
        lw_chain_consume(L, &ch);
        L->v[outv] = (lv){LV_QINT, t, -1};
    }
done:
    free(ch.hi_ch);
    lw_w_free(&W);
    ip_par_free(IP_LINEAR, l);
    return res;
}

/* ---- QOperator ops ---- */

/* Inputs of each op: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias
 * (-1: the op has no such input). */
typedef struct qop_slots {
    const char *op;
    bool conv, requant;
    int x, xs, xz, w, ws, wz, ys, yz, b;
} qop_slots;

static const qop_slots qops[] = {
    {"QLinearConv", true, true, 0, 1, 2, 3, 4, 5, 6, 7, 8},
    {"QLinearMatMul", false, true, 0, 1, 2, 3, 4, 5, 6, 7, -1},
    {"ConvInteger", true, false, 0, -1, 2, 1, -1, 3, -1, -1, -1},
    {"MatMulInteger", false, false, 0, -1, 2, 1, -1, 3, -1, -1, -1},
};

static const qop_slots *find_qop(const char *op) {
    for (size_t i = 0; i < sizeof qops / sizeof qops[0]; i++)
        if (strcmp(qops[i].op, op) == 0) return &qops[i];
    return NULL;
}

static int slot(const nnq_node *nd, int k) { return k >= 0 && k < nd->n_inputs ? nd->inputs[k] : -1; }

/* Shapes of numpy's matmul: a [.., M, K] x b [.., K, N]. */
static nnq_status matmul_shape(const nnq_node *nd, const nnq_tensor *a, const nnq_tensor *b,
                               nnq_tensor *y) {
    if (a->rank < 2 || b->rank < 2)
        return nnq_fail(NNQ_ERR_SHAPE, "%s '%s': inputs of rank %d and %d (need >= 2)",
                        nd->op_type, nd->name, a->rank, b->rank);
    if (a->dims[a->rank - 1] != b->dims[b->rank - 2])
        return nnq_fail(NNQ_ERR_SHAPE, "%s '%s': %lld vs %lld inner dims", nd->op_type, nd->name,
                        (long long)a->dims[a->rank - 1], (long long)b->dims[b->rank - 2]);
    const int r = a->rank > b->rank ? a->rank : b->rank;
    y->rank = r;
    for (int k = 0; k < r - 2; k++) {
        const int ka = k - (r - a->rank), kb = k - (r - b->rank);
        const int64_t da = ka >= 0 ? a->dims[ka] : 1, db = kb >= 0 ? b->dims[kb] : 1;
        if (da != db && da != 1 && db != 1)
            return nnq_fail(NNQ_ERR_SHAPE, "%s '%s': batch dims %lld and %lld do not broadcast",
                            nd->op_type, nd->name, (long long)da, (long long)db);
        y->dims[k] = da > db ? da : db;
    }
    y->dims[r - 2] = a->dims[a->rank - 2];
    y->dims[r - 1] = b->dims[b->rank - 1];
    return NNQ_OK;
}

nnq_status lw_qoperator_infer(const nnq_graph *g, int n, nnq_tensor *shapes) {
    const nnq_node *nd = &g->nodes[n];
    const qop_slots *q = find_qop(nd->op_type);
    const int xv = slot(nd, q->x), wv = slot(nd, q->w), yv = nd->n_outputs > 0 ? nd->outputs[0] : -1;
    if (xv < 0 || wv < 0 || yv < 0 || (q->requant && slot(nd, q->ys) < 0))
        return nnq_fail(NNQ_ERR_INVALID, "%s '%s': missing inputs or output", nd->op_type, nd->name);
    const nnq_tensor *x = &shapes[xv], *w = &shapes[wv];
    if (x->rank < 0 || w->rank < 0)
        return nnq_fail(NNQ_ERR_INVALID, "%s '%s': input without a shape", nd->op_type, nd->name);
    nnq_tensor *y = &shapes[yv];
    nnq_dtype dt = NNQ_DT_INT32;
    if (q->requant) {
        const int zv = slot(nd, q->yz);
        dt = zv >= 0 && shapes[zv].dtype == NNQ_DT_INT8 ? NNQ_DT_INT8 : NNQ_DT_UINT8;
    }
    nnq_tensor shape = {0};
    if (q->conv) {
        if (x->rank != w->rank || x->rank < 3)
            return nnq_fail(NNQ_ERR_SHAPE, "%s '%s': input rank %d, weight rank %d", nd->op_type,
                            nd->name, x->rank, w->rank);
        nnq_op_args a = {0};
        a.graph = g;
        a.node = nd;
        a.opset = (int)nnq_graph_opset(g);
        nnq_window win;
        NNQ_TRY(nnq_window_init(&a, x, w->dims + 2, &win));
        shape.rank = x->rank;
        shape.dims[0] = x->dims[0];
        shape.dims[1] = w->dims[0];
        for (int d = 0; d < win.rank; d++) shape.dims[2 + d] = win.out[d];
    } else {
        NNQ_TRY(matmul_shape(nd, x, w, &shape));
    }
    return nnq_tensor_set_shape(y, dt, shape.rank, shape.dims);
}

lw_result lw_qoperator(lower_ctx *L, int n) {
    const nnq_graph *g = L->g;
    const nnq_node *nd = &g->nodes[n];
    const qop_slots *q = find_qop(nd->op_type);
    const int xv = slot(nd, q->x), wv = slot(nd, q->w), yv = nd->outputs[0];
    if (L->v[xv].kind != LV_QINT)
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%s': input '%s' is not an integer tensor",
                                  nd->op_type, nd->name, g->values[xv].name));
    const ip_tensor *xt = &L->p->t[L->v[xv].t];
    const nnq_tensor *w = lw_const(L, wv);
    const int xsv = slot(nd, q->xs), xzv = slot(nd, q->xz), wsv = slot(nd, q->ws),
              wzv = slot(nd, q->wz), ysv = slot(nd, q->ys), yzv = slot(nd, q->yz),
              bv = slot(nd, q->b);
    const nnq_tensor *xz = lw_const(L, xzv), *wz = lw_const(L, wzv), *ws = lw_const(L, wsv);
    double xs = 1;
    bool ok = w && (w->dtype == NNQ_DT_UINT8 || w->dtype == NNQ_DT_INT8) &&
              (xzv < 0 || (xz && nnq_tensor_numel(xz) == 1)) && (wzv < 0 || wz) &&
              (wsv < 0 || (ws && ws->dtype == NNQ_DT_FLOAT)) &&
              (xsv < 0 || lw_const_scalar(L, xsv, &xs)) && (bv < 0 || lw_const(L, bv));
    if (!ok)
        return lw_err(L, nnq_fail(NNQ_ERR_UNSUPPORTED,
                                  "%s '%s': the integer engine needs constant weights, scales and "
                                  "zero points (one input zero point)", nd->op_type, nd->name));
    if (xz && xz->dtype != xt->onnx_dtype)
        return lw_err(L, nnq_fail(NNQ_ERR_INVALID, "%s '%s': input zero point is %s, the input %s",
                                  nd->op_type, nd->name, nnq_dtype_name(xz->dtype),
                                  nnq_dtype_name(xt->onnx_dtype)));
    const int32_t x_zp = (xz ? raw_int(xz, 0) : 0) + (xt->onnx_dtype == NNQ_DT_INT8 ? 128 : 0);
    const nnq_tensor *x = &L->s1[xv];
    ip_linear *l = new_linear();
    lw_w W = {0};
    lw_chain ch = {0};
    char why[256];
    lw_result res = LW_DONE;
    nnq_status s = NNQ_OK;
    if (!l) return lw_err(L, nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering"));
    int64_t M, K, nb = 1;
    if (q->conv) {
        if ((s = conv_geometry(L, n, x, w, l, why, sizeof why)) != NNQ_OK) goto fail;
        if (why[0]) {
            s = nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%s': %s", nd->op_type, nd->name, why);
            goto fail;
        }
        M = l->out_ch;
        K = ip_linear_k(l);
        s = gather_w(w, wz, 1, M, K, true, &W);
    } else {
        /* a [.., K] rows x b [K, N], or a [nb, M, K] x b [nb, K, N] */
        K = w->dims[w->rank - 2];
        M = w->dims[w->rank - 1];
        if (w->rank == 3 && x->rank == 3 && w->dims[0] == x->dims[0] && w->dims[0] > 1 &&
            !L->p->t[L->v[xv].t].batched) {
            nb = w->dims[0];
        } else if (w->rank != 2 || x->rank < 1) {
            s = nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%s': weight of rank %d with input of rank %d",
                         nd->op_type, nd->name, w->rank, x->rank);
            goto fail;
        }
        l->conv = false;
        l->in_ch = K;
        l->out_ch = M;
        l->nb = nb;
        s = gather_w(w, wz, nb, M, K, false, &W);
    }
    if (s != NNQ_OK) goto fail;
    if (wz && nnq_tensor_numel(wz) != 1 && nnq_tensor_numel(wz) != M) {
        s = nnq_fail(NNQ_ERR_SHAPE, "%s '%s': %lld weight zero points for %lld output channels",
                     nd->op_type, nd->name, (long long)nnq_tensor_numel(wz), (long long)M);
        goto fail;
    }
    if (ws && !channel_scales(ws, M, W.s)) {
        s = nnq_fail(NNQ_ERR_INVALID, "%s '%s': weight scales are not positive, per tensor or per "
                     "output channel", nd->op_type, nd->name);
        goto fail;
    }
    if (!ws)
        for (int64_t m = 0; m < M; m++) W.s[m] = 1;
    l->x_zp = x_zp;
    if (bv >= 0) { /* QLinearConv's bias: int32 on the s_x s_w grid, as given */
        const nnq_tensor *b = lw_const(L, bv);
        if (b->dtype != NNQ_DT_INT32 || nnq_tensor_numel(b) != M) {
            s = nnq_fail(NNQ_ERR_INVALID, "%s '%s': bias must be %lld int32 values", nd->op_type,
                         nd->name, (long long)M);
            goto fail;
        }
        l->bias = malloc(sizeof(int32_t) * (size_t)M);
        if (!l->bias) {
            s = nnq_fail(NNQ_ERR_NOMEM, "out of memory lowering");
            goto fail;
        }
        for (int64_t m = 0; m < M; m++) l->bias[m] = raw_int(b, m);
    }
    int t;
    if (q->requant) {
        L->why[0] = '\0';
        if (!lw_grid_of(L, ysv, yzv, &ch.grid)) {
            s = nnq_fail(NNQ_ERR_UNSUPPORTED, "%s '%s': output grid: %s", nd->op_type, nd->name,
                         L->why);
            goto fail;
        }
        ch.lo = 0;
        ch.hi = 255;
        if ((s = set_requant(l, (float)xs, W.s, &ch, nd->name)) != NNQ_OK) goto fail;
        if ((s = set_weights(l, &W, nb == 1)) != NNQ_OK) goto fail;
        if ((s = lw_new_u8(L, yv, &ch.grid, &t)) != NNQ_OK) goto fail;
    } else {
        l->out_mode = IP_OUT_ACC_INT32;
        /* the kernels have no int32 output for a conv */
        if ((s = set_weights(l, &W, !q->conv && nb == 1)) != NNQ_OK) goto fail;
        if ((s = lw_new_tensor(L, yv, NNQ_DT_INT32, &t)) != NNQ_OK) goto fail;
    }
    const int in = L->v[xv].t;
    s = ip_add_op(L->p, IP_LINEAR, nd->name, 1, &in, 1, &t, l, NULL);
    l = NULL;
    if (s != NNQ_OK) goto fail;
    L->v[yv] = (lv){q->requant ? LV_QINT : LV_INT32, t, -1};
    lw_w_free(&W);
    return res;
fail:
    lw_w_free(&W);
    ip_par_free(IP_LINEAR, l);
    return lw_err(L, s);
}
