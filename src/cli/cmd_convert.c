/* nnq convert: import an ONNX model, prepare it, export it again. What
 * comes out is the model as nnq holds it: upgraded to opset 11 when it was
 * older, with every graph output typed and shaped. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/model_load.h"
#include "onnx/onnx_io.h"
#include "ops/executor.h"

typedef struct convert_opts {
    const char *input, *output;
    bool quiet;
} convert_opts;

void cmd_convert_help(FILE *fp) {
    fprintf(fp,
            "usage: nnq convert IN.onnx -o OUT.onnx [--quiet]\n"
            "\n"
            "Import a model, prepare it and export it again (atomically), as nnq\n"
            "normalises it. Preparing checks that the graph is well formed, that\n"
            "every op is supported and that shapes infer; a model that fails any of\n"
            "this is not written. The output differs from the input on purpose:\n"
            "  - models of opsets %d-%d are upgraded to opset %d (old attributes become\n"
            "    inputs or initializers, old broadcasting becomes numpy's);\n"
            "  - the IR version is raised to the one the opset needs;\n"
            "  - graph outputs without a declared type or shape get the inferred one\n"
            "    (symbolic input dims carried over by name), as the ONNX checker\n"
            "    requires;\n"
            "  - intermediate values get value_info where their type is known, and\n"
            "    initializers are stored as raw little-endian data.\n"
            "Constant subgraphs are evaluated while preparing but stay in the graph\n"
            "as nodes. Nodes, attributes and weights are otherwise kept bit-exactly.\n"
            "\n"
            "options:\n"
            "  -o, --output OUT  where to write the converted model (required)\n"
            "  --quiet           no summary line on stderr\n"
            "  -h, --help        show this help\n",
            NNQ_ONNX_MIN_OPSET, NNQ_ONNX_UPGRADE_OPSET - 1, NNQ_ONNX_UPGRADE_OPSET);
}

static int parse(int argc, char **argv, convert_opts *o) {
    const cli_opt opts[] = {
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    cli_parse_result r = cli_parse_args("convert", argc, argv, opts,
                                        (int)(sizeof opts / sizeof opts[0]), pos, 1, &n_pos);
    switch (r) {
    case CLI_PARSE_HELP: cmd_convert_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("convert", "expected one IN.onnx argument");
    o->input = pos[0];
    if (!o->output) return cli_usage_error("convert", "-o OUT.onnx is required");
    return CLI_EXIT_OK;
}

/* ---- output shapes ----
 * Shape inference runs on concrete sizes, so symbolic input dims are
 * probed: one run with every symbolic dim 1 (prepare has shown it works),
 * then one run per symbolic dim with that dim alone set to 2. An output dim
 * that never moves is fixed; one that follows exactly one symbolic input
 * dim (1 -> 2) takes its name; anything else stays unknown. */

#define DEP_NONE (-1)  /* no symbolic input dim moved this output dim */
#define DEP_MANY (-2)  /* it moved in a way no single symbolic dim explains */

typedef struct sym_dim {
    int input, dim; /* index into g->inputs, dimension */
} sym_dim;

static nnq_status infer_probe(const nnq_graph *g, const sym_dim *syms, int vary, nnq_tensor *ins,
                              nnq_tensor *shapes) {
    for (int i = 0; i < g->n_inputs; i++) {
        ins[i] = g->values[g->inputs[i]].t;
        ins[i].data = NULL;
        ins[i].owns = false;
        for (int k = 0; k < ins[i].rank; k++)
            if (ins[i].dims[k] < 0) ins[i].dims[k] = 1;
    }
    if (vary >= 0) ins[syms[vary].input].dims[syms[vary].dim] = 2;
    return nnq_graph_infer_shapes(g, ins, shapes);
}

