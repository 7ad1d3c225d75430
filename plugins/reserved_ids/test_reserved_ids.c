/* reserved_ids through its descriptor, with the fake host of plugin_test.h. */
#include "plugin_test.h"

#include "reserved_ids.c"

/* The join hook's verdict for id; *reason as the hook left it. */
static earshot_verdict join(fixture *f, const char *id, const char **reason)
{
    earshot_join j = {.client_id = id, .address = "127.0.0.1", .path = "/", .query = ""};
    *reason = NULL;
    return earshot_plugin_describe()->on_join(f->state, &j, reason);
}

static void t_descriptor(void **ctx)
{
    (void)ctx;
    const earshot_plugin *d = earshot_plugin_describe();
    assert_string_equal(d->name, "reserved_ids");
    assert_string_equal(d->version, "1.0.0");
    assert_non_null(d->on_join);
    assert_null(d->on_position);
    assert_null(d->match_filter);
    assert_null(d->query_radius);
    assert_null(d->on_relay);
    assert_null(d->on_leave);
    assert_null(d->on_pair);
    pt_check_shared_object(PLUGIN_SO);
}

static void t_settings(void **ctx)
{
    (void)ctx;
    const earshot_setting_def *d = earshot_plugin_describe()->settings;
    assert_string_equal(d[0].name, "prefix");
    assert_int_equal(d[0].type, EARSHOT_SETTING_STRING);
    assert_string_equal(d[0].string_default, "server-");
    assert_null(d[1].name);
}

static void t_default_prefix(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    assert_string_equal(pt_log_text, "INFO refusing client_ids that start with \"server-\"\n");
    const char *reason;
    assert_int_equal(join(f, "server-bot-1", &reason), EARSHOT_DENY);
    assert_string_equal(reason, "client_id is reserved");
    assert_int_equal(join(f, "server-", &reason), EARSHOT_DENY);
    assert_string_equal(reason, "client_id is reserved");
    /* everyone else is left to the rest of the chain */
    assert_int_equal(join(f, "player-1", &reason), EARSHOT_PASS);
    assert_null(reason);
    assert_int_equal(join(f, "server", &reason), EARSHOT_PASS);
    assert_int_equal(join(f, "Server-1", &reason), EARSHOT_PASS);
    assert_int_equal(join(f, "my-server-1", &reason), EARSHOT_PASS);
    assert_null(reason);
}

static void t_custom_prefix(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_string(&f->s, "prefix", "gm:"), 0);
    start(f);
    assert_string_equal(pt_log_text, "INFO refusing client_ids that start with \"gm:\"\n");
    const char *reason;
    assert_int_equal(join(f, "gm:alice", &reason), EARSHOT_DENY);
    assert_string_equal(reason, "client_id is reserved");
    assert_int_equal(join(f, "server-1", &reason), EARSHOT_PASS);
    assert_int_equal(join(f, "gm", &reason), EARSHOT_PASS);
}

static void t_empty_prefix_refused(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_string(&f->s, "prefix", ""), 0);
    assert_int_not_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_null(f->state);
    assert_string_equal(f->err, "prefix must not be empty (it would refuse everyone)");
    assert_string_equal(pt_log_text, "");
}

static void t_out_of_memory(void **ctx)
{
    fixture *f = *ctx;
    pt_fail_in = 1;
    assert_int_not_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_null(f->state);
    assert_string_equal(f->err, "out of memory");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_descriptor),
        T(t_settings),
        T(t_default_prefix),
        T(t_custom_prefix),
        T(t_empty_prefix_refused),
        T(t_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
