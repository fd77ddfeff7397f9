/* Checkpoint writing and strict reading. */
#include "train/checkpoint.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/limits.h"

static const char MAGIC[8] = {'N', 'N', 'Q', 'C', 'K', 'P', 'T', '\0'};
#define MAX_CHECKPOINT_BYTES ((size_t)8 << 30)

enum { REC_PARAM = 0, REC_STATE = 1, REC_OPT0 = 2, REC_OPT1 = 3 };

/* ---- writing: bytes go through a CRC and stdio ---- */

typedef struct writer {
    FILE *fp;
    uLong crc;
    bool failed;
} writer;

static void put_bytes(writer *w, const void *p, size_t n) {
    if (w->failed || n == 0) return;
    w->crc = crc32(w->crc, p, (uInt)n);
    if (fwrite(p, 1, n, w->fp) != n) w->failed = true;
}

static void put_u32(writer *w, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, 4);
}

static void put_u64(writer *w, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    put_bytes(w, b, 8);
}

static void put_floats(writer *w, const float *p, int64_t n) {
    unsigned char buf[4096];
    int64_t i = 0;
    while (i < n) {
        int64_t k = 0;
        for (; k < (int64_t)sizeof buf / 4 && i < n; k++, i++) {
            uint32_t u;
            memcpy(&u, &p[i], 4);
            for (int b = 0; b < 4; b++) buf[4 * k + b] = (unsigned char)(u >> (8 * b));
        }
        put_bytes(w, buf, (size_t)k * 4);
    }
}

static void put_record(writer *w, uint32_t kind, const char *name, const float *p, int64_t n) {
    size_t len = strlen(name);
    put_u32(w, kind);
    put_u32(w, (uint32_t)len);
    put_bytes(w, name, len);
    put_u64(w, (uint64_t)n);
    put_floats(w, p, n);
}

static int record_count(const nnq_params *ps, const nnq_optim *o) {
    return ps->n * (1 + o->n_state) + ps->n_state;
}

nnq_status nnq_checkpoint_save(const char *path, const nnq_params *ps, const nnq_optim *o,
                               const nnq_checkpoint_meta *meta) {
    nnq_atomic_file af;
    NNQ_TRY(nnq_atomic_open(&af, path));
    writer w = {af.fp, crc32(0L, Z_NULL, 0), false};
    put_bytes(&w, MAGIC, sizeof MAGIC);
    put_u32(&w, NNQ_CHECKPOINT_VERSION);
    put_u32(&w, (uint32_t)o->cfg.kind);
    put_u64(&w, (uint64_t)meta->epoch);
    put_u64(&w, (uint64_t)meta->step);
    for (int i = 0; i < 4; i++) put_u64(&w, meta->rng.s[i]);
    put_u64(&w, (uint64_t)meta->epoch_step);
    for (int i = 0; i < 4; i++) put_u64(&w, meta->epoch_rng.s[i]);
    put_u64(&w, (uint64_t)meta->train_n);
    put_u64(&w, (uint64_t)meta->batch);
    uint64_t loss_bits;
    memcpy(&loss_bits, &meta->epoch_loss_sum, sizeof loss_bits);
    put_u64(&w, loss_bits);
    put_u64(&w, (uint64_t)meta->epoch_correct);
    put_u32(&w, (uint32_t)record_count(ps, o));
    for (int i = 0; i < ps->n; i++)
        put_record(&w, REC_PARAM, nnq_params_name(ps, i), ps->p[i].data, ps->p[i].numel);
    for (int i = 0; i < ps->n_state; i++) {
        const nnq_value *v = &ps->g->values[ps->state[i]];
        put_record(&w, REC_STATE, v->name, nnq_f32(&v->t), nnq_tensor_numel(&v->t));
    }
    for (int k = 0; k < o->n_state; k++)
        for (int i = 0; i < ps->n; i++)
            put_record(&w, REC_OPT0 + (uint32_t)k, nnq_params_name(ps, i),
                       o->state[k] + ps->p[i].offset, ps->p[i].numel);
    uint32_t crc = (uint32_t)w.crc;
    put_u32(&w, crc);
    if (w.failed) {
        nnq_atomic_abort(&af);
        return nnq_fail(NNQ_ERR_IO, "writing checkpoint %s failed", path);
    }
    return nnq_atomic_commit(&af);
}

