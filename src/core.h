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
    ES_ERR_KICKED,         /* removed by an operator (es_core_kick), or banned */
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

/*
 * Several nodes (cluster.c) steer the core through a router; without one
 * (router.ops NULL) nothing here changes. All on the loop's thread.
 */
typedef struct es_router_ops {
    /* A frame of s, a connection here whose client another node serves
     * (s->fwd), passed the rate limit: send it there. */
    void (*forward)(void *ud, es_session *s, const char *data, size_t len);
    /* s (a connection here, not forwarded) sent UpdatePosition m: 1 when
     * the router takes it to another node instead (it then calls
     * es_core_forwarding), 0 to handle it here. */
    int (*route)(void *ud, es_session *s, const es_msg *m, const char *data, size_t len);
    /* s registered, resumed, moved or got a new token. */
    void (*placed)(void *ud, es_session *s);
    /* s left the world (its id is free again unless another holds it). */
    void (*left)(void *ud, es_session *s, earshot_leave_reason why);
    /* s's relay m names a target not registered here: 1 when the router
     * tries it on another node (then reports a failure through
     * es_core_relay_failed), 0 for the usual "not found". May be NULL. */
    int (*relay)(void *ud, es_session *s, const es_msg *m);
    /* The name of the node holding s's connection ("" when none: held).
     * May be NULL. */
    const char *(*node_of)(void *ud, const es_session *s);
    /* s, which the router keeps data for (s->cl), is closed: forget it.
     * hold: its connection was lost, not ended (a forwarded client's
     * session may then be held by the node serving it). */
    void (*gone)(void *ud, es_session *s, int hold);
} es_router_ops;

typedef struct es_router {
    const es_router_ops *ops;
    void *ud;
} es_router;

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
    es_dlist remote; /* sessions of clients connected to other nodes */
    size_t nremote;
    es_router router;
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
    /* Bans (checked at registration) and mutes (checked on each relay);
     * NULL: none. Not the core's: it outlives reloads (moderation.h). */
    struct es_moderation *mod;
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
 * connection is closed with 1001 once its queue is drained. Clients of
 * other nodes (remote) leave without a word: their nodes take them to the
 * node that serves their map from now on. */
void es_core_shutdown(es_core *c);

/* ---- several nodes (cluster.c) ------------------------------------------ */

/* A client connected to another node: a session without a connection here
 * (conn is the router's handle). Its messages go to the delivery like any
 * other; it does not count as a connection. Free it with es_core_closed. */
es_session *es_core_open_remote(es_core *c, void *conn, const char *address, es_join_info *join);
/* From now on s's frames go to router.forward: another node serves it.
 * s must not be registered here. */
void es_core_forwarding(es_core *c, es_session *s);
/* s is served here again (its next UpdatePosition registers it). */
void es_core_unforward(es_core *c, es_session *s);
/* s leaves this node's world for another node (reason "moved") without a
 * message to it; a remote s is then closed (es_core_closed). The peers it
 * leaves behind get their NearbyPeers at the next flush, unless they left
 * too: detaching a whole map in one pass tells nobody anything. */
void es_core_detach(es_core *c, es_session *s);
/* A relay of type from a client another node serves (sender is its view
 * there; client_id NUL-terminated) to target, here. 0 when delivered or
 * kept for a held target; otherwise the es_error_kind its sender should
 * hear, with text. Counted here. */
int es_core_relay_from(es_core *c, const earshot_client *sender, es_msg_type type,
                       const char *target, size_t target_len, const char *payload,
                       size_t payload_len, char text[ES_ERROR_MAX]);
/* A relay of s that the router tried elsewhere failed (err, an
 * es_error_kind, with text): s hears it, unless it was an ICE candidate.
 * counted: the node that refused it counted the outcome already. */
void es_core_relay_failed(es_core *c, es_session *s, es_msg_type type, int err, const char *text,
                          int counted);
/* A frame the router held back (it passed the rate limit when it came). */
void es_core_replay(es_core *c, es_session *s, const char *data, size_t len);
/* Close s with code (its client leaves as "closed" if registered here). */
void es_core_close(es_core *c, es_session *s, int code);
/* Registered clients held or live, for the router's walks. */
void es_core_each_registered(es_core *c, void (*fn)(es_session *s, void *ud), void *ud);

/* What server.max_connections counts: open connections, and held sessions
 * whose connection is gone (a resume will bring one back). */
static inline size_t es_core_occupancy(const es_core *c) { return c->sessions + c->nheld_gone; }

/* Open connections from this address (for the per-address limit), and
 * held sessions from it whose connection is gone. */
size_t es_core_address_connections(const es_core *c, const char *address);

/*
 * An operator removes registered client s: it leaves (its peers are told),
 * gets Error text, and is closed with code (4000 to 4999); a held session
 * simply leaves. Flushes. Returns 0, or -1 when s is not registered.
 */
int es_core_kick(es_core *c, es_session *s, int code, const char *text);

/* Registered client count. */
static inline size_t es_core_clients(const es_core *c) { return es_registry_count(&c->registry); }

#endif
