/*
 * test_hooks - loading plugins into hook chains and running the chains,
 * with the real stock plugins and the test plugins of tests/plugins.
 */
#include "helpers.h"

#include <dlfcn.h>
#include <time.h>

#include "config.h"
#include "hooks.h"
#include "log.h"
#include "moderation.h"

/* ---- fixture ------------------------------------------------------------- */

typedef hooks_fixture fx;

static int setup(void **state)
{
    es_log_set_level(EARSHOT_LOG_ERROR);
    return (*state = calloc(1, sizeof(fx))) ? 0 : -1;
}

static int teardown(void **state)
{
    hooks_fixture_free(*state);
    free(*state);
    return 0;
}

#define F fx *f = *cm_state_

static const char *plugin_dir(void) { return env_dir("EARSHOT_PLUGIN_DIR"); }

static const char *test_plugin(const char *name)
{
    return fmt("%s/%s.so", env_dir("EARSHOT_TEST_PLUGIN_DIR"), name);
}

/* Write the config (hooks = ( <entries> );) and load it and its hooks.
 * Returns the es_hooks_load result; the config itself must load. */
static int try_load(fx *f, const char *entries)
{
    const char *text = fmt("plugin_dir = \"%s\";\nhooks = (\n%s\n);\n", plugin_dir(), entries);
    int rc = hooks_fixture_load(f, text, NULL);
    if (rc == -1)
        fail_msg("config: %s\n%s", f->err, text);
    return rc == 0 ? 0 : -1;
}

static void load_ok(fx *f, const char *entries)
{
    if (try_load(f, entries) != 0)
        fail_msg("hooks failed to load: %s\n%s", f->err, entries);
}

/* Must fail with an error starting "<cfg>:<line>: "; returns the rest. */
static const char *load_fails(fx *f, const char *entries, int line)
{
    if (try_load(f, entries) == 0)
        fail_msg("hooks loaded although they must fail:\n%s", entries);
    /* everything loaded so far is undone */
    assert_int_equal(f->h.nlinks, 0);
    assert_null(f->h.links);
    const char *prefix = fmt("%s:%d: ", f->cfg_path, line);
    assert_starts_with(f->err, prefix);
    return f->err + strlen(prefix);
}

/* An entry for the plugin at path so (line 1 of its own text). */
static const char *plugin_at(const char *name, const char *so)
{
    return fmt("{ type = \"plugin\"; name = \"%s\"; path = \"%s\"; }", name, so);
}

/* A scripted entry (line 1 of its own text). */
static const char *scripted(const char *name, const char *settings)
{
    return fmt("{ type = \"plugin\"; name = \"%s\"; path = \"%s\"; settings = { %s }; }", name,
               test_plugin("scripted"), settings);
}

static const char *proximity(const char *settings)
{
    return fmt("{ type = \"plugin\"; name = \"proximity\"; settings = { %s }; }", settings);
}

static const char *relay_guard(const char *settings)
{
    return fmt("{ type = \"plugin\"; name = \"relay_guard\"; settings = { %s }; }", settings);
}

static unsigned long *scripted_calls(fx *f)
{
    for (size_t i = 0; i < f->h.nlinks; i++) {
        if (strcmp(f->h.links[i].desc->name, "scripted") == 0) {
            unsigned long *c = dlsym(f->h.links[i].dl, "scripted_calls");
            assert_non_null(c);
            return c;
        }
    }
    fail_msg("no scripted link loaded");
    return NULL;
}

static earshot_client client(const char *id, int32_t map, int32_t x, int32_t y)
{
    return (earshot_client){.client_id = id, .address = "127.0.0.1",
                            .pos = {.map_id = map, .x = x, .y = y}};
}

static int join(fx *f, const char *id, char *reason)
{
    earshot_join j = {.client_id = id, .address = "127.0.0.1", .path = "/", .query = ""};
    return es_hooks_join(&f->h, &j, reason);
}

static int relay(fx *f, const earshot_client *from, const earshot_client *to, int matched,
                 earshot_relay_kind kind, char *reason)
{
    earshot_relay r = {.kind = kind, .sender = from, .target = to, .payload = "p",
                       .payload_len = 1, .matched = matched};
    return es_hooks_relay(&f->h, &r, reason);
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- loading ------------------------------------------------------------- */

TEST(t_stock_config_loads)
{
    F;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config/earshot.cfg", env_dir("EARSHOT_SOURCE_DIR"));
    es_config_defaults d = {.plugin_dir = plugin_dir()};
    if (es_config_load(&f->cfg, path, &d, f->err, sizeof f->err) != 0)
        fail_msg("%s", f->err);
    f->cfg_loaded = 1;
    if (es_hooks_load(&f->h, &f->cfg, f->err, sizeof f->err) != 0)
        fail_msg("%s", f->err);
    f->hooks_loaded = 1;
    assert_int_equal(f->h.nlinks, 2);
    assert_string_equal(f->h.links[0].name, "relay_guard");
    assert_string_equal(f->h.links[1].name, "proximity");
    assert_string_equal(f->h.links[0].desc->name, "relay_guard");
    assert_string_equal(f->h.links[1].desc->name, "proximity");
    assert_int_equal(f->h.chain_len[ES_HOOK_JOIN], 0);
    assert_int_equal(f->h.chain_len[ES_HOOK_POSITION], 0);
    assert_int_equal(f->h.chain_len[ES_HOOK_MATCH], 1);
    assert_int_equal(f->h.chain_len[ES_HOOK_RELAY], 1);
    assert_int_equal(f->h.chain_len[ES_HOOK_LEAVE], 0);
    assert_int_equal(f->h.chain_len[ES_HOOK_PAIR], 1);
    assert_ptr_equal(f->h.chain[ES_HOOK_MATCH][0], &f->h.links[1]);
    assert_ptr_equal(f->h.chain[ES_HOOK_RELAY][0], &f->h.links[0]);
    assert_ptr_equal(f->h.chain[ES_HOOK_PAIR][0], &f->h.links[0]);
    assert_int_equal(f->h.query_radius, 25);
    assert_int_equal(f->h.links[1].query_radius, 25);
    assert_int_equal(f->h.links[0].query_radius, 0);
}

TEST(t_no_hooks)
{
    F;
    load_ok(f, "");
    assert_int_equal(f->h.nlinks, 0);
    assert_int_equal(f->h.query_radius, 0);
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(join(f, "a", reason), 1);
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    earshot_position p = a.pos;
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 1);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0); /* no filter: nobody matches */
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 1);
    es_hooks_leave(&f->h, &a, EARSHOT_LEAVE_CLOSED);
    es_hooks_pair(&f->h, &a, &b, 1);
}

