#include "http.h"

#include <stdlib.h>
#include <string.h>

#include "static_files.h"
#include "util.h"
#include "ws.h"

/* Tags in a mount's auth_mask (below AUTH_MODE_MASK, which stays 0: no
 * basic auth). libwebsockets passes them to LWS_CALLBACK_CHECK_ACCESS_RIGHTS,
 * which is how es_http_check tells the static mount from the others. */
#define MOUNT_STATIC 1u
#define MOUNT_ADMIN 2u /* admin.c checks methods itself: its API takes POSTs */

/* libwebsockets builds a file's path as origin "/" uri [ "/" def ] in a
 * buffer this big and cuts what does not fit. */
#define LWS_FILE_PATH_MAX 256

#define TEXT "text/plain; charset=utf-8"

/* Content types by file name ending, ahead of libwebsockets' own table, so
 * the text types say their charset; anything else is a download. */
static const struct lws_protocol_vhost_options mime[] = {
    {&mime[1], NULL, ".html", "text/html; charset=utf-8"},
    {&mime[2], NULL, ".js", "text/javascript; charset=utf-8"},
    {&mime[3], NULL, ".mjs", "text/javascript; charset=utf-8"},
    {&mime[4], NULL, ".css", "text/css; charset=utf-8"},
    {&mime[5], NULL, ".json", "application/json"},
    {&mime[6], NULL, ".svg", "image/svg+xml"},
    {&mime[7], NULL, ".png", "image/png"},
    {&mime[8], NULL, ".ico", "image/x-icon"},
    {&mime[9], NULL, ".txt", "text/plain; charset=utf-8"},
    {&mime[10], NULL, ".md", "text/markdown; charset=utf-8"},
    {&mime[11], NULL, ".map", "application/json"},
    {&mime[12], NULL, ".wav", "audio/wav"},
    {NULL, NULL, "*", "application/octet-stream"},
};

void es_http_init(es_http *h, const es_config *cfg, const char *protocol,
                  void (*render_metrics)(es_buf *out, void *ud), void *ud)
{
    memset(h, 0, sizeof *h);
    h->render_metrics = render_metrics;
    h->ud = ud;
    struct lws_http_mount *healthz = &h->mounts[0], *metrics = &h->mounts[1],
                          *admin = &h->mounts[2], *files = &h->mounts[3];
    healthz->mount_next = metrics;
    healthz->mountpoint = "/healthz";
    healthz->mountpoint_len = 8;
    healthz->origin = protocol;
    healthz->origin_protocol = LWSMPRO_CALLBACK;
    *metrics = *healthz;
    metrics->mount_next = admin;
    metrics->mountpoint = "/metrics";
    /* /admin and below, GET and POST alike: answered by admin.c, off or on */
    *admin = *healthz;
    admin->mount_next = files;
    admin->mountpoint = "/admin";
    admin->mountpoint_len = 6;
    admin->auth_mask = MOUNT_ADMIN;
    /*
     * The files: libwebsockets opens, streams and types them (ETag and
     * If-None-Match included). Naming the protocol makes libwebsockets ask
     * it first (es_http_check) for every request on the mount, whatever the
     * method, and hand it the 404 when the file is missing.
     */
    files->mountpoint = "/";
    files->mountpoint_len = 1;
    files->def = "index.html";
    files->protocol = protocol;
    files->extra_mimetypes = mime;
    files->origin_protocol = LWSMPRO_FILE;
    files->auth_mask = MOUNT_STATIC;
    es_http_apply(h, cfg);
}

const struct lws_http_mount *es_http_mounts(const es_http *h) { return &h->mounts[0]; }

void es_http_apply(es_http *h, const es_config *cfg)
{
    h->cfg = cfg;
    /* Read by libwebsockets for each request, so a reload moves it. */
    h->mounts[3].origin = cfg->web_dir ? cfg->web_dir : "";
    if (h->admin_ready)
        es_admin_apply(&h->admin, cfg);
}

