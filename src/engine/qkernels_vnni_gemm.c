/* AVX-512 VNNI GEMM-style convolution, any weight width (docs/engine.md).
 *
 * vpdpbusd multiplies 4 uint8 by 4 int8 and adds the 4 products to an int32
 * lane, with no intermediate rounding or saturation: exactly the engine's
 * acc += x * w over a quad of K. Every partial sum fits int32 (checked at
 * create), so the result equals the reference bit for bit.
 *
 * Geometry, panels, blocking and the work-item driver are the AVX2 GEMM's
 * (qkernels_avx2_gemm.h): a panel tile is 16 pixels x one quad of K in 64
 * bytes, pixel order, which is one zmm. Weights are packed once at create
 * as int8 quads (nibbles of <= 4-bit weights unpacked there too):
 * [group][block of MRV channels][K/4 quads][MRV] x 4 int8, K padded to a
 * multiple of 4 and the last block to MRV channels with zeros. The
 * micro-kernel holds MRV channels x 32 pixels in 16 zmm accumulators; per
 * quad, 2 panel loads and MRV weight broadcasts (folded into vpdpbusd as
 * {1to16} memory operands) feed 16 vpdpbusd (1024 MACs). */
#include <string.h>

#include "engine/qkernels_avx2_gemm.h"
#include "engine/qkernels_vnni.h"

#define MRV 8 /* output channels per block */

/* The panel of a 1x1, stride 1, unpadded convolution (gemm_direct_input):
 * the input planes are the im2col rows. Per quad of K, four whole tiles
 * (64 pixels) at once: four 64-byte row loads, the byte and word
 * interleaves, which work within 128-bit lanes and so leave tile l's quads
 * in lane l of r0..r3, then a 4x4 transpose of lanes gives each tile its 64
 * bytes. The last tiles go one at a time in xmm, with masked loads (zeros
 * past cnt); on 4x4 maps that is every tile, and the zmm path there cost
 * a third more. A row past K reads as zeros. */
static void vnni_panel_direct(const gemm_item *t, int64_t n, int64_t gr, int64_t p0, int64_t cnt) {
    const nnq_qconv *c = t->c;
    const int64_t P = c->oh * c->ow, nq = t->g.kp / 4, ntiles = (cnt + NR - 1) / NR;
    const uint8_t *img = t->x + (n * c->in_ch + gr * c->cg) * c->h * c->wd + p0;
    for (int64_t q = 0; q < nq; q++) {
        const uint8_t *row[4];
        for (int64_t i = 0; i < 4; i++) row[i] = 4 * q + i < c->K ? img + (4 * q + i) * P : NULL;
        if (q + 1 < nq) /* the next quad's rows: many streams for the prefetcher */
            for (int64_t k = 4 * q + 4; k < 4 * q + 8 && k < c->K; k++)
                for (int64_t b = 0; b < cnt; b += 64)
                    _mm_prefetch((const char *)(img + k * P + b), _MM_HINT_T0);
        int64_t tile = 0;
        for (; (tile + 4) * NR <= cnt; tile += 4) {
            __m512i v[4];
            for (int i = 0; i < 4; i++)
                v[i] = row[i] ? _mm512_loadu_si512((const void *)(row[i] + tile * NR))
                              : _mm512_setzero_si512();
            const __m512i ab0 = _mm512_unpacklo_epi8(v[0], v[1]), ef0 = _mm512_unpacklo_epi8(v[2], v[3]);
            const __m512i ab1 = _mm512_unpackhi_epi8(v[0], v[1]), ef1 = _mm512_unpackhi_epi8(v[2], v[3]);
            const __m512i r0 = _mm512_unpacklo_epi16(ab0, ef0), r1 = _mm512_unpackhi_epi16(ab0, ef0);
            const __m512i r2 = _mm512_unpacklo_epi16(ab1, ef1), r3 = _mm512_unpackhi_epi16(ab1, ef1);
            const __m512i t0 = _mm512_shuffle_i64x2(r0, r1, 0x44), t1 = _mm512_shuffle_i64x2(r0, r1, 0xEE);
            const __m512i t2 = _mm512_shuffle_i64x2(r2, r3, 0x44), t3 = _mm512_shuffle_i64x2(r2, r3, 0xEE);
            uint8_t *dst = t->panel + (tile * nq + q) * 64;
            _mm512_storeu_si512((void *)dst, _mm512_shuffle_i64x2(t0, t2, 0x88));
            _mm512_storeu_si512((void *)(dst + nq * 64), _mm512_shuffle_i64x2(t0, t2, 0xDD));
            _mm512_storeu_si512((void *)(dst + 2 * nq * 64), _mm512_shuffle_i64x2(t1, t3, 0x88));
            _mm512_storeu_si512((void *)(dst + 3 * nq * 64), _mm512_shuffle_i64x2(t1, t3, 0xDD));
        }
        for (; tile < ntiles; tile++) {
            const int64_t npx = cnt - tile * NR < NR ? cnt - tile * NR : NR;
            const __mmask16 m = (__mmask16)((1u << npx) - 1);
            __m128i v[4];
            for (int i = 0; i < 4; i++)
                v[i] = row[i] ? _mm_maskz_loadu_epi8(m, row[i] + tile * NR) : _mm_setzero_si128();
            const __m128i ab0 = _mm_unpacklo_epi8(v[0], v[1]), ef0 = _mm_unpacklo_epi8(v[2], v[3]);
            const __m128i ab1 = _mm_unpackhi_epi8(v[0], v[1]), ef1 = _mm_unpackhi_epi8(v[2], v[3]);
            uint8_t *dst = t->panel + (tile * nq + q) * 64;
            _mm_storeu_si128((__m128i *)dst, _mm_unpacklo_epi16(ab0, ef0));
            _mm_storeu_si128((__m128i *)(dst + 16), _mm_unpackhi_epi16(ab0, ef0));
            _mm_storeu_si128((__m128i *)(dst + 32), _mm_unpacklo_epi16(ab1, ef1));
            _mm_storeu_si128((__m128i *)(dst + 48), _mm_unpackhi_epi16(ab1, ef1));
        }
    }
}

