#include "server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "cluster.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "moderation.h"
#include "util.h"
#include "ws.h"

#ifndef EARSHOT_VERSION
#define EARSHOT_VERSION "0.0.0"
#endif

#define PROTOCOL "earshot"
#define TICK_US (100 * LWS_US_PER_MS)
#define RX_CHUNK 4096 /* lws hands us frames in pieces of at most this */

struct es_server {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    es_core core;
    es_ws ws;
    es_http http;
    es_loop *loop;
    es_cluster *cluster; /* several nodes: NULL when cluster.enabled is false */
    lws_sorted_usec_list_t tick;
    int port;
    int (*reload_cb)(es_server *srv, void *ud);
    void *reload_ud;
    uint64_t reloads_ok, reloads_failed;
    double start_wallclock;
};

/* Per-connection data lws allocates (zeroed) for us: a WebSocket, or an
 * HTTP request. The transport finds its part with lws_wsi_user(), so it
 * comes first. */
typedef struct conn {
    es_ws_conn ws;
    es_http_conn http;
} conn;
_Static_assert(offsetof(conn, ws) == 0, "the WebSocket part starts the per-session data");

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_vhost *vh = lws_get_vhost(wsi);
    es_server *srv = vh ? lws_vhost_user(vh) : NULL;
    conn *c = user;

    switch (reason) {
    /* plain HTTP (http.h) */
    case LWS_CALLBACK_CHECK_ACCESS_RIGHTS:
        return c ? es_http_check(&srv->http, wsi, &c->http, in) : -1;
    case LWS_CALLBACK_HTTP:
        return c ? es_http_request(&srv->http, wsi, &c->http, (const char *)in) : -1;
    case LWS_CALLBACK_HTTP_BODY:
        return c ? es_http_body(&srv->http, wsi, &c->http, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c ? es_http_body_done(&srv->http, wsi, &c->http) : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? es_http_writeable(wsi, &c->http) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        es_http_closed(c ? &c->http : NULL);
        break;

    /* WebSocket (ws.h) */
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return es_ws_confirm_upgrade(&srv->ws, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return es_ws_established(&srv->ws, wsi, &c->ws);
    case LWS_CALLBACK_RECEIVE:
        return es_ws_received(&srv->ws, wsi, &c->ws, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        return es_ws_pong(&srv->ws, &c->ws);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return es_ws_writeable(&srv->ws, wsi, &c->ws);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (es_ws_peer_closing(&srv->ws, &c->ws))
            return -1;
        break;
    case LWS_CALLBACK_CLOSED:
        es_ws_closed(&srv->ws, &c->ws);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {.name = PROTOCOL, .callback = callback, .per_session_data_size = sizeof(conn),
     .rx_buffer_size = RX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- what the loop and the HTTP side call back ------------------------- */

static void on_tick(lws_sorted_usec_list_t *sul)
{
    es_server *srv = lws_container_of(sul, es_server, tick);
    es_core_tick(&srv->core);
    lws_sul_schedule(srv->ctx, 0, &srv->tick, on_tick, TICK_US);
}

static void flush(void *ud)
{
    es_server *srv = ud;
    es_core_flush(&srv->core);
    if (srv->cluster)
        es_cluster_flush(srv->cluster);
}

static void reload(void *ud)
{
    es_server *srv = ud;
    if (!srv->reload_cb)
        return;
    if (srv->reload_cb(srv, srv->reload_ud) == 0)
        srv->reloads_ok++;
    else
        srv->reloads_failed++;
}

static int drained(void *ud)
{
    es_server *srv = ud;
    return srv->core.sessions == 0;
}

static void render_metrics(es_buf *out, void *ud)
{
    es_server *srv = ud;
    es_metrics_source src = {
        .core = &srv->core,
        .hooks = srv->core.hooks,
        .reloads_ok = srv->reloads_ok,
        .reloads_failed = srv->reloads_failed,
        .refused = srv->ws.refused,
        .start_wallclock = srv->start_wallclock,
        .version = EARSHOT_VERSION,
    };
    es_metrics_render(out, &src);
    if (srv->cluster)
        es_cluster_metrics(srv->cluster, out);
}

static void lws_log_to_ours(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    es_log_write(level == LLL_ERR ? EARSHOT_LOG_ERROR : EARSHOT_LOG_WARN, "lws", "%.*s", (int)n,
                 line);
}

/* ---- the API --------------------------------------------------------------- */

es_server *es_server_create(const es_config *cfg, es_hooks *hooks, int port_override, char *err,
                            size_t errlen)
{
    es_server *srv = es_xcalloc(1, sizeof *srv);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
    es_loop_ops ops = {.flush = flush, .reload = reload, .drained = drained, .ud = srv};
    srv->loop = es_loop_create(cfg->event_loop, &ops);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (cfg->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.port = CONTEXT_PORT_NO_LISTEN;
    es_loop_context_info(srv->loop, &info);
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot create the libwebsockets context%s",
                 es_loop_context_hint(srv->loop));
        es_loop_destroy(srv->loop);
        free(srv);
        return NULL;
    }

    es_http_init(&srv->http, cfg, PROTOCOL, render_metrics, srv);
    memset(&info, 0, sizeof info);
    info.port = port_override >= 0 ? port_override : cfg->port;
    info.iface = strcmp(cfg->address, "0.0.0.0") == 0 || !*cfg->address ? NULL : cfg->address;
    info.protocols = protocols;
    info.mounts = es_http_mounts(&srv->http);
    info.user = srv;
    info.vhost_name = "earshot";
    if (cfg->reuse_port)
        info.options |= LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE; /* SO_REUSEPORT */
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
        es_loop_destroy(srv->loop);
        free(srv);
        return NULL;
    }
    srv->port = lws_get_vhost_listen_port(srv->vhost);
    srv->start_wallclock = (double)time(NULL);
    es_core_init(&srv->core, cfg, hooks, &es_ws_transport, srv, NULL);
    /* bans and mutes outlive reloads */
    srv->core.mod = es_moderation_shared();
    srv->ws.core = &srv->core;
    srv->ws.cfg = cfg;
    /* Client messages leave their NearbyPeers to the end of the loop pass
     * (the loop's flush): one per client per pass, and written in one
     * burst. */
    srv->core.batch = 1;
    if (cfg->cluster_enabled) {
        srv->cluster = es_cluster_create(cfg, &srv->core, es_loop_ev(srv->loop), srv->port, err,
                                         errlen);
        if (!srv->cluster) {
            es_core_free(&srv->core);
            lws_context_destroy(srv->ctx);
            es_loop_destroy(srv->loop);
            free(srv);
            return NULL;
        }
    }
    /* /admin names this node: its cluster name, else the host name */
    char node[256] = "";
    if (srv->cluster)
        snprintf(node, sizeof node, "%s", es_cluster_node_name(srv->cluster));
    else if (gethostname(node, sizeof node - 1) != 0)
        node[0] = '\0';
    es_http_admin(&srv->http, &srv->core, srv->core.mod, node);
    es_loop_attach(srv->loop, srv->ctx);
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
    srv->ws.cfg = cfg;
    if (srv->cluster)
        es_cluster_apply(srv->cluster, cfg);
    es_http_apply(&srv->http, cfg);
    es_core_reconfigure(&srv->core, cfg, hooks);
}

int es_server_run(es_server *srv) { return es_loop_run(srv->loop); }

int es_server_drain(es_server *srv, double timeout)
{
    srv->ws.stopping = srv->http.stopping = 1;
    if (srv->cluster)
        es_cluster_leave(srv->cluster); /* the others take its maps and hold its clients */
    es_core_shutdown(&srv->core);
    return es_loop_drain(srv->loop, timeout);
}

void es_server_destroy(es_server *srv)
{
    if (!srv)
        return;
    lws_sul_schedule(srv->ctx, 0, &srv->tick, NULL, LWS_SET_TIMER_USEC_CANCEL);
    es_loop_detach(srv->loop);
    srv->core.batch = 0; /* from here each event flushes itself */
    /* Destroying the context closes every connection (CLOSED callbacks). */
    lws_context_destroy(srv->ctx);
    srv->ctx = NULL;
    es_cluster_destroy(srv->cluster); /* hands the core its own delivery back */
    es_loop_destroy(srv->loop);
    es_core_free(&srv->core);
    free(srv);
}
