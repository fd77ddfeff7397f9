/* Quantization-aware training end to end (qat/qat.h):
 *  - the trainable simulation each method builds: which parameters learn,
 *    LSQ's gradient scale 1/sqrt(N Qp) per quantizer (N counted here from
 *    an actual forward), LSQ+'s learned offsets, tied pooling quantizers
 *    sharing their source's parameters, BN kept (per-channel) or folded;
 *  - BN folded into the per-channel scale at export: the same integers
 *    (sign-flipped for a negative gamma, clamped and counted at qmin), the
 *    folded model agreeing with the trained one, the QDQ file computing
 *    exactly what the exported simulation computes;
 *  - a short QAT of a fixture model (W3A3, 512 images, one epoch) improves
 *    on its PTQ start by a wide margin, and the exported QDQ model
 *    evaluates to exactly the trained simulation's top-1;
 *  - STE with fixed ranges leaves them fixed; with running ranges, (s, z)
 *    follow the averaged min/max;
 *  - resuming from a checkpoint reproduces an uninterrupted run bit for
 *    bit (weights, BN statistics, scales, offsets);
 *  - distillation from the float model: at 8 bits and no update the loss is
 *    near zero where cross-entropy is not;
 *  - BN re-estimation gives statistics independent of the old ones. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/qmath.h"
#include "data/dataset.h"
#include "models/models.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "qat/qat.h"
#include "quant/qdq_export.h"

static char CKPT_PATH[64], ONNX_PATH[64];
static nnq_dataset train_set, test_set;

static nnq_graph *tiny(void) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_build("tiny", 7, &g));
    if (g) CHECK_OK(nnq_graph_prepare(g));
    return g;
}

static nnq_qat_options options(nnq_qat_method m, bool per_channel, int bits) {
    nnq_qat_options o;
    nnq_qat_options_default(&o);
    o.method = m;
    o.qsim.weights.per_channel = per_channel;
    o.qsim.weights.bits = o.qsim.acts.bits = bits;
    o.calib_n = 128;
    return o;
}

static nnq_train_config train_cfg(int epochs, int64_t batch, float lr) {
    nnq_train_config c = nnq_train_defaults();
    c.optim = nnq_optim_defaults(NNQ_OPTIM_ADAM);
    c.epochs = epochs;
    c.batch = batch;
    c.lr = lr;
    c.threads = 2;
    return c;
}

static int fq_node(const nnq_graph *g, int out) {
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].n_outputs > 0 && g->nodes[n].outputs[0] == out &&
            strcmp(g->nodes[n].op_type, "FakeQuant") == 0)
            return n;
    return -1;
}

static int count_op(const nnq_graph *g, const char *op) {
    int k = 0;
    for (int n = 0; n < g->n_nodes; n++) k += strcmp(g->nodes[n].op_type, op) == 0;
    return k;
}

/* Logits of a graph on images [start, start + n) of d. */
static float *logits_of(const nnq_graph *g, const nnq_dataset *d, int64_t n) {
    nnq_exec *e = NULL;
    const nnq_exec_options eo = {.threads = 2};
    CHECK_OK(nnq_exec_create(g, &eo, &e));
    nnq_tensor x;
    nnq_dataset_batch(d, 0, n, &x);
    float *out = NULL;
    if (e && nnq_exec_run(e, &x) == NNQ_OK) {
        const nnq_tensor *y = nnq_exec_output(e, 0);
        out = malloc(sizeof(float) * (size_t)nnq_tensor_numel(y));
        memcpy(out, y->data, sizeof(float) * (size_t)nnq_tensor_numel(y));
    }
    nnq_exec_free(e);
    return out;
}

static int argmax10(const float *r) {
    int b = 0;
    for (int k = 1; k < 10; k++) b = r[k] > r[b] ? k : b;
    return b;
}

/* ---- the trainable simulation per method ---- */

