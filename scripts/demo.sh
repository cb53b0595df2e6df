#!/bin/sh
# The main job, end to end on this machine: build missive, start a private
# Postfix on 127.0.0.1 (STARTTLS required, SASL login, a test CA) as the
# smarthost, start missived on its embedded SQLite queue, and hand it two
# messages -- one through `missive sendmail` (text + HTML + attachment,
# DKIM-signed with a freshly generated key), one through the HTTP API --
# then wait for delivery and show each recipient's state and the Maildir
# file Postfix delivered it to.  Stops what it started.
#   MSV_DEMO_DIR   where everything lives (default /tmp/missive-demo)
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh

DEMO=${MSV_DEMO_DIR:-/tmp/missive-demo}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
MISSIVE=$PWD/build/src/cli/missive
MISSIVED=$PWD/build/src/daemon/missived

echo "== starting Postfix on 127.0.0.1 (private instance in $DEMO)"
tests/peers/postfix.sh stop "$DEMO" >/dev/null 2>&1 || true
tests/peers/postfix.sh start "$DEMO" >/dev/null
DPID=""
cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    tests/peers/postfix.sh stop "$DEMO" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
. "$DEMO/ports.env"
. "$DEMO/credentials.env"
printf '%s\n' "$SASL_PASSWORD" > "$DEMO/password"
chmod 600 "$DEMO/password"

echo "== a fresh DKIM key for example.test (selector demo)"
"$MISSIVE" dkim keygen --algo ed25519 --selector demo --domain example.test \
    --out "$DEMO/dkim.key" --force | sed 's/^/   /'

HTTP_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -f "$DEMO"/queue.db*
cat > "$DEMO/missive.conf" <<CONF
[queue]
path = $DEMO/queue.db

[http]
listen = 127.0.0.1:$HTTP_PORT
trust-loopback = yes

[daemon]
poll-interval = 200ms

[route default]
server = 127.0.0.1:$SUBMISSION_PORT
tls = starttls
ca-file = $DEMO/certs/ca.pem
user = $SASL_USER
password-file = $DEMO/password
dkim-key = $DEMO/dkim.key
dkim-selector = demo
dkim-domain = example.test
CONF
export MISSIVE_CONFIG="$DEMO/missive.conf"
echo "== missived --config $MISSIVE_CONFIG (log: $DEMO/missived.log)"
"$MISSIVED" > "$DEMO/missived.log" 2>&1 &
DPID=$!
# Ready once the API answers and the socket is there; before that, sendmail
# would write the queue itself instead of handing the message over.
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && [ -S "$DEMO/submit.sock" ] && break
    kill -0 "$DPID" 2>/dev/null || { cat "$DEMO/missived.log" >&2; exit 1; }
    sleep 0.1
done

echo "== missive build ... | missive sendmail -t   (text + HTML + attachment)"
printf 'Quarterly figures, as promised.\n' > "$DEMO/report.txt"
printf '<p>This message was queued by <b>missive sendmail</b> and delivered by missived.</p>\n' \
    > "$DEMO/body.html"
ID1=$("$MISSIVE" build --from sender@example.test --from-name "Demo Sender" --to reader@example.test \
        --subject "Hello from missive — via sendmail" \
        --text-body "This message was queued by 'missive sendmail' and delivered by missived." \
        --html "$DEMO/body.html" --attach "$DEMO/report.txt" |
      "$MISSIVE" sendmail -t -i --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "   queued as $ID1 (handed to missived through $DEMO/submit.sock)"

echo "== POST http://127.0.0.1:$HTTP_PORT/v1/messages"
REPLY=$(curl -sS -X POST "http://127.0.0.1:$HTTP_PORT/v1/messages" -H 'Content-Type: application/json' \
        -d '{"from": "sender@example.test", "to": ["reader@example.test"],
             "subject": "Hello from missive — via the HTTP API",
             "text": "This message was queued over HTTP and delivered by missived."}')
echo "   $REPLY"
ID2=$(printf '%s' "$REPLY" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "== waiting for delivery"
for ID in $ID1 $ID2; do
    i=0
    until "$MISSIVE" queue show "$ID" --json | grep -q '"state":[[:space:]]*"sent"'; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "message $ID not delivered; missived log:" >&2
            tail -n 20 "$DEMO/missived.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "-- missive queue show $ID"
    "$MISSIVE" queue show "$ID" | sed 's/^/   /'
    MSGID=$("$MISSIVE" queue show "$ID" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["message_id"])')
    file=""
    i=0
    while [ $i -lt 100 ]; do
        file=$(grep -l -F "$MSGID" "$DEMO"/mail/example.test/new/* 2>/dev/null | head -n 1 || true)
        [ -n "$file" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    [ -n "$file" ] || { echo "not in the Maildir yet: $MSGID" >&2; exit 1; }
    echo "   delivered by Postfix to $file"
    [ -n "${first:-}" ] || first=$file
done
echo "== the first message as delivered (DKIM-Signature first):"
head -n 30 "$first" | sed 's/^/   /'
echo "== missived's log (queue IDs and reply codes, never addresses):"
sed 's/^/   /' "$DEMO/missived.log"
echo "== the audit trail ($DEMO/audit.jsonl: addresses as pseudonyms, each line chained):"
/usr/bin/python3 - "$DEMO/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    who = e["actor"]["kind"] + (":" + e["actor"]["id"] if "id" in e["actor"] else "")
    p = e["masked_payload"]
    what = p.get("recipient") or p.get("recipients") or ""
    print("   %4d %s %-18s %-12s %s %s" % (e["seq"], e["ts"], e["type"], who, e["qid"] or "-", what))
PY
echo "-- missive audit verify"
"$MISSIVE" audit verify | sed 's/^/   /'
