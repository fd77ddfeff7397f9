/* Parameter discovery and the flat gradient block. */
#include "train/params.h"

#include <stdlib.h>
#include <string.h>

#define GRAD_ALIGN 64

typedef enum slot_role { ROLE_PARAM, ROLE_STATE } slot_role;

/* Input slots whose initializers are trained or are training state. */
static const struct {
    const char *op;
    int input;
    slot_role role;
} slot_roles[] = {
    {"Conv", 1, ROLE_PARAM},
    {"Conv", 2, ROLE_PARAM},
    {"Gemm", 0, ROLE_PARAM},
    {"Gemm", 1, ROLE_PARAM},
    {"Gemm", 2, ROLE_PARAM},
    {"MatMul", 0, ROLE_PARAM},
    {"MatMul", 1, ROLE_PARAM},
    {"BatchNormalization", 1, ROLE_PARAM},
    {"BatchNormalization", 2, ROLE_PARAM},
    {"BatchNormalization", 3, ROLE_STATE},
    {"BatchNormalization", 4, ROLE_STATE},
    {"PRelu", 1, ROLE_PARAM},
};
#define N_SLOT_ROLES ((int)(sizeof slot_roles / sizeof slot_roles[0]))

static int slot_role_of(const nnq_node *nd, int input) {
    if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0) return -1;
    for (int i = 0; i < N_SLOT_ROLES; i++)
        if (slot_roles[i].input == input && strcmp(slot_roles[i].op, nd->op_type) == 0)
            return (int)slot_roles[i].role;
    return -1;
}

nnq_status nnq_params_add_group(nnq_params *ps, const char *name, float lr_mult,
                                bool weight_decay, int *out_group) {
    if (ps->n_groups >= NNQ_MAX_PARAM_GROUPS)
        return nnq_fail(NNQ_ERR_LIMIT, "more than %d parameter groups", NNQ_MAX_PARAM_GROUPS);
    nnq_param_group *gr = &ps->groups[ps->n_groups];
    memset(gr, 0, sizeof *gr);
    strncpy(gr->name, name, sizeof gr->name - 1);
    gr->lr_mult = lr_mult;
    gr->weight_decay = weight_decay;
    if (out_group) *out_group = ps->n_groups;
    ps->n_groups++;
    return NNQ_OK;
}

int nnq_params_find(const nnq_params *ps, int value) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].value == value) return i;
    return -1;
}

nnq_status nnq_params_add(nnq_params *ps, int value, int group) {
    if (value < 0 || value >= ps->g->n_values)
        return nnq_fail(NNQ_ERR_INVALID, "parameter value %d does not exist", value);
    if (group < 0 || group >= ps->n_groups)
        return nnq_fail(NNQ_ERR_INVALID, "parameter group %d does not exist", group);
    nnq_value *v = &ps->g->values[value];
    if (!v->is_initializer || !v->t.data)
        return nnq_fail(NNQ_ERR_INVALID, "parameter '%s' is not an initializer", v->name);
    if (v->t.dtype != NNQ_DT_FLOAT)
        return nnq_fail(NNQ_ERR_UNSUPPORTED, "parameter '%s' is %s; only float32 is trained",
                        v->name, nnq_dtype_name(v->t.dtype));
    if (nnq_params_find(ps, value) >= 0) return NNQ_OK;
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 64;
        nnq_param *p = realloc(ps->p, sizeof *p * (size_t)cap);
        if (!p) return nnq_fail(NNQ_ERR_NOMEM, "out of memory listing parameters");
        ps->p = p;
        ps->cap = cap;
    }
    nnq_param *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    p->value = value;
    p->group = group;
    p->numel = nnq_tensor_numel(&v->t);
    p->data = nnq_f32(&v->t);
    return NNQ_OK;
}

