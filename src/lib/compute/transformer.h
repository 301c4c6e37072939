/* transformer.h - the model of model.h run on a backend: parameters,
 * gradients and activations in one arena, the forward pass over one packed
 * row to its mean loss, and the backward pass into the parameter gradients.
 *
 *   evo_transformer tf;
 *   evo_transformer_init(&tf, &model, be, packed_length, label_smoothing);
 *   evo_transformer_init_params(&tf, seed);
 *   evo_transformer_zero_grad(&tf);
 *   for each of micro_num rows:                     (InternEvo's accumulation)
 *       loss = evo_transformer_forward(&tf, &row, packed_length);
 *       evo_transformer_backward(&tf, 1.0f / micro_num);
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

/* What the forward keeps per layer for the backward (device pointers). */
typedef struct {
    float *n1, *rstd1;   /* attn_norm(x) [T,d], its 1/rms [T] */
    float *q, *k, *v;    /* after RoPE for q, k: [T,d], [T,kvd], [T,kvd] */
    float *att, *lse;    /* attention output [T,d], log-sum-exp [T,H] */
    float *h;            /* x + o(att) [T,d] */
    float *n2, *rstd2;   /* mlp_norm(h) [T,d], [T] */
    float *gate, *up, *act; /* [T,ffn]; act = silu(gate) up */
} evo_layer_acts;

/* Where a layer's tensors start in the flat buffers (params and grads
 * alike); a bias is NO_TENSOR when the model has none. */
#define EVO_NO_TENSOR UINT64_MAX
typedef struct {
    uint64_t attn_norm, q, q_bias, k, k_bias, v, v_bias, o, o_bias, mlp_norm, gate, up, down;
} evo_layer_offsets;

typedef struct {
    const evo_model *m;
    const evo_backend *be;
    size_t T_max;          /* tokens per row the arena holds */
    float label_smoothing;
    void *arena;           /* the one allocation; everything below points into it */
    float *params, *grads; /* n_params each, laid out by the tensor table */
    uint64_t embedding, norm, head;
    evo_layer_offsets *layer;

    /* the current row (uploaded by forward) */
    size_t T;
    int n_seg;
    int32_t *tokens, *labels, *positions, *cu_seqlens, *count;
    /* activations: x[l] is the residual stream entering layer l, x[layers]
     * the one entering the final norm; x[l+1] = y of layer l */
    float **x;
    evo_layer_acts *acts;
    float *nf, *rstdf, *logits, *losses, *ce_lse; /* final norm, head, loss */
    /* backward workspace */
    float *dx, *dn, *dq, *dk, *dv, *dgate, *dup, *dact, *scratch, *dloss;
    int32_t n_labelled; /* labelled tokens of the current row */
} evo_transformer;

/* Sizes and allocates the arena for rows of up to T_max tokens. */
void evo_transformer_init(evo_transformer *tf, const evo_model *m, const evo_backend *be,
                          size_t T_max, float label_smoothing);
void evo_transformer_free(evo_transformer *tf);

/* Initialises every tensor as the table says (normal(0, std), ones,
 * zeros). The normals come from a counter-based generator: element i of
 * the flat buffer is a function of (seed, i) only, so the values do not
 * depend on thread count, on tensor order, or on which rank fills a shard. */
void evo_transformer_init_params(evo_transformer *tf, uint64_t seed);
void evo_transformer_zero_grad(evo_transformer *tf);

/* Runs the first T tokens of row (T <= T_max; cu_seqlens must end at T)
 * and returns InternEvo's loss of the row: the cross-entropy (with the
 * configured label smoothing) averaged over its labelled tokens; 0 for a row
 * without any (whose backward then adds nothing). The logits stay in
 * tf->logits [T,V] until backward overwrites them. */
double evo_transformer_forward(evo_transformer *tf, const evo_pack_row *row, size_t T);
/* Adds scale * d(loss of the last forward)/d(params) into tf->grads. */
void evo_transformer_backward(evo_transformer *tf, float scale);

#endif
