/* IDX reader. The header is 4 magic bytes {0, 0, type, rank} then `rank`
 * big-endian uint32 dims, then the data with no padding. Files come from
 * a zlib gzFile (which reads gzip and plain files alike) or from memory. */
#include "data/idx.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_RANK 4
/* While inflating, the buffer starts at IDX_FIRST_CHUNK and doubles, by at
 * most IDX_GROW_STEP at a time: a tiny gzip file that claims gigabytes only
 * costs memory as far as its data really goes. */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)
#define IDX_GROW_STEP ((size_t)64 << 20)
#define IDX_GZ_CHUNK (1u << 30) /* gzread takes an unsigned count */

typedef struct idx_src {
    gzFile gz;                /* NULL for a memory source */
    const unsigned char *buf; /* memory source */
    size_t len, pos;
    const char *what;  /* file name or caller's label, for messages */
    bool gz_truncated; /* zlib saw the gzip stream end early */
} idx_src;

static const char *idx_type_name(int code) {
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

/* Read up to n bytes; *got says how many arrived. End of input is not an
 * error here (callers compare *got with what they need), but corrupt or
 * unreadable gzip data is: zlib reports a CRC or deflate error only at
 * the point where it finds it. */
static nnq_status src_read(idx_src *s, void *dst, size_t n, size_t *got) {
    *got = 0;
    if (!s->gz) {
        size_t avail = s->len - s->pos;
        size_t k = n < avail ? n : avail;
        if (k) memcpy(dst, s->buf + s->pos, k);
        s->pos += k;
        *got = k;
        return NNQ_OK;
    }
    unsigned char *p = dst;
    while (*got < n) {
        size_t want = n - *got;
        unsigned chunk = want < IDX_GZ_CHUNK ? (unsigned)want : IDX_GZ_CHUNK;
        int r = gzread(s->gz, p + *got, chunk);
        int zerr = Z_OK;
        const char *zmsg = gzerror(s->gz, &zerr);
        if (zerr == Z_ERRNO)
            return nnq_fail(NNQ_ERR_IO, "cannot read %s: %s", s->what, strerror(errno));
        /* Z_BUF_ERROR is zlib's "unexpected end of file": a truncated
         * gzip stream, seen by the caller as a short read (or, if all the
         * data arrived but the trailer did not, by the final check). */
        if (zerr == Z_BUF_ERROR) s->gz_truncated = true;
        else if (zerr != Z_OK)
            return nnq_fail(NNQ_ERR_PARSE, "corrupt gzip data in %s: %s", s->what,
                            zmsg ? zmsg : "unknown zlib error");
        if (r <= 0) break;
        *got += (size_t)r;
        if ((unsigned)r < chunk) break;
    }
    return NNQ_OK;
}

static nnq_status read_exact(idx_src *s, void *dst, size_t n, const char *part) {
    size_t got;
    NNQ_TRY(src_read(s, dst, n, &got));
    if (got != n)
        return nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: expected %zu bytes of %s, got %zu",
                        s->what, n, part, got);
    return NNQ_OK;
}

/* Data of a gzip source: grow the buffer as bytes arrive rather than
 * trusting the header's size up front. */
static nnq_status read_data_stream(idx_src *s, size_t n, unsigned char **out) {
    size_t cap = n < IDX_FIRST_CHUNK ? n : IDX_FIRST_CHUNK;
    size_t have = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", cap, s->what);
    while (have < n) {
        if (have == cap) {
            size_t next = cap + (cap < IDX_GROW_STEP ? cap : IDX_GROW_STEP);
            if (next > n) next = n;
            unsigned char *nb = realloc(buf, next);
            if (!nb) {
                free(buf);
                return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", next, s->what);
            }
            buf = nb;
            cap = next;
        }
        size_t want = cap - have, got;
        nnq_status st = src_read(s, buf + have, want, &got);
        if (st != NNQ_OK) {
            free(buf);
            return st;
        }
        have += got;
        if (got < want) break; /* end of input */
    }
    if (have != n) {
        free(buf);
        return nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: expected %zu bytes of data, got %zu",
                        s->what, n, have);
    }
    *out = buf;
    return NNQ_OK;
}

