"""A plugin built out of tree, the way docs/plugins.md tells plugin authors:
`cmake --install` into a fresh prefix, then

    cc -shared -fPIC $(pkg-config --cflags earshot) closed_map.c -o closed_map.so

with PKG_CONFIG_PATH pointing at that prefix, copied into
`pkg-config --variable=plugindir earshot`, named in a config, and loaded by
the installed server, whose hook then refuses a position.

Environment (set by ctest): EARSHOT_BUILD_DIR, EARSHOT_INSTALL_LIBDIR,
CMAKE_COMMAND, and CC (default cc).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from wsclient import NoMessage, WebSocket  # noqa: E402


def run(cmd, env=None, shell=False):
    p = subprocess.run(cmd, env=env, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (cmd, p.returncode, p.stdout))
    return p.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestOutOfTreePlugin(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="earshot-out-of-tree-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.prefix = os.path.join(self.tmp, "prefix")
        run([os.environ.get("CMAKE_COMMAND", "cmake"), "--install", os.environ["EARSHOT_BUILD_DIR"],
             "--prefix", self.prefix])
        self.env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.prefix, "share", "pkgconfig"))

    def pkg_config(self, *args):
        return run(["pkg-config"] + list(args) + ["earshot"], env=self.env).strip()

    def test_pkg_config_points_at_the_install(self):
        cflags = self.pkg_config("--cflags")
        self.assertEqual(cflags, "-I%s/include" % self.prefix)
        self.assertTrue(os.path.isfile(os.path.join(self.prefix, "include", "earshot", "plugin.h")))
        plugindir = self.pkg_config("--variable=plugindir")
        self.assertEqual(plugindir, os.path.join(self.prefix, os.environ["EARSHOT_INSTALL_LIBDIR"],
                                                 "earshot", "plugins"))
        self.assertTrue(os.path.isfile(os.path.join(plugindir, "proximity.so")))
        with open(os.path.join(HERE, "..", "..", "src", "earshot", "plugin.h")) as f:
            api = [l.split()[2].rstrip("u") for l in f
                   if l.startswith("#define EARSHOT_PLUGIN_API_VERSION ")]
        self.assertEqual(self.pkg_config("--variable=plugin_api_version"), api[0])

    def test_build_and_load(self):
        plugindir = self.pkg_config("--variable=plugindir")
        build = os.path.join(self.tmp, "my-plugin")
        os.mkdir(build)
        shutil.copy(os.path.join(HERE, "closed_map.c"), build)
        # The documented command, through a shell as an author types it.
        cc = os.environ.get("CC") or "cc"
        run("cd '%s' && %s -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden "
            "$(pkg-config --cflags earshot) closed_map.c -o closed_map.so" % (build, cc),
            env=self.env, shell=True)
        shutil.copy(os.path.join(build, "closed_map.so"), plugindir)

        with open(os.path.join(self.prefix, "etc", "earshot", "earshot.cfg")) as f:
            stock = f.read()
        self.assertIn("hooks = (\n", stock)
        cfg = os.path.join(self.tmp, "earshot.cfg")
        with open(cfg, "w") as f:
            f.write('plugin_dir = "%s";\nscript_dir = "%s";\nweb_dir = "%s";\n' % (
                plugindir, os.path.join(self.prefix, "share", "earshot", "lua"),
                os.path.join(self.prefix, "share", "earshot", "web")))
            f.write(stock.replace("hooks = (\n", 'hooks = (\n  { type = "plugin"; name = '
                                  '"closed_map"; settings = { map = 7; }; },\n', 1))
        binary = os.path.join(self.prefix, "bin", "earshot")
        port = free_port()
        server = subprocess.Popen([binary, "-c", cfg, "--port", str(port)],
                                  stderr=subprocess.PIPE, text=True)
        try:
            self.exercise(port)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                _, log = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                _, log = server.communicate()
        self.assertEqual(server.returncode, 0, log)
        self.assertNotIn("Sanitizer", log)
        self.assertIn("plugin closed_map: map 7 is closed", log)
        self.assertIn("hooks: loaded plugin closed_map (%s/closed_map.so 1.0.0)" % plugindir, log)

    def exercise(self, port):
        deadline = time.monotonic() + 20
        while True:
            try:
                a = WebSocket("127.0.0.1", port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        a.send_msg("UpdatePosition", {"client_id": "walker", "map_id": 7, "x": 0, "y": 0})
        self.assertEqual(a.recv_json(5), {"type": "Error", "data": "this map is closed"})
        a.send_msg("UpdatePosition", {"client_id": "walker", "map_id": 8, "x": 0, "y": 0})
        self.assertEqual(a.recv_json(5), {"type": "NearbyPeers", "data": []})
        a.send_close()
        try:
            a.recv_json(2)
        except (NoMessage, AssertionError):
            pass
        a.sock.close()


if __name__ == "__main__":
    unittest.main()
