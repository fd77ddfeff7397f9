#include "train/batch.h"

#include <string.h>

/* One image (c planes of h x w), shifted by (dy - pad, dx - pad), zero
 * outside, optionally mirrored. */
static void crop_flip(const float *src, float *dst, int c, int h, int w, int pad, int dy, int dx,
                      bool flip) {
    for (int ch = 0; ch < c; ch++) {
        const float *sp = src + (int64_t)ch * h * w;
        float *dp = dst + (int64_t)ch * h * w;
        for (int i = 0; i < h; i++) {
            int si = i + dy - pad;
            float *row = dp + (int64_t)i * w;
            if (si < 0 || si >= h) {
                memset(row, 0, sizeof(float) * (size_t)w);
                continue;
            }
            const float *srow = sp + (int64_t)si * w;
            for (int j = 0; j < w; j++) {
                int sj = (flip ? w - 1 - j : j) + dx - pad;
                row[j] = sj >= 0 && sj < w ? srow[sj] : 0.0f;
            }
        }
    }
}

void nnq_batch_gather(const nnq_dataset *d, const int64_t *idx, int64_t count,
                      const nnq_augment *aug, nnq_rng *rng, float *images, int32_t *labels) {
    const int64_t per = (int64_t)d->c * d->h * d->w;
    bool augment = aug && (aug->crop_pad > 0 || aug->hflip);
    for (int64_t i = 0; i < count; i++) {
        const float *src = d->images + idx[i] * per;
        float *dst = images + i * per;
        if (labels) labels[i] = d->labels ? d->labels[idx[i]] : 0;
        if (!augment) {
            memcpy(dst, src, sizeof(float) * (size_t)per);
            continue;
        }
        int pad = aug->crop_pad > 0 ? aug->crop_pad : 0;
        int dy = pad ? (int)nnq_rng_below(rng, (uint64_t)(2 * pad + 1)) : pad;
        int dx = pad ? (int)nnq_rng_below(rng, (uint64_t)(2 * pad + 1)) : pad;
        bool flip = aug->hflip && (nnq_rng_next(rng) >> 63);
        crop_flip(src, dst, d->c, d->h, d->w, pad, dy, dx, flip);
    }
}
