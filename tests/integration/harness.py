"""What the integration tests (tests/integration/test_*.py) share.

Not a test itself: CTest runs only the test_*.py files.  Each of them is run as
a script from any directory, so it puts its own directory on sys.path first:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import run, unique  # noqa: E402

Here:
  * run, check: a command with its output captured; check raises if it failed;
  * binary: MISSIVE_BIN or MISSIVED_BIN from the environment, made absolute;
  * set_up: a setUpModule/setUpClass that tears down what it set up if it fails;
  * make_dir, remove_dir, write_private, read_env: temp dirs Postfix's daemons can
    traverse (removed afterwards unless a *_KEEP variable is set), 0600 secrets,
    postfix.sh's env files;
  * unique, free_port, wait_for: tags, loopback ports, polling;
  * start_peer, stop_process: the Python SMTP peers of tests/peers (sinksmtp.py,
    faultsmtp.py, aiosmtpd_server.py) on 127.0.0.1:<ephemeral>;
  * make_certs: the test CA and certificates (tests/peers/certs.sh);
  * as_user, runnable_copy: running a build-tree program as an unprivileged user
    (nobody), from a copy every user can reach even when the build tree lies under
    a mode-0700 directory such as /root;
  * prepare_postfix, Postfix: a private Postfix (tests/peers/postfix.sh) with its
    ports, SASL credentials and Maildir; split_prepended for the headers it adds;
  * CRASH, ADDRESS: a sanitizer report or a crash, an e-mail address (in a log).
"""

import atexit
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.normpath(os.path.join(HERE, "..", "peers"))
PY = "/usr/bin/python3"

CMD_TIMEOUT = 30        # seconds, the default for run()
CRASH = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault")
# Anything that looks like an e-mail address (what missived must never log),
# but for the audit trail's pseudonyms (u- and 12 hex digits, docs/audit.md;
# punctuation before an address, as in "-dash@x", stays before its pseudonym).
PSEUDONYM = re.compile(r"u-[0-9a-f]{12}@")
ADDRESS = re.compile(r"(?<![A-Za-z0-9._%+=-])(?![._%+=-]*u-[0-9a-f]{12}@)"
                     r"[A-Za-z0-9._%+=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def _id_valid(s):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(c) * k for c, k in zip(s[:17], w)) % 11] == s[17].upper()


def _luhn(digits):
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# missive's queue IDs: 16 lowercase hex digits, whose runs of decimal digits can pass
# for a phone or card number once thousands of messages are logged (test_scaleout).
# With at least one a-f anywhere, or all digits where a log line names its message
# ("missived: QID: ...", "missived[NODE]: QID: ..."): a 16-digit card number
# elsewhere is still scanned.
QUEUE_ID = re.compile(r"(?<![0-9A-Za-z])(?:(?=[0-9]*[a-f])[0-9a-f]{16}"
                      r"|(?:(?<=missived: )|(?<=\]: ))[0-9]{16}(?=: ))(?![0-9A-Za-z])")


def pii_hits(text):
    """Unmasked personal data in text: addresses that are no pseudonym, mainland China
    mobile numbers, valid resident ID numbers and Luhn-valid card numbers (queue IDs
    left out)."""
    text = QUEUE_ID.sub(" ", text)
    hits = ADDRESS.findall(text)
    text = PSEUDONYM.sub("u-pseudonym@", text)   # its hex digits are no phone number
    hits += PHONE.findall(text)
    hits += [m for m in RESIDENT_ID.findall(text) if _id_valid(m)]
    for m in CARD.findall(text):
        d = re.sub(r"[ -]", "", m)
        if 13 <= len(d) <= 19 and _luhn(d) and not (len(d) == 18 and _id_valid(d)):
            hits.append(m)
    return hits


def masked_text(line):
    """What the masker wrote of an audit trail's line (its actor and masked payload:
    queue IDs, hashes and event IDs are hex or digits by design), or the whole line
    when it is no event (a log line, a metric)."""
    try:
        ev = json.loads(line)
    except ValueError:
        return line
    if not isinstance(ev, dict) or "masked_payload" not in ev:
        return line
    return json.dumps([ev.get("actor"), ev.get("masked_payload")], ensure_ascii=False)


# What the PII scan after the whole suite reads (tests/integration/pii_scan.py):
# missived's logs, audit trails and /metrics of every test, copied here as each
# test's files are removed.
PII_FILES = re.compile(r"^(audit\.jsonl.*|missived\.(stderr|log.*)|metrics\.txt|kafka-topic\.txt)$")


def keep_for_pii_scan(path):
    """Copies the files under path that the PII scan reads into $MSV_PII_DIR."""
    dest = os.environ.get("MSV_PII_DIR")
    if not dest or not path or not os.path.isdir(path):
        return
    for root, _dirs, files in os.walk(path):
        for name in files:
            if not PII_FILES.match(name) or name.endswith((".keys", ".head")) or \
                    ".cursor-" in name:
                continue
            src = os.path.join(root, name)
            os.makedirs(dest, exist_ok=True)
            target = os.path.join(dest, "%s-%d-%s" % (os.path.basename(sys.argv[0]),
                                                       os.getpid(), unique(name)))
            try:
                shutil.copyfile(src, target)
            except OSError:
                pass


# ------------------------------------------------------------------------ processes

def run(cmd, timeout=CMD_TIMEOUT, **kw):
    """subprocess.run with stdout and stderr captured (bytes); kw go to subprocess.run."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, **kw)


def check(r, what):
    """Raises RuntimeError with r's output unless the command r (from run) exited 0."""
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s%s" % (
            what, r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))


