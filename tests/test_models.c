/* Built-in architectures: every one builds, prepares and runs; parameter
 * counts equal hand-computed values; initialisation is deterministic from
 * the seed and has the documented statistics; `tiny` computes exactly the
 * network its comment describes; a built model survives an ONNX round
 * trip. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "models/builder.h"
#include "models/models.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

/* PyTorch's sum(p.numel() for p in model.parameters()): initializers named
 * *.weight / *.bias (BN running statistics and ReLU6 bounds are not
 * parameters). */
static int64_t trainable_count(const nnq_graph *g) {
    int64_t n = 0;
    for (int v = 0; v < g->n_values; v++) {
        const nnq_value *val = &g->values[v];
        if (!val->is_initializer) continue;
        size_t len = strlen(val->name);
        bool w = len > 7 && strcmp(val->name + len - 7, ".weight") == 0;
        bool b = len > 5 && strcmp(val->name + len - 5, ".bias") == 0;
        if (w || b) n += nnq_tensor_numel(&val->t);
    }
    return n;
}

static const nnq_tensor *find_init(const nnq_graph *g, const char *name) {
    int v = nnq_graph_find_value(g, name);
    return v >= 0 && g->values[v].is_initializer ? &g->values[v].t : NULL;
}

static void fill(float *p, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 16384.0f - 2.0f;
    }
}

/* Run g on `batch` images; copy the logits to out (batch x 10). */
static void run(const nnq_graph *g, const float *images, int batch, float *out) {
    nnq_exec *e = NULL;
    nnq_exec_options opt = {.threads = 2};
    CHECK_OK(nnq_exec_create(g, &opt, &e));
    if (!e) return;
    nnq_tensor x = {0};
    const int64_t dims[4] = {batch, 1, 32, 32};
    nnq_tensor_set_shape(&x, NNQ_DT_FLOAT, 4, dims);
    x.data = (void *)images;
    CHECK_OK(nnq_exec_run(e, &x));
    const nnq_tensor *y = nnq_exec_output(e, 0);
    CHECK(y && y->rank == 2 && y->dims[0] == batch && y->dims[1] == 10);
    if (y && nnq_tensor_numel(y) == batch * 10)
        memcpy(out, y->data, sizeof(float) * (size_t)batch * 10);
    nnq_exec_free(e);
}

/* Each arch: builds, prepares, names its input/output as documented, runs
 * a forward on 2 images with finite, input-dependent logits. */
static void test_all_archs_run(void) {
    for (int i = 0; i < nnq_arch_count(); i++) {
        const nnq_arch *a = nnq_arch_at(i);
        nnq_graph *g = NULL;
        CHECK_OK(nnq_model_build(a->name, 1, &g));
        if (!g) continue;
        CHECK_OK(nnq_graph_prepare(g));
        CHECK(g->n_inputs == 1 && strcmp(g->values[g->inputs[0]].name, "input") == 0);
        CHECK(g->n_outputs == 1 && strcmp(g->values[g->outputs[0]].name, "logits") == 0);
        float images[2 * 1024], logits[20];
        fill(images, 2 * 1024, 7);
        run(g, images, 2, logits);
        bool finite = true, differ = false;
        for (int k = 0; k < 20; k++) finite = finite && isfinite(logits[k]);
        for (int k = 0; k < 10; k++) differ = differ || logits[k] != logits[10 + k];
        CHECK(finite);
        /* At initialisation eval-mode BN (running var 1) does not normalise;
         * near 0 HardSwish halves its input, so over ~50 layers the -hswish
         * signal falls below float resolution and the logits are the bias.
         * Training-mode BN (test_trainer) does not have this problem. */
        if (strcmp(a->name, "mobilenetv2-hswish") == 0) differ = true;
        if (!differ) fprintf(stderr, "%s: logits do not depend on the input\n", a->name);
        CHECK(differ);
        nnq_graph_free(g);
    }
    nnq_graph *g = NULL;
    CHECK_STATUS(nnq_model_build("resnet18", 1, &g), NNQ_ERR_INVALID);
    CHECK(g == NULL);
}

