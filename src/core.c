#include "core.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define SESSION_OF(node, member) ES_CONTAINER_OF(node, es_session, member)

const char *const es_out_type_names[ES_OUT_COUNT] = {
    "NearbyPeers", "ReceiveOffer", "ReceiveAnswer", "ReceiveIceCandidate", "Error"};
const char *const es_error_kind_names[ES_ERR_COUNT] = {
    "bad_message",     "binary_frame",   "not_registered", "id_changed",   "id_in_use",
    "taken_over",      "join_refused",   "position_refused", "self_relay", "unknown_target",
    "relay_refused",   "frame_too_large", "timeout", "rate_limited"};
const char *const es_relay_outcome_names[ES_RELAY_OUTCOME_COUNT] = {"delivered", "refused",
                                                                     "unknown_target", "self"};

/* Log a line about session s in module "session" (or another). */
#define SLOG(level, module, s, ...)                                                  \
    do {                                                                             \
        es_log_client lc_ = {.client_id = (s)->id, .address = (s)->addr, .conn = (s)->serial}; \
        ES_CLOG(level, module, &lc_, __VA_ARGS__);                                   \
    } while (0)

void es_core_init_with(es_core *c, const es_config *cfg, es_hooks *hooks, es_registry registry,
                       es_delivery delivery, double (*now)(void))
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->hooks = hooks;
    c->registry = registry;
    c->delivery = delivery;
    c->now = now ? now : es_now;
    es_grid_init(&c->grid, hooks->query_radius > 0 ? hooks->query_radius : 1);
    es_matcher_init(&c->matcher, &c->grid, NULL, NULL, NULL);
    es_matcher_use_hooks(&c->matcher, hooks);
    es_buf_init(&c->out);
    es_buf_init(&c->peers);
    c->next_refresh = c->now() + cfg->refresh_interval;
    es_keepalive_init(&c->keepalive, c->now());
    es_addrcount_init(&c->addrs);
}

void es_core_init(es_core *c, const es_config *cfg, es_hooks *hooks, const es_transport *tx,
                  void *tctx, double (*now)(void))
{
    es_core_init_with(c, cfg, hooks, es_registry_local(),
                      es_delivery_local(tx, tctx, cfg->send_queue_bytes), now);
    c->owns_seams = 1;
}

static void session_free(es_core *c, es_session *s)
{
    es_delivery_discard(&c->delivery, s);
    free(s->join);
    free(s->edges);
    free(s);
}

void es_core_free(es_core *c)
{
    /* Hand every pair's edge (once, through its `a` end) to the matcher's
     * free list, which es_matcher_free() releases; then free the sessions. */
    for (es_dnode *n = c->all.head; n; n = n->next) {
        es_session *s = SESSION_OF(n, all_node);
        for (uint32_t i = 0; i < s->nedges; i++) {
            es_edge *e = s->edges[i];
            if (e->a == s) {
                e->next_free = c->matcher.free_edges;
                c->matcher.free_edges = e;
            }
        }
    }
    es_dnode *n = c->all.head;
    while (n) {
        es_dnode *next = n->next;
        session_free(c, SESSION_OF(n, all_node));
        n = next;
    }
    es_matcher_free(&c->matcher);
    es_grid_free(&c->grid);
    if (c->owns_seams) {
        c->registry.ops->destroy(c->registry.impl);
        c->delivery.ops->destroy(c->delivery.impl);
    }
    es_buf_free(&c->out);
    es_buf_free(&c->peers);
    free(c->doomed);
    es_addrcount_free(&c->addrs);
    memset(c, 0, sizeof *c);
}

/* ---- the session lists --------------------------------------------------- */

/* s showed it is alive: it moves to the young end of the idle list. */
static void touch(es_core *c, es_session *s)
{
    s->last_active = c->now();
    if (c->idle.tail != &s->idle_node) {
        es_dlist_unlink(&c->idle, &s->idle_node);
        es_dlist_append(&c->idle, &s->idle_node);
    }
}

/* ---- connections per address ------------------------------------------- */

size_t es_core_address_connections(const es_core *c, const char *address)
{
    return es_addrcount_get(&c->addrs, address);
}

/* ---- output ------------------------------------------------------------- */

