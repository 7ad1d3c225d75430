"""Matching and NearbyPeers (PROTOCOL.md: Matching, When NearbyPeers is sent).

Lists are compared sorted (the server promises no order). Where the spec says a
message is not sent, the tests check that nothing arrives.
"""

import json
import math
import random
import unittest

from harness import (OMIT, EarshotTestCase, ServerPerTestCase, fixture_script, lua_hook,
                     make_hooks, stock_script)
from wsclient import encode_frame

I32_MAX = 2147483647
I32_MIN = -2147483648


class MatchingTest(EarshotTestCase):

    def pair(self, p, q, matched, map_id=None, **kw):
        """Place a at p, then b at q; check both sides of the first lists."""
        m = self.new_map() if map_id is None else map_id
        a_id, b_id = self.cid("a%d" % len(self._conns)), self.cid("b%d" % len(self._conns))
        a = self.join(a_id, m, p[0], p[1], **kw)
        b = self.join(b_id, m, q[0], q[1], expect=[a_id] if matched else [], **kw)
        if matched:
            self.expect_peers(a, [b_id], who="first of pair")
        self.pair_map = m
        return a, b, a_id, b_id

    # ----------------------------------------------------------- rule 1
    def test_first_update_always_answers(self):
        ws = self.join(self.cid("alone"), self.new_map(), 5, 5)
        ws.expect_nothing()

    def test_first_update_answers_even_when_nothing_else_changes(self):
        # b registers far from a: b still gets [], a gets nothing
        a, b, _, _ = self.pair((0, 0), (500, 500), matched=False)
        self.expect_nothing(a, b)

    # ------------------------------------------------------- the radius
    def test_join_within_radius_tells_both(self):
        a, b, a_id, b_id = self.pair((0, 0), (3, 4), matched=True)
        self.expect_nothing(a, b)

    def test_exactly_radius_matches(self):
        for p, q in [((0, 0), (20, 0)), ((0, 0), (0, -20)), ((0, 0), (12, 16)),
                     ((-7, -7), (5, 9)), ((100, 100), (84, 88))]:
            with self.subTest(p=p, q=q):
                a, b, _, _ = self.pair(p, q, matched=True)
                self.expect_nothing(a, b, seconds=0.1)

    def test_just_beyond_radius_does_not_match(self):
        for p, q in [((0, 0), (20, 1)), ((0, 0), (21, 0)), ((0, 0), (-15, 14)),
                     ((0, 0), (12, 17)), ((3, 3), (3, 24))]:
            with self.subTest(p=p, q=q):
                a, b, _, _ = self.pair(p, q, matched=False)
                self.expect_nothing(a, b, seconds=0.1)

    def test_same_game_map_channel_required(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0, channel=3, game_id=7)
        others = [
            (self.cid("map"), dict(map_id=m + 1, channel=3, game_id=7)),
            (self.cid("chan"), dict(map_id=m, channel=4, game_id=7)),
            (self.cid("chan0"), dict(map_id=m, channel=0, game_id=7)),
            (self.cid("game"), dict(map_id=m, channel=3, game_id=8)),
            (self.cid("game0"), dict(map_id=m, channel=3, game_id=OMIT)),
        ]
        conns = []
        for cid, kw in others:
            with self.subTest(other=cid):
                conns.append(self.join(cid, kw["map_id"], 1, 1, channel=kw["channel"],
                                       game_id=kw["game_id"]))
        self.expect_nothing(a, *conns)
        b_id = self.cid("same")
        b = self.join(b_id, m, 1, 1, channel=3, game_id=7, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.expect_nothing(a, b, *conns)

    def test_negative_channel_and_game(self):
        a, b, _, _ = self.pair((0, 0), (1, 0), matched=True, channel=-1, game_id=-5)
        self.expect_nothing(a, b)

    def test_int32_extremes(self):
        # 32-bit arithmetic would wrap these into small distances
        for p, q, matched in [
            ((I32_MAX, 0), (I32_MIN, 0), False),
            ((0, I32_MAX), (0, I32_MIN), False),
            ((I32_MAX, I32_MAX), (I32_MIN, I32_MIN), False),
            ((I32_MIN, I32_MAX), (I32_MAX, I32_MIN), False),
            ((I32_MAX, I32_MAX), (I32_MAX, I32_MAX), True),
            ((I32_MIN, I32_MIN), (I32_MIN, I32_MIN), True),
            ((I32_MAX, I32_MAX), (I32_MAX - 20, I32_MAX), True),
            ((I32_MIN, I32_MIN), (I32_MIN + 12, I32_MIN + 16), True),
            ((I32_MAX, I32_MIN), (I32_MAX - 20, I32_MIN + 1), False),
            ((I32_MAX, 0), (I32_MIN + 5, 0), False),
            ((-10, I32_MIN), (10, I32_MIN), True),
        ]:
            with self.subTest(p=p, q=q):
                a, b, _, _ = self.pair(p, q, matched)
                self.expect_nothing(a, b, seconds=0.1)

    # ---------------------------------------------------- rule 2: moves
    def test_hysteresis(self):
        a, b, a_id, b_id = self.pair((0, 0), (19, 0), matched=True)
        m = self.pair_map
        for x in (24, 25, 22, 25):  # beyond radius, within leave_radius: still matched
            self.move(b, b_id, m, x, 0)
            self.expect_nothing(a, b, seconds=0.15)
        self.move(b, b_id, m, 15, 20)  # exactly 25 diagonally
        self.expect_nothing(a, b, seconds=0.15)
        self.move(b, b_id, m, 26, 0)  # beyond leave_radius
        self.expect_parted(b, a)
        for x in (24, 21, 25):  # not matched, so the enter radius applies again
            self.move(b, b_id, m, x, 0)
            self.expect_nothing(a, b, seconds=0.15)
        self.move(b, b_id, m, 20, 0)
        self.expect_matched(b, b_id, a, a_id)
        self.expect_nothing(a, b)

    def test_hysteresis_is_per_pair(self):
        m, (a, b, c), (a_id, b_id, c_id) = self.place(("a", 0, 0), ("b", 18, 0), ("c", 40, 0))
        # b moves to 23: still matched with a (hysteresis); 17 from c: new match
        self.move(b, b_id, m, 23, 0)
        self.expect_peers(b, [a_id, c_id])
        self.expect_peers(c, [b_id])
        self.expect_nothing(a, b, c)
        # c moves to 45: 22 from b, still matched; a moves to -3: 26 from b, dropped
        self.move(c, c_id, m, 45, 0)
        self.expect_nothing(a, b, c)
        self.move(a, a_id, m, -3, 0)
        self.expect_peers(a, [])
        self.expect_peers(b, [c_id])
        self.expect_nothing(a, b, c)

    def test_move_that_changes_nothing_sends_nothing(self):
        a, b, a_id, b_id = self.pair((0, 0), (5, 0), matched=True)
        m = self.pair_map
        for x, y in [(6, 0), (6, 0), (-5, 3), (0, 0), (10, 10)]:
            self.move(b, b_id, m, x, y)
            self.move(a, a_id, m, 0, 1)
        self.expect_nothing(a, b)
        lone = self.join(self.cid("lone"), m + 100, 0, 0)
        for x in range(0, 1000, 100):
            self.move(lone, self.cid("lone"), m + 100, x, x)
        self.expect_nothing(lone, a, b)

    def test_peer_moving_away_and_back(self):
        a, b, a_id, b_id = self.pair((0, 0), (5, 0), matched=True)
        m = self.pair_map
        self.move(b, b_id, m, 100, 0)
        self.expect_parted(b, a)
        self.move(b, b_id, m, 0, 20)
        self.expect_matched(b, b_id, a, a_id)
        self.expect_nothing(a, b)

    def test_map_channel_game_changes(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (1, 0))
        for kw in [dict(map_id=m + 1), dict(map_id=m, channel=1), dict(map_id=m, game_id=1)]:
            with self.subTest(change=kw):
                self.move(b, b_id, kw["map_id"], 1, 0, kw.get("channel", 0), kw.get("game_id", 0))
                self.expect_parted(b, a)
                self.move(b, b_id, m, 1, 0)
                self.expect_matched(b, b_id, a, a_id)
                self.expect_nothing(a, b, seconds=0.1)

    def test_omitted_channel_resets_to_zero(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0, channel=5, game_id=9)
        b = self.join(b_id, m, 1, 0, channel=5, game_id=9, expect=[a_id])
        self.expect_peers(a, [b_id])
        self.move(b, b_id, m, 1, 0, channel=OMIT, game_id=9)
        self.expect_parted(b, a)
        self.move(b, b_id, m, 1, 0, channel=5, game_id=9)
        self.expect_matched(b, b_id, a, a_id)
        self.move(b, b_id, m, 1, 0, channel=5, game_id=OMIT)
        self.expect_parted(b, a)
        self.expect_nothing(a, b)

    def test_switching_map_is_one_message_per_client(self):
        m, n = self.new_map(), self.new_map()
        a_id, b_id, d_id = self.cid("a"), self.cid("b"), self.cid("d")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 0, expect=[a_id])
        self.expect_peers(a, [b_id])
        d = self.join(d_id, n, 1, 0)
        # b leaves a and joins d in one message: b gets [d] only, never [] first
        self.move(b, b_id, n, 0, 0)
        self.expect_peers(b, [d_id])
        self.expect_peers(a, [])
        self.expect_peers(d, [b_id])
        self.expect_nothing(a, b, d)

    def test_one_move_many_changes(self):
        m = self.new_map()
        ids = {k: self.cid(k) for k in "abcde"}
        pos = {"a": (0, 0), "b": (-10, 0), "c": (-10, 5), "d": (40, 0), "e": (45, 5)}
        conns = {}
        conns["a"] = self.join(ids["a"], m, *pos["a"])
        conns["b"] = self.join(ids["b"], m, *pos["b"], expect=[ids["a"]])
        self.expect_peers(conns["a"], [ids["b"]])
        conns["c"] = self.join(ids["c"], m, *pos["c"], expect=[ids["a"], ids["b"]])
        self.expect_peers(conns["a"], [ids["b"], ids["c"]])
        self.expect_peers(conns["b"], [ids["a"], ids["c"]])
        conns["d"] = self.join(ids["d"], m, *pos["d"])
        conns["e"] = self.join(ids["e"], m, *pos["e"], expect=[ids["d"]])
        self.expect_peers(conns["d"], [ids["e"]])
        self.expect_nothing(*conns.values())
        # a jumps from b,c to d,e: every one of them gets exactly one list
        self.move(conns["a"], ids["a"], m, 42, 2)
        self.expect_peers(conns["a"], [ids["d"], ids["e"]])
        self.expect_peers(conns["b"], [ids["c"]])
        self.expect_peers(conns["c"], [ids["b"]])
        self.expect_peers(conns["d"], [ids["e"], ids["a"]])
        self.expect_peers(conns["e"], [ids["d"], ids["a"]])
        self.expect_nothing(*conns.values())

    def test_three_way_join(self):
        m = self.new_map()
        a_id, b_id, c_id = self.cid("a"), self.cid("b"), self.cid("c")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 10, 0, expect=[a_id])
        self.expect_peers(a, [b_id])
        c = self.join(c_id, m, 5, 5, expect=[a_id, b_id])
        self.expect_peers(a, [b_id, c_id])
        self.expect_peers(b, [a_id, c_id])
        self.expect_nothing(a, b, c)
        # b moves to exactly leave_radius from a (kept) and 29+ from c (dropped)
        self.move(b, b_id, m, -24, -7)
        self.expect_peers(b, [a_id])
        self.expect_peers(c, [a_id])
        self.expect_nothing(a, b, c)

    def test_crowd(self):
        """Seventeen clients on one spot (everyone hears everyone under the
        stock crowd cap of 16): each join tells everyone once."""
        m = self.new_map()
        conns, ids = [], []
        for i in range(17):
            cid = self.cid("crowd%d" % i)
            ws = self.join(cid, m, i % 3, i % 5, expect=ids)
            for j, other in enumerate(conns):
                self.expect_peers(other, [c for c in ids + [cid] if c != ids[j]],
                                  who="crowd member on join of %s" % cid)
            conns.append(ws)
            ids.append(cid)
        self.expect_nothing(*conns)
        for i in range(0, 17, 2):
            conns[i].close()
            gone = ids[i]
            ids[i] = None
            left = [c for c in ids if c is not None]
            for j, other in enumerate(conns):
                if ids[j] is not None:
                    self.expect_peers(other, [c for c in left if c != ids[j]],
                                      who="crowd member after %s left" % gone)
        self.expect_nothing(*[c for j, c in enumerate(conns) if ids[j] is not None])

    def test_peer_closing_tells_peers(self):
        a, b, a_id, b_id = self.pair((0, 0), (1, 1), matched=True)
        b.close()
        self.expect_peers(a, [])
        self.expect_nothing(a)

    def test_refresh_returns_current_list_only_to_requester(self):
        m, (a, b, c), (a_id, b_id, c_id) = self.place(("a", 0, 0), ("b", 1, 0), ("c", 0, 300))
        for _ in range(3):
            self.refresh(a)
            self.expect_peers(a, [b_id])
            self.refresh(c)
            self.expect_peers(c, [])
        self.expect_nothing(a, b, c)

    # ------------------------------------------- several messages at once
    @staticmethod
    def frames(*objs):
        """Several client frames as one write, so the server reads them together."""
        return b"".join(encode_frame(0x1, json.dumps(o).encode()) for o in objs)

    def test_messages_read_together_are_answered_in_order(self):
        a = self.join(self.cid("a"), self.new_map(), 0, 0)
        a_id = self.cid("a")
        a.raw_send(self.frames({"type": "RequestPeerRefresh"},
                               {"type": "SendOffer", "data": {"target_id": a_id, "offer": "x"}}))
        self.expect_peers(a, [])
        self.assertEqual(a.recv_json(), {"type": "Error", "data": "Cannot send to yourself"})
        self.expect_nothing(a)

    def test_refreshes_read_together_each_get_a_reply(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        self.join(b_id, m, 3, 0, expect=[a_id])
        self.expect_peers(a, [b_id])
        a.raw_send(self.frames(*[{"type": "RequestPeerRefresh"}] * 3))
        for i in range(3):
            self.expect_peers(a, [b_id], who="reply %d" % (i + 1))
        self.expect_nothing(a)

    def test_changes_read_together_make_one_list(self):
        """A peer's set changes twice within one read: it gets one list, the final one."""
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 100, 0)
        def upd(x):
            return {"type": "UpdatePosition",
                    "data": {"client_id": b_id, "map_id": m, "x": x, "y": 0}}
        b.raw_send(self.frames(upd(5), upd(100), upd(10)))  # meets a, leaves, meets again
        self.expect_matched(a, a_id, b, b_id)
        self.expect_nothing(a, b)

    def test_model_random_walk(self):
        """Random moves of 8 clients checked against a model of the spec's rules."""
        rng = random.Random(20240611)
        m = self.new_map()
        names = ["w%d" % i for i in range(8)]
        ids = {n: self.cid(n) for n in names}
        state = {}   # name -> (map, channel, x, y)
        matched = set()  # frozenset pairs
        conns = {}

        def d2(p, q):
            return (p[2] - q[2]) ** 2 + (p[3] - q[3]) ** 2

        def peers_of(n):
            return sorted(ids[o] for o in names if frozenset((n, o)) in matched)

        def apply(n, new):
            """Update the model; return the names whose lists changed."""
            old_lists = {o: peers_of(o) for o in state}
            state[n] = new
            for o in state:
                if o == n:
                    continue
                key = frozenset((n, o))
                p, q = state[n], state[o]
                same = p[0] == q[0] and p[1] == q[1]
                was = key in matched
                now = same and (d2(p, q) <= 400 or (was and d2(p, q) <= 625))
                if now:
                    matched.add(key)
                else:
                    matched.discard(key)
            return [o for o in state if o != n and peers_of(o) != old_lists.get(o)]

        for n in names:
            new = (m, 0, rng.randrange(0, 50), rng.randrange(0, 50))
            changed = apply(n, new)
            conns[n] = self.connect()
            self.assertEqual(sorted(self.register(conns[n], ids[n], new[0], new[2], new[3],
                                                  new[1])), peers_of(n))
            for o in changed:
                self.expect_peers(conns[o], peers_of(o), who="%s after %s joined" % (o, n))

        for step in range(150):
            n = rng.choice(names)
            old = state[n]
            roll = rng.random()
            if roll < 0.07:
                new = (m + rng.choice([0, 1]), old[1], old[2], old[3])
            elif roll < 0.14:
                new = (old[0], rng.choice([0, 1]), old[2], old[3])
            elif roll < 0.5:
                new = (old[0], old[1], old[2] + rng.randrange(-4, 5), old[3] + rng.randrange(-4, 5))
            else:
                new = (old[0], old[1], rng.randrange(0, 50), rng.randrange(0, 50))
            before = peers_of(n)
            changed = apply(n, new)
            self.move(conns[n], ids[n], new[0], new[2], new[3], new[1])
            if peers_of(n) != before:
                self.expect_peers(conns[n], peers_of(n), who="step %d: mover %s" % (step, n))
            # barrier: the move is processed before the next one is sent
            self.refresh(conns[n])
            self.expect_peers(conns[n], peers_of(n), who="step %d: refresh of %s" % (step, n))
            for o in changed:
                self.expect_peers(conns[o], peers_of(o), who="step %d: %s after %s moved"
                                  % (step, o, n))
        self.expect_nothing(*conns.values())



