/* Run-time CPU feature detection for the engine's kernels, and the
 * override used by tests and benchmarks:
 *
 *   NNQ_KERNELS=ref    scalar reference kernels only
 *   NNQ_KERNELS=avx2   AVX2 kernels (an error on a CPU without AVX2)
 *   NNQ_KERNELS=vnni   AVX-512 VNNI kernels where there are some, AVX2 for
 *                      the rest (an error on a CPU without AVX-512 VNNI)
 *   unset or empty     the best the CPU supports
 *
 * The variable is read at each operator's create, so a process can build
 * operators of both kinds side by side. */
#ifndef NNQ_ENGINE_CPU_H
#define NNQ_ENGINE_CPU_H

#include <stdbool.h>

#include "core/status.h"

/* Instruction sets with their own kernel files, in increasing order: each
 * includes the ones before it, so a kernel runs wherever its ISA is at most
 * the one allowed. */
typedef enum nnq_isa {
    NNQ_ISA_REF = 0, /* portable C, always built: the reference */
    NNQ_ISA_AVX2 = 1, /* AVX2 (+FMA), files *_avx2*.c */
    NNQ_ISA_VNNI = 2  /* AVX-512 F/BW/VL + VNNI (vpdpbusd), files *_vnni*.c */
} nnq_isa;

/* AVX2 and FMA supported by the CPU and enabled by the OS. */
bool nnq_cpu_has_avx2(void);
/* AVX2 and AVX-512 F, BW, VL and VNNI, with the OS saving the ZMM state. */
bool nnq_cpu_has_vnni(void);
bool nnq_cpu_supports(nnq_isa isa);
/* The richest ISA kernels may use now: the CPU's best, or NNQ_KERNELS. */
nnq_status nnq_cpu_kernel_isa(nnq_isa *out);
const char *nnq_isa_name(nnq_isa isa);

#endif
