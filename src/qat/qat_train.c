/* The training loop's QAT hooks (train/trainer.h): parameters and state of
 * the trainable simulation, the distillation loss, projections and running
 * ranges after each step; and BN re-estimation after training. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/qat.h"
#include "train/autograd.h"
#include "train/loss.h"

/* FakeQuant on trainable weights and biases must run every step: preparing
 * folded them into constants; clear their outputs' data (shapes stay). */
static void unfold_params(nnq_qat *qa, nnq_graph *g) {
    for (int i = 0; i < qa->sim->n_quant; i++) {
        const nnq_qsim_quant *q = &qa->sim->quant[i];
        if (q->role != NNQ_QROLE_ACT) nnq_tensor_release(&g->values[q->output].t);
    }
}

static nnq_status hook_inference(void *user, nnq_graph *g, bool on) {
    (void)g;
    return nnq_qat_bn_shift(user, on);
}

static nnq_status hook_setup(void *user, nnq_graph *g, nnq_params *ps) {
    nnq_qat *qa = user;
    const nnq_qsim *sim = qa->sim;
    unfold_params(qa, g);
    for (int i = 0; i < sim->n_layers; i++) {
        NNQ_TRY(nnq_params_add(ps, sim->layers[i].weight, NNQ_GROUP_WEIGHTS));
        if (sim->layers[i].bias >= 0)
            NNQ_TRY(nnq_params_add(ps, sim->layers[i].bias, NNQ_GROUP_NO_DECAY));
    }
    /* Offsets move in grid units, z = -beta / s: LSQ+'s beta learned at the
     * quantizer rate is z learned at that rate over s (the mean initial
     * step size of the learned offsets' quantizers). */
    int group = -1, zgroup = -1;
    double s_sum = 0;
    int s_n = 0;
    for (int i = 0; i < sim->n_quant; i++)
        if (qa->q[i].learn_zp) s_sum += nnq_f32(&g->values[sim->quant[i].scale_value].t)[0], s_n++;
    for (int i = 0; i < sim->n_quant; i++) {
        const nnq_qat_quant *t = &qa->q[i];
        const nnq_qsim_quant *q = &sim->quant[i];
        if (t->learn_scale && group < 0)
            NNQ_TRY(nnq_params_add_group(ps, "quantizer_scales", qa->opt.qlr_mult, false, &group));
        if (t->learn_zp && zgroup < 0)
            NNQ_TRY(nnq_params_add_group(ps, "quantizer_offsets",
                                         (float)(qa->opt.qlr_mult / (s_sum / s_n)), false, &zgroup));
        if (t->learn_scale) NNQ_TRY(nnq_params_add(ps, q->scale_value, group));
        if (t->learn_zp) NNQ_TRY(nnq_params_add(ps, q->zero_point_value, zgroup));
        /* Bias scales follow the learned ones after each step: a resumed
         * run needs them as they were, not as at the start. */
        if (q->role == NNQ_QROLE_BIAS && (qa->opt.method != NNQ_QAT_STE || qa->opt.ema > 0))
            NNQ_TRY(nnq_params_add_state(ps, q->scale_value));
        if (t->ema_lo >= 0) {
            NNQ_TRY(nnq_params_add_state(ps, q->scale_value));
            NNQ_TRY(nnq_params_add_state(ps, q->zero_point_value));
            NNQ_TRY(nnq_params_add_state(ps, t->ema_lo));
            NNQ_TRY(nnq_params_add_state(ps, t->ema_hi));
        }
    }
    return NNQ_OK;
}

static nnq_status hook_loss(void *user, const nnq_tensor *logits, const nnq_tensor *images,
                            const int32_t *labels, double *loss, nnq_tensor *dlogits,
                            int64_t *correct) {
    nnq_qat *qa = user;
    NNQ_TRY(nnq_exec_run(qa->teacher_exec, images));
    return nnq_loss_kd_ce(logits, nnq_exec_output(qa->teacher_exec, 0), labels,
                          qa->opt.distill_t, qa->opt.distill_alpha, 0.0f, loss, dlogits, correct);
}

