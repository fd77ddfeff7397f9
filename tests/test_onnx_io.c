/* ONNX import/export: round trips on real models, typed vs raw tensor
 * storage, every attribute type, malformed input (truncated, random,
 * bit-flipped, hand-crafted bad tensors) and, when python3-onnx is
 * installed, onnx.checker on every model nnq re-exported. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "python_onnx.h"
#include "core/fileio.h"
#include "onnx.pb-c.h"
#include "onnx/onnx_io.h"

#define TESTDATA "/usr/share/libonnx-testdata/data/"
#define FIXTURES "tests/fixtures/onnx/"

/* ---- graph comparison ---- */

static bool str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

static bool tensor_eq(const nnq_tensor *a, const nnq_tensor *b) {
    size_t na, nb;
    if (a->dtype != b->dtype || a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    if (!a->data || !b->data) return !a->data && !b->data;
    if (nnq_tensor_nbytes(a, &na) != NNQ_OK || nnq_tensor_nbytes(b, &nb) != NNQ_OK) return false;
    return na == nb && memcmp(a->data, b->data, na) == 0;
}

static bool attr_eq(const nnq_attr *a, const nnq_attr *b) {
    if (!str_eq(a->name, b->name) || a->type != b->type) return false;
    switch (a->type) {
    case NNQ_ATTR_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case NNQ_ATTR_INT: return a->i == b->i;
    case NNQ_ATTR_STRING: return a->s_len == b->s_len && memcmp(a->s, b->s, a->s_len) == 0;
    case NNQ_ATTR_TENSOR: return tensor_eq(a->t, b->t);
    case NNQ_ATTR_FLOATS:
        return a->n == b->n && (a->n == 0 || memcmp(a->floats, b->floats, sizeof(float) * (size_t)a->n) == 0);
    case NNQ_ATTR_INTS:
        return a->n == b->n && (a->n == 0 || memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n) == 0);
    case NNQ_ATTR_STRINGS:
        if (a->n != b->n) return false;
        for (int i = 0; i < a->n; i++)
            if (!str_eq(a->strings[i], b->strings[i])) return false;
        return true;
    default: return false;
    }
}

/* Field-by-field equality; on a difference, says where in `why`. */
static bool graph_eq(const nnq_graph *a, const nnq_graph *b, char *why, size_t cap) {
#define DIFF(...) do { snprintf(why, cap, __VA_ARGS__); return false; } while (0)
    if (!str_eq(a->name, b->name)) DIFF("graph name");
    if (a->ir_version != b->ir_version) DIFF("ir_version %lld vs %lld", (long long)a->ir_version, (long long)b->ir_version);
    if (!str_eq(a->producer_name, b->producer_name) || !str_eq(a->producer_version, b->producer_version))
        DIFF("producer");
    if (!str_eq(a->doc_string, b->doc_string)) DIFF("doc_string");
    if (a->n_opsets != b->n_opsets) DIFF("opset count");
    for (int i = 0; i < a->n_opsets; i++)
        if (!str_eq(a->opsets[i].domain, b->opsets[i].domain) || a->opsets[i].version != b->opsets[i].version)
            DIFF("opset %d", i);
    if (a->n_values != b->n_values) DIFF("value count %d vs %d", a->n_values, b->n_values);
    for (int i = 0; i < a->n_values; i++) {
        const nnq_value *va = &a->values[i], *vb = &b->values[i];
        if (!str_eq(va->name, vb->name)) DIFF("value %d name '%s' vs '%s'", i, va->name, vb->name);
        if (va->is_initializer != vb->is_initializer || va->producer != vb->producer)
            DIFF("value '%s' initializer/producer", va->name);
        if (!tensor_eq(&va->t, &vb->t)) DIFF("value '%s' tensor (dtype, shape or data)", va->name);
        for (int d = 0; d < NNQ_MAX_RANK; d++) {
            const char *pa = va->dim_params ? va->dim_params[d] : NULL;
            const char *pb = vb->dim_params ? vb->dim_params[d] : NULL;
            if ((pa == NULL) != (pb == NULL) || (pa && strcmp(pa, pb) != 0))
                DIFF("value '%s' dim_param %d", va->name, d);
        }
    }
    if (a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs) DIFF("graph input/output count");
    for (int i = 0; i < a->n_inputs; i++)
        if (a->inputs[i] != b->inputs[i]) DIFF("graph input %d", i);
    for (int i = 0; i < a->n_outputs; i++)
        if (a->outputs[i] != b->outputs[i]) DIFF("graph output %d", i);
    if (a->n_nodes != b->n_nodes) DIFF("node count");
    for (int k = 0; k < a->n_nodes; k++) {
        const nnq_node *na = &a->nodes[k], *nb = &b->nodes[k];
        if (!str_eq(na->name, nb->name) || !str_eq(na->op_type, nb->op_type) || !str_eq(na->domain, nb->domain))
            DIFF("node %d name/op/domain", k);
        if (na->n_inputs != nb->n_inputs || na->n_outputs != nb->n_outputs || na->n_attrs != nb->n_attrs)
            DIFF("node %d arity", k);
        for (int i = 0; i < na->n_inputs; i++)
            if (na->inputs[i] != nb->inputs[i]) DIFF("node %d input %d", k, i);
        for (int i = 0; i < na->n_outputs; i++)
            if (na->outputs[i] != nb->outputs[i]) DIFF("node %d output %d", k, i);
        for (int i = 0; i < na->n_attrs; i++)
            if (!attr_eq(&na->attrs[i], &nb->attrs[i])) DIFF("node %d attribute '%s'", k, na->attrs[i].name);
    }
    return true;
#undef DIFF
}

/* ---- re-exported models kept for onnx.checker ---- */

static char out_dir[512];
static char *checker_files[64];
static int n_checker_files;

