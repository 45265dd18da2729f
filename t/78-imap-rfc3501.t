#!/usr/bin/env python3
# RFC 3501 (IMAP4rev1) conversation tests against the real daemon: the
# examples of sections 6.1-6.4, 7.5 and the sample connection of section 8,
# replayed and adapted to our namespace (hierarchy separator ".", INBOX the
# Maildir root, other mailboxes Maildir++ ".Name" directories), with the
# untagged responses, response codes and tagged status checked precisely,
# and the Maildir checked on disk where it matters (flags in file names,
# folders, the subscriptions file). Then error paths (BAD syntax, NO on a
# missing mailbox with [TRYCREATE] for COPY/APPEND, literals too big,
# commands in the wrong state), modified UTF-7 mailbox names (RFC 3501
# 5.1.3) stored as Dovecot stores them, and a Python imaplib conversation
# over every command.
import base64
import calendar
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
LITERAL_MAX = 65536
APPEND_MAX_TEST = 200000      # smtp.message_size: the APPEND limit when imap.append_max is 0
USERS = ("sample", "ops", "noop", "rfc", "err", "intl", "lib", "uidv", "auth")


# ------------------------------------------------------------ the client --

class Imap:
    """Raw IMAP client: exact lines; a literal in a response is read whole.
    Lines are latin-1 strings, so a literal's {n} counts characters."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
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
                return out.decode("latin-1")
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def send(self, data):
        self.sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)

    def tag(self):
        self.n += 1
        return "a%03d" % self.n

    def until(self, tag):
        untagged = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return untagged, ln
            untagged.append(ln)

    def cmd(self, text, tag=None):
        t = tag or self.tag()
        self.send("%s %s\r\n" % (t, text))
        return self.until(t)

    def st(self, text):
        """The tagged line's text after the tag ("OK ...", "NO [..] ...")."""
        return self.cmd(text)[1].split(" ", 1)[1]

    def sync_literal(self, head, data, tail="", tag=None):
        """head ends with the literal's place: sends head {n}, waits for the
        continuation, then data and tail. (untagged, tagged, continuation
        line or None when the server answered at once)."""
        t = tag or self.tag()
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.send("%s %s{%d}\r\n" % (t, head, len(data)))
        ln = self.line()
        if not ln.startswith("+"):
            untagged = []
            while not ln.startswith(t + " "):
                untagged.append(ln)
                ln = self.line()
            return untagged, ln, None
        self.send(data + tail.encode("latin-1") + b"\r\n")
        u, tl = self.until(t)
        return u, tl, ln

    def login(self, user, pw="secret"):
        return self.st('LOGIN %s@example.org "%s"' % (user, pw))

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


def session(ports, user=None, select=None):
    c = Imap(ports["plain"])
    c.line()
    if user:
        c.login(user)
    if select:
        c.cmd("SELECT " + select)
    return c


# ------------------------------------------------- IMAP response parsing --

def parse_value(s, i=0):
    """One IMAP value at s[i] -> (python value, next index): lists, quoted
    strings, literals, NIL (None), atoms (BODY[...]<n> is one atom)."""
    c = s[i]
    if c == "(":
        out = []
        i += 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == ")":
                return out, i + 1
            v, i = parse_value(s, i)
            out.append(v)
    if c == '"':
        i += 1
        out = []
        while s[i] != '"':
            if s[i] == "\\":
                i += 1
            out.append(s[i])
            i += 1
        return "".join(out), i + 1
    if c == "{":
        m = re.compile(r"\{(\d+)\}\r\n").match(s, i)
        n = int(m.group(1))
        return s[m.end():m.end() + n], m.end() + n
    j, depth = i, 0
    while j < len(s) and (depth > 0 or s[j] not in " ()"):
        if s[j] == "[":
            depth += 1
        elif s[j] == "]":
            depth -= 1
        j += 1
    atom = s[i:j]
    return (None if atom.upper() == "NIL" else atom), j


def parse_fetch(line):
    """'* n FETCH (...)' -> (n, {ITEM: value}, [duplicated item names])."""
    m = re.match(r"^\* (\d+) FETCH ", line or "")
    if not m:
        return None, {}, []
    try:
        lst, _ = parse_value(line, m.end())
    except (IndexError, AttributeError):
        return int(m.group(1)), {}, []
    items, dups = {}, []
    for k, v in zip(lst[0::2], lst[1::2]):
        k = k.upper()
        if k in items:
            dups.append(k)
        items[k] = v
    return int(m.group(1)), items, dups


def fetches(untagged):
    """{seq: items} of the FETCH responses in a list of untagged lines."""
    out = {}
    for ln in untagged:
        n, items, _ = parse_fetch(ln)
        if n is not None:
            out.setdefault(n, {}).update(items)
    return out


def flags_of(items):
    f = items.get("FLAGS")
    return None if f is None else frozenset(x.lower() for x in f)


def F(*names):
    return frozenset(n.lower() for n in names)


def lower(v):
    if isinstance(v, list):
        return [lower(x) for x in v]
    return v.lower() if isinstance(v, str) else v


def list_lines(untagged, cmd="LIST"):
    """{name: set of attributes} of LIST/LSUB responses (delimiter must be ".")."""
    out = {}
    for ln in untagged:
        m = re.match(r"^\* %s " % cmd, ln)
        if not m:
            continue
        attrs, i = parse_value(ln, m.end())
        delim, i = parse_value(ln, i + 1)
        name, i = parse_value(ln, i + 1)
        out[name] = (frozenset(a.lower() for a in attrs), delim)
    return out


def attrs(listing, name):
    return listing[name][0] if name in listing else None


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def internaldate(s):
    """RFC 3501 date-time -> epoch seconds."""
    m = re.match(r"^ ?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$", s or "")
    if not m:
        return None
    t = calendar.timegm((int(m.group(3)), MONTHS.index(m.group(2)) + 1, int(m.group(1)),
                         int(m.group(4)), int(m.group(5)), int(m.group(6))))
    off = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (1 if m.group(7) == "+" else -1)
    return t - off


# ------------------------------------------------------ modified UTF-7 --

def mutf7(s):
    """RFC 3501 5.1.3 encoder."""
    out, run = [], []

    def flush():
        if run:
            b64 = base64.b64encode("".join(run).encode("utf-16-be")).decode()
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(s):
    def dec(m):
        if m.group(1) == "":
            return "&"
        b = m.group(1).replace(",", "/")
        return base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, s)


# ------------------------------------------------------------- Maildirs --

SEQ = [0]


def put(maildir, content, sub="cur", flags="", mtime=None):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    SEQ[0] += 1
    w = len(content) + content.count(b"\n") - content.count(b"\r\n")
    name = "%d.M%dP%d.rfc,S=%d,W=%d" % (1700000000 + SEQ[0], SEQ[0], os.getpid(), len(content), w)
    if sub == "cur":
        name += ":2," + flags
    path = os.path.join(maildir, sub, name)
    with open(path, "wb") as f:
        f.write(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return name.split(":")[0]


def disk_flags(folder):
    """{base name: Maildir info flags} of the messages in folder (new/: None)."""
    out = {}
    for sub in ("cur", "new"):
        try:
            names = os.listdir(os.path.join(folder, sub))
        except FileNotFoundError:
            continue
        for f in names:
            out[f.split(":")[0]] = f.split(":2,", 1)[1] if ":2," in f else None
    return out


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def day(y, m, d):
    return calendar.timegm((y, m, d, 12, 0, 0))


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write("domain example.org\n" + "".join("user %s@example.org %s\n" % (u, h) for u in USERS))


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    ports = {k: mpd.free_port() for k in ("stls", "plain")}
    d.config["listen"].extend([
        {"address": "127.0.0.1", "port": ports["stls"], "protocol": "imap", "tls": "starttls"},
        {"address": "127.0.0.1", "port": ports["plain"], "protocol": "imap", "tls": "none",
         "plaintext_auth": True},
    ])
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"errors_max": 200, "line_max": 8192, "literal_max": LITERAL_MAX,
                             "command_max": 4 * LITERAL_MAX},
                    "smtp": {"message_size": APPEND_MAX_TEST - 1000}})
    d.start()

    def md(user):
        return os.path.join(vmail, "example.org", user, "Maildir")
    t0 = time.time()
    try:
        with tap.section("6.1 any state"):
            any_state(ports, md("noop"))
        with tap.section("6.2 not authenticated"):
            not_authenticated(ports)
        with tap.section("8 sample connection"):
            sample_connection(ports, md("sample"))
        with tap.section("6.3 authenticated"):
            authenticated(ports, md("rfc"))
        with tap.section("UIDs of re-created mailboxes"):
            uid_reuse(ports)
        with tap.section("6.4 selected"):
            selected(ports, md("ops"))
        with tap.section("error paths"):
            errors(ports, md("err"))
        with tap.section("modified UTF-7 names"):
            international(ports, md("intl"))
        with tap.section("imaplib"):
            with_imaplib(ports, md("lib"))
    finally:
        tap.diag("conversations took %.1fs" % (time.time() - t0))
        d.stop()
        d.cleanup()
    tap.done()


# ------------------------------------------------------- 6.1 any state --

