#!/usr/bin/python3
"""Integration tests of the audit trail's export (issue 15, docs/audit.md):
missived hands every event of its trail to Kafka and to syslog, at least once, in
order per qid, and keeps accepting mail while a sink is down.

Peers, all on 127.0.0.1, started per test in one temp dir:
  * tests/tools/kafka_mock.c (KAFKA_MOCK_BIN): librdkafka's mock cluster, 3 brokers,
    taken down and up by commands on its stdin; the topic is read back by `kcat`, an
    independent consumer;
  * a private rsyslogd (imtcp with octet-counted framing, omfile writing RFC 5424 with
    RSYSLOG_SyslogProtocol23Format), started with -n -f and stopped by its PID;
  * a Python TLS listener with the test CA's certificates (tests/peers/certs.sh) that
    checks the RFC 6587 octet counting itself;
  * tests/peers/sinksmtp.py, where the mail goes.

    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
    KAFKA_MOCK_BIN=build/tests/kafka_mock /usr/bin/python3 tests/integration/test_audit_export.py
"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_daemon  # noqa: E402
from harness import (CRASH, binary, free_port, make_certs, make_dir, remove_dir,  # noqa: E402
                     run, set_up, stop_process, unique, wait_for)
from test_daemon import DaemonTest, raw_message  # noqa: E402

G = test_daemon.G
EXPORT_TIMEOUT = 60     # seconds for the sinks to catch up
TOPIC = "missive-audit"
# <PRI>1 TS HOST APP PROCID MSGID SD MSG, as rsyslog's SyslogProtocol23 template writes it.
RFC5424 = re.compile(r"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$")


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    if os.geteuid() != 0:
        raise RuntimeError("run as root (like the other daemon tests)")
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["mock"] = binary("KAFKA_MOCK_BIN", "build/tests/kafka_mock")
    for tool in ("kcat", "rsyslogd"):
        G[tool] = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")
        if not G[tool]:
            raise RuntimeError("%s is missing: run scripts/deps.sh peers" % tool)
    G["root"] = make_dir("missive-audit-export-")
    G["certs"] = os.path.join(G["root"], "certs")
    make_certs(G["certs"])


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_DAEMON_KEEP", "missive audit export test files")
    G.clear()


# ----------------------------------------------------------------------------- peers

class KafkaMock:
    """tests/tools/kafka_mock with n brokers; boot is its bootstrap list."""

    def __init__(self, n=3):
        self.proc = subprocess.Popen([G["mock"], str(n), TOPIC, "3"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        self.n = n
        # The topic as kcat read it last, for the PII scan after the suite (harness.py).
        self.dump = os.path.join(make_dir("kafka.", G["root"]), "kafka-topic.txt")
        self.boot = self.proc.stdout.readline().strip()
        if not self.boot:
            raise RuntimeError("kafka_mock printed no bootstrap address")

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise AssertionError("kafka_mock %s: %s" % (line, answer))

    def all(self, verb):
        for i in range(1, self.n + 1):
            self.command("%s %d" % (verb, i))

    def consume(self):
        """[(key, event)] of the whole topic, as kcat reads it."""
        r = run([G["kcat"], "-C", "-b", self.boot, "-t", TOPIC, "-e", "-q", "-o", "beginning",
                 "-f", "%k\\t%s\\n"], timeout=60)
        if r.returncode != 0:
            raise AssertionError("kcat: %s" % r.stderr.decode(errors="replace"))
        out = []
        for line in r.stdout.decode().splitlines():
            key, _, value = line.partition("\t")
            out.append((key, json.loads(value)))
        with open(self.dump, "w") as f:     # the values: one event a line, as in a trail
            f.write("".join(json.dumps(ev) + "\n" for _, ev in out))
        return out

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop_process(self.proc)
        self.proc.stdout.close()


class Rsyslog:
    """A private rsyslogd: imtcp on 127.0.0.1:port, every message into out.log as
    RFC 5424.  Stopped and started again on the same port."""

    def __init__(self):
        self.dir = make_dir("rsyslog.", G["root"])
        os.makedirs(os.path.join(self.dir, "work"))
        self.out = os.path.join(self.dir, "out.log")
        self.pidfile = os.path.join(self.dir, "rsyslogd.pid")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "rsyslog.conf")
        with open(self.conf, "w") as f:
            f.write('global(workDirectory="%s" maxMessageSize="256k")\n'
                    'module(load="imtcp")\n'
                    'input(type="imtcp" address="127.0.0.1" port="%d" ruleset="audit")\n'
                    'ruleset(name="audit") {\n'
                    '  action(type="omfile" file="%s" template="RSYSLOG_SyslogProtocol23Format")\n'
                    '}\n' % (os.path.join(self.dir, "work"), self.port, self.out))
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "rsyslogd.stderr"), "ab")
        self.proc = subprocess.Popen([G["rsyslogd"], "-n", "-f", self.conf, "-i", self.pidfile],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("rsyslogd exited %d" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, 20, "rsyslogd to listen")

    def stop(self):
        if self.proc:
            stop_process(self.proc, timeout=10)   # by its PID: the Popen's own

    def messages(self):
        """[(header fields, event)] of every line written so far."""
        out = []
        try:
            with open(self.out, errors="replace") as f:
                lines = [l.rstrip("\n") for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return out
        for line in lines:
            m = RFC5424.match(line)
            if not m:
                raise AssertionError("not RFC 5424: %r" % line)
            out.append((m.groups()[:7], json.loads(m.group(8))))
        return out


class TlsListener:
    """Takes TLS connections with cert/key and parses RFC 6587 octet-counted frames:
    frames is every message, errors every framing fault."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.frames, self.errors, self.handshake_failures = [], [], 0
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshake_failures += 1
            c.close()
            return
        buf = b""
        with s:
            while True:
                try:
                    data = s.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not data:
                    break
                buf += data
                while True:
                    m = re.match(rb"([1-9][0-9]*) ", buf)
                    if not m:
                        if buf and not re.match(rb"[0-9]* ?$", buf[:12]):
                            with self.lock:
                                self.errors.append(buf[:80])
                            return
                        break
                    n = int(m.group(1))
                    if len(buf) < m.end() + n:
                        break
                    with self.lock:
                        self.frames.append(buf[m.end():m.end() + n].decode())
                    buf = buf[m.end() + n:]

    def stop(self):
        self.stopping = True
        self.sock.close()


