/* convert.h - evo-convert2hf's parts: evo checkpoints to HuggingFace
 * Transformers directories (to_hf.c) and back (from_hf.c), the tensor
 * names (names.c), the JSON files (hf_json.c) and an output directory that
 * appears whole or not at all (outdir.c). */
#ifndef EVO_CONVERT_H
#define EVO_CONVERT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/error.h"
#include "formats/config.h"
#include "formats/model.h"
#include "formats/safetensors.h"
#include "text/tokenizer.h"

typedef struct {
    const char *input, *output, *tokenizer;
    int dtype;          /* an evo_dtype, or -1: as stored */
    uint64_t max_shard; /* bytes per safetensors file (HF's max_shard_size) */
    uint32_t max_pos;   /* max_position_embeddings; 0: the config's data.seq_len */
    uint64_t step;      /* --from-hf: the checkpoint's step */
} convert_options;

int convert_to_hf(const convert_options *o, evo_err *e);
int convert_from_hf(const convert_options *o, evo_err *e);

/* --- names.c ------------------------------------------------------------- */

/* HF's name of an evo tensor (blocks.3.attn.q.bias ->
 * model.layers.3.self_attn.q_proj.bias) into out, and its rank in HF's
 * state_dict order (the modules' registration order), which decides how
 * save_pretrained fills shards. -1 if the name is not a model tensor. */
int hf_name(const char *evo, char *out, size_t size, uint64_t *rank);
/* HF's torch_dtype name of an evo dtype ("float32", "bfloat16", "float16"). */
const char *hf_torch_dtype(evo_dtype dt);

/* --- hf_json.c ------------------------------------------------------------ */

typedef struct outdir outdir;

/* config.json of the LlamaForCausalLM that model m is, with weights of dt. */
json_t *hf_config_json(const evo_model *m, evo_dtype dt, int32_t bos, int32_t eos, uint32_t max_pos);
/* Writes j as Transformers does: indent 2, keys sorted, a final newline;
 * reals in the fewest digits that read back exactly. */
int hf_write_json(const outdir *d, const char *name, json_t *j, evo_err *e);
/* generation_config.json, and the tokenizer: a SentencePiece model as
 * tokenizer.model for LlamaTokenizer, a tokenizer.json for
 * PreTrainedTokenizerFast, each with its tokenizer_config.json. */
int hf_write_tokenizer(const outdir *d, const char *path, const evo_tokenizer *t, uint32_t max_pos, evo_err *e);
/* Reads HFDIR/config.json of a LlamaForCausalLM into c's [model] (and
 * data.seq_len); *tied: lm_head shares the embedding. */
int hf_read_config(const char *dir, evo_config *c, int *tied, evo_err *e);

/* --- hf_source.c ---------------------------------------------------------- */

/* The safetensors files of a model: the shards an index names, or one. */
typedef struct {
    json_t *weight_map; /* name -> file; NULL for a single file */
    char *index_path;
    evo_st_file *files;
    char **names;
    size_t n_files;
} hf_source;

/* Opens DIR/model.safetensors.index.json and every shard it names (file
 * names of DIR only), or DIR/model.safetensors. */
int hf_source_open(hf_source *s, const char *dir, evo_err *e);
/* The file and entry of tensor name, or NULL with e saying why. */
const evo_st_tensor *hf_source_lookup(const hf_source *s, const char *name, const evo_st_file **file,
                                      evo_err *e);
void hf_source_close(hf_source *s);

/* --- outdir.c ------------------------------------------------------------- */

struct outdir {
    char *path;   /* what appears when complete */
    char *parent; /* the directory it appears in */
    char *tmp;    /* .NAME.tmp-XXXXXX beside it, where the files go */
};

/* Refuses an existing path; creates the temporary directory. */
int outdir_begin(outdir *d, const char *path, evo_err *e);
/* TMP/name, malloc'ed. */
char *outdir_file(const outdir *d, const char *name);
/* A small file TMP/name written whole. */
int outdir_write(const outdir *d, const char *name, const void *p, size_t n, evo_err *e);
/* fsyncs, renames the temporary to path (never over something that
 * appeared meanwhile), fsyncs the parent. */
int outdir_commit(outdir *d, evo_err *e);
/* Removes the temporary and what is in it. */
void outdir_abort(outdir *d);

/* SIGINT, SIGTERM and SIGHUP only set convert_signal: the work stops at
 * the next check, removes its temporaries and dies of the signal. */
extern volatile sig_atomic_t convert_signal;
void convert_catch_signals(void);
int convert_check_signal(evo_err *e);

#endif
