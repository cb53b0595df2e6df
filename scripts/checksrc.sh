#!/bin/sh
# Style rules a script checks, not a reviewer (STYLE.md): allocation only
# through msv_malloc/msv_free, and none of the unbounded or silently failing
# libc string and number functions in library or CLI code.
set -eu
cd "$(dirname "$0")/.."
bad=0
banned='\b(malloc|calloc|realloc|free|strcpy|strncpy|strcat|sprintf|vsprintf|strtok|atoi|atol|sscanf|gets)[[:space:]]*\('
for f in $(find src -name '*.c' -o -name '*.h' | sort); do
    case "$f" in src/core/alloc.c) continue ;; esac
    # cJSON hands out memory its own way (cJSON_free), which is fine.
    hits=$(grep -nE "$banned" "$f" | grep -vE '^\s*[0-9]+:\s*(\*|/\*)' || true)
    if [ -n "$hits" ]; then
        printf '%s\n' "$hits" | sed "s|^|$f:|"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "checksrc: banned functions used (see scripts/checksrc.sh)" >&2
    exit 1
fi
echo "checksrc: ok"
