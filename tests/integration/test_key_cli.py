#!/usr/bin/python3
"""`missive key` and `missive reputation` against a private queue file.

  * key add prints the secret once: alone on stdout (a note on stderr), or as one
    JSON object of an exact shape; ls never shows a secret or a hash; the queue
    file never holds the secret, only its SHA-256, which rotate replaces;
  * exit codes: 64 usage, 65 bad name, rate, burst, domain or a taken name (with a
    hint to rotate), 67 no such key;
  * reputation set validates the identity (key:NAME, uid:DIGITS, ip:ADDRESS) and
    the score (0..100), and reputation ls shows the override at once.

Run: MISSIVE_BIN=build/src/cli/missive /usr/bin/python3 tests/integration/test_key_cli.py
"""

import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary, run  # noqa: E402

T = {}
SECRET = re.compile(r"^msk_[0-9a-f]{64}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ADD_KEYS = {"name", "secret", "sender_domains", "rate", "burst"}
LS_KEYS = {"name", "sender_domains", "rate", "burst", "created", "rotated"}
REP_KEYS = {"identity", "score", "tier", "circuit", "changed", "why"}


def setUpModule():
    T["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    T["dir"] = tempfile.mkdtemp(prefix="missive-key-cli-")
    T["db"] = os.path.join(T["dir"], "queue.db")
    T["conf"] = os.path.join(T["dir"], "missive.conf")
    with open(T["conf"], "w") as f:
        f.write("[queue]\npath = %s\n" % T["db"])


def tearDownModule():
    shutil.rmtree(T["dir"], ignore_errors=True)


def missive(*args):
    r = run([T["bin"]] + list(args) + ["--config", T["conf"]])
    err = r.stderr.decode(errors="replace")
    if CRASH.search(err):
        raise AssertionError("missive %s crashed:\n%s" % (" ".join(args), err))
    return r


def per_second(rate):
    """'60/m' -> 1.0, as msv_rate_parse reads it."""
    n, unit = rate.split("/")
    return float(n) / {"s": 1, "m": 60, "h": 3600}[unit]


def db_bytes():
    data = b""
    for p in glob.glob(T["db"] + "*"):
        with open(p, "rb") as f:
            data += f.read()
    return data


def stored_hash(name):
    db = sqlite3.connect("file:%s?mode=ro" % T["db"], uri=True)
    try:
        row = db.execute("SELECT hash FROM api_keys WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return bytes(row[0]) if row else None


class Keys(unittest.TestCase):
    def add(self, name, *extra):
        r = missive("key", "add", name, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_add_text_prints_the_secret_once(self):
        r = self.add("text-key")
        out = r.stdout.decode()
        self.assertTrue(out.endswith("\n"))
        secret = out[:-1]
        self.assertRegex(secret, SECRET)  # the secret alone: scripts read it
        self.assertIn("shown only now", r.stderr.decode())
        self.assertEqual(stored_hash("text-key"), hashlib.sha256(secret.encode()).digest())
        # Never again: not in ls, not in the file (hex or raw), not on a second add.
        for args in (("key", "ls"), ("key", "ls", "--json")):
            r2 = missive(*args)
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertNotIn(secret.encode(), r2.stdout)
            self.assertNotIn(secret[4:].encode(), r2.stdout)
            self.assertNotIn(hashlib.sha256(secret.encode()).hexdigest().encode(), r2.stdout)
        data = db_bytes()
        self.assertNotIn(secret.encode(), data)
        self.assertNotIn(bytes.fromhex(secret[4:]), data)
        self.assertIn(hashlib.sha256(secret.encode()).digest(), data)
        r3 = missive("key", "add", "text-key")
        self.assertEqual(r3.returncode, 65)
        self.assertEqual(r3.stdout, b"")
        self.assertIn(b"exists", r3.stderr)
        self.assertIn(b"missive key rotate text-key", r3.stderr)
        self.assertEqual(stored_hash("text-key"), hashlib.sha256(secret.encode()).digest())

    def test_add_json_shape(self):
        r = self.add("json-key", "--sender-domains", "Example.org, b.net", "--rate", "60/m",
                     "--burst", "5", "--json")
        o = json.loads(r.stdout)
        self.assertEqual(set(o), ADD_KEYS)
        self.assertEqual(o["name"], "json-key")
        self.assertRegex(o["secret"], SECRET)
        self.assertEqual(o["sender_domains"], ["example.org", "b.net"])
        self.assertAlmostEqual(per_second(o["rate"]), 1.0)
        self.assertEqual(o["burst"], 5)
        self.assertNotIn(o["secret"].encode(), db_bytes())

        o = json.loads(self.add("plain-key", "--json").stdout)
        self.assertEqual(set(o), ADD_KEYS)
        self.assertEqual(o["sender_domains"], [])
        self.assertIsNone(o["rate"])
        self.assertIsNone(o["burst"])

        listed = {k["name"]: k for k in json.loads(missive("key", "ls", "--json").stdout)}
        k = listed["json-key"]
        self.assertEqual(set(k), LS_KEYS)
        self.assertEqual(k["sender_domains"], ["example.org", "b.net"])
        self.assertAlmostEqual(per_second(k["rate"]), 1.0)
        self.assertEqual(k["burst"], 5)
        self.assertRegex(k["created"], RFC3339)
        self.assertIsNone(k["rotated"])
        k = listed["plain-key"]
        self.assertEqual((k["sender_domains"], k["rate"], k["burst"]), ([], None, None))

        text = missive("key", "ls").stdout.decode()
        self.assertRegex(text, r"(?m)^json-key\s.*example\.org,b\.net$")
        self.assertRegex(text, r"(?m)^plain-key\s.*\bany$")

    def test_rotate_and_rm(self):
        old = self.add("rot-key", "--sender-domains", "a.example", "--burst", "9") \
            .stdout.decode().strip()
        r = missive("key", "rotate", "rot-key")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = r.stdout.decode()[:-1]
        self.assertRegex(new, SECRET)
        self.assertNotEqual(new, old)
        self.assertIn("shown only now", r.stderr.decode())
        # The old secret's hash is gone from the key: only the new one matches.
        self.assertEqual(stored_hash("rot-key"), hashlib.sha256(new.encode()).digest())
        self.assertNotIn(new.encode(), db_bytes())

        r = missive("key", "rotate", "rot-key", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        o = json.loads(r.stdout)
        self.assertEqual(set(o), ADD_KEYS)  # the same shape as add's
        self.assertEqual((o["name"], o["sender_domains"], o["rate"], o["burst"]),
                         ("rot-key", ["a.example"], None, 9))
        self.assertNotEqual(o["secret"], new)
        self.assertEqual(stored_hash("rot-key"), hashlib.sha256(o["secret"].encode()).digest())
        listed = {k["name"]: k for k in json.loads(missive("key", "ls", "--json").stdout)}
        self.assertRegex(listed["rot-key"]["rotated"], RFC3339)

        self.assertEqual(missive("key", "rm", "rot-key").returncode, 0)
        self.assertIsNone(stored_hash("rot-key"))
        self.assertEqual(missive("key", "rm", "rot-key").returncode, 67)
        self.assertEqual(missive("key", "rotate", "rot-key").returncode, 67)
        listed = [k["name"] for k in json.loads(missive("key", "ls", "--json").stdout)]
        self.assertNotIn("rot-key", listed)

    def test_exit_codes(self):
        usage = [("key",), ("key", "add"), ("key", "frob", "x"), ("key", "ls", "extra"),
                 ("key", "rm"), ("key", "add", "a", "b"), ("key", "rm", "x", "--rate", "1/s"),
                 ("key", "rotate", "x", "--burst", "3"), ("key", "add", "x", "--bogus")]
        for args in usage:
            self.assertEqual(missive(*args).returncode, 64, args)
        bad = [("key", "add", "bad name"), ("key", "add", "a:b"), ("key", "add", "x" * 65),
               ("key", "rm", "bad/name"), ("key", "rotate", "bad name"),
               ("key", "add", "r1", "--rate", "fast"), ("key", "add", "r2", "--rate", "off"),
               ("key", "add", "r3", "--rate", "0/s"), ("key", "add", "b1", "--burst", "0"),
               ("key", "add", "b2", "--burst", "100001"), ("key", "add", "b3", "--burst", "x"),
               ("key", "add", "b4", "--burst", "-1")]
        for args in bad:
            r = missive(*args)
            self.assertEqual(r.returncode, 65, (args, r.stderr))
            self.assertEqual(r.stdout, b"")
        r = missive("key", "add", "d1", "--sender-domains", "good.example, bad..example")
        self.assertEqual(r.returncode, 65)
        self.assertIn(b'"bad..example"', r.stderr)
        listed = [k["name"] for k in json.loads(missive("key", "ls", "--json").stdout)]
        for name in ("r1", "r2", "r3", "b1", "b2", "b3", "b4", "d1"):
            self.assertNotIn(name, listed)
        self.assertEqual(missive("key", "rm", "never-added").returncode, 67)
        self.assertEqual(self.add("x" * 64).returncode, 0)  # the longest name

    def test_help(self):
        for cmd in ("key", "reputation"):
            r = run([T["bin"], cmd, "--help"])
            self.assertEqual(r.returncode, 0)
            self.assertTrue(r.stdout.startswith(b"usage: missive " + cmd.encode()))
        r = run([T["bin"], "--help"])
        self.assertRegex(r.stdout.decode(), r"(?m)^  key ")
        self.assertRegex(r.stdout.decode(), r"(?m)^  reputation ")


class Reputation(unittest.TestCase):
    def ls(self):
        r = missive("reputation", "ls", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {x["identity"]: x for x in json.loads(r.stdout)}

    def test_set_then_ls(self):
        r = missive("reputation", "set", "key:web", "55")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.decode().splitlines()), 1)
        self.assertEqual(missive("reputation", "set", "ip:::0001", "80").returncode, 0)
        self.assertEqual(missive("reputation", "set", "ip:192.0.2.7", "100").returncode, 0)
        self.assertEqual(missive("reputation", "set", "uid:1000", "0").returncode, 0)
        got = self.ls()
        web = got["key:web"]
        self.assertEqual(set(web), REP_KEYS)
        # Decayed toward the start (100) with a half-life of an hour: barely moved.
        self.assertLess(abs(web["score"] - 55), 0.5)
        self.assertEqual(web["tier"], 0)  # the default tiers: 90, 70, 60, 0
        self.assertEqual(web["circuit"], "closed")
        self.assertRegex(web["changed"], RFC3339)
        self.assertEqual(web["why"], "operator")
        self.assertIn("ip:::1", got)  # as missived writes it (inet_ntop)
        self.assertEqual(got["ip:::1"]["tier"], 70)
        self.assertEqual(got["ip:192.0.2.7"]["tier"], 90)
        self.assertEqual(got["uid:1000"]["tier"], 0)
        # A later override replaces the earlier one.
        self.assertEqual(missive("reputation", "set", "key:web", "95.5").returncode, 0)
        web = self.ls()["key:web"]
        self.assertLess(abs(web["score"] - 95.5), 0.1)
        self.assertEqual(web["tier"], 90)
        text = missive("reputation", "ls").stdout.decode()
        self.assertRegex(text, r"(?m)^key:web\s+95\.\d\d\s+90\s+closed\s.*operator$")
        # The override waits for missived in its own table.
        db = sqlite3.connect("file:%s?mode=ro" % T["db"], uri=True)
        try:
            pending = dict(db.execute("SELECT identity, score FROM reputation_overrides"))
        finally:
            db.close()
        self.assertEqual(pending["key:web"], 95.5)

    def test_circuit_from_the_row(self):
        db = sqlite3.connect(T["db"])
        now = int(__import__("time").time() * 1000)
        with db:
            db.executemany("INSERT OR REPLACE INTO reputation (identity, score, stamp_ms,"
                           " rejections, open_until_ms, changed_ms, why)"
                           " VALUES (?, 65, ?, 1, ?, ?, '1 rejected')",
                           [("key:open", now, now + 600000, now),
                            ("key:half", now, now - 1000, now)])
        db.close()
        got = self.ls()
        self.assertEqual(got["key:open"]["circuit"], "open")
        self.assertEqual(got["key:half"]["circuit"], "half-open")
        self.assertEqual(got["key:open"]["tier"], 60)
        self.assertEqual(got["key:open"]["why"], "1 rejected")

    def test_bad_identity_or_score(self):
        for ident in ("user:1", "web", "key:", "key:bad name", "key:" + "x" * 65, "uid:",
                      "uid:abc", "uid:-1", "uid:4294967296", "ip:", "ip:999.1.1.1",
                      "ip:example.org", "ip:1.2.3.4/8", "KEY:web"):
            r = missive("reputation", "set", ident, "50")
            self.assertEqual(r.returncode, 65, (ident, r.stderr))
        for score in ("101", "100.001", "1e3", "0x10", "nan", "inf", "abc", "", "5x"):
            r = missive("reputation", "set", "key:web2", score)
            self.assertEqual(r.returncode, 65, (score, r.stderr))
        self.assertNotIn("key:web2", self.ls())
        for args in (("reputation",), ("reputation", "set", "key:a"),
                     ("reputation", "set", "key:a", "1", "2"), ("reputation", "ls", "x"),
                     ("reputation", "frob")):
            self.assertEqual(missive(*args).returncode, 64, args)
        self.assertEqual(missive("reputation", "set", "uid:4294967295", "100").returncode, 0)
        self.assertEqual(missive("reputation", "set", "ip:2001:DB8::1", "0").returncode, 0)
        self.assertIn("ip:2001:db8::1", self.ls())


if __name__ == "__main__":
    unittest.main(verbosity=2)
