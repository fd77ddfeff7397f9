/* The trainer's random numbers: xoshiro256** (Blackman and Vigna), seeded
 * through splitmix64. Pure integer arithmetic, so the same seed gives the
 * same shuffles and augmentations on every machine; the four state words
 * go into checkpoints so a resumed run continues the same sequence. */
#ifndef NNQ_TRAIN_RNG_H
#define NNQ_TRAIN_RNG_H

#include <stdint.h>

typedef struct nnq_rng {
    uint64_t s[4];
} nnq_rng;

void nnq_rng_seed(nnq_rng *r, uint64_t seed);
uint64_t nnq_rng_next(nnq_rng *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t nnq_rng_below(nnq_rng *r, uint64_t n);
/* Fisher-Yates shuffle of perm[0..n). */
void nnq_rng_shuffle(nnq_rng *r, int64_t *perm, int64_t n);

#endif
