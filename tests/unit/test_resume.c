/*
 * test_resume - resuming a dropped connection (protocol v1.1), es_core
 * driven in-process as in test_core.c: a fake transport that records
 * want_write and lets the test drain each session's queue, the real
 * proximity and relay_guard plugins, and a fake clock.
 */
#include "helpers.h"

#include <jansson.h>

#include "config.h"
#include "core.h"
#include "hooks.h"
#include "log.h"

/* ---- fixture ------------------------------------------------------------- */

#define MAX_SESSIONS 256

typedef struct fx {
    tmpdir dir;
    es_config cfg;
    int cfg_loaded;
    es_hooks h;
    int hooks_loaded;
    es_core core;
    int core_live;
    es_transport tx;
    es_session *open[MAX_SESSIONS]; /* not yet closed through es_core_closed */
    size_t nopen;
    es_session *ww_s[MAX_SESSIONS]; /* want_write calls per session */
    unsigned ww_n[MAX_SESSIONS];
    size_t nww;
    int direct_ok;               /* send_now takes messages (else refuses) */
    unsigned direct_calls;       /* send_now calls */
    char direct_log[8192];       /* payloads send_now took, one per line */
    char err[2048];
} fx;

static double g_now = 1000.0;
static double fake_now(void) { return g_now; }

static void want_write(void *tctx, es_session *s)
{
    fx *f = tctx;
    for (size_t i = 0; i < f->nww; i++) {
        if (f->ww_s[i] == s) {
            f->ww_n[i]++;
            return;
        }
    }
    assert_true(f->nww < MAX_SESSIONS);
    f->ww_s[f->nww] = s;
    f->ww_n[f->nww++] = 1;
}

/* A transport that writes at once when it can: takes the message (logging
 * "id:payload") while f->direct_ok, else leaves it to the queue. */
static int send_now(void *tctx, es_session *s, char *payload, size_t len)
{
    fx *f = tctx;
    f->direct_calls++;
    if (!f->direct_ok)
        return 0;
    size_t used = strlen(f->direct_log);
    snprintf(f->direct_log + used, sizeof f->direct_log - used, "%s:%.*s\n", s->id, (int)len, payload);
    return 1;
}

static unsigned want_writes(fx *f, const es_session *s)
{
    for (size_t i = 0; i < f->nww; i++)
        if (f->ww_s[i] == s)
            return f->ww_n[i];
    return 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tmpdir_make(&f->dir);
    f->tx.want_write = want_write;
    es_log_set_level(EARSHOT_LOG_ERROR);
    g_now = 1000.0;
    *state = f;
    return 0;
}

static void close_session(fx *f, es_session *s)
{
    for (size_t i = 0; i < f->nopen; i++) {
        if (f->open[i] == s) {
            f->open[i] = f->open[--f->nopen];
            es_core_closed(&f->core, s);
            return;
        }
    }
    fail_msg("session closed twice or never opened");
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->core_live) {
        while (f->nopen > 0)
            close_session(f, f->open[f->nopen - 1]);
        assert_int_equal(f->core.sessions, 0);
        es_core_free(&f->core);
    }
    if (f->hooks_loaded)
        es_hooks_unload(&f->h);
    if (f->cfg_loaded)
        es_config_free(&f->cfg);
    tmpdir_remove(&f->dir);
    free(f);
    return 0;
}

#define F fx *f = *cm_state_

typedef struct core_opts {
    const char *takeover;  /* NULL: the default */
    double idle;           /* 0: the default (15); < 0: off */
    double refresh;        /* 0: the default (5); < 0: off */
    int max_frame, sendq;  /* 0: the defaults */
    int ping;              /* 0: the default (10) */
    const char *grace;     /* relay_guard grace, NULL: default */
    const char *hooks;     /* NULL: relay_guard + proximity */
    double resume;         /* session.resume_grace; 0: the default (15); < 0: off */
    int rq_msgs, rq_bytes; /* session.resume_queue_*; 0: the defaults */
} core_opts;

static const char *stock_hooks(const char *grace)
{
    return fmt("{ type = \"plugin\"; name = \"relay_guard\"; settings = { %s }; },\n"
               "{ type = \"plugin\"; name = \"proximity\"; settings = { radius = 20; "
               "leave_radius = 25; }; }",
               grace ? fmt("grace = %s;", grace) : "");
}

