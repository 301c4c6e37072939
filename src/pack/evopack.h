/* evopack.h - evo-pack's parts: inputs (sources.c), the packing plan
 * (plan.c) and inspection (inspect.c), driven by main.c. */
#ifndef EVO_PACK_TOOL_H
#define EVO_PACK_TOOL_H

#include <stdint.h>

#include "formats/pack.h"
#include "formats/tokens.h"

typedef struct {
    uint32_t seq_len, micro_bsz;
    uint64_t seed;
    int into_one, keep_tail, embed, progress, threads;
    uint32_t min_length, max_doc_len, epochs;
    uint64_t budget;        /* --tokens, 0 = default */
    double valid;           /* --valid: fraction (< 1) or count (>= 1); 0 = none */
    const char *valid_out;
    const char *output;
} pack_options;

/* One input: a token file opened and verified, external or embedded. */
typedef struct {
    char *arg;        /* the path as given ("-" = stdin), without its weight */
    double weight;    /* 0 = none given */
    int embedded;
    evo_tokens_reader tok;
    evo_pack_source src; /* the record the pack stores */
    void *map;           /* embedded: the mapping of the written section */
    uint64_t map_len;
} pack_input;

/* Splits "path:weight" (when path alone is not a file and weight parses). */
void parse_input_arg(const char *arg, pack_input *in);

/* Opens every input (embedded ones, stdin and --embed, copied into w's
 * embedded sections first) and checks all but the bulk of the tokens;
 * refuses inputs of different tokenizers. */
int open_inputs(pack_input *in, int n, const pack_options *opt, evo_pack_writer *w, evo_err *e);
/* Verifies the inputs' tokens and masks on a pool of `threads` threads
 * while the caller plans (packing needs only the offsets); with one thread
 * verify_start does it all before returning. */
typedef struct verify_job verify_job;
verify_job *verify_start(pack_input *in, int n, int threads);
int verify_finish(verify_job *j, evo_err *e);
/* Copies the embedded inputs into a second pack (the validation pack). */
int embed_again(pack_input *in, int n, evo_pack_writer *w, evo_err *e);
void close_inputs(pack_input *in, int n);

/* Builds the training rows into w (and the validation rows into vw, if
 * not NULL) and fills the meta's counts and options. */
int plan_pack(pack_input *in, int n, const pack_options *opt, evo_pack_writer *w, evo_pack_writer *vw,
              evo_pack_meta *meta, evo_pack_meta *vmeta, evo_err *e);

/* --info and --dump. */
int pack_info(const char *path);
int pack_dump(const char *path, const char *rows, const char *tokenizer);

#endif
