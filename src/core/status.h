/* One status enum for the whole library, plus a per-thread message that
 * says what went wrong (naming the node, tensor or file). Library code
 * returns nnq_status; only the CLI prints and exits. */
#ifndef NNQ_CORE_STATUS_H
#define NNQ_CORE_STATUS_H

typedef enum nnq_status {
    NNQ_OK = 0,
    NNQ_ERR_IO,          /* file missing, unreadable, short read, write failed */
    NNQ_ERR_PARSE,       /* malformed bytes: protobuf, IDX, npy, JSON */
    NNQ_ERR_UNSUPPORTED, /* valid input we do not implement (op, dtype, attribute) */
    NNQ_ERR_SHAPE,       /* shapes or ranks that do not fit */
    NNQ_ERR_INVALID,     /* inconsistent graph or arguments */
    NNQ_ERR_NOMEM,       /* allocation failed */
    NNQ_ERR_LIMIT        /* a size from a file exceeds nnq's limits */
} nnq_status;

/* Record a formatted message for the calling thread and return `s`, so
 * failure sites read `return nnq_fail(NNQ_ERR_SHAPE, "node %s: ...", ...);` */
nnq_status nnq_fail(nnq_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepend context ("loading model.onnx: ") to the current message. */
nnq_status nnq_fail_context(nnq_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *nnq_last_error(void);
const char *nnq_status_name(nnq_status s);
void nnq_clear_error(void);

/* Propagate a failing status from an expression. */
#define NNQ_TRY(expr)                                                          \
    do {                                                                       \
        nnq_status nnq_try_s_ = (expr);                                        \
        if (nnq_try_s_ != NNQ_OK) return nnq_try_s_;                           \
    } while (0)

#endif
