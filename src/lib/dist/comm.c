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
    char key[64];
    memset(ids, 0, EVO_N_GROUPS * bytes);
    for (int g = 0; g < EVO_N_GROUPS; g++) {
        if (evo_layout_group_size(l, (evo_group)g) < 2 || evo_layout_group_rank(l, (evo_group)g) != 0)
            continue;
        snprintf(key, sizeof key, "evo.id.%s", evo_group_name((evo_group)g));
        if (make(ids + g * bytes, bytes, arg, e) < 0 || evo_world_put(w, key, ids + g * bytes, bytes, e) < 0)
            return -1;
    }
    if (evo_world_fence(w, e) < 0)
        return -1;
    for (int g = 0; g < EVO_N_GROUPS; g++) {
        if (evo_layout_group_size(l, (evo_group)g) < 2 || evo_layout_group_rank(l, (evo_group)g) == 0)
            continue;
        snprintf(key, sizeof key, "evo.id.%s", evo_group_name((evo_group)g));
        if (evo_world_get(w, evo_layout_group_member(l, (evo_group)g, 0), key, ids + g * bytes, bytes, e) < 0)
            return -1;
    }
    return 0;
}
