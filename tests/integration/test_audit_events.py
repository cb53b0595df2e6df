#!/usr/bin/python3
"""The audit trail end to end (issue 15, docs/audit.md): every event type that
missived and the operator commands write, their shape, the actors, masking of
every personal datum (addresses, phones, resident IDs, card numbers, configured
rules), the hash chain recomputed here independently of `missive audit verify`,
rotation on SIGHUP, and `missive audit forget`.

Peer on 127.0.0.1: tests/peers/faultsmtp.py scenario rcpt-quote (accepts, defers
defer* with 451 and refuses bounce* with 550, quoting each address in the reply).
Run as root (sendmail through the socket).

    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_audit_events.py
"""

import glob
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_daemon  # noqa: E402
from harness import (ADDRESS, binary, make_dir, masked_text, pii_hits,  # noqa: E402
                     remove_dir, set_up, unique, wait_for, write_private)
from test_daemon import DaemonTest, raw_message  # noqa: E402

G = test_daemon.G

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PSEUDONYM = re.compile(r"^u-[0-9a-f]{12}@")
CHAIN_KEY = "0123456789abcdef-audit-test-key-0123456789abcdef"

# Personal data the test puts where the trail would see it; none may come out.
SENDER = "alice.sender@example.com"
PHONE = "13912345678"
RESIDENT_ID = "11010519491231002X"   # check character valid (ISO 7064 MOD 11-2)
CARD = "4111 1111 1111 1111"         # Luhn-valid


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    if os.geteuid() != 0:
        raise RuntimeError("run as root: sendmail through the socket")
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["root"] = make_dir("missive-audit-events-")


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_DAEMON_KEEP", "missive audit test files")
    G.clear()


def events(path):
    """Every event of the trail at path and its rotations, oldest first."""
    files = sorted(glob.glob(path + ".2*")) + [path]
    out = []
    for f in files:
        with open(f, "rb") as fh:
            for raw in fh:
                out.append((f, raw))
    return out


def recompute_chain(lines, key):
    """The chain checked here, without missive: each hash is HMAC-SHA-256 over the line
    up to ',"hash":"', each prev the hash before, seq one more each time."""
    prev, seq = None, None
    for f, raw in lines:
        assert raw.endswith(b"\n"), (f, raw)
        line = raw[:-1]
        cut = line.rindex(b',"hash":"')
        want = hmac.new(key, line[:cut], hashlib.sha256).hexdigest()
        ev = json.loads(line)
        assert ev["hash"] == want, (f, ev["seq"], "hash")
        if prev is not None:
            assert ev["prev"] == prev, (f, ev["seq"], "prev")
            assert ev["seq"] == seq + 1, (f, ev["seq"], "seq")
        prev, seq = ev["hash"], ev["seq"]
    return seq


