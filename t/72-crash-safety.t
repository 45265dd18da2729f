#!/usr/bin/env python3
# Crash safety of delivery: Postfix's smtp-source sends 2,000 messages over 10
# sessions (one message per connection) while the test SIGKILLs a worker
# 8 times, then 1,000 more with `smtp-source -d` (many messages per
# connection) and 4 more kills.  Three small clients of our own run alongside
# with a unique Message-ID per message.
#
# Accounting: smtp-source -v prints every server reply, so "250 2.0.0 Ok:
# queued as QID" names each acknowledged message, and our Received header
# carries the same QID into the Maildir file.  Asserted: every message that
# got a 250 is in new/ exactly once; no message is there twice (acked or
# not); every file in new/ is complete (S=/W= match, the body ends as sent);
# tmp/ only holds files of killed workers; such leftovers (and planted stale
# ones: a dead pid's, one past 36 h) are removed -- live and foreign fresh
# ones kept -- by the slot-0 sweep when the daemon starts and when that
# worker is replaced, and by the first delivery of a new process.
import atexit
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
SMTP_SOURCE = "/usr/sbin/smtp-source"
if not os.access(SMTP_SOURCE, os.X_OK):
    tap.skip_all("%s missing (Debian package postfix)" % SMTP_SOURCE)

JOHN, JANE = "john@example.org", "jane@example.org"
SESSIONS, LENGTH = 10, 4096
_procs = []           # smtp-source processes, killed at exit if still running


def _kill_procs():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


tap.before_done(_kill_procs)
atexit.register(_kill_procs)


