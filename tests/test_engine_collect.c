/* Reading intermediate tensors of the integer engine by name
 * (nnq_iexec_run_collect), as `nnq analyze` does per layer:
 *   - the ResNet fixture, quantized W8A8 by the simulation and exported to
 *     QDQ, lowered with no float node;
 *   - every activation's QuantizeLinear output, the graph input, a view
 *     (Flatten) and the logits, collected on INT and SIM at two batch
 *     sizes: INT == SIM byte for byte, the logits equal the executor's
 *     output, the input equals the images, the view equals its base, and
 *     the QDQ graph run by the float executor agrees (the same integers in
 *     nearly every element);
 *   - an unknown name fails naming it, leaving nothing allocated;
 *   - split runs (a batch cut into sub-batches, one thread each): with 1
 *     and 2 threads, at batches that do and do not divide evenly, and
 *     when switching between split and whole runs, every image's logits
 *     equal its batch-1 run's byte for byte, and the split happened. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/dataset.h"
#include "engine/iprog.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"
#include "quant/qdq_export.h"
#include "quant/qsim.h"

#define MAX_NAMES 64

static nnq_dataset random_images(int64_t n, uint32_t seed) {
    nnq_dataset d = {.n = n, .c = 1, .h = 32, .w = 32};
    d.images = malloc(sizeof(float) * (size_t)(n * 32 * 32));
    for (int64_t i = 0; d.images && i < n * 32 * 32; i++) {
        seed = seed * 1664525u + 1013904223u;
        d.images[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return d;
}

static nnq_graph *quantized_fixture(const nnq_dataset *calib) {
    nnq_graph *fg = NULL, *q = NULL;
    nnq_qsim *s = NULL;
    CHECK_OK(nnq_onnx_load("tests/fixtures/models/resnets.onnx", &fg));
    if (!fg) return NULL;
    CHECK_OK(nnq_graph_prepare(fg));
    nnq_qsim_options o;
    nnq_qsim_options_default(&o);
    CHECK_OK(nnq_qsim_create(fg, &o, &s));
    if (s) {
        CHECK_OK(nnq_qsim_set_weight_ranges(s, NNQ_RANGE_MINMAX));
        nnq_calib_options co;
        nnq_calib_options_default(&co);
        co.method = co.logits_method = NNQ_RANGE_MINMAX;
        co.threads = 2;
        CHECK_OK(nnq_qsim_calibrate(s, calib, &co));
        CHECK_OK(nnq_qsim_to_qdq(s, &q));
    }
    nnq_qsim_free(s);
    nnq_graph_free(fg);
    if (q) CHECK_OK(nnq_iprog_prepare_graph(q));
    return q;
}

/* The names to read: each Q -> DQ pair's integers (with the DQ output,
 * which the float executor computes), the input, a Flatten output (with
 * its input), the logits. */
typedef struct picks {
    int n;
    const char *name[MAX_NAMES];
    int float_value[MAX_NAMES]; /* value of the QDQ graph to compare with, -1: none */
    int input, flatten, flatten_base, logits;
} picks;

static void pick(const nnq_graph *q, picks *p) {
    memset(p, 0, sizeof *p);
    p->input = p->flatten = p->flatten_base = p->logits = -1;
    p->name[p->n] = q->values[q->inputs[0]].name;
    p->float_value[p->n] = -1;
    p->input = p->n++;
    for (int n = 0; n < q->n_nodes && p->n < MAX_NAMES - 3; n++) {
        const nnq_node *nd = &q->nodes[n];
        if (strcmp(nd->op_type, "DequantizeLinear") == 0) {
            const int qv = nd->inputs[0], prod = q->values[qv].producer;
            if (prod < 0 || strcmp(q->nodes[prod].op_type, "QuantizeLinear") != 0) continue;
            p->name[p->n] = q->values[qv].name;
            p->float_value[p->n++] = nd->outputs[0];
        } else if (strcmp(nd->op_type, "Flatten") == 0 && p->flatten < 0) {
            p->name[p->n] = q->values[nd->outputs[0]].name;
            p->float_value[p->n] = -1;
            p->flatten = p->n++;
            /* its input is a DQ output, which has no tensor: compare with
             * that DQ's integers instead */
            const int prod = q->values[nd->inputs[0]].producer;
            if (prod >= 0 && strcmp(q->nodes[prod].op_type, "DequantizeLinear") == 0) {
                p->name[p->n] = q->values[q->nodes[prod].inputs[0]].name;
                p->float_value[p->n] = -1;
                p->flatten_base = p->n++;
            }
        }
    }
    p->name[p->n] = q->values[q->outputs[0]].name;
    p->float_value[p->n] = -1;
    p->logits = p->n++;
}