static void keep_for_checker(const char *tag, const unsigned char *buf, size_t len) {
    char path[1024];
    if (!out_dir[0] || n_checker_files == (int)(sizeof checker_files / sizeof *checker_files)) return;
    snprintf(path, sizeof path, "%s/%s.onnx", out_dir, tag);
    for (char *p = path + strlen(out_dir) + 1; *p; p++)
        if (*p == '/') *p = '_';
    CHECK_OK(nnq_write_file_atomic(path, buf, len));
    checker_files[n_checker_files++] = strdup(path);
}

static int find(const nnq_graph *g, const char *name) { return nnq_graph_find_value(g, name); }

/* load -> save_bytes -> load_bytes: same graph, and export is a fixed
 * point (same bytes from the original and the re-imported graph). */
static void roundtrip(const char *path, const char *tag) {
    nnq_graph *g1 = NULL, *g2 = NULL;
    unsigned char *b1 = NULL, *b2 = NULL, *b3 = NULL;
    size_t l1 = 0, l2 = 0, l3 = 0;
    char why[256] = "";
    nnq_status s = nnq_onnx_load(path, &g1);
    CHECK_OK(s);
    if (s != NNQ_OK) return;
    CHECK_OK(nnq_onnx_save_bytes(g1, &b1, &l1));
    CHECK_OK(nnq_onnx_load_bytes(b1, l1, "re-exported", &g2));
    if (g2) {
        bool same = graph_eq(g1, g2, why, sizeof why);
        if (!same) fprintf(stderr, "%s: round trip differs: %s\n", path, why);
        CHECK(same);
        CHECK_OK(nnq_onnx_save_bytes(g2, &b2, &l2));
        CHECK(l2 == l1 && b2 && memcmp(b1, b2, l1) == 0);
    }
    CHECK_OK(nnq_onnx_save_bytes(g1, &b3, &l3));
    CHECK(l3 == l1 && b3 && memcmp(b1, b3, l1) == 0);
    if (b1) keep_for_checker(tag, b1, l1);
    free(b1);
    free(b2);
    free(b3);
    nnq_graph_free(g1);
    nnq_graph_free(g2);
}

static void test_real_models(void) {
    static const char *models[] = {
        "node/test_conv_with_strides_padding", "node/test_batchnorm_example",
        "node/test_clip_default_inbounds",     "node/test_lstm_defaults",
        "node/test_celu_expanded",             "node/test_dynamicquantizelinear_expanded",
        "node/test_constant",                  "node/test_resize_downsample_scales_cubic",
        "simple/test_gradient_of_add_and_mul",
    };
    char path[512];
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        snprintf(path, sizeof path, TESTDATA "%s/model.onnx", models[i]);
        roundtrip(path, models[i]);
    }
    /* The fixture models of the project, once they exist. */
    static const char *own[] = {"tests/fixtures/models/mnv2s.onnx", "tests/fixtures/models/resnets.onnx"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (access(own[i], R_OK) == 0) roundtrip(own[i], strrchr(own[i], '/') + 1);

    /* Facts about one model, so the round trip is not trivially self-consistent. */
    nnq_graph *g = NULL;
    CHECK_OK(nnq_onnx_load(TESTDATA "node/test_conv_with_strides_padding/model.onnx", &g));
    if (!g) return;
    CHECK(nnq_graph_opset(g) == 11 && g->ir_version == 6);
    CHECK(str_eq(g->name, "test_conv_with_strides_padding"));
    CHECK(g->n_nodes == 1 && str_eq(g->nodes[0].op_type, "Conv") && g->nodes[0].n_inputs == 2);
    CHECK(g->n_inputs == 2 && g->n_outputs == 1);
    int x = find(g, "x"), y = find(g, "y");
    CHECK(x >= 0 && g->values[x].t.dtype == NNQ_DT_FLOAT && g->values[x].t.rank == 4);
    CHECK(x >= 0 && g->values[x].t.dims[2] == 7 && g->values[x].t.dims[3] == 5);
    CHECK(y >= 0 && g->values[y].producer == 0 && g->values[y].t.dims[2] == 4 && g->values[y].t.dims[3] == 3);
    const int64_t *v;
    CHECK(nnq_node_attr_ints(&g->nodes[0], "pads", &v) == 4 && v[0] == 1 && v[3] == 1);
    CHECK(nnq_node_attr_ints(&g->nodes[0], "strides", &v) == 2 && v[0] == 2 && v[1] == 2);
    nnq_graph_free(g);

    /* Omitted optional output and multi-domain STRINGS attributes. */
    CHECK_OK(nnq_onnx_load(TESTDATA "node/test_lstm_defaults/model.onnx", &g));
    if (g) {
        CHECK(g->n_nodes == 1 && g->nodes[0].n_outputs == 2 && g->nodes[0].outputs[0] == -1);
        CHECK(g->nodes[0].outputs[1] == find(g, "Y_h"));
        nnq_graph_free(g);
    }
    CHECK_OK(nnq_onnx_load(TESTDATA "simple/test_gradient_of_add_and_mul/model.onnx", &g));
    if (g) {
        const nnq_node *n = &g->nodes[2];
        const nnq_attr *a = nnq_node_attr(n, "xs");
        CHECK(str_eq(n->op_type, "Gradient") && str_eq(n->domain, "ai.onnx.preview.training"));
        CHECK(a && a->type == NNQ_ATTR_STRINGS && a->n == 2 && str_eq(a->strings[1], "b"));
        CHECK(str_eq(nnq_node_attr_string(n, "y", NULL), "d"));
        CHECK(g->n_opsets == 2 && nnq_graph_opset(g) == 12);
        CHECK(g->values[find(g, "a")].t.rank == 0); /* scalar input, shape known */
        nnq_graph_free(g);
    }
}

/* ---- typed fields vs raw_data ---- */

static const nnq_tensor *init_of(const nnq_graph *g, const char *name) {
    int v = find(g, name);
    return (v >= 0 && g->values[v].is_initializer) ? &g->values[v].t : NULL;
}

