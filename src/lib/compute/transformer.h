/* transformer.h - the model of model.h run on a backend: parameters,
 * gradients and activations in one arena, the forward pass over one packed
 * row to its mean loss, and the backward pass into the parameter gradients.
 *
 *   evo_transformer tf;
 *   evo_transformer_init(&tf, &model, be, &(evo_transformer_opts){.T_max = packed_length});
 *   evo_transformer_init_params(&tf, seed);
 *   evo_transformer_zero_grad(&tf);
 *   for each of micro_num rows:                     (InternEvo's accumulation)
 *       loss = evo_transformer_forward(&tf, 0, 0, &row, packed_length);
 *       evo_transformer_backward(&tf, 0, 1.0f / micro_num);
 *
 * The model may be one pipeline stage's part (evo_model_part): a run of
 * layers in each of its chunks (one chunk unless interleaved), the
 * embedding before the first stage's chunk 0, the final norm, head and
 * loss after the last stage's last chunk. A chunk that is not the model's
 * first (a virtual stage) takes its input in evo_transformer_input()
 * (received from the stage before), one that is not the last leaves its
 * output in evo_transformer_output(); in the backward, such a chunk takes
 * dL/d(output) in tf->dx, and every chunk but the first leaves dL/d(input)
 * there. A schedule keeps several rows' chunks in flight (1F1B): each has
 * a slot of saved activations.
 *
 * Everything the forward saves for the backward lives in the arena, sized
 * once for T tokens: a step allocates nothing (fresh pages are expensive on
 * the VMs this runs on, and a GPU backend must not cudaMalloc per step). */
#ifndef EVO_TRANSFORMER_H
#define EVO_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "compute/backend.h"
#include "formats/model.h"
#include "formats/pack.h"

/* What the forward keeps per layer for the backward (device pointers):
 * activations in the backend's dtype, statistics in fp32. */
typedef struct {
    evo_dval *n1;            /* attn_norm(x) [T,d] */
    float *rstd1;            /* its 1/rms [T] */
    evo_dval *q, *k, *v;     /* after RoPE for q, k: [T,d], [T,kvd], [T,kvd] */
    evo_dval *att;           /* attention output [T,d] */
    float *lse;              /* its log-sum-exp [T,H] */
    evo_dval *h;             /* x + o(att) [T,d] */
    evo_dval *n2;            /* mlp_norm(h) [T,d] */
    float *rstd2;            /* [T] */
    evo_dval *gate, *up, *act; /* [T,ffn]; act = silu(gate) up */
} evo_layer_acts;

/* Where a layer's tensors start in the flat buffers (params and grads
 * alike); a bias is NO_TENSOR when the model has none. */
#define EVO_NO_TENSOR UINT64_MAX
typedef struct {
    uint64_t attn_norm, q, q_bias, k, k_bias, v, v_bias, o, o_bias, mlp_norm, gate, up, down;
} evo_layer_offsets;

/* The sums a tensor-parallel rank needs over its tensor group (the
 * caller's comm; the compute layer knows no ranks). Megatron's split
 * (InternEvo's mtp, ckpt_layout.h): q, k, v, gate, up and head are cut by
 * output rows, so each rank computes its heads, its share of the MLP and
 * its columns of the logits from the whole input; o and down are cut by
 * input columns, so each rank's output is a partial sum, all-reduced; the
 * embedding is cut on the hidden dimension, its columns all-gathered; the
 * backward all-reduces the input gradients of the row-cut layers. */
typedef struct {
    void *ctx;
    /* Over n values of dtype dt (the backend's for activations, fp32 for
     * the loss's parts), in backend memory:
     * buf[i] = the sum over the tensor ranks of buf[i] */
    void (*allreduce)(void *ctx, evo_dtype dt, void *buf, size_t n);
    /* out [tp, n] = every tensor rank's in [n], in rank order */
    void (*allgather)(void *ctx, evo_dtype dt, void *out, const void *in, size_t n);
    /* out [n] = this rank's n of the sum over the ranks of in [tp, n] */
    void (*reduce_scatter)(void *ctx, evo_dtype dt, void *out, const void *in, size_t n);
    /* Megatron's sequence parallelism (InternEvo's msp): the residual
     * stream, the norms and their inputs hold T / tp tokens of the row on
     * each rank, rank r tokens [r T/tp, (r+1) T/tp); the row-cut layers'
     * inputs are all-gathered to the whole row, the column-cut layers'
     * partial outputs reduce-scattered back to the rank's tokens (the same
     * bytes as one all-reduce, and a tp-th of the activations kept). The
     * norms' weight gradients are then partial: the caller sums them over
     * the group (evo_tensor_info.tp_replicated). */
    int sequence_parallel;
} evo_tensor_group;

