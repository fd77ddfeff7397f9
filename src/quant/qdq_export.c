/* The simulation as an ONNX QDQ model (rules in qdq_export.h). */
#include "quant/qdq_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/qmath.h"
#include "core/str.h"

#define QDQ_MIN_OPSET 13

/* Opset 11/12 ops whose meaning changed by opset 13: the export refuses to
 * silently reinterpret them. */
static const char *const changed_by_13[] = {"Softmax", "LogSoftmax", "Hardmax", "Squeeze",
                                            "Unsqueeze", "Split", "ReduceSum"};

const char *nnq_qsim_tensor_name(const nnq_qsim *s, int quant) {
    const nnq_qsim_quant *q = &s->quant[quant];
    const nnq_graph *g = s->g;
    /* A quantized graph output: the quantized value kept the output's name. */
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == q->output) return g->values[q->output].name;
    return g->values[q->input].name;
}

/* A free value name "<base><suffix>" (numbered if taken). */
static nnq_status unique_name(const nnq_graph *g, const char *base, const char *suffix,
                              char *buf, size_t cap) {
    char want[NNQ_MAX_NAME + 64];
    snprintf(want, sizeof want, "%s%s", base, suffix);
    return nnq_graph_unique_name(g, want, buf, cap);
}

static nnq_status add_init(nnq_graph *g, const char *base, const char *suffix, nnq_tensor *t,
                           int *out) {
    char name[NNQ_MAX_NAME + 64];
    nnq_status st = unique_name(g, base, suffix, name, sizeof name);
    if (st == NNQ_OK) st = nnq_graph_add_initializer(g, name, t, out);
    if (st != NNQ_OK) nnq_tensor_release(t);
    return st;
}

/* Scale and zero point initializers of quantizer q: scalars per tensor,
 * [n] per channel; zero points in `zdt`. */
static nnq_status add_params(nnq_graph *g, const char *base, const nnq_quantizer *q,
                             nnq_dtype zdt, int *sv, int *zv) {
    nnq_tensor st = {0}, zt = {0};
    const int64_t dims[1] = {q->n};
    const int rank = q->n > 1 || q->axis >= 0 ? 1 : 0;
    NNQ_TRY(nnq_tensor_alloc(&st, NNQ_DT_FLOAT, rank, dims));
    nnq_status s = nnq_tensor_alloc(&zt, zdt, rank, dims);
    if (s != NNQ_OK) {
        nnq_tensor_release(&st);
        return s;
    }
    for (int c = 0; c < q->n; c++) {
        nnq_f32(&st)[c] = q->scale[c];
        if (zdt == NNQ_DT_UINT8) ((uint8_t *)zt.data)[c] = (uint8_t)q->zero_point[c];
        else if (zdt == NNQ_DT_INT8) ((int8_t *)zt.data)[c] = (int8_t)q->zero_point[c];
        else ((int32_t *)zt.data)[c] = q->zero_point[c];
    }
    s = add_init(g, base, "_scale", &st, sv);
    if (s != NNQ_OK) {
        nnq_tensor_release(&zt);
        return s;
    }
    return add_init(g, base, "_zero_point", &zt, zv);
}

static void clear_attrs(nnq_node *nd) {
    for (int i = 0; i < nd->n_attrs; i++) nnq_attr_release(&nd->attrs[i]);
    nd->n_attrs = 0;
}

