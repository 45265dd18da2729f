#!/usr/bin/env python3
# POP3 (RFC 1939, 2449, 2595, 3206, 5034) against the real daemon: every
# command in both states, STLS and implicit TLS, plaintext refused before
# TLS with [AUTH], SASL PLAIN, limits (bad commands, long lines, idle
# timeout), DELE/RSET/QUIT semantics on disk, the [IN-USE] lock, mail
# delivered during a session, \Seen after RETR, dot-stuffing, 8-bit and a
# 5 MB message (and a client that stops reading it), Dovecot-format UIDLs
# from dovecot-uidlist and Dovecot's uidlist lock.
import base64
import glob
import os
import re
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
IDLE = 4


def wire(content):
    """What RETR must send for a file's bytes: CRLF, dot-stuffed, '.' line."""
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for ln in lines:
        if ln.endswith(b"\r"):
            ln = ln[:-1]
        out.append((b"." + ln if ln.startswith(b".") else ln) + b"\r\n")
    return b"".join(out) + b".\r\n"


class Pop:
    """Raw line-level POP3 client (poplib hides what we must check)."""

    def __init__(self, port, tls=False, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = mpd.client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def multi_raw(self):
        """Bytes up to and including the terminating .CRLF line."""
        while True:
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 5], self.buf[i + 5:]
                return out
            if self.buf == b".\r\n":
                out, self.buf = self.buf, b""
                return out
            self._fill()

    def multi(self):
        raw = self.multi_raw()
        return [x.decode() for x in raw.split(b"\r\n")[:-2]]

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, c):
        self.send(c + "\r\n")
        return self.line()

    def stls(self):
        r = self.cmd("STLS")
        if r.startswith("+OK"):
            self.sock = mpd.client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        return r

    def login(self, user="john@example.org", pw="secret"):
        self.cmd("USER " + user)
        return self.cmd("PASS " + pw)

    def eof(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(4096)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError):
            return True
        except ssl.SSLError:
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login_soon(port, user="john@example.org", timeout=10):
    """A new session's login reply, retried while the maildrop is still
    [IN-USE]: a session that ended by timeout or hang-up releases its lock
    when the server has finished it (a pool job), which lags under load.
    Returns (reply, open Pop); the caller closes it."""
    deadline = time.monotonic() + timeout
    while True:
        c = Pop(port)
        c.line()
        r = c.login(user)
        if "[IN-USE]" not in r or time.monotonic() > deadline:
            return r, c
        c.close()
        time.sleep(0.1)


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write("domain example.org\nuser john@example.org %s\n"
                "user jane@example.org %s\nuser ann@example.org %s\n"
                "user deny@example.org %s\n" % (h, h, h, h))


SEQ = [0]


