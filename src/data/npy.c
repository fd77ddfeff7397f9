/* .npy reader and writer, following NumPy's format spec (NEP 1):
 *   "\x93NUMPY" major minor, header length (uint16 LE for 1.0, uint32 LE
 *   for 2.0/3.0), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   padded with spaces and a final '\n', then the raw C-order data.
 * The dict is parsed by a small strict parser (no evaluation). */
#define _POSIX_C_SOURCE 200809L
#include "data/npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_PREAMBLE_MAX 12
/* NumPy itself refuses headers above 10000 bytes by default; allow more
 * but keep a bound so a corrupt length cannot make us allocate much. */
#define NPY_MAX_HEADER (1u << 20)
#define NPY_ALIGN 64

/* descr type code (after the byte-order char) <-> nnq dtype. */
static const struct {
    const char *code;
    nnq_dtype dtype;
} npy_types[] = {
    {"f4", NNQ_DT_FLOAT}, {"f8", NNQ_DT_DOUBLE}, {"f2", NNQ_DT_FLOAT16},
    {"i8", NNQ_DT_INT64}, {"i4", NNQ_DT_INT32},  {"i2", NNQ_DT_INT16},
    {"i1", NNQ_DT_INT8},  {"u8", NNQ_DT_UINT64}, {"u4", NNQ_DT_UINT32},
    {"u2", NNQ_DT_UINT16}, {"u1", NNQ_DT_UINT8}, {"b1", NNQ_DT_BOOL},
};
#define NPY_NTYPES (sizeof npy_types / sizeof npy_types[0])

typedef struct npy_header {
    nnq_dtype dtype;
    int rank;
    int64_t dims[NNQ_MAX_RANK];
    size_t data_offset; /* preamble + header */
    size_t data_bytes;
} npy_header;

static bool host_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- header dict parser ---- */

typedef struct cursor {
    const char *start, *p, *end;
    const char *what;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static nnq_status syntax(cursor *c, const char *expected) {
    return nnq_fail(NNQ_ERR_PARSE, "%s: malformed .npy header: expected %s at offset %td", c->what,
                    expected, c->p - c->start);
}

/* A quoted Python string without escapes (all that NumPy ever writes). */
static nnq_status parse_str(cursor *c, char *dst, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return syntax(c, "a quoted string");
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= cap)
            return nnq_fail(NNQ_ERR_PARSE, "%s: malformed .npy header: bad or overlong string",
                            c->what);
        dst[n++] = *c->p++;
    }
    if (c->p >= c->end) return nnq_fail(NNQ_ERR_PARSE, "%s: unterminated string in .npy header", c->what);
    c->p++;
    dst[n] = '\0';
    return NNQ_OK;
}

static bool is_ident_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* A whole Python identifier: "True" matches, "Truex" does not. */
static bool eat_word(cursor *c, const char *w) {
    size_t n = strlen(w);
    skip_ws(c);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0 &&
        ((size_t)(c->end - c->p) == n || !is_ident_char(c->p[n]))) {
        c->p += n;
        return true;
    }
    return false;
}

static nnq_status parse_descr(cursor *c, nnq_dtype *dt) {
    char s[32];
    skip_ws(c);
    if (c->p < c->end && (*c->p == '[' || *c->p == '('))
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: structured .npy dtypes are not supported",
                        c->what);
    NNQ_TRY(parse_str(c, s, sizeof s));
    char order = s[0];
    for (size_t i = 0; i < NPY_NTYPES; i++) {
        if (strcmp(s + (order ? 1 : 0), npy_types[i].code) != 0) continue;
        bool one_byte = nnq_dtype_size(npy_types[i].dtype) == 1;
        /* '|' means "byte order not applicable"; any order works for 1 byte. */
        if (order == '<' || (one_byte && (order == '|' || order == '>' || order == '='))) {
            *dt = npy_types[i].dtype;
            return NNQ_OK;
        }
        if (order == '>')
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "%s: big-endian .npy data ('%s') is not supported; save it "
                            "little-endian (arr.astype('<%s'))",
                            c->what, s, npy_types[i].code);
        break;
    }
    return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .npy dtype '%s' is not supported", c->what, s);
}

