/* Learning-rate schedules, evaluated per optimizer step (0-based).
 *
 * Linear warm-up over the first W steps: lr(s) = base * (s + 1) / W, so
 * the first step already moves and step W-1 reaches base. After it, with
 * s' = s - W and T = total - W:
 *   constant  base
 *   cosine    base * (1 + cos(pi * s' / T)) / 2   (reaches 0 only after
 *             the last step, as PyTorch's CosineAnnealingLR with T_max = T)
 *   step      base * gamma^floor(s' / step_size)  (StepLR) */
#ifndef NNQ_TRAIN_SCHEDULE_H
#define NNQ_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef enum nnq_sched_kind {
    NNQ_SCHED_CONSTANT,
    NNQ_SCHED_COSINE,
    NNQ_SCHED_STEP
} nnq_sched_kind;

typedef struct nnq_schedule {
    nnq_sched_kind kind;
    float base_lr;
    int64_t total_steps;
    int64_t warmup_steps;
    int64_t step_size; /* STEP: steps between decays (>= 1) */
    float gamma;       /* STEP: decay factor */
} nnq_schedule;

float nnq_schedule_lr(const nnq_schedule *s, int64_t step);
const char *nnq_schedule_name(nnq_sched_kind kind);

#endif
