/* The PyTorch-exported fixture models give PyTorch's logits: nnq's float
 * executor on tests/fixtures/models/golden/<model>/input_0.npy must match
 * output_0.npy (PyTorch eval-mode logits) to float32 rounding, and give the
 * same top-1 class for every image. */
#include <stdio.h>

#include "check.h"
#include "data/npy.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

static void check_model(const char *name) {
    char path[256];
    nnq_graph *g = NULL;
    nnq_exec *e = NULL;
    nnq_tensor x = {0}, ref = {0};
    snprintf(path, sizeof path, "tests/fixtures/models/%s.onnx", name);
    CHECK_OK(nnq_onnx_load(path, &g));
    snprintf(path, sizeof path, "tests/fixtures/models/golden/%s/input_0.npy", name);
    CHECK_OK(nnq_npy_read(path, &x));
    snprintf(path, sizeof path, "tests/fixtures/models/golden/%s/output_0.npy", name);
    CHECK_OK(nnq_npy_read(path, &ref));
    if (!g || !x.data || !ref.data) goto done;
    CHECK_OK(nnq_graph_prepare(g));
    nnq_exec_options opt = {.threads = 2};
    CHECK_OK(nnq_exec_create(g, &opt, &e));
    if (!e) goto done;
    CHECK_OK(nnq_exec_run(e, &x));
    const nnq_tensor *y = nnq_exec_output(e, 0);
    CHECK(y->rank == 2 && y->dims[0] == ref.dims[0] && y->dims[1] == ref.dims[1]);
    if (nnq_tensor_numel(y) != nnq_tensor_numel(&ref)) goto done;
    double nmse = check_nmse(nnq_f32(y), nnq_f32(&ref), (long)nnq_tensor_numel(y));
    fprintf(stderr, "%s: logits nmse vs PyTorch %.3g\n", name, nmse);
    CHECK(nmse < 1e-10);
    int agree = 0;
    for (int64_t i = 0; i < y->dims[0]; i++) {
        int a = 0, b = 0;
        for (int64_t k = 1; k < y->dims[1]; k++) {
            if (nnq_f32(y)[i * y->dims[1] + k] > nnq_f32(y)[i * y->dims[1] + a]) a = (int)k;
            if (nnq_f32(&ref)[i * y->dims[1] + k] > nnq_f32(&ref)[i * y->dims[1] + b]) b = (int)k;
        }
        agree += a == b;
    }
    CHECK(agree == y->dims[0]);
done:
    nnq_exec_free(e);
    nnq_graph_free(g);
    nnq_tensor_release(&x);
    nnq_tensor_release(&ref);
}

int main(void) {
    check_model("mnv2s");
    check_model("resnets");
    return check_finish("test_fixture_golden");
}
