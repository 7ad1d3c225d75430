/*
 * test_lua_host - Lua scripts as links of the hook chains (src/lua_host.c).
 *
 * Every test writes a config with `type = "lua"` entries pointing at the
 * fixture scripts in tests/lua/ (or the stock scripts in lua/), loads it with
 * es_config_load() + es_hooks_load() and drives the chains directly through
 * es_hooks_join/position/match/relay/leave.
 *
 * Many chains end with tests/lua/tail.lua, which denies joins, positions and
 * relays and allows matches: whether the tail link was called (its `calls`)
 * tells a script's pass (nil) from its allow (true).
 */
#include "helpers.h"

#include <ctype.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "config.h"
#include "hooks.h"
#include "log.h"
#include "lua_host.h"
#include "protocol.h"
#include "util.h"

/* ---- the world: one config + its loaded hooks per test ------------------- */

static hooks_fixture W;
static char reason[ES_ERROR_MAX];

static const char *source_dir(void) { return env_dir("EARSHOT_SOURCE_DIR"); }
static const char *plugin_dir(void) { return env_dir("EARSHOT_PLUGIN_DIR"); }

static void world_free(void) { hooks_fixture_free(&W); }

static int teardown(void **state)
{
    (void)state;
    world_free();
    return 0;
}

/* A file in the test's temp dir (removed at teardown); returns its path. */
static const char *world_file(const char *name, const char *text)
{
    if (!W.dir.path[0])
        tmpdir_make(&W.dir);
    return tmpdir_write(&W.dir, name, text);
}

/* Load the hooks list entries, one per line: the first entry is on line 3.
 * 0, or -1 (es_config_load failed) / -2 (es_hooks_load failed) with the
 * message in W.err. */
static int world_try(const char *entries)
{
    const char *script_dir = fmt("%s/lua", source_dir());
    es_config_defaults defaults = {.plugin_dir = plugin_dir(), .script_dir = script_dir};
    return hooks_fixture_load(
        &W, fmt("log = { level = \"error\"; };\nhooks = (\n%s\n);\n", entries), &defaults);
}

static void world_load(const char *entries)
{
    int rc = world_try(entries);
    if (rc != 0)
        fail_msg("%s failed: %s", rc == -1 ? "es_config_load" : "es_hooks_load", W.err);
}

/* Load entries that must fail in es_hooks_load; returns the message. */
static const char *world_refused(const char *entries)
{
    int rc = world_try(entries);
    if (rc == -1)
        fail_msg("es_config_load failed, es_hooks_load was expected to: %s", W.err);
    if (rc == 0)
        fail_msg("es_hooks_load accepted a config it must refuse");
    assert_int_equal(W.h.nlinks, 0); /* everything undone */
    return W.err;
}

/* Entries. */
static const char *lua_entry(const char *name, const char *fixture, const char *extra)
{
    return fmt("  { type = \"lua\"; name = \"%s\"; path = \"%s/tests/lua/%s\"; %s }", name,
               source_dir(), fixture, extra ? extra : "");
}

static const char *stock_entry(const char *name, const char *extra)
{
    return fmt("  { type = \"lua\"; name = \"%s\"; path = \"%s/lua/%s.lua\"; %s }", name,
               source_dir(), name, extra ? extra : "");
}

static const char *plugin_entry(const char *name, const char *extra)
{
    return fmt("  { type = \"plugin\"; name = \"%s\"; %s }", name, extra ? extra : "");
}

static const char *tail_entry(void) { return lua_entry("tail", "tail.lua", NULL); }

static const char *two(const char *a, const char *b) { return fmt("%s,\n%s", a, b); }

/* The config line of entry i (0-based). */
static const char *entry_where(int i) { return fmt("%s:%d: ", W.cfg_path, 3 + i); }

/* ---- links and counters ------------------------------------------------- */

static es_link *link_at(size_t i)
{
    assert_true(i < W.h.nlinks);
    return &W.h.links[i];
}

static const es_lua_stats *stats(size_t i)
{
    const es_lua_stats *s = es_lua_link_stats(link_at(i));
    assert_non_null(s);
    return s;
}

static uint64_t calls_of(size_t i) { return link_at(i)->calls; }

/* ---- calling the chains ------------------------------------------------- */

static earshot_client client_at(const char *id, int32_t game, int32_t map, int32_t x, int32_t y,
                                int32_t channel)
{
    return (earshot_client){.client_id = id,
                            .address = "10.0.0.1",
                            .pos = {.game_id = game, .map_id = map, .x = x, .y = y,
                                    .channel = channel}};
}

static earshot_position pos_at(int32_t game, int32_t map, int32_t x, int32_t y, int32_t channel)
{
    return (earshot_position){.game_id = game, .map_id = map, .x = x, .y = y, .channel = channel};
}

static void reason_reset(void) { snprintf(reason, sizeof reason, "(untouched)"); }

static int join_full(const char *id, const char *query, const earshot_header *h, size_t nh)
{
    earshot_join j = {.client_id = id,
                      .address = "10.0.0.1",
                      .path = "/",
                      .query = query,
                      .headers = h,
                      .header_count = nh,
                      .pos = pos_at(0, 1, 0, 0, 0)};
    reason_reset();
    return es_hooks_join(&W.h, &j, reason);
}

static int join(const char *id) { return join_full(id, "", NULL, 0); }

/* join(id) must be denied with exactly this reason. */
static void join_denied(const char *id, const char *why)
{
    if (join(id) != 0)
        fail_msg("join %s was allowed", id);
    assert_string_equal(reason, why);
}

/* Client id moves from its current position to *pos. */
static int position(const earshot_client *c, earshot_position *pos)
{
    reason_reset();
    return es_hooks_position(&W.h, c, pos, reason);
}

static int match_ids(const char *a_id, const char *b_id, int matched)
{
    earshot_client a = client_at(a_id, 0, 1, 0, 0, 0), b = client_at(b_id, 0, 1, 3, 4, 0);
    return es_hooks_match(&W.h, &a, &b, matched);
}

static int relay_ids(const char *from, const char *to)
{
    earshot_client a = client_at(from, 0, 1, 0, 0, 0), b = client_at(to, 0, 1, 3, 4, 0);
    earshot_relay r = {.kind = EARSHOT_RELAY_OFFER,
                       .sender = &a,
                       .target = &b,
                       .payload = "sdp",
                       .payload_len = 3,
                       .matched = 1};
    reason_reset();
    return es_hooks_relay(&W.h, &r, reason);
}

/* ---- stderr capture ----------------------------------------------------- */

static int saved_stderr = -1;
static const char *capture_path;

