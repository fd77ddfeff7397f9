/* The training loop: shuffled mini-batches from a seeded RNG, optional
 * augmentation, softmax cross-entropy, backward, gradient clipping, an
 * optimizer step at the scheduled learning rate, evaluation on a test set
 * after each epoch, an atomic checkpoint after each epoch, and resuming.
 *
 * The graph is trained in place: its initializers hold the trained weights
 * and BN statistics afterwards, so nnq_onnx_save exports the model (BN
 * nodes kept, not folded).
 *
 * Determinism: the same graph, data, config and thread count on the same
 * machine give bit-identical weights. Each epoch shuffles a fresh identity
 * permutation with the trainer's RNG (seeded from cfg.seed), then draws
 * augmentations from it in batch order; a checkpoint stores the RNG state
 * now and before the epoch's shuffle, and the step inside the epoch, so a
 * resumed run continues exactly where an uninterrupted one would be, from
 * an epoch's end or from the middle of one.
 *
 * Stopping early: cfg.stop is polled before every step; when it returns
 * true the step in progress has finished, the trainer writes a checkpoint
 * of that exact position and returns NNQ_OK with result.stopped set. The
 * CLI connects it to SIGINT/SIGTERM; the library installs no signal
 * handler. The library does not print: progress goes to a callback. */
#ifndef NNQ_TRAIN_TRAINER_H
#define NNQ_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "train/autograd.h"
#include "train/batch.h"
#include "train/optim.h"
#include "train/schedule.h"

typedef struct nnq_train_progress {
    int epoch, epochs;          /* 1-based epoch in progress, total */
    int64_t step, steps;        /* steps done in this epoch, steps per epoch */
    int64_t global_step, total_steps;
    double loss, accuracy;      /* means over this epoch so far (accuracy 0..1) */
    float lr;                   /* learning rate of the last step */
    double images_per_s;        /* training throughput this epoch so far */
    double eta_s;               /* estimated seconds left in the run */
    bool epoch_done;            /* end of an epoch: the fields below are set */
    bool has_test;
    double test_loss, test_accuracy;
    double epoch_seconds;       /* training steps only, without evaluation */
} nnq_train_progress;

typedef void (*nnq_train_progress_fn)(const nnq_train_progress *p, void *user);

/* Extensions for passes that train a graph of their own making (QAT);
 * every member optional. */
typedef struct nnq_train_hooks {
    void *user;
    /* After g is prepared and its default parameters are collected, before
     * the optimizer and the autograd are built: add parameter groups,
     * parameters and state (the trainer re-allocates the gradient block
     * afterwards), and turn nodes that preparing folded into constants but
     * that read new parameters back into live ones (clear their outputs'
     * data), e.g. FakeQuant on trainable weights. */
    nnq_status (*setup)(void *user, nnq_graph *g, nnq_params *ps);
    /* Replaces softmax cross-entropy: the loss of the step's logits, given
     * its images [count, C, H, W] and labels; writes dlogits (overwrites)
     * and the number of correct rows. */
    nnq_status (*loss)(void *user, const nnq_tensor *logits, const nnq_tensor *images,
                       const int32_t *labels, double *loss, nnq_tensor *dlogits,
                       int64_t *correct);
    /* After each optimizer step, before any checkpoint of that position:
     * projections of parameters onto their valid set, running ranges; ag
     * still holds the step's forward values. */
    nnq_status (*after_step)(void *user, nnq_params *ps, const nnq_autograd *ag);
    /* Around each evaluation of g on the test set: on before it, off after
     * it. For parts of g that inference runs and training steps must not,
     * e.g. QAT's folded-bias shifts. */
    nnq_status (*inference)(void *user, nnq_graph *g, bool on);
} nnq_train_hooks;
/* true: stop before the next step (must be cheap: called once per step). */
typedef bool (*nnq_train_stop_fn)(void *user);

typedef struct nnq_train_config {
    int epochs;
    int64_t batch;
    nnq_optim_config optim;
    float lr;                 /* base learning rate */
    nnq_sched_kind schedule;
    float warmup_epochs;      /* linear warm-up length (fractions allowed) */
    float step_epochs;        /* STEP schedule: epochs between decays */
    float gamma;              /* STEP schedule: decay factor */
    float clip_norm;          /* clip gradients to this global norm; 0: off */
    nnq_augment augment;
    uint64_t seed;            /* shuffling and augmentation */
    int threads;              /* 0: all cores */
    int64_t eval_batch;       /* 0: same as batch */
    const char *checkpoint;   /* write after each epoch (NULL: none) */
    int64_t checkpoint_every; /* also every this many steps mid-epoch (0: off; needs
                                 checkpoint), so a killed run loses at most that many */
    const char *resume;       /* continue from this checkpoint (NULL: start) */
    int stop_after;           /* stop once this many epochs are done (0: run all) */
    nnq_train_progress_fn progress;
    void *user;
    nnq_train_stop_fn stop;   /* polled before each step (NULL: never stop early) */
    void *stop_user;
    const char *stop_checkpoint; /* where a stop saves (NULL: `checkpoint`; both NULL:
                                    nothing is saved) */
    const nnq_train_hooks *hooks; /* NULL: plain training */
} nnq_train_config;

typedef struct nnq_train_result {
    int epochs_done;          /* epochs completed, counting resumed ones */
    int64_t steps;            /* optimizer steps taken, counting resumed ones */
    double train_seconds;     /* this run's training steps, without evaluation */
    double images_per_s;      /* this run's training throughput */
    double train_loss, train_accuracy; /* last epoch's means */
    bool has_test;
    double test_loss, test_accuracy;   /* after the last epoch */
    int64_t params;           /* trainable elements */
    size_t buffer_bytes;      /* activation, gradient and optimizer buffers */
    bool stopped;             /* cfg.stop ended the run before its last epoch */
    int64_t epoch_step;       /* when stopped: steps done in the unfinished epoch */
    const char *saved;        /* when stopped: the checkpoint written (cfg's string), or NULL */
} nnq_train_result;

/* SGD momentum 0.9 Nesterov, lr 0.1, weight decay 5e-4, cosine, no
 * warm-up, batch 128, 1 epoch, seed 1, no augmentation. */
nnq_train_config nnq_train_defaults(void);

/* Train g (prepared here if it is not) on `train`; evaluate on `test`
 * (NULL: no evaluation) after each epoch. */
nnq_status nnq_train(nnq_graph *g, const nnq_dataset *train, const nnq_dataset *test,
                     const nnq_train_config *cfg, nnq_train_result *out);

/* Mean cross-entropy and top-1 accuracy (0..1) of a prepared graph's
 * first output on a labelled dataset, BN in inference mode. */
nnq_status nnq_evaluate(const nnq_graph *g, const nnq_dataset *d, int64_t batch, int threads,
                        double *loss, double *accuracy);

#endif
