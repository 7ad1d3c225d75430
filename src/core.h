/*
 * core - what earshot does with each message: sessions, registration,
 * takeover, matching, relays, timeouts. It knows nothing of sockets: the
 * server feeds it complete frames and drains each session's send queue when
 * told to (es_transport.want_write). That keeps the whole protocol testable
 * and fuzzable in-process.
 *
 * Every entry point handles one event completely and then flushes: each
 * client whose matched set changed gets exactly one NearbyPeers, and
 * clients whose send queue overflowed are dropped (and their peers told).
 */
#ifndef EARSHOT_CORE_H
#define EARSHOT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "grid.h"
#include "hooks.h"
#include "matcher.h"
#include "registry.h"
#include "session.h"

/* WebSocket close codes the core uses. */
#define ES_CLOSE_NORMAL 1000
#define ES_CLOSE_GOING_AWAY 1001
#define ES_CLOSE_POLICY 1008
#define ES_CLOSE_TOO_BIG 1009

typedef struct es_transport {
    /* s has output queued, or s->closing is set and the queue is drained:
     * arrange for the server to write (and then close). */
    void (*want_write)(void *tctx, es_session *s);
} es_transport;

typedef struct es_core_stats {
    uint64_t connections_opened;
    uint64_t messages_in[ES_MSG_TYPE_COUNT];
    uint64_t bad_messages;      /* frames answered with a parse Error */
    uint64_t errors_sent;       /* Error messages queued */
    uint64_t nearby_sent;       /* NearbyPeers messages queued */
    uint64_t relays_delivered;
    uint64_t relays_refused;    /* by a relay hook */
    uint64_t relays_unknown;    /* target not registered */
    uint64_t registrations;
    uint64_t takeovers;
    uint64_t timeouts;
    uint64_t sendq_overflows;   /* clients dropped for not reading */
} es_core_stats;

typedef struct es_core {
    const es_config *cfg;
    es_hooks *hooks;
    es_registry registry;
    es_grid grid;
    es_matcher matcher;
    const es_transport *tx;
    void *tctx;
    double (*now)(void);

    es_buf out; /* scratch: the message being built */
    es_session *idle_head, *idle_tail;
    double next_refresh;
    uint64_t next_serial;
    size_t sessions; /* open connections */
    es_session **doomed;
    size_t ndoomed, doomed_cap;
    es_core_stats stats;
} es_core;

/* cfg and hooks must outlive the core. now may be NULL (es_now). */
void es_core_init(es_core *c, const es_config *cfg, es_hooks *hooks, const es_transport *tx,
                  void *tctx, double (*now)(void));
/* Frees every session still open (without notifying anyone). */
void es_core_free(es_core *c);

/* A WebSocket connection was established. Takes ownership of join (may be
 * NULL). conn is the transport's handle, stored in s->conn. */
es_session *es_core_open(es_core *c, void *conn, const char *address, es_join_info *join);
/* One complete message arrived on s. */
void es_core_frame(es_core *c, es_session *s, const char *data, size_t len, int binary);
/* s sent a frame larger than cfg->max_frame_bytes. */
void es_core_frame_too_large(es_core *c, es_session *s);
/* The connection is gone: unregister s, tell its peers, free s. */
void es_core_closed(es_core *c, es_session *s);
/* Timeouts and periodic refresh; call a few times a second. */
void es_core_tick(es_core *c);

/* Registered client count. */
static inline size_t es_core_clients(const es_core *c) { return c->registry.count; }

#endif
