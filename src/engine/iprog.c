/* The integer program as data: building it, freeing it, the accessors of
 * iprog.h, and the structural validation shared by the lowering and the
 * .nnqi reader. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/requant.h"
#include "core/str.h"
#include "engine/iprog_impl.h"

static const char *const kind_names[IP_N_KINDS] = {
    [IP_QUANTIZE] = "quantize", [IP_DEQUANTIZE] = "dequantize", [IP_LINEAR] = "linear",
    [IP_ADD] = "add",           [IP_CONCAT] = "concat",         [IP_REQUANT] = "requantize",
    [IP_MAXPOOL] = "maxpool",   [IP_AVGPOOL] = "avgpool",       [IP_LUT] = "lut",
    [IP_FLOAT] = "float",
};

const char *ip_kind_name(ip_kind k) {
    return k >= 0 && k < IP_N_KINDS ? kind_names[k] : "?";
}

nnq_status ip_add_tensor(nnq_iprog *p, const char *name, nnq_dtype dtype, int *out) {
    if (p->n_tensors == p->cap_tensors) {
        int cap = p->cap_tensors ? 2 * p->cap_tensors : 64;
        if (cap > NNQ_MAX_VALUES) return nnq_fail(NNQ_ERR_LIMIT, "integer program: too many tensors");
        ip_tensor *t = realloc(p->t, sizeof *t * (size_t)cap);
        if (!t) return nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
        p->t = t;
        p->cap_tensors = cap;
    }
    ip_tensor *t = &p->t[p->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = nnq_strdup(name ? name : "");
    if (!t->name) return nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
    t->dtype = dtype;
    t->onnx_dtype = dtype;
    t->alias = -1;
    *out = p->n_tensors++;
    return NNQ_OK;
}

nnq_status ip_add_op(nnq_iprog *p, ip_kind kind, const char *name, int n_in, const int *in,
                     int n_out, const int *out, void *par, int *index) {
    nnq_status s = NNQ_OK;
    if (p->n_ops == p->cap_ops) {
        int cap = p->cap_ops ? 2 * p->cap_ops : 64;
        ip_op *o = cap > NNQ_MAX_NODES ? NULL : realloc(p->ops, sizeof *o * (size_t)cap);
        if (!o) {
            s = nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
            goto fail;
        }
        p->ops = o;
        p->cap_ops = cap;
    }
    ip_op *o = &p->ops[p->n_ops];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->name = nnq_strdup(name ? name : "");
    o->in = malloc(sizeof(int) * (size_t)(n_in > 0 ? n_in : 1));
    o->out = malloc(sizeof(int) * (size_t)(n_out > 0 ? n_out : 1));
    if (!o->name || !o->in || !o->out) {
        free(o->name), free(o->in), free(o->out);
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
        goto fail;
    }
    if (n_in) memcpy(o->in, in, sizeof(int) * (size_t)n_in);
    if (n_out) memcpy(o->out, out, sizeof(int) * (size_t)n_out);
    o->n_in = n_in;
    o->n_out = n_out;
    o->par = par;
    if (index) *index = p->n_ops;
    p->n_ops++;
    return NNQ_OK;
fail:
    ip_par_free(kind, par);
    return s;
}

nnq_status ip_note(nnq_iprog *p, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **n = realloc(p->notes, sizeof *n * (size_t)(p->n_notes + 1));
    if (!n) return nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
    p->notes = n;
    if (!(n[p->n_notes] = nnq_strdup(buf)))
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory building the integer program");
    p->n_notes++;
    return NNQ_OK;
}

void ip_par_free(ip_kind kind, void *par) {
    if (!par) return;
    switch (kind) {
    case IP_QUANTIZE:
    case IP_DEQUANTIZE: {
        ip_qparams *q = par;
        free(q->scale);
        free(q->zp);
        break;
    }
    case IP_LINEAR: {
        ip_linear *l = par;
        free(l->w8), free(l->w16), free(l->bias), free(l->mult), free(l->shift);
        free(l->hi_ch), free(l->deq);
        break;
    }
    case IP_CONCAT:
    case IP_REQUANT: free(((ip_requant *)par)->r); break;
    case IP_MAXPOOL:
    case IP_AVGPOOL: {
        ip_pool *q = par;
        free(q->mult), free(q->shift);
        break;
    }
    default: break;
    }
    free(par);
}

void nnq_iprog_free(nnq_iprog *p) {
    if (!p) return;
    for (int i = 0; i < p->n_tensors; i++) free(p->t[i].name);
    for (int i = 0; i < p->n_ops; i++) {
        free(p->ops[i].name), free(p->ops[i].in), free(p->ops[i].out);
        ip_par_free(p->ops[i].kind, p->ops[i].par);
    }
    for (int i = 0; i < p->n_notes; i++) free(p->notes[i]);
    free(p->notes);
    free(p->t);
    free(p->ops);
    free(p->inputs);
    free(p->outputs);
    nnq_graph_free(p->g);
    free(p);
}

int64_t ip_linear_k(const ip_linear *l) {
    return l->conv ? l->in_ch / l->groups * l->kh * l->kw : l->in_ch;
}

int ip_base(const nnq_iprog *p, int t) {
    while (t >= 0 && p->t[t].alias >= 0) t = p->t[t].alias;
    return t;
}

/* ---- accessors ---- */