static void release(nnq_tensor *t, int n) {
    for (int k = 0; k < n; k++) nnq_tensor_release(&t[k]);
}

static void test_collect(void) {
    nnq_dataset calib = random_images(32, 1), test = random_images(7, 2);
    nnq_graph *q = quantized_fixture(&calib);
    nnq_iprog *p = NULL;
    if (q) CHECK_OK(nnq_iprog_lower(q, &p));
    nnq_iexec *xi = NULL, *xs = NULL;
    nnq_exec *ef = NULL;
    if (p) {
        CHECK(nnq_iprog_float_nodes(p) == 0);
        CHECK_OK(nnq_iexec_create(p, NNQ_ENGINE_INT, 2, &xi));
        CHECK_OK(nnq_iexec_create(p, NNQ_ENGINE_SIM, 2, &xs));
        const nnq_exec_options eo = {.threads = 2, .keep_all = true};
        CHECK_OK(nnq_exec_create(q, &eo, &ef));
    }
    if (!xi || !xs || !ef) goto done;
    picks pk;
    pick(q, &pk);
    CHECK(pk.n > 20 && pk.flatten >= 0 && pk.flatten_base >= 0);
    for (int k = 0; k < pk.n; k++) CHECK(nnq_iprog_find_tensor(p, pk.name[k]) >= 0);
    CHECK(nnq_iprog_find_tensor(p, "no such tensor") < 0);
    for (int n = 0; n < q->n_nodes; n++)
        if (strcmp(q->nodes[n].op_type, "Conv") == 0) CHECK(!nnq_iprog_node_in_float(p, q->nodes[n].name));

    static nnq_tensor oi[MAX_NAMES], os[MAX_NAMES];
    const int64_t batches[2] = {5, 2};
    int64_t equal = 0, total = 0;
    for (int b = 0; b < 2; b++) {
        nnq_tensor x;
        nnq_dataset_batch(&test, 0, batches[b], &x);
        CHECK_OK(nnq_iexec_run_collect(xi, &x, pk.n, pk.name, oi));
        CHECK_OK(nnq_iexec_run_collect(xs, &x, pk.n, pk.name, os));
        CHECK_OK(nnq_exec_run(ef, &x));
        for (int k = 0; k < pk.n; k++) {
            const int64_t n = nnq_tensor_numel(&oi[k]);
            CHECK(oi[k].dtype == NNQ_DT_FLOAT && oi[k].data && oi[k].dims[0] == batches[b]);
            CHECK(n == nnq_tensor_numel(&os[k]) && n > 0);
            if (!oi[k].data || !os[k].data || n != nnq_tensor_numel(&os[k])) continue;
            CHECK(memcmp(oi[k].data, os[k].data, sizeof(float) * (size_t)n) == 0);
            if (pk.float_value[k] < 0) continue;
            const nnq_tensor *f = nnq_exec_value(ef, pk.float_value[k]);
            CHECK(f && nnq_tensor_numel(f) == n);
            if (!f || nnq_tensor_numel(f) != n) continue;
            for (int64_t i = 0; i < n; i++) equal += nnq_f32(f)[i] == nnq_f32(&oi[k])[i];
            total += n;
            CHECK(check_nmse(nnq_f32(&oi[k]), nnq_f32(f), (long)n) < 1e-3);
        }
        /* the logits equal the executor's output; the input the images */
        const nnq_tensor *y = nnq_iexec_output(xi, 0);
        CHECK(nnq_tensor_numel(y) == nnq_tensor_numel(&oi[pk.logits]));
        CHECK(memcmp(y->data, oi[pk.logits].data, sizeof(float) * (size_t)nnq_tensor_numel(y)) == 0);
        CHECK(memcmp(x.data, oi[pk.input].data, sizeof(float) * (size_t)nnq_tensor_numel(&x)) == 0);
        /* a view reads its base's bytes */
        CHECK(nnq_tensor_numel(&oi[pk.flatten]) == nnq_tensor_numel(&oi[pk.flatten_base]));
        CHECK(oi[pk.flatten].rank == 2);
        CHECK(memcmp(oi[pk.flatten].data, oi[pk.flatten_base].data,
                     sizeof(float) * (size_t)nnq_tensor_numel(&oi[pk.flatten])) == 0);
        release(oi, pk.n);
        release(os, pk.n);
    }
    /* The engine and the float QDQ graph: the same integers almost
     * everywhere (a tie-side step apart elsewhere). */
    CHECK(total > 0 && (double)equal >= 0.95 * (double)total);
    fprintf(stderr, "collect: %d tensors, %.3f%% of activation elements equal to the float QDQ run\n",
            pk.n, total ? 100.0 * (double)equal / (double)total : 0.0);

    /* An unknown name: nothing runs, nothing is allocated. */
    const char *bad[2] = {pk.name[1], "no such tensor"};
    nnq_tensor ob[2];
    nnq_tensor x;
    nnq_dataset_batch(&test, 0, 3, &x);
    CHECK_STATUS(nnq_iexec_run_collect(xi, &x, 2, bad, ob), NNQ_ERR_INVALID);
    CHECK(strstr(nnq_last_error(), "no such tensor") != NULL);
    CHECK(ob[0].data == NULL && ob[1].data == NULL);
done:
    nnq_exec_free(ef);
    nnq_iexec_free(xi);
    nnq_iexec_free(xs);
    nnq_iprog_free(p);
    nnq_graph_free(q);
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
}

