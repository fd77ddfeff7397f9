/* Classification losses over logits [N, C] (float32, row-major), averaged
 * over the batch: softmax cross-entropy with optional label smoothing, and
 * knowledge distillation from a teacher's logits. Each returns the loss
 * value (double) and optionally its gradient w.r.t. the logits, which it
 * OVERWRITES (the trainer seeds the backward pass with it).
 *
 * All are numerically stable (log-sum-exp around the row maximum) and
 * fail with NNQ_ERR_SHAPE / NNQ_ERR_INVALID naming the offending tensor,
 * row or parameter. */
#ifndef NNQ_TRAIN_LOSS_H
#define NNQ_TRAIN_LOSS_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

/* Cross-entropy of softmax(logits) against labels[N] in [0, C), mean over
 * the batch. Label smoothing eps in [0, 1] as PyTorch's
 * CrossEntropyLoss(label_smoothing=eps): the target is (1 - eps) on the
 * label plus eps / C on every class, so
 *   loss_i = logsumexp(z_i) - sum_c q_ic z_ic,  dz_i = (softmax(z_i) - q_i) / N.
 * dlogits (NULL: not wanted) must be float [N, C]. correct (NULL ok):
 * rows whose first largest logit is at the label. */
nnq_status nnq_loss_softmax_ce(const nnq_tensor *logits, const int32_t *labels, float smoothing,
                               double *loss, nnq_tensor *dlogits, int64_t *correct);

/* Knowledge distillation (Hinton, Vinyals, Dean 2015, "Distilling the
 * Knowledge in a Neural Network"): with p = softmax(teacher / T) and
 * q = softmax(student / T),
 *   loss = T^2 * (1/N) sum_i KL(p_i || q_i),   dstudent = T (q - p) / N.
 * The T^2 factor keeps the gradient's size independent of T (as in the
 * paper and in PyTorch's kl_div(..., reduction="batchmean") * T^2). The
 * teacher gets no gradient. T > 0. */
nnq_status nnq_loss_kd(const nnq_tensor *student, const nnq_tensor *teacher, float temperature,
                       double *loss, nnq_tensor *dstudent);

/* alpha * KD + (1 - alpha) * CE on the same student logits, value and
 * gradient combined (alpha in [0, 1]); correct as for CE. */
nnq_status nnq_loss_kd_ce(const nnq_tensor *student, const nnq_tensor *teacher,
                          const int32_t *labels, float temperature, float alpha,
                          float smoothing, double *loss, nnq_tensor *dstudent, int64_t *correct);

#endif
