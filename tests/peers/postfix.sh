#!/bin/sh
# A private Postfix instance for the real-peer integration tests.
#
#   tests/peers/postfix.sh start DIR     configure (first time) and start; waits for all ports
#   tests/peers/postfix.sh stop DIR      stop it and kill anything it left behind
#   tests/peers/postfix.sh status DIR    exit 0 if its master process is running
#
# Must run as root (Postfix's master starts as root and drops to mail_owner=postfix).
# Nothing outside DIR is touched: config in DIR/etc (postfix -c DIR/etc), queue in
# DIR/queue, data in DIR/data, mail in DIR/mail, log in DIR/maillog. All services run
# unchrooted. Listens on 127.0.0.1 only (IPv4 only).
#
# Files written for the tests:
#   DIR/ports.env        PLAIN_PORT=  SUBMISSION_PORT=  SMTPS_PORT=  PLAINAUTH_PORT=
#                        EXPIRED_PORT=  WRONGHOST_PORT=  UNKNOWNCA_PORT=  NOCHUNKING_PORT=
#   DIR/credentials.env  SASL_USER=testuser@example.test  SASL_PASSWORD=...
#   DIR/maillog          everything Postfix logged (postlogd), smtpd_tls_loglevel=1
#   DIR/mail/example.test/{new,cur,tmp}   ONE Maildir for all example.test recipients
#                        (virtual(8) refuses regexp substitution in virtual_mailbox_maps, so
#                        per-recipient Maildirs are not possible without extra packages).
#                        Find a message by its "Delivered-To: rcpt" header (virtual adds
#                        Return-Path: and Delivered-To: on top, cleanup adds Received:).
#
# Listeners (ports from the environment variables of the same names, else free ones):
#   PLAIN_PORT       no TLS offered, no AUTH offered. Clients in 127.0.0.0/8 are in
#                    mynetworks, so any recipient domain is accepted (see below).
#   SUBMISSION_PORT  STARTTLS required (smtpd_tls_security_level=encrypt), AUTH offered after
#                    STARTTLS; MAIL/RCPT without AUTH are refused (530 5.7.0 / 554 5.7.1).
#   SMTPS_PORT       implicit TLS (smtpd_tls_wrappermode=yes), AUTH required as above.
#   NOCHUNKING_PORT  like PLAIN_PORT but CHUNKING is not offered, so clients use DATA
#                    (with dot-stuffing) instead of BDAT.
#   PLAINAUTH_PORT   no TLS, but AUTH (PLAIN LOGIN CRAM-MD5) offered in clear text and
#                    required: for checking that a client does NOT send credentials over
#                    plaintext unless told to (--allow-plaintext-auth).
#   EXPIRED_PORT, WRONGHOST_PORT, UNKNOWNCA_PORT
#                    like SUBMISSION_PORT but presenting expired.pem, wronghost.pem,
#                    unknownca.pem from certs.sh: a verifying client must give up.
#   TLS certs: $CERTS_DIR (default DIR/certs, created with certs.sh); server.pem is for
#   DNS:localhost and IP:127.0.0.1, signed by CERTS_DIR/ca.pem.
#
# Recipients (any listener; on the AUTH ports only after authentication):
#   *@example.test            delivered by virtual(8) into the Maildir DIR/mail/example.test/
#   unknown*@example.test     rejected at RCPT: 550 5.1.1 <addr>: Recipient address rejected: User unknown
#   tempfail*@example.test    rejected at RCPT: 450 4.2.0 <addr>: Recipient address rejected: ...
#   *@defer.test              accepted, then deferred forever (pipe exits 75): a queued message
#                             that never leaves; with NOTIFY=DELAY no warning is sent
#                             (delay_warning_time = 0).
#   anything@other.domain     accepted (PLAIN_PORT: relay for mynetworks; AUTH ports: after
#                             AUTH), then bounced at once (pipe exits 1 => 5.3.0), so Postfix
#                             sends a real DSN to the envelope sender; when the sender is
#                             @example.test that DSN lands in the Maildir too.
#   DSN is offered; NOTIFY=SUCCESS to example.test recipients produces a "delivered" DSN.
# Strictness: smtpd_forbid_bare_newline = reject (a bare LF in DATA/BDAT gets 550, also
# from 127.0.0.1) and smtpd_forbid_unauth_pipelining = yes.
set -eu

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 64; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

