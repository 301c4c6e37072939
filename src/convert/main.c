/* evo-convert2hf - evo checkpoints to HuggingFace Transformers directories
 * and back (evo-convert2hf(1)). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/version.h"
#include "convert.h"

static void usage(void)
{
    printf("Usage: evo-convert2hf [OPTION]... CKPT -o OUTDIR -t TOKENIZER\n"
           "       evo-convert2hf --from-hf [OPTION]... HFDIR -o FOLDER\n"
           "Convert an evo checkpoint (a checkpoint directory, or a save folder: its newest)\n"
           "into a HuggingFace Transformers directory of a LlamaForCausalLM: config.json,\n"
           "safetensors shards, generation_config.json and the tokenizer. With --from-hf,\n"
           "import such a directory as the evo checkpoint FOLDER/STEP for evo-train's\n"
           "ckpt.load_model_only_folder. Outputs appear complete or not at all.\n"
           "See evo-convert2hf(1).\n"
           "\n"
           "  -o, --output PATH     the new HF directory (or checkpoint folder with --from-hf)\n"
           "  -t, --tokenizer FILE  the tokenizer the model was trained with: a SentencePiece\n"
           "                        .model or a tokenizer.json (copied into OUTDIR)\n"
           "      --dtype TYPE      fp32, bf16 or fp16 (default: as the weights are stored)\n"
           "      --max-shard SIZE  bytes per safetensors file, e.g. 10GB, 500MiB (default 5GB)\n"
           "      --max-pos N       max_position_embeddings (default: the config's data.seq_len)\n"
           "      --from-hf         convert HFDIR into an evo checkpoint\n"
           "      --step N          with --from-hf: the checkpoint's step (default 0)\n"
           "  -q, --quiet           no summary on stderr\n"
           "  -h, --help            this help\n"
           "  -V, --version         version\n");
}

/* HF's size strings: a byte count, or a number with KB, MB, GB, TB (powers
 * of 1000) or KiB, MiB, GiB, TiB (powers of 1024), any case. */
static uint64_t size_arg(const char *s)
{
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"", 1},       {"b", 1},      {"kb", 1e3},          {"mb", 1e6},          {"gb", 1e9},
                 {"tb", 1e12},  {"kib", 1024}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    for (size_t i = 0; !errno && end != s && v > 0 && i < sizeof units / sizeof *units; i++)
        if (!strcasecmp(end, units[i].unit) && v * units[i].scale >= 1 && v * units[i].scale < 1e18)
            return (uint64_t)(v * units[i].scale);
    evo_usage_error("--max-shard wants a size such as 5GB, 500MiB or 1000000, not '%s'", s);
}

static int dtype_arg(const char *s)
{
    static const char *const names[] = {[EVO_F32] = "fp32", [EVO_BF16] = "bf16", [EVO_F16] = "fp16"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i]))
            return i;
    evo_usage_error("--dtype wants fp32, bf16 or fp16, not '%s'", s);
}

enum { OPT_DTYPE = 256, OPT_MAX_SHARD, OPT_MAX_POS, OPT_FROM_HF, OPT_STEP };

int main(int argc, char **argv)
{
    evo_set_progname("evo-convert2hf");
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},        {"tokenizer", required_argument, NULL, 't'},
        {"dtype", required_argument, NULL, OPT_DTYPE},   {"max-shard", required_argument, NULL, OPT_MAX_SHARD},
        {"max-pos", required_argument, NULL, OPT_MAX_POS}, {"from-hf", no_argument, NULL, OPT_FROM_HF},
        {"step", required_argument, NULL, OPT_STEP},     {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},                {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    convert_options o = {.dtype = -1, .max_shard = 5000000000ull};
    int from_hf = 0, step_given = 0, c;
    while ((c = getopt_long(argc, argv, "o:t:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 't': o.tokenizer = optarg; break;
        case OPT_DTYPE: o.dtype = dtype_arg(optarg); break;
        case OPT_MAX_SHARD: o.max_shard = size_arg(optarg); break;
        case OPT_MAX_POS: o.max_pos = (uint32_t)evo_usage_number(optarg, "--max-pos", 1, UINT32_MAX); break;
        case OPT_FROM_HF: from_hf = 1; break;
        case OPT_STEP: o.step = evo_usage_number(optarg, "--step", 0, UINT64_MAX / 2); step_given = 1; break;
        case 'q': evo_quiet = 1; break;
        case 'h': usage(); return EVO_EXIT_OK;
        case 'V': printf("evo-convert2hf (evo) %s\n", EVO_VERSION); return EVO_EXIT_OK;
        default: evo_usage_error("bad option");
        }
    }
    if (argc - optind != 1)
        evo_usage_error("want one %s", from_hf ? "HF directory" : "checkpoint");
    o.input = argv[optind];
    if (!o.output)
        evo_usage_error("where to? (-o %s)", from_hf ? "FOLDER" : "OUTDIR");
    if (from_hf && (o.tokenizer || o.max_pos))
        evo_usage_error("--tokenizer and --max-pos go with evo -> HF, not --from-hf");
    if (!from_hf && step_given)
        evo_usage_error("--step goes with --from-hf");
    if (!from_hf && !o.tokenizer)
        evo_usage_error("which tokenizer was the model trained with? (-t FILE: its .model or tokenizer.json)");
    convert_catch_signals();
    evo_err e;
    if ((from_hf ? convert_from_hf(&o, &e) : convert_to_hf(&o, &e)) < 0) {
        if (convert_signal) { /* temporaries removed: now die of it, as expected of us */
            signal(convert_signal, SIG_DFL);
            raise(convert_signal);
        }
        evo_fatal("%s", e.msg);
    }
    return EVO_EXIT_OK;
}
