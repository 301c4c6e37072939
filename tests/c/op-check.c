/* op-check - runs every op of the CPU backend on deterministic random
 * inputs and writes inputs and outputs for tests/ref/torch-ops.py, which
 * recomputes them with PyTorch autograd and compares (tests/t0200-ops.sh).
 *
 *   op-check [-s] [-b BACKEND] DIR
 *
 * For each case it writes DIR/<case>.json (the dimensions and scalars) and
 * one raw little-endian file per tensor, DIR/<case>.<name>.<f32|i32|u16|f64>,
 * flat (the JSON gives the shapes). -s: smaller sizes, for the sanitizer
 * build. -b runs another backend on the same inputs: cpu (the default),
 * emulated-bf16 and emulated-fp16 (backend_emulated.c), cuda, cuda-tf32,
 * cuda-bf16 and cuda-fp16 (GPU 0): scripts/gpu-check compares a GPU's DIR
 * with the CPU backend's, or in bf16 with the emulated one's, by
 * tests/c/op-compare. Every buffer goes through the backend's
 * alloc/upload/download, as evo-train's does. Activations (evo_dval) are
 * made as fp32, rounded to the backend's dtype, uploaded, and saved widened
 * back to fp32, so every backend's files have the same names and types.
 * The plain-loop attention reference runs only beside the CPU backend (it
 * reads host memory, in fp32). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/error.h"
#include "compute/backend.h"
#include "compute/backend_cpu.h" /* the attention reference */

static const evo_backend *be;
static const char *dir;
static const char *case_name;
static int small;

/* Device buffers of the current case, freed together when it ends. */
static void *bufs[64];
static int nbufs;

/* splitmix64: a fixed stream, so every run writes the same inputs. */
static uint64_t rng_state = 0x5eed;
static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_u64() >> 11) / 9007199254740992.0);
}

static void *dev_alloc(size_t bytes)
{
    if (nbufs == (int)(sizeof bufs / sizeof bufs[0]))
        evo_fatal("op-check: too many buffers in case %s", case_name);
    return bufs[nbufs++] = be->alloc(be, bytes);
}

static void *dev_from(const void *host, size_t bytes)
{
    void *d = dev_alloc(bytes);
    be->upload(be, d, host, bytes);
    return d;
}

/* n uniform floats in [lo, hi), on the device. */
static float *dev_uniform(size_t n, float lo, float hi)
{
    float *h = evo_malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = rng_uniform(lo, hi);
    float *d = dev_from(h, n * sizeof *h);
    free(h);
    return d;
}

/* The same in the backend's dtype (each value rounded to it): an
 * activation, or a working weight. */
static evo_dval *dval_uniform(size_t n, float lo, float hi)
{
    float *h = evo_malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = rng_uniform(lo, hi);
    void *t = evo_malloc(evo_dval_bytes(be, n));
    evo_dtype_cast(t, be->dtype, h, EVO_F32, n);
    evo_dval *d = dev_from(t, evo_dval_bytes(be, n));
    free(h);
    free(t);
    return d;
}

/* n int32 in [lo, hi), with probability p_ignore of EVO_IGNORE_LABEL. */
static int32_t *dev_ints(size_t n, int32_t lo, int32_t hi, double p_ignore)
{
    int32_t *h = evo_malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = rng_uniform(0, 1) < p_ignore ? EVO_IGNORE_LABEL
                                            : lo + (int32_t)(rng_u64() % (uint64_t)(hi - lo));
    int32_t *d = dev_from(h, n * sizeof *h);
    free(h);
    return d;
}

