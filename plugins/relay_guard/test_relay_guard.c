/* relay_guard through its descriptor, with the fake host of plugin_test.h. */
#include "plugin_test.h"

#include "relay_guard.c"

static void pair(fixture *f, const char *a, const char *b, int matched)
{
    earshot_client ca = pt_client(a, 1, 1, 0, 0, 0), cb = pt_client(b, 1, 1, 0, 0, 0);
    earshot_plugin_describe()->on_pair(f->state, &ca, &cb, matched);
}

static earshot_verdict relay_kind(fixture *f, const char *from, const char *to, int matched,
                                  earshot_relay_kind kind)
{
    earshot_client s = pt_client(from, 1, 1, 0, 0, 0), t = pt_client(to, 1, 1, 900, 0, 0);
    earshot_relay r = {.kind = kind, .sender = &s, .target = &t, .payload = "v=0",
                       .payload_len = 3, .matched = matched};
    const char *reason = NULL;
    earshot_verdict v = earshot_plugin_describe()->on_relay(f->state, &r, &reason);
    assert_null(reason); /* the core's default text names the target */
    assert_true(v == EARSHOT_PASS || v == EARSHOT_DENY); /* never ALLOW: later links decide */
    return v;
}

static earshot_verdict relay(fixture *f, const char *from, const char *to, int matched)
{
    return relay_kind(f, from, to, matched, EARSHOT_RELAY_OFFER);
}

/* Parted pairs the plugin remembers now. */
static unsigned remembered(fixture *f)
{
    guard *g = f->state;
    return HASH_COUNT(g->table);
}

static void t_descriptor(void **ctx)
{
    (void)ctx;
    const earshot_plugin *d = earshot_plugin_describe();
    assert_string_equal(d->name, "relay_guard");
    assert_non_null(d->on_relay);
    assert_non_null(d->on_pair);
    assert_non_null(d->on_tick);
    assert_true(d->tick_interval == 1.0);
    assert_null(d->on_join);
    assert_null(d->on_position);
    assert_null(d->match_filter);
    assert_null(d->query_radius);
    assert_null(d->on_leave);
    pt_check_shared_object(PLUGIN_SO);
}

/* The setting and its range are the ones README.md documents. */
static void t_settings(void **ctx)
{
    fixture *f = *ctx;
    const earshot_setting_def *d = earshot_plugin_describe()->settings;
    assert_string_equal(d[0].name, "grace");
    assert_int_equal(d[0].type, EARSHOT_SETTING_NUMBER);
    assert_true(d[0].num_default == 30.0);
    assert_true(d[0].num_min == 0.0);
    assert_true(d[0].num_max == 86400.0);
    assert_null(d[1].name);
    assert_int_equal(pt_set_number(&f->s, "grace", -0.5), -1);
    assert_int_equal(pt_set_number(&f->s, "grace", 86400.5), -1);
    assert_int_equal(pt_set_number(&f->s, "grace", 86400.0), 0);
    start(f);
    pair(f, "a", "b", 0);
    pt_clock += 86400.0;
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    pt_clock += 0.001;
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
}

static void t_matched_passes(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    pair(f, "a", "b", 1);
    assert_int_equal(relay_kind(f, "a", "b", 1, EARSHOT_RELAY_OFFER), EARSHOT_PASS);
    assert_int_equal(relay_kind(f, "b", "a", 1, EARSHOT_RELAY_ANSWER), EARSHOT_PASS);
    assert_int_equal(relay_kind(f, "a", "b", 1, EARSHOT_RELAY_ICE_CANDIDATE), EARSHOT_PASS);
    assert_int_equal(remembered(f), 0); /* a current match needs no entry */
}

static void t_never_matched_denied(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    assert_int_equal(relay_kind(f, "a", "bob-2", 0, EARSHOT_RELAY_OFFER), EARSHOT_DENY);
    assert_int_equal(relay_kind(f, "bob-2", "a", 0, EARSHOT_RELAY_ANSWER), EARSHOT_DENY);
    assert_int_equal(relay_kind(f, "a", "bob-2", 0, EARSHOT_RELAY_ICE_CANDIDATE), EARSHOT_DENY);
}

static void t_parted_pair_within_grace(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    pair(f, "a", "b", 1);
    pair(f, "a", "b", 0);
    assert_int_equal(remembered(f), 1);
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    assert_int_equal(relay_kind(f, "b", "a", 0, EARSHOT_RELAY_ANSWER), EARSHOT_PASS);
    /* per pair: neither may reach a third client */
    assert_int_equal(relay(f, "a", "c", 0), EARSHOT_DENY);
    assert_int_equal(relay(f, "c", "b", 0), EARSHOT_DENY);
    /* ids are compared whole: "a" + "b" is not "ab" + "" nor "a\0b" mixed up */
    assert_int_equal(relay(f, "ab", "", 0), EARSHOT_DENY);
    assert_int_equal(relay(f, "b", "a", 0), EARSHOT_PASS);
}

