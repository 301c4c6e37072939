/* ckpt_layout.c - the sharded layout of checkpoints (ckpt_layout.h):
 * where each tensor goes, opening a checkpoint of any layout, and writing
 * one in another. Pieces are copied as bytes of their stored dtype, so a
 * reshard there and back gives the same bytes. */
#include "formats/ckpt_layout.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The split of every tensor of a block, by its name after "blocks.N.". */
static const struct {
    const char *name;
    evo_split split;
} block_rules[] = {
    {"attn_norm.weight", EVO_SPLIT_NONE}, {"attn.q.weight", EVO_SPLIT_DIM0},   {"attn.q.bias", EVO_SPLIT_DIM0},
    {"attn.k.weight", EVO_SPLIT_DIM0},    {"attn.k.bias", EVO_SPLIT_DIM0},     {"attn.v.weight", EVO_SPLIT_DIM0},
    {"attn.v.bias", EVO_SPLIT_DIM0},      {"attn.o.weight", EVO_SPLIT_DIM1},   {"attn.o.bias", EVO_SPLIT_RANK0},
    {"mlp_norm.weight", EVO_SPLIT_NONE},  {"mlp.gate.weight", EVO_SPLIT_DIM0}, {"mlp.up.weight", EVO_SPLIT_DIM0},
    {"mlp.down.weight", EVO_SPLIT_DIM1},
};

/* The place of one tensor, by its name; -1 for a name without a rule. */
static int place_of(const char *name, const evo_model *m, uint32_t pp, evo_ckpt_place *out)
{
    static const struct {
        const char *name;
        evo_split split;
        int last; /* on the last stage, else the first */
    } top[] = {{"embedding.weight", EVO_SPLIT_DIM1, 0},
               {"norm.weight", EVO_SPLIT_NONE, 1},
               {"head.weight", EVO_SPLIT_DIM0, 1}};
    for (size_t k = 0; k < sizeof top / sizeof *top; k++)
        if (!strcmp(name, top[k].name)) {
            *out = (evo_ckpt_place){.split = top[k].split, .stage = top[k].last ? pp - 1 : 0};
            return 0;
        }
    char *rest;
    if (strncmp(name, "blocks.", 7) || name[7] < '0' || name[7] > '9')
        return -1;
    unsigned long layer = strtoul(name + 7, &rest, 10);
    if (*rest != '.' || layer >= m->layers)
        return -1;
    for (size_t k = 0; k < sizeof block_rules / sizeof *block_rules; k++)
        if (!strcmp(rest + 1, block_rules[k].name)) {
            out->split = block_rules[k].split;
            out->stage = evo_model_layer_stage(m->layers, m->chunks, pp, (uint32_t)layer);
            return 0;
        }
    return -1;
}

int evo_ckpt_layout_places(const evo_model *m, const evo_ckpt_layout *l, evo_ckpt_place *places, evo_err *e)
{
    if (!l->tp || !l->pp)
        return evo_errf(e, "the tensor and pipeline parallel sizes must be at least 1");
    const struct {
        uint64_t n;
        const char *what;
    } parts[] = {{m->heads, "attention heads"}, {m->kv_heads, "key/value heads"}, {m->ffn, "MLP width"},
                 {m->vocab, "vocabulary"}};
    for (size_t k = 0; k < sizeof parts / sizeof *parts; k++)
        if (parts[k].n % l->tp)
            return evo_errf(e, "tensor parallel size %u does not divide the %s (%" PRIu64 ")", l->tp, parts[k].what,
                            parts[k].n);
    if (l->pp > m->layers / m->chunks)
        return evo_errf(e, "pipeline parallel size %u is more than the %u layers of a chunk (%u layers in %u chunks: "
                           "every stage needs one of each)",
                        l->pp, m->layers / m->chunks, m->layers, m->chunks);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *ti = &m->tensors[i];
        if (place_of(ti->name, m, l->pp, &places[i]) < 0)
            return evo_errf(e, "tensor %s: no layout rule for it", ti->name);
        evo_split s = places[i].split;
        if ((s == EVO_SPLIT_DIM0 && ti->shape[0] % l->tp) ||
            (s == EVO_SPLIT_DIM1 && (ti->ndim < 2 || ti->shape[1] % l->tp)))
            return evo_errf(e, "tensor %s: dimension %d of [%" PRIu64 ", %" PRIu64 "] does not split %u ways",
                            ti->name, s == EVO_SPLIT_DIM1, ti->shape[0], ti->shape[1], l->tp);
    }
    return 0;
}

