/*
 * config_fixture.h - a config file written to a temporary folder and
 * loaded, for the tests of one group of keys (cmocka setup/teardown).
 */
#ifndef EARSHOT_TEST_CONFIG_FIXTURE_H
#define EARSHOT_TEST_CONFIG_FIXTURE_H

#include "config.h"
#include "helpers.h"

typedef struct cfx {
    tmpdir dir;
    es_config cfg;
    int loaded;
    char err[2048];
} cfx;

static __attribute__((unused)) int cfx_setup(void **state)
{
    cfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    tmpdir_make(&f->dir);
    *state = f;
    return 0;
}

static __attribute__((unused)) int cfx_teardown(void **state)
{
    cfx *f = *state;
    if (f->loaded)
        es_config_free(&f->cfg);
    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

/* Load text as test.cfg; returns its path, or fails the test when the
 * outcome (want_ok) differs. */
static __attribute__((unused)) const char *load_cfg(cfx *f, const char *text, int want_ok)
{
    if (f->loaded)
        es_config_free(&f->cfg);
    f->loaded = 0;
    const char *path = tmpdir_write(&f->dir, "test.cfg", text);
    int rc = es_config_load(&f->cfg, path, NULL, f->err, sizeof f->err);
    if (want_ok && rc != 0)
        fail_msg("config refused: %s\n%s", f->err, text);
    if (!want_ok && rc == 0)
        fail_msg("config accepted:\n%s", text);
    f->loaded = rc == 0;
    return path;
}

#define CF cfx *f = *cm_state_

#endif
