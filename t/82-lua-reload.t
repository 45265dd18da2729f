#!/usr/bin/env python3
# Hot reload of the Lua layer (docs/LUA.md): which script set answers is read
# from the X-Spam-Symbols header of delivered mail (a VERSION_n rule fires
# on every test message).
#  * a syntax error in a rule file: the old set stays, the error with
#    file:line is logged (event=lua_reload status=failed) and shown by
#    `moonpost -c CONF status`; the fixed file is picked up by inotify
#    within ~2 s, without SIGHUP;
#  * a rule that raises: the message is delivered, the other rules fire, the
#    error is logged and counted in `moonpost status`;
#  * a rule that loops forever: aborted at the budget (logged), the message
#    is delivered within the budget and the connection goes on;
#  * a failing test{} blocks the reload;
#  * a session keeps the set it started with across a reload (inotify, and
#    SIGHUP: the old generation finishes it);
#  * a worker that restarts while a file is broken runs the last good copy;
#  * watch = false: only SIGHUP reloads; a broken file makes the SIGHUP
#    reload fail (old generation serves on, `status` shows the error);
#  * load: 100 reloads (90 rewrites of a rule file between two versions, 10
#    SIGHUPs) during 2,000 messages from Postfix's smtp-source: every
#    message acked and in the Maildir, no smtp-source error.
import atexit
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402
from mail import stuff  # noqa: E402

mpd.require_binary()
SMTP_SOURCE = "/usr/sbin/smtp-source"

JOHN = "john@example.org"
SENDER = "sender@remote.test"
BUDGET = 1.0
LOAD_BUDGET = 1.5
_procs = []


def _kill_procs():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


tap.before_done(_kill_procs)
atexit.register(_kill_procs)


def version(n):
    return 'rule{ name = "VERSION_%d", score = 0.1, header = "Subject", re = "/reload/i" }\n' % n


