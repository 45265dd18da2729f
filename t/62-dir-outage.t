#!/usr/bin/env python3
# A MariaDB outage is a temporary failure, never "unknown": `moonpost lookup`
# exits 75 (EX_TEMPFAIL) within a few seconds when the server is stopped,
# crashed (SIGKILL) or hung (SIGSTOP: the port accepts, nothing answers),
# and answers again once it is back.  Writes and lists fail loudly instead
# of printing an empty list.  The daemon part: SMTP AUTH says 454 (not 535)
# while the directory is down and 235 again after, on pooled connections.
# Caches are off (cache_ttl = 0) so every lookup really asks the database.
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mariadb  # noqa: E402
import mpcli  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

mpcli.require_binary()
if not mariadb.available():
    tap.skip_all("MariaDB server/client not installed")

D = "example.org"
JOHN = "john@" + D
PW = "secret"
CONNECT_TIMEOUT = 2
QUERY_TIMEOUT = 2
# Generous bound for "within a few seconds": a hung server may cost a
# connect timeout plus a read timeout (libmariadb retries reads), and the
# ASan build is slower.
PROMPT = 10.0

DIRECTORY = {"cache_ttl": 0, "negative_ttl": 0}


def lookup_is(ws, addr, rc, desc, max_s=None):
    r = ws.run("lookup", addr)
    good = r.rc == rc
    if rc == mpcli.EX_TEMPFAIL:
        good = good and r.out == "" and "temporarily unavailable" in r.err
    if max_s is not None:
        good = good and r.elapsed < max_s
    if rc == mpcli.EX_TEMPFAIL:
        tap.diag("%s: %.2fs" % (desc, r.elapsed))
    tap.ok(good, desc, repr(r), "  want exit %d%s" % (
        rc, "" if max_s is None else " within %.0fs" % max_s))
    return r


def outage(ws, db, how, label):
    """Take the server away in one of three ways; check everything fails
    as a temporary failure, promptly; bring it back."""
    if how == "stop":
        tap.is_(db.stop(), 0, "%s: server stopped cleanly" % label)
    elif how == "kill":
        db.kill()
        tap.ok(not db.running(), "%s: server killed" % label)
    else:
        db.pause()
        tap.ok(True, "%s: server paused (SIGSTOP)" % label)
    try:
        lookup_is(ws, JOHN, 75, "%s: lookup john exits 75" % label, PROMPT)
        lookup_is(ws, "nobody@" + D, 75,
                  "%s: lookup of an unknown user is 75 too, never 'unknown'" % label, PROMPT)
        lookup_is(ws, "x@nowhere.test", 75,
                  "%s: even a foreign domain cannot be told apart: 75" % label, PROMPT)
        if how != "pause":   # a hung server makes each of these wait: keep it short
            r = ws.run("user", "list")
            tap.ok(r.rc != 0 and r.out == "" and r.err.startswith("moonpost: ")
                   and len(r.err.splitlines()) == 1,
                   "%s: user list fails with one error line instead of listing nothing"
                   % label, repr(r))
            r = ws.run("domain", "add", "new.example")
            tap.ok(r.rc != 0 and r.err.startswith("moonpost: "),
                   "%s: domain add fails with a message" % label, repr(r))
    finally:
        if how == "pause":
            db.resume()
        else:
            db.start()
    lookup_is(ws, JOHN, 0, "%s: server back: lookup john exits 0" % label)
    lookup_is(ws, "nobody@" + D, 1, "%s: and nobody@ is unknown (1) again" % label)


# ------------------------------------------------------------ daemon part --

def daemon_auth_outage(db, ws, settings):
    """SMTP AUTH against a MariaDB directory that goes away and comes back.
    Everything here is SKIPped while the daemon does not offer AUTH on a
    plaintext_auth submission listener (check by EHLO)."""
    directory = mpd.merge({"backend": "mariadb",
                           "mariadb": dict(settings, connect_timeout=CONNECT_TIMEOUT,
                                           query_timeout=QUERY_TIMEOUT),
                           "maildir": ws.vmail + "/%d/%n/Maildir"}, dict(DIRECTORY))
    names = ["AUTH john: 235", "wrong password: 535", "unknown user: 535",
             "db stopped: AUTH john 454", "db stopped: wrong password 454, not 535",
             "db stopped: unknown user 454", "db back: AUTH john 235 again",
             "db back: wrong password 535", "db hung: AUTH john 454",
             "db resumed: AUTH john 235", "daemon stops cleanly"]
    with mpcli.auth_daemon(directory) as d:
        port = d.ports["auth"]
        mechs = mpcli.auth_mechanisms(mpcli.ehlo(port))
        if "PLAIN" not in mechs:
            for n in names:
                tap.skip("daemon: " + n, "moonpostd does not offer AUTH PLAIN yet")
            return

        def auth(user, pw, code, desc, max_s=PROMPT):
            r, took = mpcli.auth_plain(port, user, pw)
            tap.ok(r.code == code and took < max_s, "daemon: " + desc,
                   "reply %r after %.2fs; want %d within %.0fs" % (r.lines, took, code, max_s))
            return r

        r = auth(JOHN, PW, 235, names[0])
        tap.like(r.text, r"^235 2\.7\.0 ", "daemon: 235 2.7.0 text")
        r = auth(JOHN, "wrong", 535, names[1])
        tap.like(r.text, r"^535 5\.7\.8 ", "daemon: 535 5.7.8 text")
        auth("ghost@" + D, PW, 535, names[2])

        db.stop()
        try:
            r = auth(JOHN, PW, 454, names[3])
            tap.like(r.text, r"^454 4\.7\.0 ", "daemon: 454 4.7.0 text")
            auth(JOHN, "wrong", 454, names[4])
            auth("ghost@" + D, PW, 454, names[5])
        finally:
            db.start()
        # Pooled connections notice the restart on their next use.
        got = mpd.poll(lambda: mpcli.auth_plain(port, JOHN, PW)[0].code == 235, timeout=15,
                       interval=0.5)
        tap.ok(got, "daemon: " + names[6])
        auth(JOHN, "wrong", 535, names[7])

        db.pause()
        try:
            auth(JOHN, PW, 454, names[8], max_s=PROMPT + QUERY_TIMEOUT * 3)
        finally:
            db.resume()
        got = mpd.poll(lambda: mpcli.auth_plain(port, JOHN, PW)[0].code == 235, timeout=15,
                       interval=0.5)
        tap.ok(got, "daemon: " + names[9])
        tap.is_(d.stop(), 0, "daemon: " + names[10])


with tap.section("mariadb outage"):
    with mariadb.MariaDB() as db:
        settings = db.create_ispmail()
        ws = mpcli.Workspace("mariadb", name="outage", directory=DIRECTORY,
                             mariadb=dict(settings, connect_timeout=CONNECT_TIMEOUT,
                                          query_timeout=QUERY_TIMEOUT))
        with tap.section("setup"):
            ws.ok_run("domain add", "domain", "add", D)
            ws.ok_run("user add john", "user", "add", JOHN, "--scheme", "BLF-CRYPT",
                      input=PW + "\n")
            lookup_is(ws, JOHN, 0, "lookup john exits 0")
            lookup_is(ws, "nobody@" + D, 1, "lookup nobody@ exits 1 (no catch-all)")
        for how in ("stop", "kill", "pause"):
            with tap.section("outage by " + how):
                outage(ws, db, how, "db " + how)
        with tap.section("daemon"):
            daemon_auth_outage(db, ws, settings)
        ws.cleanup()

tap.done()
