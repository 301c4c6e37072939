/* dryrun.c - what a config means before a GPU is touched. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "formats/ckpt_layout.h"
#include "formats/model.h"
#include "compute/transformer.h"
#include "train.h"

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

static uint32_t dtype_bytes(evo_precision p) { return p == EVO_DT_BF16 || p == EVO_DT_F16 ? 2 : 4; }

static void print_count(const char *label, uint64_t n)
{
    printf("  %-26s %15" PRIu64 "  (%.2f M)\n", label, n, (double)n / 1e6);
}

/* The layers of part m whose activations are recomputed (model.checkpoint:
 * the model's first layers, transformer.h). */
static uint32_t recomputed_layers(const evo_config *c, const evo_model *m)
{
    uint32_t n = (uint32_t)(m->layers * c->model.checkpoint), count = 0;
    for (uint32_t k = 0; k < m->chunks; k++)
        count += n <= m->first[k] ? 0 : (n < m->end[k] ? n : m->end[k]) - m->first[k];
    return count;
}

/* What one rank sends per step, by group, with evo_comm_volume's ring
 * formulas: the calls run.c, pipeline.c and optim.c make for a batch,
 * which the metrics' comm_bytes count as they happen. Rank 0's: the first
 * pipeline stage's part of the model (m), which sends every row's
 * activations on, and gradients back only from its chunks after the first
 * (interleaved); with ZeRO-1 the weights it
 * broadcasts are those its zero1 rank keeps. Rows without a labelled
 * token have no backward, and send less than this (with ZeRO-2 they
 * still join the gradients' reductions). Activations, and the
 * working weights ZeRO-1 broadcasts, travel in model.dtype, as the GPU
 * and emulated backends send them (the CPU backend computes and sends
 * fp32); gradients are reduced in fp32: once a step, or with ZeRO-2 each
 * unit's for every row (train_flush_grads). */