static void doom(es_core *c, es_session *s)
{
    if (s->doomed)
        return;
    s->doomed = 1;
    if (c->ndoomed == c->doomed_cap) {
        c->doomed_cap = c->doomed_cap ? c->doomed_cap * 2 : 16;
        c->doomed = es_xrealloc(c->doomed, c->doomed_cap * sizeof *c->doomed);
    }
    c->doomed[c->ndoomed++] = s;
}

/* Hand one message to the delivery. A client that cannot take it is
 * doomed, not fed. */
static void deliver(es_core *c, es_session *s, es_out_type type, es_buf *b)
{
    if (s->closing || s->doomed)
        return;
    c->stats.messages_out[type]++;
    if (es_deliver(&c->delivery, s, es_buf_data(b), b->len) != 0) {
        c->stats.sendq_overflows++;
        doom(c, s);
    }
}

static void build_peers(es_buf *b, const es_session *s);

/* s's current list, built apart from c->out: whatever s was owed is paid by it. */
static void send_peers(es_core *c, es_session *s)
{
    es_matcher_served(s);
    build_peers(&c->peers, s);
    deliver(c, s, ES_OUT_NEARBY_PEERS, &c->peers);
}

/*
 * Send the message in b to s. A client owed a NearbyPeers (held for the
 * end-of-pass flush when the core batches) gets it before any other
 * message, a refresh reply included, so each client sees its messages in
 * the order of the events behind them; only owed lists with nothing
 * between them are merged.
 */
static void send_out(es_core *c, es_session *s, es_out_type type, es_buf *b)
{
    if (s->dirty == ES_DIRTY_OWED && s->registered)
        send_peers(c, s);
    deliver(c, s, type, b);
}

static void send_error(es_core *c, es_session *s, es_error_kind kind, const char *text)
{
    es_buf_reset(&c->out);
    es_protocol_write_error(&c->out, text);
    c->stats.errors[kind]++;
    send_out(c, s, ES_OUT_ERROR, &c->out);
}

static void build_peers(es_buf *b, const es_session *s)
{
    es_buf_reset(b);
    es_protocol_write_peers_begin(b);
    for (uint32_t i = 0; i < s->nedges; i++) {
        const es_session *o = es_edge_other(s->edges[i], s);
        es_protocol_write_peers_add(b, o->id, o->id_len, i == 0);
    }
    es_protocol_write_peers_end(b);
}

/* Stop reading s; close it with code once its queue is drained. */
static void close_session(es_core *c, es_session *s, int code)
{
    if (s->closing)
        return;
    s->closing = 1;
    switch (code) {
    case ES_CLOSE_NORMAL: c->stats.closes[0]++; break;
    case ES_CLOSE_GOING_AWAY: c->stats.closes[1]++; break;
    case ES_CLOSE_POLICY: c->stats.closes[2]++; break;
    case ES_CLOSE_TOO_BIG: c->stats.closes[3]++; break;
    default: break;
    }
    es_delivery_close(&c->delivery, s, code);
}

/* ---- registration ------------------------------------------------------- */

static void unregister(es_core *c, es_session *s, earshot_leave_reason why)
{
    if (!s->registered)
        return;
    es_matcher_remove_all(&c->matcher, s);
    es_grid_remove(&c->grid, s);
    es_registry_release(&c->registry, s);
    s->registered = 0;
    es_hooks_leave(c->hooks, &s->view, why);
    SLOG(EARSHOT_LOG_INFO, "session", s, "left (%s)", es_leave_reason_names[why]);
}

/* Remove s from the world, tell it why, and close it. */
static void kick(es_core *c, es_session *s, earshot_leave_reason why, es_error_kind kind,
                 const char *text, int code)
{
    unregister(c, s, why);
    if (text)
        send_error(c, s, kind, text);
    close_session(c, s, code);
}

/* Send the NearbyPeers every dirty client is owed, then drop the clients
 * that could not take them, which dirties their peers: repeat until calm. */