void evo_ckpt_piece_shape(const evo_tensor_info *ti, evo_split s, uint32_t tp, uint64_t shape[2])
{
    shape[0] = ti->shape[0] / (s == EVO_SPLIT_DIM0 ? tp : 1);
    shape[1] = ti->shape[1] / (s == EVO_SPLIT_DIM1 ? tp : 1);
}

int evo_model_part(evo_model *part, const evo_model *m, const evo_ckpt_layout *l, uint32_t t, uint32_t p,
                   evo_err *e)
{
    evo_ckpt_place *places = evo_calloc(m->n_tensors + 1, sizeof *places);
    if (evo_ckpt_layout_places(m, l, places, e) < 0) {
        free(places);
        return -1;
    }
    *part = *m;
    part->tensors = evo_malloc((m->n_tensors + 1) * sizeof *part->tensors);
    part->n_tensors = 0;
    part->n_params = 0;
    part->tp = l->tp;
    part->tp_rank = t;
    part->pp = l->pp;
    part->pp_rank = p;
    /* one pipeline stage is the whole model, whatever its chunks */
    part->chunks = l->pp > 1 ? m->chunks : 1;
    for (uint32_t c = 0; c < part->chunks; c++)
        evo_model_stage_layers(m->layers, part->chunks, l->pp, p, c, &part->first[c], &part->end[c]);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const evo_tensor_info *whole = &m->tensors[i];
        evo_split split = places[i].split;
        if (places[i].stage != p || !evo_ckpt_holds(split, t))
            continue;
        evo_tensor_info *piece = &part->tensors[part->n_tensors++];
        *piece = *whole;
        evo_ckpt_piece_shape(whole, split, l->tp, piece->shape);
        piece->numel = piece->shape[0] * (piece->ndim > 1 ? piece->shape[1] : 1);
        piece->tp_replicated = l->tp > 1 && split == EVO_SPLIT_NONE;
        piece->offset = part->n_params;
        part->n_params += piece->numel;
        /* rows split: a contiguous block of whole rows; columns split: the
         * same rows, a block of columns */
        if (split == EVO_SPLIT_DIM0)
            piece->src_offset += t * piece->numel;
        else if (split == EVO_SPLIT_DIM1)
            piece->src_offset += t * piece->shape[1];
    }
    free(places);
    return 0;
}

typedef struct {
    uint64_t numel;
    size_t i;
} sized;

static int larger_first(const void *a, const void *b)
{
    const sized *x = a, *y = b;
    if (x->numel != y->numel)
        return x->numel > y->numel ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* a stable sort, as Python's sorted() */
}

void evo_ckpt_zero_ranks(const uint64_t *numel, size_t n, uint32_t zero, uint32_t *rank)
{
    sized *order = evo_malloc((n ? n : 1) * sizeof *order);
    uint64_t *load = evo_calloc(zero, sizeof *load);
    for (size_t i = 0; i < n; i++)
        order[i] = (sized){numel[i], i};
    qsort(order, n, sizeof *order, larger_first);
    for (size_t k = 0; k < n; k++) {
        uint32_t r = 0;
        for (uint32_t z = 1; z < zero; z++)
            if (load[z] < load[r])
                r = z;
        rank[order[k].i] = r;
        load[r] += order[k].numel;
    }
    free(load);
    free(order);
}

uint64_t evo_ckpt_zero_owned(const evo_model *m, uint32_t zero, uint32_t z, uint32_t *owner)
{
    uint64_t *numel = evo_malloc((m->n_tensors ? m->n_tensors : 1) * sizeof *numel), owned = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        numel[i] = m->tensors[i].numel;
    evo_ckpt_zero_ranks(numel, m->n_tensors, zero, owner);
    for (size_t i = 0; i < m->n_tensors; i++)
        owned += owner[i] == z ? numel[i] : 0;
    free(numel);
    return owned;
}

