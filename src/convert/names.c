/* The one table of tensor names shared by both directions (evo-convert2hf(1)
 * prints it). */
#include <stdio.h>
#include <string.h>

#include "convert.h"

/* A block's tensors, in the order LlamaDecoderLayer registers its modules
 * (self_attn: q, k, v, o; mlp: gate, up, down; then the two norms): HF's
 * state_dict order. Each prefix is followed by "weight" or "bias". */
static const struct {
    const char *evo, *hf;
} block_names[] = {
    {"attn.q.", "self_attn.q_proj."},     {"attn.k.", "self_attn.k_proj."},
    {"attn.v.", "self_attn.v_proj."},     {"attn.o.", "self_attn.o_proj."},
    {"mlp.gate.", "mlp.gate_proj."},      {"mlp.up.", "mlp.up_proj."},
    {"mlp.down.", "mlp.down_proj."},      {"attn_norm.", "input_layernorm."},
    {"mlp_norm.", "post_attention_layernorm."},
};
enum { N_BLOCK = sizeof block_names / sizeof *block_names, LAYER_RANKS = 2 * N_BLOCK };

int hf_name(const char *evo, char *out, size_t size, uint64_t *rank)
{
    static const char *const top[][2] = {{"embedding.", "model.embed_tokens."}, {"norm.", "model.norm."},
                                         {"head.", "lm_head."}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(top[i][0]);
        if (!strncmp(evo, top[i][0], n)) {
            /* embedding first, norm and head after every layer */
            *rank = i == 0 ? 0 : UINT64_MAX - 2 + i;
            return snprintf(out, size, "%s%s", top[i][1], evo + n) < (int)size ? 0 : -1;
        }
    }
    unsigned layer;
    int at = 0;
    if (sscanf(evo, "blocks.%u.%n", &layer, &at) != 1 || !at)
        return -1;
    for (size_t i = 0; i < N_BLOCK; i++) {
        size_t n = strlen(block_names[i].evo);
        if (!strncmp(evo + at, block_names[i].evo, n)) {
            const char *kind = evo + at + n;
            *rank = 1 + (uint64_t)layer * LAYER_RANKS + 2 * i + !strcmp(kind, "bias");
            return snprintf(out, size, "model.layers.%u.%s%s", layer, block_names[i].hf, kind) < (int)size ? 0 : -1;
        }
    }
    return -1;
}

const char *hf_torch_dtype(evo_dtype dt)
{
    static const char *const names[] = {"float32", "bfloat16", "float16"};
    return names[dt];
}
