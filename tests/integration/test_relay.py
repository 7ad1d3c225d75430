"""Offer/answer/ICE relays and the relay_guard plugin (PROTOCOL.md: Relays)."""

import time
import unittest

from harness import RELAY_KINDS, EarshotTestCase, make_hooks, relay_message, relayed_message

KINDS = list(RELAY_KINDS)  # offer, answer, candidate


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

    def pair(self):
        """Two matched clients: (map, a, b, a_id, b_id)."""
        return self.matched_pair((0, 0), (5, 5))

    def test_each_kind_is_relayed(self):
        m, a, b, a_id, b_id = self.pair()
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.relay(a, a_id, b, b_id, "p-" + kind, kind)
                self.relay(b, b_id, a, a_id, "q-" + kind, kind)
        self.expect_nothing(a, b)

    def test_payloads_pass_through_unchanged(self):
        m, a, b, a_id, b_id = self.pair()
        for payload in PAYLOADS:
            for kind in KINDS:
                with self.subTest(kind=kind, payload=payload[:40]):
                    self.relay(a, a_id, b, b_id, payload, kind)
        self.expect_nothing(a, b)

    def test_payload_escaped_forms_decode(self):
        """The server relays the decoded string, whatever escapes the sender used."""
        m, a, b, a_id, b_id = self.pair()
        a.send_text('{"type":"SendOffer","data":{"target_id":"%s","offer":'
                    '"\\u0068\\u00e9\\ud83c\\udfa7\\/\\b\\f\\n\\r\\t\\"\\\\\\u0000"}}' % b_id)
        self.expect_relay(b, "offer", a_id, "h\u00e9\U0001F3A7/\b\f\n\r\t\"\\\u0000")
        self.expect_nothing(a, b)

    def test_large_payload_near_frame_limit(self):
        m, a, b, a_id, b_id = self.pair()
        self.relay(a, a_id, b, b_id, sdp_like(60000))
        self.expect_nothing(a, b)

    def test_unknown_fields_and_forged_sender_ignored(self):
        m, a, b, a_id, b_id = self.pair()
        for kind in KINDS:
            with self.subTest(kind=kind):
                msg = relay_message(kind, b_id, "x")
                msg["extra"] = [1, {"sender_id": "top"}]
                msg["sender_id"] = "forged-top"
                msg["data"].update({"sender_id": "forged", "unknown": {"deep": [None, 1.5, "s"]},
                                    "client_id": "c"})
                a.send_json(msg)
                self.expect_relay(b, kind, a_id, "x")
        self.expect_nothing(a, b)

    def test_unicode_ids(self):
        m = self.new_map()
        a_id, b_id = "h\u00e9llo \U0001F3A7 " + self.cid("a"), "\u65e5\u672c " + self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 1, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.relay(a, a_id, b, b_id, "o")
        self.expect_nothing(a, b)

    def test_order_is_kept(self):
        m, a, b, a_id, b_id = self.pair()
        sent = []
        for i in range(20):
            kind = KINDS[i % 3]
            self.send_relay(a, kind, b_id, "n%d" % i)
            sent.append(relayed_message(kind, a_id, "n%d" % i))
        got = [b.recv_json() for _ in sent]
        self.assertEqual(got, sent)
        self.expect_nothing(a, b)

    def test_relay_to_self(self):
        m, a, b, a_id, b_id = self.pair()
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.send_relay(a, kind, a_id, "me")
                self.expect_error(a, "Cannot send to yourself")
        self.expect_nothing(a, b)

    def test_unknown_target(self):
        m, a, b, a_id, b_id = self.pair()
        for target in ["nobody-" + self.cid("x"), b_id.upper(), b_id + " ", " " + b_id]:
            with self.subTest(target=target):
                self.relay_refused(a, target, reason="Client %s not found" % target)
                self.expect_nothing(a, b, seconds=0.2)
        # still working afterwards
        self.relay(a, a_id, b, b_id, "ok")

    def test_connected_but_unregistered_target_is_unknown(self):
        m, a, b, a_id, b_id = self.pair()
        c = self.connect()
        c.send_json({"type": "UpdatePosition", "data": {"client_id": self.cid("c"), "map_id": 1,
                                                        "x": "bad", "y": 0}})
        self.expect_error(c, "Invalid UpdatePosition: field 'x' must be an integer in the "
                             "signed 32-bit range")
        self.send_relay(a, "offer", self.cid("c"), "o")
        self.expect_error(a, "Client %s not found" % self.cid("c"))
        self.expect_nothing(a, b, c)

    def test_target_gone(self):
        m, a, b, a_id, b_id = self.pair()
        b.close()
        self.expect_peers(a, [])
        self.send_relay(a, "offer", b_id, "o")
        self.expect_error(a, "Client %s not found" % b_id)
        self.send_relay(a, "candidate", b_id, "c")
        a.expect_nothing()

    def test_unregistered_sender(self):
        m, a, b, a_id, b_id = self.pair()
        c = self.connect()
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.send_relay(c, kind, b_id, "x")
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
                self.relay_refused(a, target)
                self.send_relay(conn, "offer", a_id, "o")
                self.expect_error(conn, "relay to %s not allowed" % a_id)
        self.expect_nothing(a, b, c)

    def test_guard_allows_recently_matched(self):
        """Within the 30 s grace, a pair that has just separated may still relay."""
        m, a, b, a_id, b_id = self.pair()
        self.move(b, b_id, m, 500, 500)
        self.expect_parted(b, a)
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.relay(a, a_id, b, b_id, "late", kind)
        self.expect_nothing(a, b)


class RelayGraceTest(EarshotTestCase):
    """relay_guard with a 1 s grace."""
    hooks = make_hooks(grace=1.0)

    def test_grace_expires(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (5, 5))
        self.move(b, b_id, m, 300, 0)
        self.expect_parted(b, a)
        self.relay(a, a_id, b, b_id, "early")
        self.relay(b, b_id, a, a_id, "c1", "candidate")
        time.sleep(1.6)
        self.send_relay(a, "offer", b_id, "late")
        self.expect_error(a, "relay to %s not allowed" % b_id)
        self.send_relay(b, "answer", a_id, "late")
        self.expect_error(b, "relay to %s not allowed" % a_id)
        self.send_relay(b, "candidate", a_id, "c2")
        self.expect_nothing(a, b)
        # matched again: allowed again
        self.move(b, b_id, m, 5, 5)
        self.expect_matched(b, b_id, a, a_id)
        self.relay(a, a_id, b, b_id, "again")
        self.expect_nothing(a, b)

    def test_matched_pair_is_never_refused(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (5, 5))
        time.sleep(1.3)  # longer than the grace: a current match needs none
        self.relay(a, a_id, b, b_id, "o")
        self.expect_nothing(a, b)


class RelayUnguardedTest(EarshotTestCase):
    """relay_guard listed but disabled: any two registered clients may relay."""
    hooks = make_hooks(relay_guard=False)

    def test_relay_between_unmatched_clients(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m + 1, 9000, 9000, channel=4)
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.relay(a, a_id, b, b_id, "far", kind)
        self.send_relay(a, "offer", a_id, "me")
        self.expect_error(a, "Cannot send to yourself")
        self.send_relay(a, "offer", "nobody", "o")
        self.expect_error(a, "Client nobody not found")
        self.expect_nothing(a, b)


if __name__ == "__main__":
    unittest.main()