/* --- opening a checkpoint of any layout --------------------------------------- */

static void shard_name(char *buf, size_t n, int optimizer, uint32_t t, uint32_t p, uint32_t z)
{
    if (optimizer)
        snprintf(buf, n, "optimizer_tp%u_pp%u_zo%u.evo", t, p, z);
    else
        snprintf(buf, n, "model_tp%u_pp%u.evo", t, p);
}

/* Whether name is a model (or optimizer) shard's: its ranks r[3], each
 * below 65536; the name must be as shard_name writes it. */
static int parse_shard_name(const char *name, int optimizer, uint32_t r[3])
{
    unsigned long v[3] = {0};
    const char *s = name, *const marks[3] = {optimizer ? "optimizer_tp" : "model_tp", "_pp", "_zo"};
    for (int k = 0; k < 2 + optimizer; k++) {
        size_t len = strlen(marks[k]);
        char *end;
        if (strncmp(s, marks[k], len) || s[len] < '0' || s[len] > '9')
            return 0;
        v[k] = strtoul(s + len, &end, 10);
        if (v[k] > 65535)
            return 0;
        s = end;
    }
    char canon[80];
    shard_name(canon, sizeof canon, optimizer, (uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2]);
    if (strcmp(canon, name)) /* no leading zeros, nothing after */
        return 0;
    for (int k = 0; k < 3; k++)
        r[k] = (uint32_t)v[k];
    return 1;
}

int evo_ckpt_is_shard(const char *name)
{
    uint32_t r[3];
    return parse_shard_name(name, 0, r) || parse_shard_name(name, 1, r);
}

/* The first shard file of the layout that the marker lacks (there is one:
 * fewer files than the layout has were found). */
static int missing_shard(const evo_ckpt_shards *s, int optimizer, evo_err *e)
{
    const evo_ckpt_layout *l = &s->layout;
    uint32_t zero = optimizer ? l->zero : 1;
    char name[80];
    for (uint32_t p = 0; p < l->pp; p++)
        for (uint32_t t = 0; t < l->tp; t++)
            for (uint32_t z = 0; z < zero; z++) {
                shard_name(name, sizeof name, optimizer, t, p, z);
                if (!evo_ckpt_manifest_find(&s->manifest, name))
                    goto found;
            }
found:
    if (optimizer)
        return evo_errf(e, "%s: no %s (its files make a tp %u, pp %u, zero %u layout)", s->dir, name, l->tp, l->pp,
                        l->zero);
    return evo_errf(e, "%s: no %s (its files make a tp %u, pp %u layout)", s->dir, name, l->tp, l->pp);
}

/* The layout the marker's file names make: every shard of it present. */
static int find_layout(evo_ckpt_shards *s, evo_err *e)
{
    uint32_t max[3] = {0}, r[3];
    uint64_t n[2] = {0};
    for (size_t f = 0; f < s->manifest.n; f++)
        for (int opt = 0; opt < 2; opt++)
            if (parse_shard_name(s->manifest.files[f].name, opt, r)) {
                n[opt]++;
                for (int k = 0; k < 2 + opt; k++)
                    max[k] = r[k] > max[k] ? r[k] : max[k];
            }
    if (!n[0])
        return evo_errf(e, "%s: no model file (model_tp0_pp0.evo) in its marker", s->dir);
    s->layout = (evo_ckpt_layout){max[0] + 1, max[1] + 1, n[1] ? max[2] + 1 : 0};
    /* Names are unique and each within the ranges, so a count short of
     * the layout's means a file is missing. */
    for (int opt = 0; opt < 2; opt++)
        if (n[opt] && n[opt] != (uint64_t)s->layout.tp * s->layout.pp * (opt ? s->layout.zero : 1))
            return missing_shard(s, opt, e);
    return 0;
}

static evo_ckpt_file *model_file(const evo_ckpt_shards *s, uint32_t t, uint32_t p)
{
    return &s->files[(size_t)p * s->layout.tp + t];
}

