#!/usr/bin/python3
"""Allocation-failure injection ("torture", as curl's tests/runtests.pl -t): fail the
Nth allocation of missived and of the queue and app unit tests, one N per run, and
check that nothing crashes, hangs or (where the leak check is reliable) leaks.

Targets (docs/internals/torture.md):
  * unit:<program>:<test>  each cmocka test of the torture copies of
    tests/unit/queue/test_queue.c and tests/unit/app/test_wire.c, alone
    (MSV_TORTURE_TEST).  Their own assertions may fail when an allocation fails;
    a leak counts only when the test passed anyway (after a failed assertion the
    test's own objects leak, so the leak report says nothing about the library).
  * daemon  missived (torture copy) with a private config and queue: POST a raw and
    a structured message and a bounce, one message through the submission socket
    (`missive sendmail`, not tortured), GET /v1/messages/ID, /healthz, /metrics,
    SIGTERM.  Expected: a clean error exit (non-zero, with a message) or correct
    operation (an accepted message can be read back); never a sanitizer report
    (leaks included: missived frees everything before it exits), a crash, a hang,
    or an e-mail address in its log.

Each target is run once counting its allocations (K; cJSON's go through msv_malloc in
missived), then with MSV_ALLOC_FAIL=N for every N up to DENSE and SAMPLES more Ns
spread over the rest (deterministic: the same Ns every run for the same K), in two
passes: our allocations only (MSV_ALLOC_SQLITE=0), then SQLite's too (+sqlite).
Failures listed in KNOWN are printed but do not fail the run.

Environment (ctest sets the first four):
  MSV_TORTURE_DAEMON   the torture copy of missived (tests/torture/missived_torture)
  MSV_TORTURE_UNITS    comma-separated torture copies of the unit test programs
  MISSIVE_BIN          missive, for `missive sendmail`
  MSV_SOURCE_DIR       the source tree (tests/peers/sinksmtp.py)
  MSV_TORTURE_SCALE    ci (default, ~60-90 s on 2 cores under ASan), full (every N of
                       our own allocations, hundreds sampled with SQLite's: tens of
                       minutes), or a number: ci's run counts and time caps times it
  MSV_TORTURE_ONLY     a regular expression: only targets whose name matches
  MSV_TORTURE_N        comma-separated Ns: run exactly these (reproduce a failure)
  MSV_TORTURE_JOBS     runs at once (default 2)
  MSV_TORTURE_KEEP     keep the temp dir (configs, logs of failed runs)
Exit status 0 when no run failed; every failure is printed with the command to
reproduce it.
"""

import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import ADDRESS, free_port, start_peer, stop_process  # noqa: E402

# ASan and UBSan report and exit instead of aborting, so a signal means a crash the
# sanitizers did not catch; LSan's report is told apart by its text.
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:strict_string_checks=1:"
                    "detect_stack_use_after_return=0:print_summary=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SANITIZER = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: ThreadSanitizer|"
                       r"Segmentation fault|AddressSanitizer:DEADLYSIGNAL")
LEAK = re.compile(r"ERROR: LeakSanitizer")
UNIT_TIMEOUT = 30       # seconds for one unit test run
DAEMON_TIMEOUT = 15     # seconds for missived to start, answer one request, stop

# Per target and pass (without SQLite, with it): (every N up to, samples beyond).
# ci: the bounded ctest run; a run takes ~25 ms (unit) or ~50 ms (daemon) under ASan.
SCALES = {"ci": {"unit": ((100, 0), (4, 8)), "daemon": ((400, 120), (60, 90))},
          "full": {"unit": ((100000, 0), (400, 400)), "daemon": ((100000, 0), (2000, 2000))}}
# Seconds of runs (per job) one target may take: a slow test gets fewer Ns,
# the first half of them dense, the rest spread over its plan.
TARGET_SECONDS = {"ci": {"unit": 3, "daemon": 30}, "full": {"unit": 900, "daemon": 3600}}
# Findings outside missive's code, reported but not failing the run: (target
# regex, failure regex, why).  docs/internals/torture.md has the details.
KNOWN = []
# Tests that mostly sleep (lock waits, a second process): 4 s a run.
UNIT_SKIP = {"two_handles_one_file", "two_processes_one_file", "busy_timeout_expires"}


