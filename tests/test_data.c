/* Data layer: IDX and .npy readers, the .npy writer, Fashion-MNIST and
 * .npy datasets. Reference numbers come from NumPy / torchvision (the
 * command is beside each); malformed files are built at run time in a
 * temporary directory. Valid .npy fixtures: tests/fixtures/data/gen_npy.py. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/npy.h"

#define FIX "tests/fixtures/data/"
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---- temporary files ---- */

static char tmp_dir[64];
static char tmp_names[256][128];
static int tmp_count;

static const char *tmp_path(const char *name) {
    for (int i = 0; i < tmp_count; i++)
        if (strcmp(strrchr(tmp_names[i], '/') + 1, name) == 0) return tmp_names[i];
    if (tmp_count == 256) abort(); /* test bug, not a library failure */
    snprintf(tmp_names[tmp_count], sizeof tmp_names[0], "%s/%s", tmp_dir, name);
    return tmp_names[tmp_count++];
}

static const char *write_tmp(const char *name, const void *buf, size_t len) {
    const char *p = tmp_path(name);
    FILE *fp = fopen(p, "wb");
    CHECK(fp != NULL);
    if (!fp) return p;
    CHECK(fwrite(buf, 1, len, fp) == len);
    fclose(fp);
    return p;
}

static const char *write_tmp_gz(const char *name, const void *buf, size_t len) {
    const char *p = tmp_path(name);
    gzFile gz = gzopen(p, "wb9");
    CHECK(gz != NULL);
    if (!gz) return p;
    CHECK(gzwrite(gz, buf, (unsigned)len) == (int)len);
    gzclose(gz);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return b;
}

/* A failure must carry a message, and the message must say what it is about. */
#define CHECK_FAILS(expr, want, needle)                                        \
    do {                                                                       \
        nnq_clear_error();                                                     \
        CHECK_STATUS(expr, want);                                              \
        CHECK(strcmp(nnq_last_error(), "no error") != 0);                      \
        if (strstr(nnq_last_error(), needle) == NULL) {                        \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__,  \
                    __LINE__, nnq_last_error(), needle);                       \
            check_failures_++;                                                 \
        }                                                                      \
    } while (0)

/* ---- .npy ---- */

static void test_npy_numpy_fixtures(void) {
    static const struct {
        const char *file;
        nnq_dtype dt;
    } all[] = {
        {FIX "t_f4.npy", NNQ_DT_FLOAT},  {FIX "t_f8.npy", NNQ_DT_DOUBLE},
        {FIX "t_f2.npy", NNQ_DT_FLOAT16}, {FIX "t_i8.npy", NNQ_DT_INT64},
        {FIX "t_i4.npy", NNQ_DT_INT32},  {FIX "t_i2.npy", NNQ_DT_INT16},
        {FIX "t_i1.npy", NNQ_DT_INT8},   {FIX "t_u8.npy", NNQ_DT_UINT64},
        {FIX "t_u4.npy", NNQ_DT_UINT32}, {FIX "t_u2.npy", NNQ_DT_UINT16},
        {FIX "t_u1.npy", NNQ_DT_UINT8},  {FIX "t_b1.npy", NNQ_DT_BOOL},
    };
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        nnq_tensor t;
        CHECK_OK(nnq_npy_read(all[k].file, &t));
        CHECK(t.dtype == all[k].dt);
        CHECK(t.rank == 1 && t.dims[0] == 5);
        if (t.data && t.rank == 1 && t.dims[0] == 5)
            for (int i = 0; i < 5; i++)
                CHECK(nnq_tensor_get_float(&t, i) == (all[k].dt == NNQ_DT_BOOL ? i % 2 : i));
        nnq_tensor_release(&t);
    }

    nnq_tensor t;
    CHECK_OK(nnq_npy_read(FIX "f4_2x3.npy", &t));
    CHECK(t.dtype == NNQ_DT_FLOAT && t.rank == 2 && t.dims[0] == 2 && t.dims[1] == 3);
    for (int i = 0; t.data && i < 6; i++) CHECK(nnq_f32(&t)[i] == i * 0.25f - 0.5f);
    nnq_tensor_release(&t);

    CHECK_OK(nnq_npy_read(FIX "f8_3_v2.npy", &t)); /* format 2.0 */
    CHECK(t.dtype == NNQ_DT_DOUBLE && t.rank == 1 && t.dims[0] == 3);
    if (t.data) {
        const double *d = t.data;
        CHECK(d[0] == 1.5 && d[1] == -2.25 && d[2] == 1e300);
    }
    nnq_tensor_release(&t);

    CHECK_OK(nnq_npy_read(FIX "i4_2x2_v3.npy", &t)); /* format 3.0 */
    CHECK(t.dtype == NNQ_DT_INT32 && t.rank == 2 && t.dims[0] == 2 && t.dims[1] == 2);
    if (t.data) {
        const int32_t *v = t.data;
        CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3 && v[3] == -4);
    }
    nnq_tensor_release(&t);

    CHECK_OK(nnq_npy_read(FIX "f8_scalar.npy", &t));
    CHECK(t.dtype == NNQ_DT_DOUBLE && t.rank == 0 && t.data && *(double *)t.data == 3.5);
    nnq_tensor_release(&t);

    CHECK_OK(nnq_npy_read(FIX "f4_0x3.npy", &t));
    CHECK(t.rank == 2 && t.dims[0] == 0 && t.dims[1] == 3);
    nnq_tensor_release(&t);

    CHECK_FAILS(nnq_npy_read(FIX "f4_fortran.npy", &t), NNQ_ERR_UNSUPPORTED, "Fortran");
    CHECK(t.data == NULL);
    CHECK_FAILS(nnq_npy_read(FIX "f4_bigendian.npy", &t), NNQ_ERR_UNSUPPORTED, "big-endian");
    CHECK_FAILS(nnq_npy_read(FIX "no_such_file.npy", &t), NNQ_ERR_IO, "no_such_file.npy");
}