static void check_method_graph(nnq_qat_method m) {
    nnq_graph *model = tiny();
    nnq_qat_options o = options(m, true, 4);
    nnq_qat *qa = NULL;
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (!qa) {
        nnq_graph_free(model);
        return;
    }
    const nnq_qsim *sim = qa->sim;
    const nnq_graph *g = qa->g;
    /* BN: two folded into the sim, both put back into g. */
    CHECK(qa->n_folded_bn == 2 && qa->n_bn == 2);
    CHECK(count_op(g, "BatchNormalization") == 2 && count_op(sim->g, "BatchNormalization") == 0);
    /* Features per image of every value, from a forward of one image. */
    nnq_exec *e = NULL;
    const nnq_exec_options eo = {.threads = 1, .keep_all = true};
    CHECK_OK(nnq_exec_create(g, &eo, &e));
    nnq_tensor x;
    nnq_dataset_batch(&train_set, 0, 1, &x);
    CHECK_OK(nnq_exec_run(e, &x));
    int learned = 0, offsets = 0, tied = 0;
    for (int i = 0; i < sim->n_quant; i++) {
        const nnq_qsim_quant *q = &sim->quant[i];
        const nnq_qat_quant *t = &qa->q[i];
        const int n = fq_node(g, q->output);
        CHECK(n >= 0);
        if (n < 0) continue;
        const nnq_node *nd = &g->nodes[n];
        if (q->tied >= 0) {
            tied++;
            CHECK(nd->inputs[1] == sim->quant[q->tied].scale_value &&
                  nd->inputs[2] == sim->quant[q->tied].zero_point_value);
            CHECK(!t->learn_scale && !t->learn_zp);
            continue;
        }
        const bool trainable = q->role != NNQ_QROLE_BIAS && q->enabled;
        CHECK(t->learn_scale == (trainable && m != NNQ_QAT_STE));
        CHECK(t->learn_zp == (trainable && m == NNQ_QAT_LSQ_PLUS && q->role == NNQ_QROLE_ACT));
        CHECK((nnq_node_attr_int(nd, "round_zero_point", 0) != 0) == t->learn_zp);
        learned += t->learn_scale;
        offsets += t->learn_zp;
        if (!t->learn_scale) {
            CHECK(nnq_node_attr_float(nd, "grad_scale", 1.0f) == 1.0f);
            continue;
        }
        int64_t N = q->role == NNQ_QROLE_WEIGHT
                        ? nnq_tensor_numel(&g->values[q->input].t) / q->q.n
                        : nnq_tensor_numel(nnq_exec_value(e, q->input));
        const int32_t qp = q->q.qmax - q->q.zero_point[0];
        CHECK_NEAR(nnq_node_attr_float(nd, "grad_scale", 0), 1.0 / sqrt((double)N * qp), 1e-7);
    }
    nnq_exec_free(e);
    /* tiny: 3 weights, input + 3 layer outputs + maxpools keep grids; GAP tied */
    CHECK(tied == 1);
    if (m != NNQ_QAT_STE) CHECK(learned == 3 + 4);
    if (m == NNQ_QAT_LSQ_PLUS) CHECK(offsets == 4);
    /* The trainer sees them: parameters = weights + biases + BN + learned. */
    nnq_train_config c = train_cfg(1, 64, 0.0f);
    nnq_dataset one = train_set;
    one.n = 64;
    nnq_train_result r;
    CHECK_OK(nnq_qat_train(qa, &one, NULL, &c, &r));
    int64_t want = 8 * 9 + 8 + 16 * 72 + 16 + 10 * 16 + 10 + 2 * (8 + 16);
    for (int i = 0; i < sim->n_quant; i++)
        want += (qa->q[i].learn_scale + qa->q[i].learn_zp) * sim->quant[i].q.n;
    CHECK(r.params == want);
    nnq_qat_free(qa);
    /* Per-tensor weights: BN folded before training. */
    o = options(m, false, 4);
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (qa) CHECK(qa->n_bn == 0 && count_op(qa->g, "BatchNormalization") == 0);
    nnq_qat_free(qa);
    nnq_graph_free(model);
}

