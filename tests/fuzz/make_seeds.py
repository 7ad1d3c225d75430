#!/usr/bin/env python3
"""Write the seed corpus of fuzz_core: short sessions of realistic traffic in
the harness's record format [op][len lo][len hi][payload], op = slot | action<<2.
Run from this folder; the seeds are committed, this only documents them."""
import json
import os

TEXT, BINARY, CLOSE, TICK, DRAIN, TOOBIG = 0, 3, 4, 5, 6, 7


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
}
os.makedirs("corpus/core", exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join("corpus/core", name), "wb") as f:
        f.write(data)
print("wrote", len(seeds), "seeds")