static void check_fixture_values(const nnq_graph *g) {
    const nnq_tensor *t;
    if ((t = init_of(g, "t_int8")) && t->dtype == NNQ_DT_INT8 && t->rank == 1 && t->dims[0] == 4) {
        const int8_t *p = t->data;
        CHECK(p[0] == -128 && p[1] == -1 && p[2] == 0 && p[3] == 127);
    } else CHECK(!"t_int8");
    if ((t = init_of(g, "t_uint16")) && t->dtype == NNQ_DT_UINT16 && t->dims[0] == 3)
        CHECK(((const uint16_t *)t->data)[1] == 40000 && ((const uint16_t *)t->data)[2] == 65535);
    else CHECK(!"t_uint16");
    if ((t = init_of(g, "t_int32")) && t->dtype == NNQ_DT_INT32 && t->dims[0] == 3)
        CHECK(((const int32_t *)t->data)[0] == INT32_MIN && ((const int32_t *)t->data)[2] == INT32_MAX);
    else CHECK(!"t_int32");
    if ((t = init_of(g, "t_int64")) && t->dtype == NNQ_DT_INT64 && t->dims[0] == 3)
        CHECK(nnq_i64(t)[0] == INT64_MIN && nnq_i64(t)[1] == 42 && nnq_i64(t)[2] == INT64_MAX);
    else CHECK(!"t_int64");
    if ((t = init_of(g, "t_uint32")) && t->dtype == NNQ_DT_UINT32 && t->dims[0] == 2)
        CHECK(((const uint32_t *)t->data)[1] == UINT32_MAX);
    else CHECK(!"t_uint32");
    if ((t = init_of(g, "t_uint64")) && t->dtype == NNQ_DT_UINT64 && t->dims[0] == 2)
        CHECK(((const uint64_t *)t->data)[1] == UINT64_MAX);
    else CHECK(!"t_uint64");
    if ((t = init_of(g, "t_float16")) && t->dtype == NNQ_DT_FLOAT16 && t->dims[0] == 3) {
        const uint16_t *h = t->data;
        CHECK(h[0] == 0x3C00 && h[1] == 0xC100 && h[2] == 0x7BFF);
    } else CHECK(!"t_float16");
    if ((t = init_of(g, "t_bool")) && t->dtype == NNQ_DT_BOOL && t->dims[0] == 3) {
        const uint8_t *b = t->data;
        CHECK(b[0] == 1 && b[1] == 0 && b[2] == 1);
    } else CHECK(!"t_bool");
    if ((t = init_of(g, "t_float")) && t->dtype == NNQ_DT_FLOAT && t->rank == 2 && t->dims[0] == 2 && t->dims[1] == 3) {
        const float *f = nnq_f32(t);
        uint32_t bits;
        memcpy(&bits, &f[1], 4);
        CHECK(f[0] == 1.5f && bits == 0x80000000u && f[2] == 3.4028235e38f);
        memcpy(&bits, &f[3], 4);
        CHECK(bits == 1u && f[4] == -2.0f && f[5] == 0.1f);
    } else CHECK(!"t_float");
    if ((t = init_of(g, "t_double")) && t->dtype == NNQ_DT_DOUBLE && t->dims[0] == 2)
        CHECK(((const double *)t->data)[0] == 1.0 / 3.0 && ((const double *)t->data)[1] == -1e300);
    else CHECK(!"t_double");
    if ((t = init_of(g, "t_scalar")) && t->dtype == NNQ_DT_FLOAT) CHECK(t->rank == 0 && nnq_f32(t)[0] == 2.75f);
    else CHECK(!"t_scalar");
    if ((t = init_of(g, "t_empty"))) CHECK(t->rank == 2 && t->dims[0] == 0 && t->dims[1] == 3);
    else CHECK(!"t_empty");
    /* The Constant's tensor attribute. */
    int k = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (str_eq(g->nodes[i].op_type, "Constant")) k = i;
    const nnq_attr *a = k >= 0 ? nnq_node_attr(&g->nodes[k], "value") : NULL;
    CHECK(a && a->type == NNQ_ATTR_TENSOR && a->t->dtype == NNQ_DT_INT64 && a->t->rank == 2);
    if (a && a->t && a->t->dtype == NNQ_DT_INT64 && a->t->rank == 2)
        CHECK(nnq_i64(a->t)[0] == 1 && nnq_i64(a->t)[1] == -2 && nnq_i64(a->t)[2] == 3);
    /* The symbolic batch dim of the input. */
    int x = find(g, "X");
    CHECK(x >= 0 && g->n_inputs == 1 && g->inputs[0] == x);
    if (x >= 0) {
        const nnq_value *v = &g->values[x];
        CHECK(v->t.rank == 2 && v->t.dims[0] == -1 && v->t.dims[1] == 3);
        CHECK(v->dim_params && str_eq(v->dim_params[0], "N") && !v->dim_params[1]);
    }
}

static void test_typed_vs_raw(void) {
    nnq_graph *typed = NULL, *raw = NULL;
    char why[256] = "";
    CHECK_OK(nnq_onnx_load(FIXTURES "typed.onnx", &typed));
    CHECK_OK(nnq_onnx_load(FIXTURES "raw.onnx", &raw));
    if (typed && raw) {
        check_fixture_values(typed);
        check_fixture_values(raw);
        bool same = graph_eq(typed, raw, why, sizeof why);
        if (!same) fprintf(stderr, "typed vs raw: %s\n", why);
        CHECK(same);
    }
    nnq_graph_free(typed);
    nnq_graph_free(raw);
    roundtrip(FIXTURES "typed.onnx", "typed");
    roundtrip(FIXTURES "raw.onnx", "raw");
}

/* ---- every attribute type, optional inputs/outputs, shape hints ---- */