def any_state(ports, md):
    # 6.1.1 and 6.2.1: CAPABILITY before and after STARTTLS.
    c = Imap(ports["stls"])
    g = c.line()
    tap.like(g, r"^\* OK ", "6.1.1 greeting: untagged OK")
    u, t = c.cmd("CAPABILITY", tag="abcd")
    tap.ok(len(u) == 1 and u[0].startswith("* CAPABILITY ") and
           {"IMAP4rev1", "STARTTLS", "LOGINDISABLED"} <= set(u[0].split()[2:]),
           "6.1.1 abcd CAPABILITY: one untagged CAPABILITY with IMAP4rev1 STARTTLS LOGINDISABLED", u)
    tap.like(t, r"^abcd OK ", "6.1.1 abcd CAPABILITY: tagged OK")
    u, t = c.cmd("STARTTLS", tag="efgh")
    tap.ok(u == [] and t.startswith("efgh OK "), "6.2.1 efgh STARTTLS: OK, nothing untagged", u, t)
    c.sock = mpd.client_ctx().wrap_socket(c.sock, server_hostname="localhost")
    u, t = c.cmd("CAPABILITY", tag="ijkl")
    caps = set(u[0].split()[2:]) if len(u) == 1 else set()
    tap.ok("IMAP4rev1" in caps and "AUTH=PLAIN" in caps and "STARTTLS" not in caps and
           "LOGINDISABLED" not in caps, "6.2.1 ijkl CAPABILITY after TLS: AUTH=PLAIN, no STARTTLS/LOGINDISABLED", u)
    tap.like(t, r"^ijkl OK ", "6.2.1 ijkl CAPABILITY: tagged OK")
    tap.like(c.login("noop"), r"^OK ", "6.2.1 a004 LOGIN after STARTTLS: OK")
    # 6.1.2 NOOP: nothing changed; then the changes of another agent.
    for i in range(4):
        put(md, b"Subject: noop %d\nDate: Mon, 7 Feb 1994 21:52:25 -0800\n\nbody %d\n" % (i, i))
    u, t = c.cmd("SELECT INBOX")
    tap.ok("* 4 EXISTS" in u and "* 0 RECENT" in u, "6.1.2 setup: 4 messages, none recent", u)
    u, t = c.cmd("NOOP", tag="a002")
    tap.ok(u == [] and t.startswith("a002 OK "), "6.1.2 a002 NOOP: OK, no untagged data", u, t)
    other = session(ports, "noop", "INBOX")
    other.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    tap.like(other.st("EXPUNGE"), r"^OK ", "6.1.2 another session expunges message 2")
    other.cmd("STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)")
    other.close()
    put(md, b"Subject: noop 5\n\nbody 5\n", "new")
    u, t = c.cmd("NOOP", tag="a047")
    want = ["* 2 EXPUNGE", "* 4 EXISTS", "* 1 RECENT", "* 1 FETCH (FLAGS (\\Seen \\Deleted))"]
    canon = [re.sub(r"FLAGS \(([^)]*)\)", lambda m: "FLAGS (%s)" % " ".join(sorted(m.group(1).split())), x)
             for x in u]
    tap.is_(sorted(canon), sorted(re.sub(r"FLAGS \(([^)]*)\)", lambda m: "FLAGS (%s)" % " ".join(sorted(m.group(1).split())), x)
                                  for x in want),
            "6.1.2 a047 NOOP: * 2 EXPUNGE, * 4 EXISTS, * 1 RECENT, * 1 FETCH (FLAGS (\\Seen \\Deleted))")
    exp = [i for i, x in enumerate(u) if x.endswith(" EXPUNGE")]
    ex = [i for i, x in enumerate(u) if x.endswith(" EXISTS")]
    tap.ok(exp and ex and exp[0] < ex[0], "6.1.2 a047 NOOP: the EXPUNGE comes before the new EXISTS", u)
    u, t = c.cmd("FETCH 1:* (FLAGS)")
    got = {n: flags_of(i) for n, i in fetches(u).items()}
    tap.is_(got, {1: F("\\Seen", "\\Deleted"), 2: F(), 3: F(), 4: F("\\Recent")},
            "6.1.2 after NOOP: the session's view matches (4 messages, message 1 \\Seen \\Deleted)")
    # 6.1.3 LOGOUT
    u, t = c.cmd("LOGOUT", tag="A023")
    tap.ok(len(u) == 1 and u[0].startswith("* BYE "), "6.1.3 A023 LOGOUT: untagged BYE", u)
    tap.like(t, r"^A023 OK ", "6.1.3 A023 LOGOUT: tagged OK")
    tap.ok(c.eof(), "6.1.3 LOGOUT: the server closes the connection")
    c.close()


# -------------------------------------------- 6.2 not authenticated state --

def not_authenticated(ports):
    # 6.2.1: LOGIN before TLS on a STARTTLS listener that advertises LOGINDISABLED.
    c = Imap(ports["stls"])
    c.line()
    tap.like(c.login("auth"), r"^NO ", "6.2.3 LOGIN while LOGINDISABLED: NO")
    tap.like(c.st("AUTHENTICATE PLAIN " + base64.b64encode(b"\0auth@example.org\0secret").decode()),
             r"^NO ", "6.2.2 AUTHENTICATE while LOGINDISABLED: NO")
    c.close()
    # 6.2.2 AUTHENTICATE (GSSAPI in the RFC; PLAIN here), with a continuation.
    c = session(ports)
    u, t = c.cmd("AUTHENTICATE GSSAPI", tag="A000")
    tap.like(t, r"^A000 NO ", "6.2.2 AUTHENTICATE of an unsupported mechanism: NO")
    c.send("A001 AUTHENTICATE PLAIN\r\n")
    ln = c.line()
    tap.like(ln, r"^\+ ?$", "6.2.2 A001 AUTHENTICATE PLAIN: empty continuation (+ )")
    c.send(base64.b64encode(b"\0auth@example.org\0secret") + b"\r\n")
    u, t = c.until("A001")
    tap.like(t, r"^A001 OK ", "6.2.2 A001 AUTHENTICATE PLAIN: OK after the response")
    tap.like(c.st("SELECT INBOX"), r"^OK \[READ-WRITE\] ", "6.2.2 after AUTHENTICATE: authenticated state (SELECT works)")
    c.close()
    c = session(ports)
    c.send("A002 AUTHENTICATE PLAIN\r\n")
    c.line()
    c.send("*\r\n")
    tap.like(c.until("A002")[1], r"^A002 BAD ", "6.2.2 AUTHENTICATE cancelled by \"*\": BAD")
    # 6.2.3 LOGIN
    tap.like(c.cmd('LOGIN auth@example.org "wrong"', tag="a000")[1], r"^a000 NO ",
             "6.2.3 LOGIN with a wrong password: NO")
    tap.like(c.st("SELECT INBOX"), r"^BAD ", "6.2.3 after a failed LOGIN: still not authenticated (SELECT is BAD)")
    tap.like(c.cmd("LOGIN auth@example.org secret", tag="a001")[1], r"^a001 OK ",
             "6.2.3 a001 LOGIN user password (atoms): OK")
    tap.like(c.st("LOGIN auth@example.org secret"), r"^BAD ", "6.2.3 LOGIN in the authenticated state: BAD")
    tap.like(c.st("AUTHENTICATE PLAIN"), r"^BAD ", "6.2.2 AUTHENTICATE in the authenticated state: BAD")
    c.close()
    # 7.5: LOGIN with two synchronizing literals.
    c = session(ports)
    c.send("A001 LOGIN {16}\r\n")
    tap.like(c.line(), r"^\+ ", "7.5 A001 LOGIN {16}: continuation for the first literal")
    c.send("auth@example.org {6}\r\n")
    tap.like(c.line(), r"^\+ ", "7.5 A001 LOGIN: continuation for the second literal")
    c.send("secret\r\n")
    tap.like(c.until("A001")[1], r"^A001 OK ", "7.5 A001 LOGIN with literals: OK")
    c.close()


# ------------------------------------------------ 8 sample connection --

