#include "ws.h"

#include <string.h>

/* ---- SHA-1 (FIPS 180-4), only for the 60-byte upgrade key ---------------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void lg_sha1(const void *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const uint8_t *p = data;
    size_t left = len;
    while (left >= 64) {
        sha1_block(h, p);
        p += 64;
        left -= 64;
    }
    uint8_t tail[128];
    memset(tail, 0, sizeof tail);
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tl = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tl == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

size_t lg_base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

void lg_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[128];
    size_t kl = strlen(key);
    if (kl > sizeof buf - sizeof guid)
        kl = sizeof buf - sizeof guid;
    memcpy(buf, key, kl);
    memcpy(buf + kl, guid, sizeof guid - 1);
    uint8_t digest[20];
    lg_sha1(buf, kl + sizeof guid - 1, digest);
    lg_base64(digest, 20, out);
}

size_t lg_ws_header(uint8_t *h, int opcode, uint64_t payload_len, const uint8_t mask[4])
{
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (payload_len < 126) {
        h[n++] = (uint8_t)(0x80 | payload_len);
    } else if (payload_len <= 0xFFFF) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(payload_len >> 8);
        h[n++] = (uint8_t)payload_len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(payload_len >> (8 * i));
    }
    memcpy(h + n, mask, 4);
    return n + 4;
}

void lg_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4])
{
    uint32_t m32;
    memcpy(&m32, mask, 4);
    uint64_t m64 = (uint64_t)m32 << 32 | m32;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

int lg_ws_parse(const uint8_t *buf, size_t avail, uint64_t max_payload, lg_frame *f)
{
    if (avail < 2)
        return 0;
    if (buf[0] & 0x70)
        return -1; /* RSV bits: no extension was negotiated */
    if (buf[1] & 0x80)
        return -1; /* a server must not mask */
    f->fin = !!(buf[0] & 0x80);
    f->opcode = buf[0] & 0x0F;
    uint64_t len = buf[1] & 0x7F;
    size_t hl = 2;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = (uint64_t)buf[2] << 8 | buf[3];
        hl = 4;
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | buf[2 + i];
        hl = 10;
    }
    if (len > max_payload)
        return -1;
    f->header_len = hl;
    f->payload_len = len;
    return avail - hl >= len ? 1 : 0;
}