static void test_method_graphs(void) {
    check_method_graph(NNQ_QAT_STE);
    check_method_graph(NNQ_QAT_LSQ);
    check_method_graph(NNQ_QAT_LSQ_PLUS);
}

/* ---- BN folded into the per-channel scale at export ---- */

/* Integers of weight quantizer wq over a weight in g (scale from g) or in
 * the sim (the sim quantizer's scale). */
static float int_of(float w, float s, const nnq_quantizer *q) {
    return nnq_quantize_f(w, s, 0.0f, (float)q->qmin, (float)q->qmax);
}

static void test_bn_export(int bits) {
    nnq_graph *model = tiny();
    nnq_qat_options o = options(NNQ_QAT_LSQ, true, bits);
    nnq_qat *qa = NULL;
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (!qa) {
        nnq_graph_free(model);
        return;
    }
    nnq_train_config c = train_cfg(1, 64, 1e-3f);
    nnq_dataset part = train_set, part_test = test_set;
    part.n = 256;
    part_test.n = 200;
    nnq_train_result r;
    CHECK_OK(nnq_qat_train(qa, &part, &part_test, &c, &r));
    const float *t_logits = logits_of(qa->g, &test_set, 200);
    /* The epoch's evaluation ran the inference network (rounding on, around
     * it only) that g is after training: the same top-1, up to an image
     * whose logits tie within float rounding. */
    int right = 0;
    for (int i = 0; t_logits && i < 200; i++) right += argmax10(t_logits + 10 * i) == test_set.labels[i];
    CHECK(r.has_test && fabs(r.test_accuracy * 200 - right) <= 1.0);
    CHECK_OK(nnq_qat_export(qa));
    CHECK(qa->export_clamped == 0);
    for (int k = 0; k < qa->n_bn; k++) {
        const nnq_qat_bn *b = &qa->bn[k];
        const nnq_qsim_layer *L = &qa->sim->layers[b->layer];
        const nnq_qsim_quant *wq = &qa->sim->quant[L->weight_q];
        const nnq_tensor *wt = &qa->g->values[L->weight].t;
        const float *ws = nnq_f32(&qa->sim->g->values[L->weight].t);
        const float *st = nnq_f32(&qa->g->values[wq->scale_value].t);
        const float *gamma = nnq_f32(&qa->g->values[b->scale].t);
        const float *var = nnq_f32(&qa->g->values[b->var].t);
        const int64_t ch = wt->dims[0], per = nnq_tensor_numel(wt) / ch;
        int64_t bad = 0, off_grid = 0;
        for (int64_t cc = 0; cc < ch; cc++) {
            const double a = gamma[cc] / sqrt(var[cc] + b->eps);
            CHECK_NEAR(wq->q.scale[cc], st[cc] * fabs(a), 1e-6 * st[cc] * fabs(a));
            for (int64_t i = 0; i < per; i++) {
                const float qt = int_of(nnq_f32(wt)[cc * per + i], st[cc], &wq->q);
                const float qs = int_of(ws[cc * per + i], wq->q.scale[cc], &wq->q);
                bad += (a < 0 ? -qt : qt) != qs;
                off_grid += ws[cc * per + i] != qs * wq->q.scale[cc]; /* stored on the grid */
            }
        }
        CHECK(bad == 0 && off_grid == 0);
    }
    /* The folded model against the trained one (BN in inference): the
     * same up to float rounding and the int32 bias grid. */
    const float *s_logits = logits_of(qa->sim->g, &test_set, 200);
    int agree = 0;
    for (int i = 0; t_logits && s_logits && i < 200; i++)
        agree += argmax10(t_logits + 10 * i) == argmax10(s_logits + 10 * i);
    fprintf(stderr, "bn export W%dA%d: %d/200 predictions agree with training, nmse %.3g\n",
            bits, bits, agree, t_logits && s_logits ? check_nmse(s_logits, t_logits, 2000) : -1.0);
    /* The shift after each kept BN carries the int32 rounding of the folded
     * bias: the same function up to float rounding (without it, 4 bits
     * differ by an nmse of ~1e-4 and 2 bits by ~2e-3, 161/200 agreeing). */
    CHECK(agree >= 199);
    CHECK(t_logits && s_logits && check_nmse(s_logits, t_logits, 2000) < 1e-6);
    /* The QDQ model computes what the exported simulation computes. */
    nnq_graph *qdq = NULL, *back = NULL;
    CHECK_OK(nnq_qsim_to_qdq(qa->sim, &qdq));
    CHECK_OK(nnq_onnx_save(qdq, ONNX_PATH));
    CHECK_OK(nnq_onnx_load(ONNX_PATH, &back));
    if (back) CHECK_OK(nnq_graph_prepare(back));
    float *q_logits = back ? logits_of(back, &test_set, 200) : NULL;
    CHECK(q_logits && s_logits && check_nmse(q_logits, s_logits, 2000) < 1e-10);
    for (int i = 0; q_logits && s_logits && i < 200; i++)
        CHECK(argmax10(q_logits + 10 * i) == argmax10(s_logits + 10 * i));
    /* A negative gamma flips the integers; q = qmin cannot flip (-qmin is
     * past qmax on a signed grid) and is clamped and counted (4 bits: fewer
     * leave the trained weights at qmin). */
    if (bits != 4) goto done;
    const nnq_qat_bn *b = &qa->bn[0];
    const nnq_qsim_layer *L = &qa->sim->layers[b->layer];
    const nnq_qsim_quant *wq = &qa->sim->quant[L->weight_q];
    float *w = nnq_f32(&qa->g->values[L->weight].t);
    const float s0 = nnq_f32(&qa->g->values[wq->scale_value].t)[0];
    const int64_t per = nnq_tensor_numel(&qa->g->values[L->weight].t) / wq->q.n;
    nnq_f32(&qa->g->values[b->scale].t)[0] *= -1.0f;
    w[0] = (float)wq->q.qmin * s0;
    w[1] = 3.0f * s0;
    CHECK_OK(nnq_qat_export(qa));
    CHECK(qa->export_clamped == 1);
    const float *ws = nnq_f32(&qa->sim->g->values[L->weight].t);
    CHECK(int_of(ws[0], wq->q.scale[0], &wq->q) == (float)wq->q.qmax);
    CHECK(int_of(ws[1], wq->q.scale[0], &wq->q) == -3.0f);
    for (int64_t i = 2; i < per; i++)
        CHECK(int_of(ws[i], wq->q.scale[0], &wq->q) ==
              -int_of(w[i], s0, &wq->q));
done:
    free((void *)t_logits);
    free((void *)s_logits);
    free(q_logits);
    nnq_graph_free(qdq);
    nnq_graph_free(back);
    nnq_qat_free(qa);
    nnq_graph_free(model);
    remove(ONNX_PATH);
}