class AuditEvents(DaemonTest):
    maxDiff = 8000

    def setUp(self):
        super().setUp()
        self.peer = self.fault("rcpt-quote")
        d = self.d = self.daemon(self.plain_route(self.peer), sections={
            "http": {"trust-loopback": "no"},
            "retry": {"base": "1s", "cap": "1s", "max-age": "2s"},
            "audit": {"key-file": write_private(os.path.join(G["root"], unique("key")),
                                                CHAIN_KEY + "\n"),
                      "mask": "order ORD-[0-9]{8} 4 2"},
        })
        self.audit = os.path.join(d.dir, "audit.jsonl")

    def key(self, name, *args):
        secret = self.d.cli_json(["key", "add", name] + list(args))["secret"]
        if name == "app1":   # what the Daemon's own requests (GET /v1/messages/ID) use
            self.d.token = secret
        return secret

    def post(self, key, tag, to, frm=SENDER, subject_extra=()):
        return self.d.request("POST", "/v1/messages", {"raw": raw_message(
            tag, frm=frm, to=to, extra=subject_extra)}, auth=False,
            headers={"Authorization": "Bearer " + key})

    def trail(self):
        return [json.loads(raw) for _f, raw in events(self.audit)]

    def by_type(self):
        out = {}
        for ev in self.trail():
            out.setdefault(ev["type"], []).append(ev)
        return out

    def test_every_event(self):
        d = self.d
        # Operator events before missived runs.
        app = self.key("app1", "--sender-domains", "example.com")
        self.key("gone")
        self.assertExit(d.cli(["key", "rotate", "gone", "--json"]), 0)
        self.assertExit(d.cli(["key", "rm", "gone"]), 0)
        slow = self.key("slow", "--rate", "1/h", "--burst", "1")
        self.assertExit(d.cli(["reputation", "set", "key:app1", "95"]), 0)
        self.assertExit(d.cli(["suppression", "add", "blocked@example.net"]), 0)
        d.start()
        tag = unique("ev")
        st, obj, raw = self.post(app, tag, ["ok1@example.org", "defer1@example.org",
                                            "bounce1@example.org"],
                                 subject_extra=["X-Ref: ORD-12345678 %s %s" % (PHONE, CARD)])
        self.assertEqual(st, 202, raw)
        qid = obj["id"]
        d.wait_final(qid, timeout=60)
        # auth.failed, limit.refused (the key's bucket, then the sender domain).
        self.assertEqual(self.post("msk_" + "0" * 64, unique("bad"), ["x@example.org"])[0], 401)
        self.assertEqual(self.post(slow, unique("s1"), ["s@example.org"])[0], 202)
        self.assertEqual(self.post(slow, unique("s2"), ["s@example.org"])[0], 429)
        self.assertEqual(self.post(app, unique("f"), ["f@example.org"],
                                   frm="mallory@example.net")[0], 403)
        # Suppressed recipient at submission.
        self.assertEqual(self.post(app, unique("sup"), ["blocked@example.net"])[0], 403)
        # The socket (uid 0) and, with missived stopped, the queue itself.
        p = d.cli(["sendmail", "-f", SENDER, "sock1@example.org"],
                  input=raw_message(unique("sock"), frm=SENDER,
                                    to=["sock1@example.org"]).encode())
        self.assertExit(p, 0)
        # bounce.received through the operator's `missive bounce`.
        dsn = self.dsn(qid, "ok1@example.org")
        self.assertExit(d.cli(["bounce", "-"], input=dsn.encode()), 0)
        # queue.operator: a retry of everything deferred.
        self.assertExit(d.cli(["queue", "retry", "--all-deferred"]), 0)
        d.signal(signal.SIGHUP)   # audit.rotated
        wait_for(lambda: glob.glob(self.audit + ".2*"), 10, "a rotated audit file")
        self.stop(d)
        p = d.cli(["sendmail", "-f", SENDER, "direct1@example.org"],
                  input=raw_message(unique("direct"), frm=SENDER,
                                    to=["direct1@example.org"]).encode())
        self.assertExit(p, 0)

        ev = self.by_type()
        want = ["config.loaded", "audit.started", "audit.stopped", "audit.rotated",
                "message.accepted", "recipient.sent", "recipient.deferred",
                "recipient.bounced", "recipient.dead", "recipient.suppressed",
                "bounce.received", "auth.failed", "limit.refused", "reputation.changed",
                "key.created", "key.rotated", "key.revoked", "suppression.changed",
                "queue.operator"]
        self.assertEqual([t for t in want if t not in ev], [], sorted(ev))
        self.check_shapes()
        self.check_actors(ev, qid)
        self.check_masking(ev, qid)
        recompute_chain(events(self.audit), CHAIN_KEY.encode())
        p = d.cli(["audit", "verify"])
        self.assertExit(p, 0)

    def check_shapes(self):
        for ev in self.trail():
            self.assertEqual(list(ev)[:2], ["seq", "event_id"], ev)
            self.assertRegex(ev["event_id"], UUID7)
            self.assertRegex(ev["ts"], TS)
            self.assertIn(ev["actor"]["kind"], ("key", "uid", "operator", "system"))
            self.assertTrue(ev["actor_ip"] is None or isinstance(ev["actor_ip"], str))
            self.assertTrue(ev["qid"] is None or re.match(r"^[0-9a-f]+$", ev["qid"]), ev)
            self.assertIsInstance(ev["masked_payload"], dict)
            self.assertRegex(ev["prev"], HEX64)
            self.assertRegex(ev["hash"], HEX64)
        ids = [e["event_id"] for e in self.trail()]
        self.assertEqual(len(ids), len(set(ids)))

    def check_actors(self, ev, qid):
        acc = {}
        for e in ev["message.accepted"]:
            acc.setdefault(e["masked_payload"]["how"], e)
        self.assertEqual(sorted(acc), ["http", "queue", "socket"])
        self.assertEqual(acc["http"]["actor"], {"kind": "key", "id": "app1"})
        self.assertEqual(acc["http"]["actor_ip"], "127.0.0.1")
        self.assertEqual(acc["socket"]["actor"], {"kind": "uid", "id": "0"})
        self.assertEqual(acc["queue"]["actor"], {"kind": "uid", "id": "0"})
        for t in ("key.created", "key.rotated", "key.revoked", "reputation.changed",
                  "suppression.changed", "queue.operator", "bounce.received"):
            kinds = {e["actor"]["kind"] for e in ev[t]}
            self.assertIn("operator", kinds, t)
        self.assertEqual({e["actor"]["kind"] for e in ev["recipient.sent"]}, {"system"})
        self.assertTrue(any(e["qid"] == qid for e in ev["recipient.sent"]))
        refused = [e["masked_payload"]["reason"] for e in ev["limit.refused"]]
        self.assertIn("rate_limited", refused)
        self.assertIn("forbidden", refused)
        self.assertEqual(ev["auth.failed"][0]["actor_ip"], "127.0.0.1")
        self.assertNotIn("msk_", json.dumps(ev["auth.failed"]))
        self.assertEqual([e["masked_payload"]["name"] for e in ev["key.created"]],
                         ["app1", "gone", "slow"])

    def check_masking(self, ev, qid):
        lines = [raw.decode(errors="replace") for _f, raw in events(self.audit)]
        text = "".join(lines)
        for secret in (SENDER, "ok1@example.org", "defer1@example.org", "bounce1@example.org",
                       "blocked@example.net", PHONE, "ORD-12345678", "mallory@example.net"):
            self.assertNotIn(secret, text)
        self.assertEqual([h for l in lines for h in pii_hits(masked_text(l))], [])
        self.assertNotRegex(self.d.log_text(), ADDRESS)
        acc = [e for e in ev["message.accepted"] if e["qid"] == qid][0]["masked_payload"]
        self.assertRegex(acc["sender"], PSEUDONYM)
        self.assertTrue(acc["sender"].endswith("@example.com"))
        rcpts = acc["recipients"].split(",")
        self.assertEqual(len(rcpts), 3)
        for r in rcpts:
            self.assertRegex(r, PSEUDONYM)
        # The same address, the same pseudonym, in every event.
        sent = [e["masked_payload"]["recipient"] for e in ev["recipient.sent"]
                if e["qid"] == qid]
        self.assertEqual(len(sent), 1)
        self.assertIn(sent[0], rcpts)
        bounced = [e["masked_payload"] for e in ev["recipient.bounced"] if e["qid"] == qid]
        self.assertTrue(bounced)
        self.assertIn(bounced[0]["recipient"], rcpts)
        # The server's reply quoted the address: masked there too, the same way.
        self.assertIn(bounced[0]["recipient"], bounced[0]["reply"])
        deferred = [e["masked_payload"] for e in ev["recipient.deferred"] if e["qid"] == qid]
        self.assertIn("138****5678", deferred[0]["reply"])

    @staticmethod
    def dsn(qid, rcpt):
        return ("From: MAILER-DAEMON@mx.example.org\r\nTo: <%s>\r\n"
                "Subject: Undelivered Mail Returned to Sender\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n"
                "\r\n--B\r\nContent-Type: text/plain\r\n\r\nMailbox unknown.\r\n"
                "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
                "Reporting-MTA: dns; mx.example.org\r\nOriginal-Envelope-Id: %s\r\n\r\n"
                "Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                "Diagnostic-Code: smtp; 550 5.1.1 <%s>: user unknown\r\n\r\n--B--\r\n"
                % (SENDER, qid, rcpt, rcpt))

    def test_forget(self):
        """After `missive audit forget`, the address's old pseudonym cannot be made
        again: new events of it carry another, the old bucket key is gone from the key
        file, and the chain still verifies."""
        d = self.d
        app = self.key("app1")
        d.start()
        who = "forgetme@example.org"
        qid1 = self.post(app, unique("f1"), [who])[1]["id"]
        d.wait_final(qid1)
        old = [e["masked_payload"]["recipient"] for e in self.trail()
               if e["type"] == "recipient.sent" and e["qid"] == qid1][0]
        with open(self.audit + ".keys", "rb") as f:
            keys_before = f.read()
        p = d.cli(["audit", "forget", who])
        self.assertExit(p, 0)
        with open(self.audit + ".keys", "rb") as f:
            keys_after = f.read()
        self.assertEqual(len(keys_before), len(keys_after))
        changed = [i for i in range(0, len(keys_before), 32)
                   if keys_before[i:i + 32] != keys_after[i:i + 32]]
        # The header (generation) and exactly one bucket key.
        self.assertLessEqual(len(changed), 3, changed)
        for i in changed:
            self.assertNotIn(keys_before[i:i + 32], keys_after)
        time.sleep(1.5)   # missived takes the new key within a second
        qid2 = self.post(app, unique("f2"), [who])[1]["id"]
        d.wait_final(qid2)
        new = [e["masked_payload"]["recipient"] for e in self.trail()
               if e["type"] == "recipient.sent" and e["qid"] == qid2][0]
        self.assertNotEqual(old, new)
        self.assertEqual(old.split("@")[1], new.split("@")[1])
        forgotten = [e for e in self.trail() if e["type"] == "audit.forgotten"]
        self.assertEqual(len(forgotten), 1)
        self.assertNotIn("forgetme", json.dumps(forgotten))
        self.assertEqual(forgotten[0]["actor"]["kind"], "operator")
        self.stop(d)
        self.assertExit(d.cli(["audit", "verify"]), 0)
        recompute_chain(events(self.audit), CHAIN_KEY.encode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
