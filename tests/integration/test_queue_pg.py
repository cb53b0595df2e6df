"""The PostgreSQL queue (issue 16): moving a SQLite queue into it and the CLI.

Runs itself under tests/peers/pg.sh (a private PostgreSQL 15 on 127.0.0.1)
unless MSV_TEST_PG_URL is already set.

  * export | import round trip: a SQLite queue with messages in every state,
    attempts, a DSN message with a binary body, leases, suppressions, keys,
    reputation and route states is exported, imported into PostgreSQL, and
    the target's export is compared with the source's field by field (the
    recipients' row ids renumbered); the rows are also read back with psql;
  * a second import into the non-empty target is refused without --force;
  * `missive queue migrate` creates and then reports "up to date", and a
    queue with a newer schema is refused at open;
  * [queue] path and url together are a config error;
  * two missived nodes on the PostgreSQL queue deliver what was submitted to
    either of them to tests/peers/sinksmtp.py, each message once; missived
    refuses to start on a newer schema (exit 78).
"""

import base64
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (binary, free_port, make_dir, remove_dir, start_peer,  # noqa: E402
                     stop_process, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PG_SH = os.path.normpath(os.path.join(HERE, "..", "peers", "pg.sh"))

if not os.environ.get("MSV_TEST_PG_URL"):
    os.execv(PG_SH, [PG_SH, sys.executable, os.path.abspath(__file__)] + sys.argv[1:])

URL = os.environ["MSV_TEST_PG_URL"]
PSQL = os.environ.get("MSV_TEST_PSQL", "psql")
MISSIVE = binary("MISSIVE_BIN", "build/src/cli/missive")
MISSIVED = binary("MISSIVED_BIN", "build/src/daemon/missived")
T0 = 1700000000000


def psql(sql):
    r = subprocess.run([PSQL, "-qXAt", "-v", "ON_ERROR_STOP=1", URL, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise AssertionError("psql: " + r.stderr)
    return r.stdout


def populate(db):
    """Rows in every state, written as missive's schema 4 has them."""
    c = sqlite3.connect(db)
    body = b"Subject: t\r\n\r\n\x00\xff binary \xe9\r\n"
    msgs = [("00000000000000a1", "alice@example.org", None, None, None),
            ("00000000000000a2", "", "eu", "<m2@example.org>", "SUCCESS,FAILURE"),
            ("00000000000000a3", "bob@example.org", None, "<m3@example.org>", None)]
    for i, (qid, sender, route, mid, notify) in enumerate(msgs):
        c.execute("INSERT INTO messages (qid, created_ms, sender, route, message_id,"
                  " dsn_notify, dsn_ret, envid, body_8bit, smtputf8, size, body, submitter)"
                  " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  (qid, T0 + i, sender, route, mid, notify, "HDRS" if notify else None,
                   qid if notify else None, i % 2, (i + 1) % 2, len(body) + i,
                   body + b"x" * i, "key:web" if i == 0 else None))
    states = [(1, "q@example.net", 0, 0, T0, None, 0, 0),
              (1, "d@example.net", 1, 2, T0 + 600000, "node-a", T0 + 99, 3),
              (1, "s@example.net", 2, 1, T0, None, 0, 1),
              (2, "b@example.net", 3, 1, T0, None, 0, 1),
              (2, "x@example.net", 4, 7, T0, None, 0, 7),
              (3, "u@example.net", 5, 0, T0, None, 0, 0),
              (3, "Mixed@Example.NET", 0, 0, T0 + 5, "node-b", T0 + 60000, 1)]
    for msg, addr, st, att, nxt, owner, exp, ep in states:
        c.execute("INSERT INTO recipients (msg, address, state, attempts, next_attempt_ms,"
                  " updated_ms, last_code, last_enhanced, last_text, lease_owner,"
                  " lease_expiry_ms, lease_epoch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                  (msg, addr, st, att, nxt, T0 + st, 250 if st == 2 else 0,
                   "2.0.0" if st == 2 else "", "ok é" if st == 2 else "", owner, exp, ep))
    for rcpt, code in ((2, 451), (2, 421), (3, 250), (4, 550), (5, 0)):
        c.execute("INSERT INTO attempts (rcpt, at_ms, latency_ms, server, reply_code,"
                  " enhanced, text) VALUES (?,?,?,?,?,?,?)",
                  (rcpt, T0 + rcpt, 12, "mx.example.net:25" if code else None, code,
                   "4.7.1" if code // 100 == 4 else "", "reply %d" % code))
    c.execute("INSERT INTO suppression VALUES ('gone@example.net', 'bounced 5.1.1',"
              " 'bounce', ?)", (T0,))
    c.execute("INSERT INTO api_keys VALUES ('web', ?, 'example.org', 2.5, 10, ?, 0)",
              (bytes(range(32)), T0))
    c.execute("INSERT INTO reputation VALUES ('key:web', 73.25, ?, 2, 0, ?, '42 delivered')",
              (T0, T0))
    c.execute("INSERT INTO route_state VALUES ('eu', 'open', ?, 3, ?)", (T0 + 30000, T0))
    c.commit()
    c.close()


def normalize(lines):
    """Export lines with the recipients' row ids replaced by their index."""
    out = []
    for line in lines:
        o = json.loads(line)
        if o["type"] == "meta":
            o.pop("backend")
        if o["type"] == "message":
            index = {r["id"]: i for i, r in enumerate(o["recipients"])}
            for r in o["recipients"]:
                r["id"] = index[r["id"]]
            for a in o["attempts"]:
                a["rcpt"] = index[a["rcpt"]]
        out.append(o)
    return out


class QueuePg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = make_dir("msv-qpg")
        cls.old = os.path.join(cls.dir, "old.conf")
        cls.new = os.path.join(cls.dir, "new.conf")
        with open(cls.old, "w") as f:
            f.write("[queue]\npath = %s/queue.db\n" % cls.dir)
        with open(cls.new, "w") as f:
            f.write("[queue]\nurl = %s\n" % URL)

    @classmethod
    def tearDownClass(cls):
        remove_dir(cls.dir, "MSV_QPG_KEEP", "queue test")

    def missive(self, *args, stdin=None):
        return subprocess.run([MISSIVE] + list(args), input=stdin, capture_output=True,
                              timeout=120)

    def test_1_migrate(self):
        r = self.missive("queue", "migrate", "--config", self.new)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"schema 4: created", r.stdout)
        r = self.missive("queue", "migrate", "--config", self.new)
        self.assertIn(b"up to date", r.stdout)
        self.assertEqual(psql("SELECT version FROM schema_version").strip(), "4")

    def test_2_round_trip(self):
        r = self.missive("queue", "migrate", "--config", self.old)
        self.assertEqual(r.returncode, 0, r.stderr)
        populate(os.path.join(self.dir, "queue.db"))
        src = self.missive("queue", "export", "--config", self.old)
        self.assertEqual(src.returncode, 0, src.stderr)
        imp = self.missive("queue", "import", "--config", self.new, stdin=src.stdout)
        self.assertEqual(imp.returncode, 0, imp.stderr)
        self.assertIn(b"imported 3 messages, 1 suppressions, 1 keys", imp.stderr)
        dst = self.missive("queue", "export", "--config", self.new)
        self.assertEqual(dst.returncode, 0, dst.stderr)
        a = normalize(src.stdout.decode().splitlines())
        b = normalize(dst.stdout.decode().splitlines())
        self.assertEqual(len(a), len(b))
        for x, y in zip(a, b):
            self.assertEqual(x, y)
        # Every state, the body's bytes, the key's hash, read from PostgreSQL.
        self.assertEqual(psql("SELECT string_agg(state::text, ',' ORDER BY state)"
                              " FROM recipients").strip(), "0,0,1,2,3,4,5")
        body = psql("SELECT encode(body, 'base64') FROM messages WHERE qid ="
                    " '00000000000000a1'").replace("\n", "")
        self.assertEqual(base64.b64decode(body),
                         b"Subject: t\r\n\r\n\x00\xff binary \xe9\r\n")
        self.assertEqual(psql("SELECT encode(hash, 'hex') FROM api_keys").strip(),
                         bytes(range(32)).hex())
        self.assertEqual(psql("SELECT lease_owner || ':' || lease_epoch FROM recipients"
                              " WHERE address = 'd@example.net'").strip(), "node-a:3")
        self.assertEqual(psql("SELECT count(*) FROM attempts").strip(), "5")
        # A second import into the now non-empty queue: refused, unchanged.
        again = self.missive("queue", "import", "--config", self.new, stdin=src.stdout)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn(b"--force", again.stderr)
        self.assertEqual(psql("SELECT count(*) FROM messages").strip(), "3")
        # --force replaces by queue ID: still 3 messages.
        forced = self.missive("queue", "import", "--force", "--config", self.new,
                              stdin=src.stdout)
        self.assertEqual(forced.returncode, 0, forced.stderr)
        self.assertEqual(psql("SELECT count(*) FROM messages").strip(), "3")
        # The CLI reads the PostgreSQL queue like a file.
        ls = self.missive("queue", "show", "00000000000000a3", "--config", self.new)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        self.assertIn(b"Mixed@Example.NET", ls.stdout)

    def test_3_newer_schema_refused(self):
        r = self.missive("queue", "migrate", "--config", self.new)
        self.assertEqual(r.returncode, 0, r.stderr)
        psql("UPDATE schema_version SET version = 5")
        try:
            r = self.missive("queue", "stats", "--config", self.new)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn(b"newer missive", r.stderr)
        finally:
            psql("UPDATE schema_version SET version = 4")

    def test_4_path_and_url(self):
        both = os.path.join(self.dir, "both.conf")
        with open(both, "w") as f:
            f.write("[queue]\npath = %s/q.db\nurl = %s\n" % (self.dir, URL))
        r = self.missive("queue", "stats", "--config", both)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"not both", r.stderr)

    def node(self, name, sink_port):
        port = free_port()
        cfg = os.path.join(self.dir, name + ".conf")
        with open(cfg, "w") as f:
            f.write("[queue]\nurl = %s\n\n[http]\nlisten = 127.0.0.1:%d\n"
                    "trust-loopback = yes\n\n[daemon]\nworkers = 2\nbatch = 16\n"
                    "poll-interval = 30s\ngrace = 10s\n\n[route default]\n"
                    "server = 127.0.0.1:%d\ntls = none\ntimeout = 15\n"
                    % (URL, port, sink_port))
        err = open(os.path.join(self.dir, name + ".stderr"), "ab")
        proc = subprocess.Popen([MISSIVED, "--config", cfg], stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err)
        err.close()
        return proc, port, cfg

    def post(self, port, body):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            c.request("POST", "/v1/messages", body=json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def healthy(self, proc, port):
        if proc.poll() is not None:
            raise AssertionError("missived exited %d at start" % proc.returncode)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.request("GET", "/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False
        finally:
            c.close()

    def test_5_missived_nodes_deliver(self):
        r = self.missive("queue", "migrate", "--config", self.new)
        self.assertEqual(r.returncode, 0, r.stderr)
        psql("TRUNCATE messages, suppression, api_keys, reputation, route_state CASCADE")
        sink_dir = make_dir("msv-qpg-sink", self.dir)
        record = os.path.join(sink_dir, "record.jsonl")
        sink, sink_port = start_peer("sinksmtp.py", ["--record", record, "--save-dir", sink_dir],
                                     os.path.join(sink_dir, "ready"),
                                     os.path.join(sink_dir, "stderr"))
        nodes = [self.node("node%d" % i, sink_port) for i in (1, 2)]
        try:
            for proc, port, _ in nodes:
                wait_for(lambda: self.healthy(proc, port), 20, "missived to answer /healthz")
            # poll-interval 30 s: deliveries sooner come from the wake-ups
            # (the local one, or a NOTIFY), not from polling.
            t0 = time.monotonic()
            mids = []
            for i in range(20):
                mid = "<pg-%d-%d@example.test>" % (i, os.getpid())
                mids.append(mid)
                st, raw = self.post(nodes[i % 2][1], {
                    "from": "a@example.test", "to": "b%d@example.test" % i,
                    "subject": "pg %d" % i, "text": "t", "message_id": mid})
                self.assertEqual(st, 202, raw)

            def records():
                try:
                    with open(record) as f:
                        return [json.loads(l) for l in f if l.endswith("\n")]
                except FileNotFoundError:
                    return []
            wait_for(lambda: len(records()) >= 20, 60, "20 deliveries at the sink")
            took = time.monotonic() - t0
            got = sorted(r["message_id"] for r in records())
            self.assertEqual(got, sorted(mids))
            wait_for(lambda: psql("SELECT count(*) FROM recipients WHERE state = 2").strip()
                     == "20", 30, "20 recipients recorded sent")
            self.assertLess(took, 30)
            owners = psql("SELECT count(*) FROM recipients WHERE lease_epoch >= 1").strip()
            self.assertEqual(owners, "20")
            # A message written to the queue by another process (an import:
            # no daemon was told) wakes an idle node through NOTIFY alone.
            time.sleep(1)
            now = int(time.time() * 1000)
            line = json.dumps({
                "type": "message", "qid": "00000000000000ff", "created_ms": now,
                "sender": "a@example.test", "route": None, "message_id": "<notify@example.test>",
                "envid": None, "dsn_notify": None, "dsn_ret": None, "body_8bit": 0,
                "smtputf8": 0, "submitter": None, "size": 0,
                "body": base64.b64encode(b"Subject: n\r\nMessage-ID: <notify@example.test>"
                                         b"\r\n\r\nn\r\n").decode(),
                "recipients": [{"id": 1, "address": "n@example.test", "state": "queued",
                                "attempts": 0, "next_attempt_ms": now, "updated_ms": now,
                                "last_code": 0, "last_enhanced": "", "last_text": "",
                                "lease_owner": None, "lease_expiry_ms": 0, "lease_epoch": 0}],
                "attempts": []})
            t1 = time.monotonic()
            r = self.missive("queue", "import", "--force", "--config", self.new,
                             stdin=(line + "\n").encode())
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: len(records()) >= 21, 20, "the imported message at the sink")
            self.assertLess(time.monotonic() - t1, 10, "woken by NOTIFY, not the 30 s poll")
        finally:
            for proc, _, _ in nodes:
                proc.send_signal(signal.SIGTERM)
            for proc, _, _ in nodes:
                try:
                    self.assertEqual(proc.wait(30), 0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise
            stop_process(sink)
        for name in ("node1", "node2"):
            with open(os.path.join(self.dir, name + ".stderr"), errors="replace") as f:
                self.assertNotRegex(f.read(), "ERROR: AddressSanitizer|runtime error")

    def test_6_missived_refuses_newer_schema(self):
        r = self.missive("queue", "migrate", "--config", self.new)
        self.assertEqual(r.returncode, 0, r.stderr)
        psql("UPDATE schema_version SET version = 5")
        try:
            proc, _, _ = self.node("newer", 9)
            self.assertEqual(proc.wait(30), 78)
            with open(os.path.join(self.dir, "newer.stderr"), errors="replace") as f:
                self.assertIn("newer missive", f.read())
        finally:
            psql("UPDATE schema_version SET version = 4")


if __name__ == "__main__":
    unittest.main()
