#!/usr/bin/env python3
"""Turn bench/run's raw results into bench/RESULTS.md and two plots.

Usage: report.py RESULTS_DIR BENCH_DIR
Reads RESULTS_DIR/runs.jsonl (one loadgen JSON object per run, tagged with
bench_scenario and bench_server) and RESULTS_DIR/inproc.jsonl (bench/inproc's lines);
writes BENCH_DIR/RESULTS.md, BENCH_DIR/latency.png, BENCH_DIR/cpu.png.
Standard library only; the plots come from gnuplot.
"""
import datetime
import json
import os
import platform
import subprocess
import sys


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def us_per_msg(r):
    v = get(r, "server", "cpu_ms_per_1000_msgs")
    return None if v is None else float(v)  # ms per 1000 messages = microseconds per message


def msgs_per_s(r):
    w = get(r, "window_s")
    n = get(r, "server_msgs_in_window")
    return None if not w or n is None else n / w


def sends_per_msg(r):
    """Messages the server wrote per message it received: lists, relays, Errors,
    and one probe-marker Error per probe when the generator used markers."""
    rx = get(r, "received_per_s", default={})
    out = sum(float(rx.get(k, 0.0)) for k in ("nearby_peers", "relays", "errors", "pings"))
    if get(r, "config", "probe_marker"):
        out += float(get(r, "achieved_per_s", "probes", default=0.0))
    m = msgs_per_s(r)
    return None if not m else out / m


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%." + str(digits) + "f") % v
    return str(v)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    model = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": sh("free -h | awk '/Mem:/{print $2}'"),
        "kernel": platform.release(),
        "commit": sh("git rev-parse --short HEAD"),
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "nofile": sh("sh -c 'ulimit -n'"),
    }


def pick(runs, scenario, server):
    return [r for r in runs if r.get("bench_scenario") == scenario and r.get("bench_server") == server]


