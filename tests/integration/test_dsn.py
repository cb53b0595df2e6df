#!/usr/bin/python3
"""Integration tests of `missive dsn parse` on real DSNs produced by Postfix.

A private Postfix instance (tests/peers/postfix.sh) is started on loopback, then
adjusted for these tests with postconf (the instance is ours, in a temp dir):
  * relay.test is routed back to the instance's own plain port through a second
    smtp(8) client service that calls itself client.missive.test (so Postfix's
    loop check does not fire), and unknown*@relay.test is refused there with
    "550 5.1.1 User unknown": Postfix then bounces with a real RFC 3464 report
    carrying Remote-MTA and the remote Diagnostic-Code;
  * delay_warning_time = 1s, so a message to *@defer.test (deferred forever)
    gets a "delayed" DSN once the queue manager looks at it again.
Every DSN goes to a sender @example.test, i.e. into the instance's Maildir, where
the test finds it by its unique envelope id.  Messages are sent with
`missive send --dsn-notify/--dsn-ret/--envid` and the DSNs read with
`missive dsn parse --json`; the fields are checked exactly.

Run (as root: Postfix's master starts as root):
    MISSIVE_BIN=build/src/cli/missive /usr/bin/python3 tests/integration/test_dsn.py
Set MISSIVE_PEERS_KEEP=1 to keep the temp dir (configs, maillog, Maildir).
Nothing is skipped: if Postfix cannot start, every test fails.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Postfix, binary, check, make_dir, prepare_postfix,  # noqa: E402
                     remove_dir, run, set_up, unique)

DSN_TIMEOUT = 30      # seconds to wait for a bounce or success DSN
DELAY_TIMEOUT = 90    # seconds to wait for a delay warning (queue runs every 5 s)

P = {}


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    P["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    prepare_postfix()

    root = P["root"] = make_dir("missive-dsn-")
    pf = P["pf"] = Postfix(root, certs=os.path.join(root, "certs"), timeout=120)
    ports = pf.ports
    P["port"] = ports["PLAIN_PORT"]
    etc = pf.etc

    # relay.test: accepted on the plain port (127.0.0.1 may relay), then sent
    # back to our own second port (the no-CHUNKING listener, which no test here
    # submits to) through a client that does not call itself mx.example.test;
    # that listener refuses unknown*@relay.test.
    loop_port = ports["NOCHUNKING_PORT"]
    with open(os.path.join(etc, "transport"), "a") as f:
        f.write("relay.test\tselfsmtp:[127.0.0.1]:%d\n" % loop_port)
    relay_access = os.path.join(etc, "relay_access")
    with open(relay_access, "w") as f:
        f.write("/^unknown[^@]*@relay\\.test$/\t550 5.1.1 User unknown\n")
    pc = ["postconf", "-c", etc]
    check(run(pc + ["-M", "selfsmtp/unix=selfsmtp unix - - n - - smtp"]), "postconf -M")
    check(run(pc + ["-P", "selfsmtp/unix/myhostname=client.missive.test"]), "postconf -P")
    check(run(pc + ["-e", "missive_relay_restrictions = check_recipient_access regexp:%s"
                    % relay_access]), "postconf -e")
    check(run(pc + ["-P", "127.0.0.1:%d/inet/smtpd_recipient_restrictions="
                    "$missive_relay_restrictions" % loop_port]), "postconf -P")
    check(run(pc + ["-e", "delay_warning_time = 1s"]), "postconf -e")
    check(run(["postfix", "-c", etc, "reload"]), "postfix reload")
    time.sleep(1.5)  # the master restarts its children
    P["msgdir"] = os.path.join(root, "messages")
    os.mkdir(P["msgdir"])


def tearDownModule():
    if P.get("pf"):
        P["pf"].stop(timeout=60)
    remove_dir(P.get("root"), "MISSIVE_PEERS_KEEP", "missive dsn peers")
    P.clear()


def make_message(tag, frm, to):
    head = [
        "From: <%s>" % frm,
        "To: %s" % ", ".join("<%s>" % t for t in to),
        "Subject: missive dsn test %s" % tag,
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        "Message-ID: <%s@missive.test>" % tag,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    text = "\r\n".join(head) + "\r\n\r\nbody of %s\r\n" % tag
    path = os.path.join(P["msgdir"], tag + ".eml")
    with open(path, "wb") as f:
        f.write(text.encode())
    return path


def wait_dsn(needle, must=(), timeout=DSN_TIMEOUT):
    """The Maildir file (path) that contains needle and every bytes string in
    must, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        for path in P["pf"].maildir_files():
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if needle in data and all(m in data for m in must):
                return path
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


