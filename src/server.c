#include "server.h"

#include <arpa/inet.h>
#include <ev.h>
#include <limits.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "static_files.h"
#include "util.h"

_Static_assert(ES_WIRE_HEADROOM >= LWS_PRE, "message headroom must cover LWS_PRE");

#ifndef EARSHOT_VERSION
#define EARSHOT_VERSION "0.0.0"
#endif

#define TICK_US (100 * LWS_US_PER_MS)
#define RX_CHUNK 4096           /* lws hands us frames in pieces of at most this */
#define JOIN_INFO_MAX 8192      /* bytes of path, query and headers kept for join hooks */
#define STATIC_MAX (4u << 20)   /* largest static file served */

struct es_server {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    const es_config *cfg;
    es_core core;
    lws_sorted_usec_list_t tick;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reload;
    int stopping; /* draining: new connections are turned away */
    int port;
    int (*reload_cb)(es_server *srv, void *ud);
    void *reload_ud;
    uint64_t reloads_ok, reloads_failed;
    uint64_t refused[ES_REFUSED_COUNT]; /* upgrades turned away, by reason */
    double start_wallclock;

    /* event loop: libev (epoll) when use_ev, else libwebsockets' own poll() */
    int use_ev;
    struct ev_loop *loop;
    ev_timer ev_drain;
    ev_signal ev_sigint, ev_sigterm, ev_sighup;
    ev_prepare ev_flush; /* end of each loop iteration: es_core_flush */
    double drain_deadline;
};

/* Per-connection data lws allocates for us. */
typedef struct pss {
    es_session *s;      /* WebSocket connections */
    char *rx;           /* a message arriving in several pieces */
    size_t rx_len, rx_cap;
    uint8_t rx_discard; /* the rest of an oversized message */
    uint8_t tx_broken;  /* a direct write failed: close at the next chance */
    /* plain HTTP: the response body, written in pieces */
    char *body;
    size_t body_len, body_sent;
} pss;

static void want_write(void *tctx, es_session *s)
{
    (void)tctx;
    lws_callback_on_writable((struct lws *)s->conn);
}

/*
 * Write a message the moment it is made when the connection has nothing
 * waiting: no queue (the core checks), no ping owed, not closing, and no
 * remainder of an earlier write held by libwebsockets. Going through the
 * writeable callback instead costs two epoll_ctl calls and a loop iteration
 * per message. A write the kernel only takes in part is still whole as far
 * as the core is concerned: libwebsockets keeps the rest and sends it when
 * the socket has room, before any writeable callback. A failed write marks
 * the connection; its next writeable callback closes it.
 */
static int send_now(void *tctx, es_session *s, char *payload, size_t len)
{
    (void)tctx;
    struct lws *wsi = s->conn;
    pss *p = lws_wsi_user(wsi);
    if (s->ping_due || s->closing || p->tx_broken || lws_partial_buffered(wsi))
        return 0;
    if (lws_write(wsi, (unsigned char *)payload, len, LWS_WRITE_TEXT) < (int)len) {
        p->tx_broken = 1;
        lws_callback_on_writable(wsi);
    }
    return 1;
}

static const es_transport lws_transport = {.want_write = want_write, .send_now = send_now};

/* ---- join info: what the upgrade request said ------------------------- */

/* Show IPv4 clients of a dual-stack socket as plain IPv4. */
static void strip_mapped(char *addr)
{
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
        memmove(addr, addr + 7, strlen(addr + 7) + 1);
}

static void lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/*
 * Copy path, query and the request headers into one allocation. lws frees
 * its header table once the upgrade is done, so the join hooks, which run
 * at the first UpdatePosition, need their own copy.
 */
