#!/bin/sh
# make run: a self-signed certificate on first start, then moonpostd in the
# foreground on the dev ports (conf/dev.conf). Ctrl-C stops it cleanly.
set -e
cd "$(dirname "$0")/.."
mkdir -p var/tls
if [ ! -s var/tls/cert.pem ] || [ ! -s var/tls/key.pem ]; then
  echo "moonpost: generating a self-signed certificate in var/tls/" >&2
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mx.example.org" \
    -addext "subjectAltName=DNS:mx.example.org,DNS:localhost,IP:127.0.0.1" \
    -keyout var/tls/key.pem -out var/tls/cert.pem 2>/dev/null
  chmod 600 var/tls/key.pem
fi
cat >&2 <<'MSG'
moonpost: listening on 127.0.0.1 - SMTP 2525, submission 2587 (STARTTLS) / 2465 (TLS).
moonpost: (LMTP 2424, IMAP 2143/2993, POP3 2110/2995, ManageSieve 24190 come with later issues.)
moonpost: try: swaks --server 127.0.0.1:2525 --quit-after EHLO -tls
MSG
exec build/moonpostd -c conf/dev.conf
