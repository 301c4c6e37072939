/* evo-train - packed rows to checkpoints. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/version.h"
#include "compute/backend.h"
#include "formats/config.h"
#include "train.h"

static void usage(void)
{
    printf("Usage: evo-train [OPTION]... CONFIG\n"
           "Train an InternLM/LLaMA-family model on evo-pack(5) rows as CONFIG says (an INI file\n"
           "with InternEvo's sections and keys; scripts/internevo-config converts an InternEvo\n"
           "Python config). See evo-train(1).\n"
           "\n"
           "      --set SEC.KEY=VALUE  override one key (repeatable), e.g. --set adam.lr=3e-4\n"
           "      --dry-run         print the resolved config, parameter count, FLOPs per token\n"
           "                        and memory per rank, then exit\n"
           "      --world N         ranks to assume for --dry-run (default: the smallest layout\n"
           "                        the [parallel] section allows)\n"
           "      --memory GIB      with --dry-run: exit 1 when a rank needs more than GIB (a GPU's)\n"
           "      --metrics FILE    append one JSON line per step to FILE ('-': stdout; default:\n"
           "                        SAVE_CKPT_FOLDER/metrics.jsonl when checkpoints are saved)\n"
           "      --peak-tflops X   the hardware's peak, to report MFU (default: no MFU)\n"
           "      --backend B       cpu, cuda (one GPU per rank, by PMIx local rank) or auto\n"
           "                        (default: cuda where this build has it and a GPU is visible);\n"
           "                        guarded: the CPU's, its memory out of the host's reach (tests)\n"
           "                        emulated: the CPU's ops with activations and the working\n"
           "                        weights stored in model.dtype (bf16/fp16 mixed precision)\n"
           "      --comm C          on many ranks: nccl (GPU ranks), mpi (Open MPI; GPU memory\n"
           "                        staged through the host) or auto (default: nccl where the\n"
           "                        backend is cuda and libnccl.so.2 loads, else mpi)\n"
           "      --inject-nan BATCHES  poison the gradients of these batches (\"3,7-9\"), to try\n"
           "                        the inf/NaN handling and a job script's reaction to it\n"
           "      --profile         time every backend op (each waited for: the run is slower) and\n"
           "                        print the table at the end, per rank\n"
           "      --comm-timeout S  on many ranks: end the job when a collective has waited S\n"
           "                        seconds for a rank that died or hangs (default 600)\n"
           "  -q, --quiet           less on stderr\n"
           "  -h, --help            this help\n"
           "  -V, --version         version\n"
           "\n"
           "SIGUSR1 or SIGTERM: save a checkpoint at the next step boundary and exit 75 (for\n"
           "requeueing). Run again with the same config to resume from the newest checkpoint.\n");
}

enum { OPT_SET = 256, OPT_DRY_RUN, OPT_WORLD, OPT_MEMORY, OPT_METRICS, OPT_PEAK, OPT_INJECT_NAN, OPT_COMM_TIMEOUT, OPT_BACKEND,
       OPT_COMM, OPT_PROFILE };

/* arg as a number above 0, or a usage error naming the option. */
static double positive(const char *arg, const char *option)
{
    char *end;
    double x = strtod(arg, &end);
    if (*end || !(x > 0))
        evo_usage_error("%s wants a positive number, not '%s'", option, arg);
    return x;
}

/* The index of arg in names (NULL-terminated), or a usage error. */
static int choice(const char *arg, const char *option, const char *const *names, const char *wanted)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(arg, names[i]) == 0)
            return i;
    evo_usage_error("%s wants %s, not '%s'", option, wanted, arg);
    return -1;
}