static void begin(const char *name, const char *json_fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void begin(const char *name, const char *json_fmt, ...)
{
    case_name = name;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        evo_fatal("op-check: cannot write %s", path);
    va_list ap;
    va_start(ap, json_fmt);
    fputc('{', f);
    vfprintf(f, json_fmt, ap);
    fputs("}\n", f);
    va_end(ap);
    if (fclose(f) != 0)
        evo_fatal("op-check: cannot write %s", path);
}

static void end(void)
{
    while (nbufs > 0)
        be->free(be, bufs[--nbufs]);
}

/* Downloads n elements of size es from the device into DIR/<case>.<name>.<ext>. */
static void save(const char *name, const char *ext, const void *dev, size_t n, size_t es)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.%s", dir, case_name, name, ext);
    void *h = evo_malloc(n * es);
    be->download(be, h, dev, n * es);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(h, es, n, f) != n || fclose(f) != 0)
        evo_fatal("op-check: cannot write %s", path);
    free(h);
}
#define SAVE_F32(name, p, n) save(name, "f32", p, n, 4)
#define SAVE_I32(name, p, n) save(name, "i32", p, n, 4)

/* A dtype buffer, saved widened to fp32 (NAME.f32 on every backend). */
static void SAVE_D(const char *name, const evo_dval *dev, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s.f32", dir, case_name, name);
    void *h = evo_malloc(evo_dval_bytes(be, n));
    float *f = evo_malloc(n * sizeof *f);
    be->download(be, h, dev, evo_dval_bytes(be, n));
    evo_dtype_cast(f, EVO_F32, h, be->dtype, n);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(f, sizeof *f, n, out) != n || fclose(out) != 0)
        evo_fatal("op-check: cannot write %s", path);
    free(h);
    free(f);
}

/* An uninitialised device buffer, or one filled with random values saved
 * under NAME first (a gradient that the op must accumulate into). */
static float *dev_out(size_t n)
{
    return dev_alloc(n * sizeof(float));
}
static float *dev_acc(const char *name, size_t n)
{
    float *d = dev_uniform(n, -1, 1);
    SAVE_F32(name, d, n);
    return d;
}
static evo_dval *dval_out(size_t n) { return dev_alloc(evo_dval_bytes(be, n)); }
static evo_dval *dval_acc(const char *name, size_t n)
{
    evo_dval *d = dval_uniform(n, -1, 1);
    SAVE_D(name, d, n);
    return d;
}

static void check_embedding(void)
{
    size_t T = small ? 24 : 96, V = 37, C = 80;
    begin("embedding", "\"T\": %zu, \"V\": %zu, \"C\": %zu", T, V, C);
    int32_t *ids = dev_ints(T, 0, (int32_t)V, 0);
    evo_dval *table = dval_uniform(V * C, -1, 1), *out = dval_out(T * C);
    evo_dval *dout = dval_uniform(T * C, -1, 1);
    float *dtable = dev_acc("dtable0", V * C);
    be->embedding_fwd(be, out, ids, table, T, C);
    be->embedding_bwd(be, dtable, ids, dout, T, C);
    SAVE_I32("ids", ids, T);
    SAVE_D("table", table, V * C);
    SAVE_D("dout", dout, T * C);
    SAVE_D("out", out, T * C);
    SAVE_F32("dtable", dtable, V * C);
    end();
}

static void check_matmul(void)
{
    size_t T = small ? 16 : 64, C = 72, OC = 100;
    begin("matmul", "\"T\": %zu, \"C\": %zu, \"OC\": %zu", T, C, OC);
    evo_dval *inp = dval_uniform(T * C, -1, 1), *W = dval_uniform(OC * C, -0.2f, 0.2f);
    evo_dval *b = dval_uniform(OC, -1, 1), *out = dval_out(T * OC), *dout = dval_uniform(T * OC, -1, 1);
    evo_dval *dinp = dval_out(T * C);
    float *dW = dev_acc("dW0", OC * C), *db = dev_acc("db0", OC);
    be->matmul_fwd(be, out, inp, W, b, T, C, OC);
    be->matmul_bwd(be, dinp, dW, db, dout, inp, W, T, C, OC, EVO_OVERWRITE);
    evo_dval *dinp_acc = dval_acc("dinp0", T * C);
    be->matmul_bwd(be, dinp_acc, NULL, NULL, dout, inp, W, T, C, OC, EVO_ACCUMULATE);
    SAVE_D("inp", inp, T * C);
    SAVE_D("W", W, OC * C);
    SAVE_D("b", b, OC);
    SAVE_D("dout", dout, T * OC);
    SAVE_D("out", out, T * OC);
    SAVE_D("dinp", dinp, T * C);
    SAVE_D("dinp_acc", dinp_acc, T * C);
    SAVE_F32("dW", dW, OC * C);
    SAVE_F32("db", db, OC);
    end();
}

