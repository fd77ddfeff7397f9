#include "engine/cpu.h"

#include <stdlib.h>
#include <string.h>

bool nnq_cpu_has_avx2(void) {
    /* libgcc also checks that the OS saves the YMM state (XGETBV). */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool nnq_cpu_supports(nnq_isa isa) {
    switch (isa) {
    case NNQ_ISA_REF: return true;
    case NNQ_ISA_AVX2: return nnq_cpu_has_avx2();
    }
    return false;
}

nnq_status nnq_cpu_kernel_isa(nnq_isa *out) {
    const char *env = getenv("NNQ_KERNELS");
    if (!env || !env[0]) {
        *out = nnq_cpu_has_avx2() ? NNQ_ISA_AVX2 : NNQ_ISA_REF;
        return NNQ_OK;
    }
    if (strcmp(env, "ref") == 0) {
        *out = NNQ_ISA_REF;
        return NNQ_OK;
    }
    if (strcmp(env, "avx2") == 0) {
        if (!nnq_cpu_has_avx2())
            return nnq_fail(NNQ_ERR_UNSUPPORTED, "NNQ_KERNELS=avx2, but this CPU lacks AVX2/FMA");
        *out = NNQ_ISA_AVX2;
        return NNQ_OK;
    }
    return nnq_fail(NNQ_ERR_INVALID, "NNQ_KERNELS=%s: expected ref or avx2", env);
}

const char *nnq_isa_name(nnq_isa isa) {
    switch (isa) {
    case NNQ_ISA_REF: return "ref";
    case NNQ_ISA_AVX2: return "avx2";
    }
    return "unknown";
}
