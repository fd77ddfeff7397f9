/* Diagnostics: which layer loses accuracy, and why (issue 7).
 *
 * nnq_diag_run quantizes a model with the PTQ options given and measures,
 * as plain data (nnq_diag), everything `nnq analyze` shows:
 *   - per-layer sensitivity: only that layer's weights (then only its
 *     output activations) quantized, the rest float; the top-1 drop, or the
 *     SQNR of the logits when the evaluation images carry no labels;
 *   - per-layer SQNR of weights and of each layer's output, float graph vs
 *     the full simulation and vs the integer engine (the QDQ model `nnq
 *     quantize` writes, lowered: diag_engine.c), with the engine's own
 *     float emulation and the simulation compared element by element;
 *   - per-channel weight ranges of each layer before and after cross-layer
 *     equalization;
 *   - activation histograms with the range each method would choose;
 *   - accuracy against bit-width (8, 6, 4, 3, 2) with the same options;
 *   - time and peak memory of every step.
 * diag_report.c turns the result into an nnq_report (HTML + JSON). */
#ifndef NNQ_DIAG_DIAG_H
#define NNQ_DIAG_DIAG_H

#include <stdbool.h>
#include <stdint.h>

#include "data/dataset.h"
#include "ptq/recipe.h"
#include "report/report.h"

typedef struct nnq_diag_options {
    nnq_ptq_options ptq;      /* the configuration analysed */
    const char *recipe_name;  /* for the page ("none", "standard", ...) */
    const char *model_name;   /* shown in the title */
    int64_t model_bytes;      /* on-disk size of the float model (0: unknown) */
    bool sensitivity;         /* per-layer sensitivity (2 evaluations per layer) */
    bool bit_sweep;           /* accuracy at 8/6/4/3/2 bits (10 PTQ runs) */
    bool histograms, cle_ranges, sqnr;
    int n_histograms;         /* activation histograms shown (default 4) */
    int n_range_charts;       /* layers whose per-channel ranges are drawn (default 4) */
    int64_t sqnr_images;      /* images for the SQNR pass (default 256) */
    bool engine;              /* also lower the model to the integer engine and read each
                                 layer's output there (default true) */
    const char *source;       /* what made the simulation: "ptq" (default) or "qat";
                                 prefixes its steps in the time table */
    int threads;
} nnq_diag_options;

void nnq_diag_options_default(nnq_diag_options *o);

typedef struct nnq_diag_layer {
    char *name;
    char kind[24];            /* "conv", "depthwise", "grouped conv", "gemm", "matmul" */
    int64_t out_ch, params;
    int wbits, abits;         /* after first/last and per-layer overrides (0: float) */
    double w_sqnr_db;         /* float weights vs quantized */
    double a_sqnr_db;         /* layer output: float graph vs simulation */
    double a_sqnr_int_db;     /* ... vs the integer engine (NaN: not measured) */
    char engine[8];           /* how the engine runs the layer: "int", "float" (a
                                 fallback named in the lowering's notes), "" (not measured) */
    double int_sim_max;       /* max |INT - SIM| of the output: the engine's kernels vs its
                                 float emulation (0 unless something is broken) */
    double int_qsim_steps;    /* max |INT - simulation| of the output, in steps of its grid */
    double int_qsim_differ;   /* percent of output elements where INT != simulation */
    double drop_w, drop_a;    /* sensitivity (NaN: not measured) */
} nnq_diag_layer;

typedef struct nnq_diag_ranges {
    char *name;               /* layer */
    int channels;
    float *lo_before, *hi_before, *lo_after, *hi_after; /* [channels] */
    double spread_before, spread_after; /* widest / narrowest channel range (max |w|) */
} nnq_diag_ranges;

#define NNQ_DIAG_METHODS 4
typedef struct nnq_diag_hist {
    char *tensor;             /* activation (value) name */
    char *layer;              /* producing layer, or "" */
    int n_bins;
    double *edges, *counts;   /* [n_bins + 1], [n_bins] */
    int n_methods;
    const char *method[NNQ_DIAG_METHODS];
    double lo[NNQ_DIAG_METHODS], hi[NNQ_DIAG_METHODS];
    double chosen_lo, chosen_hi; /* the range the analysed simulation uses */
} nnq_diag_hist;

#define NNQ_DIAG_BITS 5
typedef struct nnq_diag_step {
    char name[32];
    double seconds, peak_rss_mb;
} nnq_diag_step;

#define NNQ_DIAG_MAX_STEPS 32
typedef struct nnq_diag {
    bool labelled;            /* top-1 available (else logits SQNR in dB) */
    int64_t n_eval, n_calib;
    double float_top1, quant_top1; /* percent; NaN without labels */
    double logits_sqnr_db;    /* simulation vs float over the evaluation images */
    int64_t float_bytes, qdq_bytes;
    int n_layers;
    nnq_diag_layer *layers;
    int n_ranges;
    nnq_diag_ranges *ranges;
    int n_hist;
    nnq_diag_hist *hist;
    int bits[NNQ_DIAG_BITS];
    double top1_wbits[NNQ_DIAG_BITS];  /* W b, activations as configured */
    double top1_wabits[NNQ_DIAG_BITS]; /* W b, A b */
    bool has_bits;
    int n_steps;
    nnq_diag_step steps[NNQ_DIAG_MAX_STEPS];
    int cle_pairs;
    bool has_engine;          /* the engine columns were measured */
    int engine_float_nodes;   /* nodes the lowering left in float */
    char engine_note[512];    /* why the engine was not measured, or "" */
} nnq_diag;

/* Analyse `model` (not modified). calib: calibration images (may be NULL
 * for a data-free configuration; sensitivity, SQNR and histograms then use
 * `eval`); eval: evaluation images (labels optional). */
nnq_status nnq_diag_run(const nnq_graph *model, const nnq_dataset *calib, const nnq_dataset *eval,
                        const nnq_diag_options *o, const nnq_ptq_log *log, nnq_diag *out);
void nnq_diag_free(nnq_diag *d);

/* The same measurements on a result already at hand (`nnq quantize
 * --report`, `nnq qat --report`): s the simulation, fg the float graph it
 * is compared with (as nnq_ptq_run returns them, or any float graph whose
 * values carry the same names: values are matched by name), r the PTQ
 * report (may be NULL). s's quantizers are toggled during sensitivity and
 * restored. */
nnq_status nnq_diag_collect(const nnq_graph *model, const nnq_graph *fg, nnq_qsim *s,
                            const nnq_ptq_report *r, const nnq_dataset *calib,
                            const nnq_dataset *eval, const nnq_diag_options *o,
                            const nnq_ptq_log *log, nnq_diag *d);

/* A float graph whose values match a simulation's by name, for a
 * simulation not made by nnq_ptq_run (QAT): `model` cloned, prepared, its
 * BatchNorms folded (as the simulation's were). */
nnq_status nnq_diag_float_reference(const nnq_graph *model, nnq_graph **out);

/* The report of a result: summary (float vs quantized, model bytes, the
 * three most sensitive layers with what to try), then one section per
 * measurement present. */
nnq_status nnq_diag_report(const nnq_diag *d, const nnq_diag_options *o, nnq_report **out);

#endif
