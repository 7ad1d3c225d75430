/*
 * sendq - a connection's bounded queue of outgoing WebSocket messages.
 *
 * Each queued message is one allocation holding ES_WIRE_HEADROOM spare bytes
 * and then the payload, so the server writes it in place. The queue counts
 * its bytes; es_sendq_push() refuses a message that would take it past its
 * cap, and the caller then drops the slow client rather than buffer without
 * bound.
 */
#ifndef EARSHOT_SENDQ_H
#define EARSHOT_SENDQ_H

#include <stddef.h>

typedef struct es_qmsg {
    struct es_qmsg *next;
    size_t len;
    char mem[]; /* ES_WIRE_HEADROOM bytes, then len payload bytes */
} es_qmsg;

typedef struct es_sendq {
    es_qmsg *head, *tail;
    size_t bytes; /* payload bytes queued */
    size_t count;
} es_sendq;

static inline void es_sendq_init(es_sendq *q) { q->head = q->tail = NULL, q->bytes = q->count = 0; }

/* Queue a copy of data[0..len). Returns 0, or -1 when bytes + len > cap
 * (nothing is queued then). A message larger than cap on an empty queue is
 * still refused. */
int es_sendq_push(es_sendq *q, const char *data, size_t len, size_t cap);

/* The oldest message, or NULL. Its payload starts at es_qmsg_payload(). */
static inline es_qmsg *es_sendq_peek(es_sendq *q) { return q->head; }
char *es_qmsg_payload(es_qmsg *m);

/* Remove and free the oldest message. */
void es_sendq_pop(es_sendq *q);
void es_sendq_clear(es_sendq *q);

#endif
