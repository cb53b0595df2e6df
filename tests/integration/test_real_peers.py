#!/usr/bin/python3
"""Integration tests of the `missive send` CLI against real SMTP peers on loopback.

Peers (started by setUpModule, stopped by tearDownModule, all in one temp dir):
  * a private Postfix instance (tests/peers/postfix.sh): plain port, submission port
    (STARTTLS + SASL required), implicit-TLS port, a plaintext-AUTH port, and three
    ports presenting bad certificates (expired, wrong host, unknown CA);
  * Debian's aiosmtpd (tests/peers/aiosmtpd_server.py), which records every message.

Run (as root: Postfix's master must start as root):
    MISSIVE_BIN=build/src/cli/missive /usr/bin/python3 tests/integration/test_real_peers.py
or  MISSIVE_BIN=... /usr/bin/python3 -m unittest -v tests/integration/test_real_peers.py
Set MISSIVE_PEERS_KEEP=1 to keep the temp dir (configs, maillog, Maildir) afterwards.

Nothing is skipped: if a peer cannot start, every test fails.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CMD_TIMEOUT, Postfix, binary, make_certs, make_dir,  # noqa: E402
                     prepare_postfix, remove_dir, run, set_up, start_peer, stop_process,
                     unique, write_private)

DELIVERY_TIMEOUT = 10   # seconds to wait for Postfix to deliver into the Maildir
LOG_TIMEOUT = 5         # seconds to wait for Postfix to log a session's end

# Filled by setUpModule.
P = {}


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    P["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    prepare_postfix()

    root = P["root"] = make_dir("missive-peers-")
    certs = P["certs"] = os.path.join(root, "certs")
    make_certs(certs, timeout=CMD_TIMEOUT)
    P["ca"] = os.path.join(certs, "ca.pem")

    pf = P["pf"] = Postfix(root, certs=certs, timeout=60)
    P["ports"], P["user"], P["password"] = pf.ports, pf.user, pf.password
    P["maildir"], P["maillog"] = pf.maildir, pf.maillog

    P["aio_dir"] = os.path.join(root, "aiosmtpd")
    P["aio_proc"], P["aio_port"] = start_peer(
        "aiosmtpd_server.py", ["--dir", P["aio_dir"]], os.path.join(root, "aiosmtpd.ready"),
        os.path.join(root, "aiosmtpd.log"))

    # Secrets handed to the CLI.
    P["pwfile"] = write_private(os.path.join(root, "password"), P["password"])
    P["pwfile_nl"] = write_private(os.path.join(root, "password-nl"), P["password"] + "\n")
    P["badpwfile"] = write_private(os.path.join(root, "badpassword"), "not-" + P["password"])
    P["msgdir"] = os.path.join(root, "messages")
    os.mkdir(P["msgdir"])


def tearDownModule():
    if P.get("aio_proc") is not None:
        stop_process(P["aio_proc"])
    if P.get("pf"):
        P["pf"].stop(timeout=30)
    remove_dir(P.get("root"), "MISSIVE_PEERS_KEEP", "missive peers")
    P.clear()


# ----------------------------------------------------------------------------- helpers

def make_message(tag, frm, to, body_lines, extra_headers=()):
    """An RFC 5322 message with CRLF line endings and Message-ID <tag@missive.test>."""
    head = [
        "From: <%s>" % frm,
        "To: <%s>" % to,
        "Subject: missive integration test %s" % tag,
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        "Message-ID: <%s@missive.test>" % tag,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ] + list(extra_headers)
    text = "\r\n".join(head) + "\r\n\r\n" + "".join(l + "\r\n" for l in body_lines)
    return text.encode("utf-8")


def tricky_body(tag):
    return [
        "Tricky body for %s." % tag,
        ".a line starting with a dot",
        ".",
        "..",
        "x" * 998,
        "UTF-8 8-bit text: Grüße, ünïcödé — ✓ 日本語",
        "",
        "the next line is empty and ends the message",
        "",
    ]


def write_message(data, name=None):
    path = os.path.join(P["msgdir"], (name or unique("msg")) + ".eml")
    with open(path, "wb") as f:
        f.write(data)
    return path


def find_delivered(rcpt, needle):
    """Messages in the Maildir delivered to rcpt whose content contains needle."""
    return P["pf"].find_delivered(rcpt, needle)


def wait_delivered(rcpt, needle, timeout=DELIVERY_TIMEOUT, count=1):
    deadline = time.monotonic() + timeout
    while True:
        found = find_delivered(rcpt, needle)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def log_mark():
    try:
        return os.path.getsize(P["maillog"])
    except FileNotFoundError:
        return 0


def log_since(mark):
    with open(P["maillog"], "rb") as f:
        f.seek(mark)
        return f.read().decode(errors="replace")


def wait_log(mark, pattern, timeout=LOG_TIMEOUT):
    """Maillog text written since mark, once it matches pattern (or at the timeout)."""
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = log_since(mark)
        if rx.search(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def disconnect_lines(text, service):
    return [l for l in text.splitlines()
            if ("postfix/%s/smtpd[" % service) in l and " disconnect from " in l]


def b64(data):
    return base64.b64encode(data).decode()


def b64_fragments(secret):
    """Substrings that must appear in ANY base64 text encoding something that contains
    secret, whatever its alignment (3 byte offsets), std and URL-safe alphabets."""
    out = set()
    n = len(secret)
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + secret + b"\0\0").decode()
        first = -(-8 * k // 6)               # ceil(8k/6): first char made only of secret bits
        last = (8 * (k + n) - 6) // 6        # last such char
        frag = enc[first:last + 1]
        if len(frag) >= 4:
            out.add(frag)
            out.add(frag.replace("+", "-").replace("/", "_"))
    return out


# ------------------------------------------------------------------------------- base

class PeerTest(unittest.TestCase):
    maxDiff = 2000

    def missive(self, args, env=None, input=None, timeout=CMD_TIMEOUT):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return run([P["bin"], "send"] + [str(a) for a in args], timeout=timeout,
                    env=full_env, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    @staticmethod
    def describe(proc):
        def cut(b):
            s = b.decode(errors="replace")
            return s if len(s) < 3000 else s[:1500] + "\n[...]\n" + s[-1500:]
        return "exit %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            proc.returncode, cut(proc.stdout), cut(proc.stderr))

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code, self.describe(proc))

    def assertFailed(self, proc):
        self.assertNotEqual(proc.returncode, 0, self.describe(proc))
        self.assertNotIn(proc.returncode, (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS),
                         "crashed: " + self.describe(proc))

    def json_of(self, proc):
        try:
            obj = json.loads(proc.stdout.decode())
        except (ValueError, UnicodeDecodeError) as e:
            self.fail("--json output is not one JSON object (%s)\n%s" % (e, self.describe(proc)))
        self.assertIsInstance(obj, dict, self.describe(proc))
        return obj

    def recipient(self, obj, address):
        for r in obj.get("recipients", []):
            if r.get("address", "").lower() == address.lower():
                return r
        self.fail("recipient %s missing from JSON: %s" % (address, json.dumps(obj)))

    def port(self, name):
        return P["ports"][name]

    def auth_args(self, extra=()):
        return ["--user", P["user"], "--password-file", P["pwfile"]] + list(extra)

    def submission(self, args, port="SUBMISSION_PORT", tls="starttls"):
        return ["--server", "127.0.0.1:%d" % self.port(port), "--tls", tls,
                "--ca-file", P["ca"], "--timeout", 15] + list(args)

    def assertDelivered(self, rcpt, tag, sent=None, timeout=DELIVERY_TIMEOUT):
        needle = ("<%s@missive.test>" % tag).encode()
        found = wait_delivered(rcpt, needle, timeout)
        self.assertEqual(len(found), 1, "expected exactly one message for %s with %s in %s" % (
            rcpt, needle, P["maildir"]))
        pre, rest, _ = found[0]
        if sent is not None:
            expected = sent.replace(b"\r\n", b"\n")
            if rest != expected:
                self.fail("delivered message differs from the one sent\n"
                          "first difference at octet %d\nsent:      %r\ndelivered: %r" % (
                              _first_diff(rest, expected), expected[-300:], rest[-300:]))
        return pre, rest

    def assertSessionLog(self, mark, service, must=(), must_not=()):
        """Wait for Postfix's 'disconnect from' line of the session on service and check
        its command counters: must and must_not are regexps matched from a word start,
        e.g. must=('auth=1', SENT), must_not=('mail=',)."""
        text = wait_log(mark, r"postfix/%s/smtpd\[\d+\]: disconnect from" % re.escape(service))
        lines = disconnect_lines(text, service)
        self.assertTrue(lines, "no %s session ended in the maillog:\n%s" % (service, text[-3000:]))
        line = lines[-1]
        for m in must:
            self.assertRegex(line, r"\b(?:%s)(?!\S)" % m, text[-3000:])
        for m in must_not:
            self.assertNotRegex(line, r"\b(?:%s)" % m, text[-3000:])
        return text


# Postfix's session counters once one message went through: DATA or BDAT (CHUNKING).
SENT = r"data=1|bdat=[1-9]\d*"
UNSENT = ("mail=", "data=", "bdat=")


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ------------------------------------------------------------------- Postfix, plain port

class PostfixPlainTest(PeerTest):

    def plain(self, args, port="PLAIN_PORT"):
        return ["--server", "127.0.0.1:%d" % self.port(port), "--tls", "none",
                "--timeout", 15] + list(args)

    def test_plain_exact_roundtrip(self):
        # PLAIN_PORT offers CHUNKING (the client may use BDAT); NOCHUNKING_PORT does not
        # (DATA with dot-stuffing). Either way the Maildir copy must be the message sent.
        for portname, service, counter in (("PLAIN_PORT", "plain", SENT),
                                           ("NOCHUNKING_PORT", "nochunking", "data=1")):
            with self.subTest(port=portname):
                tag = unique("plain")
                rcpt = tag + "@example.test"
                msg = make_message(tag, "a@example.test", rcpt, tricky_body(tag))
                path = write_message(msg)
                mark = log_mark()
                proc = self.missive(self.plain(["--from", "a@example.test", "--to", rcpt,
                                                "--message", path, "--json"], port=portname))
                self.assertExit(proc, 0)
                obj = self.json_of(proc)
                self.assertEqual(obj.get("status"), "sent", obj)
                self.assertEqual(obj.get("server"), "127.0.0.1:%d" % self.port(portname), obj)
                r = self.recipient(obj, rcpt)
                self.assertIs(r.get("accepted"), True, obj)
                self.assertEqual(r.get("code"), 250, obj)
                self.assertEqual(r.get("enhanced"), "2.1.5", obj)
                self.assertNotIn("error", obj)
                self.assertSessionLog(mark, service, must=(counter,))
                pre, _ = self.assertDelivered(rcpt, tag, sent=msg)
                self.assertEqual(pre.get("return-path"), ["<a@example.test>"])

    def test_mixed_recipients_partial(self):
        tag = unique("mixed")
        good = tag + "@example.test"
        bad = "unknown-" + tag + "@example.test"   # rejected by Postfix: 550 5.1.1
        msg = make_message(tag, "a@example.test", good, ["mixed recipients"])
        proc = self.missive(self.plain(["--from", "a@example.test", "--to", good, "--to", bad,
                                        "--message", write_message(msg), "--json"]))
        self.assertExit(proc, 69)
        obj = self.json_of(proc)
        self.assertEqual(obj.get("status"), "partial", obj)
        g = self.recipient(obj, good)
        self.assertIs(g.get("accepted"), True, obj)
        self.assertEqual(g.get("code"), 250, obj)
        b = self.recipient(obj, bad)
        self.assertIs(b.get("accepted"), False, obj)
        self.assertEqual(b.get("code"), 550, obj)
        self.assertEqual(b.get("enhanced"), "5.1.1", obj)
        self.assertIn("error", obj)
        self.assertDelivered(good, tag, sent=msg)
        self.assertEqual(find_delivered(bad, ("<%s@missive.test>" % tag).encode()), [])

    def test_temporary_refusal_exit_75(self):
        tag = unique("tempfail")
        rcpt = "tempfail-" + tag + "@example.test"  # Postfix: 450 4.2.0 at RCPT
        msg = make_message(tag, "a@example.test", rcpt, ["temporary failure"])
        proc = self.missive(self.plain(["--from", "a@example.test", "--to", rcpt,
                                        "--message", write_message(msg), "--json"]))
        self.assertExit(proc, 75)
        obj = self.json_of(proc)
        self.assertEqual(obj.get("status"), "failed", obj)
        r = self.recipient(obj, rcpt)
        self.assertIs(r.get("accepted"), False, obj)
        self.assertEqual(r.get("code"), 450, obj)
        self.assertIn("error", obj)

    def test_plaintext_auth_refused(self):
        # Against the plain port (no AUTH offered) and the plaintext-AUTH port (AUTH
        # offered without TLS): without --allow-plaintext-auth the client must refuse and
        # never send AUTH.
        for portname, service in (("PLAIN_PORT", "plain"), ("PLAINAUTH_PORT", "plainauth")):
            with self.subTest(port=portname):
                tag = unique("noplainauth")
                rcpt = tag + "@example.test"
                msg = make_message(tag, "a@example.test", rcpt, ["must not be sent"])
                mark = log_mark()
                proc = self.missive(["--server", "127.0.0.1:%d" % self.port(portname),
                                     "--tls", "none", "--timeout", 15] + self.auth_args() +
                                    ["--from", "a@example.test", "--to", rcpt,
                                     "--message", write_message(msg)])
                self.assertFailed(proc)
                err = proc.stderr.decode(errors="replace").strip()
                self.assertEqual(len(err.splitlines()), 1, "want a one-line error:\n" + err)
                self.assertRegex(err.lower(), r"plain\s*-?text", err)
                self.assertNotIn(P["password"], err)
                # Either no connection at all, or a session without AUTH and MAIL.
                time.sleep(0.3)
                text = wait_log(mark, r"postfix/%s/smtpd\[\d+\]: disconnect from" % service, 1.0)
                for line in disconnect_lines(text, service):
                    self.assertNotRegex(line, r"\bauth=", text)
                    self.assertNotRegex(line, r"\bmail=", text)
                self.assertEqual(find_delivered(rcpt, ("<%s@missive.test>" % tag).encode()), [])

    def test_allow_plaintext_auth(self):
        tag = unique("plainauth")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, ["plaintext auth allowed"])
        mark = log_mark()
        proc = self.missive(["--server", "127.0.0.1:%d" % self.port("PLAINAUTH_PORT"),
                             "--tls", "none", "--allow-plaintext-auth", "--timeout", 15] +
                            self.auth_args() +
                            ["--from", "a@example.test", "--to", rcpt,
                             "--message", write_message(msg), "--json"])
        self.assertExit(proc, 0)
        self.assertEqual(self.json_of(proc).get("status"), "sent")
        self.assertSessionLog(mark, "plainauth", must=("auth=1", SENT))
        self.assertDelivered(rcpt, tag, sent=msg)

    def test_starttls_required_but_not_offered(self):
        # Default --tls starttls against a server that offers no STARTTLS: no downgrade.
        tag = unique("nodowngrade")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, ["must not be sent"])
        mark = log_mark()
        proc = self.missive(["--server", "127.0.0.1:%d" % self.port("PLAIN_PORT"),
                             "--ca-file", P["ca"], "--timeout", 15,
                             "--from", "a@example.test", "--to", rcpt,
                             "--message", write_message(msg)])
        self.assertFailed(proc)
        self.assertSessionLog(mark, "plain", must_not=UNSENT + ("auth=",))
        self.assertEqual(find_delivered(rcpt, ("<%s@missive.test>" % tag).encode()), [])

    def test_dsn_parameters_reach_postfix(self):
        # Postfix offers DSN. The recipient is in other.test, which this Postfix accepts
        # and then bounces, so the DSN Postfix sends back proves what it received:
        # ENVID -> Original-Envelope-Id, RET=HDRS -> headers only, NOTIFY=FAILURE -> a bounce.
        tag = unique("dsn")
        sender = "dsnsender-" + tag + "@example.test"
        rcpt = "dsn-" + tag + "@other.test"
        envid = "XYZ" + tag.replace("-", "")
        secret_body = "BODY-MARKER-" + tag
        msg = make_message(tag, sender, rcpt, [secret_body])
        proc = self.missive(self.plain(["--from", sender, "--to", rcpt,
                                        "--message", write_message(msg),
                                        "--dsn-notify", "FAILURE", "--dsn-ret", "hdrs",
                                        "--envid", envid, "--trace"]))
        self.assertExit(proc, 0)
        trace = proc.stderr.decode(errors="replace")
        mail = [l for l in trace.splitlines() if re.match(r"> MAIL FROM:", l, re.I)]
        rcpts = [l for l in trace.splitlines() if re.match(r"> RCPT TO:", l, re.I)]
        self.assertTrue(mail and rcpts, trace)
        self.assertRegex(mail[0], r"(?i)\bRET=HDRS\b")
        self.assertRegex(mail[0], r"\bENVID=%s\b" % envid)
        self.assertRegex(rcpts[0], r"(?i)\bNOTIFY=FAILURE\b")
        # Server side: the bounce Postfix generated from those parameters.
        found = wait_delivered(sender, ("<%s@missive.test>" % tag).encode())
        self.assertEqual(len(found), 1, "no bounce for %s in %s" % (sender, P["maildir"]))
        _, dsn, _ = found[0]
        self.assertIn(b"Original-Envelope-Id: " + envid.encode(), dsn)
        self.assertIn(b"multipart/report", dsn)
        self.assertIn(b"rfc822-headers", dsn)          # RET=HDRS: headers only
        self.assertNotIn(secret_body.encode(), dsn)
        self.assertIn(("Final-Recipient: rfc822; " + rcpt).encode(), dsn)

    def test_dsn_notify_success(self):
        tag = unique("dsnok")
        sender = "dsnsender-" + tag + "@example.test"
        rcpt = tag + "@example.test"
        msg = make_message(tag, sender, rcpt, ["please confirm delivery"])
        proc = self.missive(self.plain(["--from", sender, "--to", rcpt,
                                        "--message", write_message(msg),
                                        "--dsn-notify", "SUCCESS", "--dsn-ret", "hdrs"]))
        self.assertExit(proc, 0)
        self.assertDelivered(rcpt, tag, sent=msg)
        found = wait_delivered(sender, ("<%s@missive.test>" % tag).encode())
        self.assertEqual(len(found), 1, "no success DSN for %s" % sender)
        self.assertRegex(found[0][1].decode(errors="replace"), r"(?i)Action: delivered")

    def test_dsn_notify_never_no_bounce(self):
        tag = unique("dsnnever")
        sender = "dsnsender-" + tag + "@example.test"
        rcpt = "dsn-" + tag + "@other.test"
        msg = make_message(tag, sender, rcpt, ["bounce me quietly"])
        mark = log_mark()
        proc = self.missive(self.plain(["--from", sender, "--to", rcpt,
                                        "--message", write_message(msg),
                                        "--dsn-notify", "NEVER"]))
        self.assertExit(proc, 0)
        # Wait until Postfix has bounced it, then check that no DSN came back.
        wait_log(mark, r"to=<%s>.*status=bounced" % re.escape(rcpt))
        time.sleep(0.5)
        self.assertEqual(find_delivered(sender, ("<%s@missive.test>" % tag).encode()), [])


# ---------------------------------------------------- Postfix, STARTTLS / SASL / TLS ports

class PostfixSubmissionTest(PeerTest):

    def send_auth(self, tag, extra, port="SUBMISSION_PORT", tls="starttls", msg=None,
                  env=None, json_=True):
        rcpt = tag + "@example.test"
        if msg is None:
            msg = make_message(tag, "a@example.test", rcpt, tricky_body(tag))
        args = self.submission(list(extra) + ["--from", "a@example.test", "--to", rcpt,
                                              "--message", write_message(msg)] +
                               (["--json"] if json_ else []), port=port, tls=tls)
        return rcpt, msg, self.missive(args, env=env)

    def test_starttls_auth_default_mechanism(self):
        tag = unique("sub")
        mark = log_mark()
        rcpt, msg, proc = self.send_auth(tag, self.auth_args())
        self.assertExit(proc, 0)
        self.assertEqual(self.json_of(proc).get("status"), "sent")
        self.assertSessionLog(mark, "submission", must=("starttls=1", "auth=1", SENT))
        self.assertIn("sasl_username=" + P["user"], log_since(mark))
        self.assertDelivered(rcpt, tag, sent=msg)

    def test_auth_mechanisms(self):
        for mech, logged in (("plain", "PLAIN"), ("login", "LOGIN"), ("cram-md5", "CRAM-MD5")):
            with self.subTest(auth=mech):
                tag = unique("mech-" + mech)
                mark = log_mark()
                rcpt, msg, proc = self.send_auth(tag, self.auth_args(["--auth", mech]))
                self.assertExit(proc, 0)
                self.assertEqual(self.json_of(proc).get("status"), "sent")
                self.assertSessionLog(mark, "submission", must=("starttls=1", "auth=1", SENT))
                self.assertIn("sasl_method=%s, sasl_username=%s" % (logged, P["user"]),
                              log_since(mark))
                self.assertDelivered(rcpt, tag, sent=msg)

    def test_password_env(self):
        tag = unique("pwenv")
        rcpt, msg, proc = self.send_auth(
            tag, ["--user", P["user"], "--password-env", "MISSIVE_TEST_SMTP_PASSWORD"],
            env={"MISSIVE_TEST_SMTP_PASSWORD": P["password"]})
        self.assertExit(proc, 0)
        self.assertDelivered(rcpt, tag, sent=msg)

    def test_password_file_trailing_newline(self):
        # A password file written by `echo secret > file` ends in a newline, which is
        # not part of the password.
        tag = unique("pwnl")
        rcpt, msg, proc = self.send_auth(
            tag, ["--user", P["user"], "--password-file", P["pwfile_nl"]])
        self.assertExit(proc, 0)
        self.assertDelivered(rcpt, tag, sent=msg)

    def test_wrong_password(self):
        tag = unique("badpw")
        mark = log_mark()
        rcpt, msg, proc = self.send_auth(
            tag, ["--user", P["user"], "--password-file", P["badpwfile"]])
        self.assertExit(proc, 77)
        obj = self.json_of(proc)
        self.assertEqual(obj.get("status"), "failed", obj)
        self.assertIn("error", obj)
        self.assertSessionLog(mark, "submission", must=("starttls=1",),
                              must_not=UNSENT)
        self.assertRegex(log_since(mark), r"SASL \S+ authentication failed")
        self.assertEqual(find_delivered(rcpt, ("<%s@missive.test>" % tag).encode()), [])

    def test_implicit_tls(self):
        tag = unique("smtps")
        mark = log_mark()
        rcpt, msg, proc = self.send_auth(tag, self.auth_args(), port="SMTPS_PORT",
                                         tls="implicit")
        self.assertExit(proc, 0)
        self.assertEqual(self.json_of(proc).get("status"), "sent")
        self.assertSessionLog(mark, "smtps", must=("auth=1", SENT))
        self.assertDelivered(rcpt, tag, sent=msg)

    def test_trace_hides_credentials(self):
        user, pw = P["user"].encode(), P["password"].encode()
        forbidden_raw = [pw, user + b":" + pw, b"\0" + user + b"\0" + pw,
                         user + b"\0" + user + b"\0" + pw]
        for mech in (None, "plain", "login", "cram-md5"):
            with self.subTest(auth=mech or "default"):
                tag = unique("trace")
                extra = self.auth_args(["--auth", mech] if mech else [])
                rcpt, msg, proc = self.send_auth(tag, extra + ["--trace"], json_=False)
                self.assertExit(proc, 0)
                trace = proc.stderr.decode(errors="replace")
                # SMTP verbs are case-insensitive; the dialogue must be there.
                for rx in (r"(?im)^> EHLO ", r"(?im)^> STARTTLS", r"(?im)^> AUTH ",
                           r"(?im)^> MAIL FROM:", r"(?im)^> RCPT TO:", r"(?m)^< 220",
                           r"(?m)^< 235", r"(?m)^< 250"):
                    self.assertRegex(trace, rx)
                secrets = set()
                for raw in forbidden_raw:
                    secrets.add(raw.decode(errors="replace"))
                    secrets.add(raw.hex())
                    secrets.add(b64(raw))
                    secrets.update(b64_fragments(raw))
                secrets.update(b64_fragments(pw))
                if mech == "cram-md5":
                    self.assertRegex(trace, r"(?im)^> AUTH CRAM-MD5")
                if re.search(r"(?im)^> AUTH CRAM-MD5", trace):
                    # The response to the challenge is password-equivalent: hide it too.
                    m = re.search(r"(?m)^< 334 (\S+)", trace)
                    self.assertTrue(m, trace)
                    digest = hmac.new(pw, base64.b64decode(m.group(1)), "md5").hexdigest()
                    secrets.update({digest, b64(user + b" " + digest.encode())})
                for s in sorted(secrets):
                    self.assertNotIn(s, trace, "trace leaks a credential (%r)" % s)
                self.assertIn("[redacted]", trace)
                self.assertNotIn(P["password"], proc.stdout.decode(errors="replace"))
                self.assertDelivered(rcpt, tag)

    def test_large_message_2mb(self):
        tag = unique("large")
        rcpt = tag + "@example.test"
        lines = []
        h = hashlib.sha256(tag.encode()).digest()
        size = 0
        while size < 2 * 1024 * 1024:
            h = hashlib.sha256(h).digest()
            line = base64.b64encode(h + h).decode()[:76]
            lines.append(line)
            size += len(line) + 2
        msg = make_message(tag, "a@example.test", rcpt, lines)
        mark = log_mark()
        rcpt, msg, proc = self.send_auth(tag, self.auth_args(), msg=msg)
        self.assertExit(proc, 0)
        self.assertEqual(self.json_of(proc).get("status"), "sent")
        self.assertSessionLog(mark, "submission", must=("auth=1",))
        _, rest = self.assertDelivered(rcpt, tag, timeout=20)
        sent_body = msg.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
        got_body = rest.split(b"\n\n", 1)[1]
        self.assertEqual(len(got_body), len(sent_body))
        self.assertEqual(hashlib.sha256(got_body).hexdigest(),
                         hashlib.sha256(sent_body).hexdigest())

    def test_unauthenticated_submission_refused(self):
        # The submission port requires AUTH: sending without --user must fail (5.7.1)
        # and nothing may be delivered.
        tag = unique("noauth")
        rcpt, msg, proc = self.send_auth(tag, [])
        self.assertExit(proc, 69)
        obj = self.json_of(proc)
        self.assertEqual(obj.get("status"), "failed", obj)
        r = self.recipient(obj, rcpt)
        self.assertIs(r.get("accepted"), False, obj)
        self.assertEqual(r.get("code"), 554, obj)
        self.assertEqual(find_delivered(rcpt, ("<%s@missive.test>" % tag).encode()), [])

    def test_bad_certificates_rejected(self):
        cases = [("EXPIRED_PORT", "expired", ["--ca-file", P["ca"]]),
                 ("WRONGHOST_PORT", "wronghost", ["--ca-file", P["ca"]]),
                 ("UNKNOWNCA_PORT", "unknownca", ["--ca-file", P["ca"]]),
                 # the right certificate, but its CA is not trusted without --ca-file
                 ("SUBMISSION_PORT", "submission", [])]
        for portname, service, ca in cases:
            with self.subTest(port=portname, ca_file=bool(ca)):
                tag = unique("badcert")
                rcpt = tag + "@example.test"
                msg = make_message(tag, "a@example.test", rcpt, ["must not be sent"])
                mark = log_mark()
                proc = self.missive(["--server", "127.0.0.1:%d" % self.port(portname),
                                     "--tls", "starttls", "--timeout", 15] + ca +
                                    self.auth_args() +
                                    ["--from", "a@example.test", "--to", rcpt,
                                     "--message", write_message(msg)])
                self.assertFailed(proc)
                self.assertNotIn(P["password"], proc.stderr.decode(errors="replace"))
                self.assertSessionLog(mark, service, must_not=UNSENT + ("auth=",))
                self.assertEqual(find_delivered(rcpt, ("<%s@missive.test>" % tag).encode()), [])

    def test_insecure_accepts_bad_certificate(self):
        tag = unique("insecure")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, ["insecure on purpose"])
        proc = self.missive(["--server", "127.0.0.1:%d" % self.port("EXPIRED_PORT"),
                             "--tls", "starttls", "--insecure", "--timeout", 15] +
                            self.auth_args() +
                            ["--from", "a@example.test", "--to", rcpt,
                             "--message", write_message(msg)])
        self.assertExit(proc, 0)
        self.assertDelivered(rcpt, tag, sent=msg)


# ------------------------------------------------------------------------------ aiosmtpd

class AiosmtpdTest(PeerTest):
    # What aiosmtpd offers (SIZE, 8BITMIME) is all a client may use.
    ALLOWED_MAIL_PARAMS = re.compile(r"(?i)^(SIZE=\d+|BODY=(7BIT|8BITMIME))$")

    def aio(self, args):
        return ["--server", "127.0.0.1:%d" % P["aio_port"], "--tls", "none",
                "--timeout", 15] + list(args)

    def saved(self, tag, timeout=5):
        """(envelope dict, raw bytes) of the message aiosmtpd saved with <tag@missive.test>."""
        needle = ("<%s@missive.test>" % tag).encode()
        deadline = time.monotonic() + timeout
        while True:
            hits = []
            for name in os.listdir(P["aio_dir"]) if os.path.isdir(P["aio_dir"]) else []:
                if not name.endswith(".json"):
                    continue
                base = os.path.join(P["aio_dir"], name[:-5])
                with open(base + ".eml", "rb") as f:
                    raw = f.read()
                if needle in raw:
                    with open(base + ".json") as f:
                        hits.append((json.load(f), raw))
            if hits or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(hits), 1, "want exactly one saved message with %s" % needle)
        return hits[0]

    def assertOnlyOfferedParams(self, env):
        for p in env["mail_options"]:
            self.assertRegex(p, self.ALLOWED_MAIL_PARAMS, "MAIL parameter not offered: %r" % p)
        self.assertEqual(env["rcpt_options"], [], "RCPT parameters sent but none offered")

    def test_exact_bytes(self):
        tag = unique("aio")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, tricky_body(tag))
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", write_message(msg), "--json"]))
        self.assertExit(proc, 0)
        obj = self.json_of(proc)
        self.assertEqual(obj.get("status"), "sent", obj)
        self.assertIs(self.recipient(obj, rcpt).get("accepted"), True, obj)
        env, raw = self.saved(tag)
        self.assertEqual(raw, msg)
        self.assertEqual(env["mail_from"], "a@example.test")
        self.assertEqual(env["rcpt_tos"], [rcpt])
        self.assertOnlyOfferedParams(env)

    def test_large_message_exact_bytes_over_data(self):
        # 2 MB through DATA (aiosmtpd offers no CHUNKING), with dot lines sprinkled in.
        tag = unique("aiolarge")
        rcpt = tag + "@example.test"
        lines, size, h = [], 0, hashlib.sha256(tag.encode()).digest()
        while size < 2 * 1024 * 1024:
            h = hashlib.sha256(h).digest()
            line = base64.b64encode(h * 3).decode()[:76]
            if h[0] < 8:
                line = "." + line[1:]
            elif h[0] < 12:
                line = "."
            lines.append(line)
            size += len(line) + 2
        msg = make_message(tag, "a@example.test", rcpt, lines)
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", write_message(msg)]))
        self.assertExit(proc, 0)
        env, raw = self.saved(tag)
        self.assertEqual(len(raw), len(msg))
        self.assertEqual(hashlib.sha256(raw).hexdigest(), hashlib.sha256(msg).hexdigest())

    def test_8bit_message_declares_body_8bitmime(self):
        # RFC 6152: 8-bit content goes with BODY=8BITMIME when the server offers 8BITMIME.
        tag = unique("aio8")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, ["8-bit: Grüße"])
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", write_message(msg)]))
        self.assertExit(proc, 0)
        env, raw = self.saved(tag)
        self.assertEqual(raw, msg)
        self.assertIn("BODY=8BITMIME", [p.upper() for p in env["mail_options"]])

    def test_dsn_not_offered_not_used(self):
        tag = unique("aiodsn")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, ["no DSN here"])
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", write_message(msg),
                                      "--dsn-notify", "SUCCESS,FAILURE", "--dsn-ret", "full",
                                      "--envid", "ENV" + tag.replace("-", ""), "--json"]))
        self.assertExit(proc, 0)
        self.assertEqual(self.json_of(proc).get("status"), "sent")
        env, raw = self.saved(tag)
        self.assertEqual(raw, msg)
        self.assertOnlyOfferedParams(env)
        joined = " ".join(env["mail_options"] + env["rcpt_options"]).upper()
        for word in ("NOTIFY", "RET=", "ENVID", "ORCPT"):
            self.assertNotIn(word, joined)

    def test_cc_bcc_envelope(self):
        tag = unique("aiocc")
        to, cc, bcc = (tag + "-to@example.test", tag + "-cc@example.test",
                       tag + "-bcc@example.test")
        msg = make_message(tag, "a@example.test", to, ["to, cc and bcc"])
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", to, "--cc", cc,
                                      "--bcc", bcc, "--message", write_message(msg), "--json"]))
        self.assertExit(proc, 0)
        env, raw = self.saved(tag)
        self.assertEqual(sorted(env["rcpt_tos"]), sorted([to, cc, bcc]))
        self.assertEqual(raw, msg)

    def test_message_from_stdin(self):
        tag = unique("aiostdin")
        rcpt = tag + "@example.test"
        msg = make_message(tag, "a@example.test", rcpt, tricky_body(tag))
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", "-"]), input=msg)
        self.assertExit(proc, 0)
        env, raw = self.saved(tag)
        self.assertEqual(raw, msg)

    def test_bare_lf_normalized_and_no_smuggling(self):
        # A message with LF line endings, a bare CR and an embedded "\n.\r\n" that would
        # end DATA early on a lenient server (SMTP smuggling): the server must receive
        # one message, every line CRLF-terminated, the "." line dot-stuffed and restored.
        tag = unique("aiolf")
        rcpt = tag + "@example.test"
        smuggled = "MAIL FROM:<evil@example.test>"
        text = ("From: <a@example.test>\nTo: <%s>\nSubject: lf %s\n"
                "Message-ID: <%s@missive.test>\n\nline one\nbare\rcr\n"
                "x\n.\r\n%s\r\nlast\n") % (rcpt, tag, tag, smuggled)
        before = len([n for n in os.listdir(P["aio_dir"]) if n.endswith(".json")])
        proc = self.missive(self.aio(["--from", "a@example.test", "--to", rcpt,
                                      "--message", write_message(text.encode())]))
        self.assertExit(proc, 0)
        env, raw = self.saved(tag)
        self.assertNotRegex(raw, rb"[^\r]\n|\r[^\n]", "bare CR or LF reached the server")
        self.assertTrue(raw.endswith(b"last\r\n"), raw[-40:])
        self.assertIn(b"\r\n.\r\n" + smuggled.encode() + b"\r\n", raw)
        time.sleep(0.2)
        after = len([n for n in os.listdir(P["aio_dir"]) if n.endswith(".json")])
        self.assertEqual(after, before + 1, "the server saw more than one message")


if __name__ == "__main__":
    unittest.main(verbosity=2)
