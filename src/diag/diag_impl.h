/* Internal to src/diag: the pieces nnq_diag_run puts together. */
#ifndef NNQ_DIAG_DIAG_IMPL_H
#define NNQ_DIAG_DIAG_IMPL_H

#include "diag/diag.h"
#include "ops/executor.h"

/* Monotonic seconds. */
double nnq_diag_now(void);
/* Record a finished step (name, seconds since t0, the peak RSS now). */
void nnq_diag_step_done(nnq_diag *d, const char *name, double t0);

/* Run g on the first n images of d (batches of 64). top1: percent correct
 * when d has labels (else NaN). ref: logits to compare with ([n, classes]),
 * giving *sqnr_db (NaN when ref is NULL). logits_out: if non-NULL, a
 * malloc'd copy of the logits. */
nnq_status nnq_diag_eval(const nnq_graph *g, const nnq_dataset *d, int64_t n, int threads,
                         const float *ref, double *top1, double *sqnr_db, float **logits_out);

/* 10 log10(signal / noise), +inf for no noise, NaN for no signal. */
double nnq_diag_sqnr_db(double signal, double noise);

/* Per-layer table: kinds, sizes, bit-widths, weight and activation SQNR. */
nnq_status nnq_diag_layers(nnq_diag *d, const nnq_qsim *s, const nnq_graph *float_graph,
                           const nnq_dataset *images, int64_t n_images, int threads);
/* Sensitivity: each layer's weights alone, then its output alone. */
nnq_status nnq_diag_sensitivity(nnq_diag *d, nnq_qsim *s, const nnq_dataset *eval, int64_t n,
                                const float *float_logits, int threads, const nnq_ptq_log *log);
/* Per-channel weight ranges after BN folding, before and after CLE. */
nnq_status nnq_diag_cle_ranges(nnq_diag *d, const nnq_graph *model, const nnq_cle_options *cle);
/* Histograms of the logits and of the outputs of the most sensitive
 * layers, with each method's range. */
nnq_status nnq_diag_histograms(nnq_diag *d, const nnq_qsim *s, const nnq_graph *float_graph,
                               const nnq_dataset *images, int64_t n_images, int n_hist,
                               int threads);

#endif
