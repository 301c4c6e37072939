#include "formats/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "formats/batch_set.h"

typedef enum { T_U32, T_U64, T_I32, T_F64, T_BOOL, T_STR, T_PREC, T_FRACTION, T_MODE } field_type;

/* One key of the file: where it lives in evo_config and how it is read.
 * alias: an older InternEvo spelling, read but never printed. */
typedef struct {
    const char *section, *key;
    field_type type;
    size_t offset, size;
    int alias;
} field;

#define FIELD(sec, key, type, member, alias) {sec, key, type, offsetof(evo_config, member), sizeof(((evo_config *)0)->member), alias}
#define F(sec, key, type, member) FIELD(sec, key, type, member, 0)

static const field fields[] = {
    F("", "JOB_NAME", T_STR, job_name),
    F("data", "seq_len", T_U32, data.seq_len),
    F("data", "micro_bsz", T_U32, data.micro_bsz),
    F("data", "micro_num", T_U32, data.micro_num),
    F("data", "valid_micro_num", T_U32, data.valid_micro_num),
    F("data", "valid_every", T_U32, data.valid_every),
    F("data", "total_steps", T_U64, data.total_steps),
    F("data", "skip_batches", T_STR, data.skip_batches),
    F("data", "rampup_batch_size", T_STR, data.rampup_batch_size),
    F("data", "pack_sample_into_one", T_BOOL, data.pack_sample_into_one),
    F("data", "min_length", T_U32, data.min_length),
    F("data", "seed", T_U64, data.seed),
    F("data", "train_folder", T_STR, data.train_folder),
    F("data", "valid_folder", T_STR, data.valid_folder),
    F("model", "vocab_size", T_U32, model.vocab_size),
    F("model", "hidden_size", T_U32, model.hidden_size),
    F("model", "num_attention_heads", T_U32, model.num_attention_heads),
    F("model", "num_kv_attention_heads", T_U32, model.num_kv_attention_heads),
    F("model", "num_layers", T_U32, model.num_layers),
    F("model", "num_chunks", T_U32, model.num_chunks),
    F("model", "mlp_ratio", T_F64, model.mlp_ratio),
    F("model", "multiple_of", T_U32, model.multiple_of),
    F("model", "layer_norm_epsilon", T_F64, model.layer_norm_epsilon),
    F("model", "rope_base", T_F64, model.rope_base),
    F("model", "no_bias", T_BOOL, model.no_bias),
    F("model", "dtype", T_PREC, model.dtype),
    F("model", "checkpoint", T_FRACTION, model.checkpoint),
    F("model", "embed_init_std", T_F64, model.embed_init_std),
    F("model", "init_std", T_F64, model.init_std),
    F("adam", "lr", T_F64, adam.lr),
    F("adam", "adam_beta1", T_F64, adam.adam_beta1),
    F("adam", "adam_beta2", T_F64, adam.adam_beta2),
    F("adam", "adam_beta2_c", T_F64, adam.adam_beta2_c),
    F("adam", "adam_eps", T_F64, adam.adam_eps),
    F("adam", "weight_decay", T_F64, adam.weight_decay),
    F("lr_scheduler", "total_steps", T_U64, lr_scheduler.total_steps),
    F("lr_scheduler", "init_steps", T_U64, lr_scheduler.init_steps),
    F("lr_scheduler", "warmup_ratio", T_F64, lr_scheduler.warmup_ratio),
    F("lr_scheduler", "eta_min", T_F64, lr_scheduler.eta_min),
    F("beta2_scheduler", "init_beta2", T_F64, beta2_scheduler.init_beta2),
    F("beta2_scheduler", "c", T_F64, beta2_scheduler.c),
    F("grad_scaler", "fp16.initial_scale", T_F64, grad_scaler.initial_scale),
    F("grad_scaler", "fp16.min_scale", T_F64, grad_scaler.min_scale),
    F("grad_scaler", "fp16.growth_interval", T_U32, grad_scaler.growth_interval),
    F("grad_scaler", "growth_factor", T_F64, grad_scaler.growth_factor),
    F("grad_scaler", "backoff_factor", T_F64, grad_scaler.backoff_factor),
    F("grad_scaler", "max_scale", T_F64, grad_scaler.max_scale),
    F("grad_scaler", "hysteresis", T_U32, grad_scaler.hysteresis),
    F("hybrid_zero_optimizer", "clip_grad_norm", T_F64, hybrid_zero_optimizer.clip_grad_norm),
    F("hybrid_zero_optimizer", "max_skipped_in_row", T_U32, hybrid_zero_optimizer.max_skipped_in_row),
    F("hybrid_zero_optimizer", "overlap_sync_grad", T_BOOL, hybrid_zero_optimizer.overlap_sync_grad),
    F("hybrid_zero_optimizer", "overlap_sync_param", T_BOOL, hybrid_zero_optimizer.overlap_sync_param),
    F("hybrid_zero_optimizer", "reduce_bucket_size", T_U64, hybrid_zero_optimizer.reduce_bucket_size),
    F("loss", "label_smoothing", T_F64, loss.label_smoothing),
    F("ckpt", "enable_save_ckpt", T_BOOL, ckpt.enable_save_ckpt),
    F("ckpt", "save_ckpt_folder", T_STR, ckpt.save_ckpt_folder),
    F("ckpt", "checkpoint_every", T_U64, ckpt.checkpoint_every),
    F("ckpt", "keep_last", T_U32, ckpt.keep_last),
    F("ckpt", "auto_resume", T_BOOL, ckpt.auto_resume),
    F("ckpt", "load_ckpt_folder", T_STR, ckpt.load_ckpt_folder),
    F("ckpt", "load_model_only_folder", T_STR, ckpt.load_model_only_folder),
    F("ckpt", "load_optimizer", T_BOOL, ckpt.load_optimizer),
    F("ckpt", "stop_file_path", T_STR, ckpt.stop_file_path),
    F("ckpt", "limit_margin", T_F64, ckpt.limit_margin),
    F("parallel", "zero1.size", T_I32, parallel.zero1_size),
    FIELD("parallel", "zero1", T_I32, parallel.zero1_size, 1),
    F("parallel", "zero1.shard_grads", T_BOOL, parallel.zero1_shard_grads),
    F("parallel", "tensor.size", T_U32, parallel.tensor_size),
    FIELD("parallel", "tensor", T_U32, parallel.tensor_size, 1),
    F("parallel", "tensor.mode", T_MODE, parallel.tensor_mode),
    F("parallel", "pipeline.size", T_U32, parallel.pipeline_size),
    F("parallel", "pipeline.interleaved_overlap", T_BOOL, parallel.interleaved_overlap),
    F("parallel", "sequence_parallel", T_BOOL, parallel.sequence_parallel),
};
#define N_FIELDS (sizeof fields / sizeof *fields)

