/*
 * admin - the operator's window: who may reach /admin, and what it answers.
 *
 * Off (admin.enabled = false, the stock config): every path under /admin
 * is a 404, as if there were nothing there. On:
 *
 *   1. the caller's address (the one /metrics checks: X-Forwarded-For's
 *      last entry behind a proxy) must be on admin.allow, else 403;
 *   2. /admin and /admin/ are the page (web_dir/admin/index.html), and
 *      /admin/<file> its other files (names of letters, digits, '-', '_'
 *      and '.', not starting with '.'): no token needed, the page holds no
 *      data and asks for the token itself;
 *   3. /admin/api/<name> needs "Authorization: Bearer <admin.token>",
 *      else 401. The token is compared as SHA-256 digests with
 *      CRYPTO_memcmp, so neither its bytes nor its length leak through
 *      timing, and it is never logged. Then admin_api.h answers.
 *
 * This module knows no sockets: the HTTP side (http.c) hands it the
 * method, path, query arguments, Authorization header, address and body,
 * and writes out what it answers.
 */
#ifndef EARSHOT_ADMIN_H
#define EARSHOT_ADMIN_H

#include <stddef.h>

#include "admin_api.h"
#include "buf.h"
#include "config.h"
#include "netmask.h"

/* Largest POST body the API reads; a larger one gets 413. */
#define ES_ADMIN_BODY_MAX 16384

typedef enum es_admin_method {
    ES_ADMIN_GET = 0,
    ES_ADMIN_HEAD,
    ES_ADMIN_POST,
    ES_ADMIN_OTHER
} es_admin_method;

typedef struct es_admin_request {
    es_admin_method method;
    const char *path; /* decoded, below "/admin": "", "/", "/admin.js", "/api/maps" */
    const es_admin_arg *args;
    size_t nargs;
    const char *authorization; /* the header's value, or NULL */
    const char *address;       /* the caller's */
    const char *body;          /* POST only */
    size_t body_len;
} es_admin_request;

typedef struct es_admin_response {
    int status;
    const char *type;  /* Content-Type */
    const char *allow; /* an Allow header with a 405, else NULL */
    es_buf body;       /* the caller initialises and frees it */
} es_admin_response;

typedef struct es_admin {
    es_admin_api api;
    const es_config *cfg;
    es_netmask allow[ES_ADMIN_ALLOW_MAX];
    size_t nallow;
    unsigned char token_digest[32];
    char node[256];
} es_admin;

/* core and mod are the server's; node is this node's name (copied). cfg as
 * in es_admin_apply. */
void es_admin_init(es_admin *ad, const es_config *cfg, es_core *core, es_moderation *mod,
                   const char *node);
/* Switch to a new config (a reload): enabled, token and allow-list take
 * effect for the next request. cfg must outlive the next call. */
void es_admin_apply(es_admin *ad, const es_config *cfg);

/*
 * Whether a request may go on, from what its headers say: 0, or the status
 * of the refusal written into resp (404 off, 403 address, 401 token, 405
 * method, 413 when content_length is over ES_ADMIN_BODY_MAX). The HTTP
 * side asks before it reads a POST's body.
 */
int es_admin_check(es_admin *ad, const es_admin_request *req, long long content_length,
                   es_admin_response *resp);
/* Answer a request that passed es_admin_check (checks it again). */
void es_admin_handle(es_admin *ad, const es_admin_request *req, es_admin_response *resp);

#endif
