"""Several earshot nodes sharing one world through Redis, for the integration tests.

`ClusterServer` stands where `harness.EarshotServer` stands (same start/stop/
alive/output/cleanup/settings/write_config/port/proc), but is one
`redis-server` on a free loopback port (no persistence), N earshot nodes with
the class's config plus a `cluster` group and `server.behind_proxy = true`,
and a round-robin haproxy (`mode http`, `option forwardfor`) in front; `port`
is the proxy's, so every connection a test opens lands on the next node.

- `scrape_metrics()` sums every sample over the live nodes (totals hold).
- `output()` is the nodes' logs, one after the other, each under a header.
- `proc.send_signal(sig)` signals every node; a SIGHUP waits until every node
  has logged the outcome of its reload, so that a reload is complete when it
  returns.

With `EARSHOT_CLUSTER=3` in the environment, `harness.EarshotTestCase` and
`harness.ServerPerTestCase` start a `ClusterServer` wherever they would start
one `EarshotServer` (see `harness.server_class_for`). `SKIPS` lists the tests
that cannot hold through a proxy, each with its reason.

`RedisServer`, `Haproxy` and `Node` are also used directly by test_cluster.py.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
from harness import HOST, EarshotServer, free_port, merge, scrape_metrics, wait_until
from wsclient import http_get

# Tests that cannot hold through a proxy over several nodes: "module.Class" (the
# whole class) or "module.Class.test_name" -> the reason (skipTest("cluster: " + reason)).
SKIPS = {
    "test_matching.PollLoopMatchingTest":
        "the cluster runs on the libev loop only; server.event_loop = \"poll\" with a "
        "cluster group is a config error",
    "test_crowd.TestReload.test_reload_applies_a_new_cap":
        "it counts one process's reloads (earshot_reloads_total == 1 after one SIGHUP); "
        "summed over three nodes one SIGHUP is 3",
}


def cluster_size():
    """N from EARSHOT_CLUSTER (0: one plain earshot process)."""
    try:
        return int(os.environ.get("EARSHOT_CLUSTER") or 0)
    except ValueError:
        return 0


def skip_reason(test_id):
    """The reason a test (unittest id "module.Class.test") is skipped in cluster mode."""
    parts = test_id.split(".")[-3:]
    return SKIPS.get(".".join(parts)) or SKIPS.get(".".join(parts[:2]))


def _popen(args, log_path, cwd):
    log = open(log_path, "ab")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            cwd=cwd, preexec_fn=harness._die_with_parent)
    return proc, log


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ===================================================================== Redis
def resp_command(*args):
    """One RESP command (args: bytes or str)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RedisServer:
    """One redis-server on a free loopback port, no persistence."""

    def __init__(self, password=None):
        self.tmpdir = tempfile.mkdtemp(prefix="earshot-redis-")
        harness._tmpdirs.append(self.tmpdir)
        self.password = password
        self.port = None
        self.proc = None
        self._log = None
        self.log_path = os.path.join(self.tmpdir, "redis.log")

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    def start(self, port=None, timeout=10.0):
        """Start (again, on the same port when port is given)."""
        for _ in range(3):
            self.port = port or free_port()
            args = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", self.tmpdir,
                    "--protected-mode", "no", "--loglevel", "notice"]
            if self.password:
                args += ["--requirepass", self.password]
            if self._log:
                self._log.close()
            self.proc, self._log = _popen(args, self.log_path, self.tmpdir)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if self.command("PING").startswith(b"+PONG"):
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.stop()
            if port:
                break
        raise RuntimeError("redis-server did not start:\n" + _read(self.log_path))

    def command(self, *args, timeout=2.0, auth=True):
        """Send one command (AUTH first when a password is set); the raw reply."""
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            data = b""
            if auth and self.password:
                data += resp_command("AUTH", self.password)
            data += resp_command(*args)
            s.sendall(data)
            want = 2 if auth and self.password else 1
            buf = b""
            while buf.count(b"\r\n") < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            if want == 2:
                buf = buf.split(b"\r\n", 1)[1]
            return buf

    def publish(self, channel, payload):
        """PUBLISH raw bytes; the number of subscribers that got it."""
        reply = self.command("PUBLISH", channel, payload)
        if not reply.startswith(b":"):
            raise AssertionError("PUBLISH answered %r" % reply)
        return int(reply[1:].split(b"\r\n")[0])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(10)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def output(self):
        return _read(self.log_path)

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# =================================================================== haproxy
HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-request 10s
frontend fe
    bind %(host)s:%(port)d
    default_backend nodes
