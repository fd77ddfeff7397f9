/* Entry points of the fuzz targets (see fuzz_entries.h). */
#define _POSIX_C_SOURCE 200809L /* mkstemp, ftruncate, pwrite */
#include "fuzz_entries.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/idx.h"
#include "engine/iprog.h"
#include "data/npy.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

/* fuzz_qdq runs a forward pass only when it is cheap: the fuzzer must
 * spend its time on many inputs, not on one large convolution. These
 * bound the harness, not nnq (nnq's own limits are in core/limits.h). */
#define RUN_MAX_BYTES ((double)(32 << 20)) /* all non-constant values of the pass */
#define RUN_MAX_MACS 20000000 /* per image, integer programs */
#define RUN_MAX_WORK 2e7                    /* multiply-adds and element visits */

const fuzz_target fuzz_targets[] = {
    {"onnx", fuzz_onnx},
    {"npy", fuzz_npy},
    {"idx", fuzz_idx},
    {"qdq", fuzz_qdq},
    {"nnqi", fuzz_nnqi},
};
const int fuzz_n_targets = (int)(sizeof fuzz_targets / sizeof fuzz_targets[0]);
long fuzz_qdq_passes = 0;

/* What must hold for the status of any call: a failure is a known status
 * with a one-line message. Callers clear the message before the call, so a
 * stale one from an earlier call does not count. */
static const char *verdict(nnq_status s) {
    if (s == NNQ_OK) return NULL;
    if (s < NNQ_ERR_IO || s > NNQ_ERR_LIMIT) return "a failure returned a status outside nnq_status";
    const char *m = nnq_last_error();
    if (!m[0] || strcmp(m, "no error") == 0) return "a failure left no error message";
    if (strchr(m, '\n')) return "an error message spans several lines";
    return NULL;
}

/* ---- a temporary file, for the readers that take a path ---- */

static char tmp_path[4096];
static int tmp_fd = -1;

static void tmp_remove(void) {
    if (tmp_fd >= 0) {
        close(tmp_fd);
        unlink(tmp_path);
        tmp_fd = -1;
    }
}

/* One file per process, rewritten for each input. NULL if it cannot be
 * written (the harness's problem, reported as such). */
static const char *tmp_write(const uint8_t *data, size_t size) {
    if (tmp_fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(tmp_path, sizeof tmp_path, "%s/nnq-fuzz-XXXXXX", dir && dir[0] ? dir : "/tmp");
        if ((tmp_fd = mkstemp(tmp_path)) < 0) return NULL;
        atexit(tmp_remove);
    }
    if (ftruncate(tmp_fd, 0) != 0) return NULL;
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(tmp_fd, data + done, size - done, (off_t)done);
        if (w <= 0) return NULL;
        done += (size_t)w;
    }
    return tmp_path;
}

static bool same_tensor(const nnq_tensor *a, const nnq_tensor *b) {
    size_t na, nb;
    if (a->dtype != b->dtype || !nnq_shape_equal(a, b)) return false;
    if (nnq_tensor_nbytes(a, &na) != NNQ_OK || nnq_tensor_nbytes(b, &nb) != NNQ_OK || na != nb)
        return false;
    return na == 0 || (a->data && b->data && memcmp(a->data, b->data, na) == 0);
}

/* ---- ONNX ---- */

/* A loaded graph exports, and the export loads again and exports to the
 * same number of bytes; from there on export -> import -> export is a
 * fixed point, byte for byte. (The first export may order value_info
 * differently: a pre-opset-11 model's upgrade appends values that a fresh
 * import of the upgraded model creates in node order.) */
