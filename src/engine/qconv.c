/* The quantized convolution operator: descriptor checks, kernel choice
 * (qconv_kernels.inc), and the create -> reshape -> run lifecycle. The
 * kernels themselves live in qkernels_ref.c and qkernels_avx2_*.c. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "engine/qkernel_impl.h"


static int64_t parallel_min = NNQ_QPARALLEL_MIN_MACS;

void nnq_qkernels_set_parallel_min(int64_t macs) { parallel_min = macs > 0 ? macs : 0; }

int64_t nnq_qkernels_parallel_min(void) { return parallel_min; }

static const nnq_qconv_kernel *const kernels[] = {
#define NNQ_QCONV_KERNEL(sym) &sym,
#include "engine/qconv_kernels.inc"
#undef NNQ_QCONV_KERNEL
};
#define N_KERNELS (sizeof kernels / sizeof kernels[0])

static nnq_status check_desc(const nnq_qconv_desc *d, const char *who) {
    if (d->in_ch < 1 || d->out_ch < 1 || d->groups < 1 || d->in_ch % d->groups ||
        d->out_ch % d->groups)
        return nnq_fail(NNQ_ERR_INVALID, "%s: %lld -> %lld channels in %lld groups", who,
                        (long long)d->in_ch, (long long)d->out_ch, (long long)d->groups);
    if (d->kh < 1 || d->kw < 1 || d->stride_h < 1 || d->stride_w < 1 || d->dil_h < 1 ||
        d->dil_w < 1 || d->pad_t < 0 || d->pad_l < 0 || d->pad_b < 0 || d->pad_r < 0)
        return nnq_fail(NNQ_ERR_INVALID, "%s: kernel, strides, dilations or pads out of range",
                        who);
    /* Sizes that keep every index product far from int64 overflow. */
    const int64_t big = (int64_t)1 << 24;
    if (d->in_ch > big || d->out_ch > big || d->kh > 4096 || d->kw > 4096 ||
        d->stride_h > big || d->stride_w > big || d->dil_h > big || d->dil_w > big ||
        d->pad_t > big || d->pad_l > big || d->pad_b > big || d->pad_r > big ||
        d->in_ch / d->groups * d->kh * d->kw > big)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: convolution too large for the engine", who);
    return NNQ_OK;
}

static bool kernel_allowed(const nnq_qconv_kernel *k, nnq_isa isa) {
    return k->isa <= isa; /* each ISA includes the ones before it */
}

static nnq_status choose_kernel(const nnq_qconv *c, const char *name, const char *who,
                                const nnq_qconv_kernel **out) {
    if (name) {
        for (size_t i = 0; i < N_KERNELS; i++) {
            if (strcmp(kernels[i]->name, name) != 0) continue;
            if (!nnq_cpu_supports(kernels[i]->isa))
                return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: kernel %s needs %s", who, name,
                                nnq_isa_name(kernels[i]->isa));
            if (!kernels[i]->fits(c))
                return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: kernel %s does not fit this conv",
                                who, name);
            *out = kernels[i];
            return NNQ_OK;
        }
        return nnq_fail(NNQ_ERR_INVALID, "%s: no convolution kernel named %s", who, name);
    }
    nnq_isa isa;
    NNQ_TRY(nnq_cpu_kernel_isa(&isa));
    for (size_t i = 0; i < N_KERNELS; i++)
        if (kernel_allowed(kernels[i], isa) && kernels[i]->fits(c)) {
            *out = kernels[i];
            return NNQ_OK;
        }
    return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: no convolution kernel fits", who);
}

nnq_status nnq_qconv_pack_rows(nnq_qconv *c, const int8_t *w) {
    c->w_bytes = nnq_qrows_stride(c->K, c->w_bits) * (size_t)c->out_ch;
    c->w = nnq_qalloc(c->w_bytes);
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    nnq_qrows_pack(c->w, w, c->out_ch, c->K, c->w_bits);
    return NNQ_OK;
}

