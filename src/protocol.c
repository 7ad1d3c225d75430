#include "protocol.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const type_names[ES_MSG_TYPE_COUNT] = {
    [ES_MSG_UPDATE_POSITION] = "UpdatePosition",
    [ES_MSG_REQUEST_PEER_REFRESH] = "RequestPeerRefresh",
    [ES_MSG_SEND_OFFER] = "SendOffer",
    [ES_MSG_SEND_ANSWER] = "SendAnswer",
    [ES_MSG_SEND_ICE_CANDIDATE] = "SendIceCandidate",
    [ES_MSG_DISCONNECT] = "Disconnect",
    [ES_MSG_REQUEST_ICE_SERVERS] = "RequestIceServers",
};

/* The payload field of each relay type. */
static const char *relay_field(es_msg_type t)
{
    switch (t) {
    case ES_MSG_SEND_OFFER: return "offer";
    case ES_MSG_SEND_ANSWER: return "answer";
    case ES_MSG_SEND_ICE_CANDIDATE: return "candidate";
    default: return NULL;
    }
}

const char *es_msg_type_name(es_msg_type t)
{
    return (unsigned)t < ES_MSG_TYPE_COUNT ? type_names[t] : "?";
}

int es_protocol_id_valid(const char *id, size_t len)
{
    if (len < 1 || len > ES_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7F)
            return 0;
    }
    return es_utf8_valid(id, len);
}

void es_protocol_format_echo(char *out, size_t outlen, const char *prefix, const char *s,
                             size_t len, size_t max, const char *suffix)
{
    size_t keep = es_utf8_prefix(s, len, max);
    snprintf(out, outlen, "%s%.*s%s%s", prefix, (int)keep, s, keep < len ? "..." : "", suffix);
}

/* ---- parsing ------------------------------------------------------------ */

typedef struct field_ctx {
    const char *type;
    char *err;
} field_ctx;

static int fail(field_ctx *fc, const char *fmt, const char *field)
{
    char what[96];
    snprintf(what, sizeof what, fmt, field);
    snprintf(fc->err, ES_ERROR_MAX, "Invalid %s: %s", fc->type, what);
    return -1;
}

static int get_int32(field_ctx *fc, json_t *data, const char *field, int optional,
                     int32_t *out)
{
    json_t *v = json_object_get(data, field);
    if (!v) {
        if (optional) {
            *out = 0;
            return 0;
        }
        return fail(fc, "missing field '%s'", field);
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= INT32_MIN && i <= INT32_MAX) {
            *out = (int32_t)i;
            return 0;
        }
    }
    return fail(fc, "field '%s' must be an integer in the signed 32-bit range", field);
}

static int get_string(field_ctx *fc, json_t *data, const char *field, const char **out,
                      size_t *len)
{
    json_t *v = json_object_get(data, field);
    if (!v)
        return fail(fc, "missing field '%s'", field);
    if (!json_is_string(v))
        return fail(fc, "field '%s' must be a string", field);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int get_id(field_ctx *fc, json_t *data, const char *field, const char **out,
                  size_t *len)
{
    if (get_string(fc, data, field, out, len))
        return -1;
    if (!es_protocol_id_valid(*out, *len))
        return fail(fc, "field '%s' must be 1 to 128 bytes of UTF-8 with no control characters",
                    field);
    return 0;
}

static int base64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* UpdatePosition's optional "resumable" (a boolean) and "resume_token"
 * (1 to ES_RESUME_TOKEN_MAX base64url characters). */
static int get_resume_fields(field_ctx *fc, json_t *data, es_msg *msg)
{
    json_t *v = json_object_get(data, "resumable");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return fail(fc, "field '%s' must be true or false", "resumable");
        msg->resumable = json_is_true(v);
    }
    v = json_object_get(data, "resume_token");
    if (!v || json_is_null(v))
        return 0; /* null: absent */
    const char *t = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = t ? json_string_length(v) : 0;
    int ok = t && n >= 1 && n <= ES_RESUME_TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = base64url_char((unsigned char)t[i]);
    if (!ok)
        return fail(fc, "field '%s' must be 1 to 128 base64url characters (A-Z a-z 0-9 - _)",
                    "resume_token");
    msg->resume_token = t;
    msg->resume_token_len = n;
    return 0;
}

