#include "text/utf8.h"

size_t evo_utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate real text: test 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = evo_utf8_decode(p + i, n - i, &cp);
        if (!len)
            break;
        i += len;
    }
    return i;
}

/* The second byte's valid range depends on the lead byte (Unicode table
 * 3-7): this is what excludes overlongs, surrogates and > U+10FFFF, and so
 * where a maximal subpart ends. Later continuation bytes are 80..BF. */
static int second_byte_ok(unsigned lead, unsigned b)
{
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
    }
}

void evo_utf8_replace_invalid(const char *s, size_t n, evo_buf *out)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t ok = evo_utf8_valid_prefix(s + i, n - i);
        if (ok) /* buf.h's memcpy must not see a NULL buffer, even for 0 bytes */
            evo_buf_append(out, s + i, ok);
        i += ok;
        if (i >= n)
            break;
        /* p[i] starts an ill-formed sequence: skip its maximal subpart. */
        unsigned lead = p[i];
        size_t need = lead >= 0xC2 && lead <= 0xDF ? 1 : lead >= 0xE0 && lead <= 0xEF ? 2
                                                       : lead >= 0xF0 && lead <= 0xF4 ? 3
                                                                                      : 0;
        size_t j = i + 1;
        if (need && j < n && second_byte_ok(lead, p[j])) {
            j++;
            while (j < n && j < i + 1 + need && (p[j] & 0xC0) == 0x80)
                j++;
        }
        evo_buf_append(out, fffd, 3);
        i = j;
    }
}
