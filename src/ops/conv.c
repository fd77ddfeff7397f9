/* Conv over 1-3 spatial dims: X (N, C, D1..Dk), W (M, C/group, K1..Kk),
 * optional B (M) -> Y (N, M, O1..Ok), forward and backward.
 *
 * Four paths, chosen per conv by conv_make_plan:
 *   - tap (stride 1, 1-D/2-D, pads within the kernel extent, any group,
 *     depthwise too): tap GEMMs (gemm.h) over a zero-padded copy of the
 *     input, no im2col;
 *   - depthwise otherwise (one input channel per group, 1-D/2-D): direct
 *     kernels;
 *   - direct (1x1, stride 1, unpadded): SGEMM on X itself;
 *   - everything else: im2col + SGEMM per (image, group, chunk of lines).
 * Backward: dX, dW and dB for every path, split over images with per-thread
 * dW partials added in a fixed order (deterministic for a thread count).
 * tests/test_ops_dense.c holds the plain-loop forward reference;
 * tests/test_grad_dense.c checks backward against finite differences. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/gemm.h"
#include "ops/op.h"
#include "ops/window.h"

/* Output columns the depthwise kernel keeps in registers at once. */
#define DW_BLOCK 8
/* Below this many multiply-adds a parallel region costs more than it saves. */
#define PARALLEL_MIN_WORK 65536
/* Inference alone: waking a second thread for each small conv of a batch-1
 * network costs more than the conv (measured on the bench models). */
#define FORWARD_PARALLEL_MIN_WORK (1 << 20)

/* The GEMM and tap paths split the work into items: (image, group, chunk
 * of output lines), a line being one row of OW outputs; on the tap path a
 * block of `imgs` images takes the image's place. Each item builds its own
 * column matrix (or padded planes) in its thread's scratch buffer and runs
 * a single-threaded kernel, so one parallel region covers a whole Conv and
 * OpenBLAS never starts threads of its own inside it. Batches split by
 * image (block) and group; a single image splits by lines. */
/* The activation fused into the conv's output (op.h: clamp, clamp_relu). */
typedef enum { CONV_ACT_NONE, CONV_ACT_CLIP, CONV_ACT_RELU } conv_act_kind;
typedef struct conv_act {
    conv_act_kind kind;
    float lo, hi;
} conv_act;

typedef struct conv_plan {
    nnq_window w;             /* 3-D form: leading unit dims added */
    int64_t n, c, m, group;
    int64_t cg, mg;           /* input / output channels per group */
    int64_t rows;             /* GEMM depth: cg * taps per channel */
    int64_t in_size;          /* input elements per channel */
    int64_t out_size;         /* output elements per channel */
    int64_t lines;            /* OD * OH */
    int64_t chunks;           /* line chunks per (image, group) */
    int64_t chunk_lines;      /* lines per chunk (the last may have fewer) */
    int64_t items;            /* blocks * group * chunks */
    bool depthwise;           /* direct kernel */
    bool dw_planes;           /* forward: depthwise over padded phase planes */
    bool stap;                /* forward: strided conv as tap GEMMs over phase planes */
    int64_t stap_mchunk;      /* stap: output channels per item */
    int64_t stap_items;       /* stap: images * groups * channel chunks */
    int64_t tap_mchunk;       /* tap: > 0 when chunks split output channels, not lines */
    bool direct;              /* X is its own column matrix (1x1, stride 1, no pad) */
    bool tap;                 /* tap-GEMM path (see "Tap path" below) */
    int64_t taps;             /* KH * KW */
    int64_t hp;               /* tap path: padded input height */
    int64_t slack;            /* tap path: readable floats past the last plane */
    int64_t imgs;             /* tap path: images side by side per item; else 1 */
    int64_t blocks;           /* ceil(n / imgs) */
    int threads;
    int max_threads;          /* a->threads, or 1 for a conv too small to split */
    size_t col_floats;        /* one thread's im2col buffer */
    conv_act act;             /* forward epilogue */
} conv_plan;

static nnq_status check_inputs(const nnq_op_args *a) {
    static const char *const names[3] = {"X", "W", "B"};
    for (int i = 0; i < a->n_in && i < 3; i++) {
        if (!a->in[i]) continue;
        if (a->in[i]->dtype != NNQ_DT_FLOAT)
            return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                               "input %s has dtype %s; only float32 is supported", names[i],
                               nnq_dtype_name(a->in[i]->dtype));
    }
    const nnq_tensor *x = a->in[0], *w = a->in[1];
    const nnq_tensor *b = a->n_in > 2 ? a->in[2] : NULL;
    char sx[64], sw[64];
    if (x->rank < 3 || x->rank > 5)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED,
                           "X is %s: only rank 3 to 5 (1 to 3 spatial dims) is supported",
                           nnq_shape_str(x, sx, sizeof sx));
    if (w->rank != x->rank)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "W (%s) must have the rank of X (%s)",
                           nnq_shape_str(w, sw, sizeof sw), nnq_shape_str(x, sx, sizeof sx));
    int64_t group = nnq_node_attr_int(a->node, "group", 1);
    if (group < 1) return nnq_op_fail(a, NNQ_ERR_INVALID, "group = %lld", (long long)group);
    int64_t m = w->dims[0], c = x->dims[1];
    if (m >= 0 && m % group != 0)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "%lld output channels do not split into %lld groups",
                           (long long)m, (long long)group);
    if (c >= 0 && w->dims[1] >= 0 && c != w->dims[1] * group)
        return nnq_op_fail(a, NNQ_ERR_SHAPE,
                           "X has %lld channels but W (%s) with group %lld expects %lld",
                           (long long)c, nnq_shape_str(w, sw, sizeof sw), (long long)group,
                           (long long)(w->dims[1] * group));
    if (b && (b->rank != 1 || (m >= 0 && b->dims[0] >= 0 && b->dims[0] != m)))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "B is %s, expected a vector of %lld biases",
                           nnq_shape_str(b, sx, sizeof sx), (long long)m);
    return NNQ_OK;
}

/* The window, taking the kernel from W unless W's spatial dims are unknown. */
static nnq_status conv_window(const nnq_op_args *a, nnq_window *win) {
    const nnq_tensor *w = a->in[1];
    bool known = true;
    for (int d = 2; d < w->rank; d++) known = known && w->dims[d] >= 0;
    return nnq_window_init(a, a->in[0], known ? w->dims + 2 : NULL, win);
}

static nnq_status conv_infer(const nnq_op_args *a) {
    nnq_window win;
    NNQ_TRY(check_inputs(a));
    NNQ_TRY(conv_window(a, &win));
    int64_t dims[NNQ_MAX_RANK];
    dims[0] = a->in[0]->dims[0];
    dims[1] = a->in[1]->dims[0];
    for (int d = 0; d < win.rank; d++) dims[2 + d] = win.out[d];
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, a->in[0]->rank, dims);
}

/* ---- Tap path ----
 * A stride-1 conv over a zero-padded input whose rows are laid end to end
 * is a sum of shifted copies: with rows ld floats apart, output (oh, ow)
 * sits at grid position oh*ld + ow and tap (kh, kw) reads the padded input
 * at that position + kh*dh*ld + kw*dw. nnq_tap_gemm runs that sum
 * register-tiled straight from the padded planes, with no im2col matrix.
 * The images of a block sit side by side in each row (tap_row), so small
 * images still give long rows; grid columns that are no output (the
 * padding between images) are computed and dropped. Backward is the same
 * form twice: dX is the correlation of dY, padded by the kernel extent
 * less the pads, with the flipped, transposed kernel; dW the products of
 * dY with the shifted input (nnq_tap_gemm_grad). */
#define TAP_MAX 64           /* kernel taps (KH * KW) the path takes; more: im2col */
#define TAP_COLS 4096        /* grid columns per call worth batching images for */
#define TAP_BLOCK_CAP (1 << 19) /* floats of padded planes a block may take */

static int64_t tap_round(int64_t floats) { return (floats + 15) / 16 * 16; }

/* Stride 1, at most 2 spatial dims, and pads within the dilated kernel's
 * extent on each side (so the padded dY of backward holds all of dY). */
static bool tap_eligible(const nnq_window *w) {
    if (w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1 || w->pad_begin[0] != 0 ||
        w->pad_end[0] != 0)
        return false;
    if (w->kernel[1] * w->kernel[2] > TAP_MAX) return false;
    for (int d = 1; d < 3; d++) {
        int64_t ext = (w->kernel[d] - 1) * w->dilation[d];
        if (w->stride[d] != 1 || w->pad_begin[d] < 0 || w->pad_begin[d] > ext ||
            w->pad_end[d] < 0 || w->pad_end[d] > ext)
            return false;
    }
    return true;
}

