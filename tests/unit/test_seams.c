/*
 * test_seams - the interfaces the core talks through: the registry
 * (registry.h), the delivery (delivery.h), and the per-address counts.
 *
 * The in-process implementations are checked on their own, then the core
 * runs whole protocol exchanges on test doubles of both interfaces: a
 * registry that can be told an id is held elsewhere, and a delivery that
 * only records. Nothing in the core knows these doubles, which is the
 * point: another implementation plugs in the same way.
 */
#include "helpers.h"

#include "addrcount.h"
#include "config.h"
#include "core.h"
#include "delivery.h"
#include "hooks.h"
#include "log.h"
#include "registry.h"

static es_session *mk(const char *addr)
{
    es_session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    return s;
}

/* ---- the local registry --------------------------------------------------- */

static void count_each(es_session *s, void *ud)
{
    (void)s;
    (*(size_t *)ud)++;
}

TEST(local_registry_claims_under_each_policy)
{
    es_registry r = es_registry_local();
    es_session *a = mk("10.0.0.1"), *b = mk("10.0.0.2"), *c = mk("10.0.0.1");
    es_session *displaced = (es_session *)1;

    assert_int_equal(es_registry_claim(&r, a, "alice", 5, ES_TAKEOVER_NEVER, &displaced),
                     ES_CLAIM_OK);
    assert_null(displaced);
    assert_string_equal(a->id, "alice");
    assert_int_equal(a->id_len, 5);
    assert_ptr_equal(es_registry_find(&r, "alice", 5), a);
    assert_int_equal(es_registry_count(&r), 1);

    /* never: refused, nothing changes */
    assert_int_equal(es_registry_claim(&r, b, "alice", 5, ES_TAKEOVER_NEVER, &displaced),
                     ES_CLAIM_IN_USE);
    assert_string_equal(b->id, "");
    assert_ptr_equal(es_registry_find(&r, "alice", 5), a);
    /* same_address: another address is refused, the holder's own is not */
    assert_int_equal(es_registry_claim(&r, b, "alice", 5, ES_TAKEOVER_SAME_ADDRESS, &displaced),
                     ES_CLAIM_IN_USE);
    assert_int_equal(es_registry_claim(&r, c, "alice", 5, ES_TAKEOVER_SAME_ADDRESS, &displaced),
                     ES_CLAIM_OK);
    assert_ptr_equal(displaced, a);
    assert_ptr_equal(es_registry_find(&r, "alice", 5), c);
    /* always: any address */
    assert_int_equal(es_registry_claim(&r, b, "alice", 5, ES_TAKEOVER_ALWAYS, &displaced),
                     ES_CLAIM_OK);
    assert_ptr_equal(displaced, c);
    assert_ptr_equal(es_registry_find(&r, "alice", 5), b);
    assert_int_equal(es_registry_count(&r), 1);

    /* releasing a displaced holder does not touch the new one */
    es_registry_release(&r, a);
    es_registry_release(&r, c);
    assert_ptr_equal(es_registry_find(&r, "alice", 5), b);
    es_registry_release(&r, b);
    assert_null(es_registry_find(&r, "alice", 5));
    assert_int_equal(es_registry_count(&r), 0);
    r.ops->destroy(r.impl);
    free(a), free(b), free(c);
}

TEST(local_registry_each_and_compact)
{
    es_registry r = es_registry_local();
    es_session *s[100];
    es_session *none;
    for (int i = 0; i < 100; i++) {
        s[i] = mk("10.0.0.1");
        const char *id = fmt("client-%d", i);
        assert_int_equal(es_registry_claim(&r, s[i], id, strlen(id), ES_TAKEOVER_NEVER, &none),
                         ES_CLAIM_OK);
    }
    size_t n = 0;
    es_registry_each(&r, count_each, &n);
    assert_int_equal(n, 100);
    for (int i = 0; i < 100; i++)
        es_registry_release(&r, s[i]);
    r.ops->compact(r.impl);
    assert_int_equal(es_registry_count(&r), 0);
    assert_int_equal(es_registry_claim(&r, s[7], "client-7", 8, ES_TAKEOVER_NEVER, &none),
                     ES_CLAIM_OK);
    assert_ptr_equal(es_registry_find(&r, "client-7", 8), s[7]);
    es_registry_release(&r, s[7]);
    r.ops->destroy(r.impl);
    for (int i = 0; i < 100; i++)
        free(s[i]);
}