static gemm_geom vnni_geometry(const nnq_qconv *c) {
    gemm_geom g;
    g.panel = gemm_direct_input(c) ? vnni_panel_direct : nnq_avx2_gemm_panel;
    g.wide = false; /* uint8 quads in the panel */
    g.nibbles = false;
    g.step = 4;
    g.kp = (c->K + 3) / 4 * 4;
    g.mr = MRV;
    g.ob = (c->og + MRV - 1) / MRV;
    g.block_bytes = (size_t)(g.kp * MRV);
    return g;
}

static nnq_status vnni_pack(nnq_qconv *c, const int8_t *w) {
    const gemm_geom g = vnni_geometry(c);
    c->w_bytes = g.block_bytes * (size_t)(g.ob * c->groups);
    c->w = nnq_qalloc(c->w_bytes); /* zeroed: the padding */
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    for (int64_t gr = 0; gr < c->groups; gr++)
        for (int64_t o = 0; o < c->og; o++) {
            const int8_t *src = w + (gr * c->og + o) * c->K;
            int8_t *blk = (int8_t *)c->w + (size_t)(gr * g.ob + o / MRV) * g.block_bytes;
            for (int64_t k = 0; k < c->K; k++) blk[(k / 4 * MRV + o % MRV) * 4 + k % 4] = src[k];
        }
    return NNQ_OK;
}

static void vnni_plan(nnq_qconv *c) {
    const gemm_geom g = vnni_geometry(c);
    nnq_avx2_gemm_plan_geom(c, &g);
}

#define ACC2(m) __m512i a##m##0 = _mm512_set1_epi32(bias[m]), a##m##1 = a##m##0
#define DP2(m)                                                                                \
    do {                                                                                      \
        const __m512i w = _mm512_set1_epi32(wp[MRV * q + (m)]);                               \
        a##m##0 = _mm512_dpbusd_epi32(a##m##0, x0, w);                                        \
        a##m##1 = _mm512_dpbusd_epi32(a##m##1, x1, w);                                        \
    } while (0)
#define OUT2(m) (acc[m][0] = a##m##0, acc[m][1] = a##m##1)

