/* AVX2 GEMM-style convolution: y[o, p] = sum_k w[o, k] x[k, p] per (image,
 * group), k = (c, ky, kx), p = output pixel (docs/engine.md).
 *
 * Per work item (image, group, block of pixels, share of the channels):
 *  1. pack the block's input into a panel in scratch, re-laid so the
 *     micro-kernel reads one vector per step of K (qkernels_avx2_panel.c);
 *  2. for each block of MR output channels and each tile of pixels, a
 *     register-blocked micro-kernel accumulates int32, then requantizes
 *     (nnq_avx2_requant) and stores uint8 rows of NCHW.
 * Two micro-kernels, both exact:
 *  - madd16 (8-bit weights): x widened to int16, pairs of K interleaved,
 *    weights pre-widened in pairs; vpmaddwd, 16 MACs per instruction.
 *    MR16 = 6 channels x 16 pixels: 12 accumulators.
 *  - maddubs (weights of at most 7 bits): x uint8 in quads of K, weights
 *    int8 quads; vpmaddubsw cannot saturate (|pair| <= 255 * 2^b <= 32640),
 *    2^(7-b) of them add up in int16 before vpmaddwd by ones widens them.
 *    MR8 = 4 channels x 16 pixels: 8 int16 sums in registers. Weights of
 *    at most 4 bits stay packed nibbles, unpacked per channel block into
 *    scratch.
 * Panels: qkernels_avx2_panel.c; shared geometry: qkernels_avx2_gemm.h. */
#include <string.h>

#include "core/parallel.h"
#include "engine/qkernels_avx2_gemm.h"

#define PANEL_BUDGET (256 * 1024) /* bytes of panel per work item: stays in L2 */
#define MAX_BLOCK_PX 4096         /* pixels per work item */

static inline size_t align_up(size_t n) { return (n + NNQ_QALIGN - 1) / NNQ_QALIGN * NNQ_QALIGN; }

/* ---- create: pack weights ---- */

static nnq_status gemm_pack(nnq_qconv *c, const int8_t *w) {
    const gemm_geom g = gemm_geometry(c);
    c->w_bytes = g.block_bytes * (size_t)(g.ob * c->groups);
    c->w = nnq_qalloc(c->w_bytes);
    if (!c->w) return nnq_fail(NNQ_ERR_NOMEM, "qconv: packed weights (%zu bytes)", c->w_bytes);
    for (int64_t gr = 0; gr < c->groups; gr++)
        for (int64_t b = 0; b < g.ob; b++) {
            uint8_t *dst = c->w + (size_t)(gr * g.ob + b) * g.block_bytes;
            for (int64_t s = 0; s < g.kp / g.step; s++)
                for (int64_t m = 0; m < g.mr; m++) {
                    const int64_t o = b * g.mr + m;
                    int8_t v[4] = {0, 0, 0, 0};
                    for (int64_t i = 0; i < g.step; i++) {
                        const int64_t k = s * g.step + i;
                        if (o < c->og && k < c->K) v[i] = w[(gr * c->og + o) * c->K + k];
                    }
                    const size_t at = (size_t)(s * g.mr + m);
                    if (g.wide) { /* two int16, low half first */
                        const uint32_t word =
                            (uint32_t)(uint16_t)v[0] | ((uint32_t)(uint16_t)v[1] << 16);
                        memcpy(dst + 4 * at, &word, 4);
                    } else if (g.nibbles) {
                        dst[2 * at] = nnq_nibble_pair(v[0], v[1]);
                        dst[2 * at + 1] = nnq_nibble_pair(v[2], v[3]);
                    } else {
                        memcpy(dst + 4 * at, v, 4);
                    }
                }
        }
    return NNQ_OK;
}

/* ---- reshape: blocking ---- */

/* Scratch of one thread: panel | padded input | tile origins | unpacked
 * weight block (nibbles only). */
