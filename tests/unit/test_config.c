/*
 * test_config - cfg_load() on the stock config and on temporary files.
 */
#include "helpers.h"

#include <sys/stat.h>

#include "config.h"

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
    tmpdir dir;
    es_config cfg;
    int loaded;
    char err[2048];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tmpdir_make(&f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->loaded)
        es_config_free(&f->cfg);
    tmpdir_remove(&f->dir);
    free(f);
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

/* Load text (written with mkstemps); must succeed. Returns the path. */
static const char *load_ok(fx *f, const char *text)
{
    const char *path = tmpdir_mkstemp(&f->dir, text);
    f->err[0] = '\0';
    if (cfg_load(&f->cfg, path, "/default/plugins", f->err, sizeof f->err) != 0)
        fail_msg("config failed to load: %s\n--- config ---\n%s", f->err, text);
    f->loaded = 1;
    return path;
}

/* Load text; must fail with exactly "<path>:<line>: <message>". */
static void load_fails(fx *f, const char *text, int line, const char *message)
{
    const char *path = tmpdir_mkstemp(&f->dir, text);
    memset(f->err, 0, sizeof f->err);
    if (cfg_load(&f->cfg, path, "/default/plugins", f->err, sizeof f->err) == 0) {
        es_config_free(&f->cfg);
        fail_msg("config loaded although it must fail:\n%s", text);
    }
    const char *want = fmt("%s:%d: %s", path, line, message);
    if (strcmp(f->err, want) != 0)
        fail_msg("error  \"%s\"\nwanted \"%s\"", f->err, want);
}

/* Load text; must fail; returns the error after checking the file:line: prefix. */
static const char *load_fails_at(fx *f, const char *text, int line)
{
    const char *path = tmpdir_mkstemp(&f->dir, text);
    memset(f->err, 0, sizeof f->err);
    if (cfg_load(&f->cfg, path, "/default/plugins", f->err, sizeof f->err) == 0) {
        es_config_free(&f->cfg);
        fail_msg("config loaded although it must fail:\n%s", text);
    }
    assert_starts_with(f->err, fmt("%s:%d: ", path, line));
    return f->err + strlen(fmt("%s:%d: ", path, line));
}

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

TEST(t_takeover_values)
{
    F;
    static const char *const names[] = {"always", "same_address", "never"};
    static const es_takeover values[] = {ES_TAKEOVER_ALWAYS, ES_TAKEOVER_SAME_ADDRESS,
                                         ES_TAKEOVER_NEVER};
    for (int i = 0; i < 3; i++) {
        load_ok(f, fmt("session = { takeover = \"%s\"; };\n", names[i]));
        assert_int_equal(f->cfg.takeover, values[i]);
        assert_string_equal(es_takeover_name(values[i]), names[i]);
        es_config_free(&f->cfg);
        f->loaded = 0;
    }
}

TEST(t_log_levels)
{
    F;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    static const es_log_level values[] = {EARSHOT_LOG_DEBUG, EARSHOT_LOG_INFO, EARSHOT_LOG_WARN,
                                          EARSHOT_LOG_ERROR};
    for (int i = 0; i < 4; i++) {
        load_ok(f, fmt("log = { level = \"%s\"; };\n", names[i]));
        assert_int_equal(f->cfg.log_level, values[i]);
        es_config_free(&f->cfg);
        f->loaded = 0;
    }
}

TEST(t_integer_seconds_accepted_for_numbers)
{
    F;
    load_ok(f, "session = { idle_timeout = 30; refresh_interval = 7; };\n");
    assert_true(f->cfg.idle_timeout == 30.0);
    assert_true(f->cfg.refresh_interval == 7.0);
}

