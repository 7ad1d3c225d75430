"""Sessions: takeover policies, Disconnect, close cleanup, idle timeout, periodic
refresh, RequestPeerRefresh (PROTOCOL.md: Registration and identity, When
NearbyPeers is sent 3-4, Liveness and limits)."""

import time
import unittest

from harness import EarshotTestCase, OTHER_SOURCE, HOST
from wsclient import ConnectionClosed, NoMessage

POLICY_CLOSE = 1008


class SessionTestBase(EarshotTestCase):

    def taken_over(self, old, client_id):
        self.expect_error(old, "client_id %s was taken over by another connection" % client_id)
        self.assertEqual(old.expect_close(), POLICY_CLOSE)

    def in_use(self, ws, client_id):
        self.expect_error(ws, "client_id %s is already in use" % client_id)

    def peer_still_lists(self, peer, expected):
        """After an in-place takeover the peer may or may not get a NearbyPeers; every
        list it gets must be `expected`, and a refresh must show it."""
        self.refresh(peer)
        lists = []
        while True:
            try:
                msg = peer.recv_json(0.4)
            except NoMessage:
                break
            self.assertEqual(msg.get("type"), "NearbyPeers", msg)
            lists.append(sorted(msg["data"]))
        self.assertIn(len(lists), (1, 2), lists)
        for got in lists:
            self.assertEqual(got, sorted(expected))


class SameAddressTest(SessionTestBase):
    """The default policy: takeover only from the same client address."""
    config = {"session": {"takeover": "same_address"}}

    def test_takeover_from_same_address(self):
        m, (old, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 3, 0))
        new = self.connect(source_addr=HOST)
        self.assertEqual(self.register(new, a_id, m, 0, 0), [p_id])
        self.taken_over(old, a_id)
        self.peer_still_lists(peer, [a_id])
        # relays to the id now reach the new connection, with the new one as sender
        self.relay(peer, p_id, new, a_id, "o")
        self.relay(new, a_id, peer, p_id, "ans", kind="answer")
        self.expect_nothing(new, peer)

    def test_takeover_to_a_new_place_tells_peers(self):
        m, (old, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 3, 0))
        q_id = self.cid("q")
        q = self.join(q_id, m, 500, 0)
        new = self.connect()
        self.assertEqual(self.register(new, a_id, m, 501, 0), [q_id])
        self.taken_over(old, a_id)
        self.expect_peers(peer, [])
        self.expect_peers(q, [a_id])
        self.expect_nothing(new, peer, q)

    def test_refused_from_other_address(self):
        m, (holder, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 3, 0))
        other = self.connect(source_addr=OTHER_SOURCE)
        self.move(other, a_id, m, 100, 100)
        self.in_use(other, a_id)
        self.expect_nothing(holder, peer, other)
        self.assert_unregistered(other)
        # the refused connection may register another id
        b_id = self.cid("b")
        self.assertEqual(self.register(other, b_id, m, 4, 0), [a_id, p_id])
        self.expect_peers(holder, [p_id, b_id])
        self.expect_peers(peer, [a_id, b_id])
        self.expect_nothing(holder, peer, other)

    def test_id_free_after_holder_leaves(self):
        m, (holder, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 3, 0))
        other = self.connect(source_addr=OTHER_SOURCE)
        self.move(other, a_id, m, 0, 0)
        self.in_use(other, a_id)
        holder.close()
        self.expect_peers(peer, [])
        self.assertEqual(self.register(other, a_id, m, 0, 0), [p_id])
        self.expect_peers(peer, [a_id])
        self.expect_nothing(peer, other)

    def test_same_connection_repeating_its_id_is_not_a_takeover(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        for _ in range(3):
            self.move(a, a_id, m, 0, 0)
        a.expect_nothing()
        self.refresh(a)
        self.expect_peers(a, [])


class AlwaysTest(SessionTestBase):
    config = {"session": {"takeover": "always"}}

    def test_takeover_from_other_address(self):
        m, (old, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 3, 0))
        new = self.connect(source_addr=OTHER_SOURCE)
        self.assertEqual(self.register(new, a_id, m, 1, 0), [p_id])
        self.taken_over(old, a_id)
        self.peer_still_lists(peer, [a_id])
        self.relay(peer, p_id, new, a_id, "c", kind="candidate")
        self.expect_nothing(new, peer)

    def test_chain_of_takeovers(self):
        a_id = self.cid("a")
        m = self.new_map()
        conns = [self.join(a_id, m, 0, 0)]
        for i in range(3):
            new = self.connect(source_addr=OTHER_SOURCE if i % 2 == 0 else HOST)
            self.assertEqual(self.register(new, a_id, m, 0, 0), [])
            self.taken_over(conns[-1], a_id)
            conns.append(new)
        self.refresh(conns[-1])
        self.expect_peers(conns[-1], [])
        conns[-1].expect_nothing()