static void fill_pattern(nnq_tensor *t) {
    size_t nbytes;
    if (nnq_tensor_nbytes(t, &nbytes) != NNQ_OK) return;
    unsigned char *b = t->data;
    for (size_t i = 0; i < nbytes; i++) b[i] = (unsigned char)(i * 37 + 11);
    if (t->dtype == NNQ_DT_BOOL)
        for (size_t i = 0; i < nbytes; i++) b[i] &= 1;
}

static void test_npy_round_trip(void) {
    static const nnq_dtype dts[] = {NNQ_DT_FLOAT, NNQ_DT_DOUBLE, NNQ_DT_FLOAT16, NNQ_DT_INT64,
                                    NNQ_DT_INT32, NNQ_DT_INT16,  NNQ_DT_INT8,    NNQ_DT_UINT64,
                                    NNQ_DT_UINT32, NNQ_DT_UINT16, NNQ_DT_UINT8,  NNQ_DT_BOOL};
    static const struct {
        int rank;
        int64_t dims[4];
    } shapes[] = {{3, {2, 3, 4}}, {1, {7}}, {0, {0}}, {2, {0, 3}}, {4, {1, 2, 1, 3}}};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            nnq_tensor t = {0}, r;
            CHECK_OK(nnq_tensor_alloc(&t, dts[k], shapes[s].rank, shapes[s].dims));
            fill_pattern(&t);
            const char *p = tmp_path("round.npy");
            CHECK_OK(nnq_npy_write(p, &t));
            CHECK_OK(nnq_npy_read(p, &r));
            size_t nbytes = 0, flen = 0;
            CHECK_OK(nnq_tensor_nbytes(&t, &nbytes));
            CHECK(r.dtype == t.dtype && nnq_shape_equal(&r, &t));
            CHECK(r.data && memcmp(r.data, t.data, nbytes) == 0);
            nnq_tensor_release(&r);

            /* NumPy's layout: version 1.0, data 64-byte aligned, header ends in '\n'. */
            unsigned char *bytes = slurp(p, &flen);
            CHECK(bytes != NULL && flen >= nbytes + 64);
            if (bytes && flen >= nbytes + 64) {
                size_t off = flen - nbytes;
                CHECK(memcmp(bytes, "\x93NUMPY\x01\x00", 8) == 0);
                CHECK(off % 64 == 0);
                CHECK((size_t)(bytes[8] | bytes[9] << 8) == off - 10);
                CHECK(bytes[off - 1] == '\n');
                CHECK_OK(nnq_npy_read_bytes(bytes, flen, "round", &r));
                CHECK(r.dtype == t.dtype && nnq_shape_equal(&r, &t));
                CHECK(r.data && memcmp(r.data, t.data, nbytes) == 0);
                nnq_tensor_release(&r);
            }
            free(bytes);
            nnq_tensor_release(&t);
        }
    }

    /* The writer's header text, exactly as NumPy would parse it. */
    nnq_tensor t = {0};
    int64_t d1[1] = {7};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_INT64, 1, d1));
    const char *p = tmp_path("hdr.npy");
    CHECK_OK(nnq_npy_write(p, &t));
    size_t flen;
    unsigned char *bytes = slurp(p, &flen);
    const char *want = "{'descr': '<i8', 'fortran_order': False, 'shape': (7,), }";
    CHECK(bytes && flen > 10 + strlen(want) && memcmp(bytes + 10, want, strlen(want)) == 0);
    free(bytes);
    nnq_tensor_release(&t);

    /* Writer errors. */
    nnq_tensor s = {.dtype = NNQ_DT_STRING, .rank = 1, .dims = {1}};
    CHECK_FAILS(nnq_npy_write(tmp_path("bad.npy"), &s), NNQ_ERR_UNSUPPORTED, "string");
    nnq_tensor nodata = {.dtype = NNQ_DT_FLOAT, .rank = 1, .dims = {4}};
    CHECK_FAILS(nnq_npy_write(tmp_path("bad.npy"), &nodata), NNQ_ERR_INVALID, "no data");
    CHECK(access(tmp_path("bad.npy"), F_OK) != 0); /* nothing left behind */
}