static void check_rmsnorm(void)
{
    size_t T = small ? 8 : 48, C = 192;
    float eps = 1e-5f;
    begin("rmsnorm", "\"T\": %zu, \"C\": %zu, \"eps\": %.9g", T, C, (double)eps);
    evo_dval *inp = dval_uniform(T * C, -2, 2), *w = dval_uniform(C, 0.5f, 1.5f);
    evo_dval *out = dval_out(T * C), *dout = dval_uniform(T * C, -1, 1), *dinp = dval_out(T * C);
    float *rstd = dev_out(T), *dw = dev_acc("dw0", C);
    be->rmsnorm_fwd(be, out, rstd, inp, w, eps, T, C);
    be->rmsnorm_bwd(be, dinp, dw, dout, inp, w, rstd, T, C, EVO_OVERWRITE);
    evo_dval *dinp_acc = dval_acc("dinp0", T * C);
    float *dw_again = dev_out(C);
    be->rmsnorm_bwd(be, dinp_acc, dw_again, dout, inp, w, rstd, T, C, EVO_ACCUMULATE);
    SAVE_D("inp", inp, T * C);
    SAVE_D("w", w, C);
    SAVE_D("dout", dout, T * C);
    SAVE_D("out", out, T * C);
    SAVE_F32("rstd", rstd, T);
    SAVE_D("dinp", dinp, T * C);
    SAVE_D("dinp_acc", dinp_acc, T * C);
    SAVE_F32("dw", dw, C);
    end();
}

/* Positions as evo-pack makes them, restarting at every segment start,
 * with the last segment far into a long document (large angles). */
static int32_t *dev_positions(size_t T, const int32_t *cu, int n_seg, int32_t last_offset)
{
    int32_t *h = evo_malloc(T * sizeof *h);
    for (int s = 0; s < n_seg; s++)
        for (int32_t t = cu[s]; t < cu[s + 1]; t++)
            h[t] = t - cu[s] + (s == n_seg - 1 ? last_offset : 0);
    int32_t *d = dev_from(h, T * sizeof *h);
    free(h);
    return d;
}

static void check_rope(void)
{
    size_t T = small ? 24 : 64;
    int H = 3, hd = 32, n_seg = 3;
    float base = 10000;
    int32_t cu[] = {0, (int32_t)T / 4, (int32_t)T / 2, (int32_t)T};
    begin("rope", "\"T\": %zu, \"H\": %d, \"hd\": %d, \"base\": %.9g", T, H, hd, (double)base);
    int32_t *pos = dev_positions(T, cu, n_seg, 4000);
    size_t n = T * (size_t)H * (size_t)hd;
    evo_dval *inp = dval_uniform(n, -1, 1), *out = dval_out(n), *dout = dval_uniform(n, -1, 1);
    evo_dval *dinp = dval_out(n);
    be->rope_fwd(be, out, inp, pos, T, H, hd, base);
    be->rope_bwd(be, dinp, dout, pos, T, H, hd, base);
    SAVE_I32("pos", pos, T);
    SAVE_D("inp", inp, n);
    SAVE_D("dout", dout, n);
    SAVE_D("out", out, n);
    SAVE_D("dinp", dinp, n);
    end();
}