/* One row of a block of nb images with sw columns each, padded by pb
 * before and pe after: `lead` zeros, then image i's columns at lead +
 * i*seg, each followed by seg - sw zeros. One run of max(pb, pe) zeros
 * serves as the right pad of an image and the left pad of the next, and
 * output column ow of image i sits at grid column i*seg + ow. */
typedef struct tap_row {
    int64_t lead, seg, ld;
} tap_row;

static tap_row tap_row_layout(int64_t sw, int64_t pb, int64_t pe, int64_t nb) {
    tap_row r;
    r.lead = pb;
    r.seg = sw + (pb > pe ? pb : pe);
    r.ld = r.lead + nb * r.seg;
    return r;
}

/* Tap t = kh * KW + kw reads at off[t] = kh*dh*ld + kw*dw from its output. */
static void tap_offsets(const nnq_window *w, int64_t ld, int64_t *off) {
    for (int64_t kh = 0; kh < w->kernel[1]; kh++)
        for (int64_t kw = 0; kw < w->kernel[2]; kw++)
            off[kh * w->kernel[2] + kw] = kh * w->dilation[1] * ld + kw * w->dilation[2];
}

/* Padded planes of a block: plane c (at dst + c * cstride) row r < rows
 * holds row r + row0 - top of each image i < nb at its place in layout L,
 * zeros everywhere else. Image i's channel c of the source is the sh x sw
 * plane at src + i * img_stride + c * src_plane. */
static void tap_fill(const float *src, int64_t img_stride, int64_t nb, int64_t chans,
                     int64_t src_plane, int64_t sh, int64_t sw, int64_t top, int64_t row0,
                     int64_t rows, const tap_row *L, int64_t cstride, float *dst) {
    const int64_t tail = L->ld - L->lead - nb * L->seg;
    for (int64_t c = 0; c < chans; c++)
        for (int64_t r = 0; r < rows; r++) {
            float *d = dst + c * cstride + r * L->ld;
            int64_t sr = r + row0 - top;
            if (sr < 0 || sr >= sh) {
                memset(d, 0, sizeof(float) * (size_t)L->ld);
                continue;
            }
            memset(d, 0, sizeof(float) * (size_t)L->lead);
            for (int64_t i = 0; i < nb; i++) {
                float *di = d + L->lead + i * L->seg;
                memcpy(di, src + i * img_stride + c * src_plane + sr * sw, sizeof(float) * (size_t)sw);
                memset(di + sw, 0, sizeof(float) * (size_t)(L->seg - sw));
            }
            memset(d + L->ld - tail, 0, sizeof(float) * (size_t)tail);
        }
}

/* Images per tap block: about TAP_COLS grid columns, no more than
 * TAP_BLOCK_CAP floats of planes, and a count of blocks that splits evenly
 * over the threads (static schedules hand each thread the same number). */
static int64_t tap_block_images(const conv_plan *p) {
    const nnq_window *w = &p->w;
    tap_row one = tap_row_layout(w->in[2], w->pad_begin[2], w->pad_end[2], 1);
    int64_t cols = w->out[1] * one.seg;
    int64_t chans = p->cg > p->mg ? p->cg : p->mg;
    int64_t want = cols > 0 ? (TAP_COLS + cols - 1) / cols : 1;
    int64_t room = TAP_BLOCK_CAP / (chans * p->hp * one.seg + 1);
    if (want > room) want = room;
    if (want < 1) want = 1;
    int64_t t = p->max_threads, blocks = (p->n + want - 1) / want;
    if (p->group < t) blocks = (blocks + t - 1) / t * t; /* many groups balance anyway */
    if (blocks > p->n) blocks = p->n;
    return blocks > 0 ? (p->n + blocks - 1) / blocks : 1;
}

/* ---- Depthwise forward over phase planes ----
 * Each input plane is copied once, zero-padded and split by stride phase:
 * phase (ph, pw) holds padded rows ph, ph + SH, ... and columns pw,
 * pw + SW, ..., each phase row ld floats long. Output (oh, ow) sits at grid
 * position oh * ld + ow, and tap (kh, kw) reads phase ((kh*DH) % SH,
 * (kw*DW) % SW) at that position + ((kh*DH) / SH) * ld + (kw*DW) / SW: every
 * tap is one unit-stride pass over the whole grid, whatever the stride,
 * with no bounds checks, so small planes and stride 2 vectorise as well as
 * large ones. Grid columns ow >= OW are computed and dropped. */
#define DW_MAX_STRIDE 4

typedef struct dw_geom {
    int64_t ld;    /* phase row = grid row, in floats */
    int64_t rows;  /* rows per phase */
    int64_t phase; /* floats per phase, with slack for the last vector's reads */
    int64_t grid;  /* OH * ld rounded up to whole vectors */
} dw_geom;

static dw_geom dw_geometry(const nnq_window *w) {
    dw_geom gm;
    const int64_t cmax = (w->kernel[2] - 1) * w->dilation[2] / w->stride[2];
    gm.ld = w->out[2] + cmax;
    gm.rows = w->out[1] + (w->kernel[1] - 1) * w->dilation[1] / w->stride[1];
    gm.grid = (w->out[1] * gm.ld + DW_BLOCK - 1) / DW_BLOCK * DW_BLOCK;
    /* the last vector reads up to rows*ld + cmax + DW_BLOCK - 1 */
    gm.phase = tap_round(gm.rows * gm.ld + cmax + DW_BLOCK);
    return gm;
}

/* One thread's buffer: all phases of one input plane, then the grid. */
static size_t dw_floats(const nnq_window *w) {
    dw_geom gm = dw_geometry(w);
    return (size_t)(w->stride[1] * w->stride[2] * gm.phase + gm.grid);
}

/* 2-D (or 1-D) depthwise with small strides and no negative pads. */
static bool dw_planes_eligible(const conv_plan *p) {
    const nnq_window *w = &p->w;
    if (!(p->group > 1 && p->cg == 1) || w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1)
        return false;
    for (int d = 1; d < 3; d++)
        if (w->stride[d] < 1 || w->stride[d] > DW_MAX_STRIDE || w->pad_begin[d] < 0 ||
            w->pad_end[d] < 0 || w->dilation[d] < 1)
            return false;
    return w->kernel[1] * w->kernel[2] <= TAP_MAX && w->out[1] > 0 && w->out[2] > 0;
}

/* ---- Strided tap path (forward) ----
 * Over the phase planes of its input (see the depthwise kernel above), a
 * strided conv is a stride-1 one: tap t of channel c reads c's phases at
 * off[t] + grid position, so nnq_tap_gemm runs it with a channel stride
 * that spans all of a channel's phases, with no im2col matrix. For 2-D
 * convs with a stride above 1 and a kernel above 1x1; backward keeps the
 * im2col path. Items are (image, group, chunk of output channels), so one
 * image still splits over threads. */
static bool stap_eligible(const conv_plan *p) {
    const nnq_window *w = &p->w;
    if (p->tap || p->direct || (p->group > 1 && p->cg == 1)) return false;
    if (w->kernel[0] != 1 || w->in[0] != 1 || w->out[0] != 1) return false;
    if (w->stride[1] == 1 && w->stride[2] == 1) return false;
    int64_t taps = w->kernel[1] * w->kernel[2];
    if (taps < 2 || taps > TAP_MAX) return false;
    for (int d = 1; d < 3; d++)
        if (w->stride[d] < 1 || w->stride[d] > DW_MAX_STRIDE || w->pad_begin[d] < 0 ||
            w->pad_end[d] < 0 || w->dilation[d] < 1)
            return false;
    return w->out[1] > 0 && w->out[2] > 0;
}

/* Floats of one channel's phases, and of the readable tail after the last. */
static int64_t stap_cstride(const nnq_window *w) {
    return w->stride[1] * w->stride[2] * dw_geometry(w).phase;
}
static int64_t stap_input_floats(const conv_plan *p) {
    return tap_round(p->cg * stap_cstride(&p->w) + NNQ_TAP_OVERRUN + 16);
}

static void stap_plan(conv_plan *p) {
    const dw_geom gm = dw_geometry(&p->w);
    const int64_t tasks = p->n * p->group, cols = p->w.out[1] * gm.ld;
    int64_t want = tasks > 0 && tasks < p->max_threads ? (p->max_threads + tasks - 1) / tasks : 1;
    int64_t mc = (p->mg + want - 1) / want;
    if (want > 1) mc = (mc + 7) / 8 * 8; /* whole register tiles per chunk */
    if (mc > p->mg) mc = p->mg;
    if (mc < 1) mc = 1;
    p->stap_mchunk = mc;
    p->stap_items = tasks * ((p->mg + mc - 1) / mc);
    p->col_floats = (size_t)(stap_input_floats(p) + tap_round(mc * cols));
}

