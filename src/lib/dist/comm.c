/* comm.c - what every comm shares: the volume a collective moves, the
 * bootstrap of per-group ids. */
#include "dist/comm.h"

#include <stdio.h>
#include <string.h>

uint64_t evo_comm_volume(evo_coll kind, uint64_t bytes, uint32_t size)
{
    if (size <= 1)
        return 0;
    if (kind == EVO_SENDRECV)
        return bytes;
    unsigned factor = kind == EVO_ALLREDUCE ? 2 : 1;
    return (uint64_t)((unsigned __int128)bytes * factor * (size - 1) / size);
}

int evo_comm_share_ids(const evo_layout *l, const evo_world *w, size_t bytes,
                       int (*make)(void *id, size_t bytes, void *arg, evo_err *e), void *arg, unsigned char *ids,
                       evo_err *e)
{
    /* the key of id i, and the world rank that makes it */
    static const char *const channel_key[] = {"evo.id.to-next", "evo.id.to-prev", "evo.id.to-next", "evo.id.to-prev"};
    const uint32_t pp = l->pp, s = l->pp_rank;
    const uint32_t channel_maker[] = {s, s, (s + pp - 1) % pp, (s + 1) % pp};
    char key[64];
    uint32_t maker[EVO_N_IDS];
    int wanted[EVO_N_IDS];
    for (int i = 0; i < EVO_N_IDS; i++) {
        if (i < EVO_N_GROUPS) {
            wanted[i] = evo_layout_group_size(l, (evo_group)i) > 1;
            maker[i] = wanted[i] ? evo_layout_group_member(l, (evo_group)i, 0) : 0;
        } else {
            wanted[i] = pp > 1;
            maker[i] = wanted[i] ? evo_layout_group_member(l, EVO_GROUP_PIPELINE, channel_maker[i - EVO_N_GROUPS]) : 0;
        }
    }
    memset(ids, 0, EVO_N_IDS * bytes);
    for (int pass = 0; pass < 2; pass++) { /* put what this rank makes; fence; get the others' */
        for (int i = 0; i < EVO_N_IDS; i++) {
            if (!wanted[i] || (maker[i] == l->rank) != (pass == 0))
                continue;
            if (i < EVO_N_GROUPS)
                snprintf(key, sizeof key, "evo.id.%s", evo_group_name((evo_group)i));
            else
                snprintf(key, sizeof key, "%s", channel_key[i - EVO_N_GROUPS]);
            unsigned char *id = ids + (size_t)i * bytes;
            if (pass == 0 ? make(id, bytes, arg, e) < 0 || evo_world_put(w, key, id, bytes, e) < 0
                          : evo_world_get(w, maker[i], key, id, bytes, e) < 0)
                return -1;
        }
        if (pass == 0 && evo_world_fence(w, e) < 0)
            return -1;
    }
    return 0;
}
