/* Optimizers, schedules, clipping and the parameter store.
 *
 * The optimizer cases use W = [[1, -2]] (weight-decay group), b = [0.5]
 * (no-decay group), constant gradients gW = [[0.5, -0.25]], gb = [0.1],
 * lr 0.1, weight decay 0.01, three steps. Step 1 by hand:
 *   SGD Nesterov (momentum 0.9): d = g + wd p = [0.51, -0.27], buf = d,
 *     p -= lr (d + 0.9 buf) = lr 1.9 d -> W = [0.9031, -1.9487];
 *     b: d = 0.1 -> 0.5 - 0.019 = 0.481.
 *   SGD momentum: p -= lr buf = lr d -> W = [0.949, -1.973], b = 0.49.
 *     Step 2: d = [0.5 + 0.00949, -0.25 - 0.01973] = [0.50949, -0.26973],
 *     buf = 0.9 [0.51, -0.27] + d = [0.96849, -0.51273],
 *     W = [0.949 - 0.096849, -1.973 + 0.051273] = [0.852151, -1.921727].
 *   Adam: m = 0.1 d, v = 0.001 d^2; bias-corrected m/sqrt(v) = sign(d), so
 *     p -= lr sign(d) -> W = [0.9, -1.9], b = 0.4.
 *   AdamW: p *= 1 - lr wd = 0.999 first -> W = [0.999 - 0.1, -1.998 + 0.1]
 *     = [0.899, -1.898]; b (no decay) = 0.4.
 * Steps 2 and 3 are longer by hand; the table's values were checked
 * against torch.optim in PyTorch 1.13 (SGD, Adam, AdamW with these two
 * parameter groups), which agrees with every entry to 1e-7. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "ir/graph.h"
#include "train/optim.h"
#include "train/params.h"
#include "train/schedule.h"

typedef struct fixture {
    nnq_graph *g;
    nnq_params ps;
    int w, b;
} fixture;

/* Y = Gemm(X, W, b, transB=1): W and b become parameters. */
static void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    f->g = nnq_graph_create("optim");
    CHECK_OK(nnq_graph_set_opset(f->g, "", 13));
    nnq_tensor w = {0}, b = {0};
    const int64_t wd[2] = {1, 2}, bd[1] = {1};
    CHECK_OK(nnq_tensor_alloc(&w, NNQ_DT_FLOAT, 2, wd));
    CHECK_OK(nnq_tensor_alloc(&b, NNQ_DT_FLOAT, 1, bd));
    nnq_f32(&w)[0] = 1.0f;
    nnq_f32(&w)[1] = -2.0f;
    nnq_f32(&b)[0] = 0.5f;
    int x, y;
    CHECK_OK(nnq_graph_add_value(f->g, "x", &x));
    CHECK_OK(nnq_graph_add_initializer(f->g, "fc.weight", &w, &f->w));
    CHECK_OK(nnq_graph_add_initializer(f->g, "fc.bias", &b, &f->b));
    CHECK_OK(nnq_graph_add_value(f->g, "y", &y));
    const int in[3] = {x, f->w, f->b};
    int node;
    CHECK_OK(nnq_graph_add_node(f->g, "fc", "Gemm", "", 3, in, 1, &y, &node));
    CHECK_OK(nnq_node_set_int(&f->g->nodes[node], "transB", 1));
    CHECK_OK(nnq_graph_add_input(f->g, x));
    CHECK_OK(nnq_graph_add_output(f->g, y));
    CHECK_OK(nnq_params_init(&f->ps, f->g));
}

static void fixture_free(fixture *f) {
    nnq_params_free(&f->ps);
    nnq_graph_free(f->g);
}

static nnq_param *param_of(fixture *f, int value) {
    int i = nnq_params_find(&f->ps, value);
    return i >= 0 ? &f->ps.p[i] : NULL;
}

static void set_grads(fixture *f) {
    nnq_param *w = param_of(f, f->w), *b = param_of(f, f->b);
    w->grad[0] = 0.5f;
    w->grad[1] = -0.25f;
    b->grad[0] = 0.1f;
}

/* Relative error check at float precision. */
#define CHECK_REL(a, b) CHECK_NEAR((a), (b), 2e-6 * fabs((double)(b)) + 1e-7)

static void test_params_groups(void) {
    fixture f;
    fixture_init(&f);
    CHECK(f.ps.n == 2);
    nnq_param *w = param_of(&f, f.w), *b = param_of(&f, f.b);
    CHECK(w && w->group == NNQ_GROUP_WEIGHTS && f.ps.groups[w->group].weight_decay);
    CHECK(b && b->group == NNQ_GROUP_NO_DECAY && !f.ps.groups[b->group].weight_decay);
    CHECK(nnq_params_count(&f.ps) == 3);
    CHECK(w && w->data == nnq_f32(&f.g->values[f.w].t)); /* trained in place */
    fixture_free(&f);
}

