#!/usr/bin/env python3
# LIST-EXTENDED (RFC 5258: the examples of section 5 on our "." Maildir++
# tree, selection SUBSCRIBED / REMOTE / RECURSIVEMATCH / SPECIAL-USE, return
# SUBSCRIBED / CHILDREN / SPECIAL-USE, several patterns, \NonExistent,
# CHILDINFO), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438) and DELETED
# checked against the files on disk, CREATE-SPECIAL-USE (RFC 6154: kept
# across sessions in moonpost-special-use, following RENAME / DELETE,
# errors), QUOTA (RFC 9208: GETQUOTAROOT / GETQUOTA numbers against the
# Maildir's files, a user without quota, SETQUOTA refused), syntax errors
# and the limits (64 patterns, 1024 bytes of reference + pattern).
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
QUOTA = 200000                  # bytes, user q
SPECIALS = ["Drafts", "Sent", "Junk", "Trash", "Archive"]
PATTERNS_MAX = 64               # imap_list.c IMAP_LIST_PATTERNS_MAX
PATTERN_MAX = 1024              # imap_int.h IMAP_PATTERN_MAX


class Imap:
    """Raw IMAP client: exact lines; a literal in a response is read whole."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.line()

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

    def cmd(self, text):
        self.n += 1
        t = "x%d" % self.n
        self.sock.sendall(("%s %s\r\n" % (t, text)).encode("latin-1"))
        untagged = []
        while True:
            ln = self.line()
            if ln.startswith(t + " "):
                return untagged, ln.split(" ", 1)[1]
            untagged.append(ln)

    def st(self, text):
        return self.cmd(text)[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def session(port, user):
    c = Imap(port)
    r = c.st('LOGIN %s@example.org "secret"' % user)
    if not r.startswith("OK"):
        raise RuntimeError("login %s: %s" % (user, r))
    return c


def bare(c):
    """The RFC examples start from a tree of their own: the SPECIAL-USE
    folders a login makes are removed (until the next login)."""
    for name in SPECIALS:
        c.st("DELETE " + name)
        c.st("UNSUBSCRIBE " + name)


LIST_RE = re.compile(r'^\* LIST \(([^)]*)\) "\." ("(?:[^"\\]|\\.)*"|[^ ]+)(?: (.*))?$')


def unq(s):
    return s[1:-1].replace('\\"', '"').replace("\\\\", "\\") if s.startswith('"') else s


def lst(untagged):
    """LIST lines as (attributes lower-cased, name, extended data or None)."""
    out = []
    for ln in untagged:
        m = LIST_RE.match(ln)
        if m:
            out.append((frozenset(m.group(1).lower().split()), unq(m.group(2)), m.group(3)))
    return out


def E(attrs, name, ext=None):
    return (frozenset(attrs.lower().split()), name, ext)


def check(c, command, want, desc):
    u, t = c.cmd(command)
    tap.ok(t.startswith("OK"), desc + ": OK", t)
    tap.is_(lst(u), want, desc)
    return u


CHILDINFO = '("CHILDINFO" ("SUBSCRIBED"))'


def crlf_len(data):
    return len(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


SEQ = [0]


def put(folder, content, sub="cur", flags="", named=True):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder, d), exist_ok=True)
    SEQ[0] += 1
    name = "%d.M%dP%d.lx" % (1700000000 + SEQ[0], SEQ[0], os.getpid())
    if named:
        name += ",S=%d,W=%d" % (len(content), crlf_len(content))
    if sub == "cur":
        name += ":2," + flags
    with open(os.path.join(folder, sub, name), "wb") as f:
        f.write(content)
    return name


def msg(i, lines):
    return ("From: a@example.org\nSubject: m%d\n\n" % i).encode() + b"line of text\n" * lines


def files(folder):
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(folder, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in os.listdir(d)]
    return out


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    users = ("ex", "ex7", "ex8", "ex9", "ex10", "ls", "su", "nq", "err")
    with open(path, "w") as f:
        f.write("domain example.org\n" + "".join("user %s@example.org %s\n" % (u, h) for u in users) +
                "user q@example.org %s quota=%d\n" % (h, QUOTA))


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"errors_max": 200, "line_max": 8192}})
    d.start()

    def md(user):
        return os.path.join(vmail, "example.org", user, "Maildir")
    try:
        for name, fn, arg in (("capabilities", capabilities, None),
                              ("RFC 5258 examples 1-6", examples_1_6, None),
                              ("RFC 5258 example 7", example_7, None),
                              ("RFC 5258 example 8", example_8, md("ex8")),
                              ("RFC 5258 examples 9-10", examples_9_10, None),
                              ("LIST-STATUS, STATUS=SIZE", list_status, md("ls")),
                              ("CREATE-SPECIAL-USE", special_use, md("su")),
                              ("QUOTA", quota, md("q")),
                              ("no quota", no_quota, None),
                              ("errors and limits", errors, None)):
            with tap.section(name):
                if arg is None:
                    fn(port)
                else:
                    fn(port, arg)
    finally:
        d.stop()
        d.cleanup()
    tap.done()


def capabilities(port):
    c = Imap(port)
    tap.like(c.st("GETQUOTAROOT INBOX"), r"^BAD ", "GETQUOTAROOT before login: BAD")
    tap.like(c.st('LOGIN ex@example.org "secret"'), r"^OK ", "login")
    u, t = c.cmd("CAPABILITY")
    caps = set(u[0].split()[2:]) if u else set()
    want = {"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "STATUS=SIZE",
            "QUOTA", "QUOTA=RES-STORAGE", "CHILDREN"}
    tap.ok(want <= caps, "after login: " + " ".join(sorted(want)), caps)
    tap.ok("QUOTASET" not in caps and "QUOTA=RES-MESSAGE" not in caps,
           "no QUOTASET, no QUOTA=RES-MESSAGE", caps)
    c.close()


# The hierarchy of RFC 5258 5.1 with "." for "/"; Fruit.Peach is
# subscribed but does not exist (5.2).
FRUIT = ["Fruit", "Fruit.Apple", "Fruit.Banana", "Tofu", "Vegetable", "Vegetable.Broccoli",
         "Vegetable.Corn"]


def examples_1_6(port):
    c = session(port, "ex")
    bare(c)
    for name in FRUIT + ["Fruit.Peach"]:
        c.st("CREATE " + name)
    c.st("DELETE Fruit.Peach")
    for name in ("INBOX", "Fruit.Banana", "Fruit.Peach", "Vegetable", "Vegetable.Broccoli"):
        c.st("SUBSCRIBE " + name)
    # 5.1: the plain LIST keeps RFC 3501's form (with CHILDREN attributes)
    check(c, 'LIST "" "*"', [E(r"\HasNoChildren", "INBOX"), E(r"\HasChildren", "Fruit"),
                             E(r"\HasNoChildren", "Fruit.Apple"),
                             E(r"\HasNoChildren", "Fruit.Banana"), E(r"\HasNoChildren", "Tofu"),
                             E(r"\HasChildren", "Vegetable"),
                             E(r"\HasNoChildren", "Vegetable.Broccoli"),
                             E(r"\HasNoChildren", "Vegetable.Corn")], "5.1 A01 LIST \"\" *")
    subscribed = [E(r"\Subscribed", "INBOX"), E(r"\Subscribed", "Fruit.Banana"),
                  E(r"\Subscribed \NonExistent", "Fruit.Peach"), E(r"\Subscribed", "Vegetable"),
                  E(r"\Subscribed", "Vegetable.Broccoli")]
    check(c, 'LIST (SUBSCRIBED) "" "*"', subscribed, "5.2 A02 LIST (SUBSCRIBED) \"\" *")
    top = [E(r"\HasNoChildren", "INBOX"), E(r"\HasChildren", "Fruit"), E(r"\HasNoChildren", "Tofu"),
           E(r"\HasChildren", "Vegetable")]
    check(c, 'LIST () "" "%" RETURN (CHILDREN)', top, "5.3 A03 LIST () \"\" % RETURN (CHILDREN)")
    check(c, 'LIST (REMOTE) "" "%" RETURN (CHILDREN)', top,
          "5.4 A04 LIST (REMOTE) ... RETURN (CHILDREN): no remote mailboxes here")
    check(c, 'LIST (REMOTE SUBSCRIBED) "" "*"', subscribed, "5.5 A05 LIST (REMOTE SUBSCRIBED)")
    check(c, 'LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)',
          [E(r"\Subscribed", "INBOX"), E("", "Fruit"), E("", "Fruit.Apple"),
           E(r"\Subscribed", "Fruit.Banana"), E("", "Tofu"), E(r"\Subscribed", "Vegetable"),
           E(r"\Subscribed", "Vegetable.Broccoli"), E("", "Vegetable.Corn")],
          "5.6 A06 LIST (REMOTE) \"\" * RETURN (SUBSCRIBED): no line for Fruit.Peach")
    # LSUB is unchanged: Fruit.Peach is \Noselect there
    u, t = c.cmd('LSUB "" "*"')
    tap.ok('* LSUB (\\Noselect) "." Fruit.Peach' in u and '* LSUB () "." Vegetable' in u,
           "LSUB as before", u)
    c.close()


def example_7(port):
    # 5.7: several patterns; Drafts and Sent are this user's built-in folders
    c = session(port, "ex7")
    for name in ("Sent.March2004", "Sent.December2003", "Sent.August2004"):
        c.st("CREATE " + name)
    check(c, 'LIST "" ("INBOX" "Drafts" "Sent.%")',
          [E("", "INBOX"), E("", "Drafts"), E("", "Sent.August2004"),
           E("", "Sent.December2003"), E("", "Sent.March2004")],
          "5.7 BBB LIST \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")")
    check(c, 'LIST "" ("Sent.%" "*.March2004" "Sent.M%")',
          [E("", "Sent.August2004"), E("", "Sent.December2003"), E("", "Sent.March2004")],
          "a name matched by several patterns is listed once")
    check(c, 'LIST "" ("Drafts") RETURN (SPECIAL-USE CHILDREN)',
          [E(r"\HasNoChildren \Drafts", "Drafts")], "RETURN (SPECIAL-USE CHILDREN)")
    check(c, 'LIST "Sent." ("Aug%" "Dec%")', [E("", "Sent.August2004"),
                                              E("", "Sent.December2003")],
          "the reference is prefixed to every pattern")
    c.close()


def example_8(port, md):
    c = session(port, "ex8")
    bare(c)
    for name in ("Foo", "Foo.Bar", "Foo.Baz", "Moo"):
        c.st("CREATE " + name)
    check(c, 'LIST "" "*"', [E(r"\HasNoChildren", "INBOX"), E(r"\HasChildren", "Foo"),
                             E(r"\HasNoChildren", "Foo.Bar"), E(r"\HasNoChildren", "Foo.Baz"),
                             E(r"\HasNoChildren", "Moo")], "5.8 C01 LIST \"\" *")
    check(c, 'LIST "" "%" RETURN (CHILDREN)', [E(r"\HasNoChildren", "INBOX"),
                                               E(r"\HasChildren", "Foo"),
                                               E(r"\HasNoChildren", "Moo")], "5.8 CA3 RETURN (CHILDREN)")
    c.st("SUBSCRIBE Foo.Baz")
    check(c, 'LIST (SUBSCRIBED) "" "*"', [E(r"\Subscribed", "Foo.Baz")], "5.8 A) C02 LIST (SUBSCRIBED)")
    check(c, 'LIST (SUBSCRIBED) "" "%"', [], "5.8 A) LIST (SUBSCRIBED) \"\" %: nothing")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', [E("", "Foo", CHILDINFO)],
          "5.8 A) C04: Foo with CHILDINFO")
    c.st("SUBSCRIBE Foo")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', [E(r"\Subscribed", "Foo", CHILDINFO)],
          "5.8 A1) Foo subscribed too: \\Subscribed and CHILDINFO")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
          [E(r"\Subscribed \HasChildren", "Foo", CHILDINFO)], "5.8 A1) the 'or even this' form")
    c.st("UNSUBSCRIBE Foo")
    tap.like(c.st("DELETE Foo"), r"^OK", "DELETE Foo (its inferiors stay)")
    tap.ok(os.path.isdir(os.path.join(md, ".Foo.Baz")) and not os.path.isdir(os.path.join(md, ".Foo")),
           "on disk: .Foo.Baz, no .Foo")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', [E(r"\NonExistent", "Foo", CHILDINFO)],
          "5.8 A2) Foo not in the hierarchy: \\NonExistent with CHILDINFO")
    check(c, 'LIST "" "%"', [E(r"\HasNoChildren", "INBOX"), E(r"\Noselect \HasChildren", "Foo"),
                             E(r"\HasNoChildren", "Moo")], "plain LIST: the level is \\Noselect")
    check(c, 'LIST () "" "%"', [E("", "INBOX"), E(r"\NonExistent \HasChildren", "Foo"),
                                E("", "Moo")], "extended LIST: the level is \\NonExistent")
    c.st("UNSUBSCRIBE Foo.Baz")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', [], "5.8 B) nothing subscribed: nothing")
    c.st("CREATE Foo")
    c.st("SUBSCRIBE Foo")
    c.st("SUBSCRIBE Moo")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
          [E(r"\HasChildren \Subscribed", "Foo"), E(r"\HasNoChildren \Subscribed", "Moo")],
          "5.8 C) Foo and Moo subscribed, no subscribed children: no CHILDINFO")
    c.st("SUBSCRIBE Foo.Bar")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"',
          [E(r"\Subscribed", "Foo"), E(r"\Subscribed", "Foo.Bar"), E(r"\Subscribed", "Moo")],
          "RECURSIVEMATCH with *: the child matches the pattern itself, no CHILDINFO")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Foo" "Foo.Bar")',
          [E(r"\Subscribed", "Foo"), E(r"\Subscribed", "Foo.Bar")],
          "RECURSIVEMATCH: a child matched by another pattern gives no CHILDINFO")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Foo")',
          [E(r"\Subscribed", "Foo", CHILDINFO)], "RECURSIVEMATCH with one pattern: CHILDINFO")
    c.close()


def examples_9_10(port):
    # 5.9: CHILDINFO does not imply \HasChildren
    c = session(port, "ex9")
    bare(c)
    c.st("CREATE foo")
    c.st("SUBSCRIBE foo.bar")
    check(c, 'LIST "" ("foo")', [E("", "foo")], "5.9 a1 LIST \"\" (\"foo\")")
    check(c, 'LIST (SUBSCRIBED) "" "foo.*"', [E(r"\Subscribed \NonExistent", "foo.bar")],
          "5.9 a2 LIST (SUBSCRIBED) \"\" foo/*")
    check(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)',
          [E(r"\HasNoChildren", "foo", CHILDINFO)], "5.9 a3: \\HasNoChildren with CHILDINFO")
    c.close()
    # 5.10: a level that exists only through its children
    c = session(port, "ex10")
    bare(c)
    for name in ("music.rock", "music.blues", "music.jazz.fusion"):
        c.st("CREATE " + name)
    check(c, 'LIST () "" "%"', [E("", "INBOX"), E(r"\NonExistent \HasChildren", "music")],
          "5.10 LIST () \"\" %: \\NonExistent \\HasChildren")
    check(c, 'LIST () "" "music.%"', [E("", "music.blues"),
                                      E(r"\NonExistent \HasChildren", "music.jazz"),
                                      E("", "music.rock")], "5.10 one level down")
    c.close()


def status_of(untagged, name):
    for ln in untagged:
        m = re.match(r'^\* STATUS ("[^"]*"|\S+) \((.*)\)$', ln)
        if m and unq(m.group(1)) == name:
            v = m.group(2).split()
            return {v[i]: int(v[i + 1]) for i in range(0, len(v) - 1, 2)}
    return None


def list_status(port, md):
    c = session(port, "ls")
    c.st("CREATE Work")
    c.st("CREATE Lvl.Sub")
    sizes = {}
    put(md, msg(1, 3), flags="S")
    put(md, msg(2, 40), sub="new")
    put(md, msg(3, 7), flags="ST", named=False)     # no S=/W=: the server counts it
    put(os.path.join(md, ".Work"), msg(4, 100), flags="")
    put(os.path.join(md, ".Work"), b"Subject: crlf\r\n\r\nalready CRLF\r\n", flags="T")
    for name, folder in (("INBOX", md), ("Work", os.path.join(md, ".Work"))):
        sizes[name] = sum(crlf_len(open(p, "rb").read()) for p in files(folder))
    u, t = c.cmd('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN SIZE DELETED UIDVALIDITY))')
    tap.like(t, r"^OK", "LIST RETURN (STATUS ...): OK")
    order = [ln.split()[1] for ln in u]
    pairs = all(u[i + 1].startswith("* STATUS ") for i, ln in enumerate(u[:-1])
                if ln.startswith("* LIST ") and "\\Noselect" not in ln and "\\NonExistent" not in ln)
    tap.ok(pairs and u[-1].startswith("* STATUS "), "each selectable LIST line is followed by its STATUS",
           u)
    tap.ok(status_of(u, "Lvl") is None and '* LIST (\\NonExistent \\HasChildren) "." Lvl' in u,
           "the level Lvl (\\NonExistent) gets no STATUS", u)
    tap.is_(order.count("STATUS"), order.count("LIST") - 1, "one STATUS per selectable mailbox")
    si = status_of(u, "INBOX")
    tap.ok(si is not None and si["MESSAGES"] == 3 and si["UNSEEN"] == 1 and si["DELETED"] == 1,
           "INBOX: MESSAGES 3 UNSEEN 1 DELETED 1", si)
    tap.is_(si and si["SIZE"], sizes["INBOX"], "INBOX SIZE = the messages' CRLF sizes on disk")
    sw = status_of(u, "Work")
    tap.is_(sw and sw["SIZE"], sizes["Work"], "Work SIZE = the messages' CRLF sizes on disk")
    tap.ok(sw and sw["MESSAGES"] == 2 and sw["UNSEEN"] == 2 and sw["DELETED"] == 1,
           "Work: MESSAGES 2 UNSEEN 2 DELETED 1", sw)
    se = status_of(u, "Lvl.Sub")
    tap.ok(se is not None and (se["MESSAGES"], se["UNSEEN"], se["SIZE"], se["DELETED"]) == (0, 0, 0, 0)
           and se["UIDVALIDITY"] > 0, "an empty mailbox: zeros", se)
    # STATUS=SIZE on its own, and against FETCH RFC822.SIZE
    u, t = c.cmd("STATUS Work (SIZE)")
    tap.is_(u, ['* STATUS Work (SIZE %d)' % sizes["Work"]], "STATUS Work (SIZE)")
    c.cmd("EXAMINE INBOX")
    u, t = c.cmd("FETCH 1:* RFC822.SIZE")
    fetched = sum(int(x) for x in re.findall(r"RFC822\.SIZE (\d+)", " ".join(u)))
    tap.is_(fetched, sizes["INBOX"], "SIZE = the sum of RFC822.SIZE (RFC 8438)")
    c.st("CLOSE")
    u, t = c.cmd("STATUS INBOX (MESSAGES DELETED)")
    tap.is_(u, ["* STATUS INBOX (MESSAGES 3 DELETED 1)"], "EXAMINE + CLOSE expunged nothing")
    # subscribed but missing: no STATUS
    c.st("SUBSCRIBE Gone")
    u, t = c.cmd('LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))')
    tap.ok('* LIST (\\Subscribed \\NonExistent) "." Gone' in u and status_of(u, "Gone") is None,
           "a \\NonExistent subscribed name gets no STATUS", u)
    u, t = c.cmd('LIST "" "Work" RETURN (CHILDREN STATUS (UIDNEXT RECENT))')
    tap.ok(len(u) == 2 and u[0] == '* LIST (\\HasNoChildren) "." Work' and
           re.match(r"^\* STATUS Work \(RECENT 0 UIDNEXT 3\)$", u[1]),
           "RETURN (CHILDREN STATUS (UIDNEXT RECENT))", u)
    for bad in ('RETURN (STATUS ())', 'RETURN (STATUS (FOO))', 'RETURN (STATUS)',
                'RETURN (STATUS MESSAGES)', 'RETURN (STATUS ((MESSAGES)))'):
        tap.like(c.st('LIST "" "*" ' + bad), r"^BAD ", "LIST ... %s: BAD" % bad)
    tap.like(c.st("STATUS INBOX (SIZE BOGUS)"), r"^BAD ", "STATUS with an unknown item: BAD")
    tap.like(c.st("STATUS Nope (SIZE)"), r"^NO \[NONEXISTENT\]", "STATUS of a missing mailbox: NO")
    c.close()


def use_file(md):
    try:
        with open(os.path.join(md, "moonpost-special-use")) as f:
            return f.read()
    except FileNotFoundError:
        return None


def special_use(port, md):
    c = session(port, "su")
    tap.like(c.st("CREATE MyArchive (USE (\\Archive))"), r"^OK", "CREATE MyArchive (USE (\\Archive))")
    tap.like(c.st("CREATE Both (use (\\sent \\Trash \\SENT))"), r"^OK",
             "CREATE with several uses, any case, one twice")
    tap.like(c.st("CREATE Plain (USE ())"), r"^OK", "CREATE with USE (): no use")
    tap.is_(use_file(md), "MyArchive\t\\Archive\nBoth\t\\Sent \\Trash\n",
            "moonpost-special-use: one line per mailbox, canonical uses, each once")
    check(c, 'LIST "" "*" RETURN (SPECIAL-USE)',
          [E("", "INBOX"), E(r"\Archive", "Archive"), E(r"\Sent \Trash", "Both"),
           E(r"\Drafts", "Drafts"), E(r"\Junk", "Junk"), E(r"\Archive", "MyArchive"),
           E("", "Plain"), E(r"\Sent", "Sent"), E(r"\Trash", "Trash")], "RETURN (SPECIAL-USE)")
    special = [E(r"\Archive", "Archive"), E(r"\Sent \Trash", "Both"), E(r"\Drafts", "Drafts"),
               E(r"\Junk", "Junk"), E(r"\Archive", "MyArchive"), E(r"\Sent", "Sent"),
               E(r"\Trash", "Trash")]
    check(c, 'LIST (SPECIAL-USE) "" "*"', special, "LIST (SPECIAL-USE): only the special ones")
    check(c, 'LIST "" "*" RETURN (CHILDREN)',
          [E(r"\HasNoChildren", n) for n in ("INBOX", "Archive", "Both", "Drafts", "Junk",
                                             "MyArchive", "Plain", "Sent", "Trash")],
          "extended LIST without SPECIAL-USE: no use attributes")
    c.close()
    c = session(port, "su")
    check(c, 'LIST (SPECIAL-USE) "" "*"', special, "a new session: the uses are kept")
    u, t = c.cmd('LIST "" "*"')
    tap.ok('* LIST (\\HasNoChildren \\Archive) "." MyArchive' in u, "plain LIST shows them too", u)
    # errors: nothing made
    for args, want, what in (("X1 (USE (\\Foo))", r"^NO \[USEATTR\]", "an unknown use"),
                             ("X2 (USE (\\All))", r"^NO \[USEATTR\]", "\\All (a virtual view)"),
                             ("X3 (USE (\\Flagged))", r"^NO \[USEATTR\]", "\\Flagged"),
                             ("X4 (USE (\\Archive \\Foo))", r"^NO \[USEATTR\]", "one unknown of two"),
                             ("X5 (FOO (\\Archive))", r"^BAD ", "an unknown parameter"),
                             ("X6 (USE \\Archive)", r"^BAD ", "USE without a list"),
                             ('X7 (USE ("\\Archive"))', r"^BAD ", "a quoted use"),
                             ("X8 (USE)", r"^BAD ", "USE alone"),
                             ("X9 USE", r"^BAD ", "parameters not in a list"),
                             ("X10 (USE ((\\Archive)))", r"^BAD ", "a nested list"),
                             ("X11 (USE (\\Archive)) extra", r"^BAD ", "an extra argument")):
        tap.like(c.st("CREATE " + args), want, "CREATE %s: %s" % (args, what))
    tap.ok(not any(os.path.exists(os.path.join(md, ".X%d" % i)) for i in range(1, 12)),
           "no refused mailbox was made")
    tap.like(c.st("CREATE MyArchive (USE (\\Junk))"), r"^NO \[ALREADYEXISTS\]",
             "CREATE of an existing mailbox with USE: NO [ALREADYEXISTS]")
    tap.like(c.st("CREATE INBOX (USE (\\Junk))"), r"^NO \[ALREADYEXISTS\]", "CREATE INBOX (USE ...): NO")
    tap.ok("Junk" not in use_file(md) and "X" not in use_file(md), "the file is unchanged",
           use_file(md))
    # RENAME carries the uses, inferiors too; DELETE drops them
    c.st("CREATE P (USE (\\Drafts))")
    c.st("CREATE P.c (USE (\\Junk))")
    c.st("CREATE Pother (USE (\\Trash))")
    tap.like(c.st("RENAME P Q"), r"^OK", "RENAME P Q")
    check(c, 'LIST "" "Q*" RETURN (SPECIAL-USE)', [E(r"\Drafts", "Q"), E(r"\Junk", "Q.c")],
          "RENAME: Q and Q.c have P's and P.c's uses")
    check(c, 'LIST "" ("P" "P.*" "Pother") RETURN (SPECIAL-USE)', [E(r"\Trash", "Pother")],
          "RENAME: Pother (same prefix, not an inferior) keeps its own")
    with open(os.path.join(md, "moonpost-special-use"), "a") as f:
        f.write("Old.Arch\t\\Junk\n")     # stale: no such mailbox
    tap.like(c.st("RENAME MyArchive Old.Arch"), r"^OK", "RENAME MyArchive Old.Arch")
    check(c, 'LIST "" "Old.*" RETURN (SPECIAL-USE)', [E(r"\Archive", "Old.Arch")],
          "RENAME into a new level keeps the use, a stale line of the new name goes")
    tap.is_(use_file(md).count("Old.Arch"), 1, "one line for Old.Arch", use_file(md))
    tap.like(c.st("DELETE Q.c"), r"^OK", "DELETE Q.c")
    tap.ok("Q.c\t" not in use_file(md), "DELETE removes its line", use_file(md))
    c.st("CREATE Q.c")
    check(c, 'LIST "" "Q.c" RETURN (SPECIAL-USE)', [E("", "Q.c")],
          "made again without USE: no use")
    # a line left by a mailbox removed elsewhere (another server) goes at CREATE
    c.st("CREATE Long")
    with open(os.path.join(md, "moonpost-special-use"), "a") as f:
        f.write("Ghost\t\\Sent\n" + "L" * 3000 + "\t\\Junk\nbad line\nLong\t\\Nope \\Junk\n")
    check(c, 'LIST "" "Long" RETURN (SPECIAL-USE)', [E(r"\Junk", "Long")],
          "an overlong line and junk lines are skipped, the next line is read")
    tap.like(c.st("CREATE Ghost"), r"^OK", "CREATE Ghost (a stale line for it)")
    check(c, 'LIST "" "Ghost" RETURN (SPECIAL-USE)', [E("", "Ghost")], "the stale use is gone")
    tap.ok("Ghost" not in use_file(md), "and its line", use_file(md))
    tap.ok(not [f for f in os.listdir(md) if f.endswith(".tmp")], "no tmp file left")
    c.close()


def usage(md):
    total = 0
    for folder in [md] + [os.path.join(md, f) for f in os.listdir(md)
                          if f.startswith(".") and f not in (".", "..")]:
        total += sum(os.path.getsize(p) for p in files(folder))
    return total


def quota_line(u):
    for ln in u:
        m = re.match(r'^\* QUOTA "" \(STORAGE (\d+) (\d+)\)$', ln)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def quota(port, md):
    c = session(port, "q")
    c.st("CREATE Work")
    put(md, msg(1, 300))
    put(md, msg(2, 2000), sub="new")
    put(os.path.join(md, ".Work"), msg(3, 1500))
    put(os.path.join(md, ".Sent"), msg(4, 700), flags="S")
    used = usage(md)
    u, t = c.cmd("GETQUOTAROOT INBOX")
    tap.like(t, r"^OK", "GETQUOTAROOT INBOX: OK")
    tap.is_(u[0] if u else None, '* QUOTAROOT INBOX ""', "QUOTAROOT INBOX \"\"")
    tap.is_(quota_line(u), (used // 1024, QUOTA // 1024),
            "QUOTA \"\" (STORAGE used limit): every folder's files, in KiB (%d bytes)" % used)
    u, t = c.cmd("GETQUOTAROOT Work")
    tap.ok(u and u[0] == '* QUOTAROOT Work ""' and quota_line(u) == (used // 1024, QUOTA // 1024),
           "GETQUOTAROOT Work: the same root and numbers", u)
    u, t = c.cmd("GETQUOTAROOT inbox")
    tap.is_(u[0] if u else None, '* QUOTAROOT INBOX ""', "GETQUOTAROOT inbox: INBOX")
    u, t = c.cmd('GETQUOTA ""')
    tap.ok(t.startswith("OK") and u == ['* QUOTA "" (STORAGE %d %d)' % (used // 1024, QUOTA // 1024)],
           'GETQUOTA ""', u, t)
    tap.like(c.st("GETQUOTAROOT Nope"), r"^NO \[NONEXISTENT\]", "GETQUOTAROOT of a missing mailbox: NO")
    tap.like(c.st('GETQUOTA "User quota"'), r"^NO \[NONEXISTENT\]", "GETQUOTA of an unknown root: NO")
    tap.like(c.st('SETQUOTA "" (STORAGE 512)'), r"^NO \[NOPERM\]", "SETQUOTA: NO (the directory's)")
    tap.like(c.st('SETQUOTA "" ()'), r"^NO \[NOPERM\]", "SETQUOTA with no limits: NO")
    # the numbers follow APPEND, and the OVERQUOTA refusal agrees with them
    body = msg(9, 50).replace(b"\n", b"\r\n")
    c.sock.sendall(b"ap1 APPEND Work {%d+}\r\n" % len(body) + body + b"\r\n")
    u, t = [], c.line()
    while not t.startswith("ap1 "):
        t = c.line()
    tap.like(t, r"^ap1 OK", "APPEND within the quota")
    used2 = usage(md)
    tap.ok(used2 > used, "the Maildir grew")
    tap.is_(quota_line(c.cmd('GETQUOTA ""')[0]), (used2 // 1024, QUOTA // 1024),
            "GETQUOTA after APPEND: the new usage")
    big = b"X" * (QUOTA - used2 + 1)
    c.sock.sendall(b"ap2 APPEND INBOX {%d}\r\n" % len(big))
    t = c.line()
    tap.like(t, r"^ap2 NO \[OVERQUOTA\]", "APPEND of quota - used + 1 bytes: NO [OVERQUOTA]")
    tap.is_(quota_line(c.cmd('GETQUOTA ""')[0]), (used2 // 1024, QUOTA // 1024),
            "the refused message counts nowhere")
    c.close()


def no_quota(port):
    c = session(port, "nq")
    u, t = c.cmd("GETQUOTAROOT INBOX")
    tap.ok(t.startswith("OK") and u == ["* QUOTAROOT INBOX"],
           "no quota: QUOTAROOT with no root, no QUOTA", u, t)
    tap.like(c.st('GETQUOTA ""'), r"^NO \[NONEXISTENT\]", 'no quota: GETQUOTA "" NO')
    tap.like(c.st("GETQUOTAROOT Nope"), r"^NO \[NONEXISTENT\]", "no quota: a missing mailbox is NO")
    c.close()


def errors(port):
    c = session(port, "err")
    for args in ('(FOO) "" "*"', '(RECURSIVEMATCH) "" "*"', '(RECURSIVEMATCH REMOTE) "" "*"',
                 '("SUBSCRIBED") "" "*"', '(SUBSCRIBED (x)) "" "*"', '"" "*" RETURN (FOO)',
                 '"" "*" RETURN CHILDREN', '"" "*" FOO (CHILDREN)', '"" "*" RETURN',
                 '"" ()', '"" ("a" ("b"))', '() "" "*" extra', '""', '() ""',
                 '"" "*" RETURN (CHILDREN) extra', '(SUBSCRIBED) () "*"'):
        tap.like(c.st("LIST " + args), r"^BAD ", "LIST %s: BAD" % args)
    u, t = c.cmd('LIST "" ""')
    tap.is_(u, ['* LIST (\\Noselect) "." ""'], 'LIST "" "": the delimiter, as before')
    u, t = c.cmd('LIST () "" "" RETURN (CHILDREN)')
    tap.is_(u, ['* LIST (\\Noselect) "." ""'], 'LIST () "" "" RETURN (CHILDREN): the delimiter too')
    u, t = c.cmd('LIST (SUBSCRIBED) "" ""')
    tap.ok(u == [] and t.startswith("OK"), 'LIST (SUBSCRIBED) "" "": nothing', u)
    u, t = c.cmd('LIST (subscribed recursivematch) "" "*" return (children special-use)')
    tap.like(t, r"^OK", "options in lower case")
    pats = " ".join('"p%d"' % i for i in range(PATTERNS_MAX - 1)) + ' "INBOX"'
    u, t = c.cmd('LIST "" (%s)' % pats)
    tap.ok(t.startswith("OK") and lst(u) == [E("", "INBOX")], "%d patterns: OK" % PATTERNS_MAX, t)
    u, t = c.cmd('LIST "" (%s "x")' % pats)
    tap.like(t, r"^BAD .*[Tt]oo many", "%d patterns: BAD" % (PATTERNS_MAX + 1))
    long_ok = "*" + "x" * (PATTERN_MAX - 2)
    tap.like(c.st('LIST "" ("INBOX" "r%s")' % long_ok), r"^OK",
             "reference + pattern of %d bytes: OK" % PATTERN_MAX)
    tap.like(c.st('LIST "r" ("INBOX" "%s")' % long_ok), r"^OK", "counted with the reference")
    tap.like(c.st('LIST "rr" ("INBOX" "%s")' % long_ok), r"^BAD ",
             "reference + pattern of %d bytes in a list: BAD" % (PATTERN_MAX + 1))
    tap.like(c.st('LIST "" "%s" RETURN (CHILDREN)' % ("*" + "x" * (PATTERN_MAX))), r"^BAD ",
             "one pattern of %d bytes: BAD" % (PATTERN_MAX + 1))
    tap.like(c.st("GETQUOTAROOT"), r"^BAD ", "GETQUOTAROOT without a mailbox: BAD")
    tap.like(c.st("GETQUOTAROOT INBOX Sent"), r"^BAD ", "GETQUOTAROOT with two: BAD")
    tap.like(c.st("GETQUOTA"), r"^BAD ", "GETQUOTA without a root: BAD")
    tap.like(c.st('SETQUOTA ""'), r"^BAD ", "SETQUOTA without limits: BAD")
    tap.like(c.st('SETQUOTA "" STORAGE'), r"^BAD ", "SETQUOTA limits not a list: BAD")
    tap.like(c.st('SETQUOTA "" (STORAGE)'), r"^BAD ", "SETQUOTA with an odd list: BAD")
    tap.like(c.st("GETQUOTAROOT a..b"), r"^NO \[NONEXISTENT\]", "GETQUOTAROOT of an invalid name: NO")
    tap.like(c.st("NOOP"), r"^OK", "the session goes on")
    c.close()


main()
