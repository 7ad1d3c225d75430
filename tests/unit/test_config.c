/*
 * test_config - cfg_load() on the stock config and on temporary files.
 */
#include "helpers.h"

#include <sys/stat.h>

#include "config.h"
#include "config_keys.h"

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
    tmpdir dir;
    es_config cfg;
    int loaded;
    char err[2048];
} fx;

static fx fixture;

static int setup(void **state)
{
    memset(&fixture, 0, sizeof fixture);
    tmpdir_make(&fixture.dir);
    *state = &fixture;
    return 0;
}

static void unload(fx *f)
{
    if (f->loaded)
        es_config_free(&f->cfg);
    f->loaded = 0;
}

static int teardown(void **state)
{
    unload(*state);
    tmpdir_remove(&fixture.dir);
    return 0;
}

#define F fx *f = *cm_state_

/* es_config_load with the default script dir every test uses. */
static int cfg_load(es_config *c, const char *path, const char *default_plugin_dir, char *err,
                    size_t errlen)
{
    es_config_defaults d = {.plugin_dir = default_plugin_dir, .script_dir = "/default/scripts",
                           .web_dir = "/default/web"};
    return es_config_load(c, path, &d, err, errlen);
}

/* Write text as the test's config file (one file, rewritten each time) and
 * load it; returns the path. Whatever was loaded before is freed first. */
static const char *try_load(fx *f, const char *text, int *rc)
{
    unload(f);
    const char *path = tmpdir_write(&f->dir, "test.cfg", text);
    memset(f->err, 0, sizeof f->err);
    *rc = cfg_load(&f->cfg, path, "/default/plugins", f->err, sizeof f->err);
    f->loaded = *rc == 0;
    return path;
}

/* Load text; must succeed. Returns the path. */
static const char *load_ok(fx *f, const char *text)
{
    int rc;
    const char *path = try_load(f, text, &rc);
    if (rc != 0)
        fail_msg("config failed to load: %s\n--- config ---\n%s", f->err, text);
    return path;
}

/* Load text; must fail; returns the error after checking the file:line: prefix. */
static const char *load_fails_at(fx *f, const char *text, int line)
{
    int rc;
    const char *path = try_load(f, text, &rc);
    if (rc == 0)
        fail_msg("config loaded although it must fail:\n%s", text);
    const char *where = fmt("%s:%d: ", path, line);
    assert_starts_with(f->err, where);
    return f->err + strlen(where);
}

/* Load text; must fail with exactly "<path>:<line>: <message>". */
static void load_fails(fx *f, const char *text, int line, const char *message)
{
    const char *rest = load_fails_at(f, text, line);
    if (strcmp(rest, message) != 0)
        fail_msg("error  \"%s\"\nwanted \"%s\"\n--- config ---\n%s", rest, message, text);
}

/* A config that must fail: its text, the line named and the message. */
typedef struct bad_case {
    const char *text;
    int line;
    const char *message;
} bad_case;

static void fails_each(fx *f, const bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        load_fails(f, cases[i].text, cases[i].line, cases[i].message);
}

#define FAILS_EACH(f, cases) fails_each((f), (cases), ES_ARRAY_LEN(cases))

static void check_defaults(const es_config *c)
{
    assert_string_equal(c->address, "0.0.0.0");
    assert_int_equal(c->port, 8080);
    assert_int_equal(c->max_frame_bytes, 65536);
    assert_int_equal(c->send_queue_bytes, 1048576);
    assert_int_equal(c->ping_interval, 10);
    assert_int_equal(c->takeover, ES_TAKEOVER_SAME_ADDRESS);
    assert_true(c->idle_timeout == 15.0);
    assert_true(c->refresh_interval == 5.0);
    assert_int_equal(c->log_level, EARSHOT_LOG_INFO);
    assert_int_equal(c->log_format, ES_LOG_TEXT);
    assert_int_equal(c->nlog_modules, 0);
    assert_int_equal(c->event_loop, ES_LOOP_LIBEV);
    assert_int_equal(c->metrics, ES_METRICS_LOOPBACK);
    assert_int_equal(c->web, 1);
    assert_int_equal(c->behind_proxy, 0);
    assert_null(c->tls_cert);
    assert_null(c->tls_key);
    assert_null(c->allowed_origins);
    assert_int_equal(c->nallowed_origins, 0);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_connections_per_address, 256);
    assert_true(c->message_rate == 50.0);
    assert_true(c->message_burst == 200.0);
    assert_int_equal(c->rate_limit_close_after, 100);
    assert_true(c->handshake_timeout == 5.0);
    assert_true(c->first_message_timeout == 10.0);
}

/* Two libconfig values alike: same type (integers of any width alike), same value. */
static int same_setting(const config_setting_t *a, const config_setting_t *b)
{
    int ta = config_setting_type(a), tb = config_setting_type(b);
    if (ta == CONFIG_TYPE_INT64)
        ta = CONFIG_TYPE_INT;
    if (tb == CONFIG_TYPE_INT64)
        tb = CONFIG_TYPE_INT;
    if (ta != tb)
        return 0;
    switch (ta) {
    case CONFIG_TYPE_INT: return config_setting_get_int64(a) == config_setting_get_int64(b);
    case CONFIG_TYPE_FLOAT: return config_setting_get_float(a) == config_setting_get_float(b);
    case CONFIG_TYPE_BOOL: return config_setting_get_bool(a) == config_setting_get_bool(b);
    case CONFIG_TYPE_STRING:
        return strcmp(config_setting_get_string(a), config_setting_get_string(b)) == 0;
    default:
        if (config_setting_length(a) != config_setting_length(b))
            return 0;
        for (int i = 0; i < config_setting_length(a); i++)
            if (!same_setting(config_setting_get_elem(a, (unsigned)i),
                              config_setting_get_elem(b, (unsigned)i)))
                return 0;
        return 1;
    }
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    static char text[64 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    assert_true(n < sizeof text - 1);
    text[n] = '\0';
    return text;
}

/* ---- the stock config ------------------------------------------------------ */

TEST(t_stock_config_loads_with_documented_defaults)
{
    F;
    const char *src = env_dir("EARSHOT_SOURCE_DIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config/earshot.cfg", src);
    if (cfg_load(&f->cfg, path, "/pd", f->err, sizeof f->err) != 0)
        fail_msg("stock config: %s", f->err);
    f->loaded = 1;
    check_defaults(&f->cfg);
    assert_string_equal(f->cfg.path, path);
    assert_string_equal(f->cfg.plugin_dir, "/pd");
    assert_int_equal(f->cfg.metrics, ES_METRICS_LOOPBACK);
    /* exactly two entries enabled: relay_guard, then proximity */
    const es_hook_entry *on[8];
    size_t non = 0;
    for (size_t i = 0; i < f->cfg.nhooks; i++) {
        assert_string_equal(f->cfg.hooks[i].file, path);
        assert_true(f->cfg.hooks[i].line > 0);
        if (f->cfg.hooks[i].enabled) {
            assert_true(non < 8);
            on[non++] = &f->cfg.hooks[i];
        }
    }
    assert_int_equal(non, 2);
    static const char *const names[] = {"relay_guard", "proximity"};
    for (size_t i = 0; i < 2; i++) {
        const es_hook_entry *h = on[i];
        assert_string_equal(h->name, names[i]);
        assert_int_equal(h->kind, ES_HOOK_PLUGIN);
        assert_string_equal(h->path, fmt("/pd/%s.so", names[i]));
        assert_non_null(h->settings);
    }
    assert_true(on[0]->line < on[1]->line);
    /* the settings groups are the ones written in the file */
    const config_setting_t *grace = config_setting_get_member(on[0]->settings, "grace");
    assert_non_null(grace);
    assert_true(config_setting_get_float(grace) == 30.0);
    const config_setting_t *radius = config_setting_get_member(on[1]->settings, "radius");
    assert_non_null(radius);
    assert_int_equal(config_setting_get_int(radius), 20);
    const config_setting_t *leave = config_setting_get_member(on[1]->settings, "leave_radius");
    assert_non_null(leave);
    assert_int_equal(config_setting_get_int(leave), 25);
}

/* Every row of the key table is in the stock config: set to the row's
 * default, or (no default can be written) set or shown in a comment. */
TEST(t_stock_config_lists_every_key_with_its_default)
{
    const char *path = fmt("%s/config/earshot.cfg", env_dir("EARSHOT_SOURCE_DIR"));
    const char *text = read_file(path);
    config_t stock, def;
    config_init(&stock);
    if (config_read_string(&stock, text) != CONFIG_TRUE)
        fail_msg("%s:%d: %s", path, config_error_line(&stock), config_error_text(&stock));
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        const config_setting_t *s = config_lookup(&stock, k->name);
        char value[256];
        if (es_config_key_default(k, value, sizeof value) != 0) {
            if (!s && !strstr(text, fmt("# %s = ", es_config_key_leaf(k))))
                fail_msg("%s is neither set nor shown in a comment in %s", k->name, path);
            continue;
        }
        if (!s)
            fail_msg("%s is missing from %s (default %s)", k->name, path, value);
        config_init(&def);
        assert_int_equal(config_read_string(&def, fmt("v = %s;", value)), CONFIG_TRUE);
        int same = same_setting(s, config_lookup(&def, "v"));
        config_destroy(&def);
        if (!same)
            fail_msg("%s:%d: %s is not the default %s", path, config_setting_source_line(s),
                     k->name, value);
    }
    config_destroy(&stock);
}