TEST(t_bad_abi_refused)
{
    F;
    const char *so = test_plugin("bad_abi");
    const char *rest = load_fails(f, plugin_at("old", so), 3);
    assert_contains(rest, "plugin API version 999");
    assert_string_equal(rest, fmt("plugin 'old' (%s) was built for plugin API version 999, this "
                                  "earshot has version 1: rebuild it against this earshot's "
                                  "earshot/plugin.h", so));
}

TEST(t_no_entry_refused)
{
    F;
    const char *so = test_plugin("no_entry");
    const char *rest = load_fails(f, plugin_at("x", so), 3);
    assert_contains(rest, "earshot_plugin_describe");
    assert_string_equal(rest, fmt("%s is not an earshot plugin: it has no symbol "
                                  "earshot_plugin_describe", so));
}

TEST(t_null_descriptor_refused)
{
    F;
    const char *so = test_plugin("null_entry");
    const char *rest = load_fails(f, plugin_at("x", so), 3);
    assert_string_equal(rest, fmt("%s: earshot_plugin_describe returned NULL", so));
}

TEST(t_descriptor_smaller_than_the_first_abi_refused)
{
    F;
    const char *so = test_plugin("small_abi");
    const char *rest = load_fails(f, plugin_at("tiny", so), 3);
    assert_string_equal(rest, fmt("plugin 'tiny' (%s) has a descriptor of %zu bytes, at least %zu "
                                  "expected: rebuild it against this earshot's earshot/plugin.h",
                                  so, offsetof(earshot_plugin, on_leave),
                                  (size_t)EARSHOT_PLUGIN_MIN_SIZE));
}

/*
 * old_abi.so is laid out as the first ABI (its descriptor ends after
 * on_leave) and followed in memory by non-NULL pointers where on_pair and
 * later hooks would be: it loads, its own hooks run, and nothing past its
 * struct_size is taken for a hook.
 */
TEST(t_first_abi_plugin_has_no_appended_hooks)
{
    F;
    load_ok(f, plugin_at("old", test_plugin("old_abi")));
    es_link *l = &f->h.links[0];
    assert_int_equal(l->desc->struct_size, EARSHOT_PLUGIN_MIN_SIZE);
    assert_int_equal(EARSHOT_PLUGIN_MIN_SIZE, offsetof(earshot_plugin, on_pair));
    static const size_t want[ES_HOOK_COUNT] = {[ES_HOOK_JOIN] = 1, [ES_HOOK_LEAVE] = 1};
    for (int id = 0; id < ES_HOOK_COUNT; id++)
        if (f->h.chain_len[id] != want[id])
            fail_msg("the %s chain has %zu links, expected %zu", es_hook_table[id].name,
                     f->h.chain_len[id], want[id]);
    unsigned long *leaves = dlsym(l->dl, "old_abi_leaves");
    unsigned long *stray = dlsym(l->dl, "old_abi_stray_calls");
    assert_non_null(leaves);
    assert_non_null(stray);

    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(join(f, "a", reason), 0);
    assert_string_equal(reason, "old abi");
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    es_hooks_leave(&f->h, &a, EARSHOT_LEAVE_CLOSED);
    assert_int_equal(*leaves, 1);
    es_hooks_pair(&f->h, &a, &b, 1);
    es_hooks_pair(&f->h, &a, &b, 0);
    es_hooks_tick(&f->h, 0.0);
    es_hooks_tick(&f->h, 100.0);
    assert_int_equal(*stray, 0);
    assert_int_equal(l->calls, 2);
}

/* on_tick runs once its declared interval (scripted: 0.5 s) has passed on
 * the clock the core gives, first at the first tick; the core ticks every
 * 0.1 s. */
