/*
 * test_bus - the messages between nodes: every kind written and read back,
 * and every way a packet is refused before one field of it is trusted.
 */
#include "helpers.h"

#include "buf.h"
#include "bus.h"
#include "protocol.h"

static es_bus_str S(const char *s) { return (es_bus_str){s, strlen(s)}; }

static int same_str(es_bus_str a, es_bus_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Encode m, decode it, and check every field came back. */
static void round_trip(const es_bus_msg *m)
{
    es_buf b;
    es_buf_init(&b);
    es_bus_encode(&b, m);
    es_bus_msg d;
    size_t used = 0;
    assert_int_equal(es_bus_decode(es_buf_data(&b), b.len, &d, &used), ES_BUS_OK);
    assert_int_equal(used, b.len);
    assert_int_equal(d.type, m->type);
    assert_true(same_str(d.node, m->node));
    assert_true(d.incarnation == m->incarnation);
    assert_true(d.conn == m->conn);
    assert_true(d.seq == m->seq);
    assert_int_equal(d.flags, m->flags);
    assert_int_equal(d.code, m->code);
    assert_true(same_str(d.addr, m->addr));
    assert_true(same_str(d.token, m->token));
    assert_true(same_str(d.path, m->path));
    assert_true(same_str(d.query, m->query));
    assert_true(same_str(d.lost_owner, m->lost_owner));
    assert_true(same_str(d.data, m->data));
    assert_int_equal(d.nheaders, m->nheaders);
    for (size_t i = 0; i < m->nheaders; i++) {
        assert_true(same_str(d.header_names[i], m->header_names[i]));
        assert_true(same_str(d.header_values[i], m->header_values[i]));
    }
    es_buf_free(&b);
}

static es_bus_error decode_all(const char *p, size_t n);

static es_bus_msg base(es_bus_type t)
{
    es_bus_msg m;
    memset(&m, 0, sizeof m);
    m.type = t;
    m.node = S("node-1.eu:8080");
    m.incarnation = 0x0123456789abcdefULL;
    return m;
}

TEST(t_every_kind_round_trips)
{
    es_bus_msg m = base(ES_BUS_HEARTBEAT);
    m.flags = ES_BUS_F_LEAVING;
    m.seq = 1ULL << 63;
    round_trip(&m);

    m = base(ES_BUS_OPEN);
    m.conn = UINT64_MAX;
    m.flags = ES_BUS_F_RESUMABLE | ES_BUS_F_REATTACH | ES_BUS_F_SESSION_OWED;
    m.addr = S("2001:db8::1");
    m.token = S("3kgX1sRjjRfC7M6Nj1dIIFXeqsjn9OCTXElqxsoG-Zw");
    m.path = S("/play");
    m.query = S("token=a&b=c");
    m.nheaders = 2;
    m.header_names[0] = S("host"), m.header_values[0] = S("example.org");
    m.header_names[1] = S("x-game-token"), m.header_values[1] = S("");
    m.lost_owner = S("n3");
    m.data = (es_bus_str){"{\"type\":\"UpdatePosition\"}\0tail", 30}; /* bytes, NUL and all */
    round_trip(&m);

    m = base(ES_BUS_FRAME);
    m.conn = 7;
    m.data = S("");
    round_trip(&m);

    m = base(ES_BUS_OUT);
    m.conn = 1ULL << 40;
    m.flags = ES_BUS_F_REPLY;
    m.data = S("{\"type\":\"NearbyPeers\",\"data\":[]}");
    round_trip(&m);

    m = base(ES_BUS_CLOSED);
    m.conn = 9;
    m.flags = ES_BUS_F_HOLD;
    round_trip(&m);

    m = base(ES_BUS_CLOSE);
    m.conn = 9;
    m.code = 4999;
    round_trip(&m);

    m = base(ES_BUS_REHOME);
    m.conn = 3;
    m.flags = ES_BUS_F_RESUMABLE | ES_BUS_F_SESSION_OWED;
    m.token = S("tok");
    m.data = S("frame");
    round_trip(&m);

    m = base(ES_BUS_TOKEN);
    m.conn = 3;
    m.sender = S("alice");
    m.token = S("t");
    round_trip(&m);
    m.token = S(""); /* registered, not resumable */
    round_trip(&m);

    m = base(ES_BUS_RELAY);
    m.conn = 12;
    m.relay = ES_MSG_SEND_ANSWER;
    m.sender = S("alice");
    m.addr = S("10.0.0.1");
    int32_t pos[5] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    memcpy(m.pos, pos, sizeof pos);
    m.target = S("bob");
    m.data = S("v=0 sdp");
    round_trip(&m);
    for (int i = 0; i < 5; i++)
        assert_int_equal(m.pos[i], pos[i]);

    m = base(ES_BUS_RELAY_FAIL);
    m.conn = 12;
    m.relay = ES_MSG_SEND_OFFER;
    m.code = 9;
    m.text = S("Client bob not found");
    round_trip(&m);
}

TEST(t_relays_carry_relay_types_only)
{
    es_buf b;
    es_buf_init(&b);
    es_bus_msg m = base(ES_BUS_RELAY);
    m.sender = S("a");
    m.target = S("b");
    static const unsigned types[] = {ES_MSG_UPDATE_POSITION, ES_MSG_REQUEST_PEER_REFRESH,
                                     ES_MSG_DISCONNECT, ES_MSG_REQUEST_ICE_SERVERS, 200};
    for (size_t i = 0; i < ES_ARRAY_LEN(types); i++) {
        m.relay = types[i];
        es_buf_reset(&b);
        es_bus_encode(&b, &m);
        assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    }
    m.relay = ES_MSG_SEND_ICE_CANDIDATE;
    m.sender = S("");
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    m = base(ES_BUS_RELAY_FAIL);
    m.relay = ES_MSG_SEND_OFFER;
    m.code = 0; /* no error is no failure */
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    es_buf_free(&b);
}

TEST(t_packets_back_to_back_are_read_one_by_one)
{
    es_buf b;
    es_buf_init(&b);
    es_bus_put_conn_bytes(&b, ES_BUS_FRAME, "a", 1, 10, "one", 3);
    es_bus_put_conn_bytes(&b, ES_BUS_FRAME, "a", 1, 11, "two!", 4);
    const char *p = es_buf_data(&b);
    size_t n = b.len, used;
    es_bus_msg m;
    assert_int_equal(es_bus_decode(p, n, &m, &used), ES_BUS_OK);
    assert_int_equal(m.type, ES_BUS_FRAME);
    assert_true(m.conn == 10);
    assert_true(same_str(m.data, S("one")));
    p += used, n -= used;
    assert_int_equal(es_bus_decode(p, n, &m, &used), ES_BUS_OK);
    assert_int_equal(m.type, ES_BUS_FRAME);
    assert_true(m.conn == 11);
    assert_true(same_str(m.data, S("two!")));
    assert_int_equal(used, n);
    es_buf_free(&b);
}

/* A valid packet in b to break: a CLOSED from "nd". */
static void closed_packet(es_buf *b)
{
    es_buf_reset(b);
    size_t at = es_bus_begin(b, ES_BUS_CLOSED, "nd", 5);
    es_bus_put_u64(b, 1);
    es_bus_put_u8(b, ES_BUS_F_HOLD);
    es_bus_end(b, at);
}

static es_bus_error decode_all(const char *p, size_t n)
{
    es_bus_msg m;
    size_t used;
    return es_bus_decode(p, n, &m, &used);
}

TEST(t_the_header_is_checked_first)
{
    es_buf b;
    es_buf_init(&b);
    closed_packet(&b);
    char *p = es_buf_data(&b);
    assert_int_equal(decode_all(p, b.len), ES_BUS_OK);
    /* every prefix of it is short */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(decode_all(p, n), ES_BUS_ERR_SHORT);
    p[0] = 'E';
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_MAGIC);
    p[0] = 'e';
    p[2] = 2;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_VERSION);
    p[2] = ES_BUS_VERSION;
    p[3] = 0;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_TYPE);
    p[3] = ES_BUS_TYPE_END;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_TYPE);
    p[3] = ES_BUS_CLOSED;
    p[13] = ' '; /* the name "nd" becomes " d" */
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_NAME);
    p[13] = 'n';
    p[12] = 0; /* no name at all */
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_NAME);
    p[12] = 2;
    assert_int_equal(decode_all(p, b.len), ES_BUS_OK);
    es_buf_free(&b);
}

