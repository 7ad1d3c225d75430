/*
 * test_moderation - the ban and mute lists (moderation.h) and the address
 * allow-lists (netmask.h).
 */
#include "helpers.h"
#include "moderation.h"
#include "netmask.h"

#define ID(s) (s), strlen(s)

TEST(t_ban_by_id_and_by_address_until_it_expires)
{
    es_moderation m;
    es_moderation_init(&m);
    char why[64];
    assert_false(es_moderation_banned(&m, ID("alice"), "10.0.0.1", 1000, why, sizeof why));
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("alice"), 60, 1000, "spam", "127.0.0.1"), 0);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ADDRESS, ID("10.0.0.9"), 10, 1000, NULL, NULL), 0);
    assert_true(es_moderation_banned(&m, ID("alice"), "10.0.0.1", 1000, why, sizeof why));
    assert_string_equal(why, "spam");
    assert_true(es_moderation_banned(&m, ID("bob"), "10.0.0.9", 1009.9, why, sizeof why));
    assert_string_equal(why, "");
    assert_false(es_moderation_banned(&m, ID("bob"), "10.0.0.1", 1000, why, sizeof why));
    /* the address ban ends at 1010, the id ban at 1060 */
    assert_false(es_moderation_banned(&m, ID("bob"), "10.0.0.9", 1010, why, sizeof why));
    assert_int_equal(m.nbans, 1);
    assert_true(es_moderation_banned(&m, ID("alice"), NULL, 1059, NULL, 0));
    assert_false(es_moderation_banned(&m, ID("alice"), NULL, 1060, NULL, 0));
    assert_int_equal(m.nbans, 0);
    es_moderation_free(&m);
}

TEST(t_ban_refuses_bad_durations_and_keys)
{
    es_moderation m;
    es_moderation_init(&m);
    char long_id[ES_MOD_KEY_MAX + 2];
    memset(long_id, 'x', sizeof long_id);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), 0.5, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), -5, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), ES_BAN_MAX_SECONDS + 1, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), 0.0 / 0.0, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, "", 0, 60, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, long_id, ES_MOD_KEY_MAX + 1, 60, 0, NULL, NULL), -1);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, long_id, ES_MOD_KEY_MAX, 60, 0, NULL, NULL), 0);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), ES_BAN_MAX_SECONDS, 0, NULL, NULL), 0);
    assert_int_equal(m.nbans, 2);
    es_moderation_free(&m);
}

TEST(t_an_id_ban_and_an_address_ban_of_the_same_text_are_apart)
{
    es_moderation m;
    es_moderation_init(&m);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("10.0.0.1"), 60, 0, NULL, NULL), 0);
    assert_false(es_moderation_banned(&m, ID("someone"), "10.0.0.1", 1, NULL, 0));
    assert_true(es_moderation_banned(&m, ID("10.0.0.1"), "10.9.9.9", 1, NULL, 0));
    assert_int_equal(es_moderation_unban(&m, ES_BAN_ADDRESS, ID("10.0.0.1"), 1), -1);
    assert_int_equal(es_moderation_unban(&m, ES_BAN_ID, ID("10.0.0.1"), 1), 0);
    assert_int_equal(es_moderation_unban(&m, ES_BAN_ID, ID("10.0.0.1"), 1), -1);
    assert_int_equal(m.nbans, 0);
    es_moderation_free(&m);
}

TEST(t_a_ban_again_replaces_the_first)
{
    es_moderation m;
    es_moderation_init(&m);
    char why[64];
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), 600, 0, "first", NULL), 0);
    assert_int_equal(es_moderation_ban(&m, ES_BAN_ID, ID("a"), 10, 5, "second", NULL), 0);
    assert_int_equal(m.nbans, 1);
    assert_true(es_moderation_banned(&m, ID("a"), NULL, 14, why, sizeof why));
    assert_string_equal(why, "second");
    assert_false(es_moderation_banned(&m, ID("a"), NULL, 15, NULL, 0));
    es_moderation_free(&m);
}

TEST(t_mute_until_unmuted)
{
    es_moderation m;
    es_moderation_init(&m);
    assert_false(es_moderation_muted(&m, ID("a")));
    assert_false(es_moderation_muted(NULL, ID("a")));
    assert_int_equal(es_moderation_mute(&m, ID("a"), 0, "loud", "127.0.0.1"), 0);
    assert_int_equal(es_moderation_mute(&m, ID("a"), 1, "louder", "127.0.0.1"), 0);
    assert_int_equal(m.nmutes, 1);
    assert_true(es_moderation_muted(&m, ID("a")));
    assert_false(es_moderation_muted(&m, ID("ab")));
    assert_false(es_moderation_muted(&m, "a", 0));
    assert_int_equal(es_moderation_unmute(&m, ID("b")), -1);
    assert_int_equal(es_moderation_unmute(&m, ID("a")), 0);
    assert_false(es_moderation_muted(&m, ID("a")));
    assert_int_equal(es_moderation_mute(&m, "", 0, 0, NULL, NULL), -1);
    es_moderation_free(&m);
}