/* ---- the local delivery --------------------------------------------------- */

typedef struct fake_tx {
    int take;            /* send_now accepts */
    unsigned wants;      /* want_write calls */
    char written[256];   /* what send_now took, '|' after each */
} fake_tx;

static void tx_want(void *tctx, es_session *s)
{
    (void)s;
    ((fake_tx *)tctx)->wants++;
}

static int tx_send_now(void *tctx, es_session *s, char *payload, size_t len)
{
    (void)s;
    fake_tx *t = tctx;
    if (!t->take)
        return 0;
    size_t used = strlen(t->written);
    snprintf(t->written + used, sizeof t->written - used, "%.*s|", (int)len, payload);
    return 1;
}

static const es_transport fake_transport = {.want_write = tx_want, .send_now = tx_send_now};

/* d delivers text to s (copied into a buffer with headroom, as the core does). */
static int put(es_delivery *d, es_session *s, const char *text)
{
    char buf[ES_WIRE_HEADROOM + 64];
    size_t n = strlen(text);
    assert_true(n <= 64);
    memcpy(buf + ES_WIRE_HEADROOM, text, n);
    return es_deliver(d, s, buf + ES_WIRE_HEADROOM, n);
}

/* What es_local_next gives, as text: "ping", "msg:<payload>", "close:<code>", "nothing". */
static const char *next_text(es_session *s)
{
    es_write w = es_local_next(s);
    switch (w.kind) {
    case ES_WRITE_PING: return "ping";
    case ES_WRITE_MESSAGE: return fmt("msg:%.*s", (int)w.len, w.payload);
    case ES_WRITE_CLOSE: return fmt("close:%d", w.code);
    default: return "nothing";
    }
}

TEST(local_delivery_writes_at_once_when_nothing_waits)
{
    fake_tx t = {.take = 1};
    es_delivery d = es_delivery_local(&fake_transport, &t, 100);
    es_session *s = mk("10.0.0.1");
    assert_int_equal(put(&d, s, "one"), 0);
    assert_int_equal(put(&d, s, "two"), 0);
    assert_string_equal(t.written, "one|two|");
    assert_int_equal(t.wants, 0);
    assert_string_equal(next_text(s), "nothing");

    /* a ping owed: later messages queue behind it, in order */
    es_delivery_ping(&d, s);
    assert_int_equal(t.wants, 1);
    es_delivery_ping(&d, s); /* already owed: not twice */
    assert_int_equal(t.wants, 1);
    assert_int_equal(put(&d, s, "three"), 0);
    assert_string_equal(t.written, "one|two|");
    assert_string_equal(next_text(s), "ping");
    assert_int_equal(es_local_done(s, ES_WRITE_PING), 1);
    assert_string_equal(next_text(s), "msg:three");
    assert_int_equal(es_local_done(s, ES_WRITE_MESSAGE), 0);
    assert_string_equal(next_text(s), "nothing");
    d.ops->destroy(d.impl);
    free(s);
}

