#!/usr/bin/env python3
"""Run one architecture's earshot image under podman and check it as a
deployment would see it. Called by tests/container/run, which has built the
image and set CONTAINERS_CONF and friends; every podman call here goes
through the same environment.

    check_image.py --arch arm64 --image IMAGE --workdir DIR

Each check prints "ok: ..." or raises with what it saw; the exit status is 0
only when every check passed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import wsclient  # noqa: E402
from wsclient import ConnectionClosed, NoMessage, WebSocket  # noqa: E402

ELF_MACHINE = {"amd64": (0x3E, "x86-64"), "arm64": (0xB7, "ARM aarch64")}
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
# Emulated arm64 is many times slower than native: generous deadlines.
TIMEOUT = 20.0


class CheckFailed(Exception):
    pass


def ok(what):
    print("container[%s]: ok: %s" % (ARCH, what), flush=True)


def require(cond, what, seen):
    if not cond:
        raise CheckFailed("%s (saw: %s)" % (what, seen))
    ok(what)


def podman(*args, check=True, timeout=120):
    cmd = ["podman"] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise CheckFailed("%s exited %d: %s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                 p.stderr))
    return p


def http_get(port, path):
    status, _, body = wsclient.http_get("127.0.0.1", port, path)
    return status, body.decode("utf-8", "replace")


def register(port, client_id, x, y, map_id=1):
    ws = WebSocket("127.0.0.1", port, timeout=TIMEOUT)
    ws.send_msg("UpdatePosition", {"client_id": client_id, "map_id": map_id, "x": x, "y": y})
    return ws


def next_of_type(ws, type_, timeout=TIMEOUT):
    """The next message of type_, skipping others (NearbyPeers refreshes)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            msg = ws.recv_json(deadline - time.monotonic())
        except NoMessage:
            break
        if msg.get("type") == type_:
            return msg
        seen.append(msg)
    raise CheckFailed("no %s within %.0f s (got %r)" % (type_, timeout, seen))


def peers_become(ws, expected, timeout=TIMEOUT):
    """Read NearbyPeers until one lists exactly `expected`."""
    try:
        return wsclient.await_peers(ws, expected, timeout)
    except AssertionError as exc:
        raise CheckFailed(str(exc)) from None


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return fields


