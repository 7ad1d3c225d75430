/*
 * test_turn - TURN REST API credentials, the IceServers reply, the `turn`
 * config group, and RequestIceServers through the core.
 *
 * The expected credentials are literals computed apart from earshot:
 *   printf %s "$username" | openssl dgst -sha1 -hmac "$secret" -binary | base64
 */
#include "core_fixture.h"
#include "config_fixture.h"
#include "turn.h"

#define SECRET "north-wind-secret"
/* username "1700086400:alice" (1700000000 + 86400) under SECRET */
#define ALICE_CREDENTIAL "B4h6iVPKLBEfsWdDRuUeZl3vUbo="
/* the same username under the secret "other" */
#define ALICE_OTHER_CREDENTIAL "0Gb97pKcevcc9edOX2D2TN3PbdI="
/* a client_id with a quote, a backslash and characters beyond ASCII */
#define ODD_ID "q\"uo\\te\xe2\x80\x93\xc3\xbc\xf0\x9f\x8e\xa7"
#define ODD_ID_JSON "q\\\"uo\\\\te\xe2\x80\x93\xc3\xbc\xf0\x9f\x8e\xa7"
/* username "1700000060:" ODD_ID under SECRET */
#define ODD_CREDENTIAL "yO/FMqHxTD25cEuBp9sQXop2N5E="

/* ---- credentials ------------------------------------------------------------ */

TEST(t_username_is_expiry_colon_client_id)
{
    char u[ES_TURN_USERNAME_MAX];
    assert_int_equal(es_turn_username(u, 1700086400, "alice", 5), 16);
    assert_string_equal(u, "1700086400:alice");
    /* the client_id is taken as it is, colons and all */
    assert_int_equal(es_turn_username(u, 5, "a:b", 3), 5);
    assert_string_equal(u, "5:a:b");
}

TEST(t_username_refuses_what_no_client_id_is)
{
    char u[ES_TURN_USERNAME_MAX], id[ES_ID_MAX + 1];
    memset(id, 'x', sizeof id);
    assert_int_equal(es_turn_username(u, 1700086400, id, ES_ID_MAX), 11 + ES_ID_MAX);
    assert_int_equal(strlen(u), 11 + ES_ID_MAX);
    assert_int_equal(es_turn_username(u, 1700086400, id, ES_ID_MAX + 1), 0);
    assert_string_equal(u, "");
    assert_int_equal(es_turn_username(u, 1700086400, "a\0b", 3), 0);
    assert_string_equal(u, "");
}

TEST(t_credential_is_the_rest_api_hmac)
{
    char c[ES_TURN_CREDENTIAL_MAX];
    const char *u = "1700086400:alice";
    assert_int_equal(es_turn_credential(c, SECRET, strlen(SECRET), u, strlen(u)), 0);
    assert_string_equal(c, ALICE_CREDENTIAL);
    assert_int_equal(es_turn_credential(c, "other", 5, u, strlen(u)), 0);
    assert_string_equal(c, ALICE_OTHER_CREDENTIAL);
    const char *odd = "1700000060:" ODD_ID;
    assert_int_equal(es_turn_credential(c, SECRET, strlen(SECRET), odd, strlen(odd)), 0);
    assert_string_equal(c, ODD_CREDENTIAL);
}

/* ---- parsing RequestIceServers --------------------------------------------- */

TEST(t_protocol_parses_request_ice_servers)
{
    static const char *const ok[] = {
        "{\"type\":\"RequestIceServers\"}",
        "{\"type\":\"RequestIceServers\",\"data\":null}",
        "{\"type\":\"RequestIceServers\",\"data\":{\"client_id\":5,\"x\":[]}}",
        "{\"type\":\"RequestIceServers\",\"data\":\"\\u0000\",\"extra\":1e400}",
    };
    char err[ES_ERROR_MAX];
    for (size_t i = 0; i < ES_ARRAY_LEN(ok); i++) {
        es_msg m;
        if (es_protocol_parse(ok[i], strlen(ok[i]), &m, err) != 0)
            fail_msg("%s: %s", ok[i], err);
        assert_int_equal(m.type, ES_MSG_REQUEST_ICE_SERVERS);
        assert_null(m.client_id);
        es_msg_release(&m);
    }
    assert_string_equal(es_msg_type_name(ES_MSG_REQUEST_ICE_SERVERS), "RequestIceServers");
    es_msg m;
    const char *lower = "{\"type\":\"requesticeservers\"}";
    assert_int_equal(es_protocol_parse(lower, strlen(lower), &m, err), -1);
    assert_string_equal(err, "Unknown message type: requesticeservers");
}

