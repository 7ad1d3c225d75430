"""Lua scripts in the hook chains of the real server (docs/lua.md).

The stock scripts come from $EARSHOT_SOURCE_DIR/lua, the broken ones from
$EARSHOT_SOURCE_DIR/tests/lua. Scripts are written into the config with an
explicit absolute `path`, so the tests do not depend on the server's
default script folder.
"""

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
import unittest

from harness import EarshotTestCase, fixture_script, lua_hook, make_hooks, stock_script


def relay_guard():
    return {"type": "plugin", "name": "relay_guard", "settings": {"grace": 30.0}}


def proximity():
    return {"type": "plugin", "name": "proximity",
            "settings": {"radius": 20, "leave_radius": 25}}


STOCK_MAPS = [
    {"map_id": 3, "radius": 8, "leave_radius": 10},
    {"map_id": 7, "radius": 40, "leave_radius": 45},
]

SECRET = "hmac-secret"


def hmac_token(client_id, secret=SECRET):
    return hmac.new(secret.encode(), client_id.encode(), hashlib.sha256).hexdigest()


def wait_for(predicate, what, timeout=3.0):
    """Poll predicate() until it returns something true (a wait, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting for %s" % what)
        time.sleep(0.02)


def json_lines(text):
    """The lines of text that are JSON objects, parsed."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def without_ts(testcase, event):
    """Check event["ts"] is a number and return the event without it."""
    testcase.assertIn("ts", event, event)
    ts = event["ts"]
    testcase.assertTrue(isinstance(ts, (int, float)) and not isinstance(ts, bool),
                        "ts is not a number: %r" % (ts,))
    rest = dict(event)
    del rest["ts"]
    return rest


# ----------------------------------------------------------------- auth_token
class AuthTokenTest(EarshotTestCase):
    """auth_token first in the chain, with a shared token and an HMAC secret."""

    hooks = [
        lua_hook("auth_token", stock_script("auth_token"),
            settings={"tokens": ["change-me"], "secret": SECRET, "query_param": "token",
                      "reason": "invalid token"}),
        relay_guard(),
        proximity(),
    ]

    def refused(self, ws, client_id, map_id):
        self.move(ws, client_id, map_id, 0, 0)
        self.expect_error(ws, "invalid token")
        self.assert_unregistered(ws)

    def test_no_token_refused(self):
        ws = self.connect()
        self.refused(ws, self.cid("anon"), self.new_map())

    def test_wrong_token_refused(self):
        ws = self.connect(path="/?token=nope")
        self.refused(ws, self.cid("wrong"), self.new_map())
        ws = self.connect(headers={"Authorization": "Bearer nope"})
        self.refused(ws, self.cid("wrong2"), self.new_map())

    def test_refused_client_is_unseen(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0, path="/?token=change-me")
        ws = self.connect()
        self.refused(ws, self.cid("b"), m)
        # a nearby registered client hears nothing of it
        self.expect_nothing(a)
        self.refresh(a)
        self.expect_peers(a, [], who=a_id)
        # the refused connection still is refused on a second try
        self.refused(ws, self.cid("b"), m)

    def test_query_token_registers(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0, path="/?token=change-me")
        b = self.join(b_id, m, 3, 4, path="/?x=1&token=change-me", expect=[a_id])
        self.expect_peers(a, [b_id], who=a_id)
        self.refresh(b)
        self.expect_peers(b, [a_id], who=b_id)

    def test_bearer_header_registers(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0, headers={"Authorization": "Bearer change-me"})
        self.refresh(a)
        self.expect_peers(a, [], who=a_id)

    def test_hmac_token_registers(self):
        m = self.new_map()
        a_id, b_id = self.cid("hmac-a"), self.cid("hmac-b")
        self.join(a_id, m, 0, 0, path="/?token=" + hmac_token(a_id))
        self.join(b_id, m, 0, 1, headers={"Authorization": "Bearer " + hmac_token(b_id)},
                  expect=[a_id])
        # another client's token does not fit
        ws = self.connect(path="/?token=" + hmac_token(a_id))
        self.refused(ws, self.cid("hmac-c"), m)