static const char *roundtrip(const nnq_graph *g) {
    const char *bug = NULL;
    unsigned char *b[3] = {NULL, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    nnq_graph *again[2] = {NULL, NULL};
    if (nnq_onnx_save_bytes(g, &b[0], &len[0]) != NNQ_OK) bug = "a model that loads does not export";
    for (int i = 0; i < 2 && !bug; i++) {
        if (nnq_onnx_load_bytes(b[i], len[i], "re-exported model", &again[i]) != NNQ_OK)
            bug = "a re-exported model does not load";
        else if (nnq_onnx_save_bytes(again[i], &b[i + 1], &len[i + 1]) != NNQ_OK)
            bug = "a re-exported model does not export again";
    }
    if (!bug && len[0] != len[1]) bug = "export -> import -> export changes the size";
    if (!bug && (len[1] != len[2] || memcmp(b[1], b[2], len[1]) != 0))
        bug = "export -> import -> export is not a fixed point";
    for (int i = 0; i < 3; i++) free(b[i]);
    for (int i = 0; i < 2; i++) nnq_graph_free(again[i]);
    return bug;
}

const char *fuzz_onnx(const uint8_t *data, size_t size, nnq_status *status) {
    nnq_graph *g = NULL;
    nnq_clear_error();
    *status = nnq_onnx_load_bytes(data, size, "fuzz input", &g);
    if (*status != NNQ_OK) return verdict(*status);
    const char *bug = roundtrip(g);
    if (!bug) {
        nnq_clear_error();
        *status = nnq_graph_prepare(g);
        bug = verdict(*status);
        if (!bug && *status == NNQ_OK && nnq_graph_verify(g) != NNQ_OK)
            bug = "a prepared graph fails verification";
    }
    nnq_graph_free(g);
    return bug;
}

/* ---- .npy ---- */

const char *fuzz_npy(const uint8_t *data, size_t size, nnq_status *status) {
    nnq_tensor from_file, from_mem;
    const char *path = tmp_write(data, size);
    if (!path) return "the harness cannot write its temporary file";
    nnq_clear_error();
    nnq_status sf = nnq_npy_read(path, &from_file);
    const char *bug = verdict(sf);
    nnq_clear_error();
    *status = nnq_npy_read_bytes(data, size, "fuzz input", &from_mem);
    if (!bug) bug = verdict(*status);
    if (!bug && sf != *status) bug = "nnq_npy_read and nnq_npy_read_bytes disagree on the verdict";
    if (!bug && sf == NNQ_OK && !same_tensor(&from_file, &from_mem))
        bug = "nnq_npy_read and nnq_npy_read_bytes read different tensors";
    nnq_tensor_release(&from_file);
    nnq_tensor_release(&from_mem);
    return bug;
}

/* ---- IDX ---- */

static const char *check_idx_tensor(const nnq_tensor *t) {
    size_t n;
    if (t->dtype != NNQ_DT_UINT8 || t->rank < 1 || t->rank > 4)
        return "an IDX result is not a UINT8 tensor of rank 1..4";
    if (nnq_tensor_nbytes(t, &n) != NNQ_OK || !t->data || !t->owns)
        return "an IDX result has no data of its size";
    return NULL;
}

const char *fuzz_idx(const uint8_t *data, size_t size, nnq_status *status) {
    nnq_tensor from_file, from_mem;
    const char *path = tmp_write(data, size);
    if (!path) return "the harness cannot write its temporary file";
    nnq_clear_error();
    *status = nnq_idx_read(path, &from_file);
    const char *bug = verdict(*status);
    if (!bug && *status == NNQ_OK) bug = check_idx_tensor(&from_file);
    /* zlib reads a file without the gzip magic as it is, so raw IDX must
     * read the same from a file and from memory. */
    bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!bug && !gz) {
        nnq_clear_error();
        nnq_status sm = nnq_idx_read_bytes(data, size, "fuzz input", &from_mem);
        bug = verdict(sm);
        if (!bug && sm != *status) bug = "nnq_idx_read and nnq_idx_read_bytes disagree on the verdict";
        if (!bug && sm == NNQ_OK && !same_tensor(&from_file, &from_mem))
            bug = "nnq_idx_read and nnq_idx_read_bytes read different tensors";
        nnq_tensor_release(&from_mem);
    }
    nnq_tensor_release(&from_file);
    return bug;
}

/* ---- QDQ model: load, prepare, one forward pass ---- */

static double numel_or_huge(const nnq_tensor *t) {
    int64_t n = nnq_tensor_numel(t);
    return n < 0 ? 1e300 : (double)n;
}

/* Rough work of one pass: every element read or written, plus the
 * multiply-adds per output element of the ops that have many. */
