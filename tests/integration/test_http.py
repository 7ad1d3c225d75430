"""Transport: plain HTTP (/healthz, /metrics, the web client's files and what
guards them), the upgrade on any path, WebSocket framing and the frame size limit
(PROTOCOL.md: Transport, Liveness and limits). The configured limits, keepalive
pings and slow readers are test_limits.py's."""

import http.client
import os
import re
import shutil
import signal
import tempfile
import unittest

from harness import EarshotTestCase, HOST, ServerPerTestCase, wait_until
from wsclient import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, ConnectionClosed, NoMessage, \
    encode_frame, http_raw

METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*,?\})? '
    r'[-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|Inf)( -?[0-9]+)?$')
META_LINE = re.compile(r'^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|'
                       r'TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$')

TEXT = "text/plain; charset=utf-8"
NOT_FOUND = (404, TEXT, b"not found\n")
TOO_LARGE = "Frame too large (limit 65536 bytes)"


def update(client_id, map_id, x=0, y=0, pad=0):
    """UpdatePosition JSON text; `pad` bytes of an ignored field make it bigger."""
    text = ('{"type":"UpdatePosition","data":{"client_id":"%s","map_id":%d,"x":%d,"y":%d},'
            '"pad":"' % (client_id, map_id, x, y))
    return text + "p" * pad + '"}'


def update_of_size(client_id, map_id, size):
    base = len(update(client_id, map_id).encode())
    assert size >= base
    text = update(client_id, map_id, pad=size - base)
    assert len(text.encode()) == size
    return text


def request(target, method, path, body=None, headers=None):
    """One HTTP request. target: a port (a new connection, closed after) or an
    open http.client connection (left open). Returns (status, {lowercase header:
    value}, body bytes). `path` is sent as written: no normalisation, no escaping."""
    own = not isinstance(target, http.client.HTTPConnection)
    conn = http.client.HTTPConnection(HOST, target, timeout=5.0) if own else target
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


# ------------------------------------------------------------ a web_dir
# name -> (content, Content-Type earshot must send)
WEB_FILES = {
    "index.html": (b"<!doctype html><title>index</title>\n", "text/html; charset=utf-8"),
    "app.js": (b"export const app = 1;\n", "text/javascript; charset=utf-8"),
    "mod.mjs": (b"export default 2;\n", "text/javascript; charset=utf-8"),
    "style.css": (b"body { margin: 0 }\n", "text/css; charset=utf-8"),
    "data.json": (b'{"a": 1}\n', "application/json"),
    "app.js.map": (b'{"version": 3}\n', "application/json"),
    "icon.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>\n', "image/svg+xml"),
    "pic.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png"),
    "favicon.ico": (b"\x00\x00\x01\x00\x01\x00", "image/x-icon"),
    "notes.txt": (b"notes\n", "text/plain; charset=utf-8"),
    "readme.md": (b"# readme\n", "text/markdown; charset=utf-8"),
    "beep.wav": (b"RIFF\x00\x00\x00\x00WAVE", "audio/wav"),
    "blob.bin": (bytes(range(256)) * 4, "application/octet-stream"),
    "LICENSE": (b"no extension\n", "application/octet-stream"),
    "sub/index.html": (b"<p>sub index</p>\n", "text/html; charset=utf-8"),
    "sub/page.html": (b"<p>sub page</p>\n", "text/html; charset=utf-8"),
}
DOTFILES = {".hidden": b"dotfile\n", ".git/config": b"[core]\n", "sub/.env": b"KEY=secret\n"}
SECRET = b"outside web_dir\n"


