#!/bin/bash
# bench/pop3-retr.sh - POP3 RETR throughput, moonpost vs Dovecot POP3, both
# serving the same Maildir in one run, same machine, same password scheme.
#
# What it measures
#   N=2000 messages of ~SIZE=4096 bytes (LF line ends, Dovecot-style names
#   with S= and W=, some lines starting with '.') in one Maildir. One POP3
#   session logs in (USER/PASS, {SHA512-CRYPT}), STAT, then RETR 1..N one
#   at a time (send, read to "\r\n.\r\n", next: what fetchmail/getmail do),
#   QUIT. Only the RETR loop is timed. Printed: messages/s and MB/s on the
#   wire (median and range of ROUNDS rounds, default 3, alternating which
#   server goes first), the servers' CPU time (their process trees), the
#   ratio, and whether both sent identical bytes for every message.
#   - moonpost: build/moonpostd (MOONPOSTD=... for another build), a "pop3"
#     listener on a free loopback port, workers = 2, file directory.
#   - Dovecot: /usr/sbin/dovecot (Debian's 2.3 dovecot-pop3d), a private
#     instance from t/lib/dovecot.py: own config and base_dir in /tmp, a free
#     port, passwd-file with the same hash, mail_location = that Maildir,
#     pop3_uidl_format %08Xu%08Xv; otherwise Dovecot's defaults (mail_fsync =
#     optimized). (The
#     anchor's Dovecot is not used: it serves its own Maildirs and only one
#     anchor may run at a time.)
#   One warm-up session on each first: both sync the folder (UIDs, new/ ->
#   cur/, \Seen renames, Dovecot's index) and the files are in the page
#   cache, so the rounds compare steady-state serving.
#   Then "cold": each server gets its own fresh copy of the messages (all in
#   new/, no uidlist, no index) and one whole session is timed with the C
#   client, from connect to the QUIT answer: login, first sync, RETR of all,
#   and the \Seen renames at the end (a user's first download).
#   The client is build/bench/pop3_client (bench/pop3_client.c, built by
#   make); without it a Python client is used and "cold" is skipped.
#
# Usage (root; needs build/ and dovecot-pop3d):  make bench BENCH=pop3-retr
#   N=... SIZE=... ROUNDS=... KEEP=1 (keep the work dir)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/pop3_retr.py "$@"
