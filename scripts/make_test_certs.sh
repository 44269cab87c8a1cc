#!/usr/bin/env bash
# Make a throwaway test PKI with openssl: a CA, a broker (server) certificate for localhost / 127.0.0.1, and one
# client certificate per name given (CN = the name, so mosquitto's use_identity_as_username maps it to %u).
#
#   scripts/make_test_certs.sh OUTDIR [CLIENT ...]      (default clients: vehicle-a vehicle-b fleet ingest)
#
# Writes OUTDIR/ca.{key,crt}, OUTDIR/server.{key,crt}, OUTDIR/<client>.{key,crt}. EC P-256 keys (fast to make).
# For tests and demos only: the CA key sits next to the certificates and nothing is passphrase-protected.
set -euo pipefail

out="${1:?usage: make_test_certs.sh OUTDIR [CLIENT ...]}"
shift
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(vehicle-a vehicle-b fleet ingest)
days="${DAYS:-30}"
server_cn="${SERVER_CN:-localhost}"

mkdir -p "$out"
cd "$out"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# CA
newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=edgesift test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt 2>/dev/null

sign() {  # sign NAME EXTFILE: NAME.csr -> NAME.crt
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$2" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}

# Broker certificate: the SAN must name what clients dial (localhost and 127.0.0.1 in tests).
newkey server.key
openssl req -new -key server.key -subj "/CN=$server_cn" -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$server_cn" > server.ext
sign server server.ext

# Client certificates
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for name in "${clients[@]}"; do
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
  sign "$name" client.ext
done
rm -f server.ext client.ext ca.srl
chmod 644 ./*.crt
echo "test PKI in $out: ca.crt server.crt ${clients[*]/%/.crt}"
