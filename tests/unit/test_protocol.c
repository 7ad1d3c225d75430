/*
 * test_protocol - es_protocol_parse() and the server message writers
 * against the wire contract of PROTOCOL.md.
 */
#include "helpers.h"

#include <jansson.h>

#include "buf.h"
#include "protocol.h"

#define ID_RULE " must be 1 to 128 bytes of UTF-8 with no control characters"
#define INT_RULE " must be an integer in the signed 32-bit range"

/* ---- helpers ------------------------------------------------------------- */

static void must_parse_n(es_msg *m, const char *text, size_t len)
{
    char err[ES_ERROR_MAX] = "";
    if (es_protocol_parse(text, len, m, err) != 0)
        fail_msg("parse of %.*s failed: %s", (int)len, text, err);
}
#define MUST_PARSE(m, text) must_parse_n((m), (text), strlen(text))

static void expect_error_n(const char *text, size_t len, const char *expected)
{
    es_msg m;
    char err[ES_ERROR_MAX];
    memset(err, 'Z', sizeof err - 1);
    err[sizeof err - 1] = '\0';
    int r = es_protocol_parse(text, len, &m, err);
    if (r == 0) {
        es_msg_release(&m);
        fail_msg("parsed although it must fail: %.*s", (int)len, text);
    }
    assert_int_equal(r, -1);
    if (strcmp(err, expected) != 0)
        fail_msg("input  %.*s\nerror  \"%s\"\nwanted \"%s\"", (int)len, text, err, expected);
}
#define EXPECT_ERROR(text, expected) expect_error_n((text), strlen(text), (expected))

/* The error of a parse that must fail (ring buffer). */
static const char *error_of(const char *text)
{
    es_msg m;
    char err[ES_ERROR_MAX] = "";
    if (es_protocol_parse(text, strlen(text), &m, err) == 0) {
        es_msg_release(&m);
        fail_msg("parsed although it must fail: %s", text);
    }
    return fmt("%s", err);
}

/* An UpdatePosition with client_id "a" and map_id, x, y, channel, game_id =
 * 1, 2, 3, 4, 5, except `field`, which gets the raw JSON `value` (or is left
 * out when value is NULL). */
static const char *upd_with(const char *field, const char *value)
{
    static const char *const names[] = {"map_id", "x", "y", "channel", "game_id"};
    static const char *const defaults[] = {"1", "2", "3", "4", "5"};
    char data[1024] = "\"client_id\":\"a\"";
    for (int i = 0; i < 5; i++) {
        const char *v = defaults[i];
        if (field && strcmp(field, names[i]) == 0) {
            if (!value)
                continue;
            v = value;
        }
        size_t n = strlen(data);
        snprintf(data + n, sizeof data - n, ",\"%s\":%s", names[i], v);
    }
    return fmt("{\"type\":\"UpdatePosition\",\"data\":{%s}}", data);
}

static int32_t pos_field(const es_msg *m, const char *field)
{
    if (strcmp(field, "map_id") == 0)
        return m->pos.map_id;
    if (strcmp(field, "x") == 0)
        return m->pos.x;
    if (strcmp(field, "y") == 0)
        return m->pos.y;
    if (strcmp(field, "channel") == 0)
        return m->pos.channel;
    if (strcmp(field, "game_id") == 0)
        return m->pos.game_id;
    fail_msg("no field %s", field);
    return 0;
}

static const char *const int_fields[] = {"map_id", "x", "y", "channel", "game_id"};

/* An UpdatePosition with the raw JSON value in each integer field parses,
 * and the field reads want. */
static void every_int_field_reads(const char *value, int32_t want)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(int_fields); i++) {
        es_msg m;
        MUST_PARSE(&m, upd_with(int_fields[i], value));
        assert_int_equal(pos_field(&m, int_fields[i]), want);
        es_msg_release(&m);
    }
}

/* Each of the n raw JSON values, in each integer field, is an error naming
 * that field. */
static void every_int_field_rejects(const char *const *bad, size_t n)
{
    for (size_t i = 0; i < ES_ARRAY_LEN(int_fields); i++)
        for (size_t k = 0; k < n; k++)
            EXPECT_ERROR(upd_with(int_fields[i], bad[k]),
                         fmt("Invalid UpdatePosition: field '%s'" INT_RULE, int_fields[i]));
}
#define EVERY_INT_FIELD_REJECTS(...)                                                   \
    every_int_field_rejects((const char *const[]){__VA_ARGS__},                        \
                            ES_ARRAY_LEN(((const char *const[]){__VA_ARGS__})))
static const char *const relay_types[] = {"SendOffer", "SendAnswer", "SendIceCandidate"};
static const char *const relay_fields[] = {"offer", "answer", "candidate"};
static const es_msg_type relay_msg_types[] = {ES_MSG_SEND_OFFER, ES_MSG_SEND_ANSWER,
                                              ES_MSG_SEND_ICE_CANDIDATE};

static const char *relay_json(int k, const char *target_json, const char *payload_json)
{
    return fmt("{\"type\":\"%s\",\"data\":{\"target_id\":%s,\"%s\":%s}}", relay_types[k],
               target_json, relay_fields[k], payload_json);
}

/* A client_id of n bytes: (n - tail bytes) 'a' followed by tail. */
static char *id_of(size_t n, const char *tail)
{
    size_t t = strlen(tail);
    assert_true(n >= t);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n - t);
    memcpy(s + n - t, tail, t + 1);
    return s;
}

static const char *upd_id(const char *id_json)
{
    return fmt("{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":%s,\"map_id\":1,\"x\":2,\"y\":3}}",
               id_json);
}

/* ---- valid messages ------------------------------------------------------- */

TEST(t_update_position_all_fields)
{
    es_msg m;
    MUST_PARSE(&m, sq("{'type':'UpdatePosition','data':{'client_id':'alice','map_id':7,'x':-12,"
                      "'y':34,'channel':2,'game_id':99}}"));
    assert_int_equal(m.type, ES_MSG_UPDATE_POSITION);
    assert_string_equal(m.client_id, "alice");
    assert_int_equal(m.client_id_len, 5);
    assert_int_equal(m.pos.map_id, 7);
    assert_int_equal(m.pos.x, -12);
    assert_int_equal(m.pos.y, 34);
    assert_int_equal(m.pos.channel, 2);
    assert_int_equal(m.pos.game_id, 99);
    assert_null(m.target_id);
    assert_null(m.payload);
    es_msg_release(&m);
    assert_null(m.doc_);
}