def binary(var, example):
    """The absolute path of the executable named by the environment variable var."""
    b = os.environ.get(var)
    if not b:
        raise RuntimeError("%s is not set (e.g. %s=%s)" % (var, var, example))
    b = os.path.abspath(b)
    if not os.access(b, os.X_OK):
        raise RuntimeError("%s=%s is not an executable file" % (var, b))
    return b


def set_up(setup, tear_down):
    """Runs setup(); if it raises, runs tear_down() and passes the error on
    (unittest does not call tearDownModule/tearDownClass after a failed set-up)."""
    try:
        setup()
    except BaseException:
        tear_down()
        raise


def prepare_postfix():
    """What a private Postfix needs: root (its master starts as root), and the packages
    tests/peers/deps.sh installs."""
    if os.geteuid() != 0:
        raise RuntimeError("these tests must run as root (Postfix's master starts as root)")
    check(run([os.path.join(PEERS, "deps.sh")], timeout=900), "tests/peers/deps.sh")


def make_certs(certs, timeout=60):
    """tests/peers/certs.sh: the test CA (ca.pem) and server certificates in certs."""
    check(run([os.path.join(PEERS, "certs.sh"), certs], timeout=timeout), "certs.sh")


def stop_process(proc, timeout=5):
    """SIGTERM, then SIGKILL if proc has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_peer(script, args, ready, log, timeout=15):
    """(process, port) of tests/peers/script with args, listening on
    127.0.0.1:<ephemeral>, once it has written its port into the file ready.  Its
    stdout and stderr go to the file log.  If it exits, or does not listen within
    timeout seconds, it is stopped and the error shows what it logged."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([PY, os.path.join(PEERS, script), "--port", "0",
                                 "--ready-file", ready] + list(args),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            with open(log, errors="replace") as f:
                raise RuntimeError("%s did not start (exit %s):\n%s" % (
                    script, proc.returncode, f.read()))
        time.sleep(0.01)
    with open(ready) as f:
        return proc, int(f.read().strip())


# --------------------------------------------------------------------------- files

def make_dir(prefix, parent=None):
    """A new temp dir (in parent, default the system's) with mode 0755, so that Postfix's
    daemons (user postfix) and unprivileged test users can traverse it."""
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(d, 0o755)
    return d


def remove_dir(path, keep_var, what):
    """Removes the tree path, unless the environment variable keep_var is set: then says
    on stderr where what was kept."""
    if not path:
        return
    keep_for_pii_scan(path)
    if os.environ.get(keep_var):
        sys.stderr.write("\n%s kept in %s\n" % (what, path))
    else:
        shutil.rmtree(path, ignore_errors=True)


def write_private(path, text):
    """Writes text into path with mode 0600 (passwords, tokens); returns path."""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def read_env(path):
    """The NAME=value lines of a shell env file (as postfix.sh writes them), as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


# --------------------------------------------------------------------- other users

def as_user(name="nobody"):
    """subprocess keyword arguments that run a command as the user name: its uid, its
    primary group, no supplementary groups (the caller must be root)."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


_copies = {}


# What a program of the build tree runs from its own directory: the light missive
# execs the missive-core beside it for every command but sendmail, and both it and
# the sendmail front end exec missive-core when missived does not take a message.
_COMPANIONS = {"missive": ["missive-core"], "missive-sendmail": ["missive-core"]}


def _companions(exe):
    """The programs beside exe that exe runs (_COMPANIONS), to be copied with it."""
    d = os.path.dirname(exe)
    return [os.path.join(d, n) for n in _COMPANIONS.get(os.path.basename(exe), [])
            if os.path.isfile(os.path.join(d, n))]


def _check_reachable(path, user):
    """Raises RuntimeError naming the first directory above path that others may not
    traverse (their x bit): user could not reach path through it."""
    d = os.path.dirname(os.path.abspath(path))
    while True:
        mode = os.stat(d).st_mode
        if not mode & 0o001:
            raise RuntimeError("%s has mode %04o: the user %s cannot reach %s through it; "
                               "set TMPDIR to a directory every user can traverse"
                               % (d, mode & 0o7777, user, path))
        if d == "/":
            return
        d = os.path.dirname(d)


