#!/bin/sh
# End to end relaying, submission to delivered at Postfix's smtp-sink on
# 127.0.0.1, missived against Postfix doing the same job, all in one run:
#   (a) Postfix: messages injected by `smtp-source -d -s 8` into the smtpd of a
#       private Postfix instance whose relayhost is the sink;
#   (b) Postfix's own sendmail (+ postdrop, pickup), 4 in parallel;
#   (c) missived on its SQLite queue, messages POSTed to its HTTP API by 8
#       keep-alive clients (bench/peers/http_submit.c);
#   (d) `missive sendmail`, 4 in parallel, missived delivering.
# Each run starts its own sink with `-M N`: the sink exits when it has received
# the N-th message, and that is the end of the measured interval, which starts
# just before the first submission.  CPU: the Postfix daemons are the master
# and its children (utime+stime from /proc, reaped children included through
# the master's cutime+cstime), missived is its one process; clients
# (smtp-source, sendmail+postdrop, missive sendmail, the HTTP client) are
# counted apart through getrusage(RUSAGE_CHILDREN) of a small spawner.
# Prints a table and missive's ratios.  A benchmark: it never fails on a number.
#
#   bench/relay.sh            (root; Debian 12 with scripts/deps.sh's packages)
# Environment:
#   N=10000 SIZE=2048         messages per run and their size in bytes
#   RUNS="a c b d"            which runs to make, in this order (each pair
#                             back to back, so that both see the same load)
#   WORKERS=1 BATCH=256 POLL=1s CONNS=8
#                             missived's [daemon] workers, batch, poll-interval
#                             and [route default] max-connections (see
#                             bench/README.md for why one worker; the shipped
#                             defaults are workers=4 batch=64 poll-interval=1s)
#   TIMEOUT=1800              seconds a run may take before its sink is stopped
#   KEEP=1                    keep the work directory (logs, queues) for a look
#   MISSIVE_BIN=DIR           use DIR/missive and DIR/missived as they are (no
#                             build): to measure a patched copy (missive-core
#                             beside missive, or symlinks to a build tree)
#   FRONT=1                   (d) through the sendmail front end (DIR/missive-sendmail,
#                             installed as sendmail), not `missive sendmail`
# The figures of each run live in variables named by eval (RATE_a, ...).
# shellcheck disable=SC2034,SC2154
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${N:-10000}
SIZE=${SIZE:-2048}
RUNS=${RUNS:-a c b d}
WORKERS=${WORKERS:-1}
BATCH=${BATCH:-256}
POLL=${POLL:-1s}
CONNS=${CONNS:-8}
TIMEOUT=${TIMEOUT:-1800}
KEEP=${KEEP:-}
[ "$(id -u)" -eq 0 ] || { echo "relay.sh: must run as root (Postfix's master starts as root)" >&2; exit 77; }

scripts/deps.sh
need=""
for p in postfix bc; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q '^installed$' || need="$need $p"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
if [ -n "${MISSIVE_BIN:-}" ]; then
    MISSIVE=$MISSIVE_BIN/missive MISSIVED=$MISSIVE_BIN/missived
else
    BUILD=$ROOT/build-bench
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMSV_TESTS=OFF -DMSV_WERROR=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target missive_cli missive_sendmail missived >/dev/null
    MISSIVE=$BUILD/src/cli/missive MISSIVED=$BUILD/src/daemon/missived
fi

WORK=$(mktemp -d /tmp/relay-bench.XXXXXX)
chmod 755 "$WORK"
PF=$WORK/postfix
SINK="" MD="" INJ=""
# The processes whose parent is $1 (a spawner's sendmails), from /proc.
children_of() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); if (f[2] == pp) print $1 }'
}
cleanup() {
    set +e
    [ -n "$INJ" ] && kids=$(children_of "$INJ")
    for p in $INJ $SINK $MD; do kill "$p" 2>/dev/null; done
    for p in ${kids:-}; do kill "$p" 2>/dev/null; done
    for p in $INJ $SINK $MD; do wait "$p" 2>/dev/null; done
    if [ -f "$PF/queue/pid/master.pid" ]; then
        pid=$(tr -dc 0-9 < "$PF/queue/pid/master.pid")
        postfix -c "$PF/etc" stop >/dev/null 2>&1
        i=0
        while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null
        # Anything of this instance still running sits in its queue directory.
        q=$(readlink -f "$PF/queue")
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/cwd" 2>/dev/null)" = "$q" ] && kill -KILL "${p#/proc/}" 2>/dev/null
        done
    fi
    if [ -n "$KEEP" ]; then echo "relay.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----