/* What the stock config loads is what an empty file loads, row by row. */
TEST(t_stock_config_values_are_the_defaults)
{
    F;
    es_config stock;
    const char *path = fmt("%s/config/earshot.cfg", env_dir("EARSHOT_SOURCE_DIR"));
    if (cfg_load(&stock, path, "/default/plugins", f->err, sizeof f->err) != 0)
        fail_msg("stock config: %s", f->err);
    load_ok(f, "");
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        if ((k->offset || k->same) && !es_config_key_same(k, &stock, &f->cfg))
            fail_msg("%s: the stock config's value is not the default", k->name);
    }
    es_config_free(&stock);
}

/* ---- defaults ---------------------------------------------------------------- */

TEST(t_empty_file_gives_defaults)
{
    F;
    load_ok(f, "");
    check_defaults(&f->cfg);
    assert_string_equal(f->cfg.plugin_dir, "/default/plugins");
    assert_int_equal(f->cfg.nhooks, 0);
}

TEST(t_comments_only_gives_defaults)
{
    F;
    load_ok(f, "# nothing here\n// nor here\n/* nor\n here */\n");
    check_defaults(&f->cfg);
}

TEST(t_empty_groups_give_defaults)
{
    F;
    load_ok(f, "server = { };\nsession = { };\nlog = { };\nhooks = ( );\n");
    check_defaults(&f->cfg);
    assert_int_equal(f->cfg.nhooks, 0);
}

TEST(t_null_default_plugin_dir_is_dot)
{
    F;
    const char *path = tmpdir_mkstemp(&f->dir, "hooks = ( { type = \"plugin\"; name = \"p\"; } );\n");
    assert_int_equal(cfg_load(&f->cfg, path, NULL, f->err, sizeof f->err), 0);
    f->loaded = 1;
    assert_string_equal(f->cfg.plugin_dir, ".");
    assert_string_equal(f->cfg.hooks[0].path, "./p.so");
}

TEST(t_every_value_set)
{
    F;
    load_ok(f, "server = {\n"
               "  address = \"127.0.0.1\";\n"
               "  port = 9000;\n"
               "  max_frame_bytes = 4096;\n"
               "  send_queue_bytes = 8192;\n"
               "  ping_interval = 3;\n"
               "};\n"
               "session = {\n"
               "  takeover = \"never\";\n"
               "  idle_timeout = 2.5;\n"
               "  refresh_interval = 0;\n"
               "};\n"
               "log = { level = \"debug\"; };\n");
    assert_string_equal(f->cfg.address, "127.0.0.1");
    assert_int_equal(f->cfg.port, 9000);
    assert_int_equal(f->cfg.max_frame_bytes, 4096);
    assert_int_equal(f->cfg.send_queue_bytes, 8192);
    assert_int_equal(f->cfg.ping_interval, 3);
    assert_int_equal(f->cfg.takeover, ES_TAKEOVER_NEVER);
    assert_true(f->cfg.idle_timeout == 2.5);
    assert_true(f->cfg.refresh_interval == 0.0);
    assert_int_equal(f->cfg.log_level, EARSHOT_LOG_DEBUG);
}

/* Every accepted string of an enum key, and the value it loads as. */
typedef struct choice_case {
    const char *group, *key;
    size_t offset; /* the es_config field */
    const char *names[5];
    int values[5];
} choice_case;

#define AT(field) offsetof(es_config, field)

static const choice_case choice_cases[] = {
    {"session", "takeover", AT(takeover), {"always", "same_address", "never"},
     {ES_TAKEOVER_ALWAYS, ES_TAKEOVER_SAME_ADDRESS, ES_TAKEOVER_NEVER}},
    {"log", "level", AT(log_level), {"debug", "info", "warn", "error"},
     {EARSHOT_LOG_DEBUG, EARSHOT_LOG_INFO, EARSHOT_LOG_WARN, EARSHOT_LOG_ERROR}},
    {"server", "metrics", AT(metrics), {"off", "loopback", "public"},
     {ES_METRICS_OFF, ES_METRICS_LOOPBACK, ES_METRICS_PUBLIC}},
    {"server", "event_loop", AT(event_loop), {"libev", "poll"}, {ES_LOOP_LIBEV, ES_LOOP_POLL}},
    {"log", "format", AT(log_format), {"text", "json"}, {ES_LOG_TEXT, ES_LOG_JSON}},
};

static int int_at(const es_config *c, size_t offset)
{
    int v;
    memcpy(&v, (const char *)c + offset, sizeof v);
    return v;
}

TEST(t_enum_values)
{
    F;
    for (size_t i = 0; i < ES_ARRAY_LEN(choice_cases); i++) {
        const choice_case *t = &choice_cases[i];
        for (int k = 0; t->names[k]; k++) {
            load_ok(f, fmt("%s = { %s = \"%s\"; };\n", t->group, t->key, t->names[k]));
            assert_int_equal(int_at(&f->cfg, t->offset), t->values[k]);
        }
    }
    static const char *const takeovers[] = {"always", "same_address", "never"};
    for (int k = 0; k < 3; k++)
        assert_string_equal(es_takeover_name((es_takeover)k), takeovers[k]);
}

TEST(t_enum_defaults)
{
    F;
    load_ok(f, "");
    assert_int_equal(f->cfg.metrics, ES_METRICS_LOOPBACK);
    assert_int_equal(f->cfg.event_loop, ES_LOOP_LIBEV);
    assert_int_equal(f->cfg.log_format, ES_LOG_TEXT);
}

/* A value that must load, and where it must land. */
typedef struct value_case {
    const char *text;
    size_t offset; /* the es_config field */
    char kind;     /* 'i' int, 'u' unsigned, 'z' size_t, 'd' double */
    double want;
} value_case;

static double value_at(const es_config *c, const value_case *t)
{
    const char *p = (const char *)c + t->offset;
    int i;
    unsigned u;
    size_t z;
    double d;
    switch (t->kind) {
    case 'i': memcpy(&i, p, sizeof i); return i;
    case 'u': memcpy(&u, p, sizeof u); return u;
    case 'z': memcpy(&z, p, sizeof z); return (double)z;
    default: memcpy(&d, p, sizeof d); return d;
    }
}

