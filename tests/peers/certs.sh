#!/bin/sh
# Generate the TLS material used by the real-peer integration tests.
#
#   tests/peers/certs.sh OUTDIR
#
# Writes into OUTDIR (EC P-256 keys, PEM):
#   ca.pem / ca.key              test CA ("missive test CA")
#   server.pem / server.key      valid cert: DNS:localhost, IP:127.0.0.1, signed by the CA
#   expired.pem / expired.key    localhost + 127.0.0.1, signed by the CA, validity 2020-01-01..2020-02-01
#   wronghost.pem / wronghost.key CN and SAN DNS:wrong.example only, signed by the CA
#   unknownca.pem / unknownca.key localhost + 127.0.0.1, signed by a second CA that is
#                                not in ca.pem (unknown-ca.pem is kept for reference)
#   client.pem / client.key      client cert (CN=testclient, clientAuth), signed by the CA
# Idempotent: does nothing if OUTDIR/ca.pem already exists.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 64; }
OUT=$1
[ -f "$OUT/ca.pem" ] && exit 0
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.certs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cat > "$WORK/openssl.cnf" <<'CNF'
[ ca ]
default_ca = testca
[ testca ]
dir = $ENV::CADIR
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[ anything ]
commonName = supplied
organizationName = optional
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_client ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
export OPENSSL_CONF="$WORK/openssl.cnf"
SAN=DNS:unused; CADIR=$WORK/ca; export SAN CADIR

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# newca NAME CN: self-signed CA NAME.pem/NAME.key with its database under $WORK/NAME
newca() {
    d="$WORK/$1"; mkdir -p "$d/newcerts"; : > "$d/index.txt"; echo 1000 > "$d/serial"
    key "$WORK/$1.key"
    openssl req -new -x509 -key "$WORK/$1.key" -subj "/O=missive tests/CN=$2" \
        -days 3650 -extensions v3_ca -out "$WORK/$1.pem"
}

# issue CA NAME CN SAN EXT [ca args...]: NAME.pem/NAME.key signed by CA
issue() {
    ca=$1 name=$2 cn=$3 SAN=$4 ext=$5; shift 5
    export SAN
    key "$WORK/$name.key"
    openssl req -new -key "$WORK/$name.key" -subj "/O=missive tests/CN=$cn" -out "$WORK/$name.csr"
    CADIR="$WORK/$ca" openssl ca -batch -notext -in "$WORK/$name.csr" -out "$WORK/$name.pem" \
        -cert "$WORK/$ca.pem" -keyfile "$WORK/$ca.key" -extensions "$ext" "$@" 2>/dev/null
}

newca ca "missive test CA"
newca unknown-ca "missive UNKNOWN test CA"
issue ca server localhost "DNS:localhost,IP:127.0.0.1" v3_server -days 3650
issue ca expired localhost "DNS:localhost,IP:127.0.0.1" v3_server \
    -startdate 20200101000000Z -enddate 20200201000000Z
issue ca wronghost wrong.example "DNS:wrong.example" v3_server -days 3650
issue unknown-ca unknownca localhost "DNS:localhost,IP:127.0.0.1" v3_server -days 3650
issue ca client testclient "DNS:unused" v3_client -days 3650

# Sanity checks: fail loudly if the material is not what the tests expect.
unset OPENSSL_CONF
openssl verify -CAfile "$WORK/ca.pem" "$WORK/server.pem" "$WORK/client.pem" "$WORK/wronghost.pem" >/dev/null
if openssl verify -CAfile "$WORK/ca.pem" "$WORK/expired.pem" >/dev/null 2>&1; then
    echo "certs.sh: expired.pem unexpectedly verifies" >&2; exit 1
fi
openssl verify -CAfile "$WORK/ca.pem" "$WORK/expired.pem" 2>&1 | grep -q "certificate has expired" ||
    { echo "certs.sh: expired.pem is not reported as expired" >&2; exit 1; }
if openssl verify -CAfile "$WORK/ca.pem" "$WORK/unknownca.pem" >/dev/null 2>&1; then
    echo "certs.sh: unknownca.pem unexpectedly verifies against ca.pem" >&2; exit 1
fi

for f in ca unknown-ca server expired wronghost unknownca client; do
    cp "$WORK/$f.pem" "$OUT/$f.pem.tmp"
    cp "$WORK/$f.key" "$OUT/$f.key"
    chmod 600 "$OUT/$f.key"
done
# ca.pem is renamed last: its presence marks a complete, usable OUTDIR.
for f in unknown-ca server expired wronghost unknownca client ca; do
    mv "$OUT/$f.pem.tmp" "$OUT/$f.pem"
done