/* Min and max of channel c of x laid out [outer, n, inner] (finite values;
 * none: 0, 0). */
static void channel_range(const float *x, int64_t outer, int n, int64_t inner, int c, float *lo,
                          float *hi) {
    float a = INFINITY, b = -INFINITY;
    for (int64_t o = 0; o < outer; o++) {
        const float *p = x + (o * n + c) * inner;
        for (int64_t k = 0; k < inner; k++)
            if (isfinite(p[k])) a = p[k] < a ? p[k] : a, b = p[k] > b ? p[k] : b;
    }
    *lo = a <= b ? a : 0.0f;
    *hi = a <= b ? b : 0.0f;
}

/* STE running ranges: fold this step's min/max of the tensor in, and set
 * (s, z) from the averaged range. */
static nnq_status update_ema(nnq_qat *qa, int i, const nnq_autograd *ag) {
    nnq_qsim_quant *q = &qa->sim->quant[i];
    nnq_graph *g = qa->g;
    const nnq_tensor *x = q->role == NNQ_QROLE_WEIGHT ? &g->values[q->input].t
                                                      : nnq_autograd_value(ag, q->input);
    if (!x || !x->data) return NNQ_OK;
    int64_t outer = 1, inner = nnq_tensor_numel(x);
    if (q->q.n > 1) {
        outer = 1, inner = 1;
        for (int k = 0; k < q->q.axis; k++) outer *= x->dims[k];
        for (int k = q->q.axis + 1; k < x->rank; k++) inner *= x->dims[k];
    }
    float *lo = nnq_f32(&g->values[qa->q[i].ema_lo].t), *hi = nnq_f32(&g->values[qa->q[i].ema_hi].t);
    float *sc = nnq_f32(&g->values[q->scale_value].t), *zp = nnq_f32(&g->values[q->zero_point_value].t);
    const float c = qa->opt.ema;
    for (int ch = 0; ch < q->q.n; ch++) {
        float a, b;
        channel_range(nnq_f32(x), outer, q->q.n, inner, ch, &a, &b);
        lo[ch] = (1 - c) * lo[ch] + c * a;
        hi[ch] = (1 - c) * hi[ch] + c * b;
        nnq_quantizer_set_range(&q->q, ch, lo[ch], hi[ch]);
        sc[ch] = q->q.scale[ch];
        zp[ch] = (float)q->q.zero_point[ch];
    }
    return NNQ_OK;
}

static nnq_status hook_after_step(void *user, nnq_params *ps, const nnq_autograd *ag) {
    nnq_qat *qa = user;
    nnq_graph *g = qa->g;
    for (int i = 0; i < qa->sim->n_quant; i++) {
        const nnq_qat_quant *t = &qa->q[i];
        const nnq_qsim_quant *q = &qa->sim->quant[i];
        if (t->learn_scale) {
            float *s = nnq_f32(&g->values[q->scale_value].t);
            for (int c = 0; c < q->q.n; c++)
                if (!(s[c] >= FLT_EPSILON)) s[c] = FLT_EPSILON; /* also NaN */
        }
        if (t->learn_zp) {
            float *z = nnq_f32(&g->values[q->zero_point_value].t);
            for (int c = 0; c < q->q.n; c++)
                z[c] = z[c] < (float)q->q.qmin ? (float)q->q.qmin
                                               : (z[c] > (float)q->q.qmax ? (float)q->q.qmax : z[c]);
        }
        if (t->ema_lo >= 0) NNQ_TRY(update_ema(qa, i, ag));
    }
    nnq_qat_sync_bias(qa);
    return NNQ_OK;
}