def make_web_dir():
    """A temp folder holding web/ (WEB_FILES, DOTFILES and symlinks) and, next to
    it, outside/secret.txt, which no request may reach. Returns (top, web)."""
    top = tempfile.mkdtemp(prefix="earshot-web-")
    web = os.path.join(top, "web")
    for name, data in list(WEB_FILES.items()) + [(k, (v, None)) for k, v in DOTFILES.items()]:
        path = os.path.join(web, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data[0])
    os.makedirs(os.path.join(top, "outside"))
    secret = os.path.join(top, "outside", "secret.txt")
    with open(secret, "wb") as f:
        f.write(SECRET)
    os.symlink("../outside/secret.txt", os.path.join(web, "link-out.txt"))
    os.symlink(secret, os.path.join(web, "abs-link-out.txt"))
    os.symlink("../outside", os.path.join(web, "dir-out"))
    os.symlink("index.html", os.path.join(web, "link-in.html"))
    return top, web


class WebDirTestCase(EarshotTestCase):
    """A server whose web_dir is a fresh make_web_dir() folder."""
    server_settings = {}

    @classmethod
    def setUpClass(cls):
        cls.top, cls.web = make_web_dir()
        cls.config = dict(cls.server_settings, web_dir=cls.web)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.top, ignore_errors=True)

    def request(self, method, path, **kw):
        return request(self.server.port, method, path, **kw)

    def assertAnswer(self, path, expected, method="GET"):
        """`path` is answered (status, Content-Type, body) = expected, never cached."""
        status, headers, body = self.request(method, path)
        self.assertEqual((status, headers.get("content-type"), body), expected, path)
        self.assertEqual(headers.get("cache-control"), "no-store", path)
        self.assertNotIn(SECRET, body, path)

    def assert_upgrades(self, paths):
        """A WebSocket upgrade on each path reaches earshot's protocol."""
        m = self.new_map()
        for i, path in enumerate(paths):
            with self.subTest(path=path):
                ws = self.connect(path=path, headers={"Origin": "http://example.test",
                                                      "Authorization": "Bearer t",
                                                      "X-Extra": "1"})
                self.assertEqual(self.register(ws, self.cid("p%d" % i), m, 1000 * i, 0), [])
                ws.close()


