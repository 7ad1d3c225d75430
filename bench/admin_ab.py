#!/usr/bin/env python3
"""bench/admin_ab.py OLD_BUILD NEW_BUILD [ROUNDS]: the hot path with and
without the operator's window, old and new binaries alternating in one
sitting (the way bench/NOTES.md compares builds).

Each round runs two loadgen scenarios (bench/run's "updates" at 25,000
updates/s and "relays" at 20,000 relays/s, 10,000 clients on 10 maps of
1,000) against three servers in turn:

  old        OLD_BUILD/earshot, the stock config of bench/run
  new        NEW_BUILD/earshot, the same config (admin off, as shipped)
  new+page   NEW_BUILD/earshot with admin on, and a poller asking what the
             admin page asks every REFRESH_MS (web/admin/admin.js): maps,
             the map of 1,000 clients, moderation, one client

Server on CPU 0, loadgen on CPU 1, all on 127.0.0.1. Prints one line per
run and the medians of server CPU microseconds per message received and of
the probe round trip, with the ratios to old. Raw lines go to
bench/results/admin_ab.jsonl.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

OLD, NEW = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
PORT = int(os.environ.get("BENCH_PORT", "18860"))
TOKEN = "bench-admin-token-0123456789"
REFRESH_S = 1.0
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results")
os.makedirs(OUT, exist_ok=True)

BASE = """server = {{ address = "127.0.0.1"; send_queue_bytes = 4194304; metrics = "off"; web = false; }};
session = {{ idle_timeout = 120.0; refresh_interval = 0; max_peers = 0; }};
limits = {{ max_connections = 30000; max_connections_per_address = 0; message_rate = 0;
           first_message_timeout = 0; }};
log = {{ level = "warn"; }};
plugin_dir = "{plugins}";
hooks = ( {{ type = "plugin"; name = "relay_guard"; }},
          {{ type = "plugin"; name = "proximity"; settings = {{ radius = 20; leave_radius = 25; }}; }} );
"""
ADMIN = 'admin = {{ enabled = true; token = "{}"; }};\n'.format(TOKEN).replace("{{", "{").replace("}}", "}")

COMMON = ["--clients", "10000", "--maps", "10", "--connect-rate", "5000", "--warmup", "2",
          "--duration", "10", "--settle", "1"]
SCENARIOS = {
    "updates": ["--update-rate", "2.5", "--density", "5", "--probe-rate", "200",
                "--relay-rate", "0", "--probe-marker"],
    "relays": ["--update-rate", "0.2", "--relay-rate", "2", "--relay-bytes", "200",
               "--probe-rate", "200"],
}


def poller(stop, counts):
    """What the admin page asks each refresh, until stop is set."""
    conn = None
    paths = ["maps", "map?game=0&map=0", "moderation", "client?id=c0"]
    while not stop.is_set():
        t = time.monotonic()
        for p in paths:
            for _ in (0, 1):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
                    conn.request("GET", "/admin/api/" + p, headers={"Authorization": "Bearer " + TOKEN})
                    r = conn.getresponse()
                    r.read()
                    counts[r.status] = counts.get(r.status, 0) + 1
                    break
                except (OSError, http.client.HTTPException):
                    if conn:
                        conn.close()
                    conn = None
        stop.wait(max(0.0, REFRESH_S - (time.monotonic() - t)))


def run(variant, scenario, seed):
    build = OLD if variant == "old" else NEW
    cfg = os.path.join(OUT, "admin_ab.cfg")
    with open(cfg, "w") as f:
        f.write(BASE.format(plugins=os.path.join(build, "plugins")))
        if variant == "new+page":
            f.write(ADMIN)
    srv = subprocess.Popen(["taskset", "-c", "0", os.path.join(build, "earshot"), "-c", cfg,
                            "--port", str(PORT)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    stop, counts = threading.Event(), {}
    th = None
    if variant == "new+page":
        th = threading.Thread(target=poller, args=(stop, counts), daemon=True)
        th.start()
    lg = subprocess.run(["taskset", "-c", "1", os.path.join(NEW, "bench", "loadgen", "loadgen"),
                         "--port", str(PORT), "--server-pid", str(srv.pid), "--json", "--seed",
                         str(seed)] + COMMON + SCENARIOS[scenario],
                        capture_output=True, text=True, timeout=300)
    stop.set()
    if th:
        th.join()
    srv.terminate()
    srv.wait()
    try:
        d = json.loads(lg.stdout)
    except ValueError:
        d = {"error": lg.stderr[-500:]}
    d.update(bench_variant=variant, bench_scenario=scenario, bench_seed=seed, admin_answers=counts)
    with open(os.path.join(OUT, "admin_ab.jsonl"), "a") as f:
        f.write(json.dumps(d) + "\n")
    return d


def us_per_msg(d):
    v = d.get("server", {}).get("cpu_ms_per_1000_msgs")
    return None if v is None else float(v)


def probe_p50(d):
    return (d.get("probe_latency_ms") or {}).get("p50")


results = {}
for r in range(ROUNDS):
    for scenario in SCENARIOS:
        for variant in ("old", "new", "new+page"):
            d = run(variant, scenario, r + 1)
            u = us_per_msg(d)
            results.setdefault((scenario, variant), []).append(d)
            print("%-8s %-9s seed %d: %s us/msg, probe p50 %s ms, check %s, admin answers %s"
                  % (scenario, variant, r + 1, u, probe_p50(d), (d.get("check") or {}).get("passed"),
                     d["admin_answers"]), flush=True)
print()
for scenario in SCENARIOS:
    old = statistics.median(us_per_msg(d) for d in results[(scenario, "old")])
    for variant in ("old", "new", "new+page"):
        vals = [us_per_msg(d) for d in results[(scenario, variant)]]
        med = statistics.median(vals)
        p50 = statistics.median(probe_p50(d) for d in results[(scenario, variant)])
        print("%-8s %-9s us/msg %s median %.2f ratio to old %.3f; probe p50 median %.2f ms" % (
            scenario, variant, ", ".join("%.2f" % v for v in vals), med, med / old, p50))