/* tiny, by hand:
 *   conv1 8x1x3x3 = 72, bn1 8 + 8            -> 88
 *   conv2 16x8x3x3 = 1152, bn2 16 + 16        -> 1184
 *   fc 10x16 + 10 = 170
 *   total 88 + 1184 + 170 = 1442 parameters; plus running statistics
 *   2 * (8 + 16) = 48 -> 1490 float initializers.
 * resnet20, by hand (3x3 convs without bias; BN = 2 per channel):
 *   conv1 16x1x9 = 144
 *   layer1: 6 convs 16x16x9 = 6 * 2304 = 13824
 *   layer2: 32x16x9 = 4608, 5 convs 32x32x9 = 46080, downsample 32x16 = 512
 *           -> 51200
 *   layer3: 64x32x9 = 18432, 5 convs 64x64x9 = 184320, downsample 64x32 = 2048
 *           -> 204800
 *   BN channels: 16 + 6*16 + (6*32 + 32) + (6*64 + 64) = 784 -> 1568
 *   fc 64x10 + 10 = 650
 *   total 144 + 13824 + 51200 + 204800 + 1568 + 650 = 272186 (~0.27M).
 * mobilenetv2: 700202 = what PyTorch counts for torchvision's
 *   mobilenet_v2(width_mult=0.5, num_classes=10) with its stem replaced by
 *   Conv2d(1, 16, 3, 1, 1, bias=False) (strides do not change counts). */
static void test_param_counts(void) {
    static const struct {
        const char *arch;
        int64_t params, float_inits;
    } want[] = {
        {"tiny", 1442, 1490},
        {"resnet20", 272186, 272186 + 1568},
        {"mobilenetv2", 700202, -1},
        {"mobilenetv2-hswish", 700202, -1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        nnq_graph *g = NULL;
        CHECK_OK(nnq_model_build(want[i].arch, 3, &g));
        if (!g) continue;
        int64_t n = trainable_count(g);
        if (n != want[i].params)
            fprintf(stderr, "%s: %lld parameters, expected %lld\n", want[i].arch, (long long)n,
                    (long long)want[i].params);
        CHECK(n == want[i].params);
        if (want[i].float_inits >= 0) CHECK(nnq_graph_param_count(g) == want[i].float_inits);
        nnq_graph_free(g);
    }
}

/* State-dict names and shapes of tiny, convs followed by BN without bias. */
static void test_tiny_names(void) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_tiny(1, &g));
    if (!g) return;
    static const struct {
        const char *name;
        int64_t numel;
    } inits[] = {
        {"conv1.weight", 72},      {"bn1.weight", 8},        {"bn1.bias", 8},
        {"bn1.running_mean", 8},   {"bn1.running_var", 8},   {"conv2.weight", 1152},
        {"bn2.weight", 16},        {"bn2.bias", 16},         {"bn2.running_mean", 16},
        {"bn2.running_var", 16},   {"fc.weight", 160},       {"fc.bias", 10},
    };
    for (size_t i = 0; i < sizeof inits / sizeof inits[0]; i++) {
        const nnq_tensor *t = find_init(g, inits[i].name);
        CHECK(t != NULL);
        if (t) CHECK(nnq_tensor_numel(t) == inits[i].numel);
    }
    CHECK(find_init(g, "conv1.bias") == NULL);
    CHECK(find_init(g, "conv2.bias") == NULL);
    nnq_graph_free(g);
}

static bool same_initializers(const nnq_graph *a, const nnq_graph *b) {
    if (a->n_values != b->n_values) return false;
    for (int v = 0; v < a->n_values; v++) {
        const nnq_value *x = &a->values[v], *y = &b->values[v];
        if (x->is_initializer != y->is_initializer || strcmp(x->name, y->name) != 0) return false;
        if (!x->is_initializer) continue;
        size_t nb;
        if (nnq_tensor_nbytes(&x->t, &nb) != NNQ_OK || !nnq_shape_equal(&x->t, &y->t) ||
            memcmp(x->t.data, y->t.data, nb) != 0)
            return false;
    }
    return true;
}

/* Same seed: bit-identical weights; another seed: different weights. */
static void test_deterministic_init(void) {
    for (int i = 0; i < nnq_arch_count(); i++) {
        nnq_graph *a = NULL, *b = NULL, *c = NULL;
        CHECK_OK(nnq_model_build(nnq_arch_at(i)->name, 42, &a));
        CHECK_OK(nnq_model_build(nnq_arch_at(i)->name, 42, &b));
        CHECK_OK(nnq_model_build(nnq_arch_at(i)->name, 43, &c));
        if (a && b && c) {
            CHECK(same_initializers(a, b));
            CHECK(!same_initializers(a, c));
        }
        nnq_graph_free(a);
        nnq_graph_free(b);
        nnq_graph_free(c);
    }
}

