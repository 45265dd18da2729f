#!/bin/bash
# bench/smtp-rules.sh - SMTP throughput end to end with spam rules: moonpost
# with its default rules, the same moonpost with no rules, and the ISPmail
# anchor with rspamd (Postfix -> rspamd milter -> Dovecot LMTP), one run,
# same machine, same database, same disk, same message.
#
# What it measures
#   smtp-source -F MSG (the same ~10 KB multipart/alternative message for
#   every side: text/plain + quoted-printable HTML with links, words from
#   the corpus' easy-ham-1, written by smtp_rules.py message), N=2000
#   messages, 10 sessions, one message per connection, to john@example.org,
#   timed until every message is a file in the Maildir: the anchor's own
#   driver (tools/smtp_bench.py: smtp-source + Maildir poller; it counts
#   .Junk too), run through bench/smtp_inbound.py run (CPU per process
#   tree). smtp_bench.py has no -F, so a shim smtp-source first in PATH adds
#   "-F MSG" (with -F, smtp-source sends the file instead of -l bytes).
#     - anchor: setup.sh, start.sh mariadb dovecot postfix rspamd (stock
#       rspamd config, DNS to the NXDOMAIN stub, as the anchor's bench.sh
#       WITH_RSPAMD=1), smtpd_milters = the rspamd milter, postfix reload.
#     - moonpost "rules": build/moonpostd, workers = WORKERS, on the anchor's
#       MariaDB, lua = { rules_dir = rules/, policies_dir = policies/ }
#       (the shipped set: every message scanned, X-Spam-* headers added,
#       deliver-junk policy).
#     - moonpost "norules": the same with an empty rules dir (policies kept).
#   ROUNDS rounds (default 3), the order of the three sides rotating; the
#   table shows the median and the range. Every run starts with john's
#   Maildir renamed away on each side (see smtp-inbound.sh, fresh_mailboxes).
#   Targets: rules on >= 80 % of rules off; rules on >= 5x the anchor.
#
# Usage (root; needs build/ and the anchor's Debian packages):
#   make bench BENCH=smtp-rules
#   bench/smtp-rules.sh               # after make all
# Knobs: N=2000 SESS=10 ROUNDS=3 WORKERS=2 MSG_BYTES=10240 SMTP_TIMEOUT=300
#        ANCHOR=/tmp/anchor-smtprules ANCHOR_WAIT=1500 ANCHORS=<repo>/../shared/anchors
#        QUIET_BUSY=15 QUIET_WAIT=60 SETTLE=30 KEEP=1
# Output: the table on stdout; raw numbers in build/bench/smtp-rules.json.
# Takes about 5 minutes (plus any wait for another anchor).
set -euo pipefail

NAME=smtp-rules
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors}
export ANCHOR=${ANCHOR:-/tmp/anchor-smtprules}
MOONPOSTD=$ROOT/build/moonpostd
HELPER=$ROOT/bench/smtp_rules.py
INBOUND=$ROOT/bench/smtp_inbound.py
OUT_JSON=$ROOT/build/bench/smtp-rules.json
N=${N:-2000}
SESS=${SESS:-10}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
MSG_BYTES=${MSG_BYTES:-10240}
SMTP_TIMEOUT=${SMTP_TIMEOUT:-300}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
SETTLE=${SETTLE:-30}

# shellcheck source=bench/lib_anchor.bash
. "$ROOT/bench/lib_anchor.bash"
BENCH_TOOL=$TOOLS/smtp_bench.py

[ "$(id -u)" = 0 ] || fail "run as root (the anchor starts MariaDB, Dovecot, Postfix, redis and rspamd as their users)"
[ -x "$MOONPOSTD" ] || fail "$MOONPOSTD is not built; run: make all (or make bench BENCH=$NAME)"
[ -f "$BENCH_TOOL" ] || fail "anchor tool missing: $BENCH_TOOL"
for c in python3 smtp-source mariadb mariadbd dovecot postfix postconf rspamd redis-server curl ss; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] ||
    fail "$c is missing; install the packages with: tools/deps.sh test bench"
done
for v in N SESS ROUNDS WORKERS MSG_BYTES; do
  [ "${!v}" -ge 1 ] 2>/dev/null || fail "$v must be a positive number"
done

anchor_wait_free

WORK=$(mktemp -d /tmp/moonpost-smtprules-XXXXXX)
chmod 755 "$WORK"
ANCHOR_LOG=$WORK/anchor.log
RESULTS=$WORK/results.jsonl
declare -A MPD_PID=() MPD_PORT=()

