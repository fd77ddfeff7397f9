/* Training checkpoints: everything a run needs to continue bit-exactly --
 * parameters, BN running statistics, optimizer state, epoch, step and the
 * trainer's RNG state -- in one binary file written atomically (temp file,
 * fsync, rename), so a crash mid-write leaves the previous checkpoint.
 *
 * Format, version 1, all integers and floats little-endian:
 *   8   magic "NNQCKPT\0"
 *   u32 version (1)
 *   u32 optimizer kind (0 sgd, 1 adam, 2 adamw)
 *   i64 epochs completed
 *   i64 optimizer steps taken
 *   u64 x4 trainer RNG state (xoshiro256**)
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

#define NNQ_CHECKPOINT_VERSION 1

typedef struct nnq_checkpoint_meta {
    int64_t epoch; /* epochs completed */
    int64_t step;  /* optimizer steps taken */
    nnq_rng rng;
} nnq_checkpoint_meta;

nnq_status nnq_checkpoint_save(const char *path, const nnq_params *ps, const nnq_optim *o,
                               const nnq_checkpoint_meta *meta);
/* Restores ps's parameter and state data, o's state and step count; the
 * optimizer kind must match the file's. */
nnq_status nnq_checkpoint_load(const char *path, nnq_params *ps, nnq_optim *o,
                               nnq_checkpoint_meta *meta);

#endif