def scale():
    s = os.environ.get("MSV_TORTURE_SCALE", "ci")
    if s in SCALES:
        return SCALES[s]
    f = float(s)
    return {k: tuple(tuple(int(x * f) for x in p) for p in v) for k, v in SCALES["ci"].items()}


def plan(name, k, dense, samples):
    """The Ns to fail for a target with k allocations: 1..dense, then samples Ns
    spread evenly over the rest, each moved within its stride by a hash of the
    target's name (deterministic, but not always the same offset)."""
    # A run's count varies a little (threads, timing): dense goes a bit past k.
    ns = list(range(1, min(k + k // 5 + 10, dense) + 1))
    rest = k - dense
    if rest <= 0 or samples <= 0:
        return ns
    stride = rest / samples
    for i in range(samples):
        jitter = zlib.crc32(("%s:%d" % (name, i)).encode()) % max(1, int(stride))
        ns.append(dense + 1 + int(i * stride) + jitter)
    ns.append(k)
    return sorted(set(n for n in ns if 1 <= n <= k))


def read_count(path):
    """(allocations, failed) from an MSV_ALLOC_COUNT file, (None, None) if absent."""
    try:
        with open(path) as f:
            a, b = f.read().split()
        return int(a), int(b)
    except (OSError, ValueError):
        return None, None


def env_with(**kw):
    e = dict(os.environ, **SAN_ENV)
    for k in ("MSV_ALLOC_FAIL", "MSV_ALLOC_COUNT", "MSV_ALLOC_SQLITE", "MSV_TORTURE_TEST"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in kw.items() if v is not None})
    return e


class Failure(Exception):
    pass


def judge_output(text, leaks_count):
    """Raises Failure for a sanitizer report (a leak only when leaks_count)."""
    m = SANITIZER.search(text)
    if m:
        raise Failure("sanitizer report: " + excerpt(text, m.start()))
    m = LEAK.search(text)
    if m and leaks_count:
        raise Failure("leak: " + excerpt(text, m.start()))


def excerpt(text, at, lines=40):
    return "\n    ".join(text[at:].splitlines()[:lines])


# ----------------------------------------------------------------------- unit tests

class Target:
    """What the two passes share: sqlite false counts and fails only msv_malloc's
    (and cJSON's) allocations, so that every N up to DENSE covers our own code
    (SQLite makes thousands when it opens a queue); true adds SQLite's."""

    def __init__(self, name, sqlite):
        self.sqlite = sqlite
        self.name = name + ("+sqlite" if sqlite else "")
        self.kind = "daemon" if name == "daemon" else "unit"

    def alloc_env(self, n, count_file):
        return {"MSV_ALLOC_FAIL": n, "MSV_ALLOC_COUNT": count_file,
                "MSV_ALLOC_SQLITE": None if self.sqlite else 0}

    def env_prefix(self, n):
        return "MSV_ALLOC_FAIL=%d%s" % (n, "" if self.sqlite else " MSV_ALLOC_SQLITE=0")


class UnitTest(Target):
    def __init__(self, program, test, root, sqlite):
        super().__init__("unit:%s:%s" % (os.path.basename(program), test), sqlite)
        self.program, self.test, self.root = program, test, root

    def repro(self, n):
        return "%s MSV_TORTURE_TEST=%s %s" % (self.env_prefix(n), self.test, self.program)

    def run(self, n, count_file=None):
        tmp = tempfile.mkdtemp(prefix="u.", dir=self.root)
        try:
            p = subprocess.run([self.program], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=UNIT_TIMEOUT,
                               env=env_with(MSV_TORTURE_TEST=self.test, TMPDIR=tmp,
                                            **self.alloc_env(n, count_file)))
        except subprocess.TimeoutExpired:
            raise Failure("hang: no exit within %d s" % UNIT_TIMEOUT)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        text = p.stdout.decode(errors="replace")
        if p.returncode < 0:
            raise Failure("killed by signal %d:\n    %s" % (-p.returncode, excerpt(text, 0)))
        passed = "[  PASSED  ] 1 test(s)." in text
        judge_output(text, leaks_count=passed)
        return passed

    def count(self):
        f = os.path.join(self.root, "count.%s" % re.sub(r"\W", "_", self.name))
        if not self.run(None, count_file=f):
            raise Failure("fails without any allocation failure")
        return read_count(f)[0]


def unit_targets(programs, root):
    out = []
    for prog in programs:
        # cmocka cannot list its tests: take the names from a full run.
        p = subprocess.run([prog], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env_with(TMPDIR=root), timeout=120)
        names = re.findall(r"^\[ RUN      \] (\S+)$", p.stdout.decode(errors="replace"), re.M)
        if not names:
            raise RuntimeError("%s listed no tests:\n%s" % (prog, p.stdout.decode()))
        out += [UnitTest(prog, t, root, sq) for sq in (False, True)
                for t in names if t not in UNIT_SKIP]
    return out


# --------------------------------------------------------------------------- daemon

RAW = ("From: <sender@example.test>\r\nTo: <rcpt@example.test>\r\nSubject: torture\r\n"
       "Date: Sat, 05 Dec 2026 06:00:00 +0000\r\nMessage-ID: <torture-%s@missive.test>\r\n"
       "\r\nbody line\r\n.dot line\r\n")
STRUCTURED = {"from": "sender@example.test", "from_name": "T", "to": ["a@example.test"],
              "cc": "b@example.test", "subject": "torture structured", "text": "text part",
              "html": "<p>html part</p>", "headers": {"X-Torture": "1"},
              "attachments": [{"filename": "a.txt", "content_type": "text/plain",
                               "content_base64": "aGVsbG8K"}]}
BOUNCE = ("From: MAILER-DAEMON@example.test\r\nTo: sender@example.test\r\n"
          "Subject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status;"
          " boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\n"
          "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.test\r\n"
          "\r\nFinal-Recipient: rfc822; gone@example.test\r\nAction: failed\r\n"
          "Status: 5.1.1\r\n\r\n--b--\r\n")


class Daemon(Target):
    def __init__(self, exe, cli, sink_port, root, sqlite):
        super().__init__("daemon", sqlite)
        self.exe, self.cli, self.sink_port, self.root = exe, cli, sink_port, root

    def repro(self, n):
        return "%s %s --config CONFIG (the config: MSV_TORTURE_KEEP=1)" % (
            self.env_prefix(n), self.exe)

    def config(self, d, port):
        cfg = os.path.join(d, "missive.conf")
        with open(cfg, "w") as f:
            f.write("[queue]\npath = %s/queue.db\n\n[http]\nlisten = 127.0.0.1:%d\n"
                    "trust-loopback = yes\n\n"
                    "[daemon]\nworkers = 2\nbatch = 16\npoll-interval = 100ms\ngrace = 5s\n"
                    "socket = %s/submit.sock\n\n[retry]\nbase = 200ms\ncap = 1s\n\n"
                    "[route default]\nserver = 127.0.0.1:%d\ntls = none\ntimeout = 10\n"
                    % (d, port, d, self.sink_port))
        return cfg

    @staticmethod
    def request(port, method, path, body=None):
        """(status, body bytes); None when missived closed the connection unanswered
        (it may, when it cannot even build an error reply); Failure on a timeout."""
        h = {}
        if isinstance(body, dict):
            body, h["Content-Type"] = json.dumps(body), "application/json"
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=DAEMON_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        except TimeoutError:
            raise Failure("hang: %s %s unanswered after %d s" % (method, path, DAEMON_TIMEOUT))
        except (http.client.RemoteDisconnected, ConnectionError):
            return None
        finally:
            c.close()

    def run(self, n, count_file=None):
        d = tempfile.mkdtemp(prefix="d.", dir=self.root)
        ok = False
        try:
            ok = self.scenario(d, n, count_file)
            return ok
        finally:
            if not os.environ.get("MSV_TORTURE_KEEP"):
                shutil.rmtree(d, ignore_errors=True)

    def scenario(self, d, n, count_file):
        port = free_port()
        cfg = self.config(d, port)
        log = os.path.join(d, "missived.stderr")
        with open(log, "wb") as out:
            proc = subprocess.Popen([self.exe, "--config", cfg], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out,
                                    env=env_with(**self.alloc_env(n, count_file)))
        try:
            done = self.exercise(proc, port, cfg, log)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(DAEMON_TIMEOUT + 5)
                except subprocess.TimeoutExpired:
                    raise Failure("hang: no exit within %d s of SIGTERM" % (DAEMON_TIMEOUT + 5))
            text = read(log)
            if proc.returncode < 0:
                raise Failure("killed by signal %d:\n    %s" % (-proc.returncode,
                                                              excerpt(text, 0, 30)))
            judge_output(text, leaks_count=True)
            m = ADDRESS.search(text)
            if m:
                raise Failure("an e-mail address in the log: " + excerpt(text, m.start(), 2))
            if proc.returncode and not text.strip():
                raise Failure("exit %d with nothing logged" % proc.returncode)
            if "/var/lib/missive" in text:
                # The defaults: a key of the config was lost, not refused.
                raise Failure("a configured path fell back to its default:\n    " +
                              excerpt(text, 0))
            if not done and proc.returncode == 0:
                raise Failure("exit 0 before SIGTERM:\n    " + excerpt(text, 0))
            return done and proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def exercise(self, proc, port, cfg, log):
        """The requests; False when missived exited at start (the caller judges how)."""
        deadline = time.monotonic() + DAEMON_TIMEOUT
        while True:
            if proc.poll() is not None:
                return False
            try:
                if self.request(port, "GET", "/healthz") is not None:
                    break
            except (Failure, OSError):
                pass
            if time.monotonic() > deadline:
                raise Failure("hang: no answer on /healthz within %d s" % DAEMON_TIMEOUT)
            time.sleep(0.02)
        ids = []
        tag = "%d-%d" % (os.getpid(), threading.get_ident())
        for body in ({"raw": RAW % tag}, STRUCTURED):
            r = self.request(port, "POST", "/v1/messages", body)
            if r and r[0] == 202:
                obj = json.loads(r[1])
                if not isinstance(obj.get("id"), str):
                    raise Failure("202 without an id: %r" % r[1])
                ids.append(obj["id"])
        self.request(port, "POST", "/v1/bounces", {"raw": BOUNCE})
        try:
            p = subprocess.run([self.cli, "sendmail", "--config", cfg, "-t"],
                               input=(RAW % (tag + "-s")).encode(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=DAEMON_TIMEOUT,
                               env=env_with())
        except subprocess.TimeoutExpired:
            raise Failure("hang: missive sendmail did not exit within %d s" % DAEMON_TIMEOUT)
        out = p.stdout.decode(errors="replace")
        if p.returncode < 0 or SANITIZER.search(out) or LEAK.search(out):
            raise Failure("missive sendmail crashed (%d):\n    %s" % (p.returncode,
                                                                      excerpt(out, 0)))
        # Accepted means durable: one allocation failed, so among three reads of
        # an accepted message at least two work.
        for qid in ids:
            seen = []
            for _ in range(3):
                r = self.request(port, "GET", "/v1/messages/" + qid)
                seen.append(r and r[0])
                if r and r[0] == 200:
                    break
            if 200 not in seen and 404 in seen:
                raise Failure("accepted message %s not found: %s" % (qid, seen))
        self.request(port, "GET", "/healthz")
        self.request(port, "GET", "/metrics")
        return True

    def count(self):
        f = os.path.join(self.root, "count." + self.name)
        if not self.run(None, count_file=f):
            raise Failure("the scenario fails without any allocation failure")
        return read_count(f)[0]


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


# --------------------------------------------------------------------------- runner

def cap(ns, runs):
    """At most runs of ns: the first half of them, then evenly spread."""
    if len(ns) <= runs:
        return ns
    head, rest = ns[:runs // 2], ns[runs // 2:]
    step = len(rest) / (runs - len(head))
    return head + [rest[int(i * step)] for i in range(runs - len(head))]


def known(t, why):
    for name, text, reason in KNOWN:
        if re.search(name, t.name) and re.search(text, why):
            return reason
    return None


def torture(targets, scales, only_ns, jobs, deadline, target_seconds):
    failures, total_runs, counts = [], 0, {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        for t in targets:
            try:
                t0 = time.monotonic()
                k = t.count()
                took = time.monotonic() - t0
            except Failure as e:
                failures.append((t, 0, str(e)))
                print("%-60s FAIL without injection: %s" % (t.name, e), flush=True)
                continue
            base = t.name.replace("+sqlite", "")
            if t.sqlite and counts.get(base) == k and not only_ns:
                print("%-60s K=%-6d no SQLite allocations: same as without" % (t.name, k),
                      flush=True)
                continue
            counts[base] = k
            ns = only_ns or cap(plan(t.name, k, *scales[t.kind][t.sqlite]),
                                max(20, int(target_seconds[t.kind] * jobs / max(took, 0.001))))
            t0 = time.monotonic()
            futs = {}
            skipped = 0
            for n in ns:
                futs[ex.submit(guarded, t, n, deadline)] = n
            bad = []
            for f in concurrent.futures.as_completed(futs):
                r = f.result()
                if r == "skipped":
                    skipped += 1
                elif r is not None:
                    bad.append((futs[f], r))
            bad.sort()
            for n, why in [b for b in bad if known(t, b[1])]:
                print("    N=%d: known, not counted: %s" % (n, known(t, why)), flush=True)
            bad = [b for b in bad if not known(t, b[1])]
            total_runs += len(ns) - skipped
            failures += [(t, n, why) for n, why in bad]
            print("%-60s K=%-6d runs=%-4d %5.1fs %s%s" % (
                t.name, k, len(ns) - skipped, time.monotonic() - t0,
                "FAIL %d" % len(bad) if bad else "ok",
                " (%d skipped: time budget)" % skipped if skipped else ""), flush=True)
            for n, why in bad[:5]:
                print("    N=%d: %s\n    reproduce: %s" % (n, why, t.repro(n)), flush=True)
    return failures, total_runs


def guarded(t, n, deadline):
    if time.monotonic() > deadline:
        return "skipped"
    try:
        t.run(n)
        return None
    except Failure as e:
        return str(e)
    except Exception as e:  # a reply the runner could not even read is a finding too
        return "unexpected %s: %s" % (type(e).__name__, e)


def main():
    daemon = os.environ.get("MSV_TORTURE_DAEMON")
    units = [u for u in os.environ.get("MSV_TORTURE_UNITS", "").split(",") if u]
    cli = os.environ.get("MISSIVE_BIN")
    if not daemon or not cli or not units:
        sys.exit("set MSV_TORTURE_DAEMON, MSV_TORTURE_UNITS and MISSIVE_BIN (ctest does)")
    only = re.compile(os.environ.get("MSV_TORTURE_ONLY", ""))
    only_ns = [int(x) for x in os.environ.get("MSV_TORTURE_N", "").split(",") if x]
    jobs = int(os.environ.get("MSV_TORTURE_JOBS", "2"))
    scales = scale()
    # A safety net, not the plan: the ci plan takes about half of this.
    sname = os.environ.get("MSV_TORTURE_SCALE", "ci")
    factor = 1.0 if sname in SCALES else float(sname)
    budget = 86400 if sname == "full" else 170 * factor
    target_seconds = TARGET_SECONDS.get(sname) or {
        k: v * factor for k, v in TARGET_SECONDS["ci"].items()}
    root = tempfile.mkdtemp(prefix="missive-torture-")
    os.chmod(root, 0o755)
    sink = None
    t0 = time.monotonic()
    try:
        sink, sink_port = start_peer("sinksmtp.py", ["--record", os.path.join(root, "sink.jsonl")],
                                     os.path.join(root, "sink.ready"),
                                     os.path.join(root, "sink.log"))
        targets = [Daemon(os.path.abspath(daemon), os.path.abspath(cli), sink_port, root, sq)
                   for sq in (False, True)]
        targets += unit_targets([os.path.abspath(u) for u in units], root)
        targets = [t for t in targets if only.search(t.name)]
        failures, runs = torture(targets, scales, only_ns, jobs, t0 + budget, target_seconds)
    finally:
        if sink:
            stop_process(sink)
        if os.environ.get("MSV_TORTURE_KEEP"):
            sys.stderr.write("torture files kept in %s\n" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("torture: %d targets, %d runs, %d failures, %.0f s" % (
        len(targets), runs, len(failures), time.monotonic() - t0))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
