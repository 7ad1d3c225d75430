#!/usr/bin/env python3
"""bench/cluster's report: the JSON lines of one run into Markdown tables,
written between the markers of the "Several nodes" section of bench/NOTES.md
(the section and markers are appended when missing; text outside the markers
is left alone).

usage: report.py RESULTS.jsonl NOTES.md SECONDS
"""
import json
import statistics
import sys

BEGIN = "<!-- bench/cluster: begin (generated, do not edit by hand) -->"
END = "<!-- bench/cluster: end -->"
ORDER = ["plain", "cluster-1", "cluster-2", "cluster-3"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def f(x, nd=1):
    return "–" if x is None else f"{x:,.{nd}f}"


def both(xs, nd=2):
    xs = [x for x in xs]
    if not xs:
        return "–"
    return " / ".join("n/a" if x is None else f"{x:.{nd}f}" for x in xs)


def per_run(d):
    """The figures of one run, per update."""
    upd = d.get("updates") or 0
    if not upd:
        return None
    nodes = d.get("nodes_detail", [])
    r = d.get("redis", {})
    s = lambda k: sum((n.get(k) or 0) for n in nodes)
    cpu = [n.get("cpu_s") for n in nodes]
    out = {
        "nodes": len(nodes),
        "rate": upd / d["window_s"],
        "cpu_us": s("cpu_s") * 1e6 / upd,
        "cpu_node_us": [
            (n["cpu_s"] * 1e6 / n["updates_from_its_clients"]) if n.get("updates_from_its_clients") else None
            for n in nodes
        ],
        "cpu_cores": [c / d["window_s"] for c in cpu if c is not None],
        "redis_cpu_us": (r.get("cpu_s_proc") * 1e6 / upd) if r.get("cpu_s_proc") is not None else None,
        "publish": (r.get("publish_calls") / upd) if r.get("publish_calls") is not None else None,
        "bus_msgs": s("bus_msgs_out") / upd if d.get("bench_mode") == "cluster" else None,
        "packets": s("bus_packets_out") / upd if d.get("bench_mode") == "cluster" else None,
        "bus_bytes": s("bus_bytes_out") / upd if d.get("bench_mode") == "cluster" else None,
        "deliveries": s("bus_msgs_in") / upd if d.get("bench_mode") == "cluster" else None,
        "commands": (r.get("commands") / upd) if r.get("commands") is not None else None,
        "redis_us_per_msg": (r["used_cpu_s"] * 1e6 / r["publish_calls"])
        if (r.get("publish_calls") or 0) >= 1000 and r.get("used_cpu_s") is not None else None,
        "others": (d.get("machine") or {}).get("others_cores"),
        "nearby": d["nearby_peers"] / upd,
        "gen_cores": (d.get("generator_cpu_s") or 0) / d["window_s"],
        "lat": d.get("latency_ms", {}),
        "rf": d.get("redis_fault"),
        "kf": d.get("kill_fault"),
        "check": d.get("check", {}),
        "relays_total": d.get("relays_total", {}),
        "owners": d.get("owners"),
        "remote_ok": all(n.get("remote_clients") == n.get("predicted_remote_clients") for n in nodes)
        if d.get("bench_mode") == "cluster" and len(nodes) > 1 else None,
        "lagged": d.get("lagged_slots", 0),
    }
    return out


def lat(runs, key):
    p50 = med([r["lat"].get(key, {}).get("p50") for r in runs if r["lat"].get(key, {}).get("count")])
    p99 = med([r["lat"].get(key, {}).get("p99") for r in runs if r["lat"].get(key, {}).get("count")])
    n = sum(r["lat"].get(key, {}).get("count", 0) for r in runs)
    if not n:
        return "–"
    return f"{p50:.2f} / {p99:.1f}"


def main():
    path, notes, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = [json.loads(l) for l in open(path) if l.strip()]
    by = {}
    errors = []
    for d in rows:
        if "error" in d:
            errors.append(f"{d.get('bench_label')} seed {d.get('bench_seed')}: {d['error']}")
            continue
        r = per_run(d)
        if r:
            by.setdefault(d["bench_label"], []).append(r)
    plain = med([r["cpu_us"] for r in by.get("plain", [])])
    cfg = next((d["config"] for d in rows if "config" in d), {})
    L = []
    L.append(BEGIN)
    L.append("")
    L.append(
        f"`bench/cluster`, {path.split('/')[-1]}: {cfg.get('clients')} clients on {cfg.get('maps')} maps "
        f"(density {cfg.get('density')}, radius 20, leave radius 25), {cfg.get('update_rate')} updates "
        f"and {cfg.get('relay_rate')} relays ({cfg.get('relay_bytes')} bytes) per client per second, "
        f"clients round-robin over the nodes' ports; {cfg.get('warmup')} s warmup, {cfg.get('duration')} s "
        f"window; {len(rows)} runs (medians over seeds {sorted({d.get('bench_seed') for d in rows})}); "
        f"the whole script took {secs} s. Release build; nodes, Redis and the generator unpinned on 2 cores."
    )
    L.append("")
    L.append("Cost per UpdatePosition (relays, ~5% of client messages, are in the numerators):")
    L.append("")
    L.append(
        "| setup | updates/s | nodes' CPU µs/update (sum) | vs plain | each node: µs per update of its own clients "
        "| Redis CPU µs/update | Redis PUBLISH/update | bus packets/update | bus bytes/update "
        "| Redis commands/update | bus deliveries/update | NearbyPeers/update | Redis µs/PUBLISH |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for lab in ORDER:
        rs = by.get(lab)
        if not rs:
            continue
        cpu = med([r["cpu_us"] for r in rs])
        pernode = []
        for k in range(rs[0]["nodes"]):
            pernode.append(med([r["cpu_node_us"][k] for r in rs if k < len(r["cpu_node_us"])]))
        L.append(
            "| " + " | ".join([
                lab,
                f(med([r["rate"] for r in rs]), 0),
                f(cpu, 1),
                (f"{cpu / plain:.2f}x" if plain and cpu else "–"),
                ", ".join(f(x, 1) for x in pernode),
                f(med([r["redis_cpu_us"] for r in rs]), 2),
                f(med([r["publish"] for r in rs]), 3),
                f(med([r["packets"] for r in rs]), 3),
                f(med([r["bus_bytes"] for r in rs]), 0),
                f(med([r["commands"] for r in rs]), 3),
                f(med([r["deliveries"] for r in rs]), 3),
                f(med([r["nearby"] for r in rs]), 3),
                f(med([r["redis_us_per_msg"] for r in rs]), 2),
            ]) + " |"
        )
    L.append("")
    L.append(
        "Latency in ms, p50 / p99 (match: from a client's UpdatePosition to the NearbyPeers listing it "
        "at a peer that did not list it; relay: SendOffer to ReceiveOffer, one way), and the faults "
        "(seconds, one value per seed):"
    )
    L.append("")
    L.append(
        "| setup | match, same node | match, other node | match, 2 bus hops | relay, same node "
        "| relay, other node | relay, 2 bus hops | Redis back → every list right | node killed -9 → no list "
        "names its clients | other processes' CPU in the window, cores | final check |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for lab in ORDER:
        rs = by.get(lab)
        if not rs:
            continue
        rf = []
        for r in rs:
            x = r["rf"]
            if not x:
                continue
            if x.get("right_after_back_ms") is not None:
                rf.append(f"{x['right_after_back_ms'] / 1000:.2f}")
            else:
                rf.append(f"**not within the timeout**: {x.get('wrong_at_timeout')} lists wrong "
                          f"({x.get('missing_other_node')} peers on other nodes and "
                          f"{x.get('missing_same_node')} on the same node missing, {x.get('extra')} extra); "
                          f"after a RequestPeerRefresh {x.get('wrong_after_refresh')} wrong")
        kf = [r["kf"]["no_list_names_dead_ms"] / 1000 if r["kf"] and r["kf"].get("no_list_names_dead_ms") is not None
              else None for r in rs if r["kf"]]
        bad = []
        for r in rs:
            c = r["check"]
            probs = {k: v for k, v in c.items() if k not in ("survivors", "violations") and v}
            # the wrong lists described at a Redis-fault timeout are examples, not check failures
            ex = sum(1 for v in c.get("violations", []) if "after Redis came back" in v)
            if ex and probs.get("peer_missing"):
                probs["peer_missing"] -= ex
                if not probs["peer_missing"]:
                    del probs["peer_missing"]
            lost = r["relays_total"].get("lost")
            if lost:
                probs["relays_lost"] = lost
            if r["remote_ok"] is False:
                probs["owner_prediction"] = "off"
            if r["lagged"]:
                probs["generator_lagged_slots"] = r["lagged"]
            bad.append(", ".join(f"{k} {v}" for k, v in probs.items()) or "pass")
        L.append(
            "| " + " | ".join([
                lab,
                lat(rs, "match_same_node"),
                lat(rs, "match_cross_node"),
                lat(rs, "match_hops2"),
                lat(rs, "relay_same_node"),
                lat(rs, "relay_cross_node"),
                lat(rs, "relay_hops2"),
                " / ".join(rf) if rf else "–",
                both(kf) if kf else "–",
                both([r["others"] for r in rs], 2),
                "; ".join(bad),
            ]) + " |"
        )
    # the inputs of the paper estimate
    c1 = med([r["cpu_us"] for r in by.get("cluster-1", [])])
    big = max((lab for lab in ORDER if lab in by and lab.startswith("cluster-")), default=None)
    if c1 and big and big != "cluster-1":
        n = by[big][0]["nodes"]
        fr = (n - 1) / n
        cn = med([r["cpu_us"] for r in by[big]])
        pn = med([r["publish"] for r in by[big]])
        rpm = med([r["redis_us_per_msg"] for r in by[big]])
        extra = (cn - c1) / fr
        cinf = c1 + extra
        pinf = pn / fr
        U = 100000 * 10
        node_cores = U * cinf / 1e6
        redis_cores = U * pinf * rpm / 1e6 if rpm else None
        L.append("")
        L.append(
            f"Inputs of the estimate below, from these runs: nodes' CPU {f(c1, 1)} µs/update with one node "
            f"(nothing forwarded) and {f(cn, 1)} with {n} (a fraction {fr:.2f} of clients away from their map's "
            f"node), so a forwarded update costs {f(extra, 1)} µs more and, with many nodes, an update costs "
            f"{f(cinf, 1)} µs of node CPU in all; {f(pn, 3)} PUBLISH/update with {n} nodes, {f(pinf, 3)} "
            f"with many; Redis {f(rpm, 2)} µs CPU per PUBLISH. 100,000 players × 10 updates/s = 1,000,000 "
            f"updates/s: {f(node_cores, 1)} cores of nodes, {f(U * pinf, 0)} PUBLISH/s, "
            f"{f(redis_cores, 1)} cores of Redis."
        )
    if errors:
        L.append("")
        L.append("Runs without a result: " + "; ".join(errors))
    L.append("")
    L.append(END)
    block = "\n".join(L)
    text = open(notes).read()
    if BEGIN in text and END in text:
        a = text.index(BEGIN)
        b = text.index(END) + len(END)
        text = text[:a] + block + text[b:]
    else:
        if not text.endswith("\n"):
            text += "\n"
        text += "\n## Several nodes\n\n" + block + "\n"
    open(notes, "w").write(text)
    print(block)


if __name__ == "__main__":
    main()