static void flush(es_core *c)
{
    for (;;) {
        size_t n;
        es_session **dirty = es_matcher_take_dirty(&c->matcher, &n);
        for (size_t i = 0; i < n; i++)
            if (dirty[i]->registered && !dirty[i]->closing)
                send_peers(c, dirty[i]);
        if (c->ndoomed == 0)
            return;
        size_t nd = c->ndoomed;
        c->ndoomed = 0;
        for (size_t i = 0; i < nd; i++) {
            es_session *s = c->doomed[i];
            size_t bytes = es_delivery_discard(&c->delivery, s);
            SLOG(EARSHOT_LOG_WARN, "session", s, "dropped: send queue full (%zu bytes)", bytes);
            unregister(c, s, EARSHOT_LEAVE_CLOSED);
            s->doomed = 0;
            close_session(c, s, ES_CLOSE_POLICY);
        }
    }
}

/* The end of a client message: flush now, or leave it to es_core_flush()
 * when the server batches a loop iteration's messages. */
static void settle(es_core *c)
{
    if (!c->batch)
        flush(c);
}

void es_core_flush(es_core *c) { flush(c); }

static int same_position(const earshot_position *a, const earshot_position *b)
{
    return a->game_id == b->game_id && a->map_id == b->map_id && a->x == b->x && a->y == b->y &&
           a->channel == b->channel;
}

static void id_in_use(es_core *c, es_session *s, const char *id)
{
    char reason[ES_ERROR_MAX];
    snprintf(reason, sizeof reason, "client_id %s is already in use", id);
    send_error(c, s, ES_ERR_ID_IN_USE, reason);
}

static void handle_register(es_core *c, es_session *s, const es_msg *m)
{
    char reason[ES_ERROR_MAX];
    static const es_join_info no_join = {.path = "/", .query = ""};
    const es_join_info *ji = s->join ? s->join : &no_join;
    earshot_join j = {
        .client_id = m->client_id,
        .address = s->addr,
        .path = ji->path,
        .query = ji->query,
        .headers = ji->headers,
        .header_count = ji->header_count,
        .pos = m->pos,
    };
    if (!es_hooks_join(c->hooks, &j, reason)) {
        SLOG(EARSHOT_LOG_INFO, "session", s, "join as %s refused: %s", m->client_id, reason);
        send_error(c, s, ES_ERR_JOIN_REFUSED, reason);
        return;
    }
    /* The policy first, so that a refused id is reported before a refused
     * position; the claim below is what decides. */
    es_session *holder = es_registry_find(&c->registry, m->client_id, m->client_id_len);
    if (holder && !es_takeover_allows(c->cfg->takeover, holder, s)) {
        id_in_use(c, s, m->client_id);
        return;
    }
    earshot_position pos = m->pos;
    earshot_client pending = {.client_id = m->client_id, .address = s->addr, .pos = m->pos};
    if (!es_hooks_position(c->hooks, &pending, &pos, reason)) {
        send_error(c, s, ES_ERR_POSITION_REFUSED, reason);
        return;
    }
    if (es_registry_claim(&c->registry, s, m->client_id, m->client_id_len, c->cfg->takeover,
                          &holder) != ES_CLAIM_OK) {
        id_in_use(c, s, m->client_id);
        return;
    }
    if (holder) {
        char text[ES_ERROR_MAX];
        snprintf(text, sizeof text, "client_id %s was taken over by another connection",
                 m->client_id);
        c->stats.takeovers++;
        kick(c, holder, EARSHOT_LEAVE_TAKEOVER, ES_ERR_TAKEN_OVER, text, ES_CLOSE_POLICY);
    }
    s->view.pos = pos;
    s->registered = 1;
    free(s->join);
    s->join = NULL;
    es_dlist_unlink(&c->pend, &s->pend_node);
    es_grid_insert(&c->grid, s);
    es_matcher_update(&c->matcher, s);
    es_matcher_mark_dirty(&c->matcher, s); /* the first UpdatePosition is always answered */
    c->stats.registrations++;
    touch(c, s);
    SLOG(EARSHOT_LOG_INFO, "session", s, "registered at game %d map %d (%d, %d) channel %d%s",
         pos.game_id, pos.map_id, pos.x, pos.y, pos.channel, holder ? " (took over)" : "");
}