static const char *config_text(const core_opts *o)
{
    char server[256] = "", session[256] = "";
    if (o->max_frame)
        snprintf(server + strlen(server), sizeof server - strlen(server), " max_frame_bytes = %d;",
                 o->max_frame);
    if (o->sendq)
        snprintf(server + strlen(server), sizeof server - strlen(server), " send_queue_bytes = %d;",
                 o->sendq);
    if (o->ping)
        snprintf(server + strlen(server), sizeof server - strlen(server), " ping_interval = %d;",
                 o->ping);
    if (o->takeover)
        snprintf(session + strlen(session), sizeof session - strlen(session), " takeover = \"%s\";",
                 o->takeover);
    if (o->idle)
        snprintf(session + strlen(session), sizeof session - strlen(session),
                 " idle_timeout = %.3f;", o->idle < 0 ? 0.0 : o->idle);
    if (o->refresh)
        snprintf(session + strlen(session), sizeof session - strlen(session),
                 " refresh_interval = %.3f;", o->refresh < 0 ? 0.0 : o->refresh);
    if (o->resume)
        snprintf(session + strlen(session), sizeof session - strlen(session),
                 " resume_grace = %.3f;", o->resume < 0 ? 0.0 : o->resume);
    if (o->rq_msgs)
        snprintf(session + strlen(session), sizeof session - strlen(session),
                 " resume_queue_messages = %d;", o->rq_msgs);
    if (o->rq_bytes)
        snprintf(session + strlen(session), sizeof session - strlen(session),
                 " resume_queue_bytes = %d;", o->rq_bytes);
    return fmt("server = {%s };\nsession = {%s };\nplugin_dir = \"%s\";\nhooks = (\n%s\n);\n",
               server, session, env_dir("EARSHOT_PLUGIN_DIR"),
               o->hooks ? o->hooks : stock_hooks(o->grace));
}

static void load_config(fx *f, const char *text, es_config *cfg, es_hooks *h)
{
    const char *path = tmpdir_mkstemp(&f->dir, text);
    if (es_config_load(cfg, path, NULL, f->err, sizeof f->err) != 0)
        fail_msg("config: %s\n%s", f->err, text);
    if (es_hooks_load(h, cfg, f->err, sizeof f->err) != 0)
        fail_msg("hooks: %s\n%s", f->err, text);
}

static void start_(fx *f, core_opts o)
{
    load_config(f, config_text(&o), &f->cfg, &f->h);
    f->cfg_loaded = f->hooks_loaded = 1;
    g_now = 1000.0;
    es_core_init(&f->core, &f->cfg, &f->h, &f->tx, f, fake_now);
    f->core_live = 1;
}
#define START(f, ...) start_((f), (core_opts){__VA_ARGS__})

static es_session *open_from(fx *f, const char *addr)
{
    assert_true(f->nopen < MAX_SESSIONS);
    es_session *s = es_core_open(&f->core, NULL, addr, NULL);
    assert_non_null(s);
    f->open[f->nopen++] = s;
    return s;
}

static void frame(fx *f, es_session *s, const char *text)
{
    es_core_frame(&f->core, s, text, strlen(text), 0);
}

static const char *upd_json(const char *id, int map, int x, int y)
{
    return fmt("{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"%s\",\"map_id\":%d,\"x\":%d,"
               "\"y\":%d}}",
               id, map, x, y);
}

static void upd(fx *f, es_session *s, const char *id, int x, int y)
{
    frame(f, s, upd_json(id, 1, x, y));
}

static const char *relay_json(const char *type, const char *field, const char *target,
                              const char *payload_json)
{
    return fmt("{\"type\":\"%s\",\"data\":{\"target_id\":\"%s\",\"%s\":%s}}", type, target, field,
               payload_json);
}

/* Throw away everything queued for every open session. */
static void drain_all(fx *f)
{
    for (size_t i = 0; i < f->nopen; i++)
        es_sendq_clear(&f->open[i]->q);
}

/* A registered client at (x, y) on map 1, from 10.0.0.1; queues drained. */
static es_session *client_at(fx *f, const char *id, int x, int y)
{
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, id, x, y);
    assert_true(s->registered);
    drain_all(f);
    return s;
}

/* ---- expected messages --------------------------------------------------- */

static json_t *ERR(const char *text)
{
    return json_pack("{s:s, s:s}", "type", "Error", "data", text);
}

static int cmp_json_str(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    if (!json_is_string(x) || !json_is_string(y))
        return 0;
    return strcmp(json_string_value(x), json_string_value(y));
}

/* NearbyPeers lists are sets: order them before comparing. */
static json_t *canonical(json_t *m)
{
    json_t *data = json_object_get(m, "data");
    if (json_is_string(json_object_get(m, "type")) &&
        strcmp(json_string_value(json_object_get(m, "type")), "NearbyPeers") == 0 &&
        json_is_array(data)) {
        size_t n = json_array_size(data);
        json_t **items = calloc(n + 1, sizeof *items);
        for (size_t i = 0; i < n; i++)
            items[i] = json_incref(json_array_get(data, i));
        qsort(items, n, sizeof *items, cmp_json_str);
        json_t *sorted = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(sorted, items[i]);
        free(items);
        json_object_set_new(m, "data", sorted);
    }
    return m;
}

