#!/usr/bin/env python3
# SORT (RFC 5256 3, SORT=DISPLAY RFC 5957) and THREAD (RFC 5256 4,
# REFERENCES and ORDEREDSUBJECT) against hand-built expectations on ten
# messages with tricky subjects (Re:/RE: Re:/Fwd:/[list]/[Fwd: ...]/(fwd),
# RFC 2047, case), dates in other zones (sorted in UTC), a missing Date
# (the internal date counts), a missing parent (its dummy is dropped), a
# reply found by In-Reply-To only; criteria with REVERSE, search keys, UID
# forms, errors; the same answers again from the folder cache.
import imaplib
import os
import re
import subprocess
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
T0 = 1764800000         # 2025-12-03: arrival times count down from here

# n: (from, to, subject, date, extra headers, body)
MSGS = {
    1: ('"Zed Zimmer" <zed@example.net>', "b@example.org", "Hello", "Tue, 01 Dec 2026 10:00:00 +0000",
        "", "x" * 50),
    2: ("amy@example.net", "a@example.org", "Re: Hello", "Wed, 02 Dec 2026 22:00:00 +0000",
        "In-Reply-To: <m1@x>\nReferences: <m1@x>\n", "x" * 10),
    3: ('"bob b" <Bob@example.net>', "c@example.org", "[list] Re: Hello",
        "Thu, 03 Dec 2026 01:00:00 +0500", "References: <m1@x> <m2@x>\n", "x" * 30),
    4: ("carl@example.net", "a@example.org", "=?utf-8?q?Fwd=3A_Hello?=", "Fri, 04 Dec 2026 10:00:00 +0000",
        "", "x" * 5),
    5: ("dora@example.net", "a@example.org", "[Fwd: Hello]", "Sat, 05 Dec 2026 10:00:00 +0000", "", "x" * 70),
    6: ("=?utf-8?q?=C3=89mile?= <emile@example.net>", "a@example.org", "apple",
        "Sun, 06 Dec 2026 10:00:00 +0000", "", "x" * 20),
    7: ("fred@example.net", "a@example.org", "RE: Re: apple (fwd)", "Mon, 07 Dec 2026 10:00:00 +0000",
        "In-Reply-To: <m6@x>\n", "x" * 40),
    8: ("gina@example.net", "a@example.org", "Banana", "Tue, 08 Dec 2026 10:00:00 +0000",
        "References: <gone@x>\n", "x" * 60),
    9: ("hugo@example.net", "a@example.org", None, None, "", "x" * 1),
    10: ("ivan@example.net", "a@example.org", "hello", "Thu, 10 Dec 2026 10:00:00 +0000", "", "x" * 80),
}


def build(n):
    frm, to, subj, date, extra, body = MSGS[n]
    h = "From: %s\nTo: %s\n" % (frm, to)
    if subj is not None:
        h += "Subject: %s\n" % subj
    if date is not None:
        h += "Date: %s\n" % date
    h += "Message-ID: <m%d@x>\n%s" % (n, extra)
    return (h + "\n" + body + "\n").encode()


def put(md, n):
    data = build(n)
    w = len(data) + data.count(b"\n")
    name = "%d.M%dP1.sort,S=%d,W=%d" % (1700000000 + n, n, len(data), w)   # UIDs in n order
    p = os.path.join(md, "new", name)
    with open(p, "wb") as f:
        f.write(data)
    # arrival: 9 first, then 10, 8, 7, ... 1 (10 before 8: its mtime is later than 9 only)
    t = 1763164800 if n == 9 else T0 - n * 60 if n != 10 else 1763164800 + 60
    os.utime(p, (t, t))
    return w


def cmd(c, name, *args):
    try:
        if name.startswith("UID "):
            return c.uid(name[4:], *args)
        typ, data = c._simple_command(name, *args)
        return typ, c._untagged_response(typ, data, name)[1]
    except imaplib.IMAP4.error as e:
        m = re.search(r"error: (\w+)", str(e))      # imaplib raises on BAD
        return (m.group(1) if m else str(e)), [None]


def nums(c, name, *args):
    typ, data = cmd(c, name, *args)
    if typ != "OK":
        return typ
    return [int(x) for x in (data[0] or b"").split()]


