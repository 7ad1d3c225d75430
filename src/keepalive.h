/*
 * keepalive - finds connections that went silent.
 *
 * A client that has sent nothing at all (no message, no pong) for
 * `every` seconds is to be pinged; one that then stays silent for
 * another `every` is dead. Busy clients are never pinged. The sweep
 * visits every connection once per `every`, a slice per call, so its
 * cost does not grow with how often it runs. It decides; the caller acts
 * (pings through the delivery, drops the dead).
 */
#ifndef EARSHOT_KEEPALIVE_H
#define EARSHOT_KEEPALIVE_H

#include <stddef.h>

#include "dlist.h"
#include "session.h"

typedef struct es_keepalive {
    es_dnode *cursor; /* the sweep's place in the connection list */
    double last_sweep;
} es_keepalive;

typedef struct es_keepalive_actions {
    void (*ping)(void *ud, es_session *s);
    void (*dead)(void *ud, es_session *s);
    void *ud;
} es_keepalive_actions;

static inline void es_keepalive_init(es_keepalive *k, double now)
{
    k->cursor = NULL;
    k->last_sweep = now;
}

/* Sweep the slice of all (n connections, linked through all_node) that
 * is due at now. */
void es_keepalive_sweep(es_keepalive *k, es_dlist *all, size_t n, double now, double every,
                        const es_keepalive_actions *act);

/* s leaves the connection list: the sweep must not stand on it. */
static inline void es_keepalive_forget(es_keepalive *k, es_session *s)
{
    if (k->cursor == &s->all_node)
        k->cursor = s->all_node.next;
}

#endif