/* MRV channels x 32 pixels (two panel tiles); acc[m][h]: pixels 16h..16h+15. */
static __attribute__((noinline)) void ukernel_2(int64_t nquads, const uint8_t *xp0,
                                                const uint8_t *xp1, const int32_t *wp,
                                                const int32_t *bias, __m512i acc[MRV][2]) {
    ACC2(0); ACC2(1); ACC2(2); ACC2(3); ACC2(4); ACC2(5); ACC2(6); ACC2(7);
    for (int64_t q = 0; q < nquads; q++) {
        const __m512i x0 = _mm512_loadu_si512((const void *)(xp0 + 64 * q));
        const __m512i x1 = _mm512_loadu_si512((const void *)(xp1 + 64 * q));
        DP2(0); DP2(1); DP2(2); DP2(3); DP2(4); DP2(5); DP2(6); DP2(7);
    }
    OUT2(0); OUT2(1); OUT2(2); OUT2(3); OUT2(4); OUT2(5); OUT2(6); OUT2(7);
}

#define ACC1(m) __m512i a##m = _mm512_set1_epi32(bias[m])
#define DP1(m) a##m = _mm512_dpbusd_epi32(a##m, x0, _mm512_set1_epi32(wp[MRV * q + (m)]))
#define OUT1(m) (acc[m][0] = a##m)

/* MRV channels x 16 pixels: the last tile of an odd count. */
static __attribute__((noinline)) void ukernel_1(int64_t nquads, const uint8_t *xp0,
                                                const int32_t *wp, const int32_t *bias,
                                                __m512i acc[MRV][2]) {
    ACC1(0); ACC1(1); ACC1(2); ACC1(3); ACC1(4); ACC1(5); ACC1(6); ACC1(7);
    for (int64_t q = 0; q < nquads; q++) {
        const __m512i x0 = _mm512_loadu_si512((const void *)(xp0 + 64 * q));
        DP1(0); DP1(1); DP1(2); DP1(3); DP1(4); DP1(5); DP1(6); DP1(7);
    }
    OUT1(0); OUT1(1); OUT1(2); OUT1(3); OUT1(4); OUT1(5); OUT1(6); OUT1(7);
}

static void vnni_tiles(const gemm_item *t, int64_t n, int64_t gr, int64_t p0, int64_t cnt,
                       int64_t b0, int64_t b1) {
    const nnq_qconv *c = t->c;
    const gemm_geom *g = &t->g;
    const int64_t P = c->oh * c->ow, nq = g->kp / 4, ntiles = (cnt + NR - 1) / NR;
    for (int64_t b = b0; b < b1; b++) {
        const int32_t *wb = (const int32_t *)(c->w + (size_t)(gr * g->ob + b) * g->block_bytes);
        const int64_t o0 = gr * c->og + b * MRV;
        const int64_t valid = c->og - b * MRV < MRV ? c->og - b * MRV : MRV;
        nnq_vnni_block8 blk;
        nnq_vnni_block8_init(&blk, c->out, c->bias, o0, valid);
        uint8_t *yrow = t->y + (n * c->out_ch + o0) * P + p0;
        for (int64_t tile = 0; tile < ntiles; tile += 2) {
            const int64_t halves = tile + 1 < ntiles ? 2 : 1;
            const uint8_t *xp = t->panel + tile * nq * 64;
            __m512i acc[MRV][2];
            if (halves == 2) ukernel_2(nq, xp, xp + nq * 64, wb, blk.bias, acc);
            else ukernel_1(nq, xp, wb, blk.bias, acc);
            for (int64_t h = 0; h < halves; h++) {
                const int64_t px = (tile + h) * NR, npx = cnt - px < NR ? cnt - px : NR;
                __m512i u0, u1;
                nnq_vnni_block8_out(&blk, acc, h, &u0, &u1);
                uint8_t *d = yrow + px;
                if (valid == MRV && npx == NR) { /* the common case: no loop, no mask */
                    nnq_vnni_store8(d, P, u0, u1);
                    continue;
                }
                __m128i out[MRV];
                nnq_vnni_rows8(u0, u1, out);
                const __mmask16 keep = (__mmask16)((1u << npx) - 1);
                for (int64_t m = 0; m < valid; m++) _mm_mask_storeu_epi8(d + m * P, keep, out[m]);
            }
        }
    }
}

static void vnni_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const gemm_geom g = vnni_geometry(c);
    nnq_avx2_gemm_drive(c, &g, x, y, scratch, vnni_tiles);
}

static bool vnni_fits(const nnq_qconv *c) { return c->w_bits >= 2 && c->w_bits <= 8; }

const nnq_qconv_kernel nnq_qconv_vnni_gemm = {
    .name = "vnni-gemm",
    .isa = NNQ_ISA_VNNI,
    .fits = vnni_fits,
    .pack = vnni_pack,
    .plan = vnni_plan,
    .run = vnni_run,
};