TEST(t_range_limits_accepted)
{
    F;
    load_ok(f, "server = { port = 65535; max_frame_bytes = 128; send_queue_bytes = 4096;\n"
               "  ping_interval = 3600; };\n"
               "session = { idle_timeout = 86400.0; refresh_interval = 0.0; };\n");
    assert_int_equal(f->cfg.port, 65535);
    assert_int_equal(f->cfg.max_frame_bytes, 128);
    assert_int_equal(f->cfg.send_queue_bytes, 4096);
    assert_true(f->cfg.idle_timeout == 86400.0);
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
               "refresh_interval)");
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
    load_fails(f, "server = {\n  port = \"8080\";\n};\n", 2, "'port' must be an integer");
    load_fails(f, "server = {\n  port = 80.5;\n};\n", 2, "'port' must be an integer");
    load_fails(f, "server = {\n\n  address = 5;\n};\n", 3, "'address' must be a string");
    load_fails(f, "server = { max_frame_bytes = true; };\n", 1,
               "'max_frame_bytes' must be an integer");
    load_fails(f, "session = {\n  idle_timeout = \"15\";\n};\n", 2,
               "'idle_timeout' must be a number");
    load_fails(f, "session = {\n  refresh_interval = false;\n};\n", 2,
               "'refresh_interval' must be a number");
    load_fails(f, "session = {\n  takeover = 1;\n};\n", 2, "'takeover' must be a string");
    load_fails(f, "log = {\n  level = 2;\n};\n", 2, "'level' must be a string");
    load_fails(f, "plugin_dir = 5;\n", 1, "'plugin_dir' must be a string");
}

TEST(t_groups_must_be_groups)
{
    F;
    load_fails(f, "\nserver = 5;\n", 2, "'server' must be a group: server = { ... };");
    load_fails(f, "session = \"x\";\n", 1, "'session' must be a group: session = { ... };");
    load_fails(f, "log = ( 1 );\n", 1, "'log' must be a group: log = { ... };");
    load_fails(f, "\n\nhooks = 5;\n", 3, "'hooks' must be a list: hooks = ( { ... }, { ... } );");
    load_fails(f, "hooks = { type = \"plugin\"; };\n", 1,
               "'hooks' must be a list: hooks = ( { ... }, { ... } );");
}

TEST(t_out_of_range)
{
    F;
    load_fails(f, "server = {\n  port = 65536;\n};\n", 2,
               "'port' must be between 0 and 65535 (got 65536)");
    load_fails(f, "server = {\n  port = -1;\n};\n", 2, "'port' must be between 0 and 65535 (got -1)");
    load_fails(f, "server = {\n  port = 100000000000L;\n};\n", 2,
               "'port' must be between 0 and 65535 (got 100000000000)");
    load_fails(f, "server = {\n  max_frame_bytes = 127;\n};\n", 2,
               "'max_frame_bytes' must be between 128 and 16777216 (got 127)");
    load_fails(f, "server = {\n  ping_interval = 0;\n};\n", 2,
               "'ping_interval' must be between 1 and 3600 (got 0)");
    load_fails(f, "server = {\n  send_queue_bytes = 4095;\n};\n", 2,
               "'send_queue_bytes' must be between 4096 and 1073741824 (got 4095)");
    load_fails(f, "session = {\n  idle_timeout = -1.0;\n};\n", 2,
               "'idle_timeout' must be between 0 and 86400 (got -1)");
    load_fails(f, "session = {\n  refresh_interval = 86401;\n};\n", 2,
               "'refresh_interval' must be between 0 and 86400 (got 86401)");
}

TEST(t_bad_takeover)
{
    F;
    load_fails(f, "session = {\n  idle_timeout = 1.0;\n  takeover = \"sometimes\";\n};\n", 3,
               "'takeover' must be \"always\", \"same_address\" or \"never\" (got \"sometimes\")");
    load_fails(f, "session = { takeover = \"Always\"; };\n", 1,
               "'takeover' must be \"always\", \"same_address\" or \"never\" (got \"Always\")");
}

TEST(t_bad_log_level)
{
    F;
    load_fails(f, "\n\nlog = {\n  level = \"verbose\";\n};\n", 4,
               "'level' must be \"debug\", \"info\", \"warn\" or \"error\" (got \"verbose\")");
    load_fails(f, "log = { level = \"INFO\"; };\n", 1,
               "'level' must be \"debug\", \"info\", \"warn\" or \"error\" (got \"INFO\")");
}

