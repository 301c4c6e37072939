/* config.h - evo-train's configuration: InternEvo's knobs, same sections and
 * names, in an INI file (evo-train(1) lists them all).
 *
 *   [model]
 *   hidden_size = 4096
 *   mlp_ratio = 8/3
 *   [parallel]
 *   zero1.size = 8
 *
 * InternEvo configs are Python; scripts/internevo-config turns one into
 * this form. Every key has a default (InternEvo's), unknown keys are errors,
 * and `--set section.key=value` overrides any of them. */
#ifndef EVO_CONFIG_H
#define EVO_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

typedef enum { EVO_DT_F32, EVO_DT_TF32, EVO_DT_BF16, EVO_DT_F16 } evo_precision;

/* model.num_chunks at most (InternEvo's configs use 1 to 4). */
enum { EVO_MAX_CHUNKS = 16 };

typedef struct {
    char job_name[128];
    struct {
        uint32_t seq_len, micro_bsz, micro_num, valid_micro_num, valid_every, min_length;
        uint64_t total_steps, seed;
        int pack_sample_into_one;
        char skip_batches[1024], rampup_batch_size[64];
        char train_folder[4096], valid_folder[4096]; /* pack files (evo-pack(5)) */
    } data;
    struct {
        uint32_t vocab_size, hidden_size, num_attention_heads, num_kv_attention_heads, num_layers, multiple_of;
        uint32_t num_chunks; /* model chunks per pipeline stage: > 1 interleaves them; EVO_MAX_CHUNKS at most */
        double mlp_ratio, layer_norm_epsilon, rope_base, checkpoint;
        int no_bias;  /* LLaMA/InternLM2 layout: no q/k/v/o biases */
        evo_precision dtype;
        double embed_init_std, init_std; /* InternEvo: 0.0052 and 0.006 */
    } model;
    struct {
        double lr, adam_beta1, adam_beta2, adam_beta2_c, adam_eps, weight_decay;
    } adam;
    struct {
        uint64_t total_steps, init_steps;
        double warmup_ratio, eta_min;
    } lr_scheduler;
    struct {
        double init_beta2, c;
    } beta2_scheduler;
    struct {
        double initial_scale, min_scale, growth_factor, backoff_factor, max_scale;
        uint32_t growth_interval, hysteresis;
    } grad_scaler;
    struct {
        double clip_grad_norm;
        uint32_t max_skipped_in_row; /* evo: steps with inf/NaN gradients in a row that end the run */
        int overlap_sync_grad, overlap_sync_param;
        uint64_t reduce_bucket_size;
    } hybrid_zero_optimizer;
    struct {
        double label_smoothing;
    } loss;
    struct {
        int enable_save_ckpt, auto_resume, load_optimizer;
        uint64_t checkpoint_every;
        uint32_t keep_last;
        double limit_margin; /* evo's: seconds before a Slurm job's end time to save and exit 75; 0 off */
        char save_ckpt_folder[4096], load_ckpt_folder[4096], load_model_only_folder[4096], stop_file_path[4096];
    } ckpt;
    struct {
        int32_t zero1_size; /* <= 0: the whole data-parallel group */
        int zero1_shard_grads; /* evo's: ZeRO-2, the zero1 group shards the fp32 gradients too */
        uint32_t tensor_size, pipeline_size;
        char tensor_mode[8];
        int interleaved_overlap, sequence_parallel;
    } parallel;
} evo_config;

/* InternEvo's defaults (its args_sanity_check and demo 7B config). */
void evo_config_defaults(evo_config *c);
/* Reads an INI file over the current values; errors name file:line. */
int evo_config_load(evo_config *c, const char *path, evo_err *e);
/* Applies one "section.key=value" override. */
int evo_config_set(evo_config *c, const char *assignment, evo_err *e);
/* Fills what follows from other keys (lr_scheduler.total_steps from
 * data.total_steps when unset, kv heads = heads, ...) and checks ranges. */
int evo_config_resolve(evo_config *c, evo_err *e);
/* The whole configuration as a loadable INI file. */
void evo_config_print(const evo_config *c, FILE *out);
/* The same keys in the same order, as "section.key" ("KEY" for the
 * top-level ones) and the value as printed: for comparing and reporting. */
typedef struct {
    char *key, *value;
} evo_config_pair;
size_t evo_config_pairs(const evo_config *c, evo_config_pair **pairs);
void evo_config_pairs_free(evo_config_pair *pairs, size_t n);

const char *evo_precision_name(evo_precision p);

#endif