static json_t *peers_(const char *const *ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    return canonical(json_pack("{s:s, s:o}", "type", "NearbyPeers", "data", arr));
}
#define PEERS(...) \
    peers_((const char *const[]){__VA_ARGS__}, ES_ARRAY_LEN(((const char *const[]){__VA_ARGS__})))
#define NO_PEERS peers_(NULL, 0)

static json_t *RECV(const char *type, const char *field, const char *sender, const char *payload,
                    size_t len)
{
    return json_pack("{s:s, s:{s:s, s:s%}}", "type", type, "data", "sender_id", sender, field,
                     payload, len);
}
#define OFFER(sender, payload) RECV("ReceiveOffer", "offer", sender, payload, strlen(payload))
#define ANSWER(sender, payload) RECV("ReceiveAnswer", "answer", sender, payload, strlen(payload))
#define ICE(sender, payload) \
    RECV("ReceiveIceCandidate", "candidate", sender, payload, strlen(payload))

/* SESSION(grace): a Session message with that grace and a well-formed
 * token, which is kept in g_token for the test to use. */
static char g_token[256];

static json_t *SESSION(double grace)
{
    return json_pack("{s:s, s:{s:s, s:f}}", "type", "Session", "data", "resume_token", "*", "grace",
                     grace);
}

static int is_session(const json_t *m)
{
    const json_t *t = json_object_get(m, "type");
    return json_is_string(t) && strcmp(json_string_value(t), "Session") == 0;
}

static int session_matches(const json_t *got, const json_t *exp)
{
    if (!is_session(got))
        return 0;
    const json_t *d = json_object_get(got, "data");
    const json_t *tok = json_object_get(d, "resume_token");
    const json_t *grace = json_object_get(d, "grace");
    if (!json_is_object(d) || json_object_size(d) != 2 || !json_is_string(tok) || !json_is_number(grace))
        return 0;
    if (json_number_value(grace) != json_number_value(json_object_get(json_object_get(exp, "data"), "grace")))
        return 0;
    const char *t = json_string_value(tok);
    size_t n = strlen(t);
    if (n != 43) /* base64url of an HMAC-SHA256 */
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", t[i]))
            return 0;
    snprintf(g_token, sizeof g_token, "%s", t);
    return 1;
}