/* Turn FakeQuant node n into `op` (default domain) reading `in`. */
static nnq_status become(nnq_graph *g, int n, const char *op, int n_in, const int *in,
                         const char *name) {
    nnq_node *nd = &g->nodes[n];
    char *t = nnq_strdup(op), *d = nnq_strdup(""), *nm = nnq_strdup(name);
    int *ins = malloc(sizeof *ins * (size_t)n_in);
    if (!t || !d || !nm || !ins) {
        free(t), free(d), free(nm), free(ins);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting QDQ");
    }
    memcpy(ins, in, sizeof *ins * (size_t)n_in);
    free(nd->op_type), free(nd->domain), free(nd->name), free(nd->inputs);
    nd->op_type = t;
    nd->domain = d;
    nd->name = nm;
    nd->inputs = ins;
    nd->n_inputs = n_in;
    clear_attrs(nd);
    /* A folded constant output is recomputed by whoever loads the model. */
    nnq_tensor *o = &g->values[nd->outputs[0]].t;
    if (o->data) {
        if (o->owns) free(o->data);
        o->data = NULL;
        o->owns = false;
    }
    return NNQ_OK;
}

static nnq_status export_param(const nnq_qsim *s, nnq_graph *g, int qi) {
    const nnq_qsim_quant *q = &s->quant[qi];
    const nnq_tensor *x = &g->values[q->input].t;
    const char *base = g->values[q->input].name;
    const bool bias = q->role == NNQ_QROLE_BIAS;
    if (!bias && q->q.cfg.bits > 8)
        return nnq_fail(NNQ_ERR_UNSUPPORTED,
                        "weight '%s' is quantized to %d bits; opset-13 QDQ stores at most 8 "
                        "(use the simulation or --encodings for wider grids)",
                        base, q->q.cfg.bits);
    nnq_tensor it = {0};
    const nnq_dtype dt = bias ? NNQ_DT_INT32 : (q->q.qmin < 0 ? NNQ_DT_INT8 : NNQ_DT_UINT8);
    NNQ_TRY(nnq_tensor_alloc(&it, dt, x->rank, x->dims));
    const int64_t numel = nnq_tensor_numel(x);
    int32_t *tmp = malloc(sizeof *tmp * (size_t)(numel ? numel : 1));
    if (!tmp) {
        nnq_tensor_release(&it);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory exporting '%s'", base);
    }
    if (bias) {
        for (int64_t i = 0; i < numel; i++) {
            tmp[i] = (int32_t)nnq_quantize_bias(nnq_f32(x)[i], q->q.scale[q->q.n > 1 ? i : 0]);
        }
    } else {
        int64_t outer = 1, inner = 1;
        if (q->q.n > 1) {
            for (int k = 0; k < q->q.axis; k++) outer *= x->dims[k];
            for (int k = q->q.axis + 1; k < x->rank; k++) inner *= x->dims[k];
        } else {
            inner = numel;
        }
        nnq_quantizer_quantize(&q->q, nnq_f32(x), tmp, outer, inner);
    }
    for (int64_t i = 0; i < numel; i++) {
        if (dt == NNQ_DT_INT8) ((int8_t *)it.data)[i] = (int8_t)tmp[i];
        else if (dt == NNQ_DT_UINT8) ((uint8_t *)it.data)[i] = (uint8_t)tmp[i];
        else ((int32_t *)it.data)[i] = tmp[i];
    }
    free(tmp);
    int iv, sv, zv;
    NNQ_TRY(add_init(g, base, "_quantized", &it, &iv));
    NNQ_TRY(add_params(g, base, &q->q, dt, &sv, &zv));
    const int in[3] = {iv, sv, zv};
    char name[NNQ_MAX_NAME + 32];
    snprintf(name, sizeof name, "%s_dequantize", base);
    NNQ_TRY(become(g, q->node, "DequantizeLinear", 3, in, name));
    if (q->q.n > 1 || q->q.axis >= 0) NNQ_TRY(nnq_node_set_int(&g->nodes[q->node], "axis", q->q.axis));
    return NNQ_OK;
}

static nnq_status add_scalar(nnq_graph *g, const char *base, const char *suffix, float v,
                             int *out) {
    nnq_tensor t = {0};
    NNQ_TRY(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 0, NULL));
    nnq_f32(&t)[0] = v;
    return add_init(g, base, suffix, &t, out);
}

