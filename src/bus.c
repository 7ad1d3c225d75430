#include "bus.h"

#include <string.h>

#include "protocol.h"

const char *const es_bus_error_names[ES_BUS_ERR_COUNT] = {
    "ok", "short", "magic", "version", "type", "name", "field", "auth", "stale"};

#define HEADER_FIXED 13 /* magic 2, version 1, type 1, incarnation 8, name_len 1 */

int es_bus_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > ES_BUS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct rd {
    const unsigned char *p;
    size_t left;
    int bad;
} rd;

static uint64_t get_be(rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

static es_bus_str get_span(rd *r, size_t lenbytes, size_t max)
{
    es_bus_str s = {NULL, 0};
    size_t len = (size_t)get_be(r, lenbytes);
    if (r->bad || len > max || len > r->left) {
        r->bad = 1;
        return s;
    }
    s.p = (const char *)r->p;
    s.len = len;
    r->p += len;
    r->left -= len;
    return s;
}

static es_bus_str get_str(rd *r, size_t max) { return get_span(r, 2, max); }

static unsigned get_flags(rd *r, unsigned known)
{
    unsigned f = (unsigned)get_be(r, 1);
    if (f & ~known)
        r->bad = 1;
    return f;
}

static int is_relay_type(unsigned t)
{
    return t == ES_MSG_SEND_OFFER || t == ES_MSG_SEND_ANSWER || t == ES_MSG_SEND_ICE_CANDIDATE;
}

es_bus_error es_bus_decode(const char *p, size_t n, es_bus_msg *m, size_t *used)
{
    memset(m, 0, sizeof *m);
    *used = 0;
    const unsigned char *u = (const unsigned char *)p;
    if (n < HEADER_FIXED)
        return ES_BUS_ERR_SHORT;
    if (u[0] != 'e' || u[1] != 'b')
        return ES_BUS_ERR_MAGIC;
    if (u[2] != ES_BUS_VERSION)
        return ES_BUS_ERR_VERSION;
    if (u[3] < ES_BUS_HEARTBEAT || u[3] >= ES_BUS_TYPE_END)
        return ES_BUS_ERR_TYPE;
    m->type = (es_bus_type)u[3];
    rd h = {u + 4, n - 4, 0};
    m->incarnation = get_be(&h, 8);
    size_t name_len = (size_t)get_be(&h, 1);
    if (h.left < name_len + 4)
        return ES_BUS_ERR_SHORT;
    if (!es_bus_name_valid((const char *)h.p, name_len))
        return ES_BUS_ERR_NAME;
    m->node.p = (const char *)h.p;
    m->node.len = name_len;
    h.p += name_len;
    h.left -= name_len;
    size_t body_len = (size_t)get_be(&h, 4);
    if (body_len > h.left)
        return ES_BUS_ERR_SHORT;

    rd r = {h.p, body_len, 0};
    switch (m->type) {
    case ES_BUS_HEARTBEAT:
        m->flags = get_flags(&r, ES_BUS_F_LEAVING);
        m->seq = get_be(&r, 8);
        break;
    case ES_BUS_OPEN:
        m->conn = get_be(&r, 8);
        m->flags = get_flags(&r, ES_BUS_F_RESUMABLE | ES_BUS_F_REATTACH | ES_BUS_F_SESSION_OWED);
        m->addr = get_str(&r, ES_BUS_ADDR_MAX);
        m->token = get_str(&r, ES_BUS_TOKEN_MAX);
        m->path = get_str(&r, ES_BUS_PATH_MAX);
        m->query = get_str(&r, ES_BUS_PATH_MAX);
        m->nheaders = (size_t)get_be(&r, 2);
        if (m->nheaders > ES_BUS_HEADERS_MAX)
            r.bad = 1;
        for (size_t i = 0; i < m->nheaders && !r.bad; i++) {
            m->header_names[i] = get_str(&r, ES_BUS_HEADER_NAME_MAX);
            m->header_values[i] = get_str(&r, ES_BUS_HEADER_VALUE_MAX);
        }
        m->lost_owner = get_str(&r, ES_BUS_NAME_MAX);
        if (!r.bad && m->lost_owner.len && !es_bus_name_valid(m->lost_owner.p, m->lost_owner.len))
            r.bad = 1;
        m->data = get_span(&r, 4, ES_BUS_FRAME_MAX);
        break;
    case ES_BUS_FRAME:
        m->conn = get_be(&r, 8);
        m->data = get_span(&r, 4, ES_BUS_FRAME_MAX);
        break;
    case ES_BUS_OUT:
        m->conn = get_be(&r, 8);
        m->flags = get_flags(&r, ES_BUS_F_REPLY);
        m->data = get_span(&r, 4, ES_BUS_FRAME_MAX);
        break;
    case ES_BUS_CLOSED:
        m->conn = get_be(&r, 8);
        m->flags = get_flags(&r, ES_BUS_F_HOLD);
        break;
    case ES_BUS_CLOSE:
        m->conn = get_be(&r, 8);
        m->code = (unsigned)get_be(&r, 2);
        if (m->code < 1000 || m->code > 4999)
            r.bad = 1;
        break;
    case ES_BUS_REHOME:
        m->conn = get_be(&r, 8);
        m->flags = get_flags(&r, ES_BUS_F_RESUMABLE | ES_BUS_F_SESSION_OWED);
        m->token = get_str(&r, ES_BUS_TOKEN_MAX);
        m->data = get_span(&r, 4, ES_BUS_FRAME_MAX);
        break;
    case ES_BUS_TOKEN:
        m->conn = get_be(&r, 8);
        m->sender = get_str(&r, ES_BUS_ID_MAX);
        m->token = get_str(&r, ES_BUS_TOKEN_MAX);
        if (m->sender.len == 0)
            r.bad = 1;
        break;
    case ES_BUS_RELAY:
        m->conn = get_be(&r, 8);
        m->relay = (unsigned)get_be(&r, 1);
        m->sender = get_str(&r, ES_BUS_ID_MAX);
        m->addr = get_str(&r, ES_BUS_ADDR_MAX);
        for (int i = 0; i < 5; i++)
            m->pos[i] = (int32_t)(uint32_t)get_be(&r, 4);
        m->target = get_str(&r, ES_BUS_ID_MAX);
        m->data = get_span(&r, 4, ES_BUS_FRAME_MAX);
        if (m->sender.len == 0 || m->target.len == 0 || !is_relay_type(m->relay))
            r.bad = 1;
        break;
    case ES_BUS_RELAY_FAIL:
        m->conn = get_be(&r, 8);
        m->relay = (unsigned)get_be(&r, 1);
        m->code = (unsigned)get_be(&r, 1);
        m->text = get_str(&r, ES_BUS_TEXT_MAX);
        if (!is_relay_type(m->relay) || m->code == 0 || m->code >= 64)
            r.bad = 1;
        break;
    default:
        return ES_BUS_ERR_TYPE;
    }
    if (r.bad || r.left != 0)
        return ES_BUS_ERR_FIELD;
    *used = (size_t)(r.p - u);
    return ES_BUS_OK;
}

/* ---- encoding ------------------------------------------------------------ */

static void put_be(es_buf *b, uint64_t v, size_t n)
{
    unsigned char tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
    es_buf_append(b, tmp, n);
}

void es_bus_put_u8(es_buf *b, unsigned v) { put_be(b, v, 1); }
void es_bus_put_u16(es_buf *b, unsigned v) { put_be(b, v, 2); }
void es_bus_put_u32(es_buf *b, uint32_t v) { put_be(b, v, 4); }
void es_bus_put_u64(es_buf *b, uint64_t v) { put_be(b, v, 8); }

void es_bus_put_str(es_buf *b, const char *s, size_t len)
{
    put_be(b, len, 2);
    es_buf_append(b, s, len);
}

void es_bus_put_bytes(es_buf *b, const void *s, size_t len)
{
    put_be(b, len, 4);
    es_buf_append(b, s, len);
}

size_t es_bus_begin(es_buf *b, es_bus_type type, const char *node, uint64_t incarnation)
{
    size_t start = b->len;
    size_t nl = strlen(node);
    es_buf_append(b, "eb", 2);
    put_be(b, ES_BUS_VERSION, 1);
    put_be(b, (unsigned)type, 1);
    put_be(b, incarnation, 8);
    put_be(b, nl, 1);
    es_buf_append(b, node, nl);
    put_be(b, 0, 4); /* the body's length, es_bus_end */
    return start;
}

void es_bus_end(es_buf *b, size_t start)
{
    unsigned char *base = (unsigned char *)es_buf_data(b) + start;
    size_t nl = base[HEADER_FIXED - 1];
    size_t body_at = start + HEADER_FIXED + nl + 4;
    size_t body = b->len - body_at;
    unsigned char *lenp = base + HEADER_FIXED + nl;
    for (int i = 0; i < 4; i++)
        lenp[i] = (unsigned char)(body >> (24 - 8 * i));
}

static void put_cstr(es_buf *b, const char *s) { es_bus_put_str(b, s ? s : "", s ? strlen(s) : 0); }

void es_bus_put_open(es_buf *b, const char *node, uint64_t inc, uint64_t conn, unsigned flags,
                     const char *addr, const char *token, const char *path, const char *query,
                     const earshot_header *headers, size_t nheaders, const char *lost_owner,
                     const char *frame, size_t frame_len)
{
    size_t at = es_bus_begin(b, ES_BUS_OPEN, node, inc);
    es_bus_put_u64(b, conn);
    es_bus_put_u8(b, flags);
    put_cstr(b, addr);
    put_cstr(b, token);
    put_cstr(b, path);
    put_cstr(b, query);
    es_bus_put_u16(b, (unsigned)nheaders);
    for (size_t i = 0; i < nheaders; i++) {
        put_cstr(b, headers[i].name);
        put_cstr(b, headers[i].value);
    }
    put_cstr(b, lost_owner);
    es_bus_put_bytes(b, frame, frame_len);
    es_bus_end(b, at);
}

void es_bus_put_conn_bytes(es_buf *b, es_bus_type type, const char *node, uint64_t inc,
                           uint64_t conn, const char *data, size_t len)
{
    size_t at = es_bus_begin(b, type, node, inc);
    es_bus_put_u64(b, conn);
    es_bus_put_bytes(b, data, len);
    es_bus_end(b, at);
}

static void put_span(es_buf *b, es_bus_str s) { es_bus_put_str(b, s.p ? s.p : "", s.len); }

void es_bus_encode(es_buf *b, const es_bus_msg *m)
{
    char node[ES_BUS_NAME_MAX + 1];
    size_t nl = m->node.len > ES_BUS_NAME_MAX ? ES_BUS_NAME_MAX : m->node.len;
    memcpy(node, m->node.p, nl);
    node[nl] = '\0';
    size_t at = es_bus_begin(b, m->type, node, m->incarnation);
    switch (m->type) {
    case ES_BUS_HEARTBEAT:
        es_bus_put_u8(b, m->flags);
        es_bus_put_u64(b, m->seq);
        break;
    case ES_BUS_OPEN:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->flags);
        put_span(b, m->addr);
        put_span(b, m->token);
        put_span(b, m->path);
        put_span(b, m->query);
        es_bus_put_u16(b, (unsigned)m->nheaders);
        for (size_t i = 0; i < m->nheaders; i++) {
            put_span(b, m->header_names[i]);
            put_span(b, m->header_values[i]);
        }
        put_span(b, m->lost_owner);
        es_bus_put_bytes(b, m->data.p, m->data.len);
        break;
    case ES_BUS_FRAME:
        es_bus_put_u64(b, m->conn);
        es_bus_put_bytes(b, m->data.p, m->data.len);
        break;
    case ES_BUS_OUT:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->flags);
        es_bus_put_bytes(b, m->data.p, m->data.len);
        break;
    case ES_BUS_CLOSED:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->flags);
        break;
    case ES_BUS_CLOSE:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u16(b, m->code);
        break;
    case ES_BUS_REHOME:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->flags);
        put_span(b, m->token);
        es_bus_put_bytes(b, m->data.p, m->data.len);
        break;
    case ES_BUS_TOKEN:
        es_bus_put_u64(b, m->conn);
        put_span(b, m->sender);
        put_span(b, m->token);
        break;
    case ES_BUS_RELAY:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->relay);
        put_span(b, m->sender);
        put_span(b, m->addr);
        for (int i = 0; i < 5; i++)
            put_be(b, (uint32_t)m->pos[i], 4);
        put_span(b, m->target);
        es_bus_put_bytes(b, m->data.p, m->data.len);
        break;
    case ES_BUS_RELAY_FAIL:
        es_bus_put_u64(b, m->conn);
        es_bus_put_u8(b, m->relay);
        es_bus_put_u8(b, m->code);
        put_span(b, m->text);
        break;
    default: break;
    }
    es_bus_end(b, at);
}

uint64_t es_bus_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    /* splitmix64's finalizer spreads the low bits FNV leaves weak */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}
