#!/usr/bin/python3
"""Integration tests of missived, `missive sendmail` and `missive queue` (issue 6).

Peers, all on 127.0.0.1, all started by the tests in one temp dir:
  * a private Postfix (tests/peers/postfix.sh): the submission port with STARTTLS
    + SASL and the harness's test CA, for end-to-end delivery into its Maildir;
    unknown*@example.test gets 550 at RCPT there;
  * tests/peers/sinksmtp.py, a recording sink (optionally slow), per test;
  * tests/peers/faultsmtp.py scenarios rcpt451twice (451 to the first two tries
    of each address, across sessions) and rcpt451 (always 451).
Every missived runs under its own config and queue in a temp dir, is stopped
with SIGTERM (and must exit 0), and its log is checked for sanitizer reports
and for e-mail addresses (personal data never goes to the log).
SubmitSocketTest (missived's submission socket) also runs `missive sendmail` as
the user nobody, who cannot write the root-owned queue; nobody runs a copy of
MISSIVE_BIN (harness.runnable_copy), since the build tree may lie under /root.

Run as root (Postfix), with the binaries in the environment:
    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_daemon.py
Set MISSIVE_DAEMON_KEEP=1 to keep the temp dir (configs, queues, logs, Maildir).
"""

import base64
import email
import email.policy
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADDRESS, CMD_TIMEOUT, CRASH, PEERS, Postfix, binary,  # noqa: E402
                     free_port, make_certs, make_dir, prepare_postfix, remove_dir, run,
                     set_up, start_peer, stop_process, unique, wait_for, write_private)
from harness import as_user, check, runnable_copy, wire_call, wire_field, wire_request  # noqa: E402,E501

START_TIMEOUT = 20      # seconds for missived to answer /healthz
DELIVERY_TIMEOUT = 20   # seconds for a message to reach its final state

G = {}                  # filled by setUpModule


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    prepare_postfix()
    root = G["root"] = make_dir("missive-daemon-")
    certs = os.path.join(root, "certs")
    make_certs(certs)
    G["ca"] = os.path.join(certs, "ca.pem")
    pf = G["pf"] = Postfix(root, certs=certs, timeout=90)
    G["ports"], G["user"], G["password"] = pf.ports, pf.user, pf.password
    G["pwfile"] = write_private(os.path.join(root, "smtp-password"), pf.password)


def tearDownModule():
    if G.get("pf"):
        G["pf"].stop(timeout=30)
    remove_dir(G.get("root"), "MISSIVE_DAEMON_KEEP", "missive daemon test files")
    G.clear()


# ----------------------------------------------------------------------------- helpers

def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def workdir(name):
    return make_dir(name + ".", G["root"])


def raw_message(tag, frm="sender@example.test", to=("rcpt@example.test",), body=None,
                extra=()):
    head = ["From: <%s>" % frm, "To: %s" % ", ".join("<%s>" % t for t in to),
            "Subject: missived test %s" % tag, "Date: Sat, 28 Nov 2026 06:00:00 +0000",
            "Message-ID: <%s@missive.test>" % tag] + list(extra)
    if body is None:
        body = ["Body of %s." % tag, ".a line starting with a dot", ".", "..", "x" * 998,
                "last line"]
    return "\r\n".join(head) + "\r\n\r\n" + "".join(l + "\r\n" for l in body)


class Peer:
    """A Python SMTP peer from tests/peers (sinksmtp.py or faultsmtp.py)."""

    def __init__(self, script, args, name):
        self.dir = workdir(name)
        self.errfile = os.path.join(self.dir, "stderr")
        self.proc, self.port = start_peer(script, args(self.dir),
                                          os.path.join(self.dir, "ready"), self.errfile)

    def stderr(self):
        with open(self.errfile, errors="replace") as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)


class Sink(Peer):
    def __init__(self, delay=0.0, delay_while_exists=False):
        self.delay_file = None

        def args(d):
            a = ["--record", os.path.join(d, "record.jsonl"), "--save-dir", d]
            if delay:
                a += ["--data-delay", str(delay)]
                if delay_while_exists:
                    self.delay_file = os.path.join(d, "slow")
                    open(self.delay_file, "w").close()
                    a += ["--delay-file", self.delay_file]
            return a
        super().__init__("sinksmtp.py", args, "sink")

    def records(self):
        try:
            with open(os.path.join(self.dir, "record.jsonl")) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def message(self, rec):
        with open(os.path.join(self.dir, "%d.eml" % rec["n"]), "rb") as f:
            return f.read()

    def wait_mid(self, mid, timeout=DELIVERY_TIMEOUT):
        """The one record of Message-ID mid, once it arrived."""
        recs = wait_for(lambda: [r for r in self.records() if r["message_id"] == mid],
                        timeout, "the sink to receive " + mid)
        return recs

    def fast(self):
        if self.delay_file and os.path.exists(self.delay_file):
            os.unlink(self.delay_file)