/* ---- a short QAT of a fixture model ---- */

static void test_fixture_improves(void) {
    nnq_graph *model = NULL;
    CHECK_OK(nnq_onnx_load("tests/fixtures/models/mnv2s.onnx", &model));
    if (!model) return;
    CHECK_OK(nnq_graph_prepare(model));
    nnq_qat_options o = options(NNQ_QAT_LSQ, true, 3);
    o.calib_n = 256;
    nnq_qat *qa = NULL;
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (!qa) {
        nnq_graph_free(model);
        return;
    }
    nnq_dataset part = train_set, eval = test_set;
    part.n = 512;
    eval.n = 500;
    double loss, start, trained, exported, from_file, l2, l3;
    CHECK_OK(nnq_evaluate(qa->g, &eval, 100, 2, &loss, &start));
    nnq_train_config c = train_cfg(1, 64, 3e-4f);
    qa->opt.qlr_mult = 0.1f;
    nnq_train_result r;
    CHECK_OK(nnq_qat_train(qa, &part, NULL, &c, &r));
    CHECK_OK(nnq_evaluate(qa->g, &eval, 100, 2, &l2, &trained));
    CHECK_OK(nnq_qat_export(qa));
    CHECK_OK(nnq_evaluate(qa->sim->g, &eval, 100, 2, &l3, &exported));
    nnq_graph *qdq = NULL, *back = NULL;
    CHECK_OK(nnq_qsim_to_qdq(qa->sim, &qdq));
    CHECK_OK(nnq_onnx_save(qdq, ONNX_PATH));
    CHECK_OK(nnq_onnx_load(ONNX_PATH, &back));
    if (back) CHECK_OK(nnq_graph_prepare(back));
    CHECK_OK(nnq_evaluate(back, &eval, 100, 2, &loss, &from_file));
    fprintf(stderr, "mnv2s W3A3 lsq, 512 images: PTQ start %.1f%%, trained %.1f%%, exported %.1f%%, "
            "QDQ file %.1f%%, %.0f images/s\n", 100 * start, 100 * trained, 100 * exported,
            100 * from_file, r.images_per_s);
    CHECK(trained > start + 0.10);
    /* Without BN the trained graph is the exported simulation, bit for bit. */
    CHECK(exported == trained && l3 == l2);
    CHECK(from_file == exported);
    nnq_graph_free(qdq);
    nnq_graph_free(back);
    nnq_qat_free(qa);
    nnq_graph_free(model);
    remove(ONNX_PATH);
}

