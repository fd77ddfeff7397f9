/* Training checkpoints: everything a run needs to continue bit-exactly --
 * parameters, BN running statistics, optimizer state, epoch, step and the
 * trainer's RNG state, and the position inside an unfinished epoch -- in
 * one binary file written atomically (temp file, fsync, rename), so a
 * crash mid-write leaves the previous checkpoint.
 *
 * Format, version 2, all integers and floats little-endian:
 *   8   magic "NNQCKPT\0"
 *   u32 version (2; version 1 files, which end the header after the RNG
 *       state, still load as epoch-boundary checkpoints)
 *   u32 optimizer kind (0 sgd, 1 adam, 2 adamw)
 *   i64 epochs completed
 *   i64 optimizer steps taken
 *   u64 x4 trainer RNG state (xoshiro256**)
 *   i64 steps done in the unfinished epoch (0: at an epoch boundary)
 *   u64 x4 RNG state before that epoch's shuffle (redraws its permutation)
 *   i64 training images, i64 batch size of the run (0: not recorded)
 *   f64 loss sum, i64 correct predictions of that epoch so far
 *   u32 record count, then per record:
 *       u32 kind (0 parameter, 1 training state such as BN running
 *           mean/var, 2 optimizer state 0 (momentum / Adam m), 3 optimizer
 *           state 1 (Adam v))
 *       u32 name length, the name's bytes (the graph value's name, no NUL)
 *       u64 element count, that many float32
 *   u32 CRC-32 (zlib's crc32) of every byte before it.
 * Loading checks the magic, version, CRC and every length before use, and
 * that the records match the graph's parameters and state by name and
 * size exactly; nothing is modified unless the whole file is valid. */
#ifndef NNQ_TRAIN_CHECKPOINT_H
#define NNQ_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "core/status.h"
#include "train/optim.h"
#include "train/params.h"
#include "train/rng.h"

#define NNQ_CHECKPOINT_VERSION 2

typedef struct nnq_checkpoint_meta {
    int64_t epoch; /* epochs completed */
    int64_t step;  /* optimizer steps taken */
    nnq_rng rng;   /* the trainer's RNG now */
    /* Inside epoch `epoch + 1` (all 0 at an epoch boundary): */
    int64_t epoch_step;   /* its steps done */
    nnq_rng epoch_rng;    /* the RNG before its shuffle */
    double epoch_loss_sum; /* sum of per-image losses so far (progress only) */
    int64_t epoch_correct; /* correct predictions so far (progress only) */
    /* The run it belongs to, checked on resume (0: unknown). */
    int64_t train_n, batch;
} nnq_checkpoint_meta;

nnq_status nnq_checkpoint_save(const char *path, const nnq_params *ps, const nnq_optim *o,
                               const nnq_checkpoint_meta *meta);
/* Restores ps's parameter and state data, o's state and step count; the
 * optimizer kind must match the file's. */
nnq_status nnq_checkpoint_load(const char *path, nnq_params *ps, nnq_optim *o,
                               nnq_checkpoint_meta *meta);

#endif