static void run_case(nnq_optim_kind kind, float momentum, bool nesterov,
                     const float want[3][3]) {
    fixture f;
    fixture_init(&f);
    nnq_optim_config c = nnq_optim_defaults(kind);
    c.weight_decay = 0.01f;
    c.momentum = momentum;
    c.nesterov = nesterov;
    nnq_optim o;
    CHECK_OK(nnq_optim_init(&o, &c, &f.ps));
    nnq_param *w = param_of(&f, f.w), *b = param_of(&f, f.b);
    for (int s = 0; s < 3; s++) {
        set_grads(&f);
        nnq_optim_step(&o, &f.ps, 0.1f);
        CHECK_REL(w->data[0], want[s][0]);
        CHECK_REL(w->data[1], want[s][1]);
        CHECK_REL(b->data[0], want[s][2]);
    }
    CHECK(o.steps == 3);
    nnq_optim_free(&o);
    fixture_free(&f);
}

static void test_optimizers(void) {
    static const float nesterov[3][3] = {
        {0.9031f, -1.9487f, 0.481f},
        {0.765074134f, -1.8756274f, 0.453900009f},
        {0.590209961f, -1.78305221f, 0.419510007f}};
    static const float momentum[3][3] = {
        {0.949f, -1.973f, 0.49f},
        {0.852150977f, -1.92172706f, 0.471000016f},
        {0.714134753f, -1.84865963f, 0.443900019f}};
    static const float plain[3][3] = {
        {0.949f, -1.973f, 0.49f},
        {0.898051023f, -1.94602704f, 0.480000019f},
        {0.847152948f, -1.91908097f, 0.470000029f}};
    static const float adam[3][3] = {
        {0.9f, -1.9f, 0.4f},
        {0.800005198f, -1.80000985f, 0.3f},
        {0.700019002f, -1.70003617f, 0.2f}};
    static const float adamw[3][3] = {
        {0.899f, -1.898f, 0.4f},
        {0.798101008f, -1.79610205f, 0.3f},
        {0.697302938f, -1.6943059f, 0.2f}};
    run_case(NNQ_OPTIM_SGD, 0.9f, true, nesterov);
    run_case(NNQ_OPTIM_SGD, 0.9f, false, momentum);
    run_case(NNQ_OPTIM_SGD, 0.0f, false, plain);
    run_case(NNQ_OPTIM_ADAM, 0, false, adam);
    run_case(NNQ_OPTIM_ADAMW, 0, false, adamw);
}

static void test_optim_errors(void) {
    fixture f;
    fixture_init(&f);
    nnq_optim o;
    nnq_optim_config c = nnq_optim_defaults(NNQ_OPTIM_SGD);
    c.momentum = 0;
    c.nesterov = true;
    CHECK_STATUS(nnq_optim_init(&o, &c, &f.ps), NNQ_ERR_INVALID);
    c = nnq_optim_defaults(NNQ_OPTIM_ADAM);
    c.beta2 = 1.0f;
    CHECK_STATUS(nnq_optim_init(&o, &c, &f.ps), NNQ_ERR_INVALID);
    fixture_free(&f);
}

/* A group added later (as quantizer scales will be) gets its own lr. */
static void test_extra_group(void) {
    nnq_graph *g = nnq_graph_create("groups");
    nnq_tensor t = {0};
    const int64_t d[1] = {2};
    CHECK_OK(nnq_tensor_alloc(&t, NNQ_DT_FLOAT, 1, d));
    nnq_f32(&t)[0] = 1.0f;
    nnq_f32(&t)[1] = 2.0f;
    int v;
    CHECK_OK(nnq_graph_add_initializer(g, "q.scale", &t, &v));
    nnq_params ps;
    CHECK_OK(nnq_params_init(&ps, g)); /* no node reads it: not a parameter */
    CHECK(ps.n == 0 && ps.n_groups == 2);
    int group;
    CHECK_OK(nnq_params_add_group(&ps, "quant", 0.5f, false, &group));
    CHECK(group == 2);
    CHECK_OK(nnq_params_add(&ps, v, group));
    CHECK_OK(nnq_params_add(&ps, v, group)); /* twice: still one */
    CHECK(ps.n == 1);
    CHECK_OK(nnq_params_alloc(&ps));
    CHECK(ps.p[0].grad != NULL && ps.p[0].grad[0] == 0.0f);
    ps.p[0].grad[0] = 1.0f;
    ps.p[0].grad[1] = -1.0f;
    nnq_optim_config c = nnq_optim_defaults(NNQ_OPTIM_SGD);
    c.momentum = 0;
    c.nesterov = false;
    c.weight_decay = 0.5f; /* the group has no decay: ignored */
    nnq_optim o;
    CHECK_OK(nnq_optim_init(&o, &c, &ps));
    nnq_optim_step(&o, &ps, 0.2f); /* effective lr 0.1 */
    CHECK_REL(ps.p[0].data[0], 0.9f);
    CHECK_REL(ps.p[0].data[1], 2.1f);
    nnq_params_zero_grad(&ps);
    CHECK(ps.p[0].grad[0] == 0.0f && ps.p[0].grad[1] == 0.0f);
    nnq_optim_free(&o);
    /* Int tensors cannot be parameters. */
    nnq_tensor it = {0};
    CHECK_OK(nnq_tensor_alloc(&it, NNQ_DT_INT64, 1, d));
    int iv;
    CHECK_OK(nnq_graph_add_initializer(g, "shape", &it, &iv));
    CHECK_STATUS(nnq_params_add(&ps, iv, group), NNQ_ERR_UNSUPPORTED);
    nnq_params_free(&ps);
    nnq_graph_free(g);
}

