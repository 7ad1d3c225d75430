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
                          *files = &h->mounts[2];
    healthz->mount_next = metrics;
    healthz->mountpoint = "/healthz";
    healthz->mountpoint_len = 8;
    healthz->origin = protocol;
    healthz->origin_protocol = LWSMPRO_CALLBACK;
    *metrics = *healthz;
    metrics->mount_next = files;
    metrics->mountpoint = "/metrics";
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
    h->mounts[2].origin = cfg->web_dir ? cfg->web_dir : "";
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

/* The answer to an LWS_CALLBACK_HTTP, as respond() returns. */
static int answer(es_http *h, struct lws *wsi, es_http_conn *c, const char *uri)
{
    const es_config *cfg = h->cfg;
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
