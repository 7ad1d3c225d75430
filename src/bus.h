/*
 * bus - the messages earshot nodes send each other through Redis.
 *
 * Every message is a packet with a fixed header, checked before a single
 * field of its body is trusted (Redis' own cluster bus does the same):
 *
 *   "eb"  version  type  incarnation(8)  name_len(1) name  body_len(4)  body
 *
 * all integers big-endian. `name` is the sending node's name (1..64 bytes
 * of [A-Za-z0-9._:-]) and `incarnation` tells a restarted node from the one
 * it replaces. One Redis message carries one or more packets back to back:
 * a node batches what it has for one inbox within a loop pass. With
 * cluster.secret set, every Redis message starts with a 16-byte tag, the
 * first bytes of HMAC-SHA256(secret, channel name, 0, packets): a message
 * from anyone without the secret, or moved to another channel, is refused
 * before its first packet is read (cluster.c).
 *
 * Body fields, in order (u64 = 8 bytes, str = u16 length + bytes, bytes =
 * u32 length + bytes); every length is checked against what is left and
 * against the field's own limit, and unknown flag bits are refused:
 *
 *   HEARTBEAT  flags(1: leaving), u64 sequence (grows by one per heartbeat of an
 *              incarnation: a heartbeat replayed later is stale)
 *   OPEN       conn, flags(1: resumable, 2: reattach, 4: Session owed), str addr, str token,
 *              str path, str query, u16 nheaders {str name, str value},
 *              str lost_owner, bytes frame
 *   FRAME      conn, bytes frame
 *   CLOSED     conn, flags(1: may be held)
 *   OUT        conn, flags(1: the answer to a request), bytes payload
 *   CLOSE      conn, u16 code
 *   REHOME     conn, flags(1: resumable, 4: Session owed), str token, bytes frame
 *              (frame empty: re-register it where it stands)
 *   TOKEN      conn, str client_id, str token: the serving node registered the
 *              client (as client_id; token "" = not resumable), or gave it a
 *              new token
 *   RELAY      conn, u8 type, str sender, str addr, 5 x u32 position (game,
 *              map, x, y, channel), str target, bytes payload
 *   RELAY_FAIL conn, u8 type, u8 error, str text
 *
 * "conn" is the edge node's number for the connection (es_session.serial
 * there); in RELAY and RELAY_FAIL, the sender's session number on the node
 * that asked. RELAY carries a relay to a client of a map another node
 * serves; RELAY_FAIL says why it was not delivered (an es_error_kind). Decoding never allocates: the message points into the packet.
 */
#ifndef EARSHOT_BUS_H
#define EARSHOT_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "earshot/plugin.h"

#define ES_BUS_VERSION 1
#define ES_BUS_NAME_MAX 64
#define ES_BUS_ADDR_MAX 63
#define ES_BUS_TOKEN_MAX 47
#define ES_BUS_PATH_MAX 4096
#define ES_BUS_HEADERS_MAX 64
#define ES_BUS_HEADER_NAME_MAX 64
#define ES_BUS_HEADER_VALUE_MAX 4096
#define ES_BUS_FRAME_MAX (16u * 1024 * 1024)
#define ES_BUS_ID_MAX 128
#define ES_BUS_TEXT_MAX 512

typedef enum es_bus_type {
    ES_BUS_HEARTBEAT = 1,
    ES_BUS_OPEN,
    ES_BUS_FRAME,
    ES_BUS_CLOSED,
    ES_BUS_OUT,
    ES_BUS_CLOSE,
    ES_BUS_REHOME,
    ES_BUS_TOKEN,
    ES_BUS_RELAY,
    ES_BUS_RELAY_FAIL,
    ES_BUS_TYPE_END
} es_bus_type;

enum {
    ES_BUS_F_LEAVING = 1,      /* HEARTBEAT: the node is shutting down */
    ES_BUS_F_RESUMABLE = 1,    /* OPEN, REHOME */
    ES_BUS_F_REATTACH = 2,     /* OPEN: registered before; skip join, keep the token */
    ES_BUS_F_SESSION_OWED = 4, /* OPEN, REHOME: its Session message is still to be sent */
    ES_BUS_F_HOLD = 1,         /* CLOSED: the connection was lost, not ended */
    ES_BUS_F_REPLY = 1         /* OUT: answers the client's request: never held back */
};