static es_join_info *capture_join_info(struct lws *wsi)
{
    char tmp[JOIN_INFO_MAX];
    char *text = es_xmalloc(JOIN_INFO_MAX);
    size_t used = 0;
    size_t nh = 0;

    /* path */
    int n = lws_hdr_copy(wsi, tmp, sizeof tmp, WSI_TOKEN_GET_URI);
    const char *path_src = n > 0 ? tmp : "/";
    size_t path_off = used;
    used += (size_t)snprintf(text + used, JOIN_INFO_MAX - used, "%s", path_src) + 1;

    /* query: lws splits it into fragments at '&' */
    size_t query_off = used;
    text[used] = '\0';
    for (int i = 0; used < JOIN_INFO_MAX - 1; i++) {
        n = lws_hdr_copy_fragment(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        size_t cur = strlen(text + query_off);
        if ((size_t)n + cur + 2 > JOIN_INFO_MAX - query_off)
            break;
        if (cur)
            text[query_off + cur++] = '&';
        memcpy(text + query_off + cur, tmp, (size_t)n + 1);
    }
    used = query_off + strlen(text + query_off) + 1;

    /* headers lws knows by name ("host:", "authorization:", ...) */
    size_t name_off[64], value_off[64];
    for (int t = 0; t < WSI_TOKEN_COUNT && nh < 64; t++) {
        const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        if (!name || name[0] == ':' || t == WSI_TOKEN_HTTP_URI_ARGS)
            continue;
        size_t nl = strlen(name);
        if (nl < 2 || name[nl - 1] != ':')
            continue; /* "get ", "post " and friends are the request line */
        int vl = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (vl <= 0 || (size_t)vl >= sizeof tmp)
            continue;
        if (used + nl + (size_t)vl + 2 > JOIN_INFO_MAX)
            break;
        if (lws_hdr_copy(wsi, tmp, sizeof tmp, (enum lws_token_indexes)t) < 0)
            continue;
        name_off[nh] = used;
        memcpy(text + used, name, nl - 1);
        text[used + nl - 1] = '\0';
        lowercase(text + used);
        used += nl;
        value_off[nh] = used;
        size_t tl = strlen(tmp);
        memcpy(text + used, tmp, tl + 1);
        used += tl + 1;
        nh++;
    }

    es_join_info *ji = es_xmalloc(sizeof *ji + nh * sizeof(earshot_header) + used);
    earshot_header *h = (earshot_header *)(ji + 1);
    char *strings = (char *)(h + nh);
    memcpy(strings, text, used);
    free(text);
    ji->path = strings + path_off;
    ji->query = strings + query_off;
    ji->headers = h;
    ji->header_count = nh;
    for (size_t i = 0; i < nh; i++) {
        h[i].name = strings + name_off[i];
        h[i].value = strings + value_off[i];
    }
    return ji;
}

static void peer_address(struct lws *wsi, char *out, size_t len)
{
    lws_get_peer_simple(wsi, out, len);
    strip_mapped(out);
}

/*
 * The client's address. Behind a proxy (server.behind_proxy), the last
 * X-Forwarded-For entry is the address the proxy itself saw, so that is the
 * one to trust; entries before it are whatever the client claimed.
 */
static void client_address(es_server *srv, struct lws *wsi, char *out, size_t len)
{
    peer_address(wsi, out, len);
    if (!srv->cfg->behind_proxy)
        return;
    char xff[512];
    if (lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR) <= 0)
        return;
    char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strcspn(last, " \t");
    last[n] = '\0';
    unsigned char bin[16];
    if (n < len && (inet_pton(AF_INET, last, bin) == 1 || inet_pton(AF_INET6, last, bin) == 1)) {
        memcpy(out, last, n + 1);
        strip_mapped(out);
    }
}



/* ---- HTTP ---------------------------------------------------------------- */

