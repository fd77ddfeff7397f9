/* BatchNorm statistics kept across folding: per value name, the folded
 * BN's gamma and beta per channel. */
#include <stdlib.h>
#include <string.h>

#include "ptq/ptq.h"

static void entry_release(nnq_bn_entry *e) {
    free(e->value);
    free(e->gamma);
    free(e->beta);
    memset(e, 0, sizeof *e);
}

void nnq_bn_stats_free(nnq_bn_stats *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) entry_release(&st->e[i]);
    free(st->e);
    memset(st, 0, sizeof *st);
}

nnq_bn_entry *nnq_bn_stats_find(const nnq_bn_stats *st, const char *value) {
    if (!st) return NULL;
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->e[i].value, value) == 0) return &st->e[i];
    return NULL;
}

/* An existing entry for the same value is replaced: the latest fold wins. */
nnq_status nnq_bn_stats_add(nnq_bn_stats *st, const char *value, int channels,
                            const float *gamma, const float *beta) {
    if (channels <= 0)
        return nnq_fail(NNQ_ERR_INVALID, "BN statistics for '%s': %d channels", value, channels);
    nnq_bn_entry e = {0};
    size_t len = strlen(value);
    e.value = malloc(len + 1);
    e.gamma = malloc(sizeof(float) * (size_t)channels);
    e.beta = malloc(sizeof(float) * (size_t)channels);
    if (!e.value || !e.gamma || !e.beta) goto nomem;
    memcpy(e.value, value, len + 1);
    memcpy(e.gamma, gamma, sizeof(float) * (size_t)channels);
    memcpy(e.beta, beta, sizeof(float) * (size_t)channels);
    e.channels = channels;
    nnq_bn_entry *old = nnq_bn_stats_find(st, value);
    if (old) {
        entry_release(old);
        *old = e;
        return NNQ_OK;
    }
    if (st->n == st->cap) {
        int cap = st->cap ? 2 * st->cap : 16;
        nnq_bn_entry *p = realloc(st->e, sizeof *p * (size_t)cap);
        if (!p) goto nomem;
        st->e = p;
        st->cap = cap;
    }
    st->e[st->n++] = e;
    return NNQ_OK;
nomem:
    entry_release(&e);
    return nnq_fail(NNQ_ERR_NOMEM, "out of memory storing BN statistics for '%s'", value);
}
