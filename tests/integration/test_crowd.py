"""The crowd cap over sockets (docs/protocol.md, "The crowd cap"): with
session.max_peers = 3 and swap_margin = 2, each client hears at most its 3
nearest, symmetrically; a newcomer takes a full client's farthest peer's
place only when it is at least 2 units nearer; a client leaving frees a slot
that the next-nearest fills; max_peers = 0 matches everyone in range; a
reload applies a new cap; earshot_capped_out_total counts pairs left out."""

import signal
import unittest

from harness import EarshotTestCase, ServerPerTestCase, NoMessage, wait_until

CAPPED = {"session": {"max_peers": 3, "swap_margin": 2.0}}

# Two triangles around one spot: a small one (a1..a3, about 2 from the
# centre) and a large one (b1..b3, about 10 out, same directions). Every
# pair is within 20. Nearest 3 each: the a's hear each other and their own
# b; each b hears its a and the other two b's (the other a's are nearer to
# it than the b's, but they are full with peers nearer still).
TRIANGLES = [("a1", 0, 2), ("a2", -2, -1), ("a3", 2, -1),
             ("b1", 0, 10), ("b2", -9, -5), ("b3", 9, -5)]
PRISM = {"a1": ["a2", "a3", "b1"], "a2": ["a1", "a3", "b2"], "a3": ["a1", "a2", "b3"],
         "b1": ["a1", "b2", "b3"], "b2": ["a2", "b1", "b3"], "b3": ["a3", "b1", "b2"]}


class CrowdHelpers:

    def drain(self, conns, seconds=0.2):
        """Read everything the server sends unasked until it is quiet; the last
        NearbyPeers of each connection (None if it got none)."""
        last = [None] * len(conns)
        for i, ws in enumerate(conns):
            while True:
                try:
                    msg = ws.recv_json(seconds)
                except NoMessage:
                    break
                self.assertEqual(msg.get("type"), "NearbyPeers", msg)
                last[i] = sorted(msg["data"])
        return last

    def join_all(self, spots, map_id):
        """Join spots (name, x, y) one by one, reading what everyone is sent."""
        conns, ids = [], []
        for name, x, y in spots:
            cid = self.cid(name)
            ws = self.connect()
            self.register(ws, cid, map_id, x, y)
            conns.append(ws)
            ids.append(cid)
            self.drain(conns)
        return conns, ids

    def metric(self, name):
        return self.value(self.metrics(), name)


