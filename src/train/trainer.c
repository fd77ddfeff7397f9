/* The epoch/step loop around autograd, loss, optimizer and schedule. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/executor.h"
#include "train/autograd.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/params.h"
#include "train/rng.h"

/* Decorrelates the trainer's stream from weight initialisation, which
 * draws from the same seed. */
#define RNG_SALT 0x6e6e71747261696eull /* "nnqtrain" */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

nnq_train_config nnq_train_defaults(void) {
    nnq_train_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 1;
    c.batch = 128;
    c.optim = nnq_optim_defaults(NNQ_OPTIM_SGD);
    c.optim.weight_decay = 5e-4f;
    c.lr = 0.1f;
    c.schedule = NNQ_SCHED_COSINE;
    c.gamma = 0.1f;
    c.seed = 1;
    return c;
}

/* ---- evaluation ---- */

static nnq_status check_image_input(const nnq_graph *g, const nnq_dataset *d) {
    if (g->n_inputs != 1 || g->n_outputs < 1)
        return nnq_fail(NNQ_ERR_SHAPE, "training needs a model with one input and an output; "
                        "this one has %d inputs and %d outputs", g->n_inputs, g->n_outputs);
    const nnq_value *in = &g->values[g->inputs[0]];
    const int64_t chw[3] = {d->c, d->h, d->w};
    bool ok = in->t.dtype == NNQ_DT_FLOAT && in->t.rank == 4;
    for (int k = 0; ok && k < 3; k++) ok = in->t.dims[k + 1] < 0 || in->t.dims[k + 1] == chw[k];
    if (!ok)
        return nnq_fail(NNQ_ERR_SHAPE, "model input '%s' does not take float [N, %d, %d, %d] images",
                        in->name, d->c, d->h, d->w);
    if (!d->labels) return nnq_fail(NNQ_ERR_INVALID, "the dataset has no labels");
    return NNQ_OK;
}

nnq_status nnq_evaluate(const nnq_graph *g, const nnq_dataset *d, int64_t batch, int threads,
                        double *loss, double *accuracy) {
    *loss = 0;
    *accuracy = 0;
    NNQ_TRY(check_image_input(g, d));
    if (d->n < 1) return nnq_fail(NNQ_ERR_INVALID, "no images to evaluate");
    nnq_exec *e = NULL;
    nnq_exec_options opt = {.threads = threads};
    NNQ_TRY(nnq_exec_create(g, &opt, &e));
    nnq_status s = NNQ_OK;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = 0; start < d->n; start += batch) {
        nnq_tensor x;
        nnq_dataset_batch(d, start, batch, &x);
        if ((s = nnq_exec_run(e, &x)) != NNQ_OK) break;
        double l;
        int64_t c;
        s = nnq_loss_softmax_ce(nnq_exec_output(e, 0), d->labels + start, 0.0f, &l, NULL, &c);
        if (s != NNQ_OK) break;
        loss_sum += l * (double)x.dims[0];
        correct += c;
    }
    nnq_exec_free(e);
    if (s != NNQ_OK) return s;
    *loss = loss_sum / (double)d->n;
    *accuracy = (double)correct / (double)d->n;
    return NNQ_OK;
}

/* ---- training ---- */

typedef struct run_state {
    nnq_graph *g;
    const nnq_dataset *train, *test;
    const nnq_train_config *cfg;
    nnq_params ps;
    nnq_optim opt;
    nnq_autograd *ag;
    nnq_schedule sched;
    nnq_rng rng;
    int64_t *perm;
    float *images;
    int32_t *labels;
    int64_t steps_per_epoch, global_step;
    int epoch; /* epochs completed */
    /* Position inside epoch `epoch + 1`: */
    int64_t epoch_step;  /* steps done */
    nnq_rng epoch_rng;   /* the RNG before its shuffle, which redraws its permutation */
    double loss_sum;     /* per-image losses summed so far */
    int64_t correct_sum;
    int64_t images_run;  /* images trained by this call (throughput) */
} run_state;

static nnq_status check_config(const nnq_train_config *c) {
    if (c->epochs < 1) return nnq_fail(NNQ_ERR_INVALID, "epochs must be >= 1, got %d", c->epochs);
    if (c->batch < 1) return nnq_fail(NNQ_ERR_INVALID, "batch must be >= 1, got %lld",
                                      (long long)c->batch);
    if (!(c->lr >= 0) || !isfinite(c->lr))
        return nnq_fail(NNQ_ERR_INVALID, "learning rate must be finite and >= 0, got %g", c->lr);
    if (!(c->warmup_epochs >= 0) || c->warmup_epochs > (float)c->epochs)
        return nnq_fail(NNQ_ERR_INVALID, "warm-up of %g epochs does not fit in %d epochs",
                        c->warmup_epochs, c->epochs);
    if (c->schedule == NNQ_SCHED_STEP && !(c->step_epochs > 0))
        return nnq_fail(NNQ_ERR_INVALID, "the step schedule needs step_epochs > 0");
    if (!(c->clip_norm >= 0)) return nnq_fail(NNQ_ERR_INVALID, "clip norm must be >= 0");
    if (c->augment.crop_pad < 0) return nnq_fail(NNQ_ERR_INVALID, "crop padding must be >= 0");
    if (c->checkpoint_every < 0 || (c->checkpoint_every > 0 && !c->checkpoint))
        return nnq_fail(NNQ_ERR_INVALID, "checkpointing every %lld steps needs a checkpoint "
                        "path (and a count >= 0)", (long long)c->checkpoint_every);
    return NNQ_OK;
}