void evo_config_defaults(evo_config *c)
{
    *c = (evo_config){0};
    snprintf(c->job_name, sizeof c->job_name, "AnonymousJob");
    c->data.seq_len = 2048;
    c->data.micro_bsz = 1;
    c->data.micro_num = 1;
    c->data.total_steps = 50000;
    c->data.seed = 1024;
    c->model.vocab_size = 103168;
    c->model.hidden_size = 4096;
    c->model.num_attention_heads = 32;
    c->model.num_layers = 32;
    c->model.num_chunks = 1;
    c->model.mlp_ratio = 8.0 / 3.0;
    c->model.multiple_of = 256;
    c->model.layer_norm_epsilon = 1e-5;
    c->model.rope_base = 10000;
    c->model.dtype = EVO_DT_BF16;
    c->model.embed_init_std = 0.0052;
    c->model.init_std = 0.006;
    c->adam.lr = 1e-4;
    c->adam.adam_beta1 = 0.9;
    c->adam.adam_beta2 = 0.95;
    c->adam.adam_eps = 1e-8;
    c->adam.weight_decay = 0.01;
    c->lr_scheduler.warmup_ratio = 0.01;
    c->lr_scheduler.eta_min = 1e-5;
    c->beta2_scheduler.init_beta2 = -1; /* follows adam.adam_beta2 */
    c->beta2_scheduler.c = -1;          /* follows adam.adam_beta2_c */
    c->grad_scaler.initial_scale = 65536;
    c->grad_scaler.min_scale = 1;
    c->grad_scaler.growth_interval = 1000;
    c->grad_scaler.growth_factor = 2;
    c->grad_scaler.backoff_factor = 0.5;
    c->grad_scaler.max_scale = 16777216;
    c->grad_scaler.hysteresis = 2;
    c->hybrid_zero_optimizer.reduce_bucket_size = 512ull << 20;
    c->hybrid_zero_optimizer.max_skipped_in_row = 20;
    c->ckpt.enable_save_ckpt = 1;
    c->ckpt.auto_resume = 1;
    c->ckpt.load_optimizer = 1;
    c->ckpt.limit_margin = 120;
    c->parallel.zero1_size = -1;
    c->parallel.tensor_size = 1;
    c->parallel.pipeline_size = 1;
    c->parallel.interleaved_overlap = 1;
    snprintf(c->parallel.tensor_mode, sizeof c->parallel.tensor_mode, "mtp");
}