# ----------------------------------------------------------------------------- helpers

def trail(d):
    """Every event of d's trail, in order, parsed."""
    path = os.path.join(d.dir, "audit.jsonl")
    with open(path) as f:
        return [json.loads(l) for l in f if l.endswith("\n")]


def metric(d, name, sink):
    m = re.search(r'(?m)^%s\{sink="%s"\} (\S+)$' % (re.escape(name), sink), d.metrics())
    return float(m.group(1)) if m else None


class ExportTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.extra = []

    def tearDown(self):
        super().tearDown()
        for p in self.extra:
            p.stop()

    def audit_daemon(self, sink, **audit):
        d = self.daemon(self.plain_route(sink), sections={"audit": audit})
        return d

    def submit(self, d, n, tag):
        """n messages of two recipients each; their qids.  Every one accepted (202)."""
        qids = []
        for i in range(n):
            t = unique(tag)
            st, obj, raw = d.post({"raw": raw_message(
                t, to=["a-%s@example.test" % t, "b-%s@example.test" % t])})
            self.assertEqual(st, 202, raw)
            qids.append(obj["id"])
        return qids

    def assertExported(self, events, got, what):
        """Every event of the trail is in got (a list of (key, event)); the key is the
        qid (empty without one); the events of each qid come in trail order."""
        by_seq = {}
        for key, ev in got:
            self.assertEqual(key, ev.get("qid") or "", "%s: key of %r" % (what, ev))
            by_seq.setdefault(ev["seq"], ev)
        missing = [e["seq"] for e in events if e["seq"] not in by_seq]
        self.assertEqual(missing, [], "%s: events missing" % what)
        for e in events:
            self.assertEqual(by_seq[e["seq"]], e, "%s: event %d differs" % (what, e["seq"]))
        seen, per_qid = set(), {}
        for key, ev in got:
            if ev["seq"] in seen:
                continue        # a resend after a failure (at least once)
            seen.add(ev["seq"])
            if ev.get("qid"):
                per_qid.setdefault(ev["qid"], []).append(ev["seq"])
        for qid, seqs in per_qid.items():
            self.assertEqual(seqs, sorted(seqs), "%s: events of %s out of order" % (what, qid))

    def wait_lag_zero(self, d, sink):
        wait_for(lambda: metric(d, "missive_audit_export_lag_events", sink) == 0,
                 EXPORT_TIMEOUT, "the %s export to catch up:\n%s" % (sink, d.metrics()),
                 interval=0.2)

    def syslog_events(self, rs):
        out = []
        for hdr, ev in rs.messages():
            pri, ts, host, app, procid, msgid, sd = hdr
            self.assertEqual((pri, app, sd), ("86", "missived", "-"), hdr)
            self.assertEqual(msgid, ev["type"], hdr)
            self.assertEqual(ts, ev["ts"], hdr)
            out.append((ev.get("qid") or "", ev))
        return out


