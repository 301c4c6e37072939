/* pipeline.c - a batch's rows through the pipeline stages: Megatron's 1F1B
 * schedule (PipeDream-Flush), interleaved when every stage holds v model
 * chunks (model.num_chunks: chunk c of stage s is virtual stage c p + s of
 * p v). Rank s of p runs the n v (row, chunk) pairs of its stage in the
 * order
 *
 *   forward k:  chunk (k mod p v) div p of row (k div p v) p + k mod p
 *   backward k: the same row, chunk v - 1 - (k mod p v) div p
 *
 * (v = 1: row k) as
 *
 *   warm-up:   W forwards, W = min(p - s - 1, n) for v = 1, else
 *              min(2 (p - s - 1) + (v - 1) p, n v) (Megatron's)
 *   steady:    forward k + W, then backward k
 *   cool-down: the last W backwards
 *
 * so it holds W + 1 (row, chunk) activations at most instead of all n v;
 * the bubble is (p - 1) / (n + p - 1) of the step, about v times less when
 * interleaved. Each chunk's backwards run in row order, so each
 * parameter's gradient adds up its rows in the order one rank does: the
 * same bits as one stage.
 *
 * Messages: a chunk's output goes to the next virtual stage (the next
 * rank; the last rank's goes to rank 0's next chunk), the residual stream
 * [T, dim] or this rank's T/tp tokens of it with sequence parallelism; its
 * input gradient back (tag 1). Sends do not wait (comm.h), receives wait
 * for what the next step needs: any order of steps that the data allow
 * runs without two ranks waiting on each other. A row without labelled
 * tokens has no gradient on any stage (every stage reads the row and
 * knows), and no gradient messages; with sharded gradients its backward
 * still hands each unit's zeros to the data-parallel reductions, which the
 * other data-parallel ranks' rows make. */
#include <stdlib.h>

#include "base/error.h"
#include "train.h"

typedef struct {
    train_run *r;
    train_data *data;
    uint64_t first; /* row j is row first + j of data */
    uint32_t slot0; /* and its loss goes to r->row_losses[slot0 + j] */
    size_t T;
    float scale;
    uint32_t s, p, v; /* stage, stages, chunks */
    int *slot;        /* [n v]: the transformer slot of (row j, chunk c) at j v + c, -1: none */
    int *free_slots, n_free;
} pipe;

/* What goes between stages for a row: this rank's tokens of the residual
 * stream, or of its gradient. */
static size_t stream_bytes(const pipe *p)
{
    return evo_dval_bytes(p->r->be, evo_transformer_rows(&p->r->tf, p->T) * p->r->model.dim);
}

static int first_virtual(const pipe *p, uint32_t c) { return p->s == 0 && c == 0; }
static int last_virtual(const pipe *p, uint32_t c) { return p->s + 1 == p->p && c + 1 == p->v; }

static void forward(pipe *p, uint32_t j, uint32_t c)
{
    evo_comm *comm = p->r->comm;
    evo_transformer *tf = &p->r->tf;
    int slot = p->slot[j * p->v + c] = p->free_slots[--p->n_free];
    if (!first_virtual(p, c))
        comm->recv(comm, EVO_GROUP_PIPELINE, p->r->be, evo_transformer_input(tf, slot), stream_bytes(p),
                   (p->s + p->p - 1) % p->p, EVO_TAG_TO_NEXT);
    /* the row is read here, as its forward needs it: data holds one row */
    double loss = evo_transformer_forward(tf, slot, c, train_data_row(p->data, p->first + j), p->T);
    if (last_virtual(p, c) && comm->layout.tp_rank == 0)
        p->r->row_losses[p->slot0 + j] = loss;
    if (!last_virtual(p, c))
        comm->send(comm, EVO_GROUP_PIPELINE, p->r->be, evo_transformer_output(tf, slot), stream_bytes(p),
                   (p->s + 1) % p->p, EVO_TAG_TO_NEXT);
}

