#!/bin/sh
# Scale-out (issue 16): 1 missived node against 3 on one queue, delivering
# N messages (10,000) to tests/peers/sinksmtp.py, which waits DELAY (20 ms)
# before answering each message's final dot, so that the SMTP latency and
# not this machine's CPU bounds a node.  The queue is filled first
# (bench/scaleout_fill.c, straight into the queue), then the nodes are
# started and timed from the first message the sink receives to the N-th.  Prints each
# run's messages/s and the ratio (the issue asks for >= 2.5).
# A benchmark: it never fails on a number.
#
#   bench/scaleout.sh
# Environment:
#   N=10000 SIZE=2048 DELAY=0.02   messages, their size, the sink's delay (s)
#   WORKERS=4 BATCH=64             each node's [daemon] workers and batch
#   BUILD=DIR                      an existing build tree (default: build
#                                  build-bench, Release)
#   QUEUE_URL=postgresql://...     a PostgreSQL queue instead of one SQLite
#                                  file (emptied before each run with psql)
#   KEEP=1                         keep the work directory
set -eu
cd "$(dirname "$0")/.."
N=${N:-10000}
SIZE=${SIZE:-2048}
DELAY=${DELAY:-0.02}
WORKERS=${WORKERS:-4}
BATCH=${BATCH:-64}
QUEUE_URL=${QUEUE_URL:-}
KEEP=${KEEP:-}
if [ -z "${BUILD:-}" ]; then
    BUILD=build-bench
    { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF &&
      cmake --build "$BUILD" -j"$(nproc)" --target missive_static missived; } >/dev/null
fi
WORK=$(mktemp -d /tmp/scaleout-bench.XXXXXX)
PIDS=""
cleanup() {
    set +e
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    if [ -n "$KEEP" ]; then echo "scaleout.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A sanitizer build's library needs the sanitizers' runtime at link time.
san=""
grep -q '^MSV_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && san="$san -fsanitize=address"
grep -q '^MSV_UBSAN:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && san="$san -fsanitize=undefined"
libs="sqlite3 openssl libidn2 libcurl libcjson"
pkg-config --exists libpq && libs="$libs libpq"
CC=${CC:-cc}
# shellcheck disable=SC2046,SC2086
$CC -O2 $san -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -I"$BUILD/include" \
    bench/scaleout_fill.c "$BUILD/libmissive.a" $(pkg-config --libs $libs) -lpthread -lm \
    -o "$WORK/fill"

records() { [ -f "$1" ] && wc -l < "$1" || echo 0; }

# run NODES: prints messages/s for NODES nodes delivering N messages.
run() {
    nodes=$1 dir=$WORK/run$1
    mkdir -p "$dir"
    if [ -n "$QUEUE_URL" ]; then
        PGOPTIONS='-c client_min_messages=warning' psql -q "$QUEUE_URL" -c "DO \$\$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_version' LOOP EXECUTE 'TRUNCATE ' || quote_ident(t) || ' CASCADE'; END LOOP; END \$\$;" >/dev/null
        queue="url = $QUEUE_URL" qarg=$QUEUE_URL
    else
        queue="path = $dir/queue.db" qarg=$dir/queue.db
    fi
    "$WORK/fill" "$qarg" "$N" "$SIZE"
    python3 tests/peers/sinksmtp.py --port 0 --ready-file "$dir/sink.port" \
        --record "$dir/sink.jsonl" --data-delay "$DELAY" 2>"$dir/sink.err" &
    sink=$!
    PIDS="$PIDS $sink"
    i=0
    while [ ! -s "$dir/sink.port" ]; do sleep 0.05; i=$((i + 1)); [ $i -lt 200 ] || exit 1; done
    port=$(cat "$dir/sink.port")
    pids=""
    for k in $(seq 1 "$nodes"); do
        cat > "$dir/node$k.conf" <<EOF
[queue]
$queue
[http]
listen =
[daemon]
node = bench$k
workers = $WORKERS
batch = $BATCH
poll-interval = 100ms
socket =
log-file = $dir/node$k.log
[route default]
server = 127.0.0.1:$port
tls = none
EOF
        "$BUILD/src/daemon/missived" --config "$dir/node$k.conf" 2>>"$dir/node$k.err" &
        pids="$pids $!"
    done
    PIDS="$PIDS $pids"
    while [ "$(records "$dir/sink.jsonl")" -lt "$N" ]; do
        sleep 0.1
        for p in $pids; do kill -0 "$p" 2>/dev/null || { cat "$dir"/node*.err >&2; exit 1; }; done
    done
    for p in $pids $sink; do kill "$p"; wait "$p" 2>/dev/null || true; done
    PIDS=""
    # From the first message's final dot to the last one's (the sink's
    # times), plus one reply's delay: the nodes' start-up is not counted.
    python3 -c 'import json, sys
t = [json.loads(l)["t"] for l in open(sys.argv[1])]
print("%.1f" % (len(t) / (max(t) - min(t) + float(sys.argv[2]))))' "$dir/sink.jsonl" "$DELAY"
}

r1=$(run 1)
r3=$(run 3)
echo "scale-out: $N messages of $SIZE bytes, sink delay $DELAY s, workers $WORKERS, batch $BATCH,"
if [ -n "$QUEUE_URL" ]; then echo "queue PostgreSQL"; else echo "queue one SQLite file"; fi
printf "  1 node:  %8s messages/s\n  3 nodes: %8s messages/s\n" "$r1" "$r3"
echo "$r1 $r3" | awk '{ printf "  ratio:   %8.2fx (target >= 2.5x)\n", $2 / $1 }'
