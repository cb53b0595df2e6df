#!/usr/bin/python3
"""The test suite runs from a fresh clone, alone, wherever it was cloned.

Two ways it once did not (issue 12, defect 13):
  * tests read a corpus kept beside the repository, so a clone without it failed:
    no file of the tree may name a path outside it (a sibling "shared" folder), and
    every third-party licence kept with the vendored data in tests/data is credited
    in tests/data/README.md and in README.md;
  * the build tree of a clone under /root (mode 0700) cannot be reached by the user
    nobody, so the tests that run `missive` as nobody failed there: here the build's
    missive and sendmail front end (missive-sendmail) are put in a mode-0700
    directory (which nobody indeed cannot run from), and harness.runnable_copy makes
    copies nobody runs: --version, a command that opens OpenSSL and SQLite, and
    `missive sendmail` and the front end into a running missived through its
    submission socket (nobody cannot write the root-owned queue); with missived
    stopped, the front end's copy runs the missive-core copied beside it, which
    answers 75 (try again), not 72 (no missive-core found).  The light missive runs
    every other command through the missive-core copied beside it too.

Run as root, with the binaries in the environment:
    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_fresh_clone.py
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (CMD_TIMEOUT, CRASH, as_user, binary, free_port, make_dir,  # noqa: E402
                     remove_dir, run, runnable_copy, wait_for)

SRC = os.environ.get("MSV_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
DATA = os.path.join(SRC, "tests", "data")
FRONT = "missive-sendmail"
CORE = "missive-core"
# A path out of the tree to the corpus it once read; written so that this file
# does not match itself.
OUTSIDE = re.compile(rb"\.\./+shared\b|\bshared[/]corpus\b|/work[/]shared\b"
                     rb"|\bshared[\"']\s*,\s*[\"']corpus\b")    # also as path components


def tree_files(root):
    """Every file of the source tree but .git and build trees (a CMakeCache.txt)."""
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(n for n in dirs if n not in (".git", "__pycache__")
                         and not os.path.exists(os.path.join(d, n, "CMakeCache.txt")))
        for f in sorted(files):
            yield os.path.join(d, f)


class SelfContained(unittest.TestCase):
    def test_no_path_outside_the_tree(self):
        found = []
        for path in tree_files(SRC):
            with open(path, "rb") as f:
                data = f.read()
            for m in OUTSIDE.finditer(data):
                line = data.count(b"\n", 0, m.start()) + 1
                found.append("%s:%d: %s" % (os.path.relpath(path, SRC), line,
                                            m.group().decode(errors="replace")))
        self.assertEqual(found, [], "paths outside the repository (vendor the data into "
                         "tests/data instead):\n  " + "\n  ".join(found))

    def test_vendored_data_credited(self):
        licences = sorted(os.path.relpath(os.path.join(d, f), DATA)
                          for d, _, files in os.walk(DATA) for f in files
                          if f.startswith("LICENSE"))
        self.assertGreaterEqual(len(licences), 5, licences)
        for readme in (os.path.join(DATA, "README.md"), os.path.join(SRC, "README.md")):
            with open(readme) as f:
                text = f.read()
            for lic in licences:
                self.assertIn(lic, text, "%s does not credit tests/data/%s" % (readme, lic))


class NobodyFromPrivateTree(unittest.TestCase):
    """A build tree under a mode-0700 directory, as a clone into /root has."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root, to run commands as nobody")
        cls.nobody = as_user("nobody")
        cls.private = tempfile.mkdtemp(prefix="missive-private-")
        os.chmod(cls.private, 0o700)
        cli = os.path.join(cls.private, "build", "src", "cli")
        os.makedirs(cli)
        src = binary("MISSIVE_BIN", "build/src/cli/missive")
        for f in (src, os.path.join(os.path.dirname(src), FRONT),
                  os.path.join(os.path.dirname(src), CORE)):
            shutil.copy2(f, cli)
        cls.exe = os.path.join(cli, os.path.basename(src))
        cls.front = os.path.join(cli, FRONT)
        cls.work = None

    @classmethod
    def tearDownClass(cls):
        remove_dir(getattr(cls, "work", None), "MISSIVE_FRESH_KEEP", "fresh-clone test files")
        shutil.rmtree(getattr(cls, "private", "") or "/nonexistent", ignore_errors=True)

    def as_nobody(self, exe, args, **kw):
        p = run([exe] + args, **dict(self.nobody, **kw))
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.assertNotRegex(p.err, CRASH)
        return p

    def test_private_tree_is_closed_to_nobody(self):
        # What the tests ran into: exec fails before missive even starts.
        with self.assertRaises(PermissionError):
            run([self.exe, "--version"], **self.nobody)

    def test_copy_runs_as_nobody(self):
        exe = runnable_copy(self.exe, "nobody")
        self.assertFalse(exe.startswith(self.private + os.sep), exe)
        p = self.as_nobody(exe, ["--version"])
        self.assertEqual(p.returncode, 0, p.err)
        self.assertRegex(p.out, r"^missive ")
        # A command that needs OpenSSL and SQLite: all linked into the one copy.
        p = self.as_nobody(exe, ["queue", "--help"])
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("usage: missive queue", p.out + p.err)

    def test_sendmail_as_nobody_through_socket(self):
        exe = runnable_copy(self.exe, "nobody")
        front = runnable_copy(self.front, "nobody")
        work = type(self).work = make_dir("missive-fresh-")
        cfg = os.path.join(work, "missive.conf")
        with open(cfg, "w") as f:
            # Nothing listens on the route's port: the message just waits in the queue.
            f.write("[queue]\npath = %s\n\n[http]\nlisten = 127.0.0.1:%d\ntrust-loopback = yes\n\n"
                    "[daemon]\nworkers = 1\npoll-interval = 100ms\n\n"
                    "[route default]\nserver = 127.0.0.1:%d\ntls = none\n"
                    % (os.path.join(work, "queue.db"), free_port(), free_port()))
        sock = os.path.join(work, "submit.sock")
        log = os.path.join(work, "missived.log")
        with open(log, "wb") as out:
            d = subprocess.Popen([binary("MISSIVED_BIN", "build/src/daemon/missived"),
                                  "--config", cfg], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: d.poll() is not None or os.path.exists(sock), 20,
                     "missived's submission socket")
            self.assertIsNone(d.poll(), "missived exited at start")
            # No From: and no -f: what sendmail fills in for nobody is not at stake here.
            p = self.as_nobody(exe, ["sendmail", "--config", cfg, "--json", "-t"],
                               input=b"To: r@example.test\nSubject: fresh clone\n\nhi\n")
            self.assertEqual(p.returncode, 0, p.err)
            self.assertRegex(json.loads(p.out)["id"], r"^[0-9a-f]{16}$")
            p = self.as_nobody(front, ["--config", cfg, "--json", "-t"],
                               input=b"To: r@example.test\nSubject: front end\n\nhi\n")
            self.assertEqual(p.returncode, 0, p.err)
            self.assertRegex(json.loads(p.out)["id"], r"^[0-9a-f]{16}$")
        finally:
            d.send_signal(signal.SIGTERM)
            try:
                rc = d.wait(CMD_TIMEOUT)
            except subprocess.TimeoutExpired:
                d.kill()
                rc = d.wait()
        with open(log, errors="replace") as f:
            text = f.read()
        self.assertEqual(rc, 0, text)
        self.assertNotRegex(text, CRASH, text)
        # missived stopped: both run the missive-core copied beside them, which
        # cannot write root's queue as nobody either: try again later.
        for light, pre in ((front, []), (exe, ["sendmail"])):
            p = self.as_nobody(light, pre + ["--config", cfg, "-t"],
                               input=b"To: r@example.test\nSubject: front end\n\nhi\n")
            self.assertEqual(p.returncode, 75, p.err)
            self.assertNotIn("reinstall", p.err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
