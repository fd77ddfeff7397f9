/* TensorProto <-> nnq_tensor, and the single-tensor .pb files of the ONNX
 * test layout (input_0.pb, output_0.pb). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/limits.h"
#include "onnx/onnx_internal.h"
#include "onnx/onnx_io.h"

char *nnq_onnx_strdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Element count of the typed field that holds `dt` in a TensorProto, and
 * the total over every typed field (so data in the wrong field is caught). */
static size_t typed_count(const Onnx__TensorProto *p, nnq_dtype dt, size_t *total) {
    *total = p->n_float_data + p->n_int32_data + p->n_string_data + p->n_int64_data +
             p->n_double_data + p->n_uint64_data;
    switch (dt) {
    case NNQ_DT_FLOAT: return p->n_float_data;
    case NNQ_DT_DOUBLE: return p->n_double_data;
    case NNQ_DT_INT64: return p->n_int64_data;
    case NNQ_DT_UINT32: case NNQ_DT_UINT64: return p->n_uint64_data;
    /* int32_data also carries the narrow integer types and float16 bits. */
    case NNQ_DT_INT32: case NNQ_DT_INT16: case NNQ_DT_INT8: case NNQ_DT_UINT16:
    case NNQ_DT_UINT8: case NNQ_DT_BOOL: case NNQ_DT_FLOAT16: return p->n_int32_data;
    default: return 0;
    }
}

/* Copy `n` elements from the typed field into dst (narrowing as the
 * ONNX spec prescribes: the low bits of each int32 / uint64). */
static void copy_typed(const Onnx__TensorProto *p, nnq_dtype dt, void *dst, size_t n) {
    if (n == 0) return; /* the field's array is NULL then */
    switch (dt) {
    case NNQ_DT_FLOAT: memcpy(dst, p->float_data, n * sizeof(float)); break;
    case NNQ_DT_DOUBLE: memcpy(dst, p->double_data, n * sizeof(double)); break;
    case NNQ_DT_INT64: memcpy(dst, p->int64_data, n * sizeof(int64_t)); break;
    case NNQ_DT_UINT64: memcpy(dst, p->uint64_data, n * sizeof(uint64_t)); break;
    case NNQ_DT_INT32: memcpy(dst, p->int32_data, n * sizeof(int32_t)); break;
    case NNQ_DT_UINT32:
        for (size_t i = 0; i < n; i++) ((uint32_t *)dst)[i] = (uint32_t)p->uint64_data[i];
        break;
    case NNQ_DT_INT16:
        for (size_t i = 0; i < n; i++) ((int16_t *)dst)[i] = (int16_t)p->int32_data[i];
        break;
    case NNQ_DT_UINT16: case NNQ_DT_FLOAT16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = (uint16_t)p->int32_data[i];
        break;
    case NNQ_DT_INT8:
        for (size_t i = 0; i < n; i++) ((int8_t *)dst)[i] = (int8_t)p->int32_data[i];
        break;
    case NNQ_DT_UINT8: case NNQ_DT_BOOL:
        for (size_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)p->int32_data[i];
        break;
    default: break;
    }
}

nnq_status nnq_onnx_tensor_from_proto(const Onnx__TensorProto *p, nnq_tensor *out,
                                      const char *what) {
    char shape[128];
    size_t nbytes, total;
    int64_t dims[NNQ_MAX_RANK];
    memset(out, 0, sizeof *out);
    out->rank = 0;

    if ((p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        p->n_external_data > 0)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s uses external data, which nnq does not read", what);
    if (p->segment)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s is a segment of a larger tensor, which nnq does not read", what);
    int32_t code = p->has_data_type ? p->data_type : 0;
    nnq_dtype dt = (nnq_dtype)code;
    if (code == NNQ_DT_STRING)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s holds strings, which nnq does not support", what);
    if (code < 0 || nnq_dtype_size(dt) == 0)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s has data type %d, which nnq does not support", what,
                        (int)code);
    if (p->n_dims > NNQ_MAX_RANK)
        return nnq_fail(NNQ_ERR_LIMIT, "%s has rank %zu, more than nnq's maximum %d", what, p->n_dims,
                        NNQ_MAX_RANK);
    for (size_t i = 0; i < p->n_dims; i++) {
        if (p->dims[i] < 0)
            return nnq_fail(NNQ_ERR_PARSE, "%s has a negative dimension (%lld)", what,
                            (long long)p->dims[i]);
        dims[i] = p->dims[i];
    }
    NNQ_TRY(nnq_tensor_set_shape(out, dt, (int)p->n_dims, dims));
    if (nnq_tensor_nbytes(out, &nbytes) != NNQ_OK)
        return nnq_fail_context(NNQ_ERR_LIMIT, "%s (shape %s): ", what,
                                nnq_shape_str(out, shape, sizeof shape));
    size_t numel = nbytes / nnq_dtype_size(dt);

    /* Validate the data length before allocating: the allocation is then
     * bounded by the bytes actually present in the file. */
    size_t n_typed = typed_count(p, dt, &total);
    if (p->has_raw_data) {
        if (total > 0)
            return nnq_fail(NNQ_ERR_PARSE, "%s has both raw_data and typed data fields", what);
        if (p->raw_data.len != nbytes)
            return nnq_fail(NNQ_ERR_PARSE, "%s: shape %s (%s) needs %zu bytes but raw_data holds %zu",
                            what, nnq_shape_str(out, shape, sizeof shape), nnq_dtype_name(dt), nbytes,
                            p->raw_data.len);
    } else {
        if (total != n_typed)
            return nnq_fail(NNQ_ERR_PARSE, "%s stores its data in a field that does not match type %s",
                            what, nnq_dtype_name(dt));
        if (n_typed != numel)
            return nnq_fail(NNQ_ERR_PARSE, "%s: shape %s needs %zu elements but the tensor holds %zu",
                            what, nnq_shape_str(out, shape, sizeof shape), numel, n_typed);
    }
    out->data = malloc(nbytes ? nbytes : 1);
    if (!out->data) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", nbytes, what);
    out->owns = true;
    if (p->has_raw_data) {
        if (nbytes) memcpy(out->data, p->raw_data.data, nbytes);
    } else {
        copy_typed(p, dt, out->data, numel);
    }
    return NNQ_OK;
}

