/* Entry points of the fuzz targets, one per reader of outside data, shared
 * by the libFuzzer executables (fuzz_<name>.c) and the corpus replay test
 * (tests/test_corpus_replay.c), so both check the same things.
 *
 * Each entry feeds the bytes to the reader, sets *status to the reader's
 * verdict and returns NULL when every property that must hold for ANY
 * input held, else a static description of the one that failed (a bug in
 * nnq, which the fuzzer turns into a crash). Properties checked for all:
 *  - a failure carries a message: non-empty, one line;
 *  - a success leaves a consistent result (per target below).
 * Memory errors and undefined behaviour are left to the sanitizers. */
#ifndef NNQ_FUZZ_ENTRIES_H
#define NNQ_FUZZ_ENTRIES_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef const char *(*fuzz_entry_fn)(const uint8_t *data, size_t size, nnq_status *status);

typedef struct fuzz_target {
    const char *name; /* tests/corpus/<name>/, build-fuzz/fuzz/fuzz_<name> */
    fuzz_entry_fn run;
} fuzz_target;

/* ONNX ModelProto bytes: nnq_onnx_load_bytes; a model that loads must
 * export and load again, and export -> import -> export must then be a
 * fixed point; then nnq_graph_prepare, after which the graph must still
 * verify. */
const char *fuzz_onnx(const uint8_t *data, size_t size, nnq_status *status);

/* .npy bytes: the file reader (nnq_npy_read, through a temporary file)
 * and the memory reader (nnq_npy_read_bytes) must agree on the verdict
 * and, on success, on dtype, shape and data. */
const char *fuzz_npy(const uint8_t *data, size_t size, nnq_status *status);

/* IDX bytes, gzip-compressed or raw: nnq_idx_read through a temporary
 * file; raw input also through nnq_idx_read_bytes, which must agree. A
 * result is a UINT8 tensor of rank 1..4. */
const char *fuzz_idx(const uint8_t *data, size_t size, nnq_status *status);

/* A QDQ (or any) ONNX model: load, prepare, then — when the inputs and
 * every intermediate value fit a small budget — build an executor and
 * run one forward pass on zero inputs; outputs must have the inferred
 * shapes. *status is the first failing step's verdict. */
const char *fuzz_qdq(const uint8_t *data, size_t size, nnq_status *status);
/* Forward passes fuzz_qdq has completed, so a test can tell that the run
 * step was reached and not always skipped. */
extern long fuzz_qdq_passes;
/* A packed integer program (.nnqi): nnq_iprog_from_bytes, then INT and SIM
 * runs on zero inputs that must agree byte for byte. */
const char *fuzz_nnqi(const uint8_t *data, size_t size, nnq_status *status);

extern const fuzz_target fuzz_targets[];
extern const int fuzz_n_targets;

#endif
