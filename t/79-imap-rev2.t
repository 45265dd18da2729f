#!/usr/bin/env python3
# IMAP4rev2 (RFC 9051) after ENABLE IMAP4rev2, next to an IMAP4rev1
# session on the same Maildir: CAPABILITY lists both; until ENABLE the
# session is IMAP4rev1 (RECENT, \Recent, * SEARCH, modified UTF-7 names);
# after it: SELECT gives EXISTS and LIST, no RECENT and no UNSEEN code;
# no \Recent in FETCH FLAGS, none in arrivals seen by NOOP; SEARCH answers
# ESEARCH (RETURN (ALL) by default, UID for UID SEARCH, nothing for no
# match); mailbox names in UTF-8 both ways (CREATE, LIST, LSUB, STATUS,
# SELECT, APPEND, COPY, MOVE, RENAME, GETQUOTAROOT) stored in modified
# UTF-7 on disk as Dovecot stores them ("&" becomes "&-"), seen by the
# IMAP4rev1 session in modified UTF-7; invalid UTF-8 names refused; ENABLE
# in the selected state refused (RFC 5161 3.1).
import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
DRAFTS = "Entw\u00fcrfe"                # stored as Entw&APw-rfe
DRAFTS7 = "Entw&APw-rfe"
JP = "\u65e5\u672c\u8a9e"               # stored as &ZeVnLIqe-
JP7 = "&ZeVnLIqe-"