/* Build a .npy file from a header text and data length (data bytes are 0). */
static size_t make_npy(unsigned char *buf, size_t cap, int major, const char *hdr,
                       size_t data_len) {
    size_t h = strlen(hdr), off = major == 1 ? 10 : 12;
    if (off + h + data_len > cap) abort();
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(h & 0xff);
    buf[9] = (unsigned char)(h >> 8);
    if (major != 1) buf[10] = buf[11] = 0;
    memcpy(buf + off, hdr, h);
    memset(buf + off + h, 0, data_len);
    return off + h + data_len;
}

/* Check a malformed buffer both from memory and from a file. */
#define CHECK_NPY_BAD(buf, len, want, needle)                                  \
    do {                                                                       \
        nnq_tensor bad_t;                                                      \
        CHECK_FAILS(nnq_npy_read_bytes(buf, len, "mem.npy", &bad_t), want, needle); \
        CHECK(bad_t.data == NULL);                                             \
        CHECK_FAILS(nnq_npy_read(write_tmp("bad.npy", buf, len), &bad_t), want, needle); \
        CHECK(bad_t.data == NULL);                                             \
    } while (0)

static void test_npy_malformed(void) {
    unsigned char b[1024];
    size_t n;
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";

    n = make_npy(b, sizeof b, 1, ok, 24);
    nnq_tensor t;
    CHECK_OK(nnq_npy_read_bytes(b, n, "good", &t)); /* the base case really is valid */
    nnq_tensor_release(&t);

    CHECK_NPY_BAD(b, n - 1, NNQ_ERR_PARSE, "truncated: expected 24 bytes of data, got 23");
    CHECK_NPY_BAD(b, n - 24, NNQ_ERR_PARSE, "got 0");
    unsigned char longer[1024];
    memcpy(longer, b, n);
    longer[n] = 0;
    CHECK_NPY_BAD(longer, n + 1, NNQ_ERR_PARSE, "trailing");
    CHECK_NPY_BAD(b, 8, NNQ_ERR_PARSE, "truncated");       /* inside the preamble */
    CHECK_NPY_BAD(b, 40, NNQ_ERR_PARSE, "bytes of .npy header"); /* inside the header */
    CHECK_NPY_BAD(b, 0, NNQ_ERR_PARSE, "truncated");

    memcpy(longer, b, n);
    longer[1] = 'X';
    CHECK_NPY_BAD(longer, n, NNQ_ERR_PARSE, "bad magic");
    memcpy(longer, b, n);
    longer[6] = 4;
    CHECK_NPY_BAD(longer, n, NNQ_ERR_UNSUPPORTED, "version 4.0");
    /* Format 2.0 with a 4 GiB header length in a tiny file. */
    n = make_npy(b, sizeof b, 2, ok, 24);
    b[8] = b[9] = b[10] = b[11] = 0xff;
    CHECK_NPY_BAD(b, n, NNQ_ERR_LIMIT, "header");
    b[9] = b[10] = b[11] = 0; /* 255 bytes: more than the file holds */
    CHECK_NPY_BAD(b, n, NNQ_ERR_PARSE, "truncated");

    static const struct {
        const char *hdr;
        nnq_status want;
        const char *needle;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", NNQ_ERR_UNSUPPORTED, "Fortran"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", NNQ_ERR_UNSUPPORTED, "big-endian"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", NNQ_ERR_UNSUPPORTED, "<c8"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", NNQ_ERR_UNSUPPORTED, "structured"},
        {"[1, 2, 3]", NNQ_ERR_PARSE, "dict"},
        {"", NNQ_ERR_PARSE, "dict"},
        {"{'descr': '<f4', 'shape': (2, 3), }", NNQ_ERR_PARSE, "fortran_order"},
        {"{'descr': '<f4', 'fortran_order': False, }", NNQ_ERR_PARSE, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", NNQ_ERR_PARSE, "'x'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", NNQ_ERR_PARSE, "'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", NNQ_ERR_PARSE, "non-negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", NNQ_ERR_PARSE, "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", NNQ_ERR_PARSE, "shape tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", NNQ_ERR_PARSE, "after"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", NNQ_ERR_UNSUPPORTED, "'<f4, '"},
        {"{'descr': '<f4", NNQ_ERR_PARSE, "unterminated"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }", NNQ_ERR_PARSE, "True or False"},
        {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }", NNQ_ERR_PARSE, "True or False"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", NNQ_ERR_PARSE, "expected"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", NNQ_ERR_PARSE, "in shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", NNQ_ERR_PARSE, "npy header"},
        /* Absurd shapes in a tiny file: refused before any allocation. */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000), }", NNQ_ERR_LIMIT, "limit"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", NNQ_ERR_LIMIT, "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", NNQ_ERR_LIMIT, "limit"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", NNQ_ERR_LIMIT, "rank"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000,), }", NNQ_ERR_PARSE, "expected 400000000 bytes of data, got 24"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        n = make_npy(b, sizeof b, 1, cases[k].hdr, 24);
        CHECK_NPY_BAD(b, n, cases[k].want, cases[k].needle);
    }

    /* Spacing variants NumPy also accepts: double quotes, no trailing
     * comma, Python 2 long suffixes. */
    n = make_npy(b, sizeof b, 1, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2L,3L)}  \n", 24);
    CHECK_OK(nnq_npy_read_bytes(b, n, "variant", &t));
    CHECK(t.rank == 2 && t.dims[0] == 2 && t.dims[1] == 3);
    nnq_tensor_release(&t);

    /* Every proper prefix of a valid file fails; no byte flip crashes
     * (run under ASan/UBSan by `make test-asan`). */
    size_t flen;
    unsigned char *good = slurp(FIX "f4_2x3.npy", &flen);
    CHECK(good != NULL);
    if (!good) return;
    CHECK_OK(nnq_npy_read_bytes(good, flen, "f4_2x3", &t));
    nnq_tensor_release(&t);
    for (size_t cut = 0; cut < flen; cut++) {
        nnq_clear_error();
        CHECK(nnq_npy_read_bytes(good, cut, "prefix", &t) != NNQ_OK);
        CHECK(t.data == NULL && strcmp(nnq_last_error(), "no error") != 0);
    }
    unsigned char *fuzz = malloc(flen);
    for (size_t i = 0; fuzz && i < flen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(fuzz, good, flen);
            fuzz[i] ^= (unsigned char)(1u << bit);
            if (nnq_npy_read_bytes(fuzz, flen, "fuzz", &t) == NNQ_OK) {
                size_t nb = 0;
                CHECK(nnq_tensor_nbytes(&t, &nb) == NNQ_OK && nb <= flen);
                nnq_tensor_release(&t);
            } else {
                CHECK(t.data == NULL);
            }
        }
    }
    free(fuzz);
    free(good);
}