def runnable_copy(exe, user="nobody"):
    """The path of a copy of the executable exe, with the programs beside it that it
    runs (_companions), that the unprivileged user can run.  Only the owner can reach
    a build tree under a mode-0700 directory (root's home is one), so every test that
    runs a build-tree program as another user runs this copy instead.  The copy is
    made once per exe, in a new mode-0755 temp dir, and removed when the test program
    exits (kept if MISSIVE_BIN_KEEP is set)."""
    exe = os.path.abspath(exe)
    if exe not in _copies:
        d = make_dir("missive-bin-")
        atexit.register(remove_dir, d, "MISSIVE_BIN_KEEP", "binaries copied for " + user)
        for f in [exe] + _companions(exe):
            dst = os.path.join(d, os.path.basename(f))
            shutil.copyfile(f, dst)
            os.chmod(dst, 0o755)
        _copies[exe] = os.path.join(d, os.path.basename(exe))
    _check_reachable(_copies[exe], user)
    return _copies[exe]


# ------------------------------------------------------------------------- polling

_counter = [0]


def unique(prefix):
    """prefix-PID-N, a new N each call: tags, Message-IDs, file names."""
    _counter[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid(), _counter[0])


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.05):
    """pred()'s first true value; AssertionError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ------------------------------------------------------------------------- Postfix

class Postfix:
    """A private Postfix instance (tests/peers/postfix.sh) in root/postfix, started by
    the constructor (which stops whatever it started if the start fails).

      dir       the instance's directory (maillog, etc/, mail/, queue/ in it)
      etc       its configuration directory (postconf -c etc)
      ports     {"PLAIN_PORT": port, "SUBMISSION_PORT": port, ...} from ports.env
      user, password   the SASL credentials from credentials.env
      maildir   the one Maildir of every example.test recipient
      maillog   everything Postfix logged
    """

    SCRIPT = os.path.join(PEERS, "postfix.sh")

    def __init__(self, root, certs=None, timeout=90):
        """certs: the CERTS_DIR for postfix.sh (by default it makes its own in dir/certs);
        timeout: seconds for postfix.sh start."""
        self.dir = os.path.join(root, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.maildir = os.path.join(self.dir, "mail", "example.test")
        self.maillog = os.path.join(self.dir, "maillog")
        env = dict(os.environ, CERTS_DIR=certs) if certs else None
        try:
            check(run([self.SCRIPT, "start", self.dir], timeout=timeout, env=env),
                  "postfix.sh start")
        except BaseException:
            self.stop()
            raise
        self.ports = {k: int(v) for k, v in read_env(os.path.join(self.dir, "ports.env")).items()}
        cred = read_env(os.path.join(self.dir, "credentials.env"))
        self.user, self.password = cred["SASL_USER"], cred["SASL_PASSWORD"]

    def stop(self, timeout=60):
        """postfix.sh stop: the instance and anything it left behind."""
        try:
            run([self.SCRIPT, "stop", self.dir], timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def maildir_files(self):
        """The paths of the messages in the Maildir (new and cur)."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            if os.path.isdir(d):
                out.extend(os.path.join(d, n) for n in os.listdir(d))
        return out

    def find_delivered(self, rcpt, needle):
        """(prepended headers, rest, whole file) of each message in the Maildir that was
        delivered to rcpt (its Delivered-To) and contains needle."""
        found = []
        for path in self.maildir_files():
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if needle not in data:
                continue
            pre, rest = split_prepended(data)
            if rcpt.lower() in [v.lower() for v in pre.get("delivered-to", [])]:
                found.append((pre, rest, data))
        return found


PREPENDED = (b"return-path", b"x-original-to", b"delivered-to", b"received")


def split_prepended(data):
    """(prepended header dict, rest) of a Maildir file: strips the Return-Path,
    X-Original-To, Delivered-To and Received headers Postfix put on top."""
    lines = data.split(b"\n")
    i, pre = 0, {}
    while i < len(lines):
        name = lines[i].split(b":", 1)[0].lower()
        if name not in PREPENDED or b":" not in lines[i]:
            break
        value = lines[i].split(b":", 1)[1].strip()
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
        pre.setdefault(name.decode(), []).append(value.decode(errors="replace"))
    return pre, b"\n".join(lines[i:])


# ---- missived's submission socket (src/app/wire.h) ----

def wire_field(name, value):
    """One field of the submission socket's framing: "NAME LEN\\n" VALUE "\\n"."""
    if isinstance(value, str):
        value = value.encode()
    return b"%s %d\n%s\n" % (name.encode(), len(value), value)


def wire_request(msg, *fields):
    return (wire_field("missive-submit", "1") + b"".join(wire_field(k, v) for k, v in fields)
            + wire_field("message", msg) + wire_field("end", ""))


def wire_call(path, data, timeout=20):
    """Sends data on the socket (as much as the peer takes), closes the sending
    side, returns all that came back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass        # refused early: the answer is still there to read
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b
    finally:
        s.close()