# ------------------------------------------------------------------ event_log
class CLoopsTest(EarshotTestCase):
    """A join hook that runs the string library's worst cases on the client's
    id (tests/lua/c_loops.lua): each call is stopped at the instruction
    limit, the client gets "internal error", and a client already in the
    world is served all along."""
    hooks = [lua_hook("c_loops", fixture_script("c_loops"), settings={})] + make_hooks()

    def test_bombs_are_stopped_and_others_unaffected(self):
        m = self.new_map()
        # the script decides joins by id; w stays connected, asking "ok"
        w = self.connect()
        w.send_json(self.position("patterns", m, 0, 0))
        self.expect_error(w, "13 5 8700 300 3 k abc nil 4 (a(b)c)")
        before = self.metrics()
        for bomb in ("find_bomb", "match_bomb", "gmatch_bomb", "gsub_bomb", "rep_bomb",
                     "concat_bomb", "concat_op_bomb", "plain_find_bomb"):
            with self.subTest(bomb=bomb):
                b = self.connect()
                b.send_json(self.position(bomb, m, 0, 0))
                self.expect_error(b, "internal error", timeout=10.0)
                # the other client's next message is answered
                w.send_json(self.position("ok", m, 0, 0))
                self.expect_error(w, "ok")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_hook_errors_total", 8,
                         link="c_loops", cause="instruction_limit")


