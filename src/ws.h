/*
 * ws - the WebSocket transport on libwebsockets: whether an upgrade may
 * happen, who the client is (its address, X-Forwarded-For behind a proxy,
 * what its upgrade request said for the join hooks), frame assembly under
 * server.max_frame_bytes, and writing what the core sends: at once when
 * nothing waits (send_now), else one message per writeable callback.
 *
 * The server's protocol callback hands these functions the WebSocket
 * events; they run on the loop's thread.
 */
#ifndef EARSHOT_WS_H
#define EARSHOT_WS_H

#include <libwebsockets.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "metrics.h"

/* What the transport shares with the server. */
typedef struct es_ws {
    es_core *core;
    const es_config *cfg; /* the running config (a reload switches it) */
    int stopping;         /* draining: upgrades are refused, newcomers closed */
    uint64_t refused[ES_REFUSED_COUNT]; /* upgrades turned away, by reason */
} es_ws;

/* Per connection, at the start of libwebsockets' per-session data (zeroed
 * by it): send_now finds it with lws_wsi_user(). */
typedef struct es_ws_conn {
    es_session *s;      /* set once established */
    char *rx;           /* a message arriving in several pieces */
    size_t rx_len, rx_cap;
    uint8_t rx_discard; /* the rest of an oversized message */
    uint8_t tx_broken;  /* a direct write failed: close at the next chance */
    uint8_t linger;     /* es_linger: the close frame is written, input is discarded */
    size_t linger_bytes; /* bytes discarded since */
} es_ws_conn;

/* Where a connection is in its lingering close. */
enum es_linger { ES_LINGER_NO, ES_LINGER_SENT, ES_LINGER_SHUT };

/* The core's way to write (tctx unused). */
extern const es_transport es_ws_transport;

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to allow, 1 when a refusal was sent,
 * -1 to drop the connection. */
int es_ws_confirm_upgrade(es_ws *ws, struct lws *wsi);
/* LWS_CALLBACK_ESTABLISHED: the session opens. */
int es_ws_established(es_ws *ws, struct lws *wsi, es_ws_conn *c);
/* LWS_CALLBACK_RECEIVE and LWS_CALLBACK_RECEIVE_PONG. */
int es_ws_received(es_ws *ws, struct lws *wsi, es_ws_conn *c, const char *in, size_t len);
int es_ws_pong(es_ws *ws, es_ws_conn *c);
/* LWS_CALLBACK_SERVER_WRITEABLE. */
int es_ws_writeable(es_ws *ws, struct lws *wsi, es_ws_conn *c);
/* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: the client said goodbye. Non-zero
 * when the connection is to close at once (it answers our close frame). */
int es_ws_peer_closing(es_ws *ws, es_ws_conn *c);
/* LWS_CALLBACK_CLOSED: the session ends. */
void es_ws_closed(es_ws *ws, es_ws_conn *c);

/* The address of the connection's peer (IPv4 clients of a dual-stack socket
 * as plain IPv4), whatever X-Forwarded-For says. */
void es_ws_peer_address(struct lws *wsi, char *out, size_t len);

#endif