class CellBoundaryTest(ServerPerTestCase):
    """The grid's cell is the largest query radius of the enabled match filters
    (proximity's leave_radius, a script's query_radius; docs/design.md), so a
    pair straddling cell edges is found only if the grid is sized from the
    filters actually configured. Each server here has another cell size; the
    clients stand just either side of the edges of that size's cells, at
    negative and positive coordinates, at exactly the enter radius, one past
    it, diagonally, and at exactly the leave radius."""

    EDGES = (-3, -1, 0, 1, 4)   # edge k * cell

    def straddle(self, radius, leave_radius, cell, map_id=None):
        """Check every edge of cells of size `cell` under the rule radius /
        leave_radius (map_id: a map whose rule that is; else fresh maps). Each
        group has a game of its own, so groups never see each other."""
        d = math.isqrt(radius * radius // 2)   # a diagonal step within radius
        for k in self.EDGES:
            e = k * cell
            # around the corner (e, e): p just inside cell (k-1, k-1), q just inside (k, k)
            group = [("p", e - 1, e - 1), ("q", e, e),
                     ("px", e - 1 + radius, e - 1), ("py", e - 1, e - 1 + radius),
                     ("pd", e - 1 + d, e - 1 + d), ("qx", e - radius, e),
                     ("qy", e, e - radius), ("qd", e - d, e - d),
                     ("beyond", e + radius, e - 1)]        # radius + 1 from p
            game = self.new_map()
            m, conns, ids = self.place(*group, map_id=map_id, radius=radius, game_id=game)
            self.expect_lists(conns, [[ids[j] for j in self.near(group, i, radius)]
                                      for i in range(len(group))],
                              who="edge %d x %d" % (k, cell))
            # a pair across the edge x = e walks out to exactly leave_radius and one past it
            game = self.new_map()
            m, (a, b), (a_id, b_id) = self.place(("a", e - 1, e), ("b", e - 1 + radius, e),
                                                 map_id=map_id, radius=radius, game_id=game)
            for x in (e - 1 + leave_radius, e - 1 - radius, e - 1 - leave_radius):
                self.move(b, b_id, m, x, e, game_id=game)
                self.expect_lists([a, b], [[b_id], [a_id]], who="b at %d, edge %d" % (x, e))
            self.move(b, b_id, m, e - 2 - leave_radius, e, game_id=game)
            self.expect_peers(b, [], who="b one past leave_radius")
            self.expect_peers(a, [], who="a, b one past leave_radius")
            if leave_radius > radius:
                self.move(b, b_id, m, e - 1 + leave_radius, e, game_id=game)
                self.expect_lists([a, b], [[], []], who="b back within leave_radius only")
            self.move(b, b_id, m, e - 1 + radius, e, game_id=game)
            self.expect_peers(b, [a_id], who="b back within radius")
            self.expect_peers(a, [b_id], who="a, b back within radius")
            self.close_connections()
            self._conns = []

    @staticmethod
    def near(group, i, radius):
        """The indexes of the spots of group within radius of group[i]."""
        _, x, y = group[i]
        return [j for j, (_, px, py) in enumerate(group)
                if j != i and (px - x) ** 2 + (py - y) ** 2 <= radius * radius]

    def test_pairs_across_cell_boundaries(self):
        for radius, leave in ((20, 25), (5, 12), (37, 37), (100, 130)):
            with self.subTest(radius=radius, leave_radius=leave):
                srv = self.start(hooks=make_hooks(radius=radius, leave_radius=leave))
                self.straddle(radius, leave, cell=leave)
                srv.stop()

    def test_cells_sized_by_a_wider_script(self):
        """A match filter in Lua whose query_radius is 1000 (it passes every pair):
        cells of 1000 under proximity's 20 / 25."""
        self.start(hooks=make_hooks() + [lua_hook("radius", fixture_script("radius"),
                                                  settings={"radius": 1000})])
        self.straddle(20, 25, cell=1000)

    def test_cells_sized_by_a_script_that_matches_farther(self):
        """map_range makes map 7 hear within 60 / 70 in front of proximity's 20 / 25:
        cells of 70, and both rules must hold across their edges."""
        hooks = make_hooks()
        hooks.insert(1, lua_hook("map_range", stock_script("map_range"), settings={
            "maps": [{"map_id": 7, "radius": 60, "leave_radius": 70}]}))
        self.start(hooks=hooks)
        self.straddle(60, 70, cell=70, map_id=7)
        self.straddle(20, 25, cell=70)


class CustomRadiusTest(EarshotTestCase):
    """The proximity plugin's settings come from its config block."""
    hooks = make_hooks(radius=5, leave_radius=8)

    def test_configured_radius_and_leave_radius(self):
        m = self.new_map()
        a_id, b_id, c_id = self.cid("a"), self.cid("b"), self.cid("c")
        a = self.join(a_id, m, 0, 0)
        c = self.join(c_id, m, -6, 0)  # 6 > radius 5
        b = self.join(b_id, m, 3, 4, expect=[a_id])  # exactly 5 from a
        self.expect_peers(a, [b_id])
        self.move(b, b_id, m, 8, 0)  # 8 = leave_radius: kept
        self.expect_nothing(a, b, c)
        self.move(b, b_id, m, 9, 0)
        self.expect_parted(b, a)
        self.move(b, b_id, m, 6, 0)  # within 8 but not 5: no match
        self.expect_nothing(a, b, c)
        self.move(b, b_id, m, 5, 0)
        self.expect_matched(b, b_id, a, a_id)
        self.move(c, c_id, m, -5, 0)  # 5 from a, 10 from b
        self.expect_peers(c, [a_id])
        self.expect_peers(a, [b_id, c_id])
        self.expect_nothing(a, b, c)

class PollLoopMatchingTest(MatchingTest):
    """The same rules on libwebsockets' own poll() loop, which flushes the
    notifications held for the end of an iteration after each lws_service()."""
    config = {"server": {"event_loop": "poll"}}


if __name__ == "__main__":
    unittest.main()