/* ---- reading ---- */

typedef struct reader {
    const unsigned char *p;
    size_t len, pos;
    bool short_read;
} reader;

static const unsigned char *take(reader *r, size_t n) {
    if (r->short_read || n > r->len - r->pos) {
        r->short_read = true;
        return NULL;
    }
    const unsigned char *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static uint64_t get_le(reader *r, int bytes) {
    const unsigned char *q = take(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; q && i < bytes; i++) v |= (uint64_t)q[i] << (8 * i);
    return v;
}

typedef struct record {
    uint32_t kind;
    const char *name;
    uint32_t name_len;
    uint64_t n;
    const unsigned char *data;
} record;

static void read_floats(const unsigned char *src, float *dst, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int b = 0; b < 4; b++) u |= (uint32_t)src[4 * i + (uint64_t)b] << (8 * b);
        memcpy(&dst[i], &u, 4);
    }
}

static bool name_is(const record *rec, const char *name) {
    return strlen(name) == rec->name_len && memcmp(rec->name, name, rec->name_len) == 0;
}

/* The record of `kind` named `name` holding exactly n floats, or NULL. */
static const record *find_record(const record *recs, uint32_t n_recs, uint32_t kind,
                                 const char *name, int64_t n, const char *path,
                                 nnq_status *s) {
    for (uint32_t i = 0; i < n_recs; i++) {
        if (recs[i].kind != kind || !name_is(&recs[i], name)) continue;
        if (recs[i].n != (uint64_t)n) {
            *s = nnq_fail(NNQ_ERR_SHAPE, "checkpoint %s: '%s' has %llu values, the model %lld",
                          path, name, (unsigned long long)recs[i].n, (long long)n);
            return NULL;
        }
        return &recs[i];
    }
    *s = nnq_fail(NNQ_ERR_INVALID, "checkpoint %s has no %s for '%s' (a different model?)", path,
                  kind == REC_PARAM ? "parameter" : kind == REC_STATE ? "training state"
                                                                      : "optimizer state",
                  name);
    return NULL;
}

static nnq_status parse(const char *path, const unsigned char *buf, size_t len,
                        nnq_checkpoint_meta *meta, uint32_t *kind, record **out_recs,
                        uint32_t *out_n) {
    reader r = {buf, len, 0, false};
    *out_recs = NULL;
    if (len < sizeof MAGIC + 4 || memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return nnq_fail(NNQ_ERR_PARSE, "%s is not an nnq checkpoint (bad magic)", path);
    uint32_t stored = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                      (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
    if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(len - 4)) != stored)
        return nnq_fail(NNQ_ERR_PARSE, "checkpoint %s is corrupt (CRC mismatch)", path);
    r.len = len - 4;
    take(&r, sizeof MAGIC);
    uint32_t version = (uint32_t)get_le(&r, 4);
    if (version < 1 || version > NNQ_CHECKPOINT_VERSION)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "checkpoint %s has version %u; this nnq reads 1..%d",
                        path, version, NNQ_CHECKPOINT_VERSION);
    memset(meta, 0, sizeof *meta);
    *kind = (uint32_t)get_le(&r, 4);
    meta->epoch = (int64_t)get_le(&r, 8);
    meta->step = (int64_t)get_le(&r, 8);
    for (int i = 0; i < 4; i++) meta->rng.s[i] = get_le(&r, 8);
    if (version >= 2) {
        meta->epoch_step = (int64_t)get_le(&r, 8);
        for (int i = 0; i < 4; i++) meta->epoch_rng.s[i] = get_le(&r, 8);
        meta->train_n = (int64_t)get_le(&r, 8);
        meta->batch = (int64_t)get_le(&r, 8);
        uint64_t loss_bits = get_le(&r, 8);
        memcpy(&meta->epoch_loss_sum, &loss_bits, sizeof loss_bits);
        meta->epoch_correct = (int64_t)get_le(&r, 8);
    }
    uint32_t n = (uint32_t)get_le(&r, 4);
    /* Each record takes at least 16 bytes: bound n by the file before allocating. */
    if (r.short_read || n > (r.len - r.pos) / 16)
        return nnq_fail(NNQ_ERR_PARSE, "checkpoint %s is truncated", path);
    record *recs = calloc(n ? n : 1, sizeof *recs);
    if (!recs) return nnq_fail(NNQ_ERR_NOMEM, "out of memory reading %s", path);
    for (uint32_t i = 0; i < n; i++) {
        recs[i].kind = (uint32_t)get_le(&r, 4);
        recs[i].name_len = (uint32_t)get_le(&r, 4);
        if (recs[i].name_len > NNQ_MAX_NAME) r.short_read = true;
        recs[i].name = (const char *)take(&r, recs[i].name_len);
        recs[i].n = get_le(&r, 8);
        if (recs[i].n > (r.len - r.pos) / 4) r.short_read = true;
        recs[i].data = take(&r, (size_t)recs[i].n * 4);
        if (r.short_read) break;
    }
    if (r.short_read || r.pos != r.len) {
        free(recs);
        return nnq_fail(NNQ_ERR_PARSE, "checkpoint %s is malformed (record sizes do not add up)",
                        path);
    }
    *out_recs = recs;
    *out_n = n;
    return NNQ_OK;
}