nnq_status nnq_params_alloc(nnq_params *ps) {
    size_t total = 0;
    for (int i = 0; i < ps->n; i++) {
        ps->p[i].offset = total;
        /* Each parameter starts on a 64-byte boundary: aligned vector loads. */
        total += ((size_t)ps->p[i].numel + 15) / 16 * 16;
    }
    free(ps->grads);
    ps->grads = aligned_alloc(GRAD_ALIGN, (total ? total : 16) * sizeof(float));
    if (!ps->grads) {
        ps->total = 0;
        return nnq_fail(NNQ_ERR_NOMEM, "cannot allocate gradients for %zu parameters", total);
    }
    ps->total = total;
    memset(ps->grads, 0, (total ? total : 16) * sizeof(float));
    for (int i = 0; i < ps->n; i++) ps->p[i].grad = ps->grads + ps->p[i].offset;
    return NNQ_OK;
}

static nnq_status add_state(nnq_params *ps, int value) {
    for (int i = 0; i < ps->n_state; i++)
        if (ps->state[i] == value) return NNQ_OK;
    int *s = realloc(ps->state, sizeof *s * (size_t)(ps->n_state + 1));
    if (!s) return nnq_fail(NNQ_ERR_NOMEM, "out of memory listing training state");
    ps->state = s;
    ps->state[ps->n_state++] = value;
    return NNQ_OK;
}

nnq_status nnq_params_add_state(nnq_params *ps, int value) {
    if (value < 0 || value >= ps->g->n_values)
        return nnq_fail(NNQ_ERR_INVALID, "state value %d does not exist", value);
    const nnq_value *v = &ps->g->values[value];
    if (!v->is_initializer || !v->t.data || v->t.dtype != NNQ_DT_FLOAT)
        return nnq_fail(NNQ_ERR_INVALID, "training state '%s' is not a float initializer",
                        v->name);
    if (nnq_params_find(ps, value) >= 0)
        return nnq_fail(NNQ_ERR_INVALID, "'%s' is a trained parameter; it cannot be state too",
                        v->name);
    return add_state(ps, value);
}

nnq_status nnq_params_init(nnq_params *ps, nnq_graph *g) {
    nnq_status s = NNQ_OK;
    memset(ps, 0, sizeof *ps);
    ps->g = g;
    if ((s = nnq_params_add_group(ps, "weights", 1.0f, true, NULL)) != NNQ_OK) goto fail;
    if ((s = nnq_params_add_group(ps, "no_decay", 1.0f, false, NULL)) != NNQ_OK) goto fail;
    for (int n = 0; n < g->n_nodes; n++) {
        const nnq_node *nd = &g->nodes[n];
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k], role = slot_role_of(nd, k);
            if (v < 0 || role < 0 || !g->values[v].is_initializer) continue;
            if (g->values[v].t.dtype != NNQ_DT_FLOAT) continue;
            if (role == ROLE_PARAM) {
                int group = g->values[v].t.rank >= 2 ? NNQ_GROUP_WEIGHTS : NNQ_GROUP_NO_DECAY;
                s = nnq_params_add(ps, v, group);
            } else {
                s = add_state(ps, v);
            }
            if (s != NNQ_OK) goto fail;
        }
    }
    for (int i = 0; i < ps->n_state; i++)
        if (nnq_params_find(ps, ps->state[i]) >= 0) {
            s = nnq_fail(NNQ_ERR_INVALID,
                         "initializer '%s' is both a trained parameter and BN running state",
                         g->values[ps->state[i]].name);
            goto fail;
        }
    if ((s = nnq_params_alloc(ps)) != NNQ_OK) goto fail;
    return NNQ_OK;
fail:
    nnq_params_free(ps);
    return s;
}

void nnq_params_free(nnq_params *ps) {
    free(ps->p);
    free(ps->state);
    free(ps->grads);
    memset(ps, 0, sizeof *ps);
}

void nnq_params_zero_grad(nnq_params *ps) {
    if (ps->grads) memset(ps->grads, 0, ps->total * sizeof(float));
}

int64_t nnq_params_count(const nnq_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++) n += ps->p[i].numel;
    return n;
}

const char *nnq_params_name(const nnq_params *ps, int i) {
    return ps->g->values[ps->p[i].value].name;
}
