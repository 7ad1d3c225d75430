/*
 * test_resume - resuming a dropped connection (protocol v1.1), es_core
 * driven in-process as in test_core.c: a fake transport that records
 * want_write and lets the test drain each session's queue, the real
 * proximity and relay_guard plugins, and a fake clock.
 */
#include "core_fixture.h"

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

/* a, resumable (its token in tok), at (0, 0) and b at (5, 0), both from
 * 10.0.0.1; every queue drained. */
static es_session *a_next_to_b(fx *f, char *tok, es_session **b)
{
    es_session *a = resumable_at(f, "a", 0, 0, "10.0.0.1", tok);
    *b = client_at(f, "b", 5, 0);
    drain_all(f);
    return a;
}

/* As a_next_to_b, then a's connection is lost (a held); returns b. */
static es_session *a_held_next_to_b(fx *f, char *tok)
{
    es_session *b;
    lose_connection(f, a_next_to_b(f, tok, &b));
    return b;
}

/* The clock runs on to `until` in steps of 0.1 s, a tick each, with only b
 * heard from. */
static void tick_hearing_only(fx *f, es_session *b, double until)
{
    for (; g_now < until; g_now += 0.1) {
        es_core_heard(&f->core, b);
        es_core_tick(&f->core);
    }
}

/* From 1000.5 to 1011 only b is heard: with ping_interval 10, the silent
 * clients' pings come due. */
static void ping_comes_due(fx *f, es_session *b)
{
    g_now = 1000.5;
    tick_hearing_only(f, b, 1011.0);
}

/* a's ping is written and never answered, b still heard: by 1022.5 a has
 * timed out (closing with 1001). */
static void ping_goes_unanswered(fx *f, es_session *a, es_session *b)
{
    es_local_done(a, ES_WRITE_PING);
    es_core_ping_sent(&f->core, a);
    tick_hearing_only(f, b, 1022.5);
}

/* Started with pings every 10 s (no idle timeout, no refresh), a next to b
 * as a_next_to_b leaves them, and a's ping goes unanswered. */
static es_session *ping_timeout_next_to_b(fx *f, char *tok, es_session **b)
{
    START(f, .idle = -1, .refresh = -1, .ping = 10);
    es_session *a = a_next_to_b(f, tok, b);
    ping_comes_due(f, *b);
    ping_goes_unanswered(f, a, *b);
    return a;
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
    es_session *b = a_held_next_to_b(f, tok);
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
    es_session *b;
    es_session *a = a_next_to_b(f, tok, &b);
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
    es_session *b = a_held_next_to_b(f, tok);
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
    es_session *b = a_held_next_to_b(f, tok);
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
    es_session *b;
    es_session *a = a_next_to_b(f, tok, &b);
    ping_comes_due(f, b);
    assert_int_equal(a->ping_due, 1);
    assert_int_equal(es_local_next(a).kind, ES_WRITE_PING);
    ping_goes_unanswered(f, a, b);
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
    char tok[256];
    es_session *b;
    es_session *a = ping_timeout_next_to_b(f, tok, &b);
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
    es_session *b = a_held_next_to_b(f, tok);
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
    es_session *b = a_held_next_to_b(f, tok);
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

TEST(t_relays_kept_up_to_half_the_send_queue)
{
    F;
    /* resume_queue_bytes larger than the send queue allows: half of
     * send_queue_bytes (2048) is the bound */
    START(f, .max_frame = 2048, .sendq = 4096, .rq_bytes = 65536);
    char tok[256];
    es_session *b = a_held_next_to_b(f, tok);
    char big[901];
    memset(big, 'y', 900);
    big[900] = '\0';
    frame(f, b, relay_json("SendOffer", "offer", "a", fmt("\"%s\"", big)));
    frame(f, b, relay_json("SendOffer", "offer", "a", fmt("\"%s\"", big)));
    EXPECT_NONE(b);
    frame(f, b, relay_json("SendOffer", "offer", "a", fmt("\"%s\"", big)));
    EXPECT(b, ERR("Client a is reconnecting"));
    es_session *n = resume_from(f, "10.0.0.1", "a", 0, 0, tok);
    EXPECT(n, PEERS("b"), SESSION(15), OFFER("b", big), OFFER("b", big));
    assert_false(n->closing);
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
    es_session *b = a_held_next_to_b(f, tok);
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
    es_session *b = a_held_next_to_b(f, tok);
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
    char tok[256];
    es_session *b;
    es_session *a = ping_timeout_next_to_b(f, tok, &b);
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
        T(t_relays_kept_up_to_half_the_send_queue),
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
