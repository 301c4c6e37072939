#include "text/protobuf.h"

#include <string.h>

void evo_pb_init(evo_pb *r, const uint8_t *base, const uint8_t *msg, size_t len)
{
    r->base = base;
    r->p = msg;
    r->end = msg + len;
}

static size_t offset_of(const evo_pb *r, const uint8_t *p) { return (size_t)(p - r->base); }

/* A varint is at most 10 bytes; the 10th may only carry the top bit of a
 * uint64, anything more is a corrupt file rather than a big number. */
static int read_varint(evo_pb *r, uint64_t *v, evo_err *e)
{
    const uint8_t *start = r->p;
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p == r->end)
            return evo_errf(e, "truncated varint at byte %zu", offset_of(r, start));
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return evo_errf(e, "varint too long at byte %zu", offset_of(r, start));
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return evo_errf(e, "varint too long at byte %zu", offset_of(r, start));
}

static int read_fixed(evo_pb *r, size_t n, uint64_t *v, size_t tag_at, evo_err *e)
{
    if ((size_t)(r->end - r->p) < n)
        return evo_errf(e, "field at byte %zu: %zu-byte value runs past the end of its message", tag_at, n);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) /* little-endian on the wire, whatever the host */
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *v = x;
    return 0;
}

int evo_pb_next(evo_pb *r, evo_pb_field *f, evo_err *e)
{
    if (r->p == r->end)
        return 0;
    memset(f, 0, sizeof *f);
    f->offset = offset_of(r, r->p);
    uint64_t tag;
    if (read_varint(r, &tag, e) < 0)
        return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    if (tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF)
        return evo_errf(e, "bad field number %llu at byte %zu (not a protobuf?)", (unsigned long long)(tag >> 3),
                        f->offset);
    switch (f->wire) {
    case EVO_PB_VARINT:
        return read_varint(r, &f->value, e) < 0 ? -1 : 1;
    case EVO_PB_FIXED64:
        return read_fixed(r, 8, &f->value, f->offset, e) < 0 ? -1 : 1;
    case EVO_PB_FIXED32:
        return read_fixed(r, 4, &f->value, f->offset, e) < 0 ? -1 : 1;
    case EVO_PB_BYTES: {
        uint64_t len;
        if (read_varint(r, &len, e) < 0)
            return -1;
        if (len > (uint64_t)(r->end - r->p))
            return evo_errf(e, "field %u at byte %zu: length %llu runs past the end of its message (byte %zu)",
                            f->number, f->offset, (unsigned long long)len, offset_of(r, r->end));
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return evo_errf(e, "field %u at byte %zu: unsupported wire type %d (not a protobuf?)", f->number, f->offset,
                        f->wire);
    }
}

void evo_pb_sub(const evo_pb *r, const evo_pb_field *f, evo_pb *sub) { evo_pb_init(sub, r->base, f->data, f->len); }

static int expect_wire(const evo_pb_field *f, int wire, evo_err *e)
{
    if (f->wire == wire)
        return 0;
    return evo_errf(e, "field %u at byte %zu: wire type %d, expected %d", f->number, f->offset, f->wire, wire);
}

int evo_pb_bytes(const evo_pb_field *f, evo_err *e)
{
    return expect_wire(f, EVO_PB_BYTES, e);
}

int evo_pb_u64(const evo_pb_field *f, uint64_t *v, evo_err *e)
{
    if (expect_wire(f, EVO_PB_VARINT, e) < 0)
        return -1;
    *v = f->value;
    return 0;
}

/* int32 and enums: negative values are sent sign-extended to 64 bits. */
int evo_pb_i32(const evo_pb_field *f, int32_t *v, evo_err *e)
{
    uint64_t u;
    if (evo_pb_u64(f, &u, e) < 0)
        return -1;
    *v = (int32_t)(uint32_t)u;
    return 0;
}

int evo_pb_bool(const evo_pb_field *f, int *v, evo_err *e)
{
    uint64_t u;
    if (evo_pb_u64(f, &u, e) < 0)
        return -1;
    *v = u != 0;
    return 0;
}

int evo_pb_float(const evo_pb_field *f, float *v, evo_err *e)
{
    if (expect_wire(f, EVO_PB_FIXED32, e) < 0)
        return -1;
    uint32_t bits = (uint32_t)f->value;
    memcpy(v, &bits, sizeof *v);
    return 0;
}
