/* layout.h - how the ranks of a job are cut into InternEvo's parallel
 * groups, and whether a model fits the cut.
 *
 * With world = pp x dp x tp ranks (InternEvo's order, tensor ranks
 * adjacent so they share a node):
 *
 *   global = pp_rank (tp dp) + dp_rank tp + tp_rank
 *
 * the data-parallel group of a rank is the dp ranks of the same (pp, tp),
 * the tensor group the tp ranks of the same (pp, dp), the pipeline group
 * the pp ranks of the same (dp, tp). A ZeRO-1 group is a block of zero1
 * consecutive data-parallel ranks: the optimizer state is sharded over
 * it and replicated across the dp / zero1 blocks ("hybrid" ZeRO).
 * parallel.zero1 -1 or 0 means the whole data-parallel group, 1 off. */
#ifndef EVO_LAYOUT_H
#define EVO_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "formats/config.h"
#include "formats/model.h"

typedef enum { EVO_GROUP_WORLD, EVO_GROUP_DATA, EVO_GROUP_TENSOR, EVO_GROUP_PIPELINE, EVO_GROUP_ZERO1,
               EVO_N_GROUPS } evo_group;

typedef struct {
    uint32_t world, dp, tp, pp, zero1;                  /* group sizes */
    uint32_t rank, dp_rank, tp_rank, pp_rank, zero1_rank; /* this rank's place */
    char mode[8];                                       /* parallel.tensor.mode */
} evo_layout;

/* The layout of rank `rank` in a job of `world` ranks under c's parallel
 * section, checked against model m: world divisible by tp x pp; heads,
 * kv heads, vocabulary and MLP width by tp; at least one layer a stage;
 * zero1 dividing dp. An error names the key and the numbers. */
int evo_layout_make(evo_layout *l, const evo_config *c, const evo_model *m, uint32_t world, uint32_t rank,
                    evo_err *e);
/* The global rank at (pp_rank, dp_rank, tp_rank). */
uint32_t evo_layout_global(const evo_layout *l, uint32_t pp_rank, uint32_t dp_rank, uint32_t tp_rank);
/* This rank's index and the size of group g, and which group of that
 * kind it is in (0 .. world/size - 1): what an MPI split is keyed on. */
uint32_t evo_layout_group_rank(const evo_layout *l, evo_group g);
uint32_t evo_layout_group_size(const evo_layout *l, evo_group g);
uint32_t evo_layout_group_color(const evo_layout *l, evo_group g);
/* The global rank of member r (0 .. group size - 1) of this rank's group g. */
uint32_t evo_layout_group_member(const evo_layout *l, evo_group g, uint32_t r);
/* Whether the tensor ranks cut the rows' tokens too (parallel.tensor.mode
 * msp, and fsp, which runs as msp): the residual stream is then cut, and
 * the norms' gradients are partial sums over the tensor group. */
int evo_layout_sequence_parallel(const evo_layout *l);
/* "world 8 = pp 2 x dp 2 x tp 2, zero1 2, tensor mode mtp" */
void evo_layout_describe(const evo_layout *l, char *buf, size_t n);
const char *evo_group_name(evo_group g);

#endif
