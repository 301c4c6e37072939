/* utf8.h - strict UTF-8 decoding (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), shared by every tokenizer family. */
#ifndef EVO_UTF8_H
#define EVO_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the character at s[0..n), n >= 1. Returns its byte length and
 * stores the code point, or returns 0 if the bytes there are not valid
 * UTF-8 (the caller decides: replace with U+FFFD, or fall back to bytes). */
static inline size_t evo_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2 || c > 0xF4)
        return 0;
    size_t len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n < len)
        return 0;
    uint32_t v = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)))
        return 0;
    *cp = v;
    return len;
}

/* Encodes cp (<= U+10FFFF) into out[0..4); returns the byte length. */
static inline size_t evo_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#include "base/buf.h"

/* Length of the longest prefix of s[0..n) that is valid UTF-8 (n when the
 * whole text is): lets callers skip the copy below on clean input. */
size_t evo_utf8_valid_prefix(const char *s, size_t n);

/* Appends s[0..n) to out with every ill-formed sequence replaced by U+FFFD
 * the way WHATWG's TextDecoder (and so node, and Rust's from_utf8_lossy)
 * does: one U+FFFD per "maximal subpart", i.e. a lead byte followed by the
 * longest run of continuation bytes that could still begin a valid
 * sequence. "\xE2\x82" then "A" gives one U+FFFD then "A"; "\xF0\x80"
 * gives two (0x80 cannot follow 0xF0). HF tokenizers only ever see such
 * text, because node decodes the bytes before handing them over. */
void evo_utf8_replace_invalid(const char *s, size_t n, evo_buf *out);

#endif
