#!/bin/sh
# The gateway's cost (issue 14): HTTP submission throughput with API keys
# and every limit on (set high enough never to refuse) against the same run
# with the gateway out of the way (trust-loopback, no key, limits off).
# N messages of SIZE bytes through POST /v1/messages over CONNS keep-alive
# connections (bench/peers/http_submit.c), ROUNDS rounds alternating the two
# setups, best of each.  The route's server refuses connections, so the
# messages wait in the queue (an hour's backoff) and delivery costs next to
# nothing; [reputation] temporary = 0 so those deferrals do not lower the
# key's score mid-run (the outcomes are still judged and written).
# Prints messages/s of both, the ratio (the issue asks for >= 0.9) and the
# policy cost per request in microseconds, from missived's own counters
# (missive_gateway_policy_seconds_total / missive_gateway_admissions_total:
# authentication and admission, timed inside missived).  Never fails on a
# number.
#   bench/gateway.sh          N=20000 SIZE=2048 CONNS=8 ROUNDS=2 BUILD=build-bench
set -eu
cd "$(dirname "$0")/.."
N=${N:-20000}
SIZE=${SIZE:-2048}
CONNS=${CONNS:-8}
ROUNDS=${ROUNDS:-2}
if [ -z "${BUILD:-}" ]; then
    BUILD=build-bench
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target missive_cli missived >/dev/null
fi
B=$PWD/$BUILD/src
WORK=$(mktemp -d)
D=""
trap '[ -n "$D" ] && kill "$D" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cc -O2 -pthread -o "$WORK/http_submit" bench/peers/http_submit.c
/usr/bin/python3 - "$SIZE" > "$WORK/msg.eml" <<'PY'
import sys
size = int(sys.argv[1])
head = "From: bench@example.com\nTo: sink@example.net\nSubject: gateway\n\n"
line = "x" * 70 + "\n"
print(head + line * max(1, (size - len(head)) // len(line)), end="")
PY

# conf DIR MODE: MODE "on" (keys, every limit) or "off".
conf() {
    if [ "$2" = on ]; then
        trust=no; rate=100000/s; burst=100000
    else
        trust=yes; rate=off; burst=1
    fi
    cat > "$1/m.conf" <<CONF
[queue]
path = $1/q.db
[http]
listen = 127.0.0.1:$HTTP
trust-loopback = $trust
[limits]
key-rate = $rate
key-burst = $burst
ip-rate = $rate
ip-burst = $burst
uid-rate = $rate
sender-domain-rate = $rate
sender-domain-burst = $burst
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
}

metric() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

# run MODE: one missived, N submissions; prints "MSGS_PER_S POLICY_US".
run() {
    dir=$(mktemp -d "$WORK/run.XXXXXX")
    SMTP=$(port)
    HTTP=$(port)
    conf "$dir" "$1"
    key=""
    if [ "$1" = on ]; then
        key=$("$B/cli/missive" key --config "$dir/m.conf" add bench 2>/dev/null)
    fi
    "$B/daemon/missived" --config "$dir/m.conf" > "$dir/d.log" 2>&1 &
    D=$!
    i=0
    until curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/d.log" >&2; exit 1; }; sleep 0.1
    done
    out=$(HTTP_SUBMIT_KEY=$key "$WORK/http_submit" 127.0.0.1:"$HTTP" "$N" "$CONNS" \
          "$WORK/msg.eml" bench@example.com sink@example.net)
    echo "   $1: $out" >&2
    if [ -n "$key" ]; then
        curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$HTTP/metrics" > "$dir/metrics"
    else
        curl -sf "http://127.0.0.1:$HTTP/metrics" > "$dir/metrics"
    fi
    kill "$D"; wait "$D" 2>/dev/null || true; D=""
    ns=$(metric missive_gateway_policy_seconds_total "$dir/metrics")
    n=$(metric missive_gateway_admissions_total "$dir/metrics")
    echo "$out" | awk -v ns="$ns" -v n="$n" '{
        split($1, a, "="); split($2, f, "="); split($3, s, "=");
        if (f[2] > 0) print "FAILED"; else printf "%.0f %.2f\n", a[2] / s[2], (n > 0 ? ns * 1e6 / n : 0) }'
    rm -rf "$dir"
}

best_on=0 best_off=0 us_on="" us_off=""
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    echo "== round $r: $N messages of $SIZE bytes, $CONNS connections" >&2
    set -- $(run off); [ "$1" = FAILED ] && { echo "submissions failed (off)"; exit 1; }
    [ "$1" -gt "$best_off" ] && best_off=$1; us_off=$2
    set -- $(run on); [ "$1" = FAILED ] && { echo "submissions failed (on)"; exit 1; }
    [ "$1" -gt "$best_on" ] && best_on=$1; us_on=$2
done
echo "gateway off (trust-loopback, limits off): $best_off messages/s, policy ${us_off} us/request"
echo "gateway on  (API key, every limit on):     $best_on messages/s, policy ${us_on} us/request"
echo "ratio on/off: $(echo "scale=3; $best_on / $best_off" | bc) (issue 14 asks >= 0.9)"
