"""Operational features: config reload (SIGHUP), the metrics endpoint, TLS,
draining shutdown (SIGTERM/SIGINT), log formats and per-module levels,
X-Forwarded-For behind a proxy, and --check-config exit codes
(README.md, docs/deploy.md, config/earshot.cfg).

Every test starts its own earshot (signals and reloads change a server), with
the harness's DEFAULT_CONFIG (refresh_interval 0, idle_timeout 60) unless the
test says otherwise.
"""

import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

import harness
from harness import (HOST, OTHER_SOURCE, EarshotServer, ServerPerTestCase, earshot_bin, make_hooks,
                     render_config, wait_until)
from wsclient import ConnectionClosed, HandshakeError, WebSocket

SOURCE_DIR = os.path.abspath(os.environ.get("EARSHOT_SOURCE_DIR") or harness.REPO)
SCRIPT_DIR = os.path.join(SOURCE_DIR, "lua")
STOCK_CONFIG = os.path.join(SOURCE_DIR, "config", "earshot.cfg")


# ------------------------------------------------------------------ helpers
def http_get_from(host, port, path, source_addr=None, timeout=5.0, context=None):
    """GET over HTTP (or HTTPS when context is given) from a chosen source address."""
    src = (source_addr, 0) if source_addr else None
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, source_address=src,
                                           context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def non_loopback_ipv4():
    """An IPv4 address of this machine outside 127.0.0.0/8, or None."""
    SIOCGIFADDR = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                  struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            addr = socket.inet_ntoa(raw[20:24])
            if not addr.startswith("127.") and addr != "0.0.0.0":
                return addr
    return None


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_self_signed(directory):
    """(cert path, key path) of a fresh self-signed certificate for localhost."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    return cert, key


class TLSWebSocket(WebSocket):
    """wsclient.WebSocket over TLS (no certificate verification). Everything
    after the connect (handshake, framing checks, helpers) is wsclient's."""

    def __init__(self, host, port, path="/", headers=None, timeout=5.0):
        # the state WebSocket.__init__ sets up, then a TLS socket instead of a plain one
        self.host = host
        self.port = port
        self.path = path
        self.auto_pong = True
        self.send_timeout = 10.0
        self._buf = bytearray()
        self._frag_opcode = None
        self._frag_parts = []
        self._frag_frames = 0
        self.close_sent = False
        self.close_received = None
        self.eof = False
        self.pings_received = []
        self.pongs_received = []
        self.response_headers = {}
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = tls_context().wrap_socket(raw, server_hostname="localhost")
            self.sock.settimeout(timeout)
            self._handshake(headers or {}, timeout)
        except BaseException:
            raw.close()
            raise


# ---------------------------------------------------------- Prometheus text
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_metrics(testcase, text):
    """Check the exposition format strictly and return {(name, ((label, value), ...)): float}.
    Every sample line is `name{labels} value` or `name value`; every metric has
    its # HELP and # TYPE lines before its first sample; no sample twice."""
    helps, types, samples = {}, {}, {}
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            testcase.assertEqual(len(parts), 4, "line %d: bad HELP %r" % (n, line))
            testcase.assertNotIn(parts[2], helps, "line %d: second HELP for %s" % (n, parts[2]))
            helps[parts[2]] = parts[3]
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            testcase.assertEqual(len(parts), 4, "line %d: bad TYPE %r" % (n, line))
            testcase.assertIn(parts[3], TYPES, "line %d: bad TYPE %r" % (n, line))
            testcase.assertNotIn(parts[2], types, "line %d: second TYPE for %s" % (n, parts[2]))
            types[parts[2]] = parts[3]
            continue
        testcase.assertFalse(line.startswith("#"), "line %d: unexpected comment %r" % (n, line))
        m = SAMPLE_RE.match(line)
        testcase.assertIsNotNone(m, "line %d is not `name{labels} value` or `name value`: %r"
                                 % (n, line))
        name, labels_text, value_text = m.groups()
        testcase.assertIn(name, helps, "line %d: sample of %s before its # HELP" % (n, name))
        testcase.assertIn(name, types, "line %d: sample of %s before its # TYPE" % (n, name))
        labels = []
        if labels_text is not None:
            testcase.assertNotEqual(labels_text, "", "line %d: empty braces %r" % (n, line))
            pos = 0
            while pos < len(labels_text):
                lm = LABEL_RE.match(labels_text, pos)
                testcase.assertIsNotNone(lm, "line %d: bad labels %r" % (n, labels_text))
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
                if pos < len(labels_text):
                    testcase.assertEqual(labels_text[pos], ",", "line %d: bad labels %r"
                                         % (n, labels_text))
                    pos += 1
        try:
            value = float(value_text)
        except ValueError:
            testcase.fail("line %d: value %r is not a number" % (n, value_text))
        key = (name, tuple(sorted(labels)))
        testcase.assertNotIn(key, samples, "line %d: sample repeated: %r" % (n, line))
        samples[key] = value
    testcase.assertTrue(text.endswith("\n"), "metrics text does not end with a newline")
    return samples