TEST(t_update_position_optional_fields_default_to_zero)
{
    es_msg m;
    MUST_PARSE(&m, sq("{'type':'UpdatePosition','data':{'client_id':'b','map_id':1,'x':2,'y':3}}"));
    assert_int_equal(m.pos.channel, 0);
    assert_int_equal(m.pos.game_id, 0);
    assert_int_equal(m.pos.map_id, 1);
    assert_int_equal(m.pos.x, 2);
    assert_int_equal(m.pos.y, 3);
    es_msg_release(&m);

    MUST_PARSE(&m, upd_with("channel", NULL));
    assert_int_equal(m.pos.channel, 0);
    assert_int_equal(m.pos.game_id, 5);
    es_msg_release(&m);

    MUST_PARSE(&m, upd_with("game_id", NULL));
    assert_int_equal(m.pos.channel, 4);
    assert_int_equal(m.pos.game_id, 0);
    es_msg_release(&m);
}

TEST(t_update_position_int32_bounds_accepted)
{
    every_int_field_reads("2147483647", INT32_MAX);
    every_int_field_reads("-2147483648", INT32_MIN);
    every_int_field_reads("0", 0);
}

TEST(t_update_position_int32_out_of_range_names_field)
{
    EVERY_INT_FIELD_REJECTS("2147483648", "-2147483649", "4294967296", "9223372036854775807",
                            "-9223372036854775808");
}

TEST(t_update_position_minus_zero_is_zero) { every_int_field_reads("-0", 0); }

TEST(t_update_position_fraction_or_exponent_is_an_error)
{
    EVERY_INT_FIELD_REJECTS("900.0", "9e2", "9E2", "1.5", "-0.0", "0e0", "1e-400");
}

TEST(t_update_position_huge_integer_names_field)
{
    /* Beyond 64 bits: jansson refuses it, the parser must still name the field. */
    EVERY_INT_FIELD_REJECTS("99999999999999999999999", "-99999999999999999999999");
}

TEST(t_update_position_1e400_names_field)
{
    /* PROTOCOL.md: a number with an exponent, or out of range, is an error
     * naming the field. 1e400 overflows a double. */
    EVERY_INT_FIELD_REJECTS("1e400");
}

TEST(t_update_position_non_numbers_name_field)
{
    EVERY_INT_FIELD_REJECTS("\"5\"", "true", "false", "null", "[]", "{}", "[1]", "\"\"");
}

TEST(t_update_position_missing_required_fields)
{
    EXPECT_ERROR(sq("{'type':'UpdatePosition','data':{'map_id':1,'x':2,'y':3}}"),
                 "Invalid UpdatePosition: missing field 'client_id'");
    EXPECT_ERROR(upd_with("map_id", NULL), "Invalid UpdatePosition: missing field 'map_id'");
    EXPECT_ERROR(upd_with("x", NULL), "Invalid UpdatePosition: missing field 'x'");
    EXPECT_ERROR(upd_with("y", NULL), "Invalid UpdatePosition: missing field 'y'");
    EXPECT_ERROR(sq("{'type':'UpdatePosition','data':{}}"),
                 "Invalid UpdatePosition: missing field 'client_id'");
    /* "null" is present, not missing */
    EXPECT_ERROR(upd_with("x", "null"), "Invalid UpdatePosition: field 'x'" INT_RULE);
}

TEST(t_update_position_client_id_must_be_string)
{
    static const char *const bad[] = {"5", "null", "true", "[]", "{}", "[\"a\"]"};
    for (size_t k = 0; k < ES_ARRAY_LEN(bad); k++)
        EXPECT_ERROR(upd_id(bad[k]), "Invalid UpdatePosition: field 'client_id' must be a string");
}

/*
 * A message of type name with each of the n "data" members (raw JSON,
 * with its leading comma; "" for none) parses as that type, data ignored.
 */
static void data_ignored(const char *name, es_msg_type type, const char *const *datas, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        es_msg m;
        MUST_PARSE(&m, fmt("{\"type\":\"%s\"%s}", name, datas[k]));
        assert_int_equal(m.type, type);
        assert_null(m.client_id);
        es_msg_release(&m);
    }
}
#define DATA_IGNORED(name, type, ...)                                                  \
    data_ignored((name), (type), (const char *const[]){__VA_ARGS__},                   \
                 ES_ARRAY_LEN(((const char *const[]){__VA_ARGS__})))

TEST(t_request_peer_refresh_data_ignored)
{
    DATA_IGNORED("RequestPeerRefresh", ES_MSG_REQUEST_PEER_REFRESH, "", ",\"data\":null",
                 ",\"data\":{}", ",\"data\":[]", ",\"data\":5", ",\"data\":\"x\"",
                 ",\"data\":true", ",\"data\":{\"client_id\":7}");
}

TEST(t_disconnect_data_ignored)
{
    DATA_IGNORED("Disconnect", ES_MSG_DISCONNECT, "", ",\"data\":null", ",\"data\":{}",
                 ",\"data\":[1,2]", ",\"data\":-1", ",\"data\":\"bye\"", ",\"data\":false",
                 ",\"data\":{\"x\":1.5}");
}

/*
 * Every relay kind parses payload_json (a JSON string) addressed to "bob"
 * into exactly the len bytes of want, NUL-terminated after them.
 */
static void relay_payload_is(const char *payload_json, const char *want, size_t len)
{
    for (int k = 0; k < 3; k++) {
        es_msg m;
        MUST_PARSE(&m, relay_json(k, "\"bob\"", payload_json));
        assert_int_equal(m.type, relay_msg_types[k]);
        assert_string_equal(m.target_id, "bob");
        assert_int_equal(m.target_id_len, 3);
        assert_int_equal(m.payload_len, len);
        assert_memory_equal(m.payload, want, len + 1);
        assert_null(m.client_id);
        es_msg_release(&m);
    }
}

TEST(t_relays_valid) { relay_payload_is("\"v=0 payload\"", "v=0 payload", 11); }

TEST(t_relay_empty_payload_is_valid) { relay_payload_is("\"\"", "", 0); }

TEST(t_relay_payload_escapes_decoded)
{
    const char *want = "q\"b\\s/n\nt\t\xC3\xA9\xF0\x9F\x8E\xA7";
    relay_payload_is("\"q\\\"b\\\\s\\/n\\nt\\t\\u00e9\\ud83c\\udfa7\"", want, strlen(want));
}

TEST(t_relay_payload_with_nul_kept) { relay_payload_is("\"a\\u0000b\\u0000\"", "a\0b\0", 4); }