static void slice_sizes(const nnq_qconv *c, const gemm_geom *g, int64_t nb, size_t sz[4]) {
    sz[0] = align_up((size_t)(nb * g->kp) * (g->wide ? 2 : 1));
    sz[1] = gemm_direct_input(c) ? 0
                                 : align_up(pad_geometry(c).chan * (size_t)c->cg + PAD_SLACK);
    sz[2] = align_up(sizeof(int64_t) * 2 * (size_t)(nb / NR));
    sz[3] = g->nibbles ? align_up((size_t)(g->kp * g->mr)) : 0;
}

void nnq_avx2_gemm_plan_geom(nnq_qconv *c, const gemm_geom *g) {
    const int64_t P = c->oh * c->ow, pr = (P + NR - 1) / NR * NR;
    const int64_t px_bytes = g->kp * (g->wide ? 2 : 1);
    int64_t nb = PANEL_BUDGET / px_bytes / NR * NR;
    if (nb < NR) nb = NR;
    if (nb > MAX_BLOCK_PX) nb = MAX_BLOCK_PX;
    if (nb > pr) nb = pr;
    const int64_t images = c->n * c->groups;
    if (c->threads > 1 && images < 2 * (int64_t)c->threads) {
        /* Few images: split the pixels first. Items that share pixels but
         * not channels would each pack the same panel, which costs about
         * as much as the multiply-adds when there are few channels. */
        const int64_t want = (2 * (int64_t)c->threads + images - 1) / images;
        int64_t split = (P + want - 1) / want;
        split = (split + 2 * NR - 1) / (2 * NR) * (2 * NR); /* whole micro-kernel tiles */
        if (split < nb) nb = split;
    }
    const int64_t pblocks = (P + nb - 1) / nb, base = images * pblocks;
    int64_t chunks = 1;
    if (c->threads > 1 && base < 4 * (int64_t)c->threads) { /* split the channels too */
        chunks = (4 * (int64_t)c->threads + base - 1) / base;
        if (chunks > g->ob) chunks = g->ob;
    }
    size_t sz[4];
    slice_sizes(c, g, nb, sz);
    c->thread_bytes = sz[0] + sz[1] + sz[2] + sz[3];
    c->plan[0] = nb;
    c->plan[1] = pblocks;
    c->plan[2] = chunks;
}

static void gemm_plan(nnq_qconv *c) {
    const gemm_geom g = gemm_geometry(c);
    nnq_avx2_gemm_plan_geom(c, &g);
}

/* ---- run: micro-kernels ---- */

#define MADD16_ROW(m)                                                                         \
    do {                                                                                      \
        const __m256i w = _mm256_set1_epi32(nnq_avx2_ld32(wp + 4 * (m)));                    \
        a##m##0 = _mm256_add_epi32(a##m##0, _mm256_madd_epi16(x0, w));                         \
        a##m##1 = _mm256_add_epi32(a##m##1, _mm256_madd_epi16(x1, w));                         \
    } while (0)

/* MR16 channels x 16 pixels; acc[m][h]: pixels 8h..8h+7 of channel m. */
static __attribute__((noinline)) void ukernel_madd16(int64_t npairs, const int16_t *xp,
                                                     const uint8_t *wp, const int32_t *bias,
                                                     __m256i acc[MR_MAX][2]) {
    __m256i a00 = _mm256_set1_epi32(bias[0]), a01 = a00;
    __m256i a10 = _mm256_set1_epi32(bias[1]), a11 = a10;
    __m256i a20 = _mm256_set1_epi32(bias[2]), a21 = a20;
    __m256i a30 = _mm256_set1_epi32(bias[3]), a31 = a30;
    __m256i a40 = _mm256_set1_epi32(bias[4]), a41 = a40;
    __m256i a50 = _mm256_set1_epi32(bias[5]), a51 = a50;
    for (int64_t j = 0; j < npairs; j++, xp += 32, wp += 4 * MR16) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)xp);
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xp + 16));
        MADD16_ROW(0);
        MADD16_ROW(1);
        MADD16_ROW(2);
        MADD16_ROW(3);
        MADD16_ROW(4);
        MADD16_ROW(5);
    }
    acc[0][0] = a00, acc[0][1] = a01, acc[1][0] = a10, acc[1][1] = a11;
    acc[2][0] = a20, acc[2][1] = a21, acc[3][0] = a30, acc[3][1] = a31;
    acc[4][0] = a40, acc[4][1] = a41, acc[5][0] = a50, acc[5][1] = a51;
}

