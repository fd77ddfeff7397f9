/* Scalar reference kernels: always built, the fallback on CPUs without
 * AVX2, and the oracle every SIMD kernel is tested against bit for bit.
 * Written as the definition reads (qkernels.h): acc starts at
 * bias' = bias - x_zp * sum w and adds x * w over the window, a padded
 * position holding x_zp (its x_zp * w cancels against bias', so padding
 * contributes 0 to bias + sum (x - x_zp) * w); then one requantization. */

#include "core/parallel.h"
#include "engine/qkernel_impl.h"

/* One output pixel of output channel o (group g) of image n. */
static int32_t conv_acc(const nnq_qconv *c, const uint8_t *x, int64_t n, int64_t g, int64_t o,
                        int64_t oy, int64_t ox) {
    const uint8_t *row = c->w + (size_t)o * nnq_qrows_stride(c->K, c->w_bits);
    int32_t acc = c->bias[o];
    int64_t k = 0;
    for (int64_t ci = 0; ci < c->cg; ci++) {
        const uint8_t *plane = x + ((n * c->in_ch) + g * c->cg + ci) * c->h * c->wd;
        for (int64_t ky = 0; ky < c->kh; ky++) {
            const int64_t iy = oy * c->sh + ky * c->dh - c->pt;
            for (int64_t kx = 0; kx < c->kw; kx++, k++) {
                const int64_t ix = ox * c->sw + kx * c->dw - c->pl;
                const int32_t xv = (iy >= 0 && iy < c->h && ix >= 0 && ix < c->wd)
                                       ? plane[iy * c->wd + ix]
                                       : c->x_zp;
                acc += xv * nnq_qrows_get(row, k, c->w_bits);
            }
        }
    }
    return acc;
}

static void conv_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const int64_t planes = c->n * c->out_ch, P = c->oh * c->ow;
    NNQ_PARALLEL_FOR(c->threads, pl, planes, {
        const int64_t n = pl / c->out_ch, o = pl % c->out_ch, g = o / c->og;
        uint8_t *dst = y + pl * P;
        for (int64_t oy = 0; oy < c->oh; oy++)
            for (int64_t ox = 0; ox < c->ow; ox++)
                dst[oy * c->ow + ox] = nnq_qout_apply(&c->out[o], conv_acc(c, x, n, g, o, oy, ox));
    });
}

static bool conv_fits(const nnq_qconv *c) { return true; }

static bool depthwise_fits(const nnq_qconv *c) {
    return c->groups == c->in_ch && c->groups == c->out_ch;
}

static void no_scratch(nnq_qconv *c) { c->thread_bytes = 0; }

const nnq_qconv_kernel nnq_qconv_ref_conv = {
    .name = "ref-conv",
    .isa = NNQ_ISA_REF,
    .fits = conv_fits,
    .pack = nnq_qconv_pack_rows,
    .plan = no_scratch,
    .run = conv_run,
};

/* Depthwise: the same definition with one input channel per output channel
 * (conv_acc with cg = 1), kept as its own entry so a depthwise layer names
 * its kernel and the direct loop stays obvious. */
static void depthwise_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const int64_t planes = c->n * c->out_ch, P = c->oh * c->ow;
    NNQ_PARALLEL_FOR(c->threads, pl, planes, {
        const int64_t ch = pl % c->out_ch;
        const uint8_t *src = x + pl * c->h * c->wd;
        const uint8_t *row = c->w + (size_t)ch * nnq_qrows_stride(c->K, c->w_bits);
        uint8_t *dst = y + pl * P;
        for (int64_t oy = 0; oy < c->oh; oy++)
            for (int64_t ox = 0; ox < c->ow; ox++) {
                int32_t acc = c->bias[ch];
                for (int64_t ky = 0; ky < c->kh; ky++) {
                    const int64_t iy = oy * c->sh + ky * c->dh - c->pt;
                    for (int64_t kx = 0; kx < c->kw; kx++) {
                        const int64_t ix = ox * c->sw + kx * c->dw - c->pl;
                        const int32_t xv = (iy >= 0 && iy < c->h && ix >= 0 && ix < c->wd)
                                               ? src[iy * c->wd + ix]
                                               : c->x_zp;
                        acc += xv * nnq_qrows_get(row, ky * c->kw + kx, c->w_bits);
                    }
                }
                dst[oy * c->ow + ox] = nnq_qout_apply(&c->out[ch], acc);
            }
    });
}

const nnq_qconv_kernel nnq_qconv_ref_depthwise = {
    .name = "ref-depthwise",
    .isa = NNQ_ISA_REF,
    .fits = depthwise_fits,
    .pack = nnq_qconv_pack_rows,
    .plan = no_scratch,
    .run = depthwise_run,
};

/* Fully connected: row i of x against every weight row. */
static nnq_status fc_pack(nnq_qfc *f, const int8_t *w) {
    f->w_bytes = nnq_qrows_stride(f->k, f->w_bits) * (size_t)f->m;
    f->w = nnq_qalloc(f->w_bytes);
    if (!f->w) return nnq_fail(NNQ_ERR_NOMEM, "qfc: packed weights (%zu bytes)", f->w_bytes);
    nnq_qrows_pack(f->w, w, f->m, f->k, f->w_bits);
    return NNQ_OK;
}

static void fc_run(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y, int32_t *acc) {
    const size_t stride = nnq_qrows_stride(f->k, f->w_bits);
    const int nt = nnq_qfc_threads(f, n);
    NNQ_PARALLEL_FOR(nt, i, n, {
        const uint8_t *xi = x + i * f->k;
        for (int64_t o = 0; o < f->m; o++) {
            const uint8_t *row = f->w + (size_t)o * stride;
            int32_t a = f->bias[o];
            for (int64_t k = 0; k < f->k; k++) a += xi[k] * nnq_qrows_get(row, k, f->w_bits);
            if (y) y[i * f->m + o] = nnq_qout_apply(&f->out[o], a);
            else acc[i * f->m + o] = a;
        }
    });
}

const nnq_qfc_kernel nnq_qfc_ref = {
    .name = "ref-fc",
    .isa = NNQ_ISA_REF,
    .pack = fc_pack,
    .run = fc_run,
};
