/* inspect.c - one checkpoint looked at: info and verify. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "evockpt.h"

static const char *const split_names[] = {"none", "dim0", "dim1", "rank0"};

/* state.json when the marker lists it (a model-only checkpoint has none):
 * 1 read, 0 absent. */
static int read_state(const evo_ckpt_shards *s, evo_ckpt_state *st)
{
    if (!evo_ckpt_manifest_find(&s->manifest, EVO_CKPT_STATE_FILE))
        return 0;
    char *path = evo_path_join(s->dir, EVO_CKPT_STATE_FILE);
    evo_err e;
    if (evo_ckpt_read_state(st, path, &e) < 0)
        evo_fatal("%s", e.msg);
    free(path);
    return 1;
}

static uint64_t total_bytes(const evo_ckpt_shards *s)
{
    uint64_t n = 0;
    for (size_t f = 0; f < s->manifest.n; f++)
        n += s->manifest.files[f].size;
    return n;
}

/* The zero ranks holding tensor i's moments, as bits (of the first 64). */
static uint64_t zero_ranks(const evo_ckpt_shards *s, size_t i)
{
    uint64_t bits = 0;
    for (uint32_t t = 0; s->layout.zero && t < s->layout.tp; t++) {
        const evo_ckpt_piece *pc = evo_ckpt_shards_piece(s, EVO_CKPT_ADAM_M, i, t);
        if (pc->file && pc->file->meta.zero_rank < 64)
            bits |= 1ull << pc->file->meta.zero_rank;
    }
    return bits;
}

static void print_tensors(const evo_ckpt_shards *s)
{
    static const char *const splits[] = {"copy on every tp rank", "dim 0 split over tp", "dim 1 split over tp",
                                         "tp rank 0 only"};
    printf("%-40s %-14s %-5s %s\n", "tensor", "shape", "dtype", "shards");
    for (size_t i = 0; i < s->model.n_tensors; i++) {
        const evo_tensor_info *ti = &s->model.tensors[i];
        const evo_ckpt_place *pl = &s->places[i];
        char shape[64];
        evo_ckpt_format_shape(shape, sizeof shape, ti->ndim, ti->shape);
        printf("%-40s %-14s %-5s pp %u", ti->name, shape, evo_ckpt_dtype_name(s->dtype[0]), pl->stage);
        if (s->layout.tp > 1)
            printf(", %s", splits[pl->split]);
        uint64_t bits = zero_ranks(s, i);
        for (uint32_t z = 0, first = 1; z < 64; z++)
            if (bits >> z & 1) {
                printf("%s%u", first ? ", zo " : ",", z);
                first = 0;
            }
        printf("\n");
    }
}

static void print_text(const evo_ckpt_shards *s)
{
    const evo_model *m = &s->model;
    const evo_ckpt_layout *l = &s->layout;
    evo_ckpt_state st;
    char size[32];
    format_size(size, sizeof size, total_bytes(s));
    printf("checkpoint:  %s, step %" PRIu64 ", complete, %s in %zu files\n", s->dir, s->step, size, s->manifest.n);
    printf("model:       %u layers, hidden %u, %u heads (%u key/value), MLP %u, vocabulary %u, %s; %" PRIu64
           " parameters stored as %s\n",
           m->layers, m->dim, m->heads, m->kv_heads, m->ffn, m->vocab, m->bias ? "q/k/v/o biases" : "no biases",
           m->n_params, evo_ckpt_dtype_name(s->dtype[0]));
    printf("layout:      tp %u, pp %u, ", l->tp, l->pp);
    if (l->zero)
        printf("zero %u\n", l->zero);
    else
        printf("no optimizer state\n");
    for (uint32_t p = 0, first, end; p < l->pp; p++) {
        uint32_t chunks = l->pp > 1 ? m->chunks : 1, n = 0;
        for (uint32_t c = 0; c < chunks; c++) {
            evo_model_stage_layers(m->layers, chunks, l->pp, p, c, &first, &end);
            n += end - first;
        }
        printf("  stage %u:   layer%s ", p, n > 1 ? "s" : "");
        for (uint32_t c = 0; c < chunks; c++) {
            evo_model_stage_layers(m->layers, chunks, l->pp, p, c, &first, &end);
            printf("%s%u", c ? ", " : "", first);
            if (end - first > 1)
                printf("-%u", end - 1);
        }
        printf("%s%s\n", p == 0 ? ", embedding" : "", p == l->pp - 1 ? ", final norm, head" : "");
    }
    if (read_state(s, &st)) {
        printf("data:        batch %" PRIu64 ", rows %" PRIu64 ", tokens %" PRIu64 "; pack %s (id %s, %" PRIu64
               " rows)\n",
               st.batch, st.rows, st.tokens, st.train_pack, st.train_pack_id, st.train_pack_rows);
        printf("optimizer:   AdamW moments in %s, adam_steps %" PRIu64 ", next lr %.6g\n",
               evo_ckpt_dtype_name(s->dtype[1]), st.adam_steps, st.next_lr);
        if (*st.job_id)
            printf("job:         Slurm job %s (%s), requeued %" PRIu64 " time%s before\n", st.job_id, st.job_name,
                   st.job_restarts, st.job_restarts == 1 ? "" : "s");
        printf("scaler:      loss scale %g, %" PRIu64 " clean steps, %" PRIu64 " overflows; skipped %" PRIu64
               " non-finite steps (%" PRIu64 " in a row), %" PRIu64 " batches\n",
               st.loss_scale, st.scaler_clean_steps, st.scaler_overflows, st.skipped_nonfinite, st.nonfinite_in_row,
               st.skipped_batches);
    } else {
        printf("data:        none (a model-only checkpoint)\n");
    }
    print_tensors(s);
}

