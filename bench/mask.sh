#!/bin/sh
# Masker throughput: msv_mask_stream (addresses to keyed pseudonyms,
# mobile, resident ID and card numbers) over a generated mixed log of
# postfix-like lines (sent and bounced deliveries, API lines with phone
# numbers, IDs, card numbers, plain lines), held in memory, one thread,
# best of three passes; once with the built-in rules only and once with
# two configured rules.  The reference is the same file through
# `grep -E` and `sed -E` with one address regex each (LC_ALL=C): what a
# hand-rolled scrubbing pipeline costs, and the ratio to it.  A benchmark,
# not a test: it never fails on a number.
#   bench/mask.sh [MB]            (default 100)
# Environment: BUILD=dir uses that build tree's libmissive.a as it is
# (not reconfigured); without it the script builds build-bench (Release).
# MASK_LOG=file keeps the generated log there (reused when present).
set -eu
cd "$(dirname "$0")/.."
MB=${1:-100}
if [ -z "${BUILD:-}" ]; then
    BUILD=build-bench
    scripts/deps.sh build
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target missive_static >/dev/null
fi
[ -f "$BUILD/libmissive.a" ] || { echo "mask.sh: no $BUILD/libmissive.a" >&2; exit 66; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
# An ASan/UBSan tree's library needs the sanitizers at link time too.
SAN=
if grep -q '^MSV_ASAN:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then SAN="$SAN -fsanitize=address"; fi
if grep -q '^MSV_UBSAN:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then SAN="$SAN -fsanitize=undefined"; fi
# shellcheck disable=SC2046,SC2086
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $SAN -Iinclude -I"$BUILD/include" bench/mask_bench.c \
    "$BUILD/libmissive.a" $(pkg-config --libs openssl libidn2 sqlite3) -lpthread -o "$WORK/mask_bench"

LOG=${MASK_LOG:-$WORK/mixed.log}
[ -s "$LOG" ] || "$WORK/mask_bench" gen "$LOG" "$MB"
BYTES=$(wc -c <"$LOG")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "masking, one thread: $BYTES bytes of mixed log ($(wc -l <"$LOG") lines)"
echo "machine: ${CPU:-unknown CPU}, $(nproc) CPUs (this run uses one)"

set -- $("$WORK/mask_bench" run "$LOG" "$WORK/keys")
builtin=$1
set -- $("$WORK/mask_bench" run "$LOG" "$WORK/keys" 'order ORD-[0-9]{6,} 4 2' 'secret token[:=] ?[A-Za-z0-9]+ 6 0')
rules=$1

# The reference: best of three, wall time of the whole process.
best_time() {
    best=
    for i in 1 2 3; do
        t0=$(date +%s.%N)
        "$@" <"$LOG" >"$WORK/out" # not /dev/null: GNU grep then stops at the first match
        t1=$(date +%s.%N)
        t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
    done
    awk -v s="$best" -v n="$BYTES" 'BEGIN { printf "%.1f", n / s / 1e6 }'
}
RE='[A-Za-z0-9._%+=-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'
export LC_ALL=C
grep=$(best_time grep -cE "$RE")
sed=$(best_time sed -E "s/$RE/u-x@y/g")

printf '  %-44s %8s MB/s\n' "missive msv_mask_stream, built-in rules" "$builtin"
printf '  %-44s %8s MB/s\n' "missive, built-in + 2 configured rules" "$rules"
printf '  %-44s %8s MB/s\n' "grep -cE (address regex only, counts)" "$grep"
printf '  %-44s %8s MB/s\n' "sed -E (address regex only, replaces)" "$sed"
awk -v a="$builtin" -v g="$grep" -v s="$sed" 'BEGIN {
    printf "  ratio missive / grep -E: %.2fx   missive / sed -E: %.2fx\n", a / g, a / s }'
