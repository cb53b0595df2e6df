#!/usr/bin/python3
"""OAuth 2.0 for SMTP (issue 18): missive's token source against a loopback provider.

tests/peers/oauth_peer.py is one process per test: an HTTPS token endpoint (the test
CA's certificate for 127.0.0.1) issuing access tokens valid a few seconds, and an
SMTP server (STARTTLS, AUTH XOAUTH2 and/or OAUTHBEARER) that takes only a currently
valid token and answers the error challenge otherwise.  Checked here:
  * each grant (refresh token, client credentials, JWT bearer with a service
    account) end to end with `missive send` flags and with missived route keys;
  * OAUTHBEARER preferred, XOAUTH2 when it is all the server offers;
  * 200 messages through missived's pool outliving three token lifetimes: all
    delivered, about one refresh per expiry (not one per connection), and no
    refresh racing another with a rotated refresh token;
  * a rotated refresh token written back (new content, mode 0600); secret files
    (client secret, refresh token, service account) open to others -> 78;
  * a revoked refresh token or a refusing endpoint -> 77 with the provider's
    error; an endpoint down (refused, 503, dropped) -> 75;
  * a token refused by the SMTP server (error challenge) -> the empty answer, one
    refresh and one retry, then success; refused twice -> 77;
  * `missive oauth2 token` shows expiry and scope, the token only with --show;
    `missive oauth2 authorize` runs the device flow and writes the refresh token;
  * no access token, refresh token, client secret or JWT (nor their base64 in a
    SASL trace) in missive's stdout/stderr (with --trace) or missived's log.

Run (as the other integration tests; CTest sets both variables):
    MISSIVE_BIN=build/src/cli/missive MISSIVED_BIN=build/src/daemon/missived \\
        /usr/bin/python3 tests/integration/test_oauth2.py
Set MISSIVE_OAUTH2_KEEP=1 to keep the temp dir (peer records, configs, logs).
"""

import base64
import json
import math
import os
import re
import ssl
import stat
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADDRESS, CRASH, binary, free_port, make_certs, make_dir,  # noqa: E402
                     remove_dir, set_up, start_peer, stop_process, unique, wait_for,
                     write_private)

CMD_TIMEOUT = 40        # seconds for one missive run (the device flow polls)
START_TIMEOUT = 20      # seconds for missived to answer /healthz
CLIENT_ID = "missive-test-client.apps.example"
CLIENT_SECRET = "GOCSPX-test-client-secret-8f3a1c"
GOOGLE_SCOPE = "https://mail.google.com/"
MS_APP_SCOPE = "https://outlook.office365.com/.default"
USER = "mailbox@example.org"
RCPT = "rcpt@example.net"

G = {}


def setUpModule():
    set_up(_setup, tearDownModule)


def _setup():
    G["bin"] = binary("MISSIVE_BIN", "build/src/cli/missive")
    G["daemon"] = binary("MISSIVED_BIN", "build/src/daemon/missived")
    G["root"] = make_dir("missive-oauth2-")
    G["certs"] = os.path.join(G["root"], "certs")
    make_certs(G["certs"])
    G["ca"] = os.path.join(G["certs"], "ca.pem")
    G["ssl"] = ssl.create_default_context(cafile=G["ca"])


def tearDownModule():
    remove_dir(G.get("root"), "MISSIVE_OAUTH2_KEEP", "missive OAuth2 test files")


def workdir(name):
    return make_dir(name + ".", G["root"])


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def message(tag):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: oauth2 %s\r\n"
            "Date: Sat, 05 Dec 2026 15:00:00 +0000\r\nMessage-ID: <%s@missive.test>\r\n"
            "\r\nBody of %s.\r\n" % (USER, RCPT, tag, tag, tag))


def b64_fragments(secret):
    """Substrings any base64 of a blob holding secret contains, whatever its offset."""
    s = secret.encode()
    out = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + s).decode()
        out.append(enc[4 if pad else 0:len(enc) - 4])
    return [f for f in out if len(f) >= 8]


