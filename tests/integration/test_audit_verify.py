#!/usr/bin/python3
"""`missive audit verify` and `missive audit status` on trails written through
the library by tests/tools/audit_write (AUDIT_WRITE_BIN):

  * every line is valid UTF-8 JSON with the documented members in order, strings
    masked and escaped (quotes, controls, bytes that are not UTF-8);
  * an untouched trail passes (exit 0, "N events, chain intact"), with the key
    from --key-file or from [audit] key-file of --config, and across rotations;
  * an edited byte, a deleted line, two swapped lines, a truncated tail, whole
    lines cut from the end (PATH.head), a deleted middle rotation, the wrong key
    and no key each fail with exit 1 at the right FILE:LINE with the right why;
    --json gives the same as one object;
  * status shows the files, the last seq and each sink's cursor and lag.

Run: MISSIVE_BIN=build/src/cli/missive AUDIT_WRITE_BIN=build/tests/audit_write \\
     /usr/bin/python3 tests/integration/test_audit_verify.py
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CRASH, binary, check, make_dir, remove_dir, run, write_private  # noqa: E402

T = {}
KEY = "an audit chain key of more than thirty-two bytes\n"
ORDER = ["seq", "event_id", "ts", "type", "node", "actor", "actor_ip", "qid",
         "masked_payload", "prev", "hash"]


def setUpModule():
    T["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    T["write"] = binary("AUDIT_WRITE_BIN", "build/tests/audit_write")
    T["dir"] = make_dir("missive-audit-verify-")
    T["key"] = write_private(os.path.join(T["dir"], "audit.key"), KEY)
    T["other"] = write_private(os.path.join(T["dir"], "other.key"), "x" * 40 + "\n")


def tearDownModule():
    remove_dir(T.get("dir"), "AUDIT_VERIFY_KEEP", "the audit verify test's files")


def write_trail(name, n, rotate_size=0):
    d = os.path.join(T["dir"], name)
    os.mkdir(d)
    path = os.path.join(d, "audit.jsonl")
    check(run([T["write"], path, str(n), T["key"], str(rotate_size)]), "audit_write")
    return path


def missive(*args):
    r = run([T["bin"]] + list(args))
    err = r.stderr.decode(errors="replace")
    if CRASH.search(err):
        raise AssertionError("missive %s crashed:\n%s" % (" ".join(args), err))
    return r.returncode, r.stdout.decode(), err


def verify(*files, key=None):
    return missive("audit", "verify", "--key-file", key or T["key"], *files)


def config(path, key=True, extra=""):
    conf = os.path.join(os.path.dirname(path), "missive.conf")
    with open(conf, "w") as f:
        f.write("[queue]\npath = %s\n[audit]\npath = %s\n%s%s" % (
            os.path.join(os.path.dirname(path), "queue.db"), path,
            "key-file = %s\n" % T["key"] if key else "", extra))
    return conf


def lines_of(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]


def rewrite(path, lines, tail=b"\n"):
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + tail)


class Format(unittest.TestCase):
    def test_lines_are_json_in_order_and_masked(self):
        path = write_trail("format", 5)
        prev = "0" * 64
        for i, raw in enumerate(lines_of(path)):
            ev = json.loads(raw.decode("utf-8"))  # strict UTF-8, then strict JSON
            self.assertEqual(list(ev.keys()), ORDER)
            self.assertEqual(ev["seq"], i + 1)
            self.assertEqual(ev["prev"], prev)
            self.assertEqual(ev["node"], "test-node")
            self.assertEqual(ev["actor"], {"kind": "key", "id": "web"})
            self.assertEqual(ev["actor_ip"], "192.0.2.1")
            self.assertRegex(ev["event_id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-"
                                              r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            self.assertRegex(ev["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            p = ev["masked_payload"]
            self.assertEqual(list(p.keys()), ["rcpt", "reply", "attempt", "tls"])
            self.assertNotIn("carol.test", p["rcpt"])
            self.assertTrue(p["rcpt"].endswith("@example.org"))
            self.assertIn('"ok" \\ tab\there\x01 bad:\ufffd\ufffd \u00e9', p["reply"])
            self.assertEqual(p["attempt"], i)
            self.assertIs(p["tls"], bool(i % 2))
            prev = ev["hash"]
        with open(path, "rb") as f:
            self.assertNotIn(b"carol.test", f.read())


class Verify(unittest.TestCase):
    def test_intact(self):
        path = write_trail("intact", 12)
        rc, out, err = verify(path)
        self.assertEqual((rc, out), (0, "12 events, chain intact\n"), err)
        # The key and the files from the configuration.
        rc, out, err = missive("audit", "verify", "--config", config(path))
        self.assertEqual((rc, out), (0, "12 events, chain intact\n"), err)
        rc, out, _ = missive("audit", "verify", "--config", config(path), "--json")
        self.assertEqual(json.loads(out), {"intact": True, "events": 12, "file": None,
                                           "line": None, "why": None})

    def tampered(self, name, change):
        """A fresh 12-event trail changed by change(lines) -> (lines, tail)."""
        path = write_trail(name, 12)
        lines, tail = change(lines_of(path))
        rewrite(path, lines, tail)
        return path

    def expect(self, path, line, why, key=None):
        rc, out, err = verify(path, key=key)
        self.assertEqual(rc, 1, out + err)
        self.assertTrue(out.startswith("%s:%d: " % (path, line)), out)
        self.assertIn(why, out)
        rc, out, _ = missive("audit", "verify", "--key-file", key or T["key"], "--json", path)
        v = json.loads(out)
        self.assertEqual((rc, v["intact"], v["file"], v["line"]), (1, False, path, line))
        self.assertIn(why, v["why"])

    def test_edited_byte(self):
        def edit(lines):
            lines[6] = lines[6].replace(b'"attempt":6', b'"attempt":7')
            return lines, b"\n"
        self.expect(self.tampered("edited", edit), 7, "hash mismatch (line edited")

    def test_deleted_line(self):
        path = self.tampered("deleted", lambda ls: (ls[:6] + ls[7:], b"\n"))
        self.expect(path, 7, "prev does not match the hash of line 6 (line deleted or reordered)")

    def test_swapped_lines(self):
        path = self.tampered("swapped", lambda ls: (ls[:3] + [ls[4], ls[3]] + ls[5:], b"\n"))
        self.expect(path, 4, "(line deleted or reordered)")

    def test_truncated_tail(self):
        path = self.tampered("truncated", lambda ls: (ls[:-1] + [ls[-1][:40]], b""))
        self.expect(path, 12, "incomplete last line (truncated)")

    def test_cut_whole_lines(self):
        path = self.tampered("cut", lambda ls: (ls[:9], b"\n"))
        self.expect(path, 10, "truncated: the trail ends at seq 9 but %s.head records 12" % path)

    def test_wrong_key_and_no_key(self):
        path = write_trail("keys", 3)
        self.expect(path, 1, "hash mismatch", key=T["other"])
        rc, out, err = missive("audit", "verify", "--config", config(path, key=False))
        self.assertEqual(rc, 1, out + err)
        self.assertTrue(out.startswith(path + ":1: hash mismatch"), out)

    def test_rotations(self):
        path = write_trail("rotated", 200, rotate_size=8000)
        # Time order: the stamp, then the -N of rotations within one second.
        files = sorted((f for f in os.listdir(os.path.dirname(path))
                        if f.startswith("audit.jsonl.2")),
                       key=lambda f: (f[:28], int(f[29:] or 0)))
        self.assertGreaterEqual(len(files), 3)
        conf = config(path)
        rc, out, err = missive("audit", "verify", "--config", conf)
        self.assertEqual((rc, out), (0, "%d events, chain intact\n" % (200 + len(files))), err)
        # The same files given in order pass; out of order they do not.
        full = [os.path.join(os.path.dirname(path), f) for f in files] + [path]
        self.assertEqual(verify(*full)[0], 0)
        self.assertEqual(verify(full[1], full[0], *full[2:])[0], 1)
        # A middle file deleted: the next one's first line no longer chains.
        os.rename(full[1], full[1] + ".gone")
        rc, out, _ = missive("audit", "verify", "--config", conf)
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith(full[2] + ":1: prev does not match the last line of "
                                       + full[0]), out)

    def test_live_trail(self):
        """verify while a writer appends and rotates: never a false alarm."""
        d = os.path.join(T["dir"], "live")
        os.mkdir(d)
        path = os.path.join(d, "audit.jsonl")
        check(run([T["write"], path, "1", T["key"]]), "audit_write")
        conf = config(path)
        w = subprocess.Popen([T["write"], path, "3000", T["key"], "20000"])
        runs = 0
        try:
            while w.poll() is None or runs == 0:
                rc, out, err = missive("audit", "verify", "--config", conf)
                self.assertEqual(rc, 0, out + err)
                runs += 1
        finally:
            w.wait()
        self.assertEqual(w.returncode, 0)
        rc, out, err = missive("audit", "verify", "--config", conf)
        self.assertEqual(rc, 0, out + err)

    def test_unreadable_and_usage(self):
        rc, _, err = verify(os.path.join(T["dir"], "missing.jsonl"))
        self.assertEqual(rc, 66, err)
        self.assertEqual(missive("audit", "bogus")[0], 64)
        self.assertEqual(missive("audit", "status", "--key-file", T["key"])[0], 64)


class Status(unittest.TestCase):
    def test_status(self):
        path = write_trail("status", 7)
        with open(path + ".cursor-kafka", "w") as f:
            f.write('{"seq":5,"inode":0,"offset":0}\n')
        conf = config(path, extra="kafka-brokers = 127.0.0.1:9\n")
        rc, out, err = missive("audit", "status", "--config", conf, "--json")
        self.assertEqual(rc, 0, err)
        s = json.loads(out)
        self.assertEqual(s["files"], [path])
        self.assertEqual((s["events"], s["first_seq"], s["last_seq"]), (7, 1, 7))
        self.assertEqual(s["sinks"], [
            {"sink": "kafka", "configured": True, "cursor_seq": 5, "lag": 2},
            {"sink": "syslog", "configured": False, "cursor_seq": 0, "lag": 7}])
        rc, out, err = missive("audit", "status", "--config", conf)
        self.assertEqual(rc, 0, err)
        self.assertIn("sink kafka   cursor 5, lag 2", out)
        self.assertIn("sink syslog  not configured", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