class EventLogFileTest(EarshotTestCase):
    """event_log writing to a file (grant io), last in the chain."""

    @classmethod
    def setUpClass(cls):
        cls.log_dir = tempfile.mkdtemp(prefix="earshot-eventlog-")
        cls.log_file = os.path.join(cls.log_dir, "events.jsonl")
        cls.hooks = [
            relay_guard(),
            proximity(),
            lua_hook("event_log", stock_script("event_log"), grant=["io"],
                settings={"file": cls.log_file, "relays": True}),
        ]
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.log_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.log_dir, ignore_errors=True)

    def read_events(self):
        with open(self.log_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                self.fail("event_log line is not JSON: %r" % line)
        return events

    def test_join_relay_leave(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (5, 5))
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "sdp-offer"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "sdp-offer"}})
        b.send_json({"type": "Disconnect", "data": None})
        # a hears of it after the leave hooks ran
        self.expect_peers(a, [], who=a_id)
        events = [without_ts(self, e) for e in self.read_events()]
        self.assertEqual(events, [
            {"event": "join", "client_id": a_id, "address": "127.0.0.1", "game_id": 0,
             "map_id": m, "channel": 0},
            {"event": "join", "client_id": b_id, "address": "127.0.0.1", "game_id": 0,
             "map_id": m, "channel": 0},
            {"event": "relay", "kind": "offer", "from": a_id, "to": b_id, "matched": True,
             "bytes": len("sdp-offer")},
            {"event": "leave", "client_id": b_id, "reason": "disconnect"},
        ])
        # one JSON object per line, nothing else in the file
        with open(self.log_file, encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(text.endswith("\n"), repr(text[-50:]))
        self.assertEqual(len(text.splitlines()), 4, text)


class EventLogStderrTest(EarshotTestCase):
    """event_log with file = "": the lines go to the server's stderr."""

    hooks = [
        relay_guard(),
        proximity(),
        lua_hook("event_log", stock_script("event_log"), settings={"file": ""}),
    ]

    def events_about(self, client_id):
        return [e for e in json_lines(self.server.output())
                if e.get("client_id") == client_id or e.get("from") == client_id]

    def test_lines_on_stderr(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 2, 3, channel=4, game_id=5)
        joined = wait_for(lambda: self.events_about(a_id), "the join line on stderr")
        self.assertEqual([without_ts(self, e) for e in joined], [
            {"event": "join", "client_id": a_id, "address": "127.0.0.1", "game_id": 5,
             "map_id": m, "channel": 4},
        ])
        a.send_json({"type": "Disconnect", "data": None})
        a.expect_close()
        events = wait_for(lambda: len(self.events_about(a_id)) >= 2 and self.events_about(a_id),
                          "the leave line on stderr")
        self.assertEqual([without_ts(self, e) for e in events], [
            {"event": "join", "client_id": a_id, "address": "127.0.0.1", "game_id": 5,
             "map_id": m, "channel": 4},
            {"event": "leave", "client_id": a_id, "reason": "disconnect"},
        ])


# ------------------------------------------------------------------ map_range
class MapRangeTest(EarshotTestCase):
    """map_range in front of proximity: map 3 radius 8, map 7 radius 40.

    The maps are fixed by the settings, so each test keeps to its own game_id.
    """

    hooks = [
        relay_guard(),
        lua_hook("map_range", stock_script("map_range"), settings={"maps": STOCK_MAPS}),
        proximity(),
    ]

    def pair(self, map_id, dx, dy, matched):
        g = self._n
        a_id, b_id = self.cid("a%d" % len(self._conns)), self.cid("b%d" % len(self._conns))
        a = self.join(a_id, map_id, 0, 0, game_id=g)
        b = self.join(b_id, map_id, dx, dy, game_id=g, expect=[a_id] if matched else [])
        if matched:
            self.expect_peers(a, [b_id], who=a_id)
        else:
            self.expect_nothing(a)
        return a, b, a_id, b_id

    def test_library_9_apart_not_matched(self):
        self.pair(3, 9, 0, matched=False)

    def test_library_8_apart_matched(self):
        self.pair(3, 8, 0, matched=True)

    def test_library_hysteresis(self):
        g = self._n
        a, b, a_id, b_id = self.pair(3, 8, 0, matched=True)
        self.move(b, b_id, 3, 10, 0, game_id=g)  # within leave_radius 10: still matched
        self.expect_nothing(a, b)
        self.move(b, b_id, 3, 11, 0, game_id=g)
        self.expect_peers(a, [], who=a_id)
        self.expect_peers(b, [], who=b_id)

    def test_arena_35_apart_matched(self):
        self.pair(7, 35, 0, matched=True)

    def test_arena_40_apart_matched(self):
        # the grid has to look as far as the script's query_radius
        self.pair(7, 24, 32, matched=True)

    def test_arena_41_apart_not_matched(self):
        self.pair(7, 41, 0, matched=False)

    def test_other_map_21_apart_not_matched(self):
        self.pair(1, 21, 0, matched=False)

    def test_other_map_20_apart_matched(self):
        self.pair(1, 20, 0, matched=True)


# ------------------------------------------------------------ broken scripts
class BrokenJoinScriptTest(EarshotTestCase):
    """A script whose on_join raises a runtime error (default on_error: deny)."""

    hooks = [
        lua_hook("broken_join", fixture_script("broken_join")),
        relay_guard(),
        proximity(),
    ]

    def test_join_refused_with_internal_error(self):
        m = self.new_map()
        ws = self.connect()
        self.move(ws, self.cid("a"), m, 0, 0)
        self.expect_error(ws, "internal error")
        self.assert_unregistered(ws)
        # the same connection and another one: refused again, nothing stuck
        self.move(ws, self.cid("a"), m, 0, 0)
        self.expect_error(ws, "internal error")
        other = self.connect()
        self.move(other, self.cid("b"), m, 1, 1)
        self.expect_error(other, "internal error")

    def test_server_keeps_serving(self):
        ws = self.connect()
        self.move(ws, self.cid("a"), self.new_map(), 0, 0)
        self.expect_error(ws, "internal error")
        ws.send_text("{not json")
        self.expect_error_prefix(ws, "")
        self.refresh(ws)
        self.expect_error(ws, "Client must send UpdatePosition first.")
        status, _, body = self.get("/healthz")
        self.assertEqual(status, 200)
        ws.send_json({"type": "Disconnect", "data": None})
        ws.expect_close()

    def test_failure_is_logged_with_file_and_line(self):
        ws = self.connect()
        self.move(ws, self.cid("logged"), self.new_map(), 0, 0)
        self.expect_error(ws, "internal error")
        wait_for(lambda: "broken_join.lua:5:" in self.server.output(),
                 "a log line naming broken_join.lua:5:")
        self.assertIn("broken_join", self.server.output())


class LoopingMatchFilterTest(EarshotTestCase):
    """A match_filter that never returns, in front of proximity: every call is
    stopped at the instruction limit, answered with match's default on_error
    (allow = pass), and proximity decides."""

    hooks = [
        relay_guard(),
        lua_hook("spin_match", fixture_script("spin_match")),
        proximity(),
    ]

    def test_clients_still_match(self):
        m, a, b, a_id, b_id = self.matched_pair((0, 0), (3, 4))
        self.refresh(a)
        self.expect_peers(a, [b_id], who=a_id)
        # moves still work both ways
        self.move(b, b_id, m, 100, 100)
        self.expect_peers(a, [], who=a_id)
        self.expect_peers(b, [], who=b_id)
        self.move(b, b_id, m, 10, 10)
        self.expect_peers(a, [b_id], who=a_id)
        self.expect_peers(b, [a_id], who=b_id)
        # relays between them go through
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "o"}})
        self.assertIn("instruction limit", self.server.output())

    def test_far_clients_do_not_match(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        self.join(self.cid("b"), m, 21, 0)
        self.expect_nothing(a)


class JoinHeadersTest(EarshotTestCase):
    """on_join's req.headers holds the upgrade request's headers under lower-case
    names (docs/lua.md): those libwebsockets knows by name, and the custom ones
    server.join_headers lists. headers.lua refuses every join with the x-game-*
    headers it was given as its reason, so the client's Error shows exactly
    what reached the script."""

    config = {"server": {"join_headers": ["X-Game-Token", "x-game-region"]}}
    hooks = [
        lua_hook("headers", fixture_script("headers")),
        relay_guard(),
        proximity(),
    ]

    def refused_with(self, headers, reason):
        ws = self.connect(headers=headers)
        self.move(ws, self.cid("a"), self.new_map(), 0, 0)
        self.expect_error(ws, reason)
        self.assert_unregistered(ws)

    def test_request_without_custom_headers(self):
        self.refused_with({"Authorization": "Bearer t", "X-Forwarded-For": "203.0.113.7"},
                          "no x-game- headers")

    def test_custom_header_reaches_on_join(self):
        self.refused_with({"X-Game-Token": "abc"}, "x-game-token=abc")

    def test_custom_headers_arrive_with_lower_case_names(self):
        self.refused_with({"X-GAME-REGION": "eu-west", "x-Game-Token": "abc 123",
                           "Authorization": "Bearer t"},
                          "x-game-region=eu-west, x-game-token=abc 123")

    def test_custom_headers_not_listed_stay_out(self):
        self.refused_with({"X-Game-Token": "abc", "X-Game-Secret": "s"}, "x-game-token=abc")


class MeddlingScriptTest(EarshotTestCase):
    """A script may do anything to the (reused) tables it is handed: meddler.lua
    gives them a __newindex that raises when client "meddle" moves. The server
    must carry on serving everyone (docs/lua.md: a broken script cannot take
    the server down)."""

    hooks = [
        relay_guard(),
        lua_hook("meddler", fixture_script("meddler")),
        proximity(),
    ]

    def test_next_position_update_is_served(self):
        m = self.new_map()
        meddle = self.join("meddle", m, 0, 0)
        b_id = self.cid("b")
        self.join(b_id, m, 3, 4, expect=["meddle"])
        self.expect_peers(meddle, [b_id], who="meddle")


if __name__ == "__main__":
    unittest.main()
