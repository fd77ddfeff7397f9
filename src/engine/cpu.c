#include "engine/cpu.h"

#include <stdlib.h>
#include <string.h>

bool nnq_cpu_has_avx2(void) {
    /* libgcc also checks that the OS saves the YMM state (XGETBV). */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool nnq_cpu_has_vnni(void) {
    /* libgcc reports the AVX-512 features only when XGETBV shows that the
     * OS saves the opmask and ZMM state. */
    return nnq_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}

bool nnq_cpu_supports(nnq_isa isa) {
    switch (isa) {
    case NNQ_ISA_REF: return true;
    case NNQ_ISA_AVX2: return nnq_cpu_has_avx2();
    case NNQ_ISA_VNNI: return nnq_cpu_has_vnni();
    }
    return false;
}

nnq_status nnq_cpu_kernel_isa(nnq_isa *out) {
    const char *env = getenv("NNQ_KERNELS");
    if (!env || !env[0]) {
        *out = nnq_cpu_has_vnni()   ? NNQ_ISA_VNNI
               : nnq_cpu_has_avx2() ? NNQ_ISA_AVX2
                                    : NNQ_ISA_REF;
        return NNQ_OK;
    }
    static const nnq_isa named[] = {NNQ_ISA_REF, NNQ_ISA_AVX2, NNQ_ISA_VNNI};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strcmp(env, nnq_isa_name(named[i])) != 0) continue;
        if (!nnq_cpu_supports(named[i]))
            return nnq_fail(NNQ_ERR_UNSUPPORTED, "NNQ_KERNELS=%s, but this CPU lacks %s", env,
                            named[i] == NNQ_ISA_AVX2 ? "AVX2/FMA"
                                                     : "AVX-512 F/BW/VL/VNNI");
        *out = named[i];
        return NNQ_OK;
    }
    return nnq_fail(NNQ_ERR_INVALID, "NNQ_KERNELS=%s: expected ref, avx2 or vnni", env);
}

const char *nnq_isa_name(nnq_isa isa) {
    switch (isa) {
    case NNQ_ISA_REF: return "ref";
    case NNQ_ISA_AVX2: return "avx2";
    case NNQ_ISA_VNNI: return "vnni";
    }
    return "unknown";
}
