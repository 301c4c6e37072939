/* plan.c - which tokens go into which row: InternEvo's packed dataset.
 *
 * Documents (after --min-length and --max-doc-len) are shuffled with
 * numpy's RandomState(seed), concatenated, and the stream is cut every
 * packed_length tokens; a document crossing a row edge continues in the
 * next row. Every input is packed on its own, as InternEvo packs every
 * .bin file on its own, unless weights mix them into one stream; the parts
 * of one evo-tokenize --shard run, given in order, are one input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/np_random.h"
#include "evopack.h"

/* A document, or a --max-doc-len piece of one: the unit that is shuffled. */
typedef struct {
    uint64_t start;
    uint32_t len;
    uint16_t source;
} unit;

typedef struct {
    unit *v;
    size_t n, cap;
    uint64_t tokens;
} unit_list;

static void push_unit(unit_list *l, unit u)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = evo_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = u;
    l->tokens += u.len;
}

/* The units of one input's documents, appended to all. */
static void for_each_document(const evo_tokens_reader *r, uint16_t source, const pack_options *opt, unit_list *all,
                              evo_pack_meta *m)
{
    for (uint64_t d = 0; d < r->meta.n_docs; d++) {
        uint64_t s = evo_tokens_doc_start(r, d), len = evo_tokens_doc_start(r, d + 1) - s;
        if (len < opt->min_length) {
            m->short_docs++;
            m->short_tokens += len;
            continue;
        }
        uint64_t cap = opt->max_doc_len ? opt->max_doc_len : UINT32_MAX;
        do { /* a document over 4G tokens is split there even without --max-doc-len */
            uint64_t take = len < cap ? len : cap;
            push_unit(all, (unit){s, (uint32_t)take, source});
            s += take;
            len -= take;
        } while (len);
    }
}

/* The inputs from `first` that are the parts 0 to N-1 of one evo-tokenize
 * --shard run, in order and without weights: packed as the one input they
 * came from, the same rows. Returns how many there are (1 for any other
 * input). */
static int shard_run(const pack_input *in, int n, int first)
{
    const evo_tokens_meta *m = &in[first].tok.meta;
    int parts = m->shards;
    if (!parts || m->shard != 0 || first + parts > n)
        return 1;
    for (int k = 0; k < parts; k++) {
        const evo_tokens_meta *p = &in[first + k].tok.meta;
        if (p->shards != parts || p->shard != k || in[first + k].weight > 0)
            return 1;
    }
    return parts;
}

/* Steps 1-3 of evo-pack(1): filter, split, hold out validation documents;
 * over the documents of `count` inputs from `first`, one after the other. */
static void build_units(const pack_input *in, int first, int count, const pack_options *opt, unit_list *train,
                        unit_list *valid, evo_pack_meta *m)
{
    unit_list all = {0};
    for (int i = first; i < first + count; i++)
        all.cap += in[i].tok.meta.n_docs;
    all.cap += !all.cap; /* one allocation in the usual case */
    all.v = evo_malloc_large(all.cap * sizeof *all.v);
    for (int i = first; i < first + count; i++)
        for_each_document(&in[i].tok, (uint16_t)i, opt, &all, m);
    uint64_t k = 0;

    if (opt->valid > 0)
        k = opt->valid < 1 ? (uint64_t)nearbyint(opt->valid * (double)all.n)
                           : (opt->valid < (double)all.n ? (uint64_t)opt->valid : all.n);
    if (!k) {
        *train = all;
        return;
    }
    uint8_t *is_valid = evo_calloc(all.n, 1);
    evo_np_random rng;
    evo_np_random_seed(&rng, (uint32_t)opt->seed + 1);
    uint64_t *perm = evo_malloc(all.n * sizeof *perm);
    for (size_t i = 0; i < all.n; i++)
        perm[i] = i;
    evo_np_random_shuffle(&rng, perm, all.n, sizeof *perm);
    for (uint64_t i = 0; i < k; i++)
        is_valid[perm[i]] = 1;
    free(perm);
    for (size_t i = 0; i < all.n; i++)
        push_unit(is_valid[i] ? valid : train, all.v[i]);
    free(is_valid);
    free(all.v);
}

/* Cuts a stream of units into rows of packed_length, up to limit tokens. */
typedef struct {
    evo_pack_writer *w;
    uint64_t length, limit, fed, n_docs;
    int into_one;
    uint32_t width;
    evo_progress *prog;
} cutter;

