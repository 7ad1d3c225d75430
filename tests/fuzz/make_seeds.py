#!/usr/bin/env python3
"""Write the seed corpus of fuzz_core: short sessions of realistic traffic in
the harness's record format [op][len lo][len hi][payload], op = slot | action<<2.
Run from this folder; the seeds are committed, this only documents them."""
import json
import os

TEXT, TOKEN_TEXT, BINARY, CLOSE, TICK, DRAIN, TOOBIG = 0, 2, 3, 4, 5, 6, 7


def rec(slot, action, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    return bytes([slot | action << 2, n & 0xFF, (n >> 8) & 0x1F]) + payload


def msg(slot, type_, data=None):
    return rec(slot, TEXT, json.dumps({"type": type_, "data": data}))


def pos(slot, cid, map_id, x, y, **extra):
    d = {"client_id": cid, "map_id": map_id, "x": x, "y": y}
    d.update(extra)
    return msg(slot, "UpdatePosition", d)


def resume(slot, cid, map_id, x, y, token="$TOKEN", **extra):
    """UpdatePosition with a resume token; "$TOKEN" becomes the last one issued."""
    d = {"client_id": cid, "map_id": map_id, "x": x, "y": y, "resume_token": token}
    d.update(extra)
    return rec(slot, TOKEN_TEXT, json.dumps({"type": "UpdatePosition", "data": d}))


def drain_all():
    return b"".join(rec(i, DRAIN) for i in range(4))


seeds = {
    "mesh": pos(0, "a", 1, 0, 0) + pos(1, "b", 1, 10, 0) + pos(2, "c", 1, 5, 5)
    + msg(0, "SendOffer", {"target_id": "b", "offer": "v=0 sdp"})
    + msg(1, "SendAnswer", {"target_id": "a", "answer": "v=0 answer"})
    + msg(0, "SendIceCandidate", {"target_id": "b", "candidate": "candidate:1"})
    + drain_all() + pos(1, "b", 1, 60, 0) + msg(0, "RequestPeerRefresh") + drain_all()
    + msg(2, "Disconnect") + drain_all(),
    "takeover": pos(0, "x", 1, 0, 0) + pos(2, "x", 1, 1, 1) + pos(1, "x", 1, 2, 2)
    + drain_all() + msg(3, "SendOffer", {"target_id": "x", "offer": "o"}) + drain_all(),
    "maps": pos(0, "p", 3, 0, 0) + pos(1, "q", 3, 7, 0) + pos(2, "r", 3, 9, 0)
    + pos(3, "s", 1, 0, 0, channel=2, game_id=7) + pos(1, "q", 3, 9, 0) + pos(1, "q", 4, 9, 0)
    + drain_all(),
    "bad": rec(0, TEXT, "{") + rec(0, TEXT, "[]") + rec(0, TEXT, '{"type":1}')
    + rec(0, TEXT, '{"type":"Nope"}') + rec(0, BINARY, b"\x00\x01")
    + msg(0, "SendOffer", {"target_id": "", "offer": 1})
    + pos(0, "a", 2147483647, -2147483648, 2147483647)
    + rec(0, TEXT, '{"type":"UpdatePosition","data":{"client_id":"b","map_id":1e400,"x":0,"y":0}}')
    + rec(1, TOOBIG) + drain_all(),
    "timeouts": pos(0, "a", 1, 0, 0) + pos(1, "b", 1, 3, 4) + rec(0, TICK, b"x" * 40)
    + pos(0, "a", 1, 1, 0) + rec(0, TICK, b"x" * 60) + drain_all() + rec(2, TICK, b"x" * 100)
    + drain_all(),
    "flood": pos(0, "a", 1, 0, 0) + pos(1, "b", 1, 1, 0)
    + b"".join(msg(0, "SendOffer", {"target_id": "b", "offer": "z" * 1000}) for _ in range(30))
    + rec(1, CLOSE) + drain_all(),
    "ice": msg(0, "RequestIceServers") + pos(0, "q\"\\\u00e9\U0001F3A7", 1, 0, 0)
    + msg(0, "RequestIceServers") + rec(0, TEXT, '{"type":"RequestIceServers"}')
    + pos(1, "b", 1, 3, 0) + msg(1, "RequestIceServers", {"x": [1]}) + drain_all(),
    # protocol v1.1: resumes, holds that expire, goodbyes, the crowd cap
    "resume": pos(0, "r", 1, 0, 0, resumable=True) + pos(1, "p", 1, 3, 0) + drain_all()
    + rec(0, CLOSE) + msg(1, "SendOffer", {"target_id": "r", "offer": "kept"})
    + msg(1, "SendIceCandidate", {"target_id": "r", "candidate": "c"})
    + resume(0, "r", 1, 1, 0) + drain_all() + resume(2, "r", 1, 2, 0) + drain_all()
    + msg(0, "RequestIceServers") + drain_all(),
    "resume_refused": pos(0, "r", 1, 0, 0, resumable=True) + drain_all() + rec(0, CLOSE)
    + resume(1, "r", 1, 0, 0, token="not-a-token") + resume(2, "other", 1, 0, 0)
    + rec(3, TEXT, '{"type":"UpdatePosition","data":{"client_id":"r","map_id":1,"x":0,"y":0,'
                   '"resumable":1,"resume_token":null}}') + drain_all(),
    "hold_expires": pos(0, "h", 1, 0, 0, resumable=True) + pos(1, "k", 1, 2, 0) + drain_all()
    + rec(0, CLOSE) + b"".join(msg(1, "SendOffer", {"target_id": "h", "offer": str(i)})
                               for i in range(5))
    + rec(1, TICK, b"x" * 80) + drain_all() + resume(2, "h", 1, 0, 0) + drain_all(),
    "goodbye": pos(0, "g", 1, 0, 0, resumable=True) + drain_all() + rec(0, CLOSE, b"x")
    + resume(1, "g", 1, 0, 0) + pos(2, "g", 1, 0, 0, resumable=False) + drain_all(),
    "crowd": pos(0, "c0", 1, 0, 0) + pos(1, "c1", 1, 1, 0) + pos(2, "c2", 1, 2, 0)
    + pos(3, "c3", 1, 3, 0) + drain_all() + pos(3, "c3", 1, 0, 1) + pos(0, "c0", 1, 9, 9)
    + pos(1, "c1", 1, 9, 8) + drain_all() + msg(2, "Disconnect") + drain_all(),
    "utf8": pos(0, "u", 1, 0, 0) + rec(0, TEXT, b'{"type":"RequestPeerRefresh","x":"\xff"}')
    + rec(1, TEXT, b"\xc3") + drain_all(),
}
os.makedirs("corpus/core", exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join("corpus/core", name), "wb") as f:
        f.write(data)
print("wrote", len(seeds), "seeds")