static nnq_status parse_shape(cursor *c, int *rank, int64_t *dims) {
    int r = 0;
    bool comma_after_last = false;
    if (!eat(c, '(')) return syntax(c, "a shape tuple '('");
    skip_ws(c);
    while (!eat(c, ')')) {
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return nnq_fail(NNQ_ERR_PARSE,
                            "%s: malformed .npy header: shape must hold non-negative integers",
                            c->what);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int digit = *c->p++ - '0';
            if (v > (INT64_MAX - digit) / 10)
                return nnq_fail(NNQ_ERR_LIMIT, "%s: .npy shape dimension overflows int64", c->what);
            v = v * 10 + digit;
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long literal */
        if (r == NNQ_MAX_RANK)
            return nnq_fail(NNQ_ERR_LIMIT, "%s: .npy rank exceeds the maximum %d", c->what,
                            NNQ_MAX_RANK);
        dims[r++] = v;
        comma_after_last = eat(c, ',');
        if (!comma_after_last) {
            if (!eat(c, ')')) return syntax(c, "',' or ')' in shape");
            break;
        }
    }
    /* "(3)" is the int 3 in Python, not a tuple: NumPy would reject it too. */
    if (r == 1 && !comma_after_last)
        return nnq_fail(NNQ_ERR_PARSE, "%s: malformed .npy header: shape (%lld) is not a tuple",
                        c->what, (long long)dims[0]);
    *rank = r;
    return NNQ_OK;
}

static nnq_status parse_dict(const char *txt, size_t len, const char *what, npy_header *h) {
    cursor c = {txt, txt, txt + len, what};
    bool have_descr = false, have_order = false, have_shape = false;
    char key[32];

    if (!eat(&c, '{'))
        return nnq_fail(NNQ_ERR_PARSE, "%s: .npy header is not a Python dict literal", what);
    while (!eat(&c, '}')) {
        NNQ_TRY(parse_str(&c, key, sizeof key));
        if (!eat(&c, ':')) return syntax(&c, "':'");
        if (strcmp(key, "descr") == 0 && !have_descr) {
            NNQ_TRY(parse_descr(&c, &h->dtype));
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (eat_word(&c, "True"))
                return nnq_fail(NNQ_ERR_UNSUPPORTED,
                                "%s: Fortran-order .npy arrays are not supported; save a "
                                "C-order array (np.ascontiguousarray)",
                                what);
            if (!eat_word(&c, "False")) return syntax(&c, "True or False");
            have_order = true;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            NNQ_TRY(parse_shape(&c, &h->rank, h->dims));
            have_shape = true;
        } else {
            return nnq_fail(NNQ_ERR_PARSE, "%s: unexpected or repeated key '%s' in .npy header",
                            what, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return syntax(&c, "',' or '}'");
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end)
        return nnq_fail(NNQ_ERR_PARSE, "%s: unexpected bytes after the .npy header dict", what);
    if (!have_descr || !have_order || !have_shape)
        return nnq_fail(NNQ_ERR_PARSE, "%s: .npy header lacks '%s'", what,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");

    /* Size check before anything is allocated for the data. */
    int64_t numel = nnq_shape_numel(h->rank, h->dims);
    if (numel < 0 || !nnq_mul_size((size_t)numel, nnq_dtype_size(h->dtype), &h->data_bytes) ||
        h->data_bytes > NNQ_MAX_TENSOR_BYTES)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: .npy shape needs more than the %zu-byte tensor limit",
                        what, (size_t)NNQ_MAX_TENSOR_BYTES);
    return NNQ_OK;
}

/* ---- preamble ---- */

/* `p` holds the first `avail` bytes of a file of `file_len` bytes, with
 * avail >= min(file_len, NPY_PREAMBLE_MAX). Sets where the header text
 * starts and how long it is, once it is known to fit in the file. */
static nnq_status parse_preamble(const unsigned char *p, size_t avail, size_t file_len,
                                 const char *what, size_t *hdr_off, size_t *hdr_len) {
    size_t m = avail < NPY_MAGIC_LEN ? avail : NPY_MAGIC_LEN;
    if (memcmp(p, NPY_MAGIC, m) != 0)
        return nnq_fail(NNQ_ERR_PARSE, "%s is not a .npy file (bad magic)", what);
    if (avail < 10)
        return nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: %zu bytes, shorter than a .npy preamble",
                        what, avail);
    int major = p[6], minor = p[7];
    if ((major < 1 || major > 3) || minor != 0)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported", what,
                        major, minor);
    if (major == 1) {
        *hdr_off = 10;
        *hdr_len = (size_t)p[8] | (size_t)p[9] << 8;
    } else {
        if (avail < 12)
            return nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: %zu bytes, shorter than a .npy "
                            "preamble", what, avail);
        *hdr_off = 12;
        *hdr_len = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    }
    if (*hdr_len > NPY_MAX_HEADER)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: .npy header of %zu bytes exceeds the %u-byte limit",
                        what, *hdr_len, NPY_MAX_HEADER);
    if (*hdr_len > file_len - *hdr_off)
        return nnq_fail(NNQ_ERR_PARSE,
                        "file %s is truncated: expected %zu bytes of .npy header, got %zu", what,
                        *hdr_len, file_len - *hdr_off);
    return NNQ_OK;
}

