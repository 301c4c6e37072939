/* reshard.c - a checkpoint in another parallel layout. The library cuts
 * (ckpt_layout.h); this writes the new directory as a save does: a
 * temporary directory, renamed, the marker last. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "evockpt.h"

/* The files that are not tensor shards (config.ini, state.json), as they
 * are: config.ini records the run that saved the checkpoint, and the
 * layout is the files' own. */
static int copy_others(const evo_ckpt_shards *s, evo_ckpt_writer *w, evo_err *e)
{
    for (size_t f = 0; f < s->manifest.n; f++) {
        const char *name = s->manifest.files[f].name;
        if (evo_ckpt_is_shard(name))
            continue;
        char *path = evo_path_join(s->dir, name);
        evo_buf text = {0};
        int rc = evo_read_file(path, &text, e);
        if (rc == 0)
            rc = evo_ckpt_add_bytes(w, name, text.data, text.len, e);
        evo_buf_free(&text);
        free(path);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int cmd_reshard(const ckpt_opts *o, char **args, int n)
{
    (void)n;
    uint64_t step = output_step(o->output);
    evo_ckpt_shards s;
    open_or_die(&s, args[0], EVO_CKPT_CHECKSUMS);
    if (step != s.step)
        evo_fatal("%s: the checkpoint is of step %" PRIu64 ": name its copy %" PRIu64, o->output, s.step, s.step);
    evo_ckpt_layout l = {o->layout.tp ? o->layout.tp : s.layout.tp, o->layout.pp ? o->layout.pp : s.layout.pp,
                         o->layout.zero ? o->layout.zero : s.layout.zero};
    if (!s.layout.zero)
        l.zero = 0; /* a model-only checkpoint stays one */
    evo_err e;
    evo_ckpt_place *places = evo_calloc(s.model.n_tensors, sizeof *places);
    int fits = evo_ckpt_layout_places(&s.model, &l, places, &e) == 0;
    free(places);
    if (!fits)
        evo_fatal("%s: cannot lay it out as tp %u, pp %u: %s", args[0], l.tp, l.pp, e.msg);
    evo_ckpt_writer w;
    int rc = evo_ckpt_begin_at(&w, o->output, s.step, &e);
    if (rc == 0) {
        if (copy_others(&s, &w, &e) < 0 || evo_ckpt_shards_write(&s, &l, &w, &e) < 0 || evo_ckpt_commit(&w, &e) < 0)
            rc = -1;
        evo_ckpt_abort(&w);
    }
    if (rc < 0)
        evo_fatal("%s", e.msg);
    evo_info("%s: step %" PRIu64 " as tp %u, pp %u, zero %u (from tp %u, pp %u, zero %u)", o->output, s.step, l.tp,
             l.pp, l.zero, s.layout.tp, s.layout.pp, s.layout.zero);
    evo_ckpt_shards_close(&s);
    return EVO_EXIT_OK;
}