void es_http_admin(es_http *h, es_core *core, es_moderation *mod, const char *node)
{
    es_admin_init(&h->admin, h->cfg, core, mod, node);
    h->admin_ready = 1;
}

/* ---- responses of earshot's own -------------------------------------------- */

/*
 * Answer the request with a response of earshot's own; none of the body for
 * HEAD. Over HTTP/1 it goes out in one write and the transaction ends at
 * once, which makes libwebsockets skip whatever body the request carries
 * rather than read it as the next request. Over HTTP/2 the headers go in
 * their own frame now and the body from the writeable callback. Returns 0,
 * 1 when the connection is to close now (HTTP/1.0, "Connection: close"), -1
 * on failure.
 */
static int respond(struct lws *wsi, es_http_conn *c, unsigned status, const char *type,
                   const char *body, size_t len, const char *allow)
{
    int head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    size_t room = 512, send = head ? 0 : len;
    uint8_t *buf = es_xmalloc(LWS_PRE + room + send), *start = buf + LWS_PRE, *pos = start,
            *end = start + room - 1;
    int h2 = lws_get_network_wsi(wsi) != wsi, rc = -1;
    if (lws_add_http_common_headers(wsi, status, type, len, &pos, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &pos, end) ||
        (allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                              (const unsigned char *)allow, (int)strlen(allow),
                                              &pos, end)))
        goto out;
    if (h2) {
        if (lws_finalize_write_http_header(wsi, start, &pos, end))
            goto out;
        free(c->body);
        c->body = es_xmalloc(send ? send : 1);
        memcpy(c->body, body, send);
        c->body_len = send;
        c->body_sent = 0;
        c->pending = 1;
        lws_callback_on_writable(wsi);
        rc = 0;
        goto out;
    }
    if (lws_finalize_http_header(wsi, &pos, end))
        goto out;
    memcpy(pos, body, send);
    pos += send;
    if (lws_write(wsi, start, (size_t)(pos - start), LWS_WRITE_HTTP) != (int)(pos - start))
        goto out;
    rc = lws_http_transaction_completed(wsi) ? 1 : 0;
out:
    free(buf);
    return rc;
}

static int text(struct lws *wsi, es_http_conn *c, unsigned status, const char *body)
{
    return respond(wsi, c, status, TEXT, body, strlen(body), NULL);
}

/* HTTP/2 only: the body, in pieces (an empty one ends a HEAD's stream). */
int es_http_writeable(struct lws *wsi, es_http_conn *c)
{
    if (!c || !c->pending)
        return 0;
    uint8_t buf[LWS_PRE + 4096];
    size_t left = c->body_len - c->body_sent;
    size_t n = left < sizeof buf - LWS_PRE ? left : sizeof buf - LWS_PRE;
    memcpy(buf + LWS_PRE, c->body + c->body_sent, n);
    int final = n == left;
    if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    c->body_sent += n;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    es_http_closed(c);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void es_http_closed(es_http_conn *c)
{
    if (!c) /* NULL for an h2 network connection itself */
        return;
    free(c->body);
    c->body = NULL;
    c->pending = 0;
    free(c->req_body);
    c->req_body = NULL;
    c->req_len = 0;
    c->collecting = 0;
}

/* ---- the requests ------------------------------------------------------------ */

static int is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

static int get_or_head(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 ||
           lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
}

/* May libwebsockets serve url_path from web_dir? (The path is decoded and
 * has no "." or ".." segments left: libwebsockets' parser removed them.) */
static int file_allowed(const es_config *cfg, const char *url_path)
{
    if (!cfg->web || !cfg->web_dir)
        return 0;
    if (strlen(cfg->web_dir) + strlen(url_path) + sizeof "/index.html" > LWS_FILE_PATH_MAX)
        return 0; /* libwebsockets would open a cut-off path */
    return es_static_allowed(cfg->web_dir, url_path);
}

int es_http_check(es_http *h, struct lws *wsi, es_http_conn *c, void *in)
{
    struct lws_process_html_args *args = in;
    int rc;
    if (args->max_len & MOUNT_ADMIN)
        return 0; /* on to LWS_CALLBACK_HTTP: admin_request() */
    if (!get_or_head(wsi))
        rc = respond(wsi, c, HTTP_STATUS_METHOD_NOT_ALLOWED, TEXT, "method not allowed\n",
                     strlen("method not allowed\n"), "GET, HEAD");
    else if ((args->max_len & MOUNT_STATIC) && !file_allowed(h->cfg, args->p))
        rc = text(wsi, c, HTTP_STATUS_NOT_FOUND, "not found\n");
    else
        return 0; /* libwebsockets goes on: the file, or LWS_CALLBACK_HTTP */
    args->final = 1; /* answered */
    /* Nonzero here would make libwebsockets write a 401 after the answer:
     * a connection that has to go is closed from the loop instead. */
    if (rc)
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    return 0;
}

/* ---- /admin (admin.h) ---------------------------------------------------- */

#define ADMIN_ARGS_MAX 16

/* What admin.c needs of a request, read from libwebsockets' header table. */
typedef struct admin_read {
    es_admin_request req;
    es_admin_arg args[ADMIN_ARGS_MAX];
    char argbuf[2048];
    char authz[ES_TURN_SECRET_MAX + 64];
    char addr[64];
} admin_read;

static es_admin_method method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return ES_ADMIN_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0)
        return ES_ADMIN_HEAD;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return ES_ADMIN_POST;
    return ES_ADMIN_OTHER;
}

