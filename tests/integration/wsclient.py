"""A small, strict RFC 6455 WebSocket client for the earshot integration tests.

Standard library only. Blocking sockets with deadlines; nothing is lost when a
read times out halfway through a frame (bytes stay in the buffer for the next
call). Server frames are checked strictly: unmasked, no RSV bits, control frames
short and unfragmented, text frames valid UTF-8, so that a server violating the
framing rules fails a test instead of being silently tolerated.

The test-facing helpers (recv_json, expect_nothing, expect_close) raise
AssertionError subclasses so that unittest reports a failure, not an error.
"""

import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OPCODE_NAMES = {
    OP_CONT: "continuation",
    OP_TEXT: "text",
    OP_BINARY: "binary",
    OP_CLOSE: "close",
    OP_PING: "ping",
    OP_PONG: "pong",
}


class WebSocketError(Exception):
    """Base class of the errors raised by this module."""


class HandshakeError(WebSocketError):
    def __init__(self, message, status=None, headers=None, body=b""):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body = body


class ProtocolError(AssertionError, WebSocketError):
    """The server broke RFC 6455 framing (or the earshot framing rules)."""


class NoMessage(AssertionError, WebSocketError):
    """Nothing arrived before the deadline."""


class ConnectionClosed(AssertionError, WebSocketError):
    """The server sent a close frame (code/reason set) or the TCP stream ended (code None)."""

    def __init__(self, code, reason, clean):
        self.code = code
        self.reason = reason
        self.clean = clean
        if clean:
            text = "connection closed by server with close frame code=%r reason=%r" % (code, reason)
        else:
            text = "connection closed by server without a close frame (TCP EOF/reset)"
        super().__init__(text)


class Message:
    """One complete data message (text or binary)."""

    def __init__(self, opcode, payload, frames):
        self.opcode = opcode
        self.payload = payload
        self.frames = frames  # number of frames it arrived in

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def __repr__(self):
        body = self.payload[:300]
        more = "..." if len(self.payload) > 300 else ""
        return "<%s message %r%s (%d bytes, %d frames)>" % (
            OPCODE_NAMES.get(self.opcode, self.opcode), body, more, len(self.payload), self.frames)


def _no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError("duplicate key %r in server JSON" % key)
        obj[key] = value
    return obj


