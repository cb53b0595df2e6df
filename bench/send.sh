#!/bin/sh
# One message per process, the way cron, scripts and sendmail(1) callers send
# mail: missive send against msmtp, curl and Python's smtplib, all into
# Postfix's smtp-sink on 127.0.0.1, in one run.  Prints messages/s for each
# and missive's ratio to each.  A benchmark, not a test: it never fails on a
# number.
#   bench/send.sh [MESSAGES] [SIZE_BYTES]     (defaults 300, 1024)
set -eu
cd "$(dirname "$0")/.."
N=${1:-300}
SIZE=${2:-1024}
scripts/deps.sh build
for p in msmtp curl postfix; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || {
        export DEBIAN_FRONTEND=noninteractive
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    }
done
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
MISSIVE=$(pwd)/build/src/cli/missive

WORK=$(mktemp -d)
SINK_PID=""
cleanup() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# -c: count, -u postfix: drop root; 64 sessions at most.
/usr/sbin/smtp-sink -u postfix -c 127.0.0.1:"$PORT" 64 >/dev/null 2>&1 &
SINK_PID=$!
sleep 0.5

/usr/bin/python3 - "$WORK/msg.eml" "$SIZE" <<'PY'
import sys
size = int(sys.argv[2])
head = "From: a@example.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n"
line = "x" * 76 + "\r\n"
body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
open(sys.argv[1], "w", newline="").write(head + body)
PY
cat > "$WORK/msmtprc" <<RC
account bench
host 127.0.0.1
port $PORT
tls off
auth off
from a@example.test
domain localhost
account default : bench
RC
chmod 600 "$WORK/msmtprc"
cat > "$WORK/smtplib_send.py" <<'PY'
import smtplib, sys
port, path = int(sys.argv[1]), sys.argv[2]
# local_hostname: no DNS lookup of our own name, as missive sends "localhost".
with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as s:
    s.sendmail("a@example.test", ["b@example.test"], open(path, "rb").read())
PY

run() { # name, command...
    name=$1; shift
    t0=$(date +%s.%N)
    i=0
    while [ $i -lt "$N" ]; do "$@" >/dev/null 2>&1 || { echo "$name failed" >&2; return 1; }; i=$((i + 1)); done
    t1=$(date +%s.%N)
    rate=$(echo "$N / ($t1 - $t0)" | bc -l)
    printf '%-16s %8.1f msg/s\n' "$name" "$rate"
    eval "RATE_$(echo "$name" | tr -c 'a-z0-9\n' '_')=$rate"
}

command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null
echo "$N messages of $SIZE bytes, one process per message, into smtp-sink on 127.0.0.1:$PORT"
run missive "$MISSIVE" send --server 127.0.0.1:"$PORT" --tls none --from a@example.test --to b@example.test --message "$WORK/msg.eml"
run msmtp sh -c "msmtp -C '$WORK/msmtprc' b@example.test < '$WORK/msg.eml'"
run curl curl -s --url "smtp://127.0.0.1:$PORT" --mail-from a@example.test --mail-rcpt b@example.test --upload-file "$WORK/msg.eml"
run smtplib /usr/bin/python3 "$WORK/smtplib_send.py" "$PORT" "$WORK/msg.eml"
echo "missive / peer:"
for p in msmtp curl smtplib; do
    eval "r=\$RATE_$p"
    printf '  vs %-10s %5.2fx\n' "$p" "$(echo "$RATE_missive / $r" | bc -l)"
done