def source_body():
    """What smtp-source -l LENGTH sends after its headers (Postfix 3.7
    smtp-source.c: X's, a digit at each 80-byte line start, CRLF), stored
    form (LF) as it must end every file."""
    data = bytearray(b"X" * LENGTH)
    for i in range(80, LENGTH, 80):
        data[i - 80] = ord("0123456789"[(i // 80) % 10])
        data[i - 2:i] = b"\r\n"
    return (bytes(data) + b"\r\n").replace(b"\r\n", b"\n")


SOURCE_BODY = source_body()


def acct_body(mid):
    lines = ["%s line %02d %s" % (mid, i, "y" * 60) for i in range(40)]
    return "\n".join(lines + ["END " + mid]) + "\n"


def acct_message(mid, rcpt):
    head = ("From: <acct@example.net>\nTo: <%s>\nSubject: %s\nMessage-ID: <%s@acct.test>\n\n"
            % (rcpt, mid, mid))
    return (head + acct_body(mid)).replace("\n", "\r\n").encode()


# ------------------------------------------------------------- load --

class Accounting(threading.Thread):
    """Our own client: messages with unique ids, up to 3 per connection,
    recording which got 250 after DATA (id -> ("acked", qid) | ("lost",) |
    ("refused", reply)).  A lost connection just means: reconnect."""

    def __init__(self, port, rcpt, tid, stop, limit):
        super().__init__(daemon=True)
        self.port, self.rcpt, self.tid, self.stop_ev = port, rcpt, tid, stop
        self.limit = limit
        self.results = {}

    def run(self):
        n = 0
        while not self.stop_ev.is_set() and n < self.limit:
            try:
                c = mpd.SMTPClient(self.port, timeout=20)
            except OSError:
                time.sleep(0.01)
                continue
            try:
                if c.reply().code != 220 or c.cmd("EHLO acct.test").code != 250:
                    continue
                for _ in range(3):
                    if self.stop_ev.is_set() or n >= self.limit:
                        break
                    n += 1
                    mid = "acct-%d-%d-%s" % (self.tid, n, uuid.uuid4().hex[:10])
                    self.results[mid] = ("lost",)
                    for line, want in (("MAIL FROM:<acct@example.net>", 250),
                                       ("RCPT TO:<%s>" % self.rcpt, 250), ("DATA", 354)):
                        r = c.cmd(line)
                        if r.code != want:
                            self.results[mid] = ("refused", r.text)
                            raise EOFError("refused")
                    c.send(mail.stuff(acct_message(mid, self.rcpt)))
                    r = c.reply()
                    self.results[mid] = (("acked", mail.qid_of(r)) if r.code == 250
                                         else ("refused", r.text))
                c.cmd("QUIT")
            except (OSError, EOFError):
                pass
            finally:
                c.close()


class Killer(threading.Thread):
    """SIGKILLs the oldest worker each time progress() crosses the next
    threshold; records the victims."""

    def __init__(self, d, progress, thresholds, stop):
        super().__init__(daemon=True)
        self.d, self.progress, self.stop_ev = d, progress, stop
        self.thresholds = list(thresholds)
        self.victims = []
        self.error = None

    def run(self):
        try:
            while self.thresholds and not self.stop_ev.is_set():
                if self.progress() < self.thresholds[0]:
                    time.sleep(0.01)
                    continue
                live = []
                for p in self.d.workers():
                    st = mpd._stat(p)
                    if st is not None and st[1] != "Z":
                        live.append((st[2], p))
                if not live:
                    time.sleep(0.01)     # every slot is waiting for its restart
                    continue
                start, victim = min(live)     # the oldest worker
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.victims.append(victim)
                self.thresholds.pop(0)
                mpd.poll(lambda: not mpd.alive(victim, start), 5, 0.005)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def run_source(port, n, rcpt, keep, run_no, log_path, deadline):
    """One smtp-source run; returns (exit status, acked qids, last fatal line)."""
    args = [SMTP_SOURCE, "-v", "-s", str(SESSIONS), "-m", str(n), "-l", str(LENGTH),
            "-M", "run%d.source.test" % run_no, "-f", "sender@example.net", "-t", rcpt]
    if keep:
        args.insert(1, "-d")
    args.append("127.0.0.1:%d" % port)
    with open(log_path, "w") as err:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, start_new_session=True)
        _procs.append(p)
        try:
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    with open(log_path, errors="replace") as f:
        text = f.read()
    # argv[0] prefixes each line; -v logs every reply line as "<<< ...".
    acked = re.findall(r"^\S*smtp-source: <<< 250 2\.0\.0 Ok: queued as (\S+)$", text, re.M)
    fatal = re.findall(r"^\S*smtp-source: fatal: (.*)$", text, re.M)
    return rc, acked, fatal[-1] if fatal else None


def load(site, rcpt, total, kills, keep, n_acct, acct_limit, timeout, label):
    """smtp-source (rerun after each kill) until `total` messages are acked,
    n_acct accounting clients alongside (acct_limit messages each), a worker
    killed at each 1/(kills+1) of the way (counted in new/).  Returns (acked
    smtp-source qids, accounting results, victims)."""
    d = site.d
    new_dir = os.path.join(site.maildir(rcpt), "new")
    os.makedirs(new_dir, exist_ok=True)     # so progress() can count from 0
    base = len(os.listdir(new_dir))
    stop = threading.Event()
    killer = Killer(d, lambda: len(os.listdir(new_dir)) - base,
                    [(total + n_acct * acct_limit) * (i + 1) // (kills + 1)
                     for i in range(kills)], stop)
    accts = [Accounting(d.ports["smtp"], rcpt, i, stop, acct_limit) for i in range(n_acct)]
    for t in [killer] + accts:
        t.start()
    acked, runs = [], []
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        while len(acked) < total and time.monotonic() < deadline and len(runs) < 3 * kills + 5:
            log_path = os.path.join(d.dir, "source-%s-%d.log" % (rcpt.split("@")[0], len(runs)))
            rc, qids, fatal = run_source(d.ports["smtp"], total - len(acked), rcpt, keep,
                                         len(runs), log_path, deadline)
            acked += qids
            runs.append((rc, len(qids), fatal))
        # Every threshold is crossed by now, but the last kill needs a live
        # worker: after quick kills both slots may still be in the parent's
        # restart backoff while a fast (-d) run ends. Let the killer catch up.
        mpd.poll(lambda: not killer.thresholds or killer.error is not None or not killer.is_alive(),
                 min(15, max(0, deadline + 15 - time.monotonic())))
    finally:
        stop.set()
        for t in [killer] + accts:
            t.join(timeout=30)
    took = time.monotonic() - t0
    cut = [r for r in runs if r[0] != 0]
    tap.diag("%s: %d smtp-source runs in %.1fs (%.0f msg/s acked), %d ended by a lost "
             "connection: %s" % (label, len(runs), took, len(acked) / took, len(cut),
                                 sorted(set(r[2] for r in cut if r[2]))))
    tap.is_(len(acked), total, "%s: smtp-source got 250 for %d messages over %d sessions "
            "(rerun after each cut)" % (label, total, SESSIONS))
    tap.ok(killer.error is None and len(killer.victims) == kills,
           "%s: %d workers SIGKILLed during the run" % (label, kills),
           "killed %r, error %r" % (killer.victims, killer.error))
    tap.ok(cut and all("lost connection" in (r[2] or "") for r in cut),
           "%s: the kills cut smtp-source sessions (and nothing else failed)" % label,
           "runs (rc, acked, fatal): %r" % runs)
    acct = {}
    for a in accts:
        acct.update(a.results)
    return acked, acct, killer.victims


# ----------------------------------------------------------- checks --

def scan(site, rcpt):
    """Every file in rcpt's new/: dicts with path, qid, kind, mid, complete."""
    new_dir = os.path.join(site.maildir(rcpt), "new")
    out = []
    for name in sorted(os.listdir(new_dir)):
        path = os.path.join(new_dir, name)
        with open(path, "rb") as f:
            data = f.read()
        m = mail.NAME_RE.match(name)
        sized = (m is not None and int(m.group(1)) == len(data)
                 and int(m.group(2)) == len(data) + data.count(b"\n"))
        q = re.search(rb"\(moonpost\) with E?SMTP id ([0-9A-Z]+)", data[:1000])
        mid = re.search(rb"\nMessage-ID: <(acct-[^@>]+)@acct\.test>\n", data[:1000])
        if mid:
            kind, tail = "acct", b"\n\n" + acct_body(mid.group(1).decode()).encode()
        else:
            kind, tail = "source", b"\n\n" + SOURCE_BODY
        out.append({"path": path, "qid": q.group(1).decode() if q else None, "kind": kind,
                    "mid": mid.group(1).decode() if mid else None,
                    "complete": sized and data.endswith(tail) and q is not None})
    return out


def verify(site, rcpt, acked, acct, victims, label):
    d = site.d
    files = scan(site, rcpt)
    bad = [f["path"] for f in files if not f["complete"]]
    tap.ok(files and not bad, "%s: all %d files in new/ are complete (S=, W=, body as sent, "
           "trace header)" % (label, len(files)), "incomplete: %r" % bad[:10])
    by_qid = collections.Counter(f["qid"] for f in files)
    missing = [q for q in acked if by_qid[q] == 0]
    twice = [q for q in acked if by_qid[q] > 1]
    tap.ok(not missing and not twice and len(set(acked)) == len(acked),
           "%s: every smtp-source message acked with 250 is in new/ exactly once" % label,
           "missing %d: %r" % (len(missing), missing[:10]),
           "more than once %d: %r" % (len(twice), twice[:10]))
    dup = sorted(q for q, n in by_qid.items() if n > 1)
    tap.ok(not dup, "%s: no message is in new/ twice (acked or not)" % label, repr(dup[:10]))

    a_acked = {m: r[1] for m, r in acct.items() if r[0] == "acked"}
    a_lost = [m for m, r in acct.items() if r[0] == "lost"]
    a_refused = {m: r[1] for m, r in acct.items() if r[0] == "refused"}
    by_mid = collections.defaultdict(list)
    for f in files:
        if f["mid"]:
            by_mid[f["mid"]].append(f["qid"])
    wrong = {m: (q, by_mid.get(m)) for m, q in a_acked.items() if by_mid.get(m) != [q]}
    tap.ok(a_acked and not wrong,
           "%s: our own clients: all %d acked messages (unique Message-ID) in new/ exactly "
           "once, with the acked qid" % (label, len(a_acked)),
           "mismatches (acked qid, qids in new/): %r" % dict(list(wrong.items())[:10]))
    tap.ok(not a_refused, "%s: our clients got no 4xx/5xx (%d acked, %d cut by kills)"
           % (label, len(a_acked), len(a_lost)), repr(dict(list(a_refused.items())[:5])))
    stray = [m for m in by_mid if m not in acct]
    tap.ok(not stray and all(len(v) == 1 for v in by_mid.values()),
           "%s: no unknown or duplicated Message-ID in new/" % label, repr(stray[:5]))
    extra = len(files) - len(acked) - len(a_acked)
    tap.ok(extra >= 0, "%s: files in new/ (%d) >= messages acked (%d); %d delivered but the "
           "250 was lost to a kill" % (label, len(files), len(acked) + len(a_acked), extra))

    log = d.log_text()
    logged = set(re.findall(r"event=delivered qid=(\S+) from=<[^>]*> to=<%s> .*status=sent"
                            % re.escape(rcpt), log))
    unlogged = [q for q in acked + list(a_acked.values()) if q not in logged]
    tap.ok(not unlogged, "%s: every acked qid is logged event=delivered status=sent" % label,
           repr(unlogged[:10]))
    exits = set(int(p) for p in re.findall(r"event=worker_exit pid=(\d+) status=signal:9", log))
    tap.ok(set(victims) <= exits, "%s: the parent saw each killed worker die (signal 9)"
           % label, "victims %r, logged %r" % (victims, sorted(exits)))
    back = mpd.poll(lambda: len(d.workers()) == d.config["workers"], 40)
    tap.ok(back and d.running(), "%s: parent alive, all %d worker slots running again"
           % (label, d.config["workers"]), "workers %r" % d.workers())

    # A delivery a vanished client started on a surviving worker may still
    # be finishing: poll until tmp/ holds nothing of a live process.
    tmp_dir = os.path.join(site.maildir(rcpt), "tmp")

    def only_killed():
        tmp = os.listdir(tmp_dir)
        return (tmp,) if all(tmp_pid(n) in victims for n in tmp) else None
    tmp = mpd.poll(only_killed, 10)
    tap.ok(tmp is not None, "%s: tmp/ holds only files of killed workers (%d left)"
           % (label, len(tmp[0]) if tmp else -1), repr(os.listdir(tmp_dir)[:10]))
    return tmp[0] if tmp else []


def tmp_pid(name):
    m = re.search(r"\.moonpost\.(\d+)$", name)
    return int(m.group(1)) if m else None


def deliver_one(site, rcpt, subject):
    with site.session(helo="after.test") as c:
        codes = [c.cmd("MAIL FROM:<after@example.net>").code,
                 c.cmd("RCPT TO:<%s>" % rcpt).code, c.cmd("DATA").code]
        c.send(mail.stuff(("Subject: %s\r\n\r\nafter the crashes\r\n" % subject).encode()))
        codes.append(c.reply().code)
        c.cmd("QUIT")
    return codes


def plant(site, rcpt, dead_pid, tag):
    """Leftovers in rcpt's tmp/: {name: should_survive}."""
    tmp_dir = os.path.join(site.maildir(rcpt), "tmp")
    now = int(time.time())
    old = now - 37 * 3600
    files = {
        # a delivery of a dead moonpost process: stale
        "%d.M1P%dQ1.%s.moonpost.%d" % (now, dead_pid, mail.HOST, dead_pid): False,
        # ours, from a process that is alive (this test): in progress, keep
        "%d.M2P%dQ1.%s.moonpost.%d" % (now, os.getpid(), mail.HOST, os.getpid()): True,
        # another program's fresh file: keep
        "%d.M3P1Q1.other-%s.test" % (now, tag): True,
        # another program's file past the 36 h Maildir limit: stale
        "%d.M4P1Q1.ancient-%s.test" % (old, tag): False,
    }
    for name, _ in files.items():
        p = os.path.join(tmp_dir, name)
        with open(p, "wb") as f:
            f.write(b"Subject: half a message\n\nhal")
        if "ancient" in name:
            os.utime(p, (old, old))
    return files


def check_cleaned(site, rcpt, planted, leftovers, label):
    """Stale files gone, others kept.  A dead pid that a new process got
    meanwhile (pid_max wrap) makes its files legitimately not stale: those
    are left out."""
    tmp_dir = os.path.join(site.maildir(rcpt), "tmp")
    now = set(os.listdir(tmp_dir))
    reused = [n for n in list(planted) + list(leftovers)
              if tmp_pid(n) not in (None, os.getpid()) and mpd.alive(tmp_pid(n))]
    if reused:
        tap.diag("pids reused meanwhile, not checked: %r" % reused)
    planted = {n: k for n, k in planted.items() if n not in reused}
    leftovers = [n for n in leftovers if n not in reused]
    wrong = {n: keep for n, keep in planted.items() if (n in now) != keep}
    tap.ok(not wrong, "%s: stale tmp/ files removed (dead pid, > 36 h), live and foreign "
           "fresh ones kept" % label, "wrong: %r" % wrong, "tmp/ now: %r" % sorted(now))
    left = [n for n in leftovers if n in now]
    tap.ok(not left, "%s: the %d tmp/ leftovers of killed workers are gone"
           % (label, len(leftovers)), repr(left))
    for n, keep in planted.items():
        if keep and n in now:
            os.unlink(os.path.join(tmp_dir, n))


def main():
    site = mail.Site()
    d = site.d
    try:
        with tap.section("one message per connection"):
            acked, acct, victims = load(site, JOHN, 2000, 8, False, 3, 150, 35, "smtp-source")
            leftovers = verify(site, JOHN, acked, acct, victims, "smtp-source")

        with tap.section("cleanup at daemon start"):
            dead = [p for p in victims if not mpd.alive(p)]
            dead_pid = dead[0] if dead else 999999
            planted = plant(site, JOHN, dead_pid, "a")
            tap.is_(d.stop(), 0, "daemon stops cleanly after the crashes")
            mark = d.mark()
            d.start()
            tap.ok(d.wait_log(r"event=tmp_sweep status=done", 20, since=mark),
                   "the new slot-0 worker sweeps the Maildirs' tmp/ at start (event=tmp_sweep)")
            check_cleaned(site, JOHN, planted, leftovers, "daemon start, before any delivery")
            planted = plant(site, JOHN, dead_pid, "c")
            tap.is_(deliver_one(site, JOHN, "after restart"), [250, 250, 354, 250],
                    "one more message to john after the restart")
            check_cleaned(site, JOHN, planted, [], "first delivery of a new process")

        with tap.section("many messages per connection (-d)"):
            acked, acct, victims2 = load(site, JANE, 1000, 4, True, 2, 100, 25,
                                         "smtp-source -d")
            leftovers = verify(site, JANE, acked, acct, victims2, "smtp-source -d")

        with tap.section("cleanup by replaced workers"):
            dead = [p for p in victims2 if not mpd.alive(p)]
            dead_pid = dead[0] if dead else 999999
            planted = plant(site, JANE, dead_pid, "b")
            old = d.workers()
            mark = d.mark()
            for p in old:
                os.kill(p, signal.SIGKILL)
            fresh = mpd.poll(lambda: (len(d.workers()) == d.config["workers"]
                                      and not set(d.workers()) & set(old)), 40)
            tap.ok(fresh, "every worker SIGKILLed and replaced", "before %r, now %r"
                   % (old, d.workers()))
            tap.ok(d.wait_log(r"event=tmp_sweep status=done", 20, since=mark),
                   "the replaced slot-0 worker sweeps tmp/ again")
            check_cleaned(site, JANE, planted, leftovers, "worker restart")
            planted = plant(site, JANE, dead_pid, "d")
            tap.is_(deliver_one(site, JANE, "after replacement"), [250, 250, 354, 250],
                    "one more message to jane, by a new worker")
            check_cleaned(site, JANE, planted, [], "first delivery of a replaced worker")
            tap.ok(d.running() and len(site.files(JANE)) >= 1001, "daemon still serving")
    finally:
        _kill_procs()
        site.stop()


main()
tap.done()