static void test_attrs_fixture(void) {
    nnq_graph *g = NULL;
    CHECK_OK(nnq_onnx_load(FIXTURES "attrs.onnx", &g));
    if (!g) return;
    CHECK(g->ir_version == 7 && nnq_graph_opset(g) == 13 && g->n_opsets == 2);
    CHECK(str_eq(g->opsets[1].domain, "com.nnq.test") && g->opsets[1].version == 1);
    CHECK(str_eq(g->producer_name, "nnq-fixtures") && str_eq(g->doc_string, "nnq attribute fixture"));
    CHECK(g->n_nodes == 5 && g->n_inputs == 2 && g->n_outputs == 2);
    if (g->n_nodes != 5) goto done;
    /* Initializer maxv is not a graph input. */
    int maxv = find(g, "maxv");
    CHECK(maxv >= 0 && g->values[maxv].is_initializer && g->values[maxv].t.rank == 0);
    for (int i = 0; i < g->n_inputs; i++) CHECK(g->inputs[i] != maxv);
    /* Clip(X, "", maxv) */
    const nnq_node *clip = &g->nodes[0];
    CHECK(clip->n_inputs == 3 && clip->inputs[0] == find(g, "X") && clip->inputs[1] == -1 &&
          clip->inputs[2] == maxv);
    /* Every attribute type. */
    const nnq_node *n = &g->nodes[1];
    CHECK(str_eq(n->op_type, "AllAttrs") && str_eq(n->domain, "com.nnq.test") && n->n_attrs == 8);
    CHECK(nnq_node_attr_float(n, "f", 0) == 0.5f && nnq_node_attr_int(n, "i", 0) == -7);
    const nnq_attr *a = nnq_node_attr(n, "s");
    CHECK(a && a->type == NNQ_ATTR_STRING && a->s_len == 11 && memcmp(a->s, "hello\0world", 12) == 0);
    a = nnq_node_attr(n, "t");
    CHECK(a && a->type == NNQ_ATTR_TENSOR && a->t->rank == 1 && a->t->dims[0] == 2 &&
          a->t->dtype == NNQ_DT_INT64 && nnq_i64(a->t)[1] == -2);
    const float *fl;
    const int64_t *in;
    CHECK(nnq_node_attr_floats(n, "floats", &fl) == 2 && fl[0] == 1.5f && fl[1] == -2.25f);
    CHECK(nnq_node_attr_ints(n, "ints", &in) == 3 && in[0] == 1 && in[2] == 3);
    a = nnq_node_attr(n, "strings");
    CHECK(a && a->type == NNQ_ATTR_STRINGS && a->n == 2 && str_eq(a->strings[0], "a") &&
          str_eq(a->strings[1], "bc"));
    a = nnq_node_attr(n, "ints_empty");
    CHECK(a && a->type == NNQ_ATTR_INTS && a->n == 0);
    /* Omitted first output; an unnamed node. */
    CHECK(g->nodes[2].n_outputs == 2 && g->nodes[2].outputs[0] == -1 && g->nodes[2].outputs[1] == find(g, "e"));
    CHECK(str_eq(g->nodes[3].name, "") && str_eq(g->nodes[3].op_type, "Relu"));
    /* Shapes: a hint with dim_param, a hint of unknown rank, no hint. */
    const nnq_value *c = &g->values[find(g, "c")];
    CHECK(c->t.dtype == NNQ_DT_FLOAT && c->t.rank == 2 && c->t.dims[0] == -1 && c->t.dims[1] == 3);
    CHECK(c->dim_params && str_eq(c->dim_params[0], "N"));
    const nnq_value *d = &g->values[find(g, "d")];
    CHECK(d->t.dtype == NNQ_DT_FLOAT && d->t.rank == -1);
    const nnq_value *e = &g->values[find(g, "e")];
    CHECK(e->t.dtype == NNQ_DT_UNDEFINED && e->t.rank == -1);
    CHECK(find(g, "unused_hint") < 0);
    /* An unnamed unknown dim; an output with a named and an unnamed one. */
    const nnq_value *m = &g->values[find(g, "mask_in")];
    CHECK(m->t.rank == 2 && m->t.dims[0] == -1 && m->t.dims[1] == 3 && (!m->dim_params || !m->dim_params[0]));
    const nnq_value *z = &g->values[find(g, "Z")];
    CHECK(z->t.rank == 2 && z->t.dims[0] == -1 && z->t.dims[1] == -1 && z->dim_params &&
          !z->dim_params[0] && str_eq(z->dim_params[1], "M"));
    CHECK(z->producer == 3);
done:
    nnq_graph_free(g);
    roundtrip(FIXTURES "attrs.onnx", "attrs");
}

/* ---- a graph built with the IR API ---- */