/* Validate a decoded document into msg. Returns 0 or -1 with err set. */
static int validate(json_t *root, es_msg *msg, char *err)
{
    if (!json_is_object(root)) {
        snprintf(err, ES_ERROR_MAX, "Invalid message: expected a JSON object");
        return -1;
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        snprintf(err, ES_ERROR_MAX, "Invalid message: field 'type' must be a string");
        return -1;
    }
    const char *name = json_string_value(type);
    size_t name_len = json_string_length(type);
    int t = -1;
    for (int i = 0; i < ES_MSG_TYPE_COUNT; i++) {
        if (strlen(type_names[i]) == name_len && memcmp(type_names[i], name, name_len) == 0) {
            t = i;
            break;
        }
    }
    if (t < 0) {
        /* Echo at most 64 bytes; NULs inside cut the echo short, which is fine. */
        es_protocol_format_echo(err, ES_ERROR_MAX, "Unknown message type: ", name,
                                strnlen(name, name_len), 64, "");
        return -1;
    }
    memset(msg, 0, sizeof *msg);
    msg->type = (es_msg_type)t;
    if (t == ES_MSG_DISCONNECT || t == ES_MSG_REQUEST_PEER_REFRESH ||
        t == ES_MSG_REQUEST_ICE_SERVERS)
        return 0; /* data is ignored, whatever it holds */

    field_ctx fc = {.type = type_names[t], .err = err};
    json_t *data = json_object_get(root, "data");
    if (!json_is_object(data))
        return fail(&fc, "field '%s' must be an object", "data");

    if (t == ES_MSG_UPDATE_POSITION) {
        if (get_id(&fc, data, "client_id", &msg->client_id, &msg->client_id_len) ||
            get_int32(&fc, data, "map_id", 0, &msg->pos.map_id) ||
            get_int32(&fc, data, "x", 0, &msg->pos.x) ||
            get_int32(&fc, data, "y", 0, &msg->pos.y) ||
            get_int32(&fc, data, "channel", 1, &msg->pos.channel) ||
            get_int32(&fc, data, "game_id", 1, &msg->pos.game_id) ||
            get_resume_fields(&fc, data, msg))
            return -1;
        return 0;
    }
    if (get_id(&fc, data, "target_id", &msg->target_id, &msg->target_id_len) ||
        get_string(&fc, data, relay_field(msg->type), &msg->payload, &msg->payload_len))
        return -1;
    return 0;
}

/* jansson's messages for numbers it cannot represent. */
static int number_too_big(const char *jtext)
{
    return strncmp(jtext, "too big", 7) == 0 || strncmp(jtext, "real number overflow", 20) == 0;
}

#define DECODE_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY)

/* 1 when the number token t[0..n) is one jansson cannot hold. */
static int token_too_big(const char *t, size_t n)
{
    char small[64];
    char *buf = n < sizeof small ? small : es_xmalloc(n + 1);
    memcpy(buf, t, n);
    buf[n] = '\0';
    int big;
    errno = 0;
    if (strpbrk(buf, ".eE")) {
        double d = strtod(buf, NULL);
        big = d == HUGE_VAL || d == -HUGE_VAL;
    } else {
        (void)strtoll(buf, NULL, 10);
        big = errno == ERANGE;
    }
    if (buf != small)
        free(buf);
    return big;
}

/*
 * jansson refuses a whole document when one number is beyond what it can
 * hold (an integer past 64 bits, a real past double). Such a number is still
 * valid JSON, so: in one pass over the text (strings skipped), replace every
 * such token with 0.5 padded with spaces to the same length, and decode
 * again. A 0.5 in a field we read fails that field's integer check, naming
 * the field; one in a field we ignore is ignored, like any unknown field.
 * Returns the document, or NULL with jerr set.
 */
