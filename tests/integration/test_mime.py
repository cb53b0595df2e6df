#!/usr/bin/python3
"""`missive build` and `missive send` content flags, checked by Python's email package.

Every message the builder writes is parsed with email.message_from_bytes(policy=default):
no defect on the message or on any part, no header defect (except the one the contract
asks for: RFC 2047 words in a quoted Content-Type name=, which Python notes), and the
decoded subject, display names, bodies and attachment bytes equal the inputs. Our own
parser (the test program tests/unit/mime/test_dump.c, --json mode) must give the same
tree and the same decoded values. Also: the RFC 2047 corpus, the enmime fixtures and
the bounce corpus through our parser, exit codes of bad input, peak RSS with a 100 MB
attachment, and a message sent through a real Postfix arriving with its attachment intact.

Run: MISSIVE_BIN=build/src/cli/missive /usr/bin/python3 tests/integration/test_mime.py
(as root for the Postfix part, like test_real_peers.py).
"""

import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (Postfix, make_certs, make_dir, prepare_postfix,  # noqa: E402
                     remove_dir, set_up)

SRC = os.environ.get("MSV_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
CORPUS = os.path.join(SRC, "tests", "data")
BIN = os.path.abspath(os.environ.get("MISSIVE_BIN", "build/src/cli/missive"))
# The parser dump program is a unit-test binary of the same build tree.
DUMP = os.path.normpath(os.path.join(os.path.dirname(BIN), "..", "..", "tests",
                                     "unit_mime_test_dump"))
DATE = "Thu, 01 Jan 2026 00:00:00 +0000"
TMP = tempfile.mkdtemp(prefix="missive-mime-")

# Header defects Python reports for what the contract asks: RFC 2047 words in the
# quoted name= parameter of Content-Type, for old clients (RFC 2231 filename* is
# what modern readers use, and it has no defect).
NAME_PARAM_DEFECTS = {"encoded word inside quoted string",
                      "missing trailing whitespace after encoded-word"}


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def run(args, input=None, timeout=120):
    return subprocess.run([BIN] + [str(a) for a in args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def write(name, data):
    path = os.path.join(TMP, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def lf(data):
    """Python decodes a quoted-printable line break as LF, base64 text as sent (CRLF):
    text is compared with line ends folded to LF; everything else octet for octet."""
    return data.replace(b"\r\n", b"\n")


def crlf(text):
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def dump(raw):
    path = write("dump.eml", raw)
    r = subprocess.run([DUMP, "--json", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    if r.returncode != 0:
        raise AssertionError("test_dump failed: %s" % r.stderr.decode(errors="replace"))
    return json.loads(r.stdout.decode("utf-8"))


def header_defects(part):
    out = []
    for name, value in part.items():
        for d in getattr(value, "defects", ()):
            out.append((name, str(d)))
    return out


def _type_token(t):
    """Python keeps junk after a malformed subtype ("text/plain>", "application/pdf
    name=x"); our parser stops at the token (RFC 2045 5.1)."""
    m = re.match(r"[!#$%&'*+\-.^_`|~0-9a-z]+/[!#$%&'*+\-.^_`|~0-9a-z]+", t)
    return m.group(0) if m else t


def py_walk(msg):
    """(content type, filename, sha256 of decoded leaf bytes) in depth-first order.
    Like our parser, it does not descend into message/* parts other than rfc822 and
    global: a delivery-status or feedback-report body is left to the DSN layer
    (Python parses their field blocks as sub-messages)."""
    out = []

    def rec(p):
        t = _type_token(p.get_content_type())
        if p.is_multipart() and not (t.startswith("message/") and
                                     t not in ("message/rfc822", "message/global")):
            out.append((t, None, None))
            for c in p.get_payload():
                rec(c)
        elif p.is_multipart():
            out.append((t, None, None))
        else:
            data = p.get_payload(decode=True) or b""
            if t.startswith("text/"):
                data = lf(data)
            out.append((t, p.get_filename(), hashlib.sha256(data).hexdigest()))
    rec(msg)
    return out


def our_walk(node):
    out = []

    def rec(n):
        if n["type"].startswith("multipart/"):
            out.append((n["type"], None, None))
        else:
            out.append((n["type"], n.get("filename", n.get("name")),
                        n.get("sha256_lf") if n["type"].startswith("text/") else n.get("sha256")))
        for c in n["children"]:
            rec(c)
    rec(node)
    return out


class Case:
    def __init__(self, name, subject="plain subject", from_name=None, text="body\n",
                 html=None, attach=(), inline=(), to=("rcpt@example.org",), cc=(),
                 extra=(), headers=()):
        self.name, self.subject, self.from_name = name, subject, from_name
        self.text, self.html, self.attach, self.inline = text, html, attach, inline
        self.to, self.cc, self.extra, self.headers = to, cc, extra, headers

    def args(self):
        a = ["build", "--from", "sender@example.com", "--subject", self.subject,
             "--date", DATE, "--message-id", "<%s@test.example>" % self.name]
        if self.from_name is not None:
            a += ["--from-name", self.from_name]
        for t in self.to:
            a += ["--to", t]
        for c in self.cc:
            a += ["--cc", c]
        a += ["--text", write(self.name + "/body.txt", self.text)]
        if self.html is not None:
            a += ["--html", write(self.name + "/body.html", self.html)]
        for i, (fname, data, ctype) in enumerate(self.attach):
            p = write("%s/a%d/%s" % (self.name, i, fname), data)
            a += ["--attach", p + (":" + ctype if ctype else "")]
        for i, (fname, data, cid) in enumerate(self.inline):
            p = write("%s/i%d/%s" % (self.name, i, fname), data)
            a += ["--inline", "%s:%s" % (p, cid)]
        for h in self.headers:
            a += ["--header", h]
        return a + list(self.extra)


BIN_DATA = bytes(range(256)) * 40 + b"\0\0\0" + os.urandom(5000) + b"\0"
LONG_NAME = ("Überraschungsgeschenk für die ganze Familie – Ausgabe 2026 – "
             "日本語のとても長いファイル名です – ملف.pdf")

CASES = [
    Case("ascii"),
    Case("emoji", subject="Party 🎉 time 👋🏽 with family 👨‍👩‍👧‍👦 tonight",
         from_name="Zoë 😀 Smith", text="Hi 👋🏽!\nSee you 🎉\n"),
    Case("cjk", subject="日本語の件名です。これは長いテストの件名で、折り返しが必要です。" * 2,
         from_name="山田 太郎", text="こんにちは世界\n" * 20,
         cc=("cc@example.net",)),
    Case("rtl", subject="שלום עולם — مرحبا بالعالم", from_name="أحمد الفلاني",
         text="مرحبا بالعالم\nשלום עולם\n"),
    Case("combining", subject="Cafe\u0301 nai\u0308ve n\u0303 a\u030a\u0301",
         from_name="Zoe\u0308 Mu\u0308ller", text="e\u0301 o\u0308 u\u0308\n"),
    Case("longword", subject="x" * 300),
    Case("longword-utf8", subject="é" * 300 + " and " + "y" * 120),
    Case("specials", from_name='Doe, John "JD" (work)', subject='quotes "here" and =?not?= words'),
    Case("empty-body", text=""),
    Case("dots", text=".\n..\n...\n.\n"),
    Case("line998", text="a" * 998 + "\n" + "b" * 10 + "\n"),
    Case("line999", text="a" * 999 + "\n"),
    Case("line999-utf8", text="ä" * 600 + "\n"),
    Case("latin-body", text="Mostly ASCII text with one umlaut: Köln. " * 10 + "\n"),
    Case("no-final-newline", text="last line without newline"),
    Case("binary-attachments", attach=[("data.bin", BIN_DATA, None),
                                       ("zeros.dat", b"\0" * 1000, "application/x-zeros"),
                                       ("empty.bin", b"", None)]),
    Case("long-filename", attach=[(LONG_NAME, b"%PDF-1.4\n" + BIN_DATA, None),
                                  ("a" * 120 + ".txt", b"plain\r\ntext\r\n", None)]),
    Case("html-inline", html="<p>Hello <b>world</b> <img src=\"cid:logo@example.com\"></p>\n",
         inline=[("logo.png", b"\x89PNG\r\n\x1a\n" + BIN_DATA[:500], "logo@example.com")],
         attach=[("report.pdf", BIN_DATA, None)]),
    Case("html-only-alt", html="<p>Grüße 🎉</p>\n", text="Grüße 🎉\n"),
    Case("many-rcpt", to=["r%d@example.org" % i for i in range(12)],
         headers=["X-Mailer: missive test", "X-Greeting: Grüße 🎉 " + "lang " * 30]),
    Case("idn", to=("user@bücher.example",), subject="IDN"),
]


class BuildTest(unittest.TestCase):
    maxDiff = 4000

    def build(self, case):
        r = run(case.args())
        self.assertEqual(r.returncode, 0, "%s: %s" % (case.name, r.stderr.decode(errors="replace")))
        return r.stdout

    def check_raw(self, case, raw):
        self.assertNotIn(b"\n", raw.replace(b"\r\n", b""), "bare LF in " + case.name)
        self.assertNotIn(b"\r", raw.replace(b"\r\n", b""), "bare CR in " + case.name)
        head, _, _ = raw.partition(b"\r\n\r\n")
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998, case.name)
        for line in head.split(b"\r\n"):
            self.assertLessEqual(len(line), 78, "%s: header line over 78: %r" % (case.name, line))
            self.assertTrue(all(b < 128 for b in line), "%s: 8-bit header %r" % (case.name, line))
        for word in raw.split():
            if word.startswith(b"=?") and word.endswith(b"?="):
                self.assertLessEqual(len(word), 75, case.name)

    def test_cases(self):
        for case in CASES:
            with self.subTest(case=case.name):
                raw = self.build(case)
                self.check_raw(case, raw)
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                self.assertEqual(msg.defects, [], case.name)
                has_utf8_name = False
                for part in msg.walk():
                    self.assertEqual(part.defects, [], "%s: %s" % (case.name, part.get_content_type()))
                    defects = header_defects(part)
                    fn = part.get_filename()
                    if fn and any(ord(ch) > 127 for ch in fn):
                        has_utf8_name = True
                        defects = [d for d in defects if not (d[0] == "Content-Type" and
                                                             d[1] in NAME_PARAM_DEFECTS)]
                    self.assertEqual(defects, [], case.name)
                self.assertEqual(str(msg["subject"]), case.subject)
                frm = msg["from"].addresses[0]
                self.assertEqual(frm.addr_spec, "sender@example.com")
                self.assertEqual(frm.display_name, case.from_name or "")
                to = [a.addr_spec for a in msg["to"].addresses]
                self.assertEqual(len(to), len(case.to))
                if case.cc:
                    self.assertEqual([a.addr_spec for a in msg["cc"].addresses], list(case.cc))
                self.assertEqual(msg["date"], DATE)
                self.assertEqual(msg["message-id"], "<%s@test.example>" % case.name)
                single = not msg.is_multipart()
                body = msg.get_body(("plain",))
                # Python hands text back with \n or \r\n depending on the transfer
                # encoding; the octets are compared exactly below (our_walk vs py_walk
                # hashes, and the body bytes here).
                got = body.get_content().replace("\r\n", "\n")
                want = crlf(case.text)
                if single and want and not want.endswith("\r\n"):
                    want += "\r\n"  # a single-part message ends in CRLF like every line
                self.assertEqual(got, want.replace("\r\n", "\n"), case.name)
                self.assertEqual(lf(body.get_payload(decode=True)), lf(want.encode()), case.name)
                if case.html is not None:
                    self.assertEqual(lf(msg.get_body(("html",)).get_payload(decode=True)),
                                     lf(case.html.encode()))
                    alt = [p for p in msg.walk() if p.get_content_type() == "multipart/alternative"]
                    self.assertEqual(len(alt), 1)
                    kids = [p.get_content_type() for p in alt[0].iter_parts()]
                    self.assertEqual(kids, ["text/plain", "text/html"], "text first")
                atts = {p.get_filename(): p for p in msg.iter_attachments()}
                for fname, data, ctype in case.attach:
                    self.assertIn(fname, atts, case.name)
                    p = atts[fname]
                    self.assertEqual(p.get_payload(decode=True) or b"", data, fname)
                    if ctype:
                        self.assertEqual(p.get_content_type(), ctype)
                for fname, data, cid in case.inline:
                    parts = [p for p in msg.walk() if p.get("content-id") == "<%s>" % cid]
                    self.assertEqual(len(parts), 1)
                    self.assertEqual(parts[0].get_payload(decode=True), data)
                    self.assertEqual(parts[0].get_content_disposition(), "inline")
                    rel = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
                    self.assertEqual(len(rel), 1)
                for h in case.headers:
                    name, _, value = h.partition(":")
                    self.assertEqual(str(msg[name]), value.lstrip())
                if case.name == "idn":
                    self.assertIn(b"user@xn--bcher-kva.example", raw)
                # Our parser: the same tree and the same decoded values.
                ours = dump(raw)
                self.assertNotIn("error", ours)
                self.assertEqual(our_walk(ours), py_walk(msg), case.name)
                self.assertEqual(ours.get("subject"), case.subject)
                self.check_lines(case, raw)
                del has_utf8_name

    def check_lines(self, case, raw):
        # The encodings chosen: 998-octet lines stay 7bit, 999 do not.
        if case.name == "line998":
            self.assertIn(b"Content-Transfer-Encoding: 7bit", raw)
        if case.name in ("line999", "latin-body"):
            self.assertIn(b"Content-Transfer-Encoding: quoted-printable", raw)
        if case.name == "line999-utf8":
            self.assertIn(b"Content-Transfer-Encoding: base64", raw)

    def test_8bitmime(self):
        case = Case("eightbit", text="Grüße 🎉\n", extra=["--8bitmime"])
        raw = self.build(case)
        self.assertIn(b"Content-Transfer-Encoding: 8bit", raw)
        self.assertIn("Grüße 🎉".encode(), raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg.get_body(("plain",)).get_content(), "Grüße 🎉\r\n")

    def test_smtputf8(self):
        r = run(["build", "--from", "sender@example.com", "--to", "jürgen@bücher.example",
                 "--subject", "Grüße", "--text-body", "x", "--date", DATE])
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"To:", r.stderr)
        self.assertIn(b"SMTPUTF8", r.stderr)
        r = run(["build", "--from", "sender@example.com", "--to", "jürgen@bücher.example",
                 "--subject", "Grüße", "--from-name", "Jürgen", "--text-body", "x",
                 "--date", DATE, "--smtputf8"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("To: jürgen@bücher.example".encode(), r.stdout)
        self.assertIn("Subject: Grüße".encode(), r.stdout)
        msg = email.message_from_bytes(r.stdout, policy=email.policy.default.clone(utf8=True))
        self.assertEqual(msg.defects, [])

    def test_reproducible(self):
        case = Case("repro", attach=[("x.bin", BIN_DATA, None)], html="<p>x</p>")
        a, b = self.build(case), self.build(case)
        strip = lambda raw: b"\n".join(l for l in raw.split(b"\n") if b"=_msv_" not in l)
        self.assertEqual(strip(a), strip(b))

    def test_generated_ids(self):
        r1 = run(["build", "--from", "a@Example.COM", "--to", "b@example.org",
                  "--subject", "s", "--text-body", "x"])
        r2 = run(["build", "--from", "a@Example.COM", "--to", "b@example.org",
                  "--subject", "s", "--text-body", "x"])
        m1 = email.message_from_bytes(r1.stdout, policy=email.policy.default)
        m2 = email.message_from_bytes(r2.stdout, policy=email.policy.default)
        self.assertNotEqual(m1["message-id"], m2["message-id"])
        self.assertTrue(m1["message-id"].endswith("@Example.COM>"))
        self.assertIsNotNone(m1["date"].datetime)

    def test_bcc_never_written(self):
        r = run(["build", "--from", "a@example.com", "--to", "b@example.org", "--bcc",
                 "secret@example.net", "--subject", "s", "--text-body", "x", "--date", DATE])
        self.assertEqual(r.returncode, 0)
        self.assertNotIn(b"secret", r.stdout)


class BadInputTest(unittest.TestCase):
    base = ["build", "--from", "a@example.com", "--to", "b@example.org", "--date", DATE]

    def expect(self, args, code, field):
        r = run(self.base + args)
        self.assertEqual(r.returncode, code, r.stderr)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(err.count("\n"), 1, "one line: %r" % err)
        self.assertIn(field, err)

    def test_exit_codes(self):
        bad_utf8 = write("bad/utf8.txt", b"ok\n\xff\xfe bad\n")
        self.expect(["--subject", "a\r\nBcc: x@y", "--text-body", "x"], 65, "--subject")
        self.expect(["--subject", "a\nb", "--text-body", "x"], 65, "--subject")
        self.expect(["--subject", "s", "--text", bad_utf8], 65, "--text")
        self.expect(["--subject", "s", "--text-body", "x", "--header", "X-A: b\rc"], 65, "--header")
        self.expect(["--subject", "s", "--text-body", "x", "--header", "Bad Name: v"], 65, "--header")
        self.expect(["--subject", "s", "--text-body", "x", "--header", "To: v@x"], 65, "--header")
        self.expect(["--subject", "s", "--text-body", "x", "--cc", "not-an-address"], 65, "--cc")
        self.expect(["--subject", "s", "--text-body", "x", "--cc", "a@b..c"], 65, "--cc")
        self.expect(["--subject", "s", "--text-body", "x", "--date", "yesterday"], 65, "--date")
        self.expect(["--subject", "s", "--text-body", "x", "--message-id", "no-at"], 65,
                    "--message-id")
        self.expect(["--subject", "s", "--text-body", "x", "--from-name", "a\nb"], 65, "--from")
        self.expect(["--subject", "s", "--text", os.path.join(TMP, "missing.txt")], 66, "--text")
        self.expect(["--subject", "s", "--text-body", "x", "--attach",
                     os.path.join(TMP, "missing.bin")], 66, "--attach")
        self.expect(["--subject", "s", "--text-body", "x", "--html",
                     os.path.join(TMP, "missing.html")], 66, "--html")
        # Checked when added, but unreadable while written (a /proc file says size 0
        # and reads more): still the input's fault, 66, not a failed write (74).
        self.expect(["--subject", "s", "--text-body", "x", "--attach", "/proc/self/status"],
                    66, "attachment /proc/self/status: its size changed")
        self.expect(["--text-body", "x"], 64, "--subject")
        self.expect(["--subject", "s"], 64, "--text")

    def test_send_usage(self):
        r = subprocess.run([BIN, "send", "--server", "127.0.0.1:1", "--tls", "none", "--from",
                            "a@example.com", "--to", "b@example.org", "--message", "-",
                            "--subject", "s", "--text-body", "x"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"--message", r.stderr)
        r = subprocess.run([BIN, "send", "--server", "127.0.0.1:1", "--tls", "none", "--from",
                            "a@example.com", "--to", "b@example.org", "--subject", "a\nb",
                            "--text-body", "x"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 65, r.stderr)  # checked before connecting


class CorpusTest(unittest.TestCase):
    def test_rfc2047_corpus(self):
        with open(os.path.join(CORPUS, "mime", "rfc2047", "encoded-words.json"), "rb") as f:
            cases = json.load(f)
        data = b"".join(c["encoded"].encode("utf-8") + b"\0" for c in cases)
        r = subprocess.run([DUMP, "--decode"], input=data, stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 0)
        got = r.stdout.split(b"\0")[:-1]
        self.assertEqual(len(got), len(cases))
        for c, g in zip(cases, got):
            with self.subTest(id=c["id"]):
                # Our decoder unfolds (RFC 5322 2.2.3): compare unfolded.
                self.assertEqual(g.decode("utf-8"), c["expected_decoded"].replace("\r\n", ""))

    def corpus_files(self, sub):
        root = os.path.join(CORPUS, sub)
        for d, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith((".raw", ".eml", ".golden")):
                    yield os.path.join(d, f)

    def test_enmime_and_bounces_parse(self):
        """Every fixture parses; where Python sees a well-formed tree, ours is the same."""
        total = same = 0
        differ = []
        for sub in ("mime/enmime", "bounces"):
            for path in self.corpus_files(sub):
                with open(path, "rb") as f:
                    raw = f.read()
                ours = dump(raw) if raw.strip() else {"type": "text/plain", "children": []}
                if "error" in ours:
                    # Only a file without any header field may be refused.
                    self.assertIn("no header field", ours["error"], path)
                    continue
                total += 1
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                clean = not any(p.defects for p in msg.walk())
                types_py = [t for t, _, _ in py_walk(msg)]
                types_ours = [t for t, _, _ in our_walk(ours)]
                # Python does not descend into message/rfc822 in walk() the same way for
                # every MTA's bounce; compare the multipart skeleton.
                if clean and "/low-quality/" not in path:
                    if types_ours == types_py:
                        same += 1
                    else:
                        differ.append((os.path.relpath(path, CORPUS), types_py, types_ours))
        sys.stderr.write("\ncorpus: %d files parsed, %d clean trees equal to Python's, "
                         "%d differ\n" % (total, same, len(differ)))
        for d in differ[:10]:
            sys.stderr.write("  differs: %s\n    python %s\n    ours   %s\n" % d)
        self.assertGreater(total, 600)
        self.assertEqual(differ, [])


class MemoryTest(unittest.TestCase):
    def maxrss_kb(self, args):
        pid = os.fork()
        if pid == 0:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            try:
                os.execv(BIN, [BIN] + args)
            finally:
                os._exit(127)
        _, status, ru = os.wait4(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        return ru.ru_maxrss

    def test_100mb_attachment_rss(self):
        big = os.path.join(TMP, "big.bin")
        with open(big, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(100):
                f.write(chunk)
        small = write("small.bin", b"x" * 1000)
        base = ["build", "--from", "a@example.com", "--to", "b@example.org", "--subject", "s",
                "--text-body", "x", "--date", DATE]
        rss_small = self.maxrss_kb(base + ["--attach", small])
        rss_big = self.maxrss_kb(base + ["--attach", big])
        growth_mb = (rss_big - rss_small) / 1024.0
        sys.stderr.write("\npeak RSS: %.1f MB with a 1 kB attachment, %.1f MB with 100 MB: "
                         "growth %.1f MB (%.3fx the file)\n" % (
                             rss_small / 1024.0, rss_big / 1024.0, growth_mb, growth_mb / 100))
        self.assertLess(growth_mb, 200)
        os.unlink(big)


# ------------------------------------------------------------- through a real Postfix

PF = {}


class PostfixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        set_up(cls.start_postfix, cls.tearDownClass)

    @classmethod
    def start_postfix(cls):
        prepare_postfix()
        root = PF["root"] = make_dir("missive-mime-pf-")
        certs = os.path.join(root, "certs")
        make_certs(certs, timeout=120)
        pf = PF["pf"] = Postfix(root, certs=certs, timeout=120)
        PF["ports"] = pf.ports

    @classmethod
    def tearDownClass(cls):
        if PF.get("pf"):
            PF["pf"].stop(timeout=60)
        remove_dir(PF.get("root"), "MISSIVE_PEERS_KEEP", "missive mime Postfix")
        PF.clear()

    def delivered(self, needle, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in PF["pf"].maildir_files():
                with open(path, "rb") as f:
                    data = f.read()
                if needle in data:
                    return data
            time.sleep(0.05)
        self.fail("not delivered: %r" % needle)

    def test_attachment_arrives_intact(self):
        data = os.urandom(3 << 20) + b"\0" * 1000 + bytes(range(256))
        att = write("pf/" + LONG_NAME, data)
        text = write("pf/body.txt", "Grüße 🎉\n.\n..\nline\n")
        for port in ("PLAIN_PORT", "NOCHUNKING_PORT"):
            with self.subTest(port=port):
                tag = "pf-%s-%d" % (port.lower(), os.getpid())
                r = subprocess.run(
                    [BIN, "send", "--server", "127.0.0.1:%d" % PF["ports"][port], "--tls", "none",
                     "--timeout", "30", "--json", "--from", "sender@example.test",
                     "--from-name", "Zoë Sender", "--to", "rcpt@example.test",
                     "--bcc", "hidden@example.test", "--subject", "attachment 📎 " + tag,
                     "--text", text, "--attach", att, "--message-id", "<%s@missive.test>" % tag],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                    timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = json.loads(r.stdout)
                self.assertEqual(out["status"], "sent")
                self.assertEqual([x["address"] for x in out["recipients"]],
                                 ["rcpt@example.test", "hidden@example.test"])
                raw = self.delivered(("<%s@missive.test>" % tag).encode())
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                self.assertEqual(msg.defects, [])
                self.assertEqual(str(msg["subject"]), "attachment 📎 " + tag)
                self.assertIsNone(msg["bcc"])
                # Postfix prepends Return-Path, X-Original-To, Delivered-To and Received;
                # the message's own header block starts at Date.
                own = raw[raw.index(b"\nDate: ") + 1:].split(b"\n\n", 1)[0]
                self.assertNotIn(b"hidden@", own)
                atts = list(msg.iter_attachments())
                self.assertEqual(len(atts), 1)
                self.assertEqual(atts[0].get_filename(), LONG_NAME)
                got = atts[0].get_payload(decode=True)
                self.assertEqual(hashlib.sha256(got).hexdigest(),
                                 hashlib.sha256(data).hexdigest())
                self.assertEqual(msg.get_body(("plain",)).get_content().replace("\r\n", "\n"),
                                 "Grüße 🎉\n.\n..\nline\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