int main(int argc, char **argv)
{
    evo_set_progname("evo-train");
    static const struct option longopts[] = {
        {"set", required_argument, NULL, OPT_SET},    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"world", required_argument, NULL, OPT_WORLD}, {"memory", required_argument, NULL, OPT_MEMORY},
        {"quiet", no_argument, NULL, 'q'},
        {"metrics", required_argument, NULL, OPT_METRICS}, {"peak-tflops", required_argument, NULL, OPT_PEAK},
        {"inject-nan", required_argument, NULL, OPT_INJECT_NAN},
        {"comm-timeout", required_argument, NULL, OPT_COMM_TIMEOUT},
        {"backend", required_argument, NULL, OPT_BACKEND}, {"comm", required_argument, NULL, OPT_COMM},
        {"profile", no_argument, NULL, OPT_PROFILE},
        {"help", no_argument, NULL, 'h'},             {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int dry_run = 0, c, n_sets = 0;
    train_options opt = {.comm_timeout = 600, .backend = TRAIN_BACKEND_AUTO};
    long world = 0;
    double memory_gib = 0;
    char **sets = evo_calloc((size_t)argc, sizeof *sets);
    while ((c = getopt_long(argc, argv, "qhV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SET: sets[n_sets++] = optarg; break;
        case OPT_DRY_RUN: dry_run = 1; break;
        case OPT_WORLD: {
            char *end;
            errno = 0;
            world = strtol(optarg, &end, 10);
            if (*end || errno || world < 1 || world > 1 << 20)
                evo_usage_error("--world wants a rank count from 1 to 1048576, not '%s'", optarg);
            break;
        }
        case OPT_MEMORY: memory_gib = positive(optarg, "--memory"); break;
        case OPT_METRICS: opt.metrics_path = optarg; break;
        case OPT_PEAK: opt.peak_tflops = positive(optarg, "--peak-tflops"); break;
        case OPT_INJECT_NAN: opt.inject_nan = optarg; break;
        case OPT_COMM_TIMEOUT:
            opt.comm_timeout = (double)evo_usage_number(optarg, "--comm-timeout", 1, 1000000);
            break;
        case OPT_BACKEND: {
            static const char *const names[] = {"auto", "cpu", "cuda", "guarded", "emulated", NULL}; /* train_backend's order */
            opt.backend = (train_backend)choice(optarg, "--backend", names, "cpu, cuda, auto, guarded or emulated");
            break;
        }
        case OPT_COMM: {
            static const char *const names[] = {"auto", "mpi", "nccl", NULL}; /* train_comm's order */
            opt.comm = (train_comm)choice(optarg, "--comm", names, "nccl, mpi or auto");
            break;
        }
        case OPT_PROFILE: opt.profile = 1; break;
        case 'q': evo_quiet = 1; break;
        case 'h':
            usage();
            free(sets);
            return EVO_EXIT_OK;
        case 'V':
            printf("evo-train (evo) %s, backends: cpu%s; comms: mpi%s\n", EVO_VERSION,
                   evo_cuda_built == EVO_CUDA_EMULATED ? ", cuda (on the CPU emulator)"
                   : evo_cuda_built                    ? ", cuda"
                                                       : "",
                   evo_cuda_built ? ", nccl" : "");
            free(sets);
            return EVO_EXIT_OK;
        default: evo_usage_error("bad option");
        }
    }
    if (argc - optind != 1)
        evo_usage_error("one CONFIG file expected");
    if (memory_gib > 0 && !dry_run)
        evo_usage_error("--memory goes with --dry-run");
    evo_config cfg;
    evo_err e;
    evo_config_defaults(&cfg);
    if (evo_config_load(&cfg, argv[optind], &e) < 0)
        evo_fatal("%s", e.msg);
    for (int i = 0; i < n_sets; i++)
        if (evo_config_set(&cfg, sets[i], &e) < 0)
            evo_usage_error("%s", e.msg);
    free(sets);
    if (evo_config_resolve(&cfg, &e) < 0)
        evo_fatal("%s: %s", argv[optind], e.msg);
    if (dry_run)
        return train_dry_run(&cfg, (uint32_t)world, memory_gib);
    opt.config_path = argv[optind];
    return train_run_main(&cfg, &opt);
}
