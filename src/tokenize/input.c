#include "input.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --shard I/N: the documents are cut into N runs by where they start in
 * the inputs taken one after the other, S bytes in all (the files' sizes):
 * part I holds the documents whose start p has floor(p N / S) = I. p only
 * grows along the inputs, so the parts follow each other and, concatenated
 * in order, hold the one-process output. p is exact in a plain file (the
 * byte offset of the document's first byte) and, in a compressed file or
 * an archive, the compressed bytes read when the document starts (reads
 * of SOURCE_READ: deterministic, and that coarse there). A part skips the files
 * that end before its run without opening them, reads (without encoding)
 * the documents before it, and stops at the first document after it. */

/* A text-mode document longer than this (256 KB) is handed to the workers in pieces
 * cut at exact positions, so a 1 GB line never sits in memory whole. */
#define LONG_DOC_PIECE (256u << 10)
#define READ_BLOCK (1u << 20)
/* Raw reads of a file: also the grain of --shard's positions in compressed
 * files and archives. */
#define SOURCE_READ (64u << 10)

struct reader {
    char **paths;
    int n_paths, next_path;
    input_options opt;

    struct archive *a;
    int fd;             /* what libarchive reads through read_source() */
    char *src_buf;
    uint64_t src_bytes; /* raw bytes read from the current input */
    const char *path;   /* current input */
    char *member;       /* current archive member, NULL for a plain stream */
    int in_entry;
    input_format format; /* resolved for the current entry */
    uint64_t line;       /* 1-based number of the line being read */

    char *block;
    size_t block_len, block_pos;

    /* A compressed archive member (a .jsonl.zst inside a tar) is read
     * through a second libarchive reader fed from the member's bytes. */
    struct archive *inner;
    char *member_buf;
    size_t member_pending; /* bytes peeked into member_buf, not yet handed on */

    evo_buf cur;     /* the current line/document read so far */
    int cur_started; /* pieces of the current document already emitted */
    size_t next_cut_try; /* retry a failed cut only after the text doubles: O(n) overall */

    uint64_t bytes_done, bytes_total, bad_lines;

    /* --shard: the run [lo, hi) of document starts that is ours */
    uint64_t *starts; /* [n_paths + 1]: where each input starts, the sum of the sizes before it */
    uint64_t file_start, lo, hi;
    uint64_t data_at; /* bytes of the current entry before block[0] */
    int exact;        /* the current entry is a plain file: positions are byte offsets */
    uint64_t line_at; /* where the line being read started */
    int doc_ours;     /* the document being read is in our run */
    int past_run;     /* a document started after our run: nothing more is ours */
};

reader *reader_new(char **paths, int n_paths, const input_options *opt, evo_err *e)
{
    reader *r = evo_calloc(1, sizeof *r);
    r->paths = paths;
    r->n_paths = n_paths;
    r->opt = *opt;
    r->block = evo_malloc(READ_BLOCK);
    r->src_buf = evo_malloc(READ_BLOCK);
    r->member_buf = evo_malloc(READ_BLOCK);
    r->starts = evo_calloc((size_t)n_paths + 1, sizeof *r->starts);
    r->fd = -1;
    r->hi = UINT64_MAX;
    for (int i = 0; i < n_paths; i++) {
        struct stat st;
        uint64_t size = 0;
        if (strcmp(paths[i], "-") && stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
            size = (uint64_t)st.st_size;
        else if (opt->shards) {
            evo_errf(e, "%s: --shard needs regular files (their sizes cut the parts), not a pipe or stdin",
                     paths[i]);
            reader_free(r);
            return NULL;
        }
        r->bytes_total += size;
        r->starts[i + 1] = r->bytes_total;
    }
    if (opt->shards) { /* ceil(I S / N) to ceil((I + 1) S / N) */
        unsigned __int128 S = r->bytes_total;
        r->lo = (uint64_t)((opt->shard * S + opt->shards - 1) / opt->shards);
        r->hi = (uint64_t)(((opt->shard + 1) * S + opt->shards - 1) / opt->shards);
        if (opt->shard + 1 == opt->shards)
            r->hi = UINT64_MAX; /* the last part takes what starts at the very end (p = S) */
    }
    return r;
}

/* Where the reader is in the inputs taken one after the other: see above. */
static uint64_t position(const reader *r)
{
    return r->file_start + (r->exact ? r->data_at + r->block_pos : r->src_bytes);
}

/* A document starts at p: whether it is ours, and whether the run is over. */
static int starts_ours(reader *r, uint64_t p)
{
    if (p >= r->hi)
        r->past_run = 1;
    return r->doc_ours = p >= r->lo && p < r->hi;
}

static void close_inner(reader *r)
{
    if (r->inner)
        archive_read_free(r->inner);
    r->inner = NULL;
}

static void close_archive(reader *r)
{
    close_inner(r);
    if (r->a) {
        archive_read_free(r->a);
        r->a = NULL;
    }
    if (r->fd > STDIN_FILENO)
        close(r->fd);
    r->fd = -1;
    r->bytes_done += r->src_bytes;
    r->src_bytes = 0;
    free(r->member);
    r->member = NULL;
    r->in_entry = 0;
}

void reader_free(reader *r)
{
    if (!r)
        return;
    close_archive(r);
    free(r->block);
    free(r->src_buf);
    free(r->member_buf);
    evo_buf_free(&r->cur);
    free(r->starts);
    free(r);
}

uint64_t reader_bytes_read(const reader *r)
{
    return r->bytes_done + r->src_bytes;
}
uint64_t reader_bytes_total(const reader *r) { return r->bytes_total; }
uint64_t reader_bad_lines(const reader *r) { return r->bad_lines; }

/* Errors name "file" or "file:member", with ":line" for line-based formats. */
static int fail(reader *r, evo_err *e, int with_line, const char *what, const char *detail)
{
    char where[1024];
    if (r->member)
        snprintf(where, sizeof where, "%s:%s", r->path, r->member);
    else
        snprintf(where, sizeof where, "%s", r->path);
    if (with_line)
        return evo_errf(e, "%s:%llu: %s%s", where, (unsigned long long)r->line, what, detail ? detail : "");
    return evo_errf(e, "%s: %s%s", where, what, detail ? detail : "");
}

/* libarchive reads through us: we count raw bytes (progress, and telling
 * an empty input from an unrecognized one). */
static la_ssize_t read_source(struct archive *a, void *arg, const void **buf)
{
    reader *r = arg;
    for (;;) {
        ssize_t got = read(r->fd, r->src_buf, SOURCE_READ);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            archive_set_error(a, errno, "%s", strerror(errno));
            return -1;
        }
        r->src_bytes += (uint64_t)got;
        *buf = r->src_buf;
        return got;
    }
}

/* Returns 1 when the next input is open, 0 when it was empty (no
 * documents: libarchive itself refuses a 0-byte stream), -1 on error. */
static int open_next(reader *r, evo_err *e)
{
    r->file_start = r->starts[r->next_path];
    r->path = r->paths[r->next_path++];
    r->fd = strcmp(r->path, "-") ? open(r->path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (r->fd < 0)
        return fail(r, e, 0, strerror(errno), NULL);
    r->a = archive_read_new();
    archive_read_support_filter_all(r->a);
    archive_read_support_format_tar(r->a);
    archive_read_support_format_zip_streamable(r->a);
    archive_read_support_format_7zip(r->a);
    archive_read_support_format_cpio(r->a);
    archive_read_support_format_raw(r->a); /* a plain or compressed stream */
    if (archive_read_open(r->a, r, NULL, read_source, NULL) == ARCHIVE_OK)
        return 1;
    if (r->src_bytes == 0) {
        close_archive(r);
        return 0;
    }
    return fail(r, e, 0, archive_error_string(r->a) ? archive_error_string(r->a) : "cannot open", NULL);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static input_format resolve_format(const reader *r, const char *name)
{
    if (r->opt.format != FORMAT_AUTO)
        return r->opt.format;
    if (r->opt.field)
        return FORMAT_JSONL;
    static const char *const comp[] = {"", ".gz", ".zst", ".xz", ".bz2", ".lz4", ".zstd"};
    for (size_t i = 0; i < sizeof comp / sizeof *comp; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, ".jsonl%s", comp[i]);
        if (ends_with(name, suffix))
            return FORMAT_JSONL;
    }
    return FORMAT_TEXT;
}

static la_ssize_t read_member(struct archive *inner, void *arg, const void **buf)
{
    reader *r = arg;
    *buf = r->member_buf;
    if (r->member_pending) {
        la_ssize_t n = (la_ssize_t)r->member_pending;
        r->member_pending = 0;
        return n;
    }
    la_ssize_t got = archive_read_data(r->a, r->member_buf, READ_BLOCK);
    if (got < 0)
        archive_set_error(inner, EIO, "%s", archive_error_string(r->a));
    return got;
}

static int is_compressed(const unsigned char *p, size_t n)
{
    static const struct { size_t len; const char *magic; } known[] = {
        {2, "\x1f\x8b"}, {4, "\x28\xb5\x2f\xfd"}, {6, "\xfd" "7zXZ\0"}, {3, "BZh"}, {4, "\x04\x22\x4d\x18"}};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (n >= known[i].len && memcmp(p, known[i].magic, known[i].len) == 0)
            return 1;
    return 0;
}

/* Peeks at a member's first bytes; a compressed member gets an inner
 * reader that decompresses it (filters detected from content again). */
static int open_member(reader *r, evo_err *e)
{
    la_ssize_t got = archive_read_data(r->a, r->member_buf, READ_BLOCK);
    if (got < 0)
        return fail(r, e, 0, archive_error_string(r->a) ? archive_error_string(r->a) : "read error", NULL);
    if (!is_compressed((const unsigned char *)r->member_buf, (size_t)got)) {
        memcpy(r->block, r->member_buf, (size_t)got);
        r->block_len = (size_t)got;
        return 0;
    }
    r->member_pending = (size_t)got;
    r->inner = archive_read_new();
    archive_read_support_filter_all(r->inner);
    archive_read_support_format_raw(r->inner);
    struct archive_entry *ent;
    if (archive_read_open(r->inner, r, NULL, read_member, NULL) != ARCHIVE_OK ||
        archive_read_next_header(r->inner, &ent) != ARCHIVE_OK)
        return fail(r, e, 0, archive_error_string(r->inner) ? archive_error_string(r->inner) : "unreadable member",
                    NULL);
    return 0;
}

/* Returns 1 if an entry is open, 0 at end of all input. */
static int next_entry(reader *r, evo_err *e)
{
    for (;;) {
        if (!r->a) {
            while (r->next_path < r->n_paths && r->starts[r->next_path + 1] < r->lo)
                r->next_path++; /* ends before our run: not even opened */
            if (r->next_path == r->n_paths)
                return 0;
            int rc = open_next(r, e);
            if (rc <= 0) {
                if (rc < 0)
                    return -1;
                continue;
            }
        }
        struct archive_entry *ent;
        int rc = archive_read_next_header(r->a, &ent);
        if (rc == ARCHIVE_EOF) {
            close_archive(r);
            continue;
        }
        if (rc < ARCHIVE_WARN) {
            const char *msg = archive_error_string(r->a);
            return fail(r, e, 0, msg ? msg : "unreadable input", NULL);
        }
        free(r->member);
        r->member = NULL;
        if (archive_format(r->a) != ARCHIVE_FORMAT_RAW) {
            if (archive_entry_filetype(ent) != AE_IFREG)
                continue;
            r->member = evo_strdup(archive_entry_pathname(ent) ? archive_entry_pathname(ent) : "?");
        }
        r->format = resolve_format(r, r->member ? r->member : r->path);
        r->in_entry = 1;
        r->line = 0;
        r->block_len = r->block_pos = 0;
        r->data_at = 0;
        r->exact = !r->member && archive_filter_code(r->a, 0) == ARCHIVE_FILTER_NONE;
        r->line_at = position(r);
        close_inner(r);
        if (r->member && open_member(r, e) < 0)
            return -1;
        r->cur.len = 0;
        r->cur_started = 0;
        r->next_cut_try = 0;
        return 1;
    }
}

/* Follows a dotted path ("meta.text") through nested objects. */
static json_t *field_at(json_t *obj, const char *path)
{
    char key[256];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key || !json_is_object(obj))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        obj = json_object_get(obj, key);
        path += n + (dot ? 1 : 0);
    }
    return obj;
}

/* Chat turns in ChatML form: every message becomes
 *   "<|im_start|>" role "\n"  content "<|im_end|>"  "\n"
 * and only the assistant's content and its "<|im_end|>" are loss targets
 * (a message may override with "loss": true/false). Segments are encoded
 * separately, so token boundaries always fall on turn boundaries, and
 * without document-level rules (no dummy prefix): the markers are structure,
 * not text that starts a document. */
static int add_chat(reader *r, batch *b, json_t *doc, evo_err *e)
{
    json_t *msgs = json_object_get(doc, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(r, e, 1, "expected a non-empty \"messages\" array", NULL);
    batch_begin_entry(b, ENTRY_STARTS_DOC | ENTRY_ENDS_DOC);
    size_t n = json_array_size(msgs);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        json_t *loss = json_object_get(m, "loss");
        if (!json_is_string(role) || !json_is_string(content))
            return fail(r, e, 1, "every message needs string \"role\" and \"content\"", NULL);
        if (loss && !json_is_boolean(loss))
            return fail(r, e, 1, "\"loss\" must be true or false", NULL);
        int target = loss ? json_is_true(loss) : strcmp(json_string_value(role), "assistant") == 0;
        evo_buf head = {0};
        evo_buf_append(&head, "<|im_start|>", 12);
        evo_buf_append(&head, json_string_value(role), json_string_length(role));
        evo_buf_push(&head, '\n');
        batch_add_segment(b, head.data, head.len, 0, 0);
        evo_buf_free(&head);
        batch_add_segment(b, json_string_value(content), json_string_length(content), 0, target);
        batch_add_segment(b, "<|im_end|>", 10, 0, target);
        batch_add_segment(b, "\n", 1, 0, 0);
    }
    return 0;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r", s[i]))
            return 0;
    return 1;
}

/* A complete line of a JSON-based format. */
static int add_json_line(reader *r, batch *b, const char *s, size_t n, evo_err *e)
{
    if (is_blank(s, n) || !starts_ours(r, r->line_at))
        return 0;
    json_error_t jerr;
    json_t *doc = json_loadb(s, n, JSON_ALLOW_NUL, &jerr);
    int rc = 0;
    if (!doc) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s (column %d)", jerr.text, jerr.column);
        rc = fail(r, e, 1, "malformed JSON: ", detail);
    } else if (r->format == FORMAT_CHAT) {
        size_t mark_entries = b->n_entries, mark_segs = b->n_segs, mark_arena = b->arena.len;
        rc = add_chat(r, b, doc, e);
        if (rc < 0) { /* drop the half-built entry */
            b->n_entries = mark_entries;
            b->n_segs = mark_segs;
            b->arena.len = mark_arena;
        }
    } else {
        const char *field = r->opt.field ? r->opt.field : "text";
        json_t *v = field_at(doc, field);
        if (!v)
            rc = fail(r, e, 1, "no field ", field);
        else if (!json_is_string(v))
            rc = fail(r, e, 1, "not a string: field ", field);
        else {
            batch_begin_entry(b, ENTRY_STARTS_DOC | ENTRY_ENDS_DOC);
            batch_add_segment(b, json_string_value(v), json_string_length(v), EVO_ENC_WHOLE, 1);
        }
    }
    json_decref(doc);
    if (rc < 0 && r->opt.skip_bad) {
        r->bad_lines++;
        return 0;
    }
    return rc;
}