static nnq_status conv_make_plan(const nnq_op_args *a, conv_plan *p) {
    nnq_window win;
    NNQ_TRY(check_inputs(a));
    NNQ_TRY(conv_window(a, &win));
    memset(p, 0, sizeof *p);
    nnq_window_to_3d(&win, &p->w);
    const nnq_window *w = &p->w;
    p->n = a->in[0]->dims[0];
    p->c = a->in[0]->dims[1];
    p->m = a->in[1]->dims[0];
    p->group = nnq_node_attr_int(a->node, "group", 1);
    p->cg = p->c / p->group;
    p->mg = p->m / p->group;
    p->rows = p->cg * w->kernel[0] * w->kernel[1] * w->kernel[2];
    p->in_size = w->in[0] * w->in[1] * w->in[2];
    p->out_size = w->out[0] * w->out[1] * w->out[2];
    p->threads = a->threads > 0 ? a->threads : 1;
    if (p->n * p->m * p->out_size * p->rows < PARALLEL_MIN_WORK) p->threads = 1;
    p->max_threads = p->threads;

    p->depthwise = p->group > 1 && p->cg == 1 && win.rank <= 2;
    p->direct = true;
    for (int d = 0; d < 3; d++)
        p->direct = p->direct && w->kernel[d] == 1 && w->stride[d] == 1 && w->pad_begin[d] == 0 &&
                    w->pad_end[d] == 0;
    /* stride-1 depthwise convs too: the tap kernels beat the direct ones */
    p->tap = !p->direct && tap_eligible(w);
    if (p->tap) p->depthwise = false;
    p->taps = w->kernel[1] * w->kernel[2];
    p->hp = w->in[1] + w->pad_begin[1] + w->pad_end[1];
    p->slack = tap_round((w->kernel[2] - 1) * w->dilation[2] + NNQ_TAP_OVERRUN);
    p->lines = w->out[0] * w->out[1];
    p->imgs = p->tap ? tap_block_images(p) : 1;
    p->blocks = (p->n + p->imgs - 1) / p->imgs;
    int64_t tasks = p->blocks * p->group;
    p->chunks = 1;
    if (tasks > 0 && tasks < p->threads) p->chunks = (p->threads + tasks - 1) / tasks;
    if (p->chunks > p->lines) p->chunks = p->lines > 0 ? p->lines : 1;
    p->chunk_lines = (p->lines + p->chunks - 1) / p->chunks;
    p->tap_mchunk = 0;
    if (p->tap && p->chunks > 1 && p->mg >= 16 &&
        p->n * p->m * p->out_size * p->rows >= FORWARD_PARALLEL_MIN_WORK) {
        /* Few images: split output channels rather than lines, so each
         * thread's tap GEMM keeps the whole (long) grid; the input fill
         * is repeated per chunk, which costs less than short rows. */
        int64_t mc = (p->mg + p->chunks - 1) / p->chunks;
        p->tap_mchunk = (mc + 7) / 8 * 8 < p->mg ? (mc + 7) / 8 * 8 : p->mg;
        p->chunks = (p->mg + p->tap_mchunk - 1) / p->tap_mchunk;
        p->chunk_lines = p->lines;
    }
    p->items = tasks * p->chunks;
    if (p->items < p->threads) p->threads = p->items > 0 ? (int)p->items : 1;
    p->col_floats = p->depthwise || p->direct ? 0 : (size_t)(p->rows * p->chunk_lines * w->out[2]);
    if (p->tap) { /* padded input rows of a chunk, then its outputs on the grid */
        int64_t prows = p->chunk_lines + (w->kernel[1] - 1) * w->dilation[1];
        int64_t ld = tap_row_layout(w->in[2], w->pad_begin[2], w->pad_end[2], p->imgs).ld;
        p->col_floats = (size_t)(tap_round(p->cg * prows * ld + p->slack) +
                                 tap_round(p->mg * p->chunk_lines * ld));
    }

    p->dw_planes = dw_planes_eligible(p);
    if (p->dw_planes) p->col_floats = dw_floats(w);
    p->stap = !p->dw_planes && stap_eligible(p);
    if (p->stap) stap_plan(p);
    p->act.kind = a->clamp_relu ? CONV_ACT_RELU : a->clamp ? CONV_ACT_CLIP : CONV_ACT_NONE;
    p->act.lo = a->clamp_lo;
    p->act.hi = a->clamp_hi;

    int64_t check[4] = {p->mg, p->out_size, p->rows, p->in_size};
    if (!nnq_blas_dims_fit(4, check))
        return nnq_op_fail(a, NNQ_ERR_LIMIT, "convolution too large for BLAS's int arguments");
    return NNQ_OK;
}

/* Backward's share of the work: items are (image, group) pairs (tap
 * path: (block of images, group)); on the GEMM path each walks its output
 * lines in chunks whose column matrix stays under BWD_COL_CAP floats (or
 * one line, if a line alone is larger). With more than one thread, each
 * thread sums dW into a partial buffer of its own (thread 0 into dW
 * itself); the partials are added in thread order at the end, so the
 * result is the same bits on every run with the same thread count. */
#define BWD_COL_CAP (1 << 20)

typedef struct conv_bwd_plan {
    int threads;          /* 1: items in sequence, SGEMM on a->threads */
    int64_t imgs;         /* images per item (tap path; else 1) */
    int64_t items;        /* blocks * group */
    int64_t chunk_lines;
    size_t col_floats;    /* one thread's column buffer */
    size_t dw_floats;     /* one thread's dW partial (0 with one thread) */
} conv_bwd_plan;

/* Tap path, per block of images and group: the dW step holds the padded
 * inputs (hp rows in layout lx) and dY on the same grid (OH rows, zero
 * where no output is); the dX step holds dY padded by the kernel extent
 * less the pads (hp2 rows in layout ldy) and dX on that grid (H rows).
 * The steps share one buffer. */
typedef struct tap_bwd_geom {
    tap_row lx, ldy;
    int64_t hp2;      /* rows of the padded dY */
    int64_t top;      /* rows of zeros above dY in it */
    int64_t dy_cols;  /* dW step: dY row length, padded for the kernel */
} tap_bwd_geom;

static void tap_bwd_geometry(const conv_plan *p, int64_t nb, tap_bwd_geom *t) {
    const nnq_window *w = &p->w;
    int64_t exth = (w->kernel[1] - 1) * w->dilation[1], extw = (w->kernel[2] - 1) * w->dilation[2];
    t->lx = tap_row_layout(w->in[2], w->pad_begin[2], w->pad_end[2], nb);
    t->ldy = tap_row_layout(w->out[2], extw - w->pad_begin[2], extw - w->pad_end[2], nb);
    t->hp2 = w->in[1] + exth;
    t->top = exth - w->pad_begin[1];
    int64_t n = w->out[1] * t->lx.ld;
    t->dy_cols = (n + NNQ_TAP_GRAD_ALIGN - 1) / NNQ_TAP_GRAD_ALIGN * NNQ_TAP_GRAD_ALIGN;
}

static void conv_bwd_make_plan(const conv_plan *p, conv_bwd_plan *b) {
    memset(b, 0, sizeof *b);
    b->imgs = p->imgs;
    b->items = p->blocks * p->group;
    int nt = p->max_threads;
    if (b->items < nt) nt = b->items > 0 ? (int)b->items : 1;
    b->threads = nt;
    int64_t ow = p->w.out[2], per_line = p->rows * ow;
    b->chunk_lines = per_line > 0 ? BWD_COL_CAP / per_line : p->lines;
    if (b->chunk_lines < 1) b->chunk_lines = 1;
    if (b->chunk_lines > p->lines) b->chunk_lines = p->lines > 0 ? p->lines : 1;
    b->col_floats = p->depthwise || p->direct ? 0 : (size_t)(per_line * b->chunk_lines);
    if (p->tap) {
        tap_bwd_geom t;
        tap_bwd_geometry(p, b->imgs, &t);
        size_t dw_step = (size_t)(tap_round(p->cg * p->hp * t.lx.ld + p->slack) +
                                  tap_round(p->mg * t.dy_cols));
        size_t dx_step = (size_t)(tap_round(p->mg * t.hp2 * t.ldy.ld + p->slack) +
                                  tap_round(p->cg * p->w.in[1] * t.ldy.ld));
        b->col_floats = dw_step > dx_step ? dw_step : dx_step;
    }
    b->dw_floats = nt > 1 && !p->depthwise ? (size_t)(p->m * p->rows) : 0;
}

/* Floats of scratch backward uses: per-thread buffers, dW partials, and
 * on the tap path the flipped, transposed kernel. */
static size_t conv_bwd_floats(const conv_plan *p, const conv_bwd_plan *b) {
    size_t wt = p->tap ? (size_t)tap_round(p->m * p->rows) : 0;
    return (b->col_floats + b->dw_floats) * (size_t)b->threads + wt;
}

