/*
 * floor - the cheapest server on earshot's stack, for calibration: the same
 * libwebsockets event loop, a jansson parse of every frame, a reply only to
 * RequestPeerRefresh, and no state at all. Whatever earshot spends per
 * message above this floor is earshot's own cost; bench/run reports
 * earshot's figures as ratios to the floor measured in the same run.
 *
 *   floor [--port N]        (default 8081; listens on 127.0.0.1 only)
 */
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;
static struct lws_context *ctx;

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

int main(int argc, char **argv)
{
    int port = 8081;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: floor [--port N]\n");
            return 2;
        }
    }
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "floor: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fprintf(stderr, "floor listening on ws://127.0.0.1:%d/\n", port);
    while (!stop && lws_service(ctx, 0) >= 0)
        ;
    lws_context_destroy(ctx);
    return 0;
}
