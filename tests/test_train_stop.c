/* Stopping a training run early and resuming it mid-epoch (the library
 * side of "no lost work"; tests/test_train_interrupt.sh drives the CLI
 * with real signals):
 *   - a stop requested through cfg.stop after k steps (mid-epoch, at an
 *     epoch boundary, at the very first step) writes a checkpoint of that
 *     position, and resuming from it gives the uninterrupted run's weights
 *     bit for bit (SGD + augmentation, Adam; a last partial batch);
 *   - a periodic checkpoint (checkpoint_every), taken as a SIGKILL would
 *     leave it, resumes to the same weights, and sits where it should;
 *   - a checkpoint from another batch size or data size is refused, and a
 *     version-1 (epoch-boundary) checkpoint still loads.
 * Uses Fashion-MNIST from the Debian package. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "core/fileio.h"
#include "data/dataset.h"
#include "models/models.h"
#include "ops/executor.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static char CKPT_PATH[64], STOP_PATH[64];
static nnq_dataset train_set;
/* Uninterrupted reference runs (seed 9, base_config), one per optimizer. */
static nnq_graph *ref_sgd, *ref_adam;

static nnq_graph *build(uint64_t seed) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_build("tiny", seed, &g));
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

/* Stop callback: true from the (after+1)-th poll on, i.e. after `after`
 * steps (the trainer polls once before each step, and once between
 * epochs). */
typedef struct stopper {
    int64_t polls, after;
} stopper;

static bool stop_after_polls(void *user) {
    stopper *s = user;
    return ++s->polls > s->after;
}

static nnq_train_config base_config(nnq_optim_kind kind) {
    nnq_train_config c = nnq_train_defaults();
    c.epochs = 3;
    c.batch = 64; /* 300 images: 5 steps per epoch, the last one of 44 */
    c.threads = 1;
    c.seed = 13;
    c.optim = nnq_optim_defaults(kind);
    c.lr = kind == NNQ_OPTIM_SGD ? 0.1f : 0.01f;
    c.warmup_epochs = 0.5f;
    c.augment = (nnq_augment){.crop_pad = 2, .hflip = true};
    return c;
}

static nnq_checkpoint_meta read_meta(const char *path) {
    nnq_checkpoint_meta m;
    memset(&m, 0, sizeof m);
    nnq_graph *g = build(1);
    nnq_params ps;
    nnq_optim o;
    nnq_optim_config oc = nnq_optim_defaults(NNQ_OPTIM_SGD);
    if (!g) return m;
    CHECK_OK(nnq_params_init(&ps, g));
    CHECK_OK(nnq_optim_init(&o, &oc, &ps));
    /* The optimizer kind may differ: parse errors only matter for SGD runs. */
    (void)nnq_checkpoint_load(path, &ps, &o, &m);
    nnq_optim_free(&o);
    nnq_params_free(&ps);
    nnq_graph_free(g);
    return m;
}

static nnq_graph *reference(nnq_optim_kind kind) {
    nnq_graph **ref = kind == NNQ_OPTIM_SGD ? &ref_sgd : &ref_adam;
    if (*ref) return *ref;
    nnq_train_config c = base_config(kind);
    nnq_train_result r;
    if (!(*ref = build(9))) return NULL;
    CHECK_OK(nnq_train(*ref, &train_set, NULL, &c, &r));
    CHECK(!r.stopped && r.epochs_done == 3 && r.steps == 15);
    return *ref;
}

