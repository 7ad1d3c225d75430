"""Start and stop a real earshot server for the integration tests.

Environment (set by ctest):
  EARSHOT_BIN         path to the earshot binary      (default: <repo>/build/earshot)
  EARSHOT_PLUGIN_DIR  dir with proximity.so etc.      (default: <repo>/build/plugins)
  EARSHOT_CLUSTER     N: each "server" is N nodes on one Redis behind haproxy (cluster.py)

Each test class gets its own server process, configured through class attributes:

    class TestX(EarshotTestCase):
        config = {"session": {"takeover": "never"}}       # merged over DEFAULT_CONFIG
        hooks = make_hooks(grace=1.0)                     # the hooks list

Every test gets fresh client ids (self.cid("a")) and a fresh map (self.new_map()),
so tests sharing a server never see each other's clients.
"""

import atexit
import copy
import ctypes
import itertools
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from wsclient import OMIT, ConnectionClosed, HandshakeError, NoMessage, WebSocket, http_get

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SOURCE_DIR = os.path.abspath(os.environ.get("EARSHOT_SOURCE_DIR") or REPO)

HOST = "127.0.0.1"        # where the tests connect
OTHER_SOURCE = "127.0.0.2"  # a second client address (all of 127/8 is local on Linux)

# Short enough for a quick suite, long enough that nothing fires by accident.
DEFAULT_CONFIG = {
    "server": {
        "address": "0.0.0.0",
        "port": 0,  # replaced by the chosen port; --port is passed as well
        "max_frame_bytes": 65536,
        "send_queue_bytes": 1048576,
        "ping_interval": 10,
    },
    "session": {
        "takeover": "same_address",
        "idle_timeout": 60.0,
        "refresh_interval": 0.0,
    },
    "log": {"level": "debug"},
}


# kind -> (client message type, server message type, payload field)
RELAY_KINDS = {
    "offer": ("SendOffer", "ReceiveOffer", "offer"),
    "answer": ("SendAnswer", "ReceiveAnswer", "answer"),
    "candidate": ("SendIceCandidate", "ReceiveIceCandidate", "candidate"),
}


def relay_message(kind, target_id, payload):
    """The client's SendOffer/SendAnswer/SendIceCandidate of `payload` to target_id."""
    send, _, field = RELAY_KINDS[kind]
    return {"type": send, "data": {"target_id": target_id, field: payload}}


def relayed_message(kind, sender_id, payload):
    """What the target of relay_message(kind, ..., payload) from sender_id receives."""
    _, recv, field = RELAY_KINDS[kind]
    return {"type": recv, "data": {"sender_id": sender_id, field: payload}}


def sending(action):
    """Run a send that the server may cut short: once it has refused a message it
    may close the TCP connection while the rest is still on its way (EPIPE/RST on
    our side). What it sent before closing is still read afterwards."""
    try:
        action()
    except (BrokenPipeError, ConnectionResetError):
        pass


def make_hooks(relay_guard=True, grace=30.0, proximity=True, radius=20, leave_radius=25):
    """The stock hook chain with test-chosen settings. A False plugin is listed
    but disabled (enabled = false), exercising the switch."""
    return [
        {"type": "plugin", "name": "relay_guard", "enabled": bool(relay_guard),
         "settings": {"grace": float(grace)}},
        {"type": "plugin", "name": "proximity", "enabled": bool(proximity),
         "settings": {"radius": int(radius), "leave_radius": int(leave_radius)}},
    ]


def stock_script(name):
    """The path of a stock Lua script (<source>/lua)."""
    return os.path.join(SOURCE_DIR, "lua", name + ".lua")


def fixture_script(name):
    """The path of a test Lua script (<source>/tests/lua)."""
    return os.path.join(SOURCE_DIR, "tests", "lua", name + ".lua")


def lua_hook(name, path, **keys):
    """A hooks entry for the Lua script at path (keys: settings, grant, enabled...)."""
    entry = {"type": "lua", "name": name, "path": path}
    entry.update(keys)
    return entry


# ------------------------------------------------------------------ libconfig
class Raw(str):
    """A value written into the config verbatim (hostile config tests)."""


def _cfg_value(value, indent):
    pad = "  " * indent
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = "".join("%s  %s = %s;\n" % (pad, k, _cfg_value(v, indent + 1))
                        for k, v in value.items())
        return "{\n" + inner + pad + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "( )"
        items = ",\n".join(pad + "  " + _cfg_value(v, indent + 1) for v in value)
        return "(\n" + items + "\n" + pad + ")"
    raise TypeError("cannot write %r to a libconfig file" % (value,))


