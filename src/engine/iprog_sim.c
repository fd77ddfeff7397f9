/* The float emulation ("sim") of an integer program: the SAME program (the
 * same scales, multipliers, zero points, int32 biases, clamps and operator
 * list), with every convolution and matrix product computed by nnq's FLOAT
 * ops (src/ops: im2col + OpenBLAS sgemm, the depthwise kernels), called
 * through their nnq_op_def on integer-valued floats:
 *     X = x - x_zp (float),  W = w (float),  B = bias (float)
 *     acc = Conv(X, W, B) or Gemm(X, W^T, B)        an exact integer
 *     y = clamp(y_zp + requant(acc), lo, hi[o])     the rule of core/requant.h
 * Exact by construction, not by luck: every partial sum of the accumulator
 * is bounded by |bias_o| + 255 sum_k |w_ok| (|x - x_zp| <= 255). When that
 * bound is below 2^24, float32 holds every partial sum exactly, in any
 * summation order; otherwise this layer runs in double (im2col + dgemm),
 * where the bound is far below 2^53. QuantizeLinear / DequantizeLinear run
 * as nnq's float ops too; add, concat, pools and tables are scalar code
 * written apart from the integer operators (iops.c).
 * So the simulation's outputs equal the integer engine's bit for bit: what
 * you simulate is what you run. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/requant.h"
#include "engine/iprog_impl.h"
#include "ops/node_call.h"

#define EXACT_FLOAT_BOUND 16777216.0 /* 2^24 */

/* ---- one float op on a graph of its own ---- */

#define SIM_MAX_VALUES 8

typedef struct sim_op {
    nnq_graph *g;
    nnq_tensor vals[SIM_MAX_VALUES]; /* per value of g: shapes and data */
    int x, y;                        /* runtime input and output values */
} sim_op;

static void sim_op_free(sim_op *s) {
    nnq_graph_free(s->g);
    memset(s, 0, sizeof *s);
}

static nnq_status sim_op_begin(sim_op *s) {
    memset(s, 0, sizeof *s);
    s->g = nnq_graph_create("nnq-sim");
    if (!s->g) return nnq_fail(NNQ_ERR_NOMEM, "out of memory building the simulation");
    NNQ_TRY(nnq_graph_set_opset(s->g, "", 13));
    NNQ_TRY(nnq_graph_add_value(s->g, "x", &s->x));
    return nnq_graph_add_value(s->g, "y", &s->y);
}

/* Add a constant (takes t's data). */
static nnq_status sim_op_const(sim_op *s, const char *name, nnq_tensor *t, int *v) {
    return nnq_graph_add_initializer(s->g, name, t, v);
}

/* The node, reading values in[0..n) (in[0] = x) and writing y. */
static nnq_status sim_op_node(sim_op *s, const char *op, int n, const int *in, nnq_node **nd) {
    int k;
    NNQ_TRY(nnq_graph_add_node(s->g, op, op, "", n, in, 1, &s->y, &k));
    *nd = &s->g->nodes[k];
    return NNQ_OK;
}

/* Shape the output for input shape x (dims, no data); *scratch: the
 * op's scratch bytes. */
static nnq_status sim_op_reshape(sim_op *s, nnq_dtype xdt, int rank, const int64_t *dims,
                                 nnq_tensor *y, size_t *scratch, int threads) {
    for (int v = 0; v < s->g->n_values && v < SIM_MAX_VALUES; v++) {
        s->vals[v] = s->g->values[v].t;
        s->vals[v].owns = false;
    }
    NNQ_TRY(nnq_tensor_set_shape(&s->vals[s->x], xdt, rank, dims));
    s->vals[s->x].data = NULL;
    s->vals[s->y].rank = -1;
    s->vals[s->y].data = NULL;
    nnq_node_call c;
    NNQ_TRY(nnq_node_call_init(&c, s->g, 0, s->vals, threads));
    NNQ_TRY(c.def->infer(&c.args));
    *y = s->vals[s->y];
    *scratch = c.def->scratch_size ? c.def->scratch_size(&c.args) : 0;
    return NNQ_OK;
}

static nnq_status sim_op_run(sim_op *s, void *x, void *y, void *scratch, size_t scratch_bytes,
                             int threads) {
    s->vals[s->x].data = x;
    s->vals[s->y].data = y;
    nnq_node_call c;
    NNQ_TRY(nnq_node_call_init(&c, s->g, 0, s->vals, threads));
    c.args.scratch = scratch;
    c.args.scratch_bytes = scratch_bytes;
    return c.def->forward(&c.args);
}

