/*
 * core - what earshot does with each message: sessions, registration,
 * takeover, matching, relays, timeouts. It knows nothing of sockets or of
 * where a client is served: the transport feeds it complete frames, it
 * asks the registry (registry.h) who holds an id, and it hands every
 * message, ping and close to the delivery (delivery.h). That keeps the
 * whole protocol testable and fuzzable in-process, and lets another
 * registry or delivery sit behind the same calls.
 *
 * Every entry point handles one event completely and then flushes: each
 * client whose matched set changed gets exactly one NearbyPeers, and
 * clients whose send queue overflowed are dropped (and their peers told).
 * A server with a hook at the end of each event-loop iteration may set
 * `batch` and call es_core_flush() there instead: client messages then
 * leave their NearbyPeers for that flush, so a client whose set changed
 * several times in one iteration gets one NearbyPeers, and the
 * notifications go out together. Relays and Error replies are not held.
 *
 * Resuming (protocol v1.1): a client that opted in keeps its session when
 * its connection is lost without a goodbye (es_core_goodbye says there was
 * one): the session stays registered and matched, held for
 * session.resume_grace seconds, and a new connection presenting its token
 * takes its place without its peers noticing.
 */
#ifndef EARSHOT_CORE_H
#define EARSHOT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "addrcount.h"
#include "buf.h"
#include "config.h"
#include "delivery.h"
#include "grid.h"
#include "hooks.h"
#include "keepalive.h"
#include "matcher.h"
#include "registry.h"
#include "session.h"

/* Server messages, for counting. */
typedef enum es_out_type {
    ES_OUT_NEARBY_PEERS = 0,
    ES_OUT_RECEIVE_OFFER,
    ES_OUT_RECEIVE_ANSWER,
    ES_OUT_RECEIVE_ICE_CANDIDATE,
    ES_OUT_ERROR,
    ES_OUT_ICE_SERVERS,
    ES_OUT_SESSION,
    ES_OUT_COUNT
} es_out_type;
extern const char *const es_out_type_names[ES_OUT_COUNT];

/* Why an Error was sent. */
typedef enum es_error_kind {
    ES_ERR_BAD_MESSAGE = 0, /* not JSON, not a known message, bad field */
    ES_ERR_BINARY,
    ES_ERR_NOT_REGISTERED,
    ES_ERR_ID_CHANGED,
    ES_ERR_ID_IN_USE,
    ES_ERR_TAKEN_OVER,
    ES_ERR_JOIN_REFUSED,
    ES_ERR_POSITION_REFUSED,
    ES_ERR_SELF_RELAY,
    ES_ERR_UNKNOWN_TARGET,
    ES_ERR_RELAY_REFUSED,
    ES_ERR_FRAME_TOO_LARGE,
    ES_ERR_TIMEOUT,
    ES_ERR_RATE_LIMITED,
    ES_ERR_RESUME_TOKEN,   /* a resume with a wrong or expired token */
    ES_ERR_RECONNECTING,   /* a relay past a held session's queue */
    ES_ERR_COUNT
} es_error_kind;
extern const char *const es_error_kind_names[ES_ERR_COUNT];

/* What became of a relay. */
typedef enum es_relay_outcome {
    ES_RELAY_DELIVERED = 0,
    ES_RELAY_REFUSED,        /* by a relay hook */
    ES_RELAY_UNKNOWN_TARGET, /* target not registered */
    ES_RELAY_SELF,           /* target was the sender */
    ES_RELAY_OUTCOME_COUNT
} es_relay_outcome;
extern const char *const es_relay_outcome_names[ES_RELAY_OUTCOME_COUNT];

typedef struct es_core_stats {
    uint64_t connections_opened;
    uint64_t messages_in[ES_MSG_TYPE_COUNT];
    uint64_t messages_out[ES_OUT_COUNT];
    uint64_t errors[ES_ERR_COUNT];    /* Error messages sent, by cause */
    uint64_t relays[3][ES_RELAY_OUTCOME_COUNT];
    uint64_t registrations;
    uint64_t takeovers;
    uint64_t timeouts;                /* idle timeouts */
    uint64_t first_message_timeouts;  /* never sent an UpdatePosition in time */
    uint64_t rate_limited;            /* messages dropped by the rate limit */
    uint64_t pings_sent;
    uint64_t ping_timeouts;           /* connections that stopped answering */
    uint64_t sendq_overflows;         /* clients dropped for not reading */
    uint64_t closes[5];               /* by code: 1000, 1001, 1008, 1009, 1007 */
    uint64_t resumes;                 /* sessions resumed with their token */
    uint64_t resume_holds_expired;    /* held sessions not resumed within the grace */
    uint64_t resume_queued_relays;    /* relays kept for a held session */
} es_core_stats;

