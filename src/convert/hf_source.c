/* The safetensors side of a HuggingFace model directory, as --from-hf
 * reads it: model.safetensors.index.json's weight map and the shards it
 * names, or a single model.safetensors (convert.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "convert.h"

#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"

void hf_source_close(hf_source *s)
{
    for (size_t i = 0; i < s->n_files; i++) {
        evo_st_close(&s->files[i]);
        free(s->names[i]);
    }
    free(s->files);
    free(s->names);
    free(s->index_path);
    json_decref(s->weight_map);
    *s = (hf_source){0};
}

static int add_file(hf_source *s, const char *dir, const char *name, evo_err *e)
{
    for (size_t i = 0; i < s->n_files; i++)
        if (!strcmp(s->names[i], name))
            return 0;
    s->files = evo_realloc(s->files, (s->n_files + 1) * sizeof *s->files);
    s->names = evo_realloc(s->names, (s->n_files + 1) * sizeof *s->names);
    char *path = evo_path_join(dir, name);
    int rc = evo_st_open(&s->files[s->n_files], path, e);
    free(path);
    if (rc == 0)
        s->names[s->n_files++] = evo_strdup(name);
    return rc;
}

int hf_source_open(hf_source *s, const char *dir, evo_err *e)
{
    *s = (hf_source){.index_path = evo_path_join(dir, INDEX_FILE)};
    struct stat st;
    if (stat(s->index_path, &st) < 0) {
        if (errno != ENOENT)
            return evo_errf(e, "%s: %s", s->index_path, strerror(errno));
        char *single = evo_path_join(dir, SINGLE_FILE);
        int absent = stat(single, &st) < 0 && errno == ENOENT;
        free(single);
        if (absent)
            return evo_errf(e, "%s: neither %s nor %s (only safetensors are read)", dir, INDEX_FILE, SINGLE_FILE);
        return add_file(s, dir, SINGLE_FILE, e);
    }
    json_error_t je;
    json_t *j = json_load_file(s->index_path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return evo_errf(e, "%s:%d: %s", s->index_path, je.line, je.text);
    s->weight_map = json_incref(json_object_get(j, "weight_map"));
    json_decref(j);
    if (!json_is_object(s->weight_map))
        return evo_errf(e, "%s: no \"weight_map\" object", s->index_path);
    const char *name;
    json_t *v;
    json_object_foreach(s->weight_map, name, v)
    {
        /* Shards are files of this directory: a path elsewhere is refused. */
        const char *file = json_string_value(v);
        if (!file || !*file || strchr(file, '/') || !strcmp(file, ".."))
            return evo_errf(e, "%s: tensor %s: \"%s\" is not a file name", s->index_path, name, file ? file : "");
        if (add_file(s, dir, file, e) < 0)
            return -1;
    }
    return 0;
}

const evo_st_tensor *hf_source_lookup(const hf_source *s, const char *name, const evo_st_file **file,
                                      evo_err *e)
{
    *file = &s->files[0];
    if (s->weight_map) {
        const char *in = json_string_value(json_object_get(s->weight_map, name));
        if (!in) {
            evo_errf(e, "%s: no tensor %s", s->index_path, name);
            return NULL;
        }
        for (size_t i = 0; i < s->n_files; i++)
            if (!strcmp(s->names[i], in))
                *file = &s->files[i];
    }
    const evo_st_tensor *t = evo_st_find(*file, name);
    if (!t)
        evo_errf(e, "%s: no tensor %s%s", (*file)->path, name, s->weight_map ? " (the index says it is here)" : "");
    return t;
}

