/*
 * static_files - serving the demo page and the browser client from a folder.
 *
 * Only regular files inside the folder are served: the URL path may contain
 * letters, digits, '-', '_', '.' and '/', no segment may start with '.', and
 * the resolved real path (symlinks followed) must stay inside the folder's
 * real path. "/" and paths ending in '/' mean index.html.
 */
#ifndef EARSHOT_STATIC_FILES_H
#define EARSHOT_STATIC_FILES_H

#include <stddef.h>

/*
 * Map url_path (no query) to a file under root. Returns 0 and writes the
 * file's path into out, or -1 if the path is not allowed or names no
 * regular file.
 */
int es_static_resolve(const char *root, const char *url_path, char *out, size_t outlen);

/* The Content-Type for a file name, by extension ("application/octet-stream"
 * when unknown). */
const char *es_static_mime(const char *path);

/* Read a whole file (at most max bytes). Returns a malloc'd buffer and its
 * length in *len, or NULL. */
char *es_static_read(const char *path, size_t max, size_t *len);

#endif
