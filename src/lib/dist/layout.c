/* layout.c - InternEvo's rank layout (layout.h). */
#include "dist/layout.h"

#include <stdio.h>
#include <string.h>

int evo_layout_make(evo_layout *l, const evo_config *c, const evo_model *m, uint32_t world, uint32_t rank,
                    evo_err *e)
{
    uint32_t tp = c->parallel.tensor_size, pp = c->parallel.pipeline_size;
    if (world % (tp * pp))
        return evo_errf(e, "%u ranks cannot be cut into parallel.tensor.size %u x parallel.pipeline.size %u: "
                           "the world must be a multiple of %u",
                        world, tp, pp, tp * pp);
    uint32_t dp = world / (tp * pp);
    static const struct {
        const char *what;
        size_t offset;
    } by_tp[] = {{"model.num_attention_heads", offsetof(evo_model, heads)},
                 {"model.num_kv_attention_heads", offsetof(evo_model, kv_heads)},
                 {"model.vocab_size", offsetof(evo_model, vocab)},
                 {"the MLP width (model.mlp_ratio, multiple_of)", offsetof(evo_model, ffn)}};
    for (size_t i = 0; i < sizeof by_tp / sizeof *by_tp; i++) {
        uint32_t v;
        memcpy(&v, (const char *)m + by_tp[i].offset, sizeof v);
        if (v % tp)
            return evo_errf(e, "parallel.tensor.size %u does not divide %s = %u", tp, by_tp[i].what, v);
    }
    if (m->layers < pp)
        return evo_errf(e, "parallel.pipeline.size %u exceeds model.num_layers = %u: every stage needs a layer", pp,
                        m->layers);
    if (pp > 1 && m->layers / m->chunks < pp)
        return evo_errf(e, "parallel.pipeline.size %u exceeds the %u layers of each of model.num_chunks = %u: every "
                           "stage needs a layer of every chunk",
                        pp, m->layers / m->chunks, m->chunks);
    if (pp > 1 && m->chunks > 1 && c->data.micro_num % pp)
        return evo_errf(e, "data.micro_num %u is not a multiple of parallel.pipeline.size %u, as the interleaved "
                           "schedule (model.num_chunks %u) needs",
                        c->data.micro_num, pp, m->chunks);
    int32_t z = c->parallel.zero1_size;
    uint32_t zero1 = z <= 0 ? dp : (uint32_t)z;
    if (zero1 > dp || dp % zero1)
        return evo_errf(e, "parallel.zero1 %d does not divide the %u data-parallel ranks (world %u / tensor %u / "
                           "pipeline %u)",
                        z, dp, world, tp, pp);
    if (rank >= world)
        return evo_errf(e, "rank %u is outside a world of %u", rank, world);
    *l = (evo_layout){.world = world, .dp = dp, .tp = tp, .pp = pp, .zero1 = zero1, .rank = rank};
    l->tp_rank = rank % tp;
    l->dp_rank = rank / tp % dp;
    l->pp_rank = rank / (tp * dp);
    l->zero1_rank = l->dp_rank % zero1;
    snprintf(l->mode, sizeof l->mode, "%s", c->parallel.tensor_mode);
    return 0;
}

int evo_layout_sequence_parallel(const evo_layout *l)
{
    return l->tp > 1 && (!strcmp(l->mode, "msp") || !strcmp(l->mode, "fsp"));
}

uint32_t evo_layout_global(const evo_layout *l, uint32_t pp_rank, uint32_t dp_rank, uint32_t tp_rank)
{
    return pp_rank * l->tp * l->dp + dp_rank * l->tp + tp_rank;
}

uint32_t evo_layout_group_rank(const evo_layout *l, evo_group g)
{
    switch (g) {
    case EVO_GROUP_DATA: return l->dp_rank;
    case EVO_GROUP_TENSOR: return l->tp_rank;
    case EVO_GROUP_PIPELINE: return l->pp_rank;
    case EVO_GROUP_ZERO1: return l->zero1_rank;
    default: return l->rank;
    }
}

uint32_t evo_layout_group_size(const evo_layout *l, evo_group g)
{
    switch (g) {
    case EVO_GROUP_DATA: return l->dp;
    case EVO_GROUP_TENSOR: return l->tp;
    case EVO_GROUP_PIPELINE: return l->pp;
    case EVO_GROUP_ZERO1: return l->zero1;
    default: return l->world;
    }
}

/* Ranks in one group agree on every coordinate but the group's own. */
uint32_t evo_layout_group_color(const evo_layout *l, evo_group g)
{
    switch (g) {
    case EVO_GROUP_DATA: return l->pp_rank * l->tp + l->tp_rank;
    case EVO_GROUP_TENSOR: return l->pp_rank * l->dp + l->dp_rank;
    case EVO_GROUP_PIPELINE: return l->dp_rank * l->tp + l->tp_rank;
    case EVO_GROUP_ZERO1: return (l->pp_rank * l->tp + l->tp_rank) * (l->dp / l->zero1) + l->dp_rank / l->zero1;
    default: return 0;
    }
}

uint32_t evo_layout_group_member(const evo_layout *l, evo_group g, uint32_t r)
{
    switch (g) {
    case EVO_GROUP_DATA: return evo_layout_global(l, l->pp_rank, r, l->tp_rank);
    case EVO_GROUP_TENSOR: return evo_layout_global(l, l->pp_rank, l->dp_rank, r);
    case EVO_GROUP_PIPELINE: return evo_layout_global(l, r, l->dp_rank, l->tp_rank);
    case EVO_GROUP_ZERO1: return evo_layout_global(l, l->pp_rank, l->dp_rank - l->zero1_rank + r, l->tp_rank);
    default: return r;
    }
}

void evo_layout_describe(const evo_layout *l, char *buf, size_t n)
{
    snprintf(buf, n, "world %u = pp %u x dp %u x tp %u, zero1 %u, tensor mode %s", l->world, l->pp, l->dp, l->tp,
             l->zero1, l->mode);
}

const char *evo_group_name(evo_group g)
{
    static const char *const names[EVO_N_GROUPS] = {"world", "data", "tensor", "pipeline", "zero1"};
    return names[g];
}
