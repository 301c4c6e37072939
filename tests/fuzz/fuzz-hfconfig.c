/* fuzz-hfconfig - evo-convert2hf --from-hf's reading of a HuggingFace
 * config.json (src/convert/hf_json.c): the model's shape into evo's
 * config, then resolved as a run would (the checks before any tensor is
 * looked for), printed back. */
#include "../../src/convert/convert.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_config c;
    evo_err e;
    int tied = 0;
    evo_config_defaults(&c);
    fuzz_file(data, size, "config.json");
    if (hf_read_config(fuzz_dir, &c, &tied, &e) == 0 && evo_config_resolve(&c, &e) == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            evo_config_print(&c, null);
            fclose(null);
        }
    }
    return 0;
}
