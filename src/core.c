#include "core.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"
#include "moderation.h"
#include "turn.h"
#include "util.h"

#define SESSION_OF(node, member) ES_CONTAINER_OF(node, es_session, member)

const char *const es_out_type_names[ES_OUT_COUNT] = {
    "NearbyPeers", "ReceiveOffer", "ReceiveAnswer", "ReceiveIceCandidate", "Error",
    "IceServers", "Session"};
const char *const es_error_kind_names[ES_ERR_COUNT] = {
    "bad_message",     "binary_frame",   "not_registered", "id_changed",   "id_in_use",
    "taken_over",      "join_refused",   "position_refused", "self_relay", "unknown_target",
    "relay_refused",   "frame_too_large", "timeout", "rate_limited", "invalid_resume_token", "reconnecting", "kicked"};
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
    c->wallclock = es_wallclock;
    es_grid_init(&c->grid, hooks->query_radius > 0 ? hooks->query_radius : 1);
    es_matcher_init(&c->matcher, &c->grid, NULL, NULL, NULL);
    es_matcher_use_hooks(&c->matcher, hooks);
    es_matcher_set_cap(&c->matcher, cfg->max_peers, cfg->swap_margin);
    es_buf_init(&c->out);
    es_buf_init(&c->peers);
    c->next_refresh = c->now() + cfg->refresh_interval;
    es_keepalive_init(&c->keepalive, c->now());
    es_addrcount_init(&c->addrs);
    c->token_nonce = 0;
    if (RAND_bytes(c->token_key, (int)sizeof c->token_key) != 1)
        ES_LOG(EARSHOT_LOG_ERROR, "session", "no random key for resume tokens: resuming is off");
    else
        c->token_key_ok = 1;
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
    if (!s->gone)
        es_delivery_discard(&c->delivery, s);
    es_sendq_clear(&s->held_q);
    free(s->join);
    free(s->edges);
    free(s);
}

static void pool_edges(es_core *c, es_session *s)
{
    for (uint32_t i = 0; i < s->nedges; i++) {
        es_edge *e = s->edges[i];
        if (e->a == s) {
            e->next_free = c->matcher.free_edges;
            c->matcher.free_edges = e;
        }
    }
}