# spawn P N FILE CMD...: runs CMD N times, at most P at once, stdin from
# FILE; prints "ok=N failed=N seconds=S cpu=S", cpu being the user+system
# time of every process it waited for (and theirs: postdrop under sendmail).
cat > "$WORK/spawn.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
int main(int argc, char **argv)
{
	if (argc < 5)
		return 64;
	long par = atol(argv[1]), n = atol(argv[2]), started = 0, running = 0, ok = 0, bad = 0;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, argv[3], O_RDONLY, 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (started < n || running) {
		if (started < n && running < par) {
			pid_t pid;
			if (posix_spawn(&pid, argv[4], &fa, NULL, argv + 4, environ)) {
				bad++;
				started++;
				continue;
			}
			started++;
			running++;
			continue;
		}
		int st;
		if (wait(&st) < 0)
			break;
		running--;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		else if (bad++ < 3)
			fprintf(stderr, "spawn: %s exited with status %d\n", argv[4],
			        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("ok=%ld failed=%ld seconds=%.3f cpu=%.3f\n", ok, bad,
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	           ru.ru_stime.tv_usec / 1e6);
	return 0;
}
EOF
cc -O2 -o "$WORK/spawn" "$WORK/spawn.c"
cc -O2 -pthread -o "$WORK/http_submit" bench/peers/http_submit.c

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 20
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("relay.sh: port %s not accepting connections after 20 s" % sys.argv[1])
        time.sleep(0.05)
PY
}
now() { date +%s.%N; }
TCK=$(getconf CLK_TCK)
# CPU seconds of process $1 and its live children, their reaped children
# included (utime+stime+cutime+cstime), from /proc.
tree_cpu() {
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" -v tck="$TCK" '
        { s = $0; pid = $1; sub(/^.*\) /, "", s); split(s, f, " ")
          if (pid == root || f[2] == root) t += f[12] + f[13] + f[14] + f[15] }
        END { printf "%.2f\n", t / tck }'
}
proc_cpu() { # one process, all its threads
    awk -v tck="$TCK" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); printf "%.2f\n", (f[12] + f[13]) / tck }' "/proc/$1/stat"
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; } # field NAME < "a=1 b=2"
calc() { echo "scale=6; $1" | bc -l; }

# The sink for one run: exits on receiving its N-th message.  Counters
# (-c) go to $WORK/sink.$1 for the report; stopped after TIMEOUT.
start_sink() {
    : > "$WORK/sink.$1"
    timeout "$TIMEOUT" /usr/sbin/smtp-sink -u postfix -c -M "$N" 127.0.0.1:"$SINKPORT" 256 \
        > "$WORK/sink.$1" 2>&1 &
    SINK=$!
    wait_port "$SINKPORT"
}
sink_count() { tr '\r' '\n' < "$WORK/sink.$1" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1; }
# Waits for the sink; sets T1 when it exits.
# The sink exiting at its N-th message ends the interval; its exit status
# says nothing about the run (the counts are read from its output), nor
# does the injectors' (the last message's sender sees the sink go away).
wait_sink() {
    wait "$SINK" || true
    T1=$(now)
    SINK=""
}

# The message for sendmail and the HTTP API: SIZE bytes, three header fields
# and 76-character lines; smtp-source gets a body of SIZE less its ~120
# bytes of header.
/usr/bin/python3 - "$WORK/msg.eml" "$SIZE" <<'PY'
import sys
size = int(sys.argv[2])
head = "From: Bench <bench@example.com>\nTo: sink@example.net\nSubject: relay benchmark\n\n"
line = "x" * 76 + "\n"
body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 1)] + "\n"
open(sys.argv[1], "w").write(head + body)
PY
SRC_LEN=$((SIZE > 240 ? SIZE - 120 : 120))
SINKPORT=$(free_port)

# ---- the private Postfix instance ----
start_postfix() {
    PFPORT=$(free_port)
    mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
    chown root:root "$PF/etc" "$PF/queue"
    chown postfix:postfix "$PF/data"
    chmod 755 "$PF" "$PF/etc"
    cat > "$PF/etc/main.cf" <<MAIN
# Private relay instance for bench/relay.sh: everything goes to the sink.
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:5.1.1 local delivery is disabled in the benchmark instance
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINKPORT
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_peername_lookup = no
biff = no
append_dot_mydomain = no
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
MAIN
    cat > "$PF/etc/master.cf" <<MASTER
127.0.0.1:$PFPORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
MASTER
    postfix -c "$PF/etc" start 2> "$PF/start.err" || { cat "$PF/start.err" >&2; exit 1; }
    wait_port "$PFPORT"
    PFMASTER=$(tr -dc 0-9 < "$PF/queue/pid/master.pid")
}