static json_t *json_u64s(const uint64_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

static json_t *json_config(const evo_config *c)
{
    evo_config_pair *pairs;
    size_t n = evo_config_pairs(c, &pairs);
    json_t *root = json_object();
    for (size_t i = 0; i < n; i++) {
        char *dot = strchr(pairs[i].key, '.');
        if (!dot) {
            json_object_set_new(root, pairs[i].key, json_string(pairs[i].value));
            continue;
        }
        *dot = '\0';
        json_t *sec = json_object_get(root, pairs[i].key);
        if (!sec)
            json_object_set_new(root, pairs[i].key, sec = json_object());
        json_object_set_new(sec, dot + 1, json_string(pairs[i].value));
    }
    evo_config_pairs_free(pairs, n);
    return root;
}

static void print_json(const evo_ckpt_shards *s)
{
    const evo_model *m = &s->model;
    const evo_ckpt_layout *l = &s->layout;
    evo_ckpt_state st;
    json_t *state = NULL;
    if (read_state(s, &st)) {
        char *path = evo_path_join(s->dir, EVO_CKPT_STATE_FILE);
        state = json_load_file(path, 0, NULL);
        free(path);
    }
    json_t *files = json_array(), *stages = json_array(), *tensors = json_array();
    for (size_t f = 0; f < s->manifest.n; f++) {
        char hash[17];
        snprintf(hash, sizeof hash, "%016" PRIx64, s->manifest.files[f].hash);
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", s->manifest.files[f].name, "bytes",
                                               (json_int_t)s->manifest.files[f].size, "xxh3", hash));
    }
    for (uint32_t p = 0, first, end; p < l->pp; p++) { /* a run of layers for each of its chunks */
        uint32_t chunks = l->pp > 1 ? m->chunks : 1;
        json_t *runs = json_array();
        for (uint32_t c = 0; c < chunks; c++) {
            evo_model_stage_layers(m->layers, chunks, l->pp, p, c, &first, &end);
            json_array_append_new(runs, json_pack("{s:i, s:i}", "first_layer", first, "end_layer", end));
        }
        json_array_append_new(stages, json_pack("{s:o}", "chunks", runs));
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *ti = &m->tensors[i];
        uint64_t bits = zero_ranks(s, i), ranks[64];
        size_t n_ranks = 0;
        for (uint32_t z = 0; z < 64; z++)
            if (bits >> z & 1)
                ranks[n_ranks++] = z;
        json_array_append_new(tensors, json_pack("{s:s, s:o, s:s, s:i, s:s, s:o}", "name", ti->name, "shape",
                                                 json_u64s(ti->shape, ti->ndim), "dtype",
                                                 evo_ckpt_dtype_name(s->dtype[0]), "stage", s->places[i].stage,
                                                 "split", split_names[s->places[i].split], "zero_ranks",
                                                 json_u64s(ranks, n_ranks)));
    }
    json_t *model = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:I, s:s}", "layers", m->layers, "hidden_size",
                              m->dim, "heads", m->heads, "kv_heads", m->kv_heads, "ffn", m->ffn, "vocab", m->vocab,
                              "bias", m->bias, "parameters", (json_int_t)m->n_params, "dtype",
                              evo_ckpt_dtype_name(s->dtype[0]));
    json_t *root = json_pack("{s:s, s:I, s:I, s:o, s:o, s:{s:i, s:i, s:i, s:o}, s:o, s:o, s:o}", "path", s->dir,
                             "step", (json_int_t)s->step, "bytes", (json_int_t)total_bytes(s), "files", files,
                             "model", model, "layout", "tp", l->tp, "pp", l->pp, "zero", l->zero, "stages", stages,
                             "tensors", tensors, "state", state ? state : json_null(), "config",
                             json_config(&s->cfg));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    puts(text);
    free(text);
    json_decref(root);
}

