/* The JSON side of a HuggingFace model directory: config.json (both ways),
 * tokenizer_config.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "convert.h"

json_t *hf_config_json(const evo_model *m, evo_dtype dt, int32_t bos, int32_t eos, uint32_t max_pos)
{
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(j, "model_type", json_string("llama"));
    json_object_set_new(j, "vocab_size", json_integer(m->vocab));
    json_object_set_new(j, "hidden_size", json_integer(m->dim));
    json_object_set_new(j, "intermediate_size", json_integer(m->ffn));
    json_object_set_new(j, "num_hidden_layers", json_integer(m->layers));
    json_object_set_new(j, "num_attention_heads", json_integer(m->heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(m->kv_heads));
    json_object_set_new(j, "head_dim", json_integer(m->head_dim));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "max_position_embeddings", json_integer(max_pos));
    json_object_set_new(j, "rms_norm_eps", json_real(m->eps));
    json_object_set_new(j, "rope_theta", json_real(m->rope_base));
    json_object_set_new(j, "rope_scaling", json_null());
    /* HF's attention_bias puts a bias on q, k, v and o alike: InternLM v1's four. */
    json_object_set_new(j, "attention_bias", json_boolean(m->bias));
    json_object_set_new(j, "mlp_bias", json_false());
    json_object_set_new(j, "tie_word_embeddings", json_false());
    json_object_set_new(j, "torch_dtype", json_string(hf_torch_dtype(dt)));
    json_object_set_new(j, "bos_token_id", bos >= 0 ? json_integer(bos) : json_null());
    json_object_set_new(j, "eos_token_id", eos >= 0 ? json_integer(eos) : json_null());
    return j;
}

/* The fewest significant digits (at least %g's 6, so 10000 stays 10000.0
 * rather than 1e4) in which every real of the object reads back exactly. */
static int real_precision(json_t *j)
{
    int p = 6;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (!json_is_real(v))
            continue;
        char s[40];
        for (; p < 17; p++) {
            snprintf(s, sizeof s, "%.*g", p, json_real_value(v));
            if (strtod(s, NULL) == json_real_value(v))
                break;
        }
    }
    return p;
}

int hf_write_json(const outdir *d, const char *name, json_t *j, evo_err *e)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(real_precision(j)));
    size_t n = strlen(text);
    text = evo_realloc(text, n + 2);
    text[n] = '\n';
    int rc = outdir_write(d, name, text, n + 1, e);
    free(text);
    return rc;
}

/* The text of a special token: HF's config files name them by text. The
 * usual spellings are tried; NULL if the id is none of them. */
static const char *special_text(const evo_tokenizer *t, int32_t id)
{
    static const char *const known[] = {"<s>",           "</s>",          "<unk>",      "<|begin_of_text|>",
                                        "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"};
    for (size_t i = 0; id >= 0 && i < sizeof known / sizeof *known; i++)
        if (evo_tokenizer_piece_id(t, known[i], strlen(known[i])) == id)
            return known[i];
    return NULL;
}

int hf_write_tokenizer(const outdir *d, const char *path, const evo_tokenizer *t, uint32_t max_pos, evo_err *e)
{
    int spm = !strncmp(evo_tokenizer_kind(t), "sentencepiece", 13);
    evo_buf bytes = {0};
    if (evo_read_file(path, &bytes, e) < 0)
        return -1;
    int rc = outdir_write(d, spm ? "tokenizer.model" : "tokenizer.json", bytes.data, bytes.len, e);
    evo_buf_free(&bytes);
    if (rc < 0)
        return -1;
    json_t *j = json_object();
    /* LlamaTokenizer reads the SentencePiece model as sentencepiece does
     * (legacy mode, what evo-tokenize reproduces) and adds BOS, not EOS;
     * a tokenizer.json carries its own rules. */
    json_object_set_new(j, "tokenizer_class", json_string(spm ? "LlamaTokenizer" : "PreTrainedTokenizerFast"));
    const char *bos = special_text(t, evo_tokenizer_bos(t)), *eos = special_text(t, evo_tokenizer_eos(t));
    if (bos)
        json_object_set_new(j, "bos_token", json_string(bos));
    if (eos)
        json_object_set_new(j, "eos_token", json_string(eos));
    if (spm) {
        if (evo_tokenizer_piece_id(t, "<unk>", 5) >= 0)
            json_object_set_new(j, "unk_token", json_string("<unk>"));
        json_object_set_new(j, "add_bos_token", json_true());
        json_object_set_new(j, "add_eos_token", json_false());
        json_object_set_new(j, "legacy", json_true());
    }
    json_object_set_new(j, "model_max_length", json_integer(max_pos));
    json_object_set_new(j, "clean_up_tokenization_spaces", json_false());
    rc = hf_write_json(d, "tokenizer_config.json", j, e);
    json_decref(j);
    return rc;
}

/* --- config.json of a model to import ----------------------------------------- */

/* j[key], NULL when absent or null (Transformers' None: the default). */
static json_t *get(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_null(v) ? NULL : v;
}

