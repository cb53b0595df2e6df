#!/bin/sh
# missived's memory with a large queue: N messages (default 100,000, 2 KB)
# are submitted over the HTTP API while the route's server refuses
# connections, so they all wait in the queue (deferred, an hour's backoff);
# then a sink starts, `missive queue retry --all-deferred` releases them and
# missived delivers them all.  Prints VmRSS when N are queued and VmHWM
# (peak) after delivering them.  Never fails on a number.
#   bench/rss.sh          N=100000 SIZE=2048
set -eu
cd "$(dirname "$0")/.."
N=${N:-100000}
SIZE=${SIZE:-2048}
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" --target missive_cli missived >/dev/null
B=$PWD/build-bench/src
WORK=$(mktemp -d)
D="" SINK=""
trap '[ -n "$D" ] && kill "$D" 2>/dev/null; [ -n "$SINK" ] && kill "$SINK" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SMTP=$(port)
HTTP=$(port)
cat > "$WORK/m.conf" <<CONF
[queue]
path = $WORK/q.db
[http]
listen = 127.0.0.1:$HTTP
trust-loopback = yes
[limits]
# One client queues N messages as fast as it can, all deferred on purpose:
# no limit, and no reputation loss for the deferrals.
ip-rate = off
[reputation]
temporary = 0
[retry]
base = 1h
cap = 1h
[daemon]
workers = 4
batch = 256
[route default]
server = 127.0.0.1:$SMTP
tls = none
CONF
cc -O2 -pthread -o "$WORK/http_submit" bench/peers/http_submit.c
/usr/bin/python3 - "$SIZE" > "$WORK/msg.eml" <<'PY'
import sys
size = int(sys.argv[1])
head = "From: bench@example.com\nTo: sink@example.net\nSubject: rss\n\n"
line = "x" * 70 + "\n"
print(head + line * max(1, (size - len(head)) // len(line)), end="")
PY
"$B/daemon/missived" --config "$WORK/m.conf" > "$WORK/d.log" 2>&1 &
D=$!
i=0
until curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$WORK/d.log"; exit 1; }; sleep 0.1
done
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$D/status"; }
echo "== missived at start: VmRSS $(rss VmRSS) kB"
echo "== submitting $N messages of $SIZE bytes (the server refuses connections: all deferred)"
"$WORK/http_submit" 127.0.0.1:"$HTTP" "$N" 8 "$WORK/msg.eml" bench@example.com sink@example.net
until "$B/cli/missive" queue --config "$WORK/m.conf" stats --json |
      /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["recipients"]["queued"] == 0 and s["leased"] == 0 else 1)'; do
    sleep 1
done
"$B/cli/missive" queue --config "$WORK/m.conf" stats
echo "== $N queued: VmRSS $(rss VmRSS) kB, peak so far VmHWM $(rss VmHWM) kB; queue file $(du -k "$WORK/q.db" | cut -f1) kB"
/usr/sbin/smtp-sink -u postfix -c 127.0.0.1:"$SMTP" 256 >/dev/null 2>&1 &
SINK=$!
sleep 0.5
t0=$(date +%s.%N)
"$B/cli/missive" queue --config "$WORK/m.conf" retry --all-deferred
until "$B/cli/missive" queue --config "$WORK/m.conf" stats --json |
      /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["recipients"]["sent"] >= '"$N"' else 1)'; do
    sleep 1
done
t1=$(date +%s.%N)
echo "== delivered $N in $(echo "$t1 - $t0" | bc) s: VmRSS $(rss VmRSS) kB, peak VmHWM $(rss VmHWM) kB"
