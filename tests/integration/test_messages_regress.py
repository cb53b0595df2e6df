"""Regression tests for the "Messages" half of issue 17 and its `missive bounce` and
`missive bench` bullets, against the real binaries:

- text that looks like an encoded word (display name, file name) is itself encoded;
- a long ASCII display name stays a plain phrase (no encoded words);
- impossible dates and invalid A-labels exit 65 with the reason;
- error messages show valid UTF-8 as UTF-8; the usage line shows --to as optional;
- `missive bounce` with a foreign ENVID is an unmatched bounce: exit 0 (HTTP 200),
  every recipient reported;
- `missive bench smtp --json` counts only accepted messages in `rate`.

Env: MISSIVE_BIN, MISSIVED_BIN (set by CTest).
"""
import email
import email.policy
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import free_port  # noqa: E402

BIN = os.path.abspath(os.environ.get("MISSIVE_BIN", "build/src/cli/missive"))
BIND = os.path.abspath(os.environ.get("MISSIVED_BIN", "build/src/daemon/missived"))
DATE = "Thu, 01 Jan 2026 00:00:00 +0000"
TMP = tempfile.mkdtemp(prefix="missive-msg-regress-")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def run(args, input=None, timeout=60):
    return subprocess.run([BIN] + list(args), input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def build(*extra):
    return run(["build", "--from", "sender@example.com", "--to", "rcpt@example.org",
                "--subject", "s", "--text-body", "hello", "--date", DATE] + list(extra))


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


class BuildTest(unittest.TestCase):
    def test_lookalike_display_name_is_encoded(self):
        for name in ("=?UTF-8?B?SGk=?=", "Ann =?UTF-8?B?SGk=?= Lee", "x=?utf-8?q?Hi?=y",
                     '"=?UTF-8?B?SGk=?=", Doe'):
            r = build("--from-name", name)
            self.assertEqual(r.returncode, 0, r.stderr)
            msg = parse(r.stdout)
            self.assertEqual(msg["from"].addresses[0].display_name, name)
            self.assertEqual(msg["from"].defects, ())

    def test_lookalike_file_name_is_encoded(self):
        d = os.path.join(TMP, "att")
        os.makedirs(d, exist_ok=True)
        for fn in ("=?UTF-8?B?SGk=?=.txt", "report =?utf-8?q?x?=.pdf"):
            path = os.path.join(d, fn)
            with open(path, "wb") as f:
                f.write(b"data")
            r = build("--attach", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            msg = parse(r.stdout)
            atts = list(msg.iter_attachments())
            self.assertEqual(len(atts), 1)
            self.assertEqual(atts[0].get_filename(), fn)
            # Content-Type's name= as well (old clients read it).
            self.assertEqual(atts[0].get_param("name"), fn)

    def test_long_ascii_phrase_stays_plain(self):
        name = ("Alexandria Ozymandias von Hohenzollern-Sigmaringen, Department of "
                "Redundancy Department, Office of the Under-Secretary")
        r = build("--from-name", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = r.stdout.partition(b"\r\n\r\n")[0]
        frm = head[head.index(b"From:"):head.index(b"\r\nTo:")]
        self.assertNotIn(b"=?", frm, frm)
        self.assertEqual(parse(r.stdout)["from"].addresses[0].display_name, name)
        # An atom longer than a line is written as it is (RFC 5322 allows 998).
        name = "X" * 120
        r = build("--from-name", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        unfolded = r.stdout.replace(b"\r\n ", b" ")
        self.assertIn(b" " + name.encode() + b" <sender@example.com>", unfolded)
        self.assertNotIn(b"=?", r.stdout.partition(b"\r\n\r\n")[0])
        # Only the word that needs it is encoded.
        r = build("--from-name", "Zo\u00eb Department of Redundancy Department")
        self.assertIn(b"?= Department of Redundancy Department <",
                      r.stdout.replace(b"\r\n ", b" "))

    def test_impossible_dates(self):
        for date, why in (("Sat, 29 Feb 2025 00:00:00 +0000", "leap year"),
                          ("Thu, 31 Apr 2025 00:00:00 +0000", "fewer days"),
                          ("31 Jun 2026 00:00:00 +0000", "fewer days"),
                          ("Mon, 01 Jan 2026 00:00:00 +0000", "is a Thursday"),
                          ("Fri, 29 Feb 1900 00:00:00 +0000", "leap year")):
            r = build("--date", date)
            self.assertEqual(r.returncode, 65, date)
            self.assertIn(why.encode(), r.stderr, date)
        for date in ("Thu, 29 Feb 2024 00:00:00 +0000", "Tue, 29 Feb 2000 12:00:00 -0500",
                     "30 Apr 2025 00:00:00 +0000", "Thu, 01 Jan 2026 00:00:00 GMT"):
            self.assertEqual(build("--date", date).returncode, 0, date)

    def test_invalid_a_labels(self):
        for addr in ("a@xn--a.com", "a@xn--zz.com", "a@XN--ZZ.example", "a@sub.xn--a.com",
                     "a@xn--ls8h.example"):
            r = build("--cc", addr)
            self.assertEqual(r.returncode, 65, addr)
            self.assertIn(b"xn--", r.stderr)
        for addr in ("a@xn--bcher-kva.example", "a@XN--BCHER-KVA.example",
                     "a@b\u00fccher.example"):
            self.assertEqual(build("--cc", addr).returncode, 0, addr)

    def test_errors_show_utf8(self):
        r = build("--cc", "zo\u00eb@b\u00fccher..example")
        self.assertEqual(r.returncode, 65)
        self.assertIn("zo\u00eb@b\u00fccher..example".encode(), r.stderr)
        r = build("--cc", b"zo\xff@example.com".decode("latin-1"))
        self.assertEqual(r.returncode, 65)

    def test_usage_to_optional(self):
        r = run(["build", "--help"])
        self.assertEqual(r.returncode, 0)
        first = r.stdout.split(b"\n\n")[0]
        self.assertIn(b"[--to ADDR ...]", first)
        # and it is optional indeed
        r = run(["build", "--from", "a@example.com", "--subject", "s", "--text-body", "x"])
        self.assertEqual(r.returncode, 0, r.stderr)


class BounceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(TMP, "bounce")
        os.makedirs(cls.dir)
        cls.http = free_port()
        cls.conf = os.path.join(cls.dir, "missive.conf")
        with open(cls.conf, "w") as f:
            f.write("[queue]\npath = %s/queue.db\n[http]\nlisten = 127.0.0.1:%d\ntrust-loopback = yes\n"
                    "[route default]\nserver = 127.0.0.1:%d\ntls = none\n"
                    % (cls.dir, cls.http, free_port()))
        cls.log = open(os.path.join(cls.dir, "missived.log"), "w")
        cls.daemon = subprocess.Popen([BIND, "--config", cls.conf], stdout=cls.log,
                                      stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % cls.http, timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.time() > deadline or cls.daemon.poll() is not None:
                    cls.tearDownClass()
                    raise RuntimeError("missived did not start; see " + cls.log.name)
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.terminate()
        cls.daemon.wait(timeout=40)
        cls.log.close()

    DSN = ("From: MAILER-DAEMON@mx.example.org\r\nTo: bounces@example.test\r\n"
           "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nUser unknown.\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           "Reporting-MTA: dns; mx.example.org\r\nOriginal-Envelope-Id: %s\r\n\r\n"
           "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
           "Final-Recipient: rfc822; other@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           "--b--\r\n")

    def check(self, res):
        self.assertEqual([r["address"] for r in res["recipients"]],
                         ["gone@example.org", "other@example.org"])
        self.assertFalse(any(r["matched"] or r["suppressed"] for r in res["recipients"]))

    def test_foreign_envid_is_unmatched(self):
        for envid in ("not-one-of-ours-42", "0123456789abcdef0123", "0123456789abcdef"):
            dsn = (self.DSN % envid).encode()
            r = run(["bounce", "--config", self.conf, "--json"], input=dsn)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.check(json.loads(r.stdout))
            req = urllib.request.Request("http://127.0.0.1:%d/v1/bounces" % self.http,
                                         data=dsn, method="POST",
                                         headers={"Content-Type": "message/rfc822"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.assertEqual(resp.status, 200)
                self.check(json.loads(resp.read()))


class RejectingSMTP(socketserver.StreamRequestHandler):
    """Accepts the session, refuses every recipient with 550."""

    def handle(self):
        self.wfile.write(b"220 reject.test ESMTP\r\n")
        data = False
        for line in self.rfile:
            cmd = line.strip().upper()
            if data:
                if cmd == b".":
                    data = False
                    self.wfile.write(b"554 5.7.1 no\r\n")
                continue
            if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                self.wfile.write(b"250-reject.test\r\n250 PIPELINING\r\n")
            elif cmd.startswith(b"RCPT"):
                self.wfile.write(b"550 5.1.1 no such user\r\n")
            elif cmd.startswith(b"DATA"):
                self.wfile.write(b"554 5.5.1 no valid recipients\r\n")
            elif cmd.startswith(b"QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")
            self.wfile.flush()


class BenchTest(unittest.TestCase):
    def test_rate_counts_accepted_only(self):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RejectingSMTP)
        server.daemon_threads = True
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            port = server.server_address[1]
            r = run(["bench", "smtp", "--server", "127.0.0.1:%d" % port, "--tls", "none",
                     "--messages", "5", "--json"])
            self.assertEqual(r.returncode, 75, r.stderr)
            res = json.loads(r.stdout)
            self.assertEqual(res["failed"], 5)
            self.assertEqual(res["rate"], 0)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    unittest.main()
