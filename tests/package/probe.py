#!/usr/bin/env python3
"""Probe an earshot on 127.0.0.1:PORT as a freshly installed one is checked:
/healthz answers 200 "ok", / serves the demo page, and two clients near each
other are matched. Prints one "ok:" line per check; exits non-zero on the
first that fails.

    probe.py PORT
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from wsclient import WebSocket, await_peers, http_get  # noqa: E402


def get(port, path):
    status, _, body = http_get("127.0.0.1", port, path)
    return status, body.decode("utf-8", "replace")


def main():
    port = int(sys.argv[1])
    deadline = time.monotonic() + 20
    status, body, err = None, "", None
    while time.monotonic() < deadline:
        try:
            status, body = get(port, "/healthz")
            if status == 200:
                break
        except OSError as exc:
            err = exc
        time.sleep(0.2)
    if status != 200 or body.strip() != "ok":
        raise AssertionError("/healthz: status %r body %r error %r" % (status, body, err))
    print("package: ok: GET /healthz answers 200 ok")
    status, body = get(port, "/")
    if status != 200 or "<title>earshot demo</title>" not in body:
        raise AssertionError("GET / (the demo page from the web dir): status %r, %r" % (status,
                                                                                     body[:200]))
    print("package: ok: GET / serves the demo page from the installed web dir")
    a = WebSocket("127.0.0.1", port)
    b = WebSocket("127.0.0.1", port)
    a.send_msg("UpdatePosition", {"client_id": "deb-a", "map_id": 1, "x": 0, "y": 0})
    b.send_msg("UpdatePosition", {"client_id": "deb-b", "map_id": 1, "x": 3, "y": 4})
    await_peers(a, ["deb-b"])
    await_peers(b, ["deb-a"])
    print("package: ok: two WebSocket clients are matched by the installed plugins")
    a.send_close()
    b.send_close()


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, OSError) as exc:
        print("package: FAIL: %s" % exc, file=sys.stderr)
        sys.exit(1)
