/*
 * test_core - es_core driven in-process: a fake transport that records
 * want_write and lets the test drain each session's queue, the real
 * proximity and relay_guard plugins, and a fake clock.
 */
#include "core_fixture.h"

/* ---- registration ---------------------------------------------------------- */

TEST(t_first_update_position_is_answered)
{
    F;
    START(f);
    es_session *a = open_from(f, "10.0.0.1");
    assert_int_equal(a->registered, 0);
    assert_int_equal(es_core_clients(&f->core), 0);
    upd(f, a, "alice", 0, 0);
    EXPECT(a, NO_PEERS);
    assert_int_equal(a->registered, 1);
    assert_string_equal(a->id, "alice");
    assert_int_equal(es_core_clients(&f->core), 1);
    assert_ptr_equal(es_registry_find(&f->core.registry, "alice", 5), a);
    assert_true(want_writes(f, a) >= 1);
    assert_int_equal(f->core.stats.registrations, 1);
}

TEST(t_register_next_to_peers)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 3, 0);
    es_session *c = client_at(f, "c", 0, 3);
    es_session *far = client_at(f, "far", 500, 0);
    es_session *d = open_from(f, "10.0.0.1");
    upd(f, d, "d", 1, 1);
    EXPECT(d, PEERS("a", "b", "c"));
    EXPECT(a, PEERS("b", "c", "d"));
    EXPECT(b, PEERS("a", "c", "d"));
    EXPECT(c, PEERS("a", "b", "d"));
    EXPECT_NONE(far);
    assert_int_equal(es_core_clients(&f->core), 5);
}

TEST(t_messages_before_registration)
{
    F;
    START(f);
    es_session *peer = client_at(f, "peer", 0, 0);
    es_session *s = open_from(f, "10.0.0.2");
    frame(f, s, "{\"type\":\"RequestPeerRefresh\",\"data\":null}");
    frame(f, s, "{\"type\":\"RequestPeerRefresh\"}");
    frame(f, s, relay_json("SendOffer", "offer", "peer", "\"o\""));
    frame(f, s, relay_json("SendAnswer", "answer", "peer", "\"a\""));
    frame(f, s, relay_json("SendIceCandidate", "candidate", "peer", "\"c\""));
    const char *first = "Client must send UpdatePosition first.";
    EXPECT(s, ERR(first), ERR(first), ERR(first), ERR(first), ERR(first));
    EXPECT_NONE(peer);
    assert_int_equal(s->registered, 0);
    assert_int_equal(s->closing, 0);
    assert_int_equal(es_core_clients(&f->core), 1);
    /* a bad frame gets its parse error, not the registration one */
    frame(f, s, "{\"type\":\"SendOffer\",\"data\":{}}");
    frame(f, s, "nope");
    EXPECT(s, ERR("Invalid SendOffer: missing field 'target_id'"),
           ERR("Invalid JSON: invalid token near 'nope'"));
    /* and it can still register */
    upd(f, s, "late", 2, 0);
    EXPECT(s, PEERS("peer"));
    EXPECT(peer, PEERS("late"));
}

TEST(t_bad_frames_change_nothing)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    frame(f, a, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,\"x\":900.0,\"y\":0}}");
    frame(f, a, "{\"type\":\"Teleport\"}");
    frame(f, a, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,\"x\":500}}");
    frame(f, a, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,\"x\":1,\"x\":500,\"y\":0}}");
    es_core_frame(&f->core, a, "\x01\x02", 2, 1);
    EXPECT(a, ERR("Invalid UpdatePosition: field 'x' must be an integer in the signed 32-bit range"),
           ERR("Unknown message type: Teleport"), ERR("Invalid UpdatePosition: missing field 'y'"),
           ERR("Invalid JSON: duplicate object key near '\"x\"'"),
           ERR("Binary frames are not supported"));
    EXPECT_NONE(b);
    assert_int_equal(a->closing, 0);
    assert_true(es_matcher_is_matched(a, b));
    assert_int_equal(a->view.pos.x, 0);
}

TEST(t_client_id_cannot_change)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 10, 0);
    upd(f, a, "z", 500, 0);
    EXPECT(a, ERR("client_id cannot change on a connection (registered as a)"));
    EXPECT_NONE(b);
    assert_string_equal(a->id, "a");
    assert_int_equal(a->view.pos.x, 0);
    assert_true(es_matcher_is_matched(a, b));
    assert_null(es_registry_find(&f->core.registry, "z", 1));
    assert_int_equal(es_core_clients(&f->core), 2);
}

/* ---- takeover ----------------------------------------------------------------- */

