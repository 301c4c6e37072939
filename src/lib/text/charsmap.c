#include "text/charsmap.h"

#include <stdlib.h>
#include <string.h>

/* darts-clone packs a node into 32 bits: bits 0-7 the label of the edge
 * into it, bit 8 "a key ends here" (its value sits in the unit at
 * position ^ offset), bits 10-31 the offset to its children (shifted left
 * by 8 more when bit 9 is set). A value unit has bit 31 set, so its label
 * never equals a byte and a walk cannot step onto it by mistake. */
static inline int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline int unit_is_value(uint32_t u) { return u >> 31; }
static inline uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static inline uint32_t unit_label(uint32_t u) { return u & 0x800000FFu; }
static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The child of the node at pos along byte c, or SIZE_MAX. Positions come
 * from XORs of file data, so each is checked against the array. */
static inline size_t child(const evo_charsmap *cm, size_t pos, unsigned char c)
{
    size_t base = pos ^ unit_offset(cm->units[pos]);
    size_t next = base ^ c;
    if (next >= cm->nunits || unit_label(cm->units[next]) != c)
        return SIZE_MAX;
    return next;
}

int evo_charsmap_init(evo_charsmap *cm, const uint8_t *blob, size_t len, evo_err *e)
{
    memset(cm, 0, sizeof *cm);
    if (len < 4)
        return evo_errf(e, "precompiled charsmap: %zu bytes, too short for its header", len);
    uint32_t trie_size = le32(blob);
    if (trie_size < 4 || trie_size % 4 || trie_size > len - 4)
        return evo_errf(e, "precompiled charsmap: trie size %u does not fit the %zu-byte blob (byte 0)", trie_size,
                        len);
    size_t strings_len = len - 4 - trie_size;
    if (strings_len == 0 || blob[len - 1] != '\0')
        return evo_errf(e, "precompiled charsmap: the replacement strings at byte %zu are not NUL-terminated",
                        (size_t)4 + trie_size);

    cm->nunits = trie_size / 4;
    cm->units = evo_malloc(trie_size);
    for (size_t i = 0; i < cm->nunits; i++)
        cm->units[i] = le32(blob + 4 + 4 * i);
    cm->strings_len = strings_len;
    cm->strings = evo_malloc(strings_len);
    memcpy(cm->strings, blob + 4 + trie_size, strings_len);

    /* Every node that ends a key is checked here, once, so a lookup can use
     * the value it finds without re-checking. */
    for (size_t i = 0; i < cm->nunits; i++) {
        uint32_t u = cm->units[i];
        if (unit_is_value(u) || !unit_has_leaf(u))
            continue;
        size_t leaf = i ^ unit_offset(u);
        if (leaf >= cm->nunits || !unit_is_value(cm->units[leaf]) || unit_value(cm->units[leaf]) >= strings_len) {
            evo_charsmap_free(cm);
            return evo_errf(e, "precompiled charsmap: trie unit %zu (byte %zu) points outside the blob", i,
                            4 + 4 * i);
        }
    }
    for (unsigned c = 1; c < 128; c++)
        cm->ascii_starts_key[c] = child(cm, 0, (unsigned char)c) != SIZE_MAX;
    return 0;
}

void evo_charsmap_free(evo_charsmap *cm)
{
    free(cm->units);
    free(cm->strings);
    memset(cm, 0, sizeof *cm);
}

static evo_charsmap_hit hit_at(const evo_charsmap *cm, size_t pos, size_t len)
{
    size_t leaf = pos ^ unit_offset(cm->units[pos]);
    const char *repl = cm->strings + unit_value(cm->units[leaf]);
    return (evo_charsmap_hit){len, repl, strlen(repl)};
}

size_t evo_charsmap_prefixes(const evo_charsmap *cm, const char *s, size_t n, evo_charsmap_hit *shortest,
                             evo_charsmap_hit *longest)
{
    size_t count = 0, pos = 0, last = 0, last_len = 0;
    for (size_t i = 0; i < n; i++) {
        pos = child(cm, pos, (unsigned char)s[i]);
        if (pos == SIZE_MAX)
            break;
        if (unit_has_leaf(cm->units[pos])) {
            if (count++ == 0 && shortest)
                *shortest = hit_at(cm, pos, i + 1);
            last = pos;
            last_len = i + 1;
        }
    }
    if (longest)
        *longest = count ? hit_at(cm, last, last_len) : (evo_charsmap_hit){0, NULL, 0};
    if (shortest && !count)
        *shortest = (evo_charsmap_hit){0, NULL, 0};
    return count;
}

static int is_ascii_alnum(unsigned c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A linear scan instead of a walk over the keys: darts-clone shares equal
 * subtrees, so a walk may visit far more nodes than there are units. Any
 * edge labelled ' ' lands on a unit with that label, and any key ending in
 * byte c ends on a unit labelled c that has a leaf; unused units never have
 * a leaf. Free units may carry any label, which can only make the answer
 * more cautious. */
int evo_charsmap_space_after_alnum_splits(const evo_charsmap *cm)
{
    for (size_t i = 0; i < cm->nunits; i++) {
        uint32_t u = cm->units[i];
        if (unit_is_value(u))
            continue;
        if (unit_label(u) == ' ')
            return 0;
        if (unit_has_leaf(u) && is_ascii_alnum(unit_label(u))) {
            evo_charsmap_hit h = hit_at(cm, i, 1);
            if (h.repl_len == 0 || h.repl[h.repl_len - 1] == ' ')
                return 0;
        }
    }
    return 1;
}
