/* comm.c - what every comm shares: the volume a collective moves. */
#include "dist/comm.h"

uint64_t evo_comm_volume(evo_coll kind, uint64_t bytes, uint32_t size)
{
    if (size <= 1)
        return 0;
    if (kind == EVO_SENDRECV)
        return bytes;
    unsigned factor = kind == EVO_ALLREDUCE ? 2 : 1;
    return (uint64_t)((unsigned __int128)bytes * factor * (size - 1) / size);
}