static void takeover_happens(fx *f, const char *newcomer_addr)
{
    es_session *holder = open_from(f, "10.0.0.1");
    upd(f, holder, "x", 0, 0);
    drain_all(f);
    es_session *n = open_from(f, newcomer_addr);
    upd(f, n, "x", 0, 0);
    EXPECT(holder, ERR("client_id x was taken over by another connection"));
    assert_int_equal(holder->closing, 1);
    assert_int_equal(holder->close_code, ES_CLOSE_POLICY);
    assert_int_equal(holder->registered, 0);
    EXPECT(n, NO_PEERS);
    assert_int_equal(n->registered, 1);
    assert_ptr_equal(es_registry_find(&f->core.registry, "x", 1), n);
    assert_int_equal(es_core_clients(&f->core), 1);
    assert_int_equal(f->core.stats.takeovers, 1);
    /* the replaced connection is not read any more */
    frame(f, holder, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT_NONE(holder);
}

static void takeover_refused(fx *f, const char *newcomer_addr)
{
    es_session *holder = open_from(f, "10.0.0.1");
    upd(f, holder, "x", 0, 0);
    drain_all(f);
    es_session *n = open_from(f, newcomer_addr);
    upd(f, n, "x", 0, 0);
    EXPECT(n, ERR("client_id x is already in use"));
    assert_int_equal(n->registered, 0);
    assert_int_equal(n->closing, 0);
    EXPECT_NONE(holder);
    assert_int_equal(holder->closing, 0);
    assert_int_equal(holder->registered, 1);
    assert_ptr_equal(es_registry_find(&f->core.registry, "x", 1), holder);
    assert_int_equal(es_core_clients(&f->core), 1);
    assert_int_equal(f->core.stats.takeovers, 0);
    /* the refused connection may register under another id */
    upd(f, n, "y", 0, 0);
    EXPECT(n, PEERS("x"));
    EXPECT(holder, PEERS("y"));
}

TEST(t_takeover_same_address_policy_other_address)
{
    F;
    START(f);
    takeover_refused(f, "10.0.0.2");
}

TEST(t_takeover_same_address_policy_same_address)
{
    F;
    START(f);
    takeover_happens(f, "10.0.0.1");
}

TEST(t_takeover_always_policy)
{
    F;
    START(f, .takeover = "always");
    takeover_happens(f, "10.0.0.2");
}

TEST(t_takeover_never_policy)
{
    F;
    START(f, .takeover = "never");
    takeover_refused(f, "10.0.0.1");
}

TEST(t_takeover_tells_peers_once)
{
    F;
    START(f);
    es_session *p = client_at(f, "p", 0, 0);
    es_session *holder = client_at(f, "x", 5, 0);
    es_session *n = open_from(f, "10.0.0.1");
    upd(f, n, "x", 6, 0); /* same id, about the same spot */
    EXPECT(p, PEERS("x"));
    EXPECT(n, PEERS("p"));
    EXPECT(holder, ERR("client_id x was taken over by another connection"));
    assert_true(es_matcher_is_matched(p, n));
    assert_int_equal(p->nedges, 1);
    /* a second takeover, this time far away: p hears it left, once */
    es_session *n2 = open_from(f, "10.0.0.1");
    upd(f, n2, "x", 900, 0);
    EXPECT(p, NO_PEERS);
    EXPECT(n2, NO_PEERS);
    EXPECT(n, ERR("client_id x was taken over by another connection"));
}

/* ---- NearbyPeers --------------------------------------------------------------- */

TEST(t_move_that_changes_nothing_sends_nothing)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 10, 0);
    es_session *c = client_at(f, "c", 300, 0);
    upd(f, b, "b", 12, 3);
    upd(f, b, "b", 12, 3);
    upd(f, b, "b", 22, 0); /* 22: past radius, within leave_radius */
    upd(f, c, "c", 350, 0);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    EXPECT_NONE(c);
}

TEST(t_one_message_per_client_per_move)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 15, 0);
    es_session *c = client_at(f, "c", 40, 0); /* 25 from b: not matched */
    assert_true(es_matcher_is_matched(a, b));
    assert_false(es_matcher_is_matched(b, c));
    upd(f, b, "b", 30, 0); /* leaves a (30), meets c (10) */
    EXPECT(b, PEERS("c"));
    EXPECT(a, NO_PEERS);
    EXPECT(c, PEERS("b"));
}

TEST(t_hysteresis_through_the_core)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 19, 0);
    upd(f, b, "b", 24, 0);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    upd(f, b, "b", 26, 0);
    EXPECT(a, NO_PEERS);
    EXPECT(b, NO_PEERS);
    upd(f, b, "b", 24, 0);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    upd(f, b, "b", 20, 0);
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
}

TEST(t_channel_and_map_changes)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 1, 1);
    frame(f, b, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"b\",\"map_id\":1,\"x\":1,"
                "\"y\":1,\"channel\":2}}");
    EXPECT(a, NO_PEERS);
    EXPECT(b, NO_PEERS);
    frame(f, a, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,\"x\":0,"
                "\"y\":0,\"channel\":2}}");
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
    frame(f, a, upd_json("a", 2, 0, 0)); /* other map, channel back to 0 */
    EXPECT(a, NO_PEERS);
    EXPECT(b, NO_PEERS);
    frame(f, a, "{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,\"x\":0,"
                "\"y\":0,\"channel\":2,\"game_id\":4}}");
    EXPECT_NONE(a);
    EXPECT_NONE(b);
}