def main():
    global ARCH
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(ELF_MACHINE))
    ap.add_argument("--image", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    ARCH = args.arch
    name = "earshot-test-" + ARCH
    podman("rm", "-f", "--ignore", name, "%s-files" % name, check=False)

    # 1. The image is this architecture's, and so is the binary in it.
    arch = podman("image", "inspect", "--format", "{{.Architecture}}", args.image).stdout.strip()
    require(arch == ARCH, "image architecture is %s" % ARCH, arch)
    podman("create", "--name", "%s-files" % name, args.image)
    binary = os.path.join(args.workdir, "earshot-%s" % ARCH)
    cfg = os.path.join(args.workdir, "earshot-%s.cfg" % ARCH)
    try:
        podman("cp", "%s-files:/usr/bin/earshot" % name, binary)
        podman("cp", "%s-files:/etc/earshot/earshot.cfg" % name, cfg)
    finally:
        podman("rm", "-f", "%s-files" % name, check=False)
    with open(binary, "rb") as f:
        head = f.read(20)
    machine = head[18] | head[19] << 8
    want, label = ELF_MACHINE[ARCH]
    require(head[:4] == b"\x7fELF" and head[4] == 2 and machine == want,
            "/usr/bin/earshot is a 64-bit ELF for e_machine 0x%02x (%s)" % (want, label),
            "magic %r class %d e_machine 0x%02x" % (head[:4], head[4], machine))
    desc = subprocess.run(["file", "-b", binary], stdout=subprocess.PIPE, text=True).stdout.strip()
    require(label in desc, "file(1) says %s" % label, desc)

    # 2. Start it as a deployment would: the image's entrypoint, user and
    # healthcheck, our config mounted read-only over the stock one (a copy
    # of it, so that the reload below can change it).
    os.chmod(cfg, 0o644)
    podman("run", "-d", "--name", name, *ULIMITS, "-p", "127.0.0.1::8080",
           "-v", "%s:/etc/earshot/earshot.cfg:ro" % cfg, args.image)
    try:
        check_running(name, cfg)
    except BaseException:
        print(podman("logs", name, check=False).stderr[-4000:], file=sys.stderr)
        raise
    finally:
        podman("rm", "-f", "--ignore", name, check=False)


def check_running(name, cfg):
    mapping = podman("port", name, "8080/tcp").stdout.strip()
    m = re.search(r":(\d+)$", mapping.splitlines()[0] if mapping else "")
    if not m:
        raise CheckFailed("no published port for 8080/tcp: %r" % mapping)
    port = int(m.group(1))
    ok("8080/tcp is published on 127.0.0.1:%d" % port)

    deadline = time.monotonic() + 60
    status, body, err = None, "", None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, "/healthz")
            if status == 200:
                break
        except OSError as exc:
            err = exc
        time.sleep(0.5)
    require(status == 200 and body.strip() == "ok", "GET /healthz answers 200 ok",
            "status %r body %r error %r" % (status, body, err))

    p = podman("healthcheck", "run", name, check=False, timeout=60)
    require(p.returncode == 0, "podman healthcheck run: the image's HEALTHCHECK passes",
            "exit %d: %s%s" % (p.returncode, p.stdout, p.stderr))
    health = podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
    require(health == "healthy", "podman inspect says healthy", health)

    user = podman("inspect", "--format", "{{.Config.User}}", name).stdout.strip()
    require(user == "10001:10001", "the container runs as user 10001:10001", user)
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())
    st = proc_status(pid)
    require(st["Uid"] == ["10001"] * 4 and st["Gid"] == ["10001"] * 4,
            "the server process (host pid %d) has uid and gid 10001" % pid,
            "Uid %s Gid %s" % (st["Uid"], st["Gid"]))
    caps = {k: st[k][0] for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")}
    require(all(int(v, 16) == 0 for v in caps.values()),
            "it holds no capabilities (inheritable, permitted, effective, ambient all 0)", caps)

    # Two clients through the published port, near each other.
    a = register(port, "probe-a", 0, 0)
    b = register(port, "probe-b", 3, 4)
    peers_become(a, ["probe-b"])
    peers_become(b, ["probe-a"])
    ok("two WebSocket clients through the published port are matched (each lists the other)")

    # Reload: the mounted config gains a reserved_ids entry; SIGHUP; the log
    # says so, the clients stay, and a reserved id is now refused.
    with open(cfg) as f:
        text = f.read()
    entry = ('hooks = (\n  { type = "plugin"; name = "reserved_ids"; '
             'settings = { prefix = "server-"; }; },\n')
    if "hooks = (\n" not in text:
        raise CheckFailed("the stock config has no 'hooks = (' line to extend")
    with open(cfg, "w") as f:  # in place: the bind mount follows the inode
        f.write(text.replace("hooks = (\n", entry, 1))
    podman("kill", "--signal", "HUP", name)
    deadline = time.monotonic() + TIMEOUT
    logs = ""
    while time.monotonic() < deadline:
        logs = podman("logs", name).stderr
        if "reloaded: 3 hooks enabled" in logs:
            break
        time.sleep(0.3)
    require("reloaded: 3 hooks enabled" in logs and "reserved_ids" in logs,
            "SIGHUP reloaded the config (the log says 'reloaded: 3 hooks enabled')",
            logs[-1500:])
    c = register(port, "server-probe", 1, 1)
    err = next_of_type(c, "Error")
    require(err.get("data") == "client_id is reserved",
            "after the reload a reserved client_id is refused", err)
    c.send_close()
    for ws, other in ((a, "probe-b"), (b, "probe-a")):
        ws.send_msg("RequestPeerRefresh")
        peers_become(ws, [other])
    ok("both clients kept their connection and their match through the reload")

    # Stop: SIGTERM from podman stop; every client gets close 1001 and the
    # server exits 0.
    stop = subprocess.Popen(["podman", "stop", "-t", "30", name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for ws, who in ((a, "probe-a"), (b, "probe-b")):
        deadline = time.monotonic() + 30
        code = None
        while time.monotonic() < deadline:
            try:
                ws.recv_json(deadline - time.monotonic())
            except ConnectionClosed as exc:
                code = exc.code if exc.clean else "no close frame"
                break
            except NoMessage:
                break
        require(code == 1001, "%s got close code 1001 on stop" % who, code)
    out, errout = stop.communicate(timeout=60)
    require(stop.returncode == 0 and "SIGKILL" not in errout,
            "podman stop returned without resorting to SIGKILL",
            "exit %d: %s%s" % (stop.returncode, out, errout))
    state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
    require(state.get("ExitCode") == 0 and not state.get("OOMKilled"),
            "the container exited with status 0 (not killed)",
            {k: state.get(k) for k in ("Status", "ExitCode", "OOMKilled", "Error")})


if __name__ == "__main__":
    ARCH = "?"
    try:
        main()
    except (CheckFailed, AssertionError, OSError, subprocess.SubprocessError) as exc:
        print("container[%s]: FAIL: %s" % (ARCH, exc), file=sys.stderr, flush=True)
        sys.exit(1)
    print("container[%s]: all checks passed" % ARCH, flush=True)