class HttpTest(WebDirTestCase):
    """The stock settings, serving a make_web_dir() folder."""

    def test_healthz(self):
        self.assertAnswer("/healthz", (200, TEXT, b"ok\n"))
        self.assertAnswer("/healthz?probe=1", (200, TEXT, b"ok\n"))
        # only the path itself: below it, or a longer name, is no endpoint
        for path in ("/healthz/", "/healthz/x", "/healthzx", "/metrics/x"):
            self.assertAnswer(path, NOT_FOUND)

    def test_metrics_is_prometheus_text(self):
        # some traffic first, so counters exist
        ws = self.join(self.cid("m"), self.new_map(), 0, 0)
        ws.send_text("not json")
        self.expect_error_prefix(ws, "Invalid JSON: ")
        status, headers, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(headers.get("cache-control"), "no-store")
        text = body.decode("utf-8")
        samples = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                if line.startswith("# HELP ") or line.startswith("# TYPE "):
                    self.assertRegex(line, META_LINE)
                continue
            self.assertRegex(line, METRIC_LINE)
            samples += 1
        self.assertGreater(samples, 0, text)

    def test_any_path_upgrades(self):
        self.assert_upgrades(["/", "/ws", "/?token=x", "/some/deep/path?x=1&y=%20z", "/healthz",
                              "/metrics", "/index.html", "/app.js", "/sub/", "/missing.html",
                              "/.hidden", "/link-out.txt"])

    def test_healthz_still_served_with_clients(self):
        ws = self.join(self.cid("a"), self.new_map(), 0, 0)
        for _ in range(3):
            status, _, body = self.get("/healthz")
            self.assertEqual((status, body.strip()), (200, b"ok"))
        self.refresh(ws)
        self.expect_peers(ws, [])

    def test_handshake_without_key_is_refused(self):
        req = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (HOST, self.server.port)).encode()
        head = http_raw(HOST, self.server.port, req)
        self.assertFalse(head.startswith(b"HTTP/1.1 101"), head)

    def test_handshake_accept_key(self):
        # WebSocket() verifies Sec-WebSocket-Accept against its random key
        for _ in range(3):
            ws = self.connect()
            self.assertEqual(ws.response_headers.get("upgrade", "").lower(), "websocket")

    # ------------------------------------------------------------ framing
    def test_client_ping_gets_pong(self):
        ws = self.connect()
        for payload in (b"", b"abc", bytes(range(125))):
            ws.send_ping(payload)
            ws.expect_nothing(0.2)  # reads (and records) control frames only
            self.assertEqual(ws.pongs_received[-1:], [payload])
        self.assertEqual(len(ws.pongs_received), 3)

    def test_fragmented_message_is_reassembled(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0)
        b_id = self.cid("b")
        b = self.connect()
        text = update(b_id, m, 1, 1).encode()
        parts = [text[:5], text[5:20], b"", text[20:]]
        b.send_fragmented(OP_TEXT, parts, between=lambda i: b.send_ping(b"mid%d" % i))
        self.expect_peers(b, [a_id])
        self.expect_peers(a, [b_id])
        # a UTF-8 sequence split across fragments
        payload = "h\u00e9llo \U0001F3A7".encode()
        msg = ('{"type":"SendOffer","data":{"target_id":"%s","offer":"' % a_id).encode() + \
            payload + b'"}}'
        cut = msg.index(b"\xf0") + 2
        b.send_fragmented(OP_TEXT, [msg[:cut], msg[cut:]])
        self.assertEqual(a.recv_json(), {"type": "ReceiveOffer", "data": {
            "sender_id": b_id, "offer": "h\u00e9llo \U0001F3A7"}})
        self.expect_nothing(a, b)  # reads the pongs too
        # RFC 6455 5.5.3 lets back-to-back pings share one pong
        self.assertTrue(b.pongs_received, "no pong for the pings between fragments")
        self.assertTrue(set(b.pongs_received) <= {b"mid0", b"mid1", b"mid2"}, b.pongs_received)

    def test_sizes_and_length_encodings(self):
        """7-bit, 16-bit and 64-bit length encodings all work up to the limit."""
        m = self.new_map()
        ws = self.connect()
        c_id = self.cid("c")
        self.assertEqual(self.register(ws, c_id, m, 0, 0), [])
        for size in (125, 126, 127, 65535, 65536):
            with self.subTest(size=size):
                ws.send_text(update_of_size(c_id, m, size))
                ws.expect_nothing(0.2)  # same place: no change, no reply
        self.refresh(ws)
        self.expect_peers(ws, [])

    def test_exactly_limit_is_processed(self):
        m = self.new_map()
        o_id = self.cid("o")
        o = self.join(o_id, m, 0, 0)
        ws = self.connect()
        ws.send_text(update_of_size(self.cid("big"), m, 65536))
        self.expect_peers(ws, [o_id])
        self.expect_peers(o, [self.cid("big")])

    def test_frame_over_limit(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        for opcode in (OP_TEXT, OP_BINARY):
            with self.subTest(opcode=opcode):
                ws = self.connect()
                ws.send_frame(opcode, update_of_size(self.cid("big"), m, 65537).encode())
                self.expect_too_large(ws)
        o.expect_nothing()
        self.refresh(o)
        self.expect_peers(o, [])

    def test_registered_client_over_limit_leaves(self):
        m = self.new_map()
        a_id, b_id = self.cid("a"), self.cid("b")
        a = self.join(a_id, m, 0, 0)
        b = self.join(b_id, m, 1, 1, expect=[a_id])
        self.expect_peers(a, [b_id])
        b.send_text(update_of_size(b_id, m, 70000))
        self.expect_too_large(b)
        self.expect_peers(a, [])
        a.expect_nothing()

    def expect_too_large(self, ws):
        self.expect_error(ws, TOO_LARGE)
        self.assertEqual(ws.expect_close(), 1009)

    def test_close_handshake(self):
        ws = self.join(self.cid("a"), self.new_map(), 0, 0)
        ws.send_close(1000, "bye")
        self.assertEqual(ws.expect_close(), 1000)
        self.assertTrue(ws.wait_eof(), "server kept the TCP connection open after the close")

    # RFC 6455 5.1: a server MUST close on an unmasked client frame. The
    # libwebsockets that earshot runs on (Debian 12's 4.1.6) accepts them and
    # offers no hook to see the mask bit; docs/protocol.md lists this. This
    # test documents the deviation and starts failing ("unexpected success")
    # the day the library enforces the rule, so the note can go.
    @unittest.expectedFailure
    def test_unmasked_frame_is_a_protocol_error(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        ws = self.connect()
        ws.send_frame(OP_TEXT, update(self.cid("u"), m, 1, 1), mask=False)
        code = ws.expect_close()
        self.assertIn(code, (1002, None))
        o.expect_nothing()

    def test_reserved_bits_and_opcodes_fail_the_connection(self):
        m = self.new_map()
        o = self.join(self.cid("o"), m, 0, 0)
        for name, frame in [
            ("rsv1", encode_frame(OP_TEXT, update(self.cid("r1"), m, 1, 1), rsv=4)),
            ("opcode 3", encode_frame(0x3, update(self.cid("r2"), m, 1, 1))),
            ("opcode 0xB", encode_frame(0xB, b"")),
            ("continuation first", encode_frame(OP_CONT, update(self.cid("r3"), m, 1, 1))),
            ("fragmented ping", encode_frame(OP_PING, b"x", fin=False)),
            ("long ping", encode_frame(OP_PING, b"x" * 126)),
        ]:
            with self.subTest(frame=name):
                ws = self.connect()
                ws.raw_send(frame)
                self.assertIn(ws.expect_close(), (1002, None))
        o.expect_nothing()

    def test_invalid_utf8_text(self):
        """RFC 6455 8.1: a text frame that is not UTF-8 closes with 1007, after
        the parser's Error."""
        ws = self.connect()
        ws.send_frame(OP_TEXT, b'{"type":"RequestPeerRefresh","data":"\xff\xfe"}')
        self.expect_error(ws, "Invalid JSON: unable to decode byte 0xff near '\"'")
        self.assertEqual(ws.expect_close(), 1007)

    def test_many_connections(self):
        m = self.new_map()
        conns = []
        for i in range(60):
            ws = self.connect()
            conns.append(ws)
            self.assertEqual(self.register(ws, self.cid("c%d" % i), m, 100 * i, 0), [])
        for ws in conns:
            self.refresh(ws)
        for ws in conns:
            self.expect_peers(ws, [])
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)

    def test_oversized_fragmented_message_does_not_kill_server(self):
        ws = self.connect()
        chunk = b"x" * 4096
        try:
            ws.send_frame(OP_TEXT, b'{"type":"Foo","pad":"' + chunk, fin=False)
            for _ in range(40):
                ws.send_frame(OP_CONT, chunk, fin=False)
            ws.send_frame(OP_CONT, b'"}', fin=True)
        except OSError:
            pass
        try:
            while True:
                ws.recv_json(1.0)
        except (NoMessage, ConnectionClosed):
            pass
        status, _, _ = self.get("/healthz")
        self.assertEqual(status, 200)
        other = self.join(self.cid("after"), self.new_map(), 0, 0)
        other.expect_nothing(0.1)



class PollLoopHttpTest(HttpTest):
    """The same on libwebsockets' own poll() loop."""
    server_settings = {"server": {"event_loop": "poll"}}

# ================================================================ web_dir files
TRAVERSALS = [
    "/../outside/secret.txt",
    "/../../outside/secret.txt",
    "/sub/../../outside/secret.txt",
    "/sub/page.html/../../../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/.%2e/outside/secret.txt",
    "/%2e./outside/secret.txt",
    "/sub/%2e%2e/%2e%2e/outside/secret.txt",
    "/..%2foutside%2fsecret.txt",
    "/%2e%2e%2foutside%2fsecret.txt",
    "/sub/..%2F..%2Foutside%2Fsecret.txt",
    "/..%5coutside%5csecret.txt",
    "/..\\outside\\secret.txt",
    "/sub/../../../../../../../../outside/secret.txt",
    "/outside/secret.txt",
]


class StaticFilesTest(WebDirTestCase):
    """web_dir's regular files, and nothing else, over GET and HEAD."""

    def test_files_and_their_content_types(self):
        for name, (data, ctype) in WEB_FILES.items():
            with self.subTest(name=name):
                status, headers, body = self.request("GET", "/" + name)
                self.assertEqual((status, headers.get("content-type"), body), (200, ctype, data))
                self.assertEqual(headers.get("content-length"), str(len(data)))
                self.assertEqual(headers.get("cache-control"), "no-store")

    def test_folders_mean_their_index_html(self):
        index, sub_index = WEB_FILES["index.html"], WEB_FILES["sub/index.html"]
        self.assertAnswer("/", (200, index[1], index[0]))
        self.assertAnswer("/?x=1", (200, index[1], index[0]))
        self.assertAnswer("/sub/", (200, sub_index[1], sub_index[0]))
        self.assertAnswer("/sub", NOT_FOUND)  # a folder without its '/': no redirect

    def test_missing_files_are_404(self):
        for path in ("/missing.html", "/sub/missing.js", "/missing/", "/sub/page.html/x",
                     "/a%20b.html"):
            with self.subTest(path=path):
                self.assertAnswer(path, NOT_FOUND)

    def test_dot_segments_are_resolved_inside_web_dir(self):
        index, page = WEB_FILES["index.html"], WEB_FILES["sub/page.html"]
        for path, (data, ctype) in [("/./index.html", index), ("/sub/../index.html", index),
                                    ("/sub/./page.html", page), ("//sub//page.html", page),
                                    ("/sub/%2e%2e/index.html", index), ("/..", index)]:
            with self.subTest(path=path):
                self.assertAnswer(path, (200, ctype, data))

    def test_traversal_never_leaves_web_dir(self):
        for path in TRAVERSALS:
            with self.subTest(path=path):
                self.assertAnswer(path, NOT_FOUND)

    def test_dotfiles_are_not_served(self):
        for path in ["/" + name for name in DOTFILES] + ["/.git/", "/.git", "/%2ehidden",
                                                         "/sub/%2Eenv"]:
            with self.subTest(path=path):
                self.assertAnswer(path, NOT_FOUND)

    def test_symlinks_leaving_web_dir_are_not_served(self):
        for path in ("/link-out.txt", "/abs-link-out.txt", "/dir-out/secret.txt", "/dir-out/"):
            with self.subTest(path=path):
                self.assertAnswer(path, NOT_FOUND)
        # a link that stays inside is served, typed by the name asked for
        self.assertAnswer("/link-in.html", (200, "text/html; charset=utf-8",
                                            WEB_FILES["index.html"][0]))

    def test_head_sends_the_headers_of_get_and_no_body(self):
        conn = http.client.HTTPConnection(HOST, self.server.port, timeout=5.0)
        try:
            for path in ("/app.js", "/", "/sub/page.html", "/healthz", "/missing.html",
                         "/.hidden"):
                with self.subTest(path=path):
                    got = self.request("GET", path)
                    status, headers, body = request(conn, "HEAD", path)
                    self.assertEqual(body, b"")
                    self.assertEqual(status, got[0])
                    for name in ("content-type", "content-length", "cache-control", "etag"):
                        self.assertEqual(headers.get(name), got[1].get(name), name)
                    # nothing followed the headers: the connection serves the next request
                    self.assertEqual(request(conn, "GET", "/healthz")[::2],
                                     (200, b"ok\n"))
        finally:
            conn.close()

    def test_other_methods_get_405(self):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            for path in ("/index.html", "/", "/missing.html", "/.hidden", "/healthz", "/metrics"):
                with self.subTest(method=method, path=path):
                    status, headers, body = self.request(method, path, body=b"x=1")
                    self.assertEqual((status, headers.get("allow"), body),
                                     (405, "GET, HEAD", b"method not allowed\n"))
        # the files are untouched
        for name in ("index.html", "app.js"):
            self.assertEqual(self.request("GET", "/" + name)[2], WEB_FILES[name][0])

    def test_request_body_of_a_refused_method_is_skipped(self):
        conn = http.client.HTTPConnection(HOST, self.server.port, timeout=5.0)
        try:
            status, _, _ = request(conn, "POST", "/index.html",
                                   body=b"GET /.hidden HTTP/1.1\r\n\r\n")
            self.assertEqual(status, 405)
            self.assertEqual(request(conn, "GET", "/healthz")[::2], (200, b"ok\n"))
        finally:
            conn.close()

    def test_unknown_method_is_refused_by_the_parser(self):
        head = http_raw(HOST, self.server.port, b"BREW /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(head.split(b"\r\n")[0], b"HTTP/1.0 403 Forbidden")

    def test_etag_revalidation(self):
        _, headers, _ = self.request("GET", "/app.js")
        etag = headers.get("etag")
        self.assertRegex(etag or "", r"^[0-9A-F]{16}$")
        status, headers, body = self.request("GET", "/app.js", headers={"If-None-Match": etag})
        self.assertEqual((status, headers.get("etag"), body), (304, etag, b""))
        status, _, body = self.request("GET", "/app.js", headers={"If-None-Match": "0" * 16})
        self.assertEqual((status, body), (200, WEB_FILES["app.js"][0]))


class WebOffTest(WebDirTestCase):
    """server.web = false: every path but /healthz and /metrics is 404."""
    server_settings = {"server": {"web": False}}

    def test_no_file_is_served(self):
        for path in ["/", "/sub/", "/link-in.html"] + ["/" + name for name in WEB_FILES]:
            with self.subTest(path=path):
                self.assertAnswer(path, NOT_FOUND)
        self.assertAnswer("/healthz", (200, TEXT, b"ok\n"))
        self.assertEqual(self.request("GET", "/metrics")[0], 200)
        self.assertEqual(self.request("POST", "/index.html")[0], 405)

    def test_upgrades_still_work(self):
        self.assert_upgrades(["/", "/index.html", "/missing"])


class WebReloadTest(ServerPerTestCase):
    """server.web and web_dir take effect at a reload (SIGHUP)."""

    def reload(self, srv, count, **settings):
        srv.settings.update(settings)
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        done = wait_until(lambda: self.value(self.metrics(), "earshot_reloads_total",
                                             result="ok") == count)
        self.assertTrue(done, "reload %d did not happen; output:\n%s" % (count, srv.output()))

    def test_web_dir_and_web_switch_on_reload(self):
        top, web = make_web_dir()
        self.addCleanup(shutil.rmtree, top, True)
        other = os.path.join(top, "other")
        os.makedirs(other)
        with open(os.path.join(other, "index.html"), "wb") as f:
            f.write(b"<p>other</p>\n")
        srv = self.start({"web_dir": web})
        index = WEB_FILES["index.html"][0]
        self.assertEqual(request(srv.port, "GET", "/")[::2], (200, index))
        self.reload(srv, 1, web_dir=other)
        self.assertEqual(request(srv.port, "GET", "/")[::2], (200, b"<p>other</p>\n"))
        self.assertEqual(request(srv.port, "GET", "/app.js")[::2], NOT_FOUND[::2])
        srv.settings["server"]["web"] = False
        self.reload(srv, 2)
        self.assertEqual(request(srv.port, "GET", "/")[::2], NOT_FOUND[::2])
        self.assertEqual(request(srv.port, "GET", "/healthz")[::2], (200, b"ok\n"))


if __name__ == "__main__":
    unittest.main()