nnq_status nnq_checkpoint_load(const char *path, nnq_params *ps, nnq_optim *o,
                               nnq_checkpoint_meta *meta) {
    unsigned char *buf = NULL;
    size_t len = 0;
    record *recs = NULL;
    uint32_t n_recs = 0, kind = 0;
    nnq_checkpoint_meta m;
    const record **param_rec = NULL, **state_rec = NULL, **opt_rec = NULL;
    nnq_status s = nnq_read_file(path, MAX_CHECKPOINT_BYTES, &buf, &len);
    if (s != NNQ_OK) return s;
    if ((s = parse(path, buf, len, &m, &kind, &recs, &n_recs)) != NNQ_OK) goto done;
    if (kind != (uint32_t)o->cfg.kind) {
        s = nnq_fail(NNQ_ERR_INVALID, "checkpoint %s was written by optimizer '%s', not '%s'",
                     path, kind <= NNQ_OPTIM_ADAMW ? nnq_optim_name((nnq_optim_kind)kind) : "?",
                     nnq_optim_name(o->cfg.kind));
        goto done;
    }
    if (n_recs != (uint32_t)record_count(ps, o)) {
        s = nnq_fail(NNQ_ERR_INVALID,
                     "checkpoint %s holds %u tensors, the model and optimizer have %d", path,
                     n_recs, record_count(ps, o));
        goto done;
    }
    /* Match everything first; copy only when the whole file fits. */
    param_rec = calloc((size_t)(ps->n ? ps->n : 1), sizeof *param_rec);
    state_rec = calloc((size_t)(ps->n_state ? ps->n_state : 1), sizeof *state_rec);
    opt_rec = calloc((size_t)(ps->n ? ps->n : 1) * 2, sizeof *opt_rec);
    if (!param_rec || !state_rec || !opt_rec) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    for (int i = 0; i < ps->n; i++) {
        const char *name = nnq_params_name(ps, i);
        if (!(param_rec[i] = find_record(recs, n_recs, REC_PARAM, name, ps->p[i].numel, path, &s)))
            goto done;
        for (int k = 0; k < o->n_state; k++)
            if (!(opt_rec[2 * i + k] = find_record(recs, n_recs, REC_OPT0 + (uint32_t)k, name,
                                                   ps->p[i].numel, path, &s)))
                goto done;
    }
    for (int i = 0; i < ps->n_state; i++) {
        const nnq_value *v = &ps->g->values[ps->state[i]];
        if (!(state_rec[i] = find_record(recs, n_recs, REC_STATE, v->name,
                                         nnq_tensor_numel(&v->t), path, &s)))
            goto done;
    }
    for (int i = 0; i < ps->n; i++) {
        read_floats(param_rec[i]->data, ps->p[i].data, param_rec[i]->n);
        for (int k = 0; k < o->n_state; k++)
            read_floats(opt_rec[2 * i + k]->data, o->state[k] + ps->p[i].offset,
                        opt_rec[2 * i + k]->n);
    }
    for (int i = 0; i < ps->n_state; i++)
        read_floats(state_rec[i]->data, nnq_f32(&ps->g->values[ps->state[i]].t), state_rec[i]->n);
    o->steps = m.step;
    *meta = m;
done:
    free(param_rec);
    free(state_rec);
    free(opt_rec);
    free(recs);
    free(buf);
    return s;
}
