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
const char *const es_relay_kind_names[3] = {"offer", "answer", "candidate"};

/* Log a line about session s in module "session" (or another). */
#define SLOG(level, module, s, ...)                                                  \
    do {                                                                             \
        es_log_client lc_ = {.client_id = (s)->id, .address = (s)->addr, .conn = (s)->serial}; \
        ES_CLOG(level, module, &lc_, __VA_ARGS__);                                   \
    } while (0)

static const char *const leave_names[] = {"disconnect", "closed", "timeout", "takeover",
                                          "shutdown"};

/* ---- matcher policy glue ------------------------------------------------ */

static int match_via_hooks(void *ud, const es_session *a, const es_session *b, int matched)
{
    es_core *c = ud;
    return es_hooks_match(c->hooks, &a->view, &b->view, matched);
}

static void pair_via_hooks(void *ud, const es_session *a, const es_session *b, int matched)
{
    es_core *c = ud;
    es_hooks_pair(c->hooks, &a->view, &b->view, matched);
}

void es_core_init(es_core *c, const es_config *cfg, es_hooks *hooks, const es_transport *tx,
                  void *tctx, double (*now)(void))
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->hooks = hooks;
    c->tx = tx;
    c->tctx = tctx;
    c->now = now ? now : es_now;
    es_registry_init(&c->registry);
    es_grid_init(&c->grid, hooks->query_radius > 0 ? hooks->query_radius : 1);
    es_matcher_init(&c->matcher, &c->grid, match_via_hooks,
                    hooks->chain_len[ES_HOOK_PAIR] ? pair_via_hooks : NULL, c);
    es_buf_init(&c->out);
    es_buf_init(&c->peers);
    c->next_refresh = c->now() + cfg->refresh_interval;
    c->last_sweep = c->now();
    c->addrs.cap = 64;
    c->addrs.slots = es_xcalloc(c->addrs.cap, sizeof *c->addrs.slots);
}

static void session_free(es_session *s)
{
    es_sendq_clear(&s->q);
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
        session_free(SESSION_OF(n, all_node));
        n = next;
    }
    es_matcher_free(&c->matcher);
    es_grid_free(&c->grid);
    es_registry_free(&c->registry);
    es_buf_free(&c->out);
    es_buf_free(&c->peers);
    free(c->doomed);
    free(c->addrs.slots);
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

/* ---- connections per address --------------------------------------------- */

/*
 * Open addressing with linear probing. A slot whose count fell to 0 keeps its
 * address as a tombstone (lookups probe past it, inserts reuse it); the
 * table is rebuilt when live entries and tombstones fill 3/4 of it.
 */
static es_addr_count *addr_slot(const es_addr_counts *t, const char *addr, int *found)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)es_hash_bytes(addr, strlen(addr)) & mask;
    es_addr_count *reuse = NULL;
    for (;; i = (i + 1) & mask) {
        es_addr_count *e = &t->slots[i];
        if (e->addr[0] == '\0') {
            *found = 0;
            return reuse ? reuse : e;
        }
        if (strcmp(e->addr, addr) == 0) {
            *found = 1;
            return e;
        }
        if (e->count == 0 && !reuse)
            reuse = e;
    }
}

static void addr_rebuild(es_addr_counts *t)
{
    es_addr_count *old = t->slots;
    size_t old_cap = t->cap, live = 0;
    for (size_t i = 0; i < old_cap; i++)
        live += old[i].count > 0;
    size_t cap = 64;
    while (cap < live * 4)
        cap *= 2;
    t->slots = es_xcalloc(cap, sizeof *t->slots);
    t->cap = cap;
    t->used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].count == 0)
            continue;
        int found;
        *addr_slot(t, old[i].addr, &found) = old[i];
        t->used++;
    }
    free(old);
}

static void addr_add(es_addr_counts *t, const char *addr, int delta)
{
    int found;
    es_addr_count *e = addr_slot(t, addr, &found);
    if (delta < 0) {
        if (found && e->count > 0)
            e->count--;
        return;
    }
    if (!found) {
        if (e->addr[0] == '\0') { /* a fresh slot, not a tombstone */
            if ((t->used + 1) * 4 > t->cap * 3) {
                addr_rebuild(t);
                e = addr_slot(t, addr, &found);
            }
            t->used++; /* counts filled slots: live and tombstones */
        }
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        e->count = 0;
    }
    e->count++;
}

