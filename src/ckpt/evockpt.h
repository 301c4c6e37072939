/* evockpt.h - evo-ckpt's subcommands (evo-ckpt(1)); the checkpoint work
 * itself is the library's (ckpt.h, ckpt_layout.h). */
#ifndef EVO_EVOCKPT_H
#define EVO_EVOCKPT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/ckpt_layout.h"

typedef struct {
    const char *output;     /* -o */
    int json, npy;          /* info --json, cat --npy */
    evo_ckpt_layout layout; /* reshard: 0 keeps the checkpoint's */
    uint32_t keep;          /* prune --keep */
} ckpt_opts;

/* Each runs one subcommand on its operands and returns the exit status;
 * failures end the program through evo_fatal. */
int cmd_ls(const ckpt_opts *o, char **args, int n);
int cmd_prune(const ckpt_opts *o, char **args, int n);
int cmd_info(const ckpt_opts *o, char **args, int n);
int cmd_verify(const ckpt_opts *o, char **args, int n);
int cmd_cat(const ckpt_opts *o, char **args, int n);
int cmd_diff(const ckpt_opts *o, char **args, int n);
int cmd_average(const ckpt_opts *o, char **args, int n);
int cmd_reshard(const ckpt_opts *o, char **args, int n);
int cmd_pack(const ckpt_opts *o, char **args, int n);
int cmd_unpack(const ckpt_opts *o, char **args, int n);

/* Opens a checkpoint or ends the program with the library's message. */
void open_or_die(evo_ckpt_shards *s, const char *dir, unsigned flags);

/* "6.85 MB": bytes in decimal units, as the other tools print sizes. */
void format_size(char *buf, size_t n, uint64_t bytes);
/* The step an output checkpoint directory's name gives; a usage error if
 * it gives none, a failure if it exists. */
uint64_t output_step(const char *dir);
/* Refuses to write binary data to a terminal. */
void refuse_terminal(const char *output, const char *what);

#endif
