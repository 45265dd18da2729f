#!/bin/bash
# bench/dir-lookup.sh - the directory and authentication, moonpost vs the
# ISPmail anchor (../shared/anchors: Postfix + Dovecot + MariaDB), one run,
# same machine, same database.
#
# What it measures
#  1. Directory lookups/s: dir_resolve() of a fixed mix of 5,000 addresses,
#     1,000 of each class: existing user, alias, catch-all hit, unknown user,
#     user+tag subaddress. Backends: the anchor's MariaDB (the ISPmail schema
#     and queries, over TCP as user mailserver, exactly like Postfix/Dovecot)
#     and a directory file holding the same rows (exported from that
#     database). Cache cold (cache_ttl = negative_ttl = 0: every primitive
#     lookup goes to the backend) and warm (TTLs 3600, working set cached by a
#     checking pass first). 1 thread and N threads, N = number of cores
#     (nproc; override with THREADS=). Also the MariaDB SELECTs one lookup of
#     each class costs (Com_select, counted).
#  2. Password verifications/s per scheme (BLF-CRYPT cost 5 as ISPmail,
#     SHA512-CRYPT, ARGON2ID with our default m=64MiB t=3 p=1, SSHA512):
#     passwd_verify() in 1 and N pthreads.
#     1 and 2 run in-process (bench/dir_bench.c, linked to libmoonpost.a):
#     ROUNDS rounds, 1 and N threads alternating, median round reported.
#  3. Logins/s against the running servers, same Python client for both
#     sides (bench/dir-lookup.py logins: raw sockets, one login per
#     connection, sequential and CONC concurrent clients, median of
#     LOGIN_ROUNDS rounds, anchor and moonpost runs interleaved):
#       - anchor Dovecot IMAP: connect, LOGIN, LOGOUT (127.0.0.1:12143)
#         vs moonpost submission: connect, EHLO, AUTH PLAIN, QUIT, plaintext
#       - anchor Postfix submission (127.0.0.1:12587; STARTTLS required,
#         SASL through Dovecot's auth socket) vs moonpost submission with
#         STARTTLS; both use the anchor's certificate (RSA 2048)
#       - moonpost again with cache_ttl = 60 (its default)
#     moonpostd: directory.backend = "mariadb" on the anchor's database,
#     cache_ttl = 0 for the cold rows; users john@ and jane@example.org,
#     password "secret" (BLF-CRYPT cost 5 hashes written by doveadm).
#
# How
#   The anchor's setup.sh wipes and rebuilds $ANCHOR (/tmp/anchor), leaving
#   MariaDB running; we add 10 domains, 1,000 users, 500 aliases and 5
#   catch-alls as root through its socket (lib.sh's mysql_root), then
#   start.sh dovecot postfix for part 3 only. Everything listens on
#   127.0.0.1. On exit (also on error or Ctrl-C) the trap stops our
#   moonpostd instances and the anchor (stop.sh) and removes the work dir;
#   /tmp/anchor's data stays, as the anchor's own bench.sh leaves it.
#   Refuses to start if an anchor is already running (someone else's run).
#
# Usage (root; needs build/ and the anchor's Debian packages):
#   make bench BENCH=dir-lookup        # builds, installs packages, runs this
#   bench/dir-lookup.sh                # after make build-all
# Knobs (environment): THREADS (nproc) ROUNDS=3 LOOKUP_SECONDS=2
#   PASSWD_SECONDS=2 LOGIN_ROUNDS=3 LOGIN_SECONDS=3 CONC=8
#   ANCHORS=<repo>/../shared/anchors KEEP=1 (keep the work dir: configs,
#   logs, raw JSON lines).
# Output: the tables on stdout, progress on stderr, raw numbers in
# build/bench/dir-lookup.json. Takes about 4 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$(cd "$ROOT/.." && pwd)/shared/anchors}
DIR_BENCH=$ROOT/build/bench/dir_bench
MOONPOSTD=$ROOT/build/moonpostd
MOONPOST=$ROOT/build/moonpost
HELPER=$ROOT/bench/dir-lookup.py
OUT_JSON=$ROOT/build/bench/dir-lookup.json
THREADS=${THREADS:-$(nproc)}
LOOKUP_SECONDS=${LOOKUP_SECONDS:-2}
PASSWD_SECONDS=${PASSWD_SECONDS:-2}
ROUNDS=${ROUNDS:-3}
LOGIN_SECONDS=${LOGIN_SECONDS:-3}
LOGIN_ROUNDS=${LOGIN_ROUNDS:-3}
CONC=${CONC:-8}
SCHEMES="BLF-CRYPT SHA512-CRYPT ARGON2ID SSHA512"

