/* Mini-batch assembly: copy chosen samples of a dataset into one batch
 * buffer, optionally augmenting them the way torchvision's
 * RandomCrop(size, padding=pad) + RandomHorizontalFlip() do: the image is
 * zero-padded by `pad` pixels per side (0 = the normalised background of
 * nnq's Fashion-MNIST), a window of the original size is cut at a random
 * offset in [0, 2 pad] per axis, and mirrored left-right with
 * probability 1/2. Random draws come from the trainer's RNG in sample
 * order (dy, dx, flip), so a seed fixes the augmentation. */
#ifndef NNQ_TRAIN_BATCH_H
#define NNQ_TRAIN_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "data/dataset.h"
#include "train/rng.h"

typedef struct nnq_augment {
    int crop_pad; /* 0: no random crop */
    bool hflip;
} nnq_augment;

/* images: count * c * h * w floats; labels: count (NULL: not wanted).
 * aug NULL (or all off): plain copies, rng untouched. */
void nnq_batch_gather(const nnq_dataset *d, const int64_t *idx, int64_t count,
                      const nnq_augment *aug, nnq_rng *rng, float *images, int32_t *labels);

#endif