static const struct {
    const char *name;
    evo_precision p;
} precisions[] = {
    {"fp32", EVO_DT_F32},          {"float32", EVO_DT_F32},        {"torch.float32", EVO_DT_F32},
    {"tf32", EVO_DT_TF32},         {"torch.tf32", EVO_DT_TF32},    {"bf16", EVO_DT_BF16},
    {"bfloat16", EVO_DT_BF16},     {"torch.bfloat16", EVO_DT_BF16}, {"fp16", EVO_DT_F16},
    {"float16", EVO_DT_F16},       {"half", EVO_DT_F16},           {"torch.float16", EVO_DT_F16},
    {"torch.half", EVO_DT_F16},
};

const char *evo_precision_name(evo_precision p)
{
    static const char *const names[] = {"fp32", "tf32", "bf16", "fp16"};
    return names[p];
}

/* A number, or "a/b" and "a**b" (8/3, 2**16: how InternEvo configs write them). */
static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double a = strtod(s, &end);
    if (end == s || errno)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (!*end) {
        *out = a;
        return 0;
    }
    int power = end[0] == '*' && end[1] == '*';
    if (!power && *end != '/')
        return -1;
    const char *r = end + (power ? 2 : 1);
    double b = strtod(r, &end);
    if (end == r || *end)
        return -1;
    *out = power ? pow(a, b) : a / b;
    return isfinite(*out) ? 0 : -1;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "True", "1", "yes"}, *const no[] = {"false", "False", "0", "no"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, yes[i]))
            return *out = 1, 0;
        if (!strcmp(s, no[i]))
            return *out = 0, 0;
    }
    return -1;
}