class NeverTest(SessionTestBase):
    config = {"session": {"takeover": "never"}}

    def test_refused_even_from_same_address(self):
        m = self.new_map()
        a_id = self.cid("a")
        holder = self.join(a_id, m, 0, 0)
        for src in (HOST, OTHER_SOURCE):
            with self.subTest(source=src):
                ws = self.connect(source_addr=src)
                self.move(ws, a_id, m, 0, 0)
                self.in_use(ws, a_id)
                self.assert_unregistered(ws)
        holder.expect_nothing()
        self.refresh(holder)
        self.expect_peers(holder, [])

    def test_id_free_after_disconnect(self):
        m, (holder, peer), (a_id, p_id) = self.place(("a", 0, 0), ("p", 0, 1))
        ws = self.connect()
        self.move(ws, a_id, m, 0, 0)
        self.in_use(ws, a_id)
        holder.send_json({"type": "Disconnect", "data": None})
        self.assertEqual(holder.expect_close(), 1000)
        self.expect_peers(peer, [])
        self.assertEqual(self.register(ws, a_id, m, 0, 0), [p_id])
        self.expect_peers(peer, [a_id])
        self.expect_nothing(ws, peer)


class CleanupTest(SessionTestBase):
    """Disconnect and every way a socket can go away."""

    def test_disconnect(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        a.send_json({"type": "Disconnect", "data": None})
        self.assertEqual(a.expect_close(), 1000)
        self.assertTrue(a.wait_eof(), "server did not end the TCP stream after the close")
        self.expect_peers(b, [])
        b.send_json({"type": "SendOffer", "data": {"target_id": a_id, "offer": "o"}})
        self.expect_error(b, "Client %s not found" % a_id)
        self.expect_nothing(b)
        # the id can be registered again, from another address too
        a2 = self.connect(source_addr=OTHER_SOURCE)
        self.assertEqual(self.register(a2, a_id, m, 0, 0), [b_id])
        self.expect_peers(b, [a_id])
        self.expect_nothing(a2, b)

    def test_disconnect_acts_before_the_socket_closes(self):
        """Disconnect removes the client when it is read, not when the TCP connection
        finally ends: here the client never answers the server's close frame."""
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        a.send_json({"type": "Disconnect", "data": None})
        self.expect_peers(b, [], timeout=2.0)
        a2 = self.connect(source_addr=OTHER_SOURCE)
        self.assertEqual(self.register(a2, a_id, m, 0, 0), [b_id])
        self.expect_peers(b, [a_id])
        self.expect_nothing(a2, b)
        self.assertEqual(a.expect_close(), 1000)

    def test_messages_after_disconnect_are_not_processed(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        b = self.join(b_id, m, 100, 0)
        a = self.join(a_id, m, 0, 0)
        a.send_json({"type": "Disconnect"})
        self.move(a, a_id, m, 100, 0)  # would match b if processed
        self.assertEqual(a.expect_close(), 1000)
        b.expect_nothing()

    def close_variants(self):
        return [
            ("close frame", lambda ws: ws.close()),
            ("close frame 1001", lambda ws: ws.close(1001)),
            ("TCP FIN", lambda ws: ws.abort()),
            ("TCP RST", lambda ws: ws.abort(reset=True)),
            ("half frame then FIN", lambda ws: (ws.raw_send(b"\x81\xfe\x10\x00abcd"),
                                                ws.abort())),
        ]

    def test_socket_gone_tells_peers(self):
        for name, close in self.close_variants():
            with self.subTest(how=name):
                m = self.new_map()
                a_id, b_id = self.cid("a" + name), self.cid("b" + name)
                a = self.join(a_id, m, 0, 0)
                b = self.join(b_id, m, 1, 0, expect=[a_id])
                self.expect_peers(a, [b_id])
                close(a)
                self.expect_peers(b, [])
                # the id is free again
                a2 = self.connect(source_addr=OTHER_SOURCE)
                self.assertEqual(self.register(a2, a_id, m, 0, 0), [b_id])
                self.expect_peers(b, [a_id])
                self.expect_nothing(a2, b, seconds=0.1)

    def test_unregistered_close_is_harmless(self):
        m = self.new_map()
        p = self.join(self.cid("p"), m, 0, 0)
        for _ in range(5):
            ws = self.connect()
            ws.abort(reset=True)
        ws = self.connect()
        ws.close()
        p.expect_nothing()
        self.refresh(p)
        self.expect_peers(p, [])

    def test_no_periodic_refresh_when_off(self):
        ws = self.join(self.cid("a"), self.new_map(), 0, 0)
        ws.expect_nothing(0.6)


class IdleTimeoutTest(SessionTestBase):
    config = {"session": {"idle_timeout": 1.0}}

    def test_idle_client_times_out(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        # b stays alive with refreshes; a says nothing
        msgs = []
        deadline = time.monotonic() + 4.0
        a_msgs = []
        closed = None
        while time.monotonic() < deadline and closed is None:
            self.refresh(b)
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                try:
                    msgs.append(b.recv_json(0.05))
                except NoMessage:
                    pass
            try:
                a_msgs.append(a.recv_json(0.01))
            except NoMessage:
                pass
            except ConnectionClosed as exc:
                closed = exc
        self.assertIsNotNone(closed, "a was not closed within 4 s (idle_timeout 1.0); got %r"
                             % a_msgs)
        self.assertEqual(a_msgs, [{"type": "Error", "data": "timed out"}])
        self.assertEqual(a.close_received and a.close_received[0], 1000, closed)
        # b: refresh replies listing a, then lists without a; every message a list
        try:
            while True:
                msgs.append(b.recv_json(0.3))
        except NoMessage:
            pass
        lists = [sorted(x["data"]) for x in msgs if x.get("type") == "NearbyPeers"]
        self.assertEqual(len(lists), len(msgs), msgs)
        self.assertIn([], lists)
        first_empty = lists.index([])
        self.assertTrue(all(l == [a_id] for l in lists[:first_empty]), lists)
        self.assertTrue(all(l == [] for l in lists[first_empty:]), lists)
        # the id is free again
        a2 = self.connect(source_addr=OTHER_SOURCE)
        self.assertEqual(self.register(a2, a_id, m, 0, 0), [b_id])
        self.expect_peers(b, [a_id])

    def test_update_position_and_refresh_keep_alive(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 300, 0)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            self.move(a, a_id, m, 0, 0)   # changes nothing: no reply
            self.refresh(b)
            self.expect_peers(b, [])
            a.expect_nothing(0.3)
        a.send_json({"type": "RequestPeerRefresh"})
        self.expect_peers(a, [])
        b.send_json({"type": "RequestPeerRefresh"})
        self.expect_peers(b, [])

    def test_relays_do_not_keep_alive(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        deadline = time.monotonic() + 4.0
        got_a, got_b = [], []
        n = 0
        while time.monotonic() < deadline and a.close_received is None and not a.eof:
            try:
                a.send_json({"type": "SendIceCandidate",
                             "data": {"target_id": b_id, "candidate": "c%d" % n}})
            except OSError:
                break
            n += 1
            self.refresh(b)
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                for conn, sink in ((a, got_a), (b, got_b)):
                    try:
                        sink.append(conn.recv_json(0.02))
                    except NoMessage:
                        pass
                    except ConnectionClosed:
                        if conn is b:
                            raise
                        break
        self.assertEqual(a.close_received and a.close_received[0], 1000,
                         "a kept sending candidates but was not closed with 1000: %r" % got_a)
        self.assertEqual(got_a, [{"type": "Error", "data": "timed out"}])
        try:  # b's list may still be on its way
            while {"type": "NearbyPeers", "data": []} not in got_b:
                got_b.append(b.recv_json(2.0))
        except NoMessage:
            pass
        kinds = [x["type"] for x in got_b]
        self.assertIn("ReceiveIceCandidate", kinds)
        self.assertIn({"type": "NearbyPeers", "data": []}, got_b)

    def test_timeout_frees_id(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        self.expect_error(a, "timed out", timeout=4.0)
        self.assertEqual(a.expect_close(), 1000)
        a2 = self.connect(source_addr=OTHER_SOURCE)
        self.assertEqual(self.register(a2, a_id, m, 0, 0), [])


class RefreshIntervalTest(SessionTestBase):
    config = {"session": {"refresh_interval": 0.5}}

    def test_periodic_refresh(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 0, expect=[a_id])
        lone = self.join(self.cid("lone"), m, 900, 0)
        unregistered = self.connect()
        got = {"a": [], "b": [], "lone": []}
        end = time.monotonic() + 2.1
        while time.monotonic() < end:
            for name, conn in (("a", a), ("b", b), ("lone", lone)):
                try:
                    got[name].append(conn.recv_json(0.05))
                except NoMessage:
                    pass
        want = {"a": [b_id], "b": [a_id], "lone": []}
        for name, msgs in got.items():
            with self.subTest(client=name):
                # a may have got its join notification ([b]) first: same list
                self.assertGreaterEqual(len(msgs), 3, msgs)
                for msg in msgs:
                    self.assertEqual(msg.get("type"), "NearbyPeers", msg)
                    self.assertEqual(sorted(msg["data"]), sorted(want[name]), msg)
        unregistered.expect_nothing(0.1)
        self.assert_unregistered(unregistered)


if __name__ == "__main__":
    unittest.main()