/* ---- IDX ---- */

/* An IDX ubyte file: magic, big-endian dims, data = (i * 7 + 3) mod 256. */
static size_t make_idx(unsigned char *buf, size_t cap, int type, int rank, const uint32_t *dims,
                       size_t data_len) {
    size_t off = 4 + 4 * (size_t)rank;
    if (off + data_len > cap) abort();
    buf[0] = buf[1] = 0;
    buf[2] = (unsigned char)type;
    buf[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        buf[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        buf[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        buf[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        buf[7 + 4 * i] = (unsigned char)dims[i];
    }
    for (size_t i = 0; i < data_len; i++) buf[off + i] = (unsigned char)(i * 7 + 3);
    return off + data_len;
}

#define CHECK_IDX_BAD(buf, len, want, needle)                                  \
    do {                                                                       \
        nnq_tensor bad_t;                                                      \
        CHECK_FAILS(nnq_idx_read_bytes(buf, len, "mem.idx", &bad_t), want, needle); \
        CHECK(bad_t.data == NULL);                                             \
        CHECK_FAILS(nnq_idx_read(write_tmp("bad.idx", buf, len), &bad_t), want, needle); \
        CHECK(bad_t.data == NULL);                                             \
        CHECK_FAILS(nnq_idx_read(write_tmp_gz("bad.idx.gz", buf, len), &bad_t), want, needle); \
        CHECK(bad_t.data == NULL);                                             \
    } while (0)

static void test_idx(void) {
    static unsigned char b[4096];
    const uint32_t d3[3] = {2, 3, 4};
    size_t n = make_idx(b, sizeof b, 0x08, 3, d3, 24);

    /* The same bytes plain, gzip'd and from memory. */
    const char *paths[2] = {write_tmp("ok.idx", b, n), write_tmp_gz("ok.idx.gz", b, n)};
    for (int k = 0; k < 3; k++) {
        nnq_tensor t;
        if (k < 2)
            CHECK_OK(nnq_idx_read(paths[k], &t));
        else
            CHECK_OK(nnq_idx_read_bytes(b, n, "ok", &t));
        CHECK(t.dtype == NNQ_DT_UINT8 && t.rank == 3);
        CHECK(t.dims[0] == 2 && t.dims[1] == 3 && t.dims[2] == 4);
        for (int i = 0; t.data && i < 24; i++) CHECK(((uint8_t *)t.data)[i] == (uint8_t)(i * 7 + 3));
        nnq_tensor_release(&t);
    }

    CHECK_IDX_BAD(b, n - 1, NNQ_ERR_PARSE, "truncated: expected 24 bytes of data, got 23");
    CHECK_IDX_BAD(b, 10, NNQ_ERR_PARSE, "truncated");
    CHECK_IDX_BAD(b, 2, NNQ_ERR_PARSE, "truncated");
    b[n] = 0;
    CHECK_IDX_BAD(b, n + 1, NNQ_ERR_PARSE, "trailing");

    unsigned char c[64];
    make_idx(c, sizeof c, 0x08, 3, d3, 0);
    c[0] = 1;
    CHECK_IDX_BAD(c, 16, NNQ_ERR_PARSE, "not an IDX file");
    n = make_idx(c, sizeof c, 0x0D, 3, d3, 24);
    CHECK_IDX_BAD(c, n, NNQ_ERR_UNSUPPORTED, "0x0d (float32)");
    n = make_idx(c, sizeof c, 0x42, 3, d3, 24);
    CHECK_IDX_BAD(c, n, NNQ_ERR_PARSE, "0x42");
    n = make_idx(c, sizeof c, 0x08, 0, d3, 1);
    CHECK_IDX_BAD(c, n, NNQ_ERR_PARSE, "rank 0");
    const uint32_t d5[5] = {1, 1, 1, 1, 1};
    n = make_idx(c, sizeof c, 0x08, 5, d5, 1);
    CHECK_IDX_BAD(c, n, NNQ_ERR_PARSE, "rank 5");

    /* Huge dims in a tiny file: refused or found short before allocating. */
    const uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 2};
    n = make_idx(c, sizeof c, 0x08, 3, huge, 8);
    CHECK_IDX_BAD(c, n, NNQ_ERR_LIMIT, "limit");
    const uint32_t big[3] = {100000, 28, 28}; /* 78 MB claimed, 8 bytes present */
    n = make_idx(c, sizeof c, 0x08, 3, big, 8);
    CHECK_IDX_BAD(c, n, NNQ_ERR_PARSE, "expected 78400000 bytes of data, got 8");

    /* Every proper prefix of the raw bytes fails. */
    n = make_idx(b, sizeof b, 0x08, 3, d3, 24);
    for (size_t cut = 0; cut < n; cut++) {
        nnq_tensor t;
        CHECK(nnq_idx_read_bytes(b, cut, "prefix", &t) != NNQ_OK);
        CHECK(t.data == NULL);
    }

    /* Damaged gzip: a cut stream, and a flipped CRC in the gzip trailer. */
    const uint32_t d2[2] = {50, 40};
    n = make_idx(b, sizeof b, 0x08, 2, d2, 2000);
    size_t glen;
    unsigned char *gz = slurp(write_tmp_gz("whole.gz", b, n), &glen);
    CHECK(gz != NULL && glen > 20);
    if (gz && glen > 20) {
        nnq_tensor t;
        CHECK_OK(nnq_idx_read(tmp_path("whole.gz"), &t));
        nnq_tensor_release(&t);
        CHECK_FAILS(nnq_idx_read(write_tmp("cut.gz", gz, glen / 2), &t), NNQ_ERR_PARSE, "truncated");
        CHECK(t.data == NULL);
        CHECK_FAILS(nnq_idx_read(write_tmp("cut.gz", gz, glen - 4), &t), NNQ_ERR_PARSE, "trailer");
        CHECK(t.data == NULL);
        gz[glen - 8] ^= 0x55; /* CRC-32 of the uncompressed data */
        CHECK_FAILS(nnq_idx_read(write_tmp("crc.gz", gz, glen), &t), NNQ_ERR_PARSE, "corrupt gzip");
        CHECK(t.data == NULL);
        /* Every cut of the gzip stream fails without crashing. */
        gz[glen - 8] ^= 0x55;
        for (size_t cut = 0; cut < glen; cut += 7) {
            nnq_clear_error();
            CHECK(nnq_idx_read(write_tmp("cut.gz", gz, cut), &t) != NNQ_OK);
            CHECK(t.data == NULL && strcmp(nnq_last_error(), "no error") != 0);
        }
    }
    free(gz);

    nnq_tensor t;
    CHECK_FAILS(nnq_idx_read(tmp_path("missing.idx"), &t), NNQ_ERR_IO, "missing.idx");
    CHECK_FAILS(nnq_idx_read(tmp_dir, &t), NNQ_ERR_IO, tmp_dir);
}

/* ---- Fashion-MNIST ---- */

/* Independent reader for the oracle: the whole decompressed file via zlib. */
static unsigned char *gunzip_all(const char *path, size_t expect) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return NULL;
    unsigned char *b = malloc(expect + 1);
    int got = b ? gzread(gz, b, (unsigned)expect + 1) : -1;
    gzclose(gz);
    if (got != (int)expect) {
        free(b);
        return NULL;
    }
    return b;
}

static void check_border_zero(const nnq_dataset *d) {
    long bad = 0;
    for (int64_t i = 0; i < d->n; i++) {
        const float *img = d->images + (size_t)i * 32 * 32;
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                bool border = y < 2 || y >= 30 || x < 2 || x >= 30;
                uint32_t bits;
                memcpy(&bits, &img[y * 32 + x], 4);
                if (border && bits != 0) bad++; /* +0.0f exactly, not -0.0f */
            }
    }
    CHECK(bad == 0);
}