def put(site, name, text):
    """Atomic replace of rules/NAME (an editor's save: tmp + rename)."""
    path = os.path.join(site.d.rules_dir, name)
    tmp = os.path.join(site.d.rules_dir, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def drop(site, name):
    os.unlink(os.path.join(site.d.rules_dir, name))


def setup_rules(files):
    def setup(d):
        for name, text in files.items():
            with open(os.path.join(d.rules_dir, name), "w") as f:
                f.write(text)
    return setup


def clear(site):
    for p in site.all_files():
        os.unlink(p)


def message(subject):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody\r\n" % (SENDER, JOHN, subject)).encode()


def symbols_of(path):
    """Symbol names in a stored file's X-Spam-Symbols (unfolded), or None."""
    with open(path, "rb") as f:
        head = f.read().split(b"\n\n", 1)[0].decode("utf-8", "replace")
    m = re.search(r"^X-Spam-Symbols:(.*(?:\n[ \t].*)*)", head, re.M)
    if m is None:
        return None
    return set(re.findall(r"([A-Z0-9_]+)\(", m.group(1)))


def send_symbols(site, subject="reload check"):
    """One message to john by smtplib; the symbols of the stored copy."""
    clear(site)
    s = smtplib.SMTP("127.0.0.1", site.port, local_hostname="reload.test", timeout=30)
    try:
        s.sendmail(SENDER, [JOHN], message(subject))
        s.quit()
    finally:
        s.close()
    files = mail.wait_count(lambda: site.files(JOHN), 1)
    return symbols_of(files[0]) if files else None


def count(site, regex, since):
    return len(re.findall(regex, site.d.log_text(since), re.M))


def wait_count(site, regex, n, since, timeout=10):
    """Polls the log until regex matched n times since the offset; the count."""
    return mpd.poll(lambda: count(site, regex, since) >= n and count(site, regex, since),
                    timeout) or count(site, regex, since)


RELOAD_OK = r"event=lua_reload status=ok"
RELOAD_FAILED = r"event=lua_reload status=failed"
WORKERS = 2


def status(site):
    r = subprocess.run([mail.cli(), "-c", site.d.conf, "status"], capture_output=True,
                       text=True, timeout=30)
    return r.stdout + r.stderr


def log_like(site, regex, desc, since=0):
    m = re.search(regex, site.d.log_text(since), re.M)
    tap.ok(m is not None, desc, "no match for %r in the log since offset %d" % (regex, since))
    return m


# ----------------------------------------------------------------- cases --

def syntax_error(site):
    tap.ok("VERSION_1" in (send_symbols(site) or ()), "set 1 answers (VERSION_1 fires)")
    mark = site.d.mark()
    put(site, "20-extra.lua", 'rule{ name = "EXTRA",\n  score = 1\n  header = "Subject", re = "/reload/" }\n')
    tap.is_(wait_count(site, RELOAD_FAILED, WORKERS, mark), WORKERS,
            "syntax error: each worker logs a failed reload")
    log_like(site, r'event=lua_reload status=failed kept=\w+ error=".*rules/20-extra\.lua:3: ',
             "the failure is logged with file:line", mark)
    syms = send_symbols(site)
    tap.ok(syms is not None and "VERSION_1" in syms and "EXTRA" not in syms,
           "the old set stays active", repr(syms))
    st = status(site)
    tap.like(st, r"(?m)^  last error \(old set kept\): rules/20-extra\.lua:3: ",
             "`moonpost status` shows the error with file:line")

    mark = site.d.mark()
    t0 = time.monotonic()
    put(site, "20-extra.lua", 'rule{ name = "EXTRA",\n  score = 1,\n  header = "Subject", re = "/reload/" }\n')
    n = wait_count(site, RELOAD_OK, WORKERS, mark, 5)
    took = time.monotonic() - t0
    tap.ok(n >= WORKERS and took < 2.0, "the fixed file is loaded by inotify in %.2fs (< 2 s), "
           "no SIGHUP" % took)
    syms = send_symbols(site)
    tap.ok(syms is not None and {"VERSION_1", "EXTRA"} <= syms, "the fixed set answers", repr(syms))
    tap.unlike(status(site), r"last error", "`moonpost status`: no error any more")


def other_files(site):
    """Only what the loader reads starts a reload: not an editor's swap or
    backup file, not a README; touching a rule file does."""
    mark = site.d.mark()
    for name in (".20-extra.lua.swp", "20-extra.lua~", "README.txt"):
        with open(os.path.join(site.d.rules_dir, name), "w") as f:
            f.write("not lua (\n")
    time.sleep(0.8)
    tap.is_(count(site, r"event=lua_reload", mark), 0,
            "swap, backup and text files in rules/: no reload")
    for name in (".20-extra.lua.swp", "20-extra.lua~", "README.txt"):
        os.unlink(os.path.join(site.d.rules_dir, name))
    os.utime(os.path.join(site.d.rules_dir, "20-extra.lua"))
    tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS, "touch of a rule file: reload")


def runtime_error(site):
    mark = site.d.mark()
    put(site, "30-boom.lua", 'rule{ name = "BOOM", score = 1, check = function(ctx)\n'
        '  error("boom on purpose")\nend }\n'
        'rule{ name = "AFTER_BOOM", score = 0.5, check = function(ctx) return true end }\n')
    wait_count(site, RELOAD_OK, WORKERS, mark)
    syms = send_symbols(site)
    tap.ok(syms is not None and {"AFTER_BOOM", "VERSION_1", "EXTRA"} <= syms and "BOOM" not in syms,
           "a rule that raises: message delivered, the other rules fire, it does not", repr(syms))
    log_like(site, r'event=lua_error file="rules/30-boom\.lua:1" msg="rule BOOM: '
             r'rules/30-boom\.lua:2: boom on purpose"', "the error is logged with file:line", mark)

    def boom_row():
        m = re.search(r"(?m)^BOOM\s+(\d+)\s+(\d+)\s", status(site))
        return m and int(m.group(2)) >= 1 and m
    m = mpd.poll(boom_row, 6, 0.2)
    tap.ok(m, "`moonpost status`: BOOM with hits 0 and its error counted",
           status(site) if not m else "")
    if m:
        tap.is_(int(m.group(1)), 0, "BOOM has no hits")
    drop(site, "30-boom.lua")


