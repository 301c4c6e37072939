/* hf_map.c - the string -> id hash map of the HF tokenizer (hf.h). */
#include "text/hf.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t slot_of(const hf_map *m, uint64_t h) { return (size_t)(h ^ (h >> 29)) & m->mask; }

int32_t hf_map_get(const hf_map *m, const char *s, size_t len)
{
    if (!m->slots || len > m->max_len)
        return -1;
    uint64_t h = XXH3_64bits(s, len);
    for (size_t j = slot_of(m, h);; j = (j + 1) & m->mask) {
        uint32_t k = m->slots[j];
        if (!k)
            return -1;
        const struct hf_entry *en = &m->ent[k - 1];
        if (en->hash == h && en->len == len && memcmp(m->keys.data + en->off, s, len) == 0)
            return en->val;
    }
}

static void map_grow(hf_map *m)
{
    size_t cap = m->slots ? 2 * (m->mask + 1) : 1024;
    free(m->slots);
    m->slots = evo_calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    for (size_t i = 0; i < m->n; i++) {
        size_t j = slot_of(m, m->ent[i].hash);
        while (m->slots[j])
            j = (j + 1) & m->mask;
        m->slots[j] = (uint32_t)i + 1;
    }
}

void hf_map_put(hf_map *m, const char *s, size_t len, int32_t val)
{
    if (!m->slots || 2 * (m->n + 1) > m->mask + 1)
        map_grow(m);
    uint64_t h = XXH3_64bits(s, len);
    size_t j = slot_of(m, h);
    for (; m->slots[j]; j = (j + 1) & m->mask) {
        struct hf_entry *en = &m->ent[m->slots[j] - 1];
        if (en->hash == h && en->len == len && memcmp(m->keys.data + en->off, s, len) == 0) {
            en->val = val;
            return;
        }
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->ent = evo_realloc(m->ent, m->cap * sizeof *m->ent);
    }
    m->ent[m->n] = (struct hf_entry){h, (uint32_t)m->keys.len, (uint32_t)len, val};
    if (len > m->max_len)
        m->max_len = len;
    if (len)
        evo_buf_append(&m->keys, s, len);
    m->slots[j] = (uint32_t)++m->n;
}

void hf_map_free(hf_map *m)
{
    free(m->slots);
    free(m->ent);
    evo_buf_free(&m->keys);
    *m = (hf_map){0};
}