static int feed(cutter *c, unit u, evo_err *e)
{
    for (uint64_t off = 0; off < u.len && c->fed < c->limit;) {
        uint64_t take = u.len - off, room = c->length - c->w->row_fill, left = c->limit - c->fed;
        take = take < room ? take : room;
        take = take < left ? take : left;
        c->n_docs += off == 0;
        /* The last token of a document has no label; in pack-into-one mode
         * (InternEvo's PackedDatasetWithoutCuSeqlen) neither has a cut piece's. */
        int unlabelled = off + take == u.len || c->into_one;
        evo_pack_piece q = {u.start + off, (uint32_t)take, u.source, unlabelled ? EVO_PIECE_LAST_UNLABELLED : 0};
        if (evo_pack_add_piece(c->w, q, e) < 0)
            return -1;
        off += take;
        c->fed += take;
        if (c->w->row_fill == c->length && evo_pack_end_row(c->w, e) < 0)
            return -1;
    }
    evo_progress_update(c->prog, c->fed * c->width, c->w->rows.len / 8 - 1, "rows");
    return 0;
}

/* A short last row is padded (only reached with a kept tail). */
static int close_rows(cutter *c, evo_err *e) { return c->w->row_fill ? evo_pack_end_row(c->w, e) : 0; }

static uint64_t stream_limit(uint64_t total, const cutter *c, int keep_tail, evo_pack_meta *m)
{
    uint64_t limit = keep_tail ? total : total / c->length * c->length;
    m->tail_tokens += total - limit;
    return limit;
}

/* n_epochs shuffles of the units, each by the same generator continuing.
 * InternEvo shuffles an index and gathers; shuffling the units themselves
 * with the same swaps gives the same order with half the cache misses.
 * Every epoch permutes the original order (a fresh arange in InternEvo), so
 * only a second epoch needs a copy; one epoch shuffles the list in place. */
static int pack_shuffled(cutter *c, unit_list *l, evo_np_random *rng, uint32_t epochs, evo_err *e)
{
    unit *order = epochs > 1 ? evo_malloc_large((l->n ? l->n : 1) * sizeof *order) : l->v;
    int rc = 0;
    for (uint32_t ep = 0; ep < epochs && c->fed < c->limit && rc == 0; ep++) {
        if (order != l->v)
            memcpy(order, l->v, l->n * sizeof *order);
        evo_np_random_shuffle(rng, order, l->n, sizeof *order);
        for (size_t i = 0; i < l->n && c->fed < c->limit && rc == 0; i++)
            rc = feed(c, order[i], e);
    }
    if (order != l->v)
        free(order);
    return rc;
}

/* Weighted mixing: each input an endless shuffled stream (a new shuffle
 * when it runs out), the next document always from the input furthest
 * below its share of the tokens so far. */
typedef struct {
    const unit_list *l;
    double weight;
    evo_np_random rng;
    uint64_t *idx;
    size_t pos;
    uint64_t emitted;
} mix_stream;

static int pack_mixed(cutter *c, const unit_list *train, const double *weight, int n, const pack_options *opt,
                      evo_err *e)
{
    mix_stream *s = evo_calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++) {
        s[i] = (mix_stream){.l = &train[i], .weight = weight[i] ? weight[i] : 1, .pos = train[i].n};
        evo_np_random_seed(&s[i].rng, (uint32_t)(opt->seed + 1000 * (uint64_t)(i + 1)));
        s[i].idx = evo_malloc((train[i].n ? train[i].n : 1) * sizeof *s[i].idx);
    }
    int rc = 0;
    while (c->fed < c->limit && rc == 0) {
        mix_stream *best = NULL;
        for (int i = 0; i < n; i++)
            if (s[i].l->tokens && (!best || (double)s[i].emitted / s[i].weight < (double)best->emitted / best->weight))
                best = &s[i];
        if (!best)
            break;
        if (best->pos == best->l->n) {
            for (size_t i = 0; i < best->l->n; i++)
                best->idx[i] = i;
            evo_np_random_shuffle(&best->rng, best->idx, best->l->n, sizeof *best->idx);
            best->pos = 0;
        }
        unit u = best->l->v[best->idx[best->pos++]];
        best->emitted += u.len;
        rc = feed(c, u, e);
    }
    for (int i = 0; i < n; i++)
        free(s[i].idx);
    free(s);
    return rc;
}