/* Emits the text document in r->cur: all of it when complete, else the
 * longest prefix the tokenizer can cut exactly. */
static void emit_text(reader *r, batch *b, int complete)
{
    size_t n = r->cur.len;
    if (!complete) {
        if (r->cur.len < r->next_cut_try)
            return;
        n = evo_tokenizer_safe_cut(r->opt.tok, r->cur.data, r->cur.len);
        if (n == 0) { /* no exact cut yet: keep accumulating */
            r->next_cut_try = 2 * r->cur.len;
            return;
        }
    }
    r->next_cut_try = 0;
    unsigned flags = (r->cur_started ? 0 : ENTRY_STARTS_DOC) | (complete ? ENTRY_ENDS_DOC : 0);
    unsigned enc = (r->cur_started ? 0 : EVO_ENC_DOC_START) | (complete ? EVO_ENC_DOC_END : 0);
    if (r->cur_started ? r->doc_ours : starts_ours(r, r->line_at)) {
        batch_begin_entry(b, flags);
        batch_add_segment(b, r->cur.data, n, enc, 1);
    }
    if (r->cur.len > n) /* an empty line has no buffer yet */
        memmove(r->cur.data, r->cur.data + n, r->cur.len - n);
    r->cur.len -= n;
    r->cur_started = !complete;
}

