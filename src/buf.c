#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void es_buf_init(es_buf *b)
{
    b->cap = 256;
    b->len = 0;
    b->mem = es_xmalloc(ES_WIRE_HEADROOM + b->cap);
}

void es_buf_free(es_buf *b)
{
    free(b->mem);
    b->mem = NULL;
    b->len = b->cap = 0;
}

void es_buf_reserve(es_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    b->mem = es_xrealloc(b->mem, ES_WIRE_HEADROOM + cap);
    b->cap = cap;
}

void es_buf_append(es_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return; /* data may be NULL then */
    es_buf_reserve(b, n);
    memcpy(es_buf_data(b) + b->len, data, n);
    b->len += n;
}

void es_buf_append_cstr(es_buf *b, const char *s) { es_buf_append(b, s, strlen(s)); }

void es_buf_append_json_string(es_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX (6 bytes) or U+FFFD (3 bytes). */
    es_buf_reserve(b, n * 6 + 2);
    char *out = es_buf_data(b) + b->len;
    char *o = out;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    *o++ = '"';
    while (p < end) {
        const unsigned char *run = p;
        /* Copy the longest run of printable ASCII in one go. */
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        if (p == end)
            break;
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t seq = es_utf8_seq((const char *)p, (size_t)(end - p));
            if (seq == 0) {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                p++;
            } else {
                memcpy(o, p, seq);
                o += seq;
                p += seq;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        p++;
    }
    *o++ = '"';
    b->len += (size_t)(o - out);
}