TEST(local_delivery_queues_then_closes_after_the_queue)
{
    fake_tx t = {.take = 0};
    es_delivery d = es_delivery_local(&fake_transport, &t, 10);
    es_session *s = mk("10.0.0.1");
    assert_int_equal(put(&d, s, "abcd"), 0);
    assert_int_equal(put(&d, s, "efgh"), 0);
    assert_int_equal(put(&d, s, "ijk"), -1); /* 11 bytes > 10 */
    assert_int_equal(s->q.bytes, 8);
    es_delivery_close(&d, s, ES_CLOSE_POLICY);
    es_delivery_ping(&d, s); /* closing: no ping any more */
    t.take = 1;
    assert_int_equal(put(&d, s, "x"), 0); /* closing: behind the queue, not at once */
    assert_string_equal(t.written, "");
    assert_string_equal(next_text(s), "msg:abcd");
    assert_int_equal(es_local_done(s, ES_WRITE_MESSAGE), 1);
    assert_string_equal(next_text(s), "msg:efgh");
    assert_int_equal(es_local_done(s, ES_WRITE_MESSAGE), 1);
    assert_string_equal(next_text(s), "msg:x");
    assert_int_equal(es_local_done(s, ES_WRITE_MESSAGE), 1); /* the close still waits */
    assert_string_equal(next_text(s), "close:1008");
    es_delivery_close(&d, s, ES_CLOSE_NORMAL); /* the first code stands */
    assert_string_equal(next_text(s), "close:1008");
    d.ops->destroy(d.impl);
    free(s);
}

TEST(local_delivery_discard_and_new_limit)
{
    fake_tx t = {.take = 0};
    es_delivery d = es_delivery_local(&fake_transport, &t, 4);
    es_session *s = mk("10.0.0.1");
    assert_int_equal(put(&d, s, "abcde"), -1);
    d.ops->set_queue_limit(d.impl, 8);
    assert_int_equal(put(&d, s, "abcde"), 0);
    assert_int_equal(put(&d, s, "fg"), 0);
    assert_int_equal(es_delivery_discard(&d, s), 7);
    assert_string_equal(next_text(s), "nothing");
    assert_int_equal(es_delivery_discard(&d, s), 0);
    d.ops->destroy(d.impl);
    free(s);
}

/* ---- connections per address --------------------------------------------- */

TEST(addrcount_counts_and_forgets)
{
    es_addrcount t;
    es_addrcount_init(&t);
    assert_int_equal(es_addrcount_get(&t, "10.0.0.1"), 0);
    es_addrcount_add(&t, "10.0.0.1");
    es_addrcount_add(&t, "10.0.0.1");
    es_addrcount_add(&t, "::1");
    assert_int_equal(es_addrcount_get(&t, "10.0.0.1"), 2);
    assert_int_equal(es_addrcount_get(&t, "::1"), 1);
    assert_int_equal(es_addrcount_get(&t, "10.0.0.10"), 0);
    assert_int_equal(es_addrcount_addresses(&t), 2);
    es_addrcount_remove(&t, "10.0.0.1");
    assert_int_equal(es_addrcount_get(&t, "10.0.0.1"), 1);
    es_addrcount_remove(&t, "10.0.0.1");
    /* the last connection gone, the entry is gone: nothing lingers */
    assert_int_equal(es_addrcount_get(&t, "10.0.0.1"), 0);
    assert_int_equal(es_addrcount_addresses(&t), 1);
    es_addrcount_remove(&t, "10.0.0.1"); /* not there: no-op */
    es_addrcount_remove(&t, "192.0.2.1");
    assert_int_equal(es_addrcount_addresses(&t), 1);
    es_addrcount_add(&t, "10.0.0.1"); /* and back */
    assert_int_equal(es_addrcount_get(&t, "10.0.0.1"), 1);
    es_addrcount_free(&t);
}

TEST(addrcount_many_addresses_against_a_model)
{
    enum { N = 500, STEPS = 20000 };
    static unsigned model[N];
    memset(model, 0, sizeof model);
    es_addrcount t;
    es_addrcount_init(&t);
    uint64_t rng = 7;
    for (int step = 0; step < STEPS; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((rng >> 33) % N);
        const char *a = fmt("2001:db8::%x", i);
        if (model[i] > 0 && (rng >> 20) % 2) {
            es_addrcount_remove(&t, a);
            model[i]--;
        } else {
            es_addrcount_add(&t, a);
            model[i]++;
        }
        assert_int_equal(es_addrcount_get(&t, a), model[i]);
    }
    size_t live = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(es_addrcount_get(&t, fmt("2001:db8::%x", i)), model[i]);
        live += model[i] > 0;
    }
    assert_int_equal(es_addrcount_addresses(&t), live);
    es_addrcount_free(&t);
}

/* ---- the core on test doubles ---------------------------------------------- */