TEST(t_tick_runs_at_its_interval)
{
    F;
    load_ok(f, scripted("s", ""));
    assert_int_equal(f->h.chain_len[ES_HOOK_TICK], 1);
    assert_true(f->h.links[0].tick_interval == 0.5);
    unsigned long *calls = scripted_calls(f);
    unsigned long before = calls[6];
    for (int i = 0; i <= 20; i++) /* 0.0, 0.1, ... 2.0 s */
        es_hooks_tick(&f->h, 1000.0 + i / 10.0);
    assert_int_equal(calls[6] - before, 5); /* at 0, 0.5, 1.0, 1.5, 2.0 */
    /* a late tick is not made up */
    es_hooks_tick(&f->h, 1010.0);
    es_hooks_tick(&f->h, 1010.1);
    assert_int_equal(calls[6] - before, 6);
    assert_int_equal(f->h.links[0].calls, 6);
}

/* Reload f's hooks from entries into cfg and h, keeping what may be kept. */
static int reload(fx *f, const char *entries, es_config *cfg, es_hooks *h)
{
    const char *text = fmt("plugin_dir = \"%s\";\nhooks = (\n%s\n);\n", plugin_dir(), entries);
    const char *path = tmpdir_mkstemp(&f->dir, text);
    if (es_config_load(cfg, path, NULL, f->err, sizeof f->err) != 0)
        fail_msg("config: %s", f->err);
    memset(h, 0, sizeof *h);
    return es_hooks_reload(h, cfg, &f->h, f->err, sizeof f->err);
}

static int relayed(es_hooks *h, const earshot_client *from, const earshot_client *to)
{
    char reason[ES_ERROR_MAX];
    earshot_relay r = {.kind = EARSHOT_RELAY_OFFER, .sender = from, .target = to, .payload = "p",
                       .payload_len = 1, .matched = 0};
    return es_hooks_relay(h, &r, reason);
}

/* A reload with relay_guard's settings unchanged keeps its instance, and so
 * the pairs it remembers; changed settings start it afresh. */
TEST(t_reload_keeps_unchanged_instances)
{
    F;
    load_ok(f, fmt("%s,\n%s", relay_guard("grace = 30.0;"), scripted("s", "")));
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    es_hooks_pair(&f->h, &a, &b, 1);
    es_hooks_pair(&f->h, &a, &b, 0); /* parted: relays pass for 30 s */
    assert_int_equal(relayed(&f->h, &a, &b), 1);
    void *guard_state = f->h.links[0].state, *scripted_state = f->h.links[1].state;

    es_config cfg2;
    es_hooks h2;
    assert_int_equal(reload(f, fmt("%s,\n%s", relay_guard("grace = 30.0;"),
                                   scripted("s", "join = \"deny\";")), &cfg2, &h2), 0);
    assert_ptr_equal(h2.links[0].state, guard_state); /* kept */
    assert_ptr_not_equal(h2.links[1].state, scripted_state); /* new settings, new instance */
    assert_ptr_equal(h2.links[0].host->host_data, &h2.links[0]);
    hooks_fixture_unload(f); /* the running set goes: the kept instance stays */
    assert_int_equal(relayed(&h2, &a, &b), 1);

    /* grace changed: a fresh relay_guard, which never saw a and b part */
    es_config cfg3;
    es_hooks h3;
    const char *text = fmt("plugin_dir = \"%s\";\nhooks = (\n%s\n);\n", plugin_dir(),
                           relay_guard("grace = 31.0;"));
    assert_int_equal(es_config_load(&cfg3, tmpdir_mkstemp(&f->dir, text), NULL, f->err,
                                    sizeof f->err), 0);
    assert_int_equal(es_hooks_reload(&h3, &cfg3, &h2, f->err, sizeof f->err), 0);
    assert_ptr_not_equal(h3.links[0].state, guard_state);
    es_hooks_unload(&h2);
    es_config_free(&cfg2);
    assert_int_equal(relayed(&h3, &a, &b), 0);
    es_hooks_unload(&h3);
    es_config_free(&cfg3);
}

/* A reload that fails leaves the running instances as they were. */
TEST(t_failed_reload_gives_instances_back)
{
    F;
    load_ok(f, relay_guard("grace = 30.0;"));
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    es_hooks_pair(&f->h, &a, &b, 1);
    es_hooks_pair(&f->h, &a, &b, 0);
    void *guard_state = f->h.links[0].state;
    es_config cfg2;
    es_hooks h2;
    assert_int_equal(reload(f, fmt("%s,\n%s", relay_guard("grace = 30.0;"),
                                   plugin_at("db", test_plugin("failing_init"))), &cfg2, &h2), -1);
    es_config_free(&cfg2);
    assert_ptr_equal(f->h.links[0].state, guard_state);
    assert_ptr_equal(f->h.links[0].host->host_data, &f->h.links[0]);
    assert_int_equal(relayed(&f->h, &a, &b), 1);
}

TEST(t_failing_init_refused)
{
    F;
    const char *rest = load_fails(f, plugin_at("db", test_plugin("failing_init")), 3);
    assert_string_equal(rest, "plugin 'db' failed to start: database unreachable");
}

TEST(t_missing_so_refused)
{
    F;
    const char *rest = load_fails(f, "{ type = \"plugin\"; name = \"ghost\"; }", 3);
    assert_starts_with(rest, "cannot load plugin 'ghost': ");
    assert_contains(rest, fmt("%s/ghost.so", plugin_dir()));
}