static size_t conv_scratch(const nnq_op_args *a) {
    conv_plan p;
    if (conv_make_plan(a, &p) != NNQ_OK) return 0; /* forward reports the error */
    size_t fwd = p.col_floats * sizeof(float) * (size_t)p.threads;
    if (!a->training) return fwd;
    conv_bwd_plan b;
    conv_bwd_make_plan(&p, &b);
    size_t bwd = conv_bwd_floats(&p, &b) * sizeof(float);
    return bwd > fwd ? bwd : fwd;
}

/* Row r of the column matrix for output lines [l0, l1): tap (kd, kh, kw)
 * of channel c at every output position, r = ((c*KD + kd)*KH + kh)*KW + kw. */
static void im2col_row(const float *x, const nnq_window *w, int64_t r, int64_t l0, int64_t l1,
                       float *dst) {
    const int64_t KD = w->kernel[0], KH = w->kernel[1], KW = w->kernel[2];
    const int64_t H = w->in[1], W = w->in[2];
    const int64_t OH = w->out[1], OW = w->out[2];
    int64_t kw = r % KW, t = r / KW;
    int64_t kh = t % KH;
    t /= KH;
    int64_t kd = t % KD, c = t / KD;
    const float *xc = x + c * w->in[0] * H * W;
    int64_t dlo, dhi, hlo, hhi, lo, hi;
    nnq_window_out_range(w, 0, kd, &dlo, &dhi);
    nnq_window_out_range(w, 1, kh, &hlo, &hhi);
    nnq_window_out_range(w, 2, kw, &lo, &hi);
    const int64_t sw = w->stride[2];
    const int64_t wofs = kw * w->dilation[2] - w->pad_begin[2];

    int64_t od = l0 / OH, oh = l0 % OH;
    for (int64_t l = l0; l < l1; l++, dst += OW) {
        if (od < dlo || od >= dhi || oh < hlo || oh >= hhi) {
            memset(dst, 0, sizeof(float) * (size_t)OW);
        } else {
            int64_t id = od * w->stride[0] - w->pad_begin[0] + kd * w->dilation[0];
            int64_t ih = oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1];
            const float *xr = xc + (id * H + ih) * W;
            for (int64_t o = 0; o < lo; o++) dst[o] = 0;
            if (sw == 1) {
                if (hi > lo) memcpy(dst + lo, xr + lo + wofs, sizeof(float) * (size_t)(hi - lo));
            } else {
                for (int64_t o = lo; o < hi; o++) dst[o] = xr[o * sw + wofs];
            }
            for (int64_t o = hi; o < OW; o++) dst[o] = 0;
        }
        if (++oh == OH) {
            oh = 0;
            od++;
        }
    }
}

/* The fused activation over y[0..n), in place. */
__attribute__((target_clones("avx2", "default")))
static void act_apply(const conv_act *f, float *y, int64_t n) {
    if (f->kind == CONV_ACT_CLIP) {
        const float lo = f->lo, hi = f->hi;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = y[i] < lo ? lo : y[i];
            y[i] = v > hi ? hi : v;
        }
    } else if (f->kind == CONV_ACT_RELU) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    }
}

/* dst[r * dld + i] = act(src[r * sld + i] + b_r) for r < rows, i < cols,
 * b_r = bias[r * bias_step] (bias NULL: 0): the GEMM's output (in place,
 * while still in cache) or a computed grid's, moved to Y with bias and
 * fused activation. */
__attribute__((target_clones("avx2", "default")))
static void rows_bias_act(float *dst, int64_t dld, const float *src, int64_t sld, int64_t rows,
                          int64_t cols, const float *bias, int64_t bias_step, const conv_act *f) {
    const float lo = f->lo, hi = f->hi;
    for (int64_t r = 0; r < rows; r++, dst += dld, src += sld) {
        const float b = bias ? bias[r * bias_step] : 0.0f;
        if (f->kind == CONV_ACT_CLIP) {
            #pragma omp simd
            for (int64_t i = 0; i < cols; i++) {
                float v = src[i] + b;
                v = v < lo ? lo : v;
                dst[i] = v > hi ? hi : v;
            }
        } else if (f->kind == CONV_ACT_RELU) {
            #pragma omp simd
            for (int64_t i = 0; i < cols; i++) {
                float v = src[i] + b;
                dst[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            #pragma omp simd
            for (int64_t i = 0; i < cols; i++) dst[i] = src[i] + b;
        }
    }
}

/* One work item: output lines [l0, l1) of image n, group g, as
 * Y_g[:, lines] = W_g (mg x rows) * col (rows x line outputs). */
static void conv_item(const conv_plan *p, const float *x, const float *wt, const float *bias,
                      float *y, int64_t item, float *col) {
    int64_t task = item / p->chunks, chunk = item % p->chunks;
    int64_t n = task / p->group, g = task % p->group;
    int64_t l0 = chunk * p->chunk_lines, l1 = l0 + p->chunk_lines;
    if (l1 > p->lines) l1 = p->lines;
    if (l0 >= l1) return;
    const int64_t ow = p->w.out[2], off = l0 * ow, cols = (l1 - l0) * ow;
    const float *xg = x + (n * p->c + g * p->cg) * p->in_size;
    float *yg = y + (n * p->m + g * p->mg) * p->out_size + off;
    const float *b = xg + off; /* direct: in_size == out_size */
    int64_t ldb = p->in_size;
    if (!p->direct) {
        for (int64_t r = 0; r < p->rows; r++) im2col_row(xg, &p->w, r, l0, l1, col + r * cols);
        b = col;
        ldb = cols;
    }
    nnq_sgemm(false, false, (int)p->mg, (int)cols, (int)p->rows, 1.0f, wt + g * p->mg * p->rows,
              (int)p->rows, b, (int)ldb, 0.0f, yg, (int)p->out_size, 1);
    if (bias || p->act.kind != CONV_ACT_NONE)
        rows_bias_act(yg, p->out_size, yg, p->out_size, p->mg, cols,
                      bias ? bias + g * p->mg : NULL, 1, &p->act);
}

/* Tap-path work item: output lines [l0, l1) of a block of images in
 * group g. The padded input rows they read go to buf, the outputs on the
 * grid after them; then the outputs move to Y, plus the bias. */
static void conv_tap_item(const conv_plan *p, const float *x, const float *wt, const float *bias,
                          float *y, int64_t item, float *buf) {
    const nnq_window *w = &p->w;
    int64_t task = item / p->chunks, chunk = item % p->chunks;
    int64_t blk = task / p->group, g = task % p->group;
    int64_t n0 = blk * p->imgs, nb = p->n - n0 < p->imgs ? p->n - n0 : p->imgs;
    int64_t l0 = chunk * p->chunk_lines, l1 = l0 + p->chunk_lines, m0 = 0, mc = p->mg;
    if (p->tap_mchunk > 0) { /* chunks of output channels, all lines */
        l0 = 0;
        l1 = p->lines;
        m0 = chunk * p->tap_mchunk;
        mc = p->mg - m0 < p->tap_mchunk ? p->mg - m0 : p->tap_mchunk;
    }
    if (l1 > p->lines) l1 = p->lines;
    if (l0 >= l1 || mc <= 0) return;
    const tap_row L = tap_row_layout(w->in[2], w->pad_begin[2], w->pad_end[2], nb);
    const int64_t ow = w->out[2], lines = l1 - l0, cols = lines * L.ld;
    const int64_t prows = lines + (w->kernel[1] - 1) * w->dilation[1], cstride = prows * L.ld;
    float *xb = buf, *yb = buf + tap_round(p->cg * cstride + p->slack);
    int64_t off[TAP_MAX];
    tap_fill(x + (n0 * p->c + g * p->cg) * p->in_size, p->c * p->in_size, nb, p->cg, p->in_size,
             w->in[1], w->in[2], w->pad_begin[1], l0, prows, &L, cstride, xb);
    memset(xb + p->cg * cstride, 0, sizeof(float) * (size_t)p->slack);
    tap_offsets(w, L.ld, off);
    nnq_tap_gemm((int)mc, cols, (int)p->cg, (int)p->taps, wt + (g * p->mg + m0) * p->rows,
                 p->rows, xb, cstride, off, yb, cols, false);
    for (int64_t i = 0; i < nb; i++)
        for (int64_t m = 0; m < mc; m++) {
            float b = bias ? bias[g * p->mg + m0 + m] : 0.0f;
            float *ym = y + ((n0 + i) * p->m + g * p->mg + m0 + m) * p->out_size + l0 * ow;
            const float *src = yb + m * cols + i * L.seg;
            rows_bias_act(ym, ow, src, L.ld, lines, ow, &b, 0, &p->act);
        }
}

/* Output column o of a depthwise row, checking each tap's range. */
static float depthwise_column(const nnq_window *w, const float *x, const float *k, float bias,
                              int64_t oh, int64_t khlo, int64_t khhi, int64_t o) {
    const int64_t W = w->in[2], KW = w->kernel[2];
    int64_t kwlo, kwhi;
    nnq_window_taps(w, 2, o, &kwlo, &kwhi);
    int64_t iw0 = o * w->stride[2] - w->pad_begin[2];
    float acc = bias;
    for (int64_t kh = khlo; kh < khhi; kh++) {
        const float *xr = x + (oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1]) * W;
        for (int64_t kw = kwlo; kw < kwhi; kw++)
            acc += k[kh * KW + kw] * xr[iw0 + kw * w->dilation[2]];
    }
    return acc;
}

/* Eight floats as one value (GCC/Clang vector extension): one AVX
 * register, or two SSE ones, whatever the function is compiled for. */
typedef float v8sf __attribute__((vector_size(8 * sizeof(float))));

/* acc += kv * (eight inputs read with stride SW); strides 1 and 2 become
 * plain loads, which never read past the last input used (p[7 * SW]).
 * (Vectors travel by pointer: passing them by value would depend on the
 * ISA's calling convention.) */
static inline void fma_strided(v8sf *acc, float kv, const float *p, int64_t SW) {
    v8sf v;
    if (SW == 1) {
        memcpy(&v, p, sizeof v);
    } else if (SW == 2) {
        v8sf a, b; /* p[0..7] and p[7..14]: evens from a, then odds of b */
        memcpy(&a, p, sizeof a);
        memcpy(&b, p + 7, sizeof b);
        v = __builtin_shufflevector(a, b, 0, 2, 4, 6, 9, 11, 13, 15);
    } else {
        for (int j = 0; j < 8; j++) v[j] = p[j * SW];
    }
    *acc += kv * v;
}

/* Eight interior columns from o0 on, accumulated in registers. SW (stride)
 * and KW (kernel width) become compile-time constants where the caller
 * passes constants, so the common 3-wide kernels unroll. */
static inline void depthwise_block(const nnq_window *w, const float *x, const float *k,
                                   float bias, int64_t oh, int64_t khlo, int64_t khhi,
                                   int64_t o0, int64_t SW, int64_t KW, float *y) {
    const int64_t W = w->in[2], dw = w->dilation[2];
    v8sf acc = {bias, bias, bias, bias, bias, bias, bias, bias};
    for (int64_t kh = khlo; kh < khhi; kh++) {
        const float *xr = x + (oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1]) * W +
                          o0 * SW - w->pad_begin[2];
        for (int64_t kw = 0; kw < KW; kw++) fma_strided(&acc, k[kh * KW + kw], xr + kw * dw, SW);
    }
    memcpy(y, &acc, sizeof acc);
}

