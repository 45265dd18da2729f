#!/bin/bash
# bench/smtp-inbound.sh - inbound SMTP to a Maildir, moonpost vs the ISPmail
# anchor (../shared/anchors: Postfix -> Dovecot LMTP -> Maildir, MariaDB
# lookups), side by side in one run, same machine, same database, same disk.
#
# What it measures
#   smtp-source, N=2000 messages with a 4 KiB body (about 4.3 KB on the
#   wire), 10 sessions, all to john@example.org, timed until every message
#   is a file in the Maildir (the anchor's tools/smtp_bench.py: it runs
#   smtp-source and polls MAILDIR/new until N new files exist; both sides use
#   the same command and the same poller):
#     - anchor: Postfix smtpd :12525 -> cleanup (queue file fsync) -> qmgr
#       -> lmtp -> Dovecot LMTP (SQL userdb, Sieve, quota) -> Maildir
#       $ANCHOR/vmail/example.org/john/Maildir
#     - moonpost: build/moonpostd, one "smtp" listener on a free loopback
#       port, workers = 2, smtp.delivery_threads default (16),
#       directory.backend = "mariadb" on the anchor's MariaDB (same database,
#       same users: the "switch over" story), cache defaults, Maildirs in
#       $WORK/vmail/%d/%n/Maildir (same file system as the anchor's), log
#       level "warn".
#   Printed for both: messages/s end to end, machine-wide CPU-ms per message
#   (/proc/stat, as the anchor tool computes it: includes the client, the
#   poller and anything else on the machine), the ratios against the targets
#   (moonpost >= 3x the anchor's msg/s, <= 1/5 of its CPU per message), and
#   the disk's own new-file fsync rate (anchors/tools/fsync_bench.py, one
#   writer) as the physical ceiling, plus the Maildir delivery syscalls
#   alone (create tmp/ + write + fdatasync, rename to new/, fsync new/) with
#   1 and SESS concurrent writers: one writer is not the ceiling for SESS
#   messages in flight, since concurrent syncs overlap. Breakdown: CPU of each server's process trees
#   (moonpostd; postfix, dovecot; mariadbd) and of the client (smtp-source +
#   poller), see bench/smtp_inbound.py.
#   Modes: one message per connection (plain), and smtp-source -d (many
#   messages per connection; KEEPALIVE=0 skips it).
#   ROUNDS rounds (default 3), anchor and moonpost alternating which goes
#   first; the table shows the median and the range. Before every run
#   john's Maildir is renamed away on both sides (see fresh_mailboxes), then
#   sync + 2 s pause, so every run starts from the same state: a new, empty
#   Maildir. The disk measurements run after the SMTP runs.
#
# How
#   The anchor's own scripts: setup.sh (wipes and rebuilds $ANCHOR, default
#   here /tmp/anchor-inbound so another benchmark's /tmp/anchor is left
#   alone), start.sh mariadb dovecot postfix (no rspamd), stop.sh on exit.
#   The anchor listens on fixed ports (12525, 12143, 13306, ...), so if
#   another anchor is up we wait for it (ANCHOR_WAIT seconds, default 1500)
#   instead of failing. On exit (also on error or Ctrl-C) the trap stops
#   moonpostd and the anchor and removes the work dir (KEEP=1 keeps it).
#
# Usage (root; needs build/ and the anchor's Debian packages):
#   make bench BENCH=smtp-inbound     # builds, installs packages, runs this
#   bench/smtp-inbound.sh             # after make all
# Knobs: N=2000 SESS=10 MSGLEN=4096 ROUNDS=3 KEEPALIVE=1 WORKERS=2
#        SMTP_TIMEOUT=300 ANCHOR=/tmp/anchor-inbound ANCHOR_WAIT=1500
#        ANCHORS=<repo>/../shared/anchors KEEP=1
#        QUIET_BUSY=15 QUIET_WAIT=60: before each run, wait (up to
#        QUIET_WAIT s) until the machine is at most QUIET_BUSY % busy over
#        1 s (other work on a 2-core box distorts both sides), else measure
#        anyway with a warning; the busy share is in the table.
#        SETTLE=60: seconds between the warm-up start and the first run.
#        PROFILE=1: one extra moonpost run (not in the table) under
#        `strace -c -f` of the workers, summary printed at the end.
# Output: the table on stdout; raw numbers in build/bench/smtp-inbound.json.
# Takes about 3-4 minutes (plus any wait for another anchor or a busy machine).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors}
MOONPOSTD=$ROOT/build/moonpostd
HELPER=$ROOT/bench/smtp_inbound.py
OUT_JSON=$ROOT/build/bench/smtp-inbound.json
N=${N:-2000}
SESS=${SESS:-10}
MSGLEN=${MSGLEN:-4096}
ROUNDS=${ROUNDS:-3}
KEEPALIVE=${KEEPALIVE:-1}
WORKERS=${WORKERS:-2}
SMTP_TIMEOUT=${SMTP_TIMEOUT:-300}
ANCHOR_WAIT=${ANCHOR_WAIT:-1500}
PROFILE=${PROFILE:-0}
SETTLE=${SETTLE:-60}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
export ANCHOR=${ANCHOR:-/tmp/anchor-inbound}