static void t_grace_expires_exactly(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_number(&f->s, "grace", 2.0), 0);
    start(f);
    pair(f, "a", "b", 0);
    pt_clock += 2.0; /* at the end of the grace period: still allowed */
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    pt_clock += 0.25;
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
    assert_int_equal(relay_kind(f, "b", "a", 0, EARSHOT_RELAY_ICE_CANDIDATE), EARSHOT_DENY);
    assert_int_equal(remembered(f), 0);
    /* matched again: allowed again */
    pair(f, "a", "b", 1);
    assert_int_equal(relay(f, "a", "b", 1), EARSHOT_PASS);
}

static void t_parting_again_restarts_grace(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_number(&f->s, "grace", 10.0), 0);
    start(f);
    pair(f, "a", "b", 0); /* at 0 */
    pt_clock += 4.0;
    pair(f, "c", "d", 0); /* at 4 */
    pt_clock += 4.0;
    pair(f, "b", "a", 0); /* at 8: a-b parts again, now after c-d */
    pt_clock += 6.5;      /* 14.5: c-d's grace is over, a-b's is not */
    assert_int_equal(relay(f, "c", "d", 0), EARSHOT_DENY);
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    assert_int_equal(remembered(f), 1);
    pt_clock += 3.5; /* 18: 10 s after a-b's last parting */
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    pt_clock += 0.5; /* 18.5 */
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
}

static void t_rematch_forgets(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    long empty = pt_live_blocks;
    pair(f, "a", "b", 0);
    pair(f, "a", "c", 0);
    assert_int_equal(remembered(f), 2);
    pair(f, "b", "a", 1);
    assert_int_equal(remembered(f), 1);
    pair(f, "a", "c", 1);
    assert_int_equal(remembered(f), 0);
    assert_int_equal(pt_live_blocks, empty); /* the entries and the table are gone */
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
}

static void t_zero_grace(void **ctx)
{
    fixture *f = *ctx;
    assert_int_equal(pt_set_number(&f->s, "grace", 0.0), 0);
    start(f);
    long empty = pt_live_blocks;
    pair(f, "a", "b", 1);
    pair(f, "a", "b", 0);
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
    assert_int_equal(relay(f, "a", "b", 1), EARSHOT_PASS);
    assert_int_equal(remembered(f), 0);
    assert_int_equal(pt_live_blocks, empty);
}

/* Many pairs part, their grace runs out: the table gives back every block. */
static void t_table_shrinks_back(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    long empty = pt_live_blocks;
    char ids[1000][8];
    for (int i = 0; i < 1000; i++) {
        snprintf(ids[i], sizeof ids[i], "p%d", i);
        pair(f, "hub", ids[i], 1);
        pair(f, "hub", ids[i], 0);
        if (i == 499)
            pt_clock += 20.0; /* the second half parts 20 s later */
    }
    assert_int_equal(remembered(f), 1000);
    assert_true(pt_live_blocks > empty + 1000); /* the entries and the table */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(relay(f, ids[i], "hub", 0), EARSHOT_PASS);
    assert_int_equal(relay(f, "stranger", "hub", 0), EARSHOT_DENY);
    pt_clock += 15.0; /* first half: 35 s ago, second half: 15 s */
    assert_int_equal(relay(f, "p0", "hub", 0), EARSHOT_DENY);
    assert_int_equal(remembered(f), 500);
    assert_int_equal(relay(f, "p500", "hub", 0), EARSHOT_PASS);
    pt_clock += 15.5; /* everyone's grace is over; a pair hook call expires them too */
    pair(f, "x", "y", 1);
    assert_int_equal(remembered(f), 0);
    assert_null(((guard *)f->state)->table);
    assert_null(((guard *)f->state)->oldest);
    assert_int_equal(pt_live_blocks, empty);
    /* and it fills again as before */
    pair(f, "hub", "p1", 0);
    assert_int_equal(relay(f, "p1", "hub", 0), EARSHOT_PASS);
    assert_int_equal(remembered(f), 1);
}

/* Pairs part all the time and nothing else happens: the tick alone keeps
 * the memory flat, at what the pairs within their grace need. */