TEST(t_failure_names_the_failing_entry_line)
{
    F;
    /* two good entries first: the error names line 5 and undoes them */
    const char *rest = load_fails(
        f,
        fmt("%s,\n%s,\n%s", relay_guard(""), proximity(""),
            plugin_at("db", test_plugin("failing_init"))),
        5);
    assert_string_equal(rest, "plugin 'db' failed to start: database unreachable");
}

TEST(t_unknown_setting_refused_with_line)
{
    F;
    const char *rest = load_fails(f,
                                  "{\n"
                                  "  type = \"plugin\";\n"
                                  "  name = \"proximity\";\n"
                                  "  settings = {\n"
                                  "    radius = 20;\n"
                                  "    radios = 20;\n"
                                  "  };\n"
                                  "}",
                                  8);
    assert_string_equal(rest, "plugin 'proximity' has no setting 'radios'");
}

TEST(t_setting_for_plugin_without_settings)
{
    F;
    const char *rest = load_fails(
        f, fmt("{ type = \"plugin\"; name = \"db\"; path = \"%s\";\n  settings = { x = 1; }; }",
               test_plugin("failing_init")),
        4);
    assert_string_equal(rest, "plugin 'db' has no setting 'x'");
}

TEST(t_setting_type_and_range_checked)
{
    F;
    const struct {
        const char *entry, *error;
    } cases[] = {
        {proximity("radius = \"20\";"),
         "'radius' must be an integer (distance at which two clients match)"},
        {proximity("radius = 2.5;"), "'radius' must be an integer (distance at which two clients match)"},
        {proximity("radius = -1;"), "'radius' must be between 0 and 2147483647 (got -1)"},
        {proximity("leave_radius = 2147483648L;"),
         "'leave_radius' must be between 0 and 2147483647 (got 2147483648)"},
        {relay_guard("grace = \"30\";"),
         "'grace' must be a number (seconds a parted pair may still exchange relays)"},
        {relay_guard("grace = -0.5;"), "'grace' must be between 0 and 86400 (got -0.5)"},
        {scripted("s", "join = 5;"), "'join' must be a string"},
        {scripted("s", "shift = 1001;"), "'shift' must be between -1000 and 1000 (got 1001)"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++)
        assert_string_equal(load_fails(f, cases[i].entry, 3), cases[i].error);
}

TEST(t_integer_accepted_for_number_setting)
{
    F;
    load_ok(f, relay_guard("grace = 3;"));
    es_link *l = &f->h.links[0];
    assert_true(l->host->setting_number(&l->settings, "grace") == 3.0);
}

TEST(t_leave_radius_below_radius_refused)
{
    F;
    assert_string_equal(load_fails(f, proximity("radius = 20; leave_radius = 10;"), 3),
                        "plugin 'proximity' failed to start: leave_radius (10) must be at least "
                        "radius (20)");
    load_ok(f, proximity("radius = 20; leave_radius = 20;"));
    assert_int_equal(f->h.query_radius, 20);
}

TEST(t_scripted_rejects_bad_verdict)
{
    F;
    assert_string_equal(load_fails(f, scripted("s", "join = \"maybe\";"), 3),
                        "plugin 's' failed to start: verdicts are pass, allow or deny");
}

TEST(t_disabled_entries_not_loaded)
{
    F;
    load_ok(f, fmt("{ type = \"plugin\"; name = \"db\"; enabled = false; path = \"%s\"; },\n"
                   "{ type = \"plugin\"; name = \"ghost\"; enabled = false; },\n"
                   "{ type = \"plugin\"; name = \"old\"; enabled = false; path = \"%s\";\n"
                   "  settings = { nonsense = 1; }; },\n"
                   "%s",
                   test_plugin("failing_init"), test_plugin("bad_abi"), proximity("")));
    assert_int_equal(f->h.nlinks, 1);
    assert_string_equal(f->h.links[0].name, "proximity");
    assert_int_equal(f->h.chain_len[ES_HOOK_MATCH], 1);
}

TEST(t_chain_order_is_config_order)
{
    F;
    load_ok(f, fmt("%s,\n%s,\n%s", scripted("s1", ""), proximity(""), scripted("s2", "")));
    assert_int_equal(f->h.nlinks, 3);
    assert_string_equal(f->h.links[0].name, "s1");
    assert_string_equal(f->h.links[1].name, "proximity");
    assert_string_equal(f->h.links[2].name, "s2");
    assert_int_equal(f->h.chain_len[ES_HOOK_JOIN], 2);
    assert_ptr_equal(f->h.chain[ES_HOOK_JOIN][0], &f->h.links[0]);
    assert_ptr_equal(f->h.chain[ES_HOOK_JOIN][1], &f->h.links[2]);
    assert_int_equal(f->h.chain_len[ES_HOOK_MATCH], 3);
    assert_ptr_equal(f->h.chain[ES_HOOK_MATCH][0], &f->h.links[0]);
    assert_ptr_equal(f->h.chain[ES_HOOK_MATCH][1], &f->h.links[1]);
    assert_ptr_equal(f->h.chain[ES_HOOK_MATCH][2], &f->h.links[2]);
    assert_int_equal(f->h.chain_len[ES_HOOK_PAIR], 2);
}

/* ---- chain semantics ------------------------------------------------------ */

TEST(t_all_pass_gives_defaults)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""), scripted("s2", "")));
    unsigned long *calls = scripted_calls(f);
    unsigned long before[6];
    memcpy(before, calls, sizeof before);
    char reason[ES_ERROR_MAX] = "untouched";
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    earshot_position p = {.map_id = 1, .x = 7, .y = 8};
    assert_int_equal(join(f, "a", reason), 1);
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 1);
    assert_int_equal(p.x, 7);
    assert_int_equal(p.y, 8);
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 1);
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_ICE_CANDIDATE, reason), 1);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0); /* all pass: no match */
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    assert_string_equal(reason, "untouched");
    assert_int_equal(calls[0] - before[0], 2);
    assert_int_equal(calls[1] - before[1], 2);
    assert_int_equal(calls[2] - before[2], 4);
    assert_int_equal(calls[3] - before[3], 4);
}

