/* The quantized fully connected operator (Gemm, transB form): checks,
 * kernel choice and lifecycle. Kernels: qkernels_ref.c, qkernels_avx2_fc.c,
 * qkernels_vnni_fc.c. */
#include <stdlib.h>
#include <string.h>

#include "engine/qkernel_impl.h"

/* In order of preference. */
static const nnq_qfc_kernel *const kernels[] = {&nnq_qfc_vnni, &nnq_qfc_avx2, &nnq_qfc_ref};
#define N_KERNELS (sizeof kernels / sizeof kernels[0])

static nnq_status choose_kernel(const char *name, const char *who, const nnq_qfc_kernel **out) {
    if (name) {
        for (size_t i = 0; i < N_KERNELS; i++) {
            if (strcmp(kernels[i]->name, name) != 0) continue;
            if (!nnq_cpu_supports(kernels[i]->isa))
                return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: kernel %s needs %s", who, name,
                                nnq_isa_name(kernels[i]->isa));
            *out = kernels[i];
            return NNQ_OK;
        }
        return nnq_fail(NNQ_ERR_INVALID, "%s: no fully connected kernel named %s", who, name);
    }
    nnq_isa isa;
    NNQ_TRY(nnq_cpu_kernel_isa(&isa));
    for (size_t i = 0; i < N_KERNELS; i++)
        if (kernels[i]->isa <= isa) { /* each ISA includes the ones before it */
            *out = kernels[i];
            return NNQ_OK;
        }
    return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: no fully connected kernel", who);
}

nnq_status nnq_qfc_create_kernel(const nnq_qfc_desc *d, const char *kernel, nnq_qfc **out) {
    *out = NULL;
    const char *who = d->name ? d->name : "qfc";
    if (d->k < 1 || d->m < 1 || d->k > ((int64_t)1 << 24) || d->m > ((int64_t)1 << 24))
        return nnq_fail(NNQ_ERR_INVALID, "%s: %lld -> %lld features", who, (long long)d->k,
                        (long long)d->m);
    nnq_status s = NNQ_OK;
    nnq_qfc *f = calloc(1, sizeof *f);
    if (!f) return nnq_fail(NNQ_ERR_NOMEM, "%s: operator", who);
    f->k = d->k;
    f->m = d->m;
    f->x_zp = d->x_zp;
    f->w_bits = d->w_bits;
    f->bias = malloc(sizeof(int32_t) * (size_t)f->m);
    if (!f->bias) {
        s = nnq_fail(NNQ_ERR_NOMEM, "%s: channel constants", who);
        goto fail;
    }
    s = nnq_qweights_prepare(who, d->weight, f->m, f->k, d->w_bits, d->bias, d->x_zp, f->bias);
    if (s != NNQ_OK) goto fail;
    if (d->mult || d->shift) {
        f->out = malloc(sizeof(nnq_qout) * (size_t)f->m);
        if (!f->out) {
            s = nnq_fail(NNQ_ERR_NOMEM, "%s: channel constants", who);
            goto fail;
        }
        s = nnq_qout_prepare(who, f->m, d->mult, d->shift, d->y_zp, d->lo, d->hi, NULL, f->out);
        if (s != NNQ_OK) goto fail;
    }
    s = choose_kernel(kernel, who, &f->kern);
    if (s != NNQ_OK) goto fail;
    s = f->kern->pack(f, d->weight);
    if (s != NNQ_OK) goto fail;
    *out = f;
    return NNQ_OK;
fail:
    nnq_qfc_destroy(f);
    return s;
}

nnq_status nnq_qfc_create(const nnq_qfc_desc *d, nnq_qfc **out) {
    return nnq_qfc_create_kernel(d, NULL, out);
}

/* Without mult/shift only run_acc is defined; run() then leaves y alone
 * (a caller bug the lowering never makes: it always passes both). */
void nnq_qfc_run(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y) {
    if (f->out && n > 0) f->kern->run(f, n, x, y, NULL);
}

void nnq_qfc_run_acc(const nnq_qfc *f, int64_t n, const uint8_t *x, int32_t *acc) {
    if (n > 0) f->kern->run(f, n, x, NULL, acc);
}

void nnq_qfc_destroy(nnq_qfc *f) {
    if (!f) return;
    free(f->bias);
    free(f->out);
    free(f->w);
    free(f);
}

const char *nnq_qfc_kernel_name(const nnq_qfc *f) { return f->kern->name; }