TEST(t_send_queue_smaller_than_twice_frame)
{
    F;
    load_fails(f, "server = {\n  max_frame_bytes = 4096;\n  send_queue_bytes = 8191;\n};\n", 3,
               "'send_queue_bytes' (8191) must be at least twice 'max_frame_bytes' (4096) so "
               "that any relay fits");
    /* with send_queue_bytes left at its default, the server group is named */
    load_fails(f, "\nserver = {\n  max_frame_bytes = 1048576;\n};\n", 2,
               "'send_queue_bytes' (1048576) must be at least twice 'max_frame_bytes' (1048576) "
               "so that any relay fits");
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
    load_fails(f, "hooks = (\n  { type = \"plugin\"; }\n);\n", 2,
               "hook entry needs name = \"...\"; (letters, digits, '_' or '-')");
    load_fails(f, "hooks = (\n  { type = \"plugin\"; name = \"a b\"; }\n);\n", 2,
               "hook entry needs name = \"...\"; (letters, digits, '_' or '-')");
    load_fails(f, "hooks = (\n  { type = \"plugin\"; name = \"../x\"; }\n);\n", 2,
               "hook entry needs name = \"...\"; (letters, digits, '_' or '-')");
    load_fails(f, "hooks = (\n  { type = \"plugin\"; name = \"\"; }\n);\n", 2,
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

TEST(t_hook_settings_not_a_group)
{
    F;
    load_fails(f,
               "hooks = (\n"
               "  {\n"
               "    type = \"plugin\";\n"
               "    name = \"a\";\n"
               "    settings = 3;\n"
               "  }\n"
               ");\n",
               5, "'settings' must be a group: settings = { ... };");
    load_fails(f, "hooks = (\n  { type = \"plugin\"; name = \"a\";\n settings = ( 1 ); }\n);\n", 3,
               "'settings' must be a group: settings = { ... };");
}

TEST(t_hook_entry_not_a_group)
{
    F;
    load_fails(f, "hooks = (\n  5\n);\n", 2,
               "each entry of 'hooks' must be a group { type = ...; name = ...; }");
}

TEST(t_hook_field_types)
{
    F;
    load_fails(f, "hooks = (\n  { type = \"plugin\";\n    name = \"a\";\n    enabled = 1; }\n);\n", 4,
               "'enabled' must be true or false");
    load_fails(f, "hooks = (\n  { type = 1; name = \"a\"; }\n);\n", 2, "'type' must be a string");
    load_fails(f, "hooks = (\n  { type = \"plugin\";\n name = [1]; }\n);\n", 3,
               "'name' must be a string");
    load_fails(f, "hooks = (\n  { type = \"plugin\"; name = \"a\";\n\n path = 7; }\n);\n", 4,
               "'path' must be a string");
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

TEST(t_metrics_values)
{
    F;
    static const char *const names[] = {"off", "loopback", "public"};
    static const es_metrics_access values[] = {ES_METRICS_OFF, ES_METRICS_LOOPBACK,
                                               ES_METRICS_PUBLIC};
    for (int i = 0; i < 3; i++) {
        load_ok(f, fmt("server = { metrics = \"%s\"; };\n", names[i]));
        assert_int_equal(f->cfg.metrics, values[i]);
        es_config_free(&f->cfg);
        f->loaded = 0;
    }
    load_ok(f, "");
    assert_int_equal(f->cfg.metrics, ES_METRICS_LOOPBACK);
}

TEST(t_bad_metrics)
{
    F;
    load_fails(f, "server = {\n  metrics = \"everyone\";\n};\n", 2,
               "'metrics' must be \"off\", \"loopback\" or \"public\" (got \"everyone\")");
    load_fails(f, "server = {\n\n  metrics = true;\n};\n", 3, "'metrics' must be a string");
}

TEST(t_script_dir_default_and_relative)
{
    F;
    load_ok(f, "hooks = ( { type = \"lua\"; name = \"auth\"; } );\n");
    assert_string_equal(f->cfg.script_dir, "/default/scripts");
    assert_int_equal(f->cfg.hooks[0].kind, ES_HOOK_LUA);
    assert_string_equal(f->cfg.hooks[0].path, "/default/scripts/auth.lua");
    es_config_free(&f->cfg);
    f->loaded = 0;
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
    assert_int_equal(h->deny_on_error[ES_VHOOK_JOIN], 1);
    assert_int_equal(h->deny_on_error[ES_VHOOK_POSITION], 0);
    assert_int_equal(h->deny_on_error[ES_VHOOK_MATCH], 0);
    assert_int_equal(h->deny_on_error[ES_VHOOK_RELAY], 1);
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
    for (int i = 0; i < ES_VHOOK_COUNT; i++) {
        assert_int_equal(a->deny_on_error[i], 0);
        assert_int_equal(b->deny_on_error[i], 1);
    }
    assert_int_equal(a->instruction_limit, 5000);
    assert_int_equal(a->memory_limit, 1048576);
    assert_int_equal(b->grant_io, 0);
    assert_int_equal(b->grant_os, 1);
    assert_int_equal(c->deny_on_error[ES_VHOOK_JOIN], 0);
    assert_int_equal(c->deny_on_error[ES_VHOOK_POSITION], 1);
    assert_int_equal(c->deny_on_error[ES_VHOOK_MATCH], 0);
    assert_int_equal(c->deny_on_error[ES_VHOOK_RELAY], 1);
}

TEST(t_lua_entry_errors)
{
    F;
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    grant = [\"net\"]; }\n);\n", 3,
               "'grant' may name \"io\" and \"os\" only");
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    grant = \"io\"; }\n);\n", 3,
               "'grant' must be a list of library names: grant = [\"io\"];");
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    on_error = \"maybe\"; }\n);\n", 3,
               "'on_error' must be \"allow\" or \"deny\" (got \"maybe\")");
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    on_error = 1; }\n);\n", 3,
               "'on_error' must be \"allow\", \"deny\" or a group "
               "{ join = \"deny\"; position = \"allow\"; ... }");
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    on_error = { relay = \"nope\"; }; }\n);\n",
               3, "'relay' must be \"allow\" or \"deny\" (got \"nope\")");
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    instruction_limit = 999; }\n);\n", 3,
               "'instruction_limit' must be between 1000 and 1099511627776 (got 999)");
    /* Lua-only keys are unknown on a plugin entry */
    const char *msg = load_fails_at(
        f, "hooks = (\n  { type = \"plugin\"; name = \"a\";\n    grant = [\"io\"]; }\n);\n", 3);
    assert_starts_with(msg, "unknown setting 'grant' in ");
    assert_contains(msg, "(known: type, name, enabled, path, settings)");
}