static void test_fashion_mnist_test_split(void) {
    nnq_dataset d;
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d));
    CHECK(d.n == 10000 && d.c == 1 && d.h == 32 && d.w == 32 && d.n_classes == 10);
    if (d.n != 10000 || !d.images || !d.labels) {
        nnq_dataset_free(&d);
        return;
    }

    /* Labels: /usr/bin/python3 -c "import gzip,numpy as np;
     *   y=np.frombuffer(gzip.open('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz')
     *   .read(),np.uint8,offset=8); print(y[:10], np.bincount(y))"
     * → [9 2 1 1 6 1 4 6 5 7] [1000 1000 ... 1000] */
    static const int first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) CHECK(d.labels[i] == first[i]);
    int count[10] = {0};
    long out_of_range = 0;
    for (int64_t i = 0; i < d.n; i++) {
        if (d.labels[i] < 0 || d.labels[i] > 9) out_of_range++;
        else count[d.labels[i]]++;
    }
    CHECK(out_of_range == 0);
    for (int k = 0; k < 10; k++) CHECK(count[k] == 1000);

    check_border_zero(&d);

    /* torchvision oracle, on image 0 and on the whole split:
     *   T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,)), T.Pad(2)])
     *   applied to Image.fromarray(x[i], mode='L') for each raw test image x[i]
     *   (/usr/bin/python3, torch 1.13, torchvision 0.14):
     *   out[0][0,16,16] = 0.4118202328681946 (float32 bits 1054005786, raw pixel 110),
     *   sum over all 10000 outputs in float64 = 18862.043204831716.
     * Bit equality of nnq's 256-entry table with torchvision was also
     * checked there for every pixel value 0..255. */
    uint32_t bits;
    memcpy(&bits, &d.images[16 * 32 + 16], 4);
    CHECK(bits == 1054005786u);
    double sum = 0;
    for (size_t i = 0; i < (size_t)d.n * 32 * 32; i++) sum += d.images[i];
    CHECK_NEAR(sum, 18862.043204831716, 1e-5); /* one pixel off by 1/255 moves it 0.011 */

    /* Raw pixels read independently of idx.c. Their sum, from
     *   /usr/bin/python3 -c "import gzip,numpy as np; x=np.frombuffer(gzip.open(
     *   '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read(),np.uint8,
     *   offset=16); print(x.astype(np.int64).sum(), x.mean())"
     * is 573469082 (mean 73.14656658163265). */
    size_t npix = (size_t)10000 * 28 * 28;
    unsigned char *raw = gunzip_all(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", 16 + npix);
    CHECK(raw != NULL);
    if (raw) {
        static const unsigned char magic[8] = {0, 0, 8, 3, 0, 0, 0x27, 0x10};
        CHECK(memcmp(raw, magic, 8) == 0);
        long long raw_sum = 0;
        for (size_t i = 0; i < npix; i++) raw_sum += raw[16 + i];
        CHECK(raw_sum == 573469082LL);
        /* Undo the normalisation: every interior pixel maps back to its byte. */
        long mismatched = 0;
        for (size_t i = 0; i < 10000; i++)
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    float v = d.images[i * 1024 + (size_t)(y + 2) * 32 + (size_t)(x + 2)];
                    double p = ((double)v * 0.3530 + 0.2860) * 255.0;
                    if (lround(p) != raw[16 + i * 784 + (size_t)y * 28 + (size_t)x] ||
                        fabs(p - lround(p)) > 1e-4)
                        mismatched++;
                }
        CHECK(mismatched == 0);
        free(raw);
    }

    /* limit keeps a prefix, identical to the full load. */
    nnq_dataset s;
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 5, &s));
    CHECK(s.n == 5 && s.n_classes == 10);
    CHECK(s.images && memcmp(s.images, d.images, 5 * 1024 * sizeof(float)) == 0);
    CHECK(s.labels && memcmp(s.labels, d.labels, 5 * sizeof(int32_t)) == 0);
    nnq_dataset_free(&s);
    CHECK(s.images == NULL && s.n == 0);
    nnq_dataset_free(&d);
}