/* Norm 13 clipped to 6.5: every gradient halves (PyTorch gives
 * [1.4999999, 1.9999999], 5.9999995 for these). */
static void test_clipping(void) {
    fixture f;
    fixture_init(&f);
    nnq_param *w = param_of(&f, f.w), *b = param_of(&f, f.b);
    w->grad[0] = 3;
    w->grad[1] = 4;
    b->grad[0] = 12;
    CHECK_NEAR(nnq_grad_norm(&f.ps), 13.0, 1e-12);
    CHECK_NEAR(nnq_clip_grad_norm(&f.ps, 20.0), 13.0, 1e-12);
    CHECK(w->grad[0] == 3 && w->grad[1] == 4 && b->grad[0] == 12); /* under the limit */
    CHECK_NEAR(nnq_clip_grad_norm(&f.ps, 6.5), 13.0, 1e-12);
    CHECK_REL(w->grad[0], 1.5f);
    CHECK_REL(w->grad[1], 2.0f);
    CHECK_REL(b->grad[0], 6.0f);
    CHECK_NEAR(nnq_grad_norm(&f.ps), 6.5, 1e-5);
    fixture_free(&f);
}

static void test_schedules(void) {
    nnq_schedule cs = {.kind = NNQ_SCHED_COSINE, .base_lr = 0.1f, .total_steps = 100,
                        .warmup_steps = 10};
    CHECK_REL(nnq_schedule_lr(&cs, 0), 0.01f);  /* warm-up: (0 + 1) / 10 */
    CHECK_REL(nnq_schedule_lr(&cs, 4), 0.05f);
    CHECK_REL(nnq_schedule_lr(&cs, 9), 0.1f);   /* end of warm-up */
    CHECK_REL(nnq_schedule_lr(&cs, 10), 0.1f);  /* cosine at 0 */
    CHECK_REL(nnq_schedule_lr(&cs, 55), 0.05f); /* half way: cos(pi/2) = 0 */
    /* last step: 0.05 (1 + cos(89 pi / 90)) = 3.0459e-5 */
    CHECK_NEAR(nnq_schedule_lr(&cs, 99), 0.05 * (1 + cos(89 * 3.14159265358979323846 / 90)), 1e-9);
    CHECK(nnq_schedule_lr(&cs, 99) > 0);
    CHECK(nnq_schedule_lr(&cs, 60) < nnq_schedule_lr(&cs, 50));

    nnq_schedule step = {.kind = NNQ_SCHED_STEP, .base_lr = 0.1f, .total_steps = 90,
                         .step_size = 30, .gamma = 0.1f};
    CHECK_REL(nnq_schedule_lr(&step, 0), 0.1f);
    CHECK_REL(nnq_schedule_lr(&step, 29), 0.1f);
    CHECK_REL(nnq_schedule_lr(&step, 30), 0.01f);
    CHECK_REL(nnq_schedule_lr(&step, 60), 0.001f);
    step.warmup_steps = 5; /* decays count from the end of warm-up */
    CHECK_REL(nnq_schedule_lr(&step, 2), 0.06f);
    CHECK_REL(nnq_schedule_lr(&step, 34), 0.1f);
    CHECK_REL(nnq_schedule_lr(&step, 35), 0.01f);

    nnq_schedule flat = {.kind = NNQ_SCHED_CONSTANT, .base_lr = 0.3f, .total_steps = 10};
    CHECK(nnq_schedule_lr(&flat, 0) == 0.3f && nnq_schedule_lr(&flat, 9) == 0.3f);
}

int main(void) {
    test_params_groups();
    test_optimizers();
    test_optim_errors();
    test_extra_group();
    test_clipping();
    test_schedules();
    return check_finish("test_optim");
}
