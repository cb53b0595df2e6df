#!/bin/sh
# DKIM signing rate on 2 KB messages, rsa-sha256 (2048-bit key) and
# ed25519-sha256: missive's library against `openssl speed` (the raw
# private-key operation, the ceiling), OpenDKIM's library in-process
# (libopendkim, what the opendkim milter uses) and dkimpy, all in one run.
# Prints signatures/s for each and missive's ratio to each.  A benchmark,
# not a test: it never fails on a number.
#   bench/dkim.sh [SECONDS]      (default 3 per measurement)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-3}
scripts/deps.sh build
scripts/deps.sh peers || true   # python3-dkim (dkimpy) and libopendkim
if ! dpkg-query -W -f='${db:Status-Status}' libopendkim-dev 2>/dev/null | grep -q '^installed$'; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopendkim-dev >/dev/null
    else
        echo "dkim.sh: libopendkim-dev missing (run as root to install it); OpenDKIM column skipped" >&2
    fi
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" --target missive_static >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
CFLAGS="-O2 -std=c11 -D_POSIX_C_SOURCE=200809L"
# shellcheck disable=SC2046
cc $CFLAGS -Iinclude bench/dkim_bench.c build/libmissive.a $(pkg-config --libs openssl libidn2) \
    -o "$WORK/dkim_bench"
HAVE_OPENDKIM=0
if [ -f /usr/include/opendkim/dkim.h ]; then
    cc -O2 -std=gnu11 bench/opendkim_bench.c -lopendkim -o "$WORK/opendkim_bench" && HAVE_OPENDKIM=1
fi

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$WORK/ed25519.pem" 2>/dev/null
/usr/bin/python3 - "$WORK/msg.eml" <<'PY'
import sys
head = ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n"
        "Subject: benchmark message\r\nDate: Sat, 28 Nov 2026 06:00:00 +0000\r\n"
        "Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n")
line = "The quick brown fox jumps over the lazy dog, again and again.  \r\n"
body = (line * 40)[: 2048 - len(head) - 2] + "\r\n"   # 2048 bytes, ending in CRLF
open(sys.argv[1], "w", newline="").write(head + body)
PY

echo "DKIM signatures/s on a $(wc -c < "$WORK/msg.eml")-byte message, relaxed/relaxed, ${SECS} s each, $(nproc) CPUs"

# openssl speed: raw sign operations (RSA-2048 PKCS#1, Ed25519), one core,
# measured before and after the others; the better run counts (a busy
# machine only ever slows a run down).
speed() {
    openssl speed -seconds "$SECS" rsa2048 ed25519 2>/dev/null > "$WORK/speed$1.txt" || true
}
speed 1

dkimpy_rate() {
    /usr/bin/python3 - "$1" "$2" "$WORK/msg.eml" "$SECS" <<'PY'
import base64, sys, time
import dkim
from cryptography.hazmat.primitives import serialization
algo, keyfile, msgfile, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
msg = open(msgfile, "rb").read()
pem = open(keyfile, "rb").read()
if algo == "ed25519":
    k = serialization.load_pem_private_key(pem, None)
    key = base64.b64encode(k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption()))
    sa = b"ed25519-sha256"
else:
    key, sa = pem, b"rsa-sha256"
n, start = 0, time.monotonic()
while time.monotonic() - start < secs:
    dkim.sign(msg, b"bench", b"example.org", key, canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=sa)
    n += 1
print("%.1f" % (n / (time.monotonic() - start)))
PY
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else printf "n/a" }'; }

for algo in rsa ed25519; do
    key="$WORK/$algo.pem"
    set -- $("$WORK/dkim_bench" "$key" "$WORK/msg.eml" "$((SECS * 2))")
    eval "MSV_$algo=\$1 RAW_$algo=\$2"
done
speed 2
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }
SSL_RSA=$(best "$(awk '/^rsa 2048 bits/ {print $6}' "$WORK/speed1.txt")" "$(awk '/^rsa 2048 bits/ {print $6}' "$WORK/speed2.txt")")
SSL_ED=$(best "$(awk '/Ed25519/ {print $(NF-1)}' "$WORK/speed1.txt")" "$(awk '/Ed25519/ {print $(NF-1)}' "$WORK/speed2.txt")")

for algo in rsa ed25519; do
    key="$WORK/$algo.pem"
    eval "MSV=\$MSV_$algo RAW=\$RAW_$algo"
    if [ "$HAVE_OPENDKIM" = 1 ]; then
        ODK=$("$WORK/opendkim_bench" "$algo" "$key" "$WORK/msg.eml" "$SECS" 2>"$WORK/odk.err" || echo 0)
    else
        ODK=0
    fi
    PY=$(dkimpy_rate "$algo" "$key" 2>"$WORK/py.err" || echo 0)
    if [ "$algo" = rsa ]; then SSL=$SSL_RSA; name="rsa-sha256 (2048)"; else SSL=$SSL_ED; name="ed25519-sha256"; fi
    echo
    echo "$name"
    printf '  %-34s %10s sig/s\n' "missive (libmissive, reused signer)" "$MSV"
    printf '  %-34s %10s sig/s   missive/openssl  = %s\n' "openssl speed (raw sign, best of 2)" "${SSL:-n/a}" "$(ratio "$MSV" "${SSL:-0}")"
    printf '  %-34s %10s sig/s   missive/raw      = %s\n' "same key, raw EVP sign, interleaved" "$RAW" "$(ratio "$MSV" "$RAW")"
    printf '  %-34s %10s sig/s   missive/opendkim = %s\n' "OpenDKIM (libopendkim, in-process)" "$ODK" "$(ratio "$MSV" "$ODK")"
    printf '  %-34s %10s sig/s   missive/dkimpy   = %s\n' "dkimpy (python3-dkim)" "$PY" "$(ratio "$MSV" "$PY")"
    [ -s "$WORK/odk.err" ] && sed 's/^/  opendkim: /' "$WORK/odk.err"
    [ -s "$WORK/py.err" ] && sed 's/^/  dkimpy: /' "$WORK/py.err" | tail -3
done
exit 0
