/* Quantization simulation: quantizer placement on real models, the
 * simulation's function (off = float, 16-bit ≈ float, 8-bit close),
 * calibration, bias grids, per-layer settings, and the QDQ export running
 * the same arithmetic as the simulation, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/qmath.h"
#include "data/dataset.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "ptq/ptq.h"
#include "quant/qdq_export.h"
#include "quant/qsim.h"
#include "train/trainer.h"

#define MNV2S "tests/fixtures/models/mnv2s.onnx"
#define RESNETS "tests/fixtures/models/resnets.onnx"

static nnq_dataset calib, test;

static nnq_graph *load(const char *path) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_onnx_load(path, &g));
    if (g) CHECK_OK(nnq_graph_prepare(g));
    return g;
}

static int count_op(const nnq_graph *g, const char *op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += strcmp(g->nodes[i].op_type, op) == 0;
    return n;
}

static int count_role(const nnq_qsim *s, nnq_qrole r) {
    int n = 0;
    for (int i = 0; i < s->n_quant; i++) n += s->quant[i].role == r;
    return n;
}

/* Logits of graph g on the first n test images (caller frees). */
static float *run(const nnq_graph *g, int64_t n) {
    nnq_exec *e = NULL;
    const nnq_exec_options o = {.threads = 2};
    CHECK_OK(nnq_exec_create(g, &o, &e));
    if (!e) return NULL;
    nnq_tensor x;
    nnq_dataset_batch(&test, 0, n, &x);
    float *out = NULL;
    if (nnq_exec_run(e, &x) == NNQ_OK) {
        const nnq_tensor *y = nnq_exec_output(e, 0);
        out = malloc(sizeof(float) * (size_t)nnq_tensor_numel(y));
        memcpy(out, y->data, sizeof(float) * (size_t)nnq_tensor_numel(y));
    } else {
        CHECK(!"run failed");
    }
    nnq_exec_free(e);
    return out;
}