int nnq_iprog_note_count(const nnq_iprog *p) { return p->n_notes; }
const char *nnq_iprog_note(const nnq_iprog *p, int i) {
    return i >= 0 && i < p->n_notes ? p->notes[i] : NULL;
}
int nnq_iprog_float_nodes(const nnq_iprog *p) {
    int n = 0;
    for (int i = 0; i < p->n_ops; i++) n += p->ops[i].kind == IP_FLOAT;
    return n;
}
int nnq_iprog_input_count(const nnq_iprog *p) { return p->n_inputs; }
int nnq_iprog_output_count(const nnq_iprog *p) { return p->n_outputs; }
const char *nnq_iprog_input_name(const nnq_iprog *p, int i) {
    return i >= 0 && i < p->n_inputs ? p->t[p->inputs[i]].name : NULL;
}
const char *nnq_iprog_output_name(const nnq_iprog *p, int i) {
    return i >= 0 && i < p->n_outputs ? p->t[p->outputs[i]].name : NULL;
}

static void shape_of(const ip_tensor *t, nnq_tensor *s) {
    memset(s, 0, sizeof *s);
    s->dtype = t->onnx_dtype;
    s->rank = t->rank;
    for (int k = 0; k < t->rank; k++) s->dims[k] = t->dims[k];
    if (t->batched) s->dims[0] = -1;
}

void nnq_iprog_input_shape(const nnq_iprog *p, int i, nnq_tensor *shape) {
    shape_of(&p->t[p->inputs[i]], shape);
}
void nnq_iprog_output_shape(const nnq_iprog *p, int i, nnq_tensor *shape) {
    shape_of(&p->t[p->outputs[i]], shape);
}

void nnq_iprog_get_stats(const nnq_iprog *p, nnq_iprog_stats *s) {
    memset(s, 0, sizeof *s);
    s->ops = p->n_ops;
    for (int i = 0; i < p->n_ops; i++) {
        const ip_op *o = &p->ops[i];
        if (o->kind == IP_FLOAT) s->float_nodes++;
        if (o->kind != IP_LINEAR) continue;
        const ip_linear *l = o->par;
        const int64_t K = ip_linear_k(l), w = l->nb * l->out_ch * K;
        s->linear++;
        s->linear_packed += l->w_bits <= 4;
        s->linear_ref += l->w_bits == 16;
        s->weight_bytes += (size_t)(l->w_bits <= 4   ? l->nb * l->out_ch * ((K + 1) / 2)
                                    : l->w_bits <= 8 ? w
                                                     : 2 * w);
        /* MACs per image: output elements of one image times K */
        const ip_tensor *y = &p->t[o->out[0]];
        int64_t per = 1;
        for (int k = y->batched ? 1 : 0; k < y->rank; k++) per *= y->dims[k];
        s->macs += per * K;
    }
}

/* ---- validation ---- */