def endless_loop(site):
    mark = site.d.mark()
    put(site, "40-loop.lua", 'rule{ name = "LOOP", score = 1, check = function(ctx)\n'
        '  local n = 0\n  while true do n = n + 1 end\nend }\n')
    wait_count(site, RELOAD_OK, WORKERS, mark)
    clear(site)
    mark = site.d.mark()
    with site.session("loop.test") as c:
        times = []
        codes = []
        for i in range(2):
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.cmd("DATA")
            t0 = time.monotonic()
            c.send(stuff(message("loop %d" % i)))
            codes.append(c.reply().code)
            times.append(time.monotonic() - t0)
        tap.is_(codes, [250, 250], "an endless rule: both messages on one connection accepted")
        tap.ok(max(times) < BUDGET + 1.5, "each answered soon after the %.1fs budget (%s)"
               % (BUDGET, ", ".join("%.2fs" % t for t in times)))
        tap.ok(min(times) >= BUDGET * 0.9, "the rule really ran until the budget")
        tap.is_(c.cmd("NOOP").code, 250, "the connection is still there")
    tap.is_(len(site.files(JOHN)), 2, "both messages delivered")
    tap.is_(count(site, r"event=lua_error .*budget", mark), 2, "the budget abort is logged per message")
    mark = site.d.mark()
    drop(site, "40-loop.lua")
    wait_count(site, RELOAD_OK, WORKERS, mark)
    syms = send_symbols(site)
    tap.ok(syms is not None and "VERSION_1" in syms, "without the loop the rules answer again")


def failing_selftest(site):
    mark = site.d.mark()
    put(site, "50-selftest.lua",
        'rule{ name = "NEW_IN_BAD_SET", score = 1, header = "Subject", re = "/reload/i" }\n'
        'rule{ name = "T_NEVER", score = 1, header = "Subject", re = "/never-matches/" }\n'
        'test{ name = "must fire", message = "Subject: hello\\n\\nbody\\n", expect = { "T_NEVER" } }\n')
    tap.is_(wait_count(site, RELOAD_FAILED, WORKERS, mark), WORKERS, "failing test{}: reload refused")
    log_like(site, r'status=failed .*rules/50-selftest\.lua:3: test \\"must fire\\": T_NEVER did not fire',
             "the failing test is logged with file:line", mark)
    syms = send_symbols(site)
    tap.ok(syms is not None and "NEW_IN_BAD_SET" not in syms and "VERSION_1" in syms,
           "the old set stays", repr(syms))
    tap.like(status(site), r"last error \(old set kept\): rules/50-selftest\.lua:3: test",
             "`moonpost status` shows the failed test")
    mark = site.d.mark()
    drop(site, "50-selftest.lua")
    wait_count(site, RELOAD_OK, WORKERS, mark)


def loop_at_load(site):
    """A file that loops while it loads: the build runs off the event loop
    (lua.load_budget = LOAD_BUDGET here), so sessions are served meanwhile;
    then the reload fails and the old set stays."""
    c = site.session("busy.test")
    try:
        mark = site.d.mark()
        put(site, "60-loadloop.lua", "while true do end\n")
        lat = []
        t_end = time.monotonic() + LOAD_BUDGET + 0.5
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            c.cmd("NOOP")
            lat.append(time.monotonic() - t0)
            time.sleep(0.02)
        tap.ok(max(lat) < 0.5, "while a looping file loads, a session gets its answers "
               "(slowest NOOP %.3fs)" % max(lat))
    finally:
        c.close()
    tap.is_(wait_count(site, RELOAD_FAILED, WORKERS, mark), WORKERS,
            "the load budget ends that build: reload failed")
    log_like(site, r'status=failed .*rules/60-loadloop\.lua: loading ran over the load budget',
             "logged with the file", mark)
    mark = site.d.mark()
    drop(site, "60-loadloop.lua")
    tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS, "without it the reload is ok")


