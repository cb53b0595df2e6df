#!/usr/bin/python3
"""The application layer stands alone (docs/internals/architecture.md).

  * `missived` links the library and src/app only: no cli_* symbol in it;
  * a configuration error from missived names the file, the line, the section
    and the key, in missived's own words: not "missive: ..." and not
    "see 'missive send --help'" (the CLI's flag parser speaking);
  * a route whose keys do not go together names the route's section and line;
  * the layering check (scripts/checksrc.sh) refuses a planted upward include.

Run: MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
     /usr/bin/python3 tests/integration/test_app_layer.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary, run  # noqa: E402

SOURCE = os.environ.get("MSV_SOURCE_DIR",
                        os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
T = {}


def setUpModule():
    T["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    T["dir"] = tempfile.mkdtemp(prefix="missive-app-layer-")


def tearDownModule():
    shutil.rmtree(T["dir"], ignore_errors=True)


def config(name, route):
    path = os.path.join(T["dir"], name + ".conf")
    with open(path, "w") as f:
        f.write("[queue]\npath = %s\n\n[http]\nlisten =\n\n" % os.path.join(T["dir"], name + ".db"))
        f.write("[route default]\n" + route)
    return path


class Linkage(unittest.TestCase):

    def test_missived_has_no_cli_symbols(self):
        p = run(["nm", T["daemon"]])
        self.assertEqual(p.returncode, 0, p.stderr)
        cli = [l for l in p.stdout.decode().splitlines() if re.search(r"\bcli_\w+$", l)]
        self.assertEqual(cli, [], "missived contains CLI code:\n" + "\n".join(cli[:20]))


class ConfigErrors(unittest.TestCase):

    def check(self, path, want):
        p = run([T["daemon"], "--config", path, "--check"])
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 78, err)
        self.assertNotRegex(err, CRASH)
        self.assertNotIn("missive:", err)
        self.assertNotIn("missive send", err)
        self.assertNotIn("--", err, "a config error names keys, not flags")
        self.assertRegex(err, want)
        return err

    def test_bad_value_names_key_and_line(self):
        path = config("badtls", "server = 127.0.0.1:9\ntls = sometimes\n")
        self.check(path, r"^missived: %s:9: \[route default\] tls: .*sometimes" % re.escape(path))

    def test_bad_server_names_key_and_line(self):
        path = config("badserver", "server = [::1\n")
        self.check(path, r"%s:8: \[route default\] server: " % re.escape(path))

    def test_combination_names_route_and_line(self):
        path = config("nopass", "server = 127.0.0.1:9\ntls = none\nuser = u\n")
        err = self.check(path, r"%s:7: \[route default\] user needs password-file"
                         % re.escape(path))
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_unreadable_password_file(self):
        path = config("nofile", "server = 127.0.0.1:9\nuser = u\npassword-file = %s\n"
                      % os.path.join(T["dir"], "missing"))
        self.check(path, r"\[route default\] cannot open password file .*missing")

    def test_stray_argument(self):
        p = run([T["daemon"], "extra"])
        self.assertEqual(p.returncode, 64)
        err = p.stderr.decode(errors="replace")
        self.assertTrue(err.startswith("missived: "), err)
        self.assertIn("'extra'", err)


class Layering(unittest.TestCase):

    def test_checksrc_passes_and_refuses_upward_include(self):
        script = os.path.join(SOURCE, "scripts", "checksrc.sh")
        p = run(["sh", script])
        self.assertEqual(p.returncode, 0, p.stderr)
        copy = os.path.join(T["dir"], "src")
        shutil.copytree(os.path.join(SOURCE, "src"), copy)
        with open(os.path.join(copy, "app", "route.c"), "a") as f:
            f.write('#include "cli.h"\n')
        p = run(["sh", script, copy])
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"app must not depend on cli", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
