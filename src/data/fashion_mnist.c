/* Fashion-MNIST from gzip IDX files, preprocessed as torchvision's
 * Compose([ToTensor(), Normalize(mean, std), Pad(2)]) does it: float32
 * pixel/255, then (x - mean) / std, then a border of zeros, so padded
 * pixels are 0.0 in the normalised space, not the normalised black. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/idx.h"

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_SIDE 28
#define FMNIST_OUT_SIDE (FMNIST_SIDE + 2 * NNQ_FMNIST_PAD)
#define FMNIST_PATH_CAP 4096

static nnq_status fmnist_load(const char *dir, const char *prefix, const char *kind,
                              nnq_tensor *t) {
    char path[FMNIST_PATH_CAP];
    int n = snprintf(path, sizeof path, "%s/%s-%s-ubyte.gz", dir, prefix, kind);
    if (n < 0 || (size_t)n >= sizeof path)
        return nnq_fail(NNQ_ERR_INVALID, "Fashion-MNIST directory name is too long: %s", dir);
    if (access(path, R_OK) != 0)
        return nnq_fail(NNQ_ERR_IO,
                        "cannot read %s: %s; install the Fashion-MNIST data (Debian package "
                        "dataset-fashion-mnist) with scripts/deps.sh, or point "
                        "NNQ_FASHION_MNIST_DIR at a directory holding the .gz files",
                        path, strerror(errno));
    return nnq_idx_read(path, t);
}

nnq_status nnq_dataset_fashion_mnist(nnq_split split, int64_t limit, nnq_dataset *out) {
    nnq_tensor img = {0}, lab = {0};
    nnq_status s;
    memset(out, 0, sizeof *out);

    const char *dir = getenv("NNQ_FASHION_MNIST_DIR");
    if (!dir || !*dir) dir = FMNIST_DEFAULT_DIR;
    const char *prefix = split == NNQ_SPLIT_TRAIN ? "train" : "t10k";

    s = fmnist_load(dir, prefix, "images-idx3", &img);
    if (s != NNQ_OK) goto fail;
    s = fmnist_load(dir, prefix, "labels-idx1", &lab);
    if (s != NNQ_OK) goto fail;
    if (img.rank != 3 || img.dims[1] != FMNIST_SIDE || img.dims[2] != FMNIST_SIDE) {
        char buf[64];
        s = nnq_fail(NNQ_ERR_SHAPE, "%s/%s-images-idx3-ubyte.gz: images are %s, expected Nx28x28",
                     dir, prefix, nnq_shape_str(&img, buf, sizeof buf));
        goto fail;
    }
    if (lab.rank != 1 || lab.dims[0] != img.dims[0]) {
        s = nnq_fail(NNQ_ERR_SHAPE, "%s: %s split has %lld images but %lld labels", dir, prefix,
                     (long long)img.dims[0], lab.rank == 1 ? (long long)lab.dims[0] : -1LL);
        goto fail;
    }

    int64_t n = img.dims[0];
    if (limit > 0 && limit < n) n = limit;
    const uint8_t *px = img.data, *lb = lab.data;
    for (int64_t i = 0; i < n; i++) {
        if (lb[i] >= NNQ_FMNIST_CLASSES) {
            s = nnq_fail(NNQ_ERR_PARSE, "%s: label %d of sample %lld is outside 0..%d", dir, lb[i],
                         (long long)i, NNQ_FMNIST_CLASSES - 1);
            goto fail;
        }
    }

    size_t per = (size_t)FMNIST_OUT_SIDE * FMNIST_OUT_SIDE;
    out->images = calloc((size_t)n * per, sizeof(float)); /* calloc: the border stays 0.0f */
    out->labels = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!out->images || !out->labels) {
        s = nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %lld Fashion-MNIST images", (long long)n);
        goto fail;
    }

    /* Every step rounds to float32, as the torch ops do, so the table equals
     * torchvision's output bit for bit. */
    float lut[256];
    for (int p = 0; p < 256; p++) {
        float x = (float)p / 255.0f;
        x = x - NNQ_FMNIST_MEAN;
        lut[p] = x / NNQ_FMNIST_STD;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *src = px + (size_t)i * FMNIST_SIDE * FMNIST_SIDE;
        float *dst = out->images + (size_t)i * per;
        for (int y = 0; y < FMNIST_SIDE; y++)
            for (int x = 0; x < FMNIST_SIDE; x++)
                dst[(y + NNQ_FMNIST_PAD) * FMNIST_OUT_SIDE + x + NNQ_FMNIST_PAD] =
                    lut[src[y * FMNIST_SIDE + x]];
        out->labels[i] = lb[i];
    }
    out->n = n;
    out->c = 1;
    out->h = out->w = FMNIST_OUT_SIDE;
    out->n_classes = NNQ_FMNIST_CLASSES;
    nnq_tensor_release(&img);
    nnq_tensor_release(&lab);
    return NNQ_OK;

fail:
    nnq_dataset_free(out);
    nnq_tensor_release(&img);
    nnq_tensor_release(&lab);
    return s;
}
