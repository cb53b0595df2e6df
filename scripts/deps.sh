#!/bin/sh
# Installs the Debian packages missive needs to build and test, if missing.
# Idempotent: one dpkg-query when everything is present, no network.
#   scripts/deps.sh          build + test packages (also the test peers)
#   scripts/deps.sh build    only what the build needs
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)

PKGS="cmake make pkg-config gcc clang libclang-rt-14-dev libssl-dev libcjson-dev libcmocka-dev python3 openssl"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "deps.sh: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
[ "${1:-}" = build ] || "$HERE/../tests/peers/deps.sh"
