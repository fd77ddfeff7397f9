/* A diagnostics result as a report: the summary a person reads first,
 * then one section per measurement (docs/report.md has the page layout). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag.h"

#define MAX_BARS 20

static double worst_drop(const nnq_diag_layer *l) {
    const double a = isnan(l->drop_w) ? -INFINITY : l->drop_w, b = isnan(l->drop_a) ? -INFINITY : l->drop_a;
    return a > b ? a : b;
}

/* How much a layer costs, larger is worse: the top-1 drop, or (unlabelled)
 * minus the logits SQNR; ties (e.g. no drop at all on a small evaluation
 * set) are broken by the layer's own SQNR, lower first. */
static double rank_key(const nnq_diag *d, const nnq_diag_layer *l) {
    const double m = d->labelled ? worst_drop(l) : -fmin(l->drop_w, l->drop_a);
    const double own = fmin(isnan(l->w_sqnr_db) ? INFINITY : l->w_sqnr_db,
                            isnan(l->a_sqnr_db) ? INFINITY : l->a_sqnr_db);
    return (isnan(m) || isinf(m) ? 0 : m) * 1e6 - (isinf(own) ? 1e5 : own);
}

/* Layer indices ordered most sensitive first. */
static int *rank_layers(const nnq_diag *d) {
    int *order = malloc(sizeof(int) * (size_t)(d->n_layers ? d->n_layers : 1));
    if (!order) return NULL;
    for (int i = 0; i < d->n_layers; i++) order[i] = i;
    for (int i = 1; i < d->n_layers; i++) { /* insertion sort: stable, small n */
        const int v = order[i];
        const double key = rank_key(d, &d->layers[v]);
        int j = i;
        while (j > 0 && rank_key(d, &d->layers[order[j - 1]]) < key) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    return order;
}

static const nnq_diag_ranges *find_ranges(const nnq_diag *d, const char *layer) {
    for (int i = 0; i < d->n_ranges; i++)
        if (strcmp(d->ranges[i].name, layer) == 0) return &d->ranges[i];
    return NULL;
}

/* What to try for a sensitive layer, from what hurts and the setup. */
static void advice(const nnq_diag *d, const nnq_diag_options *o, const nnq_diag_layer *l, char *buf,
                   size_t cap) {
    const bool weights = d->labelled ? !(l->drop_a > l->drop_w) : !(l->drop_a < l->drop_w);
    const nnq_diag_ranges *r = find_ranges(d, l->name);
    if (o->source && strcmp(o->source, "qat") == 0) { /* what `nnq qat` can change */
        if (weights && !o->ptq.qsim.weights.per_channel)
            snprintf(buf, cap, "weights: per-channel scales (--per-channel), or more epochs");
        else
            snprintf(buf, cap, "%s: more epochs or distillation (--distill), or more bits for "
                               "the whole model (--%s)", weights ? "weights" : "output",
                     weights ? "wbits" : "abits");
        return;
    }
    if (weights) {
        if (!o->ptq.qsim.weights.per_channel && r && r->spread_before > 8)
            snprintf(buf, cap, "weights: per-channel scales (--per-channel) or cross-layer "
                               "equalization (--cle); its channel ranges differ %.0fx", r->spread_before);
        else if (!o->ptq.qsim.weights.per_channel)
            snprintf(buf, cap, "weights: per-channel scales (--per-channel)");
        else if (l->wbits > 0 && l->wbits < 8)
            snprintf(buf, cap, "weights: AdaRound (--adaround) or 8 bits for this layer "
                               "(--layer-bits %s=8)", l->name);
        else
            snprintf(buf, cap, "weights: AdaRound (--adaround), or leave it in float "
                               "(--float-layers %s)", l->name);
    } else {
        if (l->abits > 0 && l->abits < 8)
            snprintf(buf, cap, "output: 8 bits for this layer (--layer-bits %s=%d:8)", l->name,
                     l->wbits > 0 ? l->wbits : 8);
        else
            snprintf(buf, cap, "output: another clipping range (--arange mse or percentile), or "
                               "leave it in float (--float-layers %s)", l->name);
    }
}

static nnq_status summary(nnq_report *rp, const nnq_diag *d, const nnq_diag_options *o, const int *order) {
    if (d->labelled) {
        NNQ_TRY(nnq_report_add_headline(rp, "float top-1", d->float_top1, NNQ_FMT_FIXED(2), "%", NULL));
        char note[96];
        snprintf(note, sizeof note, "%+.2f points from float", d->quant_top1 - d->float_top1);
        NNQ_TRY(nnq_report_add_headline(rp, "quantized top-1", d->quant_top1, NNQ_FMT_FIXED(2), "%", note));
    }
    NNQ_TRY(nnq_report_add_headline(rp, "logits SQNR", d->logits_sqnr_db, NNQ_FMT_FIXED(1), "dB",
                                    "quantized vs float logits"));
    if (d->float_bytes > 0)
        NNQ_TRY(nnq_report_add_headline(rp, "float model", (double)d->float_bytes / 1e6, NNQ_FMT_SIG(3),
                                        "MB", NULL));
    char note[96];
    snprintf(note, sizeof note, "QDQ ONNX%s", d->float_bytes > 0 ? "" : "");
    if (d->float_bytes > 0)
        snprintf(note, sizeof note, "QDQ ONNX, %.2fx the float model", (double)d->qdq_bytes / (double)d->float_bytes);
    NNQ_TRY(nnq_report_add_headline(rp, "quantized model", (double)d->qdq_bytes / 1e6, NNQ_FMT_SIG(3), "MB", note));
    for (int k = 0; k < 3 && k < d->n_layers; k++) {
        const nnq_diag_layer *l = &d->layers[order[k]];
        if (isnan(l->drop_w) && isnan(l->drop_a)) break;
        if (d->labelled && !(worst_drop(l) > 0)) break; /* nothing lost: nothing to fix */
        char text[512];
        advice(d, o, l, text, sizeof text);
        const double v = d->labelled ? worst_drop(l) : fmin(l->drop_w, l->drop_a);
        NNQ_TRY(nnq_report_add_sensitive(rp, l->name, v, NNQ_FMT_FIXED(2),
                                         d->labelled ? "points" : "dB", text));
    }
    return NNQ_OK;
}

static nnq_status sensitivity(nnq_report *rp, const nnq_diag *d, const int *order) {
    nnq_report_section *sec;
    char text[512];
    snprintf(text, sizeof text,
             "Each layer quantized alone, all others in float: first only its weights, then only its "
             "output activations, on %lld evaluation images. %s Layers are ranked by the larger of the two.",
             (long long)d->n_eval,
             d->labelled ? "The measure is the top-1 lost against the float model, in points."
                         : "The images carry no labels: the measure is the SQNR of the logits against the "
                           "float model's, in dB (lower is worse).");
    NNQ_TRY(nnq_report_add_section(rp, "Per-layer sensitivity", text, &sec));
    const int nb = d->n_layers < MAX_BARS ? d->n_layers : MAX_BARS;
    const char **labels = malloc(sizeof(char *) * (size_t)(nb ? nb : 1));
    double *values = malloc(sizeof(double) * 2 * (size_t)(nb ? nb : 1));
    nnq_status st = labels && values ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory for the report");
    for (int k = 0; st == NNQ_OK && k < nb; k++) {
        labels[k] = d->layers[order[k]].name;
        values[2 * k] = d->layers[order[k]].drop_w;
        values[2 * k + 1] = d->layers[order[k]].drop_a;
    }
    static const char *const series[2] = {"weights only", "output only"};
    char title[96];
    snprintf(title, sizeof title, "The %d most sensitive layers", nb);
    const nnq_report_bar_chart c = {
        .title = title,
        .caption = "Bars per layer: with only its weights quantized, and with only its output quantized.",
        .value_label = d->labelled ? "top-1 drop (points)" : "logits SQNR (dB)",
        .n_bars = nb, .labels = labels, .n_series = 2, .series_names = series, .values = values,
        .fmt = NNQ_FMT_FIXED(2)};
    if (st == NNQ_OK && nb > 0) st = nnq_report_add_bar_chart(sec, &c);
    free(labels);
    free(values);
    NNQ_TRY(st);
    static const char *const cols[] = {"rank", "layer", "kind", "W bits", "A bits", "weights only", "output only"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(sec, d->labelled ? "Top-1 drop (points), most sensitive first"
                                                  : "Logits SQNR (dB), most sensitive first",
                                 7, cols, &t));
    for (int k = 0; k < d->n_layers; k++) {
        const nnq_diag_layer *l = &d->layers[order[k]];
        const nnq_report_cell row[7] = {NNQ_CELL_NUM(k + 1, NNQ_FMT_FIXED(0)), NNQ_CELL_TEXT(l->name),
                                        NNQ_CELL_TEXT(l->kind), NNQ_CELL_NUM(l->wbits, NNQ_FMT_FIXED(0)),
                                        NNQ_CELL_NUM(l->abits, NNQ_FMT_FIXED(0)),
                                        NNQ_CELL_NUM(l->drop_w, NNQ_FMT_FIXED(2)),
                                        NNQ_CELL_NUM(l->drop_a, NNQ_FMT_FIXED(2))};
        NNQ_TRY(nnq_report_table_add_row(t, row, k < 3));
    }
    return NNQ_OK;
}

/* The integer engine against its float emulation and the simulation. */
static nnq_status engine(nnq_report_section *sec, const nnq_diag *d) {
    if (!d->has_engine) {
        if (!d->engine_note[0]) return NNQ_OK;
        char text[640];
        snprintf(text, sizeof text, "Integer engine: %s", d->engine_note);
        return nnq_report_add_text(sec, text);
    }
    char text[1400];
    int n_int = 0, n_float = 0, n_exact = 0;
    double worst = 0;
    for (int i = 0; i < d->n_layers; i++) {
        const nnq_diag_layer *l = &d->layers[i];
        n_int += strcmp(l->engine, "int") == 0;
        n_float += strcmp(l->engine, "float") == 0;
        n_exact += l->int_sim_max == 0;
        if (!isnan(l->int_sim_max)) worst = fmax(worst, l->int_sim_max);
    }
    snprintf(text, sizeof text,
             "The integer engine runs the QDQ model this configuration exports, lowered to integer "
             "operators (%d layers on the integer kernels, %d left in float%s%s). Each layer's output "
             "is read from the engine (INT), from the same program run on nnq's float ops (SIM), and "
             "compared with the quantization simulation above. INT equals SIM in %d of %d layers "
             "(largest difference %g): what you simulate is what you run. INT and the simulation "
             "can differ by a step where a value lies near a rounding tie: the engine requantizes "
             "an exact int32 accumulator with one fixed-point multiplier, the simulation rounds a "
             "float convolution; such differences travel downstream.",
             n_int, n_float, d->engine_note[0] ? "; " : "", d->engine_note, n_exact, n_int + n_float,
             worst);
    NNQ_TRY(nnq_report_add_text(sec, text));
    static const char *const cols[] = {"layer", "engine", "output dB (int)", "max |INT - SIM|",
                                       "differs from sim (%)", "max diff (steps)"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(sec, "Integer engine per layer, graph order", 6, cols, &t));
    for (int i = 0; i < d->n_layers; i++) {
        const nnq_diag_layer *l = &d->layers[i];
        const nnq_report_cell row[6] = {
            NNQ_CELL_TEXT(l->name), NNQ_CELL_TEXT(l->engine[0] ? l->engine : "not measured"),
            NNQ_CELL_NUM(l->a_sqnr_int_db, NNQ_FMT_FIXED(1)), NNQ_CELL_NUM(l->int_sim_max, NNQ_FMT_SIG(3)),
            NNQ_CELL_NUM(l->int_qsim_differ, NNQ_FMT_SIG(2)),
            NNQ_CELL_NUM(l->int_qsim_steps, NNQ_FMT_FIXED(0))};
        NNQ_TRY(nnq_report_table_add_row(t, row, strcmp(l->engine, "float") == 0));
    }
    return NNQ_OK;
}

static nnq_status sqnr(nnq_report *rp, const nnq_diag *d) {
    nnq_report_section *sec;
    bool has_int = false;
    for (int i = 0; i < d->n_layers; i++) has_int |= !isnan(d->layers[i].a_sqnr_int_db);
    NNQ_TRY(nnq_report_add_section(
        rp, "Quantization error per layer (SQNR)",
        "Signal-to-quantization-noise ratio, 10 log10(sum x^2 / sum (x - x_hat)^2), in dB, in graph "
        "order: of each layer's weights (float vs quantized), and of its output activations (the float "
        "model vs the quantization simulation, with every quantizer on, so errors accumulate along the "
        "network, and vs the integer engine running the exported model). Higher is better; each bit "
        "adds about 6 dB.",
        &sec));
    const int ns = has_int ? 3 : 2;
    const char **labels = malloc(sizeof(char *) * (size_t)(d->n_layers ? d->n_layers : 1));
    double *values = malloc(sizeof(double) * 3 * (size_t)(d->n_layers ? d->n_layers : 1));
    nnq_status st = labels && values ? NNQ_OK : nnq_fail(NNQ_ERR_NOMEM, "out of memory for the report");
    for (int i = 0; st == NNQ_OK && i < d->n_layers; i++) {
        const nnq_diag_layer *l = &d->layers[i];
        labels[i] = l->name;
        /* +inf (no error: a layer left in float) is not drawn */
        values[ns * i] = isinf(l->w_sqnr_db) ? NAN : l->w_sqnr_db;
        values[ns * i + 1] = isinf(l->a_sqnr_db) ? NAN : l->a_sqnr_db;
        if (has_int) values[ns * i + 2] = isinf(l->a_sqnr_int_db) ? NAN : l->a_sqnr_int_db;
    }
    static const char *const series[3] = {"weights", "output (simulation)", "output (integer engine)"};
    const nnq_report_bar_chart c = {
        .title = "SQNR per layer", .caption = "Weights and output activations of each layer, in graph order.",
        .value_label = "SQNR (dB)", .n_bars = d->n_layers, .labels = labels, .n_series = ns,
        .series_names = series, .values = values, .fmt = NNQ_FMT_FIXED(1)};
    if (st == NNQ_OK && d->n_layers > 0) st = nnq_report_add_bar_chart(sec, &c);
    free(labels);
    free(values);
    NNQ_TRY(st);
    static const char *const cols[] = {"layer", "kind", "out ch", "params", "W bits", "A bits",
                                       "weights dB", "output dB (sim)", "output dB (int)"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(sec, "SQNR per layer, graph order", 9, cols, &t));
    for (int i = 0; i < d->n_layers; i++) {
        const nnq_diag_layer *l = &d->layers[i];
        const nnq_report_cell row[9] = {
            NNQ_CELL_TEXT(l->name), NNQ_CELL_TEXT(l->kind), NNQ_CELL_NUM((double)l->out_ch, NNQ_FMT_FIXED(0)),
            NNQ_CELL_NUM((double)l->params, NNQ_FMT_FIXED(0)), NNQ_CELL_NUM(l->wbits, NNQ_FMT_FIXED(0)),
            NNQ_CELL_NUM(l->abits, NNQ_FMT_FIXED(0)), NNQ_CELL_NUM(l->w_sqnr_db, NNQ_FMT_FIXED(1)),
            NNQ_CELL_NUM(l->a_sqnr_db, NNQ_FMT_FIXED(1)), NNQ_CELL_NUM(l->a_sqnr_int_db, NNQ_FMT_FIXED(1))};
        NNQ_TRY(nnq_report_table_add_row(t, row, false));
    }
    return engine(sec, d);
}

static nnq_status ranges(nnq_report *rp, const nnq_diag *d, const nnq_diag_options *o) {
    nnq_report_section *sec;
    char text[640];
    snprintf(text, sizeof text,
             "Per output channel, the smallest and largest weight of each layer after BatchNorm folding, "
             "before and after cross-layer equalization (%d layer pairs equalized). With one scale per "
             "tensor, the channel with the widest range sets the step for all: where ranges differ by "
             "orders of magnitude (typical of depthwise convolutions), most channels keep only a few "
             "levels. Equalization rescales channels across layer pairs so their ranges match; per-channel "
             "scales avoid the problem altogether. The charts show the %d layers with the largest spread "
             "(widest over narrowest channel range).",
             d->cle_pairs, o->n_range_charts);
    NNQ_TRY(nnq_report_add_section(rp, "Per-channel weight ranges and cross-layer equalization", text, &sec));
    int *order = malloc(sizeof(int) * (size_t)(d->n_ranges ? d->n_ranges : 1));
    if (!order) return nnq_fail(NNQ_ERR_NOMEM, "out of memory for the report");
    for (int i = 0; i < d->n_ranges; i++) order[i] = i;
    for (int i = 1; i < d->n_ranges; i++) {
        const int v = order[i];
        int j = i;
        while (j > 0 && (d->ranges[order[j - 1]].spread_before < d->ranges[v].spread_before ||
                         (isnan(d->ranges[order[j - 1]].spread_before) && !isnan(d->ranges[v].spread_before)))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    nnq_status st = NNQ_OK;
    for (int k = 0; st == NNQ_OK && k < o->n_range_charts && k < d->n_ranges; k++) {
        const nnq_diag_ranges *r = &d->ranges[order[k]];
        const int ns = r->lo_after ? 2 : 1;
        double *lo = malloc(sizeof(double) * 2 * (size_t)r->channels), *hi = malloc(sizeof(double) * 2 * (size_t)r->channels);
        if (!lo || !hi) st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for the report");
        for (int c = 0; st == NNQ_OK && c < r->channels; c++) {
            lo[c] = r->lo_before[c];
            hi[c] = r->hi_before[c];
            if (ns == 2) {
                lo[r->channels + c] = r->lo_after[c];
                hi[r->channels + c] = r->hi_after[c];
            }
        }
        static const char *const names[2] = {"before CLE", "after CLE"};
        char title[320], caption[160];
        snprintf(title, sizeof title, "%s: %d channels", r->name, r->channels);
        snprintf(caption, sizeof caption, "Widest over narrowest channel: %.1fx before, %.1fx after.",
                 r->spread_before, r->spread_after);
        const nnq_report_range_chart c = {.title = title, .caption = caption, .y_label = "weight value",
                                          .n_channels = r->channels, .n_series = ns, .series_names = names,
                                          .lo = lo, .hi = hi, .fmt = NNQ_FMT_SIG(3)};
        if (st == NNQ_OK) st = nnq_report_add_range_chart(sec, &c);
        free(lo);
        free(hi);
    }
    static const char *const cols[] = {"layer", "channels", "spread before", "spread after"};
    nnq_report_table *t = NULL;
    if (st == NNQ_OK) st = nnq_report_add_table(sec, "Channel range spread (widest / narrowest), graph order", 4, cols, &t);
    for (int i = 0; st == NNQ_OK && i < d->n_ranges; i++) {
        const nnq_diag_ranges *r = &d->ranges[i];
        const nnq_report_cell row[4] = {NNQ_CELL_TEXT(r->name), NNQ_CELL_NUM(r->channels, NNQ_FMT_FIXED(0)),
                                        NNQ_CELL_NUM(r->spread_before, NNQ_FMT_FIXED(1)),
                                        NNQ_CELL_NUM(r->spread_after, NNQ_FMT_FIXED(1))};
        st = nnq_report_table_add_row(t, row, false);
    }
    free(order);
    return st;
}

static nnq_status histograms(nnq_report *rp, const nnq_diag *d) {
    nnq_report_section *sec;
    NNQ_TRY(nnq_report_add_section(
        rp, "Activation histograms and clipping ranges",
        "Distribution of float activations over the calibration images, for the logits and the outputs "
        "of the layers whose quantized output costs most, with the range each method would choose: "
        "minmax (everything), mse (least squared error), percentile (99.99 % of values), ce (least "
        "cross-entropy, logits only), and the range the analysed model uses.",
        &sec));
    for (int i = 0; i < d->n_hist; i++) {
        const nnq_diag_hist *h = &d->hist[i];
        nnq_report_marker m[NNQ_DIAG_METHODS + 1];
        for (int k = 0; k < h->n_methods; k++) m[k] = (nnq_report_marker){h->method[k], h->lo[k], h->hi[k]};
        m[h->n_methods] = (nnq_report_marker){"chosen", h->chosen_lo, h->chosen_hi};
        char title[320];
        snprintf(title, sizeof title, "%s%s%s", h->tensor, h->layer[0] ? " — output of " : "", h->layer);
        const nnq_report_histogram c = {.title = title, .caption = "Counts on a log scale.",
                                        .x_label = "activation value", .n_bins = h->n_bins, .edges = h->edges,
                                        .counts = h->counts, .log_y = true, .n_markers = h->n_methods + 1,
                                        .markers = m, .fmt = NNQ_FMT_SIG(3)};
        NNQ_TRY(nnq_report_add_histogram(sec, &c));
    }
    return NNQ_OK;
}

static nnq_status bits(nnq_report *rp, const nnq_diag *d, const nnq_diag_options *o) {
    nnq_report_section *sec;
    char text[400];
    snprintf(text, sizeof text,
             "The same recipe (%s) at each bit-width: weights at b bits with activations at %d, and both at "
             "b bits%s.",
             o->recipe_name, o->ptq.qsim.acts.bits,
             o->ptq.qsim.first_last_bits > 0 ? " (first and last layer as configured)" : "");
    NNQ_TRY(nnq_report_add_section(rp, "Accuracy against bit-width", text, &sec));
    double x[NNQ_DIAG_BITS], y[2 * NNQ_DIAG_BITS];
    for (int i = 0; i < NNQ_DIAG_BITS; i++) {
        x[i] = d->bits[i];
        y[i] = d->top1_wbits[i];
        y[NNQ_DIAG_BITS + i] = d->top1_wabits[i];
    }
    char s0[32];
    snprintf(s0, sizeof s0, "W b, A %d", o->ptq.qsim.acts.bits);
    const char *names[2] = {s0, "W b, A b"};
    const nnq_report_line_chart c = {.title = "Accuracy against bit-width", .caption = d->labelled ? "Top-1 (%) on the evaluation images." : "Logits SQNR (dB) against the float model.",
                                     .x_label = "bits", .y_label = d->labelled ? "top-1 (%)" : "logits SQNR (dB)",
                                     .n_x = NNQ_DIAG_BITS, .x = x, .n_series = 2, .series_names = names, .y = y,
                                     .markers = true, .fmt = NNQ_FMT_FIXED(2)};
    NNQ_TRY(nnq_report_add_line_chart(sec, &c));
    const char *cols[3] = {"bits", s0, "W b, A b"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(sec, d->labelled ? "Top-1 (%)" : "Logits SQNR (dB)", 3, cols, &t));
    for (int i = 0; i < NNQ_DIAG_BITS; i++) {
        const nnq_report_cell row[3] = {NNQ_CELL_NUM(d->bits[i], NNQ_FMT_FIXED(0)),
                                        NNQ_CELL_NUM(d->top1_wbits[i], NNQ_FMT_FIXED(2)),
                                        NNQ_CELL_NUM(d->top1_wabits[i], NNQ_FMT_FIXED(2))};
        NNQ_TRY(nnq_report_table_add_row(t, row, false));
    }
    return NNQ_OK;
}

static nnq_status steps(nnq_report *rp, const nnq_diag *d) {
    nnq_report_section *sec;
    NNQ_TRY(nnq_report_add_section(rp, "Time and memory per step",
                                   "Wall time of each step, and the process's peak resident memory when it ended "
                                   "(a running maximum).",
                                   &sec));
    static const char *const cols[] = {"step", "seconds", "peak RSS (MB)"};
    nnq_report_table *t;
    NNQ_TRY(nnq_report_add_table(sec, "Steps in order", 3, cols, &t));
    for (int i = 0; i < d->n_steps; i++) {
        const nnq_report_cell row[3] = {NNQ_CELL_TEXT(d->steps[i].name), NNQ_CELL_NUM(d->steps[i].seconds, NNQ_FMT_FIXED(2)),
                                        NNQ_CELL_NUM(d->steps[i].peak_rss_mb, NNQ_FMT_FIXED(0))};
        NNQ_TRY(nnq_report_table_add_row(t, row, false));
    }
    return NNQ_OK;
}

nnq_status nnq_diag_report(const nnq_diag *d, const nnq_diag_options *o, nnq_report **out) {
    *out = NULL;
    char title[320], sub[320], buf[64];
    snprintf(title, sizeof title, "nnq analysis: %s", o->model_name);
    const nnq_qsim_options *q = &o->ptq.qsim;
    snprintf(sub, sizeof sub, "W%dA%d, %s weights, recipe %s", q->weights.bits, q->acts.bits,
             q->weights.per_channel ? "per-channel" : "per-tensor", o->recipe_name);
    nnq_report *rp = NULL;
    int *order = NULL;
    NNQ_TRY(nnq_report_create(title, &rp));
    nnq_status st = nnq_report_set_subtitle(rp, sub);
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "model", o->model_name);
    snprintf(buf, sizeof buf, "%d", q->weights.bits);
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "weight bits", buf);
    snprintf(buf, sizeof buf, "%d", q->acts.bits);
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "activation bits", buf);
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "recipe", o->recipe_name);
    snprintf(buf, sizeof buf, "%lld", (long long)d->n_calib);
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "calibration images", buf);
    snprintf(buf, sizeof buf, "%lld%s", (long long)d->n_eval, d->labelled ? "" : " (unlabelled)");
    if (st == NNQ_OK) st = nnq_report_add_meta(rp, "evaluation images", buf);
    if (st == NNQ_OK && !(order = rank_layers(d))) st = nnq_fail(NNQ_ERR_NOMEM, "out of memory for the report");
    if (st == NNQ_OK) st = summary(rp, d, o, order);
    bool measured = false;
    for (int i = 0; i < d->n_layers; i++) measured |= !isnan(d->layers[i].drop_w) || !isnan(d->layers[i].drop_a);
    /* Sensitivity first (the question), then the channel ranges that most
     * often answer it, then the rest. */
    if (st == NNQ_OK && measured) st = sensitivity(rp, d, order);
    if (st == NNQ_OK && d->n_ranges > 0) st = ranges(rp, d, o);
    if (st == NNQ_OK && d->n_hist > 0) st = histograms(rp, d);
    if (st == NNQ_OK && d->n_layers > 0) st = sqnr(rp, d);
    if (st == NNQ_OK && d->has_bits) st = bits(rp, d, o);
    if (st == NNQ_OK) st = steps(rp, d);
    free(order);
    if (st != NNQ_OK) {
        nnq_report_free(rp);
        return st;
    }
    *out = rp;
    return NNQ_OK;
}
