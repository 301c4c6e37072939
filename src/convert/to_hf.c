/* evo checkpoint -> HuggingFace Transformers directory.
 *
 * The weights are streamed from the checkpoint's model files to the
 * shards, never held in memory whole: a tensor that one file holds whole,
 * in the dtype asked for, is copied file to file inside the kernel (as cp
 * copies); others are merged from their tensor-parallel pieces and cast
 * through a buffer. The checkpoint is checked while it is copied, on a
 * second thread: config.ini and the model files against the checksums of
 * its completion marker (the optimizer state is never read). Only then is
 * the output renamed into place. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/log.h"
#include "convert.h"
#include "formats/ckpt.h"
#include "formats/ckpt_layout.h"
#include "formats/safetensors.h"

/* One tensor of the output, in HF's state_dict order. */
typedef struct {
    size_t index; /* into the model's tensors */
    char name[96];
    uint64_t rank, bytes;
    uint32_t shard;
} out_tensor;

/* The checksums of what conversion reads, verified beside the copy. */
typedef struct {
    const char *dir;
    evo_ckpt_manifest files; /* config.ini and the model files of the marker */
    pthread_t thread;
    int started, rc;
    evo_err err;
} verify_job;

static void *verify(void *arg)
{
    verify_job *v = arg;
    v->rc = evo_ckpt_check_files(v->dir, &v->files, EVO_CKPT_HASH_ALL, &v->err);
    return NULL;
}

static void verify_start(verify_job *v, const evo_ckpt_shards *s)
{
    *v = (verify_job){.dir = s->dir};
    v->files.files = evo_calloc(s->manifest.n + 1, sizeof *v->files.files);
    for (size_t i = 0; i < s->manifest.n; i++) {
        const char *name = s->manifest.files[i].name;
        if (!strcmp(name, EVO_CKPT_CONFIG_FILE) || !strncmp(name, "model_", 6))
            v->files.files[v->files.n++] = s->manifest.files[i];
    }
    v->started = pthread_create(&v->thread, NULL, verify, v) == 0;
    if (!v->started)
        verify(v); /* no thread to be had: the same work, first */
}

static int verify_finish(verify_job *v, evo_err *e)
{
    if (v->started)
        pthread_join(v->thread, NULL);
    evo_ckpt_manifest_free(&v->files);
    if (v->rc < 0)
        *e = v->err;
    return v->rc;
}

static int by_rank(const void *a, const void *b)
{
    const out_tensor *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Shards as huggingface_hub's split_torch_state_dict_into_shards cuts them
 * (what save_pretrained writes): in state_dict order, a tensor that would
 * take the current shard past max starts the next; one bigger than max
 * gets a shard of its own at once, numbered before the shard being filled.
 * Returns the number of shards. */
static uint32_t plan_shards(out_tensor *t, size_t n, uint64_t max)
{
    const uint32_t PENDING = UINT32_MAX;
    uint32_t shards = 0;
    uint64_t fill = 0;
    size_t first = 0, pending = 0; /* the shard being filled: its items from first on */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && t[i].bytes > max) {
            t[i].shard = shards++;
            continue;
        }
        if (i == n ? pending > 0 : fill + t[i].bytes > max) {
            for (size_t k = first; k < i; k++)
                if (t[k].shard == PENDING)
                    t[k].shard = shards;
            shards++;
            fill = 0;
            pending = 0;
            first = i;
        }
        if (i < n) {
            t[i].shard = PENDING;
            fill += t[i].bytes;
            pending++;
        }
    }
    return shards;
}

static char *shard_name(uint32_t k, uint32_t n)
{
    char name[64];
    if (n == 1)
        snprintf(name, sizeof name, "model.safetensors");
    else
        snprintf(name, sizeof name, "model-%05u-of-%05u.safetensors", k + 1, n);
    return evo_strdup(name);
}

static const evo_st_dtype st_dtypes[] = {[EVO_F32] = EVO_ST_F32, [EVO_BF16] = EVO_ST_BF16, [EVO_F16] = EVO_ST_F16};

