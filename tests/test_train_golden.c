/* nnq's training step against PyTorch's, number for number.
 *
 * tests/fixtures/train_golden/make_golden.py ran two optimizer steps of
 * nnq's `tiny` architecture in PyTorch (float64) on 16 Fashion-MNIST
 * training images, from fixed initial weights, with SGD (momentum 0.9,
 * Nesterov), Adam and AdamW, weight decay on conv/linear weights only.
 * Here nnq builds its own tiny, loads those initial weights by name, takes
 * the same two steps through its autograd, loss and optimizer, and every
 * step must match the golden loss, every parameter gradient, every updated
 * parameter (and the update itself, which a comparison of whole weights
 * would hide) and every BN running statistic. Step 2 exercises the
 * optimizer state (momentum buffer, Adam's moments and bias correction).
 *
 * The tolerances are normalised errors (sum (a-b)^2 / sum b^2); the
 * generator checks that PyTorch's own float32 run meets them, so they are
 * what an exact float32 implementation achieves, with a margin of >= 10x. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "models/models.h"
#include "ops/executor.h"
#include "train/autograd.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/params.h"

#define DIR "tests/fixtures/train_golden"
#define BATCH 16
#define STEPS 2
#define N_PARAMS 8 /* conv1/2 weight, bn1/2 weight and bias, fc weight and bias */
#define N_STATE 4   /* bn1/2 running mean and var */

/* Mirrors TOL in make_golden.py. */
#define TOL_LOSS_REL 1e-5
#define TOL_GRAD 1e-8
#define TOL_PARAM 1e-10
#define TOL_UPDATE 1e-7
#define TOL_STATE 1e-10

/* Mirrors RUNS in make_golden.py. */
typedef struct golden_run {
    const char *name;
    nnq_optim_config optim;
    float lr;
} golden_run;

static golden_run make_run(const char *name, nnq_optim_kind kind, float lr, float wd) {
    golden_run r = {name, nnq_optim_defaults(kind), lr};
    r.optim.weight_decay = wd;
    if (kind == NNQ_OPTIM_SGD) {
        r.optim.momentum = 0.9f;
        r.optim.nesterov = true;
    } else {
        r.optim.beta1 = 0.9f;
        r.optim.beta2 = 0.999f;
        r.optim.eps = 1e-8f;
    }
    return r;
}

static nnq_tensor input;   /* float [16, 1, 32, 32] */
static int32_t labels[BATCH];

/* Worst errors over a run, printed so a regression shows its size. */
typedef struct worst {
    double loss_rel, grad, param, update, state;
} worst;

static void keep_max(double *w, double v) {
    if (!(v <= *w)) *w = v; /* NaN sticks */
}

static bool load_batch(void) {
    nnq_tensor y = {0};
    CHECK_OK(nnq_npy_read(DIR "/input.npy", &input));
    CHECK_OK(nnq_npy_read(DIR "/labels.npy", &y));
    bool ok = input.dtype == NNQ_DT_FLOAT && input.rank == 4 && input.dims[0] == BATCH &&
              input.dims[1] == 1 && input.dims[2] == 32 && input.dims[3] == 32 &&
              y.dtype == NNQ_DT_INT64 && y.rank == 1 && y.dims[0] == BATCH;
    CHECK(ok);
    for (int i = 0; ok && i < BATCH; i++) {
        labels[i] = (int32_t)nnq_i64(&y)[i];
        CHECK(labels[i] >= 0 && labels[i] < 10);
    }
    nnq_tensor_release(&y);
    return ok;
}

/* The golden batch is nnq's own preprocessing of the first 16 training
 * images, bit for bit (the generator reimplements it in NumPy). */
static void test_preprocessing(void) {
    nnq_dataset d = {0};
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, BATCH, &d));
    if (!d.images) return;
    CHECK(d.n == BATCH && d.c == 1 && d.h == 32 && d.w == 32);
    CHECK(memcmp(d.images, input.data, sizeof(float) * BATCH * 32 * 32) == 0);
    for (int i = 0; i < BATCH; i++) CHECK(d.labels[i] == labels[i]);
    nnq_dataset_free(&d);
}