/* Sets one field from its text; the message says what was expected. */
static int set_field(evo_config *c, const field *f, const char *value, evo_err *e)
{
    char *p = (char *)c + f->offset;
    double d;
    int b;
    switch (f->type) {
    case T_U32:
    case T_U64:
    case T_I32: {
        double lo = f->type == T_I32 ? -2147483648.0 : 0, hi = f->type == T_U32 ? 4294967295.0
                                                         : f->type == T_I32 ? 2147483647.0 : 1.8e19;
        if (parse_number(value, &d) < 0 || d != floor(d) || d < lo || d > hi)
            return evo_errf(e, "[%s] %s: '%s' is not a whole number in range", f->section, f->key, value);
        if (f->type == T_U32)
            *(uint32_t *)p = (uint32_t)d;
        else if (f->type == T_I32)
            *(int32_t *)p = (int32_t)d;
        else
            *(uint64_t *)p = (uint64_t)d;
        return 0;
    }
    case T_F64:
        if (parse_number(value, &d) < 0)
            return evo_errf(e, "[%s] %s: '%s' is not a number", f->section, f->key, value);
        *(double *)p = d;
        return 0;
    case T_BOOL:
        if (parse_bool(value, &b) < 0)
            return evo_errf(e, "[%s] %s: '%s' is not true or false", f->section, f->key, value);
        *(int *)p = b;
        return 0;
    case T_FRACTION: /* InternEvo's model.checkpoint: True, False or the share of layers */
        if (parse_bool(value, &b) == 0)
            d = b;
        else if (parse_number(value, &d) < 0 || d < 0 || d > 1)
            return evo_errf(e, "[%s] %s: '%s' is not true, false or a fraction from 0 to 1", f->section, f->key,
                            value);
        *(double *)p = d;
        return 0;
    case T_PREC:
        for (size_t i = 0; i < sizeof precisions / sizeof *precisions; i++)
            if (!strcmp(value, precisions[i].name)) {
                *(evo_precision *)p = precisions[i].p;
                return 0;
            }
        return evo_errf(e, "[%s] %s: '%s' is not a precision (fp32, tf32, bf16, fp16)", f->section, f->key, value);
    case T_MODE:
        if (strcmp(value, "mtp") && strcmp(value, "msp") && strcmp(value, "fsp") && strcmp(value, "isp"))
            return evo_errf(e, "[%s] %s: '%s' is not a tensor parallel mode (mtp, msp, fsp, isp)", f->section,
                            f->key, value);
        snprintf(p, f->size, "%s", value);
        return 0;
    case T_STR:
        /* InternEvo names local folders "local:/path"; evo has only those. */
        if (!strncmp(value, "local:", 6))
            value += 6;
        if (strlen(value) >= f->size)
            return evo_errf(e, "[%s] %s: value longer than %zu bytes", f->section, f->key, f->size - 1);
        snprintf(p, f->size, "%s", value);
        return 0;
    }
    return evo_errf(e, "internal error: field type");
}

static const field *find_field(const char *section, const char *key)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key))
            return &fields[i];
    return NULL;
}

static int unknown_key(const char *section, const char *key, evo_err *e)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!strcmp(fields[i].key, key))
            return evo_errf(e, "unknown key %s in [%s] (did you mean [%s] %s?)", key, section, fields[i].section, key);
    return evo_errf(e, "unknown key %s in [%s]", key, section);
}

/* Quotes around a value are optional ("bf16" or bf16). */
static const char *unquote(const char *v, char *buf, size_t cap)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0] && n - 2 < cap) {
        memcpy(buf, v + 1, n - 2);
        buf[n - 2] = '\0';
        return buf;
    }
    return v;
}

static int assign(evo_config *c, const char *section, const char *key, const char *value, evo_err *e)
{
    const field *f = find_field(section, key);
    if (!f)
        return unknown_key(section, key, e);
    char buf[4200];
    return set_field(c, f, unquote(value, buf, sizeof buf), e);
}

typedef struct {
    evo_config *c;
    evo_err err;
    int failed;
} load_ctx;

static int on_ini_line(void *user, const char *section, const char *key, const char *value)
{
    load_ctx *l = user;
    if (l->failed) /* keep the first error; inih reports its line */
        return 1;
    if (assign(l->c, section, key, value, &l->err) < 0) {
        l->failed = 1;
        return 0;
    }
    return 1;
}

int evo_config_load(evo_config *c, const char *path, evo_err *e)
{
    load_ctx l = {.c = c};
    int rc = ini_parse(path, on_ini_line, &l);
    if (rc == -1)
        return evo_errf(e, "%s: %s", path, strerror(errno ? errno : ENOENT));
    if (rc == -2)
        return evo_errf(e, "%s: out of memory", path);
    if (rc > 0)
        return l.failed ? evo_errf(e, "%s:%d: %s", path, rc, l.err.msg)
                        : evo_errf(e, "%s:%d: not a [section] or key = value line", path, rc);
    return 0;
}

