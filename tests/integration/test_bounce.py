#!/usr/bin/python3
"""Bounces through the daemon: missived relays through the private Postfix of the
harness with DSN asked (NOTIFY=FAILURE, the queue ID as ENVID) and a VERP return
path; Postfix bounces mail for other domains with a real DSN, which lands in its
Maildir. `missive bounce` (and POST /v1/bounces) must find the queue entry, mark
the recipient bounced with its reason, and put the hard bounce on the suppression
list, after which submissions to it are refused (77 / 403) unless overridden.

Env: MISSIVE_BIN, MISSIVED_BIN (set by CTest). Must run as root (Postfix).
"""

import email
import email.policy
import glob
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Postfix, binary, free_port, make_dir, remove_dir, run,  # noqa: E402
                     set_up, wait_for, write_private)

P = {}


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    P["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    P["bind"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    P["dir"] = make_dir("missive-bounce-")
    pf = P["pf"] = Postfix(P["dir"], timeout=300)
    write_private(os.path.join(P["dir"], "password"), pf.password + "\n")
    P["http"] = free_port()
    P["conf"] = os.path.join(P["dir"], "missive.conf")
    with open(P["conf"], "w") as f:
        f.write("""[queue]
path = {d}/queue.db
[http]
listen = 127.0.0.1:{http}
trust-loopback = yes
[daemon]
poll-interval = 100ms
[route default]
server = 127.0.0.1:{port}
tls = starttls
ca-file = {pf}/certs/ca.pem
user = {user}
password-file = {d}/password
dsn-notify = FAILURE
dsn-ret = HDRS
return-path = bounces+{{id}}@example.test
""".format(d=P["dir"], http=P["http"], port=pf.ports["SUBMISSION_PORT"], pf=pf.dir,
           user=pf.user))
    P["log"] = open(os.path.join(P["dir"], "missived.log"), "w")
    P["daemon"] = subprocess.Popen([P["bind"], "--config", P["conf"]], stdout=P["log"],
                                   stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % P["http"], timeout=2)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise RuntimeError("missived did not start")


def tearDownModule():
    d = P.get("daemon")
    if d:
        d.terminate()
        d.wait(timeout=40)
    if P.get("pf"):
        P["pf"].stop(timeout=60)
    remove_dir(P.get("dir"), "MISSIVE_PEERS_KEEP", "missive bounce test files")


def missive(*args, stdin=None):
    return run([P["bin"], args[0], "--config", P["conf"]] + list(args[1:]), input=stdin)


def queue_show(qid):
    r = missive("queue", "show", qid, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def find_dsn(qid):
    """The DSN Postfix sent back to bounces+QID@example.test."""
    for path in glob.glob(os.path.join(P["pf"].maildir, "new", "*")):
        with open(path, "rb") as f:
            data = f.read()
        if ("bounces+%s@example.test" % qid).encode() in data and b"multipart/report" in data:
            return data
    return None


class BounceTest(unittest.TestCase):
    def submit(self, rcpt, extra=()):
        msg = ("From: sender@example.test\nTo: %s\nSubject: bounce me\n\nhello\n" % rcpt).encode()
        r = missive("sendmail", "-t", "--json", *extra, stdin=msg)
        return r

    def test_pipe_bounce_marks_and_suppresses(self):
        rcpt = "nobody@elsewhere.test"
        r = self.submit(rcpt)
        self.assertEqual(r.returncode, 0, r.stderr)
        qid = json.loads(r.stdout)["id"]
        wait_for(lambda: queue_show(qid)["recipients"][0]["state"] == "sent", 20,
                 "the message to be sent", interval=0.1)
        dsn = wait_for(lambda: find_dsn(qid), 20, "Postfix's DSN", interval=0.1)
        # The DSN carries our queue ID as ENVID and the VERP return path.
        r = run([P["bin"], "dsn", "parse", "--json", "-"], input=dsn)
        self.assertEqual(r.returncode, 0, r.stderr)
        parsed = json.loads(r.stdout)
        self.assertEqual(parsed["kind"], "bounce")
        self.assertEqual(parsed["envelope_id"], qid)
        # Applied to the queue:
        r = missive("bounce", "--json", stdin=dsn)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual(res["queue_id"], qid)
        self.assertEqual(len(res["recipients"]), 1)
        got = res["recipients"][0]
        self.assertEqual(got["address"], rcpt)
        self.assertTrue(got["matched"])
        self.assertTrue(got["status"].startswith("5."))
        info = queue_show(qid)
        self.assertEqual(info["recipients"][0]["state"], "bounced")
        self.assertIn("bounce (", info["recipients"][0]["last_reply"]["text"])
        # 5.3.0 from a failing pipe is not a bad address: no suppression.
        self.assertEqual(got["suppressed"], got["hard"])

    def test_hard_bounce_suppresses_and_refuses(self):
        # A hard bounce (5.1.1 user unknown) by HTTP, as an MTA hook would post it.
        qid_r = self.submit("gone@example.org")
        self.assertEqual(qid_r.returncode, 0, qid_r.stderr)
        qid = json.loads(qid_r.stdout)["id"]
        wait_for(lambda: queue_show(qid)["recipients"][0]["state"] == "sent", 20,
                 "the message to be sent", interval=0.1)
        dsn = ("From: MAILER-DAEMON@mx.example.org\r\nTo: bounces+%s@example.test\r\n"
               "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
               "--b\r\nContent-Type: text/plain\r\n\r\nUser unknown.\r\n"
               "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
               "Reporting-MTA: dns; mx.example.org\r\nOriginal-Envelope-Id: %s\r\n\r\n"
               "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
               "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: "
               "User unknown\r\n--b--\r\n") % (qid, qid)
        req = urllib.request.Request("http://127.0.0.1:%d/v1/bounces" % P["http"],
                                     data=dsn.encode(), method="POST",
                                     headers={"Content-Type": "message/rfc822"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            res = json.loads(resp.read())
        rc = res["recipients"][0]
        self.assertEqual((rc["reason"], rc["hard"], rc["suppressed"]), ("userunknown", True, True))
        self.assertEqual(queue_show(qid)["recipients"][0]["state"], "bounced")
        r = missive("suppression", "ls", "--json")
        self.assertIn("gone@example.org", [s["address"] for s in json.loads(r.stdout)])
        # Refused now, by both paths, with a sentence naming the address.
        r = self.submit("Gone@Example.org")
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn(b"suppression list", r.stderr)
        body = json.dumps({"from": "sender@example.test", "to": "gone@example.org",
                           "subject": "x", "text": "y"}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/v1/messages" % P["http"], data=body,
                                     method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 403)
        self.assertEqual(json.loads(cm.exception.read())["error"]["code"], "suppressed")
        # Overridden, and after removal, accepted again.
        self.assertEqual(self.submit("gone@example.org", ["--allow-suppressed"]).returncode, 0)
        self.assertEqual(missive("suppression", "rm", "gone@example.org").returncode, 0)
        self.assertEqual(missive("suppression", "rm", "gone@example.org").returncode, 1)
        self.assertEqual(self.submit("gone@example.org").returncode, 0)

    def test_autoreply_is_not_a_bounce(self):
        msg = (b"From: bob@example.org\r\nTo: sender@example.test\r\nAuto-Submitted: auto-replied\r\n"
               b"Subject: Out of office\r\n\r\nI am away.\r\n")
        r = missive("bounce", "--json", stdin=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual(res["kind"], "autoreply")
        self.assertFalse(any(x["suppressed"] for x in res["recipients"]))

    def test_garbage_is_refused(self):
        r = missive("bounce", stdin=b"")
        self.assertIn(r.returncode, (0, 65))
        self.assertNotEqual(r.returncode, 70)


if __name__ == "__main__":
    unittest.main(verbosity=2)