/* Segments of the lengths in lens (0-terminated): 1-token ones, and
 * lengths below, at and past the blocked kernel's 64-row query blocks
 * (backend_cpu_attention.c), so T is a multiple of no block size. The plain
 * reference (backend_cpu_attention_ref.c) runs on the same inputs and its
 * results are saved as ref_<name>: torch-ops.py holds both to PyTorch. */
static void check_attention(const char *name, int H, int KVH, int hd, const int *lens,
                            float q_range)
{
    int32_t cu[16] = {0};
    char cu_json[256];
    int len = snprintf(cu_json, sizeof cu_json, "0"), n_seg = 0;
    while (lens[n_seg])
        if (++n_seg == (int)(sizeof cu / sizeof *cu))
            evo_fatal("op-check: %s has too many segments", name);
    for (int i = 0; i < n_seg; i++) {
        cu[i + 1] = cu[i] + lens[i];
        len += snprintf(cu_json + len, sizeof cu_json - (size_t)len, ", %d", cu[i + 1]);
    }
    size_t T = (size_t)cu[n_seg];
    begin(name, "\"T\": %zu, \"H\": %d, \"KVH\": %d, \"hd\": %d, \"cu_seqlens\": [%s]", T, H,
          KVH, hd, cu_json);
    size_t nq = T * (size_t)H * (size_t)hd, nkv = T * (size_t)KVH * (size_t)hd;
    int32_t *dcu = dev_from(cu, (size_t)(n_seg + 1) * sizeof *cu);
    /* With q in U(-3,3), q.k / sqrt(hd) has variance 1 (Var U(-3,3) U(-1,1)
     * = 1): softmax neither flat nor one-hot. */
    evo_dval *q = dval_uniform(nq, -q_range, q_range), *k = dval_uniform(nkv, -1, 1);
    evo_dval *v = dval_uniform(nkv, -1, 1), *dout = dval_uniform(nq, -1, 1);
    float *scratch = dev_out(T * (size_t)H);
    SAVE_D("q", q, nq);
    SAVE_D("k", k, nkv);
    SAVE_D("v", v, nkv);
    SAVE_D("dout", dout, nq);
    for (int ref = 0; ref < (be->host_memory && be->dtype == EVO_F32 ? 2 : 1); ref++) {
        evo_dval *out = dval_out(nq), *dq = dval_out(nq), *dk = dval_out(nkv), *dv = dval_out(nkv);
        float *lse = dev_out(T * (size_t)H);
        if (ref) {
            evo_cpu_attention_ref_fwd(be, out, lse, q, k, v, dcu, n_seg, T, H, KVH, hd);
            evo_cpu_attention_ref_bwd(be, dq, dk, dv, scratch, dout, q, k, v, out, lse, dcu,
                                      n_seg, T, H, KVH, hd);
        } else {
            be->attention_fwd(be, out, lse, q, k, v, dcu, n_seg, T, H, KVH, hd);
            be->attention_bwd(be, dq, dk, dv, scratch, dout, q, k, v, out, lse, dcu, n_seg, T, H,
                              KVH, hd);
        }
        static const char *const names[2][5] = {
            {"out", "lse", "dq", "dk", "dv"},
            {"ref_out", "ref_lse", "ref_dq", "ref_dk", "ref_dv"},
        };
        const char *const *nm = names[ref];
        SAVE_D(nm[0], out, nq);
        SAVE_F32(nm[1], lse, T * (size_t)H);
        SAVE_D(nm[2], dq, nq);
        SAVE_D(nm[3], dk, nkv);
        SAVE_D(nm[4], dv, nkv);
    }
    end();
}

static void check_swiglu(void)
{
    size_t n = small ? 500 : 4000;
    begin("swiglu", "\"n\": %zu", n);
    evo_dval *gate = dval_uniform(n, -6, 6), *up = dval_uniform(n, -2, 2), *out = dval_out(n);
    evo_dval *dout = dval_uniform(n, -1, 1), *dgate = dval_out(n), *dup = dval_out(n);
    be->swiglu_fwd(be, out, gate, up, n);
    be->swiglu_bwd(be, dgate, dup, dout, gate, up, n);
    SAVE_D("gate", gate, n);
    SAVE_D("up", up, n);
    SAVE_D("dout", dout, n);
    SAVE_D("out", out, n);
    SAVE_D("dgate", dgate, n);
    SAVE_D("dup", dup, n);
    end();
}

