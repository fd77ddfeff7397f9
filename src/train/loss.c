/* Softmax cross-entropy and knowledge-distillation losses (see loss.h).
 *
 * Rows are small (C classes), so each is done in double: the row's
 * log-sum-exp around its maximum, then the loss term and the gradient.
 * The row functions ADD weight * gradient into g, so the public entry
 * points zero the gradient once and combine losses by weights. */
#include "train/loss.h"

#include <math.h>
#include <string.h>

/* log(sum_c exp(scale * z[c])), stable: the max is factored out. */
static double row_lse(const float *z, int64_t c, double scale) {
    double m = scale * z[0];
    for (int64_t k = 1; k < c; k++)
        if (scale * z[k] > m) m = scale * z[k];
    double s = 0;
    for (int64_t k = 0; k < c; k++) s += exp(scale * z[k] - m);
    return m + log(s);
}

/* Cross-entropy of one row against label y with smoothing eps; adds
 * w * (softmax(z) - q) to g (if any), returns the row's loss. */
static double ce_row(const float *z, int64_t c, int32_t y, double eps, double w, float *g) {
    double lse = row_lse(z, c, 1.0);
    double sum_nll = 0; /* sum over classes of -log p_c, for the smoothed part */
    for (int64_t k = 0; k < c; k++) sum_nll += lse - z[k];
    double loss = (1.0 - eps) * (lse - z[y]) + eps / (double)c * sum_nll;
    if (g) {
        for (int64_t k = 0; k < c; k++) {
            double q = eps / (double)c + (k == y ? 1.0 - eps : 0.0);
            g[k] += (float)(w * (exp(z[k] - lse) - q));
        }
    }
    return loss;
}

/* KL(softmax(t / T) || softmax(s / T)) of one row; adds w * (q - p) to g. */
static double kd_row(const float *s, const float *t, int64_t c, double temp, double w,
                     float *g) {
    double inv = 1.0 / temp;
    double lse_s = row_lse(s, c, inv), lse_t = row_lse(t, c, inv);
    double kl = 0;
    for (int64_t k = 0; k < c; k++) {
        /* log-probabilities stay finite where the probabilities underflow */
        double logp = inv * t[k] - lse_t, logq = inv * s[k] - lse_s;
        double p = exp(logp);
        kl += p * (logp - logq);
        if (g) g[k] += (float)(w * (exp(logq) - p));
    }
    return kl;
}