static nnq_status export_act(const nnq_qsim *s, nnq_graph *g, int qi) {
    const nnq_qsim_quant *q = &s->quant[qi];
    const char *tname = nnq_qsim_tensor_name(s, qi);
    if (q->q.cfg.bits > 8)
        return nnq_fail(NNQ_ERR_UNSUPPORTED,
                        "activation '%s' is quantized to %d bits; opset-13 QDQ stores at most 8",
                        tname, q->q.cfg.bits);
    const bool is_signed = q->q.qmin < 0;
    const nnq_dtype dt = is_signed ? NNQ_DT_INT8 : NNQ_DT_UINT8;
    const int32_t smin = is_signed ? -128 : 0, smax = is_signed ? 127 : 255;
    char base[NNQ_MAX_NAME + 8], name[NNQ_MAX_NAME + 64];
    snprintf(base, sizeof base, "%s", tname);
    int x = q->input;
    if (q->q.qmin > smin || q->q.qmax < smax) {
        float lo, hi;
        nnq_quantizer_get_range(&q->q, 0, &lo, &hi);
        int lv, hv, cv, node;
        NNQ_TRY(add_scalar(g, base, "_clip_min", lo, &lv));
        NNQ_TRY(add_scalar(g, base, "_clip_max", hi, &hv));
        NNQ_TRY(unique_name(g, base, "_clipped", name, sizeof name));
        NNQ_TRY(nnq_graph_add_value(g, name, &cv));
        const int in[3] = {x, lv, hv};
        snprintf(name, sizeof name, "%s_clip", base);
        NNQ_TRY(nnq_graph_add_node(g, name, "Clip", "", 3, in, 1, &cv, &node));
        x = cv;
    }
    int sv, zv, qv, node;
    NNQ_TRY(add_params(g, base, &q->q, dt, &sv, &zv));
    NNQ_TRY(unique_name(g, base, "_quantized", name, sizeof name));
    NNQ_TRY(nnq_graph_add_value(g, name, &qv));
    const int qin[3] = {x, sv, zv};
    snprintf(name, sizeof name, "%s_quantize", base);
    NNQ_TRY(nnq_graph_add_node(g, name, "QuantizeLinear", "", 3, qin, 1, &qv, &node));
    const int din[3] = {qv, sv, zv};
    snprintf(name, sizeof name, "%s_dequantize", base);
    return become(g, q->node, "DequantizeLinear", 3, din, name);
}

/* Initializers no node reads any more (float weights replaced by their
 * integers) are dropped. */
static void drop_unused_initializers(nnq_graph *g) {
    bool *used = calloc((size_t)g->n_values + 1, 1);
    if (!used) return; /* harmless: they would just be exported */
    for (int n = 0; n < g->n_nodes; n++)
        for (int k = 0; k < g->nodes[n].n_inputs; k++)
            if (g->nodes[n].inputs[k] >= 0) used[g->nodes[n].inputs[k]] = true;
    for (int i = 0; i < g->n_outputs; i++) used[g->outputs[i]] = true;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].is_initializer && !used[v]) {
            g->values[v].is_initializer = false;
            nnq_tensor_release(&g->values[v].t);
            g->values[v].t.dtype = NNQ_DT_UNDEFINED;
            g->values[v].t.rank = -1;
        }
    free(used);
}

static nnq_status check_opset(nnq_graph *g) {
    const int64_t opset = nnq_graph_opset(g);
    if (opset >= QDQ_MIN_OPSET) return NNQ_OK;
    for (int n = 0; n < g->n_nodes; n++)
        for (size_t k = 0; k < sizeof changed_by_13 / sizeof changed_by_13[0]; k++)
            if (strcmp(g->nodes[n].op_type, changed_by_13[k]) == 0) {
                char label[256];
                return nnq_fail(NNQ_ERR_UNSUPPORTED,
                                "QDQ export needs opset 13 but the model is opset %lld and its %s node "
                                "'%s' changed meaning in opset 13; re-export the model at opset 13",
                                (long long)opset, g->nodes[n].op_type,
                                nnq_node_label(g, n, label, sizeof label));
            }
    return nnq_graph_set_opset(g, "", QDQ_MIN_OPSET);
}