/* The checkpoint a resume reads must sit at a step this run can reach. */
static nnq_status check_resume_point(const run_state *r, const nnq_checkpoint_meta *m) {
    const nnq_train_config *c = r->cfg;
    const int64_t spe = r->steps_per_epoch;
    if (m->train_n > 0 && (m->train_n != r->train->n || m->batch != c->batch))
        return nnq_fail(NNQ_ERR_INVALID,
                        "checkpoint %s was written by a run on %lld images in batches of %lld; "
                        "this run has %lld images in batches of %lld",
                        c->resume, (long long)m->train_n, (long long)m->batch,
                        (long long)r->train->n, (long long)c->batch);
    bool fits = m->epoch >= 0 && m->epoch <= c->epochs && m->epoch_step >= 0 &&
                m->epoch_step < spe && !(m->epoch == c->epochs && m->epoch_step > 0) &&
                m->step == m->epoch * spe + m->epoch_step;
    if (!fits)
        return nnq_fail(NNQ_ERR_INVALID,
                        "checkpoint %s is at epoch %lld, step %lld (%lld into the epoch), which "
                        "does not fit a run of %d epochs of %lld steps (different batch size "
                        "or data?)",
                        c->resume, (long long)m->epoch, (long long)m->step,
                        (long long)m->epoch_step, c->epochs, (long long)spe);
    return NNQ_OK;
}

static nnq_status setup(run_state *r) {
    const nnq_train_config *c = r->cfg;
    int64_t n = r->train->n;
    size_t per = (size_t)r->train->c * (size_t)r->train->h * (size_t)r->train->w;
    int64_t batch = c->batch < n ? c->batch : n;
    NNQ_TRY(nnq_graph_prepare(r->g));
    NNQ_TRY(check_image_input(r->g, r->train));
    NNQ_TRY(nnq_params_init(&r->ps, r->g));
    if (c->hooks && c->hooks->setup) {
        NNQ_TRY(c->hooks->setup(c->hooks->user, r->g, &r->ps));
        NNQ_TRY(nnq_params_alloc(&r->ps));
    }
    NNQ_TRY(nnq_optim_init(&r->opt, &c->optim, &r->ps));
    NNQ_TRY(nnq_autograd_create(r->g, &r->ps, c->threads, &r->ag));
    r->perm = malloc(sizeof *r->perm * (size_t)n);
    r->images = malloc(sizeof *r->images * per * (size_t)batch);
    r->labels = malloc(sizeof *r->labels * (size_t)batch);
    if (!r->perm || !r->images || !r->labels)
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory for batches of %lld images",
                        (long long)batch);
    r->steps_per_epoch = (n + c->batch - 1) / c->batch;
    r->sched = (nnq_schedule){
        .kind = c->schedule,
        .base_lr = c->lr,
        .total_steps = r->steps_per_epoch * c->epochs,
        .warmup_steps = (int64_t)llround((double)c->warmup_epochs * (double)r->steps_per_epoch),
        .step_size = (int64_t)llround((double)c->step_epochs * (double)r->steps_per_epoch),
        .gamma = c->gamma,
    };
    if (r->sched.kind == NNQ_SCHED_STEP && r->sched.step_size < 1) r->sched.step_size = 1;
    nnq_rng_seed(&r->rng, c->seed ^ RNG_SALT);
    if (c->resume) {
        nnq_checkpoint_meta m;
        NNQ_TRY(nnq_checkpoint_load(c->resume, &r->ps, &r->opt, &m));
        NNQ_TRY(check_resume_point(r, &m));
        r->epoch = (int)m.epoch;
        r->global_step = m.step;
        r->rng = m.rng;
        r->epoch_step = m.epoch_step;
        if (m.epoch_step > 0) {
            r->epoch_rng = m.epoch_rng;
            r->loss_sum = m.epoch_loss_sum;
            r->correct_sum = m.epoch_correct;
        }
    }
    r->epoch_rng = r->epoch_step > 0 ? r->epoch_rng : r->rng;
    return NNQ_OK;
}