/* First index of the row's maximum. */
static int64_t row_argmax(const float *z, int64_t c) {
    int64_t best = 0;
    for (int64_t k = 1; k < c; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

static nnq_status check_logits(const nnq_tensor *t, const char *what) {
    char buf[128];
    if (!t || !t->data) return nnq_fail(NNQ_ERR_INVALID, "loss: %s tensor is missing", what);
    if (t->dtype != NNQ_DT_FLOAT || t->rank != 2 || t->dims[0] < 1 || t->dims[1] < 1)
        return nnq_fail(NNQ_ERR_SHAPE, "loss: %s must be float [N, C] with N, C >= 1, got %s %s",
                        what, nnq_dtype_name(t->dtype), nnq_shape_str(t, buf, sizeof buf));
    return NNQ_OK;
}

/* `other` must have the logits' shape (teacher, gradient); NULL passes. */
static nnq_status check_same(const nnq_tensor *logits, const nnq_tensor *other,
                             const char *what) {
    char a[128], b[128];
    if (!other) return NNQ_OK;
    if (!other->data || other->dtype != NNQ_DT_FLOAT || !nnq_shape_equal(other, logits))
        return nnq_fail(NNQ_ERR_SHAPE, "loss: %s must be float %s like the logits, got %s %s",
                        what, nnq_shape_str(logits, a, sizeof a), nnq_dtype_name(other->dtype),
                        nnq_shape_str(other, b, sizeof b));
    return NNQ_OK;
}

static nnq_status check_labels(const int32_t *labels, int64_t n, int64_t c) {
    if (!labels) return nnq_fail(NNQ_ERR_INVALID, "loss: labels are missing");
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c)
            return nnq_fail(NNQ_ERR_INVALID, "loss: label %ld of row %lld is outside [0, %lld)",
                            (long)labels[i], (long long)i, (long long)c);
    return NNQ_OK;
}

static nnq_status check_unit(double v, const char *what, bool allow_one) {
    if (!(v >= 0.0 && (allow_one ? v <= 1.0 : v < 1.0)))
        return nnq_fail(NNQ_ERR_INVALID, "loss: %s %g is outside [0, 1%s", what, v,
                        allow_one ? "]" : ")");
    return NNQ_OK;
}

static nnq_status check_temperature(double t) {
    if (!(t > 0.0) || isinf(t))
        return nnq_fail(NNQ_ERR_INVALID, "loss: temperature %g must be positive and finite", t);
    return NNQ_OK;
}

/* The shared body: weights w_kd and w_ce (either may be 0, then that
 * loss is skipped and its inputs may be NULL). */
static nnq_status combined(const nnq_tensor *student, const nnq_tensor *teacher,
                           const int32_t *labels, double temp, double w_kd, double w_ce,
                           double smoothing, double *loss, nnq_tensor *grad, int64_t *correct) {
    int64_t n = student->dims[0], c = student->dims[1];
    const float *s = nnq_f32(student);
    const float *t = teacher ? nnq_f32(teacher) : NULL;
    float *g = grad ? nnq_f32(grad) : NULL;
    if (g) memset(g, 0, (size_t)(n * c) * sizeof(float));
    double sum_ce = 0, sum_kd = 0;
    int64_t hits = 0;
    /* gradient weights per row: the batch mean, and T^2 / T for KD */
    double gw_ce = w_ce / (double)n, gw_kd = w_kd * temp / (double)n;
    for (int64_t i = 0; i < n; i++) {
        const float *z = s + i * c;
        float *gi = g ? g + i * c : NULL;
        if (w_ce != 0) sum_ce += ce_row(z, c, labels[i], smoothing, gw_ce, gi);
        if (w_kd != 0) sum_kd += kd_row(z, t + i * c, c, temp, gw_kd, gi);
        if (labels && row_argmax(z, c) == labels[i]) hits++;
    }
    *loss = w_ce * sum_ce / (double)n + w_kd * temp * temp * sum_kd / (double)n;
    if (correct) *correct = hits;
    return NNQ_OK;
}

nnq_status nnq_loss_softmax_ce(const nnq_tensor *logits, const int32_t *labels, float smoothing,
                               double *loss, nnq_tensor *dlogits, int64_t *correct) {
    NNQ_TRY(check_logits(logits, "logits"));
    NNQ_TRY(check_same(logits, dlogits, "dlogits"));
    NNQ_TRY(check_unit(smoothing, "label smoothing", true));
    NNQ_TRY(check_labels(labels, logits->dims[0], logits->dims[1]));
    return combined(logits, NULL, labels, 1.0, 0.0, 1.0, smoothing, loss, dlogits, correct);
}

nnq_status nnq_loss_kd(const nnq_tensor *student, const nnq_tensor *teacher, float temperature,
                       double *loss, nnq_tensor *dstudent) {
    NNQ_TRY(check_logits(student, "student logits"));
    NNQ_TRY(check_logits(teacher, "teacher logits"));
    NNQ_TRY(check_same(student, teacher, "teacher logits"));
    NNQ_TRY(check_same(student, dstudent, "dstudent"));
    NNQ_TRY(check_temperature(temperature));
    return combined(student, teacher, NULL, temperature, 1.0, 0.0, 0.0, loss, dstudent, NULL);
}

nnq_status nnq_loss_kd_ce(const nnq_tensor *student, const nnq_tensor *teacher,
                          const int32_t *labels, float temperature, float alpha,
                          float smoothing, double *loss, nnq_tensor *dstudent, int64_t *correct) {
    NNQ_TRY(check_logits(student, "student logits"));
    NNQ_TRY(check_logits(teacher, "teacher logits"));
    NNQ_TRY(check_same(student, teacher, "teacher logits"));
    NNQ_TRY(check_same(student, dstudent, "dstudent"));
    NNQ_TRY(check_temperature(temperature));
    NNQ_TRY(check_unit(alpha, "alpha", true));
    NNQ_TRY(check_unit(smoothing, "label smoothing", true));
    NNQ_TRY(check_labels(labels, student->dims[0], student->dims[1]));
    return combined(student, teacher, labels, temperature, alpha, 1.0 - alpha, smoothing, loss,
                    dstudent, correct);
}
