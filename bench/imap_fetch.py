#!/usr/bin/env python3
"""IMAP logins, select/headers/bodies/search timings and idle memory,
moonpost vs Dovecot: see imap-fetch.sh. Helpers: imap_bench_lib.py."""
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import imap_bench_lib as lib  # noqa: E402

N = int(os.environ.get("N", "10000"))
SIZE = int(os.environ.get("SIZE", "4096"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BODIES = min(N, int(os.environ.get("BODIES", "2000")))
CCLIENT = os.path.join(os.path.dirname(lib.mpd.binary()), "bench", "imap_client")
LOGINS = int(os.environ.get("LOGINS", "400"))
LOGIN_CLIENTS = int(os.environ.get("LOGIN_CLIENTS", "8"))
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "1000"))
IDLE_MSGS = int(os.environ.get("IDLE_MSGS", "20"))
IDLE_WARM = 8                   # warm-up idle sessions before "before"
IDLE_SETTLE = 2.0               # seconds between the last IDLE and "after"

failures = []


def fail(text):
    failures.append(text)
    print("FAIL: " + text, file=sys.stderr)


def message_ids(c, seqs):
    if not seqs:
        return set()
    r = c.cmd("FETCH %s (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" % ",".join(map(str, seqs)),
              keep=True)
    ids = set()
    for _, lits in r[3]:
        for lit in lits:
            ids.update(re.findall(rb"<[^>]+>", lit))
    return ids


def search(c, name, out, key):
    t = time.perf_counter()
    r = c.cmd('SEARCH TEXT "%s"' % lib.WORD, keep=True)
    out[key] = time.perf_counter() - t
    seqs = []
    for text, _ in r[3]:
        if text.startswith(b"* SEARCH"):
            seqs += [int(x) for x in text.split()[2:]]
    return seqs


def session(srv):
    """One session on the N-message INBOX: every timed phase but logins."""
    name, out = srv.name, {}
    c = lib.Client(srv.port)
    c.cmd("LOGIN %s %s" % (lib.USER, lib.PASSWORD))
    t = time.perf_counter()
    r = c.cmd("SELECT INBOX", keep=True)
    out["select"] = time.perf_counter() - t
    exists = [int(x.split()[1]) for x, _ in r[3] if x.endswith(b" EXISTS")]
    if exists != [N]:
        fail("%s: SELECT said EXISTS %s, not %d" % (name, exists, N))
    t = time.perf_counter()
    r = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
    out["headers"] = time.perf_counter() - t
    if r[2] != N:
        fail("%s: headers FETCH gave %d responses, not %d" % (name, r[2], N))
    t = time.perf_counter()
    r = c.cmd("FETCH 1:%d BODY.PEEK[]" % BODIES)
    out["bodies"] = time.perf_counter() - t
    out["bytes"] = r[1]
    if r[2] != BODIES:
        fail("%s: body FETCH gave %d responses, not %d" % (name, r[2], BODIES))
    s1 = search(c, name, out, "search")
    s2 = search(c, name, out, "search2")
    if s1 != s2:
        fail("%s: the two SEARCH TEXT answers differ: %s / %s" % (name, s1, s2))
    got, want = message_ids(c, s1), lib.expected_ids(N)
    out["found"] = len(s1)
    if got != want or len(s1) != len(want):
        fail("%s: SEARCH TEXT \"%s\" found %d messages, %d expected; missing %s, extra %s"
             % (name, lib.WORD, len(s1), len(want), sorted(want - got)[:10],
                sorted(got - want)[:10]))
    t = time.perf_counter()
    c.cmd("SELECT INBOX")
    out["reselect"] = time.perf_counter() - t
    c.cmd("LOGOUT")
    c.close()
    c_client(srv, out)
    return out