class Peer:
    """One oauth_peer.py: token endpoint + SMTP server, records in self.dir."""

    def __init__(self, *args, refresh=("rt-initial-0123456789abcdef",), lifetime=30):
        self.dir = workdir("peer")
        self.log = os.path.join(self.dir, "peer.log")
        a = ["--dir", self.dir, "--cert", os.path.join(G["certs"], "server.pem"),
             "--key", os.path.join(G["certs"], "server.key"), "--client-id", CLIENT_ID,
             "--client-secret", CLIENT_SECRET, "--lifetime", str(lifetime)] + list(args)
        for r in refresh:
            a += ["--refresh-token", r]
        self.initial_refresh = list(refresh)
        self.lifetime = lifetime
        self.proc, self.port = start_peer("oauth_peer.py", a, os.path.join(self.dir, "ready"),
                                          self.log, timeout=30)
        self.info = read_json(os.path.join(self.dir, "peer.json"))
        self.token_url = self.info["token_url"]
        self.device_url = self.info["device_url"]
        self.sa_file = self.info["service_account_file"]

    def endpoint(self):
        return read_json(os.path.join(self.dir, "endpoint.json"))

    def smtp(self):
        return read_json(os.path.join(self.dir, "smtp.json"))

    def control(self, **kw):
        req = urllib.request.Request(self.info["control_url"], data=json.dumps(kw).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=G["ssl"], timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        url = self.token_url[:-len("token")] + "stats"
        with urllib.request.urlopen(url, context=G["ssl"], timeout=10) as r:
            return json.loads(r.read())

    def secrets(self):
        """Every secret value the provider saw or issued."""
        ep = self.endpoint()
        out = [CLIENT_SECRET] + ep["access_tokens"] + ep["refresh_tokens"] + ep["assertions"]
        out += self.initial_refresh
        sa = read_json(self.sa_file)
        key = "".join(sa["private_key"].splitlines()[1:-1])
        out += [key[i:i + 40] for i in range(0, len(key), 400)]
        return [s for s in out if s]

    def stop(self):
        stop_process(self.proc)

    def text(self):
        return read_text(self.log)


class Run:
    def __init__(self, cmd, p, elapsed):
        self.cmd, self.rc = cmd, p.returncode
        self.out = p.stdout.decode(errors="replace")
        self.err = p.stderr.decode(errors="replace")
        self.elapsed = elapsed

    def describe(self):
        return ("\n$ %s\nexit %s after %.2fs\n--- stdout\n%s\n--- stderr\n%s"
                % (" ".join(self.cmd), self.rc, self.elapsed, self.out, self.err))

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            raise AssertionError("stdout is not JSON" + self.describe())


class Daemon:
    """One missived with one route, its own config and queue."""

    def __init__(self, route, daemon=None):
        self.dir = workdir("missived")
        self.cfg = os.path.join(self.dir, "missive.conf")
        self.log_path = os.path.join(self.dir, "missived.log")
        self.port = free_port()
        self.proc = None
        d = {"workers": "2", "batch": "16", "poll-interval": "100ms", "grace": "20s"}
        d.update(daemon or {})
        sections = {"queue": {"path": os.path.join(self.dir, "queue.db")},
                    "http": {"listen": "127.0.0.1:%d" % self.port, "trust-loopback": "yes"},
                    "daemon": d, "retry": {"base": "200ms", "cap": "1s"},
                    "route default": route}
        with open(self.cfg, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def start(self):
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen([G["daemon"], "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("missived exited %d at start:\n%s"
                                     % (self.proc.returncode, self.log()))
            try:
                return self.request("GET", "/healthz")[0] == 200
            except OSError:
                return False
        wait_for(up, START_TIMEOUT, "missived to answer /healthz")
        return self

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def submit(self, raw):
        st, obj = self.request("POST", "/v1/messages", {"raw": raw})
        if st != 202:
            raise AssertionError("POST /v1/messages: %d %s" % (st, obj))
        return obj["id"]

    def states(self, qid):
        st, obj = self.request("GET", "/v1/messages/" + qid)
        if st != 200:
            raise AssertionError("GET /v1/messages/%s: %d %s" % (qid, st, obj))
        return [r["state"] for r in obj["recipients"]]

    def wait_final(self, qids, timeout=30):
        left = set(qids)

        def done():
            for q in list(left):
                if all(s in ("sent", "bounced", "dead") for s in self.states(q)):
                    left.discard(q)
            return not left
        try:
            wait_for(done, timeout, "%d messages to reach a final state" % len(left), 0.2)
        except AssertionError as e:
            raise AssertionError("%s\nlog:\n%s" % (e, self.log()[-4000:]))
        return {q: self.states(q) for q in qids}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("missived did not stop after SIGTERM")
        return self.proc.returncode if self.proc else None

    def log(self):
        return read_text(self.log_path)


class OAuth2Test(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.peers, self.daemons = [], []
        self.dir = workdir(self._testMethodName)

    def tearDown(self):
        for d in self.daemons:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        for p in self.peers:
            p.stop()
            self.assertNotIn("Traceback", p.text(), "oauth_peer crashed:\n" + p.text())

    # ---- helpers ----------------------------------------------------------
    def peer(self, *args, **kw):
        p = Peer(*args, **kw)
        self.peers.append(p)
        return p

    def daemon(self, route, **kw):
        d = Daemon(route, **kw)
        self.daemons.append(d)
        return d

    def file(self, name, text):
        return write_private(os.path.join(self.dir, name), text)

    def refresh_file(self, peer, name="refresh-token"):
        return self.file(name, peer.initial_refresh[0] + "\n")

    def secret_file(self):
        return self.file("client-secret", CLIENT_SECRET + "\n")

    def missive(self, args, timeout=CMD_TIMEOUT):
        cmd = [G["bin"]] + list(args)
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.fail("missive hung: %s\n%s" % (" ".join(cmd), e.stderr))
        r = Run(cmd, p, time.monotonic() - t0)
        self.assertGreaterEqual(r.rc, 0, "missive killed by a signal" + r.describe())
        self.assertNotRegex(r.err, CRASH, "sanitizer report" + r.describe())
        return r

    def send(self, peer, oauth, tag=None, host="localhost", json_=True, trace=True,
             user=USER):
        """missive send through peer's SMTP server with the oauth2 flags oauth."""
        tag = tag or unique("send")
        msg = os.path.join(self.dir, tag + ".eml")
        with open(msg, "w", newline="") as f:
            f.write(message(tag))
        args = ["send", "--server", "%s:%d" % (host, peer.port), "--tls", "starttls",
                "--ca-file", G["ca"], "--timeout", "15", "--user", user,
                "--from", USER, "--to", RCPT, "--message", msg] + list(oauth)
        if json_:
            args.append("--json")
        if trace:
            args.append("--trace")
        r = self.missive(args)
        r.tag = tag
        return r

    def token_cmd(self, flags):
        return self.missive(["oauth2", "token", "--ca-file", G["ca"]] + list(flags))

    def refresh_flags(self, peer, rt_file, scope=GOOGLE_SCOPE, secret=True):
        f = ["--oauth2-token-url", peer.token_url, "--oauth2-client-id", CLIENT_ID,
             "--oauth2-refresh-token-file", rt_file, "--oauth2-scope", scope]
        if secret:
            f += ["--oauth2-client-secret-file", self.secret_file()]
        return f

    def assertExit(self, r, rc, peer=None):
        extra = ""
        if peer:
            extra = "\n--- smtp\n%s\n--- endpoint errors %s" % (
                json.dumps(peer.smtp()["sessions"]), peer.endpoint()["errors"])
        self.assertEqual(r.rc, rc, "exit code" + r.describe() + extra)

    def assertNoSecrets(self, text, peer, where):
        for s in peer.secrets():
            self.assertNotIn(s, text, "a secret (%s...) in %s:\n%s" % (s[:6], where, text))
            for frag in b64_fragments(s):
                self.assertNotIn(frag, text, "a secret's base64 (%s...) in %s:\n%s"
                                 % (s[:6], where, text))

    def assertClean(self, r, peer):
        self.assertNoSecrets(r.out, peer, "stdout" + r.describe())
        self.assertNoSecrets(r.err, peer, "stderr" + r.describe())

    def assertDelivered(self, peer, tags):
        got = [m["message_id"] for m in peer.smtp()["messages"]]
        for t in tags:
            self.assertIn("<%s@missive.test>" % t, got)

    def sessions(self, peer):
        return peer.smtp()["sessions"]

    def stop_daemon(self, d, peer):
        rc = d.stop()
        text = d.log()
        self.assertEqual(rc, 0, "missived exit code after SIGTERM:\n" + text)
        self.assertNotRegex(text, CRASH, "sanitizer report in missived's log:\n" + text)
        self.assertNotRegex(text, ADDRESS, "an e-mail address in missived's log:\n" + text)
        self.assertNoSecrets(text, peer, "missived's log")
        return text

    # ---- missive send: each grant -----------------------------------------
    def test_refresh_grant_send(self):
        p = self.peer()
        rt = self.refresh_file(p)
        r = self.send(p, self.refresh_flags(p, rt))
        self.assertExit(r, 0, p)
        self.assertEqual(r.json().get("status"), "sent", r.describe())
        self.assertDelivered(p, [r.tag])
        ep = p.endpoint()
        self.assertEqual(ep["by_grant"], {"refresh_token": 1}, ep)
        self.assertEqual(ep["errors"], {})
        self.assertEqual(p.stats()["issued"], 1, "GET /stats says what endpoint.json says")
        s = self.sessions(p)
        self.assertEqual([x["mechs"] for x in s if x["auths"]], [["OAUTHBEARER"]],
                         "OAUTHBEARER is preferred when both are offered: %s" % s)
        self.assertEqual(s[-1]["hosts"], ["localhost"], "OAUTHBEARER host= is the server")
        self.assertEqual(s[-1]["ports"], [str(p.port)], "OAUTHBEARER port= is the server's")
        self.assertEqual(s[-1]["users"], [USER])
        self.assertIn("> AUTH OAUTHBEARER", r.err, "the trace is on" + r.describe())
        self.assertEqual(p.smtp()["warnings"], [])
        self.assertClean(r, p)

    def test_mechanism_follows_the_offer(self):
        for mechs, want in (("XOAUTH2", "XOAUTH2"), ("OAUTHBEARER", "OAUTHBEARER")):
            with self.subTest(offered=mechs):
                p = self.peer("--mechs", mechs)
                rt = self.refresh_file(p, "rt-" + mechs)
                r = self.send(p, self.refresh_flags(p, rt))
                self.assertExit(r, 0, p)
                self.assertEqual([x["mechs"] for x in self.sessions(p) if x["auths"]],
                                 [[want]])
                self.assertEqual(p.smtp()["warnings"], [])
                self.assertClean(r, p)

    def test_client_credentials_send(self):
        p = self.peer(refresh=())
        flags = ["--oauth2-token-url", p.token_url, "--oauth2-client-id", CLIENT_ID,
                 "--oauth2-client-secret-file", self.secret_file(),
                 "--oauth2-scope", MS_APP_SCOPE]
        r = self.send(p, flags)
        self.assertExit(r, 0, p)
        self.assertDelivered(p, [r.tag])
        ep = p.endpoint()
        self.assertEqual(ep["by_grant"], {"client_credentials": 1}, ep)
        self.assertIn(MS_APP_SCOPE, ep["scopes"])
        self.assertClean(r, p)
        # A wrong secret: the endpoint says invalid_client -> 77, its words shown.
        wrong = self.file("wrong-secret", "not-the-secret-5d1e\n")
        flags[flags.index("--oauth2-client-secret-file") + 1] = wrong
        r = self.send(p, flags)
        self.assertExit(r, 77, p)
        self.assertIn("invalid_client", r.json().get("error", {}).get("message", ""),
                      r.describe())
        self.assertNotIn("not-the-secret-5d1e", r.out + r.err)

    def jwt_flags(self, p, subject=USER):
        return ["--oauth2-service-account-file", p.sa_file, "--oauth2-subject", subject,
                "--oauth2-scope", GOOGLE_SCOPE]

    def test_jwt_bearer_send(self):
        p = self.peer("--subject", USER, refresh=())
        os.chmod(p.sa_file, 0o600)
        r = self.send(p, self.jwt_flags(p))
        self.assertExit(r, 0, p)
        self.assertDelivered(p, [r.tag])
        ep = p.endpoint()
        self.assertEqual(ep["by_grant"], {"urn:ietf:params:oauth:grant-type:jwt-bearer": 1},
                         ep)
        c = ep["jwt_claims"][0]
        self.assertEqual(c["sub"], USER)
        self.assertEqual(c["iss"], p.info["client_email"])
        self.assertEqual(c["aud"], p.token_url, "aud is the key file's token_uri")
        self.assertEqual(c["scope"], GOOGLE_SCOPE)
        self.assertLessEqual(c["exp"] - c["iat"], 3600)
        self.assertClean(r, p)
        # Another mailbox than the one the service account may act for.
        r = self.send(p, self.jwt_flags(p, "intruder@example.org"), user="intruder@example.org")
        self.assertExit(r, 77, p)
        self.assertIn("unauthorized_client", r.json().get("error", {}).get("message", ""),
                      r.describe())
        self.assertClean(r, p)

    def test_secret_files_must_be_private(self):
        """The secret-file check of the hardening issue: group/world access -> 78,
        the file named, its content not shown, and no request made."""
        p = self.peer("--subject", USER)
        rt = self.refresh_file(p)
        flags = self.refresh_flags(p, rt)
        secret = flags[flags.index("--oauth2-client-secret-file") + 1]
        for path, args in ((secret, flags), (rt, flags), (p.sa_file, self.jwt_flags(p))):
            with self.subTest(file=os.path.basename(path)):
                os.chmod(path, 0o640)
                try:
                    r = self.send(p, args)
                finally:
                    os.chmod(path, 0o600)
                self.assertExit(r, 78, p)
                self.assertIn("mode 0640", r.err + r.out, r.describe())
                self.assertIn(path, r.err + r.out, r.describe())
                self.assertClean(r, p)
        self.assertEqual(p.endpoint()["requests"], 0, "a request with an unsafe secret file")

    # ---- rotation, refusals, the endpoint down ----------------------------
    def test_rotation_written_back(self):
        p = self.peer("--rotate")
        rt = self.refresh_file(p)
        seen = {p.initial_refresh[0]}
        for i in range(2):
            r = self.send(p, self.refresh_flags(p, rt))
            self.assertExit(r, 0, p)
            new = p.endpoint()["refresh_tokens"][-1]
            self.assertNotIn(new, seen)
            seen.add(new)
            self.assertEqual(read_text(rt).strip(), new, "the rotated token written back")
            self.assertEqual(stat.S_IMODE(os.stat(rt).st_mode), 0o600)
            self.assertEqual(sorted(os.listdir(os.path.dirname(rt))),
                             sorted(n for n in os.listdir(os.path.dirname(rt))
                                    if not re.search(r"\.tmp|~$|\.new", n)),
                             "a temporary file left beside the token file")
            self.assertClean(r, p)
        self.assertEqual(p.endpoint()["errors"], {}, "the old token was not used again")

    def test_revoked_refresh_token(self):
        p = self.peer()
        rt = self.refresh_file(p)
        p.control(revoke_refresh=True)
        r = self.send(p, self.refresh_flags(p, rt))
        self.assertExit(r, 77, p)
        msg = r.json().get("error", {}).get("message", "")
        self.assertIn("invalid_grant", msg, r.describe())
        self.assertIn("Token has been expired or revoked", msg, r.describe())
        self.assertEqual(sum(x["auths"] for x in self.sessions(p)), 0,
                         "no AUTH without a token")
        self.assertEqual(p.smtp()["delivered"], 0)
        self.assertClean(r, p)
        plain = self.send(p, self.refresh_flags(p, rt), json_=False, trace=False)
        self.assertExit(plain, 77, p)
        self.assertIn("Token has been expired or revoked", plain.err, plain.describe())
        self.assertClean(plain, p)
        t = self.token_cmd(self.refresh_flags(p, rt))
        self.assertExit(t, 77, p)
        self.assertIn("Token has been expired or revoked", t.err, t.describe())
        self.assertClean(t, p)

    def test_refusing_endpoint(self):
        p = self.peer()
        rt = self.refresh_file(p)
        p.control(refuse=True)
        r = self.send(p, self.refresh_flags(p, rt))
        self.assertExit(r, 77, p)
        self.assertIn("Refused by the test endpoint", r.json()["error"]["message"],
                      r.describe())
        self.assertClean(r, p)

    def test_endpoint_down(self):
        p = self.peer()
        rt = self.refresh_file(p)
        dead = "https://127.0.0.1:%d/token" % free_port()
        flags = self.refresh_flags(p, rt)
        flags[flags.index("--oauth2-token-url") + 1] = dead
        with self.subTest(down="connection refused"):
            r = self.send(p, flags)
            self.assertExit(r, 75, p)
            self.assertEqual(r.json()["error"]["class"], "temporary", r.describe())
            self.assertExit(self.token_cmd(flags), 75, p)
        for how in (True, "close"):
            with self.subTest(down=how):
                p.control(down=how)
                r = self.send(p, self.refresh_flags(p, rt))
                self.assertExit(r, 75, p)
                self.assertClean(r, p)
                t = self.token_cmd(self.refresh_flags(p, rt))
                self.assertExit(t, 75, p)
                self.assertClean(t, p)
        self.assertEqual(p.smtp()["delivered"], 0)
        self.assertEqual(read_text(rt).strip(), p.initial_refresh[0],
                         "the refresh token file is untouched")

    # ---- the error challenge --------------------------------------------
    def test_error_challenge_refreshes_once(self):
        for mechs in ("XOAUTH2", "OAUTHBEARER"):
            with self.subTest(mech=mechs):
                p = self.peer("--mechs", mechs)
                rt = self.refresh_file(p, "rt-" + mechs)
                p.control(reject_auths=1)       # the cached token "expired" at the server
                r = self.send(p, self.refresh_flags(p, rt))
                self.assertExit(r, 0, p)
                self.assertDelivered(p, [r.tag])
                s = self.sessions(p)
                self.assertEqual(sum(x["auths"] for x in s), 2, s)
                self.assertEqual(sum(x["challenges"] for x in s), 1, s)
                replies = [c for x in s for c in x["challenge_replies"]]
                self.assertIn(replies, ([""], ["\x01"]) if mechs == "OAUTHBEARER" else ([""],))
                self.assertEqual(p.endpoint()["issued"], 2, "one refresh after the refusal")
                used = p.smtp()["tokens_used"]
                self.assertEqual(len(set(used)), 2, "the retry uses the new token")
                self.assertEqual(p.smtp()["warnings"], [])
                self.assertClean(r, p)

    def test_error_challenge_twice_fails(self):
        p = self.peer()
        rt = self.refresh_file(p)
        p.control(reject_auths=5)
        r = self.send(p, self.refresh_flags(p, rt))
        self.assertExit(r, 77, p)
        s = self.sessions(p)
        self.assertEqual(sum(x["auths"] for x in s), 2, "one retry only: %s" % s)
        self.assertEqual(p.endpoint()["issued"], 2, "one refresh only")
        self.assertEqual(p.smtp()["delivered"], 0)
        msg = r.json().get("error", {}).get("message", "")
        self.assertRegex(msg, r"401|5\.7\.8", "the provider's error: " + r.describe())
        self.assertClean(r, p)

    # ---- missive oauth2 token / authorize ----------------------------------
    def test_oauth2_token_command(self):
        p = self.peer(lifetime=1800)
        rt = self.refresh_file(p)
        r = self.token_cmd(self.refresh_flags(p, rt))
        self.assertExit(r, 0, p)
        self.assertIn(GOOGLE_SCOPE, r.out, r.describe())
        self.assertRegex(r.out, r"(?i)expir", r.describe())
        self.assertRegex(r.out, r"\b1[78]\d\d\b|\b(29|30) ?m|\d\d:\d\d:\d\d", "the expiry in " +
                         r.describe())
        self.assertClean(r, p)
        show = self.token_cmd(["--show"] + self.refresh_flags(p, rt))
        self.assertExit(show, 0, p)
        self.assertIn(p.endpoint()["access_tokens"][-1], show.out, show.describe())
        # The same from a route of a config file.
        cfg = os.path.join(self.dir, "missive.conf")
        with open(cfg, "w") as f:
            f.write("[route default]\nserver = localhost:%d\ntls = starttls\nca-file = %s\n"
                    "user = %s\noauth2-token-url = %s\noauth2-client-id = %s\n"
                    "oauth2-client-secret-file = %s\noauth2-refresh-token-file = %s\n"
                    "oauth2-scope = %s\n" % (p.port, G["ca"], USER, p.token_url, CLIENT_ID,
                                             self.secret_file(), rt, GOOGLE_SCOPE))
        r = self.missive(["oauth2", "token", "--config", cfg, "--route", "default"])
        self.assertExit(r, 0, p)
        self.assertIn(GOOGLE_SCOPE, r.out, r.describe())
        self.assertEqual(p.endpoint()["issued"], 3)
        self.assertClean(r, p)

    def test_device_authorize(self):
        p = self.peer("--device-approve-after", "3", "--device-slow-down", refresh=())
        rt = os.path.join(self.dir, "new-refresh-token")
        r = self.missive(["oauth2", "authorize", "--oauth2-device-url", p.device_url,
                          "--oauth2-token-url", p.token_url, "--oauth2-client-id", CLIENT_ID,
                          "--oauth2-client-secret-file", self.secret_file(),
                          "--oauth2-refresh-token-file", rt, "--oauth2-scope", GOOGLE_SCOPE,
                          "--ca-file", G["ca"]], timeout=60)
        self.assertExit(r, 0, p)
        ep = p.endpoint()
        self.assertEqual(ep["by_grant"], {"urn:ietf:params:oauth:grant-type:device_code": 1})
        self.assertEqual(read_text(rt).strip(), ep["refresh_tokens"][-1],
                         "the device flow's refresh token written to the file")
        self.assertEqual(stat.S_IMODE(os.stat(rt).st_mode), 0o600)
        out = r.out + r.err
        self.assertRegex(out, r"[0-9A-F]{4}-[0-9A-F]{4}", "the user code shown" + r.describe())
        self.assertIn("https://127.0.0.1:%d/verify" % p.info["token_port"], out)
        polls = ep["device_polls"]
        self.assertEqual(len(polls), 3, polls)
        gaps = [b - a for a, b in zip(polls, polls[1:])]
        self.assertGreaterEqual(gaps[0], 5.5, "slow_down adds 5 s to the interval: %s" % gaps)
        self.assertGreaterEqual(gaps[1], 0.9, "the interval is respected: %s" % gaps)
        self.assertClean(r, p)
        # The new refresh token sends mail.
        s = self.send(p, self.refresh_flags(p, rt))
        self.assertExit(s, 0, p)
        self.assertClean(s, p)

    # ---- missived routes ---------------------------------------------------
    def route(self, p, grant, **extra):
        r = {"server": "localhost:%d" % p.port, "tls": "starttls", "ca-file": G["ca"],
             "timeout": "15", "user": USER}
        if grant == "refresh":
            r.update({"oauth2-token-url": p.token_url, "oauth2-client-id": CLIENT_ID,
                      "oauth2-client-secret-file": self.secret_file(),
                      "oauth2-refresh-token-file": self.refresh_file(p),
                      "oauth2-scope": GOOGLE_SCOPE})
        elif grant == "client":
            r.update({"oauth2-token-url": p.token_url, "oauth2-client-id": CLIENT_ID,
                      "oauth2-client-secret-file": self.secret_file(),
                      "oauth2-scope": MS_APP_SCOPE})
        else:
            r.update({"oauth2-service-account-file": p.sa_file, "oauth2-subject": USER,
                      "oauth2-scope": GOOGLE_SCOPE})
        r.update(extra)
        return r

    def test_daemon_each_grant(self):
        for grant, name in (("refresh", "refresh_token"), ("client", "client_credentials"),
                            ("jwt", "urn:ietf:params:oauth:grant-type:jwt-bearer")):
            with self.subTest(grant=grant):
                p = self.peer("--subject", USER)
                d = self.daemon(self.route(p, grant)).start()
                tags = [unique("d-" + grant) for _ in range(3)]
                qids = [d.submit(message(t)) for t in tags]
                states = d.wait_final(qids)
                self.assertEqual(set(s for v in states.values() for s in v), {"sent"},
                                 "%s\n%s" % (states, d.log()[-3000:]))
                self.assertDelivered(p, tags)
                ep = p.endpoint()
                self.assertEqual(ep["by_grant"], {name: 1},
                                 "one token for the route's three messages: %s" % ep)
                self.stop_daemon(d, p)

    def test_daemon_pool_outlives_three_lifetimes(self):
        lifetime = 3
        p = self.peer("--rotate", "--data-delay", "0.25", lifetime=lifetime)
        route = self.route(p, "refresh", **{"max-connections": "4", "max-messages": "10",
                                            "idle-timeout": "30s"})
        rt = route["oauth2-refresh-token-file"]
        d = self.daemon(route, daemon={"workers": "4", "batch": "32"}).start()
        tags = [unique("pool") for _ in range(200)]
        qids = [d.submit(message(t)) for t in tags]
        states = d.wait_final(qids, timeout=240)
        bad = {q: s for q, s in states.items() if s != ["sent"]}
        self.assertEqual(bad, {}, d.log()[-3000:])
        sm, ep = p.smtp(), p.endpoint()
        ids = [m["message_id"] for m in sm["messages"]]
        self.assertEqual(sorted(set(ids)), sorted("<%s@missive.test>" % t for t in tags))
        elapsed = sm["messages"][-1]["t"] - ep["issued_at"][0]
        self.assertGreaterEqual(elapsed, 3 * lifetime, "the run must outlive three "
                                "lifetimes (make the peer slower)")
        lifetimes = math.ceil(elapsed / lifetime)
        authed = [x for x in sm["sessions"] if x["auth_ok"]]
        self.assertGreaterEqual(len(authed), 20, "max-messages 10: 200 messages, >= 20 "
                                "connections")
        self.assertLessEqual(ep["refreshes"], lifetimes + 2,
                             "about one refresh per expiry (%.1fs, %d lifetimes, %d "
                             "connections): %s" % (elapsed, lifetimes, len(authed),
                                                   ep["issued_at"]))
        self.assertGreaterEqual(ep["refreshes"], 3, "tokens expired during the run")
        self.assertEqual(ep["errors"], {}, "no refresh raced another with a rotated token")
        self.assertEqual(read_text(rt).strip(), ep["refresh_tokens"][-1])
        self.assertEqual(stat.S_IMODE(os.stat(rt).st_mode), 0o600)
        self.stop_daemon(d, p)

    def test_daemon_revoked_refresh_token_defers(self):
        """A route whose refresh token was revoked is the operator's to fix: its mail
        waits (deferred, as with Postfix's smtp_sasl_auth_soft_bounce) until it is
        fixed or the message's maximum age: it is not bounced, and it goes out once a
        new refresh token is in the file, without a restart."""
        p = self.peer()
        route = self.route(p, "refresh")
        d = self.daemon(route).start()
        p.control(revoke_refresh=True)
        tag = unique("revoked")
        qid = d.submit(message(tag))
        wait_for(lambda: d.states(qid) == ["deferred"], 20, "the message to be deferred")
        time.sleep(1.5)   # several retries ([retry] base 200ms): still deferred
        self.assertEqual(d.states(qid), ["deferred"], d.log()[-3000:])
        self.assertEqual(p.smtp()["delivered"], 0)
        st, obj = d.request("GET", "/v1/messages/" + qid)
        why = obj["recipients"][0]["last_reply"]["text"]
        self.assertIn("Token has been expired or revoked", why, obj)
        # The operator puts a new refresh token in place: the next retry reads it.
        fresh = "fresh-" + unique("rt")
        p.control(add_refresh=fresh)
        fd = os.open(route["oauth2-refresh-token-file"], os.O_WRONLY | os.O_TRUNC)
        os.write(fd, (fresh + "\n").encode())
        os.close(fd)
        self.assertEqual(d.wait_final([qid]), {qid: ["sent"]}, d.log()[-3000:])
        self.assertDelivered(p, [tag])
        self.stop_daemon(d, p)

    def test_daemon_token_expired_mid_session(self):
        p = self.peer(lifetime=600)
        # trace: the SMTP dialogue, both AUTHs and the challenge, goes to the log.
        d = self.daemon(self.route(p, "refresh", **{"max-messages": "1", "trace": "yes"})).start()
        first = unique("mid1")
        d.wait_final([d.submit(message(first))])
        self.assertEqual(p.endpoint()["issued"], 1)
        p.control(expire_access=True)           # the cached token dies at the server
        second = unique("mid2")
        states = d.wait_final([d.submit(message(second))])
        self.assertEqual(list(states.values()), [["sent"]], d.log()[-3000:])
        self.assertDelivered(p, [first, second])
        s = self.sessions(p)
        self.assertEqual(sum(x["challenges"] for x in s), 1, s)
        self.assertEqual(p.endpoint()["issued"], 2, "one refresh after the error challenge")
        self.assertEqual(p.endpoint()["errors"], {})
        self.stop_daemon(d, p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