say() { printf '[smtp-inbound %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks --
[ "$(id -u)" = 0 ] || fail "run as root (the anchor starts MariaDB, Dovecot and Postfix as their users)"
[ -x "$MOONPOSTD" ] || fail "$MOONPOSTD is not built; run: make all (or make bench BENCH=smtp-inbound)"
for f in setup.sh start.sh stop.sh lib.sh tools/smtp_bench.py tools/fsync_bench.py; do
  [ -f "$ANCHORS/$f" ] || fail "anchor scripts not found: $ANCHORS/$f (set ANCHORS=)"
done
for c in python3 smtp-source mariadb mariadbd doveadm dovecot postfix postconf openssl ss; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] ||
    fail "$c is missing; install the packages with: tools/deps.sh test bench"
done
for v in N SESS MSGLEN ROUNDS WORKERS; do
  [ "${!v}" -ge 1 ] 2>/dev/null || fail "$v must be a positive number"
done

# The anchor's settings: ports, credentials, paths under $ANCHOR, pid_alive.
# shellcheck source=/dev/null
. "$ANCHORS/lib.sh"
BENCH_TOOL=$TOOLS/smtp_bench.py
ANCHOR_PORTS="$MYSQL_PORT $SMTP_PORT $SUBMISSION_PORT $IMAP_PORT $POP3_PORT"

# Another anchor (another benchmark, other $ANCHOR dir) holds the fixed
# ports: wait for it to finish rather than fight over them.
anchor_busy() {
  local p
  pgrep -f '/tmp/anchor(/| |$)' >/dev/null 2>&1 && return 0
  for p in $ANCHOR_PORTS; do
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && return 0
  done
  return 1
}
for pf in "$RUN/mysql/mysqld.pid" "$RUN/dovecot/master.pid" "$SPOOL/pid/master.pid"; do
  if pid_alive "$pf"; then
    say "our anchor ($ANCHOR) is still running from an earlier run: stopping it"
    "$ANCHORS/stop.sh" >/dev/null 2>&1 || true
    break
  fi
done
waited=0
while anchor_busy; do
  [ "$waited" -ge "$ANCHOR_WAIT" ] && fail "the anchor's ports ($ANCHOR_PORTS) stayed busy for ${ANCHOR_WAIT}s (another benchmark?)"
  [ $((waited % 60)) = 0 ] && say "another anchor is running (ports $ANCHOR_PORTS or /tmp/anchor); waiting (up to ${ANCHOR_WAIT}s)"
  sleep 10; waited=$((waited + 10))
done