void es_core_free(es_core *c)
{
    /* Hand every pair's edge (once, through its `a` end) to the matcher's
     * free list, which es_matcher_free() releases; then free the sessions:
     * those with a connection, and held ones whose connection is gone. */
    for (es_dnode *n = c->all.head; n; n = n->next)
        pool_edges(c, SESSION_OF(n, all_node));
    for (es_dnode *n = c->remote.head; n; n = n->next)
        pool_edges(c, SESSION_OF(n, all_node));
    for (es_dnode *n = c->held.head; n; n = n->next)
        if (SESSION_OF(n, held_node)->gone)
            pool_edges(c, SESSION_OF(n, held_node));
    es_dnode *n = c->all.head;
    while (n) {
        es_dnode *next = n->next;
        session_free(c, SESSION_OF(n, all_node));
        n = next;
    }
    n = c->remote.head;
    while (n) {
        es_dnode *next = n->next;
        session_free(c, SESSION_OF(n, all_node));
        n = next;
    }
    n = c->held.head;
    while (n) {
        es_dnode *next = n->next;
        if (SESSION_OF(n, held_node)->gone)
            session_free(c, SESSION_OF(n, held_node));
        n = next;
    }
    for (size_t i = 0; i < c->nhusks; i++)
        session_free(c, c->husks[i]);
    free(c->husks);
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
    if (s->closing || s->doomed || s->gone)
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
    if (s->session_owed) {
        /* once per connection, right after its first NearbyPeers */
        s->session_owed = 0;
        es_buf_reset(&c->peers);
        es_protocol_write_session(&c->peers, s->token, s->token_len, c->cfg->resume_grace);
        deliver(c, s, ES_OUT_SESSION, &c->peers);
    }
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
    s->closed_with = (uint16_t)code;
    switch (code) {
    case ES_CLOSE_NORMAL: c->stats.closes[0]++; break;
    case ES_CLOSE_GOING_AWAY: c->stats.closes[1]++; break;
    case ES_CLOSE_POLICY: c->stats.closes[2]++; break;
    case ES_CLOSE_TOO_BIG: c->stats.closes[3]++; break;
    case ES_CLOSE_INVALID_DATA: c->stats.closes[4]++; break;
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
    if (c->router.ops)
        c->router.ops->left(c->router.ud, s, why);
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

/* ---- holding a session for a resume (protocol v1.1) ------------------- */

/*
 * A session whose connection is lost without a goodbye is held when its
 * client asked to be resumable: it stays registered, in the grid and in
 * the matcher, so its peers see nothing, and its es_session lives on after
 * the transport forgot it (`gone`). A new connection that resumes it takes
 * its place (resume()); one that does not come within the grace lets it
 * leave as "closed" (the tick).
 */
static int holdable(const es_core *c, const es_session *s)
{
    return s->registered && s->resumable && !s->held && !s->goodbye &&
           c->cfg->resume_grace > 0 && c->token_key_ok;
}

static void hold(es_core *c, es_session *s)
{
    s->held = 1;
    s->held_until = c->now() + c->cfg->resume_grace;
    es_dlist_unlink(&c->idle, &s->idle_node); /* the grace runs, not the idle timeout */
    es_dlist_append(&c->held, &s->held_node);
    c->nheld++;
    SLOG(EARSHOT_LOG_INFO, "session", s, "connection lost: held %.1f s for a resume",
         c->cfg->resume_grace);
}

/* s is no longer held (resumed, expired, taken over or shut down); one whose
 * connection is gone is freed at the end of the flush (the matcher's dirty
 * list may still name it until then). */
static void unhold(es_core *c, es_session *s)
{
    if (!s->held)
        return;
    s->held = 0;
    es_dlist_unlink(&c->held, &s->held_node);
    c->nheld--;
    es_sendq_clear(&s->held_q);
    if (s->gone) {
        if (!s->remote) {
            es_addrcount_remove(&c->addrs, s->addr);
            c->nheld_gone--;
        }
        if (c->nhusks == c->husks_cap) {
            c->husks_cap = c->husks_cap ? c->husks_cap * 2 : 8;
            c->husks = es_xrealloc(c->husks, c->husks_cap * sizeof *c->husks);
        }
        c->husks[c->nhusks++] = s;
    }
}

/* The connection of s is lost (not a goodbye): hold s if it may be held,
 * else it leaves as "closed". Returns 1 when held. */
static int lose(es_core *c, es_session *s)
{
    if (holdable(c, s)) {
        hold(c, s);
        return 1;
    }
    unregister(c, s, EARSHOT_LEAVE_CLOSED);
    return 0;
}

/* Send the NearbyPeers every dirty client is owed, then drop the clients
 * that could not take them, which dirties their peers: repeat until calm.
 * Then free the held sessions that were resumed or let go. */
static void flush(es_core *c)
{
    for (;;) {
        size_t n;
        es_session **dirty = es_matcher_take_dirty(&c->matcher, &n);
        for (size_t i = 0; i < n; i++)
            if (dirty[i]->registered && !dirty[i]->closing)
                send_peers(c, dirty[i]);
        if (c->ndoomed == 0)
            break;
        size_t nd = c->ndoomed;
        c->ndoomed = 0;
        for (size_t i = 0; i < nd; i++) {
            es_session *s = c->doomed[i];
            size_t bytes = es_delivery_discard(&c->delivery, s);
            SLOG(EARSHOT_LOG_WARN, "session", s, "dropped: send queue full (%zu bytes)", bytes);
            /* It leaves, resumable or not: it is closed with 1008, which a
             * client takes as "registered afresh", and a client that does
             * not read is more likely stuck than cut off. */
            unregister(c, s, EARSHOT_LEAVE_CLOSED);
            s->doomed = 0;
            close_session(c, s, ES_CLOSE_POLICY);
        }
    }
    for (size_t i = 0; i < c->nhusks; i++)
        session_free(c, c->husks[i]);
    c->nhusks = 0;
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

/* A fresh resume token for s, owed to it in a Session after its next
 * NearbyPeers: HMAC-SHA256 under the process's random key over the
 * client_id and a number never used before, in base64url. Issuing one
 * makes the previous one worthless. */
static void issue_token(es_core *c, es_session *s)
{
    unsigned char msg[ES_ID_MAX + 1 + 8], mac[32];
    memcpy(msg, s->id, s->id_len);
    msg[s->id_len] = 0;
    uint64_t nonce = ++c->token_nonce;
    for (int i = 0; i < 8; i++)
        msg[s->id_len + 1 + i] = (unsigned char)(nonce >> (56 - 8 * i));
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), c->token_key, (int)sizeof c->token_key, msg, s->id_len + 9, mac, &maclen);
    /* base64url without padding: libcrypto's base64, two letters swapped */
    unsigned char b64[4 * ((sizeof mac + 2) / 3) + 1];
    int n = EVP_EncodeBlock(b64, mac, (int)maclen);
    size_t o = 0;
    for (int i = 0; i < n && b64[i] != '=' && o < sizeof s->token - 1; i++)
        s->token[o++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    s->token[o] = '\0';
    s->token_len = o;
    s->session_owed = 1;
}

/* Does token[0..len) resume holder now? In constant time over the token. */
static int token_valid(const es_core *c, const es_session *holder, const char *token, size_t len)
{
    if (!holder || !holder->resumable || !holder->registered || c->cfg->resume_grace <= 0 ||
        holder->token_len == 0 || len != holder->token_len)
        return 0;
    if (holder->held && c->now() >= holder->held_until)
        return 0; /* expired; the tick has not let it go yet */
    return CRYPTO_memcmp(holder->token, token, len) == 0;
}

/*
 * s (not registered) resumes holder h with h's token: s takes h's place
 * in the registry, the grid and the matcher's pairs without anyone being
 * told, then moves to the position it reports, gets its NearbyPeers, a new
 * Session and the relays kept for h. A held h whose connection is gone is
 * freed; a live-looking one is closed with 1000 and no Error.
 */
static void resume(es_core *c, es_session *s, const es_msg *m)
{
    char reason[ES_ERROR_MAX];
    es_session *h = es_registry_find(&c->registry, m->client_id, m->client_id_len);
    if (!token_valid(c, h, m->resume_token, m->resume_token_len)) {
        SLOG(EARSHOT_LOG_INFO, "session", s, "resume as %s refused: invalid token", m->client_id);
        send_error(c, s, ES_ERR_RESUME_TOKEN, "invalid resume token");
        return;
    }
    earshot_position pos = m->pos;
    earshot_client pending = {.client_id = m->client_id, .address = s->addr, .pos = h->view.pos};
    if (!es_hooks_position(c->hooks, &pending, &pos, reason)) {
        send_error(c, s, ES_ERR_POSITION_REFUSED, reason);
        return;
    }
    es_session *displaced = NULL;
    if (es_registry_claim(&c->registry, s, m->client_id, m->client_id_len, ES_TAKEOVER_ALWAYS,
                          &displaced) != ES_CLAIM_OK || displaced != h) {
        /* a registry that would not let the token's holder go: change nothing */
        if (displaced == NULL)
            es_registry_release(&c->registry, s);
        send_error(c, s, ES_ERR_RESUME_TOKEN, "invalid resume token");
        return;
    }
    /* s takes h's place: the grid cell, and h's end of every pair */
    s->view.pos = h->view.pos;
    es_grid_remove(&c->grid, h);
    es_grid_insert(&c->grid, s);
    s->edges = h->edges, s->nedges = h->nedges, s->edges_cap = h->edges_cap;
    h->edges = NULL, h->nedges = h->edges_cap = 0;
    for (uint32_t i = 0; i < s->nedges; i++) {
        es_edge *e = s->edges[i];
        if (e->a == h)
            e->a = s;
        else
            e->b = s;
    }
    h->registered = 0;
    s->registered = 1;
    s->resumable = 1;
    es_sendq kept = h->held_q;
    es_sendq_init(&h->held_q);
    int was_held = h->held;
    if (was_held)
        unhold(c, h);
    else
        close_session(c, h, ES_CLOSE_NORMAL);
    free(s->join);
    s->join = NULL;
    es_dlist_unlink(&c->pend, &s->pend_node);
    c->stats.resumes++;
    touch(c, s);
    SLOG(EARSHOT_LOG_INFO, "session", s, "resumed (%s, %zu relays kept)",
         was_held ? "held" : "replacing a live connection", kept.count);
    if (!same_position(&pos, &s->view.pos)) {
        s->view.pos = pos;
        es_grid_update(&c->grid, s);
        es_matcher_update(&c->matcher, s);
    }
    issue_token(c, s);
    es_matcher_mark_dirty(&c->matcher, s);
    if (c->router.ops)
        c->router.ops->placed(c->router.ud, s);
    /* the relays kept for it, after its NearbyPeers and Session */
    for (es_qmsg *q = es_sendq_peek(&kept); q; q = q->next) {
        if (s->dirty == ES_DIRTY_OWED)
            send_peers(c, s);
        if (s->closing || s->doomed)
            break;
        if (es_deliver(&c->delivery, s, es_qmsg_payload(q), q->len) != 0) {
            c->stats.sendq_overflows++;
            doom(c, s);
        }
    }
    es_sendq_clear(&kept);
}

static void handle_register(es_core *c, es_session *s, const es_msg *m)
{
    char reason[ES_ERROR_MAX];
    if (c->mod && c->mod->nbans &&
        es_moderation_banned(c->mod, m->client_id, m->client_id_len, s->addr, c->wallclock(),
                             reason, ES_MOD_TEXT_MAX + 1)) {
        char text[ES_MOD_TEXT_MAX + 16];
        snprintf(text, sizeof text, "banned%s%.*s", reason[0] ? ": " : "", ES_MOD_TEXT_MAX,
                 reason);
        SLOG(EARSHOT_LOG_INFO, "session", s, "join as %s refused: banned", m->client_id);
        send_error(c, s, ES_ERR_KICKED, text);
        close_session(c, s, ES_CLOSE_BANNED);
        return;
    }
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
        .resume = m->resume_token != NULL,
    };
    /* A client re-registering on this node was let in by another node's
     * join chain already; it keeps its resume token. */
    int reattach = s->reattach;
    s->reattach = 0;
    if (!reattach && !es_hooks_join(c->hooks, &j, reason)) {
        SLOG(EARSHOT_LOG_INFO, "session", s, "join as %s refused: %s", m->client_id, reason);
        send_error(c, s, ES_ERR_JOIN_REFUSED, reason);
        return;
    }
    if (m->resume_token && !reattach) {
        resume(c, s, m);
        return;
    }
    /* The policy first, so that a refused id is reported before a refused
     * position; the claim below is what decides. */
    es_takeover policy = reattach ? ES_TAKEOVER_ALWAYS : c->cfg->takeover;
    es_session *holder = es_registry_find(&c->registry, m->client_id, m->client_id_len);
    if (holder && !es_takeover_allows(policy, holder, s)) {
        id_in_use(c, s, m->client_id);
        return;
    }
    earshot_position pos = m->pos;
    earshot_client pending = {.client_id = m->client_id, .address = s->addr, .pos = m->pos};
    if (!es_hooks_position(c->hooks, &pending, &pos, reason)) {
        send_error(c, s, ES_ERR_POSITION_REFUSED, reason);
        return;
    }
    if (es_registry_claim(&c->registry, s, m->client_id, m->client_id_len, policy,
                          &holder) != ES_CLAIM_OK) {
        id_in_use(c, s, m->client_id);
        return;
    }
    if (holder) {
        char text[ES_ERROR_MAX];
        snprintf(text, sizeof text, "client_id %s was taken over by another connection",
                 m->client_id);
        c->stats.takeovers++;
        if (holder->held) {
            unregister(c, holder, EARSHOT_LEAVE_TAKEOVER);
            unhold(c, holder);
        } else {
            kick(c, holder, EARSHOT_LEAVE_TAKEOVER, ES_ERR_TAKEN_OVER, text, ES_CLOSE_POLICY);
        }
    }
    s->view.pos = pos;
    s->registered = 1;
    if (reattach) {
        s->resumable = s->resumable && s->token_len > 0 && c->cfg->resume_grace > 0;
    } else if (m->resumable && c->cfg->resume_grace > 0 && c->token_key_ok) {
        s->resumable = 1;
        issue_token(c, s);
    }
    free(s->join);
    s->join = NULL;
    es_dlist_unlink(&c->pend, &s->pend_node);
    es_grid_insert(&c->grid, s);
    es_matcher_update(&c->matcher, s);
    es_matcher_mark_dirty(&c->matcher, s); /* the first UpdatePosition is always answered */
    c->stats.registrations++;
    touch(c, s);
    if (c->router.ops)
        c->router.ops->placed(c->router.ud, s);
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
    if (c->router.ops)
        c->router.ops->placed(c->router.ud, s);
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "at game %d map %d (%d, %d) channel %d", pos.game_id,
         pos.map_id, pos.x, pos.y, pos.channel);
}