TEST(t_lua_on_error_unknown_key)
{
    F;
    load_fails(f, "hooks = (\n  { type = \"lua\"; name = \"a\";\n    on_error = { jion = \"deny\"; }; }\n);\n",
               3, "unknown setting 'jion' in 'on_error' (known: join, position, match, relay)");
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

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_stock_config_loads_with_documented_defaults),
        T(t_empty_file_gives_defaults),
        T(t_comments_only_gives_defaults),
        T(t_empty_groups_give_defaults),
        T(t_null_default_plugin_dir_is_dot),
        T(t_every_value_set),
        T(t_takeover_values),
        T(t_log_levels),
        T(t_integer_seconds_accepted_for_numbers),
        T(t_range_limits_accepted),
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
        T(t_bad_takeover),
        T(t_bad_log_level),
        T(t_send_queue_smaller_than_twice_frame),
        T(t_hook_without_type),
        T(t_unknown_hook_type),
        T(t_hook_without_valid_name),
        T(t_duplicate_hook_name),
        T(t_hook_settings_not_a_group),
        T(t_hook_entry_not_a_group),
        T(t_hook_field_types),
        T(t_error_line_numbers_follow_the_file),
        T(t_hooks_in_order_with_fields),
        T(t_plugin_dir_default_used_for_name_so),
        T(t_plugin_dir_absolute),
        T(t_plugin_dir_relative_to_config_folder),
        T(t_hook_path_relative_to_config_folder),
        T(t_hook_path_relative_to_a_nested_config),
        T(t_where_prefix),
        T(t_small_error_buffer_is_terminated),
        T(t_metrics_values),
        T(t_bad_metrics),
        T(t_script_dir_default_and_relative),
        T(t_lua_entry_defaults),
        T(t_lua_entry_options),
        T(t_lua_entry_errors),
        T(t_lua_on_error_unknown_key),
        T(t_lua_on_error_rejects_other_keys),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