static void admin_read_request(struct lws *wsi, const char *path, admin_read *r)
{
    memset(&r->req, 0, sizeof r->req);
    r->req.method = method_of(wsi);
    r->req.path = path;
    es_ws_peer_address(wsi, r->addr, sizeof r->addr);
    r->req.address = r->addr;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 0 && (size_t)n < sizeof r->authz &&
        lws_hdr_copy(wsi, r->authz, (int)sizeof r->authz, WSI_TOKEN_HTTP_AUTHORIZATION) >= 0)
        r->req.authorization = r->authz;
    /* query arguments, %xx decoded by libwebsockets: name=value each */
    size_t used = 0;
    for (int i = 0; i < ADMIN_ARGS_MAX && used + 2 < sizeof r->argbuf; i++) {
        char *frag = r->argbuf + used;
        int len = lws_hdr_copy_fragment(wsi, frag, (int)(sizeof r->argbuf - used),
                                        WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len < 0)
            break;
        char *eq = strchr(frag, '=');
        if (eq)
            *eq = '\0';
        r->args[r->req.nargs].name = frag;
        r->args[r->req.nargs].value = eq ? eq + 1 : "";
        r->req.nargs++;
        used += (size_t)len + 1;
    }
    r->req.args = r->args;
}

static int admin_respond(struct lws *wsi, es_http_conn *c, es_admin_response *resp)
{
    int rc = respond(wsi, c, (unsigned)resp->status, resp->type, es_buf_data(&resp->body),
                     resp->body.len, resp->allow);
    es_buf_free(&resp->body);
    return rc;
}

/* LWS_CALLBACK_HTTP under /admin, as respond() returns; a POST that may go
 * on is answered once its body is in (es_http_body_done). */
static int admin_request(es_http *h, struct lws *wsi, es_http_conn *c, const char *uri)
{
    admin_read r;
    admin_read_request(wsi, uri + 6, &r);
    es_admin_response resp = {.status = 404, .type = TEXT};
    es_buf_init(&resp.body);
    if (!h->admin_ready) {
        es_buf_append_cstr(&resp.body, "not found\n");
        return admin_respond(wsi, c, &resp);
    }
    char cl[32] = "";
    int has_length = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    long long length = has_length ? strtoll(cl, NULL, 10) : 0;
    if (es_admin_check(&h->admin, &r.req, length, &resp) != 0)
        return admin_respond(wsi, c, &resp);
    if (r.req.method == ES_ADMIN_POST && length > 0 && strlen(uri) < sizeof c->req_path) {
        /* the body follows in LWS_CALLBACK_HTTP_BODY */
        es_buf_free(&resp.body);
        snprintf(c->req_path, sizeof c->req_path, "%s", uri);
        free(c->req_body);
        c->req_body = es_xmalloc(ES_ADMIN_BODY_MAX);
        c->req_len = 0;
        c->collecting = 1;
        return 0;
    }
    es_admin_handle(&h->admin, &r.req, &resp);
    return admin_respond(wsi, c, &resp);
}