/* Pop every message queued for s and compare with exp[0..n) (consumed). */
static void expect_msgs(es_session *s, json_t **exp, size_t n, int line)
{
    json_t *got[512];
    size_t ng = 0;
    char *raw[512];
    while (es_sendq_peek(&s->q)) {
        es_qmsg *m = es_sendq_peek(&s->q);
        assert_true(ng < 512);
        json_error_t e;
        got[ng] = json_loadb(es_qmsg_payload(m), m->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
        raw[ng] = strndup(es_qmsg_payload(m), m->len);
        if (!got[ng])
            fail_msg("line %d: queued message is not JSON (%s): %s", line, e.text, raw[ng]);
        canonical(got[ng]);
        ng++;
        es_sendq_pop(&s->q);
    }
    int ok = ng == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_session(exp[i]) ? session_matches(got[i], exp[i]) : json_equal(got[i], exp[i]);
    if (!ok) {
        char report[16384] = "";
        size_t used = 0;
        used += (size_t)snprintf(report + used, sizeof report - used, "got %zu:\n", ng);
        for (size_t i = 0; i < ng && used < sizeof report; i++)
            used += (size_t)snprintf(report + used, sizeof report - used, "  %s\n", raw[i]);
        if (used < sizeof report)
            used += (size_t)snprintf(report + used, sizeof report - used, "wanted %zu:\n", n);
        for (size_t i = 0; i < n && used < sizeof report; i++) {
            char *d = json_dumps(exp[i], JSON_COMPACT | JSON_ENCODE_ANY);
            used += (size_t)snprintf(report + used, sizeof report - used, "  %s\n", d);
            free(d);
        }
        fail_msg("line %d: messages for %s differ\n%s", line, s->registered ? s->id : "(unregistered)",
                 report);
    }
    for (size_t i = 0; i < ng; i++) {
        json_decref(got[i]);
        free(raw[i]);
    }
    for (size_t i = 0; i < n; i++)
        json_decref(exp[i]);
}
#define EXPECT(s, ...)                                                                        \
    expect_msgs((s), (json_t *[]){__VA_ARGS__}, ES_ARRAY_LEN(((json_t *[]){__VA_ARGS__})), \
                __LINE__)
#define EXPECT_NONE(s) expect_msgs((s), NULL, 0, __LINE__)

/* ---- helpers of this file ------------------------------------------------ */

static const char *upd_r(const char *id, int x, int y, const char *extra)
{
    return fmt("{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"%s\",\"map_id\":1,\"x\":%d,"
               "\"y\":%d%s}}",
               id, x, y, extra);
}

/* A resumable client at (x, y) on map 1 from addr; its token in tok. */
static es_session *resumable_at(fx *f, const char *id, int x, int y, const char *addr, char *tok)
{
    es_session *s = open_from(f, addr);
    frame(f, s, upd_r(id, x, y, ",\"resumable\":true"));
    assert_true(s->registered);
    /* whatever its NearbyPeers holds, the Session comes right after it */
    assert_non_null(es_sendq_peek(&s->q));
    es_sendq_pop(&s->q);
    EXPECT(s, SESSION(f->cfg.resume_grace));
    strcpy(tok, g_token);
    return s;
}

/* The connection drops without a close frame (a reset, a dead TCP). */
static void lose_connection(fx *f, es_session *s) { close_session(f, s); }

/* The client sends a close frame, then the connection closes. */
static void close_frame(fx *f, es_session *s)
{
    es_core_goodbye(&f->core, s);
    close_session(f, s);
}

static es_session *resume_from(fx *f, const char *addr, const char *id, int x, int y,
                               const char *tok)
{
    es_session *s = open_from(f, addr);
    frame(f, s, upd_r(id, x, y, fmt(",\"resume_token\":\"%s\"", tok)));
    return s;
}

/* ---- opting in ------------------------------------------------------------ */

TEST(t_session_follows_the_first_nearby_peers_only)
{
    F;
    START(f);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *a = open_from(f, "10.0.0.1");
    frame(f, a, upd_r("a", 0, 0, ",\"resumable\":true"));
    EXPECT(a, PEERS("b"), SESSION(15));
    char first[256];
    strcpy(first, g_token);
    EXPECT(b, PEERS("a"));
    /* later moves and refreshes send none, whatever they say */
    frame(f, a, upd_r("a", 1, 0, ",\"resumable\":true"));
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT(a, PEERS("b"));
    /* a client that does not opt in gets none; "resumable": false is no opt-in */
    es_session *c = open_from(f, "10.0.0.1");
    frame(f, c, upd_r("c", 0, 1, ",\"resumable\":false"));
    EXPECT(c, PEERS("a", "b"));
    /* every client's token is its own */
    char other[256];
    resumable_at(f, "d", 0, 2, "10.0.0.1", other);
    assert_string_not_equal(first, other);
    assert_int_equal(f->core.stats.messages_out[ES_OUT_SESSION], 2);
}

TEST(t_grace_zero_sends_no_session_and_resumes_nothing)
{
    F;
    START(f, .resume = -1);
    es_session *a = open_from(f, "10.0.0.1");
    frame(f, a, upd_r("a", 0, 0, ",\"resumable\":true"));
    EXPECT(a, NO_PEERS);
    es_session *b = client_at(f, "b", 5, 0); /* drains a's PEERS("b") */
    lose_connection(f, a);
    EXPECT(b, NO_PEERS); /* it left at once, as in v1 */
    assert_int_equal(f->core.nheld, 0);
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, "AAAA");
    EXPECT(n, ERR("invalid resume token"));
    assert_int_equal(n->registered, 0);
}

/* ---- a lost connection is held -------------------------------------------- */

TEST(t_lost_connection_is_held_and_peers_see_nothing)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0); /* drains a's PEERS("b") */
    size_t conns = f->core.sessions;
    lose_connection(f, a);
    EXPECT_NONE(b);
    assert_int_equal(f->core.sessions, conns - 1);
    assert_int_equal(f->core.nheld, 1);
    assert_int_equal(es_core_clients(&f->core), 2);
    es_session *held = es_registry_find(&f->core.registry, "a", 1);
    assert_non_null(held);
    assert_true(held->held && held->gone);
    /* b still hears it listed, and a refresh says so */
    frame(f, b, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT(b, PEERS("a"));
    /* a refresh tick sends the held session nothing and keeps it */
    g_now += 5.1;
    es_core_tick(&f->core);
    EXPECT(b, PEERS("a"));
    assert_int_equal(f->core.nheld, 1);
}

TEST(t_resume_from_another_address)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    g_now += 10;
    es_session *n = resume_from(f, "192.168.7.7", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15));
    assert_string_not_equal(g_token, tok); /* a fresh token */
    EXPECT_NONE(b);
    assert_true(n->registered);
    assert_ptr_equal(es_registry_find(&f->core.registry, "a", 1), n);
    assert_string_equal(n->view.address, "192.168.7.7");
    assert_int_equal(f->core.nheld, 0);
    assert_int_equal(f->core.stats.resumes, 1);
    assert_int_equal(f->core.matcher.pairs, 1);
    assert_true(es_matcher_is_matched(n, b));
    /* it is an ordinary client again: it moves, relays, is relayed to */
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o\""));
    EXPECT(n, OFFER("b", "o"));
    frame(f, n, upd_r("a", 400, 0, ""));
    EXPECT(n, NO_PEERS);
    EXPECT(b, NO_PEERS);
}