say() { printf '[dir-lookup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks --
[ "$(id -u)" = 0 ] || fail "run as root (the anchor starts MariaDB, Dovecot and Postfix as their users)"
for f in "$DIR_BENCH" "$MOONPOSTD" "$MOONPOST"; do
  [ -x "$f" ] || fail "$f is not built; run: make build-all (or make bench BENCH=dir-lookup)"
done
[ "$DIR_BENCH" -nt "$ROOT/bench/dir_bench.c" ] || say "warning: $DIR_BENCH is older than bench/dir_bench.c (make build-all)"
for f in setup.sh start.sh stop.sh lib.sh; do
  [ -f "$ANCHORS/$f" ] || fail "anchor scripts not found: $ANCHORS/$f (set ANCHORS=)"
done
for c in python3 mariadb mariadbd doveadm dovecot postfix openssl; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] ||
    fail "$c is missing; install the packages with: tools/deps.sh test bench"
done
[ "$THREADS" -ge 1 ] 2>/dev/null || fail "THREADS must be a positive number"

# The anchor's settings: $ANCHOR, ports, credentials, mysql_root, pid_alive.
# shellcheck source=/dev/null
. "$ANCHORS/lib.sh"
for pf in "$RUN/mysql/mysqld.pid" "$RUN/dovecot/master.pid" "$SPOOL/pid/master.pid"; do
  if pid_alive "$pf"; then
    fail "an anchor is already running ($pf) - another benchmark? Stop it with $ANCHORS/stop.sh first"
  fi
done
# An anchor under another $ANCHOR uses the same fixed ports.
for port in "$MYSQL_PORT" "$IMAP_PORT" "$POP3_PORT" "$SMTP_PORT" "$SUBMISSION_PORT"; do
  if (exec 3<>"/dev/tcp/$ADDR/$port") 2>/dev/null; then
    fail "$ADDR:$port is in use - another anchor or benchmark running? (ss -ltnp 'sport = :$port')"
  fi
done

