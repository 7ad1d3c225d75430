/* proximity through its descriptor, with the fake host of plugin_test.h. */
#include "plugin_test.h"

#include "proximity.c"

static earshot_verdict ask(fixture *f, earshot_client a, earshot_client b, int matched)
{
    earshot_verdict v = earshot_plugin_describe()->match_filter(f->state, &a, &b, matched);
    /* the core asks once per pair: the answer must not depend on the order */
    assert_int_equal(earshot_plugin_describe()->match_filter(f->state, &b, &a, matched), v);
    return v;
}

static earshot_client at(const char *id, int32_t x, int32_t y)
{
    return pt_client(id, 1, 7, x, y, 0);
}

static void t_descriptor(void **ctx)
{
    (void)ctx;
    const earshot_plugin *d = earshot_plugin_describe();
    assert_string_equal(d->name, "proximity");
    assert_int_equal(d->api_version, EARSHOT_PLUGIN_API_VERSION);
    assert_non_null(d->match_filter);
    assert_non_null(d->query_radius);
    assert_null(d->on_join);
    assert_null(d->on_position);
    assert_null(d->on_relay);
    assert_null(d->on_leave);
    assert_null(d->on_pair);
    pt_check_shared_object(PLUGIN_SO);
}

/* The settings and their ranges are the ones README.md documents. */
static void t_settings(void **ctx)
{
    fixture *f = *ctx;
    const earshot_setting_def *d = earshot_plugin_describe()->settings;
    assert_string_equal(d[0].name, "radius");
    assert_int_equal(d[0].type, EARSHOT_SETTING_INT);
    assert_int_equal(d[0].int_default, 20);
    assert_int_equal(d[0].int_min, 0);
    assert_int_equal(d[0].int_max, INT32_MAX);
    assert_string_equal(d[1].name, "leave_radius");
    assert_int_equal(d[1].type, EARSHOT_SETTING_INT);
    assert_int_equal(d[1].int_default, 25);
    assert_int_equal(d[1].int_min, 0);
    assert_int_equal(d[1].int_max, INT32_MAX);
    assert_null(d[2].name);
    assert_int_equal(pt_set_int(&f->s, "radius", -1), -1);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", (int64_t)INT32_MAX + 1), -1);
    assert_int_equal(pt_set_int(&f->s, "radius", INT32_MAX), 0);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", INT32_MAX), 0);
    start(f);
    assert_int_equal(earshot_plugin_describe()->query_radius(f->state), INT32_MAX);
}

static void t_defaults(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    /* the grid asks about pairs out to the leave radius */
    assert_int_equal(earshot_plugin_describe()->query_radius(f->state), 25);
    /* 12-16-20: exactly on the radius matches, a unit further does not */
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 12, 16), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 12, 17), 0), EARSHOT_DENY);
    assert_int_equal(ask(f, at("a", -10, -10), at("b", 10, -10), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", -10, -10), at("b", 11, -10), 0), EARSHOT_DENY);
    assert_int_equal(ask(f, at("a", 5, 5), at("b", 5, 5), 0), EARSHOT_ALLOW);
}

static void t_hysteresis(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    /* b walks away from a along x; `matched` follows the previous answer,
     * as the core's does */
    static const struct {
        int32_t x;
        earshot_verdict v;
    } walk[] = {
        {10, EARSHOT_ALLOW}, {20, EARSHOT_ALLOW}, {23, EARSHOT_ALLOW}, {25, EARSHOT_ALLOW},
        {26, EARSHOT_DENY},  {23, EARSHOT_DENY},  {21, EARSHOT_DENY},  {20, EARSHOT_ALLOW},
        {24, EARSHOT_ALLOW}, {0, EARSHOT_ALLOW},  {30, EARSHOT_DENY},
    };
    int matched = 0;
    for (size_t i = 0; i < sizeof walk / sizeof walk[0]; i++) {
        earshot_verdict v = ask(f, at("a", 0, 0), at("b", walk[i].x, 0), matched);
        if (v != walk[i].v)
            fail_msg("step %zu (x = %d, matched = %d): got %d", i, walk[i].x, matched, v);
        matched = v == EARSHOT_ALLOW;
    }
    /* the leave radius is a circle too: 15-20-25 stays, 15-21 parts */
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 15, 20), 1), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 15, 21), 1), EARSHOT_DENY);
}

