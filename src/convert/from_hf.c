/* HuggingFace LlamaForCausalLM directory -> evo checkpoint (config.ini and
 * the model file, no optimizer state), for evo-train's load_model_only. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/log.h"
#include "convert.h"
#include "formats/ckpt.h"
#include "formats/safetensors.h"

static int by_string(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Whether key is one of the sorted names, or a RoPE inv_freq (which old
 * Transformers saved, and which is recomputed anyway). */
static int expected(const char *key, char **names, size_t n)
{
    static const char suffix[] = ".rotary_emb.inv_freq";
    size_t len = strlen(key), sl = sizeof suffix - 1;
    return bsearch(&key, names, n, sizeof *names, by_string) || (len > sl && !strcmp(key + len - sl, suffix));
}

/* Every tensor of the source is one of the model's: a tensor left over
 * means config.json describes another model than the weights. */
static int check_no_extra(const hf_source *s, char **names, size_t n, evo_err *e)
{
    qsort(names, n, sizeof *names, by_string);
    const char *key;
    json_t *v;
    json_object_foreach(s->weight_map, key, v)
    {
        if (!expected(key, names, n))
            return evo_errf(e, "%s: tensor %s is not part of the model config.json describes", s->index_path, key);
    }
    for (size_t i = 0; !s->weight_map && i < s->files[0].n_tensors; i++)
        if (!expected(s->files[0].tensors[i].name, names, n))
            return evo_errf(e, "%s: tensor %s is not part of the model config.json describes", s->files[0].path,
                            s->files[0].tensors[i].name);
    return 0;
}

static int has(const hf_source *s, const char *name)
{
    return s->weight_map ? json_object_get(s->weight_map, name) != NULL : evo_st_find(&s->files[0], name) != NULL;
}

static evo_dtype evo_dtype_of(evo_st_dtype dt)
{
    return dt == EVO_ST_BF16 ? EVO_BF16 : dt == EVO_ST_F16 ? EVO_F16 : EVO_F32;
}