/* Queue a response: headers now, the body (copied) on writeable callbacks. */
static int http_respond(struct lws *wsi, pss *p, unsigned status, const char *type,
                        const char *body, size_t len)
{
    uint8_t buf[LWS_PRE + 512], *start = &buf[LWS_PRE], *pos = start, *end = &buf[sizeof buf - 1];
    free(p->body);
    p->body = es_xmalloc(len ? len : 1);
    memcpy(p->body, body, len);
    p->body_len = len;
    p->body_sent = 0;
    if (lws_add_http_common_headers(wsi, status, type, len, &pos, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &pos, end) ||
        lws_finalize_write_http_header(wsi, start, &pos, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_text(struct lws *wsi, pss *p, unsigned status, const char *text)
{
    return http_respond(wsi, p, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int http_write_body(struct lws *wsi, pss *p)
{
    if (!p->body)
        return 0;
    uint8_t buf[LWS_PRE + 4096];
    size_t left = p->body_len - p->body_sent;
    size_t n = left < sizeof buf - LWS_PRE ? left : sizeof buf - LWS_PRE;
    memcpy(buf + LWS_PRE, p->body + p->body_sent, n);
    int final = n == left;
    if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    p->body_sent += n;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    free(p->body);
    p->body = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

static int http_request(es_server *srv, struct lws *wsi, pss *p, const char *path)
{
    if (strcmp(path, "/healthz") == 0) {
        if (srv->stopping)
            return http_text(wsi, p, HTTP_STATUS_SERVICE_UNAVAILABLE, "stopping\n");
        return http_text(wsi, p, HTTP_STATUS_OK, "ok\n");
    }
    if (strcmp(path, "/metrics") == 0 && srv->cfg->metrics != ES_METRICS_OFF) {
        char addr[64] = "";
        peer_address(wsi, addr, sizeof addr);
        if (srv->cfg->metrics == ES_METRICS_LOOPBACK && !is_loopback(addr))
            return http_text(wsi, p, HTTP_STATUS_FORBIDDEN, "forbidden\n");
        es_buf b;
        es_buf_init(&b);
        es_metrics_source src = {
            .core = &srv->core,
            .hooks = srv->core.hooks,
            .reloads_ok = srv->reloads_ok,
            .reloads_failed = srv->reloads_failed,
            .refused = srv->refused,
            .start_wallclock = srv->start_wallclock,
            .version = EARSHOT_VERSION,
        };
        es_metrics_render(&b, &src);
        int rc = http_respond(wsi, p, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8",
                              es_buf_data(&b), b.len);
        es_buf_free(&b);
        return rc;
    }
    if (srv->cfg->web) {
        char file[PATH_MAX];
        size_t len;
        char *body;
        if (es_static_resolve(srv->cfg->web_dir, path, file, sizeof file) == 0 &&
            (body = es_static_read(file, STATIC_MAX, &len)) != NULL) {
            int rc = http_respond(wsi, p, HTTP_STATUS_OK, es_static_mime(file), body, len);
            free(body);
            return rc;
        }
    }
    return http_text(wsi, p, HTTP_STATUS_NOT_FOUND, "not found\n");
}

/* ---- WebSocket ----------------------------------------------------------- */

static int origin_allowed(const es_config *cfg, struct lws *wsi)
{
    if (!cfg->allowed_origins)
        return 1;
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0)
        return 1; /* not a browser: browsers always send Origin */
    char *origin = es_xmalloc((size_t)len + 1);
    int ok = 0;
    if (lws_hdr_copy(wsi, origin, len + 1, WSI_TOKEN_ORIGIN) == len)
        for (size_t i = 0; i < cfg->nallowed_origins && !ok; i++)
            ok = strcmp(origin, cfg->allowed_origins[i]) == 0;
    free(origin);
    return ok;
}

/*
 * Decide on an upgrade before it happens: a full server, an address with too
 * many connections or a foreign Origin get an HTTP error instead of a
 * WebSocket. Returns 0 to allow, 1 when a response was sent.
 */
static int confirm_upgrade(es_server *srv, struct lws *wsi)
{
    const es_config *cfg = srv->cfg;
    unsigned status = 0;
    const char *why = NULL;
    es_refused_reason reason = ES_REFUSED_FULL;
    char addr[64] = "";
    client_address(srv, wsi, addr, sizeof addr);
    if (srv->stopping) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE, why = "stopping", reason = ES_REFUSED_FULL;
    } else if (!origin_allowed(cfg, wsi)) {
        status = HTTP_STATUS_FORBIDDEN, why = "origin not allowed", reason = ES_REFUSED_ORIGIN;
    } else if (cfg->max_connections && srv->core.sessions >= cfg->max_connections) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE, why = "server full", reason = ES_REFUSED_FULL;
    } else if (cfg->max_connections_per_address &&
               es_core_address_connections(&srv->core, addr) >= cfg->max_connections_per_address) {
        status = 429, why = "too many connections from this address",
        reason = ES_REFUSED_PER_ADDRESS;
    }
    if (!status)
        return 0;
    srv->refused[reason]++;
    es_log_client lc = {.address = addr};
    ES_CLOG(EARSHOT_LOG_INFO, "server", &lc, "upgrade refused: %s", why);
    if (lws_return_http_status(wsi, status, why))
        return -1;
    return 1;
}

static int ws_receive(es_server *srv, struct lws *wsi, pss *p, const char *in, size_t len)
{
    es_core *core = &srv->core;
    size_t max = srv->cfg->max_frame_bytes;
    if (lws_is_first_fragment(wsi)) {
        p->rx_len = 0;
        p->rx_discard = 0;
    }
    if (p->rx_discard)
        return 0;
    int final = lws_is_final_fragment(wsi);
    size_t total = p->rx_len + len + (final ? 0 : lws_remaining_packet_payload(wsi));
    if (total > max) {
        p->rx_discard = 1;
        p->rx_len = 0;
        es_core_frame_too_large(core, p->s);
        return 0;
    }
    if (final && p->rx_len == 0) {
        /* The common case: the whole message in one piece, no copy. */
        es_core_frame(core, p->s, in, len, lws_frame_is_binary(wsi));
        return 0;
    }
    if (p->rx_len + len > p->rx_cap) {
        size_t cap = p->rx_cap ? p->rx_cap : 1024;
        while (cap < p->rx_len + len)
            cap *= 2;
        p->rx = es_xrealloc(p->rx, cap);
        p->rx_cap = cap;
    }
    memcpy(p->rx + p->rx_len, in, len);
    p->rx_len += len;
    if (final) {
        es_core_frame(core, p->s, p->rx, p->rx_len, lws_frame_is_binary(wsi));
        p->rx_len = 0;
        if (p->rx_cap > 16384) { /* don't hold a big buffer for an idle client */
            free(p->rx);
            p->rx = NULL;
            p->rx_cap = 0;
        }
    }
    return 0;
}

static int ws_writeable(struct lws *wsi, pss *p)
{
    es_session *s = p->s;
    if (!s)
        return 0;
    if (p->tx_broken)
        return -1;
    if (s->ping_due && !s->closing) {
        /* A payload, because libwebsockets 4.1 does not report empty pongs. */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "ping", 4);
        if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
            return -1;
        es_core_ping_sent(&((es_server *)lws_vhost_user(lws_get_vhost(wsi)))->core, s);
        if (es_sendq_peek(&s->q))
            lws_callback_on_writable(wsi);
        return 0;
    }
    es_qmsg *m = es_sendq_peek(&s->q);
    if (m) {
        char *payload = es_qmsg_payload(m);
        int n = lws_write(wsi, (unsigned char *)payload, m->len, LWS_WRITE_TEXT);
        if (n < (int)m->len)
            return -1;
        es_sendq_pop(&s->q);
        if (es_sendq_peek(&s->q) || s->closing)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->closing) {
        static const char reasons[][24] = {"", "going away", "", "", "", "", "", "", "policy",
                                           "message too big"};
        int code = s->close_code ? s->close_code : ES_CLOSE_NORMAL;
        const char *why = code >= 1000 && code <= 1009 ? reasons[code - 1000] : "";
        lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
        return -1;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_vhost *vh = lws_get_vhost(wsi);
    es_server *srv = vh ? lws_vhost_user(vh) : NULL;
    pss *p = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return p ? http_request(srv, wsi, p, (const char *)in) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return p ? http_write_body(wsi, p) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (p) { /* NULL for an h2 network connection itself */
            free(p->body);
            p->body = NULL;
        }
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);

    case LWS_CALLBACK_ESTABLISHED: {
        char addr[64] = "";
        client_address(srv, wsi, addr, sizeof addr);
        memset(p, 0, sizeof *p);
        p->s = es_core_open(&srv->core, wsi, addr, capture_join_info(wsi));
        if (srv->stopping) /* draining: no new clients */
            es_core_shutdown(&srv->core);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (!p->s)
            return -1;
        es_core_heard(&srv->core, p->s);
        return ws_receive(srv, wsi, p, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (p->s)
            es_core_heard(&srv->core, p->s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(wsi, p);
    case LWS_CALLBACK_CLOSED:
        if (p->s) {
            es_core_closed(&srv->core, p->s);
            p->s = NULL;
        }
        free(p->rx);
        p->rx = NULL;
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {.name = "earshot", .callback = callback, .per_session_data_size = sizeof(pss),
     .rx_buffer_size = RX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_tick(lws_sorted_usec_list_t *sul)
{
    es_server *srv = lws_container_of(sul, es_server, tick);
    es_core_tick(&srv->core);
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
}

/* ---- the libev loop ------------------------------------------------------ */

/* Runs once per loop iteration, after every ready socket was served and
 * before the loop waits again: the iteration's NearbyPeers go out. */
static void ev_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)revents;
    es_server *srv = w->data;
    es_core_flush(&srv->core);
}

static void run_reload(es_server *srv)
{
    srv->reload = 0;
    if (!srv->reload_cb)
        return;
    if (srv->reload_cb(srv, srv->reload_ud) == 0)
        srv->reloads_ok++;
    else
        srv->reloads_failed++;
}

static void ev_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    es_server *srv = w->data;
    if (w->signum == SIGHUP) {
        run_reload(srv);
        return;
    }
    srv->stop = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void ev_on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    es_server *srv = w->data;
    if (srv->core.sessions == 0 || es_now() >= srv->drain_deadline)
        ev_break(loop, EVBREAK_ALL);
}

/* ---- signals in poll mode ------------------------------------------------ */

static es_server *signalled;

static void on_signal(int sig)
{
    if (!signalled)
        return;
    if (sig == SIGHUP)
        signalled->reload = 1;
    else
        signalled->stop = 1;
    lws_cancel_service(signalled->ctx); /* the one lws call that is signal-safe */
}

static void lws_log_to_ours(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    es_log_write(level == LLL_ERR ? EARSHOT_LOG_ERROR : EARSHOT_LOG_WARN, "lws", "%.*s", (int)n,
                 line);
}

es_server *es_server_create(const es_config *cfg, es_hooks *hooks, int port_override, char *err,
                            size_t errlen)
{
    es_server *srv = es_xcalloc(1, sizeof *srv);
    srv->cfg = cfg;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (cfg->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.port = CONTEXT_PORT_NO_LISTEN;
    void *foreign_loops[1];
    srv->use_ev = cfg->event_loop == ES_LOOP_LIBEV;
    if (srv->use_ev) {
        /*
         * libev (epoll) instead of libwebsockets' poll(): poll() walks every
         * socket on every wakeup, which at thousands of connections costs
         * more than earshot's whole work per message. earshot owns the loop
         * and libwebsockets joins it.
         */
        srv->loop = ev_default_loop(EVFLAG_AUTO);
        foreign_loops[0] = srv->loop;
        info.foreign_loops = foreign_loops;
        info.options |= LWS_SERVER_OPTION_LIBEV;
    }
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot create the libwebsockets context%s",
                 srv->use_ev ? " with libev (is the package libwebsockets-evlib-ev installed? "
                               "server.event_loop = \"poll\" does without it)"
                             : "");
        free(srv);
        return NULL;
    }


    memset(&info, 0, sizeof info);
    info.port = port_override >= 0 ? port_override : cfg->port;
    info.iface = strcmp(cfg->address, "0.0.0.0") == 0 || !*cfg->address ? NULL : cfg->address;
    info.protocols = protocols;
    info.user = srv;
    info.vhost_name = "earshot";
    /* Keepalive pings are earshot's own (es_core_tick): libwebsockets'
     * validity pings hit every connection, busy or not, and each answer
     * costs a walk of a list as long as the number of connections. */
    /* A client must finish its HTTP request (the upgrade) this fast: a
     * slowloris that trickles headers is dropped. */
    info.timeout_secs = (unsigned)cfg->handshake_timeout;
    info.timeout_secs_ah_idle = (unsigned)cfg->handshake_timeout;
    if (cfg->tls_cert) {
        /* lws serves TLS on a vhost only if its own options say so too. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
    }
    srv->vhost = lws_create_vhost(srv->ctx, &info);
    if (!srv->vhost) {
        snprintf(err, errlen, "cannot listen on %s:%d (port in use, not allowed, or a bad TLS "
                              "certificate or key?)",
                 cfg->address, info.port);
        lws_context_destroy(srv->ctx);
        free(srv);
        return NULL;
    }
    srv->port = lws_get_vhost_listen_port(srv->vhost);
    srv->start_wallclock = (double)time(NULL);
    es_core_init(&srv->core, cfg, hooks, &lws_transport, srv, NULL);
    /* Client messages leave their NearbyPeers to the end of the loop
     * iteration (ev_on_prepare, or after each lws_service): one per client
     * per iteration, and written in one burst. */
    srv->core.batch = 1;
    if (srv->use_ev) {
        ev_prepare_init(&srv->ev_flush, ev_on_prepare);
        srv->ev_flush.data = srv;
        ev_prepare_start(srv->loop, &srv->ev_flush);
        ev_unref(srv->loop); /* it alone does not keep the loop running */
    }
    /*
     * The tick runs on libwebsockets' scheduler in both loops. With libev
     * that matters: libwebsockets 4.1 arms its libev timer only while
     * something is scheduled, so without a recurring event of ours its own
     * timeouts (the handshake timeout among them) would never fire.
     */
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
    return srv;
}

int es_server_port(const es_server *srv) { return srv->port; }
size_t es_server_connections(const es_server *srv) { return srv->core.sessions; }

void es_server_on_reload(es_server *srv, int (*cb)(es_server *srv, void *ud), void *ud)
{
    srv->reload_cb = cb;
    srv->reload_ud = ud;
}

void es_server_apply(es_server *srv, const es_config *cfg, es_hooks *hooks)
{
    srv->cfg = cfg;
    es_core_reconfigure(&srv->core, cfg, hooks);
}

int es_server_run(es_server *srv)
{
    if (srv->use_ev) {
        ev_signal *w[3] = {&srv->ev_sigint, &srv->ev_sigterm, &srv->ev_sighup};
        int sig[3] = {SIGINT, SIGTERM, SIGHUP};
        for (int i = 0; i < 3; i++) {
            ev_signal_init(w[i], ev_on_signal, sig[i]);
            w[i]->data = srv;
            ev_signal_start(srv->loop, w[i]);
        }
        ev_run(srv->loop, 0);
        for (int i = 0; i < 3; i++)
            ev_signal_stop(srv->loop, w[i]);
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    signalled = srv;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    while (!srv->stop) {
        if (lws_service(srv->ctx, 0) < 0)
            return -1;
        es_core_flush(&srv->core);
        if (srv->reload)
            run_reload(srv);
    }
    return 0;
}

int es_server_drain(es_server *srv, double timeout)
{
    srv->stopping = 1;
    es_core_shutdown(&srv->core);
    srv->drain_deadline = es_now() + timeout;
    if (srv->use_ev) {
        ev_timer_init(&srv->ev_drain, ev_on_drain, 0.0, 0.02);
        srv->ev_drain.data = srv;
        ev_timer_start(srv->loop, &srv->ev_drain);
        ev_run(srv->loop, 0);
        ev_timer_stop(srv->loop, &srv->ev_drain);
    } else {
        while (srv->core.sessions > 0 && es_now() < srv->drain_deadline) {
            if (lws_service(srv->ctx, 0) < 0)
                break;
            es_core_flush(&srv->core);
        }
    }
    return srv->core.sessions == 0 ? 0 : -1;
}

void es_server_destroy(es_server *srv)
{
    if (!srv)
        return;
    lws_sul_schedule(srv->ctx, 0, &srv->tick, NULL, LWS_SET_TIMER_USEC_CANCEL);
    if (srv->use_ev) {
        ev_ref(srv->loop);
        ev_prepare_stop(srv->loop, &srv->ev_flush);
    }
    srv->core.batch = 0; /* from here each event flushes itself */
    /* Destroying the context closes every connection (CLOSED callbacks). */
    lws_context_destroy(srv->ctx);
    srv->ctx = NULL;
    if (srv->use_ev) {
        ev_run(srv->loop, EVRUN_NOWAIT); /* let libwebsockets' watchers wind down */
        ev_loop_destroy(srv->loop);
    }
    if (signalled == srv)
        signalled = NULL;
    es_core_free(&srv->core);
    free(srv);
}
