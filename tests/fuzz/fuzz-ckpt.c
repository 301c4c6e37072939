/* fuzz-ckpt - one checkpoint tensor file (model_*.evo, optimizer_*.evo of
 * evo-ckpt(5)): open with every checksum, then read each tensor's values
 * by its table entry, as evo-ckpt cat and evo-train's resume do. */
#include "base/dtype.h"
#include "formats/ckpt.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    evo_ckpt_file c;
    evo_err e;
    if (evo_ckpt_open(&c, fuzz_file(data, size, "model_tp0_pp0.evo"), &e) < 0)
        return 0;
    size_t es = evo_dtype_size(c.meta.dtype);
    float v[16];
    for (uint64_t i = 0; i < c.meta.n_tensors; i++) {
        const evo_ckpt_tensor *t = &c.tensors[i];
        uint64_t n = t->numel < 16 ? t->numel : 16;
        evo_dtype_cast(v, EVO_F32, c.data + t->offset * es, c.meta.dtype, n);
        if (n && t->numel > n) /* the last values too */
            evo_dtype_cast(v, EVO_F32, c.data + (t->offset + t->numel - 1) * es, c.meta.dtype, 1);
        char shape[96];
        evo_ckpt_format_shape(shape, sizeof shape, t->ndim, t->shape);
        if (evo_ckpt_find(&c, t->name) == NULL)
            abort(); /* every table entry is found by its name */
    }
    evo_ckpt_close(&c);
    return 0;
}