static bool within_budget(const nnq_graph *g, const nnq_tensor *shapes) {
    double bytes = 0, work = 0;
    for (int v = 0; v < g->n_values; v++)
        if (!g->values[v].t.data)
            bytes += numel_or_huge(&shapes[v]) * (double)nnq_dtype_size(shapes[v].dtype);
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        double in = 0, out = 0, per_out = 1;
        for (int k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0) in += numel_or_huge(&shapes[nd->inputs[k]]);
        for (int k = 0; k < nd->n_outputs; k++)
            if (nd->outputs[k] >= 0) out += numel_or_huge(&shapes[nd->outputs[k]]);
        const nnq_tensor *w = nd->n_inputs > 1 && nd->inputs[1] >= 0 ? &shapes[nd->inputs[1]] : NULL;
        const nnq_tensor *x = nd->n_inputs > 0 && nd->inputs[0] >= 0 ? &shapes[nd->inputs[0]] : NULL;
        if (!strcmp(nd->op_type, "Conv") && w && w->rank > 0 && w->dims[0] > 0) {
            per_out = numel_or_huge(w) / (double)w->dims[0];
        } else if ((!strcmp(nd->op_type, "Gemm") || !strcmp(nd->op_type, "MatMul")) && x) {
            for (int k = 0; k < x->rank; k++)
                if ((double)x->dims[k] > per_out) per_out = (double)x->dims[k];
        } else if (strstr(nd->op_type, "Pool")) {
            const int64_t *ks;
            int nk = nnq_node_attr_ints(nd, "kernel_shape", &ks);
            for (int k = 0; k < nk; k++) per_out *= ks[k] > 0 ? (double)ks[k] : 1.0;
        }
        work += in + out * per_out;
    }
    return bytes <= RUN_MAX_BYTES && work <= RUN_MAX_WORK;
}

/* Zero inputs of the declared shapes (symbolic dims 1), then one run. */
/* Run an integer program on zero inputs (batch 1) with the integer
 * kernels and with the float emulation: outputs must be the same bytes.
 * Programs beyond the run budget are only checked for their verdicts. */
static const char *run_iprog(const nnq_iprog *p, nnq_status *status) {
    nnq_iprog_stats st;
    nnq_iprog_get_stats(p, &st);
    if (st.macs > RUN_MAX_MACS) return NULL;
    const int ni = nnq_iprog_input_count(p);
    nnq_tensor *in = calloc((size_t)(ni ? ni : 1), sizeof *in);
    nnq_iexec *e[2] = {NULL, NULL};
    const char *bug = NULL;
    double bytes = 0;
    if (!in) return NULL;
    for (int i = 0; i < ni; i++) {
        nnq_tensor sh;
        size_t nb;
        nnq_iprog_input_shape(p, i, &sh);
        for (int k = 0; k < sh.rank; k++) sh.dims[k] = sh.dims[k] < 0 ? 1 : sh.dims[k];
        if (nnq_dtype_size(sh.dtype) == 0 || nnq_tensor_set_shape(&in[i], sh.dtype, sh.rank, sh.dims) != NNQ_OK ||
            nnq_tensor_nbytes(&in[i], &nb) != NNQ_OK || (bytes += (double)nb) > RUN_MAX_BYTES ||
            nnq_tensor_alloc(&in[i], sh.dtype, sh.rank, sh.dims) != NNQ_OK)
            goto done;
    }
    nnq_status r[2];
    for (int m = 0; m < 2; m++) {
        nnq_clear_error();
        r[m] = nnq_iexec_create(p, m == 0 ? NNQ_ENGINE_INT : NNQ_ENGINE_SIM, 1, &e[m]);
        if (r[m] == NNQ_OK) r[m] = nnq_iexec_run(e[m], in);
        if ((bug = verdict(r[m])) != NULL) goto done;
    }
    *status = r[0];
    if (r[0] != r[1]) {
        bug = "the integer engine and its float emulation disagree on the verdict";
        goto done;
    }
    for (int i = 0; r[0] == NNQ_OK && i < nnq_iprog_output_count(p); i++) {
        const nnq_tensor *a = nnq_iexec_output(e[0], i), *b = nnq_iexec_output(e[1], i);
        size_t na = 0, nb = 0;
        if (!a || !b || a->dtype != b->dtype || !nnq_shape_equal(a, b) ||
            nnq_tensor_nbytes(a, &na) != NNQ_OK || nnq_tensor_nbytes(b, &nb) != NNQ_OK ||
            (na && memcmp(a->data, b->data, na) != 0)) {
            bug = "the integer engine and its float emulation give different outputs";
            break;
        }
    }
done:
    nnq_iexec_free(e[0]);
    nnq_iexec_free(e[1]);
    for (int i = 0; i < ni; i++) nnq_tensor_release(&in[i]);
    free(in);
    return bug;
}