/* Both ends of every range load; integers are accepted for numbers. */
TEST(t_range_ends_accepted)
{
    F;
    static const value_case cases[] = {
        {"server = { port = 65535; };", AT(port), 'i', 65535},
        {"server = { port = 0; };", AT(port), 'i', 0},
        {"server = { max_frame_bytes = 128; send_queue_bytes = 4096; };", AT(max_frame_bytes), 'z', 128},
        {"server = { max_frame_bytes = 128; send_queue_bytes = 4096; };", AT(send_queue_bytes), 'z', 4096},
        {"server = { ping_interval = 3600; };", AT(ping_interval), 'i', 3600},
        {"server = { ping_interval = 1; };", AT(ping_interval), 'i', 1},
        {"session = { idle_timeout = 86400.0; };", AT(idle_timeout), 'd', 86400},
        {"session = { idle_timeout = 30; };", AT(idle_timeout), 'd', 30},
        {"session = { refresh_interval = 0.0; };", AT(refresh_interval), 'd', 0},
        {"session = { refresh_interval = 7; };", AT(refresh_interval), 'd', 7},
        {"limits = { max_connections = 0; };", AT(max_connections), 'z', 0},
        {"limits = { max_connections = 10000000; };", AT(max_connections), 'z', 10000000},
        {"limits = { max_connections_per_address = 0; };", AT(max_connections_per_address), 'z', 0},
        {"limits = { max_connections_per_address = 10000000; };", AT(max_connections_per_address),
         'z', 10000000},
        {"limits = { message_rate = 0; };", AT(message_rate), 'd', 0},
        {"limits = { message_rate = 1e6; };", AT(message_rate), 'd', 1e6},
        {"limits = { message_burst = 1; };", AT(message_burst), 'd', 1},
        {"limits = { message_burst = 1000000.0; };", AT(message_burst), 'd', 1e6},
        {"limits = { rate_limit_close_after = 1; };", AT(rate_limit_close_after), 'u', 1},
        {"limits = { rate_limit_close_after = 1000000; };", AT(rate_limit_close_after), 'u', 1e6},
        {"limits = { handshake_timeout = 1; };", AT(handshake_timeout), 'd', 1},
        {"limits = { handshake_timeout = 3600.0; };", AT(handshake_timeout), 'd', 3600},
        {"limits = { first_message_timeout = 0; };", AT(first_message_timeout), 'd', 0},
        {"limits = { first_message_timeout = 86400; };", AT(first_message_timeout), 'd', 86400},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++) {
        load_ok(f, cases[i].text);
        if (value_at(&f->cfg, &cases[i]) != cases[i].want)
            fail_msg("%s loaded as %g", cases[i].text, value_at(&f->cfg, &cases[i]));
    }
}

TEST(t_send_queue_exactly_twice_frame_ok)
{
    F;
    load_ok(f, "server = { max_frame_bytes = 4096; send_queue_bytes = 8192; };\n");
    assert_int_equal(f->cfg.send_queue_bytes, 8192);
}

/* ---- errors ------------------------------------------------------------------ */

TEST(t_missing_file)
{
    F;
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.cfg", f->dir.path);
    assert_int_equal(cfg_load(&f->cfg, path, NULL, f->err, sizeof f->err), -1);
    assert_string_equal(f->err, fmt("%s: cannot read the config file", path));
}

TEST(t_syntax_error_names_line)
{
    F;
    load_fails(f, "server = {\n  port = 1;\n};\nsession = {\n  takeover = ;\n};\n", 5,
               "syntax error");
}

TEST(t_syntax_error_first_line)
{
    F;
    const char *rest = load_fails_at(f, "this is not a config\n", 1);
    assert_contains(rest, "syntax error");
}

TEST(t_syntax_error_unterminated_group)
{
    F;
    const char *path = tmpdir_mkstemp(&f->dir, "server = {\n  port = 1;\n\n");
    assert_int_equal(cfg_load(&f->cfg, path, NULL, f->err, sizeof f->err), -1);
    assert_starts_with(f->err, fmt("%s:", path));
    assert_contains(f->err, "syntax error");
}

/* "unknown setting ..." with the known keys listed: the list grows with new
 * keys, so check the keys every version has, in order, and the closing ")". */
static void unknown_key_fails(fx *f, const char *text, int line, const char *head,
                              const char *known_prefix)
{
    const char *rest = load_fails_at(f, text, line);
    assert_starts_with(rest, fmt("%s (known: %s", head, known_prefix));
    assert_true(rest[strlen(rest) - 1] == ')');
    assert_null(strchr(rest, '\n'));
}

TEST(t_unknown_top_level_key)
{
    F;
    unknown_key_fails(f, "server = { port = 1; };\n\nserver2 = 3;\n", 3,
                      "unknown setting 'server2' in 'top level'",
                      "server, session, limits, log, plugin_dir, script_dir, ");
    assert_contains(f->err, ", hooks");
}

TEST(t_unknown_server_key)
{
    F;
    unknown_key_fails(f, "server = {\n  port = 1;\n  prot = 2;\n};\n", 3,
                      "unknown setting 'prot' in 'server'",
                      "address, port, max_frame_bytes, send_queue_bytes, ping_interval");
}

TEST(t_unknown_session_key)
{
    F;
    load_fails(f, "\nsession = {\n  idle = 3.0;\n};\n", 3,
               "unknown setting 'idle' in 'session' (known: takeover, idle_timeout, "
               "refresh_interval, max_peers, swap_margin, resume_grace, resume_queue_messages, "
               "resume_queue_bytes)");
}

TEST(t_unknown_log_key)
{
    F;
    unknown_key_fails(f, "log = {\n  level = \"info\";\n  file = \"x\";\n};\n", 3,
                      "unknown setting 'file' in 'log'", "level");
}

TEST(t_unknown_hook_key)
{
    F;
    const char *msg = load_fails_at(f,
                                    "hooks = (\n"
                                    "  {\n"
                                    "    type = \"plugin\";\n"
                                    "    nmae = \"proximity\";\n"
                                    "  }\n"
                                    ");\n",
                                    4);
    assert_starts_with(msg, "unknown setting 'nmae' in ");
    assert_contains(msg, "(known: type, name, enabled, path, settings)");
    /* a hook entry is not the top level of the file */
    assert_not_contains(msg, "'top level'");
}