/* Tensor i's bytes into the shard, in pieces so that a signal is heard. */
static int write_tensor(evo_st_writer *w, const evo_ckpt_shards *s, size_t i, evo_dtype dt, evo_err *e)
{
    enum { PIECE = 64 << 20 };
    const evo_tensor_info *ti = &s->model.tensors[i];
    const evo_ckpt_piece *pc = evo_ckpt_shards_piece(s, EVO_CKPT_WEIGHTS, i, 0);
    evo_dtype from = evo_ckpt_shards_dtype(s, EVO_CKPT_WEIGHTS);
    size_t in_size = evo_dtype_size(from), out_size = evo_dtype_size(dt);
    /* Whole in one file (tp 1, or a tensor every rank holds whole), or
     * merged from the tensor-parallel pieces. */
    uint8_t *merged = pc->t->numel == ti->numel ? NULL : evo_malloc_large(ti->numel * in_size);
    const uint8_t *p = merged ? merged : pc->file->data + pc->t->offset * in_size;
    if (merged)
        evo_ckpt_shards_read(s, EVO_CKPT_WEIGHTS, i, merged);
    int fd = merged ? -1 : pc->file->f.fd;
    uint8_t *buf = dt != from ? evo_malloc(PIECE) : NULL;
    int rc = 0;
    for (uint64_t done = 0; done < ti->numel && rc == 0;) {
        uint64_t n = ti->numel - done;
        n = n > PIECE / in_size ? PIECE / in_size : n;
        if (dt == from && fd >= 0) {
            rc = evo_st_writer_copy(w, fd, (uint64_t)(p - pc->file->f.data) + done * in_size, n * in_size, e);
        } else if (dt == from) {
            rc = evo_st_writer_write(w, p + done * in_size, n * in_size, e);
        } else {
            n = n > PIECE / out_size ? PIECE / out_size : n;
            evo_dtype_cast(buf, dt, p + done * in_size, from, n);
            rc = evo_st_writer_write(w, buf, n * out_size, e);
        }
        done += n;
        if (rc == 0)
            rc = convert_check_signal(e);
    }
    free(buf);
    free(merged);
    return rc;
}

static int write_shard(const outdir *d, const char *name, const evo_ckpt_shards *s, const out_tensor *t, size_t n,
                       evo_dtype dt, evo_err *e)
{
    static const char *const metadata[] = {"format", "pt", NULL}; /* save_pretrained's */
    evo_st_tensor *st = evo_calloc(n, sizeof *st);
    for (size_t i = 0; i < n; i++) {
        const evo_tensor_info *info = &s->model.tensors[t[i].index];
        st[i] = (evo_st_tensor){.name = (char *)t[i].name, .dtype = st_dtypes[dt], .ndim = info->ndim};
        for (uint32_t k = 0; k < info->ndim; k++)
            st[i].shape[k] = info->shape[k];
    }
    char *path = outdir_file(d, name);
    evo_st_writer w;
    int rc = evo_st_writer_open(&w, path, st, n, metadata, e);
    for (size_t k = 0; rc == 0 && k < n; k++)
        rc = write_tensor(&w, s, t[w.order[k]].index, dt, e);
    if (rc == 0)
        rc = evo_st_writer_finish(&w, e);
    else if (w.tensors)
        evo_st_writer_abort(&w);
    free(path);
    free(st);
    return rc;
}

/* model.safetensors.index.json, as save_pretrained writes it. */
static int write_index(const outdir *d, const out_tensor *t, size_t n, uint32_t shards, evo_err *e)
{
    json_t *map = json_object();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char *name = shard_name(t[i].shard, shards);
        json_object_set_new(map, t[i].name, json_string(name));
        free(name);
        total += t[i].bytes;
    }
    json_t *j = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
    int rc = hf_write_json(d, "model.safetensors.index.json", j, e);
    json_decref(j);
    return rc;
}

