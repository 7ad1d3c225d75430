/*
 * admin_api - the JSON API of the operator's window, without HTTP: what
 * /admin/api/<name> answers, given the core, the moderation lists and the
 * node's name. admin.c (the libwebsockets side) checks who may ask and
 * hands each request here; the unit tests call it directly.
 *
 * GET  maps                  every game and map with clients, and the totals
 * GET  map?game=G&map=M      its clients (positions, peers), the pairs the
 *                            crowd cap left out, the hearing radius
 * GET  client?id=ID          one client: address, connected since,
 *                            messages, relays refused, resumable or held,
 *                            muted, node, peers, capped pairs
 * GET  moderation            bans in force and mutes
 * POST kick    {"client_id", "reason"?, "code"? 4000..4999 (4000)}
 * POST mute    {"client_id", "reason"?}        a registered client
 * POST unmute  {"client_id"}
 * POST ban     {"client_id" | "address", "seconds" 1..31622400, "reason"?}
 *              (a client_id need not be connected; connected clients it
 *              covers are closed with 4003)
 * POST unban   {"client_id" | "address"}
 *
 * Every answer is a JSON object; a refusal is {"error": "..."} with a 4xx
 * status, and a refused request changes nothing. Every action is logged
 * (module "admin") with `who` did it.
 */
#ifndef EARSHOT_ADMIN_API_H
#define EARSHOT_ADMIN_API_H

#include <stddef.h>

#include "buf.h"
#include "core.h"
#include "moderation.h"

typedef struct es_admin_api {
    es_core *core;
    es_moderation *mod;
    const char *node; /* this node's name, shown with every client */
} es_admin_api;

/* One argument of the query string, decoded. */
typedef struct es_admin_arg {
    const char *name, *value;
} es_admin_arg;

/* Answer GET /admin/api/<name> into out; returns the HTTP status. */
int es_admin_api_get(es_admin_api *a, const char *name, const es_admin_arg *args, size_t nargs,
                     es_buf *out);
/* Answer POST /admin/api/<name> with the request body; who (the caller's
 * address) goes into the log and the moderation lists. Returns the status. */
int es_admin_api_post(es_admin_api *a, const char *name, const char *body, size_t len,
                      const char *who, es_buf *out);

#endif