static void teardown(run_state *r) {
    nnq_autograd_free(r->ag);
    nnq_optim_free(&r->opt);
    nnq_params_free(&r->ps);
    free(r->perm);
    free(r->images);
    free(r->labels);
}

/* Checkpoint of the current position: after epoch_step steps of epoch
 * `epoch + 1`. At a boundary (epoch_step 0) the RNG saved is the one before
 * the next shuffle, as an end-of-epoch checkpoint has it. */
static nnq_status save_position(const run_state *r, const char *path) {
    nnq_checkpoint_meta m = {
        .epoch = r->epoch,
        .step = r->global_step,
        .rng = r->epoch_step > 0 ? r->rng : r->epoch_rng,
        .epoch_step = r->epoch_step,
        .epoch_rng = r->epoch_rng,
        .epoch_loss_sum = r->epoch_step > 0 ? r->loss_sum : 0,
        .epoch_correct = r->epoch_step > 0 ? r->correct_sum : 0,
        .train_n = r->train->n,
        .batch = r->cfg->batch,
    };
    return nnq_checkpoint_save(path, &r->ps, &r->opt, &m);
}

static bool stop_requested(const nnq_train_config *c) { return c->stop && c->stop(c->stop_user); }

/* One optimizer step on images/labels [count]. */
static nnq_status train_step(run_state *r, int64_t count, double *loss, int64_t *correct,
                             float *lr) {
    const nnq_dataset *d = r->train;
    nnq_tensor x = {0};
    const int64_t dims[4] = {count, d->c, d->h, d->w};
    NNQ_TRY(nnq_tensor_set_shape(&x, NNQ_DT_FLOAT, 4, dims));
    x.data = r->images;
    NNQ_TRY(nnq_autograd_forward(r->ag, &x));
    nnq_tensor *dlogits = nnq_autograd_output_grad(r->ag, 0);
    if (!dlogits)
        return nnq_fail(NNQ_ERR_INVALID, "the model's output does not depend on any parameter");
    const nnq_train_hooks *h = r->cfg->hooks;
    if (h && h->loss)
        NNQ_TRY(h->loss(h->user, nnq_autograd_output(r->ag, 0), &x, r->labels, loss, dlogits,
                        correct));
    else
        NNQ_TRY(nnq_loss_softmax_ce(nnq_autograd_output(r->ag, 0), r->labels, 0.0f, loss,
                                    dlogits, correct));
    if (!isfinite(*loss))
        return nnq_fail(NNQ_ERR_INVALID, "the loss is %g at step %lld; lower the learning rate",
                        *loss, (long long)r->global_step);
    nnq_params_zero_grad(&r->ps);
    NNQ_TRY(nnq_autograd_backward(r->ag));
    if (r->cfg->clip_norm > 0) nnq_clip_grad_norm(&r->ps, r->cfg->clip_norm);
    *lr = nnq_schedule_lr(&r->sched, r->global_step);
    nnq_optim_step(&r->opt, &r->ps, *lr);
    if (h && h->after_step) NNQ_TRY(h->after_step(h->user, &r->ps, r->ag));
    r->global_step++;
    return NNQ_OK;
}

/* The rest of epoch `epoch + 1`, from step epoch_step (0, or where a
 * checkpoint left it). *stopped: cfg->stop asked to stop before step
 * epoch_step, which is then the position to save. */
static nnq_status run_epoch(run_state *r, nnq_train_progress *p, double *seconds,
                            double run_t0, int64_t run_steps0, bool *stopped) {
    const nnq_train_config *c = r->cfg;
    const nnq_dataset *d = r->train;
    double t0 = now_s();
    *seconds = 0;
    *stopped = false;
    if (r->epoch_step == 0) {
        r->epoch_rng = r->rng;
        r->loss_sum = 0;
        r->correct_sum = 0;
    }
    /* The permutation always comes from the RNG before the shuffle, so a
     * resumed epoch visits the same images in the same order. */
    nnq_rng shuffle = r->epoch_rng;
    for (int64_t i = 0; i < d->n; i++) r->perm[i] = i;
    nnq_rng_shuffle(&shuffle, r->perm, d->n);
    if (r->epoch_step == 0) r->rng = shuffle;
    int64_t seen = r->epoch_step * c->batch, seen_here = 0;
    for (int64_t s = r->epoch_step; s < r->steps_per_epoch; s++) {
        if (stop_requested(c)) {
            *stopped = true;
            break;
        }
        int64_t start = s * c->batch, count = d->n - start < c->batch ? d->n - start : c->batch;
        nnq_batch_gather(d, r->perm + start, count, &c->augment, &r->rng, r->images, r->labels);
        double loss = 0;
        int64_t correct = 0;
        float lr = 0;
        NNQ_TRY(train_step(r, count, &loss, &correct, &lr));
        r->epoch_step = s + 1;
        r->loss_sum += loss * (double)count;
        r->correct_sum += correct;
        r->images_run += count;
        seen += count;
        seen_here += count;
        if (c->checkpoint_every > 0 && r->global_step % c->checkpoint_every == 0 &&
            r->epoch_step < r->steps_per_epoch)
            NNQ_TRY(save_position(r, c->checkpoint));
        double t = now_s();
        p->step = s + 1;
        p->global_step = r->global_step;
        p->loss = r->loss_sum / (double)seen;
        p->accuracy = (double)r->correct_sum / (double)seen;
        p->lr = lr;
        p->images_per_s = t > t0 ? (double)seen_here / (t - t0) : 0;
        int64_t done = r->global_step - run_steps0;
        p->eta_s = done > 0 ? (t - run_t0) / (double)done * (double)(p->total_steps -
                                                                       r->global_step)
                            : 0;
        if (c->progress) c->progress(p, c->user);
    }
    *seconds = now_s() - t0;
    return NNQ_OK;
}