/* ---- relays ------------------------------------------------------------- */

static int relay_kind(es_msg_type type)
{
    return type == ES_MSG_SEND_OFFER    ? EARSHOT_RELAY_OFFER
           : type == ES_MSG_SEND_ANSWER ? EARSHOT_RELAY_ANSWER
                                        : EARSHOT_RELAY_ICE_CANDIDATE;
}

/*
 * A relay of type from sender to t (registered here): the relay chain, then
 * the delivery, or t's held queue. Counts the outcome. 0 = delivered (or
 * kept); otherwise the es_error_kind the sender should hear, text saying
 * why.
 */
static int relay_to(es_core *c, const earshot_client *sender, size_t sender_len, int matched,
                    es_session *t, es_msg_type type, const char *payload, size_t payload_len,
                    char text[ES_ERROR_MAX])
{
    int kind = relay_kind(type);
    uint64_t *outcome = c->stats.relays[kind];
    earshot_relay r = {
        .kind = (earshot_relay_kind)kind,
        .sender = sender,
        .target = &t->view,
        .payload = payload,
        .payload_len = payload_len,
        .matched = matched,
    };
    if (!es_hooks_relay(c->hooks, &r, text)) {
        outcome[ES_RELAY_REFUSED]++;
        ES_LOG(EARSHOT_LOG_DEBUG, "relay", "%s from %s to %s refused: %s", es_msg_type_name(type),
               sender->client_id, t->id, text);
        return ES_ERR_RELAY_REFUSED;
    }
    es_buf_reset(&c->out);
    es_protocol_write_relay(&c->out, type, sender->client_id, sender_len, payload, payload_len);
    if (t->held) {
        /* kept for its resume, within the bounds; past them, as for an
         * unknown target but saying why. The bytes kept never exceed half
         * the send queue, so that replaying them on the new connection
         * cannot overflow it. */
        size_t keep = c->cfg->resume_queue_bytes;
        if (keep > c->cfg->send_queue_bytes / 2)
            keep = c->cfg->send_queue_bytes / 2;
        if (t->held_q.count >= c->cfg->resume_queue_messages ||
            es_sendq_push(&t->held_q, es_buf_data(&c->out), c->out.len, keep) != 0) {
            outcome[ES_RELAY_UNKNOWN_TARGET]++;
            snprintf(text, ES_ERROR_MAX, "Client %s is reconnecting", t->id);
            return ES_ERR_RECONNECTING;
        }
        outcome[ES_RELAY_DELIVERED]++;
        c->stats.resume_queued_relays++;
        c->stats.messages_out[ES_OUT_RECEIVE_OFFER + kind]++;
        return 0;
    }
    outcome[ES_RELAY_DELIVERED]++;
    send_out(c, t, (es_out_type)(ES_OUT_RECEIVE_OFFER + kind), &c->out);
    return 0;
}

