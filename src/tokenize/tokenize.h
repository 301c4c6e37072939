/* tokenize.h - evo-tokenize's parts: the encoding pipeline and the
 * inspection modes, driven by main.c. */
#ifndef EVO_TOKENIZE_H
#define EVO_TOKENIZE_H

#include "input.h"
#include "text/tokenizer.h"

typedef struct {
    const char *tokenizer_path;
    const char *output; /* "-" = stdout */
    int ids_text;       /* --ids: text ids instead of a token file */
    int add_bos, add_eos; /* 1 asked for, 0 refused, -1 default: if the tokenizer has one */
    int threads;
    int progress;
    input_options in;
} tokenize_options;

/* Tokenizes the inputs; returns the exit code. */
int tokenize_run(const tokenize_options *opt, char **inputs, int n_inputs);

/* --info: header, counts and a length histogram of token files. */
int tokens_info(char **files, int n);
/* --decode: token files back to text, one document per line. */
int tokens_decode(const char *tokenizer_path, char **files, int n, const char *output);

#endif