int evo_config_set(evo_config *c, const char *assignment, evo_err *e)
{
    const char *eq = strchr(assignment, '='), *dot = strchr(assignment, '.');
    if (!eq || (dot && dot > eq))
        dot = NULL;
    if (!eq)
        return evo_errf(e, "--set %s: expected section.key=value", assignment);
    char section[64] = "", key[128];
    size_t klen = (size_t)(eq - (dot ? dot + 1 : assignment));
    if ((dot && (size_t)(dot - assignment) >= sizeof section) || klen >= sizeof key)
        return evo_errf(e, "--set %s: name too long", assignment);
    if (dot)
        snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(key, sizeof key, "%.*s", (int)klen, dot ? dot + 1 : assignment);
    if (assign(c, section, key, eq + 1, e) < 0)
        return evo_err_prefix(e, "--set %s", assignment);
    return 0;
}

#define REQUIRE(cond, ...)                                                                                             \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            return evo_errf(e, __VA_ARGS__);                                                                           \
    } while (0)

int evo_config_resolve(evo_config *c, evo_err *e)
{
    if (!c->model.num_kv_attention_heads)
        c->model.num_kv_attention_heads = c->model.num_attention_heads;
    if (!c->data.valid_micro_num)
        c->data.valid_micro_num = c->data.micro_num;
    if (!c->lr_scheduler.total_steps)
        c->lr_scheduler.total_steps = c->data.total_steps;
    if (c->beta2_scheduler.init_beta2 < 0)
        c->beta2_scheduler.init_beta2 = c->adam.adam_beta2;
    if (c->beta2_scheduler.c < 0)
        c->beta2_scheduler.c = c->adam.adam_beta2_c;
    if (c->model.dtype == EVO_DT_F32 || c->model.dtype == EVO_DT_TF32)
        c->grad_scaler.initial_scale = 1; /* InternEvo: no loss scaling in fp32 */
    REQUIRE(c->data.seq_len && c->data.micro_bsz && c->data.micro_num, "[data] seq_len, micro_bsz and micro_num must be at least 1");
    REQUIRE(c->ckpt.limit_margin >= 0, "[ckpt] limit_margin must be 0 (off) or a number of seconds");
    REQUIRE((uint64_t)c->data.seq_len * c->data.micro_bsz <= (1u << 30), "[data] seq_len x micro_bsz is absurdly long");
    REQUIRE(c->model.vocab_size && c->model.hidden_size && c->model.num_layers && c->model.num_attention_heads,
            "[model] vocab_size, hidden_size, num_layers and num_attention_heads must be at least 1");
    REQUIRE(c->model.hidden_size % c->model.num_attention_heads == 0, "[model] hidden_size %u is not a multiple of num_attention_heads %u",
            c->model.hidden_size, c->model.num_attention_heads);
    REQUIRE((c->model.hidden_size / c->model.num_attention_heads) % 2 == 0, "[model] the head size must be even (rotary embedding)");
    REQUIRE(c->model.num_kv_attention_heads && c->model.num_attention_heads % c->model.num_kv_attention_heads == 0,
            "[model] num_attention_heads %u is not a multiple of num_kv_attention_heads %u", c->model.num_attention_heads,
            c->model.num_kv_attention_heads);
    REQUIRE(c->model.mlp_ratio > 0 && c->model.multiple_of >= 1, "[model] mlp_ratio must be positive and multiple_of at least 1");
    REQUIRE(c->model.num_chunks >= 1 && c->model.num_chunks <= EVO_MAX_CHUNKS &&
                c->model.num_layers % c->model.num_chunks == 0,
            "[model] num_chunks must be 1 to %d and divide num_layers (each chunk the same number of layers)",
            (int)EVO_MAX_CHUNKS);
    REQUIRE(c->model.layer_norm_epsilon > 0 && c->model.rope_base > 1, "[model] layer_norm_epsilon must be positive and rope_base above 1");
    REQUIRE(c->adam.lr >= 0 && c->adam.adam_eps > 0 && c->adam.weight_decay >= 0, "[adam] lr, adam_eps and weight_decay out of range");
    REQUIRE(c->adam.adam_beta1 >= 0 && c->adam.adam_beta1 < 1 && c->adam.adam_beta2 >= 0 && c->adam.adam_beta2 < 1,
            "[adam] betas must lie in [0, 1)");
    REQUIRE(c->lr_scheduler.warmup_ratio >= 0 && c->lr_scheduler.warmup_ratio <= 1, "[lr_scheduler] warmup_ratio must lie in [0, 1]");
    REQUIRE(c->loss.label_smoothing >= 0 && c->loss.label_smoothing < 1, "[loss] label_smoothing must lie in [0, 1)");
    REQUIRE(c->grad_scaler.growth_factor > 1 && c->grad_scaler.backoff_factor > 0 && c->grad_scaler.backoff_factor < 1,
            "[grad_scaler] growth_factor must exceed 1 and backoff_factor lie in (0, 1)");
    REQUIRE(c->grad_scaler.min_scale > 0 && c->grad_scaler.min_scale <= c->grad_scaler.max_scale,
            "[grad_scaler] need 0 < fp16.min_scale <= max_scale");
    REQUIRE(c->parallel.tensor_size >= 1 && c->parallel.pipeline_size >= 1, "[parallel] sizes must be at least 1");
    evo_batch_set skip;
    evo_rampup rampup;
    if (evo_batch_set_parse(&skip, c->data.skip_batches, e) < 0)
        return evo_err_prefix(e, "[data] skip_batches");
    evo_batch_set_free(&skip);
    if (evo_rampup_parse(&rampup, c->data.rampup_batch_size, c->data.micro_num, e) < 0)
        return evo_err_prefix(e, "[data]");
    return 0;
}

