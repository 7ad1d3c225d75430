/*
 * core_fixture.h - es_core driven in-process, shared by the unit tests that
 * need the whole core (test_core.c, test_resume.c, test_turn.c): a fake
 * transport that records want_write (and a send_now a test can plug in)
 * and lets the test drain each session's queue, the real proximity and
 * relay_guard plugins (or the hooks a test names), and a fake clock.
 *
 * Use: cmocka_unit_test_setup_teardown(fn, setup, teardown); in a test, F;
 * then START(f, .option = value...) with the options of core_opts.
 * EXPECT(s, ...) pops every message queued for s and compares them with the
 * expected ones (NearbyPeers as sets; SESSION(grace) matches any
 * well-formed token and keeps it in g_token).
 *
 * Everything is static, as in helpers.h; what not every test uses is
 * marked unused.
 */
#ifndef EARSHOT_TEST_CORE_FIXTURE_H
#define EARSHOT_TEST_CORE_FIXTURE_H

#include "helpers.h"

#include <jansson.h>

#include "config.h"
#include "core.h"
#include "hooks.h"
#include "log.h"

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
static __attribute__((unused)) int send_now(void *tctx, es_session *s, char *payload, size_t len)
{
    fx *f = tctx;
    f->direct_calls++;
    if (!f->direct_ok)
        return 0;
    size_t used = strlen(f->direct_log);
    snprintf(f->direct_log + used, sizeof f->direct_log - used, "%s:%.*s\n", s->id, (int)len, payload);
    return 1;
}

static __attribute__((unused)) unsigned want_writes(fx *f, const es_session *s)
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
    const char *turn;      /* a whole `turn = {...};` group, NULL: none */
    const char *limits;    /* the inside of a `limits` group, NULL: none */
} core_opts;

static const char *stock_hooks(const char *grace)
{
    return fmt("{ type = \"plugin\"; name = \"relay_guard\"; settings = { %s }; },\n"
               "{ type = \"plugin\"; name = \"proximity\"; settings = { radius = 20; "
               "leave_radius = 25; }; }",
               grace ? fmt("grace = %s;", grace) : "");
}

/* printf at the end of the string in buf[0..size). */
static __attribute__((format(printf, 3, 4))) void appendf(char *buf, size_t size, const char *f,
                                                           ...)
{
    size_t used = strlen(buf);
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf + used, size - used, f, ap);
    va_end(ap);
}

static const char *config_text(const core_opts *o)
{
    char server[256] = "", session[256] = "";
    if (o->max_frame)
        appendf(server, sizeof server, " max_frame_bytes = %d;", o->max_frame);
    if (o->sendq)
        appendf(server, sizeof server, " send_queue_bytes = %d;", o->sendq);
    if (o->ping)
        appendf(server, sizeof server, " ping_interval = %d;", o->ping);
    if (o->takeover)
        appendf(session, sizeof session, " takeover = \"%s\";", o->takeover);
    if (o->idle)
        appendf(session, sizeof session, " idle_timeout = %.3f;", o->idle < 0 ? 0.0 : o->idle);
    if (o->refresh)
        appendf(session, sizeof session, " refresh_interval = %.3f;",
                o->refresh < 0 ? 0.0 : o->refresh);
    if (o->resume)
        appendf(session, sizeof session, " resume_grace = %.3f;", o->resume < 0 ? 0.0 : o->resume);
    if (o->rq_msgs)
        appendf(session, sizeof session, " resume_queue_messages = %d;", o->rq_msgs);
    if (o->rq_bytes)
        appendf(session, sizeof session, " resume_queue_bytes = %d;", o->rq_bytes);
    return fmt("server = {%s };\nsession = {%s };\nplugin_dir = \"%s\";\nhooks = (\n%s\n);\n%s%s",
               server, session, env_dir("EARSHOT_PLUGIN_DIR"),
               o->hooks ? o->hooks : stock_hooks(o->grace), o->turn ? fmt("%s\n", o->turn) : "",
               o->limits ? fmt("limits = { %s };\n", o->limits) : "");
}

/* Load text as a config file into cfg (no hooks). */
static void load_config_only(fx *f, const char *text, es_config *cfg)
{
    const char *path = tmpdir_mkstemp(&f->dir, text);
    if (es_config_load(cfg, path, NULL, f->err, sizeof f->err) != 0)
        fail_msg("config: %s\n%s", f->err, text);
}

static void load_config(fx *f, const char *text, es_config *cfg, es_hooks *h)
{
    load_config_only(f, text, cfg);
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

static __attribute__((unused)) const char *relay_json(const char *type, const char *field,
                                                      const char *target, const char *payload_json)
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
static __attribute__((unused)) es_session *client_at(fx *f, const char *id, int x, int y)
{
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, id, x, y);
    assert_true(s->registered);
    drain_all(f);
    return s;
}

/* ---- expected messages --------------------------------------------------- */

static __attribute__((unused)) json_t *ERR(const char *text)
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

static __attribute__((unused)) json_t *peers_(const char *const *ids, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(ids[i]));
    return canonical(json_pack("{s:s, s:o}", "type", "NearbyPeers", "data", arr));
}
#define PEERS(...) \
    peers_((const char *const[]){__VA_ARGS__}, ES_ARRAY_LEN(((const char *const[]){__VA_ARGS__})))
#define NO_PEERS peers_(NULL, 0)

static __attribute__((unused)) json_t *RECV(const char *type, const char *field,
                                            const char *sender, const char *payload, size_t len)
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

static __attribute__((unused)) json_t *SESSION(double grace)
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
static __attribute__((unused)) void expect_msgs(es_session *s, json_t **exp, size_t n, int line)
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

#endif /* EARSHOT_TEST_CORE_FIXTURE_H */