nnq_status nnq_onnx_tensor_to_proto(const nnq_tensor *t, const char *name, Onnx__TensorProto *p,
                                    const char *what) {
    static const Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    size_t nbytes;
    *p = init;
    if (t->rank < 0 || t->rank > NNQ_MAX_RANK)
        return nnq_fail(NNQ_ERR_INVALID, "%s has no known shape", what);
    if (nnq_tensor_nbytes(t, &nbytes) != NNQ_OK)
        return nnq_fail_context(NNQ_ERR_INVALID, "%s: ", what);
    if (!t->data && nbytes > 0) return nnq_fail(NNQ_ERR_INVALID, "%s has no data", what);
    p->n_dims = (size_t)t->rank;
    p->dims = (int64_t *)t->dims;
    p->has_data_type = 1;
    p->data_type = (int32_t)t->dtype;
    p->name = (name && name[0]) ? (char *)name : NULL;
    p->has_raw_data = 1;
    p->raw_data.len = nbytes;
    p->raw_data.data = (uint8_t *)t->data;
    return NNQ_OK;
}

nnq_status nnq_onnx_load_tensor(const char *path, nnq_tensor *out, char **name) {
    unsigned char *buf = NULL;
    size_t len = 0;
    Onnx__TensorProto *p = NULL;
    nnq_status s;
    memset(out, 0, sizeof *out);
    if (name) *name = NULL;
    NNQ_TRY(nnq_read_file(path, NNQ_MAX_MODEL_BYTES, &buf, &len));
    p = onnx__tensor_proto__unpack(NULL, len, buf);
    if (!p) {
        s = nnq_fail(NNQ_ERR_PARSE, "%s is not a valid ONNX TensorProto", path);
        goto fail;
    }
    char what[256];
    snprintf(what, sizeof what, "tensor '%.200s'", p->name ? p->name : "");
    s = nnq_onnx_tensor_from_proto(p, out, what);
    if (s != NNQ_OK) {
        nnq_fail_context(s, "%s: ", path);
        goto fail;
    }
    if (name && !(*name = nnq_onnx_strdup(p->name))) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory reading %s", path);
        goto fail;
    }
    onnx__tensor_proto__free_unpacked(p, NULL);
    free(buf);
    return NNQ_OK;
fail:
    nnq_tensor_release(out);
    if (p) onnx__tensor_proto__free_unpacked(p, NULL);
    free(buf);
    return s;
}

nnq_status nnq_onnx_save_tensor(const nnq_tensor *t, const char *name, const char *path) {
    Onnx__TensorProto p;
    char what[256];
    snprintf(what, sizeof what, "tensor '%.200s'", name ? name : "");
    NNQ_TRY(nnq_onnx_tensor_to_proto(t, name, &p, what));
    size_t len = onnx__tensor_proto__get_packed_size(&p);
    if (len > NNQ_MAX_MODEL_BYTES)
        return nnq_fail(NNQ_ERR_LIMIT, "%s: a %zu-byte tensor exceeds protobuf's 2 GiB limit", path, len);
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate %zu bytes for %s", len, path);
    onnx__tensor_proto__pack(&p, buf);
    nnq_status s = nnq_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}
