#include "static_files.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int allowed_path(const char *p)
{
    if (p[0] != '/')
        return 0;
    for (const char *c = p; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.' || *c == '/'))
            return 0;
        /* no ".", "..", ".hidden" segments, no "//" */
        if (*c == '/' && (c[1] == '.' || c[1] == '/'))
            return 0;
    }
    return 1;
}

int es_static_resolve(const char *root, const char *url_path, char *out, size_t outlen)
{
    if (!root || !*root || !allowed_path(url_path) || strlen(url_path) > 512)
        return -1;
    char want[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
    size_t n = strlen(url_path);
    int dir = url_path[n - 1] == '/';
    if (snprintf(want, sizeof want, "%s%s%s", root, url_path, dir ? "index.html" : "") >=
        (int)sizeof want)
        return -1;
    if (!realpath(root, real_root) || !realpath(want, real))
        return -1;
    size_t rl = strlen(real_root);
    if (strncmp(real, real_root, rl) != 0 || real[rl] != '/')
        return -1;
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    if (strlen(real) + 1 > outlen)
        return -1;
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

const char *es_static_mime(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/markdown; charset=utf-8"},
        {".map", "application/json"},
        {".wav", "audio/wav"},
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

char *es_static_read(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (used == cap) {
            if (cap >= max)
                break;
            cap = cap ? cap * 2 : 16384;
            if (cap > max)
                cap = max;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + used, 1, cap - used, f);
        if (n == 0)
            break;
        used += n;
    }
    int too_big = used == max && fgetc(f) != EOF;
    fclose(f);
    if (too_big) {
        free(buf);
        return NULL;
    }
    *len = used;
    return buf ? buf : calloc(1, 1);
}