/* Interior columns [ilo, ihi) (at least DW_BLOCK of them) of output row
 * oh in blocks at ilo, ilo + 8, ..., the last one ending at ihi and
 * overlapping its predecessor, so no column is left to the slow path. */
static inline void depthwise_row(const nnq_window *w, const float *x, const float *k,
                                 float bias, int64_t oh, int64_t khlo, int64_t khhi,
                                 int64_t ilo, int64_t ihi, int64_t SW, int64_t KW, float *yr) {
    const int64_t last = ihi - DW_BLOCK;
    for (int64_t o = ilo;; o = o + DW_BLOCK < last ? o + DW_BLOCK : last) {
        depthwise_block(w, x, k, bias, oh, khlo, khhi, o, SW, KW, yr + o);
        if (o == last) break;
    }
}

/* One output plane of a depthwise conv (2-D; 1-D has H = 1). Columns
 * [ilo, ihi) read inside the input for every kernel column: they run in
 * unchecked register blocks; the few others tap by tap. */
__attribute__((target_clones("avx2", "default")))
static void depthwise_plane(const nnq_window *w, const float *x, const float *k, float bias,
                            int64_t ilo, int64_t ihi, float *y) {
    const int64_t OH = w->out[1], OW = w->out[2], sw = w->stride[2], KW = w->kernel[2];
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        int64_t khlo, khhi, o = 0;
        nnq_window_taps(w, 1, oh, &khlo, &khhi);
        for (; o < ilo; o++) yr[o] = depthwise_column(w, x, k, bias, oh, khlo, khhi, o);
        if (ihi - o >= DW_BLOCK) {
            /* Specialised for the common strides and kernel width 3. */
            if (sw == 1 && KW == 3) depthwise_row(w, x, k, bias, oh, khlo, khhi, o, ihi, 1, 3, yr);
            else if (sw == 2 && KW == 3) depthwise_row(w, x, k, bias, oh, khlo, khhi, o, ihi, 2, 3, yr);
            else if (sw == 1) depthwise_row(w, x, k, bias, oh, khlo, khhi, o, ihi, 1, KW, yr);
            else if (sw == 2) depthwise_row(w, x, k, bias, oh, khlo, khhi, o, ihi, 2, KW, yr);
            else depthwise_row(w, x, k, bias, oh, khlo, khhi, o, ihi, sw, KW, yr);
            o = ihi;
        }
        for (; o < OW; o++) yr[o] = depthwise_column(w, x, k, bias, oh, khlo, khhi, o);
    }
}

static void conv_depthwise(const conv_plan *p, const float *x, const float *wt,
                           const float *bias, float *y) {
    const nnq_window *w = &p->w;
    /* Interior columns: inside the input for the first kernel column (the
     * leftmost reads) and the last (the rightmost reads). */
    int64_t ilo, ihi, lo_last, hi_first;
    nnq_window_out_range(w, 2, 0, &ilo, &hi_first);
    nnq_window_out_range(w, 2, w->kernel[2] - 1, &lo_last, &ihi);
    if (ihi < ilo) ihi = ilo;
    const int64_t taps = w->kernel[1] * w->kernel[2];
    const int64_t planes = p->n * p->m;
    NNQ_PARALLEL_FOR(p->threads, pl, planes, {
        int64_t n = pl / p->m, m = pl % p->m;
        int64_t c = m / p->mg; /* group m / mg holds input channel c */
        depthwise_plane(w, x + (n * p->c + c) * p->in_size, wt + m * taps,
                        bias ? bias[m] : 0.0f, ilo, ihi, y + pl * p->out_size);
        act_apply(&p->act, y + pl * p->out_size, p->out_size);
    });
}

/* Phase planes of one input plane x (H x W) into buf (geometry gm). Only
 * the positions that hold input are written: the padding around them is
 * the same for every plane of a conv, so each thread zeroes its buffer
 * once per conv (dw_zero) and planes overwrite just their inputs. */
static void dw_zero(const nnq_window *w, const dw_geom *gm, float *buf) {
    memset(buf, 0, sizeof(float) * (size_t)(w->stride[1] * w->stride[2] * gm->phase));
}

/* d[q] = s[q * sw] for q < n, eight at a time (stride 2: deinterleaved
 * with a shuffle, reading no further than s[2 * (n - 1)]). */
static inline void dw_copy_row(float *d, const float *s, int64_t n, int64_t sw) {
    int64_t q = 0;
    if (sw == 1) {
        for (; q + DW_BLOCK <= n; q += DW_BLOCK) {
            v8sf v;
            memcpy(&v, s + q, sizeof v);
            memcpy(d + q, &v, sizeof v);
        }
    } else if (sw == 2) {
        for (; q + DW_BLOCK <= n; q += DW_BLOCK) {
            v8sf a, b; /* s[2q .. 2q+7] and s[2q+7 .. 2q+14] */
            memcpy(&a, s + 2 * q, sizeof a);
            memcpy(&b, s + 2 * q + 7, sizeof b);
            v8sf v = __builtin_shufflevector(a, b, 0, 2, 4, 6, 9, 11, 13, 15);
            memcpy(d + q, &v, sizeof v);
        }
    }
    for (; q < n; q++) d[q] = s[q * sw];
}

__attribute__((target_clones("avx2", "default")))
static void dw_fill(const nnq_window *w, const dw_geom *gm, const float *x, float *buf) {
    const int64_t H = w->in[1], W = w->in[2], sh = w->stride[1], sw = w->stride[2];
    const int64_t pt = w->pad_begin[1], pl = w->pad_begin[2], ld = gm->ld;
    for (int64_t ph = 0; ph < sh; ph++)
        for (int64_t pw = 0; pw < sw; pw++) {
            float *d = buf + (ph * sw + pw) * gm->phase;
            /* columns q in [qlo, qhi) read input column q*sw + pw - pl */
            int64_t num_lo = pl - pw, num_hi = W + pl - pw;
            int64_t qlo = num_lo <= 0 ? 0 : (num_lo + sw - 1) / sw;
            int64_t qhi = num_hi <= 0 ? 0 : (num_hi + sw - 1) / sw;
            if (qhi > ld) qhi = ld;
            if (qlo > qhi) qlo = qhi;
            /* rows r with 0 <= r*sh + ph - pt < H */
            int64_t rlo = pt - ph <= 0 ? 0 : (pt - ph + sh - 1) / sh;
            int64_t rhi = H + pt - ph <= 0 ? 0 : (H + pt - ph + sh - 1) / sh;
            if (rhi > gm->rows) rhi = gm->rows;
            for (int64_t r = rlo; r < rhi; r++) {
                float *dr = d + r * ld;
                const float *xr = x + (r * sh + ph - pt) * W + pw - pl;
                dw_copy_row(dr + qlo, xr + qlo * sw, qhi - qlo, sw);
            }
        }
}

