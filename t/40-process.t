#!/usr/bin/env python3
# Process model: SIGHUP reloads config and certs (and keeps the old config
# when the new one is broken), killed workers are replaced, SIGTERM exits 0
# leaving no process behind, and workers drop privileges when told to.
import grp
import os
import pwd
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402
from mpd import SMTPClient  # noqa: E402

mpd.require_binary()

LOG_LINE = (r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z "
            r"level=(debug|info|notice|warn|error) pid=\d+ \S")


def greeting(port):
    with SMTPClient(port, timeout=5) as c:
        text = c.reply().text
        try:
            c.cmd("QUIT")
        except (EOFError, OSError):
            pass
        return text


def stable(fn, want, times=5, timeout=10):
    """fn() == want for `times` calls in a row within timeout: reloads may
    reach the workers a little after the parent logs them."""
    streak = [0]
    last = [None]

    def step():
        last[0] = fn()
        streak[0] = streak[0] + 1 if last[0] == want else 0
        return streak[0] >= times
    return mpd.poll(step, timeout), last[0]


def worker_pids(d):
    """The workers, once the configured count is up (restarts take a moment)."""
    n = d.config["workers"]
    mpd.poll(lambda: len(d.workers()) == n, 10)
    return d.workers()


def all_gone(seen, timeout=10):
    return mpd.poll(lambda: not [p for p, st in seen.items() if mpd.alive(p, st)],
                    timeout)


with tap.section("daemon"):
    with mpd.Daemon({"hostname": "mx.before.test", "workers": 2}) as d:
        port = d.ports["smtp"]
        sub = d.ports["submission"]

        with tap.section("startup"):
            tap.ok(d.wait_log(r"\bevent=ready\b.*\bworkers=2\b"), "log: event=ready workers=2")
            lines = [ln for ln in d.log_text().splitlines() if ln.strip()]
            bad = [ln for ln in lines if not re.match(LOG_LINE, ln)]
            tap.ok(lines and not bad, "log lines are 'TIMESTAMP level=.. pid=.. key=value'",
                   *bad[:5])
            workers = worker_pids(d)
            tap.is_(len(workers), 2, "two workers, each logged as event=worker_start pid=N",
                    "pids: %r" % d.pids(), d.log_text())

        with tap.section("reload with a broken config"):
            mark = d.mark()
            d.write_raw('hostname = "mx.broken.test"\nworkers = = 2\n')
            d.signal(signal.SIGHUP)
            m = d.wait_log(r"\bevent=reload status=failed\b.*", since=mark)
            tap.ok(m, "log: event=reload status=failed", d.log_text(mark))
            tap.like(m.group(0) if m else "", r'\berror="[^"]+', "the failure says why")
            tap.ok(d.running(), "daemon still running")
            tap.like(greeting(port), r"^220 mx\.before\.test ", "old hostname still served")
            d.write_config()  # restore the good file for the next steps

        with tap.section("reload with a new hostname"):
            with SMTPClient(port) as old:
                tap.like(old.reply().text, r"^220 mx\.before\.test ",
                         "session opened before reload")
                tap.is_(old.cmd("EHLO early.test").code, 250, "EHLO before reload")
                mark = d.mark()
                d.write_config({"hostname": "mx.after.test"})
                d.signal(signal.SIGHUP)
                tap.ok(d.wait_log(r"\bevent=reload status=ok\b", since=mark),
                       "log: event=reload status=ok", d.log_text(mark))
                ok, last = stable(lambda: greeting(port).split(" ")[1], "mx.after.test")
                tap.ok(ok, "new connections greet with the new hostname", "last: %r" % last)
                tap.like(old.cmd("NOOP").text, r"^250 ",
                         "session from before the reload still works")
                tap.like(old.cmd("QUIT").text, r"^221 ", "and ends with QUIT")
            tap.ok(d.running(), "daemon still running")

        with tap.section("reload with a new certificate"):
            first = mpd.cert_digest_file(d.cert)
            tap.is_(mpd.tls_peer_digest(sub), first, "implicit TLS serves the configured cert")
            tap.is_(mpd.tls_peer_digest(port, starttls=True), first,
                    "STARTTLS serves the configured cert")
            second = d.replace_cert()
            tap.isnt(second, first, "second cert differs from the first")
            mark = d.mark()
            d.signal(signal.SIGHUP)
            tap.ok(d.wait_log(r"\bevent=reload status=ok\b", since=mark),
                   "log: event=reload status=ok", d.log_text(mark))
            ok, last = stable(lambda: mpd.tls_peer_digest(sub), second)
            tap.ok(ok, "implicit TLS handshakes now see the new cert", "last: %s" % last)
            ok, last = stable(lambda: mpd.tls_peer_digest(port, starttls=True), second)
            tap.ok(ok, "STARTTLS handshakes now see the new cert", "last: %s" % last)

        with tap.section("worker killed with SIGKILL"):
            before = worker_pids(d)
            victim = before[0]
            mark = d.mark()
            os.kill(victim, signal.SIGKILL)
            tap.ok(d.wait_log(r"\bevent=worker_exit\b.*\bpid=%d\b" % victim, since=mark),
                   "log: event=worker_exit pid=%d" % victim, d.log_text(mark))
            m = d.wait_log(r"\bevent=worker_start\b.*?\bpid=(\d+)", since=mark)
            tap.ok(m, "log: event=worker_start for the replacement", d.log_text(mark))
            new = int(m.group(1)) if m else None
            tap.ok(new and new != victim and mpd.alive(new), "replacement worker is running",
                   "new pid %r" % new)
            after = worker_pids(d)
            tap.is_(len(after), 2, "back to two workers", "pids: %r" % after)
            tap.ok(new in after and victim not in after and victim not in d.children(),
                   "the replacement is a child of the parent; the dead one is reaped",
                   "before %r after %r" % (before, after))
            tap.ok(all(greeting(port).startswith("220 ") for _ in range(10)),
                   "port keeps answering")

        with tap.section("SIGTERM"):
            d.pids()
            seen = d.seen_pids()
            with SMTPClient(port) as c:
                c.reply()
                mark = d.mark()
                d.signal(signal.SIGTERM)
                # RFC 5321 3.8: a session idle between transactions is told
                # 421 at once instead of holding the shutdown.
                t0 = time.monotonic()
                try:
                    r = c.reply()
                    tap.like(r.text, r"^421 4\.3\.2 ", "idle session gets 421 4.3.2 on shutdown")
                    tap.ok(time.monotonic() - t0 < 3, "at once, not at the drain deadline")
                except (EOFError, OSError) as e:
                    tap.ok(False, "idle session gets 421 4.3.2 on shutdown", repr(e))
            rc = d.wait(d.config["shutdown_timeout"] + 10)
            tap.ok(time.monotonic() - t0 < d.config["shutdown_timeout"],
                   "shutdown does not wait for idle sessions")
            tap.is_(rc, 0, "SIGTERM: parent exits 0")
            tap.ok(d.wait_log(r"\bevent=shutdown\b", since=mark), "log: event=shutdown")
            tap.ok(all_gone(seen), "no daemon process left (parent and workers)",
                   "still alive: %r" % [p for p, st in seen.items() if mpd.alive(p, st)])
            try:
                greeting(port)
                tap.ok(False, "port is closed after exit")
            except OSError:
                tap.ok(True, "port is closed after exit")