static void test_built_graph(void) {
    nnq_graph *g = nnq_graph_create("built"), *g2 = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    char why[256] = "";
    int x, y, w, node;
    CHECK(g != NULL);
    if (!g) return;
    /* No opset: export must refuse rather than guess. */
    CHECK_STATUS(nnq_onnx_save_bytes(g, &buf, &len), NNQ_ERR_INVALID);
    CHECK(buf == NULL);
    CHECK_OK(nnq_graph_set_opset(g, "", 17));
    /* Values in the order an import creates them (initializers first), so
     * the re-imported graph has the same indices. */
    nnq_tensor t = {0};
    int64_t dims[2] = {2, 2};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_FLOAT16, 2, dims));
    for (int i = 0; i < 4; i++) ((uint16_t *)t.data)[i] = nnq_float_to_half((float)i - 1.5f);
    CHECK_OK(nnq_graph_add_initializer(g, "w", &t, &w));
    CHECK_OK(nnq_graph_add_value(g, "x", &x)); /* rank unknown (-1) */
    g->values[x].t.dtype = NNQ_DT_FLOAT;
    CHECK_OK(nnq_graph_add_input(g, x));
    CHECK_OK(nnq_graph_add_value(g, "y", &y));
    int ins[3] = {x, -1, w};
    CHECK_OK(nnq_graph_add_node(g, "n0", "Custom", "org.test", 3, ins, 1, &y, &node));
    CHECK_OK(nnq_node_set_string(&g->nodes[node], "mode", "fast"));
    CHECK_OK(nnq_node_set_floats(&g->nodes[node], "scales", 0, NULL));
    CHECK_OK(nnq_graph_add_output(g, y));
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "built", &g2));
    if (g2) {
        CHECK(g2->ir_version == 8); /* opset 17 goes with IR 8 */
        CHECK(str_eq(g2->producer_name, "nnq"));
        g->ir_version = 8;
        bool same = graph_eq(g, g2, why, sizeof why);
        if (!same) fprintf(stderr, "built graph: %s\n", why);
        CHECK(same);
        CHECK(g2->values[x].t.rank == -1 && g2->values[x].t.dtype == NNQ_DT_FLOAT);
        CHECK(g2->values[y].t.dtype == NNQ_DT_UNDEFINED && g2->values[y].t.rank == -1);
    }
    nnq_graph_free(g2);
    free(buf);
    buf = NULL;
    /* Opset 13 goes with IR 7; an imported higher IR version is kept. */
    g->ir_version = 0;
    CHECK_OK(nnq_graph_set_opset(g, "", 13));
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "built13", &g2));
    CHECK(g2 && g2->ir_version == 7);
    nnq_graph_free(g2);
    free(buf);
    g->ir_version = 8;
    CHECK_OK(nnq_onnx_save_bytes(g, &buf, &len));
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "built13b", &g2));
    CHECK(g2 && g2->ir_version == 8);
    nnq_graph_free(g2);
    free(buf);

    /* Save to a file and load it back. */
    char path[1024];
    snprintf(path, sizeof path, "%s/built.onnx", out_dir[0] ? out_dir : "/tmp");
    CHECK_OK(nnq_onnx_save(g, path));
    CHECK_OK(nnq_onnx_load(path, &g2));
    CHECK(g2 && g2->n_nodes == 1 && tensor_eq(&g2->values[w].t, &g->values[w].t));
    nnq_graph_free(g2);
    unlink(path);
    /* A value index that does not exist is an export error, not a crash. */
    g->nodes[0].inputs[1] = 999;
    CHECK_STATUS(nnq_onnx_save_bytes(g, &buf, &len), NNQ_ERR_INVALID);
    nnq_graph_free(g);
}

/* ---- malformed input ---- */

/* Expect failure with a message; a crash or leak fails under ASan. */
static void expect_fail(const unsigned char *buf, size_t len, nnq_status want, const char *needle,
                        const char *label) {
    nnq_graph *g = (nnq_graph *)&g; /* poison: must be reset to NULL */
    nnq_clear_error();
    nnq_status s = nnq_onnx_load_bytes(buf, len, label, &g);
    if (s != want || g != NULL || (needle && !strstr(nnq_last_error(), needle))) {
        fprintf(stderr, "%s: got %s (%s), expected %s mentioning '%s'\n", label, nnq_status_name(s),
                nnq_last_error(), nnq_status_name(want), needle ? needle : "");
        check_failures_++;
    }
    if (s == NNQ_OK && g != (nnq_graph *)&g) nnq_graph_free(g);
}

/* A small valid model built with protobuf-c, altered per case. */
typedef struct crafted {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__TensorProto init;
    Onnx__TensorProto *inits[1];
    Onnx__NodeProto node;
    Onnx__NodeProto *nodes[1];
    char *node_in[2], *node_out[1];
    Onnx__AttributeProto attr;
    Onnx__AttributeProto *attrs[1];
    Onnx__ValueInfoProto in, out;
    Onnx__ValueInfoProto *ins[1], *outs[1];
    Onnx__TypeProto in_type;
    Onnx__TypeProto__Tensor in_tensor;
    int64_t dims[12];
    float data[6];
} crafted;

static void craft(crafted *c) {
    static const Onnx__ModelProto m0 = ONNX__MODEL_PROTO__INIT;
    static const Onnx__GraphProto g0 = ONNX__GRAPH_PROTO__INIT;
    static const Onnx__OperatorSetIdProto o0 = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    static const Onnx__TensorProto t0 = ONNX__TENSOR_PROTO__INIT;
    static const Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT;
    static const Onnx__AttributeProto a0 = ONNX__ATTRIBUTE_PROTO__INIT;
    static const Onnx__ValueInfoProto v0 = ONNX__VALUE_INFO_PROTO__INIT;
    static const Onnx__TypeProto tp0 = ONNX__TYPE_PROTO__INIT;
    static const Onnx__TypeProto__Tensor tt0 = ONNX__TYPE_PROTO__TENSOR__INIT;
    memset(c, 0, sizeof *c);
    c->model = m0;
    c->graph = g0;
    c->opset = o0;
    c->init = t0;
    c->node = n0;
    c->attr = a0;
    c->in = v0;
    c->out = v0;
    c->in_type = tp0;
    c->in_tensor = tt0;
    c->model.has_ir_version = 1;
    c->model.ir_version = 7;
    c->model.graph = &c->graph;
    c->opset.domain = "";
    c->opset.has_version = 1;
    c->opset.version = 13;
    c->opsets[0] = &c->opset;
    c->model.n_opset_import = 1;
    c->model.opset_import = c->opsets;
    c->graph.name = "crafted";
    /* W: float [2,3] as raw_data */
    c->dims[0] = 2;
    c->dims[1] = 3;
    c->init.name = "W";
    c->init.has_data_type = 1;
    c->init.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    c->init.n_dims = 2;
    c->init.dims = c->dims;
    c->init.has_raw_data = 1;
    c->init.raw_data.len = sizeof c->data;
    c->init.raw_data.data = (uint8_t *)c->data;
    c->inits[0] = &c->init;
    c->graph.n_initializer = 1;
    c->graph.initializer = c->inits;
    /* Y = MatMul(X, W) with attribute a=1 */
    c->node_in[0] = "X";
    c->node_in[1] = "W";
    c->node_out[0] = "Y";
    c->node.op_type = "MatMul";
    c->node.name = "mm";
    c->node.n_input = 2;
    c->node.input = c->node_in;
    c->node.n_output = 1;
    c->node.output = c->node_out;
    c->attr.name = "a";
    c->attr.has_type = 1;
    c->attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    c->attr.has_i = 1;
    c->attr.i = 1;
    c->attrs[0] = &c->attr;
    c->node.n_attribute = 1;
    c->node.attribute = c->attrs;
    c->nodes[0] = &c->node;
    c->graph.n_node = 1;
    c->graph.node = c->nodes;
    c->in_tensor.has_elem_type = 1;
    c->in_tensor.elem_type = 1;
    c->in_type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    c->in_type.tensor_type = &c->in_tensor;
    c->in.name = "X";
    c->in.type = &c->in_type;
    c->ins[0] = &c->in;
    c->graph.n_input = 1;
    c->graph.input = c->ins;
    c->out.name = "Y";
    c->outs[0] = &c->out;
    c->graph.n_output = 1;
    c->graph.output = c->outs;
}

