"""Closes the server starts while the client is still sending (PROTOCOL.md,
"lingering close"): the client gets what was queued before the close, then
the close frame with its code, never a TCP reset.

The defect these tests pin down: a socket closed while the client's unread
frames sit in its receive buffer makes the kernel answer with a reset, and
a reset makes the client's kernel throw away what it had received but the
client had not read yet: the Errors, and the close frame itself.

Each test sends more than the server will read before it closes, on a
connection with a small receive buffer, and reads only once the server has
counted the close: so the server's last messages and its close frame are
still on their way when it closes, where a reset destroys them:

  - a flood past rate_limit_close_after: Errors "rate limited", close 1008;
  - an oversized frame with more frames behind it: Error, close 1009;
  - SIGTERM while a client floods: the Error it had been sent, close 1001;
  - a client that keeps flooding while it reads: close 1008 all the same.
"""

import json
import signal
import socket
import threading
import unittest

from harness import EarshotTestCase, ServerPerTestCase, wait_until
from wsclient import ConnectionClosed, NoMessage, OP_CLOSE, OP_TEXT, encode_frame

POLICY = 1008
TOO_BIG = 1009
GOING_AWAY = 1001

REFRESH = json.dumps({"type": "RequestPeerRefresh", "data": None})


def frames(text, count):
    """count masked text frames of text, as one byte string."""
    one = encode_frame(OP_TEXT, text, mask_key=b"\x01\x02\x03\x04")
    return one * count


def read_until_close(test, ws, timeout=5.0):
    """Every message up to the close frame, and the close code. Fails on a
    TCP end without a close frame (a reset or a bare FIN)."""
    got = []
    while True:
        try:
            got.append(ws.recv_json(timeout))
        except ConnectionClosed as exc:
            test.assertTrue(exc.clean, "TCP ended without a close frame after %d messages: %r"
                            % (len(got), got[-3:]))
            return got, exc.code
        except NoMessage:
            test.fail("no close frame within %.1f s after %r" % (timeout, got[-3:]))


class Flooder:
    """Sends frames on a second descriptor of ws's socket until told to stop or
    the server is gone, so the reading side keeps its own timeouts."""

    def __init__(self, ws, frame):
        self.sock = ws.sock.dup()
        self.sock.settimeout(10.0)
        self.frame = frame
        self.stop = threading.Event()
        self.inject = []  # frames to send once, between two floods
        self.lock = threading.Lock()
        self.sent = 0
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        batch = self.frame * 64
        try:
            while not self.stop.is_set():
                with self.lock:
                    extra, self.inject = self.inject, []
                for f in extra:
                    self.sock.sendall(f)
                self.sock.sendall(batch)
                self.sent += 64
        except OSError as exc:  # the server closed: EPIPE or a reset
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def send_once(self, frame):
        with self.lock:
            self.inject.append(frame)

    def finish(self):
        """Stop, and answer the server's close frame as a client does."""
        self.stop.set()
        self.thread.join(30)
        try:
            self.sock.sendall(encode_frame(OP_CLOSE, b"\x03\xe8"))
        except OSError:
            pass
        self.sock.close()


SMALL_RCVBUF = 4096  # far less than the server's answers: they wait in its send buffer