/* ---- the IceServers message ----------------------------------------------- */

static char *stun_urls[] = {"stun:stun.example:3478", NULL};
static char *turn_urls[] = {"turn:turn.example:3478?transport=udp", "turns:turn.example:5349",
                            NULL};

/* A config as the loader leaves it: the given lists, SECRET or none. */
static es_config turn_cfg(int stun, int turn, const char *secret, int ttl)
{
    es_config c;
    memset(&c, 0, sizeof c);
    c.turn_secret = (char *)secret;
    if (stun) {
        c.stun_urls = stun_urls;
        c.nstun_urls = 1;
    }
    if (turn) {
        c.turn_urls = turn_urls;
        c.nturn_urls = 2;
    }
    c.turn_ttl = ttl;
    return c;
}

static const char *reply(const es_config *c, const char *id, long long now)
{
    es_buf b;
    es_buf_init(&b);
    es_turn_write_ice_servers(&b, c, id, strlen(id), now);
    const char *out = fmt("%.*s", (int)b.len, es_buf_data(&b));
    es_buf_free(&b);
    /* whatever it is, it is one valid JSON object */
    json_error_t e;
    json_t *doc = json_loads(out, JSON_REJECT_DUPLICATES, &e);
    if (!doc)
        fail_msg("not JSON (%s): %s", e.text, out);
    json_decref(doc);
    return out;
}

#define TURN_ENTRY(user_json, credential)                                                   \
    "{\"urls\":[\"turn:turn.example:3478?transport=udp\",\"turns:turn.example:5349\"],"     \
    "\"username\":\"" user_json "\",\"credential\":\"" credential "\"}"
#define STUN_ENTRY "{\"urls\":[\"stun:stun.example:3478\"]}"

TEST(t_reply_with_nothing_configured)
{
    es_config c = turn_cfg(0, 0, "", 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[],\"ttl\":86400}}");
    /* a secret alone is no TURN server */
    c = turn_cfg(0, 0, SECRET, 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[],\"ttl\":86400}}");
}