static nnq_status bad(const nnq_iprog *p, int op, const char *what) {
    return nnq_fail(NNQ_ERR_INVALID, "integer program: %s operator %d ('%s'): %s",
                    ip_kind_name(p->ops[op].kind), op, p->ops[op].name, what);
}

static int64_t numel_at1(const ip_tensor *t) { return nnq_shape_numel(t->rank, t->dims); }

static nnq_status check_linear(const nnq_iprog *p, int i) {
    const ip_op *o = &p->ops[i];
    const ip_linear *l = o->par;
    if (o->n_in != 1 || o->n_out != 1 || o->in[0] < 0) return bad(p, i, "one input, one output");
    if (l->in_ch < 1 || l->out_ch < 1 || l->groups < 1 || l->in_ch % l->groups ||
        l->out_ch % l->groups || l->nb < 1 || l->nb > (1 << 20))
        return bad(p, i, "channel counts");
    if (l->in_ch > (1 << 24) || l->out_ch > (1 << 24) || l->kh < 1 || l->kw < 1 ||
        l->kh > 4096 || l->kw > 4096 || l->sh < 1 || l->sw < 1 || l->dh < 1 || l->dw < 1 ||
        l->sh > 4096 || l->sw > 4096 || l->dh > 4096 || l->dw > 4096 || l->pt < 0 ||
        l->pl < 0 || l->pb < 0 || l->pr < 0 || l->pt > 4096 || l->pl > 4096 || l->pb > 4096 ||
        l->pr > 4096)
        return bad(p, i, "window");
    if (!l->conv && (l->groups != 1 || l->kh != 1 || l->kw != 1)) return bad(p, i, "fc window");
    if (l->conv && l->nb != 1) return bad(p, i, "conv with weight sets");
    if (!((l->w_bits >= 2 && l->w_bits <= 8 && l->w8) || (l->w_bits == 16 && l->w16)))
        return bad(p, i, "weight bits");
    if (l->x_zp < 0 || l->x_zp > 255 || l->y_zp < 0 || l->y_zp > 255) return bad(p, i, "zero points");
    if (l->out_mode == IP_OUT_U8) {
        if (!l->mult || !l->shift) return bad(p, i, "multipliers");
        for (int64_t c = 0; c < l->out_ch; c++)
            if (l->mult[c] < 0 || l->shift[c] < NNQ_REQUANT_SHIFT_MIN ||
                l->shift[c] > NNQ_REQUANT_SHIFT_MAX)
                return bad(p, i, "multiplier out of range");
        if (l->lo > l->hi) return bad(p, i, "clamp");
        for (int64_t c = 0; l->hi_ch && c < l->out_ch; c++)
            if (l->hi_ch[c] < l->lo) return bad(p, i, "per-channel clamp");
    } else if (l->out_mode == IP_OUT_ACC_FLOAT) {
        if (!l->deq) return bad(p, i, "dequantization scales");
    } else if (l->out_mode != IP_OUT_ACC_INT32) {
        return bad(p, i, "output mode");
    }
    const ip_tensor *x = &p->t[o->in[0]], *y = &p->t[o->out[0]];
    const nnq_dtype want_y = l->out_mode == IP_OUT_U8          ? NNQ_DT_UINT8
                             : l->out_mode == IP_OUT_ACC_FLOAT ? NNQ_DT_FLOAT
                                                               : NNQ_DT_INT32;
    if (x->dtype != NNQ_DT_UINT8 || y->dtype != want_y) return bad(p, i, "tensor types");
    if (x->batched != y->batched) return bad(p, i, "batch dims");
    if (l->conv) {
        if (x->rank != 4 || y->rank != 4 || x->dims[1] != l->in_ch || y->dims[1] != l->out_ch ||
            x->dims[0] != y->dims[0])
            return bad(p, i, "tensor shapes");
        const int64_t eh = l->dh * (l->kh - 1) + 1, ew = l->dw * (l->kw - 1) + 1;
        const int64_t ph = x->dims[2] + l->pt + l->pb, pw = x->dims[3] + l->pl + l->pr;
        if (ph < eh || pw < ew || y->dims[2] != (ph - eh) / l->sh + 1 ||
            y->dims[3] != (pw - ew) / l->sw + 1)
            return bad(p, i, "output size");
    } else {
        if (x->rank < 1 || y->rank != x->rank || x->dims[x->rank - 1] != l->in_ch ||
            y->dims[y->rank - 1] != l->out_ch)
            return bad(p, i, "tensor shapes");
        for (int k = 0; k < x->rank - 1; k++)
            if (x->dims[k] != y->dims[k]) return bad(p, i, "tensor shapes");
        if (l->nb > 1 && (x->rank != 3 || x->dims[0] != l->nb || x->batched))
            return bad(p, i, "weight sets must match the leading dim");
    }
    return NNQ_OK;
}

