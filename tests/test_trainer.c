/* Training end to end: whole-model gradients agree with finite
 * differences, a tiny model overfits a small batch, the same seed gives
 * bit-identical weights, resuming from a checkpoint reproduces an
 * uninterrupted run bit for bit, checkpoints are validated, and the
 * exported ONNX model computes exactly what the trainer evaluated. Uses
 * Fashion-MNIST from the Debian package. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "data/dataset.h"
#include "models/builder.h"
#include "models/models.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "train/autograd.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/params.h"
#include "train/trainer.h"

/* Temporary files outside the repository, unique per process. */
static char CKPT_PATH[64], ONNX_PATH[64];

static nnq_dataset train_set, test_set;

static nnq_graph *build(const char *arch, uint64_t seed) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_build(arch, seed, &g));
    if (g) CHECK_OK(nnq_graph_prepare(g));
    return g;
}

/* Every float initializer (parameters and BN statistics) bit-equal. */
static bool same_weights(const nnq_graph *a, const nnq_graph *b) {
    if (a->n_values != b->n_values) return false;
    for (int v = 0; v < a->n_values; v++) {
        const nnq_value *x = &a->values[v], *y = &b->values[v];
        if (!x->is_initializer) continue;
        size_t n;
        if (!y->is_initializer || nnq_tensor_nbytes(&x->t, &n) != NNQ_OK ||
            !nnq_shape_equal(&x->t, &y->t) || memcmp(x->t.data, y->t.data, n) != 0)
            return false;
    }
    return true;
}

/* ---- whole-model gradient check ----
 * A smooth network through every kind of plumbing the trainer relies on
 * (BN with batch statistics, a value read by two nodes, strided and
 * depthwise convs, Gemm), built with the model builder. HardSwish is
 * smooth except at +-3, so finite differences are reliable here; the
 * built-in ReLU / max-pool models have kinks that small batches hit.
 * (Their gradients were compared with PyTorch 1.13 on the same weights
 * and batch during development: normalised error <= 1e-6.)
 * Per parameter tensor: the backward's g.u against
 * (L(p + h u) - L(p - h u)) / 2h along u = +-RMS(p) per element. */
static nnq_graph *smooth_net(void) {
    nnq_builder b;
    nnq_graph *g = NULL;
    CHECK_OK(nnq_builder_init(&b, "smooth", 14, 21));
    int x = nnq_build_input(&b, "input", 1, 32, 32);
    x = nnq_build_conv_bn_act(&b, x, "stem", "stem_bn", 1, 8, 3, 2, 1, NNQ_ACT_HARDSWISH);
    int y = nnq_build_conv_bn_act(&b, x, "dw", "dw_bn", 8, 8, 3, 1, 8, NNQ_ACT_HARDSWISH);
    y = nnq_build_conv_bn_act(&b, y, "pw", "pw_bn", 8, 8, 1, 1, 1, NNQ_ACT_NONE);
    x = nnq_build_act(&b, nnq_build_add(&b, x, y), NNQ_ACT_HARDSWISH);
    x = nnq_build_conv(&b, x, "down", 8, 16, 3, 2, 1, 1, true);
    x = nnq_build_act(&b, x, NNQ_ACT_HARDSWISH);
    x = nnq_build_gap(&b, x);
    x = nnq_build_flatten(&b, x);
    x = nnq_build_gemm(&b, x, "fc", 16, 10);
    CHECK_OK(nnq_builder_finish(&b, x, "logits", &g));
    if (g) CHECK_OK(nnq_graph_prepare(g));
    return g;
}

static double loss_at(nnq_autograd *ag, const nnq_tensor *x, const int32_t *labels,
                      bool want_grad) {
    double loss = 0;
    CHECK_OK(nnq_autograd_forward(ag, x));
    nnq_tensor *dl = want_grad ? nnq_autograd_output_grad(ag, 0) : NULL;
    CHECK_OK(nnq_loss_softmax_ce(nnq_autograd_output(ag, 0), labels, 0.0f, &loss, dl, NULL));
    return loss;
}

