/* train.h - evo-train's parts, driven by main.c. */
#ifndef EVO_TRAIN_H
#define EVO_TRAIN_H

#include <stdint.h>

#include "config.h"

/* --dry-run: the resolved config, parameter count, FLOPs per token and
 * memory per GPU for world_size ranks (0 = the smallest layout the
 * parallel section allows). */
int train_dry_run(const evo_config *c, uint32_t world_size);

#endif