class TestCrowdCap(EarshotTestCase, CrowdHelpers):
    config = CAPPED

    def test_six_near_one_spot_hear_their_nearest_three(self):
        m = self.new_map()
        conns, ids = self.join_all(TRIANGLES, m)
        name = {cid: n for (n, _, _), cid in zip(TRIANGLES, ids)}
        lists = [sorted(self.cid(p) for p in PRISM[n]) for n, _, _ in TRIANGLES]
        self.expect_lists(conns, lists)
        # symmetric: A lists B exactly when B lists A
        for i, cid in enumerate(ids):
            for peer in lists[i]:
                self.assertIn(cid, lists[ids.index(peer)], "%s lists %s" % (name[cid], peer))
        # nobody moves: nothing changes
        self.expect_nothing(*conns, seconds=0.3)

    def test_newcomer_displaces_only_by_the_margin_and_leaving_frees_a_slot(self):
        # a hears p1, p2, p3 at 15; the p's, close together, hear each
        # other: everyone is full, and the farthest peer of a p is a.
        m, (a, p1, p2, p3), (a_id, *p) = self.place(
            ("a", 0, 0), ("p1", 15, 0), ("p2", 12, 9), ("p3", 12, -9))
        # 14 from a: 1 nearer than a's farthest (15), not 2: left out
        before = self.metric("earshot_capped_out_total")
        n_id = self.cid("n")
        n = self.join(n_id, m, -14, 0, expect=[])
        self.expect_nothing(a, p1, p2, p3, n)
        self.assertEqual(self.metric("earshot_capped_out_total") - before, 1)

        # 12 from a: 3 nearer: n takes the place of a's farthest (a tie at
        # 15: the greatest client_id, p3); p3, freed, looks again and is
        # left out (it is not nearer than a's farthest, p2 at 15)
        before = self.metric("earshot_capped_out_total")
        self.move(n, n_id, m, -12, 0)
        self.expect_peers(n, [a_id], who="n")
        self.expect_peers(a, [p[0], p[1], n_id], who="a")
        self.expect_peers(p3, [p[0], p[1]], who="p3")
        self.expect_nothing(a, p1, p2, p3, n)
        self.assertEqual(self.metric("earshot_capped_out_total") - before, 1)

        # 13 from a now: n got farther, but a's farthest is still 15 away:
        # nothing changes, and nobody else needs to look again (n's only
        # candidate is a, its peer)
        before = self.metric("earshot_capped_out_total")
        self.move(n, n_id, m, -13, 0)
        self.expect_nothing(a, p1, p2, p3, n)
        self.assertEqual(self.metric("earshot_capped_out_total") - before, 0)

        # n leaves: a's slot goes to p3, the next nearest
        n.send_json({"type": "Disconnect", "data": None})
        self.expect_peers(a, p, who="a after n left")
        self.expect_peers(p3, [p[0], p[1], a_id], who="p3 after n left")
        self.expect_nothing(a, p1, p2, p3)

    def test_crowd_on_one_spot_never_exceeds_the_cap(self):
        m = self.new_map()
        spots = [("c%d" % i, 5, 5) for i in range(8)]
        conns, ids = self.join_all(spots, m)
        lists = []
        for ws in conns:
            self.refresh(ws)
            msg = ws.recv_json()
            self.assertEqual(msg["type"], "NearbyPeers")
            lists.append(sorted(msg["data"]))
        # at one spot nobody is nearer than anyone: the first four fill up,
        # the next four form their own group
        self.assertEqual(lists[:4], [sorted(set(ids[:4]) - {c}) for c in ids[:4]])
        self.assertEqual(lists[4:], [sorted(set(ids[4:]) - {c}) for c in ids[4:]])


class TestNoCap(EarshotTestCase, CrowdHelpers):
    config = {"session": {"max_peers": 0}}

    def test_max_peers_zero_matches_everyone_in_range(self):
        m = self.new_map()
        before = self.metric("earshot_capped_out_total")
        spots = [("c%d" % i, i, 0) for i in range(20)]  # more than the stock cap + 1
        self.place(*spots, map_id=m)
        self.assertEqual(self.metric("earshot_capped_out_total"), before)


class TestReload(ServerPerTestCase, CrowdHelpers):

    def test_reload_applies_a_new_cap(self):
        srv = self.start({"session": {"max_peers": 0}})
        m = self.new_map()
        spots = [("r%d" % i, i * 2, 0) for i in range(5)]
        _, conns, ids = self.place(*spots, map_id=m)
        srv.settings["session"]["max_peers"] = 2
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: self.value(self.metrics(), "earshot_reloads_total", result="ok") == 1))
        last = self.drain(conns)
        got = []
        for ws in conns:
            self.refresh(ws)
            msg = ws.recv_json()
            got.append(sorted(msg["data"]))
        for i, lst in enumerate(got):
            self.assertLessEqual(len(lst), 2, got)
            if last[i] is not None:
                self.assertEqual(last[i], lst)
            for peer in lst:
                self.assertIn(ids[i], got[ids.index(peer)])
        self.assertGreater(sum(len(x) for x in got), 0)
        srv.settings["session"]["max_peers"] = 0
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: self.value(self.metrics(), "earshot_reloads_total", result="ok") == 2))
        self.drain(conns)
        self.expect_lists(conns, [sorted(set(ids) - {c}) for c in ids])


if __name__ == "__main__":
    unittest.main()
