/*
 * The client side of RFC 6455, just what the load generator needs: the
 * upgrade key and its expected accept value (SHA-1 + base64), masked frame
 * headers for what we send, and unmasked frame headers for what the server
 * sends. No allocation, no I/O.
 */
#ifndef LG_WS_H
#define LG_WS_H

#include <stddef.h>
#include <stdint.h>

#define LG_WS_MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */

enum { LG_WS_CONT = 0x0, LG_WS_TEXT = 0x1, LG_WS_BINARY = 0x2,
       LG_WS_CLOSE = 0x8, LG_WS_PING = 0x9, LG_WS_PONG = 0xA };

void lg_sha1(const void *data, size_t len, uint8_t out[20]);

/* Base64 of len bytes into out (4 * ceil(len / 3) + 1 bytes, NUL-terminated).
 * Returns the length written, without the NUL. */
size_t lg_base64(const uint8_t *in, size_t len, char *out);

/* The Sec-WebSocket-Accept value a server must answer to key (29 bytes with NUL). */
void lg_ws_accept(const char *key, char out[29]);

/* Write a FIN frame header with the mask bit set and mask key `mask` (its
 * bytes in memory order are the wire order). Returns the header length. */
size_t lg_ws_header(uint8_t *h, int opcode, uint64_t payload_len, const uint8_t mask[4]);

/* dst[i] = src[i] ^ mask[i % 4]; dst may equal src. */
void lg_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4]);

typedef struct {
    int fin;
    int opcode;
    size_t header_len;  /* bytes before the payload */
    uint64_t payload_len;
} lg_frame;

/*
 * Parse the frame header at buf (avail bytes). Returns 1 when the header
 * and the whole payload are there, 0 when more bytes are needed, -1 on a
 * protocol error (a masked server frame, reserved bits, a length over
 * max_payload).
 */
int lg_ws_parse(const uint8_t *buf, size_t avail, uint64_t max_payload, lg_frame *f);

#endif