/* The source tensor of each model tensor, checked: dtype and shape. */
static int find_tensors(const hf_source *s, const evo_model *m, int tied, const evo_st_tensor **src,
                        const evo_st_file **file, evo_err *e)
{
    char **names = evo_calloc(m->n_tensors, sizeof *names);
    int rc = 0;
    for (size_t i = 0; i < m->n_tensors && rc == 0; i++) {
        const evo_tensor_info *want = &m->tensors[i];
        char name[96];
        uint64_t rank;
        if (hf_name(want->name, name, sizeof name, &rank) < 0) {
            rc = evo_errf(e, "no HuggingFace name for tensor %s", want->name);
            break;
        }
        names[i] = evo_strdup(name);
        /* A tied model stores the embedding only; evo's head is its copy. */
        if (tied && !strcmp(name, "lm_head.weight") && !has(s, name))
            snprintf(name, sizeof name, "model.embed_tokens.weight");
        const evo_st_tensor *t = src[i] = hf_source_lookup(s, name, &file[i], e);
        if (!t) {
            rc = -1;
            break;
        }
        if (t->dtype != EVO_ST_F32 && t->dtype != EVO_ST_BF16 && t->dtype != EVO_ST_F16) {
            rc = evo_errf(e, "%s: tensor %s is %s (F32, BF16 or F16 only)", file[i]->path, name,
                          evo_st_dtype_name(t->dtype));
            break;
        }
        int same = t->ndim == want->ndim;
        for (uint32_t d = 0; same && d < want->ndim; d++)
            same = t->shape[d] == want->shape[d];
        if (!same) {
            char has_shape[256], want_shape[64];
            evo_ckpt_format_shape(has_shape, sizeof has_shape, t->ndim, t->shape);
            evo_ckpt_format_shape(want_shape, sizeof want_shape, want->ndim, want->shape);
            rc = evo_errf(e, "%s: tensor %s has shape %s, config.json's model wants %s", file[i]->path, name,
                          has_shape, want_shape);
        }
    }
    if (rc == 0)
        rc = check_no_extra(s, names, m->n_tensors, e);
    for (size_t i = 0; i < m->n_tensors; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* config.ini and the model file into w's directory, and commit. */
static int write_checkpoint(evo_ckpt_writer *w, const evo_config *cfg, const evo_model *m, evo_dtype dt,
                            const void *data, evo_err *e)
{
    evo_ckpt_tensor *table = evo_calloc(m->n_tensors, sizeof *table);
    evo_ckpt_table(table, m, "", 0);
    evo_ckpt_meta meta = {.kind = EVO_CKPT_MODEL, .dtype = dt, .tp_size = 1, .pp_size = 1, .zero_size = 1,
                          .step = w->step};
    int rc = -1;
    if (evo_ckpt_add_config(w, cfg, e) == 0 &&
        evo_ckpt_add_tensors(w, EVO_CKPT_MODEL_FILE, &meta, table, m->n_tensors, data, e) == 0 &&
        convert_check_signal(e) == 0)
        rc = evo_ckpt_commit(w, e);
    free(table);
    return rc;
}

int convert_from_hf(const convert_options *o, evo_err *e)
{
    double t0 = evo_now();
    evo_config cfg;
    evo_model m = {0};
    hf_source s = {0};
    evo_ckpt_writer w;
    int tied = 0, rc = -1;
    const evo_st_tensor **src = NULL;
    const evo_st_file **file = NULL;
    uint8_t *data = NULL;
    char step[32];
    snprintf(step, sizeof step, "%" PRIu64, o->step);
    char *dir = evo_path_join(o->output, step);
    /* First, so that an existing checkpoint is refused before any work. */
    if (evo_ckpt_begin_at(&w, dir, o->step, e) < 0) {
        free(dir);
        return -1;
    }
    evo_config_defaults(&cfg);
    if (hf_read_config(o->input, &cfg, &tied, e) < 0 || evo_config_resolve(&cfg, e) < 0 ||
        evo_model_describe(&m, &cfg, e) < 0 || hf_source_open(&s, o->input, e) < 0)
        goto out;
    src = evo_calloc(m.n_tensors, sizeof *src);
    file = evo_calloc(m.n_tensors, sizeof *file);
    if (find_tensors(&s, &m, tied, src, file, e) < 0)
        goto out;
    /* As stored when every tensor has one dtype (so HF -> evo -> HF gives
     * the same files back), else fp32, which holds all three exactly. */
    int uniform = 1;
    for (size_t i = 1; i < m.n_tensors; i++)
        uniform &= src[i]->dtype == src[0]->dtype;
    evo_dtype dt = o->dtype >= 0 ? (evo_dtype)o->dtype : uniform ? evo_dtype_of(src[0]->dtype) : EVO_F32;
    size_t size = evo_dtype_size(dt);
    data = evo_malloc_large(m.n_params * size);
    for (size_t i = 0; i < m.n_tensors && convert_check_signal(e) == 0; i++) {
        evo_dtype from = evo_dtype_of(src[i]->dtype);
        if (from == dt)
            memcpy(data + m.tensors[i].offset * size, evo_st_data(file[i], src[i]), m.tensors[i].numel * size);
        else
            evo_dtype_cast(data + m.tensors[i].offset * size, dt, evo_st_data(file[i], src[i]), from,
                           m.tensors[i].numel);
    }
    if (convert_check_signal(e) < 0 || write_checkpoint(&w, &cfg, &m, dt, data, e) < 0)
        goto out;
    evo_info("%s -> %s: %zu tensors, %.1f MB of %s, %.2f s", o->input, dir, m.n_tensors,
             (double)(m.n_params * size) / 1e6, hf_torch_dtype(dt), evo_now() - t0);
    rc = 0;
out:
    evo_ckpt_abort(&w); /* frees the writer; removes the temporary if not committed */
    free(data);
    free(src);
    free(file);
    hf_source_close(&s);
    evo_model_free(&m);
    free(dir);
    return rc;
}