/* Strided tap item: output channels [m0, m0 + mchunk) of image n, group g
 * (item = (n * group + g) * chunks + chunk). buf holds the group's input
 * phase planes (padding zeroed once per conv), then the output grid. */
static void stap_item(const conv_plan *p, const dw_geom *gm, const int64_t *offs, const float *x,
                      const float *wt, const float *bias, float *y, int64_t item, float *buf) {
    const nnq_window *w = &p->w;
    const int64_t chunks = (p->mg + p->stap_mchunk - 1) / p->stap_mchunk;
    const int64_t task = item / chunks, m0 = item % chunks * p->stap_mchunk;
    const int64_t n = task / p->group, g = task % p->group;
    const int64_t mc = p->mg - m0 < p->stap_mchunk ? p->mg - m0 : p->stap_mchunk;
    const int64_t cstride = stap_cstride(w), cols = w->out[1] * gm->ld;
    const int64_t OH = w->out[1], OW = w->out[2];
    float *yb = buf + stap_input_floats(p);
    for (int64_t c = 0; c < p->cg; c++)
        dw_fill(w, gm, x + (n * p->c + g * p->cg + c) * p->in_size, buf + c * cstride);
    nnq_tap_gemm((int)mc, cols, (int)p->cg, (int)p->taps, wt + (g * p->mg + m0) * p->rows,
                 p->rows, buf, cstride, offs, yb, cols, false);
    for (int64_t j = 0; j < mc; j++) {
        const int64_t m = g * p->mg + m0 + j;
        const float b = bias ? bias[m] : 0.0f;
        float *ym = y + (n * p->m + m) * p->out_size;
        rows_bias_act(ym, OW, yb + j * cols, gm->ld, OH, OW, &b, 0, &p->act);
    }
}

/* grid[i] = bias + sum over taps t of k[t] * buf[off[t] + i], for i <
 * grid (a whole number of vectors), two vectors at a time where it can.
 * TAPS is a constant where the caller passes one (3x3 kernels unroll). */
static inline void dw_grid(const float *buf, const int64_t *off, const float *k, int64_t TAPS,
                           float bias, int64_t grid, float *out) {
    int64_t i = 0;
    for (; i + 2 * DW_BLOCK <= grid; i += 2 * DW_BLOCK) {
        v8sf a0 = {bias, bias, bias, bias, bias, bias, bias, bias}, a1 = a0;
        for (int64_t t = 0; t < TAPS; t++) {
            v8sf v0, v1;
            memcpy(&v0, buf + off[t] + i, sizeof v0);
            memcpy(&v1, buf + off[t] + i + DW_BLOCK, sizeof v1);
            a0 += k[t] * v0;
            a1 += k[t] * v1;
        }
        memcpy(out + i, &a0, sizeof a0);
        memcpy(out + i + DW_BLOCK, &a1, sizeof a1);
    }
    for (; i < grid; i += DW_BLOCK) {
        v8sf a0 = {bias, bias, bias, bias, bias, bias, bias, bias};
        for (int64_t t = 0; t < TAPS; t++) {
            v8sf v0;
            memcpy(&v0, buf + off[t] + i, sizeof v0);
            a0 += k[t] * v0;
        }
        memcpy(out + i, &a0, sizeof a0);
    }
}

/* Input plane c of image n: its mg output planes (output channels c*mg +
 * j) through the phase planes in buf. */
__attribute__((target_clones("avx2", "default")))
static void dw_planes_item(const conv_plan *p, const dw_geom *gmp, const int64_t *offs,
                           const float *x, const float *wt, const float *bias, float *y,
                           int64_t n, int64_t c, float *buf) {
    const nnq_window *w = &p->w;
    const dw_geom gm = *gmp;
    const int64_t taps = w->kernel[1] * w->kernel[2];
    const int64_t OH = w->out[1], OW = w->out[2];
    float *grid = buf + w->stride[1] * w->stride[2] * gm.phase;
    dw_fill(w, &gm, x + (n * p->c + c) * p->in_size, buf);
    for (int64_t j = 0; j < p->mg; j++) {
        const int64_t m = c * p->mg + j;
        const float *k = wt + m * taps;
        const float b = bias ? bias[m] : 0.0f;
        if (taps == 9) dw_grid(buf, offs, k, 9, b, gm.grid, grid);
        else dw_grid(buf, offs, k, taps, b, gm.grid, grid);
        float *ym = y + (n * p->m + m) * p->out_size;
        const float lo = p->act.lo, hi = p->act.hi;
        for (int64_t oh = 0; oh < OH; oh++) {
            float *yr = ym + oh * OW;
            const float *gr = grid + oh * gm.ld;
            /* the fused activation while the row is in registers */
            if (p->act.kind == CONV_ACT_CLIP) {
                #pragma omp simd
                for (int64_t o = 0; o < OW; o++) {
                    float v = gr[o] < lo ? lo : gr[o];
                    yr[o] = v > hi ? hi : v;
                }
            } else if (p->act.kind == CONV_ACT_RELU) {
                #pragma omp simd
                for (int64_t o = 0; o < OW; o++) yr[o] = gr[o] > 0.0f ? gr[o] : 0.0f;
            } else {
                #pragma omp simd
                for (int64_t o = 0; o < OW; o++) yr[o] = gr[o];
            }
        }
    }
}

static nnq_status conv_forward(const nnq_op_args *a) {
    conv_plan p;
    NNQ_TRY(conv_make_plan(a, &p));
    /* An empty output (a zero batch, channel or spatial dim): nothing to
     * compute, and no column buffer to compute it in. */
    if (nnq_tensor_numel(a->out[0]) == 0) return NNQ_OK;
    const float *x = nnq_f32(a->in[0]), *wt = nnq_f32(a->in[1]);
    const float *bias = a->n_in > 2 && a->in[2] ? nnq_f32(a->in[2]) : NULL;
    float *y = nnq_f32(a->out[0]);

    if (p.depthwise && !p.dw_planes) {
        conv_depthwise(&p, x, wt, bias, y);
        return NNQ_OK;
    }
    /* The executor sized scratch with the same plan; fewer buffers than
     * threads (a smaller scratch) only lowers the parallelism. */
    size_t col_bytes = p.col_floats * sizeof(float);
    int nt = p.threads;
    if (p.n * p.m * p.out_size * p.rows < FORWARD_PARALLEL_MIN_WORK) nt = 1;
    if (p.dw_planes && (!a->scratch || a->scratch_bytes < col_bytes)) {
        /* no scratch from this caller: the direct kernels need none */
        conv_depthwise(&p, x, wt, bias, y);
        return NNQ_OK;
    }
    if (col_bytes) {
        size_t buffers = a->scratch ? a->scratch_bytes / col_bytes : 0;
        if (buffers < 1)
            return nnq_op_fail(a, NNQ_ERR_INVALID, "scratch of %zu bytes, need %zu",
                               a->scratch_bytes, col_bytes);
        if (buffers < (size_t)nt) nt = (int)buffers;
    }
    if (p.dw_planes) {
        const nnq_window *w = &p.w;
        const dw_geom gm = dw_geometry(w);
        const int64_t KH = w->kernel[1], KW = w->kernel[2], sh = w->stride[1], sw = w->stride[2];
        int64_t offs[TAP_MAX]; /* taps <= TAP_MAX: dw_planes_eligible */
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t rh = kh * w->dilation[1], rw = kw * w->dilation[2];
                offs[kh * KW + kw] =
                    ((rh % sh) * sw + rw % sw) * gm.phase + (rh / sh) * gm.ld + rw / sw;
            }
        int64_t planes = p.n * p.c;
        if (planes < nt) nt = planes > 0 ? (int)planes : 1;
        NNQ_PARALLEL(nt, tid, nth, {
            float *buf = (float *)a->scratch + (size_t)tid * p.col_floats;
            dw_zero(w, &gm, buf);
            int64_t lo, hi;
            nnq_static_share(planes, tid, nth, &lo, &hi);
            for (int64_t pl = lo; pl < hi; pl++)
                dw_planes_item(&p, &gm, offs, x, wt, bias, y, pl / p.c, pl % p.c, buf);
        });
        return NNQ_OK;
    }
    if (p.stap) {
        const nnq_window *w = &p.w;
        const dw_geom gm = dw_geometry(w);
        const int64_t KH = w->kernel[1], KW = w->kernel[2], sh = w->stride[1], sw = w->stride[2];
        int64_t offs[TAP_MAX]; /* taps <= TAP_MAX: stap_eligible */
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t rh = kh * w->dilation[1], rw = kw * w->dilation[2];
                offs[kh * KW + kw] =
                    ((rh % sh) * sw + rw % sw) * gm.phase + (rh / sh) * gm.ld + rw / sw;
            }
        if (p.stap_items < nt) nt = p.stap_items > 0 ? (int)p.stap_items : 1;
        const size_t zero = (size_t)stap_input_floats(&p);
        NNQ_PARALLEL(nt, tid, nth, {
            float *buf = (float *)a->scratch + (size_t)tid * p.col_floats;
            memset(buf, 0, sizeof(float) * zero);
            int64_t lo, hi;
            nnq_static_share(p.stap_items, tid, nth, &lo, &hi);
            for (int64_t item = lo; item < hi; item++)
                stap_item(&p, &gm, offs, x, wt, bias, y, item, buf);
        });
        return NNQ_OK;
    }
    NNQ_PARALLEL(nt, tid, nth, {
        float *col = col_bytes ? (float *)a->scratch + (size_t)tid * p.col_floats : NULL;
        int64_t lo, hi;
        nnq_static_share(p.items, tid, nth, &lo, &hi);
        for (int64_t item = lo; item < hi; item++) {
            if (p.tap) conv_tap_item(&p, x, wt, bias, y, item, col);
            else conv_item(&p, x, wt, bias, y, item, col);
        }
    });
    return NNQ_OK;
}

