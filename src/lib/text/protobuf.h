/* protobuf.h - a small validating reader for the protobuf wire format.
 *
 * Enough to walk a SentencePiece ModelProto without libprotobuf: fields are
 * read one at a time, submessages are read by opening a reader on a
 * length-delimited field, and unknown fields are skipped. Every length is
 * checked against the end of its enclosing message before use, so a
 * truncated or hostile file gives an error naming the byte offset (from the
 * start of the whole buffer) where it went wrong. */
#ifndef EVO_PROTOBUF_H
#define EVO_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum { EVO_PB_VARINT = 0, EVO_PB_FIXED64 = 1, EVO_PB_BYTES = 2, EVO_PB_FIXED32 = 5 };

typedef struct {
    const uint8_t *base; /* start of the whole buffer: offsets in messages count from here */
    const uint8_t *p, *end;
} evo_pb;

typedef struct {
    uint32_t number;
    int wire;
    uint64_t value;      /* EVO_PB_VARINT, EVO_PB_FIXED32, EVO_PB_FIXED64 */
    const uint8_t *data; /* EVO_PB_BYTES */
    size_t len;
    size_t offset; /* of the field's tag */
} evo_pb_field;

/* A reader over the message msg[0..len), which lies inside base. */
void evo_pb_init(evo_pb *r, const uint8_t *base, const uint8_t *msg, size_t len);

/* Reads the next field. Returns 1 with f filled, 0 at the end of the
 * message, or -1 with e set (truncation, bad tag, length past the end,
 * groups). */
int evo_pb_next(evo_pb *r, evo_pb_field *f, evo_err *e);

/* A reader over the submessage held by a length-delimited field. */
void evo_pb_sub(const evo_pb *r, const evo_pb_field *f, evo_pb *sub);

/* Typed views of a field. Each checks the wire type the schema expects and
 * returns -1 with e set ("field N at byte X: ...") on a mismatch. */
int evo_pb_bytes(const evo_pb_field *f, evo_err *e);
int evo_pb_u64(const evo_pb_field *f, uint64_t *v, evo_err *e);
int evo_pb_i32(const evo_pb_field *f, int32_t *v, evo_err *e);
int evo_pb_bool(const evo_pb_field *f, int *v, evo_err *e);
int evo_pb_float(const evo_pb_field *f, float *v, evo_err *e);

#endif