/* `<run>/<prefix><name>.npy`, float [rows, *shape of value v]. */
static bool load_golden(const nnq_graph *g, int v, const char *run, const char *prefix,
                        int rows, nnq_tensor *out) {
    char path[512];
    const nnq_tensor *t = &g->values[v].t;
    snprintf(path, sizeof path, DIR "/%s/%s%s.npy", run, prefix, g->values[v].name);
    nnq_status s = nnq_npy_read(path, out);
    if (s != NNQ_OK) {
        fprintf(stderr, "%s: %s\n", path, nnq_last_error());
        CHECK(s == NNQ_OK);
        return false;
    }
    bool ok = out->dtype == NNQ_DT_FLOAT && out->rank == t->rank + 1 && out->dims[0] == rows;
    for (int k = 0; ok && k < t->rank; k++) ok = out->dims[k + 1] == t->dims[k];
    if (!ok) fprintf(stderr, "%s: shape does not fit '%s'\n", path, g->values[v].name);
    CHECK(ok);
    return ok;
}

static const float *row(const nnq_tensor *t, int r) {
    int64_t per = nnq_shape_numel(t->rank - 1, t->dims + 1);
    return nnq_f32(t) + r * per;
}

/* nmse of nnq's update (after - before) against the golden one. */
static double update_nmse(const float *after, const float *before, const float *g_after,
                          const float *g_before, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double mine = (double)after[i] - before[i], want = (double)g_after[i] - g_before[i];
        num += (mine - want) * (mine - want);
        den += want * want;
    }
    return den > 0 ? num / den : (num == 0 ? 0 : INFINITY);
}

static double report(const char *run, int step, const char *what, const char *name, double err,
                     double tol) {
    if (!(err <= tol))
        fprintf(stderr, "%s step %d: %s of %s: nmse %.3g > %.0g\n", run, step + 1, what, name,
                err, tol);
    CHECK(err <= tol);
    return err;
}

