#!/bin/sh
# cmake --install puts a usable library in place: headers, libmissive,
# missive.pc, the CLI (the light missive, the sendmail front end as
# sbin/sendmail, the fully linked libexec/missive/missive-core they exec)
# and the man pages; a program built with pkg-config against it compiles,
# links and runs.
#   test_install.sh BUILD_DIR SOURCE_DIR CC "EXTRA_FLAGS"
set -eu
BUILD=$1 SRC=$2 CC=$3 FLAGS=${4:-}
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
for f in include/missive/core.h include/missive/smtp.h include/missive/queue.h \
         include/missive/version.h bin/missive libexec/missive/missive-core \
         sbin/missived sbin/sendmail share/man/man1/missive-send.1 share/man/man8/missived.8 \
         lib/systemd/system/missived.service; do
    [ -e "$PREFIX/$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done
PC=$(find "$PREFIX" -name missive.pc | head -n 1)
[ -n "$PC" ] || { echo "missive.pc not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$PC")
# --define-prefix: the .pc names the configured prefix, not this one.
# shellcheck disable=SC2046,SC2086
$CC $FLAGS "$SRC/examples/send.c" $(pkg-config --define-prefix --cflags --libs missive) -o "$PREFIX/send"
LD_LIBRARY_PATH=$(pkg-config --define-prefix --variable=libdir missive) "$PREFIX/send" 2>&1 | grep -q usage
# One version source: the installed header and missive.pc agree, and no
# template is installed beside the headers.
[ ! -e "$PREFIX/include/missive/version.h.in" ] || { echo "version.h.in installed" >&2; exit 1; }
printf '#include <missive/core.h>\n#include <stdio.h>\nint main(void) { puts(MSV_VERSION); return 0; }\n' |
    $CC -x c - $(pkg-config --define-prefix --cflags missive) -o "$PREFIX/version"
hv=$("$PREFIX/version") pv=$(pkg-config --modversion missive)
[ "$hv" = "$pv" ] || { echo "MSV_VERSION $hv but missive.pc says $pv" >&2; exit 1; }
# ... and so do the man pages, filled in from project() at build time.
for m in "$PREFIX"/share/man/man1/*.1 "$PREFIX"/share/man/man8/*.8; do
    head -n 1 "$m" | grep -q "\"missive $pv\"" || { echo "$m: not version $pv" >&2; exit 1; }
done
"$PREFIX/bin/missive" --version | grep -q '^missive '
"$PREFIX/sbin/sendmail" --help | grep -q 'usage: missive sendmail'
"$PREFIX/bin/missive" queue --help | grep -q 'usage: missive queue'
"$PREFIX/bin/missive" sendmail --help | grep -q 'usage: missive sendmail'
# One copy of the library per process: no command module, and the light
# programs link neither OpenSSL nor SQLite.
if find "$PREFIX" -name 'missive-commands*' | grep -q .; then
    echo "a command module was installed" >&2; exit 1
fi
for light in sbin/sendmail bin/missive; do
    if readelf -d "$PREFIX/$light" | grep -Eq 'NEEDED.*lib(ssl|crypto|sqlite3)\.so'; then
        echo "$light links OpenSSL or SQLite" >&2; exit 1
    fi
done
# With no missived, sendmail and `missive sendmail` run missive-core to
# write the queue, found relative to themselves: the prefix here is not the
# configured one.
printf '[queue]\npath = %s/queue.db\n[daemon]\nsocket =\n[route default]\nserver = 127.0.0.1:9\ntls = none\n' \
    "$PREFIX" >"$PREFIX/missive.conf"
printf 'From: a@example.com\nSubject: s\n\nhi\n' |
    "$PREFIX/sbin/sendmail" --config "$PREFIX/missive.conf" -v b@example.com | grep -q '^queued as '
printf 'From: a@example.com\nSubject: s\n\nhi\n' |
    "$PREFIX/bin/missive" sendmail --config "$PREFIX/missive.conf" -v b@example.com | grep -q '^queued as '
"$PREFIX/bin/missive" queue stats --config "$PREFIX/missive.conf" --json | grep -q '"messages":.*2'
"$PREFIX/sbin/missived" --version | grep -q '^missived '
echo "install: ok ($(pkg-config --modversion missive))"