static evo_ckpt_file *optim_file(const evo_ckpt_shards *s, uint32_t t, uint32_t p, uint32_t z)
{
    size_t n_model = (size_t)s->layout.tp * s->layout.pp;
    return &s->files[n_model + ((size_t)p * s->layout.tp + t) * s->layout.zero + z];
}

/* Opens one shard and checks its meta against its name and the other
 * files: kind, ranks, step, dtype. */
static int open_shard(evo_ckpt_shards *s, evo_ckpt_file *c, int optimizer, uint32_t t, uint32_t p, uint32_t z,
                      unsigned flags, evo_err *e)
{
    char name[80];
    shard_name(name, sizeof name, optimizer, t, p, z);
    char *path = evo_path_join(s->dir, name);
    int rc = flags & EVO_CKPT_CHECKSUMS ? evo_ckpt_open(c, path, e) : evo_ckpt_open_unchecked(c, path, e);
    free(path);
    if (rc < 0)
        return -1;
    const evo_ckpt_meta *m = &c->meta;
    uint32_t zero = optimizer ? s->layout.zero : 1;
    if (m->kind != (optimizer ? EVO_CKPT_OPTIMIZER : EVO_CKPT_MODEL))
        return evo_errf(e, "%s: offset 64: holds %s, its name says %s", c->f.path,
                        m->kind == EVO_CKPT_MODEL ? "weights" : "optimizer state",
                        optimizer ? "optimizer state" : "weights");
    if (m->tp_rank != t || m->tp_size != s->layout.tp || m->pp_rank != p || m->pp_size != s->layout.pp ||
        m->zero_rank != z || m->zero_size != zero)
        return evo_errf(e,
                        "%s: offset 72: ranks tp %u/%u, pp %u/%u, zero %u/%u; its name and the other files say "
                        "tp %u/%u, pp %u/%u, zero %u/%u",
                        c->f.path, m->tp_rank, m->tp_size, m->pp_rank, m->pp_size, m->zero_rank, m->zero_size, t,
                        s->layout.tp, p, s->layout.pp, z, zero);
    if (m->step != s->step)
        return evo_errf(e, "%s: offset 96: step %" PRIu64 ", the checkpoint's is %" PRIu64, c->f.path, m->step,
                        s->step);
    const evo_ckpt_file *first = optimizer ? optim_file(s, 0, 0, 0) : model_file(s, 0, 0);
    if (c != first && m->dtype != first->meta.dtype)
        return evo_errf(e, "%s: offset 68: dtype %s, %s has %s", c->f.path, evo_ckpt_dtype_name(m->dtype),
                        first->f.path, evo_ckpt_dtype_name(first->meta.dtype));
    s->dtype[optimizer] = m->dtype;
    return 0;
}

/* Finds prefix+name among files[0..n) (the zero ranks of a shard, or the
 * model file), once, with the piece's shape; claims the entry. */
static int find_piece(evo_ckpt_piece *out, evo_ckpt_file *const *files, uint8_t *const *claimed, uint32_t n,
                      const char *prefix, const evo_tensor_info *ti, const uint64_t shape[2], evo_err *e)
{
    char name[EVO_CKPT_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, ti->name);
    *out = (evo_ckpt_piece){0};
    for (uint32_t z = 0; z < n; z++) {
        const evo_ckpt_tensor *t = evo_ckpt_find(files[z], name);
        if (!t)
            continue;
        if (out->file)
            return evo_errf(e, "%s: tensor %s, also in %s", files[z]->f.path, name, out->file->f.path);
        *out = (evo_ckpt_piece){files[z], t};
        claimed[z][t - files[z]->tensors] = 1;
    }
    if (!out->file)
        return evo_errf(e, "%s: no tensor %s (was the model changed in the config?)", files[0]->f.path, name);
    const evo_ckpt_tensor *t = out->t;
    if (t->ndim != ti->ndim || t->shape[0] != shape[0] || (ti->ndim > 1 && t->shape[1] != shape[1])) {
        char have[64], want[64];
        evo_ckpt_format_shape(have, sizeof have, t->ndim, t->shape);
        evo_ckpt_format_shape(want, sizeof want, ti->ndim, shape);
        return evo_errf(e, "%s: tensor %s has shape %s, the configured model's piece is %s", out->file->f.path, name,
                        have, want);
    }
    return 0;
}