TEST(t_relay_payload_8k)
{
    size_t n = 8192;
    char *payload = malloc(n + 1);
    assert_non_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)('a' + (i * 7) % 26);
    payload[n] = '\0';
    char *json = malloc(n + 200);
    assert_non_null(json);
    snprintf(json, n + 200, "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"bob\",\"offer\":\"%s\"}}",
             payload);
    es_msg m;
    MUST_PARSE(&m, json);
    assert_int_equal(m.payload_len, n);
    assert_memory_equal(m.payload, payload, n + 1);
    es_msg_release(&m);
    free(json);
    free(payload);
}

TEST(t_relay_missing_fields)
{
    for (int k = 0; k < 3; k++) {
        EXPECT_ERROR(fmt("{\"type\":\"%s\",\"data\":{\"%s\":\"x\"}}", relay_types[k], relay_fields[k]),
                     fmt("Invalid %s: missing field 'target_id'", relay_types[k]));
        EXPECT_ERROR(fmt("{\"type\":\"%s\",\"data\":{\"target_id\":\"b\"}}", relay_types[k]),
                     fmt("Invalid %s: missing field '%s'", relay_types[k], relay_fields[k]));
        /* the payload field of another relay type does not count */
        EXPECT_ERROR(fmt("{\"type\":\"%s\",\"data\":{\"target_id\":\"b\",\"%s\":\"x\"}}",
                         relay_types[k], relay_fields[(k + 1) % 3]),
                     fmt("Invalid %s: missing field '%s'", relay_types[k], relay_fields[k]));
        EXPECT_ERROR(fmt("{\"type\":\"%s\",\"data\":{}}", relay_types[k]),
                     fmt("Invalid %s: missing field 'target_id'", relay_types[k]));
    }
}

TEST(t_relay_wrong_types)
{
    static const char *const bad[] = {"5", "null", "true", "[]", "{}", "1.5"};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++) {
            EXPECT_ERROR(relay_json(k, bad[i], "\"x\""),
                         fmt("Invalid %s: field 'target_id' must be a string", relay_types[k]));
            EXPECT_ERROR(relay_json(k, "\"b\"", bad[i]),
                         fmt("Invalid %s: field '%s' must be a string", relay_types[k],
                             relay_fields[k]));
        }
    }
}

TEST(t_target_id_rules)
{
    char *ok128 = id_of(128, ""), *bad129 = id_of(129, "");
    for (int k = 0; k < 3; k++) {
        const char *rule = fmt("Invalid %s: field 'target_id'" ID_RULE, relay_types[k]);
        EXPECT_ERROR(relay_json(k, "\"\"", "\"x\""), rule);
        EXPECT_ERROR(relay_json(k, fmt("\"%s\"", bad129), "\"x\""), rule);
        EXPECT_ERROR(relay_json(k, "\"a\\u0001\"", "\"x\""), rule);
        EXPECT_ERROR(relay_json(k, "\"a\\u007f\"", "\"x\""), rule);
        EXPECT_ERROR(relay_json(k, "\"a\\u0000\"", "\"x\""), rule);
        es_msg m;
        MUST_PARSE(&m, relay_json(k, fmt("\"%s\"", ok128), "\"x\""));
        assert_int_equal(m.target_id_len, 128);
        es_msg_release(&m);
    }
    free(ok128);
    free(bad129);
}

TEST(t_unknown_fields_ignored)
{
    es_msg m;
    MUST_PARSE(&m, sq("{'id':5,'type':'UpdatePosition','extra':{'a':[1,2,{'b':null}]},"
                      "'data':{'client_id':'c','map_id':1,'x':2,'y':3,'z':4.5,'name':'n',"
                      "'nested':{'x':'not an int'},'list':[1.5,true]}}"));
    assert_int_equal(m.type, ES_MSG_UPDATE_POSITION);
    assert_string_equal(m.client_id, "c");
    assert_int_equal(m.pos.x, 2);
    es_msg_release(&m);

    MUST_PARSE(&m, sq("{'type':'SendAnswer','data':{'target_id':'t','answer':'s','sender_id':'spoof',"
                      "'offer':5}}"));
    assert_int_equal(m.type, ES_MSG_SEND_ANSWER);
    assert_string_equal(m.payload, "s");
    es_msg_release(&m);
}

TEST(t_unknown_field_with_huge_integer_ignored)
{
    /* "Unknown fields anywhere are ignored": a 23-digit integer in a field the
     * server does not read is still valid JSON and must not fail the frame. */
    es_msg m;
    MUST_PARSE(&m, sq("{'type':'UpdatePosition','data':{'client_id':'c','map_id':1,'x':2,'y':3,"
                      "'ts':99999999999999999999999}}"));
    assert_int_equal(m.pos.x, 2);
    es_msg_release(&m);
}

TEST(t_fraction_named_even_next_to_a_huge_integer)
{
    /* The parser's fallback for integers beyond 64 bits re-reads every number
     * as a double; it must not then accept 900.0 as an integer. */
    EXPECT_ERROR(sq("{'type':'UpdatePosition','data':{'client_id':'c','map_id':1,'x':900.0,'y':3,"
                    "'ts':99999999999999999999999}}"),
                 "Invalid UpdatePosition: field 'x'" INT_RULE);
}

TEST(t_key_order_and_whitespace)
{
    es_msg m;
    MUST_PARSE(&m, " \n\t{ \"data\" : { \"y\" : 3 , \"x\" : 2 , \"map_id\" : 1 , \"client_id\" : "
                   "\"w\" } ,\r\n \"type\" : \"UpdatePosition\" }\n ");
    assert_int_equal(m.type, ES_MSG_UPDATE_POSITION);
    assert_string_equal(m.client_id, "w");
    assert_int_equal(m.pos.map_id, 1);
    assert_int_equal(m.pos.x, 2);
    assert_int_equal(m.pos.y, 3);
    es_msg_release(&m);
}

TEST(t_parse_uses_len_not_nul)
{
    /* The frame is the first len bytes; what follows must not matter. */
    const char *text = "{\"type\":\"Disconnect\"}GARBAGE";
    es_msg m;
    must_parse_n(&m, text, strlen("{\"type\":\"Disconnect\"}"));
    assert_int_equal(m.type, ES_MSG_DISCONNECT);
    es_msg_release(&m);
    expect_error_n(text, strlen(text), "Invalid JSON: end of file expected near 'GARBAGE'");
}

