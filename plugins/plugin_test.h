/*
 * plugin_test.h - a fake earshot host for plugin unit tests.
 *
 * A plugin's test includes this header and then the plugin's own source
 * file, and drives the plugin through its descriptor,
 * earshot_plugin_describe(), exactly as the core would: settings are
 * validated against the plugin's declarations and passed to init(), hooks
 * are called through the descriptor's pointers, destroy() ends it. The test
 * controls everything the host offers:
 *
 *   pt_clock          what host->now() answers (seconds; no real time passes)
 *   pt_log_text       every line the plugin logged, "LEVEL message\n" each
 *   pt_hash_calls     how often the plugin used host->hash
 *   pt_hash_constant  when set, host->hash answers one value for every key
 *   pt_live_blocks    heap blocks the plugin (and the test) hold right now
 *   pt_fail_in        fail the pt_fail_in-th allocation from now (0 = never)
 *
 * Allocation counting works by macros: malloc, calloc, realloc and free in
 * the plugin source included after this header are the counting versions.
 *
 * pt_check_shared_object() then checks that the built .so exports the same
 * descriptor, so the tested source and the shipped file cannot drift.
 */
#ifndef EARSHOT_PLUGIN_TEST_H
#define EARSHOT_PLUGIN_TEST_H

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "earshot/plugin.h"

/* Defined by EARSHOT_PLUGIN_DEFINE in the plugin source included next. */
const earshot_plugin *earshot_plugin_describe(void);

/* ---- counted allocations ------------------------------------------------- */

static long pt_live_blocks;
static long pt_fail_in;

static inline int pt_should_fail(void)
{
    if (pt_fail_in > 0 && --pt_fail_in == 0)
        return 1;
    return 0;
}

static inline void *pt_malloc(size_t n)
{
    void *p = pt_should_fail() ? NULL : malloc(n);
    pt_live_blocks += p != NULL;
    return p;
}

static inline void *pt_calloc(size_t n, size_t size)
{
    void *p = pt_should_fail() ? NULL : calloc(n, size);
    pt_live_blocks += p != NULL;
    return p;
}

static inline void *pt_realloc(void *old, size_t n)
{
    if (n == 0 || pt_should_fail())
        return NULL; /* the plugins never shrink to nothing */
    void *p = realloc(old, n);
    pt_live_blocks += p != NULL && old == NULL;
    return p;
}

static inline void pt_free(void *p)
{
    pt_live_blocks -= p != NULL;
    free(p);
}

#define malloc(n) pt_malloc(n)
#define calloc(n, size) pt_calloc((n), (size))
#define realloc(p, n) pt_realloc((p), (n))
#define free(p) pt_free(p)

/* ---- the fake host ------------------------------------------------------- */

static double pt_clock;
static char pt_log_text[8192];
static unsigned long pt_hash_calls;
static int pt_hash_constant;

static inline double pt_now(void) { return pt_clock; }

static inline void pt_log(const earshot_host *host, earshot_log_level level, const char *fmt,
                          ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    (void)host;
    size_t used = strlen(pt_log_text);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    snprintf(pt_log_text + used, sizeof pt_log_text - used, "%s %s\n",
             level <= EARSHOT_LOG_ERROR ? names[level] : "?", line);
}

/* A keyed FNV-1a: good enough to spread a test's keys, and countable. */
static inline uint64_t pt_hash(const void *data, size_t len)
{
    pt_hash_calls++;
    if (pt_hash_constant)
        return 0x5eed;
    const unsigned char *s = data;
    uint64_t h = 1469598103934665603ull ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The settings of one instance, as the core would hand them to init(). */
#define PT_MAX_SETTINGS 16
struct earshot_settings {
    const earshot_setting_def *defs;
    size_t count;
    struct {
        int64_t i;
        double d;
        int b;
        const char *s;
    } values[PT_MAX_SETTINGS];
};

static inline const earshot_setting_def *pt_find(const earshot_settings *s, const char *name,
                                                 earshot_setting_type type, size_t *index)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->defs[i].name, name) == 0 && s->defs[i].type == type) {
            *index = i;
            return &s->defs[i];
        }
    }
    return NULL;
}

static inline int64_t pt_setting_int(const earshot_settings *s, const char *name)
{
    size_t i;
    return pt_find(s, name, EARSHOT_SETTING_INT, &i) ? s->values[i].i : 0;
}

static inline double pt_setting_number(const earshot_settings *s, const char *name)
{
    size_t i;
    return pt_find(s, name, EARSHOT_SETTING_NUMBER, &i) ? s->values[i].d : 0.0;
}

static inline int pt_setting_bool(const earshot_settings *s, const char *name)
{
    size_t i;
    return pt_find(s, name, EARSHOT_SETTING_BOOL, &i) ? s->values[i].b : 0;
}

static inline const char *pt_setting_string(const earshot_settings *s, const char *name)
{
    size_t i;
    return pt_find(s, name, EARSHOT_SETTING_STRING, &i) ? s->values[i].s : "";
}

static const earshot_host pt_host = {
    .api_version = EARSHOT_PLUGIN_API_VERSION,
    .log = pt_log,
    .now = pt_now,
    .setting_int = pt_setting_int,
    .setting_number = pt_setting_number,
    .setting_bool = pt_setting_bool,
    .setting_string = pt_setting_string,
    .hash = pt_hash,
};

