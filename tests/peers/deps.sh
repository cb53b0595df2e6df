#!/bin/sh
# Install the Debian packages the real-peer integration tests need, if missing.
# Idempotent and fast when everything is present (one dpkg-query, no network).
# Postfix is preseeded to "No configuration": no system mail daemon is set up;
# the tests run their own private instance (tests/peers/postfix.sh).
set -eu

PKGS="postfix sasl2-bin libsasl2-modules python3-aiosmtpd openssl"

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
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
