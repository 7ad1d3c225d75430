"""Faults: the server killed under load and restarted on the same port (every
client reconnects and ends up with exactly the peers its position implies),
and a plugin whose init fails, at startup (exit 2, the config file:line and
the plugin's reason) and on reload (reported, the old config stays in force).

Every test runs its own earshot processes.
"""

import os
import signal
import subprocess
import time
import unittest

import harness
from harness import HOST, EarshotServer, ServerPerTestCase, earshot_bin, free_port, make_hooks
from wsclient import ConnectionClosed, HandshakeError, NoMessage, WebSocket, http_get


# ============================================== expected lists from positions
def _key(pos):
    """(game_id, map_id, channel, x, y) of one position given as a tuple
    (map_id, x, y[, channel[, game_id]]), a dict or an object with those names."""
    if isinstance(pos, dict):
        return (pos.get("game_id", 0), pos["map_id"], pos.get("channel", 0), pos["x"], pos["y"])
    if hasattr(pos, "map_id"):
        return (getattr(pos, "game_id", 0), pos.map_id, getattr(pos, "channel", 0), pos.x, pos.y)
    map_id, x, y = pos[0], pos[1], pos[2]
    channel = pos[3] if len(pos) > 3 else 0
    game_id = pos[4] if len(pos) > 4 else 0
    return (game_id, map_id, channel, x, y)