int cmd_info(const ckpt_opts *o, char **args, int n)
{
    (void)n;
    evo_ckpt_shards s;
    open_or_die(&s, args[0], 0); /* a look, not a check: verify reads every byte */
    if (o->json)
        print_json(&s);
    else
        print_text(&s);
    evo_ckpt_shards_close(&s);
    return EVO_EXIT_OK;
}

/* --- verify -------------------------------------------------------------------- */

/* The first value of a piece that is not finite, or with nonneg is
 * negative: 1 and its index and value, else 0. */
static int bad_value(const evo_ckpt_piece *pc, int nonneg, uint64_t *at, float *value)
{
    evo_dtype dt = pc->file->meta.dtype;
    size_t esize = evo_dtype_size(dt);
    const void *raw = pc->file->data + pc->t->offset * esize;
    const float *v = raw;
    float *scratch = NULL;
    if (dt != EVO_F32) {
        v = scratch = evo_malloc(pc->t->numel * sizeof *scratch);
        evo_dtype_cast(scratch, EVO_F32, raw, dt, pc->t->numel);
    }
    int bad = 0;
    for (uint64_t k = 0; k < pc->t->numel && !bad; k++)
        if (!isfinite(v[k]) || (nonneg && v[k] < 0)) {
            *at = k;
            *value = v[k];
            bad = 1;
        }
    free(scratch);
    return bad;
}

/* Values: finite (second moments not negative), and the copies of a
 * tensor kept whole on every tensor rank identical. */
static void check_values(const evo_ckpt_shards *s)
{
    for (int kind = 0; kind < (s->layout.zero ? 3 : 1); kind++)
        for (size_t i = 0; i < s->model.n_tensors; i++)
            for (uint32_t t = 0; t < s->layout.tp; t++) {
                const evo_ckpt_piece *pc = evo_ckpt_shards_piece(s, kind, i, t), *first;
                uint64_t at;
                float v;
                if (!pc->file)
                    continue;
                if (bad_value(pc, kind == EVO_CKPT_ADAM_V, &at, &v))
                    evo_fatal("%s: tensor %s: element %" PRIu64 " is %g", pc->file->f.path, pc->t->name, at, v);
                first = evo_ckpt_shards_piece(s, kind, i, 0);
                size_t esize = evo_dtype_size(pc->file->meta.dtype);
                if (t > 0 && s->places[i].split == EVO_SPLIT_NONE &&
                    memcmp(pc->file->data + pc->t->offset * esize, first->file->data + first->t->offset * esize,
                                    pc->t->numel * esize))
                    evo_fatal("%s: tensor %s differs from its copy in %s (each tensor rank keeps the same)",
                              pc->file->f.path, pc->t->name, first->file->f.path);
            }
}

static void check_state(const evo_ckpt_shards *s)
{
    evo_ckpt_state st;
    int has_state = read_state(s, &st);
    if (has_state != (s->layout.zero > 0))
        evo_fatal("%s: %s without %s: neither a training checkpoint nor a model-only one", s->dir,
                  has_state ? EVO_CKPT_STATE_FILE : "optimizer state",
                  has_state ? "optimizer state" : EVO_CKPT_STATE_FILE);
    if (!has_state)
        return;
    char *path = evo_path_join(s->dir, EVO_CKPT_STATE_FILE);
    if (st.step != s->step)
        evo_fatal("%s: step %" PRIu64 ", the checkpoint's is %" PRIu64, path, st.step, s->step);
    if (st.adam_steps > st.step)
        evo_fatal("%s: adam_steps %" PRIu64 " is more than step %" PRIu64, path, st.adam_steps, st.step);
    if (st.nonfinite_in_row > st.skipped_nonfinite)
        evo_fatal("%s: nonfinite_in_row %" PRIu64 " is more than skipped_nonfinite %" PRIu64, path,
                  st.nonfinite_in_row, st.skipped_nonfinite);
    free(path);
}

int cmd_verify(const ckpt_opts *o, char **args, int n)
{
    (void)o;
    (void)n;
    evo_ckpt_shards s;
    evo_err e;
    open_or_die(&s, args[0], EVO_CKPT_CHECKSUMS);
    /* Opening checked the containers' own checksums; verify also holds
     * every file to the marker's, so a damaged marker is reported too. */
    if (evo_ckpt_check_files(s.dir, &s.manifest, EVO_CKPT_HASH_ALL, &e) < 0)
        evo_fatal("%s", e.msg);
    check_state(&s);
    check_values(&s);
    if (!evo_quiet) {
        printf("%s: OK: step %" PRIu64 ", %zu files, %zu tensors, %" PRIu64 " parameters, tp %u, pp %u, ", s.dir,
               s.step, s.manifest.n, s.model.n_tensors, s.model.n_params, s.layout.tp, s.layout.pp);
        if (s.layout.zero)
            printf("zero %u\n", s.layout.zero);
        else
            printf("model only\n");
    }
    evo_ckpt_shards_close(&s);
    return EVO_EXIT_OK;
}
