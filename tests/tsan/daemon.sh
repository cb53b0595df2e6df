#!/bin/sh
# ThreadSanitizer over missived: 4 delivery workers, the HTTP API's thread
# pool and the queue's group commit at once.  200 messages by HTTP (8
# clients) and 20 by `missive sendmail` (through the submission socket, all
# at once) into a STARTTLS test server, then
# SIGTERM: every message sent, exit 0, no race reported.
#   tests/tsan/daemon.sh BUILD_DIR      (a -DMSV_TSAN=ON build)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
B=$1
WORK=$(mktemp -d)
SRV="" D=""
trap '[ -n "$D" ] && kill "$D" 2>/dev/null; [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
"$HERE/../peers/certs.sh" "$WORK/certs" >/dev/null
/usr/bin/python3 "$HERE/../peers/faultsmtp.py" --port 0 --scenario starttls \
    --cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" \
    --log /dev/null --ready-file "$WORK/ready" >/dev/null 2>&1 &
SRV=$!
i=0
while [ ! -s "$WORK/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
HTTP=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/m.conf" <<CONF
[queue]
path = $WORK/q.db
[http]
listen = 127.0.0.1:$HTTP
trust-loopback = yes
[daemon]
workers = 4
batch = 8
poll-interval = 100ms
[route default]
server = localhost:$(cat "$WORK/ready")
ca-file = $WORK/certs/ca.pem
max-connections = 4
CONF
export TSAN_OPTIONS="halt_on_error=1 suppressions=$HERE/tsan.supp"
"$B/src/daemon/missived" --config "$WORK/m.conf" > "$WORK/d.log" 2>&1 &
D=$!
/usr/bin/python3 - "$HTTP" <<'PY'
import json, sys, threading, time, urllib.request
port = int(sys.argv[1])
url = "http://127.0.0.1:%d" % port
for _ in range(300):
    try:
        urllib.request.urlopen(url + "/healthz", timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("missived's API never came up")
ok = []
def client(k):
    for i in range(25):
        body = json.dumps({"from": "a@example.test", "to": ["b%d@example.test" % i],
                           "subject": "t%d-%d" % (k, i), "text": "hello"}).encode()
        req = urllib.request.Request(url + "/v1/messages", data=body, method="POST")
        if urllib.request.urlopen(req, timeout=60).status == 202:
            ok.append(1)
ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
if len(ok) != 200:
    sys.exit("only %d of 200 submissions accepted" % len(ok))
PY
# At once, so the submission socket serves several connections together.
pids=""
for i in $(seq 20); do
    printf 'From: a@example.test\nTo: c@example.test\nSubject: s%s\n\nhi\n' "$i" |
        "$B/src/cli/missive" sendmail --config "$WORK/m.conf" -t &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || { echo "a sendmail failed"; exit 1; }; done
grep -q 'submission socket /' "$WORK/d.log" || { echo "no submission socket"; cat "$WORK/d.log"; exit 1; }
end=$(($(date +%s) + 120))
until "$B/src/cli/missive" queue --config "$WORK/m.conf" stats --json | grep -q '"sent":[[:space:]]*220'; do
    [ "$(date +%s)" -lt $end ] || { echo "not all sent"; "$B/src/cli/missive" queue --config "$WORK/m.conf" stats; cat "$WORK/d.log"; exit 1; }
    sleep 0.5
done
curl -sf "http://127.0.0.1:$HTTP/metrics" | grep -q '^missive_delivered_total 220' || { echo "metrics disagree"; exit 1; }
kill -TERM "$D"
rc=0
wait "$D" || rc=$?
D=""
if [ $rc -ne 0 ] || grep -q ThreadSanitizer "$WORK/d.log"; then cat "$WORK/d.log"; exit 1; fi
echo "tsan missived: ok (220 messages, exit 0)"