static bool same_shape(const ip_tensor *a, const ip_tensor *b) {
    if (a->rank != b->rank || a->batched != b->batched) return false;
    for (int k = 0; k < a->rank; k++)
        if (a->dims[k] != b->dims[k]) return false;
    return true;
}

static nnq_status check_pool(const nnq_iprog *p, int i) {
    const ip_op *o = &p->ops[i];
    const ip_pool *q = o->par;
    if (o->n_in != 1 || o->n_out != 1 || o->in[0] < 0) return bad(p, i, "one input, one output");
    const ip_tensor *x = &p->t[o->in[0]], *y = &p->t[o->out[0]];
    if (x->dtype != NNQ_DT_UINT8 || y->dtype != NNQ_DT_UINT8 || x->rank != 4 || y->rank != 4 ||
        x->dims[0] != y->dims[0] || x->dims[1] != y->dims[1] || x->batched != y->batched)
        return bad(p, i, "tensor shapes");
    if (q->kh < 1 || q->kw < 1 || q->kh > 4096 || q->kw > 4096 || q->sh < 1 || q->sw < 1 ||
        q->dh < 1 || q->dw < 1 || q->sh > 4096 || q->sw > 4096 || q->dh > 4096 || q->dw > 4096 ||
        q->pt < 0 || q->pl < 0 || q->pb < 0 || q->pr < 0 || q->pt >= q->kh * q->dh ||
        q->pb >= q->kh * q->dh || q->pl >= q->kw * q->dw || q->pr >= q->kw * q->dw)
        return bad(p, i, "window");
    if (q->zx < 0 || q->zx > 255 || q->zy < 0 || q->zy > 255 || q->lo > q->hi)
        return bad(p, i, "grid");
    /* y's size is what a floor or ceil rule gives: every output window
     * starts inside the padded input */
    const int64_t eh = q->dh * (q->kh - 1) + 1, ew = q->dw * (q->kw - 1) + 1;
    const int64_t ph = x->dims[2] + q->pt + q->pb, pw = x->dims[3] + q->pl + q->pr;
    if (ph < eh || pw < ew || y->dims[2] < 1 || y->dims[3] < 1 ||
        y->dims[2] > (ph - eh) / q->sh + 2 || y->dims[3] > (pw - ew) / q->sw + 2 ||
        (y->dims[2] - 1) * q->sh >= x->dims[2] + q->pt ||
        (y->dims[3] - 1) * q->sw >= x->dims[3] + q->pl)
        return bad(p, i, "output size");
    if (q->global && (q->kh != x->dims[2] || q->kw != x->dims[3])) return bad(p, i, "global window");
    if (q->taps != q->kh * q->kw) return bad(p, i, "taps");
    if (o->kind == IP_AVGPOOL && !q->same_grid) {
        if (!q->mult || !q->shift) return bad(p, i, "multipliers");
        for (int64_t n = 0; n <= q->taps; n++)
            if (q->mult[n] < 0 || q->shift[n] < NNQ_REQUANT_SHIFT_MIN ||
                q->shift[n] > NNQ_REQUANT_SHIFT_MAX)
                return bad(p, i, "multiplier out of range");
    }
    return NNQ_OK;
}