static void handle_update(es_core *c, es_session *s, const es_msg *m)
{
    if (!s->registered) {
        handle_register(c, s, m);
        return;
    }
    char reason[ES_ERROR_MAX];
    if (m->client_id_len != s->id_len || memcmp(m->client_id, s->id, s->id_len) != 0) {
        snprintf(reason, sizeof reason, "client_id cannot change on a connection (registered as %s)",
                 s->id);
        send_error(c, s, ES_ERR_ID_CHANGED, reason);
        return;
    }
    touch(c, s);
    earshot_position pos = m->pos;
    if (!es_hooks_position(c->hooks, &s->view, &pos, reason)) {
        send_error(c, s, ES_ERR_POSITION_REFUSED, reason);
        return;
    }
    if (same_position(&pos, &s->view.pos))
        return;
    s->view.pos = pos;
    es_grid_update(&c->grid, s);
    es_matcher_update(&c->matcher, s);
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "at game %d map %d (%d, %d) channel %d", pos.game_id,
         pos.map_id, pos.x, pos.y, pos.channel);
}

/* ---- relays ------------------------------------------------------------- */

static void handle_relay(es_core *c, es_session *s, const es_msg *m)
{
    int kind = m->type == ES_MSG_SEND_OFFER ? EARSHOT_RELAY_OFFER
               : m->type == ES_MSG_SEND_ANSWER ? EARSHOT_RELAY_ANSWER
                                               : EARSHOT_RELAY_ICE_CANDIDATE;
    int is_ice = kind == EARSHOT_RELAY_ICE_CANDIDATE;
    uint64_t *outcome = c->stats.relays[kind];
    char text[ES_ERROR_MAX];
    if (m->target_id_len == s->id_len && memcmp(m->target_id, s->id, s->id_len) == 0) {
        outcome[ES_RELAY_SELF]++;
        send_error(c, s, ES_ERR_SELF_RELAY, "Cannot send to yourself");
        return;
    }
    es_session *t = es_registry_find(&c->registry, m->target_id, m->target_id_len);
    if (!t) {
        outcome[ES_RELAY_UNKNOWN_TARGET]++;
        if (!is_ice) {
            snprintf(text, sizeof text, "Client %s not found", m->target_id);
            send_error(c, s, ES_ERR_UNKNOWN_TARGET, text);
        }
        return;
    }
    earshot_relay r = {
        .kind = (earshot_relay_kind)kind,
        .sender = &s->view,
        .target = &t->view,
        .payload = m->payload,
        .payload_len = m->payload_len,
        .matched = es_matcher_is_matched(s, t),
    };
    if (!es_hooks_relay(c->hooks, &r, text)) {
        outcome[ES_RELAY_REFUSED]++;
        SLOG(EARSHOT_LOG_DEBUG, "relay", s, "%s to %s refused: %s", es_msg_type_name(m->type),
             t->id, text);
        if (!is_ice)
            send_error(c, s, ES_ERR_RELAY_REFUSED, text);
        return;
    }
    es_buf_reset(&c->out);
    es_protocol_write_relay(&c->out, m->type, s->id, s->id_len, m->payload, m->payload_len);
    outcome[ES_RELAY_DELIVERED]++;
    send_out(c, t, (es_out_type)(ES_OUT_RECEIVE_OFFER + kind), &c->out);
}

/* ---- entry points ------------------------------------------------------- */

es_session *es_core_open(es_core *c, void *conn, const char *address, es_join_info *join)
{
    es_session *s = es_xcalloc(1, sizeof *s);
    s->conn = conn;
    s->join = join;
    s->serial = ++c->next_serial;
    snprintf(s->addr, sizeof s->addr, "%s", address ? address : "");
    s->view.client_id = s->id;
    s->view.address = s->addr;
    s->cell = ES_GRID_NO_CELL;
    s->last_active = s->opened_at = s->last_rx = c->now();
    es_rate_init(&s->rate, s->opened_at, c->cfg->message_burst);
    es_dlist_append(&c->all, &s->all_node);
    es_dlist_append(&c->idle, &s->idle_node);
    es_dlist_append(&c->pend, &s->pend_node);
    es_addrcount_add(&c->addrs, s->addr);
    c->sessions++;
    c->stats.connections_opened++;
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connected");
    return s;
}