nnq_status nnq_qsim_to_qdq(const nnq_qsim *s, nnq_graph **out) {
    *out = NULL;
    nnq_graph *g = NULL;
    nnq_status st = nnq_graph_clone(s->g, &g);
    if (st != NNQ_OK) return st;
    for (int i = 0; i < s->n_quant && st == NNQ_OK; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        char key[NNQ_MAX_NAME + 16], val[16];
        if (!q->enabled) {
            const int in[1] = {q->input};
            char name[NNQ_MAX_NAME + 16];
            snprintf(name, sizeof name, "%s_float", g->values[q->input].name);
            st = become(g, q->node, "Identity", 1, in, name);
            /* An Identity over a constant is folded again by the loader. */
            continue;
        }
        if (q->role == NNQ_QROLE_ACT) st = export_act(s, g, i);
        else st = export_param(s, g, i);
        if (st == NNQ_OK && q->role != NNQ_QROLE_BIAS) {
            snprintf(key, sizeof key, "nnq.bits:%s", nnq_qsim_tensor_name(s, i));
            snprintf(val, sizeof val, "%d", q->q.cfg.bits);
            st = nnq_graph_set_meta(g, key, val);
        }
    }
    if (st == NNQ_OK) st = check_opset(g);
    if (st == NNQ_OK) {
        drop_unused_initializers(g);
        st = nnq_graph_toposort(g);
    }
    if (st == NNQ_OK) st = nnq_graph_verify(g);
    if (st != NNQ_OK) {
        nnq_graph_free(g);
        return st;
    }
    *out = g;
    return NNQ_OK;
}

/* ---- encodings ---- */

static void write_enc(FILE *fp, const nnq_quantizer *q, int c) {
    float lo, hi;
    nnq_quantizer_get_range(q, c, &lo, &hi);
    fprintf(fp,
            "{\"bitwidth\": %d, \"dtype\": \"int\", \"is_symmetric\": \"%s\", \"max\": %.9g, "
            "\"min\": %.9g, \"offset\": %d, \"scale\": %.9g}",
            q->cfg.bits, q->cfg.symmetric ? "True" : "False", (double)hi, (double)lo,
            (int)(q->qmin - q->zero_point[c]), (double)q->scale[c]);
}

static void write_json_string(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(fp, "\\%c", c);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}

static void write_section(FILE *fp, const nnq_qsim *s, nnq_qrole role) {
    bool first = true;
    for (int i = 0; i < s->n_quant; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        if (q->role != role || !q->enabled) continue;
        fprintf(fp, "%s\n    ", first ? "" : ",");
        first = false;
        write_json_string(fp, nnq_qsim_tensor_name(s, i));
        fprintf(fp, ": [");
        for (int c = 0; c < q->q.n; c++) {
            if (c) fprintf(fp, ", ");
            write_enc(fp, &q->q, c);
        }
        fprintf(fp, "]");
    }
    fprintf(fp, "%s", first ? "" : "\n  ");
}

nnq_status nnq_qsim_write_encodings(const nnq_qsim *s, const char *path) {
    nnq_atomic_file w;
    NNQ_TRY(nnq_atomic_open(&w, path));
    fprintf(w.fp, "{\n  \"version\": \"0.6.1\",\n  \"activation_encodings\": {");
    write_section(w.fp, s, NNQ_QROLE_ACT);
    fprintf(w.fp, "},\n  \"param_encodings\": {");
    write_section(w.fp, s, NNQ_QROLE_WEIGHT);
    fprintf(w.fp, "}\n}\n");
    if (ferror(w.fp)) {
        nnq_atomic_abort(&w);
        return nnq_fail(NNQ_ERR_IO, "writing encodings to %s failed", path);
    }
    return nnq_atomic_commit(&w);
}
