/* Finding a Python interpreter with the onnx package, for tests that ask
 * ONNX's own checker about models nnq wrote. The python3 first on PATH may
 * lack onnx (e.g. a pyenv shim), so Debian's /usr/bin/python3 is tried too. */
#ifndef NNQ_TESTS_PYTHON_ONNX_H
#define NNQ_TESTS_PYTHON_ONNX_H

#include <stdio.h>
#include <stdlib.h>

/* The interpreter's command, or NULL when none can import onnx. */
static inline const char *python_with_onnx(void) {
    static const char *candidates[] = {"python3", "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import onnx' >/dev/null 2>&1", candidates[i]);
        if (system(cmd) == 0) return candidates[i];
    }
    return NULL;
}

#endif
