#!/usr/bin/python3
"""Crash safety of missived (issues 6 and 12): 2,000 messages, four kill -9 while
missived delivers with its shipped defaults ([daemon] workers and batch as
`missived --example-config` gives them), a restart after each; nothing may be
lost, and each kill may re-send only what was in flight on the wire.

The messages are queued first while the sink answers slowly, so the daemon
then works through full claimed batches (the case where recording outcomes
only after a whole batch re-sent up to workers x batch messages per kill).
Then the sink answers at full speed and missived is killed four times at
arbitrary moments of that flow (when the sink has received 15, 35, 55 and 75%
of the messages), each time right after the sink recorded a message.

In flight at a kill: with PIPELINING a connection has at most two messages
whose delivery missived has not yet made durable: the one whose data it sent
and whose 250 it awaits, and the one answered just before, whose outcome is
being committed (missived holds the connection until the one before that is
recorded).  The bound for a kill is therefore 2 x the SMTP sessions the sink
had open at that moment (or closed within 50 ms before it: an outcome is
committed within ~10 ms of its reply).  The sink also says, from its event
log, how many messages were on the wire at the kill itself (final dot read,
250 not yet written before the signal), which is printed beside it.

Duplicates are attributed to a kill from the sink's record: a Message-ID
received again after a restart, whose earlier copy arrived before that kill.
A submission whose HTTP response was lost in a kill is retried and may be
queued twice; such double submissions are counted from the queue (two entries
with one Message-ID) and are not delivery duplicates.  Some messages are
submitted with `missive sendmail` while the daemon is down.

Also here, as they test the same outcome recorder (src/daemon/recorder.c):
outcomes the queue refuses (another process holds its write lock past the busy
timeout) leave their recipients leased and are written once it lets go, each
message arriving exactly once; a 550 5.1.1 at RCPT puts the address on the
suppression list along with its outcome.

Peers: tests/peers/sinksmtp.py (a fast recording sink) and faultsmtp.py on 127.0.0.1.
Run:
    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_crash.py
Set MISSIVE_CRASH_KEEP=1 to keep the temp dir.
"""

import collections
import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADDRESS, CRASH, binary, free_port, remove_dir,  # noqa: E402
                     start_peer, wait_for)

MESSAGES = 2000
SENDMAIL_PER_GAP = 10           # of MESSAGES, queued with sendmail while missived is down
KILL_AT = (0.15, 0.35, 0.55, 0.75)  # kill when the sink has this share of MESSAGES
SUBMITTERS = 6                  # parallel HTTP clients
TIMEOUT = 90                    # seconds for the whole run
PER_SESSION = 2                 # messages a pipelining session may have in flight
CLOSED_SLACK = 0.05             # a session closed this long before a kill still counts


def message(i):
    mid = "<crash-%d-%05d@missive.test>" % (os.getpid(), i)
    body = "".join("line %02d of message %d: %s\r\n" % (k, i, "x" * 40) for k in range(20))
    raw = ("From: <sender@example.test>\r\nTo: <rcpt%d@example.test>\r\n"
           "Subject: crash test %d\r\nDate: Sat, 28 Nov 2026 06:00:00 +0000\r\n"
           "Message-ID: %s\r\n\r\n%s" % (i % 50, i, mid, body))
    return mid, raw


def shipped_defaults(daemon_bin):
    """[daemon] workers and batch as `missived --example-config` documents them."""
    text = subprocess.run([daemon_bin, "--example-config"], capture_output=True, check=True,
                          timeout=30).stdout.decode()
    daemon = text.split("[daemon]", 1)[1]
    return tuple(int(re.search(r"(?m)^%s = (\d+)$" % k, daemon).group(1))
                 for k in ("workers", "batch"))


class Kill:
    """What the test knows about one kill: when the signal left and when the
    process was gone, and when the next missived started."""

    def __init__(self, sent, dead):
        self.sent, self.dead, self.restart = sent, dead, None
        self.leased = 0


