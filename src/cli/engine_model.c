/* Opening a model for an engine (engine_model.h). */
#include "cli/engine_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/model_load.h"
#include "onnx/onnx_io.h"

static const char *const engine_names[] = {"float", "int", "sim"};

bool cli_engine_parse(const char *s, cli_engine *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, engine_names[i]) == 0) {
            *out = (cli_engine)i;
            return true;
        }
    return false;
}

const char *cli_engine_name(cli_engine e) { return engine_names[e]; }

/* Whether path starts with the .nnqi magic (a missing file: no, the
 * loader then names it). */
static bool looks_nnqi(const char *path) {
    unsigned char head[8];
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    const size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    return nnq_iprog_sniff(head, n);
}

static nnq_status with_path(nnq_status s, const char *path) {
    if (strstr(nnq_last_error(), path)) return s;
    return nnq_fail_context(s, "%s: ", path);
}

nnq_status cli_model_open(const char *path, cli_engine engine, int threads, bool quiet,
                          cli_model *m) {
    memset(m, 0, sizeof *m);
    m->path = path;
    m->engine = engine;
    struct stat st;
    if (stat(path, &st) == 0) m->file_bytes = (size_t)st.st_size;
    m->is_nnqi = looks_nnqi(path);
    nnq_status s = NNQ_OK;
    if (m->is_nnqi) {
        if (engine == CLI_ENGINE_FLOAT)
            return nnq_fail(NNQ_ERR_UNSUPPORTED, "%s is a lowered integer program (.nnqi); "
                            "run it with --engine int or sim, or give the ONNX model for float",
                            path);
        NNQ_TRY(nnq_iprog_load(path, &m->p));
    } else if (engine == CLI_ENGINE_FLOAT) {
        NNQ_TRY(cli_load_model(path, &m->g));
    } else {
        if ((s = nnq_onnx_load(path, &m->g)) != NNQ_OK) return with_path(s, path);
        if ((s = nnq_iprog_prepare_graph(m->g)) != NNQ_OK ||
            (s = nnq_iprog_lower(m->g, &m->p)) != NNQ_OK) {
            cli_model_close(m);
            return with_path(s, path);
        }
        if (!quiet)
            for (int i = 0; i < nnq_iprog_note_count(m->p); i++)
                fprintf(stderr, "nnq: %s: %s\n", path, nnq_iprog_note(m->p, i));
    }
    if (m->p) {
        s = nnq_iexec_create(m->p, engine == CLI_ENGINE_SIM ? NNQ_ENGINE_SIM : NNQ_ENGINE_INT,
                             threads, &m->ix);
        m->n_inputs = nnq_iprog_input_count(m->p);
        m->n_outputs = nnq_iprog_output_count(m->p);
        if (m->n_inputs > 0) {
            m->in.name = (char *)nnq_iprog_input_name(m->p, 0);
            nnq_iprog_input_shape(m->p, 0, &m->in.t);
        }
        if (m->n_outputs > 0) m->out_name = nnq_iprog_output_name(m->p, 0);
    } else {
        const nnq_exec_options xo = {.threads = threads, .keep_all = false};
        s = nnq_exec_create(m->g, &xo, &m->fx);
        m->n_inputs = m->g->n_inputs;
        m->n_outputs = m->g->n_outputs;
        if (m->n_inputs > 0) m->in = m->g->values[m->g->inputs[0]];
        if (m->n_outputs > 0) m->out_name = m->g->values[m->g->outputs[0]].name;
    }
    if (s != NNQ_OK) {
        cli_model_close(m);
        return with_path(s, path);
    }
    return NNQ_OK;
}

void cli_model_close(cli_model *m) {
    nnq_exec_free(m->fx);
    nnq_iexec_free(m->ix);
    nnq_iprog_free(m->p);
    nnq_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

nnq_status cli_model_output_shape(const cli_model *m, const nnq_tensor *x, nnq_tensor *y) {
    if (m->p) {
        nnq_iprog_output_shape(m->p, 0, y);
        if (y->rank > 0 && y->dims[0] < 0) y->dims[0] = x->dims[0];
        return NNQ_OK;
    }
    const nnq_graph *g = m->g;
    nnq_tensor *shapes = calloc((size_t)g->n_values, sizeof *shapes);
    if (!shapes) return nnq_fail(NNQ_ERR_NOMEM, "out of memory inferring shapes");
    nnq_tensor in = *x;
    in.data = NULL;
    nnq_status s = nnq_graph_infer_shapes(g, &in, shapes);
    if (s == NNQ_OK) {
        *y = shapes[g->outputs[0]];
        y->data = NULL;
        y->owns = false;
    }
    free(shapes);
    return s;
}

nnq_status cli_model_run(cli_model *m, const nnq_tensor *x, const nnq_tensor **y) {
    if (m->ix) {
        NNQ_TRY(nnq_iexec_run(m->ix, x));
        *y = nnq_iexec_output(m->ix, 0);
        return NNQ_OK;
    }
    NNQ_TRY(nnq_exec_run(m->fx, x));
    *y = nnq_exec_output(m->fx, 0);
    return NNQ_OK;
}