/* Placement follows the rules of qsim.h on a MobileNetV2 with folded BN. */
static void test_placement_mnv2(void) {
    nnq_graph *g = load(MNV2S);
    if (!g) return;
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (!s) goto done;
    const int convs = count_op(g, "Conv"), clips = count_op(g, "Clip"), adds = count_op(g, "Add");
    CHECK(s->n_layers == convs + 1); /* + the classifier Gemm */
    CHECK(count_role(s, NNQ_QROLE_WEIGHT) == s->n_layers);
    CHECK(count_role(s, NNQ_QROLE_BIAS) == s->n_layers);
    /* input + after each Clip + each unfused conv + adds + pooled (tied) + logits */
    CHECK(count_role(s, NNQ_QROLE_ACT) == 1 + clips + (convs - clips) + adds + 1 + 1);
    int tied = 0, logits = 0;
    for (int i = 0; i < s->n_quant; i++) {
        const nnq_qsim_quant *q = &s->quant[i];
        tied += q->tied >= 0;
        logits += q->is_logits;
        if (q->role != NNQ_QROLE_ACT) continue;
        const int p = s->g->values[q->input].producer;
        if (p < 0) continue;
        const char *op = s->g->nodes[p].op_type;
        /* Never between a conv and its fused ReLU6, never after Flatten. */
        CHECK(strcmp(op, "Flatten") != 0);
        if (strcmp(op, "Conv") == 0) {
            const int L = q->layer;
            CHECK(L >= 0 && s->layers[L].act_node < 0);
        }
    }
    CHECK(tied == 1 && logits == 1);
    int first = 0, last = 0;
    for (int i = 0; i < s->n_layers; i++) {
        first += s->layers[i].is_first;
        last += s->layers[i].is_last;
        if (s->layers[i].act_node >= 0)
            CHECK(strcmp(s->g->nodes[s->layers[i].act_node].op_type, "Clip") == 0);
    }
    CHECK(first == 1 && last == 1);
    /* The model's interface is unchanged. */
    CHECK(strcmp(s->g->values[s->g->outputs[0]].name, g->values[g->outputs[0]].name) == 0);
    CHECK(strcmp(s->g->values[s->g->inputs[0]].name, g->values[g->inputs[0]].name) == 0);
done:
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

/* After CLE a ReLU6 is Relu + Min(per-channel cap): both belong to the
 * layer, one quantizer after the Min, none between; the simulation with
 * quantizers off is the float function. */
static void test_placement_capped(void) {
    nnq_graph *g = load(MNV2S);
    if (!g) return;
    const int acts_before = count_op(g, "Clip");
    int pairs = 0, capped = 0;
    CHECK_OK(nnq_ptq_cle(g, NULL, NULL, &pairs, &capped, NULL));
    CHECK_OK(nnq_graph_prepare(g));
    CHECK(capped == 18 && count_op(g, "Min") == capped && count_op(g, "Clip") == acts_before - capped);
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (!s) goto done;
    int with_cap = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        if (L->cap_node < 0) continue;
        with_cap++;
        const nnq_node *cap = &s->g->nodes[L->cap_node], *act = &s->g->nodes[L->act_node];
        CHECK(strcmp(cap->op_type, "Min") == 0 && strcmp(act->op_type, "Relu") == 0);
        CHECK(cap->inputs[0] == act->outputs[0] && L->output == cap->outputs[0]);
        CHECK(L->output_q >= 0 && s->quant[L->output_q].input == L->output);
        CHECK(s->value_quant[act->outputs[0]] < 0); /* nothing between Relu and Min */
    }
    CHECK(with_cap == capped);
    /* one activation quantizer per layer output still: the Min's replaces the Clip's */
    const int convs = count_op(g, "Conv"), adds = count_op(g, "Add");
    CHECK(count_role(s, NNQ_QROLE_ACT) == 1 + convs + adds + 1 + 1);
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    nnq_qsim_enable_role(s, NNQ_QROLE_WEIGHT, false);
    nnq_qsim_enable_role(s, NNQ_QROLE_BIAS, false);
    CHECK_OK(nnq_qsim_sync(s));
    float *a = run(g, 16), *b = run(s->g, 16);
    if (a && b) CHECK(memcmp(a, b, sizeof(float) * 16 * 10) == 0);
    free(a);
    free(b);
done:
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

/* ResNet: Add + Relu is one quantized step; no quantizer on the Add itself. */
static void test_placement_resnet(void) {
    nnq_graph *g = load(RESNETS);
    if (!g) return;
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (s) {
        for (int i = 0; i < s->n_quant; i++) {
            const nnq_qsim_quant *q = &s->quant[i];
            if (q->role != NNQ_QROLE_ACT) continue;
            const int p = s->g->values[q->input].producer;
            if (p >= 0 && strcmp(s->g->nodes[p].op_type, "Add") == 0) {
                /* an Add is quantized only when no Relu follows it */
                int relu_readers = 0;
                for (int n = 0; n < s->g->n_nodes; n++)
                    for (int k = 0; k < s->g->nodes[n].n_inputs; k++)
                        if (s->g->nodes[n].inputs[k] == q->input &&
                            strcmp(s->g->nodes[n].op_type, "Relu") == 0)
                            relu_readers++;
                CHECK(relu_readers == 0);
            }
        }
    }
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

static void test_function(void) {
    nnq_graph *g = load(MNV2S);
    if (!g) return;
    const int64_t n = 64;
    float *ref = run(g, n);
    nnq_qsim *s = NULL;
    /* All quantizers off: the float function, bit for bit. */
    CHECK_OK(nnq_qsim_create(g, NULL, &s));
    if (!s || !ref) goto done;
    nnq_qsim_enable_role(s, NNQ_QROLE_WEIGHT, false);
    nnq_qsim_enable_role(s, NNQ_QROLE_ACT, false);
    CHECK_OK(nnq_qsim_sync(s));
    float *off = run(s->g, n);
    CHECK(off && memcmp(off, ref, sizeof(float) * (size_t)(n * 10)) == 0);
    free(off);
    nnq_qsim_free(s);
    s = NULL;
    /* 16 bits: indistinguishable from float; 8 bits: close. */
    const int bits[2] = {16, 8};
    const double tol[2] = {1e-7, 1e-3};
    for (int k = 0; k < 2; k++) {
        nnq_qsim_options o;
        nnq_qsim_options_default(&o);
        o.weights.bits = o.acts.bits = bits[k];
        CHECK_OK(nnq_qsim_create(g, &o, &s));
        if (!s) break;
        nnq_calib_options co;
        nnq_calib_options_default(&co);
        co.method = co.logits_method = NNQ_RANGE_MINMAX;
        /* Calibrated on the evaluated images themselves: no clipping, so
         * what remains is rounding error alone. */
        CHECK_OK(nnq_qsim_calibrate(s, &test, &co));
        float *y = run(s->g, n);
        const double e = y ? check_nmse(y, ref, n * 10) : 1;
        fprintf(stderr, "W%dA%d per-channel min-max: logits nmse %.3g\n", bits[k], bits[k], e);
        CHECK(e < tol[k]);
        free(y);
        /* Biases sit on the int32 grid of s_x * s_w (to float precision,
         * which cannot hold integers beyond 2^24 exactly). */
        for (int i = 0; bits[k] == 8 && i < s->n_quant; i++) {
            const nnq_qsim_quant *q = &s->quant[i];
            if (q->role != NNQ_QROLE_BIAS || !q->enabled) continue;
            const nnq_tensor *b = &s->g->values[q->output].t;
            for (int64_t c = 0; c < nnq_tensor_numel(b); c++) {
                const double r = (double)nnq_f32(b)[c] / (double)q->q.scale[c];
                CHECK(fabs(r - nearbyint(r)) < 1e-3 + 2e-7 * fabs(r));
            }
        }
        nnq_qsim_free(s);
        s = NULL;
    }
done:
    free(ref);
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

/* First/last layers at 8 bits, a layer kept in float, unknown names. */
static void test_layer_settings(void) {
    nnq_graph *g = load(MNV2S);
    if (!g) return;
    nnq_qsim *s = NULL;
    nnq_qsim_options o;
    nnq_qsim_options_default(&o);
    o.weights.bits = o.acts.bits = 4;
    o.first_last_bits = 8;
    CHECK_OK(nnq_qsim_create(g, &o, &s));
    if (!s) goto done;
    char keep[256] = "";
    for (int i = 0; i < s->n_layers; i++) {
        const nnq_qsim_layer *L = &s->layers[i];
        const int want = L->is_first || L->is_last ? 8 : 4;
        CHECK(s->quant[L->weight_q].q.cfg.bits == want);
        if (L->is_first || L->is_last) CHECK(s->quant[L->input_q].q.cfg.bits == 8);
        if (L->is_last) CHECK(s->quant[L->output_q].q.cfg.bits == 8);
        if (!L->is_first && !L->is_last && !keep[0]) snprintf(keep, sizeof keep, "%s", L->name);
    }
    nnq_qsim_free(s);
    s = NULL;
    nnq_layer_override ov = {.name = keep, .keep_float = true};
    o.overrides = &ov;
    o.n_overrides = 1;
    CHECK_OK(nnq_qsim_create(g, &o, &s));
    if (s) {
        const int L = nnq_qsim_find_layer(s, keep);
        CHECK(L >= 0);
        if (L >= 0) {
            const nnq_qsim_quant *w = &s->quant[s->layers[L].weight_q];
            CHECK(!w->enabled);
            const nnq_tensor *in = &s->g->values[w->input].t, *out = &s->g->values[w->output].t;
            CHECK(out->data && memcmp(in->data, out->data,
                                      sizeof(float) * (size_t)nnq_tensor_numel(in)) == 0);
        }
        nnq_qsim_free(s);
        s = NULL;
    }
    ov.name = "no_such_layer";
    CHECK_STATUS(nnq_qsim_create(g, &o, &s), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "no_such_layer") != NULL);
done:
    nnq_qsim_free(s);
    nnq_graph_free(g);
}

/* The exported QDQ model computes exactly what the simulation computes:
 * 8-bit, and 4-bit activations (Clip + 8-bit storage) with 4-bit weights. */
static void test_qdq_export(void) {
    nnq_graph *g = load(MNV2S);
    if (!g) return;
    const int bits[2][2] = {{8, 8}, {4, 4}};
    for (int k = 0; k < 2; k++) {
        nnq_qsim_options o;
        nnq_qsim_options_default(&o);
        o.weights.bits = bits[k][0];
        o.acts.bits = bits[k][1];
        o.weights.per_channel = k == 0;
        nnq_qsim *s = NULL;
        CHECK_OK(nnq_qsim_create(g, &o, &s));
        if (!s) break;
        nnq_calib_options co;
        nnq_calib_options_default(&co);
        co.method = co.logits_method = NNQ_RANGE_MINMAX;
        co.n = 128;
        CHECK_OK(nnq_qsim_calibrate(s, &calib, &co));
        nnq_graph *q = NULL, *back = NULL;
        unsigned char *buf = NULL;
        size_t len = 0;
        CHECK_OK(nnq_qsim_to_qdq(s, &q));
        if (q) CHECK_OK(nnq_onnx_save_bytes(q, &buf, &len));
        if (buf) CHECK_OK(nnq_onnx_load_bytes(buf, len, "qdq", &back));
        if (back) {
            CHECK(nnq_graph_opset(back) >= 13);
            CHECK(count_op(back, "QuantizeLinear") > 0 && count_op(back, "DequantizeLinear") > 0);
            CHECK((count_op(back, "Clip") > count_op(g, "Clip")) == (bits[k][1] < 8));
            char key[64];
            snprintf(key, sizeof key, "nnq.bits:%s", back->values[back->outputs[0]].name);
            const char *meta = nnq_graph_get_meta(back, key);
            CHECK(meta && atoi(meta) == (k == 0 ? 8 : 4));
            /* Weights are stored as integers on their grid. */
            int int_weights = 0;
            for (int v = 0; v < back->n_values; v++) {
                const nnq_value *val = &back->values[v];
                if (!val->is_initializer || val->t.dtype != NNQ_DT_INT8 || val->t.rank < 2) continue;
                int_weights++;
                const int8_t *d = val->t.data;
                for (int64_t i = 0; i < nnq_tensor_numel(&val->t); i++)
                    CHECK(d[i] >= -(1 << (bits[k][0] - 1)) && d[i] < (1 << (bits[k][0] - 1)));
            }
            CHECK(int_weights == s->n_layers);
            CHECK_OK(nnq_graph_prepare(back));
            float *a = run(s->g, 64), *b = run(back, 64);
            CHECK(a && b && memcmp(a, b, sizeof(float) * 640) == 0);
            free(a);
            free(b);
        }
        /* Encodings: one entry per weight channel and per activation. */
        const char *path = "build-test-encodings.json";
        CHECK_OK(nnq_qsim_write_encodings(s, path));
        unsigned char *js = NULL;
        size_t jl = 0;
        FILE *fp = fopen(path, "rb");
        if (fp) {
            js = calloc(1, 1 << 22);
            jl = fread(js, 1, (1 << 22) - 1, fp);
            fclose(fp);
        }
        int want = 0, got = 0;
        for (int i = 0; i < s->n_quant; i++)
            if (s->quant[i].role != NNQ_QROLE_BIAS && s->quant[i].enabled) want += s->quant[i].q.n;
        for (const char *p = (const char *)js; js && (p = strstr(p, "\"scale\"")); p++) got++;
        CHECK(jl > 0 && got == want);
        CHECK(js && strstr((const char *)js, "\"param_encodings\"") &&
              strstr((const char *)js, "\"activation_encodings\""));
        free(js);
        remove(path);
        free(buf);
        nnq_graph_free(back);
        nnq_graph_free(q);
        nnq_qsim_free(s);
    }
    nnq_graph_free(g);
}

int main(void) {
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, 256, &calib));
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 64, &test));
    test_placement_mnv2();
    test_placement_resnet();
    test_placement_capped();
    test_function();
    test_layer_settings();
    test_qdq_export();
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
    return check_finish("test_qsim");
}
