#!/usr/bin/python3
"""Integration tests of missived's gateway (issue 14, docs/gateway.md): API keys,
token-bucket limits and sender reputation.

Peers, all on 127.0.0.1, started per test in one temp dir: tests/peers/sinksmtp.py
(accepts everything) and tests/peers/faultsmtp.py scenario rcpt550 (refuses every
recipient).  Each missived has its own config and queue (test_daemon.Daemon); keys
are made with `missive key add` on its queue.  The socket tests run `missive
sendmail` as the user nobody (harness.as_user, runnable_copy): run as root.

    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_gateway.py
"""

import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_daemon  # noqa: E402
from harness import (CMD_TIMEOUT, CRASH, as_user, binary, check, make_dir,  # noqa: E402
                     remove_dir, run, runnable_copy, set_up, unique, wait_for)
from test_daemon import DaemonTest, describe, raw_message  # noqa: E402

G = test_daemon.G


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    if os.geteuid() != 0:
        raise RuntimeError("run as root: the socket tests run sendmail as nobody")
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["root"] = make_dir("missive-gateway-")


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_DAEMON_KEEP", "missive gateway test files")
    G.clear()


def call(d, method, path, body=None, key=None, conn=None):
    """(status, JSON or text, headers as a dict of lowercase names).  conn: a
    kept-alive http.client connection to reuse."""
    h = {}
    if key:
        h["Authorization"] = "Bearer " + key
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = conn or http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        if not conn:
            c.close()
    obj = data.decode(errors="replace")
    if hdrs.get("content-type", "").startswith("application/json"):
        obj = json.loads(data)
    return r.status, obj, hdrs


def message(tag, frm="app@example.org", n=1):
    return {"raw": raw_message(tag, frm=frm,
                               to=["r%d-%s@example.test" % (i, tag) for i in range(n)])}


