/* nnq lower: a quantized ONNX model lowered to nnq's integer program and
 * written as a compact .nnqi file (engine/iprog.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/json_out.h"
#include "engine/iprog.h"
#include "onnx/onnx_io.h"

typedef struct lower_opts {
    const char *model, *output;
    bool json, quiet;
} lower_opts;

void cmd_lower_help(FILE *fp) {
    fputs("usage: nnq lower Q.onnx -o M.nnqi [--json] [--quiet]\n"
          "\n"
          "Lower a quantized ONNX model (QDQ: nnq's export or ONNX Runtime's\n"
          "quantize_static format; or QOperator: QLinearConv, QLinearMatMul,\n"
          "ConvInteger, MatMulInteger) to nnq's integer program and write it as a\n"
          "compact binary file (atomically): weights of <= 4 bits packed two per byte,\n"
          "int32 biases, per-channel fixed-point multipliers, a CRC-32. `nnq eval`,\n"
          "`nnq run` and `nnq bench` take the .nnqi with --engine int or sim.\n"
          "A model with a node that cannot be lowered (it would run in float) is\n"
          "refused: the .nnqi holds integer operators only.\n"
          "\n"
          "options:\n"
          "  -o, --output M  the .nnqi to write (required)\n"
          "  --json          one JSON object on stdout: model, output, ops, linear,\n"
          "                  linear_packed, linear_ref, weight_bytes, macs, onnx_bytes,\n"
          "                  nnqi_bytes\n"
          "  --quiet         nothing on stderr but errors\n"
          "  -h, --help      show this help\n",
          fp);
}

static int parse(int argc, char **argv, lower_opts *o) {
    const cli_opt opts[] = {
        {"output", CLI_OPT_STRING, &o->output, 0, 0},
        {"json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"quiet", CLI_OPT_FLAG, &o->quiet, 0, 0},
    };
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("lower", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 1,
                           &n_pos)) {
    case CLI_PARSE_HELP: cmd_lower_help(stdout); return -1;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("lower", "expected one Q.onnx argument");
    o->model = pos[0];
    if (!o->output) return cli_usage_error("lower", "-o M.nnqi is required");
    return CLI_EXIT_OK;
}

static long long file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_lower_run(int argc, char **argv) {
    lower_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc < 0) return CLI_EXIT_OK; /* --help */
    if (rc != CLI_EXIT_OK) return rc;
    nnq_graph *g = NULL;
    nnq_iprog *p = NULL;
    nnq_status s = nnq_onnx_load(o.model, &g);
    if (s == NNQ_OK) s = nnq_iprog_prepare_graph(g);
    if (s == NNQ_OK) s = nnq_iprog_lower(g, &p);
    if (s != NNQ_OK) {
        nnq_fail_context(s, "%s: ", o.model);
        goto fail;
    }
    if (!o.quiet)
        for (int i = 0; i < nnq_iprog_note_count(p); i++)
            fprintf(stderr, "nnq: %s: %s\n", o.model, nnq_iprog_note(p, i));
    if ((s = nnq_iprog_save(p, o.output)) != NNQ_OK) goto fail;
    nnq_iprog_stats st;
    nnq_iprog_get_stats(p, &st);
    const long long in_bytes = file_bytes(o.model), out_bytes = file_bytes(o.output);
    if (!o.quiet)
        fprintf(stderr,
                "lower %s: %d operators (%d convolutions/products, %d with packed 4-bit "
                "weights, %d on the reference path), %zu weight bytes, %.2f MMACs per image "
                "-> %s (%lld bytes, %.3fx the ONNX file)\n",
                o.model, st.ops, st.linear, st.linear_packed, st.linear_ref, st.weight_bytes,
                (double)st.macs / 1e6, o.output, out_bytes,
                in_bytes > 0 ? (double)out_bytes / (double)in_bytes : 0.0);
    if (o.json) {
        cli_json j;
        cli_json_init(&j, stdout);
        cli_json_object_begin(&j, NULL);
        cli_json_string(&j, "model", o.model);
        cli_json_string(&j, "output", o.output);
        cli_json_int(&j, "ops", st.ops);
        cli_json_int(&j, "linear", st.linear);
        cli_json_int(&j, "linear_packed", st.linear_packed);
        cli_json_int(&j, "linear_ref", st.linear_ref);
        cli_json_int(&j, "weight_bytes", (int64_t)st.weight_bytes);
        cli_json_int(&j, "macs", st.macs);
        cli_json_int(&j, "onnx_bytes", in_bytes);
        cli_json_int(&j, "nnqi_bytes", out_bytes);
        cli_json_object_end(&j);
        cli_json_finish(&j);
    }
    nnq_iprog_free(p);
    nnq_graph_free(g);
    return CLI_EXIT_OK;
fail:
    rc = cli_fail(s);
    nnq_iprog_free(p);
    nnq_graph_free(g);
    return rc;
}
