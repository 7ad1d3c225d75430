"""Limits: every protective limit of docs/protocol.md ("Leaving, liveness and
limits") with its config key set small, the exact effect a client sees, and the
matching counter scraped from /metrics.

    server.max_frame_bytes            Error "Frame too large (limit N bytes)", close 1009
    limits.message_rate / _burst      Error "rate limited" per dropped message
    limits.rate_limit_close_after     past it (within 10 s): close 1008
    limits.max_connections            HTTP 503 instead of an upgrade
    limits.max_connections_per_address  HTTP 429
    server.allowed_origins            HTTP 403
    limits.handshake_timeout          the TCP connection is dropped
    limits.first_message_timeout      Error "timed out", close 1000
    server.send_queue_bytes           a client that does not read: close 1008

Metrics are compared as deltas of one scrape before and one after the action
(tests of one class share a server), gauges as absolute values.
"""

import socket
import time
import unittest

from harness import HOST, OTHER_SOURCE, EarshotTestCase, sending
from wsclient import OP_TEXT, ConnectionClosed, NoMessage

TOO_BIG = 1009
POLICY = 1008
NORMAL = 1000


# ------------------------------------------------------------------ helpers
def padded_refresh(size):
    """A RequestPeerRefresh of exactly `size` bytes (padding in an unknown field)."""
    head, tail = '{"type":"RequestPeerRefresh","data":null,"pad":"', '"}'
    n = size - len(head) - len(tail)
    assert n >= 0, size
    text = head + "p" * n + tail
    assert len(text.encode("utf-8")) == size
    return text