backend nodes
    balance roundrobin
%(check)s%(servers)s
"""


class Haproxy:
    """Debian's haproxy, round robin over the given ports (HTTP mode, X-Forwarded-For).
    check=True: health checks on /healthz every 100 ms (a dead node is left out)."""

    def __init__(self, ports, check=False):
        self.tmpdir = tempfile.mkdtemp(prefix="earshot-haproxy-")
        harness._tmpdirs.append(self.tmpdir)
        self.ports = list(ports)
        self.check = check
        self.port = None
        self.proc = None
        self._log = None
        self.log_path = os.path.join(self.tmpdir, "haproxy.log")

    def start(self):
        last = None
        for _ in range(3):
            self.port = free_port()
            opt = " check inter 100ms fall 1 rise 1" if self.check else ""
            servers = "".join("    server n%d %s:%d%s\n" % (i + 1, HOST, p, opt)
                              for i, p in enumerate(self.ports))
            check = "    option httpchk GET /healthz\n" if self.check else ""
            path = os.path.join(self.tmpdir, "haproxy.cfg")
            with open(path, "w") as f:
                f.write(HAPROXY_CONFIG % {"host": HOST, "port": self.port, "servers": servers,
                                          "check": check})
            self.proc, self._log = _popen(["haproxy", "-f", path, "-db"], self.log_path,
                                          self.tmpdir)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if http_get(HOST, self.port, "/healthz", timeout=1.0)[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            last = "haproxy did not start:\n" + _read(self.log_path)
            self.stop()
        raise RuntimeError(last)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def output(self):
        return _read(self.log_path)

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ===================================================================== nodes
def cluster_group(redis_address, node, **over):
    group = {"enabled": True, "redis": redis_address, "node": node, "prefix": "earshot",
             "heartbeat_interval": 0.25, "node_timeout": 1.5}
    group.update(over)
    return group


class Node(EarshotServer):
    """One earshot node: the given config plus a cluster group and behind_proxy."""

    def __init__(self, name, redis_address, config=None, hooks=None, cluster=None,
                 behind_proxy=True, extra_args=()):
        cfg = merge(config or {}, {"server": {"behind_proxy": behind_proxy},
                                   "cluster": cluster_group(redis_address, name,
                                                            **(cluster or {}))})
        super().__init__(cfg, hooks, extra_args)
        self.name = name
        self.killed = False

    def scrape(self):
        return scrape_metrics(self.port)

    def metric(self, name, **labels):
        return scrape_metrics(self.port).get((name, tuple(sorted(labels.items()))))

    def kill(self, sig=signal.SIGKILL):
        self.killed = True
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)


def wait_cluster(nodes, count=None, timeout=10.0):
    """Every node of `nodes` is on Redis and sees `count` (default len(nodes)) live nodes."""
    count = len(nodes) if count is None else count

    def ready():
        for n in nodes:
            try:
                m = n.scrape()
            except (OSError, AssertionError):
                return False
            if m.get(("earshot_cluster_redis_up", ())) != 1 or \
                    m.get(("earshot_cluster_nodes", ())) != count:
                return False
        return True

    if not wait_until(ready, timeout):
        raise RuntimeError("the nodes did not form a cluster of %d within %.0f s:\n%s"
                           % (count, timeout, "\n".join(n.output()[-3000:] for n in nodes)))


class _Fanout:
    """What a test sees as server.proc: signals go to every node."""

    def __init__(self, cluster):
        self.cluster = cluster

    @property
    def returncode(self):
        codes = [n.proc.returncode if n.proc else n.exit_code for n in self.cluster.nodes]
        bad = [c for c in codes if c is not None]
        return bad[0] if bad else None

    def poll(self):
        for n in self.cluster.nodes:
            if n.proc is None or n.proc.poll() is not None:
                return n.proc.returncode if n.proc else n.exit_code
        return None

    def send_signal(self, sig):
        marks = [n.output().count("reloaded:") + n.output().count("reload failed")
                 for n in self.cluster.nodes]
        for n in self.cluster.nodes:
            n.proc.send_signal(sig)
        if sig == signal.SIGHUP:
            wait_until(lambda: all(n.output().count("reloaded:") + n.output().count("reload failed")
                                   > mark for n, mark in zip(self.cluster.nodes, marks)), 5.0)

    def kill(self):
        for n in self.cluster.nodes:
            n.proc.kill()


class ClusterServer:
    """Redis + N nodes + haproxy, in EarshotServer's shape."""

    size = 3

    def __init__(self, config=None, hooks=None, extra_args=(), size=None):
        self.size = size or cluster_size() or self.size
        self.tmpdir = tempfile.mkdtemp(prefix="earshot-cluster-")
        harness._tmpdirs.append(self.tmpdir)
        self.redis = RedisServer()
        self.config = config
        self.hooks = hooks
        self.extra_args = extra_args
        self.nodes = []
        self.proxy = None
        self.port = None
        self.proc = None
        self.exit_code = None
        # one settings dict shared by every node (tests edit it, then write_config)
        self.settings = merge(harness.DEFAULT_CONFIG, config)

    def start(self):
        try:
            self.redis.start()
            for i in range(self.size):
                node = Node("n%d" % (i + 1), self.redis.address, self.config, self.hooks,
                            extra_args=self.extra_args)
                self.nodes.append(node)
            self._share_settings()
            for node in self.nodes:
                node.start()
            wait_cluster(self.nodes)
            self.proxy = Haproxy([n.port for n in self.nodes]).start()
        except BaseException:
            self.stop()
            raise
        self.port = self.proxy.port
        self.proc = _Fanout(self)
        return self

    def _share_settings(self):
        for node in self.nodes:
            own = node.settings
            shared = merge(self.settings, {"server": {"behind_proxy": True},
                                           "cluster": own["cluster"]})
            shared["plugin_dir"] = own["plugin_dir"]
            shared["hooks"] = own["hooks"]
            node.settings = shared

    def write_config(self):
        """Every node's config file from self.settings (plus its own cluster group/port)."""
        for node in self.nodes:
            cluster = node.settings["cluster"]
            hooks = node.settings["hooks"]
            plugin = node.settings["plugin_dir"]
            node.settings = merge(self.settings, {"server": {"behind_proxy": True},
                                                  "cluster": cluster})
            node.settings["hooks"] = hooks
            node.settings.setdefault("plugin_dir", plugin)
            node.write_config()

    def alive(self):
        return bool(self.nodes) and all(n.alive() for n in self.nodes)

    def scrape_metrics(self):
        """Every sample summed over the live nodes."""
        total = {}
        for node in self.nodes:
            if not node.alive():
                continue
            for key, value in node.scrape().items():
                total[key] = total.get(key, 0.0) + value
        return total

    def output(self):
        return "".join("===== node %s =====\n%s" % (n.name, n.output()) for n in self.nodes)

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        codes = []
        for node in self.nodes:
            code = node.stop()
            if not node.killed:
                codes.append(code)
        self.redis.stop()
        bad = [c for c in codes if c not in (0, -signal.SIGTERM, None)]
        self.exit_code = bad[0] if bad else (codes[0] if codes else None)
        return self.exit_code

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()
        if self.proxy:
            self.proxy.cleanup()
        self.redis.cleanup()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
