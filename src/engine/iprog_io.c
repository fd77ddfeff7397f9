/* The .nnqi file: an integer program in a compact binary form.
 *
 *   header  40 bytes: magic "\x89NNQI\r\n\x1a", u32 version (1), u32 flags
 *           (bit 0: the payload is deflated), u64 stored payload bytes,
 *           u64 payload bytes once inflated, u32 CRC-32 (zlib) of the
 *           stored payload, u32 0
 *   payload little-endian: counts; tensors (name, storage and ONNX types,
 *           shape at batch 1, batched flag, grid, alias); input and output
 *           tensor indices; operators (kind, name, inputs, outputs, the
 *           kind's parameters). Weights of <= 4 bits are packed two per
 *           byte (low nibble first, each output channel's row starting on a
 *           byte), 5..8 bits one per byte, the reference path's int16 two;
 *           int32 biases; per-channel multipliers (int32) and shifts (one
 *           byte). The writer deflates the payload (zlib, level 9): int8
 *           weights shrink by a tenth or so; the reader takes both forms.
 *
 * The reader checks the CRC, then every count against the bytes that
 * remain and nnq's limits before it allocates (the inflated size against
 * deflate's largest ratio first), then validates the whole program
 * (ip_validate) and each value range; a truncated or corrupted file fails
 * with a message naming the file. Programs with float fallback nodes are
 * not saved (a .nnqi holds integer operators only). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/fileio.h"
#include "engine/iprog_impl.h"

static const unsigned char MAGIC[8] = {0x89, 'N', 'N', 'Q', 'I', '\r', '\n', 0x1a};
#define VERSION 1
#define HEADER_BYTES 40
#define FLAG_DEFLATE 1u
#define DEFLATE_MAX_RATIO 1032 /* zlib's bound on what one stored byte inflates to */

bool nnq_iprog_sniff(const void *head, size_t n) {
    return n >= sizeof MAGIC && memcmp(head, MAGIC, sizeof MAGIC) == 0;
}

/* ---- writer ---- */

typedef struct wbuf {
    unsigned char *d;
    size_t n, cap;
    bool oom;
} wbuf;

static void put(wbuf *w, const void *src, size_t n) {
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n) cap *= 2;
        unsigned char *d = realloc(w->d, cap);
        if (!d) {
            w->oom = true;
            return;
        }
        w->d = d;
        w->cap = cap;
    }
    memcpy(w->d + w->n, src, n);
    w->n += n;
}

