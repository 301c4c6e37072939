/* fuzz-seeds - writes a checkpoint of a tiny model (vocabulary 16, width
 * 8, one layer) with evo-train's own writers, so that the fuzz corpus
 * (tests/fuzz/make-corpus) starts from real files small enough to mutate:
 * model_tp0_pp0.evo (bf16), optimizer_tp0_pp0_zo0.evo, state.json,
 * config.ini and the COMPLETE marker, in FOLDER/3.
 *
 *   fuzz-seeds FOLDER */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "formats/ckpt.h"
#include "formats/config.h"
#include "formats/model.h"

int main(int argc, char **argv)
{
    evo_set_progname("fuzz-seeds");
    if (argc != 2)
        evo_usage_error("usage: fuzz-seeds FOLDER");
    evo_config c;
    evo_err e;
    evo_config_defaults(&c);
    static const char *const sets[] = {"model.vocab_size=16", "model.hidden_size=8", "model.num_layers=1",
                                       "model.num_attention_heads=2", "model.num_kv_attention_heads=1",
                                       "model.mlp_ratio=1", "model.multiple_of=8", "data.seq_len=8",
                                       "data.micro_bsz=1", "data.micro_num=1", "data.total_steps=3"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (evo_config_set(&c, sets[i], &e) < 0)
            evo_fatal("%s", e.msg);
    evo_model m;
    if (evo_config_resolve(&c, &e) < 0 || evo_model_describe(&m, &c, &e) < 0)
        evo_fatal("%s", e.msg);
    float *w = evo_malloc(m.n_params * sizeof *w), *mom = evo_malloc(2 * m.n_params * sizeof *mom);
    for (uint64_t i = 0; i < m.n_params; i++)
        w[i] = (float)sin((double)i);
    for (uint64_t i = 0; i < 2 * m.n_params; i++)
        mom[i] = (float)(i % 7) * 1e-3f;
    evo_ckpt_state st = {.step = 3, .adam_steps = 3, .batch = 3, .rows = 3, .tokens = 24, .loss_scale = 65536,
                         .next_lr = 1e-4};
    strcpy(st.train_pack, "train.pack");
    strcpy(st.train_pack_id, "0123456789abcdef");
    evo_ckpt_writer wr;
    if (evo_ckpt_begin(&wr, argv[1], 3, &e) < 0 || evo_ckpt_add_config(&wr, &c, &e) < 0 ||
        evo_ckpt_add_model(&wr, &m, w, EVO_BF16, &e) < 0 || evo_ckpt_add_optimizer(&wr, &m, 0, 1, mom, &e) < 0 ||
        evo_ckpt_add_state(&wr, &st, &e) < 0 || evo_ckpt_commit(&wr, &e) < 0)
        evo_fatal("%s", e.msg);
    free(w);
    free(mom);
    evo_model_free(&m);
    return 0;
}
