/* Datasets from user .npy files, plus the helpers every dataset shares. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/npy.h"

void nnq_dataset_free(nnq_dataset *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void nnq_dataset_batch(const nnq_dataset *d, int64_t start, int64_t count, nnq_tensor *out) {
    if (start < 0) start = 0;
    if (start > d->n) start = d->n;
    if (count < 0) count = 0;
    if (count > d->n - start) count = d->n - start;
    size_t per = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    memset(out, 0, sizeof *out);
    out->dtype = NNQ_DT_FLOAT;
    out->rank = 4;
    out->dims[0] = count;
    out->dims[1] = d->c;
    out->dims[2] = d->h;
    out->dims[3] = d->w;
    out->data = d->images ? d->images + (size_t)start * per : NULL;
    out->owns = false;
}

/* Take the first n samples of an NCHW/NHW float32 or float64 tensor as a
 * float32 buffer; the float32 case reuses the tensor's memory. */
static nnq_status take_images(nnq_tensor *t, int64_t n, size_t per, const char *path,
                              float **out) {
    size_t count = (size_t)n * per;
    float *f;
    if (t->dtype == NNQ_DT_FLOAT) {
        f = t->data;
        t->owns = false;
        t->data = NULL;
        float *shrunk = realloc(f, count ? count * sizeof *f : 1); /* drop samples past limit */
        if (shrunk) f = shrunk;
    } else {
        const double *src = t->data;
        f = malloc(count ? count * sizeof *f : 1);
        if (!f) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate images from %s", path);
        for (size_t i = 0; i < count; i++) f[i] = (float)src[i];
    }
    /* NaN or Inf would silently poison calibration statistics. */
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(f[i])) {
            nnq_status s = nnq_fail(NNQ_ERR_INVALID, "%s: image value %zu is not a finite float32 (%g)",
                                    path, i, (double)f[i]);
            free(f);
            return s;
        }
    }
    *out = f;
    return NNQ_OK;
}

static nnq_status take_labels(const nnq_tensor *t, int64_t n_images, int64_t n,
                              const char *path, int32_t **out, int *n_classes) {
    char buf[64];
    if (t->dtype != NNQ_DT_INT64 && t->dtype != NNQ_DT_INT32)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: labels are %s; expected int64 or int32", path,
                        nnq_dtype_name(t->dtype));
    if (t->rank != 1 || t->dims[0] != n_images)
        return nnq_fail(NNQ_ERR_SHAPE, "%s: labels have shape %s; expected (%lld,) to match the images",
                        path, nnq_shape_str(t, buf, sizeof buf), (long long)n_images);
    int64_t max = -1;
    for (int64_t i = 0; i < n_images; i++) {
        int64_t v = nnq_tensor_get_int(t, i);
        if (v < 0 || v > INT32_MAX)
            return nnq_fail(NNQ_ERR_INVALID, "%s: label %lld of sample %lld is outside [0, 2^31)",
                            path, (long long)v, (long long)i);
        if (v > max) max = v;
    }
    if (max == INT32_MAX)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: label %lld gives too many classes", path,
                        (long long)max);
    int32_t *l = malloc((size_t)(n ? n : 1) * sizeof *l);
    if (!l) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate labels from %s", path);
    for (int64_t i = 0; i < n; i++) l[i] = (int32_t)nnq_tensor_get_int(t, i);
    *out = l;
    *n_classes = (int)(max + 1);
    return NNQ_OK;
}

nnq_status nnq_dataset_npy(const char *images_npy, const char *labels_npy, int64_t limit,
                           nnq_dataset *out) {
    nnq_tensor img = {0}, lab = {0};
    char buf[64];
    nnq_status s;
    memset(out, 0, sizeof *out);

    s = nnq_npy_read(images_npy, &img);
    if (s != NNQ_OK) goto fail;
    if (img.dtype != NNQ_DT_FLOAT && img.dtype != NNQ_DT_DOUBLE) {
        s = nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: images are %s; expected float32 (or float64)",
                     images_npy, nnq_dtype_name(img.dtype));
        goto fail;
    }
    if (img.rank != 3 && img.rank != 4) {
        s = nnq_fail(NNQ_ERR_SHAPE, "%s: images have shape %s; expected NCHW or NHW", images_npy,
                     nnq_shape_str(&img, buf, sizeof buf));
        goto fail;
    }
    int64_t n_all = img.dims[0];
    int64_t c = img.rank == 4 ? img.dims[1] : 1;
    int64_t h = img.dims[img.rank - 2], w = img.dims[img.rank - 1];
    if (n_all < 1 || c < 1 || h < 1 || w < 1 || c > INT_MAX || h > INT_MAX || w > INT_MAX) {
        s = nnq_fail(NNQ_ERR_SHAPE, "%s: images have shape %s; every dimension must be at least 1",
                     images_npy, nnq_shape_str(&img, buf, sizeof buf));
        goto fail;
    }
    int64_t n = limit > 0 && limit < n_all ? limit : n_all;

    if (labels_npy) {
        s = nnq_npy_read(labels_npy, &lab);
        if (s != NNQ_OK) goto fail;
        s = take_labels(&lab, n_all, n, labels_npy, &out->labels, &out->n_classes);
        if (s != NNQ_OK) goto fail;
    }
    s = take_images(&img, n, (size_t)(c * h * w), images_npy, &out->images);
    if (s != NNQ_OK) goto fail;
    out->n = n;
    out->c = (int)c;
    out->h = (int)h;
    out->w = (int)w;
    nnq_tensor_release(&img);
    nnq_tensor_release(&lab);
    return NNQ_OK;

fail:
    nnq_dataset_free(out);
    nnq_tensor_release(&img);
    nnq_tensor_release(&lab);
    return s;
}
