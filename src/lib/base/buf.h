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

#include "base/error.h"

typedef struct {
    char *data;
    size_t len, cap;
} evo_buf;

typedef struct {
    int32_t *data;
    size_t len, cap;
} evo_ids;

/* Grows an array of elem-byte items to hold at least need of them,
 * doubling from min so appends stay amortized O(1). */
static inline void *evo_grow(void *data, size_t *cap, size_t need, size_t elem, size_t min)
{
    if (need <= *cap)
        return data;
    size_t c = *cap ? *cap : min;
    while (c < need)
        c *= 2;
    *cap = c;
    return evo_realloc(data, c * elem);
}

static inline void evo_buf_reserve(evo_buf *b, size_t extra)
{
    b->data = evo_grow(b->data, &b->cap, b->len + extra, 1, 256);
}

static inline void evo_buf_append(evo_buf *b, const void *p, size_t n)
{
    if (!n) /* data may still be NULL, and memcpy wants valid pointers even for 0 bytes */
        return;
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
    v->data = evo_grow(v->data, &v->cap, v->len + extra, sizeof *v->data, 64);
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
