/*
 * floor - the cheapest server on earshot's stack, for calibration: the same
 * libwebsockets on the same libev (epoll) loop, a jansson parse of every
 * frame, a reply only to RequestPeerRefresh, and no state at all. Whatever earshot spends per
 * message above this floor is earshot's own cost; bench/run reports
 * earshot's figures as ratios to the floor measured in the same run.
 *
 *   floor [--port N] [--poll]   (default 8081; listens on 127.0.0.1 only;
 *                               --poll: libwebsockets' own poll() loop)
 */
#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static struct lws_context *ctx;
static struct ev_loop *loop;

typedef struct pss {
    int owed;                 /* replies queued */
    char *rx;                 /* a message arriving in pieces */
    size_t rx_len, rx_cap;
} pss;

static const char reply[] = "{\"type\":\"NearbyPeers\",\"data\":[]}";

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
        else {
            fprintf(stderr, "usage: floor [--port N] [--poll]\n");
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