/* Every setting at its declared default. */
static inline void pt_settings_defaults(earshot_settings *s, const earshot_setting_def *defs)
{
    memset(s, 0, sizeof *s);
    s->defs = defs;
    while (defs && defs[s->count].name) {
        assert_true(s->count < PT_MAX_SETTINGS);
        s->values[s->count].i = defs[s->count].int_default;
        s->values[s->count].d = defs[s->count].num_default;
        s->values[s->count].b = defs[s->count].bool_default;
        s->values[s->count].s = defs[s->count].string_default ? defs[s->count].string_default : "";
        s->count++;
    }
}

/* Set a setting as a config entry would. Returns -1, as the core's
 * validation would refuse it, for an undeclared name, a wrong type or a
 * value out of the declared range; 0 when set. */
static inline int pt_set_int(earshot_settings *s, const char *name, int64_t v)
{
    size_t i;
    const earshot_setting_def *d = pt_find(s, name, EARSHOT_SETTING_INT, &i);
    if (!d || v < d->int_min || v > d->int_max)
        return -1;
    s->values[i].i = v;
    return 0;
}

static inline int pt_set_number(earshot_settings *s, const char *name, double v)
{
    size_t i;
    const earshot_setting_def *d = pt_find(s, name, EARSHOT_SETTING_NUMBER, &i);
    if (!d || !(v >= d->num_min && v <= d->num_max))
        return -1;
    s->values[i].d = v;
    return 0;
}

static inline int pt_set_string(earshot_settings *s, const char *name, const char *v)
{
    size_t i;
    if (!pt_find(s, name, EARSHOT_SETTING_STRING, &i))
        return -1;
    s->values[i].s = v;
    return 0;
}

/* Reset the host's observable state; call from each test's setup. */
static inline void pt_reset(void)
{
    pt_clock = 1000.0;
    pt_log_text[0] = '\0';
    pt_hash_calls = 0;
    pt_hash_constant = 0;
    pt_fail_in = 0;
}

/* init() through the descriptor: 0 and *state on success, else the error. */
static inline int pt_init(const earshot_settings *s, void **state, char *err, size_t errlen)
{
    const earshot_plugin *d = earshot_plugin_describe();
    err[0] = '\0';
    *state = NULL;
    return d->init ? d->init(&pt_host, s, state, err, errlen) : 0;
}

static inline earshot_client pt_client(const char *id, int32_t game, int32_t map, int32_t x,
                                       int32_t y, int32_t channel)
{
    return (earshot_client){.client_id = id,
                            .address = "127.0.0.1",
                            .pos = {.game_id = game, .map_id = map, .x = x, .y = y, .channel = channel}};
}

/* The built .so exports a descriptor naming the same plugin, version,
 * settings and hooks as the source this test compiled. */
static inline void pt_check_shared_object(const char *path)
{
    const earshot_plugin *mine = earshot_plugin_describe();
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so)
        fail_msg("dlopen %s: %s", path, dlerror());
    const earshot_plugin *(*describe)(void) = NULL;
    *(void **)&describe = dlsym(so, EARSHOT_PLUGIN_ENTRY);
    assert_non_null(describe);
    const earshot_plugin *d = describe();
    assert_ptr_not_equal(d, mine);
    assert_int_equal(d->api_version, EARSHOT_PLUGIN_API_VERSION);
    assert_int_equal(d->struct_size, sizeof(earshot_plugin));
    assert_string_equal(d->name, mine->name);
    assert_string_equal(d->version, mine->version);
    assert_string_equal(d->description, mine->description);
    size_t n = 0;
    while (mine->settings && mine->settings[n].name) {
        assert_string_equal(d->settings[n].name, mine->settings[n].name);
        assert_int_equal(d->settings[n].type, mine->settings[n].type);
        n++;
    }
    assert_true(mine->settings ? d->settings[n].name == NULL : d->settings == NULL);
#define PT_SAME_HOOK(h) assert_int_equal(d->h != NULL, mine->h != NULL)
    PT_SAME_HOOK(init);
    PT_SAME_HOOK(destroy);
    PT_SAME_HOOK(query_radius);
    PT_SAME_HOOK(on_join);
    PT_SAME_HOOK(on_position);
    PT_SAME_HOOK(match_filter);
    PT_SAME_HOOK(on_relay);
    PT_SAME_HOOK(on_leave);
    PT_SAME_HOOK(on_pair);
#undef PT_SAME_HOOK
    dlclose(so);
}

/* ---- the fixture every plugin test uses --------------------------------- */

/* One instance of the plugin under test, on the fake host, with its
 * declared defaults; teardown destroys it and checks that every block the
 * instance allocated was freed. */
typedef struct fixture {
    earshot_settings s;
    void *state;
    long blocks_before;
    char err[256];
} fixture;

static __attribute__((unused)) int setup(void **ctx)
{
    pt_reset();
    fixture *f = calloc(1, sizeof *f);
    pt_settings_defaults(&f->s, earshot_plugin_describe()->settings);
    f->blocks_before = pt_live_blocks;
    *ctx = f;
    return 0;
}

static __attribute__((unused)) int teardown(void **ctx)
{
    fixture *f = *ctx;
    if (f->state)
        earshot_plugin_describe()->destroy(f->state);
    assert_int_equal(pt_live_blocks, f->blocks_before); /* destroy freed everything */
    free(f);
    return 0;
}

static __attribute__((unused)) void start(fixture *f)
{
    assert_int_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_non_null(f->state);
}

#endif /* EARSHOT_PLUGIN_TEST_H */
