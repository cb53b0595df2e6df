#!/usr/bin/python3
"""oauth_peer.py - an OAuth 2.0 provider and an XOAUTH2/OAUTHBEARER SMTP server in one
process, for missive's OAuth2 tests (issue 18).  Stdlib + Debian's aiosmtpd.

    oauth_peer.py --port 0 --ready-file F --dir D --cert server.pem --key server.key
                  [--token-port 0] [--lifetime 4] [--rotate] [--client-id ID]
                  [--client-secret S] [--refresh-token T]... [--subject MAILBOX]
                  [--mechs "XOAUTH2 OAUTHBEARER"] [--device-approve-after N]
                  [--device-slow-down] [--data-delay S]

Token endpoint: HTTPS (the test certificate) on 127.0.0.1:<token-port>.
  POST /token   application/x-www-form-urlencoded, client authentication in the body
                (client_id, client_secret) or HTTP Basic (RFC 6749 2.3.1); grants:
      refresh_token        refresh_token must be one of the valid refresh tokens (the
                           --refresh-token values, and those issued since); with --rotate
                           the answer carries a new refresh_token and the old one dies
      client_credentials   client_id and client_secret must match; scope is recorded
      urn:ietf:params:oauth:grant-type:jwt-bearer   (RFC 7523) assertion = an RS256 JWT
                           signed with the key of D/service-account.json (made at start
                           with openssl): iss = its client_email, aud = the token URL,
                           exp in the future and at most an hour after iat, scope given,
                           sub = --subject when given (the token is then only good for
                           that user)
      urn:ietf:params:oauth:grant-type:device_code  (RFC 8628) device_code from
                           POST /device: authorization_pending until the
                           --device-approve-after'th poll (slow_down once first with
                           --device-slow-down), then an access and a refresh token
    A success is {"access_token", "token_type": "Bearer", "expires_in": --lifetime,
    "scope"} (+ "refresh_token"); access tokens are random and valid --lifetime
    seconds.  Errors are RFC 6749 5.2 JSON, status 400 (401 for invalid_client).
  POST /device  client_id, scope -> {"device_code", "user_code", "verification_uri",
                "verification_url", "expires_in": 300, "interval": 1}
  POST /control JSON, any of:
      {"refuse": bool}          every /token request gets 400 invalid_grant
      {"revoke_refresh": true}  every refresh token issued so far is invalid
      {"down": false|true|"close"}  /token answers 503 / drops the connection
      {"expire_access": true}   every access token issued so far is expired
      {"reject_auths": N}       the next N AUTHs get the error challenge, whatever
                                the token ("expired" at the server's end)
      {"add_refresh": "T"}      T becomes a valid refresh token
  GET /stats    the endpoint's record (below)
SMTP: 127.0.0.1:--port, ESMTP with STARTTLS (the test certificate); AUTH (after TLS
  only) offers --mechs (default "XOAUTH2 OAUTHBEARER"); MAIL needs AUTH.  AUTH succeeds
  only with a currently valid access token, decoded exactly:
      XOAUTH2      user=U ^A auth=Bearer T ^A ^A
      OAUTHBEARER  n,a=U, ^A host=H ^A port=P ^A auth=Bearer T ^A ^A   (RFC 7628)
  otherwise: 334 base64({"status":"401","schemes":"bearer","scope":...}), the client's
  answer (XOAUTH2: empty; OAUTHBEARER: empty or ^A), then 535 5.7.8.
  --data-delay S waits S seconds after each final dot.
Records, rewritten atomically at each change:
  D/endpoint.json  {"requests", "issued", "by_grant": {grant: n}, "refreshes" (refresh
                    grant requests), "errors": {error: n}, "client_auth": {how: n},
                    "scopes": [...], "jwt_claims": [...], "device_polls": [times],
                    "issued_at": [times], "assertions": [JWTs], "access_tokens": [...],
                    "refresh_tokens": [...]}  (every token and JWT seen: the test looks
                    for them where they must not be)
  D/smtp.json      {"delivered", "messages": [{"session", "mail_from", "rcpt_tos",
                    "message_id", "user", "mech", "t"}], "sessions": [{"id", "auths",
                    "auth_ok", "challenges", "challenge_replies", "mechs", "users",
                    "hosts", "ports", "messages", "tls"}], "tokens_used": [...],
                    "warnings": [...]}
Ready: D/peer.json {"smtp_port", "token_port", "token_url", "device_url",
  "service_account_file", "client_email", "private_key_id"} is written first, then the
  SMTP port into --ready-file (as the other peers do, for harness.start_peer).
SIGTERM ends the process.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

# aiosmtpd 1.4 warns on each successful AUTH of a mechanism of its own.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")

G_REFRESH = "refresh_token"
G_CLIENT = "client_credentials"
G_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
G_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
ERROR_SCOPE = "https://mail.google.com/"
# DigestInfo of SHA-256 (RFC 8017 9.2 note 1), before the hash.
SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class OAuthError(Exception):
    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


# ------------------------------------------------------------------ shared state

class State:
    """Everything both servers share, guarded by self.lock: token_ok() takes it, the
    other methods expect it held."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.access = {}            # token -> {"expires": time, "subject": user or None}
        self.refresh = set(args.refresh_token or [])
        self.devices = {}           # device_code -> {"polls", "slowed", "expires", "done"}
        self.control = {"refuse": False, "down": False, "reject_auths": 0}
        self.ep = {"requests": 0, "issued": 0, "by_grant": {}, "refreshes": 0, "errors": {},
                   "client_auth": {}, "scopes": [], "jwt_claims": [], "device_polls": [],
                   "issued_at": [], "assertions": [], "access_tokens": [],
                   "refresh_tokens": sorted(self.refresh)}
        self.smtp = {"delivered": 0, "messages": [], "sessions": [], "tokens_used": [],
                     "warnings": []}
        self.sa = None              # the service account: client_email, key, token_uri

    def save(self):
        d = self.args.dir
        write_atomic(os.path.join(d, "endpoint.json"), json.dumps(self.ep, indent=1))
        write_atomic(os.path.join(d, "smtp.json"), json.dumps(self.smtp, indent=1))

    def count(self, table, key):
        self.ep[table][key] = self.ep[table].get(key, 0) + 1

    def issue(self, grant, scope=None, subject=None, with_refresh=False):
        """A token response: a new access token (and a refresh token) for scope (the
        one asked for; default --scope)."""
        tok = "at-" + secrets.token_urlsafe(24)
        self.access[tok] = {"expires": time.time() + self.args.lifetime, "subject": subject}
        self.ep["issued"] += 1
        self.ep["access_tokens"].append(tok)
        self.ep["issued_at"].append(time.time())
        self.count("by_grant", grant)
        resp = {"access_token": tok, "token_type": "Bearer",
                "expires_in": int(self.args.lifetime), "scope": scope or self.args.scope}
        if with_refresh:
            rt = self.new_refresh()
            resp["refresh_token"] = rt
        return resp

    def new_refresh(self):
        rt = "rt-" + secrets.token_urlsafe(24)
        self.refresh.add(rt)
        self.ep["refresh_tokens"].append(rt)
        return rt

    def token_ok(self, tok, user):
        """Why the access token tok cannot authenticate user now, or None."""
        with self.lock:
            self.smtp["tokens_used"].append(tok)
            if self.control["reject_auths"] > 0:
                self.control["reject_auths"] -= 1
                return "rejected by control"
            a = self.access.get(tok)
            if a is None:
                return "unknown token"
            if a["expires"] <= time.time():
                return "expired token"
            if a["subject"] and a["subject"] != user:
                return "token of another user"
            return None