/* A value as the INI file writes it (the longest, a path, fits in 4096). */
static void format_value(const field *f, const evo_config *c, char *buf, size_t n)
{
    const char *p = (const char *)c + f->offset;
    switch (f->type) {
    case T_U32: snprintf(buf, n, "%u", *(const uint32_t *)p); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_I32: snprintf(buf, n, "%d", *(const int32_t *)p); break;
    case T_F64:
    case T_FRACTION: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)p ? "true" : "false"); break;
    case T_PREC: snprintf(buf, n, "%s", evo_precision_name(*(const evo_precision *)p)); break;
    case T_STR:
    case T_MODE: snprintf(buf, n, "%s", p); break;
    }
}

void evo_config_print(const evo_config *c, FILE *out)
{
    const char *section = NULL;
    char value[4096];
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field *f = &fields[i];
        if (f->alias)
            continue;
        if (!section || strcmp(section, f->section)) {
            if (section)
                fputc('\n', out);
            section = f->section;
            if (*section)
                fprintf(out, "[%s]\n", section);
        }
        format_value(f, c, value, sizeof value);
        fprintf(out, "%s = %s\n", f->key, value);
    }
}

size_t evo_config_pairs(const evo_config *c, evo_config_pair **pairs)
{
    char value[4096];
    size_t n = 0;
    *pairs = evo_calloc(N_FIELDS, sizeof **pairs);
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field *f = &fields[i];
        if (f->alias)
            continue;
        size_t klen = strlen(f->section) + strlen(f->key) + 2;
        char *key = evo_malloc(klen);
        snprintf(key, klen, "%s%s%s", f->section, *f->section ? "." : "", f->key);
        format_value(f, c, value, sizeof value);
        (*pairs)[n++] = (evo_config_pair){key, evo_strdup(value)};
    }
    return n;
}

void evo_config_pairs_free(evo_config_pair *pairs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(pairs);
}
