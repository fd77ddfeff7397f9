/* What every engine kernel precomputes at create: the per-channel output
 * constants, the zero-point term folded into the bias, and the checks
 * that keep int32 accumulation exact. */
#include <stdlib.h>
#include <string.h>

#include "engine/qkernel_impl.h"

void *nnq_qalloc(size_t bytes) {
    const size_t rounded = (bytes + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(NNQ_QALIGN, rounded ? rounded : NNQ_QALIGN);
    if (p) memset(p, 0, rounded ? rounded : NNQ_QALIGN);
    return p;
}

static int64_t requant_at(const nnq_qout *q, int32_t acc) {
    return nnq_requant_apply(acc, q->mult, q->shift);
}

/* The int32 accumulator interval outside which y is pinned to lo or hi.
 * requant is non-decreasing in acc (mult >= 0), so a bisection finds
 *   acc_lo: the largest acc with requant < lo - y_zp (INT32_MIN if none),
 *   acc_hi: the smallest acc with requant > hi - y_zp (INT32_MAX if none).
 * Clamping acc to [acc_lo, acc_hi] keeps y, and requant of the clamped acc
 * lies within 2^30 + 1 of [lo - y_zp, hi - y_zp] (one step of acc moves
 * requant by at most ceil(mult / 2^shift) <= 2^30): it fits int32. */
static void qout_acc_bounds(nnq_qout *q) {
    const int64_t L = (int64_t)q->lo - q->y_zp, H = (int64_t)q->hi - q->y_zp;
    int32_t a, b;
    if (requant_at(q, INT32_MIN) >= L) q->acc_lo = INT32_MIN;
    else if (requant_at(q, INT32_MAX) < L) q->acc_lo = INT32_MAX;
    else {
        for (a = INT32_MIN, b = INT32_MAX; (int64_t)b - a > 1;) {
            const int32_t mid = (int32_t)(((int64_t)a + b) >> 1);
            if (requant_at(q, mid) < L) a = mid;
            else b = mid;
        }
        q->acc_lo = a;
    }
    if (requant_at(q, INT32_MAX) <= H) q->acc_hi = INT32_MAX;
    else if (requant_at(q, INT32_MIN) > H) q->acc_hi = INT32_MIN;
    else {
        for (a = INT32_MIN, b = INT32_MAX; (int64_t)b - a > 1;) {
            const int32_t mid = (int32_t)(((int64_t)a + b) >> 1);
            if (requant_at(q, mid) > H) b = mid;
            else a = mid;
        }
        q->acc_hi = b;
    }
}

nnq_status nnq_qout_prepare(const char *who, int64_t m, const int32_t *mult,
                            const int32_t *shift, int32_t y_zp, uint8_t lo, uint8_t hi,
                            const uint8_t *hi_ch, nnq_qout *out) {
    if (y_zp < 0 || y_zp > 255)
        return nnq_fail(NNQ_ERR_INVALID, "%s: output zero point %d outside [0, 255]", who,
                        (int)y_zp);
    if (!mult || !shift)
        return nnq_fail(NNQ_ERR_INVALID, "%s: missing requantization multipliers", who);
    for (int64_t o = 0; o < m; o++) {
        nnq_qout *q = &out[o];
        if (mult[o] < 0 || shift[o] < NNQ_REQUANT_SHIFT_MIN || shift[o] > NNQ_REQUANT_SHIFT_MAX)
            return nnq_fail(NNQ_ERR_INVALID,
                            "%s: channel %lld: multiplier %d, shift %d outside [0, 2^31) x "
                            "[1, 62]",
                            who, (long long)o, (int)mult[o], (int)shift[o]);
        const uint8_t h = hi_ch && hi_ch[o] < hi ? hi_ch[o] : hi;
        if (h < lo)
            return nnq_fail(NNQ_ERR_INVALID, "%s: channel %lld: clamp [%d, %d] is empty", who,
                            (long long)o, lo, h);
        q->mult = mult[o];
        q->shift = shift[o];
        q->y_zp = y_zp;
        q->lo = lo;
        q->hi = h;
        q->rnd = ((int64_t)1 << 62) + ((int64_t)1 << (q->shift - 1));
        q->zc = (int32_t)((uint32_t)y_zp - (uint32_t)((uint64_t)1 << (62 - q->shift)));
        qout_acc_bounds(q);
    }
    return NNQ_OK;
}

nnq_status nnq_qweights_prepare(const char *who, const int8_t *w, int64_t m, int64_t k,
                                int bits, const int32_t *bias, int32_t x_zp,
                                int32_t *bias_out) {
    if (bits < 2 || bits > 8)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: %d-bit weights (engine: 2..8)", who, bits);
    if (x_zp < 0 || x_zp > 255)
        return nnq_fail(NNQ_ERR_INVALID, "%s: input zero point %d outside [0, 255]", who,
                        (int)x_zp);
    if (!w) return nnq_fail(NNQ_ERR_INVALID, "%s: missing weights", who);
    const int32_t wmin = -(1 << (bits - 1)), wmax = (1 << (bits - 1)) - 1;
    for (int64_t o = 0; o < m; o++) {
        const int8_t *row = w + o * k;
        int64_t pos = 0, neg = 0;
        for (int64_t i = 0; i < k; i++) {
            if (row[i] < wmin || row[i] > wmax)
                return nnq_fail(NNQ_ERR_INVALID,
                                "%s: weight %d of channel %lld outside the %d-bit grid", who,
                                row[i], (long long)o, bits);
            if (row[i] > 0) pos += row[i];
            else neg += row[i];
        }
        const int64_t b = (bias ? bias[o] : 0) - (int64_t)x_zp * (pos + neg);
        /* Every (partial) accumulator lies in [b + 255 neg, b + 255 pos]. */
        if (b + 255 * neg < INT32_MIN || b + 255 * pos > INT32_MAX)
            return nnq_fail(NNQ_ERR_LIMIT, "%s: channel %lld: accumulator may overflow int32",
                            who, (long long)o);
        bias_out[o] = (int32_t)b;
    }
    return NNQ_OK;
}

size_t nnq_qrows_stride(int64_t k, int bits) {
    return bits <= 4 ? (size_t)(k + 1) / 2 : (size_t)k;
}

void nnq_qrows_pack(uint8_t *dst, const int8_t *w, int64_t m, int64_t k, int bits) {
    const size_t stride = nnq_qrows_stride(k, bits);
    for (int64_t o = 0; o < m; o++) {
        const int8_t *src = w + o * k;
        uint8_t *row = dst + (size_t)o * stride;
        if (bits > 4) {
            memcpy(row, src, (size_t)k);
            continue;
        }
        for (int64_t i = 0; i < k; i += 2)
            row[i / 2] = nnq_nibble_pair(src[i], i + 1 < k ? src[i + 1] : 0);
    }
}