TEST(t_resume_replaces_a_live_looking_connection)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    es_session *n = resume_from(f, "10.0.0.2", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15));
    EXPECT_NONE(a); /* no Error: closed with 1000 */
    assert_true(a->closing);
    assert_int_equal(a->close_code, ES_CLOSE_NORMAL);
    assert_false(a->registered);
    EXPECT_NONE(b);
    assert_int_equal(f->core.stats.resumes, 1);
    assert_int_equal(f->core.stats.takeovers, 0);
    /* the old connection closing now tells nobody anything */
    close_session(f, a);
    EXPECT_NONE(b);
    assert_ptr_equal(es_registry_find(&f->core.registry, "a", 1), n);
    assert_int_equal(f->core.nheld, 0);
}

TEST(t_wrong_and_used_tokens_change_nothing)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    char bad[256];
    strcpy(bad, tok);
    bad[0] = bad[0] == 'A' ? 'B' : 'A';
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, bad);
    EXPECT(n, ERR("invalid resume token"));
    n = resume_from(f, "10.0.0.1", "a", 0, 0, fmt("%.20s", tok)); /* a prefix */
    EXPECT(n, ERR("invalid resume token"));
    n = resume_from(f, "10.0.0.1", "b", 5, 0, tok); /* another client's id */
    EXPECT(n, ERR("invalid resume token"));
    n = resume_from(f, "10.0.0.1", "zed", 5, 0, tok); /* nobody's */
    EXPECT(n, ERR("invalid resume token"));
    assert_false(n->registered);
    EXPECT_NONE(b);
    assert_int_equal(f->core.nheld, 1);
    assert_int_equal(f->core.stats.errors[ES_ERR_RESUME_TOKEN], 4);
    /* the right one works once; then the old token is worthless */
    es_session *r = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(r, PEERS("b"), SESSION(15));
    char fresh[256];
    strcpy(fresh, g_token);
    es_session *again = resume_from(f, "10.0.0.3", "a", 0, 0, tok);
    EXPECT(again, ERR("invalid resume token"));
    assert_ptr_equal(es_registry_find(&f->core.registry, "a", 1), r);
    assert_false(r->closing);
    EXPECT_NONE(r);
    es_session *last = resume_from(f, "10.0.0.3", "a", 0, 0, fresh);
    EXPECT(last, PEERS("b"), SESSION(15));
    assert_true(r->closing);
}

/* ---- the hold ends ---------------------------------------------------------- */

TEST(t_hold_expires_and_peers_are_told)
{
    F;
    START(f, .idle = -1, .refresh = -1, .resume = 20);
    es_session *a = open_from(f, "10.0.0.1");
    frame(f, a, upd_r("a", 0, 0, ",\"resumable\":true"));
    EXPECT(a, NO_PEERS, SESSION(20));
    char tok[256];
    strcpy(tok, g_token);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    g_now = 1019.9;
    es_core_tick(&f->core);
    EXPECT_NONE(b);
    assert_int_equal(f->core.nheld, 1);
    /* past the grace the token is no good, even before the tick */
    g_now = 1020.0;
    es_session *late = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(late, ERR("invalid resume token"));
    es_core_tick(&f->core);
    EXPECT(b, NO_PEERS);
    assert_int_equal(f->core.nheld, 0);
    assert_null(es_registry_find(&f->core.registry, "a", 1));
    assert_int_equal(f->core.stats.resume_holds_expired, 1);
    assert_int_equal(f->core.matcher.pairs, 0);
    late = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(late, ERR("invalid resume token"));
    /* the id is free for anyone */
    upd(f, late, "a", 0, 0);
    EXPECT(late, PEERS("b"));
}

TEST(t_idle_timeout_does_not_run_for_a_held_session)
{
    F;
    START(f, .idle = 5, .refresh = -1, .resume = 30);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    for (g_now = 1000.0; g_now < 1029.0; g_now += 0.5) {
        frame(f, b, upd_r("b", 5, 0, "")); /* b stays active */
        es_core_tick(&f->core);
    }
    EXPECT_NONE(b);
    assert_int_equal(f->core.nheld, 1);
    assert_int_equal(f->core.stats.timeouts, 0);
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(30));
    /* resumed, the idle timeout runs for it again */
    g_now += 5.5;
    frame(f, b, upd_r("b", 5, 0, ""));
    es_core_tick(&f->core);
    EXPECT(n, ERR("timed out"));
    assert_true(n->closing);
    EXPECT(b, NO_PEERS);
}