def main():
    res, bench = sys.argv[1], sys.argv[2]
    runs = load(os.path.join(res, "runs.jsonl"))
    inproc = load(os.path.join(res, "inproc.jsonl"))
    m = machine()
    out = []
    w = out.append
    verdicts = []

    w("# earshot benchmark results\n")
    w("Produced by `bench/run` (see it for the exact scenarios). Both servers run libwebsockets on "
      "a libev (epoll) loop. Machine: %s, %s cores, %s RAM, "
      "Linux %s, open-file limit %s; commit %s, %s. The server under test ran pinned to CPU 0, "
      "the load generator (`bench/loadgen`) to CPU 1, over loopback. Server CPU is user + system "
      "time of the server process from /proc over the measurement window, so it includes the "
      "kernel's TCP work; \"per message\" divides it by every message the server received in the "
      "window. The floor (`bench/floor`) is the cheapest server on the same stack: libwebsockets "
      "receive, a jansson parse of every frame, a reply only to RequestPeerRefresh, no state. "
      "Ratios to the floor come from the same run of the script, so they survive a noisy "
      "machine better than absolute numbers.\n" % (m["cpu"], m["cores"], m["memory"], m["kernel"],
                                                      m["nofile"], m["commit"], m["date"]))

    # ---- updates against offered rate
    w("## Position updates against offered rate\n")
    w("10,000 clients on one map at density 5 (about 5 others within 20 units each), random walk, "
      "200 RequestPeerRefresh probes/s for queueing delay. Updates/s is what the server "
      "processed; the probe is a round trip.\n")
    w("| offered updates/s | floor µs/msg | earshot µs/msg | ratio | earshot updates/s | "
      "earshot probe p50 / p99 ms | floor probe p50 / p99 ms | bottleneck (earshot run) | check |")
    w("|---|---|---|---|---|---|---|---|---|")
    lat_rows = []
    best_ratio_10k = None
    max_rate = 0.0
    for e in pick(runs, "updates", "earshot"):
        offered = get(e, "offered_per_s", "updates", default=0.0)
        f = next((r for r in pick(runs, "updates", "floor")
                  if get(r, "offered_per_s", "updates") == offered), None)
        ue, uf = us_per_msg(e), us_per_msg(f) if f else None
        rt = ratio(ue, uf)
        ach = get(e, "achieved_per_s", "updates")
        pe = (get(e, "probe_latency_ms", "p50"), get(e, "probe_latency_ms", "p99"))
        pf = (get(f, "probe_latency_ms", "p50"), get(f, "probe_latency_ms", "p99")) if f else (None, None)
        check = "pass" if get(e, "check", "passed") else "FAIL"
        w("| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s |" % (
            fmt(offered, 0), fmt(uf), fmt(ue), fmt(rt), fmt(ach, 0), fmt(pe[0], 3), fmt(pe[1], 3),
            fmt(pf[0], 3), fmt(pf[1], 3), get(e, "bottleneck", default="?"), check))
        lat_rows.append((offered, pe[0], pe[1], pf[0], pf[1]))
        if ach and get(e, "check", "passed"):
            max_rate = max(max_rate, ach)
        if rt is not None and get(e, "check", "passed") and get(e, "bottleneck") != "server":
            best_ratio_10k = rt if best_ratio_10k is None else min(best_ratio_10k, rt)
    w("")

    # ---- what sending costs
    fs_runs = pick(runs, "updates", "floor-send")
    sending_ratios = []
    if fs_runs:
        w("## What a sent message costs, and earshot against a floor that sends as much\n")
        w("The floor sends nothing for an UpdatePosition; earshot must tell every client whose "
          "set changed, and in this random walk that is about half a NearbyPeers per update. "
          "The floor's second calibration point (`bench/floor --send-each`) writes, for every "
          "message it receives, one message of the same size to a random other connection at "
          "once, as earshot's notifications and relays mostly go to someone else. The "
          "difference is what one more message sent costs the server here, kernel TCP included "
          "(over loopback the server's CPU also carries the receiving side's TCP processing). "
          "\"Floor with earshot's sends\" adds that cost once per message earshot wrote. This "
          "is not one of the targets; it separates the cost of the notifications the protocol "
          "requires from earshot's own work.\n")
        w("| offered updates/s | floor µs/msg | floor sending 1 per msg µs/msg | one send µs | "
          "earshot sends per msg | floor with earshot's sends µs/msg | earshot µs/msg | ratio |")
        w("|---|---|---|---|---|---|---|---|")
        for fs in fs_runs:
            offered = get(fs, "offered_per_s", "updates", default=0.0)
            f = next((r for r in pick(runs, "updates", "floor")
                      if get(r, "offered_per_s", "updates") == offered), None)
            e = next((r for r in pick(runs, "updates", "earshot")
                      if get(r, "offered_per_s", "updates") == offered), None)
            uf, ufs = us_per_msg(f) if f else None, us_per_msg(fs)
            per_send = None
            if uf is not None and ufs is not None and sends_per_msg(fs):
                per_send = (ufs - uf) / sends_per_msg(fs)
            se = sends_per_msg(e) if e else None
            model = None if per_send is None or se is None else uf + se * per_send
            ue = us_per_msg(e) if e else None
            if ratio(ue, model) is not None:
                sending_ratios.append(ratio(ue, model))
            w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                fmt(offered, 0), fmt(uf), fmt(ufs), fmt(per_send), fmt(se), fmt(model), fmt(ue),
                fmt(ratio(ue, model))))
        w("")

    # ---- relays
    w("## Relays\n")
    w("10,000 clients, 2 SendOffer per client per second (20,000 relays/s) of 200 bytes to a "
      "random matched peer, 0.2 updates per client per second; earshot checks, stamps and "
      "delivers them. The floor matches nobody, so the generator sends it the same relays to "
      "random clients (`--relay-anyone`): the floor parses and drops them, the sending floor "
      "also writes one message of the same size to another connection for each, as a relay "
      "does. One-way latency is from the sender's send to the target's receive.\n")
    w("| server | messages/s | relays/s | µs/msg | relay p50 / p99 / max ms | check |")
    w("|---|---|---|---|---|---|")
    relay_ratio = relay_vs_sending = None
    rf = pick(runs, "relays", "floor")
    rfs = pick(runs, "relays", "floor-send")
    re_ = pick(runs, "relays", "earshot")
    for r in rf + rfs + re_:
        name = {"floor-send": "floor, sending 1 per msg"}.get(r["bench_server"], r["bench_server"])
        w("| %s | %s | %s | %s | %s / %s / %s | %s |" % (
            name, fmt(get(r, "achieved_per_s", "total"), 0),
            fmt(get(r, "achieved_per_s", "relays"), 0), fmt(us_per_msg(r)),
            fmt(get(r, "relay_latency_ms", "p50"), 3), fmt(get(r, "relay_latency_ms", "p99"), 3),
            fmt(get(r, "relay_latency_ms", "max"), 3),
            "pass" if get(r, "check", "passed") else ("n/a" if r["bench_server"] != "earshot" else "FAIL")))
    if rf and re_:
        relay_ratio = ratio(us_per_msg(re_[0]), us_per_msg(rf[0]))
        line = "\nearshot / floor CPU per message with relays: **%s**." % fmt(relay_ratio)
        if rfs:
            relay_vs_sending = ratio(us_per_msg(re_[0]), us_per_msg(rfs[0]))
            line += (" earshot writes %s messages per message received here, the sending floor %s; "
                     "earshot / sending floor: **%s**." % (fmt(sends_per_msg(re_[0])),
                                                          fmt(sends_per_msg(rfs[0])),
                                                          fmt(relay_vs_sending)))
        w(line + "\n")
    # ---- latency targets over repeated runs
    def median(xs):
        xs = sorted(x for x in xs if x is not None)
        return None if not xs else (xs[len(xs) // 2] if len(xs) % 2 else
                                    (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2)
    upd50 = [r for r in pick(runs, "updates", "earshot")
             if get(r, "offered_per_s", "updates") == 50000.0] + pick(runs, "latency-updates", "earshot")
    rel = re_ + pick(runs, "latency-relays", "earshot")
    probe_p99s = [get(r, "probe_latency_ms", "p99") for r in upd50]
    relay_p99s = [get(r, "relay_latency_ms", "p99") for r in rel]
    if len(upd50) > 1 or len(rel) > 1:
        w("## Latency targets over repeated runs\n")
        w("A p99 from one 10-second run moves by a factor of several between runs on this "
          "machine (the floor's own probe p99 does too), so the two latency targets are judged "
          "on the median of the runs above and the repeats with other seeds.\n")
        w("| run | seed | probe p50 / p99 ms at 50,000 updates/s | check | relay p50 / p99 ms at 20,000/s | check |")
        w("|---|---|---|---|---|---|")
        for i in range(max(len(upd50), len(rel))):
            u = upd50[i] if i < len(upd50) else None
            r = rel[i] if i < len(rel) else None
            w("| %d | %s | %s / %s | %s | %s / %s | %s |" % (
                i + 1, get(u or r, "config", "seed", default="?"),
                fmt(get(u, "probe_latency_ms", "p50"), 3), fmt(get(u, "probe_latency_ms", "p99"), 3),
                ("pass" if get(u, "check", "passed") else "FAIL") if u else "n/a",
                fmt(get(r, "relay_latency_ms", "p50"), 3), fmt(get(r, "relay_latency_ms", "p99"), 3),
                ("pass" if get(r, "check", "passed") else "FAIL") if r else "n/a"))
        w("| median | | p99 %s | | p99 %s | |" % (fmt(median(probe_p99s), 3), fmt(median(relay_p99s), 3)))
        w("")
    relay_p99 = median(relay_p99s)
    probe_p99 = median(probe_p99s)

    # ---- clients over sockets
    w("## Server CPU per message against the number of clients (sockets)\n")
    w("20,000 updates per second in total, spread evenly over the clients; density 5, one map.\n")
    w("| clients | floor µs/msg | earshot µs/msg | ratio | earshot RSS/client bytes | check |")
    w("|---|---|---|---|---|---|")
    cpu_rows = []
    for e in pick(runs, "clients", "earshot"):
        n = get(e, "config", "clients")
        f = next((r for r in pick(runs, "clients", "floor") if get(r, "config", "clients") == n), None)
        ue, uf = us_per_msg(e), us_per_msg(f) if f else None
        w("| %s | %s | %s | %s | %s | %s |" % (n, fmt(uf), fmt(ue), fmt(ratio(ue, uf)),
                                               fmt(get(e, "server", "rss_per_client_bytes"), 0),
                                               "pass" if get(e, "check", "passed") else "FAIL"))
        cpu_rows.append((n, ue, uf))
    w("")

    # ---- memory
    w("## Memory\n")
    mf, me = pick(runs, "memory", "floor"), pick(runs, "memory", "earshot")
    mem_extra = None
    if mf and me:
        bf = get(mf[0], "server", "rss_per_client_bytes")
        be = get(me[0], "server", "rss_per_client_bytes")
        mem_extra = None if bf is None or be is None else be - bf
        w("%s clients, nearly idle. RSS per client: floor %s bytes, earshot %s bytes, earshot above "
          "the floor **%s bytes**.\n" % (get(me[0], "config", "clients"), fmt(bf, 0), fmt(be, 0),
                                         fmt(mem_extra, 0)))

    # ---- connection rate
    w("## Connection rate\n")
    conn_rate = None
    for r in pick(runs, "connect", "earshot"):
        conn_rate = get(r, "connect", "per_s")
        w("10,000 clients connecting as fast as the generator can (handshake + first "
          "UpdatePosition + its NearbyPeers): **%s connections/s**, connect-to-registered latency "
          "p50 %s ms, p99 %s ms.\n" % (fmt(conn_rate, 0), fmt(get(r, "connect", "latency_ms", "p50"), 2),
                                       fmt(get(r, "connect", "latency_ms", "p99"), 2)))

    # ---- in process
    w("## In process: the world and the matcher alone\n")
    w("`bench/inproc`: no sockets; the grid, the matcher and the real proximity plugin through the "
      "hook chain. One update = move a random client a few units, update its cell, re-match it, "
      "collect the clients to notify. Maps grow with the population so density stays 5.\n")
    w("| clients | maps | ns/update | updates/s | growth vs 1,000 |")
    w("|---|---|---|---|---|")
    worlds = [r for r in inproc if r.get("bench") == "world"]
    c_worlds = []
    seen_lua = False
    hooks = {r["kind"]: r for r in inproc if r.get("bench") == "hook"}
    # inproc prints the C worlds, then the Lua hook line, then one Lua world
    for r in inproc:
        if r.get("bench") == "hook" and r.get("kind") == "lua":
            seen_lua = True
        if r.get("bench") == "world" and not seen_lua:
            c_worlds.append(r)
    base = c_worlds[0]["ns_per_update"] if c_worlds else None
    for r in c_worlds:
        w("| %s | %s | %s | %s | %s |" % (r["clients"], r["maps"], fmt(r["ns_per_update"], 0),
                                          fmt(r["updates_per_s"], 0),
                                          fmt(ratio(r["ns_per_update"], base))))
    growth = ratio(c_worlds[-1]["ns_per_update"], base) if c_worlds else None
    best_inproc = max((r["updates_per_s"] for r in c_worlds), default=None)
    lua_world = [r for r in worlds if r not in c_worlds]
    w("")
    w("## Hook costs\n")
    w("| hook | ns per match-filter call |")
    w("|---|---|")
    for k in ("c", "lua"):
        if k in hooks:
            w("| %s | %s |" % ("C plugin (proximity)" if k == "c" else "Lua script (bench/proximity.lua)",
                               fmt(hooks[k]["ns_per_call"], 1)))
    lua_extra = None
    if "c" in hooks and "lua" in hooks:
        lua_extra = hooks["lua"]["ns_per_call"] - hooks["c"]["ns_per_call"]
    if lua_world:
        w("\nThe 10,000-client world with the Lua filter instead of the C plugin: %s ns/update." %
          fmt(lua_world[0]["ns_per_update"], 0))
    w("")

    # ---- targets
    def verdict(ok):
        if isinstance(ok, str):
            return ok
        return "n/a" if ok is None else ("met" if ok else "missed")

    w("## Targets\n")
    w("| target | measured | |")
    w("|---|---|---|")
    rows = [
        ("CPU per UpdatePosition ≤ 1.3× the floor's (10,000 clients, density 5)",
         "best ratio %s (runs the server kept up with); against the floor with earshot's sends %s"
         % (fmt(best_ratio_10k), "/".join(fmt(x) for x in sending_ratios) or "n/a"), None if best_ratio_10k is None else best_ratio_10k <= 1.3),
        ("≥ 100,000 UpdatePosition/s on one core", "%s updates/s (highest offered rate that passed the check)"
         % fmt(max_rate, 0), max_rate >= 100000 if max_rate else None),
        ("probe p99 < 5 ms at 50,000 updates/s",
         "p99 %s ms (median of %d runs: %s)" % (
             fmt(probe_p99, 3), len(probe_p99s), ", ".join(fmt(x, 2) for x in probe_p99s)),
         None if probe_p99 is None else probe_p99 < 5),
        ("CPU per relay ≤ 1.3× the floor's",
         "ratio %s; against the sending floor %s" % (fmt(relay_ratio), fmt(relay_vs_sending)),
         None if relay_ratio is None else relay_ratio <= 1.3),
        ("relay one-way p99 < 1 ms at 20,000/s",
         "p99 %s ms (median of %d runs: %s)" % (fmt(relay_p99, 3), len(relay_p99s),
                                                ", ".join(fmt(x, 2) for x in relay_p99s)),
         None if relay_p99 is None else relay_p99 < 1),
        ("≤ 2 KiB per client above the floor's RSS", "%s bytes" % fmt(mem_extra, 0),
         None if mem_extra is None else mem_extra <= 2048),
        ("in-process cost per update grows ≤ 1.5× from 1,000 to 1,000,000 clients",
         "%s×" % fmt(growth), None if growth is None else growth <= 1.5),
        ("≥ 2,000,000 in-process updates/s on one core", "%s at best" % fmt(best_inproc, 0),
         None if best_inproc is None else best_inproc >= 2e6),
        ("a Lua hook adds ≤ 1 µs per call", "%s ns more than C" % fmt(lua_extra, 0),
         None if lua_extra is None else lua_extra <= 1000),
        ("≥ 5,000 new connections/s", "%s/s" % fmt(conn_rate, 0),
         None if conn_rate is None else conn_rate >= 5000),
    ]
    for name, measured, ok in rows:
        w("| %s | %s | %s |" % (name, measured, verdict(ok)))
        verdicts.append((name, ok))
    w("")
    w("![probe latency against offered update rate](latency.png)\n")
    w("![server CPU per update against clients](cpu.png)\n")
    if os.path.exists(os.path.join(bench, "NOTES.md")):
        w("See [NOTES.md](NOTES.md) for the analysis behind these numbers.\n")

    with open(os.path.join(bench, "RESULTS.md"), "w") as f:
        f.write("\n".join(out) + "\n")

    # ---- plots
    dat = os.path.join(res, "latency.dat")
    with open(dat, "w") as f:
        for row in sorted(lat_rows):
            f.write(" ".join("nan" if v is None else str(v) for v in row) + "\n")
    cdat = os.path.join(res, "cpu_sockets.dat")
    with open(cdat, "w") as f:
        for n, ue, uf in sorted(cpu_rows):
            f.write("%s %s %s\n" % (n, "nan" if ue is None else ue, "nan" if uf is None else uf))
    idat = os.path.join(res, "cpu_inproc.dat")
    with open(idat, "w") as f:
        for r in c_worlds:
            f.write("%s %s\n" % (r["clients"], r["ns_per_update"] / 1000.0))
    gp = """
set terminal pngcairo size 900,540 noenhanced
set output '%(bench)s/latency.png'
set title 'Probe round trip against offered update rate (10,000 clients)'
set xlabel 'offered UpdatePosition per second'
set ylabel 'probe latency (ms)'
set logscale y
set key left top
set grid
plot '%(dat)s' using 1:3 with linespoints title 'earshot p99', \\
     '%(dat)s' using 1:2 with linespoints title 'earshot p50', \\
     '%(dat)s' using 1:5 with linespoints dashtype 2 title 'floor p99', \\
     '%(dat)s' using 1:4 with linespoints dashtype 2 title 'floor p50'
set output '%(bench)s/cpu.png'
set title 'Server CPU per update against the number of clients'
set xlabel 'clients'
set ylabel 'microseconds of CPU'
set logscale x
set logscale y
set key left top
plot '%(cdat)s' using 1:2 with linespoints title 'earshot, per message over sockets', \\
     '%(cdat)s' using 1:3 with linespoints dashtype 2 title 'floor, per message over sockets', \\
     '%(idat)s' using 1:2 with linespoints title 'world + matcher per update, in process'
""" % {"bench": bench, "dat": dat, "cdat": cdat, "idat": idat}
    subprocess.run(["gnuplot"], input=gp, text=True, check=False)
    for name, ok in verdicts:
        print("%-80s %s" % (name, verdict(ok)))


if __name__ == "__main__":
    main()