static void backward(pipe *p, uint32_t j, uint32_t c)
{
    evo_comm *comm = p->r->comm;
    evo_transformer *tf = &p->r->tf;
    int slot = p->slot[j * p->v + c], labelled = evo_transformer_labelled(tf, slot) != 0;
    if (labelled && !last_virtual(p, c))
        comm->recv(comm, EVO_GROUP_PIPELINE, p->r->be, tf->dx, stream_bytes(p), (p->s + 1) % p->p, EVO_TAG_TO_PREV);
    evo_transformer_backward(tf, slot, p->scale); /* unlabelled: only a gradient sink's reductions */
    if (labelled && !first_virtual(p, c))
        comm->send(comm, EVO_GROUP_PIPELINE, p->r->be, tf->dx, stream_bytes(p), (p->s + p->p - 1) % p->p,
                   EVO_TAG_TO_PREV);
    p->free_slots[p->n_free++] = slot;
}

/* Step k's row and chunk, forward or backward. */
static void step_of(const pipe *p, uint32_t k, int back, uint32_t *j, uint32_t *c)
{
    uint32_t in_group = k % (p->p * p->v);
    *c = in_group / p->p;
    if (back)
        *c = p->v - 1 - *c;
    *j = k / (p->p * p->v) * p->p + k % p->p;
}

/* The forwards stage s runs before its first backward. */
static uint32_t warmup(uint32_t s, uint32_t p, uint32_t v, uint32_t n)
{
    uint32_t w = v == 1 ? p - s - 1 : 2 * (p - s - 1) + (v - 1) * p;
    return w < n * v ? w : n * v;
}

uint32_t train_pipeline_in_flight(uint32_t s, uint32_t p, uint32_t v, uint32_t n)
{
    uint32_t w = warmup(s, p, v, n) + 1;
    return w < n * v ? w : n * v;
}

void train_pipeline_batch(train_run *r, train_data *d, uint64_t first, uint32_t slot0, uint32_t n, size_t T,
                          float scale)
{
    const evo_layout *l = &r->comm->layout;
    pipe p = {.r = r, .data = d, .first = first, .slot0 = slot0, .T = T, .scale = scale, .s = l->pp_rank,
              .p = l->pp, .v = r->tf.chunks};
    if (p.v > 1 && n % p.p)
        evo_fatal("the interleaved pipeline needs a multiple of parallel.pipeline.size %u rows a batch, and this "
                  "one has %u (data.rampup_batch_size?)",
                  p.p, n);
    uint32_t total = n * p.v, warm = warmup(p.s, p.p, p.v, n), j, c;
    p.slot = evo_malloc(total * sizeof *p.slot);
    p.free_slots = evo_malloc((size_t)r->tf.n_slots * sizeof *p.free_slots);
    for (int i = r->tf.n_slots; i-- > 0;)
        p.free_slots[p.n_free++] = i;
    for (uint32_t k = 0; k < total; k++) { /* forward k; from the steady phase on, backward k - warm */
        step_of(&p, k, 0, &j, &c);
        forward(&p, j, c);
        if (k >= warm) {
            step_of(&p, k - warm, 1, &j, &c);
            backward(&p, j, c);
        }
    }
    for (uint32_t k = total - warm; k < total; k++) {
        step_of(&p, k, 1, &j, &c);
        backward(&p, j, c);
    }
    r->comm->wait_sent(r->comm);
    free(p.slot);
    free(p.free_slots);
}

void train_pipeline_forward(train_run *r, train_data *d, uint64_t row, uint32_t slot, size_t T)
{
    int free_slot = 0;
    pipe p = {.r = r, .data = d, .first = row, .slot0 = slot, .T = T, .s = r->comm->layout.pp_rank,
              .p = r->comm->layout.pp, .v = r->tf.chunks, .free_slots = &free_slot, .n_free = 1};
    int slots[EVO_MAX_CHUNKS];
    p.slot = slots;
    for (uint32_t c = 0; c < p.v; c++) {
        forward(&p, 0, c);
        p.free_slots[p.n_free++] = p.slot[c];
    }
    r->comm->wait_sent(r->comm);
}
