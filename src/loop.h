/*
 * loop - the event loop earshot runs on and the signals that steer it.
 *
 * Two loops, one API: libev (epoll), which earshot owns and libwebsockets
 * joins as a foreign loop, or libwebsockets' own poll() loop. Either way
 * everything runs on one thread: libwebsockets' callbacks, the flush at the
 * end of each pass, and the reload a SIGHUP asks for.
 *
 * Order of use: es_loop_create, es_loop_context_info (before
 * lws_create_context), es_loop_attach (after it), es_loop_run, es_loop_drain,
 * es_loop_detach (before lws_context_destroy), es_loop_destroy (after it).
 */
#ifndef EARSHOT_LOOP_H
#define EARSHOT_LOOP_H

#include <libwebsockets.h>

#include "config.h"

typedef struct es_loop es_loop;

/* What the loop calls, always on its own thread. */
typedef struct es_loop_ops {
    /* Once per pass, after every ready socket was served and before the
     * loop waits again. */
    void (*flush)(void *ud);
    /* SIGHUP arrived. */
    void (*reload)(void *ud);
    /* While draining: nonzero once there is nothing left to wait for. */
    int (*drained)(void *ud);
    void *ud;
} es_loop_ops;

/* A loop of the configured kind (server.event_loop). ops is copied. */
es_loop *es_loop_create(es_event_loop kind, const es_loop_ops *ops);
/* Set the context creation options that make libwebsockets use this loop.
 * info must be used (lws_create_context) while l lives. */
void es_loop_context_info(es_loop *l, struct lws_context_creation_info *info);
/* Why a context on this loop may fail to be created, as a clause to append
 * to the error ("" when there is nothing to add). */
const char *es_loop_context_hint(const es_loop *l);
/* The context exists: the flush starts running at the end of each pass. */
void es_loop_attach(es_loop *l, struct lws_context *ctx);

/* The libev loop, for what else runs on it (Redis); NULL on the poll loop. */
struct ev_loop *es_loop_ev(es_loop *l);

/* Serve until SIGINT or SIGTERM (or es_loop_stop); SIGHUP calls ops.reload.
 * Installs the loop's signal handling. 0, or -1 if the loop failed. */
int es_loop_run(es_loop *l);
/* Make es_loop_run return after the current callback (loop thread only). */
void es_loop_stop(es_loop *l);
/* Serve until ops.drained says so or timeout seconds passed. 0 if drained. */
int es_loop_drain(es_loop *l, double timeout);

/* Before lws_context_destroy: the flush stops (each event flushes itself
 * from here on, see es_core.batch). */
void es_loop_detach(es_loop *l);
/* After lws_context_destroy: lets libwebsockets' watchers wind down and
 * frees the loop. NULL is fine. */
void es_loop_destroy(es_loop *l);

#endif
