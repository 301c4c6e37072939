/* pack.h - the evo pack file (evo-pack(5)): written by evo-pack, read by
 * evo-train.
 *
 * A pack holds training rows of packed_length = seq_len * micro_bsz tokens
 * as an index into token files (evo-tokens(5)), not as a copy: a row is a
 * list of pieces, each a run of tokens of one document. Packing therefore
 * costs one verifying read of the tokens and writes a file a few bytes per
 * document; training reads a row with a few memcpy-sized slices from the
 * mapped token files. The token files are sources: external (a path,
 * relative to the pack's directory, pinned by the source's header
 * checksum) or embedded whole in the pack (stdin input, or --embed for a
 * self-contained file to copy between clusters).
 *
 * An evo binfmt container (binfmt.h) with magic "EVOPACK\0", version 1:
 *   meta (256 bytes, see EVO_PACK_META_*)
 *   sections
 *     1 PIECES   n_pieces * 16 bytes: u64 start (token index in the source),
 *                u32 length, u16 source, u16 flags (EVO_PIECE_LAST_UNLABELLED)
 *     2 ROWS     (n_rows + 1) u64: row r is pieces [rows[r], rows[r+1])
 *     3 SOURCES  n_sources * 64 bytes (see EVO_PACK_SRC_*)
 *     4 STRINGS  the sources' paths (bytes, no terminators)
 *     16+i       source i's token file, byte for byte, when embedded
 *
 * Row semantics (InternEvo's packed dataset): tokens are the pieces in
 * order, then padding (id 0) in a short row (the tail of an input, kept
 * with EVO_PACK_KEEP_TAIL).
 * The label of a token is the next token of its document, -100 for the
 * last token of a piece flagged EVO_PIECE_LAST_UNLABELLED, and -100 when
 * the target token is context only (the source's loss mask). cu_seqlens
 * break after every piece and every seq_len tokens inside a piece
 * (attention windows); with EVO_PACK_INTO_ONE they sit at fixed multiples
 * of seq_len instead. Positions restart at 0 in every segment. */
#ifndef EVO_PACK_H
#define EVO_PACK_H

#include <stdint.h>

#include "formats/binfmt.h"
#include "formats/tokens.h"

#define EVO_PACK_MAGIC "EVOPACK"
#define EVO_PACK_VERSION 1
#define EVO_PACK_META_SIZE 256
#define EVO_PACK_PIECE_SIZE 16
#define EVO_PACK_SOURCE_SIZE 64
#define EVO_PACK_MAX_LENGTH (1u << 30) /* packed_length bound: a row's offsets fit in int32 */
#define EVO_LABEL_IGNORE (-100)

enum { EVO_PACK_SEC_PIECES = 1, EVO_PACK_SEC_ROWS = 2, EVO_PACK_SEC_SOURCES = 3, EVO_PACK_SEC_STRINGS = 4,
       EVO_PACK_SEC_EMBEDDED = 16 };
enum {
    EVO_PACK_INTO_ONE = 1,  /* --pack-into-one: fixed seq_len attention windows */
    EVO_PACK_KEEP_TAIL = 2, /* the last row may be short, padded */
    EVO_PACK_VALID = 4,     /* a held-out validation pack */
    EVO_PACK_MIXED = 8,     /* inputs mixed by weight */
    EVO_PACK_FLAGS = 15
};
enum { EVO_PIECE_LAST_UNLABELLED = 1 };

typedef struct {
    uint32_t seq_len, micro_bsz, flags, n_sources;
    uint64_t n_rows, n_pieces;
    uint64_t n_tokens, n_pad;   /* real tokens in the rows, and padding */
    uint64_t seed;
    uint32_t min_length, max_doc_len, epochs;
    uint32_t vocab_size, token_width;
    int32_t bos_id, eos_id;
    uint8_t fingerprint[16];    /* the tokenizer's, shared by every source */
    char tokenizer_name[40];
    uint64_t n_docs;            /* documents (or --max-doc-len pieces) that started in the rows */
    uint64_t source_tokens;     /* tokens in all sources */
    uint64_t short_docs, short_tokens; /* dropped by --min-length */
    uint64_t tail_tokens;       /* stream tokens past the last full row, dropped */
    uint64_t valid_docs, valid_tokens; /* held out for validation */
    double valid_fraction;      /* --valid as given (0 = none) */
    uint64_t budget;            /* --tokens for a mixed pack, else 0 */
} evo_pack_meta;

