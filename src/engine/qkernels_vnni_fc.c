/* AVX-512 VNNI fully connected, any weight width: dot products along K,
 * 64 bytes of x per vpdpbusd (u8 x s8, 4 products summed exactly into each
 * int32 lane), 4 weight rows per pass sharing each load of x, reduced across
 * lanes at the end; then the scalar requantization (one per output). Weight
 * rows are int8 (nibbles of <= 4-bit weights unpacked at create), padded
 * with zeros to whole 64-byte vectors and to a multiple of 4 rows; the tail
 * of x is a masked load (zeros). */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_vnni.h"

#define ROWS 4

static int64_t padded_k(const nnq_qfc *f) { return (f->k + 63) / 64 * 64; }

static nnq_status fc_pack(nnq_qfc *f, const int8_t *w) {
    const int64_t kp = padded_k(f), mp = (f->m + ROWS - 1) / ROWS * ROWS;
    f->w_bytes = (size_t)(kp * mp);
    f->w = nnq_qalloc(f->w_bytes);
    if (!f->w) return nnq_fail(NNQ_ERR_NOMEM, "qfc: packed weights (%zu bytes)", f->w_bytes);
    for (int64_t o = 0; o < f->m; o++) memcpy(f->w + o * kp, w + o * f->k, (size_t)f->k);
    return NNQ_OK;
}

/* Rows [o0, o0 + ROWS) against one x row: raw dot products (no bias). */
static void dots(const uint8_t *w, int64_t kp, int64_t k, const uint8_t *x, int32_t out[ROWS]) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t kk = 0; kk < kp; kk += 64) {
        const __m512i xv = nnq_vnni_load_n(x + kk, k - kk);
        a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_load_si512((const void *)(w + kk)));
        a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_load_si512((const void *)(w + kp + kk)));
        a2 = _mm512_dpbusd_epi32(a2, xv, _mm512_load_si512((const void *)(w + 2 * kp + kk)));
        a3 = _mm512_dpbusd_epi32(a3, xv, _mm512_load_si512((const void *)(w + 3 * kp + kk)));
    }
    out[0] = _mm512_reduce_add_epi32(a0), out[1] = _mm512_reduce_add_epi32(a1);
    out[2] = _mm512_reduce_add_epi32(a2), out[3] = _mm512_reduce_add_epi32(a3);
}

static void fc_run(const nnq_qfc *f, int64_t n, const uint8_t *x, uint8_t *y, int32_t *acc) {
    const int64_t kp = padded_k(f), blocks = (f->m + ROWS - 1) / ROWS, items = n * blocks;
    const int nt = nnq_qfc_threads(f, n);
    NNQ_PARALLEL_FOR(nt, it, items, {
        const int64_t i = it / blocks, o0 = it % blocks * ROWS;
        int32_t d[ROWS];
        dots(f->w + (size_t)(o0 * kp), kp, f->k, x + i * f->k, d);
        nnq_qfc_store(f, i, o0, ROWS, d, y, acc);
    });
}

const nnq_qfc_kernel nnq_qfc_vnni = {
    .name = "vnni-fc",
    .isa = NNQ_ISA_VNNI,
    .pack = fc_pack,
    .run = fc_run,
};