size_t es_core_address_connections(const es_core *c, const char *address)
{
    int found;
    es_addr_count *e = addr_slot(&c->addrs, address, &found);
    return found ? e->count : 0;
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

static void send_peers(es_core *c, es_session *s);

/*
 * Queue the message in b for s. A client whose queue is full is doomed, not
 * fed. A client owed a NearbyPeers (held for the end-of-pass flush when the
 * core batches) gets it before any other message, a refresh reply
 * included, so each client sees its messages in the order of the events
 * behind them; only owed lists with nothing between them are merged.
 */
static void send_out(es_core *c, es_session *s, es_out_type type, const es_buf *b)
{
    if (s->closing || s->doomed)
        return;
    if (b != &c->peers && s->dirty == ES_DIRTY_OWED && s->registered)
        send_peers(c, s); /* the owed list itself is built in c->peers */
    c->stats.messages_out[type]++;
    if (s->q.count == 0 && c->tx->send_now &&
        c->tx->send_now(c->tctx, s, es_buf_data(b), b->len))
        return;
    if (es_sendq_push(&s->q, es_buf_data(b), b->len, c->cfg->send_queue_bytes) != 0) {
        c->stats.sendq_overflows++;
        doom(c, s);
        return;
    }
    c->tx->want_write(c->tctx, s);
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

/* s's current list: whatever s was owed is paid by it. */
static void send_peers(es_core *c, es_session *s)
{
    es_matcher_served(s);
    build_peers(&c->peers, s);
    send_out(c, s, ES_OUT_NEARBY_PEERS, &c->peers);
}

/* Stop reading s; close it with code once its queue is drained. */
static void close_session(es_core *c, es_session *s, int code)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_code = code;
    switch (code) {
    case ES_CLOSE_NORMAL: c->stats.closes[0]++; break;
    case ES_CLOSE_GOING_AWAY: c->stats.closes[1]++; break;
    case ES_CLOSE_POLICY: c->stats.closes[2]++; break;
    case ES_CLOSE_TOO_BIG: c->stats.closes[3]++; break;
    default: break;
    }
    c->tx->want_write(c->tctx, s);
}

/* ---- registration ------------------------------------------------------- */

static void unregister(es_core *c, es_session *s, earshot_leave_reason why)
{
    if (!s->registered)
        return;
    es_matcher_remove_all(&c->matcher, s);
    es_grid_remove(&c->grid, s);
    es_registry_remove(&c->registry, s);
    s->registered = 0;
    es_hooks_leave(c->hooks, &s->view, why);
    SLOG(EARSHOT_LOG_INFO, "session", s, "left (%s)", leave_names[why]);
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
            SLOG(EARSHOT_LOG_WARN, "session", s, "dropped: send queue full (%zu bytes)", s->q.bytes);
            es_sendq_clear(&s->q);
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
    es_session *holder = es_registry_find(&c->registry, m->client_id, m->client_id_len);
    if (holder) {
        es_takeover policy = c->cfg->takeover;
        int allowed = policy == ES_TAKEOVER_ALWAYS ||
                      (policy == ES_TAKEOVER_SAME_ADDRESS && strcmp(holder->addr, s->addr) == 0);
        if (!allowed) {
            snprintf(reason, sizeof reason, "client_id %s is already in use", m->client_id);
            send_error(c, s, ES_ERR_ID_IN_USE, reason);
            return;
        }
    }
    earshot_position pos = m->pos;
    earshot_client pending = {.client_id = m->client_id, .address = s->addr, .pos = m->pos};
    if (!es_hooks_position(c->hooks, &pending, &pos, reason)) {
        send_error(c, s, ES_ERR_POSITION_REFUSED, reason);
        return;
    }
    if (holder) {
        char text[ES_ERROR_MAX];
        snprintf(text, sizeof text, "client_id %s was taken over by another connection",
                 m->client_id);
        c->stats.takeovers++;
        kick(c, holder, EARSHOT_LEAVE_TAKEOVER, ES_ERR_TAKEN_OVER, text, ES_CLOSE_POLICY);
    }
    memcpy(s->id, m->client_id, m->client_id_len);
    s->id[m->client_id_len] = '\0';
    s->id_len = m->client_id_len;
    s->view.pos = pos;
    s->registered = 1;
    free(s->join);
    s->join = NULL;
    es_dlist_unlink(&c->pend, &s->pend_node);
    es_registry_insert(&c->registry, s);
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
    es_sendq_init(&s->q);
    s->last_active = s->opened_at = s->tokens_at = s->drop_window_start = s->last_rx = c->now();
    s->tokens = c->cfg->message_burst;
    es_dlist_append(&c->all, &s->all_node);
    es_dlist_append(&c->idle, &s->idle_node);
    es_dlist_append(&c->pend, &s->pend_node);
    addr_add(&c->addrs, s->addr, +1);
    c->sessions++;
    c->stats.connections_opened++;
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connected");
    return s;
}

/*
 * The token bucket: message_burst tokens, refilled at message_rate per
 * second, one per message. 1 if this message may pass.
 */
static int rate_allows(es_core *c, es_session *s)
{
    double rate = c->cfg->message_rate;
    if (rate <= 0)
        return 1;
    double now = c->now();
    s->tokens += (now - s->tokens_at) * rate;
    s->tokens_at = now;
    if (s->tokens > c->cfg->message_burst)
        s->tokens = c->cfg->message_burst;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return 1;
    }
    return 0;
}

