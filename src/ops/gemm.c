/* Gemm and MatMul on OpenBLAS, forward and backward, plus the shared
 * nnq_sgemm wrapper. */
#include "ops/gemm.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "core/parallel.h"
#include "ops/op.h"

void nnq_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc, int threads) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++) {
            float *row = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) row[j] = beta == 0 ? 0 : beta * row[j];
        }
        return;
    }
    /* The OpenMP build of OpenBLAS sizes its team from omp_get_max_threads()
     * and runs single-threaded inside a parallel region, so only the
     * outside case needs adjusting. */
    if (!omp_in_parallel() && threads >= 1 && omp_get_max_threads() != threads)
        openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- Tap GEMMs (see gemm.h) ----
 * Register-tiled kernels written once with GCC vector extensions
 * (DEFINE_TAP_KERNELS) and compiled three times, the ISA in the name:
 * 16-float vectors for AVX-512, 8-float vectors for AVX2+FMA, and 8-float
 * vectors for the baseline ISA (as SSE pairs); run-time dispatch picks the
 * widest the CPU has. The forward tile keeps MB rows x NV vectors of y in
 * registers and broadcasts one weight per row and tap; the gradient tile
 * keeps GMB rows of dy x GKB shifted x rows of dot products in vector
 * form, summed across lanes at the end. */

typedef float v8sf __attribute__((vector_size(8 * sizeof(float))));
typedef float v16sf __attribute__((vector_size(16 * sizeof(float))));

#define TAP_MB_MAX 8 /* bounds of the tile arrays below */
#define TAP_NV_MAX 2
#define GRAD_MB_MAX 4
#define GRAD_KB_MAX 4

/* Sum of a vector's lanes in a fixed order (pairwise), any width. */
#define LANE_SUM(v, VW, out)                                                                 \
    do {                                                                                     \
        float lanes_[VW];                                                                    \
        memcpy(lanes_, &(v), sizeof lanes_);                                                 \
        for (int w_ = VW / 2; w_ >= 1; w_ /= 2)                                              \
            for (int l_ = 0; l_ < w_; l_++) lanes_[l_] += lanes_[l_ + w_];                   \
        (out) = lanes_[0];                                                                   \
    } while (0)