TEST(t_clean_goodbyes_end_the_session_at_once)
{
    F;
    START(f, .idle = 5, .refresh = -1);
    char t1[256], t2[256], t3[256];
    es_session *b = client_at(f, "b", 5, 0);
    /* Disconnect */
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", t1);
    drain_all(f);
    frame(f, a, "{\"type\":\"Disconnect\",\"data\":null}");
    EXPECT(b, NO_PEERS);
    lose_connection(f, a);
    assert_int_equal(f->core.nheld, 0);
    EXPECT(resume_from(f, "10.0.0.1", "a", 0, 0, t1), ERR("invalid resume token"));
    /* a close frame from the client */
    a = resumable_at(f, "a", 0, 0, "10.0.0.1", t2);
    drain_all(f);
    close_frame(f, a);
    EXPECT(b, NO_PEERS);
    assert_int_equal(f->core.nheld, 0);
    assert_null(es_registry_find(&f->core.registry, "a", 1));
    EXPECT(resume_from(f, "10.0.0.1", "a", 0, 0, t2), ERR("invalid resume token"));
    /* the idle timeout */
    a = resumable_at(f, "a", 0, 0, "10.0.0.1", t3);
    drain_all(f);
    g_now += 5.0;
    frame(f, b, upd_r("b", 5, 0, ""));
    es_core_tick(&f->core);
    EXPECT(a, ERR("timed out"));
    EXPECT(b, NO_PEERS);
    lose_connection(f, a);
    assert_int_equal(f->core.nheld, 0);
    EXPECT(resume_from(f, "10.0.0.1", "a", 0, 0, t3), ERR("invalid resume token"));
}

TEST(t_ping_timeout_holds)
{
    F;
    START(f, .idle = -1, .refresh = -1, .ping = 10);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    for (g_now = 1000.5; g_now < 1011.0; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    assert_int_equal(a->ping_due, 1);
    assert_int_equal(es_local_next(a).kind, ES_WRITE_PING);
    es_local_done(a, ES_WRITE_PING);
    es_core_ping_sent(&f->core, a);
    for (; g_now < 1022.5; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    assert_int_equal(f->core.stats.ping_timeouts, 1);
    assert_true(a->closing);
    assert_int_equal(a->close_code, ES_CLOSE_GOING_AWAY);
    assert_true(a->held);
    EXPECT_NONE(b);
    lose_connection(f, a);
    es_session *n = resume_from(f, "10.0.0.5", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15));
    EXPECT_NONE(b);
}

TEST(t_goodbye_after_a_ping_timeout_ends_the_hold)
{
    F;
    START(f, .idle = -1, .refresh = -1, .ping = 10);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    for (g_now = 1000.5; g_now < 1011.0; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    es_local_done(a, ES_WRITE_PING);
    es_core_ping_sent(&f->core, a);
    for (; g_now < 1022.5; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    assert_true(a->held);
    EXPECT_NONE(b);
    /* the client answers the 1001 with its own close frame: a goodbye */
    close_frame(f, a);
    EXPECT(b, NO_PEERS);
    assert_int_equal(f->core.nheld, 0);
    EXPECT(resume_from(f, "10.0.0.1", "a", 0, 0, tok), ERR("invalid resume token"));
}

TEST(t_held_sessions_count_toward_the_connection_limits)
{
    F;
    START(f, .idle = -1, .refresh = -1);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.7", tok);
    client_at(f, "b", 5, 0);
    assert_int_equal(es_core_occupancy(&f->core), 2);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.7"), 1);
    lose_connection(f, a);
    /* its connection is gone, its place is not */
    assert_int_equal(f->core.sessions, 1);
    assert_int_equal(es_core_occupancy(&f->core), 2);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.7"), 1);
    /* resumed from elsewhere: the new connection's address counts instead */
    es_session *n = resume_from(f, "10.0.0.8", "a", 0, 0, tok);
    assert_true(n->registered);
    assert_int_equal(es_core_occupancy(&f->core), 2);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.7"), 0);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.8"), 1);
    /* lost again and let go: nothing is left counted */
    lose_connection(f, n);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.8"), 1);
    g_now += 16;
    es_core_tick(&f->core);
    assert_int_equal(es_core_occupancy(&f->core), 1);
    assert_int_equal(es_core_address_connections(&f->core, "10.0.0.8"), 0);
}

TEST(t_null_resume_fields_are_absent)
{
    F;
    START(f, .idle = -1, .refresh = -1);
    es_session *s = open_from(f, "10.0.0.1");
    frame(f, s, upd_r("v", 0, 0, ",\"resumable\":null,\"resume_token\":null"));
    assert_true(s->registered);
    EXPECT(s, NO_PEERS); /* no Session: it did not opt in */
}

/* ---- relays to a held session ---------------------------------------------- */

TEST(t_relays_kept_in_order_up_to_the_count)
{
    F;
    START(f, .rq_msgs = 3);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o1\""));
    frame(f, b, relay_json("SendIceCandidate", "candidate", "a", "\"c1\""));
    frame(f, b, relay_json("SendAnswer", "answer", "a", "\"a1\""));
    EXPECT_NONE(b);
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o2\""));
    frame(f, b, relay_json("SendAnswer", "answer", "a", "\"a2\""));
    frame(f, b, relay_json("SendIceCandidate", "candidate", "a", "\"c2\"")); /* dropped silently */
    EXPECT(b, ERR("Client a is reconnecting"), ERR("Client a is reconnecting"));
    assert_int_equal(f->core.stats.resume_queued_relays, 3);
    assert_int_equal(f->core.stats.errors[ES_ERR_RECONNECTING], 2);
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15), OFFER("b", "o1"), ICE("b", "c1"), ANSWER("b", "a1"));
    /* nothing is kept twice */
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o3\""));
    EXPECT(n, OFFER("b", "o3"));
}

