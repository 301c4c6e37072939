/* op-compare - compares two op-check output folders: the CPU backend's
 * (the reference) and another backend's on the same inputs.
 *
 *   op-compare [-t TOL] REF_DIR DIR
 *
 * For every tensor file of DIR (<case>.<name>.<f32|f64|i32|u16>) the file of
 * the same name in REF_DIR must exist with the same size. Integer and
 * 16-bit files (ids, labels, casts) must be identical; float files are
 * compared by relative L2 gap ||x - ref|| / ||ref|| <= TOL (default 1e-4),
 * where NaN and inf must sit at the same places with the same values.
 * One line per tensor ("ok" or "FAIL", the gap), exit 1 if any fails: the
 * GPU check (scripts/gpu-check) reads it as its test output. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = evo_malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            buf = evo_realloc(buf, cap *= 2);
    }
    fclose(f);
    *n = len;
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The relative L2 gap of n values read as double by get, or -1 when the
 * non-finite values differ in place or value. */
static double gap(const void *x, const void *ref, size_t n, double (*get)(const void *, size_t))
{
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double a = get(x, i), b = get(ref, i);
        if (!isfinite(a) || !isfinite(b)) {
            if (!(isnan(a) && isnan(b)) && a != b)
                return -1;
            continue;
        }
        err += (a - b) * (a - b);
        norm += b * b;
    }
    return norm > 0 ? sqrt(err / norm) : sqrt(err);
}

static double get_f32(const void *p, size_t i) { return ((const float *)p)[i]; }
static double get_f64(const void *p, size_t i) { return ((const double *)p)[i]; }

int main(int argc, char **argv)
{
    evo_set_progname("op-compare");
    double tol = 1e-4;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "-t") == 0) {
        tol = atof(argv[a + 1]);
        a += 2;
    }
    if (a + 2 != argc || !(tol > 0))
        evo_usage_error("usage: op-compare [-t TOL] REF_DIR DIR");
    const char *ref_dir = argv[a], *dir = argv[a + 1];
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort), failed = 0, compared = 0;
    if (n < 0)
        evo_fatal("%s: cannot list", dir);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        int f32 = ends_with(name, ".f32"), f64 = ends_with(name, ".f64");
        if (!f32 && !f64 && !ends_with(name, ".i32") && !ends_with(name, ".u16")) {
            free(names[i]);
            continue;
        }
        char pa[4096], pb[4096];
        snprintf(pa, sizeof pa, "%s/%s", ref_dir, name);
        snprintf(pb, sizeof pb, "%s/%s", dir, name);
        size_t na = 0, nb = 0;
        void *ra = slurp(pa, &na), *rb = slurp(pb, &nb);
        compared++;
        if (!ra || !rb || na != nb) {
            printf("FAIL %s: %s\n", name, !ra ? "missing in the reference" : !rb ? "unreadable" : "sizes differ");
            failed++;
        } else if (f32 || f64) {
            double g = f32 ? gap(rb, ra, na / 4, get_f32) : gap(rb, ra, na / 8, get_f64);
            int ok = g >= 0 && g <= tol;
            failed += !ok;
            if (g < 0)
                printf("FAIL %s: inf/NaN at other places\n", name);
            else
                printf("%s %s: relative L2 gap %.2e (tolerance %.0e)\n", ok ? "ok" : "FAIL", name, g, tol);
        } else {
            int same = memcmp(ra, rb, na) == 0;
            failed += !same;
            printf("%s %s: %s\n", same ? "ok" : "FAIL", name, same ? "identical" : "differs");
        }
        free(ra), free(rb), free(names[i]);
    }
    free(names);
    if (!compared) {
        printf("FAIL %s: no tensor files\n", dir);
        failed++;
    }
    return failed ? 1 : 0;
}