static json_t *decode_with_big_numbers(const char *text, size_t len, json_error_t *jerr)
{
    char *copy = es_xmalloc(len);
    memcpy(copy, text, len);
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        char c = copy[i];
        if (in_string) {
            if (c == '\\')
                i += 2;
            else {
                if (c == '"')
                    in_string = 0;
                i++;
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
            i++;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            i++;
            continue;
        }
        size_t end = i;
        while (end < len && copy[end] && strchr("0123456789+-.eE", copy[end]))
            end++;
        if (end - i >= 3 && token_too_big(copy + i, end - i)) {
            memset(copy + i, ' ', end - i);
            memcpy(copy + i, "0.5", 3);
        }
        i = end;
    }
    json_t *root = json_loadb(copy, len, DECODE_FLAGS, jerr);
    free(copy);
    return root;
}

int es_protocol_parse(const char *text, size_t len, es_msg *msg, char err[ES_ERROR_MAX])
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, DECODE_FLAGS, &jerr);
    if (!root && number_too_big(jerr.text)) {
        json_error_t first = jerr;
        root = decode_with_big_numbers(text, len, &jerr);
        if (!root)
            jerr = first;
    }
    if (!root) {
        snprintf(err, ES_ERROR_MAX, "Invalid JSON: %s", jerr.text);
        return -1;
    }
    if (validate(root, msg, err)) {
        json_decref(root);
        return -1;
    }
    msg->doc_ = root;
    return 0;
}

void es_msg_release(es_msg *msg)
{
    if (msg->doc_)
        json_decref((json_t *)msg->doc_);
    msg->doc_ = NULL;
}

/* ---- writing ------------------------------------------------------------ */


void es_protocol_write_error(es_buf *b, const char *text)
{
    ES_BUF_APPEND_LIT(b, "{\"type\":\"Error\",\"data\":");
    es_buf_append_json_string(b, text, strlen(text));
    ES_BUF_APPEND_LIT(b, "}");
}

void es_protocol_write_peers_begin(es_buf *b) { ES_BUF_APPEND_LIT(b, "{\"type\":\"NearbyPeers\",\"data\":["); }

void es_protocol_write_peers_add(es_buf *b, const char *id, size_t len, int first)
{
    if (!first)
        ES_BUF_APPEND_LIT(b, ",");
    es_buf_append_json_string(b, id, len);
}

void es_protocol_write_peers_end(es_buf *b) { ES_BUF_APPEND_LIT(b, "]}"); }

void es_protocol_write_session(es_buf *b, const char *token, size_t token_len, double grace)
{
    ES_BUF_APPEND_LIT(b, "{\"type\":\"Session\",\"data\":{\"resume_token\":");
    es_buf_append_json_string(b, token, token_len);
    char num[32];
    int n = snprintf(num, sizeof num, ",\"grace\":%.15g}}", grace);
    es_buf_append(b, num, (size_t)n);
}

void es_protocol_write_relay(es_buf *b, es_msg_type kind, const char *sender_id,
                             size_t sender_len, const char *payload, size_t payload_len)
{
    switch (kind) {
    case ES_MSG_SEND_OFFER: ES_BUF_APPEND_LIT(b, "{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":"); break;
    case ES_MSG_SEND_ANSWER: ES_BUF_APPEND_LIT(b, "{\"type\":\"ReceiveAnswer\",\"data\":{\"sender_id\":"); break;
    default: ES_BUF_APPEND_LIT(b, "{\"type\":\"ReceiveIceCandidate\",\"data\":{\"sender_id\":"); break;
    }
    es_buf_append_json_string(b, sender_id, sender_len);
    es_buf_append(b, ",\"", 2);
    es_buf_append_cstr(b, relay_field(kind));
    es_buf_append(b, "\":", 2);
    es_buf_append_json_string(b, payload, payload_len);
    ES_BUF_APPEND_LIT(b, "}}");
}
