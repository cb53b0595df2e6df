#!/usr/bin/python3
"""A recording SMTP server for missive's integration tests, built on Debian's aiosmtpd.

    /usr/bin/python3 tests/peers/aiosmtpd_server.py --port P --dir D [--ready-file F]

Listens on 127.0.0.1:P (P = 0 picks a free port) with aiosmtpd's defaults: no TLS, no
AUTH, no SMTPUTF8, no DSN, no PIPELINING, no CHUNKING. EHLO offers only SIZE, 8BITMIME
and HELP; aiosmtpd answers 555 to any MAIL or RCPT parameter it did not offer, which
is exactly what the tests want to catch (a client must only use offered extensions).

For each accepted message N (1, 2, ...) it writes into D:
    N.eml   the message content exactly as received after dot-unstuffing (CRLF kept)
    N.json  {"mail_from", "rcpt_tos", "mail_options", "rcpt_options", "helo",
             "peer", "size", "received_at"}
N.json is written last (atomically, by rename), so its presence means N.eml is complete.

When listening it prints the port on stdout and, with --ready-file, writes the port
(decimal, newline) into F (atomically). SIGTERM or SIGINT stops it cleanly.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        content = envelope.original_content
        if content is None:
            content = envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        write_atomic(base + ".eml", content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options or []),
            "rcpt_options": list(envelope.rcpt_options or []),
            "helo": session.host_name,
            "peer": list(session.peer) if session.peer else None,
            "size": len(content),
            "received_at": time.time(),
        }
        write_atomic(base + ".json", json.dumps(meta, indent=1).encode())
        return "250 2.0.0 OK: saved as %d" % self.count


async def main_async(args):
    os.makedirs(args.dir, exist_ok=True)
    loop = asyncio.get_running_loop()
    handler = Recorder(args.dir)

    def factory():
        return SMTP(handler, hostname="aiosmtpd.test", ident="missive-test-aiosmtpd",
                    decode_data=False, enable_SMTPUTF8=False, loop=loop)

    server = await loop.create_server(factory, host="127.0.0.1", port=args.port)
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    print(port, flush=True)
    if args.ready_file:
        write_atomic(args.ready_file, b"%d\n" % port)

    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--dir", required=True, help="directory receiving N.eml and N.json")
    ap.add_argument("--ready-file", help="written with the port once listening")
    args = ap.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