TEST(t_request_peer_refresh)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 0, 5);
    frame(f, a, "{\"type\":\"RequestPeerRefresh\",\"data\":null}");
    EXPECT(a, PEERS("b", "c"));
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    frame(f, a, "{\"type\":\"RequestPeerRefresh\",\"data\":{\"anything\":1}}");
    EXPECT(a, PEERS("b", "c"), PEERS("b", "c"));
    EXPECT_NONE(b);
    EXPECT_NONE(c);
    es_session *lone = client_at(f, "lone", 1000, 0);
    frame(f, lone, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT(lone, NO_PEERS);
}

TEST(t_crowd_join_one_message_each)
{
    F;
    START(f);
    enum { N = 16 }; /* 17 with the newcomer: everyone hears everyone under the stock cap */
    es_session *s[N];
    char names[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "c%02d", i);
        s[i] = client_at(f, names[i], i % 3, i % 4); /* all within 4 of each other */
    }
    es_session *n = open_from(f, "10.0.0.1");
    upd(f, n, "new", 1, 1);
    const char *all[N];
    for (int i = 0; i < N; i++)
        all[i] = names[i];
    EXPECT(n, peers_(all, N));
    for (int i = 0; i < N; i++) {
        const char *ids[N];
        size_t k = 0;
        for (int j = 0; j < N; j++)
            if (j != i)
                ids[k++] = names[j];
        ids[k++] = "new";
        EXPECT(s[i], peers_(ids, k));
    }
    /* the newcomer leaves: again one message each */
    frame(f, n, "{\"type\":\"Disconnect\"}");
    for (int i = 0; i < N; i++) {
        const char *ids[N];
        size_t k = 0;
        for (int j = 0; j < N; j++)
            if (j != i)
                ids[k++] = names[j];
        EXPECT(s[i], peers_(ids, k));
    }
}

/* ---- leaving ----------------------------------------------------------------- */

TEST(t_disconnect_before_registration_just_closes)
{
    F;
    START(f);
    es_session *peer = client_at(f, "peer", 0, 0);
    es_session *s = open_from(f, "10.0.0.2");
    frame(f, s, "{\"type\":\"Disconnect\",\"data\":null}");
    EXPECT_NONE(s);
    assert_int_equal(s->closing, 1);
    assert_int_equal(s->close_code, ES_CLOSE_NORMAL);
    assert_true(want_writes(f, s) >= 1);
    EXPECT_NONE(peer);
    assert_int_equal(es_core_clients(&f->core), 1);
}

TEST(t_disconnect_tells_peers)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 0, 5);
    frame(f, b, "{\"type\":\"Disconnect\"}");
    EXPECT_NONE(b);
    assert_int_equal(b->closing, 1);
    assert_int_equal(b->close_code, ES_CLOSE_NORMAL);
    assert_int_equal(b->registered, 0);
    EXPECT(a, PEERS("c"));
    EXPECT(c, PEERS("a"));
    assert_int_equal(es_core_clients(&f->core), 2);
    assert_null(es_registry_find(&f->core.registry, "b", 1));
    /* frames after Disconnect are ignored */
    upd(f, b, "b", 5, 0);
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o\""));
    EXPECT_NONE(b);
    EXPECT_NONE(a);
    /* the transport then reports the close: nothing more to anyone */
    close_session(f, b);
    EXPECT_NONE(a);
    EXPECT_NONE(c);
    assert_int_equal(es_core_clients(&f->core), 2);
}

TEST(t_closed_connection_tells_peers)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 0, 5);
    es_session *d = client_at(f, "d", 700, 0);
    size_t before = f->core.sessions;
    close_session(f, b);
    EXPECT(a, PEERS("c"));
    EXPECT(c, PEERS("a"));
    EXPECT_NONE(d);
    assert_int_equal(es_core_clients(&f->core), 3);
    assert_int_equal(f->core.sessions, before - 1);
    assert_null(es_registry_find(&f->core.registry, "b", 1));
    /* the id is free again */
    es_session *b2 = open_from(f, "10.0.0.9");
    upd(f, b2, "b", 5, 0);
    EXPECT(b2, PEERS("a", "c"));
}

TEST(t_closed_unregistered_connection)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *s = open_from(f, "10.0.0.2");
    assert_int_equal(f->core.sessions, 2);
    close_session(f, s);
    assert_int_equal(f->core.sessions, 1);
    EXPECT_NONE(a);
    assert_int_equal(es_core_clients(&f->core), 1);
}

/* ---- relays ------------------------------------------------------------------ */

TEST(t_relay_offer_sender_stamped)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    frame(f, a, "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"b\",\"offer\":\"v=0\\r\\no=- 1\","
                "\"sender_id\":\"mallory\"}}");
    EXPECT(b, OFFER("a", "v=0\r\no=- 1"));
    EXPECT_NONE(a);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_OFFER][ES_RELAY_DELIVERED], 1);
}

