#!/bin/sh
# The main job, end to end on this machine: build missive, start a private
# Postfix on 127.0.0.1 (STARTTLS required, SASL login, a test CA), send a
# real message through it with `missive send` (TLS verified, AUTH PLAIN),
# and show where the message went: the SMTP result and the Maildir file
# that Postfix delivered it to.  Stops what it started.
#   MSV_DEMO_DIR   where Postfix and its mail live (default /tmp/missive-demo)
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh

DEMO=${MSV_DEMO_DIR:-/tmp/missive-demo}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
MISSIVE=build/src/cli/missive

echo "== starting Postfix on 127.0.0.1 (private instance in $DEMO)"
tests/peers/postfix.sh stop "$DEMO" >/dev/null 2>&1 || true
tests/peers/postfix.sh start "$DEMO" >/dev/null
trap 'tests/peers/postfix.sh stop "$DEMO" >/dev/null 2>&1 || true' EXIT INT TERM
. "$DEMO/ports.env"
. "$DEMO/credentials.env"
printf '%s\n' "$SASL_PASSWORD" > "$DEMO/password"
chmod 600 "$DEMO/password"

MSGID="<demo.$(date +%s).$$@example.test>"
cat > "$DEMO/message.eml" <<MSG
From: Demo Sender <sender@example.test>
To: Demo Reader <reader@example.test>
Subject: Hello from missive
Date: $(LC_ALL=C date -R)
Message-ID: $MSGID
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This message went through missive's SMTP engine:
STARTTLS with a verified certificate, AUTH PLAIN, pipelined envelope.
.A line starting with a dot arrives intact (dot-stuffed when sent with DATA).
Grüße — 8-bit text travels with BODY=8BITMIME.
MSG

echo "== missive send --server 127.0.0.1:$SUBMISSION_PORT --tls starttls --ca-file ... --user $SASL_USER"
"$MISSIVE" send --server "127.0.0.1:$SUBMISSION_PORT" --tls starttls --ca-file "$DEMO/certs/ca.pem" \
    --user "$SASL_USER" --password-file "$DEMO/password" \
    --from sender@example.test --to reader@example.test \
    --message "$DEMO/message.eml" --json --trace 2> "$DEMO/trace.txt" | tee "$DEMO/result.json"
echo "== the SMTP dialogue (credentials redacted):"
sed 's/^/   /' "$DEMO/trace.txt"

echo "== waiting for delivery"
i=0
file=""
while [ $i -lt 100 ]; do
    file=$(grep -l -F "$MSGID" "$DEMO"/mail/example.test/new/* 2>/dev/null | head -n 1 || true)
    [ -n "$file" ] && break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$file" ]; then
    echo "message not delivered; Postfix log:" >&2
    tail -n 20 "$DEMO/maillog" >&2
    exit 1
fi
echo "== delivered to $file"
sed 's/^/   /' "$file"
echo "== Postfix's log line for it:"
grep -F "status=sent" "$DEMO/maillog" | tail -n 1 | sed 's/^/   /'
