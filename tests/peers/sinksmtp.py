#!/usr/bin/python3
"""sinksmtp.py - a fast recording SMTP sink for missive's daemon tests (stdlib only).

    sinksmtp.py --port 0 --ready-file F --record FILE [--save-dir DIR]
                [--data-delay SECONDS] [--delay-file PATH] [--events FILE]
                [--transactions FILE]

Listens on 127.0.0.1 (one thread per session) and accepts every message: EHLO
offers PIPELINING, 8BITMIME, SIZE and ENHANCEDSTATUSCODES (no CHUNKING, no TLS,
no AUTH), replies are written in order as each command is read, so pipelined
groups work.  After the final dot of each message it appends ONE line of JSON
to --record and flushes it BEFORE answering 250, so every message the client
saw accepted is in the record:
    {"n": N, "mail_from": "...", "rcpt_tos": [...], "message_id": "<...>" or null,
     "size": BYTES, "sha256": HEX, "session": S, "t": DOT_TIME}
(DOT_TIME: time.time() when the final dot was read.)
The message content (after dot-unstuffing, CRLF kept) is written first to
DIR/N.eml when --save-dir is given.

--data-delay S sleeps S seconds after the final dot before answering (a slow
server, for drain tests); with --delay-file P it sleeps only while P exists.
--events FILE appends one line per session event, for crash tests that must
know what was on the wire at a given moment (times are time.time()):
    open S T      session S accepted
    replied S T   the reply to session S's last final dot was written
    close S T     session S ended (EOF, QUIT, error)
A message of session S is "on the wire" from its record's t until the next
"replied S" line.
--transactions FILE appends "begin S T" when session S's MAIL is accepted and
"end S T" when that transaction ends (its final reply written, RSET, or the
session gone), for tests of how many sessions carry mail at once.

The bound port is written to --ready-file (atomically) once listening.
SIGTERM ends the process.
"""

import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time

HOST = "sink.test"
MID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")


class Sink:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.n = 0
        self.sessions = 0
        self.record = open(args.record, "a", buffering=1, encoding="utf-8")
        self.events = open(args.events, "a", buffering=1) if args.events else None
        self.txns = open(args.transactions, "a", buffering=1) if args.transactions else None

    def txn(self, what, session):
        if self.txns:
            with self.lock:
                self.txns.write("%s %d %.6f\n" % (what, session, time.time()))
                self.txns.flush()

    def event(self, what, session):
        if self.events:
            with self.lock:
                self.events.write("%s %d %.6f\n" % (what, session, time.time()))
                self.events.flush()

    def delay(self):
        d = self.args.data_delay
        if not d:
            return
        if self.args.delay_file and not os.path.exists(self.args.delay_file):
            return
        time.sleep(d)

    def store(self, session, mail_from, rcpts, body, t_dot):
        head = body.split(b"\r\n\r\n", 1)[0]
        m = MID.search(head)
        with self.lock:
            self.n += 1
            n = self.n
            if self.args.save_dir:
                path = os.path.join(self.args.save_dir, "%d.eml" % n)
                with open(path + ".tmp", "wb") as f:
                    f.write(body)
                os.replace(path + ".tmp", path)
            rec = {"n": n, "mail_from": mail_from, "rcpt_tos": rcpts,
                   "message_id": m.group(1).decode("latin-1") if m else None,
                   "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                   "session": session, "t": t_dot}
            self.record.write(json.dumps(rec) + "\n")
            self.record.flush()
        return n

    def serve(self, sock, session):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(120)
        rf = sock.makefile("rb")

        def reply(text):
            sock.sendall(text.encode() + b"\r\n")

        mail_from, rcpts, greeted = None, [], False
        self.event("open", session)
        try:
            reply("220 %s ESMTP sinksmtp" % HOST)
            while True:
                line = rf.readline(65536)
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode("latin-1")
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    greeted = True
                    mail_from, rcpts = None, []
                    reply("250-%s\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
                          "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES" % HOST)
                elif verb == "HELO":
                    greeted = True
                    reply("250 %s" % HOST)
                elif verb == "MAIL":
                    m = re.match(r"(?i)MAIL FROM:<([^>]*)>", cmd)
                    if not greeted or not m or mail_from is not None:
                        reply("503 5.5.1 bad sequence or syntax")
                        continue
                    mail_from, rcpts = m.group(1), []
                    self.txn("begin", session)
                    reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    m = re.match(r"(?i)RCPT TO:<([^>]+)>", cmd)
                    if mail_from is None or not m:
                        reply("503 5.5.1 bad sequence or syntax")
                        continue
                    rcpts.append(m.group(1))
                    reply("250 2.1.5 ok")
                elif verb == "DATA":
                    if mail_from is None or not rcpts:
                        reply("554 5.5.1 no valid recipients")
                        continue
                    reply("354 go ahead")
                    parts = []
                    while True:
                        d = rf.readline(1 << 20)
                        if not d:
                            return
                        if d == b".\r\n":
                            t_dot = time.time()
                            break
                        parts.append(d[1:] if d.startswith(b".") else d)
                    body = b"".join(parts)
                    self.delay()
                    n = self.store(session, mail_from, rcpts, body, t_dot)
                    mail_from, rcpts = None, []
                    reply("250 2.0.0 ok: queued as SINK%d" % n)
                    self.txn("end", session)
                    self.event("replied", session)
                elif verb == "RSET":
                    if mail_from is not None:
                        self.txn("end", session)
                    mail_from, rcpts = None, []
                    reply("250 2.0.0 ok")
                elif verb == "NOOP":
                    reply("250 2.0.0 ok")
                elif verb == "QUIT":
                    reply("221 2.0.0 bye")
                    return
                else:
                    reply("502 5.5.2 command not recognized")
        except OSError:
            pass
        finally:
            if mail_from is not None:
                self.txn("end", session)
            self.event("close", session)
            try:
                sock.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--record", required=True, help="JSON lines, one per accepted message")
    ap.add_argument("--save-dir", help="write each message to DIR/N.eml")
    ap.add_argument("--data-delay", type=float, default=0.0,
                    help="seconds to wait after the final dot before replying")
    ap.add_argument("--delay-file", help="delay only while this file exists")
    ap.add_argument("--events", help="session events (open, replied, close) with times")
    ap.add_argument("--transactions", help="transaction begin and end per session, with times")
    args = ap.parse_args()
    sink = Sink(args)
    lsock = socket.create_server(("127.0.0.1", args.port), backlog=128)
    port = lsock.getsockname()[1]
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.ready_file)
    while True:
        sock, _ = lsock.accept()
        sink.sessions += 1
        threading.Thread(target=sink.serve, args=(sock, sink.sessions), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
