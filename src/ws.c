#include "ws.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

_Static_assert(ES_WIRE_HEADROOM >= LWS_PRE, "message headroom must cover LWS_PRE");

#define JOIN_INFO_MAX 8192 /* bytes of path, query and headers kept for join hooks */

/*
 * Lingering close: how long, and how many bytes of what the client still
 * sends, the server reads and discards after its close frame before it
 * closes the socket. Closing a socket with unread input makes the kernel
 * send a reset, and a reset throws away whatever the client had not yet
 * received: the close frame and the messages queued before it.
 */
#define LINGER_SECONDS 3
#define LINGER_BYTES (1u << 20)

/* ---- writing what the core sends ---------------------------------------- */

static void want_write(void *tctx, es_session *s)
{
    (void)tctx;
    lws_callback_on_writable((struct lws *)s->conn);
}

/*
 * Write a message the moment it is made when the connection has nothing
 * waiting: the local delivery checks its side (no queue, no ping owed, not
 * closing), this checks that libwebsockets holds no remainder of an
 * earlier write. Going through the writeable callback instead costs two
 * epoll_ctl calls and a loop iteration per message. A write the kernel
 * only takes in part is still whole as far as the core is concerned:
 * libwebsockets keeps the rest and sends it when the socket has room,
 * before any writeable callback. A failed write marks the connection; its
 * next writeable callback closes it.
 */
static int send_now(void *tctx, es_session *s, char *payload, size_t len)
{
    (void)tctx;
    struct lws *wsi = s->conn;
    es_ws_conn *p = lws_wsi_user(wsi);
    if (p->tx_broken || lws_partial_buffered(wsi))
        return 0;
    if (lws_write(wsi, (unsigned char *)payload, len, LWS_WRITE_TEXT) < (int)len) {
        p->tx_broken = 1;
        lws_callback_on_writable(wsi);
    }
    return 1;
}

const es_transport es_ws_transport = {.want_write = want_write, .send_now = send_now};

/*
 * The close frame is the last thing the server writes. Once libwebsockets
 * holds none of it back, the write side is shut (a FIN behind the frame),
 * and the connection lingers: what the client still sends is read and
 * thrown away until it answers with its own close frame, ends the
 * connection, or passes LINGER_SECONDS or LINGER_BYTES. Only then is the
 * socket closed, with nothing unread in it, so no reset.
 */
static void shut_write_side(struct lws *wsi, es_ws_conn *p)
{
    p->linger = ES_LINGER_SHUT;
    lws_sockfd_type fd = lws_get_socket_fd(wsi);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
}

static int start_lingering(struct lws *wsi, es_ws_conn *p, int code)
{
    static const char reasons[][24] = {"", "going away", "", "", "", "", "", "invalid utf-8",
                                       "policy", "message too big"};
    const char *why = code >= 1000 && code <= 1009 ? reasons[code - 1000] : "";
    /* The frame by hand (lws 4.1 keeps its close writer private): FIN and
     * opcode 8, the payload length, the code, the reason. */
    unsigned char frame[LWS_PRE + 4 + sizeof reasons[0]];
    unsigned char *f = frame + LWS_PRE;
    size_t n = strlen(why);
    f[0] = 0x88;
    f[1] = (unsigned char)(2 + n);
    f[2] = (unsigned char)(code >> 8);
    f[3] = (unsigned char)(code & 0xff);
    memcpy(f + 4, why, n);
    if (lws_write(wsi, f, n + 4, LWS_WRITE_RAW) < (int)(n + 4))
        return -1;
    p->linger = ES_LINGER_SENT;
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, LINGER_SECONDS);
    if (lws_partial_buffered(wsi))
        lws_callback_on_writable(wsi); /* shut once libwebsockets has sent the rest */
    else
        shut_write_side(wsi, p);
    return 0;
}

/* One write per callback: what the local delivery says comes next. */
int es_ws_writeable(es_ws *ws, struct lws *wsi, es_ws_conn *p)
{
    es_session *s = p->s;
    if (!s)
        return 0;
    if (p->linger) {
        if (p->linger == ES_LINGER_SENT)
            shut_write_side(wsi, p);
        return 0;
    }
    if (p->tx_broken)
        return -1;
    es_write w = es_local_next(s);
    switch (w.kind) {
    case ES_WRITE_PING: {
        /* A payload, because libwebsockets 4.1 does not report empty pongs. */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "ping", 4);
        if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
            return -1;
        es_core_ping_sent(ws->core, s);
        break;
    }
    case ES_WRITE_MESSAGE:
        if (lws_write(wsi, (unsigned char *)w.payload, w.len, LWS_WRITE_TEXT) < (int)w.len)
            return -1;
        break;
    case ES_WRITE_CLOSE:
        return start_lingering(wsi, p, w.code);
    default:
        return 0;
    }
    if (es_local_done(s, w.kind))
        lws_callback_on_writable(wsi);
    return 0;
}

/* ---- reading: frames, assembled under the size limit --------------------- */

