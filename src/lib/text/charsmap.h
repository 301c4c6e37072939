/* charsmap.h - SentencePiece's precompiled character map normalizer.
 *
 * SentencePiece compiles its normalization rules (nmt_nfkc, nfkc_cf, ...)
 * into a blob stored in the model's normalizer_spec.precompiled_charsmap;
 * HF tokenizer.json files carry the same blob, base64-encoded, in their
 * "Precompiled" normalizer. Layout (little-endian):
 *
 *   uint32 trie_size | trie_size bytes: darts-clone double-array units |
 *   replacement strings, each NUL-terminated
 *
 * The trie maps a source byte string (one character, or a short sequence
 * such as a letter and a combining mark) to the offset of its replacement.
 * Both users ask the same question at a position of the text: which keys
 * are prefixes of what follows? SentencePiece takes the longest, HF the
 * shortest. */
#ifndef EVO_CHARSMAP_H
#define EVO_CHARSMAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    uint32_t *units; /* darts-clone units, host order */
    size_t nunits;
    char *strings; /* the replacement strings; the last byte is a NUL */
    size_t strings_len;
    uint8_t ascii_starts_key[128]; /* fast path: does any key begin with this byte? */
} evo_charsmap;

typedef struct {
    size_t len;       /* bytes of the text the key covers; 0 = no key */
    const char *repl; /* its replacement, NUL-terminated */
    size_t repl_len;
} evo_charsmap_hit;

/* Copies and validates blob[0..len): the sizes, and that every leaf of
 * the trie points inside the string table. Returns 0 or -1 with e set. */
int evo_charsmap_init(evo_charsmap *cm, const uint8_t *blob, size_t len, evo_err *e);
void evo_charsmap_free(evo_charsmap *cm);

/* Finds the keys that are prefixes of s[0..n). Returns their number and
 * fills the shortest and the longest (either pointer may be NULL). */
size_t evo_charsmap_prefixes(const evo_charsmap *cm, const char *s, size_t n, evo_charsmap_hit *shortest,
                             evo_charsmap_hit *longest);

/* Whether a byte can begin a key: lets ASCII text skip the trie. */
static inline int evo_charsmap_may_start(const evo_charsmap *cm, unsigned char c)
{
    return c >= 128 || cm->ascii_starts_key[c];
}

/* 1 if no key holds an ASCII space, and no key ending in an ASCII letter
 * or digit is replaced by an empty string or one ending in a space. Then a
 * space that follows a letter or digit always starts a fresh step, and the
 * normalized text before it never ends in a space: the text on either side
 * of that space normalizes independently. 0 if that cannot be shown. */
int evo_charsmap_space_after_alnum_splits(const evo_charsmap *cm);

#endif