class LingeringCloseTest(EarshotTestCase):
    """Rate limit: burst 300, a token per 2 s, closed past 4 drops."""
    BURST = 300
    CLOSE_AFTER = 4
    config = {"limits": {"message_rate": 0.5, "message_burst": 300.0,
                         "rate_limit_close_after": 4},
              "server": {"max_frame_bytes": 65536}}

    def closes(self, code):
        return self.value(self.metrics(), "earshot_closes_total", code=str(code))

    def wait_closes(self, code, n):
        self.assertTrue(wait_until(lambda: self.closes(code) >= n, 10.0),
                        "the server did not count the close %d" % code)

    def test_flood_past_close_after_gets_its_errors_then_1008(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0, rcvbuf=SMALL_RCVBUF)  # token 1 of 300
        closed = self.closes(POLICY)
        # 299 pass, 5 are dropped with an Error (the 5th closes), thousands more
        # sit unread in the server's receive buffer when it closes
        a.raw_send(frames(REFRESH, 4000))
        self.wait_closes(POLICY, closed + 1)
        got, code = read_until_close(self, a)
        self.assertEqual(code, POLICY)
        self.assertEqual(got, [{"type": "NearbyPeers", "data": []}] * (self.BURST - 1)
                         + [{"type": "Error", "data": "rate limited"}] * (self.CLOSE_AFTER + 1))

    def test_oversized_frame_among_more_frames_gets_its_error_then_1009(self):
        m = self.new_map()
        a_id = self.cid("a")
        a = self.join(a_id, m, 0, 0, rcvbuf=SMALL_RCVBUF)
        closed = self.closes(TOO_BIG)
        big = json.dumps({"type": "RequestPeerRefresh", "data": None, "pad": "p" * 70000})
        a.raw_send(frames(REFRESH, 250) + encode_frame(OP_TEXT, big) + frames(REFRESH, 4000))
        self.wait_closes(TOO_BIG, closed + 1)
        got, code = read_until_close(self, a)
        self.assertEqual(code, TOO_BIG)
        self.assertEqual(got, [{"type": "NearbyPeers", "data": []}] * 250
                         + [{"type": "Error", "data": "Frame too large (limit 65536 bytes)"}])

    def test_client_flooding_while_it_reads_gets_1008(self):
        """The flood goes on while the client reads: the close frame still
        arrives, after every Error, and the server ends the connection."""
        m = self.new_map()
        a = self.join(self.cid("a"), m, 0, 0, rcvbuf=SMALL_RCVBUF)
        a.close_sent = True  # the flooder owns the sending side
        flood = Flooder(a, frames(REFRESH, 1)).start()
        try:
            got, code = read_until_close(self, a, timeout=10.0)
        finally:
            flood.finish()
        self.assertEqual(code, POLICY)
        self.assertEqual(got, [{"type": "NearbyPeers", "data": []}] * (self.BURST - 1)
                         + [{"type": "Error", "data": "rate limited"}] * (self.CLOSE_AFTER + 1))
        # the server lets the connection go within its lingering bound
        self.wait_metric("earshot_connections", 0, timeout=15.0)


class ShutdownMidFloodTest(ServerPerTestCase):
    def test_sigterm_mid_flood_delivers_the_error_then_1001(self):
        srv = self.start({"limits": {"message_rate": 0.0}})
        m = self.new_map()
        a = self.join(self.cid("a"), m, 0, 0, rcvbuf=SMALL_RCVBUF)
        a.close_sent = True
        # positions that change no list: the server answers nothing
        quiet = b"".join(encode_frame(OP_TEXT, json.dumps(self.position(self.cid("a"), m, x, 0)),
                                      mask_key=b"\x05\x06\x07\x08") for x in (1, 2))
        flood = Flooder(a, quiet).start()
        try:
            errors = lambda: self.value(self.metrics(), "earshot_errors_total", kind="bad_message")
            before = errors()
            # 300 lists (more than the client's window) and an Error, then the stop
            flood.send_once(frames(REFRESH, 300) + encode_frame(OP_TEXT, '{"type":"Nonsense"}'))
            self.assertTrue(wait_until(lambda: errors() == before + 1, 10.0),
                            "the server did not answer the bad message")
            srv.proc.send_signal(signal.SIGTERM)
            got, code = read_until_close(self, a, timeout=10.0)
        finally:
            flood.finish()
        self.assertEqual(code, GOING_AWAY)
        self.assertEqual(got[:-1], [{"type": "NearbyPeers", "data": []}] * 300)
        self.assertEqual(got[-1], {"type": "Error", "data": "Unknown message type: Nonsense"})
        srv.proc.wait(15)
        self.assertEqual(srv.proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
