/* The GEMM geometry of a convolution, shared by qkernels_avx2_gemm.c
 * (weight packing, blocking, micro-kernels), qkernels_avx2_panel.c
 * (input panels) and qkernels_vnni_gemm.c (which reuses the panels, the
 * blocking and the driver with its own micro-kernel). */
#ifndef NNQ_ENGINE_QKERNELS_AVX2_GEMM_H
#define NNQ_ENGINE_QKERNELS_AVX2_GEMM_H

#include "engine/qkernels_avx2.h"

#define MR16 6   /* output channels per micro-tile, madd16 */
#define MR8 4    /* output channels per micro-tile, maddubs */
#define MR_MAX 6
#define NR 16    /* pixels per micro-tile (two vectors of 8) */

struct gemm_item;
/* Pixels [p0, p0 + cnt) of image n, group gr -> the item's panel. */
typedef void (*gemm_panel_fn)(const struct gemm_item *t, int64_t n, int64_t gr, int64_t p0,
                              int64_t cnt);
/* The general panel (qkernels_avx2_panel.c), for any geometry: per tile of
 * NR pixels, per step of K, two vectors (madd16: int16 pairs; maddubs:
 * uint8 quads), pixels 0-7 then 8-15. */
void nnq_avx2_gemm_panel(const struct gemm_item *t, int64_t n, int64_t gr, int64_t p0,
                         int64_t cnt);

typedef struct gemm_geom {
    gemm_panel_fn panel; /* builds a work item's panel */
    bool wide;          /* madd16 path (8-bit weights) */
    bool nibbles;       /* weights stored as nibbles (<= 4 bits) */
    int64_t step;       /* K per panel vector: 2 (pairs) or 4 (quads) */
    int64_t kp;         /* K rounded up to step */
    int64_t mr;         /* output channels per block */
    int64_t ob;         /* channel blocks per group */
    size_t block_bytes; /* packed weights of one channel block */
} gemm_geom;

static inline gemm_geom gemm_geometry(const nnq_qconv *c) {
    gemm_geom g;
    g.panel = nnq_avx2_gemm_panel;
    g.wide = c->w_bits == 8;
    g.nibbles = c->w_bits <= 4;
    g.step = g.wide ? 2 : 4;
    g.kp = (c->K + g.step - 1) / g.step * g.step;
    g.mr = g.wide ? MR16 : MR8;
    g.ob = (c->og + g.mr - 1) / g.mr;
    g.block_bytes = g.wide ? (size_t)(g.kp / 2 * g.mr) * 4
                           : (size_t)(g.kp / 4 * g.mr) * (g.nibbles ? 2 : 4);
    return g;
}

/* The input planes are the im2col rows: 1x1, stride 1, unpadded. */
static inline bool gemm_direct_input(const nnq_qconv *c) {
    return c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->pt == 0 && c->pl == 0 &&
           c->pb == 0 && c->pr == 0;
}

/* Otherwise each work item first copies its group's input planes into the
 * zero-point padded phase layout (nnq_avx2_fill_phases): every im2col row
 * is then a set of contiguous runs, read straight into the panel. */
typedef struct pad_geom {
    int64_t pw;   /* columns per phase row */
    size_t phase; /* bytes per phase plane */
    size_t chan;  /* bytes per channel: sw phase planes */
} pad_geom;

static inline pad_geom pad_geometry(const nnq_qconv *c) {
    pad_geom p;
    p.pw = (c->wd + c->pl + c->pr + c->sw - 1) / c->sw;
    p.phase = (size_t)((c->h + c->pt + c->pb) * p.pw);
    p.chan = p.phase * (size_t)c->sw;
    return p;
}

#define PAD_SLACK 32 /* a run is read as 16 bytes: up to 15 past its end */

/* What one thread works with: the conv, its geometry and its scratch. */
typedef struct gemm_item {
    const nnq_qconv *c;
    gemm_geom g;
    pad_geom pg;
    const uint8_t *x;
    uint8_t *y;
    uint8_t *panel, *pad;
    int64_t *org; /* tile origins (oy, ox) */
    int8_t *wbuf; /* unpacked nibble block */
} gemm_item;

/* Blocking for geometry g and the shape set by reshape: c->thread_bytes and
 * c->plan (pixels per work item, pixel blocks, channel chunks). */
void nnq_avx2_gemm_plan_geom(nnq_qconv *c, const gemm_geom *g);

/* Channel blocks [b0, b1) of group gr over the panel of pixels [p0, p0 + cnt)
 * of image n: micro-kernels, requantization, stores. */
typedef void (*gemm_tiles_fn)(const gemm_item *t, int64_t n, int64_t gr, int64_t p0,
                              int64_t cnt, int64_t b0, int64_t b1);

/* The work items of a run (image, group, pixel block, channel chunk) over
 * the threads: each packs its panel (nnq_avx2_gemm_panel), then calls
 * tiles. Shared by the AVX2 and the VNNI GEMM kernels. */
void nnq_avx2_gemm_drive(const nnq_qconv *c, const gemm_geom *g, const uint8_t *x, uint8_t *y,
                         uint8_t *scratch, gemm_tiles_fn tiles);

#endif
