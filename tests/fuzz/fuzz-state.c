/* fuzz-state - a checkpoint's state.json (the counts a resume reads back). */
#include "formats/ckpt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_ckpt_state st;
    evo_err e;
    evo_ckpt_read_state(&st, fuzz_file(data, size, "state.json"), &e);
    return 0;
}
