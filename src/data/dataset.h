/* Labelled image datasets in memory, NCHW float32.
 *
 * Fashion-MNIST comes from Debian's dataset-fashion-mnist (gzip IDX files in
 * /usr/share/datasets/fashion-mnist, or $NNQ_FASHION_MNIST_DIR) with nnq's
 * standard preprocessing, equal bit for bit to torchvision's
 * Compose([ToTensor(), Normalize(0.2860, 0.3530), Pad(2)]): float32
 * pixel/255, (x - 0.2860) / 0.3530, then 2 px of 0.0 per side (0 in the
 * normalised space) → 1x32x32. User data comes as NumPy .npy: float32
 * (or float64, converted) NCHW images, int64 or int32 labels. */
#ifndef NNQ_DATA_DATASET_H
#define NNQ_DATA_DATASET_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

#define NNQ_FMNIST_MEAN 0.2860f
#define NNQ_FMNIST_STD 0.3530f
#define NNQ_FMNIST_PAD 2
#define NNQ_FMNIST_CLASSES 10

typedef struct nnq_dataset {
    int64_t n;        /* number of samples */
    int c, h, w;      /* per-sample shape */
    float *images;    /* n*c*h*w, owned */
    int32_t *labels;  /* n, owned; NULL when unlabelled */
    int n_classes;    /* max label + 1 (over the whole file, not just the
                         kept samples); 10 for Fashion-MNIST; 0 unlabelled */
} nnq_dataset;

typedef enum nnq_split { NNQ_SPLIT_TRAIN, NNQ_SPLIT_TEST } nnq_split;

/* Load a split of Fashion-MNIST, preprocessed. limit > 0 keeps the first
 * `limit` samples. A missing file fails with NNQ_ERR_IO naming the path. */
nnq_status nnq_dataset_fashion_mnist(nnq_split split, int64_t limit, nnq_dataset *out);

/* Images from images_npy (float32 or float64, rank 4 NCHW, or rank 3 NHW
 * taken as C=1; all values finite); labels from labels_npy (int64/int32,
 * rank 1, same N, each in [0, 2^31)) or NULL. limit as above. */
nnq_status nnq_dataset_npy(const char *images_npy, const char *labels_npy, int64_t limit,
                           nnq_dataset *out);

void nnq_dataset_free(nnq_dataset *d);

/* A batch view: images [start, start+count) as a float32 tensor of dims
 * {count, c, h, w} pointing into d (no copy, owns = false). The range is
 * clamped to [0, n), so a last partial batch just comes out shorter. */
void nnq_dataset_batch(const nnq_dataset *d, int64_t start, int64_t count, nnq_tensor *out);

#endif