static void test_run(const golden_run *run) {
    nnq_graph *g = NULL;
    nnq_params ps = {0};
    nnq_optim opt = {0};
    nnq_autograd *ag = NULL;
    nnq_tensor *gold = NULL, *gold_grad = NULL; /* [n_values] */
    nnq_tensor golden_loss = {0};                /* [STEPS] */
    float *before = NULL;
    char path[256];
    worst w = {0};

    CHECK_OK(nnq_model_build("tiny", 1, &g));
    if (!g) return;
    gold = calloc((size_t)g->n_values, sizeof *gold);
    gold_grad = calloc((size_t)g->n_values, sizeof *gold_grad);
    if (!gold || !gold_grad) goto done;

    /* Every float initializer of nnq's tiny has a golden file of its
     * name and shape; with the generator's check that the files are the
     * PyTorch state dict, both models have the same tensors. */
    int loaded = 0;
    for (int v = 0; v < g->n_values; v++) {
        nnq_value *val = &g->values[v];
        if (!val->is_initializer || val->t.dtype != NNQ_DT_FLOAT) continue;
        if (!load_golden(g, v, run->name, "", STEPS + 1, &gold[v])) goto done;
        memcpy(val->t.data, row(&gold[v], 0), sizeof(float) * (size_t)nnq_tensor_numel(&val->t));
        loaded++;
    }
    CHECK(loaded == N_PARAMS + N_STATE);

    CHECK_OK(nnq_graph_prepare(g));
    CHECK_OK(nnq_params_init(&ps, g));
    CHECK(ps.n == N_PARAMS && ps.n_state == N_STATE);
    if (ps.n != N_PARAMS) goto done;
    for (int i = 0; i < ps.n; i++)
        if (!load_golden(g, ps.p[i].value, run->name, "grad.", STEPS, &gold_grad[ps.p[i].value]))
            goto done;
    CHECK_OK(nnq_optim_init(&opt, &run->optim, &ps));
    CHECK_OK(nnq_autograd_create(g, &ps, 0, &ag));
    before = malloc(sizeof(float) * (ps.total ? ps.total : 1));
    if (!ag || !before || !opt.total) goto done;

    snprintf(path, sizeof path, DIR "/%s/loss.npy", run->name);
    CHECK_OK(nnq_npy_read(path, &golden_loss));
    if (!golden_loss.data || nnq_tensor_numel(&golden_loss) != STEPS) goto done;

    for (int step = 0; step < STEPS; step++) {
        double loss = 0;
        CHECK_OK(nnq_autograd_forward(ag, &input));
        nnq_tensor *dlogits = nnq_autograd_output_grad(ag, 0);
        CHECK(dlogits != NULL);
        if (!dlogits) break;
        CHECK_OK(nnq_loss_softmax_ce(nnq_autograd_output(ag, 0), labels, 0.0f, &loss, dlogits,
                                     NULL));
        double want = nnq_f32(&golden_loss)[step];
        double rel = fabs(loss - want) / fabs(want);
        keep_max(&w.loss_rel, report(run->name, step, "loss", "the batch", rel, TOL_LOSS_REL));

        nnq_params_zero_grad(&ps);
        CHECK_OK(nnq_autograd_backward(ag));
        for (int i = 0; i < ps.n; i++) {
            const nnq_param *p = &ps.p[i];
            double e = check_nmse(p->grad, row(&gold_grad[p->value], step), (long)p->numel);
            keep_max(&w.grad, report(run->name, step, "gradient", nnq_params_name(&ps, i), e,
                                     TOL_GRAD));
            memcpy(before + p->offset, p->data, sizeof(float) * (size_t)p->numel);
        }

        nnq_optim_step(&opt, &ps, run->lr);
        for (int i = 0; i < ps.n; i++) {
            const nnq_param *p = &ps.p[i];
            const nnq_tensor *gt = &gold[p->value];
            const char *name = nnq_params_name(&ps, i);
            double e = check_nmse(p->data, row(gt, step + 1), (long)p->numel);
            keep_max(&w.param, report(run->name, step, "updated value", name, e, TOL_PARAM));
            e = update_nmse(p->data, before + p->offset, row(gt, step + 1), row(gt, step),
                            p->numel);
            keep_max(&w.update, report(run->name, step, "update", name, e, TOL_UPDATE));
            /* The fixture is meaningful: the step moves every tensor by far
             * more than the tolerance. */
            CHECK(check_nmse(row(gt, step + 1), row(gt, step), (long)p->numel) > 1e3 * TOL_PARAM);
        }
        for (int i = 0; i < ps.n_state; i++) {
            const nnq_value *val = &g->values[ps.state[i]];
            double e = check_nmse(nnq_f32(&val->t), row(&gold[ps.state[i]], step + 1),
                                  (long)nnq_tensor_numel(&val->t));
            keep_max(&w.state, report(run->name, step, "running statistic", val->name, e,
                                      TOL_STATE));
        }
    }
    fprintf(stderr,
            "%-5s worst over %d steps: loss rel %.1e, gradient %.1e, parameter %.1e, "
            "update %.1e, running stats %.1e\n",
            run->name, STEPS, w.loss_rel, w.grad, w.param, w.update, w.state);

done:
    nnq_tensor_release(&golden_loss);
    if (gold)
        for (int v = 0; v < g->n_values; v++) nnq_tensor_release(&gold[v]);
    if (gold_grad)
        for (int v = 0; v < g->n_values; v++) nnq_tensor_release(&gold_grad[v]);
    free(gold);
    free(gold_grad);
    free(before);
    nnq_autograd_free(ag);
    nnq_optim_free(&opt);
    nnq_params_free(&ps);
    nnq_graph_free(g);
}

int main(void) {
    if (load_batch()) {
        test_preprocessing();
        const golden_run runs[] = {
            make_run("sgd", NNQ_OPTIM_SGD, 0.1f, 5e-4f),
            make_run("adam", NNQ_OPTIM_ADAM, 0.01f, 5e-4f),
            make_run("adamw", NNQ_OPTIM_ADAMW, 0.01f, 0.05f),
        };
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) test_run(&runs[i]);
    }
    nnq_tensor_release(&input);
    return check_finish("test_train_golden");
}
