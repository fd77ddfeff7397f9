/* Small string helpers C11 lacks. */
#ifndef NNQ_CORE_STR_H
#define NNQ_CORE_STR_H

/* Heap copy of s (NULL on allocation failure or NULL s). */
char *nnq_strdup(const char *s);

#endif