/* s sent one message too many: tell it, and close it if it keeps on. */
static void rate_limited(es_core *c, es_session *s)
{
    c->stats.rate_limited++;
    unsigned drops = es_rate_dropped(&s->rate, c->now());
    if (drops > c->cfg->rate_limit_close_after) {
        SLOG(EARSHOT_LOG_WARN, "session", s, "closed: over the message rate limit %u times in %.0f s",
             drops - 1, ES_RATE_WINDOW);
        kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_RATE_LIMITED, "rate limited", ES_CLOSE_POLICY);
    } else {
        send_error(c, s, ES_ERR_RATE_LIMITED, "rate limited");
    }
    settle(c);
}

void es_core_frame(es_core *c, es_session *s, const char *data, size_t len, int binary)
{
    if (s->closing)
        return;
    if (!es_rate_allow(&s->rate, c->now(), c->cfg->message_rate, c->cfg->message_burst)) {
        rate_limited(c, s);
        return;
    }
    if (binary) {
        send_error(c, s, ES_ERR_BINARY, "Binary frames are not supported");
        settle(c);
        return;
    }
    es_msg m;
    char err[ES_ERROR_MAX];
    if (es_protocol_parse(data, len, &m, err) != 0) {
        SLOG(EARSHOT_LOG_DEBUG, "protocol", s, "bad message: %s", err);
        send_error(c, s, ES_ERR_BAD_MESSAGE, err);
        settle(c);
        return;
    }
    c->stats.messages_in[m.type]++;
    switch (m.type) {
    case ES_MSG_DISCONNECT:
        unregister(c, s, EARSHOT_LEAVE_DISCONNECT);
        close_session(c, s, ES_CLOSE_NORMAL);
        break;
    case ES_MSG_UPDATE_POSITION:
        handle_update(c, s, &m);
        break;
    default:
        if (!s->registered) {
            send_error(c, s, ES_ERR_NOT_REGISTERED, "Client must send UpdatePosition first.");
        } else if (m.type == ES_MSG_REQUEST_PEER_REFRESH) {
            /* A reply of its own, built apart from owed lists, so that
             * send_out sends any list owed before it (replies are never
             * merged). */
            touch(c, s);
            build_peers(&c->out, s);
            send_out(c, s, ES_OUT_NEARBY_PEERS, &c->out);
        } else {
            handle_relay(c, s, &m);
        }
        break;
    }
    es_msg_release(&m);
    settle(c);
}

void es_core_frame_too_large(es_core *c, es_session *s)
{
    if (s->closing)
        return;
    char text[96];
    snprintf(text, sizeof text, "Frame too large (limit %zu bytes)", c->cfg->max_frame_bytes);
    kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_FRAME_TOO_LARGE, text, ES_CLOSE_TOO_BIG);
    settle(c);
}

/*
 * The last connection is gone: drop the pools that kept the crowd's peak
 * size (pair edges, grid cells, tables, scratch arrays). They are small
 * objects scattered over the heap; left in place, each pins a page, and a
 * quiet server's RSS would stay at its busiest.
 */