TEST(t_relays_kept_up_to_the_bytes)
{
    F;
    START(f, .rq_bytes = 1024);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    char big[701];
    memset(big, 'x', 700);
    big[700] = '\0';
    frame(f, b, relay_json("SendOffer", "offer", "a", fmt("\"%s\"", big)));
    EXPECT_NONE(b);
    frame(f, b, relay_json("SendOffer", "offer", "a", fmt("\"%s\"", big)));
    EXPECT(b, ERR("Client a is reconnecting"));
    frame(f, b, relay_json("SendAnswer", "answer", "a", "\"small\""));
    EXPECT_NONE(b);
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15), OFFER("b", big), ANSWER("b", "small"));
}

/* ---- position and hooks on a resume ----------------------------------------- */

TEST(t_resume_at_another_position_changes_only_the_sets_it_changes)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 300, 0);
    es_session *d = client_at(f, "d", 0, 5);
    drain_all(f);
    lose_connection(f, a);
    /* it comes back out of b's reach (28.4 away), still within 25 of d */
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 28, tok);
    EXPECT(n, PEERS("d"), SESSION(15));
    EXPECT(b, PEERS("d"));
    EXPECT_NONE(d);
    EXPECT_NONE(c);
}

TEST(t_join_hooks_see_a_resume)
{
    F;
    START(f, .hooks = fmt("{ type = \"lua\"; name = \"gate\"; path = \"%s\"; },\n%s",
                          tmpdir_write(&f->dir, "gate.lua",
                                       "function on_join(req)\n"
                                       "  if req.resume and req.client_id == 'no' then return false, 'no resumes' end\n"
                                       "  if req.resume == nil then return false, 'resume missing' end\n"
                                       "end\n"),
                          stock_hooks(NULL)));
    char t1[256], t2[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", t1);
    es_session *no = resumable_at(f, "no", 0, 5, "10.0.0.1", t2);
    drain_all(f);
    lose_connection(f, a);
    lose_connection(f, no);
    es_session *n = resume_from(f, "10.0.0.1", "no", 0, 5, t2);
    EXPECT(n, ERR("no resumes"));
    assert_int_equal(f->core.nheld, 2);
    es_session *m = resume_from(f, "10.0.0.1", "a", 0, 0, t1);
    EXPECT(m, PEERS("no"), SESSION(15));
}

TEST(t_fresh_registration_takes_over_a_held_session)
{
    F;
    START(f); /* same_address */
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    es_session *other = open_from(f, "10.0.0.2");
    upd(f, other, "a", 0, 0);
    EXPECT(other, ERR("client_id a is already in use"));
    es_session *same = open_from(f, "10.0.0.1");
    upd(f, same, "a", 0, 0);
    EXPECT(same, PEERS("b"));
    EXPECT(b, PEERS("a"));
    assert_int_equal(f->core.nheld, 0);
    assert_int_equal(f->core.stats.takeovers, 1);
    EXPECT(resume_from(f, "10.0.0.1", "a", 0, 0, tok), ERR("invalid resume token"));
}

TEST(t_non_resumable_client_leaves_at_once)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    EXPECT(b, NO_PEERS);
    assert_int_equal(f->core.nheld, 0);
    assert_null(es_registry_find(&f->core.registry, "a", 1));
}

TEST(t_shutdown_lets_held_sessions_go)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    lose_connection(f, a);
    es_core_shutdown(&f->core);
    assert_int_equal(f->core.nheld, 0);
    assert_int_equal(es_core_clients(&f->core), 0);
    assert_int_equal(b->close_code, ES_CLOSE_GOING_AWAY);
}

TEST(t_held_session_outlives_every_connection_then_memory_is_freed)
{
    F;
    START(f);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    lose_connection(f, a);
    assert_int_equal(f->core.sessions, 0);
    assert_int_equal(es_core_clients(&f->core), 1);
    assert_int_equal(es_grid_live_cells(&f->core.grid), 1);
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, NO_PEERS, SESSION(15));
    lose_connection(f, n);
    g_now += 16;
    es_core_tick(&f->core);
    assert_int_equal(es_core_clients(&f->core), 0);
    assert_int_equal(es_grid_live_cells(&f->core.grid), 0);
}

