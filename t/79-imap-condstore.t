#!/usr/bin/env python3
# CONDSTORE and QRESYNC (RFC 7162), ESEARCH (RFC 4731) and SEARCHRES (RFC
# 5182) against the real daemon, with exact responses: CAPABILITY and
# ENABLE; SELECT/EXAMINE [HIGHESTMODSEQ] and (CONDSTORE), STATUS
# HIGHESTMODSEQ, [CLOSED]; FETCH MODSEQ and CHANGEDSINCE, implicit enabling;
# STORE UNCHANGEDSINCE with [MODIFIED] (conflicts with another session and
# with a rename done on disk), MODSEQ under .SILENT; SEARCH MODSEQ; untagged
# FETCH with MODSEQ (and UID under QRESYNC) at NOOP and in IDLE; QRESYNC:
# SELECT (QRESYNC ...) after expunges and flag changes by another session,
# a rename, a deletion and a delivery done on disk, known-uids, another
# UIDVALIDITY, VANISHED instead of EXPUNGE (EXPUNGE, UID EXPUNGE, MOVE, NOOP,
# IDLE), UID FETCH (CHANGEDSINCE n VANISHED); the expunge history crossed
# (MODSEQ_EXPUNGED_MAX ranges: VANISHED (EARLIER) from the known UIDs);
# modseqs across a daemon restart and a deleted or torn modseq file; APPEND
# and COPY recorded before their OK; [NOMODSEQ]; ESEARCH MIN/MAX/ALL/COUNT
# and MODSEQ; SEARCHRES SAVE and "$" with FETCH, STORE, COPY, SEARCH, a
# failed SAVE, reset at SELECT; syntax errors; and Python imaplib.
import imaplib
import os
import re
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
EXPUNGED_MAX = 1024         # MODSEQ_EXPUNGED_MAX (src/store/modseq.h)
COMPACT_LINES = 4096        # MODSEQ_COMPACT_LINES
USERS = ("cs", "st", "se", "es", "qr", "lim", "rs", "nm", "ip")