/* One row in flight: the row (uploaded by forward) and what the forward
 * saved for its backward. */
typedef struct {
    size_t T;
    int n_seg;
    int32_t n_labelled; /* labelled tokens of the row */
    int32_t *tokens, *labels, *positions, *cu_seqlens;
    /* x[i] is the residual stream entering the chunk's layer i, x[its
     * layers] the one leaving it; x[i+1] = y of layer i (this rank's tokens
     * of it with sequence parallelism, as n1, h, n2, nf) */
    evo_dval **x;
    evo_layer_acts *acts; /* per layer: own[i], or the shared set of a recomputed layer */
    evo_layer_acts *own;
    uint32_t chunk;       /* whose layers the slot holds */
    evo_dval *nf;                 /* final norm [T,d], last stage only, as: */
    float *rstdf, *losses, *ce_lse; /* [T] each */
} evo_microbatch;

/* The backward completes a model part's parameter gradients a unit at a
 * time: the final norm with the head first (last stage), then each layer
 * from the last, then the embedding (first stage); a unit is the span
 * [offset, offset + numel) of the flat buffers its tensors take. */
typedef struct {
    uint64_t offset, numel;
} evo_grad_unit;

/* Unit u of part m: u < m->layers is layer u (numel 0 where the part has
 * not got it), m->layers the embedding, m->layers + 1 the final norm and
 * the head. */
evo_grad_unit evo_transformer_grad_unit(const evo_model *m, uint32_t u);
/* The largest unit of part m: the window a gradient sink takes. */
uint64_t evo_transformer_grad_window(const evo_model *m);

/* Where the parameter gradients go (evo_transformer_opts.grad_sink). By
 * default tf->grads holds them all and micro-batches add up there. With a
 * sink the backward keeps one unit's at a time in a window of the largest
 * unit's size (evo_transformer_grad_window): it zeroes the window, adds
 * the unit's gradient of one row into it and hands it to flush, which
 * must be done with it when it returns. ZeRO-2: flush reduces it to the
 * ranks keeping its tensors, so none holds the whole. flush is called for
 * a row without labelled tokens too (a window of zeros), as a sink's
 * reductions are collective. */
typedef struct {
    void *ctx;
    void (*flush)(void *ctx, float *grad, evo_grad_unit unit);
} evo_grad_sink;

/* A tensor rank's widths (the whole model's with tp 1). */
typedef struct {
    size_t d, q, kv, ffn, vocab; /* residual stream, q and attention output, k and v, MLP, logits */
    int heads, kv_heads;
} evo_widths;

typedef struct {
    const evo_model *m;
    const evo_backend *be;
    size_t T_max;          /* tokens per row the arena holds */
    float label_smoothing;
    void *arena;           /* the one allocation; everything below points into it */
    /* n_params each, laid out by the tensor table: the fp32 gradients
     * (with a sink, n_grads of them: the window of the unit at grad_base);
     * what the layers read, the weights in the backend's dtype; and in
     * fp32 the master weights, which the weights then are (params ==
     * weights). In another dtype the fp32 masters are not here but the
     * optimizer's, each rank keeping those it updates (ZeRO-1), and it
     * writes the weights as their working copy after every step. */
    float *params, *grads;
    evo_dval *weights;
    uint64_t n_grads, grad_base;
    evo_grad_sink sink; /* zeros: none */
    uint64_t embedding, norm, head; /* EVO_NO_TENSOR on a stage without them */
    uint32_t n_layers;              /* the stage's, all chunks */
    evo_layer_offsets *layer;       /* [n_layers], chunk after chunk */
    evo_grad_unit *layer_unit;      /* [n_layers], their spans; and those of the others: */
    evo_grad_unit embedding_unit, head_unit;
    uint32_t chunks, first[EVO_MAX_CHUNKS], end[EVO_MAX_CHUNKS]; /* the model's layers each chunk runs */
    uint32_t chunk_at[EVO_MAX_CHUNKS + 1]; /* where each chunk starts in layer[] */
    uint32_t max_chunk;                    /* layers of the longest chunk: what a slot holds */
    int first_stage, last_stage;
    evo_widths w;
    evo_tensor_group tensors; /* zeros with tp 1 */
    uint32_t n_recompute;     /* the model's first layers, recomputed in the backward */
    evo_layer_acts recompute; /* what they keep, one layer at a time */
    evo_microbatch *slots;
    int n_slots;
    /* the head's logits of one piece of loss_rows tokens [loss_rows,
     * vocab/tp] (last stage): made, used and dropped by the loss, and made
     * again by its backward, so no [T, vocab] logits are kept. After a
     * forward they hold its last piece: the whole row when T <= loss_rows */
    evo_dval *logits;
    size_t loss_rows;
    /* backward workspace */
    evo_dval *dx, *dn, *dq, *dk, *dv, *dgate, *dup, *dact;
    float *scratch, *dloss;
    /* tensor parallel: the embedding's columns [T, d/tp] and all of them
     * [tp, T, d/tp]; the loss's parts [3, T] and every rank's [tp, 3, T];
     * sequence parallel: whole rows [T, d] gathered or to be scattered,
     * and this rank's tokens of an input gradient */
    evo_dval *emb_mine, *emb_all, *row_a, *row_b, *dn_mine;
    float *ce_parts, *ce_all;
} evo_transformer;