TEST(t_type_names)
{
    assert_string_equal(es_msg_type_name(ES_MSG_UPDATE_POSITION), "UpdatePosition");
    assert_string_equal(es_msg_type_name(ES_MSG_REQUEST_PEER_REFRESH), "RequestPeerRefresh");
    assert_string_equal(es_msg_type_name(ES_MSG_SEND_OFFER), "SendOffer");
    assert_string_equal(es_msg_type_name(ES_MSG_SEND_ANSWER), "SendAnswer");
    assert_string_equal(es_msg_type_name(ES_MSG_SEND_ICE_CANDIDATE), "SendIceCandidate");
    assert_string_equal(es_msg_type_name(ES_MSG_DISCONNECT), "Disconnect");
    assert_string_equal(es_msg_type_name(ES_MSG_TYPE_COUNT), "?");
}

/* ---- invalid envelopes --------------------------------------------------- */

TEST(t_invalid_json)
{
    EXPECT_ERROR("", "Invalid JSON: unexpected token near end of file");
    EXPECT_ERROR("   ", "Invalid JSON: unexpected token near end of file");
    EXPECT_ERROR("{", "Invalid JSON: string or '}' expected near end of file");
    EXPECT_ERROR("{\"type\":", "Invalid JSON: unexpected token near end of file");
    EXPECT_ERROR("{\"type\":\"Disconnect\"} x", "Invalid JSON: end of file expected near 'x'");
    EXPECT_ERROR("{\"type\":\"Disconnect\"}{}", "Invalid JSON: end of file expected near '{'");
    EXPECT_ERROR("{'type':'Disconnect'}", "Invalid JSON: string or '}' expected near '''");
    EXPECT_ERROR("{\"type\":\"Disconnect\",}", "Invalid JSON: string or '}' expected near '}'");
    EXPECT_ERROR("nul", "Invalid JSON: invalid token near 'nul'");
    EXPECT_ERROR("{\"type\":\"Disconnect\",\"data\":NaN}", "Invalid JSON: invalid token near 'NaN'");
    expect_error_n("{\"type\":\"Disconnect\"}\0", 22,
                   "Invalid JSON: end of file expected near end of file");
}

TEST(t_invalid_utf8_is_invalid_json)
{
    const char text[] = "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"b\",\"offer\":\"\xff\"}}";
    expect_error_n(text, sizeof text - 1, "Invalid JSON: unable to decode byte 0xff near '\"'");
    const char lone[] = "{\"type\":\"Disconnect\",\"data\":\"\\ud800\"}";
    es_msg m;
    char err[ES_ERROR_MAX];
    assert_int_equal(es_protocol_parse(lone, sizeof lone - 1, &m, err), -1);
    assert_starts_with(err, "Invalid JSON: ");
}

TEST(t_duplicate_keys_are_invalid)
{
    EXPECT_ERROR("{\"type\":\"Disconnect\",\"type\":\"Disconnect\"}",
                 "Invalid JSON: duplicate object key near '\"type\"'");
    EXPECT_ERROR(sq("{'type':'UpdatePosition','data':{'client_id':'a','map_id':1,'x':2,'y':3,'x':4}}"),
                 "Invalid JSON: duplicate object key near '\"x\"'");
    EXPECT_ERROR(sq("{'type':'Disconnect','data':{'a':1,'a':1}}"),
                 "Invalid JSON: duplicate object key near '\"a\"'");
    EXPECT_ERROR(sq("{'type':'SendOffer','data':{'target_id':'b','offer':'x','offer':'y'}}"),
                 "Invalid JSON: duplicate object key near '\"offer\"'");
    EXPECT_ERROR(sq("{'type':'Disconnect','data':null,'data':null}"),
                 "Invalid JSON: duplicate object key near '\"data\"'");
}

TEST(t_not_an_object)
{
    static const char *const bad[] = {"[1]", "[]", "42", "\"UpdatePosition\"", "null", "true",
                                      "-1.5"};
    for (size_t k = 0; k < ES_ARRAY_LEN(bad); k++)
        EXPECT_ERROR(bad[k], "Invalid message: expected a JSON object");
}

TEST(t_type_must_be_string)
{
    static const char *const bad[] = {"{}", "{\"data\":{}}", "{\"type\":5}", "{\"type\":null}",
                                      "{\"type\":true}", "{\"type\":[\"Disconnect\"]}",
                                      "{\"type\":{\"name\":\"Disconnect\"}}", "{\"Type\":\"Disconnect\"}"};
    for (size_t k = 0; k < ES_ARRAY_LEN(bad); k++)
        EXPECT_ERROR(bad[k], "Invalid message: field 'type' must be a string");
}

TEST(t_unknown_type)
{
    EXPECT_ERROR("{\"type\":\"Hello\"}", "Unknown message type: Hello");
    EXPECT_ERROR("{\"type\":\"updateposition\",\"data\":{}}", "Unknown message type: updateposition");
    EXPECT_ERROR("{\"type\":\"Disconnect \"}", "Unknown message type: Disconnect ");
    EXPECT_ERROR("{\"type\":\"\"}", "Unknown message type: ");
    EXPECT_ERROR("{\"type\":\"ReceiveOffer\"}", "Unknown message type: ReceiveOffer");
    EXPECT_ERROR("{\"type\":\"NearbyPeers\"}", "Unknown message type: NearbyPeers");
    /* a NUL inside the name: never a known type, the echo stops at the NUL */
    EXPECT_ERROR("{\"type\":\"Disconnect\\u0000x\"}", "Unknown message type: Disconnect");
    EXPECT_ERROR("{\"type\":\"t\\u00e9st\"}", "Unknown message type: t\xC3\xA9st");
}

TEST(t_unknown_type_echo_is_cut)
{
    char name[1001];
    memset(name, 'x', 1000);
    name[1000] = '\0';
    const char *err = error_of(fmt("{\"type\":\"%s\"}", name));
    char want[200];
    snprintf(want, sizeof want, "Unknown message type: %.64s...", name);
    assert_string_equal(err, want);

    /* 63 ASCII bytes then a 2-byte character: the cut must not split it */
    char utf[80];
    memset(utf, 'y', 63);
    strcpy(utf + 63, "\xC3\xA9z");
    err = error_of(fmt("{\"type\":\"%s\"}", utf));
    snprintf(want, sizeof want, "Unknown message type: %.63s...", utf);
    assert_string_equal(err, want);

    /* exactly 64 bytes: no ellipsis */
    char exact[65];
    memset(exact, 'q', 64);
    exact[64] = '\0';
    err = error_of(fmt("{\"type\":\"%s\"}", exact));
    assert_string_equal(err, fmt("Unknown message type: %s", exact));
}

