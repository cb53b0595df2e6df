#!/usr/bin/python3
"""`missive` without OpenSSL and SQLite: the command module missive-commands.so.

The executable links neither; send, dkim, queue, bounce, suppression, bench, the
direct-to-queue path of sendmail and `build --dkim-*` live in missive-commands.so,
loaded on first use from beside the executable (build tree), from
../lib/<multiarch>/missive relative to it (installed tree) or from the absolute
install libdir.  Checked here:
  * readelf: no NEEDED libssl, libcrypto or libsqlite3 in `missive`; at run time
    (LD_DEBUG=files) build, dsn and --help load none of them, dkim and queue do;
  * the binary copied alone into a temp dir: the module's commands exit 72
    (EX_OSFILE) naming missive-commands.so and where it was looked for; build
    (same bytes as the build tree's), dsn, --help and sendmail through a running
    missived still work; a broken module file is refused (72);
  * the module found through the installed layout (bin/ + the relative libdir)
    and through a symlink to the build tree's binary;
  * the build tree's `missive build --dkim-key ...` signs (a verifiable signature).
  * a module of another build (its build ID: commit and struct layouts) is refused.

Run: MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
     /usr/bin/python3 tests/integration/test_cli_module.py
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary  # noqa: E402

MODULE = "missive-commands.so"
CMD_TIMEOUT = 60
BUILD_ARGS = ["build", "--from", "a@example.com", "--to", "b@example.com", "--subject", "s",
              "--text-body", "hi", "--message-id", "<x@y>",
              "--date", "Mon, 1 Jan 2024 00:00:00 +0000"]
HEAVY = re.compile(r"lib(ssl|crypto|sqlite3)\.so")
DSN = """From: MAILER-DAEMON@mx.example.com
To: sender@example.com
Subject: Undelivered Mail Returned to Sender
Date: Mon, 1 Jan 2024 00:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; gone@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--B--
"""

T = {}


def setUpModule():
    T["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    T["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    if not os.path.exists(os.path.join(os.path.dirname(T["bin"]), MODULE)):
        raise RuntimeError("no %s beside %s: is this a build tree?" % (MODULE, T["bin"]))
    T["dir"] = tempfile.mkdtemp(prefix="missive-module-")
    lone = os.path.join(T["dir"], "lone")
    os.mkdir(lone)
    shutil.copy2(T["bin"], lone)
    T["lone"] = os.path.join(lone, "missive")
    T["key"] = os.path.join(T["dir"], "dkim.pem")
    p = run(T["bin"], ["dkim", "keygen", "--algo", "ed25519", "--selector", "sel",
                       "--domain", "example.com", "--out", T["key"], "--json"])
    if p.returncode != 0:
        raise RuntimeError("dkim keygen failed: " + p.stderr.decode(errors="replace"))
    T["record"] = os.path.join(T["dir"], "dkim.txt")
    with open(T["record"], "w") as f:
        f.write(json.loads(p.stdout)["txt"] + "\n")
    T["dsn"] = os.path.join(T["dir"], "dsn.eml")
    with open(T["dsn"], "w") as f:
        f.write(DSN)


def tearDownModule():
    if T.get("dir"):
        shutil.rmtree(T["dir"], ignore_errors=True)
    T.clear()


def run(exe, args, input=None, env=None):
    return subprocess.run([exe] + list(args), input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CMD_TIMEOUT,
                          env=dict(os.environ, **(env or {})))


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def describe(p):
    return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def loaded_files(exe, args, input=None):
    """The shared objects the dynamic loader opened while running exe args."""
    p = run(exe, args, input=input, env={"LD_DEBUG": "files"})
    return p, set(re.findall(r"\bfile=(\S+)", p.stderr.decode(errors="replace")))


def write_config(d, **daemon):
    cfg = os.path.join(d, "missive.conf")
    with open(cfg, "w") as f:
        f.write("[queue]\npath = %s\n\n[http]\nlisten =\n\n[daemon]\n"
                "workers = 1\npoll-interval = 100ms\n" % os.path.join(d, "queue.db"))
        for k, v in daemon.items():
            f.write("%s = %s\n" % (k.replace("_", "-"), v))
        f.write("\n[route default]\nserver = 127.0.0.1:9\ntls = none\n")
    return cfg


class Case(unittest.TestCase):
    maxDiff = 4000

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code, describe(p))
        self.assertNotRegex(p.stderr.decode(errors="replace"), CRASH, describe(p))

    def assertNoModule(self, p, exe):
        """Exit 72 and one line naming the module and where it was looked for."""
        self.assertExit(p, 72)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.stdout, b"", describe(p))
        self.assertEqual(len(err.strip().splitlines()), 1, describe(p))
        self.assertIn("cannot find %s (looked for " % MODULE, err)
        self.assertIn(os.path.join(os.path.dirname(exe), MODULE), err)
        self.assertIn("reinstall missive", err)
        return err

    def workdir(self, name):
        d = tempfile.mkdtemp(prefix=name + ".", dir=T["dir"])
        return d


class LinkageTest(Case):

    def test_no_openssl_or_sqlite_needed(self):
        p = subprocess.run(["readelf", "-d", T["bin"]], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertExit(p, 0)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout.decode())
        self.assertIn("libc.so.6", needed)
        self.assertEqual([n for n in needed if HEAVY.match(n)], [], needed)
        # The module is a shared object beside it.
        p = subprocess.run(["readelf", "-h", os.path.join(os.path.dirname(T["bin"]), MODULE)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout.decode(), r"Type:\s+DYN")

    def test_module_loaded_on_demand(self):
        for args, stdin in ((BUILD_ARGS, None), (["--help"], None), (["--version"], None),
                            (["dsn", "parse", T["dsn"], "--json"], None),
                            (["sendmail", "--help"], None)):
            with self.subTest(args=args[:2]):
                p, files = loaded_files(T["bin"], args, stdin)
                self.assertExit(p, 0)
                self.assertTrue(files, "LD_DEBUG=files printed nothing")
                self.assertEqual([f for f in files if HEAVY.search(f) or MODULE in f], [],
                                 sorted(files))
        for args in (["dkim", "--help"], ["queue", "--help"]):
            with self.subTest(args=args):
                p, files = loaded_files(T["bin"], args)
                self.assertExit(p, 0)
                self.assertIn(os.path.join(os.path.dirname(T["bin"]), MODULE), files)
                self.assertTrue([f for f in files if HEAVY.search(f)], sorted(files))


class LoneBinaryTest(Case):
    """The executable copied alone into a directory: no module anywhere it looks."""

    def test_module_commands_exit_72(self):
        cfg = write_config(self.workdir("lone72"))
        for args in (["queue", "stats", "--config", cfg], ["send", "--help"],
                     ["dkim", "keygen", "--help"], ["bounce", "--config", cfg],
                     ["suppression", "ls", "--config", cfg], ["bench", "--help"]):
            with self.subTest(args=args[:2]):
                self.assertNoModule(run(T["lone"], args), T["lone"])
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(cfg), "queue.db")))

    def test_build_dsn_help_work(self):
        orig = run(T["bin"], BUILD_ARGS)
        self.assertExit(orig, 0)
        self.assertEqual(run(T["bin"], BUILD_ARGS).stdout, orig.stdout,
                         "build is not deterministic")
        p = run(T["lone"], BUILD_ARGS)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, orig.stdout)
        self.assertEqual(p.stderr, b"")
        self.assertIn(b"Message-ID: <x@y>\r\n", p.stdout)
        for args in (["--help"], ["--version"], ["build", "--help"], ["sendmail", "--help"],
                     ["dsn", "parse", T["dsn"], "--json"]):
            with self.subTest(args=args):
                p = run(T["lone"], args)
                self.assertExit(p, 0)
                self.assertEqual(p.stdout, run(T["bin"], args).stdout)
        self.assertIn(b"usage: missive COMMAND", run(T["lone"], ["--help"]).stdout)
        # An unknown command is still a usage error, not a missing module.
        self.assertExit(run(T["lone"], ["frobnicate"]), 64)

    def test_build_with_dkim_key_needs_module(self):
        p = run(T["lone"], BUILD_ARGS + ["--dkim-key", T["key"], "--dkim-selector", "sel",
                                         "--dkim-domain", "example.com"])
        self.assertNoModule(p, T["lone"])

    def test_sendmail_through_missived_without_module(self):
        d = self.workdir("lone-sendmail")
        os.chmod(d, 0o755)
        cfg = write_config(d)
        sock = os.path.join(d, "submit.sock")
        log = os.path.join(d, "missived.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen([T["daemon"], "--config", cfg], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 20
            while not self.connectable(sock):
                self.assertIsNone(proc.poll(), read(log))
                self.assertLess(time.monotonic(), deadline, "missived's socket never answered")
                time.sleep(0.05)
            msg = (b"From: a@example.com\nTo: b@example.com, c@example.com\nSubject: s\n\n"
                   b"through missived, no module\n")
            p = run(T["lone"], ["sendmail", "--config", cfg, "-t", "--json"], input=msg)
            self.assertExit(p, 0)
            obj = json.loads(p.stdout)
            self.assertEqual(set(obj), {"id", "recipients"})
            self.assertEqual(obj["recipients"], 2)
            p = run(T["lone"], ["sendmail", "--config", cfg, "-v", "d@example.com"], input=msg)
            self.assertExit(p, 0)
            self.assertRegex(p.stdout.decode(), r"^queued as [0-9a-f]{16} for 1 recipient\n$")
            # A bad message is answered by missived: 65, not 72.
            p = run(T["lone"], ["sendmail", "--config", cfg, "not an address"], input=msg)
            self.assertExit(p, 65)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
        text = read(log)
        self.assertEqual(rc, 0, text)
        self.assertNotRegex(text, CRASH)
        # The build tree's missive reads what was queued.
        p = run(T["bin"], ["queue", "stats", "--config", cfg, "--json"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["messages"], 2)
        # missived stopped: writing the queue needs the module.
        self.assertFalse(os.path.exists(sock))
        p = run(T["lone"], ["sendmail", "--config", cfg, "-t"], input=msg)
        self.assertNoModule(p, T["lone"])
        # With the socket disabled too.
        p = run(T["lone"], ["sendmail", "--config", write_config(
            self.workdir("lone-nosock"), socket=""), "-t"], input=msg)
        self.assertNoModule(p, T["lone"])
        p = run(T["bin"], ["queue", "stats", "--config", cfg, "--json"])
        self.assertEqual(json.loads(p.stdout)["messages"], 2)

    @staticmethod
    def connectable(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def test_broken_module_refused(self):
        d = self.workdir("broken")
        exe = os.path.join(d, "missive")
        shutil.copy2(T["bin"], exe)
        with open(os.path.join(d, MODULE), "w") as f:
            f.write("not a shared object\n")
        p = run(exe, ["dkim", "--help"])
        self.assertExit(p, 72)
        err = p.stderr.decode(errors="replace")
        self.assertIn("cannot load %s" % os.path.join(d, MODULE), err)
        self.assertEqual(p.stdout, b"")
        # build without DKIM does not touch it.
        self.assertExit(run(exe, BUILD_ARGS), 0)


class BuildIdTest(Case):
    """A module of another build is refused: the table carries the commit and the
    layout of the structs that cross (module.h), not a hand-bumped number."""

    def test_module_of_another_commit_refused(self):
        d = self.workdir("otherbuild")
        exe = os.path.join(d, "missive")
        shutil.copy2(T["bin"], exe)
        with open(os.path.join(os.path.dirname(T["bin"]), MODULE), "rb") as f:
            data = f.read()
        shutil.copy2(os.path.join(os.path.dirname(T["bin"]), MODULE), os.path.join(d, MODULE))
        self.assertExit(run(exe, ["dkim", "--help"]), 0)
        m = re.search(rb"[0-9a-f]{40}(?:-dirty)?\0", data)
        if not m:
            self.skipTest("built outside a git checkout: the build commit is 'unknown'")
        other = bytes([ord("0") if data[m.start()] != ord("0") else ord("1")])
        with open(os.path.join(d, MODULE), "wb") as f:
            f.write(data[:m.start()] + other + data[m.start() + 1:])
        p = run(exe, ["dkim", "--help"])
        self.assertExit(p, 72)
        self.assertEqual(p.stdout, b"", describe(p))
        self.assertIn(b"is from another build of missive", p.stderr)
        self.assertIn(b"reinstall", p.stderr)
        # build without DKIM does not load it.
        self.assertExit(run(exe, BUILD_ARGS), 0)


class LayoutTest(Case):
    """Where the module is found besides the build tree."""

    def test_installed_layout(self):
        # Where an installed missive looks: the second path of the lone copy's message.
        err = self.assertNoModule(run(T["lone"], ["dkim", "--help"]), T["lone"])
        looked = re.search(r"\(looked for (.*)\); reinstall", err).group(1).split(", ")
        self.assertEqual(len(looked), 3, err)
        rel = os.path.relpath(looked[1], os.path.dirname(T["lone"]))
        self.assertRegex(rel, r"^\.\./lib(/[^/]+)?/missive/%s$" % re.escape(MODULE))
        self.assertTrue(os.path.isabs(looked[2]), err)
        self.assertTrue(looked[2].endswith("/missive/" + MODULE), err)
        prefix = self.workdir("prefix")
        os.mkdir(os.path.join(prefix, "bin"))
        exe = os.path.join(prefix, "bin", "missive")
        shutil.copy2(T["bin"], exe)
        mod = os.path.normpath(os.path.join(prefix, "bin", rel))
        os.makedirs(os.path.dirname(mod))
        shutil.copy2(os.path.join(os.path.dirname(T["bin"]), MODULE), mod)
        p = run(exe, ["dkim", "--help"])
        self.assertExit(p, 0)
        self.assertIn(b"keygen", p.stdout)
        # sendmail without missived: the module writes the queue.
        cfg = write_config(prefix, socket="")
        p = run(exe, ["sendmail", "--config", cfg, "-v", "b@example.com"],
                input=b"From: a@example.com\nSubject: s\n\nhi\n")
        self.assertExit(p, 0)
        self.assertRegex(p.stdout.decode(), r"^queued as [0-9a-f]{16} for 1 recipient\n$")
        p = run(exe, ["queue", "stats", "--config", cfg, "--json"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["messages"], 1)

    def test_symlink_to_build_tree(self):
        # /proc/self/exe is the link's target: the module beside it is found.
        d = self.workdir("link")
        link = os.path.join(d, "missive")
        os.symlink(T["bin"], link)
        p = run(link, ["dkim", "--help"])
        self.assertExit(p, 0)


class DkimFromBuildTreeTest(Case):

    def test_build_signs_with_module(self):
        args = BUILD_ARGS + ["--dkim-key", T["key"], "--dkim-selector", "sel",
                             "--dkim-domain", "example.com"]
        p, files = loaded_files(T["bin"], args)
        self.assertExit(p, 0)
        self.assertIn(os.path.join(os.path.dirname(T["bin"]), MODULE), files)
        signed = p.stdout
        self.assertTrue(signed.startswith(b"DKIM-Signature: "), signed[:200])
        head = signed.split(b"\r\n\r\n", 1)[0].decode()
        self.assertRegex(head, r"(?s)^DKIM-Signature: .*\bd=example\.com;")
        self.assertRegex(head, r"(?s)^DKIM-Signature: .*\bs=sel;")
        self.assertRegex(head, r"(?s)^DKIM-Signature: .*\ba=ed25519-sha256;")
        # Only the field was added; the rest is what build writes without a key.
        unsigned = run(T["bin"], BUILD_ARGS).stdout
        self.assertTrue(signed.endswith(unsigned))
        p = run(T["bin"], ["dkim", "verify", "--key-record", T["record"]], input=signed)
        self.assertExit(p, 0)
        self.assertIn(b"pass", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
