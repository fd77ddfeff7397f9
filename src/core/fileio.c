#define _POSIX_C_SOURCE 200809L
#include "core/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

nnq_status nnq_read_file(const char *path, size_t max_bytes, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return nnq_fail(NNQ_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return nnq_fail(NNQ_ERR_IO, "%s is not a regular file", path);
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(fp);
        return nnq_fail(NNQ_ERR_LIMIT, "%s is %lld bytes, more than the %zu-byte limit", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", n, path);
    }
    if (n && fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return nnq_fail(NNQ_ERR_IO, "short read on %s", path);
    }
    fclose(fp);
    *out = buf;
    *len = n;
    return NNQ_OK;
}

nnq_status nnq_atomic_open(nnq_atomic_file *w, const char *path) {
    memset(w, 0, sizeof *w);
    size_t n = strlen(path);
    w->final_path = malloc(n + 1);
    w->tmp_path = malloc(n + 16);
    if (!w->final_path || !w->tmp_path) {
        nnq_atomic_abort(w);
        return nnq_fail(NNQ_ERR_NOMEM, "out of memory opening %s", path);
    }
    memcpy(w->final_path, path, n + 1);
    /* Same directory as the target so rename() is atomic (no cross-device move). */
    snprintf(w->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp_path);
    if (fd < 0) {
        nnq_status s = nnq_fail(NNQ_ERR_IO, "cannot create a temporary file for %s: %s", path,
                                strerror(errno));
        free(w->tmp_path);
        w->tmp_path = NULL;
        nnq_atomic_abort(w);
        return s;
    }
    fchmod(fd, 0644);
    w->fp = fdopen(fd, "wb");
    if (!w->fp) {
        close(fd);
        nnq_atomic_abort(w);
        return nnq_fail(NNQ_ERR_IO, "cannot open a temporary file for %s", path);
    }
    return NNQ_OK;
}

nnq_status nnq_atomic_commit(nnq_atomic_file *w) {
    nnq_status s = NNQ_OK;
    if (fflush(w->fp) != 0 || ferror(w->fp) || fsync(fileno(w->fp)) != 0)
        s = nnq_fail(NNQ_ERR_IO, "writing %s failed: %s", w->final_path, strerror(errno));
    if (fclose(w->fp) != 0 && s == NNQ_OK)
        s = nnq_fail(NNQ_ERR_IO, "closing %s failed: %s", w->final_path, strerror(errno));
    w->fp = NULL;
    if (s == NNQ_OK && rename(w->tmp_path, w->final_path) != 0)
        s = nnq_fail(NNQ_ERR_IO, "cannot rename into %s: %s", w->final_path, strerror(errno));
    nnq_atomic_abort(w); /* unlinks the temp file if it is still there; frees */
    return s;
}

void nnq_atomic_abort(nnq_atomic_file *w) {
    if (w->fp) fclose(w->fp);
    if (w->tmp_path) unlink(w->tmp_path);
    free(w->tmp_path);
    free(w->final_path);
    memset(w, 0, sizeof *w);
}

nnq_status nnq_write_file_atomic(const char *path, const void *data, size_t len) {
    nnq_atomic_file w;
    NNQ_TRY(nnq_atomic_open(&w, path));
    if (len && fwrite(data, 1, len, w.fp) != len) {
        nnq_atomic_abort(&w);
        return nnq_fail(NNQ_ERR_IO, "writing %s failed", path);
    }
    return nnq_atomic_commit(&w);
}