class Fault(Peer):
    def __init__(self, scenario):
        self.scenario = scenario
        super().__init__("faultsmtp.py", lambda d: [
            "--scenario", scenario, "--log", os.path.join(d, "server.log"),
            "--save-dir", d, "--idle-timeout", "30"], scenario)

    def log(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            return f.read()


class Daemon:
    """One missived with its own config file and queue in a temp dir."""

    def __init__(self, route, sections=None, name="missived", log_file=False, token=None):
        self.dir = workdir(name)
        self.cfg = os.path.join(self.dir, "missive.conf")
        self.queue = os.path.join(self.dir, "queue.db")
        self.stderr_path = os.path.join(self.dir, "missived.stderr")
        self.log_path = os.path.join(self.dir, "missived.log") if log_file else None
        self.port = free_port()
        self.token = token
        self.proc = None
        self.logs = []          # every file missived logged to
        s = {"queue": {"path": self.queue},
             # Keys are required by default (issue 14); these tests are the
             # single-application mode unless they test the token.
             "http": {"listen": "127.0.0.1:%d" % self.port,
                      "trust-loopback": "no" if token else "yes"},
             "daemon": {"workers": "2", "batch": "16", "poll-interval": "100ms",
                        "grace": "20s"},
             "retry": {"base": "200ms", "cap": "1s"}}
        if log_file:
            s["daemon"]["log-file"] = self.log_path
        if token:
            s["http"]["token-file"] = write_private(os.path.join(self.dir, "http-token"),
                                                    token + "\n")
        for sec, kv in (sections or {}).items():
            s.setdefault(sec, {}).update(kv)
        s["route default"] = route
        self.write_config(s)

    def write_config(self, sections):
        with open(self.cfg, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    # ---- process ----
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        out = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([G["daemon"], "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        for p in (self.stderr_path, self.log_path):
            if p and p not in self.logs:
                self.logs.append(p)
        if wait:
            def up():
                if self.proc.poll() is not None:
                    raise AssertionError("missived exited %d at start:\n%s" % (
                        self.proc.returncode, self.log_text()))
                try:
                    return self.request("GET", "/healthz", auth=False)[0] == 200
                except OSError:
                    return False
            wait_for(up, START_TIMEOUT, "missived to answer /healthz")
        return self

    def save_metrics(self):
        """/metrics into metrics.txt, for the PII scan after the suite (harness.py)."""
        try:
            status, text, _ = self.request("GET", "/metrics")
        except (OSError, ValueError):
            return
        if status == 200:
            with open(os.path.join(self.dir, "metrics.txt"), "a") as f:
                f.write(text)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM; returns (exit code, seconds it took)."""
        if not self.running():
            return (self.proc.returncode if self.proc else None), 0.0
        self.save_metrics()
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("missived did not exit %ds after SIGTERM:\n%s" % (
                timeout, self.log_text()))
        return rc, time.monotonic() - t0

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        out = []
        for p in self.logs:
            for q in (p, p + ".1"):
                if os.path.exists(q):
                    with open(q, errors="replace") as f:
                        out.append(f.read())
        return "".join(out)

    def check_log(self, tc):
        text = self.log_text()
        tc.assertNotRegex(text, CRASH, "sanitizer report in missived's log:\n" + text)
        tc.assertNotRegex(text, ADDRESS, "an e-mail address in missived's log:\n" + text)
        tc.assertNotIn(G.get("password", "\0"), text)
        return text

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, auth=True, chunked=False,
                port=None):
        """(status, parsed JSON or text, raw bytes)."""
        h = dict(headers or {})
        if auth and self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            if chunked:
                h["Transfer-Encoding"] = "chunked"
                c.request(method, path, body=iter([body[i:i + 4096]
                                                   for i in range(0, len(body), 4096)]),
                          headers=h, encode_chunked=True)
            else:
                c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type", "")
        finally:
            c.close()
        obj = data.decode(errors="replace")
        if ctype.startswith("application/json"):
            obj = json.loads(data)
        return r.status, obj, data

    def post(self, body, **kw):
        return self.request("POST", "/v1/messages", body, **kw)

    def submit(self, body):
        st, obj, raw = self.post(body)
        if st != 202:
            raise AssertionError("POST /v1/messages: %d %s" % (st, raw))
        return obj["id"]

    def info(self, qid):
        st, obj, raw = self.request("GET", "/v1/messages/" + qid)
        if st != 200:
            raise AssertionError("GET /v1/messages/%s: %d %s" % (qid, st, raw))
        return obj

    def wait_final(self, qid, states=("sent", "bounced", "dead"), timeout=DELIVERY_TIMEOUT):
        """The message's JSON once every recipient is in one of states."""
        last = [None]

        def done():
            last[0] = self.info(qid)
            return all(r["state"] in states for r in last[0]["recipients"]) and last[0]
        try:
            return wait_for(done, timeout, "message %s to be %s" % (qid, "/".join(states)))
        except AssertionError as e:
            raise AssertionError("%s; last: %s\nlog:\n%s" % (e, json.dumps(last[0]),
                                                            self.log_text()[-3000:]))

    def metrics(self):
        st, text, _ = self.request("GET", "/metrics")
        assert st == 200, (st, text)
        return text

    # ---- CLI on this daemon's queue ----
    def cli(self, args, input=None, env=None, exe=None, config=True):
        exe = exe or G["bin"]
        args = list(args)
        if config and exe == G["bin"]:     # after the subcommand: sendmail stops at RCPT
            args = args[:1] + ["--config", self.cfg] + args[1:]
        elif config:
            args = ["--config", self.cfg] + args
        cmd = [exe] + args
        e = dict(os.environ, **(env or {}))
        p = subprocess.run(cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CMD_TIMEOUT,
                           env=e)
        p.err = p.stderr.decode(errors="replace")
        p.out = p.stdout.decode(errors="replace")
        return p

    def cli_json(self, args):
        p = self.cli(args + ["--json"])
        if p.returncode != 0:
            raise AssertionError("missive %s: exit %d\n%s" % (" ".join(args), p.returncode, p.err))
        return json.loads(p.out)

    def stats(self):
        return self.cli_json(["queue", "stats"])


def faultsmtp_ok_rcpt():
    sys.path.insert(0, PEERS)
    import faultsmtp
    return faultsmtp.OK_RCPT


def describe(p):
    return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (p.returncode, p.out, p.err)


class DaemonTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.daemons, self.peers = [], []

    def tearDown(self):
        for d in self.daemons:
            d.kill()
        for p in self.peers:
            p.stop()
            self.assertNotIn("Traceback", p.stderr(), "test peer crashed:\n" + p.stderr())

    def daemon(self, route, **kw):
        d = Daemon(route, **kw)
        self.daemons.append(d)
        return d

    def sink(self, **kw):
        s = Sink(**kw)
        self.peers.append(s)
        return s

    def fault(self, scenario):
        f = Fault(scenario)
        self.peers.append(f)
        return f

    @staticmethod
    def plain_route(peer):
        return {"server": "127.0.0.1:%d" % peer.port, "tls": "none", "timeout": "15"}

    def stop(self, d, max_seconds=None):
        rc, took = d.stop()
        self.assertEqual(rc, 0, "missived exit code after SIGTERM:\n" + d.log_text())
        if max_seconds is not None:
            self.assertLess(took, max_seconds, d.log_text())
        d.check_log(self)
        return took

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code, describe(p))
        self.assertNotRegex(p.err, CRASH, describe(p))

    def rcpt(self, info, address):
        for r in info["recipients"]:
            if r["address"].lower() == address.lower():
                return r
        self.fail("no recipient %s in %s" % (address, json.dumps(info)))

    def attempts(self, info, address):
        return [a for a in info.get("attempts", []) if a.get("recipient", "").lower()
                == address.lower()]


# ------------------------------------------------------------------ Postfix, end to end

def maildir_find(rcpt, needle):
    return [(pre, rest) for pre, rest, _ in G["pf"].find_delivered(rcpt, needle)]


class PostfixEndToEndTest(DaemonTest):
    """Both submission paths through the real Postfix: STARTTLS + AUTH, test CA."""

    def postfix_daemon(self):
        d = self.daemon({"server": "127.0.0.1:%d" % G["ports"]["SUBMISSION_PORT"],
                         "tls": "starttls", "ca-file": G["ca"], "user": G["user"],
                         "password-file": G["pwfile"], "timeout": "15"}, name="postfix")
        return d.start()

    def delivered(self, rcpt, tag, count=1):
        needle = ("<%s@missive.test>" % tag).encode()
        wait_for(lambda: len(maildir_find(rcpt, needle)) >= count, DELIVERY_TIMEOUT,
                 "%s in the Maildir for %s" % (tag, rcpt))
        time.sleep(0.2)     # a duplicate would show up now
        found = maildir_find(rcpt, needle)
        self.assertEqual(len(found), count, "copies of %s for %s" % (tag, rcpt))
        return found[0]

    def check_sent(self, d, qid, rcpts):
        """queue show --json and GET /v1/messages/ID agree: sent, with the 250."""
        shown = d.cli_json(["queue", "show", qid])
        api = d.info(qid)
        for info in (shown, api):
            self.assertEqual(info["id"], qid)
            self.assertEqual(sorted(r["address"] for r in info["recipients"]), sorted(rcpts))
            for r in info["recipients"]:
                self.assertEqual(r["state"], "sent", info)
                self.assertEqual(r["attempts"], 1, info)
                self.assertEqual(r["last_reply"]["code"], 250, info)
                att = self.attempts(info, r["address"])
                self.assertEqual([a["code"] for a in att], [250], info)
                self.assertEqual(att[0]["server"], "127.0.0.1:%d" % G["ports"]["SUBMISSION_PORT"])
        self.assertEqual(shown["recipients"], api["recipients"])
        return api

    @staticmethod
    def parts(msg_bytes):
        m = email.message_from_bytes(msg_bytes, policy=email.policy.default)
        text = html = None
        atts = {}
        for part in m.walk():
            if part.is_multipart():
                continue
            fn = part.get_filename()
            if fn:
                atts[fn] = part.get_payload(decode=True)
            elif part.get_content_type() == "text/plain":
                text = part.get_content()
            elif part.get_content_type() == "text/html":
                html = part.get_content()
        return m, text, html, atts

    def test_sendmail_multipart_through_postfix(self):
        d = self.postfix_daemon()
        tag = unique("sm-e2e")
        rcpt, cc = tag + "@example.test", "cc-" + tag + "@example.test"
        attachment = os.urandom(50000)
        att = os.path.join(d.dir, "data.bin")
        with open(att, "wb") as f:
            f.write(attachment)
        html = os.path.join(d.dir, "body.html")
        with open(html, "w") as f:
            f.write("<p>HTML part of %s</p>\n" % tag)
        b = d.cli(["build", "--from", "sender@example.test", "--to", rcpt, "--cc", cc,
                   "--subject", "sendmail e2e " + tag, "--text-body", "Text part of " + tag,
                   "--html", html, "--attach", att, "--message-id",
                   "<%s@missive.test>" % tag], config=False)
        self.assertExit(b, 0)
        built = b.stdout
        p = d.cli(["sendmail", "-t", "--json"], input=built)
        self.assertExit(p, 0)
        qid = json.loads(p.out)["id"]
        self.assertEqual(json.loads(p.out)["recipients"], 2)
        d.wait_final(qid)
        self.check_sent(d, qid, [rcpt, cc])
        for r in (rcpt, cc):
            pre, rest = self.delivered(r, tag)
            self.assertEqual(pre.get("return-path"), ["<sender@example.test>"])
            # Nothing was missing, nothing added: the message arrives as built.
            self.assertEqual(rest, built.replace(b"\r\n", b"\n"))
            _, text, hpart, atts = self.parts(rest)
            self.assertIn("Text part of " + tag, text)
            self.assertIn("HTML part of " + tag, hpart)
            self.assertEqual(hashlib.sha256(atts["data.bin"]).hexdigest(),
                             hashlib.sha256(attachment).hexdigest())
        self.stop(d)

    def test_http_raw_and_structured_through_postfix(self):
        d = self.postfix_daemon()
        # Raw: the message as given (it has every field), exact bytes.
        tag = unique("http-raw")
        rcpt = tag + "@example.test"
        raw = raw_message(tag, to=(rcpt,))
        st, obj, body = d.post({"raw": raw})
        self.assertEqual(st, 202, body)
        self.assertRegex(obj["id"], r"^[0-9a-f]{16}$")
        self.assertEqual(obj["message_id"], "<%s@missive.test>" % tag)
        self.assertEqual(obj["recipients"], 1)
        d.wait_final(obj["id"])
        self.check_sent(d, obj["id"], [rcpt])
        _, rest = self.delivered(rcpt, tag)
        self.assertEqual(rest, raw.encode().replace(b"\r\n", b"\n"))

        # Structured: text + HTML + attachment, To + Cc + Bcc.
        tag = unique("http-struct")
        to, cc, bcc = (p + tag + "@example.test" for p in ("to-", "cc-", "bcc-"))
        attachment = os.urandom(30000)
        req = {"from": "sender@example.test", "from_name": "Sender Name",
               "to": [to], "cc": cc, "bcc": [bcc], "subject": "structured " + tag,
               "text": "Text part of %s\n" % tag, "html": "<p>HTML part of %s</p>" % tag,
               "message_id": "<%s@missive.test>" % tag,
               "headers": {"X-Missive-Test": tag},
               "attachments": [{"filename": "report.bin",
                                "content_type": "application/octet-stream",
                                "content_base64": base64.b64encode(attachment).decode()}]}
        st, obj, body = d.post(req)
        self.assertEqual(st, 202, body)
        self.assertEqual(obj["recipients"], 3)
        d.wait_final(obj["id"])
        self.check_sent(d, obj["id"], [to, cc, bcc])
        for r in (to, cc, bcc):
            pre, rest = self.delivered(r, tag)
            m, text, hpart, atts = self.parts(rest)
            self.assertIsNone(m["Bcc"], "Bcc written into the message")
            self.assertNotIn(b"bcc-" + tag.encode(), rest)
            self.assertEqual(m["X-Missive-Test"], tag)
            self.assertIn("Sender Name", m["From"])
            self.assertIn("Text part of " + tag, text)
            self.assertIn("HTML part of " + tag, hpart)
            self.assertEqual(hashlib.sha256(atts["report.bin"]).hexdigest(),
                             hashlib.sha256(attachment).hexdigest())
        self.stop(d)

    def test_550_dead_letter_and_requeue(self):
        d = self.postfix_daemon()
        tag = unique("bounce")
        good1, good2 = "a-" + tag + "@example.test", "b-" + tag + "@example.test"
        bad = "unknown-" + tag + "@example.test"      # Postfix: 550 5.1.1 at RCPT
        raw = raw_message(tag, to=(good1, bad, good2))
        st, obj, body = d.post({"raw": raw})
        self.assertEqual(st, 202, body)
        qid = obj["id"]
        info = d.wait_final(qid)
        self.assertEqual(self.rcpt(info, bad)["state"], "bounced", info)
        self.assertEqual(self.rcpt(info, bad)["last_reply"]["code"], 550, info)
        self.assertEqual(self.rcpt(info, bad)["last_reply"]["enhanced"], "5.1.1", info)
        for g in (good1, good2):
            self.assertEqual(self.rcpt(info, g)["state"], "sent", info)
            self.delivered(g, tag)
        self.assertEqual(maildir_find(bad, ("<%s@missive.test>" % tag).encode()), [])
        dlq = d.cli_json(["queue", "dlq", "ls"])
        entry = [m for m in dlq if m["id"] == qid]
        self.assertEqual(len(entry), 1, dlq)
        self.assertEqual([r["address"] for r in entry[0]["recipients"]], [bad], entry)
        self.assertEqual(entry[0]["recipients"][0]["state"], "bounced")
        self.stop(d)

        # Requeue with the daemon stopped: the dead letter is queued again ...
        p = d.cli(["queue", "dlq", "requeue", qid, "--json"])
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.out), {"requeued": 1})
        info = d.cli_json(["queue", "show", qid])
        self.assertEqual(self.rcpt(info, bad)["state"], "queued", info)
        self.assertEqual(self.rcpt(info, good1)["state"], "sent", info)
        self.assertEqual([m for m in d.cli_json(["queue", "dlq", "ls"]) if m["id"] == qid], [])
        self.assertEqual(d.stats()["recipients"]["queued"], 1)
        # ... and tried again once missived runs: the same 550, the others untouched.
        d.start()
        info = d.wait_final(qid)
        r = self.rcpt(info, bad)
        self.assertEqual((r["state"], r["attempts"]), ("bounced", 2), info)
        self.assertEqual([a["code"] for a in self.attempts(info, bad)], [550, 550])
        for g in (good1, good2):
            self.assertEqual(self.rcpt(info, g)["attempts"], 1, info)
            self.delivered(g, tag)      # still exactly one copy
        p = d.cli(["queue", "dlq", "requeue", "0123456789abcdef"])
        self.assertExit(p, 65)
        self.stop(d)


# ----------------------------------------------------------------------- retry, max age

class RetryTest(DaemonTest):

    def test_451_twice_then_250(self):
        srv = self.fault("rcpt451twice")
        d = self.daemon(self.plain_route(srv)).start()
        tag = unique("retry")
        r1, r2 = "one-" + tag + "@example.test", "two-" + tag + "@example.test"
        t0 = time.monotonic()
        qid = d.submit({"raw": raw_message(tag, to=(r1, r2))})
        info = d.wait_final(qid)
        took = time.monotonic() - t0
        for r in (r1, r2):
            self.assertEqual(self.rcpt(info, r)["state"], "sent", info)
            self.assertEqual(self.rcpt(info, r)["attempts"], 3, info)
            att = self.attempts(info, r)
            self.assertEqual([a["code"] for a in att], [451, 451, 250], info)
            self.assertEqual([a["enhanced"] for a in att][:2], ["4.3.0", "4.3.0"], info)
            ats = [a["at"] for a in att]
            self.assertEqual(ats, sorted(ats), info)
        # Backoff with base 200ms, cap 1s: waits of at most 0.2 s and 0.4 s.
        self.assertLess(took, 10, info)
        # Each address: two 451, one 250, one copy of the message (the two
        # recipients' retries may fall due together or apart: one or two DATA).
        log = srv.log()
        self.assertEqual(log.count("S: 451 4.3.0"), 4, log)
        self.assertEqual(log.count("S: " + faultsmtp_ok_rcpt()), 2, log)
        self.assertIn(len(re.findall(r"^DATA-BYTES:", log, re.M)), (1, 2), log)
        m = d.metrics()
        self.assertRegex(m, r"(?m)^missive_deferred_total 4$")
        self.assertRegex(m, r"(?m)^missive_delivered_total 2$")
        self.assertRegex(m, r'(?m)^missive_queue_recipients\{state="sent"\} 2$')
        self.stop(d)

    def test_data_phase_failures(self):
        # RCPT said 250 to both; what happens after the data decides.  A lost
        # connection or a 4xx after the data is not "sent" (that would lose
        # the message): deferred.  A 5xx after the data bounces both.
        for scenario, state, code in (("drop-in-data", "deferred", 0),
                                      ("data451", "deferred", 451),
                                      ("data554", "bounced", 554)):
            with self.subTest(scenario=scenario):
                srv = self.fault(scenario)
                d = self.daemon(self.plain_route(srv),
                                sections={"retry": {"base": "1h", "cap": "1h"}}).start()
                tag = unique(scenario)
                rcpts = ("one-" + tag + "@example.test", "two-" + tag + "@example.test")
                qid = d.submit({"raw": raw_message(tag, to=rcpts)})
                info = d.wait_final(qid, states=("sent", "bounced", "dead", "deferred"))
                for r in rcpts:
                    ri = self.rcpt(info, r)
                    self.assertEqual((ri["state"], ri["attempts"]), (state, 1), info)
                    self.assertEqual([a["code"] for a in self.attempts(info, r)], [code], info)
                    if state == "deferred":
                        self.assertIsNotNone(ri["next_attempt"], info)
                st = d.stats()["recipients"]
                self.assertEqual(st["sent"], 0, st)
                self.stop(d)

    def test_max_age_dead(self):
        srv = self.fault("rcpt451")
        d = self.daemon(self.plain_route(srv), sections={"retry": {"max-age": "1500ms"}})
        d.start()
        tag = unique("maxage")
        rcpt = tag + "@example.test"
        t0 = time.monotonic()
        qid = d.submit({"raw": raw_message(tag, to=(rcpt,))})
        info = d.wait_final(qid)
        self.assertGreater(time.monotonic() - t0, 1.4)
        r = self.rcpt(info, rcpt)
        self.assertEqual(r["state"], "dead", info)
        self.assertEqual(r["last_reply"]["code"], 451, info)
        self.assertGreaterEqual(r["attempts"], 2, info)
        self.assertEqual({a["code"] for a in self.attempts(info, rcpt)}, {451})
        dlq = d.cli_json(["queue", "dlq", "ls"])
        self.assertEqual([m["id"] for m in dlq], [qid])
        self.assertEqual(dlq[0]["recipients"][0]["state"], "dead")
        self.assertEqual(d.stats()["recipients"]["dead"], 1)
        self.assertRegex(d.metrics(), r"(?m)^missive_dead_total 1$")
        self.assertNotIn("DATA-BYTES", srv.log())
        self.stop(d)


# ------------------------------------------------------------------------ signals, logs

class SignalTest(DaemonTest):

    def submit_many(self, d, n, prefix):
        mids = []
        for i in range(n):
            tag = unique(prefix)
            d.submit({"raw": raw_message(tag, to=("r%d-%s@example.test" % (i, tag),),
                                         body=["short body %d" % i])})
            mids.append("<%s@missive.test>" % tag)
        return mids

    def test_sigterm_drains_in_flight(self):
        sink = self.sink(delay=1.5, delay_while_exists=True)
        d = self.daemon(self.plain_route(sink), sections={"daemon": {"batch": "4"}}).start()
        mids = self.submit_many(d, 12, "drain")
        # Sends are in flight (the sink holds each reply 1.5 s) once leases exist.
        wait_for(lambda: d.stats()["leased"] > 0, 10, "a lease")
        took = self.stop(d, max_seconds=20)
        text = d.log_text()
        self.assertIn("SIGTERM: draining", text)
        self.assertRegex(text, r"stopped; released \d+ leases")
        self.assertNotIn("grace period over", text)
        st = d.stats()
        self.assertEqual(st["leased"], 0, st)
        self.assertEqual(st["recipients"]["deferred"], 0, st)
        self.assertEqual(sum(st["recipients"].values()), 12, st)
        self.assertGreater(st["recipients"]["queued"], 0, "drained everything: test too slow")
        # What the sink accepted is recorded as sent; nothing else is.
        got = {r["message_id"] for r in sink.records()}
        self.assertEqual(st["recipients"]["sent"], len(got), (st, took))
        sink.fast()
        d.start()
        wait_for(lambda: d.stats()["recipients"]["sent"] == 12, DELIVERY_TIMEOUT,
                 "all 12 sent after the restart")
        recs = sink.records()
        self.assertEqual(sorted(r["message_id"] for r in recs), sorted(mids),
                         "every message exactly once")
        self.assertEqual(d.stats()["leased"], 0)
        self.stop(d)

    def test_slow_send_keeps_its_lease(self):
        # The sink holds each reply 3 s, three times the lease: missived
        # renews its leases while the send runs, so the second worker never
        # takes the message over and sends it again.
        sink = self.sink(delay=3)
        d = self.daemon(self.plain_route(sink), sections={
            "queue": {"lease": "1s"}, "daemon": {"workers": "2"}}).start()
        tag = unique("lease")
        qid = d.submit({"raw": raw_message(tag)})
        self.assertEqual(d.wait_final(qid)["recipients"][0]["state"], "sent")
        time.sleep(1.5)  # a second copy, if any, would be on its way by now
        recs = [r for r in sink.records() if r["message_id"] == "<%s@missive.test>" % tag]
        self.assertEqual(len(recs), 1, "the message was sent %d times" % len(recs))
        self.assertEqual(d.info(qid)["recipients"][0]["attempts"], 1)
        self.stop(d)

    def test_sigterm_grace_expires(self):
        sink = self.sink(delay=6, delay_while_exists=True)
        d = self.daemon(self.plain_route(sink),
                        sections={"daemon": {"grace": "500ms", "batch": "2"}}).start()
        mids = self.submit_many(d, 4, "grace")
        wait_for(lambda: d.stats()["leased"] > 0, 10, "a lease")
        time.sleep(0.2)
        took = self.stop(d, max_seconds=5)
        self.assertIn("grace period over", d.log_text())
        st = d.stats()
        self.assertEqual(st["leased"], 0, st)
        self.assertEqual(st["recipients"]["sent"], 0, (st, took))
        sink.fast()
        d.start()
        wait_for(lambda: d.stats()["recipients"]["sent"] == 4, DELIVERY_TIMEOUT,
                 "all 4 sent after the restart")
        # The interrupted sends may complete at the sink too (at least once).
        got = [r["message_id"] for r in sink.records()]
        self.assertEqual(set(got), set(mids))
        self.stop(d)

    def test_sighup_reopens_log_file(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink), log_file=True).start()
        wait_for(lambda: "started" in read(d.log_path), 5, "the start line in the log file")
        os.rename(d.log_path, d.log_path + ".1")
        d.signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(d.log_path), 5, "a new log file after SIGHUP")
        qid = d.submit({"raw": raw_message(unique("hup"))})
        d.wait_final(qid)
        wait_for(lambda: qid in read(d.log_path), 5, "the delivery in the new log")
        self.stop(d)
        with open(d.log_path) as f:
            new = f.read()
        with open(d.log_path + ".1") as f:
            old = f.read()
        self.assertIn("started", old)
        self.assertNotIn(qid, old)
        self.assertIn("SIGHUP: log reopened", new)
        self.assertRegex(new, r"%s: 1 sent, 0 deferred, 0 bounced, 0 dead via 127\.0\.0\.1:%d "
                              r"\(250 2\.0\.0\)" % (qid, sink.port))
        self.assertIn("stopped", new)
        self.assertNotIn("started", new)
        with open(d.stderr_path) as f:
            self.assertEqual(f.read(), "", "missived wrote to stderr despite log-file")


