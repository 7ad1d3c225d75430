/*
 * http - what earshot answers over plain HTTP, as libwebsockets mounts:
 *
 *   /healthz   "ok" (503 "stopping" while draining)
 *   /metrics   Prometheus text (server.metrics: off = 404, loopback = 403
 *              from anywhere else, public)
 *   /admin     the operator's window (admin.h): 404 unless admin.enabled
 *   /          the files of web_dir when server.web is on, opened and
 *              streamed by libwebsockets itself (no size limit, ETag and
 *              If-None-Match); "/" and paths ending in '/' mean index.html;
 *              Content-Type by name (the table in http.c, else
 *              application/octet-stream)
 *
 * libwebsockets' request parser decodes %xx and folds "//", "/./" and
 * "/../" before anything here sees a path, never above "/". Every request
 * then passes es_http_check: methods other than GET and HEAD get 405 (with
 * Allow; a method libwebsockets does not know gets its own 403 from the
 * parser), and a file is served only if server.web is on, no segment of its
 * path starts with '.', and its real path (symlinks followed) names a
 * regular file inside web_dir's real path (static_files.h): libwebsockets'
 * file mount alone would serve dotfiles and follow symlinks out of the
 * folder. Anything else is earshot's 404.
 *
 * Every answer, files included, carries Cache-Control: no-store: the demo
 * page and the client are small and must never be stale against the server
 * they came from. HEAD gets the headers of GET and no body.
 *
 * A WebSocket upgrade on any path never gets here: libwebsockets hands it
 * to the protocol before it looks at mounts.
 *
 * Known limit (libwebsockets 4.1): a request pipelined on an HTTP/1.1
 * connection behind a file response, before that response was read, gets a
 * 403 and the connection closes. Browsers do not pipeline.
 */
#ifndef EARSHOT_HTTP_H
#define EARSHOT_HTTP_H

#include <libwebsockets.h>
#include <stdint.h>

#include "admin.h"
#include "buf.h"
#include "config.h"

typedef struct es_http {
    const es_config *cfg; /* the running config (es_http_apply switches it) */
    int stopping;         /* /healthz answers 503 */
    /* Appends the /metrics exposition to out. */
    void (*render_metrics)(es_buf *out, void *ud);
    void *ud;
    /* /admin (admin.h); until es_http_admin, admin.enabled is taken as off */
    es_admin admin;
    int admin_ready;
    /* libwebsockets keeps pointers to these: they live as long as the vhost */
    struct lws_http_mount mounts[4];
} es_http;

/* Per connection, in libwebsockets' per-session data (zeroed by it): over
 * HTTP/2, the body of a response of earshot's own, written on writeable
 * callbacks (over HTTP/1 it goes out at once). */
typedef struct es_http_conn {
    char *body;
    size_t body_len, body_sent;
    uint8_t pending; /* headers sent, the body waits for a writeable callback */
    /* a POST to /admin/api/ whose body is being read */
    uint8_t collecting;
    char *req_body;
    size_t req_len;
    char req_path[96];
} es_http_conn;

/* protocol names the protocol (in the vhost's list) whose callback gets
 * the requests; cfg must outlive the next es_http_apply. */
void es_http_init(es_http *h, const es_config *cfg, const char *protocol,
                  void (*render_metrics)(es_buf *out, void *ud), void *ud);
/* Give /admin its data: the core, the moderation lists, this node's name
 * (admin.h). Before this call /admin is a 404 whatever the config says. */
void es_http_admin(es_http *h, es_core *core, es_moderation *mod, const char *node);
/* The mount list for lws_context_creation_info.mounts. */
const struct lws_http_mount *es_http_mounts(const es_http *h);
/* Switch to a new config (a reload): server.web, web_dir and server.metrics
 * take effect for the next request. */
void es_http_apply(es_http *h, const es_config *cfg);

/* LWS_CALLBACK_CHECK_ACCESS_RIGHTS (in is the lws_process_html_args).
 * Returns 0 (args->final set when earshot answered the request itself). */
int es_http_check(es_http *h, struct lws *wsi, es_http_conn *c, void *in);
/* LWS_CALLBACK_HTTP: /healthz, /metrics, and the 404 for a file that is not
 * there. 0, or -1 to drop the connection. */
int es_http_request(es_http *h, struct lws *wsi, es_http_conn *c, const char *uri);
/* LWS_CALLBACK_HTTP_BODY and LWS_CALLBACK_HTTP_BODY_COMPLETION: the body of
 * a POST to /admin/api/ (others' bodies are ignored). 0, or -1 to drop the
 * connection. */
int es_http_body(es_http *h, struct lws *wsi, es_http_conn *c, const void *in, size_t len);
int es_http_body_done(es_http *h, struct lws *wsi, es_http_conn *c);
/* LWS_CALLBACK_HTTP_WRITEABLE (HTTP/2 only). */
int es_http_writeable(struct lws *wsi, es_http_conn *c);
/* LWS_CALLBACK_CLOSED_HTTP, LWS_CALLBACK_HTTP_DROP_PROTOCOL. c may be NULL. */
void es_http_closed(es_http_conn *c);

#endif