/* Little-endian: x86-64 stores it so; the format says so. */
static void put_u8(wbuf *w, uint8_t v) { put(w, &v, 1); }
static void put_u32(wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_i32(wbuf *w, int32_t v) { put(w, &v, 4); }
static void put_i64(wbuf *w, int64_t v) { put(w, &v, 8); }
static void put_f32(wbuf *w, float v) { put(w, &v, 4); }
static void put_str(wbuf *w, const char *s) {
    const size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

static void put_weights(wbuf *w, const ip_linear *l) {
    const int64_t K = ip_linear_k(l), rows = l->nb * l->out_ch;
    if (l->w_bits == 16) {
        put(w, l->w16, sizeof(int16_t) * (size_t)(rows * K));
        return;
    }
    if (l->w_bits > 4) {
        put(w, l->w8, (size_t)(rows * K));
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const int8_t *row = l->w8 + r * K;
        for (int64_t k = 0; k < K; k += 2) {
            const uint8_t lo = (uint8_t)row[k] & 0xf, hi = k + 1 < K ? (uint8_t)row[k + 1] & 0xf : 0;
            put_u8(w, (uint8_t)(lo | hi << 4));
        }
    }
}

static void put_op(wbuf *w, const ip_op *o) {
    put_u8(w, (uint8_t)o->kind);
    put_str(w, o->name);
    put_u32(w, (uint32_t)o->n_in);
    for (int k = 0; k < o->n_in; k++) put_i32(w, o->in[k]);
    put_u32(w, (uint32_t)o->n_out);
    for (int k = 0; k < o->n_out; k++) put_i32(w, o->out[k]);
    switch (o->kind) {
    case IP_QUANTIZE:
    case IP_DEQUANTIZE: {
        const ip_qparams *q = o->par;
        put_i32(w, q->axis);
        put_i64(w, q->n);
        put(w, q->scale, sizeof(float) * (size_t)q->n);
        put(w, q->zp, sizeof(int32_t) * (size_t)q->n);
        put_i32(w, q->qmin);
        put_i32(w, q->qmax);
        break;
    }
    case IP_LINEAR: {
        const ip_linear *l = o->par;
        const int64_t g[14] = {l->in_ch, l->out_ch, l->groups, l->kh, l->kw, l->sh, l->sw,
                               l->dh,    l->dw,     l->pt,     l->pl, l->pb, l->pr, l->nb};
        put_u8(w, l->conv);
        for (int k = 0; k < 14; k++) put_i64(w, g[k]);
        put_u8(w, (uint8_t)l->w_bits);
        put_weights(w, l);
        put_u8(w, l->bias != NULL);
        if (l->bias) put(w, l->bias, sizeof(int32_t) * (size_t)l->out_ch);
        put_i32(w, l->x_zp);
        put_u8(w, (uint8_t)l->out_mode);
        if (l->out_mode == IP_OUT_U8) {
            put(w, l->mult, sizeof(int32_t) * (size_t)l->out_ch);
            for (int64_t c = 0; c < l->out_ch; c++) put_u8(w, (uint8_t)l->shift[c]);
            put_i32(w, l->y_zp);
            put_u8(w, l->lo);
            put_u8(w, l->hi);
            put_u8(w, l->hi_ch != NULL);
            if (l->hi_ch) put(w, l->hi_ch, (size_t)l->out_ch);
        } else if (l->out_mode == IP_OUT_ACC_FLOAT) {
            put(w, l->deq, sizeof(float) * (size_t)l->out_ch);
        }
        break;
    }
    case IP_ADD: {
        const ip_add *a = o->par;
        put_i32(w, a->za), put_i32(w, a->zb), put_i32(w, a->zy);
        put_i64(w, a->ma), put_i64(w, a->mb);
        put_i32(w, a->shift);
        put_u8(w, a->lo), put_u8(w, a->hi);
        break;
    }
    case IP_CONCAT:
    case IP_REQUANT: {
        const ip_requant *r = o->par;
        put_i32(w, r->axis);
        put_i32(w, r->n);
        for (int k = 0; k < r->n; k++) put_i32(w, r->r[k].z_in), put_i32(w, r->r[k].mult), put_i32(w, r->r[k].shift);
        put_i32(w, r->zy);
        put_u8(w, r->lo), put_u8(w, r->hi);
        break;
    }
    case IP_MAXPOOL:
    case IP_AVGPOOL: {
        const ip_pool *q = o->par;
        const int64_t g[10] = {q->kh, q->kw, q->sh, q->sw, q->dh, q->dw, q->pt, q->pl, q->pb, q->pr};
        put_u8(w, q->global);
        for (int k = 0; k < 10; k++) put_i64(w, g[k]);
        put_u8(w, q->include_pad);
        put_i32(w, q->zx), put_i32(w, q->zy);
        put_u8(w, q->same_grid);
        put_i64(w, q->taps);
        const bool table = o->kind == IP_AVGPOOL && !q->same_grid;
        put_u8(w, table);
        if (table) {
            put(w, q->mult, sizeof(int32_t) * (size_t)(q->taps + 1));
            put(w, q->shift, sizeof(int32_t) * (size_t)(q->taps + 1));
        }
        put_u8(w, q->lo), put_u8(w, q->hi);
        break;
    }
    case IP_LUT: put(w, ((const ip_lut *)o->par)->table, 256); break;
    default: break;
    }
}

nnq_status nnq_iprog_save(const nnq_iprog *p, const char *path) {
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == IP_FLOAT)
            return nnq_fail(NNQ_ERR_UNSUPPORTED,
                            "%s: node '%s' runs in float; a .nnqi holds integer operators only",
                            path, p->ops[i].name);
    wbuf w = {0};
    unsigned char header[HEADER_BYTES] = {0};
    put(&w, header, sizeof header); /* filled in below */
    put_u32(&w, (uint32_t)p->n_tensors);
    put_u32(&w, (uint32_t)p->n_ops);
    put_u32(&w, (uint32_t)p->n_inputs);
    put_u32(&w, (uint32_t)p->n_outputs);
    for (int i = 0; i < p->n_tensors; i++) {
        const ip_tensor *t = &p->t[i];
        put_str(&w, t->name);
        put_u8(&w, (uint8_t)t->dtype);
        put_u8(&w, (uint8_t)t->onnx_dtype);
        put_u8(&w, (uint8_t)t->rank);
        put_u8(&w, t->batched);
        for (int k = 0; k < t->rank; k++) put_i64(&w, t->dims[k]);
        put_f32(&w, t->scale);
        put_i32(&w, t->zp);
        put_i32(&w, t->alias);
    }
    for (int i = 0; i < p->n_inputs; i++) put_i32(&w, p->inputs[i]);
    for (int i = 0; i < p->n_outputs; i++) put_i32(&w, p->outputs[i]);
    for (int i = 0; i < p->n_ops; i++) put_op(&w, &p->ops[i]);
    if (w.oom) {
        free(w.d);
        return nnq_fail(NNQ_ERR_NOMEM, "%s: out of memory serialising the program", path);
    }
    const uint64_t raw = w.n - HEADER_BYTES;
    uLongf stored = compressBound((uLong)raw);
    unsigned char *file = malloc(HEADER_BYTES + (size_t)stored);
    if (!file) {
        free(w.d);
        return nnq_fail(NNQ_ERR_NOMEM, "%s: out of memory serialising the program", path);
    }
    if (compress2(file + HEADER_BYTES, &stored, w.d + HEADER_BYTES, (uLong)raw, 9) != Z_OK) {
        free(w.d);
        free(file);
        return nnq_fail(NNQ_ERR_NOMEM, "%s: deflating the program failed", path);
    }
    free(w.d);
    const uint32_t version = VERSION, flags = FLAG_DEFLATE, zero = 0;
    const uint64_t stored64 = stored;
    const uint32_t crc = (uint32_t)crc32(0L, file + HEADER_BYTES, (uInt)stored);
    memcpy(file, MAGIC, 8);
    memcpy(file + 8, &version, 4);
    memcpy(file + 12, &flags, 4);
    memcpy(file + 16, &stored64, 8);
    memcpy(file + 24, &raw, 8);
    memcpy(file + 32, &crc, 4);
    memcpy(file + 36, &zero, 4);
    nnq_status s = nnq_write_file_atomic(path, file, HEADER_BYTES + (size_t)stored);
    free(file);
    return s;
}

/* ---- reader ---- */

typedef struct rbuf {
    const unsigned char *d;
    size_t n, off;
    bool bad;
} rbuf;

static bool take(rbuf *r, void *dst, size_t n) {
    if (r->bad || n > r->n - r->off) {
        r->bad = true;
        if (dst && n <= 64) memset(dst, 0, n);
        return false;
    }
    if (dst) memcpy(dst, r->d + r->off, n);
    r->off += n;
    return true;
}
static uint8_t get_u8(rbuf *r) { uint8_t v = 0; take(r, &v, 1); return v; }
static uint32_t get_u32(rbuf *r) { uint32_t v = 0; take(r, &v, 4); return v; }
static int32_t get_i32(rbuf *r) { int32_t v = 0; take(r, &v, 4); return v; }
static int64_t get_i64(rbuf *r) { int64_t v = 0; take(r, &v, 8); return v; }
static float get_f32(rbuf *r) { float v = 0; take(r, &v, 4); return v; }

/* count elements of `size` bytes, checked against what remains before
 * allocating; NULL (r->bad) if they cannot be there. */
static void *get_array(rbuf *r, int64_t count, size_t size) {
    if (r->bad || count < 0 || (uint64_t)count > (r->n - r->off) / size) {
        r->bad = true;
        return NULL;
    }
    const size_t bytes = (size_t)count * size;
    void *a = malloc(bytes ? bytes : 1);
    if (!a || !take(r, a, bytes)) {
        free(a);
        r->bad = true;
        return NULL;
    }
    return a;
}

static char *get_str(rbuf *r) {
    const uint32_t n = get_u32(r);
    if (n > NNQ_MAX_NAME) r->bad = true;
    char *s = get_array(r, n, 1);
    if (!s) return NULL;
    char *z = realloc(s, (size_t)n + 1);
    if (!z) {
        free(s);
        r->bad = true;
        return NULL;
    }
    z[n] = '\0';
    return z;
}

/* Sizes a linear operator's arrays need, each far below int64 limits
 * (ip_validate re-checks the geometry). */
static bool linear_dims_ok(const ip_linear *l) {
    const int64_t big = (int64_t)1 << 24;
    return l->in_ch >= 1 && l->in_ch <= big && l->out_ch >= 1 && l->out_ch <= big &&
           l->groups >= 1 && l->in_ch % l->groups == 0 && l->kh >= 1 && l->kh <= 4096 &&
           l->kw >= 1 && l->kw <= 4096 && l->nb >= 1 && l->nb <= (1 << 20);
}

static void *get_linear(rbuf *r) {
    ip_linear *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->conv = get_u8(r) != 0;
    int64_t g[14];
    for (int k = 0; k < 14; k++) g[k] = get_i64(r);
    l->in_ch = g[0], l->out_ch = g[1], l->groups = g[2], l->kh = g[3], l->kw = g[4];
    l->sh = g[5], l->sw = g[6], l->dh = g[7], l->dw = g[8], l->pt = g[9], l->pl = g[10];
    l->pb = g[11], l->pr = g[12], l->nb = g[13];
    l->w_bits = get_u8(r);
    if (r->bad || !linear_dims_ok(l) || !((l->w_bits >= 2 && l->w_bits <= 8) || l->w_bits == 16)) {
        r->bad = true;
        return l;
    }
    const int64_t K = ip_linear_k(l), rows = l->nb * l->out_ch, M = l->out_ch;
    const size_t left = r->n - r->off;
    if (l->w_bits == 16) {
        if ((uint64_t)K > left / 2 / (uint64_t)rows) {
            r->bad = true;
            return l;
        }
        l->w16 = get_array(r, rows * K, sizeof(int16_t));
    } else if (l->w_bits > 4) {
        if ((uint64_t)K > left / (uint64_t)rows) {
            r->bad = true;
            return l;
        }
        l->w8 = get_array(r, rows * K, 1);
    } else {
        const int64_t rb = (K + 1) / 2;
        if ((uint64_t)rb > left / (uint64_t)rows) {
            r->bad = true;
            return l;
        }
        uint8_t *packed = get_array(r, rows * rb, 1);
        l->w8 = packed ? malloc((size_t)(rows * K)) : NULL;
        if (!l->w8) r->bad = true;
        for (int64_t i = 0; l->w8 && i < rows; i++)
            for (int64_t k = 0; k < K; k++) {
                const uint8_t b = packed[i * rb + k / 2], nib = k & 1 ? b >> 4 : b & 0xf;
                l->w8[i * K + k] = (int8_t)(nib >= 8 ? (int)nib - 16 : (int)nib);
            }
        free(packed);
    }
    /* weights within their grid */
    const int32_t wlo = l->w_bits == 16 ? INT16_MIN : -(1 << (l->w_bits - 1));
    const int32_t whi = l->w_bits == 16 ? INT16_MAX : (1 << (l->w_bits - 1)) - 1;
    for (int64_t i = 0; !r->bad && l->w8 && i < rows * K; i++)
        if (l->w8[i] < wlo || l->w8[i] > whi) r->bad = true;
    if (get_u8(r)) l->bias = get_array(r, M, sizeof(int32_t));
    l->x_zp = get_i32(r);
    l->out_mode = (ip_out_mode)get_u8(r);
    if (l->out_mode == IP_OUT_U8) {
        l->mult = get_array(r, M, sizeof(int32_t));
        uint8_t *sh = get_array(r, M, 1);
        l->shift = sh ? malloc(sizeof(int32_t) * (size_t)M) : NULL;
        for (int64_t c = 0; l->shift && c < M; c++) l->shift[c] = sh[c];
        if (!l->shift) r->bad = true;
        free(sh);
        l->y_zp = get_i32(r);
        l->lo = get_u8(r);
        l->hi = get_u8(r);
        if (get_u8(r)) l->hi_ch = get_array(r, M, 1);
    } else if (l->out_mode == IP_OUT_ACC_FLOAT) {
        l->deq = get_array(r, M, sizeof(float));
    } else if (l->out_mode != IP_OUT_ACC_INT32) {
        r->bad = true;
    }
    return l;
}

static void *get_par(rbuf *r, ip_kind kind) {
    switch (kind) {
    case IP_QUANTIZE:
    case IP_DEQUANTIZE: {
        ip_qparams *q = calloc(1, sizeof *q);
        if (!q) return NULL;
        q->axis = get_i32(r);
        q->n = get_i64(r);
        if (q->n < 1 || q->n > (1 << 24)) r->bad = true;
        q->scale = get_array(r, q->n, sizeof(float));
        q->zp = get_array(r, q->n, sizeof(int32_t));
        q->qmin = get_i32(r);
        q->qmax = get_i32(r);
        return q;
    }
    case IP_LINEAR: return get_linear(r);
    case IP_ADD: {
        ip_add *a = calloc(1, sizeof *a);
        if (!a) return NULL;
        a->za = get_i32(r), a->zb = get_i32(r), a->zy = get_i32(r);
        a->ma = get_i64(r), a->mb = get_i64(r);
        a->shift = get_i32(r);
        a->lo = get_u8(r), a->hi = get_u8(r);
        return a;
    }
    case IP_CONCAT:
    case IP_REQUANT: {
        ip_requant *q = calloc(1, sizeof *q);
        if (!q) return NULL;
        q->axis = get_i32(r);
        q->n = get_i32(r);
        if (q->n < 1 || q->n > NNQ_MAX_VALUES) r->bad = true;
        q->r = get_array(r, q->n, sizeof(ip_rescale)); /* three int32 each */
        q->zy = get_i32(r);
        q->lo = get_u8(r), q->hi = get_u8(r);
        return q;
    }
    case IP_MAXPOOL:
    case IP_AVGPOOL: {
        ip_pool *q = calloc(1, sizeof *q);
        if (!q) return NULL;
        q->global = get_u8(r) != 0;
        int64_t g[10];
        for (int k = 0; k < 10; k++) g[k] = get_i64(r);
        q->kh = g[0], q->kw = g[1], q->sh = g[2], q->sw = g[3], q->dh = g[4], q->dw = g[5];
        q->pt = g[6], q->pl = g[7], q->pb = g[8], q->pr = g[9];
        q->include_pad = get_u8(r) != 0;
        q->zx = get_i32(r), q->zy = get_i32(r);
        q->same_grid = get_u8(r) != 0;
        q->taps = get_i64(r);
        if (q->kh < 1 || q->kw < 1 || q->kh > 4096 || q->kw > 4096 || q->taps != q->kh * q->kw)
            r->bad = true;
        if (get_u8(r)) {
            q->mult = get_array(r, q->taps + 1, sizeof(int32_t));
            q->shift = get_array(r, q->taps + 1, sizeof(int32_t));
        }
        q->lo = get_u8(r), q->hi = get_u8(r);
        return q;
    }
    case IP_LUT: {
        ip_lut *l = malloc(sizeof *l);
        if (l) take(r, l->table, 256);
        return l;
    }
    default: r->bad = true; return NULL;
    }
}

static nnq_status parse(const unsigned char *payload, size_t len, const char *what,
                        nnq_iprog **out);

nnq_status nnq_iprog_from_bytes(const unsigned char *data, size_t len, const char *what,
                                nnq_iprog **out) {
    *out = NULL;
    if (len < HEADER_BYTES || !nnq_iprog_sniff(data, len))
        return nnq_fail(NNQ_ERR_PARSE, "%s: not a .nnqi file (bad magic or shorter than its header)", what);
    uint32_t version, flags, crc;
    uint64_t stored, raw;
    memcpy(&version, data + 8, 4);
    memcpy(&flags, data + 12, 4);
    memcpy(&stored, data + 16, 8);
    memcpy(&raw, data + 24, 8);
    memcpy(&crc, data + 32, 4);
    if (version != VERSION)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: .nnqi version %u (this nnq reads %d)", what,
                        version, VERSION);
    if (flags & ~FLAG_DEFLATE)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s: unknown .nnqi flags 0x%x", what, flags);
    if (stored != len - HEADER_BYTES)
        return nnq_fail(NNQ_ERR_PARSE, "%s: truncated or padded: the header says %llu payload bytes, "
                        "the file has %zu", what, (unsigned long long)stored, len - HEADER_BYTES);
    if ((uint32_t)crc32(0L, data + HEADER_BYTES, (uInt)stored) != crc)
        return nnq_fail(NNQ_ERR_PARSE, "%s: CRC-32 mismatch: the file is corrupted", what);
    if (!(flags & FLAG_DEFLATE)) {
        if (raw != stored)
            return nnq_fail(NNQ_ERR_PARSE, "%s: stored payload of %llu bytes claims %llu", what,
                            (unsigned long long)stored, (unsigned long long)raw);
        return parse(data + HEADER_BYTES, (size_t)stored, what, out);
    }
    if (raw > NNQ_MAX_MODEL_BYTES || raw > (uint64_t)DEFLATE_MAX_RATIO * stored + 64)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: the payload claims to inflate to %llu bytes", what,
                        (unsigned long long)raw);
    unsigned char *buf = malloc(raw ? (size_t)raw : 1);
    if (!buf) return nnq_fail(NNQ_ERR_NOMEM, "%s: out of memory (%llu bytes)", what,
                              (unsigned long long)raw);
    uLongf got = (uLongf)raw;
    const int z = uncompress(buf, &got, data + HEADER_BYTES, (uLong)stored);
    nnq_status s;
    if (z != Z_OK || got != raw)
        s = nnq_fail(NNQ_ERR_PARSE, "%s: the deflated payload is damaged (%s)", what,
                     z == Z_OK ? "wrong size" : zError(z));
    else
        s = parse(buf, (size_t)raw, what, out);
    free(buf);
    return s;
}

