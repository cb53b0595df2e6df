#!/bin/sh
# PostgreSQL queue against SQLite on this machine (issue 16):
#   * durable submissions/s, THREADS threads submitting one 2 KB message
#     (2 recipients) per call on one handle (group commit on both);
#   * the claim rate with PROCS processes contending on one queue (each its
#     own handle, as nodes are), claiming 16 and recording them, over N
#     pre-filled messages; any recipient recorded twice is reported.
# PostgreSQL is a private server from tests/peers/pg.sh with its durability
# settings as in production (fsync=on, synchronous_commit=on); the settings
# used are printed.  SQLite: WAL, synchronous=FULL.  A benchmark, not a
# test: it never fails on a number.
#   bench/queue_pg.sh [SECONDS] [THREADS] [N] [PROCS]   (defaults 5, 8, 2000, 3)
# Environment: BUILD (build tree, default build-bench, Release),
# QUEUE_DIR (where the SQLite file and the cluster go; default /tmp).
set -eu
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
SECS=${1:-5}
THREADS=${2:-8}
N=${3:-2000}
PROCS=${4:-3}
BUILD=${BUILD:-build-bench}

if [ -z "${MSV_TEST_PG_URL:-}" ]; then
    # Re-run under a private PostgreSQL, durable as in production.
    MSV_PG_OPTS="-c fsync=on -c synchronous_commit=on ${MSV_PG_OPTS:-}" \
        MSV_PG_TMP=${QUEUE_DIR:-/tmp} exec tests/peers/pg.sh "$SELF" "$@"
fi

WORK=$(mktemp -d "${QUEUE_DIR:-${TMPDIR:-/tmp}}/queue-pg-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
{ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF &&
  cmake --build "$BUILD" -j2 --target missive_static; } > "$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; exit 1; }
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -I"$BUILD/include" -Isrc \
    bench/queue_pg_bench.c "$BUILD/libmissive.a" \
    $(pkg-config --libs sqlite3 libpq openssl libidn2 libcurl libcjson) -lpthread -lm \
    -o "$WORK/queue_pg_bench"

PSQL=${MSV_TEST_PSQL:-psql}
reset_pg() { "$PSQL" -qX "$MSV_TEST_PG_URL" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' >/dev/null 2>&1; }
show() { "$PSQL" -qXAt "$MSV_TEST_PG_URL" -c "SHOW $1"; }
B="$WORK/queue_pg_bench"

echo "PostgreSQL $(show server_version): synchronous_commit=$(show synchronous_commit)" \
     "fsync=$(show fsync) shared_buffers=$(show shared_buffers) wal_sync_method=$(show wal_sync_method)" \
     "commit_delay=$(show commit_delay); $(nproc) CPUs, files on $(df -T "$WORK" | awk 'NR == 2 {print $2}')"
reset_pg
PG_S=$("$B" submit "$MSV_TEST_PG_URL" "$SECS" "$THREADS")
SQ_S=$("$B" submit "$WORK/submit.db" "$SECS" "$THREADS")
reset_pg
PG_C=$("$B" claim "$MSV_TEST_PG_URL" "$N" "$PROCS")
SQ_C=$("$B" claim "$WORK/claim.db" "$N" "$PROCS")

f() { echo "$1" | awk -v i="$2" '{print $i}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
printf '  durable submissions/s, %d threads:  PostgreSQL %8s  SQLite %8s  (pg/sqlite %s; %s and %s transactions)\n' \
    "$THREADS" "$(f "$PG_S" 2)" "$(f "$SQ_S" 2)" "$(ratio "$(f "$PG_S" 2)" "$(f "$SQ_S" 2)")" \
    "$(f "$PG_S" 3)" "$(f "$SQ_S" 3)"
printf '  recipients claimed+recorded/s, %d processes contending:  PostgreSQL %8s  SQLite %8s  (duplicates: %s, %s)\n' \
    "$PROCS" "$(f "$PG_C" 2)" "$(f "$SQ_C" 2)" "$(f "$PG_C" 4)" "$(f "$SQ_C" 4)"
exit 0