TEST(t_join_pass_then_deny_uses_second_reason)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""),
                   scripted("s2", "join = \"deny\"; reason = \"banned here\";")));
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(join(f, "a", reason), 0);
    assert_string_equal(reason, "banned here");
}

TEST(t_join_allow_then_deny_allows)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", "join = \"allow\";"),
                   scripted("s2", "join = \"deny\"; reason = \"no\";")));
    char reason[ES_ERROR_MAX] = "";
    unsigned long before = scripted_calls(f)[0];
    assert_int_equal(join(f, "a", reason), 1);
    /* the first decider ends the chain: s2 is never asked */
    assert_int_equal(scripted_calls(f)[0], before + 1);
    assert_int_equal(f->h.links[0].calls, 1);
    assert_int_equal(f->h.links[1].calls, 0);
}

TEST(t_join_deny_default_reason)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", "join = \"deny\";"), scripted("s2", "join = \"allow\";")));
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(join(f, "a", reason), 0);
    assert_string_equal(reason, "join refused");
    assert_int_equal(f->h.links[1].calls, 0);
}

TEST(t_position_chain)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""),
                   scripted("s2", "position = \"deny\"; reason = \"out of bounds\";")));
    char reason[ES_ERROR_MAX] = "";
    earshot_client a = client("a", 1, 0, 0);
    earshot_position p = a.pos;
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 0);
    assert_string_equal(reason, "out of bounds");

    load_ok(f, fmt("%s,\n%s", scripted("s1", "position = \"deny\";"), scripted("s2", "")));
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 0);
    assert_string_equal(reason, "position refused");

    load_ok(f, fmt("%s,\n%s", scripted("s1", "position = \"allow\";"),
                   scripted("s2", "position = \"deny\";")));
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 1);
}

TEST(t_position_shift_adjusts)
{
    F;
    load_ok(f, fmt("%s,\n%s", scripted("s1", "position = \"shift\"; shift = 5;"),
                   scripted("s2", "position = \"shift\"; shift = -2;")));
    char reason[ES_ERROR_MAX] = "";
    earshot_client a = client("a", 1, 100, 50);
    earshot_position p = {.map_id = 1, .x = 10, .y = 20};
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 1);
    assert_int_equal(p.x, 13);
    assert_int_equal(p.y, 20);
    assert_int_equal(p.map_id, 1);

    /* a shift followed by a deny: refused, whatever the shift did */
    load_ok(f, fmt("%s,\n%s", scripted("s1", "position = \"shift\"; shift = 5;"),
                   scripted("s2", "position = \"deny\"; reason = \"too fast\";")));
    p = (earshot_position){.map_id = 1, .x = 10};
    assert_int_equal(es_hooks_position(&f->h, &a, &p, reason), 0);
    assert_string_equal(reason, "too fast");
}

TEST(t_relay_chain)
{
    F;
    earshot_client a = client("alice", 1, 0, 0), b = client("bob", 1, 0, 0);
    char reason[ES_ERROR_MAX] = "";
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""), scripted("s2", "relay = \"deny\";")));
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_OFFER, reason), 0);
    assert_string_equal(reason, "relay to bob not allowed");
    assert_int_equal(relay(f, &b, &a, 1, EARSHOT_RELAY_ANSWER, reason), 0);
    assert_string_equal(reason, "relay to alice not allowed");

    load_ok(f, fmt("%s,\n%s", scripted("s1", "relay = \"deny\"; reason = \"quiet hours\";"),
                   scripted("s2", "relay = \"allow\";")));
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_ICE_CANDIDATE, reason), 0);
    assert_string_equal(reason, "quiet hours");

    load_ok(f, fmt("%s,\n%s", scripted("s1", "relay = \"allow\";"), scripted("s2", "relay = \"deny\";")));
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 1);
}

TEST(t_match_chain)
{
    F;
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 500, 0);
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""), scripted("s2", "match = \"allow\";")));
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
    load_ok(f, fmt("%s,\n%s", scripted("s1", "match = \"deny\";"), scripted("s2", "match = \"allow\";")));
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0);
    load_ok(f, fmt("%s,\n%s", scripted("s1", "match = \"allow\";"), scripted("s2", "match = \"deny\";")));
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 1);
    /* a pass-through link ahead of proximity leaves the decision to it */
    load_ok(f, fmt("%s,\n%s", scripted("s1", ""), proximity("")));
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0);
    b.pos.x = 3;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
}