class Imap:
    """Raw IMAP client: exact lines."""

    def __init__(self, port, timeout=30):
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
        m = re.search(rb"\{(\d+)\}$", ln)
        if m:       # a literal: read it whole into the line
            n = int(m.group(1))
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            ln += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            ln += self.line().encode()
        return ln.decode("utf-8", "replace")

    def until(self, tag):
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return out, ln[len(tag) + 1:]
            out.append(ln)

    def cmd(self, text, tag=None):
        self.n += 1
        t = tag or "c%d" % self.n
        self.sock.sendall(("%s %s\r\n" % (t, text)).encode())
        return self.until(t)

    def ok(self, text):
        return self.cmd(text)[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(port, user, box=None, enable=None):
    c = Imap(port)
    c.cmd("LOGIN %s@example.org secret" % user)
    if enable:
        c.cmd("ENABLE " + enable)
    if box:
        c.cmd("SELECT " + box)
    return c


SEQ = [0]


def put(md, subject, flags="", sub="cur"):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    SEQ[0] += 1
    content = b"From: a@example.net\nSubject: %s\n\nbody %d\n" % (subject.encode(), SEQ[0])
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP1.cs,S=%d,W=%d" % (1700000000 + SEQ[0], SEQ[0], len(content), w)
    if sub == "cur":
        name += ":2," + flags
    with open(os.path.join(md, sub, name), "wb") as f:
        f.write(content)
    return name


def find(md, uid):
    """The file of a UID (from dovecot-uidlist) in cur/ or new/."""
    base = None
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        for ln in f.readlines()[1:]:
            u, rest = ln.split(" ", 1)
            if int(u) == uid:
                base = rest.split(":", 1)[1].strip()
    for sub in ("cur", "new"):
        for n in os.listdir(os.path.join(md, sub)):
            if n.split(":")[0] == base:
                return os.path.join(md, sub, n)
    return None


def highest(lines):
    for ln in lines:
        m = re.match(r"\* OK \[HIGHESTMODSEQ (\d+)\]", ln)
        if m:
            return int(m.group(1))
    return None


def modseqs(lines):
    """{seq: modseq} of FETCH responses."""
    out = {}
    for ln in lines:
        m = re.match(r"\* (\d+) FETCH \(.*MODSEQ \((\d+)\)", ln)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def uidvalidity(lines):
    for ln in lines:
        m = re.match(r"\* OK \[UIDVALIDITY (\d+)\]", ln)
        if m:
            return int(m.group(1))
    return None


def caps_enable(port):
    tap.section("CAPABILITY, ENABLE")
    c = Imap(port)
    u, t = c.cmd("CAPABILITY")
    for cap in ("CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES"):
        tap.ok((" %s " % cap) in (u[0] + " "), "CAPABILITY lists " + cap, u)
    c.cmd("LOGIN cs@example.org secret")
    tap.is_(c.cmd("ENABLE CONDSTORE"), (["* ENABLED CONDSTORE"], "OK Enabled."), "ENABLE CONDSTORE")
    tap.is_(c.cmd("ENABLE QRESYNC X-FOO"), (["* ENABLED QRESYNC"], "OK Enabled."),
            "ENABLE QRESYNC (an unknown one is left out)")
    tap.is_(c.cmd("ENABLE condstore qresync")[0], ["* ENABLED CONDSTORE QRESYNC"], "ENABLE of both, any case")
    c.close()


def select_status(port, md):
    tap.section("SELECT, EXAMINE, STATUS, CLOSED")
    for i in range(3):
        put(md, "m%d" % i)
    c = login(port, "cs")
    u, t = c.cmd("SELECT INBOX")
    h = highest(u)
    tap.ok(h is not None and h > 1000000000000000, "SELECT says [HIGHESTMODSEQ] (time-based: %s)" % h, u)
    tap.ok("* OK [HIGHESTMODSEQ %d] Highest" % h in u and t.startswith("OK [READ-WRITE]"),
           "... as an untagged OK", u)
    tap.ok(not any("CLOSED" in x for x in u), "no CLOSED when nothing was selected", u)
    u, t = c.cmd("SELECT INBOX (CONDSTORE)")
    tap.is_(u[0], "* OK [CLOSED] Previous mailbox closed.", "CLOSED first when a mailbox is replaced (3.2.11)")
    tap.is_(highest(u), h, "SELECT (CONDSTORE): the same HIGHESTMODSEQ (nothing changed)")
    u, t = c.cmd("EXAMINE INBOX (CONDSTORE)")
    tap.ok(u[0] == "* OK [CLOSED] Previous mailbox closed." and highest(u) == h and "READ-ONLY" in t,
           "EXAMINE (CONDSTORE): CLOSED, HIGHESTMODSEQ", u)
    u, t = c.cmd("STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
    tap.is_(u, ["* STATUS INBOX (MESSAGES 3 HIGHESTMODSEQ %d)" % h], "STATUS HIGHESTMODSEQ (3.1.6)")
    c.cmd("CREATE Other")
    u, t = c.cmd("STATUS Other (HIGHESTMODSEQ UIDNEXT)")
    m = re.match(r"\* STATUS Other \(UIDNEXT 1 HIGHESTMODSEQ (\d+)\)", u[0])
    tap.ok(m and int(m.group(1)) > 0, "STATUS of an empty mailbox: a HIGHESTMODSEQ too", u)
    tap.like(c.ok("SELECT INBOX (BOGUS)"), r"^BAD ", "SELECT with an unknown parameter: BAD")
    tap.like(c.ok("SELECT INBOX CONDSTORE"), r"^BAD ", "SELECT with a parameter outside a list: BAD")
    tap.like(c.ok("SELECT INBOX (QRESYNC (1 1))"), r"^BAD ", "QRESYNC parameter before ENABLE QRESYNC: BAD")
    u, t = c.cmd("SELECT INBOX")
    tap.is_(u[0], "* OK [CLOSED] Previous mailbox closed.", "a BAD SELECT left the old mailbox selected", u)
    c.cmd("LOGOUT")
    c.close()
    return h


def fetch_modseq(port, md, h):
    tap.section("FETCH MODSEQ, CHANGEDSINCE, implicit enabling")
    c = login(port, "cs", "INBOX (CONDSTORE)")
    u, t = c.cmd("FETCH 1:3 (MODSEQ)")
    tap.is_(u, ["* %d FETCH (MODSEQ (%d))" % (i, h) for i in (1, 2, 3)],
            "FETCH MODSEQ: the messages found together share a modseq")
    u, t = c.cmd("STORE 2 +FLAGS (\\Seen)")
    m2 = modseqs(u).get(2, 0)
    tap.ok(m2 > h and u == ["* 2 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % m2] and t.startswith("OK"),
           "STORE: the FETCH carries the new MODSEQ", u)
    u, t = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h)
    tap.is_(u, ["* 2 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % m2], "FETCH (CHANGEDSINCE h): only what changed")
    u, t = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m2)
    tap.is_((u, t), ([], "OK UID Fetch completed."), "CHANGEDSINCE the newest: nothing")
    u, t = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
    tap.is_(len(u), 3, "CHANGEDSINCE 0: everything", u)
    u, t = c.cmd("FETCH 3 (BODY[TEXT])")
    m3 = modseqs(u).get(3, 0)
    tap.ok(m3 > m2 and "FLAGS (\\Seen)" in u[0] and "MODSEQ (%d)" % m3 in u[0],
           "FETCH BODY[] sets \\Seen: FLAGS and its new MODSEQ", u)
    c.cmd("LOGOUT")
    c.close()
    tap.section("implicit enabling (3.1)")
    c = login(port, "cs", "INBOX")
    u, t = c.cmd("FETCH 1 (FLAGS)")
    tap.is_(u, ["* 1 FETCH (FLAGS ())"], "before CONDSTORE: no MODSEQ")
    u, t = c.cmd("STORE 1 +FLAGS (\\Draft)")
    m1 = int(open(os.path.join(md, "moonpost.modseq")).read().split("\n")[-2].split()[1])
    tap.is_(u, ["* 1 FETCH (FLAGS (\\Draft))"], "STORE before CONDSTORE: no MODSEQ (but recorded: %d)" % m1)
    u, t = c.cmd("FETCH 1 (MODSEQ)")
    tap.is_(u, ["* OK [HIGHESTMODSEQ %d] Highest" % m1, "* 1 FETCH (MODSEQ (%d))" % m1],
            "FETCH MODSEQ enables CONDSTORE: HIGHESTMODSEQ first (3.1)")
    u, t = c.cmd("STORE 1 -FLAGS (\\Draft)")
    tap.like(u[0], r"^\* 1 FETCH \(FLAGS \(\) MODSEQ \(\d+\)\)$", "then STORE carries MODSEQ")
    tap.like(c.ok("FETCH 1 (MODSEQ)"), r"^OK ", "no second HIGHESTMODSEQ")
    c.cmd("LOGOUT")
    c.close()
    c = login(port, "cs", "INBOX")
    u, t = c.cmd("SEARCH MODSEQ 1")
    tap.ok(u[0].startswith("* OK [HIGHESTMODSEQ ") and u[1].startswith("* SEARCH 1 2 3 (MODSEQ "),
           "SEARCH MODSEQ enables it too", u)
    c.cmd("LOGOUT")
    c.close()
    c = login(port, "cs")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    c.cmd("SELECT INBOX")
    u, t = c.cmd("STORE 1 +FLAGS (\\Answered)")
    tap.like(u[0], r"MODSEQ \(\d+\)", "STATUS HIGHESTMODSEQ enables it too", u)
    c.cmd("LOGOUT")
    c.close()


def unchangedsince(port, md):
    tap.section("STORE (UNCHANGEDSINCE): [MODIFIED]")
    for i in range(4):
        put(md, "s%d" % i)
    a = login(port, "st", "INBOX (CONDSTORE)")
    b = login(port, "st", "INBOX")
    u, t = a.cmd("FETCH 1:4 (MODSEQ)")
    ms = modseqs(u)
    base = ms[1]
    tap.ok(len(ms) == 4 and len(set(ms.values())) == 1, "four messages, one modseq", u)
    b.cmd("STORE 1 +FLAGS (\\Answered)")
    u, t = a.cmd("STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % base)
    m = modseqs(u).get(2, 0)
    want = ["* 2 FETCH (FLAGS (\\Flagged) MODSEQ (%d))" % m, "* 3 FETCH (FLAGS (\\Flagged) MODSEQ (%d))" % m,
            "* OK [HIGHESTMODSEQ %d] Highest" % base]
    tap.is_(u, want, "changed by another session: left out; the others stored, one modseq; "
            "HIGHESTMODSEQ below the change not yet reported (3.2)")
    tap.is_(t, "OK [MODIFIED 1] Conditional STORE failed", "tagged OK [MODIFIED 1]")
    tap.ok("FRS" not in os.path.basename(find(md, 1)), "message 1 was not touched", find(md, 1))
    u, t = a.cmd("NOOP")
    tap.ok(len(u) == 1 and u[0].startswith("* 1 FETCH (FLAGS (\\Answered) MODSEQ ("), "NOOP reports B's change",
           u)
    u, t = a.cmd("UID STORE 1:4 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    tap.is_((u, t), ([], "OK [MODIFIED 1:4] Conditional STORE failed"),
            "UNCHANGEDSINCE 0 always fails; UID STORE lists UIDs")
    u, t = a.cmd("FETCH 4 (MODSEQ)")
    m4 = modseqs(u)[4]
    u, t = a.cmd("STORE 4 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % m4)
    n4 = modseqs(u).get(4, 0)
    tap.is_(u, ["* 4 FETCH (MODSEQ (%d))" % n4], ".SILENT with CONDSTORE: still FETCH with MODSEQ (3.1.3)")
    tap.ok(n4 > m4 and t == "OK Store completed.", "a new modseq, OK", t)
    u, t = a.cmd("STORE 4 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % n4)
    tap.is_((u, t), (["* 4 FETCH (FLAGS (\\Seen) MODSEQ (%d))" % n4], "OK Store completed."),
            "a STORE that changes nothing keeps the modseq")
    # a rename done on disk, no session has seen it yet
    p = find(md, 2)
    os.rename(p, p.replace(":2,F", ":2,DF"))
    u, t = a.cmd("STORE 2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % n4)
    tap.is_((u, t), ([], "OK [MODIFIED 2] Conditional STORE failed"),
            "changed by a rename on disk: the conditional STORE fails")
    tap.ok(":2,DF" in find(md, 2), "... and leaves the file as it was", find(md, 2))
    u, t = a.cmd("STORE 1 (UNCHANGEDSINCE 18446744073709551616) +FLAGS (\\Seen)")
    tap.like(t, r"^BAD ", "UNCHANGEDSINCE past 2^63-1: BAD")
    for cmd in ("STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)", "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)",
                "STORE 1 (FOO 1) +FLAGS (\\Seen)", "STORE 1 (UNCHANGEDSINCE 1)",
                "STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) +FLAGS (\\Seen)"):
        tap.like(a.ok(cmd), r"^BAD ", "BAD: " + cmd)
    for c in (a, b):
        c.cmd("LOGOUT")
        c.close()


def search_modseq(port):
    tap.section("SEARCH MODSEQ (3.1.5)")
    c = login(port, "st", "INBOX (CONDSTORE)")
    u, t = c.cmd("FETCH 1:4 (MODSEQ)")
    ms = modseqs(u)
    low = min(ms.values())
    top = max(ms.values())
    hits = sorted(k for k, v in ms.items() if v > low)
    u, t = c.cmd("SEARCH MODSEQ %d" % (low + 1))
    tap.is_(u, ["* SEARCH %s (MODSEQ %d)" % (" ".join(map(str, hits)), top)], "SEARCH MODSEQ n: n and above, (MODSEQ)")
    u, t = c.cmd('SEARCH MODSEQ "/flags/\\\\draft" all %d' % (low + 1))
    tap.is_(u[0], "* SEARCH %s (MODSEQ %d)" % (" ".join(map(str, hits)), top), "with an entry name and type")
    u, t = c.cmd("UID SEARCH MODSEQ %d" % (top + 1))
    tap.is_(u, ["* SEARCH"], "no match: no (MODSEQ)")
    u, t = c.cmd("SEARCH OR MODSEQ %d SEEN" % (top + 1))
    tap.ok(u[0].startswith("* SEARCH") and "(MODSEQ" in u[0], "MODSEQ inside OR", u)
    for cmd in ("SEARCH MODSEQ", "SEARCH MODSEQ x", "SEARCH MODSEQ 9223372036854775808",
                'SEARCH MODSEQ "/flags/\\\\draft" bogus 1'):
        tap.like(c.ok(cmd), r"^BAD ", "BAD: " + cmd)
    c.cmd("LOGOUT")
    c.close()


def esearch(port, md):
    tap.section("ESEARCH (RFC 4731)")
    for i in range(7):
        put(md, "e%d" % i, "S" if i in (0, 1, 5) else "")
    c = login(port, "es", "INBOX")
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.cmd("EXPUNGE")        # sequence numbers 1..6 are UIDs 2..7 now
    u, t = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN", tag="A5")
    tap.is_((u, t), (['* ESEARCH (TAG "A5") MIN 2 MAX 6 ALL 2:4,6 COUNT 4'], "OK Search completed."),
            "MIN MAX ALL COUNT, the set with ranges")
    u, t = c.cmd("UID SEARCH RETURN (MIN MAX ALL COUNT) UNSEEN", tag="A6")
    tap.is_(u, ['* ESEARCH (TAG "A6") UID MIN 3 MAX 7 ALL 3:5,7 COUNT 4'], "UID SEARCH: UID and UIDs")
    u, t = c.cmd("SEARCH RETURN () UNSEEN", tag="A7")
    tap.is_(u, ['* ESEARCH (TAG "A7") ALL 2:4,6'], "RETURN () is ALL")
    u, t = c.cmd("SEARCH RETURN (COUNT) DELETED", tag="A8")
    tap.is_(u, ['* ESEARCH (TAG "A8") COUNT 0'], "no match: COUNT 0")
    u, t = c.cmd("SEARCH RETURN (MIN MAX ALL) DELETED", tag="A9")
    tap.is_(u, ['* ESEARCH (TAG "A9")'], "no match: no MIN/MAX/ALL")
    u, t = c.cmd("SEARCH RETURN (MAX) CHARSET UTF-8 ALL", tag="B1")
    tap.is_(u, ['* ESEARCH (TAG "B1") MAX 6'], "MAX with CHARSET")
    u, t = c.cmd("FETCH 1:6 (MODSEQ)")
    ms = modseqs(u)
    c.cmd("STORE 3 +FLAGS.SILENT (\\Flagged)")
    u, t = c.cmd("FETCH 3 (MODSEQ)")
    ms.update(modseqs(u))
    u, t = c.cmd("SEARCH RETURN (ALL COUNT) MODSEQ 1", tag="B2")
    tap.is_(u, ['* ESEARCH (TAG "B2") ALL 1:6 COUNT 6 MODSEQ %d' % max(ms.values())],
            "ESEARCH with MODSEQ: the highest of all (RFC 7162 3.1.5)")
    u, t = c.cmd("SEARCH RETURN (MIN) MODSEQ 1", tag="B3")
    tap.is_(u, ['* ESEARCH (TAG "B3") MIN 1 MODSEQ %d' % ms[1]], "MIN only: the MIN message's MODSEQ")
    u, t = c.cmd("SEARCH RETURN (MIN MAX) MODSEQ 1", tag="B4")
    tap.is_(u, ['* ESEARCH (TAG "B4") MIN 1 MAX 6 MODSEQ %d' % max(ms[1], ms[6])], "MIN MAX: the higher of the two")
    for cmd in ("SEARCH RETURN (BOGUS) ALL", "SEARCH RETURN ALL", "SEARCH RETURN", "SEARCH RETURN ((MIN)) ALL"):
        tap.like(c.ok(cmd), r"^BAD ", "BAD: " + cmd)
    c.cmd("LOGOUT")
    c.close()


def searchres(port, md):
    tap.section("SEARCHRES (RFC 5182)")
    c = login(port, "es", "INBOX")
    u, t = c.cmd("SEARCH RETURN (SAVE) UNSEEN")
    tap.is_((u, t), ([], "OK Search completed."), "SAVE alone: no ESEARCH")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_(u, ["* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)", "* 6 FETCH (UID 7)"], "FETCH $")
    u, t = c.cmd("UID FETCH $ (FLAGS)")
    tap.is_(len(u), 4, "UID FETCH $", u)
    u, t = c.cmd("SEARCH $")
    tap.is_(u, ["* SEARCH 2 3 4 6"], "SEARCH $")
    u, t = c.cmd("UID SEARCH UID $ SEEN")
    tap.is_(u, ["* SEARCH"], "UID SEARCH UID $ SEEN: none")
    u, t = c.cmd("STORE $ +FLAGS (\\Answered)")
    tap.is_([re.sub(r" \(FLAGS .*", "", x) for x in u], ["* 2 FETCH", "* 3 FETCH", "* 4 FETCH", "* 6 FETCH"],
            "STORE $", u)
    c.cmd("CREATE Saved")
    u, t = c.cmd("COPY $ Saved")
    tap.like(t, r"^OK \[COPYUID \d+ 3:5,7 1:4\] ", "COPY $: COPYUID of the saved UIDs")
    u, t = c.cmd("SEARCH RETURN (SAVE COUNT) SEEN", tag="S1")
    tap.is_(u, ['* ESEARCH (TAG "S1") COUNT 2'], "SAVE COUNT: the ESEARCH of COUNT")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_(u, ["* 1 FETCH (UID 2)", "* 5 FETCH (UID 6)"], "... and $ holds all of them")
    u, t = c.cmd("SEARCH RETURN (SAVE MIN MAX) ANSWERED", tag="S2")
    tap.is_(u, ['* ESEARCH (TAG "S2") MIN 2 MAX 6'], "SAVE MIN MAX")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_(u, ["* 2 FETCH (UID 3)", "* 6 FETCH (UID 7)"], "... saves only the MIN and MAX messages (2.4)")
    u, t = c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-X ALL")
    tap.like(t, r"^NO \[BADCHARSET", "a SAVE that fails ...")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_((u, t), ([], "OK Fetch completed."), "... leaves $ empty (2.1)")
    c.cmd("SEARCH RETURN (SAVE) ALL")
    c.cmd("STORE 6 +FLAGS.SILENT (\\Deleted)")
    c.cmd("EXPUNGE")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_(len(u), 5, "an expunged message drops out of $", u)
    u, t = c.cmd("MOVE $ Saved")
    tap.like(t, r"^OK ", "MOVE $")
    tap.is_(len([x for x in u if x.endswith(" EXPUNGE")]), 5, "... moves the five", u)
    c.cmd("SELECT Saved")
    c.cmd("SEARCH RETURN (SAVE) ALL")
    c.cmd("SELECT Saved")
    u, t = c.cmd("FETCH $ (UID)")
    tap.is_((u, t), ([], "OK Fetch completed."), "SELECT resets $")
    c.cmd("LOGOUT")
    c.close()


def qresync(port, md, d):
    tap.section("QRESYNC: SELECT after changes by others (3.2.5)")
    for i in range(10):
        put(md, "q%d" % i)
    a = login(port, "qr", enable="QRESYNC")
    u, t = a.cmd("SELECT INBOX")
    h0, uv = highest(u), uidvalidity(u)
    tap.ok(h0 and uv and "* 10 EXISTS" in u, "ten messages, HIGHESTMODSEQ %s" % h0, u)
    a.cmd("LOGOUT")
    a.close()
    b = login(port, "qr", "INBOX")
    b.cmd("STORE 3 +FLAGS (\\Seen)")
    b.cmd("STORE 5:6 +FLAGS (\\Deleted)")
    b.cmd("EXPUNGE")                        # UIDs 5 and 6
    b.cmd("LOGOUT")
    b.close()
    p = find(md, 8)
    os.rename(p, p + "F")                   # flag UID 8 \Flagged on disk
    os.unlink(find(md, 9))                  # delete UID 9 on disk
    put(md, "delivered", sub="new")         # a delivery by another program: UID 11
    a = login(port, "qr", enable="QRESYNC")
    u, t = a.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h0))
    h1 = highest(u)
    ms = modseqs(u)
    tail = u[u.index("* OK [HIGHESTMODSEQ %s] Highest" % h1) + 1:] if h1 else u
    want = ["* VANISHED (EARLIER) 5:6,9",
            "* 3 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (%d))" % ms.get(3, 0),
            "* 6 FETCH (UID 8 FLAGS (\\Flagged) MODSEQ (%d))" % ms.get(6, 0),
            "* 8 FETCH (UID 11 FLAGS (\\Recent) MODSEQ (%d))" % ms.get(8, 0)]
    tap.is_(tail, want, "VANISHED (EARLIER) then FETCH of what changed: another session's STORE and "
            "EXPUNGE, a rename, a deletion and a delivery on disk")
    tap.ok("* 8 EXISTS" in u and t.startswith("OK [READ-WRITE]"), "8 messages now", u)
    tap.ok(h1 > h0 and all(h0 < v <= h1 for v in ms.values()), "modseqs between the old and new HIGHESTMODSEQ")
    u, t = a.cmd("SELECT INBOX (QRESYNC (%d %d 1:4,7))" % (uv, h0))
    tap.ok("* VANISHED (EARLIER) 5:6,9" not in u and not any(x.startswith("* VANISHED") for x in u),
           "known-uids 1:4,7: no VANISHED", u)
    u, t = a.cmd("SELECT INBOX (QRESYNC (%d %d 1:6 (1:3 1:3)))" % (uv, h0))
    tap.ok("* VANISHED (EARLIER) 5:6" in u, "known-uids 1:6 and seq-match-data: VANISHED 5:6", u)
    u, t = a.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv + 1, h0))
    tap.ok(not any(x.startswith("* VANISHED") or " FETCH " in x for x in u) and t.startswith("OK"),
           "another UIDVALIDITY: neither VANISHED nor FETCH", u)
    u, t = a.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h1))
    tap.ok(not any(x.startswith("* VANISHED") or " FETCH " in x for x in u), "up to date: nothing", u)
    for cmd in ("SELECT INBOX (QRESYNC (0 1))", "SELECT INBOX (QRESYNC (%d 0))" % uv,
                "SELECT INBOX (QRESYNC (%d))" % uv, "SELECT INBOX (QRESYNC (%d 1 1:*))" % uv,
                "SELECT INBOX (QRESYNC (%d 1 1:3 (1:3)))" % uv, "SELECT INBOX (QRESYNC)",
                "SELECT INBOX (QRESYNC (%d 1) QRESYNC (%d 1))" % (uv, uv)):
        tap.like(a.ok(cmd), r"^BAD ", "BAD: " + cmd)
    qresync_session(port, md, a, uv, h0, h1)
    a.cmd("LOGOUT")
    a.close()
    return uv


def qresync_session(port, md, a, uv, h0, h1):
    tap.section("QRESYNC: VANISHED instead of EXPUNGE (3.2.7, 3.2.10)")
    a.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h1))
    b = login(port, "qr", "INBOX")
    u, t = a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
    tap.is_(u[0], "* VANISHED (EARLIER) 5:6,9", "UID FETCH (CHANGEDSINCE VANISHED): VANISHED first (3.2.6)")
    tap.is_(len(u), 4, "... then the three FETCHes", u)
    u, t = a.cmd("UID FETCH 1:7 (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
    tap.is_(u[0], "* VANISHED (EARLIER) 5:6", "... limited to the UID set")
    u, t = a.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h1)
    tap.is_((u, t), ([], "OK UID Fetch completed."), "... nothing since the newest")
    for cmd in ("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "UID FETCH 1:* (FLAGS) (VANISHED)",
                "UID FETCH 1:* (FLAGS) (CHANGEDSINCE)", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 BOGUS)",
                "UID FETCH 1:* (FLAGS) CHANGEDSINCE 1"):
        tap.like(a.ok(cmd), r"^BAD ", "BAD: " + cmd)
    tap.like(b.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"), r"^BAD ",
             "VANISHED without ENABLE QRESYNC: BAD")
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    u, t = a.cmd("EXPUNGE")
    tap.is_((u, t), (["* VANISHED 1"], "OK Expunge completed."), "EXPUNGE: * VANISHED uid")
    a.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    u, t = a.cmd("UID EXPUNGE 2:3")
    tap.is_(u, ["* VANISHED 2:3"], "UID EXPUNGE: * VANISHED with a range")
    a.cmd("CREATE Moved")
    u, t = a.cmd("UID MOVE 4 Moved")
    tap.is_(u[1:], ["* VANISHED 4"], "MOVE: * VANISHED", u)
    # another session's changes arrive at NOOP and in IDLE
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")      # b still numbers from its SELECT: 1 is UID 1 (gone)
    b.cmd("NOOP")
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("EXPUNGE")
    b.cmd("STORE 1 +FLAGS.SILENT (\\Answered)")
    u, t = a.cmd("NOOP")
    tap.ok(len(u) == 2 and u[0] == "* VANISHED 7" and re.match(
        r"^\* 1 FETCH \(UID 8 FLAGS \(\\Answered \\Flagged\) MODSEQ \(\d+\)\)$", u[1]),
        "NOOP: VANISHED, then FETCH with UID and MODSEQ (3.2.4)", u)
    u, t = a.cmd("STORE 1 +FLAGS (\\Seen)")
    tap.like(u[0], r"^\* 1 FETCH \(UID 8 FLAGS \(\\Answered \\Flagged \\Seen\) MODSEQ \(\d+\)\)$",
             "STORE after ENABLE QRESYNC: UID in its FETCH too", u)
    a.sock.sendall(b"i1 IDLE\r\n")
    tap.like(a.line(), r"^\+ ", "IDLE")
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("EXPUNGE")
    pushed = [a.line()]
    while not pushed[-1].startswith("* VANISHED"):     # a push may come between the two
        pushed.append(a.line())
    tap.ok(pushed[-1] == "* VANISHED 8" and all(re.match(r"\* 1 FETCH \(UID 8 ", x) for x in pushed[:-1]),
           "IDLE: another session's EXPUNGE arrives as VANISHED", pushed)
    a.sock.sendall(b"DONE\r\n")
    tap.is_(a.until("i1"), ([], "OK Idle completed."), "DONE")
    b.cmd("LOGOUT")
    b.close()