/* The pieces of shard (t, p): the model file's, and the optimizer's
 * across its zero files; each file holding exactly those. */
static int match_shard(evo_ckpt_shards *s, uint32_t t, uint32_t p, evo_err *e)
{
    const evo_model *m = &s->model;
    uint32_t zero = s->layout.zero, n_files = 1 + zero;
    evo_ckpt_file **files = evo_malloc(n_files * sizeof *files);
    uint8_t **claimed = evo_malloc(n_files * sizeof *claimed);
    files[0] = model_file(s, t, p);
    for (uint32_t z = 0; z < zero; z++)
        files[1 + z] = optim_file(s, t, p, z);
    for (uint32_t f = 0; f < n_files; f++)
        claimed[f] = evo_calloc(files[f]->meta.n_tensors + 1, 1);
    static const char *const prefixes[] = {"", "adam.m.", "adam.v."};
    int rc = 0;
    for (size_t i = 0; i < m->n_tensors && rc == 0; i++) {
        const evo_ckpt_place *pl = &s->places[i];
        if (pl->stage != p || !evo_ckpt_holds(pl->split, t))
            continue;
        uint64_t shape[2];
        evo_ckpt_piece_shape(&m->tensors[i], pl->split, s->layout.tp, shape);
        for (int k = 0; k < (zero ? 3 : 1) && rc == 0; k++)
            rc = find_piece(&s->pieces[((size_t)k * m->n_tensors + i) * s->layout.tp + t], k ? files + 1 : files,
                            k ? claimed + 1 : claimed, k ? zero : 1, prefixes[k], &m->tensors[i], shape, e);
    }
    for (uint32_t f = 0; f < n_files && rc == 0; f++)
        for (uint64_t j = 0; j < files[f]->meta.n_tensors; j++)
            if (!claimed[f][j]) {
                rc = evo_errf(e, "%s: tensor %s is not one of this shard's (tp %u, pp %u), or is there twice",
                              files[f]->f.path, files[f]->tensors[j].name, t, p);
                break;
            }
    for (uint32_t f = 0; f < n_files; f++)
        free(claimed[f]);
    free(claimed);
    free(files);
    return rc;
}

int evo_ckpt_shards_open(evo_ckpt_shards *s, const char *dir, unsigned flags, evo_err *e)
{
    *s = (evo_ckpt_shards){.dir = evo_strdup(dir)};
    char *cpath = evo_path_join(dir, EVO_CKPT_CONFIG_FILE);
    evo_config_defaults(&s->cfg);
    if (evo_ckpt_read_marker(&s->manifest, dir, e) < 0 ||
        evo_ckpt_check_files(dir, &s->manifest, flags & EVO_CKPT_CHECKSUMS ? EVO_CKPT_HASH_TEXT : EVO_CKPT_HASH_NONE,
                             e) < 0)
        goto fail;
    evo_ckpt_dir_step(dir, &s->step);
    if (!evo_ckpt_manifest_find(&s->manifest, EVO_CKPT_CONFIG_FILE)) {
        evo_errf(e, "%s: no %s in its marker", dir, EVO_CKPT_CONFIG_FILE);
        goto fail;
    }
    if (evo_config_load(&s->cfg, cpath, e) < 0)
        goto fail;
    if (evo_config_resolve(&s->cfg, e) < 0 || evo_model_describe(&s->model, &s->cfg, e) < 0) {
        evo_err_prefix(e, "%s", cpath);
        goto fail;
    }
    if (find_layout(s, e) < 0)
        goto fail;
    s->places = evo_calloc(s->model.n_tensors, sizeof *s->places);
    if (evo_ckpt_layout_places(&s->model, &s->layout, s->places, e) < 0) {
        evo_err_prefix(e, "%s: its files make a tp %u, pp %u layout", dir, s->layout.tp, s->layout.pp);
        goto fail;
    }
    const evo_ckpt_layout *l = &s->layout;
    s->n_files = (size_t)l->tp * l->pp * (1 + l->zero);
    s->files = evo_calloc(s->n_files, sizeof *s->files);
    for (uint32_t p = 0; p < l->pp; p++)
        for (uint32_t t = 0; t < l->tp; t++) {
            if (open_shard(s, model_file(s, t, p), 0, t, p, 0, flags, e) < 0)
                goto fail;
            for (uint32_t z = 0; z < l->zero; z++)
                if (open_shard(s, optim_file(s, t, p, z), 1, t, p, z, flags, e) < 0)
                    goto fail;
        }
    s->pieces = evo_calloc(3 * s->model.n_tensors * l->tp, sizeof *s->pieces);
    for (uint32_t p = 0; p < l->pp; p++)
        for (uint32_t t = 0; t < l->tp; t++)
            if (match_shard(s, t, p, e) < 0)
                goto fail;
    free(cpath);
    return 0;
fail:
    free(cpath);
    evo_ckpt_shards_close(s);
    return -1;
}