nnq_status nnq_qat_train(nnq_qat *qa, const nnq_dataset *train, const nnq_dataset *test,
                         const nnq_train_config *cfg, nnq_train_result *out) {
    nnq_train_config c = *cfg;
    const nnq_train_hooks hooks = {
        .user = qa,
        .setup = hook_setup,
        .loss = qa->opt.distill_t > 0 ? hook_loss : NULL,
        .after_step = hook_after_step,
        .inference = hook_inference,
    };
    c.hooks = &hooks;
    /* Training steps run BN on its own beta, without the folded bias's
     * rounding: that comes from the running statistics, which batch
     * statistics replace in training, and for a near-constant channel's
     * large a = gamma / sqrt(var + eps) it jumped by whole activation ranges
     * between steps (a mobilenetv2 run evaluated at 67 % after one epoch,
     * where the same recipe without it reaches ~91 %). Off before nnq_train
     * collects BN's inputs as parameters. */
    NNQ_TRY(nnq_qat_bn_shift(qa, false));
    if (qa->opt.distill_t > 0) {
        const nnq_exec_options eo = {.threads = cfg->threads};
        NNQ_TRY(nnq_exec_create(qa->teacher, &eo, &qa->teacher_exec));
    }
    nnq_status s = nnq_train(qa->g, train, test, &c, out);
    nnq_exec_free(qa->teacher_exec);
    qa->teacher_exec = NULL;
    nnq_status r = nnq_qat_bn_shift(qa, true); /* g is the inference network again */
    if (s == NNQ_OK) s = r;
    /* Fold the weights' FakeQuant into constants again: g then runs the
     * kernels the exported model runs (constant weights take other conv
     * paths, whose float sums may differ in the last bit). */
    if (s == NNQ_OK) s = nnq_graph_prepare(qa->g);
    return s;
}

/* ---- BN re-estimation ---- */

nnq_status nnq_qat_bn_reestimate(nnq_qat *qa, const nnq_dataset *d, int64_t n, int64_t batch) {
    if (qa->n_bn == 0) return NNQ_OK;
    nnq_graph *g = qa->g;
    nnq_params ps;
    nnq_autograd *ag = NULL;
    float *momentum = calloc((size_t)qa->n_bn, sizeof *momentum);
    int *nodes = calloc((size_t)qa->n_bn, sizeof *nodes);
    n = n > 0 && n < d->n ? n : d->n;
    batch = batch > 0 ? batch : 64;
    nnq_status s = momentum && nodes ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory");
    for (int k = 0; k < qa->n_bn && s == NNQ_OK; k++) {
        nodes[k] = nnq_qat_bn_node(g, &qa->bn[k]);
        if (nodes[k] < 0) s = nnq_fail(NNQ_ERR_INVALID, "internal: a kept BatchNorm is missing");
        else momentum[k] = nnq_node_attr_float(&g->nodes[nodes[k]], "momentum", 0.9f);
    }
    if (s == NNQ_OK) s = nnq_qat_bn_shift(qa, false); /* as in training; on again below */
    if (s == NNQ_OK) s = nnq_params_init(&ps, g);
    if (s != NNQ_OK) goto done;
    s = nnq_autograd_create(g, &ps, qa->opt.threads, &ag);
    /* Batch k (from 0) enters with weight 1/(k+1): a cumulative average. */
    int64_t k = 0;
    for (int64_t start = 0; start < n && s == NNQ_OK; start += batch, k++) {
        for (int j = 0; j < qa->n_bn && s == NNQ_OK; j++)
            s = nnq_node_set_float(&g->nodes[nodes[j]], "momentum", (float)k / (float)(k + 1));
        nnq_tensor x;
        nnq_dataset_batch(d, start, start + batch <= n ? batch : n - start, &x);
        if (s == NNQ_OK) s = nnq_autograd_forward(ag, &x);
    }
    for (int j = 0; j < qa->n_bn; j++) {
        nnq_status r = nnq_node_set_float(&g->nodes[nodes[j]], "momentum", momentum[j]);
        if (s == NNQ_OK) s = r;
    }
    nnq_autograd_free(ag);
    nnq_params_free(&ps);
done:;
    nnq_status r = nnq_qat_bn_shift(qa, true);
    if (s == NNQ_OK) s = r;
    free(momentum);
    free(nodes);
    return s;
}