def sample(samples, name, **labels):
    """The value of one sample (None when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))))


# ------------------------------------------------------------------- server
class OpsServer(EarshotServer):
    """harness.EarshotServer with stderr and stdout kept apart (the log tests
    read stderr alone) and, for TLS, a readiness probe over https."""

    def __init__(self, config=None, hooks=None, tls=False):
        super().__init__(config, hooks)
        self.tls = tls
        self.stdout_path = os.path.join(self.tmpdir, "stdout.txt")
        self._out = None

    def _launch(self):
        self._log = open(self.log_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(
            [earshot_bin(), "-c", self.config_path, "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log, cwd=self.tmpdir)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                self._out.close()
                raise RuntimeError("earshot exited with %s before serving /healthz; stderr:\n%s"
                                   % (self.proc.returncode, self.output()))
            try:
                status, _, _ = http_get_from(HOST, self.port, "/healthz", timeout=1.0,
                                             context=tls_context() if self.tls else None)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("earshot did not answer GET /healthz with 200 within 10 s; stderr:\n%s"
                           % self.output())

    def stop(self):
        code = super().stop()
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, timeout):
        """The exit code, or None if the process is still running after timeout seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def rewrite(self, hooks=None, **sections):
        """Change settings (merged per section) and/or the hooks list and write the file."""
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(self.settings.get(key), dict):
                self.settings[key] = harness.merge(self.settings[key], value)
            else:
                self.settings[key] = value
        if hooks is not None:
            self.settings["hooks"] = hooks
        self.write_config()

    def write_raw(self, text):
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)


class OpsTestCase(ServerPerTestCase):
    """ServerPerTestCase with OpsServer: stderr and stdout apart, and TLS."""

    server_class = OpsServer

    # ---- helpers
    def scrape(self, srv=None, source_addr=None):
        srv = srv or self.server
        status, headers, body = http_get_from(HOST, srv.port, "/metrics", source_addr)
        self.assertEqual(status, 200, "GET /metrics: %r" % body[:200])
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        return parse_metrics(self, body.decode("utf-8"))

    def metric(self, name, srv=None, **labels):
        return sample(self.scrape(srv), name, **labels)

    def reload_and_wait(self, result, count, srv=None):
        """SIGHUP, then wait until earshot_reloads_total{result=...} reaches count."""
        srv = srv or self.server
        srv.signal(signal.SIGHUP)
        value = wait_until(lambda: self.metric("earshot_reloads_total", srv, result=result)
                           == count, 5.0)
        self.assertTrue(value, "earshot_reloads_total{result=%r} did not reach %d after SIGHUP "
                        "(now %r); stderr:\n%s"
                        % (result, count, self.metric("earshot_reloads_total", srv, result=result),
                           srv.output()[-3000:]))


def proximity_hooks(radius=20, leave_radius=25, map_range=None):
    """relay_guard, map_range (listed; enabled only when map_range is a list of
    map settings), proximity."""
    hooks = make_hooks(radius=radius, leave_radius=leave_radius)
    hooks.insert(1, {"type": "lua", "name": "map_range", "enabled": map_range is not None,
                     "settings": {"maps": map_range or [{"map_id": 99, "radius": 1}]}})
    return hooks