def c_client(srv, out):
    """The transfer-bound phases again with the C client (bench/imap_client.c):
    a Python client reading 40 MB of literals measures itself more than the
    server. A second session: headers now come from what the first one left
    (moonpost's folder cache, Dovecot's index cache). The bodies in a third
    session of their own, after an untimed FETCH of one body: the first
    FETCH of a session after the cached-headers one took Dovecot 0.6-1.1 s
    whatever it asked for (its index cache being updated), which is no
    measure of reading bodies; the warm-up's time is in the notes."""
    def run(cmds):
        r = subprocess.run([CCLIENT, str(srv.port), lib.USER, lib.PASSWORD, "INBOX"] + cmds,
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("%s: the C client failed: %s" % (srv.name, r.stderr.strip()))
        return [line.split() for line in r.stdout.splitlines()]
    got = run(["FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"])
    out["headers2"] = float(got[0][0])
    got = run(["FETCH 1 BODY.PEEK[]", "FETCH 1:%d BODY.PEEK[]" % BODIES, "FETCH 1:* BODY.PEEK[]"])
    out["warmup_c"], out["bodies_c"], out["bodies_all"] = (float(x[0]) for x in got)
    out["bytes_c"] = int(got[1][1])


def run_round(work, master, cls, r, h):
    root = os.path.join(work, "%s-%d" % (cls.name, r))
    shutil.copytree(master, os.path.join(root, "john", "Maildir"))
    srv = cls(root, [(lib.USER, h)])
    try:
        out = session(srv)
        lib.login_burst(srv.port, LOGIN_CLIENTS, LOGIN_CLIENTS)       # warm-up
        cpu = lib.cpu_seconds(srv.pids())
        out["logins"], out["login_p50"] = lib.login_burst(srv.port, LOGINS, LOGIN_CLIENTS)
        out["login_cpu"] = (lib.cpu_seconds(srv.pids()) - cpu) / LOGINS
        out["problems"] = srv.problems()
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


def run_idle(work, master, cls, h):
    """Fresh server; IDLE_CONNS users log in, SELECT and IDLE at once."""
    root = os.path.join(work, "idle-" + cls.name)
    users = [lib.idle_user(i) for i in range(IDLE_CONNS + IDLE_WARM)]
    lib.make_idle_maildirs(root, os.path.join(master), users, IDLE_MSGS)
    srv = cls(root, [(u, h) for u in users], conns_max=IDLE_CONNS + 100)
    out = {}
    try:
        lib.idle_close(lib.idle_open(srv.port, users[IDLE_CONNS:], clients=IDLE_WARM))
        time.sleep(1.0)
        before = lib.memory(srv.pids())
        t = time.perf_counter()
        conns = lib.idle_open(srv.port, users[:IDLE_CONNS])
        out["open_s"] = time.perf_counter() - t
        time.sleep(IDLE_SETTLE)
        after = lib.memory(srv.pids())
        out["alive"] = lib.idle_close(conns)
        out["pss"] = (after[0] - before[0]) / IDLE_CONNS
        out["rss"] = (after[1] - before[1]) / IDLE_CONNS
        out["procs"] = (before[2], after[2])
        out["before_pss"] = before[0]
        out["problems"] = srv.problems()
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
    if out["alive"] != IDLE_CONNS:
        fail("%s: only %d of %d idle connections answered DONE + LOGOUT"
             % (cls.name, out["alive"], IDLE_CONNS))
    return out


def med(res, name, key):
    return statistics.median(x[key] for x in res[name])


def show_problems(name, lines):
    if not lines:
        return
    kinds = {}
    for ln in lines:
        k = re.sub(r"\d+", "N", ln.split(": ", 1)[-1])[:110]
        kinds[k] = kinds.get(k, 0) + 1
    for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:4]:
        print("    %s log, %dx: %s" % (name, n, k))


