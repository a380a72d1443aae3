#!/bin/sh
# Make what the Compose stack (and the Kubernetes example) need to serve /metrics over TLS with basic auth, in
# deploy/web/secrets/ (ignored by git):
#   ca.crt, ca.key            a private CA (keep ca.key offline if you keep the CA)
#   tls.crt, tls.key          the server certificate for flockwatch, localhost and 127.0.0.1, signed by that CA
#   prometheus-password       the password Prometheus scrapes with (user "prometheus")
#   probe-password            the password the container health probe uses (user "probe")
#   web-config.yml            the web configuration file (exporter-toolkit format) with both users' bcrypt hashes
# Usage: sh deploy/web/make-secrets.sh [extra DNS name of the server...]
# bcrypt hashes come from Python's bcrypt module if installed, else htpasswd (apache2-utils), else the flockwatch
# image (docker compose -f deploy/compose.yaml build flockwatch first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/secrets"
mkdir -p "$out"
chmod 755 "$out"
cd "$out"

names="DNS:flockwatch,DNS:localhost,IP:127.0.0.1"
for extra in "$@"; do names="$names,DNS:$extra"; done

if [ ! -f ca.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
        -days 3650 -subj "/CN=flockwatch CA" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
    -subj "/CN=flockwatch" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$names" > tls.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 397 \
    -extfile tls.ext 2>/dev/null
rm -f tls.csr tls.ext

hash() {
    if python3 -c 'import bcrypt' 2>/dev/null; then
        python3 -c 'import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.read().strip().encode(), bcrypt.gensalt(10)).decode())'
    elif command -v htpasswd >/dev/null; then
        htpasswd -niBC 10 "" | tr -d ':\n'
    else
        docker run --rm -i --entrypoint python flockwatch:0.1.0 -c \
            'import bcrypt, sys; print(bcrypt.hashpw(sys.stdin.read().strip().encode(), bcrypt.gensalt(10)).decode())'
    fi
}
for user in prometheus probe; do
    [ -f "$user-password" ] || openssl rand -hex 24 > "$user-password"
done
printf 'prometheus' > prometheus-user  # for the Prometheus Operator's ServiceMonitor
prometheus_hash=$(hash < prometheus-password)
probe_hash=$(hash < probe-password)
cat > web-config.yml <<YAML
# Web configuration of flockwatch (Prometheus exporter-toolkit format), made by deploy/web/make-secrets.sh.
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
basic_auth_users:
  prometheus: $prometheus_hash
  probe: $probe_hash
YAML
# The daemon (uid 10001) and Prometheus (uid 65534) read these through read-only mounts.
chmod 644 ca.crt tls.crt tls.key prometheus-user prometheus-password probe-password web-config.yml
chmod 600 ca.key
echo "made $out: ca.crt tls.crt tls.key prometheus-password probe-password web-config.yml"