static void handle_relay(es_core *c, es_session *s, const es_msg *m)
{
    int kind = relay_kind(m->type);
    int is_ice = kind == EARSHOT_RELAY_ICE_CANDIDATE;
    uint64_t *outcome = c->stats.relays[kind];
    char text[ES_ERROR_MAX];
    if (m->target_id_len == s->id_len && memcmp(m->target_id, s->id, s->id_len) == 0) {
        outcome[ES_RELAY_SELF]++;
        send_error(c, s, ES_ERR_SELF_RELAY, "Cannot send to yourself");
        return;
    }
    es_session *t = es_registry_find(&c->registry, m->target_id, m->target_id_len);
    int muted = es_moderation_muted(c->mod, s->id, s->id_len);
    if (!t && !(muted && c->router.ops)) {
        /* with several nodes, the target may be a client another node serves */
        if (c->router.ops && c->router.ops->relay && c->router.ops->relay(c->router.ud, s, m))
            return;
        outcome[ES_RELAY_UNKNOWN_TARGET]++;
        if (!is_ice) {
            snprintf(text, sizeof text, "Client %s not found", m->target_id);
            send_error(c, s, ES_ERR_UNKNOWN_TARGET, text);
        }
        return;
    }
    int err;
    if (muted) {
        snprintf(text, sizeof text, "relay to %s not allowed: muted", m->target_id);
        outcome[ES_RELAY_REFUSED]++;
        err = ES_ERR_RELAY_REFUSED;
    } else {
        err = relay_to(c, &s->view, s->id_len, es_matcher_is_matched(s, t), t, m->type,
                       m->payload, m->payload_len, text);
    }
    if (err == ES_ERR_RELAY_REFUSED)
        s->relays_refused++;
    if (err && !is_ice)
        send_error(c, s, (es_error_kind)err, text);
}

