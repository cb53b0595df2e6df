#!/bin/sh
# Rules a script checks, not a reviewer (docs/internals/architecture.md):
#  1. allocation only through msv_malloc/msv_free, and none of the
#     unbounded or silently failing libc string and number functions;
#  2. the layering: a layer never includes a higher one's headers.  The
#     library (src/core, mime, dkim, smtp, pool, dsn, queue, policy,
#     audit) includes no app, daemon or cli header; src/app none of cli or
#     daemon; src/daemon none of cli.
# Usage: checksrc.sh [SRCDIR]   (default: the repository's src)
#        checksrc.sh --selftest (the layering check refuses a planted include)
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# The layer a file under SRC belongs to: its first directory.
layer_of() { printf '%s\n' "${1#"$2"/}" | cut -d/ -f1; }

# The layers a file of layer $1 must not include.
forbidden_for() {
    case "$1" in
    app) echo "cli daemon" ;;
    daemon) echo "cli" ;;
    cli) echo "" ;;
    *) echo "app cli daemon" ;;
    esac
}

# Checks every #include "..." under SRC: a header that is not in the
# including file's own directory and exists only in a forbidden layer
# (searched as SRC/<layer>/NAME and SRC/NAME) is a violation.
check_layering() {
    src=$1
    lbad=0
    for f in $(find "$src" -name '*.c' -o -name '*.h' | sort); do
        layer=$(layer_of "$f" "$src")
        forbidden=$(forbidden_for "$layer")
        [ -n "$forbidden" ] || continue
        dir=$(dirname "$f")
        for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
            [ -e "$dir/$inc" ] && continue
            for hl in $forbidden; do
                if [ -e "$src/$hl/$inc" ] || [ -e "$src/$inc" -a "${inc%%/*}" = "$hl" ]; then
                    echo "$f: includes \"$inc\" of src/$hl: $layer must not depend on $hl" >&2
                    lbad=1
                fi
            done
        done
    done
    return $lbad
}

if [ "${1:-}" = "--selftest" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/core" "$tmp/app" "$tmp/cli" "$tmp/daemon"
    echo '#include "cli.h"' > "$tmp/app/ok.c"
    : > "$tmp/cli/cli.h"
    : > "$tmp/app/config.h"
    : > "$tmp/daemon/daemon.h"
    echo '#include "config.h"' > "$tmp/cli/uses_app.c"
    echo '#include "daemon.h"' > "$tmp/daemon/own.c"
    if check_layering "$tmp" 2>/dev/null; then
        echo "checksrc selftest: app including cli.h was not refused" >&2
        exit 1
    fi
    rm "$tmp/app/ok.c"
    echo '#include "config.h"' > "$tmp/core/lib.c"
    if check_layering "$tmp" 2>/dev/null; then
        echo "checksrc selftest: core including app's config.h was not refused" >&2
        exit 1
    fi
    rm "$tmp/core/lib.c"
    if ! check_layering "$tmp"; then
        echo "checksrc selftest: a correct tree was refused" >&2
        exit 1
    fi
    echo "checksrc selftest: ok"
    exit 0
fi

cd "$here/.."
srcdir=${1:-src}
bad=0
if ! check_layering "$srcdir"; then
    echo "checksrc: a layer includes a higher one (docs/internals/architecture.md)" >&2
    bad=1
fi
banned='\b(malloc|calloc|realloc|free|strcpy|strncpy|strcat|sprintf|vsprintf|strtok|atoi|atol|sscanf|gets)[[:space:]]*\('
for f in $(find "$srcdir" -name '*.c' -o -name '*.h' | sort); do
    case "$f" in */core/alloc.c) continue ;; esac
    # cJSON hands out memory its own way (cJSON_free), which is fine.
    hits=$(grep -nE "$banned" "$f" | grep -vE '^\s*[0-9]+:\s*(\*|/\*)' || true)
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s|^|$f:|"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "checksrc: failed (see scripts/checksrc.sh)" >&2
    exit 1
fi
echo "checksrc: ok"
