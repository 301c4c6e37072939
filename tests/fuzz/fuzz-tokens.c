/* fuzz-tokens - evo-tokens(5) files: open, verify every checksum and id,
 * then walk every document and token as evo-pack does. */
#include "formats/tokens.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_tokens_reader r;
    evo_err e;
    if (evo_tokens_open_mem(&r, "input.tok", data, size, 0, &e) < 0)
        return 0;
    uint64_t sum = 0;
    for (uint64_t d = 0; d < r.meta.n_docs; d++) {
        uint64_t a = evo_tokens_doc_start(&r, d), b = evo_tokens_doc_start(&r, d + 1);
        for (uint64_t i = a; i < b; i++)
            sum += evo_tokens_id(&r, i) + (uint64_t)evo_tokens_is_target(&r, i);
    }
    if (sum == UINT64_MAX)
        abort(); /* keeps the walk */
    evo_tokens_close(&r);
    return 0;
}
