/* pipeline.c - a batch's rows through the pipeline stages: Megatron's
 * non-interleaved 1F1B schedule (PipeDream-Flush). Stage s of P runs
 *
 *   warm-up:   min(P - s - 1, n) forwards, each output sent on at once
 *   steady:    forward row k + warm, then backward row k
 *   cool-down: the last warm backwards
 *
 * so it holds at most P - s rows' activations (one slot each) instead of
 * all n, and the bubble is (P - 1) / (n + P - 1) of the step. Backwards
 * run in row order on every stage, so each parameter's gradient adds up
 * its rows in the order one rank does: the same bits as one stage.
 *
 * Messages: row k's output from stage s to s + 1 (the residual stream,
 * [T, dim], or this rank's T/tp tokens of it with sequence parallelism),
 * and dL/d(input) back. In the steady phase both neighbours send before they receive
 * (Megatron's send_forward_recv_backward against send_backward_recv_forward),
 * so those pairs go as one exchange. A row without labelled tokens has no
 * backward on any stage (every stage reads the row and knows), and its
 * gradient messages are left out on both sides.
 *
 * With one stage this is forward and backward row by row, as before. */
#include "train.h"

typedef struct {
    train_run *r;
    train_data *data;
    uint64_t first;  /* row k is row first + k of data */
    uint32_t slot0;  /* and its loss goes to r->row_losses[slot0 + k] */
    size_t T;
    float scale;
    uint32_t stage, stages;
} pipe;

/* What goes between stages for a row: this rank's tokens of the residual
 * stream, or of its gradient. */
static size_t stream_bytes(const pipe *p)
{
    return evo_transformer_rows(&p->r->tf, p->T) * p->r->model.dim * sizeof(float);
}

static int tf_slot(const pipe *p, uint32_t k) { return (int)(k % (uint32_t)p->r->tf.n_slots); }

static int has_backward(const pipe *p, uint32_t k) { return evo_transformer_labelled(&p->r->tf, tf_slot(p, k)) > 0; }

static void forward(pipe *p, uint32_t k)
{
    /* the row is read here, as its forward needs it: data holds one row */
    const evo_pack_row *row = train_data_row(p->data, p->first + k);
    double loss = evo_transformer_forward(&p->r->tf, tf_slot(p, k), row, p->T);
    if (p->stage + 1 == p->stages && p->r->comm->layout.tp_rank == 0)
        p->r->row_losses[p->slot0 + k] = loss;
}

static void recv_input(pipe *p, uint32_t k)
{
    if (p->stage > 0)
        p->r->comm->recv(p->r->comm, EVO_GROUP_PIPELINE, p->r->be, evo_transformer_input(&p->r->tf, tf_slot(p, k)),
                         stream_bytes(p), p->stage - 1);
}

static void send_output(pipe *p, uint32_t k)
{
    if (p->stage + 1 < p->stages)
        p->r->comm->send(p->r->comm, EVO_GROUP_PIPELINE, p->r->be, evo_transformer_output(&p->r->tf, tf_slot(p, k)),
                         stream_bytes(p), p->stage + 1);
}

/* Row k's output goes on; row j's output gradient comes back into tf.dx. */
static void send_output_recv_grad(pipe *p, uint32_t k, uint32_t j)
{
    evo_comm *c = p->r->comm;
    size_t bytes = stream_bytes(p);
    if (p->stage + 1 == p->stages)
        return;
    if (has_backward(p, j))
        c->exchange(c, EVO_GROUP_PIPELINE, p->r->be, evo_transformer_output(&p->r->tf, tf_slot(p, k)), p->r->tf.dx,
                    bytes, p->stage + 1);
    else
        send_output(p, k);
}

static void recv_grad(pipe *p, uint32_t j)
{
    if (p->stage + 1 < p->stages && has_backward(p, j))
        p->r->comm->recv(p->r->comm, EVO_GROUP_PIPELINE, p->r->be, p->r->tf.dx, stream_bytes(p),
                         p->stage + 1);
}

/* Row j's input gradient goes back; row k's input comes in (k past the
 * last row: nothing comes). */
static void send_grad_recv_input(pipe *p, uint32_t j, uint32_t k, uint32_t n)
{
    evo_comm *c = p->r->comm;
    size_t bytes = stream_bytes(p);
    if (p->stage == 0)
        return;
    if (has_backward(p, j) && k < n)
        c->exchange(c, EVO_GROUP_PIPELINE, p->r->be, p->r->tf.dx, evo_transformer_input(&p->r->tf, tf_slot(p, k)),
                    bytes, p->stage - 1);
    else if (has_backward(p, j))
        c->send(c, EVO_GROUP_PIPELINE, p->r->be, p->r->tf.dx, bytes, p->stage - 1);
    else if (k < n)
        recv_input(p, k);
}

static void backward(pipe *p, uint32_t j) { evo_transformer_backward(&p->r->tf, tf_slot(p, j), p->scale); }

void train_pipeline_batch(train_run *r, train_data *d, uint64_t first, uint32_t slot0, uint32_t n, size_t T,
                          float scale)
{
    const evo_layout *l = &r->comm->layout;
    pipe p = {.r = r, .data = d, .first = first, .slot0 = slot0, .T = T, .scale = scale, .stage = l->pp_rank,
              .stages = l->pp};
    uint32_t warm = l->pp - l->pp_rank - 1 < n ? l->pp - l->pp_rank - 1 : n;
    for (uint32_t k = 0; k < warm; k++) {
        recv_input(&p, k);
        forward(&p, k);
        send_output(&p, k);
    }
    if (warm < n)
        recv_input(&p, warm);
    for (uint32_t j = 0; j + warm < n; j++) {
        uint32_t k = j + warm;
        forward(&p, k);
        send_output_recv_grad(&p, k, j);
        backward(&p, j);
        send_grad_recv_input(&p, j, k + 1, n);
    }
    for (uint32_t j = n - warm; j < n; j++) {
        recv_grad(&p, j);
        backward(&p, j);
        send_grad_recv_input(&p, j, n, n);
    }
}

void train_pipeline_forward(train_run *r, train_data *d, uint64_t row, uint32_t slot, size_t T)
{
    pipe p = {.r = r, .data = d, .first = row, .slot0 = slot, .T = T, .stage = r->comm->layout.pp_rank,
              .stages = r->comm->layout.pp};
    recv_input(&p, 0);
    forward(&p, 0);
    send_output(&p, 0);
}