def put(maildir, content, sub="new", suffix=""):
    """A message file as a delivery would make it (Dovecot-style name)."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    SEQ[0] += 1
    w = len(content) + content.count(b"\n") - content.count(b"\r\n")
    name = "%d.M%dP%d.test,S=%d,W=%d%s" % (1700000000 + SEQ[0], SEQ[0], os.getpid(),
                                           len(content), w, suffix)
    with open(os.path.join(maildir, sub, name), "wb") as f:
        f.write(content)
    return name


def files(maildir):
    return sorted(os.path.basename(p) for d in ("new", "cur")
                  for p in glob.glob(os.path.join(maildir, d, "*")))


# The Lua auth hook sees POP3 logins (protocol "pop3").
AUTH_POLICY = r'''
hook("auth", function(ctx)
  if ctx.auth.user == "deny@example.org" and ctx.auth.result == "ok"
     and ctx.conn.protocol == "pop3" then
    return deny("5.7.8 Not today, " .. ctx.auth.mechanism)
  end
end)
'''

MSG1 = b"From: a@example.net\nSubject: one\n\nline 1\n.dotted\n..two dots\nline 4\n.\nend\n"
MSG2 = (b"From: b@example.net\nSubject: =?utf-8?q?zwei?=\nContent-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n\nGr\xc3\xbc\xc3\x9fe, \xe2\x82\xac 8-bit\nno final newline")
MSG3 = b"Subject: three\r\n\r\nalready CRLF\r\nbody\r\n"


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    ports = {k: mpd.free_port() for k in ("stls", "plain", "tls")}
    d.config["listen"].extend([
        {"address": "127.0.0.1", "port": ports["stls"], "protocol": "pop3", "tls": "starttls"},
        {"address": "127.0.0.1", "port": ports["plain"], "protocol": "pop3", "tls": "none",
         "plaintext_auth": True},
        {"address": "127.0.0.1", "port": ports["tls"], "protocol": "pop3", "tls": "implicit"},
    ])
    vmail = os.path.join(d.dir, "vmail")
    with open(os.path.join(d.policies_dir, "pop3-auth.lua"), "w") as f:
        f.write(AUTH_POLICY)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "pop3": {"idle_timeout": IDLE, "errors_max": 12, "line_max": 300}})
    d.start()
    md = os.path.join(vmail, "example.org", "john", "Maildir")
    names = [put(md, MSG1), put(md, MSG2), put(md, MSG3)]
    try:
        before_tls(ports)
        transaction(d, ports, md, names)
        sasl(ports)
        limits(ports)
        deletions(d, ports, md)
        lock_and_delivery(d, ports, md)
        big(d, ports, os.path.join(vmail, "example.org", "ann", "Maildir"))
        apop_off(ports)
    finally:
        d.stop()
        d.cleanup()
    apop_on()
    tap.done()


def before_tls(ports):
    c = Pop(ports["stls"])
    tap.like(c.line(), r"^\+OK ", "greeting")
    tap.is_(c.cmd("CAPA"), "+OK", "CAPA before TLS")
    caps = c.multi()
    tap.ok("STLS" in caps and "USER" not in caps and not any(x.startswith("SASL") for x in caps),
           "before TLS: STLS offered, no USER/SASL", caps)
    for want in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
        tap.ok(want in caps, "CAPA lists " + want)
    tap.like(c.cmd("USER john@example.org"), r"^-ERR \[AUTH\] Plaintext authentication disallowed",
             "USER before TLS: -ERR [AUTH]")
    tap.like(c.cmd("PASS secret"), r"^-ERR \[AUTH\]", "PASS before TLS: -ERR [AUTH]")
    tap.like(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0john@example.org\0secret").decode()),
             r"^-ERR \[AUTH\]", "AUTH before TLS: -ERR [AUTH]")
    tap.like(c.cmd("STAT"), r"^-ERR", "STAT in AUTHORIZATION: -ERR")
    tap.like(c.stls(), r"^\+OK", "STLS: +OK")
    tap.is_(c.cmd("CAPA"), "+OK", "CAPA after STLS")
    caps = c.multi()
    tap.ok("STLS" not in caps and "USER" in caps and "SASL PLAIN" in caps,
           "after TLS: USER and SASL PLAIN, no STLS", caps)
    tap.like(c.cmd("STLS"), r"^-ERR", "second STLS: -ERR")
    tap.like(c.login(pw="wrong"), r"^-ERR \[AUTH\] Authentication failed", "wrong password: -ERR [AUTH]")
    tap.like(c.cmd("PASS secret"), r"^-ERR", "PASS without USER: -ERR")
    tap.like(c.login(), r"^\+OK", "login after STLS")
    tap.like(c.cmd("STLS"), r"^-ERR", "STLS in TRANSACTION: -ERR")
    tap.like(c.cmd("USER john@example.org"), r"^-ERR", "USER in TRANSACTION: -ERR")
    tap.like(c.cmd("QUIT"), r"^\+OK", "QUIT")
    c.close()
    # STLS discards pipelined plaintext (RFC 2595 4, as conn.h promises).
    c = Pop(ports["stls"])
    c.line()
    c.send("STLS\r\nCAPA\r\n")
    tap.like(c.line(), r"^\+OK", "pipelined STLS: +OK")
    c.sock = mpd.client_ctx().wrap_socket(c.sock, server_hostname="localhost")
    tap.like(c.cmd("NOOP"), r"^-ERR", "nothing pipelined before TLS was executed (NOOP is first)")
    c.close()
    # Implicit TLS (port 995 style).
    c = Pop(ports["tls"], tls=True)
    tap.like(c.line(), r"^\+OK", "implicit TLS greeting")
    tap.like(c.login(), r"^\+OK Logged in, 3 messages", "implicit TLS login")
    tap.like(c.cmd("QUIT"), r"^\+OK", "implicit TLS QUIT")
    c.close()


def uidlist(md):
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        lines = f.read().splitlines()
    hdr = dict((w[0], w[1:]) for w in lines[0].split()[1:])
    recs = {}
    for ln in lines[1:]:
        uid, rest = ln.split(" ", 1)
        recs[rest.split(":", 1)[1]] = int(uid)
    return int(hdr["V"]), int(hdr["N"]), recs, lines[0]


def transaction(d, ports, md, names):
    c = Pop(ports["plain"])
    c.line()
    tap.like(c.login(), r"^\+OK", "plaintext login on a listener that allows it")
    # RFC 1939 11: sizes count CRLF line ends, not the dot-stuffing.
    sizes = [len(m) + m.count(b"\n") - m.count(b"\r\n") for m in (MSG1, MSG2, MSG3)]
    tap.is_(c.cmd("STAT"), "+OK 3 %d" % sum(sizes), "STAT: count and octets (CRLF sizes)")
    tap.is_(c.cmd("LIST"), "+OK", "LIST")
    tap.is_(c.multi(), ["%d %d" % (i + 1, s) for i, s in enumerate(sizes)], "LIST lines")
    tap.is_(c.cmd("LIST 2"), "+OK 2 %d" % sizes[1], "LIST 2")
    tap.like(c.cmd("LIST 4"), r"^-ERR", "LIST 4: no such message")
    tap.like(c.cmd("LIST 0"), r"^-ERR", "LIST 0: -ERR")
    tap.like(c.cmd("LIST x"), r"^-ERR", "LIST x: -ERR")
    v, n, recs, hdr = uidlist(md)
    tap.like(hdr, r"^3 V\d+ N4 G[0-9a-f]{32}$", "dovecot-uidlist header: version 3, V, N, G")
    tap.is_(c.cmd("UIDL"), "+OK", "UIDL")
    uidls = c.multi()
    want = ["%d %08x%08x" % (i + 1, recs[names[i].split(":")[0]], v) for i in range(3)]
    tap.is_(uidls, want, "UIDL = Dovecot's %08Xu%08Xv (lower-case hex, as Dovecot prints it) from dovecot-uidlist")
    tap.is_(c.cmd("UIDL 3"), "+OK " + want[2], "UIDL 3")
    # Blank arguments are the no-argument form (a bug once read an unset word).
    tap.is_(c.cmd("UIDL  "), "+OK", "UIDL with only blanks: the listing")
    tap.is_(c.multi(), want, "the same listing")
    tap.is_(c.cmd("LIST   "), "+OK", "LIST with only blanks: the listing")
    tap.is_(c.multi(), ["%d %d" % (i + 1, s) for i, s in enumerate(sizes)], "the same lines")
    # RETR: CRLF, dot-stuffing, 8-bit bytes unchanged, final CRLF added.
    tap.like(c.cmd("RETR 1"), r"^\+OK %d octets" % sizes[0], "RETR 1: +OK with octets")
    tap.is_(c.multi_raw(), wire(MSG1), "RETR 1: CRLF and dot-stuffed lines")
    c.cmd("RETR 2")
    tap.is_(c.multi_raw(), wire(MSG2), "RETR 2: 8-bit content intact, CRLF added at the end")
    c.cmd("RETR 3")
    tap.is_(c.multi_raw(), wire(MSG3), "RETR 3: CRLF file passed as is")
    seen = [f for f in os.listdir(os.path.join(md, "cur")) if f.startswith(names[0].split(":")[0])]
    tap.ok(len(seen) == 1 and seen[0].endswith(":2,"), "\\Seen not yet set during the session", seen)
    tap.ok(os.listdir(os.path.join(md, "new")) == [], "new/ moved to cur/ at login")
    tap.is_(c.cmd("TOP 1 0"), "+OK", "TOP 1 0")
    tap.is_(c.multi_raw(), b"From: a@example.net\r\nSubject: one\r\n\r\n.\r\n", "TOP 1 0: header + blank line")
    c.cmd("TOP 1 2")
    tap.is_(c.multi_raw(), b"From: a@example.net\r\nSubject: one\r\n\r\nline 1\r\n..dotted\r\n.\r\n",
            "TOP 1 2: two body lines, dot-stuffed")
    c.cmd("TOP 3 100")
    tap.is_(c.multi_raw(), wire(MSG3), "TOP past the end: whole message")
    tap.like(c.cmd("TOP 1"), r"^-ERR", "TOP without line count: -ERR")
    tap.is_(c.cmd("NOOP"), "+OK", "NOOP")
    tap.like(c.cmd("NOOP x"), r"^-ERR", "NOOP with arguments: -ERR")
    tap.like(c.cmd("DELE 2"), r"^\+OK", "DELE 2")
    tap.like(c.cmd("DELE 2"), r"^-ERR", "DELE 2 again: -ERR")
    tap.like(c.cmd("RETR 2"), r"^-ERR", "RETR of a deleted message: -ERR")
    tap.like(c.cmd("LIST 2"), r"^-ERR", "LIST of a deleted message: -ERR")
    tap.is_(c.cmd("STAT"), "+OK 2 %d" % (sizes[0] + sizes[2]), "STAT leaves out deleted")
    c.cmd("LIST")
    tap.is_(len(c.multi()), 2, "LIST leaves out deleted")
    tap.like(c.cmd("RSET"), r"^\+OK", "RSET")
    tap.is_(c.cmd("STAT"), "+OK 3 %d" % sum(sizes), "RSET undeletes")
    # Pipelining (RFC 2449 6.6): answers in order.
    c.send("NOOP\r\nSTAT\r\nUIDL 1\r\nLIST 1\r\n")
    got = [c.line() for _ in range(4)]
    tap.is_(got, ["+OK", "+OK 3 %d" % sum(sizes), "+OK " + want[0], "+OK 1 %d" % sizes[0]],
            "pipelined commands answered in order")
    c.send("RETR 1\r\nRETR 3\r\nNOOP\r\n")
    c.line()
    a = c.multi_raw()
    c.line()
    b = c.multi_raw()
    tap.ok(a == wire(MSG1) and b == wire(MSG3) and c.line() == "+OK", "pipelined RETRs")
    tap.like(c.cmd("CAPA"), r"^\+OK", "CAPA in TRANSACTION")
    caps = c.multi()
    tap.ok("USER" not in caps and "STLS" not in caps, "no USER/STLS after login", caps)
    tap.like(c.cmd("QUIT"), r"^\+OK", "QUIT without deletions")
    c.close()
    tap.is_(len(files(md)), 3, "nothing deleted")
    tap.is_(sorted(f.split(":")[1] for f in files(md)), ["2,S", "2,S", "2,S"],
            "after QUIT every RETR'd file is \\Seen (:2,S), as Dovecot does")
    # UIDLs stay the same in the next session.
    p = poplib.POP3("127.0.0.1", ports["plain"])
    p.user("john@example.org")
    p.pass_("secret")
    tap.is_([x.decode() for x in p.uidl()[1]], want, "UIDL stable across sessions (poplib)")
    p.quit()


def sasl(ports):
    c = Pop(ports["plain"])
    c.line()
    tap.is_(c.login("deny@example.org"), "-ERR [AUTH] Not today, USER",
            "the Lua auth hook can refuse a right password")
    tap.like(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0deny@example.org\0secret").decode()),
             r"^-ERR \[AUTH\] Not today, PLAIN$", "... for AUTH PLAIN too")
    tap.is_(c.cmd("AUTH"), "+OK", "AUTH without mechanism lists them")
    tap.is_(c.multi(), ["PLAIN"], "... PLAIN")
    tap.like(c.cmd("AUTH CRAM-MD5"), r"^-ERR", "unknown mechanism: -ERR")
    tap.like(c.cmd("AUTH PLAIN"), r"^\+ ?$", "AUTH PLAIN: continuation")
    tap.like(c.cmd("*"), r"^-ERR", "'*' cancels")
    c.cmd("AUTH PLAIN")
    tap.like(c.cmd("%%%"), r"^-ERR", "bad base64: -ERR")
    c.cmd("AUTH PLAIN")
    tap.like(c.cmd(base64.b64encode(b"\0john@example.org\0nope").decode()),
             r"^-ERR \[AUTH\]", "AUTH PLAIN wrong password: -ERR [AUTH]")
    tap.like(c.cmd("AUTH PLAIN " + base64.b64encode(b"jane@example.org\0john@example.org\0secret").decode()),
             r"^-ERR \[AUTH\]", "AUTH PLAIN with a different authzid: -ERR [AUTH]")
    c.cmd("AUTH PLAIN")
    tap.like(c.cmd(base64.b64encode(b"\0john@example.org\0secret").decode()),
             r"^\+OK Logged in", "AUTH PLAIN via continuation")
    c.cmd("QUIT")
    c.close()
    c = Pop(ports["tls"], tls=True)
    c.line()
    tap.like(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0jane@example.org\0secret").decode()),
             r"^\+OK Logged in, 0 messages", "AUTH PLAIN with initial response (empty maildrop created)")
    c.cmd("QUIT")
    c.close()
    p = poplib.POP3_SSL("127.0.0.1", ports["tls"], context=mpd.client_ctx())
    p.user("jane@example.org")
    p.pass_("secret")
    tap.is_(p.stat(), (0, 0), "poplib over implicit TLS: STAT")
    p.quit()
    p = poplib.POP3("127.0.0.1", ports["stls"])
    p.stls(context=mpd.client_ctx())
    p.user("jane@example.org")
    p.pass_("secret")
    tap.is_(p.stat(), (0, 0), "poplib STLS then login")
    p.quit()


def limits(ports):
    c = Pop(ports["plain"])
    c.line()
    tap.like(c.cmd("X" * 400), r"^-ERR Line too long", "line over line_max: -ERR")
    tap.like(c.cmd("NOOP"), r"^-ERR", "NOOP in AUTHORIZATION: -ERR")
    tap.like(c.cmd("FOOBAR"), r"^-ERR", "unknown command: -ERR")
    tap.like(c.cmd("X\0Y"), r"^-ERR", "NUL byte: -ERR")
    for i in range(7):
        tap.like(c.cmd("BLAH"), r"^-ERR Unknown command", "bad command %d: -ERR" % (i + 5))
    tap.like(c.cmd("BLAH"), r"^-ERR Too many bad commands", "errors_max reached: closed with -ERR")
    tap.ok(c.eof(), "connection closed after too many errors")
    c.close()
    c = Pop(ports["plain"])
    c.line()
    c.login()
    t0 = time.monotonic()
    line = None
    c.sock.settimeout(IDLE + 10)
    try:
        line = c.line()
    except (EOFError, OSError):
        pass
    took = time.monotonic() - t0
    tap.ok(line is not None and line.startswith("-ERR") and IDLE - 1 <= took <= IDLE + 5,
           "idle timeout closes the session (%.1fs, %r)" % (took, line))
    tap.ok(c.eof(), "... and the connection")
    c.close()
    r, c = login_soon(ports["plain"])
    tap.like(r, r"^\+OK", "the timed-out session released the mailbox lock")
    c.cmd("QUIT")
    c.close()


def deletions(d, ports, md):
    before = files(md)
    c = Pop(ports["plain"])
    c.line()
    c.login()
    c.cmd("DELE 1")
    c.cmd("DELE 3")
    c.close()   # dropped, no QUIT
    time.sleep(0.3)
    tap.is_(files(md), before, "DELE then a dropped connection deletes nothing")
    r, c = login_soon(ports["plain"])
    tap.like(r, r"^\+OK Logged in, 3 messages", "the dropped session released the lock")
    c.cmd("DELE 1")
    c.cmd("RSET")
    c.cmd("DELE 2")
    tap.like(c.cmd("QUIT"), r"^\+OK Logging out, 1 messages deleted", "DELE + QUIT")
    tap.ok(c.eof(), "closed after QUIT")
    c.close()
    after = files(md)
    tap.is_(len(after), 2, "DELE + QUIT removed exactly that file from disk")
    tap.ok(after == [before[0], before[2]], "the other two remain", before, after)
    v, n, recs, hdr = uidlist(md)
    tap.is_(len(recs), 2, "its uidlist record is gone too")
    p = poplib.POP3("127.0.0.1", ports["plain"])
    p.user("john@example.org")
    p.pass_("secret")
    tap.is_(p.stat()[0], 2, "next session: 2 messages")
    tap.is_([x.split()[0] for x in p.uidl()[1]], [b"1", b"2"], "renumbered 1..2")
    p.quit()


def lock_and_delivery(d, ports, md):
    a = Pop(ports["plain"])
    a.line()
    tap.like(a.login(), r"^\+OK", "session A logged in")
    b = Pop(ports["plain"])
    b.line()
    tap.like(b.login(), r"^-ERR \[IN-USE\]", "second session: -ERR [IN-USE]")
    tap.like(b.login("jane@example.org"), r"^\+OK", "another mailbox is not locked")
    b.cmd("QUIT")
    b.close()
    c = Pop(ports["tls"], tls=True)
    c.line()
    tap.like(c.login(), r"^-ERR \[IN-USE\]", "[IN-USE] across listeners (implicit TLS)")
    c.close()
    # Delivery keeps working during the session; the session does not see it.
    s = smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=15)
    s.sendmail("x@example.net", ["john@example.org"],
               b"From: x@example.net\r\nSubject: during\r\n\r\ndelivered during a session\r\n")
    s.quit()
    tap.is_(a.cmd("STAT").split()[1], "2", "the session's maildrop does not change")
    tap.like(a.cmd("QUIT"), r"^\+OK", "session A quits")
    a.close()
    b = Pop(ports["plain"])
    b.line()
    tap.like(b.login(), r"^\+OK Logged in, 3 messages", "the next session sees the new message")
    b.cmd("RETR 3")
    tap.ok(b"delivered during a session" in b.multi_raw(), "and can read it")
    b.close()   # hung up without QUIT: the read message is still \Seen
    tap.ok(mpd.poll(lambda: len([f for f in files(md) if f.endswith(":2,S")]) == 3, 5),
           "a RETR'd message is \\Seen even when the client hangs up", files(md))
    uidlist_lock(d, ports, md)


def uidlist_lock(d, ports, md):
    """Dovecot's lock convention: a held dovecot-uidlist.lock makes a login
    that must assign UIDs wait; a stale one (older than 120 s) is broken."""
    lock = os.path.join(md, "dovecot-uidlist.lock")
    put(md, b"Subject: while locked\n\nx\n")
    with open(lock, "w") as f:
        f.write("held by dovecot\n")
    c = Pop(ports["plain"])
    c.line()
    c.cmd("USER john@example.org")
    c.send("PASS secret\r\n")
    c.sock.settimeout(1.0)
    try:
        early = c.line()
    except (socket.timeout, EOFError, OSError):
        early = None
    tap.ok(early is None, "login waits while dovecot-uidlist.lock is held", early)
    os.unlink(lock)
    c.sock.settimeout(15)
    tap.like(c.line(), r"^\+OK Logged in, 4 messages", "... and goes on once it is released")
    c.cmd("QUIT")
    c.close()
    put(md, b"Subject: stale lock\n\nx\n")
    with open(lock, "w") as f:
        f.write("left by a dead process\n")
    old = time.time() - 300
    os.utime(lock, (old, old))
    p = poplib.POP3("127.0.0.1", ports["plain"], timeout=15)
    p.user("john@example.org")
    tap.like(p.pass_("secret").decode(), r"^\+OK Logged in, 5 messages", "a stale uidlist lock is broken")
    p.quit()
    tap.ok(not os.path.exists(lock), "... and removed")
    read_ahead_order(ports)


def read_ahead_order(ports):
    """Sequential, pipelined, skipping and repeated RETRs (read-ahead paths)
    all give each message's own bytes."""
    c = Pop(ports["plain"])
    c.line()
    c.login()
    n = int(c.cmd("STAT").split()[1])
    one = {}
    for i in range(1, n + 1):
        c.cmd("RETR %d" % i)
        one[i] = c.multi_raw()
    seq = [1, 2, 4, 3, 3, 5, 1, 2]
    c.send("".join("RETR %d\r\n" % i for i in seq) + "DELE 4\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\n")
    got = []
    for i in seq:
        c.line()
        got.append(c.multi_raw())
    tap.ok(got == [one[i] for i in seq], "pipelined RETRs in any order: each message's own bytes")
    tap.like(c.line(), r"^\+OK", "DELE 4 in between")
    c.line()
    tap.is_(c.multi_raw(), one[3], "RETR 3 after it")
    tap.like(c.line(), r"^-ERR", "RETR 4 (deleted, was read ahead): -ERR")
    c.line()
    tap.is_(c.multi_raw(), one[5], "RETR 5 skips the deleted one")
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def big(d, ports, md):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
    body = b"Subject: big\n\n" + line * (5 * 1024 * 1024 // len(line)) + b".starts with dot\n"
    put(md, body)
    p = poplib.POP3("127.0.0.1", ports["plain"], timeout=30)
    p.user("ann@example.org")
    p.pass_("secret")
    t0 = time.monotonic()
    resp, lines, octets = p.retr(1)
    took = time.monotonic() - t0
    want = body.rstrip(b"\n").split(b"\n")
    tap.ok(lines == want, "RETR of a 5 MB message: every line (%.2fs)" % took)
    tap.is_(octets, len(body) + body.count(b"\n"), "... octets as announced (CRLF sizes)")
    # A client that does not read: the server must not buffer the message.
    c = Pop(ports["plain"])
    c.line()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    gone = d.mark()
    p.quit()
    c.login("ann@example.org")
    c.send("RETR 1\r\n")
    time.sleep(1)
    c.close()
    # The server notices the close when it next writes; only then is the
    # maildrop lock free for the next session (under load that can lag).
    # Two sessions end after the mark: poplib's and this one.
    tap.ok(mpd.poll(lambda: len(re.findall(r"event=disconnect", d.log_text(gone))) >= 2, 20),
           "client vanished mid-RETR: the session ends (the daemon must stay clean)")
    # A client that stops reading mid-message is cut after idle_timeout and
    # its mailbox lock released.
    mark = d.mark()
    c = Pop(ports["plain"])
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.line()
    tap.like(c.login("ann@example.org"), r"^\+OK", "stalling client logged in")
    c.send("RETR 1\r\n")
    tap.ok(d.wait_log(r"event=timeout during=retr", timeout=IDLE + 8, since=mark),
           "a client that stops reading mid-RETR is cut after idle_timeout")
    c.close()
    r, c = login_soon(ports["plain"], "ann@example.org")
    tap.like(r, r"^\+OK", "... and its mailbox lock is released")
    c.cmd("QUIT")
    c.close()


def apop_on():
    """pop3.apop = true: the greeting carries a timestamp and APOP checks
    MD5(timestamp + password) against a {PLAIN} directory entry (RFC 1939 7);
    a hashed password cannot do APOP."""
    import hashlib
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    with open(dirfile, "a") as f:
        f.write("user plain@example.org {PLAIN}secret\n")
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "pop3",
                               "tls": "none", "plaintext_auth": True})
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 0,
                                  "maildir": os.path.join(d.dir, "vmail") + "/%d/%n/Maildir"},
                    "pop3": {"apop": True}})
    d.start()
    try:
        def attempt(user, password, stamp_wrong=False):
            c = Pop(port)
            g = c.line()
            m = re.search(r"<[^>]+>", g)
            stamp = m.group(0) if m else ""
            digest = hashlib.md5(((stamp + "x") if stamp_wrong else stamp + password).encode()).hexdigest()
            r = c.cmd("APOP %s %s" % (user, digest))
            c.cmd("QUIT")
            c.close()
            return stamp, r
        stamp, r = attempt("plain@example.org", "secret")
        tap.like(stamp, r"^<\d+\.[0-9a-f]+\.\d+@", "APOP on: a timestamp in the greeting")
        tap.like(r, r"^\+OK", "APOP with the right digest: logged in", r)
        tap.like(attempt("plain@example.org", "secret", stamp_wrong=True)[1], r"^-ERR \[AUTH\]",
                 "APOP with a wrong digest: -ERR [AUTH]")
        tap.like(attempt("john@example.org", "secret")[1], r"^-ERR \[AUTH\]",
                 "APOP for a hashed password: -ERR [AUTH]")
        d.check_sanitizers()
    finally:
        d.stop()
        d.cleanup()


def apop_off(ports):
    c = Pop(ports["plain"])
    g = c.line()
    tap.ok("<" not in g, "no APOP timestamp in the greeting by default", g)
    tap.like(c.cmd("APOP john@example.org " + "0" * 32), r"^-ERR", "APOP is off by default")
    c.close()


main()
