/*
 * server - the libwebsockets side: one listening socket, WebSocket upgrade on
 * any path, GET /healthz, frame assembly with the size limit, and draining
 * each session's send queue one message per writeable callback. It owns the
 * event loop; the core does everything else.
 */
#ifndef EARSHOT_SERVER_H
#define EARSHOT_SERVER_H

#include "config.h"
#include "core.h"

typedef struct es_server es_server;

/* Create the lws context listening as cfg says (port_override >= 0 wins).
 * Returns NULL with a message in err on failure. */
es_server *es_server_create(const es_config *cfg, es_hooks *hooks, int port_override, char *err,
                            size_t errlen);
/* Run until es_server_stop() is called (from a signal handler too). */
int es_server_run(es_server *srv);
/* Async-signal-safe: ask the loop to stop. */
void es_server_stop(es_server *srv);
void es_server_destroy(es_server *srv);
/* The port actually bound (useful with port 0). */
int es_server_port(const es_server *srv);

#endif