/* Tokens of a row of T that this rank's residual stream holds. */
static inline size_t evo_transformer_rows(const evo_transformer *tf, size_t T)
{
    return tf->tensors.sequence_parallel ? T / tf->m->tp : T;
}

typedef struct {
    size_t T_max;          /* tokens per row the arena holds */
    float label_smoothing;
    int n_slots;           /* rows in flight (0: 1) */
    /* model.checkpoint: the share of the model's layers (the first ones)
     * whose activations are not kept but recomputed in the backward, from
     * their input; the same numbers, less memory, a third more compute */
    double recompute;
    const evo_tensor_group *tensors; /* the tensor group's sums (NULL with tp 1) */
    size_t loss_rows; /* tokens per piece of the head and loss (0: evo_transformer_loss_rows) */
    const evo_grad_sink *grad_sink; /* NULL: tf->grads holds every gradient */
} evo_transformer_opts;

/* The head's fp32 logits of one piece of the loss take at most this many
 * bytes, which sets how many tokens a piece holds. */
enum { EVO_LOSS_PIECE_BYTES = 64 << 20 };
/* Tokens per piece of the loss for a (tensor rank's) vocabulary: as many
 * as fit EVO_LOSS_PIECE_BYTES, at least 1; with tp > 1 whole rows
 * (SIZE_MAX), as the vocabulary-parallel loss combines whole rows. */
size_t evo_transformer_loss_rows(size_t vocab, uint32_t tp);

/* Sizes and allocates the arena. */
void evo_transformer_init(evo_transformer *tf, const evo_model *m, const evo_backend *be,
                          const evo_transformer_opts *o);
void evo_transformer_free(evo_transformer *tf);

/* The initial values of tensor i of m (host, numel floats), as the table
 * says (normal(0, std), ones, zeros). The normals come from a
 * counter-based generator: element i of the whole model's flat buffer is
 * a function of (seed, i) only, so the values do not depend on thread
 * count, on tensor order, or on which rank fills a shard. */
void evo_transformer_init_tensor(const evo_model *m, uint64_t seed, size_t i, float *host);
/* n fp32 values from the host into the weights at flat offset: params in
 * fp32, else rounded to the dtype (evo_dtype_cast, the rounding of the
 * working copy the optimizer step writes). */
void evo_transformer_set_weights(evo_transformer *tf, uint64_t offset, const float *host, size_t n);
/* Every tensor's initial values into the weights (set_weights). */
void evo_transformer_init_params(evo_transformer *tf, uint64_t seed);
void evo_transformer_zero_grad(evo_transformer *tf);

/* Runs the first T tokens of row (T <= T_max; cu_seqlens must end at T)
 * in slot and, on the last stage, returns InternEvo's loss of the row: the
 * cross-entropy (with the configured label smoothing) averaged over its
 * labelled tokens; 0 for a row without any (whose backward then adds
 * nothing: evo_transformer_labelled says so on every stage). Returns 0
 * on other stages. */
double evo_transformer_forward(evo_transformer *tf, int slot, uint32_t chunk, const evo_pack_row *row, size_t T);
/* Adds scale * d(loss of the slot's row)/d(params of its chunk) into
 * tf->grads, or hands it to the sink unit by unit. */
void evo_transformer_backward(evo_transformer *tf, int slot, float scale);
/* The labelled tokens of the slot's row, known on every stage. */
static inline int32_t evo_transformer_labelled(const evo_transformer *tf, int slot)
{
    return tf->slots[slot].n_labelled;
}
/* Where a stage's input goes before forward, and its output is after:
 * [evo_transformer_rows(T), dim] in backend memory. */
static inline evo_dval *evo_transformer_input(evo_transformer *tf, int slot) { return tf->slots[slot].x[0]; }
static inline evo_dval *evo_transformer_output(evo_transformer *tf, int slot)
{
    const evo_microbatch *mb = &tf->slots[slot];
    return mb->x[tf->end[mb->chunk] - tf->first[mb->chunk]];
}

#endif