static int ws_receive(es_ws *ws, struct lws *wsi, es_ws_conn *p, const char *in, size_t len)
{
    es_core *core = ws->core;
    size_t max = ws->cfg->max_frame_bytes;
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

int es_ws_received(es_ws *ws, struct lws *wsi, es_ws_conn *c, const char *in, size_t len)
{
    if (!c->s)
        return -1;
    if (c->linger) { /* discarded, up to a bound */
        c->linger_bytes += len;
        return c->linger_bytes > LINGER_BYTES ? -1 : 0;
    }
    es_core_heard(ws->core, c->s);
    return ws_receive(ws, wsi, c, in, len);
}

int es_ws_pong(es_ws *ws, es_ws_conn *c)
{
    if (c->s)
        es_core_heard(ws->core, c->s);
    return 0;
}

/* ---- who the client is ----------------------------------------------------- */

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
 * Copy path, query and the request headers (those libwebsockets knows by
 * name, and the ones server.join_headers lists) into one allocation. lws frees
 * its header table once the upgrade is done, so the join hooks, which run
 * at the first UpdatePosition, need their own copy.
 */
static es_join_info *capture_join_info(const es_config *cfg, struct lws *wsi)
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

    /* headers it does not know by name, as server.join_headers lists them:
     * lws keeps those apart, under their lower-case name and colon */
    for (size_t i = 0; i < cfg->njoin_headers && nh < 64; i++) {
        const char *want = cfg->join_headers[i];
        char key[ES_JOIN_HEADER_MAX + 2];
        int kl = snprintf(key, sizeof key, "%s:", want);
        int vl = lws_hdr_custom_length(wsi, key, kl);
        if (vl <= 0 || (size_t)vl >= sizeof tmp)
            continue;
        if (used + (size_t)kl + (size_t)vl + 2 > JOIN_INFO_MAX)
            break;
        if (lws_hdr_custom_copy(wsi, tmp, (int)sizeof tmp, key, kl) < 0)
            continue;
        name_off[nh] = used;
        memcpy(text + used, want, (size_t)kl); /* the name and its NUL */
        used += (size_t)kl;
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

void es_ws_peer_address(struct lws *wsi, char *out, size_t len)
{
    lws_get_peer_simple(wsi, out, len);
    strip_mapped(out);
}

/*
 * The client's address. Behind a proxy (server.behind_proxy), the last
 * X-Forwarded-For entry is the address the proxy itself saw, so that is the
 * one to trust; entries before it are whatever the client claimed.
 */
static void client_address(const es_config *cfg, struct lws *wsi, char *out, size_t len)
{
    es_ws_peer_address(wsi, out, len);
    if (!cfg->behind_proxy)
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

/* ---- the upgrade ------------------------------------------------------------ */

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
 * WebSocket.
 */
int es_ws_confirm_upgrade(es_ws *ws, struct lws *wsi)
{
    const es_config *cfg = ws->cfg;
    unsigned status = 0;
    const char *why = NULL;
    es_refused_reason reason = ES_REFUSED_FULL;
    char addr[64] = "";
    client_address(cfg, wsi, addr, sizeof addr);
    if (ws->stopping) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE, why = "stopping", reason = ES_REFUSED_FULL;
    } else if (!origin_allowed(cfg, wsi)) {
        status = HTTP_STATUS_FORBIDDEN, why = "origin not allowed", reason = ES_REFUSED_ORIGIN;
    } else if (cfg->max_connections && es_core_occupancy(ws->core) >= cfg->max_connections) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE, why = "server full", reason = ES_REFUSED_FULL;
    } else if (cfg->max_connections_per_address &&
               es_core_address_connections(ws->core, addr) >= cfg->max_connections_per_address) {
        status = 429, why = "too many connections from this address",
        reason = ES_REFUSED_PER_ADDRESS;
    }
    if (!status)
        return 0;
    ws->refused[reason]++;
    es_log_client lc = {.address = addr};
    ES_CLOG(EARSHOT_LOG_INFO, "server", &lc, "upgrade refused: %s", why);
    if (lws_return_http_status(wsi, status, why))
        return -1;
    return 1;
}

/* ---- the session's life ---------------------------------------------------- */

int es_ws_established(es_ws *ws, struct lws *wsi, es_ws_conn *c)
{
    char addr[64] = "";
    client_address(ws->cfg, wsi, addr, sizeof addr);
    memset(c, 0, sizeof *c);
    c->s = es_core_open(ws->core, wsi, addr, capture_join_info(ws->cfg, wsi));
    if (ws->stopping) /* draining: no new clients */
        es_core_shutdown(ws->core);
    return 0;
}

/*
 * The client sent a close frame: a goodbye, so the core ends its session
 * when the connection closes rather than holding it for a resume. A
 * connection that closes without one (a reset, a dead TCP) was lost.
 */
int es_ws_peer_closing(es_ws *ws, es_ws_conn *c)
{
    /* The answer to our own close frame is no goodbye: the server ended
     * the connection (a ping timeout leaves a resumable session held). The
     * client has the frame, so close now; the write side is shut, there is
     * no echo to send. */
    if (c->linger)
        return -1;
    if (c->s)
        es_core_goodbye(ws->core, c->s);
    return 0;
}

void es_ws_closed(es_ws *ws, es_ws_conn *c)
{
    if (c->s) {
        es_core_closed(ws->core, c->s);
        c->s = NULL;
    }
    free(c->rx);
    c->rx = NULL;
}
