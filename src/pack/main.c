/* evo-pack - token files to packed training rows (evo-pack(5)). */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/version.h"
#include "base/workpool.h"
#include "evopack.h"

static void usage(void)
{
    printf("Usage: evo-pack [OPTION]... TOKFILE[:WEIGHT]... -o OUT.pack\n"
           "       evo-pack --info PACK\n"
           "       evo-pack --dump ROWS [--tokenizer FILE] PACK\n"
           "Pack evo token files (evo-tokens(5)) into training rows of seq_len x micro_bsz tokens\n"
           "with document boundaries, positions and labels, as InternEvo's packed dataset does.\n"
           "A TOKFILE of - is stdin (embedded in the pack); a quoted pattern is expanded, in natural\n"
           "order; the parts 0..N-1 of one evo-tokenize --shard run, in order, are one input.\n"
           "See evo-pack(1) and evo-pack(5).\n"
           "\n"
           "  -o, --output FILE     the pack (default -, stdout; written atomically)\n"
           "  -s, --seq-len N       tokens per attention window (default 2048)\n"
           "  -b, --micro-bsz N     windows per row: a row is seq_len x micro_bsz tokens (default 1)\n"
           "      --seed N          document shuffle seed, 0 to 2^31-1 (default 1024, InternEvo's)\n"
           "      --pack-into-one   attention across documents in fixed seq_len windows\n"
           "                        (InternEvo pack_sample_into_one=True)\n"
           "      --min-length N    drop documents shorter than N tokens (default 0)\n"
           "      --max-doc-len N   split documents longer than N tokens into documents of N\n"
           "      --keep-tail       keep each input's last, short row, padded (default: dropped)\n"
           "      --epochs N        pass over the documents N times, each reshuffled (default 1)\n"
           "      --tokens N        with weights: tokens in the mixed stream (default: all inputs'\n"
           "                        tokens x epochs)\n"
           "      --valid X         hold out documents for validation: X < 1 a fraction, else a count\n"
           "      --valid-out FILE  where the validation pack goes (needed with --valid)\n"
           "      --embed           copy the token files into the pack (self-contained)\n"
           "      --info            describe a pack: options, sources, rows, waste, lengths\n"
           "      --dump ROWS       print rows (N, N-M or all) as evo-train is fed them\n"
           "      --tokenizer FILE  with --dump: also print each segment decoded\n"
           "  -j, --threads N       verify input files on N threads (default: all usable cores);\n"
           "                        output is byte-identical for every N\n"
           "      --progress        show progress (default: only when stderr is a terminal)\n"
           "  -q, --quiet           no summary on stderr\n"
           "  -h, --help            this help\n"
           "  -V, --version         version\n");
}

enum { OPT_SEED = 256, OPT_INTO_ONE, OPT_MIN_LENGTH, OPT_MAX_DOC_LEN, OPT_KEEP_TAIL, OPT_EPOCHS, OPT_TOKENS,
       OPT_VALID, OPT_VALID_OUT, OPT_EMBED, OPT_INFO, OPT_DUMP, OPT_TOKENIZER, OPT_PROGRESS };