typedef struct es_core {
    const es_config *cfg;
    es_hooks *hooks;
    es_registry registry;
    es_delivery delivery;
    int owns_seams; /* registry and delivery are the core's to destroy */
    es_grid grid;
    es_matcher matcher;
    double (*now)(void);
    double (*wallclock)(void); /* Unix time: TURN credentials' expiry */

    es_buf out;   /* scratch: the message being built */
    es_buf peers; /* scratch: a NearbyPeers sent as owed (apart from out) */
    es_dlist all;  /* every open connection */
    es_dlist idle; /* by last activity, oldest first */
    es_dlist pend; /* not registered yet, by connect time, oldest first */
    es_dlist held; /* sessions held for a resume, oldest first */
    size_t nheld;
    size_t nheld_gone; /* of those, whose connection is gone: they still count
                        * toward max_connections and their address's limit */
    es_session **husks; /* resumed held sessions, freed at the end of the flush */
    size_t nhusks, husks_cap;
    unsigned char token_key[32]; /* resume tokens: HMAC-SHA256 key, random per process */
    int token_key_ok;
    uint64_t token_nonce;
    es_keepalive keepalive;
    es_addrcount addrs; /* open connections per address */
    double next_refresh;
    double next_trim;     /* when an empty server next gives freed heap back */
    uint64_t next_serial;
    size_t sessions; /* open connections */
    es_session **doomed;
    size_t ndoomed, doomed_cap;
    int batch; /* client messages leave the flush to es_core_flush() */
    es_core_stats stats;
} es_core;

/*
 * A core on the given registry and delivery (the caller keeps and frees
 * them). cfg and hooks must outlive the core. now may be NULL (es_now).
 */
void es_core_init_with(es_core *c, const es_config *cfg, es_hooks *hooks, es_registry registry,
                       es_delivery delivery, double (*now)(void));
/* A core of this process alone: the local registry, and the local
 * delivery over transport tx (both freed by es_core_free). */
void es_core_init(es_core *c, const es_config *cfg, es_hooks *hooks, const es_transport *tx,
                  void *tctx, double (*now)(void));
/* Frees every session still open (without notifying anyone). */
void es_core_free(es_core *c);

/* A WebSocket connection was established. Takes ownership of join (may be
 * NULL). conn is the transport's handle, stored in s->conn. */
es_session *es_core_open(es_core *c, void *conn, const char *address, es_join_info *join);
/* One complete message arrived on s. */
void es_core_frame(es_core *c, es_session *s, const char *data, size_t len, int binary);
/* Any frame (a pong included) arrived on s: it is alive. */
static inline void es_core_heard(es_core *c, es_session *s) { s->last_rx = c->now(); }
/* The transport wrote a ping the delivery was asked for. */
void es_core_ping_sent(es_core *c, es_session *s);

/* Send the NearbyPeers owed and drop the clients that overflowed. Only
 * needed when c->batch is set; every other entry point flushes itself. */
void es_core_flush(es_core *c);

/* s sent a frame larger than cfg->max_frame_bytes. */
void es_core_frame_too_large(es_core *c, es_session *s);
/* The client sent a close frame (a clean goodbye): when its connection
 * closes, its session ends even if it could have been resumed; one held
 * already (a ping went unanswered) ends now. */
void es_core_goodbye(es_core *c, es_session *s);
/* The connection is gone: unregister s, tell its peers, free s. A
 * resumable client whose connection was lost without a goodbye is held
 * instead (protocol v1.1): it stays registered for session.resume_grace
 * seconds and s lives on in the core; the transport forgets s either way. */
void es_core_closed(es_core *c, es_session *s);
/* Timeouts and periodic refresh; call a few times a second. */
void es_core_tick(es_core *c);

/*
 * Switch to a new config and hook chains (a reload). Every connection and
 * registration stays; the grid is rebuilt if the query radius changed, and
 * every client's matches are recomputed once under the new rules, so
 * clients whose lists change get a NearbyPeers. The old cfg and hooks are
 * no longer used when this returns.
 */
void es_core_reconfigure(es_core *c, const es_config *cfg, es_hooks *hooks);

/* The server is stopping: every client leaves (reason shutdown) and every
 * connection is closed with 1001 once its queue is drained. */
void es_core_shutdown(es_core *c);

/* What server.max_connections counts: open connections, and held sessions
 * whose connection is gone (a resume will bring one back). */
static inline size_t es_core_occupancy(const es_core *c) { return c->sessions + c->nheld_gone; }

/* Open connections from this address (for the per-address limit), and
 * held sessions from it whose connection is gone. */
size_t es_core_address_connections(const es_core *c, const char *address);

/* Registered client count. */
static inline size_t es_core_clients(const es_core *c) { return es_registry_count(&c->registry); }

#endif
