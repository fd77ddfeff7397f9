/* The linear operator of the integer program on the engine's kernels:
 * nnq_qconv for convolutions, nnq_qfc for fully connected layers (their
 * int32 accumulators for dequantized logits), and a generic reference
 * path (int64 accumulation, any weights w - w_zp in int16) for what the
 * kernels do not take: weight zero points, uint8 weights, int32 outputs
 * of a convolution, per-batch weights. The kernels parallelise inside;
 * the reference path over (image, output channel). */
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "engine/iprog_impl.h"
#include "engine/qkernels.h"

typedef struct lin_state {
    nnq_qconv *conv;
    nnq_qfc *fc;
} lin_state;

static void lin_destroy(void *state) {
    lin_state *s = state;
    if (!s) return;
    nnq_qconv_destroy(s->conv);
    nnq_qfc_destroy(s->fc);
    free(s);
}

static nnq_status lin_create(const nnq_iprog *p, const ip_op *op, void **state) {
    (void)p;
    const ip_linear *l = op->par;
    lin_state *s = calloc(1, sizeof *s);
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory creating '%s'", op->name);
    nnq_status st = NNQ_OK;
    const bool u8 = l->out_mode == IP_OUT_U8;
    if (l->w_bits <= 8 && l->conv && u8) {
        const nnq_qconv_desc d = {
            .name = op->name, .in_ch = l->in_ch, .out_ch = l->out_ch, .groups = l->groups,
            .kh = l->kh, .kw = l->kw, .stride_h = l->sh, .stride_w = l->sw, .dil_h = l->dh,
            .dil_w = l->dw, .pad_t = l->pt, .pad_l = l->pl, .pad_b = l->pb, .pad_r = l->pr,
            .x_zp = l->x_zp, .y_zp = l->y_zp, .w_bits = l->w_bits, .weight = l->w8,
            .bias = l->bias, .mult = l->mult, .shift = l->shift, .lo = l->lo, .hi = l->hi,
            .hi_ch = l->hi_ch};
        st = nnq_qconv_create(&d, &s->conv);
    } else if (l->w_bits <= 8 && !l->conv && l->nb == 1) {
        const nnq_qfc_desc d = {.name = op->name, .k = l->in_ch, .m = l->out_ch, .x_zp = l->x_zp,
                                .y_zp = l->y_zp, .w_bits = l->w_bits, .weight = l->w8,
                                .bias = l->bias, .mult = u8 ? l->mult : NULL,
                                .shift = u8 ? l->shift : NULL, .lo = l->lo, .hi = l->hi};
        st = nnq_qfc_create(&d, &s->fc);
    }
    if (st != NNQ_OK) {
        lin_destroy(s);
        return st;
    }
    *state = s;
    return NNQ_OK;
}

static nnq_status lin_reshape(ip_call *c, size_t *scratch) {
    const lin_state *s = c->state;
    const ip_linear *l = c->op->par;
    const nnq_tensor *x = c->in[0], *y = c->out[0];
    *scratch = 0;
    if (s->conv) {
        int64_t oh, ow;
        NNQ_TRY(nnq_qconv_reshape(s->conv, x->dims[0], x->dims[2], x->dims[3], &oh, &ow, scratch));
        if (oh != y->dims[2] || ow != y->dims[3])
            return nnq_fail(NNQ_ERR_SHAPE, "'%s': kernel output %lldx%lld, program %lldx%lld",
                            c->op->name, (long long)oh, (long long)ow, (long long)y->dims[2],
                            (long long)y->dims[3]);
    } else if (s->fc && l->out_mode == IP_OUT_ACC_FLOAT) {
        *scratch = sizeof(int32_t) * (size_t)nnq_tensor_numel(y);
    }
    return NNQ_OK;
}

/* Store one accumulator of output channel o at y[i]. */
static inline void store(const ip_linear *l, int64_t o, int64_t acc, void *y, int64_t i) {
    switch (l->out_mode) {
    case IP_OUT_U8: {
        const uint8_t hi = l->hi_ch && l->hi_ch[o] < l->hi ? l->hi_ch[o] : l->hi;
        ((uint8_t *)y)[i] = ip_clamp_u8(l->y_zp + ip_requant64(acc, l->mult[o], l->shift[o]), l->lo, hi);
        break;
    }
    case IP_OUT_ACC_FLOAT: ((float *)y)[i] = (float)acc * l->deq[o]; break;
    case IP_OUT_ACC_INT32: ((int32_t *)y)[i] = (int32_t)acc; break;
    }
}