/* ---- Backward ----
 * dY (N, M, O1..Ok) gives
 *   dX (N, C, D1..Dk) += col2im(W_g^T dY_g)      per image and group g,
 *   dW (M, C/group, K1..Kk) += dY_g im2col(X_g)^T,
 *   dB (M) += dY summed over N and space.
 * Every sum runs in a fixed order for a given thread count. */

/* Row r of a column matrix for output lines [l0, l1), added back into the
 * input positions im2col_row read it from (its transpose). */
static void col2im_row(float *x, const nnq_window *w, int64_t r, int64_t l0, int64_t l1,
                       const float *src) {
    const int64_t KD = w->kernel[0], KH = w->kernel[1], KW = w->kernel[2];
    const int64_t H = w->in[1], W = w->in[2];
    const int64_t OH = w->out[1], OW = w->out[2];
    int64_t kw = r % KW, t = r / KW;
    int64_t kh = t % KH;
    t /= KH;
    int64_t kd = t % KD, c = t / KD;
    float *xc = x + c * w->in[0] * H * W;
    int64_t dlo, dhi, hlo, hhi, lo, hi;
    nnq_window_out_range(w, 0, kd, &dlo, &dhi);
    nnq_window_out_range(w, 1, kh, &hlo, &hhi);
    nnq_window_out_range(w, 2, kw, &lo, &hi);
    const int64_t sw = w->stride[2];
    const int64_t wofs = kw * w->dilation[2] - w->pad_begin[2];

    int64_t od = l0 / OH, oh = l0 % OH;
    for (int64_t l = l0; l < l1; l++, src += OW) {
        if (od >= dlo && od < dhi && oh >= hlo && oh < hhi) {
            int64_t id = od * w->stride[0] - w->pad_begin[0] + kd * w->dilation[0];
            int64_t ih = oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1];
            float *xr = xc + (id * H + ih) * W + wofs;
            if (sw == 1) {
                #pragma omp simd
                for (int64_t o = lo; o < hi; o++) xr[o] += src[o];
            } else {
                for (int64_t o = lo; o < hi; o++) xr[o * sw] += src[o];
            }
        }
        if (++oh == OH) {
            oh = 0;
            od++;
        }
    }
}

typedef struct conv_grads {
    const float *x, *wt, *dy; /* X, W, dY */
    float *dx;                /* dX, NULL when not needed */
} conv_grads;

/* Image n, group g (item = n * group + g): dw (M, rows), NULL when not
 * needed, gets dY_g col^T; dX gets col2im(W_g^T dY_g). `col` holds one
 * chunk's column matrix; SGEMMs run on sgemm_threads. */
static void conv_bwd_item(const conv_plan *p, const conv_bwd_plan *b, const conv_grads *g,
                          float *dw, int64_t item, float *col, int sgemm_threads) {
    const int64_t n = item / p->group, grp = item % p->group, ow = p->w.out[2];
    const int mg = (int)p->mg, rows = (int)p->rows, ldy = (int)p->out_size, ldx = (int)p->in_size;
    const float *xg = g->x + (n * p->c + grp * p->cg) * p->in_size;
    float *dxg = g->dx ? g->dx + (n * p->c + grp * p->cg) * p->in_size : NULL;
    const float *dyg = g->dy + (n * p->m + grp * p->mg) * p->out_size;
    const float *wg = g->wt + grp * p->mg * p->rows;
    float *dwg = dw ? dw + grp * p->mg * p->rows : NULL;
    for (int64_t l0 = 0; l0 < p->lines; l0 += b->chunk_lines) {
        int64_t l1 = l0 + b->chunk_lines < p->lines ? l0 + b->chunk_lines : p->lines;
        int64_t off = l0 * ow;
        int cols = (int)((l1 - l0) * ow);
        const float *dyc = dyg + off;
        if (dwg) {
            /* dW_g (mg x rows) += dY_g (mg x cols) * col^T (cols x rows) */
            const float *bm = xg + off; /* direct: X is its own column matrix */
            int ldb = ldx;
            if (!p->direct) {
                for (int64_t r = 0; r < p->rows; r++)
                    im2col_row(xg, &p->w, r, l0, l1, col + r * cols);
                bm = col;
                ldb = cols;
            }
            nnq_sgemm(false, true, mg, rows, cols, 1.0f, dyc, ldy, bm, ldb, 1.0f, dwg, rows,
                      sgemm_threads);
        }
        if (dxg) {
            /* dcol (rows x cols) = W_g^T (rows x mg) * dY_g (mg x cols) */
            if (p->direct) {
                nnq_sgemm(true, false, rows, cols, mg, 1.0f, wg, rows, dyc, ldy, 1.0f, dxg + off,
                          ldx, sgemm_threads);
            } else {
                nnq_sgemm(true, false, rows, cols, mg, 1.0f, wg, rows, dyc, ldy, 0.0f, col, cols,
                          sgemm_threads);
                for (int64_t r = 0; r < p->rows; r++)
                    col2im_row(dxg, &p->w, r, l0, l1, col + r * cols);
            }
        }
    }
}

/* Tap-path backward of the images of block blk in group g (item = blk *
 * group + g): dw (M, rows; NULL when not needed) += dY_g x shifted input
 * taps; dX += correlation of the padded dY with wflip, the kernel
 * transposed and flipped per group: wflip[g][c][m * taps + t] =
 * W[g*mg + m][c][taps-1-t]. */
static void conv_bwd_tap_item(const conv_plan *p, const conv_bwd_plan *b, const conv_grads *g,
                              const float *wflip, float *dw, int64_t item, float *buf) {
    const nnq_window *w = &p->w;
    const int64_t blk = item / p->group, grp = item % p->group;
    const int64_t n0 = blk * b->imgs, nb = p->n - n0 < b->imgs ? p->n - n0 : b->imgs;
    const int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2];
    const float *xg = g->x + (n0 * p->c + grp * p->cg) * p->in_size;
    const float *dyg = g->dy + (n0 * p->m + grp * p->mg) * p->out_size;
    tap_bwd_geom t;
    tap_bwd_geometry(p, nb, &t);
    int64_t off[TAP_MAX];
    if (dw) {
        const tap_row *L = &t.lx;
        const tap_row Ly = {0, L->seg, L->ld}; /* dY where its outputs sit */
        const int64_t cstride = p->hp * L->ld, cols = OH * L->ld;
        float *xb = buf, *dyb = buf + tap_round(p->cg * cstride + p->slack);
        tap_fill(xg, p->c * p->in_size, nb, p->cg, p->in_size, H, W, w->pad_begin[1], 0, p->hp, L,
                 cstride, xb);
        memset(xb + p->cg * cstride, 0, sizeof(float) * (size_t)p->slack);
        tap_fill(dyg, p->m * p->out_size, nb, p->mg, p->out_size, OH, OW, 0, 0, OH, &Ly, t.dy_cols,
                 dyb);
        for (int64_t m = 0; m < p->mg; m++)
            memset(dyb + m * t.dy_cols + cols, 0, sizeof(float) * (size_t)(t.dy_cols - cols));
        tap_offsets(w, L->ld, off);
        nnq_tap_gemm_grad((int)p->mg, cols, (int)p->cg, (int)p->taps, dyb, t.dy_cols, xb, cstride,
                          off, dw + grp * p->mg * p->rows, p->rows);
    }
    if (g->dx) {
        const tap_row *L = &t.ldy;
        const int64_t cstride = t.hp2 * L->ld, cols = H * L->ld;
        float *dyp = buf, *dxb = buf + tap_round(p->mg * cstride + p->slack);
        tap_fill(dyg, p->m * p->out_size, nb, p->mg, p->out_size, OH, OW, t.top, 0, t.hp2, L,
                 cstride, dyp);
        memset(dyp + p->mg * cstride, 0, sizeof(float) * (size_t)p->slack);
        tap_offsets(w, L->ld, off);
        nnq_tap_gemm((int)p->cg, cols, (int)p->mg, (int)p->taps,
                     wflip + grp * p->cg * p->mg * p->taps, p->mg * p->taps, dyp, cstride, off,
                     dxb, cols, false);
        for (int64_t i = 0; i < nb; i++) {
            float *dxg = g->dx + ((n0 + i) * p->c + grp * p->cg) * p->in_size;
            for (int64_t c = 0; c < p->cg; c++)
                for (int64_t ih = 0; ih < H; ih++) {
                    float *d = dxg + c * p->in_size + ih * W;
                    const float *s = dxb + c * cols + ih * L->ld + i * L->seg;
                    #pragma omp simd
                    for (int64_t iw = 0; iw < W; iw++) d[iw] += s[iw];
                }
        }
    }
}

