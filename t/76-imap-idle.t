#!/usr/bin/env python3
# IMAP concurrency: two sessions on one mailbox (one expunges, the other
# fetches the vanished message without a crash and learns of the expunge at
# NOOP, flags set by one are seen by the other), and 1,000 simultaneous IDLE
# connections that all see one SMTP delivery.
import os
import smtplib
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
IDLERS = 1000
USERS = 4


class Imap:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def until(self, tag):
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return out, ln
            out.append(ln)

    def cmd(self, text):
        self.n += 1
        t = "c%d" % self.n
        self.sock.sendall(("%s %s\r\n" % (t, text)).encode())
        return self.until(t)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def put(md, content, n):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + n, n, os.getpid(), len(content), w)
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(content)


def two_sessions(port, md):
    tap.section("two sessions on one mailbox")
    for i in range(3):
        put(md, b"Subject: m%d\n\nbody %d\n" % (i, i), i + 1)
    a, b = Imap(port), Imap(port)
    for c in (a, b):
        c.line()
        c.cmd('LOGIN u0@example.org secret')
        u, t = c.cmd("SELECT INBOX")
        tap.ok("* 3 EXISTS" in u, "SELECT: 3 messages", u)
    a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    u, t = a.cmd("EXPUNGE")
    tap.is_(u, ["* 2 EXPUNGE"], "A expunges message 2")
    u, t = b.cmd("FETCH 2 BODY.PEEK[TEXT]")
    tap.ok(u == [] and t.split(" ", 1)[1].startswith("NO [EXPUNGEISSUED]"),
           "B fetches the vanished message: NO [EXPUNGEISSUED], no crash", u, t)
    u, t = b.cmd("FETCH 1:3 UID")
    # message 2 is still in B's snapshot: its UID is known without the file
    tap.is_(u, ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"],
            "B's FETCH sends no EXPUNGE (RFC 3501 7.4.1)")
    u, t = b.cmd("NOOP")
    tap.is_(u, ["* 2 EXPUNGE"], "B learns of the expunge at NOOP")
    u, t = b.cmd("FETCH 2 BODY.PEEK[TEXT]")
    tap.ok("body 2" in "\n".join(u), "B: message 2 is now the former 3", u)
    b.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)")
    u, t = a.cmd("NOOP")
    tap.is_(u, ["* 1 FETCH (FLAGS (\\Flagged \\Recent))"], "A sees B's flag at NOOP")
    for c in (a, b):
        c.cmd("LOGOUT")
        c.close()


def many_idlers(d, port):
    tap.section("%d IDLE connections" % IDLERS)
    conns = []
    t0 = time.time()
    try:
        for i in range(IDLERS):
            c = Imap(port)
            c.sock.sendall(b"l LOGIN u%d@example.org secret\r\ns SELECT INBOX\r\ni IDLE\r\n" % (i % USERS))
            conns.append(c)
        ready = 0
        bad = []
        for c in conns:
            c.line()
            r = [c.until("l"), c.until("s")]
            ln = c.line()
            c.idling = ln.startswith("+ ")
            ready += c.idling
            if not c.idling and len(bad) < 3:
                bad.append((r, ln))
        if bad:
            tap.diag(repr(bad))
    except (OSError, EOFError) as e:
        tap.ok(False, "%d sessions idling" % IDLERS, repr(e), d.log_tail(10))
        return
    tap.is_(ready, IDLERS, "%d sessions log in, select and idle (%.1fs)" % (IDLERS, time.time() - t0))
    counts = {}
    for u in range(USERS):
        counts[u] = None
    t0 = time.time()
    s = smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=30)
    s.sendmail("x@example.net", ["u%d@example.org" % u for u in range(USERS)],
               b"Subject: to everyone\r\n\r\nhello idlers\r\n")
    s.quit()
    seen = 0
    for i, c in enumerate(conns):
        c.sock.settimeout(10)
        try:
            ln = c.line() if c.idling else ""
        except (OSError, EOFError):
            continue
        want = "* %d EXISTS" % (3 if i % USERS == 0 else 1)
        seen += ln == want
    took = time.time() - t0
    tap.is_(seen, IDLERS, "every IDLE session saw the delivery as EXISTS")
    tap.ok(took < 10, "all %d within 10 s (%.2fs)" % (IDLERS, took))
    done = 0
    for c in conns:
        c.sock.sendall(b"DONE\r\nz LOGOUT\r\n")
    for c in conns:
        try:
            u, t = c.until("i") if c.idling else ([], "")
            done += t.startswith("i OK")
        except (OSError, EOFError):
            pass
        c.close()
    tap.is_(done, IDLERS, "DONE ends every IDLE")


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\n" + "".join("user u%d@example.org %s\n" % (u, h) for u in range(USERS)))
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "smtp": {"connections_max": 5000, "connections_per_ip": 5000}})
    d.start()
    try:
        two_sessions(port, os.path.join(vmail, "example.org", "u0", "Maildir"))
        many_idlers(d, port)
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