/* Give output value v dtype, rank and the dims found; declared facts win. */
static nnq_status annotate_output(nnq_graph *g, int v, const nnq_tensor *base, const int *dep,
                                  const sym_dim *syms) {
    nnq_value *val = &g->values[v];
    if (val->t.data || base->dtype == NNQ_DT_UNDEFINED || base->rank < 0) return NNQ_OK;
    if (val->t.dtype == NNQ_DT_UNDEFINED) val->t.dtype = base->dtype;
    if (val->t.rank < 0) {
        val->t.rank = base->rank;
        for (int k = 0; k < base->rank; k++) val->t.dims[k] = -1;
    }
    if (val->t.rank != base->rank) return NNQ_OK; /* declared differently: leave it */
    for (int k = 0; k < base->rank; k++) {
        bool named = val->dim_params && val->dim_params[k];
        if (val->t.dims[k] >= 0 || named) continue;
        if (dep[k] == DEP_NONE) {
            val->t.dims[k] = base->dims[k];
            continue;
        }
        if (dep[k] < 0) continue;
        const nnq_value *in = &g->values[g->inputs[syms[dep[k]].input]];
        const char *name = in->dim_params ? in->dim_params[syms[dep[k]].dim] : NULL;
        if (!name || !name[0]) continue;
        if (!val->dim_params && !(val->dim_params = calloc(NNQ_MAX_RANK, sizeof(char *))))
            return nnq_fail(NNQ_ERR_NOMEM, "out of memory naming the dims of output '%s'",
                            val->name);
        if (!(val->dim_params[k] = malloc(strlen(name) + 1)))
            return nnq_fail(NNQ_ERR_NOMEM, "out of memory naming the dims of output '%s'",
                            val->name);
        strcpy(val->dim_params[k], name);
    }
    return NNQ_OK;
}

static nnq_status annotate_outputs(nnq_graph *g) {
    nnq_status s = NNQ_OK;
    int n_syms = 0;
    sym_dim syms[NNQ_MAX_RANK * 8];
    for (int i = 0; i < g->n_inputs; i++) {
        const nnq_tensor *t = &g->values[g->inputs[i]].t;
        if (nnq_dtype_is_integer(t->dtype)) return NNQ_OK; /* shapes may follow data */
        for (int k = 0; k < t->rank; k++)
            if (t->dims[k] < 0 && n_syms < (int)(sizeof syms / sizeof syms[0]))
                syms[n_syms++] = (sym_dim){i, k};
    }
    size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    nnq_tensor *ins = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *ins);
    nnq_tensor *base = calloc(nv, sizeof *base);
    nnq_tensor *probe = calloc(nv, sizeof *probe);
    int *dep = calloc((size_t)(g->n_outputs ? g->n_outputs : 1) * NNQ_MAX_RANK, sizeof *dep);
    if (!ins || !base || !probe || !dep) {
        s = nnq_fail(NNQ_ERR_NOMEM, "out of memory inferring output shapes");
        goto done;
    }
    if ((s = infer_probe(g, syms, -1, ins, base)) != NNQ_OK) goto done;
    for (int i = 0; i < g->n_outputs * NNQ_MAX_RANK; i++) dep[i] = DEP_NONE;
    for (int j = 0; j < n_syms; j++) {
        /* A size that does not infer (e.g. a reshape to a fixed size)
         * leaves every dim it might have moved unknown. */
        bool ok = infer_probe(g, syms, j, ins, probe) == NNQ_OK;
        nnq_clear_error();
        for (int o = 0; o < g->n_outputs; o++) {
            const nnq_tensor *a = &base[g->outputs[o]], *b = &probe[g->outputs[o]];
            int *d = dep + (size_t)o * NNQ_MAX_RANK;
            for (int k = 0; k < a->rank && k < NNQ_MAX_RANK; k++) {
                if (ok && b->rank == a->rank && b->dims[k] == a->dims[k]) continue;
                bool follows = ok && b->rank == a->rank && a->dims[k] == 1 && b->dims[k] == 2;
                d[k] = (follows && d[k] == DEP_NONE) ? j : DEP_MANY;
            }
        }
    }
    for (int o = 0; o < g->n_outputs; o++)
        if ((s = annotate_output(g, g->outputs[o], &base[g->outputs[o]],
                                 dep + (size_t)o * NNQ_MAX_RANK, syms)) != NNQ_OK)
            goto done;
done:
    free(dep);
    free(probe);
    free(base);
    free(ins);
    return s;
}

int cmd_convert_run(int argc, char **argv) {
    convert_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;

    nnq_graph *g = NULL;
    nnq_status s = cli_load_model(o.input, &g);
    if (s != NNQ_OK) goto fail;
    if ((s = annotate_outputs(g)) != NNQ_OK) {
        nnq_fail_context(s, "%s: ", o.input);
        goto fail;
    }
    if ((s = nnq_onnx_save(g, o.output)) != NNQ_OK) goto fail;
    if (!o.quiet)
        fprintf(stderr, "convert %s -> %s: opset %lld, %d nodes, %d inputs, %d outputs\n", o.input,
                o.output, (long long)nnq_graph_opset(g), g->n_nodes, g->n_inputs, g->n_outputs);
    nnq_graph_free(g);
    return CLI_EXIT_OK;
fail:
    rc = cli_fail(s);
    nnq_graph_free(g);
    return rc;
}