/* The executor's scratch (64-byte aligned) cut into consecutive slices
 * of 64-byte multiples. */
static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static nnq_status float_const(sim_op *s, const char *name, int rank, const int64_t *dims,
                              nnq_dtype dt, int *v, void **data) {
    nnq_tensor t = {0};
    NNQ_TRY(nnq_tensor_alloc(&t, dt, rank, dims));
    *data = t.data;
    return sim_op_const(s, name, &t, v);
}

/* ---- QuantizeLinear / DequantizeLinear as nnq's float ops ---- */

typedef struct qdq_sim {
    sim_op op;
    int32_t shift;    /* 128 for int8 */
    size_t op_bytes;  /* the op's scratch; the ONNX-typed integers follow it */
} qdq_sim;

static void qdq_destroy(void *state) {
    qdq_sim *q = state;
    if (!q) return;
    sim_op_free(&q->op);
    free(q);
}

static nnq_status qdq_create(const nnq_iprog *p, const ip_op *o, void **state) {
    const ip_qparams *qp = o->par;
    const bool quant = o->kind == IP_QUANTIZE;
    const ip_tensor *qt = &p->t[quant ? o->out[0] : o->in[0]];
    const nnq_dtype dt = qt->onnx_dtype == NNQ_DT_INT8 ? NNQ_DT_INT8 : NNQ_DT_UINT8;
    qdq_sim *q = calloc(1, sizeof *q);
    if (!q) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the simulation");
    q->shift = dt == NNQ_DT_INT8 ? 128 : 0;
    nnq_status s = sim_op_begin(&q->op);
    const int64_t n[1] = {qp->n};
    const int rank = qp->n > 1 ? 1 : 0;
    int in[3] = {q->op.x, -1, -1};
    void *sd = NULL, *zd = NULL;
    if (s == NNQ_OK) s = float_const(&q->op, "scale", rank, n, NNQ_DT_FLOAT, &in[1], &sd);
    if (s == NNQ_OK) s = float_const(&q->op, "zero_point", rank, n, dt, &in[2], &zd);
    nnq_node *nd = NULL;
    if (s == NNQ_OK) {
        for (int64_t c = 0; c < qp->n; c++) {
            ((float *)sd)[c] = qp->scale[c];
            if (dt == NNQ_DT_INT8) ((int8_t *)zd)[c] = (int8_t)(qp->zp[c] - 128);
            else ((uint8_t *)zd)[c] = (uint8_t)qp->zp[c];
        }
        s = sim_op_node(&q->op, quant ? "QuantizeLinear" : "DequantizeLinear", 3, in, &nd);
    }
    if (s == NNQ_OK && qp->n > 1) s = nnq_node_set_int(nd, "axis", qp->axis);
    if (s != NNQ_OK) {
        qdq_destroy(q);
        return s;
    }
    *state = q;
    return NNQ_OK;
}

static nnq_status qdq_reshape(ip_call *c, size_t *scratch) {
    qdq_sim *q = c->state;
    const bool quant = c->op->kind == IP_QUANTIZE;
    const nnq_tensor *x = c->in[0];
    const nnq_dtype xdt = quant ? NNQ_DT_FLOAT : (q->shift ? NNQ_DT_INT8 : NNQ_DT_UINT8);
    nnq_tensor y;
    NNQ_TRY(sim_op_reshape(&q->op, xdt, x->rank, x->dims, &y, &q->op_bytes, c->threads));
    *scratch = round64(q->op_bytes) + round64((size_t)nnq_tensor_numel(x));
    return NNQ_OK;
}

static nnq_status qdq_run(ip_call *c) {
    qdq_sim *q = c->state;
    const ip_qparams *qp = c->op->par;
    const int64_t n = nnq_tensor_numel(c->in[0]);
    uint8_t *buf = (uint8_t *)c->scratch + round64(q->op_bytes);
    if (c->op->kind == IP_QUANTIZE) {
        NNQ_TRY(sim_op_run(&q->op, c->in[0]->data, buf, c->scratch, q->op_bytes, c->threads));
        const uint8_t *b = buf;
        uint8_t *y = c->out[0]->data;
        for (int64_t i = 0; i < n; i++) {
            const int32_t v = (q->shift ? (int32_t)(int8_t)b[i] : (int32_t)b[i]) + q->shift;
            y[i] = (uint8_t)(v < qp->qmin ? qp->qmin : (v > qp->qmax ? qp->qmax : v));
        }
        return NNQ_OK;
    }
    const uint8_t *x = c->in[0]->data;
    for (int64_t i = 0; i < n; i++) buf[i] = (uint8_t)(x[i] - q->shift);
    return sim_op_run(&q->op, buf, c->out[0]->data, c->scratch, q->op_bytes, c->threads);
}