nnq_status nnq_qconv_create_kernel(const nnq_qconv_desc *d, const char *kernel,
                                   nnq_qconv **out) {
    *out = NULL;
    const char *who = d->name ? d->name : "qconv";
    NNQ_TRY(check_desc(d, who));
    nnq_status s = NNQ_OK;
    nnq_qconv *c = calloc(1, sizeof *c);
    if (!c) return nnq_fail(NNQ_ERR_NOMEM, "%s: operator", who);
    c->in_ch = d->in_ch;
    c->out_ch = d->out_ch;
    c->groups = d->groups;
    c->cg = d->in_ch / d->groups;
    c->og = d->out_ch / d->groups;
    c->kh = d->kh;
    c->kw = d->kw;
    c->sh = d->stride_h;
    c->sw = d->stride_w;
    c->dh = d->dil_h;
    c->dw = d->dil_w;
    c->pt = d->pad_t;
    c->pl = d->pad_l;
    c->pb = d->pad_b;
    c->pr = d->pad_r;
    c->K = c->cg * c->kh * c->kw;
    c->x_zp = d->x_zp;
    c->w_bits = d->w_bits;
    c->bias = malloc(sizeof(int32_t) * (size_t)c->out_ch);
    c->out = malloc(sizeof(nnq_qout) * (size_t)c->out_ch);
    if (!c->bias || !c->out) {
        s = nnq_fail(NNQ_ERR_NOMEM, "%s: channel constants", who);
        goto fail;
    }
    s = nnq_qweights_prepare(who, d->weight, c->out_ch, c->K, d->w_bits, d->bias, d->x_zp,
                             c->bias);
    if (s != NNQ_OK) goto fail;
    s = nnq_qout_prepare(who, c->out_ch, d->mult, d->shift, d->y_zp, d->lo, d->hi, d->hi_ch,
                         c->out);
    if (s != NNQ_OK) goto fail;
    s = choose_kernel(c, kernel, who, &c->kern);
    if (s != NNQ_OK) goto fail;
    s = c->kern->pack(c, d->weight);
    if (s != NNQ_OK) goto fail;
    *out = c;
    return NNQ_OK;
fail:
    nnq_qconv_destroy(c);
    return s;
}

nnq_status nnq_qconv_create(const nnq_qconv_desc *d, nnq_qconv **out) {
    return nnq_qconv_create_kernel(d, NULL, out);
}

nnq_status nnq_qconv_reshape(nnq_qconv *c, int64_t n, int64_t h, int64_t w, int64_t *oh,
                             int64_t *ow, size_t *scratch_bytes) {
    const int64_t big = (int64_t)1 << 24;
    if (n < 1 || h < 1 || w < 1 || n > big || h > big || w > big)
        return nnq_fail(NNQ_ERR_SHAPE, "qconv: input %lldx%lldx%lld", (long long)n,
                        (long long)h, (long long)w);
    const int64_t eh = c->dh * (c->kh - 1) + 1, ew = c->dw * (c->kw - 1) + 1;
    const int64_t ph = h + c->pt + c->pb, pw = w + c->pl + c->pr;
    if (ph < eh || pw < ew)
        return nnq_fail(NNQ_ERR_SHAPE, "qconv: %lldx%lld input smaller than the %lldx%lld kernel",
                        (long long)h, (long long)w, (long long)eh, (long long)ew);
    const int64_t oy = (ph - eh) / c->sh + 1, ox = (pw - ew) / c->sw + 1;
    /* Activation tensors stay below NNQ_MAX_TENSOR_BYTES on both sides. */
    if (n * c->in_ch > ((int64_t)NNQ_MAX_TENSOR_BYTES) / h / w ||
        n * c->out_ch > ((int64_t)NNQ_MAX_TENSOR_BYTES) / oy / ox)
        return nnq_fail(NNQ_ERR_LIMIT, "qconv: activations larger than %zu bytes",
                        (size_t)NNQ_MAX_TENSOR_BYTES);
    c->n = n;
    c->h = h;
    c->wd = w;
    c->oh = oy;
    c->ow = ox;
    const double macs = (double)n * (double)c->out_ch * (double)(oy * ox) * (double)c->K;
    c->threads = macs < (double)nnq_qkernels_parallel_min() ? 1 : omp_get_max_threads();
    if (c->threads < 1) c->threads = 1;
    c->thread_bytes = 0;
    memset(c->plan, 0, sizeof c->plan);
    c->kern->plan(c);
    *oh = oy;
    *ow = ox;
    *scratch_bytes = c->thread_bytes ? NNQ_QALIGN + (size_t)c->threads * c->thread_bytes : 0;
    return NNQ_OK;
}

void nnq_qconv_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, void *scratch) {
    uint8_t *base = NULL;
    if (c->thread_bytes) { /* the caller's buffer may have any alignment */
        const uintptr_t p = (uintptr_t)scratch;
        base = (uint8_t *)scratch + ((NNQ_QALIGN - p % NNQ_QALIGN) % NNQ_QALIGN);
    }
    c->kern->run(c, x, y, base);
}

void nnq_qconv_destroy(nnq_qconv *c) {
    if (!c) return;
    free(c->bias);
    free(c->out);
    free(c->w);
    free(c);
}

const char *nnq_qconv_kernel_name(const nnq_qconv *c) { return c->kern->name; }

size_t nnq_qconv_weight_bytes(const nnq_qconv *c) { return c->w_bytes; }