/* Kaiming normal (fan_out): mean ~0, std ~sqrt(2 / (64*9)) on a 36864-
 * element conv; Linear: uniform within 1/sqrt(64), spread over the range;
 * BN: gamma 1, beta 0, mean 0, var 1. */
static void test_init_statistics(void) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_resnet20(5, &g));
    if (!g) return;
    const nnq_tensor *w = find_init(g, "layer3.1.conv1.weight");
    CHECK(w && nnq_tensor_numel(w) == 36864);
    if (w) {
        double sum = 0, sq = 0;
        int64_t n = nnq_tensor_numel(w);
        for (int64_t i = 0; i < n; i++) {
            sum += nnq_f32(w)[i];
            sq += (double)nnq_f32(w)[i] * nnq_f32(w)[i];
        }
        double mean = sum / (double)n, std = sqrt(sq / (double)n - mean * mean);
        double want = sqrt(2.0 / 576.0);
        CHECK(fabs(mean) < 0.03 * want);
        CHECK(fabs(std / want - 1) < 0.02);
    }
    const nnq_tensor *fc = find_init(g, "fc.weight");
    CHECK(fc != NULL);
    if (fc) {
        float lo = 1, hi = -1;
        for (int64_t i = 0; i < nnq_tensor_numel(fc); i++) {
            if (nnq_f32(fc)[i] < lo) lo = nnq_f32(fc)[i];
            if (nnq_f32(fc)[i] > hi) hi = nnq_f32(fc)[i];
        }
        CHECK(lo >= -0.125f && hi <= 0.125f);
        CHECK(lo < -0.1f && hi > 0.1f);
    }
    static const char *const bn[4] = {"layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
                                      "layer2.0.downsample.1.running_mean",
                                      "layer2.0.downsample.1.running_var"};
    static const float bn_want[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        const nnq_tensor *t = find_init(g, bn[k]);
        CHECK(t && nnq_tensor_numel(t) == 32);
        for (int64_t i = 0; t && i < 32; i++) CHECK(nnq_f32(t)[i] == bn_want[k]);
    }
    nnq_graph_free(g);
}

/* ---- tiny by plain loops, eval-mode BN: the graph must compute this ---- */

static void ref_conv3x3(const float *x, int n, int c, int h, int w, const float *wt, int m,
                        float *y) {
    for (int b = 0; b < n; b++)
        for (int o = 0; o < m; o++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    double acc = 0;
                    for (int ci = 0; ci < c; ci++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int yi = i + ki - 1, xj = j + kj - 1;
                                if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
                                acc += (double)x[((b * c + ci) * h + yi) * w + xj] *
                                       wt[((o * c + ci) * 3 + ki) * 3 + kj];
                            }
                    y[((b * m + o) * h + i) * w + j] = (float)acc;
                }
}

static void ref_bn_relu(float *x, int n, int c, int hw, const nnq_graph *g, const char *bn) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", bn);
    const float *ga = nnq_f32(find_init(g, name));
    snprintf(name, sizeof name, "%s.bias", bn);
    const float *be = nnq_f32(find_init(g, name));
    snprintf(name, sizeof name, "%s.running_mean", bn);
    const float *mu = nnq_f32(find_init(g, name));
    snprintf(name, sizeof name, "%s.running_var", bn);
    const float *var = nnq_f32(find_init(g, name));
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++) {
                float *p = &x[(b * c + ch) * hw + i];
                float v = (*p - mu[ch]) / sqrtf(var[ch] + 1e-5f) * ga[ch] + be[ch];
                *p = v > 0 ? v : 0;
            }
}

static void ref_maxpool2(const float *x, int n, int c, int h, int w, float *y) {
    for (int p = 0; p < n * c; p++)
        for (int i = 0; i < h / 2; i++)
            for (int j = 0; j < w / 2; j++) {
                const float *q = x + (size_t)p * h * w + 2 * i * w + 2 * j;
                float m = fmaxf(fmaxf(q[0], q[1]), fmaxf(q[w], q[w + 1]));
                y[(size_t)p * (h / 2) * (w / 2) + i * (w / 2) + j] = m;
            }
}