/*
 * A registry that keeps at most 8 holders in an array and can be told that
 * an id is held elsewhere: find() then does not see it, but claim() says it
 * is in use, as a registry shared with other nodes would when another node
 * won the id a moment ago.
 */
typedef struct double_registry {
    es_session *held[8];
    const char *elsewhere; /* id claimed by someone the core cannot see */
    unsigned finds, claims, releases;
} double_registry;

static es_session *dr_find(void *impl, const char *id, size_t len)
{
    double_registry *r = impl;
    r->finds++;
    for (int i = 0; i < 8; i++)
        if (r->held[i] && r->held[i]->id_len == len && memcmp(r->held[i]->id, id, len) == 0)
            return r->held[i];
    return NULL;
}

static es_claim_result dr_claim(void *impl, es_session *s, const char *id, size_t len,
                                es_takeover policy, es_session **displaced)
{
    double_registry *r = impl;
    r->claims++;
    *displaced = NULL;
    if (r->elsewhere && strlen(r->elsewhere) == len && memcmp(r->elsewhere, id, len) == 0)
        return ES_CLAIM_IN_USE;
    int slot = -1;
    for (int i = 0; i < 8; i++) {
        es_session *h = r->held[i];
        if (h && h->id_len == len && memcmp(h->id, id, len) == 0) {
            if (!es_takeover_allows(policy, h, s))
                return ES_CLAIM_IN_USE;
            *displaced = h;
            slot = i;
        }
    }
    for (int i = 0; i < 8 && slot < 0; i++)
        if (!r->held[i])
            slot = i;
    assert_true(slot >= 0);
    memcpy(s->id, id, len);
    s->id[len] = '\0';
    s->id_len = len;
    r->held[slot] = s;
    return ES_CLAIM_OK;
}

static void dr_release(void *impl, es_session *s)
{
    double_registry *r = impl;
    r->releases++;
    for (int i = 0; i < 8; i++)
        if (r->held[i] == s)
            r->held[i] = NULL;
}

static void dr_each(void *impl, void (*fn)(es_session *s, void *ud), void *ud)
{
    double_registry *r = impl;
    for (int i = 0; i < 8; i++)
        if (r->held[i])
            fn(r->held[i], ud);
}

static size_t dr_count(void *impl)
{
    double_registry *r = impl;
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        n += r->held[i] != NULL;
    return n;
}

static void dr_destroy(void *impl) { (void)impl; }

static const es_registry_ops double_registry_ops = {
    .name = "double", .find = dr_find, .claim = dr_claim, .release = dr_release,
    .each = dr_each, .count = dr_count, .destroy = dr_destroy,
};

/* A delivery that writes every event into one log, "<id> <event>\n". */
typedef struct double_delivery {
    char log[8192];
    const char *full_for; /* deliver() says this client's queue is full */
} double_delivery;

static void dd_log(double_delivery *d, const es_session *s, const char *what, size_t len)
{
    size_t used = strlen(d->log);
    snprintf(d->log + used, sizeof d->log - used, "%s %.*s\n", s->id[0] ? s->id : "?", (int)len,
             what);
}

static int dd_deliver(void *impl, es_session *s, char *payload, size_t len)
{
    double_delivery *d = impl;
    if (d->full_for && strcmp(s->id, d->full_for) == 0)
        return -1;
    dd_log(d, s, payload, len);
    return 0;
}

static void dd_ping(void *impl, es_session *s) { dd_log(impl, s, "ping", 4); }

static void dd_close(void *impl, es_session *s, int code)
{
    const char *t = fmt("close %d", code);
    dd_log(impl, s, t, strlen(t));
}

static size_t dd_discard(void *impl, es_session *s)
{
    dd_log(impl, s, "discard", 7);
    return 0;
}

static void dd_destroy(void *impl) { (void)impl; }

static const es_delivery_ops double_delivery_ops = {
    .name = "double", .deliver = dd_deliver, .ping = dd_ping, .close = dd_close,
    .discard = dd_discard, .destroy = dd_destroy,
};