typedef struct es_bus_str {
    const char *p;
    size_t len;
} es_bus_str;

typedef struct es_bus_msg {
    es_bus_type type;
    es_bus_str node;      /* the sender */
    uint64_t incarnation; /* the sender's */
    uint64_t conn;
    uint64_t seq;       /* HEARTBEAT */
    unsigned flags;
    unsigned code;      /* CLOSE: the close code; RELAY_FAIL: the error */
    unsigned relay;     /* RELAY, RELAY_FAIL: the client message type */
    int32_t pos[5];     /* RELAY: game, map, x, y, channel */
    es_bus_str sender, target, text;
    es_bus_str addr, token, path, query, lost_owner;
    es_bus_str data; /* frame or payload */
    size_t nheaders;
    es_bus_str header_names[ES_BUS_HEADERS_MAX], header_values[ES_BUS_HEADERS_MAX];
} es_bus_msg;

/* Why a packet was refused (counted per reason). */
typedef enum es_bus_error {
    ES_BUS_OK = 0,
    ES_BUS_ERR_SHORT,   /* shorter than its header or its declared length */
    ES_BUS_ERR_MAGIC,
    ES_BUS_ERR_VERSION,
    ES_BUS_ERR_TYPE,
    ES_BUS_ERR_NAME,
    ES_BUS_ERR_FIELD,   /* a field past its limit, a bad flag, bytes left over */
    /* not the decoder's: what cluster.c refuses of well-formed packets */
    ES_BUS_ERR_AUTH,    /* the message's tag is wrong (cluster.secret) */
    ES_BUS_ERR_STALE,   /* from an incarnation gone, or a heartbeat replayed */
    ES_BUS_ERR_COUNT
} es_bus_error;
extern const char *const es_bus_error_names[ES_BUS_ERR_COUNT];

/*
 * Decode the packet at *p (n bytes left). ES_BUS_OK: *m is filled and *used
 * is the packet's length. Otherwise nothing is trusted, and the rest of the
 * Redis message is dropped (the packets behind a bad one cannot be found).
 */
es_bus_error es_bus_decode(const char *p, size_t n, es_bus_msg *m, size_t *used);

/* 1 when name[0..len) is a valid node name. */
int es_bus_name_valid(const char *name, size_t len);

/* ---- encoding: begin, fields in the order above, end --------------------- */

/* Start a packet of type from node (name, incarnation); returns its offset. */
size_t es_bus_begin(es_buf *b, es_bus_type type, const char *node, uint64_t incarnation);
/* Close the packet begun at offset start (fills in its length). */
void es_bus_end(es_buf *b, size_t start);

void es_bus_put_u8(es_buf *b, unsigned v);
void es_bus_put_u16(es_buf *b, unsigned v);
void es_bus_put_u32(es_buf *b, uint32_t v);
void es_bus_put_u64(es_buf *b, uint64_t v);
void es_bus_put_str(es_buf *b, const char *s, size_t len); /* len <= 65535 */
void es_bus_put_bytes(es_buf *b, const void *s, size_t len);

/* Any message, as es_bus_decode reads it (node and incarnation from m):
 * decoding what this writes gives m back. */
void es_bus_encode(es_buf *b, const es_bus_msg *m);

/* Whole packets of the common kinds. */
void es_bus_put_open(es_buf *b, const char *node, uint64_t inc, uint64_t conn, unsigned flags,
                     const char *addr, const char *token, const char *path, const char *query,
                     const earshot_header *headers, size_t nheaders, const char *lost_owner,
                     const char *frame, size_t frame_len);
void es_bus_put_conn_bytes(es_buf *b, es_bus_type type, const char *node, uint64_t inc,
                           uint64_t conn, const char *data, size_t len);

/* A hash every node computes alike (FNV-1a, then a mixer): for choosing
 * owners, never for tables facing clients. */
uint64_t es_bus_hash(const void *data, size_t len, uint64_t seed);

#endif