static nnq_status check_op(const nnq_iprog *p, int i) {
    const ip_op *o = &p->ops[i];
    if (!o->par && o->kind != IP_FLOAT) return bad(p, i, "no parameters");
    switch (o->kind) {
    case IP_QUANTIZE:
    case IP_DEQUANTIZE: {
        const ip_qparams *q = o->par;
        if (o->n_in != 1 || o->n_out != 1 || o->in[0] < 0) return bad(p, i, "one input, one output");
        const ip_tensor *x = &p->t[o->in[0]], *y = &p->t[o->out[0]];
        const nnq_dtype fx = o->kind == IP_QUANTIZE ? NNQ_DT_FLOAT : NNQ_DT_UINT8;
        if (x->dtype != fx || y->dtype != (fx == NNQ_DT_FLOAT ? NNQ_DT_UINT8 : NNQ_DT_FLOAT) ||
            !same_shape(x, y))
            return bad(p, i, "tensor types or shapes");
        if (q->n < 1 || q->qmin < 0 || q->qmax > 255 || q->qmin > q->qmax)
            return bad(p, i, "grid");
        if (q->n > 1 && (q->axis < 0 || q->axis >= x->rank || x->dims[q->axis] != q->n ||
                         (q->axis == 0 && x->batched)))
            return bad(p, i, "axis");
        for (int64_t c = 0; c < q->n; c++)
            if (!(q->scale[c] > 0) || q->zp[c] < 0 || q->zp[c] > 255) return bad(p, i, "scale or zero point");
        return NNQ_OK;
    }
    case IP_LINEAR: return check_linear(p, i);
    case IP_ADD: {
        const ip_add *a = o->par;
        if (o->n_in != 2 || o->n_out != 1 || o->in[0] < 0 || o->in[1] < 0)
            return bad(p, i, "two inputs, one output");
        const ip_tensor *x = &p->t[o->in[0]], *x2 = &p->t[o->in[1]], *y = &p->t[o->out[0]];
        if (x->dtype != NNQ_DT_UINT8 || x2->dtype != NNQ_DT_UINT8 || y->dtype != NNQ_DT_UINT8 ||
            !same_shape(x, x2) || !same_shape(x, y))
            return bad(p, i, "tensor types or shapes");
        if (a->shift < 1 || a->shift > IP_ADD_SHIFT_MAX || a->ma < 0 || a->mb < 0 ||
            a->ma > IP_ADD_MULT_MAX || a->mb > IP_ADD_MULT_MAX || a->za < 0 || a->za > 255 || a->zb < 0 || a->zb > 255 ||
            a->zy < 0 || a->zy > 255 || a->lo > a->hi)
            return bad(p, i, "parameters");
        return NNQ_OK;
    }
    case IP_CONCAT:
    case IP_REQUANT: {
        const ip_requant *r = o->par;
        if (o->n_out != 1 || r->n != o->n_in || r->n < 1 || (o->kind == IP_REQUANT && r->n != 1))
            return bad(p, i, "inputs");
        const ip_tensor *y = &p->t[o->out[0]];
        if (y->dtype != NNQ_DT_UINT8 || r->axis < 0 || r->axis >= y->rank || r->zy < 0 ||
            r->zy > 255 || r->lo > r->hi)
            return bad(p, i, "output");
        int64_t along = 0;
        for (int k = 0; k < r->n; k++) {
            if (o->in[k] < 0) return bad(p, i, "missing input");
            const ip_tensor *x = &p->t[o->in[k]];
            if (x->dtype != NNQ_DT_UINT8 || x->rank != y->rank || x->batched != y->batched)
                return bad(p, i, "input type or rank");
            for (int d = 0; d < y->rank; d++)
                if (d != r->axis && x->dims[d] != y->dims[d]) return bad(p, i, "input shape");
            along += x->dims[r->axis];
            if (r->r[k].z_in < 0 || r->r[k].z_in > 255 || r->r[k].mult < 0 ||
                r->r[k].shift < NNQ_REQUANT_SHIFT_MIN || r->r[k].shift > NNQ_REQUANT_SHIFT_MAX)
                return bad(p, i, "rescale");
        }
        if (along != y->dims[r->axis] || (r->axis == 0 && y->batched && r->n > 1))
            return bad(p, i, "concatenated size");
        return NNQ_OK;
    }
    case IP_MAXPOOL:
    case IP_AVGPOOL: return check_pool(p, i);
    case IP_LUT: {
        if (o->n_in != 1 || o->n_out != 1 || o->in[0] < 0) return bad(p, i, "one input, one output");
        const ip_tensor *x = &p->t[o->in[0]], *y = &p->t[o->out[0]];
        if (x->dtype != NNQ_DT_UINT8 || y->dtype != NNQ_DT_UINT8 || !same_shape(x, y))
            return bad(p, i, "tensor types or shapes");
        return NNQ_OK;
    }
    case IP_FLOAT: {
        const ip_float *f = o->par;
        if (!p->g || !f || f->node < 0 || f->node >= p->g->n_nodes) return bad(p, i, "node");
        return NNQ_OK;
    }
    default: return bad(p, i, "unknown kind");
    }
}