static void test_gradcheck(void) {
    nnq_graph *g = smooth_net();
    if (!g) return;
    nnq_params ps;
    nnq_autograd *ag = NULL;
    CHECK_OK(nnq_params_init(&ps, g));
    CHECK(ps.n == 13 && ps.n_state == 6);
    CHECK_OK(nnq_autograd_create(g, &ps, 1, &ag));
    if (!ag) return;
    enum { N = 16 };
    nnq_tensor x;
    nnq_dataset_batch(&train_set, 0, N, &x);
    const int32_t *labels = train_set.labels;
    loss_at(ag, &x, labels, true);
    nnq_params_zero_grad(&ps);
    CHECK_OK(nnq_autograd_backward(ag));

    uint32_t seed = 12345;
    const double h = 1e-3;
    for (int i = 0; i < ps.n; i++) {
        nnq_param *p = &ps.p[i];
        double rms = 0, gu = 0, l[2];
        for (int64_t k = 0; k < p->numel; k++) rms += (double)p->data[k] * p->data[k];
        rms = sqrt(rms / (double)p->numel) + 0.1;
        float *u = malloc(sizeof(float) * (size_t)p->numel);
        for (int64_t k = 0; k < p->numel; k++) {
            seed = seed * 1664525u + 1013904223u;
            u[k] = (float)((seed >> 31) ? rms : -rms);
            gu += (double)p->grad[k] * u[k];
        }
        for (int side = 0; side < 2; side++) {
            float step = (float)(side ? -h : h);
            for (int64_t k = 0; k < p->numel; k++) p->data[k] += step * u[k];
            l[side] = loss_at(ag, &x, labels, false);
            for (int64_t k = 0; k < p->numel; k++) p->data[k] -= step * u[k];
        }
        double fd = (l[0] - l[1]) / (2 * h);
        bool ok = fabs(fd - gu) <= 0.01 * fabs(gu) + 2e-3;
        if (!ok)
            fprintf(stderr, "gradient of %s along u: backward %.6g, finite differences %.6g\n",
                    nnq_params_name(&ps, i), gu, fd);
        CHECK(ok);
        free(u);
    }
    nnq_autograd_free(ag);
    nnq_params_free(&ps);
    nnq_graph_free(g);
}

/* Gradients accumulate over backwards until zeroed: two backwards of the
 * same batch give twice one (up to the rounding of BLAS's beta = 1). */
static void test_accumulation(void) {
    nnq_graph *g = build("resnet20", 4);
    if (!g) return;
    nnq_params ps;
    nnq_autograd *ag = NULL;
    CHECK_OK(nnq_params_init(&ps, g));
    CHECK_OK(nnq_autograd_create(g, &ps, 1, &ag));
    if (!ag) return;
    nnq_tensor x;
    nnq_dataset_batch(&train_set, 8, 3, &x);
    nnq_params_zero_grad(&ps);
    loss_at(ag, &x, train_set.labels + 8, true);
    CHECK_OK(nnq_autograd_backward(ag));
    float *once = malloc(sizeof(float) * ps.total);
    memcpy(once, ps.grads, sizeof(float) * ps.total);
    loss_at(ag, &x, train_set.labels + 8, true); /* same batch again, not zeroed */
    CHECK_OK(nnq_autograd_backward(ag));
    bool nonzero = false;
    for (size_t i = 0; i < ps.total; i++) {
        once[i] *= 2;
        if (once[i] != 0) nonzero = true;
    }
    CHECK(check_nmse(ps.grads, once, (long)ps.total) < 1e-12);
    CHECK(nonzero);
    free(once);
    nnq_autograd_free(ag);
    nnq_params_free(&ps);
    nnq_graph_free(g);
}

/* ---- batches ---- */

/* Image (1 x 4 x 4) shifted by (dy - 1, dx - 1) with zeros coming in, then
 * optionally mirrored: what RandomCrop(4, padding=1) + flip produce. */
static void shifted(const float *src, int dy, int dx, bool flip, float *dst) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int si = i + dy - 1, sj = (flip ? 3 - j : j) + dx - 1;
            dst[i * 4 + j] = si >= 0 && si < 4 && sj >= 0 && sj < 4 ? src[si * 4 + sj] : 0.0f;
        }
}