/* Logits of images [0, n) of `test`, one image per run (never split). */
static float *single_runs(nnq_iexec *x, const nnq_dataset *test, int64_t n, int64_t *classes) {
    float *y = NULL;
    for (int64_t i = 0; i < n; i++) {
        nnq_tensor xb;
        nnq_dataset_batch(test, i, 1, &xb);
        CHECK_OK(nnq_iexec_run(x, &xb));
        CHECK(nnq_iexec_last_split(x) == 0);
        const nnq_tensor *o = nnq_iexec_output(x, 0);
        if (!y) {
            *classes = nnq_tensor_numel(o);
            y = malloc(sizeof(float) * (size_t)(n * *classes));
            if (!y) return NULL;
        }
        memcpy(y + i * *classes, o->data, sizeof(float) * (size_t)*classes);
    }
    return y;
}

static void test_split(void) {
    nnq_dataset calib = random_images(32, 3), test = random_images(21, 4);
    nnq_graph *q = quantized_fixture(&calib);
    nnq_iprog *p = NULL;
    if (q) CHECK_OK(nnq_iprog_lower(q, &p));
    nnq_iexec *x1 = NULL, *x2 = NULL;
    if (p) {
        CHECK_OK(nnq_iexec_create(p, NNQ_ENGINE_INT, 1, &x1));
        CHECK_OK(nnq_iexec_create(p, NNQ_ENGINE_INT, 2, &x2));
    }
    int64_t classes = 0;
    float *ref = x1 ? single_runs(x1, &test, test.n, &classes) : NULL;
    if (!ref || !x2) goto done;
    /* batch, threads, expected workers: 1 thread splits only past 8 images */
    const struct { int64_t b; nnq_iexec *x; int workers; } runs[] = {
        {21, x2, 2}, {3, x2, 2}, {1, x2, 0}, {21, x1, 1}, {8, x1, 0}, {21, x2, 2}, {17, x1, 1},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        nnq_tensor xb;
        nnq_dataset_batch(&test, 0, runs[r].b, &xb);
        CHECK_OK(nnq_iexec_run(runs[r].x, &xb));
        CHECK(nnq_iexec_last_split(runs[r].x) == runs[r].workers);
        const nnq_tensor *o = nnq_iexec_output(runs[r].x, 0);
        CHECK(o->dims[0] == runs[r].b && nnq_tensor_numel(o) == runs[r].b * classes);
        if (nnq_tensor_numel(o) != runs[r].b * classes) continue;
        CHECK(memcmp(o->data, ref, sizeof(float) * (size_t)(runs[r].b * classes)) == 0);
    }
    /* a collecting run is never split, and agrees */
    picks pk;
    pick(q, &pk);
    const char *name = pk.name[pk.logits];
    nnq_tensor got;
    nnq_tensor xb;
    nnq_dataset_batch(&test, 0, 21, &xb);
    CHECK_OK(nnq_iexec_run_collect(x2, &xb, 1, &name, &got));
    CHECK(nnq_iexec_last_split(x2) == 0);
    CHECK(memcmp(nnq_iexec_output(x2, 0)->data, ref, sizeof(float) * (size_t)(21 * classes)) == 0);
    CHECK(nnq_tensor_numel(&got) == 21 * classes);
    if (nnq_tensor_numel(&got) == 21 * classes)
        CHECK(memcmp(got.data, ref, sizeof(float) * (size_t)(21 * classes)) == 0);
    nnq_tensor_release(&got);
done:
    free(ref);
    nnq_iexec_free(x1);
    nnq_iexec_free(x2);
    nnq_iprog_free(p);
    nnq_graph_free(q);
    nnq_dataset_free(&calib);
    nnq_dataset_free(&test);
}

int main(void) {
    test_collect();
    test_split();
    return check_finish("test_engine_collect");
}