void evo_ckpt_shards_close(evo_ckpt_shards *s)
{
    if (s->files) {
        for (size_t f = 0; f < s->n_files; f++)
            if (s->files[f].f.path)
                evo_ckpt_close(&s->files[f]);
    }
    free(s->files);
    free(s->pieces);
    free(s->places);
    evo_model_free(&s->model);
    evo_ckpt_manifest_free(&s->manifest);
    free(s->dir);
    *s = (evo_ckpt_shards){0};
}

int evo_ckpt_shards_lookup(const evo_ckpt_shards *s, const char *name, int *kind, size_t *i)
{
    *kind = EVO_CKPT_WEIGHTS;
    if (!strncmp(name, "adam.m.", 7) || !strncmp(name, "adam.v.", 7)) {
        if (!s->layout.zero)
            return 0;
        *kind = name[5] == 'm' ? EVO_CKPT_ADAM_M : EVO_CKPT_ADAM_V;
        name += 7;
    }
    for (*i = 0; *i < s->model.n_tensors; (*i)++)
        if (!strcmp(s->model.tensors[*i].name, name))
            return 1;
    return 0;
}

/* Piece t of tensor i in a layout of tp ranks, gathered straight from the
 * stored pieces. Both layouts cut the same dimension into equal bands, so
 * the wanted band [lo, hi) overlaps a run of stored bands, and each overlap
 * is copied as it lies: whole rows for a row split, a run of every row for
 * a column split. tp 1, t 0 is the whole tensor. Nothing is assembled: a
 * reshard to tp N reads every stored byte once, not N times. */
static void read_piece(const evo_ckpt_shards *s, int kind, size_t i, uint32_t t, uint32_t tp, uint8_t *out)
{
    const evo_tensor_info *ti = &s->model.tensors[i];
    evo_split split = s->places[i].split;
    size_t esize = evo_dtype_size(evo_ckpt_shards_dtype(s, kind));
    const uint8_t *src = NULL;
    if (split != EVO_SPLIT_DIM0 && split != EVO_SPLIT_DIM1) { /* whole wherever it is held */
        const evo_ckpt_piece *pc = evo_ckpt_shards_piece(s, kind, i, 0);
        memcpy(out, pc->file->data + pc->t->offset * esize, ti->numel * esize);
        return;
    }
    /* The split dimension has `dim` entries; everything else is `rows`
     * runs (a column split) or one run per entry (a row split) of `unit`. */
    uint64_t dim = split == EVO_SPLIT_DIM0 ? ti->shape[0] : ti->shape[1];
    uint64_t unit = split == EVO_SPLIT_DIM0 ? ti->numel / ti->shape[0] * esize : esize;
    uint64_t rows = split == EVO_SPLIT_DIM0 ? 1 : ti->shape[0];
    uint64_t have = dim / s->layout.tp, want = dim / tp, lo = t * want, hi = lo + want;
    for (uint64_t u = lo / have; u * have < hi; u++) {
        const evo_ckpt_piece *pc = evo_ckpt_shards_piece(s, kind, i, (uint32_t)u);
        src = pc->file->data + pc->t->offset * esize;
        uint64_t a = lo > u * have ? lo : u * have, b = hi < (u + 1) * have ? hi : (u + 1) * have;
        for (uint64_t r = 0; r < rows; r++)
            memcpy(out + (r * want + a - lo) * unit, src + (r * have + a - u * have) * unit, (b - a) * unit);
    }
}