TEST(t_relay_answer_and_ice)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    frame(f, b, relay_json("SendAnswer", "answer", "a", "\"v=0 answer\""));
    frame(f, b, relay_json("SendIceCandidate", "candidate", "a", "\"candidate:1 1 UDP 1 1.2.3.4 5 typ host\""));
    EXPECT(a, ANSWER("b", "v=0 answer"), ICE("b", "candidate:1 1 UDP 1 1.2.3.4 5 typ host"));
    EXPECT_NONE(b);
}

TEST(t_relay_payload_intact)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    frame(f, a, relay_json("SendOffer", "offer", "b",
                           "\"nul\\u0000in \\\"quotes\\\" back\\\\slash \\u00e9 \\ud83c\\udfa7 \\t\""));
    const char want[] = "nul\0in \"quotes\" back\\slash \xC3\xA9 \xF0\x9F\x8E\xA7 \t";
    EXPECT(b, RECV("ReceiveOffer", "offer", "a", want, sizeof want - 1));

    /* 8 KB, every printable ASCII character */
    char big[8193];
    for (int i = 0; i < 8192; i++)
        big[i] = (char)(0x20 + i % 95);
    big[8192] = '\0';
    json_t *js = json_string(big);
    char *enc = json_dumps(js, JSON_ENCODE_ANY);
    frame(f, a, relay_json("SendIceCandidate", "candidate", "b", enc));
    free(enc);
    json_decref(js);
    EXPECT(b, ICE("a", big));
}

TEST(t_relays_arrive_in_order)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    frame(f, a, relay_json("SendOffer", "offer", "b", "\"1\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "b", "\"2\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "b", "\"3\""));
    frame(f, a, relay_json("SendAnswer", "answer", "b", "\"4\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "b", "\"5\""));
    EXPECT(b, OFFER("a", "1"), ICE("a", "2"), ICE("a", "3"), ANSWER("a", "4"), ICE("a", "5"));
}

/* ---- batching and direct writes ---------------------------------------------- */

TEST(t_batched_changes_merge_into_one_list)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 100, 0);
    es_session *c = client_at(f, "c", 200, 0);
    f->core.batch = 1;
    upd(f, b, "b", 10, 0);  /* meets a */
    upd(f, c, "c", 0, 10);  /* meets a and b */
    upd(f, b, "b", 100, 0); /* leaves both */
    EXPECT_NONE(a);         /* nothing until the flush */
    EXPECT_NONE(b);
    EXPECT_NONE(c);
    es_core_flush(&f->core);
    EXPECT(a, PEERS("c")); /* one message each, the state after all three */
    EXPECT(b, NO_PEERS);
    EXPECT(c, PEERS("a"));
    es_core_flush(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    EXPECT_NONE(c);
}

TEST(t_batched_list_goes_before_other_messages)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 100, 0);
    f->core.batch = 1;
    upd(f, c, "c", 0, 5);                                          /* a and b owe a list */
    frame(f, b, relay_json("SendOffer", "offer", "a", "\"o\""));    /* a's list first */
    frame(f, b, "{\"type\":\"RequestPeerRefresh\"}");               /* owed list, then reply */
    frame(f, b, relay_json("SendOffer", "offer", "b", "\"o\""));    /* the Error after them */
    upd(f, c, "c", 0, 6);                                          /* no change: owes nothing */
    EXPECT(a, PEERS("b", "c"), OFFER("b", "o"));
    EXPECT(b, PEERS("a", "c"), PEERS("a", "c"), ERR("Cannot send to yourself"));
    EXPECT_NONE(c);
    es_core_flush(&f->core);
    EXPECT_NONE(a); /* served already */
    EXPECT_NONE(b);
    EXPECT(c, PEERS("a", "b"));
}

TEST(t_batched_refreshes_each_get_a_reply)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    f->core.batch = 1;
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    upd(f, a, "a", 0, 1); /* no change */
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT(a, PEERS("b"), PEERS("b"), PEERS("b"));
    es_core_flush(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    assert_int_equal(f->core.stats.messages_in[ES_MSG_REQUEST_PEER_REFRESH], 3);
}

TEST(t_batched_client_closing_before_the_flush)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 100, 0);
    es_session *c = client_at(f, "c", 0, 5);
    f->core.batch = 1;
    upd(f, b, "b", 5, 0); /* a, b and c owe lists */
    close_session(f, b);  /* flushes first, then frees b */
    EXPECT(a, PEERS("c"));
    EXPECT(c, PEERS("a"));
    es_core_flush(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(c);
}

TEST(t_messages_written_directly_when_nothing_waits)
{
    F;
    START(f);
    f->tx.send_now = send_now;
    f->direct_ok = 1;
    es_session *a = client_at(f, "a", 0, 0);
    EXPECT_NONE(a);
    assert_string_equal(f->direct_log, "a:{\"type\":\"NearbyPeers\",\"data\":[]}\n");
    /* the transport cannot take it: queued */
    f->direct_ok = 0;
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    assert_int_equal(f->direct_calls, 2);
    /* it could now, but something waits: queued behind it, send_now not asked */
    f->direct_ok = 1;
    frame(f, a, relay_json("SendOffer", "offer", "a", "\"o\""));
    assert_int_equal(f->direct_calls, 2);
    EXPECT(a, NO_PEERS, ERR("Cannot send to yourself"));
    frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
    assert_int_equal(f->direct_calls, 3);
    EXPECT_NONE(a);
    assert_int_equal(f->core.stats.messages_out[ES_OUT_NEARBY_PEERS], 3);
}