typedef struct {
    uint64_t start;
    uint32_t len;
    uint16_t source, flags;
} evo_pack_piece;

typedef struct {
    uint64_t n_docs, n_tokens, file_size, content_id; /* content_id: the source's header XXH3 */
    double weight;
    uint32_t embedded_section; /* 0: external file at path */
    char *path;                /* as stored (relative to the pack's directory unless absolute) */
} evo_pack_source;

/* --- reading ------------------------------------------------------------ */

typedef struct {
    evo_binfile file;
    evo_pack_meta meta;
    evo_pack_source *sources;
    evo_tokens_reader **tokens; /* per source, NULL until opened */
    const uint8_t *pieces, *rows;
} evo_pack;

enum { EVO_PACK_INDEX_ONLY = 1 }; /* do not open the sources (evo-pack --info) */

/* Opens and validates a pack: container, checksums, meta, every piece in
 * range and rows of the right length; then (unless EVO_PACK_INDEX_ONLY)
 * opens and verifies every source and checks it is the very file packed
 * and that no piece crosses a document end. */
int evo_pack_open(evo_pack *p, const char *path, unsigned flags, evo_err *e);
void evo_pack_close(evo_pack *p);
/* Where an external source is looked for (malloc'ed). */
char *evo_pack_source_path(const evo_pack *p, uint32_t i);

static inline uint64_t evo_pack_length(const evo_pack_meta *m) { return (uint64_t)m->seq_len * m->micro_bsz; }
evo_pack_piece evo_pack_get_piece(const evo_pack *p, uint64_t i);
uint64_t evo_pack_row_first_piece(const evo_pack *p, uint64_t row);

/* One row as the model sees it; arrays of packed_length entries (and
 * packed_length + 1 for cu_seqlens), allocated by evo_pack_row_init. */
typedef struct {
    int32_t *tokens, *labels, *positions, *cu_seqlens;
    uint32_t n_segments; /* cu_seqlens has n_segments + 1 entries */
    uint32_t n_pad;
} evo_pack_row;

void evo_pack_row_init(evo_pack_row *r, const evo_pack_meta *m);
void evo_pack_row_free(evo_pack_row *r);
/* Fills r with row i (i < n_rows) of a pack opened with its sources. */
void evo_pack_read_row(const evo_pack *p, uint64_t i, evo_pack_row *r);

/* --- writing ------------------------------------------------------------ */

typedef struct {
    evo_binwriter w;
    evo_buf rows; /* u64 per row boundary: 8 bytes a row, the only thing kept */
    uint64_t packed_length, n_pieces, n_tokens, n_pad, row_fill;
    int pieces_begun, finished;
    uint8_t piece_buf[1 << 16];
    size_t piece_fill;
} evo_pack_writer;

/* Opens path with room for n_embedded embedded sources, which are written
 * first (evo_pack_embed_*), then the pieces (evo_pack_add_piece, rows
 * closed by evo_pack_end_row), then evo_pack_finish. */
int evo_pack_create(evo_pack_writer *w, const char *path, uint32_t n_embedded, uint64_t packed_length, evo_err *e);
/* Embedded source i: its bytes are streamed into section 16+i. */
int evo_pack_embed_begin(evo_pack_writer *w, uint32_t i, evo_err *e);
int evo_pack_embed_write(evo_pack_writer *w, const void *p, size_t n, evo_err *e);
int evo_pack_embed_end(evo_pack_writer *w, evo_err *e);
/* The output's descriptor and the file offset the next embedded byte goes
 * to, so a just-written source can be mapped back and verified. */
int evo_pack_writer_fd(const evo_pack_writer *w);
uint64_t evo_pack_writer_pos(const evo_pack_writer *w);

int evo_pack_add_piece(evo_pack_writer *w, evo_pack_piece piece, evo_err *e);
/* Closes the current row (full, or short with padding for a kept tail). */
int evo_pack_end_row(evo_pack_writer *w, evo_err *e);
/* Writes rows, sources and meta (n_rows, n_pieces, n_tokens, n_pad filled
 * in from what was added) and commits the file atomically. */
int evo_pack_finish(evo_pack_writer *w, evo_pack_meta *m, const evo_pack_source *sources, evo_err *e);
void evo_pack_abort(evo_pack_writer *w);
/* The writer's output, to publish with others (fileio.h evo_out_hold,
 * evo_out_publish): held, evo_pack_finish leaves the pack under its
 * temporary name. */
evo_out *evo_pack_output(evo_pack_writer *w);

#endif