/* ---- convolution / matrix product with the float ops ---- */

/* Scratch: the op's own, then x - x_zp and the accumulators (float, or
 * double with an im2col buffer). */
typedef struct lin_sim {
    bool dbl;         /* accumulate in double: the float32 bound does not hold */
    bool bias_in_op;  /* the float op adds the bias (Conv, Gemm) */
    sim_op op;        /* float32: Conv, Gemm (transB) or MatMul */
    double *wd;       /* double: [nb][M][K] */
    size_t op_bytes, x_bytes, y_bytes;
} lin_sim;

static void lin_destroy(void *state) {
    lin_sim *s = state;
    if (!s) return;
    sim_op_free(&s->op);
    free(s->wd);
    free(s);
}

static int32_t wgt(const ip_linear *l, int64_t i) { return l->w_bits == 16 ? l->w16[i] : l->w8[i]; }

/* max over output channels of |bias_o| + 255 sum_k |w_ok| */
static double acc_bound(const ip_linear *l) {
    const int64_t K = ip_linear_k(l);
    double worst = 0;
    for (int64_t b = 0; b < l->nb; b++)
        for (int64_t m = 0; m < l->out_ch; m++) {
            double s = l->bias ? fabs((double)l->bias[m]) : 0;
            for (int64_t k = 0; k < K; k++) s += 255.0 * abs(wgt(l, (b * l->out_ch + m) * K + k));
            if (s > worst) worst = s;
        }
    return worst;
}

static nnq_status lin_float_op(lin_sim *s, const ip_linear *l) {
    const int64_t K = ip_linear_k(l), M = l->out_ch;
    NNQ_TRY(sim_op_begin(&s->op));
    int in[3] = {s->op.x, -1, -1};
    float *w, *b = NULL;
    nnq_node *nd;
    if (l->nb > 1) { /* MatMul x [nb, rows, K] by B [nb, K, M] */
        const int64_t dims[3] = {l->nb, K, M};
        NNQ_TRY(float_const(&s->op, "B", 3, dims, NNQ_DT_FLOAT, &in[1], (void **)&w));
        for (int64_t q = 0; q < l->nb; q++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t k = 0; k < K; k++) w[(q * K + k) * M + m] = (float)wgt(l, (q * M + m) * K + k);
        return sim_op_node(&s->op, "MatMul", 2, in, &nd);
    }
    const int64_t wdims[4] = {M, l->conv ? l->in_ch / l->groups : K, l->kh, l->kw};
    NNQ_TRY(float_const(&s->op, "W", l->conv ? 4 : 2, wdims, NNQ_DT_FLOAT, &in[1], (void **)&w));
    for (int64_t i = 0; i < M * K; i++) w[i] = (float)wgt(l, i);
    if (l->bias) {
        const int64_t bd[1] = {M};
        NNQ_TRY(float_const(&s->op, "B", 1, bd, NNQ_DT_FLOAT, &in[2], (void **)&b));
        for (int64_t m = 0; m < M; m++) b[m] = (float)l->bias[m];
        s->bias_in_op = true;
    }
    if (!l->conv) {
        NNQ_TRY(sim_op_node(&s->op, "Gemm", l->bias ? 3 : 2, in, &nd));
        return nnq_node_set_int(nd, "transB", 1);
    }
    NNQ_TRY(sim_op_node(&s->op, "Conv", l->bias ? 3 : 2, in, &nd));
    const int64_t ks[2] = {l->kh, l->kw}, st[2] = {l->sh, l->sw}, dl[2] = {l->dh, l->dw};
    const int64_t pads[4] = {l->pt, l->pl, l->pb, l->pr};
    NNQ_TRY(nnq_node_set_int(nd, "group", l->groups));
    NNQ_TRY(nnq_node_set_ints(nd, "kernel_shape", 2, ks));
    NNQ_TRY(nnq_node_set_ints(nd, "strides", 2, st));
    NNQ_TRY(nnq_node_set_ints(nd, "dilations", 2, dl));
    return nnq_node_set_ints(nd, "pads", 4, pads);
}