static unsigned char *pack(const crafted *c, size_t *len) {
    *len = onnx__model_proto__get_packed_size(&c->model);
    unsigned char *buf = malloc(*len ? *len : 1);
    if (buf) onnx__model_proto__pack(&c->model, buf);
    return buf;
}

static void expect_crafted(const crafted *c, nnq_status want, const char *needle, const char *label) {
    size_t len;
    unsigned char *buf = pack(c, &len);
    if (buf) expect_fail(buf, len, want, needle, label);
    free(buf);
}

static void test_crafted(void) {
    crafted c;
    size_t len;
    nnq_graph *g = NULL;

    /* The unaltered model loads, so each failure below is due to its change. */
    craft(&c);
    unsigned char *buf = pack(&c, &len);
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "crafted", &g));
    CHECK(g && g->n_nodes == 1 && g->n_inputs == 1 && g->values[find(g, "W")].is_initializer);
    nnq_graph_free(g);
    free(buf);

    /* A node input nothing defines loads (the verifier reports it later). */
    craft(&c);
    c.node_in[0] = "ghost";
    buf = pack(&c, &len);
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "undefined input", &g));
    if (g) {
        int ghost = find(g, "ghost");
        CHECK(ghost >= 0 && g->values[ghost].producer == -1 && !g->values[ghost].is_initializer);
        CHECK(g->nodes[0].inputs[0] == ghost && g->n_inputs == 1 && g->inputs[0] == find(g, "X"));
    }
    nnq_graph_free(g);
    free(buf);

    Onnx__StringStringEntryProto loc = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *locs[1] = {&loc};
    loc.key = "location";
    loc.value = "w.bin";
    craft(&c);
    c.init.has_data_location = 1;
    c.init.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    c.init.has_raw_data = 0;
    c.init.n_external_data = 1;
    c.init.external_data = locs;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "'W' uses external data", "external data");
    craft(&c);
    c.init.has_data_location = 1;
    c.init.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "external data", "external location only");

    craft(&c);
    c.opset.version = 0; /* opsets 1..10 load (upgraded to 11) */
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "opset 0", "opset 0");
    c.opset.version = 20;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "opset 20", "opset 20");
    c.opset.domain = "ai.onnx";
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "opset 20", "opset 20 as ai.onnx");
    c.opset.domain = "com.other";
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "no default-domain", "no default opset");

    craft(&c);
    c.init.raw_data.len = 20; /* 5 floats for a [2,3] tensor */
    expect_crafted(&c, NNQ_ERR_PARSE, "'W'", "raw data shorter than dims");
    craft(&c);
    c.init.has_raw_data = 0;
    c.init.n_float_data = 5;
    c.init.float_data = c.data;
    expect_crafted(&c, NNQ_ERR_PARSE, "'W'", "typed data shorter than dims");
    craft(&c);
    c.init.has_raw_data = 0;
    expect_crafted(&c, NNQ_ERR_PARSE, "'W'", "no data at all");
    craft(&c);
    c.init.n_float_data = 6;
    c.init.float_data = c.data;
    expect_crafted(&c, NNQ_ERR_PARSE, "both raw_data and typed", "raw and typed");
    craft(&c);
    c.init.has_raw_data = 0;
    c.init.n_int64_data = 6;
    c.init.int64_data = c.dims;
    expect_crafted(&c, NNQ_ERR_PARSE, "does not match", "float data in int64_data");

    /* Huge dims in a tiny file: rejected before any allocation. */
    craft(&c);
    c.dims[0] = (int64_t)1 << 40;
    c.dims[1] = (int64_t)1 << 40;
    expect_crafted(&c, NNQ_ERR_LIMIT, "'W'", "dims overflow");
    c.dims[0] = INT64_MAX;
    c.dims[1] = 2;
    expect_crafted(&c, NNQ_ERR_LIMIT, "'W'", "dims INT64_MAX");
    c.dims[0] = (int64_t)1 << 31; /* 8 GiB of floats: over the tensor limit */
    c.dims[1] = 1;
    expect_crafted(&c, NNQ_ERR_LIMIT, "'W'", "dims over the tensor limit");
    c.dims[0] = (int64_t)1 << 28; /* 1 GiB, allowed, but raw_data holds 24 bytes */
    expect_crafted(&c, NNQ_ERR_PARSE, "'W'", "dims larger than data");
    c.dims[0] = -2;
    c.dims[1] = -3;
    expect_crafted(&c, NNQ_ERR_PARSE, "negative", "negative dims");
    craft(&c);
    c.init.n_dims = 9;
    for (int i = 0; i < 9; i++) c.dims[i] = 1;
    expect_crafted(&c, NNQ_ERR_LIMIT, "rank 9", "rank 9");

    craft(&c);
    c.init.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "strings", "string tensor");
    c.init.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "data type 16", "bfloat16 tensor");
    c.init.data_type = 12345;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "data type 12345", "bogus dtype");
    c.init.data_type = -1;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "data type -1", "negative dtype");
    craft(&c);
    c.init.name = "";
    expect_crafted(&c, NNQ_ERR_PARSE, "no name", "unnamed initializer");
    craft(&c);
    Onnx__TensorProto *two[2] = {&c.init, &c.init};
    c.graph.n_initializer = 2;
    c.graph.initializer = two;
    expect_crafted(&c, NNQ_ERR_INVALID, "'W'", "duplicate initializer");

    Onnx__GraphProto sub = ONNX__GRAPH_PROTO__INIT;
    sub.name = "body";
    craft(&c);
    c.attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    c.attr.g = &sub;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "node 'mm': attribute 'a' has type GRAPH", "graph attribute");
    c.attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "SPARSE_TENSOR", "sparse attribute");
    craft(&c);
    c.attr.ref_attr_name = "outer";
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "'outer'", "ref_attr_name");
    craft(&c);
    c.attr.has_type = 0; /* old writers: type inferred from the field present */
    buf = pack(&c, &len);
    CHECK_OK(nnq_onnx_load_bytes(buf, len, "untyped attribute", &g));
    CHECK(g && nnq_node_attr_int(&g->nodes[0], "a", 0) == 1);
    nnq_graph_free(g);
    free(buf);
    c.attr.has_i = 0;
    expect_crafted(&c, NNQ_ERR_PARSE, "unknown type", "attribute without a value");
    craft(&c);
    c.attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR; /* no tensor */
    expect_crafted(&c, NNQ_ERR_PARSE, "holds no tensor", "empty tensor attribute");
    craft(&c);
    c.attr.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    Onnx__TensorProto bad = c.init;
    bad.raw_data.len = 4;
    c.attr.t = &bad;
    expect_crafted(&c, NNQ_ERR_PARSE, "node 'mm' attribute 'a'", "bad tensor attribute");
    craft(&c);
    Onnx__AttributeProto *dup[2] = {&c.attr, &c.attr};
    c.node.n_attribute = 2;
    c.node.attribute = dup;
    expect_crafted(&c, NNQ_ERR_PARSE, "appears twice", "duplicate attribute");
    craft(&c);
    c.node.op_type = NULL;
    expect_crafted(&c, NNQ_ERR_PARSE, "no op_type", "node without op_type");

    craft(&c);
    c.in_type.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
    Onnx__TypeProto__Sequence seq = ONNX__TYPE_PROTO__SEQUENCE__INIT;
    c.in_type.sequence_type = &seq;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "'X' is not a tensor", "sequence input");
    craft(&c);
    c.in_tensor.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
    expect_crafted(&c, NNQ_ERR_UNSUPPORTED, "'X'", "string input");
    craft(&c);
    c.in.name = NULL;
    expect_crafted(&c, NNQ_ERR_PARSE, "no name", "unnamed input");
    craft(&c);
    Onnx__ValueInfoProto *two_in[2] = {&c.in, &c.in};
    c.graph.n_input = 2;
    c.graph.input = two_in;
    expect_crafted(&c, NNQ_ERR_PARSE, "listed twice", "input listed twice");
    craft(&c);
    c.model.graph = NULL;
    expect_crafted(&c, NNQ_ERR_PARSE, "no graph", "model without graph");

    /* Input shape checks: rank over the limit, negative dim_value. */
    craft(&c);
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    Onnx__TensorShapeProto__Dimension dim = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    Onnx__TensorShapeProto__Dimension *dimv[9] = {&dim, &dim, &dim, &dim, &dim, &dim, &dim, &dim, &dim};
    dim.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dim.dim_value = 1;
    shape.n_dim = 9;
    shape.dim = dimv;
    c.in_tensor.shape = &shape;
    expect_crafted(&c, NNQ_ERR_LIMIT, "rank 9", "input rank 9");
    shape.n_dim = 2;
    dim.dim_value = -4;
    expect_crafted(&c, NNQ_ERR_PARSE, "negative", "input negative dim");
    /* ... after a dim_param was read (its copy must be freed: ASan). */
    Onnx__TensorShapeProto__Dimension pdim = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    pdim.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    pdim.dim_param = "N";
    dimv[0] = &pdim;
    expect_crafted(&c, NNQ_ERR_PARSE, "negative", "input dim_param then negative dim");
}