static void test_batches(void) {
    float img[2][16];
    int32_t lab[2] = {3, 7};
    for (int k = 0; k < 32; k++) img[k / 16][k % 16] = (float)(k + 1);
    nnq_dataset d = {.n = 2, .c = 1, .h = 4, .w = 4, .images = &img[0][0], .labels = lab,
                     .n_classes = 10};
    nnq_rng rng;
    nnq_rng_seed(&rng, 1);
    const int64_t idx[2] = {1, 0};
    float out[32];
    int32_t labels[2];
    nnq_batch_gather(&d, idx, 2, NULL, &rng, out, labels);
    CHECK(memcmp(out, img[1], sizeof img[1]) == 0 && memcmp(out + 16, img[0], sizeof img[0]) == 0);
    CHECK(labels[0] == 7 && labels[1] == 3);

    /* Every augmented sample is one of the 3 x 3 x 2 transforms, and in
     * 1800 draws each transform shows up (expected 100 times each). */
    nnq_augment aug = {.crop_pad = 1, .hflip = true};
    int seen[18] = {0};
    bool all_valid = true;
    for (int t = 0; t < 1800; t++) {
        nnq_batch_gather(&d, idx + 1, 1, &aug, &rng, out, NULL);
        int match = -1;
        for (int c = 0; c < 18 && match < 0; c++) {
            float want[16];
            shifted(img[0], c / 6, c / 2 % 3, c % 2, want);
            if (memcmp(out, want, sizeof want) == 0) match = c;
        }
        if (match < 0) all_valid = false;
        else seen[match]++;
    }
    CHECK(all_valid);
    for (int c = 0; c < 18; c++) CHECK(seen[c] > 50 && seen[c] < 150);

    /* Shuffles are permutations; below(n) stays below n; seeds repeat. */
    int64_t perm[100];
    for (int i = 0; i < 100; i++) perm[i] = i;
    nnq_rng_shuffle(&rng, perm, 100);
    bool hit[100] = {false}, moved = false;
    for (int i = 0; i < 100; i++) {
        if (perm[i] >= 0 && perm[i] < 100) hit[perm[i]] = true;
        moved = moved || perm[i] != i;
    }
    bool all = true;
    for (int i = 0; i < 100; i++) all = all && hit[i];
    CHECK(all && moved);
    nnq_rng a, b;
    nnq_rng_seed(&a, 99);
    nnq_rng_seed(&b, 99);
    bool same = true, below = true;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = nnq_rng_below(&a, 7);
        same = same && x == nnq_rng_below(&b, 7);
        below = below && x < 7;
    }
    CHECK(same && below);
}

/* ---- training runs ---- */

static nnq_train_config tiny_config(void) {
    nnq_train_config c = nnq_train_defaults();
    c.batch = 64;
    c.threads = 1; /* tiny gains nothing from threads; test_determinism uses 2 */
    c.seed = 7;
    return c;
}

/* 64 images, one batch: loss falls by more than 5x in 150 steps. */
static void test_overfit(void) {
    nnq_dataset small = train_set;
    small.n = 64;
    nnq_graph *g = build("tiny", 1);
    if (!g) return;
    nnq_train_config c = tiny_config();
    c.optim = nnq_optim_defaults(NNQ_OPTIM_ADAM);
    c.lr = 0.02f;
    c.schedule = NNQ_SCHED_CONSTANT;
    double first = 0;
    nnq_train_result r;
    c.epochs = 1;
    CHECK_OK(nnq_train(g, &small, NULL, &c, &r));
    first = r.train_loss;
    c.epochs = 150;
    c.resume = NULL;
    CHECK_OK(nnq_train(g, &small, NULL, &c, &r)); /* continues from the trained weights */
    fprintf(stderr, "overfit: loss %.4f -> %.4f, accuracy %.1f%%\n", first, r.train_loss,
            100 * r.train_accuracy);
    CHECK(first > 2.0);
    CHECK(r.train_loss < first / 5);
    CHECK(r.epochs_done == 150 && r.steps == 150);
    nnq_graph_free(g);
}

/* Two runs with the same seed: the same bits; another seed: different.
 * 500 images in batches of 64 (a last partial batch of 52 re-plans),
 * augmentation on. */
static void test_determinism(void) {
    nnq_dataset sub = train_set;
    sub.n = 500;
    nnq_train_config c = tiny_config();
    c.epochs = 2;
    c.threads = 2; /* reductions split across threads must still repeat exactly */
    c.augment = (nnq_augment){.crop_pad = 2, .hflip = true};
    nnq_graph *a = build("tiny", 5), *b = build("tiny", 5), *d = build("tiny", 5);
    nnq_train_result r;
    if (!a || !b || !d) return;
    CHECK_OK(nnq_train(a, &sub, NULL, &c, &r));
    CHECK(r.steps == 16);
    CHECK_OK(nnq_train(b, &sub, NULL, &c, &r));
    CHECK(same_weights(a, b));
    c.seed = 8;
    CHECK_OK(nnq_train(d, &sub, NULL, &c, &r));
    CHECK(!same_weights(a, d));
    nnq_graph_free(a);
    nnq_graph_free(b);
    nnq_graph_free(d);
}

/* Interrupted after epoch 1 and resumed == uninterrupted, bit for bit
 * (parameters, BN statistics), for SGD with momentum and augmentation
 * (optimizer state and RNG state matter) and for Adam. */
