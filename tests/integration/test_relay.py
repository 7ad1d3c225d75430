"""Offer/answer/ICE relays and the relay_guard plugin (PROTOCOL.md: Relays)."""

import time
import unittest

from harness import EarshotTestCase, make_hooks

KINDS = [  # (send type, payload field, receive type)
    ("SendOffer", "offer", "ReceiveOffer"),
    ("SendAnswer", "answer", "ReceiveAnswer"),
    ("SendIceCandidate", "candidate", "ReceiveIceCandidate"),
]


def sdp_like(size):
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=msid-semantic: WMS stream"]
    i = 0
    while sum(len(l) + 2 for l in lines) < size:
        lines.append("a=candidate:%d 1 udp 2122260223 192.168.1.%d %d typ host generation 0 "
                     "ufrag EsAw network-id 1" % (i, i % 250, 50000 + i))
        i += 1
    text = "\r\n".join(lines) + "\r\n"
    return text[:size]


PAYLOADS = [
    sdp_like(8192),
    "h\u00e9llo \U0001F3A7",
    "nul\u0000inside\u0000",
    "\u0000",
    'quotes " and \\ backslashes \\" \\\\ and /slashes/ \\u0041',
    "".join(chr(c) for c in range(1, 32)) + "\u007f",
    "\u2028\u2029 line separators \ufeff bom \uffff",
    "",
    " ",
    '{"type":"NearbyPeers","data":["fake"]}',
    "\U0010FFFF\U0001F600\u65e5\u672c",
]


