#!/bin/sh
# Installs the Debian packages missive needs, if missing.  Idempotent: one
# dpkg-query when everything is present, no network.
#   scripts/deps.sh          build, test and peer packages
#   scripts/deps.sh build    only what the build needs
#   scripts/deps.sh peers    only the test peers (Postfix, SASL, aiosmtpd, dkimpy, OpenDKIM)
#                            and curl (tests/tsan/daemon.sh; Debian 12 has none by default)
# Postfix is preseeded to "No configuration": no system mail daemon is set
# up; the tests run private instances (tests/peers/postfix.sh).
set -eu

BUILD="cmake make pkg-config gcc clang libclang-rt-14-dev libssl-dev librdkafka-dev libcurl4-openssl-dev libidn2-dev libcjson-dev libcmocka-dev libsqlite3-dev libpq-dev libinih-dev libmicrohttpd-dev libhiredis-dev python3 openssl"
PEERS="postfix sasl2-bin libsasl2-modules python3-aiosmtpd python3-dkim opendkim-tools openssl curl kcat rsyslog redis-server postgresql-15"
case "${1:-all}" in
    build) PKGS=$BUILD ;;
    peers) PKGS=$PEERS ;;
    all) PKGS="$BUILD $PEERS" ;;
    *) echo "usage: $0 [build|peers]" >&2; exit 64 ;;
esac

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