WORK=$(mktemp -d /tmp/moonpost-inbound-XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results.jsonl
ANCHOR_UP=0
MPD_PID=

# shellcheck disable=SC2317  # stop_moonpostd and cleanup run from the EXIT trap
stop_moonpostd() {
  [ -n "$MPD_PID" ] || return 0
  kill -TERM "$MPD_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$MPD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$MPD_PID" 2>/dev/null && { say "moonpostd $MPD_PID did not stop, killing it"; kill -KILL "$MPD_PID"; }
  wait "$MPD_PID" 2>/dev/null
  MPD_PID=
}

# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  set +e
  stop_moonpostd
  if [ "$ANCHOR_UP" = 1 ]; then
    say "stopping the anchor"
    "$ANCHORS/stop.sh" >>"$WORK/anchor.log" 2>&1
  fi
  if [ "$rc" != 0 ] || [ "${KEEP:-0}" = 1 ]; then
    say "work dir kept: $WORK (config, logs, raw results)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ------------------------------------------------------------- anchor --
say "setting up the anchor in $ANCHOR (setup.sh), starting MariaDB, Dovecot, Postfix (no rspamd)"
ANCHOR_UP=1
"$ANCHORS/setup.sh" >>"$WORK/anchor.log" 2>&1 || { tail -20 "$WORK/anchor.log" >&2; fail "anchor setup.sh failed"; }
"$ANCHORS/start.sh" mariadb dovecot postfix >>"$WORK/anchor.log" 2>&1 || { tail -20 "$WORK/anchor.log" >&2; fail "anchor start.sh failed"; }

# ----------------------------------------------------------- moonpostd --
MPD_PORT=$(free_port)
MPD_VMAIL=$WORK/vmail
mkdir -p "$WORK/state" "$MPD_VMAIL"
cat >"$WORK/moonpost.conf" <<EOF
-- bench/smtp-inbound.sh: moonpost on the anchor's database, Maildirs on the same disk.
hostname = "mx.moonpost.bench"
user = ""
group = ""
workers = $WORKERS
state_dir = "$WORK/state"
shutdown_timeout = 5
log = { level = "warn" }
directory = {
  backend = "mariadb",
  mariadb = { host = "$ADDR", port = $MYSQL_PORT, user = "$DB_RO_USER", password = "$DB_RO_PASS", database = "$DB_NAME" },
  maildir = "$MPD_VMAIL/%d/%n/Maildir",
}
listen = {
  { address = "127.0.0.1", port = $MPD_PORT, protocol = "smtp", tls = "none" },
}
EOF
"$MOONPOSTD" -t -c "$WORK/moonpost.conf" >/dev/null || fail "moonpostd -t rejects $WORK/moonpost.conf"
"$MOONPOSTD" -c "$WORK/moonpost.conf" >"$WORK/moonpostd.log" 2>&1 </dev/null &
MPD_PID=$!
up=0
for _ in $(seq 1 100); do
  greeting=$( (exec 3<>"/dev/tcp/127.0.0.1/$MPD_PORT" && read -r -t 5 g <&3 && echo "$g") 2>/dev/null || true)
  [[ $greeting == 220* ]] && { up=1; break; }
  kill -0 "$MPD_PID" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || { tail -20 "$WORK/moonpostd.log" >&2; fail "moonpostd did not come up"; }
say "moonpostd $MPD_PID on 127.0.0.1:$MPD_PORT ($WORKERS workers)"

# ------------------------------------------------------------- helpers --
MYSQLD_PID=$(readpid "$RUN/mysql/mysqld.pid")
PF_PID=$(readpid "$SPOOL/pid/master.pid")
DV_PID=$(readpid "$RUN/dovecot/master.pid")
A_JOHN=$VMAIL/example.org/john/Maildir
A_JANE=$VMAIL/example.org/jane/Maildir
M_JOHN=$MPD_VMAIL/example.org/john/Maildir
M_JANE=$MPD_VMAIL/example.org/jane/Maildir

bench() { # SIDE LABEL ROUND RCPT MAILDIR [--keepalive]
  local side=$1 label=$2 rnd=$3 rcpt=$4 md=$5 host spec extra=()
  shift 5
  if [ "$side" = anchor ]; then
    host=$ADDR:$SMTP_PORT
    spec="postfix=$PF_PID,dovecot=$DV_PID,mariadbd=$MYSQLD_PID"
    extra=(--postfix-log "$LOG/postfix.log")
  else
    host=127.0.0.1:$MPD_PORT
    spec="moonpostd=$MPD_PID,mariadbd=$MYSQLD_PID"
  fi
  python3 "$HELPER" run "$RESULTS" "$side" "$label" "$rnd" "$spec" -- \
    python3 "$BENCH_TOOL" --host "$host" --rcpt "$rcpt" --maildir "$md" -n "$N" -s "$SESS" -l "$MSGLEN" \
      --timeout "$SMTP_TIMEOUT" --label "$side-$label-$rnd" "${extra[@]}" "$@"
}

# Every run starts from a fresh, empty Maildir for john on both sides: the
# previous run's Maildir is renamed away (Dovecot and moonpost create a
# missing Maildir on the next delivery). Nothing is deleted: this root file
# system is ext4 *without a journal* here, where new inodes skip the
# recently deleted ones (30 s), so deleting the last run's 2,000 files
# would slow the next run's creates; and a growing Maildir would make the
# poller's scans dearer run after run.
RUN_NO=0
fresh_mailboxes() {
  RUN_NO=$((RUN_NO + 1))
  [ -d "$A_JOHN" ] && mv "$A_JOHN" "$A_JOHN.run$RUN_NO"
  [ -d "$M_JOHN" ] && mv "$M_JOHN" "$M_JOHN.run$RUN_NO"
  sync
  sleep 2
}

# --------------------------------------------------------------- meta --
cat >>"$RESULTS" <<EOF
{"kind":"meta","date":"$(date -u +%FT%TZ)","host":"$(uname -srm)","cpus":$(nproc),"n":$N,"sessions":$SESS,"msglen":$MSGLEN,"rounds":$ROUNDS,"keepalive":$KEEPALIVE,"quiet_busy_pct":$QUIET_BUSY,"quiet_wait_s":$QUIET_WAIT,"moonpost_workers":$WORKERS,"anchor_dir":"$ANCHOR","moonpost_maildir":"$MPD_VMAIL","fs":"$(df -T "$WORK" | awk 'NR==2{print $1" "$2}') ($(findmnt -no OPTIONS -T "$WORK"))","moonpost_commit":"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo +dirty)","versions":{"postfix":"$(postconf -c "$PFCONF" -h mail_version 2>/dev/null)","dovecot":"$(dovecot --version 2>/dev/null | awk '{print $1}')","mariadb":"$(mariadbd --version 2>/dev/null | sed 's/^.*Ver //;s/ .*//')"},"loadavg_start":"$(cut -d' ' -f1-3 /proc/loadavg)"}
EOF

# ------------------------------------------------------------ the runs --
say "warm-up: 20 messages to jane on each side (not measured)"
WARM_T0=$(date +%s)
python3 "$BENCH_TOOL" --host "$ADDR:$SMTP_PORT" --rcpt jane@example.org --maildir "$A_JANE" -n 20 -s 2 -l "$MSGLEN" \
  --timeout 60 --label warmup >"$WORK/warmup-anchor.json" || { cat "$WORK/warmup-anchor.json" >&2; fail "anchor warm-up failed"; }
python3 "$BENCH_TOOL" --host "127.0.0.1:$MPD_PORT" --rcpt jane@example.org --maildir "$M_JANE" -n 20 -s 2 -l "$MSGLEN" \
  --timeout 60 --label warmup >"$WORK/warmup-moonpost.json" || { cat "$WORK/warmup-moonpost.json" >&2; tail -5 "$WORK/moonpostd.log" >&2; fail "moonpost warm-up failed"; }

# setup.sh has just deleted the previous anchor's files (and a previous
# run's cleanup its Maildirs); on a journal-less ext4 the inode allocator
# skips inodes deleted in the last minute, which made first runs slower.
settle=$(( SETTLE - ($(date +%s) - WARM_T0) ))
if [ "$settle" -gt 0 ]; then
  say "letting the file system settle for ${settle}s (SETTLE=$SETTLE)"
  sleep "$settle"
fi

modes=(plain)
[ "$KEEPALIVE" = 1 ] && modes+=(keepalive)
summary() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("%s msg/s, %s CPU-ms/msg machine, %s server, %s client; machine %s%% busy just before" % (r.get("delivered_per_s"), r.get("machine_cpu_ms_per_msg"), r.get("server_cpu_ms_per_msg"), r.get("client_cpu_ms_per_msg"), r.get("idle_check_busy_pct")))'; }
for rnd in $(seq 1 "$ROUNDS"); do
  order=(anchor moonpost)
  [ $((rnd % 2)) = 0 ] && order=(moonpost anchor)
  for mode in "${modes[@]}"; do
    for side in "${order[@]}"; do
      fresh_mailboxes
      flag=(); [ "$mode" = keepalive ] && flag=(--keepalive)
      md=$A_JOHN; [ "$side" = moonpost ] && md=$M_JOHN
      if ! busy=$(python3 "$HELPER" quiet "$QUIET_BUSY" "$QUIET_WAIT"); then
        say "  warning: the machine is still ${busy}% busy after ${QUIET_WAIT}s of waiting; measuring anyway"
      fi
      say "round $rnd/$ROUNDS, $mode: $side, $N x $MSGLEN B, $SESS sessions"
      if line=$(bench "$side" "$mode" "$rnd" john@example.org "$md" "${flag[@]}"); then
        say "  $(summary <<<"$line")"
      else
        say "  INCOMPLETE: $line"
      fi
    done
  done
done

# ------------------------------------------------ optional: strace -c --
if [ "$PROFILE" = 1 ]; then
  say "profile: one extra moonpost run under strace -c -f (not in the table)"
  fresh_mailboxes
  wpids=$(pgrep -P "$MPD_PID" | tr '\n' ' ')
  args=(); for p in $wpids; do args+=(-p "$p"); done
  strace -c -f -o "$WORK/strace.txt" "${args[@]}" &
  spid=$!
  sleep 1
  python3 "$BENCH_TOOL" --host "127.0.0.1:$MPD_PORT" --rcpt john@example.org --maildir "$M_JOHN" -n "$N" -s "$SESS" \
    -l "$MSGLEN" --timeout "$SMTP_TIMEOUT" --label profile >"$WORK/profile.json" || true
  kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
fi

# After the SMTP runs, so the thousands of files it creates and deletes do
# not touch them (see fresh_mailboxes). fsync_bench.py is one writer; the
# Maildir pattern (create tmp/ + write + fdatasync, rename to new/, fsync
# new/) is also timed with 1 and SESS concurrent writers, the most a server
# doing exactly that could reach on this disk with SESS messages in flight.
say "disk: new-file fsync rate (anchors/tools/fsync_bench.py, 3 rounds of 2 s)"
fs=$(python3 "$TOOLS/fsync_bench.py" "$WORK/fsync-test" 2 3) || fail "fsync_bench.py failed"
echo "{\"kind\":\"fsync\",${fs#\{}" >>"$RESULTS"
for t in 1 "$SESS"; do
  say "disk: the Maildir delivery syscalls alone, $t writer(s), 3 s (no SMTP)"
  c=$(python3 "$HELPER" maildir-ceiling "$WORK/ceiling-$t" "$t" 3) || fail "maildir-ceiling failed"
  echo "{\"kind\":\"ceiling\",${c#\{}" >>"$RESULTS"
done

# -------------------------------------------------------------- report --
echo "{\"kind\":\"meta\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RESULTS"
echo
rc=0
python3 "$HELPER" report "$RESULTS" "$OUT_JSON" || rc=$?
if [ "$PROFILE" = 1 ] && [ -s "$WORK/strace.txt" ]; then
  echo
  echo "moonpostd workers, strace -c -f during one extra run of $N messages (under strace, so slower):"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %s msg/s delivered, %s CPU-ms/msg (machine)" % (r.get("delivered_per_s"), r.get("machine_cpu_ms_per_msg")))' "$WORK/profile.json" || true
  head -25 "$WORK/strace.txt"
fi
exit "$rc"