class DsnTest(unittest.TestCase):
    maxDiff = 4000

    def send(self, tag, frm, to, notify=None, ret=None, envid=None):
        args = [P["bin"], "send", "--server", "127.0.0.1:%d" % P["port"], "--tls", "none",
                "--from", frm, "--message", make_message(tag, frm, to)]
        for t in to:
            args += ["--to", t]
        if notify:
            args += ["--dsn-notify", notify]
        if ret:
            args += ["--dsn-ret", ret]
        if envid:
            args += ["--envid", envid]
        r = run(args)
        self.assertEqual(r.returncode, 0, "missive send failed:\n%s%s" % (
            r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")))

    def parse(self, path, *extra):
        r = run([P["bin"], "dsn", "parse", path, "--json"] + list(extra))
        self.assertEqual(r.returncode, 0, "missive dsn parse %s failed:\n%s" % (
            path, r.stderr.decode(errors="replace")))
        out = json.loads(r.stdout)
        for key in ("kind", "envelope_id", "original_message_id", "queue_id", "recipients"):
            self.assertIn(key, out)
        for rc in out["recipients"]:
            for key in ("address", "action", "status", "reason", "hard", "diagnostic",
                        "remote_mta", "rule"):
                self.assertIn(key, rc)
            self.assertIsInstance(rc["hard"], bool)
            self.assertTrue(rc["rule"])
        return out

    def dsn_for(self, envid, must=(), timeout=DSN_TIMEOUT):
        path = wait_dsn(("Original-Envelope-Id: %s" % envid).encode(), must, timeout)
        if path is None:
            with open(P["pf"].maillog, errors="replace") as f:
                log = f.read()[-4000:]
            self.fail("no DSN with ENVID %s in the Maildir after %d s; maillog tail:\n%s"
                      % (envid, timeout, log))
        return path

    # -------------------------------------------------------------------- tests

    def test_unknown_user(self):
        tag = unique("unknown")
        rcpt = "unknown-%s@relay.test" % tag
        self.send(tag, "sender-%s@example.test" % tag, [rcpt], notify="FAILURE", ret="FULL",
                  envid="ENV-" + tag)
        out = self.parse(self.dsn_for("ENV-" + tag))
        self.assertEqual(out["kind"], "bounce")
        self.assertEqual(out["format"], "rfc3464")
        self.assertEqual(out["envelope_id"], "ENV-" + tag)
        self.assertEqual(out["queue_id"], "ENV-" + tag)
        self.assertEqual(out["original_message_id"], "<%s@missive.test>" % tag)
        self.assertEqual(out["reporting_mta"], "mx.example.test")
        self.assertEqual(len(out["recipients"]), 1)
        rc = out["recipients"][0]
        self.assertEqual(rc["address"], rcpt)
        self.assertEqual(rc["original_recipient"], rcpt)
        self.assertEqual(rc["action"], "failed")
        self.assertEqual(rc["status"], "5.1.1")
        self.assertEqual(rc["status_source"], "field")
        self.assertEqual(rc["reply_code"], 550)
        self.assertEqual(rc["reason"], "userunknown")
        self.assertIs(rc["hard"], True)
        self.assertEqual(rc["remote_mta"], "127.0.0.1")
        self.assertEqual(rc["diagnostic"],
                         "550 5.1.1 <%s>: Recipient address rejected: User unknown" % rcpt)
        self.assertEqual(rc["command"], "RCPT")
        self.assertEqual(rc["rule"], "diagnostic matches 'user unknown'")
        self.assertEqual(out["original_subject"], "missive dsn test %s" % tag)

    def test_ret_hdrs(self):
        """RET=HDRS: the DSN returns text/rfc822-headers; the Message-ID is read from it."""
        tag = unique("hdrs")
        rcpt = "someone-%s@other.example" % tag
        self.send(tag, "sender-%s@example.test" % tag, [rcpt], notify="FAILURE", ret="HDRS",
                  envid="ENV-" + tag)
        path = self.dsn_for("ENV-" + tag)
        with open(path, "rb") as f:
            raw = f.read()
        self.assertIn(b"text/rfc822-headers", raw)
        self.assertNotIn(b"body of %s" % tag.encode(), raw)
        out = self.parse(path)
        self.assertEqual(out["kind"], "bounce")
        self.assertEqual(out["envelope_id"], "ENV-" + tag)
        self.assertEqual(out["original_message_id"], "<%s@missive.test>" % tag)
        self.assertEqual(len(out["recipients"]), 1)
        rc = out["recipients"][0]
        self.assertEqual(rc["address"], rcpt)
        self.assertEqual(rc["action"], "failed")
        # The pipe transport (/bin/false) exits 1: Postfix reports 5.3.0 with
        # an X-Unix diagnostic.
        self.assertEqual(rc["status"], "5.3.0")
        self.assertEqual(rc["status_source"], "field")
        self.assertEqual(rc["reason"], "mailererror")
        self.assertIs(rc["hard"], False)
        self.assertEqual(rc["diagnostic_type"], "x-unix")
        self.assertEqual(rc["diagnostic"], "unknown mail system error 1")
        self.assertIsNone(rc["remote_mta"])
        self.assertEqual(rc["rule"], "diagnostic type x-unix: a local mailer program failed")

    def test_two_recipients(self):
        """Two refused recipients of one message: one DSN, two recipient groups."""
        tag = unique("two")
        a, b = "unknown-a-%s@relay.test" % tag, "unknown-b-%s@relay.test" % tag
        self.send(tag, "sender-%s@example.test" % tag, [a, b], notify="FAILURE",
                  envid="ENV-" + tag)
        out = self.parse(self.dsn_for("ENV-" + tag, must=(a.encode(), b.encode())))
        self.assertEqual(out["kind"], "bounce")
        self.assertEqual(out["envelope_id"], "ENV-" + tag)
        self.assertEqual(sorted(r["address"] for r in out["recipients"]), sorted([a, b]))
        for rc in out["recipients"]:
            self.assertEqual(rc["action"], "failed")
            self.assertEqual(rc["status"], "5.1.1")
            self.assertEqual(rc["reason"], "userunknown")
            self.assertIs(rc["hard"], True)
            self.assertEqual(rc["remote_mta"], "127.0.0.1")
            self.assertEqual(rc["diagnostic"], "550 5.1.1 <%s>: Recipient address rejected: "
                             "User unknown" % rc["address"])

    def test_delayed(self):
        """NOTIFY=DELAY and a deferred destination: a "delayed" DSN, not a bounce."""
        tag = unique("delay")
        rcpt = "slow-%s@defer.test" % tag
        self.send(tag, "sender-%s@example.test" % tag, [rcpt], notify="DELAY,FAILURE",
                  envid="ENV-" + tag)
        out = self.parse(self.dsn_for("ENV-" + tag, must=(b"Action: delayed",),
                                      timeout=DELAY_TIMEOUT))
        self.assertEqual(out["kind"], "delay")
        self.assertEqual(out["envelope_id"], "ENV-" + tag)
        self.assertEqual(out["queue_id"], "ENV-" + tag)
        self.assertEqual(out["original_message_id"], "<%s@missive.test>" % tag)
        self.assertEqual(len(out["recipients"]), 1)
        rc = out["recipients"][0]
        self.assertEqual(rc["address"], rcpt)
        self.assertEqual(rc["action"], "delayed")
        # The pipe exits 75 (EX_TEMPFAIL): Postfix says 4.3.0.
        self.assertEqual(rc["status"], "4.3.0")
        # The local program (a pipe) deferred it, not the network.
        self.assertEqual(rc["reason"], "mailererror")
        self.assertIs(rc["hard"], False)
        self.assertEqual(rc["diagnostic_type"], "x-unix")
        self.assertEqual(rc["diagnostic"], "temporary failure")
        self.assertTrue(rc["will_retry_until"])
        self.assertEqual(rc["rule"], "diagnostic type x-unix: a local mailer program failed")

    def test_success(self):
        """NOTIFY=SUCCESS to a local mailbox: a "delivered" DSN."""
        tag = unique("ok")
        rcpt = "rcpt-%s@example.test" % tag
        self.send(tag, "sender-%s@example.test" % tag, [rcpt], notify="SUCCESS",
                  envid="ENV-" + tag)
        out = self.parse(self.dsn_for("ENV-" + tag, must=(b"Action: delivered",)))
        self.assertEqual(out["kind"], "success")
        self.assertEqual(out["envelope_id"], "ENV-" + tag)
        self.assertEqual(out["original_message_id"], "<%s@missive.test>" % tag)
        self.assertEqual(len(out["recipients"]), 1)
        rc = out["recipients"][0]
        self.assertEqual(rc["address"], rcpt)
        self.assertEqual(rc["action"], "delivered")
        self.assertEqual(rc["status"], "2.0.0")
        self.assertEqual(rc["reason"], "delivered")
        self.assertIs(rc["hard"], False)
        self.assertEqual(rc["diagnostic"], "delivery via virtual: delivered to maildir")
        self.assertEqual(rc["rule"], "action delivered")

    def test_verp_queue_id(self):
        """No ENVID: the queue id comes from the VERP return path the DSN was sent to."""
        tag = unique("verp")
        token = "Q" + tag.replace("-", ".")
        rcpt = "unknown-%s@relay.test" % tag
        self.send(tag, "bounces+%s@example.test" % token, [rcpt], notify="FAILURE")
        path = wait_dsn(("<%s@missive.test>" % tag).encode(), (b"message/delivery-status",))
        self.assertIsNotNone(path, "no DSN for %s" % tag)
        out = self.parse(path)
        self.assertIsNone(out["envelope_id"])
        self.assertIsNone(out["queue_id"])
        out = self.parse(path, "--verp-prefix", "bounces+", "--verp-domain", "example.test")
        self.assertIsNone(out["envelope_id"])
        self.assertEqual(out["queue_id"], token)
        self.assertEqual(out["recipients"][0]["reason"], "userunknown")
        out = self.parse(path, "--verp-prefix", "bounces+", "--verp-domain", "elsewhere.test")
        self.assertIsNone(out["queue_id"])

    def test_human_output_and_exit_codes(self):
        tag = unique("human")
        rcpt = "unknown-%s@relay.test" % tag
        self.send(tag, "sender-%s@example.test" % tag, [rcpt], notify="FAILURE",
                  envid="ENV-" + tag)
        path = self.dsn_for("ENV-" + tag)
        r = run([P["bin"], "dsn", "parse", path])
        self.assertEqual(r.returncode, 0)
        text = r.stdout.decode()
        for want in ("kind: bounce", "envelope id: ENV-" + tag, "queue id: ENV-" + tag,
                     "original message-id: <%s@missive.test>" % tag, rcpt,
                     "5.1.1 (from the report)", "userunknown, hard", "127.0.0.1",
                     "diagnostic matches 'user unknown'"):
            self.assertIn(want, text)
        with open(path, "rb") as f:
            r = run([P["bin"], "dsn", "parse", "-", "--json"], input=f.read())
        self.assertEqual(r.returncode, 0)
        self.assertEqual(json.loads(r.stdout)["envelope_id"], "ENV-" + tag)
        r = run([P["bin"], "dsn", "parse", os.path.join(P["root"], "no-such-file")])
        self.assertEqual(r.returncode, 66)
        r = run([P["bin"], "dsn", "parse"])
        self.assertEqual(r.returncode, 64)
        r = run([P["bin"], "dsn", "parse", path, "--bogus"])
        self.assertEqual(r.returncode, 64)
        r = run([P["bin"], "dsn", "parse", "-"], input=b"not a message at all\n")
        self.assertEqual(r.returncode, 65)
        r = run([P["bin"], "dsn", "parse", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: missive dsn parse", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