TEST(t_reply_with_stun_only)
{
    es_config c = turn_cfg(1, 0, "", 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[" STUN_ENTRY
                        "],\"ttl\":86400}}");
}

TEST(t_reply_with_turn_only)
{
    es_config c = turn_cfg(0, 1, SECRET, 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[" TURN_ENTRY(
                            "1700086400:alice", ALICE_CREDENTIAL) "],\"ttl\":86400}}");
    /* URLs without a secret (the loader refuses that config) give no TURN entry */
    c = turn_cfg(0, 1, "", 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[],\"ttl\":86400}}");
    c = turn_cfg(0, 1, NULL, 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[],\"ttl\":86400}}");
}

TEST(t_reply_with_stun_and_turn)
{
    es_config c = turn_cfg(1, 1, SECRET, 86400);
    assert_string_equal(reply(&c, "alice", 1700000000),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[" STUN_ENTRY
                        "," TURN_ENTRY("1700086400:alice", ALICE_CREDENTIAL) "],\"ttl\":86400}}");
}

TEST(t_reply_escapes_the_client_id)
{
    es_config c = turn_cfg(0, 1, SECRET, 60);
    const char *out = reply(&c, ODD_ID, 1700000000);
    assert_string_equal(out, "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[" TURN_ENTRY(
                                 "1700000060:" ODD_ID_JSON, ODD_CREDENTIAL) "],\"ttl\":60}}");
    /* decoded, the username is the expiry and the id byte for byte */
    json_t *doc = json_loads(out, 0, NULL);
    json_t *entry = json_array_get(json_object_get(json_object_get(doc, "data"), "ice_servers"), 0);
    assert_string_equal(json_string_value(json_object_get(entry, "username")),
                        "1700000060:" ODD_ID);
    json_decref(doc);
}

/* ---- the `turn` config group ------------------------------------------------- */


TEST(t_config_defaults)
{
    CF;
    load_cfg(f, "", 1);
    assert_string_equal(f->cfg.turn_secret, "");
    assert_string_equal(f->cfg.turn_secret_file, "");
    assert_null(f->cfg.turn_urls);
    assert_int_equal(f->cfg.nturn_urls, 0);
    assert_null(f->cfg.stun_urls);
    assert_int_equal(f->cfg.nstun_urls, 0);
    assert_int_equal(f->cfg.turn_ttl, 86400);
}

TEST(t_config_full_group)
{
    CF;
    load_cfg(f,
             "turn = {\n"
             "  secret = \"" SECRET "\";\n"
             "  urls = [ \"turn:127.0.0.1:3478\", \"turns:turn.example:5349?transport=tcp\" ];\n"
             "  stun_urls = [ \"stun:127.0.0.1:3478\", \"stuns:stun.example\" ];\n"
             "  ttl = 60;\n"
             "};\n",
             1);
    assert_string_equal(f->cfg.turn_secret, SECRET);
    assert_int_equal(f->cfg.nturn_urls, 2);
    assert_string_equal(f->cfg.turn_urls[0], "turn:127.0.0.1:3478");
    assert_string_equal(f->cfg.turn_urls[1], "turns:turn.example:5349?transport=tcp");
    assert_null(f->cfg.turn_urls[2]);
    assert_int_equal(f->cfg.nstun_urls, 2);
    assert_string_equal(f->cfg.stun_urls[1], "stuns:stun.example");
    assert_int_equal(f->cfg.turn_ttl, 60);
}

TEST(t_config_urls_need_a_secret)
{
    CF;
    const char *path = load_cfg(f, "turn = {\n  ttl = 600;\n  urls = [ \"turn:h:3478\" ];\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:3: 'urls' needs the TURN server's shared secret: set "
                                    "'secret' or 'secret_file'",
                                    path));
    path = load_cfg(f, "turn = {\n  secret = \"\";\n  urls = [ \"turn:h\" ];\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:3: 'urls' needs the TURN server's shared secret: set "
                                    "'secret' or 'secret_file'",
                                    path));
    /* STUN needs none */
    load_cfg(f, "turn = { stun_urls = [ \"stun:h\" ]; };\n", 1);
}

TEST(t_config_url_schemes_are_checked)
{
    CF;
    static const struct {
        const char *key, *url, *why;
    } bad[] = {
        {"urls", "stun:h:3478", "must be a turn: or turns: URL naming a host"},
        {"urls", "http://h", "must be a turn: or turns: URL naming a host"},
        {"urls", "TURN:h", "must be a turn: or turns: URL naming a host"},
        {"urls", "turn:", "must be a turn: or turns: URL naming a host"},
        {"urls", "turn:?transport=udp", "must be a turn: or turns: URL naming a host"},
        {"urls", "turnx:h", "must be a turn: or turns: URL naming a host"},
        {"urls", "turn:h 3478", "holds a space, a control or a non-ASCII character"},
        {"urls", "turn:h\xc3\xa9", "holds a space, a control or a non-ASCII character"},
        {"stun_urls", "turn:h", "must be a stun: or stuns: URL naming a host"},
        {"stun_urls", "stunx:h", "must be a stun: or stuns: URL naming a host"},
        {"stun_urls", "stun:", "must be a stun: or stuns: URL naming a host"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        const char *path = load_cfg(f,
                                    fmt("turn = {\n  secret = \"s\";\n  %s = [ \"%s:1\",\n    "
                                        "\"%s\" ];\n};\n",
                                        bad[i].key, bad[i].key[0] == 'u' ? "turn:ok" : "stun:ok",
                                        bad[i].url),
                                    0);
        const char *shown = bad[i].url;
        assert_string_equal(f->err, fmt("%s:4: '%s' entry \"%s\" %s", path, bad[i].key, shown,
                                        bad[i].why));
    }
    char long_url[300];
    memset(long_url, 'h', sizeof long_url - 1);
    long_url[sizeof long_url - 1] = '\0';
    memcpy(long_url, "turn:", 5);
    const char *path = load_cfg(
        f, fmt("turn = {\n  secret = \"s\";\n  urls = [ \"%s\" ];\n};\n", long_url), 0);
    assert_string_equal(f->err, fmt("%s:3: 'urls' entry \"%s\" is longer than 256 characters",
                                    path, long_url));
    path = load_cfg(f, "turn = {\n  secret = \"s\";\n  urls = \"turn:h\";\n};\n", 0);
    assert_string_equal(
        f->err, fmt("%s:3: 'urls' must be a list of strings: urls = [ \"turn:turn.example:3478\" ];",
                    path));
    path = load_cfg(f, "turn = {\n  secret = \"s\";\n  urls = [ 5 ];\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:3: 'urls' entries must be strings", path));
    char many[2048] = "turn = {\n  secret = \"s\";\n  urls = [ \"turn:a\"";
    for (int i = 1; i <= ES_TURN_URLS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ", \"turn:a%d\"", i);
    strcat(many, " ];\n};\n");
    path = load_cfg(f, many, 0);
    assert_string_equal(f->err, fmt("%s:3: 'urls' holds at most 16 URLs", path));
}

