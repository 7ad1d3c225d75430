/*
 * floor - the cheapest server on earshot's stack, for calibration: the same
 * libwebsockets on the same libev (epoll) loop, a jansson parse of every
 * frame, a reply only to RequestPeerRefresh, and no state at all. Whatever earshot spends per
 * message above this floor is earshot's own cost; bench/run reports
 * earshot's figures as ratios to the floor measured in the same run.
 *
 *   floor [--port N] [--poll] [--send-each]
 *       --port N      default 8081; listens on 127.0.0.1 only
 *       --poll        libwebsockets' own poll() loop
 *       --send-each   a second calibration point: for every other message,
 *                     write a NearbyPeers padded to the same size to a
 *                     random other connection at once (a direct lws_write,
 *                     as earshot writes), as earshot's relays and most of
 *                     its notifications go to someone else. The difference
 *                     to the plain floor is what one more message sent
 *                     costs the server, kernel TCP included.
 */
#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static int send_each;
static struct lws_context *ctx;
static struct ev_loop *loop;

typedef struct pss {
    int owed;                 /* replies queued */
    size_t index;             /* in conns[] */
    char *rx;                 /* a message arriving in pieces */
    size_t rx_len, rx_cap;
} pss;

static const char reply[] = "{\"type\":\"NearbyPeers\",\"data\":[]}";
static unsigned char fwd[LWS_PRE + 65536];

/* An empty NearbyPeers of about len bytes, padded with a key clients ignore. */
static size_t padded_peers(char *out, size_t len)
{
    static const char head[] = "{\"type\":\"NearbyPeers\",\"data\":[],\"pad\":\"";
    size_t h = sizeof head - 1;
    if (len > 65536)
        len = 65536;
    if (len < h + 2)
        len = h + 2;
    memcpy(out, head, h);
    memset(out + h, 'x', len - h - 2);
    memcpy(out + len - 2, "\"}", 2);
    return len;
}

/* Every open connection, for --send-each to pick a target from. */
static struct lws **conns;
static size_t nconns, conns_cap;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static struct lws *random_other(struct lws *self)
{
    if (nconns < 2)
        return NULL;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    struct lws *t = conns[rng % nconns];
    return t == self ? conns[(rng + 1) % nconns] : t;
}

static void handle(pss *p, struct lws *wsi, const char *data, size_t len)
{
    json_error_t err;
    json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!doc)
        return;
    json_t *type = json_object_get(doc, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "RequestPeerRefresh") == 0) {
        p->owed++;
        lws_callback_on_writable(wsi);
    } else if (send_each) {
        struct lws *t = random_other(wsi);
        pss *tp = t ? lws_wsi_user(t) : NULL;
        if (t && !tp->owed && !lws_partial_buffered(t)) {
            size_t n = padded_peers((char *)fwd + LWS_PRE, len);
            lws_write(t, fwd + LWS_PRE, n, LWS_WRITE_TEXT);
        }
    }
    json_decref(doc);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(p, 0, sizeof *p);
        if (nconns == conns_cap) {
            conns_cap = conns_cap ? conns_cap * 2 : 1024;
            struct lws **grown = realloc(conns, conns_cap * sizeof *conns);
            if (!grown)
                return -1;
            conns = grown;
        }
        p->index = nconns;
        conns[nconns++] = wsi;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi))
            p->rx_len = 0;
        if (lws_is_final_fragment(wsi) && p->rx_len == 0) {
            handle(p, wsi, in, len);
            return 0;
        }
        if (p->rx_len + len > p->rx_cap) {
            p->rx_cap = (p->rx_len + len) * 2;
            p->rx = realloc(p->rx, p->rx_cap);
            if (!p->rx)
                return -1;
        }
        memcpy(p->rx + p->rx_len, in, len);
        p->rx_len += len;
        if (lws_is_final_fragment(wsi)) {
            handle(p, wsi, p->rx, p->rx_len);
            p->rx_len = 0;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!p->owed)
            return 0;
        unsigned char buf[LWS_PRE + sizeof reply];
        memcpy(buf + LWS_PRE, reply, sizeof reply - 1);
        if (lws_write(wsi, buf + LWS_PRE, sizeof reply - 1, LWS_WRITE_TEXT) < (int)(sizeof reply - 1))
            return -1;
        if (--p->owed)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        free(p->rx);
        p->rx = NULL;
        if (p->index < nconns && conns[p->index] == wsi) {
            conns[p->index] = conns[--nconns];
            ((pss *)lws_wsi_user(conns[p->index]))->index = p->index;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {.name = "floor", .callback = callback, .per_session_data_size = sizeof(pss), .rx_buffer_size = 4096},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
    lws_cancel_service(ctx);
}

static void on_ev_signal(struct ev_loop *l, ev_signal *w, int revents)
{
    (void)w, (void)revents;
    ev_break(l, EVBREAK_ALL);
}

/* libwebsockets arms its libev timer only while something is scheduled. */
static lws_sorted_usec_list_t keep_armed;
static void on_keep_armed(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(ctx, 0, sul, on_keep_armed, 100 * LWS_US_PER_MS);
}

int main(int argc, char **argv)
{
    int port = 8081, use_poll = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--poll") == 0)
            use_poll = 1;
        else if (strcmp(argv[i], "--send-each") == 0)
            send_each = 1;
        else {
            fprintf(stderr, "usage: floor [--port N] [--poll] [--send-each]\n");
            return 2;
        }
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    void *foreign[1];
    if (!use_poll) {
        loop = ev_default_loop(EVFLAG_AUTO);
        foreign[0] = loop;
        info.foreign_loops = foreign;
        info.options |= LWS_SERVER_OPTION_LIBEV;
    }
    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "floor: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    fprintf(stderr, "floor listening on ws://127.0.0.1:%d/ (%s)\n", port, use_poll ? "poll" : "libev");
    if (use_poll) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        while (!stop && lws_service(ctx, 0) >= 0)
            ;
        lws_context_destroy(ctx);
        return 0;
    }
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, on_ev_signal, SIGINT);
    ev_signal_init(&sigterm, on_ev_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    lws_sul_schedule(ctx, 0, &keep_armed, on_keep_armed, 100 * LWS_US_PER_MS);
    ev_run(loop, 0);
    lws_sul_schedule(ctx, 0, &keep_armed, NULL, LWS_SET_TIMER_USEC_CANCEL);
    lws_context_destroy(ctx);
    ev_run(loop, EVRUN_NOWAIT);
    return 0;
}