static void t_tick_keeps_memory_flat(void **ctx)
{
    fixture *f = *ctx;
    start(f); /* grace 30 s */
    const earshot_plugin *d = earshot_plugin_describe();
    long empty = pt_live_blocks;
    long most = 0;
    char id[16];
    /* an hour: 10 pairs part every second, each once; a tick every second */
    for (int t = 0; t < 3600; t++) {
        for (int k = 0; k < 10; k++) {
            snprintf(id, sizeof id, "p%d", t * 10 + k);
            pair(f, "hub", id, 0);
        }
        pt_clock += 1.0;
        d->on_tick(f->state);
        assert_true(remembered(f) <= 310); /* 30 s of partings, and one tick's */
        if (t >= 60 && pt_live_blocks > most)
            most = pt_live_blocks;
    }
    assert_true(most < empty + 400); /* 310 entries and the table's few blocks */
    /* quiet: only ticks, and the table empties */
    pt_clock += 31.0;
    d->on_tick(f->state);
    assert_int_equal(remembered(f), 0);
    assert_int_equal(pt_live_blocks, empty);
}

/* The table hashes with the host's keyed hash, and stays right even when
 * every key collides. */
static void t_uses_host_hash(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    pair(f, "a", "b", 0);
    assert_true(pt_hash_calls > 0);
    unsigned long calls = pt_hash_calls;
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
    assert_true(pt_hash_calls > calls);
}

static void t_all_keys_colliding(void **ctx)
{
    fixture *f = *ctx;
    pt_hash_constant = 1;
    start(f);
    char ids[300][8];
    for (int i = 0; i < 300; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        pair(f, ids[i], "hub", 0);
    }
    for (int i = 0; i < 300; i += 2)
        pair(f, "hub", ids[i], 1);
    assert_int_equal(remembered(f), 150);
    for (int i = 0; i < 300; i++)
        assert_int_equal(relay(f, "hub", ids[i], 0), i % 2 ? EARSHOT_PASS : EARSHOT_DENY);
    /* destroy (teardown) frees a table of long chains as well */
}

static void t_longest_ids(void **ctx)
{
    fixture *f = *ctx;
    start(f);
    char a[129], b[129], c[130];
    memset(a, 'a', 128), a[128] = '\0';
    memset(b, 'b', 128), b[128] = '\0';
    memset(c, 'c', 129), c[129] = '\0';
    pair(f, a, b, 0);
    assert_int_equal(relay(f, b, a, 0), EARSHOT_PASS);
    b[127] = 'c'; /* differs in the last byte */
    assert_int_equal(relay(f, a, b, 0), EARSHOT_DENY);
    /* longer than any client_id: never remembered, never passed */
    pair(f, c, a, 0);
    assert_int_equal(remembered(f), 1);
    assert_int_equal(relay(f, c, a, 0), EARSHOT_DENY);
    assert_int_equal(relay(f, c, a, 1), EARSHOT_PASS);
}

static void t_out_of_memory(void **ctx)
{
    fixture *f = *ctx;
    pt_fail_in = 1; /* the instance itself */
    assert_int_not_equal(pt_init(&f->s, &f->state, f->err, sizeof f->err), 0);
    assert_string_equal(f->err, "out of memory");
    assert_null(f->state);
    start(f);
    long empty = pt_live_blocks;
    /* the entry, then uthash's table, then its buckets cannot be had: the
     * pair just gets no grace period, and nothing leaks */
    for (long k = 1; k <= 3; k++) {
        pt_fail_in = k;
        pair(f, "a", "b", 0);
        assert_int_equal(pt_fail_in, 0); /* the k-th allocation was made and failed */
        assert_int_equal(relay(f, "a", "b", 0), EARSHOT_DENY);
        assert_int_equal(remembered(f), 0);
        assert_int_equal(pt_live_blocks, empty);
    }
    pair(f, "a", "b", 0); /* memory back: works again */
    assert_int_equal(relay(f, "a", "b", 0), EARSHOT_PASS);
}

static void t_needs_keyed_hash(void **ctx)
{
    fixture *f = *ctx;
    earshot_host old = pt_host;
    old.hash = NULL;
    assert_int_not_equal(
        earshot_plugin_describe()->init(&old, &f->s, &f->state, f->err, sizeof f->err), 0);
    assert_string_equal(f->err, "this earshot offers no keyed hash; relay_guard needs a newer one");
    f->state = NULL;
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_descriptor),
        T(t_settings),
        T(t_matched_passes),
        T(t_never_matched_denied),
        T(t_parted_pair_within_grace),
        T(t_grace_expires_exactly),
        T(t_parting_again_restarts_grace),
        T(t_rematch_forgets),
        T(t_zero_grace),
        T(t_table_shrinks_back),
        T(t_tick_keeps_memory_flat),
        T(t_uses_host_hash),
        T(t_all_keys_colliding),
        T(t_longest_ids),
        T(t_out_of_memory),
        T(t_needs_keyed_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
