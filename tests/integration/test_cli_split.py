#!/usr/bin/python3
"""One copy of the library per process: light `missive`, the sendmail front end
and the fully linked missive-core.

missive-core is fully linked (every command, no module, no dlopen).  The two light
programs link neither OpenSSL nor SQLite: the sendmail(8) front end,
missive-sendmail (installed as SBINDIR/sendmail), and `missive` itself, which runs
`missive sendmail` the same way (missived's socket) and execs missive-core with
argv unchanged for every other command.  When missived does not take a message,
both exec `missive-core sendmail -i ...` with the message as read; missive-core is
found beside the program (build tree), at the install layout's path from the
program's directory to LIBEXECDIR/missive, or in the configured one.  Checked here:
  * readelf: no NEEDED libssl, libcrypto or libsqlite3 in either light program; at
    run time (LD_DEBUG=files) their sendmail --help and a submission through
    missived load none of them; missive-core loads no shared object of its own (no
    module) for any command;
  * `missive COMMAND` answers as missive-core does (same bytes, exit codes,
    "missive: " messages); a lone light missive exits 72 naming the missive-core
    it looked for;
  * the light programs copied alone: through a running missived they work (0, 65
    for a bad address from missived); with missived stopped, or no socket
    configured, they exit 72 naming the missive-core they looked for, and nothing
    is queued;
  * with missive-core beside them (the build tree), through a symlink, and in an
    installed layout (sbin/sendmail, bin/missive, libexec/missive/missive-core
    under any prefix): missived down, the message is queued, cut at a lone dot as
    read (the exec passes -i);
  * `missive sendmail`, `missive build` (same bytes every run, signing with
    --dkim-*) and `missive dsn` work.

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
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary, wire_field  # noqa: E402

FRONT = "missive-sendmail"
CORE = "missive-core"
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
    T["core"] = os.path.join(os.path.dirname(T["bin"]), CORE)
    for exe in (T["front"], T["core"]):
        if not os.access(exe, os.X_OK):
            raise RuntimeError("no %s beside %s: is this a build tree?" % (exe, T["bin"]))
    T["dir"] = tempfile.mkdtemp(prefix="missive-split-")
    lone = os.path.join(T["dir"], "lone")
    os.mkdir(lone)
    shutil.copy2(T["front"], lone)
    shutil.copy2(T["bin"], os.path.join(lone, "missive"))
    T["lone"] = os.path.join(lone, FRONT)
    T["lone_bin"] = os.path.join(lone, "missive")
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


class BusyMissived:
    """A submission socket that answers every request 75 (busy), counting them."""

    def __init__(self, path, why):
        self.path, self.requests = path, 0
        self.reply = wire_field("rc", "75") + wire_field("error", why) + wire_field("end", "")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                data = b""
                try:
                    while not data.endswith(b"end 0\n\n"):
                        b = c.recv(65536)
                        if not b:
                            break
                        data += b
                    self.requests += 1
                    c.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(CMD_TIMEOUT)
        os.unlink(self.path)


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

    def assertNoMissive(self, p, exe, needs="writing the queue needs missive-core"):
        """Exit 72 and one line naming missive-core and where it was looked for."""
        self.assertExit(p, 72)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.stdout, b"", describe(p))
        self.assertEqual(len(err.strip().splitlines()), 1, describe(p))
        self.assertTrue(err.startswith("missive: "), err)
        self.assertIn(needs, err)
        self.assertIn("(looked for %s, " % os.path.join(os.path.dirname(exe), CORE), err)
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

    def test_light_programs_need_no_openssl_or_sqlite(self):
        for exe, args in ((T["front"], ["--help"]), (T["bin"], ["sendmail", "--help"])):
            with self.subTest(exe=os.path.basename(exe)):
                p = subprocess.run(["readelf", "-d", exe], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
                self.assertExit(p, 0)
                needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                                    p.stdout.decode())
                self.assertIn("libc.so.6", needed)
                self.assertEqual([n for n in needed if HEAVY.match(n)], [], needed)
                p, files = loaded_files(exe, args)
                self.assertExit(p, 0)
                self.assertIn(b"usage: missive sendmail", p.stdout)
                self.assertTrue(files, "LD_DEBUG=files printed nothing")
                self.assertEqual([f for f in files if HEAVY.search(f)], [], sorted(files))

    def test_core_fully_linked(self):
        # Every command in the one executable: nothing of its own is loaded later.
        here = os.path.dirname(os.path.realpath(T["bin"]))
        for exe in (T["core"], T["bin"]):
            for args in (["dkim", "--help"], ["queue", "--help"], ["send", "--help"],
                         ["bench", "--help"], BUILD_ARGS):
                with self.subTest(exe=os.path.basename(exe), args=args[:2]):
                    p, files = loaded_files(exe, args)
                    self.assertExit(p, 0)
                    self.assertTrue([f for f in files if HEAVY.search(f)], sorted(files))
                    self.assertEqual([f for f in files if f.startswith(here + os.sep)], [],
                                     sorted(files))

    def test_missive_execs_core(self):
        # argv unchanged, so the same bytes and exit codes as missive-core's own.
        args = BUILD_ARGS + ["--header", "X-Two: a  b"]
        for a in (args, args + ["--", "c@example.com"], ["--version"], ["--help"], ["queue", "--help"], ["frobnicate"], []):
            with self.subTest(args=a[:2]):
                light, core = run(T["bin"], a), run(T["core"], a)
                self.assertEqual((light.returncode, light.stdout, light.stderr),
                                 (core.returncode, core.stdout, core.stderr), describe(light))
        p = run(T["bin"], ["frobnicate"])
        self.assertExit(p, 64)
        self.assertEqual(p.stderr, b"missive: unknown command 'frobnicate' "
                                   b"(see 'missive --help')\n")
        self.assertRegex(run(T["bin"], ["--version"]).stdout.decode(), r"^missive \d")
        # Alone, it says what is missing instead of running anything.
        for a, what in ((["queue", "--help"], "'missive queue' needs missive-core"),
                        (["--version"], "'missive --version' needs missive-core"),
                        ([], "missive needs missive-core")):
            with self.subTest(alone=a):
                self.assertNoMissive(run(T["lone_bin"], a), T["lone_bin"], what)

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
    """The light programs' `sendmail`: the front end and `missive sendmail`."""

    def lights(self, lone=True):
        """(name, the program, the arguments before sendmail's own) of each."""
        return ((FRONT, T["lone" if lone else "front"], []),
                ("missive", T["lone_bin" if lone else "bin"], ["sendmail"]))

    def test_through_missived_without_core(self):
        d = self.workdir("lone-sendmail")
        os.chmod(d, 0o755)
        cfg = write_config(d)
        proc, log = self.start_missived(cfg)
        msg = (b"From: a@example.com\nTo: b@example.com, c@example.com\nSubject: s\n\n"
               b"through missived\n")
        try:
            for name, exe, pre in self.lights():
                with self.subTest(exe=name):
                    p, files = loaded_files(exe, pre + ["--config", cfg, "-t", "--json"],
                                            input=msg)
                    self.assertExit(p, 0)
                    self.assertEqual([f for f in files if HEAVY.search(f)], [], sorted(files))
                    obj = json.loads(p.stdout)
                    self.assertEqual(set(obj), {"id", "recipients"})
                    self.assertEqual(obj["recipients"], 2)
                    p = run(exe, pre + ["--config", cfg, "-v", "d@example.com"], input=msg)
                    self.assertExit(p, 0)
                    self.assertRegex(p.stdout.decode(),
                                     r"^queued as [0-9a-f]{16} for 1 recipient\n$")
                    # A bad message is answered by missived: 65, not 72.
                    p = run(exe, pre + ["--config", cfg, "not an address"], input=msg)
                    self.assertExit(p, 65)
        finally:
            self.stop_missived(proc, log)
        p = run(T["bin"], ["queue", "stats", "--config", cfg, "--json"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["messages"], 4)
        # missived stopped: writing the queue needs missive-core, which is not there.
        nosock = write_config(self.workdir("lone-nosock"), socket="")
        for name, exe, pre in self.lights():
            with self.subTest(exe=name, missived="stopped"):
                self.assertNoMissive(run(exe, pre + ["--config", cfg, "-t"], input=msg), exe)
                self.assertNoMissive(run(exe, pre + ["--config", nosock, "-t"], input=msg), exe)
        self.assertEqual(len(bodies(cfg)), 4)
        self.assertEqual(bodies(nosock), [])

    def test_missived_down_build_tree(self):
        # The build tree: missive-core beside them writes the queue.
        for name, exe, pre in self.lights(lone=False):
            with self.subTest(exe=name):
                cfg = write_config(self.workdir("tree"))
                self.assertQueuedDotted(cfg, run(exe, pre + ["--config", cfg, "-v",
                                                             "b@example.com"], input=DOTTED))

    def test_missived_busy_asked_once(self):
        # missived is asked once; missive-core, exec'd to write the queue, does not
        # ask again, and says missived's answer when it cannot write the queue either.
        for name, exe, pre in self.lights(lone=False):
            with self.subTest(exe=name):
                d = self.workdir("busy")
                cfg = write_config(d)
                busy = BusyMissived(os.path.join(d, "submit.sock"), "busy right now")
                try:
                    self.assertQueuedDotted(cfg, run(exe, pre + ["--config", cfg, "-v",
                                                                 "b@example.com"], input=DOTTED))
                    self.assertEqual(busy.requests, 1)
                    os.unlink(os.path.join(d, "queue.db"))
                    os.mkdir(os.path.join(d, "queue.db"))
                    p = run(exe, pre + ["--config", cfg, "b@example.com"], input=DOTTED)
                    self.assertExit(p, 75)
                    self.assertIn("missive: sendmail: busy right now (and this user cannot "
                                  "write the queue %s)" % os.path.join(d, "queue.db"),
                                  p.stderr.decode(), describe(p))
                    self.assertEqual(busy.requests, 2)
                finally:
                    busy.close()

    def test_missived_down_core_sendmail(self):
        # -i, as the light programs pass it, keeps the lone dot.
        cfg = write_config(self.workdir("core-sendmail"))
        p = run(T["core"], ["sendmail", "-i", "--config", cfg, "b@example.com"], input=DOTTED)
        self.assertExit(p, 0)
        got = bodies(cfg)
        self.assertEqual(len(got), 1)
        self.assertIn(b"after the dot", got[0])

    def test_symlink_to_build_tree(self):
        # /proc/self/exe is the link's target: the missive-core beside it is found.
        for name, exe, pre in self.lights(lone=False):
            with self.subTest(exe=name):
                d = self.workdir("link")
                link = os.path.join(d, "sendmail")
                os.symlink(exe, link)
                cfg = write_config(d, socket="")
                self.assertQueuedDotted(cfg, run(link, ["--config", cfg, "-v", "b@example.com"],
                                                 input=DOTTED))

    def test_installed_layout(self):
        # Where installed programs look: the second path of the lone copies' message.
        for name, exe, pre in self.lights():
            with self.subTest(exe=name):
                err = self.assertNoMissive(run(exe, pre + ["--config", write_config(
                    self.workdir("where"), socket=""), "x@example.com"], input=DOTTED), exe)
                looked = re.search(r"\(looked for (.*)\); reinstall", err).group(1).split(", ")
                self.assertEqual(len(looked), 3, err)
                rel = os.path.relpath(looked[1], os.path.dirname(exe))
                self.assertEqual(rel, os.path.join("..", "libexec", "missive", CORE))
                self.assertTrue(os.path.isabs(looked[2]), err)
                self.assertTrue(looked[2].endswith("/libexec/missive/" + CORE), err)
        prefix = self.workdir("prefix")
        for sub in ("bin", "sbin", os.path.join("libexec", "missive")):
            os.makedirs(os.path.join(prefix, sub))
        shutil.copy2(T["bin"], os.path.join(prefix, "bin", "missive"))
        shutil.copy2(T["front"], os.path.join(prefix, "sbin", "sendmail"))
        shutil.copy2(T["core"], os.path.join(prefix, "libexec", "missive", CORE))
        for exe, pre in ((os.path.join(prefix, "sbin", "sendmail"), []),
                         (os.path.join(prefix, "bin", "missive"), ["sendmail"])):
            with self.subTest(installed=exe):
                cfg = write_config(self.workdir("installed"), socket="")
                self.assertQueuedDotted(cfg, run(exe, pre + ["--config", cfg, "-v",
                                                             "b@example.com"], input=DOTTED))
        p = run(os.path.join(prefix, "bin", "missive"), ["queue", "--help"])
        self.assertExit(p, 0)
        self.assertIn(b"usage: missive queue", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
