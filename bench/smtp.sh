#!/bin/sh
# Many messages over reused connections, missive's pool against the peers,
# all into Postfix's smtp-sink on 127.0.0.1 in one run: missive (1 and 8
# connections), smtp-source -d (-s 1 and -s 8), Go net/smtp (1 and 8),
# Python smtplib (1) and libcurl (one reused handle); 1 KB and 100 KB
# messages.  Prints messages/s and missive's ratio to each.  A benchmark:
# it never fails on a number.
#   bench/smtp.sh [MESSAGES_1KB] [MESSAGES_100KB]     (defaults 10000, 1000)
set -eu
cd "$(dirname "$0")/.."
N1=${1:-10000}
N100=${2:-1000}
scripts/deps.sh build
need=""
for p in postfix golang-go libcurl4-openssl-dev bc; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || need="$need $p"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
MISSIVE=$(pwd)/build/src/cli/missive

WORK=$(mktemp -d)
SINK=""
cleanup() { [ -n "$SINK" ] && kill "$SINK" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
cc -O2 -o "$WORK/curl_smtp" bench/peers/curl_smtp.c -lcurl
( cd "$WORK" && cp "$OLDPWD/bench/peers/netsmtp.go" . && HOME=$WORK GOCACHE=$WORK/gocache GO111MODULE=off go build -o netsmtp netsmtp.go )

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/smtp-sink -u postfix -c 127.0.0.1:"$PORT" 256 >/dev/null 2>&1 &
SINK=$!
sleep 0.5

now() { date +%s.%N; }
rate_of() { echo "$1 / ($3 - $2)" | bc -l; }   # messages, t0, t1

bench_size() { # size, messages
    size=$1 n=$2
    echo "== $n messages of $size bytes into smtp-sink on 127.0.0.1:$PORT"
    m1=$("$MISSIVE" bench smtp --server 127.0.0.1:"$PORT" --tls none --messages "$n" --size "$size" --connections 1 --json | sed 's/.*"rate":\([0-9.]*\).*/\1/')
    m8=$("$MISSIVE" bench smtp --server 127.0.0.1:"$PORT" --tls none --messages "$n" --size "$size" --connections 8 --json | sed 's/.*"rate":\([0-9.]*\).*/\1/')
    t0=$(now); smtp-source -d -s 1 -m "$n" -l "$size" -f bench@localhost -t sink@localhost 127.0.0.1:"$PORT"; t1=$(now)
    s1=$(rate_of "$n" "$t0" "$t1")
    t0=$(now); smtp-source -d -s 8 -m "$n" -l "$size" -f bench@localhost -t sink@localhost 127.0.0.1:"$PORT"; t1=$(now)
    s8=$(rate_of "$n" "$t0" "$t1")
    g1=$("$WORK/netsmtp" -server 127.0.0.1:"$PORT" -messages "$n" -size "$size" -connections 1)
    g8=$("$WORK/netsmtp" -server 127.0.0.1:"$PORT" -messages "$n" -size "$size" -connections 8)
    py=$(/usr/bin/python3 bench/peers/smtplib_bench.py 127.0.0.1 "$PORT" "$n" "$size")
    cu=$("$WORK/curl_smtp" smtp://127.0.0.1:"$PORT" "$n" "$size")
    printf '  %-28s %9.0f msg/s\n' "missive, 1 connection" "$m1" "missive, 8 connections" "$m8" \
        "smtp-source -d -s 1" "$s1" "smtp-source -d -s 8" "$s8" "Go net/smtp, 1 connection" "$g1" \
        "Go net/smtp, 8 connections" "$g8" "Python smtplib, 1 connection" "$py" "libcurl, 1 handle" "$cu"
    echo "  missive / peer:"
    printf '    1 conn:  vs smtp-source %.2fx, vs Go %.2fx, vs smtplib %.2fx, vs libcurl %.2fx\n' \
        "$(echo "$m1/$s1" | bc -l)" "$(echo "$m1/$g1" | bc -l)" "$(echo "$m1/$py" | bc -l)" "$(echo "$m1/$cu" | bc -l)"
    printf '    8 conns: vs smtp-source %.2fx, vs Go %.2fx\n' \
        "$(echo "$m8/$s8" | bc -l)" "$(echo "$m8/$g8" | bc -l)"
}
bench_size 1024 "$N1"
bench_size 102400 "$N100"