TERRY_HEADER = (b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
                b"From: Terry Gray <gray@cac.washington.edu>\n"
                b"Subject: IMAP4rev1 WG mtg summary and minutes\n"
                b"To: imap@cac.washington.edu\n"
                b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\n"
                b"Message-Id: <B27397-0100000@cac.washington.edu>\n"
                b"MIME-Version: 1.0\n"
                b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n\n")
# 92 lines, 3028 octets with CRLF, as in the RFC's BODY.
TERRY_BODY = b"".join((b"minutes line %02d " % i).ljust(31 if i < 84 else 30, b"x") + b"\n" for i in range(92))


def sample_connection(ports, md):
    assert len(crlf(TERRY_HEADER)) == 342 and len(crlf(TERRY_BODY)) == 3028
    # 18 messages: 1-16 seen in cur/, 17-18 in new/ (2 RECENT, UNSEEN 17).
    for i in range(1, 19):
        if i == 12:
            put(md, TERRY_HEADER + TERRY_BODY, "cur", "S",
                mtime=calendar.timegm((1996, 7, 17, 9, 44, 25)))
        else:
            put(md, b"Date: Wed, 17 Jul 1996 02:23:25 -0700\nSubject: message %d\n\nbody\n" % i,
                "cur" if i <= 16 else "new", "S")
    c = Imap(ports["plain"])
    tap.like(c.line(), r"^\* OK ", "8 S: * OK greeting")
    tap.like(c.cmd("login sample@example.org secret", tag="a001")[1], r"^a001 OK ", "8 a001 login: OK")
    u, t = c.cmd("select inbox", tag="a002")
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        hdr = dict((w[0], w[1:]) for w in f.readline().split()[1:])
    tap.ok("* 18 EXISTS" in u, "8 a002 select inbox: * 18 EXISTS", u)
    tap.ok("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in u,
           "8 a002 select inbox: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)", u)
    tap.ok("* 2 RECENT" in u, "8 a002 select inbox: * 2 RECENT", u)
    tap.ok(any(re.match(r"^\* OK \[UNSEEN 17\] ", x) for x in u), "8 a002 select inbox: * OK [UNSEEN 17]", u)
    tap.ok(any(re.match(r"^\* OK \[UIDVALIDITY %s\] " % hdr.get("V"), x) for x in u),
           "8 a002 select inbox: * OK [UIDVALIDITY n] (dovecot-uidlist's V)", u)
    tap.ok(any(re.match(r"^\* OK \[UIDNEXT 19\] ", x) for x in u), "6.3.1 select inbox: * OK [UIDNEXT 19]", u)
    tap.ok(any(re.match(r"^\* OK \[PERMANENTFLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\\*\)\] ", x) for x in u),
           "6.3.1 select inbox: * OK [PERMANENTFLAGS (... \\*)]", u)
    tap.like(t, r"^a002 OK \[READ-WRITE\] ", "8 a002 select inbox: a002 OK [READ-WRITE]")
    u, t = c.cmd("fetch 12 full", tag="a003")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.ok(n == 12 and set(items) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"} and not dups,
           "8 a003 fetch 12 full: one FETCH with FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY", u)
    tap.is_(flags_of(items), F("\\Seen"), "8 a003 fetch 12 full: FLAGS (\\Seen)")
    tap.is_(internaldate(items.get("INTERNALDATE")), internaldate("17-Jul-1996 02:44:25 -0700"),
            "8 a003 fetch 12 full: INTERNALDATE 17-Jul-1996 02:44:25 -0700 (the same instant)", items.get("INTERNALDATE"))
    tap.is_(items.get("RFC822.SIZE"), "3370", "8 a003 fetch 12 full: RFC822.SIZE (CRLF size)")
    env, _ = parse_value('("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
                         '(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
                         '(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
                         '((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
                         '"<B27397-0100000@cac.washington.edu>")')
    tap.is_(items.get("ENVELOPE"), env, "8 a003 fetch 12 full: ENVELOPE exactly as in the RFC")
    body, _ = parse_value('("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)')
    tap.is_(lower(items.get("BODY")), lower(body),
            "8 a003 fetch 12 full: BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)")
    tap.like(t, r"^a003 OK ", "8 a003 fetch: tagged OK")
    u, t = c.cmd("fetch 12 body[header]", tag="a004")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(items.get("BODY[HEADER]"), crlf(TERRY_HEADER).decode(), "8 a004 fetch 12 body[header]: the 342-octet header")
    tap.ok(set(items) <= {"BODY[HEADER]", "FLAGS"} and flags_of(items) in (None, F("\\Seen")),
           "8 a004 fetch 12 body[header]: nothing else (FLAGS only if any, unchanged)", u)
    tap.like(u[0] if u else "", r"^\* 12 FETCH \(.*(?i:BODY\[HEADER\]) \{342\}\r\n", "8 a004: literal {342}")
    u, t = c.cmd("store 12 +flags \\deleted", tag="a005")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.ok(n == 12 and flags_of(items) == F("\\Seen", "\\Deleted") and set(items) == {"FLAGS"},
           "8 a005 store 12 +flags \\deleted: * 12 FETCH (FLAGS (\\Seen \\Deleted))", u)
    tap.like(t, r"^a005 OK ", "8 a005 store: tagged OK")
    twelve = sorted(disk_flags(md))[11]
    tap.is_(disk_flags(md)[twelve], "ST", "8 a005 on disk: message 12 is :2,ST")
    u, t = c.cmd("fetch 16:18 flags")
    tap.is_({n: flags_of(v) for n, v in fetches(u).items()},
            {16: F("\\Seen"), 17: F("\\Recent"), 18: F("\\Recent")}, "2.3.2 messages 17 and 18 are \\Recent")
    u, t = c.cmd("store 17 flags (\\Flagged)")
    tap.is_({n: flags_of(v) for n, v in fetches(u).items()}, {17: F("\\Flagged", "\\Recent")},
            "6.4.6 STORE FLAGS replaces the flags other than \\Recent")
    u, t = c.cmd("logout", tag="a006")
    tap.ok(len(u) == 1 and u[0].startswith("* BYE ") and t.startswith("a006 OK "),
           "8 a006 logout: * BYE, then a006 OK", u, t)
    c.close()


# --------------------------------------------- 6.3 authenticated state --

def authenticated(ports, md):
    c = session(ports, "rfc")
    # 6.3.8: the hierarchy delimiter.
    u, t = c.cmd('LIST "" ""', tag="A101")
    tap.is_(u, ['* LIST (\\Noselect) "." ""'], "6.3.8 A101 LIST \"\" \"\": * LIST (\\Noselect) \".\" \"\"")
    tap.like(t, r"^A101 OK ", "6.3.8 A101: tagged OK")
    u, t = c.cmd('LIST news.comp.mail.misc ""', tag="A102")
    tap.ok(len(u) == 1 and u[0].startswith('* LIST (\\Noselect) "." ') and t.startswith("A102 OK"),
           "6.3.8 A102 LIST reference \"\": the delimiter (and a root name)", u, t)
    # 6.3.3 CREATE, with a trailing separator.
    tap.like(c.cmd("CREATE owatagusiam.", tag="A003")[1], r"^A003 OK ", "6.3.3 A003 CREATE owatagusiam.: OK")
    tap.like(c.cmd("CREATE owatagusiam.blurdybloop", tag="A004")[1], r"^A004 OK ",
             "6.3.3 A004 CREATE owatagusiam.blurdybloop: OK")
    tap.ok(os.path.isdir(os.path.join(md, ".owatagusiam", "cur")) and
           os.path.isfile(os.path.join(md, ".owatagusiam.blurdybloop", "maildirfolder")),
           "6.3.3 on disk: .owatagusiam (without the trailing \".\") and .owatagusiam.blurdybloop/maildirfolder")
    lst = list_lines(c.cmd('LIST "" "owatagusiam*"')[0])
    tap.is_(sorted(lst), ["owatagusiam", "owatagusiam.blurdybloop"], "6.3.3 LIST shows both levels")
    tap.ok(attrs(lst, "owatagusiam") is not None and "\\noselect" not in attrs(lst, "owatagusiam") and
           "\\haschildren" in attrs(lst, "owatagusiam"), "6.3.3 owatagusiam is selectable, \\HasChildren", lst)
    tap.like(c.st("CREATE owatagusiam"), r"^NO ", "6.3.3 CREATE of an existing name: NO")
    tap.like(c.st("CREATE INBOX"), r"^NO ", "6.3.3 CREATE INBOX: NO")

    # 6.3.4 DELETE, first example: foo is only a level (\Noselect).
    c.cmd("CREATE blurdybloop")
    c.cmd("CREATE foo.bar")
    lst = list_lines(c.cmd('LIST "" *', tag="A682")[0])
    tap.ok(attrs(lst, "blurdybloop") is not None and "\\noselect" not in attrs(lst, "blurdybloop") and
           attrs(lst, "foo.bar") is not None and "\\noselect" not in attrs(lst, "foo.bar") and
           "\\noselect" in (attrs(lst, "foo") or ()), "6.3.4 A682 LIST: blurdybloop, foo (\\Noselect), foo.bar", lst)
    tap.ok(all(v[1] == "." for v in lst.values()), "6.3.4 A682 LIST: the delimiter is \".\"", lst)
    tap.like(c.cmd("DELETE blurdybloop", tag="A683")[1], r"^A683 OK ", "6.3.4 A683 DELETE blurdybloop: OK")
    tap.ok(not os.path.exists(os.path.join(md, ".blurdybloop")), "6.3.4 .blurdybloop is gone from disk")
    tap.like(c.cmd("DELETE foo", tag="A684")[1], r"^A684 NO ",
             "6.3.4 A684 DELETE foo (\\Noselect with inferiors): NO")
    tap.like(c.cmd("DELETE foo.bar", tag="A685")[1], r"^A685 OK ", "6.3.4 A685 DELETE foo.bar: OK")
    lst = list_lines(c.cmd('LIST "" "foo*"', tag="A686")[0])
    tap.is_(sorted(lst), [], "6.3.4 A686 LIST: foo had no mailbox of its own, it goes with its last child (Maildir++)")
    # Second example: foo is a mailbox with an inferior.
    c.cmd("CREATE blurdybloop")
    c.cmd("CREATE foo")
    c.cmd("CREATE foo.bar")
    put(os.path.join(md, ".foo"), b"Subject: in foo\n\nfoo\n")
    lst = list_lines(c.cmd('LIST "" *', tag="A82")[0])
    tap.ok(all(n in lst and "\\noselect" not in lst[n][0] for n in ("blurdybloop", "foo", "foo.bar")),
           "6.3.4 A82 LIST: blurdybloop, foo, foo.bar all selectable", lst)
    tap.like(c.cmd("DELETE blurdybloop", tag="A83")[1], r"^A83 OK ", "6.3.4 A83 DELETE blurdybloop: OK")
    u, t = c.cmd("DELETE foo", tag="A84")
    tap.like(t, r"^A84 OK ", "6.3.4 A84 DELETE foo (selectable, with an inferior): OK, it becomes \\Noselect")
    lst = list_lines(c.cmd('LIST "" *', tag="A85")[0])
    # The RFC's server drops foo entirely here, yet lists a \Noselect foo
    # with "*" in A682 above, where foo was never created. Maildir++ cannot
    # tell the two apart (no directory either way): like Dovecot, a level
    # with inferiors and no directory is listed \Noselect for "*" too.
    tap.ok("foo.bar" in lst and "\\noselect" in (attrs(lst, "foo") or ()),
           "6.3.4 A85 LIST \"\" *: foo.bar, and foo only as \\Noselect", lst)
    lst = list_lines(c.cmd('LIST "" %', tag="A86")[0])
    tap.ok("\\noselect" in (attrs(lst, "foo") or ()), "6.3.4 A86 LIST \"\" %: * LIST (\\Noselect) \".\" foo", lst)
    tap.ok(not os.path.exists(os.path.join(md, ".foo")) and os.path.isdir(os.path.join(md, ".foo.bar")),
           "6.3.4 after DELETE foo: .foo removed (with its message), .foo.bar kept")
    c.cmd("DELETE foo.bar")
    c.cmd("DELETE foo")

    # 6.3.5 RENAME, first example.
    c.cmd("CREATE blurdybloop")
    c.cmd("CREATE foo.bar")
    put(os.path.join(md, ".foo.bar"), b"Subject: in foo.bar\n\nbar\n")
    tap.like(c.cmd("RENAME blurdybloop sarasoop", tag="A683")[1], r"^A683 OK ",
             "6.3.5 A683 RENAME blurdybloop sarasoop: OK")
    tap.like(c.cmd("RENAME foo zowie", tag="A684")[1], r"^A684 OK ",
             "6.3.5 A684 RENAME foo zowie (a level with an inferior): OK")
    lst = list_lines(c.cmd('LIST "" *', tag="A685")[0])
    tap.ok("sarasoop" in lst and "\\noselect" in (attrs(lst, "zowie") or ()) and "zowie.bar" in lst and
           not any(n.startswith("foo") or n == "blurdybloop" for n in lst),
           "6.3.5 A685 LIST: sarasoop, zowie (\\Noselect), zowie.bar", lst)
    tap.ok(os.path.isdir(os.path.join(md, ".sarasoop")) and os.path.isdir(os.path.join(md, ".zowie.bar")) and
           not os.path.exists(os.path.join(md, ".foo.bar")), "6.3.5 on disk: .sarasoop, .zowie.bar")
    u, t = c.cmd("STATUS zowie.bar (MESSAGES)")
    tap.is_(u, ["* STATUS zowie.bar (MESSAGES 1)"], "6.3.5 the inferior's messages moved along")
    tap.like(c.st("RENAME nosuch other"), r"^NO ", "6.3.5 RENAME of a missing mailbox: NO")
    tap.like(c.st("RENAME sarasoop zowie.bar"), r"^NO ", "6.3.5 RENAME onto an existing mailbox: NO")
    # Second example: INBOX with an inferior INBOX.bar.
    put(md, b"Subject: inbox 1\n\none\n")
    put(md, b"Subject: inbox 2\n\ntwo\n", "cur", "S")
    c.cmd("STATUS INBOX (MESSAGES)")
    tap.like(c.st("CREATE INBOX.bar"), r"^OK ", "6.3.5 CREATE INBOX.bar")
    lst = list_lines(c.cmd('LIST "" "INBOX*"', tag="Z432")[0])
    tap.is_(sorted(lst), ["INBOX", "INBOX.bar"], "6.3.5 Z432 LIST: INBOX and INBOX.bar")
    tap.ok("\\haschildren" in (attrs(lst, "INBOX") or ()),
           "6.3.5 Z432 LIST: INBOX has an inferior, so \\HasChildren (RFC 3348)", lst)
    tap.like(c.cmd("RENAME INBOX old-mail", tag="Z433")[1], r"^Z433 OK ", "6.3.5 Z433 RENAME INBOX old-mail: OK")
    lst = list_lines(c.cmd('LIST "" *', tag="Z434")[0])
    tap.ok({"INBOX", "INBOX.bar", "old-mail"} <= set(lst), "6.3.5 Z434 LIST: INBOX, INBOX.bar, old-mail", lst)
    u, t = c.cmd("STATUS INBOX (MESSAGES)")
    tap.is_(u, ["* STATUS INBOX (MESSAGES 0)"], "6.3.5 RENAME INBOX leaves INBOX empty")
    u, t = c.cmd("STATUS old-mail (MESSAGES UNSEEN)")
    tap.is_(u, ["* STATUS old-mail (MESSAGES 2 UNSEEN 1)"], "6.3.5 old-mail holds INBOX's messages, flags kept")
    tap.ok(os.path.isdir(os.path.join(md, ".INBOX.bar")) and os.path.isdir(os.path.join(md, ".old-mail", "cur")),
           "6.3.5 on disk: .INBOX.bar untouched, .old-mail created")

    # 6.3.6 / 6.3.7 SUBSCRIBE, UNSUBSCRIBE (a name that need not exist).
    subs = os.path.join(md, "subscriptions")
    tap.like(c.cmd("SUBSCRIBE #news.comp.mail.mime", tag="A002")[1], r"^A002 OK ",
             "6.3.6 A002 SUBSCRIBE #news.comp.mail.mime: OK")
    tap.ok("#news.comp.mail.mime" in open(subs).read().splitlines(), "6.3.6 the name is in the subscriptions file")
    u, t = c.cmd('LSUB "" "#news.*"')
    tap.ok(len(u) == 1 and list_lines(u, "LSUB").get("#news.comp.mail.mime") is not None,
           "6.3.6 LSUB lists a subscribed name that does not exist", u)
    tap.like(c.cmd("UNSUBSCRIBE #news.comp.mail.mime", tag="A003")[1], r"^A003 OK ",
             "6.3.7 A003 UNSUBSCRIBE #news.comp.mail.mime: OK")
    tap.ok("#news.comp.mail.mime" not in open(subs).read().splitlines(), "6.3.7 the name left the subscriptions file")

    # 6.3.9 LSUB, with the "%" special case.
    for n in ("news.comp.mail.mime", "news.comp.mail.misc"):
        c.cmd("CREATE " + n)
        c.cmd("SUBSCRIBE " + n)
    u, t = c.cmd('LSUB "news." "comp.mail.*"', tag="A002")
    tap.is_(sorted(u), ['* LSUB () "." news.comp.mail.mime', '* LSUB () "." news.comp.mail.misc'],
            "6.3.9 A002 LSUB \"news.\" \"comp.mail.*\": mime and misc")
    tap.like(t, r"^A002 OK ", "6.3.9 A002: tagged OK")
    u, t = c.cmd('LSUB "news." "comp.%"', tag="A003")
    lsub = list_lines(u, "LSUB")
    tap.ok(list(lsub) == ["news.comp.mail"] and "\\noselect" in lsub["news.comp.mail"][0],
           "6.3.9 A003 LSUB \"news.\" \"comp.%\": * LSUB (\\Noselect) \".\" news.comp.mail", u)
    tap.ok(open(subs).read().splitlines()[-2:] == ["news.comp.mail.mime", "news.comp.mail.misc"],
           "6.3.9 subscriptions file: one name a line")

    # 6.3.8 LIST with a reference and "%": meetings and a level foo.
    c.cmd("CREATE Mail.meetings")
    c.cmd("CREATE Mail.foo.bar")
    u, t = c.cmd('LIST Mail. %', tag="A202")
    lst = list_lines(u)
    tap.is_(sorted(lst), ["Mail.foo", "Mail.meetings"], "6.3.8 A202 LIST Mail. %: Mail.foo, Mail.meetings")
    tap.ok("\\noselect" in (attrs(lst, "Mail.foo") or ()) and "\\noselect" not in (attrs(lst, "Mail.meetings") or {"\\noselect"}),
           "6.3.8 A202: Mail.foo \\Noselect, Mail.meetings selectable", lst)
    lst = list_lines(c.cmd('LIST "" "Mail.*"')[0])
    tap.is_(sorted(lst), ["Mail.foo", "Mail.foo.bar", "Mail.meetings"], "6.3.8 LIST \"\" Mail.*: \"*\" crosses levels")
    lst = list_lines(c.cmd('LIST "" "*"')[0])
    tap.ok("INBOX" in lst and "Mail" in lst and "Mail.foo.bar" in lst, "6.3.8 LIST \"\" *: INBOX and every level", lst)
    lst = list_lines(c.cmd('LIST "" "%"')[0])
    tap.ok("INBOX" in lst and "Mail" in lst and not any("." in n for n in lst), "6.3.8 LIST \"\" %: top level only", lst)
    lst = list_lines(c.cmd('LIST "" "inbox"')[0])
    tap.is_(list(lst), ["INBOX"], "6.3.8 LIST \"\" inbox: INBOX (case-insensitive)")
    u, t = c.cmd('LIST "" "nothing*"')
    tap.ok(u == [] and " OK " in t, "6.3.8 LIST with no match: OK, no LIST lines", u, t)

    # 6.3.10 STATUS
    blurdy = os.path.join(md, ".blurdybloop")
    c.cmd("CREATE blurdybloop")
    put(blurdy, b"Subject: s1\n\n1\n", "cur", "S")
    put(blurdy, b"Subject: s2\n\n2\n", "new")
    put(blurdy, b"Subject: s3\n\n3\n", "new")
    u, t = c.cmd("STATUS blurdybloop (UIDNEXT MESSAGES)", tag="A042")
    tap.is_(u, ["* STATUS blurdybloop (MESSAGES 3 UIDNEXT 4)"], "6.3.10 A042 STATUS blurdybloop (UIDNEXT MESSAGES)")
    tap.like(t, r"^A042 OK ", "6.3.10 A042: tagged OK")
    u, t = c.cmd("STATUS blurdybloop (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    with open(os.path.join(blurdy, "dovecot-uidlist")) as f:
        v = dict((w[0], w[1:]) for w in f.readline().split()[1:]).get("V")
    tap.is_(u, ["* STATUS blurdybloop (MESSAGES 3 RECENT 2 UIDNEXT 4 UIDVALIDITY %s UNSEEN 2)" % v],
            "6.3.10 STATUS of every item")
    tap.is_(len(os.listdir(os.path.join(blurdy, "new"))), 2, "6.3.10 STATUS does not take \\Recent away (new/ untouched)")

    # 6.3.2 EXAMINE
    u, t = c.cmd("EXAMINE blurdybloop", tag="A932")
    tap.ok("* 3 EXISTS" in u and "* 2 RECENT" in u and any(x.startswith("* OK [UNSEEN 2] ") for x in u),
           "6.3.2 A932 EXAMINE: * 3 EXISTS, * 2 RECENT, * OK [UNSEEN 2]", u)
    tap.ok(any(x.startswith("* OK [UIDVALIDITY %s] " % v) for x in u) and any(x.startswith("* OK [UIDNEXT 4] ") for x in u),
           "6.3.2 A932 EXAMINE: UIDVALIDITY, UIDNEXT", u)
    tap.ok("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in u and
           any(x.startswith("* OK [PERMANENTFLAGS ()] ") for x in u), "6.3.2 A932 EXAMINE: FLAGS, PERMANENTFLAGS ()", u)
    tap.like(t, r"^A932 OK \[READ-ONLY\] ", "6.3.2 A932 OK [READ-ONLY]")
    tap.is_(len(os.listdir(os.path.join(blurdy, "new"))), 2, "6.3.2 EXAMINE does not take \\Recent away")
    u, t = c.cmd("STATUS blurdybloop (RECENT)")
    tap.is_(u, ["* STATUS blurdybloop (RECENT 2)"], "6.3.2 after EXAMINE: RECENT still 2")
    tap.like(c.st("STORE 1 +FLAGS (\\Deleted)"), r"^NO ", "6.3.2 STORE in an EXAMINEd mailbox: NO")
    # 6.3.1 SELECT: a failed SELECT leaves no mailbox selected.
    tap.like(c.st("SELECT nosuch"), r"^NO ", "6.3.1 SELECT of a missing mailbox: NO")
    tap.like(c.st("FETCH 1 FLAGS"), r"^BAD ", "6.3.1 after a failed SELECT no mailbox is selected")

    # 6.3.11 APPEND: the example message, the missing mailbox first.
    msg = (b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
           b"From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
           b"Subject: afternoon meeting\r\n"
           b"To: mooch@owatagu.siam.edu\r\n"
           b"Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
           b"\r\n"
           b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
    assert len(msg) == 310
    u, t, cont = c.sync_literal("APPEND saved-messages (\\Seen) ", msg, tag="A002")
    tap.like(t, r"^A002 NO \[TRYCREATE\] ", "6.3.11 APPEND to a missing mailbox: NO [TRYCREATE]")
    tap.ok(not os.path.exists(os.path.join(md, ".saved-messages")), "6.3.11 APPEND does not create the mailbox")
    c.cmd("CREATE saved-messages")
    u, t, cont = c.sync_literal("APPEND saved-messages (\\Seen) ", msg, tag="A003")
    tap.like(cont or "", r"^\+ ", "6.3.11 A003 APPEND ... {310}: continuation for the literal")
    tap.like(t, r"^A003 OK ", "6.3.11 A003 APPEND: OK")
    tap.like(t, r"^A003 OK \[APPENDUID \d+ 1\] ", "6.3.11 A003 APPEND: [APPENDUID v 1] (RFC 4315)")
    saved = os.path.join(md, ".saved-messages")
    fl = disk_flags(saved)
    tap.is_(list(fl.values()), ["S"], "6.3.11 on disk: one message, :2,S")
    # new/ with its flags: \Recent "in either case"
    name = [f for f in os.listdir(os.path.join(saved, "new"))][0]
    with open(os.path.join(saved, "new", name), "rb") as f:
        tap.is_(f.read(), msg.replace(b"\r\n", b"\n"), "6.3.11 on disk: the message as sent (LF line ends)")
    u, t = c.cmd("STATUS saved-messages (MESSAGES UNSEEN)")
    tap.is_(u, ["* STATUS saved-messages (MESSAGES 1 UNSEEN 0)"], "6.3.11 STATUS: 1 message, \\Seen")
    u, t = c.cmd("STATUS saved-messages (RECENT)")
    tap.is_(u, ["* STATUS saved-messages (RECENT 1)"],
            "6.3.11 an APPENDed message has \\Recent (\"In either case, the Recent flag is also set\")")
    u, t = c.cmd("SELECT saved-messages")
    tap.ok("* 1 EXISTS" in u and "* 1 RECENT" in u, "6.3.11 SELECT after APPEND: * 1 EXISTS, * 1 RECENT", u)
    c.cmd("CLOSE")
    c.cmd("LOGOUT")
    c.close()


def uid_reuse(ports):
    """6.3.4/6.3.5: a mailbox created again under the name of a deleted or
    renamed one must not reuse its UIDs with the same UIDVALIDITY."""
    c = session(ports, "uidv")
    msg = b"Subject: u\r\n\r\nu\r\n"

    def append(box):
        t = c.cmd("APPEND %s {%d+}\r\n%s" % (box, len(msg), msg.decode()))[1]
        m = re.search(r"\[APPENDUID (\d+) (\d+)\]", t)
        return (int(m.group(1)), int(m.group(2))) if m else (None, None)
    for how in ("DELETE", "RENAME"):
        c.cmd("CREATE Reuse")
        append("Reuse")
        v1, u1 = append("Reuse")
        c.cmd("DELETE Reuse" if how == "DELETE" else "RENAME Reuse Moved")
        c.cmd("CREATE Reuse")
        v2, u2 = append("Reuse")
        tap.ok(v1 is not None and v2 is not None and (v2 != v1 or u2 > u1),
               "6.3.%s %s, CREATE, APPEND: a new UIDVALIDITY or UIDs above the old ones" %
               ("4" if how == "DELETE" else "5", how), "before: UIDVALIDITY %s last UID %s" % (v1, u1),
               "after: UIDVALIDITY %s UID %s" % (v2, u2))
        c.cmd("DELETE Reuse")
    c.close()


# -------------------------------------------------- 6.4 selected state --

UTF8_WORD = "日本語".encode("utf-8")
NIHON = "日本".encode("utf-8")          # 6 octets: the RFC's {6}


def qp(b):
    return "".join("=%02X" % x if x >= 0x80 else chr(x) for x in b).encode()


OPS = [  # From, Maildir flags, internal date, extra headers, body
    ("Smith <smith@example.net>", "F", day(1994, 2, 7), b"", b"budget\n"),
    ("Fred Foobar <foobar@Blurdybloop.COM>", "S", day(1994, 2, 7), b"", b"afternoon meeting\n"),
    ("Jones <jones@example.net>", "", day(1994, 2, 3),
     b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
     UTF8_WORD + "の本文\n".encode()),
    ("Terry Gray <gray@cac.washington.edu>", "FS", day(1994, 2, 10), b"", b"agenda\n"),
    ("Jones <jones@example.net>", "F", day(1994, 1, 15), b"", b"old news\n"),
    ("Carol <carol@example.com>", "F", day(1994, 2, 1), b"", b"boundary day\n"),
    ("John Smithers <js@example.com>", "F", day(1994, 3, 2), b"", b"smithers\n"),
    ("Dave <dave@example.com>", "F", day(1994, 1, 31), b"", b"day before\n"),
    ("Eve <eve@example.com>", "", day(1994, 2, 5), b"", b"plain ascii body\n"),
    ("Fay <fay@example.com>", "F", day(1995, 12, 20), b"", b"later\n"),
    ("smith@example.net", "FS", day(1994, 2, 1), b"", b"lowercase smith\n"),
    ("Gus <gus@example.com>", "S", day(1994, 2, 12),
     b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
     qp(UTF8_WORD + "です".encode()) + b"\n"),
]


def ops_message(i):
    frm, flags, t, extra, body = OPS[i - 1]
    subj = (b"=?UTF-8?B?" + base64.b64encode(UTF8_WORD) + b"?=") if i == 9 else b"message %d" % i
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t)).encode()
    return (b"Date: " + date + b"\nFrom: " + frm.encode() + b"\nTo: ops@example.org\nSubject: " + subj +
            b"\n" + extra + b"\n" + body)


def selected(ports, md):
    bases = [put(md, ops_message(i), "cur", OPS[i - 1][1], OPS[i - 1][2]) for i in range(1, 13)]
    c = session(ports, "ops")
    u, t = c.cmd("SELECT INBOX", tag="A142")
    tap.ok("* 12 EXISTS" in u and "* 0 RECENT" in u and any(x.startswith("* OK [UNSEEN 1] ") for x in u),
           "6.3.1 A142 SELECT INBOX: * 12 EXISTS, * 0 RECENT, * OK [UNSEEN 1]", u)
    tap.ok(any(x.startswith("* OK [UIDNEXT 13] ") for x in u) and any(x.startswith("* OK [UIDVALIDITY ") for x in u),
           "6.3.1 A142 SELECT INBOX: UIDVALIDITY, UIDNEXT 13", u)
    tap.like(t, r"^A142 OK \[READ-WRITE\] ", "6.3.1 A142 OK [READ-WRITE]")
    # 6.4.1 CHECK
    u, t = c.cmd("CHECK", tag="FXXZ")
    tap.ok(u == [] and t.startswith("FXXZ OK "), "6.4.1 FXXZ CHECK: OK", u, t)

    # 6.4.4 SEARCH
    u, t = c.cmd('SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"', tag="A282")
    tap.is_(u, ["* SEARCH 4 6 10"], "6.4.4 A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"")
    tap.like(t, r"^A282 OK ", "6.4.4 A282: tagged OK")
    u, t = c.cmd('SEARCH TEXT "string not in mailbox"', tag="A283")
    tap.is_(u, ["* SEARCH"], "6.4.4 A283 SEARCH TEXT \"string not in mailbox\": * SEARCH")
    u, t, cont = c.sync_literal("SEARCH CHARSET UTF-8 TEXT ", NIHON, tag="A284")
    tap.like(cont or "", r"^\+ ", "6.4.4 A284 SEARCH CHARSET UTF-8 TEXT {6}: continuation")
    tap.is_(u, ["* SEARCH 3 9 12"],
            "6.4.4 A284 SEARCH CHARSET UTF-8 TEXT {6}: 8bit body, RFC 2047 subject and quoted-printable body all match")
    u, t, cont = c.sync_literal("SEARCH CHARSET UTF-8 SUBJECT ", NIHON)
    tap.is_(u, ["* SEARCH 9"], "6.4.4 SEARCH CHARSET UTF-8 SUBJECT: the RFC 2047 encoded subject")
    u, t, cont = c.sync_literal("SEARCH CHARSET UTF-8 BODY ", NIHON)
    tap.is_(u, ["* SEARCH 3 12"], "6.4.4 SEARCH CHARSET UTF-8 BODY: 8bit and quoted-printable bodies (CTE decoded)")
    u, t = c.cmd('SEARCH DELETED FROM "SMITH" SINCE 1-Feb-1994')
    tap.is_(u, ["* SEARCH"], "6.4.4 SEARCH DELETED FROM \"SMITH\" SINCE 1-Feb-1994: none deleted yet")
    u, t = c.cmd("SEARCH CHARSET KOI8-R TEXT x")
    tap.like(t, r"^\S+ NO ", "6.4.4 SEARCH with an unsupported charset: NO (not BAD)")

    # 6.4.6 STORE
    u, t = c.cmd("STORE 2:4 +FLAGS (\\Deleted)", tag="A003")
    got = {n: flags_of(i) for n, i in fetches(u).items()}
    tap.is_(got, {2: F("\\Deleted", "\\Seen"), 3: F("\\Deleted"), 4: F("\\Deleted", "\\Flagged", "\\Seen")},
            "6.4.6 A003 STORE 2:4 +FLAGS (\\Deleted): the three FETCH responses of the RFC")
    tap.like(t, r"^A003 OK ", "6.4.6 A003: tagged OK")
    fl = disk_flags(md)
    tap.is_([fl[b] for b in bases[1:4]], ["ST", "T", "FST"], "6.4.6 on disk: :2,ST :2,T :2,FST")
    u, t = c.cmd('SEARCH DELETED FROM "SMITH" SINCE 1-Feb-1994')
    tap.is_(u, ["* SEARCH"], "6.4.4 SEARCH DELETED FROM \"SMITH\": none of the deleted is from Smith")
    u, t = c.cmd("STORE 2:4 -FLAGS.SILENT (\\Deleted)")
    tap.ok(u == [] and " OK " in t, "6.4.6 -FLAGS.SILENT: no untagged FETCH", u)
    fl = disk_flags(md)
    tap.is_([fl[b] for b in bases[1:4]], ["S", "", "FS"], "6.4.6 -FLAGS.SILENT on disk: \\Deleted gone")
    u, t = c.cmd("STORE 5 FLAGS (\\Answered)")
    tap.is_({n: flags_of(i) for n, i in fetches(u).items()}, {5: F("\\Answered")}, "6.4.6 STORE FLAGS replaces")
    tap.is_(disk_flags(md)[bases[4]], "R", "6.4.6 STORE FLAGS on disk: :2,R")
    u, t = c.cmd("STORE 5 FLAGS.SILENT (\\Flagged \\Draft)")
    tap.ok(u == [] and disk_flags(md)[bases[4]] == "DF", "6.4.6 FLAGS.SILENT: nothing said, :2,DF on disk", u)
    u, t = c.cmd("STORE 5 +FLAGS.SILENT (\\Seen)")
    tap.ok(u == [] and disk_flags(md)[bases[4]] == "DFS", "6.4.6 +FLAGS.SILENT: nothing said, :2,DFS on disk", u)
    u, t = c.cmd("STORE 5 -FLAGS (\\Seen \\Draft)")
    tap.is_({n: flags_of(i) for n, i in fetches(u).items()}, {5: F("\\Flagged")}, "6.4.6 -FLAGS: the remaining flags")
    tap.is_(disk_flags(md)[bases[4]], "F", "6.4.6 -FLAGS on disk: :2,F")

    # 6.4.5 FETCH
    u, t = c.cmd("FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])", tag="A654")
    got = fetches(u)
    tap.is_(sorted(got), [2, 3, 4], "6.4.5 A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)]): * 2, * 3, * 4")
    want = {}
    for i in (2, 3, 4):
        hdr = crlf(ops_message(i)).split(b"\r\n")
        want[i] = "".join(x.decode() + "\r\n" for x in hdr if x.startswith((b"Date:", b"From:"))) + "\r\n"
    tap.is_({n: v.get("BODY[HEADER.FIELDS (DATE FROM)]") for n, v in got.items()}, want,
            "6.4.5 A654: the Date and From lines and the blank line")
    tap.is_({n: flags_of(v) for n, v in got.items()},
            {2: F("\\Seen"), 3: F("\\Seen"), 4: F("\\Flagged", "\\Seen")},
            "6.4.5 A654: FLAGS include the \\Seen the fetch set")
    tap.ok(all(len(parse_fetch(x)[2]) == 0 for x in u), "6.4.5 A654: each item once per FETCH response", u)
    tap.is_(disk_flags(md)[bases[2]], "S", "6.4.5 A654 on disk: message 3 now :2,S")
    tap.like(t, r"^A654 OK ", "6.4.5 A654: tagged OK")
    u, t = c.cmd("FETCH 3 ALL")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(sorted(items), ["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE"],
            "6.4.5 FETCH 3 ALL: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE")
    tap.is_(internaldate(items.get("INTERNALDATE")), OPS[2][2], "6.4.5 FETCH 3 ALL: INTERNALDATE is the file's date")
    tap.is_(items.get("RFC822.SIZE"), str(len(crlf(ops_message(3)))), "6.4.5 FETCH 3 ALL: RFC822.SIZE")
    env = items.get("ENVELOPE") or [None] * 10
    tap.ok(env[1] == "message 3" and env[2] == [["Jones", None, "jones", "example.net"]] and
           env[5] == [[None, None, "ops", "example.org"]], "6.4.5 FETCH 3 ALL: ENVELOPE subject, from, to", env)
    u, t = c.cmd("FETCH 4 FULL")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(sorted(items), ["BODY", "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE"], "6.4.5 FETCH 4 FULL: ALL and BODY")
    tap.is_(lower(items.get("BODY")), ["text", "plain", ["charset", "us-ascii"], None, None, "7bit", "8", "1"],
            "6.4.5 FETCH 4 FULL: BODY of a plain message")
    u, t = c.cmd("FETCH 1 FAST")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(sorted(items), ["FLAGS", "INTERNALDATE", "RFC822.SIZE"], "6.4.5 FETCH 1 FAST")
    u, t = c.cmd("FETCH 9 RFC822.HEADER")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(items.get("RFC822.HEADER"), crlf(ops_message(9)).split(b"\r\n\r\n")[0].decode() + "\r\n\r\n",
            "6.4.5 FETCH 9 RFC822.HEADER: the header")
    tap.is_(disk_flags(md)[bases[8]], "", "6.4.5 RFC822.HEADER does not set \\Seen (as BODY.PEEK[HEADER])")
    u, t = c.cmd("FETCH 9 RFC822.TEXT")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(items.get("RFC822.TEXT"), "plain ascii body\r\n", "6.4.5 FETCH 9 RFC822.TEXT: the body")
    tap.ok(flags_of(items) == F("\\Seen") and disk_flags(md)[bases[8]] == "S",
           "6.4.5 RFC822.TEXT sets \\Seen (FLAGS sent, :2,S on disk)", u)
    u, t = c.cmd("FETCH 10 RFC822")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(items.get("RFC822"), crlf(ops_message(10)).decode(), "6.4.5 FETCH 10 RFC822: the whole message")
    tap.is_(disk_flags(md)[bases[9]], "FS", "6.4.5 RFC822 sets \\Seen on disk")
    u, t = c.cmd("FETCH 1 BODY.PEEK[]<0.100000>")
    n, items, dups = parse_fetch(u[0] if len(u) == 1 else "")
    tap.is_(items.get("BODY[]<0>"), crlf(ops_message(1)).decode(),
            "6.4.5 BODY[]<0.100000> of a short message: BODY[]<0> with the whole message")
    u, t = c.cmd("FETCH 1 BODY.PEEK[TEXT]<3.2>")
    tap.is_(fetches(u).get(1, {}).get("BODY[TEXT]<3>"), "ge", "6.4.5 BODY.PEEK[TEXT]<3.2>: octets 3-4 of the text")
    tap.is_(disk_flags(md)[bases[0]], "F", "6.4.5 BODY.PEEK does not set \\Seen")

    # 6.4.7 COPY
    tap.like(c.cmd("COPY 2:4 MEETING", tag="A002")[1], r"^A002 NO \[TRYCREATE\] ",
             "6.4.7 COPY to a missing mailbox: NO [TRYCREATE]")
    tap.ok(not os.path.exists(os.path.join(md, ".MEETING")), "6.4.7 COPY does not create the mailbox")
    c.cmd("CREATE MEETING")
    u, t = c.cmd("COPY 2:4 MEETING", tag="A003")
    tap.like(t, r"^A003 OK ", "6.4.7 A003 COPY 2:4 MEETING: OK")
    tap.like(t, r"^A003 OK \[COPYUID \d+ 2:4 1:3\] ", "6.4.7 A003 COPY: [COPYUID v 2:4 1:3] (RFC 4315)")
    meeting = os.path.join(md, ".MEETING")
    tap.is_(sorted(disk_flags(meeting).values()), ["FS", "S", "S"], "6.4.7 COPY keeps the flags (on disk)")
    mt = sorted(int(os.stat(os.path.join(meeting, sub, f)).st_mtime)
                for sub in ("cur", "new") for f in os.listdir(os.path.join(meeting, sub)))
    tap.is_(mt, sorted(OPS[i][2] for i in (1, 2, 3)), "6.4.7 COPY keeps the internal dates")
    u, t = c.cmd("STATUS MEETING (MESSAGES RECENT)")
    tap.is_(u, ["* STATUS MEETING (MESSAGES 3 RECENT 3)"], "6.4.7 the copies have \\Recent (SHOULD)")

    # 6.4.3 EXPUNGE: messages 3, 4, 7 and 11 deleted.
    c.cmd("STORE 3:4,7,11 +FLAGS.SILENT (\\Deleted)")
    u, t = c.cmd("EXPUNGE", tag="A202")
    seqs, removed, ok = list(range(1, 13)), [], True
    for x in u:
        m = re.match(r"^\* (\d+) EXPUNGE$", x)
        if not m or not 1 <= int(m.group(1)) <= len(seqs):
            ok = False
            break
        removed.append(seqs.pop(int(m.group(1)) - 1))
    tap.ok(ok and sorted(removed) == [3, 4, 7, 11],
           "6.4.3 A202 EXPUNGE: the EXPUNGE responses, read in order, remove messages 3, 4, 7 and 11", u)
    tap.like(t, r"^A202 OK ", "6.4.3 A202: tagged OK")
    u, t = c.cmd("FETCH 1:* UID")
    tap.is_([fetches(u)[n].get("UID") for n in sorted(fetches(u))], ["1", "2", "5", "6", "8", "9", "10", "12"],
            "6.4.3 after EXPUNGE: the sequence numbers shifted")
    tap.is_(sorted(disk_flags(md)), sorted(bases[i - 1] for i in (1, 2, 5, 6, 8, 9, 10, 12)),
            "6.4.3 EXPUNGE removed the four files")

    # 6.4.8 UID: numbers are UIDs; non-existent UIDs are ignored.
    u, t = c.cmd("UID FETCH 4:8 FLAGS", tag="A999")
    got = fetches(u)
    tap.is_({n: (v.get("UID"), flags_of(v)) for n, v in got.items()},
            {3: ("5", F("\\Flagged")), 4: ("6", F("\\Flagged")), 5: ("8", F("\\Flagged"))},
            "6.4.8 A999 UID FETCH 4:8 FLAGS: sequence numbers 3-5, UID included, UID 4 and 7 ignored")
    tap.like(t, r"^A999 OK ", "6.4.8 A999: tagged OK")
    u, t = c.cmd("UID FETCH 559:* UID")
    tap.is_(u, ["* 8 FETCH (UID 12)"], "6.4.8 UID FETCH 559:*: the message with the highest UID")
    u, t = c.cmd("UID FETCH 100:200 FLAGS")
    tap.ok(u == [] and " OK " in t, "6.4.8 UID FETCH of no existing UID: OK without data", u, t)
    u, t = c.cmd("UID SEARCH 1:5 UID 3:100")
    tap.is_(u, ["* SEARCH 5 6 8"], "6.4.8 UID SEARCH 1:5 UID 3:100: UIDs of the intersection")
    u, t = c.cmd("UID SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"")
    tap.is_(u, ["* SEARCH 6 10"], "6.4.8 UID SEARCH of the A282 keys: UIDs")
    u, t = c.cmd("UID STORE 5 +FLAGS (\\Answered)")
    tap.is_({n: (v.get("UID"), flags_of(v)) for n, v in fetches(u).items()}, {3: ("5", F("\\Answered", "\\Flagged"))},
            "6.4.8 UID STORE: FETCH with the UID")
    tap.is_(disk_flags(md)[bases[4]], "FR", "6.4.8 UID STORE on disk: :2,FR")
    u, t = c.cmd("UID STORE 7 +FLAGS (\\Answered)")
    tap.ok(u == [] and " OK " in t, "6.4.8 UID STORE of an expunged UID: OK, nothing done", u, t)
    u, t = c.cmd("UID COPY 7 MEETING")
    tap.ok(u == [] and " OK" in t, "6.4.8 UID COPY of an expunged UID: OK", u, t)
    u, t = c.cmd("UID COPY 5:6 MEETING")
    tap.like(t, r" OK \[COPYUID \d+ 5:6 4:5\] ", "6.4.8 UID COPY 5:6: [COPYUID v 5:6 4:5]")
    tap.like(c.st("UID COPY 5 NOWHERE"), r"^NO \[TRYCREATE\] ", "6.4.8 UID COPY to a missing mailbox: NO [TRYCREATE]")

    # 6.3.11: APPEND to the selected mailbox.
    msg = b"Subject: appended\r\n\r\nnew\r\n"
    u1, t = c.cmd("APPEND INBOX {%d+}\r\n%s" % (len(msg), msg.decode()))
    u2, t2 = c.cmd("NOOP")
    tap.ok("* 9 EXISTS" in u1 + u2, "6.3.11 APPEND to the selected mailbox: * 9 EXISTS by the next NOOP", u1, u2)
    tap.ok("* 9 EXISTS" in u1, "6.3.11 APPEND to the selected mailbox: * 9 EXISTS at once (SHOULD)", u1)
    u, t = c.cmd("FETCH 9 (UID FLAGS)")
    tap.is_({n: (v.get("UID"), flags_of(v)) for n, v in fetches(u).items()}, {9: ("13", F("\\Recent"))},
            "6.3.11 the appended message: UID 13, \\Recent")

    # 6.4.2 CLOSE
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    u, t = c.cmd("CLOSE", tag="A341")
    tap.ok(u == [] and t.startswith("A341 OK "), "6.4.2 A341 CLOSE: OK, no untagged EXPUNGE", u, t)
    tap.ok(bases[0] not in disk_flags(md) and len(disk_flags(md)) == 8, "6.4.2 CLOSE expunged the \\Deleted message")
    tap.like(c.st("FETCH 1 FLAGS"), r"^BAD ", "6.4.2 after CLOSE: authenticated state (FETCH is BAD)")
    c.cmd("EXAMINE INBOX")
    victim = [f for f in os.listdir(os.path.join(md, "cur")) if f.startswith(bases[1] + ":2,")][0]
    os.rename(os.path.join(md, "cur", victim), os.path.join(md, "cur", bases[1] + ":2,ST"))   # another client
    tap.like(c.st("CLOSE"), r"^OK ", "6.4.2 CLOSE of an EXAMINEd mailbox: OK")
    tap.ok(bases[1] in disk_flags(md), "6.4.2 CLOSE of an EXAMINEd mailbox expunges nothing")
    c.close()


# ------------------------------------------------------------ errors --

def errors(ports, md):
    put(md, b"Subject: e1\n\none\n")
    put(md, b"Subject: e2\n\ntwo\n")
    c = session(ports)
    # RFC 3501 3: commands in the wrong state.
    for cmd in ("SELECT INBOX", "EXAMINE INBOX", "CREATE x", "DELETE x", "RENAME x y", "SUBSCRIBE x",
                "UNSUBSCRIBE x", 'LIST "" *', 'LSUB "" *', "STATUS INBOX (MESSAGES)", "APPEND INBOX {1+}\r\nx",
                "CHECK", "CLOSE", "EXPUNGE", "SEARCH ALL", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)",
                "COPY 1 INBOX", "UID FETCH 1 FLAGS"):
        tap.like(c.st(cmd), r"^BAD ", "3 not authenticated: %s is BAD" % cmd.split("\r")[0])
    tap.like(c.st("NOOP"), r"^OK ", "3 not authenticated: the session goes on")
    c.login("err")
    for cmd in ("CHECK", "CLOSE", "EXPUNGE", "SEARCH ALL", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)",
                "COPY 1 INBOX", "UID FETCH 1 FLAGS", "UID SEARCH ALL"):
        tap.like(c.st(cmd), r"^BAD ", "3 authenticated, nothing selected: %s is BAD" % cmd)
    for cmd in ("LOGIN err@example.org secret", "AUTHENTICATE PLAIN", "STARTTLS"):
        tap.like(c.st(cmd), r"^BAD ", "3 authenticated: %s is BAD" % cmd.split()[0])

    # 9: syntax errors are BAD.
    u, t = c.cmd("BLURDYBLOOP", tag="A044")
    tap.like(t, r"^A044 BAD ", "9 A044 BLURDYBLOOP (unknown command): BAD")
    for cmd, what in (("", "an empty command"), ("SELECT", "SELECT without a mailbox"),
                      ("SELECT INBOX extra", "SELECT with two arguments"), ("CREATE", "CREATE without a name"),
                      ("DELETE", "DELETE without a name"), ("RENAME x", "RENAME with one name"),
                      ("SUBSCRIBE", "SUBSCRIBE without a name"), ('LIST ""', "LIST with one argument"),
                      ("LSUB", "LSUB without arguments"), ("STATUS INBOX", "STATUS without items"),
                      ("STATUS INBOX ()", "STATUS with no items"), ("STATUS INBOX (MESSAGES", "STATUS with an unclosed list"),
                      ("STATUS INBOX MESSAGES)", "STATUS with an unopened list"), ("APPEND INBOX", "APPEND without a message"),
                      ('APPEND INBOX "Subject: x"', "APPEND with a quoted string, not a literal"),
                      ("APPEND INBOX (\\Seen {1+}\r\nx", "APPEND with an unclosed flag list"),
                      ("NOOP x", "NOOP with an argument"), ("CAPABILITY x", "CAPABILITY with an argument"),
                      ("LOGOUT x", "LOGOUT with an argument"), ('SELECT "INBOX', "an unterminated quoted string"),
                      ("SELECT INBOX\x01", "a control character in an atom"),
                      ("SELECT  INBOX", "two spaces between arguments")):
        tap.like(c.st(cmd), r"^BAD ", "9 %s: BAD" % what)
    c.send("  NOOP\r\n")
    tap.like(c.line(), r"^\* BAD ", "9 a line without a tag: untagged BAD")
    tap.like(c.st("NOOP"), r"^OK ", "9 after syntax errors the session goes on")

    c.cmd("SELECT INBOX")
    for cmd, what in (("FETCH", "FETCH without arguments"), ("FETCH 1", "FETCH without items"),
                      ("FETCH 0 FLAGS", "FETCH 0 (sequence numbers start at 1)"), ("FETCH 1:0 FLAGS", "FETCH 1:0"),
                      ("FETCH 1,,2 FLAGS", "FETCH 1,,2"), ("FETCH 1: FLAGS", "FETCH 1:"), ("FETCH , FLAGS", "FETCH ,"),
                      ("FETCH -1 FLAGS", "FETCH -1"), ("FETCH a FLAGS", "FETCH a"), ("FETCH 1.5 FLAGS", "FETCH 1.5"),
                      ("FETCH 4294967296 FLAGS", "FETCH of a number over 32 bits"),
                      ("FETCH 1 (FLAGS", "FETCH with an unclosed list"), ("FETCH 1 FLAGS)", "FETCH with an unopened list"),
                      ("FETCH 1 ((FLAGS))", "FETCH with a nested list"), ("FETCH 1 (ALL)", "FETCH with a macro in a list"),
                      ("FETCH 1 (FLAGS FAST)", "FETCH with a macro among items"),
                      ("FETCH 1 BODY[HEADER", "FETCH with an unclosed section"),
                      ("FETCH 1 BODY[BOGUS]", "FETCH with an unknown section"),
                      ("FETCH 1 BODY[]<5>", "FETCH with a partial without a length"),
                      ("FETCH 1 BODY[]<0.0>", "FETCH with a zero-length partial"),
                      ("STORE 1", "STORE without an item"), ("STORE 1 +FLAGS", "STORE without flags"),
                      ("STORE 0 +FLAGS (\\Seen)", "STORE 0"), ("STORE 1 +FLAGS (\\Seen", "STORE with an unclosed flag list"),
                      ("STORE 1 FLAGS.LOUD (\\Seen)", "STORE with an unknown item"),
                      ("STORE 1 +FLAGS (\\Recent)", "STORE of \\Recent"),
                      ("COPY 1", "COPY without a mailbox"), ("COPY 0 Trash", "COPY 0"), ("COPY x Trash", "COPY x"),
                      ("SEARCH", "SEARCH without keys"), ("SEARCH (SEEN", "SEARCH with an unclosed list"),
                      ("SEARCH SEEN)", "SEARCH with an unopened list"), ("SEARCH SINCE 1-Foo-1994", "SEARCH with a bad month"),
                      ("SEARCH SINCE 1994-02-01", "SEARCH with an ISO date"), ("SEARCH OR SEEN", "SEARCH OR with one key"),
                      ("SEARCH LARGER x", "SEARCH LARGER x"), ("SEARCH 0", "SEARCH 0"),
                      ("EXPUNGE 1", "EXPUNGE with an argument"), ("CLOSE x", "CLOSE with an argument"),
                      ("UID", "UID without a command"), ("UID FETCH", "UID FETCH without arguments"),
                      ("UID FROB 1", "UID with an unknown command"), ("UID FETCH 0 FLAGS", "UID FETCH 0"),
                      ("UID STORE x +FLAGS (\\Seen)", "UID STORE x")):
        tap.like(c.st(cmd), r"^BAD ", "9 selected: %s is BAD" % what)
    u, t = c.cmd("FETCH 1:2 UID")
    tap.ok(len(u) == 2 and " OK " in t, "9 after the syntax errors the mailbox is still selected", u, t)

    # NO on a missing mailbox.
    for cmd in ("SELECT nosuch", "EXAMINE nosuch", "STATUS nosuch (MESSAGES)", "DELETE nosuch", "RENAME nosuch other"):
        tap.like(c.st(cmd), r"^NO \[NONEXISTENT\] ", "missing mailbox: %s is NO [NONEXISTENT]" % cmd.split()[0])
    c.cmd("SELECT INBOX")
    tap.like(c.st("COPY 1 nosuch"), r"^NO \[TRYCREATE\] ", "missing mailbox: COPY is NO [TRYCREATE]")
    tap.like(c.cmd("APPEND nosuch {1+}\r\nx")[1], r" NO \[TRYCREATE\] ", "missing mailbox: APPEND is NO [TRYCREATE]")
    tap.ok(not os.path.exists(os.path.join(md, ".nosuch")), "missing mailbox: nothing created on disk")
    tap.like(c.st("DELETE INBOX"), r"^NO ", "6.3.4 DELETE INBOX: NO")
    tap.like(c.st("DELETE inbox"), r"^NO ", "6.3.4 DELETE inbox (any case): NO")
    tap.like(c.st("CREATE Trash"), r"^NO ", "6.3.3 CREATE of an existing mailbox: NO")
    tap.like(c.st("CREATE inbox"), r"^NO ", "6.3.3 CREATE inbox (any case): NO")
    tap.like(c.st("RENAME Trash INBOX"), r"^NO ", "6.3.5 RENAME onto INBOX: NO")
    tap.like(c.st("RENAME Trash Junk"), r"^NO ", "6.3.5 RENAME onto an existing name: NO")
    tap.ok(os.path.isdir(os.path.join(md, ".Trash")) and os.path.isdir(os.path.join(md, ".Junk")),
           "the refused RENAME left both folders alone")

    # Literals too big (RFC 7888 4, RFC 4469 TOOBIG, RFC 5530): a literal held
    # in memory is bounded by literal_max, an APPEND message by append_max
    # (smtp.message_size here; literal_max too in older builds).
    big = LITERAL_MAX + 1000
    c.send("L1 SEARCH TEXT {%d}\r\n" % big)
    u, t = c.until("L1")
    tap.ok(t.startswith("L1 NO [TOOBIG] ") and not any(x.startswith("+") for x in u),
           "literal over literal_max (synchronizing): NO [TOOBIG], no continuation", u, t)
    tap.like(c.st("NOOP"), r"^OK ", "after NO [TOOBIG] the session goes on")
    c.send("L2 APPEND INBOX {%d}\r\n" % APPEND_MAX_TEST)
    u, t = c.until("L2")
    tap.ok(t.startswith("L2 NO [TOOBIG] ") and not any(x.startswith("+") for x in u),
           "APPEND message over the size limit (synchronizing): NO [TOOBIG], no continuation", u, t)
    c.send("L3 BLURDYBLOOP {102856}\r\n")
    u, t = c.until("L3")
    tap.like(t, r"^L3 (BAD|NO) ", "7.5 A044 BLURDYBLOOP {102856}: refused at once, the literal not awaited")
    c.send("L4 BLURDYBLOOP {10}\r\n")
    ln = c.line()
    if ln.startswith("+"):
        c.send("0123456789\r\n")
        ln = c.until("L4")[1]
    tap.like(ln, r"^L4 BAD ", "7.5 an unknown command with a small literal: BAD")
    tap.like(c.st("NOOP"), r"^OK ", "after the literals the session goes on")
    u, t, cont = c.sync_literal("SEARCH TEXT ", b"x" * (LITERAL_MAX - 100))
    tap.ok(cont is not None and u == ["* SEARCH"] and " OK " in t, "a literal just under literal_max is accepted", u, t)
    c.close()
    for what, head, size in (("literal_max", "SEARCH TEXT", big), ("the APPEND limit", "APPEND INBOX", APPEND_MAX_TEST)):
        c = session(ports, "err")
        c.cmd("SELECT INBOX")
        c.send("L5 %s {%d+}\r\n" % (head, size))
        try:
            c.send(b"x" * size + b"\r\n")
        except OSError:
            pass
        try:
            u, t = c.until("L5")
        except (OSError, EOFError) as e:
            u, t = [], "%s: %s" % (type(e).__name__, e)
        tap.like(t, r"^L5 BAD \[TOOBIG\] ", "non-synchronizing literal over %s: BAD [TOOBIG]" % what)
        tap.ok(c.eof(), "non-synchronizing literal over %s: the connection is closed (RFC 7888 4)" % what)
        c.close()


# -------------------------------------------------- modified UTF-7 --

def international(ports, md):
    names = {"Entwürfe": "Entw&APw-rfe", "日本語": "&ZeVnLIqe-", "a&b": "a&-b", "台北": "&U,BTFw-",
             "Ärger & Co": "&AMQ-rger &- Co"}
    for k, v in names.items():
        assert mutf7(k) == v and mutf7_decode(v) == k, (k, mutf7(k))
    m = imaplib.IMAP4("127.0.0.1", ports["plain"])
    m.login("intl@example.org", "secret")
    for name in ("Entwürfe", "日本語", "a&b"):
        typ, data = m.create(names[name])
        tap.is_(typ, "OK", "5.1.3 imaplib CREATE %s (%s)" % (names[name], name), data)
    typ, data = m.create('"%s"' % names["Ärger & Co"])
    tap.is_(typ, "OK", "5.1.3 imaplib CREATE \"&AMQ-rger &- Co\" (a space: quoted)", data)
    typ, data = m.create("peter.mail.%s.%s" % (names["台北"], names["日本語"]))
    tap.is_(typ, "OK", "5.1.3 CREATE the RFC's ~peter/mail/&U,BTFw-/&ZeVnLIqe- with our separator", data)
    for name in ("Entwürfe", "日本語", "a&b", "Ärger & Co"):
        tap.ok(os.path.isdir(os.path.join(md, "." + names[name], "cur")),
               "5.1.3 on disk: .%s (mUTF-7, as Dovecot stores it)" % names[name])
    tap.ok(not any(os.path.exists(os.path.join(md, "." + n)) for n in ("Entwürfe", "日本語", "a&b")),
           "5.1.3 on disk: no directory with the UTF-8 or raw names")
    tap.ok(os.path.isdir(os.path.join(md, ".peter.mail.&U,BTFw-.&ZeVnLIqe-")), "5.1.3 on disk: .peter.mail.&U,BTFw-.&ZeVnLIqe-")
    typ, data = m.list()
    got = list_lines(["* LIST " + x.decode("latin-1") for x in data if isinstance(x, bytes)])
    tap.ok({names[n] for n in ("Entwürfe", "日本語", "a&b", "Ärger & Co")} <= set(got),
           "5.1.3 LIST returns the mUTF-7 names unchanged", sorted(got))
    tap.ok("\\noselect" in (attrs(got, "peter.mail.&U,BTFw-") or ()) and "peter.mail.&U,BTFw-.&ZeVnLIqe-" in got,
           "5.1.3 LIST: peter.mail.&U,BTFw- (\\Noselect) and peter.mail.&U,BTFw-.&ZeVnLIqe-", sorted(got))
    decoded = {mutf7_decode(n) for n in got}
    tap.ok({"Entwürfe", "日本語", "a&b", "Ärger & Co", "peter.mail.台北.日本語"} <= decoded,
           "5.1.3 the listed names decode to the Unicode names", sorted(decoded))
    typ, data = m.list('""', "Entw&APw-rfe")
    tap.ok(typ == "OK" and len(data) == 1 and data[0] and data[0].endswith(b"Entw&APw-rfe"),
           "5.1.3 LIST with the mUTF-7 name as the pattern", data)
    typ, data = m.list('""', "peter.mail.%")
    tap.ok(typ == "OK" and len(data) == 1 and data[0] and data[0].endswith(b"peter.mail.&U,BTFw-"),
           "5.1.3 LIST peter.mail.%: the mUTF-7 level", data)
    typ, data = m.append(names["日本語"], "(\\Flagged)", None, b"Subject: nihon\r\n\r\nbody\r\n")
    tap.is_(typ, "OK", "5.1.3 imaplib APPEND to &ZeVnLIqe-", data)
    tap.is_(list(disk_flags(os.path.join(md, ".&ZeVnLIqe-")).values()), ["F"], "5.1.3 on disk: .&ZeVnLIqe-/cur/...:2,F")
    typ, data = m.status(names["日本語"], "(MESSAGES)")
    tap.ok(typ == "OK" and data == [b"&ZeVnLIqe- (MESSAGES 1)"], "5.1.3 imaplib STATUS &ZeVnLIqe-", data)
    typ, data = m.select(names["日本語"])
    tap.ok(typ == "OK" and data == [b"1"], "5.1.3 imaplib SELECT &ZeVnLIqe-", data)
    typ, data = m.copy("1", names["Entwürfe"])
    tap.is_(typ, "OK", "5.1.3 imaplib COPY to Entw&APw-rfe", data)
    tap.is_(len(disk_flags(os.path.join(md, ".Entw&APw-rfe"))), 1, "5.1.3 the copy is in .Entw&APw-rfe")
    m.close()
    typ, data = m.subscribe(names["Entwürfe"])
    tap.is_(typ, "OK", "5.1.3 imaplib SUBSCRIBE Entw&APw-rfe", data)
    tap.ok("Entw&APw-rfe" in open(os.path.join(md, "subscriptions")).read().splitlines(),
           "5.1.3 the subscriptions file holds the mUTF-7 name")
    typ, data = m.lsub('""', "Entw*")
    tap.ok(typ == "OK" and len(data) == 1 and data[0] and data[0].endswith(b"Entw&APw-rfe"), "5.1.3 imaplib LSUB", data)
    typ, data = m.rename(names["a&b"], mutf7("a&b→c"))
    tap.is_(typ, "OK", "5.1.3 imaplib RENAME a&-b to %s" % mutf7("a&b→c"), data)
    tap.ok(os.path.isdir(os.path.join(md, "." + mutf7("a&b→c"))) and not os.path.exists(os.path.join(md, ".a&-b")),
           "5.1.3 RENAME on disk: .%s" % mutf7("a&b→c"))
    typ, data = m.delete(mutf7("a&b→c"))
    tap.is_(typ, "OK", "5.1.3 imaplib DELETE of an mUTF-7 name", data)
    m.logout()

    # Invalid names: RFC 3501 5.1.3 forbids these forms.
    c = session(ports, "intl")
    for name, why in (("&Jjo!", "a BASE64 run not ended by \"-\""), ("&", "a lone \"&\""),
                      ("abc&", "a \"&\" at the end"), ("&Jjo", "an unterminated run"),
                      ("&U,BTFw-&ZeVnLIqe-", "two adjacent runs (a null shift)"),
                      ("&AGE-", "printable ASCII in BASE64"), ("&2AA-", "a lone surrogate"),
                      ("&ZeVnLIqe", "an unterminated run at the end")):
        tap.like(c.st('CREATE "%s"' % name), r"^(NO|BAD) ", "5.1.3 CREATE %s (%s): refused" % (name, why))
        tap.ok(not os.path.exists(os.path.join(md, "." + name)), "5.1.3 no directory for %s" % name)
    raw = "Entwürfe".encode("utf-8")
    u, t = c.cmd("CREATE {%d+}\r\n%s" % (len(raw), raw.decode("latin-1")))
    tap.like(t, r" (NO|BAD) ", "5.1.3 CREATE with raw 8-bit UTF-8: refused (names are mUTF-7)")
    tap.ok(not os.path.exists(os.path.join(md.encode(), b"." + raw)), "5.1.3 no directory with the raw UTF-8 name")
    tap.like(c.st('SELECT "&Jjo!"'), r"^(NO|BAD) ", "5.1.3 SELECT of an invalid mUTF-7 name: refused")
    tap.like(c.st('RENAME Entw&APw-rfe "&Jjo!"'), r"^(NO|BAD) ", "5.1.3 RENAME to an invalid mUTF-7 name: refused")
    u, t = c.cmd('LIST "" "*"')
    lst = list_lines(u)
    tap.ok(all(re.match(r"^[\x20-\x7e]+$", n) for n in lst), "5.1.3 LIST sends 7-bit names only", sorted(lst))
    c.close()


# ----------------------------------------------------------- imaplib --

def with_imaplib(ports, md):
    m = imaplib.IMAP4("127.0.0.1", ports["stls"])
    typ, data = m.capability()
    tap.ok(typ == "OK" and b"STARTTLS" in data[0], "imaplib capability before TLS", data)
    typ, data = m.starttls(ssl_context=mpd.client_ctx())
    tap.is_(typ, "OK", "imaplib starttls", data)
    tap.ok("AUTH=PLAIN" in m.capabilities, "imaplib: capabilities after STARTTLS include AUTH=PLAIN", m.capabilities)
    typ, data = m.authenticate("PLAIN", lambda _: b"\0lib@example.org\0secret")
    tap.is_(typ, "OK", "imaplib authenticate PLAIN", data)
    typ, data = m.noop()
    tap.is_(typ, "OK", "imaplib noop", data)
    m.logout()

    m = imaplib.IMAP4("127.0.0.1", ports["plain"])
    typ, data = m.login("lib@example.org", "secret")
    tap.is_(typ, "OK", "imaplib login", data)
    typ, data = m.list()
    tap.ok(typ == "OK" and any(x.endswith(b" INBOX") for x in data), "imaplib list", data)
    typ, data = m.create("Projects")
    tap.is_(typ, "OK", "imaplib create", data)
    typ, data = m.create("Projects.2026")
    tap.is_(typ, "OK", "imaplib create a child", data)
    typ, data = m.subscribe("Projects")
    tap.is_(typ, "OK", "imaplib subscribe", data)
    typ, data = m.lsub('""', "Proj*")
    tap.ok(typ == "OK" and data == [b'() "." Projects'], "imaplib lsub", data)
    typ, data = m.unsubscribe("Projects")
    typ2, data2 = m.lsub('""', "Proj*")
    tap.ok(typ == "OK" and data2 == [None], "imaplib unsubscribe", data, data2)
    stamp = imaplib.Time2Internaldate(calendar.timegm((2026, 1, 2, 3, 4, 5)))
    for i in range(3):
        typ, data = m.append("INBOX", "(\\Seen)" if i == 0 else None, stamp,
                             b"From: lib%d@example.net\r\nSubject: imaplib %d\r\n\r\nbody %d\r\n" % (i, i, i))
        tap.is_(typ, "OK", "imaplib append %d" % i, data)
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN)")
    tap.ok(typ == "OK" and data == [b"INBOX (MESSAGES 3 UNSEEN 2)"], "imaplib status", data)
    typ, data = m.select("INBOX", readonly=True)
    tap.ok(typ == "OK" and data == [b"3"], "imaplib select readonly (EXAMINE)", data)
    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    tap.is_(typ, "NO", "imaplib store in a read-only mailbox: NO")
    typ, data = m.select("INBOX")
    tap.ok(typ == "OK" and data == [b"3"], "imaplib select", data)
    typ, data = m.search(None, "UNSEEN")
    tap.ok(typ == "OK" and data == [b"2 3"], "imaplib search", data)
    typ, data = m.search(None, "FROM", "lib1")
    tap.ok(typ == "OK" and data == [b"2"], "imaplib search FROM", data)
    typ, data = m.fetch("2", "(INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    tap.ok(typ == "OK" and data[0][1] == b"Subject: imaplib 1\r\n\r\n" and b"02-Jan-2026 03:04:05 +0000" in data[0][0],
           "imaplib fetch (literal and INTERNALDATE from APPEND)", data)
    typ, data = m.store("2", "+FLAGS", "(\\Answered)")
    tap.ok(typ == "OK" and data and b"\\Answered" in data[0], "imaplib store", data)
    typ, data = m.copy("1:2", "Projects")
    tap.is_(typ, "OK", "imaplib copy", data)
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    tap.ok(typ == "OK" and len(data) == 3 and all(b"UID " in x for x in data), "imaplib uid fetch", data)
    typ, data = m.uid("SEARCH", "ANSWERED")
    tap.ok(typ == "OK" and data == [b"2"], "imaplib uid search", data)
    typ, data = m.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    tap.ok(typ == "OK" and data and b"UID 3" in data[0], "imaplib uid store", data)
    typ, data = m.uid("COPY", "3", "Projects.2026")
    tap.is_(typ, "OK", "imaplib uid copy", data)
    typ, data = m.check()
    tap.is_(typ, "OK", "imaplib check", data)
    typ, data = m.expunge()
    tap.ok(typ == "OK" and data == [b"3"], "imaplib expunge", data)
    tap.is_(len(disk_flags(md)), 2, "imaplib expunge: 2 files left in INBOX")
    typ, data = m.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = m.close()
    tap.is_(typ, "OK", "imaplib close", data)
    tap.is_(len(disk_flags(md)), 1, "imaplib close expunged")
    typ, data = m.status("Projects", "(MESSAGES)")
    tap.ok(typ == "OK" and data == [b"Projects (MESSAGES 2)"], "imaplib status after copy", data)
    typ, data = m.rename("Projects", "Archive.Projects")
    tap.is_(typ, "OK", "imaplib rename with a child", data)
    tap.ok(os.path.isdir(os.path.join(md, ".Archive.Projects.2026")), "imaplib rename: the child moved on disk")
    typ, data = m.delete("Archive.Projects.2026")
    tap.is_(typ, "OK", "imaplib delete", data)
    typ, data = m.select("nosuch")
    tap.is_(typ, "NO", "imaplib select of a missing mailbox: NO")
    try:
        m.fetch("1", "(FLAGS)")
        tap.ok(False, "imaplib fetch without a mailbox: error")
    except imaplib.IMAP4.error as e:
        tap.ok("BAD" in str(e) or "illegal in state" in str(e), "imaplib fetch without a mailbox: error", e)
    typ, data = m.logout()
    tap.is_(typ, "BYE", "imaplib logout")


main()