# ------------------------------------------------------------------ token endpoint

def verify_rs256(signing_input, sig, n, e):
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.2), in plain integers."""
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = SHA256_INFO + hashlib.sha256(signing_input).digest()
    want = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, want)


class Grants:
    """The grant handlers: form (dict of str) + client (id, secret) -> response dict;
    called with the state's lock held."""

    def __init__(self, st):
        self.st, self.a = st, st.args

    def check_client(self, client, need_secret):
        cid, secret = client
        if self.a.client_id and cid != self.a.client_id:
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        if secret is not None or need_secret:
            if self.a.client_secret is None or secret is None or \
                    not hmac.compare_digest(secret, self.a.client_secret):
                raise OAuthError("invalid_client", "Unauthorized: client secret is wrong.", 401)

    def refresh_token(self, form, client):
        self.st.ep["refreshes"] += 1
        self.check_client(client, False)
        rt = form.get("refresh_token")
        if not rt:
            raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
        if rt not in self.st.refresh:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        if self.a.rotate:
            self.st.refresh.discard(rt)
            resp = self.st.issue(G_REFRESH, form.get("scope"), with_refresh=True)
        else:
            resp = self.st.issue(G_REFRESH, form.get("scope"))
        self.scope(form)
        return resp

    def client_credentials(self, form, client):
        self.check_client(client, True)
        self.scope(form)
        return self.st.issue(G_CLIENT, form.get("scope"))

    def scope(self, form):
        if "scope" in form:
            self.st.ep["scopes"].append(form["scope"])

    def jwt_bearer(self, form, client):
        self.st.ep["assertions"].append(form.get("assertion", ""))
        claims = self.verify_jwt(form.get("assertion", ""))
        self.st.ep["jwt_claims"].append(claims)
        self.st.ep["scopes"].append(claims["scope"])
        return self.st.issue(G_JWT, claims["scope"], subject=claims.get("sub"))

    def verify_jwt(self, jwt):
        bad = lambda why: OAuthError("invalid_grant", "Invalid JWT: " + why)  # noqa: E731
        parts = jwt.split(".")
        if len(parts) != 3:
            raise bad("not three base64url parts")
        try:
            head, claims = (json.loads(b64url_decode(p)) for p in parts[:2])
            sig = b64url_decode(parts[2])
        except ValueError:
            raise bad("undecodable part")
        sa = self.st.sa
        if head.get("alg") != "RS256":
            raise bad("alg is %r, not RS256" % head.get("alg"))
        if "kid" in head and head["kid"] != sa["private_key_id"]:
            raise bad("unknown kid")
        if not verify_rs256((parts[0] + "." + parts[1]).encode(), sig, sa["n"], sa["e"]):
            raise bad("Invalid signature")
        now = time.time()
        for c in ("iss", "aud", "exp", "iat", "scope"):
            if c not in claims:
                raise bad("claim %s missing" % c)
        if claims["iss"] != sa["client_email"]:
            raise bad("iss is not the service account")
        if claims["aud"] != sa["token_uri"]:
            raise bad("aud %r is not the token URL" % claims["aud"])
        if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int):
            raise bad("exp and iat must be integers")
        if claims["exp"] <= now or claims["iat"] > now + 60 or \
                claims["exp"] - claims["iat"] > 3600:
            raise bad("Token must be a short-lived token (60 minutes) and in a "
                      "reasonable timeframe")
        if not claims["scope"]:
            raise bad("empty scope")
        if self.a.subject and claims.get("sub") != self.a.subject:
            raise OAuthError("unauthorized_client", "Client is unauthorized to retrieve "
                             "access tokens for this subject")
        return claims

    def device_code(self, form, client):
        self.check_client(client, False)
        d = self.st.devices.get(form.get("device_code", ""))
        if d is None or d["done"]:
            raise OAuthError("invalid_grant", "Malformed or used device code.")
        now = time.time()
        self.st.ep["device_polls"].append(now)
        if now > d["expires"]:
            raise OAuthError("expired_token", "The device code has expired.")
        d["polls"] += 1
        if self.a.device_slow_down and not d["slowed"]:
            d["slowed"] = True
            raise OAuthError("slow_down", "Polling too frequently.")
        if d["polls"] < self.a.device_approve_after:
            raise OAuthError("authorization_pending", "Precondition Required")
        d["done"] = True
        self.scope(form)
        return self.st.issue(G_DEVICE, d["scope"], with_refresh=True)

    def device(self, form, client):
        self.check_client(client, False)
        code = "dc-" + secrets.token_urlsafe(16)
        user_code = "%s-%s" % (secrets.token_hex(2).upper(), secrets.token_hex(2).upper())
        self.st.devices[code] = {"polls": 0, "slowed": False, "done": False,
                                 "scope": form.get("scope"),
                                 "expires": time.time() + 300, "user_code": user_code}
        uri = "https://127.0.0.1:%d/verify" % self.a.token_port_bound
        return {"device_code": code, "user_code": user_code, "verification_uri": uri,
                "verification_url": uri, "expires_in": 300, "interval": 1}


