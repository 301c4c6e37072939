/* backend_ops.h - the ops of the evo_backend table past alloc and free, as
 * one list X(name, (parameters), (arguments)), for the backends that wrap
 * another and do the same around every op: backend_guarded.c opens its
 * memory around each, backend_profiled.c times each. A new op goes here
 * once, and every wrapper has it. */
#ifndef EVO_BACKEND_OPS_H
#define EVO_BACKEND_OPS_H

#include "compute/backend.h"

// clang-format off
#define EVO_BACKEND_OPS(X) \
    X(finish, (const evo_backend *be), (be)) \
    X(upload, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b)) \
    X(download, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b)) \
    X(fill, (const evo_backend *be, float *d, float v, size_t n), (be, d, v, n)) \
    X(add, (const evo_backend *be, evo_dval *d, const evo_dval *s, size_t n), (be, d, s, n)) \
    X(add_f32, (const evo_backend *be, float *d, const float *s, size_t n), (be, d, s, n)) \
    X(copy, (const evo_backend *be, void *d, const void *s, size_t b), (be, d, s, b)) \
    X(cast, (const evo_backend *be, void *d, evo_dtype dd, const void *s, evo_dtype sd, size_t n), \
            (be, d, dd, s, sd, n)) \
    X(embedding_fwd, (const evo_backend *be, evo_dval *o, const int32_t *i, const evo_dval *t, size_t T, size_t C), \
            (be, o, i, t, T, C)) \
    X(embedding_bwd, (const evo_backend *be, float *o, const int32_t *i, const evo_dval *t, size_t T, size_t C), \
            (be, o, i, t, T, C)) \
    X(matmul_fwd, \
            (const evo_backend *be, evo_dval *o, const evo_dval *i, const evo_dval *w, const evo_dval *b, size_t T, size_t C, \
             size_t OC), \
            (be, o, i, w, b, T, C, OC)) \
    X(matmul_bwd, \
            (const evo_backend *be, evo_dval *di, float *dw, float *db, const evo_dval *d, const evo_dval *i, \
             const evo_dval *w, \
             size_t T, size_t C, size_t OC, evo_grad_mode m), \
            (be, di, dw, db, d, i, w, T, C, OC, m)) \
    X(rmsnorm_fwd, \
            (const evo_backend *be, evo_dval *o, float *r, const evo_dval *i, const evo_dval *w, float e, size_t T, \
             size_t C), \
            (be, o, r, i, w, e, T, C)) \
    X(rmsnorm_bwd, \
            (const evo_backend *be, evo_dval *di, float *dw, const evo_dval *d, const evo_dval *i, const evo_dval *w, \
             const float *r, \
             size_t T, size_t C, evo_grad_mode m), \
            (be, di, dw, d, i, w, r, T, C, m)) \
    X(rope_fwd, (const evo_backend *be, evo_dval *o, const evo_dval *i, const int32_t *p, size_t T, int H, int hd, \
            float b), \
            (be, o, i, p, T, H, hd, b)) \
    X(rope_bwd, (const evo_backend *be, evo_dval *o, const evo_dval *i, const int32_t *p, size_t T, int H, int hd, \
            float b), \
            (be, o, i, p, T, H, hd, b)) \
    X(attention_fwd, \
            (const evo_backend *be, evo_dval *o, float *l, const evo_dval *q, const evo_dval *k, const evo_dval *v, \
             const int32_t *cu, \
             int ns, size_t T, int H, int KVH, int hd), \
            (be, o, l, q, k, v, cu, ns, T, H, KVH, hd)) \
    X(attention_bwd, \
            (const evo_backend *be, evo_dval *dq, evo_dval *dk, evo_dval *dv, float *s, const evo_dval *d, \
             const evo_dval *q, const evo_dval *k, const evo_dval *v, const evo_dval *o, const float *l, const int32_t *cu, int ns, size_t T, int H, \
             int KVH, int hd), \
            (be, dq, dk, dv, s, d, q, k, v, o, l, cu, ns, T, H, KVH, hd)) \
    X(swiglu_fwd, (const evo_backend *be, evo_dval *o, const evo_dval *g, const evo_dval *u, size_t n), (be, o, g, u, n)) \
    X(swiglu_bwd, (const evo_backend *be, evo_dval *dg, evo_dval *du, const evo_dval *d, const evo_dval *g, \
             const evo_dval *u, size_t n), \
            (be, dg, du, d, g, u, n)) \
    X(crossentropy_fwd, \
            (const evo_backend *be, float *ls, float *l, const evo_dval *z, const int32_t *y, float e, size_t T, \
             size_t V), \
            (be, ls, l, z, y, e, T, V)) \
    X(crossentropy_bwd, \
            (const evo_backend *be, evo_dval *dz, const float *dl, const evo_dval *z, const float *l, const int32_t *y, \
             float e, \
             size_t T, size_t V, size_t v0, size_t Vl), \
            (be, dz, dl, z, l, y, e, T, V, v0, Vl)) \
    X(crossentropy_shard_fwd, \
            (const evo_backend *be, float *p, const evo_dval *z, const int32_t *y, size_t T, size_t v0, size_t Vl), \
            (be, p, z, y, T, v0, Vl)) \
    X(copy2d, (const evo_backend *be, evo_dval *d, size_t ds, const evo_dval *s, size_t ss, size_t r, size_t c), \
            (be, d, ds, s, ss, r, c)) \
    X(adamw, \
            (const evo_backend *be, float *p, evo_dval *w, const float *g, float *m, float *v, size_t n, float lr, \
             float b1, float b2, float e, float wd, float gs, int t), \
            (be, p, w, g, m, v, n, lr, b1, b2, e, wd, gs, t)) \
    X(sqnorm, (const evo_backend *be, double *a, const float *x, size_t n), (be, a, x, n))
// clang-format on

#endif