/* Stopped: save the position to stop_checkpoint (or checkpoint). */
static nnq_status stop_here(run_state *r, nnq_train_result *out) {
    const char *path = r->cfg->stop_checkpoint ? r->cfg->stop_checkpoint : r->cfg->checkpoint;
    out->stopped = true;
    out->epoch_step = r->epoch_step;
    if (!path) return NNQ_OK;
    NNQ_TRY(save_position(r, path));
    out->saved = path;
    return NNQ_OK;
}

nnq_status nnq_train(nnq_graph *g, const nnq_dataset *train, const nnq_dataset *test,
                     const nnq_train_config *cfg, nnq_train_result *out) {
    memset(out, 0, sizeof *out);
    NNQ_TRY(check_config(cfg));
    if (!train || train->n < 1) return nnq_fail(NNQ_ERR_INVALID, "no training images");
    run_state r;
    memset(&r, 0, sizeof r);
    r.g = g;
    r.train = train;
    r.test = test;
    r.cfg = cfg;
    nnq_status s = setup(&r);
    if (s != NNQ_OK) goto done;
    out->params = nnq_params_count(&r.ps);
    int64_t eval_batch = cfg->eval_batch > 0 ? cfg->eval_batch : cfg->batch;
    double run_t0 = now_s();
    int64_t run_steps0 = r.global_step;
    nnq_train_progress p = {0};
    p.epochs = cfg->epochs;
    p.steps = r.steps_per_epoch;
    p.total_steps = r.sched.total_steps;
    while (r.epoch < cfg->epochs && (cfg->stop_after <= 0 || r.epoch < cfg->stop_after)) {
        p.epoch = r.epoch + 1;
        p.epoch_done = p.has_test = false;
        double seconds;
        bool stopped;
        s = run_epoch(&r, &p, &seconds, run_t0, run_steps0, &stopped);
        out->train_seconds += seconds;
        if (s != NNQ_OK) goto done;
        if (stopped) {
            s = stop_here(&r, out);
            break;
        }
        r.epoch++;
        r.epoch_step = 0;
        r.epoch_rng = r.rng;
        out->train_loss = p.loss;
        out->train_accuracy = p.accuracy;
        /* A stop between epochs skips the evaluation, not the checkpoint. */
        if (r.epoch < cfg->epochs && stop_requested(cfg)) {
            s = stop_here(&r, out);
            break;
        }
        if (test) {
            const nnq_train_hooks *h = cfg->hooks;
            if (h && h->inference && (s = h->inference(h->user, g, true)) != NNQ_OK) goto done;
            s = nnq_evaluate(g, test, eval_batch, cfg->threads, &p.test_loss, &p.test_accuracy);
            if (h && h->inference) {
                nnq_status r = h->inference(h->user, g, false);
                if (s == NNQ_OK) s = r;
            }
            if (s != NNQ_OK) goto done;
            p.has_test = out->has_test = true;
            out->test_loss = p.test_loss;
            out->test_accuracy = p.test_accuracy;
        }
        if (cfg->checkpoint && (s = save_position(&r, cfg->checkpoint)) != NNQ_OK) goto done;
        p.epoch_done = true;
        p.epoch_seconds = seconds;
        if (cfg->progress) cfg->progress(&p, cfg->user);
    }
    if (s != NNQ_OK) goto done;
    out->epochs_done = r.epoch;
    out->steps = r.global_step;
    out->images_per_s = out->train_seconds > 0 ? (double)r.images_run / out->train_seconds : 0;
    out->buffer_bytes = nnq_autograd_bytes(r.ag) + r.ps.total * sizeof(float) *
                        (size_t)(1 + r.opt.n_state);
done:
    teardown(&r);
    return s;
}
