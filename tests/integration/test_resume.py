"""Resuming a dropped connection (PROTOCOL.md, Protocol v1.1: "Resuming a
dropped connection"): the Session message, holds, resumes from any address,
wrong and expired tokens, expiry, clean goodbyes, the relay queue, grace 0,
and clients that never opted in."""

import os
import re
import shutil
import tempfile
import time
import unittest

from harness import EarshotTestCase, OTHER_SOURCE, lua_hook, make_hooks
from wsclient import ConnectionClosed, NoMessage

NORMAL_CLOSE = 1000
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# A join and leave log of the test's own (needs grant io).
LOG_SCRIPT = """
local path = earshot.settings.file
local function log(line)
  local f = io.open(path, "a")
  f:write(line, "\\n")
  f:close()
end
function on_join(req)
  log("join " .. req.client_id .. " " .. tostring(req.resume))
end
function on_leave(c, why)
  log("leave " .. c.client_id .. " " .. why)
end
"""


def lose(ws):
    """Cut the connection without a close frame, as a network drop does."""
    ws.abort(reset=True)


class ResumeBase(EarshotTestCase):
    grace = 30.0
    queue_messages = 4
    extra_config = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="earshot-resume-")
        cls.log_file = os.path.join(cls.tmp, "events.log")
        script = os.path.join(cls.tmp, "log.lua")
        with open(script, "w", encoding="utf-8") as f:
            f.write(LOG_SCRIPT)
        cls.config = {"session": {"resume_grace": float(cls.grace),
                                  "resume_queue_messages": cls.queue_messages,
                                  "resume_queue_bytes": 4096}}
        cls.config.update(cls.extra_config)
        cls.hooks = [lua_hook("log", script, grant=["io"], settings={"file": cls.log_file})] + \
            make_hooks()
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def events(self, client_id):
        try:
            with open(self.log_file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines if line.split(" ")[1] == client_id]

    def position(self, client_id, map_id, x, y, channel=0, game_id=0, **extra):
        msg = super().position(client_id, map_id, x, y, channel, game_id)
        msg["data"].update(extra)
        return msg

    def join_resumable(self, client_id, map_id, x, y, expect=(), **conn_args):
        """Register with "resumable": true; the first NearbyPeers, then a Session."""
        ws = self.connect(**conn_args)
        ws.send_json(self.position(client_id, map_id, x, y, resumable=True))
        msg = ws.recv_json()
        self.assertEqual(msg.get("type"), "NearbyPeers", msg)
        self.assertEqual(sorted(msg["data"]), sorted(expect))
        return ws, self.expect_session(ws)

    def expect_session(self, ws):
        msg = ws.recv_json()
        self.assertEqual(msg.get("type"), "Session", msg)
        self.assertEqual(sorted(msg["data"]), ["grace", "resume_token"], msg)
        self.assertEqual(msg["data"]["grace"], self.grace)
        token = msg["data"]["resume_token"]
        self.assertRegex(token, TOKEN)
        return token

    def resume(self, client_id, map_id, x, y, token, **conn_args):
        ws = self.connect(**conn_args)
        ws.send_json(self.position(client_id, map_id, x, y, resume_token=token))
        return ws

    def held_pair(self):
        """a (resumable) and b matched; a's connection lost and held.
        Returns (map, b, a_id, b_id, token)."""
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a, token = self.join_resumable(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        held = self.value(self.metrics(), "earshot_held_sessions")
        lose(a)
        self.wait_metric("earshot_held_sessions", held + 1)
        return m, b, a_id, b_id, token


class ResumeTest(ResumeBase):

    def test_session_once_per_connection(self):
        m = self.new_map()
        a_id = self.cid("a")
        a, token = self.join_resumable(a_id, m, 0, 0)
        a.send_json(self.position(a_id, m, 1, 0, resumable=True))
        a.send_json({"type": "RequestPeerRefresh"})
        self.expect_peers(a, [])
        a.expect_nothing()

    def test_held_session_peer_sees_no_change(self):
        before = self.metrics()
        m, b, a_id, b_id, token = self.held_pair()
        b.expect_nothing(0.5)
        self.refresh(b)
        self.expect_peers(b, [a_id])
        after = self.metrics()
        self.assertDelta(before, after, "earshot_clients", 2)  # a is still registered
        self.assertDelta(before, after, "earshot_connections", 1)
        self.assertEqual(self.events(a_id), ["join %s false" % a_id])

    def test_resume_from_another_address(self):
        before = self.metrics()
        m, b, a_id, b_id, token = self.held_pair()
        n = self.resume(a_id, m, 0, 0, token, source_addr=OTHER_SOURCE)
        self.expect_peers(n, [b_id])
        fresh = self.expect_session(n)
        self.assertNotEqual(fresh, token)
        b.expect_nothing(0.5)
        self.assertEqual(self.events(a_id), ["join %s false" % a_id, "join %s true" % a_id])
        after = self.metrics()
        self.assertDelta(before, after, "earshot_resumes_total", 1)
        self.assertDelta(before, after, "earshot_held_sessions", 0)
        # relays flow both ways again
        self.relay(b, b_id, n, a_id, "o")
        self.relay(n, a_id, b, b_id, "a", kind="answer")

    def test_live_looking_connection_is_replaced(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        old, token = self.join_resumable(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(old, [b_id])
        n = self.resume(a_id, m, 0, 0, token)
        self.expect_peers(n, [b_id])
        self.expect_session(n)
        self.expect_close_code(old, NORMAL_CLOSE, who="replaced connection")  # and no Error
        b.expect_nothing(0.5)
        self.assertEqual(self.events(a_id), ["join %s false" % a_id, "join %s true" % a_id])

    def test_wrong_token(self):
        m, b, a_id, b_id, token = self.held_pair()
        wrong = ("B" if token[0] == "A" else "A") + token[1:]
        n = self.resume(a_id, m, 0, 0, wrong)
        self.expect_error(n, "invalid resume token")
        self.assert_unregistered(n)
        n.send_json(self.position(a_id, m, 0, 0, resume_token="not valid!"))
        self.expect_error(n, "Invalid UpdatePosition: field 'resume_token' must be 1 to 128 "
                             "base64url characters (A-Z a-z 0-9 - _)")
        b.expect_nothing(0.3)
        held = self.value(self.metrics(), "earshot_held_sessions")
        # the right one still works on the same connection
        n.send_json(self.position(a_id, m, 0, 0, resume_token=token))
        self.expect_peers(n, [b_id])
        self.expect_session(n)
        self.wait_metric("earshot_held_sessions", held - 1)

    def test_used_token_is_worthless(self):
        m, b, a_id, b_id, token = self.held_pair()
        n = self.resume(a_id, m, 0, 0, token)
        self.expect_peers(n, [b_id])
        self.expect_session(n)
        again = self.resume(a_id, m, 0, 0, token)
        self.expect_error(again, "invalid resume token")
        n.expect_nothing()

    def test_disconnect_ends_at_once(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a, token = self.join_resumable(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        a.send_json({"type": "Disconnect", "data": None})
        self.expect_peers(b, [])
        self.assertEqual(a.expect_close(), NORMAL_CLOSE)
        self.assertEqual(self.events(a_id)[-1], "leave %s disconnect" % a_id)
        self.expect_error(self.resume(a_id, m, 0, 0, token), "invalid resume token")

    def test_close_frame_ends_at_once(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a, token = self.join_resumable(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        held = self.value(self.metrics(), "earshot_held_sessions")
        a.close(1000)
        self.expect_peers(b, [])
        self.assertMetric(self.metrics(), "earshot_held_sessions", held)
        self.assertEqual(self.events(a_id)[-1], "leave %s closed" % a_id)
        self.expect_error(self.resume(a_id, m, 0, 0, token), "invalid resume token")

    def test_relays_queued_in_order_and_bounded(self):
        before = self.metrics()
        m, b, a_id, b_id, token = self.held_pair()
        kept = [("offer", "o1"), ("candidate", "c1"), ("answer", "a1"), ("candidate", "c2")]
        for kind, payload in kept:
            self.send_relay(b, kind, a_id, payload)
        b.expect_nothing(0.3)
        self.send_relay(b, "offer", a_id, "o2")
        self.expect_error(b, "Client %s is reconnecting" % a_id)
        self.send_relay(b, "candidate", a_id, "c3")  # dropped silently
        self.send_relay(b, "answer", a_id, "a2")
        self.expect_error(b, "Client %s is reconnecting" % a_id)
        b.expect_nothing(0.3)
        n = self.resume(a_id, m, 0, 0, token)
        self.expect_peers(n, [b_id])
        self.expect_session(n)
        for kind, payload in kept:
            self.expect_relay(n, kind, b_id, payload)
        n.expect_nothing()
        self.assertDelta(before, self.metrics(), "earshot_resume_queued_relays_total", 4)

    def test_resume_at_a_new_position(self):
        m, b, a_id, b_id, token = self.held_pair()
        n = self.resume(a_id, m, 400, 0, token)
        self.expect_peers(n, [])
        self.expect_session(n)
        self.expect_peers(b, [])
        self.assertEqual(self.events(a_id), ["join %s false" % a_id, "join %s true" % a_id])

    def test_not_opted_in_leaves_at_once(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        a.expect_nothing()  # no Session
        lose(a)
        self.expect_peers(b, [])
        self.assertEqual(self.events(a_id)[-1], "leave %s closed" % a_id)
        n = self.connect()
        n.send_json(self.position(a_id, m, 0, 0, resume_token="AAAA"))
        self.expect_error(n, "invalid resume token")

    def test_bad_resumable_field(self):
        ws = self.connect()
        ws.send_json(self.position(self.cid("a"), self.new_map(), 0, 0, resumable="yes"))
        self.expect_error(ws, "Invalid UpdatePosition: field 'resumable' must be true or false")
        self.assert_unregistered(ws)


class ResumeExpiryTest(ResumeBase):
    grace = 1.0

    def test_hold_expires_peers_told(self):
        before = self.metrics()
        m, b, a_id, b_id, token = self.held_pair()
        self.expect_peers(b, [], timeout=5.0)
        self.assertEqual(self.events(a_id)[-1], "leave %s closed" % a_id)
        self.expect_error(self.resume(a_id, m, 0, 0, token), "invalid resume token")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_resume_holds_expired_total", 1)
        self.assertDelta(before, after, "earshot_held_sessions", 0)


class ResumePingTimeoutTest(ResumeBase):
    """A dead TCP found by pings (server.ping_interval = 1) is a lost connection."""
    extra_config = {"server": {"ping_interval": 1}}

    def test_unanswered_ping_holds_the_session(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        deaf, token = self.join_resumable(a_id, m, 0, 0)
        deaf.auto_pong = False
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(deaf, [b_id])
        before = self.metrics()
        deadline = time.monotonic() + 6.0
        closed = None
        while closed is None and time.monotonic() < deadline:
            b.expect_nothing(0.1)  # answers its own pings; hears nothing of a
            try:
                deaf.recv_json(0.1)
            except NoMessage:
                pass
            except ConnectionClosed as exc:
                closed = exc
        self.assertIsNotNone(closed, "an unanswered ping did not drop the connection")
        self.assertEqual(closed.code, 1001)
        b.expect_nothing(0.3)
        after = self.metrics()
        self.assertDelta(before, after, "earshot_ping_timeouts_total", 1)
        self.assertDelta(before, after, "earshot_held_sessions", 1)
        n = self.resume(a_id, m, 0, 0, token)
        self.expect_peers(n, [b_id])
        self.expect_session(n)
        b.expect_nothing(0.3)


class GraceZeroTest(ResumeBase):
    grace = 0.0

    def test_no_session_no_hold(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.connect()
        a.send_json(self.position(a_id, m, 0, 0, resumable=True))
        self.expect_peers(a, [])
        b = self.join(b_id, m, 3, 4, expect=[a_id])
        self.expect_peers(a, [b_id])
        a.expect_nothing()
        lose(a)
        self.expect_peers(b, [])
        self.expect_error(self.resume(a_id, m, 0, 0, "AAAA"), "invalid resume token")


if __name__ == "__main__":
    unittest.main()
