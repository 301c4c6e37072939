/* data.c - training rows from an evo-pack file.
 *
 * evo_pack_open maps the pack and its token files and verifies every
 * checksum before the first row is read. Rows are consumed in file order
 * (evo-pack has already shuffled the documents, as InternEvo's sampler
 * would); the run's position is the count of rows consumed, so a resumed
 * run continues on the next row, and the stream wraps into another epoch
 * at the end of the pack. */
#include <inttypes.h>

#include "train.h"

int train_data_open(train_data *d, const char *path, const evo_config *c, const evo_model *m, evo_err *e)
{
    *d = (train_data){0};
    if (evo_pack_open(&d->pack, path, 0, e) < 0)
        return -1;
    const evo_pack_meta *pm = &d->pack.meta;
    if (pm->seq_len != c->data.seq_len || pm->micro_bsz != c->data.micro_bsz) {
        evo_errf(e, "%s: packed with seq_len %u and micro_bsz %u, but [data] says %u and %u (repack, or change the config)",
                 path, pm->seq_len, pm->micro_bsz, c->data.seq_len, c->data.micro_bsz);
        goto fail;
    }
    if (pm->vocab_size > m->vocab) {
        evo_errf(e, "%s: its tokenizer has %u ids, more than [model] vocab_size %u", path, pm->vocab_size, m->vocab);
        goto fail;
    }
    if (!pm->n_rows) {
        evo_errf(e, "%s: holds no rows", path);
        goto fail;
    }
    if (!(pm->flags & EVO_PACK_INTO_ONE) != !c->data.pack_sample_into_one)
        evo_warn("%s: packed %s --pack-into-one but [data] pack_sample_into_one = %s; the pack decides", path,
                 pm->flags & EVO_PACK_INTO_ONE ? "with" : "without", c->data.pack_sample_into_one ? "true" : "false");
    d->content_id = evo_le64(d->pack.file.data + 24);
    evo_pack_row_init(&d->row, pm);
    return 0;
fail:
    evo_pack_close(&d->pack);
    return -1;
}

void train_data_close(train_data *d)
{
    if (d->row.tokens)
        evo_pack_row_free(&d->row);
    evo_pack_close(&d->pack);
    *d = (train_data){0};
}

const evo_pack_row *train_data_row(train_data *d, uint64_t n)
{
    evo_pack_read_row(&d->pack, n % d->pack.meta.n_rows, &d->row);
    return &d->row;
}