typedef struct world {
    tmpdir dir;
    es_config cfg;
    es_hooks hooks;
    double_registry reg;
    double_delivery dlv;
    es_core core;
    char err[1024];
} world;

static double g_now = 500.0;
static double fake_now(void) { return g_now; }

static world *world_new(const char *takeover)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    es_log_set_level(EARSHOT_LOG_ERROR);
    tmpdir_make(&w->dir);
    const char *text = fmt(
        "session = { takeover = \"%s\"; refresh_interval = 0.0; idle_timeout = 0.0; };\n"
        "server = { ping_interval = 10; };\n"
        "plugin_dir = \"%s\";\n"
        "hooks = ( { type = \"plugin\"; name = \"proximity\"; settings = { radius = 20; "
        "leave_radius = 25; }; } );\n",
        takeover, env_dir("EARSHOT_PLUGIN_DIR"));
    const char *path = tmpdir_mkstemp(&w->dir, text);
    if (es_config_load(&w->cfg, path, NULL, w->err, sizeof w->err) != 0)
        fail_msg("config: %s", w->err);
    if (es_hooks_load(&w->hooks, &w->cfg, w->err, sizeof w->err) != 0)
        fail_msg("hooks: %s", w->err);
    g_now = 500.0;
    es_core_init_with(&w->core, &w->cfg, &w->hooks,
                      (es_registry){.ops = &double_registry_ops, .impl = &w->reg},
                      (es_delivery){.ops = &double_delivery_ops, .impl = &w->dlv}, fake_now);
    return w;
}

static void world_free(world *w)
{
    es_core_free(&w->core);
    es_hooks_unload(&w->hooks);
    es_config_free(&w->cfg);
    tmpdir_remove(&w->dir);
    free(w);
}

static void say(world *w, es_session *s, const char *json)
{
    es_core_frame(&w->core, s, sq(json), strlen(json), 0);
}

static const char *take_log(world *w)
{
    const char *t = fmt("%s", w->dlv.log);
    w->dlv.log[0] = '\0';
    return t;
}

TEST(core_runs_on_a_registry_and_delivery_it_does_not_know)
{
    world *w = world_new("same_address");
    es_session *a = es_core_open(&w->core, NULL, "10.0.0.1", NULL);
    es_session *b = es_core_open(&w->core, NULL, "10.0.0.2", NULL);
    say(w, a, "{'type':'UpdatePosition','data':{'client_id':'alice','map_id':1,'x':0,'y':0}}");
    say(w, b, "{'type':'UpdatePosition','data':{'client_id':'bob','map_id':1,'x':5,'y':0}}");
    assert_string_equal(take_log(w), sq("alice {'type':'NearbyPeers','data':[]}\n"
                                        "bob {'type':'NearbyPeers','data':['alice']}\n"
                                        "alice {'type':'NearbyPeers','data':['bob']}\n"));
    assert_int_equal(es_core_clients(&w->core), 2);
    assert_int_equal(w->reg.claims, 2);

    say(w, a, "{'type':'SendOffer','data':{'target_id':'bob','offer':'sdp-1'}}");
    assert_string_equal(take_log(w),
                        sq("bob {'type':'ReceiveOffer','data':{'sender_id':'alice','offer':'sdp-1'}}\n"));
    say(w, a, "{'type':'SendOffer','data':{'target_id':'carol','offer':'sdp-2'}}");
    assert_string_equal(take_log(w), sq("alice {'type':'Error','data':'Client carol not found'}\n"));

    /* keepalive goes through the delivery too */
    g_now += 10.0;
    es_core_tick(&w->core);
    const char *pings = take_log(w);
    assert_string_equal(pings, "alice ping\nbob ping\n");

    /* Disconnect: bob hears, alice's connection is closed through the delivery */
    say(w, a, "{'type':'Disconnect'}");
    assert_string_equal(take_log(w), sq("alice close 1000\nbob {'type':'NearbyPeers','data':[]}\n"));
    assert_int_equal(es_core_clients(&w->core), 1);
    assert_int_equal(w->reg.releases, 1);
    es_core_closed(&w->core, a);
    es_core_closed(&w->core, b);
    assert_int_equal(es_core_clients(&w->core), 0);
    world_free(w);
}