TEST(t_config_secret_file)
{
    CF;
    const char *secret_path = tmpdir_write(&f->dir, "turn.secret", SECRET "\n");
    load_cfg(f, "turn = { secret_file = \"turn.secret\"; urls = [ \"turn:h\" ]; };\n", 1);
    assert_string_equal(f->cfg.turn_secret, SECRET);
    assert_string_equal(f->cfg.turn_secret_file, secret_path);
    /* no final line break, and a CRLF one, read the same */
    tmpdir_write(&f->dir, "turn.secret", SECRET);
    load_cfg(f, fmt("turn = { secret_file = \"%s\"; };\n", secret_path), 1);
    assert_string_equal(f->cfg.turn_secret, SECRET);
    tmpdir_write(&f->dir, "turn.secret", SECRET "\r\n");
    load_cfg(f, "turn = { secret_file = \"turn.secret\"; };\n", 1);
    assert_string_equal(f->cfg.turn_secret, SECRET);
}

TEST(t_config_secret_file_problems_never_show_the_secret)
{
    CF;
    const char *secret_path = fmt("%s/turn.secret", f->dir.path);
    static const struct {
        const char *content, *why;
    } bad[] = {
        {"", "is empty"},
        {"\n", "is empty"},
        {SECRET "\n" SECRET "\n", "holds more than one line"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        tmpdir_write(&f->dir, "turn.secret", bad[i].content);
        const char *path = load_cfg(f, "turn = {\n  secret_file = \"turn.secret\";\n};\n", 0);
        assert_string_equal(f->err, fmt("%s:2: the TURN secret file %s %s", path, secret_path,
                                        bad[i].why));
        assert_not_contains(f->err, SECRET);
    }
    char big[ES_TURN_SECRET_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tmpdir_write(&f->dir, "turn.secret", big);
    const char *path = load_cfg(f, "turn = {\n  secret_file = \"turn.secret\";\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:2: the TURN secret file %s holds more than 1024 bytes",
                                    path, secret_path));
    big[sizeof big - 2] = '\0'; /* exactly 1024 bytes */
    tmpdir_write(&f->dir, "turn.secret", big);
    load_cfg(f, "turn = {\n  secret_file = \"turn.secret\";\n};\n", 1);
    assert_int_equal(strlen(f->cfg.turn_secret), ES_TURN_SECRET_MAX);
    /* a missing file, and both ways at once */
    path = load_cfg(f, "turn = {\n  secret_file = \"nowhere.secret\";\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:2: cannot read the TURN secret file %s/nowhere.secret",
                                    path, f->dir.path));
    path = load_cfg(f,
                    "turn = {\n  secret = \"" SECRET "\";\n  secret_file = \"turn.secret\";\n};\n",
                    0);
    assert_string_equal(f->err, fmt("%s:3: set 'secret' or 'secret_file', not both", path));
    assert_not_contains(f->err, SECRET);
}

TEST(t_config_ttl_range)
{
    CF;
    const char *path = load_cfg(f, "turn = {\n  ttl = 59;\n};\n", 0);
    assert_string_equal(f->err, fmt("%s:2: 'ttl' must be between 60 and 604800 (got 59)", path));
    path = load_cfg(f, "turn = {\n  ttl = 604801;\n};\n", 0);
    assert_string_equal(f->err,
                        fmt("%s:2: 'ttl' must be between 60 and 604800 (got 604801)", path));
    load_cfg(f, "turn = { ttl = 604800; };\n", 1);
    assert_int_equal(f->cfg.turn_ttl, 604800);
    path = load_cfg(f, "turn = {\n  sekret = \"x\";\n};\n", 0);
    assert_starts_with(f->err, fmt("%s:2: unknown setting 'sekret' in 'turn'", path));
}