nnq_status ip_validate(const nnq_iprog *p) {
    char *defined = calloc((size_t)(p->n_tensors ? p->n_tensors : 1), 1);
    if (!defined) return nnq_fail(NNQ_ERR_NOMEM, "out of memory validating the integer program");
    nnq_status s = NNQ_OK;
    for (int i = 0; i < p->n_tensors && s == NNQ_OK; i++) {
        const ip_tensor *t = &p->t[i];
        const nnq_dtype d = t->dtype;
        if (d != NNQ_DT_UINT8 && d != NNQ_DT_FLOAT && d != NNQ_DT_INT32)
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): storage type", i, t->name);
        else if (t->rank < 0 || t->rank > NNQ_MAX_RANK || numel_at1(t) < 0 ||
                 (t->batched && (t->rank < 1 || t->dims[0] != 1)))
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): shape", i, t->name);
        else if (t->alias >= i || t->alias < -1)
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): alias", i, t->name);
        else if (t->alias >= 0 && (p->t[t->alias].dtype != d ||
                                   numel_at1(&p->t[t->alias]) != numel_at1(t) ||
                                   p->t[t->alias].batched != t->batched))
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): alias of another size",
                         i, t->name);
        else if (d == NNQ_DT_UINT8 && (t->zp < 0 || t->zp > 255 || !(t->scale >= 0)))
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): grid", i, t->name);
        for (int k = 0; s == NNQ_OK && k < t->rank; k++)
            if (t->dims[k] < 0)
                s = nnq_fail(NNQ_ERR_INVALID, "integer program: tensor %d ('%s'): shape", i, t->name);
    }
    for (int i = 0; i < p->n_inputs && s == NNQ_OK; i++) {
        if (p->inputs[i] < 0 || p->inputs[i] >= p->n_tensors || p->t[p->inputs[i]].alias >= 0)
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: input %d", i);
        else
            defined[p->inputs[i]] = 1;
    }
    for (int i = 0; i < p->n_ops && s == NNQ_OK; i++) {
        const ip_op *o = &p->ops[i];
        if (o->kind < 0 || o->kind >= IP_N_KINDS) {
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: operator %d: unknown kind", i);
            break;
        }
        for (int k = 0; k < o->n_in && s == NNQ_OK; k++)
            if (o->in[k] >= p->n_tensors || o->in[k] < -1 ||
                (o->in[k] >= 0 && !defined[ip_base(p, o->in[k])]))
                s = bad(p, i, "reads a tensor not computed before");
        for (int k = 0; k < o->n_out && s == NNQ_OK; k++)
            if (o->out[k] < 0 || o->out[k] >= p->n_tensors || p->t[o->out[k]].alias >= 0 ||
                defined[o->out[k]])
                s = bad(p, i, "writes a tensor twice or a view");
            else
                defined[o->out[k]] = 1;
        if (s == NNQ_OK) s = check_op(p, i);
    }
    for (int i = 0; i < p->n_outputs && s == NNQ_OK; i++)
        if (p->outputs[i] < 0 || p->outputs[i] >= p->n_tensors ||
            !defined[ip_base(p, p->outputs[i])])
            s = nnq_fail(NNQ_ERR_INVALID, "integer program: output %d is never computed", i);
    free(defined);
    return s;
}
