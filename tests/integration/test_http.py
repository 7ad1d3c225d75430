"""Transport: plain HTTP endpoints, the upgrade on any path, WebSocket framing and
the frame size limit (PROTOCOL.md: Transport, Liveness and limits)."""

import re
import time
import unittest

from harness import EarshotTestCase, HOST
from wsclient import (OP_BINARY, OP_CONT, OP_PING, OP_TEXT, ConnectionClosed, NoMessage,
                      encode_frame, http_raw)

METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?\})? '
    r'[-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|Inf)( -?[0-9]+)?$')
META_LINE = re.compile(r'^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|'
                       r'TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$')


def update(client_id, map_id, x=0, y=0, pad=0):
    """UpdatePosition JSON text; `pad` bytes of an ignored field make it bigger."""
    text = ('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,"x":%d,"y":%d},'
            '"pad":"' % (client_id, map_id, x, y))
    return text + "p" * pad + '"}'


def update_of_size(client_id, map_id, size):
    base = len(update(client_id, map_id).encode())
    assert size >= base
    text = update(client_id, map_id, pad=size - base)
    assert len(text.encode()) == size
    return text


class HttpTest(EarshotTestCase):

    def test_healthz(self):
        status, headers, body = self.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body.strip(), b"ok")

    def test_metrics_is_prometheus_text(self):
        # some traffic first, so counters exist
        ws = self.join(self.cid("m"), self.new_map(), 0, 0)
        ws.send_text("not json")
        self.expect_error_prefix(ws, "Invalid JSON: ")
        status, headers, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        text = body.decode("utf-8")
        samples = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                if line.startswith("# HELP ") or line.startswith("# TYPE "):
                    self.assertRegex(line, META_LINE)
                continue
            self.assertRegex(line, METRIC_LINE)
            samples += 1
        self.assertGreater(samples, 0, text)

    def test_any_path_upgrades(self):
        m = self.new_map()
        for i, path in enumerate(["/", "/ws", "/?token=x", "/some/deep/path?x=1&y=%20z",
                                  "/healthz", "/metrics", "/index.html"]):
            with self.subTest(path=path):
                ws = self.connect(path=path, headers={"Origin": "http://example.test",
                                                      "Authorization": "Bearer t",
                                                      "X-Extra": "1"})
                self.assertEqual(self.register(ws, self.cid("p%d" % i), m, 1000 * i, 0), [])
                ws.close()

    def test_healthz_still_served_with_clients(self):
        ws = self.join(self.cid("a"), self.new_map(), 0, 0)
        for _ in range(3):
            status, _, body = self.get("/healthz")
            self.assertEqual((status, body.strip()), (200, b"ok"))
        self.refresh(ws)
        self.expect_peers(ws, [])

    def test_handshake_without_key_is_refused(self):
        req = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (HOST, self.server.port)).encode()
        head = http_raw(HOST, self.server.port, req)
        self.assertFalse(head.startswith(b"HTTP/1.1 101"), head)

    def test_handshake_accept_key(self):
        # WebSocket() verifies Sec-WebSocket-Accept against its random key
        for _ in range(3):
            ws = self.connect()
            self.assertEqual(ws.response_headers.get("upgrade", "").lower(), "websocket")

    # ------------------------------------------------------------ framing
    def test_client_ping_gets_pong(self):
        ws = self.connect()
        for payload in (b"", b"abc", bytes(range(125))):
            ws.send_ping(payload)
            ws.expect_nothing(0.2)  # reads (and records) control frames only
            self.assertEqual(ws.pongs_received[-1:], [payload])
        self.assertEqual(len(ws.pongs_received), 3)

    def test_fragmented_message_is_reassembled(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        b_id = self.cid("b")
        b = self.connect()
        text = update(b_id, m, 1, 1).encode()
        parts = [text[:5], text[5:20], b"", text[20:]]
        b.send_fragmented(OP_TEXT, parts, between=lambda i: b.send_ping(b"mid%d" % i))
        self.expect_peers(b, [a_id])
        self.expect_peers(a, [b_id])
        # a UTF-8 sequence split across fragments
        payload = "h\u00e9llo \U0001F3A7".encode()
        msg = ('{"type":"SendOffer","data":{"target_id":"%s","offer":"' % a_id).encode() + \
            payload + b'"}}'
        cut = msg.index(b"\xf0") + 2
        b.send_fragmented(OP_TEXT, [msg[:cut], msg[cut:]])
        self.assertEqual(a.recv_json(), {"type": "ReceiveOffer", "data": {
            "sender_id": b_id, "offer": "h\u00e9llo \U0001F3A7"}})
        self.expect_nothing(a, b)  # reads the pongs too
        # RFC 6455 5.5.3 lets back-to-back pings share one pong
        self.assertTrue(b.pongs_received, "no pong for the pings between fragments")
        self.assertTrue(set(b.pongs_received) <= {b"mid0", b"mid1", b"mid2"}, b.pongs_received)

    def test_sizes_and_length_encodings(self):
        """7-bit, 16-bit and 64-bit length encodings all work up to the limit."""
        m = self.new_map()
        ws = self.connect()
        c_id = self.cid("c")
        self.assertEqual(self.register(ws, c_id, m, 0, 0), [])
        for size in (125, 126, 127, 65535, 65536):
            with self.subTest(size=size):
                ws.send_text(update_of_size(c_id, m, size))
                ws.expect_nothing(0.2)  # same place: no change, no reply
        self.refresh(ws)
        self.expect_peers(ws, [])

    def test_exactly_limit_is_processed(self):
        m = self.new_map()
        o_id = self.cid("o")
        o = self.join(o_id, m, 0, 0)
        ws = self.connect()
        ws.send_text(update_of_size(self.cid("big"), m, 65536))
        self.expect_peers(ws, [o_id])
        self.expect_peers(o, [self.cid("big")])

    def test_frame_over_limit(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        for opcode in (OP_TEXT, OP_BINARY):
            with self.subTest(opcode=opcode):
                ws = self.connect()
                ws.send_frame(opcode, update_of_size(self.cid("big"), m, 65537).encode())
                self.expect_error(ws, "Frame too large (limit 65536 bytes)")
                self.assertEqual(ws.expect_close(), 1009)
        o.expect_nothing()
        self.refresh(o)
        self.expect_peers(o, [])

    def test_huge_declared_length_is_refused_early(self):
        """A header announcing 2^62 bytes: refused without waiting for the payload."""
        ws = self.connect()
        ws.raw_send(encode_frame(OP_TEXT, b"", length_override=1 << 62))
        ws.raw_send(b"{}" * 10)
        self.expect_error(ws, "Frame too large (limit 65536 bytes)")
        self.assertEqual(ws.expect_close(), 1009)

    def test_registered_client_over_limit_leaves(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 1, expect=[a_id])
        self.expect_peers(a, [b_id])
        b.send_text(update_of_size(b_id, m, 70000))
        self.expect_error(b, "Frame too large (limit 65536 bytes)")
        self.assertEqual(b.expect_close(), 1009)
        self.expect_peers(a, [])
        a.expect_nothing()

    def test_close_handshake(self):
        ws = self.join(self.cid("a"), self.new_map(), 0, 0)
        ws.send_close(1000, "bye")
        self.assertEqual(ws.expect_close(), 1000)
        self.assertTrue(ws.wait_eof(), "server kept the TCP connection open after the close")

    # RFC 6455 5.1: a server MUST close on an unmasked client frame. The
    # libwebsockets that earshot runs on (Debian 12's 4.1.6) accepts them and
    # offers no hook to see the mask bit; docs/protocol.md lists this. This
    # test documents the deviation and starts failing ("unexpected success")
    # the day the library enforces the rule, so the note can go.
    @unittest.expectedFailure
    def test_unmasked_frame_is_a_protocol_error(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        ws = self.connect()
        ws.send_frame(OP_TEXT, update(self.cid("u"), m, 1, 1), mask=False)
        code = ws.expect_close()
        self.assertIn(code, (1002, None))
        o.expect_nothing()

    def test_reserved_bits_and_opcodes_fail_the_connection(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        for name, frame in [
            ("rsv1", encode_frame(OP_TEXT, update(self.cid("r1"), m, 1, 1), rsv=4)),
            ("opcode 3", encode_frame(0x3, update(self.cid("r2"), m, 1, 1))),
            ("opcode 0xB", encode_frame(0xB, b"")),
            ("continuation first", encode_frame(OP_CONT, update(self.cid("r3"), m, 1, 1))),
            ("fragmented ping", encode_frame(OP_PING, b"x", fin=False)),
            ("long ping", encode_frame(OP_PING, b"x" * 126)),
        ]:
            with self.subTest(frame=name):
                ws = self.connect()
                ws.raw_send(frame)
                self.assertIn(ws.expect_close(), (1002, None))
        o.expect_nothing()

    def test_invalid_utf8_text(self):
        ws = self.connect()
        ws.send_frame(OP_TEXT, b'{"type":"RequestPeerRefresh","data":"\xff\xfe"}')
        try:
            msg = ws.recv_json()
        except ConnectionClosed as exc:
            self.assertEqual(exc.code, 1007)
            return
        self.assertEqual(msg.get("type"), "Error", msg)
        self.assertTrue(msg["data"].startswith("Invalid JSON: "), msg)
        self.assert_unregistered(ws)

    def test_many_connections(self):
        m = self.new_map()
        conns = []
        for i in range(60):
            ws = self.connect()
            conns.append(ws)
            self.assertEqual(self.register(ws, self.cid("c%d" % i), m, 100 * i, 0), [])
        for ws in conns:
            self.refresh(ws)
        for ws in conns:
            self.expect_peers(ws, [])
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)

    def test_oversized_fragmented_message_does_not_kill_server(self):
        ws = self.connect()
        chunk = b"x" * 4096
        try:
            ws.send_frame(OP_TEXT, b'{"type":"Foo","pad":"' + chunk, fin=False)
            for _ in range(40):
                ws.send_frame(OP_CONT, chunk, fin=False)
            ws.send_frame(OP_CONT, b'"}', fin=True)
        except OSError:
            pass
        try:
            while True:
                ws.recv_json(1.0)
        except (NoMessage, ConnectionClosed):
            pass
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)
        other = self.join(self.cid("after"), self.new_map(), 0, 0)
        other.expect_nothing(0.1)


class SmallFrameLimitTest(EarshotTestCase):
    config = {"server": {"max_frame_bytes": 1000}}

    def test_configured_limit(self):
        m = self.new_map()
        ws = self.connect()
        ws.send_text(update_of_size(self.cid("a"), m, 1000))
        self.expect_peers(ws, [])
        ws.send_text(update_of_size(self.cid("a"), m, 1001))
        self.expect_error(ws, "Frame too large (limit 1000 bytes)")
        self.assertEqual(ws.expect_close(), 1009)


class ServerPingTest(EarshotTestCase):
    config = {"server": {"ping_interval": 1}}

    def test_silent_peer_is_dropped(self):
        """The server pings; a client that never answers is eventually dropped (dead TCP
        detection) and its peers are told, while one that answers stays."""
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.connect(auto_pong=False)
        self.assertEqual(self.register(a, a_id, m, 0, 0), [])
        b = self.join(b_id, m, 1, 0, expect=[a_id])
        self.expect_peers(a, [b_id])
        # b answers pings (its recv loop does); a does not read at all
        deadline = time.monotonic() + 15.0
        got = None
        while time.monotonic() < deadline:
            try:
                got = b.recv_json(0.5)
                break
            except NoMessage:
                continue
        self.assertEqual(got, {"type": "NearbyPeers", "data": []},
                         "the unresponsive client was not dropped within 15 s (ping_interval 1)")
        # b, which answered, was pinged and is still served
        self.assertGreaterEqual(len(b.pings_received), 1, "no ping reached b (ping_interval 1)")
        self.refresh(b)
        self.expect_peers(b, [])



class SlowReaderTest(EarshotTestCase):
    """A client that does not read is dropped once its send queue passes
    send_queue_bytes, instead of growing the server's memory."""
    config = {"server": {"send_queue_bytes": 131072}}

    def test_slow_reader_is_dropped(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.connect(rcvbuf=4096)
        self.assertEqual(self.register(b, b_id, m, 1, 0), [a_id])
        self.expect_peers(a, [b_id])
        # b stops reading; a relays far more than the kernel buffers and the queue hold
        payload = "x" * 50000
        sent = 0
        dropped = None
        deadline = time.monotonic() + 20
        while dropped is None and time.monotonic() < deadline and sent < 400:
            a.send_json({"type": "SendOffer", "data": {"target_id": b_id,
                                                       "offer": "%06d%s" % (sent, payload)}})
            sent += 1
            try:
                dropped = a.recv_json(0.01)
            except NoMessage:
                pass
        if dropped is None:
            dropped = a.recv_json(5.0)
        self.assertEqual(dropped, {"type": "NearbyPeers", "data": []},
                         "b was not dropped after %d offers of 50 KB" % sent)
        # what b did get is an in-order prefix of the offers, then the end
        got = 0
        try:
            while True:
                msg = b.recv_json(5.0)
                self.assertEqual(msg, {"type": "ReceiveOffer", "data": {
                    "sender_id": a_id, "offer": "%06d%s" % (got, payload)}})
                got += 1
        except ConnectionClosed as exc:
            self.assertIn(exc.code, (1008, None), exc)
        self.assertLess(got, sent)
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.expect_error(a, "Client %s not found" % b_id)


if __name__ == "__main__":
    unittest.main()
