#include "json.h"

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 32

int lg_j_peek(lg_jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

int lg_j_expect(lg_jcur *c, char ch)
{
    if (lg_j_peek(c) != (unsigned char)ch)
        return -1;
    c->p++;
    return 0;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

int lg_j_string(lg_jcur *c, char *out, size_t cap, size_t *len)
{
    if (lg_j_expect(c, '"'))
        return -1;
    size_t o = 0;
#define PUT(ch)                                    \
    do {                                           \
        if (out) {                                 \
            if (o + 1 >= cap)                      \
                return -1;                         \
            out[o] = (char)(ch);                   \
        }                                          \
        o++;                                       \
    } while (0)
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"') {
            if (out)
                out[o] = '\0';
            if (len)
                *len = o;
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch != '\\') {
            PUT(ch);
            continue;
        }
        if (c->p >= c->end)
            return -1;
        char e = *c->p++;
        switch (e) {
        case '"': PUT('"'); break;
        case '\\': PUT('\\'); break;
        case '/': PUT('/'); break;
        case 'b': PUT('\b'); break;
        case 'f': PUT('\f'); break;
        case 'n': PUT('\n'); break;
        case 'r': PUT('\r'); break;
        case 't': PUT('\t'); break;
        case 'u': {
            unsigned cp;
            if (c->end - c->p < 4 || hex4(c->p, &cp))
                return -1;
            c->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                c->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            if (cp < 0x80) {
                PUT(cp);
            } else if (cp < 0x800) {
                PUT(0xC0 | (cp >> 6));
                PUT(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                PUT(0xE0 | (cp >> 12));
                PUT(0x80 | ((cp >> 6) & 0x3F));
                PUT(0x80 | (cp & 0x3F));
            } else {
                PUT(0xF0 | (cp >> 18));
                PUT(0x80 | ((cp >> 12) & 0x3F));
                PUT(0x80 | ((cp >> 6) & 0x3F));
                PUT(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return -1;
        }
    }
#undef PUT
    return -1;
}

static int skip_number(lg_jcur *c)
{
    const char *s = c->p;
    if (c->p < c->end && *c->p == '-')
        c->p++;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '.' || *c->p == 'e' ||
                             *c->p == 'E' || *c->p == '+' || *c->p == '-'))
        c->p++;
    return c->p > s ? 0 : -1;
}

static int skip_value(lg_jcur *c, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    int ch = lg_j_peek(c);
    switch (ch) {
    case '"': return lg_j_string(c, NULL, 0, NULL);
    case '{':
        c->p++;
        if (lg_j_peek(c) == '}') {
            c->p++;
            return 0;
        }
        for (;;) {
            if (lg_j_string(c, NULL, 0, NULL) || lg_j_expect(c, ':') || skip_value(c, depth + 1))
                return -1;
            int n = lg_j_peek(c);
            c->p++;
            if (n == '}')
                return 0;
            if (n != ',')
                return -1;
        }
    case '[':
        c->p++;
        if (lg_j_peek(c) == ']') {
            c->p++;
            return 0;
        }
        for (;;) {
            if (skip_value(c, depth + 1))
                return -1;
            int n = lg_j_peek(c);
            c->p++;
            if (n == ']')
                return 0;
            if (n != ',')
                return -1;
        }
    case 't':
        if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
            c->p += 4;
            return 0;
        }
        return -1;
    case 'f':
        if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
            c->p += 5;
            return 0;
        }
        return -1;
    case 'n':
        if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
            c->p += 4;
            return 0;
        }
        return -1;
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            return skip_number(c);
        return -1;
    }
}

int lg_j_skip(lg_jcur *c) { return skip_value(c, 0); }

int lg_j_envelope(const char *s, size_t n, char *type_out, size_t type_cap, lg_jcur *data)
{
    lg_jcur c = {s, s + n};
    int have_type = 0;
    data->p = data->end = NULL;
    if (lg_j_expect(&c, '{'))
        return -1;
    if (lg_j_peek(&c) == '}')
        return -1;
    for (;;) {
        char key[16];
        size_t kl;
        lg_jcur save = c;
        if (lg_j_string(&c, key, sizeof key, &kl)) {
            /* a long key we do not know: skip it */
            c = save;
            if (lg_j_string(&c, NULL, 0, NULL))
                return -1;
            key[0] = '\0';
        }
        if (lg_j_expect(&c, ':'))
            return -1;
        if (strcmp(key, "type") == 0) {
            if (lg_j_string(&c, type_out, type_cap, NULL))
                return -1;
            have_type = 1;
        } else if (strcmp(key, "data") == 0) {
            lg_j_peek(&c);
            const char *start = c.p;
            if (lg_j_skip(&c))
                return -1;
            data->p = start;
            data->end = c.p;
        } else if (lg_j_skip(&c)) {
            return -1;
        }
        int ch = lg_j_peek(&c);
        c.p++;
        if (ch == '}')
            break;
        if (ch != ',')
            return -1;
    }
    if (lg_j_peek(&c) != -1)
        return -1; /* trailing bytes */
    return have_type ? 0 : -1;
}