case "$DIR" in /*) ;; *) DIR=$(pwd)/$DIR ;; esac
ETC=$DIR/etc
PIDFILE=$DIR/queue/pid/master.pid
PORT_VARS="PLAIN_PORT NOCHUNKING_PORT SUBMISSION_PORT SMTPS_PORT PLAINAUTH_PORT EXPIRED_PORT WRONGHOST_PORT UNKNOWNCA_PORT"

master_pid() {
    [ -f "$PIDFILE" ] || return 1
    pid=$(tr -dc 0-9 < "$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Processes whose working directory is our queue directory: every Postfix daemon of this
# instance chdir()s there. Used to find leftovers precisely (never by name).
instance_pids() {
    q=$(readlink -f "$DIR/queue" 2>/dev/null) || return 0
    for p in /proc/[0-9]*; do
        c=$(readlink "$p/cwd" 2>/dev/null) || continue
        [ "$c" = "$q" ] && echo "${p#/proc/}"
    done
    return 0
}

# free_ports N: N distinct currently free TCP ports on 127.0.0.1
free_ports() {
    $PY - "$1" <<'PYEOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PYEOF
}

configure() {
    [ "$(id -u)" -eq 0 ] || { echo "postfix.sh: must run as root" >&2; exit 77; }
    mkdir -p "$DIR" "$ETC/sasl" "$DIR/queue" "$DIR/data" "$DIR/mail"
    chmod 755 "$DIR" "$ETC" "$ETC/sasl"
    chown root:root "$DIR/queue" "$ETC"
    chown postfix:postfix "$DIR/data"
    chown nobody:nogroup "$DIR/mail"
    chmod 755 "$DIR/mail"

    CERTS_DIR=${CERTS_DIR:-$DIR/certs}
    case "$CERTS_DIR" in /*) ;; *) CERTS_DIR=$(pwd)/$CERTS_DIR ;; esac
    "$HERE/certs.sh" "$CERTS_DIR"

    # Ports: from the environment, else the ones chosen on a previous start of this DIR,
    # else free ones.
    # shellcheck disable=SC2046
    set -- $(free_ports 8)
    for v in $PORT_VARS; do
        eval "val=\${$v:-}"
        if [ -z "$val" ] && [ -f "$DIR/ports.env" ]; then
            val=$(sed -n "s/^$v=\([0-9][0-9]*\)\$/\1/p" "$DIR/ports.env")
        fi
        [ -n "$val" ] || val=$1
        shift
        eval "$v=$val"
    done
    cat > "$DIR/ports.env.tmp" <<PORTS
PLAIN_PORT=$PLAIN_PORT
NOCHUNKING_PORT=$NOCHUNKING_PORT
SUBMISSION_PORT=$SUBMISSION_PORT
SMTPS_PORT=$SMTPS_PORT
PLAINAUTH_PORT=$PLAINAUTH_PORT
EXPIRED_PORT=$EXPIRED_PORT
WRONGHOST_PORT=$WRONGHOST_PORT
UNKNOWNCA_PORT=$UNKNOWNCA_PORT
PORTS
    mv "$DIR/ports.env.tmp" "$DIR/ports.env"

    # SASL: Cyrus sasldb, user testuser in realm example.test => testuser@example.test.
    if [ ! -f "$DIR/credentials.env" ]; then
        pw=${SASL_PASSWORD:-$($PY -c 'import secrets; print("pw-" + secrets.token_hex(10))')}
        printf '%s' "$pw" | saslpasswd2 -c -p -f "$DIR/sasldb2" -u example.test testuser
        printf 'SASL_USER=testuser@example.test\nSASL_PASSWORD=%s\n' "$pw" > "$DIR/credentials.env"
        chmod 600 "$DIR/credentials.env"
    fi
    chown root:postfix "$DIR/sasldb2"
    chmod 640 "$DIR/sasldb2"
    cat > "$ETC/sasl/smtpd.conf" <<SASL
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN CRAM-MD5
sasldb_path: $DIR/sasldb2
SASL

    cat > "$ETC/rcpt_access" <<'ACC'
/^unknown[^@]*@example\.test$/	550 5.1.1 User unknown
/^tempfail[^@]*@example\.test$/	450 4.2.0 Temporary failure requested by the test recipient address
ACC
    printf 'defer.test\tdeferpipe:\n' > "$ETC/transport"

    uid=$(id -u nobody); gid=$(id -g nobody)
    cat > "$ETC/main.cf" <<MAIN
# Private Postfix instance for missive's integration tests (tests/peers/postfix.sh).
compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP missive-test-postfix
biff = no
alias_maps =
alias_database =
append_dot_mydomain = no
local_header_rewrite_clients =
disable_mime_output_conversion = yes
message_size_limit = 52428800
mailbox_size_limit = 0
virtual_mailbox_limit = 0
smtpd_peername_lookup = no
# Be strict about what the client sends: bare LF is an error, as is pipelining
# commands the server did not allow.
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
smtpd_forbid_unauth_pipelining = yes

maillog_file_prefixes = $DIR
maillog_file = $DIR/maillog

virtual_mailbox_domains = example.test
virtual_mailbox_base = $DIR/mail
virtual_mailbox_maps = static:example.test/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
local_transport = error:5.1.1 local delivery is disabled in the test instance
default_transport = bouncepipe:
relay_transport = \$default_transport
transport_maps = texthash:$ETC/transport

# Retry and bounce quickly (for DSN/deferral tests).
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
delay_warning_time = 0

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$ETC/rcpt_access
auth_required_restrictions = check_recipient_access regexp:$ETC/rcpt_access, permit_sasl_authenticated, reject

smtpd_tls_chain_files = $CERTS_DIR/server.key, $CERTS_DIR/server.pem
smtpd_tls_security_level = none
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $ETC/sasl
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_sasl_local_domain =
broken_sasl_auth_clients = no
MAIN

    # One smtpd listener with TLS required and AUTH required; \$1 = port, \$2 = name, \$3 = cert base
    tls_auth_listener() {
        cat <<L
127.0.0.1:$1 inet n - n - - smtpd
  -o syslog_name=postfix/$2
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_chain_files=$CERTS_DIR/$3.key,$CERTS_DIR/$3.pem
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$auth_required_restrictions
  -o smtpd_recipient_restrictions=\$auth_required_restrictions
L
    }
    {
        cat <<MASTER
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$PLAIN_PORT inet n - n - - smtpd
  -o syslog_name=postfix/plain
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
127.0.0.1:$NOCHUNKING_PORT inet n - n - - smtpd
  -o syslog_name=postfix/nochunking
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_discard_ehlo_keywords=chunking,silent-discard
MASTER
        tls_auth_listener "$SUBMISSION_PORT" submission server
        cat <<MASTER
127.0.0.1:$SMTPS_PORT inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$auth_required_restrictions
  -o smtpd_recipient_restrictions=\$auth_required_restrictions
127.0.0.1:$PLAINAUTH_PORT inet n - n - - smtpd
  -o syslog_name=postfix/plainauth
  -o smtpd_tls_security_level=none
  -o smtpd_tls_auth_only=no
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=\$auth_required_restrictions
  -o smtpd_recipient_restrictions=\$auth_required_restrictions
MASTER
        tls_auth_listener "$EXPIRED_PORT" expired expired
        tls_auth_listener "$WRONGHOST_PORT" wronghost wronghost
        tls_auth_listener "$UNKNOWNCA_PORT" unknownca unknownca
        cat <<'MASTER'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
bouncepipe unix -       n       n       -       -       pipe
  flags= user=nobody argv=/bin/false
deferpipe unix  -       n       n       -       -       pipe
  flags= user=nobody argv=/bin/sh -c { exit 75 }
MASTER
    } > "$ETC/master.cf"
}

wait_ports() {
    # shellcheck source=/dev/null
    . "$DIR/ports.env"
    # shellcheck disable=SC2046
    $PY - $(for v in $PORT_VARS; do eval "echo \$$v"; done) <<'PYEOF'
import socket, sys, time
deadline = time.monotonic() + 20
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("postfix.sh: port %d not accepting connections after 20 s" % port)
            time.sleep(0.05)
PYEOF
}

case "$CMD" in
start)
    if master_pid >/dev/null; then wait_ports; exit 0; fi
    configure
    postfix -c "$ETC" start 2>>"$DIR/postfix-start.err" ||
        { cat "$DIR/postfix-start.err" >&2; exit 1; }
    if ! wait_ports; then
        tail -n 30 "$DIR/maillog" >&2 2>/dev/null || true
        exit 1
    fi
    ;;
stop)
    [ -d "$DIR" ] || exit 0
    if pid=$(master_pid); then
        postfix -c "$ETC" stop >/dev/null 2>&1 || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Leftovers: the master's process group (master calls setsid), then anything
    # still sitting in our queue directory.
    if [ -n "${pid:-}" ]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    for p in $(instance_pids); do kill -KILL "$p" 2>/dev/null || true; done
    exit 0
    ;;
status)
    master_pid >/dev/null
    ;;
*) usage ;;
esac
