/*
 * server - earshot on the network: one libwebsockets context and vhost on
 * the configured address, wiring together the WebSocket transport (ws.h:
 * upgrade on any path, frames, writes), the plain HTTP answers (http.h:
 * /healthz, /metrics, the web client's files) and the event loop with its
 * signals (loop.h). The core does everything else.
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
/* Serve until SIGINT or SIGTERM; SIGHUP calls the reload callback (on the
 * loop's thread). The server installs its own signal handling. */
int es_server_run(es_server *srv);
/* After the loop stopped: close every client with 1001 and keep serving
 * until all are gone or timeout seconds passed. 0 if all closed cleanly. */
int es_server_drain(es_server *srv, double timeout);

/* On SIGHUP the loop calls cb (on its own thread); cb returns 0 if the new
 * config took effect, -1 if the old one stays. */
void es_server_on_reload(es_server *srv, int (*cb)(es_server *srv, void *ud), void *ud);
/* Switch the running server to cfg and hooks (from the reload callback).
 * Listening address, port and ping interval keep their startup values. */
void es_server_apply(es_server *srv, const es_config *cfg, es_hooks *hooks);
void es_server_destroy(es_server *srv);
/* Open connections. */
size_t es_server_connections(const es_server *srv);
/* The port actually bound (useful with port 0). */
int es_server_port(const es_server *srv);

#endif