GRANTS = {G_REFRESH: "refresh_token", G_CLIENT: "client_credentials",
          G_JWT: "jwt_bearer", G_DEVICE: "device_code"}


def make_handler(st):
    grants = Grants(st)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "oauth-peer/1"

        def log_message(self, fmt, *args):
            sys.stdout.write("http: %s\n" % (fmt % args))
            sys.stdout.flush()

        def answer(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Pragma", "no-cache")
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def client(self, form):
            """(client id, secret) from HTTP Basic or the form; which is recorded."""
            h = self.headers.get("Authorization", "")
            if h.lower().startswith("basic "):
                try:
                    cid, _, secret = base64.b64decode(h[6:].strip()).decode().partition(":")
                except ValueError:
                    raise OAuthError("invalid_client", "bad Basic credentials", 401)
                st.count("client_auth", "basic")
                return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
            st.count("client_auth", "post" if "client_secret" in form else "id-only")
            return form.get("client_id"), form.get("client_secret")

        def do_GET(self):
            if self.path == "/stats":
                with st.lock:
                    return self.answer(200, st.ep)
            self.answer(404, {"error": "not_found"})

        def do_POST(self):
            raw = self.body()
            path = self.path.split("?", 1)[0]
            if path == "/control":
                return self.control(raw)
            if path not in ("/token", "/device"):
                return self.answer(404, {"error": "not_found"})
            with st.lock:
                st.ep["requests"] += 1
                try:
                    status, obj = 200, self.token(path, raw)
                except OAuthError as e:
                    st.count("errors", e.error)
                    status = e.status
                    obj = {"error": e.error, "error_description": e.description}
                st.save()
            if status is None:          # "down": "close"
                self.close_connection = True
                return
            self.answer(status, obj)

        def token(self, path, raw):
            """The response to a /token or /device request (lock held); None for
            a connection to drop."""
            ctype = self.headers.get("Content-Type", "")
            if st.control["down"]:
                if st.control["down"] == "close":
                    raise OAuthError("down", "dropped", None)
                raise OAuthError("temporarily_unavailable", "The service is down.", 503)
            if not ctype.lower().startswith("application/x-www-form-urlencoded"):
                raise OAuthError("invalid_request", "Content-Type %r is not a form" % ctype)
            try:
                pairs = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True,
                                              strict_parsing=bool(raw))
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_request", "malformed form body")
            if any(len(v) > 1 for v in pairs.values()):
                raise OAuthError("invalid_request", "a parameter is repeated")
            form = {k: v[0] for k, v in pairs.items()}
            client = self.client(form)
            if path == "/device":
                return grants.device(form, client)
            if st.control["refuse"]:
                raise OAuthError("invalid_grant", "Refused by the test endpoint's control.")
            name = GRANTS.get(form.get("grant_type"))
            if name is None:
                raise OAuthError("unsupported_grant_type",
                                 "Invalid grant_type: %s" % form.get("grant_type"))
            return getattr(grants, name)(form, client)

        def control(self, raw):
            try:
                c = json.loads(raw or b"{}")
            except ValueError:
                return self.answer(400, {"error": "invalid_request"})
            with st.lock:
                for k in ("refuse", "down", "reject_auths"):
                    if k in c:
                        st.control[k] = c[k]
                if c.get("revoke_refresh"):
                    st.refresh.clear()
                if c.get("expire_access"):
                    for a in st.access.values():
                        a["expires"] = 0
                if c.get("add_refresh"):
                    st.refresh.add(c["add_refresh"])
                    st.ep["refresh_tokens"].append(c["add_refresh"])
                st.save()
                self.answer(200, {"control": st.control, "refresh_tokens": len(st.refresh)})

    return Handler


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, handler, ctx):
        self.ctx = ctx
        super().__init__(addr, handler)

    def get_request(self):
        # The handshake happens in the request's thread, not in the accept loop.
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        sys.stdout.write("http: error from %s: %s\n" % (client_address, sys.exc_info()[1]))