static void check_crossentropy(const char *name, float eps)
{
    size_t T = small ? 16 : 64, V = 301;
    begin(name, "\"T\": %zu, \"V\": %zu, \"eps\": %.9g", T, V, (double)eps);
    evo_dval *logits = dval_uniform(T * V, -8, 8), *dlogits = dval_out(T * V);
    float *losses = dev_out(T), *lse = dev_out(T);
    int32_t *labels = dev_ints(T, 0, (int32_t)V, 0.25);
    float *dloss = dev_uniform(T, 0, 1);
    be->crossentropy_fwd(be, losses, lse, logits, labels, eps, T, V);
    SAVE_D("logits", logits, T * V);
    /* In place, as evo-train runs it: the logits buffer becomes dlogits. */
    be->copy(be, dlogits, logits, evo_dval_bytes(be, T * V));
    be->crossentropy_bwd(be, dlogits, dloss, dlogits, lse, labels, eps, T, V, 0, V);
    SAVE_I32("labels", labels, T);
    SAVE_F32("dloss", dloss, T);
    SAVE_F32("losses", losses, T);
    SAVE_D("dlogits", dlogits, T * V);
    end();
}

/* The vocabulary in three shards, as three tensor ranks hold it: each
 * shard's parts, and its columns of dlogits from the whole row's lse (the
 * one crossentropy_fwd gives; the caller combines the parts into it). The
 * shards' columns are put side by side with copy2d, as evo-train gathers
 * the embedding's. */
static void check_crossentropy_shards(float eps)
{
    size_t T = small ? 16 : 64, V = 300, S = 3, Vl = V / S;
    begin("crossentropy_shards", "\"T\": %zu, \"V\": %zu, \"shards\": %zu, \"eps\": %.9g", T, V, S, (double)eps);
    evo_dval *logits = dval_uniform(T * V, -8, 8), *shard = dval_out(T * Vl), *dlogits = dval_out(T * V);
    float *losses = dev_out(T), *lse = dev_out(T);
    int32_t *labels = dev_ints(T, 0, (int32_t)V, 0.25);
    float *dloss = dev_uniform(T, 0, 1), *parts = dev_out(3 * T * S);
    be->crossentropy_fwd(be, losses, lse, logits, labels, eps, T, V);
    for (size_t r = 0; r < S; r++) {
        be->copy2d(be, shard, Vl, evo_dval_at(be, logits, r * Vl), V, T, Vl);
        be->crossentropy_shard_fwd(be, parts + r * 3 * T, shard, labels, T, r * Vl, Vl);
        be->crossentropy_bwd(be, shard, dloss, shard, lse, labels, eps, T, V, r * Vl, Vl);
        be->copy2d(be, evo_dval_at(be, dlogits, r * Vl), V, shard, Vl, T, Vl);
    }
    SAVE_D("logits", logits, T * V);
    SAVE_I32("labels", labels, T);
    SAVE_F32("dloss", dloss, T);
    SAVE_F32("parts", parts, 3 * T * S);
    SAVE_D("dlogits", dlogits, T * V);
    end();
}

/* Three steps from zero state, a new gradient each step, the last one
 * writing the working copy of p (work) in the same pass. */