TEST(t_leave_and_pair_reach_every_link)
{
    F;
    load_ok(f, fmt("%s,\n%s,\n%s", scripted("s1", "join = \"deny\";"), proximity(""),
                   scripted("s2", "join = \"allow\";")));
    unsigned long *calls = scripted_calls(f);
    unsigned long leave0 = calls[4], pair0 = calls[5];
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    es_hooks_leave(&f->h, &a, EARSHOT_LEAVE_TIMEOUT);
    es_hooks_pair(&f->h, &a, &b, 1);
    es_hooks_pair(&f->h, &a, &b, 0);
    assert_int_equal(calls[4], leave0 + 2);
    assert_int_equal(calls[5], pair0 + 4);
    assert_int_equal(f->h.links[0].calls, 3);
    assert_int_equal(f->h.links[1].calls, 0); /* proximity has neither hook */
    assert_int_equal(f->h.links[2].calls, 3);
}

TEST(t_query_radius_is_the_largest)
{
    F;
    load_ok(f, fmt("%s,\n%s,\n%s", scripted("s1", "radius = 10;"), proximity(""),
                   scripted("s2", "radius = 40;")));
    assert_int_equal(f->h.query_radius, 40);
    assert_int_equal(f->h.links[0].query_radius, 10);
    assert_int_equal(f->h.links[1].query_radius, 25);
    assert_int_equal(f->h.links[2].query_radius, 40);
    load_ok(f, fmt("%s,\n%s", scripted("s1", "radius = 10;"), proximity("leave_radius = 30;")));
    assert_int_equal(f->h.query_radius, 30);
    load_ok(f, fmt("%s,\n%s", proximity("radius = 5; leave_radius = 7;"), scripted("s1", "radius = 3;")));
    assert_int_equal(f->h.query_radius, 7);
}

/* ---- proximity --------------------------------------------------------------- */

TEST(t_proximity_exact_distance)
{
    F;
    load_ok(f, proximity(""));
    earshot_client a = client("a", 1, 0, 0);
    struct {
        int32_t x, y;
        int matched, want;
    } cases[] = {
        {20, 0, 0, 1},  {0, 20, 0, 1},  {-20, 0, 0, 1}, {20, 1, 0, 0},  {12, 16, 0, 1},
        {13, 16, 0, 0}, {21, 0, 0, 0},  {0, 0, 0, 1},   {14, 14, 0, 1}, {15, 14, 0, 0},
        /* hysteresis: matched pairs stay within 25 */
        {24, 0, 1, 1},  {25, 0, 1, 1},  {26, 0, 1, 0},  {25, 1, 1, 0},  {15, 20, 1, 1},
        {-15, -20, 1, 1}, {16, 20, 1, 0}, {25, 0, 0, 0}, {21, 0, 1, 1},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++) {
        earshot_client b = client("b", 1, cases[i].x, cases[i].y);
        int got = es_hooks_match(&f->h, &a, &b, cases[i].matched);
        if (got != cases[i].want)
            fail_msg("(%d,%d) matched=%d: got %d want %d", cases[i].x, cases[i].y,
                     cases[i].matched, got, cases[i].want);
        /* symmetric */
        assert_int_equal(es_hooks_match(&f->h, &b, &a, cases[i].matched), cases[i].want);
    }
}

TEST(t_proximity_same_game_map_channel_only)
{
    F;
    load_ok(f, proximity(""));
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
    b.pos.map_id = 2;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    b.pos.map_id = 1;
    b.pos.channel = 1;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    b.pos.channel = 0;
    b.pos.game_id = -1;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    a.pos.game_id = -1;
    a.pos.channel = 9;
    b.pos.channel = 9;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
}

TEST(t_proximity_int32_extremes)
{
    F;
    load_ok(f, proximity(""));
    earshot_client a = client("a", 1, INT32_MIN, INT32_MIN);
    earshot_client b = client("b", 1, INT32_MAX, INT32_MAX);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    a.pos.y = 0;
    b.pos.y = 0;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 1), 0);
    a = client("a", 1, INT32_MAX, INT32_MAX);
    b = client("b", 1, INT32_MAX - 12, INT32_MAX - 16);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
    a = client("a", 1, INT32_MIN, INT32_MIN);
    b = client("b", 1, INT32_MIN + 20, INT32_MIN);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
    b.pos.x = INT32_MIN + 21;
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0);
}

TEST(t_proximity_huge_radius)
{
    F;
    load_ok(f, proximity("radius = 2147483647; leave_radius = 2147483647;"));
    assert_int_equal(f->h.query_radius, INT32_MAX);
    earshot_client a = client("a", 1, 0, 0);
    earshot_client b = client("b", 1, INT32_MAX, 0);
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 1);
    b.pos.y = 1; /* just past the radius */
    assert_int_equal(es_hooks_match(&f->h, &a, &b, 0), 0);
    earshot_client c = client("c", 1, INT32_MIN, 0);
    assert_int_equal(es_hooks_match(&f->h, &c, &b, 1), 0);
}

TEST(t_proximity_zero_radius)
{
    F;
    load_ok(f, proximity("radius = 0; leave_radius = 0;"));
    /* only the same spot matches, matched before or not */
    static const struct {
        int32_t x;
        int matched, want;
    } cases[] = {{5, 0, 1}, {6, 1, 0}};
    earshot_client a = client("a", 1, 5, 5);
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++) {
        earshot_client b = client("b", 1, cases[i].x, 5);
        assert_int_equal(es_hooks_match(&f->h, &a, &b, cases[i].matched), cases[i].want);
    }
}

