#!/bin/sh
# Test certificates for the mTLS example in docker-compose.yml: a CA, the proxy's server
# certificate for localhost, and one client certificate (CN=payments,O=Example) of that CA.
# Run once by the compose service `mtls-certs`; by hand: OUT=./certs deploy/mtls/make-certs.sh
# Not for production: use your own PKI, and keep client keys on the devices they identify.
set -eu
OUT=${OUT:-/certs}
mkdir -p "$OUT"
cd "$OUT"
[ -f ca.pem ] && { echo "certificates already in $OUT"; exit 0; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=Latchkey example client CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
  -extfile server.ext -out server.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Example/CN=payments" \
  -keyout client.key -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
  -extfile client.ext -out client.pem
rm -f ./*.csr ./*.ext
chmod 0644 ./*.pem ./*.key
echo "certificates written to $OUT"
