"""Hostile clients: identity theft, forged senders, unsolicited relays,
eavesdropping, parser bombs, bad encodings, oversized and malformed ids, and
a connect/disconnect flood (PROTOCOL.md: Registration and identity, Relays,
Liveness and limits; docs/protocol.md "Errors for bad input").

After every hostile act the server must still be up and serving the other
clients exactly as before (the harness's tearDown checks it is alive; each
test checks the bystanders itself).
"""

import socket
import time
import unittest

from harness import HOST, OTHER_SOURCE, EarshotTestCase, relay_message, sending, wait_until
from wsclient import OP_TEXT, HandshakeError, NoMessage, encode_frame

TOO_BIG = 1009
INVALID_DATA = 1007
ID_RULE = "must be 1 to 128 bytes of UTF-8 with no control characters"


# ------------------------------------------------------------------ helpers
def drain(ws, quiet=0.3, limit=1000):
    """Every message ws receives until it has been quiet for `quiet` seconds."""
    out = []
    for _ in range(limit):
        try:
            out.append(ws.recv_json(quiet))
        except NoMessage:
            return out
    raise AssertionError("more than %d messages" % limit)


def offer(target, text):
    return relay_message("offer", target, text)


def answer(target, text):
    return relay_message("answer", target, text)


def ice(target, text):
    return relay_message("candidate", target, text)


class HostileTestCase(EarshotTestCase):

    def pair(self, m, x=0):
        """Two matched clients a, b on map m; returns (a, b, a_id, b_id)."""
        return self.matched_pair((x, 0), (x + 3, 0), map_id=m)[1:]

    def still_paired(self, a, b, a_id, b_id):
        """a and b are matched and relay to each other, and get nothing else."""
        self.relay(a, a_id, b, b_id, "still-here")
        self.relay(b, b_id, a, a_id, "yes", "answer")
        self.refresh(a)
        self.expect_peers(a, [b_id], who="a's refresh")
        self.expect_nothing(a, b)


# ================================================================ identity
class IdentityTheftTest(HostileTestCase):
    config = {"session": {"takeover": "same_address"}}

    def test_other_address_cannot_take_over_an_id(self):
        m = self.new_map()
        x_id, p_id = self.cid("x"), self.cid("p")
        holder = self.join(x_id, m, 0, 0, source_addr=HOST)
        p = self.join(p_id, m, 2, 0, expect=[x_id], source_addr=HOST)
        self.expect_peers(holder, [p_id])
        before = self.metrics()

        thief = self.connect(source_addr=OTHER_SOURCE)
        self.move(thief, x_id, m, 0, 0)
        self.expect_error(thief, "client_id %s is already in use" % x_id)
        # claiming the holder's address in X-Forwarded-For does not help (not behind a proxy)
        liar = self.connect(source_addr=OTHER_SOURCE, headers={"X-Forwarded-For": HOST})
        self.move(liar, x_id, m, 5, 5)
        self.expect_error(liar, "client_id %s is already in use" % x_id)
        for ws in (thief, liar):
            self.assert_unregistered(ws)
            ws.send_json(offer(p_id, "from the thief"))
            self.expect_error(ws, "Client must send UpdatePosition first.")
        self.expect_nothing(holder, p, thief, liar)

        # the holder keeps its id, its place and its relays
        self.relay(p, p_id, holder, x_id, "for the holder")
        self.relay(holder, x_id, p, p_id, "from the holder", "answer")
        self.refresh(holder)
        self.expect_peers(holder, [p_id], who="holder's refresh")
        self.expect_nothing(holder, p, thief, liar)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_errors_total", 2, kind="id_in_use")
        self.assertDelta(before, after, "earshot_errors_total", 0, kind="taken_over")
        self.assertDelta(before, after, "earshot_takeovers_total", 0)
        self.assertDelta(before, after, "earshot_registrations_total", 0)