#define WQ(m) _mm256_set1_epi32(nnq_avx2_ld32(wp + 4 * (MR8 * q + (m))))
#define MADDUBS(m)                                                                            \
    do {                                                                                      \
        const __m256i w = WQ(m);                                                              \
        s##m##0 = _mm256_add_epi16(s##m##0, _mm256_maddubs_epi16(x0, w));                      \
        s##m##1 = _mm256_add_epi16(s##m##1, _mm256_maddubs_epi16(x1, w));                      \
    } while (0)
#define WIDEN(m)                                                                              \
    do {                                                                                      \
        acc[m][0] = _mm256_add_epi32(acc[m][0], _mm256_madd_epi16(s##m##0, ones));             \
        acc[m][1] = _mm256_add_epi32(acc[m][1], _mm256_madd_epi16(s##m##1, ones));             \
    } while (0)

/* MR8 channels x 16 pixels; quads grouped by `group` in int16. The int16
 * sums live in registers, the int32 accumulators (memory) are touched once
 * a group. One flat loop with a countdown: GCC allocates the loop-carried
 * sums of a nested group loop badly (register copies, a spill). */
static __attribute__((noinline)) void ukernel_maddubs(int64_t nquads, int64_t group,
                                                      const uint8_t *xp, const int8_t *wp,
                                                      const int32_t *bias,
                                                      __m256i acc[MR_MAX][2]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int m = 0; m < MR8; m++) acc[m][0] = acc[m][1] = _mm256_set1_epi32(bias[m]);
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
    __m256i s20 = s00, s21 = s00, s30 = s00, s31 = s00;
    int64_t left = group;
    for (int64_t q = 0; q < nquads; q++) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xp + 64 * q));
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xp + 64 * q + 32));
        MADDUBS(0);
        MADDUBS(1);
        MADDUBS(2);
        MADDUBS(3);
        if (--left == 0 || q + 1 == nquads) {
            WIDEN(0);
            WIDEN(1);
            WIDEN(2);
            WIDEN(3);
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = _mm256_setzero_si256();
            left = group;
        }
    }
}

/* Channel blocks [b0, b1) of group gr over the packed pixel block. */
static void block_tiles(const gemm_item *t, int64_t n, int64_t gr, int64_t p0, int64_t cnt,
                        int64_t b0, int64_t b1) {
    const nnq_qconv *c = t->c;
    const gemm_geom *g = &t->g;
    const int64_t P = c->oh * c->ow, nsteps = g->kp / g->step;
    const int group = nnq_avx2_maddubs_group(c->w_bits);
    for (int64_t b = b0; b < b1; b++) {
        const uint8_t *wb = c->w + (size_t)(gr * g->ob + b) * g->block_bytes;
        if (g->nibbles) {
            nnq_avx2_unpack_nibble_stream(t->wbuf, wb, (int64_t)g->block_bytes);
            wb = (const uint8_t *)t->wbuf;
        }
        const int64_t o0 = gr * c->og + b * g->mr;
        const int64_t valid = c->og - b * g->mr < g->mr ? c->og - b * g->mr : g->mr;
        int32_t bias[MR_MAX] = {0};
        nnq_avx2_rq rq[MR_MAX];
        for (int64_t m = 0; m < valid; m++) {
            bias[m] = c->bias[o0 + m];
            rq[m] = nnq_avx2_rq_make(&c->out[o0 + m]);
        }
        uint8_t *yrow = t->y + (n * c->out_ch + o0) * P + p0;
        for (int64_t px = 0, tile = 0; px < cnt; px += 16, tile++) {
            const int64_t npx = cnt - px < 16 ? cnt - px : 16;
            __m256i acc[MR_MAX][2];
            if (g->wide)
                ukernel_madd16(nsteps, (const int16_t *)t->panel + tile * nsteps * 32, wb, bias,
                               acc);
            else
                ukernel_maddubs(nsteps, group, t->panel + tile * nsteps * 64, (const int8_t *)wb,
                                bias, acc);
            for (int64_t m = 0; m < valid; m++) {
                const __m128i u = nnq_avx2_pack16(nnq_avx2_requant(acc[m][0], &rq[m]),
                                                  nnq_avx2_requant(acc[m][1], &rq[m]), &rq[m]);
                nnq_avx2_store_n(yrow + m * P + px, u, npx);
            }
        }
    }
}