static nnq_status lin_create(const nnq_iprog *p, const ip_op *o, void **state) {
    (void)p;
    const ip_linear *l = o->par;
    lin_sim *s = calloc(1, sizeof *s);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the simulation");
    nnq_status st = NNQ_OK;
    s->dbl = acc_bound(l) >= EXACT_FLOAT_BOUND;
    if (s->dbl) {
        const size_t n = (size_t)(l->nb * l->out_ch * ip_linear_k(l));
        s->wd = malloc(sizeof(double) * (n ? n : 1));
        if (!s->wd) st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for the simulation");
        for (size_t i = 0; st == NNQ_OK && i < n; i++) s->wd[i] = wgt(l, (int64_t)i);
    } else {
        st = lin_float_op(s, l);
    }
    if (st != NNQ_OK) {
        lin_destroy(s);
        return nnq_fail_context(st, "simulating '%s': ", o->name);
    }
    *state = s;
    return NNQ_OK;
}

static nnq_status lin_reshape(ip_call *c, size_t *scratch) {
    lin_sim *s = c->state;
    const ip_linear *l = c->op->par;
    const nnq_tensor *x = c->in[0], *y = c->out[0];
    const int64_t nx = nnq_tensor_numel(x), ny = nnq_tensor_numel(y);
    const size_t el = s->dbl ? sizeof(double) : sizeof(float);
    s->x_bytes = round64(el * (size_t)nx);
    s->y_bytes = round64(el * (size_t)ny);
    s->op_bytes = 0;
    if (s->dbl) {
        if (l->conv) /* the im2col matrix of one image and group */
            s->op_bytes = round64(el * (size_t)(ip_linear_k(l) * y->dims[2] * y->dims[3]));
        *scratch = s->op_bytes + s->x_bytes + s->y_bytes;
        return NNQ_OK;
    }
    int64_t dims[NNQ_MAX_RANK];
    int rank = x->rank;
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
    if (!l->conv && l->nb == 1) { /* Gemm takes [rows, K] */
        rank = 2;
        dims[0] = nx / l->in_ch;
        dims[1] = l->in_ch;
    }
    nnq_tensor shaped;
    size_t op;
    NNQ_TRY(sim_op_reshape(&s->op, NNQ_DT_FLOAT, rank, dims, &shaped, &op, c->threads));
    if (nnq_tensor_numel(&shaped) != ny)
        return nnq_fail(NNQ_ERR_SHAPE, "simulating '%s': the float op gives %lld values, the "
                        "program %lld", c->op->name, (long long)nnq_tensor_numel(&shaped),
                        (long long)ny);
    s->op_bytes = round64(op);
    *scratch = s->op_bytes + s->x_bytes + s->y_bytes;
    return NNQ_OK;
}

/* double path: y = W x + b per image and group (im2col), or rows x W^T */
static void lin_double(const lin_sim *s, const ip_linear *l, const nnq_tensor *x, const nnq_tensor *y,
                       const double *xd, double *yd, double *col) {
    const int64_t K = ip_linear_k(l), M = l->out_ch;
    if (!l->conv) {
        const int64_t rows = nnq_tensor_numel(x) / K, per = rows / l->nb;
        for (int64_t b = 0; b < l->nb; b++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)per, (blasint)M,
                        (blasint)K, 1.0, xd + b * per * K, (blasint)K, s->wd + b * M * K,
                        (blasint)K, 0.0, yd + b * per * M, (blasint)M);
        for (int64_t i = 0; l->bias && i < rows * M; i++) yd[i] += l->bias[i % M];
        return;
    }
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3], P = OH * OW;
    const int64_t cg = C / l->groups, og = M / l->groups;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < l->groups; g++) {
            for (int64_t c = 0; c < cg; c++)
                for (int64_t ky = 0; ky < l->kh; ky++)
                    for (int64_t kx = 0; kx < l->kw; kx++) {
                        double *row = col + ((c * l->kh + ky) * l->kw + kx) * P;
                        const double *plane = xd + (n * C + g * cg + c) * H * W;
                        for (int64_t oy = 0; oy < OH; oy++)
                            for (int64_t ox = 0; ox < OW; ox++) {
                                const int64_t iy = oy * l->sh - l->pt + ky * l->dh;
                                const int64_t ix = ox * l->sw - l->pl + kx * l->dw;
                                row[oy * OW + ox] =
                                    iy >= 0 && iy < H && ix >= 0 && ix < W ? plane[iy * W + ix] : 0.0;
                            }
                    }
            double *yo = yd + (n * M + g * og) * P;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)og, (blasint)P,
                        (blasint)K, 1.0, s->wd + g * og * K, (blasint)K, col, (blasint)P, 0.0,
                        yo, (blasint)P);
            for (int64_t o = 0; l->bias && o < og; o++)
                for (int64_t i = 0; i < P; i++) yo[o * P + i] += l->bias[g * og + o];
        }
}

