/* Labelled image datasets in memory, NCHW float32.
 *
 * Fashion-MNIST comes from Debian's dataset-fashion-mnist (gzip IDX files in
 * /usr/share/datasets/fashion-mnist, or $NNQ_FASHION_MNIST_DIR) with nnq's
 * standard preprocessing: pixel/255, (x - 0.2860) / 0.3530, zero-pad 2 px
 * per side → 1x32x32. User data comes as NumPy .npy: float32 NCHW images,
 * int64 or int32 labels. */
#ifndef NNQ_DATA_DATASET_H
#define NNQ_DATA_DATASET_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

#define NNQ_FMNIST_MEAN 0.2860f
#define NNQ_FMNIST_STD 0.3530f
#define NNQ_FMNIST_PAD 2

typedef struct nnq_dataset {
    int64_t n;        /* number of samples */
    int c, h, w;      /* per-sample shape */
    float *images;    /* n*c*h*w, owned */
    int32_t *labels;  /* n, owned; NULL when unlabelled */
    int n_classes;    /* max label + 1; 0 when unlabelled */
} nnq_dataset;

typedef enum nnq_split { NNQ_SPLIT_TRAIN, NNQ_SPLIT_TEST } nnq_split;

/* Load a split of Fashion-MNIST, preprocessed. limit > 0 keeps the first
 * `limit` samples. */
nnq_status nnq_dataset_fashion_mnist(nnq_split split, int64_t limit, nnq_dataset *out);

/* Images from images_npy (float32, rank 4 NCHW, or rank 3 NHW taken as C=1);
 * labels from labels_npy (int64/int32, rank 1, same N) or NULL. */
nnq_status nnq_dataset_npy(const char *images_npy, const char *labels_npy, int64_t limit,
                           nnq_dataset *out);

void nnq_dataset_free(nnq_dataset *d);

/* A batch view: images [start, start+count) as a tensor (no copy). */
void nnq_dataset_batch(const nnq_dataset *d, int64_t start, int64_t count, nnq_tensor *out);

#endif
