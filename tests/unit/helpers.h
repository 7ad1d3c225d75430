/*
 * helpers.h - small shared helpers for the earshot unit tests (cmocka).
 *
 * Everything here is static so that each test executable gets its own copy
 * and no helper needs a separate translation unit.
 */
#ifndef EARSHOT_TEST_HELPERS_H
#define EARSHOT_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h" /* ES_ARRAY_LEN */

/* A test function whose cmocka state argument is not used. */
#define TEST(name) static void name(void **cm_state_ __attribute__((unused)))

/*
 * sq("{'type':'Disconnect'}") -> "{\"type\":\"Disconnect\"}": single quotes
 * become double quotes, so JSON in tests stays readable. The result lives in
 * a ring of 64 buffers, long enough for any one assertion.
 */
static __attribute__((unused)) const char *sq(const char *s)
{
    static char *ring[64];
    static unsigned next;
    unsigned i = next++ % 64;
    free(ring[i]);
    size_t n = strlen(s);
    ring[i] = malloc(n + 1);
    assert_non_null(ring[i]);
    for (size_t k = 0; k <= n; k++)
        ring[i][k] = s[k] == '\'' ? '"' : s[k];
    return ring[i];
}

/* printf into a ring buffer (same lifetime rules as sq). */
static __attribute__((unused, format(printf, 1, 2))) const char *fmt(const char *f, ...)
{
    static char *ring[64];
    static unsigned next;
    unsigned i = next++ % 64;
    free(ring[i]);
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    ring[i] = malloc((size_t)n + 1);
    assert_non_null(ring[i]);
    va_start(ap, f);
    vsnprintf(ring[i], (size_t)n + 1, f, ap);
    va_end(ap);
    return ring[i];
}

/* An environment variable the test run must provide. */
static __attribute__((unused)) const char *env_dir(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("environment variable %s is not set (run the tests through ctest)", name);
    return v;
}

/* ---- temporary directories with files in them ---------------------------- */

typedef struct tmpdir {
    char path[256];
    char files[32][512];
    int nfiles;
} tmpdir;

static __attribute__((unused)) void tmpdir_make(tmpdir *t)
{
    memset(t, 0, sizeof *t);
    const char *base = getenv("TMPDIR");
    snprintf(t->path, sizeof t->path, "%s/earshot-unit-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(t->path))
        fail_msg("mkdtemp: %s", strerror(errno));
}

/* Write text into <dir>/<name>; returns the full path (lives in t). */
static __attribute__((unused)) const char *tmpdir_write(tmpdir *t, const char *name,
                                                        const char *text)
{
    assert_true(t->nfiles < 32);
    char *path = t->files[t->nfiles];
    char full[sizeof t->files[0]];
    snprintf(full, sizeof full, "%s/%s", t->path, name);
    memcpy(path, full, sizeof full);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("fopen %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    for (int i = 0; i < t->nfiles; i++)
        if (strcmp(t->files[i], path) == 0)
            return t->files[i];
    t->nfiles++;
    return path;
}

/* A config file made with mkstemps() inside t (suffix .cfg). */
static __attribute__((unused)) const char *tmpdir_mkstemp(tmpdir *t, const char *text)
{
    assert_true(t->nfiles < 32);
    char *path = t->files[t->nfiles];
    char full[sizeof t->files[0]];
    snprintf(full, sizeof full, "%s/cfg-XXXXXX.cfg", t->path);
    memcpy(path, full, sizeof full);
    int fd = mkstemps(path, 4);
    if (fd < 0)
        fail_msg("mkstemps: %s", strerror(errno));
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    close(fd);
    t->nfiles++;
    return path;
}

static __attribute__((unused)) void tmpdir_remove(tmpdir *t)
{
    for (int i = 0; i < t->nfiles; i++)
        unlink(t->files[i]);
    if (t->path[0])
        rmdir(t->path);
    memset(t, 0, sizeof *t);
}

/* 1 when s starts with prefix. */
static __attribute__((unused)) int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define assert_starts_with(s, prefix)                                                  \
    do {                                                                               \
        const char *s_ = (s), *p_ = (prefix);                                          \
        if (!starts_with(s_, p_))                                                      \
            fail_msg("\"%s\" does not start with \"%s\"", s_, p_);                     \
    } while (0)

/* s contains needle (want 1) or does not (want 0); `says` describes a failure. */
#define assert_substring_(s, needle, want, says)                                       \
    do {                                                                               \
        const char *s_ = (s), *n_ = (needle);                                          \
        if ((strstr(s_, n_) != NULL) != (want))                                        \
            fail_msg("\"%s\" %s \"%s\"", s_, says, n_);                                \
    } while (0)
#define assert_contains(s, needle) assert_substring_(s, needle, 1, "does not contain")
#define assert_not_contains(s, needle) assert_substring_(s, needle, 0, "contains")

/* ---- a config file and the hook chains it lists --------------------------- */

#include "config.h"
#include "hooks.h"

typedef struct hooks_fixture {
    es_config cfg;
    es_hooks h;
    int cfg_loaded, hooks_loaded;
    const char *cfg_path; /* the config last written, in dir */
    char err[2048];       /* the message of the last failed load */
    tmpdir dir;
} hooks_fixture;

/* Unload the hooks and the config (the files stay until hooks_fixture_free). */
static __attribute__((unused)) void hooks_fixture_unload(hooks_fixture *f)
{
    if (f->hooks_loaded)
        es_hooks_unload(&f->h);
    if (f->cfg_loaded)
        es_config_free(&f->cfg);
    f->hooks_loaded = f->cfg_loaded = 0;
}

static __attribute__((unused)) void hooks_fixture_free(hooks_fixture *f)
{
    hooks_fixture_unload(f);
    if (f->dir.path[0])
        tmpdir_remove(&f->dir);
    memset(f, 0, sizeof *f);
}

/*
 * Write text as a new config file in f->dir, load it with the default
 * folders d (may be NULL), then load its hooks; whatever was loaded before
 * is unloaded first. Returns 0, or -1 (es_config_load failed) or -2
 * (es_hooks_load failed) with the message in f->err.
 */
static __attribute__((unused)) int hooks_fixture_load(hooks_fixture *f, const char *text,
                                                      const es_config_defaults *d)
{
    hooks_fixture_unload(f);
    if (!f->dir.path[0])
        tmpdir_make(&f->dir);
    f->cfg_path = tmpdir_mkstemp(&f->dir, text);
    memset(f->err, 0, sizeof f->err);
    if (es_config_load(&f->cfg, f->cfg_path, d, f->err, sizeof f->err) != 0)
        return -1;
    f->cfg_loaded = 1;
    memset(&f->h, 0, sizeof f->h);
    if (es_hooks_load(&f->h, &f->cfg, f->err, sizeof f->err) != 0)
        return -2;
    f->hooks_loaded = 1;
    return 0;
}

#endif
