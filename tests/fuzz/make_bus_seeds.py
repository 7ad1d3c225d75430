#!/usr/bin/env python3
"""Write the seed corpus of fuzz_bus: one packet of every kind of the bus
(src/bus.h), a batch of several, and a few broken ones, into corpus/bus/."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "bus")

TYPES = {"HEARTBEAT": 1, "OPEN": 2, "FRAME": 3, "CLOSED": 4, "OUT": 5, "CLOSE": 6,
         "REHOME": 7, "TOKEN": 8, "RELAY": 9, "RELAY_FAIL": 10}


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">H", len(b)) + b


def byts(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def packet(kind, body, node="n1", inc=0x1122334455667788):
    name = node.encode()
    return (b"eb" + bytes([1, TYPES[kind]]) + struct.pack(">Q", inc) + bytes([len(name)]) + name
            + struct.pack(">I", len(body)) + body)


UPDATE = '{"type":"UpdatePosition","data":{"client_id":"alice","map_id":1,"x":0,"y":0}}'
SEEDS = {
    "heartbeat": packet("HEARTBEAT", b"\x00" + struct.pack(">Q", 7)),
    "leaving": packet("HEARTBEAT", b"\x01" + struct.pack(">Q", 8)),
    "open": packet("OPEN", struct.pack(">Q", 1) + b"\x00" + s("127.0.0.1") + s("") + s("/")
                   + s("token=x") + struct.pack(">H", 1) + s("host") + s("example.org")
                   + s("") + byts(UPDATE)),
    "open_reattach": packet("OPEN", struct.pack(">Q", 2) + b"\x07" + s("::1") + s("tok-en_1")
                            + s("") + s("") + struct.pack(">H", 0) + s("n3") + byts(UPDATE)),
    "frame": packet("FRAME", struct.pack(">Q", 1) + byts('{"type":"RequestPeerRefresh"}')),
    "closed": packet("CLOSED", struct.pack(">Q", 1) + b"\x01"),
    "out": packet("OUT", struct.pack(">Q", 1) + b"\x01" + byts('{"type":"NearbyPeers","data":["bob"]}')),
    "close": packet("CLOSE", struct.pack(">Q", 1) + struct.pack(">H", 1008)),
    "rehome": packet("REHOME", struct.pack(">Q", 1) + b"\x05" + s("tok") + byts(UPDATE)),
    "token": packet("TOKEN", struct.pack(">Q", 1) + s("alice") + s("tok")),
    "relay": packet("RELAY", struct.pack(">Q", 4) + b"\x02" + s("alice") + s("127.0.0.1")
                    + struct.pack(">5i", 0, 1, -5, 7, 0) + s("bob") + byts("v=0")),
    "relay_fail": packet("RELAY_FAIL", struct.pack(">Q", 4) + b"\x02" + b"\x09"
                         + s("Client bob not found")),
}
SEEDS["batch"] = SEEDS["frame"] + SEEDS["out"] + SEEDS["closed"] + SEEDS["close"]
SEEDS["truncated"] = SEEDS["open"][:-5]
SEEDS["bad_version"] = SEEDS["frame"][:2] + b"\x02" + SEEDS["frame"][3:]

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), OUT))