/* wflip[g][c][m * taps + t] = W[g*mg + m][c][taps - 1 - t]. */
static void tap_flip_weights(const conv_plan *p, const float *wt, float *wflip) {
    const int64_t taps = p->taps;
    for (int64_t g = 0; g < p->group; g++)
        for (int64_t c = 0; c < p->cg; c++)
            for (int64_t m = 0; m < p->mg; m++) {
                const float *src = wt + ((g * p->mg + m) * p->cg + c) * taps;
                float *dst = wflip + ((g * p->cg + c) * p->mg + m) * taps;
                for (int64_t t = 0; t < taps; t++) dst[t] = src[taps - 1 - t];
            }
}

/* dB[m] += dY[:, m] summed over images and space; channels split over
 * threads, each summed in image order. */
static void conv_bwd_bias(const conv_plan *p, const float *dy, float *db) {
    const int64_t size = p->out_size;
    NNQ_PARALLEL_FOR(p->max_threads, m, p->m, {
        double acc = 0;
        for (int64_t n = 0; n < p->n; n++) {
            const float *d = dy + (n * p->m + m) * size;
            float s = 0;
            _Pragma("omp simd reduction(+ : s)")
            for (int64_t i = 0; i < size; i++) s += d[i];
            acc += s;
        }
        db[m] += (float)acc;
    });
}

/* One depthwise plane (image n, output channel m reading input channel
 * c): dx (c's plane, NULL if not needed) += every tap of k times dY, and
 * dk (m's taps, NULL if not needed) += dY . X shifted by the tap. Walks
 * output rows, then kernel taps, so each inner loop is one unit-stride
 * (or strided) pass over a row. */
static void depthwise_bwd_plane(const nnq_window *w, const float *x, const float *k,
                                const float *dy, float *dx, float *dk) {
    const int64_t W = w->in[2], OW = w->out[2], KW = w->kernel[2], sw = w->stride[2];
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        const float *dyr = dy + oh * OW;
        int64_t khlo, khhi;
        nnq_window_taps(w, 1, oh, &khlo, &khhi);
        for (int64_t kh = khlo; kh < khhi; kh++) {
            int64_t ih = oh * w->stride[1] - w->pad_begin[1] + kh * w->dilation[1];
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t lo, hi;
                nnq_window_out_range(w, 2, kw, &lo, &hi);
                int64_t off = ih * W + kw * w->dilation[2] - w->pad_begin[2];
                const float *xr = x + off;
                if (dk) {
                    float s = 0;
                    if (sw == 1) {
                        #pragma omp simd reduction(+ : s)
                        for (int64_t o = lo; o < hi; o++) s += dyr[o] * xr[o];
                    } else {
                        for (int64_t o = lo; o < hi; o++) s += dyr[o] * xr[o * sw];
                    }
                    dk[kh * KW + kw] += s;
                }
                if (dx) {
                    float kv = k[kh * KW + kw], *dxr = dx + off;
                    if (sw == 1) {
                        #pragma omp simd
                        for (int64_t o = lo; o < hi; o++) dxr[o] += kv * dyr[o];
                    } else {
                        for (int64_t o = lo; o < hi; o++) dxr[o * sw] += kv * dyr[o];
                    }
                }
            }
        }
    }
}

/* Depthwise backward split by input channel: a thread owns channel c's
 * dX planes and the dW rows of its output channels, so nothing is shared
 * and no partial sums are needed. */
static void conv_bwd_depthwise(const conv_plan *p, const conv_grads *g, float *dw) {
    const int64_t taps = p->w.kernel[1] * p->w.kernel[2];
    NNQ_PARALLEL_FOR(p->max_threads, c, p->c, {
        for (int64_t j = 0; j < p->mg; j++) {
            int64_t m = c * p->mg + j;
            for (int64_t n = 0; n < p->n; n++)
                depthwise_bwd_plane(&p->w, g->x + (n * p->c + c) * p->in_size, g->wt + m * taps,
                                    g->dy + (n * p->m + m) * p->out_size,
                                    g->dx ? g->dx + (n * p->c + c) * p->in_size : NULL,
                                    dw ? dw + m * taps : NULL);
        }
    });
}

static nnq_status conv_backward(const nnq_op_args *a) {
    conv_plan p;
    conv_bwd_plan b;
    float *dx, *dw, *db, *owned = NULL;
    NNQ_TRY(conv_make_plan(a, &p));
    const nnq_tensor *dyt = a->out_grad ? a->out_grad[0] : NULL;
    if (!dyt) return NNQ_OK; /* Y does not reach the loss */
    if (nnq_tensor_numel(dyt) != nnq_tensor_numel(a->out[0]))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "gradient of Y does not match Y");
    NNQ_TRY(nnq_op_in_grad(a, 0, &dx));
    NNQ_TRY(nnq_op_in_grad(a, 1, &dw));
    NNQ_TRY(nnq_op_in_grad(a, 2, &db));
    conv_grads g = {.x = nnq_f32(a->in[0]), .wt = nnq_f32(a->in[1]), .dy = nnq_f32(dyt), .dx = dx};

    if (db) conv_bwd_bias(&p, g.dy, db);
    if (!dx && !dw) return NNQ_OK;
    if (p.depthwise) {
        conv_bwd_depthwise(&p, &g, dw);
        return NNQ_OK;
    }
    conv_bwd_make_plan(&p, &b);
    size_t need = conv_bwd_floats(&p, &b) * sizeof(float);
    float *work = a->scratch && a->scratch_bytes >= need ? a->scratch : NULL;
    if (need && !work) { /* the caller sized scratch for inference only */
        owned = aligned_alloc(64, (need + 63) / 64 * 64);
        if (!owned) return nnq_op_fail(a, NNQ_ERR_NOMEM, "out of memory (%zu bytes)", need);
        work = owned;
    }
    /* Layout: per-thread buffers, dW partials, flipped kernel (tap path). */
    float *parts = work + (size_t)b.threads * b.col_floats;
    float *wflip = parts + (size_t)(b.threads - 1) * b.dw_floats;
    if (p.tap && dx) tap_flip_weights(&p, g.wt, wflip);
    if (b.threads == 1) {
        for (int64_t item = 0; item < b.items; item++) {
            if (p.tap) conv_bwd_tap_item(&p, &b, &g, wflip, dw, item, work);
            else conv_bwd_item(&p, &b, &g, dw, item, work, p.max_threads);
        }
        free(owned);
        return NNQ_OK;
    }
    /* Thread 0 sums into dW itself, thread t > 0 into partial t - 1. */
    if (dw) memset(parts, 0, sizeof(float) * b.dw_floats * (size_t)(b.threads - 1));
    NNQ_PARALLEL(b.threads, t, nt, {
        float *mine = !dw ? NULL : t == 0 ? dw : parts + (size_t)(t - 1) * b.dw_floats;
        float *col = work + (size_t)t * b.col_floats;
        for (int64_t item = b.items * t / nt; item < b.items * (t + 1) / nt; item++) {
            if (p.tap) conv_bwd_tap_item(&p, &b, &g, wflip, mine, item, col);
            else conv_bwd_item(&p, &b, &g, mine, item, col, 1);
        }
    });
    if (dw) {
        const int64_t len = (int64_t)b.dw_floats;
        NNQ_PARALLEL_FOR(b.threads, j, len, {
            float s = dw[j];
            for (int t = 1; t < b.threads; t++) s += parts[(size_t)(t - 1) * b.dw_floats + j];
            dw[j] = s;
        });
    }
    free(owned);
    return NNQ_OK;
}

const nnq_op_def nnq_op_Conv = {
    .op_type = "Conv",
    .min_inputs = 2, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = conv_infer,
    .scratch_size = conv_scratch,
    .forward = conv_forward,
    .backward = conv_backward,
};