# ------------------------------------------------------------------ service account

def make_service_account(st, token_url):
    """A new RSA key with openssl, as a Google service-account JSON key file in --dir."""
    d = st.args.dir
    pem = os.path.join(d, "sa-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_pubexp:65537",
                    "-out", pem], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    mod = subprocess.run(["openssl", "rsa", "-in", pem, "-noout", "-modulus"], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()
    with open(pem) as f:
        key = f.read()
    os.unlink(pem)
    sa = {"type": "service_account", "project_id": "missive-test",
          "private_key_id": secrets.token_hex(20), "private_key": key,
          "client_email": "mailer@missive-test.iam.gserviceaccount.com",
          "client_id": "104857600000000000001",
          "auth_uri": "https://127.0.0.1/auth", "token_uri": token_url}
    path = os.path.join(d, "service-account.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(sa, f, indent=2)
    os.chmod(path, 0o600)
    st.sa = dict(sa, n=int(re.search(r"Modulus=([0-9A-Fa-f]+)", mod).group(1), 16), e=65537)
    return path


# ------------------------------------------------------------------ SMTP

class OAuthSMTP(SMTP):
    """aiosmtpd's SMTP with the two bearer mechanisms (auth_* methods) and a record
    of each session."""

    def __init__(self, st, *a, **kw):
        self.st = st
        with st.lock:
            self.rec = {"id": len(st.smtp["sessions"]) + 1, "auths": 0, "auth_ok": 0,
                        "challenges": 0, "challenge_replies": [], "mechs": [], "users": [],
                        "hosts": [], "ports": [], "messages": 0, "tls": False}
            st.smtp["sessions"].append(self.rec)
        super().__init__(*a, **kw)

    def warn(self, text):
        with self.st.lock:
            self.st.smtp["warnings"].append("session %d: %s" % (self.rec["id"], text))
            self.st.save()

    async def response(self, args):
        """The client's SASL response: the initial response or the answer to 334."""
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return base64.b64decode(args[1], validate=True)
            except ValueError:
                return None
        r = await self.challenge_auth(b"")
        return None if r is None or not isinstance(r, bytes) else r

    async def bearer(self, mech, args, parse):
        with self.st.lock:
            self.rec["auths"] += 1
            self.rec["mechs"].append(mech)
            self.rec["tls"] = self._tls_protocol is not None
            self.st.save()
        resp = await self.response(args)
        if resp is None:
            return AuthResult(success=False, handled=False, message="501 5.5.2 bad base64")
        got = parse(resp)
        if got is None:
            self.warn("malformed %s response %r" % (mech, resp))
            return AuthResult(success=False, handled=False,
                              message="501 5.5.2 malformed %s response" % mech)
        user, token = got
        why = self.st.token_ok(token, user)
        with self.st.lock:
            self.rec["users"].append(user)
        if why is None:
            with self.st.lock:
                self.rec["auth_ok"] += 1
                self.st.save()
            return AuthResult(success=True, auth_data=user)
        return await self.error_challenge(mech, why)

    async def error_challenge(self, mech, why):
        err = {"status": "401", "schemes": "bearer", "scope": ERROR_SCOPE}
        with self.st.lock:
            self.rec["challenges"] += 1
            self.st.save()
        reply = await self.challenge_auth(json.dumps(err).encode())
        if not isinstance(reply, bytes):
            return AuthResult(success=False, handled=True)      # '*' or bad base64: answered
        with self.st.lock:
            self.rec["challenge_replies"].append(reply.decode("latin-1"))
            self.rec.setdefault("refused", []).append(why)
        ok = (b"",) if mech == "XOAUTH2" else (b"", b"\x01")
        if reply not in ok:
            self.warn("%s: non-empty answer to the error challenge (%s)" % (mech, why))
        else:
            self.st.save()
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

    async def auth_XOAUTH2(self, _, args):
        def parse(r):
            m = re.fullmatch(rb"user=([^\x01]+)\x01auth=Bearer ([^\x01 ]+)\x01\x01", r)
            return m and (m.group(1).decode("latin-1"), m.group(2).decode("latin-1"))
        return await self.bearer("XOAUTH2", args, parse)

    async def auth_OAUTHBEARER(self, _, args):
        def parse(r):
            m = re.fullmatch(rb"([nyp][^,]*),(?:a=([^,]*))?,\x01"
                             rb"((?:[a-zA-Z]+=[^\x01]*\x01)+)\x01", r)
            if not m or m.group(1) != b"n" or not m.group(2):
                return None
            kv = {}
            for item in m.group(3).split(b"\x01")[:-1]:
                k, _, v = item.partition(b"=")
                if k in kv:
                    return None
                kv[k] = v.decode("latin-1")
            am = re.fullmatch(r"Bearer ([^ ]+)", kv.get(b"auth", ""))
            if not am or b"host" not in kv or b"port" not in kv:
                return None
            with self.st.lock:
                self.rec["hosts"].append(kv[b"host"])
                self.rec["ports"].append(kv[b"port"])
            if kv[b"port"] != str(self.st.args.port_bound):
                self.warn("OAUTHBEARER port=%s, not %d" % (kv[b"port"], self.st.args.port_bound))
            return m.group(2).decode("latin-1"), am.group(1)
        return await self.bearer("OAUTHBEARER", args, parse)


class Recorder:
    def __init__(self, st):
        self.st = st

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        if self.st.args.data_delay:
            await asyncio.sleep(self.st.args.data_delay)
        head = content.split(b"\r\n\r\n", 1)[0]
        m = re.search(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)", head)
        with self.st.lock:
            self.st.smtp["delivered"] += 1
            server.rec["messages"] += 1
            self.st.smtp["messages"].append({
                "session": server.rec["id"], "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message_id": m.group(1).decode("latin-1") if m else None,
                "user": session.auth_data,
                "mech": server.rec["mechs"][-1] if server.rec["mechs"] else None,
                "size": len(content), "t": time.time()})
            self.st.save()
        return "250 2.0.0 OK: queued as OAUTH%d" % self.st.smtp["delivered"]


# ------------------------------------------------------------------ main

async def main_async(args, st, tls):
    loop = asyncio.get_running_loop()
    mechs = args.mechs.upper().split()
    exclude = ["PLAIN", "LOGIN"] + [m for m in ("XOAUTH2", "OAUTHBEARER") if m not in mechs]

    def factory():
        return OAuthSMTP(st, Recorder(st), hostname="oauth.test", ident="oauth-peer",
                         decode_data=False, tls_context=tls, require_starttls=True,
                         auth_required=True, auth_require_tls=True,
                         auth_exclude_mechanism=exclude, loop=loop)

    server = await loop.create_server(factory, host="127.0.0.1", port=args.port)
    args.port_bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = {"smtp_port": args.port_bound, "token_port": args.token_port_bound,
            "token_url": args.token_url, "device_url": args.token_url[:-len("token")] + "device",
            "control_url": args.token_url[:-len("token")] + "control",
            "service_account_file": args.sa_file, "client_email": st.sa["client_email"],
            "private_key_id": st.sa["private_key_id"]}
    write_atomic(os.path.join(args.dir, "peer.json"), json.dumps(info, indent=1))
    write_atomic(args.ready_file, "%d\n" % args.port_bound)
    print("listening smtp %d token %d" % (args.port_bound, args.token_port_bound), flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="SMTP port on 127.0.0.1 (0: any)")
    ap.add_argument("--token-port", type=int, default=0, help="HTTPS port (0: any)")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--dir", required=True, help="records, peer.json, service-account.json")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--lifetime", type=float, default=4.0, help="access token seconds")
    ap.add_argument("--rotate", action="store_true", help="rotate refresh tokens on use")
    ap.add_argument("--client-id")
    ap.add_argument("--client-secret")
    ap.add_argument("--refresh-token", action="append", help="a valid refresh token")
    ap.add_argument("--scope", default=ERROR_SCOPE,
                    help="the scope of a token when none is asked for")
    ap.add_argument("--subject", help="the sub a JWT assertion must name")
    ap.add_argument("--mechs", default="XOAUTH2 OAUTHBEARER")
    ap.add_argument("--device-approve-after", type=int, default=3)
    ap.add_argument("--device-slow-down", action="store_true")
    ap.add_argument("--data-delay", type=float, default=0.0)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    st = State(args)

    http_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    http_ctx.load_cert_chain(args.cert, args.key)
    httpd = TLSServer(("127.0.0.1", args.token_port), make_handler(st), http_ctx)
    args.token_port_bound = httpd.server_address[1]
    args.token_url = "https://127.0.0.1:%d/token" % args.token_port_bound
    args.sa_file = make_service_account(st, args.token_url)
    with st.lock:
        st.save()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    smtp_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    smtp_ctx.load_cert_chain(args.cert, args.key)
    asyncio.run(main_async(args, st, smtp_ctx))
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
