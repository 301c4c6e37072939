/* ckpt_layout.h - how a checkpoint is cut into shards for tensor (tp),
 * pipeline (pp) and ZeRO (zero) parallelism, and a checkpoint of any
 * layout opened as one model (evo-ckpt(5), SHARDED CHECKPOINTS).
 *
 * model_tp{t}_pp{p}.evo holds the pieces of the weights that tensor rank t
 * of pipeline stage p owns, under their global names (blocks.{i} keeps
 * the model's layer number, so no reader renumbers layers):
 *
 *   tensor parallel, Megatron's column/row split (InternEvo's mtp):
 *     q, k, v, gate, up, head and the q/k/v biases: rows (dim 0) split,
 *       rank t holding rows [t R/tp, (t+1) R/tp)
 *     o, down: columns (dim 1) split
 *     embedding [V, d]: the hidden dim 1 split (InternEvo's
 *       embed_split_hidden)
 *     o's bias: whole, on rank 0 only (a row-parallel layer adds it once,
 *       after the all-reduce)
 *     the norms: whole on every rank
 *   pipeline: layers cut uniformly, the remainder to the last stages
 *     (InternEvo's partition_uniform, evo_model_stage_layers: with
 *     model.num_chunks C, each of C blocks of layers is cut so, and a stage
 *     holds a run of every block); the embedding on stage 0, the final
 *     norm and the head on the last.
 *
 * optimizer_tp{t}_pp{p}_zo{z}.evo holds AdamW's moments of the pieces of
 * shard (t, p) that ZeRO rank z owns: whole pieces, dealt out as
 * InternEvo's optimizer does (largest first, each to the least-loaded
 * rank, ties to the lower rank), adam.m.<name> of them in model order,
 * then adam.v.<name>. */
#ifndef EVO_CKPT_LAYOUT_H
#define EVO_CKPT_LAYOUT_H

#include <stdint.h>

#include "formats/ckpt.h"

typedef struct {
    uint32_t tp, pp, zero; /* zero 0: no optimizer files (a model-only checkpoint) */
} evo_ckpt_layout;

typedef enum {
    EVO_SPLIT_NONE,  /* whole on every tensor rank */
    EVO_SPLIT_DIM0,  /* rows split */
    EVO_SPLIT_DIM1,  /* columns split */
    EVO_SPLIT_RANK0  /* whole on tensor rank 0 only */
} evo_split;

typedef struct {
    evo_split split;
    uint32_t stage; /* the pipeline stage holding it */
} evo_ckpt_place;

/* Where every tensor of m goes in layout l (m->n_tensors places), after
 * checking that l fits m: tp divides the heads, kv heads, MLP width and
 * vocabulary; every stage gets a layer. */
int evo_ckpt_layout_places(const evo_model *m, const evo_ckpt_layout *l, evo_ckpt_place *places, evo_err *e);
/* Whether tensor rank t holds a piece of a tensor split as s. */
static inline int evo_ckpt_holds(evo_split s, uint32_t t) { return s != EVO_SPLIT_RANK0 || t == 0; }
/* The shape of one rank's piece of tensor ti. */
void evo_ckpt_piece_shape(const evo_tensor_info *ti, evo_split s, uint32_t tp, uint64_t shape[2]);
/* Deals n tensors of numel[i] elements to zero ranks: rank[i]. */
void evo_ckpt_zero_ranks(const uint64_t *numel, size_t n, uint32_t zero, uint32_t *rank);
/* The deal of a whole model's tensors (one tensor and pipeline shard):
 * owner[i] for every tensor of m; returns the elements rank z owns. */
uint64_t evo_ckpt_zero_owned(const evo_model *m, uint32_t zero, uint32_t z, uint32_t *owner);

/* The part of model m that tensor rank t of pipeline stage p holds in
 * layout l, as a model of its own (model.h): the tensor table of
 * model_tp{t}_pp{p}.evo (its pieces in model order, under their global
 * names, packed from offset 0), each piece knowing its place in m. */
int evo_model_part(evo_model *part, const evo_model *m, const evo_ckpt_layout *l, uint32_t t, uint32_t p,
                   evo_err *e);

/* Whether a checkpoint's file name is a model or optimizer shard's. */
int evo_ckpt_is_shard(const char *name);

/* --- a checkpoint of any layout ------------------------------------------------ */

enum { EVO_CKPT_WEIGHTS, EVO_CKPT_ADAM_M, EVO_CKPT_ADAM_V };

/* One rank's piece of a tensor: its table entry in a mapped file. */
typedef struct {
    const evo_ckpt_file *file;
    const evo_ckpt_tensor *t;
} evo_ckpt_piece;

typedef struct {
    char *dir;
    uint64_t step;
    evo_ckpt_manifest manifest;
    evo_config cfg; /* config.ini */
    evo_model model;
    evo_ckpt_layout layout; /* from the file names */
    evo_ckpt_place *places;
    evo_ckpt_file *files; /* the model files (p tp + t), then the optimizer files ((p tp + t) zero + z) */
    size_t n_files;
    evo_dtype dtype[2];      /* of the model files, of the optimizer files */
    evo_ckpt_piece *pieces; /* [(kind n_tensors + i) tp + t]; file NULL where rank t holds none */
} evo_ckpt_shards;

enum { EVO_CKPT_CHECKSUMS = 1 };

/* Opens a complete checkpoint: the marker's files (sizes; with
 * EVO_CKPT_CHECKSUMS every checksum, of the marker and of the sections),
 * config.ini, the layout the file names make, every file's meta against
 * its name, and every piece of every tensor of the configured model,
 * exactly once, with its shape. Errors name the file and the tensor. */
int evo_ckpt_shards_open(evo_ckpt_shards *s, const char *dir, unsigned flags, evo_err *e);
void evo_ckpt_shards_close(evo_ckpt_shards *s);
/* The tensor called name: kind and model index; 0 if there is none. */
int evo_ckpt_shards_lookup(const evo_ckpt_shards *s, const char *name, int *kind, size_t *i);
static inline const evo_ckpt_piece *evo_ckpt_shards_piece(const evo_ckpt_shards *s, int kind, size_t i, uint32_t t)
{
    return &s->pieces[((size_t)kind * s->model.n_tensors + i) * s->layout.tp + t];
}
static inline evo_dtype evo_ckpt_shards_dtype(const evo_ckpt_shards *s, int kind)
{
    return s->dtype[kind != EVO_CKPT_WEIGHTS];
}
/* Tensor i of a kind, its pieces merged, into out: numel values of the
 * stored dtype, or of fp32. */
void evo_ckpt_shards_read(const evo_ckpt_shards *s, int kind, size_t i, void *out);
void evo_ckpt_shards_read_f32(const evo_ckpt_shards *s, int kind, size_t i, float *out);
/* Piece t of tensor i in a layout of tp tensor ranks (evo_ckpt_place's
 * split; tp 1, t 0: the whole), as fp32, read from the stored pieces that
 * overlap it and no others: what one rank of another layout loads. */
void evo_ckpt_shards_read_piece_f32(const evo_ckpt_shards *s, int kind, size_t i, uint32_t t, uint32_t tp,
                                    float *out);
/* Writes the tensor files of s's tensors laid out as l (the optimizer
 * files when s has them) into w's directory, with the same dtypes and
 * step, and adds them to its marker. */
int evo_ckpt_shards_write(const evo_ckpt_shards *s, const evo_ckpt_layout *l, evo_ckpt_writer *w, evo_err *e);

#endif