int es_core_relay_from(es_core *c, const earshot_client *sender, es_msg_type type,
                       const char *target, size_t target_len, const char *payload,
                       size_t payload_len, char text[ES_ERROR_MAX])
{
    es_session *t = es_registry_find(&c->registry, target, target_len);
    int err;
    if (!t) {
        c->stats.relays[relay_kind(type)][ES_RELAY_UNKNOWN_TARGET]++;
        snprintf(text, ES_ERROR_MAX, "Client %.*s not found", (int)target_len, target);
        err = ES_ERR_UNKNOWN_TARGET;
    } else {
        err = relay_to(c, sender, strlen(sender->client_id), 0, t, type, payload, payload_len,
                       text);
    }
    settle(c);
    return err;
}

void es_core_relay_failed(es_core *c, es_session *s, es_msg_type type, int err, const char *text,
                          int counted)
{
    if (!counted && err == ES_ERR_UNKNOWN_TARGET)
        c->stats.relays[relay_kind(type)][ES_RELAY_UNKNOWN_TARGET]++;
    if (err == ES_ERR_RELAY_REFUSED)
        s->relays_refused++;
    if (s->closing || relay_kind(type) == EARSHOT_RELAY_ICE_CANDIDATE || err <= 0 ||
        err >= ES_ERR_COUNT)
        return;
    send_error(c, s, (es_error_kind)err, text);
    settle(c);
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

static void frame(es_core *c, es_session *s, const char *data, size_t len, int binary);

void es_core_frame(es_core *c, es_session *s, const char *data, size_t len, int binary)
{
    if (s->closing)
        return;
    if (!es_rate_allow(&s->rate, c->now(), c->cfg->message_rate, c->cfg->message_burst)) {
        rate_limited(c, s);
        return;
    }
    frame(c, s, data, len, binary);
}

void es_core_replay(es_core *c, es_session *s, const char *data, size_t len)
{
    if (!s->closing)
        frame(c, s, data, len, 0);
}

void es_core_close(es_core *c, es_session *s, int code)
{
    if (s->closing)
        return;
    unregister(c, s, EARSHOT_LEAVE_CLOSED);
    close_session(c, s, code);
    settle(c);
}

static void frame(es_core *c, es_session *s, const char *data, size_t len, int binary)
{
    if (binary) {
        send_error(c, s, ES_ERR_BINARY, "Binary frames are not supported");
        settle(c);
        return;
    }
    if (s->fwd) {
        c->router.ops->forward(c->router.ud, s, data, len);
        return;
    }
    es_msg m;
    char err[ES_ERROR_MAX];
    if (es_protocol_parse(data, len, &m, err) != 0) {
        SLOG(EARSHOT_LOG_DEBUG, "protocol", s, "bad message: %s", err);
        /* The parser takes only UTF-8, so a valid message never pays for
         * this check. A text frame that is not UTF-8 closes the connection
         * with 1007 (RFC 6455 8.1), after the parser's Error. */
        if (!es_utf8_valid(data, len)) {
            kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_BAD_MESSAGE, err, ES_CLOSE_INVALID_DATA);
            settle(c);
            return;
        }
        send_error(c, s, ES_ERR_BAD_MESSAGE, err);
        settle(c);
        return;
    }
    c->stats.messages_in[m.type]++;
    s->msgs_in++;
    switch (m.type) {
    case ES_MSG_DISCONNECT:
        unregister(c, s, EARSHOT_LEAVE_DISCONNECT);
        close_session(c, s, ES_CLOSE_NORMAL);
        break;
    case ES_MSG_UPDATE_POSITION:
        if (c->router.ops && !s->remote && c->router.ops->route(c->router.ud, s, &m, data, len))
            break;
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
            if (s->dirty == ES_DIRTY_OWED)
                send_peers(c, s);
            s->replying = 1; /* several nodes: an answer is never held back */
            deliver(c, s, ES_OUT_NEARBY_PEERS, &c->out);
            s->replying = 0;
        } else if (m.type == ES_MSG_REQUEST_ICE_SERVERS) {
            es_buf_reset(&c->out);
            es_turn_write_ice_servers(&c->out, c->cfg, s->id, s->id_len,
                                      (long long)c->wallclock());
            send_out(c, s, ES_OUT_ICE_SERVERS, &c->out);
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

void es_core_goodbye(es_core *c, es_session *s)
{
    s->goodbye = 1;
    if (s->held && !s->gone) {
        unregister(c, s, EARSHOT_LEAVE_CLOSED);
        unhold(c, s);
        settle(c);
    }
}

void es_core_closed(es_core *c, es_session *s)
{
    /* Lost (a reset, a ping unanswered, this node going away) rather than
     * ended (a goodbye, a kick): its session may be held (the router's
     * business for a client another node serves). */
    int hold = !s->goodbye && (!s->closing || s->closed_with == ES_CLOSE_GOING_AWAY);
    if (!s->held && !s->closing)
        lose(c, s); /* held when resumable and no goodbye, else it leaves */
    else if (!s->held)
        unregister(c, s, EARSHOT_LEAVE_CLOSED);
    s->closing = 1;
    for (size_t i = 0; i < c->ndoomed; i++) {
        if (c->doomed[i] == s) {
            c->doomed[i] = c->doomed[--c->ndoomed];
            break;
        }
    }
    flush(c);
    es_dlist_unlink(&c->idle, &s->idle_node);
    es_dlist_unlink(&c->pend, &s->pend_node);
    if (s->remote) {
        es_dlist_unlink(&c->remote, &s->all_node);
        c->nremote--;
    } else {
        es_keepalive_forget(&c->keepalive, s);
        es_dlist_unlink(&c->all, &s->all_node);
        c->sessions--;
    }
    if (s->held) {
        /* the client lives on without a connection until it resumes, and
         * still counts toward the connection limits (unhold) */
        es_delivery_discard(&c->delivery, s);
        s->conn = NULL;
        s->gone = 1;
        if (!s->remote)
            c->nheld_gone++;
        SLOG(EARSHOT_LOG_DEBUG, "session", s, "connection closed; session held");
        if (s->cl && c->router.ops)
            c->router.ops->gone(c->router.ud, s, hold);
        return;
    }
    if (!s->remote)
        es_addrcount_remove(&c->addrs, s->addr);
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connection closed");
    if (s->cl && c->router.ops)
        c->router.ops->gone(c->router.ud, s, hold);
    session_free(c, s);
    if (c->sessions == 0 && c->nheld == 0 && c->nremote == 0)
        compact(c);
}

int es_core_kick(es_core *c, es_session *s, int code, const char *text)
{
    if (!s->registered)
        return -1;
    SLOG(EARSHOT_LOG_INFO, "session", s, "kicked (%d): %s", code, text);
    if (s->held) {
        unregister(c, s, EARSHOT_LEAVE_CLOSED);
        unhold(c, s);
    } else {
        kick(c, s, EARSHOT_LEAVE_CLOSED, ES_ERR_KICKED, text, code);
    }
    flush(c);
    return 0;
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
    es_matcher_set_cap(&c->matcher, cfg->max_peers, cfg->swap_margin);
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
    /* One node: nobody else can hold a session, so held ones leave too. */
    while (c->held.head) {
        es_session *s = SESSION_OF(c->held.head, held_node);
        unregister(c, s, EARSHOT_LEAVE_SHUTDOWN);
        unhold(c, s);
    }
    for (es_dnode *n = c->all.head; n; n = n->next) {
        es_session *s = SESSION_OF(n, all_node);
        unregister(c, s, EARSHOT_LEAVE_SHUTDOWN);
        close_session(c, s, ES_CLOSE_GOING_AWAY);
    }
    for (es_dnode *n = c->remote.head; n; n = n->next) {
        es_session *s = SESSION_OF(n, all_node);
        unregister(c, s, EARSHOT_LEAVE_SHUTDOWN);
        s->closing = 1; /* its own node closes it, or takes it elsewhere */
    }
    flush(c);
}

/* ---- several nodes ------------------------------------------------------ */

es_session *es_core_open_remote(es_core *c, void *conn, const char *address, es_join_info *join)
{
    es_session *s = es_xcalloc(1, sizeof *s);
    s->conn = conn;
    s->join = join;
    s->remote = 1;
    s->serial = ++c->next_serial;
    snprintf(s->addr, sizeof s->addr, "%s", address ? address : "");
    s->view.client_id = s->id;
    s->view.address = s->addr;
    s->cell = ES_GRID_NO_CELL;
    s->last_active = s->opened_at = s->last_rx = c->now();
    es_rate_init(&s->rate, s->opened_at, c->cfg->message_burst);
    es_dlist_append(&c->remote, &s->all_node);
    es_dlist_append(&c->idle, &s->idle_node);
    es_dlist_append(&c->pend, &s->pend_node);
    c->nremote++;
    SLOG(EARSHOT_LOG_DEBUG, "session", s, "connected through another node");
    return s;
}

void es_core_forwarding(es_core *c, es_session *s)
{
    s->fwd = 1;
    es_dlist_unlink(&c->idle, &s->idle_node); /* its timeouts are its server's */
    es_dlist_unlink(&c->pend, &s->pend_node);
}

void es_core_unforward(es_core *c, es_session *s)
{
    if (!s->fwd)
        return;
    s->fwd = 0;
    s->last_active = c->now();
    es_dlist_append(&c->idle, &s->idle_node);
    if (!s->registered)
        es_dlist_append(&c->pend, &s->pend_node);
}

void es_core_detach(es_core *c, es_session *s)
{
    if (s->held)
        unhold(c, s);
    unregister(c, s, EARSHOT_LEAVE_MOVED);
    if (s->remote)
        s->closing = 1;
}

void es_core_each_registered(es_core *c, void (*fn)(es_session *s, void *ud), void *ud)
{
    es_registry_each(&c->registry, fn, ud);
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
    lose(c, s);
    close_session(c, s, ES_CLOSE_GOING_AWAY);
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
    int let_go = 0;
    for (es_dnode *n = c->held.head; n;) {
        es_session *s = SESSION_OF(n, held_node);
        n = n->next;
        if (now < s->held_until)
            continue;
        let_go = 1;
        c->stats.resume_holds_expired++;
        SLOG(EARSHOT_LOG_INFO, "session", s, "not resumed within %.1f s", c->cfg->resume_grace);
        unregister(c, s, EARSHOT_LEAVE_CLOSED);
        unhold(c, s);
    }
    double every = c->cfg->refresh_interval;
    if (every > 0 && now >= c->next_refresh) {
        es_registry_each(&c->registry, send_peers_each, c);
        c->next_refresh = now + every;
    }
    es_hooks_tick(c->hooks, now); /* plugin and script timers */
    /* A timer can free memory while nobody is connected (relay_guard's
     * sweep of parted pairs, after the last client left and the pools
     * were dropped): an empty server gives freed heap back every 5 s. */
    if (c->sessions == 0 && c->nheld == 0 && now >= c->next_trim) {
        c->next_trim = now + 5.0;
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
    }
    flush(c);
    if (let_go && c->sessions == 0 && c->nheld == 0 && c->nremote == 0)
        compact(c); /* the last held session was the last client */
}