static void print_comm(const evo_config *c, const evo_model *m, const evo_layout *l)
{
    uint64_t bytes[EVO_N_GROUPS] = {0};
    uint64_t rows = (uint64_t)c->data.micro_num * l->dp, T = (uint64_t)c->data.seq_len * c->data.micro_bsz;
    bytes[EVO_GROUP_WORLD] += evo_comm_volume(EVO_ALLREDUCE, (rows + 1) * sizeof(double), l->world);
    uint64_t act = T * m->dim * dtype_bytes(c->model.dtype), layers = evo_model_part_layers(m);
    int seq = evo_layout_sequence_parallel(l);
    /* the first stage sends every row's output on, for each of its chunks,
     * and the input gradients of its chunks after the first back */
    if (l->pp > 1)
        bytes[EVO_GROUP_PIPELINE] += (uint64_t)c->data.micro_num * (2 * m->chunks - 1) *
                                     evo_comm_volume(EVO_SENDRECV, act / (seq ? l->tp : 1), l->pp);
    /* tensor parallel, per row: the embedding's columns gathered; per layer
     * two all-reduces forward (o, down) and two backward (the inputs of
     * q k v and of gate up); on the last stage the loss's parts gathered
     * and the head's input gradient all-reduced. Sequence parallel: each
     * all-reduce is a reduce-scatter and an all-gather, the backward
     * gathers the normed inputs again, and the embedding's gradient is
     * gathered; the norms' gradients are all-reduced with the step (with
 * ZeRO-2, with every row's units). */
    uint64_t gather = evo_comm_volume(EVO_ALLGATHER, act, l->tp), sum = evo_comm_volume(EVO_ALLREDUCE, act, l->tp);
    uint64_t scatter = evo_comm_volume(EVO_REDUCE_SCATTER, act, l->tp);
    uint64_t per_row = gather + (seq ? layers * (6 * gather + 4 * scatter) + gather : 4 * layers * sum);
    per_row += recomputed_layers(c, m) * (seq ? 2 * gather + 2 * scatter : 2 * sum); /* their forward again */
    if (l->pp == 1)
        per_row += evo_comm_volume(EVO_ALLGATHER, 3 * T * l->tp * sizeof(float), l->tp) +
                   (seq ? 2 * gather + scatter : sum);
    bytes[EVO_GROUP_TENSOR] += c->data.micro_num * per_row + evo_comm_volume(EVO_ALLREDUCE, sizeof(double), l->tp);
    int sharded = train_shards_grads(c, l);
    uint64_t reductions = sharded ? c->data.micro_num : 1; /* of each gradient a step */
    for (size_t i = 0; seq && i < m->n_tensors; i++)
        if (m->tensors[i].tp_replicated)
            bytes[EVO_GROUP_TENSOR] +=
                reductions * evo_comm_volume(EVO_ALLREDUCE, m->tensors[i].numel * sizeof(float), l->tp);
    uint32_t *owner = evo_malloc((m->n_tensors + 1) * sizeof *owner);
    evo_ckpt_zero_owned(m, l->zero1, 0, owner);
    for (uint32_t u = 0; u < (sharded ? m->layers + 2 : 1); u++) {
        evo_grad_unit span = sharded ? evo_transformer_grad_unit(m, u) : (evo_grad_unit){.numel = m->n_params};
        train_reduction red = {0};
        while (train_next_reduction(m, owner, l, c->hybrid_zero_optimizer.reduce_bucket_size, span, &red))
            bytes[EVO_GROUP_DATA] += reductions * evo_comm_volume(red.root < 0 ? EVO_ALLREDUCE : EVO_REDUCE,
                                                                  red.n * sizeof(float), l->dp);
    }
    train_tensor_run run;
    bytes[EVO_GROUP_ZERO1] += evo_comm_volume(EVO_ALLREDUCE, sizeof(double), l->zero1);
    bytes[EVO_GROUP_PIPELINE] += evo_comm_volume(EVO_ALLREDUCE, sizeof(double), l->pp);
    for (size_t i = 0; l->zero1 > 1 && train_next_run(m, owner, i, &run); i = run.end)
        bytes[EVO_GROUP_ZERO1] += evo_comm_volume(EVO_BROADCAST, run.numel * dtype_bytes(c->model.dtype), l->zero1);
    free(owner);
    printf("\n# communication per step, bytes rank 0 sends (ring algorithms; the metrics' comm_bytes)\n");
    for (int g = 0; g < EVO_N_GROUPS; g++)
        printf("  %-26s %15" PRIu64 "  (%u ranks)\n", evo_group_name((evo_group)g), bytes[g],
               evo_layout_group_size(l, (evo_group)g));
    printf("  %-26s %15" PRIu64 "  (3 flags over the world: signal, stop file save, stop file stop)\n",
           "and at every step boundary", 3 * evo_comm_volume(EVO_ALLREDUCE, sizeof(int), l->world));
}

/* What one rank holds, in bytes: the part of the model of its pipeline
 * stage (tensor rank 0's), and the share of it its zero1 rank keeps.
 * The working weights in the training dtype, the fp32 master weights
 * (the same buffer in fp32, else those of the kept tensors, with Adam's
 * two moments) and the fp32 gradients (whole, as Megatron keeps them;
 * InternEvo keeps them in the dtype: backend.h says why evo does not; or
 * with ZeRO-2 the kept tensors' and a window of the largest unit).
 * Activations saved for backward per token and layer: the layer input,
 * the normed inputs and the residual (cut by tensor ranks with sequence
 * parallelism only), q/k/v, the attention output, gate, up and their
 * product (cut by tensor ranks), in the dtype, plus the softmax
 * log-sum-exp and two rstd (fp32); a recomputed layer keeps its input
 * only; 1F1B keeps a chunk's for several rows (train_pipeline_in_flight).
 * The backward's workspace (in the dtype, one row): the residual's and a
 * normed input's gradients, those of q/k/v, the MLP's three, and with
 * tensor ranks the gathered embedding (and the gathered rows of sequence
 * parallelism). Logits (in the dtype) are the last stage's. */
typedef struct {
    double weights, master, grads, optim, act, workspace, logits, total;
    uint64_t kept;   /* elements of the tensors whose moments it keeps */
    uint64_t window; /* ZeRO-2: the gradients' window, elements; 0 without */
    uint32_t in_flight;
} rank_memory;