def expected_peers(positions, radius=20):
    """The NearbyPeers list each client must hold, computed from positions alone.

    positions: {client_id: position}; a position is a tuple
    (map_id, x, y[, channel[, game_id]]), a dict with keys map_id, x, y and
    optional channel, game_id, or any object with those attributes (channel
    and game_id default to 0, as on the wire).

    Two clients are matched when their game_id, map_id and channel are equal and
    dx*dx + dy*dy <= radius*radius, in exact integer arithmetic (the proximity
    plugin's join rule, docs/protocol.md "Who is matched"). This is the state once
    every client has joined at its position from scratch, e.g. after a server
    restart: leave_radius (hysteresis) plays no part, since a pair only stays
    matched past `radius` if it was matched before.

    Returns {client_id: sorted list of peer ids} with an entry (maybe []) for
    every client. Uses a grid of radius-sized cells, so it is about linear in
    clients plus matched pairs: fine for a load generator with thousands.
    """
    cell = max(int(radius), 1)
    r2 = int(radius) * int(radius)
    grid = {}
    keys = {}
    for cid, pos in positions.items():
        game, map_id, channel, x, y = _key(pos)
        keys[cid] = (game, map_id, channel, int(x), int(y))
        grid.setdefault((game, map_id, channel, int(x) // cell, int(y) // cell), []).append(cid)
    out = {cid: [] for cid in positions}
    for cid, (game, map_id, channel, x, y) in keys.items():
        cx, cy = x // cell, y // cell
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                for other in grid.get((game, map_id, channel, gx, gy), ()):
                    if other == cid:
                        continue
                    ox, oy = keys[other][3], keys[other][4]
                    if (ox - x) * (ox - x) + (oy - y) * (oy - y) <= r2:
                        out[cid].append(other)
    return {cid: sorted(peers) for cid, peers in out.items()}


def matched_pair_count(expected):
    """Number of matched pairs in an expected_peers() result."""
    return sum(len(peers) for peers in expected.values()) // 2


# ========================================================= reconnecting client
class ReconnectingClient:
    """A game client that survives server restarts: when its connection ends it
    reconnects with exponential backoff and re-sends its UpdatePosition. It
    re-sends the position every `update_interval` seconds while connected, like
    a game loop, and remembers the latest NearbyPeers list."""

    def __init__(self, host, port, client_id, position, update_interval=1.0,
                 backoff_min=0.05, backoff_max=1.0):
        self.host, self.port = host, port
        self.client_id = client_id
        self.position = position
        self.update_interval = update_interval
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.delay = backoff_min
        self.ws = None
        self.registered = False
        self.latest = None          # the latest NearbyPeers list (sorted)
        self.connects = 0           # successful connects
        self.failed_attempts = 0
        self.losses = []            # ConnectionClosed of each lost connection
        self.unexpected = []        # messages other than NearbyPeers
        self.next_attempt = 0.0
        self.next_update = 0.0

    def message(self):
        game, map_id, channel, x, y = _key(self.position)
        return {"type": "UpdatePosition", "data": {
            "client_id": self.client_id, "map_id": map_id, "x": x, "y": y,
            "channel": channel, "game_id": game}}

    def try_connect(self, force=False):
        """Connect and send the position if the backoff allows. True on success."""
        now = time.monotonic()
        if self.ws is not None or (not force and now < self.next_attempt):
            return False
        try:
            ws = WebSocket(self.host, self.port, timeout=2.0)
            ws.send_json(self.message())
        except (OSError, HandshakeError):
            self.failed_attempts += 1
            self.next_attempt = now + self.delay
            self.delay = min(self.delay * 2, self.backoff_max)
            return False
        self.ws = ws
        self.registered = False
        self.connects += 1
        self.delay = self.backoff_min
        self.next_update = now + self.update_interval
        return True

    def _lost(self, exc):
        self.losses.append(exc)
        try:
            self.ws.abort()
        except OSError:
            pass
        self.ws = None
        self.registered = False
        self.next_attempt = time.monotonic() + self.delay

    def poll(self, timeout=0.0):
        """Read whatever has arrived (waiting at most `timeout` for the first message)."""
        if self.ws is None:
            return
        wait = max(timeout, 0.001)
        for _ in range(10000):
            try:
                msg = self.ws.recv_json(wait)
            except NoMessage:
                break
            except ConnectionClosed as exc:
                self._lost(exc)
                return
            wait = 0.001
            if msg.get("type") == "NearbyPeers":
                self.latest = sorted(msg["data"])
                self.registered = True
            else:
                self.unexpected.append(msg)
        if self.ws is not None and time.monotonic() >= self.next_update:
            self.next_update = time.monotonic() + self.update_interval
            try:
                self.ws.send_json(self.message())
            except OSError as exc:
                self._lost(ConnectionClosed(None, str(exc), False))

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None


# ==================================================================== servers
class FaultServer(EarshotServer):

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.exit_code = self.proc.returncode
        self.proc = None
        self._log.close()
        self.killed = True

    def restart_same_port(self):
        """Start again with the same config and port (no new port is picked)."""
        self.write_config()
        self._launch()
        self.killed = False
        return self


def test_plugin_dir():
    return os.path.abspath(os.environ.get("EARSHOT_TEST_PLUGIN_DIR")
                           or os.path.join(harness.REPO, "build", "test-plugins"))


def failing_hook(name="db"):
    path = os.path.join(test_plugin_dir(), "failing_init.so")
    if not os.path.exists(path):
        raise AssertionError("%s not found (build the failing_init target or set "
                             "EARSHOT_TEST_PLUGIN_DIR)" % path)
    return {"type": "plugin", "name": name, "path": path}


def entry_line(config_text, name):
    """The line number of the `{` opening the hook entry named `name`."""
    lines = config_text.split("\n")
    at = lines.index(next(l for l in lines if l.strip() == 'name = "%s";' % name))
    for i in range(at, -1, -1):
        if lines[i].strip() == "{":
            return i + 1
    raise AssertionError("no '{' before hook %s" % name)


class FaultTestCase(ServerPerTestCase):
    """ServerPerTestCase with FaultServer (kill, restart on the same port) and
    clients that outlive one connection."""

    server_class = FaultServer

    def setUp(self):
        super().setUp()
        self._clients = []

    def tearDown(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        super().tearDown()

    def metric(self, name, **labels):
        status, _, body = http_get(HOST, self.server.port, "/metrics")
        self.assertEqual(status, 200)
        want = "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in labels.items())) \
            if labels else name
        for line in body.decode().split("\n"):
            if line.startswith(want + " "):
                return float(line.split(" ")[1])
        self.fail("metric %s not in /metrics" % want)

    def wait_metric(self, name, expected, timeout=5.0, **labels):
        deadline = time.monotonic() + timeout
        while True:
            got = self.metric(name, **labels)
            if got == expected or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, expected, "%s%s" % (name, labels or ""))


# =============================================================== kill/restart
class KillRestartTest(FaultTestCase):
    UPDATE_INTERVAL = 1.0

    # 12 clients in several groups; the edge cases of the join rule included
    POSITIONS = {
        # map 1, game 0, channel 0: A-B exactly 20 apart (matched), B-D 20, A-D 40, C-D 31.6
        "A": (1, 0, 0), "B": (1, 20, 0), "C": (1, 10, 10), "D": (1, 40, 0),
        # map 1, channel 1: the same spot as A, another channel
        "E": (1, 0, 0, 1), "F": (1, 3, 4, 1),
        # map 2: G-H 20 (12, 16), G-I 21 (not matched, though within leave_radius), H-I 13
        "G": (2, 100, 100), "H": (2, 112, 116), "I": (2, 100, 121),
        # game 7 on map 1: the same spot as A, another game
        "J": (1, 0, 0, 0, 7), "K": (1, -20, 0, 0, 7),
        # alone at the int32 extremes
        "L": (3, -2147483648, 2147483647),
    }

    def test_sigkill_then_restart_on_same_port_clients_rejoin_exactly(self):
        srv = self.start()
        port = srv.port
        n = self.cid("")
        positions = {cid + n: pos for cid, pos in self.POSITIONS.items()}
        expected = expected_peers(positions)
        self.assertEqual(expected["A" + n], sorted(["B" + n, "C" + n]))
        self.assertEqual(expected["I" + n], ["H" + n])
        self.assertEqual(matched_pair_count(expected), 8)  # AB AC BC BD EF GH HI JK
        clients = [ReconnectingClient(HOST, port, cid, pos, self.UPDATE_INTERVAL)
                   for cid, pos in positions.items()]
        self._clients.extend(clients)

        def pump(until, deadline):
            while not until() and time.monotonic() < deadline:
                for c in clients:
                    c.try_connect()
                    c.poll(0.005)
            return until()

        def settle(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for c in clients:
                    c.poll(0.01)

        for c in clients:
            self.assertTrue(c.try_connect(), "first connect of %s" % c.client_id)
            c.poll(2.0)
        self.assertTrue(pump(lambda: all(c.registered for c in clients),
                             time.monotonic() + 10), "not all clients registered")
        settle(0.3)
        self.assertEqual({c.client_id: c.latest for c in clients}, expected,
                         "NearbyPeers before the kill")

        srv.kill()
        self.assertEqual(srv.exit_code, -signal.SIGKILL)
        self.assertTrue(pump(lambda: all(c.ws is None for c in clients), time.monotonic() + 5),
                        "clients did not notice the killed server")
        for c in clients:
            self.assertEqual(len(c.losses), 1, c.client_id)
            self.assertFalse(c.losses[0].clean, "%s got a close frame from a SIGKILLed server"
                             % c.client_id)
            # the server is down: the first attempt fails and backs off
            self.assertFalse(c.try_connect(force=True))
            self.assertEqual(c.failed_attempts, 1)

        srv.restart_same_port()
        self.assertEqual(srv.port, port)
        self.assertTrue(pump(lambda: all(c.registered for c in clients),
                             time.monotonic() + 15),
                        "not all clients re-registered: %s"
                        % [c.client_id for c in clients if not c.registered])
        # within one update interval, every latest list is the one the positions imply
        settle(self.UPDATE_INTERVAL)
        self.assertEqual({c.client_id: c.latest for c in clients}, expected,
                         "NearbyPeers after reconnecting")
        for c in clients:
            self.assertEqual(c.connects, 2, c.client_id)
            self.assertEqual(len(c.losses), 1, c.client_id)
            self.assertEqual(c.unexpected, [], c.client_id)
        self.assertEqual(self.metric("earshot_clients"), len(clients))
        self.assertEqual(self.metric("earshot_connections"), len(clients))
        self.assertEqual(self.metric("earshot_registrations_total"), len(clients))
        self.assertEqual(self.metric("earshot_matched_pairs"), matched_pair_count(expected))
        # and the restarted server relays between matched clients
        a, b = clients[0], clients[1]
        a.ws.send_json({"type": "SendOffer", "data": {"target_id": b.client_id, "offer": "hi"}})
        self.assertEqual(b.ws.recv_json(), {"type": "ReceiveOffer", "data": {
            "sender_id": a.client_id, "offer": "hi"}})


class ExpectedPeersFunctionTest(unittest.TestCase):
    """expected_peers() itself, against a brute-force reference."""

    def test_matches_brute_force(self):
        import random
        rnd = random.Random(7)
        positions = {}
        for i in range(400):
            pos = (rnd.choice([1, 2]), rnd.randint(-120, 120), rnd.randint(-120, 120),
                   rnd.choice([0, 0, 1]), rnd.choice([0, 0, 0, 5]))
            positions["c%d" % i] = pos if i % 3 else {
                "map_id": pos[0], "x": pos[1], "y": pos[2], "channel": pos[3], "game_id": pos[4]}
        got = expected_peers(positions)
        keys = {cid: _key(p) for cid, p in positions.items()}
        for cid, (g, m, ch, x, y) in keys.items():
            want = sorted(o for o, (g2, m2, ch2, x2, y2) in keys.items()
                          if o != cid and (g, m, ch) == (g2, m2, ch2)
                          and (x - x2) ** 2 + (y - y2) ** 2 <= 400)
            self.assertEqual(got[cid], want, cid)
        self.assertEqual(expected_peers({"a": (1, 0, 0), "b": (1, 20, 0), "c": (1, 0, 21)}),
                         {"a": ["b"], "b": ["a"], "c": []})


# ============================================================ failing plugin
DB_REASON = "plugin 'db' failed to start: database unreachable"


class FailingPluginTest(FaultTestCase):

    def test_failing_init_at_startup_exits_2_naming_file_and_line(self):
        srv = FaultServer(None, make_hooks() + [failing_hook("db")])
        self._servers.append(srv)
        srv.port = free_port()
        srv.write_config()
        with open(srv.config_path, encoding="utf-8") as f:
            line = entry_line(f.read(), "db")
        proc = subprocess.run([earshot_bin(), "-c", srv.config_path, "--port", str(srv.port)],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                              cwd=srv.tmpdir)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 2, out)
        self.assertIn("earshot: %s:%d: %s" % (srv.config_path, line, DB_REASON),
                      out.split("\n"), out)
        self.assertNotIn("listening", out)

    def test_failing_init_on_reload_is_reported_and_old_config_stays(self):
        srv = self.start(hooks=make_hooks(radius=20, leave_radius=25))
        m = self.new_map()
        a_id, b_id, c_id = self.cid("a"), self.cid("b"), self.cid("c")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 3, 0, expect=[a_id])
        self.expect_peers(a, [b_id])

        # the new config would widen the radius to 100, and adds the failing plugin
        srv.settings["hooks"] = make_hooks(radius=100, leave_radius=100) + [failing_hook("db")]
        srv.write_config()
        with open(srv.config_path, encoding="utf-8") as f:
            line = entry_line(f.read(), "db")
        srv.proc.send_signal(signal.SIGHUP)
        self.wait_metric("earshot_reloads_total", 1, result="failed")
        self.assertEqual(self.metric("earshot_reloads_total", result="ok"), 0)
        self.assertIn("reload failed, the running config stays: %s:%d: %s"
                      % (srv.config_path, line, DB_REASON), srv.output())
        self.assertTrue(srv.alive())

        # clients are still served, under the old config (radius 20): c at 30 is alone
        a.send_json({"type": "SendOffer", "data": {"target_id": b_id, "offer": "o"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": a_id, "offer": "o"}})
        c = self.join(c_id, m, 30, 0)
        self.refresh(a)
        self.expect_peers(a, [b_id], who="a's refresh after the failed reload")
        self.expect_nothing(a, b, c)

        # a good config afterwards still reloads (radius 40: c is matched now)
        srv.settings["hooks"] = make_hooks(radius=40, leave_radius=45)
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        self.expect_peers(c, [a_id, b_id], timeout=5.0, who="c after the good reload")
        self.expect_peers(a, [b_id, c_id], who="a after the good reload")
        self.expect_peers(b, [a_id, c_id], who="b after the good reload")
        self.assertEqual(self.metric("earshot_reloads_total", result="ok"), 1)
        self.assertEqual(self.metric("earshot_reloads_total", result="failed"), 1)
        self.expect_nothing(a, b, c)


if __name__ == "__main__":
    unittest.main()