int es_http_body(es_http *h, struct lws *wsi, es_http_conn *c, const void *in, size_t len)
{
    (void)h;
    (void)wsi;
    if (!c || !c->collecting)
        return 0;
    if (len > ES_ADMIN_BODY_MAX - c->req_len)
        return -1; /* more than its Content-Length said */
    memcpy(c->req_body + c->req_len, in, len);
    c->req_len += len;
    return 0;
}

int es_http_body_done(es_http *h, struct lws *wsi, es_http_conn *c)
{
    if (!c || !c->collecting)
        return 0;
    c->collecting = 0;
    admin_read r;
    admin_read_request(wsi, c->req_path + 6, &r);
    r.req.body = c->req_body;
    r.req.body_len = c->req_len;
    es_admin_response resp = {.status = 404, .type = TEXT};
    es_buf_init(&resp.body);
    es_admin_handle(&h->admin, &r.req, &resp);
    free(c->req_body);
    c->req_body = NULL;
    c->req_len = 0;
    return admin_respond(wsi, c, &resp) ? -1 : 0;
}

/* The answer to an LWS_CALLBACK_HTTP, as respond() returns. */
static int answer(es_http *h, struct lws *wsi, es_http_conn *c, const char *uri)
{
    const es_config *cfg = h->cfg;
    /* libwebsockets hands a POST only the part below the mount: the
     * request's own path says whether it is under /admin */
    char path[512];
    static const enum lws_token_indexes uris[] = {WSI_TOKEN_GET_URI, WSI_TOKEN_HEAD_URI,
                                                  WSI_TOKEN_POST_URI};
    for (size_t i = 0; i < ES_ARRAY_LEN(uris); i++) {
        if (lws_hdr_total_length(wsi, uris[i]) <= 0)
            continue;
        if (lws_hdr_copy(wsi, path, sizeof path, uris[i]) > 0 &&
            strncmp(path, "/admin", 6) == 0 && (path[6] == '\0' || path[6] == '/'))
            return admin_request(h, wsi, c, path);
        break;
    }
    if (strncmp(uri, "/admin", 6) == 0 && (uri[6] == '\0' || uri[6] == '/'))
        return admin_request(h, wsi, c, uri); /* another method under /admin */
    if (strcmp(uri, "/healthz") == 0)
        return h->stopping ? text(wsi, c, HTTP_STATUS_SERVICE_UNAVAILABLE, "stopping\n")
                           : text(wsi, c, HTTP_STATUS_OK, "ok\n");
    if (strcmp(uri, "/metrics") == 0 && cfg->metrics != ES_METRICS_OFF) {
        char addr[64] = "";
        es_ws_peer_address(wsi, addr, sizeof addr);
        if (cfg->metrics == ES_METRICS_LOOPBACK && !is_loopback(addr))
            return text(wsi, c, HTTP_STATUS_FORBIDDEN, "forbidden\n");
        es_buf b;
        es_buf_init(&b);
        h->render_metrics(&b, h->ud);
        int rc = respond(wsi, c, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8",
                         es_buf_data(&b), b.len, NULL);
        es_buf_free(&b);
        return rc;
    }
    /* Below /healthz or /metrics, /metrics when off, or a file that is not
     * there (then uri is the path without its leading '/'). */
    return text(wsi, c, HTTP_STATUS_NOT_FOUND, "not found\n");
}

int es_http_request(es_http *h, struct lws *wsi, es_http_conn *c, const char *uri)
{
    return answer(h, wsi, c, uri) ? -1 : 0;
}
