#!/bin/sh
# The library's symbol table is its public API and nothing else
# (issue 13; libESMTP's libesmtp.map, libuv's UV_EXTERN):
#   - every symbol libmissive.so exports starts with msv_ and is declared
#     in include/missive/*.h: anything else is an internal that leaked,
#     and a program could come to depend on it;
#   - every global symbol of libmissive.a (which cannot hide anything) is
#     either public as above or an internal named msv__*, one prefix, so
#     a program linking the static library cannot collide with it.
#   check_symbols.sh LIBMISSIVE_SO LIBMISSIVE_A INCLUDE_DIR...
set -eu
SO=$1 AR=$2
shift 2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Names declared as functions or objects in the public headers.
cat "$@" | grep -v '^#' | grep -oE '\bmsv_[a-z0-9_]+\b' | sort -u >"$TMP/declared"

# nm prints "ADDR TYPE NAME" for defined symbols; versioned names carry @.
# Names in the implementation's namespace are the toolchain's, not ours:
# the linker's (_init, _end, __bss_start) and the sanitizers' and
# coverage instrumentation's (__start___sancov_pcs, __asan_*).
toolchain='^(__|_init$|_fini$|_edata$|_end$)'
nm -D --defined-only "$SO" | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }' |
    grep -Ev "$toolchain" | sort -u >"$TMP/exported"
nm -g --defined-only "$AR" 2>/dev/null | awk 'NF == 3 { print $3 }' |
    grep -Ev "$toolchain" | sort -u >"$TMP/global"

fail=0
bad=$(grep -v '^msv_' "$TMP/exported" || true)
if [ -n "$bad" ]; then
    echo "libmissive.so exports symbols without the msv_ prefix:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
bad=$(grep '^msv__' "$TMP/exported" || true)
if [ -n "$bad" ]; then
    echo "libmissive.so exports internal msv__ symbols (missing hidden visibility?):" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
bad=$(grep '^msv_' "$TMP/exported" | grep -v '^msv__' | comm -23 - "$TMP/declared")
if [ -n "$bad" ]; then
    echo "libmissive.so exports symbols not declared in include/missive/:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
bad=$(grep -v '^msv__' "$TMP/global" | grep -v '^msv_' || true)
if [ -n "$bad" ]; then
    echo "libmissive.a has global symbols outside the msv_ / msv__ prefixes:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
bad=$(grep '^msv_' "$TMP/global" | grep -v '^msv__' | comm -23 - "$TMP/declared")
if [ -n "$bad" ]; then
    echo "libmissive.a has msv_ symbols not declared in include/missive/ (internal ones are msv__):" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
# Public names carry their module's prefix (msv_smtp_reply_parse, not
# msv_reply_parse): these once did not, and must not come back.
bad=$(grep -Ex 'msv_(auth_mech_name|auth_mech_parse|reply_parse|body_scan)' "$TMP/exported" || true)
if [ -n "$bad" ]; then
    echo "libmissive.so exports names without their module prefix (msv_smtp_...):" >&2
    echo "$bad" | sed 's/^/  /' >&2
    fail=1
fi
[ "$(wc -l <"$TMP/exported")" -gt 50 ] || { echo "libmissive.so exports almost nothing: $SO" >&2; fail=1; }
[ $fail -eq 0 ] && echo "symbols: ok ($(wc -l <"$TMP/exported") exported, $(grep -c '^msv__' "$TMP/global") internal)"
exit $fail
