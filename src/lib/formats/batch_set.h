/* batch_set.h - the config values that say which batches a run takes and
 * how big they are, parsed from their text once (evo_config_resolve checks
 * them) and asked per batch by the training loop:
 *   - data.skip_batches "100-200,350": batches never trained on;
 *   - data.rampup_batch_size "start incr every": the batch size ramp. */
#ifndef EVO_BATCH_SET_H
#define EVO_BATCH_SET_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* A set of batch indices written as comma-separated N or N-M (inclusive):
 * "100-200,350". Empty text is the empty set. */
typedef struct {
    uint64_t (*ranges)[2];
    size_t n;
} evo_batch_set;

int evo_batch_set_parse(evo_batch_set *set, const char *text, evo_err *e);
int evo_batch_set_has(const evo_batch_set *set, uint64_t batch);
void evo_batch_set_free(evo_batch_set *set);

/* rampup_batch_size "start incr every": batch b has
 * min(micro_num, start + incr floor(b / every)) rows; without rampup
 * (empty text), micro_num. */
typedef struct {
    uint32_t start, incr, every, max;
} evo_rampup;

int evo_rampup_parse(evo_rampup *r, const char *text, uint32_t micro_num, evo_err *e);
uint32_t evo_rampup_rows(const evo_rampup *r, uint64_t batch);

#endif