/* Stop after `after` polls, then resume to the end: == uninterrupted. */
static void stop_case(nnq_optim_kind kind, int64_t after, int64_t want_epoch,
                      int64_t want_epoch_step) {
    nnq_dataset sub = train_set;
    nnq_train_config c = base_config(kind);
    nnq_graph *full = reference(kind), *part = build(9);
    if (!full || !part) return;
    nnq_train_result r;

    stopper st = {0, after};
    c.stop = stop_after_polls;
    c.stop_user = &st;
    c.stop_checkpoint = STOP_PATH;
    remove(STOP_PATH);
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(r.stopped);
    CHECK(r.saved && strcmp(r.saved, STOP_PATH) == 0);
    CHECK(r.epochs_done == want_epoch && r.epoch_step == want_epoch_step);
    CHECK(r.steps == want_epoch * 5 + want_epoch_step);
    if (kind == NNQ_OPTIM_SGD) {
        nnq_checkpoint_meta m = read_meta(STOP_PATH);
        CHECK(m.epoch == want_epoch && m.epoch_step == want_epoch_step);
        CHECK(m.train_n == 300 && m.batch == 64);
    }
    nnq_graph_free(part);

    part = build(9); /* a fresh process rebuilds the model */
    c.stop = NULL;
    c.resume = STOP_PATH;
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(!r.stopped && r.epochs_done == 3 && r.steps == 15);
    CHECK(same_weights(full, part));
    nnq_graph_free(part);
}

static void test_stop_and_resume(void) {
    stop_case(NNQ_OPTIM_SGD, 7, 1, 1);  /* polls: 5 steps, 1 between epochs, 1 step */
    stop_case(NNQ_OPTIM_SGD, 10, 1, 4); /* just before the last, partial, batch */
    stop_case(NNQ_OPTIM_ADAM, 3, 0, 3);
    stop_case(NNQ_OPTIM_SGD, 5, 1, 0);  /* between epochs: the evaluation is skipped */
    stop_case(NNQ_OPTIM_SGD, 0, 0, 0);  /* before any step */
}

/* A stop without any checkpoint path stops without saving. */
static void test_stop_unsaved(void) {
    nnq_dataset sub = train_set;
    nnq_train_config c = base_config(NNQ_OPTIM_SGD);
    stopper st = {0, 2};
    c.stop = stop_after_polls;
    c.stop_user = &st;
    nnq_graph *g = build(9);
    nnq_train_result r;
    if (!g) return;
    CHECK_OK(nnq_train(g, &sub, NULL, &c, &r));
    CHECK(r.stopped && !r.saved && r.steps == 2);
    nnq_graph_free(g);
}

/* Periodic checkpoints every 3 steps: the file left after the run is the
 * last periodic or epoch-end one; stopping the run right after a periodic
 * write (as a SIGKILL could) and resuming from it == uninterrupted. */
static void test_periodic(void) {
    nnq_dataset sub = train_set;
    nnq_train_config c = base_config(NNQ_OPTIM_SGD);
    nnq_graph *full = reference(NNQ_OPTIM_SGD), *part = build(9);
    if (!full || !part) return;
    nnq_train_result r;

    /* Steps 3, 6, 9, 12 are periodic (global step % 3 == 0); 6 = epoch 2
     * step 1. Stop after 6 steps + 1 epoch-boundary poll + 0: the last
     * write before the stop is the periodic one at global step 6, and the
     * stop's own checkpoint goes elsewhere. */
    c.checkpoint = CKPT_PATH;
    c.checkpoint_every = 3;
    stopper st = {0, 7};
    c.stop = stop_after_polls;
    c.stop_user = &st;
    c.stop_checkpoint = STOP_PATH;
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(r.stopped && r.steps == 6);
    nnq_checkpoint_meta m = read_meta(CKPT_PATH);
    CHECK(m.epoch == 1 && m.epoch_step == 1 && m.step == 6);
    nnq_graph_free(part);

    part = build(9);
    c.stop = NULL;
    c.checkpoint = NULL;
    c.checkpoint_every = 0;
    c.resume = CKPT_PATH; /* the periodic one */
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    CHECK(same_weights(full, part));
    nnq_graph_free(part);

    /* checkpoint_every without a path is a configuration error. */
    nnq_train_config bad = base_config(NNQ_OPTIM_SGD);
    bad.checkpoint_every = 5;
    nnq_graph *g = build(4);
    if (g) CHECK_STATUS(nnq_train(g, &sub, NULL, &bad, &r), NNQ_ERR_INVALID);
    nnq_graph_free(g);
}