static int by_version(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* The inputs (copies) with every quoted pattern ("tok/part-*.tok", for
 * more shards than a command line holds) expanded, its matches in natural
 * order (part-2 before part-10: a --shard run's parts in order); a pattern
 * that matches nothing is an error. *n is updated. */
static char **expand_patterns(char **args, int *n)
{
    char **out = NULL;
    size_t len = 0;
    for (int i = 0; i < *n; i++) {
        glob_t g;
        if (!strpbrk(args[i], "*?[") || access(args[i], F_OK) == 0) {
            out = evo_realloc(out, (len + 1) * sizeof *out);
            out[len++] = evo_strdup(args[i]);
            continue;
        }
        if (glob(args[i], 0, NULL, &g) != 0)
            evo_usage_error("%s: no file matches", args[i]);
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, by_version);
        out = evo_realloc(out, (len + g.gl_pathc) * sizeof *out);
        for (size_t k = 0; k < g.gl_pathc; k++)
            out[len++] = evo_strdup(g.gl_pathv[k]);
        globfree(&g);
    }
    *n = (int)len;
    return out;
}

static int run(pack_options *opt, char **args, int n)
{
    pack_input *in = evo_calloc((size_t)n, sizeof *in);
    uint32_t n_embedded = 0, n_stdin = 0;
    for (int i = 0; i < n; i++) {
        parse_input_arg(args[i], &in[i]);
        n_stdin += !strcmp(in[i].arg, "-");
        n_embedded += opt->embed || !strcmp(in[i].arg, "-");
    }
    if (n_stdin > 1)
        evo_usage_error("stdin can be read only once");
    if (!strcmp(opt->output, "-") && isatty(STDOUT_FILENO))
        evo_usage_error("refusing to write a binary pack to a terminal (use -o FILE or a pipe)");
    double t0 = evo_now();
    uint64_t length = (uint64_t)opt->seq_len * opt->micro_bsz;
    evo_err e;
    /* Writers stay put: the signal cleanup holds pointers to their outputs. */
    evo_pack_writer *w = evo_calloc(1, sizeof *w), *vw = opt->valid_out ? evo_calloc(1, sizeof *vw) : NULL;
    evo_pack_meta meta = {0}, vmeta = {0};
    int rc = evo_pack_create(w, opt->output, n_embedded, length, &e);
    if (rc == 0 && vw)
        rc = evo_pack_create(vw, opt->valid_out, n_embedded, length, &e);
    if (rc == 0)
        rc = open_inputs(in, n, opt, w, &e);
    if (rc == 0 && vw)
        rc = embed_again(in, n, vw, &e);
    if (rc == 0) {
        verify_job *vj = verify_start(in, n, opt->threads);
        rc = plan_pack(in, n, opt, w, vw, &meta, &vmeta, &e);
        evo_err ve;
        if (verify_finish(vj, &ve) < 0) { /* a bad input explains any other failure */
            e = ve;
            rc = -1;
        }
    }
    evo_pack_source *src = evo_calloc((size_t)n, sizeof *src);
    for (int i = 0; i < n; i++)
        src[i] = in[i].src;
    /* The training and validation packs appear together or not at all. */
    evo_out *outs[2] = {evo_pack_output(w), vw ? evo_pack_output(vw) : NULL};
    if (vw) {
        evo_out_hold(outs[0]);
        evo_out_hold(outs[1]);
    }
    if (rc == 0)
        rc = evo_pack_finish(w, &meta, src, &e);
    else
        evo_pack_abort(w);
    if (vw) {
        if (rc == 0)
            rc = evo_pack_finish(vw, &vmeta, src, &e);
        else
            evo_pack_abort(vw);
        if (rc == 0)
            rc = evo_out_publish(outs, 2, &e);
        else
            evo_out_abort(outs[0]); /* the training pack, finished and held */
    }
    double secs = evo_now() - t0;
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += in[i].tok.file.size;
    close_inputs(in, n);
    free(src);
    free(in);
    free(w);
    free(vw);
    if (rc < 0)
        evo_fatal("%s", e.msg);
    evo_info("%llu rows of %llu tokens (%llu documents, %.1f%% padding) from %.1f MB in %.2f s (%.2f GB/s)",
             (unsigned long long)meta.n_rows, (unsigned long long)length, (unsigned long long)meta.n_docs,
             meta.n_rows ? 100.0 * (double)meta.n_pad / (double)(meta.n_rows * length) : 0.0, (double)bytes / 1e6,
             secs, secs > 0 ? (double)bytes / 1e9 / secs : 0.0);
    if (vw)
        evo_info("validation: %llu rows (%llu documents) in %s", (unsigned long long)vmeta.n_rows,
                 (unsigned long long)vmeta.n_docs, opt->valid_out);
    return EVO_EXIT_OK;
}

int main(int argc, char **argv)
{
    evo_set_progname("evo-pack");
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},         {"seq-len", required_argument, NULL, 's'},
        {"micro-bsz", required_argument, NULL, 'b'},      {"seed", required_argument, NULL, OPT_SEED},
        {"pack-into-one", no_argument, NULL, OPT_INTO_ONE}, {"min-length", required_argument, NULL, OPT_MIN_LENGTH},
        {"max-doc-len", required_argument, NULL, OPT_MAX_DOC_LEN}, {"keep-tail", no_argument, NULL, OPT_KEEP_TAIL},
        {"epochs", required_argument, NULL, OPT_EPOCHS},  {"tokens", required_argument, NULL, OPT_TOKENS},
        {"valid", required_argument, NULL, OPT_VALID},    {"valid-out", required_argument, NULL, OPT_VALID_OUT},
        {"embed", no_argument, NULL, OPT_EMBED},          {"info", no_argument, NULL, OPT_INFO},
        {"dump", required_argument, NULL, OPT_DUMP},      {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"threads", required_argument, NULL, 'j'},        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},                {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},              {NULL, 0, NULL, 0}};
    pack_options opt = {.seq_len = 2048, .micro_bsz = 1, .seed = 1024, .epochs = 1, .output = "-",
                        .threads = evo_cpu_count()};
    int info = 0, c;
    const char *dump = NULL, *tokenizer = NULL;
    while ((c = getopt_long(argc, argv, "o:s:b:j:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': opt.output = optarg; break;
        case 's': opt.seq_len = (uint32_t)evo_usage_number(optarg, "--seq-len", 1, EVO_PACK_MAX_LENGTH); break;
        case 'b': opt.micro_bsz = (uint32_t)evo_usage_number(optarg, "--micro-bsz", 1, EVO_PACK_MAX_LENGTH); break;
        case OPT_SEED: opt.seed = evo_usage_number(optarg, "--seed", 0, INT32_MAX); break;
        case OPT_INTO_ONE: opt.into_one = 1; break;
        case OPT_MIN_LENGTH: opt.min_length = (uint32_t)evo_usage_number(optarg, "--min-length", 0, UINT32_MAX); break;
        case OPT_MAX_DOC_LEN: opt.max_doc_len = (uint32_t)evo_usage_number(optarg, "--max-doc-len", 1, UINT32_MAX); break;
        case OPT_KEEP_TAIL: opt.keep_tail = 1; break;
        case OPT_EPOCHS: opt.epochs = (uint32_t)evo_usage_number(optarg, "--epochs", 1, 1000000); break;
        case OPT_TOKENS: opt.budget = evo_usage_number(optarg, "--tokens", 1, UINT64_MAX / 2); break;
        case OPT_VALID: {
            char *end;
            opt.valid = strtod(optarg, &end);
            if (*end || !(opt.valid > 0) || (opt.valid >= 1 && opt.valid != (double)(uint64_t)opt.valid))
                evo_usage_error("--valid wants a fraction in (0, 1) or a document count, not '%s'", optarg);
            break;
        }
        case OPT_VALID_OUT: opt.valid_out = optarg; break;
        case OPT_EMBED: opt.embed = 1; break;
        case OPT_INFO: info = 1; break;
        case OPT_DUMP: dump = optarg; break;
        case OPT_TOKENIZER: tokenizer = optarg; break;
        case 'j': opt.threads = (int)evo_usage_number(optarg, "-j", 1, 1024); break;
        case OPT_PROGRESS: opt.progress = 1; break;
        case 'q': evo_quiet = 1; break;
        case 'h': usage(); return EVO_EXIT_OK;
        case 'V': printf("evo-pack (evo) %s\n", EVO_VERSION); return EVO_EXIT_OK;
        default: evo_usage_error("bad option");
        }
    }
    char **files = argv + optind;
    int n = argc - optind;
    if (info && dump)
        evo_usage_error("--info and --dump exclude each other");
    if (info || dump) {
        if (n != 1)
            evo_usage_error("%s wants one pack file", info ? "--info" : "--dump");
        return info ? pack_info(files[0]) : pack_dump(files[0], dump, tokenizer);
    }
    if (tokenizer)
        evo_usage_error("--tokenizer goes with --dump");
    if ((opt.valid > 0) != (opt.valid_out != NULL))
        evo_usage_error("--valid and --valid-out go together");
    if ((uint64_t)opt.seq_len * opt.micro_bsz > EVO_PACK_MAX_LENGTH)
        evo_usage_error("a row of %u x %u tokens is too long (at most %u)", opt.seq_len, opt.micro_bsz,
                        EVO_PACK_MAX_LENGTH);
    static char *stdin_only[] = {"-"};
    if (!n) {
        files = stdin_only;
        n = 1;
    }
    files = expand_patterns(files, &n);
    if (n > 65536)
        evo_usage_error("at most 65536 inputs");
    evo_out_cleanup_on_signals();
    int rc = run(&opt, files, n);
    for (int i = 0; i < n; i++)
        free(files[i]);
    free(files);
    return rc;
}
