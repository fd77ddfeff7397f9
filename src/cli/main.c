/* nnq: the command-line entry point. Dispatch through one table of
 * commands; each command parses its own options (args.c) and returns an
 * exit code: 0 success, 1 failure, 2 usage error. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int help_run(int argc, char **argv);
static void help_help(FILE *fp);

static const cli_command commands[] = {
    {"info", "show a model's inputs, outputs, ops, parameters and MACs", cmd_info_run,
     cmd_info_help},
    {"eval", "top-1 accuracy of a model (float, int or sim engine) on Fashion-MNIST or .npy",
     cmd_eval_run, cmd_eval_help},
    {"train", "train a built-in architecture on Fashion-MNIST, export ONNX", cmd_train_run,
     cmd_train_help},
    {"run", "run a model (float, int or sim engine) on a .npy input, write its first output",
     cmd_run_run, cmd_run_help},
    {"convert", "import, check and re-export an ONNX model (upgrades old opsets)",
     cmd_convert_run, cmd_convert_help},
    {"quantize", "post-training quantization of a float model to an ONNX QDQ model",
     cmd_quantize_run, cmd_quantize_help},
    {"qat", "quantization-aware training (STE, LSQ, LSQ+) to an ONNX QDQ model", cmd_qat_run,
     cmd_qat_help},
    {"analyze", "per-layer analysis of a quantized model as an HTML report",
     cmd_analyze_run, cmd_analyze_help},
    {"lower", "lower a quantized ONNX model to nnq's integer program (.nnqi)", cmd_lower_run,
     cmd_lower_help},
    {"bench", "latency, throughput, memory and model bytes on one engine", cmd_bench_run,
     cmd_bench_help},
    {"help", "show help for a command", help_run, help_help},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const cli_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void usage(FILE *fp) {
    fputs("usage: nnq COMMAND [ARGS...]\n"
          "       nnq help COMMAND | nnq COMMAND --help | nnq --version\n"
          "\n"
          "nnq quantizes neural networks for integer inference.\n"
          "\n"
          "commands:\n",
          fp);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\nExit status: 0 on success, 1 on failure, 2 on a usage error; a failure\n"
          "prints one line \"nnq: error: <reason>\" on stderr.\n",
          fp);
}

static void help_help(FILE *fp) {
    fputs("usage: nnq help [COMMAND]\n\nShow the usage of nnq or of one command.\n", fp);
}

static int help_run(int argc, char **argv) {
    if (argc < 2) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2) return cli_usage_error("help", "expected at most one COMMAND");
    const cli_command *c = find_command(argv[1]);
    if (!c) return cli_usage_error("help", "unknown command '%s'", argv[1]);
    c->help(stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(NULL, "no command given");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("nnq %s\n", NNQ_VERSION);
        return CLI_EXIT_OK;
    }
    if (name[0] == '-') return cli_usage_error(NULL, "unknown option '%s'", name);
    const cli_command *c = find_command(name);
    if (!c) return cli_usage_error(NULL, "unknown command '%s'", name);
    return c->run(argc - 1, argv + 1);
}
