#!/usr/bin/env python3
# IMAP (RFC 3501 and extensions) against the real daemon: greeting and
# CAPABILITY per state, STARTTLS (pipelined plaintext dropped) and implicit
# TLS, LOGIN refused before TLS with LOGINDISABLED advertised, LOGIN with
# literals, AUTHENTICATE PLAIN with SASL-IR and with a continuation, the
# Lua auth hook, ID / ENABLE / NAMESPACE, commands in the wrong state,
# syntax errors, literal and line limits, errors_max, the idle timeout;
# mailboxes: SPECIAL-USE folders for a new user, LIST / LSUB with CHILDREN
# and SPECIAL-USE attributes, CREATE / DELETE / RENAME (INBOX too) /
# SUBSCRIBE / UNSUBSCRIBE on the Maildir++ tree, STATUS, SELECT / EXAMINE
# (UIDVALIDITY from dovecot-uidlist, \Recent, new/ -> cur/), CLOSE
# expunging \Deleted, UNSELECT; and a Python imaplib conversation.
import base64
import smtplib
import imaplib
import os
import re
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


class Imap:
    """Raw IMAP client: exact lines, literals in responses read whole."""

    def __init__(self, port, tls=False, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = mpd.client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.n = 0

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += d

    def line(self):
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            ln, self.buf = self.buf.split(b"\r\n", 1)
            out += ln
            m = re.search(rb"\{(\d+)\}$", ln)
            if not m:
                return out.decode("utf-8", "replace")
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def tag(self):
        self.n += 1
        return "a%d" % self.n

    def until(self, tag):
        untagged = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return untagged, ln
            untagged.append(ln)

    def cmd(self, text):
        t = self.tag()
        self.send("%s %s\r\n" % (t, text))
        return self.until(t)

    def ok(self, text):
        """The tagged line's text after the tag."""
        return self.cmd(text)[1].split(" ", 1)[1]

    def starttls(self):
        u, t = self.cmd("STARTTLS")
        if " OK " in t:
            self.sock = mpd.client_ctx().wrap_socket(self.sock, server_hostname="localhost")
        return t

    def login(self, user="john@example.org", pw="secret"):
        return self.ok('LOGIN %s "%s"' % (user, pw))

    def eof(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(4096)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write("domain example.org\n" + "".join(
            "user %s@example.org %s\n" % (u, h) for u in ("john", "jane", "new", "deny", "lim", "st", "se", "big")) +
            "user q@example.org %s quota=2000\n" % h)


SEQ = [0]


def put(maildir, content, sub="new", flags=None):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    SEQ[0] += 1
    w = len(content) + content.count(b"\n") - content.count(b"\r\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + SEQ[0], SEQ[0], os.getpid(), len(content), w)
    if flags is not None:
        name += ":2," + flags
    with open(os.path.join(maildir, sub, name), "wb") as f:
        f.write(content)
    return name


AUTH_POLICY = r'''
hook("auth", function(ctx)
  if ctx.auth.user == "deny@example.org" and ctx.auth.result == "ok"
     and ctx.conn.protocol == "imap" then
    return deny("5.7.8 Not today, " .. ctx.auth.mechanism)
  end
end)
'''


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    ports = {k: mpd.free_port() for k in ("stls", "plain", "tls")}
    d.config["listen"].extend([
        {"address": "127.0.0.1", "port": ports["stls"], "protocol": "imap", "tls": "starttls"},
        {"address": "127.0.0.1", "port": ports["plain"], "protocol": "imap", "tls": "none",
         "plaintext_auth": True},
        {"address": "127.0.0.1", "port": ports["tls"], "protocol": "imap", "tls": "implicit"},
    ])
    vmail = os.path.join(d.dir, "vmail")
    with open(os.path.join(d.policies_dir, "imap-auth.lua"), "w") as f:
        f.write(AUTH_POLICY)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"idle_timeout": IDLE, "errors_max": 12, "line_max": 2048,
                             "literal_max": 2048, "command_max": 8192}})
    d.start()
    md = os.path.join(vmail, "example.org", "john", "Maildir")
    try:
        before_tls(ports)
        logins(ports)
        misc(ports)
        limits(ports)
        folders(ports, os.path.join(vmail, "example.org", "new", "Maildir"))
        select(ports, md)
        fetch(ports, os.path.join(vmail, "example.org", "lim", "Maildir"))
        store(ports, os.path.join(vmail, "example.org", "st", "Maildir"))
        copy_move(ports, os.path.join(vmail, "example.org", "st", "Maildir"))
        search(ports, os.path.join(vmail, "example.org", "se", "Maildir"))
        sync_idle(d, ports, os.path.join(vmail, "example.org", "se", "Maildir"))
        big(ports, os.path.join(vmail, "example.org", "big", "Maildir"))
        quota(ports)
        with_imaplib(ports)
    finally:
        d.stop()
        d.cleanup()
    tap.done()


def before_tls(ports):
    tap.section("before TLS, STARTTLS")
    c = Imap(ports["stls"])
    g = c.line()
    tap.like(g, r"^\* OK \[CAPABILITY IMAP4rev1 .*\] ", "greeting with CAPABILITY")
    tap.ok("STARTTLS" in g and "LOGINDISABLED" in g and "AUTH=PLAIN" not in g,
           "before TLS: STARTTLS and LOGINDISABLED, no AUTH=PLAIN", g)
    u, t = c.cmd("CAPABILITY")
    tap.ok(len(u) == 1 and u[0].startswith("* CAPABILITY IMAP4rev1 ") and "LOGINDISABLED" in u[0],
           "CAPABILITY before TLS", u)
    tap.like(t, r"^a\d+ OK ", "CAPABILITY tagged OK")
    for cap in ("SASL-IR", "LITERAL+", "ID", "ENABLE", "NAMESPACE", "UNSELECT", "CHILDREN",
                "SPECIAL-USE"):
        tap.ok((" %s " % cap) in (u[0] + " "), "CAPABILITY lists " + cap)
    tap.like(c.login(), r"^NO \[PRIVACYREQUIRED\] ", "LOGIN before TLS: NO [PRIVACYREQUIRED]")
    tap.like(c.ok("AUTHENTICATE PLAIN " + base64.b64encode(b"\0john@example.org\0secret").decode()),
             r"^NO \[PRIVACYREQUIRED\]", "AUTHENTICATE before TLS: NO [PRIVACYREQUIRED]")
    tap.like(c.ok("SELECT INBOX"), r"^BAD ", "SELECT before login: BAD (wrong state)")
    tap.like(c.ok("ENABLE IDLE"), r"^BAD ", "ENABLE before login: BAD")
    tap.like(c.ok("NOOP"), r"^OK ", "NOOP")
    tap.like(c.ok("NOOP x"), r"^BAD ", "NOOP with an argument: BAD")
    tap.like(c.ok("FROBNICATE"), r"^BAD ", "unknown command: BAD")
    tap.like(c.ok("LOGIN (x"), r"^BAD ", "unclosed list: BAD")
    c.send("+bad NOOP\r\n")
    tap.like(c.line(), r"^\* BAD ", "invalid tag: untagged BAD")
    # RFC 3501 6.2.1: nothing pipelined after STARTTLS runs.
    c.send("s1 STARTTLS\r\nx1 NOOP\r\n")
    tap.like(c.until("s1")[1], r"^s1 OK ", "pipelined STARTTLS: OK")
    c.sock = mpd.client_ctx().wrap_socket(c.sock, server_hostname="localhost")
    u, t = c.cmd("CAPABILITY")
    tap.like(t, r"^a\d+ OK", "after TLS: the first answer is to the first command sent over TLS")
    tap.ok("AUTH=PLAIN" in u[0] and "STARTTLS" not in u[0] and "LOGINDISABLED" not in u[0],
           "after TLS: AUTH=PLAIN, no STARTTLS/LOGINDISABLED", u)
    tap.like(c.ok("STARTTLS"), r"^BAD ", "second STARTTLS: BAD")
    tap.like(c.login(pw="wrong"), r"^NO \[AUTHENTICATIONFAILED\] ", "wrong password: NO [AUTHENTICATIONFAILED]")
    tap.like(c.login(), r"^OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in", "LOGIN after STARTTLS")
    tap.like(c.login(), r"^BAD ", "LOGIN when logged in: BAD")
    tap.like(c.ok("STARTTLS"), r"^BAD ", "STARTTLS when logged in: BAD")
    u, t = c.cmd("LOGOUT")
    tap.ok(u == ["* BYE Logging out"] and " OK " in t, "LOGOUT: BYE then OK", u, t)
    tap.ok(c.eof(), "closed after LOGOUT")
    c.close()


