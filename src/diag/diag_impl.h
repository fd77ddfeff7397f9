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

/* For every value of s->g, the value of `fg` it stands for (the same
 * name, but a quantized graph output's float value is the one named like
 * the output), or -1; malloc'd, [s->g->n_values]. */
int *nnq_diag_value_map(const nnq_qsim *s, const nnq_graph *fg);

/* The integer engine beside the SQNR pass (diag_engine.c): the simulation
 * exported as QDQ, serialized and loaded back as `nnq quantize` writes and
 * `nnq eval --engine int` reads it, lowered, on its INT and SIM executors;
 * each layer's output read by name. Open fails only for lack of memory: a
 * model the engine cannot take leaves *out NULL and says why in
 * d->engine_note. */
typedef struct nnq_diag_engine nnq_diag_engine;
/* The QDQ model the simulation exports, serialized (the caller frees buf). */
nnq_status nnq_diag_export_qdq(const nnq_qsim *s, unsigned char **buf, size_t *len);

nnq_status nnq_diag_engine_open(nnq_diag *d, const nnq_qsim *s, int threads, nnq_diag_engine **out);
/* One batch x: both executors, compared with the float graph's values (ef,
 * through fmap) and the simulation's (es), layer by layer. */
nnq_status nnq_diag_engine_batch(nnq_diag_engine *en, const nnq_tensor *x, const nnq_exec *ef,
                                 const int *fmap, const nnq_exec *es);
/* Write the per-layer results into d. */
void nnq_diag_engine_finish(const nnq_diag_engine *en, nnq_diag *d);
void nnq_diag_engine_free(nnq_diag_engine *en);

/* Per-layer table: kinds, sizes, bit-widths, weight and activation SQNR
 * (and the engine's, when engine is true). fmap: nnq_diag_value_map. */
nnq_status nnq_diag_layers(nnq_diag *d, const nnq_qsim *s, const nnq_graph *float_graph,
                           const int *fmap, const nnq_dataset *images, int64_t n_images,
                           bool engine, int threads);
/* Sensitivity: each layer's weights alone, then its output alone. */
nnq_status nnq_diag_sensitivity(nnq_diag *d, nnq_qsim *s, const nnq_dataset *eval, int64_t n,
                                const float *float_logits, int threads, const nnq_ptq_log *log);
/* Per-channel weight ranges after BN folding, before and after CLE. */
nnq_status nnq_diag_cle_ranges(nnq_diag *d, const nnq_graph *model, const nnq_cle_options *cle);
/* Histograms of the logits and of the outputs of the most sensitive
 * layers, with each method's range. */
nnq_status nnq_diag_histograms(nnq_diag *d, const nnq_qsim *s, const nnq_graph *float_graph,
                               const int *fmap, const nnq_dataset *images, int64_t n_images,
                               int n_hist, int threads);

#endif