TEST(t_relay_to_self)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    frame(f, a, relay_json("SendOffer", "offer", "a", "\"o\""));
    frame(f, a, relay_json("SendAnswer", "answer", "a", "\"o\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "a", "\"o\""));
    EXPECT(a, ERR("Cannot send to yourself"), ERR("Cannot send to yourself"),
           ERR("Cannot send to yourself"));
}

TEST(t_relay_to_unknown_target)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    frame(f, a, relay_json("SendOffer", "offer", "ghost", "\"o\""));
    frame(f, a, relay_json("SendAnswer", "answer", "ghost", "\"o\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "ghost", "\"o\""));
    EXPECT(a, ERR("Client ghost not found"), ERR("Client ghost not found"));
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_OFFER][ES_RELAY_UNKNOWN_TARGET], 1);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_ANSWER][ES_RELAY_UNKNOWN_TARGET], 1);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_ICE_CANDIDATE][ES_RELAY_UNKNOWN_TARGET], 1);
    /* a connection refused at registration is no target either */
    es_session *refused = open_from(f, "10.0.0.5");
    upd(f, refused, "a", 0, 0);
    EXPECT(refused, ERR("client_id a is already in use"));
    frame(f, refused, relay_json("SendOffer", "offer", "a", "\"o\""));
    EXPECT(refused, ERR("Client must send UpdatePosition first."));
    EXPECT_NONE(a);
    /* and the empty id is not even a valid target */
    frame(f, a, relay_json("SendOffer", "offer", "", "\"o\""));
    EXPECT(a, ERR("Invalid SendOffer: field 'target_id' must be 1 to 128 bytes of UTF-8 with no "
                  "control characters"));
}

TEST(t_relay_guard_refuses_strangers)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 500, 0);
    frame(f, a, relay_json("SendOffer", "offer", "b", "\"o\""));
    frame(f, a, relay_json("SendAnswer", "answer", "b", "\"o\""));
    frame(f, a, relay_json("SendIceCandidate", "candidate", "b", "\"o\""));
    EXPECT(a, ERR("relay to b not allowed"), ERR("relay to b not allowed"));
    EXPECT_NONE(b);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_OFFER][ES_RELAY_REFUSED], 1);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_ANSWER][ES_RELAY_REFUSED], 1);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_ICE_CANDIDATE][ES_RELAY_REFUSED], 1);
    assert_int_equal(f->core.stats.relays[EARSHOT_RELAY_OFFER][ES_RELAY_DELIVERED], 0);
}

TEST(t_relay_after_parting_within_grace)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    upd(f, b, "b", 500, 0);
    EXPECT(a, NO_PEERS);
    EXPECT(b, NO_PEERS);
    frame(f, a, relay_json("SendAnswer", "answer", "b", "\"late answer\""));
    EXPECT(b, ANSWER("a", "late answer"));
    EXPECT_NONE(a);
}

TEST(t_relay_refused_with_zero_grace_after_parting)
{
    F;
    START(f, .grace = "0");
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    upd(f, b, "b", 500, 0);
    drain_all(f);
    frame(f, a, relay_json("SendOffer", "offer", "b", "\"o\""));
    EXPECT(a, ERR("relay to b not allowed"));
    EXPECT_NONE(b);
}

/* ---- liveness ----------------------------------------------------------------- */