# ---- missived ----
start_missived() { # name
    d=$WORK/$1
    mkdir -p "$d"
    HTTPPORT=$(free_port)
    cat > "$d/missive.conf" <<CONF
[queue]
path = $d/queue.db
lease = 5m
[http]
listen = 127.0.0.1:$HTTPPORT
trust-loopback = yes
max-body = 1M
[limits]
# A benchmark is one client flooding on purpose (bench/gateway.sh measures limits).
ip-rate = off
[daemon]
workers = $WORKERS
batch = $BATCH
poll-interval = $POLL
grace = 5s
log-file = $d/missived.log
[route default]
server = 127.0.0.1:$SINKPORT
tls = none
helo = localhost
max-connections = $CONNS
CONF
    CFG=$d/missive.conf
    "$MISSIVED" --config "$CFG" 2> "$d/missived.err" &
    MD=$!
    wait_port "$HTTPPORT"
}
# missived's exit status is not a benchmark figure; the queue stats printed
# here show whether anything was left behind.
stop_missived() {
    kill -TERM "$MD" 2>/dev/null || true
    wait "$MD" 2>/dev/null || true
    MD=""
    echo "    queue afterwards: $("$MISSIVE" queue stats --config "$CFG" 2>&1)" >&2
}

# ---- the runs ----
# Each sets: RATE_x (msg/s), SRV_x (server CPU s), CLI_x (client CPU s), GOT_x (sink count)
record() { # run t0 t1 server_cpu client_cpu
    got=$(sink_count "$1")
    el=$(calc "$3 - $2")
    eval "GOT_$1=\${got:-0} EL_$1=$el SRV_$1=$4 CLI_$1=$5"
    eval "RATE_$1=$(calc "${got:-0} / $el")"
    if [ "${got:-0}" -ne "$N" ]; then
        echo "  run $1: the sink received ${got:-0} of $N messages before the timeout" >&2
    fi
}

run_a() {
    echo "(a) Postfix, smtp-source -d -s 8 into its smtpd ..." >&2
    start_sink a
    c0=$(tree_cpu "$PFMASTER")
    t0=$(now)
    "$WORK/spawn" 1 1 /dev/null /usr/sbin/smtp-source -d -s 8 -m "$N" -l "$SRC_LEN" \
        -f bench@example.com -t sink@example.net 127.0.0.1:"$PFPORT" > "$WORK/inj.a" &
    INJ=$!
    wait_sink
    c1=$(tree_cpu "$PFMASTER")
    wait "$INJ" || true
    INJ=""
    record a "$t0" "$T1" "$(calc "$c1 - $c0")" "$(field cpu < "$WORK/inj.a")"
    # The message in flight when the sink stopped is deferred: drop it so
    # that it cannot reach the next run's sink.
    postsuper -c "$PF/etc" -d ALL >/dev/null 2>&1 || true
}

run_b() {
    echo "(b) Postfix, its sendmail, 4 in parallel ..." >&2
    start_sink b
    c0=$(tree_cpu "$PFMASTER")
    t0=$(now)
    "$WORK/spawn" 4 "$N" "$WORK/msg.eml" /usr/sbin/sendmail -C "$PF/etc" -i \
        -f bench@example.com sink@example.net > "$WORK/inj.b" &
    INJ=$!
    wait_sink
    c1=$(tree_cpu "$PFMASTER")
    wait "$INJ" || true
    INJ=""
    record b "$t0" "$T1" "$(calc "$c1 - $c0")" "$(field cpu < "$WORK/inj.b")"
    postsuper -c "$PF/etc" -d ALL >/dev/null 2>&1 || true
}

run_c() {
    echo "(c) missived, HTTP API, 8 clients ..." >&2
    start_missived c
    start_sink c
    c0=$(proc_cpu "$MD")
    t0=$(now)
    "$WORK/http_submit" 127.0.0.1:"$HTTPPORT" "$N" 8 "$WORK/msg.eml" bench@example.com \
        sink@example.net > "$WORK/inj.c" &
    INJ=$!
    wait_sink
    c1=$(proc_cpu "$MD")
    wait "$INJ" || true
    INJ=""
    record c "$t0" "$T1" "$(calc "$c1 - $c0")" "$(field cpu < "$WORK/inj.c")"
    SUBMIT_c=$(field seconds < "$WORK/inj.c")
    stop_missived
}