# ================================================================ frame size
class FrameLimitMixin:
    """server.max_frame_bytes = LIMIT."""
    LIMIT = None

    def test_message_of_exactly_the_limit_is_accepted(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        a.send_text(padded_refresh(self.LIMIT))
        self.expect_peers(a, [], who="reply to a %d-byte refresh" % self.LIMIT)
        # the same size in three fragments
        text = padded_refresh(self.LIMIT).encode()
        third = len(text) // 3
        a.send_fragmented(OP_TEXT, [text[:third], text[third:2 * third], text[2 * third:]])
        self.expect_peers(a, [], who="reply to a fragmented %d-byte refresh" % self.LIMIT)
        self.expect_nothing(a)

    def _too_big(self, send):
        m, (a, p), (a_id, p_id) = self.place(("a", 0, 0), ("p", 1, 0))
        before = self.metrics()
        sending(lambda: send(a))
        self.expect_error(a, "Frame too large (limit %d bytes)" % self.LIMIT)
        self.expect_close_code(a, TOO_BIG, who="sender of the big frame")
        self.expect_peers(p, [], who="peer of the closed client")
        self.expect_nothing(p)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_errors_total", 1, kind="frame_too_large")
        self.assertDelta(before, after, "earshot_closes_total", 1, code="1009")
        self.assertDelta(before, after, "earshot_messages_in_total", 0, type="RequestPeerRefresh")
        self.wait_metric("earshot_connections", 1)

    def test_one_byte_over_the_limit_closes_1009(self):
        self._too_big(lambda ws: ws.send_text(padded_refresh(self.LIMIT + 1)))

    def test_fragments_adding_up_to_over_the_limit_close_1009(self):
        # every fragment is well under the limit; their sum is not
        text = padded_refresh(self.LIMIT + self.LIMIT // 2).encode()
        n = 4
        step = -(-len(text) // n)
        parts = [text[i:i + step] for i in range(0, len(text), step)]
        self.assertTrue(all(len(part) < self.LIMIT for part in parts))
        self._too_big(lambda ws: ws.send_fragmented(OP_TEXT, parts))

    def test_many_tiny_fragments_over_the_limit_close_1009(self):
        text = padded_refresh(self.LIMIT + 1).encode()
        parts = [text[i:i + 7] for i in range(0, len(text), 7)]
        self._too_big(lambda ws: ws.send_fragmented(OP_TEXT, parts))


class SmallFrameLimitTest(FrameLimitMixin, EarshotTestCase):
    """A limit below lws's receive chunk: every frame arrives in one piece."""
    LIMIT = 1024
    config = {"server": {"max_frame_bytes": 1024}}


class ChunkedFrameLimitTest(FrameLimitMixin, EarshotTestCase):
    """A limit above lws's 4096-byte receive chunk: one frame arrives in pieces."""
    LIMIT = 10000
    config = {"server": {"max_frame_bytes": 10000}}


# ================================================================ rate limit
class RateLimitTest(EarshotTestCase):
    """message_rate 0.5/s (a token every 2 s, so the few milliseconds a burst
    takes refill nothing), burst 5, closed past 4 drops."""
    BURST = 5
    CLOSE_AFTER = 4
    config = {"limits": {"message_rate": 0.5, "message_burst": 5.0, "rate_limit_close_after": 4}}

    def test_burst_passes_then_each_extra_message_gets_rate_limited(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)          # token 1 of 5
        before = self.metrics()
        extra = 2
        for _ in range(self.BURST - 1 + extra):
            self.refresh(a)
        for i in range(self.BURST - 1):
            self.expect_peers(a, [], who="refresh %d within the burst" % (i + 1))
        for _ in range(extra):
            self.expect_error(a, "rate limited")
        self.expect_nothing(a, seconds=0.3)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_rate_limited_total", extra)
        self.assertDelta(before, after, "earshot_errors_total", extra, kind="rate_limited")
        self.assertDelta(before, after, "earshot_closes_total", 0, code="1008")
        self.assertDelta(before, after, "earshot_messages_in_total", self.BURST - 1,
                         type="RequestPeerRefresh")
        # not closed: once a token has refilled (>= 2 s) a message passes again
        time.sleep(2.2)
        self.refresh(a)
        self.expect_peers(a, [], who="refresh after the bucket refilled")
        self.assertDelta(after, self.metrics(), "earshot_rate_limited_total", 0)

    def test_persistent_abuse_is_closed_with_1008(self):
        m, (x, p), (x_id, p_id) = self.place(("x", 0, 0), ("p", 2, 0))  # x: token 1 of 5
        before = self.metrics()
        # 4 pass, 4 dropped with an Error, the 5th drop closes; 3 more are ignored
        for _ in range(self.BURST - 1 + self.CLOSE_AFTER + 1):
            self.refresh(x)
        for _ in range(3):
            sending(lambda: self.refresh(x))
        for i in range(self.BURST - 1):
            self.expect_peers(x, [p_id], who="refresh %d within the burst" % (i + 1))
        for _ in range(self.CLOSE_AFTER + 1):
            self.expect_error(x, "rate limited")
        self.expect_close_code(x, POLICY, who="the abusive client")
        self.expect_peers(p, [], who="peer of the closed abuser")
        self.expect_nothing(p)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_rate_limited_total", self.CLOSE_AFTER + 1)
        self.assertDelta(before, after, "earshot_errors_total", self.CLOSE_AFTER + 1,
                         kind="rate_limited")
        self.assertDelta(before, after, "earshot_closes_total", 1, code="1008")
        self.assertDelta(before, after, "earshot_messages_in_total", self.BURST - 1,
                         type="RequestPeerRefresh")
        # the peer is still served
        self.refresh(p)
        self.expect_peers(p, [], who="p's refresh")


# =========================================================== connection caps
class MaxConnectionsTest(EarshotTestCase):
    config = {"limits": {"max_connections": 3}}

    def test_fourth_upgrade_gets_503_until_one_closes(self):
        m = self.new_map()
        ids = [self.cid(n) for n in "abc"]
        a = self.join(ids[0], m, 0, 0)
        b = self.join(ids[1], m, 1, 0, expect=[ids[0]])
        c = self.connect()                    # open, not registered: it counts too
        self.expect_peers(a, [ids[1]])
        before = self.metrics()
        self.refused(503)
        self.refused(503, source_addr=OTHER_SOURCE)
        # plain HTTP is not a connection slot
        status, _, body = self.get("/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        after = self.metrics()
        self.assertDelta(before, after, "earshot_connections_refused_total", 2,
                         reason="server_full")
        self.assertDelta(before, after, "earshot_connections_refused_total", 0,
                         reason="per_address")
        self.assertDelta(before, after, "earshot_connections_total", 0)
        self.assertMetric(after, "earshot_connections", 3)
        # the clients already in are unaffected
        self.expect_nothing(a, b, c)
        # one leaves: a new one gets in and works
        c.close()
        self.wait_metric("earshot_connections", 2)
        d = self.join(self.cid("d"), m, 0, 1, expect=ids[:2])
        self.expect_peers(a, [ids[1], self.cid("d")])
        self.expect_peers(b, [ids[0], self.cid("d")])
        self.refused(503)
        final = self.metrics()
        self.assertDelta(before, final, "earshot_connections_refused_total", 3,
                         reason="server_full")
        self.assertMetric(final, "earshot_connections", 3)
        self.expect_nothing(a, b, d)


class MaxConnectionsPerAddressTest(EarshotTestCase):
    config = {"limits": {"max_connections_per_address": 2}}

    def test_third_from_one_address_gets_429_another_address_is_accepted(self):
        m = self.new_map()
        a1 = self.join(self.cid("a1"), m, 0, 0, source_addr=HOST)
        a2 = self.connect(source_addr=HOST)
        before = self.metrics()
        self.refused(429, source_addr=HOST)
        # another address is not affected
        b1 = self.join(self.cid("b1"), m, 1, 0, expect=[self.cid("a1")], source_addr=OTHER_SOURCE)
        self.expect_peers(a1, [self.cid("b1")])
        b2 = self.connect(source_addr=OTHER_SOURCE)
        self.refused(429, source_addr=OTHER_SOURCE)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_connections_refused_total", 2,
                         reason="per_address")
        self.assertDelta(before, after, "earshot_connections_refused_total", 0,
                         reason="server_full")
        self.assertMetric(after, "earshot_connections", 4)
        # a slot freed on 127.0.0.1 can be used again
        a2.close()
        self.wait_metric("earshot_connections", 3)
        a3 = self.join(self.cid("a3"), m, 0, 1, expect=[self.cid("a1"), self.cid("b1")],
                       source_addr=HOST)
        self.expect_peers(a1, [self.cid("b1"), self.cid("a3")])
        self.expect_peers(b1, [self.cid("a1"), self.cid("a3")])
        self.refused(429, source_addr=HOST)
        self.assertDelta(before, self.metrics(), "earshot_connections_refused_total", 3,
                         reason="per_address")
        self.expect_nothing(a1, a3, b1, b2)


class AllowedOriginsTest(EarshotTestCase):
    config = {"server": {"allowed_origins": ["https://game.example", "http://localhost:8080"]}}

    def test_listed_origin_accepted_other_refused_none_accepted(self):
        m = self.new_map()
        before = self.metrics()
        a = self.join(self.cid("a"), m, 0, 0, headers={"Origin": "https://game.example"})
        b = self.join(self.cid("b"), m, 1, 0, expect=[self.cid("a")],
                      headers={"Origin": "http://localhost:8080"})
        self.expect_peers(a, [self.cid("b")])
        # no Origin: not a browser, accepted
        c = self.join(self.cid("c"), m, 0, 1, expect=[self.cid("a"), self.cid("b")])
        self.expect_peers(a, [self.cid("b"), self.cid("c")])
        self.expect_peers(b, [self.cid("a"), self.cid("c")])
        bad = ["https://evil.example", "https://game.example.evil.example",
               "http://game.example", "https://game.example:8443", "null"]
        for origin in bad:
            with self.subTest(origin=origin):
                self.refused(403, headers={"Origin": origin})
        after = self.metrics()
        self.assertDelta(before, after, "earshot_connections_refused_total", len(bad),
                         reason="origin")
        self.assertDelta(before, after, "earshot_connections_total", 3)
        self.assertMetric(after, "earshot_connections", 3)
        self.expect_nothing(a, b, c)


# ================================================================= timeouts
def read_until_closed(sock, deadline):
    """Read from a raw socket until EOF/reset or the deadline. Returns
    (bytes read, how it ended: 'eof' | 'reset' | 'timeout')."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, "timeout"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            return data, "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


UPGRADE_HEAD = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n")


class HandshakeTimeoutTest(EarshotTestCase):
    """limits.handshake_timeout = 1 s (first_message_timeout off, so that an
    upgraded but silent connection may stay)."""
    TIMEOUT = 1.0
    GRACE = 4.0
    config = {"limits": {"handshake_timeout": 1.0, "first_message_timeout": 0.0}}

    def test_stalled_partial_headers_are_dropped(self):
        upgraded = self.connect()             # a finished handshake is not affected
        stalled = socket.create_connection((HOST, self.server.port))
        silent = socket.create_connection((HOST, self.server.port))
        try:
            stalled.sendall(UPGRADE_HEAD)     # no blank line: the request never ends
            deadline = time.monotonic() + self.TIMEOUT + self.GRACE
            data, how = read_until_closed(stalled, deadline)
            self.assertIn(how, ("eof", "reset"), "a stalled upgrade request was not dropped "
                          "within handshake_timeout + %.0f s" % self.GRACE)
            self.assertEqual(data, b"", "the stalled client got an answer")
            data, how = read_until_closed(silent, time.monotonic() + self.GRACE)
            self.assertIn(how, ("eof", "reset"), "a TCP connection that sent nothing was not "
                          "dropped within handshake_timeout + %.0f s" % self.GRACE)
        finally:
            stalled.close()
            silent.close()
        self.assert_unregistered(upgraded)
        self.join(self.cid("a"), self.new_map(), 0, 0)
        self.assertMetric(self.metrics(), "earshot_connections", 2)

    def test_trickled_headers_are_dropped(self):
        """One header byte every 0.5 s: the connection must still be dropped at the
        handshake deadline (a per-read idle timer would let it live forever)."""
        sock = socket.create_connection((HOST, self.server.port))
        request = UPGRADE_HEAD + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
        started = time.monotonic()
        deadline = started + self.TIMEOUT + self.GRACE
        sent, how, data = 0, "timeout", b""
        try:
            while time.monotonic() < deadline and sent < len(request):
                try:
                    sock.sendall(request[sent:sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    how = "reset"
                    break
                sent += 1
                data, how = read_until_closed(sock, min(time.monotonic() + 0.5, deadline))
                if how != "timeout":
                    break
        finally:
            sock.close()
        self.assertIn(how, ("eof", "reset"),
                      "a client trickling its headers (%d bytes in %.1f s) was not dropped"
                      % (sent, time.monotonic() - started))
        self.assertEqual(data, b"")
        self.assertLess(sent, len(request))
        self.join(self.cid("a"), self.new_map(), 0, 0)


class FirstMessageTimeoutTest(EarshotTestCase):
    config = {"limits": {"first_message_timeout": 1.0}}
    GRACE = 4.0

    def test_connection_that_never_registers_is_timed_out(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)          # registered at once: unaffected
        before = self.metrics()
        silent = self.connect()
        chatty = self.connect()               # talks, but never registers
        self.move(chatty, "x\u0000", m, 0, 0)
        self.expect_error(chatty, "Invalid UpdatePosition: field 'client_id' must be 1 to 128 "
                                  "bytes of UTF-8 with no control characters")
        self.refresh(chatty)
        self.expect_error(chatty, "Client must send UpdatePosition first.")
        for ws, who in ((silent, "silent"), (chatty, "chatty")):
            self.expect_error(ws, "timed out", timeout=1.0 + self.GRACE)
            self.expect_close_code(ws, NORMAL, who=who)
        # a has been registered for longer than the timeout: still served, told nothing
        self.expect_nothing(a)
        self.refresh(a)
        self.expect_peers(a, [], who="registered client's refresh")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_timeouts_total", 2, kind="first_message")
        self.assertDelta(before, after, "earshot_timeouts_total", 0, kind="idle")
        self.assertDelta(before, after, "earshot_errors_total", 2, kind="timeout")
        self.assertDelta(before, after, "earshot_closes_total", 2, code="1000")
        self.wait_metric("earshot_connections", 1)
        # a newcomer that registers in time is fine
        b = self.join(self.cid("b"), m, 1, 0, expect=[a_id])
        self.expect_peers(a, [self.cid("b")])
        time.sleep(1.3)
        self.expect_nothing(a, b)


# =============================================================== keepalive
class KeepaliveTest(EarshotTestCase):
    """server.ping_interval = 1: a connection silent for 1 s is pinged; one
    that leaves the ping unanswered for another second is dropped (1001)."""
    config = {"server": {"ping_interval": 1}, "session": {"idle_timeout": 0.0},
              "limits": {"first_message_timeout": 0.0}}

    def test_unanswered_ping_drops_the_connection_answered_keeps_it(self):
        m = self.new_map()
        a_id, d_id = self.cid("a"), self.cid("deaf")
        a = self.join(a_id, m, 0, 0)
        deaf = self.connect()
        deaf.auto_pong = False                # a dead peer: reads, never answers
        self.register(deaf, d_id, m, 1, 0)
        self.expect_peers(a, [d_id])
        before = self.metrics()
        # a answers pings (wsclient pongs while it reads); deaf does not
        deadline = time.monotonic() + 6.0
        closed = None
        while closed is None and time.monotonic() < deadline:
            try:
                a.recv_json(0.1)
            except NoMessage:
                pass
            try:
                deaf.recv_json(0.1)
            except NoMessage:
                pass
            except ConnectionClosed as exc:
                closed = exc
        self.assertIsNotNone(closed, "an unanswered ping did not drop the connection")
        self.assertEqual(closed.code, 1001)
        self.assertGreaterEqual(len(deaf.pings_received), 1)
        self.expect_peers(a, [], who="a when the deaf client is dropped")
        self.assertGreaterEqual(len(a.pings_received), 1)
        self.refresh(a)
        self.expect_peers(a, [], who="a, still connected")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_ping_timeouts_total", 1)
        self.assertGreaterEqual(self.value(after, "earshot_pings_total")
                                - self.value(before, "earshot_pings_total"), 2)


# =============================================================== send queue
class SendQueueTest(EarshotTestCase):
    """server.send_queue_bytes = 256 KiB; the rate limit is out of the way."""
    config = {"server": {"send_queue_bytes": 262144},
              "limits": {"message_rate": 100000.0, "message_burst": 100000.0}}
    OFFER = 32 * 1024
    MAX_OFFERS = 1000       # 32 MB: far more than the queue plus any kernel buffers

    def test_client_that_never_reads_is_dropped_others_keep_working(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        s_id = self.cid("slow")
        slow = self.connect(rcvbuf=4096)
        self.assertEqual(sorted(self.register(slow, s_id, m, 0, 1)), sorted([a_id, b_id]))
        self.expect_peers(a, [b_id, s_id])
        self.expect_peers(b, [a_id, s_id])
        before = self.metrics()

        # a floods the slow client with 32 KB offers until a hears that it is gone
        pad = "o" * (self.OFFER - 6)
        sent, notice = 0, None
        deadline = time.monotonic() + 30.0
        while notice is None and sent < self.MAX_OFFERS and time.monotonic() < deadline:
            a.send_json({"type": "SendOffer",
                         "data": {"target_id": s_id, "offer": "%06d%s" % (sent, pad)}})
            sent += 1
            if sent % 4 == 0:
                try:
                    notice = a.recv_json(0.001)
                except NoMessage:
                    pass
        if notice is None:
            notice = a.recv_json(5.0)
        self.assertEqual(notice, {"type": "NearbyPeers", "data": [b_id]},
                         "slow client not dropped after %d offers of 32 KB" % sent)
        self.expect_peers(b, [a_id], who="b when the slow client is dropped")

        # offers a sent after the drop (in flight) each get "not found"; then the refresh
        self.refresh(a)
        late = 0
        while True:
            msg = a.recv_json(5.0)
            if msg.get("type") == "NearbyPeers":
                self.assertEqual(msg["data"], [b_id])
                break
            self.assertEqual(msg, {"type": "Error", "data": "Client %s not found" % s_id})
            late += 1

        # the slow client, reading at last: an in-order prefix of the offers, then 1008
        got = 0
        while True:
            try:
                msg = slow.recv_json(10.0)
            except ConnectionClosed as exc:
                self.assertTrue(exc.clean, "slow client: TCP ended without a close frame "
                                "after %d offers" % got)
                self.assertEqual(exc.code, POLICY, "slow client's close code")
                break
            self.assertEqual(msg, {"type": "ReceiveOffer", "data": {
                "sender_id": a_id, "offer": "%06d%s" % (got, pad)}})
            got += 1
        self.assertLess(got, sent - late)

        after = self.metrics()
        self.assertDelta(before, after, "earshot_send_queue_drops_total", 1)
        self.assertDelta(before, after, "earshot_closes_total", 1, code="1008")
        self.assertDelta(before, after, "earshot_relays_total", sent - late, kind="offer",
                         outcome="delivered")
        self.assertDelta(before, after, "earshot_relays_total", late, kind="offer",
                         outcome="unknown_target")
        self.assertMetric(after, "earshot_clients", 2)

        # the others keep working: relays both ways, exact lists
        self.relay(a, a_id, b, b_id, "hello")
        self.relay(b, b_id, a, a_id, "hi", "answer")
        self.relay(b, b_id, a, a_id, "c", "candidate")
        self.refresh(b)
        self.expect_peers(b, [a_id], who="b's refresh")
        self.expect_nothing(a, b)
        self.wait_metric("earshot_connections", 2)


if __name__ == "__main__":
    unittest.main()
