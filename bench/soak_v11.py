#!/usr/bin/env python3
"""One wave of the protocol v1.1 paths for bench/soak, against a running
earshot on 127.0.0.1:PORT whose config has session.max_peers (the cap),
a short session.resume_grace and a `turn` group with a secret.

    soak_v11.py PORT WAVE MAX_PEERS GRACE

  crowd   CROWD clients register at one spot of a map of their own: every
          one is in range of every other, so each list is capped. Checked
          through RequestPeerRefresh: at most MAX_PEERS ids, never itself,
          symmetric (A lists B exactly when B lists A).
  turn    every crowd client sends RequestIceServers: the answer lists the
          STUN server and the TURN server with a username "<expiry>:<id>"
          and a credential.
  resume  RESUMABLE clients register with "resumable": true and get a
          Session; their TCP connections are all cut (no close frame). Half
          come back with their token and get their list and a new Session;
          the other half never do, and their holds expire after GRACE.
  end     everyone says goodbye (Disconnect); the script waits until the
          server counts no connection, no client and no held session.

Prints one line of JSON: what was checked and the counters it moved.
Exits 1 when a check fails. Standard library only (tests/integration's
strict WebSocket client).
"""

import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from wsclient import ConnectionClosed, NoMessage, WebSocket  # noqa: E402

CROWD = 60
RESUMABLE = 100
HOST = "127.0.0.1"


def metrics(port):
    body = urllib.request.urlopen("http://%s:%d/metrics" % (HOST, port), timeout=5).read()
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def position(cid, map_id, x, y, **extra):
    d = {"client_id": cid, "map_id": map_id, "x": x, "y": y}
    d.update(extra)
    return {"type": "UpdatePosition", "data": d}


def next_of(ws, type_, timeout=10.0):
    """The next message of type_, skipping NearbyPeers sent meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        msg = ws.recv_json(max(deadline - time.monotonic(), 0.01))
        if msg.get("type") == type_:
            return msg
        if msg.get("type") != "NearbyPeers":
            raise AssertionError("expected %s, got %r" % (type_, msg))


def drain(ws, seconds=0.05):
    try:
        while True:
            ws.recv_json(seconds)
    except NoMessage:
        pass


def goodbye(ws):
    try:
        ws.send_json({"type": "Disconnect", "data": None})
        ws.expect_close(5.0)
    except (ConnectionClosed, OSError, AssertionError):
        pass
    ws.sock.close()


def main():
    port, wave, max_peers, grace = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                    float(sys.argv[4]))
    failures = []
    before = metrics(port)
    crowd_map = 100000 + wave
    resume_map = 200000 + wave

    # ---- crowd over the cap, and TURN requests
    crowd = {}
    for i in range(CROWD):
        cid = "crowd-%d-%d" % (wave, i)
        ws = WebSocket(HOST, port, timeout=10.0)
        ws.send_json(position(cid, crowd_map, i % 8, i // 8))
        next_of(ws, "NearbyPeers")
        crowd[cid] = ws
    lists = {}
    for cid, ws in crowd.items():
        drain(ws)
        ws.send_json({"type": "RequestPeerRefresh", "data": None})
        lists[cid] = set(next_of(ws, "NearbyPeers")["data"])
    for cid, peers in lists.items():
        if len(peers) > max_peers or cid in peers or not peers:
            failures.append("crowd: %s lists %d peers" % (cid, len(peers)))
        for p in peers:
            if cid not in lists.get(p, ()):
                failures.append("crowd: %s lists %s but not the other way" % (cid, p))
    capped = sum(1 for p in lists.values() if len(p) == max_peers)
    for cid, ws in crowd.items():
        ws.send_json({"type": "RequestIceServers", "data": None})
        ice = next_of(ws, "IceServers")["data"]
        turn = [s for s in ice["ice_servers"] if any(u.startswith("turn:") for u in s["urls"])]
        if (len(turn) != 1 or not turn[0]["username"].endswith(":" + cid)
                or not turn[0]["credential"] or ice["ttl"] <= 0):
            failures.append("turn: %s got %r" % (cid, ice))

    # ---- resumes, and holds that expire
    tokens = {}
    for i in range(RESUMABLE):
        cid = "res-%d-%d" % (wave, i)
        ws = WebSocket(HOST, port, timeout=10.0)
        ws.send_json(position(cid, resume_map, (i % 10) * 30, (i // 10) * 30, resumable=True))
        next_of(ws, "NearbyPeers")
        tokens[cid] = next_of(ws, "Session")["data"]["resume_token"]
        ws.abort(reset=True)  # lost: no Disconnect, no close frame
    held_at = time.monotonic()
    back = []
    for i, (cid, token) in enumerate(tokens.items()):
        if i % 2:
            continue  # this one never comes back: its hold expires
        ws = WebSocket(HOST, port, timeout=10.0)
        ws.send_json(position(cid, resume_map, (i % 10) * 30, (i // 10) * 30,
                              resume_token=token))
        try:
            next_of(ws, "NearbyPeers")
            next_of(ws, "Session")
        except (AssertionError, ConnectionClosed, NoMessage) as exc:
            failures.append("resume: %s: %s" % (cid, exc))
        back.append(ws)
    time.sleep(max(grace + 1.5 - (time.monotonic() - held_at), 0.0))

    # ---- everyone leaves
    for ws in list(crowd.values()) + back:
        goodbye(ws)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        m = metrics(port)
        if (m.get("earshot_connections", 1) == 0 and m.get("earshot_clients", 1) == 0
                and m.get("earshot_held_sessions", 1) == 0):
            break
        time.sleep(0.2)
    after = metrics(port)

    def moved(name):
        return after.get(name, 0.0) - before.get(name, 0.0)

    resumed = int(moved("earshot_resumes_total"))
    expired = int(moved("earshot_resume_holds_expired_total"))
    if resumed != RESUMABLE // 2:
        failures.append("resumes: %d, expected %d" % (resumed, RESUMABLE // 2))
    if expired != RESUMABLE - RESUMABLE // 2:
        failures.append("expired holds: %d, expected %d" % (expired, RESUMABLE - RESUMABLE // 2))
    for name in ("earshot_connections", "earshot_clients", "earshot_held_sessions"):
        if after.get(name, -1) != 0:
            failures.append("%s is %r after the wave" % (name, after.get(name)))
    print(json.dumps({
        "crowd": CROWD, "capped_lists": capped,
        "capped_out": int(moved("earshot_capped_out_total")),
        "ice_servers": int(moved('earshot_messages_in_total{type="RequestIceServers"}')),
        "resumed": resumed, "holds_expired": expired,
        "failures": failures[:10], "passed": not failures}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
