/* evo-tokenize - text, JSONL and chat data to evo token files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/version.h"
#include "base/workpool.h"
#include "tokenize.h"

static void usage(void)
{
    printf("Usage: evo-tokenize -t TOKENIZER [OPTION]... [FILE]...\n"
           "       evo-tokenize --info TOKFILE...\n"
           "       evo-tokenize --decode -t TOKENIZER TOKFILE...\n"
           "Tokenize text into an evo token file (evo-tokens(5)) for evo-pack.\n"
           "FILEs may be plain, compressed (gz, zst, xz, bz2) or tar/zip archives; none or - is stdin.\n"
           "\n"
           "  -t, --tokenizer FILE  SentencePiece .model or HuggingFace tokenizer.json (BPE)\n"
           "  -o, --output FILE     output file (default -, stdout; written atomically)\n"
           "  -f, --format FMT      auto (default: jsonl for *.jsonl*, else text), text (a document\n"
           "                        per line), doc (a document per file or member), jsonl, chat,\n"
           "                        ids (a document per line of token ids, -ID = context only;\n"
           "                        no BOS/EOS added unless asked for)\n"
           "      --field PATH      JSONL field holding the text, dotted for nested (default text)\n"
           "      --chat            same as --format chat: {\"messages\":[{\"role\",\"content\"}]} lines,\n"
           "                        only assistant turns are loss targets (see evo-tokenize(1))\n"
           "      --skip-bad        skip malformed JSON lines, report their count at the end\n"
           "      --bos, --no-bos   add the tokenizer's BOS to every document (default: on if it\n"
           "                        has one)\n"
           "      --eos, --no-eos   add the tokenizer's EOS to every document (default: on if it\n"
           "                        has one)\n"
           "      --ids             write token ids as text, a document per line (like spm_encode\n"
           "                        --output_format=id); chat context tokens print negated\n"
           "      --info            describe token files: header, counts, length histogram\n"
           "      --decode          token files back to text, a document per line\n"
           "      --shard I/N       only part I (0 to N-1) of N: the documents that start in the\n"
           "                        I-th N-th of the input bytes; the parts, in order, hold what\n"
           "                        one run writes. --shard auto: a Slurm job array task's\n"
           "                        (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT); files, not stdin\n"
           "  -j, --threads N       encoding threads (default: all usable cores); output is\n"
           "                        byte-identical for every N\n"
           "      --progress        show progress (default: only when stderr is a terminal)\n"
           "  -q, --quiet           no summary line\n"
           "  -h, --help            this help\n"
           "  -V, --version         version\n"
           "\n"
           "Exit status: 0 ok, 1 failure, 2 usage error. See evo-tokenize(1), evo-tokens(5).\n");
}

/* An environment variable of a job array task, as a number. */
static long array_env(const char *name, long missing)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v)
        return missing;
    long n = strtol(v, &end, 10);
    if (*end || n < 0)
        evo_usage_error("--shard auto: %s='%s' is not a task number", name, v);
    return n;
}

/* --shard I/N, or auto: the part a job array task is (its index among the
 * array's tasks, in steps of SLURM_ARRAY_TASK_STEP from _MIN). */
static void parse_shard(const char *arg, input_options *in)
{
    long i, n;
    if (!strcmp(arg, "auto")) {
        long id = array_env("SLURM_ARRAY_TASK_ID", -1), min = array_env("SLURM_ARRAY_TASK_MIN", 0),
             step = array_env("SLURM_ARRAY_TASK_STEP", 1);
        n = array_env("SLURM_ARRAY_TASK_COUNT", -1);
        if (id < 0 || n < 0)
            evo_usage_error("--shard auto: not a Slurm job array task (no SLURM_ARRAY_TASK_ID and _COUNT); "
                            "give --shard I/N");
        if (step < 1 || id < min || (id - min) % step)
            evo_usage_error("--shard auto: task %ld is not MIN %ld + k x STEP %ld (an evenly stepped array)", id, min,
                            step);
        i = (id - min) / step;
    } else {
        char *slash, *end;
        i = strtol(arg, &slash, 10);
        n = *slash == '/' ? strtol(slash + 1, &end, 10) : -1;
        if (slash == arg || *slash != '/' || *end)
            evo_usage_error("--shard wants I/N (e.g. 3/16) or auto, not '%s'", arg);
    }
    if (n < 1 || n > 65535 || i < 0 || i >= n)
        evo_usage_error("--shard %ld/%ld: N must be 1 to 65535 and I from 0 to N-1", i, n);
    in->shard = (uint32_t)i;
    in->shards = (uint32_t)n;
}