static rank_memory memory_of(const evo_config *c, const evo_model *m, const evo_model *part, const evo_layout *l,
                             uint32_t zero_rank)
{
    rank_memory r = {0};
    double tp = l->tp, sp = evo_layout_sequence_parallel(l) ? tp : 1, d = m->dim;
    double b = dtype_bytes(c->model.dtype), local = (double)part->n_params, tokens_row = (double)c->data.seq_len * c->data.micro_bsz;
    double kv = (double)m->kv_heads * m->head_dim, chunk_layers = (double)evo_model_part_layers(part) / part->chunks;
    double per_tok_layer = (4 * d / sp + (2 * d + 2 * kv + 3.0 * m->ffn) / tp) * b + (m->heads / tp + 2 / sp) * 4.0;
    r.workspace = tokens_row * b *
                  (2 * d + (d + 2 * kv + 3.0 * m->ffn) / tp + (tp > 1) * (d + d / tp) + (sp > 1) * (2 * d + d / tp));
    double recomputed = (double)recomputed_layers(c, part) / part->chunks, kept_layers = chunk_layers - recomputed;
    r.in_flight = train_pipeline_in_flight(part->pp_rank, l->pp, part->chunks, c->data.micro_num);
    /* a recomputed layer keeps its input; one layer's worth is shared by
     * them while the backward recomputes them one at a time */
    r.act = tokens_row * (r.in_flight * (kept_layers * per_tok_layer + recomputed * d * b) +
                          (recomputed > 0) * per_tok_layer);
    /* the head's logits of one piece of the loss (evo_transformer_loss_rows) */
    double piece = (double)evo_transformer_loss_rows(m->vocab / l->tp, l->tp);
    r.logits = part->pp_rank + 1 == l->pp ? (piece < tokens_row ? piece : tokens_row) * m->vocab / tp * b : 0;
    uint32_t *owner = evo_malloc((part->n_tensors + 1) * sizeof *owner);
    r.kept = evo_ckpt_zero_owned(part, l->zero1, zero_rank, owner);
    free(owner);
    r.weights = local * b;
    r.master = b == 4 ? 0 : (double)r.kept * 4.0;
    r.optim = (double)r.kept * 8.0;
    r.grads = local * 4.0;
    if (train_shards_grads(c, l)) {
        r.window = evo_transformer_grad_window(part);
        r.grads = (double)(r.kept + r.window) * 4.0;
    }
    r.total = r.weights + r.master + r.grads + r.optim + r.act + r.workspace + r.logits;
    return r;
}