static int write_model_files(const outdir *d, const evo_ckpt_shards *s, const convert_options *o, evo_dtype dt,
                             const evo_tokenizer *tok, uint32_t *n_shards, evo_err *e)
{
    const evo_model *m = &s->model;
    out_tensor *t = evo_calloc(m->n_tensors, sizeof *t);
    for (size_t i = 0; i < m->n_tensors; i++) {
        t[i].index = i;
        t[i].bytes = m->tensors[i].numel * evo_dtype_size(dt);
        if (hf_name(m->tensors[i].name, t[i].name, sizeof t[i].name, &t[i].rank) < 0) {
            free(t);
            return evo_errf(e, "no HuggingFace name for tensor %s", m->tensors[i].name);
        }
    }
    qsort(t, m->n_tensors, sizeof *t, by_rank);
    uint32_t shards = *n_shards = plan_shards(t, m->n_tensors, o->max_shard);
    int rc = 0;
    out_tensor *mine = evo_calloc(m->n_tensors, sizeof *mine); /* a shard's, in state_dict order */
    for (uint32_t k = 0; k < shards && rc == 0; k++) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_tensors; i++)
            if (t[i].shard == k)
                mine[n++] = t[i];
        char *name = shard_name(k, shards);
        rc = write_shard(d, name, s, mine, n, dt, e);
        free(name);
    }
    free(mine);
    if (rc == 0 && shards > 1)
        rc = write_index(d, t, m->n_tensors, shards, e);
    free(t);
    uint32_t max_pos = o->max_pos ? o->max_pos : s->cfg.data.seq_len;
    int32_t bos = evo_tokenizer_bos(tok), eos = evo_tokenizer_eos(tok);
    json_t *config = hf_config_json(m, dt, bos, eos, max_pos);
    json_t *gen = json_pack("{s:o,s:o}", "bos_token_id", bos >= 0 ? json_integer(bos) : json_null(), "eos_token_id",
                            eos >= 0 ? json_integer(eos) : json_null());
    if (rc == 0 && (rc = hf_write_json(d, "config.json", config, e)) == 0 &&
        (rc = hf_write_json(d, "generation_config.json", gen, e)) == 0)
        rc = hf_write_tokenizer(d, o->tokenizer, tok, max_pos, e);
    json_decref(config);
    json_decref(gen);
    return rc;
}

int convert_to_hf(const convert_options *o, evo_err *e)
{
    double t0 = evo_now();
    char *dir;
    evo_ckpt_shards s = {0};
    evo_tokenizer *tok = NULL;
    int rc = -1;
    if (evo_ckpt_resolve(o->input, &dir, e) < 0)
        return -1;
    /* The sizes only: the checksums are verified while the weights are copied. */
    if (evo_ckpt_shards_open(&s, dir, 0, e) < 0)
        goto out;
    if (!(tok = evo_tokenizer_open(o->tokenizer, e))) {
        evo_err_prefix(e, "%s", o->tokenizer);
        goto out;
    }
    if (evo_tokenizer_vocab_size(tok) > s.model.vocab) {
        evo_errf(e, "%s: %u tokens, more than the model's vocab_size %u", o->tokenizer, evo_tokenizer_vocab_size(tok),
                 s.model.vocab);
        goto out;
    }
    evo_dtype dt = o->dtype >= 0 ? (evo_dtype)o->dtype : evo_ckpt_shards_dtype(&s, EVO_CKPT_WEIGHTS);
    outdir d;
    uint32_t shards = 0;
    if (outdir_begin(&d, o->output, e) < 0)
        goto out;
    verify_job v;
    verify_start(&v, &s);
    rc = write_model_files(&d, &s, o, dt, tok, &shards, e);
    evo_err verr;
    if (verify_finish(&v, &verr) < 0) { /* a corrupt checkpoint explains any other failure */
        *e = verr;
        rc = -1;
    }
    if (rc < 0 || (rc = outdir_commit(&d, e)) < 0) {
        outdir_abort(&d);
        goto out;
    }
    double secs = evo_now() - t0, mb = (double)s.model.n_params * (double)evo_dtype_size(dt) / 1e6;
    evo_info("%s (step %" PRIu64 ") -> %s: %zu tensors, %.1f MB of %s in %u shard%s, %.2f s (%.0f MB/s)", dir,
             s.step, o->output, s.model.n_tensors, mb, hf_torch_dtype(dt), shards, shards == 1 ? "" : "s", secs,
             secs > 0 ? mb / secs : 0.0);
out:
    evo_tokenizer_free(tok);
    evo_ckpt_shards_close(&s);
    free(dir);
    return rc;
}
