/* libFuzzer target: .npy bytes: the file and memory readers
 * (fuzz_npy in fuzz_entries.c). A broken property aborts, so libFuzzer
 * keeps the input as a crash. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_entries.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nnq_status s;
    const char *bug = fuzz_npy(data, size, &s);
    if (bug) {
        fprintf(stderr, "fuzz_npy: %s (status: %s; message: %s)\n", bug, nnq_status_name(s),
                nnq_last_error());
        abort();
    }
    return 0;
}