static void capture_begin(es_log_level level)
{
    capture_path = world_file("stderr.txt", "");
    fflush(stderr);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    int fd = open(capture_path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_true(dup2(fd, 2) == 2);
    close(fd);
    es_log_set_level(level);
}

static const char *capture_end(void)
{
    static char text[16384];
    fflush(stderr);
    es_log_set_level(EARSHOT_LOG_ERROR); /* main() runs the tests at this level */
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    FILE *f = fopen(capture_path, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* "NAME:<digits>:" occurs in s (a file and line in a Lua message). */
static int has_file_line(const char *s, const char *name)
{
    for (const char *p = strstr(s, name); p; p = strstr(p + 1, name)) {
        const char *q = p + strlen(name);
        if (*q != ':' || !isdigit((unsigned char)q[1]))
            continue;
        q++;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == ':')
            return 1;
    }
    return 0;
}

#define assert_file_line(s, name)                                                      \
    do {                                                                               \
        if (!has_file_line((s), (name)))                                               \
            fail_msg("\"%s\" does not name %s:<line>:", (s), (name));                  \
    } while (0)

static const char *read_file(const char *path)
{
    static char text[16384];
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* ==== arguments reach the script exactly ================================== */

TEST(join_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    earshot_header h[] = {{"host", "example.org"},
                          {"authorization", "Bearer t0k"},
                          {"x-quote", "a \"quoted\" value"}};
    earshot_join j = {.client_id = "al\xc3\xaf" "ce",
                      .address = "10.1.2.3",
                      .path = "/room/7",
                      .query = "token=abc&x=1",
                      .headers = h,
                      .header_count = 3,
                      .pos = pos_at(9, 2, -5, INT32_MAX, 3)};
    reason_reset();
    assert_int_equal(es_hooks_join(&W.h, &j, reason), 0);
    assert_string_equal(reason, "1 {address=\"10.1.2.3\",channel=3,client_id=\"al\xc3\xaf" "ce\","
                                "game_id=9,headers={authorization=\"Bearer t0k\",host=\"example."
                                "org\",x-quote=\"a \\\"quoted\\\" value\"},map_id=2,path=\"/room/"
                                "7\",query=\"token=abc&x=1\",resume=false,x=-5,y=2147483647}");

    /* no headers, empty query */
    earshot_join k = {.client_id = "b",
                      .address = "::1",
                      .path = "/",
                      .query = "",
                      .headers = NULL,
                      .header_count = 0,
                      .pos = pos_at(INT32_MIN, 0, 0, -1, 0),
                      .resume = 1};
    reason_reset();
    assert_int_equal(es_hooks_join(&W.h, &k, reason), 0);
    assert_string_equal(reason, "1 {address=\"::1\",channel=0,client_id=\"b\",game_id=-2147483648,"
                                "headers={},map_id=0,path=\"/\",query=\"\",resume=true,x=0,y=-1}");
}

TEST(position_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    earshot_client c = {.client_id = "bob", .address = "::1", .pos = pos_at(1, 2, 3, 4, 5)};
    earshot_position p = pos_at(6, 7, -8, 9, 10);
    assert_int_equal(position(&c, &p), 0);
    assert_string_equal(reason, "2 {address=\"::1\",channel=5,client_id=\"bob\",game_id=1,map_id=2,"
                                "x=3,y=4} {channel=10,game_id=6,map_id=7,x=-8,y=9}");
    /* the position is not touched by a deny */
    assert_int_equal(p.x, -8);
    assert_int_equal(p.channel, 10);

    /* a second call with another client: nothing of the first one is left over */
    earshot_client d = {.client_id = "carol", .address = "10.9.9.9", .pos = pos_at(0, 0, 0, 0, 0)};
    earshot_position q = pos_at(0, 0, INT32_MIN, INT32_MAX, 0);
    assert_int_equal(position(&d, &q), 0);
    assert_string_equal(reason, "2 {address=\"10.9.9.9\",channel=0,client_id=\"carol\",game_id=0,"
                                "map_id=0,x=0,y=0} {channel=0,game_id=0,map_id=0,x=-2147483648,"
                                "y=2147483647}");
}

TEST(match_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    earshot_client a = {.client_id = "a", .address = "10.0.0.1", .pos = pos_at(4, 1, 2, 3, 7)};
    earshot_client b = {.client_id = "b", .address = "10.0.0.2", .pos = pos_at(4, 1, 5, 7, 7)};
    /* echo passes: with no other filter, nobody matches */
    assert_int_equal(es_hooks_match(&W.h, &a, &b, 1), 0);
    assert_int_equal(join("?last"), 0);
    assert_string_equal(reason, "3 {address=\"10.0.0.1\",channel=7,client_id=\"a\",game_id=4,"
                                "map_id=1,x=2,y=3} {address=\"10.0.0.2\",channel=7,client_id=\"b\","
                                "game_id=4,map_id=1,x=5,y=7} true");
    assert_int_equal(es_hooks_match(&W.h, &b, &a, 0), 0);
    assert_int_equal(join("?last"), 0);
    assert_string_equal(reason, "3 {address=\"10.0.0.2\",channel=7,client_id=\"b\",game_id=4,"
                                "map_id=1,x=5,y=7} {address=\"10.0.0.1\",channel=7,client_id=\"a\","
                                "game_id=4,map_id=1,x=2,y=3} false");
}

TEST(relay_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    earshot_client a = {.client_id = "a", .address = "10.0.0.1", .pos = pos_at(0, 1, 2, 3, 0)};
    earshot_client b = {.client_id = "b", .address = "10.0.0.2", .pos = pos_at(0, 1, 5, 7, 0)};
    static const struct {
        earshot_relay_kind kind;
        const char *name;
    } kinds[] = {{EARSHOT_RELAY_OFFER, "offer"},
                 {EARSHOT_RELAY_ANSWER, "answer"},
                 {EARSHOT_RELAY_ICE_CANDIDATE, "candidate"}};
    for (size_t i = 0; i < 3; i++) {
        /* a payload with a NUL inside, and bytes after it */
        earshot_relay r = {.kind = kinds[i].kind,
                           .sender = &a,
                           .target = &b,
                           .payload = "v=0\0x",
                           .payload_len = 5,
                           .matched = (int)(i != 1)};
        reason_reset();
        assert_int_equal(es_hooks_relay(&W.h, &r, reason), 0);
        assert_string_equal(
            reason, fmt("1 {kind=\"%s\",matched=%s,payload=\"v=0\\0x\",sender={address=\"10.0.0.1\","
                        "channel=0,client_id=\"a\",game_id=0,map_id=1,x=2,y=3},target={address="
                        "\"10.0.0.2\",channel=0,client_id=\"b\",game_id=0,map_id=1,x=5,y=7}}",
                        kinds[i].name, i != 1 ? "true" : "false"));
    }
    /* an empty payload */
    earshot_relay r = {.kind = EARSHOT_RELAY_ANSWER, .sender = &b, .target = &a, .payload = "",
                       .payload_len = 0, .matched = 0};
    reason_reset();
    assert_int_equal(es_hooks_relay(&W.h, &r, reason), 0);
    assert_contains(reason, "payload=\"\",sender={address=\"10.0.0.2\"");
}

TEST(leave_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    static const struct {
        earshot_leave_reason why;
        const char *name;
    } reasons[] = {{EARSHOT_LEAVE_DISCONNECT, "disconnect"},
                   {EARSHOT_LEAVE_CLOSED, "closed"},
                   {EARSHOT_LEAVE_TIMEOUT, "timeout"},
                   {EARSHOT_LEAVE_TAKEOVER, "takeover"},
                   {EARSHOT_LEAVE_SHUTDOWN, "shutdown"}};
    earshot_client c = {.client_id = "dave", .address = "10.0.0.3", .pos = pos_at(2, 3, 4, 5, 6)};
    for (size_t i = 0; i < 5; i++) {
        es_hooks_leave(&W.h, &c, reasons[i].why);
        assert_int_equal(join("?last"), 0);
        assert_string_equal(reason, fmt("2 {address=\"10.0.0.3\",channel=6,client_id=\"dave\","
                                        "game_id=2,map_id=3,x=4,y=5} \"%s\"",
                                        reasons[i].name));
    }
    assert_int_equal(stats(0)->errors, 0);
}

TEST(pair_arguments_reach_the_script)
{
    world_load(lua_entry("echo", "echo.lua", NULL));
    earshot_client a = {.client_id = "a", .address = "10.0.0.1", .pos = pos_at(4, 1, 2, 3, 7)};
    earshot_client b = {.client_id = "b", .address = "::1", .pos = pos_at(4, 1, -5, 7, 7)};
    es_hooks_pair(&W.h, &a, &b, 1);
    assert_int_equal(join("?last"), 0);
    assert_string_equal(reason, "3 {address=\"10.0.0.1\",channel=7,client_id=\"a\",game_id=4,"
                                "map_id=1,x=2,y=3} {address=\"::1\",channel=7,client_id=\"b\","
                                "game_id=4,map_id=1,x=-5,y=7} true");
    es_hooks_pair(&W.h, &b, &a, 0);
    assert_int_equal(join("?last"), 0);
    assert_string_equal(reason, "3 {address=\"::1\",channel=7,client_id=\"b\",game_id=4,"
                                "map_id=1,x=-5,y=7} {address=\"10.0.0.1\",channel=7,client_id=\"a\","
                                "game_id=4,map_id=1,x=2,y=3} false");
    assert_int_equal(stats(0)->calls, 4);
    assert_int_equal(stats(0)->errors, 0);
}

/* ==== return conventions =================================================== */

static void load_verdicts(void)
{
    world_load(two(lua_entry("verdicts", "verdicts.lua", NULL), tail_entry()));
}

/* One answer of verdicts.lua, and what the chain (verdicts, tail) makes of it. */
typedef struct verdict_case {
    const char *id;         /* what verdicts.lua returns */
    int allowed;            /* the chain's answer (match: matched) */
    const char *reason;     /* the reason it leaves; NULL: untouched */
    int tail_called, error; /* the tail was asked; an error was counted */
} verdict_case;

/* A case's reason: the hook's own text for a deny without a reason. */
static const char HOOK_DEFAULT[] = "(the hook's default reason)";

/* Run case c through one chain (match: with `matched`); returns the answer. */
typedef int (*verdict_run)(const verdict_case *c, int matched);

/* Run every case through run, `runs` times each (the i-th with matched =
 * i), checking the answer, the reason (HOOK_DEFAULT: hook_default), the
 * tail's calls and the errors. */
static void check_cases(const char *hook, verdict_run run, const verdict_case *cases, size_t n,
                        int runs, const char *hook_default)
{
    uint64_t errors = 0;
    for (size_t i = 0; i < n; i++) {
        for (int m = 0; m < runs; m++) {
            const verdict_case *c = &cases[i];
            uint64_t tail_before = calls_of(1);
            int v = run(c, m);
            if (v != c->allowed)
                fail_msg("%s %s: verdict %d, expected %d (%s)", hook, c->id, v, c->allowed, reason);
            assert_string_equal(reason, c->reason == HOOK_DEFAULT ? hook_default
                                        : c->reason                ? c->reason
                                                                   : "(untouched)");
            assert_int_equal(calls_of(1) - tail_before, c->tail_called);
            errors += (uint64_t)c->error;
            if (stats(0)->errors != errors)
                fail_msg("%s %s: %llu errors counted, expected %llu", hook, c->id,
                         (unsigned long long)stats(0)->errors, (unsigned long long)errors);
        }
    }
}

/* join and relay answer alike */
static const verdict_case join_relay_cases[] = {
    {"nil", 0, "tail", 1, 0},
    {"none", 0, "tail", 1, 0},
    {"true", 1, NULL, 0, 0},
    {"true+reason", 1, NULL, 0, 0},
    {"false", 0, HOOK_DEFAULT, 0, 0},
    {"false+reason", 0, "go away", 0, 0},
    {"false+empty", 0, HOOK_DEFAULT, 0, 0},
    {"number", 0, "internal error", 0, 1},
    {"string", 0, "internal error", 0, 1},
    {"table", 0, "internal error", 0, 1},
    {"function", 0, "internal error", 0, 1},
};

static int run_join(const verdict_case *c, int matched)
{
    (void)matched;
    return join(c->id);
}

TEST(join_return_conventions)
{
    load_verdicts();
    check_cases("join", run_join, join_relay_cases, ES_ARRAY_LEN(join_relay_cases), 1,
                "join refused");
    uint64_t errors = stats(0)->errors;
    /* a non-string reason is no reason, and no error */
    assert_int_equal(join("false+number"), 0);
    assert_string_not_equal(reason, "internal error");
    assert_int_equal(stats(0)->errors, errors);
    assert_int_equal(stats(0)->calls, ES_ARRAY_LEN(join_relay_cases) + 1);
}

TEST(long_reason_is_cut_at_a_character_boundary)
{
    load_verdicts();
    assert_int_equal(join("false+long"), 0);
    size_t n = strlen(reason);
    assert_true(n < ES_ERROR_MAX);
    assert_true(n >= ES_ERROR_MAX - 3); /* as much as fits */
    assert_int_equal(n % 2, 0);         /* "é" is two bytes: no half character */
    for (size_t i = 0; i < n; i += 2) {
        assert_int_equal((unsigned char)reason[i], 0xc3);
        assert_int_equal((unsigned char)reason[i + 1], 0xa9);
    }
}

static int run_position(const verdict_case *c, int matched)
{
    (void)matched;
    earshot_client cl = client_at(c->id, 0, 1, 0, 0, 0);
    earshot_position p = pos_at(0, 1, 10, 20, 0);
    int v = position(&cl, &p);
    /* the caller gets the position the tail saw (and printed), or, when no
     * later link ran, the one it asked for */
    const char *got = fmt("%d %d %d %d %d", p.game_id, p.map_id, p.x, p.y, p.channel);
    const char *want = c->tail_called ? c->reason + strlen("tail ") : "0 1 10 20 0";
    if (strcmp(got, want) != 0)
        fail_msg("position %s: got (%s), expected (%s)", c->id, got, want);
    return v;
}

TEST(position_return_conventions)
{
    load_verdicts();
    static const verdict_case cases[] = {
        {"nil", 0, "tail 0 1 10 20 0", 1, 0},
        {"none", 0, "tail 0 1 10 20 0", 1, 0},
        {"true", 1, NULL, 0, 0},
        {"false", 0, HOOK_DEFAULT, 0, 0},
        {"false+reason", 0, "go away", 0, 0},
        /* an adjusted position passes: the next link sees it, the caller gets it */
        {"pos", 0, "tail 0 1 11 -12 0", 1, 0},
        {"pos-all", 0, "tail 5 3 1 2 4", 1, 0},
        {"pos-limits", 0, "tail 0 1 -2147483648 2147483647 0", 1, 0},
        {"pos-same", 0, "tail 0 1 11 20 0", 1, 0},
        {"table", 0, "tail 0 1 10 20 0", 1, 0},
        /* bad values: an error, position's default on_error is allow (pass),
         * and nothing of the bad table is applied */
        {"pos-float", 0, "tail 0 1 10 20 0", 1, 1},
        {"pos-big", 0, "tail 0 1 10 20 0", 1, 1},
        {"pos-small", 0, "tail 0 1 10 20 0", 1, 1},
        {"pos-text", 0, "tail 0 1 10 20 0", 1, 1},
        {"pos-bool", 0, "tail 0 1 10 20 0", 1, 1},
        {"pos-table", 0, "tail 0 1 10 20 0", 1, 1},
        {"number", 0, "tail 0 1 10 20 0", 1, 1},
        {"string", 0, "tail 0 1 10 20 0", 1, 1},
        {"function", 0, "tail 0 1 10 20 0", 1, 1},
    };
    check_cases("position", run_position, cases, ES_ARRAY_LEN(cases), 1, "position refused");
}

TEST(position_table_is_applied_alone)
{
    /* without a tail, an adjusted position passes and the chain's default
     * (allow) stands, with the adjusted position */
    world_load(lua_entry("verdicts", "verdicts.lua", NULL));
    earshot_client c = client_at("pos-all", 0, 1, 0, 0, 0);
    earshot_position p = pos_at(0, 1, 10, 20, 0);
    assert_int_equal(position(&c, &p), 1);
    assert_int_equal(p.game_id, 5);
    assert_int_equal(p.map_id, 3);
    assert_int_equal(p.x, 1);
    assert_int_equal(p.y, 2);
    assert_int_equal(p.channel, 4);
}

static int run_match(const verdict_case *c, int matched)
{
    reason_reset(); /* a match has no reason: it stays untouched */
    return match_ids(c->id, "other", matched);
}

TEST(match_return_conventions)
{
    load_verdicts();
    static const verdict_case cases[] = {
        {"nil", 1, NULL, 1, 0},    {"none", 1, NULL, 1, 0},   {"true", 1, NULL, 0, 0},
        {"true+reason", 1, NULL, 0, 0}, {"false", 0, NULL, 0, 0}, {"false+reason", 0, NULL, 0, 0},
        /* bad: an error, match's default on_error is allow = pass: the tail allows */
        {"number", 1, NULL, 1, 1}, {"string", 1, NULL, 1, 1}, {"table", 1, NULL, 1, 1},
        {"function", 1, NULL, 1, 1},
    };
    check_cases("match", run_match, cases, ES_ARRAY_LEN(cases), 2, NULL);
}

TEST(match_all_pass_is_no_match)
{
    world_load(lua_entry("verdicts", "verdicts.lua", NULL));
    assert_int_equal(match_ids("nil", "x", 0), 0);
    assert_int_equal(match_ids("nil", "x", 1), 0);
    assert_int_equal(match_ids("true", "x", 0), 1);
    assert_int_equal(match_ids("false", "x", 1), 0);
}

static int run_relay(const verdict_case *c, int matched)
{
    (void)matched;
    return relay_ids(c->id, "bob");
}

TEST(relay_return_conventions)
{
    load_verdicts();
    check_cases("relay", run_relay, join_relay_cases, ES_ARRAY_LEN(join_relay_cases), 1,
                "relay to bob not allowed");
}

TEST(leave_return_values_are_ignored)
{
    load_verdicts();
    const char *ids[] = {"nil", "true", "false+reason", "number", "table", "pos-all"};
    for (size_t i = 0; i < ES_ARRAY_LEN(ids); i++) {
        earshot_client c = client_at(ids[i], 0, 1, 0, 0, 0);
        es_hooks_leave(&W.h, &c, EARSHOT_LEAVE_CLOSED);
    }
    assert_int_equal(stats(0)->calls, ES_ARRAY_LEN(ids));
    assert_int_equal(stats(0)->errors, 0);
    assert_int_equal(link_at(0)->calls, ES_ARRAY_LEN(ids));
}

/* ==== settings ============================================================= */

TEST(settings_reach_the_script)
{
    world_load(lua_entry("my-settings", "echo.lua",
                         "settings = { n = 42; neg = -7; big = 9000000000L; f = 2.5; b = true; "
                         "off = false; s = \"hi \\\"there\\\"\"; empty = \"\"; arr = [1, 2, 3]; "
                         "lst = (\"a\", 2, { g = 1; }); nested = { inner = { deep = \"x\"; "
                         "ok = true; }; k = 7; }; };"));
    assert_int_equal(join("?settings"), 0);
    assert_string_equal(reason,
                        "name=my-settings settings={arr={1=1,2=2,3=3},b=true,big=9000000000,"
                        "empty=\"\",f=2.5,lst={1=\"a\",2=2,3={g=1}},n=42,neg=-7,nested={inner={"
                        "deep=\"x\",ok=true},k=7},off=false,s=\"hi \\\"there\\\"\"}");
}

TEST(no_settings_is_an_empty_table)
{
    world_load(two(lua_entry("plain", "echo.lua", NULL),
                   lua_entry("empty", "echo.lua", "settings = { };")));
    join_denied("?settings", "name=plain settings={}");
    /* each script has its own state: the first denies, the second is not asked */
    assert_int_equal(calls_of(1), 0);
}

TEST(each_entry_has_its_own_state)
{
    world_load(two(lua_entry("first", "limits.lua", NULL), lua_entry("second", "limits.lua", NULL)));
    join_denied("declared", "counter 1");
    join_denied("declared", "counter 2");
    assert_int_equal(calls_of(1), 0);
    assert_int_equal(stats(1)->calls, 0);
}

/* ==== the sandbox ========================================================== */

static void load_sandbox(const char *extra)
{
    const char *file = world_file("readable.txt", "return 1\n");
    world_load(lua_entry("sandbox", "sandbox.lua",
                         fmt("settings = { file = \"%s\"; out = \"%s/out.txt\"; }; %s", file,
                             W.dir.path, extra ? extra : "")));
    world_file("out.txt", ""); /* so teardown removes it */
}

static const char *probe(const char *name)
{
    if (join(name) != 0)
        fail_msg("probe %s was allowed", name);
    return reason;
}

TEST(sandbox_globals)
{
    load_sandbox(NULL);
    assert_string_equal(probe("globals"),
                        "true|os=nil io=nil require=nil dofile=nil loadfile=nil "
                        "collectgarbage=nil debug=nil package=nil coroutine=nil load=function "
                        "print=function pcall=function earshot=table string=table table=table "
                        "math=table utf8=table string.dump=nil|nil");
}

TEST(sandbox_refuses_escapes)
{
    load_sandbox(NULL);
    static const struct {
        const char *probe, *needle;
    } refused[] = {
        {"os_execute", "global 'os'"},
        {"os_exit", "global 'os'"},
        {"io_open", "global 'io'"},
        {"io_lines", "global 'io'"},
        {"require", "global 'require'"},
        {"dofile", "global 'dofile'"},
        {"loadfile", "global 'loadfile'"},
        {"string_dump", "field 'dump'"},
        {"debug_sethook", "global 'debug'"},
        {"debug_getregistry", "global 'debug'"},
        {"collectgarbage", "global 'collectgarbage'"},
        {"package_loadlib", "global 'package'"},
    };
    for (size_t i = 0; i < ES_ARRAY_LEN(refused); i++) {
        const char *r = probe(refused[i].probe);
        if (!starts_with(r, "false|") || !strstr(r, refused[i].needle))
            fail_msg("probe %s: \"%s\" (expected an error naming %s)", refused[i].probe, r,
                     refused[i].needle);
    }
    assert_int_equal(stats(0)->errors, 0); /* the script caught them all itself */
}

TEST(sandbox_load_is_text_only)
{
    load_sandbox(NULL);
    /* binary chunks come back as nil + message, in any mode */
    const char *r = probe("load_binary");
    assert_starts_with(r, "true|nil|");
    assert_contains(r, "binary chunk");
    r = probe("load_binary_mode_b");
    assert_starts_with(r, "true|nil|");
    assert_contains(r, "binary chunk");
    /* nor through a reader function: an error, or nil + message */
    r = probe("load_reader");
    if (!starts_with(r, "false|") && !starts_with(r, "true|nil|"))
        fail_msg("load(reader of a binary chunk) gave \"%s\"", r);
    /* text still loads, with an env too */
    assert_string_equal(probe("load_text"), "true|42|nil");
    assert_string_equal(probe("load_env"), "true|5|nil");
    assert_string_equal(probe("string_meta_dump"), "true|nil|nil");
}

TEST(grant_io_opens_io_only)
{
    load_sandbox("grant = [\"io\"];");
    assert_contains(probe("globals"), " io=table ");
    assert_contains(reason, "|os=nil ");
    assert_string_equal(probe("io_write"), "true|written by lua|nil");
    assert_string_equal(read_file(fmt("%s/out.txt", W.dir.path)), "written by lua");
    assert_string_equal(probe("io_lines"), "true|return 1|nil");
    /* the rest of the sandbox stays shut */
    assert_starts_with(probe("os_execute"), "false|");
    assert_starts_with(probe("dofile"), "false|");
    assert_contains(probe("globals"), "require=nil dofile=nil loadfile=nil");
}

TEST(grant_os_has_no_exit)
{
    load_sandbox("grant = [\"os\"];");
    assert_string_equal(probe("os_parts"), "true|exit=nil time=function getenv=function "
                                           "clock=function|nil");
    const char *r = probe("os_exit");
    assert_starts_with(r, "false|");
    assert_contains(r, "exit");
    assert_contains(probe("globals"), "|os=table io=nil ");
}

TEST(grant_io_and_os)
{
    load_sandbox("grant = [\"io\", \"os\"];");
    assert_contains(probe("globals"), "|os=table io=table ");
    assert_string_equal(probe("os_parts"), "true|exit=nil time=function getenv=function "
                                           "clock=function|nil");
}

/* ==== limits, errors ======================================================= */

static void load_limits(const char *extra) { world_load(lua_entry("limits", "limits.lua", extra)); }

TEST(memory_bomb_is_stopped)
{
    load_limits(NULL);
    join_denied("rep", "internal error");
    assert_int_equal(stats(0)->memory_stops, 1);
    assert_int_equal(stats(0)->errors, 0);
    assert_int_equal(stats(0)->budget_stops, 0);
    assert_true(stats(0)->memory_bytes < (size_t)16 << 20);
    /* the state still works, and can still use memory within its limit */
    join_denied("ok", "ok");
    join_denied("rep_small", "1048576 bytes");
    assert_int_equal(join("rep"), 0);
    assert_int_equal(stats(0)->memory_stops, 2);
    join_denied("declared", "counter 1");
    assert_int_equal(stats(0)->calls, 5);
}

/* The string library's C loops count against the instruction limit: each
 * bomb is a stopped call (a deny on join), and the state works after it. */
TEST(c_library_loops_are_stopped)
{
    world_load(lua_entry("c_loops", "c_loops.lua", NULL));
    static const char *const bombs[] = {"find_bomb",   "match_bomb",     "gmatch_bomb",
                                        "gsub_bomb",   "rep_bomb",       "concat_bomb",
                                        "concat_op_bomb", "plain_find_bomb"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bombs); i++) {
        join_denied(bombs[i], "internal error");
        assert_int_equal(stats(0)->budget_stops, i + 1);
        join_denied("ok", "ok");
    }
    assert_int_equal(stats(0)->errors, 0);
    assert_int_equal(stats(0)->memory_stops, 0);
}

TEST(everyday_patterns_are_unchanged)
{
    world_load(lua_entry("c_loops", "c_loops.lua", NULL));
    join_denied("patterns", "13 5 8700 300 3 k abc nil 4 (a(b)c)");
    assert_int_equal(stats(0)->budget_stops, 0);
}

/* A bigger limit lets the same pattern run: the bound is the budget's. */
TEST(pattern_bound_follows_the_instruction_limit)
{
    world_load(lua_entry("c_loops", "c_loops.lua", "instruction_limit = 1000;"));
    join_denied("patterns", "internal error");
    assert_int_equal(stats(0)->budget_stops, 1);
}

TEST(memory_limit_is_configurable)
{
    load_limits("memory_limit = 1048576; instruction_limit = 1099511627776L;");
    /* 1 MiB of string does not fit in 1 MiB of state */
    join_denied("rep_small", "internal error");
    assert_int_equal(stats(0)->memory_stops, 1);
    /* a table growing without end meets the memory limit (the instruction
     * limit is out of reach) */
    join_denied("grow", "internal error");
    assert_int_equal(stats(0)->memory_stops, 2);
    assert_int_equal(stats(0)->budget_stops, 0);
    assert_true(stats(0)->memory_bytes <= 1048576);
    join_denied("ok", "ok");
}

/*
 * Run body in a child process and return its exit code; fail the test if
 * the child was killed by a signal (an abort in the Lua host would otherwise
 * take the whole test program down).
 */
static int in_child(int (*body)(void), const char *what)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(body());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("%s: the process was killed by signal %d (%s)", what, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int fill_then_call(void)
{
    if (join("fill") != 0)
        return 10;
    for (int i = 0; i < 3; i++)
        if (join("ok") != 0) /* "ok" or "internal error": a deny either way */
            return 11;
    if (es_lua_link_stats(&W.h.links[0])->memory_bytes > 1048576)
        return 12;
    return 0;
}

/*
 * A script may keep memory up to its limit in a global. The next hook call
 * must then still be answered (stopped at the memory limit and answered per
 * on_error), not take the server down. Run in a child process, since the
 * failure mode is an abort.
 */
TEST(memory_full_state_next_call_is_answered)
{
    load_limits("memory_limit = 1048576;");
    int code = in_child(fill_then_call, "after a script filled its memory, the next hook call");
    assert_int_equal(code, 0);
}

static int meddle_then_call(void)
{
    earshot_client m = client_at("meddle", 0, 1, 0, 0, 0);
    earshot_position p = pos_at(0, 1, 1, 1, 0);
    if (position(&m, &p) != 1)
        return 10;
    earshot_client c = client_at("calm", 0, 1, 0, 0, 0);
    for (int i = 0; i < 2; i++) {
        earshot_position q = pos_at(0, 1, 2, 2, 0);
        if (position(&c, &q) != 1 || q.x != 2 || q.y != 2) /* passes, unchanged */
            return 11;
    }
    if (relay_ids("meddle", "calm") != 1)
        return 12;
    for (int i = 0; i < 2; i++)
        if (relay_ids("calm", "meddle") != 1)
            return 13;
    return 0;
}

/*
 * The client, position and relay tables are reused; a script may still do
 * anything to them (remove fields, set a metatable whose __newindex raises).
 * Refilling them for the next call must not run into an unprotected error.
 */
TEST(trapped_argument_tables_next_call_is_answered)
{
    world_load(lua_entry("meddler", "meddler.lua", NULL));
    int code = in_child(meddle_then_call,
                        "after a script trapped its reused argument tables, the next hook call");
    assert_int_equal(code, 0);
}

/*
 * A __gc finalizer is script code: the instruction limit must hold for it as
 * for the hook that runs when the collector calls it. finalizer.lua's
 * finalizer loops 3,000,000 times; with a limit of 100,000 instructions per
 * call (each iteration is at least one instruction) it must be stopped long
 * before (an infinite loop there would stall the server forever).
 */
TEST(finalizer_obeys_the_instruction_limit)
{
    world_load(lua_entry("finalizer", "finalizer.lua", "instruction_limit = 100000;"));
    join("arm");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(join("report"), 0);
        assert_starts_with(reason, "spins ");
        long spins = strtol(reason + 6, NULL, 10);
        if (spins > 101000)
            fail_msg("a __gc finalizer ran %ld loop iterations in calls limited to 100000 "
                     "instructions",
                     spins);
    }
}

TEST(infinite_loop_is_stopped)
{
    load_limits("instruction_limit = 100000;");
    join_denied("loop", "internal error");
    assert_int_equal(stats(0)->budget_stops, 1);
    assert_int_equal(stats(0)->errors, 0);
    assert_int_equal(stats(0)->memory_stops, 0);
    /* the next call runs with a fresh budget */
    join_denied("ok", "ok");
    join_denied("declared", "counter 1");
    assert_int_equal(stats(0)->budget_stops, 1);
}

TEST(default_instruction_limit_stops_a_loop)
{
    load_limits(NULL);
    join_denied("loop", "internal error");
    assert_int_equal(stats(0)->budget_stops, 1);
    join_denied("ok", "ok");
}

TEST(pcall_cannot_swallow_the_stop)
{
    load_limits("instruction_limit = 100000;");
    join_denied("pcall_loop", "internal error");
    assert_int_equal(stats(0)->budget_stops, 1);
    join_denied("ok", "ok");
    /* a loop inside a callback from C (string.gsub) */
    join_denied("gsub_loop", "internal error");
    assert_int_equal(stats(0)->budget_stops, 2);
    join_denied("ok", "ok");
    assert_int_equal(stats(0)->errors, 0);
}

TEST(tail_called_pcall_cannot_swallow_the_stop)
{
    /* `return pcall(loop)`: no instruction of the script runs after the
     * pcall, yet the call hit the limit: it must count as stopped and be
     * answered per on_error, not with pcall's (false, "instruction limit
     * exceeded ...") as a verdict */
    load_limits("instruction_limit = 100000;");
    join_denied("tail_pcall", "internal error");
    assert_int_equal(stats(0)->budget_stops, 1);
    join_denied("ok", "ok");
}

TEST(errors_are_counted_and_logged)
{
    load_limits(NULL);
    capture_begin(EARSHOT_LOG_WARN);
    int v1 = join("error");
    char r1[ES_ERROR_MAX];
    snprintf(r1, sizeof r1, "%s", reason);
    int v2 = join("error_table");
    const char *log = capture_end();
    assert_int_equal(v1, 0);
    assert_string_equal(r1, "internal error");
    assert_int_equal(v2, 0);
    assert_string_equal(reason, "internal error");
    assert_int_equal(stats(0)->errors, 2);
    /* logged with the script's name, file and line */
    assert_contains(log, "limits");
    assert_contains(log, "boom");
    assert_file_line(log, "limits.lua");
    join_denied("ok", "ok");
}

TEST(new_global_in_a_hook_is_an_error)
{
    load_limits(NULL);
    capture_begin(EARSHOT_LOG_WARN);
    int v = join("undeclared");
    const char *log = capture_end();
    assert_int_equal(v, 0);
    assert_string_equal(reason, "internal error");
    assert_int_equal(stats(0)->errors, 1);
    assert_contains(log, "undeclared_global");
    /* declared globals may be assigned */
    join_denied("declared", "counter 1");
    assert_int_equal(stats(0)->errors, 1);
    /* and the failed assignment left nothing behind: it fails again */
    assert_int_equal(join("undeclared"), 0);
    assert_int_equal(stats(0)->errors, 2);
}

/* What one verdict hook answers, and whether the tail link was asked. */
typedef struct answer {
    int verdict;        /* the chain's answer (match: matched) */
    const char *reason; /* NULL: untouched */
    int tail_asked;     /* -1: there is no tail link */
} answer;

/*
 * Ask join, position, match (with `matched`) and relay in that order, with
 * client ids ids[0..3], and check each answer against want[0..3]. The
 * position asked for is (0 1 1 2 0), and no script here changes it.
 */
static void expect_answers(const char *const ids[4], int matched, const answer want[4])
{
    static const char *const hooks[4] = {"join", "position", "match", "relay"};
    earshot_client c = client_at(ids[1], 0, 1, 0, 0, 0);
    earshot_position p = pos_at(0, 1, 1, 2, 0);
    uint64_t tail = want[0].tail_asked < 0 ? 0 : calls_of(1);
    for (int i = 0; i < 4; i++) {
        reason_reset();
        int v = i == 0 ? join(ids[0])
                : i == 1 ? position(&c, &p)
                : i == 2 ? match_ids(ids[2], "b", matched)
                         : relay_ids(ids[3], "b");
        if (v != want[i].verdict)
            fail_msg("%s: %d, expected %d (%s)", hooks[i], v, want[i].verdict, reason);
        assert_string_equal(reason, want[i].reason ? want[i].reason : "(untouched)");
        if (want[i].tail_asked >= 0) {
            tail += (uint64_t)want[i].tail_asked;
            if (calls_of(1) != tail)
                fail_msg("%s: the tail was called %llu times, expected %llu", hooks[i],
                         (unsigned long long)calls_of(1), (unsigned long long)tail);
        }
    }
    assert_int_equal(p.x, 1);
    assert_int_equal(p.y, 2);
}

static const char *const ANY_ID[4] = {"a", "a", "a", "a"};

/* failing.lua: every hook raises an error. */
TEST(error_in_every_hook_default_on_error)
{
    world_load(two(lua_entry("failing", "failing.lua", NULL), tail_entry()));
    /* join and relay deny with "internal error"; position and match pass:
     * the tail decides */
    expect_answers(ANY_ID, 0,
                   (answer[]){{0, "internal error", 0},
                              {0, "tail 0 1 1 2 0", 1},
                              {1, NULL, 1},
                              {0, "internal error", 0}});
    /* leave and pair: counted, nothing to answer */
    earshot_client c = client_at("a", 0, 1, 0, 0, 0), d = client_at("d", 0, 1, 0, 0, 0);
    es_hooks_leave(&W.h, &c, EARSHOT_LEAVE_DISCONNECT);
    es_hooks_pair(&W.h, &c, &d, 1);
    const es_lua_stats *s = stats(0);
    assert_int_equal(s->calls, 6);
    assert_int_equal(s->errors, 6);
    assert_int_equal(s->budget_stops, 0);
    assert_int_equal(s->memory_stops, 0);
}

TEST(error_in_every_hook_alone)
{
    /* no tail: a passing failure leaves the chain's default */
    world_load(lua_entry("failing", "failing.lua", NULL));
    expect_answers(ANY_ID, 1,
                   (answer[]){{0, "internal error", -1},
                              {1, NULL, -1},
                              {0, NULL, -1},
                              {0, "internal error", -1}});
}

TEST(on_error_deny_overrides)
{
    world_load(two(lua_entry("failing", "failing.lua", "on_error = \"deny\";"), tail_entry()));
    expect_answers(ANY_ID, 1,
                   (answer[]){{0, "internal error", 0},
                              {0, "internal error", 0},
                              {0, NULL, 0},
                              {0, "internal error", 0}});
    assert_int_equal(stats(0)->errors, 4);
}

TEST(on_error_allow_overrides)
{
    world_load(two(lua_entry("failing", "failing.lua", "on_error = \"allow\";"), tail_entry()));
    expect_answers(ANY_ID, 1,
                   (answer[]){{0, "tail", 1}, {0, "tail 0 1 1 2 0", 1}, {1, NULL, 1}, {0, "tail", 1}});
    assert_int_equal(stats(0)->errors, 4);
}

TEST(on_error_per_hook)
{
    world_load(two(lua_entry("failing", "failing.lua",
                             "on_error = { join = \"allow\"; match = \"deny\"; };"),
                   tail_entry()));
    /* join: allow (pass); position: default allow; match: deny; relay: default deny */
    expect_answers(ANY_ID, 1,
                   (answer[]){{0, "tail", 1},
                              {0, "tail 0 1 1 2 0", 1},
                              {0, NULL, 0},
                              {0, "internal error", 0}});
}

TEST(on_error_applies_to_stopped_calls)
{
    /* a call stopped at the instruction limit is answered like an error */
    world_load(two(lua_entry("looping", "looping.lua",
                             "instruction_limit = 100000; on_error = { position = \"deny\"; "
                             "relay = \"allow\"; };"),
                   tail_entry()));
    /* match: default allow, the tail allows */
    expect_answers(ANY_ID, 0,
                   (answer[]){{0, "internal error", 0},
                              {0, "internal error", 0},
                              {1, NULL, 1},
                              {0, "tail", 1}});
    assert_int_equal(stats(0)->budget_stops, 4);
    assert_int_equal(stats(0)->errors, 0);
}

TEST(on_error_applies_to_bad_returns)
{
    world_load(two(lua_entry("verdicts", "verdicts.lua",
                             "on_error = { join = \"allow\"; position = \"deny\"; "
                             "match = \"deny\"; relay = \"allow\"; };"),
                   tail_entry()));
    static const char *const ids[4] = {"number", "pos-text", "string", "table"};
    expect_answers(ids, 0,
                   (answer[]){{0, "tail", 1},
                              {0, "internal error", 0},
                              {0, NULL, 0},
                              {0, "tail", 1}});
    assert_int_equal(stats(0)->errors, 4);
}

/* ==== the earshot table ==================================================== */

static const char *api(const char *name)
{
    if (join(name) != 0)
        fail_msg("api %s was allowed", name);
    return reason;
}

TEST(earshot_hashes)
{
    world_load(lua_entry("api", "api.lua", NULL));
    /* HMAC-SHA256(key="key", msg="The quick brown fox jumps over the lazy dog") */
    assert_string_equal(api("hmac_fox"),
                        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    /* RFC 4231 test cases 2 and 6 */
    assert_string_equal(api("hmac_rfc2"),
                        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_string_equal(api("hmac_rfc6"),
                        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* key and message with NUL bytes are used whole */
    assert_string_equal(api("hmac_nul"),
                        "d846dc7408aafb0032c18fe477e530dcffc8dd88bd95953f4ea555df894338be");
    assert_string_equal(api("sha_abc"),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(api("sha_empty"),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(api("sha_nul"),
                        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(earshot_secure_equals)
{
    world_load(lua_entry("api", "api.lua", NULL));
    assert_string_equal(api("eq_same"), "true");
    assert_string_equal(api("eq_diff"), "false");
    assert_string_equal(api("eq_prefix"), "false");
    assert_string_equal(api("eq_empty"), "true");
    assert_string_equal(api("eq_nul"), "false");
}

TEST(earshot_now_name_log)
{
    world_load(lua_entry("my-api", "api.lua", NULL));
    assert_string_equal(api("now"), "float true");
    assert_string_equal(api("name"), "my-api");
    capture_begin(EARSHOT_LOG_DEBUG);
    const char *r1 = fmt("%s", api("log"));
    const char *r2 = fmt("%s", api("log_bad_level"));
    const char *log = capture_end();
    assert_string_equal(r1, "logged");
    assert_starts_with(r2, "error: ");
    assert_contains(r2, "loud");
    assert_contains(log, "my-api");
    /* one line per level, the message last on its line */
    const char *levels[] = {"d\n", "i\n", "w\n", "e\n"};
    const char *at = log;
    for (size_t i = 0; i < 4; i++) {
        const char *p = strstr(at, levels[i]);
        if (!p)
            fail_msg("log line ending \"%.1s\" missing in order from:\n%s", levels[i], log);
        at = p + 2;
    }
}

TEST(earshot_emit_and_print)
{
    world_load(lua_entry("my-api", "api.lua", NULL));
    capture_begin(EARSHOT_LOG_INFO);
    const char *r1 = fmt("%s", api("emit"));
    const char *r2 = fmt("%s", api("print"));
    const char *log = capture_end();
    assert_string_equal(r1, "emitted");
    assert_string_equal(r2, "printed");
    /* emit: the raw line, nothing added but the newline */
    if (!starts_with(log, "EMITTED {\"line\":1}\n") && !strstr(log, "\nEMITTED {\"line\":1}\n"))
        fail_msg("no raw emitted line in:\n%s", log);
    /* print: a log line */
    assert_contains(log, "printed\t1\ttrue\n");
}

/* ==== loading ============================================================== */

TEST(load_syntax_error)
{
    const char *e = world_refused(lua_entry("broken", "load_syntax_error.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "broken");
    assert_contains(e, "load_syntax_error.lua:3:");
}

TEST(load_runtime_error)
{
    const char *e = world_refused(lua_entry("broken", "load_runtime_error.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "load_runtime_error.lua:4:");
    assert_contains(e, "arithmetic");
}

TEST(load_infinite_loop)
{
    const char *e = world_refused(lua_entry("spinner", "load_loop.lua", "instruction_limit = 100000;"));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "spinner");
    assert_contains(e, "instruction limit");
}

TEST(load_memory_bomb)
{
    const char *e = world_refused(lua_entry("hog", "load_memory.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "hog");
    assert_contains(e, "memory limit");
}

TEST(load_missing_file)
{
    const char *e = world_refused(lua_entry("ghost", "no_such_script.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "no_such_script.lua");
}

TEST(load_missing_file_by_name)
{
    /* no path: <script_dir>/<name>.lua */
    const char *e = world_refused("  { type = \"lua\"; name = \"no_such_stock_script\"; }");
    assert_starts_with(e, entry_where(0));
    assert_contains(e, fmt("%s/lua/no_such_stock_script.lua", source_dir()));
}

TEST(load_no_hooks)
{
    const char *e = world_refused(lua_entry("idle", "load_no_hooks.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "idle");
    assert_contains(e, "on_join");
}

/* on_tick runs at the script's tick_interval on the clock the core gives. */
TEST(tick_runs_at_the_script_interval)
{
    world_load(lua_entry("ticker", "ticker.lua", NULL));
    assert_int_equal(W.h.chain_len[ES_HOOK_TICK], 1);
    assert_true(W.h.links[0].tick_interval == 0.5);
    join_denied("a", "ticks 0 seen 1");
    join_denied("b", "ticks 0 seen 2");
    es_hooks_tick(&W.h, 100.0);
    join_denied("c", "ticks 1 seen 1");
    es_hooks_tick(&W.h, 100.2);
    es_hooks_tick(&W.h, 100.4);
    join_denied("d", "ticks 1 seen 2");
    es_hooks_tick(&W.h, 100.5);
    join_denied("e", "ticks 2 seen 1");
    assert_int_equal(stats(0)->calls, 7);
}

/* Without tick_interval a script ticks once a second; a bad one is a load
 * error naming the script. */
TEST(tick_interval_default_and_bad)
{
    world_load(lua_entry("timer", "tick_default.lua", NULL));
    assert_int_equal(W.h.chain_len[ES_HOOK_TICK], 1);
    assert_true(W.h.links[0].tick_interval == 1.0);
    world_free();
    const char *e = world_refused(lua_entry("bad", "bad_tick.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "tick_interval must be a number of seconds from 0.1 to 86400");
}

TEST(load_hook_not_a_function)
{
    const char *e = world_refused(lua_entry("odd", "load_not_function.lua", NULL));
    assert_starts_with(e, entry_where(0));
    assert_contains(e, "on_relay");
    assert_contains(e, "function");
}

TEST(load_error_in_a_later_entry_names_its_line)
{
    const char *e = world_refused(fmt("%s,\n%s,\n%s", lua_entry("fine", "echo.lua", NULL),
                                      plugin_entry("proximity", NULL),
                                      lua_entry("broken", "load_syntax_error.lua", NULL)));
    assert_starts_with(e, entry_where(2));
    assert_contains(e, "load_syntax_error.lua:3:");
}

TEST(disabled_entry_is_not_loaded)
{
    world_load(two(lua_entry("ghost", "no_such_script.lua", "enabled = false;"),
                   lua_entry("echo", "echo.lua", NULL)));
    assert_int_equal(W.h.nlinks, 1);
    assert_string_equal(link_at(0)->name, "echo");
}

TEST(load_bad_query_radius)
{
    const char *bad[] = {"-1", "1.5", "4294967297L", "true", "\"far\"", "{ r = 1; }"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        const char *e = world_refused(
            lua_entry("radius", "radius.lua", fmt("settings = { radius = %s; };", bad[i])));
        if (!starts_with(e, entry_where(0)) || !strstr(e, "query_radius"))
            fail_msg("radius %s: \"%s\"", bad[i], e);
        world_free();
    }
}

TEST(query_radius_reaches_the_hooks)
{
    world_load(two(lua_entry("radius", "radius.lua", "settings = { radius = 77; };"),
                   plugin_entry("proximity", "settings = { radius = 20; leave_radius = 25; };")));
    assert_int_equal(link_at(0)->query_radius, 77);
    assert_int_equal(W.h.query_radius, 77);
    world_free();

    world_load(two(lua_entry("radius", "radius.lua", "settings = { radius = 10; };"),
                   plugin_entry("proximity", "settings = { radius = 20; leave_radius = 25; };")));
    assert_int_equal(link_at(0)->query_radius, 10);
    assert_int_equal(W.h.query_radius, 25);
    world_free();

    world_load(lua_entry("radius", "radius.lua", "settings = { radius = 4294967296L; };"));
    assert_int_equal(W.h.query_radius, INT64_C(4294967296));
    world_free();

    /* no query_radius: 0 */
    world_load(lua_entry("radius", "radius.lua", NULL));
    assert_int_equal(link_at(0)->query_radius, 0);
    assert_int_equal(W.h.query_radius, 0);
}

TEST(chains_hold_the_hooks_a_script_defines)
{
    /* radius.lua: match_filter; echo.lua: all six; api.lua: on_join */
    world_load(fmt("%s,\n%s,\n%s", lua_entry("radius", "radius.lua", NULL),
                   lua_entry("echo", "echo.lua", NULL), lua_entry("api", "api.lua", NULL)));
    assert_int_equal(W.h.chain_len[ES_HOOK_JOIN], 2);
    assert_int_equal(W.h.chain_len[ES_HOOK_POSITION], 1);
    assert_int_equal(W.h.chain_len[ES_HOOK_MATCH], 2);
    assert_int_equal(W.h.chain_len[ES_HOOK_RELAY], 1);
    assert_int_equal(W.h.chain_len[ES_HOOK_LEAVE], 1);
    assert_int_equal(W.h.chain_len[ES_HOOK_PAIR], 1);
    assert_true(W.h.chain[ES_HOOK_MATCH][0] == link_at(0));
    assert_true(W.h.chain[ES_HOOK_JOIN][1] == link_at(2));
    assert_true(W.h.chain[ES_HOOK_PAIR][0] == link_at(1));
    /* a plugin link has no Lua stats */
    world_free();
    world_load(two(plugin_entry("proximity", NULL), lua_entry("echo", "echo.lua", NULL)));
    assert_null(es_lua_link_stats(link_at(0)));
    assert_non_null(es_lua_link_stats(link_at(1)));
    assert_true(stats(1)->memory_bytes > 0);
}

/* ==== stock: auth_token ==================================================== */

static const char *const FOX = "The quick brown fox jumps over the lazy dog";
static const char *const FOX_HMAC =
    "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";

static void load_auth(const char *settings)
{
    world_load(two(stock_entry("auth_token", fmt("settings = { %s };", settings)), tail_entry()));
}

/* A join with this query and optional Authorization header; 1 when
 * auth_token passed it on (the tail then refuses it with "tail"). */
static int auth_passes(const char *id, const char *query, const char *authorization)
{
    earshot_header h[] = {{"host", "earshot.example"}, {"authorization", authorization}};
    uint64_t before = calls_of(1);
    int v = join_full(id, query, h, authorization ? 2 : 1);
    assert_int_equal(v, 0); /* the tail denies what auth_token passes */
    int passed = calls_of(1) != before;
    if (passed)
        assert_string_equal(reason, "tail");
    return passed;
}

TEST(auth_token_shared_tokens)
{
    load_auth("tokens = [\"change-me\", \"other\"]; secret = \"\"; query_param = \"token\"; "
              "reason = \"invalid token\";");
    assert_true(auth_passes("alice", "token=change-me", NULL));
    assert_true(auth_passes("alice", "token=other", NULL));
    assert_true(auth_passes("alice", "a=1&token=change-me&b=2", NULL));
    assert_true(auth_passes("alice", "", "Bearer change-me"));
    assert_true(auth_passes("alice", "", "bearer other"));
    assert_true(auth_passes("alice", "token=", "Bearer change-me")); /* empty: the header counts */

    assert_false(auth_passes("alice", "token=wrong", NULL));
    assert_string_equal(reason, "invalid token");
    assert_false(auth_passes("alice", "token=change-me-too", NULL));
    assert_string_equal(reason, "invalid token");
    assert_false(auth_passes("alice", "token=change-m", NULL));
    assert_false(auth_passes("alice", "tok=change-me", NULL));
    assert_false(auth_passes("alice", "", "Bearer wrong"));
    assert_false(auth_passes("alice", "", "Basic change-me"));
    assert_false(auth_passes("alice", "", NULL)); /* no token at all */
    assert_string_equal(reason, "invalid token");
    assert_false(auth_passes("alice", "token=", NULL));
    /* the secret is off: an HMAC is just a wrong token */
    assert_false(auth_passes(FOX, fmt("token=%s", FOX_HMAC), NULL));
    assert_int_equal(stats(0)->errors, 0);
}

TEST(auth_token_hmac)
{
    load_auth("secret = \"key\";");
    /* HMAC-SHA256(key, client_id), lower-case hex; upper case is accepted too */
    assert_true(auth_passes(FOX, fmt("token=%s", FOX_HMAC), NULL));
    assert_true(auth_passes(FOX, "", fmt("Bearer %s", FOX_HMAC)));
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)toupper((unsigned char)FOX_HMAC[i]);
    upper[64] = '\0';
    assert_true(auth_passes(FOX, fmt("token=%s", upper), NULL));
    /* another client's token, a changed digit, a missing one */
    assert_false(auth_passes("The quick brown fox jumps over the lazy cat",
                             fmt("token=%s", FOX_HMAC), NULL));
    assert_string_equal(reason, "invalid token");
    char bad[65];
    memcpy(bad, FOX_HMAC, sizeof bad);
    bad[10] = bad[10] == '0' ? '1' : '0';
    assert_false(auth_passes(FOX, fmt("token=%s", bad), NULL));
    assert_false(auth_passes(FOX, fmt("token=%.63s", FOX_HMAC), NULL));
    assert_false(auth_passes(FOX, "", NULL));
    /* no shared tokens configured: "change-me" is nothing special */
    assert_false(auth_passes(FOX, "token=change-me", NULL));
}

TEST(auth_token_custom_param_and_reason)
{
    load_auth("tokens = [\"s3\"]; query_param = \"key\"; reason = \"go away\";");
    assert_true(auth_passes("bob", "key=s3", NULL));
    assert_false(auth_passes("bob", "token=s3", NULL));
    assert_string_equal(reason, "go away");
    assert_false(auth_passes("bob", "", NULL));
    assert_string_equal(reason, "go away");
}

TEST(auth_token_needs_tokens_or_secret)
{
    const char *e = world_refused(stock_entry("auth_token", "settings = { secret = \"\"; };"));
    assert_starts_with(e, entry_where(0));
    assert_file_line(e, "auth_token.lua");
    assert_contains(e, "tokens");
    world_free();
    e = world_refused(stock_entry("auth_token", "settings = { tokens = [ ]; };"));
    assert_file_line(e, "auth_token.lua");
    world_free();
    e = world_refused(stock_entry("auth_token", NULL));
    assert_file_line(e, "auth_token.lua");
}

/* ==== stock: map_range ===================================================== */

static void load_map_range(const char *maps)
{
    world_load(two(stock_entry("map_range", fmt("settings = { maps = %s; };", maps)),
                   plugin_entry("proximity", "settings = { radius = 20; leave_radius = 25; };")));
}

static const char *const STOCK_MAPS =
    "( { map_id = 3; radius = 8; leave_radius = 10; }, "
    "{ map_id = 7; radius = 40; leave_radius = 45; } )";

/* Are a at (0,0) and b at (dx,dy) on map matched? *proximity_asked tells
 * whether map_range passed the question on. */
static int pair_matched(int32_t game, int32_t map, int32_t dx, int32_t dy, int matched,
                        int *proximity_asked)
{
    earshot_client a = client_at("a", game, map, 0, 0, 0), b = client_at("b", game, map, dx, dy, 0);
    uint64_t before = calls_of(1);
    int v = es_hooks_match(&W.h, &a, &b, matched);
    int v2 = es_hooks_match(&W.h, &b, &a, matched); /* symmetric */
    assert_int_equal(v, v2);
    if (proximity_asked)
        *proximity_asked = calls_of(1) != before;
    return v;
}

TEST(map_range_library_and_arena)
{
    load_map_range(STOCK_MAPS);
    assert_int_equal(W.h.query_radius, 45);
    assert_int_equal(link_at(0)->query_radius, 45);
    int asked;
    /* library, map 3: radius 8 */
    assert_true(pair_matched(0, 3, 8, 0, 0, &asked));
    assert_false(asked);
    assert_false(pair_matched(0, 3, 9, 0, 0, &asked));
    assert_false(asked);
    assert_true(pair_matched(0, 3, 5, 6, 0, NULL));  /* 61 <= 64 */
    assert_false(pair_matched(0, 3, 6, 6, 0, NULL)); /* 72 > 64 */
    assert_true(pair_matched(0, 3, 0, -8, 0, NULL));
    /* hysteresis: matched pairs stay within leave_radius 10 */
    assert_true(pair_matched(0, 3, 9, 0, 1, NULL));
    assert_true(pair_matched(0, 3, 10, 0, 1, NULL));
    assert_true(pair_matched(0, 3, 6, 8, 1, NULL));
    assert_false(pair_matched(0, 3, 11, 0, 1, NULL));
    assert_false(pair_matched(0, 3, 8, 7, 1, NULL));
    /* arena, map 7: radius 40, leave 45 */
    assert_true(pair_matched(0, 7, 35, 0, 0, &asked));
    assert_false(asked);
    assert_true(pair_matched(0, 7, 40, 0, 0, NULL));
    assert_true(pair_matched(0, 7, 24, 32, 0, NULL));
    assert_false(pair_matched(0, 7, 41, 0, 0, NULL));
    assert_true(pair_matched(0, 7, 45, 0, 1, NULL));
    assert_false(pair_matched(0, 7, 46, 0, 1, NULL));
    /* the same rules in another game */
    assert_true(pair_matched(5, 3, 8, 0, 0, NULL));
    assert_false(pair_matched(5, 3, 9, 0, 0, NULL));
    assert_int_equal(stats(0)->errors, 0);
}

TEST(map_range_other_maps_pass_to_proximity)
{
    load_map_range(STOCK_MAPS);
    int asked;
    assert_true(pair_matched(0, 1, 20, 0, 0, &asked));
    assert_true(asked);
    assert_false(pair_matched(0, 1, 21, 0, 0, &asked));
    assert_true(asked);
    assert_true(pair_matched(0, 1, 25, 0, 1, &asked));
    assert_false(pair_matched(0, 1, 26, 0, 1, &asked));
    assert_true(pair_matched(0, 8, 3, 4, 0, &asked));
    assert_true(asked);
}

TEST(map_range_channels_and_games)
{
    load_map_range(STOCK_MAPS);
    /* map 3, another channel: map_range refuses itself */
    earshot_client a = client_at("a", 0, 3, 0, 0, 0), b = client_at("b", 0, 3, 1, 0, 1);
    uint64_t before = calls_of(1);
    assert_int_equal(es_hooks_match(&W.h, &a, &b, 0), 0);
    assert_int_equal(calls_of(1), before);
    /* different games or maps: not map_range's call, proximity refuses */
    earshot_client c = client_at("c", 1, 3, 1, 0, 0);
    assert_int_equal(es_hooks_match(&W.h, &a, &c, 0), 0);
    assert_int_equal(calls_of(1), before + 1);
    earshot_client d = client_at("d", 0, 7, 1, 0, 0);
    assert_int_equal(es_hooks_match(&W.h, &a, &d, 0), 0);
    assert_int_equal(calls_of(1), before + 2);
}

TEST(map_range_game_limited_and_default_leave)
{
    /* leave_radius left out: radius * 1.25 rounded down; game_id limits */
    load_map_range("( { map_id = 3; radius = 8; game_id = 2; } )");
    assert_int_equal(link_at(0)->query_radius, 10);
    assert_int_equal(W.h.query_radius, 25);
    int asked;
    assert_false(pair_matched(2, 3, 9, 0, 0, &asked));
    assert_false(asked);
    assert_true(pair_matched(2, 3, 10, 0, 1, NULL));
    assert_false(pair_matched(2, 3, 11, 0, 1, NULL));
    /* game 0 on map 3: no override, proximity's 20 */
    assert_true(pair_matched(0, 3, 20, 0, 0, &asked));
    assert_true(asked);
}

TEST(map_range_bad_maps_refused)
{
    const char *bad[] = {"( { map_id = 3; radius = 2.5; } )", "( { map_id = 3; } )",
                         "( { radius = 8; } )", "( { map_id = 3; radius = -1; } )",
                         "( { map_id = 3; radius = 8; leave_radius = 7; } )"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
        int rc = world_try(two(stock_entry("map_range", fmt("settings = { maps = %s; };", bad[i])),
                               plugin_entry("proximity", NULL)));
        if (rc != -2)
            fail_msg("maps %s: expected es_hooks_load to fail (rc %d: %s)", bad[i], rc, W.err);
        assert_file_line(W.err, "map_range.lua");
        world_free();
    }
}

/* ==== stock: speed_limit =================================================== */

static void load_speed(const char *settings)
{
    world_load(stock_entry("speed_limit", settings ? fmt("settings = { %s };", settings) : NULL));
}

/* Move client id from (x0,y0) on map 1 to *to; returns the verdict. */
static int move(const char *id, int32_t x0, int32_t y0, earshot_position *to)
{
    earshot_client c = client_at(id, 0, 1, x0, y0, 0);
    return position(&c, to);
}

TEST(speed_limit_refuses_a_jump)
{
    load_speed(NULL); /* 50 units/s + 10 */
    earshot_position p = pos_at(0, 1, 0, 0, 0);
    assert_int_equal(move("runner", 0, 0, &p), 1); /* first update: nothing to compare with */
    p = pos_at(0, 1, 1000000, 0, 0);
    assert_int_equal(move("runner", 0, 0, &p), 0);
    assert_string_equal(reason, "moving too fast");
    assert_int_equal(p.x, 1000000); /* not adjusted */
    p = pos_at(0, 1, 3, 4, 0);      /* a small step is fine */
    assert_int_equal(move("runner", 0, 0, &p), 1);
    /* another client has its own history */
    p = pos_at(0, 1, 5000000, 0, 0);
    assert_int_equal(move("walker", 0, 0, &p), 1);
    assert_int_equal(stats(0)->errors, 0);
}

TEST(speed_limit_exact_bound)
{
    load_speed("max_speed = 0; slack = 10;"); /* exactly 10 units per update */
    earshot_position p = pos_at(0, 1, 0, 0, 0);
    assert_int_equal(move("r", 0, 0, &p), 1);
    p = pos_at(0, 1, 6, 8, 0); /* 10 */
    assert_int_equal(move("r", 0, 0, &p), 1);
    p = pos_at(0, 1, 16, 9, 0); /* from (6,8): sqrt(101) > 10 */
    assert_int_equal(move("r", 6, 8, &p), 0);
    assert_string_equal(reason, "moving too fast");
    p = pos_at(0, 1, -4, 8, 0); /* 10 back along x */
    assert_int_equal(move("r", 6, 8, &p), 1);
}

TEST(speed_limit_map_and_game_change_allowed)
{
    load_speed(NULL);
    earshot_position p = pos_at(0, 1, 0, 0, 0);
    assert_int_equal(move("p", 0, 0, &p), 1);
    p = pos_at(0, 2, 900000, 900000, 0); /* another map: a portal */
    assert_int_equal(move("p", 0, 0, &p), 1);
    earshot_client c = client_at("p", 0, 2, 900000, 900000, 0);
    p = pos_at(4, 2, -900000, 0, 0); /* another game */
    assert_int_equal(position(&c, &p), 1);
    assert_int_equal(p.x, -900000);
}

TEST(speed_limit_forgets_a_client_that_left)
{
    load_speed(NULL);
    earshot_position p = pos_at(0, 1, 0, 0, 0);
    assert_int_equal(move("p", 0, 0, &p), 1);
    earshot_client c = client_at("p", 0, 1, 0, 0, 0);
    es_hooks_leave(&W.h, &c, EARSHOT_LEAVE_DISCONNECT);
    p = pos_at(0, 1, 1000000, 0, 0); /* a fresh start, not a jump */
    assert_int_equal(move("p", 0, 0, &p), 1);
}

TEST(speed_limit_clamp)
{
    load_speed("max_speed = 0; slack = 10; clamp = true;");
    earshot_position p = pos_at(0, 1, 0, 0, 0);
    assert_int_equal(move("c", 0, 0, &p), 1);
    p = pos_at(0, 1, 30, 40, 0); /* 50 away: moved 10 towards it */
    assert_int_equal(move("c", 0, 0, &p), 1);
    assert_int_equal(p.x, 6);
    assert_int_equal(p.y, 8);
    assert_int_equal(p.map_id, 1);
    p = pos_at(0, 1, 106, 8, 0); /* from (6,8) along x */
    assert_int_equal(move("c", 6, 8, &p), 1);
    assert_int_equal(p.x, 16);
    assert_int_equal(p.y, 8);
    p = pos_at(0, 1, 19, 12, 0); /* within reach: unchanged */
    assert_int_equal(move("c", 16, 8, &p), 1);
    assert_int_equal(p.x, 19);
    assert_int_equal(p.y, 12);
    assert_int_equal(stats(0)->errors, 0);
}

TEST(speed_limit_clamp_stays_within_reach_in_every_direction)
{
    /* "move the client as far as allowed towards the reported position":
     * the adjusted point must be within reach (10) of where the client is,
     * the same way in every direction */
    load_speed("max_speed = 0; slack = 10; clamp = true;");
    static const int32_t dirs[][2] = {{15, 15}, {-15, 15}, {15, -15}, {-15, -15}, {30, 40},
                                      {-30, -40}};
    static const int32_t want[][2] = {{7, 7}, {-7, 7}, {7, -7}, {-7, -7}, {6, 8}, {-6, -8}};
    for (size_t i = 0; i < ES_ARRAY_LEN(dirs); i++) {
        const char *id = fmt("c%zu", i);
        earshot_position p = pos_at(0, 1, 0, 0, 0);
        assert_int_equal(move(id, 0, 0, &p), 1);
        p = pos_at(0, 1, dirs[i][0], dirs[i][1], 0);
        assert_int_equal(move(id, 0, 0, &p), 1);
        int64_t d2 = (int64_t)p.x * p.x + (int64_t)p.y * p.y;
        if (d2 > 100 || p.x != want[i][0] || p.y != want[i][1])
            fail_msg("clamping a move from (0,0) to (%d,%d) with a reach of 10 gave (%d,%d) "
                     "(distance^2 %lld), expected (%d,%d)",
                     dirs[i][0], dirs[i][1], p.x, p.y, (long long)d2, want[i][0], want[i][1]);
    }
}

/* ==== stock: event_log ===================================================== */

/* Check `line` is {"ts":<number>,REST} and return REST (with the '}'). */
static const char *after_ts(const char *line)
{
    assert_starts_with(line, "{\"ts\":");
    char *end;
    const char *num = line + 6;
    strtod(num, &end);
    if (end == num || *end != ',')
        fail_msg("no number after \"ts\": %s", line);
    return end + 1;
}

TEST(event_log_to_a_file)
{
    const char *out = world_file("events.jsonl", "");
    world_load(stock_entry("event_log", fmt("grant = [\"io\"]; settings = { file = \"%s\"; };", out)));
    earshot_join j = {.client_id = "al\"ice",
                      .address = "10.0.0.7",
                      .path = "/",
                      .query = "",
                      .pos = pos_at(2, 1, 5, 6, 3)};
    reason_reset();
    assert_int_equal(es_hooks_join(&W.h, &j, reason), 1); /* event_log only logs */
    earshot_client a = client_at("al\"ice", 2, 1, 5, 6, 3), b = client_at("bob", 2, 1, 7, 6, 3);
    earshot_relay r = {.kind = EARSHOT_RELAY_ICE_CANDIDATE, .sender = &a, .target = &b,
                       .payload = "cand\0idate", .payload_len = 10, .matched = 0};
    assert_int_equal(es_hooks_relay(&W.h, &r, reason), 1);
    es_hooks_leave(&W.h, &a, EARSHOT_LEAVE_TIMEOUT);
    const char *text = read_file(out);
    char copy[16384];
    snprintf(copy, sizeof copy, "%s", text);
    const char *want[] = {
        "\"event\":\"join\",\"client_id\":\"al\\\"ice\",\"address\":\"10.0.0.7\",\"game_id\":2,"
        "\"map_id\":1,\"channel\":3}",
        "\"event\":\"relay\",\"kind\":\"candidate\",\"from\":\"al\\\"ice\",\"to\":\"bob\","
        "\"matched\":false,\"bytes\":10}",
        "\"event\":\"leave\",\"client_id\":\"al\\\"ice\",\"reason\":\"timeout\"}",
    };
    char *save = NULL;
    char *line = strtok_r(copy, "\n", &save);
    for (size_t i = 0; i < ES_ARRAY_LEN(want); i++) {
        if (!line)
            fail_msg("line %zu missing from:\n%s", i + 1, text);
        assert_string_equal(after_ts(line), want[i]);
        line = strtok_r(NULL, "\n", &save);
    }
    assert_null(line);
    assert_int_equal(stats(0)->errors, 0);
}

TEST(event_log_file_needs_grant_io)
{
    const char *out = world_file("events.jsonl", "");
    const char *e = world_refused(stock_entry("event_log", fmt("settings = { file = \"%s\"; };", out)));
    assert_file_line(e, "event_log.lua");
    assert_contains(e, "grant");
}

TEST(event_log_without_relays)
{
    world_load(stock_entry("event_log", "settings = { relays = false; };"));
    assert_int_equal(W.h.chain_len[ES_HOOK_RELAY], 0);
    assert_int_equal(W.h.chain_len[ES_HOOK_JOIN], 1);
    assert_int_equal(W.h.chain_len[ES_HOOK_LEAVE], 1);
}

int main(void)
{
    es_log_set_level(EARSHOT_LOG_ERROR);
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(join_arguments_reach_the_script),
        T(position_arguments_reach_the_script),
        T(match_arguments_reach_the_script),
        T(relay_arguments_reach_the_script),
        T(leave_arguments_reach_the_script),
        T(pair_arguments_reach_the_script),
        T(join_return_conventions),
        T(long_reason_is_cut_at_a_character_boundary),
        T(position_return_conventions),
        T(position_table_is_applied_alone),
        T(match_return_conventions),
        T(match_all_pass_is_no_match),
        T(relay_return_conventions),
        T(leave_return_values_are_ignored),
        T(settings_reach_the_script),
        T(no_settings_is_an_empty_table),
        T(each_entry_has_its_own_state),
        T(sandbox_globals),
        T(sandbox_refuses_escapes),
        T(sandbox_load_is_text_only),
        T(grant_io_opens_io_only),
        T(grant_os_has_no_exit),
        T(grant_io_and_os),
        T(memory_bomb_is_stopped),
        T(memory_limit_is_configurable),
        T(c_library_loops_are_stopped),
        T(everyday_patterns_are_unchanged),
        T(pattern_bound_follows_the_instruction_limit),
        T(memory_full_state_next_call_is_answered),
        T(trapped_argument_tables_next_call_is_answered),
        T(finalizer_obeys_the_instruction_limit),
        T(infinite_loop_is_stopped),
        T(default_instruction_limit_stops_a_loop),
        T(pcall_cannot_swallow_the_stop),
        T(tail_called_pcall_cannot_swallow_the_stop),
        T(errors_are_counted_and_logged),
        T(new_global_in_a_hook_is_an_error),
        T(error_in_every_hook_default_on_error),
        T(error_in_every_hook_alone),
        T(on_error_deny_overrides),
        T(on_error_allow_overrides),
        T(on_error_per_hook),
        T(on_error_applies_to_stopped_calls),
        T(on_error_applies_to_bad_returns),
        T(earshot_hashes),
        T(earshot_secure_equals),
        T(earshot_now_name_log),
        T(earshot_emit_and_print),
        T(load_syntax_error),
        T(load_runtime_error),
        T(load_infinite_loop),
        T(load_memory_bomb),
        T(load_missing_file),
        T(load_missing_file_by_name),
        T(load_no_hooks),
        T(tick_runs_at_the_script_interval),
        T(tick_interval_default_and_bad),
        T(load_hook_not_a_function),
        T(load_error_in_a_later_entry_names_its_line),
        T(disabled_entry_is_not_loaded),
        T(load_bad_query_radius),
        T(query_radius_reaches_the_hooks),
        T(chains_hold_the_hooks_a_script_defines),
        T(auth_token_shared_tokens),
        T(auth_token_hmac),
        T(auth_token_custom_param_and_reason),
        T(auth_token_needs_tokens_or_secret),
        T(map_range_library_and_arena),
        T(map_range_other_maps_pass_to_proximity),
        T(map_range_channels_and_games),
        T(map_range_game_limited_and_default_leave),
        T(map_range_bad_maps_refused),
        T(speed_limit_refuses_a_jump),
        T(speed_limit_exact_bound),
        T(speed_limit_map_and_game_change_allowed),
        T(speed_limit_forgets_a_client_that_left),
        T(speed_limit_clamp),
        T(speed_limit_clamp_stays_within_reach_in_every_direction),
        T(event_log_to_a_file),
        T(event_log_file_needs_grant_io),
        T(event_log_without_relays),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