/* ---- RequestIceServers through the core ---------------------------------------- */

/* The core_fixture.h fixture's clock is the monotonic one; this is the
 * wall clock, which sets the TURN expiry. */
static double g_wall = 1700000000.75;
static double fake_wall(void) { return g_wall; }

#define PROXIMITY_ONLY \
    "{ type = \"plugin\"; name = \"proximity\"; settings = { radius = 20; leave_radius = 25; }; }"

/* The core started with only the proximity plugin, the given `turn` group
 * (or none) and the inside of the `limits` group. */
static void turn_start(fx *f, const char *turn_group, const char *limits)
{
    START(f, .turn = turn_group, .limits = limits, .hooks = PROXIMITY_ONLY);
    f->core.wallclock = fake_wall;
}

/* The next message queued for s, exactly ("" when none); popped. */
static const char *next_msg(es_session *s)
{
    es_qmsg *m = es_sendq_peek(&s->q);
    if (!m)
        return "";
    const char *out = fmt("%.*s", (int)m->len, es_qmsg_payload(m));
    es_sendq_pop(&s->q);
    return out;
}

#define FULL_TURN                                                                          \
    "turn = { secret = \"" SECRET "\"; stun_urls = [ \"stun:stun.example:3478\" ];\n"      \
    "  urls = [ \"turn:turn.example:3478?transport=udp\", \"turns:turn.example:5349\" ]; };"
#define ALICE_REPLY                                                                         \
    "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[" STUN_ENTRY "," TURN_ENTRY(       \
        "1700086400:alice", ALICE_CREDENTIAL) "],\"ttl\":86400}}"
#define NOT_REGISTERED "{\"type\":\"Error\",\"data\":\"Client must send UpdatePosition first.\"}"

TEST(t_core_request_before_registration)
{
    F;
    turn_start(f, FULL_TURN, "");
    es_session *s = open_from(f, "10.0.0.1");
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    frame(f, s, "{\"type\":\"RequestIceServers\",\"data\":null}");
    assert_string_equal(next_msg(s), NOT_REGISTERED);
    assert_string_equal(next_msg(s), NOT_REGISTERED);
    assert_string_equal(next_msg(s), "");
    assert_int_equal(s->registered, 0);
    assert_int_equal(s->closing, 0);
    assert_int_equal(f->core.stats.messages_in[ES_MSG_REQUEST_ICE_SERVERS], 2);
    assert_int_equal(f->core.stats.errors[ES_ERR_NOT_REGISTERED], 2);
    assert_int_equal(f->core.stats.messages_out[ES_OUT_ICE_SERVERS], 0);
    /* a malformed one gets its parse error first, as every message does */
    frame(f, s, "{\"type\":\"RequestIceServers\",\"data\":null,\"data\":1}");
    assert_string_equal(next_msg(s), "{\"type\":\"Error\",\"data\":\"Invalid JSON: duplicate "
                                     "object key near '\\\"data\\\"'\"}");
}

TEST(t_core_request_after_registration)
{
    F;
    turn_start(f, FULL_TURN, "");
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, "alice", 0, 0);
    assert_string_equal(next_msg(s), "{\"type\":\"NearbyPeers\",\"data\":[]}");
    /* data absent, null, or anything at all; unknown fields ignored */
    static const char *const asks[] = {
        "{\"type\":\"RequestIceServers\"}",
        "{\"type\":\"RequestIceServers\",\"data\":null}",
        "{\"type\":\"RequestIceServers\",\"data\":{\"client_id\":\"mallory\",\"ttl\":5}}",
        "{\"data\":[1,2,3],\"type\":\"RequestIceServers\",\"extra\":{\"deep\":[true]}}",
        "{\"type\":\"RequestIceServers\",\"data\":\"x\"}",
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(asks); i++) {
        frame(f, s, asks[i]);
        assert_string_equal(next_msg(s), ALICE_REPLY);
        assert_string_equal(next_msg(s), "");
    }
    assert_int_equal(f->core.stats.messages_in[ES_MSG_REQUEST_ICE_SERVERS], ES_ARRAY_LEN(asks));
    assert_int_equal(f->core.stats.messages_out[ES_OUT_ICE_SERVERS], ES_ARRAY_LEN(asks));
    /* the expiry follows the wall clock, not the monotonic one */
    g_now += 5000;
    g_wall = 1700000100.2;
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    char u[ES_TURN_USERNAME_MAX], c[ES_TURN_CREDENTIAL_MAX];
    es_turn_username(u, 1700086500, "alice", 5);
    es_turn_credential(c, SECRET, strlen(SECRET), u, strlen(u));
    assert_string_equal(next_msg(s), fmt("{\"type\":\"IceServers\",\"data\":{\"ice_servers\":["
                                         STUN_ENTRY "," TURN_ENTRY("%s", "%s")
                                         "],\"ttl\":86400}}",
                                         u, c));
    g_wall = 1700000000.75;
}

