#!/bin/sh
# The audit trail's cost (issue 15): HTTP submission throughput with the
# trail on (the file, and export to Kafka: librdkafka's mock cluster on
# 127.0.0.1, tests/tools/kafka_mock.c) against the same run with
# [audit] path = off; then how many events/s the exporter sustains to Kafka
# (the time from the last submission until missive_audit_export_lag_events
# reaches 0, over the events written).  N messages of SIZE bytes through
# POST /v1/messages over CONNS keep-alive connections
# (bench/peers/http_submit.c), ROUNDS rounds alternating the two, best of
# each.  The route's server refuses connections (messages wait an hour), so
# delivery costs next to nothing.  The masker's own speed: bench/mask.sh.
# missived's CPU time per message (from /proc) is printed for each run: on
# a machine shared with other work it says more than messages/s.  Never
# fails on a number.
#   bench/audit.sh          N=20000 SIZE=2048 CONNS=8 ROUNDS=2 BUILD=build-bench
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
D="" K=""
trap '[ -n "$D" ] && kill "$D" 2>/dev/null; [ -n "$K" ] && kill "$K" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cc -O2 -pthread -o "$WORK/http_submit" bench/peers/http_submit.c
cc -O2 -o "$WORK/kafka_mock" tests/tools/kafka_mock.c $(pkg-config --cflags --libs rdkafka)
/usr/bin/python3 - "$SIZE" > "$WORK/msg.eml" <<'PY'
import sys
size = int(sys.argv[1])
head = "From: bench@example.com\nTo: sink@example.net\nSubject: audit\n\n"
line = "x" * 70 + "\n"
print(head + line * max(1, (size - len(head)) // len(line)), end="")
PY

# The mock cluster: its bootstrap address is its first line of output.
mkfifo "$WORK/kin"
"$WORK/kafka_mock" 3 < "$WORK/kin" > "$WORK/kafka.out" 2>"$WORK/kafka.err" &
K=$!
exec 9> "$WORK/kin"
i=0
until [ -s "$WORK/kafka.out" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$WORK/kafka.err" >&2; exit 1; }; sleep 0.1
done
BOOT=$(head -n 1 "$WORK/kafka.out")

# conf DIR MODE: MODE "on" (file + Kafka), "file" (the file alone) or "off".
conf() {
    case $2 in
    on) audit="kafka-brokers = $BOOT
kafka-topic = bench-$(basename "$1")" ;;
    file) audit="" ;;
    *) audit="path = off" ;;
    esac
    cat > "$1/m.conf" <<CONF
[queue]
path = $1/q.db
[http]
listen = 127.0.0.1:$HTTP
trust-loopback = yes
[limits]
ip-rate = off
uid-rate = off
[retry]
base = 1h
cap = 1h
[daemon]
workers = 4
batch = 256
[audit]
$audit
[route default]
server = 127.0.0.1:$SMTP
tls = none
CONF
}

metric() { awk -v k="$1" 'index($0, k) == 1 {print $2}' "$2"; }
now() { date +%s.%N; }

# run MODE: one missived, N submissions; prints "MSGS_PER_S EVENTS EXPORT_EVENTS_PER_S".
run() {
    dir=$(mktemp -d "$WORK/run.XXXXXX")
    SMTP=$(port)
    HTTP=$(port)
    conf "$dir" "$1"
    "$B/daemon/missived" --config "$dir/m.conf" > "$dir/d.log" 2>&1 &
    D=$!
    i=0
    until curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/d.log" >&2; exit 1; }; sleep 0.1
    done
    out=$("$WORK/http_submit" 127.0.0.1:"$HTTP" "$N" "$CONNS" "$WORK/msg.eml" \
          bench@example.com sink@example.net)
    t0=$(now)
    echo "   $1: $out" >&2
    exported=0
    if [ "$1" = on ]; then
        # Until the Kafka export has caught up (at most 120 s).
        i=0
        while :; do
            curl -sf "http://127.0.0.1:$HTTP/metrics" > "$dir/metrics" || true
            lag=$(metric 'missive_audit_export_lag_events{sink="kafka"}' "$dir/metrics")
            [ "${lag:-1}" = 0 ] && break
            i=$((i + 1)); [ $i -lt 1200 ] || break; sleep 0.1
        done
        t1=$(now)
        events=$(wc -l < "$dir/audit.jsonl")
        # Export ran during the submissions too: rate over the whole span.
        span=$(echo "$out" | awk -v t0="$t0" -v t1="$t1" '{split($3, s, "="); print s[2] + (t1 - t0)}')
        exported=$(echo "$events $span" | awk '{printf "%.0f", $1 / $2}')
    fi
    # missived's own CPU time (user + system, clock ticks): per message it
    # says what the trail costs even when other work shares the machine.
    ticks=$(awk '{print $14 + $15}' "/proc/$D/stat")
    kill "$D"; wait "$D" 2>/dev/null || true; D=""
    echo "$out" | awk -v e="$exported" -v t="$ticks" -v hz="$(getconf CLK_TCK)" '{
        split($1, a, "="); split($2, f, "="); split($3, s, "=");
        if (f[2] > 0) print "FAILED"; else printf "%.0f %s %.1f\n", a[2] / s[2], e, t / hz * 1e6 / a[2] }'
    rm -rf "$dir"
}

best_on=0 best_off=0 best_file=0 exp_best=0 us_off="" us_file="" us_on=""
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    echo "== round $r: $N messages of $SIZE bytes, $CONNS connections" >&2
    set -- $(run off); [ "$1" = FAILED ] && { echo "submissions failed (off)"; exit 1; }
    [ "$1" -gt "$best_off" ] && best_off=$1
    us_off="$us_off $3"
    set -- $(run file); [ "$1" = FAILED ] && { echo "submissions failed (file)"; exit 1; }
    [ "$1" -gt "$best_file" ] && best_file=$1
    us_file="$us_file $3"
    set -- $(run on); [ "$1" = FAILED ] && { echo "submissions failed (on)"; exit 1; }
    [ "$1" -gt "$best_on" ] && best_on=$1
    [ "$2" -gt "$exp_best" ] && exp_best=$2
    us_on="$us_on $3"
done
echo "audit off:                      $best_off messages/s; missived CPU us/message:$us_off"
echo "audit on (the file alone):      $best_file messages/s; missived CPU us/message:$us_file"
echo "audit on (file + Kafka export): $best_on messages/s; missived CPU us/message:$us_on"
echo "ratio file/off: $(echo "scale=3; $best_file / $best_off" | bc)"
echo "ratio on/off: $(echo "scale=3; $best_on / $best_off" | bc) (issue 15 asks >= 0.9)"
echo "Kafka export (mock cluster, 3 brokers): $exp_best events/s sustained"
