/* fuzz-pack - evo-pack(5) files: open with their sources (the seeds embed
 * them), then read every row as evo-train does. */
#include "formats/pack.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_pack p;
    evo_err e;
    if (evo_pack_open(&p, fuzz_file(data, size, "input.pack"), 0, &e) < 0)
        return 0;
    evo_pack_row row;
    evo_pack_row_init(&row, &p.meta);
    for (uint64_t i = 0; i < p.meta.n_rows && i < 64; i++)
        evo_pack_read_row(&p, i, &row);
    evo_pack_row_free(&row);
    evo_pack_close(&p);
    return 0;
}
