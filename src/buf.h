/*
 * buf - a growable byte buffer with room reserved in front for the
 * WebSocket frame header, so a message built here is written to the socket
 * without another copy. Also the JSON string encoder for server messages.
 */
#ifndef EARSHOT_BUF_H
#define EARSHOT_BUF_H

#include <stddef.h>

/* Bytes kept free before the payload; the server checks it covers LWS_PRE. */
#define ES_WIRE_HEADROOM 16

typedef struct es_buf {
    char *mem;  /* ES_WIRE_HEADROOM bytes, then the payload */
    size_t len; /* payload bytes */
    size_t cap; /* payload capacity */
} es_buf;

void es_buf_init(es_buf *b);
void es_buf_free(es_buf *b);
static inline void es_buf_reset(es_buf *b) { b->len = 0; }
static inline char *es_buf_data(const es_buf *b) { return b->mem + ES_WIRE_HEADROOM; }

void es_buf_reserve(es_buf *b, size_t extra);
void es_buf_append(es_buf *b, const void *data, size_t n);
void es_buf_append_cstr(es_buf *b, const char *s);
/* Append a string literal, its length known at compile time. */
#define ES_BUF_APPEND_LIT(b, lit) es_buf_append((b), (lit), sizeof(lit) - 1)
/* Append s[0..n) as a JSON string literal, quotes included. The bytes are
 * copied as they are except '"', '\\' and control characters, which are
 * escaped; invalid UTF-8 bytes (never present in validated input) become
 * U+FFFD so the output is always valid JSON. */
void es_buf_append_json_string(es_buf *b, const char *s, size_t n);

#endif