static void test_fashion_mnist_train_split(void) {
    /* /usr/bin/python3: train labels[:10] = [9 0 0 3 0 2 7 2 5 5]; the sum of
     * the raw pixels of the first 100 train images is 5688570. */
    nnq_dataset d;
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TRAIN, 100, &d));
    CHECK(d.n == 100 && d.c == 1 && d.h == 32 && d.w == 32 && d.n_classes == 10);
    if (d.n == 100 && d.images && d.labels) {
        static const int first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
        for (int i = 0; i < 10; i++) CHECK(d.labels[i] == first[i]);
        long long raw_sum = 0;
        for (size_t i = 0; i < 100; i++)
            for (int y = 2; y < 30; y++)
                for (int x = 2; x < 30; x++)
                    raw_sum += lround(((double)d.images[i * 1024 + (size_t)y * 32 + (size_t)x] *
                                       0.3530 + 0.2860) * 255.0);
        CHECK(raw_sum == 5688570LL);
        check_border_zero(&d);
    }
    nnq_dataset_free(&d);
}

/* A fake dataset directory (NNQ_FASHION_MNIST_DIR) for the error paths and
 * an exact check of the preprocessing on known pixels. */
static void write_fake_fmnist(int n_img, int side, int n_lab, int bad_label) {
    static unsigned char b[3 * 28 * 28 + 64];
    uint32_t di[3] = {(uint32_t)n_img, (uint32_t)side, 28};
    size_t n = make_idx(b, sizeof b, 0x08, 3, di, (size_t)n_img * (size_t)side * 28);
    write_tmp_gz("t10k-images-idx3-ubyte.gz", b, n);
    uint32_t dl[1] = {(uint32_t)n_lab};
    n = make_idx(b, sizeof b, 0x08, 1, dl, 0);
    for (int i = 0; i < n_lab; i++) b[8 + i] = (unsigned char)(i == 1 ? bad_label : (i * 4) % 10);
    write_tmp_gz("t10k-labels-idx1-ubyte.gz", b, 8 + (size_t)n_lab);
}

