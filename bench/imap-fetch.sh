#!/bin/bash
# bench/imap-fetch.sh - IMAP, moonpost vs Dovecot imap, both serving copies
# of the same Maildirs in one run, same machine, same {BLF-CRYPT} cost-5
# password hash (doveadm pw, as ISPmail stores them). Prints one table.
#
# What it measures (ROUNDS=3 rounds, medians, servers alternate who goes
# first; each round gives each server a fresh copy of an INBOX of N=10000
# messages of ~SIZE=4096 bytes in new/, LF line ends, Dovecot-style names
# with S= and W=):
#   logins   LOGINS=400 x (connect, LOGIN, LOGOUT, close), one login per
#            connection, LOGIN_CLIENTS=8 client threads at once: logins/s,
#            p50 latency and the servers' CPU per login
#   select   SELECT INBOX (first open: UIDs assigned, new/ -> cur/; Dovecot
#            also builds its index); LOGIN is before it and not timed
#   headers  FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE): the message list
#   bodies   FETCH 1:BODIES BODY.PEEK[] (BODIES=2000)
#   search   SEARCH TEXT "quokkafish", twice (1st, 2nd) in the same session;
#            the word is planted in ~1% of the messages, and both servers'
#            answers must be exactly the planted Message-IDs (else FAIL,
#            exit 1, after the table)
#   reselect SELECT INBOX again in the same session
#   idle     a fresh server of each; IDLE_CONNS=1000 users, each with its
#            own Maildir (INBOX of IDLE_MSGS=20 messages), connect, LOGIN,
#            SELECT INBOX, IDLE; the growth of the summed Pss (and RSS) of
#            every server process (/proc/PID/smaps_rollup; Dovecot: master
#            and all children, one imap process per connection) / IDLE_CONNS
# Both answer over plaintext on loopback. moonpost: build/moonpostd
# (MOONPOSTD=...), workers = 2, file directory; smtp.connections_max and
# connections_per_ip (which count IMAP connections too) raised to
# IDLE_CONNS+100. Dovecot: /usr/sbin/dovecot (Debian's 2.3 dovecot-imapd) in
# a private instance from t/lib/dovecot.py (own config and base_dir in /tmp,
# passwd-file passdb), defaults otherwise (no auth cache, mail_fsync =
# optimized) except the limits 1,000 connections need: service imap
# process_limit, default_client_limit, mail_max_userip_connections.
# About 75 s with the defaults.
#
# Usage (root; needs build/ and dovecot-imapd):  bench/imap-fetch.sh
#   N=... SIZE=... ROUNDS=... BODIES=... LOGINS=... LOGIN_CLIENTS=...
#   IDLE_CONNS=... IDLE_MSGS=... VERBOSE=1 (per-round values) KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/imap_fetch.py "$@"