def logins(ports):
    tap.section("logins")
    c = Imap(ports["tls"], tls=True)
    g = c.line()
    tap.ok(g.startswith("* OK [CAPABILITY") and "AUTH=PLAIN" in g and "STARTTLS" not in g,
           "implicit TLS greeting: AUTH=PLAIN, no STARTTLS", g)
    ir = base64.b64encode(b"\0john@example.org\0secret").decode()
    tap.like(c.ok("AUTHENTICATE PLAIN " + ir), r"^OK \[CAPABILITY ", "AUTHENTICATE PLAIN with SASL-IR")
    c.close()
    c = Imap(ports["tls"], tls=True)
    c.line()
    c.send("p1 AUTHENTICATE PLAIN\r\n")
    tap.is_(c.line(), "+ ", "AUTHENTICATE PLAIN: empty continuation")
    c.send(ir + "\r\n")
    tap.like(c.until("p1")[1], r"^p1 OK ", "AUTHENTICATE PLAIN with a continuation")
    c.close()
    c = Imap(ports["tls"], tls=True)
    c.line()
    c.send("p2 AUTHENTICATE PLAIN\r\n")
    c.line()
    c.send("*\r\n")
    tap.like(c.until("p2")[1], r"^p2 BAD ", "AUTHENTICATE cancelled with *: BAD")
    tap.like(c.ok("AUTHENTICATE PLAIN !!!"), r"^BAD ", "invalid base64: BAD")
    tap.like(c.ok("AUTHENTICATE CRAM-MD5"), r"^NO ", "unsupported mechanism: NO")
    tap.like(c.ok("AUTHENTICATE PLAIN " + base64.b64encode(b"\0john@example.org\0nope").decode()),
             r"^NO \[AUTHENTICATIONFAILED\]", "AUTHENTICATE wrong password: NO")
    tap.like(c.login("deny@example.org"), r"^NO \[AUTHENTICATIONFAILED\] Not today, LOGIN",
             "Lua auth hook (protocol imap) denies a right password")
    c.close()
    # Plaintext listener: literals, sync and non-sync (LITERAL+).
    c = Imap(ports["plain"])
    g = c.line()
    tap.ok("AUTH=PLAIN" in g and "LOGINDISABLED" not in g, "plaintext_auth listener: AUTH=PLAIN", g)
    c.send("l1 LOGIN {16}\r\n")
    tap.like(c.line(), r"^\+ ", "synchronizing literal: continuation")
    c.send("john@example.org {6+}\r\nsecret\r\n")
    tap.like(c.until("l1")[1], r"^l1 OK ", "LOGIN with a sync and a non-sync literal")
    c.close()


def misc(ports):
    tap.section("ID, ENABLE, NAMESPACE")
    c = Imap(ports["plain"])
    c.line()
    u, t = c.cmd('ID ("name" "test" "version" "1")')
    tap.ok(len(u) == 1 and u[0].startswith('* ID ("name" "moonpost"') and " OK " in t,
           "ID before login (RFC 2971)", u, t)
    u, t = c.cmd("ID NIL")
    tap.ok(" OK " in t and len(u) == 1, "ID NIL")
    tap.like(c.ok("ID (\"name\")"), r"^BAD ", "ID with an odd list: BAD")
    tap.like(c.ok("NAMESPACE"), r"^BAD ", "NAMESPACE before login: BAD")
    c.login()
    u, t = c.cmd("NAMESPACE")
    tap.is_(u, ['* NAMESPACE (("" ".")) NIL NIL'], "NAMESPACE: personal \"\" with \".\"")
    u, t = c.cmd("ENABLE X-NOSUCH")
    tap.ok(u == ["* ENABLED"] and " OK " in t, "ENABLE of nothing we support: empty ENABLED", u)
    u, t = c.cmd("CAPABILITY")
    tap.ok("AUTH=PLAIN" not in u[0] and "LOGINDISABLED" not in u[0], "no login capabilities after login", u)
    tap.like(c.ok("CHECK"), r"^BAD ", "CHECK without a selected mailbox: BAD")
    c.close()


def limits(ports):
    tap.section("limits")
    c = Imap(ports["plain"])
    c.line()
    c.send("t1 LOGIN {3000}\r\n")
    tap.like(c.until("t1")[1], r"^t1 NO \[TOOBIG\]", "synchronizing literal over literal_max: NO [TOOBIG]")
    tap.like(c.ok("NOOP"), r"^OK ", "the session goes on")
    c.send("t2 LOGIN {3000+}\r\n" + "x" * 3000 + "\r\n")
    u, t = c.until("t2")
    tap.like(t, r"^t2 BAD \[TOOBIG\]", "non-synchronizing literal over literal_max: BAD [TOOBIG]")
    tap.ok(c.eof(), "then the connection closes (RFC 7888 4)")
    c.close()
    c = Imap(ports["plain"])
    c.line()
    c.send("t3 NOOP " + "x" * 3000 + "\r\n")
    u, t = c.until("t3")
    tap.like(t, r"^t3 BAD \[TOOBIG\]", "command line over line_max: BAD [TOOBIG]")
    tap.ok(c.eof(), "then closed")
    c.close()
    c = Imap(ports["plain"])
    c.line()
    for i in range(11):
        c.cmd("BOGUS")
    c.send("b12 BOGUS\r\n")
    u, t = c.until("b12")
    try:
        bye = c.line()
    except EOFError:
        bye = ""
    tap.like(bye, r"^\* BYE ", "errors_max bad commands: BYE")
    tap.ok(c.eof(), "closed after errors_max")
    c.close()
    c = Imap(ports["plain"])
    c.line()
    t0 = time.time()
    tap.like(c.line(), r"^\* BYE .*inactivity", "idle timeout: BYE")
    tap.ok(c.eof() and time.time() - t0 < IDLE + 3, "closed after the idle timeout")
    c.close()