TEST(core_reports_an_id_held_elsewhere_as_in_use)
{
    world *w = world_new("always");
    w->reg.elsewhere = "alice";
    es_session *a = es_core_open(&w->core, NULL, "10.0.0.1", NULL);
    say(w, a, "{'type':'UpdatePosition','data':{'client_id':'alice','map_id':1,'x':0,'y':0}}");
    assert_string_equal(take_log(w),
                        sq("? {'type':'Error','data':'client_id alice is already in use'}\n"));
    assert_false(a->registered);
    assert_int_equal(es_core_clients(&w->core), 0);
    /* the connection stays, and may take another id */
    say(w, a, "{'type':'UpdatePosition','data':{'client_id':'alicia','map_id':1,'x':0,'y':0}}");
    assert_string_equal(take_log(w), sq("alicia {'type':'NearbyPeers','data':[]}\n"));
    es_core_closed(&w->core, a);
    world_free(w);
}

TEST(core_takeover_through_the_registry)
{
    world *w = world_new("always");
    es_session *a = es_core_open(&w->core, NULL, "10.0.0.1", NULL);
    es_session *b = es_core_open(&w->core, NULL, "10.0.0.2", NULL);
    say(w, a, "{'type':'UpdatePosition','data':{'client_id':'x','map_id':1,'x':0,'y':0}}");
    take_log(w);
    say(w, b, "{'type':'UpdatePosition','data':{'client_id':'x','map_id':1,'x':0,'y':0}}");
    assert_string_equal(
        take_log(w),
        sq("x {'type':'Error','data':'client_id x was taken over by another connection'}\n"
           "x close 1008\n"
           "x {'type':'NearbyPeers','data':[]}\n"));
    assert_ptr_equal(w->reg.held[0], b);
    assert_int_equal(es_core_clients(&w->core), 1);
    es_core_closed(&w->core, a);
    es_core_closed(&w->core, b);
    world_free(w);
}

TEST(core_drops_a_client_its_delivery_refuses)
{
    world *w = world_new("always");
    es_session *a = es_core_open(&w->core, NULL, "10.0.0.1", NULL);
    es_session *b = es_core_open(&w->core, NULL, "10.0.0.2", NULL);
    say(w, a, "{'type':'UpdatePosition','data':{'client_id':'a','map_id':1,'x':0,'y':0}}");
    say(w, b, "{'type':'UpdatePosition','data':{'client_id':'b','map_id':1,'x':1,'y':0}}");
    take_log(w);
    w->dlv.full_for = "a";
    say(w, b, "{'type':'SendOffer','data':{'target_id':'a','offer':'o'}}");
    /* a could not take it: a is discarded, leaves, and b hears of it */
    assert_string_equal(take_log(w), sq("a discard\n"
                                        "a close 1008\n"
                                        "b {'type':'NearbyPeers','data':[]}\n"));
    assert_int_equal(w->core.stats.sendq_overflows, 1);
    assert_int_equal(es_core_clients(&w->core), 1);
    es_core_closed(&w->core, a);
    es_core_closed(&w->core, b);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_registry_claims_under_each_policy),
        cmocka_unit_test(local_registry_each_and_compact),
        cmocka_unit_test(local_delivery_writes_at_once_when_nothing_waits),
        cmocka_unit_test(local_delivery_queues_then_closes_after_the_queue),
        cmocka_unit_test(local_delivery_discard_and_new_limit),
        cmocka_unit_test(addrcount_counts_and_forgets),
        cmocka_unit_test(addrcount_many_addresses_against_a_model),
        cmocka_unit_test(core_runs_on_a_registry_and_delivery_it_does_not_know),
        cmocka_unit_test(core_reports_an_id_held_elsewhere_as_in_use),
        cmocka_unit_test(core_takeover_through_the_registry),
        cmocka_unit_test(core_drops_a_client_its_delivery_refuses),
    };
    return cmocka_run_group_tests_name("seams", tests, NULL, NULL);
}