# ============================================================ hostile input
class HostileInputTest(HostileTestCase):
    """max_frame_bytes 256 KiB, so that parser bombs reach the parser."""
    LIMIT = 262144
    config = {"server": {"max_frame_bytes": 262144, "send_queue_bytes": 1048576}}

    # ---- relays
    def test_sender_id_cannot_be_forged(self):
        m, (a, b, victim), (a_id, b_id, victim_id) = self.place(("a", 0, 0), ("b", 3, 0),
                                                                ("victim", 1, 1))
        for kind, text in (("offer", "o"), ("answer", "an"), ("candidate", "c")):
            msg = relay_message(kind, b_id, text)
            msg["data"]["sender_id"] = victim_id
            msg["sender_id"] = victim_id
            msg["data"]["sender"] = victim_id
            a.send_json(msg)
            self.expect_relay(b, kind, a_id, text)
        # a duplicated sender_id key makes the frame invalid JSON: nothing delivered
        a.send_text('{"type":"SendOffer","data":{"target_id":"%s","offer":"o",'
                    '"sender_id":"x","sender_id":"%s"}}' % (b_id, victim_id))
        self.expect_error(a, "Invalid JSON: duplicate object key near '\"sender_id\"'")
        self.expect_nothing(a, b, victim)

    def test_relay_to_a_client_never_near_is_refused(self):
        m = self.new_map()
        a_id, far_id, chan_id = self.cid("a"), self.cid("far"), self.cid("chan")
        a = self.join(a_id, m, 0, 0)
        far = self.join(far_id, m, 1000, 0)
        chan = self.join(chan_id, m, 0, 0, channel=1)   # same spot, other channel
        before = self.metrics()
        for target in (far_id, chan_id):
            self.relay_refused(a, target, "unsolicited")  # the candidate: without a word
        self.expect_nothing(a, far, chan, seconds=0.5)
        after = self.metrics()
        for kind in ("offer", "answer", "candidate"):
            self.assertDelta(before, after, "earshot_relays_total", 2, kind=kind,
                             outcome="refused")
            self.assertDelta(before, after, "earshot_relays_total", 0, kind=kind,
                             outcome="delivered")
        self.assertDelta(before, after, "earshot_errors_total", 4, kind="relay_refused")

    def test_no_cross_client_data(self):
        """c (same spot as a, other channel) and d (other game) see only their own
        messages while a, b and e handshake, move, join and leave around them."""
        m = self.new_map()
        c_id, d_id = self.cid("c"), self.cid("d")
        c = self.join(c_id, m, 0, 0, channel=1)
        d = self.join(d_id, m, 0, 0, game_id=9)
        a, b, a_id, b_id = self.pair(m)
        e_id = self.cid("e")
        e = self.join(e_id, m, 0, 3, expect=[a_id, b_id])
        self.expect_peers(a, [b_id, e_id])
        self.expect_peers(b, [a_id, e_id])
        for i in range(5):
            a.send_json(offer(b_id, "secret-offer-%d" % i))
            b.send_json(answer(a_id, "secret-answer-%d" % i))
            a.send_json(ice(b_id, "secret-ice-%d" % i))
            e.send_json(offer(a_id, "secret-e-%d" % i))
        self.move(a, a_id, m, 2, 0)
        e.send_json({"type": "Disconnect", "data": None})
        self.expect_close_code(e, 1000, who="e")
        # a and b got exactly what was meant for them (e's leave may come at any point)
        got_b = drain(b)
        self.assertEqual([x for x in got_b if x["type"] != "NearbyPeers"],
                         [msg for i in range(5) for msg in (
                             {"type": "ReceiveOffer", "data": {
                                 "sender_id": a_id, "offer": "secret-offer-%d" % i}},
                             {"type": "ReceiveIceCandidate", "data": {
                                 "sender_id": a_id, "candidate": "secret-ice-%d" % i}})])
        self.assertEqual([x for x in got_b if x["type"] == "NearbyPeers"],
                         [{"type": "NearbyPeers", "data": [a_id]}])
        got_a = drain(a)
        self.assertEqual([x for x in got_a if x["type"] == "ReceiveAnswer"],
                         [{"type": "ReceiveAnswer", "data": {"sender_id": b_id,
                                                             "answer": "secret-answer-%d" % i}}
                          for i in range(5)])
        self.assertEqual([x for x in got_a if x["type"] == "ReceiveOffer"],
                         [{"type": "ReceiveOffer", "data": {"sender_id": e_id,
                                                            "offer": "secret-e-%d" % i}}
                          for i in range(5)])
        self.assertEqual([x for x in got_a if x["type"] == "NearbyPeers"],
                         [{"type": "NearbyPeers", "data": [b_id]}])
        self.assertEqual(len(got_a), 11)
        # c tries to listen in by relaying to a: refused, its own message
        c.send_json(offer(a_id, "let me in"))
        self.refresh(c)
        self.refresh(d)
        self.assertEqual(drain(c), [{"type": "Error", "data": "relay to %s not allowed" % a_id},
                                    {"type": "NearbyPeers", "data": []}])
        self.assertEqual(drain(d), [{"type": "NearbyPeers", "data": []}])

    # ---- parser bombs
    def test_deep_json_nesting(self):
        m = self.new_map()
        a, b, a_id, b_id = self.pair(m)
        depth = 100000
        w = self.connect()
        w_id = self.cid("w")
        depth_error = "Invalid JSON: maximum parsing depth reached near '%s'"
        bombs = [
            ('{"type":"RequestPeerRefresh","data":null,"junk":' + "[" * depth + "]" * depth + "}",
             depth_error % "["),
            ('{"type":"RequestPeerRefresh","data":null,"junk":' + "[" * depth + "}",
             depth_error % "["),
            ('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,"x":0,"y":0,"j":'
             % (w_id, m) + '{"a":' * 40000 + "1" + "}" * 40000 + "}}", depth_error % "{"),
        ]
        for bomb, error in bombs:
            self.assertLessEqual(len(bomb), self.LIMIT)
            self.assertGreater(len(bomb), 90000)
            w.send_text(bomb)
            self.expect_error(w, error)
        self.assert_unregistered(w)
        # a reasonable nesting in an unknown field is ignored
        w.send_text('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,"x":1000,'
                    '"y":0,"j":%s}}' % (w_id, m, "[" * 100 + "]" * 100))
        self.expect_peers(w, [], who="registration with a 100-deep unknown field")
        self.expect_nothing(a, b, w)
        self.still_paired(a, b, a_id, b_id)

    def test_huge_array_in_unknown_field(self):
        m = self.new_map()
        a_id = self.cid("a")
        numbers = []
        size, i = 0, 0
        while size < 60000:
            item = ("%d" % (i * 7919 - 300000), "%d.5e-3" % i, "-0", "%de2" % i)[i % 4]
            numbers.append(item)
            size += len(item) + 1
            i += 1
        array = "[" + ",".join(numbers) + "]"
        w = self.connect()
        w.send_text('{"type":"UpdatePosition","junk":%s,"data":{"client_id":"%s","map_id":%d,'
                    '"x":0,"y":0,"junk":%s}}' % (array, a_id, m, array))
        self.expect_peers(w, [], who="registration with 2 x 60 KB arrays of numbers")
        b = self.join(self.cid("b"), m, 1, 0, expect=[a_id])
        self.expect_peers(w, [self.cid("b")])
        self.refresh(w)
        self.expect_peers(w, [self.cid("b")])
        self.expect_nothing(w, b)

    def test_array_of_big_integers_in_unknown_field_is_ignored(self):
        """Valid JSON whose unknown field holds many integers beyond 64 bits:
        unknown fields are ignored whatever they hold (PROTOCOL.md: Envelope)."""
        m = self.new_map()
        a_id = self.cid("a")
        big = "123456789012345678901234567890"
        array = "[" + ",".join([big] * 1900) + "]"          # ~60 KB
        self.assertGreater(len(array), 58000)
        w = self.connect()
        w.send_text('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,'
                    '"x":0,"y":0,"junk":%s}}' % (a_id, m, array))
        self.expect_peers(w, [], who="registration with an array of 1900 big integers")

    # ---- encodings
    def test_invalid_utf8_in_text_frames(self):
        """A text frame that is not UTF-8 gets the parser's Error and a close
        with 1007 (RFC 6455 8.1): its sender leaves, nobody else notices."""
        m = self.new_map()
        a, b, a_id, b_id = self.pair(m)
        near = "Invalid JSON: unable to decode byte 0x%02x near '\"'"
        cases = [
            (b'{"type":"RequestPeerRefresh","data":null,"junk":"\xff\xfe"}', near % 0xff),
            (b'{"type":"SendOffer","data":{"target_id":"' + b_id.encode() + b'","offer":"\xc3"}}',
             near % 0xc3),
            (b'{"type":"SendOffer","data":{"target_id":"\xed\xa0\x80","offer":"x"}}', near % 0xed),
            (b'{"type":"SendAnswer","data":{"target_id":"\xc0\xaf","answer":"x"}}', near % 0xc0),
            (b'{"type":"SendIceCandidate","data":{"target_id":"' + b_id.encode()
             + b'","candidate":"\xf8\x88\x80\x80\x80"}}', near % 0xf8),
        ]
        before = self.metrics()
        for i, (payload, error) in enumerate(cases):
            with self.subTest(payload=payload):
                c_id = self.cid("c%d" % i)
                c = self.join(c_id, m, 1, 1, expect=[a_id, b_id])
                self.expect_peers(a, [b_id, c_id], who="a, as c%d joins" % i)
                self.expect_peers(b, [a_id, c_id], who="b, as c%d joins" % i)
                c.send_text(payload)
                self.expect_error(c, error)
                self.expect_close_code(c, INVALID_DATA, who="c%d" % i)
                self.expect_peers(a, [b_id], who="a, as c%d leaves" % i)
                self.expect_peers(b, [a_id], who="b, as c%d leaves" % i)
        self.assertDelta(before, self.metrics(), "earshot_closes_total", len(cases), code="1007")
        # split across fragments: a sequence started in one, broken in the next
        w = self.connect()
        w.send_fragmented(OP_TEXT, [b'{"type":"SendOffer","data":{"target_id":"'
                                    + b_id.encode() + b'","offer":"\xe2', b'\x28\xa1"}}'])
        self.expect_error(w, near % 0xe2)
        self.expect_close_code(w, INVALID_DATA, who="fragments")
        # a valid sequence split across fragments is fine
        a.send_fragmented(OP_TEXT, [b'{"type":"SendOffer","data":{"target_id":"'
                                    + b_id.encode() + b'","offer":"\xe2', b'\x82\xac"}}'])
        self.expect_relay(b, "offer", a_id, "\u20ac")
        # an unregistered connection cannot register with an invalid id
        w = self.connect()
        w.send_text(b'{"type":"UpdatePosition","data":{"client_id":"ev\xffil","map_id":1,'
                    b'"x":0,"y":0}}')
        self.expect_error(w, "Invalid JSON: unable to decode byte 0xff near '\"ev'")
        self.expect_close_code(w, INVALID_DATA, who="the invalid id")
        # valid UTF-8 that is not a message keeps the connection
        a.send_text("caf\u00e9 \u6771")
        self.expect_error(a, "Invalid JSON: invalid token near 'caf'")
        self.expect_nothing(a, b)
        self.still_paired(a, b, a_id, b_id)

    # ---- sizes
    def test_megabyte_client_id_closes_1009(self):
        m = self.new_map()
        a, b, a_id, b_id = self.pair(m)
        w = self.connect()
        before = self.metrics()
        sending(lambda: self.move(w, "x" * (1 << 20), m, 0, 0))
        self.expect_error(w, "Frame too large (limit %d bytes)" % self.LIMIT)
        self.expect_close_code(w, TOO_BIG, who="1 MB client_id")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_errors_total", 1, kind="frame_too_large")
        self.assertDelta(before, after, "earshot_closes_total", 1, code="1009")
        self.assertDelta(before, after, "earshot_registrations_total", 0)
        self.still_paired(a, b, a_id, b_id)

    def test_frame_header_claiming_huge_length_closes_1009(self):
        """A frame header announcing 2^62 bytes, followed by a few: refused at once,
        without waiting for (or buffering) the announced payload."""
        m = self.new_map()
        a, b, a_id, b_id = self.pair(m)
        w = self.connect()
        w.raw_send(encode_frame(OP_TEXT, b'{"type":', length_override=1 << 62))
        self.expect_error(w, "Frame too large (limit %d bytes)" % self.LIMIT, timeout=5.0)
        self.expect_close_code(w, TOO_BIG, who="2^62-byte frame")
        self.still_paired(a, b, a_id, b_id)

    def test_client_id_length_limit(self):
        m = self.new_map()
        ok = ["i" * 128, "\u20ac" * 42 + "ab", "\U0001F600" * 32]
        too_long = ["i" * 129, "\u20ac" * 43, "\U0001F600" * 32 + "i"]
        for cid in ok:
            self.assertEqual(len(cid.encode()), 128)
        for cid in too_long:
            self.assertEqual(len(cid.encode()), 129)
        w = self.connect()
        for cid in too_long:
            with self.subTest(id=cid[:8]):
                self.move(w, cid, m, 0, 0)
                self.expect_error(w, "Invalid UpdatePosition: field 'client_id' " + ID_RULE)
        self.assert_unregistered(w)
        x, y, z = (self.connect() for _ in ok)
        self.assertEqual(self.register(x, ok[0], m, 0, 0), [])
        self.assertEqual(self.register(y, ok[1], m, 1, 0), [ok[0]])
        self.expect_peers(x, [ok[1]])
        self.assertEqual(sorted(self.register(z, ok[2], m, 2, 0)), sorted(ok[:2]))
        self.expect_peers(x, ok[1:])
        self.expect_peers(y, [ok[0], ok[2]])
        # relays address them exactly; a near miss is unknown; an over-long target an Error
        self.relay(x, ok[0], y, ok[1], "x")
        near_miss = ok[1][:-1] + "c"
        x.send_json(offer(near_miss, "x"))
        self.expect_error(x, "Client %s not found" % near_miss)
        x.send_json(offer(too_long[1], "x"))
        self.expect_error(x, "Invalid SendOffer: field 'target_id' " + ID_RULE)
        self.expect_nothing(x, y, z, w)

    def test_control_characters_in_ids(self):
        m, (victim, a), (victim_id, a_id) = self.place(("victim", 0, 0), ("a", 1, 0))
        bad = ["", "\u0000", victim_id + "\u0000", victim_id + "\u0000evil", "\u0001",
               "line\nbreak", "tab\there", "esc\u001b[31mred", "del\u007f", "\u001f",
               "cr\rlf"]
        w = self.connect()
        before = self.metrics()
        for cid in bad:
            with self.subTest(id=cid):
                self.move(w, cid, m, 0, 0)
                self.expect_error(w, "Invalid UpdatePosition: field 'client_id' " + ID_RULE)
                for make, kind in ((offer, "SendOffer"), (answer, "SendAnswer"),
                                   (ice, "SendIceCandidate")):
                    a.send_json(make(cid, "x"))
                    self.expect_error(a, "Invalid %s: field 'target_id' %s" % (kind, ID_RULE))
        # a raw control byte inside a JSON string is not JSON at all
        w.send_text(b'{"type":"UpdatePosition","data":{"client_id":"a\x01b","map_id":1,'
                    b'"x":0,"y":0}}')
        self.expect_error(w, "Invalid JSON: control character 0x1 near '\"a'")
        self.assert_unregistered(w)
        self.expect_nothing(victim, a, w)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_errors_total", len(bad) * 4 + 1,
                         kind="bad_message")
        self.assertDelta(before, after, "earshot_registrations_total", 0)
        for kind in ("offer", "answer", "candidate"):
            for outcome in ("delivered", "refused", "unknown_target"):
                self.assertDelta(before, after, "earshot_relays_total", 0, kind=kind,
                                 outcome=outcome)
        self.still_paired(victim, a, victim_id, a_id)


