#!/usr/bin/python3
"""One copy of the library per process: `missive` and the sendmail front end.

`missive` is fully linked (every command, no module, no dlopen).  The sendmail(8)
front end, missive-sendmail (installed as SBINDIR/sendmail), hands the message to
missived's socket and links neither OpenSSL nor SQLite; when missived does not
take the message it execs `missive sendmail -i ...` with the message as read,
found beside itself (build tree), at the install layout's path from sbindir to
bindir, or in the configured bindir.  Checked here:
  * readelf: no NEEDED libssl, libcrypto or libsqlite3 in the front end; at run
    time (LD_DEBUG=files) its --help and a submission through missived load none
    of them; `missive` loads no shared object of its own (no module) for any
    command;
  * the front end copied alone: through a running missived it works (0, 65 for a
    bad address from missived); with missived stopped, or no socket configured,
    it exits 72 naming the missive it looked for, and nothing is queued;
  * with missive beside it (the build tree), through a symlink, and in an
    installed layout (sbin/sendmail + bin/missive under any prefix): missived
    down, the message is queued, cut at a lone dot as read (the exec passes -i);
  * `missive sendmail`, `missive build` (same bytes every run, signing with
    --dkim-*) and `missive dsn` work in the fully linked missive.

Run: MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
     /usr/bin/python3 tests/integration/test_cli_split.py
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary  # noqa: E402

FRONT = "missive-sendmail"
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
# Without -i a line with a lone dot ends the message: what follows is not queued.
DOTTED = b"From: a@example.com\nSubject: s\n\nbefore the dot\n.\nafter the dot\n"

T = {}


def setUpModule():
    T["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    T["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    T["front"] = os.path.join(os.path.dirname(T["bin"]), FRONT)
    if not os.access(T["front"], os.X_OK):
        raise RuntimeError("no %s beside %s: is this a build tree?" % (FRONT, T["bin"]))
    T["dir"] = tempfile.mkdtemp(prefix="missive-split-")
    lone = os.path.join(T["dir"], "lone")
    os.mkdir(lone)
    shutil.copy2(T["front"], lone)
    T["lone"] = os.path.join(lone, FRONT)
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


def bodies(cfg):
    """The bodies in the queue of the config cfg (written by write_config)."""
    db = os.path.join(os.path.dirname(cfg), "queue.db")
    if not os.path.exists(db):
        return []
    c = sqlite3.connect(db)
    try:
        return [bytes(r[0]) for r in c.execute("SELECT body FROM messages ORDER BY id")]
    finally:
        c.close()


def connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Case(unittest.TestCase):
    maxDiff = 4000

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code, describe(p))
        self.assertNotRegex(p.stderr.decode(errors="replace"), CRASH, describe(p))

    def assertNoMissive(self, p, exe):
        """Exit 72 and one line naming missive and where it was looked for."""
        self.assertExit(p, 72)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.stdout, b"", describe(p))
        self.assertEqual(len(err.strip().splitlines()), 1, describe(p))
        self.assertIn("writing the queue needs missive", err)
        self.assertIn("(looked for %s, " % os.path.join(os.path.dirname(exe), "missive"), err)
        self.assertIn("reinstall missive", err)
        return err

    def assertQueuedDotted(self, cfg, p):
        """One message queued, cut at the lone dot."""
        self.assertExit(p, 0)
        self.assertRegex(p.stdout.decode(), r"^queued as [0-9a-f]{16} for 1 recipient\n$")
        got = bodies(cfg)
        self.assertEqual(len(got), 1)
        self.assertIn(b"before the dot\r\n", got[0])
        self.assertNotIn(b"after the dot", got[0])

    def workdir(self, name):
        return tempfile.mkdtemp(prefix=name + ".", dir=T["dir"])

    def start_missived(self, cfg):
        sock = os.path.join(os.path.dirname(cfg), "submit.sock")
        log = os.path.join(os.path.dirname(cfg), "missived.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen([T["daemon"], "--config", cfg], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while not connectable(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                self.fail("missived's socket never answered\n" + read(log))
            time.sleep(0.05)
        return proc, log

    def stop_missived(self, proc, log):
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        text = read(log)
        self.assertEqual(rc, 0, text)
        self.assertNotRegex(text, CRASH)


class LinkageTest(Case):

    def test_front_end_needs_no_openssl_or_sqlite(self):
        p = subprocess.run(["readelf", "-d", T["front"]], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertExit(p, 0)
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout.decode())
        self.assertIn("libc.so.6", needed)
        self.assertEqual([n for n in needed if HEAVY.match(n)], [], needed)
        p, files = loaded_files(T["front"], ["--help"])
        self.assertExit(p, 0)
        self.assertIn(b"usage: missive sendmail", p.stdout)
        self.assertTrue(files, "LD_DEBUG=files printed nothing")
        self.assertEqual([f for f in files if HEAVY.search(f)], [], sorted(files))

    def test_missive_fully_linked(self):
        # Every command in the one executable: nothing of its own is loaded later.
        here = os.path.dirname(os.path.realpath(T["bin"]))
        for args in (["dkim", "--help"], ["queue", "--help"], ["send", "--help"],
                     ["bench", "--help"], BUILD_ARGS):
            with self.subTest(args=args[:2]):
                p, files = loaded_files(T["bin"], args)
                self.assertExit(p, 0)
                self.assertTrue([f for f in files if HEAVY.search(f)], sorted(files))
                self.assertEqual([f for f in files if f.startswith(here + os.sep)], [],
                                 sorted(files))

    def test_build_dsn_work(self):
        orig = run(T["bin"], BUILD_ARGS)
        self.assertExit(orig, 0)
        self.assertEqual(orig.stderr, b"")
        self.assertIn(b"Message-ID: <x@y>\r\n", orig.stdout)
        self.assertEqual(run(T["bin"], BUILD_ARGS).stdout, orig.stdout,
                         "build is not deterministic")
        p = run(T["bin"], ["dsn", "parse", T["dsn"], "--json"])
        self.assertExit(p, 0)
        self.assertIn(b"gone@example.net", p.stdout)
        self.assertExit(run(T["bin"], ["frobnicate"]), 64)
        # No command module any more: 72 is not in the usage text.
        self.assertNotIn(b"missive-commands", run(T["bin"], ["--help"]).stdout)

    def test_build_signs(self):
        args = BUILD_ARGS + ["--dkim-key", T["key"], "--dkim-selector", "sel",
                             "--dkim-domain", "example.com"]
        p = run(T["bin"], args)
        self.assertExit(p, 0)
        signed = p.stdout
        self.assertTrue(signed.startswith(b"DKIM-Signature: "), signed[:200])
        head = signed.split(b"\r\n\r\n", 1)[0].decode()
        self.assertRegex(head, r"(?s)^DKIM-Signature: .*\bd=example\.com;")
        self.assertRegex(head, r"(?s)^DKIM-Signature: .*\ba=ed25519-sha256;")
        self.assertTrue(signed.endswith(run(T["bin"], BUILD_ARGS).stdout))
        p = run(T["bin"], ["dkim", "verify", "--key-record", T["record"]], input=signed)
        self.assertExit(p, 0)
        self.assertIn(b"pass", p.stdout)


class FrontEndTest(Case):

    def test_through_missived_without_missive(self):
        d = self.workdir("lone-sendmail")
        os.chmod(d, 0o755)
        cfg = write_config(d)
        proc, log = self.start_missived(cfg)
        try:
            msg = (b"From: a@example.com\nTo: b@example.com, c@example.com\nSubject: s\n\n"
                   b"through missived\n")
            p, files = loaded_files(T["lone"], ["--config", cfg, "-t", "--json"], input=msg)
            self.assertExit(p, 0)
            self.assertEqual([f for f in files if HEAVY.search(f)], [], sorted(files))
            obj = json.loads(p.stdout)
            self.assertEqual(set(obj), {"id", "recipients"})
            self.assertEqual(obj["recipients"], 2)
            p = run(T["lone"], ["--config", cfg, "-v", "d@example.com"], input=msg)
            self.assertExit(p, 0)
            self.assertRegex(p.stdout.decode(), r"^queued as [0-9a-f]{16} for 1 recipient\n$")
            # A bad message is answered by missived: 65, not 72.
            p = run(T["lone"], ["--config", cfg, "not an address"], input=msg)
            self.assertExit(p, 65)
        finally:
            self.stop_missived(proc, log)
        p = run(T["bin"], ["queue", "stats", "--config", cfg, "--json"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["messages"], 2)
        # missived stopped: writing the queue needs missive, which is not there.
        self.assertNoMissive(run(T["lone"], ["--config", cfg, "-t"], input=msg), T["lone"])
        nosock = write_config(self.workdir("lone-nosock"), socket="")
        self.assertNoMissive(run(T["lone"], ["--config", nosock, "-t"], input=msg), T["lone"])
        self.assertEqual(len(bodies(cfg)), 2)
        self.assertEqual(bodies(nosock), [])

    def test_missived_down_build_tree(self):
        # The build tree: missive beside the front end writes the queue.
        cfg = write_config(self.workdir("tree"))
        self.assertQueuedDotted(cfg, run(T["front"], ["--config", cfg, "-v", "b@example.com"],
                                         input=DOTTED))

    def test_missived_down_missive_sendmail(self):
        cfg = write_config(self.workdir("missive-sendmail"))
        self.assertQueuedDotted(cfg, run(T["bin"], ["sendmail", "--config", cfg, "-v",
                                                    "b@example.com"], input=DOTTED))

    def test_symlink_to_build_tree(self):
        # /proc/self/exe is the link's target: the missive beside it is found.
        d = self.workdir("link")
        link = os.path.join(d, "sendmail")
        os.symlink(T["front"], link)
        cfg = write_config(d, socket="")
        self.assertQueuedDotted(cfg, run(link, ["--config", cfg, "-v", "b@example.com"],
                                         input=DOTTED))

    def test_installed_layout(self):
        # Where an installed front end looks: the second path of the lone copy's message.
        err = self.assertNoMissive(run(T["lone"], ["--config", write_config(
            self.workdir("where"), socket=""), "x@example.com"], input=DOTTED), T["lone"])
        looked = re.search(r"\(looked for (.*)\); reinstall", err).group(1).split(", ")
        self.assertEqual(len(looked), 3, err)
        rel = os.path.relpath(looked[1], os.path.dirname(T["lone"]))
        self.assertEqual(rel, os.path.join("..", "bin", "missive"))
        self.assertTrue(os.path.isabs(looked[2]), err)
        self.assertTrue(looked[2].endswith("/bin/missive"), err)
        prefix = self.workdir("prefix")
        for sub in ("bin", "sbin"):
            os.mkdir(os.path.join(prefix, sub))
        shutil.copy2(T["bin"], os.path.join(prefix, "bin", "missive"))
        shutil.copy2(T["front"], os.path.join(prefix, "sbin", "sendmail"))
        cfg = write_config(prefix, socket="")
        self.assertQueuedDotted(cfg, run(os.path.join(prefix, "sbin", "sendmail"),
                                         ["--config", cfg, "-v", "b@example.com"],
                                         input=DOTTED))


if __name__ == "__main__":
    unittest.main(verbosity=2)