def restart(d, port, md, uv):
    tap.section("modseqs survive a restart")
    c = login(port, "qr", "INBOX (CONDSTORE)")
    u, t = c.cmd("UID FETCH 1:* (MODSEQ)")
    before = sorted(u)
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    c.cmd("LOGOUT")
    c.close()
    d.stop()
    d.start()
    c = login(port, "qr", enable="QRESYNC")
    u, t = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h))
    tap.is_(highest(u), h, "the same HIGHESTMODSEQ after the restart")
    tap.ok(not any(x.startswith("* VANISHED") or " FETCH " in x for x in u), "QRESYNC: nothing changed", u)
    u, t = c.cmd("UID FETCH 1:* (MODSEQ)")
    tap.is_(sorted(u), before, "the same MODSEQ for every message")
    u, t = c.cmd("STORE 1 +FLAGS (\\Seen)")
    tap.ok(modseqs(u).get(1, 0) > h, "a change after the restart: above the old HIGHESTMODSEQ", u)
    c.cmd("LOGOUT")
    c.close()
    tap.section("a deleted or torn modseq file")
    path = os.path.join(md, "moonpost.modseq")
    c = login(port, "qr", "INBOX (CONDSTORE)")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    with open(path, "ab") as f:
        f.write(b"M3 12")      # a crash mid-append
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    tap.is_(u, ["* STATUS INBOX (HIGHESTMODSEQ %d)" % h], "a torn tail is not read")
    c.cmd("STORE 2 +FLAGS (\\Draft)")
    tap.ok(b"M3 12" not in open(path, "rb").read(), "... and cut off by the next writer")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    c.cmd("LOGOUT")
    c.close()
    os.unlink(path)
    c = login(port, "qr", enable="QRESYNC")
    u, t = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h))
    n = len([x for x in u if x.endswith(" EXISTS")])
    fetches = [x for x in u if " FETCH " in x]
    exists = int([x for x in u if x.endswith(" EXISTS")][0].split()[1]) if n else -1
    tap.ok(highest(u) > h and len(fetches) == exists,
           "file deleted: a higher HIGHESTMODSEQ, every message reported changed (nothing missed)", u)
    c.cmd("LOGOUT")
    c.close()