void nnq_avx2_gemm_drive(const nnq_qconv *c, const gemm_geom *g, const uint8_t *x, uint8_t *y,
                         uint8_t *scratch, gemm_tiles_fn tiles) {
    const int64_t nb = c->plan[0], pblocks = c->plan[1], chunks = c->plan[2];
    const int64_t P = c->oh * c->ow, items = c->n * c->groups * pblocks * chunks;
    size_t sz[4];
    slice_sizes(c, g, nb, sz);
    NNQ_PARALLEL(c->threads, tid, nt, {
        uint8_t *ts = scratch + (size_t)tid * c->thread_bytes;
        gemm_item t = {.c = c, .g = *g, .pg = pad_geometry(c), .x = x, .y = y};
        t.panel = ts;
        t.pad = ts + sz[0];
        t.org = (int64_t *)(ts + sz[0] + sz[1]);
        t.wbuf = (int8_t *)(ts + sz[0] + sz[1] + sz[2]);
        if (sz[1]) memset(t.pad, c->x_zp, sz[1]); /* borders; data rewritten per item */
        int64_t it_lo, it_hi;
        nnq_static_share(items, tid, nt, &it_lo, &it_hi);
        for (int64_t it = it_lo; it < it_hi; it++) {
            int64_t rest = it;
            const int64_t ch = rest % chunks;
            rest /= chunks;
            const int64_t pb = rest % pblocks;
            rest /= pblocks;
            const int64_t gr = rest % c->groups, n = rest / c->groups;
            const int64_t p0 = pb * nb, cnt = P - p0 < nb ? P - p0 : nb;
            g->panel(&t, n, gr, p0, cnt);
            tiles(&t, n, gr, p0, cnt, ch * g->ob / chunks, (ch + 1) * g->ob / chunks);
        }
    });
}

static void gemm_run(const nnq_qconv *c, const uint8_t *x, uint8_t *y, uint8_t *scratch) {
    const gemm_geom g = gemm_geometry(c);
    nnq_avx2_gemm_drive(c, &g, x, y, scratch, block_tiles);
}

static bool fits_madd16(const nnq_qconv *c) { return c->w_bits == 8; }
static bool fits_maddubs(const nnq_qconv *c) { return c->w_bits <= 7; }

const nnq_qconv_kernel nnq_qconv_avx2_gemm_madd16 = {
    .name = "avx2-gemm-madd16",
    .isa = NNQ_ISA_AVX2,
    .fits = fits_madd16,
    .pack = gemm_pack,
    .plan = gemm_plan,
    .run = gemm_run,
};

const nnq_qconv_kernel nnq_qconv_avx2_gemm_maddubs = {
    .name = "avx2-gemm-maddubs",
    .isa = NNQ_ISA_AVX2,
    .fits = fits_maddubs,
    .pack = gemm_pack,
    .plan = gemm_plan,
    .run = gemm_run,
};
