/* tokens-forge - a token file with any vocabulary size in its header, for
 * the limits the format allows (tests/t0730-limits.sh):
 *
 *   tokens-forge OUT VOCAB DOCS LEN
 *
 * DOCS documents of LEN tokens each, ids spread over the whole vocabulary
 * (the last document holds VOCAB - 1), written by the library's writer as
 * evo-tokenize would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "formats/tokens.h"

int main(int argc, char **argv)
{
    evo_set_progname("tokens-forge");
    if (argc != 5)
        evo_usage_error("usage: tokens-forge OUT VOCAB DOCS LEN");
    unsigned long long vocab = strtoull(argv[2], NULL, 10), docs = strtoull(argv[3], NULL, 10),
                       len = strtoull(argv[4], NULL, 10);
    if (vocab < 2 || vocab > 0x7fffffffULL || len < 1 || len > (1u << 20))
        evo_usage_error("tokens-forge: VOCAB 2 .. 2^31-1, LEN 1 .. 2^20");
    evo_tokens_meta meta = {.vocab_size = (uint32_t)vocab, .bos_id = 1, .eos_id = 2};
    snprintf(meta.tokenizer_kind, sizeof meta.tokenizer_kind, "forged");
    snprintf(meta.tokenizer_name, sizeof meta.tokenizer_name, "tokens-forge");
    evo_tokens_writer tw;
    evo_err e;
    int32_t *ids = evo_malloc(len * sizeof *ids);
    if (evo_tokens_create(&tw, argv[1], &meta, &e) < 0)
        evo_fatal("%s", e.msg);
    for (unsigned long long d = 0; d < docs; d++) {
        for (unsigned long long i = 0; i < len; i++)
            ids[i] = (int32_t)(d + 1 == docs && i + 1 == len ? vocab - 1 : (d * 7919 + i * 104729) % vocab);
        if (evo_tokens_append(&tw, ids, NULL, len, &e) < 0)
            evo_fatal("%s", e.msg);
    }
    if (evo_tokens_finish(&tw, &e) < 0)
        evo_fatal("%s", e.msg);
    free(ids);
    return 0;
}
