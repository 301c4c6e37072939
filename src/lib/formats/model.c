#include "formats/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

uint32_t evo_model_ffn_size(uint32_t dim, double mlp_ratio, uint32_t multiple_of)
{
    uint64_t h = (uint64_t)((double)dim * mlp_ratio);
    return (uint32_t)((h + multiple_of - 1) / multiple_of * multiple_of);
}

static void add(evo_model *m, size_t *cap, evo_init init, double std, uint64_t rows, uint64_t cols, const char *fmt,
                int layer)
{
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = evo_realloc(m->tensors, *cap * sizeof *m->tensors);
    }
    evo_tensor_info *t = &m->tensors[m->n_tensors++];
    *t = (evo_tensor_info){.ndim = cols ? 2 : 1, .shape = {rows, cols}, .offset = m->n_params,
                           .numel = rows * (cols ? cols : 1), .init = init, .std = std,
                           .src_offset = m->n_params, .src_stride = cols ? cols : rows};
    snprintf(t->name, sizeof t->name, fmt, layer);
    m->n_params += t->numel;
}

int evo_model_describe(evo_model *m, const evo_config *c, evo_err *e)
{
    *m = (evo_model){0};
    m->vocab = c->model.vocab_size;
    m->dim = c->model.hidden_size;
    m->heads = c->model.num_attention_heads;
    m->kv_heads = c->model.num_kv_attention_heads;
    m->head_dim = m->dim / m->heads;
    m->layers = c->model.num_layers;
    m->ffn = evo_model_ffn_size(m->dim, c->model.mlp_ratio, c->model.multiple_of);
    m->bias = !c->model.no_bias;
    m->eps = c->model.layer_norm_epsilon;
    m->rope_base = c->model.rope_base;
    m->tp = m->pp = 1;
    m->chunks = c->model.num_chunks;
    for (uint32_t k = 0; k < m->chunks; k++)
        evo_model_stage_layers(m->layers, m->chunks, 1, 0, k, &m->first[k], &m->end[k]);
    if (!m->ffn)
        return evo_errf(e, "[model] mlp_ratio %g gives an empty MLP", c->model.mlp_ratio);
    size_t cap = 0;
    uint64_t d = m->dim, kv = (uint64_t)m->kv_heads * m->head_dim;
    double std = c->model.init_std, estd = c->model.embed_init_std;
    add(m, &cap, EVO_INIT_NORMAL, estd, m->vocab, d, "embedding.weight", 0);
    for (uint32_t l = 0; l < m->layers; l++) {
        /* InternEvo's scaled init: the projections back into the residual
         * stream get std / sqrt(2 (l+1)), l counted from 0. */
        double scaled = std / sqrt(2.0 * (l + 1));
        add(m, &cap, EVO_INIT_ONES, 0, d, 0, "blocks.%d.attn_norm.weight", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, std, d, d, "blocks.%d.attn.q.weight", (int)l);
        if (m->bias)
            add(m, &cap, EVO_INIT_ZEROS, 0, d, 0, "blocks.%d.attn.q.bias", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, std, kv, d, "blocks.%d.attn.k.weight", (int)l);
        if (m->bias)
            add(m, &cap, EVO_INIT_ZEROS, 0, kv, 0, "blocks.%d.attn.k.bias", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, std, kv, d, "blocks.%d.attn.v.weight", (int)l);
        if (m->bias)
            add(m, &cap, EVO_INIT_ZEROS, 0, kv, 0, "blocks.%d.attn.v.bias", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, scaled, d, d, "blocks.%d.attn.o.weight", (int)l);
        if (m->bias)
            add(m, &cap, EVO_INIT_ZEROS, 0, d, 0, "blocks.%d.attn.o.bias", (int)l);
        add(m, &cap, EVO_INIT_ONES, 0, d, 0, "blocks.%d.mlp_norm.weight", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, std, m->ffn, d, "blocks.%d.mlp.gate.weight", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, std, m->ffn, d, "blocks.%d.mlp.up.weight", (int)l);
        add(m, &cap, EVO_INIT_NORMAL, scaled, d, m->ffn, "blocks.%d.mlp.down.weight", (int)l);
    }
    add(m, &cap, EVO_INIT_ONES, 0, d, 0, "norm.weight", 0);
    add(m, &cap, EVO_INIT_NORMAL, estd, m->vocab, d, "head.weight", 0);
    return 0;
}

void evo_model_stage_layers(uint32_t layers, uint32_t chunks, uint32_t pp, uint32_t p, uint32_t c, uint32_t *first,
                            uint32_t *end)
{
    /* within a block: pp - block % pp stages of block / pp, then the rest
     * with one more each */
    uint32_t block = layers / chunks, base = block / pp, left = pp - block % pp;
    *first = c * block + p * base + (p > left ? p - left : 0);
    *end = *first + base + (p >= left);
}

uint32_t evo_model_layer_stage(uint32_t layers, uint32_t chunks, uint32_t pp, uint32_t l)
{
    uint32_t block = layers / chunks, c = l / block, p = 0, first, end;
    for (; p + 1 < pp; p++) {
        evo_model_stage_layers(layers, chunks, pp, p, c, &first, &end);
        if (l < end)
            break;
    }
    return p;
}

uint64_t evo_model_largest_tensor(const evo_model *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        n = m->tensors[i].numel > n ? m->tensors[i].numel : n;
    return n;
}

uint32_t evo_model_part_layers(const evo_model *m)
{
    uint32_t n = 0;
    for (uint32_t c = 0; c < m->chunks; c++)
        n += m->end[c] - m->first[c];
    return n;
}

void evo_model_free(evo_model *m)
{
    free(m->tensors);
    *m = (evo_model){0};
}

double evo_model_train_flops_per_token(const evo_model *m, uint32_t seq_len, double recompute_share)
{
    double d = m->dim, kv = (double)m->kv_heads * m->head_dim;
    double per_layer = 2 * (d * d * 2 + 2 * d * kv + 3 * d * m->ffn) /* q, o, k, v, gate, up, down */
                       + 2 * 2 * (double)seq_len * d;                /* scores and weighted sum */
    double fwd = per_layer * m->layers + 2 * d * m->vocab;             /* the head */
    /* backward costs two forwards; recomputed layers run their forward again */
    return 3 * fwd + recompute_share * per_layer * m->layers;
}
