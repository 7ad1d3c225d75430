"""RequestIceServers against a real coturn: the TURN credentials earshot mints
get an allocation from a coturn sharing its secret (use-auth-secret), and
fail, with the exact STUN error code, under the wrong secret or past their
expiry.

Each test class starts its own coturn (`turnserver`, Debian's coturn
package) on a free loopback port, with its own config, log, pid and
database files in a temporary folder, and stops it afterwards. A small
STUN/TURN client below speaks to it over UDP (RFC 8489 / RFC 8656
long-term credentials)."""

import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import harness
from harness import HOST, ServerPerTestCase, wait_until

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "earshot.test"
SECRET = "coturn-and-earshot-share-this"

# ------------------------------------------------------------------ STUN/TURN
MAGIC = 0x2112A442
BINDING, ALLOCATE, REFRESH = 0x0001, 0x0003, 0x0004
SUCCESS, ERROR = 0x0100, 0x0110
A_USERNAME, A_INTEGRITY, A_ERROR_CODE, A_LIFETIME = 0x0006, 0x0008, 0x0009, 0x000D
A_REALM, A_NONCE, A_XOR_RELAYED, A_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019


def _attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def stun_message(method, attrs, key=None):
    """A request of `method` with attrs [(type, bytes)]; with key, a
    MESSAGE-INTEGRITY (HMAC-SHA1 over the message, its length counting the
    integrity attribute) ends it."""
    tid = os.urandom(12)
    body = b"".join(_attr(k, v) for k, v in attrs)
    if key is None:
        return tid, struct.pack("!HHI", method, len(body), MAGIC) + tid + body
    head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
    mac = hmac.new(key, head + body, hashlib.sha1).digest()
    return tid, head + body + _attr(A_INTEGRITY, mac)


def parse_stun(data):
    """-> (message type, transaction id, {attr type: bytes})."""
    mtype, length, magic = struct.unpack("!HHI", data[:8])
    if magic != MAGIC or len(data) != 20 + length:
        raise AssertionError("not a STUN message: %r" % data[:40])
    attrs, off = {}, 20
    while off < len(data):
        kind, n = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(kind, data[off + 4:off + 4 + n])
        off += 4 + n + (4 - n % 4) % 4
    return mtype, data[8:20], attrs


def error_code(attrs):
    raw = attrs.get(A_ERROR_CODE)
    if raw is None:
        return None
    return (raw[2] & 7) * 100 + raw[3]


def xor_address(raw):
    family, xport = struct.unpack("!xBH", raw[:4])
    if family != 1:
        raise AssertionError("not an IPv4 address: %r" % raw)
    port = xport ^ (MAGIC >> 16)
    ip = struct.unpack("!I", raw[4:8])[0] ^ MAGIC
    return socket.inet_ntoa(struct.pack("!I", ip)), port


class TurnClient:
    """One UDP socket talking to one TURN server."""

    def __init__(self, port):
        self.addr = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))

    def close(self):
        self.sock.close()

    def transact(self, method, attrs, key=None, timeout=3.0, tries=3):
        """Send one request (again on silence: UDP) and return its answer."""
        tid, msg = stun_message(method, attrs, key)
        for _ in range(tries):
            self.sock.sendto(msg, self.addr)
            self.sock.settimeout(timeout / tries)
            try:
                while True:
                    data, _ = self.sock.recvfrom(65536)
                    mtype, rtid, got = parse_stun(data)
                    if rtid == tid:
                        return mtype, got
            except socket.timeout:
                continue
        raise AssertionError("no answer from the TURN server at %s:%d" % self.addr)

    def allocate(self, username, password):
        """Allocate a UDP relay with long-term credentials: the first request
        learns realm and nonce from the 401, the second carries the
        MESSAGE-INTEGRITY. -> (message type, error code or None, attrs).
        Each attempt comes from a socket of its own: coturn ties a 5-tuple
        to the first username that used it (437 Allocation Mismatch after)."""
        self.sock.close()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        transport = [(A_TRANSPORT, struct.pack("!B3x", 17))]
        mtype, attrs = self.transact(ALLOCATE, transport)
        if mtype != ALLOCATE | ERROR or error_code(attrs) != 401:
            raise AssertionError("unauthenticated Allocate: type %#x, code %r"
                                 % (mtype, error_code(attrs)))
        realm, nonce = attrs[A_REALM], attrs[A_NONCE]
        key = hashlib.md5(b"%s:%s:%s" % (username.encode(), realm, password.encode())).digest()
        mtype, attrs = self.transact(ALLOCATE, transport + [
            (A_USERNAME, username.encode()), (A_REALM, realm), (A_NONCE, nonce)], key)
        if mtype == ALLOCATE | SUCCESS:
            # give the allocation back (LIFETIME 0)
            self.transact(REFRESH, [(A_LIFETIME, struct.pack("!I", 0)),
                                    (A_USERNAME, username.encode()), (A_REALM, realm),
                                    (A_NONCE, nonce)], key)
        return mtype, error_code(attrs), attrs