TEST(t_data_must_be_object)
{
    static const char *const types[] = {"UpdatePosition", "SendOffer", "SendAnswer",
                                        "SendIceCandidate"};
    static const char *const datas[] = {"", ",\"data\":null", ",\"data\":[]", ",\"data\":\"x\"",
                                        ",\"data\":1", ",\"data\":true", ",\"data\":[{}]"};
    for (size_t t = 0; t < ES_ARRAY_LEN(types); t++)
        for (size_t k = 0; k < ES_ARRAY_LEN(datas); k++)
            EXPECT_ERROR(fmt("{\"type\":\"%s\"%s}", types[t], datas[k]),
                         fmt("Invalid %s: field 'data' must be an object", types[t]));
}

/* ---- client_id rules ------------------------------------------------------ */

TEST(t_client_id_empty_rejected)
{
    EXPECT_ERROR(upd_id("\"\""), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
}

TEST(t_client_id_length_limit)
{
    es_msg m;
    char *one = id_of(1, "");
    MUST_PARSE(&m, upd_id(fmt("\"%s\"", one)));
    assert_int_equal(m.client_id_len, 1);
    es_msg_release(&m);

    char *ok = id_of(128, "");
    MUST_PARSE(&m, upd_id(fmt("\"%s\"", ok)));
    assert_int_equal(m.client_id_len, 128);
    assert_string_equal(m.client_id, ok);
    es_msg_release(&m);

    char *bad = id_of(129, "");
    EXPECT_ERROR(upd_id(fmt("\"%s\"", bad)), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
    char *huge = id_of(5000, "");
    EXPECT_ERROR(upd_id(fmt("\"%s\"", huge)), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
    free(one);
    free(ok);
    free(bad);
    free(huge);
}

TEST(t_client_id_multibyte_at_the_limit)
{
    /* é = 2 bytes, € = 3 bytes, 🎧 = 4 bytes: count bytes, not characters */
    static const char *const tails[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x8E\xA7"};
    for (size_t k = 0; k < ES_ARRAY_LEN(tails); k++) {
        es_msg m;
        char *ok = id_of(128, tails[k]);
        MUST_PARSE(&m, upd_id(fmt("\"%s\"", ok)));
        assert_int_equal(m.client_id_len, 128);
        assert_string_equal(m.client_id, ok);
        es_msg_release(&m);
        char *bad = id_of(129, tails[k]);
        EXPECT_ERROR(upd_id(fmt("\"%s\"", bad)),
                     "Invalid UpdatePosition: field 'client_id'" ID_RULE);
        free(ok);
        free(bad);
    }
    /* 64 two-byte characters = 128 bytes ok; 65 = 130 bytes too long */
    char id[200] = "";
    for (int i = 0; i < 64; i++)
        strcat(id, "\xC3\xB1");
    es_msg m;
    MUST_PARSE(&m, upd_id(fmt("\"%s\"", id)));
    assert_int_equal(m.client_id_len, 128);
    es_msg_release(&m);
    strcat(id, "\xC3\xB1");
    EXPECT_ERROR(upd_id(fmt("\"%s\"", id)), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
    /* the same characters written as \u escapes count their UTF-8 bytes */
    char esc[1000] = "\"";
    for (int i = 0; i < 64; i++)
        strcat(esc, "\\u00f1");
    strcat(esc, "\"");
    MUST_PARSE(&m, upd_id(esc));
    assert_int_equal(m.client_id_len, 128);
    es_msg_release(&m);
}

TEST(t_client_id_control_characters_rejected)
{
    static const char *const bad[] = {"\"a\\u0001\"", "\"\\u001f\"", "\"a\\u007f\"",
                                      "\"a\\u0000b\"", "\"\\u0000\"", "\"tab\\there\"",
                                      "\"new\\nline\"", "\"cr\\r\"", "\"\\u001b[31m\""};
    for (size_t k = 0; k < ES_ARRAY_LEN(bad); k++)
        EXPECT_ERROR(upd_id(bad[k]), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
    /* a raw DEL byte inside the JSON string */
    EXPECT_ERROR(upd_id("\"a\x7f\""), "Invalid UpdatePosition: field 'client_id'" ID_RULE);
}

TEST(t_client_id_unicode_and_punctuation_accepted)
{
    static const char *const good[] = {("\"\xC3\xB1" "and\xC3\xBA\""), "\"\xE6\x9D\xB1\xE4\xBA\xAC\"",
                                       "\"\xF0\x9F\x8E\xA7\"", "\"a b\"", "\"\\\"q\\\\\"",
                                       "\"\\u00a0nbsp\"", "\"\xC2\x80\"", "\"~!@#$%^&*()\""};
    static const char *const decoded[] = {("\xC3\xB1" "and\xC3\xBA"), "\xE6\x9D\xB1\xE4\xBA\xAC",
                                          "\xF0\x9F\x8E\xA7", "a b", "\"q\\", "\xC2\xA0nbsp",
                                          "\xC2\x80", "~!@#$%^&*()"};
    for (size_t k = 0; k < ES_ARRAY_LEN(good); k++) {
        es_msg m;
        MUST_PARSE(&m, upd_id(good[k]));
        assert_string_equal(m.client_id, decoded[k]);
        assert_int_equal(m.client_id_len, strlen(decoded[k]));
        es_msg_release(&m);
    }
}

TEST(t_id_valid_direct)
{
    assert_int_equal(es_protocol_id_valid("a", 1), 1);
    assert_int_equal(es_protocol_id_valid("", 0), 0);
    assert_int_equal(es_protocol_id_valid("a\0", 2), 0);
    assert_int_equal(es_protocol_id_valid("a\x1f", 2), 0);
    assert_int_equal(es_protocol_id_valid("a\x7f", 2), 0);
    assert_int_equal(es_protocol_id_valid("a\x20", 2), 1);
    assert_int_equal(es_protocol_id_valid("\xff", 1), 0);          /* invalid byte */
    assert_int_equal(es_protocol_id_valid("\xC0\x80", 2), 0);      /* overlong NUL */
    assert_int_equal(es_protocol_id_valid("\xED\xA0\x80", 3), 0);  /* surrogate */
    assert_int_equal(es_protocol_id_valid("\xC3", 1), 0);          /* truncated */
    assert_int_equal(es_protocol_id_valid("\xF4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(es_protocol_id_valid("\xF4\x8F\xBF\xBF", 4), 1); /* U+10FFFF */
    char buf[130];
    memset(buf, 'z', sizeof buf);
    assert_int_equal(es_protocol_id_valid(buf, 128), 1);
    assert_int_equal(es_protocol_id_valid(buf, 129), 0);
}

TEST(t_format_echo)
{
    char out[64];
    es_protocol_format_echo(out, sizeof out, "P:", "hello", 5, 10, "!");
    assert_string_equal(out, "P:hello!");
    es_protocol_format_echo(out, sizeof out, "P:", "hello", 5, 3, "!");
    assert_string_equal(out, "P:hel...!");
    es_protocol_format_echo(out, sizeof out, "", "ab\xC3\xA9", 4, 3, "");
    assert_string_equal(out, "ab...");
    es_protocol_format_echo(out, sizeof out, "", "ab\xC3\xA9", 4, 4, "");
    assert_string_equal(out, "ab\xC3\xA9");
    es_protocol_format_echo(out, 8, "", "0123456789", 10, 10, "");
    assert_string_equal(out, "0123456");
}

TEST(t_error_text_always_fits)
{
    char name[4000];
    for (int i = 0; i < 1000; i++)
        memcpy(name + i * 3, "\xE2\x82\xAC", 3);
    name[3000] = '\0';
    es_msg m;
    char err[ES_ERROR_MAX];
    const char *text = fmt("{\"type\":\"%s\"}", name);
    assert_int_equal(es_protocol_parse(text, strlen(text), &m, err), -1);
    assert_true(strlen(err) < ES_ERROR_MAX);
    /* 21 € = 63 bytes fit in 64, the 22nd would not */
    char want[128] = "Unknown message type: ";
    for (int i = 0; i < 21; i++)
        strcat(want, "\xE2\x82\xAC");
    strcat(want, "...");
    assert_string_equal(err, want);
}

/* ---- writers ------------------------------------------------------------- */

static char *buf_text(es_buf *b)
{
    char *s = malloc(b->len + 1);
    assert_non_null(s);
    memcpy(s, es_buf_data(b), b->len);
    s[b->len] = '\0';
    return s;
}

#define ASSERT_BUF(b, expected)                                                        \
    do {                                                                               \
        const char *e_ = (expected);                                                   \
        char *t_ = buf_text(b);                                                        \
        if ((b)->len != strlen(e_) || memcmp(t_, e_, (b)->len) != 0)                   \
            fail_msg("buffer \"%s\" (%zu bytes)\nwanted \"%s\"", t_, (b)->len, e_);    \
        free(t_);                                                                      \
    } while (0)

/* Re-parse b with jansson: it must be valid JSON and data (a string, or the
 * member `field` of the data object) must equal want[0..wlen). */
static void reparse_string(es_buf *b, const char *field, const char *want, size_t wlen)
{
    json_error_t e;
    json_t *root = json_loadb(es_buf_data(b), b->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!root)
        fail_msg("writer output is not JSON: %s", e.text);
    json_t *data = json_object_get(root, "data");
    json_t *v = field ? json_object_get(data, field) : data;
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), wlen);
    assert_memory_equal(json_string_value(v), want, wlen ? wlen : 1);
    json_decref(root);
}

/* The writer tests get a fresh buffer b. */
static int buf_setup(void **state)
{
    es_buf *b = malloc(sizeof *b);
    if (!b)
        return -1;
    es_buf_init(b);
    *state = b;
    return 0;
}

static int buf_teardown(void **state)
{
    es_buf_free(*state);
    free(*state);
    return 0;
}

#define BUF es_buf *b = *cm_state_

/* b, emptied, then holding the Error frame for text, is exactly want. */
static void expect_error_frame(es_buf *b, const char *text, const char *want)
{
    es_buf_reset(b);
    es_protocol_write_error(b, text);
    ASSERT_BUF(b, want);
}

/* b, emptied, then holding the relay frame of type from sender with payload,
 * is exactly want. */
static void expect_relay_frame(es_buf *b, es_msg_type type, const char *sender, size_t slen,
                               const char *payload, size_t plen, const char *want)
{
    es_buf_reset(b);
    es_protocol_write_relay(b, type, sender, slen, payload, plen);
    ASSERT_BUF(b, want);
}

/* b, emptied, then holding a NearbyPeers of the first len bytes of each of
 * the n ids, is exactly want. */
typedef struct peer {
    const char *id;
    size_t len;
} peer;

static void expect_peers_frame(es_buf *b, const peer *p, size_t n, const char *want)
{
    es_buf_reset(b);
    es_protocol_write_peers_begin(b);
    for (size_t i = 0; i < n; i++)
        es_protocol_write_peers_add(b, p[i].id, p[i].len, i == 0);
    es_protocol_write_peers_end(b);
    ASSERT_BUF(b, want);
}

TEST(t_write_error_plain)
{
    BUF;
    expect_error_frame(b, "Client must send UpdatePosition first.",
                       "{\"type\":\"Error\",\"data\":\"Client must send UpdatePosition first.\"}");
    reparse_string(b, NULL, "Client must send UpdatePosition first.", 38);
}

TEST(t_write_error_escapes)
{
    BUF;
    const char *text = "q\"b\\s/n\nr\rt\tb\bf\fc\x01\x1f\x7f end";
    expect_error_frame(b, text, "{\"type\":\"Error\",\"data\":"
                                "\"q\\\"b\\\\s/n\\nr\\rt\\tb\\bf\\fc\\u0001\\u001f\x7f end\"}");
    reparse_string(b, NULL, text, strlen(text));
}

TEST(t_write_error_unicode_raw)
{
    BUF;
    const char *text = "caf\xC3\xA9 \xE6\x9D\xB1 \xF0\x9F\x8E\xA7";
    expect_error_frame(b, text,
                       "{\"type\":\"Error\",\"data\":\"caf\xC3\xA9 \xE6\x9D\xB1 \xF0\x9F\x8E\xA7\"}");
    reparse_string(b, NULL, text, strlen(text));
}

TEST(t_write_error_empty)
{
    BUF;
    expect_error_frame(b, "", "{\"type\":\"Error\",\"data\":\"\"}");
}

TEST(t_write_every_control_character)
{
    BUF;
    static const char *const esc[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f"};
    for (int c = 0; c < 32; c++) {
        char payload[3] = {'<', (char)c, '>'};
        expect_relay_frame(b, ES_MSG_SEND_ICE_CANDIDATE, "s", 1, payload, 3,
                           fmt("{\"type\":\"ReceiveIceCandidate\",\"data\":{\"sender_id\":\"s\","
                               "\"candidate\":\"<%s>\"}}", esc[c]));
        reparse_string(b, "candidate", payload, 3);
    }
}

TEST(t_write_peers)
{
    BUF;
    expect_peers_frame(b, NULL, 0, "{\"type\":\"NearbyPeers\",\"data\":[]}");
    expect_peers_frame(b, (const peer[]){{"alice", 5}}, 1,
                       "{\"type\":\"NearbyPeers\",\"data\":[\"alice\"]}");
    static const peer four[] = {{"a", 1}, {"b\"q", 3}, {"c\\d", 3}, {"\xC3\xA9t\xC3\xA9", 5}};
    expect_peers_frame(b, four, 4,
                       "{\"type\":\"NearbyPeers\",\"data\":"
                       "[\"a\",\"b\\\"q\",\"c\\\\d\",\"\xC3\xA9t\xC3\xA9\"]}");

    json_error_t e;
    json_t *root = json_loadb(es_buf_data(b), b->len, JSON_REJECT_DUPLICATES, &e);
    assert_non_null(root);
    json_t *data = json_object_get(root, "data");
    assert_true(json_is_array(data));
    assert_int_equal(json_array_size(data), 4);
    for (size_t i = 0; i < ES_ARRAY_LEN(four); i++)
        assert_string_equal(json_string_value(json_array_get(data, i)), four[i].id);
    json_decref(root);
}

TEST(t_write_peers_uses_len)
{
    BUF;
    expect_peers_frame(b, (const peer[]){{"abcdef", 3}}, 1,
                       "{\"type\":\"NearbyPeers\",\"data\":[\"abc\"]}");
}

TEST(t_write_relay_each_kind)
{
    BUF;
    expect_relay_frame(b, ES_MSG_SEND_OFFER, "alice", 5, "v=0", 3,
                       "{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"alice\","
                       "\"offer\":\"v=0\"}}");
    expect_relay_frame(b, ES_MSG_SEND_ANSWER, "bob", 3, "ans", 3,
                       "{\"type\":\"ReceiveAnswer\",\"data\":{\"sender_id\":\"bob\","
                       "\"answer\":\"ans\"}}");
    expect_relay_frame(b, ES_MSG_SEND_ICE_CANDIDATE, "c", 1, "candidate:1 1 udp", 17,
                       "{\"type\":\"ReceiveIceCandidate\",\"data\":{\"sender_id\":\"c\","
                       "\"candidate\":\"candidate:1 1 udp\"}}");
    expect_relay_frame(b, ES_MSG_SEND_OFFER, "e", 1, "", 0,
                       "{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"e\",\"offer\":\"\"}}");
}

TEST(t_write_relay_nul_and_escapes)
{
    BUF;
    const char payload[] = "a\0b\"c\\d\r\n\xC3\xA9";
    size_t plen = sizeof payload - 1;
    expect_relay_frame(b, ES_MSG_SEND_OFFER, "s\"1", 3, payload, plen,
                       "{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"s\\\"1\","
                       "\"offer\":\"a\\u0000b\\\"c\\\\d\\r\\n\xC3\xA9\"}}");
    reparse_string(b, "offer", payload, plen);
    reparse_string(b, "sender_id", "s\"1", 3);
}

TEST(t_write_invalid_utf8_replaced)
{
    BUF;
    expect_relay_frame(b, ES_MSG_SEND_ANSWER, "x", 1, "a\xff" "b\xC3", 4,
                       "{\"type\":\"ReceiveAnswer\",\"data\":{\"sender_id\":\"x\","
                       "\"answer\":\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"}}");
    reparse_string(b, "answer", "a\xEF\xBF\xBD" "b\xEF\xBF\xBD", 8);
}

TEST(t_writers_append_to_existing_content)
{
    BUF;
    es_buf_append_cstr(b, "X");
    es_protocol_write_error(b, "e");
    ASSERT_BUF(b, "X{\"type\":\"Error\",\"data\":\"e\"}");
}

TEST(t_parse_then_write_round_trip)
{
    /* Whatever payload a client sends is delivered byte for byte. */
    BUF;
    const char *frame = "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"b\",\"offer\":"
                        "\"v=0\\r\\no=- \\\"x\\\" \\\\ \\u0000 \\u00e9 \\ud83c\\udfa7 \\u001f \\/\"}}";
    es_msg m;
    MUST_PARSE(&m, frame);
    es_protocol_write_relay(b, m.type, "a", 1, m.payload, m.payload_len);
    reparse_string(b, "offer", m.payload, m.payload_len);
    ASSERT_BUF(b, "{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"a\",\"offer\":"
                  "\"v=0\\r\\no=- \\\"x\\\" \\\\ \\u0000 \xC3\xA9 \xF0\x9F\x8E\xA7 \\u001f /\"}}");
    es_msg_release(&m);
}

TEST(t_write_large_payload)
{
    BUF;
    size_t n = 70000;
    char *payload = malloc(n);
    assert_non_null(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (i % 3 == 0) ? '"' : (i % 3 == 1) ? '\x01' : 'z';
    es_protocol_write_relay(b, ES_MSG_SEND_OFFER, "s", 1, payload, n);
    /* " -> \" (2), \x01 -> \u0001 (6), z (1) */
    size_t body = (n / 3) * 9 + (n % 3 >= 1 ? 2 : 0) + (n % 3 >= 2 ? 6 : 0);
    assert_int_equal(b->len, strlen("{\"type\":\"ReceiveOffer\",\"data\":{\"sender_id\":\"s\",\"offer\":\"\"}}") + body);
    reparse_string(b, "offer", payload, n);
    free(payload);
}

/* ---- protocol v1.1: resuming ------------------------------------------------ */

static const char *upd_extra(const char *extra)
{
    return fmt("{\"type\":\"UpdatePosition\",\"data\":{\"client_id\":\"a\",\"map_id\":1,"
               "\"x\":2,\"y\":3%s}}",
               extra);
}

TEST(t_update_position_resumable)
{
    es_msg m;
    MUST_PARSE(&m, upd_extra(""));
    assert_int_equal(m.resumable, 0);
    assert_null(m.resume_token);
    es_msg_release(&m);
    MUST_PARSE(&m, upd_extra(",\"resumable\":true"));
    assert_int_equal(m.resumable, 1);
    es_msg_release(&m);
    MUST_PARSE(&m, upd_extra(",\"resumable\":false"));
    assert_int_equal(m.resumable, 0);
    es_msg_release(&m);
    /* null is the same as absent */
    MUST_PARSE(&m, upd_extra(",\"resumable\":null,\"resume_token\":null"));
    assert_int_equal(m.resumable, 0);
    assert_null(m.resume_token);
    es_msg_release(&m);
    static const char *const bad[] = {"1", "0", "\"true\"", "[]", "{}"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++)
        EXPECT_ERROR(upd_extra(fmt(",\"resumable\":%s", bad[i])),
                     "Invalid UpdatePosition: field 'resumable' must be true or false");
}

TEST(t_update_position_resume_token)
{
    es_msg m;
    MUST_PARSE(&m, upd_extra(",\"resume_token\":\"AZaz09-_\""));
    assert_non_null(m.resume_token);
    assert_int_equal(m.resume_token_len, 8);
    assert_string_equal(m.resume_token, "AZaz09-_");
    es_msg_release(&m);
    char longest[ES_RESUME_TOKEN_MAX + 2];
    memset(longest, 'x', ES_RESUME_TOKEN_MAX);
    longest[ES_RESUME_TOKEN_MAX] = '\0';
    MUST_PARSE(&m, upd_extra(fmt(",\"resume_token\":\"%s\"", longest)));
    assert_int_equal(m.resume_token_len, ES_RESUME_TOKEN_MAX);
    es_msg_release(&m);
    longest[ES_RESUME_TOKEN_MAX] = 'x';
    longest[ES_RESUME_TOKEN_MAX + 1] = '\0';
    const char *rule =
        "Invalid UpdatePosition: field 'resume_token' must be 1 to 128 base64url characters "
        "(A-Z a-z 0-9 - _)";
    EXPECT_ERROR(upd_extra(fmt(",\"resume_token\":\"%s\"", longest)), rule);
    static const char *const bad[] = {"\"\"",        "\"ab=\"", "\"a b\"",  "\"a+b\"", "\"a/b\"",
                                      "\"\\u0000a\"", "\"é\"",  "1",        "true",
                                      "[\"a\"]"};
    for (size_t i = 0; i < ES_ARRAY_LEN(bad); i++)
        EXPECT_ERROR(upd_extra(fmt(",\"resume_token\":%s", bad[i])), rule);
    /* other messages ignore both, like any unknown field */
    MUST_PARSE(&m, "{\"type\":\"SendOffer\",\"data\":{\"target_id\":\"b\",\"offer\":\"o\","
                   "\"resumable\":7,\"resume_token\":\"=\"}}");
    es_msg_release(&m);
}

TEST(t_write_session)
{
    BUF;
    es_buf_reset(b);
    es_protocol_write_session(b, "tok-_9", 6, 15.0);
    assert_int_equal(b->len, strlen("{\"type\":\"Session\",\"data\":{\"resume_token\":\"tok-_9\",\"grace\":15}}"));
    assert_memory_equal(es_buf_data(b),
                        "{\"type\":\"Session\",\"data\":{\"resume_token\":\"tok-_9\",\"grace\":15}}",
                        b->len);
    es_buf_reset(b);
    es_protocol_write_session(b, "x", 1, 2.5);
    assert_memory_equal(es_buf_data(b),
                        "{\"type\":\"Session\",\"data\":{\"resume_token\":\"x\",\"grace\":2.5}}", b->len);
}

int main(void)
{
#define W(fn) cmocka_unit_test_setup_teardown(fn, buf_setup, buf_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_update_position_all_fields),
        cmocka_unit_test(t_update_position_optional_fields_default_to_zero),
        cmocka_unit_test(t_update_position_int32_bounds_accepted),
        cmocka_unit_test(t_update_position_int32_out_of_range_names_field),
        cmocka_unit_test(t_update_position_minus_zero_is_zero),
        cmocka_unit_test(t_update_position_fraction_or_exponent_is_an_error),
        cmocka_unit_test(t_update_position_huge_integer_names_field),
        cmocka_unit_test(t_update_position_1e400_names_field),
        cmocka_unit_test(t_update_position_non_numbers_name_field),
        cmocka_unit_test(t_update_position_missing_required_fields),
        cmocka_unit_test(t_update_position_client_id_must_be_string),
        cmocka_unit_test(t_request_peer_refresh_data_ignored),
        cmocka_unit_test(t_disconnect_data_ignored),
        cmocka_unit_test(t_relays_valid),
        cmocka_unit_test(t_relay_empty_payload_is_valid),
        cmocka_unit_test(t_relay_payload_escapes_decoded),
        cmocka_unit_test(t_relay_payload_with_nul_kept),
        cmocka_unit_test(t_relay_payload_8k),
        cmocka_unit_test(t_relay_missing_fields),
        cmocka_unit_test(t_relay_wrong_types),
        cmocka_unit_test(t_target_id_rules),
        cmocka_unit_test(t_unknown_fields_ignored),
        cmocka_unit_test(t_unknown_field_with_huge_integer_ignored),
        cmocka_unit_test(t_fraction_named_even_next_to_a_huge_integer),
        cmocka_unit_test(t_key_order_and_whitespace),
        cmocka_unit_test(t_parse_uses_len_not_nul),
        cmocka_unit_test(t_type_names),
        cmocka_unit_test(t_invalid_json),
        cmocka_unit_test(t_invalid_utf8_is_invalid_json),
        cmocka_unit_test(t_duplicate_keys_are_invalid),
        cmocka_unit_test(t_not_an_object),
        cmocka_unit_test(t_type_must_be_string),
        cmocka_unit_test(t_unknown_type),
        cmocka_unit_test(t_unknown_type_echo_is_cut),
        cmocka_unit_test(t_data_must_be_object),
        cmocka_unit_test(t_client_id_empty_rejected),
        cmocka_unit_test(t_client_id_length_limit),
        cmocka_unit_test(t_client_id_multibyte_at_the_limit),
        cmocka_unit_test(t_client_id_control_characters_rejected),
        cmocka_unit_test(t_client_id_unicode_and_punctuation_accepted),
        cmocka_unit_test(t_id_valid_direct),
        cmocka_unit_test(t_format_echo),
        cmocka_unit_test(t_error_text_always_fits),
        W(t_write_error_plain),
        W(t_write_error_escapes),
        W(t_write_error_unicode_raw),
        W(t_write_error_empty),
        W(t_write_every_control_character),
        W(t_write_peers),
        W(t_write_peers_uses_len),
        W(t_write_relay_each_kind),
        W(t_write_relay_nul_and_escapes),
        W(t_write_invalid_utf8_replaced),
        W(t_writers_append_to_existing_content),
        W(t_parse_then_write_round_trip),
        W(t_write_large_payload),
        cmocka_unit_test(t_update_position_resumable),
        cmocka_unit_test(t_update_position_resume_token),
        W(t_write_session),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
