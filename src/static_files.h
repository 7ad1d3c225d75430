/*
 * static_files - which files of a folder may be served over HTTP.
 *
 * Only regular files inside the folder: the URL path may contain letters,
 * digits, '-', '_', '.' and '/', no segment may start with '.' (no "..",
 * no dotfiles), and the resolved real path (symlinks followed) must stay
 * inside the folder's real path. "/" and paths ending in '/' mean
 * index.html. libwebsockets serves what this allows (http.h).
 */
#ifndef EARSHOT_STATIC_FILES_H
#define EARSHOT_STATIC_FILES_H

/* 1 if url_path (decoded, no query) names a file under root that may be
 * served, else 0. */
int es_static_allowed(const char *root, const char *url_path);

#endif