static nnq_status lin_run(ip_call *c) {
    lin_sim *s = c->state;
    const ip_linear *l = c->op->par;
    const nnq_tensor *x = c->in[0], *y = c->out[0];
    const int64_t nx = nnq_tensor_numel(x), ny = nnq_tensor_numel(y), M = l->out_ch;
    const uint8_t *xq = x->data;
    unsigned char *sc = c->scratch;
    void *xb = sc + s->op_bytes, *yb = sc + s->op_bytes + s->x_bytes;
    const double *yd = yb;
    const float *yf = yb;
    if (s->dbl) {
        double *xd = xb;
        for (int64_t i = 0; i < nx; i++) xd[i] = (double)((int32_t)xq[i] - l->x_zp);
        lin_double(s, l, x, y, xd, yb, (double *)sc);
    } else {
        float *xf = xb;
        for (int64_t i = 0; i < nx; i++) xf[i] = (float)((int32_t)xq[i] - l->x_zp);
        NNQ_TRY(sim_op_run(&s->op, xf, yb, sc, s->op_bytes, c->threads));
    }
    const int64_t plane = l->conv ? y->dims[2] * y->dims[3] : 1;
    for (int64_t i = 0; i < ny; i++) {
        const int64_t o = l->conv ? (i / plane) % M : i % M;
        int64_t acc = s->dbl ? (int64_t)yd[i] : (int64_t)yf[i];
        if (!s->dbl && !s->bias_in_op && l->bias) acc += l->bias[o];
        switch (l->out_mode) {
        case IP_OUT_U8: {
            const int64_t v = l->y_zp + ip_requant64(acc, l->mult[o], l->shift[o]);
            int64_t hi = l->hi;
            if (l->hi_ch && l->hi_ch[o] < hi) hi = l->hi_ch[o];
            ((uint8_t *)y->data)[i] = (uint8_t)(v < l->lo ? l->lo : (v > hi ? hi : v));
            break;
        }
        case IP_OUT_ACC_FLOAT: ((float *)y->data)[i] = (float)acc * l->deq[o]; break;
        case IP_OUT_ACC_INT32: ((int32_t *)y->data)[i] = (int32_t)acc; break;
        }
    }
    return NNQ_OK;
}

int ip_sim_double_layers(void *const *state, const nnq_iprog *p) {
    int n = 0;
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == IP_LINEAR && state[i]) n += ((const lin_sim *)state[i])->dbl;
    return n;
}

/* ---- scalar operators, written apart from iops.c ---- */

static nnq_status no_scratch(ip_call *c, size_t *scratch) {
    (void)c;
    *scratch = 0;
    return NNQ_OK;
}

/* floor(a / 2^s) by division (a / d rounds towards zero in C) */
static int64_t floor_div(int64_t a, int64_t d) {
    const int64_t q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}

static nnq_status add_run(ip_call *c) {
    const ip_add *a = c->op->par;
    const uint8_t *x1 = c->in[0]->data, *x2 = c->in[1]->data;
    uint8_t *y = c->out[0]->data;
    const int64_t d = (int64_t)1 << a->shift;
    for (int64_t i = 0, n = nnq_tensor_numel(c->out[0]); i < n; i++) {
        const int64_t t = (int64_t)((int32_t)x1[i] - a->za) * a->ma + (int64_t)((int32_t)x2[i] - a->zb) * a->mb;
        const int64_t v = a->zy + floor_div(t + d / 2, d);
        y[i] = (uint8_t)(v < a->lo ? a->lo : (v > a->hi ? a->hi : v));
    }
    return NNQ_OK;
}

