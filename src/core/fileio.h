/* Whole-file reads with a size cap, and atomic writes: data goes to a
 * temporary file in the destination's directory, is flushed, then renamed
 * over the destination, so a failure never leaves a half-written output. */
#ifndef NNQ_CORE_FILEIO_H
#define NNQ_CORE_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

/* Read all of `path` (at most max_bytes) into a malloc'd buffer. */
nnq_status nnq_read_file(const char *path, size_t max_bytes, unsigned char **out, size_t *len);

/* Atomic write of a buffer. */
nnq_status nnq_write_file_atomic(const char *path, const void *data, size_t len);

/* Streaming atomic write: open a temp file beside `path`, write to
 * w->fp, then commit (flush + fsync + rename) or abort (unlink). */
typedef struct nnq_atomic_file {
    FILE *fp;
    char *tmp_path;
    char *final_path;
} nnq_atomic_file;

nnq_status nnq_atomic_open(nnq_atomic_file *w, const char *path);
nnq_status nnq_atomic_commit(nnq_atomic_file *w);
void nnq_atomic_abort(nnq_atomic_file *w);

#endif