TEST(t_send_queue_overflow_ends_the_session)
{
    F;
    START(f, .max_frame = 2048, .sendq = 4096, .idle = -1, .refresh = -1, .rq_msgs = 8,
          .rq_bytes = 8192);
    char tok[256];
    es_session *slow = resumable_at(f, "slow", 5, 0, "10.0.0.1", tok);
    es_session *a = client_at(f, "a", 0, 0);
    char payload[1001];
    memset(payload, 'x', 1000);
    payload[1000] = '\0';
    const char *msg = relay_json("SendOffer", "offer", "slow", fmt("\"%s\"", payload));
    for (int i = 0; i < 10 && !slow->closing; i++)
        frame(f, a, msg);
    assert_true(slow->closing);
    assert_int_equal(slow->close_code, ES_CLOSE_POLICY);
    assert_false(slow->held);
    assert_false(slow->registered);
    assert_int_equal(f->core.stats.sendq_overflows, 1);
    EXPECT(a, NO_PEERS); /* its peer is told at once */
    frame(f, a, relay_json("SendAnswer", "answer", "slow", "\"lost\""));
    EXPECT(a, ERR("Client slow not found"));
    close_session(f, slow);
    es_session *n = resume_from(f, "10.0.0.9", "slow", 5, 0, tok);
    EXPECT(n, ERR("invalid resume token"));
    assert_false(n->registered);
    EXPECT_NONE(a);
}

TEST(t_resume_before_the_lost_connection_closes)
{
    F;
    START(f, .idle = -1, .refresh = -1, .ping = 10);
    char tok[256];
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    es_session *b = client_at(f, "b", 5, 0);
    drain_all(f);
    for (g_now = 1000.5; g_now < 1011.0; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    es_local_done(a, ES_WRITE_PING);
    es_core_ping_sent(&f->core, a);
    for (; g_now < 1022.5; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
    assert_true(a->held && !a->gone); /* closing: its close frame is not out yet */
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o\""));
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15), OFFER("b", "o"));
    assert_false(a->held);
    assert_false(a->registered);
    assert_int_equal(f->core.nheld, 0);
    /* now the old connection closes: nobody hears of it */
    close_session(f, a);
    EXPECT_NONE(b);
    assert_ptr_equal(es_registry_find(&f->core.registry, "a", 1), n);
    assert_true(es_matcher_is_matched(n, b));
}

TEST(t_batched_session_follows_its_nearby_peers)
{
    F;
    START(f);
    f->core.batch = 1;
    es_session *b = client_at(f, "b", 5, 0);
    es_session *a = open_from(f, "10.0.0.1");
    frame(f, a, upd_r("a", 0, 0, ",\"resumable\":true"));
    EXPECT_NONE(a); /* left for the flush */
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o\""));
    EXPECT(a, PEERS("b"), SESSION(15), OFFER("b", "o"));
    es_core_flush(&f->core);
    EXPECT_NONE(a);
    EXPECT(b, PEERS("a"));
}

int main(void)
{
    (void)want_writes; /* the fixture is test_core.c's */
    (void)send_now;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_session_follows_the_first_nearby_peers_only),
        T(t_grace_zero_sends_no_session_and_resumes_nothing),
        T(t_lost_connection_is_held_and_peers_see_nothing),
        T(t_resume_from_another_address),
        T(t_resume_replaces_a_live_looking_connection),
        T(t_wrong_and_used_tokens_change_nothing),
        T(t_hold_expires_and_peers_are_told),
        T(t_idle_timeout_does_not_run_for_a_held_session),
        T(t_clean_goodbyes_end_the_session_at_once),
        T(t_ping_timeout_holds),
        T(t_relays_kept_in_order_up_to_the_count),
        T(t_relays_kept_up_to_the_bytes),
        T(t_resume_at_another_position_changes_only_the_sets_it_changes),
        T(t_join_hooks_see_a_resume),
        T(t_fresh_registration_takes_over_a_held_session),
        T(t_non_resumable_client_leaves_at_once),
        T(t_shutdown_lets_held_sessions_go),
        T(t_held_session_outlives_every_connection_then_memory_is_freed),
        T(t_send_queue_overflow_ends_the_session),
        T(t_goodbye_after_a_ping_timeout_ends_the_hold),
        T(t_held_sessions_count_toward_the_connection_limits),
        T(t_null_resume_fields_are_absent),
        T(t_resume_before_the_lost_connection_closes),
        T(t_batched_session_follows_its_nearby_peers),
    };
    return cmocka_run_group_tests_name("resume", tests, NULL, NULL);
}