/* A .nnqi file: the reader refuses what is not one with a one-line message;
 * a program it accepts runs (INT equal to SIM) within the budget. */
const char *fuzz_nnqi(const uint8_t *data, size_t size, nnq_status *status) {
    nnq_iprog *p = NULL;
    nnq_clear_error();
    *status = nnq_iprog_from_bytes(data, size, "fuzz input", &p);
    const char *bug = verdict(*status);
    if (!bug && *status == NNQ_OK) bug = run_iprog(p, status);
    nnq_iprog_free(p);
    return bug;
}

static const char *run_zero(const nnq_graph *g, nnq_status *status) {
    const char *bug = NULL;
    nnq_exec *e = NULL;
    int ni = g->n_inputs;
    double bytes = 0;
    nnq_tensor *in = calloc((size_t)(ni ? ni : 1), sizeof *in);
    nnq_tensor *shapes = calloc((size_t)(g->n_values ? g->n_values : 1), sizeof *shapes);
    if (!in || !shapes) goto done;
    for (int i = 0; i < ni; i++) {
        const nnq_tensor *d = &g->values[g->inputs[i]].t;
        int64_t dims[NNQ_MAX_RANK];
        size_t nb;
        if (d->rank < 0 || nnq_dtype_size(d->dtype) == 0) goto done; /* nothing to feed */
        for (int k = 0; k < d->rank; k++) dims[k] = d->dims[k] < 0 ? 1 : d->dims[k];
        if (nnq_tensor_set_shape(&in[i], d->dtype, d->rank, dims) != NNQ_OK ||
            nnq_tensor_nbytes(&in[i], &nb) != NNQ_OK || (bytes += (double)nb) > RUN_MAX_BYTES)
            goto done;
        if (nnq_tensor_alloc(&in[i], d->dtype, d->rank, dims) != NNQ_OK) goto done;
    }
    nnq_clear_error();
    *status = nnq_graph_infer_shapes(g, in, shapes);
    if (*status != NNQ_OK) {
        bug = verdict(*status);
        goto done;
    }
    if (!within_budget(g, shapes)) goto done;
    nnq_exec_options opt = {.threads = 1};
    nnq_clear_error();
    *status = nnq_exec_create(g, &opt, &e);
    if (*status == NNQ_OK) {
        nnq_clear_error();
        *status = nnq_exec_run(e, in);
    }
    bug = verdict(*status);
    if (*status == NNQ_OK) fuzz_qdq_passes++;
    for (int i = 0; !bug && *status == NNQ_OK && i < g->n_outputs; i++) {
        const nnq_tensor *t = nnq_exec_output(e, i), *want = &shapes[g->outputs[i]];
        if (!t || t->dtype != want->dtype || !nnq_shape_equal(t, want))
            bug = "an output's shape after the run differs from the inferred one";
        else if (!t->data && nnq_tensor_numel(t) > 0)
            bug = "an output has no data after the run";
    }
done:
    nnq_exec_free(e);
    for (int i = 0; in && i < ni; i++) nnq_tensor_release(&in[i]);
    free(in);
    free(shapes);
    return bug;
}

const char *fuzz_qdq(const uint8_t *data, size_t size, nnq_status *status) {
    nnq_graph *g = NULL;
    const char *bug;
    nnq_clear_error();
    *status = nnq_onnx_load_bytes(data, size, "fuzz input", &g);
    if (*status != NNQ_OK) return verdict(*status);
    nnq_clear_error();
    *status = nnq_graph_prepare(g);
    bug = verdict(*status);
    if (!bug && *status == NNQ_OK) bug = run_zero(g, status);
    /* The integer engine: lower, then run INT and SIM on the same zero
     * inputs; the two must give the same bytes. */
    if (!bug && *status == NNQ_OK) {
        nnq_iprog *p = NULL;
        nnq_clear_error();
        nnq_status ls = nnq_iprog_lower(g, &p);
        bug = verdict(ls);
        if (!bug && ls == NNQ_OK) bug = run_iprog(p, status);
        nnq_iprog_free(p);
    }
    nnq_graph_free(g);
    return bug;
}