/* Every output element: find its input along the axis, rescale it. */
static nnq_status requant_run(ip_call *c) {
    const ip_requant *q = c->op->par;
    const nnq_tensor *y = c->out[0];
    int64_t inner = 1;
    for (int k = q->axis + 1; k < y->rank; k++) inner *= y->dims[k];
    const int64_t A = y->dims[q->axis];
    for (int64_t i = 0, n = nnq_tensor_numel(y); i < n; i++) {
        const int64_t outer = i / (A * inner), j = (i / inner) % A, r = i % inner;
        int k = 0;
        int64_t start = 0;
        while (j >= start + c->in[k]->dims[q->axis]) start += c->in[k++]->dims[q->axis];
        const int64_t ak = c->in[k]->dims[q->axis];
        const uint8_t xv = ((const uint8_t *)c->in[k]->data)[(outer * ak + (j - start)) * inner + r];
        const ip_rescale *rs = &q->r[k];
        const int64_t v = q->zy + ip_requant64((int32_t)xv - rs->z_in, rs->mult, rs->shift);
        ((uint8_t *)y->data)[i] = (uint8_t)(v < q->lo ? q->lo : (v > q->hi ? q->hi : v));
    }
    return NNQ_OK;
}

/* Round sum / n half up, exactly: floor division, then compare the rest. */
static int64_t div_half_up(int64_t sum, int64_t n) {
    const int64_t q = floor_div(sum, n), r = sum - q * n; /* 0 <= r < n */
    return 2 * r >= n ? q + 1 : q;
}

static nnq_status pool_run(ip_call *c) {
    const ip_pool *q = c->op->par;
    const nnq_tensor *x = c->in[0], *y = c->out[0];
    const bool avg = c->op->kind == IP_AVGPOOL;
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t OH = y->dims[2], OW = y->dims[3];
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    for (int64_t nc = 0; nc < N * C; nc++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t sum = 0, count = 0, padded = 0;
                int best = -1;
                for (int64_t ky = 0; ky < q->kh; ky++)
                    for (int64_t kx = 0; kx < q->kw; kx++) {
                        const int64_t iy = oy * q->sh - q->pt + ky * q->dh;
                        const int64_t ix = ox * q->sw - q->pl + kx * q->dw;
                        if (iy < H + q->pb && ix < W + q->pr) padded++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        const int v = xd[(nc * H + iy) * W + ix];
                        sum += v - q->zx;
                        count++;
                        if (v > best) best = v;
                    }
                uint8_t out;
                if (!avg) {
                    out = (uint8_t)(best < 0 ? q->zx : best);
                } else {
                    const int64_t n = q->include_pad ? padded : count;
                    int64_t v = 0;
                    if (n > 0) v = q->same_grid ? div_half_up(sum, n) : ip_requant64(sum, q->mult[n], q->shift[n]);
                    v += q->zy;
                    out = (uint8_t)(v < q->lo ? q->lo : (v > q->hi ? q->hi : v));
                }
                yd[(nc * OH + oy) * OW + ox] = out;
            }
    return NNQ_OK;
}

static nnq_status lut_run(ip_call *c) {
    const ip_lut *l = c->op->par;
    const uint8_t *x = c->in[0]->data;
    uint8_t *y = c->out[0]->data;
    for (int64_t i = 0, n = nnq_tensor_numel(c->in[0]); i < n; i++) y[i] = l->table[x[i]];
    return NNQ_OK;
}

static const ip_impl qdq_impl = {qdq_create, qdq_reshape, qdq_run, qdq_destroy};
static const ip_impl lin_impl = {lin_create, lin_reshape, lin_run, lin_destroy};
static const ip_impl add_impl = {NULL, no_scratch, add_run, NULL};
static const ip_impl requant_impl = {NULL, no_scratch, requant_run, NULL};
static const ip_impl pool_impl = {NULL, no_scratch, pool_run, NULL};
static const ip_impl lut_impl = {NULL, no_scratch, lut_run, NULL};

const ip_impl *const ip_sim_impls[IP_N_KINDS] = {
    [IP_QUANTIZE] = &qdq_impl,   [IP_DEQUANTIZE] = &qdq_impl, [IP_LINEAR] = &lin_impl,
    [IP_ADD] = &add_impl,        [IP_CONCAT] = &requant_impl, [IP_REQUANT] = &requant_impl,
    [IP_MAXPOOL] = &pool_impl,   [IP_AVGPOOL] = &pool_impl,   [IP_LUT] = &lut_impl,
    [IP_FLOAT] = &ip_float_impl,
};