def render_config(settings):
    """A dict of top-level settings -> libconfig text."""
    return "".join("%s = %s;\n" % (k, _cfg_value(v, 0)) for k, v in settings.items())


def merge(base, over):
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------- paths
def earshot_bin():
    path = os.environ.get("EARSHOT_BIN") or os.path.join(REPO, "build", "earshot")
    if not os.path.exists(path):
        raise RuntimeError("earshot binary not found at %s (set EARSHOT_BIN)" % path)
    return os.path.abspath(path)


def plugin_dir():
    path = os.environ.get("EARSHOT_PLUGIN_DIR") or os.path.join(REPO, "build", "plugins")
    return os.path.abspath(path)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "==ERROR")


_tmpdirs = []


@atexit.register
def _remove_tmpdirs():
    """Server temp dirs go when the test process ends (EARSHOT_KEEP_TMP=1 keeps them)."""
    if not os.environ.get("EARSHOT_KEEP_TMP"):
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, so a killed
    test run (ctest timeout) leaves no server behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


# -------------------------------------------------------------------- server
class EarshotServer:
    """One earshot process on a free loopback port."""

    def __init__(self, config=None, hooks=None, extra_args=()):
        self.tmpdir = tempfile.mkdtemp(prefix="earshot-it-")
        _tmpdirs.append(self.tmpdir)
        self.port = None
        self.proc = None
        self.extra_args = list(extra_args)
        self.settings = merge(DEFAULT_CONFIG, config)
        self.settings.setdefault("plugin_dir", plugin_dir())
        self.settings["hooks"] = make_hooks() if hooks is None else hooks
        self.config_path = os.path.join(self.tmpdir, "earshot.cfg")
        self.log_path = os.path.join(self.tmpdir, "earshot.log")
        self.exit_code = None

    def write_config(self):
        self.settings["server"]["port"] = self.port
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(render_config(self.settings))

    def start(self, attempts=3):
        last = None
        for _ in range(attempts):
            self.port = free_port()
            self.write_config()
            try:
                self._launch()
                return self
            except RuntimeError as exc:  # e.g. the port was taken meanwhile
                last = exc
        raise last

    def _launch(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [earshot_bin(), "-c", self.config_path, "--port", str(self.port)] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.tmpdir, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError("earshot exited with %s before serving /healthz; output:\n%s"
                                   % (self.proc.returncode, self.output()))
            try:
                status, _, _ = http_get(HOST, self.port, "/healthz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("earshot did not answer GET /healthz with 200 within 10 s; output:\n%s"
                           % self.output())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.proc = None
        try:
            self._log.close()
        except Exception:
            pass
        return self.exit_code

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ------------------------------------------------------------ cluster mode
def server_class_for(cls):
    """EarshotServer, or cluster.ClusterServer when EARSHOT_CLUSTER=N is set (the
    suite then runs through a round-robin proxy over N nodes; see cluster.py)."""
    if cls is EarshotServer and os.environ.get("EARSHOT_CLUSTER"):
        import cluster
        if cluster.cluster_size() > 0:
            return cluster.ClusterServer
    return cls


def cluster_skip(test_id):
    """skipTest reason for a test that cannot hold through a proxy (cluster mode only)."""
    if not os.environ.get("EARSHOT_CLUSTER"):
        return None
    import cluster
    reason = cluster.skip_reason(test_id) if cluster.cluster_size() > 0 else None
    return "cluster: " + reason if reason else None


# ----------------------------------------------------------------- test base
_ids = itertools.count(1)


class EarshotTestCase(unittest.TestCase):
    """Base class: one server per test class, fresh ids and maps per test."""

    config = None       # overrides merged over DEFAULT_CONFIG
    hooks = None        # None: make_hooks()
    server = None

    @classmethod
    def setUpClass(cls):
        reason = cluster_skip("%s.%s" % (cls.__module__, cls.__name__))
        if reason:
            raise unittest.SkipTest(reason)
        cls.server = server_class_for(EarshotServer)(cls.config, cls.hooks).start()
        cls._failed = False

    @classmethod
    def tearDownClass(cls):
        server = cls.server
        if server is None:
            return
        code = server.stop()
        out = server.output()
        if cls._failed:
            sys.stderr.write("\n----- earshot output (%s) -----\n%s\n----- end of earshot output "
                             "-----\n" % (cls.__name__, out[-20000:]))
        server.cleanup()
        bad = [m for m in SANITIZER_MARKERS if m in out]
        if bad:
            raise AssertionError("sanitizer report in earshot output (%s):\n%s" % (bad, out[-20000:]))
        if code not in (0, -signal.SIGTERM):
            raise AssertionError("earshot exited with %r on SIGTERM; output:\n%s" % (code, out[-5000:]))

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else None
        out = super().run(result)
        if result is not None and (len(result.failures), len(result.errors)) != before:
            type(self)._failed = True
        return out

    # ---- /metrics
    def metrics(self):
        scrape = getattr(self.server, "scrape_metrics", None)  # a cluster: summed over nodes
        return scrape() if scrape else scrape_metrics(self.server.port)

    @staticmethod
    def value(samples, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        if key not in samples:
            raise AssertionError("metric %s%r not exposed by /metrics" % (name, labels))
        return samples[key]

    def assertDelta(self, before, after, name, expected, **labels):
        got = self.value(after, name, **labels) - self.value(before, name, **labels)
        self.assertEqual(got, expected, "change of %s%s" % (name, labels or ""))

    def assertMetric(self, samples, name, expected, **labels):
        self.assertEqual(self.value(samples, name, **labels), expected,
                         "%s%s" % (name, labels or ""))

    def wait_metric(self, name, expected, timeout=5.0, **labels):
        """Wait until a gauge reaches `expected` (closes are processed asynchronously)."""
        got = wait_until(lambda: self.value(self.metrics(), name, **labels) == expected, timeout)
        if not got:
            self.fail("%s%s did not reach %r within %.0f s (now %r)"
                      % (name, labels or "", expected, timeout,
                         self.value(self.metrics(), name, **labels)))

    def setUp(self):
        self._conns = []
        self._n = next(_ids)
        self._maps = itertools.count(1)
        reason = cluster_skip(self.id())
        if reason:
            self.skipTest(reason)

    def close_connections(self):
        """Close every connection connect() tracked (tearDown does it)."""
        for ws in self._conns:
            try:
                ws.close()
            except Exception:
                pass

    def tearDown(self):
        self.close_connections()
        if not self.server.alive():
            self.fail("earshot is no longer running (exit %r); output:\n%s"
                      % (self.server.proc.returncode, self.server.output()[-5000:]))

    def expect_close_code(self, ws, code, timeout=5.0, who="", peers_first=False):
        """The next thing on ws is a close frame carrying `code` (with
        peers_first, NearbyPeers may come before it: peers told first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = ws.recv_json(max(deadline - time.monotonic(), 0.01))
            except ConnectionClosed as exc:
                self.assertTrue(exc.clean, "%s: TCP ended without a close frame" % who)
                self.assertEqual(exc.code, code, "%s: close code" % who)
                return
            except NoMessage:
                self.fail("%s: no close frame within %.1f s" % (who, timeout))
            if not peers_first or msg.get("type") != "NearbyPeers":
                self.fail("%s: expected a close frame (%d), got %r" % (who, code, msg))

    # ---- ids and places
    def cid(self, name):
        """A client id unique to this test."""
        return "%s-t%d" % (name, self._n)

    def new_map(self):
        """A map id no other test uses."""
        return self._n * 1000 + next(self._maps)

    # ---- connections
    def connect(self, path="/", headers=None, source_addr=None, track=True, **kw):
        ws = WebSocket(HOST, self.server.port, path=path, headers=headers, source_addr=source_addr,
                       **kw)
        if track:
            self._conns.append(ws)
        return ws

    def get(self, path, headers=None):
        return http_get(HOST, self.server.port, path, headers=headers)

    # ---- messages
    @staticmethod
    def position(client_id, map_id, x, y, channel=0, game_id=0):
        data = {"client_id": client_id, "map_id": map_id, "x": x, "y": y}
        if channel is not OMIT:
            data["channel"] = channel
        if game_id is not OMIT:
            data["game_id"] = game_id
        return {"type": "UpdatePosition", "data": data}

    def move(self, ws, client_id, map_id, x, y, channel=0, game_id=0):
        ws.send_json(self.position(client_id, map_id, x, y, channel, game_id))

    def register(self, ws, client_id, map_id, x, y, channel=0, game_id=0):
        """Send the first UpdatePosition; return the NearbyPeers list it must get."""
        self.move(ws, client_id, map_id, x, y, channel, game_id)
        msg = ws.recv_json()
        self.assertEqual(msg.get("type"), "NearbyPeers",
                         "registering %r: expected NearbyPeers, got %r" % (client_id, msg))
        self.assertIsInstance(msg.get("data"), list, msg)
        return msg["data"]

    def join(self, client_id, map_id, x, y, channel=0, game_id=0, expect=(), **conn_args):
        """connect() + register() + assert the first list equals `expect`."""
        ws = self.connect(**conn_args)
        peers = self.register(ws, client_id, map_id, x, y, channel, game_id)
        self.assertEqual(sorted(peers), sorted(expect),
                         "first NearbyPeers of %s" % client_id)
        return ws

    def expect_peers(self, ws, expected, timeout=3.0, who=""):
        msg = ws.recv_json(timeout)
        self.assertEqual(msg.get("type"), "NearbyPeers",
                         "%s: expected NearbyPeers %r, got %r" % (who, sorted(expected), msg))
        self.assertIsInstance(msg.get("data"), list, msg)
        self.assertEqual(len(msg["data"]), len(set(msg["data"])),
                         "%s: duplicate ids in NearbyPeers %r" % (who, msg["data"]))
        self.assertEqual(sorted(msg["data"]), sorted(expected), "%s: NearbyPeers" % who)

    def expect_matched(self, a, a_id, b, b_id):
        """a and b have just become each other's only peer: each gets that list."""
        self.expect_peers(a, [b_id], who="%s matched with %s" % (a_id, b_id))
        self.expect_peers(b, [a_id], who="%s matched with %s" % (b_id, a_id))

    def expect_parted(self, *conns):
        """Each of conns has just lost its last peer: each gets []."""
        for i, ws in enumerate(conns):
            self.expect_peers(ws, [], who="client %d parted" % i)

    def expect_error(self, ws, text, timeout=3.0):
        msg = ws.recv_json(timeout)
        self.assertEqual(msg, {"type": "Error", "data": text})

    def expect_error_prefix(self, ws, prefix, timeout=3.0):
        msg = ws.recv_json(timeout)
        self.assertEqual(msg.get("type"), "Error", msg)
        self.assertIsInstance(msg.get("data"), str, msg)
        self.assertTrue(msg["data"].startswith(prefix),
                        "Error %r does not start with %r" % (msg["data"], prefix))
        return msg["data"]

    def expect_nothing(self, *conns, seconds=0.3):
        """No message on any of conns within `seconds` (one shared window)."""
        deadline = time.monotonic() + seconds
        for ws in conns:
            ws.expect_nothing(max(deadline - time.monotonic(), 0.01))

    def refresh(self, ws):
        ws.send_json({"type": "RequestPeerRefresh", "data": None})

    def assert_unregistered(self, ws):
        """A connection that is open but holds no client id."""
        self.refresh(ws)
        self.expect_error(ws, "Client must send UpdatePosition first.")

    def expect_lists(self, conns, lists, who=""):
        """Ask each connection for its list (RequestPeerRefresh) and assert the reply is
        the next message and equals the expected list: a list the server sent
        unasked before it (a change nobody expected) fails the test."""
        for i, (ws, expected) in enumerate(zip(conns, lists)):
            self.refresh(ws)
            self.expect_peers(ws, expected, who="%s refresh of client %d" % (who, i))

    # ---- groups of clients
    def place(self, *spots, map_id=None, radius=20, **kw):
        """Join clients one at a time at spots (name, x, y) on one map (a fresh one
        unless map_id is given), in one channel and game (kw: channel, game_id and
        connect() arguments), and assert what the distance rule with `radius`
        implies: each newcomer's first list holds exactly the clients already there
        within `radius`, and each of those gets a NearbyPeers adding it.
        Returns (map_id, [connections], [client ids]) in the order of spots."""
        m = self.new_map() if map_id is None else map_id
        conns, ids, lists = [], [], []
        for name, x, y in spots:
            cid = self.cid(name)
            near = [i for i, (_, px, py) in enumerate(spots[:len(ids)])
                    if (px - x) ** 2 + (py - y) ** 2 <= radius * radius]
            ws = self.join(cid, m, x, y, expect=[ids[i] for i in near], **kw)
            for i in near:
                lists[i].append(cid)
                self.expect_peers(conns[i], lists[i], who="%s when %s joins" % (ids[i], cid))
            conns.append(ws)
            ids.append(cid)
            lists.append([ids[i] for i in near])
        return m, conns, ids

    def matched_pair(self, p=(0, 0), q=(3, 4), map_id=None, **kw):
        """Two clients a at p and b at q (within 20: matched); (map, a, b, a_id, b_id)."""
        m, (a, b), (a_id, b_id) = self.place(("a",) + tuple(p), ("b",) + tuple(q),
                                             map_id=map_id, **kw)
        return m, a, b, a_id, b_id

    # ---- relays
    def send_relay(self, ws, kind, target_id, payload):
        ws.send_json(relay_message(kind, target_id, payload))

    def expect_relay(self, ws, kind, sender_id, payload, timeout=3.0):
        self.assertEqual(ws.recv_json(timeout), relayed_message(kind, sender_id, payload))

    def relay(self, sender, sender_id, target, target_id, payload, kind="offer"):
        """sender relays payload to target_id; target receives it from sender_id."""
        self.send_relay(sender, kind, target_id, payload)
        self.expect_relay(target, kind, sender_id, payload)

    def relay_refused(self, sender, target_id, payload="o", reason=None):
        """relay_guard (or a hook) refuses an offer and an answer with an Error and
        drops an ICE candidate without a word."""
        for kind in ("offer", "answer"):
            self.send_relay(sender, kind, target_id, payload)
            self.expect_error(sender, reason or "relay to %s not allowed" % target_id)
        self.send_relay(sender, "candidate", target_id, payload)

    # ---- refused upgrades
    def refused(self, status, **conn):
        """connect() must be refused with HTTP `status` and no WebSocket; returns the
        HandshakeError."""
        with self.assertRaises(HandshakeError, msg="upgrade was not refused") as cm:
            self.connect(**conn)
        self.assertEqual(cm.exception.status, status, str(cm.exception))
        self.assertNotIn("sec-websocket-accept", cm.exception.headers)
        self.assertNotEqual(cm.exception.headers.get("upgrade", "").lower(), "websocket")
        return cm.exception


# ----------------------------------------------------------------- metrics
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape_metrics(port):
    """GET /metrics -> {(name, ((label, value), ...)): float}."""
    status, _, body = http_get(HOST, port, "/metrics")
    if status != 200:
        raise AssertionError("GET /metrics answered %r: %r" % (status, body[:200]))
    samples = {}
    for line in body.decode("utf-8").split("\n"):
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("bad metrics line %r" % line)
        name, labels, value = m.groups()
        key = (name, tuple(sorted(_LABEL.findall(labels or ""))))
        samples[key] = float(value)
    return samples


def wait_until(predicate, timeout=5.0, interval=0.05):
    """Poll predicate() until it is true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class ServerPerTestCase(EarshotTestCase):
    """EarshotTestCase helpers with servers started by each test (start())
    instead of one per class. After the test every server is stopped and its
    output checked: no sanitizer report, and exit 0 on SIGTERM unless the
    test killed it on purpose (server.killed)."""

    server_class = EarshotServer

    @classmethod
    def setUpClass(cls):
        reason = cluster_skip("%s.%s" % (cls.__module__, cls.__name__))
        if reason:
            raise unittest.SkipTest(reason)
        cls._failed = False

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self._servers = []
        self.server = None
        super().setUp()

    def start(self, config=None, hooks=None, **kw):
        srv = server_class_for(self.server_class)(config, hooks, **kw)
        self._servers.append(srv)
        srv.start()
        self.server = srv
        return srv

    def tearDown(self):
        self.close_connections()
        problems = []
        for srv in self._servers:
            code = srv.stop()
            out = srv.output()
            bad = [m for m in SANITIZER_MARKERS if m in out]
            if bad:
                problems.append("sanitizer report (%s):\n%s" % (bad, out[-20000:]))
            if code not in (0, -signal.SIGTERM, None) and not getattr(srv, "killed", False):
                problems.append("earshot exited with %r; output:\n%s" % (code, out[-5000:]))
        if problems:
            self.fail("\n".join(problems))

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else None
        try:
            return super().run(result)
        finally:
            failed = result is not None and (len(result.failures), len(result.errors)) != before
            for srv in self._servers:
                if failed:
                    sys.stderr.write("\n----- earshot output (%s) -----\n%s\n----- end -----\n"
                                     % (self.id(), srv.output()[-20000:]))
                srv.cleanup()
