/* attention_plan.h - the tiling of the GPU's tensor-core attention
 * (kernels/attention_tiled.cu, flash-attention 2's algorithm): which shapes
 * it takes, and where each of its shared-memory tiles starts. One
 * definition for the launcher, the kernels and the CPU build's test
 * (tests/c/attention-plan-check), so that the three agree.
 *
 * A block is EVO_ATT_WARPS warps over a tile of EVO_ATT_TILE rows (queries
 * in the forward and dq, keys in dk/dv), EVO_ATT_FRAG rows a warp (one
 * row of 16 x 16 tensor-core fragments), and walks the other side's rows
 * EVO_ATT_TILE at a time. Tiles of 16-bit values are [EVO_ATT_TILE][hd +
 * 8] and fp32 ones [16][cols + 4]: a row pad of 16 bytes, so that the
 * rows of a fragment fall in different shared-memory banks; leading
 * dimensions stay multiples of 8 (16-bit) and 4 (fp32) elements, as
 * wmma's loads require, and every tile starts 128-byte aligned (they
 * require 32). */
#ifndef EVO_ATTENTION_PLAN_H
#define EVO_ATTENTION_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/host_device.h"
#include "compute/segment.h"

enum {
    EVO_ATT_TILE = 64,
    EVO_ATT_FRAG = 16,
    EVO_ATT_WARPS = EVO_ATT_TILE / EVO_ATT_FRAG,
    EVO_ATT_MAX_HD = 128,
    EVO_ATT_PAD16 = 8, /* elements of row pad: 16 bytes */
    EVO_ATT_PADF = 4,
    EVO_ATT_ALIGN = 128,
    /* the shared memory a block may opt in to on sm_80 (163 KiB): the
     * smallest of the targeted GPUs */
    EVO_ATT_MAX_SMEM = 163 * 1024,
};

typedef enum { EVO_ATT_FWD, EVO_ATT_BWD_DQ, EVO_ATT_BWD_DKDV } evo_att_kernel;

/* Byte offsets in a block's dynamic shared memory. tile[i]: 16-bit
 * [EVO_ATT_TILE][ld16] (forward: q, k, v; dq: q, dout, k, v; dk/dv: q,
 * dout, which first stage the block's k and v). Per warp (each of these
 * is EVO_ATT_WARPS of them, a warp's at + warp * its size): s, fp32
 * [16][ldsf] (scores, dP); p and p2, 16-bit [16][ldp] (P, dS); acc and
 * acc2, fp32 [16][ldacc] (forward: out; dq: dq; dk/dv: dv and dk). rows:
 * EVO_ATT_TILE int32 segment starts, then EVO_ATT_TILE fp32 lse and D.
 * An absent region has size 0. */
typedef struct {
    size_t tile[4], s, p, p2, acc, acc2, rows, total;
    size_t n_tiles, warp_s, warp_p, warp_acc; /* bytes of one warp's s, p (and p2), acc (and acc2) */
    unsigned ld16, ldsf, ldp, ldacc;          /* leading dimensions, in elements */
} evo_att_smem;

/* Whether the tensor-core kernels take this dtype and head dimension:
 * 16-bit values (tensor cores' bf16 and fp16), and hd 64 or 128 (LLaMA's
 * and InternLM's), for which they are compiled: a warp then holds its
 * rows' fragments of a head in registers. Other shapes run the plain
 * kernels. */
EVO_HOST_DEVICE static inline int evo_att_tiled(evo_dtype dt, int hd)
{
    return (dt == EVO_BF16 || dt == EVO_F16) && (hd == 64 || hd == EVO_ATT_MAX_HD);
}

/* Whether query t (< T, in the segment starting at seg0_t) sees key s:
 * causal, within its segment. A row past the last token sees nothing. */
EVO_HOST_DEVICE static inline int evo_att_visible(size_t t, size_t s, size_t seg0_t, size_t T)
{
    return t < T && seg0_t <= s && s <= t;
}