# ---------------------------------------------------------------------------- HTTP API

def parse_prometheus(tc, text):
    """{(name, labels tuple): value} and {name: type}; checks the text format."""
    types, samples = {}, {}
    line_rx = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="'
                         r'(?:[^"\\\n]|\\.)*",?)*)\})? ([-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|Inf|NaN))$')
    tc.assertTrue(text.endswith("\n"), "exposition must end with a newline")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            tc.assertIn(typ, ("counter", "gauge", "histogram", "summary", "untyped"), line)
            tc.assertNotIn(name, types, "TYPE twice for " + name)
            types[name] = typ
            continue
        if line.startswith("# HELP "):
            continue
        tc.assertFalse(line.startswith("#") or not line.strip(), "stray line %r" % line)
        m = line_rx.match(line)
        tc.assertIsNotNone(m, "not a Prometheus sample line: %r" % line)
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        key = (m.group(1), labels)
        tc.assertNotIn(key, samples, "duplicate sample " + line)
        samples[key] = float(m.group(3))
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        tc.assertTrue(m.group(1) in types or base in types, "no TYPE for " + line)
    for name, typ in types.items():
        if typ == "counter":
            tc.assertTrue(name.endswith("_total"), name)
            for (n, _), v in samples.items():
                if n == name:
                    tc.assertGreaterEqual(v, 0, name)
        if typ == "histogram":
            buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in samples.items()
                              if n == name + "_bucket"), key=lambda x: x[0])
            tc.assertGreater(len(buckets), 1, name)
            tc.assertEqual(buckets[-1][0], float("inf"), name)
            counts = [v for _, v in buckets]
            tc.assertEqual(counts, sorted(counts), "%s buckets not cumulative: %s" % (name, buckets))
            tc.assertEqual(buckets[-1][1], samples[(name + "_count", ())], name)
            tc.assertIn((name + "_sum", ()), samples)
    return samples, types