/* ---- STE: fixed and running ranges ---- */

static void test_ste_ranges(void) {
    nnq_graph *model = tiny();
    nnq_dataset part = train_set;
    part.n = 128;
    for (int ema = 0; ema <= 1; ema++) {
        nnq_qat_options o = options(NNQ_QAT_STE, false, 4);
        o.ema = ema ? 0.5f : 0.0f;
        nnq_qat *qa = NULL;
        CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
        if (!qa) continue;
        const int n = qa->sim->n_quant;
        float *s0 = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) s0[i] = nnq_f32(&qa->g->values[qa->sim->quant[i].scale_value].t)[0];
        nnq_train_config c = train_cfg(1, 32, 1e-3f);
        nnq_train_result r;
        CHECK_OK(nnq_qat_train(qa, &part, NULL, &c, &r));
        int moved = 0, with_state = 0;
        for (int i = 0; i < n; i++) {
            const nnq_qsim_quant *q = &qa->sim->quant[i];
            const nnq_qat_quant *t = &qa->q[i];
            if (q->role == NNQ_QROLE_BIAS || q->tied >= 0 || !q->enabled) continue;
            const float s = nnq_f32(&qa->g->values[q->scale_value].t)[0];
            moved += s != s0[i];
            CHECK(!t->learn_scale && !t->learn_zp);
            if (!ema) {
                CHECK(t->ema_lo < 0);
                continue;
            }
            with_state++;
            /* (s, z) is the quantizer's rule applied to the averaged range. */
            nnq_quantizer k;
            CHECK_OK(nnq_quantizer_copy(&k, &q->q));
            nnq_quantizer_set_range(&k, 0, nnq_f32(&qa->g->values[t->ema_lo].t)[0],
                                    nnq_f32(&qa->g->values[t->ema_hi].t)[0]);
            CHECK(k.scale[0] == s);
            CHECK((float)k.zero_point[0] == nnq_f32(&qa->g->values[q->zero_point_value].t)[0]);
            nnq_quantizer_free(&k);
        }
        if (ema) CHECK(with_state == 3 + 4 && moved >= 6);
        else CHECK(moved == 0);
        free(s0);
        nnq_qat_free(qa);
    }
    nnq_graph_free(model);
}