static nnq_status check_data_len(const npy_header *h, size_t have, const char *what) {
    if (have < h->data_bytes)
        return nnq_fail(NNQ_ERR_PARSE, "file %s is truncated: expected %zu bytes of data, got %zu",
                        what, h->data_bytes, have);
    if (have > h->data_bytes)
        return nnq_fail(NNQ_ERR_PARSE, "%s has %zu trailing bytes after its %zu bytes of data",
                        what, have - h->data_bytes, h->data_bytes);
    return NNQ_OK;
}

static nnq_status alloc_out(const npy_header *h, nnq_tensor *out) {
    NNQ_TRY(nnq_tensor_set_shape(out, h->dtype, h->rank, h->dims));
    out->data = malloc(h->data_bytes ? h->data_bytes : 1);
    if (!out->data)
        return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for .npy data", h->data_bytes);
    out->owns = true;
    return NNQ_OK;
}

nnq_status nnq_npy_read_bytes(const unsigned char *buf, size_t len, const char *what,
                              nnq_tensor *out) {
    npy_header h = {0};
    size_t hdr_off, hdr_len;
    memset(out, 0, sizeof *out);
    if (!what) what = ".npy buffer";
    if (!host_little_endian())
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .npy reading needs a little-endian host", what);
    NNQ_TRY(parse_preamble(buf, len, len, what, &hdr_off, &hdr_len));
    NNQ_TRY(parse_dict((const char *)buf + hdr_off, hdr_len, what, &h));
    h.data_offset = hdr_off + hdr_len;
    NNQ_TRY(check_data_len(&h, len - h.data_offset, what));
    NNQ_TRY(alloc_out(&h, out));
    if (h.data_bytes) memcpy(out->data, buf + h.data_offset, h.data_bytes);
    return NNQ_OK;
}