TEST(t_wrong_types)
{
    F;
    static const bad_case cases[] = {
        {"server = {\n  port = \"8080\";\n};\n", 2, "'port' must be an integer"},
        {"server = {\n  port = 80.5;\n};\n", 2, "'port' must be an integer"},
        {"server = {\n\n  address = 5;\n};\n", 3, "'address' must be a string"},
        {"server = { max_frame_bytes = true; };\n", 1, "'max_frame_bytes' must be an integer"},
        {"session = {\n  idle_timeout = \"15\";\n};\n", 2, "'idle_timeout' must be a number"},
        {"session = {\n  refresh_interval = false;\n};\n", 2,
         "'refresh_interval' must be a number"},
        {"session = {\n  takeover = 1;\n};\n", 2, "'takeover' must be a string"},
        {"log = {\n  level = 2;\n};\n", 2, "'level' must be a string"},
        {"plugin_dir = 5;\n", 1, "'plugin_dir' must be a string"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_groups_must_be_groups)
{
    F;
    static const bad_case cases[] = {
        {"\nserver = 5;\n", 2, "'server' must be a group: server = { ... };"},
        {"session = \"x\";\n", 1, "'session' must be a group: session = { ... };"},
        {"log = ( 1 );\n", 1, "'log' must be a group: log = { ... };"},
        {"limits = [ 1 ];\n", 1, "'limits' must be a group: limits = { ... };"},
        {"\n\nhooks = 5;\n", 3, "'hooks' must be a list: hooks = ( { ... }, { ... } );"},
        {"hooks = { type = \"plugin\"; };\n", 1,
         "'hooks' must be a list: hooks = ( { ... }, { ... } );"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_out_of_range)
{
    F;
    static const bad_case cases[] = {
        {"server = {\n  port = 65536;\n};\n", 2, "'port' must be between 0 and 65535 (got 65536)"},
        {"server = {\n  port = -1;\n};\n", 2, "'port' must be between 0 and 65535 (got -1)"},
        {"server = {\n  port = 100000000000L;\n};\n", 2,
         "'port' must be between 0 and 65535 (got 100000000000)"},
        {"server = {\n  max_frame_bytes = 127;\n};\n", 2,
         "'max_frame_bytes' must be between 128 and 16777216 (got 127)"},
        {"server = {\n  ping_interval = 0;\n};\n", 2,
         "'ping_interval' must be between 1 and 3600 (got 0)"},
        {"server = {\n  send_queue_bytes = 4095;\n};\n", 2,
         "'send_queue_bytes' must be between 4096 and 1073741824 (got 4095)"},
        {"session = {\n  idle_timeout = -1.0;\n};\n", 2,
         "'idle_timeout' must be between 0 and 86400 (got -1)"},
        {"session = {\n  refresh_interval = 86401;\n};\n", 2,
         "'refresh_interval' must be between 0 and 86400 (got 86401)"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_bad_enum_values)
{
    F;
    static const bad_case cases[] = {
        {"session = {\n  idle_timeout = 1.0;\n  takeover = \"sometimes\";\n};\n", 3,
         "'takeover' must be \"always\", \"same_address\" or \"never\" (got \"sometimes\")"},
        {"session = { takeover = \"Always\"; };\n", 1,
         "'takeover' must be \"always\", \"same_address\" or \"never\" (got \"Always\")"},
        {"\n\nlog = {\n  level = \"verbose\";\n};\n", 4,
         "'level' must be \"debug\", \"info\", \"warn\" or \"error\" (got \"verbose\")"},
        {"log = { level = \"INFO\"; };\n", 1,
         "'level' must be \"debug\", \"info\", \"warn\" or \"error\" (got \"INFO\")"},
        {"server = {\n  metrics = \"everyone\";\n};\n", 2,
         "'metrics' must be \"off\", \"loopback\" or \"public\" (got \"everyone\")"},
        {"server = {\n\n  metrics = true;\n};\n", 3, "'metrics' must be a string"},
        {"server = {\n  event_loop = \"epoll\";\n};\n", 2,
         "'event_loop' must be \"libev\" or \"poll\" (got \"epoll\")"},
        {"server = {\n  event_loop = \"POLL\";\n};\n", 2,
         "'event_loop' must be \"libev\" or \"poll\" (got \"POLL\")"},
        {"server = {\n\n  event_loop = 1;\n};\n", 3, "'event_loop' must be a string"},
        {"log = {\n  format = \"xml\";\n};\n", 2,
         "'format' must be \"text\" or \"json\" (got \"xml\")"},
        {"log = {\n  format = true;\n};\n", 2, "'format' must be a string"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_send_queue_smaller_than_twice_frame)
{
    F;
    static const bad_case cases[] = {
        {"server = {\n  max_frame_bytes = 4096;\n  send_queue_bytes = 8191;\n};\n", 3,
         "'send_queue_bytes' (8191) must be at least twice 'max_frame_bytes' (4096) so "
         "that any relay fits"},
        /* with send_queue_bytes left at its default, the server group is named */
        {"\nserver = {\n  max_frame_bytes = 1048576;\n};\n", 2,
         "'send_queue_bytes' (1048576) must be at least twice 'max_frame_bytes' (1048576) "
         "so that any relay fits"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_hook_without_type)
{
    F;
    load_fails(f,
               "hooks = (\n"
               "  {\n"
               "    type = \"plugin\";\n"
               "    name = \"a\";\n"
               "  },\n"
               "  {\n"
               "    name = \"b\";\n"
               "  }\n"
               ");\n",
               6, "hook entry needs type = \"plugin\"; or type = \"lua\";");
}

TEST(t_unknown_hook_type)
{
    F;
    load_fails(f,
               "hooks = (\n"
               "  {\n"
               "    name = \"a\";\n"
               "    type = \"python\";\n"
               "  }\n"
               ");\n",
               4, "unknown hook type 'python' (known: plugin, lua)");
}

TEST(t_hook_without_valid_name)
{
    F;
    static const char *const bad[] = {"", "name = \"a b\";", "name = \"../x\";", "name = \"\";"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++)
        load_fails(f, fmt("hooks = (\n  { type = \"plugin\"; %s }\n);\n", bad[i]), 2,
                   "hook entry needs name = \"...\"; (letters, digits, '_' or '-')");
    load_ok(f, "hooks = (\n  { type = \"plugin\"; name = \"Ok_name-2\"; }\n);\n");
    assert_string_equal(f->cfg.hooks[0].name, "Ok_name-2");
}

TEST(t_duplicate_hook_name)
{
    F;
    load_fails(f,
               "hooks = (\n"
               "  { type = \"plugin\"; name = \"proximity\"; },\n"
               "  { type = \"plugin\"; name = \"relay_guard\"; },\n"
               "\n"
               "  { type = \"plugin\"; name = \"proximity\"; enabled = false; }\n"
               ");\n",
               5, "hook name 'proximity' is used twice");
}

TEST(t_hook_entry_errors)
{
    F;
    static const bad_case cases[] = {
        {"hooks = (\n  {\n    type = \"plugin\";\n    name = \"a\";\n    settings = 3;\n  }\n);\n", 5,
         "'settings' must be a group: settings = { ... };"},
        {"hooks = (\n  { type = \"plugin\"; name = \"a\";\n settings = ( 1 ); }\n);\n", 3,
         "'settings' must be a group: settings = { ... };"},
        {"hooks = (\n  5\n);\n", 2,
         "each entry of 'hooks' must be a group { type = ...; name = ...; }"},
        {"hooks = (\n  { type = \"plugin\";\n    name = \"a\";\n    enabled = 1; }\n);\n", 4,
         "'enabled' must be true or false"},
        {"hooks = (\n  { type = 1; name = \"a\"; }\n);\n", 2, "'type' must be a string"},
        {"hooks = (\n  { type = \"plugin\";\n name = [1]; }\n);\n", 3, "'name' must be a string"},
        {"hooks = (\n  { type = \"plugin\"; name = \"a\";\n\n path = 7; }\n);\n", 4,
         "'path' must be a string"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_error_line_numbers_follow_the_file)
{
    F;
    /* the same mistake on different lines */
    for (int pad = 0; pad < 5; pad++) {
        char text[256] = "";
        for (int i = 0; i < pad; i++)
            strcat(text, "# comment\n");
        strcat(text, "server = {\n  address = \"::\";\n  port = 99999;\n};\n");
        load_fails(f, text, pad + 3, "'port' must be between 0 and 65535 (got 99999)");
    }
}

/* ---- hook paths -------------------------------------------------------------- */

TEST(t_hooks_in_order_with_fields)
{
    F;
    const char *path = load_ok(f, "hooks = (\n"
                                  "  { type = \"plugin\"; name = \"first\"; },\n"
                                  "  { type = \"plugin\"; name = \"second\"; enabled = false;\n"
                                  "    settings = { a = 1; b = \"x\"; }; },\n"
                                  "  { type = \"plugin\"; name = \"third\"; enabled = true; }\n"
                                  ");\n");
    assert_int_equal(f->cfg.nhooks, 3);
    assert_string_equal(f->cfg.hooks[0].name, "first");
    assert_string_equal(f->cfg.hooks[1].name, "second");
    assert_string_equal(f->cfg.hooks[2].name, "third");
    assert_int_equal(f->cfg.hooks[0].enabled, 1);
    assert_int_equal(f->cfg.hooks[1].enabled, 0);
    assert_int_equal(f->cfg.hooks[2].enabled, 1);
    assert_null(f->cfg.hooks[0].settings);
    assert_non_null(f->cfg.hooks[1].settings);
    assert_int_equal(config_setting_length(f->cfg.hooks[1].settings), 2);
    assert_int_equal(f->cfg.hooks[0].line, 2);
    assert_int_equal(f->cfg.hooks[1].line, 3);
    assert_int_equal(f->cfg.hooks[2].line, 5);
    for (int i = 0; i < 3; i++)
        assert_string_equal(f->cfg.hooks[i].file, path);
}

TEST(t_plugin_dir_default_used_for_name_so)
{
    F;
    load_ok(f, "hooks = ( { type = \"plugin\"; name = \"proximity\"; } );\n");
    assert_string_equal(f->cfg.plugin_dir, "/default/plugins");
    assert_string_equal(f->cfg.hooks[0].path, "/default/plugins/proximity.so");
}

TEST(t_plugin_dir_absolute)
{
    F;
    load_ok(f, "plugin_dir = \"/opt/ear/plugins\";\n"
               "hooks = ( { type = \"plugin\"; name = \"proximity\"; } );\n");
    assert_string_equal(f->cfg.plugin_dir, "/opt/ear/plugins");
    assert_string_equal(f->cfg.hooks[0].path, "/opt/ear/plugins/proximity.so");
}

TEST(t_plugin_dir_relative_to_config_folder)
{
    F;
    load_ok(f, "plugin_dir = \"lib/plugins\";\n"
               "hooks = ( { type = \"plugin\"; name = \"relay_guard\"; } );\n");
    assert_string_equal(f->cfg.plugin_dir, fmt("%s/lib/plugins", f->dir.path));
    assert_string_equal(f->cfg.hooks[0].path, fmt("%s/lib/plugins/relay_guard.so", f->dir.path));
}

TEST(t_hook_path_relative_to_config_folder)
{
    F;
    load_ok(f, "plugin_dir = \"/elsewhere\";\n"
               "hooks = (\n"
               "  { type = \"plugin\"; name = \"mine\"; path = \"sub/mine-v2.so\"; },\n"
               "  { type = \"plugin\"; name = \"abs\"; path = \"/usr/lib/x.so\"; }\n"
               ");\n");
    assert_string_equal(f->cfg.hooks[0].path, fmt("%s/sub/mine-v2.so", f->dir.path));
    assert_string_equal(f->cfg.hooks[1].path, "/usr/lib/x.so");
}

TEST(t_hook_path_relative_to_a_nested_config)
{
    F;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/etc", f->dir.path);
    assert_int_equal(mkdir(sub, 0700), 0);
    char file[700];
    snprintf(file, sizeof file, "%s/earshot.cfg", sub);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("hooks = ( { type = \"plugin\"; name = \"x\"; path = \"../p/x.so\"; } );\n", fp);
    fclose(fp);
    int rc = cfg_load(&f->cfg, file, NULL, f->err, sizeof f->err);
    unlink(file);
    rmdir(sub);
    if (rc != 0)
        fail_msg("%s", f->err);
    f->loaded = 1;
    assert_string_equal(f->cfg.hooks[0].path, fmt("%s/../p/x.so", sub));
    assert_string_equal(f->cfg.plugin_dir, ".");
}

TEST(t_where_prefix)
{
    F;
    const char *path = load_ok(f, "\n\nserver = {\n  port = 1;\n};\n");
    const config_setting_t *root = config_root_setting(&f->cfg.cfg_);
    const config_setting_t *port =
        config_setting_get_member(config_setting_get_member(root, "server"), "port");
    char where[1024];
    es_config_where(&f->cfg, port, where, sizeof where);
    assert_string_equal(where, fmt("%s:4: ", path));
    es_config_where(&f->cfg, NULL, where, sizeof where);
    assert_string_equal(where, fmt("%s:0: ", path));
}

TEST(t_small_error_buffer_is_terminated)
{
    F;
    const char *path = tmpdir_mkstemp(&f->dir, "server = { port = 70000; };\n");
    char small[16];
    memset(small, 'X', sizeof small);
    assert_int_equal(cfg_load(&f->cfg, path, NULL, small, sizeof small), -1);
    assert_int_equal(strnlen(small, sizeof small), sizeof small - 1);
    assert_memory_equal(small, path, sizeof small - 1);
}

TEST(t_script_dir_default_and_relative)
{
    F;
    load_ok(f, "hooks = ( { type = \"lua\"; name = \"auth\"; } );\n");
    assert_string_equal(f->cfg.script_dir, "/default/scripts");
    assert_int_equal(f->cfg.hooks[0].kind, ES_HOOK_LUA);
    assert_string_equal(f->cfg.hooks[0].path, "/default/scripts/auth.lua");
    load_ok(f, "script_dir = \"scripts\";\nplugin_dir = \"/p\";\n"
               "hooks = ( { type = \"lua\"; name = \"auth\"; },\n"
               "          { type = \"plugin\"; name = \"auth2\"; } );\n");
    assert_string_equal(f->cfg.script_dir, fmt("%s/scripts", f->dir.path));
    assert_string_equal(f->cfg.hooks[0].path, fmt("%s/scripts/auth.lua", f->dir.path));
    assert_string_equal(f->cfg.hooks[1].path, "/p/auth2.so");
}

TEST(t_lua_entry_defaults)
{
    F;
    load_ok(f, "hooks = ( { type = \"lua\"; name = \"s\"; } );\n");
    const es_hook_entry *h = &f->cfg.hooks[0];
    assert_int_equal(h->grant_io, 0);
    assert_int_equal(h->grant_os, 0);
    assert_int_equal(h->deny_on_error[ES_HOOK_JOIN], 1);
    assert_int_equal(h->deny_on_error[ES_HOOK_POSITION], 0);
    assert_int_equal(h->deny_on_error[ES_HOOK_MATCH], 0);
    assert_int_equal(h->deny_on_error[ES_HOOK_RELAY], 1);
    assert_int_equal(h->instruction_limit, 1000000);
    assert_int_equal(h->memory_limit, 16LL << 20);
}

TEST(t_lua_entry_options)
{
    F;
    load_ok(f, "hooks = (\n"
               "  { type = \"lua\"; name = \"a\"; grant = [\"io\", \"os\"]; on_error = \"allow\";\n"
               "    instruction_limit = 5000; memory_limit = 1048576; },\n"
               "  { type = \"lua\"; name = \"b\"; grant = (\"os\"); on_error = \"deny\"; },\n"
               "  { type = \"lua\"; name = \"c\"; on_error = { position = \"deny\"; join = \"allow\"; }; }\n"
               ");\n");
    const es_hook_entry *a = &f->cfg.hooks[0], *b = &f->cfg.hooks[1], *c = &f->cfg.hooks[2];
    assert_int_equal(a->grant_io, 1);
    assert_int_equal(a->grant_os, 1);
    for (int i = 0; i < ES_HOOK_VERDICT_COUNT; i++) {
        assert_int_equal(a->deny_on_error[i], 0);
        assert_int_equal(b->deny_on_error[i], 1);
    }
    assert_int_equal(a->instruction_limit, 5000);
    assert_int_equal(a->memory_limit, 1048576);
    assert_int_equal(b->grant_io, 0);
    assert_int_equal(b->grant_os, 1);
    assert_int_equal(c->deny_on_error[ES_HOOK_JOIN], 0);
    assert_int_equal(c->deny_on_error[ES_HOOK_POSITION], 1);
    assert_int_equal(c->deny_on_error[ES_HOOK_MATCH], 0);
    assert_int_equal(c->deny_on_error[ES_HOOK_RELAY], 1);
}

TEST(t_lua_entry_errors)
{
    F;
    static const struct {
        const char *entry, *message;
    } cases[] = {
        {"grant = [\"net\"];", "'grant' may name \"io\" and \"os\" only"},
        {"grant = \"io\";", "'grant' must be a list of library names: grant = [\"io\"];"},
        {"on_error = \"maybe\";", "'on_error' must be \"allow\" or \"deny\" (got \"maybe\")"},
        {"on_error = 1;", "'on_error' must be \"allow\", \"deny\" or a group "
                          "{ join = \"deny\"; position = \"allow\"; ... }"},
        {"on_error = { relay = \"nope\"; };", "'relay' must be \"allow\" or \"deny\" (got \"nope\")"},
        {"on_error = { jion = \"deny\"; };",
         "unknown setting 'jion' in 'on_error' (known: join, position, match, relay)"},
        {"instruction_limit = 999;",
         "'instruction_limit' must be between 1000 and 1099511627776 (got 999)"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++)
        load_fails(f, fmt("hooks = (\n  { type = \"lua\"; name = \"a\";\n    %s }\n);\n",
                          cases[i].entry),
                   3, cases[i].message);
    /* Lua-only keys are unknown on a plugin entry */
    const char *msg = load_fails_at(
        f, "hooks = (\n  { type = \"plugin\"; name = \"a\";\n    grant = [\"io\"]; }\n);\n", 3);
    assert_starts_with(msg, "unknown setting 'grant' in ");
    assert_contains(msg, "(known: type, name, enabled, path, settings)");
}

TEST(t_lua_on_error_rejects_other_keys)
{
    /* only the four verdict hooks may appear in an on_error group */
    F;
    static const char *const bad[] = {"type", "name", "enabled", "path", "settings", "leave"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        const char *rest = load_fails_at(
            f, fmt("hooks = (\n  { type = \"lua\"; name = \"a\";\n    on_error = { %s = \"deny\"; }; }\n);\n",
                   bad[i]),
            3);
        assert_starts_with(rest, fmt("unknown setting '%s' in 'on_error'", bad[i]));
    }
}

/* ---- limits -------------------------------------------------------------------- */

TEST(t_limits_values)
{
    F;
    load_ok(f, "limits = {\n"
               "  max_connections = 3;\n"
               "  max_connections_per_address = 2;\n"
               "  message_rate = 0.5;\n"
               "  message_burst = 5;\n"
               "  rate_limit_close_after = 4;\n"
               "  handshake_timeout = 1.5;\n"
               "  first_message_timeout = 0;\n"
               "};\n");
    assert_int_equal(f->cfg.max_connections, 3);
    assert_int_equal(f->cfg.max_connections_per_address, 2);
    assert_true(f->cfg.message_rate == 0.5);
    assert_true(f->cfg.message_burst == 5.0);
    assert_int_equal(f->cfg.rate_limit_close_after, 4);
    assert_true(f->cfg.handshake_timeout == 1.5);
    assert_true(f->cfg.first_message_timeout == 0.0);
}

TEST(t_limits_errors)
{
    F;
    static const bad_case cases[] = {
        {"limits = {\n  max_connections = -1;\n};\n", 2,
         "'max_connections' must be between 0 and 10000000 (got -1)"},
        {"limits = {\n  max_connections = 10000001;\n};\n", 2,
         "'max_connections' must be between 0 and 10000000 (got 10000001)"},
        {"limits = {\n  max_connections = 1.5;\n};\n", 2, "'max_connections' must be an integer"},
        {"limits = {\n  max_connections_per_address = 10000001;\n};\n", 2,
         "'max_connections_per_address' must be between 0 and 10000000 (got 10000001)"},
        {"limits = {\n  max_connections_per_address = \"2\";\n};\n", 2,
         "'max_connections_per_address' must be an integer"},
        {"limits = {\n  message_rate = -0.5;\n};\n", 2,
         "'message_rate' must be between 0 and 1e+06 (got -0.5)"},
        {"limits = {\n  message_rate = 1000001;\n};\n", 2,
         "'message_rate' must be between 0 and 1e+06 (got 1e+06)"},
        {"limits = {\n  message_rate = \"fast\";\n};\n", 2, "'message_rate' must be a number"},
        {"limits = {\n  message_burst = 0.5;\n};\n", 2,
         "'message_burst' must be between 1 and 1e+06 (got 0.5)"},
        {"limits = {\n  message_burst = true;\n};\n", 2, "'message_burst' must be a number"},
        {"limits = {\n  rate_limit_close_after = 0;\n};\n", 2,
         "'rate_limit_close_after' must be between 1 and 1000000 (got 0)"},
        {"limits = {\n  rate_limit_close_after = 4.0;\n};\n", 2,
         "'rate_limit_close_after' must be an integer"},
        {"limits = {\n  handshake_timeout = 0.5;\n};\n", 2,
         "'handshake_timeout' must be between 1 and 3600 (got 0.5)"},
        {"limits = {\n  handshake_timeout = 3601;\n};\n", 2,
         "'handshake_timeout' must be between 1 and 3600 (got 3601)"},
        {"limits = {\n  first_message_timeout = 86400.5;\n};\n", 2,
         "'first_message_timeout' must be between 0 and 86400 (got 86400.5)"},
        {"limits = {\n  first_message_timeout = [ 1 ];\n};\n", 2,
         "'first_message_timeout' must be a number"},
        {"limits = {\n  max_connections = 1;\n  max_conections = 2;\n};\n", 3,
         "unknown setting 'max_conections' in 'limits' (known: max_connections, "
         "max_connections_per_address, message_rate, message_burst, rate_limit_close_after, "
         "handshake_timeout, first_message_timeout)"},
    };
    FAILS_EACH(f, cases);
}

/* ---- server: allowed_origins, tls ------------------------------------------------ */

TEST(t_allowed_origins)
{
    F;
    load_ok(f, "server = { allowed_origins = [ \"https://game.example\", \"http://localhost:8080\" ]; };\n");
    assert_int_equal(f->cfg.nallowed_origins, 2);
    assert_string_equal(f->cfg.allowed_origins[0], "https://game.example");
    assert_string_equal(f->cfg.allowed_origins[1], "http://localhost:8080");
    assert_null(f->cfg.allowed_origins[2]);
    /* a list ( ) works as an array [ ] does */
    load_ok(f, "server = { allowed_origins = ( \"https://a.example\" ); };\n");
    assert_int_equal(f->cfg.nallowed_origins, 1);
    assert_string_equal(f->cfg.allowed_origins[0], "https://a.example");
    /* empty: any origin */
    load_ok(f, "server = { allowed_origins = [ ]; };\n");
    assert_null(f->cfg.allowed_origins);
    assert_int_equal(f->cfg.nallowed_origins, 0);
}

TEST(t_allowed_origins_errors)
{
    F;
    static const bad_case cases[] = {
        {"server = {\n  allowed_origins = \"https://game.example\";\n};\n", 2,
         "'allowed_origins' must be a list of strings: "
         "allowed_origins = [ \"https://game.example\" ];"},
        {"server = {\n  allowed_origins = { a = 1; };\n};\n", 2,
         "'allowed_origins' must be a list of strings: "
         "allowed_origins = [ \"https://game.example\" ];"},
        {"server = {\n  allowed_origins = ( \"https://a.example\",\n    7 );\n};\n", 3,
         "'allowed_origins' entries must be strings"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_join_headers)
{
    F;
    load_ok(f, "server = { join_headers = [ \"X-Game-Token\", \"x-region\" ]; };\n");
    assert_int_equal(f->cfg.njoin_headers, 2);
    assert_string_equal(f->cfg.join_headers[0], "x-game-token"); /* stored in lower case */
    assert_string_equal(f->cfg.join_headers[1], "x-region");
    assert_null(f->cfg.join_headers[2]);
    load_ok(f, "server = { join_headers = [ ]; };\n");
    assert_null(f->cfg.join_headers);
    assert_int_equal(f->cfg.njoin_headers, 0);
    /* 16 names of 64 characters: the limits themselves */
    char list[2048] = "server = { join_headers = [ ";
    for (int i = 0; i < ES_JOIN_HEADERS_MAX; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"x-%02d-%s\"",
                 i ? ", " : "", i, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(list + strlen(list), sizeof list - strlen(list), " ]; };\n");
    load_ok(f, list);
    assert_int_equal(f->cfg.njoin_headers, ES_JOIN_HEADERS_MAX);
    assert_int_equal(strlen(f->cfg.join_headers[15]), ES_JOIN_HEADER_MAX);
}

TEST(t_join_headers_errors)
{
    F;
    static const bad_case cases[] = {
        {"server = {\n  join_headers = \"x-game-token\";\n};\n", 2,
         "'join_headers' must be a list of strings: join_headers = [ \"x-game-token\" ];"},
        {"server = {\n  join_headers = ( \"x-a\",\n    1 );\n};\n", 3,
         "'join_headers' entries must be strings"},
        {"server = {\n  join_headers = [ \"x game\" ];\n};\n", 2,
         "'join_headers' entry \"x game\" is not a header name"},
        {"server = {\n  join_headers = [ \"x-token:\" ];\n};\n", 2,
         "'join_headers' entry \"x-token:\" is not a header name"},
        {"server = {\n  join_headers = [ \"\" ];\n};\n", 2,
         "'join_headers' entry \"\" must be 1 to 64 characters"},
        {"server = {\n  join_headers = [ \"x-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" ];\n};\n", 2,
         "'join_headers' entry \"x-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" must be 1 to 64 characters"},
        {"server = {\n  join_headers = [ \"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", "
         "\"j\", \"k\", \"l\", \"m\", \"n\", \"o\", \"p\", \"q\" ];\n};\n", 2,
         "'join_headers' holds at most 16 names"},
    };
    FAILS_EACH(f, cases);
}

TEST(t_tls)
{
    F;
    const char *cert = tmpdir_write(&f->dir, "cert.pem", "certificate\n");
    const char *key = tmpdir_write(&f->dir, "key.pem", "key\n");
    /* relative to the config file's folder */
    load_ok(f, "server = { tls = { cert = \"cert.pem\"; key = \"key.pem\"; }; };\n");
    assert_string_equal(f->cfg.tls_cert, fmt("%s/cert.pem", f->dir.path));
    assert_string_equal(f->cfg.tls_key, fmt("%s/key.pem", f->dir.path));
    load_ok(f, fmt("server = { tls = { key = \"%s\"; cert = \"%s\"; }; };\n", key, cert));
    assert_string_equal(f->cfg.tls_cert, cert);
    assert_string_equal(f->cfg.tls_key, key);
}

TEST(t_tls_errors)
{
    F;
    tmpdir_write(&f->dir, "cert.pem", "certificate\n");
    tmpdir_write(&f->dir, "key.pem", "key\n");
    const bad_case cases[] = {
        {"server = {\n  tls = \"cert.pem\";\n};\n", 2,
         "'tls' must be a group: tls = { cert = \"...\"; key = \"...\"; };"},
        {"server = {\n  tls = {\n    cert = \"cert.pem\";\n  };\n};\n", 2,
         "'tls' needs both cert and key (PEM files)"},
        {"server = {\n  tls = { key = \"key.pem\"; };\n};\n", 2,
         "'tls' needs both cert and key (PEM files)"},
        {"server = {\n  tls = { cert = \"cert.pem\";\n    key = \"key.pem\";\n    ca = \"x\"; };\n};\n", 4,
         "unknown setting 'ca' in 'tls' (known: cert, key)"},
        {"server = {\n  tls = { cert = 1;\n    key = \"key.pem\"; };\n};\n", 2,
         "'cert' must be a string"},
        {"server = {\n  tls = { cert = \"missing.pem\";\n    key = \"key.pem\"; };\n};\n", 2,
         fmt("cannot read TLS certificate %s/missing.pem", f->dir.path)},
        {"server = {\n  tls = { cert = \"cert.pem\";\n    key = \"/nonexistent/key.pem\"; };\n};\n", 3,
         "cannot read TLS key /nonexistent/key.pem"},
    };
    FAILS_EACH(f, cases);
}

/* ---- log.modules ------------------------------------------------------------------ */

TEST(t_log_modules)
{
    F;
    load_ok(f, "log = { level = \"warn\"; modules = { session = \"debug\"; lws = \"error\"; }; };\n");
    assert_int_equal(f->cfg.log_level, EARSHOT_LOG_WARN);
    assert_int_equal(f->cfg.nlog_modules, 2);
    assert_string_equal(f->cfg.log_modules[0].name, "session");
    assert_int_equal(f->cfg.log_modules[0].level, EARSHOT_LOG_DEBUG);
    assert_string_equal(f->cfg.log_modules[1].name, "lws");
    assert_int_equal(f->cfg.log_modules[1].level, EARSHOT_LOG_ERROR);
    load_ok(f, "log = { modules = { }; };\n");
    assert_int_equal(f->cfg.nlog_modules, 0);
}

TEST(t_log_modules_errors)
{
    F;
    char many[2048] = "log = {\n  modules = {\n";
    for (int i = 0; i < 33; i++)
        strcat(many, fmt("    m%d = \"info\";\n", i));
    strcat(many, "  };\n};\n");
    const bad_case cases[] = {
        {"log = {\n  modules = \"debug\";\n};\n", 2,
         "'modules' must be a group: modules = { session = \"debug\"; };"},
        {"log = {\n  modules = {\n    session = \"loud\";\n  };\n};\n", 3,
         "the level of module 'session' must be \"debug\", \"info\", \"warn\" or \"error\""},
        {"log = {\n  modules = { main = \"info\";\n    hooks = 1; };\n};\n", 3,
         "the level of module 'hooks' must be \"debug\", \"info\", \"warn\" or \"error\""},
        {many, 2, "at most 32 modules may have their own level"},
    };
    FAILS_EACH(f, cases);
    /* 32 is the most */
    char *last = strstr(many, "    m32");
    memmove(last, last + strlen("    m32 = \"info\";\n"), strlen(last + strlen("    m32 = \"info\";\n")) + 1);
    load_ok(f, many);
    assert_int_equal(f->cfg.nlog_modules, 32);
}

/* ---- the key table ---------------------------------------------------------------- */

TEST(t_key_table_is_consistent)
{
    for (size_t i = 0; i < es_config_nkeys; i++) {
        const es_config_key *k = &es_config_keys[i];
        assert_ptr_equal(es_config_key_find(k->name), k);
        assert_non_null(k->doc);
        assert_null(strchr(k->doc, '|'));
        /* a group's rows are together, so the known-keys lists read in order */
        const char *dot = strchr(k->name, '.');
        for (size_t j = i + 2; dot && j < es_config_nkeys; j++)
            if (strncmp(es_config_keys[j].name, k->name, (size_t)(dot - k->name) + 1) == 0)
                assert_int_equal(strncmp(es_config_keys[j - 1].name, k->name,
                                         (size_t)(dot - k->name) + 1),
                                 0);
        char def[256];
        int has_default = es_config_key_default(k, def, sizeof def) == 0;
        switch (k->type) {
        case ES_KEY_INT:
            assert_true(k->def.i >= k->lo && k->def.i <= k->hi);
            assert_true(k->size == sizeof(int) || k->size == sizeof(size_t));
            break;
        case ES_KEY_NUMBER: assert_true(k->def.d >= k->lo && k->def.d <= k->hi); break;
        case ES_KEY_ENUM: {
            int found = 0;
            for (const char *const *c = k->choices; *c; c++)
                found |= strcmp(*c, k->def.s) == 0;
            assert_true(found);
            assert_int_equal(k->size, sizeof(int));
            break;
        }
        case ES_KEY_LIST:
        case ES_KEY_GROUP:
        case ES_KEY_PATH:
            assert_non_null(k->load);
            if (!has_default)
                assert_non_null(k->def_doc);
            break;
        default: break;
        }
        /* a restart-only row can be compared between two configs */
        if (!k->reloadable)
            assert_true(k->same || (!k->load && k->offset));
    }
    assert_null(es_config_key_find("server"));
    assert_null(es_config_key_find("server.prot"));
    assert_string_equal(es_config_key_leaf(es_config_key_find("limits.max_connections")),
                        "max_connections");
    assert_string_equal(es_config_key_leaf(es_config_key_find("hooks")), "hooks");
}

TEST(t_defaults_as_written)
{
    static const struct {
        const char *key, *text;
    } cases[] = {
        {"server.port", "8080"},           {"server.address", "\"0.0.0.0\""},
        {"session.idle_timeout", "15.0"},  {"server.web", "true"},
        {"server.behind_proxy", "false"},  {"log.level", "\"info\""},
        {"server.allowed_origins", "[ ]"}, {"log.modules", "{ }"},
    };
    char out[64];
    for (size_t i = 0; i < ES_ARRAY_LEN(cases); i++) {
        assert_int_equal(es_config_key_default(es_config_key_find(cases[i].key), out, sizeof out), 0);
        assert_string_equal(out, cases[i].text);
    }
    static const char *const none[] = {"server.tls", "plugin_dir", "script_dir", "web_dir", "hooks"};
    for (size_t i = 0; i < ES_ARRAY_LEN(none); i++) {
        assert_int_equal(es_config_key_default(es_config_key_find(none[i]), out, sizeof out), -1);
        assert_string_equal(out, "");
    }
}

TEST(t_markdown_table)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    es_config_keys_markdown(out);
    fclose(out);
    assert_starts_with(text, "| key | type | values | default | reload | what |\n"
                             "|---|---|---|---|---|---|\n");
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, es_config_nkeys + 2);
    assert_contains(text, "\n| `server.port` | integer | 0 to 65535 | `8080` | restart | ");
    assert_contains(text, "\n| `log.format` | string | `\"text\"`, `\"json\"` | `\"text\"` | yes | ");
    assert_contains(text, "\n| `server.tls` | group | `cert`, `key` | none (ws://) | restart | ");
    assert_contains(text, "\n| `limits.message_rate` | number | 0 to 1000000 | `50.0` | yes | ");
    for (size_t i = 0; i < es_config_nkeys; i++)
        assert_contains(text, fmt("\n| `%s` | ", es_config_keys[i].name));
    free(text);
}

/* Reload warns about exactly the restart-only keys that changed. */
TEST(t_restart_changes)
{
    F;
    tmpdir_write(&f->dir, "cert.pem", "certificate\n");
    tmpdir_write(&f->dir, "key.pem", "key\n");
    es_config running;
    const char *path = tmpdir_write(&f->dir, "running.cfg", "");
    assert_int_equal(cfg_load(&running, path, NULL, f->err, sizeof f->err), 0);
    char names[512];
    /* every reloadable key changed: nothing to warn about */
    load_ok(f, "server = { max_frame_bytes = 4096; send_queue_bytes = 8192; ping_interval = 3;\n"
               "  metrics = \"off\"; behind_proxy = true; web = false;\n"
               "  allowed_origins = [ \"https://a.example\" ]; };\n"
               "session = { takeover = \"never\"; idle_timeout = 1; refresh_interval = 1; };\n"
               "limits = { max_connections = 1; max_connections_per_address = 1;\n"
               "  message_rate = 1; message_burst = 1; rate_limit_close_after = 1;\n"
               "  first_message_timeout = 1; };\n"
               "log = { level = \"debug\"; format = \"json\"; modules = { lws = \"warn\"; }; };\n"
               "plugin_dir = \"p\"; script_dir = \"s\"; web_dir = \"w\";\n");
    assert_int_equal(es_config_restart_changes(&running, &f->cfg, names, sizeof names), 0);
    assert_string_equal(names, "");
    /* the same restart-only values: nothing either */
    load_ok(f, "server = { address = \"0.0.0.0\"; port = 8080; event_loop = \"libev\"; };\n"
               "limits = { handshake_timeout = 5; };\n");
    assert_int_equal(es_config_restart_changes(&running, &f->cfg, names, sizeof names), 0);
    load_ok(f, "server = { port = 9000; };\n");
    assert_int_equal(es_config_restart_changes(&running, &f->cfg, names, sizeof names), 1);
    assert_string_equal(names, "server.port");
    load_ok(f, "server = { address = \"127.0.0.1\"; port = 9000; event_loop = \"poll\";\n"
               "  tls = { cert = \"cert.pem\"; key = \"key.pem\"; }; };\n"
               "limits = { handshake_timeout = 2.0; };\n");
    assert_int_equal(es_config_restart_changes(&running, &f->cfg, names, sizeof names), 5);
    assert_string_equal(names, "server.address, server.port, server.event_loop, server.tls, "
                               "limits.handshake_timeout");
    /* tls on both sides: a different key file is a change */
    es_config with_tls;
    path = tmpdir_write(&f->dir, "tls.cfg",
                        "server = { tls = { cert = \"cert.pem\"; key = \"cert.pem\"; }; };\n");
    assert_int_equal(cfg_load(&with_tls, path, NULL, f->err, sizeof f->err), 0);
    load_ok(f, "server = { tls = { cert = \"cert.pem\"; key = \"key.pem\"; }; };\n");
    assert_int_equal(es_config_restart_changes(&with_tls, &f->cfg, names, sizeof names), 1);
    assert_string_equal(names, "server.tls");
    /* a short buffer is cut, still terminated */
    char small[8];
    load_ok(f, "server = { address = \"::\"; port = 1; };\n");
    assert_int_equal(es_config_restart_changes(&running, &f->cfg, small, sizeof small), 2);
    assert_string_equal(small, "server.");
    es_config_free(&with_tls);
    es_config_free(&running);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_stock_config_loads_with_documented_defaults),
        T(t_stock_config_lists_every_key_with_its_default),
        T(t_stock_config_values_are_the_defaults),
        T(t_empty_file_gives_defaults),
        T(t_comments_only_gives_defaults),
        T(t_empty_groups_give_defaults),
        T(t_null_default_plugin_dir_is_dot),
        T(t_every_value_set),
        T(t_enum_values),
        T(t_enum_defaults),
        T(t_range_ends_accepted),
        T(t_send_queue_exactly_twice_frame_ok),
        T(t_missing_file),
        T(t_syntax_error_names_line),
        T(t_syntax_error_first_line),
        T(t_syntax_error_unterminated_group),
        T(t_unknown_top_level_key),
        T(t_unknown_server_key),
        T(t_unknown_session_key),
        T(t_unknown_log_key),
        T(t_unknown_hook_key),
        T(t_wrong_types),
        T(t_groups_must_be_groups),
        T(t_out_of_range),
        T(t_bad_enum_values),
        T(t_send_queue_smaller_than_twice_frame),
        T(t_hook_without_type),
        T(t_unknown_hook_type),
        T(t_hook_without_valid_name),
        T(t_duplicate_hook_name),
        T(t_hook_entry_errors),
        T(t_error_line_numbers_follow_the_file),
        T(t_hooks_in_order_with_fields),
        T(t_plugin_dir_default_used_for_name_so),
        T(t_plugin_dir_absolute),
        T(t_plugin_dir_relative_to_config_folder),
        T(t_hook_path_relative_to_config_folder),
        T(t_hook_path_relative_to_a_nested_config),
        T(t_where_prefix),
        T(t_small_error_buffer_is_terminated),
        T(t_script_dir_default_and_relative),
        T(t_lua_entry_defaults),
        T(t_lua_entry_options),
        T(t_lua_entry_errors),
        T(t_lua_on_error_rejects_other_keys),
        T(t_limits_values),
        T(t_limits_errors),
        T(t_allowed_origins),
        T(t_allowed_origins_errors),
        T(t_join_headers),
        T(t_join_headers_errors),
        T(t_tls),
        T(t_tls_errors),
        T(t_log_modules),
        T(t_log_modules_errors),
        T(t_key_table_is_consistent),
        T(t_defaults_as_written),
        T(t_markdown_table),
        T(t_restart_changes),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