static void check_adamw(void)
{
    size_t n = small ? 300 : 3000;
    float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    begin("adamw",
          "\"n\": %zu, \"lr\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, "
          "\"wd\": %.9g, \"grad_scale\": %.9g, \"steps\": 3",
          n, (double)lr, (double)b1, (double)b2, (double)eps, (double)wd, (double)scale);
    float *p = dev_uniform(n, -1, 1), *m = dev_out(n), *v = dev_out(n);
    evo_dval *work = dval_out(n);
    be->fill(be, m, 0, n);
    be->fill(be, v, 0, n);
    SAVE_F32("p0", p, n);
    for (int t = 1; t <= 3; t++) {
        float *g = dev_uniform(n, -2, 2);
        char name[16];
        snprintf(name, sizeof name, "g%d", t);
        SAVE_F32(name, g, n);
        be->adamw(be, p, t == 3 ? work : NULL, g, m, v, n, lr, b1, b2, eps, wd, scale, t);
    }
    SAVE_F32("p", p, n);
    SAVE_D("work", work, n);
    SAVE_F32("m", m, n);
    SAVE_F32("v", v, n);
    end();
}

/* Accumulates onto 1.5 to show that it adds; then a buffer holding an inf
 * and one holding a NaN, each of which must make the sum non-finite. */
static void check_sqnorm(void)
{
    size_t n = small ? 1001 : 100003;
    begin("sqnorm", "\"n\": %zu, \"acc0\": 1.5", n);
    float *x = dev_uniform(n, -3, 3);
    double acc0[3] = {1.5, 0, 0};
    double *acc = dev_from(acc0, sizeof acc0);
    be->sqnorm(be, acc, x, n);
    SAVE_F32("x", x, n);
    float bad[2] = {INFINITY, NAN};
    for (int i = 0; i < 2; i++) {
        be->upload(be, x + n / 2, &bad[i], sizeof bad[i]);
        be->sqnorm(be, acc + 1 + i, x, n);
    }
    save("acc", "f64", acc, 3, 8);
    end();
}

/* Values that exercise rounding: ties in both formats, subnormals,
 * overflow, inf, NaN, then random floats across many binades. */
static void check_cast(void)
{
    static const float special[] = {
        0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f, 1.01171875f, /* bf16 ties (even, odd) */
        1.00048828125f, 1.00146484375f,                     /* f16 ties */
        65504.0f, 65520.0f, 1e-7f, 6e-8f, 3e-8f, 1e-40f,    /* f16 max/overflow/subnormals */
        3.3961776e38f, 3.4028235e38f, INFINITY, -INFINITY, NAN,
    };
    size_t ns = sizeof special / sizeof special[0], n = ns + (small ? 200 : 2000);
    begin("cast", "\"n\": %zu", n);
    float *h = evo_malloc(n * sizeof *h);
    memcpy(h, special, sizeof special);
    for (size_t i = ns; i < n; i++)
        h[i] = rng_uniform(-1, 1) * powf(2.0f, rng_uniform(-30, 30));
    float *x = dev_from(h, n * sizeof *h);
    free(h);
    size_t half = n * evo_dtype_size(EVO_BF16);
    uint16_t *bf = dev_alloc(half), *hf = dev_alloc(half), *bf_hf = dev_alloc(half),
             *hf_bf = dev_alloc(half);
    float *bf32 = dev_out(n), *hf32 = dev_out(n);
    be->cast(be, bf, EVO_BF16, x, EVO_F32, n);
    be->cast(be, hf, EVO_F16, x, EVO_F32, n);
    be->cast(be, bf32, EVO_F32, bf, EVO_BF16, n);
    be->cast(be, hf32, EVO_F32, hf, EVO_F16, n);
    be->cast(be, hf_bf, EVO_F16, bf, EVO_BF16, n);
    be->cast(be, bf_hf, EVO_BF16, hf, EVO_F16, n);
    SAVE_F32("x", x, n);
    save("bf16", "u16", bf, n, 2);
    save("f16", "u16", hf, n, 2);
    SAVE_F32("bf16_f32", bf32, n);
    SAVE_F32("f16_f32", hf32, n);
    save("bf16_f16", "u16", hf_bf, n, 2);
    save("f16_bf16", "u16", bf_hf, n, 2);
    end();
}