/* ---- relay_guard --------------------------------------------------------------- */

/* relay_guard with settings, and a pair a, b that was matched and parted. */
static void load_parted_pair(fx *f, const char *settings, earshot_client *a, earshot_client *b)
{
    load_ok(f, relay_guard(settings));
    *a = client("a", 1, 0, 0);
    *b = client("b", 1, 0, 0);
    es_hooks_pair(&f->h, a, b, 1);
    es_hooks_pair(&f->h, a, b, 0);
}

TEST(t_relay_guard_matched_allowed)
{
    F;
    load_ok(f, relay_guard(""));
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    char reason[ES_ERROR_MAX] = "";
    es_hooks_pair(&f->h, &a, &b, 1);
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_OFFER, reason), 1);
    assert_int_equal(relay(f, &b, &a, 1, EARSHOT_RELAY_ANSWER, reason), 1);
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_ICE_CANDIDATE, reason), 1);
}

TEST(t_relay_guard_never_matched_denied)
{
    F;
    load_ok(f, relay_guard(""));
    earshot_client a = client("a", 1, 0, 0), b = client("bob-2", 1, 900, 0);
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 0);
    assert_string_equal(reason, "relay to bob-2 not allowed");
    assert_int_equal(relay(f, &b, &a, 0, EARSHOT_RELAY_ANSWER, reason), 0);
    assert_string_equal(reason, "relay to a not allowed");
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_ICE_CANDIDATE, reason), 0);
}

TEST(t_relay_guard_parted_pair_is_per_pair)
{
    F;
    earshot_client a, b, c = client("c", 1, 0, 0);
    load_parted_pair(f, "", &a, &b);
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 1);
    assert_int_equal(relay(f, &b, &a, 0, EARSHOT_RELAY_ANSWER, reason), 1); /* either direction */
    assert_int_equal(relay(f, &a, &c, 0, EARSHOT_RELAY_OFFER, reason), 0);  /* other pair */
    assert_string_equal(reason, "relay to c not allowed");
    assert_int_equal(relay(f, &c, &b, 0, EARSHOT_RELAY_OFFER, reason), 0);
}

TEST(t_relay_guard_grace_expires)
{
    F;
    earshot_client a, b;
    load_parted_pair(f, "grace = 0.2;", &a, &b);
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 1); /* at 0 s */
    sleep_seconds(0.6);
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 0); /* at 0.6 s */
    assert_string_equal(reason, "relay to b not allowed");
    assert_int_equal(relay(f, &b, &a, 0, EARSHOT_RELAY_ICE_CANDIDATE, reason), 0);
    /* matched again: allowed again */
    es_hooks_pair(&f->h, &a, &b, 1);
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_OFFER, reason), 1);
}

TEST(t_relay_guard_zero_grace)
{
    F;
    earshot_client a, b;
    load_parted_pair(f, "grace = 0;", &a, &b);
    char reason[ES_ERROR_MAX] = "";
    assert_int_equal(relay(f, &a, &b, 0, EARSHOT_RELAY_OFFER, reason), 0);
}

TEST(t_relay_guard_passes_so_later_links_decide)
{
    F;
    load_ok(f, fmt("%s,\n%s", relay_guard(""), scripted("s", "relay = \"deny\"; reason = \"later\";")));
    earshot_client a = client("a", 1, 0, 0), b = client("b", 1, 0, 0);
    char reason[ES_ERROR_MAX] = "";
    es_hooks_pair(&f->h, &a, &b, 1);
    assert_int_equal(relay(f, &a, &b, 1, EARSHOT_RELAY_OFFER, reason), 0);
    assert_string_equal(reason, "later");
}

TEST(t_relay_guard_many_parted_pairs)
{
    /* more parted pairs than its initial table: every one still remembered */
    F;
    load_ok(f, relay_guard(""));
    char ids[600][8];
    for (int i = 0; i < 600; i++)
        snprintf(ids[i], sizeof ids[i], "p%d", i);
    earshot_client hub = client("hub", 1, 0, 0);
    for (int i = 0; i < 600; i++) {
        earshot_client o = client(ids[i], 1, 0, 0);
        es_hooks_pair(&f->h, &hub, &o, 1);
        es_hooks_pair(&f->h, &hub, &o, 0);
    }
    char reason[ES_ERROR_MAX] = "";
    for (int i = 0; i < 600; i++) {
        earshot_client o = client(ids[i], 1, 0, 0);
        assert_int_equal(relay(f, &o, &hub, 0, EARSHOT_RELAY_OFFER, reason), 1);
    }
    earshot_client stranger = client("stranger", 1, 0, 0);
    assert_int_equal(relay(f, &stranger, &hub, 0, EARSHOT_RELAY_OFFER, reason), 0);
}

/* ---- host services ---------------------------------------------------------------- */