def listing(c, pat='"" "*"'):
    u, t = c.cmd("LIST " + pat)
    return {re.sub(r'^"|"$', "", x.split(' "." ', 1)[1]): x.split("(", 1)[1].split(")")[0]
            for x in u}, t


def folders(ports, md):
    tap.section("mailboxes")
    c = Imap(ports["plain"])
    c.line()
    tap.like(c.login("new@example.org"), r"^OK ", "first login of a new user")
    for f in ("Drafts", "Sent", "Junk", "Trash", "Archive"):
        tap.ok(os.path.isdir(os.path.join(md, "." + f, "cur")), "new user: ." + f + " created")
    tap.ok(os.path.isdir(os.path.join(md, "cur")), "new user: INBOX created")
    lst, t = listing(c)
    tap.is_(lst, {"INBOX": "\\HasNoChildren", "Archive": "\\HasNoChildren \\Archive",
                  "Drafts": "\\HasNoChildren \\Drafts", "Junk": "\\HasNoChildren \\Junk",
                  "Sent": "\\HasNoChildren \\Sent", "Trash": "\\HasNoChildren \\Trash"},
            "LIST \"\" *: INBOX and the SPECIAL-USE folders")
    u, t = c.cmd('LIST "" ""')
    tap.is_(u, ['* LIST (\\Noselect) "." ""'], "LIST \"\" \"\": the delimiter")
    u, t = c.cmd('LSUB "" "*"')
    tap.is_(sorted(u), sorted('* LSUB () "." %s' % f for f in ("Drafts", "Sent", "Junk", "Trash", "Archive")),
            "LSUB: the SPECIAL-USE folders are subscribed")
    tap.like(c.ok("CREATE Lists.lua"), r"^OK ", "CREATE Lists.lua")
    tap.ok(os.path.isdir(os.path.join(md, ".Lists.lua", "new")), "Maildir++ folder .Lists.lua")
    tap.like(c.ok('CREATE "Work."'), r"^OK ", "CREATE with a trailing separator")
    tap.ok(os.path.isdir(os.path.join(md, ".Work")), "... makes .Work")
    tap.like(c.ok("CREATE Work"), r"^NO \[ALREADYEXISTS\]", "CREATE existing: NO [ALREADYEXISTS]")
    tap.like(c.ok("CREATE inbox"), r"^NO \[ALREADYEXISTS\]", "CREATE INBOX: NO")
    tap.like(c.ok('CREATE "a..b"'), r"^NO ", "CREATE a..b: NO")
    tap.like(c.ok('CREATE "../x"'), r"^NO ", "CREATE ../x: NO")
    tap.like(c.ok('CREATE "&Jjo-"'), r"^OK ", "CREATE a modified UTF-7 name")
    lst, t = listing(c)
    tap.is_(lst.get("Lists"), "\\Noselect \\HasChildren", "LIST: a parent only on disk as a level: \\Noselect")
    tap.is_(lst.get("Lists.lua"), "\\HasNoChildren", "LIST: Lists.lua")
    tap.ok("&Jjo-" in lst, "LIST: the mUTF-7 name as stored", lst)
    lst, t = listing(c, '"" "%"')
    tap.ok("Lists" in lst and "Lists.lua" not in lst, "LIST %: one level only", lst)
    lst, t = listing(c, '"Lists." "%"')
    tap.is_(list(lst), ["Lists.lua"], "LIST with a reference")
    lst, t = listing(c, '"" "inbox"')
    tap.is_(list(lst), ["INBOX"], "LIST inbox: INBOX is case-insensitive")
    tap.like(c.ok("SUBSCRIBE Work"), r"^OK ", "SUBSCRIBE")
    tap.ok("Work" in open(os.path.join(md, "subscriptions")).read().split(), "subscriptions file")
    u, t = c.cmd('LSUB "" "W*"')
    tap.is_(u, ['* LSUB () "." Work'], "LSUB pattern")
    tap.like(c.ok("UNSUBSCRIBE Work"), r"^OK ", "UNSUBSCRIBE")
    u, t = c.cmd('LSUB "" "W*"')
    tap.is_(u, [], "LSUB after UNSUBSCRIBE")
    tap.like(c.ok("RENAME Work Play"), r"^OK ", "RENAME Work Play")
    tap.ok(os.path.isdir(os.path.join(md, ".Play")) and not os.path.exists(os.path.join(md, ".Work")),
           "RENAME on disk")
    tap.like(c.ok("RENAME Lists Mail"), r"^OK ", "RENAME of a parent renames the children")
    tap.ok(os.path.isdir(os.path.join(md, ".Mail.lua")), ".Lists.lua -> .Mail.lua")
    tap.like(c.ok("RENAME Nope X"), r"^NO \[NONEXISTENT\]", "RENAME missing: NO [NONEXISTENT]")
    tap.like(c.ok("RENAME Play Sent"), r"^NO \[ALREADYEXISTS\]", "RENAME onto existing: NO")
    tap.like(c.ok("DELETE Play"), r"^OK ", "DELETE")
    tap.ok(not os.path.exists(os.path.join(md, ".Play")), "DELETE on disk")
    tap.like(c.ok("DELETE Play"), r"^NO \[NONEXISTENT\]", "DELETE missing: NO [NONEXISTENT]")
    tap.like(c.ok("DELETE INBOX"), r"^NO ", "DELETE INBOX: NO")
    tap.like(c.ok("CREATE Mail"), r"^OK ", "CREATE a parent")
    tap.like(c.ok("DELETE Mail"), r"^OK ", "DELETE with children: OK (RFC 3501 6.3.4) ...")
    tap.ok(not os.path.exists(os.path.join(md, ".Mail")) and os.path.isdir(os.path.join(md, ".Mail.lua")),
           "... .Mail removed, .Mail.lua kept")
    tap.like(c.ok("DELETE Mail"), r"^NO \[NONEXISTENT\]", "DELETE of the \\Noselect parent left: NO")
    tap.like(c.ok("STATUS Nope (MESSAGES)"), r"^NO \[NONEXISTENT\]", "STATUS missing: NO [NONEXISTENT]")
    tap.like(c.ok("STATUS INBOX (BOGUS)"), r"^BAD ", "STATUS bad item: BAD")
    tap.like(c.ok("SELECT Nope"), r"^NO \[NONEXISTENT\]", "SELECT missing: NO [NONEXISTENT]")
    c.cmd("LOGOUT")
    c.close()