class RelayTest(EarshotTestCase):
    """relay_guard on with the stock 30 s grace."""

    def matched_pair(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 5, 5, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.map = m
        return a, b, a_id, b_id

    def test_each_kind_is_relayed(self):
        a, b, a_id, b_id = self.matched_pair()
        for send, field, recv in KINDS:
            with self.subTest(kind=send):
                a.send_json({"type": send, "data": {"target_id": b_id, field: "p-" + field}})
                self.assertEqual(b.recv_json(), {"type": recv,
                                                 "data": {"sender_id": a_id, field: "p-" + field}})
                b.send_json({"type": send, "data": {"target_id": a_id, field: "q-" + field}})
                self.assertEqual(a.recv_json(), {"type": recv,
                                                 "data": {"sender_id": b_id, field: "q-" + field}})
        self.expect_nothing(a, b)

    def test_payloads_pass_through_unchanged(self):
        a, b, a_id, b_id = self.matched_pair()
        for payload in PAYLOADS:
            for send, field, recv in KINDS:
                with self.subTest(kind=send, payload=payload[:40]):
                    a.send_json({"type": send, "data": {"target_id": b_id, field: payload}})
                    msg = b.recv_json()
                    self.assertEqual(msg, {"type": recv,
                                           "data": {"sender_id": a_id, field: payload}})
        self.expect_nothing(a, b)

    def test_payload_escaped_forms_decode(self):
        """The server relays the decoded string, whatever escapes the sender used."""
        a, b, a_id, b_id = self.matched_pair()
        a.send_text('{"type":"SendOffer","data":{"target_id":"%s","offer":'
                    '"\\u0068\\u00e9\\ud83c\\udfa7\\/\\b\\f\\n\\r\\t\\"\\\\\\u0000"}}' % b_id)
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer", "data": {
            "sender_id": a_id, "offer": "h\u00e9\U0001F3A7/\b\f\n\r\t\"\\\u0000"}})
        self.expect_nothing(a, b)

    def test_large_payload_near_frame_limit(self):
        a, b, a_id, b_id = self.matched_pair()
        payload = sdp_like(60000)
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": payload}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": payload}})
        self.expect_nothing(a, b)

    def test_unknown_fields_and_forged_sender_ignored(self):
        a, b, a_id, b_id = self.matched_pair()
        for send, field, recv in KINDS:
            with self.subTest(kind=send):
                a.send_json({"type": send, "extra": [1, {"sender_id": "top"}],
                             "sender_id": "forged-top",
                             "data": {"sender_id": "forged", "target_id": b_id, field: "x",
                                      "unknown": {"deep": [None, 1.5, "s"]}, "client_id": "c"}})
                self.assertEqual(b.recv_json(), {"type": recv,
                                                 "data": {"sender_id": a_id, field: "x"}})
        self.expect_nothing(a, b)

    def test_unicode_ids(self):
        m = self.new_map()
        a_id, b_id = "h\u00e9llo \U0001F3A7 " + self.cid("a"), "\u65e5\u672c " + self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 1, expect=[a_id])
        self.expect_peers(a, [b_id])
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "o"}})
        self.expect_nothing(a, b)

    def test_order_is_kept(self):
        a, b, a_id, b_id = self.matched_pair()
        sent = []
        for i in range(20):
            send, field, recv = KINDS[i % 3]
            a.send_json({"type": send, "data": {"target_id": b_id, field: "n%d" % i}})
            sent.append({"type": recv, "data": {"sender_id": a_id, field: "n%d" % i}})
        got = [b.recv_json() for _ in sent]
        self.assertEqual(got, sent)
        self.expect_nothing(a, b)

    def test_relay_to_self(self):
        a, b, a_id, b_id = self.matched_pair()
        for send, field, _ in KINDS:
            with self.subTest(kind=send):
                a.send_json({"type": send, "data": {"target_id": a_id, field: "me"}})
                self.expect_error(a, "Cannot send to yourself")
        self.expect_nothing(a, b)

    def test_unknown_target(self):
        a, b, a_id, b_id = self.matched_pair()
        for target in ["nobody-" + self.cid("x"), b_id.upper(), b_id + " ", " " + b_id]:
            with self.subTest(target=target):
                a.send_json({"type": "SendOffer", "data": {"target_id": target, "offer": "o"}})
                self.expect_error(a, "Client %s not found" % target)
                a.send_json({"type": "SendAnswer", "data": {"target_id": target, "answer": "o"}})
                self.expect_error(a, "Client %s not found" % target)
                a.send_json({"type": "SendIceCandidate",
                             "data": {"target_id": target, "candidate": "c"}})
                self.expect_nothing(a, b, seconds=0.2)
        # still working afterwards
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "ok"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "ok"}})

    def test_connected_but_unregistered_target_is_unknown(self):
        a, b, a_id, b_id = self.matched_pair()
        c = self.connect()
        c.send_json({"type": "UpdatePosition", "data": {"client_id": self.cid("c"), "map_id": 1,
                                                        "x": "bad", "y": 0}})
        self.expect_error(c, "Invalid UpdatePosition: field 'x' must be an integer in the "
                             "signed 32-bit range")
        a.send_json({"type": "SendOffer", "data": {"target_id": self.cid("c"), "offer": "o"}})
        self.expect_error(a, "Client %s not found" % self.cid("c"))
        self.expect_nothing(a, b, c)

    def test_target_gone(self):
        a, b, a_id, b_id = self.matched_pair()
        b.close()
        self.expect_peers(a, [])
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.expect_error(a, "Client %s not found" % b_id)
        a.send_json({"type": "SendIceCandidate", "data": {"target_id": b_id, "candidate": "c"}})
        a.expect_nothing()

    def test_unregistered_sender(self):
        a, b, a_id, b_id = self.matched_pair()
        c = self.connect()
        for send, field, _ in KINDS:
            with self.subTest(kind=send):
                c.send_json({"type": send, "data": {"target_id": b_id, field: "x"}})
                self.expect_error(c, "Client must send UpdatePosition first.")
        self.expect_nothing(a, b, c)

    def test_guard_refuses_never_matched(self):
        m = self.new_map()
        a_id, b_id, c_id = self.cid("a"), self.cid("b"), self.cid("c")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m + 1, 0, 0)      # other map
        c = self.join(c_id, m, 0, 0, channel=1)  # other channel
        for target, conn in [(b_id, b), (c_id, c)]:
            with self.subTest(target=target):
                a.send_json({"type": "SendOffer", "data": {"target_id": target, "offer": "o"}})
                self.expect_error(a, "relay to %s not allowed" % target)
                a.send_json({"type": "SendAnswer", "data": {"target_id": target, "answer": "o"}})
                self.expect_error(a, "relay to %s not allowed" % target)
                a.send_json({"type": "SendIceCandidate",
                             "data": {"target_id": target, "candidate": "c"}})
                conn.send_json({"type": "SendOffer", "data": {"target_id": a_id, "offer": "o"}})
                self.expect_error(conn, "relay to %s not allowed" % a_id)
        self.expect_nothing(a, b, c)

    def test_guard_allows_recently_matched(self):
        """Within the 30 s grace, a pair that has just separated may still relay."""
        a, b, a_id, b_id = self.matched_pair()
        self.move(b, b_id, self.map, 500, 500)
        self.expect_peers(b, [])
        self.expect_peers(a, [])
        for send, field, recv in KINDS:
            with self.subTest(kind=send):
                a.send_json({"type": send, "data": {"target_id": b_id, field: "late"}})
                self.assertEqual(b.recv_json(), {"type": recv,
                                                 "data": {"sender_id": a_id, field: "late"}})
        self.expect_nothing(a, b)


