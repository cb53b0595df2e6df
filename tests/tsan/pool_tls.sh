#!/bin/sh
# ThreadSanitizer over the pool's TLS path: 4 threads sharing one TLS
# context (session cache, CA store) against our STARTTLS test server.
#   tests/tsan/pool_tls.sh MISSIVE_BIN      (a -DMSV_TSAN=ON build)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1
WORK=$(mktemp -d)
SRV=""
trap '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
"$HERE/../peers/certs.sh" "$WORK/certs" >/dev/null
/usr/bin/python3 "$HERE/../peers/faultsmtp.py" --port 0 --scenario starttls \
    --cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" \
    --log "$WORK/server.log" --ready-file "$WORK/ready" >/dev/null 2>&1 &
SRV=$!
i=0
while [ ! -s "$WORK/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(cat "$WORK/ready")
TSAN_OPTIONS="halt_on_error=1 suppressions=$HERE/tsan.supp" "$BIN" bench smtp \
    --server "localhost:$PORT" --ca-file "$WORK/certs/ca.pem" --messages 200 --connections 4 \
    --max-per-connection 10 --json > "$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
if grep -q ThreadSanitizer "$WORK/out"; then cat "$WORK/out"; exit 1; fi
grep -q '"failed":0' "$WORK/out" || { cat "$WORK/out"; exit 1; }
grep -q '"tls_resumed":[1-9]' "$WORK/out" || { echo "no TLS session resumed"; cat "$WORK/out"; exit 1; }
echo "tsan pool over TLS: ok"