def rest_credential(secret, username):
    """The TURN REST API password, computed here apart from earshot."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()) \
        .decode()


# --------------------------------------------------------------------- coturn
def free_udp_tcp_port():
    """A port free for both UDP and TCP on the loopback address."""
    for _ in range(50):
        port = harness.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


class Coturn:
    """A turnserver on 127.0.0.1 only, TURN REST API auth with `secret`, no
    TLS, no CLI, every file of its own in a temporary folder."""

    def __init__(self, secret):
        self.secret = secret
        self.tmpdir = tempfile.mkdtemp(prefix="earshot-coturn-")
        self.port = None
        self.proc = None

    def start(self):
        self.port = free_udp_tcp_port()
        relay_lo = 40000 + (self.port * 7) % 20000
        conf = os.path.join(self.tmpdir, "turnserver.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("\n".join([
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                "listening-port=%d" % self.port,
                "min-port=%d" % relay_lo,
                "max-port=%d" % (relay_lo + 200),
                "use-auth-secret",
                "static-auth-secret=%s" % self.secret,
                "realm=%s" % REALM,
                "allow-loopback-peers",
                "no-tls", "no-dtls", "no-cli", "no-tcp-relay",
                "no-multicast-peers",
                "log-file=%s" % os.path.join(self.tmpdir, "turn.log"),
                "simple-log",
                "pidfile=%s" % os.path.join(self.tmpdir, "turn.pid"),
                "userdb=%s" % os.path.join(self.tmpdir, "turndb"),
                "",
            ]))
        self.log = open(os.path.join(self.tmpdir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([TURNSERVER, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.tmpdir, preexec_fn=harness._die_with_parent)
        # ready when it answers a STUN Binding request
        client = TurnClient(self.port)
        try:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("turnserver exited with %s:\n%s"
                                       % (self.proc.returncode, self.output()))
                try:
                    mtype, _ = client.transact(BINDING, [], timeout=0.3, tries=1)
                    if mtype == BINDING | SUCCESS:
                        return self
                except AssertionError:
                    pass
            raise RuntimeError("turnserver did not answer a Binding request within 10 s:\n%s"
                               % self.output())
        except Exception:
            self.stop()
            raise
        finally:
            client.close()

    def output(self):
        text = ""
        for name in ("stdout.log", "turn.log"):
            try:
                with open(os.path.join(self.tmpdir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return text[-5000:]

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
            self.log.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ---------------------------------------------------------------------- tests
@unittest.skipUnless(os.path.exists(TURNSERVER), "coturn is not installed (apt-get install coturn)")
class TurnCredentialsTest(ServerPerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.coturn = Coturn(SECRET).start()

    @classmethod
    def tearDownClass(cls):
        cls.coturn.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.turn = TurnClient(self.coturn.port)
        self.addCleanup(self.turn.close)

    def turn_group(self, **over):
        group = {"secret": SECRET,
                 "urls": ["turn:127.0.0.1:%d?transport=udp" % self.coturn.port],
                 "stun_urls": ["stun:127.0.0.1:%d" % self.coturn.port],
                 "ttl": 600}
        group.update(over)
        return {"turn": group}

    def ice_servers(self, ws):
        ws.send_json({"type": "RequestIceServers", "data": None})
        msg = ws.recv_json()
        self.assertEqual(msg.get("type"), "IceServers", msg)
        return msg["data"]

    def turn_entry(self, data):
        entries = [e for e in data["ice_servers"] if "username" in e]
        self.assertEqual(len(entries), 1, data)
        return entries[0]

    def test_minted_credentials_allocate(self):
        self.start(self.turn_group())
        cid = self.cid("alice")
        ws = self.join(cid, self.new_map(), 0, 0)
        before = self.metrics()
        t0 = int(time.time())
        data = self.ice_servers(ws)
        t1 = int(time.time())
        turn = self.turn_entry(data)
        self.assertEqual(data["ttl"], 600)
        self.assertEqual(data["ice_servers"][0],
                         {"urls": ["stun:127.0.0.1:%d" % self.coturn.port]})
        self.assertEqual(turn["urls"], ["turn:127.0.0.1:%d?transport=udp" % self.coturn.port])
        self.assertEqual(sorted(turn), ["credential", "urls", "username"])
        expiry, _, who = turn["username"].partition(":")
        self.assertEqual(who, cid)
        self.assertTrue(t0 + 600 <= int(expiry) <= t1 + 600, (t0, expiry, t1))
        self.assertEqual(turn["credential"], rest_credential(SECRET, turn["username"]))
        mtype, code, attrs = self.turn.allocate(turn["username"], turn["credential"])
        self.assertEqual((mtype, code), (ALLOCATE | SUCCESS, None))
        self.assertEqual(xor_address(attrs[A_XOR_RELAYED])[0], "127.0.0.1")
        after = self.metrics()
        self.assertDelta(before, after, "earshot_messages_in_total", 1, type="RequestIceServers")
        self.assertDelta(before, after, "earshot_messages_out_total", 1, type="IceServers")
        self.assertNotIn(SECRET, self.server.output())

    def test_wrong_secret_is_refused(self):
        self.start(self.turn_group(secret="not-" + SECRET))
        ws = self.join(self.cid("bob"), self.new_map(), 0, 0)
        turn = self.turn_entry(self.ice_servers(ws))
        mtype, code, _ = self.turn.allocate(turn["username"], turn["credential"])
        self.assertEqual((mtype, code), (ALLOCATE | ERROR, 401))
        # the same username with the right secret's password passes: only the secret was wrong
        mtype, code, _ = self.turn.allocate(turn["username"],
                                            rest_credential(SECRET, turn["username"]))
        self.assertEqual((mtype, code), (ALLOCATE | SUCCESS, None))

    def test_expired_or_altered_username_is_refused(self):
        self.start(self.turn_group())
        cid = self.cid("carol")
        ws = self.join(cid, self.new_map(), 0, 0)
        turn = self.turn_entry(self.ice_servers(ws))
        expiry = int(turn["username"].split(":", 1)[0])
        # the same client, an hour past its expiry, correctly signed
        old = "%d:%s" % (int(time.time()) - 3600, cid)
        mtype, code, _ = self.turn.allocate(old, rest_credential(SECRET, old))
        self.assertEqual((mtype, code), (ALLOCATE | ERROR, 401))
        # a later expiry (or another id) under the minted password
        for forged in ("%d:%s" % (expiry + 3600, cid), "%d:%s" % (expiry, self.cid("mallory"))):
            mtype, code, _ = self.turn.allocate(forged, turn["credential"])
            self.assertEqual((mtype, code), (ALLOCATE | ERROR, 401), forged)

    def test_secret_file_and_reload(self):
        path = os.path.join(tempfile.mkdtemp(prefix="earshot-secret-"), "turn.secret")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("not-" + SECRET + "\n")
        srv = self.start(self.turn_group(secret="", secret_file=path))
        ws = self.join(self.cid("dave"), self.new_map(), 0, 0)
        turn = self.turn_entry(self.ice_servers(ws))
        self.assertEqual(self.turn.allocate(turn["username"], turn["credential"])[:2],
                         (ALLOCATE | ERROR, 401))
        # the right secret in the file and a new ttl: a reload applies both
        with open(path, "w", encoding="utf-8") as f:
            f.write(SECRET + "\n")
        srv.settings["turn"]["ttl"] = 3600
        srv.write_config()
        count = srv.output().count("reloaded:")
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: srv.output().count("reloaded:") > count, 5.0),
                        srv.output())
        data = self.ice_servers(ws)
        self.assertEqual(data["ttl"], 3600)
        turn = self.turn_entry(data)
        self.assertEqual(self.turn.allocate(turn["username"], turn["credential"])[:2],
                         (ALLOCATE | SUCCESS, None))
        self.assertNotIn(SECRET, srv.output())

    def test_nothing_configured_and_not_registered(self):
        self.start()
        ws = self.connect()
        ws.send_json({"type": "RequestIceServers", "data": None})
        self.expect_error(ws, "Client must send UpdatePosition first.")
        self.register(ws, self.cid("erin"), self.new_map(), 0, 0)
        ws.send_json({"type": "RequestIceServers", "data": {"unknown": [1, 2]}, "more": True})
        self.assertEqual(ws.recv_json(), {"type": "IceServers",
                                          "data": {"ice_servers": [], "ttl": 86400}})


if __name__ == "__main__":
    unittest.main()