def history(port, md):
    tap.section("expunge history past MODSEQ_EXPUNGED_MAX")
    n = 2 * (EXPUNGED_MAX + 2) + 1     # UIDs 5, 7, ... n: EXPUNGED_MAX + 2 of them
    for i in range(n):
        put(md, "h%d" % i)
    c = login(port, "lim", "INBOX", enable="QRESYNC")
    u, t = c.cmd("SELECT INBOX")
    uv = uidvalidity(u)
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    u, t = c.cmd("EXPUNGE")
    tap.is_(u, ["* VANISHED 2"], "UID 2 expunged first")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h1 = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    # every other message from UID 5 on: EXPUNGED_MAX + 1 ranges in one go
    odd = ["%d" % uid for uid in range(5, n + 1, 2)]
    c.cmd("UID STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(odd))
    u, t = c.cmd("EXPUNGE")
    tap.is_(len(u), 1, "one VANISHED for %d UIDs" % len(odd))
    c.cmd("LOGOUT")
    c.close()
    c = login(port, "lim", enable="QRESYNC")
    u, t = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h1))
    v = [x for x in u if x.startswith("* VANISHED (EARLIER) ")]
    got = v[0].split()[-1].split(",") if v else []
    tap.is_(got[:3], ["2", "5", "7"], "history gone: VANISHED (EARLIER) from every UID known to be gone, "
            "UID 2 too (3.2.5.2 allows it)")
    tap.is_(len(got), len(odd) + 1, "... all of them")
    u, t = c.cmd("SELECT INBOX (QRESYNC (%d %d 1:12))" % (uv, h1))
    tap.is_([x for x in u if x.startswith("* VANISHED")], ["* VANISHED (EARLIER) 2,5,7,9,11"],
            "... within the known UIDs")
    u, t = c.cmd("UID FETCH 1:12 (FLAGS) (CHANGEDSINCE %d VANISHED)" % h1)
    tap.is_(u[0], "* VANISHED (EARLIER) 2,5,7,9,11", "UID FETCH VANISHED: the same fallback")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h2 = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    u, t = c.cmd("SELECT INBOX (QRESYNC (%d %d))" % (uv, h2))
    tap.ok(not any(x.startswith("* VANISHED") for x in u), "since the newest: nothing", u)
    c.cmd("LOGOUT")
    c.close()
    # the dropped ranges go at the next compaction; until then every read
    # drops them again, the same way
    lines = open(os.path.join(md, "moonpost.modseq")).read().split("\n")
    tap.ok(lines[0].endswith(" E0") and len(lines) < n + EXPUNGED_MAX + COMPACT_LINES,
           "the file stays bounded (%d lines)" % len(lines))