def parse_json_strict(text):
    """json.loads that rejects duplicate keys and NaN/Infinity (not JSON)."""

    def bad_constant(name):
        raise ValueError("non-JSON constant %s in server JSON" % name)

    return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=bad_constant)


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None, length_override=None):
    """Build one frame. length_override lets hostile tests lie about the length."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    length = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    if mask_key is None:
        mask_key = os.urandom(4)
    return header + mask_key + _apply_mask(payload, mask_key)


def _apply_mask(payload, key):
    if not payload:
        return b""
    n = len(payload)
    full = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")


class WebSocket:
    """A blocking client connection.

    ws = WebSocket("127.0.0.1", port, path="/?token=x", headers={"X-A": "b"},
                   source_addr="127.0.0.2")
    """

    def __init__(self, host, port, path="/", headers=None, source_addr=None,
                 timeout=5.0, auto_pong=True, rcvbuf=None):
        self.host = host
        self.port = port
        self.path = path
        self.auto_pong = auto_pong
        self.send_timeout = max(timeout, 10.0)
        self._buf = bytearray()
        self._frag_opcode = None
        self._frag_parts = []
        self._frag_frames = 0
        self.close_sent = False
        self.close_received = None  # (code, reason) once the server's close frame is read
        self.eof = False
        self.pings_received = []
        self.pongs_received = []
        self.response_headers = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:  # before connect, so the advertised window stays small
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source_addr:
                self.sock.bind((source_addr, 0))
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._handshake(headers or {}, timeout)
        except BaseException:
            self.sock.close()
            raise

    # ----------------------------------------------------------------- handshake
    def _handshake(self, headers, timeout):
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [
            "GET %s HTTP/1.1" % self.path,
            "Host: %s:%d" % (self.host, self.port),
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: %s" % key,
            "Sec-WebSocket-Version: 13",
        ]
        for name, value in headers.items():
            lines.append("%s: %s" % (name, value))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            if not self._fill(deadline):
                raise HandshakeError("server closed the connection during the handshake: %r"
                                     % bytes(self._buf))
        end = self._buf.index(b"\r\n\r\n")
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        resp = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            resp[name.strip().lower()] = value.strip()
        self.response_headers = resp
        if status != 101:
            raise HandshakeError("expected 101, got %r (%s)" % (status, status_line), status, resp,
                                 bytes(self._buf))
        if resp.get("upgrade", "").lower() != "websocket":
            raise HandshakeError("bad Upgrade header %r" % resp.get("upgrade"), status, resp)
        if "upgrade" not in [t.strip().lower() for t in resp.get("connection", "").split(",")]:
            raise HandshakeError("bad Connection header %r" % resp.get("connection"), status, resp)
        if resp.get("sec-websocket-accept") != accept_key(key):
            raise HandshakeError("bad Sec-WebSocket-Accept %r (expected %r)"
                                 % (resp.get("sec-websocket-accept"), accept_key(key)), status, resp)

    # ---------------------------------------------------------------- low level
    def _fill(self, deadline):
        """Read more bytes into the buffer. False on EOF; socket.timeout past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    def _need(self, n, deadline):
        while len(self._buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(None, "", False)

    def raw_send(self, data):
        """Send bytes as they are (hostile tests). Reads leave the socket's
        timeout at whatever their deadline left (possibly a millisecond), so
        a send sets its own: a busy server is waited for, not a failure."""
        self.sock.settimeout(self.send_timeout)
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None):
        self.raw_send(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv, mask_key=mask_key))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_json(self, obj):
        self.send_text(json.dumps(obj, ensure_ascii=False))

    def send_msg(self, type_, data=None, **extra):
        """Send {"type": type_, "data": data}; data omitted when it is the special value OMIT."""
        obj = {"type": type_}
        if data is not OMIT:
            obj["data"] = data
        obj.update(extra)
        self.send_json(obj)

    def send_ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload=b""):
        self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=""):
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
        self.send_frame(OP_CLOSE, payload)
        self.close_sent = True

    def send_fragmented(self, opcode, parts, between=None):
        """Send one message as len(parts) frames; between(i) is called after frame i
        (except the last), e.g. to interleave a ping."""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self.send_frame(opcode if i == 0 else OP_CONT, part, fin=last)
            if not last and between is not None:
                between(i)

    def recv_frame(self, timeout=3.0):
        """One raw frame: (fin, opcode, payload). Validates server framing."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self._buf[0], self._buf[1]
        fin = bool(b0 & 0x80)
        rsv = (b0 >> 4) & 0x7
        opcode = b0 & 0xF
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            self._need(4, deadline)
            length = struct.unpack("!H", self._buf[2:4])[0]
            pos = 4
            if length < 126:
                raise ProtocolError("server used a 16-bit length for a %d-byte payload" % length)
        elif length == 127:
            self._need(10, deadline)
            length = struct.unpack("!Q", self._buf[2:10])[0]
            pos = 10
            if length < 65536 or length >> 63:
                raise ProtocolError("server used a bad 64-bit length %d" % length)
        if masked:
            raise ProtocolError("server sent a masked frame")
        if rsv:
            raise ProtocolError("server set RSV bits %d without an extension" % rsv)
        if opcode not in OPCODE_NAMES:
            raise ProtocolError("server sent reserved opcode 0x%x" % opcode)
        if opcode >= 0x8 and (length > 125 or not fin):
            raise ProtocolError("server sent a bad control frame (len %d, fin %s)" % (length, fin))
        self._need(pos + length, deadline)
        payload = bytes(self._buf[pos:pos + length])
        del self._buf[:pos + length]
        return fin, opcode, payload

    def recv_message(self, timeout=3.0):
        """The next data message. Pings are answered, pongs recorded. A close frame
        from the server is answered and raised as ConnectionClosed(code, reason, True);
        EOF as ConnectionClosed(None, '', False). Timeout: NoMessage."""
        if self.close_received is not None:
            raise ConnectionClosed(self.close_received[0], self.close_received[1], True)
        if self.eof and not self._buf:
            raise ConnectionClosed(None, "", False)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fin, opcode, payload = self.recv_frame(max(deadline - time.monotonic(), 0.000001))
            except socket.timeout:
                raise NoMessage("no message within %.2fs" % timeout) from None
            if opcode == OP_PING:
                self.pings_received.append(payload)
                if self.auto_pong and not self.close_sent:
                    try:
                        self.send_pong(payload)
                    except OSError:
                        pass
                continue
            if opcode == OP_PONG:
                self.pongs_received.append(payload)
                continue
            if opcode == OP_CLOSE:
                code, reason = None, ""
                if len(payload) == 1:
                    raise ProtocolError("close frame with a 1-byte payload")
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    try:
                        reason = payload[2:].decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("close reason is not UTF-8: %r" % payload[2:]) from None
                self.close_received = (code, reason)
                if not self.close_sent:
                    try:
                        self.send_close(code if code is not None else 1000)
                    except OSError:
                        pass
                raise ConnectionClosed(code, reason, True)
            if opcode == OP_CONT:
                if self._frag_opcode is None:
                    raise ProtocolError("continuation frame without a message to continue")
                self._frag_parts.append(payload)
                self._frag_frames += 1
            else:
                if self._frag_opcode is not None:
                    raise ProtocolError("new data frame inside a fragmented message")
                self._frag_opcode = opcode
                self._frag_parts = [payload]
                self._frag_frames = 1
            if not fin:
                continue
            msg = Message(self._frag_opcode, b"".join(self._frag_parts), self._frag_frames)
            self._frag_opcode = None
            self._frag_parts = []
            self._frag_frames = 0
            if msg.opcode == OP_TEXT:
                try:
                    msg.payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("server text message is not valid UTF-8: %r" % msg) from None
            return msg

    # ------------------------------------------------------------ test helpers
    def recv_json(self, timeout=3.0):
        """The next message, parsed. Server messages must be single unfragmented text frames."""
        msg = self.recv_message(timeout)
        if msg.opcode != OP_TEXT:
            raise ProtocolError("expected a text message, got %r" % msg)
        if msg.frames != 1:
            raise ProtocolError("server fragmented a message into %d frames (PROTOCOL.md: "
                                "server messages are never fragmented)" % msg.frames)
        try:
            return parse_json_strict(msg.text)
        except ValueError as exc:
            raise ProtocolError("server sent invalid JSON (%s): %r" % (exc, msg)) from None

    def expect_nothing(self, seconds=0.3):
        """Assert that no data message and no close arrives within `seconds`."""
        try:
            msg = self.recv_message(seconds)
        except NoMessage:
            return
        except ConnectionClosed as exc:
            raise AssertionError("expected nothing, but %s" % exc) from None
        try:
            shown = parse_json_strict(msg.text)
        except (ValueError, UnicodeDecodeError):
            shown = msg
        raise AssertionError("expected nothing, but received %r" % (shown,))

    def expect_close(self, timeout=3.0):
        """Assert the next thing is the end of the connection; return the close code
        (None when the TCP stream ended without a close frame)."""
        try:
            msg = self.recv_message(timeout)
        except ConnectionClosed as exc:
            return exc.code
        except NoMessage:
            raise AssertionError("expected the server to close the connection within %.1fs"
                                 % timeout) from None
        raise AssertionError("expected the connection to close, but received %r" % msg)

    def wait_eof(self, timeout=3.0):
        """After a close handshake: True when the server ends the TCP stream in time."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                if not self._fill(deadline):
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self, code=1000):
        """Polite close: send a close frame (if still possible), wait briefly, drop the socket."""
        try:
            if not self.close_sent and self.close_received is None and not self.eof:
                self.send_close(code)
                deadline = time.monotonic() + 1.0
                while self.close_received is None and time.monotonic() < deadline:
                    try:
                        self.recv_message(max(deadline - time.monotonic(), 0.001))
                    except (WebSocketError, OSError):
                        break
        except OSError:
            pass
        finally:
            self.sock.close()

    def abort(self, reset=False):
        """Drop the TCP connection without a close frame; reset=True sends an RST."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class _Omit:
    def __repr__(self):
        return "OMIT"


OMIT = _Omit()


def http_get(host, port, path, headers=None, timeout=5.0):
    """Plain HTTP GET. Returns (status, {lowercase header: value}, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def await_peers(ws, expected, timeout=10.0):
    """Read messages until a NearbyPeers lists exactly `expected` (in any order),
    skipping others; returns that list sorted. AssertionError with the last list
    seen when none does within timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            msg = ws.recv_json(deadline - time.monotonic())
        except NoMessage:
            break
        if msg.get("type") == "NearbyPeers":
            last = sorted(msg["data"])
            if last == sorted(expected):
                return last
    raise AssertionError("NearbyPeers never listed %r (last: %r)" % (sorted(expected), last))


def http_raw(host, port, request, timeout=3.0):
    """Send raw bytes, return the raw response head (up to the blank line) or what
    arrived before EOF/timeout. For malformed-handshake tests."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        sock.close()
