#!/bin/sh
# make run: a self-signed certificate and the demo directory on first start,
# then moonpostd in the foreground on the dev ports (conf/dev.conf).
# Ctrl-C stops it cleanly.
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
if [ ! -s var/directory ]; then
  echo "moonpost: creating the demo directory var/directory (example.org)" >&2
  hash=$(echo secret | build/moonpost -c conf/dev.conf pw hash)
  cat > var/directory <<EOF
# moonpost demo directory (make run).
# Edit with: build/moonpost -c conf/dev.conf domain|user|alias ...
domain example.org
user john@example.org $hash
user jane@example.org $hash
alias postmaster@example.org john@example.org
EOF
fi
cat >&2 <<'MSG'
moonpost: listening on 127.0.0.1 - SMTP 2525, submission 2587 (STARTTLS) / 2465 (TLS),
moonpost: LMTP 2424, POP3 2110 (STLS; plaintext allowed on loopback) / 2995 (TLS).
moonpost: demo users john@example.org and jane@example.org, password "secret";
moonpost: postmaster@example.org -> john. Try: build/moonpost -c conf/dev.conf lookup postmaster@example.org
moonpost: (IMAP 2143/2993 and ManageSieve 24190 come with later issues.)
moonpost: try: swaks --server 127.0.0.1:2587 -tls -a PLAIN -au john@example.org -ap secret --quit-after AUTH
MSG
exec build/moonpostd -c conf/dev.conf