static void fill_meta(evo_pack_meta *m, const pack_input *in, int n, const pack_options *opt, int mixed)
{
    const evo_tokens_meta *t = &in[0].tok.meta;
    m->seq_len = opt->seq_len;
    m->micro_bsz = opt->micro_bsz;
    m->flags |= (opt->into_one ? EVO_PACK_INTO_ONE : 0) | (opt->keep_tail ? EVO_PACK_KEEP_TAIL : 0) |
                (mixed ? EVO_PACK_MIXED : 0);
    m->n_sources = (uint32_t)n;
    m->seed = opt->seed;
    m->min_length = opt->min_length;
    m->max_doc_len = opt->max_doc_len;
    m->epochs = opt->epochs;
    m->vocab_size = t->vocab_size;
    m->token_width = t->token_width;
    m->bos_id = t->bos_id;
    m->eos_id = t->eos_id;
    memcpy(m->fingerprint, t->fingerprint, 16);
    memcpy(m->tokenizer_name, t->tokenizer_name, sizeof m->tokenizer_name);
    m->valid_fraction = opt->valid;
    for (int i = 0; i < n; i++)
        m->source_tokens += in[i].tok.meta.n_tokens;
}

int plan_pack(pack_input *in, int n, const pack_options *opt, evo_pack_writer *w, evo_pack_writer *vw,
              evo_pack_meta *meta, evo_pack_meta *vmeta, evo_err *e)
{
    int mixed = 0;
    for (int i = 0; i < n; i++)
        mixed |= in[i].weight > 0;
    fill_meta(meta, in, n, opt, mixed);
    /* the streams: an input, or the parts of one --shard run */
    unit_list *train = evo_calloc((size_t)n, sizeof *train), *valid = evo_calloc((size_t)n, sizeof *valid);
    double *weight = evo_calloc((size_t)n, sizeof *weight);
    int streams = 0;
    for (int i = 0, count; i < n; i += count, streams++) {
        count = shard_run(in, n, i);
        build_units(in, i, count, opt, &train[streams], &valid[streams], meta);
        weight[streams] = in[i].weight;
        meta->valid_docs += valid[streams].n;
        meta->valid_tokens += valid[streams].tokens;
    }
    evo_progress prog;
    uint64_t total = 0;
    for (int i = 0; i < streams; i++)
        total += train[i].tokens * opt->epochs;
    evo_progress_start(&prog, opt->progress, total * meta->token_width);
    cutter c = {.w = w, .length = evo_pack_length(meta), .into_one = opt->into_one, .width = meta->token_width,
                .prog = &prog};
    int rc = 0;
    if (mixed) {
        /* The mixed stream never runs dry: --tokens rounds down to whole
         * rows, or up with --keep-tail, and no row needs padding. */
        uint64_t budget = opt->budget ? opt->budget : total, rows = budget / c.length;
        rows += opt->keep_tail && budget % c.length;
        meta->budget = opt->budget;
        c.limit = rows * c.length;
        meta->tail_tokens = budget > c.limit ? budget - c.limit : 0;
        rc = pack_mixed(&c, train, weight, streams, opt, e);
    } else {
        for (int i = 0; i < streams && rc == 0; i++) {
            evo_np_random rng;
            evo_np_random_seed(&rng, (uint32_t)opt->seed);
            c.fed = 0;
            c.limit = stream_limit(train[i].tokens * opt->epochs, &c, opt->keep_tail, meta);
            rc = pack_shuffled(&c, &train[i], &rng, opt->epochs, e);
            if (rc == 0)
                rc = close_rows(&c, e);
        }
    }
    evo_progress_end(&prog);
    meta->n_docs = c.n_docs;
    if (rc == 0 && vw) { /* validation: held-out documents in file order, nothing dropped */
        fill_meta(vmeta, in, n, opt, mixed);
        vmeta->flags |= EVO_PACK_VALID | EVO_PACK_KEEP_TAIL;
        vmeta->epochs = 1;
        vmeta->valid_docs = meta->valid_docs;
        vmeta->valid_tokens = meta->valid_tokens;
        vmeta->short_docs = meta->short_docs;
        vmeta->short_tokens = meta->short_tokens;
        cutter vc = {.w = vw, .length = evo_pack_length(vmeta), .into_one = opt->into_one,
                     .width = vmeta->token_width, .prog = &prog};
        /* Per input, like the training rows; one stream when mixed. */
        for (int i = 0; i < streams && rc == 0; i++) {
            if (!mixed || i == 0)
                vc.fed = vc.limit = 0;
            vc.limit += valid[i].tokens;
            for (size_t j = 0; j < valid[i].n && rc == 0; j++)
                rc = feed(&vc, valid[i].v[j], e);
            if (rc == 0 && (!mixed || i == streams - 1))
                rc = close_rows(&vc, e);
        }
        vmeta->n_docs = vc.n_docs;
    }
    for (int i = 0; i < streams; i++) {
        free(train[i].v);
        free(valid[i].v);
    }
    free(train);
    free(valid);
    free(weight);
    return rc;
}