# shellcheck disable=SC2317  # run from the EXIT trap
stop_moonpostd() { # SIDE
  local pid=${MPD_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { say "moonpostd $pid did not stop, killing it"; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null
  MPD_PID[$1]=
}

# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  set +e
  stop_moonpostd rules
  stop_moonpostd norules
  anchor_stop
  if { [ "$rc" != 0 ] && [ "$rc" != 1 ]; } || [ "${KEEP:-0}" = 1 ]; then
    say "work dir kept: $WORK (configs, logs, raw results)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------ message --
ensure_corpus
MSG=$WORK/message.eml
msg_size=$(python3 "$HELPER" message "$ROOT" "$MSG" "$MSG_BYTES") || fail "could not write the test message"
chmod 644 "$MSG"
say "test message: $msg_size bytes, multipart/alternative (text + quoted-printable HTML)"
mkdir -p "$WORK/shim"
cat >"$WORK/shim/smtp-source" <<EOF
#!/bin/bash
# bench/smtp-rules.sh: the anchor's smtp_bench.py, sending $MSG
# (-F instead of the -l LENGTH smtp_bench.py always passes: smtp-source
# refuses both)
args=()
while [ \$# -gt 0 ]; do
  if [ "\$1" = -l ]; then shift 2; continue; fi
  args+=("\$1"); shift
done
exec /usr/sbin/smtp-source -F "$MSG" "\${args[@]}"
EOF
chmod 755 "$WORK/shim/smtp-source"

# ------------------------------------------------------------- anchor --
say "setting up the anchor in $ANCHOR; starting MariaDB, Dovecot, Postfix, rspamd (+ redis, DNS stub)"
anchor_setup
"$ANCHORS/start.sh" mariadb dovecot postfix >>"$ANCHOR_LOG" 2>&1 || { tail -20 "$ANCHOR_LOG" >&2; fail "anchor start.sh failed"; }
anchor_start_rspamd
postconf -c "$PFCONF" -e "smtpd_milters = inet:$ADDR:$RSPAMD_MILTER_PORT" "non_smtpd_milters = inet:$ADDR:$RSPAMD_MILTER_PORT"
postfix -c "$PFCONF" reload >>"$ANCHOR_LOG" 2>&1 || fail "postfix reload failed"

# ----------------------------------------------------------- moonpostd --
mkdir -p "$WORK/norules"
start_moonpostd() { # SIDE RULES_DIR
  local side=$1 rules=$2 port dir=$WORK/$1
  port=$(free_port)
  mkdir -p "$dir/state" "$dir/vmail"
  cat >"$dir/moonpost.conf" <<EOF
-- bench/smtp-rules.sh ($side): moonpost on the anchor's database.
hostname = "mx.moonpost.bench"
user = ""
group = ""
workers = $WORKERS
state_dir = "$dir/state"
shutdown_timeout = 5
log = { level = "warn" }
directory = {
  backend = "mariadb",
  mariadb = { host = "$ADDR", port = $MYSQL_PORT, user = "$DB_RO_USER", password = "$DB_RO_PASS", database = "$DB_NAME" },
  maildir = "$dir/vmail/%d/%n/Maildir",
}
lua = { lib_dir = "$ROOT/lua", rules_dir = "$rules", policies_dir = "$ROOT/policies", watch = false }
listen = {
  { address = "127.0.0.1", port = $port, protocol = "smtp", tls = "none" },
}
EOF
  "$MOONPOSTD" -t -c "$dir/moonpost.conf" >/dev/null || fail "moonpostd -t rejects $dir/moonpost.conf"
  "$MOONPOSTD" -c "$dir/moonpost.conf" >"$dir/moonpostd.log" 2>&1 </dev/null &
  MPD_PID[$side]=$!
  MPD_PORT[$side]=$port
  local up=0 greeting
  for _ in $(seq 1 100); do
    greeting=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && read -r -t 5 g <&3 && echo "$g") 2>/dev/null || true)
    [[ $greeting == 220* ]] && { up=1; break; }
    kill -0 "${MPD_PID[$side]}" 2>/dev/null || break
    sleep 0.1
  done
  [ "$up" = 1 ] || { tail -20 "$dir/moonpostd.log" >&2; fail "moonpostd ($side) did not come up"; }
  say "moonpostd ($side) ${MPD_PID[$side]} on 127.0.0.1:$port, rules from $rules"
}
start_moonpostd rules "$ROOT/rules"
start_moonpostd norules "$WORK/norules"

MYSQLD_PID=$(readpid "$RUN/mysql/mysqld.pid")
PF_PID=$(readpid "$SPOOL/pid/master.pid")
DV_PID=$(readpid "$RUN/dovecot/master.pid")
RS_PID=$(readpid "$RUN/rspamd/rspamd.pid")
RD_PID=$(readpid "$RUN/redis/redis.pid")

maildir_of() { # SIDE USER
  if [ "$1" = anchor ]; then echo "$VMAIL/example.org/$2/Maildir"; else echo "$WORK/$1/vmail/example.org/$2/Maildir"; fi
}
host_of() {
  if [ "$1" = anchor ]; then echo "$ADDR:$SMTP_PORT"; else echo "127.0.0.1:${MPD_PORT[$1]}"; fi
}
spec_of() {
  if [ "$1" = anchor ]; then
    echo "postfix=$PF_PID,dovecot=$DV_PID,rspamd=$RS_PID,redis=$RD_PID,mariadbd=$MYSQLD_PID"
  else
    echo "moonpostd=${MPD_PID[$1]},mariadbd=$MYSQLD_PID"
  fi
}

bench_run() { # SIDE ROUND
  local side=$1 rnd=$2 extra=()
  [ "$side" = anchor ] && extra=(--postfix-log "$LOG/postfix.log")
  PATH="$WORK/shim:$PATH" python3 "$INBOUND" run "$RESULTS" "$side" smtp "$rnd" "$(spec_of "$side")" -- \
    python3 "$BENCH_TOOL" --host "$(host_of "$side")" --rcpt john@example.org --maildir "$(maildir_of "$side" john)" \
      -n "$N" -s "$SESS" --timeout "$SMTP_TIMEOUT" --label "$side-$rnd" "${extra[@]}"
}

RUN_NO=0
fresh_mailboxes() {
  local s md
  RUN_NO=$((RUN_NO + 1))
  for s in anchor rules norules; do
    md=$(maildir_of "$s" john)
    [ -d "$md" ] && mv "$md" "$md.run$RUN_NO"
  done
  sync
  sleep 2
}

cat >>"$RESULTS" <<EOF
{"kind":"meta","date":"$(date -u +%FT%TZ)","host":"$(uname -srm)","cpus":$(nproc),"n":$N,"sessions":$SESS,"rounds":$ROUNDS,"moonpost_workers":$WORKERS,"msg_bytes":$msg_size,"msg_desc":"multipart/alternative, text + QP HTML","anchor_dir":"$ANCHOR","moonpost_commit":"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src lua 2>/dev/null || echo +dirty)","rspamd":"$(rspamd --version 2>/dev/null | head -1)"}
EOF

# ------------------------------------------------------------ the runs --
say "warm-up: 20 messages to jane on each side (not measured)"
WARM_T0=$(date +%s)
for s in anchor rules norules; do
  PATH="$WORK/shim:$PATH" python3 "$BENCH_TOOL" --host "$(host_of "$s")" --rcpt jane@example.org \
    --maildir "$(maildir_of "$s" jane)" -n 20 -s 2 --timeout 60 --label warmup >"$WORK/warmup-$s.json" ||
    { cat "$WORK/warmup-$s.json" >&2; fail "$s warm-up failed"; }
done
md=$(maildir_of rules jane)
say "moonpost (rules) verdict on the test message: $(grep -h '^X-Spam-Status' "$md"/new/* "$md"/.Junk/new/* 2>/dev/null | sort | uniq -c | head -3 | tr -s ' ')"
md=$(maildir_of anchor jane)
say "anchor (rspamd) verdict on the test message: $(grep -h '^X-Spamd-Result\|^X-Spam-Status\|^X-Rspamd-Action' "$md"/new/* "$md"/.Junk/new/* 2>/dev/null | cut -c1-80 | sort | uniq -c | head -3 | tr -s ' ')"
settle=$(( SETTLE - ($(date +%s) - WARM_T0) ))
[ "$settle" -gt 0 ] && { say "letting the file system settle for ${settle}s"; sleep "$settle"; }

sides=(anchor rules norules)
for rnd in $(seq 1 "$ROUNDS"); do
  k=$(( (rnd - 1) % 3 ))
  order=("${sides[@]:$k}" "${sides[@]:0:$k}")
  for side in "${order[@]}"; do
    fresh_mailboxes
    if ! busy=$(python3 "$INBOUND" quiet "$QUIET_BUSY" "$QUIET_WAIT"); then
      say "  warning: the machine is still ${busy}% busy after ${QUIET_WAIT}s of waiting; measuring anyway"
    fi
    say "round $rnd/$ROUNDS: $side, $N x $msg_size B, $SESS sessions"
    if line=$(bench_run "$side" "$rnd"); then
      say "  $(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%s msg/s delivered, %s CPU-ms/msg machine" % (r.get("delivered_per_s"), r.get("machine_cpu_ms_per_msg")))' <<<"$line")"
    else
      say "  INCOMPLETE: $(head -c 400 <<<"$line")"
    fi
  done
done

# -------------------------------------------------------------- report --
for s in rules norules; do
  errs=$(grep -c 'lua_error' "$WORK/$s/moonpostd.log" 2>/dev/null || true)
  [ "${errs:-0}" = 0 ] || say "warning: moonpostd ($s) logged $errs lua_error lines (see $WORK/$s/moonpostd.log)"
done
echo
rc=0
python3 "$HELPER" report "$RESULTS" "$OUT_JSON" || rc=$?
exit "$rc"