WORK=$(mktemp -d /tmp/moonpost-dirbench-XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results.jsonl
ANCHOR_UP=0
MPD_PIDS=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${MPD_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${MPD_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { say "moonpostd $pid did not stop, killing it"; kill -KILL "$pid"; }
    wait "$pid" 2>/dev/null
  done
  if [ "$ANCHOR_UP" = 1 ]; then
    say "stopping the anchor"
    "$ANCHORS/stop.sh" >>"$WORK/anchor.log" 2>&1
  fi
  if [ "$rc" != 0 ] || [ "${KEEP:-0}" = 1 ]; then
    say "work dir kept: $WORK (configs, logs, raw results)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

meta() { echo "$1" >>"$RESULTS"; }
selects() { mysql_root -N -B -e "SHOW GLOBAL STATUS LIKE 'Com_select'" | cut -f2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ----------------------------------------------------- anchor + its data --
say "setting up the anchor in $ANCHOR (setup.sh: wipe, MariaDB + ISPmail schema + test data)"
ANCHOR_UP=1
"$ANCHORS/setup.sh" >>"$WORK/anchor.log" 2>&1 || { tail -20 "$WORK/anchor.log" >&2; fail "anchor setup.sh failed"; }

say "adding the benchmark rows (10 domains, 1000 users, 505 aliases) and the address mix"
hash=$(echo secret | "$MOONPOST" pw hash -s BLF-CRYPT) || fail "moonpost pw hash failed"
python3 "$HELPER" gen-data "$WORK" "$hash"
mysql_root "$DB_NAME" <"$WORK/extra.sql" || fail "loading $WORK/extra.sql failed"
read -r n_dom n_user n_alias < <(mysql_root -N -B "$DB_NAME" -e \
  "SELECT (SELECT COUNT(*) FROM virtual_domains), (SELECT COUNT(*) FROM virtual_users), (SELECT COUNT(*) FROM virtual_aliases)")
say "database now: $n_dom domains, $n_user users, $n_alias alias rows"

# The file backend gets the same rows, straight from the database.
mysql_root -N -B "$DB_NAME" >"$WORK/directory" -e "
  SELECT CONCAT('domain ', name) FROM virtual_domains ORDER BY id;
  SELECT CONCAT('user ', email, ' ', password, IF(quota > 0, CONCAT(' quota=', quota), ''))
    FROM virtual_users ORDER BY id;
  SELECT CONCAT('alias ', source, ' ', GROUP_CONCAT(destination ORDER BY id SEPARATOR ','))
    FROM virtual_aliases GROUP BY source ORDER BY MIN(id);"

mariadb_conf="mariadb = { host = \"$ADDR\", port = $MYSQL_PORT, user = \"$DB_RO_USER\", password = \"$DB_RO_PASS\", database = \"$DB_NAME\", pool = $(( THREADS > 4 ? THREADS : 4 )) }"
mkdir -p "$WORK/state" "$WORK/vmail"
for backend in file mariadb; do
  for cache in cold warm; do
    ttl=0; [ "$cache" = warm ] && ttl=3600
    cat >"$WORK/dir-$backend-$cache.conf" <<EOF
-- dir_bench only opens the directory; the listener is never bound.
user = ""
group = ""
state_dir = "$WORK/state"
listen = { { address = "127.0.0.1", port = 1, protocol = "submission", tls = "none" } }
directory = {
  backend = "$backend",
  file = "$WORK/directory",
  $mariadb_conf,
  cache_ttl = $ttl, negative_ttl = $ttl,
  maildir = "$WORK/vmail/%d/%n/Maildir",
}
EOF
  done
done

# shellcheck disable=SC2086  # $SCHEMES is a word list
meta "{\"kind\":\"meta\",\"date\":\"$(date -u +%FT%TZ)\",\"host\":\"$(hostname)\",\"cores\":$(nproc),\"threads_n\":$THREADS,\
\"lookup_seconds\":$LOOKUP_SECONDS,\"rounds\":$ROUNDS,\"passwd_seconds\":$PASSWD_SECONDS,\"login_seconds\":$LOGIN_SECONDS,\
\"login_rounds\":$LOGIN_ROUNDS,\"concurrency\":$CONC,\"domains\":$n_dom,\"users\":$n_user,\"alias_rows\":$n_alias,\
\"moonpost_commit\":\"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo +dirty)\",\
\"versions\":{\"mariadb\":\"$(mariadbd --version 2>/dev/null | awk '{print $3}')\",\"dovecot\":\"$(dovecot --version 2>/dev/null | awk '{print $1}')\",\
\"postfix\":\"$(postconf -c "$PFCONF" -h mail_version 2>/dev/null)\"},\"schemes\":[$(printf '"%s",' $SCHEMES | sed 's/,$//')]}"

# -------------------------------------------------- 1. directory lookups --
# tag LABEL: appends "label" to each JSON line of stdin (dir_bench output).
tag() { while read -r l; do echo "${l%\}}, \"label\":\"$1\"}"; done; }
TCOUNTS=1; [ "$THREADS" != 1 ] && TCOUNTS="1,$THREADS"

say "1. lookups: SELECTs per lookup, by class (MariaDB, cache off)"
for cls in user alias catchall unknown subaddr; do
  before=$(selects)
  line=$("$DIR_BENCH" resolve "$WORK/dir-mariadb-cold.conf" "$WORK/addresses.txt" 1 0 1 "$cls") ||
    fail "dir_bench resolve (count, $cls) failed"
  after=$(selects)
  echo "${line%\}}, \"label\":\"count\", \"selects\":$(( after - before ))}" >>"$RESULTS"
done
for backend in file mariadb; do
  for cache in cold warm; do
    say "1. lookups: $backend, cache $cache, threads $TCOUNTS, $ROUNDS rounds of ${LOOKUP_SECONDS}s"
    "$DIR_BENCH" resolve "$WORK/dir-$backend-$cache.conf" "$WORK/addresses.txt" "$TCOUNTS" \
      "$LOOKUP_SECONDS" "$ROUNDS" >"$WORK/out.jsonl" || fail "dir_bench resolve ($backend, $cache) failed"
    tag "lookup $backend $cache" <"$WORK/out.jsonl" >>"$RESULTS"
  done
done

# --------------------------------------------------------- 2. passwords --
for scheme in $SCHEMES; do
  say "2. passwords: $scheme, threads $TCOUNTS, $ROUNDS rounds of ${PASSWD_SECONDS}s"
  "$DIR_BENCH" passwd "$scheme" "$TCOUNTS" "$PASSWD_SECONDS" "$ROUNDS" >>"$RESULTS" ||
    fail "dir_bench passwd $scheme failed"
done

# ------------------------------------------------------------ 3. logins --
say "3. logins: starting the anchor's Dovecot and Postfix"
"$ANCHORS/start.sh" dovecot postfix >>"$WORK/anchor.log" 2>&1 || { tail -20 "$WORK/anchor.log" >&2; fail "anchor start.sh failed"; }

# start_moonpostd NAME CACHE_TTL LISTENERS: starts build/moonpostd on the
# anchor's database and waits for its first listener to greet.
start_moonpostd() {
  local name=$1 ttl=$2 listeners=$3 port greeting
  cat >"$WORK/$name.conf" <<EOF
hostname = "mx.moonpost.bench"
user = ""
group = ""
workers = 0            -- one per core
state_dir = "$WORK/state"
shutdown_timeout = 5
log = { level = "info" }
-- The anchor's own certificate, so both sides do the same TLS work.
tls = { cert = "$ANCHOR/tls/cert.pem", key = "$ANCHOR/tls/key.pem" }
directory = {
  backend = "mariadb",
  mariadb = { host = "$ADDR", port = $MYSQL_PORT, user = "$DB_RO_USER", password = "$DB_RO_PASS", database = "$DB_NAME" },
  cache_ttl = $ttl, negative_ttl = $ttl,
  maildir = "$WORK/vmail/%d/%n/Maildir",
}
listen = {
$listeners}
EOF
  "$MOONPOSTD" -t -c "$WORK/$name.conf" >/dev/null || fail "moonpostd -t rejects $WORK/$name.conf"
  "$MOONPOSTD" -c "$WORK/$name.conf" >"$WORK/$name.log" 2>&1 </dev/null &
  MPD_PIDS+=($!)
  port=$(grep -o 'port = [0-9]*' <<<"$listeners" | head -1 | cut -d' ' -f3)
  for _ in $(seq 1 100); do
    greeting=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && read -r -t 5 g <&3 && echo "$g") 2>/dev/null || true)
    [[ $greeting == 220* ]] && return 0
    kill -0 "${MPD_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK/$name.log" >&2
  fail "moonpostd ($name) did not come up"
}

P_PLAIN=$(free_port); P_TLS=$(free_port); P_WARM=$(free_port)
start_moonpostd mpd-cold 0 "\
  { address = \"127.0.0.1\", port = $P_PLAIN, protocol = \"submission\", tls = \"none\", plaintext_auth = true },
  { address = \"127.0.0.1\", port = $P_TLS, protocol = \"submission\", tls = \"starttls\" },
"
start_moonpostd mpd-warm 60 "\
  { address = \"127.0.0.1\", port = $P_WARM, protocol = \"submission\", tls = \"none\", plaintext_auth = true },
"

USERS="john@example.org:$MAIL_PASS jane@example.org:$MAIL_PASS"
login() { # LABEL PROTO PORT CONCURRENCY
  say "3. logins: $1, $4 client(s), ${LOGIN_SECONDS}s"
  # shellcheck disable=SC2086
  python3 "$HELPER" logins "$2" "$3" "$LOGIN_SECONDS" "$4" "$1" $USERS >>"$RESULTS" ||
    fail "login benchmark $1 failed"
}
for round in $(seq 1 "$LOGIN_ROUNDS"); do
  say "3. logins: round $round of $LOGIN_ROUNDS"
  for c in 1 "$CONC"; do
    login anchor-dovecot-imap imap "$IMAP_PORT" "$c"
    login moonpost-smtp-cold smtp "$P_PLAIN" "$c"
    login anchor-postfix-submission smtp-starttls "$SUBMISSION_PORT" "$c"
    login moonpost-starttls-cold smtp-starttls "$P_TLS" "$c"
    login moonpost-smtp-warm smtp "$P_WARM" "$c"
  done
done

# ------------------------------------------------------------- report --
mkdir -p "$(dirname "$OUT_JSON")"
echo
python3 "$HELPER" report "$RESULTS" "$OUT_JSON"
