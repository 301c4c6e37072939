/* model.h - the InternLM v1 / LLaMA family model as evo trains it: its
 * shapes, its tensor table and what it costs.
 *
 * Parameters live in one flat buffer described by the tensor table (name,
 * shape, offset): optimizer state and gradients mirror it, and sharding for
 * ZeRO, tensor parallelism or checkpoint shards is slicing that table.
 *
 * Per layer (pre-norm, InternEvo's block):
 *   h = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1))),  n1 = attn_norm(x)
 *   y = h + down(silu(gate(n2)) * up(n2)),             n2 = mlp_norm(h)
 * with q, k, v, o biases unless model.no_bias (LLaMA, InternLM2), untied
 * embedding and head, and a final norm. Names say what a tensor is:
 * blocks.3.mlp.down.weight is the down projection whatever InternEvo's
 * w2/w3 naming of the day was. */
#ifndef EVO_MODEL_H
#define EVO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "formats/config.h"

typedef enum {
    EVO_INIT_NORMAL, /* N(0, std) */
    EVO_INIT_ONES,   /* norm weights */
    EVO_INIT_ZEROS   /* biases */
} evo_init;

typedef struct {
    char name[48];
    uint32_t ndim;
    uint64_t shape[2];
    uint64_t offset, numel; /* in elements of the flat buffer */
    evo_init init;
    double std;
    /* Element (r, c) of this tensor is element src_offset + r src_stride + c
     * of the whole model's flat buffer: the same place for a whole model,
     * a piece's place for a rank's part (ckpt_layout.h, evo_model_part).
     * Initialisation and loading go through it, so a part holds exactly
     * the values the whole model would. */
    uint64_t src_offset, src_stride;
    /* whole on every tensor rank (the norms of a part of tp > 1): its
     * gradient is the same on all of them, and counts once in a norm */
    int tp_replicated;
} evo_tensor_info;

typedef struct {
    uint32_t vocab, dim, heads, kv_heads, head_dim, layers, ffn;
    int bias;
    double eps, rope_base;
    evo_tensor_info *tensors;
    size_t n_tensors;
    uint64_t n_params;
    /* Which part of the model this is: tensor rank tp_rank of tp, pipeline
     * stage pp_rank of pp, holding chunk c's layers [first[c], end[c]) for
     * each of its chunks (evo_model_stage_layers), the embedding on stage
     * 0, the final norm and head on the last. The shapes above stay the
     * whole model's. A whole model is the part of 1 x 1: every chunk, so
     * every layer; its chunks say how a pipeline cuts it. */
    uint32_t tp, tp_rank, pp, pp_rank, chunks;
    uint32_t first[EVO_MAX_CHUNKS], end[EVO_MAX_CHUNKS];
} evo_model;

/* InternEvo's partition_uniform: the layers in `chunks` blocks of
 * layers / chunks (model.num_chunks), each block cut over the pp stages
 * into runs of equal length, the remainder to the last stages. Stage p's
 * run of block c is [*first, *end). Chunk c of every stage comes after
 * chunk c - 1 of the last stage: the interleaved pipeline's virtual
 * stages. */
void evo_model_stage_layers(uint32_t layers, uint32_t chunks, uint32_t pp, uint32_t p, uint32_t c, uint32_t *first,
                            uint32_t *end);
/* The pipeline stage holding layer l. */
uint32_t evo_model_layer_stage(uint32_t layers, uint32_t chunks, uint32_t pp, uint32_t l);
/* The layers the part holds, all chunks together. */
uint32_t evo_model_part_layers(const evo_model *m);
/* The elements of the model's largest tensor (what one host buffer for
 * any of them holds). */
uint64_t evo_model_largest_tensor(const evo_model *m);

/* Where element j (row-major) of tensor t is in the whole model's flat
 * buffer. */
static inline uint64_t evo_tensor_src(const evo_tensor_info *t, uint64_t j)
{
    uint64_t cols = t->ndim > 1 ? t->shape[1] : t->numel;
    return t->src_offset + j / cols * t->src_stride + j % cols;
}

/* The shapes and tensor table a resolved config describes. */
int evo_model_describe(evo_model *m, const evo_config *c, evo_err *e);
void evo_model_free(evo_model *m);

/* InternEvo's hidden size of the MLP: int(dim * mlp_ratio) rounded up to
 * a multiple of multiple_of (11008 for 7B). */
uint32_t evo_model_ffn_size(uint32_t dim, double mlp_ratio, uint32_t multiple_of);

/* Training FLOPs per token by InternEvo's (Megatron's) formula, which
 * counts full seq_len attention: (recompute ? 4 : 3) x forward, forward =
 * 2 x (matmul parameters) + 2 x attention (2 x seq_len x dim per layer). */
double evo_model_train_flops_per_token(const evo_model *m, uint32_t seq_len, double recompute_share);

#endif