def append_copy(port, md):
    tap.section("APPEND and COPY: modseqs recorded before the OK")
    c = login(port, "rs", "INBOX (CONDSTORE)")
    u, t = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    h = int(re.search(r"HIGHESTMODSEQ (\d+)", u[0]).group(1))
    msg = b"Subject: appended\r\n\r\nhi\r\n"
    c.sock.sendall(b"ap APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(msg), msg))
    u, t = c.until("ap")
    m = re.search(r"APPENDUID \d+ (\d+)", t)
    uid = int(m.group(1)) if m else 0
    text = open(os.path.join(md, "moonpost.modseq")).read()
    rec = re.search(r"\nM%d (\d+) S\n" % uid, text)
    tap.ok(uid and rec and int(rec.group(1)) > h, "APPEND: the new UID is in moonpost.modseq at the OK", t, text)
    u, t = c.cmd("NOOP")
    u, t = c.cmd("UID FETCH %d (MODSEQ)" % uid)
    tap.ok(rec and ("MODSEQ (%s)" % rec.group(1)) in u[0], "... and FETCH MODSEQ says it", u)
    c.cmd("CREATE Dst")
    u, t = c.cmd("UID COPY %d Dst" % uid)
    dst = os.path.join(md, ".Dst", "moonpost.modseq")
    tap.ok(os.path.exists(dst) and re.search(r"\nM1 \d+ S\n", open(dst).read()),
           "COPY: the copy is in the destination's moonpost.modseq at the OK", t)
    c.cmd("LOGOUT")
    c.close()


def nomodseq(port, md):
    tap.section("[NOMODSEQ]")
    c = login(port, "nm")
    c.cmd("CREATE Nomod")
    folder = os.path.join(md, ".Nomod")
    put(folder, "x")
    os.mkdir(os.path.join(folder, "moonpost.modseq"))     # the file cannot be made
    u, t = c.cmd("SELECT Nomod")
    tap.ok("* OK [NOMODSEQ] No permanent modsequences" in u and highest(u) is None, "SELECT: [NOMODSEQ]", u)
    tap.like(c.ok("FETCH 1 (MODSEQ)"), r"^BAD ", "FETCH MODSEQ: BAD")
    tap.like(c.ok("STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)"), r"^BAD ", "STORE UNCHANGEDSINCE: BAD")
    tap.like(c.ok("SEARCH MODSEQ 5"), r"^BAD ", "SEARCH MODSEQ: BAD")
    u, t = c.cmd("STORE 1 +FLAGS (\\Seen)")
    tap.is_((u, t), (["* 1 FETCH (FLAGS (\\Seen))"], "OK Store completed."), "a plain STORE still works")
    u, t = c.cmd("STATUS Nomod (HIGHESTMODSEQ)")
    tap.is_(u, ["* STATUS Nomod (HIGHESTMODSEQ 0)"], "STATUS: HIGHESTMODSEQ 0")
    c.cmd("LOGOUT")
    c.close()


def with_imaplib(port, md):
    tap.section("Python imaplib")
    put(md, "lib1")
    put(md, "lib2")
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login("ip@example.org", "secret")
    typ, data = c.enable("CONDSTORE")
    tap.is_((typ, c.untagged_responses.get("ENABLED")), ("OK", [b"CONDSTORE"]), "imaplib enable CONDSTORE")
    typ, data = c.select("INBOX")
    tap.ok(typ == "OK" and c.untagged_responses.get("HIGHESTMODSEQ"), "imaplib select: HIGHESTMODSEQ",
           c.untagged_responses)
    typ, data = c.fetch("1:2", "(MODSEQ)")
    tap.ok(typ == "OK" and all(re.match(rb"\d+ \(MODSEQ \(\d+\)\)", x) for x in data), "imaplib FETCH MODSEQ", data)
    typ, data = c.store("1", "+FLAGS", "(\\Seen)")
    tap.like(data[0].decode(), r"FLAGS \(\\Seen\) MODSEQ \(\d+\)", "imaplib STORE")
    typ, data = c._simple_command("SEARCH", "RETURN", "(COUNT)", "SEEN")
    typ, data = c._untagged_response(typ, data, "ESEARCH")
    tap.like(data[0].decode(), r'\(TAG "\w+"\) COUNT 1', "imaplib ESEARCH", data)
    c.logout()


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\n" + "".join("user %s@example.org %s\n" % (u, h) for u in USERS))
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"line_max": 65536}})
    d.start()
    md = {u: os.path.join(vmail, "example.org", u, "Maildir") for u in USERS}
    t0 = time.time()
    try:
        caps_enable(port)
        h0 = select_status(port, md["cs"])
        fetch_modseq(port, md["cs"], h0)
        unchangedsince(port, md["st"])
        search_modseq(port)
        esearch(port, md["es"])
        searchres(port, md["es"])
        uv = qresync(port, md["qr"], d)
        restart(d, port, md["qr"], uv)
        history(port, md["lim"])
        append_copy(port, md["rs"])
        nomodseq(port, md["nm"])
        with_imaplib(port, md["ip"])
        tap.diag("took %.1fs" % (time.time() - t0))
        d.check_sanitizers()
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