typedef struct seen {
    int bans, mutes;
    char text[512];
} seen;

static void collect(const es_mod_view *v, void *ud)
{
    seen *s = ud;
    size_t n = strlen(s->text);
    if (v->is_ban)
        s->bans++;
    else
        s->mutes++;
    snprintf(s->text + n, sizeof s->text - n, "%s %s %s %.0f-%.0f %s by %s;",
             v->is_ban ? "ban" : "mute", v->kind == ES_BAN_ID ? "id" : "address", v->key,
             v->since, v->until, v->reason, v->by);
}

TEST(t_each_lists_what_is_in_force_and_drops_the_rest)
{
    es_moderation m;
    es_moderation_init(&m);
    es_moderation_ban(&m, ES_BAN_ID, ID("gone"), 5, 100, "old", "x");
    es_moderation_ban(&m, ES_BAN_ADDRESS, ID("::1"), 50, 100, "r", "127.0.0.1");
    es_moderation_mute(&m, ID("m"), 100, "", "hook a");
    seen s = {0};
    es_moderation_each(&m, 110, collect, &s);
    assert_int_equal(s.bans, 1);
    assert_int_equal(s.mutes, 1);
    assert_string_equal(s.text, "ban address ::1 100-150 r by 127.0.0.1;mute id m 100-0  by hook a;");
    assert_int_equal(m.nbans, 1);
    es_moderation_free(&m);
}

TEST(t_netmask_addresses_and_prefixes)
{
    es_netmask m[4];
    const char *why = NULL;
    assert_int_equal(es_netmask_parse("127.0.0.1", &m[0], &why), 0);
    assert_int_equal(es_netmask_parse("::1", &m[1], &why), 0);
    assert_int_equal(es_netmask_parse("10.1.0.0/16", &m[2], &why), 0);
    assert_int_equal(es_netmask_parse("fd00::/8", &m[3], &why), 0);
    assert_true(es_netmask_match(m, 4, "127.0.0.1"));
    assert_true(es_netmask_match(m, 4, "::ffff:127.0.0.1"));
    assert_false(es_netmask_match(m, 4, "127.0.0.2"));
    assert_true(es_netmask_match(m, 4, "::1"));
    assert_true(es_netmask_match(m, 4, "10.1.255.3"));
    assert_false(es_netmask_match(m, 4, "10.2.0.1"));
    assert_true(es_netmask_match(m, 4, "fdab::7"));
    assert_false(es_netmask_match(m, 4, "fe80::1"));
    assert_false(es_netmask_match(m, 4, ""));
    assert_false(es_netmask_match(m, 4, "nonsense"));
    assert_false(es_netmask_match(m, 0, "127.0.0.1"));
    /* host bits after the prefix do not matter; /0 is everyone */
    assert_int_equal(es_netmask_parse("10.1.2.3/8", &m[0], &why), 0);
    assert_true(es_netmask_match(m, 1, "10.200.0.1"));
    assert_int_equal(es_netmask_parse("0.0.0.0/0", &m[0], &why), 0);
    assert_true(es_netmask_match(m, 1, "192.0.2.1"));
    assert_false(es_netmask_match(m, 1, "2001:db8::1"));
    assert_int_equal(es_netmask_parse("10.1.2.3/9", &m[0], &why), 0);
    assert_true(es_netmask_match(m, 1, "10.127.0.1"));
    assert_false(es_netmask_match(m, 1, "10.128.0.1"));
}

TEST(t_netmask_refuses_what_is_not_one)
{
    es_netmask m;
    const char *why = NULL;
    static const char *const bad[] = {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0/8",
                                      "10.0.0.0/-1", "10.0.0.0/8x", "host.example", "1.2.3.4 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        assert_int_equal(es_netmask_parse(bad[i], &m, &why), -1);
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_ban_by_id_and_by_address_until_it_expires),
        cmocka_unit_test(t_ban_refuses_bad_durations_and_keys),
        cmocka_unit_test(t_an_id_ban_and_an_address_ban_of_the_same_text_are_apart),
        cmocka_unit_test(t_a_ban_again_replaces_the_first),
        cmocka_unit_test(t_mute_until_unmuted),
        cmocka_unit_test(t_each_lists_what_is_in_force_and_drops_the_rest),
        cmocka_unit_test(t_netmask_addresses_and_prefixes),
        cmocka_unit_test(t_netmask_refuses_what_is_not_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
