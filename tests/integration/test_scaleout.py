#!/usr/bin/python3
"""Scale-out (issue 16): three missived nodes on one queue with their limits in Redis.

Peers, all on 127.0.0.1, all started here in one temp dir and stopped by PID:
  * redis-server (no persistence, its own dir and port);
  * tests/peers/sinksmtp.py, the recording sink every node delivers to;
  * the queue: PostgreSQL when MSV_TEST_PG_URL is set (tests/peers/pg.sh starts a
    private one and sets it), else one SQLite file all nodes share.
Tests:
  * CrashTest: 3,000 messages submitted to all three nodes (HTTP and sendmail), one
    node kill -9'd twice and restarted, another stopped with SIGTERM and restarted:
    every message delivered, none lost, duplicates <= what the killed nodes had in
    flight (printed);
  * FencingTest: a node frozen (SIGSTOP) past its lease, its message taken over and
    delivered by another, then SIGCONT: its late outcome is refused; also the node
    name in /metrics, the log and `missive queue stats`;
  * LimitTest: a key limited to 60/m hammered through all three nodes for 30 s is
    admitted about as often as one node alone would admit it; with Redis stopped the
    nodes keep admitting, each at its 1/3 share, and go back to Redis when it returns.

    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_scaleout.py
MISSIVE_SCALEOUT_KEEP=1 keeps the temp dir.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADDRESS, CMD_TIMEOUT, CRASH, binary, free_port, make_dir,  # noqa: E402
                     remove_dir, set_up, start_peer, stop_process, unique, wait_for)

START_TIMEOUT = 30
G = {}


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["redis"] = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(G["redis"], os.X_OK):
        raise RuntimeError("redis-server is missing (scripts/deps.sh peers installs it)")
    G["root"] = make_dir("missive-scaleout-")


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_SCALEOUT_KEEP", "scale-out test files")
    G.clear()


def workdir(name):
    return make_dir(name + ".", G["root"])


# ------------------------------------------------------------------------------ peers

class Redis:
    """A private redis-server: no persistence, stopped by PID."""

    def __init__(self):
        self.dir = workdir("redis")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [G["redis"], "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self.ping, 15, "redis-server to answer PING")

    def command(self, *args):
        """One command's first reply line."""
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode())
                                               for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(req)
            return s.recv(256).split(b"\r\n")[0]

    def ping(self):
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc:
            stop_process(self.proc)
            self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port


class Sink:
    def __init__(self, delay=0.0, delay_file=False):
        self.dir = workdir("sink")
        self.delay_file = os.path.join(self.dir, "slow") if delay_file else None
        args = ["--record", os.path.join(self.dir, "record.jsonl"),
                "--transactions", os.path.join(self.dir, "txns")]
        if delay:
            args += ["--data-delay", str(delay)]
        if self.delay_file:
            open(self.delay_file, "w").close()
            args += ["--delay-file", self.delay_file]
        self.proc, self.port = start_peer("sinksmtp.py", args, os.path.join(self.dir, "ready"),
                                          os.path.join(self.dir, "stderr"))

    def records(self):
        try:
            with open(os.path.join(self.dir, "record.jsonl")) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def begun(self):
        try:
            with open(os.path.join(self.dir, "txns")) as f:
                return sum(1 for l in f if l.startswith("begin "))
        except FileNotFoundError:
            return 0

    def stop(self):
        stop_process(self.proc)


# ------------------------------------------------------------------------------ nodes

def queue_section(shared_dir):
    url = os.environ.get("MSV_TEST_PG_URL")
    if url:
        return {"url": url}
    return {"path": os.path.join(shared_dir, "queue.db")}


