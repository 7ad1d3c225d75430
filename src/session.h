/*
 * session - one WebSocket connection and, once registered, the client it
 * carries. The struct is shared by the core modules (core, registry, grid,
 * matcher, keepalive, and the local delivery, which alone touches the
 * queue, the owed ping and the close code); plugins only ever see the
 * `view` member.
 */
#ifndef EARSHOT_SESSION_H
#define EARSHOT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "dlist.h"
#include "earshot/plugin.h"
#include "protocol.h"
#include "ratelimit.h"
#include "sendq.h"

/* What the upgrade request said, kept for the join hooks until the
 * connection registers. One allocation; the strings live inside it. */
typedef struct es_join_info {
    const char *path;
    const char *query;
    earshot_header *headers;
    size_t header_count;
} es_join_info;

typedef struct es_edge es_edge;

/* es_session.dirty: whether the session is in the matcher's dirty list and
 * still owes a NearbyPeers. */
enum { ES_DIRTY_NO = 0, ES_DIRTY_OWED = 1, ES_DIRTY_SERVED = 2 };

typedef struct es_session {
    /*
     * The hot part first, in one cache line: what a position update reads
     * and writes for the mover and for each of its neighbours.
     */
    earshot_client view;   /* view.client_id = id, view.address = addr */
    uint64_t mark_matched; /* == matcher epoch: currently matched with the mover */
    uint64_t mark_keep;    /* == matcher epoch: still matched after the move */
    es_edge **edges;       /* the edges of this client's matched pairs */
    uint32_t nedges, edges_cap;
    uint32_t cell, slot;   /* where it is in the grid */
    uint8_t registered;
    uint8_t closing;       /* no more input is handled; closes once drained */
    uint8_t dirty;         /* in the matcher's dirty list: ES_DIRTY_* */
    uint8_t doomed;        /* queued to be dropped after the current message */

    /* Several nodes (cluster.c). On the node serving a client's map, a
     * client connected to another node is a `remote` session: no
     * connection here, its messages go through the bus, and it is not
     * counted as a connection. On the node holding the connection, a
     * client served elsewhere is `fwd`: its frames are forwarded as they
     * come. `reattach`: the next UpdatePosition re-registers a client
     * that was registered on another node (no join chain, same token). */
    uint8_t remote;
    uint8_t fwd;
    uint8_t reattach;
    uint8_t replying;      /* what is delivered now answers its request (a refresh) */
    uint16_t closed_with;  /* the close code the core asked for, 0 = none */
    void *cl;              /* the cluster's data for this session */
    uint64_t peers_sig;    /* the set of the last NearbyPeers it was sent */
    uint8_t peers_sig_ok;

    /* Resuming (protocol v1.1). A resumable client's session outlives a
     * lost connection: it is `held` (still registered, in the grid and the
     * matcher) until held_until, its connection `gone` once the transport
     * reported it closed, and relays to it wait in held_q (the core's, not
     * the delivery's) until a new connection resumes it. */
    uint8_t resumable;     /* asked for it with its first UpdatePosition */
    uint8_t session_owed;  /* a Session message follows its next NearbyPeers */
    uint8_t goodbye;       /* the client sent a close frame */
    uint8_t held;          /* its connection was lost; waiting to be resumed */
    uint8_t gone;          /* the connection is closed: only the client remains */
    double held_until;
    es_sendq held_q;
    es_dnode held_node;    /* held sessions */
    char token[48];        /* its current resume token, base64url */
    size_t token_len;

    /* The local delivery's (delivery.c): what waits to be written. */
    int close_code;      /* != 0: close with it once the queue is out */
    es_sendq q;
    uint8_t ping_due;    /* a ping waits to be written */

    void *conn;          /* the transport's handle for this connection */
    es_join_info *join;  /* freed once registered */
    uint64_t serial;     /* connection number, for logs */

    es_dnode all_node;  /* every open connection, newest last */
    es_dnode idle_node; /* by last activity, oldest first */
    es_dnode pend_node; /* not registered yet, by connect time, oldest first */
    double last_active;
    double opened_at;

    /* keepalive: any frame from the client, and an unanswered ping */
    double last_rx;
    double ping_sent_at; /* 0 = no ping outstanding */

    es_rate rate;

    size_t id_len;
    char id[ES_ID_MAX + 1];
    char addr[64];

    /* for the admin view: valid messages received, relays refused */
    uint64_t msgs_in, relays_refused;
} es_session;

#endif