class GatewayBase(DaemonTest):
    maxDiff = 4000

    def gw_daemon(self, peer, trust=False, limits=None, reputation=None, token=None):
        s = {"http": {"trust-loopback": "yes" if trust else "no"}}
        if limits:
            s["limits"] = limits
        if reputation:
            s["reputation"] = reputation
        return self.daemon(self.plain_route(peer), sections=s, token=token)

    def key(self, d, name, *args):
        obj = d.cli_json(["key", "add", name] + list(args))
        self.assertRegex(obj["secret"], r"^msk_[0-9a-f]{64}$")
        return obj["secret"]

    def post(self, d, key, tag, **kw):
        return call(d, "POST", "/v1/messages", message(tag, **kw), key=key)

    def assertError(self, got, status, code):
        st, obj, hdrs = got
        self.assertEqual(st, status, got)
        self.assertIsInstance(obj, dict, got)
        self.assertEqual(obj["error"]["code"], code, got)
        self.assertIsInstance(obj["error"]["message"], str)
        return obj["error"], hdrs

    def until(self, fn, timeout, what):
        """fn()'s first true value, polled every 50 ms; the seconds it took too."""
        t0 = time.monotonic()
        v = wait_for(fn, timeout, what, interval=0.05)
        return v, time.monotonic() - t0

    def stored_submitter(self, d, qid):
        db = sqlite3.connect("file:%s?mode=ro" % d.queue, uri=True)
        try:
            return db.execute("SELECT submitter FROM messages WHERE qid = ?",
                              (qid,)).fetchone()[0]
        finally:
            db.close()

    def metric(self, d, key, name, labels=""):
        st, text, _ = call(d, "GET", "/metrics", key=key)
        self.assertEqual(st, 200, text)
        m = re.search(r"(?m)^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text)
        self.assertIsNotNone(m, "%s%s not in /metrics:\n%s" % (name, labels, text))
        return float(m.group(1))



class GatewayTest(GatewayBase):
    # ---- keys ----
    def test_keys_missing_wrong_revoked_rotated(self):
        sink = self.sink()
        d = self.gw_daemon(sink).start()
        self.assertEqual(call(d, "GET", "/healthz")[0], 200)   # never needs a key
        err, hdrs = self.assertError(self.post(d, None, unique("nokey")), 401, "unauthorized")
        self.assertEqual(hdrs.get("www-authenticate"), "Bearer")
        self.assertError(self.post(d, "msk_" + "0" * 64, unique("wrong")), 401, "unauthorized")
        self.assertError(call(d, "GET", "/metrics"), 401, "unauthorized")
        a = self.key(d, "appA")
        # A new key works within a second, without a restart.
        (st, obj, _), _ = self.until(lambda: (lambda r: r[0] != 401 and r)(
            self.post(d, a, unique("new"))), 1.5, "the new key to work")
        self.assertEqual(st, 202, obj)
        self.assertEqual(self.stored_submitter(d, obj["id"]), "key:appA")
        self.assertError(self.post(d, a[:-1] + ("0" if a[-1] != "0" else "1"), unique("near")),
                         401, "unauthorized")
        # Rotated: the old secret stops, the new one works.
        new = d.cli_json(["key", "rotate", "appA"])["secret"]
        _, took = self.until(lambda: self.post(d, a, unique("old"))[0] == 401, 1.5,
                             "the rotated secret to stop working")
        self.assertLess(took, 1.0)
        self.assertEqual(self.post(d, new, unique("rotated"))[0], 202)
        # Removed: 401 within a second.
        p = d.cli(["key", "rm", "appA"])
        self.assertExit(p, 0)
        _, took = self.until(lambda: self.post(d, new, unique("rm"))[0] == 401, 1.5,
                             "the removed key to stop working")
        self.assertLess(took, 1.0)
        b = self.key(d, "appB")
        self.until(lambda: self.post(d, b, unique("b"))[0] == 202, 1.5, "key appB")
        self.assertGreaterEqual(self.metric(d, b, "missive_auth_failures_total"), 5)
        self.stop(d)
        self.assertNotIn(a, d.log_text())
        self.assertNotIn(new, d.log_text())

    def test_token_file_is_key_default(self):
        sink = self.sink()
        d = self.gw_daemon(sink, token="tok-" + unique("t")).start()
        st, obj, _ = self.post(d, d.token, unique("tok"))
        self.assertEqual(st, 202, obj)
        self.assertEqual(self.stored_submitter(d, obj["id"]), "key:default")
        self.assertError(self.post(d, None, unique("none")), 401, "unauthorized")
        self.stop(d)

    def test_sender_domains(self):
        sink = self.sink()
        d = self.gw_daemon(sink).start()
        k = self.key(d, "shop", "--sender-domains", "example.org")
        self.until(lambda: self.post(d, k, unique("ok"))[0] == 202, 1.5, "key shop")
        err, _ = self.assertError(self.post(d, k, unique("other"), frm="app@other.test"),
                                  403, "forbidden")
        self.assertIn("other.test", err["message"])
        self.assertEqual(self.post(d, k, unique("sub"), frm="App@EXAMPLE.org")[0], 202)
        self.stop(d)

    def test_trust_loopback(self):
        sink = self.sink()
        d = self.gw_daemon(sink, trust=True).start()
        st, obj, _ = self.post(d, None, unique("trusted"))
        self.assertEqual(st, 202, obj)
        self.assertEqual(self.stored_submitter(d, obj["id"]), "ip:127.0.0.1")
        # A key given is still checked, and names the submitter.
        self.assertError(self.post(d, "msk_" + "1" * 64, unique("bad")), 401, "unauthorized")
        k = self.key(d, "svc")
        (st, obj, _), _ = self.until(lambda: (lambda r: r[0] == 202 and r)(
            self.post(d, k, unique("keyed"))), 1.5, "key svc")
        self.assertEqual(self.stored_submitter(d, obj["id"]), "key:svc")
        st, text, _ = call(d, "GET", "/metrics")
        self.assertEqual(st, 200, text)
        # Identities are tracked, but client addresses never become label values.
        self.assertGreaterEqual(self.metric(d, None, "missive_gateway_identities"), 2)
        d.wait_final(obj["id"])
        wait_for(lambda: 'identity="key:svc"' in call(d, "GET", "/metrics")[1], 10,
                 "key:svc's score in /metrics")
        self.assertNotIn("ip:", call(d, "GET", "/metrics")[1])
        self.stop(d)
        d2 = self.gw_daemon(sink, trust=False).start()
        self.assertError(self.post(d2, None, unique("untrusted")), 401, "unauthorized")
        self.stop(d2)

    # ---- limits ----
    def test_key_rate_hammered(self):
        """--rate 60/m --burst 5 for 20 s: 5 + 20 accepted (within 10 %), every refusal a
        429 with the documented shape and a Retry-After that is right."""
        sink = self.sink()
        d = self.gw_daemon(sink).start()
        k = self.key(d, "hammer", "--rate", "60/m", "--burst", "5")
        self.until(lambda: call(d, "GET", "/metrics", key=k)[0] == 200, 1.5, "key hammer")
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        ok, refused, t0 = 0, 0, time.monotonic()
        last_refusal = None
        while time.monotonic() - t0 < 20:
            st, obj, hdrs = call(d, "POST", "/v1/messages", message(unique("h")), key=k,
                                 conn=conn)
            if st == 202:
                ok += 1
                continue
            refused += 1
            self.assertEqual(st, 429, obj)
            self.assertEqual(set(obj), {"error"}, obj)
            e = obj["error"]
            self.assertEqual(set(e), {"code", "message", "scope", "retry_after"}, obj)
            self.assertEqual((e["code"], e["scope"]), ("rate_limited", "key"), obj)
            # 1 token a second: the next is due within a second, rounded up to 1.
            self.assertEqual(e["retry_after"], 1, obj)
            self.assertEqual(hdrs.get("retry-after"), "1", hdrs)
            self.assertIn("hammer", e["message"])
            last_refusal = time.monotonic()
        conn.close()
        self.assertTrue(22 <= ok <= 28, "accepted %d (expected 25 +- 10%%), refused %d"
                        % (ok, refused))
        self.assertGreater(refused, 20)
        # Retry-After is honest: after it, a token is there.
        time.sleep(max(0.0, last_refusal + 1.05 - time.monotonic()))
        self.assertEqual(self.post(d, k, unique("after"))[0], 202)
        self.assertEqual(self.metric(d, k, "missive_rate_limited_total", '{scope="key"}'),
                         refused)
        self.assertGreater(self.metric(d, k, "missive_gateway_policy_seconds_total"), 0)
        self.stop(d)

    def test_ip_and_sender_domain_limits(self):
        sink = self.sink()
        d = self.gw_daemon(sink, limits={"ip-rate": "1/h", "ip-burst": "3",
                                         "sender-domain-rate": "1/h",
                                         "sender-domain-burst": "2"}).start()
        a, b = self.key(d, "ka"), self.key(d, "kb")
        self.until(lambda: call(d, "GET", "/metrics", key=b)[0] == 200, 1.5, "keys")
        # Two from example.org, then its domain bucket is empty (the IP's is not).
        self.assertEqual(self.post(d, a, unique("d1"))[0], 202)
        self.assertEqual(self.post(d, b, unique("d2"))[0], 202)
        err, hdrs = self.assertError(self.post(d, a, unique("d3")), 429, "rate_limited")
        self.assertEqual(err["scope"], "sender_domain")
        self.assertGreater(int(hdrs["retry-after"]), 3000)
        # The refusal took no token from the IP: one more from another domain passes.
        self.assertEqual(self.post(d, a, unique("o1"), frm="x@other.test")[0], 202)
        err, _ = self.assertError(self.post(d, b, unique("o2"), frm="x@third.test"), 429,
                                  "rate_limited")
        self.assertEqual(err["scope"], "ip")
        self.stop(d)

    # ---- reputation ----
    def drive_down(self, d, key, below=60, timeout=30):
        """Submits as key (to the refusing server) until the gateway refuses it for its
        reputation; returns that refusal."""
        def refused():
            st, obj, _ = self.post(d, key, unique("bad"), n=5)
            if st == 403:
                return obj["error"]
            self.assertIn(st, (202, 429), obj)
            if st == 429:
                self.assertEqual(obj["error"]["code"], "circuit_open", obj)
            time.sleep(0.2)
            return None
        err, _ = self.until(refused, timeout, "a reputation refusal")
        self.assertEqual(err["code"], "reputation", err)
        self.assertLess(err["score"], below)
        return err

    def test_reputation_falls_and_recovers(self):
        fault = self.fault("rcpt550")
        d = self.gw_daemon(fault, reputation={"half-life": "5s", "cool-down": "1s"}).start()
        a = self.key(d, "bad", "--rate", "600/m", "--burst", "100")
        b = self.key(d, "good")
        self.until(lambda: call(d, "GET", "/metrics", key=b)[0] == 200, 1.5, "keys")
        self.drive_down(d, a)
        # Another key on the same daemon is unaffected.
        self.assertEqual(self.post(d, b, unique("good"))[0], 202)
        self.assertLess(self.metric(d, b, "missive_reputation_score", '{identity="key:bad"}'),
                        60)
        self.assertGreaterEqual(self.metric(d, b, "missive_reputation_refused_total"), 1)
        # Decay: back over 60 within a few half-lives, and A sends again.
        self.until(lambda: self.post(d, a, unique("again"))[0] == 202, 30,
                   "key bad to recover")
        self.stop(d)

    def test_restart_keeps_scores_and_operator_override(self):
        fault = self.fault("rcpt550")
        d = self.gw_daemon(fault, reputation={"cool-down": "1s"}).start()
        a = self.key(d, "worse", "--rate", "600/m", "--burst", "100")
        self.until(lambda: call(d, "GET", "/metrics", key=a)[0] == 200, 1.5, "key")
        self.drive_down(d, a)
        self.stop(d)
        rows = d.cli_json(["reputation", "ls"])
        row = [r for r in rows if r["identity"] == "key:worse"]
        self.assertEqual(len(row), 1, rows)
        self.assertLess(row[0]["score"], 60, rows)
        d.start()
        self.assertError(self.post(d, a, unique("after-restart")), 403, "reputation")
        p = d.cli(["reputation", "set", "key:worse", "100"])
        self.assertExit(p, 0)
        _, took = self.until(lambda: self.post(d, a, unique("lifted"))[0] == 202, 2,
                             "the override to lift the refusal")
        self.assertLess(took, 1.0)
        self.stop(d)


class SocketGatewayTest(GatewayBase):
    """`missive sendmail` through the socket as nobody: the uid's limits and score."""

    @classmethod
    def setUpClass(cls):
        cls.nobody = as_user("nobody")
        cls.nobody_bin = runnable_copy(G["bin"], "nobody")
        check(run([cls.nobody_bin, "--version"], **cls.nobody), "missive --version as nobody")

    def sendmail(self, d, tag, user=True):
        msg = ("From: n@example.test\nTo: r-%s@example.test\nSubject: %s\n\nhi\n"
               % (tag, tag)).encode()
        kw = self.nobody if user else {}
        p = subprocess.run([self.nobody_bin if user else G["bin"], "sendmail", "--config",
                            d.cfg, "-t"], input=msg, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CMD_TIMEOUT, **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return p

    def test_uid_limit_and_reputation(self):
        sink = self.sink()
        d = self.gw_daemon(sink, trust=True,
                           limits={"uid-rate": "2/m", "uid-burst": "2"}).start()
        uid = self.nobody["user"]
        for i in range(2):
            self.assertExit(self.sendmail(d, unique("u%d" % i)), 0)
        p = self.sendmail(d, unique("over"))
        self.assertEqual(p.returncode, 75, describe(p))
        self.assertNotRegex(p.err, CRASH)
        self.assertRegex(p.err, r"^missive: sendmail: rate limit for uid %d \(2/m\): try "
                                r"again in \d+ s\n$" % uid)
        # root is exempt (exempt-trusted defaults to yes).
        for i in range(3):
            self.assertExit(self.sendmail(d, unique("root%d" % i), user=False), 0)
        # A score below every tier: 77, one line.
        self.assertExit(d.cli(["reputation", "set", "uid:%d" % uid, "10"]), 0)
        time.sleep(0.6)
        p = self.sendmail(d, unique("rep"))
        self.assertEqual(p.returncode, 77, describe(p))
        self.assertRegex(p.err, r"^missive: sendmail: uid %d: reputation score 10\.0 [^\n]*\n$"
                         % uid)
        self.assertGreaterEqual(self.metric(d, None, "missive_rate_limited_total",
                                            '{scope="uid"}'), 1)
        # Decaying back toward 100 with the default half-life of an hour.
        self.assertAlmostEqual(self.metric(d, None, "missive_reputation_score",
                                           '{identity="uid:%d"}' % uid), 10, delta=0.5)
        self.stop(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