def report(res, idle, h):
    dv = lib.version_of_dovecot()
    print("IMAP, moonpost vs Dovecot %s, same machine, one run (%d CPUs); medians of %d rounds"
          % (dv, os.cpu_count(), ROUNDS))
    print("%-40s %10s %10s %8s" % ("", "moonpost", "dovecot", "ratio"))
    m, d = med(res, "moonpost", "logins"), med(res, "dovecot", "logins")
    print("%-40s %10.0f %10.0f %7.2fx" % ("logins/s (%d clients, BLF-CRYPT cost 5)"
                                          % LOGIN_CLIENTS, m, d, m / d))
    rows = [("select", "select INBOX, %d msgs (s)" % N),
            ("headers", "FETCH 1:* UID FLAGS SIZE ENVELOPE (s)"),
            ("headers2", "  same, next session (cached) (s)"),
            ("bodies", "FETCH 1:%d BODY.PEEK[], Python (s)" % BODIES),
            ("bodies_c", "FETCH 1:%d BODY.PEEK[], C client (s)" % BODIES),
            ("bodies_all", "FETCH 1:* BODY.PEEK[], C client (s)"),
            ("search", "SEARCH TEXT, %d msgs, 1st (s)" % N),
            ("search2", "SEARCH TEXT, %d msgs, 2nd (s)" % N),
            ("reselect", "select INBOX again (s)")]
    for k, label in rows:
        m, d = med(res, "moonpost", k), med(res, "dovecot", k)
        print("%-40s %10.3f %10.3f %7.2fx" % (label, m, d, d / m if m else 0))
    for k, label in (("pss", "idle IDLE conn, KB each (Pss)"), ("rss", "idle IDLE conn, KB each (RSS sum)")):
        m, d = idle["moonpost"][k], idle["dovecot"][k]
        print("%-40s %10.1f %10.1f %7.2fx" % (label, m, d, d / m if m > 0 else 0))
    print("ratio: Dovecot time / moonpost time, i.e. >1 = moonpost faster (logins: moonpost/s over"
          " Dovecot/s;\n  memory: Dovecot KB over moonpost KB, >1 = moonpost smaller). Targets:"
          " >= 2x throughput, < 64 KB per idle connection.")
    print("notes:")
    print("  logins: %d x (connect, greeting, LOGIN, LOGOUT, close): one login per connection,"
          " %d client threads at once, after %d warm-up logins; same {BLF-CRYPT} $2y$05$ hash"
          " (%s) for both; plaintext LOGIN on loopback. p50 latency moonpost %.1f ms, Dovecot"
          " %.1f ms; server CPU per login (process tree, reaped children included) moonpost %.1f ms,"
          " Dovecot %.1f ms. Dovecot: passwd-file passdb, auth_cache_size = 0 (default: bcrypt on every"
          " login), imap-login + imap process forked per login. moonpost: file directory; it"
          " caches the user record (hash included) for cache_ttl = 60 s but runs bcrypt on"
          " every login (dir_authenticate -> passwd_verify), on its auth pool (4 threads)."
          % (LOGINS, LOGIN_CLIENTS, LOGIN_CLIENTS, "doveadm pw" if h.startswith("{BLF-CRYPT}$2y")
             else "python crypt", med(res, "moonpost", "login_p50") * 1000,
             med(res, "dovecot", "login_p50") * 1000, med(res, "moonpost", "login_cpu") * 1000,
             med(res, "dovecot", "login_cpu") * 1000))
    print("  select: SELECT INBOX alone (LOGIN before it, untimed) on a fresh copy: %d messages"
          " of ~%d bytes in new/ (LF, names with S= and W=), no uidlist or index: UIDs assigned,"
          " new/ -> cur/, Dovecot builds its index. reselect: SELECT again in the same session, a"
          " few seconds after the first: Dovecot re-reads the freshly changed cur/ then (a"
          " SELECT in a later session is far cheaper for it), so that ratio is high."
          % (N, SIZE))
    print("  headers: FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE) right after the first SELECT"
          " (what a client shows as the message list); both read every header.")
    print("  bodies: FETCH 1:%d BODY.PEEK[], the first %d of the folder, from the page cache;"
          " bytes on the wire moonpost %d, Dovecot %d. The C client rows (build/bench/imap_client,"
          " a session of their own after the Python one and the cached-headers one, after an"
          " untimed FETCH 1 BODY.PEEK[]: moonpost %.3f s, Dovecot %.3f s) read the same"
          " data at the cost of a memchr per line; 1:* is all %d messages." % (BODIES, BODIES,
          res["moonpost"][0]["bytes"], res["dovecot"][0]["bytes"], med(res, "moonpost", "warmup_c"),
          med(res, "dovecot", "warmup_c"), N))
    print("  search: SEARCH TEXT \"%s\" twice in the same session after the FETCHes; the word is"
          " in %d of %d messages (body, mixed case; %d in Subject only; a decoy prefix"
          " \"quokkafis\" in others); both answers checked against the planted Message-IDs:"
          " moonpost found %d, Dovecot %d. Dovecot has no FTS plugin here (the ISPmail setup)."
          % (lib.WORD, len(lib.expected_ids(N)), N,
             sum(1 for i in range(N) if lib.planted(i) == "subject"),
             res["moonpost"][0]["found"], res["dovecot"][0]["found"]))
    im, idv = idle["moonpost"], idle["dovecot"]
    print("  idle: fresh server; %d warm-up sessions, then %d users (each its own Maildir,"
          " INBOX of %d messages) connect, LOGIN, SELECT INBOX, IDLE, 16 at a time (%.1f s /"
          " %.1f s); %.0f s later the Pss/RSS of every server process is summed again; growth /"
          " %d. Processes before -> after: moonpost %d -> %d, Dovecot %d -> %d (one imap process"
          " per connection; imap_hibernate_timeout = 0, the default). Dovecot Pss before: %d kB,"
          " moonpost %d kB. All %d answered DONE + LOGOUT afterwards: moonpost %d, Dovecot %d."
          " Limits raised for both: moonpost smtp.connections_max/connections_per_ip = %d;"
          " Dovecot service imap process_limit = %d, default_client_limit = %d,"
          " mail_max_userip_connections = %d."
          % (IDLE_WARM, IDLE_CONNS, IDLE_MSGS, im["open_s"], idv["open_s"], IDLE_SETTLE,
             IDLE_CONNS, im["procs"][0], im["procs"][1], idv["procs"][0], idv["procs"][1],
             idv["before_pss"], im["before_pss"], IDLE_CONNS, im["alive"], idv["alive"],
             IDLE_CONNS + 100, IDLE_CONNS + 100, 2 * (IDLE_CONNS + 100), IDLE_CONNS + 100))
    print("  both: moonpost %s (workers = 2), Dovecot private instance (t/lib/dovecot.py),"
          " defaults otherwise (mail_fsync = optimized); rounds alternate which server goes"
          " first; the client (Python) shares the CPUs." % os.path.relpath(lib.mpd.binary()))
    if os.environ.get("VERBOSE") == "1":
        for name in ("moonpost", "dovecot"):
            for k in ("logins", "login_cpu", "select", "headers", "headers2", "bodies", "bodies_c",
                      "bodies_all", "search", "search2", "reselect"):
                print("    %s %s per round: %s" % (name, k, " ".join("%.4g" % x[k] for x in res[name])))
    for name in ("moonpost", "dovecot"):
        lines = [p for x in res[name] for p in x["problems"]] + idle[name]["problems"]
        show_problems(name, lines)


def main():
    if not lib.dvlib.available("imap"):
        sys.exit("dovecot-imapd is not installed")
    if not os.access(lib.mpd.binary(), os.X_OK):
        sys.exit("%s is missing: run make" % lib.mpd.binary())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * IDLE_CONNS + 1024
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want) if hard > 0 else want, hard))
    h = lib.bcrypt_hash()
    work = tempfile.mkdtemp(prefix="imapbench-", dir="/tmp")
    os.chmod(work, 0o755)
    master = os.path.join(work, "master")
    lib.make_maildir(master, N, SIZE)
    res = {"moonpost": [], "dovecot": []}
    idle = {}
    try:
        for r in range(ROUNDS):
            order = [lib.Moonpost, lib.Dovecot]
            if r % 2:
                order.reverse()
            for cls in order:
                res[cls.name].append(run_round(work, master, cls, r, h))
        for cls in (lib.Moonpost, lib.Dovecot):
            idle[cls.name] = run_idle(work, master, cls, h)
    finally:
        if os.environ.get("KEEP") == "1":
            print("kept " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(res, idle, h)
    if failures:
        print("FAILED checks (%d):" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)


main()
