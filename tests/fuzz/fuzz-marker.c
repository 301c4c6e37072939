/* fuzz-marker - the COMPLETE marker of a checkpoint directory (its file
 * list with sizes and hashes, evo-ckpt(5)), parsed from memory, then each
 * listed name looked up. */
#include "formats/ckpt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_ckpt_manifest m;
    evo_err e;
    if (evo_ckpt_parse_marker(&m, (const char *)data, size, "COMPLETE", &e) < 0)
        return 0;
    evo_ckpt_manifest_find(&m, "model_tp0_pp0.evo");
    evo_ckpt_manifest_find(&m, "state.json");
    evo_ckpt_manifest_free(&m);
    return 0;
}