TEST(t_host_setting_accessors)
{
    F;
    load_ok(f, fmt("%s,\n%s", proximity("radius = 12;"),
                   scripted("s", "join = \"allow\"; reason = \"why\";")));
    es_link *p = &f->h.links[0], *s = &f->h.links[1];
    assert_int_equal(p->host->api_version, EARSHOT_PLUGIN_API_VERSION);
    assert_int_equal(p->host->setting_int(&p->settings, "radius"), 12);
    assert_int_equal(p->host->setting_int(&p->settings, "leave_radius"), 25); /* default */
    assert_int_equal(p->host->setting_int(&p->settings, "nope"), 0);
    assert_true(p->host->setting_number(&p->settings, "radius") == 0.0); /* wrong type */
    assert_int_equal(p->host->setting_bool(&p->settings, "radius"), 0);
    assert_string_equal(p->host->setting_string(&p->settings, "radius"), "");
    assert_string_equal(s->host->setting_string(&s->settings, "join"), "allow");
    assert_string_equal(s->host->setting_string(&s->settings, "match"), "pass"); /* default */
    assert_string_equal(s->host->setting_string(&s->settings, "reason"), "why");
    assert_int_equal(s->host->setting_int(&s->settings, "shift"), 0);
    double t0 = p->host->now(), t1 = p->host->now();
    assert_true(t1 >= t0);
}

static void mute_by(const es_mod_view *v, void *ud)
{
    if (!v->is_ban)
        snprintf(ud, 64, "%s %s by %s", v->key, v->reason, v->by);
}

/* The moderation services of the host, as a plugin calls them: the
 * process's lists, with the entry's name as who did it. */
TEST(t_host_moderation_services)
{
    F;
    load_ok(f, scripted("mod", ""));
    const earshot_host *host = f->h.links[0].host;
    es_moderation *m = es_moderation_shared();
    assert_int_equal(host->banned(host, "pl-a", NULL), 0);
    assert_int_equal(host->ban(host, "pl-a", NULL, 60, "from a plugin"), 0);
    assert_int_equal(host->ban(host, NULL, "192.0.2.44", 60, NULL), 0);
    assert_int_equal(host->ban(host, "pl-b", "192.0.2.45", 60, NULL), -1); /* one of them */
    assert_int_equal(host->ban(host, NULL, NULL, 60, NULL), -1);
    assert_int_equal(host->ban(host, "pl-b", NULL, 0, NULL), -1);
    assert_int_equal(host->banned(host, "pl-a", NULL), 1);
    assert_int_equal(host->banned(host, "pl-x", "192.0.2.44"), 1);
    assert_int_equal(host->banned(host, NULL, "192.0.2.45"), 0);
    char why[64];
    assert_true(es_moderation_banned(m, "pl-a", 4, NULL, es_wallclock(), why, sizeof why));
    assert_string_equal(why, "from a plugin");
    assert_int_equal(host->muted(host, "pl-m"), 0);
    assert_int_equal(host->mute(host, "pl-m", 1, "loud"), 0);
    assert_int_equal(host->muted(host, "pl-m"), 1);
    char seen[64] = "";
    es_moderation_each(m, es_wallclock(), mute_by, seen);
    assert_string_equal(seen, "pl-m loud by hook mod");
    assert_int_equal(host->mute(host, "pl-m", 0, NULL), 0);
    assert_int_equal(host->mute(host, "pl-m", 0, NULL), -1);
    assert_int_equal(host->muted(host, NULL), 0);
    es_moderation_free(m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_host_moderation_services),
        T(t_stock_config_loads),
        T(t_no_hooks),
        T(t_bad_abi_refused),
        T(t_no_entry_refused),
        T(t_null_descriptor_refused),
        T(t_descriptor_smaller_than_the_first_abi_refused),
        T(t_first_abi_plugin_has_no_appended_hooks),
        T(t_tick_runs_at_its_interval),
        T(t_reload_keeps_unchanged_instances),
        T(t_failed_reload_gives_instances_back),
        T(t_failing_init_refused),
        T(t_missing_so_refused),
        T(t_failure_names_the_failing_entry_line),
        T(t_unknown_setting_refused_with_line),
        T(t_setting_for_plugin_without_settings),
        T(t_setting_type_and_range_checked),
        T(t_integer_accepted_for_number_setting),
        T(t_leave_radius_below_radius_refused),
        T(t_scripted_rejects_bad_verdict),
        T(t_disabled_entries_not_loaded),
        T(t_chain_order_is_config_order),
        T(t_all_pass_gives_defaults),
        T(t_join_pass_then_deny_uses_second_reason),
        T(t_join_allow_then_deny_allows),
        T(t_join_deny_default_reason),
        T(t_position_chain),
        T(t_position_shift_adjusts),
        T(t_relay_chain),
        T(t_match_chain),
        T(t_leave_and_pair_reach_every_link),
        T(t_query_radius_is_the_largest),
        T(t_proximity_exact_distance),
        T(t_proximity_same_game_map_channel_only),
        T(t_proximity_int32_extremes),
        T(t_proximity_huge_radius),
        T(t_proximity_zero_radius),
        T(t_relay_guard_matched_allowed),
        T(t_relay_guard_never_matched_denied),
        T(t_relay_guard_parted_pair_is_per_pair),
        T(t_relay_guard_grace_expires),
        T(t_relay_guard_zero_grace),
        T(t_relay_guard_passes_so_later_links_decide),
        T(t_relay_guard_many_parted_pairs),
        T(t_host_setting_accessors),
    };
    return cmocka_run_group_tests_name("hooks", tests, NULL, NULL);
}