/* A mid-epoch checkpoint only fits the same data and batch size. */
static void test_mismatch(void) {
    nnq_dataset sub = train_set;
    nnq_train_config c = base_config(NNQ_OPTIM_SGD);
    stopper st = {0, 2};
    c.stop = stop_after_polls;
    c.stop_user = &st;
    c.stop_checkpoint = STOP_PATH;
    nnq_graph *g = build(9);
    nnq_train_result r;
    if (!g) return;
    CHECK_OK(nnq_train(g, &sub, NULL, &c, &r));
    c.stop = NULL;
    c.resume = STOP_PATH;
    c.batch = 32;
    CHECK_STATUS(nnq_train(g, &sub, NULL, &c, &r), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "batches of 64") != NULL);
    c.batch = 64;
    sub.n = 280;
    CHECK_STATUS(nnq_train(g, &sub, NULL, &c, &r), NNQ_ERR_INVALID);
    nnq_graph_free(g);
}

/* A version-1 file (header ends after the RNG state) loads as an
 * epoch-boundary checkpoint: made from a version-2 one by dropping the
 * 72 bytes of position fields and recomputing the CRC. */
static void test_version1(void) {
    nnq_dataset sub = train_set;
    nnq_train_config c = base_config(NNQ_OPTIM_SGD);
    nnq_graph *full = reference(NNQ_OPTIM_SGD), *part = build(9);
    if (!full || !part) return;
    nnq_train_result r;
    c.checkpoint = CKPT_PATH;
    c.stop_after = 1;
    CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
    nnq_graph_free(part);

    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_OK(nnq_read_file(CKPT_PATH, 1 << 24, &buf, &len));
    enum { V1_HEADER = 8 + 4 + 4 + 8 + 8 + 32, V2_EXTRA = 8 + 32 + 8 + 8 + 8 + 8 };
    if (!buf || len < V1_HEADER + V2_EXTRA + 8) {
        CHECK(!"checkpoint too short");
        free(buf);
        return;
    }
    CHECK(buf[8] == 2); /* written as version 2 */
    size_t n1 = len - V2_EXTRA;
    unsigned char *v1 = malloc(n1);
    memcpy(v1, buf, V1_HEADER);
    memcpy(v1 + V1_HEADER, buf + V1_HEADER + V2_EXTRA, len - V1_HEADER - V2_EXTRA - 4);
    v1[8] = 1;
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), v1, (uInt)(n1 - 4));
    for (int i = 0; i < 4; i++) v1[n1 - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
    CHECK_OK(nnq_write_file_atomic(CKPT_PATH, v1, n1));
    part = build(9);
    c.checkpoint = NULL;
    c.stop_after = 0;
    c.resume = CKPT_PATH;
    if (part) {
        CHECK_OK(nnq_train(part, &sub, NULL, &c, &r));
        CHECK(same_weights(full, part));
    }
    free(v1);
    free(buf);
    nnq_graph_free(part);
}

int main(void) {
    snprintf(CKPT_PATH, sizeof CKPT_PATH, "/tmp/nnq-test-stop-%ld.ckpt", (long)getpid());
    snprintf(STOP_PATH, sizeof STOP_PATH, "/tmp/nnq-test-stop-%ld.stop", (long)getpid());
    if (nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, 300, &train_set) != NNQ_OK) {
        fprintf(stderr, "test_train_stop: cannot load Fashion-MNIST: %s\n", nnq_last_error());
        return 1;
    }
    test_stop_and_resume();
    test_stop_unsaved();
    test_periodic();
    test_mismatch();
    test_version1();
    remove(CKPT_PATH);
    remove(STOP_PATH);
    nnq_graph_free(ref_sgd);
    nnq_graph_free(ref_adam);
    nnq_dataset_free(&train_set);
    return check_finish("test_train_stop");
}