if os.geteuid() != 0:
    tap.skip("workers drop privileges to nobody", "not running as root")
else:
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    with mpd.Daemon({"user": "nobody", "group": "nogroup", "workers": 2},
                    start=False) as d:
        with tap.section("privilege drop"):
            os.chown(d.state_dir, nobody, nogroup)
            d.start()
            workers = worker_pids(d)
            tap.is_(len(workers), 2, "two workers")
            parent = mpd.proc_status(d.pid)
            tap.is_(parent.get("Uid", "").split(), ["0"] * 4, "parent stays root")
            for w in workers:
                st = mpd.proc_status(w)
                tap.is_(st.get("Uid", "").split(), [str(nobody)] * 4,
                        "worker %d: all uids are nobody" % w)
                tap.is_(st.get("Gid", "").split(), [str(nogroup)] * 4,
                        "worker %d: all gids are nogroup" % w)
                tap.ok(set(st.get("Groups", "").split()) <= {str(nogroup)},
                       "worker %d: no supplementary groups (root's dropped)" % w,
                       "Groups: %r" % st.get("Groups"))
            tap.like(greeting(d.ports["smtp"]), r"^220 ", "workers as nobody serve SMTP")
            tap.is_(mpd.tls_peer_digest(d.ports["submission"]), mpd.cert_digest_file(d.cert),
                    "workers as nobody serve TLS")
            d.pids()
            seen = d.seen_pids()
            tap.is_(d.stop(), 0, "SIGTERM: exit 0")
            tap.ok(all_gone(seen), "no daemon process left")

tap.done()