static void resume_case(nnq_optim_kind kind) {
    nnq_dataset sub = train_set;
    sub.n = 300;
    nnq_train_config c = tiny_config();
    c.epochs = 3;
    c.optim = nnq_optim_defaults(kind);
    c.lr = kind == NNQ_OPTIM_SGD ? 0.1f : 0.01f;
    c.warmup_epochs = 0.5f;
    c.augment = (nnq_augment){.crop_pad = 2, .hflip = true};
    nnq_graph *full = build("tiny", 9), *part = build("tiny", 9);
    if (!full || !part) return;
    nnq_train_result r;
    CHECK_OK(nnq_train(full, &sub, NULL, &c, &r));

    c.checkpoint = CKPT_PATH;
    c.stop_after = 1;
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(r.epochs_done == 1);
    CHECK(!same_weights(full, part));
    nnq_graph_free(part);

    part = build("tiny", 9); /* a fresh process would rebuild the model */
    c.checkpoint = NULL;
    c.stop_after = 0;
    c.resume = CKPT_PATH;
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(r.epochs_done == 3);
    CHECK(same_weights(full, part));
    nnq_graph_free(full);
    nnq_graph_free(part);
}

static void test_resume(void) {
    resume_case(NNQ_OPTIM_SGD);
    resume_case(NNQ_OPTIM_ADAM);
}

/* A damaged, truncated or mismatched checkpoint is refused, and the
 * model is left untouched. */
static void test_checkpoint_errors(void) {
    nnq_graph *g = build("tiny", 2), *other = build("resnet20", 2);
    if (!g || !other) return;
    nnq_params ps, ops;
    nnq_optim o, oo;
    CHECK_OK(nnq_params_init(&ps, g));
    CHECK_OK(nnq_params_init(&ops, other));
    nnq_optim_config sgd = nnq_optim_defaults(NNQ_OPTIM_SGD);
    CHECK_OK(nnq_optim_init(&o, &sgd, &ps));
    CHECK_OK(nnq_optim_init(&oo, &sgd, &ops));
    nnq_checkpoint_meta m = {.epoch = 1, .step = 10};
    nnq_rng_seed(&m.rng, 3);
    CHECK_OK(nnq_checkpoint_save(CKPT_PATH, &ps, &o, &m));

    nnq_checkpoint_meta back;
    CHECK_OK(nnq_checkpoint_load(CKPT_PATH, &ps, &o, &back));
    CHECK(back.epoch == 1 && back.step == 10 && memcmp(&back.rng, &m.rng, sizeof m.rng) == 0);
    CHECK(o.steps == 10);

    CHECK_STATUS(nnq_checkpoint_load(CKPT_PATH, &ops, &oo, &back), NNQ_ERR_INVALID);
    nnq_optim adam;
    nnq_optim_config ac = nnq_optim_defaults(NNQ_OPTIM_ADAM);
    CHECK_OK(nnq_optim_init(&adam, &ac, &ps));
    CHECK_STATUS(nnq_checkpoint_load(CKPT_PATH, &ps, &adam, &back), NNQ_ERR_INVALID);
    nnq_optim_free(&adam);

    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_OK(nnq_read_file(CKPT_PATH, 1 << 24, &buf, &len));
    if (buf && len > 200) {
        float before = ps.p[0].data[0];
        buf[150] ^= 0x10; /* inside the first record */
        CHECK_OK(nnq_write_file_atomic(CKPT_PATH, buf, len));
        CHECK_STATUS(nnq_checkpoint_load(CKPT_PATH, &ps, &o, &back), NNQ_ERR_PARSE);
        CHECK(strstr(nnq_last_error(), "CRC") != NULL);
        buf[150] ^= 0x10;
        CHECK_OK(nnq_write_file_atomic(CKPT_PATH, buf, len / 2));
        CHECK_STATUS(nnq_checkpoint_load(CKPT_PATH, &ps, &o, &back), NNQ_ERR_PARSE);
        memcpy(buf, "NOTCKPT", 7);
        CHECK_OK(nnq_write_file_atomic(CKPT_PATH, buf, len));
        CHECK_STATUS(nnq_checkpoint_load(CKPT_PATH, &ps, &o, &back), NNQ_ERR_PARSE);
        CHECK(ps.p[0].data[0] == before);
    }
    free(buf);
    CHECK_STATUS(nnq_checkpoint_load("build-no-such.ckpt", &ps, &o, &back), NNQ_ERR_IO);
    remove(CKPT_PATH);
    nnq_optim_free(&o);
    nnq_optim_free(&oo);
    nnq_params_free(&ps);
    nnq_params_free(&ops);
    nnq_graph_free(g);
    nnq_graph_free(other);
}