/* ---- resume ---- */

static nnq_qat *run_resumable(const nnq_graph *model, int stop_after, const char *resume) {
    nnq_qat_options o = options(NNQ_QAT_LSQ_PLUS, true, 4);
    o.init = NNQ_QAT_INIT_LSQ;
    o.lsqp_steps = 50;
    nnq_qat *qa = NULL;
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (!qa) return NULL;
    nnq_dataset part = train_set;
    part.n = 96;
    nnq_train_config c = train_cfg(2, 32, 1e-3f);
    c.checkpoint = CKPT_PATH;
    c.stop_after = stop_after;
    c.resume = resume;
    nnq_train_result r;
    CHECK_OK(nnq_qat_train(qa, &part, NULL, &c, &r));
    return qa;
}

static void test_resume(void) {
    nnq_graph *model = tiny();
    nnq_qat *a = run_resumable(model, 0, NULL);
    nnq_qat *b1 = run_resumable(model, 1, NULL);
    nnq_qat_free(b1);
    nnq_qat *b = run_resumable(model, 0, CKPT_PATH);
    if (a && b) {
        int diff = 0, zps = 0;
        for (int v = 0; v < a->g->n_values; v++) {
            const nnq_value *x = &a->g->values[v], *y = &b->g->values[v];
            if (!x->is_initializer || !x->t.data) continue;
            size_t nb = 0;
            CHECK_OK(nnq_tensor_nbytes(&x->t, &nb));
            diff += memcmp(x->t.data, y->t.data, nb) != 0;
        }
        /* learned offsets are real numbers that moved off their start */
        for (int i = 0; i < a->sim->n_quant; i++)
            if (a->q[i].learn_zp)
                zps += nnq_f32(&a->g->values[a->sim->quant[i].zero_point_value].t)[0] != a->q[i].zp_real;
        CHECK(diff == 0);
        CHECK(zps > 0);
    }
    nnq_qat_free(a);
    nnq_qat_free(b);
    nnq_graph_free(model);
    remove(CKPT_PATH);
}

/* ---- distillation ---- */

static void test_distill(void) {
    nnq_graph *model = NULL;
    CHECK_OK(nnq_onnx_load("tests/fixtures/models/mnv2s.onnx", &model));
    if (!model) return;
    CHECK_OK(nnq_graph_prepare(model));
    double loss[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        nnq_qat_options o = options(NNQ_QAT_LSQ, true, 8);
        o.calib_n = 64;
        o.distill_t = k ? 1.0f : 0.0f;
        nnq_qat *qa = NULL;
        CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
        if (!qa) continue;
        nnq_dataset one = train_set;
        one.n = 64;
        nnq_train_config c = train_cfg(1, 64, 0.0f);
        nnq_train_result r;
        CHECK_OK(nnq_qat_train(qa, &one, NULL, &c, &r));
        loss[k] = r.train_loss;
        nnq_qat_free(qa);
    }
    fprintf(stderr, "distillation at W8A8: KD loss %.4f, cross-entropy %.4f\n", loss[1], loss[0]);
    CHECK(loss[1] >= 0 && loss[1] < 0.05 && loss[0] > 0.1);
    nnq_graph_free(model);
}

/* ---- BN re-estimation ---- */

