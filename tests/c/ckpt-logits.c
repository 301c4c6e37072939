/* ckpt-logits - evo's logits for a token sequence, from a checkpoint: the
 * weights as evo_ckpt_load_model reads them, the forward of
 * src/lib/compute/transformer.c over one segment at positions 0..T-1. For
 * tests/ref/torch-hf.py to compare against HuggingFace's LLaMA
 * (t0410-convert.sh).
 *
 *   ckpt-logits CKPT OUT.f32 ID...      writes [T, vocab] fp32, little-endian */
#include <stdio.h>
#include <stdlib.h>

#include "compute/transformer.h"
#include "formats/ckpt.h"

int main(int argc, char **argv)
{
    evo_set_progname("ckpt-logits");
    if (argc < 4)
        evo_usage_error("usage: ckpt-logits CKPT OUT.f32 ID...");
    evo_ckpt_model cm;
    evo_err e;
    if (evo_ckpt_load_model(&cm, argv[1], &e) < 0)
        evo_fatal("%s", e.msg);
    size_t T = (size_t)(argc - 3), V = cm.model.vocab;
    int32_t *tokens = evo_calloc(T, sizeof *tokens), *labels = evo_calloc(T, sizeof *labels);
    int32_t *positions = evo_calloc(T, sizeof *positions), cu[2] = {0, (int32_t)T};
    for (size_t t = 0; t < T; t++) {
        tokens[t] = (int32_t)evo_usage_number(argv[3 + t], "a token id", 0, V - 1);
        labels[t] = EVO_IGNORE_LABEL;
        positions[t] = (int32_t)t;
    }
    evo_pack_row row = {.tokens = tokens, .labels = labels, .positions = positions, .cu_seqlens = cu, .n_segments = 1};
    const evo_backend *be = evo_backend_cpu();
    evo_transformer tf;
    evo_transformer_init(&tf, &cm.model, be, &(evo_transformer_opts){.T_max = T, .loss_rows = T}); /* one piece */
    evo_transformer_set_weights(&tf, 0, cm.weights, cm.model.n_params);
    evo_transformer_forward(&tf, 0, 0, &row, T);
    float *logits = evo_malloc(T * V * sizeof *logits);
    be->download(be, logits, tf.logits, T * V * sizeof *logits);
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(logits, sizeof *logits, T * V, f) != T * V || fclose(f) != 0)
        evo_fatal("cannot write %s", argv[2]);
    free(logits);
    free(tokens);
    free(labels);
    free(positions);
    evo_transformer_free(&tf);
    evo_ckpt_model_free(&cm);
    return 0;
}