class Node:
    """One missived named name, on the shared queue."""

    def __init__(self, name, shared, sink, redis, sections=None):
        self.name = name
        self.dir = workdir(name)
        self.cfg = os.path.join(self.dir, "missive.conf")
        self.log = os.path.join(self.dir, "missived.log")
        self.port = free_port()
        self.proc = None
        self.secret = None      # for /metrics without trust-loopback
        s = {"queue": dict(queue_section(shared), lease="3s"),
             "http": {"listen": "127.0.0.1:%d" % self.port, "trust-loopback": "yes"},
             "daemon": {"node": name, "workers": "2", "batch": "16", "poll-interval": "100ms",
                        "grace": "10s", "socket": os.path.join(self.dir, "submit.sock")},
             "limits": {"redis": redis.url, "redis-fallback-nodes": "3"},
             "retry": {"base": "200ms", "cap": "1s"},
             "route default": {"server": "127.0.0.1:%d" % sink.port, "tls": "none",
                               "timeout": "30"}}
        for sec, kv in (sections or {}).items():
            s.setdefault(sec, {}).update(kv)
        with open(self.cfg, "w") as f:
            for sec, kv in s.items():
                f.write("[%s]\n" % sec + "".join("%s = %s\n" % kv_ for kv_ in kv.items()) + "\n")

    def start(self):
        assert not self.running()
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([G["daemon"], "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited %d at start:\n%s" % (
                    self.name, self.proc.returncode, self.log_text()))
            try:
                return self.request("GET", "/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, START_TIMEOUT, self.name + " to answer /healthz")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=30):
        if not self.running():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not exit after SIGTERM" % self.name)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.secret and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.secret
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        if r.getheader("Content-Type", "").startswith("application/json"):
            return r.status, json.loads(data)
        return r.status, data.decode(errors="replace")

    def post(self, raw, secret=None):
        h = {"Content-Type": "application/json"}
        if secret:
            h["Authorization"] = "Bearer " + secret
        return self.request("POST", "/v1/messages", json.dumps({"raw": raw}).encode(), h)[0]

    def metric(self, name):
        st, text = self.request("GET", "/metrics")
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def cli(self, args, input=None):
        p = subprocess.run([G["bin"], args[0], "--config", self.cfg] + list(args[1:]),
                           input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT)
        return p

    def leased_by_node(self):
        p = self.cli(["queue", "stats", "--json"])
        assert p.returncode == 0, p.stderr
        return {n["node"]: n["leased"] for n in json.loads(p.stdout)["leased_by_node"]}


def message(tag, rcpt="rcpt@example.test"):
    return ("From: <sender@example.test>\r\nTo: <%s>\r\nSubject: scale-out %s\r\n"
            "Message-ID: <%s@missive.test>\r\n\r\nBody of %s.\r\n" % (rcpt, tag, tag, tag))


class ScaleOutTest(unittest.TestCase):
    nodes = ()

    def setUp(self):
        self.shared = workdir("queue")
        self.redis = Redis()
        self.sink = None
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                try:
                    n.proc.send_signal(signal.SIGCONT)
                    n.stop()
                except AssertionError:
                    pass
        if self.sink:
            self.sink.stop()
        self.redis.stop()
        for n in self.nodes:
            text = n.log_text()
            self.assertNotRegex(text, CRASH, "sanitizer report in %s's log:\n%s" % (n.name, text))
            self.assertNotRegex(text, ADDRESS, "an address in %s's log:\n%s" % (n.name, text))

    def make_nodes(self, count, sections=None, prefix="node"):
        self.nodes = [Node("%s%d" % (prefix, i + 1), self.shared, self.sink, self.redis,
                           sections) for i in range(count)]
        return self.nodes


# ------------------------------------------------------------------------------ tests

class CrashTest(ScaleOutTest):
    TOTAL = 3000
    BY_SENDMAIL = 150

    def submit_all(self, tags):
        """Every tag submitted once: HTTP round robin over the nodes from 6 threads,
        the last BY_SENDMAIL through `missive sendmail` on each node's socket."""
        http_tags, sm_tags = tags[:-self.BY_SENDMAIL], tags[-self.BY_SENDMAIL:]
        errors = []

        def worker(k):
            for i in range(k, len(http_tags), 6):
                node = self.nodes[i % 3]
                st = node.post(message(http_tags[i]))
                if st != 202:
                    errors.append((node.name, st))
        th = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in th:
            t.start()
        for i, tag in enumerate(sm_tags):
            p = self.nodes[i % 3].cli(["sendmail", "-i", "rcpt@example.test"],
                                      input=message(tag).encode())
            if p.returncode:
                errors.append(("sendmail", p.returncode, p.stderr))
        for t in th:
            t.join()
        self.assertEqual(errors, [])

    def in_flight_all(self):
        return self.nodes[2].leased_by_node()

    def in_flight(self, node):
        """What node has claimed now: an upper bound of what a kill leaves sent but
        unrecorded (sent again later: a duplicate)."""
        return self.nodes[2].leased_by_node().get(node.name, 0)

    def test_kills_lose_nothing(self):
        self.sink = Sink(delay=0.04)
        a, b, c = self.make_nodes(3, {"limits": {"ip-rate": "off", "uid-rate": "off"}})
        for n in self.nodes:
            n.start()
        tags = [unique("crash") for _ in range(self.TOTAL)]
        t0 = time.monotonic()
        self.submit_all(tags)
        print("\nsubmitted %d in %.1f s; delivered so far %d" % (
            self.TOTAL, time.monotonic() - t0, len(self.sink.records())), file=sys.stderr)
        flight = []
        for what in ("kill -9", "kill -9", "SIGTERM"):
            victim = a if what == "kill -9" else b
            time.sleep(1.5)
            n = self.in_flight(victim)
            flight.append(n)
            if what == "kill -9":
                victim.kill9()
            else:
                self.assertEqual(victim.stop(), 0, victim.log_text()[-2000:])
                # SIGTERM lets the node's leases go at once, not at their expiry.
                self.assertNotIn(victim.name, self.in_flight_all())
            print("%s %s with %d recipients claimed" % (what, victim.name, n), file=sys.stderr)
            victim.start()
        want = {"<%s@missive.test>" % t for t in tags}

        def all_there():
            return want <= {r["message_id"] for r in self.sink.records()}
        wait_for(all_there, 180, "every message at the sink")
        time.sleep(1)
        seen = {}
        for r in self.sink.records():
            seen[r["message_id"]] = seen.get(r["message_id"], 0) + 1
        lost = len(want - set(seen))
        dups = sum(v - 1 for k, v in seen.items() if k in want)
        print("delivered %d, lost %d, duplicates %d, in flight at the kills %s (%d)" % (
            len(want), lost, dups, flight, sum(flight)), file=sys.stderr)
        self.assertEqual(lost, 0)
        self.assertLessEqual(dups, sum(flight))
        self.assertEqual(set(seen) - want, set())
        for n in self.nodes:
            self.assertEqual(n.stop(), 0, n.log_text()[-2000:])
        st = json.loads(self.nodes[0].cli(["queue", "stats", "--json"]).stdout)
        self.assertEqual(st["recipients"]["sent"], self.TOTAL, st)
        self.assertEqual(st["leased"], 0, st)


class FencingTest(ScaleOutTest):
    def test_frozen_node_is_fenced(self):
        self.sink = Sink(delay=4.0, delay_file=True)
        a, b = self.make_nodes(2, {"queue": {"lease": "2s"}}, prefix="fence")
        a.start()
        tag = unique("fence")
        self.assertEqual(a.post(message(tag)), 202)
        wait_for(lambda: self.sink.begun() >= 1, 20, "fence1 to start sending")
        time.sleep(0.5)          # its DATA is in, the sink sits on the reply
        a.proc.send_signal(signal.SIGSTOP)
        # Work by node: the frozen node still holds its lease.
        self.assertEqual(b.leased_by_node(), {"fence1": 1})
        os.unlink(self.sink.delay_file)   # the next session is answered at once
        b.start()
        mid = "<%s@missive.test>" % tag
        wait_for(lambda: len([r for r in self.sink.records() if r["message_id"] == mid]) >= 1,
                 30, "fence2 to take the message over and deliver it")
        qid = self.qid(b, mid)
        info = self.show(b, qid)
        wait_for(lambda: self.show(b, qid)["recipients"][0]["state"] == "sent", 20,
                 "fence2 to record the delivery")
        info = self.show(b, qid)
        a.proc.send_signal(signal.SIGCONT)
        # fence1 gets its 250 and records it late: refused.
        wait_for(lambda: len([r for r in self.sink.records() if r["message_id"] == mid]) == 2,
                 20, "fence1's late delivery to reach the sink")
        time.sleep(2)
        after = self.show(b, qid)
        self.assertEqual(after["recipients"][0]["state"], "sent")
        self.assertEqual(len(after["attempts"]), len(info["attempts"]), after)
        self.assertEqual(after["recipients"][0]["updated"], info["recipients"][0]["updated"])
        self.assertEqual(b.metric("missive_delivered_total"), 1)
        self.assertEqual(b.leased_by_node(), {})
        # The node's name in the log and /metrics.
        self.assertIn("missived[fence1]: started: node fence1", a.log_text())
        st, text = a.request("GET", "/metrics")
        self.assertIn('missive_node_info{node="fence1"} 1', text)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    @staticmethod
    def show(node, qid):
        p = node.cli(["queue", "show", qid, "--json"])
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    @staticmethod
    def qid(node, mid):
        p = node.cli(["queue", "ls", "--json", "--state", "all"])
        assert p.returncode == 0, p.stderr
        for m in json.loads(p.stdout):
            if m.get("message_id") == mid:
                return m["id"]
        raise AssertionError("no queued message %s in %s" % (mid, p.stdout))


class LimitTest(ScaleOutTest):
    RATE = 60.0 / 60     # per second: --rate 60/m
    BURST = 1

    def hammer(self, secret, seconds, nodes):
        """Requests as fast as the nodes answer, one thread per node: admitted per node."""
        got = {n.name: 0 for n in nodes}
        stop = time.monotonic() + seconds

        def run(node):
            k = 0
            while time.monotonic() < stop:
                st = node.post(message(unique("hammer")), secret=secret)
                if st == 202:
                    got[node.name] += 1
                else:
                    self.assertEqual(st, 429)
                k += 1
                time.sleep(0.01)
        th = [threading.Thread(target=run, args=(n,)) for n in nodes]
        for t in th:
            t.start()
        for t in th:
            t.join()
        return got

    def test_shared_rate_and_fallback(self):
        self.sink = Sink()
        nodes = self.make_nodes(3, {"http": {"trust-loopback": "no"}}, prefix="lim")
        p = subprocess.run([G["bin"], "key", "add", "hammer", "--config", nodes[0].cfg,
                            "--rate", "60/m", "--burst", str(self.BURST), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        secret = json.loads(p.stdout)["secret"]
        for n in nodes:
            n.secret = secret
            n.start()
            self.assertEqual(n.metric('missive_limits_backend{backend="redis"}'), 1)
        # Redis forgot the scripts (SCRIPT FLUSH, a restart behind a proxy): the
        # nodes send them whole (EVAL) and stay on the shared buckets.
        self.assertEqual(self.redis.command("SCRIPT", "FLUSH"), b"+OK")
        for n in nodes:
            self.assertIn(n.post(message(unique("flush")), secret=secret), (202, 429))
            self.assertEqual(n.metric('missive_limits_backend{backend="redis"}'), 1)
            self.assertEqual(n.metric("missive_limits_fallback_total"), 0)
        time.sleep(60.0 / 60 * 3)   # the bucket full again: what follows starts alike
        got = self.hammer(secret, 30, nodes)
        one = self.BURST + 30 * self.RATE      # what one node alone admits in 30 s
        total = sum(got.values())
        print("\n60/m over 3 nodes for 30 s: %s = %d (one node: %.0f)" % (got, total, one),
              file=sys.stderr)
        self.assertGreaterEqual(total, one * 0.9)
        self.assertLessEqual(total, one * 1.1)

        # Redis gone: each node its 1/3 share (20/m, burst 1), and none stops.
        self.redis.stop()
        got = self.hammer(secret, 15, nodes)
        print("Redis stopped, 15 s: %s" % got, file=sys.stderr)
        share = 1 + 15 * self.RATE / 3
        for n in nodes:
            self.assertGreaterEqual(got[n.name], 3, got)
            self.assertLessEqual(got[n.name], share + 1, got)
            self.assertEqual(n.metric('missive_limits_backend{backend="local"}'), 1)
            self.assertGreaterEqual(n.metric("missive_limits_fallback_total"), 1)
            self.assertEqual(len(re.findall(r"limits: Redis at .* failed", n.log_text())), 1,
                             n.log_text())

        # Back: shared again within the reconnect backoff.
        self.redis.start()
        for n in nodes:
            wait_for(lambda: n.metric('missive_limits_backend{backend="redis"}') == 1, 10,
                     n.name + " to use Redis again")
            self.assertIn("answers again", n.log_text())

        # Scores are shared too: an operator's override, taken by one node, reaches
        # the others through Redis at their next admission of that key.
        p = subprocess.run([G["bin"], "reputation", "set", "key:hammer", "80", "--config",
                            nodes[0].cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: "set to 80.0 by an operator" in "".join(n.log_text() for n in nodes),
                 10, "a node to take the override")
        score = 'missive_reputation_score{identity="key:hammer"}'
        for n in nodes:
            n.post(message(unique("score")), secret=secret)
            # 80, plus 1 for each of these messages already delivered.
            self.assertGreaterEqual(n.metric(score), 79.5)
            self.assertLessEqual(n.metric(score), 80 + len(nodes) + 0.5)
        for n in nodes:
            self.assertEqual(n.stop(), 0, n.log_text()[-2000:])


class ConfigTest(unittest.TestCase):
    """The new keys are checked at start: exit 78 naming the key."""

    def check(self, section, key, value, why):
        d = workdir("config")
        cfg = os.path.join(d, "missive.conf")
        with open(cfg, "w") as f:
            f.write("[queue]\npath = %s/queue.db\n[%s]\n%s = %s\n"
                    "[route default]\nserver = 127.0.0.1:9\ntls = none\n" % (d, section, key,
                                                                             value))
        p = subprocess.run([G["daemon"], "--config", cfg, "--check"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        self.assertEqual(p.returncode, 78 if why else 0, p.stderr)
        if why:
            self.assertRegex(p.stderr.decode(), r"\[%s\] %s: %s" % (section, key, why))

    def test_keys(self):
        self.check("limits", "redis", "redis://127.0.0.1:6379", None)
        self.check("limits", "redis", "redis://10.0.0.5:6380/2", None)
        self.check("limits", "redis", "http://127.0.0.1:6379", "expected redis://")
        self.check("limits", "redis", "redis://127.0.0.1", "expected redis://")
        self.check("limits", "redis", "redis://127.0.0.1:6379/16", "expected redis://")
        self.check("limits", "redis-fallback-nodes", "0", "expected a number")
        self.check("limits", "redis-timeout", "20s", "expected a duration")
        self.check("daemon", "node", "mail-1.example", None)
        self.check("daemon", "node", "a:b", "expected 1 to 64")


if __name__ == "__main__":
    unittest.main(verbosity=2)