static nnq_status parse(const unsigned char *payload, size_t len, const char *what,
                        nnq_iprog **out) {
    rbuf r = {payload, len, 0, false};
    nnq_iprog *p = calloc(1, sizeof *p);
    if (!p) return nnq_fail(NNQ_ERR_NOMEM, "%s: out of memory", what);
    nnq_status s = NNQ_OK;
    const uint32_t nt = get_u32(&r), no = get_u32(&r), ni = get_u32(&r), nout = get_u32(&r);
    /* each tensor and operator takes at least 4 bytes: a cheap bound first */
    if (r.bad || nt > NNQ_MAX_VALUES || no > NNQ_MAX_NODES || ni > nt || nout > nt ||
        nt > r.n / 4 || no > r.n / 4) {
        s = nnq_fail(NNQ_ERR_LIMIT, "%s: counts beyond the file or nnq's limits", what);
        goto fail;
    }
    p->t = calloc(nt ? nt : 1, sizeof *p->t);
    p->ops = calloc(no ? no : 1, sizeof *p->ops);
    if (!p->t || !p->ops) {
        s = nnq_fail(NNQ_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    p->cap_tensors = (int)(nt ? nt : 1);
    p->cap_ops = (int)(no ? no : 1);
    for (uint32_t i = 0; i < nt && !r.bad; i++) {
        ip_tensor *t = &p->t[i];
        t->name = get_str(&r);
        p->n_tensors = (int)i + 1;
        t->dtype = (nnq_dtype)get_u8(&r);
        t->onnx_dtype = (nnq_dtype)get_u8(&r);
        t->rank = get_u8(&r);
        t->batched = get_u8(&r) != 0;
        if (t->rank > NNQ_MAX_RANK) r.bad = true;
        for (int k = 0; k < t->rank && !r.bad; k++) {
            t->dims[k] = get_i64(&r);
            if (t->dims[k] < 0 || t->dims[k] > ((int64_t)1 << 32)) r.bad = true;
        }
        t->scale = get_f32(&r);
        t->zp = get_i32(&r);
        t->alias = get_i32(&r);
        size_t bytes;
        nnq_tensor shape = {.dtype = t->dtype, .rank = t->rank};
        memcpy(shape.dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        if (!r.bad && (t->dtype == NNQ_DT_UINT8 || t->dtype == NNQ_DT_INT32 || t->dtype == NNQ_DT_FLOAT) &&
            nnq_tensor_nbytes(&shape, &bytes) != NNQ_OK)
            r.bad = true;
    }
    p->inputs = get_array(&r, ni, sizeof(int32_t));
    p->outputs = get_array(&r, nout, sizeof(int32_t));
    p->n_inputs = p->inputs ? (int)ni : 0;
    p->n_outputs = p->outputs ? (int)nout : 0;
    for (uint32_t i = 0; i < no && !r.bad; i++) {
        ip_op *o = &p->ops[i];
        o->kind = (ip_kind)get_u8(&r);
        o->name = get_str(&r);
        p->n_ops = (int)i + 1;
        const uint32_t n_in = get_u32(&r);
        if (n_in > NNQ_MAX_VALUES) r.bad = true;
        o->in = get_array(&r, n_in, sizeof(int32_t));
        o->n_in = o->in ? (int)n_in : 0;
        const uint32_t n_out = get_u32(&r);
        if (n_out > NNQ_MAX_VALUES) r.bad = true;
        o->out = get_array(&r, n_out, sizeof(int32_t));
        o->n_out = o->out ? (int)n_out : 0;
        if (r.bad) break;
        if (o->kind >= IP_N_KINDS || o->kind == IP_FLOAT) {
            r.bad = true;
            break;
        }
        o->par = get_par(&r, o->kind);
        if (!o->par) r.bad = true;
    }
    if (r.bad) {
        s = nnq_fail(NNQ_ERR_PARSE, "%s: malformed program (a count or size does not fit the "
                     "%zu-byte payload at offset %zu)", what, r.n, r.off);
        goto fail;
    }
    if (r.off != r.n) {
        s = nnq_fail(NNQ_ERR_PARSE, "%s: %zu bytes after the program", what, r.n - r.off);
        goto fail;
    }
    if ((s = ip_validate(p)) != NNQ_OK) {
        nnq_fail_context(s, "%s: ", what);
        goto fail;
    }
    *out = p;
    return NNQ_OK;
fail:
    nnq_iprog_free(p);
    return s;
}

nnq_status nnq_iprog_load(const char *path, nnq_iprog **out) {
    unsigned char *data = NULL;
    size_t len = 0;
    *out = NULL;
    NNQ_TRY(nnq_read_file(path, NNQ_MAX_MODEL_BYTES, &data, &len));
    nnq_status s = nnq_iprog_from_bytes(data, len, path, out);
    free(data);
    return s;
}