def restart_on_broken(site):
    """A rule file turns bad, then a worker dies: its replacement cannot
    load the files on disk and starts on the last good copy the parent saved
    (logged as a fallback, shown by status); mail is still filtered. Fixing
    the file reloads it in every worker."""
    before = send_symbols(site)
    tap.ok(before and any(s.startswith("VERSION_") for s in before), "a good set answers")
    mark = site.d.mark()
    put(site, "70-broken.lua", 'rule{ name = "BROKEN", score = 1, check = function(ctx)\n')
    tap.is_(wait_count(site, RELOAD_FAILED, WORKERS, mark), WORKERS, "the broken file is refused")
    victim = site.d.workers()[0]
    mark = site.d.mark()
    os.kill(victim, signal.SIGKILL)
    m = site.d.wait_log(r"event=lua_load status=fallback hash=\w+", timeout=15, since=mark)
    tap.ok(m is not None, "the new worker starts on the last good copy (logged)", site.d.log_tail())
    log_like(site, r'event=lua_load status=failed error=".*rules/70-broken\.lua:2:',
             "and logs why, with file:line", mark)
    tap.ok(mpd.poll(lambda: len(site.d.workers()) == WORKERS and victim not in site.d.workers(), 10),
           "the worker slot is served again")
    ok = 0
    for i in range(6):   # both workers answer, whichever accepts
        syms = send_symbols(site, "reload check %d" % i)
        ok += bool(syms and syms == before)
    tap.is_(ok, 6, "every message is scanned with the same (last good) rules")
    tap.like(status(site), r"70-broken\.lua:2:", "status shows the file's error")
    mark = site.d.mark()
    drop(site, "70-broken.lua")
    tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS, "removing the bad file reloads every worker")


def in_flight(site):
    clear(site)
    c = site.session("inflight.test")
    try:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        mark = site.d.mark()
        put(site, "10-version.lua", version(3))
        tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS, "set 3 loaded by both workers")
        c.cmd("DATA")
        c.send(stuff(message("reload in flight")))
        tap.is_(c.reply().code, 250, "the session begun before the reload delivers")
    finally:
        c.close()
    files = mail.wait_count(lambda: site.files(JOHN), 1)
    syms = symbols_of(files[0]) if files else None
    tap.ok(syms is not None and "VERSION_1" in syms and "VERSION_3" not in syms,
           "... with the set it started with", repr(syms))
    syms = send_symbols(site)
    tap.ok(syms is not None and "VERSION_3" in syms and "VERSION_1" not in syms,
           "a new session gets the new set", repr(syms))


def waiting_hook(site):
    """A reload while a hook of the old set sleeps: the call finishes on
    its set (the engine dropped it, the call holds it)."""
    mark = site.d.mark()
    with open(os.path.join(site.d.policies_dir, "slow.lua"), "w") as f:
        f.write('hook("data", function(ctx)\n'
                '  if ctx.msg.subject == "slow reload" then sleep(0.7) end\nend)\n')
    tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS,
            "a new file in policies/ is picked up by inotify too")
    clear(site)
    c = site.session("waiting.test")
    try:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        mark = site.d.mark()
        c.send(stuff(message("slow reload")))
        time.sleep(0.05)
        put(site, "10-version.lua", version(4))
        code = c.reply().code
        tap.is_(code, 250, "the message whose hook slept across a reload is accepted")
    finally:
        c.close()
    files = mail.wait_count(lambda: site.files(JOHN), 1)
    syms = symbols_of(files[0]) if files else None
    tap.ok(syms is not None and "VERSION_3" in syms, "... scanned by its own set", repr(syms))
    tap.is_(wait_count(site, RELOAD_OK, WORKERS, mark), WORKERS, "the reload happened ...")
    text = site.d.log_text(mark)
    m = re.search(r"event=delivered ", text)
    tap.ok(m and text.find("event=lua_reload status=ok") < m.start(),
           "... while the hook slept (logged before the delivery)")
    syms = send_symbols(site)
    tap.ok(syms is not None and "VERSION_4" in syms, "the next message gets the new set", repr(syms))
    mark = site.d.mark()
    os.unlink(os.path.join(site.d.policies_dir, "slow.lua"))
    wait_count(site, RELOAD_OK, WORKERS, mark)