#define RATE_WINDOW 10.0 /* seconds over which dropped messages add up */

/* s sent one message too many: tell it, and close it if it keeps on. */
static void rate_limited(es_core *c, es_session *s)
{
    double now = c->now();
    c->stats.rate_limited++;
    if (now - s->drop_window_start > RATE_WINDOW) {
        s->drop_window_start = now;
        s->drops_in_window = 0;
    }
    if (++s->drops_in_window > c->cfg->rate_limit_close_after) {
        SLOG(EARSHOT_LOG_WARN, "session", s, "closed: over the message rate limit %u times in %.0f s",
             s->drops_in_window - 1, RATE_WINDOW);
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
    if (!rate_allows(c, s)) {
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
    es_registry_free(&c->registry);
    es_registry_init(&c->registry);
    free(c->addrs.slots);
    c->addrs.cap = 64;
    c->addrs.used = 0;
    c->addrs.slots = es_xcalloc(c->addrs.cap, sizeof *c->addrs.slots);
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
    if (c->ping_cursor == &s->all_node)
        c->ping_cursor = s->all_node.next;
    es_dlist_unlink(&c->all, &s->all_node);
    addr_add(&c->addrs, s->addr, -1);
    c->sessions--;
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connection closed");
    session_free(s);
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
    c->matcher.pair = hooks->chain_len[ES_HOOK_PAIR] ? pair_via_hooks : NULL;
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
    s->ping_due = 0;
    s->ping_sent_at = c->now();
    c->stats.pings_sent++;
}

/*
 * Keepalive. A client that has sent nothing at all (no message, no pong)
 * for ping_interval seconds gets a WebSocket ping; one that then stays
 * silent for another ping_interval is taken for dead and dropped. Busy
 * clients are never pinged. The sweep visits every connection once per
 * ping_interval, a slice per tick, so its cost does not grow with how often
 * it runs.
 */
static void keepalive(es_core *c, double now)
{
    double every = c->cfg->ping_interval;
    if (every <= 0 || c->sessions == 0) {
        c->last_sweep = now;
        return;
    }
    double share = (now - c->last_sweep) / every;
    if (share < 0)
        share = 0;
    size_t budget = (size_t)((double)c->sessions * share) + 1;
    c->last_sweep = now;
    if (budget > c->sessions)
        budget = c->sessions;
    while (budget-- > 0) {
        if (!c->ping_cursor)
            c->ping_cursor = c->all.head;
        es_session *s = SESSION_OF(c->ping_cursor, all_node);
        c->ping_cursor = c->ping_cursor->next;
        if (s->closing)
            continue;
        if (s->ping_sent_at > 0 && s->last_rx >= s->ping_sent_at)
            s->ping_sent_at = 0; /* answered (or other traffic came) */
        if (s->ping_sent_at > 0) {
            if (now - s->ping_sent_at >= every) {
                c->stats.ping_timeouts++;
                SLOG(EARSHOT_LOG_INFO, "session", s, "no answer to a ping in %.0f s: dropped", every);
                kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_COUNT, NULL, ES_CLOSE_GOING_AWAY);
            }
        } else if (now - s->last_rx >= every && !s->ping_due) {
            s->ping_due = 1;
            c->tx->want_write(c->tctx, s);
        }
    }
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
    keepalive(c, now);
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