class KafkaSyslogTest(ExportTest):
    def test_every_event_to_kafka_and_rsyslog(self):
        mock, rs, sink = KafkaMock(), Rsyslog(), self.sink()
        self.extra += [mock, rs]
        d = self.audit_daemon(sink, **{"kafka-brokers": mock.boot,
                                       "syslog": "tcp://127.0.0.1:%d" % rs.port}).start()
        qids = self.submit(d, 12, "kafka")
        for q in qids:
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        self.wait_lag_zero(d, "syslog")
        events = trail(d)
        self.assertTrue(any(e.get("qid") == qids[0] for e in events), events[:5])
        self.assertTrue(any(not e.get("qid") for e in events), "an event without qid")
        self.assertExported(events, mock.consume(), "kafka")
        self.assertExported(events, self.syslog_events(rs), "syslog")
        self.assertGreaterEqual(metric(d, "missive_audit_exported_total", "kafka"), len(events))
        self.stop(d)
        self.assertTrue(os.path.exists(os.path.join(d.dir, "audit.jsonl.cursor-kafka")))
        self.assertTrue(os.path.exists(os.path.join(d.dir, "audit.jsonl.cursor-syslog")))

    def test_sinks_down_then_back_nothing_lost(self):
        mock, rs, sink = KafkaMock(), Rsyslog(), self.sink()
        self.extra += [mock, rs]
        d = self.audit_daemon(sink, **{"kafka-brokers": mock.boot,
                                       "syslog": "tcp://127.0.0.1:%d" % rs.port}).start()
        first = self.submit(d, 4, "before")
        for q in first:
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        self.wait_lag_zero(d, "syslog")
        # Every broker down, rsyslog stopped: missived goes on accepting and
        # delivering; the lag grows.
        mock.all("down")
        rs.stop()
        t0 = time.monotonic()
        during = self.submit(d, 10, "during")
        self.assertLess(time.monotonic() - t0, 20, "submission waited for the sinks")
        for q in during:
            d.wait_final(q)
        n = len(trail(d))
        wait_for(lambda: metric(d, "missive_audit_export_lag_events", "kafka") >= 20, 20,
                 "the kafka lag to grow:\n" + d.metrics())
        wait_for(lambda: metric(d, "missive_audit_export_lag_events", "syslog") >= 20, 20,
                 "the syslog lag to grow:\n" + d.metrics())
        # Nothing counts as exported while the sinks are away.
        exported = {s: metric(d, "missive_audit_exported_total", s) for s in ("kafka", "syslog")}
        time.sleep(3)
        for s in ("kafka", "syslog"):
            self.assertEqual(metric(d, "missive_audit_exported_total", s), exported[s], s)
            self.assertGreaterEqual(metric(d, "missive_audit_export_lag_events", s), 20, s)
        # Back: everything arrives, nothing is lost, in order per qid.
        mock.all("up")
        rs.start()
        after = self.submit(d, 3, "after")
        for q in after:
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        self.wait_lag_zero(d, "syslog")
        events = trail(d)
        self.assertGreater(len(events), n)
        self.assertExported(events, mock.consume(), "kafka")
        self.assertExported(events, self.syslog_events(rs), "syslog")
        self.assertGreaterEqual(metric(d, "missive_audit_export_failures_total", "syslog"), 1)
        self.stop(d)
        text = d.log_text()
        self.assertIn("audit export to syslog", text)

    def test_restart_resumes_from_cursor(self):
        mock, sink = KafkaMock(), self.sink()
        self.extra.append(mock)
        d = self.audit_daemon(sink, **{"kafka-brokers": mock.boot}).start()
        for q in self.submit(d, 3, "one"):
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        self.stop(d)
        before = len(mock.consume())
        d.start()
        for q in self.submit(d, 3, "two"):
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        self.stop(d)
        got = mock.consume()
        events = trail(d)
        self.assertExported(events, got, "kafka")
        # A clean stop saved the cursor: nothing of the first run was sent again.
        self.assertEqual(len(got) - before, len(events) - before,
                         "events sent twice after a clean restart")

    def test_failed_delivery_is_produced_again(self):
        mock, sink = KafkaMock(), self.sink()
        self.extra.append(mock)
        d = self.audit_daemon(sink, **{"kafka-brokers": mock.boot}).start()
        for q in self.submit(d, 2, "ok"):
            d.wait_final(q)
        self.wait_lag_zero(d, "kafka")
        # Refused for good (not retried by librdkafka): the exporter starts again
        # from its cursor, and the events get there after all.
        mock.command("fail 3 29")       # TOPIC_AUTHORIZATION_FAILED
        for q in self.submit(d, 4, "refused"):
            d.wait_final(q)
        wait_for(lambda: metric(d, "missive_audit_export_failures_total", "kafka") >= 1, 30,
                 "a failed delivery to be counted:\n" + d.metrics())
        self.wait_lag_zero(d, "kafka")
        self.assertExported(trail(d), mock.consume(), "kafka")
        self.stop(d)
        self.assertIn("audit export to kafka", d.log_text())

    def test_bad_kafka_property_refuses_start(self):
        sink = self.sink()
        d = self.audit_daemon(sink, **{"kafka-brokers": "127.0.0.1:9",
                                       "kafka.no.such.property": "1"})
        p = subprocess.run([G["daemon"], "--config", d.cfg], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 78, err)
        self.assertIn("kafka.no.such.property", err)
        self.assertNotRegex(err, CRASH)
        d2 = self.audit_daemon(sink, **{"syslog": "tcp://127.0.0.1:9", "path": "off"})
        p = subprocess.run([G["daemon"], "--config", d2.cfg, "--check"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn(b"path = off", p.stderr)


class SyslogTlsTest(ExportTest):
    def test_tls_framing_and_verification(self):
        certs, sink = G["certs"], self.sink()
        good = TlsListener(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
        self.extra.append(good)
        d = self.audit_daemon(sink, **{"syslog": "tls://127.0.0.1:%d" % good.port,
                                       "syslog-ca-file": os.path.join(certs, "ca.pem")}).start()
        for q in self.submit(d, 3, "tls"):
            d.wait_final(q)
        self.wait_lag_zero(d, "syslog")
        events = trail(d)
        wait_for(lambda: len(good.frames) >= len(events), 10, "the frames")
        self.assertEqual(good.errors, [])
        got = []
        for f in good.frames:
            m = RFC5424.match(f)
            self.assertIsNotNone(m, f)
            got.append(("", json.loads(m.group(8))))
        got = [(e.get("qid") or "", e) for _, e in got]
        self.assertExported(events, got, "tls syslog")
        self.stop(d)

        # A certificate for another name: refused, nothing sent, a failure counted.
        wrong = TlsListener(os.path.join(certs, "wronghost.pem"),
                            os.path.join(certs, "wronghost.key"))
        self.extra.append(wrong)
        d2 = self.audit_daemon(sink, **{"syslog": "tls://127.0.0.1:%d" % wrong.port,
                                        "syslog-ca-file": os.path.join(certs, "ca.pem")}).start()
        self.submit(d2, 1, "wrong")
        wait_for(lambda: (metric(d2, "missive_audit_export_failures_total", "syslog") or 0) >= 1,
                 20, "a failure to be counted:\n" + d2.metrics())
        self.assertEqual(wrong.frames, [])
        self.assertGreater(metric(d2, "missive_audit_export_lag_events", "syslog"), 0)
        self.stop(d2)
        self.assertRegex(d2.log_text(), r"audit export to syslog: .*certificate")


if __name__ == "__main__":
    unittest.main(verbosity=2)