# ==================================================================== reload
class ReloadTest(OpsTestCase):

    def test_sighup_changes_radius_and_enables_a_script_keeping_clients(self):
        srv = self.start({"script_dir": SCRIPT_DIR}, proximity_hooks(20, 25))
        a = self.join("a", 1, 0, 0)
        b = self.join("b", 1, 30, 0)
        self.expect_nothing(a, b, seconds=0.2)

        # radius 40 / leave 45: the pair at distance 30 now matches
        srv.rewrite(hooks=proximity_hooks(40, 45))
        srv.signal(signal.SIGHUP)
        self.expect_peers(a, ["b"], timeout=5.0, who="a after reload to 40")
        self.expect_peers(b, ["a"], timeout=5.0, who="b after reload to 40")
        self.expect_nothing(a, b, seconds=0.3)

        # back to 20 / 25: distance 30 is past leave_radius, they part
        srv.rewrite(hooks=proximity_hooks(20, 25))
        srv.signal(signal.SIGHUP)
        self.expect_peers(a, [], timeout=5.0, who="a after reload to 20")
        self.expect_peers(b, [], timeout=5.0, who="b after reload to 20")
        self.expect_nothing(a, b, seconds=0.3)

        # two clients 15 apart on map 3, matched by proximity
        c = self.join("c", 3, 0, 0)
        d = self.join("d", 3, 15, 0, expect=["c"])
        self.expect_peers(c, ["d"], who="c when d joins")

        # switch map_range on (before proximity): map 3 hears only within 8 / 10
        srv.rewrite(hooks=proximity_hooks(20, 25, map_range=[
            {"map_id": 3, "radius": 8, "leave_radius": 10}]))
        srv.signal(signal.SIGHUP)
        self.expect_peers(c, [], timeout=5.0, who="c after map_range is enabled")
        self.expect_peers(d, [], timeout=5.0, who="d after map_range is enabled")
        self.expect_nothing(a, b, c, d, seconds=0.3)

        # every connection survived and is still served
        for ws, name in ((a, "a"), (b, "b"), (c, "c"), (d, "d")):
            self.refresh(ws)
            self.expect_peers(ws, [], who="%s refresh after the reloads" % name)
        # the new rule holds for moves too: 9 apart on map 3 is outside 8
        self.move(d, "d", 3, 9, 0)
        self.expect_nothing(c, d, seconds=0.2)
        self.move(d, "d", 3, 8, 0)
        self.expect_peers(c, ["d"], who="c, d within 8 on map 3")
        self.expect_peers(d, ["c"], who="d, c within 8 on map 3")

        samples = self.scrape()
        self.assertEqual(sample(samples, "earshot_reloads_total", result="ok"), 3)
        self.assertEqual(sample(samples, "earshot_reloads_total", result="failed"), 0)
        self.assertGreater(sample(samples, "earshot_hook_calls_total", link="map_range") or 0, 0,
                           "map_range is not listed in earshot_hook_calls_total after the reload")
        self.assertTrue(srv.alive())

    def test_reload_keeps_relay_guard_memory_and_its_timer_runs(self):
        """relay_guard remembers a parted pair across a reload that leaves its
        settings alone, and forgets it when grace changes; its on_tick runs
        while nothing else happens."""
        srv = self.start({}, make_hooks(grace=30.0))
        a = self.join("a", 1, 0, 0)
        b = self.join("b", 1, 3, 4, expect=["a"])
        self.expect_peers(a, ["b"], who="a when b joins")
        self.move(b, "b", 1, 100, 0)
        self.expect_peers(a, [], who="a as b walks away")
        self.expect_peers(b, [], who="b as it walks away")
        self.relay(a, "a", b, "b", "within grace")

        srv.rewrite(hooks=make_hooks(grace=30.0))
        self.reload_and_wait("ok", 1)
        self.assertIn("plugin relay_guard keeps its instance", srv.output())
        self.relay(a, "a", b, "b", "still within grace")

        srv.rewrite(hooks=make_hooks(grace=31.0))
        self.reload_and_wait("ok", 2)
        self.relay_refused(a, "b", "a fresh relay_guard never saw them part")

        # the timer: relay_guard is called while no client does anything
        calls = lambda: self.metric("earshot_hook_calls_total", link="relay_guard")
        before = calls()
        self.assertTrue(wait_until(lambda: calls() >= before + 2, 5.0),
                        "relay_guard's on_tick did not run")

    def test_failed_reload_keeps_running_config(self):
        srv = self.start(None, make_hooks(radius=20, leave_radius=25))
        a = self.join("a", 1, 0, 0)
        b = self.join("b", 1, 10, 0, expect=["a"])
        self.expect_peers(a, ["b"], who="a when b joins")
        with open(srv.config_path, encoding="utf-8") as f:
            good_text = f.read()

        # 1: a syntax error
        srv.write_raw(good_text + "\nsession = { takeover = ; \n")
        self.reload_and_wait("failed", 1)
        self.assertEqual(self.metric("earshot_reloads_total", result="ok"), 0)
        errors = [l for l in srv.output().splitlines()
                  if " error " in l and "main:" in l and "reload failed" in l]
        self.assertEqual(len(errors), 1, "one error line from main for the failed reload:\n%s"
                         % srv.output()[-3000:])
        self.assertIn(srv.config_path, errors[0])
        # the old rules still hold, old clients are still matched, new ones register
        self.refresh(a)
        self.expect_peers(a, ["b"], who="a refresh after failed reload 1")
        c = self.join("c", 1, 5, 0, expect=["a", "b"])
        self.expect_peers(a, ["b", "c"], who="a when c joins")
        self.expect_peers(b, ["a", "c"], who="b when c joins")

        # 2: a plugin that cannot load, in an otherwise valid config with radius 40
        srv.rewrite(hooks=make_hooks(radius=40, leave_radius=45) + [
            {"type": "plugin", "name": "no_such_plugin_xyz", "enabled": True}])
        self.reload_and_wait("failed", 2)
        self.assertEqual(self.metric("earshot_reloads_total", result="ok"), 0)
        errors = [l for l in srv.output().splitlines()
                  if " error " in l and "main:" in l and "reload failed" in l]
        self.assertEqual(len(errors), 2, srv.output()[-3000:])
        self.assertIn("no_such_plugin_xyz", errors[1])
        # still radius 20: d at 35 from b, 40 from c, 45 from a hears nobody
        d = self.join("d", 1, 45, 0, expect=[])
        self.expect_nothing(a, b, c, d, seconds=0.3)
        self.refresh(c)
        self.expect_peers(c, ["a", "b"], who="c refresh after failed reload 2")

        # a good reload afterwards still works and is counted as ok
        srv.rewrite(hooks=make_hooks(radius=40, leave_radius=45))
        srv.signal(signal.SIGHUP)
        self.expect_peers(d, ["b", "c"], timeout=5.0, who="d after the good reload")
        samples = self.scrape()
        self.assertEqual(sample(samples, "earshot_reloads_total", result="ok"), 1)
        self.assertEqual(sample(samples, "earshot_reloads_total", result="failed"), 2)