/* j[key] as a count in [1, 2^32), or def when absent (0: required). */
static int get_u32(json_t *j, const char *key, uint32_t def, uint32_t *out, const char *path, evo_err *e)
{
    json_t *v = get(j, key);
    if (!v && def) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
        return evo_errf(e, "%s: \"%s\" %s", path, key, v ? "is not a count" : "is missing");
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int get_real(json_t *j, const char *key, double def, double *out, const char *path, evo_err *e)
{
    json_t *v = get(j, key);
    if (v && !json_is_number(v))
        return evo_errf(e, "%s: \"%s\" is not a number", path, key);
    *out = v ? json_number_value(v) : def;
    return 0;
}

static int get_bool(json_t *j, const char *key, int *out, const char *path, evo_err *e)
{
    json_t *v = get(j, key);
    if (v && !json_is_boolean(v))
        return evo_errf(e, "%s: \"%s\" is not true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

static int is_llama(json_t *j)
{
    json_t *archs = json_object_get(j, "architectures"), *v;
    size_t i;
    if (!archs)
        return json_is_string(json_object_get(j, "model_type")) &&
               !strcmp(json_string_value(json_object_get(j, "model_type")), "llama");
    json_array_foreach(archs, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), "LlamaForCausalLM"))
            return 1;
    }
    return 0;
}

/* What evo's model cannot be: a config.json that asks for it is refused. */
static int check_unsupported(json_t *j, const char *path, evo_err *e)
{
    json_t *act = json_object_get(j, "hidden_act"), *scaling = json_object_get(j, "rope_scaling");
    int mlp_bias = 0;
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        return evo_errf(e, "%s: hidden_act is not \"silu\" (evo's MLP is SwiGLU)", path);
    if (scaling && !json_is_null(scaling))
        return evo_errf(e, "%s: rope_scaling is not supported (evo's RoPE is unscaled)", path);
    if (get_bool(j, "mlp_bias", &mlp_bias, path, e) < 0)
        return -1;
    if (mlp_bias)
        return evo_errf(e, "%s: mlp_bias is not supported (evo's MLP has no biases)", path);
    return 0;
}

/* InternEvo's sizing when it gives ffn (dim x 8/3 rounded up to 256, the
 * default), else multiple_of 1 and the smallest mlp_ratio whose
 * int(dim x mlp_ratio) is ffn. */
static void set_ffn(evo_config *c, uint32_t ffn)
{
    uint32_t dim = c->model.hidden_size;
    if (evo_model_ffn_size(dim, c->model.mlp_ratio, c->model.multiple_of) == ffn)
        return;
    double r = (double)ffn / dim;
    while ((uint64_t)((double)dim * r) < ffn)
        r = nextafter(r, INFINITY);
    c->model.mlp_ratio = r;
    c->model.multiple_of = 1;
}

int hf_read_config(const char *dir, evo_config *c, int *tied, evo_err *e)
{
    char *path = evo_path_join(dir, "config.json");
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!j) {
        evo_errf(e, "%s:%d: %s", path, je.line, je.text);
        goto out;
    }
    if (!json_is_object(j)) {
        evo_errf(e, "%s: not a JSON object", path);
        goto out;
    }
    if (!is_llama(j)) {
        json_t *arch = json_array_get(json_object_get(j, "architectures"), 0);
        evo_errf(e, "%s: architecture %s is not supported (LlamaForCausalLM only: LLaMA-2/3, InternLM v1 in the "
                    "LLaMA layout)",
                 path, json_is_string(arch) ? json_string_value(arch) : "(none named)");
        goto out;
    }
    uint32_t ffn, head_dim, max_pos;
    int bias = 0;
    json_t *dt = get(j, "torch_dtype");
    const char *dtype = dt && !json_is_string(dt) ? "(not a string)" : json_string_value(dt);
    /* Absent keys take LlamaConfig's defaults. */
    if (check_unsupported(j, path, e) < 0 || get_u32(j, "vocab_size", 0, &c->model.vocab_size, path, e) < 0 ||
        get_u32(j, "hidden_size", 0, &c->model.hidden_size, path, e) < 0 ||
        get_u32(j, "intermediate_size", 0, &ffn, path, e) < 0 ||
        get_u32(j, "num_hidden_layers", 0, &c->model.num_layers, path, e) < 0 ||
        get_u32(j, "num_attention_heads", 0, &c->model.num_attention_heads, path, e) < 0 ||
        get_u32(j, "num_key_value_heads", c->model.num_attention_heads, &c->model.num_kv_attention_heads, path,
                e) < 0 ||
        get_u32(j, "head_dim", c->model.hidden_size / c->model.num_attention_heads, &head_dim, path, e) < 0 ||
        get_u32(j, "max_position_embeddings", 2048, &max_pos, path, e) < 0 ||
        get_real(j, "rms_norm_eps", 1e-6, &c->model.layer_norm_epsilon, path, e) < 0 ||
        get_real(j, "rope_theta", 10000, &c->model.rope_base, path, e) < 0 ||
        get_bool(j, "attention_bias", &bias, path, e) < 0 || get_bool(j, "tie_word_embeddings", tied, path, e) < 0)
        goto out;
    if ((uint64_t)head_dim * c->model.num_attention_heads != c->model.hidden_size) {
        evo_errf(e, "%s: head_dim %u x %u heads is not hidden_size %u (evo's heads split the hidden size)", path,
                 head_dim, c->model.num_attention_heads, c->model.hidden_size);
        goto out;
    }
    c->model.no_bias = !bias;
    c->data.seq_len = max_pos;
    if (dtype && strcmp(dtype, "float32") && strcmp(dtype, "float16") && strcmp(dtype, "bfloat16")) {
        evo_errf(e, "%s: torch_dtype \"%s\": want float32, float16 or bfloat16", path, dtype);
        goto out;
    }
    if (dtype)
        c->model.dtype = !strcmp(dtype, "float32") ? EVO_DT_F32 : !strcmp(dtype, "float16") ? EVO_DT_F16 : EVO_DT_BF16;
    set_ffn(c, ffn);
    rc = 0;
out:
    json_decref(j);
    free(path);
    return rc;
}