nnq_status nnq_npy_read(const char *path, nnq_tensor *out) {
    unsigned char pre[NPY_PREAMBLE_MAX];
    char *hdr = NULL;
    npy_header h = {0};
    size_t hdr_off, hdr_len;
    struct stat st;
    nnq_status s;

    memset(out, 0, sizeof *out);
    if (!host_little_endian())
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .npy reading needs a little-endian host", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return nnq_fail(NNQ_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        s = nnq_fail(NNQ_ERR_IO, "%s is not a regular file", path);
        goto fail;
    }
    size_t file_len = (size_t)st.st_size;
    size_t want = file_len < NPY_PREAMBLE_MAX ? file_len : NPY_PREAMBLE_MAX;
    if (fread(pre, 1, want, fp) != want) {
        s = nnq_fail(NNQ_ERR_IO, "short read on %s", path);
        goto fail;
    }
    s = parse_preamble(pre, want, file_len, path, &hdr_off, &hdr_len);
    if (s != NNQ_OK) goto fail;

    /* The header is bounded by NPY_MAX_HEADER and by the file size. */
    hdr = malloc(hdr_len ? hdr_len : 1);
    if (!hdr) {
        s = nnq_fail(NNQ_ERR_NOMEM, "cannot allocate the .npy header of %s", path);
        goto fail;
    }
    if (fseek(fp, (long)hdr_off, SEEK_SET) != 0 || fread(hdr, 1, hdr_len, fp) != hdr_len) {
        s = nnq_fail(NNQ_ERR_IO, "short read on %s", path);
        goto fail;
    }
    s = parse_dict(hdr, hdr_len, path, &h);
    if (s != NNQ_OK) goto fail;
    h.data_offset = hdr_off + hdr_len;
    s = check_data_len(&h, file_len - h.data_offset, path);
    if (s != NNQ_OK) goto fail;
    s = alloc_out(&h, out);
    if (s != NNQ_OK) goto fail;
    if (h.data_bytes && fread(out->data, 1, h.data_bytes, fp) != h.data_bytes) {
        s = nnq_fail(NNQ_ERR_IO, "short read on %s (file changed while reading?)", path);
        goto fail;
    }
    free(hdr);
    fclose(fp);
    return NNQ_OK;

fail:
    nnq_tensor_release(out);
    free(hdr);
    fclose(fp);
    return s;
}

/* ---- writer ---- */

nnq_status nnq_npy_write(const char *path, const nnq_tensor *t) {
    const char *code = NULL;
    for (size_t i = 0; i < NPY_NTYPES; i++)
        if (npy_types[i].dtype == t->dtype) code = npy_types[i].code;
    if (!code)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: cannot write dtype %s to .npy", path,
                        nnq_dtype_name(t->dtype));
    if (!host_little_endian())
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .npy writing needs a little-endian host", path);
    if (t->rank < 0 || t->rank > NNQ_MAX_RANK)
        return nnq_fail(NNQ_ERR_INVALID, "%s: tensor rank %d cannot be written", path, t->rank);
    size_t nbytes;
    if (nnq_tensor_nbytes(t, &nbytes) != NNQ_OK)
        return nnq_fail_context(NNQ_ERR_INVALID, "writing %s: ", path);
    if (!t->data && nbytes)
        return nnq_fail(NNQ_ERR_INVALID, "%s: tensor has a shape but no data", path);

    /* Header text; room for rank 8 of 19-digit dims is well under 512 bytes. */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     nnq_dtype_size(t->dtype) == 1 ? '|' : '<', code);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }", t->rank == 1 ? "," : "");
    /* Pad with spaces and end with '\n' so the data starts 64-byte aligned. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
    if ((size_t)n + pad + 1 >= sizeof hdr)
        return nnq_fail(NNQ_ERR_INVALID, "%s: .npy header too long", path);
    memset(hdr + n, ' ', pad);
    hdr[(size_t)n + pad] = '\n';
    size_t hdr_len = (size_t)n + pad + 1;

    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hdr_len & 0xff);
    pre[9] = (unsigned char)(hdr_len >> 8);

    /* Streamed through the atomic writer so large tensors are not copied. */
    nnq_atomic_file w;
    NNQ_TRY(nnq_atomic_open(&w, path));
    if (fwrite(pre, 1, sizeof pre, w.fp) != sizeof pre ||
        fwrite(hdr, 1, hdr_len, w.fp) != hdr_len ||
        (nbytes && fwrite(t->data, 1, nbytes, w.fp) != nbytes)) {
        nnq_atomic_abort(&w);
        return nnq_fail(NNQ_ERR_IO, "writing %s failed", path);
    }
    return nnq_atomic_commit(&w);
}