def checks(c, sizes, label):
    tap.section("SORT %s" % label)
    tap.is_(nums(c, "SORT", "(SUBJECT)", "UTF-8", "ALL"), [9, 6, 7, 8, 1, 2, 3, 4, 5, 10],
            "SUBJECT: base subjects (Re:, [list] Re:, Fwd:, [Fwd: ], (fwd), case), ties by number")
    tap.is_(nums(c, "SORT", "(REVERSE SUBJECT)", "UTF-8", "ALL"), [1, 2, 3, 4, 5, 10, 8, 6, 7, 9],
            "REVERSE SUBJECT: ties still ascending")
    tap.is_(nums(c, "SORT", "(DATE)", "UTF-8", "ALL"), [9, 1, 3, 2, 4, 5, 6, 7, 8, 10],
            "DATE: in UTC (+0500 before a later +0000), no Date = internal date")
    tap.is_(nums(c, "SORT", "(ARRIVAL)", "UTF-8", "ALL"), [9, 10, 8, 7, 6, 5, 4, 3, 2, 1], "ARRIVAL")
    want = sorted(range(1, 11), key=lambda n: (sizes[n], n))
    tap.is_(nums(c, "SORT", "(SIZE)", "UTF-8", "ALL"), want, "SIZE (RFC822.SIZE)")
    tap.is_(nums(c, "SORT", "(REVERSE SIZE)", "UTF-8", "ALL"),
            sorted(range(1, 11), key=lambda n: (-sizes[n], n)), "REVERSE SIZE (ties still ascending)")
    tap.is_(nums(c, "SORT", "(FROM)", "UTF-8", "ALL"), [2, 3, 4, 5, 6, 7, 8, 9, 10, 1],
            "FROM: the local part, case-insensitive (Bob between amy and carl)")
    tap.is_(nums(c, "SORT", "(DISPLAYFROM)", "UTF-8", "ALL"), [2, 3, 4, 5, 6, 7, 8, 9, 10, 1],
            "DISPLAYFROM: names (bob b, Émile folded) or addresses")
    tap.is_(nums(c, "SORT", "(TO DATE)", "UTF-8", "ALL"), [9, 2, 4, 5, 6, 7, 8, 10, 1, 3],
            "TO then DATE")
    tap.is_(nums(c, "SORT", "(SUBJECT)", "UTF-8", "FROM", "amy"), [2], "with search keys")
    tap.is_(nums(c, "SORT", "(DATE)", "US-ASCII", "SUBJECT", "hello", "NOT", "FROM", "ivan"),
            [1, 3, 2, 4, 5], "SUBJECT and NOT FROM keys, US-ASCII")
    tap.is_(nums(c, "UID SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL"),
            [c.uid_of[n] for n in [1, 2, 3, 4, 5, 6, 7, 8, 10, 9]], "UID SORT gives UIDs")
    tap.is_(nums(c, "SORT", "(BOGUS)", "UTF-8", "ALL"), "BAD", "an unknown criterion: BAD")
    tap.is_(nums(c, "SORT", "(REVERSE)", "UTF-8", "ALL"), "BAD", "REVERSE alone: BAD")
    tap.is_(nums(c, "SORT", "()", "UTF-8", "ALL"), "BAD", "no criteria: BAD")
    tap.is_(nums(c, "SORT", "(%s)" % " ".join(["DATE"] * 16), "UTF-8", "ALL"), [9, 1, 3, 2, 4, 5, 6, 7, 8, 10],
            "16 criteria (IMAP_SORT_KEYS_MAX): OK")
    tap.is_(nums(c, "SORT", "(%s)" % " ".join(["DATE"] * 17), "UTF-8", "ALL"), "BAD", "17 criteria: BAD")
    tap.is_(nums(c, "SORT", "(DATE)", "KOI8-R", "ALL"), "NO", "an unknown charset: NO [BADCHARSET]")
    tap.is_(nums(c, "SORT", "(DATE)", "ALL"), "NO", "a search key where the charset goes: NO [BADCHARSET]")
    tap.is_(nums(c, "SORT", "(DATE)"), "BAD", "no charset and no keys: BAD")

    tap.section("THREAD %s" % label)
    typ, data = cmd(c, "THREAD", "REFERENCES", "UTF-8", "ALL")
    tap.is_((typ, data[0]), ("OK", b"(9)((1 (2 3)(4)(5))(10))(6 7)(8)"),
            "REFERENCES: chains, In-Reply-To only, a dummy for the missing parent dropped, "
            "replies grouped under the subject's first message, equal subjects under a dummy")
    typ, data = cmd(c, "THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
    tap.is_((typ, data[0]), ("OK", b"(9)(1 (3)(2)(4)(5)(10))(6 7)(8)"),
            "ORDEREDSUBJECT: by base subject, then date; threads by first date")
    typ, data = cmd(c, "THREAD", "REFERENCES", "UTF-8", "NOT", "SUBJECT", "hello")
    tap.is_((typ, data[0]), ("OK", b"(9)(6 7)(8)"), "REFERENCES with search keys")
    typ, data = cmd(c, "UID THREAD", "REFERENCES", "UTF-8", "FROM", "amy")
    tap.is_((typ, data[0]), ("OK", b"(%d)" % c.uid_of[2]), "UID THREAD gives UIDs")
    typ, data = cmd(c, "THREAD", "NOSUCH", "UTF-8", "ALL")
    tap.is_(typ, "BAD", "an unknown algorithm: BAD")


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser a@example.org %s\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    md = os.path.join(vmail, "example.org", "a", "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    sizes = {n: put(md, n) for n in MSGS}
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        c = imaplib.IMAP4("127.0.0.1", port)
        caps = c.capabilities
        c.login("a@example.org", "secret")
        typ, data = c.capability()
        caps = data[0].decode().split()
        for cap in ("SORT", "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"):
            tap.ok(cap in caps, "CAPABILITY has %s" % cap)
        c.select("INBOX")
        # sequence numbers follow arrival (the uidlist's order); map the
        # message numbers used above (by Message-ID) to them
        typ, data = c.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        seq_of, c.uid_of = {}, {}
        for item in data:
            if isinstance(item, tuple):
                seq, uid = int(item[0].split()[0]), int(item[0].split(b"UID ")[1].split()[0])
                n = int(item[1].split(b"<m")[1].split(b"@")[0])
                seq_of[n], c.uid_of[n] = seq, uid
        tap.is_(sorted(seq_of), list(range(1, 11)), "ten messages")
        if any(seq_of[n] != n for n in seq_of):
            # the expectations above are in message numbers = sequence numbers
            tap.diag("sequence numbers differ from message numbers: %r" % seq_of)
        checks(c, sizes, "from the files")
        c.close()
        c.select("INBOX")
        tap.ok(os.path.getsize(os.path.join(md, "moonpost.cache")) > 1000, "the keys went into the folder cache")
        checks(c, sizes, "from the folder cache")

        tap.section("SORT (ARRIVAL) first on an empty cache: dates only, then the rest")
        want_env = c.fetch("1:*", "(ENVELOPE INTERNALDATE)")
        c.close()
        os.unlink(os.path.join(md, "moonpost.cache"))
        c.select("INBOX")
        tap.is_(nums(c, "SORT", "(ARRIVAL)", "UTF-8", "ALL"), [9, 10, 8, 7, 6, 5, 4, 3, 2, 1],
                "ARRIVAL from a stat of each file")
        tap.is_(nums(c, "SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL"), [1, 2, 3, 4, 5, 6, 7, 8, 10, 9],
                "again, from the date-only cache records")
        tap.is_(nums(c, "SEARCH", "SENTSINCE", "1-Dec-2026"), [1, 2, 3, 4, 5, 6, 7, 8, 10],
                "SENTSINCE after date-only records: the Date: headers (2026), not the internal dates (2025)")
        tap.is_(c.fetch("1:*", "(ENVELOPE INTERNALDATE)"), want_env,
                "ENVELOPE after date-only records: made from the files")
        tap.is_(nums(c, "SORT", "(DATE)", "UTF-8", "ALL"), [9, 1, 3, 2, 4, 5, 6, 7, 8, 10], "DATE after them")

        tap.section("SORT (SUBJECT) first on an empty cache: key-only records, then the rest")
        want_bs = c.fetch("1:*", "(BODYSTRUCTURE)")
        c.close()
        os.unlink(os.path.join(md, "moonpost.cache"))
        c.select("INBOX")
        tap.is_(nums(c, "SORT", "(SUBJECT)", "UTF-8", "ALL"), [9, 6, 7, 8, 1, 2, 3, 4, 5, 10],
                "SUBJECT from the headers")
        tap.is_(c.fetch("1:*", "(ENVELOPE INTERNALDATE)"), want_env, "ENVELOPE after key-only records")
        tap.is_(c.fetch("1:*", "(BODYSTRUCTURE)"), want_bs, "BODYSTRUCTURE after them")
        tap.is_(nums(c, "SEARCH", "SENTSINCE", "1-Dec-2026"), [1, 2, 3, 4, 5, 6, 7, 8, 10], "SENTSINCE after them")
        cache = os.path.join(md, "moonpost.cache")
        size = os.path.getsize(cache)
        nums(c, "SORT", "(SUBJECT)", "UTF-8", "ALL")
        c.fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
        cmd(c, "THREAD", "REFERENCES", "UTF-8", "ALL")
        tap.is_(os.path.getsize(cache), size,
                "records merged: SORT, FETCH and THREAD again add nothing to the cache")
        c.logout()

        tap.section("a client gone while its SORT/THREAD/SEARCH runs")
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.recv(4096)
            cmds = [b"a LOGIN a@example.org secret", b"b SELECT INBOX",
                    [b"c SORT (SUBJECT) UTF-8 ALL", b"c THREAD REFERENCES UTF-8 ALL",
                     b"c SEARCH TEXT hello"][i % 3]]
            s.sendall(b"\r\n".join(cmds) + b"\r\n")
            if i % 2:
                time.sleep(0.01 * (i % 5))
            s.close()
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login("a@example.org", "secret")
        c.select("INBOX")
        tap.is_(nums(c, "SORT", "(ARRIVAL)", "UTF-8", "ALL"), [9, 10, 8, 7, 6, 5, 4, 3, 2, 1],
                "30 clients gone mid-command: the daemon still answers")
        tap.ok(d.running(), "no worker died")
        c.logout()
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