/* Every prefix, random bytes, single bit flips: non-OK with a message
 * (or, for a flip that keeps the model valid, OK), never a crash. */
static void test_corrupt_bytes(void) {
    unsigned char *model = NULL, *buf = NULL;
    size_t len = 0;
    CHECK_OK(nnq_read_file(FIXTURES "attrs.onnx", 1 << 20, &model, &len));
    if (!model) return;
    char label[64];
    size_t first_ok = len;
    for (size_t n = 0; n < len; n++) {
        nnq_graph *g = NULL;
        nnq_clear_error();
        nnq_status s = nnq_onnx_load_bytes(model, n, "prefix", &g);
        if (s == NNQ_OK) {
            if (n < first_ok) first_ok = n;
            nnq_graph_free(g);
        } else {
            CHECK(g == NULL && strlen(nnq_last_error()) > 8);
        }
    }
    /* The model ends with its two opset imports ("" then com.nnq.test,
     * 18 bytes on the wire); only cutting off the last one leaves a valid model. */
    CHECK(first_ok == len - 18);

    uint64_t seed = 0x9E3779B97F4A7C15ull;
    buf = malloc(4096);
    for (int r = 0; r < 300 && buf; r++) {
        size_t n = 0;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        n = 1 + (size_t)(seed >> 33) % 4096;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = (unsigned char)(seed >> 56);
        }
        snprintf(label, sizeof label, "random %d", r);
        nnq_graph *g = NULL;
        nnq_status s = nnq_onnx_load_bytes(buf, n, label, &g);
        CHECK(s != NNQ_OK && g == NULL);
        if (g) nnq_graph_free(g);
    }
    free(buf);

    int flips_ok = 0, flips_bad = 0;
    buf = malloc(len);
    for (size_t i = 0; i < len && buf; i++) {
        memcpy(buf, model, len);
        buf[i] ^= (unsigned char)(1u << (i % 8));
        nnq_graph *g = NULL;
        nnq_clear_error();
        nnq_status s = nnq_onnx_load_bytes(buf, len, "bit flip", &g);
        if (s == NNQ_OK) {
            flips_ok++;
            /* Whatever loaded must export again. */
            unsigned char *out = NULL;
            size_t out_len = 0;
            nnq_status e = nnq_onnx_save_bytes(g, &out, &out_len);
            CHECK(e == NNQ_OK || e == NNQ_ERR_INVALID);
            free(out);
            nnq_graph_free(g);
        } else {
            flips_bad++;
            CHECK(g == NULL && strlen(nnq_last_error()) > 8);
        }
    }
    CHECK(flips_bad > 0 && flips_ok > 0); /* both kinds occur: flips hit structure and data */
    free(buf);
    free(model);
}