#define DEFINE_TAP_KERNELS(SFX, TARGET, VT, VW, MB_, NV_, GMB_, GKB_)                        \
    /* Rows [0, MB) x columns [0, NV*VW) of y, from x shifted by j already. */               \
    static inline __attribute__((always_inline)) void tap_tile_##SFX(                        \
        const int MB, const float *a, int64_t lda, const float *x, int64_t plane,            \
        const int64_t *off, int taps, int chans, float *y, int64_t ldy, int64_t cols,        \
        bool accumulate) {                                                                   \
        VT acc[TAP_MB_MAX][TAP_NV_MAX];                                                      \
        _Pragma("GCC unroll 8") for (int i = 0; i < MB; i++)                                 \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV_; v++) acc[i][v] = (VT){0};       \
        for (int c = 0; c < chans; c++) {                                                    \
            const float *xc = x + c * plane, *ac = a + c * taps;                             \
            for (int t = 0; t < taps; t++) {                                                 \
                VT xv[TAP_NV_MAX];                                                           \
                _Pragma("GCC unroll 2") for (int v = 0; v < NV_; v++)                        \
                    memcpy(&xv[v], xc + off[t] + v * VW, sizeof xv[v]);                      \
                _Pragma("GCC unroll 8") for (int i = 0; i < MB; i++) {                       \
                    float w = ac[i * lda + t];                                               \
                    _Pragma("GCC unroll 2") for (int v = 0; v < NV_; v++)                    \
                        acc[i][v] += w * xv[v];                                              \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        _Pragma("GCC unroll 8") for (int i = 0; i < MB; i++) {                               \
            float *yr = y + i * ldy, out[TAP_NV_MAX * VW];                                   \
            memcpy(out, acc[i], sizeof(VT) * NV_);                                           \
            if (accumulate)                                                                  \
                for (int64_t j = 0; j < cols; j++) yr[j] += out[j];                          \
            else                                                                             \
                memcpy(yr, out, sizeof(float) * (size_t)cols);                               \
        }                                                                                    \
    }                                                                                        \
    /* One row of y, 4 vectors wide: a lone row (depthwise convs) would    \
     * otherwise wait on the latency of 2 accumulator chains. */                              \
    static inline __attribute__((always_inline)) void tap_row_##SFX(                         \
        const float *a, const float *x, int64_t plane, const int64_t *off, int taps,         \
        int chans, float *y, int64_t cols, bool accumulate) {                                \
        VT acc[4] = {{0}, {0}, {0}, {0}};                                                    \
        for (int c = 0; c < chans; c++) {                                                    \
            const float *xc = x + c * plane, *ac = a + c * taps;                             \
            for (int t = 0; t < taps; t++) {                                                 \
                float w = ac[t];                                                             \
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                        \
                    VT xv;                                                                   \
                    memcpy(&xv, xc + off[t] + v * VW, sizeof xv);                            \
                    acc[v] += w * xv;                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        float out[4 * VW];                                                                   \
        memcpy(out, acc, sizeof acc);                                                        \
        if (accumulate)                                                                      \
            for (int64_t j = 0; j < cols; j++) y[j] += out[j];                               \
        else                                                                                 \
            memcpy(y, out, sizeof(float) * (size_t)cols);                                    \
    }                                                                                        \
    /* dw[i, k] for MB rows of dy and KB rows of x (pointers xk), j < n_pad. */              \
    static inline __attribute__((always_inline)) void tap_grad_tile_##SFX(                   \
        const int MB, const int KB, const float *dy, int64_t lddy, const float *const *xk,   \
        int64_t n_pad, float *dw, int64_t lddw) {                                            \
        VT acc[GRAD_MB_MAX][GRAD_KB_MAX];                                                    \
        _Pragma("GCC unroll 4") for (int i = 0; i < MB; i++)                                 \
            _Pragma("GCC unroll 4") for (int k = 0; k < KB; k++) acc[i][k] = (VT){0};        \
        for (int64_t j = 0; j < n_pad; j += VW) {                                            \
            VT d[GRAD_MB_MAX];                                                               \
            _Pragma("GCC unroll 4") for (int i = 0; i < MB; i++)                             \
                memcpy(&d[i], dy + i * lddy + j, sizeof d[i]);                               \
            _Pragma("GCC unroll 4") for (int k = 0; k < KB; k++) {                           \
                VT xv;                                                                       \
                memcpy(&xv, xk[k] + j, sizeof xv);                                           \
                _Pragma("GCC unroll 4") for (int i = 0; i < MB; i++) acc[i][k] += d[i] * xv; \
            }                                                                                \
        }                                                                                    \
        _Pragma("GCC unroll 4") for (int i = 0; i < MB; i++)                                 \
            _Pragma("GCC unroll 4") for (int k = 0; k < KB; k++) {                           \
                float s_;                                                                    \
                LANE_SUM(acc[i][k], VW, s_);                                                 \
                dw[i * lddw + k] += s_;                                                      \
            }                                                                                \
    }                                                                                        \
    TARGET static void tap_gemm_##SFX(int m, int64_t n, int chans, int taps, const float *a, \
                                      int64_t lda, const float *x, int64_t plane,            \
                                      const int64_t *off, float *y, int64_t ldy, bool acc) { \
        const int64_t step = NV_ * VW;                                                       \
        if (m == 1) {                                                                        \
            for (int64_t j = 0; j < n; j += 4 * VW)                                          \
                tap_row_##SFX(a, x + j, plane, off, taps, chans, y + j,                      \
                              n - j < 4 * VW ? n - j : 4 * VW, acc);                         \
            return;                                                                          \
        }                                                                                    \
        for (int i0 = 0; i0 < m; i0 += MB_) {                                                \
            int mb = m - i0 < MB_ ? m - i0 : MB_;                                            \
            const float *ai = a + i0 * lda;                                                  \
            float *yi = y + i0 * ldy;                                                        \
            for (int64_t j = 0; j < n; j += step) {                                          \
                int64_t cols = n - j < step ? n - j : step;                                  \
                const float *xj = x + j;                                                     \
                float *yj = yi + j;                                                          \
                switch (mb) { /* constant tile heights: registers, not memory */             \
                case 8: tap_tile_##SFX(8, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 7: tap_tile_##SFX(7, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 6: tap_tile_##SFX(6, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 5: tap_tile_##SFX(5, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 4: tap_tile_##SFX(4, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 3: tap_tile_##SFX(3, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                case 2: tap_tile_##SFX(2, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                default: tap_tile_##SFX(1, ai, lda, xj, plane, off, taps, chans, yj, ldy, cols, acc); break; \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    TARGET static void tap_gemm_grad_##SFX(int m, int64_t n, int chans, int taps,            \
                                           const float *dy, int64_t lddy, const float *x,    \
                                           int64_t plane, const int64_t *off, float *dw,     \
                                           int64_t lddw) {                                   \
        const int64_t n_pad = (n + VW - 1) / VW * VW;                                        \
        const int kk = chans * taps;                                                         \
        for (int i0 = 0; i0 < m; i0 += GMB_) {                                               \
            int mb = m - i0 < GMB_ ? m - i0 : GMB_;                                          \
            const float *dyi = dy + i0 * lddy;                                               \
            for (int k0 = 0; k0 < kk; k0 += GKB_) {                                          \
                int kb = kk - k0 < GKB_ ? kk - k0 : GKB_;                                    \
                const float *xk[GRAD_KB_MAX];                                                \
                for (int k = 0; k < kb; k++)                                                 \
                    xk[k] = x + ((k0 + k) / taps) * plane + off[(k0 + k) % taps];            \
                float *d = dw + i0 * lddw + k0;                                              \
                switch (mb * 8 + kb) {                                                       \
                case 4 * 8 + 4: tap_grad_tile_##SFX(4, 4, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 4 * 8 + 3: tap_grad_tile_##SFX(4, 3, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 4 * 8 + 2: tap_grad_tile_##SFX(4, 2, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 4 * 8 + 1: tap_grad_tile_##SFX(4, 1, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 3 * 8 + 4: tap_grad_tile_##SFX(3, 4, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 3 * 8 + 3: tap_grad_tile_##SFX(3, 3, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 3 * 8 + 2: tap_grad_tile_##SFX(3, 2, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 3 * 8 + 1: tap_grad_tile_##SFX(3, 1, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 2 * 8 + 4: tap_grad_tile_##SFX(2, 4, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 2 * 8 + 3: tap_grad_tile_##SFX(2, 3, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 2 * 8 + 2: tap_grad_tile_##SFX(2, 2, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 2 * 8 + 1: tap_grad_tile_##SFX(2, 1, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 1 * 8 + 4: tap_grad_tile_##SFX(1, 4, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 1 * 8 + 3: tap_grad_tile_##SFX(1, 3, dyi, lddy, xk, n_pad, d, lddw); break; \
                case 1 * 8 + 2: tap_grad_tile_##SFX(1, 2, dyi, lddy, xk, n_pad, d, lddw); break; \
                default: tap_grad_tile_##SFX(1, 1, dyi, lddy, xk, n_pad, d, lddw); break;   \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* fp-contract: ISO C mode (-std=c11) leaves a * b + c unfused unless told. */
DEFINE_TAP_KERNELS(avx512, __attribute__((target("avx512f"), optimize("fp-contract=fast"))),
                   v16sf, 16, 8, 2, 4, 4)
DEFINE_TAP_KERNELS(avx2fma, __attribute__((target("avx2,fma"), optimize("fp-contract=fast"))),
                   v8sf, 8, 6, 2, 4, 3)
DEFINE_TAP_KERNELS(generic, , v8sf, 8, 6, 2, 4, 3)

typedef enum tap_isa { TAP_UNKNOWN, TAP_GENERIC, TAP_AVX2FMA, TAP_AVX512 } tap_isa;

static tap_isa tap_isa_limit = TAP_AVX512; /* lowered by tests only */

static tap_isa tap_cpu_best(void) {
    static tap_isa isa = TAP_UNKNOWN; /* benign race: every thread finds the same value */
    if (isa == TAP_UNKNOWN) {
        __builtin_cpu_init();
        isa = __builtin_cpu_supports("avx512f")                                          ? TAP_AVX512
              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? TAP_AVX2FMA
                                                                                   : TAP_GENERIC;
    }
    return isa;
}

static tap_isa tap_cpu(void) {
    tap_isa best = tap_cpu_best();
    return best < tap_isa_limit ? best : tap_isa_limit;
}

bool nnq_tap_limit_isa(const char *isa) {
    tap_isa want = strcmp(isa, "avx512") == 0    ? TAP_AVX512
                   : strcmp(isa, "avx2") == 0    ? TAP_AVX2FMA
                   : strcmp(isa, "generic") == 0 ? TAP_GENERIC
                                                 : TAP_UNKNOWN;
    if (want == TAP_UNKNOWN || want > tap_cpu_best()) return false;
    tap_isa_limit = want;
    return true;
}

void nnq_tap_gemm(int m, int64_t n, int chans, int taps, const float *a, int64_t lda,
                  const float *x, int64_t plane, const int64_t *off, float *y, int64_t ldy,
                  bool accumulate) {
    switch (tap_cpu()) {
    case TAP_AVX512: tap_gemm_avx512(m, n, chans, taps, a, lda, x, plane, off, y, ldy, accumulate); break;
    case TAP_AVX2FMA: tap_gemm_avx2fma(m, n, chans, taps, a, lda, x, plane, off, y, ldy, accumulate); break;
    default: tap_gemm_generic(m, n, chans, taps, a, lda, x, plane, off, y, ldy, accumulate); break;
    }
}

void nnq_tap_gemm_grad(int m, int64_t n, int chans, int taps, const float *dy, int64_t lddy,
                       const float *x, int64_t plane, const int64_t *off, float *dw,
                       int64_t lddw) {
    switch (tap_cpu()) {
    case TAP_AVX512: tap_gemm_grad_avx512(m, n, chans, taps, dy, lddy, x, plane, off, dw, lddw); break;
    case TAP_AVX2FMA: tap_gemm_grad_avx2fma(m, n, chans, taps, dy, lddy, x, plane, off, dw, lddw); break;
    default: tap_gemm_grad_generic(m, n, chans, taps, dy, lddy, x, plane, off, dw, lddw); break;
    }
}

bool nnq_blas_dims_fit(int count, const int64_t *dims) {
    for (int i = 0; i < count; i++)
        if (dims[i] < 0 || dims[i] > INT_MAX) return false;
    return true;
}

static int op_threads(const nnq_op_args *a) { return a->threads > 0 ? a->threads : 1; }

static nnq_status require_float(const nnq_op_args *a, int i, const char *what) {
    if (a->in[i]->dtype != NNQ_DT_FLOAT)
        return nnq_op_fail(a, NNQ_ERR_UNSUPPORTED, "input %s has dtype %s; only float32 is supported",
                           what, nnq_dtype_name(a->in[i]->dtype));
    return NNQ_OK;
}

/* Two dims are compatible if equal, one is 1, or one is unknown (-1). */
static bool dims_agree(int64_t x, int64_t y) { return x < 0 || y < 0 || x == y; }

/* ---- Gemm: Y[M,N] = alpha * A' * B' + beta * C ---- */

typedef struct gemm_shape {
    bool ta, tb;
    int64_t m, n, k;
} gemm_shape;

static nnq_status gemm_shape_of(const nnq_op_args *a, gemm_shape *g) {
    const nnq_tensor *A = a->in[0], *B = a->in[1];
    char sa[64], sb[64];
    NNQ_TRY(require_float(a, 0, "A"));
    NNQ_TRY(require_float(a, 1, "B"));
    if (A->rank != 2 || B->rank != 2)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "A (%s) and B (%s) must be 2-D",
                           nnq_shape_str(A, sa, sizeof sa), nnq_shape_str(B, sb, sizeof sb));
    g->ta = nnq_node_attr_int(a->node, "transA", 0) != 0;
    g->tb = nnq_node_attr_int(a->node, "transB", 0) != 0;
    g->m = g->ta ? A->dims[1] : A->dims[0];
    g->k = g->ta ? A->dims[0] : A->dims[1];
    g->n = g->tb ? B->dims[0] : B->dims[1];
    int64_t kb = g->tb ? B->dims[1] : B->dims[0];
    if (!dims_agree(g->k, kb))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "inner dims differ: A is %s (transA=%d), B is %s (transB=%d)",
                           nnq_shape_str(A, sa, sizeof sa), g->ta, nnq_shape_str(B, sb, sizeof sb),
                           g->tb);
    if (g->k < 0) g->k = kb;
    return NNQ_OK;
}

static nnq_status gemm_infer(const nnq_op_args *a) {
    gemm_shape g;
    NNQ_TRY(gemm_shape_of(a, &g));
    const nnq_tensor *C = a->n_in > 2 ? a->in[2] : NULL;
    if (C) {
        char sc[64];
        NNQ_TRY(require_float(a, 2, "C"));
        bool ok = C->rank <= 2;
        /* C broadcasts one way to (M, N): aligned from the right, each dim
         * equal to the target or 1. */
        if (ok && C->rank >= 1) {
            int64_t cn = C->dims[C->rank - 1];
            ok = cn == 1 || dims_agree(cn, g.n);
        }
        if (ok && C->rank == 2) ok = C->dims[0] == 1 || dims_agree(C->dims[0], g.m);
        if (!ok)
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "C (%s) does not broadcast to %lldx%lld",
                               nnq_shape_str(C, sc, sizeof sc), (long long)g.m, (long long)g.n);
    }
    int64_t dims[2] = {g.m, g.n};
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, 2, dims);
}

static nnq_status gemm_forward(const nnq_op_args *a) {
    gemm_shape g;
    NNQ_TRY(gemm_shape_of(a, &g));
    const nnq_tensor *A = a->in[0], *B = a->in[1];
    const nnq_tensor *C = a->n_in > 2 ? a->in[2] : NULL;
    float alpha = nnq_node_attr_float(a->node, "alpha", 1.0f);
    float beta = nnq_node_attr_float(a->node, "beta", 1.0f);
    float *y = nnq_f32(a->out[0]);
    int64_t check[5] = {g.m, g.n, g.k, A->dims[1], B->dims[1]};
    if (!nnq_blas_dims_fit(5, check))
        return nnq_op_fail(a, NNQ_ERR_LIMIT, "matrix dims exceed BLAS's int range");

    float beta_run = 0;
    if (C && beta != 0) {
        /* Element (i, j) of the broadcast C is c[i * rs + j * cs]. */
        const float *c = nnq_f32(C);
        int64_t rs = 0, cs = 0;
        if (C->rank >= 1) cs = C->dims[C->rank - 1] == 1 ? 0 : 1;
        if (C->rank == 2) rs = C->dims[0] == 1 ? 0 : C->dims[1];
        for (int64_t i = 0; i < g.m; i++)
            for (int64_t j = 0; j < g.n; j++) y[i * g.n + j] = beta * c[i * rs + j * cs];
        beta_run = 1;
    }
    nnq_sgemm(g.ta, g.tb, (int)g.m, (int)g.n, (int)g.k, alpha, nnq_f32(A), (int)A->dims[1],
              nnq_f32(B), (int)B->dims[1], beta_run, y, (int)g.n, op_threads(a));
    return NNQ_OK;
}

/* dY (M, N) gives, with A' = op(A) (M, K) and B' = op(B) (K, N):
 *   dA' += alpha * dY B'^T, dB' += alpha * A'^T dY, stored transposed
 *   where A or B is; dC += beta * dY summed over C's broadcast dims. */
static nnq_status gemm_backward(const nnq_op_args *a) {
    gemm_shape g;
    float *da, *db, *dc;
    NNQ_TRY(gemm_shape_of(a, &g));
    const nnq_tensor *dyt = a->out_grad ? a->out_grad[0] : NULL;
    if (!dyt) return NNQ_OK;
    NNQ_TRY(nnq_op_in_grad(a, 0, &da));
    NNQ_TRY(nnq_op_in_grad(a, 1, &db));
    NNQ_TRY(nnq_op_in_grad(a, 2, &dc));
    const nnq_tensor *A = a->in[0], *B = a->in[1], *C = a->n_in > 2 ? a->in[2] : NULL;
    float alpha = nnq_node_attr_float(a->node, "alpha", 1.0f);
    float beta = nnq_node_attr_float(a->node, "beta", 1.0f);
    const float *dy = nnq_f32(dyt), *av = nnq_f32(A), *bv = nnq_f32(B);
    const int m = (int)g.m, n = (int)g.n, k = (int)g.k;
    const int lda = (int)A->dims[1], ldb = (int)B->dims[1];
    int threads = op_threads(a);

    if (da) {
        if (!g.ta) /* dA (M, K) = dY B'^T */
            nnq_sgemm(false, !g.tb, m, k, n, alpha, dy, n, bv, ldb, 1.0f, da, lda, threads);
        else /* dA (K, M) = B' dY^T */
            nnq_sgemm(g.tb, true, k, m, n, alpha, bv, ldb, dy, n, 1.0f, da, lda, threads);
    }
    if (db) {
        if (!g.tb) /* dB (K, N) = A'^T dY */
            nnq_sgemm(!g.ta, false, k, n, m, alpha, av, lda, dy, n, 1.0f, db, ldb, threads);
        else /* dB (N, K) = dY^T A' */
            nnq_sgemm(true, g.ta, n, k, m, alpha, dy, n, av, lda, 1.0f, db, ldb, threads);
    }
    if (dc && C && beta != 0) {
        /* Element (i, j) of the broadcast C is c[i * rs + j * cs], as in
         * forward; summed row by row in double, in a fixed order. */
        int64_t rs = 0, cs = 0, nc = nnq_tensor_numel(C);
        if (C->rank >= 1) cs = C->dims[C->rank - 1] == 1 ? 0 : 1;
        if (C->rank == 2) rs = C->dims[0] == 1 ? 0 : C->dims[1];
        if (rs == 0 && cs == 1) { /* a bias row (N): column sums */
            for (int64_t j = 0; j < g.n; j++) {
                double acc = 0;
                for (int64_t i = 0; i < g.m; i++) acc += dy[i * g.n + j];
                dc[j] += beta * (float)acc;
            }
        } else if (rs == 0 && cs == 0) {
            double acc = 0;
            for (int64_t i = 0; i < g.m * g.n; i++) acc += dy[i];
            for (int64_t i = 0; i < nc; i++) dc[i] += beta * (float)acc;
        } else if (cs == 0) { /* a column (M, 1): row sums */
            for (int64_t i = 0; i < g.m; i++) {
                double acc = 0;
                for (int64_t j = 0; j < g.n; j++) acc += dy[i * g.n + j];
                dc[i * rs] += beta * (float)acc;
            }
        } else {
            for (int64_t i = 0; i < g.m * g.n; i++) dc[i] += beta * dy[i];
        }
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_Gemm = {
    .op_type = "Gemm",
    .min_inputs = 2, .max_inputs = 3,
    .min_outputs = 1, .max_outputs = 1,
    .infer = gemm_infer,
    .forward = gemm_forward,
    .backward = gemm_backward,
};

/* ---- MatMul: numpy semantics ---- */

/* A 1-D A is a row (1, K) and a 1-D B a column (K, 1); the promoted dim is
 * dropped from the output. The batch dims (all but the last two) broadcast. */
typedef struct matmul_shape {
    int64_t m, n, k;
    int batch_rank;
    int64_t batch[NNQ_MAX_RANK];    /* output batch dims */
    int64_t a_step[NNQ_MAX_RANK];   /* element step of A per batch dim; 0 if broadcast */
    int64_t b_step[NNQ_MAX_RANK];
    int out_rank;
    int64_t out[NNQ_MAX_RANK];
} matmul_shape;

static nnq_status matmul_shape_of(const nnq_op_args *a, matmul_shape *s) {
    const nnq_tensor *A = a->in[0], *B = a->in[1];
    char sa[64], sb[64];
    NNQ_TRY(require_float(a, 0, "A"));
    NNQ_TRY(require_float(a, 1, "B"));
    if (A->rank < 1 || B->rank < 1)
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "inputs must have rank >= 1 (A is %s, B is %s)",
                           nnq_shape_str(A, sa, sizeof sa), nnq_shape_str(B, sb, sizeof sb));
    int ra = A->rank, rb = B->rank;
    s->m = ra >= 2 ? A->dims[ra - 2] : 1;
    s->k = A->dims[ra - 1];
    int64_t kb = rb >= 2 ? B->dims[rb - 2] : B->dims[0];
    s->n = rb >= 2 ? B->dims[rb - 1] : 1;
    if (!dims_agree(s->k, kb))
        return nnq_op_fail(a, NNQ_ERR_SHAPE, "inner dims differ: A is %s, B is %s",
                           nnq_shape_str(A, sa, sizeof sa), nnq_shape_str(B, sb, sizeof sb));
    if (s->k < 0) s->k = kb;

    int ba = ra > 2 ? ra - 2 : 0, bb = rb > 2 ? rb - 2 : 0;
    s->batch_rank = ba > bb ? ba : bb;
    int64_t astride = s->m * s->k, bstride = s->k * s->n;
    for (int i = s->batch_rank - 1; i >= 0; i--) {
        int ia = i - (s->batch_rank - ba), ib = i - (s->batch_rank - bb);
        int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
        if (da >= 0 && db >= 0 && da != db && da != 1 && db != 1)
            return nnq_op_fail(a, NNQ_ERR_SHAPE, "batch dims do not broadcast: A is %s, B is %s",
                               nnq_shape_str(A, sa, sizeof sa), nnq_shape_str(B, sb, sizeof sb));
        int64_t d = da == 1 ? db : db == 1 ? da : (da < 0 ? db : da);
        s->batch[i] = d;
        s->a_step[i] = da == 1 ? 0 : astride;
        s->b_step[i] = db == 1 ? 0 : bstride;
        astride *= da;
        bstride *= db;
    }
    s->out_rank = 0;
    for (int i = 0; i < s->batch_rank; i++) s->out[s->out_rank++] = s->batch[i];
    if (ra >= 2) s->out[s->out_rank++] = s->m;
    if (rb >= 2) s->out[s->out_rank++] = s->n;
    return NNQ_OK;
}

static nnq_status matmul_infer(const nnq_op_args *a) {
    matmul_shape s;
    NNQ_TRY(matmul_shape_of(a, &s));
    return nnq_tensor_set_shape(a->out[0], NNQ_DT_FLOAT, s.out_rank, s.out);
}

static nnq_status matmul_forward(const nnq_op_args *a) {
    matmul_shape s;
    NNQ_TRY(matmul_shape_of(a, &s));
    const float *A = nnq_f32(a->in[0]), *B = nnq_f32(a->in[1]);
    float *y = nnq_f32(a->out[0]);
    int threads = op_threads(a);
    int64_t nb = nnq_shape_numel(s.batch_rank, s.batch);
    /* B identical for every batch entry: then A's batch (never broadcast,
     * as the output batch is A's own) is contiguous. */
    bool b_shared = true;
    for (int i = 0; i < s.batch_rank; i++) b_shared = b_shared && s.b_step[i] == 0;

    if (b_shared) {
        /* The whole product is one (nb*M, K) x (K, N) GEMM. */
        int64_t check[3] = {nb * s.m, s.n, s.k};
        if (!nnq_blas_dims_fit(3, check))
            return nnq_op_fail(a, NNQ_ERR_LIMIT, "matrix dims exceed BLAS's int range");
        nnq_sgemm(false, false, (int)(nb * s.m), (int)s.n, (int)s.k, 1.0f, A, (int)s.k, B,
                  (int)s.n, 0.0f, y, (int)s.n, threads);
        return NNQ_OK;
    }
    int64_t check[3] = {s.m, s.n, s.k};
    if (!nnq_blas_dims_fit(3, check))
        return nnq_op_fail(a, NNQ_ERR_LIMIT, "matrix dims exceed BLAS's int range");
    /* Many small products: one per thread, each on one core. */
    int nt = nb >= threads ? threads : 1;
    NNQ_PARALLEL_FOR(nt, b, nb, {
        int64_t rem = b, ao = 0, bo = 0;
        for (int i = s.batch_rank - 1; i >= 0; i--) {
            int64_t idx = rem % s.batch[i];
            rem /= s.batch[i];
            ao += idx * s.a_step[i];
            bo += idx * s.b_step[i];
        }
        nnq_sgemm(false, false, (int)s.m, (int)s.n, (int)s.k, 1.0f, A + ao, (int)s.k, B + bo,
                  (int)s.n, 0.0f, y + b * s.m * s.n, (int)s.n, threads);
    });
    return NNQ_OK;
}

/* dY (batch..., M, N) gives dA[b] += dY[b] B[b]^T and dB[b] += A[b]^T dY[b],
 * where broadcast batch entries of A or B collect the sum over every
 * output batch entry that read them (1-D operands as in forward). */
static nnq_status matmul_backward(const nnq_op_args *a) {
    matmul_shape s;
    float *da, *db;
    NNQ_TRY(matmul_shape_of(a, &s));
    const nnq_tensor *dyt = a->out_grad ? a->out_grad[0] : NULL;
    if (!dyt) return NNQ_OK;
    NNQ_TRY(nnq_op_in_grad(a, 0, &da));
    NNQ_TRY(nnq_op_in_grad(a, 1, &db));
    if (!da && !db) return NNQ_OK;
    const float *A = nnq_f32(a->in[0]), *B = nnq_f32(a->in[1]), *dy = nnq_f32(dyt);
    const int m = (int)s.m, n = (int)s.n, k = (int)s.k;
    int threads = op_threads(a);
    int64_t nb = nnq_shape_numel(s.batch_rank, s.batch);
    bool b_shared = true;
    for (int i = 0; i < s.batch_rank; i++) b_shared = b_shared && s.b_step[i] == 0;

    if (b_shared) {
        /* One (nb*M, K) x (K, N) product, as in forward. */
        int rows = (int)(nb * s.m);
        if (da) nnq_sgemm(false, true, rows, k, n, 1.0f, dy, n, B, n, 1.0f, da, k, threads);
        if (db) nnq_sgemm(true, false, k, n, rows, 1.0f, A, k, dy, n, 1.0f, db, n, threads);
        return NNQ_OK;
    }
    /* Batch entries in order: several may add into one broadcast slice,
     * so they run one after another (each SGEMM on all threads). */
    for (int64_t b = 0; b < nb; b++) {
        int64_t rem = b, ao = 0, bo = 0;
        for (int i = s.batch_rank - 1; i >= 0; i--) {
            int64_t idx = rem % s.batch[i];
            rem /= s.batch[i];
            ao += idx * s.a_step[i];
            bo += idx * s.b_step[i];
        }
        const float *dyb = dy + b * s.m * s.n;
        if (da) nnq_sgemm(false, true, m, k, n, 1.0f, dyb, n, B + bo, n, 1.0f, da + ao, k, threads);
        if (db) nnq_sgemm(true, false, k, n, m, 1.0f, A + ao, k, dyb, n, 1.0f, db + bo, n, threads);
    }
    return NNQ_OK;
}

const nnq_op_def nnq_op_MatMul = {
    .op_type = "MatMul",
    .min_inputs = 2, .max_inputs = 2,
    .min_outputs = 1, .max_outputs = 1,
    .infer = matmul_infer,
    .forward = matmul_forward,
    .backward = matmul_backward,
};