TEST(t_the_body_must_be_exactly_what_the_type_says)
{
    es_buf b;
    es_buf_init(&b);
    closed_packet(&b);
    char *p = es_buf_data(&b);
    size_t len_at = 13 + 2; /* after the name */
    /* a body length past the end */
    p[len_at + 3] = 10;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_SHORT);
    /* a body shorter than CLOSED's fields */
    p[len_at + 3] = 8;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_FIELD);
    p[len_at + 3] = 9;
    assert_int_equal(decode_all(p, b.len), ES_BUS_OK);
    /* an unknown flag */
    p[b.len - 1] = 2;
    assert_int_equal(decode_all(p, b.len), ES_BUS_ERR_FIELD);
    /* bytes left over in the body */
    es_buf_reset(&b);
    size_t at = es_bus_begin(&b, ES_BUS_CLOSED, "nd", 5);
    es_bus_put_u64(&b, 1);
    es_bus_put_u8(&b, 0);
    es_bus_put_u8(&b, 0);
    es_bus_end(&b, at);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    es_buf_free(&b);
}

TEST(t_fields_past_their_limits_are_refused)
{
    es_buf b;
    es_buf_init(&b);
    char big[ES_BUS_PATH_MAX + 2];
    memset(big, 'x', sizeof big);
    es_bus_msg m = base(ES_BUS_OPEN);
    m.addr = (es_bus_str){big, ES_BUS_ADDR_MAX};
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_OK);
    m.addr = (es_bus_str){big, ES_BUS_ADDR_MAX + 1};
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);

    m = base(ES_BUS_TOKEN);
    m.sender = S("alice");
    m.token = (es_bus_str){big, ES_BUS_TOKEN_MAX + 1};
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);

    m = base(ES_BUS_OPEN);
    m.path = (es_bus_str){big, ES_BUS_PATH_MAX + 1};
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);

    /* a lost owner that is no node name */
    m = base(ES_BUS_OPEN);
    m.lost_owner = S("bad name");
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);

    /* more headers than any upgrade carries */
    es_buf_reset(&b);
    size_t at = es_bus_begin(&b, ES_BUS_OPEN, "nd", 1);
    es_bus_put_u64(&b, 1);
    es_bus_put_u8(&b, 0);
    for (int i = 0; i < 4; i++)
        es_bus_put_str(&b, "", 0);
    es_bus_put_u16(&b, ES_BUS_HEADERS_MAX + 1);
    es_bus_end(&b, at);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);

    /* close codes outside 1000..4999 */
    m = base(ES_BUS_CLOSE);
    m.code = 999;
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    m.code = 5000;
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_ERR_FIELD);
    m.code = 1000;
    es_buf_reset(&b);
    es_bus_encode(&b, &m);
    assert_int_equal(decode_all(es_buf_data(&b), b.len), ES_BUS_OK);
    es_buf_free(&b);
}