# =================================================================== metrics
class MetricsTest(OpsTestCase):

    def test_metrics_after_known_traffic(self):
        self.start()
        a = self.join("a", 1, 0, 0)
        b = self.join("b", 1, 3, 4, expect=["a"])
        self.expect_peers(a, ["b"], who="a when b joins")
        a.send_json({"type": "SendOffer", "data": {"target_id": "b", "offer": "sdp-1"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": "a", "offer": "sdp-1"}})
        # the silent one first, so that the two Errors after it prove it was handled
        a.send_json({"type": "SendIceCandidate",
                     "data": {"target_id": "nobody", "candidate": "c-1"}})
        a.send_json({"type": "SendOffer", "data": {"target_id": "nobody", "offer": "sdp-2"}})
        self.expect_error(a, "Client nobody not found")
        a.send_text("{not json")
        self.expect_error_prefix(a, "")
        self.expect_nothing(a, b, seconds=0.1)

        s = self.scrape()
        expected = {
            ("earshot_connections", ()): 2,
            ("earshot_connections_total", ()): 2,
            ("earshot_clients", ()): 2,
            ("earshot_registrations_total", ()): 2,
            ("earshot_takeovers_total", ()): 0,
            ("earshot_timeouts_total", (("kind", "idle"),)): 0,
            ("earshot_timeouts_total", (("kind", "first_message"),)): 0,
            ("earshot_rate_limited_total", ()): 0,
            ("earshot_matched_pairs", ()): 1,
            ("earshot_send_queue_drops_total", ()): 0,
        }
        for type_, n in (("UpdatePosition", 2), ("RequestPeerRefresh", 0), ("SendOffer", 2),
                         ("SendAnswer", 0), ("SendIceCandidate", 1), ("Disconnect", 0)):
            expected[("earshot_messages_in_total", (("type", type_),))] = n
        for type_, n in (("NearbyPeers", 3), ("ReceiveOffer", 1), ("ReceiveAnswer", 0),
                         ("ReceiveIceCandidate", 0), ("Error", 2)):
            expected[("earshot_messages_out_total", (("type", type_),))] = n
        for kind in ("offer", "answer", "candidate"):
            for outcome in ("delivered", "refused", "unknown_target", "self"):
                expected[("earshot_relays_total", (("kind", kind), ("outcome", outcome)))] = 0
        expected[("earshot_relays_total", (("kind", "offer"), ("outcome", "delivered")))] = 1
        expected[("earshot_relays_total", (("kind", "offer"), ("outcome", "unknown_target")))] = 1
        expected[("earshot_relays_total",
                  (("kind", "candidate"), ("outcome", "unknown_target")))] = 1
        for kind in ("bad_message", "binary_frame", "not_registered", "id_changed", "id_in_use",
                     "taken_over", "join_refused", "position_refused", "self_relay",
                     "unknown_target", "relay_refused", "frame_too_large", "timeout",
                     "rate_limited"):
            expected[("earshot_errors_total", (("kind", kind),))] = 0
        expected[("earshot_errors_total", (("kind", "bad_message"),))] = 1
        expected[("earshot_errors_total", (("kind", "unknown_target"),))] = 1
        for code in ("1000", "1001", "1008", "1009"):
            expected[("earshot_closes_total", (("code", code),))] = 0
        for reason in ("server_full", "per_address", "origin"):
            expected[("earshot_connections_refused_total", (("reason", reason),))] = 0
        expected[("earshot_reloads_total", (("result", "ok"),))] = 0
        expected[("earshot_reloads_total", (("result", "failed"),))] = 0
        actual = {k: s.get(k) for k in expected}
        self.assertEqual(actual, expected)

        for link in ("relay_guard", "proximity"):
            self.assertGreater(sample(s, "earshot_hook_calls_total", link=link) or 0, 0, link)
            self.assertIsNotNone(sample(s, "earshot_hook_seconds_total", link=link), link)
        self.assertGreaterEqual(sample(s, "earshot_grid_cells"), 1)
        start = sample(s, "earshot_start_time_seconds")
        self.assertLess(abs(start - time.time()), 120, "earshot_start_time_seconds %r" % start)

        info = [k for k in s if k[0] == "earshot_build_info"]
        self.assertEqual(len(info), 1, info)
        labels = dict(info[0][1])
        self.assertEqual(s[info[0]], 1)
        version = subprocess.run([earshot_bin(), "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.split()
        self.assertEqual(labels.get("version"), version[1] if len(version) > 1 else None,
                         "build_info version vs --version %r" % version)
        self.assertTrue(labels.get("plugin_api"), labels)

    def test_metrics_off_is_404(self):
        srv = self.start({"server": {"metrics": "off"}})
        status, _, _ = http_get_from(HOST, srv.port, "/metrics")
        self.assertEqual(status, 404)
        status, _, body = http_get_from(HOST, srv.port, "/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))

    def test_metrics_loopback_and_public(self):
        outside = non_loopback_ipv4()
        srv = self.start({"server": {"metrics": "loopback"}})
        for src in (HOST, OTHER_SOURCE):
            status, _, body = http_get_from(HOST, srv.port, "/metrics", src)
            self.assertEqual(status, 200, "loopback source %s" % src)
            self.assertIn(b"earshot_build_info", body)
        if outside is None:
            self.skipTest("no non-loopback IPv4 address on this machine: the refusal of "
                          "/metrics to other sources cannot be reached")
        try:
            status, _, body = http_get_from(outside, srv.port, "/metrics", outside)
        except OSError as exc:
            self.skipTest("cannot reach earshot from %s: %s" % (outside, exc))
        self.assertEqual(status, 403, "metrics = loopback, request from %s: %r" % (outside, body))
        status, _, _ = http_get_from(outside, srv.port, "/healthz", outside)
        self.assertEqual(status, 200)

        pub = self.start({"server": {"metrics": "public"}})
        status, _, body = http_get_from(outside, pub.port, "/metrics", outside)
        self.assertEqual(status, 200, "metrics = public, request from %s" % outside)
        self.assertIn(b"earshot_build_info", body)


# ======================================================================= TLS
class TlsTest(OpsTestCase):

    def test_wss_relay_healthz_and_plain_refused(self):
        certdir = tempfile.mkdtemp(prefix="earshot-tls-")
        self.addCleanup(shutil.rmtree, certdir, True)
        try:
            cert, key = make_self_signed(certdir)
        except (OSError, subprocess.CalledProcessError) as exc:
            self.skipTest("cannot make a certificate with openssl: %s" % exc)
        srv = self.start({"server": {"tls": {"cert": cert, "key": key}}}, tls=True)
        self.assertIn("wss://", srv.output())

        a = TLSWebSocket(HOST, srv.port)
        self._conns.append(a)
        b = TLSWebSocket(HOST, srv.port)
        self._conns.append(b)
        self.assertEqual(self.register(a, "a", 1, 0, 0), [])
        self.assertEqual(self.register(b, "b", 1, 5, 0), ["a"])
        self.expect_peers(a, ["b"], who="a when b joins")
        a.send_json({"type": "SendOffer", "data": {"target_id": "b", "offer": "v=0 tls"}})
        self.assertEqual(b.recv_json(), {"type": "ReceiveOffer",
                                         "data": {"sender_id": "a", "offer": "v=0 tls"}})
        b.send_json({"type": "SendAnswer", "data": {"target_id": "a", "answer": "v=0 back"}})
        self.assertEqual(a.recv_json(), {"type": "ReceiveAnswer",
                                         "data": {"sender_id": "b", "answer": "v=0 back"}})

        status, _, body = http_get_from(HOST, srv.port, "/healthz", context=tls_context())
        self.assertEqual((status, body.strip()), (200, b"ok"))

        # plain ws:// on the TLS port must not get a WebSocket
        with self.assertRaises((HandshakeError, OSError)):
            plain = WebSocket(HOST, srv.port, timeout=3.0)
            plain.close()
        # and the TLS clients are unaffected
        self.refresh(a)
        self.expect_peers(a, ["b"], who="a refresh over wss")


# ================================================================== shutdown
class ShutdownTest(OpsTestCase):

    def _three(self):
        conns = [self.join("a", 1, 0, 0),
                 self.join("b", 1, 5, 0, expect=["a"]),
                 self.join("c", 1, 100, 0)]
        self.expect_peers(conns[0], ["b"], who="a when b joins")
        return conns

    def stops_on(self, sig):
        """Three clients; sig closes each with 1001 and the server exits 0."""
        srv = self.start()
        conns = self._three()
        srv.signal(sig)
        for ws, name in zip(conns, "abc"):
            self.expect_close_code(ws, 1001, who=name, peers_first=True)
        self.assertEqual(srv.wait_exit(10.0), 0, "exit code after %s (None: still running)"
                         % signal.Signals(sig).name)

    def test_sigterm_closes_clients_with_1001_and_exits_0(self):
        self.stops_on(signal.SIGTERM)

    def test_sigint_exits_0(self):
        self.stops_on(signal.SIGINT)

    def test_no_new_clients_while_draining(self):
        """A client that does not read keeps the drain open: its queued output must go
        out before its close frame, and the server waits for that (up to its drain
        limit of 5 s). c has read nothing since it registered, so when a and b have
        their 1001 the server is still draining, and it turns newcomers away before
        any upgrade: /healthz answers 503 "stopping" and a WebSocket upgrade gets
        HTTP 503 with no WebSocket. Then c reads: every offer, then 1001."""
        n_offers, offer = 40, "o" * 60000
        srv = self.start({"server": {"send_queue_bytes": 16 << 20}})
        m, (a, b), (a_id, b_id) = self.place(("a", 0, 0), ("b", 5, 0))
        c_id = self.cid("c")
        c = self.connect(rcvbuf=4096)
        self.assertEqual(sorted(self.register(c, c_id, m, 0, 5)), [a_id, b_id])
        self.expect_peers(a, [b_id, c_id], who="a when c joins")
        self.expect_peers(b, [a_id, c_id], who="b when c joins")
        for _ in range(n_offers):
            self.send_relay(a, "offer", c_id, offer)
        self.refresh(a)  # its answer means every offer before it was handled
        self.expect_peers(a, [b_id, c_id], timeout=10.0, who="a refresh after the offers")
        before = self.scrape()

        srv.signal(signal.SIGTERM)
        self.expect_close_code(a, 1001, who="a", peers_first=True)
        self.expect_close_code(b, 1001, who="b", peers_first=True)
        self.assertTrue(srv.alive(), "the drain ended while c had %d bytes unread"
                        % (n_offers * len(offer)))
        status, _, body = http_get_from(HOST, srv.port, "/healthz", timeout=2.0)
        self.assertEqual((status, body), (503, b"stopping\n"), "GET /healthz while draining")
        self.refused(503)
        self.refused(503, source_addr=OTHER_SOURCE)
        refusals = sample(self.scrape(), "earshot_connections_refused_total",
                          reason="server_full") - sample(before, "earshot_connections_refused_total",
                                                         reason="server_full")
        self.assertEqual(refusals, 2, "upgrades refused while draining")

        # c gets everything it was owed, then 1001
        got = 0
        while True:
            try:
                msg = c.recv_json(10.0)
            except ConnectionClosed as exc:
                self.assertEqual(exc.code, 1001, "c's close code")
                break
            if msg.get("type") == "NearbyPeers":  # its peers left: told or not
                continue
            self.assertEqual(msg, {"type": "ReceiveOffer",
                                   "data": {"sender_id": a_id, "offer": offer}})
            got += 1
        self.assertEqual(got, n_offers, "offers queued for c before the shutdown")
        self.assertEqual(srv.wait_exit(10.0), 0, "exit code after SIGTERM (None: still running)")


# ====================================================================== logs
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) "
                       r"([a-z_]+(?: [A-Za-z0-9_-]+)?): (.*)$")


class LogTest(OpsTestCase):

    def test_json_format(self):
        srv = self.start({"log": {"level": "debug", "format": "json"}})
        alice = self.join("alice", 1, 0, 0)
        alice.send_text("nope")
        self.expect_error_prefix(alice, "")
        alice.send_json({"type": "Disconnect", "data": None})
        alice.expect_close()
        self.assertEqual(srv.stop(), 0)
        lines = srv.output().split("\n")
        self.assertEqual(lines[-1], "", "stderr does not end with a newline")
        records = []
        for n, line in enumerate(lines[:-1], 1):
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail("stderr line %d is not JSON: %r" % (n, line))
            self.assertIsInstance(obj, dict, line)
            for key in ("ts", "level", "module", "msg"):
                self.assertIsInstance(obj.get(key), str, "line %d lacks %s: %r" % (n, key, line))
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"), line)
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            records.append(obj)
        self.assertEqual(srv.stdout(), "", "earshot wrote to stdout")
        reg = [r for r in records if r["msg"].startswith("registered")]
        self.assertEqual(len(reg), 1, reg or records)
        self.assertEqual(reg[0]["module"], "session")
        self.assertEqual(reg[0]["level"], "info")
        self.assertEqual(reg[0].get("client_id"), "alice")
        self.assertEqual(reg[0].get("address"), "127.0.0.1")
        self.assertIsInstance(reg[0].get("conn"), int)
        self.assertTrue(any(r["module"] == "main" and "listening" in r["msg"] for r in records))

    def test_text_format(self):
        srv = self.start({"log": {"level": "info", "format": "text"}})
        self.join("alice", 1, 0, 0)
        self.assertEqual(srv.stop(), 0)
        lines = srv.output().splitlines()
        for line in lines:
            self.assertRegex(line, TEXT_LINE)
        reg = [l for l in lines if " session: registered" in l]
        self.assertEqual(len(reg), 1, lines)
        self.assertIn("client_id=alice address=127.0.0.1", reg[0])
        self.assertRegex(reg[0], r" client_id=alice address=127\.0\.0\.1 conn=\d+$")

    def test_module_level_suppresses_session(self):
        srv = self.start({"log": {"level": "info", "modules": {"session": "warn"}}})
        self.join("alice", 1, 0, 0)
        srv.signal(signal.SIGHUP)  # main logs after the registration
        self.assertTrue(wait_until(lambda: "reloaded" in srv.output(), 5.0), srv.output())
        out = srv.output()
        self.assertNotIn("registered", out)
        self.assertNotIn(" session: ", out)
        self.assertIn(" main: ", out)
        self.assertRegex(out, r"info  main: earshot .* listening on ")

    def test_module_level_can_be_lower_than_level(self):
        srv = self.start({"log": {"level": "warn", "modules": {"session": "info"}}})
        self.join("alice", 1, 0, 0)
        self.assertTrue(wait_until(lambda: "registered" in srv.output(), 5.0), srv.output())
        out = srv.output()
        self.assertIn("client_id=alice address=127.0.0.1", out)
        self.assertNotIn("listening on", out, "main's info line despite level warn")


# ============================================================= behind_proxy
class ProxyTest(OpsTestCase):

    def test_behind_proxy_uses_last_forwarded_for(self):
        srv = self.start({"server": {"behind_proxy": True},
                          "session": {"takeover": "same_address"}})
        first = self.join("x", 1, 0, 0, headers={"X-Forwarded-For": "203.0.113.7"})
        # a different proxy chain whose last hop is the same address may take x over
        second = self.join("x", 1, 0, 0,
                           headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        self.expect_error(first, "client_id x was taken over by another connection")
        self.assertEqual(first.expect_close(), 1008)
        # the client claimed 203.0.113.7 first, but the proxy saw 198.51.100.9
        third = self.connect(headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
        self.move(third, "x", 1, 0, 0)
        self.expect_error(third, "client_id x is already in use")
        self.assert_unregistered(third)
        # longer chains: only the last entry counts, whatever comes before it
        fourth = self.connect(headers={"X-Forwarded-For": "203.0.113.7, 203.0.113.7, 198.51.100.9"})
        self.move(fourth, "x", 1, 0, 0)
        self.expect_error(fourth, "client_id x is already in use")
        fifth = self.connect(headers={"X-Forwarded-For": "10.1.2.3,198.51.100.9, 203.0.113.7"})
        self.assertEqual(self.register(fifth, "x", 1, 0, 0), [])
        self.expect_error(second, "client_id x was taken over by another connection")
        self.assertEqual(second.expect_close(), 1008)
        second = fifth
        # a direct connection without the header is 127.0.0.1: not the holder's address
        direct = self.connect()
        self.move(direct, "x", 1, 0, 0)
        self.expect_error(direct, "client_id x is already in use")
        # the holder is untouched
        self.refresh(second)
        self.expect_peers(second, [], who="x holder")
        regs = [l for l in srv.output().splitlines() if " session: registered" in l]
        self.assertTrue(regs and all("client_id=x address=203.0.113.7 " in l for l in regs),
                        regs)

    def test_forwarded_for_ignored_when_not_behind_proxy(self):
        self.start({"server": {"behind_proxy": False},
                    "session": {"takeover": "same_address"}})
        first = self.join("y", 1, 0, 0, headers={"X-Forwarded-For": "203.0.113.7"})
        # both from 127.0.0.1: the differing header does not matter
        self.join("y", 1, 0, 0, headers={"X-Forwarded-For": "198.51.100.9"})
        self.expect_error(first, "client_id y was taken over by another connection")
        self.assertEqual(first.expect_close(), 1008)
        # same header as the holder's, but really from 127.0.0.2: refused
        other = self.connect(headers={"X-Forwarded-For": "198.51.100.9"},
                             source_addr=OTHER_SOURCE)
        self.move(other, "y", 1, 0, 0)
        self.expect_error(other, "client_id y is already in use")


# ============================================================ --check-config
class CheckConfigTest(unittest.TestCase):

    def test_stock_config_is_ok(self):
        self.assertTrue(os.path.exists(STOCK_CONFIG), STOCK_CONFIG)
        p = subprocess.run([earshot_bin(), "-c", STOCK_CONFIG, "--check-config"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, "stdout %r stderr %r" % (p.stdout, p.stderr))
        self.assertIn("ok", p.stdout)

    def test_unknown_key_exits_2_naming_file_and_line(self):
        tmp = tempfile.mkdtemp(prefix="earshot-check-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "bad.cfg")
        text = ("# a config with a typo\n"
                "server = {\n"
                "  port = 8080;\n"
                "  max_frame_byte = 1000;\n"
                "};\n"
                "plugin_dir = \"%s\";\n" % harness.plugin_dir())
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + render_config({"hooks": make_hooks()}))
        p = subprocess.run([earshot_bin(), "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 2, "stdout %r stderr %r" % (p.stdout, p.stderr))
        self.assertIn("%s:4:" % path, p.stderr)
        self.assertIn("max_frame_byte", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, "one message: %r" % p.stderr)


if __name__ == "__main__":
    unittest.main()
