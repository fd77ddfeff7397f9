#include "train/schedule.h"

#include <math.h>

#define PI 3.14159265358979323846

float nnq_schedule_lr(const nnq_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps)
        return (float)((double)s->base_lr * (double)(step + 1) / (double)s->warmup_steps);
    int64_t t = step - s->warmup_steps, span = s->total_steps - s->warmup_steps;
    switch (s->kind) {
    case NNQ_SCHED_CONSTANT: break;
    case NNQ_SCHED_COSINE:
        if (span <= 0) return s->base_lr;
        if (t > span) t = span;
        return (float)((double)s->base_lr * 0.5 * (1.0 + cos(PI * (double)t / (double)span)));
    case NNQ_SCHED_STEP: {
        int64_t k = s->step_size > 0 ? t / s->step_size : 0;
        return (float)((double)s->base_lr * pow((double)s->gamma, (double)k));
    }
    }
    return s->base_lr;
}

const char *nnq_schedule_name(nnq_sched_kind kind) {
    switch (kind) {
    case NNQ_SCHED_CONSTANT: return "constant";
    case NNQ_SCHED_COSINE: return "cosine";
    case NNQ_SCHED_STEP: return "step";
    }
    return "?";
}
