/* fuzz-input - evo-tokenize's input side (src/tokenize/input.c): one input
 * file, plain or compressed or an archive (libarchive finds out from the
 * content), split into documents as text lines, whole documents, JSONL
 * records (a dotted --field), chat records (SFT messages with a loss mask)
 * or lines of ids; byte 0 picks the format and --skip-bad. Every batch is
 * filled to the end of the input, as evo-tokenize's reader thread does. */
#include <libgen.h>
#include <limits.h>

#include "../../src/tokenize/input.h"
#include "fuzz.h"

/* The bundled 8k SentencePiece model (where long documents may be cut,
 * and the vocabulary of id lines), found from this program's path:
 * build/fuzz/bin/fuzz-input -> data/tokenizer/. */
static const evo_tokenizer *tokenizer(void)
{
    static evo_tokenizer *t;
    if (!t) {
        char exe[PATH_MAX], path[PATH_MAX + 64];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            abort();
        exe[n] = 0;
        snprintf(path, sizeof path, "%s/../../../data/tokenizer/evo-bpe8k.model", dirname(exe));
        evo_err e;
        if (!(t = evo_tokenizer_open(path, &e)))
            abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < 1)
        return 0;
    static const input_format formats[] = {FORMAT_TEXT, FORMAT_DOC, FORMAT_JSONL, FORMAT_CHAT, FORMAT_IDS};
    input_options opt = {.format = formats[data[0] % 5],
                         .field = data[0] & 0x20 ? "meta.content" : NULL,
                         .skip_bad = (data[0] & 0x40) != 0,
                         .tok = tokenizer()};
    char *paths[] = {(char *)fuzz_file(data + 1, size - 1, "input")};
    evo_err e;
    reader *r = reader_new(paths, 1, &opt, &e);
    if (!r)
        return 0;
    batch b = {0};
    int rc;
    while ((rc = reader_fill(r, &b, &e)) > 0)
        batch_clear(&b);
    batch_free(&b);
    reader_free(r);
    return 0;
}