int main(int argc, char **argv)
{
    evo_set_progname("evo-tokenize");
    enum { OPT_FIELD = 256, OPT_CHAT, OPT_SKIP_BAD, OPT_BOS, OPT_NO_BOS, OPT_EOS, OPT_NO_EOS, OPT_IDS, OPT_INFO,
           OPT_DECODE, OPT_PROGRESS, OPT_SHARD };
    static const struct option longopts[] = {
        {"tokenizer", required_argument, NULL, 't'}, {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},    {"field", required_argument, NULL, OPT_FIELD},
        {"chat", no_argument, NULL, OPT_CHAT},       {"skip-bad", no_argument, NULL, OPT_SKIP_BAD},
        {"bos", no_argument, NULL, OPT_BOS},         {"no-bos", no_argument, NULL, OPT_NO_BOS},
        {"eos", no_argument, NULL, OPT_EOS},         {"no-eos", no_argument, NULL, OPT_NO_EOS},
        {"ids", no_argument, NULL, OPT_IDS},         {"info", no_argument, NULL, OPT_INFO},
        {"decode", no_argument, NULL, OPT_DECODE},   {"threads", required_argument, NULL, 'j'},
        {"progress", no_argument, NULL, OPT_PROGRESS}, {"quiet", no_argument, NULL, 'q'},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"help", no_argument, NULL, 'h'},            {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    tokenize_options opt = {.output = "-", .add_bos = -1, .add_eos = -1, .threads = evo_cpu_count()};
    int info = 0, decode = 0, c;
    while ((c = getopt_long(argc, argv, "t:o:f:j:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 't': opt.tokenizer_path = optarg; break;
        case 'o': opt.output = optarg; break;
        case 'f':
            if (!strcmp(optarg, "auto")) opt.in.format = FORMAT_AUTO;
            else if (!strcmp(optarg, "text")) opt.in.format = FORMAT_TEXT;
            else if (!strcmp(optarg, "doc")) opt.in.format = FORMAT_DOC;
            else if (!strcmp(optarg, "jsonl")) opt.in.format = FORMAT_JSONL;
            else if (!strcmp(optarg, "chat")) opt.in.format = FORMAT_CHAT;
            else if (!strcmp(optarg, "ids")) opt.in.format = FORMAT_IDS;
            else evo_usage_error("unknown format '%s' (auto, text, doc, jsonl, chat, ids)", optarg);
            break;
        case OPT_FIELD: opt.in.field = optarg; break;
        case OPT_CHAT: opt.in.format = FORMAT_CHAT; break;
        case OPT_SKIP_BAD: opt.in.skip_bad = 1; break;
        case OPT_BOS: opt.add_bos = 1; break;
        case OPT_NO_BOS: opt.add_bos = 0; break;
        case OPT_EOS: opt.add_eos = 1; break;
        case OPT_NO_EOS: opt.add_eos = 0; break;
        case OPT_IDS: opt.ids_text = 1; break;
        case OPT_INFO: info = 1; break;
        case OPT_DECODE: decode = 1; break;
        case 'j': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1024)
                evo_usage_error("-j wants a thread count from 1 to 1024, not '%s'", optarg);
            opt.threads = (int)n;
            break;
        }
        case OPT_PROGRESS: opt.progress = 1; break;
        case OPT_SHARD: parse_shard(optarg, &opt.in); break;
        case 'q': evo_quiet = 1; break;
        case 'h': usage(); return EVO_EXIT_OK;
        case 'V': printf("evo-tokenize (evo) %s\n", EVO_VERSION); return EVO_EXIT_OK;
        default: evo_usage_error("bad option");
        }
    }
    char **files = argv + optind;
    int n_files = argc - optind;
    if (info + decode > 1 || ((info || decode) && opt.ids_text))
        evo_usage_error("--info, --decode and --ids exclude each other");
    if (info) {
        if (!n_files)
            evo_usage_error("--info needs token files");
        return tokens_info(files, n_files);
    }
    if (!opt.tokenizer_path)
        evo_usage_error("no tokenizer given (-t FILE)");
    evo_out_cleanup_on_signals();
    if (decode) {
        if (!n_files)
            evo_usage_error("--decode needs token files");
        return tokens_decode(opt.tokenizer_path, files, n_files, opt.output);
    }
    return tokenize_run(&opt, files, n_files);
}