def select(ports, md):
    tap.section("STATUS, SELECT, EXAMINE, CLOSE")
    msgs = [b"From: a@example.net\nSubject: one\n\nbody 1\n", b"Subject: two\n\nbody 2\n",
            b"Subject: three\n\nbody 3\n"]
    put(md, msgs[0], "cur", "S")
    put(md, msgs[1])
    put(md, msgs[2])
    c = Imap(ports["plain"])
    c.line()
    c.login()
    u, t = c.cmd("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        hdr = dict((w[0], w[1:]) for w in f.readline().split()[1:])
    tap.is_(u, ["* STATUS INBOX (MESSAGES 3 RECENT 2 UIDNEXT %s UIDVALIDITY %s UNSEEN 2)" % (hdr["N"], hdr["V"])],
            "STATUS: counts, UIDNEXT and UIDVALIDITY from dovecot-uidlist")
    u, t = c.cmd("EXAMINE INBOX")
    tap.ok("* 3 EXISTS" in u and "* 2 RECENT" in u and "* OK [PERMANENTFLAGS ()] Read-only mailbox." in u,
           "EXAMINE: EXISTS, RECENT, no permanent flags", u)
    tap.like(t, r"OK \[READ-ONLY\]", "EXAMINE: [READ-ONLY]")
    tap.is_(len(os.listdir(os.path.join(md, "new"))), 2, "EXAMINE leaves new/ alone")
    u, t = c.cmd("SELECT inbox")
    tap.like(t, r"OK \[READ-WRITE\]", "SELECT: [READ-WRITE]")
    tap.ok("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in u, "SELECT: FLAGS", u)
    tap.ok("* 3 EXISTS" in u and "* 2 RECENT" in u, "SELECT: EXISTS and RECENT", u)
    tap.ok("* OK [UNSEEN 2] First unseen." in u, "SELECT: UNSEEN is the first unseen sequence number", u)
    tap.ok("* OK [UIDVALIDITY %s] UIDs valid" % hdr["V"] in u and
           "* OK [UIDNEXT %s] Predicted next UID" % hdr["N"] in u, "SELECT: UIDVALIDITY, UIDNEXT", u)
    tap.is_(os.listdir(os.path.join(md, "new")), [], "SELECT moves new/ to cur/")
    tap.like(c.ok("CHECK"), r"^OK ", "CHECK")
    tap.like(c.ok("UNSELECT"), r"^OK ", "UNSELECT")
    tap.like(c.ok("CHECK"), r"^BAD ", "after UNSELECT: no mailbox")
    # CLOSE expunges what another client marked \Deleted ("T").
    cur = os.path.join(md, "cur")
    victim = sorted(os.listdir(cur))[1]
    os.rename(os.path.join(cur, victim), os.path.join(cur, victim + "T"))
    c.cmd("EXAMINE INBOX")
    tap.like(c.ok("CLOSE"), r"^OK ", "CLOSE of an EXAMINEd mailbox")
    tap.is_(len(os.listdir(cur)), 3, "... expunges nothing")
    u, t = c.cmd("SELECT INBOX")
    tap.ok("* 2 RECENT" not in u and "* 0 RECENT" in u, "\\Recent only for the first session", u)
    u, t = c.cmd("CLOSE")
    tap.ok(u == [] and " OK " in t, "CLOSE: no untagged responses", u)
    tap.is_(len(os.listdir(cur)), 2, "CLOSE expunged the \\Deleted message")
    tap.like(c.ok("SELECT Nope"), r"^NO ", "SELECT of a missing mailbox")
    tap.like(c.ok("CLOSE"), r"^BAD ", "a failed SELECT leaves no mailbox selected")
    # RENAME INBOX moves the messages (RFC 3501 6.3.5).
    tap.like(c.ok("RENAME INBOX Old"), r"^OK ", "RENAME INBOX Old")
    u, t = c.cmd("STATUS Old (MESSAGES)")
    tap.is_(u, ["* STATUS Old (MESSAGES 2)"], "the messages are in Old")
    u, t = c.cmd("STATUS INBOX (MESSAGES)")
    tap.is_(u, ["* STATUS INBOX (MESSAGES 0)"], "INBOX is empty and still there")
    c.close()


SIMPLE = (b"Date: Sat, 05 Dec 2026 10:00:00 +0100\nFrom: Ann Example <ann@example.net>\n"
          b"To: john@example.org, \"Doe, Jane\" <jane@example.org>\nSubject: =?utf-8?q?hi?= there\n"
          b"Message-ID: <m1@example.net>\n\nline 1\nline 2\n")
MULTI = (b"From: b@example.net\nSubject: parts\nMIME-Version: 1.0\n"
         b"Content-Type: multipart/mixed; boundary=\"XX\"\n\npreamble\n--XX\n"
         b"Content-Type: text/plain; charset=utf-8\n\nhello\n--XX\n"
         b"Content-Type: application/octet-stream; name=\"a.bin\"\n"
         b"Content-Disposition: attachment; filename=\"a.bin\"\nContent-Transfer-Encoding: base64\n\n"
         b"AAEC\n--XX\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: c@example.net\n\ninner body\n"
         b"--XX--\n")


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fetch(ports, md):
    tap.section("FETCH")
    put(md, SIMPLE)
    put(md, MULTI)
    third = put(md, b"Subject: three\n\nthree\n", "cur", "S")
    c = Imap(ports["plain"])
    c.line()
    c.login("lim@example.org")
    tap.like(c.ok("FETCH 1 FLAGS"), r"^BAD ", "FETCH without a selected mailbox: BAD")
    c.cmd("SELECT INBOX")
    u, t = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE)")
    tap.is_(u, ["* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE %d)" % len(crlf(SIMPLE)),
                "* 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE %d)" % len(crlf(MULTI)),
                "* 3 FETCH (UID 3 FLAGS (\\Seen) RFC822.SIZE 25)"],
            "FETCH 1:* (UID FLAGS RFC822.SIZE): exact CRLF sizes")
    tap.like(t, r"OK ", "FETCH OK")
    u, t = c.cmd("UID FETCH 2:* FLAGS")
    tap.is_(u, ["* 2 FETCH (UID 2 FLAGS (\\Recent))", "* 3 FETCH (UID 3 FLAGS (\\Seen))"],
            "UID FETCH: UID always included")
    u, t = c.cmd("UID FETCH 99:* UID")
    tap.is_(u, ["* 3 FETCH (UID 3)"], "UID FETCH 99:* returns the last message (RFC 3501 6.4.8)")
    u, t = c.cmd("FETCH 1 BODY.PEEK[]")
    tap.is_(u, ["* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(crlf(SIMPLE)), crlf(SIMPLE).decode())],
            "BODY.PEEK[]: the message with CRLF")
    u, t = c.cmd("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    hdr, body = crlf(SIMPLE).split(b"\r\n\r\n", 1)
    tap.is_(u, ["* 1 FETCH (BODY[HEADER] {%d}\r\n%s\r\n\r\n BODY[TEXT] {%d}\r\n%s)" %
                (len(hdr) + 4, hdr.decode(), len(body), body.decode())], "HEADER and TEXT")
    u, t = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS (subject FROM)]")
    want = "From: Ann Example <ann@example.net>\r\nSubject: =?utf-8?q?hi?= there\r\n\r\n"
    tap.is_(u, ["* 1 FETCH (BODY[HEADER.FIELDS (subject FROM)] {%d}\r\n%s)" % (len(want), want)],
            "HEADER.FIELDS: the fields in message order and an empty line")
    u, t = c.cmd("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Date To Message-ID)]")
    got = u[0].split("}", 1)[1] if u else ""
    tap.ok("Subject:" in got and "From:" in got and "Date:" not in got and "Message-ID:" not in got,
           "HEADER.FIELDS.NOT", u)
    u, t = c.cmd("FETCH 1 BODY.PEEK[]<6.10>")
    tap.is_(u, ["* 1 FETCH (BODY[]<6> {10}\r\n%s)" % crlf(SIMPLE)[6:16].decode()], "partial <6.10>")
    u, t = c.cmd("FETCH 1 BODY.PEEK[]<9999.10>")
    tap.is_(u, ["* 1 FETCH (BODY[]<9999> {0}\r\n)"], "partial past the end: empty")
    u, t = c.cmd("FETCH 1 ENVELOPE")
    tap.is_(u, ['* 1 FETCH (ENVELOPE ("Sat, 05 Dec 2026 10:00:00 +0100" "=?utf-8?q?hi?= there" '
                '(("Ann Example" NIL "ann" "example.net")) (("Ann Example" NIL "ann" "example.net")) '
                '(("Ann Example" NIL "ann" "example.net")) ((NIL NIL "john" "example.org")'
                '("Doe, Jane" NIL "jane" "example.org")) NIL NIL NIL "<m1@example.net>"))'],
            "ENVELOPE (RFC 3501 7.4.2)")
    u, t = c.cmd("FETCH 1 BODYSTRUCTURE")
    tap.is_(u, ['* 1 FETCH (BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2 NIL NIL NIL NIL))'],
            "BODYSTRUCTURE of a plain message")
    u, t = c.cmd("FETCH 2 (BODY BODYSTRUCTURE)")
    tap.like(u[0], r'^\* 2 FETCH \(BODY \(\("text" "plain" \("charset" "utf-8"\) NIL NIL "7bit" 5 0\)'
             r'\("application" "octet-stream" \("name" "a.bin"\) NIL NIL "base64" 4\)'
             r'\("message" "rfc822" NIL NIL NIL "7bit" \d+ \(NIL "inner" \(\(NIL NIL "c" "example.net"\)\)',
             "BODY of a multipart with an attachment and a message/rfc822", u)
    tap.like(u[0], r'BODYSTRUCTURE \(.*"base64" 4 NIL \("attachment" \("filename" "a.bin"\)\) NIL NIL\).* "mixed" '
             r'\("boundary" "XX"\) NIL NIL NIL\)\)$', "BODYSTRUCTURE: extension data", u)
    u, t = c.cmd("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[3.HEADER] BODY.PEEK[3.1] BODY.PEEK[9])")
    tap.ok(u and "BODY[1] {5}\r\nhello BODY" in u[0] and
           "BODY[2.MIME] {142}\r\nContent-Type: application/octet-stream" in u[0] and
           "BODY[3.HEADER] {39}\r\nSubject: inner\r\nFrom: c@example.net\r\n\r\n" in u[0] and
           "BODY[3.1] {10}\r\ninner body BODY" in u[0] and "BODY[9] {0}\r\n" in u[0],
           "part numbers: 1, 2.MIME, 3.HEADER, 3.1 (inside message/rfc822), a missing part is empty", u)
    tap.ok(all(":2,S" not in f for f in os.listdir(os.path.join(md, "cur")) if not f.startswith(third.split(":")[0])),
           "BODY.PEEK does not set \\Seen")
    u, t = c.cmd("FETCH 1 BODY[TEXT]")
    tap.ok(u and u[0].startswith("* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] {"), "BODY[] sets \\Seen and sends FLAGS", u)
    tap.ok(any(f.endswith(":2,S") and "M%d" % (SEQ[0] - 2) in f for f in os.listdir(os.path.join(md, "cur"))),
           "\\Seen on disk (:2,S)")
    u, t = c.cmd("FETCH 1 FLAGS")
    tap.is_(u, ["* 1 FETCH (FLAGS (\\Seen \\Recent))"], "the session remembers \\Seen")
    u, t = c.cmd("FETCH 1 FAST")
    tap.like(u[0], r'^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000" RFC822.SIZE \d+\)$',
             "FETCH FAST: FLAGS INTERNALDATE RFC822.SIZE", u)
    tap.like(c.ok("FETCH 4 FLAGS"), r"^BAD ", "FETCH of a sequence number past the end: BAD")
    tap.like(c.ok("FETCH 1 (FLAGS BOGUS)"), r"^BAD ", "FETCH with a bad item: BAD")
    tap.like(c.ok("FETCH 1 BODY[HEADER.FIELDS ()]"), r"^BAD ", "FETCH with an empty field list: BAD")
    tap.like(c.ok("FETCH x FLAGS"), r"^BAD ", "FETCH with a bad set: BAD")
    c.cmd("EXAMINE INBOX")
    c.cmd("FETCH 2 BODY[1]")
    tap.ok(not any(f.endswith(":2,S") and "M%d" % (SEQ[0] - 1) in f for f in os.listdir(os.path.join(md, "cur"))),
           "BODY[] in an EXAMINEd mailbox does not set \\Seen")
    # A file that vanished under the session (another client expunged it).
    for f in os.listdir(os.path.join(md, "cur")):
        if "M%d" % SEQ[0] in f:
            os.unlink(os.path.join(md, "cur", f))
    # UID and FLAGS come from the session's snapshot (no file is opened
    # for them); content does need the file.
    u, t = c.cmd("FETCH 1:3 (UID BODY.PEEK[HEADER])")
    tap.ok(len(u) == 2 and t.split(" ", 1)[1].startswith("NO [EXPUNGEISSUED]"),
           "a vanished message: left out, NO [EXPUNGEISSUED]", u, t)
    tap.like(c.ok("NOOP"), r"^OK", "the session goes on")
    c.close()


def flagsets(md):
    out = {}
    for f in os.listdir(os.path.join(md, "cur")):
        out[f.split(":")[0]] = f.split(":2,")[1] if ":2," in f else None
    return out


def store(ports, md):
    tap.section("STORE, EXPUNGE")
    names = [put(md, b"Subject: s%d\n\nbody\n" % i) for i in range(4)]
    c = Imap(ports["plain"])
    c.line()
    c.login("st@example.org")
    c.cmd("EXAMINE INBOX")
    tap.like(c.ok("STORE 1 +FLAGS (\\Seen)"), r"^NO \[READ-ONLY\]", "STORE in an EXAMINEd mailbox: NO [READ-ONLY]")
    tap.like(c.ok("EXPUNGE"), r"^NO \[READ-ONLY\]", "EXPUNGE in an EXAMINEd mailbox: NO")
    c.cmd("SELECT INBOX")
    u, t = c.cmd("STORE 1 +FLAGS (\\Seen \\Flagged)")
    tap.is_(u, ["* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))"], "STORE +FLAGS: the new flags")
    tap.is_(flagsets(md)[names[0]], "FS", "on disk: :2,FS")
    u, t = c.cmd("STORE 1 -FLAGS.SILENT (\\Flagged)")
    tap.ok(u == [] and " OK " in t, "-FLAGS.SILENT: no untagged FETCH", u)
    tap.is_(flagsets(md)[names[0]], "S", "on disk: :2,S")
    u, t = c.cmd("UID STORE 2:3 FLAGS (\\Answered \\Draft)")
    tap.is_(u, ["* 2 FETCH (UID 2 FLAGS (\\Answered \\Draft \\Recent))",
                "* 3 FETCH (UID 3 FLAGS (\\Answered \\Draft \\Recent))"], "UID STORE FLAGS: replaces, UID included")
    tap.is_(flagsets(md)[names[2]], "DR", "on disk: :2,DR")
    u, t = c.cmd("STORE 2 FLAGS \\Seen")
    tap.is_(u, ["* 2 FETCH (FLAGS (\\Seen \\Recent))"], "STORE with a flag not in a list")
    tap.like(c.ok("STORE 1 +FLAGS (\\Recent)"), r"^BAD ", "STORE \\Recent: BAD")
    tap.like(c.ok("STORE 1 FROB (\\Seen)"), r"^BAD ", "STORE with a bad item: BAD")
    u, t = c.cmd("STORE 1 +FLAGS ($Label1)")
    tap.is_(u, ["* 1 FETCH (FLAGS (\\Seen $Label1 \\Recent))"], "STORE a keyword")
    tap.is_(open(os.path.join(md, "dovecot-keywords")).read(), "0 $Label1\n", "dovecot-keywords: 0 $Label1")
    tap.is_(flagsets(md)[names[0]], "Sa", "on disk: keyword 0 is letter a")
    c.cmd("STORE 2 +FLAGS.SILENT (Work $label1)")
    tap.is_(open(os.path.join(md, "dovecot-keywords")).read(), "0 $Label1\n1 Work\n",
            "a second keyword; the same one in another case is not new (RFC 3501 2.3.2)")
    u, t = c.cmd("SEARCH KEYWORD work")
    tap.is_(u, ["* SEARCH 2"], "SEARCH KEYWORD")
    u, t = c.cmd("SEARCH UNKEYWORD $Label1")
    tap.is_(u, ["* SEARCH 3 4"], "SEARCH UNKEYWORD")
    u, t = c.cmd("STORE 2 -FLAGS (Work $Label1)")
    tap.is_(u, ["* 2 FETCH (FLAGS (\\Seen \\Recent))"], "STORE -FLAGS of keywords")
    tap.like(c.ok("STORE 1 +FLAGS (a]b)"), r"^BAD ", "an invalid keyword: BAD")
    u, t = c.cmd("FETCH 2 FLAGS")
    tap.is_(u, ["* 2 FETCH (FLAGS (\\Seen \\Recent))"], "FETCH FLAGS sees what STORE set")
    c.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    u, t = c.cmd("EXPUNGE")
    tap.is_(u, ["* 4 EXPUNGE", "* 2 EXPUNGE"], "EXPUNGE: highest first")
    tap.is_(sorted(flagsets(md)), sorted([names[0], names[2]]), "EXPUNGE removed the files")
    u, t = c.cmd("FETCH 1:* UID")
    tap.is_(u, ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"], "sequence numbers after EXPUNGE")
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        recs = [ln.split()[0] for ln in f.read().splitlines()[1:]]
    tap.is_(recs, ["1", "3"], "dovecot-uidlist forgot the expunged UIDs")
    tap.like(c.ok("EXPUNGE"), r"^OK ", "EXPUNGE with nothing to do")
    u, t = c.cmd("SELECT INBOX")
    tap.ok("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Work)" in u and
           "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 Work \\*)] Flags permitted." in u,
           "SELECT: FLAGS and PERMANENTFLAGS list the keywords, and \\*", u)
    c.close()


def copy_move(ports, md):
    tap.section("APPEND, COPY, MOVE, UID EXPUNGE (UIDPLUS)")
    c = Imap(ports["plain"])
    c.line()
    c.login("st@example.org")
    msg = b"From: me@example.org\r\nSubject: draft\r\n\r\nhello\r\n"
    c.send("p1 APPEND Drafts (\\Draft \\Seen $MDNSent) \" 5-Dec-2026 10:00:00 +0100\" {%d}\r\n" % len(msg))
    tap.like(c.line(), r"^\+ ", "APPEND: continuation for the literal")
    c.send(msg + b"\r\n")
    u, t = c.until("p1")
    m = re.match(r"^p1 OK \[APPENDUID (\d+) (\d+)\] ", t)
    tap.ok(m is not None, "APPEND: OK [APPENDUID uidvalidity uid]", t)
    drafts = os.path.join(md, ".Drafts", "new")     # new/ with flags: \Recent (RFC 3501 6.3.11)
    files = os.listdir(drafts)
    tap.ok(len(files) == 1 and files[0].endswith(":2,DSa") and ",W=%d" % len(msg) in files[0],
           "APPEND: in new/ with :2,DSa (a keyword too) and W= (the CRLF size)", files)
    with open(os.path.join(drafts, files[0]), "rb") as f:
        tap.is_(f.read(), msg.replace(b"\r\n", b"\n"), "APPEND: stored with LF line ends")
    tap.is_(int(os.stat(os.path.join(drafts, files[0])).st_mtime), 1796461200, "APPEND: the date-time is the internal date")
    u, t = c.cmd("STATUS Drafts (MESSAGES UIDNEXT)")
    tap.is_(u, ["* STATUS Drafts (MESSAGES 1 UIDNEXT %d)" % (int(m.group(2)) + 1 if m else 0)], "APPENDUID matches the uidlist")
    c.send("p2 APPEND Nope {%d+}\r\n" % len(msg) + msg.decode() + "\r\n")
    tap.like(c.until("p2")[1], r"^p2 NO \[TRYCREATE\]", "APPEND to a missing mailbox: NO [TRYCREATE]")
    c.send("p3 APPEND INBOX {%d+}\r\n" % len(msg) + msg.decode() + "\r\n")
    tap.like(c.until("p3")[1], r"^p3 OK \[APPENDUID \d+ 5\]", "APPEND to INBOX (non-sync literal)")
    tap.like(c.ok("APPEND INBOX"), r"^BAD ", "APPEND without a message: BAD")
    c.cmd("SELECT INBOX")
    u, t = c.cmd("COPY 1:2 Trash")
    tap.like(t, r"OK \[COPYUID \d+ 1,3 1:2\] ", "COPY: OK [COPYUID v 1,3 1:2]")
    tap.is_(sorted(f.split(":2,")[1] for f in os.listdir(os.path.join(md, ".Trash", "new"))), ["DR", "Sa"],
            "COPY: into new/ (\\Recent), the flags come along, the keyword with Trash's own letter")
    tap.is_(open(os.path.join(md, ".Trash", "dovecot-keywords")).read(), "0 $Label1\n",
            "COPY: the keyword is in Trash's dovecot-keywords")
    tap.like(c.ok("COPY 1 Nope"), r"^NO \[TRYCREATE\]", "COPY to a missing mailbox: NO [TRYCREATE]")
    u, t = c.cmd("UID COPY 3 Archive")
    tap.like(t, r"OK \[COPYUID \d+ 3 1\] ", "UID COPY")
    u, t = c.cmd("MOVE 1 Junk")
    tap.ok(len(u) == 2 and re.match(r"^\* OK \[COPYUID \d+ 1 1\] ", u[0]) and u[1] == "* 1 EXPUNGE" and " OK " in t,
           "MOVE: untagged COPYUID, EXPUNGE, OK (RFC 6851)", u, t)
    u, t = c.cmd("FETCH 1:* UID")
    tap.is_(u, ["* 1 FETCH (UID 3)", "* 2 FETCH (UID 5)"], "MOVE removed the source from the session")
    tap.is_(len(os.listdir(os.path.join(md, "cur"))), 2, "MOVE removed the source file")
    u, t = c.cmd("STATUS Junk (MESSAGES)")
    tap.is_(u, ["* STATUS Junk (MESSAGES 1)"], "MOVE: in Junk")
    c.cmd("EXAMINE Trash")
    tap.like(c.ok("MOVE 1 INBOX"), r"^NO \[READ-ONLY\]", "MOVE from a read-only mailbox: NO")
    c.cmd("SELECT Trash")
    c.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    u, t = c.cmd("UID EXPUNGE 2")
    tap.ok(u == ["* 2 EXPUNGE"] and " OK " in t, "UID EXPUNGE: only the \\Deleted messages of the set", u)
    u, t = c.cmd("UID MOVE 1 Archive")
    tap.ok(len(u) == 2 and u[1] == "* 1 EXPUNGE", "UID MOVE", u)
    c.close()


def search(ports, md):
    tap.section("SEARCH")
    msgs = [
        (b"From: Alice <alice@example.net>\nTo: bob@example.org\nSubject: Lunch plans\n"
         b"Date: Mon, 30 Nov 2026 12:00:00 +0000\n\nPizza at noon?\n", "S", "2026-11-30"),
        (b"From: carol@example.com\nTo: bob@example.org\nCc: dave@example.org\n"
         b"Subject: =?utf-8?q?R=C3=A9union?=\nDate: Tue, 01 Dec 2026 09:00:00 +0100\n"
         b"X-Tag: blue\n\n" + b"x" * 3000 + b"\n", "FS", "2026-12-01"),
        (b"From: alice@example.net\nSubject: report\nDate: Thu, 03 Dec 2026 23:30:00 -0500\n\n"
         b"quarterly numbers\n", "", "2026-12-03"),
        (b"From: eve@example.com\nSubject: hello\n\nspam spam\n", "T", "2026-12-05"),
    ]
    for content, flags, day in msgs:
        name = put(md, content, "cur", flags)
        t = time.mktime(time.strptime(day + " 12", "%Y-%m-%d %H")) - time.timezone
        os.utime(os.path.join(md, "cur", name), (t, t))
    c = Imap(ports["plain"])
    c.line()
    c.login("se@example.org")
    c.cmd("SELECT INBOX")

    def search(q):
        u, t = c.cmd(q)
        if " OK " not in t or len(u) != 1:
            return t
        return u[0]
    for q, want in (
        ("SEARCH ALL", "1 2 3 4"), ("SEARCH SEEN", "1 2"), ("SEARCH UNSEEN", "3 4"),
        ("SEARCH FLAGGED", "2"), ("SEARCH DELETED", "4"), ("SEARCH UNDELETED UNSEEN", "3"),
        ("SEARCH FROM alice", "1 3"), ("SEARCH FROM ALICE TO bob", "1"),
        ("SEARCH SUBJECT \"r\xe9union\"", None), ("SEARCH CHARSET UTF-8 SUBJECT union", "2"),
        ("SEARCH CC dave", "2"), ("SEARCH HEADER X-Tag blue", "2"), ("SEARCH HEADER X-Tag \"\"", "2"),
        ("SEARCH BODY pizza", "1"), ("SEARCH TEXT quarterly", "3"), ("SEARCH TEXT Lunch", "1"),
        ("SEARCH LARGER 1000", "2"), ("SEARCH SMALLER 1000", "1 3 4"),
        ("SEARCH NOT FROM alice", "2 4"), ("SEARCH OR FLAGGED DELETED", "2 4"),
        ("SEARCH (OR SEEN DELETED) NOT 1", "2 4"), ("SEARCH 2:3", "2 3"), ("SEARCH UID 1,4", "1 4"),
        ("SEARCH SINCE 1-Dec-2026", "2 3 4"), ("SEARCH BEFORE 1-Dec-2026", "1"),
        ("SEARCH ON 3-Dec-2026", "3"), ("SEARCH SENTON 3-Dec-2026", "3"),
        ("SEARCH SENTBEFORE 1-Dec-2026", "1"), ("SEARCH SENTSINCE \"1-Dec-2026\"", "2 3 4"),
        ("UID SEARCH FROM alice", "1 3"), ("SEARCH KEYWORD $Junk", ""), ("SEARCH UNKEYWORD $Junk", "1 2 3 4"),
        ("SEARCH NEW", ""), ("SEARCH OLD", "1 2 3 4"),
    ):
        if want is None:
            continue
        tap.is_(search(q), ("* SEARCH " + want).rstrip(), q)
    tap.like(c.ok("SEARCH BOGUS"), r"^BAD ", "SEARCH with an unknown key: BAD")
    tap.like(c.ok("SEARCH FROM"), r"^BAD ", "SEARCH FROM without a string: BAD")
    tap.like(c.ok("SEARCH SINCE 32-Foo-2026"), r"^BAD ", "SEARCH with a bad date: BAD")
    tap.like(c.ok("SEARCH CHARSET KOI8-R ALL"), r"^NO \[BADCHARSET", "SEARCH CHARSET KOI8-R: NO [BADCHARSET]")
    tap.like(c.ok("SEARCH " + "NOT " * 40 + "ALL"), r"^BAD ", "SEARCH nested too deeply: BAD")
    c.close()


def sync_idle(d, ports, md):
    tap.section("NOOP, CHECK and IDLE see other sessions and deliveries")
    c = Imap(ports["plain"])
    c.line()
    c.login("se@example.org")
    u, t = c.cmd("SELECT INBOX")
    tap.ok("* 4 EXISTS" in u, "4 messages", u)
    u, t = c.cmd("NOOP")
    tap.is_(u, [], "NOOP: nothing changed, nothing said")
    put(md, b"Subject: fifth\n\nfive\n")
    u, t = c.cmd("NOOP")
    tap.is_(u, ["* 5 EXISTS", "* 1 RECENT"], "NOOP after a delivery: EXISTS and RECENT")
    cur = os.path.join(md, "cur")
    second = sorted(f for f in os.listdir(cur))[1]
    os.rename(os.path.join(cur, second), os.path.join(cur, second.split(":2,")[0] + ":2,FRS"))
    u, t = c.cmd("CHECK")
    tap.is_(u, ["* 2 FETCH (FLAGS (\\Answered \\Flagged \\Seen))"], "CHECK after another client's flag change: FETCH FLAGS")
    first = sorted(f for f in os.listdir(cur))[0]
    os.unlink(os.path.join(cur, first))
    u, t = c.cmd("NOOP")
    tap.is_(u, ["* 1 EXPUNGE"], "NOOP after another client's expunge: EXPUNGE")
    u, t = c.cmd("FETCH 1:* UID")
    tap.is_([x.split("UID ")[1] for x in u], ["2)", "3)", "4)", "5)"], "sequence numbers follow")
    c.send("i1 IDLE\r\n")
    tap.like(c.line(), r"^\+ ", "IDLE: continuation")
    t0 = time.time()
    s = smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=10)
    s.sendmail("x@example.net", ["se@example.org"], b"Subject: pushed\r\n\r\nvia SMTP\r\n")
    s.quit()
    tap.diag("SMTP delivery took %.2fs" % (time.time() - t0))
    c.sock.settimeout(5)
    got = [c.line(), c.line()]
    took = time.time() - t0
    tap.is_(got, ["* 5 EXISTS", "* 2 RECENT"], "IDLE: an SMTP delivery shows as EXISTS (\\Recent: this one and \"fifth\")")
    tap.ok(took < 1.5, "... within a second of the delivery (%.2fs incl. SMTP)" % took)
    c.send("DONE\r\n")
    tap.like(c.until("i1")[1], r"^i1 OK ", "DONE: tagged OK")
    u, t = c.cmd("FETCH 5 BODY.PEEK[TEXT]")
    tap.ok(u and "via SMTP" in u[0], "the pushed message can be fetched", u)
    c.send("i2 IDLE\r\n")
    c.line()
    c.send("NOPE\r\n")
    tap.like(c.until("i2")[1], r"^i2 BAD ", "IDLE ended by something else than DONE: BAD")
    c.send("i3 IDLE\r\n")
    c.line()
    c.send("done\r\ni4 NOOP\r\n")
    tap.like(c.until("i3")[1], r"^i3 OK ", "pipelined DONE and a command")
    tap.like(c.until("i4")[1], r"^i4 OK ", "... the command runs after IDLE")
    c.cmd("LOGOUT")
    c.close()


def big(ports, md):
    tap.section("a large FETCH (batches, back-pressure)")
    bodies = []
    for i in range(6):
        line = (b"%d " % i) + b"abcdefghij" * 7 + b"\n"
        bodies.append(b"Subject: big %d\n\n" % i + line * 5000)
        put(md, bodies[-1])
    c = Imap(ports["plain"])
    c.line()
    c.login("big@example.org")
    c.cmd("SELECT INBOX")
    t0 = time.time()
    u, t = c.cmd("FETCH 1:* (UID BODY.PEEK[])")
    ok = len(u) == 6 and " OK " in t
    for i, x in enumerate(u):
        want = "* %d FETCH (UID %d BODY[] {%d}\r\n%s)" % (i + 1, i + 1, len(crlf(bodies[i])), crlf(bodies[i]).decode())
        ok = ok and x == want
    tap.ok(ok, "FETCH 1:* BODY.PEEK[] of 6 x %d KB: every byte, in order (%.2fs)" % (len(bodies[0]) // 1024, time.time() - t0))
    # A client that does not read for a while: the server's queue fills
    # (batches wait), then everything arrives.
    c.send("r1 FETCH 1:* BODY.PEEK[]\r\nr2 FETCH 1:* BODY.PEEK[]\r\nr3 FETCH 1:* BODY.PEEK[]\r\n")
    time.sleep(1.5)
    got = [c.until(t) for t in ("r1", "r2", "r3")]
    tap.ok(all(len(u) == 6 and " OK " in t and u[5].endswith(")") and len(u[5]) > len(bodies[5])
               for u, t in got), "three pipelined 2 MB FETCHes to a client that reads late: complete")
    tap.like(c.ok("NOOP"), r"^OK", "the session goes on")
    c.close()


def quota(ports):
    tap.section("quota")
    c = Imap(ports["plain"])
    c.line()
    c.login("q@example.org")
    msg = "Subject: q\r\n\r\n" + "x" * 1300 + "\r\n"
    c.send("q1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
    tap.like(c.until("q1")[1], r"^q1 OK \[APPENDUID", "APPEND within the quota")
    c.send("q2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
    tap.like(c.until("q2")[1], r"^q2 NO \[OVERQUOTA\]", "APPEND past the quota: NO [OVERQUOTA]")
    c.cmd("SELECT INBOX")
    tap.like(c.ok("COPY 1 Trash"), r"^NO \[OVERQUOTA\]", "COPY past the quota: NO [OVERQUOTA]")
    tap.like(c.ok("MOVE 1 Trash"), r"^OK ", "MOVE is not counted")
    c.close()


def with_imaplib(ports):
    tap.section("imaplib")
    m = imaplib.IMAP4_SSL("127.0.0.1", ports["tls"], ssl_context=mpd.client_ctx())
    typ, _ = m.login("jane@example.org", "secret")
    tap.is_(typ, "OK", "imaplib: login")
    typ, data = m.list()
    tap.ok(typ == "OK" and any(b"Sent" in x for x in data), "imaplib: list", data)
    typ, data = m.create("Projects")
    tap.is_(typ, "OK", "imaplib: create")
    typ, data = m.select("INBOX")
    tap.ok(typ == "OK" and data == [b"0"], "imaplib: select INBOX (0 messages)", data)
    typ, data = m.fetch("1:*", "(FLAGS)")
    tap.ok(typ == "OK", "imaplib: fetch on an empty mailbox", data)
    typ, data = m.status("Projects", "(MESSAGES UIDNEXT)")
    tap.ok(typ == "OK" and b"MESSAGES 0" in data[0], "imaplib: status", data)
    typ, data = m.logout()
    tap.is_(typ, "BYE", "imaplib: logout")


main()