static void test_bn_reestimate(void) {
    nnq_graph *model = tiny();
    nnq_qat_options o = options(NNQ_QAT_LSQ, true, 4);
    nnq_qat *qa = NULL;
    CHECK_OK(nnq_qat_create(model, &train_set, &o, &qa));
    if (qa && qa->n_bn > 0) {
        float *got[2] = {NULL, NULL};
        const nnq_qat_bn *b = &qa->bn[1];
        nnq_tensor *mean = &qa->g->values[b->mean].t, *var = &qa->g->values[b->var].t;
        const int64_t ch = nnq_tensor_numel(mean);
        for (int k = 0; k < 2; k++) {
            for (int64_t c = 0; c < ch; c++) {
                nnq_f32(mean)[c] = k ? -50.0f : 100.0f;
                nnq_f32(var)[c] = k ? 1e-3f : 1e4f;
            }
            CHECK_OK(nnq_qat_bn_reestimate(qa, &train_set, 128, 32));
            got[k] = malloc(sizeof(float) * (size_t)(2 * ch));
            memcpy(got[k], mean->data, sizeof(float) * (size_t)ch);
            memcpy(got[k] + ch, var->data, sizeof(float) * (size_t)ch);
        }
        CHECK(memcmp(got[0], got[1], sizeof(float) * (size_t)(2 * ch)) == 0);
        CHECK(fabsf(got[0][0]) < 50.0f && got[0][ch] > 0 && got[0][ch] < 1e4f);
        int bn = -1;
        for (int n = 0; n < qa->g->n_nodes; n++)
            if (strcmp(qa->g->nodes[n].op_type, "BatchNormalization") == 0) bn = n;
        CHECK(bn >= 0 && nnq_node_attr_float(&qa->g->nodes[bn], "momentum", 0) == 0.9f);
        free(got[0]);
        free(got[1]);
        /* The bias rounding follows the new statistics: g is still the export. */
        float *t_logits = logits_of(qa->g, &test_set, 100);
        CHECK_OK(nnq_qat_export(qa));
        float *s_logits = logits_of(qa->sim->g, &test_set, 100);
        CHECK(t_logits && s_logits && check_nmse(s_logits, t_logits, 1000) < 1e-6);
        free(t_logits);
        free(s_logits);
    }
    nnq_qat_free(qa);
    nnq_graph_free(model);
}

/* ---- options and inputs ---- */

static void test_errors(void) {
    nnq_graph *model = tiny();
    nnq_qat *qa = NULL;
    nnq_qat_options o = options(NNQ_QAT_LSQ, true, 4);
    CHECK_STATUS(nnq_qat_create(model, NULL, &o, &qa), NNQ_ERR_INVALID);
    CHECK(qa == NULL);
    o.ema = 2.0f;
    CHECK_STATUS(nnq_qat_create(model, &train_set, &o, &qa), NNQ_ERR_INVALID);
    o = options(NNQ_QAT_LSQ, true, 4);
    o.distill_alpha = -1;
    CHECK_STATUS(nnq_qat_create(model, &train_set, &o, &qa), NNQ_ERR_INVALID);
    nnq_qat_method m;
    nnq_qat_init i;
    CHECK(nnq_qat_method_parse("lsq+", &m) && m == NNQ_QAT_LSQ_PLUS);
    CHECK(!nnq_qat_method_parse("lsq++", &m) && !nnq_qat_init_parse("max", &i));
    CHECK(nnq_qat_init_parse("minmax", &i) && i == NNQ_QAT_INIT_MINMAX);
    nnq_graph_free(model);
}

int main(void) {
    snprintf(CKPT_PATH, sizeof CKPT_PATH, "/tmp/nnq-test-qat-%ld.ckpt", (long)getpid());
    snprintf(ONNX_PATH, sizeof ONNX_PATH, "/tmp/nnq-test-qat-%ld.onnx", (long)getpid());
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, 1024, &train_set));
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 500, &test_set));
    if (train_set.n == 0 || test_set.n == 0) return check_finish("test_qat");
    test_method_graphs();
    test_bn_export(4);
    test_bn_export(3);
    test_bn_export(2);
    test_fixture_improves();
    test_ste_ranges();
    test_resume();
    test_distill();
    test_bn_reestimate();
    test_errors();
    nnq_dataset_free(&train_set);
    nnq_dataset_free(&test_set);
    return check_finish("test_qat");
}