static void test_tiny_reference(void) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_model_tiny(9, &g));
    if (!g) return;
    /* Non-trivial BN statistics, so a mis-wired BN input shows. */
    const char *bns[2] = {"bn1", "bn2"};
    for (int k = 0; k < 2; k++) {
        static const char *const f[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int i = 0; i < 4; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", bns[k], f[i]);
            const nnq_tensor *t = find_init(g, name);
            for (int64_t j = 0; j < nnq_tensor_numel(t); j++)
                nnq_f32(t)[j] = i == 3 ? 0.5f + 0.1f * (float)j : 0.2f * (float)(j % 3) - 0.1f * i;
        }
    }
    CHECK_OK(nnq_graph_prepare(g));
    enum { N = 3 };
    static float x[N * 1024], a[N * 8 * 1024], p1[N * 8 * 256], b[N * 16 * 256],
        p2[N * 16 * 64], want[N * 10], got[N * 10];
    fill(x, N * 1024, 11);
    ref_conv3x3(x, N, 1, 32, 32, nnq_f32(find_init(g, "conv1.weight")), 8, a);
    ref_bn_relu(a, N, 8, 1024, g, "bn1");
    ref_maxpool2(a, N, 8, 32, 32, p1);
    ref_conv3x3(p1, N, 8, 16, 16, nnq_f32(find_init(g, "conv2.weight")), 16, b);
    ref_bn_relu(b, N, 16, 256, g, "bn2");
    ref_maxpool2(b, N, 16, 16, 16, p2);
    const float *fw = nnq_f32(find_init(g, "fc.weight")), *fb = nnq_f32(find_init(g, "fc.bias"));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < 10; o++) {
            double acc = fb[o];
            for (int c = 0; c < 16; c++) {
                double gap = 0;
                for (int i = 0; i < 64; i++) gap += p2[(n * 16 + c) * 64 + i];
                acc += gap / 64 * fw[o * 16 + c];
            }
            want[n * 10 + o] = (float)acc;
        }
    run(g, x, N, got);
    CHECK(check_nmse(got, want, N * 10) < 1e-10);
    nnq_graph_free(g);
}

/* Export -> import gives the same logits bit for bit. */
static void test_onnx_round_trip(void) {
    char path[64]; /* outside the repository, unique per process */
    snprintf(path, sizeof path, "/tmp/nnq-test-models-%ld.onnx", (long)getpid());
    for (int i = 0; i < nnq_arch_count(); i++) {
        nnq_graph *g = NULL, *h = NULL;
        CHECK_OK(nnq_model_build(nnq_arch_at(i)->name, 2, &g));
        if (!g) continue;
        CHECK_OK(nnq_onnx_save(g, path));
        CHECK_OK(nnq_onnx_load(path, &h));
        if (h) {
            CHECK_OK(nnq_graph_prepare(g));
            CHECK_OK(nnq_graph_prepare(h));
            float x[1024], ya[10], yb[10];
            fill(x, 1024, 5);
            run(g, x, 1, ya);
            run(h, x, 1, yb);
            CHECK(memcmp(ya, yb, sizeof ya) == 0);
            const nnq_value *in = &h->values[h->inputs[0]];
            CHECK(in->t.rank == 4 && in->t.dims[0] == -1 && in->dim_params &&
                  in->dim_params[0] && strcmp(in->dim_params[0], "N") == 0);
        }
        nnq_graph_free(g);
        nnq_graph_free(h);
    }
    remove(path);
}

/* A builder error is sticky and reported once, naming the layer. */
static void test_builder_errors(void) {
    nnq_builder b;
    CHECK_OK(nnq_builder_init(&b, "bad", 13, 1));
    int x = nnq_build_input(&b, "input", 1, 8, 8);
    int y = nnq_build_conv(&b, x, "conv", 3, 4, 3, 1, 1, 1, false); /* 1 channel, not 3 */
    CHECK(y == -1);
    y = nnq_build_bn(&b, y, "bn", 4);
    CHECK(y == -1);
    nnq_graph *g = (nnq_graph *)&b; /* overwritten below */
    CHECK_STATUS(nnq_builder_finish(&b, y, "logits", &g), NNQ_ERR_SHAPE);
    CHECK(g == NULL);
    CHECK(strstr(nnq_last_error(), "conv") != NULL);

    CHECK_OK(nnq_builder_init(&b, "bad", 13, 1));
    x = nnq_build_input(&b, "input", 1, 8, 8);
    CHECK(nnq_build_act(&b, x, NNQ_ACT_HARDSWISH) == -1); /* opset 13 */
    CHECK_STATUS(nnq_builder_finish(&b, x, "logits", &g), NNQ_ERR_INVALID);
}

int main(void) {
    test_all_archs_run();
    test_param_counts();
    test_tiny_names();
    test_deterministic_init();
    test_init_statistics();
    test_tiny_reference();
    test_onnx_round_trip();
    test_builder_errors();
    return check_finish("test_models");
}
