/* fuzz-tokenizer - tokenizer files as evo-tokenize opens them (a
 * HuggingFace tokenizer.json or a SentencePiece .model protobuf, told apart
 * by content); an opened tokenizer then encodes and decodes a fixed
 * multilingual text. */
#include "fuzz.h"
#include "base/buf.h"
#include "text/tokenizer.h"

static const char sample[] = "Hello, world! It's 2026: naïve café, 你好世界, ｆｕｌｌ width,\ttabs  and  spaces\n"
                             "emoji 🙂 and <s></s> specials, digits 1234567890.";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_err e;
    evo_tokenizer *t = evo_tokenizer_open(fuzz_file(data, size, "tokenizer"), &e);
    if (!t)
        return 0;
    evo_encoder *enc = evo_encoder_new(t);
    evo_ids ids = {0};
    if (evo_encode(enc, sample, sizeof sample - 1, EVO_ENC_DOC_START | EVO_ENC_DOC_END, &ids, &e) == 0) {
        evo_buf text = {0};
        evo_decode(t, ids.data, ids.len, &text, &e);
        evo_buf_free(&text);
    }
    evo_ids_free(&ids);
    evo_encoder_free(enc);
    evo_tokenizer_free(t);
    return 0;
}
