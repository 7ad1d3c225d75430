/*
 * test_cluster_config - the `cluster` group and server.reuse_port: defaults,
 * every refusal with its line, and a password file that never shows.
 */
#include "config_fixture.h"

TEST(t_defaults)
{
    CF;
    load_cfg(f, "", 1);
    assert_int_equal(f->cfg.cluster_enabled, 0);
    assert_string_equal(f->cfg.cluster_redis, "127.0.0.1:6379");
    assert_string_equal(f->cfg.cluster_user, "");
    assert_string_equal(f->cfg.cluster_password, "");
    assert_string_equal(f->cfg.cluster_password_file, "");
    assert_string_equal(f->cfg.cluster_node, "");
    assert_string_equal(f->cfg.cluster_prefix, "earshot");
    assert_true(f->cfg.cluster_heartbeat == 0.25);
    assert_true(f->cfg.cluster_node_timeout == 1.5);
    assert_int_equal(f->cfg.reuse_port, 0);
    assert_string_equal(f->cfg.cluster_secret, "");
    assert_string_equal(f->cfg.cluster_secret_file, "");
}

TEST(t_full_group)
{
    CF;
    load_cfg(f,
             "server = { reuse_port = true; };\n"
             "cluster = { enabled = true; redis = \"unix:/run/redis/redis.sock\"; user = \"earshot\";\n"
             "  password = \"pw\"; node = \"eu-1.a:8080\"; prefix = \"game7\";\n"
             "  heartbeat_interval = 0.1; node_timeout = 0.5; };\n",
             1);
    assert_int_equal(f->cfg.cluster_enabled, 1);
    assert_int_equal(f->cfg.reuse_port, 1);
    assert_string_equal(f->cfg.cluster_redis, "unix:/run/redis/redis.sock");
    assert_string_equal(f->cfg.cluster_user, "earshot");
    assert_string_equal(f->cfg.cluster_password, "pw");
    assert_string_equal(f->cfg.cluster_node, "eu-1.a:8080");
    assert_string_equal(f->cfg.cluster_prefix, "game7");
    assert_true(f->cfg.cluster_heartbeat == 0.1);
    assert_true(f->cfg.cluster_node_timeout == 0.5);
}

TEST(t_redis_addresses)
{
    char host[256];
    int port = -1;
    assert_true(es_config_redis_address("127.0.0.1:6379", host, sizeof host, &port));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6379);
    assert_true(es_config_redis_address("redis.internal:1", host, sizeof host, &port));
    assert_string_equal(host, "redis.internal");
    assert_int_equal(port, 1);
    assert_true(es_config_redis_address("unix:/tmp/r.sock", host, sizeof host, &port));
    assert_string_equal(host, "/tmp/r.sock");
    assert_int_equal(port, 0);
    static const char *const bad[] = {"", "6379", ":6379", "host:", "host:0", "host:65536",
                                      "host:63x", "unix:", "unix:relative.sock"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++)
        assert_false(es_config_redis_address(bad[i], NULL, 0, NULL));
}

TEST(t_refusals_name_the_line)
{
    CF;
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"server = { event_loop = \"poll\"; };\ncluster = { enabled = true; };\n",
         "1: 'cluster' needs server.event_loop = \"libev\" (Redis runs on that loop)"},
        {"cluster = {\n  enabled = true;\n  node = \"a b\";\n};\n",
         "3: 'node' must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"},
        {"cluster = {\n  enabled = true;\n  redis = \"localhost\";\n};\n",
         "3: 'redis' must be \"host:port\" or \"unix:/path\""},
        {"cluster = {\n  enabled = true;\n  prefix = \"a b\";\n};\n",
         "3: 'prefix' must be 1 to 64 characters without spaces"},
        {"cluster = {\n  enabled = true;\n  heartbeat_interval = 1.0;\n  node_timeout = 1.5;\n};\n",
         "4: 'node_timeout' must be at least twice 'heartbeat_interval'"},
        {"cluster = {\n  heartbeat_interval = 0.01;\n};\n",
         "2: 'heartbeat_interval' must be between 0.05 and 10 (got 0.01)"},
        {"cluster = {\n  colour = 1;\n};\n", "2: unknown setting 'colour' in 'cluster'"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        const char *path = load_cfg(f, bad[i].text, 0);
        const char *want = fmt("%s:%s", path, bad[i].msg);
        if (strncmp(f->err, want, strlen(want)) != 0)
            fail_msg("case %zu: got \"%s\", want a start \"%s\"", i, f->err, want);
    }
    /* a disabled group is not checked beyond its keys' own ranges */
    load_cfg(f, "cluster = { redis = \"localhost\"; node = \"a b\"; };\n", 1);
}

TEST(t_password_file)
{
    CF;
    const char *pw_path = tmpdir_write(&f->dir, "redis.pw", "s3cret-pw\n");
    load_cfg(f, "cluster = { password_file = \"redis.pw\"; };\n", 1);
    assert_string_equal(f->cfg.cluster_password, "s3cret-pw");
    assert_string_equal(f->cfg.cluster_password_file, pw_path);
    load_cfg(f, "cluster = {\n  password = \"x\";\n  password_file = \"redis.pw\";\n};\n", 0);
    assert_non_null(strstr(f->err, ":3: set 'password' or 'password_file', not both"));
    tmpdir_write(&f->dir, "redis.pw", "s3cret-pw\nsecond line\n");
    load_cfg(f, "cluster = {\n  password_file = \"redis.pw\";\n};\n", 0);
    assert_non_null(strstr(f->err, "the Redis password file"));
    assert_non_null(strstr(f->err, "holds more than one line"));
    assert_null(strstr(f->err, "s3cret"));
}

TEST(t_secret_file)
{
    CF;
    const char *path = tmpdir_write(&f->dir, "bus.secret", "k3y-for-the-bus\n");
    load_cfg(f, "cluster = { secret_file = \"bus.secret\"; };\n", 1);
    assert_string_equal(f->cfg.cluster_secret, "k3y-for-the-bus");
    assert_string_equal(f->cfg.cluster_secret_file, path);
    load_cfg(f, "cluster = {\n  secret = \"x\";\n  secret_file = \"bus.secret\";\n};\n", 0);
    assert_non_null(strstr(f->err, ":3: set 'secret' or 'secret_file', not both"));
    tmpdir_write(&f->dir, "bus.secret", "");
    load_cfg(f, "cluster = {\n  secret_file = \"bus.secret\";\n};\n", 0);
    assert_non_null(strstr(f->err, "the cluster secret file"));
    assert_non_null(strstr(f->err, "is empty"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_defaults, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_full_group, cfx_setup, cfx_teardown),
        cmocka_unit_test(t_redis_addresses),
        cmocka_unit_test_setup_teardown(t_refusals_name_the_line, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_password_file, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_secret_file, cfx_setup, cfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
