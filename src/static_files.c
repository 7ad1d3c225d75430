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

int es_static_allowed(const char *root, const char *url_path)
{
    if (!root || !*root || !allowed_path(url_path) || strlen(url_path) > 512)
        return 0;
    char want[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
    size_t n = strlen(url_path);
    int dir = url_path[n - 1] == '/';
    if (snprintf(want, sizeof want, "%s%s%s", root, url_path, dir ? "index.html" : "") >=
        (int)sizeof want)
        return 0;
    if (!realpath(root, real_root) || !realpath(want, real))
        return 0;
    size_t rl = strlen(real_root);
    if (strncmp(real, real_root, rl) != 0 || real[rl] != '/')
        return 0;
    struct stat st;
    return stat(real, &st) == 0 && S_ISREG(st.st_mode);
}