# ==================================================================== flood
class FloodTest(HostileTestCase):
    """300 WebSocket connects and disconnects of every kind from one address
    (max_connections_per_address raised so that all 300 fit at once), plus raw
    half-handshakes and garbage."""
    N = 300
    config = {"limits": {"max_connections_per_address": 400}}

    def test_connect_disconnect_flood(self):
        m, flood_map = self.new_map(), self.new_map()
        k1, k2, k1_id, k2_id = self.pair(m)
        before = self.metrics()
        conns, registered = [], 0
        deadline = time.monotonic() + 30.0
        for i in range(self.N):
            self.assertLess(time.monotonic(), deadline, "flood took too long (%d done)" % i)
            ws = self.connect(track=False)
            if i % 6 != 0 and i % 6 != 4:
                self.register(ws, self.cid("f%d" % i), flood_map, (i // 5) * 100, i % 5)
                registered += 1
            conns.append(ws)
        self.assertEqual(self.value(self.metrics(), "earshot_connections"), self.N + 2)
        raw = []
        for i in range(30):
            s = socket.create_connection((HOST, self.server.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websock" if i % 2 else
                      b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
            raw.append(s)
        for i, ws in enumerate(conns):
            how = i % 6
            try:
                if how == 0 or how == 1:
                    ws.close()                          # polite close handshake
                elif how == 2 or how == 4:
                    ws.abort(reset=(how == 4))          # FIN / RST, no close frame
                elif how == 3:
                    ws.abort(reset=True)
                else:
                    ws.send_json({"type": "Disconnect", "data": None})
                    ws.abort()
            except OSError:
                ws.abort()
        for s in raw:
            s.close()
        # back to the two live clients
        got = wait_until(lambda: self.value(self.metrics(), "earshot_connections") == 2, 10.0)
        after = self.metrics()
        self.assertTrue(got, "earshot_connections stayed at %r after the flood"
                        % self.value(after, "earshot_connections"))
        self.assertEqual(self.value(after, "earshot_clients"), 2)
        self.assertEqual(self.value(after, "earshot_matched_pairs"), 1)
        self.assertDelta(before, after, "earshot_connections_total", self.N)
        self.assertDelta(before, after, "earshot_registrations_total", registered)
        self.assertDelta(before, after, "earshot_connections_refused_total", 0,
                         reason="per_address")
        # the bystanders heard nothing; a fresh client works normally
        self.expect_nothing(k1, k2)
        n_id = self.cid("fresh")
        n = self.join(n_id, m, 1, 1, expect=[k1_id, k2_id])
        self.expect_peers(k1, [k2_id, n_id])
        self.expect_peers(k2, [k1_id, n_id])
        self.relay(n, n_id, k1, k1_id, "after the flood")
        self.expect_nothing(k1, k2, n)
        status, _, body = self.get("/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))


# ============================================================ hostile origin
class LongOriginTest(HostileTestCase):
    """A hostile web page's Origin is whatever its domain is; a long domain name
    (legal: up to 253 characters) must not get past the allow-list."""
    config = {"server": {"allowed_origins": ["https://game.example"]}}

    def test_long_foreign_origin_is_refused(self):
        def domain(length):
            labels, left = [], length - len(".example")
            while left > 0:
                n = min(63, left - 1 if left > 64 else left)
                labels.append("x" * n)
                left -= n + 1
            name = ".".join(labels) + ".example"
            assert len(name) == length, (len(name), length)
            return name
        before = self.metrics()
        origins = ["https://evil.example"] + ["https://" + domain(n) for n in (247, 248, 253)]
        self.assertEqual([len(o) for o in origins], [20, 255, 256, 261])
        for origin in origins:
            with self.subTest(length=len(origin)):
                try:
                    ws = self.connect(headers={"Origin": origin})
                except HandshakeError as exc:
                    self.assertEqual(exc.status, 403)
                else:
                    ws.close()
                    self.fail("a WebSocket from a foreign Origin of %d bytes was accepted"
                              % len(origin))
        self.assertDelta(before, self.metrics(), "earshot_connections_refused_total",
                         len(origins), reason="origin")
        self.join(self.cid("a"), self.new_map(), 0, 0, headers={"Origin": "https://game.example"})

if __name__ == "__main__":
    unittest.main()