static inline int32_t weight(const ip_linear *l, int64_t i) {
    return l->w_bits == 16 ? l->w16[i] : l->w8[i];
}

/* Reference convolution: acc = bias + sum over in-bounds taps (x - x_zp) w. */
static void ref_conv(const ip_linear *l, const nnq_tensor *x, nnq_tensor *y, int threads) {
    const int64_t N = x->dims[0], H = x->dims[2], W = x->dims[3], OH = y->dims[2], OW = y->dims[3];
    const int64_t cg = l->in_ch / l->groups, og = l->out_ch / l->groups, K = ip_linear_k(l);
    const uint8_t *xd = x->data;
    NNQ_PARALLEL_FOR(threads, no, N * l->out_ch, {
        const int64_t n = no / l->out_ch, o = no % l->out_ch, g = o / og;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t acc = l->bias ? l->bias[o] : 0;
                for (int64_t c = 0; c < cg; c++) {
                    const uint8_t *plane = xd + (n * l->in_ch + g * cg + c) * H * W;
                    for (int64_t ky = 0; ky < l->kh; ky++) {
                        const int64_t iy = oy * l->sh - l->pt + ky * l->dh;
                        if (iy < 0 || iy >= H) continue;
                        for (int64_t kx = 0; kx < l->kw; kx++) {
                            const int64_t ix = ox * l->sw - l->pl + kx * l->dw;
                            if (ix < 0 || ix >= W) continue;
                            acc += (int64_t)(plane[iy * W + ix] - l->x_zp) *
                                   weight(l, o * K + (c * l->kh + ky) * l->kw + kx);
                        }
                    }
                }
                store(l, o, acc, y->data, ((n * l->out_ch + o) * OH + oy) * OW + ox);
            }
    });
}

/* Reference matrix product: x [rows, K] (nb weight sets: x [nb, rows/nb, K]). */
static void ref_fc(const ip_linear *l, const nnq_tensor *x, nnq_tensor *y, int threads) {
    const int64_t K = l->in_ch, M = l->out_ch, rows = nnq_tensor_numel(x) / K;
    const int64_t per = rows / l->nb;
    const uint8_t *xd = x->data;
    NNQ_PARALLEL_FOR(threads, rm, rows * M, {
        const int64_t r = rm / M, m = rm % M, b = r / per;
        int64_t acc = l->bias ? l->bias[m] : 0;
        const uint8_t *xr = xd + r * K;
        for (int64_t k = 0; k < K; k++) acc += (int64_t)(xr[k] - l->x_zp) * weight(l, (b * M + m) * K + k);
        store(l, m, acc, y->data, rm);
    });
}

static nnq_status lin_run(ip_call *c) {
    const lin_state *s = c->state;
    const ip_linear *l = c->op->par;
    const nnq_tensor *x = c->in[0];
    nnq_tensor *y = c->out[0];
    if (s->conv) {
        nnq_qconv_run(s->conv, x->data, y->data, c->scratch);
        return NNQ_OK;
    }
    if (s->fc) {
        const int64_t rows = nnq_tensor_numel(x) / l->in_ch, M = l->out_ch;
        if (l->out_mode == IP_OUT_U8) {
            nnq_qfc_run(s->fc, rows, x->data, y->data);
            if (l->hi_ch) { /* the fc kernel has no per-channel clamp */
                uint8_t *yd = y->data;
                for (int64_t i = 0; i < rows * M; i++)
                    if (yd[i] > l->hi_ch[i % M]) yd[i] = l->hi_ch[i % M];
            }
        } else if (l->out_mode == IP_OUT_ACC_INT32) {
            nnq_qfc_run_acc(s->fc, rows, x->data, y->data);
        } else {
            int32_t *acc = c->scratch;
            nnq_qfc_run_acc(s->fc, rows, x->data, acc);
            for (int64_t i = 0; i < rows * M; i++) store(l, i % M, acc[i], y->data, i);
        }
        return NNQ_OK;
    }
    const int64_t work = nnq_tensor_numel(y) * ip_linear_k(l);
    const int threads = c->threads > 1 && work >= IP_PARALLEL_MIN ? c->threads : 1;
    if (l->conv) ref_conv(l, x, y, threads);
    else ref_fc(l, x, y, threads);
    return NNQ_OK;
}

const ip_impl ip_int_linear_impl = {lin_create, lin_reshape, lin_run, lin_destroy};
