#!/usr/bin/python3
"""Outbound shaping and the routes' circuit breakers in missived (issue 14).

Peers, all on 127.0.0.1, started per test in one temp dir:
  * tests/peers/sinksmtp.py, a recording sink; with --transactions it logs when
    each session's mail transaction begins and ends (max-connections);
  * tests/peers/faultsmtp.py scenario greet421 (421 at the greeting, then
    close: a server in trouble), which a sink later replaces on the same port.
Every missived runs under its own config and queue in a temp dir, posts over
the HTTP API with [http] trust-loopback = yes, is stopped with SIGTERM (and must
exit 0), and its log is checked for sanitizer reports and e-mail addresses.

Run with the binaries in the environment:
    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_shaping.py
Set MISSIVE_SHAPING_KEEP=1 to keep the temp dir.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADDRESS, CMD_TIMEOUT, CRASH, binary, free_port, make_dir,  # noqa: E402
                     remove_dir, start_peer, stop_process, unique, wait_for)

START_TIMEOUT = 20
G = {}


def setUpModule():
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["root"] = make_dir("missive-shaping-")


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_SHAPING_KEEP", "missive shaping test files")
    G.clear()


def workdir(name):
    return make_dir(name + ".", G["root"])


def raw_message(tag, frm, to):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: shaping %s\r\n"
            "Date: Sat, 05 Dec 2026 06:00:00 +0000\r\nMessage-ID: <%s@missive.test>\r\n\r\n"
            "Body of %s.\r\n" % (frm, to, tag, tag, tag))


class Peer:
    """A Python SMTP peer from tests/peers; port: a fixed one, or None (any)."""

    def __init__(self, script, args, name, port=None):
        self.dir = workdir(name)
        self.errfile = os.path.join(self.dir, "stderr")
        a = args(self.dir) + (["--port", str(port)] if port else [])
        self.proc, self.port = start_peer(script, a, os.path.join(self.dir, "ready"),
                                          self.errfile)

    def stderr(self):
        with open(self.errfile, errors="replace") as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)


class Sink(Peer):
    def __init__(self, port=None, delay=0.0):
        def args(d):
            a = ["--record", os.path.join(d, "record.jsonl"),
                 "--transactions", os.path.join(d, "txns")]
            return a + (["--data-delay", str(delay)] if delay else [])
        super().__init__("sinksmtp.py", args, "sink", port)

    def records(self):
        try:
            with open(os.path.join(self.dir, "record.jsonl")) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def max_concurrent(self):
        """The most mail transactions that were open at one moment."""
        events = []
        with open(os.path.join(self.dir, "txns")) as f:
            for line in f:
                what, _, t = line.split()
                events.append((float(t), 1 if what == "begin" else -1))
        # an end and a begin at the same instant: the end first
        events.sort(key=lambda e: (e[0], e[1]))
        most = cur = 0
        for _, step in events:
            cur += step
            most = max(most, cur)
        return most


class Fault(Peer):
    def __init__(self, scenario):
        super().__init__("faultsmtp.py", lambda d: [
            "--scenario", scenario, "--log", os.path.join(d, "server.log")], scenario)

    def sessions(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            return len(re.findall(r"^SESSION \d+ START", f.read(), re.M))


class Daemon:
    """One missived with its own config and queue in a temp dir."""

    def __init__(self, sections):
        self.dir = workdir("missived")
        self.cfg = os.path.join(self.dir, "missive.conf")
        self.log = os.path.join(self.dir, "missived.stderr")
        self.port = free_port()
        self.proc = None
        s = {"queue": {"path": os.path.join(self.dir, "queue.db")},
             "http": {"listen": "127.0.0.1:%d" % self.port, "trust-loopback": "yes"},
             "daemon": {"workers": "2", "batch": "16", "poll-interval": "100ms",
                        "grace": "20s"},
             "retry": {"base": "200ms", "cap": "1s"}}
        for sec, kv in sections.items():
            s.setdefault(sec, {}).update(kv)
        with open(self.cfg, "w") as f:
            for sec, kv in s.items():
                f.write("[%s]\n" % sec + "".join("%s = %s\n" % i for i in kv.items()) + "\n")

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([G["daemon"], "--config", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("missived exited %d at start:\n%s" % (
                    self.proc.returncode, self.log_text()))
            try:
                return self.request("GET", "/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, START_TIMEOUT, "missived to answer /healthz")
        return self

    def stop(self, tc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        tc.assertEqual(rc, 0, self.log_text())
        text = self.log_text()
        tc.assertNotRegex(text, CRASH, text)
        tc.assertNotRegex(text, ADDRESS, text)
        return text

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None):
        h = {}
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
        finally:
            c.close()
        return r.status, data

    def submit(self, tag, to, sender="sender@example.test"):
        st, raw = self.request("POST", "/v1/messages", {
            "raw": raw_message(tag, sender, to), "sender": sender})
        if st != 202:
            raise AssertionError("POST /v1/messages: %d %s" % (st, raw))
        return json.loads(raw)["id"]

    def metrics(self):
        st, raw = self.request("GET", "/metrics")
        assert st == 200, (st, raw)
        out = {}
        for line in raw.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def cli_json(self, args):
        p = subprocess.run([G["bin"]] + args[:1] + ["--config", self.cfg] + args[1:] +
                           ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=CMD_TIMEOUT)
        if p.returncode:
            raise AssertionError("missive %s: %d %s" % (args, p.returncode, p.stderr))
        return json.loads(p.stdout)

    def stats_text(self):
        p = subprocess.run([G["bin"], "queue", "stats", "--config", self.cfg],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CMD_TIMEOUT)
        if p.returncode:
            raise AssertionError("missive queue stats: %d %s" % (p.returncode, p.stderr))
        return p.stdout.decode()

    def route_state(self, name="default"):
        for r in self.cli_json(["queue", "stats"]).get("routes", []):
            if r["route"] == name:
                return r
        return None


class ShapingTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.daemons, self.peers = [], []

    def tearDown(self):
        for d in self.daemons:
            d.kill()
        for p in self.peers:
            p.stop()
            self.assertNotIn("Traceback", p.stderr(), p.stderr())

    def daemon(self, sections):
        d = Daemon(sections)
        self.daemons.append(d)
        return d.start()

    def peer(self, p):
        self.peers.append(p)
        return p

    @staticmethod
    def route(peer, **kw):
        r = {"server": "127.0.0.1:%d" % peer.port, "tls": "none", "timeout": "15"}
        r.update(kw)
        return r

    def wait_records(self, sink, n, timeout, d):
        try:
            return wait_for(lambda: len(sink.records()) >= n and sink.records(), timeout,
                            "%d messages at the sink" % n)
        except AssertionError as e:
            raise AssertionError("%s (got %d)\n%s" % (e, len(sink.records()),
                                                      d.log_text()[-4000:]))

    def assert_paced(self, recs, per_sec, burst):
        """No one-second window holds more than burst + per_sec deliveries (and
        one more for the jitter of a send's latency)."""
        ts = sorted(r["t"] for r in recs)
        for i, t in enumerate(ts):
            n = sum(1 for u in ts[i:] if u - t < 1.0)
            self.assertLessEqual(n, burst + per_sec + 1, "too many within 1 s from %f" % t)

    def assert_no_attempt_lost(self, d, n):
        # the sink records a message before its 250; missived counts it once
        # the outcome is committed
        m = wait_for(lambda: (lambda m: m["missive_delivered_total"] >= n and m)(d.metrics()),
                     10, "%d outcomes recorded" % n)
        self.assertEqual(m["missive_delivered_total"], n)
        self.assertEqual(m["missive_deferred_total"], 0)
        self.assertEqual(m["missive_bounced_total"], 0)
        # one attempt per message: waiting for a token is not an attempt
        self.assertEqual(m["missive_attempt_duration_seconds_count"], n)
        return m

    # ---------------------------------------------------------------- tokens

    def test_destination_rate_on_every_route(self):
        """50 messages to a domain shaped at 10/s (burst 1), half of them through
        a second route: all delivered in 4.5-7 s, none refused or deferred."""
        sink = self.peer(Sink())
        d = self.daemon({"destination shaped.test": {"rate": "10/s", "burst": "1"},
                         "route other": self.route(sink, **{
                             "sender-domains": "other-sender.test"}),
                         "route default": self.route(sink)})
        t0 = time.time()
        for i in range(50):
            sender = "s@other-sender.test" if i % 2 else "s@example.test"
            d.submit(unique("dest"), "r%d@shaped.test" % i, sender)
        recs = self.wait_records(sink, 50, 30, d)
        took = max(r["t"] for r in recs) - t0
        self.assertGreaterEqual(took, 4.5, "shaping must hold for both routes together")
        self.assertLessEqual(took, 7.0)
        self.assert_paced(recs, 10, 1)
        m = self.assert_no_attempt_lost(d, 50)
        self.assertGreater(m['missive_shaped_total{scope="destination"}'], 0)
        self.assertEqual(m['missive_shaped_total{scope="route"}'], 0)
        self.assertEqual(len({r["rcpt_tos"][0] for r in recs}), 50)
        d.stop(self)

    def test_destination_rate_leaves_other_domains_alone(self):
        """A message to a shaped and an unshaped domain: the unshaped recipient
        goes at once, the shaped one waits its turn."""
        sink = self.peer(Sink())
        d = self.daemon({"destination slow.test": {"rate": "2/s", "burst": "1"},
                         "route default": self.route(sink)})
        t0 = time.time()
        for i in range(6):
            st, raw = d.request("POST", "/v1/messages", {
                "raw": raw_message(unique("mix"), "s@example.test", "a%d@fast.test" % i),
                "recipients": ["a%d@fast.test" % i, "b%d@slow.test" % i],
                "sender": "s@example.test"})
            self.assertEqual(st, 202, raw)
        want = {"a%d@fast.test" % i for i in range(6)} | {"b%d@slow.test" % i for i in range(6)}
        recs = wait_for(lambda: want <= {a for r in sink.records() for a in r["rcpt_tos"]} and
                        sink.records(), 20, "every recipient at the sink")
        fast = [r for r in recs if r["rcpt_tos"][0].endswith("@fast.test")]
        slow = [r for r in recs if any(a.endswith("@slow.test") for a in r["rcpt_tos"])]
        self.assertEqual(len({a for r in fast for a in r["rcpt_tos"] if "fast" in a}), 6)
        self.assertLess(max(r["t"] for r in fast) - t0, 2.0, "fast.test was held back")
        self.assertGreaterEqual(max(r["t"] for r in slow) - t0, 2.4)
        d.stop(self)

    def test_route_rate(self):
        """A route's own rate paces its messages the same way."""
        sink = self.peer(Sink())
        d = self.daemon({"route default": self.route(sink, rate="10/s", burst="1")})
        t0 = time.time()
        for i in range(30):
            d.submit(unique("route"), "r%d@example.test" % i)
        recs = self.wait_records(sink, 30, 30, d)
        took = max(r["t"] for r in recs) - t0
        self.assertGreaterEqual(took, 2.7)
        self.assertLessEqual(took, 5.0)
        self.assert_paced(recs, 10, 1)
        m = self.assert_no_attempt_lost(d, 30)
        self.assertGreater(m['missive_shaped_total{scope="route"}'], 0)
        d.stop(self)

    # ------------------------------------------------------- max-connections

    def test_max_connections(self):
        """max-connections = 1 for a domain: one session at a time carries its
        mail, while another domain's mail goes over several at once."""
        limited = self.peer(Sink(delay=0.3))
        free = self.peer(Sink(delay=0.3))
        d = self.daemon({"daemon": {"workers": "4", "batch": "1"},
                         "destination one.test": {"max-connections": "1"},
                         "route limited": self.route(limited, **{
                             "sender-domains": "limited.test"}),
                         "route default": self.route(free)})
        for i in range(8):
            d.submit(unique("one"), "r%d@one.test" % i, "s@limited.test")
            d.submit(unique("free"), "r%d@free.test" % i, "s@example.test")
        self.wait_records(limited, 8, 30, d)
        self.wait_records(free, 8, 30, d)
        self.assertEqual(limited.max_concurrent(), 1)
        self.assertGreater(free.max_concurrent(), 1, "the test needs concurrent sessions")
        self.assert_no_attempt_lost(d, 16)
        d.stop(self)

    # ------------------------------------------------------- circuit breaker

    def test_breaker_opens_and_probe_closes(self):
        """A 421 storm opens the route's circuit: no more sessions during the
        cool-down, visible in queue stats and /metrics; once the server takes
        mail again a single probe closes it and the rest is delivered."""
        fault = self.peer(Fault("greet421"))
        d = self.daemon({"route default": self.route(fault, **{
            "breaker-failures": "5", "breaker-window": "10s", "breaker-cool-down": "2s"})})
        self.assertEqual(d.route_state(), {"route": "default", "circuit": "closed",
                                           "open_until": None, "trips": 0})
        self.assertIn("route default: circuit closed, 0 trips", d.stats_text())
        for i in range(20):
            d.submit(unique("storm"), "r%d@example.test" % i)
        st = wait_for(lambda: (d.route_state() or {}).get("circuit") == "open" and
                      d.route_state(), 10, "the circuit to open")
        t_open = time.monotonic()
        self.assertIsNotNone(st["open_until"])
        self.assertEqual(st["trips"], 1)
        self.assertRegex(d.stats_text(), r"(?m)^route default: circuit open until "
                                         r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, 1 trip$")
        m = d.metrics()
        self.assertEqual(m['missive_circuit_open{route="default"}'], 1)
        self.assertEqual(m['missive_circuit_trips_total{route="default"}'], 1)
        seen = fault.sessions()
        # 5 failures open it; each run's connection check (the pool connects
        # once for the run, then each message alone) and a second worker's
        # message in flight add a few
        self.assertLessEqual(seen, 14)
        time.sleep(max(0.0, 1.3 - (time.monotonic() - t_open)))
        self.assertEqual(fault.sessions(), seen, "attempts during the cool-down")
        port = fault.port
        fault.stop()
        sink = self.peer(Sink(port=port))
        recs = self.wait_records(sink, 20, 30, d)
        self.assertEqual(len({r["rcpt_tos"][0] for r in recs}), 20)
        wait_for(lambda: d.route_state()["circuit"] == "closed", 10, "the circuit to close")
        m = wait_for(lambda: (lambda m: m["missive_delivered_total"] >= 20 and m)(d.metrics()),
                     10, "20 outcomes recorded")
        self.assertEqual(m['missive_circuit_open{route="default"}'], 0)
        self.assertEqual(m["missive_delivered_total"], 20)
        log = d.stop(self)
        self.assertRegex(log, r"route default: circuit open for 2000 ms")
        self.assertRegex(log, r"route default: circuit closed")

    def test_failed_probe_opens_again(self):
        """After the cool-down a single probe goes; when it fails too the circuit
        opens for another cool-down, and nothing else reached the server."""
        fault = self.peer(Fault("greet421"))
        d = self.daemon({"route default": self.route(fault, **{
            "breaker-failures": "3", "breaker-window": "10s", "breaker-cool-down": "1s"})})
        for i in range(10):
            d.submit(unique("probe"), "r%d@example.test" % i)
        wait_for(lambda: (d.route_state() or {}).get("trips") == 1, 10, "the first trip")
        before = fault.sessions()
        st = wait_for(lambda: (lambda r: r["trips"] == 2 and r)(d.route_state()), 10,
                      "the probe to fail and the circuit to open again")
        self.assertEqual(st["circuit"], "open")
        # the probe is one message: the pool's connection for the run, then the
        # message alone (each answered 421)
        self.assertLessEqual(fault.sessions() - before, 2)
        m = d.metrics()
        self.assertEqual(m['missive_circuit_trips_total{route="default"}'], 2)
        self.assertEqual(m["missive_delivered_total"], 0)
        log = d.stop(self)
        self.assertRegex(log, r"route default: circuit open again for 1000 ms: the probe failed")

    def test_breaker_off(self):
        """breaker-failures = 0: a storm never opens the circuit."""
        fault = self.peer(Fault("greet421"))
        d = self.daemon({"route default": self.route(fault, **{"breaker-failures": "0"})})
        for i in range(10):
            d.submit(unique("off"), "r%d@example.test" % i)
        wait_for(lambda: fault.sessions() >= 25, 20, "retries reaching the server")
        self.assertEqual(d.route_state()["circuit"], "closed")
        m = d.metrics()
        self.assertEqual(m['missive_circuit_open{route="default"}'], 0)
        self.assertEqual(m['missive_circuit_trips_total{route="default"}'], 0)
        self.assertNotIn("circuit open", d.stop(self))


if __name__ == "__main__":
    unittest.main(verbosity=2)
