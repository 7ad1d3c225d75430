/*
 * delivery - how a message reaches a client, behind an interface.
 *
 * The core never writes to a connection: it asks the delivery to deliver
 * a message to a session, to ping it, or to close it. An implementation is
 * a table of operations and its state. The one here (es_delivery_local)
 * serves the connections of this process: a message goes to the
 * transport at once when nothing waits, else into the session's bounded
 * send queue, which the transport drains from its writeable callback
 * through es_local_next() and es_local_done(). A delivery to clients
 * served by another node is another implementation of the same
 * operations; tests/unit/test_seams.c runs the core on a test double.
 * A session held for a resume (no connection) is never handed to the
 * delivery: the core keeps the relays for it and delivers them once a new
 * connection has resumed it.
 */
#ifndef EARSHOT_DELIVERY_H
#define EARSHOT_DELIVERY_H

#include <stddef.h>

#include "session.h"

/* WebSocket close codes the core asks for. */
#define ES_CLOSE_NORMAL 1000
#define ES_CLOSE_GOING_AWAY 1001
#define ES_CLOSE_INVALID_DATA 1007 /* a text frame that is not UTF-8 (RFC 6455) */
#define ES_CLOSE_POLICY 1008
#define ES_CLOSE_TOO_BIG 1009
/* Operator actions (the admin API), in the range RFC 6455 leaves to
 * applications: a kick (4000 unless the operator chose another code in
 * 4000..4999), and a banned client or address. */
#define ES_CLOSE_KICKED 4000
#define ES_CLOSE_BANNED 4003

typedef struct es_delivery_ops {
    const char *name;
    /*
     * Deliver payload[0..len) to s, after everything delivered to it
     * before. ES_WIRE_HEADROOM bytes before payload belong to the
     * delivery for the call. The payload is the caller's again on return
     * (copy to keep). 0 = delivered or queued; -1 = s cannot take it (its
     * queue is full): the caller drops s.
     */
    int (*deliver)(void *impl, es_session *s, char *payload, size_t len);
    /* Send s a keepalive ping, after what is queued before it. */
    void (*ping)(void *impl, es_session *s);
    /* Close s's connection with code once what was delivered is out. */
    void (*close)(void *impl, es_session *s, int code);
    /* s is being dropped: forget what waits for it. Returns the bytes that were waiting. */
    size_t (*discard)(void *impl, es_session *s);
    /* The send queue limit changed (a reload). May be NULL. */
    void (*set_queue_limit)(void *impl, size_t bytes);
    /* Free the implementation. */
    void (*destroy)(void *impl);
} es_delivery_ops;

typedef struct es_delivery {
    const es_delivery_ops *ops;
    void *impl;
} es_delivery;

static inline int es_deliver(const es_delivery *d, es_session *s, char *payload, size_t len)
{
    return d->ops->deliver(d->impl, s, payload, len);
}
static inline void es_delivery_ping(const es_delivery *d, es_session *s) { d->ops->ping(d->impl, s); }
static inline void es_delivery_close(const es_delivery *d, es_session *s, int code)
{
    d->ops->close(d->impl, s, code);
}
static inline size_t es_delivery_discard(const es_delivery *d, es_session *s)
{
    return d->ops->discard(d->impl, s);
}

/* ---- the in-process delivery ----------------------------------------------- */

/* What the local delivery needs of the connection layer (the WebSocket
 * transport, or a test's fake). */
typedef struct es_transport {
    /* s has something to write (es_local_next): call back when writable. */
    void (*want_write)(void *tctx, es_session *s);
    /* Optional. Write payload[0..len) now if the connection takes it whole
     * without waiting; ES_WIRE_HEADROOM bytes before payload are the
     * transport's to use. 1 = written (or failed for good: the transport
     * then closes the connection itself), 0 = not now: it is queued. */
    int (*send_now)(void *tctx, es_session *s, char *payload, size_t len);
} es_transport;

/* A delivery to this process's connections through tx, each queue capped
 * at queue_bytes. Free it with its destroy op. */
es_delivery es_delivery_local(const es_transport *tx, void *tctx, size_t queue_bytes);

/* What the transport should write next on s. */
typedef enum es_write_kind {
    ES_WRITE_NOTHING = 0,
    ES_WRITE_PING,    /* a WebSocket ping */
    ES_WRITE_MESSAGE, /* a text message: payload, len (headroom before payload) */
    ES_WRITE_CLOSE    /* a close frame with code, then close the connection */
} es_write_kind;

typedef struct es_write {
    es_write_kind kind;
    char *payload;
    size_t len;
    int code;
} es_write;

/* The next write for s (a ping owed goes first, the close last). */
es_write es_local_next(es_session *s);
/* The transport wrote what es_local_next gave (a ping or a message).
 * Returns 1 when more waits (call want_write again), else 0. */
int es_local_done(es_session *s, es_write_kind written);

#endif