static void t_same_game_map_channel(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    earshot_client a = pt_client("a", 1, 7, 0, 0, 3);
    assert_int_equal(ask(f, a, pt_client("b", 1, 7, 1, 0, 3), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, a, pt_client("b", 2, 7, 1, 0, 3), 0), EARSHOT_DENY);
    assert_int_equal(ask(f, a, pt_client("b", 1, 8, 1, 0, 3), 0), EARSHOT_DENY);
    assert_int_equal(ask(f, a, pt_client("b", 1, 7, 1, 0, 4), 0), EARSHOT_DENY);
    /* matched already does not excuse a change of map */
    assert_int_equal(ask(f, a, pt_client("b", 1, 8, 0, 0, 3), 1), EARSHOT_DENY);
}

static void t_custom_radii(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_int(&f->s, "radius", 5), 0);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", 5), 0);
    start(f);
    assert_int_equal(earshot_plugin_describe()->query_radius(f->state), 5);
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 3, 4), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", 0, 0), at("b", 4, 4), 1), EARSHOT_DENY); /* no hysteresis */
}

static void t_zero_radius(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_int(&f->s, "radius", 0), 0);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", 0), 0);
    start(f);
    assert_int_equal(ask(f, at("a", 3, 3), at("b", 3, 3), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", 3, 3), at("b", 3, 4), 1), EARSHOT_DENY);
}

static void t_int32_extremes(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_int(&f->s, "radius", INT32_MAX), 0);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", INT32_MAX), 0);
    start(f);
    /* axis gaps of 2^32 - 1 must not overflow into a match */
    assert_int_equal(ask(f, at("a", INT32_MIN, 0), at("b", INT32_MAX, 0), 1), EARSHOT_DENY);
    assert_int_equal(ask(f, at("a", INT32_MIN, INT32_MIN), at("b", INT32_MAX, INT32_MAX), 1),
                     EARSHOT_DENY);
    assert_int_equal(ask(f, at("a", 0, 0), at("b", INT32_MAX, 0), 0), EARSHOT_ALLOW);
    assert_int_equal(ask(f, at("a", -1, 0), at("b", INT32_MAX, 0), 0), EARSHOT_DENY);
}

static void t_leave_radius_below_radius_refused(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_int(&f->s, "radius", 20), 0);
    assert_int_equal(pt_set_int(&f->s, "leave_radius", 10), 0);
    assert_int_not_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_null(f->state);
    assert_string_equal(f->err, "leave_radius (10) must be at least radius (20)");
    /* teardown checks that the refused init freed what it took */
}

static void t_out_of_memory(void **ctx)
{
    fixture *f = *ctx;
    pt_fail_in = 1;
    assert_int_not_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_null(f->state);
    assert_string_equal(f->err, "out of memory");
}

static void t_two_instances(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    earshot_settings s2;
    pt_settings_defaults(&s2, earshot_plugin_describe()->settings);
    assert_int_equal(pt_set_int(&s2, "radius", 100), 0);
    assert_int_equal(pt_set_int(&s2, "leave_radius", 100), 0);
    void *wide;
    char err[64];
    assert_int_equal(pt_init(&s2, &wide, err, sizeof err), 0);
    earshot_client a = at("a", 0, 0), b = at("b", 50, 0);
    assert_int_equal(earshot_plugin_describe()->match_filter(f->state, &a, &b, 0), EARSHOT_DENY);
    assert_int_equal(earshot_plugin_describe()->match_filter(wide, &a, &b, 0), EARSHOT_ALLOW);
    earshot_plugin_describe()->destroy(wide);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_descriptor),
        T(t_settings),
        T(t_defaults),
        T(t_hysteresis),
        T(t_same_game_map_channel),
        T(t_custom_radii),
        T(t_zero_radius),
        T(t_int32_extremes),
        T(t_leave_radius_below_radius_refused),
        T(t_out_of_memory),
        T(t_two_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