TEST(t_idle_timeout)
{
    F;
    START(f, .idle = 15, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    g_now = 1010.0;
    frame(f, b, "{\"type\":\"RequestPeerRefresh\"}");
    EXPECT(b, PEERS("a"));
    g_now = 1014.5;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    assert_int_equal(a->closing, 0);
    g_now = 1015.0;
    es_core_tick(&f->core);
    EXPECT(a, ERR("timed out"));
    assert_int_equal(a->closing, 1);
    assert_int_equal(a->close_code, ES_CLOSE_NORMAL);
    assert_int_equal(a->registered, 0);
    EXPECT(b, NO_PEERS);
    assert_int_equal(es_core_clients(&f->core), 1);
    assert_int_equal(f->core.stats.timeouts, 1);
    g_now = 1024.5;
    es_core_tick(&f->core);
    EXPECT_NONE(b);
    g_now = 1025.0;
    es_core_tick(&f->core);
    EXPECT(b, ERR("timed out"));
    assert_int_equal(b->close_code, ES_CLOSE_NORMAL);
    assert_int_equal(es_core_clients(&f->core), 0);
    assert_int_equal(f->core.stats.timeouts, 2);
    /* ticking on does not time anyone out twice */
    g_now = 2000.0;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    assert_int_equal(f->core.stats.timeouts, 2);
}

TEST(t_update_position_keeps_alive)
{
    F;
    START(f, .idle = 15, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    g_now = 1010.0;
    upd(f, a, "a", 0, 0); /* the same spot still counts */
    g_now = 1020.0;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    assert_int_equal(a->closing, 0);
    g_now = 1025.0;
    es_core_tick(&f->core);
    EXPECT(a, ERR("timed out"));
}

TEST(t_relays_do_not_keep_alive)
{
    F;
    START(f, .idle = 15, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    g_now = 1010.0;
    frame(f, a, relay_json("SendOffer", "offer", "b", "\"o\""));
    EXPECT(b, OFFER("a", "o"));
    g_now = 1015.0;
    es_core_tick(&f->core);
    EXPECT(a, ERR("timed out"));
    EXPECT(b, ERR("timed out"));
    assert_int_equal(es_core_clients(&f->core), 0);
}

/* ---- keepalive ----------------------------------------------------------- */

/* What the transport does when the delivery has a ping for s. */
static void write_ping(fx *f, es_session *s)
{
    assert_int_equal(es_local_next(s).kind, ES_WRITE_PING);
    assert_int_equal(es_local_done(s, ES_WRITE_PING), 0);
    es_core_ping_sent(&f->core, s);
}

TEST(t_keepalive_pings_a_silent_client_and_drops_it_unanswered)
{
    F;
    START(f, .idle = -1, .refresh = -1, .ping = 10);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_core_heard(&f->core, a);
    es_core_heard(&f->core, b);
    /* the sweep covers everyone once per interval: tick through it */
    for (g_now = 1000.5; g_now < 1009.9; g_now += 0.5)
        es_core_tick(&f->core);
    assert_int_equal(a->ping_due, 0);
    for (; g_now < 1011.0; g_now += 0.1)
        es_core_tick(&f->core);
    assert_int_equal(a->ping_due, 1);
    assert_int_equal(b->ping_due, 1);
    write_ping(f, a);
    write_ping(f, b);
    assert_int_equal(a->ping_due, 0);
    assert_int_equal(f->core.stats.pings_sent, 2);
    /* b answers, a does not */
    g_now = 1012.0;
    es_core_heard(&f->core, b);
    for (; g_now < 1022.5; g_now += 0.1)
        es_core_tick(&f->core);
    assert_int_equal(a->closing, 1);
    assert_int_equal(a->close_code, ES_CLOSE_GOING_AWAY);
    assert_int_equal(a->registered, 0);
    EXPECT_NONE(a); /* a dead connection is sent no Error */
    assert_int_equal(b->closing, 0);
    EXPECT(b, NO_PEERS);
    assert_int_equal(f->core.stats.ping_timeouts, 1);
}

TEST(t_keepalive_never_pings_a_busy_client)
{
    F;
    START(f, .idle = -1, .refresh = -1, .ping = 2);
    es_session *a = client_at(f, "a", 0, 0);
    for (g_now = 1000.0; g_now < 1030.0; g_now += 0.1) {
        if ((int)(g_now * 10) % 10 == 0) {
            es_core_heard(&f->core, a);
            frame(f, a, "{\"type\":\"RequestPeerRefresh\"}");
            EXPECT(a, NO_PEERS);
        }
        es_core_tick(&f->core);
        assert_int_equal(a->ping_due, 0);
    }
    assert_int_equal(f->core.stats.pings_sent, 0);
    assert_int_equal(a->closing, 0);
}

TEST(t_idle_timeout_off)
{
    F;
    START(f, .idle = -1, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    g_now = 1000000.0;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    assert_int_equal(a->closing, 0);
    assert_int_equal(es_core_clients(&f->core), 1);
}

TEST(t_periodic_refresh)
{
    F;
    START(f, .idle = -1, .refresh = 5);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *c = client_at(f, "c", 400, 0);
    es_session *anon = open_from(f, "10.0.0.3");
    g_now = 1004.9;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    g_now = 1005.0;
    es_core_tick(&f->core);
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
    EXPECT(c, NO_PEERS);
    EXPECT_NONE(anon);
    g_now = 1005.5;
    es_core_tick(&f->core);
    EXPECT_NONE(a);
    EXPECT_NONE(b);
    EXPECT_NONE(c);
    /* a closing client is not refreshed */
    frame(f, c, "{\"type\":\"Disconnect\"}");
    g_now = 1010.0;
    es_core_tick(&f->core);
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
    EXPECT_NONE(c);
}

TEST(t_refresh_off)
{
    F;
    START(f, .idle = -1, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    for (int i = 1; i <= 10; i++) {
        g_now = 1000.0 + i * 100.0;
        es_core_tick(&f->core);
    }
    EXPECT_NONE(a);
}

/* ---- limits ---------------------------------------------------------------------- */

TEST(t_frame_too_large)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_core_frame_too_large(&f->core, a);
    EXPECT(a, ERR("Frame too large (limit 65536 bytes)"));
    assert_int_equal(a->closing, 1);
    assert_int_equal(a->close_code, ES_CLOSE_TOO_BIG);
    assert_int_equal(a->registered, 0);
    EXPECT(b, NO_PEERS);
    assert_int_equal(es_core_clients(&f->core), 1);
    /* nothing more once closing */
    es_core_frame_too_large(&f->core, a);
    upd(f, a, "a", 0, 0);
    EXPECT_NONE(a);
    assert_int_equal(a->close_code, ES_CLOSE_TOO_BIG);
}

TEST(t_frame_too_large_configured_limit_unregistered)
{
    F;
    START(f, .max_frame = 2048, .sendq = 4096);
    es_session *s = open_from(f, "10.0.0.1");
    es_core_frame_too_large(&f->core, s);
    EXPECT(s, ERR("Frame too large (limit 2048 bytes)"));
    assert_int_equal(s->closing, 1);
    assert_int_equal(s->close_code, ES_CLOSE_TOO_BIG);
}

TEST(t_send_queue_overflow_drops_slow_client)
{
    F;
    START(f, .max_frame = 2048, .sendq = 4096, .idle = -1, .refresh = -1);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *slow = client_at(f, "slow", 5, 0);
    char payload[1001];
    memset(payload, 'x', 1000);
    payload[1000] = '\0';
    const char *msg = relay_json("SendOffer", "offer", "slow", fmt("\"%s\"", payload));
    size_t len = strlen("{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"a\",\"offer\":\"\"}}") + 1000;
    int dropped_at = -1, predicted = -1;
    for (int i = 0; i < 10 && dropped_at < 0; i++) {
        if (predicted < 0 && slow->q.bytes + len > 4096)
            predicted = i;
        frame(f, a, msg);
        if (slow->closing)
            dropped_at = i;
    }
    assert_int_equal(predicted, 3); /* 3 x 1059 bytes fit in 4096, 4 do not */
    assert_int_equal(dropped_at, predicted);
    assert_int_equal(slow->close_code, ES_CLOSE_POLICY);
    assert_int_equal(slow->registered, 0);
    assert_int_equal(slow->q.count, 0); /* what it could not take is gone */
    assert_int_equal(f->core.stats.sendq_overflows, 1);
    assert_int_equal(es_core_clients(&f->core), 1);
    EXPECT(a, NO_PEERS);
    /* everyone else keeps working */
    es_session *c = open_from(f, "10.0.0.1");
    upd(f, c, "c", 0, 5);
    EXPECT(c, PEERS("a"));
    EXPECT(a, PEERS("c"));
    frame(f, a, relay_json("SendOffer", "offer", "c", "\"hi\""));
    EXPECT(c, OFFER("a", "hi"));
    frame(f, a, relay_json("SendOffer", "offer", "slow", "\"hi\""));
    EXPECT(a, ERR("Client slow not found"));
    EXPECT_NONE(slow);
}

TEST(t_send_queue_overflow_by_refreshes)
{
    F;
    START(f, .max_frame = 2048, .sendq = 4096, .idle = -1, .refresh = 1);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *slow = client_at(f, "slow", 5, 0);
    size_t each = strlen("{\"type\":\"NearbyPeers\",\"data\":[\"a\"]}");
    int ticks = 0;
    while (!slow->closing && ticks < 1000) {
        g_now += 1.0;
        es_core_tick(&f->core);
        ticks++;
        if (!slow->closing)
            EXPECT(a, PEERS("slow"));
    }
    assert_int_equal(ticks, (int)(4096 / each) + 1);
    assert_int_equal(slow->close_code, ES_CLOSE_POLICY);
    /* in the tick that dropped it: a's refresh, then the news that slow left */
    EXPECT(a, PEERS("slow"), NO_PEERS);
    assert_int_equal(es_core_clients(&f->core), 1);
    g_now += 1.0;
    es_core_tick(&f->core);
    EXPECT(a, NO_PEERS);
    EXPECT_NONE(slow);
}

/* ---- hooks through the core ------------------------------------------------------- */

static const char *scripted_entry(const char *name, const char *settings)
{
    return fmt("{ type = \"plugin\"; name = \"%s\"; path = \"%s/scripted.so\"; settings = { %s }; }",
               name, env_dir("EARSHOT_TEST_PLUGIN_DIR"), settings);
}

TEST(t_join_refused_by_hook)
{
    F;
    START(f, .hooks = fmt("%s,\n%s", scripted_entry("gate", "join = \"deny\"; reason = \"not on the list\";"),
                          stock_hooks(NULL)));
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, "a", 0, 0);
    EXPECT(s, ERR("not on the list"));
    assert_int_equal(s->registered, 0);
    assert_int_equal(s->closing, 0);
    assert_int_equal(es_core_clients(&f->core), 0);
}

TEST(t_position_refused_by_hook)
{
    F;
    START(f, .hooks = fmt("%s,\n%s", scripted_entry("walls", "position = \"deny\";"), stock_hooks(NULL)));
    es_session *s = open_from(f, "10.0.0.1");
    upd(f, s, "a", 0, 0);
    EXPECT(s, ERR("position refused"));
    assert_int_equal(s->registered, 0);
    assert_int_equal(es_core_clients(&f->core), 0);
}

TEST(t_position_adjusted_by_hook)
{
    F;
    START(f, .hooks = fmt("%s,\n%s", scripted_entry("shift", "position = \"shift\"; shift = 100;"),
                          stock_hooks(NULL)));
    es_session *a = open_from(f, "10.0.0.1");
    upd(f, a, "a", 0, 0); /* stored at x = 100 */
    EXPECT(a, NO_PEERS);
    assert_int_equal(a->view.pos.x, 100);
    es_session *b = open_from(f, "10.0.0.1");
    upd(f, b, "b", 5, 0); /* stored at 105: 5 from a */
    EXPECT(b, PEERS("a"));
    EXPECT(a, PEERS("b"));
}

/* ---- whole-server events ------------------------------------------------------------ */

TEST(t_shutdown_closes_everyone)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 5, 0);
    es_session *anon = open_from(f, "10.0.0.3");
    es_core_shutdown(&f->core);
    es_session *all[] = {a, b, anon};
    for (size_t i = 0; i < ES_ARRAY_LEN(all); i++) {
        EXPECT_NONE(all[i]);
        assert_int_equal(all[i]->closing, 1);
        assert_int_equal(all[i]->close_code, ES_CLOSE_GOING_AWAY);
    }
    assert_int_equal(es_core_clients(&f->core), 0);
}

TEST(t_reconfigure_rematches_once)
{
    F;
    START(f);
    es_session *a = client_at(f, "a", 0, 0);
    es_session *b = client_at(f, "b", 40, 0);
    es_session *c = client_at(f, "c", 1000, 0);
    es_config cfg2;
    es_hooks h2;
    core_opts wide = {.hooks = "{ type = \"plugin\"; name = \"relay_guard\"; },\n"
                               "{ type = \"plugin\"; name = \"proximity\"; settings = { radius = 50; "
                               "leave_radius = 60; }; }"};
    load_config(f, config_text(&wide), &cfg2, &h2);
    es_core_reconfigure(&f->core, &cfg2, &h2);
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
    EXPECT_NONE(c);
    assert_int_equal(f->core.grid.cell_size, 60);
    /* back to the stock radii: the old hooks are loaded again */
    es_hooks_unload(&f->h);
    es_config_free(&f->cfg);
    load_config(f, config_text(&(core_opts){0}), &f->cfg, &f->h);
    es_core_reconfigure(&f->core, &f->cfg, &f->h);
    es_hooks_unload(&h2);
    es_config_free(&cfg2);
    EXPECT(a, NO_PEERS);
    EXPECT(b, NO_PEERS);
    EXPECT_NONE(c);
    upd(f, b, "b", 10, 0);
    EXPECT(a, PEERS("b"));
    EXPECT(b, PEERS("a"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(t_first_update_position_is_answered),
        T(t_register_next_to_peers),
        T(t_messages_before_registration),
        T(t_bad_frames_change_nothing),
        T(t_client_id_cannot_change),
        T(t_takeover_same_address_policy_other_address),
        T(t_takeover_same_address_policy_same_address),
        T(t_takeover_always_policy),
        T(t_takeover_never_policy),
        T(t_takeover_tells_peers_once),
        T(t_move_that_changes_nothing_sends_nothing),
        T(t_one_message_per_client_per_move),
        T(t_hysteresis_through_the_core),
        T(t_channel_and_map_changes),
        T(t_request_peer_refresh),
        T(t_crowd_join_one_message_each),
        T(t_disconnect_before_registration_just_closes),
        T(t_disconnect_tells_peers),
        T(t_closed_connection_tells_peers),
        T(t_closed_unregistered_connection),
        T(t_relay_offer_sender_stamped),
        T(t_relay_answer_and_ice),
        T(t_relay_payload_intact),
        T(t_relays_arrive_in_order),
        T(t_batched_changes_merge_into_one_list),
        T(t_batched_list_goes_before_other_messages),
        T(t_batched_refreshes_each_get_a_reply),
        T(t_batched_client_closing_before_the_flush),
        T(t_messages_written_directly_when_nothing_waits),
        T(t_relay_to_self),
        T(t_relay_to_unknown_target),
        T(t_relay_guard_refuses_strangers),
        T(t_relay_after_parting_within_grace),
        T(t_relay_refused_with_zero_grace_after_parting),
        T(t_idle_timeout),
        T(t_update_position_keeps_alive),
        T(t_relays_do_not_keep_alive),
        T(t_idle_timeout_off),
        T(t_keepalive_pings_a_silent_client_and_drops_it_unanswered),
        T(t_keepalive_never_pings_a_busy_client),
        T(t_periodic_refresh),
        T(t_refresh_off),
        T(t_frame_too_large),
        T(t_frame_too_large_configured_limit_unregistered),
        T(t_send_queue_overflow_drops_slow_client),
        T(t_send_queue_overflow_by_refreshes),
        T(t_join_refused_by_hook),
        T(t_position_refused_by_hook),
        T(t_position_adjusted_by_hook),
        T(t_shutdown_closes_everyone),
        T(t_reconfigure_rematches_once),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