static void test_unsupported_real_models(void) {
    nnq_graph *g = (nnq_graph *)&g;
    /* Opset 6: loads, upgraded to opset 11 (tests/test_onnx_upgrade.c). */
    CHECK_OK(nnq_onnx_load(TESTDATA "pytorch-converted/test_Conv2d_groups/model.onnx", &g));
    CHECK(g && nnq_graph_opset(g) == 11);
    nnq_graph_free(g);
    CHECK_STATUS(nnq_onnx_load(TESTDATA "node/test_if/model.onnx", &g), NNQ_ERR_UNSUPPORTED);
    CHECK(strstr(nnq_last_error(), "GRAPH") != NULL);
    CHECK_STATUS(nnq_onnx_load(TESTDATA "node/test_identity_sequence/model.onnx", &g), NNQ_ERR_UNSUPPORTED);
    CHECK_STATUS(nnq_onnx_load("tests/fixtures/onnx/does-not-exist.onnx", &g), NNQ_ERR_IO);
    CHECK(strstr(nnq_last_error(), "does-not-exist.onnx") != NULL);
}

/* ---- tensor files ---- */

static void test_tensor_files(void) {
    nnq_tensor t = {0}, u = {0};
    char *name = NULL, *name2 = NULL;
    char path[1024];
    CHECK_OK(nnq_onnx_load_tensor(TESTDATA "node/test_conv_with_strides_padding/test_data_set_0/input_0.pb",
                                  &t, &name));
    CHECK(str_eq(name, "x") && t.dtype == NNQ_DT_FLOAT && t.rank == 4 && t.dims[2] == 7 && t.dims[3] == 5);
    if (t.data && nnq_tensor_numel(&t) == 35)
        for (int i = 0; i < 35; i++) CHECK(nnq_f32(&t)[i] == (float)i);
    snprintf(path, sizeof path, "%s/tensor.pb", out_dir[0] ? out_dir : "/tmp");
    CHECK_OK(nnq_onnx_save_tensor(&t, "renamed", path));
    CHECK_OK(nnq_onnx_load_tensor(path, &u, &name2));
    CHECK(str_eq(name2, "renamed") && tensor_eq(&t, &u));
    nnq_tensor_release(&u);
    /* A truncated tensor file fails cleanly. */
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_OK(nnq_read_file(path, 1 << 20, &buf, &len));
    if (buf && len > 10) {
        CHECK_OK(nnq_write_file_atomic(path, buf, len - 10));
        CHECK(nnq_onnx_load_tensor(path, &u, NULL) != NNQ_OK && u.data == NULL);
    }
    free(buf);
    unlink(path);
    nnq_tensor_release(&t);
    free(name);
    free(name2);
}

/* ---- onnx.checker on the re-exported models ---- */

static void test_onnx_checker(void) {
    const char *py = python_with_onnx();
    if (!py) {
        fprintf(stderr, "onnx.checker: skipped: python3-onnx not installed\n");
        return;
    }
    CHECK(n_checker_files >= 10);
    size_t cap = 512;
    for (int i = 0; i < n_checker_files; i++) cap += strlen(checker_files[i]) + 3;
    char *cmd = malloc(cap);
    if (!cmd) return;
    int used = snprintf(cmd, cap, "%s -c 'import onnx, sys\n"
                                  "for p in sys.argv[1:]:\n"
                                  "    onnx.checker.check_model(onnx.load(p), full_check=True)\n'",
                        py);
    for (int i = 0; i < n_checker_files; i++)
        used += snprintf(cmd + used, cap - (size_t)used, " '%s'", checker_files[i]);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "onnx.checker rejected a model nnq exported (see above)\n");
    else
        fprintf(stderr, "onnx.checker (full_check) accepted %d re-exported models\n", n_checker_files);
    CHECK(rc == 0);
    free(cmd);
}

int main(void) {
    const char *base = getenv("NNQ_TEST_OUT_DIR");
    snprintf(out_dir, sizeof out_dir, "%s/nnq_onnx_io_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(out_dir)) {
        fprintf(stderr, "cannot create a temporary directory; not running onnx.checker\n");
        out_dir[0] = '\0';
    }
    test_real_models();
    test_typed_vs_raw();
    test_attrs_fixture();
    test_built_graph();
    test_crafted();
    test_corrupt_bytes();
    test_unsupported_real_models();
    test_tensor_files();
    test_onnx_checker();
    for (int i = 0; i < n_checker_files; i++) {
        if (!check_failures_) unlink(checker_files[i]);
        free(checker_files[i]);
    }
    if (out_dir[0] && !check_failures_) rmdir(out_dir);
    return check_finish("test_onnx_io");
}