class CrashTest(unittest.TestCase):

    def setUp(self):
        self.bin = binary("MISSIVE_BIN", "build/src/cli/missive")
        self.daemon_bin = binary("MISSIVED_BIN", "build/src/daemon/missived")
        self.workers, self.batch = shipped_defaults(self.daemon_bin)
        self.dir = tempfile.mkdtemp(prefix="missive-crash-")
        self.sink = self.proc = None
        self.logfile = os.path.join(self.dir, "missived.log")
        self.record = os.path.join(self.dir, "sink.jsonl")
        self.events = os.path.join(self.dir, "sink.events")
        # While slow_file exists the sink holds each reply after the data 0.3 s:
        # the messages pile up in the queue while they are submitted.
        self.slow_file = os.path.join(self.dir, "slow")
        open(self.slow_file, "w").close()
        self.sink, sink_port = start_peer(
            "sinksmtp.py", ["--record", self.record, "--events", self.events,
                            "--data-delay", "0.3", "--delay-file", self.slow_file],
            os.path.join(self.dir, "sink.ready"), os.path.join(self.dir, "sink.stderr"))
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "missive.conf")
        # No workers or batch here: the shipped defaults are what is measured.
        with open(self.cfg, "w") as f:
            f.write("[queue]\npath = %s/queue.db\n\n[http]\nlisten = 127.0.0.1:%d\ntrust-loopback = yes\n\n"
                    "[limits]\nip-rate = off\n\n"
                    "[daemon]\npoll-interval = 100ms\ngrace = 20s\n\n"
                    "[retry]\nbase = 200ms\ncap = 1s\n\n"
                    "[route default]\nserver = 127.0.0.1:%d\ntls = none\ntimeout = 15\n"
                    % (self.dir, self.port, sink_port))

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.sink:
            self.sink.kill()
            self.sink.wait()
        remove_dir(self.dir, "MISSIVE_CRASH_KEEP", "missive crash test files")

    # ---- helpers ----
    def start(self):
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen([self.daemon_bin, "--config", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)

        def up():
            self.assertIsNone(self.proc.poll(), "missived exited at start:\n" + self.log())
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
                return ok
            except OSError:
                return False
        wait_for(up, 20, "missived to answer /healthz")

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def cli(self, args, input=None):
        p = subprocess.run([self.bin, args[0], "--config", self.cfg] + args[1:], input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        self.assertNotRegex(p.stderr.decode(errors="replace"), CRASH)
        self.assertEqual(p.returncode, 0, "missive %s: %s" % (" ".join(args), p.stderr))
        return p.stdout.decode()

    def stats(self):
        return json.loads(self.cli(["queue", "stats", "--json"]))

    def received(self):
        """The sink's record: (message_id, time of the final dot, session)."""
        with open(self.record) as f:
            recs = [json.loads(l) for l in f if l.endswith("\n")]
        return [(r["message_id"], r["t"], r["session"]) for r in recs]

    def received_count(self):
        with open(self.record, "rb") as f:
            return f.read().count(b"\n")

    def sink_events(self):
        """Per session: open time, close time (None: still open), reply times."""
        opened, closed, replied = {}, {}, collections.defaultdict(list)
        with open(self.events) as f:
            for line in f:
                if not line.endswith("\n"):
                    continue
                what, s, t = line.split()
                s, t = int(s), float(t)
                if what == "open":
                    opened[s] = t
                elif what == "close":
                    closed[s] = t
                else:
                    replied[s].append(t)
        return opened, closed, replied

    # ---- what each kill cost ----
    @staticmethod
    def sessions_at(kill, opened, closed):
        """Sessions open when the signal left (or closed just before it)."""
        return sum(1 for s, t in opened.items()
                   if t <= kill.sent and closed.get(s, kill.sent) >= kill.sent - CLOSED_SLACK)

    @staticmethod
    def on_wire_at(kill, since, received, replied):
        """Messages whose final dot the sink had (or read after the signal, before
        the restart: bytes missived sent before it died) and whose 250 it had not
        written before the signal.  The sink answers a session's messages in order,
        so the k-th record of a session pairs with its k-th reply."""
        n, nth = 0, collections.Counter()
        for mid, t, s in received:
            k = nth[s]
            nth[s] += 1
            answered = replied[s][k] if k < len(replied[s]) else None
            if since < t < kill.restart and (answered is None or answered >= kill.sent):
                n += 1
        return n

    @staticmethod
    def attribute(kills, received, per_mid):
        """Duplicates per kill: a Message-ID received more often than it was queued,
        each extra copy charged to the first kill between a copy and the next one.
        Returns (per kill, not attributable to any kill)."""
        copies = collections.defaultdict(list)
        for mid, t, _ in received:
            copies[mid].append(t)
        per_kill, stray = [0] * len(kills), 0
        for mid, ts in copies.items():
            extra = len(ts) - per_mid.get(mid, 0)
            ts.sort()
            for a, b in zip(ts, ts[1:]):
                if extra <= 0:
                    break
                k = next((k for k, x in enumerate(kills) if a < x.restart <= b), None)
                if k is not None:
                    per_kill[k] += 1
                    extra -= 1
            stray += max(0, extra)
        return per_kill, stray

    # ---- the test ----
    def test_kill9_during_delivery_loses_nothing(self):
        t0 = time.monotonic()
        self.start()
        msgs = [message(i) for i in range(MESSAGES)]
        n_sendmail = SENDMAIL_PER_GAP * len(KILL_AT)
        http_todo = collections.deque(range(n_sendmail, MESSAGES))
        lock = threading.Lock()
        counts = {"posted": 0, "ambiguous": 0, "refused": 0}
        errors = []

        def submitter():
            conn = None
            while True:
                with lock:
                    if not http_todo:
                        break
                    i = http_todo.popleft()
                body = json.dumps({"raw": msgs[i][1]})
                while True:
                    if time.monotonic() - t0 > TIMEOUT:
                        errors.append("submission timed out")
                        return
                    sent = False
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                        conn.request("POST", "/v1/messages", body=body,
                                     headers={"Content-Type": "application/json"})
                        sent = True
                        r = conn.getresponse()
                        data = r.read()
                        if r.status != 202:
                            errors.append("POST: %d %s" % (r.status, data[:200]))
                            return
                        with lock:
                            counts["posted"] += 1
                        break
                    except (OSError, http.client.HTTPException):
                        # Refused while missived is down; a request sent but not
                        # answered may have been queued (retried: maybe twice).
                        with lock:
                            counts["ambiguous" if sent else "refused"] += 1
                        if conn is not None:
                            conn.close()
                        conn = None
                        time.sleep(0.02)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=submitter, daemon=True) for _ in range(SUBMITTERS)]
        for t in threads:
            t.start()
        # Queue them all while the sink is slow, then let delivery run at full speed.
        for t in threads:
            t.join(max(1, TIMEOUT - (time.monotonic() - t0)))
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads), "submitters did not finish")
        submitted_at = time.monotonic() - t0
        os.unlink(self.slow_file)

        kills = []
        for k, share in enumerate(KILL_AT):
            wait_for(lambda: self.received_count() >= share * MESSAGES,
                     TIMEOUT - (time.monotonic() - t0), "the sink to reach %d%%" % (share * 100),
                     interval=0.002)
            sent = time.time()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            kill = Kill(sent, time.time())
            kills.append(kill)
            # The dead daemon's leases are still live: claimed, not yet recorded.
            kill.leased = self.stats()["leased"]
            self.assertLessEqual(kill.leased, self.workers * self.batch)
            # Durable submission without the daemon.
            for i in range(k * SENDMAIL_PER_GAP, (k + 1) * SENDMAIL_PER_GAP):
                self.cli(["sendmail", "-t"], input=msgs[i][1].encode())
            kill.restart = time.time()
            self.start()

        def drained():
            st = self.stats()
            return (st["recipients"]["queued"] + st["recipients"]["deferred"] == 0
                    and st["leased"] == 0 and st)
        wait_for(drained, max(5, TIMEOUT - (time.monotonic() - t0)), "the queue to drain",
                 interval=0.3)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(30), 0, "missived exit after SIGTERM")
        elapsed = time.monotonic() - t0

        # The queue: every message sent; entries per Message-ID.
        entries = json.loads(self.cli(["queue", "ls", "--state", "all", "--json"]))
        per_mid = collections.Counter(e["message_id"] for e in entries)
        states = collections.Counter(r["state"] for e in entries for r in e["recipients"])
        self.assertEqual(set(states), {"sent"}, states)
        self.assertEqual(self.stats()["leased"], 0)
        # The sink: every Message-ID at least once.
        received = self.received()
        got = collections.Counter(m for m, _, _ in received)
        want = {m for m, _ in msgs}
        missing = want - set(got)
        self.assertEqual(set(per_mid), want, "queue entries for unknown or missing messages")
        duplicates = sum(max(0, got[m] - per_mid[m]) for m in want)
        double_submitted = sum(per_mid[m] - 1 for m in want)
        per_kill, stray = self.attribute(kills, received, per_mid)
        opened, closed, replied = self.sink_events()
        lines, over = [], []
        for k, kill in enumerate(kills):
            sessions = self.sessions_at(kill, opened, closed)
            wire = self.on_wire_at(kill, kills[k - 1].restart if k else 0, received, replied)
            bound = PER_SESSION * sessions
            lines.append("  kill %d: %d sessions open, %d messages on the wire at the signal, "
                         "bound %d x %d = %d; duplicates %d; %d recipients leased"
                         % (k + 1, sessions, wire, PER_SESSION, sessions, bound, per_kill[k],
                            kill.leased))
            if per_kill[k] > bound:
                over.append(k + 1)
        report = ("crash test: %d messages (%d by sendmail while down), workers %d, batch %d, "
                  "%d kills:\n%s\n  received %d, duplicates %d (%d not after a kill), double "
                  "submissions %d (%d unanswered POSTs); queued in %.1f s, all delivered in "
                  "%.1f s"
                  % (MESSAGES, n_sendmail, self.workers, self.batch, len(kills),
                     "\n".join(lines), len(received), duplicates, stray, double_submitted,
                     counts["ambiguous"], submitted_at, elapsed))
        print("\n" + report, flush=True)
        self.assertEqual(missing, set(), "%d Message-IDs never received; %s" % (
            len(missing), report))
        self.assertEqual(over, [], "kills re-sent more than was in flight; " + report)
        self.assertEqual(stray, 0, "duplicates not caused by a kill; " + report)
        self.assertLessEqual(double_submitted, counts["ambiguous"], report)
        # Restarts gave the dead daemon's leases back at once.
        log = self.log()
        self.assertEqual(len(re.findall(r"which is no longer running", log)),
                         sum(1 for k in kills if k.leased), log[-3000:])
        self.assertNotRegex(log, CRASH)
        m = ADDRESS.search(log)
        self.assertIsNone(m, "an e-mail address in missived's log: %s" % (m and m.group(0)))
        self.assertLess(elapsed, TIMEOUT, report)

    # ---- a queue that refuses outcomes ----
    def test_unrecorded_outcomes_stay_leased_and_are_written_later(self):
        """While another process holds the queue's write lock longer than the
        busy timeout (10 s), outcomes cannot be written: the recipients the sink
        took stay leased (not sent, not free for another claim), the workers
        wait instead of sending on, and once the lock goes the outcomes are
        written: every message arrives exactly once and ends sent."""
        n = 40
        # One worker: idle ones would queue their claims on the locked queue
        # ahead of the outcomes (one write connection), and hide the failure.
        with open(self.cfg) as f:
            text = f.read()
        with open(self.cfg, "w") as f:
            f.write(text.replace("[daemon]\n", "[daemon]\nworkers = 1\n"))
        self.start()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for i in range(n):
            c.request("POST", "/v1/messages", body=json.dumps({"raw": message(i)[1]}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            self.assertEqual(r.status, 202, r.read())
            r.read()
        c.close()
        wait_for(lambda: self.received_count() >= 4, 20, "the first deliveries")
        db = os.path.join(self.dir, "queue.db")
        lock = sqlite3.connect(db, timeout=20, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            os.unlink(self.slow_file)
            time.sleep(12.5)   # past missived's busy timeout (10 s): a commit failed
            ro = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
            sent, leased = ro.execute(
                "SELECT sum(state = 2), sum(state IN (0, 1) AND lease_owner IS NOT NULL)"
                " FROM recipients").fetchone()
            ro.close()
            received = self.received_count()
        finally:
            lock.rollback()
            lock.close()
        # Sent on disk only what the sink took; what it took since is leased.
        self.assertLess(sent, received)
        self.assertGreaterEqual(leased, received - sent)

        def drained():
            st = self.stats()
            return st["recipients"]["sent"] == n and st["leased"] == 0
        wait_for(drained, 30, "every outcome to be written", interval=0.2)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(30), 0, "missived exit after SIGTERM")
        got = collections.Counter(m for m, _, _ in self.received())
        self.assertEqual(set(got), {message(i)[0] for i in range(n)})
        self.assertEqual(max(got.values()), 1, "a message was sent twice")
        log = self.log()
        self.assertRegex(log, r"cannot record \d+ outcomes: .*stay leased")
        self.assertIn("outcomes recorded again after a failure", log)
        self.assertNotRegex(log, CRASH)
        print("\nqueue locked 12.5 s: %d delivered, %d recorded sent, %d leased at the end "
              "of the lock; all %d then sent exactly once" % (received, sent, leased, n),
              flush=True)

    # ---- hard bounces at RCPT ----
    def test_hard_bounce_at_rcpt_is_suppressed_with_its_outcome(self):
        """550 5.1.1 to one RCPT: that recipient is bounced and its address put on
        the suppression list once the outcome is recorded; the other is sent."""
        fault, fport = start_peer(
            "faultsmtp.py", ["--scenario", "rcpt550-second",
                             "--log", os.path.join(self.dir, "fault.log")],
            os.path.join(self.dir, "fault.ready"), os.path.join(self.dir, "fault.stderr"))
        try:
            with open(self.cfg) as f:
                text = f.read()
            with open(self.cfg, "w") as f:
                f.write(re.sub(r"server = 127\.0\.0\.1:\d+", "server = 127.0.0.1:%d" % fport,
                               text))
            self.start()
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c.request("POST", "/v1/messages", headers={"Content-Type": "application/json"},
                      body=json.dumps({"from": "sender@example.test",
                                       "to": ["kept@example.test", "gone@example.test"],
                                       "subject": "hard bounce", "text": "hello"}))
            r = c.getresponse()
            self.assertEqual(r.status, 202, r.read())
            c.close()

            def settled():
                st = self.stats()["recipients"]
                return st["sent"] == 1 and st["bounced"] == 1
            wait_for(settled, 20, "one recipient sent and one bounced")
            wait_for(lambda: "gone@example.test" in self.cli(["suppression", "ls"]), 10,
                     "the bounced address on the suppression list")
            self.assertNotIn("kept@example.test", self.cli(["suppression", "ls"]))
            self.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.proc.wait(30), 0, "missived exit after SIGTERM")
            self.assertNotRegex(self.log(), CRASH)
        finally:
            fault.kill()
            fault.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
