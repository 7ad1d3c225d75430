#!/usr/bin/env python3
"""bench/admin_cost.py BUILD [CLIENTS] [MAX_PEERS]: what one refresh of the
admin page costs the server (docs/operations.md).

Starts BUILD/earshot with admin on (server on CPU 0) and BUILD's loadgen
(CPU 1) with CLIENTS (1,000) clients on one map at density 5, each moving
once a second. Once they are in, it reads the server's CPU time
(/proc/PID/stat) over 5 s of load alone, then over 100 refreshes back to
back (what web/admin/admin.js asks each REFRESH_MS: maps, the map,
moderation, one client), and prints the CPU one refresh costs beyond the
load, and the size of each answer. All traffic stays on 127.0.0.1.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
MAX_PEERS = int(sys.argv[3]) if len(sys.argv) > 3 else 16
PORT = int(os.environ.get("BENCH_PORT", "18977"))
TOKEN = "cost-measure-token-0123456789"
REFRESHES = 100
PATHS = ["maps", "map?game=0&map=0", "moderation", "client?id=c1"]

fd, cfg_path = tempfile.mkstemp(prefix="earshot-admin-cost-", suffix=".cfg")
with os.fdopen(fd, "w") as f:
    f.write("""server = {{ address = "127.0.0.1"; web = false; }};
session = {{ idle_timeout = 120.0; refresh_interval = 0; max_peers = {mp}; }};
limits = {{ max_connections = 30000; max_connections_per_address = 0; message_rate = 0;
           first_message_timeout = 0; }};
log = {{ level = "warn"; }};
admin = {{ enabled = true; token = "{tok}"; }};
plugin_dir = "{plugins}";
hooks = ( {{ type = "plugin"; name = "relay_guard"; }}, {{ type = "plugin"; name = "proximity"; }} );
""".format(mp=MAX_PEERS, tok=TOKEN, plugins=os.path.join(BUILD, "plugins")))


class Client:
    conn = None

    def get(self, path):
        for _ in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            try:
                self.conn.request("GET", "/admin/api/" + path,
                                  headers={"Authorization": "Bearer " + TOKEN})
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise RuntimeError("%s: HTTP %d %r" % (path, r.status, body[:200]))
                return body
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()  # an idle keep-alive connection the server closed
                self.conn = None
        raise RuntimeError("%s: no answer" % path)


srv = subprocess.Popen(["taskset", "-c", "0", os.path.join(BUILD, "earshot"), "-c", cfg_path,
                        "--port", str(PORT)])
lg = None
try:
    time.sleep(0.5)
    lg = subprocess.Popen(["taskset", "-c", "1", os.path.join(BUILD, "bench", "loadgen", "loadgen"),
                           "--port", str(PORT), "--clients", str(N), "--maps", "1", "--density", "5",
                           "--update-rate", "1", "--relay-rate", "0", "--probe-rate", "10",
                           "--warmup", "2", "--duration", "40", "--settle", "1", "--no-check",
                           "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cpu():
        f = open("/proc/%d/stat" % srv.pid).read().split(") ")[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    c = Client()
    time.sleep(8)
    totals = json.loads(c.get("maps"))["totals"]
    print("clients %d, matched pairs %d, max_peers %d" % (totals["clients"], totals["pairs"], MAX_PEERS))
    print("bytes per answer: " + ", ".join("%s %d" % (p, len(c.get(p))) for p in PATHS))
    t0, c0 = time.monotonic(), cpu()
    time.sleep(5)
    base = (cpu() - c0) / (time.monotonic() - t0)
    t0, c0 = time.monotonic(), cpu()
    for _ in range(REFRESHES):
        for p in PATHS:
            c.get(p)
    t1, c1 = time.monotonic(), cpu()
    per = ((c1 - c0) - base * (t1 - t0)) / REFRESHES
    print("server CPU for the load alone: %.1f%% of a core" % (base * 100))
    print("one refresh: %.2f ms of server CPU (%d refreshes in %.2f s)" % (per * 1000, REFRESHES, t1 - t0))
finally:
    if lg:
        lg.terminate()
        lg.wait()
    srv.terminate()
    srv.wait()
    os.unlink(cfg_path)
