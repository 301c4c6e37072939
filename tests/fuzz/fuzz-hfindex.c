/* fuzz-hfindex - evo-convert2hf --from-hf's weight map
 * (model.safetensors.index.json, src/convert/hf_source.c) beside one real
 * shard, model-00001-of-00001.safetensors: the shards it names opened,
 * then every tensor it maps looked up. */
#include "../../src/convert/convert.h"
#include "fuzz.h"

static char shard[192];

static void remove_shard(void) { unlink(shard); }

/* Two F32 tensors: model.norm.weight [2] and lm_head.weight [2, 2]. */
static void write_shard(void)
{
    static const char header[] = "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                 "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}";
    size_t hn = sizeof header - 1, padded = (hn + 7) / 8 * 8;
    uint8_t buf[512] = {0};
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(padded >> (8 * i));
    memcpy(buf + 8, header, hn);
    memset(buf + 8 + hn, ' ', padded - hn);
    snprintf(shard, sizeof shard, "%s/model-00001-of-00001.safetensors", fuzz_dir);
    FILE *f = fopen(shard, "wb");
    if (!f || fwrite(buf, 1, 8 + padded + 24, f) != 8 + padded + 24 || fclose(f) != 0)
        abort();
    atexit(remove_shard); /* before fuzz.h's cleanup, which removes the folder */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    fuzz_file(data, size, "model.safetensors.index.json");
    if (!*shard)
        write_shard();
    hf_source s;
    evo_err e;
    if (hf_source_open(&s, fuzz_dir, &e) == 0) {
        const char *name;
        json_t *v;
        json_object_foreach(s.weight_map, name, v)
        {
            const evo_st_file *file;
            const evo_st_tensor *t = hf_source_lookup(&s, name, &file, &e);
            if (t)
                (void)evo_st_data(file, t);
        }
    }
    hf_source_close(&s);
    return 0;
}