/* Train, export, reload: the same logits bit for bit, BN nodes kept, and
 * the trained model is far better than chance on held-out images. */
static void test_export(void) {
    nnq_dataset sub = train_set;
    sub.n = 4096;
    nnq_dataset held = test_set;
    held.n = 1000;
    nnq_graph *g = build("tiny", 11), *h = NULL;
    if (!g) return;
    nnq_train_config c = tiny_config();
    c.epochs = 2;
    nnq_train_result r;
    CHECK_OK(nnq_train(g, &sub, &held, &c, &r));
    fprintf(stderr, "tiny, 2 epochs on 4096 images: test accuracy %.1f%%, %.0f images/s\n",
            100 * r.test_accuracy, r.images_per_s);
    CHECK(r.has_test && r.test_accuracy > 0.45);
    CHECK(r.params == 1442);
    double loss, acc;
    CHECK_OK(nnq_evaluate(g, &held, 64, 2, &loss, &acc)); /* the trainer's eval batch */
    CHECK(acc == r.test_accuracy && loss == r.test_loss);

    CHECK_OK(nnq_onnx_save(g, ONNX_PATH));
    CHECK_OK(nnq_onnx_load(ONNX_PATH, &h));
    if (h) {
        CHECK_OK(nnq_graph_prepare(h));
        int bn = 0;
        for (int n = 0; n < h->n_nodes; n++) bn += !strcmp(h->nodes[n].op_type, "BatchNormalization");
        CHECK(bn == 2);
        nnq_exec *ea = NULL, *eb = NULL;
        nnq_exec_options opt = {.threads = 2};
        CHECK_OK(nnq_exec_create(g, &opt, &ea));
        CHECK_OK(nnq_exec_create(h, &opt, &eb));
        nnq_tensor x;
        nnq_dataset_batch(&held, 0, 64, &x);
        CHECK_OK(nnq_exec_run(ea, &x));
        CHECK_OK(nnq_exec_run(eb, &x));
        const nnq_tensor *ya = nnq_exec_output(ea, 0), *yb = nnq_exec_output(eb, 0);
        CHECK(nnq_shape_equal(ya, yb));
        CHECK(memcmp(ya->data, yb->data, sizeof(float) * 640) == 0);
        nnq_exec_free(ea);
        nnq_exec_free(eb);
        double loss2, acc2;
        CHECK_OK(nnq_evaluate(h, &held, 64, 2, &loss2, &acc2));
        CHECK(acc2 == acc && loss2 == loss);
    }
    remove(ONNX_PATH);
    nnq_graph_free(g);
    nnq_graph_free(h);
}

static void test_config_errors(void) {
    nnq_graph *g = build("tiny", 1);
    if (!g) return;
    nnq_train_result r;
    nnq_train_config c = tiny_config();
    c.epochs = 0;
    CHECK_STATUS(nnq_train(g, &train_set, NULL, &c, &r), NNQ_ERR_INVALID);
    c = tiny_config();
    c.warmup_epochs = 3;
    CHECK_STATUS(nnq_train(g, &train_set, NULL, &c, &r), NNQ_ERR_INVALID);
    c = tiny_config();
    c.resume = "build-no-such.ckpt";
    CHECK_STATUS(nnq_train(g, &train_set, NULL, &c, &r), NNQ_ERR_IO);
    nnq_dataset bad = train_set;
    bad.h = 28;
    bad.w = 28;
    bad.n = 10;
    c = tiny_config();
    CHECK_STATUS(nnq_train(g, &bad, NULL, &c, &r), NNQ_ERR_SHAPE);
    nnq_graph_free(g);
}

int main(void) {
    snprintf(CKPT_PATH, sizeof CKPT_PATH, "/tmp/nnq-test-trainer-%ld.ckpt", (long)getpid());
    snprintf(ONNX_PATH, sizeof ONNX_PATH, "/tmp/nnq-test-trainer-%ld.onnx", (long)getpid());
    nnq_status s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, 6000, &train_set);
    if (s == NNQ_OK) s = nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 2000, &test_set);
    if (s != NNQ_OK) {
        fprintf(stderr, "test_trainer: cannot load Fashion-MNIST: %s\n", nnq_last_error());
        return 1;
    }
    test_batches();
    test_gradcheck();
    test_accumulation();
    test_overfit();
    test_determinism();
    test_resume();
    test_checkpoint_errors();
    test_export();
    test_config_errors();
    nnq_dataset_free(&train_set);
    nnq_dataset_free(&test_set);
    return check_finish("test_trainer");
}
