/* nnq info: what a model is (inputs, outputs, ops) and what it costs
 * (parameters, MACs per image, bytes on disk). */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/json_out.h"
#include "cli/model_load.h"
#include "cli/model_stats.h"

void cmd_info_help(FILE *fp) {
    fputs("usage: nnq info MODEL.onnx [--json]\n"
          "\n"
          "Show a model's name, producer and opset, its inputs and outputs (dtype and\n"
          "shape; symbolic dims by name), node counts per op type, parameter count,\n"
          "multiply-accumulates per image (batch 1) and file size.\n"
          "\n"
          "options:\n"
          "  --json      print one JSON object on stdout instead of the table\n"
          "  -h, --help  show this help\n",
          fp);
}

/* "1,234,567" */
static const char *grouped(int64_t v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0 && o + 1 < cap) buf[o++] = '-';
    for (int i = 0; i < n && o + 1 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 1 < cap) buf[o++] = ',';
        if (o + 1 < cap) buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Names of inputs and outputs padded to one column width. */
static int io_name_width(const nnq_graph *g) {
    size_t w = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        size_t l = strlen(g->values[g->inputs[i]].name);
        if (l > w) w = l;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        size_t l = strlen(g->values[g->outputs[i]].name);
        if (l > w) w = l;
    }
    return w > 40 ? 40 : (int)w;
}

static void print_values(const nnq_graph *g, const char *title, int n, const int *idx) {
    char shape[512];
    int width = io_name_width(g);
    for (int i = 0; i < n; i++) {
        const nnq_value *v = &g->values[idx[i]];
        printf("%-10s%-*s  %-8s %s\n", i == 0 ? title : "", width, v->name,
               nnq_dtype_name(v->t.dtype), cli_value_shape_str(v, shape, sizeof shape));
    }
    if (n == 0) printf("%-10s(none)\n", title);
}

static void print_table(const char *path, long long bytes, const nnq_graph *g,
                        const nnq_model_stats *st) {
    char num[64];
    printf("%-10s%s\n", "model", path);
    printf("%-10s%s\n", "graph", g->name && g->name[0] ? g->name : "(unnamed)");
    const char *pn = g->producer_name && g->producer_name[0] ? g->producer_name : "?";
    const char *pv = g->producer_version ? g->producer_version : "";
    printf("%-10s%s%s%s\n", "producer", pn, pv[0] ? " " : "", pv);
    printf("%-10sONNX IR %lld, opset %lld\n", "format", (long long)g->ir_version,
           (long long)nnq_graph_opset(g));
    printf("%-10s%s bytes\n", "size", grouped(bytes, num, sizeof num));
    print_values(g, "inputs", g->n_inputs, g->inputs);
    print_values(g, "outputs", g->n_outputs, g->outputs);
    printf("%-10s%d:", "nodes", st->n_nodes);
    for (int i = 0; i < st->n_op_types; i++)
        printf("%s %s %d", i ? "," : "", st->ops[i].op_type, st->ops[i].count);
    printf("\n%-10s%s\n", "params", grouped(st->params, num, sizeof num));
    printf("%-10s%s per image (%.2f M)\n", "MACs", grouped(st->macs, num, sizeof num),
           (double)st->macs / 1e6);
}

static void json_values(cli_json *j, const nnq_graph *g, const char *key, int n,
                        const int *idx) {
    cli_json_array_begin(j, key);
    for (int i = 0; i < n; i++) {
        const nnq_value *v = &g->values[idx[i]];
        cli_json_object_begin(j, NULL);
        cli_json_string(j, "name", v->name);
        cli_json_string(j, "dtype", nnq_dtype_name(v->t.dtype));
        if (v->t.rank < 0) {
            cli_json_string(j, "shape", NULL);
        } else {
            cli_json_array_begin(j, "shape");
            for (int k = 0; k < v->t.rank; k++) {
                const char *sym = v->dim_params ? v->dim_params[k] : NULL;
                if (sym && sym[0]) cli_json_string(j, NULL, sym);
                else if (v->t.dims[k] >= 0) cli_json_int(j, NULL, v->t.dims[k]);
                else cli_json_string(j, NULL, NULL);
            }
            cli_json_array_end(j);
        }
        cli_json_object_end(j);
    }
    cli_json_array_end(j);
}

static void print_json(const char *path, long long bytes, const nnq_graph *g,
                       const nnq_model_stats *st) {
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_object_begin(&j, NULL);
    cli_json_string(&j, "model", path);
    cli_json_string(&j, "graph", g->name);
    cli_json_string(&j, "producer", g->producer_name);
    cli_json_string(&j, "producer_version", g->producer_version);
    cli_json_int(&j, "ir_version", g->ir_version);
    cli_json_int(&j, "opset", nnq_graph_opset(g));
    cli_json_int(&j, "bytes", bytes);
    json_values(&j, g, "inputs", g->n_inputs, g->inputs);
    json_values(&j, g, "outputs", g->n_outputs, g->outputs);
    cli_json_int(&j, "nodes", st->n_nodes);
    cli_json_object_begin(&j, "ops");
    for (int i = 0; i < st->n_op_types; i++) cli_json_int(&j, st->ops[i].op_type, st->ops[i].count);
    cli_json_object_end(&j);
    cli_json_int(&j, "params", st->params);
    cli_json_int(&j, "macs", st->macs);
    cli_json_object_end(&j);
    cli_json_finish(&j);
}

int cmd_info_run(int argc, char **argv) {
    bool json = false;
    const cli_opt opts[] = {{"json", CLI_OPT_FLAG, &json, 0, 0}};
    const char *pos[1];
    int n_pos;
    switch (cli_parse_args("info", argc, argv, opts, 1, pos, 1, &n_pos)) {
    case CLI_PARSE_HELP: cmd_info_help(stdout); return CLI_EXIT_OK;
    case CLI_PARSE_ERROR: return CLI_EXIT_USAGE;
    case CLI_PARSE_OK: break;
    }
    if (n_pos != 1) return cli_usage_error("info", "expected one MODEL.onnx argument");
    const char *path = pos[0];

    nnq_graph *g = NULL;
    nnq_model_stats st = {0};
    int rc = CLI_EXIT_OK;
    nnq_status s = cli_load_model(path, &g);
    if (s == NNQ_OK) s = nnq_model_stats_compute(g, &st);
    if (s != NNQ_OK) {
        rc = cli_fail(s);
        goto done;
    }
    struct stat sb;
    long long bytes = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    if (json) print_json(path, bytes, g, &st);
    else print_table(path, bytes, g, &st);
done:
    nnq_model_stats_free(&st);
    nnq_graph_free(g);
    return rc;
}