/* The keys a tile of queries from t0 may see: [its first query's segment
 * start (seg0_first), the end of the tile or of the row), walked
 * EVO_ATT_TILE at a time from the start. */
EVO_HOST_DEVICE static inline size_t evo_att_keys_end(size_t t0, size_t T)
{
    return t0 + EVO_ATT_TILE < T ? t0 + EVO_ATT_TILE : T;
}

/* The queries that may see a tile of keys from s0: [s0, the end of the
 * segment holding its last key). */
EVO_HOST_DEVICE static inline size_t evo_att_queries_end(const int32_t *cu, int n_seg, size_t s0, size_t T)
{
    size_t seg_start, seg_end;
    evo_segment_of(cu, n_seg, evo_att_keys_end(s0, T) - 1, &seg_start, &seg_end);
    return seg_end;
}

EVO_HOST_DEVICE static inline size_t evo_att_round_up(size_t n)
{
    return (n + EVO_ATT_ALIGN - 1) / EVO_ATT_ALIGN * EVO_ATT_ALIGN;
}

EVO_HOST_DEVICE static inline evo_att_smem evo_att_smem_of(evo_att_kernel k, int hd)
{
    evo_att_smem m;
    m.ld16 = (unsigned)hd + EVO_ATT_PAD16;
    m.ldsf = EVO_ATT_TILE + EVO_ATT_PADF;
    m.ldp = EVO_ATT_TILE + EVO_ATT_PAD16;
    m.ldacc = (unsigned)hd + EVO_ATT_PADF;
    m.n_tiles = k == EVO_ATT_FWD ? 3 : k == EVO_ATT_BWD_DQ ? 4 : 2;
    m.warp_s = (size_t)EVO_ATT_FRAG * m.ldsf * 4;
    m.warp_p = (size_t)EVO_ATT_FRAG * m.ldp * 2;
    m.warp_acc = (size_t)EVO_ATT_FRAG * m.ldacc * 4;
    size_t at = 0, tile = evo_att_round_up((size_t)EVO_ATT_TILE * m.ld16 * 2);
    for (size_t i = 0; i < 4; i++) {
        m.tile[i] = at;
        at += i < m.n_tiles ? tile : 0;
    }
    m.s = at;
    at += evo_att_round_up(EVO_ATT_WARPS * m.warp_s);
    m.p = at;
    at += evo_att_round_up(EVO_ATT_WARPS * m.warp_p);
    m.p2 = at;
    at += k == EVO_ATT_BWD_DKDV ? evo_att_round_up(EVO_ATT_WARPS * m.warp_p) : 0;
    m.acc = at;
    at += evo_att_round_up(EVO_ATT_WARPS * m.warp_acc);
    m.acc2 = at;
    at += k == EVO_ATT_BWD_DKDV ? evo_att_round_up(EVO_ATT_WARPS * m.warp_acc) : 0;
    m.rows = at;
    at += evo_att_round_up((size_t)EVO_ATT_TILE * 3 * 4);
    m.total = at;
    return m;
}

/* Whether the kernels at head dim hd fit the shared memory a block may
 * opt in to on the GPU (cudaDevAttrMaxSharedMemoryPerBlockOptin): all of
 * them on sm_80 (163 KiB) and sm_90 (227 KiB); on sm_86 and sm_89 (99 KiB)
 * hd 64 only, and the plain kernels run at hd 128. */
static inline int evo_att_fits(int hd, size_t optin)
{
    for (int k = EVO_ATT_FWD; k <= EVO_ATT_BWD_DKDV; k++)
        if (evo_att_smem_of((evo_att_kernel)k, hd).total > optin)
            return 0;
    return 1;
}

/* Whether the tensor-core kernels run this shape on a GPU whose blocks
 * may opt in to optin bytes of shared memory (0: never). */
static inline int evo_att_takes(evo_dtype dt, int hd, size_t optin)
{
    return optin && evo_att_tiled(dt, hd) && evo_att_fits(hd, optin);
}

#endif
