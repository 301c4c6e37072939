/* fuzz-config - evo-train's INI configuration: load over the defaults,
 * resolve (the checks a run makes before it starts), print it back. */
#include "formats/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_config c;
    evo_err e;
    evo_config_defaults(&c);
    if (evo_config_load(&c, fuzz_file(data, size, "config.ini"), &e) == 0 && evo_config_resolve(&c, &e) == 0) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            evo_config_print(&c, null);
            fclose(null);
        }
    }
    return 0;
}