int parse_id_line(const char *s, size_t n, uint32_t vocab_size, evo_ids *ids, evo_buf *target, evo_err *e)
{
    size_t i = 0;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
            i++;
        if (i == n)
            return 0;
        int neg = s[i] == '-';
        i += neg;
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9' && v < ((uint64_t)1 << 32); i++, digits++)
            v = 10 * v + (uint64_t)(s[i] - '0');
        if (!digits || (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r'))
            return evo_errf(e, "not a token id at column %zu", i + 1);
        if (v >= vocab_size)
            return evo_errf(e, "token id %s%llu is outside the vocabulary (size %u)", neg ? "-" : "",
                            (unsigned long long)v, vocab_size);
        evo_ids_push(ids, (int32_t)v);
        evo_buf_push(target, neg ? 0 : 1);
    }
}

/* An ids line is checked here, where the file and line are known; the
 * workers parse it again for the result. */
static int check_id_line(reader *r, const char *s, size_t n, evo_err *e)
{
    evo_ids ids = {0};
    evo_buf target = {0};
    evo_err why;
    int rc = parse_id_line(s, n, evo_tokenizer_vocab_size(r->opt.tok), &ids, &target, &why);
    evo_ids_free(&ids);
    evo_buf_free(&target);
    return rc < 0 ? fail(r, e, 1, why.msg, NULL) : 0;
}

static int end_line(reader *r, batch *b, evo_err *e)
{
    r->line++;
    int rc = 0;
    if (r->format == FORMAT_JSONL || r->format == FORMAT_CHAT)
        rc = add_json_line(r, b, r->cur.data, r->cur.len, e);
    else if (r->format == FORMAT_IDS && starts_ours(r, r->line_at) && check_id_line(r, r->cur.data, r->cur.len, e) < 0)
        rc = r->opt.skip_bad ? (r->bad_lines++, 0) : -1;
    else
        emit_text(r, b, 1);
    r->cur.len = 0;
    r->cur_started = 0;
    r->next_cut_try = 0;
    return rc;
}

int reader_fill(reader *r, batch *b, evo_err *e)
{
    while (!batch_full(b)) {
        if (r->past_run)
            return 0;
        if (!r->in_entry) {
            int rc = next_entry(r, e);
            if (rc <= 0)
                return rc;
        }
        if (r->block_pos == r->block_len) {
            struct archive *src = r->inner ? r->inner : r->a;
            la_ssize_t got = archive_read_data(src, r->block, READ_BLOCK);
            if (got < 0)
                return fail(r, e, 0, archive_error_string(src) ? archive_error_string(src) : "read error", NULL);
            if (got == 0) {
                /* End of this file or member: a last line without '\n', or the whole document. */
                if (r->format == FORMAT_DOC || r->cur.len || r->cur_started)
                    if (end_line(r, b, e) < 0)
                        return -1;
                r->in_entry = 0;
                continue;
            }
            r->data_at += r->block_len;
            r->block_len = (size_t)got;
            r->block_pos = 0;
        }
        const char *p = r->block + r->block_pos;
        size_t avail = r->block_len - r->block_pos;
        const char *nl = r->format == FORMAT_DOC ? NULL : memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (!r->cur.len && !r->cur_started && r->format != FORMAT_DOC)
            r->line_at = position(r); /* a line, and so a document, starts here */
        evo_buf_append(&r->cur, p, take);
        r->block_pos += take + (nl ? 1 : 0);
        if (nl) {
            if (end_line(r, b, e) < 0)
                return -1;
        } else if ((r->format == FORMAT_TEXT || r->format == FORMAT_DOC) && r->cur.len >= LONG_DOC_PIECE) {
            emit_text(r, b, 0);
        }
    }
    return 1;
}
