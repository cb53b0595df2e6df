#!/usr/bin/python3
"""faultsmtp.py - missive's fault-injecting SMTP test server (stdlib only).

    faultsmtp.py --port 0 --scenario NAME [--cert F --key F] [--log FILE]
                 [--ready-file F] [--max-sessions N] [--save-dir DIR]

Listens on 127.0.0.1, writes the bound port to --ready-file (atomically),
and plays one scripted scenario per session: a strict, sane ESMTP server
(PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES) with per-scenario
overrides from the SCENARIOS table.  Modelled on Postfix's smtp-sink and
curl's test servers: scripted replies in, exact client transcript out.

Log format (one record per line; bytes are shown with Python
unicode_escape, so CR/LF/NUL/8-bit are visible as \\r \\n \\x00 \\xe9):
    SESSION <n> START <peer> / SESSION <n> END
    R: <n>                 one read() returned n bytes (shows what the client
                           sent in one write: pipelined groups, split writes)
    C: <command line>      a line from the client (CRLF stripped; a line
                           ended by a bare LF keeps a visible "\\n")
    S: <reply line>        a line we sent (raw writes are escaped whole)
    D: <data line>         a DATA line as received (before un-stuffing)
    B: <chunk>             BDAT chunk bytes, escaped
    DATA-BYTES: <sha256 hex> <len>   one per completed message: the hash
                           of the message after dot-unstuffing (DATA) or
                           the concatenated chunks (BDAT)
    EVENT: ... / WARN: ... things that happened / protocol anomalies
Pipelining: replies are queued and flushed only before we block reading,
so replies to a pipelined group go out in one write, as Postfix does.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time

HOST = "faultsmtp.test"
TEST_USER = "testuser"
TEST_PASSWORD = "Tr0ub4dor&3-horse-battery"
TEST_TOKEN = "ya29.GOOD-test-token-0123456789"
MAX_CMD_LINE = 4096        # RFC 5321 4.5.3.1.4 asks for >= 512; be generous
MAX_SIZE = 10240000
OK_RCPT = "250 2.1.5 recipient ok"

# Scenario table.  Keys (all optional):
#   greeting   reply to send at connect      close_after_greeting
#   ehlo       reply to EHLO instead of the capability list (HELO still works)
#   ehlo_raw   bytes sent as the EHLO reply  close_after_ehlo
#   ext        extra EHLO keywords           size   SIZE value advertised
#   starttls   None | "ok" | "454" | "inject"   auth  offer AUTH (after TLS
#              when starttls is offered, else in plaintext); requires AUTH
#   rcpt       f(n) -> reply for the n-th RCPT (1-based), None = 250
#   after_data reply after end of data      drop_in_data  close after 354
#   stall_after_ehlo   never answer anything after the first EHLO
#   split      write every reply one byte at a time with small sleeps
SCENARIOS = {
    "ok": {},
    "ok-chunking": {"ext": ["CHUNKING"]},
    "ok-dsn": {"ext": ["DSN"]},
    "greet421": {"greeting": "421 4.3.2 %s service not available" % HOST,
                 "close_after_greeting": True},
    "rcpt451": {"rcpt": lambda n: "451 4.3.0 temporary failure, try later"},
    "rcpt550-second": {"rcpt": lambda n: "550 5.1.1 no such user" if n == 2 else None},
    # Every recipient refused by policy (not an unknown user: nothing is
    # suppressed), for the gateway's reputation tests.
    "rcpt550": {"rcpt": lambda n: "550 5.7.1 recipient refused by policy"},
    "drop-in-data": {"drop_in_data": True},
    "stall-after-ehlo": {"stall_after_ehlo": True},
    "starttls454": {"starttls": "454"},
    "split-replies": {"split": True},
    "starttls-inject": {"starttls": "inject", "auth": True},
    "starttls": {"starttls": "ok"},
    "ehlo5xx": {"ehlo": "502 5.5.2 EHLO not implemented, use HELO"},
    "size-limit": {"size": 1000},
    "auth": {"starttls": "ok", "auth": True},
    "auth-plaintext": {"auth": True},
    "data554": {"after_data": "554 5.6.0 message content rejected"},
    "trunc-reply": {"ehlo_raw": ("250-%s\r\n250-PIPEL" % HOST).encode(),
                    "close_after_ehlo": True},
    "long-reply": {"ehlo_raw": ("250-%s\r\n250-%s\r\n250 PIPELINING\r\n"
                                % (HOST, "X" * 102400)).encode()},
}


class TriesPerAddress:
    """A rcpt_addr function whose reply depends on how often the address was
    offered to this server process, across all its sessions: replies[k] for
    the (k+1)-th RCPT of that address, None (250) once they are used up."""

    def __init__(self, replies):
        self.replies, self.tries, self.lock = list(replies), {}, threading.Lock()

    def __call__(self, address):
        with self.lock:
            k = self.tries.get(address.lower(), 0)
            self.tries[address.lower()] = k + 1
        return self.replies[k] if k < len(self.replies) else None


# Scenarios with state across sessions (daemon retry tests).  Key:
#   rcpt_addr  f(address) -> reply for a RCPT of that address, None = as "rcpt"
SCENARIOS["rcpt451twice"] = {
    "rcpt_addr": TriesPerAddress(["451 4.3.0 temporary failure, try later (1)",
                                  "451 4.3.0 temporary failure, try later (2)"])}
SCENARIOS["data451"] = {"after_data": "451 4.3.0 message not accepted now, try later"}


def _quoting(address):
    """Replies that quote the address, as real servers' do (the audit trail must mask
    them): defer* 451, bounce* 550, others accepted."""
    local = address.split("@")[0].lower()
    if local.startswith("defer"):
        return "451 4.2.2 <%s>: mailbox full, call 13812345678 for help" % address
    if local.startswith("bounce"):
        return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
    return None


SCENARIOS["rcpt-quote"] = {"rcpt_addr": _quoting}

TLS_SCENARIOS = {n for n, s in SCENARIOS.items() if s.get("starttls") in ("ok", "inject")}


def esc(b):
    return b.decode("latin-1").encode("unicode_escape").decode("ascii")


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="ascii") if path else sys.stderr
        self.lock = threading.Lock()

    def __call__(self, line):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


class Close(Exception):
    """End the session now (scripted close, QUIT, fatal error)."""


class Conn:
    """A socket with an input buffer and a queued, lazily flushed output."""

    def __init__(self, sock, log, split):
        self.sock, self.log, self.split = sock, log, split
        self.buf = b""
        self.out = []

    def fill(self):
        self.flush()
        try:
            d = self.sock.recv(65536)
        except ssl.SSLError as e:
            self.log("EVENT: TLS error on read: %s" % e)
            d = b""
        if not d:
            raise EOFError
        self.log("R: %d" % len(d))
        self.buf += d

    def readline(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise Close("client line longer than 1 MiB")
            self.fill()
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def reply(self, text):
        lines = text.split("\n")
        for i, ln in enumerate(lines):
            if i < len(lines) - 1:      # multi-line: "250-..." then "250 ..."
                ln = ln[:3] + "-" + ln[4:]
            self.log("S: " + ln)
            self.out.append(ln.encode() + b"\r\n")

    def raw(self, data, split=None):
        shown = esc(data[:300]) + ("... (%d bytes)" % len(data) if len(data) > 300 else "")
        self.log("S: " + shown)
        self.out.append(data)
        if split is False:              # must stay one write (injection)
            self.flush(split=False)

    def flush(self, split=None):
        data, self.out = b"".join(self.out), []
        if not data:
            return
        if self.split if split is None else split:
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                time.sleep(0.001)
        else:
            self.sock.sendall(data)


class Session:
    def __init__(self, sock, sc, srv, n):
        self.sc, self.srv, self.n, self.log = sc, srv, n, srv.log
        sock.settimeout(srv.idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c = Conn(sock, self.log, sc.get("split", False))
        self.tls = self.authed = self.stalled = False
        self.helo = None            # "EHLO" / "HELO" once greeted
        self.reset()

    def reset(self):
        self.mail, self.rcpts, self.nrcpt, self.bdat = None, [], 0, None

    # ---- session loop -------------------------------------------------
    def run(self):
        try:
            self.dialogue()
        except EOFError:
            self.log("EVENT: client closed the connection")
        except Close as e:
            self.log("EVENT: closing: %s" % e)
        except socket.timeout:
            self.log("EVENT: idle timeout, closing")
        except (OSError, ssl.SSLError) as e:
            self.log("EVENT: socket error: %s" % e)
        finally:
            try:
                self.c.sock.close()
            except OSError:
                pass
            self.log("SESSION %d END" % self.n)

    def dialogue(self):
        self.c.reply(self.sc.get("greeting", "220 %s ESMTP faultsmtp" % HOST))
        if self.sc.get("close_after_greeting"):
            self.c.flush()
            raise Close("scripted close after greeting")
        while True:
            line = self.c.readline()
            if line.endswith(b"\r\n"):
                self.log("C: " + esc(line[:-2]))
            else:
                self.log("C: " + esc(line))
                self.log("WARN: command line ended by bare LF")
            self.command(line.rstrip(b"\r\n"))

    def command(self, line):
        if self.stalled:
            return
        if len(line) > MAX_CMD_LINE:
            return self.c.reply("500 5.5.2 line too long")
        text = line.decode("latin-1")
        verb, _, arg = text.partition(" ")
        fn = getattr(self, "cmd_" + verb.upper(), None)
        if fn is None or not verb.isalpha():
            return self.c.reply("502 5.5.2 command not recognized")
        fn(arg)

    # ---- capabilities ---------------------------------------------------
    def extensions(self):
        size = self.sc.get("size", MAX_SIZE)
        ext = ["PIPELINING", "SIZE %d" % size, "8BITMIME", "ENHANCEDSTATUSCODES"]
        ext += self.sc.get("ext", [])
        if self.sc.get("starttls") and not self.tls:
            ext.append("STARTTLS")
        if self.auth_offered():
            ext.append("AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2")
        return ext

    def offered(self, kw):
        return self.helo == "EHLO" and any(e.split()[0] == kw for e in self.extensions())

    def auth_offered(self):
        return bool(self.sc.get("auth")) and (self.tls or not self.sc.get("starttls"))

    # ---- commands -------------------------------------------------------
    def cmd_EHLO(self, arg):
        if "ehlo" in self.sc:
            return self.c.reply(self.sc["ehlo"])
        if "ehlo_raw" in self.sc:
            self.c.raw(self.sc["ehlo_raw"])
            if self.sc.get("close_after_ehlo"):
                self.c.flush()
                raise Close("scripted close after EHLO reply")
            self.helo = "EHLO"
            return
        if not arg:
            return self.c.reply("501 5.5.4 EHLO needs a domain")
        self.helo = "EHLO"
        self.reset()
        self.c.reply("\n".join(["250 %s greets %s" % (HOST, arg)] +
                               ["250 " + e for e in self.extensions()]))
        if self.sc.get("stall_after_ehlo"):
            self.stalled = True
            self.log("EVENT: stalling from now on")

    def cmd_HELO(self, arg):
        if not arg:
            return self.c.reply("501 5.5.4 HELO needs a domain")
        self.helo = "HELO"
        self.reset()
        self.c.reply("250 %s" % HOST)

    def cmd_STARTTLS(self, arg):
        mode = self.sc.get("starttls")
        if not mode or self.tls or self.helo != "EHLO":
            return self.c.reply("503 5.5.1 STARTTLS not available now")
        if arg:
            return self.c.reply("501 5.5.4 no parameters allowed")
        if mode == "454":
            return self.c.reply("454 4.7.0 TLS not available due to temporary reason")
        if mode == "inject":
            self.c.raw(b"220 2.0.0 ready to start TLS\r\n250 injected\r\n", split=False)
        else:
            self.c.reply("220 2.0.0 ready to start TLS")
            self.c.flush()
        if self.c.buf:          # RFC 3207 5: discard, but record the client's mistake
            self.log("WARN: client pipelined %d plaintext bytes after STARTTLS (discarded)"
                     % len(self.c.buf))
            for ln in self.c.buf.splitlines():
                self.log("C: " + esc(ln))
            self.c.buf = b""
        try:
            self.c.sock = self.srv.ctx.wrap_socket(self.c.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            raise Close("TLS handshake failed: %s" % e)
        self.log("EVENT: TLS established %s %s" % (self.c.sock.version(),
                                                   self.c.sock.cipher()[0]))
        if self.c.sock.session_reused:
            self.log("EVENT: TLS resumed")
        peer = self.c.sock.getpeercert()
        if peer:
            subject = ",".join("%s=%s" % kv for rdn in peer.get("subject", ()) for kv in rdn)
            self.log("EVENT: client certificate " + subject)
        self.tls, self.helo, self.authed = True, None, False
        self.reset()

    def cmd_AUTH(self, arg):
        if not self.auth_offered() or self.helo != "EHLO":
            return self.c.reply("503 5.5.1 AUTH not available")
        if self.authed or self.mail:
            return self.c.reply("503 5.5.1 bad sequence of commands")
        mech, _, ir = arg.partition(" ")
        fn = getattr(self, "sasl_" + mech.upper().replace("-", "_"), None)
        if fn is None:
            return self.c.reply("504 5.5.4 unrecognized authentication type")
        try:
            ok = fn(self.decode(ir) if ir else None)
        except ValueError as e:
            return self.c.reply("501 5.5.2 %s" % e)
        if ok:
            self.authed = True
            self.c.reply("235 2.7.0 authentication successful")
        else:
            self.c.reply("535 5.7.8 authentication credentials invalid")

    def decode(self, s):
        if s == "=":
            return b""
        if s == "*":
            raise ValueError("authentication cancelled")
        try:
            return base64.b64decode(s.strip(), validate=True)
        except ValueError:
            raise ValueError("invalid base64")

    def challenge(self, payload):
        self.c.reply("334 " + b64(payload))
        line = self.c.readline()
        self.log("C: " + esc(line.rstrip(b"\r\n")))
        return self.decode(line.rstrip(b"\r\n").decode("latin-1"))

    def sasl_PLAIN(self, ir):
        resp = ir if ir is not None else self.challenge(b"")
        parts = resp.split(b"\0")
        if len(parts) != 3:
            raise ValueError("malformed PLAIN response")
        return parts[1:] == [TEST_USER.encode(), TEST_PASSWORD.encode()]

    def sasl_LOGIN(self, ir):
        user = ir if ir is not None else self.challenge(b"Username:")
        pw = self.challenge(b"Password:")
        return (user, pw) == (TEST_USER.encode(), TEST_PASSWORD.encode())

    def sasl_CRAM_MD5(self, ir):
        if ir is not None:
            raise ValueError("CRAM-MD5 takes no initial response")
        chal = ("<%d.%d@%s>" % (os.getpid(), time.time_ns(), HOST)).encode()
        user, _, digest = self.challenge(chal).partition(b" ")
        want = hmac.new(TEST_PASSWORD.encode(), chal, hashlib.md5).hexdigest().encode()
        return user == TEST_USER.encode() and hmac.compare_digest(digest, want)

    def sasl_XOAUTH2(self, ir):
        resp = ir if ir is not None else self.challenge(b"")
        m = re.fullmatch(rb"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01", resp)
        if m and m.groups() == (TEST_USER.encode(), TEST_TOKEN.encode()):
            return True
        err = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        self.c.reply("334 " + b64(json.dumps(err)))
        line = self.c.readline()        # the client must answer with an empty line
        self.log("C: " + esc(line.rstrip(b"\r\n")))
        if line.rstrip(b"\r\n"):
            self.log("WARN: non-empty reply to the XOAUTH2 error challenge")
        return False

    def cmd_MAIL(self, arg):
        if not self.helo:
            return self.c.reply("503 5.5.1 send EHLO/HELO first")
        if self.sc.get("auth") and not self.authed:
            return self.c.reply("530 5.7.0 authentication required")
        if self.mail is not None:
            return self.c.reply("503 5.5.1 nested MAIL command")
        m = re.fullmatch(r"(?i)FROM:<([^<>]*)>((?: [^ ]+)*)", arg)
        if not m:
            return self.c.reply("501 5.5.4 syntax: MAIL FROM:<address>")
        err = self.params(m.group(2), {"SIZE": "SIZE", "BODY": "8BITMIME", "RET": "DSN",
                                       "ENVID": "DSN", "SMTPUTF8": "SMTPUTF8", "AUTH": "AUTH"})
        if err:
            return self.c.reply(err)
        self.mail = m.group(1)
        self.c.reply("250 2.1.0 sender ok")

    def params(self, text, allowed):
        for p in text.split():
            k, _, v = p.partition("=")
            if allowed.get(k.upper()) is None or not self.offered(allowed[k.upper()]):
                return "555 5.5.4 unsupported parameter %s" % k
            if k.upper() == "SIZE" and (not v.isdigit() or int(v) > self.sc.get("size", MAX_SIZE)):
                return "552 5.3.4 message size exceeds fixed limit"
            if k.upper() == "BODY" and v.upper() not in ("7BIT", "8BITMIME"):
                return "555 5.5.4 unsupported BODY type"
        return None

    def cmd_RCPT(self, arg):
        if self.mail is None:
            return self.c.reply("503 5.5.1 need MAIL before RCPT")
        m = re.fullmatch(r"(?i)TO:<([^<>]+)>((?: [^ ]+)*)", arg)
        if not m:
            return self.c.reply("501 5.5.4 syntax: RCPT TO:<address>")
        err = self.params(m.group(2), {"NOTIFY": "DSN", "ORCPT": "DSN"})
        if err:
            return self.c.reply(err)
        self.nrcpt += 1
        r = (self.sc.get("rcpt_addr", lambda a: None)(m.group(1))
             or self.sc.get("rcpt", lambda n: None)(self.nrcpt) or OK_RCPT)
        if r.startswith("2"):
            self.rcpts.append(m.group(1))
        self.c.reply(r)

    def cmd_DATA(self, arg):
        if arg:
            return self.c.reply("501 5.5.4 DATA takes no parameters")
        if self.mail is None or self.bdat is not None:
            return self.c.reply("503 5.5.1 bad sequence of commands")
        if not self.rcpts:
            return self.c.reply("554 5.5.1 no valid recipients")
        self.c.reply("354 end data with <CR><LF>.<CR><LF>")
        if self.sc.get("drop_in_data"):
            self.c.fill()
            self.log("EVENT: got %d data bytes, dropping the connection (RST)" % len(self.c.buf))
            self.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise Close("scripted drop in DATA")
        raw = bytearray(b"\r\n")        # DATA's own CRLF: we start at a line start
        start = 0
        while True:
            raw += self.c.buf
            self.c.buf = b""
            i = raw.find(b"\r\n.\r\n", start)
            if i >= 0:
                break
            start = max(0, len(raw) - 4)
            self.c.fill()
        self.c.buf = bytes(raw[i + 5:])     # pipelined commands after the dot
        content = bytes(raw[2:i + 2])
        lines = content.split(b"\r\n")[:-1]
        for ln in lines:
            self.log("D: " + esc(ln))
        for what, pat in (("bare LF", rb"(?<!\r)\n"), ("bare CR", rb"\r(?!\n)")):
            k = len(re.findall(pat, content))
            if k:
                self.log("WARN: %d %s in DATA (smuggling risk)" % (k, what))
        body = b"".join(ln[1:] + b"\r\n" if ln.startswith(b".") else ln + b"\r\n"
                        for ln in lines)
        self.finish(body)

    def cmd_BDAT(self, arg):
        m = re.fullmatch(r"(?i)(\d+)( LAST)?", arg)
        if not self.offered("CHUNKING"):
            return self.c.reply("502 5.5.1 BDAT not offered")
        if not m:
            return self.c.reply("501 5.5.4 syntax: BDAT <size> [LAST]")
        chunk = self.c.read_exact(int(m.group(1)))      # always consume the chunk
        self.log("B: " + esc(chunk))
        if self.mail is None:
            return self.c.reply("503 5.5.1 need MAIL before BDAT")
        if not self.rcpts:
            return self.c.reply("554 5.5.1 no valid recipients")
        self.bdat = (self.bdat or b"") + chunk
        if m.group(2):
            self.finish(self.bdat)
        else:
            self.c.reply("250 2.0.0 %d octets received" % len(chunk))

    def finish(self, body):
        self.log("DATA-BYTES: %s %d" % (hashlib.sha256(body).hexdigest(), len(body)))
        self.srv.save(body)
        if len(body) > self.sc.get("size", MAX_SIZE):
            r = "552 5.3.4 message size exceeds fixed limit"
        else:
            r = self.sc.get("after_data", "250 2.0.0 ok: queued as FAULT%d" % self.n)
        self.reset()
        self.c.reply(r)

    def cmd_RSET(self, arg):
        self.reset()
        self.c.reply("250 2.0.0 ok")

    def cmd_NOOP(self, arg):
        self.c.reply("250 2.0.0 ok")

    def cmd_VRFY(self, arg):
        self.c.reply("252 2.5.0 cannot VRFY user")

    def cmd_HELP(self, arg):
        self.c.reply("214 2.0.0 see RFC 5321")

    def cmd_QUIT(self, arg):
        self.c.reply("221 2.0.0 bye")
        self.c.flush()
        raise Close("QUIT")


class Server:
    def __init__(self, args):
        self.sc = SCENARIOS[args.scenario]
        self.log = Log(args.log)
        self.idle = args.idle_timeout
        self.save_dir, self.saved = args.save_dir, 0
        self.lock = threading.Lock()
        self.ctx = None
        if args.cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.cert, args.key or args.cert)
            if args.client_ca:
                self.ctx.verify_mode = ssl.CERT_REQUIRED
                self.ctx.load_verify_locations(args.client_ca)

    def save(self, body):
        if self.save_dir:
            with self.lock:
                self.saved += 1
                n = self.saved
            with open(os.path.join(self.save_dir, "msg-%d.eml" % n), "wb") as f:
                f.write(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca", help="require a client certificate issued by this CA")
    ap.add_argument("--log", help="transcript file (default: stderr)")
    ap.add_argument("--ready-file", help="the bound port is written here when listening")
    ap.add_argument("--max-sessions", type=int, help="exit after serving N sessions")
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    ap.add_argument("--save-dir", help="write each received message to DIR/msg-N.eml")
    args = ap.parse_args()
    if args.scenario in TLS_SCENARIOS and not args.cert:
        ap.error("scenario %s needs --cert/--key" % args.scenario)
    srv = Server(args)
    lsock = socket.create_server(("127.0.0.1", args.port), backlog=64)
    port = lsock.getsockname()[1]
    srv.log("EVENT: listening on 127.0.0.1:%d scenario %s" % (port, args.scenario))
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)
    threads, n = [], 0
    while args.max_sessions is None or n < args.max_sessions:
        sock, peer = lsock.accept()
        n += 1
        srv.log("SESSION %d START %s:%d" % (n, peer[0], peer[1]))
        t = threading.Thread(target=Session(sock, srv.sc, srv, n).run, daemon=True)
        t.start()
        threads.append(t)
    lsock.close()
    for t in threads:
        t.join()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
