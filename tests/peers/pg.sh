#!/bin/sh
# tests/peers/pg.sh COMMAND [ARG...]
#
# Runs COMMAND with a private PostgreSQL 15 server: initdb in a temporary
# directory, as an unprivileged user (postgres refuses to run as root: when
# we are root the cluster belongs to "nobody"), listening on 127.0.0.1 on a
# free port only (its Unix socket in the same directory), one database.
# COMMAND sees MSV_TEST_PG_URL (postgresql://missive@127.0.0.1:PORT/msvtest)
# and MSV_TEST_PSQL; afterwards the server is stopped (pg_ctl stop -m fast,
# by the PID in its postmaster.pid) and the directory removed.  The exit
# status is COMMAND's.
#
# fsync=off: the cluster lives for one test; durability settings are what
# bench/queue_pg.sh measures, not what unit tests check.
set -eu
BIN=${MSV_PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$BIN/initdb" ] || { echo "pg.sh: $BIN/initdb missing (apt-get install postgresql-15)" >&2; exit 1; }

# Under /tmp (MSV_PG_TMP to change it): the server's user must be able to
# reach the directory, which a private $TMPDIR (mode 0700) would prevent.
dir=$(mktemp -d "${MSV_PG_TMP:-/tmp}/msv-pg-XXXXXX")
chmod 755 "$dir"
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
	chown nobody: "$dir"
	as_pg() { setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env "$@"; }
fi
cleanup() {
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_pg "$BIN/pg_ctl" -D "$dir/data" stop -m fast -w >/dev/null 2>&1 || \
			kill "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$BIN/initdb" -D "$dir/data" -U missive --auth=trust --encoding=UTF8 --locale=C -N \
	>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
	"-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200 ${MSV_PG_OPTS:-}" \
	>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
"$BIN/createdb" -h 127.0.0.1 -p "$port" -U missive msvtest

export MSV_TEST_PG_URL="postgresql://missive@127.0.0.1:$port/msvtest"
export MSV_TEST_PSQL="$BIN/psql"
export MSV_TEST_PG_DIR="$dir"
rc=0
"$@" || rc=$?
exit $rc
