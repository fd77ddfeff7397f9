/* libFuzzer target: a packed integer program (.nnqi): the reader, then INT and SIM runs on zero inputs
 * (fuzz_nnqi in fuzz_entries.c). A broken property aborts, so libFuzzer
 * keeps the input as a crash. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_entries.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nnq_status s;
    const char *bug = fuzz_nnqi(data, size, &s);
    if (bug) {
        fprintf(stderr, "fuzz_nnqi: %s (status: %s; message: %s)\n", bug, nnq_status_name(s),
                nnq_last_error());
        abort();
    }
    return 0;
}
