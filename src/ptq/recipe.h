/* PTQ as one call: the passes of ptq.h in the white paper's order
 * (../shared/QUANTIZATION.md §8), each switched on by an option, and the
 * named recipes that set those options:
 *
 *   standard   BN fold → CLE + bias absorption → quantizers → MSE weight
 *              ranges → AdaRound → activation ranges (MSE, cross-entropy on
 *              the logits) from calibration data;
 *   data-free  BN fold → CLE + bias absorption → quantizers → MSE weight
 *              ranges → analytical bias correction → BN-based activation
 *              ranges; reads no data at all (needs BN statistics);
 *   none       BN fold → quantizers → the ranges and passes asked for.
 *
 * BatchNorm nodes are always folded first (an integer runtime has no BN). */
#ifndef NNQ_PTQ_RECIPE_H
#define NNQ_PTQ_RECIPE_H

#include <stdbool.h>

#include "ptq/ptq.h"

typedef enum nnq_recipe { NNQ_RECIPE_NONE, NNQ_RECIPE_STANDARD, NNQ_RECIPE_DATA_FREE } nnq_recipe;
typedef enum nnq_bias_correction { NNQ_BC_NONE, NNQ_BC_EMPIRICAL, NNQ_BC_ANALYTICAL } nnq_bias_correction;

/* What --wrange mse minimises per weight range: the expected error of the
 * layer's output, from its input's moments on calibration data
 * (wrange_output.h; without data, as in the data-free recipe, plain), or
 * the weights' own squared error. */
typedef enum nnq_wmse_mode { NNQ_WMSE_OUTPUT, NNQ_WMSE_PLAIN } nnq_wmse_mode;
const char *nnq_wmse_mode_name(nnq_wmse_mode m);
bool nnq_wmse_mode_parse(const char *s, nnq_wmse_mode *out);

typedef struct nnq_ptq_options {
    nnq_qsim_options qsim;
    nnq_range_method wrange;     /* minmax or mse */
    nnq_wmse_mode wmse;          /* mse: criterion (default output) */
    nnq_calib_options calib;     /* activation ranges from data (method, logits, n, batch) */
    bool arange_bn;              /* activation ranges from BN statistics instead */
    float in_lo, in_hi;          /* data-free range of the graph input */
    bool cle, bias_absorb, adaround;
    nnq_bias_correction bias_correct;
    nnq_cle_options cle_opt;
    nnq_adaround_options ada;
    int threads;
} nnq_ptq_options;

void nnq_ptq_options_default(nnq_ptq_options *o);
/* Switch on what recipe r consists of (on top of o's other settings). */
void nnq_ptq_apply_recipe(nnq_ptq_options *o, nnq_recipe r);
const char *nnq_recipe_name(nnq_recipe r);
bool nnq_recipe_parse(const char *s, nnq_recipe *out);

#define NNQ_PTQ_MAX_STEPS 16
typedef struct nnq_ptq_report {
    int n_steps;
    struct {
        const char *name;
        double seconds;
        double peak_rss_mb; /* the process's peak resident memory when the step ended */
    } steps[NNQ_PTQ_MAX_STEPS];
    int bn_folded, bn_unfolded, cle_pairs, relu6_converted, bias_absorbed;
    int bias_corrected, bias_skipped;
    bool has_bn_stats;
    /* wrange mse: the criterion used (output needs calibration data) and
     * the layers it set; layers it could not handle got plain MSE. */
    bool wmse_used;
    nnq_wmse_mode wmse;
    int wmse_output_layers, wmse_plain_layers;
} nnq_ptq_report;

/* Run the pipeline on a copy of `model`. `calib` may be NULL only when no
 * step needs data (data-free). On success *float_out is the float graph
 * after the float-graph passes (BN folded, equalized: the reference the
 * simulation is compared with) and *sim_out the calibrated simulation. */
nnq_status nnq_ptq_run(const nnq_graph *model, const nnq_dataset *calib,
                       const nnq_ptq_options *o, const nnq_ptq_log *log, nnq_graph **float_out,
                       nnq_qsim **sim_out, nnq_ptq_report *report);

#endif