void evo_ckpt_shards_read(const evo_ckpt_shards *s, int kind, size_t i, void *out)
{
    read_piece(s, kind, i, 0, 1, out);
}

void evo_ckpt_shards_read_piece_f32(const evo_ckpt_shards *s, int kind, size_t i, uint32_t t, uint32_t tp,
                                    float *out)
{
    evo_dtype dt = evo_ckpt_shards_dtype(s, kind);
    if (dt == EVO_F32) {
        read_piece(s, kind, i, t, tp, (uint8_t *)out);
        return;
    }
    evo_split split = s->places[i].split;
    size_t numel = s->model.tensors[i].numel / (split == EVO_SPLIT_DIM0 || split == EVO_SPLIT_DIM1 ? tp : 1);
    void *raw = evo_malloc(numel * evo_dtype_size(dt));
    read_piece(s, kind, i, t, tp, raw);
    evo_dtype_cast(out, EVO_F32, raw, dt, numel);
    free(raw);
}

void evo_ckpt_shards_read_f32(const evo_ckpt_shards *s, int kind, size_t i, float *out)
{
    evo_ckpt_shards_read_piece_f32(s, kind, i, 0, 1, out);
}

/* --- writing a layout ----------------------------------------------------------- */

/* One output file: its table, and for each entry the kind and model
 * index of the tensor whose piece it is. */
typedef struct {
    evo_ckpt_tensor *table;
    int *kind;
    size_t *index;
    size_t n;
} shard_plan;

static void plan_add(shard_plan *sp, const evo_ckpt_shards *s, const evo_ckpt_place *pl, uint32_t tp, int kind,
                     size_t i)
{
    static const char *const prefixes[] = {"", "adam.m.", "adam.v."};
    const evo_tensor_info *ti = &s->model.tensors[i];
    evo_ckpt_tensor *t = &sp->table[sp->n];
    *t = (evo_ckpt_tensor){.ndim = ti->ndim, .offset = sp->n ? t[-1].offset + t[-1].numel : 0};
    snprintf(t->name, sizeof t->name, "%s%s", prefixes[kind], ti->name);
    evo_ckpt_piece_shape(ti, pl->split, tp, t->shape);
    if (ti->ndim < 2)
        t->shape[1] = 0;
    t->numel = t->shape[0] * (ti->ndim > 1 ? t->shape[1] : 1);
    sp->kind[sp->n] = kind;
    sp->index[sp->n++] = i;
}

/* Gathers the planned pieces and writes them as file name of w. */
static int write_shard(const evo_ckpt_shards *s, const evo_ckpt_layout *l, const shard_plan *sp,
                       const evo_ckpt_meta *meta, evo_ckpt_writer *w, const char *name, evo_err *e)
{
    size_t esize = evo_dtype_size(meta->dtype);
    uint64_t n_el = sp->n ? sp->table[sp->n - 1].offset + sp->table[sp->n - 1].numel : 0;
    uint8_t *data = evo_malloc_large(n_el * esize + 1);
    for (size_t j = 0; j < sp->n; j++)
        read_piece(s, sp->kind[j], sp->index[j], meta->tp_rank, l->tp, data + sp->table[j].offset * esize);
    int rc = evo_ckpt_add_tensors(w, name, meta, sp->table, sp->n, data, e);
    free(data);
    return rc;
}

