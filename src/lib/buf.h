/* buf.h - growable byte and id arrays used across the library.
 *
 * Both grow geometrically so appending n items costs O(n) amortized; both
 * are plain structs (zero-initialized = empty) that the owner frees. */
#ifndef EVO_BUF_H
#define EVO_BUF_H

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

typedef struct {
    char *data;
    size_t len, cap;
} evo_buf;

typedef struct {
    int32_t *data;
    size_t len, cap;
} evo_ids;

static inline void evo_buf_reserve(evo_buf *b, size_t extra)
{
    if (b->len + extra > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra)
            cap *= 2;
        b->data = evo_realloc(b->data, cap);
        b->cap = cap;
    }
}

static inline void evo_buf_append(evo_buf *b, const void *p, size_t n)
{
    evo_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void evo_buf_push(evo_buf *b, char c)
{
    evo_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

static inline void evo_buf_free(evo_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static inline void evo_ids_reserve(evo_ids *v, size_t extra)
{
    if (v->len + extra > v->cap) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap < v->len + extra)
            cap *= 2;
        v->data = evo_realloc(v->data, cap * sizeof *v->data);
        v->cap = cap;
    }
}

static inline void evo_ids_push(evo_ids *v, int32_t id)
{
    evo_ids_reserve(v, 1);
    v->data[v->len++] = id;
}

static inline void evo_ids_free(evo_ids *v)
{
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

#endif