class RelayGraceTest(EarshotTestCase):
    """relay_guard with a 1 s grace."""
    hooks = make_hooks(grace=1.0)

    def test_grace_expires(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 5, 5, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.move(b, b_id, m, 300, 0)
        self.expect_peers(b, [])
        self.expect_peers(a, [])
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "early"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "early"}})
        b.send_json({"type": "SendIceCandidate", "data": {"target_id": a_id, "candidate": "c1"}})
        self.assertEqual(a.recv_json(), {"type": "ReceiveIceCandidate",
                                         "data": {"sender_id": b_id, "candidate": "c1"}})
        time.sleep(1.6)
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "late"}})
        self.expect_error(a, "relay to %s not allowed" % b_id)
        b.send_json({"type": "SendAnswer", "data": {"target_id": a_id, "answer": "late"}})
        self.expect_error(b, "relay to %s not allowed" % a_id)
        b.send_json({"type": "SendIceCandidate", "data": {"target_id": a_id, "candidate": "c2"}})
        self.expect_nothing(a, b)
        # matched again: allowed again
        self.move(b, b_id, m, 5, 5)
        self.expect_peers(b, [a_id])
        self.expect_peers(a, [b_id])
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "again"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "again"}})
        self.expect_nothing(a, b)

    def test_matched_pair_is_never_refused(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 5, 5, expect=[a_id])
        self.expect_peers(a, [b_id])
        time.sleep(1.3)  # longer than the grace: a current match needs none
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "o"}})
        self.expect_nothing(a, b)


class RelayUnguardedTest(EarshotTestCase):
    """relay_guard listed but disabled: any two registered clients may relay."""
    hooks = make_hooks(relay_guard=False)

    def test_relay_between_unmatched_clients(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m + 1, 9000, 9000, channel=4)
        for send, field, recv in KINDS:
            with self.subTest(kind=send):
                a.send_json({"type": send, "data": {"target_id": b_id, field: "far"}})
                self.assertEqual(b.recv_json(), {"type": recv,
                                                 "data": {"sender_id": a_id, field: "far"}})
        a.send_json({"type": "SendOffer", "data": {"target_id": a_id, "offer": "me"}})
        self.expect_error(a, "Cannot send to yourself")
        a.send_json({"type": "SendOffer", "data": {"target_id": "nobody", "offer": "o"}})
        self.expect_error(a, "Client nobody not found")
        self.expect_nothing(a, b)


if __name__ == "__main__":
    unittest.main()
