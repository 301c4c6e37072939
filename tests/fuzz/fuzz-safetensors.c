/* fuzz-safetensors - a safetensors file (the JSON header and the data
 * offsets, as evo-convert2hf --from-hf reads them): open, then every
 * tensor's data by name. */
#include "formats/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_st_file f;
    evo_err e;
    if (evo_st_open(&f, fuzz_file(data, size, "model.safetensors"), &e) < 0)
        return 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const evo_st_tensor *t = evo_st_find(&f, f.tensors[i].name);
        if (!t)
            abort();
        const uint8_t *p = evo_st_data(&f, t);
        uint64_t bytes = t->end - t->begin;
        if (bytes)
            sum += p[0] + p[bytes - 1];
        sum += evo_st_numel(t);
    }
    if (sum == UINT64_MAX)
        abort();
    evo_st_close(&f);
    return 0;
}