/* The optimizer files of shard (t, p), whose model file plan is mp. */
static int write_optimizer(const evo_ckpt_shards *s, const evo_ckpt_layout *l, const evo_ckpt_place *places,
                           const shard_plan *mp, evo_ckpt_meta meta, evo_ckpt_writer *w, shard_plan *op, evo_err *e)
{
    uint64_t *numel = evo_malloc((mp->n + 1) * sizeof *numel);
    uint32_t *rank = evo_malloc((mp->n + 1) * sizeof *rank);
    for (size_t j = 0; j < mp->n; j++)
        numel[j] = mp->table[j].numel;
    evo_ckpt_zero_ranks(numel, mp->n, l->zero, rank);
    meta.kind = EVO_CKPT_OPTIMIZER;
    meta.dtype = s->dtype[1];
    meta.zero_size = l->zero;
    int rc = 0;
    for (uint32_t z = 0; z < l->zero && rc == 0; z++) {
        op->n = 0;
        for (int kind = EVO_CKPT_ADAM_M; kind <= EVO_CKPT_ADAM_V; kind++)
            for (size_t j = 0; j < mp->n; j++)
                if (rank[j] == z)
                    plan_add(op, s, &places[mp->index[j]], l->tp, kind, mp->index[j]);
        char name[80];
        shard_name(name, sizeof name, 1, meta.tp_rank, meta.pp_rank, z);
        meta.zero_rank = z;
        rc = write_shard(s, l, op, &meta, w, name, e);
    }
    free(numel);
    free(rank);
    return rc;
}

int evo_ckpt_shards_write(const evo_ckpt_shards *s, const evo_ckpt_layout *l, evo_ckpt_writer *w, evo_err *e)
{
    const evo_model *m = &s->model;
    evo_ckpt_place *places = evo_calloc(m->n_tensors, sizeof *places);
    if (evo_ckpt_layout_places(m, l, places, e) < 0) {
        free(places);
        return -1;
    }
    shard_plan plan[2]; /* the model file's, an optimizer file's */
    for (int k = 0; k < 2; k++) {
        size_t n = (k + 1) * m->n_tensors;
        plan[k] = (shard_plan){evo_calloc(n, sizeof *plan[k].table), evo_calloc(n, sizeof *plan[k].kind),
                               evo_calloc(n, sizeof *plan[k].index), 0};
    }
    int rc = 0;
    for (uint32_t p = 0; p < l->pp && rc == 0; p++)
        for (uint32_t t = 0; t < l->tp && rc == 0; t++) {
            plan[0].n = 0;
            for (size_t i = 0; i < m->n_tensors; i++)
                if (places[i].stage == p && evo_ckpt_holds(places[i].split, t))
                    plan_add(&plan[0], s, &places[i], l->tp, EVO_CKPT_WEIGHTS, i);
            evo_ckpt_meta meta = {.kind = EVO_CKPT_MODEL, .dtype = s->dtype[0], .tp_rank = t, .tp_size = l->tp,
                                  .pp_rank = p, .pp_size = l->pp, .zero_size = 1, .step = s->step};
            char name[80];
            shard_name(name, sizeof name, 0, t, p, 0);
            rc = write_shard(s, l, &plan[0], &meta, w, name, e);
            if (rc == 0 && s->layout.zero)
                rc = write_optimizer(s, l, places, &plan[0], meta, w, &plan[1], e);
        }
    for (int k = 0; k < 2; k++) {
        free(plan[k].table);
        free(plan[k].kind);
        free(plan[k].index);
    }
    free(places);
    return rc;
}

/* --- the model, whole --------------------------------------------------------------- */

int evo_ckpt_load_model(evo_ckpt_model *out, const char *dir, evo_err *e)
{
    *out = (evo_ckpt_model){0};
    evo_ckpt_shards s;
    if (evo_ckpt_shards_open(&s, dir, EVO_CKPT_CHECKSUMS, e) < 0)
        return -1;
    out->cfg = s.cfg;
    out->model = s.model;
    out->weights = evo_malloc_large(out->model.n_params * sizeof *out->weights);
    for (size_t i = 0; i < out->model.n_tensors; i++)
        evo_ckpt_shards_read_f32(&s, EVO_CKPT_WEIGHTS, i, out->weights + out->model.tensors[i].offset);
    s.model = (evo_model){0}; /* now out's (read above through s) */
    evo_ckpt_shards_close(&s);
    return 0;
}

void evo_ckpt_model_free(evo_ckpt_model *m)
{
    free(m->weights);
    evo_model_free(&m->model);
    *m = (evo_ckpt_model){0};
}
