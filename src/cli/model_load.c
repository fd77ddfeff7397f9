/* Model loading shared by the commands. */
#include "cli/model_load.h"

#include <stdio.h>
#include <string.h>

#include "onnx/onnx_io.h"
#include "ops/executor.h"

/* Prefix "<path>: " unless the library's message already names the file. */
static nnq_status with_path(nnq_status s, const char *path) {
    if (strstr(nnq_last_error(), path)) return s;
    return nnq_fail_context(s, "%s: ", path);
}

nnq_status cli_load_model(const char *path, nnq_graph **out) {
    nnq_graph *g = NULL;
    *out = NULL;
    nnq_status s = nnq_onnx_load(path, &g);
    if (s != NNQ_OK) return with_path(s, path);
    s = nnq_graph_prepare(g);
    if (s != NNQ_OK) {
        nnq_graph_free(g);
        return with_path(s, path);
    }
    *out = g;
    return NNQ_OK;
}

const char *cli_value_shape_str(const nnq_value *v, char *buf, size_t cap) {
    size_t len = 0;
    if (cap == 0) return buf;
    buf[0] = '\0';
    if (v->t.rank < 0) {
        snprintf(buf, cap, "unknown");
        return buf;
    }
    len += (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < v->t.rank && len < cap; k++) {
        const char *sep = k ? ", " : "";
        const char *sym = v->dim_params ? v->dim_params[k] : NULL;
        if (sym && sym[0])
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, sym);
        else if (v->t.dims[k] >= 0)
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", sep, (long long)v->t.dims[k]);
        else
            len += (size_t)snprintf(buf + len, cap - len, "%s?", sep);
    }
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}