static void test_fashion_mnist_dir(void) {
    nnq_dataset d;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/empty", tmp_dir);
    CHECK(mkdir(sub, 0700) == 0);
    setenv("NNQ_FASHION_MNIST_DIR", sub, 1);
    CHECK_FAILS(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d), NNQ_ERR_IO,
                "empty/t10k-images-idx3-ubyte.gz");
    CHECK(strstr(nnq_last_error(), "scripts/deps.sh") != NULL);
    CHECK(strstr(nnq_last_error(), "dataset-fashion-mnist") != NULL);
    CHECK(d.images == NULL && d.labels == NULL);
    rmdir(sub);

    setenv("NNQ_FASHION_MNIST_DIR", tmp_dir, 1);
    write_fake_fmnist(3, 28, 3, 9);
    CHECK_OK(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d));
    CHECK(d.n == 3 && d.labels && d.labels[0] == 0 && d.labels[1] == 9 && d.labels[2] == 8);
    if (d.n == 3 && d.images) {
        check_border_zero(&d);
        long bad = 0;
        for (size_t i = 0; i < 3 * 784; i++) {
            size_t img = i / 784, y = i % 784 / 28, x = i % 28;
            float p = (float)(unsigned char)(i * 7 + 3);
            float want = (p / 255.0f - 0.2860f) / 0.3530f;
            if (d.images[img * 1024 + (y + 2) * 32 + x + 2] != want) bad++;
        }
        CHECK(bad == 0);
        CHECK(d.images[2 * 32 + 2] == (3.0f / 255.0f - 0.2860f) / 0.3530f);
    }
    nnq_dataset_free(&d);

    write_fake_fmnist(3, 28, 2, 9);
    CHECK_FAILS(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d), NNQ_ERR_SHAPE, "3 images but 2 labels");
    write_fake_fmnist(3, 27, 3, 9);
    CHECK_FAILS(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d), NNQ_ERR_SHAPE, "3x27x28");
    write_fake_fmnist(3, 28, 3, 10);
    CHECK_FAILS(nnq_dataset_fashion_mnist(NNQ_SPLIT_TEST, 0, &d), NNQ_ERR_PARSE, "label 10");
    CHECK(d.images == NULL && d.labels == NULL && d.n == 0);
    unsetenv("NNQ_FASHION_MNIST_DIR");
}

/* ---- .npy datasets ---- */

static const char *write_npy_tmp(const char *name, nnq_dtype dt, int rank, const int64_t *dims,
                                 const void *data) {
    nnq_tensor t = {0};
    size_t nb = 0;
    CHECK_OK(nnq_tensor_alloc(&t, dt, rank, dims));
    CHECK_OK(nnq_tensor_nbytes(&t, &nb));
    if (t.data) memcpy(t.data, data, nb);
    const char *p = tmp_path(name);
    CHECK_OK(nnq_npy_write(p, &t));
    nnq_tensor_release(&t);
    return p;
}

