#!/bin/bash
# bench/imap-sort.sh - IMAP SORT, THREAD and a QRESYNC resync, moonpost vs
# Dovecot imap, both serving copies of the same Maildir in one run, same
# machine. Prints one table, then what was checked.
#
# The folder (bench/imap_bench_lib.py thread_messages): N=10000 messages in
# ~N/5 threads, Message-ID / In-Reply-To / References chains, Re:/Fwd:/[list]
# subject prefixes, RFC 2047 subjects and names, dates over a year in many
# time zones, varied From:, in cur/ with no uidlist or index; mtime =
# arrival (INTERNALDATE). What it measures (ROUNDS=3 rounds, medians,
# servers alternate who goes first; each round gives each server fresh
# hard-linked copies, one per timed command):
#   SORT (ARRIVAL), SORT (SUBJECT), SORT (DATE), THREAD REFERENCES: LOGIN,
#            SELECT INBOX (untimed), the command (cold: the server reads
#            every header and fills its cache: moonpost.cache,
#            dovecot.index.cache), then the same again (warm)
#   QRESYNC  session A: ENABLE QRESYNC, SELECT, notes UIDVALIDITY and
#            HIGHESTMODSEQ, LOGOUT; session B: 50 UID STOREs toggling
#            \Flagged and 50 expunges; session A again: SELECT INBOX
#            (QRESYNC (uidvalidity modseq)) and UID FETCH 1:* (FLAGS)
#            (CHANGEDSINCE modseq VANISHED), each timed up to its tagged OK
# Checked (exit 1 after the table if not): SORT (ARRIVAL) and SORT (DATE)
# equal in both servers and to the order computed from the generated folder;
# VANISHED and changed UIDs equal in both and to what session B did; every
# answer the same cold and warm and in every round; each answer lists every
# message exactly once. SORT (SUBJECT) and THREAD REFERENCES are compared
# (identical, or how many positions differ, and why where it is known:
# non-ASCII subject order; threads re-sorted by date) but may differ in ties
# and details between implementations, so that alone does not fail.
# moonpost: build/moonpostd (MOONPOSTD=...), workers = 2, file directory.
# Dovecot: /usr/sbin/dovecot (Debian's 2.3 dovecot-imapd) in a private
# instance from t/lib/dovecot.py, defaults. About 25 s with the defaults (DUMP=DIR writes each server's answers there).
#
# Usage (root; needs build/ and dovecot-imapd):  bench/imap-sort.sh
#   N=... ROUNDS=... SEED=... VERBOSE=1 (per-round values) KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/imap_sort.py "$@"
