"""The table of config keys (`earshot --list-config-keys`): the README shows
exactly its output, the fuzz seed is the stock config, --check-config
enforces the ranges and choices it prints, and a reload applies the keys it
marks reloadable while naming the ones that wait for a restart."""

import os
import re
import signal
import subprocess
import tempfile
import shutil
import unittest

import harness
from harness import ServerPerTestCase, earshot_bin, make_hooks, render_config, wait_until

SOURCE_DIR = os.path.abspath(os.environ.get("EARSHOT_SOURCE_DIR") or harness.REPO)
README = os.path.join(SOURCE_DIR, "README.md")
STOCK_CONFIG = os.path.join(SOURCE_DIR, "config", "earshot.cfg")
FUZZ_SEED = os.path.join(SOURCE_DIR, "tests", "fuzz", "corpus", "config", "stock.cfg")

BEGIN = "<!-- config-keys: begin (the output of earshot --list-config-keys) -->"
END = "<!-- config-keys: end -->"


def list_config_keys():
    res = subprocess.run([earshot_bin(), "--list-config-keys"], capture_output=True, text=True,
                         timeout=10, stdin=subprocess.DEVNULL)
    if res.returncode != 0 or res.stderr:
        raise AssertionError("--list-config-keys: exit %r, stderr %r" % (res.returncode, res.stderr))
    return res.stdout


def table_rows(markdown):
    """The Markdown table -> [{key, type, values, default, reload, what}]."""
    lines = markdown.strip("\n").split("\n")
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(head):
            raise AssertionError("row with %d cells, not %d: %r" % (len(cells), len(head), line))
        row = dict(zip(head, cells))
        row["key"] = row["key"].strip("`")
        rows.append(row)
    return rows


def config_text(key, raw):
    """A config setting only `key` (dotted) to the raw libconfig text; the line it is on."""
    group, _, leaf = key.rpartition(".")
    text = "plugin_dir = \"%s\";\n" % harness.plugin_dir()
    if group:
        text += "%s = {\n  %s = %s;\n};\n" % (group, leaf, raw)
        line = 3
    else:
        text += "%s = %s;\n" % (leaf, raw)
        line = 2
    return text + render_config({"hooks": make_hooks()}), line


class KeyTableTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.output = list_config_keys()
        cls.rows = table_rows(cls.output)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="earshot-keys-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_readme_table_is_the_list_config_keys_output(self):
        with open(README, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count(BEGIN), 1, "README lacks the marker %r" % BEGIN)
        self.assertEqual(text.count(END), 1, "README lacks the marker %r" % END)
        section = text.split(BEGIN, 1)[1].split(END, 1)[0]
        self.assertEqual(section.strip("\n") + "\n", self.output,
                         "README's key table differs from `earshot --list-config-keys`; "
                         "paste its output between the markers")

    def test_table_shape(self):
        keys = [r["key"] for r in self.rows]
        self.assertEqual(len(keys), len(set(keys)), keys)
        for name in ("server.port", "limits.max_connections", "server.allowed_origins",
                     "server.tls", "server.event_loop", "log.format", "log.modules", "hooks"):
            self.assertIn(name, keys)
        for r in self.rows:
            self.assertIn(r["reload"], ("yes", "restart"), r)
            self.assertTrue(r["what"], r)
            self.assertTrue(r["default"], r)
        restart = sorted(r["key"] for r in self.rows if r["reload"] == "restart")
        self.assertEqual(restart, ["cluster.enabled", "cluster.heartbeat_interval",
                                   "cluster.node", "cluster.node_timeout", "cluster.password",
                                   "cluster.password_file", "cluster.prefix", "cluster.redis",
                                   "cluster.secret", "cluster.secret_file", "cluster.user", "limits.handshake_timeout", "server.address",
                                   "server.event_loop", "server.port", "server.reuse_port",
                                   "server.tls"])

    def test_fuzz_seed_is_the_stock_config(self):
        with open(STOCK_CONFIG, encoding="utf-8") as f, open(FUZZ_SEED, encoding="utf-8") as g:
            self.assertEqual(g.read(), f.read(),
                             "tests/fuzz/corpus/config/stock.cfg is not config/earshot.cfg")

    def check_config(self, text):
        path = os.path.join(self.tmp, "earshot.cfg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        res = subprocess.run([earshot_bin(), "-c", path, "--check-config"], capture_output=True,
                             text=True, timeout=20, stdin=subprocess.DEVNULL, cwd=self.tmp)
        return path, res

    def assert_refused(self, key, raw, message):
        text, line = config_text(key, raw)
        path, res = self.check_config(text)
        self.assertEqual(res.returncode, 2, "%s = %s: exit code; stderr %r"
                         % (key, raw, res.stderr))
        self.assertEqual(res.stderr, "earshot: %s:%d: %s\n" % (path, line, message))

    def test_check_config_enforces_the_printed_ranges(self):
        ranged = [r for r in self.rows if r["type"] in ("integer", "number")]
        self.assertEqual(len(ranged), 21)
        for r in ranged:
            lo, hi = (float(v) for v in r["values"].split(" to "))
            leaf = r["key"].rpartition(".")[2]
            for bad in (lo - 1, hi + 1):
                with self.subTest(key=r["key"], value=bad):
                    if r["type"] == "integer":
                        raw, got, bounds = "%dL" % bad, "%d" % bad, "%d and %d" % (lo, hi)
                    else:
                        raw, got, bounds = repr(bad), "%g" % bad, "%g and %g" % (lo, hi)
                    self.assert_refused(r["key"], raw, "'%s' must be between %s (got %s)"
                                        % (leaf, bounds, got))

    def test_check_config_enforces_the_printed_choices(self):
        enums = [r for r in self.rows if r["values"].startswith('`"')]
        self.assertEqual(sorted(r["key"] for r in enums),
                         ["log.format", "log.level", "server.event_loop", "server.metrics",
                          "session.takeover"])
        for r in enums:
            choices = re.findall(r'`"([^"]*)"`', r["values"])
            leaf = r["key"].rpartition(".")[2]
            listed = ", ".join('"%s"' % c for c in choices[:-1]) + ' or "%s"' % choices[-1]
            with self.subTest(key=r["key"]):
                self.assert_refused(r["key"], '"nope"',
                                    "'%s' must be %s (got \"nope\")" % (leaf, listed))
                for choice in choices:
                    text, _ = config_text(r["key"], '"%s"' % choice)
                    _, res = self.check_config(text)
                    self.assertEqual(res.returncode, 0, "%s = %r: %r"
                                     % (r["key"], choice, res.stderr))

    def test_check_config_enforces_the_printed_types(self):
        messages = {"integer": "an integer", "number": "a number", "boolean": "true or false"}
        for r in self.rows:
            if r["type"] not in messages:
                continue
            leaf = r["key"].rpartition(".")[2]
            with self.subTest(key=r["key"]):
                self.assert_refused(r["key"], '"7"', "'%s' must be %s" % (leaf, messages[r["type"]]))


class ReloadFlagTest(ServerPerTestCase):
    """SIGHUP applies the keys marked reloadable and names, in one warning,
    those that wait for a restart (the running values stay for them)."""

    def reload(self, srv, **groups):
        for group, values in groups.items():
            srv.settings.setdefault(group, {}).update(values)
        srv.write_config()
        count = srv.output().count("reloaded:")
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: srv.output().count("reloaded:") > count, 5.0),
                        srv.output())

    def test_restart_keys_are_named_reloadable_keys_apply(self):
        srv = self.start({"limits": {"max_connections": 10}})
        m = self.new_map()
        a = self.join(self.cid("a"), m, 0, 0)
        self.reload(srv, limits={"max_connections": 2, "handshake_timeout": 2.0},
                    server={"event_loop": "poll"})
        warnings = [l for l in srv.output().splitlines() if "next start" in l]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("server.event_loop, limits.handshake_timeout take effect at the next "
                      "start, not on reload", warnings[0])
        # max_connections is reloadable: the third connection is refused now
        b = self.join(self.cid("b"), m, 1, 0, expect=[self.cid("a")])
        self.expect_peers(a, [self.cid("b")])
        self.refused(503)
        # the running server keeps serving both clients
        self.move(b, self.cid("b"), m, 2, 0)
        self.expect_nothing(a, b)
        self.refresh(a)
        self.expect_peers(a, [self.cid("b")])

    def test_reloadable_keys_alone_warn_of_nothing(self):
        srv = self.start()
        self.reload(srv, limits={"max_connections": 5, "message_rate": 10.0},
                    session={"takeover": "never"}, log={"format": "text"})
        self.assertNotIn("next start", srv.output())


if __name__ == "__main__":
    unittest.main()