int train_dry_run(const evo_config *c, uint32_t world, double memory_gib)
{
    evo_model m;
    evo_err e;
    if (evo_model_describe(&m, c, &e) < 0)
        evo_fatal("%s", e.msg);
    uint32_t tp = c->parallel.tensor_size, pp = c->parallel.pipeline_size;
    int32_t z = c->parallel.zero1_size;
    if (!world)
        world = tp * pp * (uint32_t)(z > 1 ? z : 1);
    evo_layout l;
    if (evo_layout_make(&l, c, &m, world, 0, &e) < 0)
        evo_fatal("--world %u: %s", world, e.msg);
    uint32_t dp = l.dp, zero = l.zero1;

    printf("# evo-train --dry-run: the resolved configuration (loadable as is)\n");
    evo_config_print(c, stdout);

    uint64_t emb = m.tensors[0].numel, head = m.tensors[m.n_tensors - 1].numel;
    uint64_t layer = (m.n_params - emb - head - m.dim) / m.layers;
    printf("\n# model\n");
    printf("  shapes: vocab %u, dim %u, %u layers, %u heads (%u kv heads, head dim %u), mlp %u, biases %s\n",
           m.vocab, m.dim, m.layers, m.heads, m.kv_heads, m.head_dim, m.ffn, m.bias ? "q/k/v/o" : "none");
    print_count("parameters", m.n_params);
    print_count("  embedding", emb);
    print_count("  head", head);
    print_count("  per layer", layer);
    printf("  %-26s %15.2f B\n", "total", (double)m.n_params / 1e9);

    uint64_t seq = c->data.seq_len, tokens_row = seq * c->data.micro_bsz;
    double flops = evo_model_train_flops_per_token(&m, c->data.seq_len, c->model.checkpoint);
    printf("\n# compute\n");
    printf("  training FLOPs per token   %.4g (forward %.4g; seq_len %" PRIu64 ", recompute share %g)\n", flops,
           flops / (3 + c->model.checkpoint), seq, c->model.checkpoint);
    printf("  tokens per step            %" PRIu64 " (micro_num %u x micro_bsz %u x seq_len %" PRIu64
           " x data parallel %u)\n",
           (uint64_t)c->data.micro_num * tokens_row * dp, c->data.micro_num, c->data.micro_bsz, seq, dp);

    evo_model part;
    evo_ckpt_layout cut = {.tp = l.tp, .pp = l.pp, .zero = l.zero1};
    if (evo_model_part(&part, &m, &cut, 0, 0, &e) < 0)
        evo_fatal("%s", e.msg);
    rank_memory r = memory_of(c, &m, &part, &l, 0);
    printf("\n# memory per rank (rank 0): %u ranks = tensor %u x pipeline %u x data %u, ZeRO-1 over %u, %s\n", world,
           tp, pp, dp, zero, evo_precision_name(c->model.dtype));
    print_count("its parameters", part.n_params);
    printf("  weights                    %8.2f GiB (layers", gib(r.weights));
    for (uint32_t k = 0; k < part.chunks; k++) {
        printf("%s %u", k ? "," : "", part.first[k]);
        if (part.end[k] - part.first[k] > 1)
            printf("-%u", part.end[k] - 1);
    }
    printf("%s)\n", pp > 1 ? ", the embedding" : ", all");
    if (r.master > 0)
        printf("  master weights (fp32)      %8.2f GiB\n", gib(r.master));
    printf("  gradients (fp32)           %8.2f GiB", gib(r.grads));
    if (r.window)
        printf(" (ZeRO-2: %" PRIu64 " kept, a window of %" PRIu64 ")", r.kept, r.window);
    printf("\n");
    printf("  optimizer (m, v)           %8.2f GiB\n", gib(r.optim));
    printf("  activations                %8.2f GiB (%u row%s of %" PRIu64 " tokens%s)\n", gib(r.act), r.in_flight,
           r.in_flight > 1 ? "s" : "", tokens_row, part.chunks > 1 ? ", a chunk each" : "");
    printf("  backward workspace         %8.2f GiB\n", gib(r.workspace));
    printf("  logits                     %8.2f GiB\n", gib(r.logits));
    printf("  total                      %8.2f GiB\n", gib(r.total));
    /* the fullest rank: the stages hold different layers (the last the
     * head and the logits), the zero1 ranks different shares */
    double most = r.total;
    uint32_t most_stage = 0, most_zero = 0;
    for (uint32_t s = 0; s < pp; s++) {
        evo_model stage;
        if (evo_model_part(&stage, &m, &cut, 0, s, &e) < 0)
            evo_fatal("%s", e.msg);
        for (uint32_t z = 0; z < zero; z++) {
            double total = memory_of(c, &m, &stage, &l, z).total;
            if (total > most)
                most = total, most_stage = s, most_zero = z;
        }
        evo_model_free(&stage);
    }
    if (pp > 1 || zero > 1)
        printf("  the fullest rank           %8.2f GiB (pipeline stage %u, zero1 rank %u)\n", gib(most), most_stage,
               most_zero);
    print_comm(c, &part, &l);
    evo_model_free(&part);
    evo_model_free(&m);
    if (memory_gib > 0 && gib(most) > memory_gib) {
        evo_warn("the fullest rank (pipeline stage %u, zero1 rank %u) needs %.2f GiB, more than the %.2f GiB of "
                 "--memory: recompute activations (model.checkpoint), cut the gradients too "
                 "(parallel.zero1.shard_grads), or use more pipeline or tensor ranks",
                 most_stage, most_zero, gib(most), memory_gib);
        return EVO_EXIT_FAIL;
    }
    return EVO_EXIT_OK;
}