run_d() {
    echo "(d) missive sendmail, 4 in parallel ..." >&2
    start_missived d
    start_sink d
    c0=$(proc_cpu "$MD")
    t0=$(now)
    if [ -n "${FRONT:-}" ]; then
        set -- "$(dirname "$MISSIVE")/missive-sendmail"
    else
        set -- "$MISSIVE" sendmail
    fi
    "$WORK/spawn" 4 "$N" "$WORK/msg.eml" "$@" --config "$CFG" -i \
        -f bench@example.com sink@example.net > "$WORK/inj.d" &
    INJ=$!
    wait_sink
    c1=$(proc_cpu "$MD")
    wait "$INJ" || true
    INJ=""
    record d "$t0" "$T1" "$(calc "$c1 - $c0")" "$(field cpu < "$WORK/inj.d")"
    SUBMIT_d=$(field seconds < "$WORK/inj.d")
    stop_missived
}

case " $RUNS " in *" a "*|*" b "*) start_postfix ;; esac
echo "relay.sh: $N messages of $SIZE bytes per run, sink on 127.0.0.1:$SINKPORT" \
     "($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
for r in $RUNS; do
    "run_$r"
    sleep 2 # let the previous run's connections and idle processes settle
done

# ---- report ----
label_a="Postfix, smtp-source -s 8 -> smtpd"
label_b="Postfix, sendmail x4"
label_c="missived, HTTP API x8"
label_d="missive sendmail x4"
[ -z "${FRONT:-}" ] || label_d="sendmail front end x4"
echo
echo "== end to end relay to smtp-sink: $N messages of $SIZE bytes"
echo "   missived: workers=$WORKERS batch=$BATCH poll-interval=$POLL max-connections=$CONNS"
printf '  %-36s %8s %8s %8s  %13s %13s %12s\n' "" "received" "seconds" "msg/s" "server ms/msg" "client ms/msg" "total ms/msg"
for r in a b c d; do
    case " $RUNS " in *" $r "*) ;; *) continue ;; esac
    eval "lab=\$label_$r got=\$GOT_$r rate=\$RATE_$r srv=\$SRV_$r cli=\$CLI_$r el=\$EL_$r"
    [ "$got" -gt 0 ] || got=1
    printf '  %-36s %8s %8.1f %8.0f  %13.2f %13.2f %12.2f\n' "($r) $lab" "$got" "$el" "$rate" \
        "$(calc "1000 * $srv / $got")" "$(calc "1000 * ${cli:-0} / $got")" \
        "$(calc "1000 * ($srv + ${cli:-0}) / $got")"
done
echo "   server = Postfix's master and children / missived; client = smtp-source,"
echo "   sendmail+postdrop, the HTTP client (bench/peers/http_submit.c), missive sendmail."
[ -n "${SUBMIT_c:-}" ] && printf '   (c) submission alone took %.2f s (%.0f msg/s accepted by the API)\n' \
    "$SUBMIT_c" "$(calc "$N / $SUBMIT_c")"
[ -n "${SUBMIT_d:-}" ] && printf '   (d) submission alone took %.2f s (%.0f msg/s queued by missive sendmail)\n' \
    "$SUBMIT_d" "$(calc "$N / $SUBMIT_d")"
ratio() { # label, missive run, postfix run
    eval "mr=\${RATE_$2:-} pr=\${RATE_$3:-} ms=\${SRV_$2:-} ps=\${SRV_$3:-} mc=\${CLI_$2:-} pc=\${CLI_$3:-}"
    eval "mg=\${GOT_$2:-1} pg=\${GOT_$3:-1}"
    [ -n "$mr" ] && [ -n "$pr" ] || return 0
    if [ "$(calc "$pr > 0 && $ps > 0 && $mr > 0")" != 1 ]; then
        echo "  $1 no ratio (a run received nothing)"
        return 0
    fi
    printf '  %-34s rate %.2fx   server CPU/msg %.2fx   total CPU/msg %.2fx\n' "$1" \
        "$(calc "$mr / $pr")" "$(calc "($ms / $mg) / ($ps / $pg)")" \
        "$(calc "(($ms + $mc) / $mg) / (($ps + $pc) / $pg)")"
}
echo "  missive / Postfix:"
ratio "HTTP API x8 vs smtp-source -s 8:" c a
ratio "sendmail x4 vs sendmail x4:" d b
echo "  (goals from issue 6: rate >= 4x and server CPU/msg <= 0.25x for the first pair;"
echo "   rate >= 3x for the second)"