class HttpApiTest(DaemonTest):

    def test_validation_queues_nothing(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink), sections={"http": {"max-body": "8k"},
                                                          "submission": {"max-recipients": "250"}}).start()
        ok = {"from": "a@example.test", "to": "b@example.test", "subject": "s", "text": "t"}

        def w(**kw):
            o = dict(ok)
            for k, v in kw.items():
                if v is None:
                    o.pop(k, None)
                else:
                    o[k] = v
            return o
        raw_ok = "From: a@example.test\r\nTo: b@example.test\r\nSubject: s\r\n\r\nbody\r\n"
        cases = [
            # (name, method, path, body, status, code, message regexp)
            ("bad json", "POST", "/v1/messages", "{bad", 400, "bad_json", "JSON"),
            ("json array", "POST", "/v1/messages", "[]", 400, "bad_json", "JSON object"),
            ("empty body", "POST", "/v1/messages", "", 400, "bad_json", ""),
            ("no from", "POST", "/v1/messages", w(**{"from": None}), 400, "invalid", "from"),
            ("no subject", "POST", "/v1/messages", w(subject=None), 400, "invalid", "subject"),
            ("no text/html", "POST", "/v1/messages", w(text=None), 400, "invalid", "text"),
            ("no recipient", "POST", "/v1/messages", w(to=None), 400, "invalid", "to"),
            ("empty to", "POST", "/v1/messages", w(to=[]), 400, "invalid", "to"),
            ("to number", "POST", "/v1/messages", w(to=5), 400, "invalid", "to"),
            ("to [number]", "POST", "/v1/messages", w(to=[5]), 400, "invalid", "to"),
            ("from number", "POST", "/v1/messages", w(**{"from": 7}), 400, "invalid", "from"),
            ("subject object", "POST", "/v1/messages", w(subject={}), 400, "invalid", "subject"),
            ("headers array", "POST", "/v1/messages", w(headers=["X: y"]), 400, "invalid",
             "headers"),
            ("header number", "POST", "/v1/messages", w(headers={"X-A": 1}), 400, "invalid",
             "X-A"),
            ("CRLF in header", "POST", "/v1/messages",
             w(headers={"X-Inject": "a\r\nBcc: evil@example.test"}), 400, "invalid",
             "X-Inject.*(line break|CR|LF)"),
            ("LF in subject", "POST", "/v1/messages", w(subject="a\nBcc: evil@example.test"),
             400, "invalid", "Subject.*(line break|CR|LF)"),
            ("malformed to", "POST", "/v1/messages", w(to="not an address"), 400, "invalid",
             "To.*not an address"),
            ("malformed from", "POST", "/v1/messages", w(**{"from": "a@@example.test"}), 400,
             "invalid", "From"),
            ("bad base64", "POST", "/v1/messages",
             w(attachments=[{"filename": "a.bin", "content_base64": "!!!"}]), 400, "invalid",
             "base64"),
            ("attachment w/o content", "POST", "/v1/messages",
             w(attachments=[{"filename": "a.bin"}]), 400, "invalid", "content_base64"),
            ("attachments object", "POST", "/v1/messages", w(attachments={}), 400, "invalid",
             "attachments"),
            ("raw number", "POST", "/v1/messages", {"raw": 5}, 400, "invalid", "raw"),
            ("raw no rcpt", "POST", "/v1/messages",
             {"raw": "From: a@example.test\r\nSubject: x\r\n\r\nbody"}, 400, "bad_address",
             "recipient"),
            ("raw bad To", "POST", "/v1/messages",
             {"raw": "From: a@example.test\r\nTo: bad address\r\n\r\nbody"}, 400,
             "bad_address", "To"),
            ("raw bad recipients", "POST", "/v1/messages", {"raw": raw_ok, "recipients": 3},
             400, "invalid", "recipients"),
            ("raw malformed rcpt", "POST", "/v1/messages",
             {"raw": raw_ok, "recipients": ["not-an-address"]}, 400, "bad_address", ""),
            ("raw CRLF in rcpt", "POST", "/v1/messages",
             {"raw": raw_ok, "recipients": ["x@example.test\r\nRCPT TO:<evil@example.test>"]},
             400, None, "(line break|CR|LF)"),
            ("raw CRLF in sender", "POST", "/v1/messages",
             {"raw": raw_ok, "sender": "x@example.test\r\nRCPT TO:<evil@example.test>"},
             400, None, "(line break|CR|LF)"),
            ("raw NUL", "POST", "/v1/messages",
             '{"raw": "From: a@example.test\\r\\nTo: b@example.test\\r\\n\\r\\nab\\u0000cd"}',
             400, None, "NUL"),
            ("raw long line", "POST", "/v1/messages", {"raw": raw_ok + "y" * 999}, 400,
             "bad_message", "998"),
            ("too many recipients", "POST", "/v1/messages",      # [submission] max-recipients
             w(to=["t%d@example.test" % i for i in range(200)],
               cc=["c%d@example.test" % i for i in range(100)]), 400, "too_many_recipients",
             r"max-recipients \(250\)"),
            ("oversize", "POST", "/v1/messages", w(text="x" * 9000), 413, "too_large",
             "max-body"),
            ("oversize chunked", "POST-chunked", "/v1/messages", w(text="x" * 12000), 413,
             "too_large", "max-body"),
            ("GET collection", "GET", "/v1/messages", None, 405, "method", "POST"),
            ("PUT collection", "PUT", "/v1/messages", raw_ok, 405, "method", "POST"),
            ("DELETE message", "DELETE", "/v1/messages/0123456789abcdef", None, 405, "method",
             "GET"),
            ("POST healthz", "POST", "/healthz", "{}", 405, "method", "GET"),
            ("POST metrics", "POST", "/metrics", "{}", 405, "method", "GET"),
            ("unknown message", "GET", "/v1/messages/0123456789abcdef", None, 404,
             "not_found", ""),
            ("bad message id", "GET", "/v1/messages/../../etc", None, 404, "not_found", ""),
            ("unknown path", "GET", "/v2/messages", None, 404, "not_found", ""),
            ("root", "GET", "/", None, 404, "not_found", ""),
        ]
        n4xx = 0
        for name, method, path, body, status, code, msg in cases:
            with self.subTest(case=name):
                before = d.stats()
                chunked = method.endswith("-chunked")
                if isinstance(body, dict):
                    body = json.dumps(body)
                st, obj, raw = d.request(method.split("-")[0], path, body, chunked=chunked,
                                         headers={"Content-Type": "application/json"})
                n4xx += 1
                self.assertEqual(st, status, raw)
                self.assertIsInstance(obj, dict, raw)
                self.assertEqual(set(obj), {"error"}, raw)
                self.assertEqual(set(obj["error"]), {"code", "message"}, raw)
                if code:
                    self.assertEqual(obj["error"]["code"], code, raw)
                self.assertRegex(obj["error"]["message"], "(?i)" + msg, raw)
                self.assertEqual(d.stats(), before, "%s queued something" % name)
        m, _ = parse_prometheus(self, d.metrics())
        self.assertEqual(m[("missive_submitted_total", ())], 0)
        self.assertEqual(m[("missive_http_responses_total", (("code", "4xx"),))], n4xx)
        self.assertEqual(m[("missive_queue_messages", ())], 0)
        self.assertEqual(sink.records(), [])
        # The daemon still works after all that.
        qid = d.submit({"raw": raw_ok})
        self.assertEqual(d.wait_final(qid)["recipients"][0]["state"], "sent")
        self.stop(d)

    def test_metrics_and_raw_extraction(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        st, obj, raw = d.request("GET", "/healthz")
        self.assertEqual((st, obj), (200, {"status": "ok"}), raw)
        m0, _ = parse_prometheus(self, d.metrics())
        self.assertEqual(m0[("missive_delivered_total", ())], 0)
        self.assertEqual(m0[("missive_attempt_duration_seconds_count", ())], 0)
        # A raw message without "recipients": To, Cc and Bcc are the envelope (-t),
        # Bcc is removed.
        tag = unique("extract")
        to, cc, bcc = (p + tag + "@example.test" for p in ("to-", "cc-", "bcc-"))
        raw_msg = raw_message(tag, to=(to,), extra=("Cc: <%s>" % cc, "Bcc: <%s>" % bcc))
        qid = d.submit({"raw": raw_msg})
        info = d.wait_final(qid)
        self.assertEqual(sorted(r["address"] for r in info["recipients"]), sorted([to, cc, bcc]))
        rec = sink.wait_mid("<%s@missive.test>" % tag)
        self.assertEqual(len(rec), 1)
        self.assertEqual(sorted(rec[0]["rcpt_tos"]), sorted([to, cc, bcc]))
        self.assertEqual(rec[0]["mail_from"], "sender@example.test")
        got = sink.message(rec[0])
        self.assertNotIn(b"Bcc:", got)
        self.assertNotIn(bcc.encode(), got)
        self.assertEqual(got, raw_msg.replace("Bcc: <%s>\r\n" % bcc, "").encode())
        # Explicit recipients (and an envelope sender): the header is not consulted.
        tag2 = unique("explicit")
        qid2 = d.submit({"raw": raw_message(tag2, to=("header-only@example.test",)),
                         "recipients": ["env-" + tag2 + "@example.test"],
                         "sender": "bounces@example.test"})
        d.wait_final(qid2)
        rec = sink.wait_mid("<%s@missive.test>" % tag2)
        self.assertEqual(rec[0]["rcpt_tos"], ["env-" + tag2 + "@example.test"])
        self.assertEqual(rec[0]["mail_from"], "bounces@example.test")
        # Counters match what was delivered.
        samples, types = parse_prometheus(self, d.metrics())
        self.assertEqual(types.get("missive_attempt_duration_seconds"), "histogram")
        self.assertEqual(types.get("missive_queue_recipients"), "gauge")
        for name in ("missive_submitted_total", "missive_delivered_total",
                     "missive_deferred_total", "missive_bounced_total", "missive_dead_total",
                     "missive_smtp_connections_opened_total", "missive_http_responses_total"):
            self.assertEqual(types.get(name), "counter", name)
        self.assertEqual(samples[("missive_submitted_total", ())], 2)
        self.assertEqual(samples[("missive_delivered_total", ())], 4)
        self.assertEqual(samples[("missive_deferred_total", ())], 0)
        self.assertEqual(samples[("missive_bounced_total", ())], 0)
        self.assertEqual(samples[("missive_attempt_duration_seconds_count", ())], 2)
        self.assertEqual(samples[("missive_queue_recipients", (("state", "sent"),))], 4)
        self.assertEqual(samples[("missive_queue_recipients", (("state", "queued"),))], 0)
        self.assertEqual(samples[("missive_queue_messages", ())], 2)
        self.assertEqual(samples[("missive_queue_leased", ())], 0)
        self.assertGreaterEqual(samples[("missive_smtp_connections_opened_total", ())], 1)
        # 2 POST, the GETs of wait_final, /healthz (at least 2), one /metrics before.
        self.assertGreaterEqual(samples[("missive_http_responses_total", (("code", "2xx"),))], 7)
        for c in ("1xx", "3xx", "4xx", "5xx"):
            self.assertEqual(samples[("missive_http_responses_total", (("code", c),))], 0, c)
        self.stop(d)

    def test_bearer_token(self):
        sink = self.sink()
        token = "tok-" + base64.b32encode(os.urandom(15)).decode()
        d = self.daemon(self.plain_route(sink), token=token,
                        sections={"http": {"max-body": "16k"}}).start()
        body = {"raw": raw_message(unique("token"))}
        for hdr in (None, "Bearer wrong-" + token, "Bearer " + token[:-1], "Basic " + token,
                    token, "Bearer  " + token, "bearer" + token):
            with self.subTest(header=hdr):
                h = {"Authorization": hdr} if hdr else {}
                for method, path, b in (("POST", "/v1/messages", body),
                                        ("GET", "/v1/messages/0123456789abcdef", None),
                                        ("GET", "/metrics", None)):
                    st, obj, raw = d.request(method, path, b, headers=h, auth=False)
                    self.assertEqual(st, 401, "%s %s: %s" % (method, path, raw))
                    self.assertEqual(obj["error"]["code"], "unauthorized", raw)
        # Without the token the body is not even read: 401, not 413.
        st, obj, raw = d.post({"raw": "x" * 40000}, auth=False)
        self.assertEqual(st, 401, raw)
        self.assertEqual(d.stats()["messages"], 0)
        st, obj, raw = d.request("GET", "/healthz", auth=False)
        self.assertEqual(st, 200, raw)
        st, obj, raw = d.post(body)
        self.assertEqual(st, 202, raw)
        self.assertEqual(d.wait_final(obj["id"])["recipients"][0]["state"], "sent")
        st, text, raw = d.request("GET", "/metrics")
        self.assertEqual(st, 200, raw)
        parse_prometheus(self, text)
        self.assertNotIn(token, d.log_text())
        self.stop(d)

    def test_listen_refusals(self):
        sink = self.sink()
        # Not loopback and no token-file: a configuration error (78), also for --check.
        d = self.daemon(self.plain_route(sink),
                        sections={"http": {"listen": "0.0.0.0:%d" % free_port()}})
        d.start(wait=False)
        rc = d.proc.wait(20)
        self.assertEqual(rc, 78, d.log_text())
        self.assertIn("token-file", d.log_text())
        d.check_log(self)
        # The same refusal for an IPv6 wildcard; a malformed listen value too.
        for listen in ("[::]:%d" % free_port(), "127.0.0.1", "localhost:99999"):
            with self.subTest(listen=listen):
                d = self.daemon(self.plain_route(sink), sections={"http": {"listen": listen}})
                d.start(wait=False)
                self.assertEqual(d.proc.wait(20), 78, d.log_text())
        # The port is taken: 69 (EX_UNAVAILABLE).
        d1 = self.daemon(self.plain_route(sink)).start()
        d2 = self.daemon(self.plain_route(sink), sections={"http": {
            "listen": "127.0.0.1:%d" % d1.port}})
        d2.start(wait=False)
        self.assertEqual(d2.proc.wait(20), 69, d2.log_text())
        self.stop(d1)
        # An empty or missing token file is a configuration error (78).
        d = self.daemon(self.plain_route(sink), token="x")
        with open(os.path.join(d.dir, "http-token"), "w"):
            pass
        d.start(wait=False)
        self.assertEqual(d.proc.wait(20), 78, d.log_text())


# ---------------------------------------------------------------------------- sendmail

class SendmailTest(DaemonTest):

    @classmethod
    def setUpClass(cls):
        cls.sink_ = Sink()
        cls.d = Daemon(DaemonTest.plain_route(cls.sink_), name="sendmail")
        try:
            cls.d.start()
        except BaseException:
            cls.d.kill()
            cls.sink_.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        rc, _ = cls.d.stop()
        cls.sink_.stop()
        if rc != 0:
            raise AssertionError("missived exit %s:\n%s" % (rc, cls.d.log_text()))
        text = cls.d.log_text()
        if CRASH.search(text) or ADDRESS.search(text):
            raise AssertionError("missived log has a sanitizer report or an address:\n" + text)

    def sendmail(self, args, msg, **kw):
        if isinstance(msg, str):
            msg = msg.encode()
        return self.d.cli(["sendmail"] + args, input=msg, **kw)

    def queued(self, args, msg, **kw):
        p = self.sendmail(["--json"] + args, msg, **kw)
        self.assertExit(p, 0)
        return json.loads(p.out)["id"]

    def delivered(self, qid, mid):
        info = self.d.wait_final(qid)
        for r in info["recipients"]:
            self.assertEqual(r["state"], "sent", info)
        recs = self.sink_.wait_mid(mid)
        self.assertEqual(len(recs), 1, recs)
        return recs[0], self.sink_.message(recs[0])

    def test_t_extracts_and_strips_bcc(self):
        tag = unique("sm-t")
        to, cc, bcc, extra = (p + tag + "@example.test" for p in ("to-", "cc-", "bcc-", "arg-"))
        msg = ("From: Sender <sender@example.test>\nTo: To Name <%s>\nCc: %s\n"
               "Bcc: Hidden <%s>,\n  %s\nSubject: -t\nMessage-ID: <%s@missive.test>\n\nbody\n"
               % (to, cc, bcc, "bcc2-" + tag + "@example.test", tag))
        qid = self.queued(["-t", extra], msg)
        rec, got = self.delivered(qid, "<%s@missive.test>" % tag)
        self.assertEqual(sorted(rec["rcpt_tos"]),
                         sorted([to, cc, bcc, "bcc2-" + tag + "@example.test", extra]))
        self.assertEqual(rec["mail_from"], "sender@example.test")
        self.assertNotIn(b"Bcc", got)
        self.assertNotIn(b"bcc", got)
        self.assertIn(b"To: To Name <%s>\r\n" % to.encode(), got)
        self.assertIn(b"Cc: %s\r\n" % cc.encode(), got)
        self.assertTrue(got.endswith(b"\r\n\r\nbody\r\n"), got)
        self.assertRegex(got, rb"(?m)^Date: ")

    def test_duplicate_recipients_get_one_copy(self):
        tag = unique("sm-dup")
        a, b = "dup-" + tag + "@example.test", "Case-" + tag + "@example.test"
        msg = ("From: a@example.test\nTo: %s, %s\nCc: <%s>\nBcc: %s\n"
               "Message-ID: <%s@missive.test>\n\nonce\n" % (a, b, a, a.upper(), tag))
        p = self.sendmail(["--json", "-t", a, a.replace("example.test", "EXAMPLE.test"),
                           b.lower()], msg)
        self.assertExit(p, 0)
        qid = json.loads(p.out)["id"]
        rec, _ = self.delivered(qid, "<%s@missive.test>" % tag)
        # The local part's case counts (RFC 5321 2.4), the domain's does not.
        self.assertEqual(sorted(rec["rcpt_tos"]), sorted([a, b, a.upper(), b.lower()]))
        self.assertEqual(json.loads(p.out)["recipients"], 4)
        tag = unique("http-dup")
        st, obj, raw = self.d.post({"from": "a@example.test", "to": [a, a], "cc": a,
                                    "bcc": a.replace("example", "EXAMPLE"), "subject": "dup",
                                    "text": "once", "message_id": "<%s@missive.test>" % tag})
        self.assertEqual((st, obj.get("recipients")), (202, 1), raw)
        rec, _ = self.delivered(obj["id"], "<%s@missive.test>" % tag)
        self.assertEqual(rec["rcpt_tos"], [a])

    def test_f_F_and_explicit_recipients(self):
        tag = unique("sm-f")
        rcpt = "env-" + tag + "@example.test"
        # Explicit recipients: the To field is not the envelope.
        msg = "To: header-%s@example.test\nSubject: -f\nMessage-ID: <%s@missive.test>\n\nhi\n" % (
            tag, tag)
        qid = self.queued(["-f", "bounces-" + tag + "@example.test", "-F", "Jane Q. Doe",
                           rcpt], msg)
        rec, got = self.delivered(qid, "<%s@missive.test>" % tag)
        self.assertEqual(rec["rcpt_tos"], [rcpt])
        self.assertEqual(rec["mail_from"], "bounces-" + tag + "@example.test")
        # No From in the message: added from -F and -f.
        self.assertIn(b'From: "Jane Q. Doe" <bounces-%s@example.test>\r\n' % tag.encode(), got)
        # -fADDR glued, -r, -oi and ignored compatibility flags.
        tag = unique("sm-f2")
        msg = "From: x@example.test\nSubject: s\nMessage-ID: <%s@missive.test>\n\n.\nafter\n" % tag
        qid = self.queued(["-fglued-%s@example.test" % tag, "-oi", "-odi", "-oem", "--", rcpt],
                          msg)
        rec, got = self.delivered(qid, "<%s@missive.test>" % tag)
        self.assertEqual(rec["mail_from"], "glued-%s@example.test" % tag)
        self.assertTrue(got.endswith(b"\r\n\r\n.\r\nafter\r\n"), got)
        # -f '<>': the null sender.
        tag = unique("sm-null")
        qid = self.queued(["-f", "<>", rcpt],
                          "From: x@example.test\nMessage-ID: <%s@missive.test>\n\nnull\n" % tag)
        rec, _ = self.delivered(qid, "<%s@missive.test>" % tag)
        self.assertEqual(rec["mail_from"], "")

    def test_no_final_newline_and_dot_lines(self):
        tag = unique("sm-nonl")
        head = "From: a@example.test\nTo: b@example.test\nMessage-ID: <%s@missive.test>\n\n" % tag
        qid = self.queued(["-t"], head + "line one\nno newline at the end")
        _, got = self.delivered(qid, "<%s@missive.test>" % tag)
        self.assertTrue(got.endswith(b"\r\n\r\nline one\r\nno newline at the end\r\n"), got)
        # Without -i a lone "." ends the input; the rest is not part of the message.
        for flags, rest_kept in (([], False), (["-i"], True), (["-oi"], True)):
            with self.subTest(flags=flags):
                tag = unique("sm-dot")
                head = ("From: a@example.test\nTo: b@example.test\n"
                        "Message-ID: <%s@missive.test>\n\n" % tag)
                qid = self.queued(["-t"] + flags, head + "before\n.\nafter the dot\n")
                _, got = self.delivered(qid, "<%s@missive.test>" % tag)
                want = b"before\r\n.\r\nafter the dot\r\n" if rest_kept else b"before\r\n"
                self.assertTrue(got.endswith(b"\r\n\r\n" + want), got)
        # ".\r\n" and a final "." without newline end it too.
        for ending in (".\r\nrest\r\n", "."):
            with self.subTest(ending=ending):
                tag = unique("sm-dot2")
                head = ("From: a@example.test\nTo: b@example.test\n"
                        "Message-ID: <%s@missive.test>\n\n" % tag)
                qid = self.queued(["-t"], head + "text\n" + ending)
                _, got = self.delivered(qid, "<%s@missive.test>" % tag)
                self.assertTrue(got.endswith(b"\r\n\r\ntext\r\n"), got)

    def test_exit_codes_queue_nothing(self):
        ok = "From: a@example.test\nTo: b@example.test\nSubject: x\n\nbody\n"
        cases = [
            ("no recipients", [], ok, 64),
            ("-t without To", ["-t"], "From: a@example.test\nSubject: x\n\nbody\n", 64),
            ("malformed recipient", ["not an address"], ok, 65),
            ("malformed To with -t", ["-t"], "From: a@example.test\nTo: bad address\n\nx\n", 65),
            ("malformed -f", ["-f", "a@@example.test", "b@example.test"], ok, 65),
            ("CRLF in recipient", ["x@example.test\r\nRCPT TO:<evil@example.test>"], ok, 65),
            ("LF in recipient", ["x@example.test\nevil@example.test"], ok, 65),
            ("CRLF in -f", ["-f", "a@example.test\r\nx", "b@example.test"], ok, 65),
            ("LF in -F", ["-F", "Name\nBcc: evil@example.test", "b@example.test"],
             "Subject: no from\n\nbody\n", 65),
            ("NUL in body", ["-t"], ok.encode() + b"ab\0cd\nnext\n", 65),
            ("NUL in header", ["-t"], b"From: a@example.test\nTo: b@exa\0mple.test\n\nx\n", 65),
            ("999-octet line", ["-t"], ok + "y" * 999 + "\n", 65),
            ("999-octet header", ["-t"], "X-Long: " + "z" * 991 + "\n" + ok, 65),
            ("not a header", ["-t"], "From: a@example.test\nthis is no header\n\nx\n", 65),
            ("unknown option", ["-Q", "b@example.test"], ok, 64),
            ("-bp mode", ["-bp"], ok, 64),
            ("-f without value", ["-f"], ok, 64),
        ]
        for name, args, msg, code in cases:
            with self.subTest(case=name):
                before = self.d.stats()
                p = self.sendmail(args, msg)
                self.assertExit(p, code)
                self.assertEqual(p.out, "", describe(p))
                self.assertTrue(p.err.strip(), "no error message: " + describe(p))
                self.assertEqual(len(p.err.strip().splitlines()), 1, describe(p))
                self.assertEqual(self.d.stats(), before, "%s queued something" % name)
        # Configuration: missing file, and one with an unknown key.
        bad = os.path.join(self.d.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[queue]\npath = %s\ncolour = blue\n" % self.d.queue)
        before = self.d.stats()
        for cfg in (os.path.join(self.d.dir, "missing.conf"), bad):
            with self.subTest(config=cfg):
                p = self.d.cli(["sendmail", "--config", cfg, "b@example.test"],
                               input=ok.encode(), config=False)
                self.assertExit(p, 78)
                self.assertIn(cfg, p.err)
                p = self.d.cli(["sendmail", "b@example.test"], input=ok.encode(), config=False,
                               env={"MISSIVE_CONFIG": cfg})
                self.assertExit(p, 78)
        self.assertEqual(self.d.stats(), before)

    def test_suppressed_recipient(self):
        tag = unique("sm-supp")
        rcpt = "Blocked-" + tag + "@Example.TEST"
        p = self.d.cli(["suppression", "add", rcpt, "--reason", "test"])
        self.assertExit(p, 0)
        try:
            before = self.d.stats()
            msg = "From: a@example.test\nTo: %s\nMessage-ID: <%s@missive.test>\n\nx\n" % (
                "ok-" + tag + "@example.test", tag)
            p = self.sendmail(["-t", rcpt.lower()], msg)
            self.assertExit(p, 77)
            self.assertIn("suppression", p.err)
            self.assertEqual(self.d.stats(), before)
            st, obj, raw = self.d.post({"raw": msg, "recipients": [rcpt.upper()]})
            self.assertEqual((st, obj["error"]["code"]), (403, "suppressed"), raw)
            self.assertEqual(self.d.stats(), before)
            qid = self.queued(["-t", "--allow-suppressed", rcpt], msg)
            rec, _ = self.delivered(qid, "<%s@missive.test>" % tag)
            self.assertIn(rcpt, rec["rcpt_tos"])
        finally:
            self.d.cli(["suppression", "rm", rcpt])

    def test_symlink_named_sendmail(self):
        link = os.path.join(self.d.dir, "sendmail")
        if not os.path.lexists(link):
            os.symlink(G["bin"], link)
        tag = unique("sm-link")
        msg = ("From: a@example.test\nTo: link-%s@example.test\nBcc: hidden-%s@example.test\n"
               "Message-ID: <%s@missive.test>\n\nvia the link\n.\nnot part\n" % (tag, tag, tag))
        # As PHP and cron call it: no --config, MISSIVE_CONFIG in the environment.
        p = self.d.cli(["-t", "-f", "php-%s@example.test" % tag], input=msg.encode(), exe=link,
                       config=False, env={"MISSIVE_CONFIG": self.d.cfg})
        self.assertExit(p, 0)
        self.assertEqual(p.out, "")
        rec = self.sink_.wait_mid("<%s@missive.test>" % tag)[0]
        self.assertEqual(sorted(rec["rcpt_tos"]),
                         ["hidden-%s@example.test" % tag, "link-%s@example.test" % tag])
        self.assertEqual(rec["mail_from"], "php-%s@example.test" % tag)
        got = self.sink_.message(rec)
        self.assertNotIn(b"hidden-", got)
        self.assertTrue(got.endswith(b"\r\n\r\nvia the link\r\n"), got)
        p = self.d.cli(["b@example.test"], input=b"x\n", exe=link, config=False,
                       env={"MISSIVE_CONFIG": os.path.join(self.d.dir, "nope.conf")})
        self.assertExit(p, 78)


class SendmailWithoutDaemonTest(DaemonTest):

    def test_queued_while_daemon_down_then_delivered(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink))
        mids, qids = [], []
        for i in range(3):
            tag = unique("down")
            p = d.cli(["sendmail", "-t", "-v"], input=(
                "From: a@example.test\nTo: r%d@example.test\nMessage-ID: <%s@missive.test>\n\n"
                "queued while missived is down\n" % (i, tag)).encode())
            self.assertExit(p, 0)
            self.assertRegex(p.out, r"^queued as [0-9a-f]{16} for 1 recipient\n$")
            qids.append(p.out.split()[2])
            mids.append("<%s@missive.test>" % tag)
        st = d.stats()
        self.assertEqual((st["messages"], st["recipients"]["queued"]), (3, 3), st)
        ls = d.cli_json(["queue", "ls"])
        self.assertEqual(sorted(m["id"] for m in ls), sorted(qids))
        self.assertEqual(sink.records(), [])
        d.start()
        for qid in qids:
            self.assertEqual(d.wait_final(qid)["recipients"][0]["state"], "sent")
        self.assertEqual(sorted(r["message_id"] for r in sink.records()), sorted(mids))
        self.assertEqual(d.cli_json(["queue", "ls"]), [])
        self.stop(d)


# ------------------------------------------------------------------- submission socket

def wire_parse(data):
    """[(name, value)] of a reply, up to and including its end field; strict."""
    out, off = [], 0
    while True:
        nl = data.index(b"\n", off)
        name, n = data[off:nl].decode().split(" ")
        n = int(n)
        val = data[nl + 1:nl + 1 + n]
        if len(val) != n or data[nl + 1 + n:nl + 2 + n] != b"\n":
            raise AssertionError("malformed reply %r" % data)
        out.append((name, val.decode(errors="replace")))
        off = nl + 2 + n
        if name == "end":
            if off != len(data):
                raise AssertionError("octets after the end field: %r" % data)
            return out


class FakeMissived:
    """A listener on a submission socket path that reads one request whole and
    answers it with reply (bytes; None: closes without a word)."""

    def __init__(self, path, reply):
        self.path, self.reply, self.requests = path, reply, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(CMD_TIMEOUT)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
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
                self.requests.append(data)
                if self.reply is not None:
                    c.sendall(self.reply)
            except OSError:
                pass

    def close(self):
        self.thread.join(CMD_TIMEOUT)
        self.sock.close()
        if os.path.lexists(self.path):
            os.unlink(self.path)


SYSEXITS = range(64, 79)
QID = re.compile(r"\b[0-9a-f]{16}\b")


class SubmitSocketTest(DaemonTest):
    """missived's submission socket ([daemon] socket) and `missive sendmail` through it.
    The unprivileged user (nobody) cannot open the root-owned 0600 queue, so what it
    gets queued went through the socket; missive_submitted_total counts what missived
    accepted (the socket, HTTP), not what sendmail wrote into the queue itself."""

    @classmethod
    def setUpClass(cls):
        # nobody runs a copy: the build tree may lie under a mode-0700 /root.
        cls.nobody = as_user("nobody")
        cls.nobody_bin = runnable_copy(G["bin"], "nobody")
        check(run([cls.nobody_bin, "--version"], **cls.nobody), "missive --version as nobody")

    # ---- helpers ----
    @staticmethod
    def sock(d):
        return os.path.join(d.dir, "submit.sock")

    def sendmail(self, d, args, msg, user=False, cfg=None):
        if isinstance(msg, str):
            msg = msg.encode("latin-1")
        kw = self.nobody if user else {}
        exe = self.nobody_bin if user else G["bin"]
        p = subprocess.run([exe, "sendmail", "--config", cfg or d.cfg] + list(args),
                           input=msg, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT, **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return p

    def queued(self, d, args, msg, **kw):
        p = self.sendmail(d, ["--json"] + list(args), msg, **kw)
        self.assertExit(p, 0)
        obj = json.loads(p.out)
        self.assertEqual(set(obj), {"id", "recipients"}, p.out)
        self.assertRegex(obj["id"], r"^[0-9a-f]{16}$")
        return obj["id"]

    @staticmethod
    def submitted(d):
        return int(re.search(r"(?m)^missive_submitted_total (\d+)$", d.metrics()).group(1))

    @staticmethod
    def msg(tag, to=None, body="hi\n", head=""):
        return ("From: a@example.test\nTo: %s\nSubject: socket %s\n"
                "Date: Sat, 28 Nov 2026 06:00:00 +0000\nMessage-ID: <%s@missive.test>\n%s\n%s"
                % (to or "r-%s@example.test" % tag, tag, tag, head, body))

    def delivered(self, d, sink, qid, tag):
        info = d.wait_final(qid)
        for r in info["recipients"]:
            self.assertEqual(r["state"], "sent", info)
        recs = sink.wait_mid("<%s@missive.test>" % tag)
        self.assertEqual(len(recs), 1, recs)
        return recs[0], sink.message(recs[0])

    def assertSocket(self, path, mode):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % path)
        self.assertEqual(stat.S_IMODE(st.st_mode), mode, oct(st.st_mode))

    def assertRefused(self, p, d):
        """sendmail as nobody without the socket: the queue is not writable for it."""
        self.assertIn(p.returncode, SYSEXITS, describe(p))
        self.assertNotRegex(p.err, CRASH, describe(p))
        self.assertIn(d.queue, p.err, describe(p))
        self.assertEqual(p.out, "", describe(p))

    def stored(self, d, qid, tag):
        """The queue's row of qid (and its recipients), tag replaced by TAG and qid
        (the default ENVID) by QID."""
        db = sqlite3.connect("file:%s?mode=ro" % d.queue, uri=True)
        try:
            row = db.execute("SELECT sender, route, message_id, dsn_notify, dsn_ret, envid, "
                             "body_8bit, smtputf8, size, body FROM messages WHERE qid = ?",
                             (qid,)).fetchone()
            rcpts = [r[0] for r in db.execute(
                "SELECT address FROM recipients WHERE msg = (SELECT id FROM messages "
                "WHERE qid = ?) ORDER BY address", (qid,))]
        finally:
            db.close()
        self.assertIsNotNone(row, qid)
        t = tag.encode()
        return tuple(v.replace(tag, "TAG").replace(qid, "QID") if isinstance(v, str) else
                     v.replace(t, b"TAG") if isinstance(v, bytes) else v for v in row) + \
            (sorted(r.replace(tag, "TAG") for r in rcpts),)

    # ---- tests ----
    def test_unprivileged_user_submits_through_socket(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        self.assertSocket(self.sock(d), 0o666)
        for f in (d.queue, d.queue + "-wal", d.queue + "-shm"):
            if os.path.exists(f):
                os.chmod(f, 0o600)
        st = os.stat(d.queue)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600))
        tag = unique("nobody")
        qid = self.queued(d, ["-t"], self.msg(tag), user=True)
        rec, _ = self.delivered(d, sink, qid, tag)
        self.assertEqual(rec["rcpt_tos"], ["r-%s@example.test" % tag])
        tag = unique("nobody-v")
        p = self.sendmail(d, ["-v", "-f", "nb-%s@example.test" % tag, "x-%s@example.test" % tag,
                              "y-%s@example.test" % tag], self.msg(tag), user=True)
        self.assertExit(p, 0)
        self.assertRegex(p.out, r"^queued as [0-9a-f]{16} for 2 recipients\n$")
        rec, _ = self.delivered(d, sink, p.out.split()[2], tag)
        self.assertEqual(rec["mail_from"], "nb-%s@example.test" % tag)
        self.assertEqual(self.submitted(d), 2)
        # The audit trail names the submitter by uid, never by address.
        self.assertIn("%s: queued by uid %d through the socket, 1 recipient\n" % (qid, self.nobody["user"]),
                      d.log_text())
        self.stop(d)
        # missived stopped: nobody has no way into the queue.
        self.assertFalse(os.path.lexists(self.sock(d)))
        before = d.stats()
        p = self.sendmail(d, ["-t"], self.msg(unique("nobody-down")), user=True)
        self.assertRefused(p, d)
        self.assertEqual(d.stats(), before)
        self.assertEqual(stat.S_IMODE(os.stat(d.queue).st_mode), 0o600)

    def test_unprivileged_user_without_daemon_gets_75(self):
        # missived is down and this user may not write the queue: 75, try
        # again later (issue 12), not 73 nor a configuration error.
        d = self.daemon({"server": "127.0.0.1:9", "tls": "none"})
        self.queued(d, ["-t"], self.msg(unique("root-direct")))
        os.chmod(d.queue, 0o600)
        p = self.sendmail(d, ["-t"], self.msg(unique("nobody-direct")), user=True)
        self.assertRefused(p, d)
        self.assertEqual(p.returncode, 75, describe(p))
        self.assertRegex(p.err, r"(?i)permission denied|not writable", describe(p))
        self.assertEqual(d.stats()["messages"], 1)

    def test_socket_mode_0600(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink), sections={"daemon": {"socket-mode": "0600"}})
        d.start()
        self.assertSocket(self.sock(d), 0o600)
        p = self.sendmail(d, ["-t"], self.msg(unique("nobody-0600")), user=True)
        self.assertRefused(p, d)
        self.assertEqual(self.submitted(d), 0)
        self.assertEqual(d.stats()["messages"], 0)
        tag = unique("root-0600")
        qid = self.queued(d, ["-t"], self.msg(tag))
        self.assertEqual(self.submitted(d), 1)
        self.delivered(d, sink, qid, tag)
        self.stop(d)

    def test_stale_socket_after_kill(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        path = self.sock(d)
        d.kill()
        self.assertSocket(path, 0o666)      # left behind: nobody listens there
        tag1 = unique("stale")
        p = self.sendmail(d, ["-t", "-v"], self.msg(tag1))
        self.assertExit(p, 0)               # straight into the queue
        self.assertRegex(p.out, r"^queued as [0-9a-f]{16} for 1 recipient\n$")
        self.assertEqual(p.err, "")
        qid1 = p.out.split()[2]
        self.assertEqual(d.stats()["recipients"]["queued"], 1)
        d.start()
        self.assertEqual(len(re.findall(r"started: .*submission socket %s\n" % re.escape(path),
                                        d.log_text())), 2, d.log_text())
        self.assertSocket(path, 0o666)
        self.delivered(d, sink, qid1, tag1)
        self.assertEqual(self.submitted(d), 0)
        tag2 = unique("after-stale")
        qid2 = self.queued(d, ["-t"], self.msg(tag2), user=True)
        self.assertEqual(self.submitted(d), 1)
        self.delivered(d, sink, qid2, tag2)
        self.stop(d)

    def test_refuses_live_socket_and_non_socket(self):
        sink = self.sink()
        d1 = self.daemon(self.plain_route(sink)).start()
        path = self.sock(d1)
        d2 = self.daemon(self.plain_route(sink), sections={"daemon": {"socket": path}})
        d2.start(wait=False)
        self.assertEqual(d2.proc.wait(20), 69, d2.log_text())
        self.assertIn(path, d2.log_text())
        d2.check_log(self)
        # The first one's socket is untouched and still answers.
        self.assertSocket(path, 0o666)
        tag = unique("live")
        qid = self.queued(d1, ["-t"], self.msg(tag), user=True)
        self.assertEqual(self.submitted(d1), 1)
        self.delivered(d1, sink, qid, tag)
        # A file that is not a socket is left alone.
        d3 = self.daemon(self.plain_route(sink))
        regular = os.path.join(d3.dir, "submit.sock")
        with open(regular, "w") as f:
            f.write("precious\n")
        d3.start(wait=False)
        self.assertEqual(d3.proc.wait(20), 69, d3.log_text())
        self.assertIn(regular, d3.log_text())
        d3.check_log(self)
        self.assertEqual(read(regular), "precious\n")
        self.stop(d1)

    def test_sigterm_removes_socket_empty_disables(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        self.assertSocket(self.sock(d), 0o666)
        self.stop(d)
        self.assertFalse(os.path.lexists(self.sock(d)))
        d = self.daemon(self.plain_route(sink), sections={"daemon": {"socket": ""}}).start()
        self.assertRegex(d.log_text(), r"started: .*, no submission socket\n")
        self.assertFalse(os.path.lexists(self.sock(d)))
        self.assertEqual(os.listdir(d.dir).count("submit.sock"), 0)
        tag = unique("nosock")
        qid = self.queued(d, ["-t"], self.msg(tag))
        self.assertEqual(self.submitted(d), 0)      # written by sendmail itself
        self.delivered(d, sink, qid, tag)
        self.stop(d)

    def test_socket_wakes_workers(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink),
                        sections={"daemon": {"poll-interval": "30s"}}).start()
        time.sleep(0.5)                     # past the workers' first look at the queue
        for user in (False, True):
            tag = unique("wake")
            t0 = time.monotonic()
            self.queued(d, ["-t"], self.msg(tag), user=user)
            sink.wait_mid("<%s@missive.test>" % tag, timeout=10)
            self.assertLess(time.monotonic() - t0, 5, "not woken: waited for the poll")
        self.assertEqual(self.submitted(d), 2)
        self.stop(d)

    def test_protocol_errors(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        path = self.sock(d)
        ok = self.msg("unused").encode()
        head = wire_field("missive-submit", "1")
        cases = [
            ("not framed", b"garbage\n", "field name"),
            ("HTTP", b"GET / HTTP/1.0\r\n\r\n", "field name"),
            ("other protocol", wire_field("hello", "1") + wire_field("message", ok)
             + wire_field("end", ""), "missive-submit"),
            ("version 2", wire_field("missive-submit", "2") + wire_field("message", ok)
             + wire_field("end", ""), "version 1"),
            ("unknown field", wire_request(ok, ("colour", "blue")), "colour"),
            ("NUL in rcpt", wire_request(ok, ("rcpt", "a@exa\0mple.test")), "rcpt.*NUL"),
            ("sender twice", wire_request(ok, ("sender", "a@example.test"),
                                          ("sender", "b@example.test")), "sender.*twice"),
            ("bad extract", wire_request(ok, ("extract", "yes")), "extract"),
            ("no message", head + wire_field("rcpt", "a@example.test") + wire_field("end", ""),
             "message"),
            ("field after the message", head + wire_field("message", ok)
             + wire_field("rcpt", "a@example.test") + wire_field("end", ""), "after"),
            ("octets after the end", wire_request(ok, ("extract", "1")) + b"x", "after"),
            ("no line end after a value", head + b"message 2\nabX", "line end"),
            ("10-digit length", head + b"message 1234567890\n", "length"),
            ("length over the maximum", head + b"message 999999999\n", "more than"),
            ("name too long", b"a" * 40 + b" 1\nx\n", "field name"),
        ]
        for name, data, why in cases:
            with self.subTest(case=name):
                fields = wire_parse(wire_call(path, data))
                self.assertEqual([f[0] for f in fields], ["rc", "error", "end"], fields)
                self.assertEqual(fields[0][1], "76", fields)
                self.assertRegex(fields[1][1], r"^bad submission: .*%s" % why, fields)
                self.assertNotIn("\n", fields[1][1])
        # Half a request, a connection closed at once, most of a huge one: no answer,
        # nothing queued, and the daemon carries on.
        for name, data in (("half a request", head + wire_field("rcpt", "a@example.test")
                            + b"message 100\nFrom: a@"),
                           ("nothing", b""),
                           ("huge, cut short", head + b"message 104857600\n" + b"x" * 300000)):
            with self.subTest(case=name):
                self.assertEqual(wire_call(path, data), b"")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(head + b"message 50\n")
        s.close()
        self.assertEqual(d.stats()["messages"], 0)
        # A well-formed request from a raw client.
        tag = unique("raw")
        fields = wire_parse(wire_call(path, wire_request(
            self.msg(tag).encode(), ("sender", "raw-%s@example.test" % tag),
            ("rcpt", "one-%s@example.test" % tag), ("rcpt", "two-%s@example.test" % tag))))
        self.assertEqual([f[0] for f in fields], ["rc", "id", "recipients", "end"], fields)
        self.assertEqual((fields[0][1], fields[2][1]), ("0", "2"), fields)
        rec, _ = self.delivered(d, sink, fields[1][1], tag)
        self.assertEqual(rec["mail_from"], "raw-%s@example.test" % tag)
        # And sendmail still works.
        tag = unique("after-junk")
        self.delivered(d, sink, self.queued(d, ["-t"], self.msg(tag), user=True), tag)
        self.assertEqual(self.submitted(d), 2)
        self.stop(d)

    def test_nul_and_8bit_through_socket(self):
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        # As nobody, who cannot write the queue: the answers are missived's.
        for name, msg in (("body", self.msg(unique("nul"), body="ab\0cd\nnext\n")),
                          ("header", self.msg(unique("nul"), head="X-Nul: a\0b\n"))):
            with self.subTest(nul_in=name):
                p = self.sendmail(d, ["-t"], msg, user=True)
                self.assertExit(p, 65)
                self.assertIn("NUL", p.err)
                self.assertEqual(len(p.err.strip().splitlines()), 1, describe(p))
        self.assertEqual(d.stats()["messages"], 0)
        tag = unique("latin1")
        raw = ("From: Andr\xe9 <a@example.test>\r\nTo: r-%s@example.test\r\n"
               "Subject: 8-bit %s\r\nDate: Sat, 28 Nov 2026 06:00:00 +0000\r\n"
               "Message-ID: <%s@missive.test>\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 cr\xe8me br\xfbl\xe9e, "
               "\xff\xfe\xa0\x80\x81\r\n.leading dot\r\nlast\r\n"
               % (tag, tag, tag)).encode("latin-1")
        qid = self.queued(d, ["-t"], raw, user=True)
        _, got = self.delivered(d, sink, qid, tag)
        # Unchanged but for the mark of a From that nobody wrote (issue 12).
        self.assertRegex(got, rb"^X-Authentication-Warning: [^\r\n]+: nobody set From: to "
                              rb"a@example\.test\r\n")
        self.assertEqual(got[got.index(b"\r\n") + 2:], raw)
        self.assertEqual(self.submitted(d), 1)
        self.stop(d)

    def test_config_errors(self):
        d = self.daemon({"server": "127.0.0.1:9", "tls": "none"}, name="sockcfg")
        with open(d.cfg) as f:
            base = f.read()

        def with_daemon_keys(text):
            with open(d.cfg, "w") as f:
                f.write(base.replace("[daemon]\n", "[daemon]\n" + text, 1))

        def path_of(n):
            p = os.path.join(G["root"], "s")
            return p + "x" * (n - len(p))
        for n, code in ((107, 0), (108, 78), (120, 78)):
            with self.subTest(length=n):
                with_daemon_keys("socket = %s\n" % path_of(n))
                p = d.cli(["--check"], exe=G["daemon"])
                self.assertExit(p, code)
                if code:
                    self.assertIn("%s:" % d.cfg, p.err)
                    self.assertIn("[daemon] socket", p.err)
        # 120 octets: missived does not start, sendmail does not read the message.
        with_daemon_keys("socket = %s\n" % path_of(120))
        d.start(wait=False)
        self.assertEqual(d.proc.wait(20), 78, d.log_text())
        self.assertIn("[daemon] socket", d.log_text())
        d.check_log(self)
        p = self.sendmail(d, ["-t"], self.msg(unique("cfg")))
        self.assertExit(p, 78)
        self.assertIn("[daemon] socket", p.err)
        for mode in ("999", "0o666", "rw-rw-rw-", "01777", "-1", ""):
            with self.subTest(mode=mode):
                with_daemon_keys("socket-mode = %s\n" % mode)
                p = d.cli(["--check"], exe=G["daemon"])
                self.assertExit(p, 78)
                self.assertIn("socket-mode", p.err)
                p = self.sendmail(d, ["-t"], self.msg(unique("cfg")))
                self.assertExit(p, 78)
                self.assertIn("socket-mode", p.err)
        with_daemon_keys("socket-mode = 999\n")
        d.start(wait=False)
        self.assertEqual(d.proc.wait(20), 78, d.log_text())
        self.assertIn("socket-mode", d.log_text())
        d.check_log(self)

    def test_flags_same_as_direct(self):
        """Each case through the socket and, with `socket =` empty, straight into the
        queue: the same exit code, output, error, queue row and delivered message."""
        sink = self.sink()
        d = self.daemon(self.plain_route(sink)).start()
        direct = os.path.join(d.dir, "direct.conf")
        with open(d.cfg) as f, open(direct, "w") as g:
            g.write(f.read().replace("[daemon]\n", "[daemon]\nsocket =\n", 1))
        date = "Date: Sat, 28 Nov 2026 06:00:00 +0000\n"
        full = ("From: Sender <s-TAG@example.test>\nTo: To <to-TAG@example.test>\n"
                "Cc: cc-TAG@example.test\nBcc: Hidden <bcc-TAG@example.test>\nSubject: t\n" + date
                + "Message-ID: <TAG@missive.test>\n\nbody\n.\nafter\n")
        no_from = ("To: x@example.test\nSubject: f\n" + date
                   + "Message-ID: <TAG@missive.test>\n\nhi\n")
        cases = [
            ("-t --json", ["-t", "--json", "-i", "arg-TAG@example.test"], full, 0),
            ("-t -v", ["-t", "-v"], full, 0),
            ("-f -F -v", ["-f", "bounces-TAG@example.test", "-F", "Jane Q. Doe", "-v",
                          "r-TAG@example.test"], no_from, 0),
            ("-N -R -V", ["-N", "success,failure", "-R", "hdrs", "-V", "ENV-TAG", "--json",
                          "-t"], full, 0),
            ("-N never, -f <>", ["-N", "never", "-f", "<>", "-v", "r-TAG@example.test"], full, 0),
            ("-fglued -oi", ["-fglued-TAG@example.test", "-oi", "-odi", "--json",
                             "r-TAG@example.test"], full, 0),
            ("-r", ["-r", "r-TAG@example.test", "-v", "r2-TAG@example.test"], full, 0),
            ("bad -N", ["-N", "sometimes", "r@example.test"], full, 64),
            ("bad -R", ["-R", "most", "r@example.test"], full, 64),
            ("bad -V", ["-V", "has space", "r@example.test"], full, 64),
            ("-t without To", ["-t"], "From: a@example.test\nSubject: x\n\nbody\n", 64),
            ("bad recipient", ["--json", "not an address"], full, 65),
            ("bad -f", ["-f", "a@@example.test", "r@example.test"], full, 65),
            ("CRLF in -F", ["-F", "N\r\nBcc: e@example.test", "r@example.test"], no_from, 65),
            ("999-octet line", ["-t", "-i"], full + "y" * 999 + "\n", 65),
            ("empty message", ["-v", "r-TAG@example.test"], "", 0),    # all generated
        ]
        for name, args, template, code in cases:
            with self.subTest(case=name):
                got = {}
                for via, cfg in (("socket", d.cfg), ("direct", direct)):
                    tag = os.urandom(8).hex()
                    before = self.submitted(d)
                    p = self.sendmail(d, [a.replace("TAG", tag) for a in args],
                                      template.replace("TAG", tag), cfg=cfg)
                    self.assertNotRegex(p.err, CRASH, describe(p))
                    self.assertEqual(self.submitted(d) - before,
                                     1 if via == "socket" and p.returncode == 0 else 0)
                    out = QID.sub("QID", p.out.replace(tag, "TAG"))
                    res = [p.returncode, out, p.err.replace(tag, "TAG")]
                    if p.returncode == 0 and "<TAG@missive.test>" in template:
                        qid = QID.search(p.out).group(0)
                        res.append(self.stored(d, qid, tag))
                        rec, msg = self.delivered(d, sink, qid, tag)
                        res += [rec["mail_from"].replace(tag, "TAG"),
                                sorted(r.replace(tag, "TAG") for r in rec["rcpt_tos"]),
                                msg.replace(tag.encode(), b"TAG")]
                    got[via] = res
                self.assertEqual(got["socket"], got["direct"])
                self.assertEqual(got["socket"][0], code, got["socket"])
                if code:
                    self.assertEqual(got["socket"][1], "")
                    self.assertEqual(len(got["socket"][2].strip().splitlines()), 1, got)
                elif "--json" in args:
                    self.assertRegex(got["socket"][1], r'^\{"id": "QID", "recipients": \d+\}\n$')
                elif "-v" in args:
                    self.assertRegex(got["socket"][1], r"^queued as QID for \d+ recipients?\n$")
        self.stop(d)

    def test_sendmail_falls_back_when_missived_does_not_answer(self):
        d = self.daemon({"server": "127.0.0.1:9", "tls": "none"})
        path = self.sock(d)
        for name, reply, code, err in (
                ("closes without a word", None, 0, r"^$"),
                ("answers junk", b"junk\n", 0, r"missived's answer: .*writing the queue directly"),
                ("answers without rc", wire_field("id", "0123456789abcdef") + wire_field("end", ""),
                 0, r"writing the queue directly"),
                # 75, busy: written into the queue here instead (issue 12).
                ("answers 75", wire_field("rc", "75") + wire_field("error", "busy\x1b[31m\nnow")
                 + wire_field("end", ""), 0, r"^$")):
            with self.subTest(case=name):
                fake = FakeMissived(path, reply)
                try:
                    before = d.stats()["messages"] if os.path.exists(d.queue) else 0
                    tag = unique("fake")
                    p = self.sendmail(d, ["-t", "-f", "s-%s@example.test" % tag],
                                      self.msg(tag))
                finally:
                    fake.close()
                self.assertExit(p, code)
                self.assertRegex(p.err, err, describe(p))
                self.assertEqual(len(fake.requests), 1)
                req = fake.requests[0]
                self.assertTrue(req.startswith(b"missive-submit 1\n1\n"), req)
                self.assertIn(wire_field("sender", "s-%s@example.test" % tag), req)
                self.assertIn(wire_field("extract", "1"), req)
                self.assertIn(wire_field("message", self.msg(tag)), req)
                self.assertTrue(req.endswith(b"\nend 0\n\n"), req)
                # Not answered: written into the queue here.  Answered: not.
                self.assertEqual(d.stats()["messages"] - before, 0 if code else 1)

    def test_idle_client_does_not_delay_sigterm(self):
        # A client that sends nothing, or half a request, is cut off at
        # SIGTERM instead of holding missived for the socket's 60 s timeout.
        sink = self.sink()
        d = self.daemon(self.plain_route(sink), sections={"daemon": {"grace": "2s"}}).start()
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(self.sock(d))
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        half.connect(self.sock(d))
        half.sendall(wire_field("missive-submit", "1") + b"message 100\nFrom: ")
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            try:
                rc = d.proc.wait(10)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.monotonic() - t0
        finally:
            idle.close()
            half.close()
        if rc is None:
            d.kill()
        self.assertEqual(rc, 0, "missived still running %.1f s after SIGTERM with an idle "
                                "client on its socket" % took)
        self.assertLess(took, 5)
        self.assertFalse(os.path.lexists(self.sock(d)))
        d.check_log(self)

    def test_full_socket_does_not_hold_sendmail(self):
        # 128 connections held open (by root: no per-uid limit) fill missived's
        # slots; the next sendmail is answered 75 at once and writes the queue
        # itself instead of waiting in the backlog.
        d = self.daemon({"server": "127.0.0.1:9", "tls": "none"}).start()
        held = []
        try:
            for _ in range(128):
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.connect(self.sock(d))
                held.append(c)
            time.sleep(0.3)
            t0 = time.monotonic()
            self.queued(d, ["-t"], self.msg(unique("full")))
            self.assertLess(time.monotonic() - t0, 10)
            self.assertEqual(self.submitted(d), 0)
        finally:
            for c in held:
                c.close()
        self.assertEqual(d.stats()["messages"], 1)

        def through_socket():  # once the held connections' threads are gone
            self.queued(d, ["-t"], self.msg(unique("after")))
            return self.submitted(d) >= 1
        wait_for(through_socket, 10, "a sendmail through the freed socket", interval=0.2)
        self.stop(d)
        d.check_log(self)


# ------------------------------------------------------------------------------ config

class ConfigTest(DaemonTest):

    def check(self, d, text, *args):
        with open(d.cfg, "w") as f:
            f.write(text)
        return d.cli(["--check"] + list(args), exe=G["daemon"])

    def test_errors_name_file_and_line(self):
        d = Daemon({"server": "127.0.0.1:25", "tls": "none"}, name="config")
        q = "[queue]\npath = %s\n" % d.queue
        cases = [
            ("unknown key", q + "[daemon]\nworkers = 2\ncolour = blue\n", 5, "colour"),
            ("unknown section", q + "\n[deamon]\nworkers = 2\n", 5, "deamon"),
            ("unknown route key", q + "[route default]\nserver = h:25\nservr = x\n", 5, "servr"),
            ("bad number", q + "[daemon]\nworkers = many\n", 4, "workers"),
            ("bad duration", q + "[retry]\nbase = soon\n", 4, "base"),
            ("bad tls", q + "[route default]\nserver = h:25\ntls = maybe\n", 5, "tls"),
            ("syntax", q + "[daemon\nworkers = 2\n", 3, ""),
        ]
        for name, text, line, word in cases:
            with self.subTest(case=name):
                for exe, args in ((G["daemon"], ["--check"]), (G["daemon"], []),
                                  (G["bin"], ["queue", "stats"])):
                    with open(d.cfg, "w") as f:
                        f.write(text)
                    p = d.cli(args, exe=exe)
                    self.assertExit(p, 78)
                    self.assertIn("%s:%d:" % (d.cfg, line), p.err, describe(p))
                    self.assertIn(word, p.err, describe(p))
        # No default route; cap below base: 78 without a line.
        for text in (q, q + "[retry]\nbase = 10s\ncap = 1s\n[route default]\nserver = h:25\n"):
            p = self.check(d, text)
            self.assertExit(p, 78)
            self.assertIn(d.cfg, p.err)
        p = d.cli(["--check", "--config", os.path.join(d.dir, "nope.conf")], exe=G["daemon"],
                  config=False)
        self.assertExit(p, 78)
        p = d.cli(["--bogus"], exe=G["daemon"])
        self.assertExit(p, 64)

    def test_example_config_passes_check(self):
        d = Daemon({"server": "127.0.0.1:25", "tls": "none"}, name="example")
        p = d.cli(["--example-config"], exe=G["daemon"], config=False)
        self.assertExit(p, 0)
        example = p.out
        for key in ("path", "lease", "listen", "token-file", "max-body", "workers", "batch",
                    "grace", "poll-interval", "log-file", "base", "factor", "cap", "max-age",
                    "hard-bounces", "sender-domains", "server", "tls", "ca-file", "user",
                    "password-file", "auth", "dkim-key", "dkim-selector", "dkim-domain",
                    "max-connections", "idle-timeout", "max-messages", "return-path"):
            self.assertRegex(example, r"(?m)^#? ?%s = " % re.escape(key), key)
        adjusted = re.sub(r"(?m)^path = .*$", "path = " + d.queue, example)
        self.assertNotEqual(adjusted, example)
        p = self.check(d, adjusted)
        self.assertExit(p, 0)
        self.assertIn("ok", p.out)
        # Every commented key, uncommented with its example value, is a known key
        # (files it names do not exist: those give a different error than "unknown").
        for line in example.splitlines():
            m = re.match(r"^# ([a-z-]+) = (.*)$", line)
            if not m or m.group(1) in ("sender-domains",):
                continue
            value = m.group(2).split("   ")[0]
            value = value.replace("/etc/missive/", d.dir + "/").replace("/var/log/", d.dir + "/")
            with self.subTest(key=m.group(1)):
                text = adjusted
                section = None
                for l in example.splitlines():
                    if l.startswith("["):
                        section = l
                    if l == line:
                        break
                text = text.replace(section + "\n", section + "\n%s = %s\n" % (
                    m.group(1), value), 1)
                p = self.check(d, text)
                self.assertNotIn("unknown key", p.err, describe(p))
                self.assertNotIn("unknown section", p.err, describe(p))


if __name__ == "__main__":
    unittest.main(verbosity=2)
