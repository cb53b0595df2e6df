#!/bin/sh
# Queue submission rate (msv_queue_submit, SQLite WAL, synchronous=FULL):
# messages/s for one thread submitting one message per call, THREADS
# threads doing the same on one handle (group commit), and one thread
# submitting BATCH messages per call; raw SQLite with one INSERT + COMMIT
# per message (same pragmas, no missive) is the reference floor.  Each
# shape writes a fresh file.  Prints messages/s, transactions, and the
# ratios.  A benchmark, not a test: it never fails on a number.
#   bench/queue.sh [SECONDS] [THREADS] [BATCH]    (defaults 3, 8, 100)
# Environment: BUILD (build tree, default build), QUEUE_DIR (where the
# database files go, default a temporary directory: put it on the disk
# you care about, since fsync cost is the whole story).
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-3}
THREADS=${2:-8}
BATCH=${3:-100}
BUILD=${BUILD:-build}
scripts/deps.sh build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF &&
  cmake --build "$BUILD" -j"$(nproc)" --target missive_static; } > "$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; exit 1; }
DIR=${QUEUE_DIR:-$WORK}
if [ -n "${QUEUE_DIR:-}" ]; then
    DIR=$(mktemp -d "$QUEUE_DIR/queue-bench.XXXXXX")
    trap 'rm -rf "$WORK" "$DIR"' EXIT INT TERM
fi
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Isrc bench/queue_bench.c \
    "$BUILD/libmissive.a" $(pkg-config --libs sqlite3 libpq openssl libidn2 libcurl libcjson) -lpthread -lm \
    -o "$WORK/queue_bench"

FS=$(df -T "$DIR" 2>/dev/null | awk 'NR == 2 {print $2}')
echo "queue submissions, 2 KB messages with 2 recipients, ${SECS} s each, $(nproc) CPUs, files on ${FS:-?} ($DIR)"
"$WORK/queue_bench" "$DIR" "$SECS" "$THREADS" "$BATCH" > "$WORK/out"

rate() { awk -v k="$1" '$1 == k {print $2}' "$WORK/out"; }
txn() { awk -v k="$1" '$1 == k {print $3}' "$WORK/out"; }
msgs() { awk -v k="$1" '$1 == k {print $4}' "$WORK/out"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.1fx", a / b; else printf "n/a" }'; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.1f", a / b; else printf "n/a" }'; }

RAW=$(rate raw) S=$(rate single) T=$(rate threads) B=$(rate batch)
printf '  %-44s %10s msg/s\n' "raw SQLite, 1 INSERT + COMMIT per message" "$RAW"
printf '  %-44s %10s msg/s   single/raw     = %s\n' "missive, 1 thread, 1 message per call" "$S" "$(ratio "$S" "$RAW")"
printf '  %-44s %10s msg/s   threads/single = %s   (%s messages per transaction)\n' \
    "missive, $THREADS threads, 1 message per call" "$T" "$(ratio "$T" "$S")" "$(per "$(msgs threads)" "$(txn threads)")"
printf '  %-44s %10s msg/s   batch/single   = %s\n' "missive, 1 thread, $BATCH messages per call" "$B" "$(ratio "$B" "$S")"
exit 0
