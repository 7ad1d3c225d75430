/*
 * protocol - the wire format of PROTOCOL.md: client frames in, server
 * messages out.
 *
 * es_protocol_parse() validates one text frame completely (JSON syntax,
 * envelope, every field's type and range, client_id rules) and either fills
 * an es_msg or writes the Error text the client should get. It never looks
 * at session state: "not registered yet" and friends are the core's call.
 *
 * The es_protocol_write_*() functions append complete server messages to an
 * es_buf, ready to be queued as one WebSocket text frame.
 */
#ifndef EARSHOT_PROTOCOL_H
#define EARSHOT_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "earshot/plugin.h"

#define ES_ID_MAX 128      /* bytes in a client_id */
#define ES_ERROR_MAX 512   /* bytes in an Error text we generate */

typedef enum es_msg_type {
    ES_MSG_UPDATE_POSITION = 0,
    ES_MSG_REQUEST_PEER_REFRESH,
    ES_MSG_SEND_OFFER,
    ES_MSG_SEND_ANSWER,
    ES_MSG_SEND_ICE_CANDIDATE,
    ES_MSG_DISCONNECT,
    ES_MSG_REQUEST_ICE_SERVERS,
    ES_MSG_TYPE_COUNT
} es_msg_type;

/* Wire name of a client message type ("UpdatePosition", ...). */
const char *es_msg_type_name(es_msg_type t);

/*
 * A validated client message. String pointers point into the parsed JSON
 * document owned by the message: valid until es_msg_release(). They are
 * NUL-terminated; relay payloads may also contain NUL bytes, hence lengths.
 */
typedef struct es_msg {
    es_msg_type type;
    /* UpdatePosition */
    const char *client_id;
    size_t client_id_len;
    earshot_position pos;
    int resumable;            /* "resumable": true (0 when absent or false) */
    const char *resume_token; /* "resume_token", or NULL when absent */
    size_t resume_token_len;
    /* SendOffer, SendAnswer, SendIceCandidate */
    const char *target_id;
    size_t target_id_len;
    const char *payload;
    size_t payload_len;
    void *doc_; /* the parsed document (json_t *); owned */
} es_msg;

/*
 * Parse one text frame. Returns 0 and fills *msg, or returns -1 and writes
 * the client-facing error text (NUL-terminated, at most ES_ERROR_MAX bytes
 * including the NUL) into err. After a 0 return, call es_msg_release().
 */
int es_protocol_parse(const char *text, size_t len, es_msg *msg, char err[ES_ERROR_MAX]);
void es_msg_release(es_msg *msg);

/* 1 when id[0..len) satisfies the client_id rules of PROTOCOL.md. */
int es_protocol_id_valid(const char *id, size_t len);

/*
 * Append to out the text "<prefix><s>" where s is cut to at most max bytes
 * on a UTF-8 boundary ("..." marks a cut). For echoing client text back.
 */
void es_protocol_format_echo(char *out, size_t outlen, const char *prefix, const char *s,
                             size_t len, size_t max, const char *suffix);

/* ---- server messages ---------------------------------------------------- */

/* {"type":"Error","data":"<text>"} */
void es_protocol_write_error(es_buf *b, const char *text);

/* {"type":"NearbyPeers","data":[ids...]}: begin, add each id, end. */
void es_protocol_write_peers_begin(es_buf *b);
void es_protocol_write_peers_add(es_buf *b, const char *id, size_t len, int first);
void es_protocol_write_peers_end(es_buf *b);

/* The longest resume_token accepted (base64url characters). */
#define ES_RESUME_TOKEN_MAX 128

/* {"type":"Session","data":{"resume_token":"<token>","grace":<grace>}} */
void es_protocol_write_session(es_buf *b, const char *token, size_t token_len, double grace);

/* {"type":"ReceiveOffer","data":{"sender_id":"..","offer":".."}} and the
 * same for answers and ICE candidates; kind is a relay message type. */
void es_protocol_write_relay(es_buf *b, es_msg_type kind, const char *sender_id,
                             size_t sender_len, const char *payload, size_t payload_len);

#endif
