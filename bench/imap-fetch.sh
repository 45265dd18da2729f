#!/bin/bash
# bench/imap-fetch.sh - IMAP throughput, moonpost vs Dovecot imap, both
# serving copies of the same Maildir in one run, same machine.
#
# What it measures (N=2000 messages of ~SIZE=4096 bytes, LF line ends,
# Dovecot-style names with S= and W=; ROUNDS=3, medians, servers alternate):
#   select   LOGIN + SELECT INBOX on a fresh copy (first open: UIDs assigned,
#            new/ -> cur/; Dovecot also builds its index)
#   headers  UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE):
#            what a client downloads to show the message list
#   bodies   FETCH 1:* BODY.PEEK[]: every message
#   reselect SELECT INBOX again (warm: what reopening a folder costs)
# Both answer over plaintext on loopback with {PLAIN} passwords (no TLS or
# hashing in the numbers). moonpost: build/moonpostd (MOONPOSTD=...),
# workers = 2. Dovecot: /usr/sbin/dovecot (Debian's 2.3 dovecot-imapd) in a
# private instance (own config and base_dir in /tmp), defaults otherwise.
#
# Usage (root; needs build/ and dovecot-imapd):  bench/imap-fetch.sh
#   N=... SIZE=... ROUNDS=...
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/imap_fetch.py "$@"