/* fill (fp32), add and device-to-device copy (dtype). */
static void check_memory(void)
{
    size_t n = 1000;
    begin("memory", "\"n\": %zu, \"value\": 0.25", n);
    evo_dval *x = dval_uniform(n, -1, 1), *y = dval_out(n), *z = dval_uniform(n, -1, 1);
    float *f = dev_out(n), *g = dev_uniform(n, -1, 1);
    be->copy(be, y, x, evo_dval_bytes(be, n));
    be->fill(be, f, 0.25f, n);
    SAVE_D("x", x, n);
    SAVE_D("y", y, n);
    SAVE_D("z", z, n);
    SAVE_F32("f", f, n);
    SAVE_F32("g", g, n);
    be->add(be, y, z, n); /* y = x + z */
    SAVE_D("sum", y, n);
    be->add_f32(be, f, g, n); /* f = 0.25 + g */
    SAVE_F32("fsum", f, n);
    end();
}

int main(int argc, char **argv)
{
    evo_set_progname("op-check");
    int a = 1;
    if (a < argc && strcmp(argv[a], "-s") == 0) {
        small = 1;
        a++;
    }
    be = evo_backend_cpu();
    if (a + 1 < argc && strcmp(argv[a], "-b") == 0) {
        const char *name = argv[a + 1];
        a += 2;
        evo_err e;
        evo_dtype dt = strstr(name, "-bf16") ? EVO_BF16 : strstr(name, "-fp16") ? EVO_F16 : EVO_F32;
        if (!strcmp(name, "emulated-bf16") || !strcmp(name, "emulated-fp16")) {
            be = evo_backend_emulated(dt);
        } else if (!strcmp(name, "cuda") || !strcmp(name, "cuda-tf32") || !strcmp(name, "cuda-bf16") ||
                   !strcmp(name, "cuda-fp16")) {
            if (!(be = evo_backend_cuda(0, dt, strcmp(name, "cuda-tf32") == 0, &e)))
                evo_fatal("%s", e.msg);
        } else if (strcmp(name, "cpu") != 0) {
            evo_usage_error("-b wants cpu, emulated-bf16, emulated-fp16, cuda, cuda-tf32, cuda-bf16 or cuda-fp16, "
                            "not '%s'",
                            name);
        }
    }
    if (a + 1 != argc)
        evo_usage_error("usage: op-check [-s] [-b BACKEND] DIR");
    dir = argv[a];
    check_embedding();
    check_matmul();
    check_rmsnorm();
    check_rope();
    static const int gqa[] = {1, 149, 64, 1, 65, 20, 0}, gqa_s[] = {1, 70, 1, 20, 0};
    static const int mha[] = {130, 1, 63, 106, 0}, mha_s[] = {66, 1, 30, 0};
    static const int mqa[] = {200, 0}, mqa_s[] = {70, 0}; /* one document fills the row */
    check_attention("attention_gqa", 8, 2, 32, small ? gqa_s : gqa, 3);
    check_attention("attention_mha", 4, 4, 64, small ? mha_s : mha, 3);
    /* Scores with a standard deviation of 40: exp of them unshifted would
     * overflow, the softmax is nearly one-hot. */
    check_attention("attention_mqa", 2, 1, 16, small ? mqa_s : mqa, 120);
    /* head dim 128 and GQA: the GPU's tensor-core kernels' other shape
     * (compute/attention_plan.h), segments across its 64-token tiles */
    static const int gqa128[] = {100, 1, 77, 0}, gqa128_s[] = {40, 1, 30, 0};
    check_attention("attention_gqa128", 4, 2, 128, small ? gqa128_s : gqa128, 3);
    check_swiglu();
    check_crossentropy("crossentropy", 0.0f);
    check_crossentropy("crossentropy_smooth", 0.1f);
    check_crossentropy_shards(0.1f);
    check_adamw();
    check_sqnorm();
    check_cast();
    check_memory();
    return 0;
}