static nnq_status idx_parse(idx_src *s, nnq_tensor *out) {
    unsigned char magic[4], dimbuf[4 * IDX_MAX_RANK];
    int64_t dims[IDX_MAX_RANK];
    unsigned char *data = NULL;
    nnq_status st;

    NNQ_TRY(read_exact(s, magic, 4, "header"));
    if (magic[0] != 0 || magic[1] != 0)
        return nnq_fail(NNQ_ERR_PARSE,
                        "%s is not an IDX file: magic bytes %02x %02x %02x %02x should start "
                        "with 00 00",
                        s->what, magic[0], magic[1], magic[2], magic[3]);
    if (magic[2] != IDX_TYPE_UBYTE) {
        const char *tn = idx_type_name(magic[2]);
        if (tn)
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "%s holds IDX type 0x%02x (%s); only unsigned bytes (0x08) are "
                            "supported",
                            s->what, magic[2], tn);
        return nnq_fail(NNQ_ERR_PARSE, "%s: unknown IDX type code 0x%02x", s->what, magic[2]);
    }
    int rank = magic[3];
    if (rank < 1 || rank > IDX_MAX_RANK)
        return nnq_fail(NNQ_ERR_PARSE, "%s: IDX rank %d, expected 1 to %d", s->what, rank,
                        IDX_MAX_RANK);
    NNQ_TRY(read_exact(s, dimbuf, (size_t)rank * 4, "dimensions"));

    /* Size check before any allocation. */
    size_t numel = 1;
    for (int i = 0; i < rank; i++) {
        const unsigned char *b = dimbuf + 4 * i;
        uint32_t d = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        dims[i] = d;
        if (!nnq_mul_size(numel, d, &numel) || numel > NNQ_MAX_TENSOR_BYTES)
            return nnq_fail(NNQ_ERR_LIMIT,
                            "%s: IDX dimensions need more than the %zu-byte tensor limit",
                            s->what, (size_t)NNQ_MAX_TENSOR_BYTES);
    }

    if (!s->gz) {
        size_t avail = s->len - s->pos;
        if (avail < numel)
            return nnq_fail(NNQ_ERR_PARSE,
                            "file %s is truncated: expected %zu bytes of data, got %zu", s->what,
                            numel, avail);
        data = malloc(numel ? numel : 1);
        if (!data) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", numel, s->what);
        memcpy(data, s->buf + s->pos, numel);
        s->pos += numel;
    } else {
        NNQ_TRY(read_data_stream(s, numel, &data));
    }

    unsigned char extra;
    size_t got;
    st = src_read(s, &extra, 1, &got);
    if (st != NNQ_OK) goto fail;
    if (got) {
        st = nnq_fail(NNQ_ERR_PARSE, "%s has trailing bytes after its %zu bytes of data", s->what,
                      numel);
        goto fail;
    }
    if (s->gz_truncated) {
        st = nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: its gzip stream ends before the trailer",
                      s->what);
        goto fail;
    }

    st = nnq_tensor_set_shape(out, NNQ_DT_UINT8, rank, dims);
    if (st != NNQ_OK) goto fail;
    out->data = data;
    out->owns = true;
    return NNQ_OK;

fail:
    free(data);
    return st;
}

nnq_status nnq_idx_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out) {
    idx_src s = {.buf = buf, .len = len, .what = what ? what : "IDX buffer"};
    memset(out, 0, sizeof *out);
    return idx_parse(&s, out);
}

nnq_status nnq_idx_read(const char *path, nnq_tensor *out) {
    memset(out, 0, sizeof *out);
    idx_src s = {.what = path};
    errno = 0;
    s.gz = gzopen(path, "rb");
    if (!s.gz)
        return nnq_fail(NNQ_ERR_IO, "cannot open %s: %s", path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(s.gz, 1u << 17); /* fewer read() calls on the 26 MB training set */
    nnq_status st = idx_parse(&s, out);
    gzclose_r(s.gz);
    return st;
}
