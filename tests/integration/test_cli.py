"""The command line and config loading: --check-config, --version, --help, --port,
and bad configs (one message naming file and line, exit code 2)."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import HOST, Raw, earshot_bin, free_port, make_hooks, merge, render_config
from wsclient import http_get


class CliTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="earshot-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def settings(self, **over):
        s = merge(harness.DEFAULT_CONFIG, over)
        s["server"]["port"] = free_port()
        s["plugin_dir"] = harness.plugin_dir()
        s["hooks"] = make_hooks()
        return s

    def write(self, text, name="earshot.cfg"):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_cli(self, *args, timeout=10):
        return subprocess.run([earshot_bin()] + list(args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.tmp)

    def assert_bad_config(self, text, line, *args):
        path = self.write(text)
        res = self.run_cli("-c", path, *args)
        self.assertEqual(res.returncode, 2, "exit code; stderr: %r" % res.stderr)
        self.assertTrue(res.stderr.strip(), "no message on stderr")
        named = [l for l in res.stderr.splitlines()
                 if "earshot.cfg" in l and re.search(r"(?<![0-9])%d(?![0-9])" % line, l)]
        self.assertTrue(named, "stderr does not name earshot.cfg and line %d: %r"
                        % (line, res.stderr))

    # ---------------------------------------------------------------- info
    def test_version(self):
        res = self.run_cli("--version")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue((res.stdout + res.stderr).strip())

    def test_help(self):
        res = self.run_cli("--help")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout + res.stderr
        for opt in ("--port", "--check-config", "--list-config-keys"):
            self.assertIn(opt, out)

    def test_unknown_option(self):
        res = self.run_cli("--no-such-option")
        self.assertNotEqual(res.returncode, 0)
        self.assertTrue(res.stderr.strip())

    # -------------------------------------------------------- check-config
    def test_check_config_accepts_valid(self):
        path = self.write(render_config(self.settings()))
        res = self.run_cli("-c", path, "--check-config")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_check_config_all_policies(self):
        for policy in ("always", "same_address", "never"):
            with self.subTest(policy=policy):
                path = self.write(render_config(self.settings(session={"takeover": policy})))
                res = self.run_cli("-c", path, "--check-config")
                self.assertEqual(res.returncode, 0, res.stderr)

    def test_syntax_error_names_line(self):
        text = render_config(self.settings())
        lines = text.splitlines()
        # break line 3 (inside the server group)
        self.assertIn("port", lines[2])
        lines[2] = "  port = = 8080;"
        text = "\n".join(lines) + "\n"
        for args in ((), ("--check-config",)):
            with self.subTest(args=args):
                self.assert_bad_config(text, 3, *args)

    def test_bad_takeover_value_names_line(self):
        s = self.settings()
        s["session"]["takeover"] = "sometimes"
        text = render_config(s)
        line = next(i + 1 for i, l in enumerate(text.splitlines()) if "sometimes" in l)
        self.assert_bad_config(text, line, "--check-config")
        self.assert_bad_config(text, line)

    def test_wrong_type_names_line(self):
        for group, key, raw in [("server", "port", '"eighty"'),
                                ("session", "idle_timeout", '"soon"'),
                                ("log", "level", '"chatty"')]:
            with self.subTest(key=key):
                s = self.settings()
                s[group][key] = Raw(raw)
                text = render_config(s)
                line = next(i + 1 for i, l in enumerate(text.splitlines()) if raw in l)
                self.assert_bad_config(text, line, "--check-config")

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "absent.cfg")
        res = self.run_cli("-c", path, "--check-config")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("absent.cfg", res.stderr)

    def test_unknown_plugin_fails_startup(self):
        s = self.settings()
        s["hooks"] = s["hooks"] + [{"type": "plugin", "name": "no_such_plugin", "enabled": True,
                                    "settings": {}}]
        path = self.write(render_config(s))
        p = subprocess.Popen([earshot_bin(), "-c", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.tmp)
        self.procs.append(p)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("earshot started although a configured plugin does not exist")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no_such_plugin", err)

    # ---------------------------------------------------------------- port
    def test_port_option_overrides_config(self):
        s = self.settings()
        config_port = s["server"]["port"]
        port = free_port()
        while port == config_port:
            port = free_port()
        path = self.write(render_config(s))
        p = subprocess.Popen([earshot_bin(), "-c", path, "--port", str(port)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=self.tmp)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline and p.poll() is None:
            try:
                status = http_get(HOST, port, "/healthz", timeout=1.0)[0]
                break
            except OSError:
                time.sleep(0.05)
        self.assertEqual(status, 200, "no /healthz on --port %d" % port)
        with self.assertRaises(OSError):
            http_get(HOST, config_port, "/healthz", timeout=1.0)
        p.terminate()
        self.assertIn(p.wait(5), (0, -15))


if __name__ == "__main__":
    unittest.main()