static void test_dataset_npy(void) {
    nnq_dataset d;
    CHECK_OK(nnq_dataset_npy(FIX "ds_images_nchw.npy", FIX "ds_labels_i8.npy", 0, &d));
    CHECK(d.n == 4 && d.c == 1 && d.h == 3 && d.w == 3 && d.n_classes == 4);
    if (d.n == 4 && d.images && d.labels) {
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 9; k++) CHECK(d.images[i * 9 + k] == (float)(i * 100 + k / 8.0));
        CHECK(d.labels[0] == 3 && d.labels[1] == 0 && d.labels[2] == 1 && d.labels[3] == 3);

        nnq_tensor v;
        nnq_dataset_batch(&d, 1, 2, &v);
        CHECK(v.dtype == NNQ_DT_FLOAT && v.rank == 4 && !v.owns);
        CHECK(v.dims[0] == 2 && v.dims[1] == 1 && v.dims[2] == 3 && v.dims[3] == 3);
        CHECK(v.data == d.images + 9);
        nnq_dataset_batch(&d, 3, 5, &v); /* last partial batch */
        CHECK(v.dims[0] == 1 && v.data == d.images + 27);
        nnq_dataset_batch(&d, 4, 5, &v);
        CHECK(v.dims[0] == 0);
    }
    nnq_dataset_free(&d);

    /* limit: first samples only, n_classes still from every label. */
    CHECK_OK(nnq_dataset_npy(FIX "ds_images_nchw.npy", FIX "ds_labels_i8.npy", 2, &d));
    CHECK(d.n == 2 && d.n_classes == 4 && d.images && d.images[9] == 100.0f);
    nnq_dataset_free(&d);

    /* NHW float64 (converted) with int32 labels; and no labels. */
    CHECK_OK(nnq_dataset_npy(FIX "ds_images_nhw_f8.npy", FIX "ds_labels_i4.npy", 0, &d));
    CHECK(d.n == 3 && d.c == 1 && d.h == 2 && d.w == 2 && d.n_classes == 3);
    if (d.n == 3 && d.images && d.labels) {
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 4; k++) CHECK(d.images[i * 4 + k] == (float)(-i - k / 4.0));
        CHECK(d.labels[0] == 1 && d.labels[1] == 0 && d.labels[2] == 2);
    }
    nnq_dataset_free(&d);
    CHECK_OK(nnq_dataset_npy(FIX "ds_images_nchw.npy", NULL, 0, &d));
    CHECK(d.n == 4 && d.labels == NULL && d.n_classes == 0);
    nnq_dataset_free(&d);

    /* Errors. */
    CHECK_FAILS(nnq_dataset_npy(FIX "ds_images_nchw.npy", FIX "ds_labels_i4.npy", 0, &d),
                NNQ_ERR_SHAPE, "ds_labels_i4.npy");
    CHECK_FAILS(nnq_dataset_npy(FIX "t_i8.npy", NULL, 0, &d), NNQ_ERR_UNSUPPORTED, "int64");
    CHECK_FAILS(nnq_dataset_npy(FIX "f4_2x3.npy", NULL, 0, &d), NNQ_ERR_SHAPE, "2x3");
    CHECK_FAILS(nnq_dataset_npy(FIX "ds_images_nchw.npy", FIX "ds_images_nchw.npy", 0, &d),
                NNQ_ERR_UNSUPPORTED, "labels are float32");
    CHECK_FAILS(nnq_dataset_npy(tmp_path("absent.npy"), NULL, 0, &d), NNQ_ERR_IO, "absent.npy");

    int64_t d4[1] = {4};
    int64_t neg[4] = {0, 1, -1, 2};
    CHECK_FAILS(nnq_dataset_npy(FIX "ds_images_nchw.npy",
                                write_npy_tmp("neg.npy", NNQ_DT_INT64, 1, d4, neg), 0, &d),
                NNQ_ERR_INVALID, "label -1 of sample 2");
    int64_t big[4] = {0, (int64_t)1 << 31, 1, 2};
    CHECK_FAILS(nnq_dataset_npy(FIX "ds_images_nchw.npy",
                                write_npy_tmp("big.npy", NNQ_DT_INT64, 1, d4, big), 0, &d),
                NNQ_ERR_INVALID, "2147483648");
    float nan_img[2 * 4] = {0, 1, 2, 3, 4, NAN, 6, 7};
    int64_t d3[3] = {2, 2, 2};
    CHECK_FAILS(nnq_dataset_npy(write_npy_tmp("nan.npy", NNQ_DT_FLOAT, 3, d3, nan_img), NULL, 0, &d),
                NNQ_ERR_INVALID, "value 5");
    int64_t d0[3] = {0, 2, 2};
    CHECK_FAILS(nnq_dataset_npy(write_npy_tmp("empty.npy", NNQ_DT_FLOAT, 3, d0, nan_img), NULL, 0, &d),
                NNQ_ERR_SHAPE, "at least 1");
    CHECK(d.images == NULL && d.labels == NULL);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "%s", "/tmp/nnq_test_data_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_npy_numpy_fixtures();
    test_npy_round_trip();
    test_npy_malformed();
    test_idx();
    test_fashion_mnist_test_split();
    test_fashion_mnist_train_split();
    test_fashion_mnist_dir();
    test_dataset_npy();

    for (int i = 0; i < tmp_count; i++) unlink(tmp_names[i]);
    CHECK(rmdir(tmp_dir) == 0); /* also proves no stray temp files were left */
    return check_finish("test_data");
}