static void compact(es_core *c)
{
    es_matcher_release_pool(&c->matcher);
    int64_t cell = c->grid.cell_size;
    es_grid_free(&c->grid);
    es_grid_init(&c->grid, cell);
    if (c->registry.ops->compact)
        c->registry.ops->compact(c->registry.impl);
    free(c->doomed);
    c->doomed = NULL;
    c->ndoomed = c->doomed_cap = 0;
    es_buf_free(&c->out);
    es_buf_init(&c->out);
    es_buf_free(&c->peers);
    es_buf_init(&c->peers);
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

void es_core_closed(es_core *c, es_session *s)
{
    unregister(c, s, EARSHOT_LEAVE_CLOSED);
    for (size_t i = 0; i < c->ndoomed; i++) {
        if (c->doomed[i] == s) {
            c->doomed[i] = c->doomed[--c->ndoomed];
            break;
        }
    }
    flush(c);
    es_dlist_unlink(&c->idle, &s->idle_node);
    es_dlist_unlink(&c->pend, &s->pend_node);
    es_keepalive_forget(&c->keepalive, s);
    es_dlist_unlink(&c->all, &s->all_node);
    es_addrcount_remove(&c->addrs, s->addr);
    c->sessions--;
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connection closed");
    session_free(c, s);
    if (c->sessions == 0)
        compact(c);
}

static void collect_registered(es_session *s, void *ud)
{
    es_core *c = ud;
    s->cell = ES_GRID_NO_CELL;
    es_grid_insert(&c->grid, s);
}

static void rematch(es_session *s, void *ud)
{
    es_core *c = ud;
    es_matcher_update(&c->matcher, s);
}

void es_core_reconfigure(es_core *c, const es_config *cfg, es_hooks *hooks)
{
    c->cfg = cfg;
    c->hooks = hooks;
    es_matcher_use_hooks(&c->matcher, hooks);
    if (c->delivery.ops->set_queue_limit)
        c->delivery.ops->set_queue_limit(c->delivery.impl, cfg->send_queue_bytes);
    int64_t cell = hooks->query_radius > 0 ? hooks->query_radius : 1;
    if (cell != c->grid.cell_size) {
        es_grid_free(&c->grid);
        es_grid_init(&c->grid, cell);
        es_registry_each(&c->registry, collect_registered, c);
    }
    es_registry_each(&c->registry, rematch, c);
    c->next_refresh = c->now() + cfg->refresh_interval;
    flush(c);
}

void es_core_shutdown(es_core *c)
{
    for (es_dnode *n = c->all.head; n; n = n->next) {
        es_session *s = SESSION_OF(n, all_node);
        unregister(c, s, EARSHOT_LEAVE_SHUTDOWN);
        close_session(c, s, ES_CLOSE_GOING_AWAY);
    }
    flush(c);
}

static void send_peers_each(es_session *s, void *ud)
{
    if (!s->closing)
        send_peers(ud, s);
}

void es_core_ping_sent(es_core *c, es_session *s)
{
    s->ping_sent_at = c->now();
    c->stats.pings_sent++;
}

static void keepalive_ping(void *ud, es_session *s)
{
    es_core *c = ud;
    es_delivery_ping(&c->delivery, s);
}

static void keepalive_dead(void *ud, es_session *s)
{
    es_core *c = ud;
    c->stats.ping_timeouts++;
    SLOG(EARSHOT_LOG_INFO, "session", s, "no answer to a ping in %.0f s: dropped",
         (double)c->cfg->ping_interval);
    kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_COUNT, NULL, ES_CLOSE_GOING_AWAY);
}

void es_core_tick(es_core *c)
{
    double now = c->now();
    double idle = c->cfg->idle_timeout;
    if (idle > 0) {
        while (c->idle.head && now - SESSION_OF(c->idle.head, idle_node)->last_active >= idle) {
            es_session *s = SESSION_OF(c->idle.head, idle_node);
            es_dlist_unlink(&c->idle, &s->idle_node); /* it will not be timed out twice */
            if (s->closing)
                continue;
            c->stats.timeouts++;
            SLOG(EARSHOT_LOG_INFO, "session", s, "timed out after %.1f s", now - s->last_active);
            kick(c, s, EARSHOT_LEAVE_TIMEOUT, ES_ERR_TIMEOUT, "timed out", ES_CLOSE_NORMAL);
        }
    }
    es_keepalive_actions act = {.ping = keepalive_ping, .dead = keepalive_dead, .ud = c};
    es_keepalive_sweep(&c->keepalive, &c->all, c->sessions, now, c->cfg->ping_interval, &act);
    double first = c->cfg->first_message_timeout;
    if (first > 0) {
        while (c->pend.head && now - SESSION_OF(c->pend.head, pend_node)->opened_at >= first) {
            es_session *s = SESSION_OF(c->pend.head, pend_node);
            es_dlist_unlink(&c->pend, &s->pend_node);
            if (s->closing)
                continue;
            c->stats.first_message_timeouts++;
            SLOG(EARSHOT_LOG_INFO, "session", s, "no UpdatePosition within %.1f s", first);
            kick(c, s, EARSHOT_LEAVE_TIMEOUT, ES_ERR_TIMEOUT, "timed out", ES_CLOSE_NORMAL);
        }
    }
    double every = c->cfg->refresh_interval;
    if (every > 0 && now >= c->next_refresh) {
        es_registry_each(&c->registry, send_peers_each, c);
        c->next_refresh = now + every;
    }
    flush(c);
}