TEST(t_core_reply_with_nothing_configured_and_after_reload)
{
    F;
    turn_start(f, "", "");
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, "alice", 0, 0);
    next_msg(s);
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    assert_string_equal(next_msg(s),
                        "{\"type\":\"IceServers\",\"data\":{\"ice_servers\":[],\"ttl\":86400}}");
    /* a reload applies the new group to the next request */
    es_config next;
    core_opts full = {.turn = FULL_TURN, .hooks = PROXIMITY_ONLY};
    load_config_only(f, config_text(&full), &next);
    es_core_reconfigure(&f->core, &next, &f->h);
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    assert_string_equal(next_msg(s), ALICE_REPLY);
    es_core_reconfigure(&f->core, &f->cfg, &f->h);
    es_config_free(&next);
}

TEST(t_core_owed_peers_go_first)
{
    F;
    turn_start(f, FULL_TURN, "");
    es_session *a = open_from(f, "10.0.0.1"), *b = open_from(f, "10.0.0.1");
    upd(f, a, "alice", 0, 0);
    next_msg(a);
    f->core.batch = 1;
    upd(f, b, "bob", 5, 0); /* alice is owed a list, held for the flush */
    frame(f, a, "{\"type\":\"RequestIceServers\"}");
    assert_string_equal(next_msg(a), "{\"type\":\"NearbyPeers\",\"data\":[\"bob\"]}");
    assert_string_equal(next_msg(a), ALICE_REPLY);
    es_core_flush(&f->core);
    assert_string_equal(next_msg(a), ""); /* paid already */
    assert_string_equal(next_msg(b), "{\"type\":\"NearbyPeers\",\"data\":[\"alice\"]}");
    f->core.batch = 0;
}

TEST(t_core_rate_limit_applies)
{
    F;
    turn_start(f, FULL_TURN, "message_rate = 0.001; message_burst = 2.0;");
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, "alice", 0, 0);
    next_msg(s);
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    frame(f, s, "{\"type\":\"RequestIceServers\"}");
    assert_string_equal(next_msg(s), ALICE_REPLY);
    assert_string_equal(next_msg(s), "{\"type\":\"Error\",\"data\":\"rate limited\"}");
    assert_string_equal(next_msg(s), "");
    assert_int_equal(f->core.stats.messages_out[ES_OUT_ICE_SERVERS], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_username_is_expiry_colon_client_id),
        cmocka_unit_test(t_username_refuses_what_no_client_id_is),
        cmocka_unit_test(t_credential_is_the_rest_api_hmac),
        cmocka_unit_test(t_protocol_parses_request_ice_servers),
        cmocka_unit_test(t_reply_with_nothing_configured),
        cmocka_unit_test(t_reply_with_stun_only),
        cmocka_unit_test(t_reply_with_turn_only),
        cmocka_unit_test(t_reply_with_stun_and_turn),
        cmocka_unit_test(t_reply_escapes_the_client_id),
        cmocka_unit_test_setup_teardown(t_config_defaults, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_full_group, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_urls_need_a_secret, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_url_schemes_are_checked, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_secret_file, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_secret_file_problems_never_show_the_secret,
                                        cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_config_ttl_range, cfx_setup, cfx_teardown),
        cmocka_unit_test_setup_teardown(t_core_request_before_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(t_core_request_after_registration, setup, teardown),
        cmocka_unit_test_setup_teardown(t_core_reply_with_nothing_configured_and_after_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(t_core_owed_peers_go_first, setup, teardown),
        cmocka_unit_test_setup_teardown(t_core_rate_limit_applies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