class Imap:
    """Raw IMAP client over bytes: exact lines, UTF-8 both ways."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def cmd(self, text):
        self.n += 1
        t = b"r%d" % self.n
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        self.sock.sendall(t + b" " + data + b"\r\n")
        untagged = []
        while True:
            ln = self.line()
            if ln.startswith(t + b" "):
                return [u.decode("utf-8", "replace") for u in untagged], ln[len(t) + 1:].decode()
            untagged.append(ln)

    def st(self, text):
        return self.cmd(text)[1]


def login(port):
    c = Imap(port)
    tap.like(c.st('LOGIN u@example.org "secret"'), r"^OK", "login")
    return c


def put(md, folder, n, sub="new"):
    d = md if folder == "INBOX" else os.path.join(md, "." + folder)
    for s in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, s), exist_ok=True)
    for i in range(n):
        data = b"From: a@example.org\nSubject: s%d\n\nbody\n" % i
        name = "%d.M%dP%d.rev2%s" % (1700000000 + i, put.seq, os.getpid(), ":2," if sub == "cur" else "")
        put.seq += 1
        with open(os.path.join(d, sub, name), "wb") as f:
            f.write(data)


put.seq = 0


def names(untagged, kind="LIST"):
    out = []
    for u in untagged:
        m = re.match(r'^\* %s \([^)]*\) "\." (.*)$' % kind, u)
        if m:
            s = m.group(1)
            out.append(s[1:-1].replace('\\"', '"').replace("\\\\", "\\") if s.startswith('"') else s)
    return sorted(out)


def rev1_before_enable(port, md):
    c = login(port)
    u, t = c.cmd("CAPABILITY")
    caps = u[0].split()
    tap.ok("IMAP4rev2" in caps and "IMAP4rev1" in caps, "CAPABILITY lists IMAP4rev1 and IMAP4rev2")
    put(md, "INBOX", 3)
    u, t = c.cmd("SELECT INBOX")
    tap.ok("* 3 RECENT" in u, "before ENABLE: SELECT gives RECENT (IMAP4rev1)", u)
    u, t = c.cmd("FETCH 1 FLAGS")
    tap.ok(any("\\Recent" in x for x in u), "before ENABLE: \\Recent in FLAGS", u)
    u, t = c.cmd("SEARCH ALL")
    tap.is_(u, ["* SEARCH 1 2 3"], "before ENABLE: * SEARCH")
    tap.like(c.st("ENABLE IMAP4rev2"), r"^BAD", "ENABLE in the selected state: BAD (RFC 5161 3.1)")
    c.st("LOGOUT")


def rev2_select(port, md):
    c = login(port)
    u, t = c.cmd("ENABLE IMAP4rev2")
    tap.is_((u, t[:2]), (["* ENABLED IMAP4rev2"], "OK"), "ENABLE IMAP4rev2")
    put(md, "INBOX", 2)
    u, t = c.cmd("SELECT inbox")
    tap.ok(t.startswith("OK [READ-WRITE]"), "SELECT", t)
    tap.ok("* 5 EXISTS" in u, "EXISTS", u)
    tap.ok('* LIST () "." INBOX' in u, "a LIST response with the mailbox's name (RFC 9051 6.3.2)", u)
    tap.ok(not any("RECENT" in x for x in u), "no RECENT response", u)
    tap.ok(not any("[UNSEEN" in x for x in u), "no UNSEEN response code", u)
    u, t = c.cmd("FETCH 1:* FLAGS")
    tap.ok(len(u) == 5 and not any("\\Recent" in x for x in u), "no \\Recent in FETCH FLAGS", u)
    tap.is_(len(os.listdir(os.path.join(md, "new"))), 0, "new/ moved to cur/ all the same")
    put(md, "INBOX", 1)
    u, t = c.cmd("NOOP")
    tap.is_(u, ["* 6 EXISTS"], "an arrival: EXISTS, no RECENT")
    u, t = c.cmd("FETCH 6 FLAGS")
    tap.is_(u, ["* 6 FETCH (FLAGS ())"], "the arrival has no \\Recent")
    u, t = c.cmd("SEARCH RECENT")
    tap.ok(u == ['* ESEARCH (TAG "r%d")' % c.n] and t.startswith("OK"),
           "SEARCH RECENT: none (no message is recent in IMAP4rev2)", u)
    return c


def rev2_search(c):
    u, t = c.cmd("SEARCH ALL")
    tap.is_(u, ['* ESEARCH (TAG "r%d") ALL 1:6' % c.n], "SEARCH: ESEARCH with ALL (RFC 9051 6.4.4)")
    u, t = c.cmd("UID SEARCH 2:3")
    tap.like(u[0] if u else "", r'^\* ESEARCH \(TAG "r\d+"\) UID ALL \d+:\d+$', "UID SEARCH: UID ALL")
    u, t = c.cmd("SEARCH SUBJECT nothing-like-this")
    tap.is_(u, ['* ESEARCH (TAG "r%d")' % c.n], "no match: ESEARCH with no ALL")
    u, t = c.cmd("SEARCH RETURN (COUNT) ALL")
    tap.is_(u, ['* ESEARCH (TAG "r%d") COUNT 6' % c.n], "RETURN (COUNT) as asked")
    u, t = c.cmd("SORT (ARRIVAL) UTF-8 ALL")
    tap.ok(len(u) == 1 and u[0].startswith("* SORT "), "SORT still answers SORT (RFC 5256)", u)


def rev2_names(c, rev1, md):
    tap.like(c.st('CREATE "%s"' % DRAFTS), r"^OK", "CREATE a UTF-8 name")
    tap.ok(os.path.isdir(os.path.join(md, "." + DRAFTS7)), "stored as modified UTF-7: ." + DRAFTS7)
    tap.like(c.st('CREATE "%s.%s"' % (DRAFTS, JP)), r"^OK", "CREATE a UTF-8 child")
    tap.ok(os.path.isdir(os.path.join(md, "." + DRAFTS7 + "." + JP7)), "child stored in modified UTF-7")
    tap.like(c.st('CREATE "R&D"'), r"^OK", 'CREATE "R&D": "&" is a character in IMAP4rev2')
    tap.ok(os.path.isdir(os.path.join(md, ".R&-D")), 'stored as "R&-D"')
    u, t = c.cmd('LIST "" "*"')
    got = names(u)
    tap.ok(DRAFTS in got and DRAFTS + "." + JP in got and "R&D" in got,
           "LIST gives UTF-8 names", got)
    tap.ok(any(('"%s"' % DRAFTS) in x for x in u), "as quoted strings (RFC 9051 QUOTED-CHAR)", u)
    u, t = c.cmd('LIST "" "Entw%"')
    tap.is_(names(u), [DRAFTS], "a UTF-8 pattern")
    u, t = rev1.cmd('LIST "" "*"')
    got = names(u)
    tap.ok(DRAFTS7 in got and DRAFTS7 + "." + JP7 in got and "R&-D" in got,
           "the IMAP4rev1 session sees modified UTF-7", got)
    u, t = c.cmd('STATUS "%s" (MESSAGES)' % DRAFTS)
    tap.is_(u, ['* STATUS "%s" (MESSAGES 0)' % DRAFTS], "STATUS names the mailbox in UTF-8")
    tap.like(c.st('APPEND "%s" {6+}\r\nx: y\r\n' % DRAFTS), r"^OK", "APPEND to a UTF-8 name")
    tap.like(c.st('COPY 1 "%s"' % DRAFTS), r"^OK", "COPY to a UTF-8 name")
    tap.like(c.st('MOVE 2 "R&D"'), r"^OK", 'MOVE to "R&D"')
    u, t = rev1.cmd('STATUS "%s" (MESSAGES)' % DRAFTS7)
    tap.is_(u, ['* STATUS %s (MESSAGES 2)' % DRAFTS7], "the IMAP4rev1 session counts them")
    tap.like(c.st('SUBSCRIBE "%s"' % DRAFTS), r"^OK", "SUBSCRIBE")
    u, t = c.cmd('LSUB "" "Entw*"')
    tap.is_(names(u, "LSUB"), [DRAFTS], "LSUB in UTF-8")
    u, t = c.cmd('GETQUOTAROOT "%s"' % DRAFTS)
    tap.ok(any(x.startswith('* QUOTAROOT "%s"' % DRAFTS) for x in u), "GETQUOTAROOT in UTF-8", u)
    tap.like(c.st('RENAME "R&D" "%s"' % JP), r"^OK", "RENAME to a UTF-8 name")
    tap.ok(os.path.isdir(os.path.join(md, "." + JP7)) and not os.path.isdir(os.path.join(md, ".R&-D")),
           "renamed on disk")
    u, t = c.cmd('EXAMINE "%s"' % JP)
    tap.ok(t.startswith("OK [READ-ONLY]") and '* LIST () "." "%s"' % JP in u and "* 1 EXISTS" in u,
           "EXAMINE a UTF-8 name: its LIST in UTF-8", u)
    tap.like(c.st(b'CREATE "bad\xff"'), r"^BAD", "invalid UTF-8: BAD")
    tap.like(c.st(b'CREATE "\xc0\xafx"'), r"^BAD", "an overlong form: BAD")
    tap.like(c.st('CREATE "a/b"'), r"^NO \[CANNOT\]", "a name the store refuses: NO [CANNOT]")


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser u@example.org %s quota=10000000\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    md = os.path.join(vmail, "example.org", "u", "Maildir")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        with tap.section("IMAP4rev1 until ENABLE"):
            rev1_before_enable(port, md)
        with tap.section("ENABLE IMAP4rev2: SELECT, FLAGS"):
            c = rev2_select(port, md)
        with tap.section("ESEARCH"):
            rev2_search(c)
        with tap.section("UTF-8 mailbox names"):
            rev1 = login(port)
            rev2_names(c, rev1, md)
        tap.like(c.st("LOGOUT"), r"^OK", "LOGOUT")
        tap.ok(d.running(), "the daemon is still running")
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