def sighup():
    site = mail.Site(config={"lua": {"watch": False, "budget": BUDGET}},
                     setup=setup_rules({"10-version.lua": version(1)}))
    try:
        put(site, "10-version.lua", version(2))
        time.sleep(0.5)
        syms = send_symbols(site)
        tap.ok(syms is not None and "VERSION_1" in syms, "watch = false: no reload on a change",
               repr(syms))
        held = site.session("held.test")
        held.cmd("MAIL FROM:<%s>" % SENDER)
        held.cmd("RCPT TO:<%s>" % JOHN)
        mark = site.d.mark()
        site.d.signal(signal.SIGHUP)
        tap.ok(site.d.wait_log(r"event=reload status=ok", 10, since=mark), "SIGHUP: reload ok")
        clear(site)
        held.cmd("DATA")
        held.send(stuff(message("reload held")))
        tap.is_(held.reply().code, 250, "a session of the old generation finishes its message")
        held.close()
        files = mail.wait_count(lambda: site.files(JOHN), 1)
        syms = symbols_of(files[0]) if files else None
        tap.ok(syms is not None and "VERSION_1" in syms, "... with its old set", repr(syms))
        syms = mpd.poll(lambda: (lambda s: s if s and "VERSION_2" in s else None)(send_symbols(site)), 5)
        tap.ok(syms is not None and "VERSION_2" in syms, "after SIGHUP new sessions get set 2",
               repr(syms))

        mark = site.d.mark()
        put(site, "10-version.lua", 'rule{ name = "VERSION_9", score = 0.1,, }\n')
        site.d.signal(signal.SIGHUP)
        tap.ok(site.d.wait_log(r'event=reload status=failed error="lua: rules/10-version\.lua:1: ',
                               10, since=mark), "SIGHUP with a broken rule: reload fails, file:line logged")
        syms = send_symbols(site)
        tap.ok(syms is not None and "VERSION_2" in syms, "the running generation keeps set 2",
               repr(syms))
        tap.like(status(site), r"daemon: last config reload failed .*\n  error: lua: "
                 r"rules/10-version\.lua:1: ", "`moonpost status` shows the failed reload")
    finally:
        site.stop()


# ------------------------------------------------------------------ load --

