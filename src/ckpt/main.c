/* evo-ckpt - inspect, verify, compare, reshard and move evo checkpoints
 * (evo-ckpt(1), evo-ckpt(5)). git-style: evo-ckpt COMMAND [OPTION]... ARG... */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/version.h"
#include "evockpt.h"

static void usage(void)
{
    printf("Usage: evo-ckpt COMMAND [OPTION]... ARG...\n"
           "Inspect, verify, compare, reshard and move evo checkpoints (evo-ckpt(5)).\n"
           "CKPT is a checkpoint directory (FOLDER/STEP); DIR a save folder holding them.\n"
           "See evo-ckpt(1).\n"
           "\n"
           "Commands:\n"
           "  ls DIR                    the checkpoints of a save folder: step, tokens, loss, size, status\n"
           "  info CKPT [--json]        config, parallel layout, tensors, data position, optimizer state\n"
           "  verify CKPT               every checksum and structural invariant; exit 1 on any problem\n"
           "  diff A B                  config differences and per-tensor max abs / max rel differences\n"
           "                            (exit 1 when they differ)\n"
           "  cat CKPT TENSOR [--npy]   one tensor, merged across shards: raw little-endian values of\n"
           "                            its stored dtype, or a .npy file of fp32 (TENSOR may be\n"
           "                            adam.m.NAME or adam.v.NAME)\n"
           "  reshard CKPT [--tp N] [--pp N] [--zero N] -o OUT\n"
           "                            the same checkpoint in another parallel layout (sizes not\n"
           "                            given stay as they are)\n"
           "  pack CKPT -o FILE         one .tar.zst archive of the checkpoint (- for stdout)\n"
           "  unpack FILE -o CKPT       the checkpoint from an archive (- for stdin), checksums verified\n"
           "  prune DIR --keep N        remove the complete checkpoints of DIR but the newest N\n"
           "  average CKPT... -o OUT    the uniform average of the weights: a model-only checkpoint\n"
           "\n"
           "An output checkpoint directory is named by its step (e.g. -o out/20) and must not exist.\n"
           "\n"
           "Options:\n"
           "  -o, --output PATH   where the result goes (cat: default -, stdout)\n"
           "      --json          info: as JSON\n"
           "      --npy           cat: a .npy v1.0 file of fp32 values\n"
           "      --tp N, --pp N, --zero N   reshard: tensor, pipeline and ZeRO sizes\n"
           "      --keep N        prune: how many checkpoints to keep (at least 1)\n"
           "  -q, --quiet         no messages on stderr but errors\n"
           "  -h, --help          this help\n"
           "  -V, --version       version\n");
}

enum { OPT_JSON = 256, OPT_NPY, OPT_TP, OPT_PP, OPT_ZERO, OPT_KEEP };
/* The options a command takes, as bits. */
#define O_OUT (1u << 0)
#define O_JSON (1u << 1)
#define O_NPY (1u << 2)
#define O_LAYOUT (1u << 3)
#define O_KEEP (1u << 4)

static const struct command {
    const char *name, *operands;
    int (*run)(const ckpt_opts *o, char **args, int n);
    int min_args, max_args;
    unsigned options, required;
} commands[] = {
    {"ls", "DIR", cmd_ls, 1, 1, 0, 0},
    {"info", "CKPT", cmd_info, 1, 1, O_JSON, 0},
    {"verify", "CKPT", cmd_verify, 1, 1, 0, 0},
    {"diff", "A B", cmd_diff, 2, 2, 0, 0},
    {"cat", "CKPT TENSOR", cmd_cat, 2, 2, O_OUT | O_NPY, 0},
    {"reshard", "CKPT", cmd_reshard, 1, 1, O_OUT | O_LAYOUT, O_OUT},
    {"pack", "CKPT", cmd_pack, 1, 1, O_OUT, O_OUT},
    {"unpack", "FILE", cmd_unpack, 1, 1, O_OUT, O_OUT},
    {"prune", "DIR", cmd_prune, 1, 1, O_KEEP, O_KEEP},
    {"average", "CKPT...", cmd_average, 1, INT_MAX, O_OUT, O_OUT},
};

static const char *option_name(unsigned bit)
{
    switch (bit) {
    case O_OUT: return "-o";
    case O_JSON: return "--json";
    case O_NPY: return "--npy";
    case O_LAYOUT: return "--tp, --pp and --zero";
    default: return "--keep";
    }
}

int main(int argc, char **argv)
{
    evo_set_progname("evo-ckpt");
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"json", no_argument, NULL, OPT_JSON},
        {"npy", no_argument, NULL, OPT_NPY},      {"tp", required_argument, NULL, OPT_TP},
        {"pp", required_argument, NULL, OPT_PP},  {"zero", required_argument, NULL, OPT_ZERO},
        {"keep", required_argument, NULL, OPT_KEEP}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    ckpt_opts o = {0};
    unsigned given = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; given |= O_OUT; break;
        case OPT_JSON: o.json = 1; given |= O_JSON; break;
        case OPT_NPY: o.npy = 1; given |= O_NPY; break;
        /* 65535: the ranks a shard's file name may carry (evo-ckpt(5)) */
        case OPT_TP: o.layout.tp = (uint32_t)evo_usage_number(optarg, "--tp", 1, 65536); given |= O_LAYOUT; break;
        case OPT_PP: o.layout.pp = (uint32_t)evo_usage_number(optarg, "--pp", 1, 65536); given |= O_LAYOUT; break;
        case OPT_ZERO: o.layout.zero = (uint32_t)evo_usage_number(optarg, "--zero", 1, 65536); given |= O_LAYOUT; break;
        case OPT_KEEP: o.keep = (uint32_t)evo_usage_number(optarg, "--keep", 1, UINT32_MAX); given |= O_KEEP; break;
        case 'q': evo_quiet = 1; break;
        case 'h': usage(); return EVO_EXIT_OK;
        case 'V': printf("evo-ckpt (evo) %s\n", EVO_VERSION); return EVO_EXIT_OK;
        default: evo_usage_error("bad option");
        }
    }
    if (optind >= argc)
        evo_usage_error("no command given");
    const char *name = argv[optind];
    char **args = argv + optind + 1;
    int n = argc - optind - 1;
    for (size_t k = 0; k < sizeof commands / sizeof *commands; k++) {
        const struct command *cmd = &commands[k];
        if (strcmp(name, cmd->name))
            continue;
        for (unsigned bit = 1; bit <= O_KEEP; bit <<= 1) {
            if ((given & bit) && !(cmd->options & bit))
                evo_usage_error("%s: %s does not apply", name, option_name(bit));
            if ((cmd->required & bit) && !(given & bit))
                evo_usage_error("%s needs %s", name, option_name(bit));
        }
        if (n < cmd->min_args || n > cmd->max_args)
            evo_usage_error("%s takes %s", name, cmd->operands);
        evo_out_cleanup_on_signals();
        return cmd->run(&o, args, n);
    }
    evo_usage_error("'%s' is not an evo-ckpt command", name);
}
