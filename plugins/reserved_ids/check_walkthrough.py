"""Keeps the walkthrough in docs/plugins.md true.

Between its markers the walkthrough must:
  - show reserved_ids.c whole: every ```c listing is a verbatim piece of the
    file and together they cover every line of it;
  - build it with the ```sh block's `cc` command (the in-tree header standing
    in for the installed one; warnings are errors here);
  - have its ```cfg block pass `earshot --check-config`, with output equal to
    the ```console block (timestamps aside; the build's paths stand in for
    the installed ones);
  - quote the errors a mistyped setting and an empty prefix really give.

Environment (set by ctest): EARSHOT_BIN, EARSHOT_PLUGIN_DIR, EARSHOT_SOURCE_DIR.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("EARSHOT_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(SOURCE_DIR, "docs", "plugins.md")
PLUGIN_SOURCE = os.path.join(HERE, "reserved_ids.c")
BEGIN = "<!-- walkthrough: plugins/reserved_ids/reserved_ids.c -->"
END = "<!-- end of walkthrough -->"

INSTALLED_PLUGIN_DIR = "/usr/local/lib/earshot/plugins"
INSTALLED_CONFIG = "/etc/earshot/earshot.cfg"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", re.M)


def walkthrough():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "walkthrough markers"
    return text[text.index(BEGIN):text.index(END)]


def blocks(text, lang):
    """The fenced blocks of one language, in order, without their fences."""
    return re.findall(r"^```" + lang + r"\n(.*?)^```$", text, re.M | re.S)


class Walkthrough(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = walkthrough()
        with open(PLUGIN_SOURCE, encoding="utf-8") as f:
            cls.source = f.read()
        cls.tmp = tempfile.mkdtemp(prefix="earshot-walkthrough-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_listings_are_the_file(self):
        listings = blocks(self.doc, "c")
        self.assertGreaterEqual(len(listings), 4)
        covered = [False] * len(self.source)
        for listing in listings:
            at = self.source.find(listing)
            self.assertNotEqual(at, -1, "not a verbatim piece of reserved_ids.c:\n" + listing)
            for i in range(at, at + len(listing)):
                covered[i] = True
        missing = []
        offset = 0
        for line in self.source.splitlines(keepends=True):
            if line.strip() and not all(covered[offset:offset + len(line.rstrip("\n"))]):
                missing.append(line.rstrip("\n"))
            offset += len(line)
        self.assertEqual(missing, [], "lines of reserved_ids.c the walkthrough leaves out")

    def build(self):
        """Run the walkthrough's cc command in a scratch directory."""
        (sh,) = [b for b in blocks(self.doc, "sh") if b.startswith("cc ")]
        line = sh.replace("\\\n", " ").splitlines()[0]
        # pkg-config's answer for an install is the in-tree header here
        # (tests/out_of_tree runs the command against a real install).
        self.assertIn("$(pkg-config --cflags earshot)", line)
        line = line.replace("$(pkg-config --cflags earshot)",
                            "-I" + os.path.join(SOURCE_DIR, "src"))
        command = shlex.split(line) + ["-Werror"]
        shutil.copy(PLUGIN_SOURCE, self.tmp)
        done = subprocess.run(command, cwd=self.tmp, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, "")
        # the other plugins of the config, from this build
        plugins = os.environ["EARSHOT_PLUGIN_DIR"]
        for name in ("relay_guard.so", "proximity.so"):
            link = os.path.join(self.tmp, name)
            if not os.path.exists(link):
                os.symlink(os.path.join(plugins, name), link)

    def check_config(self, edit=None):
        """earshot --check-config on the walkthrough's config (edited), its
        output in the walkthrough's terms."""
        (cfg,) = blocks(self.doc, "cfg")
        if edit:
            self.assertIn(edit[0], cfg)
            cfg = cfg.replace(edit[0], edit[1])
        path = os.path.join(self.tmp, "earshot.cfg")
        with open(path, "w", encoding="utf-8") as f:
            # appended, so that line numbers stay those of the listing
            f.write(cfg + 'plugin_dir = "%s";\n' % self.tmp)
        done = subprocess.run([os.environ["EARSHOT_BIN"], "--check-config", "-c", path],
                              capture_output=True, text=True, timeout=30)
        out = done.stderr + done.stdout
        out = out.replace(self.tmp + "/earshot.cfg", INSTALLED_CONFIG)
        out = out.replace(self.tmp, INSTALLED_PLUGIN_DIR)
        return done.returncode, TIMESTAMP.sub("", out)

    def test_builds_and_loads_as_shown(self):
        self.build()
        rc, out = self.check_config()
        self.assertEqual(rc, 0, out)
        (console,) = [b for b in blocks(self.doc, "console")
                      if b.startswith("$ earshot --check-config")]
        prompt, shown = console.split("\n", 1)
        self.assertEqual(prompt, "$ earshot --check-config -c " + INSTALLED_CONFIG)
        self.assertEqual(out, TIMESTAMP.sub("", shown))

    def test_quoted_errors(self):
        self.build()
        for edit in (('prefix = "server-";', 'prefx = "gm:";'),
                     ('prefix = "server-";', 'prefix = "";')):
            rc, out = self.check_config(edit)
            self.assertEqual(rc, 2, out)
            (line,) = out.splitlines()
            self.assertIn("\n    " + line + "\n", self.doc)


if __name__ == "__main__":
    unittest.main()