TEST(t_node_names)
{
    assert_true(es_bus_name_valid("a", 1));
    assert_true(es_bus_name_valid("node-1.eu_west:8080", 19));
    assert_false(es_bus_name_valid("", 0));
    assert_false(es_bus_name_valid("a b", 3));
    assert_false(es_bus_name_valid("a/b", 3));
    assert_false(es_bus_name_valid("\xc3\xa9", 2));
    char n[ES_BUS_NAME_MAX + 1];
    memset(n, 'n', sizeof n);
    assert_true(es_bus_name_valid(n, ES_BUS_NAME_MAX));
    assert_false(es_bus_name_valid(n, ES_BUS_NAME_MAX + 1));
}

TEST(t_owner_hash_is_the_same_everywhere)
{
    /* FNV-1a + splitmix64's finalizer, unseeded by the process: these
     * values are what every node computes */
    assert_true(es_bus_hash("", 0, 0) == es_bus_hash("", 0, 0));
    assert_true(es_bus_hash("n1", 2, 7) != es_bus_hash("n2", 2, 7));
    assert_true(es_bus_hash("n1", 2, 7) != es_bus_hash("n1", 2, 8));
    uint64_t h = 1469598103934665603ULL ^ 7;
    h = (h ^ 'n') * 1099511628211ULL;
    h = (h ^ '1') * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    assert_true(es_bus_hash("n1", 2, 7) == h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_every_kind_round_trips),
        cmocka_unit_test(t_packets_back_to_back_are_read_one_by_one),
        cmocka_unit_test(t_relays_carry_relay_types_only),
        cmocka_unit_test(t_the_header_is_checked_first),
        cmocka_unit_test(t_the_body_must_be_exactly_what_the_type_says),
        cmocka_unit_test(t_fields_past_their_limits_are_refused),
        cmocka_unit_test(t_node_names),
        cmocka_unit_test(t_owner_hash_is_the_same_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