class Reloader(threading.Thread):
    """n reloads, one after the other: rewrites of 10-version.lua between
    two versions (inotify; the next one once every worker logged the
    reload), and a SIGHUP every `hup_every`."""

    def __init__(self, site, n, hup_every):
        super().__init__(daemon=True)
        self.site, self.n, self.hup_every = site, n, hup_every
        self.done, self.hups, self.error = 0, 0, None

    def run(self):
        try:
            for i in range(self.n):
                mark = self.site.d.mark()
                if self.hup_every and i % self.hup_every == self.hup_every - 1:
                    self.site.d.signal(signal.SIGHUP)
                    if not self.site.d.wait_log(r"event=reload status=ok", 10, since=mark):
                        raise RuntimeError("SIGHUP reload %d not logged" % i)
                    # The parent logs once it forked the new generation; its
                    # workers watch the files once they are ready.
                    if wait_count(self.site, r"event=worker_ready", WORKERS, mark) < WORKERS:
                        raise RuntimeError("SIGHUP reload %d: new workers not ready" % i)
                    self.hups += 1
                else:
                    put(self.site, "10-version.lua", version(1 + i % 2))
                    if wait_count(self.site, RELOAD_OK, WORKERS, mark) < WORKERS:
                        raise RuntimeError("reload %d not logged by every worker" % i)
                self.done += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def run_source(port, n, log_path, run_no):
    args = [SMTP_SOURCE, "-v", "-s", "5", "-m", str(n), "-l", "1024",
            "-M", "run%d.source.test" % run_no, "-f", "sender@example.net", "-t", JOHN,
            "127.0.0.1:%d" % port]
    with open(log_path, "w") as err:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err, start_new_session=True)
        _procs.append(p)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    with open(log_path, errors="replace") as f:
        text = f.read()
    acked = re.findall(r"^\S*smtp-source: <<< 250 2\.0\.0 Ok: queued as (\S+)$", text, re.M)
    bad = re.findall(r"^\S*smtp-source: (?:fatal|warning|error): (.*)$", text, re.M)
    bad += re.findall(r"^\S*smtp-source: <<< ([45]\d\d .*)$", text, re.M)
    return rc, acked, bad


def load(site, total=2000, reloads=100, batches=20, hup_every=10):
    if not os.access(SMTP_SOURCE, os.X_OK):
        tap.skip("load test", "%s missing (Debian package postfix)" % SMTP_SOURCE)
        return
    clear(site)
    mark = site.d.mark()
    r = Reloader(site, reloads, hup_every)
    t0 = time.monotonic()
    r.start()
    acked, bad, rcs = [], [], []
    per = total // batches
    for b in range(batches):
        # Spread the batches over the reloads, so they overlap all along.
        mpd.poll(lambda: r.done >= b * reloads // batches or not r.is_alive(), 30)
        rc, q, e = run_source(site.port, per, os.path.join(site.d.dir, "source-%d.log" % b), b)
        acked += q
        bad += e
        rcs.append(rc)
    r.join(60)
    took = time.monotonic() - t0
    tap.diag("load: %d messages, %d reloads (%d by SIGHUP) in %.1fs" % (len(acked), r.done, r.hups, took))
    tap.ok(r.error is None and r.done == reloads, "%d reloads during the run (%d by SIGHUP)"
           % (reloads, r.hups), repr(r.error))
    tap.ok(set(rcs) == {0} and not bad, "smtp-source: no failed connection, no error",
           repr(rcs), repr(bad[:10]))
    tap.is_(len(acked), total, "smtp-source: %d messages acked with 250" % total)
    files = mail.wait_count(lambda: site.files(JOHN), total, 10)
    tap.is_(len(files), total, "%d files in the Maildir: nothing lost" % total)
    text = site.d.log_text(mark)
    tap.is_(len(re.findall(RELOAD_FAILED, text)), 0, "no failed reload")
    tap.is_(len(re.findall(r"status=deferred|event=lua_error", text)), 0,
            "no deferred delivery, no Lua error")


def main():
    site = mail.Site(config={"lua": {"budget": BUDGET, "load_budget": LOAD_BUDGET}},
                     setup=setup_rules({"10-version.lua": version(1)}))
    try:
        for name, fn in (("syntax error", syntax_error), ("other files", other_files),
                         ("runtime error", runtime_error),
                         ("endless loop", endless_loop), ("failing test", failing_selftest),
                         ("loop at load", loop_at_load), ("restart on a broken file", restart_on_broken),
                         ("in flight", in_flight), ("waiting hook", waiting_hook),
                         ("load", load)):
            with tap.section(name):
                fn(site)
    finally:
        site.stop()
    with tap.section("sighup"):
        sighup()


main()
tap.done()
